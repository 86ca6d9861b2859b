import type { Pool } from 'pg';
import { TerminalError } from '../../../lambdas/shared/errors';
import { createMemoryLogger } from '../../../lambdas/shared/logging';
import { MIGRATIONS, migrate, type Migration } from '../../../lambdas/connectors/postgres/migrations';
import { createPool } from '../../../lambdas/connectors/postgres/pool';
import { createTestDatabase, type TestDatabase } from '../../support/database';

/** Everything the catalog knows about a schema: relations, columns, constraints, indexes. */
async function catalogSnapshot(pool: Pool, schema: string): Promise<unknown[]> {
  const { rows } = await pool.query(
    `SELECT 'rel' AS kind, c.relname AS name, c.relkind::text AS detail, c.oid::bigint AS oid,
            c.relfilenode::bigint AS filenode
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1
     UNION ALL
     SELECT 'col', c.relname || '.' || a.attname,
            format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
              || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), ''),
            a.attnum, NULL
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE n.nspname = $1 AND a.attnum > 0 AND NOT a.attisdropped
     UNION ALL
     SELECT 'con', co.conname, pg_get_constraintdef(co.oid), co.oid::bigint, NULL
       FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace WHERE n.nspname = $1
     UNION ALL
     SELECT 'idx', i.indexname, i.indexdef, NULL, NULL FROM pg_indexes i WHERE i.schemaname = $1
     UNION ALL
     SELECT 'mig', m.version::text, m.name || ' ' || m.checksum || ' ' || m.applied_at::text, NULL, NULL
       FROM roundtrip.schema_migrations m
     ORDER BY 1, 2, 3`,
    [schema],
  );
  return rows;
}

