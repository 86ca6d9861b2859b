/**
 * Small helpers over the `roundtrip` state tables shared by the write-back steps (plan, push,
 * collect, report) and the transform: the run's summary, the task lookup, SQL literals.
 */
import type { ClientBase } from 'pg';
import type { PipelineConfig, WritebackTask } from '../../config';
import { taskName } from '../../config';
import { TerminalError } from '../../shared/errors';
import type { CoreDeps } from '../deps';

/** The longest source value (a key, a field's value) quoted in a record's error message. */
export const MESSAGE_VALUE_CHARS = 100;

/** `'text'` with quotes doubled (standard_conforming_strings is on since PostgreSQL 9.1). */
export function sqlLiteral(text: string): string {
  if (text.includes('\u0000'))
    throw new TerminalError(`A SQL literal cannot hold a NUL character: ${JSON.stringify(text)}`);
  return `'${text.replace(/'/g, "''")}'`;
}

/** A JSON object (not null, not a list): a run summary's section, a task's figures. */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function deepMerge(base: unknown, patch: unknown): unknown {
  if (!isObject(base) || !isObject(patch)) return patch;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) continue;
    out[k] = deepMerge(out[k], v);
  }
  return out;
}

/**
 * Merges `value` (JSON-serialisable) into `roundtrip.runs.summary` at `path` (objects are merged key by key, anything
 * else replaced), under a row lock so that parallel steps of one run do not lose each other's keys.
 * A run that was never recorded (Prepare records it) is a {@link TerminalError}.
 */
export async function mergeRunSummary(
  client: ClientBase,
  runId: string,
  path: readonly string[],
  value: unknown,
): Promise<void> {
  const { rows } = await client.query<{ summary: unknown }>(
    'SELECT summary FROM roundtrip.runs WHERE run_id = $1 FOR UPDATE',
    [runId],
  );
  if (rows.length === 0)
    throw new TerminalError(`Run ${runId} is not recorded in roundtrip.runs (the Prepare step records it)`);
  let patch: unknown = value;
  for (const key of [...path].reverse()) patch = { [key]: patch };
  const merged = deepMerge(rows[0]?.summary ?? {}, patch);
  await client.query('UPDATE roundtrip.runs SET summary = $2::jsonb WHERE run_id = $1', [
    runId,
    JSON.stringify(merged),
  ]);
}

/**
 * Adds the Salesforce API calls a step spent to the run's summary at `path` (its `apiCalls`), and
 * answers the figure there now. Added, never set: a retried step's earlier attempts spent theirs.
 */
export async function addRunApiCalls(
  client: ClientBase,
  runId: string,
  path: readonly string[],
  calls: number,
): Promise<number> {
  const { rows } = await client.query<{ n: string | null }>(
    'SELECT summary #>> $2::text[] AS n FROM roundtrip.runs WHERE run_id = $1 FOR UPDATE',
    [runId, [...path, 'apiCalls']],
  );
  const total = Number(rows[0]?.n ?? 0) + calls;
  await mergeRunSummary(client, runId, path, { apiCalls: total });
  return total;
}

/** Reads the run's summary (`{}` when it has none yet). */
export async function readRunSummary(client: ClientBase, runId: string): Promise<Record<string, unknown>> {
  const { rows } = await client.query<{ summary: unknown }>(
    'SELECT summary FROM roundtrip.runs WHERE run_id = $1',
    [runId],
  );
  if (rows.length === 0)
    throw new TerminalError(`Run ${runId} is not recorded in roundtrip.runs (the Prepare step records it)`);
  const summary = rows[0]?.summary;
  return isObject(summary) ? summary : {};
}

