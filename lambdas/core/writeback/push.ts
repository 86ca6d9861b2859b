/**
 * Push (DESIGN.md §1 step 4): sends a stored plan to Salesforce.
 *
 * - Below the task's `bulkThreshold`: sObject Collections, 1,000 records an API call (Composite
 *   with five Collections subrequests of 200, `allOrNone: false`), read from the plan in `seq`
 *   order. Results are applied as each call answers, so Collections needs no separate collect.
 *   A call Salesforce refuses as too large (413) is split in halves, down to one record.
 * - From the threshold on: Bulk API 2.0 ingest jobs, the CSV streamed out of PostgreSQL with
 *   `COPY … TO STDOUT` (Salesforce's dialect: `#N/A` for null, an empty cell for a null an insert
 *   leaves out, every value quoted, ISO dates),
 *   at most {@link BULK_INGEST_MAX_UPLOAD_BYTES} a job, several jobs when larger. Each job id is
 *   stored in `roundtrip.writeback_jobs` right after it is created, before the upload: a retried
 *   push re-attaches to its jobs (asking Salesforce for their state) instead of sending twice.
 *
 * Records are read from the plan's pages (`writeback_plan_rows`). A record enters the push's
 * per-record ledger, `writeback_plans` (status, attempts, job, value hash), when it is sent: the
 * row is written `sent` right before its call, or with its Bulk job once the whole CSV is uploaded
 * (before the close).
 * Collect and the row-lock retries read and update the ledger.
 *
 * Crash safety per API:
 * - Collections: rows are marked `sent` (committed) before each call. A retry resends `sent` rows
 *   for update and upsert (the same values again: idempotent) and, for insert, first reconciles
 *   them by external ID: records that exist are recorded, not created again. An insert without
 *   an external-ID key cannot be reconciled: such rows are reported `INSERT_OUTCOME_UNKNOWN`
 *   and never resent (docs/writeback.md: why upsert is the safe choice for new records).
 * - Bulk: a job is recorded `Open` when created and `Uploaded` once its whole CSV is uploaded,
 *   before the close. A retry asks Salesforce for a job left at either: an `Open` job never
 *   closed processed nothing, so it is aborted and replaced; an `Uploaded` one is closed if still
 *   `Open` (the first close may arrive late: a refused close reads the state again) and
 *   re-attached, never aborted; any later state is re-attached.
 */
import type { PoolClient } from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import type { WritebackTask } from '../../config';
import { PLAN_PAGE_ROWS, quoteIdent, withClient, withTransaction } from '../../connectors/postgres';
import type { SalesforceConnector } from '../../connectors/salesforce';
import { refusedCallOf, refusedCallStatus } from '../../connectors/salesforce/errors';
import { bulkPollDelaySeconds } from '../../connectors/salesforce/poll';
import {
  abortIngestJob,
  BULK_CSV_NULL,
  BULK_INGEST_MAX_UPLOAD_BYTES,
  closeIngestJob,
  COMPOSITE_MAX_RECORDS,
  COLLECTIONS_MAX_RECORDS,
  createIngestJob,
  getIngestJob,
  type RecordError,
  type RecordResult,
  uploadIngestData,
  writeCollections,
} from '../../connectors/salesforce/writes';
import type { TimeLeft } from '../../shared/clock';
import { PushGoingOnError, TerminalError, TransientError, salesforceErrorKind } from '../../shared/errors';
import type { Logger } from '../../shared/logging';
import { salesforceOf, type CoreDeps } from '../deps';
import type {
  WritebackCollected,
  WritebackPushInput,
  WritebackPushOutput,
  WritebackPushPending,
} from './contracts';
import { CallBudget } from './budget';
import { closeUploadedJob, reconcileSentInserts, setJobState, UNKNOWN_VALUE_HASH } from './reconcile';
import { withTaskLock } from './lock';
import {
  choosePushApi,
  fieldsLeftOutWhenNull,
  keyIdentity,
  leftOutWhenNull,
  mapWritebackTask,
  withApiCallsSoFar,
  withStepApiCalls,
  type WritebackMapping,
} from './plan';
import {
  applyResults,
  countSecondRecords,
  createResultsTable,
  insertCollectionResults,
  reportRecordsCreatedBeside,
  ROW_LOCK_RETRIES,
} from './results';
import {
  heldBackFigures,
  ledgerOutcomes,
  mergeRunSummary,
  outcomeUnknownOf,
  readRunSummary,
  sqlLiteral,
  taskSummaryOf,
  writebackConfigPath,
  writebackTaskOf,
} from './state';

/** Options of {@link pushWriteback} (tests and benchmarks). */
export interface PushOptions {
  /** Largest CSV upload of one Bulk job. @default BULK_INGEST_MAX_UPLOAD_BYTES less a 1 MB margin */
  readonly maxJobBytes?: number;
  /** Sends of a record refused with UNABLE_TO_LOCK_ROW after the first. @default ROW_LOCK_RETRIES */
  readonly lockRetries?: number;
  /**
   * The time left to this invocation (Lambda's `getRemainingTimeInMillis`): no call is started
   * that it could not see through, and the step hands the rest on (budget.ts). @default unbounded
   */
  readonly timeLeft?: TimeLeft;
}

/** Room left under the upload limit for the header line and the estimate's rounding. */
const UPLOAD_MARGIN_BYTES = 1024 * 1024;

/**
 * The first record of this invocation's calls whose outcome Salesforce's answer did not tell (its
 * Composite subrequest failed on Salesforce's side, a 5xx), with the error Salesforce gave: named
 * by the step's error when such records are still without an outcome at its end.
 */
export interface FirstUnknownOutcome {
  value?: { readonly seq: number; readonly key: string; readonly code: string; readonly message: string };
}

/**
 * What the step's error adds when records of {@link FirstUnknownOutcome} are still without an
 * outcome: Salesforce's error code and message, and the first record's key. Empty otherwise (that
 * record resolved since: found by a look-up, or sent again and answered).
 */
async function unknownOutcomeCause(
  deps: CoreDeps,
  runId: string,
  taskName: string,
  first: FirstUnknownOutcome | undefined,
): Promise<string> {
  const unknown = first?.value;
  if (!unknown) return '';
  const { rowCount } = await deps.pg.query(
    `SELECT 1 FROM roundtrip.writeback_plans
      WHERE run_id = $1 AND task = $2 AND seq = $3 AND status IN ('planned', 'sent')`,
    [runId, taskName, unknown.seq],
  );
  if ((rowCount ?? 0) === 0) return '';
  return `. Salesforce answered without their outcome: ${unknown.code}: ${unknown.message} (first record key ${JSON.stringify(unknown.key)})`;
}

/**
 * Records of this invocation's Composite subrequests that Salesforce refused for a reason about
 * the call (writes.ts, RecordResult.refusal), put back to `planned`, and the first refusal: the
 * error the connector throws for a whole call refused so, which the step fails with when any of
 * them still waits at its end ({@link refusedSubrequestError}).
 */
export interface RefusedSubrequests {
  first?: TransientError | TerminalError;
  readonly seqs: Set<number>;
}

/**
 * The step's error when records of {@link RefusedSubrequests} still wait to be sent: the
 * refusal's own class and message (an exhausted daily allowance stops the run as when a whole
 * call is refused for it; a throttle is retried), naming the task and the records that wait.
 * Undefined when none waits (sent since, by a row-lock retry pass).
 *
 * `unknown`: records sent whose outcome Salesforce's answer did not tell (a subrequest that failed
 * on its side, {@link FirstUnknownOutcome}) and that are still without one: the message says them
 * too, with Salesforce's error, so that the refusal's error does not hide them.
 */
async function refusedSubrequestError(
  deps: CoreDeps,
  runId: string,
  taskName: string,
  refused: RefusedSubrequests | undefined,
  unknown?: { readonly records: number; readonly first: FirstUnknownOutcome | undefined },
): Promise<TransientError | TerminalError | undefined> {
  const refusal = refused?.first;
  if (!refusal || refused.seqs.size === 0) return undefined;
  const { rows } = await deps.pg.query<{ n: string }>(
    `SELECT count(*) AS n FROM roundtrip.writeback_plans
      WHERE run_id = $1 AND task = $2 AND seq = ANY($3::bigint[]) AND status = 'planned'`,
    [runId, taskName, [...refused.seqs]],
  );
  const waiting = Number(rows[0]?.n ?? 0);
  if (waiting === 0) return undefined;
  let message = `Write-back ${taskName}: ${waiting} records wait to be sent again (planned): Salesforce wrote none of them, refusing their Composite subrequest for a reason about the call: ${refusal.message}`;
  if (unknown && unknown.records > 0) {
    const cause = await unknownOutcomeCause(deps, runId, taskName, unknown.first);
    message = `${message.replace(/\.$/, '')}. Besides, ${unknown.records} records sent have no outcome yet${cause}`;
  }
  const Kind = salesforceErrorKind(refusal);
  return new Kind(message, { cause: refusal });
}

