/**
 * The run's Salesforce API budget (config `budget`) applied to a write-back's push.
 *
 * Prepare refuses a run whose forecast passes the budget, but it can forecast only the extracts:
 * how many records a write-back sends is known once its plan is stored. So before anything is
 * sent, the plan checks the fewest calls its push can make ({@link pushCallsAtLeast}) against what
 * the run has left: the run's calls so far (Prepare's, every extract's, every write-back step's,
 * this plan's included, as `roundtrip.runs.summary` records them) plus those must stay within
 * `budget.maxApiCallsPerRun`, and must leave the org's daily allowance at or above
 * `budget.reserveDailyApiPercent` of its maximum; a Bulk push needs one of the org's daily Bulk
 * API batches per 10,000 records (`DailyBulkApiBatches`, 15,000 a day). The allowances are those
 * Prepare read from `/limits` when the run started ({@link PREPARE_LIMITS_KEY}), less the run's
 * calls since: no call is spent to read them again.
 *
 * The check counts what the push cannot do without (a Collections call per 1,000 records; a Bulk
 * job's creation, upload, close, one poll and its results), so it never refuses a push that could
 * have fitted; the retries of locked rows and the further polls of a slow job come on top. A push
 * refused is the task's failure, as `maxChanges` is: nothing was sent, the plan stays stored to be
 * inspected, and the run goes on with its other tasks. A dry run is not refused: the plan keeps
 * why a real run would be in the task's figures (`overBudget`), which the CLI says.
 *
 * Collect's retry pass is checked the same way before it starts ({@link retryPassBudgetProblem}):
 * records a completed Bulk job gave no result line for are sent again through Collections (200 a
 * call) or, for an insert, looked up by external ID (200 keys a query), and a result file that
 * names none of a large job's records would otherwise resend them all, past the budget. Refused,
 * the pass sends and looks up nothing: its records stay as they are (`sent` without an outcome,
 * or waiting for a row-lock retry), the task fails with the numbers, and the task's next plan
 * resolves them as those of any run that ended so (reconcile.ts).
 */
import type { PipelineConfig, WritebackTask } from '../../config';
import type { SalesforceLimit } from '../../connectors/salesforce';
import { COLLECTIONS_MAX_RECORDS, COMPOSITE_MAX_RECORDS } from '../../connectors/salesforce/writes';
import { TerminalError } from '../../shared/errors';
import type { WritebackApi } from './contracts';
import { INSERT_SETTLE_MS } from './reconcile';
import { isObject, sqlLiteral, storedCount } from './state';

/** Where Prepare stores the allowances it read, in the run's summary (`summary.prepare.limits`). */
export const PREPARE_LIMITS_KEY = 'limits';

/** The `/limits` entry of the org's daily Bulk API batches (Bulk API 2.0 ingest counts one per 10,000 records). */
export const DAILY_BULK_API_BATCHES_LIMIT = 'DailyBulkApiBatches';

/** Records Salesforce processes, and counts against `DailyBulkApiBatches`, as one batch of an ingest job. */
export const BULK_BATCH_RECORDS = 10_000;

/**
 * The calls a Bulk ingest job makes at the least: its creation, its upload, its close, one poll
 * that finds it complete, and its successful results.
 */
export const BULK_JOB_CALLS_AT_LEAST = 5;

/** The allowances Prepare stores for the write-backs' checks. */
export interface StoredLimits {
  readonly DailyApiRequests?: SalesforceLimit;
  readonly DailyBulkApiBatches?: SalesforceLimit;
}

/** The fewest Salesforce calls a push of `records` through `api` makes (see the module comment). */
export function pushCallsAtLeast(api: WritebackApi, records: number): number {
  if (api === 'none' || records <= 0) return 0;
  if (api === 'bulk') return BULK_JOB_CALLS_AT_LEAST;
  return Math.ceil(records / COMPOSITE_MAX_RECORDS);
}

/** The Bulk API batches an ingest of `records` counts against the org's daily allowance. */
export function bulkBatchesFor(records: number): number {
  return Math.ceil(records / BULK_BATCH_RECORDS);
}

/**
 * The Salesforce calls a run's summary records: Prepare's, and all its tasks' so far. An Athena
 * extract's `apiCalls` are Athena's and S3's, not Salesforce's: only the config's Salesforce
 * extracts count (a task since renamed or removed is not this run's).
 */
