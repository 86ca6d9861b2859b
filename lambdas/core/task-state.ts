/**
 * What the database holds for one task of a pipeline, apart from the per-run history: a write-back
 * task's sync state (`roundtrip.sync_state`, the records it last synced by key) and sync scope
 * (`roundtrip.sync_scope`, the object and key they were synced by), an extract task's watermark
 * (`roundtrip.extract_state`). These outlive the runs that wrote them and are kept by task name
 * alone, so a task renamed or removed from the config leaves them behind, and a task whose object
 * or key changed is refused while it has them (writeback/scope.ts).
 *
 * - {@link tasksNotInConfig}: the tasks a pipeline has such state for that its config no longer
 *   names (`roundtrip status` lists them).
 * - {@link forgetTask}: starts a task over (`roundtrip forget`): deletes its sync state, sync scope
 *   and watermark in one transaction, under the task's lock, so it never runs beside a push, a
 *   collect or a plan's resolution of ended runs, and holding the rows of the pipeline's runs still
 *   going, so it never runs beside a plan either. Refused while the task has records whose outcome
 *   is unknown ({@link readOutcomesUnknown}): with its sync state gone, the next plan would send
 *   them again, and an insert Salesforce did carry out would be inserted twice.
 *
 * Kept: the per-run history (`runs`, the ledger `writeback_plans` and `writeback_plan_pages`,
 * `writeback_jobs`, `writeback_errors` but for resolved `INSERT_OUTCOME_UNKNOWN` marks, which are
 * state ({@link RESOLVED_MARKS}), `extract_jobs`), and the task's name in
 * `roundtrip.task_owners`: the history is keyed by task name too (a later plan of the task reads
 * the ledger's `sent` rows and the `INSERT_OUTCOME_UNKNOWN` marks of every run), so the name stays
 * this pipeline's rather than being free for another pipeline to claim over that history.
 */
import type { ClientBase, Pool } from 'pg';
import { beginTransactionSql, withClient } from '../connectors/postgres';
import { shellOption } from '../shared/shell';
import { tryTaskLockInTransaction } from './writeback/lock';
import { HELD_BACK_ERROR_SQL } from './writeback/state';

/**
 * The command that starts `task` over (`roundtrip forget --task NAME --yes`), the name quoted for a
 * shell when it needs it, as messages name it; `insertAgain` for an insert task with synced records
 * ({@link insertsAgain}); `given`, the options that name the pipeline and its database as the
 * command line was given them (` --config FILE …`, quoted already), when the CLI knows them.
 */
export function forgetCommand(
  task: string,
  options: { readonly insertAgain?: boolean; readonly given?: string } = {},
): string {
  return `roundtrip forget ${shellOption('--task', task)}${options.given ?? ''} --yes${options.insertAgain === true ? ' --insert-again' : ''}`;
}

/**
 * The command that carries task `from`'s state to the name `to` (`roundtrip rename-task --from OLD
 * --to NEW --yes`, {@link renameTask}), the names quoted for a shell when they need it; `given` as
 * {@link forgetCommand} takes it.
 */
export function renameTaskCommand(from: string, to: string, given = ''): string {
  return `roundtrip rename-task ${shellOption('--from', from)} ${shellOption('--to', to)}${given} --yes`;
}

/** PostgreSQL's SQLSTATE for a `NOWAIT` lock that another transaction holds. */
const LOCK_NOT_AVAILABLE = '55P03';

/** Keys named in a refusal or a listing, at most. */
export const OUTCOME_UNKNOWN_SAMPLE_KEYS = 5;

/** The object and key a write-back task's sync state was synced by (`roundtrip.sync_scope`). */
export interface RecordedSyncScope {
  readonly object: string;
  /** NULL for an insert without a key field. */
  readonly keyField: string | null;
  /** The source column the keys were read from; NULL when not recorded. */
  readonly keyColumn: string | null;
}

/** An extract task's watermark (`roundtrip.extract_state`). */
export interface RecordedWatermark {
  /** ISO time; null for a state without one (an Athena extract). */
  readonly watermark: string | null;
  readonly rowsTotal: number;
}

/** The latest run of the pipeline whose summary has the task's figures. */
export interface TaskLastRun {
  readonly runId: string;
  readonly status: string;
  readonly startedAt: Date;
}

/** What the database holds for a task, apart from the per-run history. */
export interface TaskState {
  readonly task: string;
  /** Rows of `roundtrip.sync_state`. */
  readonly syncedRecords: number;
  readonly syncScope: RecordedSyncScope | undefined;
  readonly watermark: RecordedWatermark | undefined;
  /** The pipeline `roundtrip.task_owners` names for the task, if any. */
  readonly owner: string | undefined;
  readonly lastRun: TaskLastRun | undefined;
  /**
   * How the task last wrote to Salesforce, as its latest plan stored it (`writeback_plan_pages`,
   * else the ledger row of a synced record, else a ledger row left `sent`, which a prune keeps),
   * or `insert` when only a push's `INSERT_OUTCOME_UNKNOWN` mark is left of it (only an insert's
   * push writes one): undefined for an extract task, or when none of these is kept.
   */
  readonly lastOperation: WriteOperation | undefined;
}