interface PlanRowOut {
  seq: string;
  key: string;
  record: string;
  /** Sent already, by a call whose outcome was never recorded (the step died, or its answer was lost). */
  resent: boolean;
}

function recordJsonSql(mapping: WritebackMapping): string {
  const attributes = `jsonb_build_object('attributes', jsonb_build_object('type', ${sqlLiteral(mapping.object)}))`;
  // Collections update records carry a lowercase `id` (salesforce-wire.md).
  if (mapping.task.mode === 'update') {
    return `(${attributes} || jsonb_build_object('id', p.salesforce_id) || p.payload)::text`;
  }
  // An insert's fields left out when null (leftOutWhenNull) have no key in the plans stored since;
  // a plan stored before holds them as null: left out of the record all the same.
  const leftOut = fieldsLeftOutWhenNull(mapping).map((m) => m.field.name);
  if (leftOut.length === 0) return `(${attributes} || p.payload)::text`;
  const names = `ARRAY[${leftOut.map(sqlLiteral).join(', ')}]::text[]`;
  const kept = leftOut.map((name) => `${sqlLiteral(name)}, p.payload -> ${sqlLiteral(name)}`).join(', ');
  return `(${attributes} || (p.payload - ${names}) || jsonb_strip_nulls(jsonb_build_object(${kept})))::text`;
}

/**
 * The mark, in a run's summary of a task, of a push that goes on over several invocations: handed
 * on for want of time, or waiting for its Bulk jobs. Set then, cleared when its results are in
 * ({@link finishWriteback}).
 */
const PUSH_GOING_ON = 'pushGoingOnSince';

/**
 * A run whose steps have not started for this long is not going on, whatever its status says (an
 * execution stopped from the console never reports): its mark holds no other run back. A push
 * that hands on is called again at once, and a Collect polls at least every 2 minutes, retried
 * busy for at most 18: each marks its run's `last_step_at` as it starts.
 */
const PUSH_GOING_ON_IDLE_MINUTES = 30;

/**
 * The task lock serialises invocations, and a push that goes on over several leaves it free in
 * between: another run's push of the task would then interleave with it, and whichever wrote a
 * record last would win, the older run's values perhaps over the newer run's (both reporting
 * success). A push of another run (still running) that goes on is waited for: a
 * PushGoingOnError, which the state machine retries for up to two hours (PUSH_GOING_ON_RETRY).
 */
async function refuseWhileAnotherPushGoesOn(deps: CoreDeps, runId: string, taskName: string): Promise<void> {
  const { rows } = await deps.pg.query<{ run_id: string; since: string }>(
    `SELECT run_id, summary->'writeback'->$2->>'${PUSH_GOING_ON}' AS since FROM roundtrip.runs
      WHERE status = 'running' AND run_id <> $1 AND summary->'writeback'->$2->>'${PUSH_GOING_ON}' IS NOT NULL
        AND coalesce(last_step_at, started_at) > now() - $3 * interval '1 minute'
      ORDER BY started_at LIMIT 1`,
    [runId, taskName, PUSH_GOING_ON_IDLE_MINUTES],
  );
  const other = rows[0];
  if (other) {
    throw new PushGoingOnError(
      `Write-back ${taskName}: the push of run ${other.run_id} goes on over several invocations (since ${other.since}); this run's push waits for its end, so that one run's values do not overwrite the other's record by record`,
    );
  }
}

/** Marks the run's push of the task as going on over several invocations ({@link PUSH_GOING_ON}). */
async function markPushGoingOn(deps: CoreDeps, runId: string, taskName: string): Promise<void> {
  await withTransaction(deps.pg, async (client) => {
    const summary = await readRunSummary(client, runId);
    const task = (summary.writeback as Record<string, Record<string, unknown>> | undefined)?.[taskName];
    if (task?.[PUSH_GOING_ON]) return;
    await mergeRunSummary(client, runId, ['writeback', taskName], {
      [PUSH_GOING_ON]: deps.clock.now().toISOString(),
    });
  });
}

/**
 * The task's counts from the ledger, written to the summary: the final answer of push/collect.
 * Records held back (insert keys another run took since the plan: {@link refuseKeysTakenElsewhere})
 * and records superseded (keys a run that planned later synced: {@link supersedeKeysSyncedByNewerRuns})
 * are not failures: Salesforce refused nothing, and nothing of the run is lost or duplicated. They
 * are counted as `heldBack` and `superseded`, and the failure rate is `failed` over the records sent.
 * Keyless inserts reported with an unknown outcome (`INSERT_OUTCOME_UNKNOWN`) are not failures
 * either: Salesforce may well have created them. They are `outcomeUnknown`, which fails the run at
 * its report (report.ts, reportRun) with what to do, whatever `maxFailureRate` says.
 */
export async function finishWriteback(
  deps: CoreDeps,
  runId: string,
  task: WritebackTask,
  taskName: string,
  api: WritebackCollected['api'],
  firstUnknown?: FirstUnknownOutcome,
  refused?: RefusedSubrequests,
): Promise<WritebackCollected> {
  const outcomes = await withClient(deps.pg, (client) => ledgerOutcomes(client, runId, taskName));
  // Every record the push touched has an outcome by now; one without is never counted as done.
  const pending = outcomes.planned + outcomes.sent;
  if (pending > 0) {
    // Records of a Composite subrequest refused for a reason about the call: the step fails as the
    // call would have, refused as a whole (a spent daily allowance is not retried in vain).
    const refusal = await refusedSubrequestError(deps, runId, taskName, refused, {
      records: outcomes.sent,
      first: firstUnknown,
    });
    if (refusal) throw refusal;
    const cause = await unknownOutcomeCause(deps, runId, taskName, firstUnknown);
    throw new TransientError(
      `Write-back ${taskName}: ${pending} records sent or waiting to be sent have no outcome yet; retry the step${cause}`,
    );
  }
  const planned = await plannedRecords(deps, runId, taskName);
  const { succeeded, failed, heldBack, superseded } = outcomes;
  // Of `succeeded`: upserts that created a second record, the key changed in Salesforce on the
  // record the task had synced (results.ts, reportRecordsCreatedBeside). Written, not failed.
  const secondRecords = await countSecondRecords(deps.pg, runId, taskName);
  const outcomeUnknown = outcomeUnknownOf(outcomes);
  const failureRate = failedShare(failed, planned - heldBack - superseded);
  const result: WritebackCollected = {
    status: 'collected',
    runId,
    task: taskName,
    api,
    planned,
    succeeded,
    failed,
    outcomeUnknown,
    heldBack,
    superseded,
    failureRate,
    maxFailureRate: task.maxFailureRate,
    failureRateExceeded: failureRate > task.maxFailureRate,
    ...(secondRecords > 0 ? { secondRecords } : {}),
  };
  await withTransaction(deps.pg, async (client) => {
    const stored = taskSummaryOf(await readRunSummary(client, runId), taskName);
    await mergeRunSummary(client, runId, ['writeback', taskName], {
      written: succeeded,
      failed,
      outcomeUnknown,
      ...heldBackFigures(stored, heldBack),
      superseded,
      failureRate,
      failureRateExceeded: result.failureRateExceeded,
      ...(secondRecords > 0 ? { secondRecords } : {}),
      // Counted already when the run was closed while this push went on (a run marked ended whose
      // Lambda still pushes: countUnreportedFigures): every record has an outcome now.
      ...(stored !== undefined && 'outcomeUnknown' in stored ? { outcomeUnknown: outcomes.sent } : {}),
      collectedAt: deps.clock.now().toISOString(),
      // The push is over: other runs' pushes of the task may go on (refuseWhileAnotherPushGoesOn).
      [PUSH_GOING_ON]: null,
    });
  });
  deps.logger.info('Write-back results collected', { ...result });
  return result;
}

/** `failed` over the records sent, 0 when none was. */
function failedShare(failed: number, sent: number): number {
  return sent <= 0 ? 0 : Math.min(1, failed / sent);
}

/** Marks ledger rows `sent` before a call that sends them again (the row-lock retries). */
async function markLedgerSent(
  client: PoolClient,
  runId: string,
  task: string,
  seqs: readonly number[],
): Promise<void> {
  await client.query(
    `UPDATE roundtrip.writeback_plans SET status = 'sent', updated_at = now()
      WHERE run_id = $1 AND task = $2 AND seq = ANY($3::bigint[])`,
    [runId, task, seqs],
  );
}

/**
 * Whether every record of the plan is in the ledger: sent once (by a Collections call, or with a
 * Bulk job once its CSV was uploaded), or refused before sending. False for a plan of none. A row
 * `planned` with no attempt was never sent: its call was refused as a whole, or never made
 * (unmarkRefusedCall, putBackUnsent), and it is sent as planned, so it does not count; one
 * `planned` with attempts waits for a row-lock retry, and was sent.
 */
