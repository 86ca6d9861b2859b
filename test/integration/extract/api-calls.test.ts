/**
 * A Salesforce extract's API calls, over all its steps and their attempts, in the run's summary
 * (`summary.extract.<task>.apiCalls`) — also when a step fails: a Bulk job that ends Failed, one
 * still running when the polls run out, a REST read refused half-way. Each step adds its own calls
 * once: a retried step adds to what the attempts before it recorded, and what an earlier step
 * answered is not added again. The Report says them, and the CLI's tables sum them.
 */
import type { Pool } from 'pg';
import {
  checkSalesforceExtract,
  extractSalesforce,
  prepare,
  runSalesforceTask,
  type CoreDeps,
  type SalesforceExtractOutput,
} from '../../../lambdas/core';
import { reportRun } from '../../../lambdas/core/writeback';
import { classifyPostgresError } from '../../../lambdas/connectors/postgres';
import { TerminalError, TransientError } from '../../../lambdas/shared/errors';
import { readStoredRun, taskSummaries } from '../../../bin/local/summary';
import { LEAD_FIELDS, leads, startExtractHarness, type ExtractHarness } from './harness';

const ROWS = 600;
/** The emulator's operations that sign in or out: not API calls (the connector does not count them). */
const SIGN_IN = new Set(['login', 'logout', 'oauth.token', 'oauth.authorize', 'oauth.revoke']);