/** A write-back's operation, as plans store it. */
export type WriteOperation = 'insert' | 'update' | 'upsert';

/** Records of one run whose outcome is unknown, and a few of their keys. */
export interface OutcomeUnknownRun {
  readonly runId: string;
  /** The run's status (`running`, `failed`, …); null when it is not in `roundtrip.runs`. */
  readonly runStatus: string | null;
  readonly records: number;
  readonly sample: readonly string[];
}

/**
 * A task's records whose outcome is unknown: forgetting the task's state now would send them again
 * (see the module comment).
 */
export interface OutcomesUnknown {
  /** Ledger rows left `sent` (a call or Bulk job whose result was never recorded), by run. */
  readonly sent: readonly OutcomeUnknownRun[];
  /**
   * Insert keys reported `INSERT_OUTCOME_UNKNOWN` by a push (sent, result lost, no external ID to
   * look them up by) and not resolved since (no Salesforce Id recorded for the key), by run.
   */
  readonly insertOutcomeUnknown: readonly OutcomeUnknownRun[];
  /**
   * Runs still `running` that planned the task: their push and collect, still to come, would
   * record what they send in the sync state after it was deleted.
   */
  readonly runningPlans: readonly string[];
  /** The records of `sent` and `insertOutcomeUnknown`. */
  readonly records: number;
}

/** A task with state that its pipeline's config no longer names ({@link tasksNotInConfig}). */
export interface TaskNotInConfig extends TaskState {
  readonly outcomesUnknown: OutcomesUnknown;
}

/** The state tables, as far as the schema has them (a database migrated by an older version lacks some). */
type StateTable =
  | 'runs'
  | 'sync_state'
  | 'sync_scope'
  | 'extract_state'
  | 'task_owners'
  | 'writeback_plans'
  | 'writeback_plan_pages'
  | 'writeback_errors';

async function existingTables(client: ClientBase): Promise<ReadonlySet<StateTable>> {
  const names: StateTable[] = [
    'runs',
    'sync_state',
    'sync_scope',
    'extract_state',
    'task_owners',
    'writeback_plans',
    'writeback_plan_pages',
    'writeback_errors',
  ];
  const { rows } = await client.query<{ name: StateTable }>(
    `SELECT n AS name FROM unnest($1::text[]) AS n WHERE to_regclass('roundtrip.' || n) IS NOT NULL`,
    [names],
  );
  return new Set(rows.map((r) => r.name));
}

/** What the database holds for `task` of `pipeline` (its last run: of that pipeline's runs). */
export async function readTaskState(client: ClientBase, pipeline: string, task: string): Promise<TaskState> {
  return readState(client, await existingTables(client), pipeline, task);
}

async function readState(
  client: ClientBase,
  tables: ReadonlySet<StateTable>,
  pipeline: string,
  task: string,
): Promise<TaskState> {
  const synced = tables.has('sync_state')
    ? Number(
        (
          await client.query<{ n: string }>(
            `SELECT count(*) AS n FROM roundtrip.sync_state WHERE task = $1`,
            [task],
          )
        ).rows[0]?.n ?? 0,
      )
    : 0;
  const scope = tables.has('sync_scope')
    ? (
        await client.query<{ object: string; key_field: string | null; key_column: string | null }>(
          `SELECT object, key_field, key_column FROM roundtrip.sync_scope WHERE task = $1`,
          [task],
        )
      ).rows[0]
    : undefined;
  const watermark = tables.has('extract_state')
    ? (
        await client.query<{ watermark: Date | null; rows_total: string }>(
          `SELECT watermark, rows_total FROM roundtrip.extract_state WHERE task = $1`,
          [task],
        )
      ).rows[0]
    : undefined;
  const owner = tables.has('task_owners')
    ? (
        await client.query<{ pipeline: string }>(
          `SELECT pipeline FROM roundtrip.task_owners WHERE task = $1`,
          [task],
        )
      ).rows[0]?.pipeline
    : undefined;
  const lastRun = tables.has('runs')
    ? (
        await client.query<{ run_id: string; status: string; started_at: Date }>(
          `SELECT run_id, status, started_at FROM roundtrip.runs
            WHERE pipeline = $1
              AND (jsonb_typeof(summary->'writeback'->$2) = 'object' OR jsonb_typeof(summary->'extract'->$2) = 'object')
            ORDER BY started_at DESC, run_id DESC LIMIT 1`,
          [pipeline, task],
        )
      ).rows[0]
    : undefined;
  const lastOperation = await readLastOperation(client, tables, task);
  return {
    task,
    syncedRecords: synced,
    syncScope: scope
      ? { object: scope.object, keyField: scope.key_field, keyColumn: scope.key_column }
      : undefined,
    watermark: watermark
      ? { watermark: watermark.watermark?.toISOString() ?? null, rowsTotal: Number(watermark.rows_total) }
      : undefined,
    owner,
    lastRun: lastRun
      ? { runId: lastRun.run_id, status: lastRun.status, startedAt: lastRun.started_at }
      : undefined,
    lastOperation,
  };
}