async function everyRecordSent(deps: CoreDeps, runId: string, taskName: string): Promise<boolean> {
  const { rows } = await deps.pg.query<{ sent: boolean }>(
    `SELECT (SELECT count(*) FROM roundtrip.writeback_plans
              WHERE run_id = $1 AND task = $2 AND (status <> 'planned' OR attempts > 0))
              >= (SELECT coalesce(sum(rows), 0) FROM roundtrip.writeback_plan_pages WHERE run_id = $1 AND task = $2)
            AND EXISTS (SELECT 1 FROM roundtrip.writeback_plans WHERE run_id = $1 AND task = $2) AS sent`,
    [runId, taskName],
  );
  return rows[0]?.sent === true;
}

/** Records planned for a task. */
async function plannedRecords(deps: CoreDeps, runId: string, taskName: string): Promise<number> {
  const { rows } = await deps.pg.query<{ n: string }>(
    'SELECT coalesce(sum(rows), 0) AS n FROM roundtrip.writeback_plan_pages WHERE run_id = $1 AND task = $2',
    [runId, taskName],
  );
  return Number(rows[0]?.n ?? 0);
}

/** The plan's pages holding seq `first` to `last`, as SQL on `writeback_plan_rows` aliased `p`. */
function pagesOf(first: number, last: number): string {
  const page = (seq: number): number => Math.floor((seq - 1) / PLAN_PAGE_ROWS);
  return `p.page BETWEEN ${page(first)} AND ${page(last)} AND p.seq BETWEEN ${first} AND ${last}`;
}

/**
 * Writes the plan records of seq `first` to `last` into the ledger as `sent` (with their job, for
 * Bulk), or marks them `sent` again when they are there already (an interrupted call's records,
 * sent again), unless they have an outcome.
 *
 * A range no ledger row falls in yet (a push's first pass: every Collections call, every Bulk
 * job) is written by a plain INSERT: the `ON CONFLICT` path checks each row for a conflict before
 * inserting it, a third of the statement's time at 1,000,000 records (docs/writeback.md,
 * "Measured"). The check and the insert run in the caller's transaction under the task lock; a
 * row that appeared between them would fail the INSERT on the ledger's key, never be written twice.
 */
async function markSent(
  client: PoolClient,
  runId: string,
  task: string,
  first: number,
  last: number,
  jobId: string | null,
): Promise<void> {
  const { rowCount } = await client.query(
    `SELECT 1 FROM roundtrip.writeback_plans WHERE run_id = $1 AND task = $2 AND seq BETWEEN $3 AND $4 LIMIT 1`,
    [runId, task, first, last],
  );
  const again = (rowCount ?? 0) > 0;
  await client.query(
    `INSERT INTO roundtrip.writeback_plans AS l
            (run_id, task, key, seq, salesforce_id, operation, payload, current, value_hash, status, job_id)
     SELECT p.run_id, p.task, p.key, p.seq, p.salesforce_id, p.operation, p.payload, p.current, md5(p.payload::text), 'sent', $3
       FROM roundtrip.writeback_plan_rows p
      WHERE p.run_id = $1 AND p.task = $2 AND ${pagesOf(first, last)}
     ${
       again
         ? `ON CONFLICT (run_id, task, key) DO UPDATE SET status = 'sent', job_id = coalesce(EXCLUDED.job_id, l.job_id), updated_at = now()
      WHERE l.status IN ('planned', 'sent') AND l.attempts = 0`
         : ''
     }`,
    [runId, task, jobId],
  );
}

/** Which records {@link sendCollections} sends. */
type CollectionsSource =
  /** The plan's pages in order, a page a call, less the records the ledger has an outcome for. */
  | { readonly from: 'pages' }
  /** Ledger rows matching `where` (on `writeback_plans p`), in seq order. */
  | { readonly from: 'ledger'; readonly where: string };

/**
 * The ledger's statistics, for the joins by seq that apply each call's results: refreshed when the
 * `added` rows just written are more than a tenth of the rows they know of (never analyzed, a first
 * run's jobs), not after every Bulk job whatever the ledger's size. ANALYZE reads a sample of the
 * table (30,000 rows) each time: on a ledger of millions of rows, each job of a run paid for one
 * its few thousand rows hardly moved (and `npm test`'s crash sweeps, a fifth of their PostgreSQL
 * time). One statement either way (a DO block), so the steps' statements stay countable.
 */
async function analyzeLedger(deps: CoreDeps, added: number): Promise<void> {
  // Only the columns those joins filter on: the payloads' statistics are never used.
  const tenfold = Math.max(1000, 10 * Math.max(0, Math.floor(added)));
  await deps.pg.query(
    `DO $$ BEGIN
       IF (SELECT c.reltuples < ${tenfold} FROM pg_class c WHERE c.oid = 'roundtrip.writeback_plans'::regclass) THEN
         ANALYZE roundtrip.writeback_plans (run_id, task, key, seq, status, job_id);
       END IF;
     END $$`,
  );
}

/** The plan's last page number, -1 when it has none. */
async function lastPageOf(deps: CoreDeps, runId: string, taskName: string): Promise<number> {
  const { rows } = await deps.pg.query<{ last: number | null }>(
    'SELECT max(page) AS last FROM roundtrip.writeback_plan_pages WHERE run_id = $1 AND task = $2',
    [runId, taskName],
  );
  return rows[0]?.last ?? -1;
}

/**
 * Sends records in seq order, `batchSize` an API call, and applies each call's results. The seqs
 * of records whose call Salesforce answered without their outcome go into `options.answered`.
 * Stops before a call `options.budget` has no time for (its `handedOn` then says so).
 */
