/**
 * Insert records whose result was never recorded (an attempt that died between sending and
 * recording, a call whose answer was lost), resolved by looking their external ID up in
 * Salesforce: a record created since the send is recorded, a key never created is sent again or
 * released. The push reconciles its own run's records ({@link reconcileSentInserts}); the plan
 * resolves those of runs that ended ({@link resolveEndedRuns}): their inserts so, their update and
 * upsert records by collecting their Bulk jobs or sending the records' current values again, and
 * it aborts the update and upsert Bulk jobs they left `Open` in Salesforce.
 */
import type { PoolClient } from 'pg';
import type { SalesforceConnector } from '../../connectors/salesforce';
import {
  abortIngestJob,
  closeIngestJob,
  getIngestJob,
  type IngestJob,
  isFinalIngestState,
  queryAllRecords,
  soqlInLists,
} from '../../connectors/salesforce/writes';
import { exactTimestampTextSql, withTransaction } from '../../connectors/postgres';
import { TaskBusyError, TransientError } from '../../shared/errors';
import type { Logger } from '../../shared/logging';
import type { CoreDeps } from '../deps';
import { collectJob, finishedJob } from './bulk-results';
import { ifTaskLockFree } from './lock';
import { pruneResolvedDetails } from './report';
import {
  heldBackFigures,
  ledgerOutcomes,
  mergeRunSummary,
  outcomeUnknownOf,
  recountFromLedger,
  storedCount,
} from './state';
import { holdsMoreThanDouble } from './numbers';
import type { WritebackMapping } from './plan';
import { resolveCommandSql } from './resolve-command';
import {
  applyResults,
  countSecondRecords,
  CREATED_BESIDE_CODE,
  createResultsTable,
  insertCollectionResults,
  reportRecordsCreatedBeside,
} from './results';

/** A decimal's text without trailing fractional zeros (`42.00` → `42`, `-0.50` → `-0.5`). */
function decimalText(v: string): string {
  const t = v.trim();
  if (!/^-?\d+(\.\d+)?$/.test(t)) return t;
  const trimmed = t.includes('.') ? t.replace(/\.?0+$/, '') : t;
  return trimmed === '-0' ? '0' : trimmed;
}

/**
 * How far Salesforce's clock may be behind PostgreSQL's when an insert's look-up compares a
 * record's CreatedDate with the time its row was marked `sent` (just before the call).
 */
export const RECONCILE_CLOCK_SKEW_MS = 5 * 60 * 1000;

/**
 * How long after an insert was sent Salesforce may still create its record: "The timeout limit for
 * REST and SOAP API calls is 10 minutes" (API Request Limits and Allocations, API Timeout Limits),
 * and a minute more for the request's way there. A look-up that finds no record for a key sent
 * less long ago proves nothing: the call that carried it may still be running.
 */
export const INSERT_SETTLE_MS = 11 * 60 * 1000;

/**
 * Ledger rows (`writeback_plans`, as `alias`) sent by a Collections call: no Bulk job, or sent
 * again by the row-lock retry pass (`attempts` > 0), which keeps the job the row first went in.
 */
export function sentByCall(alias = ''): string {
  const a = alias ? `${alias}.` : '';
  return `(${a}job_id IS NULL OR ${a}attempts > 0)`;
}

/**
 * How a ledger row left `sent` (`writeback_plans` as `p`, its job in `writeback_jobs` joined as `j`)
 * went out: `'call'` ({@link sentByCall}), `'job'` (a Bulk job not collected yet, whose results
 * will tell) or `'gone'` (a Bulk job collected while the row stayed `sent`: Salesforce no longer
 * answered for it; {@link sentWithoutResults}). Read so by the plan, resolve and `roundtrip errors`.
 */
export function sentHowSql(p = 'p', j = 'j'): string {
  return `CASE WHEN ${sentByCall(p)} THEN 'call' WHEN ${j}.collected_at IS NULL THEN 'job' ELSE 'gone' END`;
}

/**
 * Ledger rows (`writeback_plans`, as `alias`) whose outcome only a look-up can tell: sent by a
 * Collections call ({@link sentByCall}), or carried by a Bulk job Salesforce no longer answers for
 * (recorded `NotFound`, collected: its results are gone with it; readJobOfEndedRun). A row of a
 * job collected has an outcome or counts an attempt (collectJob fails those without a result, or,
 * of a job that completed, gives them the attempt of a call whose answer was lost), so a row still `sent`
 * with its job collected is one of such a job. Rows of a Bulk job that can still be collected are
 * left out: its results tell.
 */
function sentWithoutResults(alias: string): string {
  return `(${sentByCall(alias)} OR EXISTS (SELECT 1 FROM roundtrip.writeback_jobs gone
     WHERE gone.run_id = ${alias}.run_id AND gone.task = ${alias}.task AND gone.job_id = ${alias}.job_id
       AND gone.collected_at IS NOT NULL))`;
}

/**
 * Closes a Bulk job whose whole CSV was uploaded (recorded `Uploaded`) and that Salesforce still
 * has `Open`: for a retried push, and for the plan that resolves a run which ended so. The
 * interrupted attempt's close may have reached Salesforce after all, later than the job was read
 * `Open`: then this close is refused, and the job's state read again says where it went.
 */
export async function closeUploadedJob(sf: SalesforceConnector, jobId: string): Promise<IngestJob> {
  try {
    return await closeIngestJob(sf, jobId);
  } catch (err) {
    const job = await getIngestJob(sf, jobId);
    if (job.state === 'Open') throw err;
    return job;
  }
}

/**
 * Aborts a Bulk job that Salesforce has `Open` (never closed: it processed nothing). An abort may
 * reach Salesforce and lose its answer, and a close of the run that left the job may still arrive
 * late: a refused or unanswered abort reads the job again, and a job found `Aborted` is done (an
 * abort sent again would be refused), one found past `Open` is answered as it is (started by
 * that close: not aborted). Only a job still `Open` then fails with the abort's error.
 */
async function abortOpenJob(sf: SalesforceConnector, jobId: string): Promise<IngestJob> {
  try {
    return await abortIngestJob(sf, jobId);
  } catch (err) {
    const job = await getIngestJob(sf, jobId);
    if (job.state === 'Open') throw err;
    return job;
  }
}

/**
 * Changes the state of a Bulk job an ended run left (aborts or closes it). Refused, the job stays
 * as it is for a later plan: logged with `refused`, answered undefined. A transient error fails
 * the step, which is retried.
 */
