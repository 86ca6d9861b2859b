/**
 * Insert outcomes recorded by hand (`roundtrip resolve`): the keys the plan holds back as
 * `INSERT_OUTCOME_UNKNOWN` run after run because nothing can look them up — sent by an insert task
 * without an external-ID key, by a Collections call or in a Bulk job Salesforce no longer answers
 * for (`writeback_jobs.state` `NotFound`; a keyed task's are looked up by the next plan, as its
 * calls' are, unless no plan can: then with `withoutLookUp`, {@link RecordOptions}). Someone who
 * looked in Salesforce says what became of each: created, with its record's Id, or not (never
 * created, or deleted there since). Each is recorded as the plan's look-up would have recorded it
 * (reconcile.ts): a record created in that run's ledger and in `sync_state`, so that no plan
 * inserts the key again; a key not inserted released, `NOT_INSERTED` in that run, so that the next
 * plan inserts it; that run's figures counted again.
 * Under the task's lock (lock.ts), in one transaction: all or nothing.
 *
 * The task need not be in the config: one removed or renamed there keeps its keys held back, and
 * `roundtrip forget` refuses to forget it until they are resolved (task-state.ts). The database
 * then tells what the task was ({@link readTaskState}): an insert task, by its latest plan kept
 * (`lastOperation`), of this pipeline (`roundtrip.task_owners`, else a run of it), with the object
 * and key its records were synced by (`sync_scope`).
 *
 * A key sent in a Bulk job that its run never collected is not recorded by hand: the job's results
 * tell, and this command collects a finished job as the task's next plan would (reconcile.ts,
 * collectInsertJobsOfEndedRuns), asking Salesforce with the pipeline's secret, for a task no plan
 * of which can ({@link collectInsertJobs}: all such jobs of the task, without keys).
 */
import type { PoolClient } from 'pg';
import { taskName as nameOfTask } from '../../config';
import { exactTimestampTextSql, withClient, withTransaction } from '../../connectors/postgres';
import { canonicalSalesforceId } from '../../connectors/salesforce/ids';
import { TaskBusyError } from '../../shared/errors';
import { silentLogger } from '../../shared/logging';
import { shellOption } from '../../shared/shell';
import { salesforceOf, type CoreDeps } from '../deps';
import { readTaskState, type TaskState } from '../task-state';
import { ifTaskLockFree } from './lock';
import { checkSyncScope, SyncScopeChangedError } from './scope';
import { mergeRunSummary, storedCount, writebackConfigPath } from './state';
import {
  collectInsertJobsOfEndedRuns,
  INSERT_SETTLE_MS,
  RESOLVED_BY_HAND,
  recordInsertsCreated,
  refreshEndedRunIn,
  releaseInserts,
  sentHowSql,
  type SentInsertRow,
  UNKNOWN_VALUE_HASH,
} from './reconcile';
import { WITHOUT_LOOK_UP_OPTION } from './resolve-command';

/** What someone found in Salesforce for one key held back. */
export interface InsertOutcomeByHand {
  /** The key, as the task's `keyColumn` held it (as `roundtrip errors` lists it). */
  readonly key: string;
  /** The Id of the record created for the key (15 or 18 characters), or null: not inserted. */
  readonly salesforceId: string | null;
  /** Where it was given, for messages (`line 3 of keys.csv`). */
  readonly source?: string;
}

/** How the earlier run sent a key whose outcome is recorded by hand. */
export type UnknownSend =
  | { readonly api: 'collections' }
  | { readonly api: 'bulk'; readonly jobId: string; readonly jobState: string };

/** One outcome recorded (or, on a dry run, to be recorded). */
export interface InsertOutcomeRecorded {
  readonly key: string;
  /** The run that sent the key and never learned the outcome: its ledger row is resolved. */
  readonly runId: string;
  readonly sentBy: UnknownSend;
  readonly outcome: 'inserted' | 'not-inserted';
  /** The record's Id in its 18-character form (inserted), else null. */
  readonly salesforceId: string | null;
  /**
   * Set when the outcome is the Bulk job's own, not the one given: the job that carried the key,
   * never collected by its run, was finished in Salesforce and collected by this command (as the
   * task's next plan collects it), its results recorded for every key it carried. `differs`: the
   * outcome given was another (the job's results are recorded, the outcome given is not).
   */
  readonly fromJobResults?: { readonly differs: boolean };
}

/**
 * Outcomes refused: the task, a key or an Id is not one that can be recorded (each problem names
 * it and says why). None of the outcomes given was written; `jobsCollected` are the Bulk jobs
 * never collected by their runs that this command collected before its checks (each in a
 * transaction of its own, {@link recordInsertOutcomes}): their keys' outcomes are recorded from
 * their results all the same, and the refusal must not say that nothing was.
 */
export class OutcomeRefusedError extends Error {
  constructor(
    readonly problems: readonly string[],
    readonly jobsCollected: readonly {
      readonly runId: string;
      readonly jobId: string;
      readonly state: string;
    }[] = [],
  ) {
    super(problems.join('\n'));
    this.name = 'OutcomeRefusedError';
  }
}

export { RESOLVED_BY_HAND };

export { WITHOUT_LOOK_UP_OPTION };

/** Options of {@link recordInsertOutcomes}. */
export interface RecordOptions {
  /** Check everything and write nothing. */
  readonly dryRun?: boolean;
  /**
   * Record a keyed task's keys sent by a Collections call or in a Bulk job Salesforce no longer
   * answers for, which a plan would look up by the external ID: for when no plan can (the
   * look-up refused by Salesforce for good, the plan refused before it by a changed object or key
   * or a key field gone from Salesforce, the task no longer in the config and not to be named as
   * it was). The person who looked in Salesforce says so; every other check stands (a
   * Collections call's settle time before "not inserted" among them). A key in a Bulk job never
   * collected is never recorded as given: the job may still be running ({@link recordInsertOutcomes}).
   */
  readonly withoutLookUp?: boolean;
}