async function sendCollections(
  deps: CoreDeps,
  sf: SalesforceConnector,
  mapping: WritebackMapping,
  runId: string,
  taskName: string,
  source: CollectionsSource,
  options: {
    lockRetries: number;
    batchSize: number;
    answered: Set<number>;
    budget: CallBudget;
    firstUnknown?: FirstUnknownOutcome;
    refused?: RefusedSubrequests;
  },
): Promise<number> {
  let lastSeq = 0;
  let page = 0;
  let calls = 0;
  const recordSql = recordJsonSql(mapping);
  // The ledger pass (row-lock retries) needs no page.
  const lastPage = source.from === 'pages' ? await lastPageOf(deps, runId, taskName) : -1;
  /**
   * One call of `part` (records marked `sent`), its results applied. A call refused with 413
   * (its body too large for Salesforce: long text values) is split in halves, each sent as its own
   * call, down to one record; a record too large alone is refused with its key and size. Halves the
   * budget has no time for are `planned` again, for the next invocation. The refused call is
   * refunded to the budget: an invocation with time for one call sends its first half then.
   */
  const sendPart = async (part: readonly PlanRowOut[]): Promise<void> => {
    const seqs = part.map((r) => Number(r.seq));
    let results: RecordResult[];
    try {
      results = await writeCollections(sf, {
        object: mapping.object,
        operation: mapping.task.mode,
        ...(mapping.task.mode === 'upsert' ? { externalIdField: mapping.keyField as string } : {}),
        records: part.map((r) => r.record),
      });
    } catch (err) {
      const refused = refusedCallOf(err);
      if (refused?.status !== REQUEST_TOO_LARGE_STATUS) {
        await unmarkRefusedCall(deps, runId, taskName, seqs, err);
        throw err;
      }
      if (part.length > 1) {
        // An API call all the same: Salesforce counts it against the allowance.
        calls += 1;
        // The refused call wrote nothing: the invocation's progress is owed by its first half.
        options.budget.refund();
        const half = Math.ceil(part.length / 2);
        deps.logger.warn('Salesforce refused a call as too large (413); sending its records in two calls', {
          runId,
          task: taskName,
          records: part.length,
          status: refused.status,
        });
        await sendSplit(part.slice(0, half), part.slice(half));
        return;
      }
      results = [tooLargeAlone(part[0] as PlanRowOut, refused)];
    }
    calls += 1;
    // Records whose outcome the answer does not tell stay `sent`: the step fails at its end
    // (finishWriteback) and its retry resends them, or looks them up for an insert.
    const known = results.flatMap((r, i) => (r.unknown || r.unprocessed ? [] : [i]));
    // Records of a Composite subrequest refused for a reason about the call (writes.ts,
    // isRefusalOfRecords) were not written: `planned` again, as after a refused call, sent by the
    // step's retry (the step fails at its end: finishWriteback) or the next invocation.
    const unprocessed = results.flatMap((r, i) => (r.unprocessed ? [seqs[i] as number] : []));
    if (unprocessed.length > 0) {
      const refused = results.find((r) => r.unprocessed);
      await unmarkRefusedCall(deps, runId, taskName, unprocessed, refused?.errors[0]);
      if (options.refused) {
        for (const seq of unprocessed) options.refused.seqs.add(seq);
        options.refused.first ??= refused?.refusal;
      }
    }
    results.forEach((r, i) => {
      if (!r.unknown) return;
      options.answered.add(seqs[i] as number);
      const error = r.errors[0];
      if (options.firstUnknown && !options.firstUnknown.value && error) {
        options.firstUnknown.value = {
          seq: seqs[i] as number,
          key: part[i]?.key ?? '',
          code: error.statusCode,
          message: error.message,
        };
      }
    });
    const unknown = results.filter((r) => r.unknown);
    if (unknown.length > 0) {
      deps.logger.warn('Salesforce did not tell the outcome of some records; left for the retried step', {
        runId,
        task: taskName,
        records: unknown.length,
        error: unknown[0]?.errors[0]?.message,
      });
    }
    await withTransaction(deps.pg, async (client) => {
      await createResultsTable(client);
      await insertCollectionResults(
        client,
        known.map((i) => seqs[i] as number),
        known.map((i) => {
          const result = results[i] as (typeof results)[number];
          // An upsert sent again after a call whose outcome was never recorded: that call may have
          // created the record this one found (`created: false`), so it counts as created: a second
          // record beside the one sync_state holds is looked up and reported all the same
          // (results.ts, reportRecordsCreatedBeside).
          return part[i]?.resent === true && result.success && mapping.task.mode === 'upsert'
            ? { ...result, created: true }
            : result;
        }),
      );
      await applyResults(client, {
        runId,
        task: taskName,
        jobId: null,
        syncedAt: deps.clock.now(),
        lockRetries: options.lockRetries,
      });
    });
  };

  /**
   * The halves of a call refused as too large, one call each. A half not sent (no time left in
   * the budget, or the first half's call failed) is `planned` again: it was never sent.
   */
  const sendSplit = async (first: readonly PlanRowOut[], second: readonly PlanRowOut[]): Promise<void> => {
    for (const [i, half] of [first, second].entries()) {
      const rest = i === 0 ? [...first, ...second] : second;
      if (!options.budget.mayStart('write')) {
        await putBackUnsent(deps, runId, taskName, rest);
        return;
      }
      try {
        await sendPart(half);
      } catch (err) {
        if (i === 0) await putBackUnsent(deps, runId, taskName, second);
        throw err;
      }
      if (options.budget.handedOn && i === 0) {
        await putBackUnsent(deps, runId, taskName, second);
        return;
      }
    }
  };

  for (;;) {
    let rows: PlanRowOut[];
    if (source.from === 'pages') {
      if (page > lastPage) return calls;
      const pageEnd = (page + 1) * PLAN_PAGE_ROWS;
      // The ledger is read within the page's seq range (its `seq` key): matched on the key alone,
      // the planner, whose statistics of the run's ledger date from its first call, scanned every
      // ledger row the run had written so far for each page — a push quadratic in its records.
      ({ rows } = await deps.pg.query<PlanRowOut>(
        `SELECT p.seq, p.key, ${recordSql} AS record, l.status IS NOT DISTINCT FROM 'sent' AS resent
           FROM roundtrip.writeback_plan_rows p
           LEFT JOIN roundtrip.writeback_plans l ON l.run_id = p.run_id AND l.task = p.task AND l.seq = p.seq
                 AND l.seq BETWEEN $5 AND $6 AND l.key = p.key
          WHERE p.run_id = $1 AND p.task = $2 AND p.page = $3 AND p.seq > $4
            AND (l.key IS NULL OR (l.status IN ('planned', 'sent') AND l.attempts = 0))
          ORDER BY p.seq LIMIT ${options.batchSize}`,
        [runId, taskName, page, lastSeq, pageEnd - PLAN_PAGE_ROWS + 1, pageEnd],
      ));
      // The rest of the page, if any, is the next call's; a page read to its last record is done
      // (without this, a call of a whole page was followed by a read of the page finding nothing).
      const last = rows[rows.length - 1];
      if (rows.length < options.batchSize || (last !== undefined && Number(last.seq) >= pageEnd)) page += 1;
      if (rows.length === 0) continue;
    } else {
      ({ rows } = await deps.pg.query<PlanRowOut>(
        `SELECT p.seq, p.key, ${recordSql} AS record, p.status = 'sent' AS resent FROM roundtrip.writeback_plans p
          WHERE p.run_id = $1 AND p.task = $2 AND p.seq > $3 AND ${source.where}
          ORDER BY p.seq LIMIT ${options.batchSize}`,
        [runId, taskName, lastSeq],
      ));
      if (rows.length === 0) return calls;
    }
    // Before the records are marked `sent`: a call not made leaves them as they were.
    if (!options.budget.mayStart('write')) return calls;
    const seqs = rows.map((r) => Number(r.seq));
    lastSeq = seqs[seqs.length - 1] as number;
    await withTransaction(deps.pg, (client) =>
      source.from === 'pages'
        ? // The range holds these records and, between them, only records markSent leaves alone
          // (those with an outcome, or waiting for a row-lock retry).
          markSent(client, runId, taskName, seqs[0] as number, lastSeq, null)
        : markLedgerSent(client, runId, taskName, seqs),
    );
    if (source.from === 'pages' && calls === 0 && lastPage > 0)
      await analyzeLedger(deps, (lastPage + 1) * PLAN_PAGE_ROWS);
    await sendPart(rows);
    if (options.budget.handedOn) return calls;
  }
}

/**
 * The HTTP status of a call Salesforce refused because its body is too large: the push splits it
 * ({@link sendCollections}). Salesforce documents no size limit of a REST request body that we
 * could find (the URI and headers are limited to 16,384 bytes: Help article 000386264); long text
 * area values make one of 200 or 1,000 records large.
 */
const REQUEST_TOO_LARGE_STATUS = 413;
// Only a whole call is split, never a Composite subrequest answered 413: a request's size is
// judged on its body as a whole, before its subrequests are read, and no such answer of a
// subrequest is known (the Composite documentation lists none; we found no report of one).
// Should one come, it is refused for a reason about the call (writes.ts, isRefusalOfRecords):
// its records go back to `planned`, and the step fails with Salesforce's code and message
// (REQUEST_ENTITY_TOO_LARGE, terminal), so that nothing is lost and nothing is guessed at; the
// next run sends them again (modes.test.ts, "a Composite subrequest refused as too large").

/** The failure of one record whose call alone was refused as too large (413). */
function tooLargeAlone(
  row: PlanRowOut,
  refused: { readonly errorCode: string; readonly message: string },
): RecordResult {
  const bytes = Buffer.byteLength(row.record, 'utf8');
  return {
    id: null,
    success: false,
    errors: [
      {
        statusCode: refused.errorCode,
        message: `key ${JSON.stringify(row.key)}: Salesforce refused the call of this record alone as too large (HTTP 413: ${refused.message}); the record's JSON is ${bytes.toLocaleString('en-US')} bytes. Shorten its longest values (a long text area) in the source, or leave such a field out of the task's mapping`,
        fields: [],
      },
    ],
  };
}

/** Ledger rows marked `sent` for a call never made (the rest of a split call): `planned` again. */
async function putBackUnsent(
  deps: CoreDeps,
  runId: string,
  taskName: string,
  rows: readonly PlanRowOut[],
): Promise<void> {
  if (rows.length === 0) return;
  await deps.pg.query(
    `UPDATE roundtrip.writeback_plans SET status = 'planned', updated_at = now()
      WHERE run_id = $1 AND task = $2 AND seq = ANY($3::bigint[]) AND status = 'sent'`,
    [runId, taskName, rows.map((r) => Number(r.seq))],
  );
}

function isRecordError(value: unknown): value is RecordError {
  return typeof (value as RecordError | undefined)?.statusCode === 'string';
}

/**
 * After a Collections or Composite call that failed, or a Composite subrequest that Salesforce
 * refused (`err` is then its RecordError): when Salesforce refused it as a whole for a reason about
 * the call (a 4xx: `REQUEST_LIMIT_EXCEEDED`, a 401 after the session's renewal, a throttle…; a
 * refusal about the records fails each record instead: writes.ts, isRefusalOfRecords), it
 * processed none of its records, so the `sent` mark set before the call is taken back: the rows
 * are `planned` again
 * (keeping their attempts), and the step's retry, or the next run, sends them as records never
 * sent. Left `sent`, a run that ended on the refusal counted them as outcome unknown, a later plan
 * marked their values unknown (update, upsert) or held an insert's keys back for 11 minutes and a
 * look-up, and a keyless insert's were reported INSERT_OUTCOME_UNKNOWN, never to be sent again.
 * Any other failure (a 5xx, no answer, an answer cut off) leaves them `sent`: Salesforce may have
 * written them. A failure to record it leaves them `sent` too (safe), logged: the call's own
 * error is the one the step fails with.
 */
