/**
 * `roundtrip errors`: the records of a run that did not reach Salesforce, from
 * `roundtrip.writeback_errors` — each with its task, stage (`plan`: rejected before any call, or
 * held back while an earlier run's send of its key has no outcome; `push`: refused by Salesforce,
 * not sent, or held back because another run took the key since the plan), key, Salesforce Id, code, fields and message, and the values (the source row's
 * for a rejection, the ones sent for a failure). Then, apart, the records the run sent and never
 * learned the outcome of (its ledger rows left `sent`, its figures' `outcomeUnknown`: the process
 * died between the send and the recording), each with how it went out, when, and what will become
 * of it ({@link whatHappensNext}). With `--task`, the task's own step error too, when its plan,
 * push or collect failed (`summary.writeback.<task>.error`; `taskError` in `--json`): its records
 * alone would not say why the task sent nothing.
 *
 * Text (the default) and `--json` show the counts by task, stage and code, and the first
 * `--limit` records (50); the records held back for another run's send of their key are counted
 * apart from those rejected and those failed (in `--json`: `rejected`, `heldBack` and `failed`,
 * each count's `heldBack`, each record's `heldBack`), and so are the keyless inserts a push
 * reported `INSERT_OUTCOME_UNKNOWN`, of unknown outcome as `status` counts them
 * (`insertOutcomeUnknown`; `outcomeUnknown` adds the records left `sent`). `--csv` writes every record (or the first
 * `--limit`) as CSV on stdout, each with its `held_back` (`true`/`false`, the last column),
 * streamed from PostgreSQL with `COPY … TO STDOUT`: a million failed records take no more memory
 * than ten.
 */
import type { Pool, PoolClient } from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { suggestion } from '../../lambdas/config/issues';
import { taskName } from '../../lambdas/config';
import type { WritebackTask } from '../../lambdas/config/types';
import { INSERT_SETTLE_MS, sentHowSql } from '../../lambdas/core/writeback/reconcile';
import { WRITTEN_ERROR_CODES } from '../../lambdas/core/writeback/results';
import { HELD_BACK_ERROR_SQL, REPORTED_UNKNOWN_SQL, sqlLiteral } from '../../lambdas/core/writeback/state';
import { shellOption } from '../../lambdas/shared/shell';
import {
  databaseOptionsGiven,
  EXIT,
  note,
  parseOptions,
  passwordBack,
  storedFailureText,
  UsageError,
  wholeNumberOption,
  type Command,
} from '../cli-common';
import { alignColumns } from '../local/columns';
import { readStoredRuns, record, writebackTaskSummary, type StoredRun } from '../local/summary';
import { closeGoneRuns } from './run';
import { DATABASE_OPTIONS, runsDatabase } from './status';

/** Records listed when `--limit` is not given (text and JSON; `--csv` writes them all). */
export const DEFAULT_ERRORS_LIMIT = 50;

/** The record columns, as `--csv` names them, in order. */
const CSV_COLUMNS = [
  'task',
  'stage',
  'key',
  'salesforce_id',
  'code',
  'fields',
  'message',
  'job_id',
  'values',
  'created_at',
  // Last, so the columns before it keep their places: `true` for a record held back for another
  // run's send of its key (HELD_BACK_ERROR_SQL), `false` for one rejected (stage plan) or failed
  // (stage push); the record's `heldBack` in --json.
  'held_back',
] as const;

interface ErrorFilter {
  readonly runId: string;
  readonly task?: string;
  readonly code?: string;
}

/** The WHERE clause of a filter, with literals (COPY takes no parameters). */
function whereSql(filter: ErrorFilter): string {
  return [
    `run_id = ${sqlLiteral(filter.runId)}`,
    ...(filter.task !== undefined ? [`task = ${sqlLiteral(filter.task)}`] : []),
    ...(filter.code !== undefined ? [`code = ${sqlLiteral(filter.code)}`] : []),
  ].join(' AND ');
}

/**
 * After "no record to show" for a `--code` that none of the run's records has: the codes they
 * have, and the one a misspelt code likely meant. Empty when no code was given or the run (the
 * task, with `--task`) has no record at all.
 */