/**
 * A send of a key with no recorded outcome: a ledger row left `sent` (`form` sent), or a push's
 * `INSERT_OUTCOME_UNKNOWN` error (`form` reported: an insert without an external-ID key found
 * `sent` by its own retried push, its ledger row `failed`, or gone with the run's pruned details).
 */
interface UnknownRow {
  key: string;
  run_id: string;
  run_status: string;
  form: 'sent' | 'reported';
  /** `call`: a Collections call; `job`: a Bulk job not collected; `gone`: a job Salesforce no longer answers for. */
  how: 'call' | 'job' | 'gone';
  job_id: string | null;
  job_state: string | null;
  seq: string | null;
  sent_at: string | null;
  age_ms: number | null;
  error_id: string | null;
}

function sentByOf(row: UnknownRow): UnknownSend {
  return row.how === 'call' || row.job_id === null
    ? { api: 'collections' }
    : { api: 'bulk', jobId: row.job_id, jobState: row.job_state ?? 'unknown' };
}

/**
 * Records what someone found in Salesforce for insert keys of task `taskName` that no plan can
 * resolve (see the module comment), or refuses them all ({@link OutcomeRefusedError}) when one
 * cannot be recorded: a task that is not an insert task of the config, nor (a task the config no
 * longer names) of the pipeline in the database (see the module comment), or one another pipeline
 * holds in `roundtrip.task_owners`; an Id that is not one, not of the task's object (its key
 * prefix, when a record of the task is recorded), or recorded for another key already; a key
 * given twice, not held back with an unknown outcome (one held back in another letter case is
 * named), sent by a run still running, or one a plan of the task resolves itself (a keyed task's
 * sent by a call or in a Bulk job Salesforce no longer answers for, looked up by its external ID,
 * but with `options.withoutLookUp`); a key in a Bulk job its run never collected whose job has
 * not finished (or was not asked about: a dry run, or no Salesforce in the deps); a key said not
 * inserted whose Collections call may still be running ({@link INSERT_SETTLE_MS}). Takes the
 * task's lock without waiting (a push or collect of the task holds it: a TaskBusyError). `dryRun`
 * checks everything and writes nothing.
 *
 * A key in a Bulk job its run never collected gets the job's result, never the outcome given: the
 * job is asked about in Salesforce, closed if it was uploaded and never closed, and collected once
 * finished, as the task's next plan would ({@link collectJobsOfKeys}), for when no plan can (its
 * object or key changed in the config, or the config no longer names it). That happens before the
 * checks, in a transaction of its own per job: a job collected stays so whatever is refused after.
 */
export async function recordInsertOutcomes(
  deps: ResolveDeps,
  taskName: string,
  outcomes: readonly InsertOutcomeByHand[],
  options: RecordOptions = {},
): Promise<InsertOutcomeRecorded[]> {
  const task = await insertTaskOf(deps, taskName);
  const given = checkedOutcomes(taskName, outcomes);
  // A refusal is answered out of the transaction, not thrown through it: withClient would take it
  // for a broken connection.
  // The jobs collected before the checks: a refusal after them says so (OutcomeRefusedError).
  let jobs: ReadonlyMap<string, JobOfKey> | undefined;
  const done = await ifTaskLockFree(deps, taskName, async () => {
    // The jobs first, each collected in a transaction of its own (as a plan collects it): what a
    // finished job's results say is recorded whatever is refused after.
    jobs = options.dryRun === true ? undefined : await collectJobsOfKeys(deps, taskName, given);
    return withTransaction(deps.pg, async (client) => {
      const checked = await unknownSends(
        client,
        task,
        taskName,
        given,
        options.withoutLookUp === true,
        { jobs, notAsked: options.dryRun === true ? 'dry-run' : 'no-salesforce' },
        deps.commandOptions ?? '',
      );
      if ('problems' in checked || options.dryRun === true) return checked;
      await recordFound(client, taskName, checked.found, deps.clock.now());
      return checked;
    });
  });
  if (!done.ran) {
    throw new TaskBusyError(
      `Write-back ${taskName}: a push or collect of this task is running (roundtrip status shows the run); nothing was recorded: run this again once it has ended`,
    );
  }
  if ('problems' in done.value) {
    const collected = [...(jobs?.values() ?? [])]
      .filter((j) => j.collected)
      .map(({ runId, jobId, state }) => ({ runId, jobId, state }));
    throw new OutcomeRefusedError(done.value.problems, collected);
  }
  return [...done.value.found.map(({ row: _row, ...recorded }) => recorded), ...done.value.fromJobs];
}

/** What {@link recordInsertOutcomes} needs: Salesforce to ask about Bulk jobs never collected. */
export type ResolveDeps = Pick<CoreDeps, 'pg' | 'config' | 'clock'> &
  Partial<Pick<CoreDeps, 'salesforce' | 'logger' | 'commandOptions'>>;