/**
 * The operation of the task's latest plan kept: its pages (a row per 1,000 records), else the
 * ledger row of any one of its synced records (the first found: a look-up, not a scan; the pages
 * of a pruned run are gone, its ledger rows too unless kept for an outcome), else one of its
 * ledger rows left `sent` (the latest run's: the prune keeps them), else `insert` for a push's
 * `INSERT_OUTCOME_UNKNOWN` mark (kept by the prune too), so that a task whose runs were all pruned
 * while inserts of it wait for their outcome is still known as an insert task (`roundtrip resolve`
 * of a task the config no longer names relies on it).
 */
async function readLastOperation(
  client: ClientBase,
  tables: ReadonlySet<StateTable>,
  task: string,
): Promise<WriteOperation | undefined> {
  const operation = lastOperationSql(tables, '$1');
  if (operation === undefined) return undefined;
  const { rows } = await client.query<{ operation: WriteOperation | null }>(
    `SELECT ${operation} AS operation`,
    [task],
  );
  return rows[0]?.operation ?? undefined;
}

/**
 * {@link readLastOperation}'s answer for the task named by the SQL expression `task`, as one SQL
 * expression: its sources in its order, as far as the schema has them (`coalesce` stops at the
 * first that answers); undefined when the schema has none of them. Read so for one task, and for each task a query lists
 * ({@link syncedTasksNotInConfig}).
 */
function lastOperationSql(tables: ReadonlySet<StateTable>, task: string): string | undefined {
  const sources: string[] = [];
  if (tables.has('writeback_plan_pages')) {
    sources.push(
      `(SELECT pp.operation FROM roundtrip.writeback_plan_pages pp WHERE pp.task = ${task} ORDER BY pp.created_at DESC, pp.run_id DESC LIMIT 1)`,
    );
  }
  if (tables.has('writeback_plans') && tables.has('sync_state')) {
    sources.push(
      `(SELECT p.operation FROM roundtrip.sync_state x
          JOIN roundtrip.writeback_plans p ON p.run_id = x.run_id AND p.task = x.task AND p.key = x.key
         WHERE x.task = ${task} LIMIT 1)`,
    );
  }
  if (tables.has('writeback_plans')) {
    // The ledger's partial index of rows left `sent` serves this (writeback_plans_sent_idx).
    sources.push(
      `(SELECT p.operation FROM roundtrip.writeback_plans p WHERE p.task = ${task} AND p.status = 'sent' ORDER BY p.run_id DESC LIMIT 1)`,
    );
  }
  if (tables.has('writeback_errors')) {
    sources.push(
      `(SELECT 'insert' FROM roundtrip.writeback_errors e
         WHERE e.task = ${task} AND e.stage = 'push' AND e.code = 'INSERT_OUTCOME_UNKNOWN' LIMIT 1)`,
    );
  }
  return sources.length > 0 ? `coalesce(${sources.join(', ')})` : undefined;
}

/** The task's records whose outcome is unknown (see {@link OutcomesUnknown}). */
export async function readOutcomesUnknown(client: ClientBase, task: string): Promise<OutcomesUnknown> {
  return readUnknown(client, await existingTables(client), task);
}

async function readUnknown(
  client: ClientBase,
  tables: ReadonlySet<StateTable>,
  task: string,
): Promise<OutcomesUnknown> {
  const byRun = (rows: { run_id: string; run_status: string | null; n: string; sample: string[] }[]) =>
    rows.map((r) => ({ runId: r.run_id, runStatus: r.run_status, records: Number(r.n), sample: r.sample }));
  const runsJoin = tables.has('runs')
    ? 'LEFT JOIN roundtrip.runs r ON r.run_id = x.run_id'
    : 'LEFT JOIN (SELECT NULL::text AS run_id, NULL::text AS status) r ON false';
  // The ledger's partial index of rows left `sent` serves this (writeback_plans_sent_idx).
  const sent = tables.has('writeback_plans')
    ? byRun(
        (
          await client.query<{ run_id: string; run_status: string | null; n: string; sample: string[] }>(
            `SELECT x.run_id, r.status AS run_status, count(*) AS n,
                    (array_agg(x.key ORDER BY x.key))[1:${OUTCOME_UNKNOWN_SAMPLE_KEYS}] AS sample
               FROM roundtrip.writeback_plans x ${runsJoin}
              WHERE x.task = $1 AND x.status = 'sent'
              GROUP BY x.run_id, r.status ORDER BY x.run_id`,
            [task],
          )
        ).rows,
      )
    : [];
  // As the insert plan reads them (writeback/plan.ts): resolved once the key's Salesforce Id is
  // recorded in sync_state (here by the key as written: a key recorded in another spelling counts
  // as unresolved, which refuses more, never less).
  const resolved = tables.has('sync_state')
    ? `AND NOT EXISTS (SELECT 1 FROM roundtrip.sync_state s WHERE s.task = x.task AND s.key = x.key AND s.salesforce_id IS NOT NULL)`
    : '';
  const insertOutcomeUnknown = tables.has('writeback_errors')
    ? byRun(
        (
          await client.query<{ run_id: string; run_status: string | null; n: string; sample: string[] }>(
            `SELECT x.run_id, r.status AS run_status, count(DISTINCT x.key) AS n,
                    (array_agg(DISTINCT x.key))[1:${OUTCOME_UNKNOWN_SAMPLE_KEYS}] AS sample
               FROM roundtrip.writeback_errors x ${runsJoin}
              WHERE x.task = $1 AND x.stage = 'push' AND x.code = 'INSERT_OUTCOME_UNKNOWN' AND x.key IS NOT NULL ${resolved}
              GROUP BY x.run_id, r.status ORDER BY x.run_id`,
            [task],
          )
        ).rows,
      )
    : [];
  const runningPlans =
    tables.has('writeback_plan_pages') && tables.has('runs')
      ? (
          await client.query<{ run_id: string }>(
            `SELECT DISTINCT p.run_id FROM roundtrip.writeback_plan_pages p
               JOIN roundtrip.runs r ON r.run_id = p.run_id
              WHERE p.task = $1 AND r.status = 'running' ORDER BY p.run_id`,
            [task],
          )
        ).rows.map((r) => r.run_id)
      : [];
  const records = [...sent, ...insertOutcomeUnknown].reduce((n, r) => n + r.records, 0);
  return { sent, insertOutcomeUnknown, runningPlans, records };
}

