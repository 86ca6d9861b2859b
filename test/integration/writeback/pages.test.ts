/**
 * Plans larger than one page (migration 4 stores a plan in pages of PLAN_PAGE_ROWS records):
 * the pages hold every planned record once and in key order (as Salesforce tells Ids apart:
 * ignoring case in their 18-character form), Collections sends a page a call (reading only that
 * page's rows of the ledger),
 * a retried push after a crash sends only what has no outcome, Bulk jobs split mid-page, and a
 * dry run writes no ledger row.
 */
import { PLAN_PAGE_ROWS, withClient } from '../../../lambdas/connectors/postgres';
import { planWriteback, pushWriteback, runWriteback } from '../../../lambdas/core/writeback';
import {
  crashingConnector,
  leadSeed,
  SCORE_UPDATE,
  scoresInSalesforce,
  startWritebackEnv,
  type WritebackEnv,
} from './support';

const LEADS = 2 * PLAN_PAGE_ROWS + 500;

const update = SCORE_UPDATE;

/** Ids in the plan's order: grouped by their upper-case 18-character form. */
function byIdentity(ids: readonly string[]): string[] {
  return [...ids].sort((a, b) =>
    a.toUpperCase() < b.toUpperCase() ? -1 : a.toUpperCase() > b.toUpperCase() ? 1 : 0,
  );
}

/** Rows the scans of `roundtrip.writeback_plans` in an `EXPLAIN (ANALYZE, FORMAT JSON)` read, kept or filtered out. */
function ledgerScanRows(plan: unknown): number {
  let read = 0;
  const visit = (node: Record<string, unknown>): void => {
    if (node['Relation Name'] === 'writeback_plans') {
      const loops = Number(node['Actual Loops'] ?? 1);
      read += (Number(node['Actual Rows'] ?? 0) + Number(node['Rows Removed by Filter'] ?? 0)) * loops;
    }
    for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? []) visit(child);
  };
  for (const entry of plan as { Plan: Record<string, unknown> }[]) visit(entry.Plan);
  return read;
}

