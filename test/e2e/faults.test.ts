/**
 * The demo pipeline on a bad day: Salesforce sessions expiring every few calls, row locks on some
 * records, the first Bulk ingest job failing, Athena throttling its first calls and its first query
 * failing with an internal (retryable) error after it ran. Each run must
 * end with every lead that needed a new score either updated in Salesforce or listed in
 * roundtrip.writeback_errors, and the summary's counts must reconcile with both; the next run
 * sends what the previous one could not.
 */
import { expectedScores } from './support/expected-scores';
import { exampleConfig, startWorld, type E2eWorld } from './support/harness';

describe('the demo pipeline under faults', () => {
  let world: E2eWorld;
  beforeAll(async () => {
    world = await startWorld({
      leads: 2_000,
      customers: 1_000,
      // Bulk ingest from 100 records on, so that the push goes through a Bulk job.
      config: await exampleConfig({ bulkThreshold: 100 }),
      salesforceFaults: { sessionExpiresAfterCalls: 4, lockRowFraction: 0.02, failNextBulkJob: true },
    });
    world.env.athena.faults.throttle = 2;
    world.env.athena.faults.failNextQueries = 1;
  });
  afterAll(async () => {
    await world?.close();
  });

  /** Checks one run: every lead still needing its score is updated or listed; counts reconcile. */
  async function reconcile(
    runId: string,
    needed: Set<string>,
  ): Promise<{ updated: Set<string>; listed: Set<string> }> {
    const expected = expectedScores(world.env.leads, world.env.customers);
    const actual = world.scores();
    const updated = new Set<string>();
    world.env.leadIds.forEach((id, i) => {
      if (needed.has(id) && actual[i] === expected[i]) updated.add(id);
    });
    const { rows } = await world.local.pool.query<{ key: string }>(
      `SELECT DISTINCT key FROM roundtrip.writeback_errors WHERE run_id = $1`,
      [runId],
    );
    const listed = new Set(rows.map((r) => r.key));
    expect([...needed].filter((id) => !updated.has(id) && !listed.has(id))).toEqual([]);
    expect([...listed].filter((id) => updated.has(id) || !needed.has(id))).toEqual([]);
    return { updated, listed };
  }

  const queriesStarted = (): number =>
    world.env.athena.calls.filter((c) => c.operation === 'StartQueryExecution' && c.status === 200).length;

  let needed: Set<string>;
  let one: { updated: Set<string>; listed: Set<string> };

  it('fails the first run after listing every record of the failed Bulk job', async () => {
    const expected = expectedScores(world.env.leads, world.env.customers);
    needed = new Set(world.env.leadIds.filter((_, i) => expected[i] !== undefined));

    const startsBefore = queriesStarted();
    const first = await world.run();
    // The query that failed after running was run again by the state machine, under a new token:
    // two queries, each started twice (by its start, for its id, and by the .sync task under the
    // same token, which Athena answers with the same execution).
    expect(world.env.athena.faults.failNextQueries).toBe(0);
    expect(queriesStarted() - startsBefore).toBe(4);
    one = await reconcile(first.summary.runId, needed);
    const wb1 = first.summary.tasks.find((t) => t.kind === 'writeback');
    expect(wb1).toMatchObject({ planned: needed.size, written: one.updated.size, failed: one.listed.size });
    // The failed job's records are more than maxFailureRate (5%): the run reports, then fails.
    expect(first.summary.status).toBe('failed');
    expect(first.execution.status).toBe('failed');
    const { rows: codes } = await world.local.pool.query<{ code: string }>(
      `SELECT DISTINCT code FROM roundtrip.writeback_errors WHERE run_id = $1`,
      [first.summary.runId],
    );
    expect(codes.map((c) => c.code)).toContain('BULK_JOB_FAILED');
  });

  it('sends in the next run what the first could not, with sessions expiring and rows locked', async () => {
    const stillNeeded = new Set([...needed].filter((id) => !one.updated.has(id)));
    const second = await world.run();
    const two = await reconcile(second.summary.runId, stillNeeded);
    const wb2 = second.summary.tasks.find((t) => t.kind === 'writeback');
    expect(wb2).toMatchObject({
      planned: stillNeeded.size,
      written: two.updated.size,
      failed: two.listed.size,
    });
    expect(wb2!.written + wb2!.failed).toBe(wb2!.planned);
    expect(second.summary.status).toBe('succeeded');

    // The faults did happen: expired sessions (401) and Athena throttling (400).
    expect(world.env.salesforce.calls.count({ status: 401 })).toBeGreaterThan(0);
    expect(world.env.athena.calls.filter((c) => c.status === 400).length).toBeGreaterThan(0);
  });

  it('converges once the faults are gone: every lead has its score', async () => {
    const expected = expectedScores(world.env.leads, world.env.customers);
    world.env.salesforce.faults.clear();
    const third = await world.run();
    expect(third.summary.status).toBe('succeeded');
    expect(world.scores()).toEqual(expected.map((s) => s ?? null));
  });
});
