/**
 * The few statements the steps run on the run's own state and on loaded tables that the
 * PostgreSQL connector does not offer (yet): the `roundtrip.runs` row, the pipeline's claim on
 * its task names (`roundtrip.task_owners`) and its extract tables (`roundtrip.table_owners`), the per-task results in its summary, the checkpoint
 * of a Bulk query job (`roundtrip.extract_jobs`), the target's current columns, the newest change
 * in staging, and the removal of rows a full read no longer returned. Each takes the client of
 * the step's transaction.
 */
import type { ClientBase } from 'pg';
import {
  quoteIdent,
  quoteQualified,
  readWatermark,
  type ExtractWatermark,
  type PgColumn,
} from '../connectors/postgres';
import { TerminalError } from '../shared/errors';
import type { PipelineConfig } from '../config';
import { splitTableName, type RunProcess, type RunProcesses } from './deps';
import { extractConfigPath } from './salesforce-read';
import { countUnreportedFigures, sqlLiteral } from './writeback/state';

/** The `roundtrip.runs` row as Prepare records it. */
export interface RecordedRun {
  readonly runId: string;
  readonly pipeline: string;
  readonly startedAt: Date;
  readonly status: string;
  /** Why the run failed or was skipped, when it already ended; null otherwise. */
  readonly error: string | null;
  /** False when the row already existed (a retried Prepare). */
  readonly created: boolean;
}

/**
 * Inserts the run's row, or finds the one a previous attempt of the same Prepare inserted
 * (idempotent on the run id). A run id already used by another pipeline is a TerminalError.
 */
export async function recordRun(
  client: ClientBase,
  run: {
    runId: string;
    pipeline: string;
    dryRun: boolean;
    input: unknown;
    executionArn: string | undefined;
    startedAt: Date;
    /** The machine and process it runs in (a local run), or undefined (in AWS). */
    process?: RunProcess | undefined;
  },
): Promise<RecordedRun> {
  const inserted = await client.query<{ started_at: Date; status: string }>(
    `INSERT INTO roundtrip.runs (run_id, pipeline, status, dry_run, input, execution_arn, started_at, host, host_id, pid)
     VALUES ($1, $2, 'running', $3, $4::jsonb, $5, $6, $7, $8, $9)
     ON CONFLICT (run_id) DO NOTHING
     RETURNING started_at, status`,
    [
      run.runId,
      run.pipeline,
      run.dryRun,
      JSON.stringify(run.input ?? {}),
      run.executionArn ?? null,
      run.startedAt,
      run.process?.host ?? null,
      run.process?.hostId ?? null,
      run.process?.pid ?? null,
    ],
  );
  if (inserted.rows[0]) {
    return {
      runId: run.runId,
      pipeline: run.pipeline,
      startedAt: inserted.rows[0].started_at,
      status: 'running',
      error: null,
      created: true,
    };
  }
  const existing = await client.query<{
    pipeline: string;
    started_at: Date;
    status: string;
    error: string | null;
  }>('SELECT pipeline, started_at, status, error FROM roundtrip.runs WHERE run_id = $1', [run.runId]);
  const row = existing.rows[0];
  if (!row) throw new TerminalError(`Run ${run.runId} was neither inserted nor found in roundtrip.runs`);
  if (row.pipeline !== run.pipeline) {
    throw new TerminalError(
      `Run id ${run.runId} is already used by pipeline "${row.pipeline}", not "${run.pipeline}": start the run with another id`,
    );
  }
  return {
    runId: run.runId,
    pipeline: row.pipeline,
    startedAt: row.started_at,
    status: row.status,
    error: row.error,
    created: false,
  };
}

/** A task name that another pipeline holds in `roundtrip.task_owners`. */
export interface TaskNameOwner {
  readonly task: string;
  readonly pipeline: string;
  readonly claimedAt: Date;
}

/**
 * The names among `tasks` that a pipeline other than `pipeline` holds in `roundtrip.task_owners`,
 * by name. Reads only: empty when the table does not exist (a state schema before version 7, or
 * a database no run has migrated yet).
 */
export async function taskNamesOwnedElsewhere(
  client: ClientBase,
  pipeline: string,
  tasks: readonly string[],
): Promise<TaskNameOwner[]> {
  const exists = await client.query<{ exists: boolean }>(
    `SELECT to_regclass('roundtrip.task_owners') IS NOT NULL AS exists`,
  );
  if (!exists.rows[0]?.exists || tasks.length === 0) return [];
  const { rows } = await client.query<{ task: string; pipeline: string; claimed_at: Date }>(
    `SELECT task, pipeline, claimed_at FROM roundtrip.task_owners
      WHERE task = ANY($1::text[]) AND pipeline <> $2 ORDER BY task`,
    [[...tasks], pipeline],
  );
  return rows.map((r) => ({ task: r.task, pipeline: r.pipeline, claimedAt: r.claimed_at }));
}