/** A count as a run's summary stores it, 0 when absent (or not a number). */
export function storedCount(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

/**
 * A task's held-back figures for the run's summary once its push held back `atPush` records (insert
 * keys another run took since the plan, ledger status `held_back`): `heldBack` counts the plan's
 * held-back rows and those, `heldBackAtPush` those alone. The plan's part is the stored `heldBack`
 * less the stored `heldBackAtPush` (absent before the push, or in a summary written before the
 * push counted its own: 0), so a step retried, or a run's figures counted again, writes the same
 * figures, never the push's twice.
 */
export function heldBackFigures(
  stored: Record<string, unknown> | undefined,
  atPush: number,
): { heldBack: number; heldBackAtPush: number } {
  const ofPlan = Math.max(0, storedCount(stored?.heldBack) - storedCount(stored?.heldBackAtPush));
  return { heldBack: ofPlan + atPush, heldBackAtPush: atPush };
}

/**
 * SQL: whether the error `e` (a row of `roundtrip.writeback_errors`) is a key held back, not
 * rejected nor failed: by the plan (`OUTCOME_PENDING`, `INSERT_OUTCOME_UNKNOWN`) or by the push
 * (`ALREADY_INSERTED`, `INSERT_PENDING_ELSEWHERE` whose ledger row is `held_back`). A push's own
 * `INSERT_OUTCOME_UNKNOWN` is a record sent with no outcome, not one held back. The push's codes
 * are read with the ledger status, which the run's figures count ({@link ledgerOutcomes}): a run
 * before migration 9 wrote those records `failed`, and its summary says failed.
 */
export const HELD_BACK_ERROR_SQL = `((e.stage = 'plan' AND e.code IN ('OUTCOME_PENDING', 'INSERT_OUTCOME_UNKNOWN'))
  OR (e.stage = 'push' AND e.code IN ('ALREADY_INSERTED', 'INSERT_PENDING_ELSEWHERE')
      AND EXISTS (SELECT 1 FROM roundtrip.writeback_plans held
                   WHERE held.run_id = e.run_id AND held.task = e.task AND held.key = e.key
                     AND held.status = 'held_back')))`;

/**
 * SQL: the keys run `$1` held back for task `$3` ({@link HELD_BACK_ERROR_SQL}) that run `$2` held
 * back too, each once.
 */
export const HELD_BACK_BY_BOTH_SQL = `
  SELECT e.key FROM roundtrip.writeback_errors e
   WHERE e.run_id = $1 AND e.task = $3 AND e.key IS NOT NULL AND ${HELD_BACK_ERROR_SQL}
  INTERSECT
  SELECT e.key FROM roundtrip.writeback_errors e
   WHERE e.run_id = $2 AND e.task = $3 AND e.key IS NOT NULL AND ${HELD_BACK_ERROR_SQL}`;

/**
 * The task's previous run before run `runId`: the pipeline's latest run started before it (ties by
 * run id) that planned the task (its summary has the task's figures), with those figures. Dry runs
 * are neither looked from nor at: none for a dry run.
 */
export async function previousRunOfTask(
  client: ClientBase,
  runId: string,
  task: string,
): Promise<{ runId: string; figures: Record<string, unknown> } | undefined> {
  const { rows } = await client.query<{ run_id: string; figures: Record<string, unknown> }>(
    `SELECT r.run_id, r.summary->'writeback'->$2 AS figures
       FROM roundtrip.runs me JOIN roundtrip.runs r ON r.pipeline = me.pipeline
      WHERE me.run_id = $1 AND NOT me.dry_run AND NOT r.dry_run AND r.run_id <> me.run_id
        AND (r.started_at, r.run_id) < (me.started_at, me.run_id)
        AND jsonb_typeof(r.summary->'writeback'->$2) = 'object'
      ORDER BY r.started_at DESC, r.run_id DESC LIMIT 1`,
    [runId, task],
  );
  const row = rows[0];
  return row ? { runId: row.run_id, figures: row.figures } : undefined;
}

/**
 * SQL: whether the error `e` is a push's report of a keyless insert whose outcome is unknown
 * ({@link LedgerOutcomes.reported}).
 */
export const REPORTED_UNKNOWN_SQL = `(e.stage = 'push' AND e.code = 'INSERT_OUTCOME_UNKNOWN' AND e.key IS NOT NULL)`;

/**
 * A task's records of a run whose outcome is unknown, the figures' `outcomeUnknown`: sent with
 * none recorded, and keyless inserts the push reported ({@link LedgerOutcomes.reported}).
 */
export function outcomeUnknownOf(outcomes: Pick<LedgerOutcomes, 'sent' | 'reported'>): number {
  return outcomes.sent + outcomes.reported;
}

/** A task's ledger rows of a run by status ({@link ledgerOutcomes}). */
export interface LedgerOutcomes {
  readonly succeeded: number;
  readonly failed: number;
  readonly heldBack: number;
  readonly superseded: number;
  /** Sent, no outcome recorded yet. */
  readonly sent: number;
  /**
   * Sent for insert without an external-ID key and reported `INSERT_OUTCOME_UNKNOWN` by the push
   * (Salesforce's answer was lost after sending; nothing can look them up): the ledger row is
   * `failed`, but Salesforce refused nothing, so they are not in `failed`. Counted by their error,
   * which a pruned run keeps without the row; `roundtrip resolve` deletes it (or makes it
   * `NOT_INSERTED`, a failure) once their outcome is recorded.
   */
  readonly reported: number;
  /** Written to the ledger and not sent (yet): waiting for a row-lock retry or a second send. */
  readonly planned: number;
}

/**
 * A task's ledger rows of a run by status, one count each: `sent` ones have no outcome recorded;
 * `planned` ones wait to be sent (again); `heldBack` ones were not sent, their key taken by
 * another run (push.ts, refuseKeysTakenElsewhere); `superseded` ones were not sent, their key
 * synced by a run that planned later (push.ts, supersedeKeysSyncedByNewerRuns); `reported` ones
 * are `failed` rows whose outcome is unknown, not in `failed`. The push's final
 * answer (finishWriteback), the Report and the recount of an ended run read the same counts.
 */
export async function ledgerOutcomes(
  client: ClientBase,
  runId: string,
  task: string,
): Promise<LedgerOutcomes> {
  const { rows } = await client.query<LedgerOutcomes>(
    `WITH reported AS (
       SELECT DISTINCT e.key FROM roundtrip.writeback_errors e
        WHERE e.run_id = $1 AND e.task = $2 AND ${REPORTED_UNKNOWN_SQL})
     SELECT count(*) FILTER (WHERE status = 'succeeded')::int AS succeeded,
            count(*) FILTER (WHERE status = 'failed' AND (key IS NULL OR key NOT IN (SELECT key FROM reported)))::int AS failed,
            count(*) FILTER (WHERE status = 'held_back')::int AS "heldBack",
            count(*) FILTER (WHERE status = 'superseded')::int AS superseded,
            count(*) FILTER (WHERE status = 'sent')::int AS sent,
            count(*) FILTER (WHERE status = 'planned')::int AS planned,
            (SELECT count(*) FROM reported)::int AS reported
       FROM roundtrip.writeback_plans WHERE run_id = $1 AND task = $2`,
    [runId, task],
  );
  return rows[0] ?? { succeeded: 0, failed: 0, heldBack: 0, superseded: 0, sent: 0, planned: 0, reported: 0 };
}

/**
 * A task's figures in a run's summary (`written`, `failed`, the held-back figures, `outcomeUnknown`)
 * counted again from its ledger, which must hold every row of the run (not pruned): `stored` is
 * the task's summary as it was, `also` more keys to store with them.
 */
export async function recountFromLedger(
  client: ClientBase,
  runId: string,
  task: string,
  stored: Record<string, unknown> | undefined,
  also: Record<string, unknown> = {},
): Promise<void> {
  const outcomes = await ledgerOutcomes(client, runId, task);
  await mergeRunSummary(client, runId, ['writeback', task], {
    written: outcomes.succeeded,
    failed: outcomes.failed,
    ...heldBackFigures(stored, outcomes.heldBack),
    superseded: outcomes.superseded,
    outcomeUnknown: outcomeUnknownOf(outcomes),
    ...also,
  });
}

/**
 * Counts from its ledger the figures of each write-back task of run `runId` that never reported
 * them ({@link recountFromLedger}): a run ended by something other than its report — its process
 * killed hard and closed as gone, ended by hand (`roundtrip status --end-run`), interrupted with
 * Ctrl-C, its execution stopped, closed as abandoned — stored its plan's figures at most (and
 * `written`, `failed` of a task whose collect finished), never `outcomeUnknown`, which the Report
 * writes for every task it counts. Without this, such a run said `written 0` for what it wrote,
 * and a later plan that resolved its records counted them in no run (reconcile.ts
 * `refreshEndedRunIn` recounts the runs whose figures were counted). Called in the transaction
 * that ends the run, which must hold every row of the run's ledger (a run still `running` is
 * never pruned). Answers the tasks counted.
 */
export async function countUnreportedFigures(client: ClientBase, runId: string): Promise<string[]> {
  const { rows } = await client.query<{ task: string; figures: Record<string, unknown> }>(
    `SELECT w.key AS task, w.value AS figures
       FROM roundtrip.runs r,
            jsonb_each(CASE WHEN jsonb_typeof(r.summary->'writeback') = 'object' THEN r.summary->'writeback' ELSE '{}' END) AS w
      WHERE r.run_id = $1 AND jsonb_typeof(w.value) = 'object' AND NOT w.value ? 'outcomeUnknown'
      ORDER BY w.key`,
    [runId],
  );
  for (const r of rows) await recountFromLedger(client, runId, r.task, r.figures);
  return rows.map((r) => r.task);
}

/** A task's part of the run's summary (`summary.writeback.<task>`), `undefined` when it has none. */
export function taskSummaryOf(
  summary: Record<string, unknown>,
  task: string,
): Record<string, unknown> | undefined {
  const writeback = summary.writeback;
  if (!isObject(writeback)) return undefined;
  const own = writeback[task];
  return isObject(own) ? own : undefined;
}

/** The write-back task of the config with this name. */
export function writebackTaskOf(deps: Pick<CoreDeps, 'config'>, name: string): WritebackTask {
  const task = deps.config.writeback.find((t) => taskName(t) === name);
  if (!task) {
    const known = deps.config.writeback.map((t) => taskName(t));
    throw new TerminalError(
      `No write-back task named "${name}" in pipeline ${deps.config.name} (known: ${known.length ? known.join(', ') : 'none'})`,
    );
  }
  return task;
}

/** Where a write-back task sits in the pipeline config, for messages: `writeback[0]`. */
export function writebackConfigPath(config: Pick<PipelineConfig, 'writeback'>, task: WritebackTask): string {
  return `writeback[${config.writeback.indexOf(task)}]`;
}