async function unmarkRefusedCall(
  deps: CoreDeps,
  runId: string,
  taskName: string,
  seqs: readonly number[],
  err: unknown,
): Promise<void> {
  // A subrequest's refusal (a RecordError) says its code where a thrown error says its status.
  const status = isRecordError(err) ? err.statusCode : refusedCallStatus(err);
  if (status === undefined) return;
  try {
    await deps.pg.query(
      `UPDATE roundtrip.writeback_plans SET status = 'planned', updated_at = now()
        WHERE run_id = $1 AND task = $2 AND seq = ANY($3::bigint[]) AND status = 'sent'`,
      [runId, taskName, seqs],
    );
    deps.logger.warn('Salesforce refused a call as a whole: its records were not sent, and wait to be', {
      runId,
      task: taskName,
      records: seqs.length,
      status,
    });
  } catch (recordErr) {
    deps.logger.warn('Could not take back the sent mark of records Salesforce refused unprocessed', {
      runId,
      task: taskName,
      records: seqs.length,
      error: recordErr instanceof Error ? recordErr.message : String(recordErr),
    });
  }
}

/**
 * Insert: records waiting in the ledger to be sent again — for their row-lock retry, or because a
 * look-up found that the call that carried them created nothing (reconcileSentInserts, `resend`)
 * — whose key another run inserted, or sent with no outcome yet, since (the step failed or handed
 * on before sending them again and an overlapping run pushed meanwhile) are held back here, as
 * there, instead of being sent a second time. The push-start check
 * ({@link refuseKeysTakenElsewhere}) passes them over: they are in this run's ledger already.
 */
async function refuseWaitingKeysTakenElsewhere(
  deps: CoreDeps,
  mapping: WritebackMapping,
  runId: string,
  taskName: string,
  logger: Logger,
): Promise<void> {
  const { rowCount } = await deps.pg.query(
    `WITH taken AS (
       SELECT DISTINCT ON (l.key) l.key, l.payload, o.code, o.message, o.other_id
         FROM roundtrip.writeback_plans l
         JOIN (${TAKEN_ELSEWHERE_SQL}) AS o ON ${sameKey(mapping, 'o.key', 'l.key')}
        WHERE l.run_id = $1 AND l.task = $2 AND l.status = 'planned'
        ORDER BY l.key, o.code),
     marked AS (
       UPDATE roundtrip.writeback_plans l SET status = 'held_back', updated_at = now()
         FROM taken t
        WHERE l.run_id = $1 AND l.task = $2 AND l.key = t.key AND l.status = 'planned'
       RETURNING l.key)
     INSERT INTO roundtrip.writeback_errors (run_id, task, key, salesforce_id, stage, code, message, payload)
     SELECT $1, $2, t.key, t.other_id, 'push', t.code, t.message, t.payload FROM taken t JOIN marked m ON m.key = t.key`,
    [runId, taskName],
  );
  if ((rowCount ?? 0) > 0) {
    logger.warn('Insert keys waiting to be sent again were taken by another run: held back, not sent', {
      records: rowCount,
    });
  }
}

/**
 * The serial retry pass for rows refused with UNABLE_TO_LOCK_ROW: one call at a time, a growing
 * pause before each round, until none is left or the retry limit turned them into failures.
 * A retry call that died (a retried step) left its records `sent` with attempts above 0: inserts
 * among them are looked up first ({@link reconcileSentInserts}; `answered` holds the seqs whose
 * call this attempt saw answered without their outcome), the others are sent again, unless
 * another run took their key meanwhile ({@link refuseWaitingKeysTakenElsewhere}). A round's calls
 * are plain Collections calls, which answer every record's outcome or fail as a whole. Stops
 * before a call `options.budget` has no time for: the next invocation goes on from the ledger
 * (the records' attempts, not the rounds, bound the retries).
 */
export async function retryLockedRows(
  deps: CoreDeps,
  sf: SalesforceConnector,
  mapping: WritebackMapping,
  runId: string,
  taskName: string,
  options: {
    lockRetries: number;
    budget: CallBudget;
    answered?: Set<number>;
    firstUnknown?: FirstUnknownOutcome;
  },
): Promise<void> {
  const { lockRetries, budget, answered = new Set<number>(), firstUnknown } = options;
  if (mapping.task.mode === 'insert') {
    const logger = deps.logger.child({ runId, task: taskName });
    await reconcileSentInserts(deps, sf, mapping, runId, taskName, logger, {
      answered,
      unsettled: 'wait',
      notFound: 'resend',
    });
    await refuseWaitingKeysTakenElsewhere(deps, mapping, runId, taskName, logger);
  }
  for (let round = 1; round <= lockRetries + 1; round += 1) {
    const { rows } = await deps.pg.query<{ n: string }>(
      `SELECT count(*) AS n FROM roundtrip.writeback_plans
        WHERE run_id = $1 AND task = $2 AND status IN ('planned', 'sent') AND attempts > 0`,
      [runId, taskName],
    );
    const waiting = Number(rows[0]?.n ?? 0);
    if (waiting === 0 || budget.handedOn) return;
    deps.logger.info('Retrying records refused with UNABLE_TO_LOCK_ROW', {
      runId,
      task: taskName,
      round,
      records: waiting,
    });
    await deps.clock.sleep(1000 * round);
    await sendCollections(
      deps,
      sf,
      mapping,
      runId,
      taskName,
      { from: 'ledger', where: `p.status IN ('planned', 'sent') AND p.attempts > 0` },
      { lockRetries, batchSize: COLLECTIONS_MAX_RECORDS, answered, budget, firstUnknown },
    );
  }
}

interface JobRow {
  job_id: string;
  state: string;
  chunk: number;
}

/**
 * Seq ranges of at most `maxBytes` of CSV each (an over-estimate: every character quoted and
 * doubled; and the `""` of each field an insert leaves out when null, which has no key in the
 * payload to count).
 */
async function bulkChunks(
  deps: CoreDeps,
  mapping: WritebackMapping,
  runId: string,
  taskName: string,
  maxBytes: number,
): Promise<{ chunk: number; first: number; last: number; rows: number }[]> {
  const perRow = 16 + 3 * fieldsLeftOutWhenNull(mapping).length;
  const { rows } = await deps.pg.query<{ chunk: string; first: string; last: string; rows: string }>(
    `SELECT chunk, min(seq) AS first, max(seq) AS last, count(*) AS rows FROM (
       SELECT seq, floor(sum(2 * octet_length(payload::text) + 2 * octet_length(coalesce(salesforce_id, '')) + ${perRow})
                         OVER (ORDER BY seq) / $3)::int AS chunk
         FROM roundtrip.writeback_plan_rows WHERE run_id = $1 AND task = $2) AS sized
      GROUP BY chunk ORDER BY chunk`,
    [runId, taskName, maxBytes],
  );
  return rows.map((r, i) => ({
    chunk: i,
    first: Number(r.first),
    last: Number(r.last),
    rows: Number(r.rows),
  }));
}

/** A plan record (`p`, of `writeback_plan_rows`) the ledger has no outcome for yet: one to send. */
const NO_OUTCOME_YET = `NOT EXISTS (SELECT 1 FROM roundtrip.writeback_plans l
                     WHERE l.run_id = p.run_id AND l.task = p.task AND l.key = p.key
                       AND l.status NOT IN ('planned', 'sent'))`;

/** `COPY (SELECT …) TO STDOUT` of a seq range in Salesforce's CSV dialect. */
export function bulkCopySql(
  mapping: WritebackMapping,
  runId: string,
  taskName: string,
  first: number,
  last: number,
  leaveOutDone = mapping.task.mode === 'insert',
): string {
  // A field an insert leaves out when null (leftOutWhenNull) gets an empty cell, which Bulk reads
  // as no value (the field takes its default), not `#N/A`, which sets null: the column is the
  // header's for every row. Its key is missing from the payload, or null in a plan stored before.
  const cols = mapping.fields.map((m) =>
    leftOutWhenNull(mapping.task.mode, m)
      ? `coalesce(p.payload->>${sqlLiteral(m.field.name)}, '') AS ${quoteIdent(m.field.name)}`
      : `p.payload->>${sqlLiteral(m.field.name)} AS ${quoteIdent(m.field.name)}`,
  );
  if (mapping.task.mode === 'update') cols.unshift(`p.salesforce_id AS "Id"`);
  // Records given an outcome before sending stay out: insert keys taken by another run
  // (refuseKeysTakenElsewhere), keys a newer run synced (supersedeKeysSyncedByNewerRuns). Only
  // when there may be such records: the test costs a ledger probe per record.
  const refused = leaveOutDone ? `AND ${NO_OUTCOME_YET}` : '';
  return `COPY (SELECT ${cols.join(', ')} FROM roundtrip.writeback_plan_rows p
                 WHERE p.run_id = ${sqlLiteral(runId)} AND p.task = ${sqlLiteral(taskName)}
                   AND ${pagesOf(first, last)} ${refused}
                 ORDER BY p.seq)
          TO STDOUT (FORMAT csv, HEADER true, NULL '${BULK_CSV_NULL}', FORCE_QUOTE *)`;
}