/** A Bulk job of an ended run, never collected by it, as {@link collectInsertJobs} left it. */
export interface InsertJobResolved {
  readonly runId: string;
  readonly jobId: string;
  /** As `writeback_jobs` records it now: the state Salesforce answered, or as recorded before. */
  readonly state: string;
  /**
   * Collected now: its keys' outcomes are its results. Else it has not finished (or could not be
   * asked), or Salesforce no longer knows it (`NotFound`: its results are gone, its keys stay sent).
   */
  readonly collected: boolean;
  /** Its keys by outcome now: created (`inserted`), not (`notInserted`), still unknown (`sent`). */
  readonly inserted: number;
  readonly notInserted: number;
  readonly sent: number;
  /** What Salesforce refused (to read the job, or to close it), with its answer: left as recorded. */
  readonly unread?: string;
}

/**
 * `roundtrip resolve --collect-jobs`: the insert task's Bulk jobs that runs which have ended
 * uploaded and never collected, resolved as its next plan resolves them ({@link
 * collectInsertJobsOfEndedRuns}): asked about in Salesforce, closed when uploaded and never
 * closed, collected once finished, each key's outcome recorded from the job's results. For a task
 * no plan of which can: refused for a changed object or key, or no longer in the config. Refused
 * ({@link OutcomeRefusedError}) for a task that is not an insert task of the pipeline (as
 * {@link recordInsertOutcomes}) and without Salesforce in the deps; a TaskBusyError while a push
 * or collect of the task runs. Answers each job as left; none when there is none.
 */
export async function collectInsertJobs(deps: ResolveDeps, taskName: string): Promise<InsertJobResolved[]> {
  await insertTaskOf(deps, taskName);
  if (deps.salesforce === undefined) {
    throw new OutcomeRefusedError([
      `task ${taskName}: its Bulk jobs are asked about in Salesforce, and the config of pipeline ${deps.config.name} has no salesforce secret (salesforce.secret): run this with the pipeline's own --config and --secrets`,
    ]);
  }
  const done = await ifTaskLockFree(deps, taskName, () => collectJobsOfKeys(deps, taskName, undefined));
  if (!done.ran) {
    throw new TaskBusyError(
      `Write-back ${taskName}: a push or collect of this task is running (roundtrip status shows the run); no job was asked about: run this again once it has ended`,
    );
  }
  const jobs = [...(done.value?.values() ?? [])];
  if (jobs.length === 0) return [];
  const { rows } = await deps.pg.query<{ job_id: string; status: string; n: number }>(
    `SELECT p.job_id, p.status, count(*)::int AS n FROM roundtrip.writeback_plans p
      JOIN roundtrip.writeback_jobs j ON j.run_id = p.run_id AND j.task = p.task AND j.job_id = p.job_id
      WHERE p.task = $1 AND p.job_id = ANY ($2::text[]) AND p.seq BETWEEN j.first_seq AND j.last_seq
      GROUP BY p.job_id, p.status`,
    [taskName, jobs.map((j) => j.jobId)],
  );
  const n = (jobId: string, status: string): number =>
    rows.find((r) => r.job_id === jobId && r.status === status)?.n ?? 0;
  return jobs
    .sort((a, b) => a.runId.localeCompare(b.runId) || a.jobId.localeCompare(b.jobId))
    .map((j) => ({
      ...j,
      inserted: n(j.jobId, 'succeeded'),
      notInserted: n(j.jobId, 'failed'),
      sent: n(j.jobId, 'sent'),
    }));
}

/** A Bulk job never collected that carried a key given, as this command left it. */
interface JobOfKey {
  readonly runId: string;
  readonly jobId: string;
  /** As `writeback_jobs` records it now: the state Salesforce answered, or as recorded before. */
  readonly state: string;
  /** Collected by this command (not one recorded `NotFound`, whose results are gone). */
  readonly collected: boolean;
  /** What Salesforce refused (to read the job, or to close it), with its answer: left as recorded. */
  readonly unread?: string;
}

/**
 * The Bulk jobs never collected, of runs that have ended, that carried keys given (left `sent`),
 * resolved as the task's next plan resolves them ({@link collectInsertJobsOfEndedRuns}): asked
 * about in Salesforce, closed when uploaded and never closed, collected once finished. For a task
 * whose plan is refused for a changed object or key, or that the config no longer names, no plan
 * does it. Undefined without Salesforce in the deps (the jobs stay as they are); then, and for a
 * job still running, the keys stay refused ({@link unknownSends}).
 */
async function collectJobsOfKeys(
  deps: ResolveDeps,
  taskName: string,
  given: readonly GivenOutcome[] | undefined,
): Promise<Map<string, JobOfKey> | undefined> {
  const { rows } = await deps.pg.query<{ job_id: string }>(
    `SELECT DISTINCT p.job_id
       FROM roundtrip.writeback_plans p
       JOIN roundtrip.writeback_jobs j ON j.run_id = p.run_id AND j.task = p.task AND j.job_id = p.job_id
       JOIN roundtrip.runs r ON r.run_id = p.run_id
      WHERE p.task = $1 AND ($2::text[] IS NULL OR p.key = ANY ($2::text[])) AND p.status = 'sent'
        AND p.attempts = 0 AND j.collected_at IS NULL AND r.status <> 'running'
      ORDER BY p.job_id`,
    [taskName, given?.map((g) => g.key) ?? null],
  );
  if (rows.length === 0 || deps.salesforce === undefined) return undefined;
  const jobIds = rows.map((r) => r.job_id);
  const logger = deps.logger ?? silentLogger;
  const sf = await salesforceOf(
    { ...deps, logger },
    `roundtrip resolve --task ${taskName} (Bulk jobs never collected)`,
  );
  const { jobsUnread } = await collectInsertJobsOfEndedRuns(
    { ...deps, logger },
    sf,
    taskName,
    jobIds,
    logger,
  );
  const { rows: after } = await deps.pg.query<{
    run_id: string;
    job_id: string;
    state: string;
    collected: boolean;
  }>(
    `SELECT run_id, job_id, state, collected_at IS NOT NULL AND state <> 'NotFound' AS collected FROM roundtrip.writeback_jobs
      WHERE task = $1 AND job_id = ANY ($2::text[])`,
    [taskName, jobIds],
  );
  return new Map(
    after.map((j) => [
      j.job_id,
      {
        runId: j.run_id,
        jobId: j.job_id,
        state: j.state,
        collected: j.collected,
        ...(jobsUnread.has(j.job_id) ? { unread: jobsUnread.get(j.job_id) } : {}),
      },
    ]),
  );
}