describe('Salesforce extract API calls in the run summary', () => {
  let h: ExtractHarness;
  const config = () =>
    h.config([
      {
        from: 'salesforce',
        object: 'Lead',
        name: 'LeadRest',
        fields: LEAD_FIELDS,
        table: 'sf_lead_rest',
        bulkThreshold: 100_000,
      },
      {
        from: 'salesforce',
        object: 'Lead',
        name: 'LeadBulk',
        fields: LEAD_FIELDS,
        table: 'sf_lead_bulk',
        bulkThreshold: 1,
      },
    ]);

  beforeAll(async () => {
    h = await startExtractHarness({ seed: { Lead: leads(ROWS) } });
  });
  afterEach(() => {
    // The allowance is not a fault that clear() switches off.
    h.sf.faults.set({ dailyApiLimit: 15_000 });
    h.sf.faults.clear();
  });
  afterAll(() => h.close());

  /** The emulator's newest call so far, to count the calls after it. */
  const lastCall = (): number => h.sf.calls.all().at(-1)?.seq ?? 0;
  /** The API calls sent to Salesforce after `since` (refused ones too: they were sent). */
  const sentSince = (since: number): number =>
    h.sf.calls.all().filter((c) => c.seq > since && !SIGN_IN.has(c.operation)).length;
  /** The task's calls as the run's summary holds them. */
  const recorded = async (runId: string, task: string): Promise<number | null> => {
    const [row] = await h.rows<{ n: number | null }>(
      `SELECT (summary->'extract'->$2->>'apiCalls')::int AS n FROM roundtrip.runs WHERE run_id = $1`,
      [runId, task],
    );
    return row?.n ?? null;
  };
  async function prepared(deps: CoreDeps, task: string): Promise<string> {
    return (await prepare({ input: { tasks: [task] } }, deps)).runId;
  }

  it("records a Bulk extract's calls when its job ends Failed, and the Report and the CLI's tables count them", async () => {
    const deps = h.deps(config());
    const runId = await prepared(deps, 'LeadBulk');
    const since = lastCall();
    h.sf.faults.set({ failNextBulkJob: 'InvalidBatch : Field name not found : Nope__c' });

    const failed = runSalesforceTask(deps, runId, 'LeadBulk', false);

    await expect(failed).rejects.toThrow(
      /^Salesforce Bulk query job 750\w+ of extract task LeadBulk ended Failed: InvalidBatch : Field name not found : Nope__c$/,
    );
    // The job's creation and its poll (the COUNT() is Prepare's, which the extract reuses; the
    // describe is Prepare's too, with no table yet and a count past bulkThreshold, and cached in
    // the connector the extract shares here).
    const spent = sentSince(since);
    expect(h.sf.calls.count({ operation: 'bulk.query.poll' })).toBeGreaterThan(0);
    expect(spent).toBe(2);
    expect(await recorded(runId, 'LeadBulk')).toBe(spent);

    const report = await reportRun(deps, {
      runId,
      error: { Error: 'TerminalError', Cause: 'Salesforce Bulk query job … ended Failed' },
    });
    expect(report.extract).toEqual({ LeadBulk: { apiCalls: spent } });
    const stored = await readStoredRun(h.pool as unknown as Pool, runId);
    if (!stored) throw new Error(`run ${runId} not found`);
    const rows = taskSummaries(config(), stored);
    expect(rows.find((t) => t.task === 'LeadBulk')).toMatchObject({
      kind: 'extract',
      rowsRead: 0,
      apiCalls: spent,
    });
    // What `roundtrip status` sums: Prepare's and the failed extract's.
    const prepareCalls = rows.find((t) => t.kind === 'prepare')?.apiCalls ?? 0;
    expect(prepareCalls).toBeGreaterThan(0);
    expect(rows.reduce((n, t) => n + t.apiCalls, 0)).toBe(prepareCalls + spent);
  });

  it('records the create and every poll of a Bulk job still running when the polls run out', async () => {
    const deps = h.deps(config());
    const runId = await prepared(deps, 'LeadBulk');
    const since = lastCall();
    h.sf.faults.set({ bulkJobDelayMs: 600_000 });

    const failed = runSalesforceTask(deps, runId, 'LeadBulk', false, { maxBulkPolls: 5 });

    await expect(failed).rejects.toThrow(
      /^Salesforce Bulk query job 750\w+ of extract task LeadBulk was still InProgress after 5 polls: aborted$/,
    );
    // The create, five polls and the abort (the COUNT() and the describe are Prepare's, as above).
    expect(sentSince(since)).toBe(7);
    expect(await recorded(runId, 'LeadBulk')).toBe(7);
    // Each poll that found the job running said so at info, with how far Salesforce got.
    const polls = h.logger.records.filter((r) => r.message === 'Salesforce Bulk query job still running');
    expect(polls.slice(-4).map((r) => [r.level, r.attributes.poll, r.attributes.state])).toEqual([
      ['info', 1, 'InProgress'],
      ['info', 2, 'InProgress'],
      ['info', 3, 'InProgress'],
      ['info', 4, 'InProgress'],
    ]);
    expect(polls.at(-1)?.attributes).toMatchObject({
      recordsProcessed: expect.any(Number),
      nextPollInSeconds: expect.any(Number),
    });
  });

  it('records the calls of a REST extract refused half-way, and a retry adds its own to them', async () => {
    const deps = h.deps(config());
    const runId = await prepared(deps, 'LeadRest');
    const since = lastCall();
    // The describe and the first two of three pages are allowed (the COUNT() is Prepare's, which
    // the extract reuses); the third is refused.
    h.sf.resetApiUsage();
    h.sf.faults.set({ dailyApiLimit: 3 });
    const options = { restBatchSize: 200 };

    const failed = extractSalesforce({ runId, task: 'LeadRest', full: false }, h.deps(config()), options);

    await expect(failed).rejects.toThrow(/REQUEST_LIMIT_EXCEEDED/);
    expect(h.sf.calls.count({ operation: 'queryMore', status: 403 })).toBe(1);
    const first = sentSince(since);
    expect(first).toBe(4);
    expect(await recorded(runId, 'LeadRest')).toBe(first);
    // The load rolled back: not even the table was created.
    expect(await h.rows(`SELECT to_regclass('public.sf_lead_rest')::text AS t`)).toEqual([{ t: null }]);

    // The state machine retries the step (in another container: another connector).
    h.sf.faults.set({ dailyApiLimit: 15_000 });
    const retried = await extractSalesforce(
      { runId, task: 'LeadRest', full: false },
      h.deps(config()),
      options,
    );

    expect(retried).toMatchObject({ status: 'loaded', api: 'rest', rows: ROWS, inserted: ROWS });
    const all = sentSince(since);
    // The retry's describe (another connector) and three pages: the COUNT() is still Prepare's.
    expect(all).toBe(first + 4);
    expect(retried.apiCalls).toBe(all);
    expect(await recorded(runId, 'LeadRest')).toBe(all);
  });

  it('adds the calls of a retried check to those of the start and the failed attempt, counting none twice', async () => {
    const deps = h.deps(config());
    const runId = await prepared(deps, 'LeadBulk');
    const since = lastCall();
    const options = { bulkResultPageRecords: 250, bulkResultPageAttempts: 1 };
    const started = await extractSalesforce({ runId, task: 'LeadBulk', full: false }, deps, options);
    if (started.status !== 'bulk-pending') throw new Error(`expected bulk-pending, got ${started.status}`);
    expect(started.apiCalls).toBe(sentSince(since));
    expect(await recorded(runId, 'LeadBulk')).toBe(started.apiCalls);

    // The first result page is cut: the check fails (TransientError, which the state machine
    // retries) after its poll and the page (the columns come with the checkpointed job: no describe).
    h.sf.faults.set({ resetStreamAfterBytes: 2000 });
    let pending: SalesforceExtractOutput = started;
    const failed = (async () => {
      while (pending.status === 'bulk-pending')
        pending = await checkSalesforceExtract(pending, deps, options);
    })();
    await expect(failed).rejects.toBeInstanceOf(TransientError);
    const beforeRetry = sentSince(since);
    expect(beforeRetry).toBeGreaterThan(started.apiCalls);
    expect(await recorded(runId, 'LeadBulk')).toBe(beforeRetry);

    // The retry gets the same input as the failed attempt (its apiCalls, the start's, already recorded).
    const loaded = await checkSalesforceExtract(pending as never, h.deps(config()), options);

    expect(loaded).toMatchObject({ status: 'loaded', api: 'bulk', rows: ROWS });
    const all = sentSince(since);
    // The retry's poll and three pages.
    expect(all).toBe(beforeRetry + 4);
    expect(loaded.apiCalls).toBe(all);
    expect(await recorded(runId, 'LeadBulk')).toBe(all);
  });

  it("throws the failed job's error, not the database's, when PostgreSQL is down for the record", async () => {
    const deps = h.deps(config());
    const runId = await prepared(deps, 'LeadBulk');
    h.sf.faults.set({ failNextBulkJob: 'InternalServerError : query timed out on the server' });
    const started = await extractSalesforce({ runId, task: 'LeadBulk', full: false }, deps, {});
    if (started.status !== 'bulk-pending') throw new Error(`expected bulk-pending, got ${started.status}`);
    // PostgreSQL goes away: every connection the step asks for fails.
    const down = new Proxy(h.pool, {
      get: (target, prop) => {
        if (prop === 'connect')
          return () => Promise.reject(classifyPostgresError(new Error('Connection terminated unexpectedly')));
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });

    const checked = checkSalesforceExtract(started, { ...deps, pg: down }, {});

    await expect(checked).rejects.toThrow(TerminalError);
    await expect(checked).rejects.toThrow(
      /ended Failed: InternalServerError : query timed out on the server$/,
    );
    expect(
      h.logger.records.filter((r) => r.level === 'error' && r.message.startsWith('Could not record')),
    ).toEqual([
      expect.objectContaining({
        message: `Could not record the 1 Salesforce API call of the extract's check step (roundtrip.runs summary.extract.LeadBulk.apiCalls of run ${runId}); the step's own error is thrown`,
        attributes: expect.objectContaining({ error: expect.stringContaining('Connection terminated') }),
      }),
    ]);
    // What the start recorded stays.
    expect(await recorded(runId, 'LeadBulk')).toBe(started.apiCalls);
  });
});
