import { Readable } from 'node:stream';
import type { Pool } from 'pg';
import { TerminalError } from '../../../lambdas/shared/errors';
import { createMemoryLogger } from '../../../lambdas/shared/logging';
import { copyIntoStaging, dropStagingTable } from '../../../lambdas/connectors/postgres/copy';
import { ensureTable } from '../../../lambdas/connectors/postgres/ddl';
import { loadIntoTable } from '../../../lambdas/connectors/postgres/load';
import { mergeStaging } from '../../../lambdas/connectors/postgres/merge';
import { migrate } from '../../../lambdas/connectors/postgres/migrations';
import { createPool, withClient, withTransaction } from '../../../lambdas/connectors/postgres/pool';
import { pgColumnForSalesforceField, type PgColumn } from '../../../lambdas/connectors/postgres/types';
import { readWatermark } from '../../../lambdas/connectors/postgres/watermark';
import { createTestDatabase, type TestDatabase } from '../../support/database';

const COLUMNS: PgColumn[] = [
  pgColumnForSalesforceField({ name: 'Id', type: 'id', nillable: false }),
  pgColumnForSalesforceField({ name: 'Email', type: 'email' }),
  pgColumnForSalesforceField({ name: 'IsDeleted', type: 'boolean', nillable: false }),
];

