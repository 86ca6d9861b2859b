/**
 * `reconcileMissingRows`, after a full read: the rows the read did not return go (or are flagged),
 * except those changed at or after the read's start, which an overlapping run loaded meanwhile.
 */
import { Pool } from 'pg';
import { reconcileMissingRows } from '../../../lambdas/core/run-state';
import { createTestDatabase, type TestDatabase } from '../../support/database';

const READ_STARTED_AT = new Date('2024-03-01T08:00:00.000Z');

describe('reconcileMissingRows', () => {
  let db: TestDatabase;
  let pool: Pool;
  beforeAll(async () => {
    db = await createTestDatabase('rt_reconcile');
    pool = new Pool({ connectionString: db.url });
  });
  afterAll(async () => {
    await pool.end();
    await db.drop();
  });

  /** A target with rows stamped before, at and after the read's start, none of them staged but "read". */
  async function setUp(table: string): Promise<void> {
    await pool.query(
      `CREATE TABLE ${table} ("Id" text PRIMARY KEY, "SystemModstamp" timestamptz, "IsDeleted" boolean)`,
    );
    await pool.query(`CREATE TABLE ${table}_staging ("Id" text)`);
    await pool.query(
      `INSERT INTO ${table} VALUES ('read', '2024-01-01T00:00:00Z', false), ('before', '2024-03-01T07:59:59.999Z', false),
         ('at', '2024-03-01T08:00:00Z', false), ('after', '2024-03-01T08:00:01Z', false), ('unstamped', NULL, false)`,
    );
    await pool.query(`INSERT INTO ${table}_staging VALUES ('read')`);
  }
  const reconcile = (table: string, mode: 'remove' | 'flag', readStartedAt: Date | undefined) =>
    pool.connect().then(async (client) => {
      try {
        return await reconcileMissingRows(client, {
          schema: 'public',
          target: table,
          staging: `${table}_staging`,
          key: 'Id',
          mode,
          flagColumn: 'IsDeleted',
          versionColumn: 'SystemModstamp',
          readStartedAt,
        });
      } finally {
        client.release();
      }
    });
  const rows = async (table: string) =>
    (await pool.query(`SELECT "Id", "IsDeleted" FROM ${table} ORDER BY "Id"`)).rows as unknown[];

  it('removes the rows the read did not return that changed before it started, keeping those stamped at or after', async () => {
    await setUp('removed');
    expect(await reconcile('removed', 'remove', READ_STARTED_AT)).toBe(2);
    expect(await rows('removed')).toEqual([
      { Id: 'after', IsDeleted: false },
      { Id: 'at', IsDeleted: false },
      { Id: 'read', IsDeleted: false },
    ]);
  });

  it('flags the same rows with deletes flag', async () => {
    await setUp('flagged');
    expect(await reconcile('flagged', 'flag', READ_STARTED_AT)).toBe(2);
    expect(await rows('flagged')).toEqual([
      { Id: 'after', IsDeleted: false },
      { Id: 'at', IsDeleted: false },
      { Id: 'before', IsDeleted: true },
      { Id: 'read', IsDeleted: false },
      { Id: 'unstamped', IsDeleted: true },
    ]);
  });

  it('guards nothing when the read start is unknown', async () => {
    await setUp('unguarded');
    expect(await reconcile('unguarded', 'remove', undefined)).toBe(4);
    expect(await rows('unguarded')).toEqual([{ Id: 'read', IsDeleted: false }]);
  });
});
