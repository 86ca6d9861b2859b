import type { Pool, PoolClient } from 'pg';
import { TerminalError } from '../../../lambdas/shared/errors';
import { ensureTable, type EnsureTableOptions } from '../../../lambdas/connectors/postgres/ddl';
import { createPool, inTransaction, withClient } from '../../../lambdas/connectors/postgres/pool';
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
    expect(first).toEqual({
      created: true,
      added: [],
      widened: [],
      keptWider: [],
      relaxed: [],
      retyped: [],
      cleared: 0,
      primaryKey: { constraint: undefined, columns: ['Id'] },
    });
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
    expect(second).toEqual({
      created: false,
      added: ['Score__c'],
      widened: [],
      keptWider: [],
      relaxed: [],
      retyped: [],
      cleared: 0,
      primaryKey: { constraint: 'lead_pkey', columns: ['Id'] },
    });
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
    expect(again).toEqual({
      created: false,
      added: [],
      widened: [],
      keptWider: [],
      relaxed: [],
      retyped: [],
      cleared: 0,
      primaryKey: { constraint: 'relax_pkey', columns: ['Id'] },
    });
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

  it('widens every type to text, its values as text that reads back exactly, whatever the session’s output settings', async () => {
    const types: [name: string, type: string, value: string, text: string][] = [
      ['d', 'date', `'2026-04-05'`, '2026-04-05'],
      ['ts', 'timestamp without time zone', `'2026-04-05 10:00:00.5'`, '2026-04-05 10:00:00.5'],
      ['tz', 'timestamp with time zone', `'2026-04-05 10:00:00+02'`, '2026-04-05 08:00:00+00'],
      ['t', 'time without time zone', `'12:34:56.789'`, '12:34:56.789'],
      ['b', 'boolean', 'true', 'true'],
      ['n', 'numeric(12,3)', '1.5', '1.500'],
      ['i', 'bigint', '-9223372036854775808', '-9223372036854775808'],
      ['f', 'double precision', '0.1::float8 + 0.2::float8', '0.30000000000000004'],
      ['r', 'real', `'3.4028235e+38'::real`, '3.4028235e+38'],
      ['j', 'jsonb', `'{"b": 1, "a": [true]}'`, '{"a": [true], "b": 1}'],
      ['x', 'bytea', `'\\xdead00'`, '\\xdead00'],
      ['v', 'interval', `'1 day 02:00:00'`, '1 day 02:00:00'],
    ];
    const columns = types.map(([name, type]) => col(name, type));
    await ensure({ table: 'to_text', columns: [col('k', 'integer'), ...columns], primaryKey: ['k'] });
    await pool.query(`INSERT INTO to_text VALUES (1, ${types.map(([, , value]) => value).join(', ')})`);
    const result = await withClient(pool, async (c) => {
      // Output settings that print other text, or lose a float's last digits (extra_float_digits 0).
      await c.query(`SET DateStyle = 'SQL, DMY'`);
      await c.query(`SET IntervalStyle = 'sql_standard'`);
      await c.query('SET extra_float_digits = 0');
      await c.query(`SET bytea_output = 'escape'`);
      await c.query(`SET TimeZone = 'UTC'`);
      try {
        return await inTransaction(c, () =>
          ensureTable(c, {
            schema: 'public',
            table: 'to_text',
            columns: [col('k', 'integer'), ...types.map(([name]) => col(name, 'text'))],
            primaryKey: ['k'],
          }),
        );
      } finally {
        await c.query('RESET ALL');
      }
    });
    expect(result.widened).toEqual(types.map(([name, type]) => ({ column: name, from: type, to: 'text' })));
    const { rows } = await pool.query<Record<string, string>>(
      `SELECT ${types.map(([name]) => name).join(', ')} FROM to_text`,
    );
    expect(rows).toEqual([Object.fromEntries(types.map(([name, , , text]) => [name, text]))]);
    // Each text reads back as the value it came from.
    const { rows: same } = await pool.query<Record<string, boolean>>(
      `SELECT ${types.map(([name, type, value]) => `${name}::${type} = (${value})::${type} AS ${name}`).join(', ')} FROM to_text`,
    );
    expect(same).toEqual([Object.fromEntries(types.map(([name]) => [name, true]))]);
    // Back to date: the text column is kept, or refused as narrowing.
    await expect(
      ensure({ table: 'to_text', columns: [col('k', 'integer'), col('d', 'date')], primaryKey: ['k'] }),
    ).rejects.toThrow(
      'Cannot change column "d" of table "public"."to_text" from text to date: that narrows the column',
    );
  });

  it('keeps a text column the source sends dates for again, and the load’s dates go in as ISO text whatever the session’s DateStyle', async () => {
    await ensure({ table: 'kept_text', columns: [col('k', 'integer'), col('d', 'text')], primaryKey: ['k'] });
    const kept = await withClient(pool, async (c) => {
      await c.query(`SET DateStyle = 'SQL, DMY'`);
      try {
        return await inTransaction(c, async () => {
          const result = await ensureTable(c, {
            schema: 'public',
            table: 'kept_text',
            columns: [col('k', 'integer'), col('d', 'date')],
            primaryKey: ['k'],
            onNarrower: 'keep',
          });
          // What the merge does: staged dates into the text column, in the same transaction.
          await c.query(`INSERT INTO kept_text SELECT 1, '2026-04-05'::date`);
          return result;
        });
      } finally {
        await c.query('RESET ALL');
      }
    });
    expect(kept.keptWider).toEqual([{ column: 'd', from: 'text', to: 'date' }]);
    expect((await pool.query('SELECT d FROM kept_text')).rows).toEqual([{ d: '2026-04-05' }]);
  });

  it('gives a table whose rows are all replaced the declared types as they are, after deleting its rows, keeping its OID', async () => {
    await ensure({ table: 'replaced', columns: [col('a', 'text'), col('b', 'bigint'), col('c', 'text')] });
    await pool.query(`INSERT INTO replaced VALUES ('05/04/2026', 1, 'x'), ('2026-04-01', 2, 'y')`);
    await pool.query('CREATE VIEW replaced_c AS SELECT c FROM replaced');
    const { rows: before } = await pool.query(`SELECT 'replaced'::regclass::oid AS oid`);
    const logger = createMemoryLogger();
    const result = await withClient(pool, (c) =>
      inTransaction(c, () =>
        ensureTable(c, {
          schema: 'public',
          table: 'replaced',
          columns: [col('a', 'date'), col('b', 'integer'), col('c', 'text')],
          replacesRows: true,
          logger,
        }),
      ),
    );
    expect(result).toMatchObject({
      retyped: [
        { column: 'a', from: 'text', to: 'date' },
        { column: 'b', from: 'bigint', to: 'integer' },
      ],
      cleared: 2,
      widened: [],
      keptWider: [],
    });
    expect(await withClient(pool, (c) => describeTable(c, 'replaced'))).toEqual({
      a: 'date',
      b: 'integer',
      c: 'text',
    });
    expect((await pool.query('SELECT * FROM replaced')).rows).toEqual([]);
    expect((await pool.query(`SELECT 'replaced'::regclass::oid AS oid`)).rows).toEqual(before);
    expect((await pool.query('SELECT * FROM replaced_c')).rows).toEqual([]);
    expect(logger.records).toContainEqual(
      expect.objectContaining({
        message: 'Evolved table',
        attributes: expect.objectContaining({ cleared: 2 }) as unknown,
      }),
    );
    // A view on a column to retype: refused by name, nothing deleted.
    await pool.query(`INSERT INTO replaced VALUES ('2026-04-01', 2, 'y')`);
    await expect(
      ensure({
        table: 'replaced',
        columns: [col('a', 'date'), col('b', 'integer'), col('c', 'jsonb')],
        replacesRows: true,
        owner: 'Extract task r',
      }),
    ).rejects.toThrow(
      'Extract task r: cannot change column "c" of table "public"."replaced" from text to jsonb: view "public"."replaced_c" uses it',
    );
    expect((await pool.query('SELECT count(*)::int AS n FROM replaced')).rows).toEqual([{ n: 1 }]);
  });

  it('refuses a widening a view stands in the way of, even one PostgreSQL does without a rewrite (varchar(n) → text), naming the view', async () => {
    await ensure({ table: 'viewed', columns: [col('v', 'character varying(10)'), col('w', 'smallint')] });
    await pool.query('CREATE MATERIALIZED VIEW viewed_v AS SELECT v FROM viewed');
    await expect(
      ensure({ table: 'viewed', columns: [col('v', 'text'), col('w', 'smallint')] }),
    ).rejects.toThrow(
      new TerminalError(
        'Cannot change column "v" of table "public"."viewed" from character varying(10) to text: ' +
          'materialized view "public"."viewed_v" uses it, and PostgreSQL cannot change the type of a column a view uses; ' +
          'drop the view and create it again after this load, or have the source send character varying(10) again',
      ),
    );
    // Every view in the way is named: those on the first column, then the others.
    await pool.query('CREATE VIEW viewed_both AS SELECT v, w FROM viewed');
    await expect(
      ensure({ table: 'viewed', columns: [col('v', 'text'), col('w', 'integer')], owner: 'Extract task t' }),
    ).rejects.toThrow(
      'Extract task t: cannot change column "v" of table "public"."viewed" from character varying(10) to text: ' +
        'view "public"."viewed_both", materialized view "public"."viewed_v" use it, and PostgreSQL cannot change ' +
        'the type of a column a view uses; drop the views and create them again after this load, or have the source ' +
        'send character varying(10) again (also in the way: view "public"."viewed_both" on "w")',
    );
    expect(await withClient(pool, (c) => describeTable(c, 'viewed'))).toEqual({
      v: 'character varying(10)',
      w: 'smallint',
    });
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
      `Table "public"."keyed" has primary key (a) but the task's key is (b): the load merges rows by the task's key, which must be the table's primary key. Either set the key back to (a), or change the table's key to the task's (ALTER TABLE "public"."keyed" DROP CONSTRAINT "keyed_pkey", ADD PRIMARY KEY ("b"); refused while a key repeats or is NULL); the table was left as it was`,
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