export function runApiCalls(
  summary: Record<string, unknown>,
  config: Pick<PipelineConfig, 'extract'>,
): { total: number; prepare: number } {
  const salesforce = new Set(config.extract.filter((t) => t.from === 'salesforce').map((t) => t.name));
  const prepare = callsOf(summary.prepare);
  const extracts = tasksOf(summary.extract).filter(([name]) => salesforce.has(name));
  const total = [...extracts, ...tasksOf(summary.writeback)].reduce(
    (sum, [, figures]) => sum + callsOf(figures),
    prepare,
  );
  return { total, prepare };
}

/** The tasks of a summary's section (`extract`, `writeback`) with their figures. */
function tasksOf(section: unknown): [string, unknown][] {
  return isObject(section) ? Object.entries(section) : [];
}

/** A step's or task's recorded Salesforce calls. */
function callsOf(figures: unknown): number {
  return isObject(figures) ? storedCount(figures.apiCalls) : 0;
}

/**
 * The Bulk API batches the run's other write-backs' Bulk pushes took: one per 10,000 records
 * Salesforce answered for (written or failed), a task at a time (its jobs may have taken more).
 */
export function runBulkBatches(summary: Record<string, unknown>, except: string): number {
  return tasksOf(summary.writeback).reduce(
    (sum, [name, f]) =>
      name !== except && isObject(f) && f.api === 'bulk'
        ? sum + bulkBatchesFor(storedCount(f.written) + storedCount(f.failed))
        : sum,
    0,
  );
}

/** The allowances of `summary.prepare.limits`, those well formed. */
export function storedLimits(summary: Record<string, unknown>): StoredLimits {
  const limits = isObject(summary.prepare) ? summary.prepare[PREPARE_LIMITS_KEY] : undefined;
  if (!isObject(limits)) return {};
  const allowance = (value: unknown): SalesforceLimit | undefined =>
    isObject(value) && typeof value.Max === 'number' && typeof value.Remaining === 'number'
      ? { Max: value.Max, Remaining: value.Remaining }
      : undefined;
  const daily = allowance(limits.DailyApiRequests);
  const batches = allowance(limits[DAILY_BULK_API_BATCHES_LIMIT]);
  return {
    ...(daily ? { DailyApiRequests: daily } : {}),
    ...(batches ? { DailyBulkApiBatches: batches } : {}),
  };
}

/** A write-back's push would pass the run's API budget: refused before anything was sent. */
export class PushOverBudgetError extends TerminalError {}

/** What {@link pushBudgetProblem} is given: the plan's outcome and the run's record. */
export interface PushBudgetInput {
  readonly config: PipelineConfig;
  readonly task: WritebackTask;
  /** The task's config path (`writeback[0]`), for the hints. */
  readonly configPath: string;
  readonly runId: string;
  readonly api: WritebackApi;
  /** Records the push is to send. */
  readonly records: number;
  /** `roundtrip.runs.summary` of the run, this plan's calls recorded. */
  readonly summary: Record<string, unknown>;
}

/** Why more Salesforce calls do not fit the run's API budget ({@link apiCallsOverBudget}). */
type ApiCallsOverBudget =
  /** They would pass `budget.maxApiCallsPerRun`: the run has made `spent`. */
  | { readonly limit: 'maxApiCallsPerRun'; readonly spent: number }
  /** They would leave the org's daily allowance below the reserve. */
  | {
      readonly limit: 'reserveDailyApiPercent';
      /** What remains of the allowance: what Prepare read, less the run's calls since. */
      readonly remaining: number;
      readonly max: number;
      readonly reserve: number;
    };

/**
 * Whether `calls` more Salesforce calls pass `budget.maxApiCallsPerRun` with the run's calls so far
 * (the summary's, and `unrecorded`: those of the step running, not in the summary yet), or would
 * leave the org's daily allowance below `budget.reserveDailyApiPercent` of its maximum (what
 * Prepare read, less the run's calls since). Undefined when they fit.
 */
function apiCallsOverBudget(
  config: PipelineConfig,
  summary: Record<string, unknown>,
  calls: number,
  unrecorded = 0,
): ApiCallsOverBudget | undefined {
  const { maxApiCallsPerRun, reserveDailyApiPercent } = config.budget;
  const spent = runApiCalls(summary, config);
  const total = spent.total + unrecorded;
  if (total + calls > maxApiCallsPerRun) return { limit: 'maxApiCallsPerRun', spent: total };
  const daily = storedLimits(summary).DailyApiRequests;
  if (daily) {
    // Prepare read the allowance before the run's other calls: they are spent since.
    const remaining = daily.Remaining - (total - spent.prepare);
    const reserve = Math.ceil((daily.Max * reserveDailyApiPercent) / 100);
    if (remaining - calls < reserve)
      return { limit: 'reserveDailyApiPercent', remaining, max: daily.Max, reserve };
  }
  return undefined;
}