/** Whether a task holds any state to forget, or records whose outcome is unknown. */
function holdsState(state: TaskState, unknown?: OutcomesUnknown): boolean {
  return (
    state.syncedRecords > 0 ||
    state.syncScope !== undefined ||
    state.watermark !== undefined ||
    (unknown !== undefined && (unknown.records > 0 || unknown.runningPlans.length > 0))
  );
}

/**
 * The tasks `pipeline` has state for in the database ({@link TaskState}, or records whose outcome
 * is unknown) that `names` (its config's extract and write-back task names) does not hold, by name.
 * A task is the pipeline's when `roundtrip.task_owners` says so, or (a task last run before the
 * names were claimed, migration 7) when the run that recorded its sync scope, its watermark or a
 * record of its sync state is one of the pipeline's; never when another pipeline holds the name.
 */
export async function tasksNotInConfig(
  pool: Pool,
  pipeline: string,
  names: readonly string[],
): Promise<TaskNotInConfig[]> {
  return withClient(pool, async (client) => {
    const tables = await existingTables(client);
    if (!tables.has('runs')) return [];
    const sources: string[] = [];
    if (tables.has('task_owners')) sources.push(`SELECT task FROM roundtrip.task_owners WHERE pipeline = $1`);
    if (tables.has('sync_scope')) {
      sources.push(
        `SELECT s.task FROM roundtrip.sync_scope s JOIN roundtrip.runs r ON r.run_id = s.run_id WHERE r.pipeline = $1`,
      );
    }
    if (tables.has('extract_state')) {
      sources.push(
        `SELECT e.task FROM roundtrip.extract_state e JOIN roundtrip.runs r ON r.run_id = e.last_run_id WHERE r.pipeline = $1`,
      );
    }
    if (tables.has('sync_state')) {
      // Each task of sync_state once, by a skip scan of its key (task, key): one index probe a
      // task, not a read of every record; whose it is, by the run of one of its records.
      sources.push(
        `SELECT t.task FROM (
           WITH RECURSIVE t (task) AS (
             (SELECT task FROM roundtrip.sync_state ORDER BY task LIMIT 1)
             UNION ALL
             SELECT (SELECT s.task FROM roundtrip.sync_state s WHERE s.task > t.task ORDER BY s.task LIMIT 1)
               FROM t WHERE t.task IS NOT NULL)
           SELECT task FROM t WHERE task IS NOT NULL) AS t
         JOIN LATERAL (SELECT s.run_id FROM roundtrip.sync_state s
                        WHERE s.task = t.task AND s.run_id IS NOT NULL LIMIT 1) AS one ON true
         JOIN roundtrip.runs r ON r.run_id = one.run_id
        WHERE r.pipeline = $1`,
      );
    }
    if (sources.length === 0) return [];
    const elsewhere = tables.has('task_owners')
      ? `AND NOT EXISTS (SELECT 1 FROM roundtrip.task_owners o WHERE o.task = c.task AND o.pipeline <> $1)`
      : '';
    const { rows } = await client.query<{ task: string }>(
      `SELECT c.task FROM (${sources.join(' UNION ')}) AS c
        WHERE c.task <> ALL($2::text[]) ${elsewhere} ORDER BY c.task`,
      [pipeline, [...names]],
    );
    const found: TaskNotInConfig[] = [];
    for (const { task } of rows) {
      const state = await readState(client, tables, pipeline, task);
      const outcomesUnknown = await readUnknown(client, tables, task);
      if (holdsState(state, outcomesUnknown)) found.push({ ...state, outcomesUnknown });
    }
    return found;
  });
}