async function changeJobOfEndedRun(
  change: () => Promise<IngestJob>,
  j: { run_id: string; job_id: string },
  logger: Logger,
  refused: string,
  unread: Map<string, string>,
): Promise<IngestJob | undefined> {
  try {
    return await change();
  } catch (err) {
    if (err instanceof TransientError) throw err;
    logger.warn(refused, { runId: j.run_id, jobId: j.job_id, error: (err as Error).message });
    unread.set(j.job_id, `${refused}: ${(err as Error).message}`);
    return undefined;
  }
}

/** Records a job's state in `writeback_jobs`. */
export async function setJobState(
  db: Pick<PoolClient, 'query'>,
  runId: string,
  taskName: string,
  jobId: string,
  state: string,
): Promise<void> {
  await db.query(
    `UPDATE roundtrip.writeback_jobs SET state = $4, updated_at = now() WHERE run_id = $1 AND task = $2 AND job_id = $3`,
    [runId, taskName, jobId, state],
  );
}

/**
 * SQL: sets to status `$5` the `sent` ledger rows of run `$1`, task `$2` at the seqs `$3` whose
 * `sent` mark is still as read (`$4`, their `updated_at` as text, exactTimestampTextSql): a row sent again since, by a
 * live attempt, is not the caller's to judge.
 */
const SENT_AS_READ_SQL = `UPDATE roundtrip.writeback_plans p SET status = $5, updated_at = now()
    FROM unnest($3::bigint[], $4::text[]) AS x(seq, sent_at)
   WHERE p.run_id = $1 AND p.task = $2 AND p.status = 'sent' AND p.seq = x.seq
     AND p.updated_at = x.sent_at::timestamptz`;

/** An insert's ledger row left `sent`: its seq, and its `sent` mark as read (`updated_at` as exactTimestampTextSql's text). */
export interface SentInsertRow {
  readonly seq: number;
  readonly sentAt: string;
}

/**
 * Records insert rows of run `runId` that were found created in Salesforce, each with its
 * record's Id, as a call's successes are recorded (results.ts, applyResults): the ledger row
 * `succeeded` with the Id, and the key's `sync_state` row, so that no plan inserts it again.
 * Answers how many were recorded. In the caller's transaction.
 */
export async function recordInsertsCreated(
  client: PoolClient,
  runId: string,
  taskName: string,
  created: readonly { seq: number; id: string }[],
  syncedAt: Date,
): Promise<number> {
  if (created.length === 0) return 0;
  await createResultsTable(client);
  await insertCollectionResults(
    client,
    created.map((c) => c.seq),
    created.map((c) => ({ id: c.id, success: true, errors: [] })),
  );
  return (await applyResults(client, { runId, task: taskName, jobId: null, syncedAt })).succeeded;
}

/**
 * Releases insert rows of run `runId` that were never created in Salesforce: each becomes
 * `failed`, with a `NOT_INSERTED` error in that run saying `message`, and its key is free for the
 * next plan, which inserts it. Only rows still `sent` as read ({@link SentInsertRow}). Answers how
 * many were released. In the caller's transaction.
 */
export async function releaseInserts(
  client: PoolClient,
  runId: string,
  taskName: string,
  rows: readonly SentInsertRow[],
  message: string,
): Promise<number> {
  if (rows.length === 0) return 0;
  const { rowCount } = await client.query(
    `WITH released AS (${SENT_AS_READ_SQL} RETURNING p.key, p.payload)
     INSERT INTO roundtrip.writeback_errors (run_id, task, key, stage, code, message, payload)
     SELECT $1, $2, key, 'push', 'NOT_INSERTED', $6, payload FROM released`,
    [runId, taskName, rows.map((r) => r.seq), rows.map((r) => r.sentAt), 'failed', message],
  );
  return rowCount ?? 0;
}

/** How {@link reconcileSentInserts} treats the rows it does not find in Salesforce. */
export interface ReconcileOptions {
  /** Seqs whose call Salesforce answered without their outcome: the call is over. */
  readonly answered: ReadonlySet<number>;
  /**
   * Sent less than {@link INSERT_SETTLE_MS} ago (their call may still be running): `wait` ends
   * the step with a TaskBusyError (it is retried later), `keep` leaves them `sent`.
   */
  readonly unsettled: 'wait' | 'keep';
  /**
   * Not created, and their call is over: `resend` makes them `planned` again (the run sends them),
   * `release` makes them `failed` with a `NOT_INSERTED` error naming `releasedBy` (a run that
   * has ended sends nothing more; the key is free for the next plan).
   */
  readonly notFound: 'resend' | 'release';
  readonly releasedBy?: string;
  /**
   * Only rows no Bulk job will answer for: sent by Collections calls, or in a job Salesforce no
   * longer answers for ({@link sentWithoutResults}). The others are collected with their job.
   */
  readonly withoutResultsOnly?: boolean;
  /**
   * Run `runId` has ended: its figures are counted again from its ledger in the transaction that
   * records and releases its rows, naming this run (the planning one) as the one that resolved
   * them ({@link refreshEndedRunIn}). In a transaction of their own, a Lambda that died between
   * the two left the rows resolved and the figures saying they were not, for ever: the plan's
   * retry finds nothing left to resolve.
   */
  readonly refreshEndedRunBy?: string;
}

/** Counts of one {@link reconcileSentInserts}. */
export interface Reconciled {
  readonly sent: number;
  readonly recorded: number;
  readonly notFound: number;
  readonly unsettled: number;
}

/**
 * Insert rows of run `runId` left `sent` by an attempt that died between sending and recording:
 * looked up by external ID and recorded when found; the others were never created, once the call
 * that carried them can no longer create them ({@link INSERT_SETTLE_MS} after they were sent)
 * or Salesforce answered it (`options.answered`): they are sent again, or released
 * ({@link ReconcileOptions}). Without an external-ID key they are reported, not resent.
 */