async function otherCodes(pool: Pool, filter: ErrorFilter): Promise<string> {
  const { code, ...anyCode } = filter;
  if (code === undefined) return '';
  const { rows } = await pool.query<{ code: string }>(
    `SELECT DISTINCT code FROM roundtrip.writeback_errors WHERE ${whereSql(anyCode)} ORDER BY code`,
  );
  if (rows.length === 0) return '';
  const codes = rows.map((r) => r.code);
  const meant = suggestion(code, codes);
  const whose = `this run's records${anyCode.task !== undefined ? ` of ${anyCode.task}` : ''}`;
  return ` with code ${code}; ${whose} have ${codes.length === 1 ? 'code' : 'codes'} ${codes.join(', ')}${meant ? ` (did you mean --code ${meant}?)` : ''}`;
}

/** Plan rejections first, then what failed when sent; by key within each. */
const ORDER_SQL = 'ORDER BY task, stage, key NULLS FIRST, id';

interface ErrorCount {
  task: string;
  stage: string;
  code: string;
  records: number;
  /**
   * Of them, those held back for another run's send of their key (HELD_BACK_ERROR_SQL): neither
   * rejected nor failed. The others of stage `plan` are rejected, those of stage `push` failed
   * (but for those of {@link ErrorCount.outcomeUnknown} and the second records).
   */
  heldBack: number;
  /**
   * Of them, keyless inserts the push reported `INSERT_OUTCOME_UNKNOWN` (REPORTED_UNKNOWN_SQL):
   * sent, Salesforce's answer lost; the run's figures count them `outcomeUnknown`, not failed.
   */
  outcomeUnknown: number;
}

interface ErrorRecord {
  task: string;
  stage: string;
  key: string | null;
  salesforceId: string | null;
  code: string;
  fields: string[];
  message: string;
  jobId: string | null;
  /** Plan: the source row's values; push: the values sent. */
  values: unknown;
  /** Held back for another run's send of its key (HELD_BACK_ERROR_SQL), not rejected nor failed. */
  heldBack: boolean;
}

/**
 * How a record left `sent` went out, as the plan tells them apart (plan.ts, reconcile.ts): `call`
 * (a Collections call, or the row-lock retry pass), `job` (a Bulk job the run never collected) or
 * `gone` (a Bulk job Salesforce no longer answers for, recorded `NotFound`: its results are gone).
 */
type SentBy = 'call' | 'job' | 'gone';

/**
 * A record the run sent whose outcome it never recorded (its ledger row left `sent`: the process
 * or Lambda died, or its retries ran out, between the send and the recording), which the run's
 * figures count as `outcomeUnknown`. Not a record Salesforce refused: listed apart.
 */
interface SentRecord {
  task: string;
  key: string;
  /** The Id sent to (an update's, an upsert's record known), null for an insert. */
  salesforceId: string | null;
  operation: 'insert' | 'update' | 'upsert';
  sentBy: SentBy;
  /** The Bulk job that carried it (the first one, for a record the retry pass resent by a call). */
  jobId: string | null;
  /** When it was sent (its ledger row marked `sent`, on PostgreSQL's clock), ISO 8601 UTC. */
  sentAt: string;
  /** What will become of it: which plan resolves it, from when, and how; or the command that does. */
  next: string;
}

interface SentCount {
  task: string;
  sentBy: SentBy;
  records: number;
}

/** The ledger rows of `runId` left `sent` (of `task`), with how each went out (plan.ts reads them so). */
function sentRowsSql(select: string, task: string | undefined): string {
  return `SELECT ${select}
     FROM (SELECT p.*, ${sentHowSql()} AS sent_by,
                  j.state AS job_state
             FROM roundtrip.writeback_plans p
             LEFT JOIN roundtrip.writeback_jobs j ON j.run_id = p.run_id AND j.task = p.task AND j.job_id = p.job_id
            WHERE p.run_id = $1 AND p.status = 'sent'${task !== undefined ? ` AND p.task = ${sqlLiteral(task)}` : ''}) AS s`;
}

/** `YYYY-MM-DD HH:MM:SS` of an ISO time, UTC. */
const utcText = (iso: string): string => iso.replace('T', ' ').slice(0, 19);

/**
 * What will become of a record left `sent` (docs/writeback.md, "Inserts are idempotent" and
 * "Update and upsert records a run never learned the outcome of"): the next plan of its task (a
 * real run's: a dry run resolves nothing) collects its Bulk job, looks an insert up by its
 * external ID, or marks an update or upsert unknown and sends its values again, once the call
 * that carried it is certainly over; a keyless insert is recorded by hand (`roundtrip resolve`).
 * The commands named carry the `--config`, `--secrets` or `--database-url` given to errors
 * (`given`: databaseOptionsGiven's options), to be pasted as they are.
 */