/** The insert task whose outcomes are recorded, as far as the checks need it. */
interface InsertTask {
  /** The object it inserts (the config's; for a task it no longer names, its sync scope's, if any). */
  readonly object: string | undefined;
  /**
   * The external-ID field a plan looks its inserts up by; undefined without one. For a task the
   * config no longer names, its sync scope's `key_field`: a task last planned before sync scopes
   * were recorded (migration 8) has none, and its keys are taken as keyless (recorded by hand).
   */
  readonly key: string | undefined;
  /**
   * For a task the config names, its source column of keys and its config path (`writeback[2]`):
   * what its plan's check of a changed object or key reads ({@link checkSyncScope}). Undefined for
   * a task the config no longer names: no plan of it runs until it is named again.
   */
  readonly config?: { readonly keyColumn: string; readonly configPath: string };
}

/**
 * The insert task named so, or the refusal that says why it is not one: another pipeline holds
 * the name; the config names it with another mode; the config does not name it and the database
 * knows no such task of the pipeline, or knows it as another mode's (its latest plan kept).
 */
async function insertTaskOf(deps: Pick<CoreDeps, 'config' | 'pg'>, taskName: string): Promise<InsertTask> {
  const pipeline = deps.config.name;
  const task = deps.config.writeback.find((t) => nameOfTask(t) === taskName);
  const state = await withClient(deps.pg, (client) => readTaskState(client, pipeline, taskName));
  if (state.owner !== undefined && state.owner !== pipeline) {
    throw new OutcomeRefusedError([
      `task ${taskName} belongs to pipeline ${state.owner} in this database (roundtrip.task_owners), not to ${pipeline}: its outcomes are that pipeline's to record (run resolve with its --config)`,
    ]);
  }
  if (task) {
    if (task.mode !== 'insert') {
      throw new OutcomeRefusedError([
        `task ${taskName} is an ${task.mode} task: outcomes are recorded by hand for insert tasks only (the next plan sends an ${task.mode} whose outcome is unknown again itself: sent twice, it writes the same values)`,
      ]);
    }
    return {
      object: task.object,
      key: task.key,
      config: { keyColumn: task.keyColumn, configPath: writebackConfigPath(deps.config, task) },
    };
  }
  const inserts = deps.config.writeback.filter((t) => t.mode === 'insert').map((t) => nameOfTask(t));
  if (state.owner === undefined && state.lastRun === undefined) {
    throw new OutcomeRefusedError([
      `task ${taskName}: pipeline ${pipeline} has no write-back task of that name, in its config (its insert tasks: ${inserts.length ? inserts.join(', ') : 'none'}) or in the database (no claim in roundtrip.task_owners, no run of it): task names are case-sensitive; roundtrip status lists the tasks the config no longer names that still have state`,
    ]);
  }
  if (state.lastOperation !== 'insert') {
    throw new OutcomeRefusedError([notAnInsertAnyMore(taskName, pipeline, state)]);
  }
  return { object: state.syncScope?.object, key: state.syncScope?.keyField ?? undefined };
}

/** The refusal of a task the config no longer names that the database does not know as an insert task. */
function notAnInsertAnyMore(taskName: string, pipeline: string, state: TaskState): string {
  const head = `task ${taskName}, which the config of pipeline ${pipeline} no longer names,`;
  return state.lastOperation === undefined
    ? `${head} is not known as an insert task in the database: no plan of it is kept (no plan pages, no ledger row left sent) and no key of it is held back as INSERT_OUTCOME_UNKNOWN, so it has no insert whose outcome is unknown to record`
    : `${head} is an ${state.lastOperation} task, as its latest plan stored it: outcomes are recorded by hand for insert tasks only (named again as it was, its next plan sends an ${state.lastOperation} whose outcome is unknown again itself: sent twice, it writes the same values)`;
}

/** How a task the config no longer names was configured, as far as the database recorded it. */
function asItWas(task: InsertTask): string {
  if (task.object === undefined) return 'the same name, object and key';
  return `the same name, object ${task.object}, ${task.key ? `key ${task.key}` : 'no key field'}`;
}

/** How a key a plan would look up is recorded by hand when none can. */
const BY_HAND_INSTEAD = `look for the record in Salesforce yourself and record what you found with ${WITHOUT_LOOK_UP_OPTION} added to this command`;

/**
 * What follows "the next plan looks the key up" in the refusal of a keyed task's key: why no plan
 * may do it, and what to do then ({@link WITHOUT_LOOK_UP_OPTION}). A task the config no longer
 * names has no plan until it is named again as it was, which may be impossible; one whose object
 * or key changed in the config has its plan refused before any look-up (the plan's own check,
 * {@link checkSyncScope}); else the plan looks the key up, unless Salesforce refuses the look-up
 * (the plan says so in the key's message) or the plan is refused before it.
 */