export async function reconcileSentInserts(
  deps: CoreDeps,
  sf: SalesforceConnector,
  mapping: WritebackMapping,
  runId: string,
  taskName: string,
  logger: Logger,
  options: ReconcileOptions,
): Promise<Reconciled> {
  const { rows } = await deps.pg.query<{
    seq: string;
    keyvalue: string | null;
    sent_ms: number;
    age_ms: number;
    sent_at: string;
  }>(
    `SELECT seq, payload->>$3 AS keyvalue, (extract(epoch FROM updated_at) * 1000)::float8 AS sent_ms,
            (extract(epoch FROM now() - updated_at) * 1000)::float8 AS age_ms, ${exactTimestampTextSql('updated_at')} AS sent_at
       FROM roundtrip.writeback_plans p
      WHERE run_id = $1 AND task = $2 AND status = 'sent' ${options.withoutResultsOnly ? `AND ${sentWithoutResults('p')}` : ''}
      ORDER BY seq`,
    [runId, taskName, mapping.keyField ?? ''],
  );
  const none = { sent: rows.length, recorded: 0, notFound: 0, unsettled: 0 };
  if (rows.length === 0) return none;
  const keyField = mapping.keyField;
  if (!keyField) {
    await withTransaction(deps.pg, async (client) => {
      await client.query(
        `WITH unknown AS (
           UPDATE roundtrip.writeback_plans SET status = 'failed', updated_at = now()
            WHERE run_id = $1 AND task = $2 AND status = 'sent' AND seq = ANY ($3::bigint[]) RETURNING key, payload)
         INSERT INTO roundtrip.writeback_errors (run_id, task, key, stage, code, message, payload)
         SELECT $1, $2, key, 'push', 'INSERT_OUTCOME_UNKNOWN',
                format('sent for insert, and Salesforce''s answer was lost after sending (cut off on its way, or the attempt that sent it ended before recording it): the record may have been created; without an external-ID key it cannot be looked up, so it is not sent again, and the task''s next plans hold its key back until you find the record in Salesforce and record what you found with %s; an upsert by an external ID makes this automatic', ${resolveCommandSql(taskName, 'key')}),
                payload
           FROM unknown`,
        // Only the rows read above (the caller's selection, options.withoutResultsOnly).
        [runId, taskName, rows.map((r) => r.seq)],
      );
    });
    logger.warn('Insert rows with unknown outcome reported, not resent', { rows: rows.length });
    return none;
  }
  // A number key is sent and compared as a number: SOQL refuses a quoted number, and Salesforce
  // answers 42 for the 42.00 the payload holds.
  const keyMapped = mapping.fields.find((m) => m.isKey);
  const numeric = keyMapped?.kind === 'int' || keyMapped?.kind === 'number';
  const soqlLiteral = (v: string): string =>
    numeric ? decimalText(v) : `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  // Salesforce answers the key as it stores it: a text key that is not case-sensitive may come
  // back in another case than the payload's (another run wrote it so).
  const foldCase = !numeric && keyMapped?.field.caseSensitive !== true;
  // A key of more than 15 digits comes back as a JSON number, parsed into the nearest double: the
  // sent key is that double too (the plan tells such keys apart by it, keyIdentity).
  const asDouble = keyMapped !== undefined && holdsMoreThanDouble(keyMapped);
  const keyOf = (v: unknown): string =>
    asDouble
      ? String(Number(v))
      : numeric
        ? decimalText(String(v))
        : foldCase
          ? String(v).toLowerCase()
          : String(v);
  // Every record holding a sent key, with its creation time: only one created after the send is
  // ours (a record that had the key before was not created by this insert, which Salesforce then
  // refused or, for a key that is not unique, never got to send). Through queryAll: a record the
  // insert created and someone deleted since (in the recycle bin) was created all the same, and
  // is recorded, not inserted a second time.
  const found = new Map<string, { id: string; createdMs: number }[]>();
  const select = `SELECT Id, ${keyField}, CreatedDate FROM ${mapping.object} WHERE ${keyField} IN `;
  const values = rows.map((r) => r.keyvalue).filter((v): v is string => v !== null);
  for (const { list } of soqlInLists(select, values, soqlLiteral)) {
    const records = await queryAllRecords<Record<string, unknown>>(sf, `${select}(${list})`, {
      includeDeleted: true,
    });
    for (const r of records) {
      const value = r[keyField];
      if (typeof r.Id !== 'string' || value === null || value === undefined) continue;
      const holders = found.get(keyOf(value)) ?? [];
      holders.push({ id: r.Id, createdMs: Date.parse(String(r.CreatedDate)) });
      found.set(keyOf(value), holders);
    }
  }
  const created: { seq: number; id: string }[] = [];
  // Not found, and sent too recently to be sure the call that carried them is over.
  const settling: { seq: number; ageMs: number }[] = [];
  // Not found, and their call is over: never created (each with its `sent` mark as read).
  const notCreated: { seq: number; sentAt: string }[] = [];
  for (const r of rows) {
    const ours = (r.keyvalue === null ? [] : (found.get(keyOf(r.keyvalue)) ?? []))
      .filter((c) => !(c.createdMs < r.sent_ms - RECONCILE_CLOCK_SKEW_MS))
      .sort((a, b) => a.createdMs - b.createdMs)[0];
    if (ours) {
      created.push({ seq: Number(r.seq), id: ours.id });
    } else if (r.age_ms < INSERT_SETTLE_MS && !options.answered.has(Number(r.seq))) {
      settling.push({ seq: Number(r.seq), ageMs: r.age_ms });
    } else {
      notCreated.push({ seq: Number(r.seq), sentAt: r.sent_at });
    }
  }
  await withTransaction(deps.pg, async (client) => {
    await recordInsertsCreated(client, runId, taskName, created, deps.clock.now());
    // Not found in Salesforce, and the call that carried them is over: never created, safe to
    // send. The settling ones stay `sent`, to be looked up again.
    if (notCreated.length > 0 && options.notFound === 'resend') {
      await client.query(SENT_AS_READ_SQL, [
        runId,
        taskName,
        notCreated.map((r) => r.seq),
        notCreated.map((r) => r.sentAt),
        'planned',
      ]);
    } else if (notCreated.length > 0) {
      await releaseInserts(
        client,
        runId,
        taskName,
        notCreated,
        `sent for insert by this run, whose result was never recorded; run ${options.releasedBy ?? ''} looked the key up in Salesforce at least ${INSERT_SETTLE_MS / 60_000} minutes after it was sent and found no record created since: it was never created, and the key is free to insert again`,
      );
    }
    if (options.refreshEndedRunBy !== undefined && created.length + notCreated.length > 0)
      await refreshEndedRunIn(client, runId, taskName, options.refreshEndedRunBy);
  });
  const counts = {
    sent: rows.length,
    recorded: created.length,
    notFound: notCreated.length,
    unsettled: settling.length,
  };
  logger.info('Reconciled inserts of an interrupted attempt by external ID', { runId, ...counts });
  if (settling.length > 0 && options.unsettled === 'wait') {
    const waitS = Math.ceil((INSERT_SETTLE_MS - Math.min(...settling.map((r) => r.ageMs))) / 1000);
    throw new TaskBusyError(
      `Write-back ${taskName}: ${settling.length} insert records sent by a call whose outcome was never recorded (its attempt died, or Salesforce answered it with a server error) are not in Salesforce yet, and the call that carried them may still be running (Salesforce runs an API call for up to 10 minutes): they are looked up again in about ${waitS} s, not sent a second time now`,
    );
  }
  return counts;
}

/** What {@link resolveEndedRuns} resolved. */
export interface EndedRunsResolved {
  /** Ended runs whose inserts were looked up (sent by calls, or in jobs Salesforce no longer knows). */
  runs: number;
  /** Insert records found created, and recorded. */
  recorded: number;
  /** Insert keys found never created, and released. */
  released: number;
  /** Bulk jobs of ended runs collected. */
  jobs: number;
  /** Bulk jobs of ended runs aborted (found `Open`: update and upsert jobs, insert jobs never uploaded). */
  aborted: number;
  /** Update and upsert records of ended runs whose outcome is unknown: their keys sent again. */
  resent: number;
  /**
   * Upserts of ended runs created beside a record the task had synced, never looked up
   * (`CREATED_BESIDE_SYNCED_RECORD`), found to be second records now (`KEY_CHANGED_RECORD_CREATED`).
   */
  secondRecords: number;
  /**
   * Ended runs whose inserts' look-up Salesforce refused (not a transient failure), by run, with
   * Salesforce's answer: their keys stay held back, and the plan's message for each says so and
   * how to record it by hand when Salesforce keeps refusing (plan.ts).
   */
  lookUpsRefused: Map<string, string>;
  /**
   * Bulk jobs of ended runs Salesforce refused to read, close or abort (not a transient failure,
   * not NOT_FOUND), by job, with what was refused and Salesforce's answer: left as recorded. The
   * plan logs it; `roundtrip resolve` says it (resolve.ts), whose logger is silent.
   */
  jobsUnread: Map<string, string>;
}

/**
 * The `value_hash` that `sync_state` holds for a key whose synced values are unknown (with no
 * `synced_values`): an update or upsert was sent and its outcome never learned, so Salesforce may
 * hold those values or the ones before. No md5 equals it, so the plan's comparison with
 * `sync_state` finds the key changed and sends its current values; the next success replaces it.
 */
export const UNKNOWN_VALUE_HASH = 'unknown';

/** An {@link EndedRunsResolved} with nothing resolved yet, which the resolution counts up. */
function noneResolvedYet(): EndedRunsResolved {
  return {
    runs: 0,
    recorded: 0,
    released: 0,
    jobs: 0,
    aborted: 0,
    resent: 0,
    secondRecords: 0,
    lookUpsRefused: new Map(),
    jobsUnread: new Map(),
  };
}

/**
 * What runs which have ended left unresolved, resolved by the next plan of the task (under the
 * task's lock; not on a dry run), before it reads the ledger:
 * - update and upsert Bulk jobs they left `Open` in Salesforce are aborted, and so are insert jobs
 *   they created and never uploaded ({@link abortJobsOfEndedRuns});
 * - insert rows they left `sent` (their retries ran out, or their Lambda died, between sending and
 *   recording) are resolved instead of being refused as `INSERT_OUTCOME_UNKNOWN` for ever:
 *   - carried by a Bulk job that run never collected: once Salesforce says the job is finished,
 *     its results are collected into that run (bulk-results.ts), a lock refusal failing as any
 *     other; a job it uploaded and never closed is closed first. A job Salesforce no longer
 *     answers for (it keeps jobs for days only) is recorded `NotFound`: its results are gone;
 *   - sent by Collections calls, or in a job Salesforce no longer answers for (found so by this
 *     plan or an earlier one), at least {@link INSERT_SETTLE_MS} ago: looked up by external ID, a
 *     record created is recorded (in that run's ledger and in `sync_state`, so the plan does not
 *     insert it again), a key never created is released (`NOT_INSERTED` in that run), so the plan
 *     inserts it. A job Salesforce forgot finished long ago: the send's usual settling time is
 *     all the look-up waits for.
 *   Rows whose call or job may still be running stay refused. Without an external-ID key nothing
 *   can be looked up: rows sent by calls or in forgotten jobs stay refused until someone records
 *   them by hand (`roundtrip resolve`, resolve.ts).
 * - update and upsert records they left `sent`, whose values Salesforce may hold or not (while
 *   `sync_state` holds the values before: a source going back to those would compare unchanged,
 *   and Salesforce would keep the lost values until the source changed again):
 *   - carried by a Bulk job that run never collected: once Salesforce says the job is finished,
 *     collected into that run as for inserts ({@link collectJobsOfEndedRuns}), so its successes
 *     reach `sync_state`; a job still running is asked about again by a later plan, and its keys
 *     are kept back meanwhile (plan.ts, `OUTCOME_PENDING`);
 *   - sent by Collections calls (or in a job Salesforce no longer answers for) at least
 *     {@link INSERT_SETTLE_MS} ago: failed in that run with `OUTCOME_UNKNOWN`, and their keys'
 *     synced values marked unknown, so that the plan sends their current values again
 *     ({@link resendUnknownWrites}; an update or upsert sent again writes the same values). Rows
 *     sent more recently stay for a later plan. No Salesforce call.
 * - upserts Salesforce created beside a record the task had synced, whose old record no step of
 *   their run looked up (it died between the results and the look-up and was never retried, or a
 *   Bulk job of it was collected by a plan, this one included): looked up as the push does
 *   ({@link lookUpSecondRecordsOfEndedRuns}), and the run's `secondRecords` counted again.
 * A job or row of the run planning, or of any run still running, is never touched. Salesforce is
 * called only for such jobs and for insert rows: a task without them costs no call.
 */
export async function resolveEndedRuns(
  deps: CoreDeps,
  sf: SalesforceConnector,
  mapping: WritebackMapping,
  runId: string,
  taskName: string,
  logger: Logger,
): Promise<EndedRunsResolved> {
  const resolved = noneResolvedYet();
  const inserts = mapping.task.mode === 'insert';
  const rewrites = mapping.task.mode === 'update' || mapping.task.mode === 'upsert';
  // A run marked ended may still have a push alive (an execution stopped from the console does
  // not stop its Lambda): that push holds the task's lock. Then nothing is resolved this time.
  const locked = await ifTaskLockFree(deps, taskName, async () => {
    // The jobs abortJobsOfEndedRuns asked about: one found running is not asked again this plan.
    const asked = new Set<string>();
    await abortJobsOfEndedRuns(deps, sf, runId, taskName, logger, resolved, asked);
    if (inserts) await resolveLocked(deps, sf, mapping, runId, taskName, logger, resolved);
    if (rewrites) {
      await collectJobsOfEndedRuns(deps, sf, runId, taskName, logger, resolved, 'collect', asked);
      await resendUnknownWrites(deps, mapping, runId, taskName, logger, resolved);
    }
    if (mapping.task.mode === 'upsert') {
      await lookUpSecondRecordsOfEndedRuns(deps, sf, mapping, runId, taskName, logger, resolved);
    }
  });
  if (!locked.ran) {
    logger.info(
      'A push or collect of this task is running: what ended runs left is resolved by a later plan',
    );
  } else if (
    resolved.runs + resolved.jobs + resolved.aborted + resolved.resent + resolved.secondRecords >
    0
  ) {
    const { lookUpsRefused: _refused, jobsUnread: _unread, ...counts } = resolved;
    logger.info('Resolved what runs that ended left without an outcome', counts);
  }
  return resolved;
}

/** A Bulk job of an ended run, as `writeback_jobs` records it. */
interface EndedRunJob {
  run_id: string;
  job_id: string;
  state: string;
  first_seq: string;
  last_seq: string;
}

/**
 * Asks Salesforce for a job of an ended run. A job Salesforce no longer knows (it keeps jobs for
 * a while only) is recorded `NotFound`, and never asked about again; that one, and a job that
 * cannot be read otherwise (asked again by a later plan), answer undefined.
 */
async function readJobOfEndedRun(
  deps: CoreDeps,
  sf: SalesforceConnector,
  j: EndedRunJob,
  runId: string,
  taskName: string,
  logger: Logger,
  unread: Map<string, string>,
): Promise<IngestJob | undefined> {
  try {
    return await getIngestJob(sf, j.job_id);
  } catch (err) {
    if (err instanceof TransientError) throw err;
    const message = (err as Error).message;
    if (/\bNOT_FOUND\b/.test(message)) {
      await deps.pg.query(
        `UPDATE roundtrip.writeback_jobs SET state = 'NotFound', error_message = $4, collected_at = now(), updated_at = now()
          WHERE run_id = $1 AND task = $2 AND job_id = $3`,
        [
          j.run_id,
          taskName,
          j.job_id,
          `Salesforce no longer knows this job (asked by ${runId === RESOLVED_BY_HAND ? runId : `run ${runId}`}): ${message}`,
        ],
      );
    }
    logger.warn('A Bulk job of an ended run could not be read: it is left as recorded', {
      runId: j.run_id,
      jobId: j.job_id,
      error: message,
    });
    if (!/\bNOT_FOUND\b/.test(message)) unread.set(j.job_id, `Salesforce refused to read it: ${message}`);
    return undefined;
  }
}

/**
 * Records the state Salesforce answered for a job of an ended run that is still running
 * (`UploadComplete` or `InProgress`), and when it was asked, as Collect records each poll: the
 * held-back notice (notify.ts) and anyone reading `writeback_jobs` see what Salesforce said last,
 * not the state at upload time. Its records stay as they are; a later plan asks again.
 */
async function recordRunningJob(
  deps: CoreDeps,
  j: EndedRunJob,
  taskName: string,
  job: IngestJob,
): Promise<void> {
  await setJobState(deps.pg, j.run_id, taskName, j.job_id, job.state);
}

/**
 * Update and upsert Bulk jobs that runs which have ended left behind before their close was
 * recorded: created and never uploaded (recorded `Open`), or uploaded and never closed (recorded
 * `Uploaded`, the push's retry that closes it never came). One that Salesforce still has `Open`
 * never runs, and so writes nothing — the plan sends the records' current values — but it stays
 * in the org's job list, and closing it now would write the values of that run, older than the
 * plan's. It is aborted ({@link abortOpenJob}) and its state recorded. A job Salesforce has
 * `UploadComplete` or `InProgress` (a close that arrived late started it) is running: never
 * aborted, its state recorded, asked about again by later plans. A job recorded `Uploaded` that
 * is finished (aborted here or by hand, or run after such a close) is collected into its run, as
 * Collect would have: its records without a result fail `BULK_JOB_ABORTED` there, and those a
 * late close had it write reach `sync_state`, so the plan compares with what Salesforce holds.
 * Insert jobs are never aborted: one uploaded is closed ({@link resolveLocked}), so that its
 * records are written once and its keys known. An insert job recorded `Open` (created, and no
 * upload recorded whole: none of its records is in the ledger, and the plan sends them) is
 * aborted as well, so that it does not stay in the org's job list, `Open`, until Salesforce
 * deletes it.
 */
async function abortJobsOfEndedRuns(
  deps: CoreDeps,
  sf: SalesforceConnector,
  runId: string,
  taskName: string,
  logger: Logger,
  resolved: EndedRunsResolved,
  asked: Set<string>,
): Promise<void> {
  const { rows: jobs } = await deps.pg.query<EndedRunJob>(
    `SELECT j.run_id, j.job_id, j.state, j.first_seq, j.last_seq
       FROM roundtrip.writeback_jobs j JOIN roundtrip.runs r ON r.run_id = j.run_id
      WHERE j.task = $1 AND j.run_id <> $2 AND r.status <> 'running' AND j.api = 'bulk'
        AND (j.state = 'Open' OR (j.state = 'Uploaded' AND j.operation IN ('update', 'upsert')))
        AND j.collected_at IS NULL
      ORDER BY j.run_id, j.chunk`,
    [taskName, runId],
  );
  for (const j of jobs) {
    let job = await readJobOfEndedRun(deps, sf, j, runId, taskName, logger, resolved.jobsUnread);
    if (!job) continue;
    if (job.state === 'Open') {
      // Refused: the job stays Open (it never runs), and a later plan tries again.
      const aborted = await changeJobOfEndedRun(
        () => abortOpenJob(sf, j.job_id),
        j,
        logger,
        'A Bulk job an ended run left Open could not be aborted',
        resolved.jobsUnread,
      );
      if (!aborted) continue;
      job = aborted;
      if (job.state === 'Aborted') {
        resolved.aborted += 1;
        logger.warn('Aborted a Bulk job that an ended run left Open', {
          runId: j.run_id,
          jobId: j.job_id,
          recorded: j.state,
        });
      }
    }
    if (j.state === 'Open') {
      // Never uploaded in full (no close was ever sent): nothing of it is in the ledger.
      await setJobState(deps.pg, j.run_id, taskName, j.job_id, job.state);
      continue;
    }
    asked.add(j.job_id);
    if (!isFinalIngestState(job.state)) {
      // Recorded Uploaded and running: from now on collectJobsOfEndedRuns asks about it.
      await recordRunningJob(deps, j, taskName, job);
      continue;
    }
    await collectJob(
      deps,
      sf,
      j.run_id,
      taskName,
      {
        ...finishedJob(job, j),
        ...(job.state === 'Aborted' && !job.errorMessage
          ? {
              errorMessage: `aborted by the plan of run ${runId}: the run that sent it ended with the job Open (never closed), so none of its records was written; a later plan sends their current values`,
            }
          : {}),
      },
      0,
      logger,
      (client) => refreshEndedRunIn(client, j.run_id, taskName, runId),
    );
    resolved.jobs += 1;
  }
}

/**
 * The insert part of {@link resolveEndedRuns}, under the task's lock. The Bulk jobs first: one
 * Salesforce no longer answers for is recorded `NotFound` there, and its keys are then looked up
 * with the others, by this plan.
 */
async function resolveLocked(
  deps: CoreDeps,
  sf: SalesforceConnector,
  mapping: WritebackMapping,
  runId: string,
  taskName: string,
  logger: Logger,
  resolved: EndedRunsResolved,
): Promise<void> {
  await collectJobsOfEndedRuns(deps, sf, runId, taskName, logger, resolved, 'close');
  // Without an external-ID key nothing can be looked up: recorded by hand (resolve.ts).
  if (mapping.keyField === undefined) return;
  const { rows } = await deps.pg.query<{ run_id: string }>(
    `SELECT DISTINCT l.run_id FROM roundtrip.writeback_plans l JOIN roundtrip.runs r ON r.run_id = l.run_id
      WHERE l.task = $1 AND l.status = 'sent' AND ${sentWithoutResults('l')}
        AND l.run_id <> $2 AND r.status <> 'running' AND l.updated_at <= now() - $3 * interval '1 millisecond'
      ORDER BY l.run_id`,
    [taskName, runId, INSERT_SETTLE_MS],
  );
  for (const { run_id: ended } of rows) {
    let counts: Reconciled;
    try {
      counts = await reconcileSentInserts(deps, sf, mapping, ended, taskName, logger, {
        answered: new Set(),
        unsettled: 'keep',
        notFound: 'release',
        releasedBy: runId,
        withoutResultsOnly: true,
        refreshEndedRunBy: runId,
      });
    } catch (err) {
      if (err instanceof TransientError) throw err;
      // A look-up Salesforce refuses: the keys stay held back, and the plan goes on. Each key's
      // message says so (plan.ts), with the command that records it by hand should Salesforce
      // keep refusing: a refusal for good (a field the user may no longer read) would hold the
      // keys back for ever.
      const refusal = err instanceof Error ? err.message : String(err);
      resolved.lookUpsRefused.set(ended, refusal);
      logger.warn(
        'Inserts of an ended run could not be looked up: they stay held back; roundtrip errors shows them, and roundtrip resolve --without-look-up records them once looked for in Salesforce',
        { runId: ended, error: refusal },
      );
      continue;
    }
    resolved.runs += 1;
    resolved.recorded += counts.recorded;
    resolved.released += counts.notFound;
  }
}

/**
 * Bulk jobs of ended runs that were never collected, whose records are still `sent`: each is
 * asked for its state, and collected into its run once Salesforce says it is finished (its
 * successes reach `sync_state`, its failures that run's `writeback_errors`). `close` (inserts)
 * first closes a job recorded `Uploaded` that Salesforce still has `Open`; `collect` (update and
 * upsert) leaves the jobs recorded `Open` or `Uploaded` to {@link abortJobsOfEndedRuns}, which
 * aborts those still `Open`. A job still running is left for a later plan, with the state
 * Salesforce answered recorded ({@link recordRunningJob}).
 */
async function collectJobsOfEndedRuns(
  deps: CoreDeps,
  sf: SalesforceConnector,
  runId: string,
  taskName: string,
  logger: Logger,
  resolved: EndedRunsResolved,
  recordedUploaded: 'close' | 'collect',
  askedAlready: ReadonlySet<string> = new Set(),
  only?: readonly string[],
): Promise<void> {
  const { rows: jobs } = await deps.pg.query<EndedRunJob>(
    `SELECT j.run_id, j.job_id, j.state, j.first_seq, j.last_seq
       FROM roundtrip.writeback_jobs j JOIN roundtrip.runs r ON r.run_id = j.run_id
      WHERE j.task = $1 AND j.run_id <> $2 AND r.status <> 'running' AND j.api = 'bulk'
        AND j.collected_at IS NULL AND j.state <> 'Superseded'
        AND ($3::text[] IS NULL OR j.job_id = ANY ($3::text[]))
        ${recordedUploaded === 'collect' ? `AND j.state NOT IN ('Open', 'Uploaded')` : ''}
        AND EXISTS (SELECT 1 FROM roundtrip.writeback_plans l
                     WHERE l.run_id = j.run_id AND l.task = j.task AND l.seq BETWEEN j.first_seq AND j.last_seq
                       AND l.job_id = j.job_id AND l.status = 'sent'
                       AND l.attempts = 0)
      ORDER BY j.run_id, j.chunk`,
    [taskName, runId, only ?? null],
  );
  for (const j of jobs) {
    if (askedAlready.has(j.job_id)) continue;
    // Unreadable: its records stay as they are (a job Salesforce no longer knows is recorded
    // NotFound: inserts are then looked up by external ID, resolveLocked, or without one recorded
    // by hand with roundtrip resolve, resolve.ts; update and upsert records sent again by
    // resendUnknownWrites; otherwise asked again by a later plan).
    let job = await readJobOfEndedRun(deps, sf, j, runId, taskName, logger, resolved.jobsUnread);
    if (!job) continue;
    // Uploaded and never closed: the run ended between its Uploaded mark and a close that reached
    // Salesforce (the push's retry, which closes it, never came). Left Open, the job would never
    // process, and its keys would be refused as sent for ever: never written. Its whole CSV is
    // with Salesforce, so it is closed, as the push's retry does (never aborted: a late close may
    // have started it), and a later plan collects it once it is finished.
    if (j.state === 'Uploaded' && job.state === 'Open') {
      // Refused: its keys stay refused, the plan goes on, and a later plan tries again.
      const closed = await changeJobOfEndedRun(
        () => closeUploadedJob(sf, j.job_id),
        j,
        logger,
        'A Bulk job an ended run uploaded and never closed could not be closed',
        resolved.jobsUnread,
      );
      if (!closed) continue;
      job = closed;
      await setJobState(deps.pg, j.run_id, taskName, j.job_id, job.state);
      logger.warn('Closed a Bulk job that an ended run uploaded and never closed', {
        runId: j.run_id,
        jobId: j.job_id,
        state: job.state,
      });
    }
    if (!isFinalIngestState(job.state)) {
      await recordRunningJob(deps, j, taskName, job);
      continue;
    }
    // Its run's figures counted again in the transaction that collects it.
    await collectJob(deps, sf, j.run_id, taskName, finishedJob(job, j), 0, logger, (client) =>
      refreshEndedRunIn(client, j.run_id, taskName, runId),
    );
    resolved.jobs += 1;
  }
}

/** Who recorded outcomes by hand, as the ended runs' figures name it (`outcomesResolvedBy`). */
export const RESOLVED_BY_HAND = 'roundtrip resolve';

/**
 * The insert Bulk jobs `jobIds` of task `taskName` that runs which have ended uploaded and never
 * collected, resolved for `roundtrip resolve` (resolve.ts) as the task's next plan resolves them
 * ({@link collectJobsOfEndedRuns}, `close`): asked for their state, one recorded `Uploaded` that
 * Salesforce still has `Open` closed, one finished collected into its run (its figures counted
 * again, resolved by {@link RESOLVED_BY_HAND}), one still running left with its state recorded,
 * one Salesforce no longer knows recorded `NotFound`. For a task whose plan cannot do it: refused
 * for a changed object or key (scope.ts), or no longer in the config. Collecting reads the ledger
 * and the job's result files only, never the task's mapping (bulk-results.ts). The caller holds
 * the task's lock. A job or run still running is never touched. Answers the counts, and the jobs
 * Salesforce refused to read or close (`jobsUnread`), left as recorded.
 */
export async function collectInsertJobsOfEndedRuns(
  deps: CoreDeps,
  sf: SalesforceConnector,
  taskName: string,
  jobIds: readonly string[],
  logger: Logger,
): Promise<EndedRunsResolved> {
  const resolved = noneResolvedYet();
  if (jobIds.length === 0) return resolved;
  await collectJobsOfEndedRuns(
    deps,
    sf,
    RESOLVED_BY_HAND,
    taskName,
    logger,
    resolved,
    'close',
    new Set(),
    jobIds,
  );
  return resolved;
}

/**
 * Update and upsert records that runs which have ended left `sent`, without an outcome, sent by a
 * Collections call (no Bulk job, or sent again by the row-lock retry pass) or in a Bulk job
 * Salesforce no longer answers for (recorded `NotFound`, collected). Salesforce may hold their
 * values or the ones before, while `sync_state` holds the ones before: a source going back to
 * those would compare unchanged, and Salesforce would keep the lost values for ever. Once the call
 * is certainly over (sent at least {@link INSERT_SETTLE_MS} ago: Salesforce runs a call for up to
 * 10 minutes, and one still running could write its values after the plan's), in one statement:
 * - the ledger row becomes `failed`, with an `OUTCOME_UNKNOWN` error in that run naming the run
 *   that resolved it (the audit trail: what was sent, and that nobody knows whether it was
 *   written);
 * - the key's `sync_state` row gets {@link UNKNOWN_VALUE_HASH} and no values, synced at the time
 *   the call was certainly over (the send plus {@link INSERT_SETTLE_MS}): compared with
 *   `sync_state`, the key is changed, and the plan sends its current values again (an update or
 *   upsert sent again writes the same values). Compared with an extracted copy, that time decides
 *   as for any record synced: a copy loaded before it may not show what the call wrote, so the
 *   key is compared with `sync_state` (changed); a copy loaded after it shows what Salesforce
 *   holds, and the key is compared with the copy. A `sync_state` row synced at or after that time
 *   (a later run wrote the key once the call was over) already says what Salesforce holds, and is
 *   left as it is.
 * The ended runs' figures are counted again in the same transaction. Rows sent more recently stay
 * `sent`, for a later plan. No Salesforce call; run again (a retried plan step) it finds nothing.
 */
async function resendUnknownWrites(
  deps: CoreDeps,
  mapping: WritebackMapping,
  runId: string,
  taskName: string,
  logger: Logger,
  resolved: EndedRunsResolved,
): Promise<void> {
  const operation = mapping.task.mode;
  const settleMinutes = INSERT_SETTLE_MS / 60_000;
  const counts = await withTransaction(deps.pg, async (client) => {
    const { rows } = await client.query<{ run_id: string; n: number }>(
      `WITH picked AS (
         SELECT p.run_id, p.key, p.salesforce_id, p.job_id, p.payload, p.updated_at AS sent_at
           FROM roundtrip.writeback_plans p
           JOIN roundtrip.runs r ON r.run_id = p.run_id
           LEFT JOIN roundtrip.writeback_jobs j ON j.run_id = p.run_id AND j.task = p.task AND j.job_id = p.job_id
          WHERE p.task = $1 AND p.status = 'sent' AND p.run_id <> $2 AND r.status <> 'running'
            AND (${sentByCall('p')} OR j.collected_at IS NOT NULL)
            AND p.updated_at <= now() - $3 * interval '1 millisecond'
            FOR UPDATE OF p),
       failed AS (
         UPDATE roundtrip.writeback_plans p SET status = 'failed', updated_at = now()
           FROM picked x
          WHERE p.run_id = x.run_id AND p.task = $1 AND p.key = x.key AND p.status = 'sent'
          RETURNING x.run_id, x.key, x.salesforce_id, x.job_id, x.payload, x.sent_at),
       reported AS (
         INSERT INTO roundtrip.writeback_errors (run_id, task, key, salesforce_id, stage, job_id, code, message, payload)
         SELECT run_id, $1, key, salesforce_id, 'push', job_id, 'OUTCOME_UNKNOWN',
                format('sent for %s by this run, whose result was never recorded: Salesforce may hold these values or not. Run %s found the call over (sent at least %s minutes before) and marked the key''s synced values unknown in roundtrip.sync_state, so that its plan compares the key''s current values with what Salesforce is known to hold, and sends the key''s current values again unless a copy extracted since shows them (an %s sent twice writes the same values)',
                       $5::text, $2::text, $6::int, $5::text),
                payload
           FROM failed),
       marked AS (
         INSERT INTO roundtrip.sync_state AS s (task, key, salesforce_id, value_hash, synced_values, synced_at, run_id)
         SELECT DISTINCT ON (key) $1, key, salesforce_id, $4, NULL, sent_at + $3 * interval '1 millisecond', run_id
           FROM failed ORDER BY key, sent_at DESC
         ON CONFLICT (task, key) DO UPDATE
            SET value_hash = EXCLUDED.value_hash, synced_values = NULL, synced_at = EXCLUDED.synced_at,
                run_id = EXCLUDED.run_id, salesforce_id = coalesce(s.salesforce_id, EXCLUDED.salesforce_id)
          WHERE s.synced_at < EXCLUDED.synced_at)
       SELECT run_id, count(*)::int AS n FROM failed GROUP BY run_id ORDER BY run_id`,
      [taskName, runId, INSERT_SETTLE_MS, UNKNOWN_VALUE_HASH, operation, settleMinutes],
    );
    for (const r of rows) await refreshEndedRunIn(client, r.run_id, taskName, runId);
    return rows;
  });
  if (counts.length === 0) return;
  const resent = counts.reduce((n, r) => n + r.n, 0);
  resolved.resent += resent;
  logger.warn(
    `${operation} records that ended runs sent without learning the outcome: their synced values are marked unknown, and their current values are sent again`,
    { runs: counts.map((r) => r.run_id), records: resent },
  );
}

/**
 * The upserts of ended runs of the task that Salesforce created beside a record the task had
 * synced and whose old record no step of the run looked up (`CREATED_BESIDE_SYNCED_RECORD` rows
 * left by a push or collect that died between the results and the look-up, never retried, or
 * written by a plan's collect of the run's Bulk job): looked up as the push does
 * ({@link reportRecordsCreatedBeside}: one query per 200 Ids), each row rewritten as
 * `KEY_CHANGED_RECORD_CREATED` or dropped (the old record deleted), and the run's figures counted
 * again in the same transaction ({@link refreshEndedRunIn}, its `secondRecords` included). The
 * runs are found without a call: ended runs of the pipeline whose task never finished its push or
 * collect (no `collectedAt`, which the push's look-up precedes) holding such a row, by the
 * (run, task, stage) index. A look-up Salesforce refuses (not a transient failure) leaves the rows
 * as they are, for a later plan, and is logged; the plan goes on.
 */
async function lookUpSecondRecordsOfEndedRuns(
  deps: CoreDeps,
  sf: SalesforceConnector,
  mapping: WritebackMapping,
  runId: string,
  taskName: string,
  logger: Logger,
  resolved: EndedRunsResolved,
): Promise<void> {
  // An upsert's key is an external ID, which its mapping names.
  const keyField = mapping.keyField;
  if (keyField === undefined) return;
  const { rows } = await deps.pg.query<{ run_id: string }>(
    `SELECT r.run_id FROM roundtrip.runs r
      WHERE r.pipeline = $1 AND r.run_id <> $2 AND r.status <> 'running'
        AND jsonb_typeof(r.summary->'writeback'->$3) = 'object'
        AND NOT (r.summary->'writeback'->$3) ? 'collectedAt'
        AND EXISTS (SELECT 1 FROM roundtrip.writeback_errors e
                     WHERE e.run_id = r.run_id AND e.task = $3 AND e.stage = 'push' AND e.code = $4)
      ORDER BY r.started_at, r.run_id`,
    [deps.config.name, runId, taskName, CREATED_BESIDE_CODE],
  );
  for (const { run_id: ended } of rows) {
    try {
      resolved.secondRecords += await reportRecordsCreatedBeside(deps, sf, {
        runId: ended,
        task: taskName,
        object: mapping.object,
        keyField,
        inTransaction: (client) => refreshEndedRunIn(client, ended, taskName, runId),
      });
    } catch (err) {
      if (err instanceof TransientError) throw err;
      logger.warn(
        `Upserts of an ended run created beside a record the task had synced could not be looked up: they stay ${CREATED_BESIDE_CODE}, and a later plan looks them up`,
        { runId: ended, error: err instanceof Error ? err.message : String(err) },
      );
    }
  }
}

/**
 * The ended run's figures for the task (`written`, `failed`, `outcomeUnknown` in its summary),
 * counted again from its ledger once some of its records were resolved, with the run that
 * resolved them: `roundtrip status` then tells what became of them. In the caller's transaction,
 * the one that resolved them: in one of its own, a Lambda that died between the two would leave
 * the figures stale for ever (nothing is left to resolve, so nothing counts them again). `byRunId`
 * names who resolved them (the run that resolved them, or `roundtrip resolve`), stored as the
 * figures' `outcomesResolvedBy`. A run that ended without reporting (killed hard, ended by hand,
 * closed as abandoned) and whose close did not count its figures (closed before the close counted
 * them: state.ts `countUnreportedFigures`; or ended by an UPDATE of `roundtrip.runs` by hand) is
 * counted so too: its summary holds its plan's figures at most, no `outcomeUnknown`, and what it
 * wrote would otherwise be counted in no run. A run still `running` is left to its own report.
 * A task the run's summary has no figures for (never planned) is left so. A run whose details were pruned has only its `sent` rows and those just
 * resolved left in its ledger: the resolved ones are added to its stored `written` and `failed`
 * (a run that wrote 10,000 records keeps them), then deleted as the prune would have
 * ({@link pruneResolvedDetails}).
 */
export async function refreshEndedRunIn(
  client: PoolClient,
  endedRunId: string,
  taskName: string,
  byRunId: string,
): Promise<void> {
  const { rows } = await client.query<{
    has: boolean;
    pruned: boolean;
    figures: Record<string, unknown> | null;
  }>(
    `SELECT jsonb_typeof(summary->'writeback'->$2) = 'object'
              AND ((summary->'writeback'->$2) ? 'outcomeUnknown' OR status <> 'running') AS has,
            coalesce(summary ? 'detailsPrunedAt', false) AS pruned,
            summary->'writeback'->$2 AS figures
       FROM roundtrip.runs WHERE run_id = $1`,
    [endedRunId, taskName],
  );
  if (rows[0]?.has === true) {
    const stored = rows[0].figures ?? undefined;
    if (rows[0].pruned === true) {
      // A pruned run's ledger keeps its `sent` rows only, and the rows resolved since its figures
      // were last stored (each recount deletes them with pruneResolvedDetails, below, in the same
      // transaction; the prune itself counted those it found, pruneRunDetails): those are added
      // to its stored figures, never counted twice; its held-back count stays as reported.
      const outcomes = await ledgerOutcomes(client, endedRunId, taskName);
      await mergeRunSummary(client, endedRunId, ['writeback', taskName], {
        written: outcomes.succeeded + storedCount(stored?.written),
        failed: outcomes.failed + storedCount(stored?.failed),
        ...heldBackFigures(stored, storedCount(stored?.heldBackAtPush)),
        outcomeUnknown: outcomeUnknownOf(outcomes),
        outcomesResolvedBy: byRunId,
      });
    } else {
      // Another run's ledger holds every row: counted again, and its second records (results.ts)
      // with them, which a later plan may have looked up (lookUpSecondRecordsOfEndedRuns).
      const secondRecords = await countSecondRecords(client, endedRunId, taskName);
      await recountFromLedger(client, endedRunId, taskName, stored, {
        outcomesResolvedBy: byRunId,
        ...(secondRecords > 0 ? { secondRecords } : {}),
      });
    }
  }
  if (rows[0]?.pruned === true) await pruneResolvedDetails(client, endedRunId, taskName);
}
