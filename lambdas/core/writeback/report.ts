/**
 * Report (DESIGN.md §1 step 5), the write-back part: completes the run in `roundtrip.runs` with,
 * per write-back task, rows read, rows written (and of them, upserts Salesforce wrote as a second
 * record: `secondRecords`, results.ts), rows rejected (before any call), rows held back
 * (another run's send of their key came first: by the plan, or by an insert's push), superseded
 * (a run that planned later synced their key first: an update's or upsert's push) and failed
 * (refused by Salesforce), API calls used and duration, and the run's final status. A run fails
 * when a step failed (the state machine's Catch passes the error), or a task's failure rate passed
 * its `maxFailureRate` or its share of rejected rows its `maxRejectRate` ({@link rejectRateBase}): the report is
 * written first, then the state machine ends in its Fail state.
 *
 * A write-back task whose step (plan, push, collect) failed is recorded as failed first, when the
 * state machine's Catch hands its error here ({@link recordTaskFailure}), and the tasks after it
 * run; the report then fails the run, naming every such task and its error (`failedTasks`).
 *
 * A run that failed before Prepare recorded it (an unknown task in the input, PostgreSQL not
 * reachable yet, a failed migration, …) still gets its row, with status `failed` and the error:
 * the report of a failure records the run when it is missing, migrating the state tables first
 * when they do not exist yet (Prepare migrates, but may have failed before it did).
 *
 * A run that never reached its Report (its execution was stopped from the console, timed out, or,
 * on a laptop, killed) would stay `running` for ever, and its details would never be pruned: each
 * report closes the pipeline's runs that are still `running` long after any execution could be
 * ({@link closeAbandonedRuns}).
 */
import type { Pool, PoolClient } from 'pg';
import { taskName } from '../../config';
import { migrate, withClient, withTransaction } from '../../connectors/postgres';
import { UNBOUNDED_TIME, type TimeLeft } from '../../shared/clock';
import { ABANDONED_AFTER_HOURS } from '../contracts';
import type { CoreDeps } from '../deps';
import {
  MAX_FAILED_TASKS_CAUSE_CHARS,
  MAX_REPORTED_REASON_CHARS,
  MAX_TASK_ERROR_CHARS,
  type CaughtError,
  type ReportInput,
  type ReportOutput,
  type TaskFailureInput,
  type TaskFailureOutput,
  type WritebackTaskSummary,
} from './contracts';
import { silentLogger, warnOnFailure, type Logger } from '../../shared/logging';
import { failureText, readableFailure } from '../../shared/errors';
import { notifyRun } from './notify';
import { countSecondRecords } from './results';
import { shellOption } from '../../shared/shell';
import {
  countUnreportedFigures,
  HELD_BACK_BY_BOTH_SQL,
  HELD_BACK_ERROR_SQL,
  heldBackFigures,
  ledgerOutcomes,
  mergeRunSummary,
  outcomeUnknownOf,
  previousRunOfTask,
  readRunSummary,
  recountFromLedger,
  storedCount as num,
  writebackTaskOf,
} from './state';

/** Whether the state tables exist (the `roundtrip.runs` table, created by the first migration). */
async function stateTablesExist(deps: Pick<CoreDeps, 'pg'>): Promise<boolean> {
  return withClient(deps.pg, async (client) => {
    const { rows } = await client.query<{ runs: string | null }>(
      `SELECT to_regclass('roundtrip.runs')::text AS runs`,
    );
    return rows[0]?.runs != null;
  });
}

/** What {@link pruneRunDetails} deleted. */
export interface PrunedDetails {
  /** Runs whose details were pruned now. */
  readonly runs: number;
  readonly pages: number;
  readonly ledgerRows: number;
  readonly errors: number;
  /** The transactions they were pruned in, one per batch of runs. */
  readonly batches: number;
  /** Runs due that are left for the next prune: the time left ran short ({@link PRUNE_ROOM_MS}). */
  readonly runsLeft: number;
}

/**
 * The detail rows (plan pages, ledger rows, errors) a batch of {@link pruneRunDetails} aims at:
 * runs are added to a batch, in the order they started, while the rows of those before stay under
 * it, each run counted by its tasks' source rows (a run is never split: its details go in one
 * transaction with its `detailsPrunedAt`, which tells every reader that they are gone).
 */
export const PRUNE_BATCH_ROWS = 500_000;

/** The most runs one batch prunes, however few rows they have. */
export const PRUNE_BATCH_MAX_RUNS = 1000;

/**
 * The time left ({@link PruneOptions.timeLeft}) below which no batch is started: the runs left are
 * pruned by the next report. A batch started is also given at most the time left less
 * {@link PRUNE_STOP_MS} (`statement_timeout`): one that would outlast the Lambda is rolled back by
 * PostgreSQL instead of running on, locks held, after the Lambda is gone.
 */
export const PRUNE_ROOM_MS = 30_000;

/** Kept between a batch's `statement_timeout` and the end of the time left (see {@link PRUNE_ROOM_MS}). */
export const PRUNE_STOP_MS = 10_000;

/** Options of {@link pruneRunDetails}. */
export interface PruneOptions {
  /** @default {@link PRUNE_BATCH_ROWS}; `Infinity`: every run due in one transaction (the bench's reference) */
  readonly batchRows?: number;
  /** The time left to the invocation (the Report Lambda's). @default unbounded */
  readonly timeLeft?: TimeLeft;
  /** Told of each batch (`Pruning the details of old runs`). @default silent */
  readonly logger?: Logger;
}