function whatHappensNext(
  r: Omit<SentRecord, 'next'> & { jobState: string | null; settledAt: string; settled: boolean },
  run: StoredRun,
  task: WritebackTask | undefined,
  given: string,
): string {
  if (run.status === 'running') {
    return `its run is still recorded as running, and no plan resolves its records before it has ended (if its process is gone, roundtrip status --end-run ${run.runId}${given} ends it; the next plan of the task then resolves them)`;
  }
  const taskOption = `${shellOption('--task', r.task)}${given}`;
  const resolveByHand = `roundtrip resolve ${taskOption} ${shellOption('--key', r.key)}`;
  const job = r.jobId ?? '';
  if (task === undefined) {
    return r.operation === 'insert'
      ? r.sentBy === 'job'
        ? `the task is not in the config, so no plan resolves it: roundtrip resolve ${taskOption} --collect-jobs collects Bulk job ${job} once Salesforce has finished it`
        : `the task is not in the config, so no plan resolves it: find the record in Salesforce, then record what you found with ${resolveByHand} --without-look-up --inserted <the record's Id> (or --not-inserted)`
      : `the task is not in the config, so no plan resolves it until it is named again as it was: Salesforce may hold these values or the ones before`;
  }
  const from = r.settled
    ? 'the next plan of the task'
    : `the first plan of the task from ${utcText(r.settledAt)} UTC on (${INSERT_SETTLE_MS / 60_000} minutes after the send, when Salesforce can no longer be running the call)`;
  const gone = r.sentBy === 'gone' ? `Bulk job ${job} is gone from Salesforce with its results; ` : '';
  if (r.operation === 'insert') {
    if (r.sentBy === 'job') {
      return `the next plan of the task asks Salesforce about Bulk job ${job} (closing it first if it was left open) and, once it is finished, collects its results into this run: a record created is recorded, one refused fails here`;
    }
    if (task.key === undefined) {
      return `${gone}without an external-ID key no plan can look it up: find the record in Salesforce, then record what you found with ${resolveByHand} --inserted <the record's Id> (or --not-inserted)`;
    }
    return `${gone}${from} looks the key up by ${task.key}: a record created since the send is recorded, else the key is inserted again`;
  }
  if (r.sentBy === 'job') {
    return r.jobState === 'Open' || r.jobState === 'Uploaded'
      ? `the next plan of the task asks Salesforce about Bulk job ${job}, left ${r.jobState === 'Open' ? 'open' : 'uploaded and not closed'}: aborted if still open there (its records then fail here with BULK_JOB_ABORTED, and the plan sends the key's values if they differ from those last synced), else collected once finished`
      : `the next plan of the task collects Bulk job ${job} once Salesforce says it is finished (its successes are recorded as synced); until then the key is held back (OUTCOME_PENDING)`;
  }
  return `${gone}${from} fails it here with OUTCOME_UNKNOWN (Salesforce may hold these values or the ones before) and sends the key's current values again`;
}

/**
 * The run's records left `sent` (see {@link SentRecord}): their counts, and the first `limit`;
 * `given` as {@link whatHappensNext} takes it.
 */