async function unlessNoPlanLooksUp(
  client: PoolClient,
  task: InsertTask,
  taskName: string,
  commandOptions: string,
): Promise<string> {
  if (!task.config) {
    return `; the config no longer names task ${taskName}: name it again as it was (${asItWas(task)}) and run the pipeline, whose plan does it, or, if it cannot be named so again (its key field gone from Salesforce, say), ${BY_HAND_INSTEAD}`;
  }
  try {
    await checkSyncScope(
      client,
      taskName,
      { object: task.object ?? '', mode: 'insert', keyField: task.key, keyColumn: task.config.keyColumn },
      task.config.configPath,
    );
  } catch (err) {
    if (!(err instanceof SyncScopeChangedError)) throw err;
    const was = err.recorded;
    const synced = ` (object ${was.object}, key ${was.keyField ?? 'none'}${was.keyColumn ? `, column ${was.keyColumn}` : ''} in roundtrip.sync_scope; ${task.config.configPath} now has object ${task.object ?? ''}, key ${task.key ?? 'none'}, column ${task.config.keyColumn})`;
    return `; but the config's task no longer writes the object or key its records were synced by${synced}, so its plan is refused before any look-up (SyncScopeChangedError): put the config back as it was and run the pipeline, whose plan does it, or ${BY_HAND_INSTEAD}`;
  }
  return `. Should it not (Salesforce refuses the look-up: roundtrip errors ${shellOption('--task', taskName)}${commandOptions} --code INSERT_OUTCOME_UNKNOWN shows the refusal in the key's message; or the plan is refused before it, by a key field gone from Salesforce, say), ${BY_HAND_INSTEAD}`;
}

/**
 * The keys held back with an unknown outcome in task `taskName` that differ from one of `keys`
 * in letter case only, by the lower case of the key given.
 */
async function heldBackInOtherCase(
  client: PoolClient,
  taskName: string,
  keys: readonly string[],
): Promise<Map<string, string[]>> {
  const found = new Map<string, string[]>();
  if (keys.length === 0) return found;
  const { rows } = await client.query<{ key: string }>(
    `SELECT DISTINCT key FROM (
       SELECT key FROM roundtrip.writeback_plans WHERE task = $1 AND status = 'sent' AND lower(key) = ANY ($2::text[])
       UNION ALL
       SELECT key FROM roundtrip.writeback_errors
        WHERE task = $1 AND stage = 'push' AND code = 'INSERT_OUTCOME_UNKNOWN' AND lower(key) = ANY ($2::text[])) AS x
      WHERE NOT EXISTS (SELECT 1 FROM roundtrip.sync_state s WHERE s.task = $1 AND s.key = x.key AND s.salesforce_id IS NOT NULL)
      ORDER BY key`,
    [taskName, keys.map((k) => k.toLowerCase())],
  );
  for (const { key } of rows) {
    const lower = key.toLowerCase();
    found.set(lower, [...(found.get(lower) ?? []), key]);
  }
  return found;
}

/** An outcome given, its Id in the 18-character form. */
interface GivenOutcome {
  readonly key: string;
  readonly id: string | null;
  /** What messages about it start with: where it was given (`line 3 of keys.csv: `), or nothing. */
  readonly at: string;
}

/** The outcomes with their Ids checked and made canonical; a key or an Id given twice is refused. */
function checkedOutcomes(taskName: string, outcomes: readonly InsertOutcomeByHand[]): GivenOutcome[] {
  const problems: string[] = [];
  if (outcomes.length === 0) problems.push(`task ${taskName}: no key given`);
  const keys = new Map<string, string>();
  const ids = new Map<string, string>();
  const given: GivenOutcome[] = [];
  for (const o of outcomes) {
    const at = o.source ? `${o.source}: ` : '';
    const source = o.source ?? `key ${o.key}`;
    if (o.key.trim() === '') {
      problems.push(`${at}the key is empty`);
      continue;
    }
    const earlier = keys.get(o.key);
    if (earlier !== undefined) problems.push(`${at}key ${o.key} is given twice (${earlier} too)`);
    keys.set(o.key, source);
    let id: string | null = null;
    if (o.salesforceId !== null) {
      const canonical = canonicalSalesforceId(o.salesforceId);
      if ('problem' in canonical) {
        problems.push(`${at}key ${o.key}: ${canonical.problem}`);
        continue;
      }
      id = canonical.id;
      const other = ids.get(id);
      if (other !== undefined)
        problems.push(
          `${at}key ${o.key}: Id ${id} is given for another key too (${other}): one record has one key`,
        );
      ids.set(id, source);
    }
    given.push({ key: o.key, id, at });
  }
  if (problems.length > 0) throw new OutcomeRefusedError(problems);
  return given;
}

/** A key's send found, with the outcome given for it. */
interface FoundSend extends InsertOutcomeRecorded {
  readonly row: UnknownRow;
}

/**
 * The send of each key whose outcome is unknown, as the plan holds it back (plan.ts, the insert's
 * unknown keys), checked against what may be recorded: the sends found, or every problem.
 */