/**
 * Claims `tasks` for `pipeline`: names nobody holds become its own (the first pipeline to use a
 * name in the database gets it), and the names another pipeline holds come back. Run it in a
 * transaction and roll back when any come back, so that a refused run claims nothing. A claim
 * another pipeline's Prepare has not committed yet is waited for, then seen. Names are inserted
 * in one order, so two Prepares claiming overlapping names never deadlock.
 */
export async function claimTaskNames(
  client: ClientBase,
  pipeline: string,
  runId: string,
  tasks: readonly string[],
): Promise<TaskNameOwner[]> {
  const names = [...new Set(tasks)].sort();
  if (names.length === 0) return [];
  await client.query(
    `INSERT INTO roundtrip.task_owners (task, pipeline, run_id)
     SELECT u.task, $2, $3 FROM unnest($1::text[]) WITH ORDINALITY AS u (task, n) ORDER BY u.n
     ON CONFLICT (task) DO NOTHING`,
    [names, pipeline, runId],
  );
  return taskNamesOwnedElsewhere(client, pipeline, names);
}

/**
 * Why `pipeline` cannot use task names other pipelines hold, and the two ways out: a distinct
 * task name, or releasing the names of a pipeline that was renamed or removed.
 */
export function taskNameConflictMessage(pipeline: string, owners: readonly TaskNameOwner[]): string {
  const one = owners.length === 1;
  const held = owners
    .map((o) => `"${o.task}" (used by pipeline "${o.pipeline}" since ${o.claimedAt.toISOString()})`)
    .join(', ');
  const others = [...new Set(owners.map((o) => o.pipeline))];
  const quoted = others.map((p) => `'${p.replace(/'/g, "''")}'`);
  return (
    `Pipeline "${pipeline}" cannot use task name${one ? '' : 's'} ${held}: in one PostgreSQL database a task name ` +
    `belongs to one pipeline, because roundtrip keeps a task's state (its watermark, Bulk job checkpoints, ` +
    `write-back sync state) by name, and two pipelines sharing it would each skip rows the other read. ` +
    `Give ${one ? 'the task' : 'each of these tasks'} a distinct \`name\` in one of the configs (or, if ` +
    `${others.map((p) => `pipeline "${p}"`).join(', ')} was renamed or removed, release its names: ` +
    `DELETE FROM roundtrip.task_owners WHERE pipeline ${quoted.length === 1 ? `= ${quoted[0]}` : `IN (${quoted.join(', ')})`})`
  );
}

/** An extract task's table, as {@link claimExtractTables} checks it. */
export interface ExtractTableClaim {
  readonly task: string;
  /** The config path of the task's table (`extract[1].table`), for the refusal. */
  readonly configPath: string;
  readonly schema: string;
  readonly table: string;
  /** The load replaces every row (a keyless Athena query); else it merges rows by key. */
  readonly replaces: boolean;
}

/** The tables of `config`'s extract tasks named in `tasks` (all of them when undefined), to claim. */
export function extractTableClaims(
  config: Pick<PipelineConfig, 'extract' | 'postgres'>,
  tasks?: readonly string[],
): ExtractTableClaim[] {
  return config.extract.flatMap((task) =>
    tasks !== undefined && !tasks.includes(task.name)
      ? []
      : [
          {
            task: task.name,
            configPath: `${extractConfigPath(config, task)}.table`,
            ...splitTableName(task.table, config.postgres.schema),
            replaces: task.from === 'athena' && (task.key ?? []).length === 0,
          },
        ],
  );
}

/** Why a pipeline may not load an extract table ({@link extractTableProblems}). */
export type ExtractTableProblem =
  | {
      readonly kind: 'other-pipeline';
      readonly claim: ExtractTableClaim;
      readonly pipeline: string;
      readonly task: string;
      readonly claimedAt: Date;
    }
  | { readonly kind: 'not-roundtrips'; readonly claim: ExtractTableClaim; readonly why: string };

/**
 * Why `pipeline` may not load each table of `claims` (reads only): one another pipeline holds in
 * `roundtrip.table_owners`, or one nobody holds that exists and is not the pipeline's to load: a
 * table that holds rows, which no run of the pipeline loaded through the task (its watermark in
 * `extract_state`, or its figures in a run's summary: tables loaded before version 14 are claimed
 * by their next run), or a relation that is not a table, or one roundtrip's role cannot read. A
 * table that does not exist, or has no row, is the pipeline's to make or fill: nothing in it is lost.
 */
