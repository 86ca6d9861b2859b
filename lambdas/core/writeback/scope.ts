/**
 * What a write-back task's `sync_state` is about (`roundtrip.sync_scope`, migration 8): the object
 * its records were written to, the field Salesforce matched them by and the source column their
 * keys were read from. `sync_state` holds the records by the source's key values, and these
 * changes of config make those keys mislead:
 *
 * - **Another object** under the same task name (a `name` kept while `object` changed): the keys
 *   would be taken as synced, and an upsert or insert would never write those records to the new
 *   object (an update by Id is unharmed: another object's Ids are other keys).
 * - **An upsert by another field** (`External_Id__c` → `Email`, or an update by Id turned into an
 *   upsert): every record would look new and be upserted by a field the records may not carry
 *   yet, creating them again in Salesforce.
 * - **An insert keyed by another field** (or a task that updated by Id, now inserting): its keys
 *   are another field's values, and every record would be inserted again.
 * - **Keys read from another column** (`keyColumn`) by an insert or an upsert: other values are
 *   other keys, inserted again or upserted as new records. A column only renamed is recorded by
 *   hand (the error gives the statement).
 *
 * So the plan refuses such a task while it has synced records, before it reads the ledger or
 * Salesforce, and says how to go on. Not refused: fields or mode changed by the same match field;
 * an insert given a key field or losing it (its records stay keyed by its `keyColumn`); an upsert
 * turned into an update (records are then matched by Id, which cannot create any: at worst each is
 * sent once); an update reading its Ids from another column.
 */
import type { Pool, PoolClient } from 'pg';
import { taskName, type PipelineConfig, type WritebackMode, type WritebackTask } from '../../config';
import { withClient } from '../../connectors/postgres';
import { tableColumns } from '../run-state';
import { shellOption } from '../../shared/shell';
import {
  forgetCommand,
  readOutcomesUnknown,
  renamedInsertTasks,
  renameTaskCommand,
  syncedTasksNotInConfig,
  type SyncedTaskNotInConfig,
} from '../task-state';
import { TerminalError } from '../../shared/errors';
import type { WritebackMapping } from './plan';
import { checkSourceHasColumns } from './source';
import { sqlLiteral } from './state';

/** The object a mapping writes and how it matches records, as the describe spells them. */
export interface SyncScope {
  readonly object: string;
  readonly mode: WritebackMode;
  /** `Id` for update, the external ID for upsert and keyed inserts; undefined for an insert without a key. */
  readonly keyField: string | undefined;
  /** The source column the keys are read from (`keyColumn`), as PostgreSQL names it. */
  readonly keyColumn: string;
}

/** The scope a mapping syncs by. */
export function syncScopeOf(mapping: WritebackMapping): SyncScope {
  return {
    object: mapping.object,
    mode: mapping.task.mode,
    keyField: mapping.keyField,
    keyColumn: mapping.task.keyColumn,
  };
}

/** A task's source (its `from`, split) and the columns its `fields` read, for the key column's check. */
export interface TaskSource {
  readonly schema: string;
  readonly table: string;
  readonly fields: WritebackTask['fields'];
}

/** Salesforce API names are case-insensitive. */
const same = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();

/** A write-back task whose object or key changed while it has synced records (see the module comment). */
export class SyncScopeChangedError extends TerminalError {
  constructor(
    message: string,
    /** The scope the task's records were synced by, as `roundtrip.sync_scope` records it. */
    readonly recorded: RecordedScope,
  ) {
    super(message);
  }
}

/** What the recorded scope and the task's differ in, if it matters (see the module comment). */
function changeOf(
  recorded: RecordedScope,
  scope: SyncScope,
): 'object' | 'match' | 'insert-key' | 'column' | undefined {
  if (!same(recorded.object, scope.object)) return 'object';
  if (scope.mode === 'upsert' && !same(recorded.keyField ?? '', scope.keyField ?? '')) return 'match';
  if (
    scope.mode === 'insert' &&
    recorded.keyField &&
    // Written by an update (keyed by Id), or keyed by another field: other keys.
    (same(recorded.keyField, 'Id') || (scope.keyField && !same(recorded.keyField, scope.keyField)))
  ) {
    return 'insert-key';
  }
  // Keys read from another column are other values (an update's are Ids, which create nothing).
  if (scope.mode !== 'update' && recorded.keyColumn !== undefined && recorded.keyColumn !== scope.keyColumn) {
    return 'column';
  }
  return undefined;
}

