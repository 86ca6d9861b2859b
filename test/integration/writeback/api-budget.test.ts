/**
 * The run's API budget applied to a write-back's push (lambdas/core/writeback/api-budget.ts):
 * Prepare stores the allowances it read, and the plan, once it knows how many records the push
 * sends, refuses a push that cannot fit before anything is sent: `budget.maxApiCallsPerRun` with
 * the run's calls so far, the daily allowance's reserve, and the org's Bulk API batches. Collect's
 * retry pass (records a completed Bulk job gave no result line for) is checked the same way.
 */
import { prepare } from '../../../lambdas/core/prepare';
import { planWriteback, runWriteback } from '../../../lambdas/core/writeback';
import {
  DAILY_BULK_API_BATCHES_LIMIT,
  PushOverBudgetError,
  RetryPassOverBudgetError,
  runApiCalls,
} from '../../../lambdas/core/writeback/api-budget';
import { recordTaskFailure, reportRun } from '../../../lambdas/core/writeback/report';
import { TerminalError } from '../../../lambdas/shared/errors';
import { BULK_DAILY_BATCHES } from '../../../emulators/salesforce/rest';
import { errorsOf, leadSeed, outlastCallTimeLimit, startWritebackEnv, type WritebackEnv } from './support';

const LEADS = 2_500;

