/**
 * `postgres.schema` other than public, end to end through the CLI against the emulators and a real
 * PostgreSQL: the extracts write the example's tables there, the transform (which names its tables
 * without a schema) reads and writes them there, and the write-back reads its source there, in a
 * database whose public schema holds older tables of the same names (the pipeline ran with schema
 * public before). `roundtrip validate` tries the transform the same way.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Pool } from 'pg';
import { startDemoEnvironment, type DemoEnvironment } from '../../../bin/local/environment';
import { cli, exitOf, writeExampleConfig } from '../../support/cli';
import { createTestDatabase, type TestDatabase } from '../../support/database';

/** One line of `validate --json`'s checks. */
interface CheckLine {
  check: string;
  ok: boolean;
  skipped?: true;
  detail: string;
}

function lastJsonLine(stdout: string): unknown {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1] as string);
}

/** The leads the example's transform scores: neither deleted nor converted. */
const SCORED = `WHERE "IsDeleted" IS NOT TRUE AND "IsConverted" IS NOT TRUE`;

describe('postgres.schema other than public', () => {
  let db: TestDatabase;
  let env: DemoEnvironment;
  let pool: Pool;
  let dir: string;
  let publicConfig: string[];
  let analyticsConfig: string[];

  beforeAll(async () => {
    db = await createTestDatabase('rt_schema');
    pool = new Pool({ connectionString: db.url });
    dir = await mkdtemp(path.join(os.tmpdir(), 'roundtrip-schema-'));
    const publicFile = path.join(dir, 'public.config.json');
    const example = await writeExampleConfig(publicFile);
    env = await startDemoEnvironment({ config: example, leads: 200, customers: 100, postgresUrl: db.url });
    const secretsFile = path.join(dir, 'secrets.json');
    const secrets: Record<string, unknown> = {};
    for (const name of ['roundtrip/salesforce', 'roundtrip/postgres'])
      secrets[name] = await env.secrets.getSecret(name);
    await writeFile(secretsFile, JSON.stringify(secrets));
    // The same pipeline, its tables named without a schema (sf_lead, athena_customers,
    // lead_reverse) now in schema analytics.
    const base = JSON.parse(await readFile(publicFile, 'utf8')) as { postgres: Record<string, unknown> };
    const analyticsFile = path.join(dir, 'analytics.config.json');
    await writeFile(
      analyticsFile,
      JSON.stringify({ ...base, postgres: { ...base.postgres, schema: 'analytics' } }),
    );
    const connection = ['--secrets', secretsFile, '--aws-endpoint', env.aws.endpoint];
    publicConfig = ['--config', publicFile, ...connection];
    analyticsConfig = ['--config', analyticsFile, ...connection];

    // The pipeline's earlier tables in public, made stale: five leads left of the copy.
    const earlier = await cli(['plan', ...publicConfig, '--json']);
    expect(exitOf(earlier)).toBe(0);
    await pool.query(
      `DELETE FROM public.sf_lead WHERE "Id" NOT IN (SELECT "Id" FROM public.sf_lead ${SCORED} ORDER BY "Id" LIMIT 5)`,
    );
    await pool.query(`DELETE FROM public.lead_reverse WHERE "Id" NOT IN (SELECT "Id" FROM public.sf_lead)`);
  });
  afterAll(async () => {
    await pool?.end();
    await env?.stop();
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  /** public's tables, to show that nothing with schema analytics reads or writes them. */
  const publicTables = async (): Promise<unknown> =>
    (
      await pool.query(
        `SELECT (SELECT md5(string_agg(l::text, ',' ORDER BY "Id")) FROM public.sf_lead l) AS leads,
                (SELECT md5(string_agg(r::text, ',' ORDER BY "Id")) FROM public.lead_reverse r) AS reverse,
                (SELECT count(*)::int FROM public.lead_reverse) AS scored`,
      )
    ).rows[0];
  const count = async (sql: string): Promise<number> =>
    (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${sql}`)).rows[0]?.n ?? -1;

  it('plans with the extracts, the transform and the write-back all in schema analytics, though public has tables of the same names', async () => {
    const before = await publicTables();
    expect(before).toMatchObject({ scored: 5 });

    const result = await cli(['plan', ...analyticsConfig, '--json']);
    expect(exitOf(result)).toBe(0);
    const summary = lastJsonLine(result.stdout) as { status: string };
    expect(summary.status).toBe('succeeded');

    // The extract made analytics.sf_lead with every lead; the transform scored those, not
    // public's five, into analytics.lead_reverse, which the write-back planned from.
    expect(await count('analytics.sf_lead')).toBe(200);
    const scored = await count(`analytics.sf_lead ${SCORED}`);
    expect(scored).toBeGreaterThan(5);
    expect(await count('analytics.lead_reverse')).toBe(scored);
    expect(await count('analytics.lead_reverse r JOIN analytics.sf_lead l USING ("Id")')).toBe(scored);
    const { rows } = await pool.query<{ rows: number }>(
      `SELECT (summary->'writeback'->'Lead-update'->>'sourceRows')::int AS rows
         FROM roundtrip.runs ORDER BY started_at DESC LIMIT 1`,
    );
    expect(rows).toEqual([{ rows: scored }]);
    expect(await publicTables()).toEqual(before);
  });

  it('validate tries the transform in schema analytics too, and checks the write-back source it makes there', async () => {
    // The plan above made analytics' extract tables. Its source dropped, only the transform makes
    // it: validate must find what the transform made in analytics.
    await pool.query('DROP TABLE IF EXISTS analytics.lead_reverse');
    const before = await publicTables();
    const scored = await count(`analytics.sf_lead ${SCORED}`);

    const result = await cli(['validate', ...analyticsConfig, '--json']);
    const report = lastJsonLine(result.stdout) as { ok: boolean; checks: CheckLine[] };
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(report.checks.find((c) => c.check === 'transform')?.detail).toMatch(
      new RegExp(`^1 file, 3 statements ran \\(${scored} rows written\\) in \\d+\\.\\d s, then rolled back`),
    );
    expect(report.checks.find((c) => c.check === 'write-back Lead-update columns')).toEqual({
      check: 'write-back Lead-update columns',
      ok: true,
      detail: 'lead_reverse, as the transform leaves it, has Id (keyColumn), lead_score → LeadScore__c',
    });
    expect(result.code).toBe(0);
    const { rows } = await pool.query(`SELECT to_regclass('analytics.lead_reverse') AS made`);
    expect(rows).toEqual([{ made: null }]);
    expect(await publicTables()).toEqual(before);
  });
});