/** What {@link forgetTask} found and did. */
export type ForgetOutcome =
  /** The database knows no task of that name for the pipeline: no state, no claim, no run's figures. */
  | { readonly kind: 'unknown' }
  /** Another pipeline holds the name (`roundtrip.task_owners`): its state is not this pipeline's to delete. */
  | { readonly kind: 'other-pipeline'; readonly owner: string }
  /**
   * Nothing done: a push, collect or a plan's resolution of ended runs holds the task's lock
   * (`task-lock`), or a step of a run still running holds its run's row (`run-step`: a plan, in
   * the whole of its transaction).
   */
  | { readonly kind: 'busy'; readonly state: TaskState; readonly holder: 'task-lock' | 'run-step' }
  /**
   * Refused: an insert task with synced records, asked to delete them without `insertAgain`. Its
   * next run would insert every one of them again (Salesforce then holds each twice, unless they
   * were deleted there or the task now writes another object). Nothing deleted.
   */
  | { readonly kind: 'insert-again'; readonly state: TaskState }
  /** Refused: the task has records whose outcome is unknown, or a run still running planned it. */
  | {
      readonly kind: 'outcomes-unknown';
      readonly state: TaskState;
      readonly outcomesUnknown: OutcomesUnknown;
    }
  /**
   * The state that is (`deleted`) or would be deleted: sync state records, the sync scope row and
   * the watermark row (0 or 1 each), as `state` had them.
   */
  | {
      readonly kind: 'forgotten';
      readonly deleted: boolean;
      readonly state: TaskState;
      readonly syncState: number;
      readonly syncScope: number;
      readonly watermark: number;
      /** The task's resolved `INSERT_OUTCOME_UNKNOWN` marks ({@link RESOLVED_MARKS}). */
      readonly resolvedMarks: number;
      /**
       * The keys earlier runs of the task held back ({@link HELD_BACK_ERROR_SQL}, rows of
       * `writeback_errors`), and the `held_back` ledger rows that runs whose details were pruned
       * kept beside them ({@link STREAK_ROWS_WHY}).
       */
      readonly heldBack: ForgottenHeldBack;
    };

/** The held-back keys a forget deletes ({@link STREAK_ROWS_WHY}): error rows and pruned runs' ledger rows. */
export interface ForgottenHeldBack {
  readonly errors: number;
  readonly ledgerRows: number;
}

/**
 * Whether forgetting the task makes a later run insert records it inserted already: the config
 * names it as an insert task now, and it has synced records; or the config no longer names it
 * (`configuredMode` undefined) and its records were inserted ({@link insertedRecords}): named again
 * as an insert (a rename undone), it would insert them again, and so would a task renamed from it
 * once forgetting it lifts the plan's refusal ({@link renamedInsertTasks}).
 */
export function insertsAgain(state: TaskState, configuredMode: WriteOperation | undefined): boolean {
  if (configuredMode !== undefined) return configuredMode === 'insert' && state.syncedRecords > 0;
  return insertedRecords(state);
}

/**
 * Whether the task's synced records were inserted: its latest plan kept was an insert
 * ({@link TaskState.lastOperation}), or, none kept (its runs pruned), its records were synced
 * without a key field (`roundtrip.sync_scope`: only an insert syncs so). Named again as an insert,
 * or its records claimed by another insert task of the same object, each is inserted again.
 */
export function insertedRecords(
  state: Pick<TaskState, 'syncedRecords' | 'lastOperation' | 'syncScope'>,
): boolean {
  if (state.syncedRecords === 0) return false;
  if (state.lastOperation !== undefined) return state.lastOperation === 'insert';
  return state.syncScope !== undefined && state.syncScope.keyField === null;
}

/**
 * The one part of `writeback_errors` a forget deletes: a push's `INSERT_OUTCOME_UNKNOWN` marks of
 * the task's keys (of an insert without an external-ID key, whose outcome was lost). Every later
 * insert plan of the task reads them (writeback/plan.ts) and holds their keys back until the key's
 * Salesforce Id is in `sync_state`; the prune keeps them for that (writeback/report.ts).
 * `roundtrip resolve` deletes the mark of a key it records (writeback/resolve.ts), but a mark
 * resolved by writing the Id into `sync_state` by hand, as the docs said before it, stays. A
 * forget runs only when every one of them is resolved so
 * ({@link readOutcomesUnknown}), and deletes the `sync_state` rows that say it: kept, each would
 * hold its key back for ever after, the task started over or not.
 */
const RESOLVED_MARKS = `stage = 'push' AND code = 'INSERT_OUTCOME_UNKNOWN' AND key IS NOT NULL`;

/**
 * Why a forget deletes the keys the task's earlier runs held back (`writeback_errors` of
 * {@link HELD_BACK_ERROR_SQL}: the plan's `OUTCOME_PENDING` and `INSERT_OUTCOME_UNKNOWN`, the push's
 * `ALREADY_INSERTED` and `INSERT_PENDING_ELSEWHERE` with their `held_back` ledger rows). A run's
 * Report compares the keys it held back with those of the task's previous run
 * (writeback/report.ts `repeatedlyHeldBack`) and, when they meet, carries on that run's streak
 * (`heldBackRepeatedly`, `heldBackSince`, the notice of keys held back again); the prune keeps them
 * past `keepRunDetailsDays` for that, in the task's latest pruned run (`held_back` ledger rows
 * included, which nothing else keeps). Kept, the first run of a task started over would compare
 * its keys with those of the task as it was, and could carry on its streak. The ledger rows of runs
 * not pruned stay: a prune counts a run's figures from its ledger (`recountFromLedger`).
 */