async function uploadChunk(
  deps: CoreDeps,
  sf: SalesforceConnector,
  mapping: WritebackMapping,
  runId: string,
  taskName: string,
  chunk: { chunk: number; first: number; last: number; rows: number },
  leaveOutDone: boolean,
  logger: Logger,
): Promise<string> {
  const job = await createIngestJob(sf, {
    object: mapping.object,
    operation: mapping.task.mode,
    ...(mapping.task.mode === 'upsert' ? { externalIdFieldName: mapping.keyField as string } : {}),
  });
  // Checkpoint before anything else: a retry finds this job instead of creating another.
  await deps.pg.query(
    `INSERT INTO roundtrip.writeback_jobs (run_id, task, job_id, api, operation, state, chunk, first_seq, last_seq, rows)
     VALUES ($1, $2, $3, 'bulk', $4, 'Open', $5, $6, $7, $8)`,
    [runId, taskName, job.id, mapping.task.mode, chunk.chunk, chunk.first, chunk.last, chunk.rows],
  );
  logger.info('Bulk ingest job created', { jobId: job.id, chunk: chunk.chunk, rows: chunk.rows });
  await withClient(deps.pg, async (client) => {
    const csv = client.query(
      copyTo(bulkCopySql(mapping, runId, taskName, chunk.first, chunk.last, leaveOutDone)),
    );
    try {
      await uploadIngestData(sf, job.id, csv);
    } catch (err) {
      // The upload stopped before it read the whole COPY: stop reading it. withClient discards
      // the client (its COPY is cut short), whose end the COPY stream reports as an error event:
      // swallowed here, the upload's own error is the one that counts.
      csv.on('error', () => undefined);
      csv.destroy();
      throw err;
    }
  });
  // The whole CSV is with Salesforce: from here a retry closes this job, never aborts it (the
  // close below may reach Salesforce even when its answer does not). Its records go into the
  // ledger as `sent` now, before the close, in the same transaction: if this run ends before it
  // records the job's outcome, a later run's plan and push see those records as sent with no
  // outcome (an insert is then never sent again) instead of planning them afresh.
  await markJobSent(deps, runId, taskName, job.id, 'Uploaded', chunk);
  await closeIngestJob(sf, job.id);
  await setJobState(deps.pg, runId, taskName, job.id, 'UploadComplete');
  return job.id;
}

/**
 * Records a job's state and writes its chunk's records into the ledger as `sent` with it, in one
 * transaction. Once per job: the `Uploaded` mark (or the re-attach of a job an earlier version
 * recorded only `Open`); later states need only {@link setJobState}.
 */
async function markJobSent(
  deps: CoreDeps,
  runId: string,
  taskName: string,
  jobId: string,
  state: string,
  chunk: { first: number; last: number },
): Promise<void> {
  await withTransaction(deps.pg, async (client) => {
    await setJobState(client, runId, taskName, jobId, state);
    await markSent(client, runId, taskName, chunk.first, chunk.last, jobId);
  });
  // Collect joins the ledger by seq right after this.
  await analyzeLedger(deps, chunk.last - chunk.first + 1);
}

async function pushBulk(
  deps: CoreDeps,
  sf: SalesforceConnector,
  mapping: WritebackMapping,
  runId: string,
  taskName: string,
  maxJobBytes: number,
  logger: Logger,
  budget: CallBudget,
): Promise<string[]> {
  const chunks = await bulkChunks(deps, mapping, runId, taskName, maxJobBytes);
  // Records refused before sending (insert keys taken elsewhere, keys a newer run synced) stay
  // out of the jobs, and a chunk left with none to send gets no job.
  const leaveOutDone = mapping.task.mode === 'insert' || (await anySuperseded(deps, runId, taskName));
  const jobIds: string[] = [];
  for (const chunk of chunks) {
    const { rows } = await deps.pg.query<JobRow>(
      `SELECT job_id, state, chunk FROM roundtrip.writeback_jobs
        WHERE run_id = $1 AND task = $2 AND api = 'bulk' AND chunk = $3 AND state <> 'Superseded'
        ORDER BY created_at DESC LIMIT 1`,
      [runId, taskName, chunk.chunk],
    );
    const existing = rows[0];
    if (existing && existing.state !== 'Open' && existing.state !== 'Uploaded') {
      logger.info('Re-attached to Bulk ingest job', { jobId: existing.job_id, state: existing.state });
      jobIds.push(existing.job_id);
      continue;
    }
    // Every other chunk calls Salesforce: the state of a job left behind, a job's upload and
    // close. Without the time for that, the next invocation goes on from this chunk.
    const admitted = existing !== undefined;
    if (admitted && !budget.mayStart('write')) break;
    if (existing) {
      // An interrupted attempt left the job here. Ask Salesforce where it is.
      let job = await getIngestJob(sf, existing.job_id);
      const uploaded = existing.state === 'Uploaded';
      if (uploaded && job.state === 'Open') job = await closeUploadedJob(sf, job.id);
      // Uploaded, or already past Open (a job recorded Open before the Uploaded mark existed):
      // its records may be processed, so it is re-attached, never replaced. One aborted by hand
      // is collected too: its records without a result are reported, not sent twice.
      if (uploaded || (job.state !== 'Open' && job.state !== 'Aborted')) {
        // An Uploaded job's records are in the ledger with it already.
        if (uploaded) await setJobState(deps.pg, runId, taskName, job.id, job.state);
        else await markJobSent(deps, runId, taskName, job.id, job.state, chunk);
        logger.info('Re-attached to Bulk ingest job closed by an interrupted attempt', {
          jobId: job.id,
          state: job.state,
        });
        jobIds.push(job.id);
        continue;
      }
      // Recorded Open: no close was ever sent for it, so Salesforce processed nothing of it.
      // Abort it and start over.
      if (job.state === 'Open') await abortIngestJob(sf, job.id);
      await deps.pg.query(
        `UPDATE roundtrip.writeback_jobs SET state = 'Superseded', error_message = $4, updated_at = now()
          WHERE run_id = $1 AND task = $2 AND job_id = $3`,
        [
          runId,
          taskName,
          job.id,
          `was ${job.state} when a retried push found it; aborted and replaced before any record was processed`,
        ],
      );
      logger.warn('Replaced a Bulk ingest job left Open by an interrupted attempt', { jobId: job.id });
    }
    if (leaveOutDone && !(await anyToSend(deps, runId, taskName, chunk))) {
      logger.warn('Every record of a Bulk chunk was refused or superseded before sending; no job for it', {
        chunk: chunk.chunk,
      });
      continue;
    }
    if (!admitted && !budget.mayStart('write')) break;
    jobIds.push(await uploadChunk(deps, sf, mapping, runId, taskName, chunk, leaveOutDone, logger));
  }
  return jobIds;
}

/** Whether the run's ledger holds records of the task superseded before sending. */
async function anySuperseded(deps: CoreDeps, runId: string, taskName: string): Promise<boolean> {
  const { rowCount } = await deps.pg.query(
    `SELECT 1 FROM roundtrip.writeback_plans WHERE run_id = $1 AND task = $2 AND status = 'superseded' LIMIT 1`,
    [runId, taskName],
  );
  return (rowCount ?? 0) > 0;
}

/** Whether a seq range holds a record without an outcome in the ledger (one to send). */
async function anyToSend(
  deps: CoreDeps,
  runId: string,
  taskName: string,
  chunk: { first: number; last: number },
): Promise<boolean> {
  const { rowCount } = await deps.pg.query(
    `SELECT 1 FROM roundtrip.writeback_plan_rows p
      WHERE p.run_id = $1 AND p.task = $2 AND ${pagesOf(chunk.first, chunk.last)}
        AND ${NO_OUTCOME_YET}
      LIMIT 1`,
    [runId, taskName],
  );
  return (rowCount ?? 0) > 0;
}

/** Whether keys `a` and `b` name one record, as Salesforce tells them apart ({@link keyIdentity}). */
function sameKey(mapping: WritebackMapping, a: string, b: string): string {
  return `${keyIdentity(mapping, a).sql} = ${keyIdentity(mapping, b).sql}`;
}

/**
 * Insert keys another run (not $1) of task $2 has inserted (its Salesforce Id in sync_state) or
 * sent with no outcome yet: `key, code, other_id, message`.
 */