async function readSent(
  pool: Pool,
  run: StoredRun,
  tasks: readonly WritebackTask[],
  task: string | undefined,
  limit: number,
  given: string,
): Promise<{ counts: SentCount[]; records: SentRecord[] }> {
  const { rows: counts } = await pool.query<SentCount>(
    `${sentRowsSql('task, sent_by AS "sentBy", count(*)::int AS records', task)}
      GROUP BY task, sent_by ORDER BY task, sent_by`,
    [run.runId],
  );
  if (counts.length === 0) return { counts, records: [] };
  const { rows } = await pool.query<
    Omit<SentRecord, 'next'> & { jobState: string | null; settledAt: string; settled: boolean }
  >(
    `${sentRowsSql(
      `task, key, salesforce_id AS "salesforceId", operation, sent_by AS "sentBy", job_id AS "jobId",
       job_state AS "jobState",
       to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "sentAt",
       to_char((updated_at + $2 * interval '1 millisecond') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "settledAt",
       updated_at + $2 * interval '1 millisecond' <= now() AS settled`,
      task,
    )} ORDER BY task, seq LIMIT ${limit}`,
    [run.runId, INSERT_SETTLE_MS],
  );
  const records = rows.map((row) => {
    const { jobState: _state, settledAt: _at, settled: _settled, ...r } = row;
    return {
      ...r,
      next: whatHappensNext(
        row,
        run,
        tasks.find((w) => taskName(w) === r.task),
        given,
      ),
    };
  });
  return { counts, records };
}

/**
 * The run asked for, or the pipeline's latest; a `--run` that names no run of the pipeline is bad
 * input, as `status --end-run` has it. A run of another pipeline sharing the database is one of
 * them: listed, its records would show under this pipeline's name (and be read with this config's
 * tasks).
 */
async function chosenRun(
  pool: Pool,
  pipeline: string,
  runId: string | undefined,
): Promise<StoredRun | undefined> {
  const runs = await readStoredRuns(pool, { pipeline, ...(runId !== undefined ? { runId } : {}), limit: 1 });
  if (runId !== undefined && runs.length === 0) {
    const other = (await readStoredRuns(pool, { runId, limit: 1 }))[0];
    throw new UsageError(
      `--run: pipeline ${pipeline} has no run ${runId}` +
        (other !== undefined
          ? ` (it is a run of pipeline ${other.pipeline}: give that pipeline's config to list its records)`
          : ' (roundtrip status lists its runs)'),
      { showUsage: false },
    );
  }
  return runs[0];
}

/**
 * Streams the records as CSV to stdout, honouring its backpressure. Answers false when the reader
 * closed the pipe before the end (the COPY was cut short: the connection is not reusable).
 */
async function writeCsv(
  client: PoolClient,
  filter: ErrorFilter,
  limit: number | undefined,
): Promise<boolean> {
  const sql = `COPY (
      SELECT task, stage, key, salesforce_id, code, array_to_string(fields, ';'), message, job_id, payload::text,
             to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
             (${HELD_BACK_ERROR_SQL})::text
        FROM roundtrip.writeback_errors e WHERE ${whereSql(filter)} ${ORDER_SQL}
        ${limit !== undefined ? `LIMIT ${limit}` : ''}
    ) TO STDOUT WITH (FORMAT csv)`;
  process.stdout.write(`${CSV_COLUMNS.join(',')}\n`);
  const copy = client.query(copyTo(sql));
  // A reader that stops early (`| head`) closes the pipe: stop reading then, quietly.
  let closed = false;
  const onError = (): void => {
    closed = true;
  };
  process.stdout.on('error', onError);
  try {
    for await (const chunk of copy) {
      if (closed) break;
      if (!process.stdout.write(chunk as Buffer)) {
        await new Promise<void>((resolve) => {
          process.stdout.once('drain', resolve);
          process.stdout.once('error', () => resolve());
        });
      }
    }
  } finally {
    process.stdout.removeListener('error', onError);
    if (closed) copy.destroy();
  }
  return !closed;
}

/** The records of a run not sent, as its first line counts them. */
interface NotSentCounts {
  readonly rejected: number;
  readonly heldBack: number;
  readonly failed: number;
  /**
   * Upserts written that created a second record, the key of the record the task had synced being
   * changed in Salesforce (stage `push`, {@link WRITTEN_ERROR_CODES}): written, not failed.
   */
  readonly secondRecords?: number;
  /**
   * Keyless inserts the push reported `INSERT_OUTCOME_UNKNOWN` ({@link ErrorCount.outcomeUnknown}):
   * of unknown outcome, as `status` counts them, not failed.
   */
  readonly insertOutcomeUnknown?: number;
}

/**
 * What a run recorded of its records not sent (`summary.writeback`, of one task with `task`), every
 * task it ran counted, named in the config or not: what its details said before they were pruned.
 */
function recordedCounts(run: StoredRun, task: string | undefined): NotSentCounts {
  const rows = Object.entries(record(run.summary.writeback))
    .filter(([name]) => task === undefined || name === task)
    .map(([name, figures]) => writebackTaskSummary(name, figures));
  return {
    rejected: rows.reduce((n, t) => n + t.rejected, 0),
    heldBack: rows.reduce((n, t) => n + t.heldBack, 0),
    failed: rows.reduce((n, t) => n + t.failed, 0),
    secondRecords: rows.reduce((n, t) => n + (t.secondRecords ?? 0), 0),
  };
}

/**
 * `0 rejected before sending, [N held back for another run's send of their key, ]0 failed when
 * sent[, N sent for insert whose outcome is unknown …][, N written as a second record …]`
 */
function countsText(counts: NotSentCounts): string {
  return (
    `${counts.rejected.toLocaleString('en-US')} rejected before sending, ` +
    (counts.heldBack > 0
      ? `${counts.heldBack.toLocaleString('en-US')} held back for another run's send of their key, `
      : '') +
    `${counts.failed.toLocaleString('en-US')} failed when sent` +
    (counts.insertOutcomeUnknown
      ? `, ${counts.insertOutcomeUnknown.toLocaleString('en-US')} sent for insert whose outcome is unknown (INSERT_OUTCOME_UNKNOWN: Salesforce's answer was lost)`
      : '') +
    (counts.secondRecords
      ? `, ${counts.secondRecords.toLocaleString('en-US')} written as a second record (the key of the record synced before was changed in Salesforce)`
      : '')
  );
}

/** A table: its header, then its rows; the last column, left-aligned, unpadded. */
function table(
  header: readonly string[],
  rows: readonly string[][],
  rightAligned: ReadonlySet<number>,
): string {
  return alignColumns([header, ...rows], (i) => rightAligned.has(i), { padLast: false }).lines.join('\n');
}

/** `roundtrip errors`: see the module comment. */
export const errors: Command = async (argv) => {
  const { values } = parseOptions(argv, {
    ...DATABASE_OPTIONS,
    run: { type: 'string' },
    task: { type: 'string' },
    code: { type: 'string' },
    limit: { type: 'string' },
    csv: { type: 'boolean' },
    json: { type: 'boolean' },
  });
  if (values.csv === true && values.json === true) {
    throw new UsageError('--csv and --json cannot be used together');
  }
  const limitGiven = typeof values.limit === 'string';
  const limit = wholeNumberOption('limit', values.limit as string | undefined, DEFAULT_ERRORS_LIMIT, 1);
  const { config, pool } = await runsDatabase(values, { command: 'errors' });
  try {
    // The commands it names, with the options that named this pipeline and database.
    const given = databaseOptionsGiven(values);
    await closeGoneRuns(pool, config, 'roundtrip errors', { given });
    const task = typeof values.task === 'string' ? values.task : undefined;
    if (task !== undefined && !config.writeback.some((w) => w.name === task)) {
      // A task renamed or removed since: its past runs' records are still the pipeline's.
      const { rows: known } = await pool.query<{ known: boolean }>(
        `SELECT EXISTS (SELECT 1 FROM roundtrip.writeback_errors e JOIN roundtrip.runs r ON r.run_id = e.run_id
                         WHERE r.pipeline = $1 AND e.task = $2) AS known`,
        [config.name, task],
      );
      const names = config.writeback.map((w) => w.name);
      if (known[0]?.known !== true) {
        throw new UsageError(
          `--task: pipeline ${config.name} has no write-back task ${task} (it has ${names.length ? names.join(', ') : 'none'}), and none of its runs recorded a record of one`,
          { showUsage: false },
        );
      }
      note(`task ${task} is not in the config (renamed or removed since): the records its runs recorded`);
    }
    const run = await chosenRun(pool, config.name, typeof values.run === 'string' ? values.run : undefined);
    if (!run) {
      if (values.json === true)
        process.stdout.write(`${JSON.stringify({ pipeline: config.name, runId: null })}\n`);
      else if (values.csv === true) process.stdout.write(`${CSV_COLUMNS.join(',')}\n`);
      else process.stdout.write(`no runs of pipeline ${config.name} yet\n`);
      return EXIT.ok;
    }
    const filter: ErrorFilter = {
      runId: run.runId,
      ...(task !== undefined ? { task } : {}),
      ...(typeof values.code === 'string' ? { code: values.code.toUpperCase() } : {}),
    };
    if (values.csv === true) {
      const client = await pool.connect();
      let broken: Error | undefined;
      try {
        if (!(await writeCsv(client, filter, limitGiven ? limit : undefined))) {
          broken = new Error('the CSV reader closed the pipe');
        }
      } catch (err) {
        broken = err as Error;
        throw err;
      } finally {
        client.release(broken);
      }
      return EXIT.ok;
    }

    const where = whereSql(filter);
    // Rows kept back for another run's send of their key — by the plan (stage plan), or by an
    // insert's push (stage push: a key another run took since the plan, ledger status held_back) —
    // are recorded with the others, but nothing is wrong with them and Salesforce refused none:
    // counted apart, as the run's figures count them (HELD_BACK_ERROR_SQL).
    const { rows: counts } = await pool.query<ErrorCount>(
      `SELECT task, stage, code, count(*)::int AS records,
              count(*) FILTER (WHERE ${HELD_BACK_ERROR_SQL})::int AS "heldBack",
              count(*) FILTER (WHERE ${REPORTED_UNKNOWN_SQL})::int AS "outcomeUnknown"
         FROM roundtrip.writeback_errors e
        WHERE ${where} GROUP BY task, stage, code ORDER BY task, stage, records DESC, code`,
    );
    const { rows: records } = await pool.query<ErrorRecord>(
      `SELECT task, stage, key, salesforce_id AS "salesforceId", code, fields, message, job_id AS "jobId", payload AS values,
              ${HELD_BACK_ERROR_SQL} AS "heldBack"
         FROM roundtrip.writeback_errors e WHERE ${where} ${ORDER_SQL} LIMIT ${limit}`,
    );
    const total = counts.reduce((n, c) => n + c.records, 0);
    const stageTotal = (stage: string): number =>
      counts.filter((c) => c.stage === stage).reduce((n, c) => n + c.records, 0);
    const heldBackAt = (stage: string): number =>
      counts.filter((c) => c.stage === stage).reduce((n, c) => n + c.heldBack, 0);
    // The first line's figures: the plan's records not held back were rejected, the push's failed.
    const rejected = stageTotal('plan') - heldBackAt('plan');
    const heldBack = heldBackAt('plan') + heldBackAt('push');
    // Upserts written as a second record (the key changed in Salesforce) are not failures either.
    const secondRecords = counts
      .filter((c) => c.stage === 'push' && WRITTEN_ERROR_CODES.includes(c.code))
      .reduce((n, c) => n + c.records, 0);
    // Keyless inserts the push reported INSERT_OUTCOME_UNKNOWN: Salesforce refused none of them, its
    // answer was lost. The run's figures (ledgerOutcomes: `reported`) and status count them of
    // unknown outcome, not failed: so does the first line.
    const insertOutcomeUnknown = counts.reduce((n, c) => n + c.outcomeUnknown, 0);
    const failed = stageTotal('push') - heldBackAt('push') - secondRecords - insertOutcomeUnknown;
    const prunedAt =
      typeof run.summary.detailsPrunedAt === 'string' ? run.summary.detailsPrunedAt : undefined;
    // A pruned run's records are gone but for the few later runs read (unknown outcomes, the keys
    // held back last): its figures are what it recorded.
    const recorded = prunedAt ? recordedCounts(run, task) : undefined;
    // The records the run sent and never learned the outcome of (its figures' outcomeUnknown):
    // not in writeback_errors, as nothing refused them, but what someone reading why records did
    // not arrive must see. They have no code: a --code lists none of them.
    const sent =
      filter.code === undefined
        ? await readSent(pool, run, config.writeback, task, limit, given.options)
        : { counts: [], records: [] };
    const leftSent = sent.counts.reduce((n, c) => n + c.records, 0);
    // Every record of unknown outcome, as the run's figures and status count them.
    const outcomeUnknown = leftSent + insertOutcomeUnknown;
    // The --task's own failure: its step (plan, push, collect) failed, records listed or not
    // (summary.writeback.<task>.error, as the run's summary and status show it).
    const stepError = task === undefined ? undefined : record(record(run.summary.writeback)[task]).error;
    const taskError = typeof stepError === 'string' ? stepError : undefined;
    const taskFailed = taskError === undefined ? undefined : `task ${task} failed: ${taskError}`;

    if (values.json === true) {
      process.stdout.write(
        `${JSON.stringify({
          pipeline: config.name,
          runId: run.runId,
          status: run.status,
          total,
          rejected,
          heldBack,
          failed,
          secondRecords,
          insertOutcomeUnknown,
          counts,
          records,
          outcomeUnknown,
          sentCounts: sent.counts,
          sentRecords: sent.records,
          ...(taskError !== undefined ? { taskError } : {}),
          ...(prunedAt ? { detailsPrunedAt: prunedAt, recorded } : {}),
        })}\n`,
      );
      return EXIT.ok;
    }

    const started = run.startedAt.toISOString().replace('T', ' ').slice(0, 19);
    const out: string[] = [];
    const filtered = [filter.task && `task ${filter.task}`, filter.code && `code ${filter.code}`]
      .filter(Boolean)
      .join(', ');
    const runText = `run ${run.runId} (${run.dryRun ? 'dry run, ' : ''}${run.status}, started ${started} UTC)${filtered ? `, ${filtered}` : ''}`;
    const unknownText =
      leftSent > 0 ? `; ${leftSent.toLocaleString('en-US')} sent whose outcome was never recorded` : '';
    const sentSection = (): string[] =>
      leftSent === 0
        ? []
        : [
            '',
            `sent, outcome never recorded (the run ended between sending and recording; the next plan of the task resolves them, a real run's, not a dry run's): ${leftSent.toLocaleString('en-US')}`,
            table(
              ['task', 'key', 'Salesforce Id', 'sent by', 'sent at (UTC)', 'what happens next'],
              sent.records.map((r) => [
                r.task,
                r.key,
                r.salesforceId ?? '—',
                r.jobId !== null && r.sentBy !== 'call' ? `Bulk job ${r.jobId}` : 'call',
                utcText(r.sentAt),
                r.next,
              ]),
              new Set(),
            ),
            // The commands of "what happens next" show a --database-url's password as ***.
            ...(given.note && sent.records.some((r) => r.next.includes('roundtrip '))
              ? [passwordBack(given).trim()]
              : []),
            ...(sent.records.length < leftSent
              ? [
                  '',
                  `${sent.records.length.toLocaleString('en-US')} of ${leftSent.toLocaleString('en-US')} sent records shown: --limit N for more`,
                ]
              : []),
          ];
    if (prunedAt && recorded) {
      // Pruned: that first, with what the run recorded, before the few records kept (if any).
      out.push(
        `${runText}: its records were pruned at ${prunedAt} (postgres.keepRunDetailsDays: ${config.postgres.keepRunDetailsDays}); ` +
          `it recorded ${countsText(recorded)}${filter.code !== undefined ? ' (of every code)' : ''}${unknownText}`,
      );
      if (total === 0) {
        if (run.error && !filtered) out.push(`the run failed: ${storedFailureText(run.error)}`);
        if (taskFailed) out.push(taskFailed);
        out.push(...sentSection());
        process.stdout.write(`${out.join('\n')}\n`);
        return EXIT.ok;
      }
      out.push(
        `kept, as later runs read them (outcomes unknown, keys held back): ${countsText({ rejected, heldBack, failed, secondRecords, insertOutcomeUnknown })}`,
      );
    } else {
      out.push(
        `${runText}: ${countsText({ rejected, heldBack, failed, secondRecords, insertOutcomeUnknown })}${unknownText}`,
      );
    }
    if (total === 0) {
      out.push(
        // A run that failed with no record refused failed for another reason: say which, here
        // rather than only in `roundtrip status`; so does a --task whose step failed.
        run.error && !filtered
          ? `${leftSent > 0 ? 'none refused' : 'no record to show'}; the run failed: ${storedFailureText(run.error)}`
          : taskFailed
            ? `${leftSent > 0 ? 'none refused' : `no record to show${await otherCodes(pool, filter)}`}; ${taskFailed}`
            : leftSent > 0
              ? 'none refused'
              : `no record to show${await otherCodes(pool, filter)}`,
        ...sentSection(),
      );
      process.stdout.write(`${out.join('\n')}\n`);
      return EXIT.ok;
    }
    // A --task whose step failed besides: said before its records.
    if (taskFailed) out.push(taskFailed);
    out.push(
      '',
      table(
        ['task', 'stage', 'code', 'records'],
        counts.map((c) => [c.task, c.stage, c.code, c.records.toLocaleString('en-US')]),
        new Set([3]),
      ),
      '',
      table(
        ['task', 'stage', 'key', 'Salesforce Id', 'code', 'fields', 'message'],
        records.map((r) => [
          r.task,
          r.stage,
          r.key ?? '—',
          r.salesforceId ?? '—',
          r.code,
          r.fields.join(', ') || '—',
          r.message.replace(/\s+/g, ' '),
        ]),
        new Set(),
      ),
    );
    if (records.length < total) {
      out.push(
        '',
        `${records.length.toLocaleString('en-US')} of ${total.toLocaleString('en-US')} shown: --limit N for more, --csv for all of them`,
      );
    }
    out.push(...sentSection());
    process.stdout.write(`${out.join('\n')}\n`);
    return EXIT.ok;
  } finally {
    await pool.end();
  }
};