export const STREAK_ROWS_WHY =
  "the keys earlier runs held back, which the task's next run would compare its own with and so carry on their streak of keys held back again";

/**
 * Locks the rows of the pipeline's runs still going, without waiting: false when one is held. A
 * plan does not hold a task's lock, but holds its run's row (FOR KEY SHARE) for the whole of its
 * transaction, which reads the sync state and records the sync scope (writeback/plan.ts): locked
 * here, they refuse a change of a task's state while such a plan is in flight, and make a plan
 * starting now wait for this transaction's end, then read what it left.
 */
async function lockRunsGoingOn(
  client: ClientBase,
  tables: ReadonlySet<StateTable>,
  pipeline: string,
): Promise<boolean> {
  if (!tables.has('runs')) return true;
  try {
    await client.query(
      `SELECT 1 FROM roundtrip.runs WHERE pipeline = $1 AND status = 'running' FOR UPDATE NOWAIT`,
      [pipeline],
    );
    return true;
  } catch (err) {
    if ((err as { code?: unknown }).code !== LOCK_NOT_AVAILABLE) throw err;
    return false;
  }
}

/**
 * Starts `task` of `pipeline` over: deletes its rows of `roundtrip.sync_state`, `sync_scope` and
 * `extract_state` (and its resolved marks, {@link RESOLVED_MARKS}, and the keys its runs held back,
 * {@link STREAK_ROWS_WHY}) in one transaction that holds
 * the task's lock ({@link tryTaskLockInTransaction}) and the rows of the pipeline's runs still
 * going, both taken without waiting, after checking, under them, that no record of the task has an
 * unknown outcome and no run still going planned it (see the module comment). With `apply` false
 * it checks the same and counts what it would delete, then rolls back. Nothing else of the per-run
 * history, nor the task's name in `roundtrip.task_owners`, is deleted.
 */
export async function forgetTask(
  pool: Pool,
  pipeline: string,
  task: string,
  options: {
    readonly apply: boolean;
    /** The task's mode as the config names it now (undefined: not named, or an extract). */
    readonly configuredMode?: WriteOperation;
    /** Delete an insert task's synced records too, knowing its next run inserts them again. */
    readonly insertAgain?: boolean;
  },
): Promise<ForgetOutcome> {
  return withClient(pool, async (client) => {
    const tables = await existingTables(client);
    await client.query(beginTransactionSql(client));
    let commit = false;
    try {
      const state = await readState(client, tables, pipeline, task);
      if (state.owner !== undefined && state.owner !== pipeline) {
        return { kind: 'other-pipeline', owner: state.owner };
      }
      const outcomesUnknown = await readUnknown(client, tables, task);
      if (!holdsState(state, outcomesUnknown) && state.owner === undefined && state.lastRun === undefined) {
        return { kind: 'unknown' };
      }
      if (!(await tryTaskLockInTransaction(client, task)))
        return { kind: 'busy', state, holder: 'task-lock' };
      if (!(await lockRunsGoingOn(client, tables, pipeline)))
        return { kind: 'busy', state, holder: 'run-step' };
      // Read again under the lock: a push that ended just before it was taken may have recorded
      // outcomes (or left rows `sent`) since the first read.
      const locked = await readUnknown(client, tables, task);
      if (locked.records > 0 || locked.runningPlans.length > 0) {
        return { kind: 'outcomes-unknown', state, outcomesUnknown: locked };
      }
      if (options.apply && options.insertAgain !== true && insertsAgain(state, options.configuredMode)) {
        return { kind: 'insert-again', state };
      }
      const remove = async (table: StateTable): Promise<number> =>
        tables.has(table)
          ? ((await client.query(`DELETE FROM roundtrip.${table} WHERE task = $1`, [task])).rowCount ?? 0)
          : 0;
      const marks = async (verb: 'SELECT 1' | 'DELETE'): Promise<number> =>
        tables.has('writeback_errors')
          ? ((
              await client.query(
                `${verb} FROM roundtrip.writeback_errors WHERE task = $1 AND ${RESOLVED_MARKS}`,
                [task],
              )
            ).rowCount ?? 0)
          : 0;
      // The held-back keys' errors first: HELD_BACK_ERROR_SQL tells a push's by its ledger row.
      const heldBack = async (verb: 'SELECT 1' | 'DELETE'): Promise<ForgottenHeldBack> => ({
        errors: tables.has('writeback_errors')
          ? ((
              await client.query(
                `${verb} FROM roundtrip.writeback_errors e WHERE e.task = $1 AND ${HELD_BACK_ERROR_SQL}`,
                [task],
              )
            ).rowCount ?? 0)
          : 0,
        ledgerRows:
          tables.has('writeback_plans') && tables.has('runs')
            ? ((
                await client.query(
                  `${verb} FROM roundtrip.writeback_plans l
                    WHERE l.task = $1 AND l.status = 'held_back'
                      AND EXISTS (SELECT 1 FROM roundtrip.runs r
                                   WHERE r.run_id = l.run_id AND coalesce(r.summary ? 'detailsPrunedAt', false))`,
                  [task],
                )
              ).rowCount ?? 0)
            : 0,
      });
      if (!options.apply) {
        return {
          kind: 'forgotten',
          deleted: false,
          state,
          syncState: state.syncedRecords,
          syncScope: state.syncScope ? 1 : 0,
          watermark: state.watermark ? 1 : 0,
          resolvedMarks: await marks('SELECT 1'),
          heldBack: await heldBack('SELECT 1'),
        };
      }
      const resolvedMarks = await marks('DELETE');
      const heldBackDeleted = await heldBack('DELETE');
      const syncState = await remove('sync_state');
      const syncScope = await remove('sync_scope');
      const watermark = await remove('extract_state');
      commit = true;
      return {
        kind: 'forgotten',
        deleted: true,
        state,
        syncState,
        syncScope,
        watermark,
        resolvedMarks,
        heldBack: heldBackDeleted,
      };
    } finally {
      if (commit) await client.query('COMMIT');
      else {
        // A failed statement leaves the transaction aborted: ROLLBACK ends it either way, and a
        // connection gone meanwhile ends it too (the error that ended the work is the one to tell).
        await client.query('ROLLBACK').catch(() => undefined);
      }
    }
  });
}