/**
 * How the commands these messages name (`roundtrip forget`, `rename-task`, `resolve`) are given the
 * pipeline and its database. `commandOptions`: the options that named them as the CLI was given
 * them (` --config FILE --secrets FILE`, quoted for a shell: bin/cli-common.ts
 * databaseOptionsGiven), repeated in each command (`given`) so that it can be pasted as it is.
 * Undefined in AWS, where no command line was given: the message then says to add the pipeline's
 * (`withPipelines`).
 */
function commandsOptions(commandOptions: string | undefined): { given: string; withPipelines: string } {
  return commandOptions === undefined
    ? { given: '', withPipelines: "with the pipeline's --config and --secrets" }
    : { given: commandOptions, withPipelines: '' };
}

/** A recorded scope; `keyColumn` undefined when not recorded. */
export interface RecordedScope {
  readonly object: string;
  readonly keyField: string | undefined;
  readonly keyColumn: string | undefined;
}

/**
 * Refuses (SyncScopeChangedError) a change of scope that misleads the task's keys (see the module
 * comment) while it has synced records, or records sent whose results are not recorded yet. A
 * task synced before its scope was recorded (migration 8) passes; so does a database whose schema
 * predates migration 8. `configPath` names the task in the message (`writeback[0]`).
 *
 * `source` is the task's `from` table and `fields`: when the key column changed and the source, as
 * it is now, has no column of the new name, that is refused instead as the column it lacks, in the
 * plan's words (a `keyColumn` misspelt is likelier than one renamed, and recording it, as the other
 * message says, would be wrong). A source that does not exist yet (made by a transform not run)
 * leaves the change refused as a change.
 *
 * `commandOptions`: see {@link commandsOptions}.
 */