describe('write-back plans of several pages', () => {
  let env: WritebackEnv;
  let ids: string[];

  beforeAll(async () => {
    env = await startWritebackEnv();
    ids = env.sf.store.seed('Lead', leadSeed(LEADS));
    await env.pool.query(`CREATE TABLE lead_scores ("Id" text, score integer)`);
  });
  afterAll(async () => env?.stop());

  /** Every lead's score: its index plus `bump`, mod 100. */
  async function scores(bump: number): Promise<void> {
    await env.pool.query('DELETE FROM lead_scores');
    await env.pool.query(
      `INSERT INTO lead_scores SELECT id, (i + $2) % 100 FROM unnest($1::text[]) WITH ORDINALITY AS t(id, i)`,
      [ids, bump],
    );
  }

  async function ledger(runId: string): Promise<{ status: string; n: number; seqs: number }[]> {
    const { rows } = await env.pool.query(
      `SELECT status, count(*)::int AS n, count(DISTINCT seq)::int AS seqs FROM roundtrip.writeback_plans
        WHERE run_id = $1 GROUP BY status ORDER BY status`,
      [runId],
    );
    return rows;
  }

  it('stores the plan in pages, every record once in key order, and sends a page a Composite call', async () => {
    await scores(1);
    const deps = env.deps({ writeback: [{ ...update, bulkThreshold: LEADS + 1 }] });
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'Lead-update' });

    const { rows: pages } = await env.pool.query(
      `SELECT page, first_seq::int, rows FROM roundtrip.writeback_plan_pages WHERE run_id = $1 ORDER BY page`,
      [runId],
    );
    expect(pages).toEqual([
      { page: 0, first_seq: 1, rows: PLAN_PAGE_ROWS },
      { page: 1, first_seq: PLAN_PAGE_ROWS + 1, rows: PLAN_PAGE_ROWS },
      { page: 2, first_seq: 2 * PLAN_PAGE_ROWS + 1, rows: 500 },
    ]);
    const { rows: planned } = await env.pool.query<{ key: string; seq: string }>(
      `SELECT key, seq FROM roundtrip.writeback_plan_rows WHERE run_id = $1 ORDER BY seq`,
      [runId],
    );
    expect(planned.map((r) => r.key)).toEqual(byIdentity(ids));
    expect(planned.map((r) => Number(r.seq))).toEqual(Array.from({ length: LEADS }, (_, i) => i + 1));
    // Nothing is in the ledger before the push.
    expect(await ledger(runId)).toEqual([]);

    env.sf.calls.clear();
    const result = await pushWriteback(deps, { runId, task: 'Lead-update' });

    expect(result).toMatchObject({ status: 'collected', planned: LEADS, succeeded: LEADS, failed: 0 });
    expect(env.sf.calls.count({ write: true, operation: 'composite' })).toBe(3);
    expect(await ledger(runId)).toEqual([{ status: 'succeeded', n: LEADS, seqs: LEADS }]);
    const inSalesforce = scoresInSalesforce(env);
    ids.forEach((id, i) => expect(inSalesforce.get(id)).toBe((i + 2) % 100));
  });

  it("reads, for each page it sends, only that page's rows of the ledger, whatever join the planner picks", async () => {
    await scores(5);
    const deps = env.deps({ writeback: [{ ...update, bulkThreshold: LEADS + 1 }] });
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'Lead-update' });
    // The push's reads of a page beside the ledger, recorded to be explained once it is done.
    const pageReads: { text: string; values: unknown[] }[] = [];
    const recording = new Proxy(env.pool, {
      get(pool, prop) {
        if (prop === 'query') {
          return (text: string, values: unknown[]) => {
            if (/FROM roundtrip\.writeback_plan_rows p\s+LEFT JOIN roundtrip\.writeback_plans l/.test(text))
              pageReads.push({ text, values });
            return pool.query(text, values);
          };
        }
        const value: unknown = Reflect.get(pool, prop, pool);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(pool) : value;
      },
    });

    const result = await pushWriteback({ ...deps, pg: recording }, { runId, task: 'Lead-update' });

    expect(result).toMatchObject({ status: 'collected', succeeded: LEADS });
    // One read a page (a page sent whole in one call is not read again to find it empty).
    expect(pageReads).toHaveLength(3);
    // Read again now that the run's whole ledger is written, as the last page's read sees it, with
    // the joins the planner takes when its statistics of the run's ledger are stale (it had
    // estimated the run's first call only): a read keyed on the record's key alone scanned every
    // ledger row of the run for each page, a push quadratic in its records.
    const ledgerRowsRead = await withClient(env.pool, async (client) => {
      await client.query('SET enable_nestloop = off');
      await client.query('SET enable_seqscan = off');
      const read: number[] = [];
      for (const { text, values } of pageReads) {
        const { rows } = await client.query<{ 'QUERY PLAN': unknown }>(
          `EXPLAIN (ANALYZE, FORMAT JSON) ${text}`,
          values,
        );
        read.push(ledgerScanRows(rows[0]?.['QUERY PLAN']));
      }
      await client.query('RESET ALL');
      return read;
    });
    expect(ledgerRowsRead).toEqual([PLAN_PAGE_ROWS, PLAN_PAGE_ROWS, 500]);
  });

  it('a push that crashed on its second call sends, when retried, only the records without an outcome', async () => {
    await scores(2);
    const deps = env.deps({ writeback: [{ ...update, bulkThreshold: LEADS + 1 }] });
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'Lead-update' });
    let writes = 0;
    await expect(
      pushWriteback(
        {
          ...deps,
          salesforce: crashingConnector(
            env.connector,
            (_operation, method) => method !== 'GET' && ++writes === 2,
          ),
        },
        { runId, task: 'Lead-update' },
      ),
    ).rejects.toThrow(/simulated crash/);
    // The first page has its outcome; the second was sent, its answer lost.
    expect(await ledger(runId)).toEqual([
      { status: 'sent', n: PLAN_PAGE_ROWS, seqs: PLAN_PAGE_ROWS },
      { status: 'succeeded', n: PLAN_PAGE_ROWS, seqs: PLAN_PAGE_ROWS },
    ]);

    env.sf.calls.clear();
    const retried = await pushWriteback(deps, { runId, task: 'Lead-update' });

    expect(retried).toMatchObject({ planned: LEADS, succeeded: LEADS, failed: 0 });
    // The sent page again (an update sends the same values: idempotent) and the last page.
    const sent = env.sf.calls.writes().reduce((sum, c) => sum + (c.records ?? 0), 0);
    expect(env.sf.calls.count({ write: true, operation: 'composite' })).toBe(2);
    expect(sent).toBe(LEADS - PLAN_PAGE_ROWS);
    expect(await ledger(runId)).toEqual([{ status: 'succeeded', n: LEADS, seqs: LEADS }]);
  });

  it('splits a Bulk push into jobs that end inside pages, and sends each record once', async () => {
    await scores(3);
    const deps = env.deps({ writeback: [{ ...update, bulkThreshold: 100 }] });
    const runId = await env.newRun();
    env.sf.calls.clear();

    const { result } = await runWriteback(deps, { runId, task: 'Lead-update' }, { maxJobBytes: 70_000 });

    expect(result).toMatchObject({ api: 'bulk', planned: LEADS, succeeded: LEADS, failed: 0 });
    const { rows: jobs } = await env.pool.query<{ first_seq: string; last_seq: string; rows: number }>(
      `SELECT first_seq, last_seq, rows FROM roundtrip.writeback_jobs WHERE run_id = $1 ORDER BY chunk`,
      [runId],
    );
    expect(jobs.length).toBeGreaterThan(2);
    expect(jobs.some((j) => Number(j.last_seq) % PLAN_PAGE_ROWS !== 0 && Number(j.last_seq) !== LEADS)).toBe(
      true,
    );
    expect(jobs.reduce((sum, j) => sum + j.rows, 0)).toBe(LEADS);
    // Salesforce's own count of the records its jobs processed: each record once.
    const { rows: processed } = await env.pool.query(
      `SELECT sum(records_processed)::int AS n FROM roundtrip.writeback_jobs WHERE run_id = $1`,
      [runId],
    );
    expect(processed[0].n).toBe(LEADS);
    const { rows: perJob } = await env.pool.query(
      `SELECT count(*)::int AS n FROM roundtrip.writeback_plans l
         JOIN roundtrip.writeback_jobs j ON j.run_id = l.run_id AND j.job_id = l.job_id
        WHERE l.run_id = $1 AND l.seq BETWEEN j.first_seq AND j.last_seq AND l.status = 'succeeded'`,
      [runId],
    );
    expect(perJob[0].n).toBe(LEADS);
    const inSalesforce = scoresInSalesforce(env);
    ids.forEach((id, i) => expect(inSalesforce.get(id)).toBe((i + 4) % 100));
  });

  it('plans a source whose key column is unique (NULLs allowed), rejecting each row without a key', async () => {
    await env.pool.query(`CREATE TABLE unique_scores ("Id" text UNIQUE, score integer)`);
    await env.pool.query(
      `INSERT INTO unique_scores SELECT id, (i + 5) % 100 FROM unnest($1::text[]) WITH ORDINALITY AS t(id, i)`,
      [ids],
    );
    await env.pool.query(`INSERT INTO unique_scores VALUES (NULL, 1), (NULL, 2), ('  ', 3)`);
    const deps = env.deps({ writeback: [{ ...update, from: 'unique_scores' }] });
    const runId = await env.newRun();

    const plan = await planWriteback(deps, { runId, task: 'Lead-update', dryRun: true });

    expect(plan).toMatchObject({ sourceRows: LEADS + 3, rejected: 3, changed: LEADS });
    const { rows: errors } = await env.pool.query(
      `SELECT key, code FROM roundtrip.writeback_errors WHERE run_id = $1 ORDER BY key NULLS LAST`,
      [runId],
    );
    expect(errors).toEqual([
      { key: '  ', code: 'MISSING_KEY' },
      { key: null, code: 'MISSING_KEY' },
      { key: null, code: 'MISSING_KEY' },
    ]);
    const { rows: planned } = await env.pool.query(
      `SELECT count(DISTINCT key)::int AS keys, min(seq)::int AS first, max(seq)::int AS last
         FROM roundtrip.writeback_plan_rows WHERE run_id = $1`,
      [runId],
    );
    expect(planned[0]).toEqual({ keys: LEADS, first: 1, last: LEADS });
  });

  it('a dry run of several pages samples the first records and writes no ledger row', async () => {
    await scores(4);
    const deps = env.deps({ writeback: [update] });
    const runId = await env.newRun();
    env.sf.calls.clear();

    const plan = await planWriteback(deps, { runId, task: 'Lead-update', dryRun: true });

    expect(plan).toMatchObject({ status: 'dry-run', changed: LEADS });
    const first = byIdentity(ids).slice(0, 10);
    expect(plan.sample?.map((r) => r.key)).toEqual(first);
    expect(plan.sample?.[0]).toMatchObject({
      current: { LeadScore__c: (ids.indexOf(first[0] as string) + 4) % 100 },
    });
    expect(await ledger(runId)).toEqual([]);
    expect(env.sf.calls.count({ write: true })).toBe(0);
  });
});