export async function extractTableProblems(
  client: ClientBase,
  pipeline: string,
  claims: readonly ExtractTableClaim[],
): Promise<ExtractTableProblem[]> {
  if (claims.length === 0) return [];
  const { rows: present } = await client.query<{ owners: boolean; state: boolean; runs: boolean }>(
    `SELECT to_regclass('roundtrip.table_owners') IS NOT NULL AS owners,
            to_regclass('roundtrip.extract_state') IS NOT NULL AS state,
            to_regclass('roundtrip.runs') IS NOT NULL AS runs`,
  );
  const has = present[0] ?? { owners: false, state: false, runs: false };
  // Each table's owner and what the catalog has under its name, in one query.
  const { rows: found } = await client.query<{
    n: string;
    pipeline: string | null;
    task: string | null;
    claimed_at: Date | null;
    kind: string | null;
    readable: boolean | null;
  }>(
    `SELECT u.n, ${has.owners ? 'o.pipeline, o.task, o.claimed_at' : 'NULL AS pipeline, NULL AS task, NULL::timestamptz AS claimed_at'},
            c.relkind::text AS kind, CASE WHEN c.oid IS NOT NULL THEN has_table_privilege(c.oid, 'SELECT') END AS readable
       FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u (s, t, n)
       ${has.owners ? 'LEFT JOIN roundtrip.table_owners o ON o.schema_name = u.s AND o.table_name = u.t' : ''}
       LEFT JOIN pg_namespace ns ON ns.nspname = u.s
       LEFT JOIN pg_class c ON c.relnamespace = ns.oid AND c.relname = u.t
      ORDER BY u.n`,
    [claims.map((c) => c.schema), claims.map((c) => c.table)],
  );
  const problems: ExtractTableProblem[] = [];
  for (const row of found) {
    const claim = claims[Number(row.n) - 1] as ExtractTableClaim;
    if (row.pipeline !== null) {
      if (row.pipeline !== pipeline) {
        problems.push({
          kind: 'other-pipeline',
          claim,
          pipeline: row.pipeline,
          task: row.task ?? '?',
          claimedAt: row.claimed_at ?? new Date(0),
        });
      }
      continue;
    }
    // Not claimed: a table that does not exist yet is the pipeline's to make.
    if (row.kind === null) continue;
    if (row.kind !== 'r' && row.kind !== 'p') {
      problems.push({
        kind: 'not-roundtrips',
        claim,
        why: 'is not a table (a view, or another kind of relation)',
      });
      continue;
    }
    if (row.readable !== true) {
      problems.push({
        kind: 'not-roundtrips',
        claim,
        why: "is a table roundtrip's database user cannot read",
      });
      continue;
    }
    // An empty table holds nothing to lose; one the pipeline loaded through the task before the
    // claims were kept is its own.
    if (!(await tableHasRows(client, claim.schema, claim.table))) continue;
    const { rows: loaded } = await client.query<{ loaded: boolean }>(
      `SELECT ${
        has.state
          ? `EXISTS (SELECT 1 FROM roundtrip.extract_state e JOIN roundtrip.runs r ON r.run_id = e.last_run_id
                      WHERE e.task = $2 AND r.pipeline = $1)`
          : 'false'
      } OR ${
        has.runs
          ? `EXISTS (SELECT 1 FROM roundtrip.runs r WHERE r.pipeline = $1 AND r.summary -> 'extract' ? $2)`
          : 'false'
      } AS loaded`,
      [pipeline, claim.task],
    );
    if (loaded[0]?.loaded) continue;
    problems.push({
      kind: 'not-roundtrips',
      claim,
      why: 'exists, holds rows, and no run of this pipeline loaded it',
    });
  }
  return problems;
}

/**
 * Claims the tables of `claims` for `pipeline` (Prepare, in the transaction that claims its task
 * names): refuses, with the problems of {@link extractTableProblems}, unless there is none; then
 * each table nobody holds becomes the pipeline's, and the task that loads a table of its own is
 * recorded (a task renamed keeps its table). A claim another pipeline's Prepare has not committed
 * yet is waited for, then seen. Run it in a transaction, rolled back when problems come back.
 */