export async function checkSyncScope(
  client: PoolClient,
  task: string,
  scope: SyncScope,
  configPath: string,
  source?: TaskSource,
  commandOptions?: string,
): Promise<void> {
  const { rows: exists } = await client.query<{ exists: boolean }>(
    `SELECT to_regclass('roundtrip.sync_scope') IS NOT NULL AS exists`,
  );
  if (!exists[0]?.exists) return;
  const { rows } = await client.query<{
    object: string;
    key_field: string | null;
    key_column: string | null;
  }>(`SELECT object, key_field, key_column FROM roundtrip.sync_scope WHERE task = $1`, [task]);
  const row = rows[0];
  if (!row) return;
  const recorded: RecordedScope = {
    object: row.object,
    keyField: row.key_field ?? undefined,
    keyColumn: row.key_column ?? undefined,
  };
  const change = changeOf(recorded, scope);
  if (!change) return;
  const { rows: synced } = await client.query<{ n: string }>(
    `SELECT count(*) AS n FROM roundtrip.sync_state WHERE task = $1`,
    [task],
  );
  const n = Number(synced[0]?.n ?? 0);
  // Records sent and not recorded yet (a first run still pushing, or one that ended before its
  // results): their outcomes will land in sync_state under the recorded scope's keys.
  let inFlight = 0;
  if (n === 0) {
    const { rows: sent } = await client.query<{ n: string }>(
      `SELECT count(*) AS n FROM roundtrip.writeback_plans WHERE task = $1 AND status = 'sent'`,
      [task],
    );
    inFlight = Number(sent[0]?.n ?? 0);
  }
  // Keys a push reported INSERT_OUTCOME_UNKNOWN (a keyless insert's retried push), not resolved
  // since: forget refuses the task for them too, as it reads them (task-state.ts). With nothing
  // synced and nothing left sent, they alone are records the lost sends may have created under
  // the recorded keys: the task changed now would insert them again under the new ones.
  const reported = (await readOutcomesUnknown(client, task)).insertOutcomeUnknown.reduce(
    (sum, r) => sum + r.records,
    0,
  );
  if (n === 0 && inFlight === 0 && reported === 0) return;
  const records =
    n > 0
      ? `${n.toLocaleString('en-US')} synced record(s) in roundtrip.sync_state`
      : inFlight > 0
        ? `${inFlight.toLocaleString('en-US')} record(s) sent, whose results are not recorded yet,`
        : `${reported.toLocaleString('en-US')} record(s) sent for insert, which Salesforce may have created without the outcome being recorded,`;
  // Looked up by the external ID its records were synced by: a task without one (a keyless
  // insert) has none looked up by any plan, and resolve records its keys without --without-look-up.
  const lookedUp = recorded.keyField !== undefined && !same(recorded.keyField, 'Id');
  const heldBack = await insertsHeldBack(client, task, reported, lookedUp, commandOptions);
  const refuse = (message: string): SyncScopeChangedError =>
    new SyncScopeChangedError(message + heldBack, recorded);
  const taskLiteral = sqlLiteral(task);
  // Started over by `roundtrip forget` (lambdas/core/task-state.ts): its sync state and scope
  // deleted under the task's lock, refused while records of the task have no known outcome.
  const { given, withPipelines } = commandsOptions(commandOptions);
  const forget = `start the task over under its name (${forgetCommand(task, { insertAgain: scope.mode === 'insert' && n > 0, given })}${withPipelines ? `, ${withPipelines}` : ''}: it deletes the task's sync state, and every record is sent once)`;
  if (change === 'object') {
    throw refuse(
      `Write-back ${task} (${configPath}): its ${records} were written to ${recorded.object}, and the task now writes ${scope.object}. ` +
        `Their keys would be taken as synced, and those records never written to ${scope.object}. ` +
        `To write them to ${scope.object}, give the task a new \`name\` (${configPath}.name: its sync state starts empty and every record is sent once), or ${forget}.`,
    );
  }
  if (change === 'column') {
    if (source) await refuseMissingKeyColumn(client, task, scope, configPath, source);
    throw refuse(
      `Write-back ${task} (${configPath}): its ${records} were keyed by the values of column ${recorded.keyColumn}, and the task now reads its keys from ${scope.keyColumn} (${configPath}.keyColumn). ` +
        `Other values are other keys: every record would be sent as new, ${scope.mode === 'insert' ? 'and inserted again' : `and upserted by ${scope.keyField} values Salesforce may not hold, creating records`}. ` +
        `If ${scope.keyColumn} holds the keys ${recorded.keyColumn} held (a column renamed), record it: UPDATE roundtrip.sync_scope SET key_column = ${sqlLiteral(scope.keyColumn)} WHERE task = ${taskLiteral}.`,
    );
  }
  if (change === 'insert-key') {
    throw refuse(
      `Write-back ${task} (${configPath}): its ${records} were keyed by ${recorded.keyField}, and the task now inserts ${scope.keyField ? `by ${scope.keyField}` : 'without a key field'}. ` +
        `Keyed otherwise, every record would be inserted again. An insert cannot change its key without inserting its records again: keep its key, ` +
        `or write the records by an upsert by the new key under a new \`name\` once every record carries it (map it as a field of an update by Id and run first).`,
    );
  }
  const was = recorded.keyField
    ? `were matched by ${recorded.keyField}`
    : 'were inserted without a key field';
  const carry = recorded.keyField
    ? `map ${scope.keyField} as a field while the key is still ${recorded.keyField} and run`
    : `map ${scope.keyField} as a field of an update by Id and run`;
  throw refuse(
    `Write-back ${task} (${configPath}): its ${records} ${was}, and the task now upserts by ${scope.keyField}. ` +
      `Records that do not carry ${scope.keyField} yet would be created again by the upsert. ` +
      `To move the records to ${scope.keyField} without creating any again, first ${carry} (every record gets it); ` +
      `then give the task a new \`name\` (${configPath}.name: every record is sent once and found by ${scope.keyField}), or ${forget}.`,
  );
}

/**
 * Refuses a task whose source exists without its key column, by the plan's own check of the
 * source's columns ({@link checkSourceHasColumns}): the same message, naming
 * `writeback[1].keyColumn` (and any of `fields` the source lacks too), the column it was likely
 * meant to be, and what to correct.
 */
async function refuseMissingKeyColumn(
  client: PoolClient,
  task: string,
  scope: SyncScope,
  configPath: string,
  source: TaskSource,
): Promise<void> {
  const has = [...((await tableColumns(client, source.schema, source.table)) ?? [])];
  if (has.length === 0 || has.includes(scope.keyColumn)) return;
  checkSourceHasColumns(
    has,
    { keyColumn: scope.keyColumn, fields: source.fields },
    { taskName: task, configPath, source },
  );
}