describe('the run’s API budget, applied to a write-back’s push', () => {
  let env: WritebackEnv;
  let ids: string[];
  let plus = 0;

  beforeAll(async () => {
    env = await startWritebackEnv();
    ids = env.sf.store.seed('Lead', leadSeed(LEADS));
    await env.pool.query(`CREATE TABLE lead_reverse ("Id" text, lead_score integer)`);
  });
  afterAll(async () => env?.stop());
  afterEach(() => {
    env.sf.faults.clear();
    env.sf.bulkUsage.ingestBatches = 0;
  });

  /** New scores for every lead: the push sends all of them. */
  async function newScores(): Promise<void> {
    plus += 1;
    await env.pool.query('DELETE FROM lead_reverse');
    await env.pool.query(
      `INSERT INTO lead_reverse SELECT id, (i + $2) % 100 FROM unnest($1::text[]) WITH ORDINALITY AS t(id, i)`,
      [ids, plus],
    );
  }

  const update = (bulkThreshold: number) => ({
    to: 'salesforce' as const,
    object: 'Lead',
    from: 'lead_reverse',
    mode: 'update' as const,
    fields: { LeadScore__c: 'lead_score' },
    bulkThreshold,
  });

  async function summaryOf(runId: string): Promise<Record<string, unknown>> {
    const { rows } = await env.pool.query<{ summary: Record<string, unknown> }>(
      'SELECT summary FROM roundtrip.runs WHERE run_id = $1',
      [runId],
    );
    return rows[0]?.summary ?? {};
  }

  it('refuses a Collections push past maxApiCallsPerRun before sending anything, counting the run’s calls so far', async () => {
    await newScores();
    const deps = env.deps({ writeback: [update(100_000)], budget: { maxApiCallsPerRun: 4 } });
    const { runId } = await prepare({ input: {} }, deps);
    // Prepare kept the allowances it read, for this check.
    const prepared = (await summaryOf(runId)).prepare as Record<string, unknown>;
    expect(prepared.limits).toEqual({
      DailyApiRequests: { Max: env.sf.limits.max, Remaining: expect.any(Number) },
      [DAILY_BULK_API_BATCHES_LIMIT]: { Max: BULK_DAILY_BATCHES, Remaining: BULK_DAILY_BATCHES },
    });
    env.sf.calls.clear();
    const before = env.sf.store.get(ids[0] as string)?.LeadScore__c;

    const refused = await runWriteback(deps, { runId, task: 'Lead-update' }).catch((err: unknown) => err);

    expect(refused).toBeInstanceOf(PushOverBudgetError);
    const spent = runApiCalls(await summaryOf(runId), deps.config).total;
    // Prepare's /limits, and the plan's describe of Lead: 2 calls, then 3 Composite calls would make 5.
    expect(spent).toBe(2);
    expect((refused as Error).message).toBe(
      `Write-back Lead-update refused before sending anything: its push of 2,500 records needs at least 3 Salesforce API calls (Collections, 2,500 records at 1,000 a call), and the run has made 2 of budget.maxApiCallsPerRun 4. A Bulk job would send them in a few calls: lower writeback[0].bulkThreshold (100,000) to 2,500 or less. The plan is stored (SELECT * FROM roundtrip.writeback_plan_rows WHERE run_id = '${runId}' AND task = 'Lead-update'); raise budget.maxApiCallsPerRun to send it`,
    );
    expect(env.sf.calls.count({ write: true })).toBe(0);
    expect(env.sf.store.get(ids[0] as string)?.LeadScore__c).toBe(before);

    // A dry run is not refused (it sends nothing): its figures say why a real run would be. (Its
    // plan finds Lead's describe cached: Prepare's /limits and 3 Composite calls pass 3.)
    const tight = env.deps({ writeback: [update(100_000)], budget: { maxApiCallsPerRun: 3 } });
    const dry = await prepare({ input: { dryRun: true } }, tight);
    await expect(
      planWriteback(tight, { runId: dry.runId, task: 'Lead-update', dryRun: true }),
    ).resolves.toMatchObject({ status: 'dry-run', api: 'collections', changed: LEADS });
    const figures = ((await summaryOf(dry.runId)).writeback as Record<string, Record<string, unknown>>)[
      'Lead-update'
    ];
    expect(figures?.overBudget).toMatch(
      /^its push of 2,500 records needs at least 3 Salesforce API calls \(Collections, 2,500 records at 1,000 a call\), and the run has made 1 of budget.maxApiCallsPerRun 3\./,
    );
    expect(env.sf.calls.count({ write: true })).toBe(0);

    // The next run's plan finds Lead's describe in the connector's cache (a warm Lambda's): its
    // /limits and the 3 Composite calls make 4, which the same budget holds exactly. Sent.
    const next = await prepare({ input: {} }, deps);
    env.sf.calls.clear();
    const sent = await runWriteback(deps, { runId: next.runId, task: 'Lead-update' });
    expect(sent.result).toMatchObject({ succeeded: LEADS, failed: 0 });
    expect(env.sf.calls.count({ write: true })).toBe(3);
    expect(runApiCalls(await summaryOf(next.runId), deps.config).total).toBe(4);
  });

  it('refuses a push that would leave the daily allowance below its reserve', async () => {
    await newScores();
    const deps = env.deps({
      writeback: [update(100_000)],
      budget: { maxApiCallsPerRun: 5_000, reserveDailyApiPercent: 0 },
    });
    // Three calls left today: Prepare's /limits spends one, the push needs three.
    env.sf.faults.set({ dailyApiLimit: env.sf.limits.used + 3 });
    const { runId } = await prepare({ input: {} }, deps);
    env.sf.calls.clear();

    const refused = await runWriteback(deps, { runId, task: 'Lead-update' }).catch((err: unknown) => err);

    expect(refused).toBeInstanceOf(PushOverBudgetError);
    expect((refused as Error).message).toMatch(
      /^Write-back Lead-update refused before sending anything: its push of 2,500 records needs at least 3 Salesforce API calls \(Collections, 2,500 records at 1,000 a call\); of the org's daily allowance about 2 of [\d,]+ remain \(DailyApiRequests when the run started, less the run's calls since\), which would leave -1, below the reserve of 0 \(budget.reserveDailyApiPercent 0%\)\. A Bulk job would send them/,
    );
    expect(env.sf.calls.count({ write: true })).toBe(0);
  });

  it('refuses a Bulk push the org has no Bulk API batches left for, and sends it once it has', async () => {
    await newScores();
    const deps = env.deps({ writeback: [update(100)] });
    // Other tools spent all but none of the day's batches; 2,500 records are one batch.
    env.sf.bulkUsage.ingestBatches = BULK_DAILY_BATCHES;
    const { runId } = await prepare({ input: {} }, deps);
    env.sf.calls.clear();

    const refused = await runWriteback(deps, { runId, task: 'Lead-update' }).catch((err: unknown) => err);

    expect(refused).toBeInstanceOf(PushOverBudgetError);
    expect((refused as Error).message).toBe(
      `Write-back Lead-update refused before sending anything: its push of 2,500 records needs 1 of the org's Bulk API batches (one per 10,000 records), and the org had 0 of its 15,000 a day left when the run started (DailyBulkApiBatches: other tools count too, and they free up over a rolling 24 hours). The plan is stored (SELECT * FROM roundtrip.writeback_plan_rows WHERE run_id = '${runId}' AND task = 'Lead-update'); the next run plans it again`,
    );
    expect(env.sf.calls.count({ write: true })).toBe(0);

    env.sf.bulkUsage.ingestBatches = BULK_DAILY_BATCHES - 1;
    const next = await prepare({ input: {} }, deps);
    const sent = await runWriteback(deps, { runId: next.runId, task: 'Lead-update' });
    expect(sent.plan).toMatchObject({ api: 'bulk', changed: LEADS });
    expect(sent.result).toMatchObject({ succeeded: LEADS, failed: 0 });
    expect(env.sf.bulkUsage.ingestBatches).toBe(BULK_DAILY_BATCHES);
  });
  it('refuses Collect’s retry pass past maxApiCallsPerRun: the records a Bulk job gave no result for stay sent, the run says why, and the next plan sends them again', async () => {
    await newScores();
    const expected = new Map(ids.map((id, i) => [id, (i + 1 + plus) % 100]));
    // The job's result files name none of its records (a Salesforce fault): the retry pass would
    // send all 2,500 again through Collections, 13 calls, past the budget of 10.
    env.sf.faults.set({ omitIngestResults: ids });
    const deps = env.deps({ writeback: [update(100)], budget: { maxApiCallsPerRun: 10 } });
    const { runId } = await prepare({ input: {} }, deps);
    env.sf.calls.clear();

    const refused = await runWriteback(deps, { runId, task: 'Lead-update' }).catch((err: unknown) => err);

    expect(refused).toBeInstanceOf(RetryPassOverBudgetError);
    expect(refused).toBeInstanceOf(TerminalError);
    // Within the budget: the Bulk push's calls, and none of the pass's.
    const spent = runApiCalls(await summaryOf(runId), deps.config).total;
    expect(spent).toBeLessThanOrEqual(10);
    const message =
      `Write-back Lead-update: its retry pass of 2,500 records a completed Bulk job gave no result line for (outcome unknown) needs at least 13 Salesforce API calls (Collections, 200 records a call), and the run has made ${spent} of budget.maxApiCallsPerRun 10. ` +
      `None of them was sent again nor looked up: they stay as they are, neither failed nor sent twice, and the task's next plan, once their send is 11 minutes old, marks the outcome of those sent unknown (OUTCOME_UNKNOWN in this run) and sends their current values again ` +
      `(SELECT * FROM roundtrip.writeback_plans WHERE run_id = '${runId}' AND task = 'Lead-update' AND status IN ('planned', 'sent')); raise budget.maxApiCallsPerRun to send them within a run`;
    expect((refused as Error).message).toBe(message);
    expect(env.sf.calls.count({ operation: 'collections.update' })).toBe(0);
    // Not lost, not failed: sent, with the attempt of an answer lost. (The job wrote them.)
    const { rows: ledger } = await env.pool.query(
      `SELECT status, attempts, count(*)::int AS n FROM roundtrip.writeback_plans WHERE run_id = $1 GROUP BY 1, 2`,
      [runId],
    );
    expect(ledger).toEqual([{ status: 'sent', attempts: 1, n: LEADS }]);
    expect(await errorsOf(env, runId)).toEqual([]);
    expect(env.sf.store.get(ids[0] as string)?.LeadScore__c).toBe(expected.get(ids[0] as string));

    // The state machine records the task's failure, and the Report fails the run with it.
    await recordTaskFailure(deps, {
      runId,
      task: 'Lead-update',
      error: { Error: (refused as Error).name, Cause: (refused as Error).message },
    });
    const report = await reportRun(deps, { runId });
    expect(report.status).toBe('failed');
    expect(report.reason).toBe(`write-back Lead-update failed (writeback[0]): ${message}`);
    expect(report.writeback['Lead-update']).toMatchObject({ written: 0, failed: 0, outcomeUnknown: LEADS });

    // Once their send is over for certain, the next run's plan sends their current values again.
    env.sf.faults.clear();
    await outlastCallTimeLimit(env, runId);
    const roomy = env.deps({ writeback: [update(100)] });
    const next = await prepare({ input: {} }, roomy);
    const sent = await runWriteback(roomy, { runId: next.runId, task: 'Lead-update' });
    expect(sent.plan).toMatchObject({ api: 'bulk', changed: LEADS });
    expect(sent.result).toMatchObject({ succeeded: LEADS, failed: 0 });
    for (const [id, score] of expected) expect(env.sf.store.get(id)?.LeadScore__c).toBe(score);
    const { rows: synced } = await env.pool.query(
      `SELECT count(*)::int AS n FROM roundtrip.sync_state WHERE task = 'Lead-update' AND run_id = $1`,
      [next.runId],
    );
    expect(synced).toEqual([{ n: LEADS }]);
  });
});