/** A task a pipeline left behind that synced records into an object ({@link syncedTasksNotInConfig}). */
export type SyncedTaskNotInConfig = Pick<TaskState, 'task' | 'syncedRecords' | 'syncScope' | 'lastOperation'>;

/**
 * The tasks of `pipeline` that `names` (its config's task names) no longer holds whose synced
 * records went to `object` (Salesforce API names compared without case; `roundtrip.sync_scope`):
 * what a write-back task of that object with no sync state of its own is likely renamed from
 * (writeback/scope.ts, checkRenamedTask), with what that check needs of each: its synced records,
 * scope and last operation (as {@link readLastOperation} reads it). Only the names the pipeline
 * claims in `roundtrip.task_owners` (Prepare claims every task name of a run, migration 7): a task
 * whose state predates the claims is listed by `roundtrip status` but not looked for here.
 *
 * One query, however many there are: the plan of every new task asks this, and a pipeline whose
 * config left many tasks behind must not cost statements for each (a read of each one's whole
 * state, 9 statements a task, made the write-back crash sweep's runs longer with every scenario
 * before them).
 */
export async function syncedTasksNotInConfig(
  pool: Pool,
  pipeline: string,
  names: readonly string[],
  object: string,
): Promise<SyncedTaskNotInConfig[]> {
  return withClient(pool, async (client) => {
    const tables = await existingTables(client);
    if (!tables.has('task_owners') || !tables.has('sync_scope') || !tables.has('sync_state')) return [];
    const { rows } = await client.query<{
      task: string;
      object: string;
      key_field: string | null;
      key_column: string | null;
      synced: string;
      last_operation: WriteOperation | null;
    }>(
      `SELECT o.task, s.object, s.key_field, s.key_column,
              (SELECT count(*) FROM roundtrip.sync_state x WHERE x.task = o.task) AS synced,
              ${lastOperationSql(tables, 'o.task') ?? 'NULL'} AS last_operation
         FROM roundtrip.task_owners o
         JOIN roundtrip.sync_scope s ON s.task = o.task
        WHERE o.pipeline = $1 AND o.task <> ALL($2::text[]) AND lower(s.object) = lower($3)
          AND EXISTS (SELECT 1 FROM roundtrip.sync_state x WHERE x.task = o.task)
        ORDER BY o.task`,
      [pipeline, [...names], object],
    );
    return rows.map((r) => ({
      task: r.task,
      syncedRecords: Number(r.synced),
      syncScope: { object: r.object, keyField: r.key_field, keyColumn: r.key_column },
      lastOperation: r.last_operation ?? undefined,
    }));
  });
}

/**
 * Of {@link syncedTasksNotInConfig}, those whose synced records were inserted
 * ({@link insertedRecords}): what an insert task of `object` with no sync state of its own is
 * likely renamed from. Their state is kept by their old names, so the renamed task would insert
 * each of their records again.
 */
export async function renamedInsertTasks(
  pool: Pool,
  pipeline: string,
  names: readonly string[],
  object: string,
): Promise<SyncedTaskNotInConfig[]> {
  return (await syncedTasksNotInConfig(pool, pipeline, names, object)).filter(insertedRecords);
}