/**
 * A ledger row (`p`, its job `j`) in a Bulk job its run never collected: as resolve.ts tells a
 * key's send (`how` = `job`); a row sent again by a call (`attempts` > 0) is a call's.
 */
const IN_JOB_NEVER_COLLECTED = `(p.job_id IS NOT NULL AND p.attempts = 0 AND j.collected_at IS NULL)`;

/**
 * What the refusal says of the task's inserts sent whose outcome is unknown: ledger rows left
 * `sent`, and the `reported` keys a push reported INSERT_OUTCOME_UNKNOWN not resolved since. The
 * plan refused resolves none (it looks keys up and collects the Bulk jobs of ended runs after this
 * check: reconcile.ts), and forget refuses the task while they are (task-state.ts). Each kind has
 * its own way out, told with its count and only when the task has it, as `roundtrip resolve`
 * tells a key's kind (resolve.ts, unknownSends):
 * - sent by a Collections call, or in a Bulk job Salesforce no longer answers for (recorded
 *   `NotFound`, collected), and the keys reported: only Salesforce can tell, so someone looks for
 *   each record there and records it, with `--without-look-up` when a plan of the task configured
 *   as before would look it up (`lookedUp`: a task with an external-ID key);
 * - in a Bulk job its ended run never collected: the job's results tell, and `--collect-jobs`
 *   collects it (never recorded as someone says: the job may still create the record);
 * - sent by a run still running: that run records their outcomes.
 * Empty when there is none. `commandOptions`: see {@link commandsOptions}.
 */
async function insertsHeldBack(
  client: PoolClient,
  task: string,
  reported: number,
  lookedUp: boolean,
  commandOptions: string | undefined,
): Promise<string> {
  const { rows } = await client.query<{ by_look_up: number; in_jobs: number; running: number }>(
    `SELECT count(*) FILTER (WHERE r.status <> 'running' AND NOT (${IN_JOB_NEVER_COLLECTED}))::int AS by_look_up,
            count(*) FILTER (WHERE r.status <> 'running' AND ${IN_JOB_NEVER_COLLECTED})::int AS in_jobs,
            count(*) FILTER (WHERE r.status = 'running')::int AS running
       FROM roundtrip.writeback_plans p
       LEFT JOIN roundtrip.writeback_jobs j ON j.run_id = p.run_id AND j.task = p.task AND j.job_id = p.job_id
       JOIN roundtrip.runs r ON r.run_id = p.run_id
      WHERE p.task = $1 AND p.status = 'sent' AND p.operation = 'insert'`,
    [task],
  );
  const { by_look_up: leftByLookUp = 0, in_jobs: inJobs = 0, running = 0 } = rows[0] ?? {};
  const byLookUp = leftByLookUp + reported;
  const leftSent = leftByLookUp + inJobs + running;
  const total = leftSent + reported;
  if (total === 0) return '';
  const count = (n: number): string => n.toLocaleString('en-US');
  const { given, withPipelines } = commandsOptions(commandOptions);
  const taskOption = `${shellOption('--task', task)}${given}`;
  const where =
    reported > 0
      ? `${count(leftSent)} left sent in roundtrip.writeback_plans, ${count(reported)} reported INSERT_OUTCOME_UNKNOWN by a push`
      : 'roundtrip.writeback_plans, status sent';
  // A keyless insert's keys sent by a call are looked up by no plan at all: said at the start when
  // they are all there is, else with them.
  const neverLookedUp = '(the task inserts without an external-ID key)';
  const onlyNeverLookedUp = !lookedUp && inJobs === 0 && running === 0;
  const ways: string[] = [];
  if (byLookUp > 0) {
    ways.push(
      `for the ${count(byLookUp)} sent by a Collections call or in a Bulk job Salesforce no longer answers for${lookedUp || onlyNeverLookedUp ? '' : `, which no plan looks up ${neverLookedUp}`}, look for each in Salesforce and record what you found with roundtrip resolve ${taskOption} --key KEY${lookedUp ? ' --without-look-up' : ''} --inserted ID (or --not-inserted)`,
    );
  }
  if (inJobs > 0) {
    ways.push(
      `for the ${count(inJobs)} in Bulk jobs their run never collected, nothing to look for (the jobs' results tell): roundtrip resolve ${taskOption} --collect-jobs${withPipelines ? ` (${withPipelines})` : ''} asks Salesforce about each job and collects it once finished, recording each key's outcome from its results`,
    );
  }
  const intro =
    ` Its ${count(total)} insert record(s) sent whose outcome is unknown (${where}) are ` +
    `${onlyNeverLookedUp ? `looked up by no plan ${neverLookedUp}` : 'resolved by no plan while the task is refused so'}, ` +
    'and forget refuses the task until they are resolved';
  // The plan of the task configured as before looks them up (a keyed task's) and collects the jobs.
  const configBack = lookedUp
    ? 'put the config back as it was and run the pipeline, whose plan resolves them, or '
    : '';
  const ended = ways.length > 0 ? `: ${configBack}${ways.join('; ')}.` : '.';
  const stillRunning =
    running > 0
      ? ` The ${count(running)} sent by a run still running (roundtrip status) get their outcomes from that run: resolve any left once it has ended.`
      : '';
  return intro + ended + stillRunning;
}

