import type { Pool, PoolClient } from 'pg';
import { TerminalError } from '../../../lambdas/shared/errors';
import { ensureTable, type EnsureTableOptions } from '../../../lambdas/connectors/postgres/ddl';
import { createPool, withClient } from '../../../lambdas/connectors/postgres/pool';
import { createMemoryLogger } from '../../../lambdas/shared/logging';
import type { PgColumn } from '../../../lambdas/connectors/postgres/types';
import { createTestDatabase, type TestDatabase } from '../../support/database';

/** For `.then(notExpected, …)`: a promise that should have rejected. */
const notExpected = (): Error => {
  throw new Error('expected a rejection, but the promise resolved');
};

const col = (name: string, pgType: string, nullable = true): PgColumn => ({ name, pgType, nullable });

async function describeTable(client: PoolClient, table: string): Promise<Record<string, string>> {
  const { rows } = await client.query<{ name: string; type: string; notnull: boolean }>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS notnull
       FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    [`public."${table}"`],
  );
  return Object.fromEntries(rows.map((r) => [r.name, `${r.type}${r.notnull ? ' not null' : ''}`]));
}

describe('ensureTable', () => {
  let db: TestDatabase;
  let pool: Pool;
  beforeAll(async () => {
    db = await createTestDatabase();
    pool = createPool({ url: db.url }, { ssl: { mode: 'disable' } });
  });
  afterAll(async () => {
    await pool.end();
    await db.drop();
  });

  const ensure = (o: Omit<EnsureTableOptions, 'schema'>) =>
    withClient(pool, (c) => ensureTable(c, { schema: 'public', ...o }));

  it('creates the table with its primary key, NOT NULL on the key only, then adds new columns as nullable and keeps vanished ones', async () => {
    const first = await ensure({
      table: 'lead',
      columns: [col('Id', 'character varying(18)', false), col('Company', 'text', false)],
      primaryKey: ['Id'],
    });
    expect(first).toEqual({ created: true, added: [], widened: [], keptWider: [], relaxed: [] });
    // Company is declared non-nullable (a required field), but only the key is NOT NULL.
    expect(await withClient(pool, (c) => describeTable(c, 'lead'))).toEqual({
      Id: 'character varying(18) not null',
      Company: 'text',
    });
    await pool.query(`INSERT INTO lead VALUES ('00Q1', 'Acme')`);

    const second = await ensure({
      table: 'lead',
      columns: [col('Id', 'varchar(18)', false), col('Score__c', 'numeric(5,2)', false)],
      primaryKey: ['Id'],
    });
    expect(second).toEqual({ created: false, added: ['Score__c'], widened: [], keptWider: [], relaxed: [] });
    expect(await withClient(pool, (c) => describeTable(c, 'lead'))).toEqual({
      Id: 'character varying(18) not null',
      Company: 'text',
      Score__c: 'numeric(5,2)',
    });
    const { rows } = await pool.query('SELECT * FROM lead');
    expect(rows).toEqual([{ Id: '00Q1', Company: 'Acme', Score__c: null }]);

    const pk = await pool.query(
      `SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = 'public.lead'::regclass AND contype = 'p'`,
    );
    expect(pk.rows).toEqual([{ def: 'PRIMARY KEY ("Id")' }]);
  });

  it('drops NOT NULL from non-key columns the source declares nullable or no longer declares, and logs it', async () => {
    // A table as earlier versions created it (a required field became NOT NULL), plus columns
    // added by hand: one with a default and an identity column, which inserts fill themselves.
    await pool.query(`CREATE TABLE relax (
      "Id" varchar(18) NOT NULL PRIMARY KEY,
      "Company" text NOT NULL,
      "Status" text NOT NULL,
      "Title" text NOT NULL,
      "Removed" text NOT NULL,
      "Loaded" timestamptz NOT NULL DEFAULT now(),
      "Seq" bigint GENERATED ALWAYS AS IDENTITY
    )`);
    const logger = createMemoryLogger('debug');
    const result = await ensure({
      table: 'relax',
      columns: [
        col('Id', 'character varying(18)', true),
        col('Company', 'text', true), // made optional by an admin
        col('Status', 'text', false), // still required: keeps its NOT NULL
        col('Title', 'character varying(80)', true), // narrower and nullable
      ],
      primaryKey: ['Id'],
      onNarrower: 'keep',
      logger,
    });
    // "Removed" is no longer loaded: every INSERT would leave it NULL.
    expect(result.relaxed).toEqual(['Company', 'Title', 'Removed']);
    expect(await withClient(pool, (c) => describeTable(c, 'relax'))).toEqual({
      Id: 'character varying(18) not null',
      Company: 'text',
      Status: 'text not null',
      Title: 'text',
      Removed: 'text',
      Loaded: 'timestamp with time zone not null',
      Seq: 'bigint not null',
    });
    expect(logger.records.find((r) => r.message === 'Evolved table')?.attributes).toMatchObject({
      table: 'public.relax',
      relaxed: ['Company', 'Title', 'Removed'],
    });
    await pool.query(`INSERT INTO relax ("Id", "Status") VALUES ('00Q1', 'Open')`);

    // Nothing left to relax: no DDL, so no lock on the table.
    const again = await ensure({
      table: 'relax',
      columns: [col('Id', 'character varying(18)', true), col('Status', 'text', false)],
      primaryKey: ['Id'],
    });
    expect(again).toEqual({ created: false, added: [], widened: [], keptWider: [], relaxed: [] });
  });

  it('widens types in place and keeps the data', async () => {
    await ensure({
      table: 'widen',
      columns: [col('k', 'integer'), col('v', 'character varying(10)'), col('n', 'smallint'), col('m', 'numeric(10,2)'), col('r', 'real'), col('i', 'integer')],
      primaryKey: ['k'],
    }); // prettier-ignore
    await pool.query(`INSERT INTO widen VALUES (1, 'abcdefghij', 32000, 12345678.91, 1.5, 2000000000)`);
    const result = await ensure({
      table: 'widen',
      columns: [col('k', 'integer'), col('v', 'text'), col('n', 'bigint'), col('m', 'numeric(18,0)'), col('r', 'double precision'), col('i', 'numeric')],
      primaryKey: ['k'],
    }); // prettier-ignore
    expect(result.widened).toEqual([
      { column: 'v', from: 'character varying(10)', to: 'text' },
      { column: 'n', from: 'smallint', to: 'bigint' },
      { column: 'm', from: 'numeric(10,2)', to: 'numeric(20,2)' },
      { column: 'r', from: 'real', to: 'double precision' },
      { column: 'i', from: 'integer', to: 'numeric' },
    ]);
    const { rows } = await pool.query('SELECT v, n::text, m::text, r::text, i::text FROM widen');
    expect(rows).toEqual([{ v: 'abcdefghij', n: '32000', m: '12345678.91', r: '1.5', i: '2000000000' }]);
    await pool.query(
      `INSERT INTO widen VALUES (2, repeat('x', 100), 9000000000, 123456789012345678.99, 1e300, 1e30)`,
    );
  });

  it('refuses narrowing with an exact message, or keeps the wider column when asked', async () => {
    await ensure({ table: 'narrow', columns: [col('k', 'bigint'), col('v', 'character varying(40)')] });
    const err = await ensure({
      table: 'narrow',
      columns: [col('k', 'integer'), col('v', 'character varying(40)')],
    }).then(notExpected, (e: unknown) => e as Error);
    expect(err).toBeInstanceOf(TerminalError);
    expect(err.message).toBe(
      `Cannot change column "k" of table "public"."narrow" from bigint to integer: that narrows the column and could lose data (set onNarrower: 'keep' to keep the wider column)`,
    );
    const kept = await ensure({
      table: 'narrow',
      columns: [col('k', 'integer'), col('v', 'character varying(20)')],
      onNarrower: 'keep',
    });
    expect(kept.keptWider).toEqual([
      { column: 'k', from: 'bigint', to: 'integer' },
      { column: 'v', from: 'character varying(40)', to: 'character varying(20)' },
    ]);
    expect(await withClient(pool, (c) => describeTable(c, 'narrow'))).toEqual({
      k: 'bigint',
      v: 'character varying(40)',
    });
  });

  it('refuses a change of meaning (timestamp → timestamptz, date → timestamp) naming table, column and types', async () => {
    await ensure({ table: 'times', columns: [col('at', 'timestamp without time zone'), col('d', 'date')] });
    await expect(
      ensure({ table: 'times', columns: [col('at', 'timestamptz'), col('d', 'date')] }),
    ).rejects.toThrow(
      'Cannot change column "at" of table "public"."times" from timestamp without time zone to timestamp with time zone: no lossless conversion exists',
    );
    await expect(
      ensure({ table: 'times', columns: [col('at', 'timestamp'), col('d', 'timestamp')] }),
    ).rejects.toThrow(
      'Cannot change column "d" of table "public"."times" from date to timestamp without time zone',
    );
  });

  it('refuses a key that differs from the existing primary key', async () => {
    await ensure({ table: 'keyed', columns: [col('a', 'text', false), col('b', 'text')], primaryKey: ['a'] });
    await expect(
      ensure({
        table: 'keyed',
        columns: [col('a', 'text', false), col('b', 'text', false)],
        primaryKey: ['b'],
      }),
    ).rejects.toThrow(
      `Table "public"."keyed" has primary key (a) but the task's key is (b): change the key back or migrate the table by hand`,
    );
  });

  it('creates a missing schema and refuses a view where a table is expected', async () => {
    await withClient(pool, (c) =>
      ensureTable(c, { schema: 'new schema', table: 't', columns: [col('x', 'text')] }),
    );
    const { rows } = await pool.query(`SELECT to_regclass('"new schema".t') IS NOT NULL AS ok`);
    expect(rows[0]).toEqual({ ok: true });
    await pool.query('CREATE VIEW a_view AS SELECT 1 AS x');
    await expect(ensure({ table: 'a_view', columns: [col('x', 'integer')] })).rejects.toThrow(
      '"public"."a_view" exists but is not a table (relkind v)',
    );
  });
});