const TAKEN_ELSEWHERE_SQL = `
  SELECT s.key, 'ALREADY_INSERTED' AS code, s.salesforce_id AS other_id,
         format('inserted as %s by run %s after this run planned it (the runs overlapped): not inserted again', s.salesforce_id, s.run_id) AS message
    FROM roundtrip.sync_state s
   WHERE s.task = $2 AND s.salesforce_id IS NOT NULL AND s.run_id IS DISTINCT FROM $1
  UNION ALL
  SELECT l.key, 'INSERT_PENDING_ELSEWHERE', NULL,
         format('sent for insert by run %s, whose result is not recorded yet: not inserted again by this run', l.run_id)
    FROM roundtrip.writeback_plans l
   WHERE l.task = $2 AND l.status = 'sent' AND l.run_id <> $1`;

/**
 * Insert: the plan's records whose key another run inserted, or sent with no outcome yet, after
 * this plan was made (runs that overlapped) are held back here, before anything is sent: inserting
 * them would duplicate the record. Their ledger rows are written `held_back` (an outcome: no pass
 * sends them), with an error naming the other run (stage `push`, a code of `HELD_BACK_CODES`).
 * Not failures: Salesforce refused nothing, and a later plan decides from the other run's outcome
 * (a key it inserted is not sent again; one whose send created nothing is inserted then).
 */
async function refuseKeysTakenElsewhere(
  deps: CoreDeps,
  mapping: WritebackMapping,
  runId: string,
  taskName: string,
  logger: Logger,
): Promise<void> {
  const { rowCount } = await deps.pg.query(
    `WITH taken AS (
       SELECT DISTINCT ON (p.key) p.key, p.seq, p.salesforce_id, p.operation, p.payload, p.current, o.code, o.message, o.other_id
         FROM roundtrip.writeback_plan_rows p
         JOIN (${TAKEN_ELSEWHERE_SQL}) AS o ON ${sameKey(mapping, 'o.key', 'p.key')}
        WHERE p.run_id = $1 AND p.task = $2
          AND NOT EXISTS (SELECT 1 FROM roundtrip.writeback_plans mine
                           WHERE mine.run_id = $1 AND mine.task = $2 AND mine.key = p.key)
        ORDER BY p.key, o.code),
     marked AS (
       INSERT INTO roundtrip.writeback_plans (run_id, task, key, seq, salesforce_id, operation, payload, current, value_hash, status)
       SELECT $1, $2, key, seq, salesforce_id, operation, payload, current, md5(payload::text), 'held_back' FROM taken
       ON CONFLICT (run_id, task, key) DO NOTHING
       RETURNING key)
     INSERT INTO roundtrip.writeback_errors (run_id, task, key, salesforce_id, stage, code, message, payload)
     SELECT $1, $2, t.key, t.other_id, 'push', t.code, t.message, t.payload FROM taken t JOIN marked m ON m.key = t.key`,
    [runId, taskName],
  );
  if ((rowCount ?? 0) > 0) {
    logger.warn('Insert keys taken by another run since the plan: held back, not sent', {
      records: rowCount,
    });
  }
}

/**
 * The runs of task $2 that planned after run $1 (runs that overlap: started by hand), by the time
 * each plan's transaction stored its pages (PostgreSQL's clock, one for every run): what such a
 * plan sends was read from the source later than what this run's plan holds. A plan that sent
 * nothing has no pages, and synced nothing. Pages are pruned a day after their run ended at the
 * soonest (`keepRunDetailsDays` ≥ 1), while a run still pushing started within 13 hours.
 */
async function runsPlannedSince(deps: CoreDeps, runId: string, taskName: string): Promise<string[]> {
  const { rows } = await deps.pg.query<{ run_id: string }>(
    `SELECT n.run_id FROM roundtrip.writeback_plan_pages n
       JOIN roundtrip.writeback_plan_pages mine ON mine.run_id = $1 AND mine.task = $2 AND mine.page = 0
      WHERE n.task = $2 AND n.page = 0 AND n.run_id <> $1 AND n.created_at > mine.created_at`,
    [runId, taskName],
  );
  return rows.map((r) => r.run_id);
}

/**
 * Update and upsert: the plan's records whose key a run that planned after this one has synced
 * (its `sync_state` row: Salesforce holds that run's values, newer than this plan's) are not sent.
 * Sent, this run's older values would overwrite them until the next run. Their ledger rows are
 * written `superseded` (an outcome: no pass sends them; not a failure, nor held back), and the
 * key's `sync_state` stays as the newer run wrote it. Judged per key: a key the newer run did not
 * sync (its source had no change for it, or Salesforce refused it) is sent as planned. A key whose
 * newer send has no known outcome (`sync_state` value hash `unknown`) is sent too: Salesforce may
 * hold older values than this plan's.
 *
 * Records this run has sent already are left alone: their outcome is collected as before. Records
 * waiting for a row-lock retry (refused, so not written) are superseded as well, when a newer run
 * synced their key while this run's step was failing or handed on.
 *
 * Costs one read of the plans' first pages when no other run planned since (the usual case:
 * scheduled runs do not overlap), and a scan of the task's `sync_state` rows of the newer runs when
 * one did.
 */
async function supersedeKeysSyncedByNewerRuns(
  deps: CoreDeps,
  mapping: WritebackMapping,
  runId: string,
  taskName: string,
  logger: Logger,
): Promise<void> {
  const newer = await runsPlannedSince(deps, runId, taskName);
  if (newer.length === 0) return;
  const { rows } = await deps.pg.query<{ n: number }>(
    `WITH synced AS (
       SELECT s.key, s.run_id FROM roundtrip.sync_state s
        WHERE s.task = $2 AND s.run_id = ANY($3::text[]) AND s.value_hash <> $4),
     unsent AS (
       SELECT DISTINCT ON (p.key) p.key, p.seq, p.salesforce_id, p.operation, p.payload, p.current
         FROM roundtrip.writeback_plan_rows p
         JOIN synced o ON ${sameKey(mapping, 'o.key', 'p.key')}
        WHERE p.run_id = $1 AND p.task = $2
          AND NOT EXISTS (SELECT 1 FROM roundtrip.writeback_plans mine
                           WHERE mine.run_id = $1 AND mine.task = $2 AND mine.key = p.key)
        ORDER BY p.key),
     marked AS (
       INSERT INTO roundtrip.writeback_plans (run_id, task, key, seq, salesforce_id, operation, payload, current, value_hash, status)
       SELECT $1, $2, key, seq, salesforce_id, operation, payload, current, md5(payload::text), 'superseded' FROM unsent
       ON CONFLICT (run_id, task, key) DO NOTHING
       RETURNING 1),
     waiting AS (
       UPDATE roundtrip.writeback_plans l SET status = 'superseded', updated_at = now()
        WHERE l.run_id = $1 AND l.task = $2 AND l.status = 'planned' AND l.attempts > 0
          AND EXISTS (SELECT 1 FROM synced o WHERE ${sameKey(mapping, 'o.key', 'l.key')})
       RETURNING 1)
     SELECT (SELECT count(*) FROM marked)::int + (SELECT count(*) FROM waiting)::int AS n`,
    [runId, taskName, newer, UNKNOWN_VALUE_HASH],
  );
  const superseded = rows[0]?.n ?? 0;
  if (superseded > 0) {
    logger.warn('Keys synced by a run that planned after this one: superseded, not sent', {
      records: superseded,
      newerRuns: newer,
    });
  }
}

/**
 * Pushes the stored plan of a task (see the module comment). Answers `collected` for Collections
 * (every result applied, row-lock retries done) and `bulk-pending` with the job ids for Bulk:
 * the state machine then waits and calls {@link collectWriteback}.
 */
export async function pushWriteback(
  deps: CoreDeps,
  input: WritebackPushInput,
  options: PushOptions = {},
): Promise<WritebackPushOutput> {
  const task = writebackTaskOf(deps, input.task);
  const logger = deps.logger.child({ runId: input.runId, task: input.task, step: 'writeback-push' });
  const { rows } = await deps.pg.query<{ dry: boolean | null }>(
    `SELECT (summary->'writeback'->$2->>'dryRun')::boolean AS dry FROM roundtrip.runs WHERE run_id = $1`,
    [input.runId, input.task],
  );
  if (rows[0]?.dry) {
    throw new TerminalError(`Run ${input.runId} planned ${input.task} as a dry run: a dry run sends nothing`);
  }
  const total = await plannedRecords(deps, input.runId, input.task);
  const api = choosePushApi(total, task);
  if (api === 'none')
    return withApiCallsSoFar(deps, await finishWriteback(deps, input.runId, task, input.task, 'none'));
  return withApiCallsSoFar(
    deps,
    await withTaskLock(deps, input.task, () => pushLocked(deps, input, options, task, api, logger)),
  );
}