/** Ledger rows (`l`) a pruned run keeps: those left `sent`, which later plans read. */
const KEPT_LEDGER_ROW = `l.status = 'sent'`;
/** Errors (`e`) a pruned run keeps: a push's INSERT_OUTCOME_UNKNOWN, which later plans read. */
const KEPT_ERROR = `(e.stage = 'push' AND e.code = 'INSERT_OUTCOME_UNKNOWN')`;
/**
 * Ledger rows (`l`) a pruned run keeps too while it is its task's latest pruned run: those
 * `held_back`, by which {@link HELD_BACK_ERROR_SQL} tells the push's held-back keys.
 */
const STREAK_LEDGER_ROW = `l.status = 'held_back'`;
/**
 * Errors (`e`) a pruned run keeps too while it is its task's latest pruned run: its keys held back
 * ({@link HELD_BACK_ERROR_SQL}), which the task's next run compares its own with
 * ({@link repeatedlyHeldBack}).
 */
const STREAK_ERROR = HELD_BACK_ERROR_SQL;

/** The pipeline's runs whose details are due (`$1` the pipeline, `$2` the cut-off), on the runs' index. */
const DUE_RUN = `pipeline = $1 AND finished_at < $2 AND status <> 'running'
          AND NOT coalesce(summary ? 'detailsPrunedAt', false)`;

/**
 * Deletes the per-record details of the pipeline's runs that finished more than `days` days before
 * `now` (another pipeline sharing the database keeps its own, by its own setting): their
 * plan pages, their ledger rows and their errors. Kept: the runs themselves (status, summary,
 * error), their jobs, and the marks that keep an insert from being sent twice (ledger rows left
 * `sent`, `INSERT_OUTCOME_UNKNOWN` errors) and by which an update or upsert whose outcome was
 * never learned is sent again (ledger rows left `sent`), which later plans read. A run is pruned
 * once (its summary records `detailsPrunedAt`).
 *
 * Kept too, per task, by the task's latest pruned run (the latest started, as
 * {@link previousRunOfTask} orders them, of the pipeline's real runs that planned the task and
 * finished before the cut-off): its held-back keys (errors of {@link HELD_BACK_ERROR_SQL}, and
 * their `held_back` ledger rows), which the task's next run compares with its own
 * ({@link repeatedlyHeldBack}): a task run less often than `days` (a monthly run by the `tasks`
 * input, among daily runs of other tasks) would otherwise never see a streak. They go once a later
 * run of the task is pruned too: the next run's comparison with them is then as old as the details
 * it kept, and that run keeps its own. Until then a retried report of that next run reads the same
 * keys (a report prunes after it counted, and it might die after its prune).
 *
 * In batches of runs, oldest started first, each its own transaction that marks its runs pruned
 * and deletes their details ({@link pruneBatch}): a backlog (retention turned on late, or lowered:
 * 30 runs of a million records) is not one transaction of minutes that holds the rows of every
 * run due, which a concurrent plan resolving an old run's records waits for, and that a Lambda's
 * timeout cuts off with nothing kept. A prune stopped between batches (the time left, see
 * {@link PRUNE_ROOM_MS}) or in one (rolled back) leaves every run either pruned whole or not at
 * all, and the next prune goes on with the runs left. The batches end as one prune of them all
 * would have: whether a run keeps its held-back keys depends on the runs due, not on which are
 * pruned already, and the run that kept them goes as `replaced` when a later one is pruned.
 */