export async function claimExtractTables(
  client: ClientBase,
  pipeline: string,
  runId: string,
  claims: readonly ExtractTableClaim[],
): Promise<ExtractTableProblem[]> {
  if (claims.length === 0) return [];
  const sorted = [...claims].sort((a, b) =>
    a.schema === b.schema ? (a.table < b.table ? -1 : 1) : a.schema < b.schema ? -1 : 1,
  );
  const problems = await extractTableProblems(client, pipeline, sorted);
  if (problems.length > 0) return problems;
  await client.query(
    `INSERT INTO roundtrip.table_owners (schema_name, table_name, pipeline, task, run_id)
     SELECT u.s, u.t, $4, u.task, $5 FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u (s, t, task, n)
      ORDER BY u.n
     ON CONFLICT (schema_name, table_name) DO UPDATE SET task = EXCLUDED.task
      WHERE roundtrip.table_owners.pipeline = EXCLUDED.pipeline AND roundtrip.table_owners.task <> EXCLUDED.task`,
    [sorted.map((c) => c.schema), sorted.map((c) => c.table), sorted.map((c) => c.task), pipeline, runId],
  );
  // Claimed by another pipeline between the check and the insert (its Prepare committed first):
  // its claim, waited for, is now seen.
  const { rows } = await client.query<{ n: string; pipeline: string; task: string; claimed_at: Date }>(
    `SELECT u.n, o.pipeline, o.task, o.claimed_at
       FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u (s, t, n)
       JOIN roundtrip.table_owners o ON o.schema_name = u.s AND o.table_name = u.t
      WHERE o.pipeline <> $3 ORDER BY u.n`,
    [sorted.map((c) => c.schema), sorted.map((c) => c.table), pipeline],
  );
  return rows.map((r) => ({
    kind: 'other-pipeline' as const,
    claim: sorted[Number(r.n) - 1] as ExtractTableClaim,
    pipeline: r.pipeline,
    task: r.task,
    claimedAt: r.claimed_at,
  }));
}

/**
 * Why `pipeline` cannot load the tables of `problems`, and the way out of each: a table of the
 * task's own (nothing was read or written), or, for a table made for the task by hand, claiming it.
 */
export function extractTableConflictMessage(
  pipeline: string,
  problems: readonly ExtractTableProblem[],
): string {
  const each = problems.map((p) => {
    const { claim } = p;
    const table = `${claim.schema}.${claim.table}`;
    const load = claim.replaces
      ? 'its load replaces every row of the table'
      : 'its load merges rows into the table by key (and adds columns to it)';
    if (p.kind === 'other-pipeline') {
      return (
        `extract task ${claim.task} (${claim.configPath}): table ${table} is loaded by task ${p.task} of pipeline "${p.pipeline}" ` +
        `(since ${p.claimedAt.toISOString()}), and ${load}: the two pipelines would overwrite each other's rows. Name ` +
        `a table of its own in ${claim.configPath} (or, if pipeline "${p.pipeline}" was renamed or removed, release ` +
        `its tables: DELETE FROM roundtrip.table_owners WHERE pipeline = ${sqlLiteral(p.pipeline)})`
      );
    }
    return (
      `extract task ${claim.task} (${claim.configPath}): table ${table} ${p.why}, and ${load}: it would change data ` +
      `roundtrip does not own. Name a table of its own in ${claim.configPath}, or, if this table was made for the ` +
      `task, claim it for the pipeline first: INSERT INTO roundtrip.table_owners (schema_name, table_name, pipeline, ` +
      `task) VALUES (${[claim.schema, claim.table, pipeline, claim.task].map(sqlLiteral).join(', ')})`
    );
  });
  return `Pipeline "${pipeline}" cannot load ${problems.length === 1 ? 'this table' : 'these tables'}; nothing was read or written: ${each.join('; ')}`;
}

/**
 * Marks that a step of the run starts now (`last_step_at`): how a later run tells a run still
 * going from one that died without a report (lambdas/core/prepare.ts). Only a `running` run.
 */
export async function markStepStarted(client: ClientBase, runId: string, at: Date): Promise<void> {
  await client.query(`UPDATE roundtrip.runs SET last_step_at = $2 WHERE run_id = $1 AND status = 'running'`, [
    runId,
    at,
  ]);
}

/**
 * Ends a run that is still `running` as `failed` or `skipped`, finished `at`, with `error` saying
 * why (a run that already ended keeps its outcome). Whether it was running. The figures of the
 * write-back tasks it planned, which its report never counted, are counted from its ledger
 * (writeback/state.ts `countUnreportedFigures`): in the caller's transaction, when it has one.
 */