async function unknownSends(
  client: PoolClient,
  task: InsertTask,
  taskName: string,
  given: readonly GivenOutcome[],
  withoutLookUp: boolean,
  asked: {
    /** The Bulk jobs never collected of the keys given, as asked about; undefined: not asked. */
    readonly jobs: ReadonlyMap<string, JobOfKey> | undefined;
    /** Why they were not asked about, when they were not. */
    readonly notAsked: NotAsked;
  },
  /** The options the commands named repeat (CoreDeps.commandOptions), ` --config FILE …` or ''. */
  commandOptions: string,
): Promise<{ found: FoundSend[]; fromJobs: InsertOutcomeRecorded[] } | { problems: string[] }> {
  const keys = given.map((g) => g.key);
  // Keys whose Bulk job this command collected (collectJobsOfKeys): their outcome is the job's.
  const jobs = asked.jobs;
  const collectedNow = [...(jobs?.values() ?? [])].filter((j) => j.collected);
  const { rows: ofJobs } = await client.query<{
    key: string;
    run_id: string;
    job_id: string;
    status: string;
    salesforce_id: string | null;
  }>(
    `SELECT key, run_id, job_id, status, salesforce_id FROM roundtrip.writeback_plans
      WHERE task = $1 AND key = ANY ($2::text[]) AND job_id = ANY ($3::text[]) AND status IN ('succeeded', 'failed')`,
    [taskName, keys, collectedNow.map((j) => j.jobId)],
  );
  const fromJobs: InsertOutcomeRecorded[] = [];
  const { rows } = await client.query<UnknownRow>(
    `SELECT x.*, r.status AS run_status FROM (
       SELECT p.key, p.run_id, 'sent' AS form,
              ${sentHowSql()} AS how,
              p.job_id, j.state AS job_state, p.seq, ${exactTimestampTextSql('p.updated_at')} AS sent_at,
              (extract(epoch FROM now() - p.updated_at) * 1000)::float8 AS age_ms, NULL::bigint AS error_id
         FROM roundtrip.writeback_plans p
         LEFT JOIN roundtrip.writeback_jobs j ON j.run_id = p.run_id AND j.task = p.task AND j.job_id = p.job_id
        WHERE p.task = $1 AND p.key = ANY ($2::text[]) AND p.status = 'sent'
       UNION ALL
       SELECT e.key, e.run_id, 'reported', 'call', e.job_id, NULL, p.seq, ${exactTimestampTextSql('p.updated_at')},
              (extract(epoch FROM now() - coalesce(p.updated_at, e.created_at)) * 1000)::float8, e.id
         FROM roundtrip.writeback_errors e
         LEFT JOIN roundtrip.writeback_plans p
                ON p.run_id = e.run_id AND p.task = e.task AND p.key = e.key AND p.status = 'failed'
        WHERE e.task = $1 AND e.key = ANY ($2::text[]) AND e.stage = 'push' AND e.code = 'INSERT_OUTCOME_UNKNOWN'
     ) AS x JOIN roundtrip.runs r ON r.run_id = x.run_id
     ORDER BY x.key, x.run_id`,
    [taskName, keys],
  );
  const { rows: synced } = await client.query<{ key: string; salesforce_id: string; run_id: string | null }>(
    `SELECT key, salesforce_id, run_id FROM roundtrip.sync_state
      WHERE task = $1 AND (key = ANY ($2::text[]) OR salesforce_id = ANY ($3::text[])) AND salesforce_id IS NOT NULL`,
    [taskName, keys, given.flatMap((g) => (g.id ? [g.id] : []))],
  );
  // The key prefix of the task's object, from a record of it recorded: every Id of one object
  // starts with it. None recorded yet (a task that never inserted), the Ids are checked for form only.
  const { rows: prefixes } = await client.query<{ prefix: string; object: string | null }>(
    `SELECT left(s.salesforce_id, 3) AS prefix, (SELECT object FROM roundtrip.sync_scope WHERE task = $1) AS object
       FROM roundtrip.sync_state s WHERE s.task = $1 AND s.salesforce_id IS NOT NULL LIMIT 1`,
    [taskName],
  );
  const prefix = prefixes[0];
  // Keys not held back as given may be held back in another letter case (a key is matched as the
  // ledger holds it): named, never taken for the key given.
  const otherCase = await heldBackInOtherCase(
    client,
    taskName,
    keys.filter((k) => !rows.some((r) => r.key === k)),
  );
  // What may keep the plan from looking the keys up, and the way out: read once, when a key needs it.
  let noLookUp: string | undefined;
  const whyNoLookUp = async (): Promise<string> => {
    noLookUp ??= await unlessNoPlanLooksUp(client, task, taskName, commandOptions);
    return noLookUp;
  };
  const byKey = new Map<string, UnknownRow[]>();
  for (const r of rows) byKey.set(r.key, [...(byKey.get(r.key) ?? []), r]);
  const settleMinutes = INSERT_SETTLE_MS / 60_000;
  const problems: string[] = [];
  const found: FoundSend[] = [];
  for (const g of given) {
    const at = g.at;
    const ofJob = ofJobs.find((r) => r.key === g.key);
    if (ofJob) {
      const job = jobs?.get(ofJob.job_id);
      const inserted = ofJob.status === 'succeeded';
      const id = inserted ? ofJob.salesforce_id : null;
      fromJobs.push({
        key: g.key,
        runId: ofJob.run_id,
        sentBy: { api: 'bulk', jobId: ofJob.job_id, jobState: job?.state ?? 'unknown' },
        outcome: inserted ? 'inserted' : 'not-inserted',
        salesforceId: id,
        fromJobResults: { differs: inserted ? g.id !== id : g.id !== null },
      });
      continue;
    }
    const recorded = synced.find((s) => s.key === g.key);
    if (recorded) {
      problems.push(
        `${at}key ${g.key} of task ${taskName} is recorded as inserted already (Id ${recorded.salesforce_id} in roundtrip.sync_state${recorded.run_id ? `, by run ${recorded.run_id}` : ''}): it is not held back, and there is nothing to record`,
      );
      continue;
    }
    if (g.id !== null) {
      const holder = synced.find((s) => s.salesforce_id === g.id);
      if (holder) {
        problems.push(
          `${at}Id ${g.id} is recorded for key ${holder.key} of task ${taskName} already (roundtrip.sync_state): one record has one key; check the Id`,
        );
        continue;
      }
      if (prefix && !g.id.startsWith(prefix.prefix)) {
        problems.push(
          `${at}Id ${g.id} is not a record of ${prefix.object ?? task.object ?? "the task's object"}: the Ids of the records task ${taskName} inserted start with ${prefix.prefix}, this one with ${g.id.slice(0, 3)}`,
        );
        continue;
      }
    }
    const sends = byKey.get(g.key) ?? [];
    const [row] = sends;
    if (!row) {
      const like = otherCase.get(g.key.toLowerCase()) ?? [];
      const meant =
        like.length > 0
          ? `; did you mean ${like.map((k) => `"${k}"`).join(' or ')}? Keys are matched as the task's keyColumn held them, letter case included`
          : '';
      problems.push(
        `${at}key ${g.key} is not held back with an unknown outcome in task ${taskName} (no run sent it for insert without recording the outcome)${meant}: roundtrip errors ${shellOption('--task', taskName)}${commandOptions} --code INSERT_OUTCOME_UNKNOWN lists the keys the latest run held back`,
      );
      continue;
    }
    if (sends.length > 1) {
      problems.push(
        `${at}key ${g.key} was sent for insert without a recorded outcome by ${sends.length} runs (${sends.map((s) => s.run_id).join(', ')}): each may have created a record of its own, and which send one outcome belongs to cannot be told from the key, so none is recorded (not expected: a plan does not send a key while a send of it has no outcome)`,
      );
      continue;
    }
    if (row.run_status === 'running') {
      problems.push(
        `${at}key ${g.key} was sent by run ${row.run_id}, which is still recorded as running (roundtrip status): its push may still record the outcome; resolve the key once that run has ended (if its process is gone, roundtrip status --end-run ${row.run_id}${commandOptions} ends it)`,
      );
      continue;
    }
    // A plan resolves these itself; of a task the config no longer names, once it is named again.
    const notNamed = task.config
      ? ''
      : `; the config no longer names task ${taskName}: name it again as it was (${asItWas(task)}) and run the pipeline, whose plan does it`;
    if (row.form === 'sent' && row.how === 'job') {
      // Never recorded by hand, --without-look-up or not: the job may still be running, and
      // create the record after someone found none. Its results tell once it has finished.
      problems.push(
        `${at}${jobNotFinished(g.key, row, jobs?.get(row.job_id ?? '') ?? asked.notAsked, taskName, notNamed)}`,
      );
      continue;
    }
    // A keyed task's key sent by a call, or in a job Salesforce no longer answers for, is looked
    // up by the next plan (reconcile.ts, resolveLocked): a look-up finds what a person would, so
    // it is recorded by hand only when the person says no plan can look it up (withoutLookUp).
    if (row.form === 'sent' && row.how !== 'job' && task.key !== undefined && !withoutLookUp) {
      const sent =
        row.how === 'gone'
          ? `in Bulk job ${row.job_id ?? ''}, which Salesforce no longer answers for`
          : 'in a Collections call';
      problems.push(
        `${at}key ${g.key} was sent by run ${row.run_id} ${sent}: once ${settleMinutes} minutes have passed since the send, the next plan of the task looks the key up by ${task.key} and records its outcome itself${await whyNoLookUp()}`,
      );
      continue;
    }
    // A Collections call may create the record for up to 10 minutes after it was sent; a Bulk job
    // Salesforce no longer knows has long finished (it keeps jobs for days).
    if (g.id === null && row.how === 'call' && row.age_ms !== null && row.age_ms < INSERT_SETTLE_MS) {
      const waitMinutes = Math.ceil((INSERT_SETTLE_MS - row.age_ms) / 60_000);
      problems.push(
        `${at}key ${g.key} was sent by run ${row.run_id} in a Collections call less than ${settleMinutes} minutes ago: Salesforce may still be running the call that carries it (a call runs for up to 10 minutes) and create the record; look again in ${waitMinutes} minute${waitMinutes === 1 ? '' : 's'}`,
      );
      continue;
    }
    found.push({
      key: g.key,
      runId: row.run_id,
      sentBy: sentByOf(row),
      outcome: g.id === null ? 'not-inserted' : 'inserted',
      salesforceId: g.id,
      row,
    });
  }
  return problems.length > 0 ? { problems } : { found, fromJobs };
}