/** How many of the records of `seqs` are `sent` still, without an outcome. */
async function stillSent(
  deps: CoreDeps,
  runId: string,
  taskName: string,
  seqs: ReadonlySet<number>,
): Promise<number> {
  if (seqs.size === 0) return 0;
  const { rows } = await deps.pg.query<{ n: string }>(
    `SELECT count(*) AS n FROM roundtrip.writeback_plans
      WHERE run_id = $1 AND task = $2 AND seq = ANY($3::bigint[]) AND status = 'sent'`,
    [runId, taskName, [...seqs]],
  );
  return Number(rows[0]?.n ?? 0);
}

/**
 * The answer of a push that stopped for want of time (budget.ts): every call made has its results
 * recorded. Insert records whose call Salesforce answered without their outcome are looked up
 * now, while this invocation knows that their call is over (the next one could not tell, and would
 * wait 11 minutes, INSERT_SETTLE_MS of reconcile.ts, before looking them up).
 *
 * Records of this invocation's calls still without an outcome then (a Composite subrequest that
 * failed on Salesforce's side: update and upsert records, inserts not found) make the step fail
 * transiently, as at the end of a push that had the time ({@link finishWriteback}), instead of
 * handing on: the next invocation sends them first, and when its time covers only that one call, a
 * subrequest that keeps failing would be sent again by every invocation, each answering
 * push-pending, the rest of the plan never sent and the loop never ended. The state machine's
 * retries of a failing step are counted, and bounded.
 */
async function handOnPush(
  deps: CoreDeps,
  sf: SalesforceConnector,
  mapping: WritebackMapping,
  input: WritebackPushInput,
  api: WritebackPushPending['api'],
  answered: ReadonlySet<number>,
  logger: Logger,
  firstUnknown?: FirstUnknownOutcome,
  refused?: RefusedSubrequests,
): Promise<WritebackPushPending> {
  // A refusal no retry helps (the daily allowance spent) stops the run now, as the call would
  // have refused as a whole; a transient one (a throttle) is handed on: the next invocation
  // sends its records.
  const refusal = await refusedSubrequestError(deps, input.runId, input.task, refused, {
    records: refused?.first ? await stillSent(deps, input.runId, input.task, answered) : 0,
    first: firstUnknown,
  });
  if (refusal instanceof TerminalError) throw refusal;
  if (mapping.task.mode === 'insert' && answered.size > 0) {
    await reconcileSentInserts(deps, sf, mapping, input.runId, input.task, logger, {
      answered,
      unsettled: 'keep',
      notFound: 'resend',
    });
  }
  if (answered.size > 0) {
    const { rows: open } = await deps.pg.query<{ n: string }>(
      `SELECT count(*) AS n FROM roundtrip.writeback_plans
        WHERE run_id = $1 AND task = $2 AND seq = ANY($3::bigint[]) AND status IN ('planned', 'sent')`,
      [input.runId, input.task, [...answered]],
    );
    const unknown = Number(open[0]?.n ?? 0);
    if (unknown > 0) {
      const cause = await unknownOutcomeCause(deps, input.runId, input.task, firstUnknown);
      throw new TransientError(
        `Write-back ${input.task}: ${unknown} records of a call that failed on Salesforce's side have no outcome yet; retry the step, which sends them again first${cause}`,
      );
    }
  }
  await markPushGoingOn(deps, input.runId, input.task);
  const planned = await plannedRecords(deps, input.runId, input.task);
  const { rows } = await deps.pg.query<{ done: string }>(
    `SELECT count(*) AS done FROM roundtrip.writeback_plans
      WHERE run_id = $1 AND task = $2 AND status IN ('succeeded', 'failed', 'held_back', 'superseded')`,
    [input.runId, input.task],
  );
  const done = Number(rows[0]?.done ?? 0);
  logger.info('Push handed on: too little time left in this invocation for another call', {
    api,
    planned,
    done,
  });
  return { status: 'push-pending', runId: input.runId, task: input.task, api, planned, done };
}

async function pushLocked(
  deps: CoreDeps,
  input: WritebackPushInput,
  options: PushOptions,
  task: WritebackTask,
  api: 'collections' | 'bulk',
  logger: Logger,
): Promise<WritebackPushOutput> {
  // Before any call: a push that waits spends none.
  await refuseWhileAnotherPushGoesOn(deps, input.runId, input.task);
  const sf = await salesforceOf(deps, `Write-back ${input.task}`);
  const callsBefore = sf.apiCalls;
  const describe = await sf.describe(task.object);
  const configPath = writebackConfigPath(deps.config, task);
  let mapping: WritebackMapping;
  try {
    mapping = mapWritebackTask(task, describe, { configPath, step: 'push' });
  } catch (err) {
    // Once every record of the plan was sent (a push retried, or handed on, after its last first
    // send), what is left is applying results and sending again what the plan stored: the key
    // alone is mapped, as Collect maps it, so that a mapped field deleted in Salesforce since does
    // not fail a step that Salesforce has answered for every record (the next plan reports the
    // field). Asked only when the whole mapping fails: counting the ledger costs every push.
    if (!(await everyRecordSent(deps, input.runId, input.task))) throw err;
    mapping = mapWritebackTask(task, describe, {
      configPath,
      step: 'push',
      checkAccess: false,
      keyOnly: true,
    });
  }
  const lockRetries = options.lockRetries ?? ROW_LOCK_RETRIES;
  // Records whose call this attempt saw answered without their outcome: looked up at once.
  const answered = new Set<number>();
  // The first of them, with Salesforce's error, for the step's error should they stay so.
  const firstUnknown: FirstUnknownOutcome = {};
  // Records of Composite subrequests refused for a reason about the call, with the first refusal.
  const refused: RefusedSubrequests = { seqs: new Set<number>() };
  const budget = new CallBudget(options.timeLeft, sf.timeouts);
  // The calls spent are recorded whether the push ends or fails; when it failed and the record
  // fails too (PostgreSQL down), the push's own error is the one thrown.
  return withStepApiCalls(
    deps,
    sf,
    callsBefore,
    input,
    'push',
    logger,
    async (): Promise<WritebackPushOutput> => {
      if (task.mode === 'insert') {
        if (api === 'collections')
          await reconcileSentInserts(deps, sf, mapping, input.runId, input.task, logger, {
            answered,
            unsettled: 'wait',
            notFound: 'resend',
          });
        await refuseKeysTakenElsewhere(deps, mapping, input.runId, input.task, logger);
        await refuseWaitingKeysTakenElsewhere(deps, mapping, input.runId, input.task, logger);
      } else {
        await supersedeKeysSyncedByNewerRuns(deps, mapping, input.runId, input.task, logger);
      }
      if (api === 'collections') {
        const calls = await sendCollections(
          deps,
          sf,
          mapping,
          input.runId,
          input.task,
          { from: 'pages' },
          { lockRetries, batchSize: COMPOSITE_MAX_RECORDS, answered, budget, firstUnknown, refused },
        );
        logger.info(
          budget.handedOn
            ? 'Part of the plan sent with sObject Collections'
            : 'Plan sent with sObject Collections',
          { calls },
        );
        if (!budget.handedOn) {
          await retryLockedRows(deps, sf, mapping, input.runId, input.task, {
            lockRetries,
            budget,
            answered,
            firstUnknown,
          });
        }
        if (!budget.handedOn && task.mode === 'upsert') {
          await reportRecordsCreatedBeside(deps, sf, {
            runId: input.runId,
            task: input.task,
            object: mapping.object,
            keyField: mapping.keyField ?? task.key,
            budget,
          });
        }
        if (budget.handedOn)
          return await handOnPush(
            deps,
            sf,
            mapping,
            input,
            'collections',
            answered,
            logger,
            firstUnknown,
            refused,
          );
        return await finishWriteback(
          deps,
          input.runId,
          task,
          input.task,
          'collections',
          firstUnknown,
          refused,
        );
      }
      const jobIds = await pushBulk(
        deps,
        sf,
        mapping,
        input.runId,
        input.task,
        options.maxJobBytes ?? BULK_INGEST_MAX_UPLOAD_BYTES - UPLOAD_MARGIN_BYTES,
        logger,
        budget,
      );
      if (budget.handedOn) return await handOnPush(deps, sf, mapping, input, 'bulk', answered, logger);
      // Every chunk refused or superseded before sending (runs that overlap): no job to wait for.
      if (jobIds.length === 0) return await finishWriteback(deps, input.runId, task, input.task, 'bulk');
      // Collect goes on with the jobs: until their results are in, other runs' pushes wait.
      await markPushGoingOn(deps, input.runId, input.task);
      return {
        status: 'bulk-pending',
        runId: input.runId,
        task: input.task,
        jobIds,
        attempt: 0,
        waitSeconds: bulkPollDelaySeconds(0),
      };
    },
  );
}