/** A number as the budget's messages write it (`1,000`). */
const n = (value: number): string => value.toLocaleString('en-US');

/** What the daily allowance's reserve says of `calls` more calls that it cannot take. */
function dailyAllowanceText(
  over: Extract<ApiCallsOverBudget, { limit: 'reserveDailyApiPercent' }>,
  calls: number,
  reserveDailyApiPercent: number,
): string {
  return `of the org's daily allowance about ${n(Math.max(0, over.remaining))} of ${n(over.max)} remain (DailyApiRequests when the run started, less the run's calls since), which would leave ${n(over.remaining - calls)}, below the reserve of ${n(over.reserve)} (budget.reserveDailyApiPercent ${reserveDailyApiPercent}%)`;
}

/**
 * Why the push cannot fit the run's budget (module comment), or undefined when it can: "its push of
 * … records needs …", with the numbers and what to change.
 */
export function pushBudgetProblem(input: PushBudgetInput): string | undefined {
  const { config, task, configPath, runId, api, records, summary } = input;
  const calls = pushCallsAtLeast(api, records);
  if (calls === 0) return undefined;
  const { maxApiCallsPerRun, reserveDailyApiPercent } = config.budget;
  const limits = storedLimits(summary);
  const how =
    api === 'bulk'
      ? `a Bulk job: ${BULK_JOB_CALLS_AT_LEAST} calls at the least`
      : `Collections, ${n(records)} records at ${n(COMPOSITE_MAX_RECORDS)} a call`;
  const push = `its push of ${n(records)} record${records === 1 ? '' : 's'} needs`;
  const atLeast = `at least ${n(calls)} Salesforce API call${calls === 1 ? '' : 's'} (${how})`;
  const inspect = `The plan is stored (SELECT * FROM roundtrip.writeback_plan_rows WHERE run_id = ${sqlLiteral(runId)} AND task = ${sqlLiteral(task.name)})`;
  // A Collections push that a Bulk job would send in a few calls: how to get there.
  const cheaper =
    api !== 'collections'
      ? ''
      : task.mode === 'insert' && task.key === undefined
        ? ` An insert without an external-ID key is always sent through Collections: give it a key (${configPath}.key) and it goes through Bulk from ${configPath}.bulkThreshold (${n(task.bulkThreshold)}) on.`
        : ` A Bulk job would send them in a few calls: lower ${configPath}.bulkThreshold (${n(task.bulkThreshold)}) to ${n(records)} or less.`;

  const over = apiCallsOverBudget(config, summary, calls);
  if (over?.limit === 'maxApiCallsPerRun') {
    return `${push} ${atLeast}, and the run has made ${n(over.spent)} of budget.maxApiCallsPerRun ${n(maxApiCallsPerRun)}.${cheaper} ${inspect}; raise budget.maxApiCallsPerRun to send it`;
  }
  if (over?.limit === 'reserveDailyApiPercent') {
    return `${push} ${atLeast}; ${dailyAllowanceText(over, calls, reserveDailyApiPercent)}.${cheaper} ${inspect}`;
  }
  const batches = limits.DailyBulkApiBatches;
  if (api === 'bulk' && batches) {
    const needed = bulkBatchesFor(records);
    const usedByRun = runBulkBatches(summary, task.name);
    if (needed > batches.Remaining - usedByRun) {
      const since = usedByRun > 0 ? `, of which this run's Bulk pushes have taken ${n(usedByRun)} since` : '';
      return `${push} ${n(needed)} of the org's Bulk API batches (one per ${n(BULK_BATCH_RECORDS)} records), and the org had ${n(batches.Remaining)} of its ${n(batches.Max)} a day left when the run started${since} (${DAILY_BULK_API_BATCHES_LIMIT}: other tools count too, and they free up over a rolling 24 hours). ${inspect}; the next run plans it again`;
    }
  }
  return undefined;
}

/** Throws {@link PushOverBudgetError} when the push cannot fit the run's budget ({@link pushBudgetProblem}). */
export function checkPushBudget(input: PushBudgetInput): void {
  const problem = pushBudgetProblem(input);
  if (problem !== undefined)
    throw new PushOverBudgetError(
      `Write-back ${input.task.name} refused before sending anything: ${problem}`,
    );
}