export async function endRunningRun(
  client: ClientBase,
  runId: string,
  status: 'failed' | 'skipped',
  at: Date,
  error: string,
): Promise<boolean> {
  const { rowCount } = await client.query(
    `UPDATE roundtrip.runs SET status = $2, finished_at = $3, error = $4 WHERE run_id = $1 AND status = 'running'`,
    [runId, status, at, error],
  );
  if (rowCount !== 1) return false;
  await countUnreportedFigures(client, runId);
  return true;
}

/** A run closed by {@link closeRunsWhoseProcessIsGone}. */
export interface RunWhoseProcessIsGone {
  readonly runId: string;
  readonly pipeline: string;
  readonly host: string;
  readonly pid: number;
  /** Why it was closed, as its `error` now says. */
  readonly error: string;
}

/** The `error` of a run closed because its process is gone (pid `pid` of machine `host`). */
export function processGoneError(host: string, pid: number, closedBy: string): string {
  return (
    `Its process is gone: pid ${pid} on ${host} no longer runs (killed, crashed, or its terminal closed) ` +
    `and the run never reported; closed as failed by ${closedBy}`
  );
}

/**
 * Closes as `failed` the runs still `running` (of `pipeline`, or of any pipeline when undefined)
 * that were recorded on this machine — the same boot and pid namespace, `processes.self.hostId` —
 * by a process that no longer runs: a `roundtrip run` killed with SIGKILL, or that crashed, which
 * nothing else would close for 13 hours (closeAbandonedRuns), while it holds back every key it
 * sent. A run whose process still runs, or that was recorded elsewhere, is left alone: a process
 * id is checked only where it means the same process. `closedBy` names who closed it (a run, a
 * command). Answers the runs closed. Nothing (and no error) on a state schema before version 12.
 */
export async function closeRunsWhoseProcessIsGone(
  client: ClientBase,
  pipeline: string | undefined,
  processes: RunProcesses,
  closedBy: string,
  at: Date,
): Promise<RunWhoseProcessIsGone[]> {
  let rows: { run_id: string; pipeline: string; host: string | null; pid: number }[];
  try {
    ({ rows } = await client.query(
      `SELECT run_id, pipeline, host, pid FROM roundtrip.runs
        WHERE status = 'running' AND host_id = $1 AND pid IS NOT NULL AND ($2::text IS NULL OR pipeline = $2)
        ORDER BY started_at, run_id`,
      [processes.self.hostId, pipeline ?? null],
    ));
  } catch (err) {
    // No roundtrip.runs yet (42P01), or one without the columns of version 12 (42703).
    const code = (err as { code?: unknown }).code;
    if (code === '42P01' || code === '42703') return [];
    throw err;
  }
  const closed: RunWhoseProcessIsGone[] = [];
  for (const row of rows) {
    if (row.pid === processes.self.pid || processes.isRunning(row.pid)) continue;
    const host = row.host ?? processes.self.host;
    const error = processGoneError(host, row.pid, closedBy);
    if (await endRunningRun(client, row.run_id, 'failed', at, error)) {
      closed.push({ runId: row.run_id, pipeline: row.pipeline, host, pid: row.pid, error });
    }
  }
  return closed;
}

/** A run of the pipeline other than the caller's that is still `running`. */
export interface RunningRun {
  readonly runId: string;
  readonly startedAt: Date;
  /** When its latest step started (its start when no step has yet). */
  readonly lastStepAt: Date;
  readonly executionArn: string | null;
}

/**
 * The pipeline's other runs still `running` that started after `since` (older ones are closed by
 * the Report as abandoned). Oldest first.
 */
export async function otherRunningRuns(
  client: ClientBase,
  pipeline: string,
  runId: string,
  since: Date,
): Promise<RunningRun[]> {
  const { rows } = await client.query<{
    run_id: string;
    started_at: Date;
    last_step_at: Date;
    execution_arn: string | null;
  }>(
    `SELECT run_id, started_at, greatest(started_at, last_step_at) AS last_step_at, execution_arn
       FROM roundtrip.runs
      WHERE pipeline = $1 AND status = 'running' AND run_id <> $2 AND started_at > $3
      ORDER BY started_at, run_id`,
    [pipeline, runId, since],
  );
  return rows.map((r) => ({
    runId: r.run_id,
    startedAt: r.started_at,
    lastStepAt: r.last_step_at,
    executionArn: r.execution_arn,
  }));
}

/**
 * Stores one task's result under `summary.extract.<task>` of the run's row (replacing what an
 * earlier attempt of the same step stored). Throws when the run was never prepared.
 */