export async function pruneRunDetails(
  pool: Pool,
  pipeline: string,
  days: number,
  now: Date,
  options: PruneOptions = {},
): Promise<PrunedDetails> {
  const cutoff = new Date(now.getTime() - days * 86_400_000);
  const batchRows = options.batchRows ?? PRUNE_BATCH_ROWS;
  const timeLeft = options.timeLeft ?? UNBOUNDED_TIME;
  const logger = options.logger ?? silentLogger;
  const total = { runs: 0, pages: 0, ledgerRows: 0, errors: 0, batches: 0, runsLeft: 0 };
  const budget = Number.isFinite(batchRows) ? batchRows : null;
  for (;;) {
    const left = timeLeft();
    if (left < PRUNE_ROOM_MS) {
      total.runsLeft = await withClient(pool, async (client) => {
        const { rows } = await client.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM roundtrip.runs WHERE ${DUE_RUN}`,
          [pipeline, cutoff],
        );
        return rows[0]?.n ?? 0;
      });
      return total;
    }
    const started = Date.now();
    const batch = await withTransaction(pool, async (client) => {
      if (Number.isFinite(left)) {
        await client.query(`SELECT set_config('statement_timeout', $1, true)`, [
          `${Math.max(1000, Math.floor(left - PRUNE_STOP_MS))}ms`,
        ]);
      }
      // The runs due, oldest started first, while the rows of those before stay under the budget
      // (the first is always taken). A run's rows are told by its tasks' source rows (each has at
      // most a ledger row, an error or two and a page's share), or by its plan's records when it
      // has no figures (a run closed without a report); one at least.
      const { rows: chosen } = await client.query<{ run_id: string }>(
        `WITH due AS (
           SELECT run_id, started_at, summary FROM roundtrip.runs WHERE ${DUE_RUN}
            ORDER BY started_at, run_id LIMIT $4),
         sized AS (
           SELECT d.run_id, d.started_at, greatest(1,
                    (SELECT coalesce(sum((w.value->>'sourceRows')::numeric), 0)
                       FROM jsonb_each(CASE WHEN jsonb_typeof(d.summary->'writeback') = 'object' THEN d.summary->'writeback' ELSE '{}' END) AS w
                      WHERE jsonb_typeof(w.value->'sourceRows') = 'number'),
                    (SELECT coalesce(sum(p.rows), 0) FROM roundtrip.writeback_plan_pages p WHERE p.run_id = d.run_id)) AS size
             FROM due d),
         ordered AS (
           SELECT run_id, started_at, sum(size) OVER (ORDER BY started_at, run_id) - size AS before FROM sized)
         SELECT run_id FROM ordered WHERE $3::numeric IS NULL OR before < $3 ORDER BY started_at, run_id`,
        [pipeline, cutoff, budget, budget === null ? null : PRUNE_BATCH_MAX_RUNS],
      );
      if (chosen.length === 0) return undefined;
      // Locked as the marking UPDATE would: a prune beside this one (two reports at once) waits,
      // then finds them pruned and skips them.
      const { rows: locked } = await client.query<{ run_id: string }>(
        `SELECT run_id FROM roundtrip.runs WHERE run_id = ANY ($3::text[]) AND ${DUE_RUN}
          ORDER BY started_at, run_id FOR UPDATE`,
        [pipeline, cutoff, chosen.map((r) => r.run_id)],
      );
      if (locked.length === 0) return undefined;
      return pruneBatch(
        client,
        pipeline,
        cutoff,
        now,
        locked.map((r) => r.run_id),
      );
    });
    if (!batch || batch.runs === 0) return total;
    total.runs += batch.runs;
    total.pages += batch.pages;
    total.ledgerRows += batch.ledgerRows;
    total.errors += batch.errors;
    total.batches += 1;
    logger.info('Pruning the details of old runs', {
      ...batch,
      ms: Date.now() - started,
      runsSoFar: total.runs,
    });
  }
}

/**
 * One batch of {@link pruneRunDetails}, in the caller's transaction: the runs `runIds` (due, and
 * locked by the caller) marked pruned and their details deleted; per task, the latest pruned run's
 * held-back keys kept, and those of the run that kept them before deleted once a later run of the
 * task is pruned (see {@link pruneRunDetails}). Both by the runs' index: whether a later run of a
 * task is due, among the runs started between a run pruned now and the cut-off (a pruned run
 * finished before the cut-off, and so started before it); the task's run before one pruned now
 * (when pruned before, the one that kept them), as {@link previousRunOfTask} finds it.
 */
async function pruneBatch(
  client: PoolClient,
  pipeline: string,
  cutoff: Date,
  now: Date,
  runIds: readonly string[],
): Promise<Omit<PrunedDetails, 'batches' | 'runsLeft'>> {
  // Each task's figures counted once more from the whole ledger before it is cut down: a later
  // plan that resolved some of the run's `sent` rows (reconcile.ts) counts them in a transaction
  // of its own after resolving them, and a prune in between would delete them uncounted (a pruned
  // run's recount adds only the resolved rows its ledger still holds). A run that ended without
  // reporting and was closed before its close counted its figures (countUnreportedFigures) has no
  // `outcomeUnknown`: counted too, or what it wrote would be pruned uncounted for ever.
  const { rows: due } = await client.query<{
    run_id: string;
    task: string;
    figures: Record<string, unknown>;
  }>(
    `SELECT r.run_id, w.key AS task, w.value AS figures
       FROM roundtrip.runs r,
            jsonb_each(CASE WHEN jsonb_typeof(r.summary->'writeback') = 'object' THEN r.summary->'writeback' ELSE '{}' END) AS w
      WHERE r.run_id = ANY ($1::text[])
        AND jsonb_typeof(w.value) = 'object'
      ORDER BY r.run_id, w.key`,
    [runIds],
  );
  for (const d of due) await recountFromLedger(client, d.run_id, d.task, d.figures);
  // Which runs are pruned now, and per task the run that keeps its held-back keys for the streak
  // and the one that no longer does: one statement over `runs`, by index. Its parts see `runs` as
  // it was before it, without this batch's `detailsPrunedAt`.
  const { rows: marked } = await client.query<{
    kind: 'old' | 'streak' | 'replaced';
    run_id: string;
    task: string | null;
  }>(
    `WITH old AS (
       UPDATE roundtrip.runs
          SET summary = jsonb_set(coalesce(summary, '{}'::jsonb), '{detailsPrunedAt}', to_jsonb($2::timestamptz))
        WHERE run_id = ANY ($4::text[]) AND pipeline = $3 AND finished_at < $1 AND status <> 'running'
          AND NOT coalesce(summary ? 'detailsPrunedAt', false)
        RETURNING run_id, started_at, dry_run, summary),
     planned AS (
       -- The tasks each real run pruned now planned (previousRunOfTask's runs of a task).
       SELECT old.run_id, old.started_at, w.key AS task
         FROM old, jsonb_each(CASE WHEN jsonb_typeof(old.summary->'writeback') = 'object' THEN old.summary->'writeback' ELSE '{}' END) AS w
        WHERE NOT old.dry_run AND jsonb_typeof(w.value) = 'object'),
     streak AS (
       -- Of them, the task's latest run due: no later run of the task is due, in this batch, in a
       -- later one or pruned before (either finished before the cut-off, and so started before
       -- it). One per task at most.
       SELECT p.run_id, p.task FROM planned p
        WHERE NOT EXISTS (
          SELECT 1 FROM roundtrip.runs n
           WHERE n.pipeline = $3 AND n.started_at >= p.started_at AND n.started_at < $1
             AND (n.started_at, n.run_id) > (p.started_at, p.run_id)
             AND NOT n.dry_run AND n.finished_at < $1 AND n.status <> 'running'
             AND jsonb_typeof(n.summary->'writeback'->p.task) = 'object')),
     replaced AS (
       -- The task's run before each of them (previousRunOfTask), when pruned before (by an
       -- earlier batch too): it kept its held-back keys as the task's latest pruned run, which it
       -- is no more. One per task at most: the run before the task's others pruned now is pruned
       -- now too.
       SELECT prev.run_id, p.task FROM planned p
        CROSS JOIN LATERAL (
          SELECT r.run_id, r.summary FROM roundtrip.runs r
           WHERE r.pipeline = $3 AND NOT r.dry_run AND r.started_at <= p.started_at
             AND (r.started_at, r.run_id) < (p.started_at, p.run_id)
             AND jsonb_typeof(r.summary->'writeback'->p.task) = 'object'
           ORDER BY r.started_at DESC, r.run_id DESC LIMIT 1) prev
        WHERE coalesce(prev.summary ? 'detailsPrunedAt', false))
     SELECT 'old' AS kind, run_id, NULL AS task FROM old
     UNION ALL SELECT 'streak', run_id, task FROM streak
     UNION ALL SELECT 'replaced', run_id, task FROM replaced`,
    [cutoff, now, pipeline, runIds],
  );
  const old = marked.filter((m) => m.kind === 'old').map((m) => m.run_id);
  if (old.length === 0) return { runs: 0, pages: 0, ledgerRows: 0, errors: 0 };
  /** The (run, task) pairs of one kind, as two arrays of the same order. */
  const pairs = (kind: 'streak' | 'replaced'): [string[], string[]] => {
    const of = marked.filter((m) => m.kind === kind);
    return [of.map((m) => m.run_id), of.map((m) => m.task ?? '')];
  };
  // By the runs' ids, in arrays whose length the planner knows. Joined to the UPDATE's RETURNING
  // instead, they were estimated at most of the pipeline's runs, and the errors of one run pruned
  // were found by reading the whole of writeback_errors (1.1 s among 2.2 million rows on the
  // embedded PostgreSQL, against 8 ms by its index).
  const { rows } = await client.query<{ pages: string; ledger: string; errors: string }>(
    `WITH streak (run_id, task) AS (SELECT * FROM unnest($2::text[], $3::text[])),
     pages AS (
       DELETE FROM roundtrip.writeback_plan_pages p WHERE p.run_id = ANY ($1::text[]) RETURNING 1),
     ledger AS (
       DELETE FROM roundtrip.writeback_plans l
        WHERE l.run_id = ANY ($1::text[]) AND NOT ${KEPT_LEDGER_ROW}
          AND NOT (${STREAK_LEDGER_ROW} AND EXISTS (SELECT 1 FROM streak s WHERE s.run_id = l.run_id AND s.task = l.task))
       RETURNING 1),
     errors AS (
       DELETE FROM roundtrip.writeback_errors e
        WHERE e.run_id = ANY ($1::text[]) AND NOT ${KEPT_ERROR}
          AND NOT (EXISTS (SELECT 1 FROM streak s WHERE s.run_id = e.run_id AND s.task = e.task) AND ${STREAK_ERROR})
       RETURNING 1),
     replaced_ledger AS (
       DELETE FROM roundtrip.writeback_plans l USING unnest($4::text[], $5::text[]) AS r (run_id, task)
        WHERE l.run_id = r.run_id AND l.task = r.task AND NOT ${KEPT_LEDGER_ROW} RETURNING 1),
     replaced_errors AS (
       DELETE FROM roundtrip.writeback_errors e USING unnest($4::text[], $5::text[]) AS r (run_id, task)
        WHERE e.run_id = r.run_id AND e.task = r.task AND NOT ${KEPT_ERROR} RETURNING 1),
     -- The COUNT()s the run's extracts took (migration 13): read by that run's steps alone.
     counts AS (DELETE FROM roundtrip.extract_counts c WHERE c.run_id = ANY ($1::text[]))
     SELECT (SELECT count(*) FROM pages) AS pages,
            (SELECT count(*) FROM ledger) + (SELECT count(*) FROM replaced_ledger) AS ledger,
            (SELECT count(*) FROM errors) + (SELECT count(*) FROM replaced_errors) AS errors`,
    [old, ...pairs('streak'), ...pairs('replaced')],
  );
  const r = rows[0];
  return {
    runs: old.length,
    pages: Number(r?.pages ?? 0),
    ledgerRows: Number(r?.ledger ?? 0),
    errors: Number(r?.errors ?? 0),
  };
}

/**
 * For a run whose details were pruned already ({@link pruneRunDetails}) and some of whose kept
 * rows a later plan resolved since (reconcile.ts): deletes the task's details that are no longer
 * kept (the resolved ledger rows, the NOT_INSERTED errors written for them), as the prune would
 * have. Without it they stayed for ever: a run is pruned once. Its held-back keys stay: the prune
 * kept them (only a task's latest pruned run has any) for the task's next run to compare with,
 * and deletes them when it prunes a later run of the task. The caller knows the run was pruned
 * (its summary's `detailsPrunedAt`).
 */
export async function pruneResolvedDetails(client: PoolClient, runId: string, task: string): Promise<void> {
  await client.query(
    `DELETE FROM roundtrip.writeback_plans l
      WHERE l.run_id = $1 AND l.task = $2 AND NOT ${KEPT_LEDGER_ROW} AND NOT ${STREAK_LEDGER_ROW}`,
    [runId, task],
  );
  await client.query(
    `DELETE FROM roundtrip.writeback_errors e
      WHERE e.run_id = $1 AND e.task = $2 AND NOT ${KEPT_ERROR} AND NOT ${STREAK_ERROR}`,
    [runId, task],
  );
}

/**
 * Of the keys the run held back for task `task`, those the task's previous run
 * ({@link previousRunOfTask}) held back too (`count`, {@link HELD_BACK_BY_BOTH_SQL}): the same keys
 * two runs in a row, which a crash's one-run wait does not explain. `since` is
 * the first run of the streak: the previous run's `heldBackSince` when it held keys back
 * repeatedly too, else the previous run. Reads this run's and the previous run's errors (kept for
 * `postgres.keepRunDetailsDays`, and the previous run's held-back ones past it until this run is
 * pruned too: {@link pruneRunDetails}), so a retried report answers the same.
 */
export async function repeatedlyHeldBack(
  client: PoolClient,
  runId: string,
  task: string,
): Promise<{ count: number; since?: string }> {
  const previous = await previousRunOfTask(client, runId, task);
  if (!previous) return { count: 0 };
  const { rows } = await client.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM (${HELD_BACK_BY_BOTH_SQL}) AS both_runs`,
    [runId, previous.runId, task],
  );
  const count = rows[0]?.n ?? 0;
  if (count === 0) return { count };
  const since = previous.figures.heldBackSince;
  const streak = num(previous.figures.heldBackRepeatedly) > 0 && typeof since === 'string';
  return { count, since: streak ? since : previous.runId };
}

/**
 * The rows a task's `maxRejectRate` is measured against, from its summary's figures. Update and
 * upsert: every source row, since each one states what its record should hold, changed or not (a
 * row rejected run after run among a million unchanged ones is one in a million, not one in one
 * on each run with nothing else to send). Insert: the rows whose key is not inserted yet — planned,
 * rejected and held back, `sourceRows - unchanged` — since a key inserted before is never sent
 * again and its row is not checked (counted `unchanged`): a source that keeps the rows it had
 * inserted would otherwise hide a batch of new rows rejected to the last one.
 */
export function rejectRateBase(
  mode: 'insert' | 'update' | 'upsert',
  figures: { sourceRows: number; unchanged: number },
): number {
  return mode === 'insert' ? Math.max(0, figures.sourceRows - figures.unchanged) : figures.sourceRows;
}

/**
 * Whether the plan rejected more of the rows it judges ({@link rejectRateBase}) than `maxRejectRate`
 * allows. `rejected` counts the rows refused for what the source holds: rows held back while an
 * earlier run's send of their key has no outcome (`heldBack`) are not the source's fault and are
 * not in it.
 */
export function rejectRateExceeded(rejected: number, judgedRows: number, maxRejectRate: number): boolean {
  return judgedRows > 0 && rejected / judgedRows > maxRejectRate;
}

const percent = (rate: number): string => `${(rate * 100).toFixed(2)} %`;

/**
 * Closes the pipeline's runs still `running` more than {@link ABANDONED_AFTER_HOURS} after they
 * started: `failed`, finished now, with an error that says why. No execution can still be running
 * them (Step Functions ends one at RUN_TIMEOUT_HOURS), so nothing else will. Their ledger rows left
 * `sent` stay, as for every run: they keep an insert from being sent twice. Their write-back
 * figures, which no report counted, are counted from their ledgers ({@link countUnreportedFigures}).
 * Returns their ids.
 */
export async function closeAbandonedRuns(client: PoolClient, pipeline: string, now: Date): Promise<string[]> {
  const { rows } = await client.query<{ run_id: string }>(
    `UPDATE roundtrip.runs
        SET status = 'failed', finished_at = $3,
            error = 'Abandoned: still running more than ' || $4 || ' hours after it started, longer than an execution may run. '
                 || 'Its execution was stopped, timed out or interrupted before its report; closed by a later run''s report'
      WHERE pipeline = $1 AND status = 'running' AND started_at < $2
      RETURNING run_id`,
    [
      pipeline,
      new Date(now.getTime() - ABANDONED_AFTER_HOURS * 3_600_000),
      now,
      String(ABANDONED_AFTER_HOURS),
    ],
  );
  const closed = rows.map((r) => r.run_id).sort();
  // Never reported: their write-back figures are counted from their ledgers now.
  for (const runId of closed) await countUnreportedFigures(client, runId);
  return closed;
}

/** `text` cut to `max` characters, an ellipsis marking the cut. */
function bounded(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** A caught error as a write-back task's `error` keeps it: readable, at most {@link MAX_TASK_ERROR_CHARS}. */
function taskErrorText(error: CaughtError): string {
  return bounded(failureText(error.Error, error.Cause), MAX_TASK_ERROR_CHARS);
}

/**
 * Stores `error` as `summary.writeback.<task>.error` of the run, with `failedAt` (the first one
 * kept: a retry stores the same error again and keeps the time), and for a task whose error
 * stopped the run, `stoppedRun: { notRun }`: the write-back tasks after it, which did not run (what
 * the CLI's summary says of the task, bin/local/summary.ts).
 */
async function storeTaskError(
  client: PoolClient,
  deps: Pick<CoreDeps, 'clock'>,
  runId: string,
  task: string,
  error: string,
  stoppedRun?: { readonly notRun: readonly string[] },
): Promise<void> {
  const summary = await readRunSummary(client, runId);
  const stored = ((summary.writeback ?? {}) as Record<string, Record<string, unknown> | undefined>)[task];
  const failedAt = typeof stored?.failedAt === 'string' ? stored.failedAt : deps.clock.now().toISOString();
  await mergeRunSummary(client, runId, ['writeback', task], {
    error,
    failedAt,
    ...(stoppedRun ? { stoppedRun } : {}),
  });
}

/**
 * Records that write-back task `input.task` failed in a step (its plan, push or collect), with the
 * error the state machine's Catch passed, readable and bounded ({@link MAX_TASK_ERROR_CHARS}), as
 * `summary.writeback.<task>.error` (and `failedAt`) of the run; the state machine then goes on
 * with the next task, and the run's report fails the run naming it ({@link reportRun}). Only what
 * follows the Catch: the task's ledger, lock and figures are as its step left them, so a later
 * run goes on from them as from any failed run. Idempotent: a retry stores the same error (and
 * keeps the first `failedAt`).
 */
export async function recordTaskFailure(
  deps: Pick<CoreDeps, 'config' | 'pg' | 'logger' | 'clock'>,
  input: TaskFailureInput,
): Promise<TaskFailureOutput> {
  writebackTaskOf(deps, input.task);
  const error = taskErrorText(input.error);
  await withTransaction(deps.pg, (client) => storeTaskError(client, deps, input.runId, input.task, error));
  deps.logger.warn('Write-back task failed; the tasks after it go on, and the run fails at its end', {
    runId: input.runId,
    task: input.task,
    error,
  });
  return { runId: input.runId, task: input.task, taskFailed: true, error };
}

/**
 * The Report's answer as the state machine keeps it (`$.report`, in the execution's state, which
 * Step Functions limits to 256 KiB, failing the execution with States.DataLimitExceeded past it):
 * the tasks' figures without their errors and the reason cut to {@link MAX_REPORTED_REASON_CHARS}
 * (both whole in `roundtrip.runs`), so that it does not grow with the failed tasks' errors. The
 * failed tasks' names and the Fail state's bounded cause stay (`failedTasks`).
 */
export function reportedOutput(output: ReportOutput): ReportOutput {
  const { reason, writeback, ...rest } = output;
  const note = ' … (cut: the whole reason is in roundtrip.runs.error)';
  return {
    ...rest,
    ...(reason === undefined
      ? {}
      : {
          reason:
            reason.length > MAX_REPORTED_REASON_CHARS
              ? reason.slice(0, MAX_REPORTED_REASON_CHARS - note.length) + note
              : reason,
        }),
    writeback: Object.fromEntries(
      Object.entries(writeback).map(([task, figures]) => {
        const { error: _error, ...kept } = figures;
        return [task, kept];
      }),
    ),
  };
}

/**
 * What a run stopped by a write-back task's error says of the tasks after it (`after`, their
 * names): in the run's error, and in the CLI's summary (bin/local/summary.ts).
 */
export function tasksNotRunText(after: readonly string[]): string {
  if (after.length === 0) return 'it was the last write-back task';
  return `the write-back ${after.length === 1 ? 'task' : 'tasks'} after it did not run (${after.join(', ')})`;
}

/**
 * The Cause of a run whose write-back tasks failed: each task and its error, the errors shortened
 * evenly so that the whole stays within {@link MAX_FAILED_TASKS_CAUSE_CHARS}.
 */
export function failedTasksCause(failed: readonly { task: string; error: string }[]): string {
  const head = `${failed.length === 1 ? 'A write-back task' : `${failed.length} write-back tasks`} failed (the other tasks ran): `;
  const tail =
    '. Each error is in roundtrip.runs (error, and summary.writeback.<task>.error); roundtrip status shows the run';
  const names = failed.reduce((n, f) => n + f.task.length + 4, 0);
  const room = Math.max(
    40,
    Math.floor((MAX_FAILED_TASKS_CAUSE_CHARS - head.length - tail.length - names) / failed.length),
  );
  const cause = head + failed.map((f) => `${f.task}: ${bounded(f.error, room)}`).join('; ') + tail;
  return bounded(cause, MAX_FAILED_TASKS_CAUSE_CHARS);
}

/**
 * The run's failure reason for a task's keyless insert records whose outcome is unknown
 * (`INSERT_OUTCOME_UNKNOWN`, reconcile.ts): what happened to them, what the next runs do, and
 * what to do.
 */
function unknownInsertsReason(name: string, index: number, records: number, runId: string): string {
  const task = shellOption('--task', name);
  return (
    `write-back ${name}: ${records === 1 ? '1 record sent for insert has' : `${records} records sent for insert have`} an unknown outcome, ` +
    `not a failure (writeback[${index}]): Salesforce's answer was lost after they were sent, so Salesforce may have created them, ` +
    `and without an external-ID key nothing can look them up. They are not sent again: the task's next plans hold their keys back ` +
    `until you find them in Salesforce and record what you found with roundtrip resolve ${task} ` +
    `(roundtrip errors --run ${runId} ${task} --code INSERT_OUTCOME_UNKNOWN lists them, each with its command); ` +
    `an upsert by an external ID (writeback[${index}].key) makes this automatic`
  );
}

/**
 * Writes the run's final status and write-back summary (see the module comment), tells of a
 * failed run, or of one that held back keys its previous run held back too ({@link
 * repeatedlyHeldBack}) or whose upserts created second records, through `deps.notifier` ({@link notifyRun}; one the topic did not take is
 * `notificationFailed` in the output), then closes
 * abandoned runs ({@link closeAbandonedRuns}) and prunes the details of runs older than
 * `postgres.keepRunDetailsDays` ({@link pruneRunDetails}); a failure of either is logged, it does
 * not fail the run. Idempotent: a retry writes the same figures again.
 */
export async function reportRun(
  deps: Pick<CoreDeps, 'config' | 'pg' | 'logger' | 'clock' | 'notifier'>,
  input: ReportInput,
  options: { readonly timeLeft?: TimeLeft } = {},
): Promise<ReportOutput> {
  const now = deps.clock.now();
  if (input.error && !(await stateTablesExist(deps))) await migrate(deps.pg, { logger: deps.logger });
  const output = await withTransaction(deps.pg, async (client) => {
    if (input.error) {
      // Recorded here when Prepare failed before it could (its start time is then unknown: now).
      const recorded = await client.query(
        `INSERT INTO roundtrip.runs (run_id, pipeline, status, started_at)
         VALUES ($1, $2, 'running', $3)
         ON CONFLICT (run_id) DO NOTHING`,
        [input.runId, deps.config.name, now],
      );
      if (recorded.rowCount === 1) {
        deps.logger.warn('Run recorded by its report: it failed before Prepare recorded it', {
          runId: input.runId,
        });
      }
    }
    // A write-back task's step met an error that stops the whole run (statemachine/definition.ts
    // RUN_LEVEL_WRITEBACK_ERRORS): recorded against the task as the failure of any task is, and the
    // run's error says the tasks after it did not run.
    const stoppedBy = input.error?.task;
    const stopIndex =
      stoppedBy === undefined ? -1 : deps.config.writeback.findIndex((t) => taskName(t) === stoppedBy);
    const notRunTasks = stopIndex < 0 ? [] : deps.config.writeback.slice(stopIndex + 1).map(taskName);
    if (input.error && stoppedBy !== undefined && stopIndex >= 0) {
      await storeTaskError(client, deps, input.runId, stoppedBy, taskErrorText(input.error), {
        notRun: notRunTasks,
      });
    }
    const summary = await readRunSummary(client, input.runId);
    const stored = (summary.writeback ?? {}) as Record<string, Record<string, unknown>>;
    const writeback: Record<string, WritebackTaskSummary> = {};
    const reasons: string[] = [];
    const failedTasks: { task: string; error: string }[] = [];
    for (const [index, task] of deps.config.writeback.entries()) {
      const name = taskName(task);
      const s = stored[name];
      if (!s) continue;
      const started = typeof s.startedAt === 'string' ? Date.parse(s.startedAt) : NaN;
      // A task that failed ended when its failure was recorded ({@link recordTaskFailure}).
      const endedAt = typeof s.collectedAt === 'string' ? s.collectedAt : s.failedAt;
      const ended = typeof endedAt === 'string' ? Date.parse(endedAt) : now.getTime();
      const error = typeof s.error === 'string' ? s.error : undefined;
      // A push or collect that never finished wrote no figures: what its ledger holds is what
      // happened (records Salesforce took or refused, and those sent with no outcome recorded).
      const outcomes =
        typeof s.collectedAt === 'string' ? undefined : await ledgerOutcomes(client, input.runId, name);
      // Missing in a plan stored before held-back rows were counted apart (they were in rejected),
      // and `heldBackAtPush` in a summary stored before the push counted its own (they were failed).
      const held = outcomes
        ? heldBackFigures(s, outcomes.heldBack)
        : heldBackFigures(s, num(s.heldBackAtPush));
      // Only a run that held keys back can hold back the same ones again: the others skip the query.
      const repeated = held.heldBack > 0 ? await repeatedlyHeldBack(client, input.runId, name) : { count: 0 };
      // Of `written`, as the push counted them at its end; for a push that never got there, its
      // look-ups so far (the rows it left unchecked are not counted: the next plan looks them up).
      const secondRecords =
        outcomes && task.mode === 'upsert'
          ? await countSecondRecords(client, input.runId, name)
          : num(s.secondRecords);
      const judged = rejectRateBase(task.mode, {
        sourceRows: num(s.sourceRows),
        unchanged: num(s.unchanged),
      });
      writeback[name] = {
        sourceRows: num(s.sourceRows),
        rejected: num(s.rejected),
        ...held,
        heldBackRepeatedly: repeated.count,
        ...(repeated.since ? { heldBackSince: repeated.since } : {}),
        superseded: outcomes?.superseded ?? num(s.superseded),
        unchanged: num(s.unchanged),
        changed: num(s.changed),
        written: outcomes?.succeeded ?? num(s.written),
        ...(secondRecords > 0 ? { secondRecords } : {}),
        failed: outcomes?.failed ?? num(s.failed),
        outcomeUnknown: outcomes ? outcomeUnknownOf(outcomes) : num(s.outcomeUnknown),
        apiCalls: num(s.apiCalls),
        api: s.api === 'bulk' || s.api === 'collections' ? s.api : 'none',
        durationMs: Number.isFinite(started) ? Math.max(0, ended - started) : 0,
        failureRateExceeded: s.failureRateExceeded === true,
        rejectRateExceeded: rejectRateExceeded(num(s.rejected), judged, task.maxRejectRate),
        ...(error !== undefined ? { error } : {}),
      };
      if (error !== undefined) {
        failedTasks.push({ task: name, error });
        reasons.push(
          index === stopIndex
            ? `write-back ${name} failed (writeback[${index}]) and stopped the run, its error being the run's, not the task's alone: ${error}; ${tasksNotRunText(notRunTasks)}`
            : `write-back ${name} failed (writeback[${index}]): ${error}`,
        );
      }
      if (s.failureRateExceeded === true) {
        // Over the records sent: those the push held back or found superseded were not (none
        // before it counted them).
        const notSent = held.heldBackAtPush + num(s.superseded);
        const sent = num(s.changed) - notSent;
        const of = notSent > 0 ? `${sent} records sent` : `${sent} records`;
        reasons.push(
          `write-back ${name}: ${num(s.failed)} of ${of} failed (${percent(num(s.failureRate))}), more than maxFailureRate ${percent(task.maxFailureRate)} (writeback[${index}].maxFailureRate)`,
        );
      }
      // Keyless inserts whose answer was lost (a collected task's unknown outcomes are only those):
      // not refused, so not in failed nor in maxFailureRate, but nothing tells whether Salesforce
      // created them, and no later run will: the run fails, saying so and what to do.
      const reported = outcomes ? outcomes.reported : error === undefined ? num(s.outcomeUnknown) : 0;
      if (reported > 0) {
        reasons.push(unknownInsertsReason(name, index, reported, input.runId));
      }
      if (writeback[name].rejectRateExceeded) {
        reasons.push(
          task.mode === 'insert'
            ? `write-back ${name}: ${num(s.rejected)} of ${judged} source rows with a key that has no record yet were rejected before sending (${percent(num(s.rejected) / judged)}${num(s.unchanged) > 0 ? `; the ${num(s.unchanged)} rows whose key has a record already, inserted before or found in the extracted copy, are not counted` : ''}), more than maxRejectRate ${percent(task.maxRejectRate)} (writeback[${index}].maxRejectRate)`
            : `write-back ${name}: ${num(s.rejected)} of ${judged} source rows were rejected before sending (${percent(num(s.rejected) / judged)}), more than maxRejectRate ${percent(task.maxRejectRate)} (writeback[${index}].maxRejectRate)`,
        );
      }
    }
    if (input.error && stopIndex < 0) {
      // A failed Athena query's cause is its whole GetQueryExecution answer: its reason, read out.
      reasons.unshift(
        `${input.error.Error ?? 'Error'}: ${readableFailure(input.error.Cause ?? 'no cause given')}`,
      );
    }
    const status = reasons.length > 0 ? 'failed' : 'succeeded';
    const reason = reasons.length > 0 ? reasons.join('; ') : undefined;
    await mergeRunSummary(client, input.runId, ['writeback'], writeback);
    await client.query(
      `UPDATE roundtrip.runs SET status = $2, finished_at = $3, error = $4 WHERE run_id = $1`,
      [input.runId, status, now, reason ?? null],
    );
    deps.logger.info('Run reported', { runId: input.runId, status, ...(reason ? { reason } : {}) });
    // Prepare's calls, recorded whether it succeeded or failed (a failed one has no output to say them).
    const prepareCalls = num((summary.prepare as Record<string, unknown> | undefined)?.apiCalls);
    // Each Salesforce extract's, likewise: a step that failed (a Bulk job that ended Failed) spent
    // its calls and recorded them, and has no output to say them. (An Athena extract's are
    // Athena's, not Salesforce's.)
    const extracted = (summary.extract ?? {}) as Record<string, Record<string, unknown> | undefined>;
    const extract: Record<string, { apiCalls: number }> = {};
    for (const task of deps.config.extract) {
      const calls = task.from === 'salesforce' ? num(extracted[task.name]?.apiCalls) : 0;
      if (calls > 0) extract[task.name] = { apiCalls: calls };
    }
    const reported: ReportOutput = {
      runId: input.runId,
      status,
      ...(reason ? { reason } : {}),
      writeback,
      ...(failedTasks.length > 0
        ? { failedTasks: { tasks: failedTasks.map((f) => f.task), cause: failedTasksCause(failedTasks) } }
        : {}),
      ...(prepareCalls > 0 ? { prepare: { apiCalls: prepareCalls } } : {}),
      ...(Object.keys(extract).length > 0 ? { extract } : {}),
    };
    return reported;
  });
  const notice = await notifyRun(deps, output);
  const abandoned = await warnOnFailure(
    deps.logger,
    'Could not close abandoned runs; the next report tries again',
    {},
    () => withTransaction(deps.pg, (client) => closeAbandonedRuns(client, deps.config.name, now)),
  );
  if (abandoned && abandoned.length > 0) {
    deps.logger.warn('Closed runs abandoned without a report as failed', { runIds: abandoned });
  }
  const days = deps.config.postgres.keepRunDetailsDays;
  const pruned = await warnOnFailure(
    deps.logger,
    'Could not prune the details of old runs; they are kept until the next report',
    {},
    () =>
      pruneRunDetails(deps.pg, deps.config.name, days, now, {
        timeLeft: options.timeLeft,
        logger: deps.logger,
      }),
  );
  if (pruned && (pruned.runs > 0 || pruned.runsLeft > 0)) {
    deps.logger.info('Pruned the details of old runs', { keepRunDetailsDays: days, ...pruned });
  }
  // The handler measures it (NotificationsFailed), and the stack alarms on that.
  return notice === 'failed' ? { ...output, notificationFailed: true } : output;
}