/** What {@link renameTask} found and did. */
export type RenameOutcome =
  /** The database knows no task `from` of the pipeline, or it holds no state to carry. */
  | { readonly kind: 'unknown' | 'no-state'; readonly state?: TaskState }
  /** Another pipeline holds `from` (or `to`, {@link RenameOutcome} `to-other-pipeline`). */
  | { readonly kind: 'other-pipeline' | 'to-other-pipeline'; readonly owner: string }
  /** `to` has state of its own (synced records, a scope, a watermark, records with no known outcome). */
  | { readonly kind: 'to-has-state'; readonly to: TaskState; readonly outcomesUnknown: OutcomesUnknown }
  /** As {@link ForgetOutcome} `busy`: a push, collect or plan of either task, or a step of a run going on. */
  | { readonly kind: 'busy'; readonly state: TaskState; readonly holder: 'task-lock' | 'run-step' }
  /** `from` has records whose outcome is unknown, or a run still running planned it. */
  | {
      readonly kind: 'outcomes-unknown';
      readonly state: TaskState;
      readonly outcomesUnknown: OutcomesUnknown;
    }
  /** The rows that are (`moved`) or would be carried from `from` to `to`. */
  | {
      readonly kind: 'renamed';
      readonly moved: boolean;
      readonly state: TaskState;
      readonly syncState: number;
      readonly syncScope: number;
      readonly watermark: number;
      /** `from`'s resolved `INSERT_OUTCOME_UNKNOWN` marks ({@link RESOLVED_MARKS}), which its sync state resolves. */
      readonly resolvedMarks: number;
    };

/**
 * Carries the state of task `from` of `pipeline` to the name `to` (`roundtrip rename-task`), so
 * that the task renamed in the config goes on where it was instead of starting over: its rows of
 * `roundtrip.sync_state`, `sync_scope` and `extract_state`, and its resolved
 * `INSERT_OUTCOME_UNKNOWN` marks (resolved by its sync state: left behind, `from` would list them
 * as unresolved), take the new name, and `to` is claimed for the pipeline in
 * `roundtrip.task_owners`. One transaction, under both tasks' locks and the rows of the pipeline's
 * runs still going, taken without waiting as {@link forgetTask} takes them, after checking under
 * them that no record of `from` has an unknown outcome and no run still going planned it (their
 * outcomes would land under the old name, after the move) and that `to` holds no state of its own.
 * With `apply` false it checks the same and counts what it would carry, then rolls back.
 *
 * Kept under `from`: the per-run history (runs' summaries, the ledger, jobs, other errors) and its
 * claim, as forget keeps them: the history says what the task did under that name.
 */
export async function renameTask(
  pool: Pool,
  pipeline: string,
  from: string,
  to: string,
  options: { readonly apply: boolean },
): Promise<RenameOutcome> {
  return withClient(pool, async (client) => {
    const tables = await existingTables(client);
    await client.query('BEGIN');
    let commit = false;
    try {
      const state = await readState(client, tables, pipeline, from);
      if (state.owner !== undefined && state.owner !== pipeline) {
        return { kind: 'other-pipeline', owner: state.owner };
      }
      const target = await readState(client, tables, pipeline, to);
      if (target.owner !== undefined && target.owner !== pipeline) {
        return { kind: 'to-other-pipeline', owner: target.owner };
      }
      const outcomesUnknown = await readUnknown(client, tables, from);
      if (!holdsState(state, outcomesUnknown)) {
        return state.owner === undefined && state.lastRun === undefined
          ? { kind: 'unknown' }
          : { kind: 'no-state', state };
      }
      if (!(await tryTaskLockInTransaction(client, from)) || !(await tryTaskLockInTransaction(client, to))) {
        return { kind: 'busy', state, holder: 'task-lock' };
      }
      if (!(await lockRunsGoingOn(client, tables, pipeline)))
        return { kind: 'busy', state, holder: 'run-step' };
      // Read again under the locks (see forgetTask).
      const locked = await readUnknown(client, tables, from);
      if (locked.records > 0 || locked.runningPlans.length > 0) {
        return { kind: 'outcomes-unknown', state, outcomesUnknown: locked };
      }
      const toNow = await readState(client, tables, pipeline, to);
      const toUnknown = await readUnknown(client, tables, to);
      if (holdsState(toNow, toUnknown))
        return { kind: 'to-has-state', to: toNow, outcomesUnknown: toUnknown };
      const marks = tables.has('writeback_errors')
        ? ((
            await client.query(
              options.apply
                ? `UPDATE roundtrip.writeback_errors SET task = $2 WHERE task = $1 AND ${RESOLVED_MARKS}`
                : `SELECT 1 FROM roundtrip.writeback_errors WHERE task = $1 AND ${RESOLVED_MARKS}`,
              options.apply ? [from, to] : [from],
            )
          ).rowCount ?? 0)
        : 0;
      const move = async (table: StateTable, rows: number): Promise<number> =>
        options.apply && tables.has(table)
          ? ((await client.query(`UPDATE roundtrip.${table} SET task = $2 WHERE task = $1`, [from, to]))
              .rowCount ?? 0)
          : rows;
      const syncState = await move('sync_state', state.syncedRecords);
      const syncScope = await move('sync_scope', state.syncScope ? 1 : 0);
      const watermark = await move('extract_state', state.watermark ? 1 : 0);
      if (options.apply && tables.has('task_owners')) {
        await client.query(
          `INSERT INTO roundtrip.task_owners (task, pipeline, run_id) VALUES ($1, $2, NULL) ON CONFLICT (task) DO NOTHING`,
          [to, pipeline],
        );
      }
      const resolvedMarks = marks;
      commit = options.apply;
      return { kind: 'renamed', moved: options.apply, state, syncState, syncScope, watermark, resolvedMarks };
    } finally {
      if (commit) await client.query('COMMIT');
      else await client.query('ROLLBACK').catch(() => undefined);
    }
  });
}