/** Why the Bulk jobs of the keys given were not asked about: a dry run asks nothing; no Salesforce to ask. */
type NotAsked = 'dry-run' | 'no-salesforce';

/**
 * The refusal of a key in a Bulk job that its run never collected and that is not collected yet:
 * still running in Salesforce as this command found it (`job`), or not asked about (a dry run, or
 * no Salesforce in the deps). Either way its results will tell: the way out is to let them.
 */
function jobNotFinished(
  key: string,
  row: UnknownRow,
  job: JobOfKey | NotAsked,
  taskName: string,
  notNamed: string,
): string {
  const head = `key ${key} was sent by run ${row.run_id} in Bulk job ${row.job_id ?? ''}, which that run never collected`;
  if (job === 'no-salesforce') {
    return `${head}: its results tell the key's outcome, and this command asks Salesforce about the job with the config's Salesforce secret, which the config of this pipeline does not name (salesforce.secret): run it with the pipeline's own --config and --secrets, or let the next plan of the task collect the job${notNamed}`;
  }
  if (job !== 'dry-run' && job.unread !== undefined) {
    return `${head}, and which is left as recorded (${job.state} in roundtrip.writeback_jobs): ${job.unread}. Nothing is recorded for the key: once Salesforce answers for the job, run this command again`;
  }
  if (job !== 'dry-run') {
    return `${head}, and which has not finished (${job.state} in roundtrip.writeback_jobs, as Salesforce last answered, or as recorded when it could not be asked): it may still create the record, so nothing is recorded for the key; run this command again once the job has finished: it then collects the job and records the key's outcome from its results (as the next plan of task ${taskName} does)`;
  }
  return `${head}: its results tell the key's outcome; run this command without --dry-run (it asks Salesforce about the job with the config's Salesforce secret, and collects it once finished, recording each key's outcome from its results), or let the next plan of the task do it${notNamed}`;
}