describe('loadIntoTable', () => {
  let db: TestDatabase;
  let pool: Pool;
  beforeAll(async () => {
    db = await createTestDatabase();
    pool = createPool({ url: db.url }, { ssl: { mode: 'disable' } });
    await migrate(pool);
  });
  afterAll(async () => {
    await pool.end();
    await db.drop();
  });

  it('creates, merges and advances the watermark in one call; a second run evolves and merges', async () => {
    const logger = createMemoryLogger();
    const first = await loadIntoTable(pool, {
      schema: 'public',
      table: 'sf_lead',
      columns: COLUMNS,
      runId: 'run-1',
      source: Readable.from(['"Id","Email","IsDeleted"\n"A","a@x","false"\n"B","","false"\n']),
      header: 'match',
      quotedEmptyIsNull: true,
      mode: 'merge',
      key: ['Id'],
      watermark: { task: 'Lead', watermark: '2024-05-20T20:49:32.000Z', watermarkId: 'B' },
      logger,
    });
    expect(first).toMatchObject({
      table: { created: true },
      rows: 2,
      merge: { inserted: 2, updated: 0 },
      watermark: { task: 'Lead', watermarkId: 'B', lastRunId: 'run-1', rowsTotal: 2 },
    });
    expect(logger.records.find((r) => r.message === 'Loaded table')?.attributes).toMatchObject({
      table: 'public.sf_lead',
      runId: 'run-1',
      rows: 2,
    });

    const withScore = [
      ...COLUMNS,
      pgColumnForSalesforceField({ name: 'Score__c', type: 'double', precision: 5, scale: 1 }),
    ];
    const second = await loadIntoTable(pool, {
      schema: 'public',
      table: 'sf_lead',
      columns: withScore,
      runId: 'run-2',
      source: Readable.from([
        '"Id","Email","IsDeleted","Score__c"\n"A","a@x","true",""\n"C","c@x","false","9.5"\n',
      ]),
      header: true,
      quotedEmptyIsNull: true,
      mode: 'merge',
      key: ['Id'],
      deletes: { mode: 'remove', flagColumn: 'IsDeleted' },
      watermark: { task: 'Lead', watermark: '2024-05-21T00:00:00.000Z', watermarkId: 'C' },
    });
    expect(second).toMatchObject({
      table: { created: false, added: ['Score__c'] },
      merge: { staged: 2, inserted: 1, deleted: 1 },
      watermark: { watermarkId: 'C', rowsTotal: 4 },
    });
    const { rows } = await pool.query('SELECT "Id", "Email", "Score__c"::text AS s FROM sf_lead ORDER BY 1');
    expect(rows).toEqual([
      { Id: 'B', Email: null, s: null },
      { Id: 'C', Email: 'c@x', s: '9.5' },
    ]);
  });

  it('replaces a table for a full refresh, and refuses merge without a key', async () => {
    const columns: PgColumn[] = [{ name: 'email', pgType: 'text', nullable: true }];
    const load = (body: string) =>
      loadIntoTable(pool, {
        schema: 'public',
        table: 'customers',
        columns,
        runId: 'r',
        source: Readable.from([body]),
        header: true,
        mode: 'replace',
      });
    await load('email\na\nb\n');
    expect(await load('email\nc\n')).toMatchObject({ rows: 1, replace: { removed: 2, inserted: 1 } });
    const { rows } = await pool.query('SELECT email FROM customers');
    expect(rows).toEqual([{ email: 'c' }]);
    // The rows are all replaced, so the column takes the declared type, text → integer.
    const retyped = await loadIntoTable(pool, {
      schema: 'public',
      table: 'customers',
      columns: [{ name: 'email', pgType: 'integer', nullable: true }],
      runId: 'r',
      source: Readable.from(['email\n7\n8\n']),
      header: true,
      mode: 'replace',
    });
    expect(retyped).toMatchObject({
      table: { retyped: [{ column: 'email', from: 'text', to: 'integer' }] },
      replace: { removed: 1, inserted: 2 },
    });
    expect((await pool.query('SELECT email FROM customers ORDER BY email')).rows).toEqual([
      { email: 7 },
      { email: 8 },
    ]);
    await pool.query('DROP TABLE customers');

    await expect(
      loadIntoTable(pool, {
        schema: 'public',
        table: 'customers',
        columns,
        runId: 'r',
        source: Readable.from(['']),
        header: true,
        mode: 'merge',
      }),
    ).rejects.toThrow(new TerminalError("Load into public.customers: mode 'merge' needs a key"));
  });

  it('leaves no table, staging or watermark behind when the first load fails on bad data', async () => {
    const err = await loadIntoTable(pool, {
      schema: 'public',
      table: 'never_made',
      columns: COLUMNS,
      runId: 'bad',
      source: Readable.from(['"Id","Email","IsDeleted"\n"A","a@x","maybe"\n']),
      header: true,
      mode: 'merge',
      key: ['Id'],
      watermark: { task: 'Never', watermark: '2024-01-01T00:00:00Z' },
    }).then(
      () => new Error('expected a rejection'),
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(TerminalError);
    expect(err.message).toContain('invalid input syntax for type boolean: "maybe"');
    const { rows } = await pool.query(
      `SELECT count(*)::int AS n FROM pg_class WHERE relname LIKE 'never_made%'`,
    );
    expect(rows[0]).toEqual({ n: 0 });
    expect(await withClient(pool, (c) => readWatermark(c, 'Never'))).toBeUndefined();
  });

  it('appends pages into one staging table across transactions; the last duplicate wins at merge', async () => {
    const page = (body: string, append: boolean) =>
      withTransaction(pool, (client) =>
        copyIntoStaging(client, {
          schema: 'public',
          target: 'paged',
          runId: 'p1',
          columns: COLUMNS,
          source: Readable.from([body]),
          format: 'csv',
          header: true,
          append,
        }),
      );
    await withClient(pool, (c) =>
      ensureTable(c, { schema: 'public', table: 'paged', columns: COLUMNS, primaryKey: ['Id'] }),
    );
    const a = await page('Id,Email,IsDeleted\nA,old@x,false\nB,b@x,false\n', false);
    const b = await page('Id,Email,IsDeleted\nA,new@x,false\n', true);
    expect([a.rows, b.rows, a.staging]).toEqual([2, 1, b.staging]);
    const merged = await withTransaction(pool, async (client) => {
      const result = await mergeStaging(client, {
        schema: 'public',
        target: 'paged',
        staging: a.staging,
        columns: COLUMNS,
        key: ['Id'],
      });
      await dropStagingTable(client, 'public', a.staging);
      return result;
    });
    expect(merged).toMatchObject({ staged: 2, inserted: 2 });
    const { rows } = await pool.query('SELECT "Id", "Email" FROM paged ORDER BY 1');
    expect(rows).toEqual([
      { Id: 'A', Email: 'new@x' },
      { Id: 'B', Email: 'b@x' },
    ]);
  });
});