/** {@link checkSyncScope} on a connection of the pool. */
export async function checkSyncScopeIn(
  pool: Pool,
  task: string,
  scope: SyncScope,
  configPath: string,
  source?: TaskSource,
  commandOptions?: string,
): Promise<void> {
  await withClient(pool, (client) => checkSyncScope(client, task, scope, configPath, source, commandOptions));
}

/**
 * Records the scope the task syncs by (in the plan's transaction: a plan that will be pushed).
 * Only an upsert records its match field over the one recorded for the same object: an insert or
 * an update does not match by it, and the records it wrote need not carry it (an insert's key
 * field set on the new records only, an update's Id), so the field recorded before stays, and a
 * detour through either does not hide a later upsert by another field. The key column is recorded
 * by an insert or an upsert (an update's keys are Ids, whatever column holds them).
 */
export async function recordSyncScope(
  client: PoolClient,
  task: string,
  scope: SyncScope,
  runId: string,
): Promise<void> {
  const moved = 'lower(s.object) <> lower(EXCLUDED.object)';
  const keyField = `CASE WHEN ${moved} OR $6 THEN EXCLUDED.key_field ELSE s.key_field END`;
  const keyColumn = `CASE WHEN ${moved} OR $7 THEN EXCLUDED.key_column ELSE s.key_column END`;
  await client.query(
    `INSERT INTO roundtrip.sync_scope AS s (task, object, key_field, key_column, run_id) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (task) DO UPDATE SET object = EXCLUDED.object, key_field = ${keyField}, key_column = ${keyColumn},
       run_id = EXCLUDED.run_id, recorded_at = now()
     WHERE (s.object, s.key_field, s.key_column) IS DISTINCT FROM (EXCLUDED.object, ${keyField}, ${keyColumn})`,
    [
      task,
      scope.object,
      scope.keyField ?? null,
      scope.keyColumn,
      runId,
      scope.mode === 'upsert',
      scope.mode !== 'update',
    ],
  );
}

/**
 * An insert task with no sync state of its own while a task of the same pipeline that the config
 * no longer names holds records it inserted into the same object ({@link checkRenamedTask}).
 */
export class RenamedTaskError extends TerminalError {
  constructor(
    message: string,
    /** The tasks the config no longer names whose inserts the task would make again. */
    readonly previous: readonly string[],
  ) {
    super(message);
  }
}

/**
 * A task is kept by name (`roundtrip.sync_state`, `sync_scope`): renamed in the config (a `name`
 * given, or a `mode` changed under a default name), it is a new task with no sync state, and its
 * old name's state is left behind (task-state.ts, syncedTasksNotInConfig). For an insert, that means
 * inserting every record the task inserted already again. So, for a task with no sync state and
 * no sync scope of its own, this looks for tasks the pipeline claims (`roundtrip.task_owners`)
 * that its config no longer names whose synced records went to the same object, and:
 *
 * - an insert task is refused ({@link RenamedTaskError}) while any of them inserted records there
 *   ({@link renamedInsertTasks}), naming them, how many records each inserted, and the ways out:
 *   rename the task back, carry the old task's state over (`roundtrip rename-task`), or, to
 *   insert them again on purpose, forget the old task (`--insert-again`);
 * - for an update or upsert, nothing is created twice, but every record is sent once (unless the
 *   config extracts the object, whose copy the plan compares with): answered as a warning, with
 *   the command that carries the state over.
 *
 * Reads only the task names and state tables, before anything calls Salesforce.
 * `commandOptions`: see {@link commandsOptions}.
 */