export async function recordTaskResult(
  client: ClientBase,
  runId: string,
  task: string,
  result: Record<string, unknown>,
): Promise<void> {
  const { rowCount } = await client.query(
    `UPDATE roundtrip.runs
        SET summary = coalesce(summary, '{}'::jsonb)
            || jsonb_build_object('extract', coalesce(summary -> 'extract', '{}'::jsonb) || jsonb_build_object($2::text, $3::jsonb))
      WHERE run_id = $1`,
    [runId, task, JSON.stringify(result)],
  );
  if (!rowCount) {
    throw new TerminalError(
      `Run ${runId} is not recorded in roundtrip.runs: a run starts with the Prepare step`,
    );
  }
}

/** The Bulk query job checkpointed for a run's extract task (`roundtrip.extract_jobs`). */
export interface ExtractJobCheckpoint {
  readonly jobId: string;
  /** The SOQL the job runs, and whether through `queryAll`. */
  readonly soql: string;
  readonly includeDeleted: boolean;
  /** Whether the read is a full one (the extract's `full`). */
  readonly full: boolean;
  /** The `COUNT()` taken before the job was created. */
  readonly expectedRows: number;
  /**
   * The columns the job's results load into, typed from the describe read before it was created
   * (its SOQL's fields, in order): the check step loads with them, without describing again.
   * Undefined for a job checkpointed by a version that did not store them.
   */
  readonly columns: readonly PgColumn[] | undefined;
  readonly createdAt: Date;
  /** When the job's results were loaded (in the load's transaction); undefined until then. */
  readonly loadedAt: Date | undefined;
}

/** The job checkpointed for this run and task, or undefined when there is none. */
export async function readExtractJob(
  client: ClientBase,
  runId: string,
  task: string,
): Promise<ExtractJobCheckpoint | undefined> {
  const { rows } = await client.query<{
    job_id: string;
    soql: string;
    include_deleted: boolean;
    full_read: boolean;
    expected_rows: string;
    columns: unknown;
    created_at: Date;
    loaded_at: Date | null;
  }>(
    // `columns` read through the row's JSON: NULL, not an error, in a schema before version 15 (a
    // run Prepare started, and migrated, before a deploy of this version).
    `SELECT job_id, soql, include_deleted, full_read, expected_rows, to_jsonb(j) -> 'columns' AS columns,
            created_at, loaded_at
       FROM roundtrip.extract_jobs AS j WHERE run_id = $1 AND task = $2`,
    [runId, task],
  );
  const row = rows[0];
  if (!row) return undefined;
  return {
    jobId: row.job_id,
    soql: row.soql,
    includeDeleted: row.include_deleted,
    full: row.full_read,
    expectedRows: Number(row.expected_rows),
    columns: checkpointedColumns(row.columns),
    createdAt: row.created_at,
    loadedAt: row.loaded_at ?? undefined,
  };
}

/**
 * The columns stored with a checkpoint, or undefined when there are none or they are not a list of
 * `{name, pgType, nullable}` (then the check step describes the object, as before they were stored).
 */
function checkpointedColumns(value: unknown): PgColumn[] | undefined {
  if (!Array.isArray(value) || value.length === 0) return undefined;
  const columns: PgColumn[] = [];
  for (const c of value as unknown[]) {
    const { name, pgType, nullable } = (c ?? {}) as Record<string, unknown>;
    if (typeof name !== 'string' || typeof pgType !== 'string' || typeof nullable !== 'boolean')
      return undefined;
    columns.push({ name, pgType, nullable });
  }
  return columns;
}

/**
 * Checkpoints the Bulk query job of a run's extract task (replacing the one an earlier attempt
 * checkpointed, when that one asked for something else or was loaded already). Throws when the
 * run was never prepared.
 */