describe('migrate', () => {
  let db: TestDatabase;
  let pool: Pool;

  beforeAll(async () => {
    db = await createTestDatabase();
    pool = createPool({ url: db.url }, { ssl: { mode: 'disable' }, max: 3 });
  });
  afterAll(async () => {
    await pool.end();
    await db.drop();
  });

  it('creates the roundtrip schema, then a second run changes nothing', async () => {
    const logger = createMemoryLogger();
    const first = await migrate(pool, { logger });
    expect(first).toEqual({ applied: MIGRATIONS.map((m) => m.version), version: MIGRATIONS.length });
    expect(logger.records.filter((r) => r.message === 'Applied migration')).toHaveLength(MIGRATIONS.length);

    const { rows: tables } = await pool.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = 'roundtrip' ORDER BY 1`,
    );
    expect(tables.map((t) => t.table_name)).toEqual([
      'extract_counts',
      'extract_jobs',
      'extract_state',
      'runs',
      'schema_migrations',
      'sync_scope',
      'sync_state',
      'table_owners',
      'task_owners',
      'writeback_errors',
      'writeback_jobs',
      'writeback_plan_pages',
      'writeback_plan_rows',
      'writeback_plans',
    ]);

    const before = await catalogSnapshot(pool, 'roundtrip');
    const second = await migrate(pool, { logger });
    const after = await catalogSnapshot(pool, 'roundtrip');
    expect(second).toEqual({ applied: [], version: MIGRATIONS.length });
    expect(after).toEqual(before);
    expect(logger.records.filter((r) => r.message === 'Applied migration')).toHaveLength(MIGRATIONS.length);
  });

  it('gives the state tables the keys and checks later steps rely on', async () => {
    await pool.query(
      `INSERT INTO roundtrip.runs (run_id, pipeline, status) VALUES ('r1', 'lead-scoring', 'running')`,
    );
    await expect(
      pool.query(`INSERT INTO roundtrip.runs (run_id, pipeline, status) VALUES ('r2', 'p', 'done')`),
    ).rejects.toThrow(/runs_status_check/);
    await pool.query(
      `INSERT INTO roundtrip.writeback_plans (run_id, task, key, seq, operation, payload, value_hash)
       VALUES ('r1', 'Lead', 'k1', 1, 'update', '{"LeadScore__c": 10}', 'h1')`,
    );
    await expect(
      pool.query(
        `INSERT INTO roundtrip.writeback_plans (run_id, task, key, seq, operation, payload, value_hash)
         VALUES ('r1', 'Lead', 'k1', 2, 'update', '{}', 'h2')`,
      ),
    ).rejects.toThrow(/writeback_plans_pkey/);
    await expect(
      pool.query(
        `INSERT INTO roundtrip.writeback_errors (run_id, task, key, stage, code, message)
         VALUES ('nope', 'Lead', 'k1', 'push', 'X', 'y')`,
      ),
    ).rejects.toThrow(/writeback_errors_run_id_fkey/);
    await pool.query(
      `INSERT INTO roundtrip.writeback_plan_pages (run_id, task, page, first_seq, rows, operation, keys, salesforce_ids, payloads, currents)
       VALUES ('r1', 'Lead', 0, 1, 1, 'update', '{k1}', '{NULL}', ARRAY['{"LeadScore__c": 10}'::jsonb], '{NULL}')`,
    );
    await expect(
      pool.query(
        `INSERT INTO roundtrip.writeback_plan_pages (run_id, task, page, first_seq, rows, operation, keys, salesforce_ids, payloads, currents)
         VALUES ('r1', 'Lead', 1, 2, 2, 'update', '{k2}', '{NULL}', ARRAY['{}'::jsonb], '{NULL}')`,
      ),
    ).rejects.toThrow(/writeback_plan_pages_check/);
    await pool.query(`DELETE FROM roundtrip.runs WHERE run_id = 'r1'`);
    const { rows } = await pool.query(
      `SELECT (SELECT count(*)::int FROM roundtrip.writeback_plans) AS n,
              (SELECT count(*)::int FROM roundtrip.writeback_plan_pages) AS pages`,
    );
    expect(rows[0]).toEqual({ n: 0, pages: 0 });
  });

  it('makes the pages of a plan stored before version 4 from its ledger, keeping the outcomes', async () => {
    const other = await createTestDatabase();
    const p = createPool({ url: other.url }, { ssl: { mode: 'disable' }, max: 2 });
    try {
      await migrate(p, { migrations: MIGRATIONS.slice(0, 3) });
      await p.query(`INSERT INTO roundtrip.runs (run_id, pipeline, status) VALUES ('old', 'p', 'running')`);
      // 1,001 records: two pages; the first record already succeeded.
      await p.query(
        `INSERT INTO roundtrip.writeback_plans (run_id, task, key, seq, salesforce_id, operation, payload, current, value_hash, status)
         SELECT 'old', 'Lead', format('k%s', lpad(i::text, 4, '0')), i, format('00Q%s', i), 'update',
                jsonb_build_object('LeadScore__c', i), CASE WHEN i = 2 THEN '{"LeadScore__c": 1}'::jsonb END, 'h',
                CASE WHEN i = 1 THEN 'succeeded' ELSE 'planned' END
           FROM generate_series(1, 1001) AS i`,
      );
      expect(await migrate(p)).toEqual({
        applied: MIGRATIONS.slice(3).map((m) => m.version),
        version: MIGRATIONS.length,
      });
      const { rows: pages } = await p.query(
        `SELECT page, first_seq::int, rows FROM roundtrip.writeback_plan_pages WHERE run_id = 'old' ORDER BY page`,
      );
      expect(pages).toEqual([
        { page: 0, first_seq: 1, rows: 1000 },
        { page: 1, first_seq: 1001, rows: 1 },
      ]);
      const { rows: differ } = await p.query(
        `SELECT count(*)::int AS n FROM roundtrip.writeback_plans l
           FULL JOIN roundtrip.writeback_plan_rows r USING (run_id, task, seq)
          WHERE l.key IS DISTINCT FROM r.key OR l.salesforce_id IS DISTINCT FROM r.salesforce_id
             OR l.payload IS DISTINCT FROM r.payload OR l.current IS DISTINCT FROM r.current`,
      );
      expect(differ[0].n).toBe(0);
      const { rows: status } = await p.query(
        `SELECT status, count(*)::int AS n FROM roundtrip.writeback_plans GROUP BY 1 ORDER BY 1`,
      );
      expect(status).toEqual([
        { status: 'planned', n: 1000 },
        { status: 'succeeded', n: 1 },
      ]);
    } finally {
      await p.end();
      await other.drop();
    }
  });

  it('lets two concurrent runs apply each migration exactly once', async () => {
    const other = await createTestDatabase();
    const p = createPool({ url: other.url }, { ssl: { mode: 'disable' }, max: 4 });
    try {
      const results = await Promise.all([migrate(p), migrate(p), migrate(p)]);
      const applied = results.flatMap((r) => r.applied).sort((a, b) => a - b);
      expect(applied).toEqual(MIGRATIONS.map((m) => m.version));
      const { rows } = await p.query('SELECT version FROM roundtrip.schema_migrations ORDER BY version');
      expect(rows.map((r: { version: number }) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
    } finally {
      await p.end();
      await other.drop();
    }
  });

  it('applies only the new version when the code adds one', async () => {
    const next: Migration[] = [
      ...MIGRATIONS,
      {
        version: MIGRATIONS.length + 1,
        name: 'test column',
        sql: 'ALTER TABLE roundtrip.runs ADD COLUMN t int',
      },
    ];
    const other = await createTestDatabase();
    const p = createPool({ url: other.url }, { ssl: { mode: 'disable' } });
    try {
      await migrate(p);
      expect(await migrate(p, { migrations: next })).toEqual({
        applied: [next.length],
        version: next.length,
      });
      expect(await migrate(p, { migrations: next })).toEqual({ applied: [], version: next.length });

      // The database is now ahead of the original code: refuse rather than guess.
      await expect(migrate(p)).rejects.toThrow(
        `Schema roundtrip is at version ${next.length}, newer than this code knows (${MIGRATIONS.length})`,
      );
    } finally {
      await p.end();
      await other.drop();
    }
  });

  it('refuses a released migration whose SQL was edited', async () => {
    const edited: Migration[] = MIGRATIONS.map((m) =>
      m.version === 1 ? { ...m, sql: `${m.sql}\n-- edited` } : m,
    );
    const err = await migrate(pool, { migrations: edited }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TerminalError);
    expect((err as Error).message).toMatch(
      /Migration 1 \(.*\) was applied with different SQL than this code has/,
    );
  });

  it('rolls back a failing migration completely and records nothing', async () => {
    const other = await createTestDatabase();
    const p = createPool({ url: other.url }, { ssl: { mode: 'disable' } });
    const broken: Migration[] = [
      ...MIGRATIONS,
      {
        version: MIGRATIONS.length + 1,
        name: 'half broken',
        sql: 'CREATE TABLE roundtrip.half (id int); SELECT * FROM roundtrip.no_such_table',
      },
    ];
    try {
      await migrate(p);
      const err = await migrate(p, { migrations: broken }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TerminalError);
      expect((err as Error).message).toContain(`applying migration ${broken.length} (half broken)`);
      expect((err as Error).message).toContain('relation "roundtrip.no_such_table" does not exist');
      const { rows } = await p.query(
        `SELECT to_regclass('roundtrip.half') AS half, (SELECT max(version) FROM roundtrip.schema_migrations) AS v`,
      );
      expect(rows[0]).toEqual({ half: null, v: MIGRATIONS.length });
    } finally {
      await p.end();
      await other.drop();
    }
  });
});