export async function checkRenamedTask(
  pool: Pool,
  config: PipelineConfig,
  task: WritebackTask,
  configPath: string,
  commandOptions?: string,
): Promise<string | undefined> {
  const name = taskName(task);
  const own = await withClient(pool, async (client) => {
    const { rows } = await client.query<{ scope: boolean; state: boolean }>(
      `SELECT to_regclass('roundtrip.sync_scope') IS NOT NULL AS scope, to_regclass('roundtrip.sync_state') IS NOT NULL AS state`,
    );
    if (!rows[0]?.scope || !rows[0]?.state) return true;
    const { rowCount } = await client.query(
      `SELECT 1 FROM roundtrip.sync_state WHERE task = $1 UNION ALL SELECT 1 FROM roundtrip.sync_scope WHERE task = $1 LIMIT 1`,
      [name],
    );
    return (rowCount ?? 0) > 0;
  });
  if (own) return undefined;
  const names = [...config.extract.map(taskName), ...config.writeback.map(taskName)];
  const count = (n: number): string => `${n.toLocaleString('en-US')} record${n === 1 ? '' : 's'}`;
  const listed = (tasks: readonly SyncedTaskNotInConfig[], verb: string): string =>
    tasks
      .map(
        (t) =>
          `task ${t.task} ${verb} ${count(t.syncedRecords)} into ${t.syncScope?.object ?? task.object}` +
          (t.syncScope?.keyColumn ? ` (keys from column ${t.syncScope.keyColumn})` : ''),
      )
      .join(', ');
  const { given, withPipelines } = commandsOptions(commandOptions);
  const carry = (tasks: readonly SyncedTaskNotInConfig[]): string =>
    tasks.length === 1
      ? renameTaskCommand(tasks[0]!.task, name, given)
      : `${renameTaskCommand('OLD', name, given)} for the one it was (${tasks.map((t) => t.task).join(', ')})`;
  if (task.mode === 'insert') {
    const previous = await renamedInsertTasks(pool, config.name, names, task.object);
    if (previous.length === 0) return undefined;
    const one = previous.length === 1;
    const old = one ? previous[0]!.task : 'OLD';
    const total = previous.reduce((n, t) => n + t.syncedRecords, 0);
    throw new RenamedTaskError(
      `Write-back ${name} (${configPath}): it inserts ${task.object} and has no sync state of its own, while ` +
        `${listed(previous, 'inserted')}, and the config no longer names ${one ? 'it' : 'them'} (renamed or removed). ` +
        `A task's sync state is kept by its name: if ${name} is ${one ? old : 'one of them'} renamed, its first run would insert ` +
        `${one ? `all ${count(total)}` : 'its records'} again, and Salesforce would hold each twice. Nothing was sent. Either ` +
        `rename the task back (${configPath}.name: '${old}'); or carry ${one ? `${old}'s` : 'its'} state over to the new name: ` +
        `${carry(previous)} (${withPipelines ? `${withPipelines}; ` : ''}the task then sends only what changed); or, ` +
        `to insert the records again on purpose (a new task, not a renamed one), start ${one ? old : 'each'} over first: ` +
        `${forgetCommand(old, { insertAgain: true, given })}.`,
      previous.map((t) => t.task),
    );
  }
  const copied = config.extract.some(
    (e) => e.from === 'salesforce' && e.object.toLowerCase() === task.object.toLowerCase(),
  );
  if (copied) return undefined;
  const previous = await syncedTasksNotInConfig(pool, config.name, names, task.object);
  if (previous.length === 0) return undefined;
  return (
    `write-back ${name} (${configPath}) has no sync state of its own, while ${listed(previous, 'synced')}, and the ` +
    `config no longer names ${previous.length === 1 ? 'it' : 'them'}: if ${name} is ${previous.length === 1 ? 'it' : 'one of them'} renamed, ` +
    `its next run sends every record once (an ${task.mode} creates none twice). To go on where it was, carry its state over: ${carry(previous)}`
  );
}