export async function checkpointExtractJob(
  client: ClientBase,
  job: {
    runId: string;
    task: string;
    jobId: string;
    soql: string;
    includeDeleted: boolean;
    full: boolean;
    expectedRows: number;
    /** The columns its results load into ({@link ExtractJobCheckpoint.columns}). */
    columns: readonly PgColumn[];
  },
): Promise<void> {
  const columns = job.columns.map(({ name, pgType, nullable }) => ({ name, pgType, nullable }));
  const params = [job.runId, job.task, job.jobId, job.soql, job.includeDeleted, job.full, job.expectedRows];
  const upsert = (withColumns: boolean): Promise<{ rowCount: number | null }> =>
    client.query(
      `INSERT INTO roundtrip.extract_jobs (run_id, task, job_id, soql, include_deleted, full_read, expected_rows${withColumns ? ', columns' : ''})
       SELECT run_id, $2, $3, $4, $5, $6, $7${withColumns ? ', $8::jsonb' : ''} FROM roundtrip.runs WHERE run_id = $1
       ON CONFLICT (run_id, task) DO UPDATE
          SET job_id = EXCLUDED.job_id, soql = EXCLUDED.soql, include_deleted = EXCLUDED.include_deleted,
              full_read = EXCLUDED.full_read, expected_rows = EXCLUDED.expected_rows,${withColumns ? ' columns = EXCLUDED.columns,' : ''}
              created_at = now(), loaded_at = NULL`,
      withColumns ? [...params, JSON.stringify(columns)] : params,
    );
  let rowCount: number | null;
  try {
    ({ rowCount } = await upsert(true));
  } catch (err) {
    // A schema before version 15 (this run's Prepare migrated before a deploy of this version):
    // the job is checkpointed without its columns, and its check describes the object.
    if ((err as { code?: unknown } | null)?.code !== '42703') throw err;
    ({ rowCount } = await upsert(false));
  }
  if (!rowCount) {
    throw new TerminalError(
      `Run ${job.runId} is not recorded in roundtrip.runs: a run starts with the Prepare step`,
    );
  }
}

/**
 * A `COUNT()` of an extract's read taken in a run (`roundtrip.extract_counts`): what was counted
 * (the SOQL, through `queryAll` or not), how many rows, and Salesforce's time of the answer.
 */
export interface ExtractCount {
  readonly soql: string;
  readonly includeDeleted: boolean;
  readonly rows: number;
  readonly countedAt: Date;
}

/**
 * Stores the count a run took for an extract task (replacing an earlier one of the run and task:
 * a retried Prepare counts again, so does an extract whose read differs from the one counted).
 * Nothing is stored for a run not recorded in `roundtrip.runs`.
 */
export async function recordExtractCount(
  client: ClientBase,
  runId: string,
  task: string,
  count: ExtractCount,
): Promise<void> {
  await client.query(
    `INSERT INTO roundtrip.extract_counts (run_id, task, soql, include_deleted, row_count, counted_at)
     SELECT run_id, $2, $3, $4, $5, $6 FROM roundtrip.runs WHERE run_id = $1
     ON CONFLICT (run_id, task) DO UPDATE
        SET soql = EXCLUDED.soql, include_deleted = EXCLUDED.include_deleted,
            row_count = EXCLUDED.row_count, counted_at = EXCLUDED.counted_at`,
    [runId, task, count.soql, count.includeDeleted, count.rows, count.countedAt],
  );
}

/** The count the run took for the task ({@link recordExtractCount}), or undefined. */
export async function readExtractCount(
  client: ClientBase,
  runId: string,
  task: string,
): Promise<ExtractCount | undefined> {
  const { rows } = await client.query<{
    soql: string;
    include_deleted: boolean;
    row_count: string;
    counted_at: Date;
  }>(
    `SELECT soql, include_deleted, row_count, counted_at
       FROM roundtrip.extract_counts WHERE run_id = $1 AND task = $2`,
    [runId, task],
  );
  const row = rows[0];
  if (!row) return undefined;
  return {
    soql: row.soql,
    includeDeleted: row.include_deleted,
    rows: Number(row.row_count),
    countedAt: row.counted_at,
  };
}

/** Marks the run's job of a task as loaded (in the load's transaction): a later start makes a new one. */
export async function markExtractJobLoaded(
  client: ClientBase,
  runId: string,
  task: string,
  jobId: string,
): Promise<void> {
  await client.query(
    `UPDATE roundtrip.extract_jobs SET loaded_at = now() WHERE run_id = $1 AND task = $2 AND job_id = $3`,
    [runId, task, jobId],
  );
}

/**
 * The column names of a table (or view), in their order, or undefined when it does not exist
 * (yet).
 */
export async function tableColumns(
  client: ClientBase,
  schema: string,
  table: string,
): Promise<Set<string> | undefined> {
  const { rows } = await client.query<{ name: string | null }>(
    `SELECT a.attname AS name
       FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      WHERE n.nspname = $1 AND c.relname = $2
      ORDER BY a.attnum`,
    [schema, table],
  );
  if (rows.length === 0) return undefined;
  return new Set(rows.flatMap((r) => (r.name === null ? [] : [r.name])));
}

/**
 * The newest change among the staged rows and the largest Id at it (Ids compared byte-wise,
 * `COLLATE "C"`, as the watermark stores them), or undefined when staging is empty.
 */