/**
 * Collect's retry pass would pass the run's API budget: it sent and looked up nothing, and its
 * records stay as they were, for the task's next plan (module comment).
 */
export class RetryPassOverBudgetError extends TerminalError {}

/** What {@link retryPassBudgetProblem} is given: the records waiting for the pass, and the run's record. */
export interface RetryPassBudgetInput {
  readonly config: PipelineConfig;
  readonly task: WritebackTask;
  readonly runId: string;
  /**
   * Records sent with no outcome known (a completed Bulk job gave no result line for them): an
   * update or upsert is sent again, an insert looked up by its external ID first.
   */
  readonly unknown: number;
  /** Records waiting to be sent again: refused with `UNABLE_TO_LOCK_ROW`, or inserts found never created. */
  readonly waiting: number;
  /** `roundtrip.runs.summary` of the run. */
  readonly summary: Record<string, unknown>;
  /** The Salesforce calls of the step so far, not in the summary yet. */
  readonly stepCalls: number;
}

/**
 * The fewest Salesforce calls the retry pass makes: a Collections call per 200 records it sends
 * again and, for an insert with an external-ID key, a query per 200 keys it looks up (as if every
 * one were found: those that are not are sent again on top, as are the rounds of records locked
 * again).
 */
export function retryPassCallsAtLeast(task: WritebackTask, unknown: number, waiting: number): number {
  const calls = (records: number): number => Math.ceil(records / COLLECTIONS_MAX_RECORDS);
  if (task.mode !== 'insert') return calls(unknown + waiting);
  return (task.key === undefined ? 0 : calls(unknown)) + calls(waiting);
}

/**
 * Why Collect's retry pass cannot fit the run's budget (module comment), or undefined when it can:
 * the records, the calls, the limit it would pass, what becomes of the records and what to change.
 */
export function retryPassBudgetProblem(input: RetryPassBudgetInput): string | undefined {
  const { config, task, runId, unknown, waiting, summary, stepCalls } = input;
  const calls = retryPassCallsAtLeast(task, unknown, waiting);
  if (calls === 0) return undefined;
  const over = apiCallsOverBudget(config, summary, calls, stepCalls);
  if (over === undefined) return undefined;
  const { maxApiCallsPerRun, reserveDailyApiPercent } = config.budget;
  const lookUp = task.mode === 'insert' && task.key !== undefined && unknown > 0;
  const records = (count: number): string => `${n(count)} record${count === 1 ? '' : 's'}`;
  const which = [
    ...(unknown > 0
      ? [
          `${records(unknown)} a completed Bulk job gave no result line for (outcome unknown${lookUp ? ', to be looked up by external ID' : ''})`,
        ]
      : []),
    // An insert's may also be records its look-ups found never created.
    ...(waiting > 0
      ? [
          `${records(waiting)} waiting to be sent again${task.mode === 'insert' ? '' : ' (refused with UNABLE_TO_LOCK_ROW)'}`,
        ]
      : []),
  ].join(' and ');
  const how = lookUp
    ? `${n(COLLECTIONS_MAX_RECORDS)} keys a query, ${n(COLLECTIONS_MAX_RECORDS)} records a Collections call`
    : `Collections, ${n(COLLECTIONS_MAX_RECORDS)} records a call`;
  const needs = `its retry pass of ${which} needs at least ${n(calls)} Salesforce API call${calls === 1 ? '' : 's'} (${how})`;
  const limit =
    over.limit === 'maxApiCallsPerRun'
      ? `the run has made ${n(over.spent)} of budget.maxApiCallsPerRun ${n(maxApiCallsPerRun)}`
      : dailyAllowanceText(over, calls, reserveDailyApiPercent);
  const settle = `${INSERT_SETTLE_MS / 60_000} minutes`;
  const next =
    task.mode === 'insert'
      ? `the task's next plan looks those sent up by external ID once their send is ${settle} old, records those Salesforce created and sends the others again`
      : `the task's next plan, once their send is ${settle} old, marks the outcome of those sent unknown (OUTCOME_UNKNOWN in this run) and sends their current values again`;
  const inspect = `SELECT * FROM roundtrip.writeback_plans WHERE run_id = ${sqlLiteral(runId)} AND task = ${sqlLiteral(task.name)} AND status IN ('planned', 'sent')`;
  const raise =
    over.limit === 'maxApiCallsPerRun' ? '; raise budget.maxApiCallsPerRun to send them within a run' : '';
  return `${needs}, and ${limit}. None of them was sent again nor looked up: they stay as they are, neither failed nor sent twice, and ${next} (${inspect})${raise}`;
}
