/**
 * The ledger's statistics around a Bulk push: refreshed (ANALYZE) after a job while its rows are a
 * tenth of the rows the statistics know of or more (a first run), not after every job of a ledger
 * that a job hardly changes, where each ANALYZE read a 30,000-row sample for nothing.
 */
import { runWriteback } from '../../../lambdas/core/writeback';
import { leadSeed, startWritebackEnv, type WritebackEnv } from './support';

const LEADS = 1200;

describe('the ledger statistics of a Bulk push', () => {
  let env: WritebackEnv;
  let ids: string[];

  beforeAll(async () => {
    env = await startWritebackEnv();
    ids = env.sf.store.seed('Lead', leadSeed(LEADS));
    await env.pool.query(`CREATE TABLE lead_reverse ("Id" text, lead_score integer)`);
  });
  afterAll(async () => env?.stop());

  const update = {
    to: 'salesforce' as const,
    object: 'Lead',
    from: 'lead_reverse',
    mode: 'update' as const,
    fields: { LeadScore__c: 'lead_score' },
    bulkThreshold: 5,
  };

  /** How many times the ledger was ANALYZEd by hand (autovacuum's are counted apart). */
  async function ledgerAnalyzed(): Promise<number> {
    const { rows } = await env.pool.query<{ n: string }>(
      `SELECT analyze_count AS n FROM pg_stat_user_tables WHERE relid = 'roundtrip.writeback_plans'::regclass`,
    );
    return Number(rows[0]?.n);
  }

  it('analyzes the ledger after the jobs of a first run, and not after a small job on a ledger ten times its size', async () => {
    await env.pool.query(
      `INSERT INTO lead_reverse SELECT id, i::int % 100 FROM unnest($1::text[]) WITH ORDINALITY AS t(id, i)`,
      [ids],
    );
    const deps = env.deps({ writeback: [update] });
    const before = await ledgerAnalyzed();
    const first = await runWriteback(deps, { runId: await env.newRun(), task: 'Lead-update' });
    expect(first.result).toMatchObject({ api: 'bulk', succeeded: LEADS, failed: 0 });
    // Never analyzed before: the statistics knew of no row.
    expect(await ledgerAnalyzed()).toBeGreaterThan(before);
    const { rows } = await env.pool.query<{ n: number }>(
      `SELECT reltuples::int AS n FROM pg_class WHERE oid = 'roundtrip.writeback_plans'::regclass`,
    );
    expect(rows[0]?.n).toBe(LEADS);

    // Ten records change: one job of ten rows, on a ledger whose statistics know of 1,200.
    await env.pool.query(`UPDATE lead_reverse SET lead_score = lead_score + 1 WHERE "Id" = ANY($1)`, [
      ids.slice(0, 10),
    ]);
    const analyzed = await ledgerAnalyzed();
    const second = await runWriteback(deps, { runId: await env.newRun(), task: 'Lead-update' });
    expect(second.result).toMatchObject({ api: 'bulk', planned: 10, succeeded: 10, failed: 0 });
    expect(await ledgerAnalyzed()).toBe(analyzed);
  });
});