export async function newestStagedChange(
  client: ClientBase,
  schema: string,
  staging: string,
  stampColumn: string,
  idColumn: string,
): Promise<{ stamp: Date; id: string } | undefined> {
  const stamp = quoteIdent(stampColumn);
  const id = quoteIdent(idColumn);
  const { rows } = await client.query<{ stamp: Date; id: string }>(
    `SELECT ${stamp} AS stamp, ${id} AS id FROM ${quoteQualified(schema, staging)}
      WHERE ${stamp} IS NOT NULL
      ORDER BY ${stamp} DESC, ${id} COLLATE "C" DESC LIMIT 1`,
  );
  return rows[0];
}

/**
 * After a full read: rows of the target whose key the read did not return. `remove` deletes
 * them; `flag` sets the flag column on those not flagged yet. Returns the rows affected.
 *
 * Rows whose version (`SystemModstamp`) is at or after the read's start are left alone: the
 * read could not return them (a record created after its query started, say), so an overlapping
 * run must have loaded them after this read began, and they are live. Equal counts as after: the
 * start is known to the second (an HTTP `Date` header, rounded down), so a row stamped in that
 * second may have changed after the query's rows were fixed. Keeping such a row wrongly leaves it
 * until the next full read; removing one wrongly loses it. A row without a version is not
 * guarded, nor is any row when the start is unknown (`readStartedAt` undefined).
 */
export async function reconcileMissingRows(
  client: ClientBase,
  options: {
    schema: string;
    target: string;
    staging: string;
    key: string;
    mode: 'remove' | 'flag';
    flagColumn: string;
    /** The column holding each row's last change (`SystemModstamp`). */
    versionColumn: string;
    /** When the read started, on the version column's clock (Salesforce's). */
    readStartedAt: Date | undefined;
  },
): Promise<number> {
  const target = quoteQualified(options.schema, options.target);
  const staging = quoteQualified(options.schema, options.staging);
  const key = quoteIdent(options.key);
  const version = quoteIdent(options.versionColumn);
  const params: unknown[] = [];
  let missing = `NOT EXISTS (SELECT 1 FROM ${staging} AS s WHERE s.${key} = t.${key})`;
  if (options.readStartedAt !== undefined) {
    params.push(options.readStartedAt);
    missing += ` AND (t.${version} IS NULL OR t.${version} < $1)`;
  }
  const flag = quoteIdent(options.flagColumn);
  const sql =
    options.mode === 'remove'
      ? `DELETE FROM ${target} AS t WHERE ${missing}`
      : `UPDATE ${target} AS t SET ${flag} = true WHERE ${flag} IS NOT TRUE AND ${missing}`;
  const { rowCount } = await client.query(sql, params);
  return rowCount ?? 0;
}

/** What a Salesforce extract's read is decided by, as Prepare's forecast and the extract read it. */
export interface ExtractTableState {
  readonly watermark: ExtractWatermark | undefined;
  /** The table's columns ({@link tableColumns}): undefined when it does not exist. */
  readonly columns: ReadonlySet<string> | undefined;
  /**
   * The table exists and is empty although the task's reads loaded rows (its watermark's
   * `rowsTotal`): emptied by hand since (`TRUNCATE`, `DELETE`), to load it again. An incremental
   * read would only put back the rows changed since the watermark, and the table would stay
   * without the others for good: its next read is full, as for a table dropped. One cheap
   * statement (`EXISTS`), only for a table that exists and a task that loaded rows.
   */
  readonly emptied: boolean;
}

/** A Salesforce extract task's watermark and table ({@link ExtractTableState}). */
export async function readExtractTableState(
  client: ClientBase,
  task: string,
  schema: string,
  table: string,
): Promise<ExtractTableState> {
  const watermark = await readWatermark(client, task);
  const columns = await tableColumns(client, schema, table);
  const emptied =
    columns !== undefined && (watermark?.rowsTotal ?? 0) > 0 && !(await tableHasRows(client, schema, table));
  return { watermark, columns, emptied };
}

/** Whether a table holds any row. */
export async function tableHasRows(client: ClientBase, schema: string, table: string): Promise<boolean> {
  const { rows } = await client.query<{ any: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM ${quoteQualified(schema, table)}) AS any`,
  );
  return rows[0]?.any === true;
}

/** Rows of a table whose boolean flag column is true. */
export async function flaggedRowCount(
  client: ClientBase,
  schema: string,
  table: string,
  flagColumn: string,
): Promise<number> {
  const { rows } = await client.query<{ n: string }>(
    `SELECT count(*)::bigint AS n FROM ${quoteQualified(schema, table)} WHERE ${quoteIdent(flagColumn)} IS TRUE`,
  );
  return Number(rows[0]?.n ?? 0);
}