/** Writes the outcomes, run by run, and counts each run's figures again. */
async function recordFound(
  client: PoolClient,
  taskName: string,
  found: readonly FoundSend[],
  now: Date,
): Promise<void> {
  const message = `sent for insert by this run, whose result was never recorded; recorded as not inserted by hand (${RESOLVED_BY_HAND}, ${now.toISOString()}): no record of it is in Salesforce, and the key is free to insert again`;
  const runs = [...new Set(found.map((f) => f.runId))].sort();
  for (const runId of runs) {
    const ofRun = found.filter((f) => f.runId === runId);
    const created: { seq: number; id: string }[] = [];
    const released: SentInsertRow[] = [];
    for (const f of ofRun) {
      const row = f.row.form === 'reported' ? await reopenReported(client, taskName, f, now, message) : f.row;
      if (!row?.seq || !row.sent_at) continue;
      if (f.salesforceId !== null) created.push({ seq: Number(row.seq), id: f.salesforceId });
      else released.push({ seq: Number(row.seq), sentAt: row.sent_at });
    }
    await recordInsertsCreated(client, runId, taskName, created, now);
    await releaseInserts(client, runId, taskName, released, message);
    await refreshEndedRunIn(client, runId, taskName, RESOLVED_BY_HAND);
  }
}

/**
 * A key reported `INSERT_OUTCOME_UNKNOWN` by its run's push: its error is the send's only mark
 * left with the ledger row `failed`. The row is made `sent` again, as it was before the push
 * reported it, and the error deleted, so that the outcome is recorded as for any row left `sent`
 * (answered). A run whose details were pruned keeps the error only: the key is recorded in
 * `sync_state` from the error's values (inserted; an insert's plan asks only whether the key has
 * an Id there), or its error becomes `NOT_INSERTED` (then deleted with the run's resolved
 * details, refreshEndedRunIn): answered undefined. That run's figures, stored when it was
 * pruned, count the key written or failed from then on, no longer outcome unknown.
 */
async function reopenReported(
  client: PoolClient,
  taskName: string,
  f: FoundSend,
  now: Date,
  message: string,
): Promise<UnknownRow | undefined> {
  if (f.row.seq !== null) {
    await client.query(`DELETE FROM roundtrip.writeback_errors WHERE id = $1`, [f.row.error_id]);
    const { rows } = await client.query<{ sent_at: string }>(
      `UPDATE roundtrip.writeback_plans SET status = 'sent'
        WHERE run_id = $1 AND task = $2 AND seq = $3 AND status = 'failed'
        RETURNING ${exactTimestampTextSql('updated_at')} AS sent_at`,
      [f.runId, taskName, f.row.seq],
    );
    return { ...f.row, sent_at: rows[0]?.sent_at ?? null };
  }
  if (f.salesforceId !== null) {
    await client.query(
      `WITH reported AS (DELETE FROM roundtrip.writeback_errors WHERE id = $1 RETURNING payload)
       INSERT INTO roundtrip.sync_state AS s (task, key, salesforce_id, value_hash, synced_values, synced_at, run_id)
       SELECT $2, $3, $4, coalesce(md5(payload::text), $7), payload, $5, $6 FROM reported
       ON CONFLICT (task, key) DO UPDATE
          SET salesforce_id = EXCLUDED.salesforce_id, value_hash = EXCLUDED.value_hash,
              synced_values = EXCLUDED.synced_values, synced_at = EXCLUDED.synced_at, run_id = EXCLUDED.run_id`,
      [f.row.error_id, taskName, f.key, f.salesforceId, now, f.runId, UNKNOWN_VALUE_HASH],
    );
    // The run's figures, stored when it was pruned, counted the key's outcome unknown: it was
    // written (its outcomeUnknown is counted again from the errors left, refreshEndedRunIn).
    await addToPrunedFigures(client, f.runId, taskName, 'written');
  } else {
    await client.query(
      `UPDATE roundtrip.writeback_errors SET code = 'NOT_INSERTED', message = $2 WHERE id = $1`,
      [f.row.error_id, message],
    );
    // Not inserted: failed, as an unpruned run's ledger row counts it (the error is deleted with
    // the run's resolved details).
    await addToPrunedFigures(client, f.runId, taskName, 'failed');
  }
  return undefined;
}

/** Adds one to a pruned run's stored figure `figure` of the task, when it has figures. */
async function addToPrunedFigures(
  client: PoolClient,
  runId: string,
  taskName: string,
  figure: 'written' | 'failed',
): Promise<void> {
  const { rows } = await client.query<{ figures: Record<string, unknown> | null }>(
    `SELECT summary->'writeback'->$2 AS figures FROM roundtrip.runs WHERE run_id = $1 FOR UPDATE`,
    [runId, taskName],
  );
  const stored = rows[0]?.figures;
  if (stored && 'outcomeUnknown' in stored) {
    await mergeRunSummary(client, runId, ['writeback', taskName], {
      [figure]: storedCount(stored[figure]) + 1,
    });
  }
}
