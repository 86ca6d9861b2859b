/**
 * A run's summary as the CLI prints it (issue 7): one row per task with rows read, planned,
 * written, rejected, held back, superseded (when any), failed and API calls, read back from `roundtrip.runs.summary` — the record
 * the steps themselves keep, so the CLI shows what the pipeline stored, not what it guessed.
 */
import { Client, type Pool } from 'pg';
import { applySessionSettings } from '../../lambdas/connectors/postgres';
import { AthenaDuplicateKeysFound, AthenaKeptPrimaryKey } from '../../lambdas/core/contracts';
import {
  duplicateKeysWarning,
  keptPrimaryKeyWarning,
  queryCountMismatchWarningOf,
} from '../../lambdas/core/load-warnings';
import { endRunningRun } from '../../lambdas/core/run-state';
import { taskName, type PipelineConfig } from '../../lambdas/config';
import { keyNotExtractedNote } from '../../lambdas/core/writeback/plan';
import { tasksNotRunText } from '../../lambdas/core/writeback/report';
import { alignColumns } from './columns';
import { shellOption } from '../../lambdas/shared/shell';
import type { OptionsGiven } from '../cli-common';

/** One task's figures. */
export interface TaskSummary {
  readonly task: string;
  /** `prepare`: the Salesforce calls Prepare made to forecast the run (`/limits`, the counts). */
  readonly kind: 'prepare' | 'extract' | 'transform' | 'writeback';
  readonly rowsRead: number;
  readonly planned: number;
  readonly written: number;
  /** Write-back rows the plan refused for what the source holds. */
  readonly rejected: number;
  /** Write-back rows the plan kept back until an earlier run's send of their key has an outcome. */
  readonly heldBack: number;
  /**
   * Write-back records the push did not send because a run that planned later had synced their
   * key (Salesforce holds newer values): neither written nor failed.
   */
  readonly superseded: number;
  readonly failed: number;
  /**
   * Write-back records sent whose outcome is unknown (`summary.writeback.<task>.outcomeUnknown`):
   * Salesforce's answer was lost, and nothing recorded whether it took them; not failed. Absent
   * when none.
   */
  readonly outcomeUnknown?: number;
  /** Salesforce API calls; an Athena extract's ({@link athena}) are Athena's and S3's. */
  readonly apiCalls: number;
  /**
   * An Athena extract (its figures count `s3Reads`): its `apiCalls` are Athena's and S3's, which
   * the org's allowance and `budget.maxApiCallsPerRun` do not count. Absent for every other task.
   */
  readonly athena?: true;
  /**
   * A task the run recorded figures for that the config passed no longer names (renamed or
   * removed since): its figures are the run's all the same. Absent for a task the config names.
   */
  readonly notInConfig?: true;
  /**
   * A write-back task stopped by a step's error (`summary.writeback.<task>.error`): the tasks
   * after it ran, and the run failed. Absent for a task that ran to its end.
   */
  readonly error?: string;
  /**
   * The write-back task's error stopped the whole run (`summary.writeback.<task>.stoppedRun`: one
   * of the errors every task would meet, statemachine/definition.ts RUN_LEVEL_WRITEBACK_ERRORS),
   * and the write-back tasks after it, named here, did not run. Absent otherwise.
   */
  readonly stoppedRun?: { readonly notRun: readonly string[] };
  /**
   * A write-back's mapped fields the extract of its object does not read
   * (`summary.writeback.<task>.notExtracted`), and that extract's config path: compared with what
   * the task last sent, so an edit of them in Salesforce is not seen. Said below the table.
   */
  readonly notExtracted?: { readonly fields: readonly string[]; readonly extract: string };
  /**
   * A write-back's key field that the extract of its object does not read
   * (`summary.writeback.<task>.keyNotExtracted`), with that extract's config path and the task's
   * mode: the whole task compared with what it last sent. Said below the table.
   */
  readonly keyNotExtracted?: { readonly field: string; readonly extract: string; readonly mode: string };
  /**
   * A dry run's write-back whose push a run that is not a dry run would refuse, for the run's API
   * budget (`summary.writeback.<task>.overBudget`, lambdas/core/writeback/api-budget.ts): why.
   * Said below the table.
   */
  readonly overBudget?: string;
  /**
   * Upsert records written whose upsert created a second record, the key of the record the task
   * had synced being changed in Salesforce (`summary.writeback.<task>.secondRecords`,
   * `KEY_CHANGED_RECORD_CREATED` in roundtrip.writeback_errors). Of `written`; said below the
   * table. Absent when none.
   */
  readonly secondRecords?: number;
  /**
   * A keyed Athena extract whose query returned keys in more than one row
   * (`summary.extract.<task>.duplicateKeys`): the merge kept one row a key, dropping the others.
   * Said below the table. Absent when every key came once.
   */
  readonly duplicateKeys?: AthenaDuplicateKeysFound;
  /**
   * An Athena extract without a key whose table has a primary key all the same
   * (`summary.extract.<task>.keptPrimaryKey`): a later result may break it. Said below the table.
   */
  readonly keptPrimaryKey?: AthenaKeptPrimaryKey;
  /**
   * A Salesforce REST read whose pages held another number of records than its query's
   * `totalSize` (`summary.extract.<task>.queryCountMismatch`), as its warning says it: the
   * watermark stayed, so the next run reads them again. Said below the table.
   */
  readonly queryCountMismatch?: string;
}

/**
 * A write-back task whose run held back keys its previous run held back too
 * (`summary.writeback.<task>.heldBackRepeatedly`): stuck, not the one-run wait after a crash.
 */
export interface TaskHeldBackAgain {
  readonly task: string;
  readonly records: number;
  /** The first run of the streak (`heldBackSince`). */
  readonly since?: string;
}

/** The summary a run ends with; `--json` prints exactly this object. */
export interface RunSummary {
  /** The run's id (the execution name); not shown when the run was not {@link recorded}. */
  readonly runId: string;
  /**
   * False for a run that never started: its PostgreSQL could not be reached or used, so
   * `roundtrip.runs` has no row under its id (`--json` then gives `runId: null`). @default true
   */
  readonly recorded?: false;
  /** `skipped`: started with onOverlap "skip" while another run was going (nothing ran). */
  readonly status: 'succeeded' | 'failed' | 'skipped';
  readonly tasks: TaskSummary[];
  /** Write-backs that held back keys the previous run held back too; absent when none did. */
  readonly heldBackAgain?: readonly TaskHeldBackAgain[];
  /**
   * A run recorded whose figures could not be read back from `roundtrip.runs` at its end (its
   * PostgreSQL was killed, or could no longer be reached, during the run): why, and the steps
   * that had ended as the runner saw them (their figures are in the database, for `roundtrip
   * status` once it can be reached). `tasks` is empty then, though steps reported.
   */
  readonly unread?: { readonly why: string; readonly stepsEnded: readonly string[] };
}

/** A run's row of `roundtrip.runs`, as the CLI reads it. */
export interface StoredRun {
  readonly runId: string;
  readonly pipeline: string;
  readonly status: string;
  readonly dryRun: boolean;
  readonly startedAt: Date;
  readonly finishedAt: Date | null;
  readonly error: string | null;
  readonly summary: Record<string, unknown>;
  /** The machine and process of a local run (state schema version 12 on); null otherwise. */
  readonly host?: string | null;
  readonly pid?: number | null;
}

function num(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

/** The value as a plain object, or `{}`: summaries are JSON read back, never trusted to have a shape. */
export function record(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

/**
 * Prepare's row, when it made Salesforce calls (`summary.prepare` or its output's `apiCalls`):
 * part of what the run spent, though no task made them.
 */
export function prepareSummaries(figures: unknown): TaskSummary[] {
  const apiCalls = num(record(figures).apiCalls);
  if (apiCalls === 0) return [];
  return [
    {
      task: 'Prepare',
      kind: 'prepare',
      rowsRead: 0,
      planned: 0,
      written: 0,
      rejected: 0,
      heldBack: 0,
      superseded: 0,
      failed: 0,
      apiCalls,
    },
  ];
}

/** An extract task's row from its figures (a step's output or `summary.extract.<task>`). */
export function extractTaskSummary(task: string, figures: unknown): TaskSummary {
  const s = record(figures);
  return {
    task,
    kind: 'extract',
    rowsRead: num(s.rows),
    planned: 0,
    written: num(s.inserted) + num(s.updated),
    rejected: 0,
    heldBack: 0,
    superseded: 0,
    failed: 0,
    apiCalls: num(s.apiCalls) + num(s.s3Reads),
    ...('s3Reads' in s ? { athena: true as const } : {}),
    ...duplicateKeysOf(s.duplicateKeys),
    ...keptPrimaryKeyOf(s.keptPrimaryKey),
    ...queryCountMismatchOf(task, s),
  };
}

function queryCountMismatchOf(task: string, figures: unknown): Pick<TaskSummary, 'queryCountMismatch'> {
  const warning = queryCountMismatchWarningOf(task, figures);
  return warning ? { queryCountMismatch: warning } : {};
}

function keptPrimaryKeyOf(value: unknown): Pick<TaskSummary, 'keptPrimaryKey'> {
  const kept = AthenaKeptPrimaryKey.safeParse(value);
  return kept.success ? { keptPrimaryKey: kept.data } : {};
}

function duplicateKeysOf(value: unknown): Pick<TaskSummary, 'duplicateKeys'> {
  const found = AthenaDuplicateKeysFound.safeParse(value);
  return found.success ? { duplicateKeys: found.data } : {};
}

/**
 * How a run's transform files are named to the reader: each by its file name, but files of one
 * name in different folders (`a/score.sql`, `b/score.sql`) by as many of their path's last
 * segments as tell them from each other: by name alone they would show as one file twice. A file
 * the list holds twice (a run recorded before the config refused it) is the same file, one label.
 */
export function transformFileLabels(files: readonly string[]): string[] {
  const segments = files.map((file) => file.split(/[\\/]/).filter((s) => s !== ''));
  const tail = (parts: readonly string[], n: number) => parts.slice(-n).join('/');
  return files.map((file, i) => {
    const own = segments[i] as string[];
    const namesakes = segments.filter(
      (other, j) => files[j] !== file && other[other.length - 1] === own[own.length - 1],
    );
    let n = 1;
    while (n < own.length && namesakes.some((other) => tail(other, n) === tail(own, n))) n += 1;
    // Still alike as a whole (`/x/a.sql`, `/y/x/a.sql`): the path as recorded.
    return namesakes.some((other) => tail(other, n) === tail(own, n)) ? file : tail(own, n);
  });
}

/** One row per SQL file of the transform's figures (`{ files: [{ file, rows }] }`). */
export function transformTaskSummaries(figures: unknown): TaskSummary[] {
  const files = record(figures).files;
  const rows = (Array.isArray(files) ? files : []).map((file: unknown) => record(file));
  const labels = transformFileLabels(rows.map((f) => String(f.file ?? 'transform')));
  return rows.map((f, i) => ({
    task: labels[i] as string,
    kind: 'transform',
    rowsRead: 0,
    planned: 0,
    written: num(f.rows),
    rejected: 0,
    heldBack: 0,
    superseded: 0,
    failed: 0,
    apiCalls: 0,
  }));
}

/** A write-back task's row from its report figures (`summary.writeback.<task>`). */
export function writebackTaskSummary(task: string, figures: unknown): TaskSummary {
  const s = record(figures);
  return {
    task,
    kind: 'writeback',
    rowsRead: num(s.sourceRows),
    planned: num(s.changed),
    written: num(s.written),
    rejected: num(s.rejected),
    // The plan's and the push's. Missing in a summary stored before held-back rows were counted
    // apart (they were in rejected); without the push's in one stored before it counted them
    // (they were in failed).
    heldBack: num(s.heldBack),
    // Missing in a summary stored before superseded records were counted (there were none).
    superseded: num(s.superseded),
    failed: num(s.failed),
    ...(num(s.outcomeUnknown) > 0 ? { outcomeUnknown: num(s.outcomeUnknown) } : {}),
    apiCalls: num(s.apiCalls),
    ...(typeof s.error === 'string' ? { error: s.error } : {}),
    ...(typeof s.error === 'string' && Array.isArray(record(s.stoppedRun).notRun)
      ? { stoppedRun: { notRun: (record(s.stoppedRun).notRun as unknown[]).map(String) } }
      : {}),
    ...(Array.isArray(s.notExtracted) && s.notExtracted.length > 0
      ? {
          notExtracted: {
            fields: s.notExtracted.map(String),
            extract: typeof s.comparedExtract === 'string' ? s.comparedExtract : 'the extract',
          },
        }
      : {}),
    ...(keyNotExtractedOf(s.keyNotExtracted) ?? {}),
    ...(typeof s.overBudget === 'string' ? { overBudget: s.overBudget } : {}),
    ...(num(s.secondRecords) > 0 ? { secondRecords: num(s.secondRecords) } : {}),
  };
}

function keyNotExtractedOf(value: unknown): Pick<TaskSummary, 'keyNotExtracted'> | undefined {
  const k = record(value);
  if (typeof k.field !== 'string') return undefined;
  return {
    keyNotExtracted: {
      field: k.field,
      extract: typeof k.extract === 'string' ? k.extract : 'the extract',
      mode: typeof k.mode === 'string' ? k.mode : 'upsert',
    },
  };
}

/**
 * What the CLI says of a write-back whose upserts created second records (key changed in
 * Salesforce); its `roundtrip errors` with the options `given` to the command that says it
 * (cli-common.ts, databaseOptionsGiven).
 */
export function secondRecordsNote(
  runId: string,
  task: string,
  records: number,
  given: OptionsGiven = { options: '', note: '' },
): string {
  const one = records === 1;
  return (
    `note: write-back ${task}: ${records.toLocaleString('en-US')} ${one ? 'upsert' : 'upserts'} created a second record in Salesforce, ` +
    `as the key field of the record this task had synced with ${one ? 'its key' : 'their keys'} was changed there (the values were written, to the new ${one ? 'record' : 'records'}); ` +
    `roundtrip errors --run ${runId}${given.options} ${shellOption('--task', task)} --code KEY_CHANGED_RECORD_CREATED${given.note} lists ${one ? 'it' : 'each'} with both records' Ids and what the old one holds: ` +
    `merge the two in Salesforce, or set the key back on the old one and delete the new one`
  );
}

/** What the CLI says of a dry run's write-back whose push a real run would refuse for the API budget. */
export function overBudgetWarning(task: string, problem: string): string {
  return `dry run: write-back ${task}: a real run would send none of its records and fail the task: ${problem}`;
}

/** What the CLI says of a write-back whose mapped fields the extract of its object does not read. */
export function notExtractedNote(
  task: string,
  notExtracted: NonNullable<TaskSummary['notExtracted']>,
): string {
  const { fields, extract } = notExtracted;
  const them = fields.length === 1 ? 'it' : 'them';
  return (
    `note: write-back ${task} compares ${fields.join(', ')} with what it last sent (roundtrip.sync_state), ` +
    `not with the extracted copy, as ${extract}.fields does not list ${them}: an edit of ${them} made in Salesforce ` +
    `is not seen nor put back (the copy still catches deleted records and edits of the other fields); ` +
    `add ${them} to ${extract}.fields to compare ${them} with the copy`
  );
}

/** The write-backs of a run's figures (`summary.writeback` or the Report's) that held back keys again. */
export function tasksHeldBackAgain(writeback: unknown): TaskHeldBackAgain[] {
  return Object.entries(record(writeback)).flatMap(([task, figures]) => {
    const s = record(figures);
    const records = num(s.heldBackRepeatedly);
    if (records === 0) return [];
    return [{ task, records, ...(typeof s.heldBackSince === 'string' ? { since: s.heldBackSince } : {}) }];
  });
}

/**
 * What the CLI says of a task's keys held back again in run `runId`; its `roundtrip errors` with the
 * options `given` to the command that says it (cli-common.ts, databaseOptionsGiven).
 */
export function heldBackAgainNote(
  runId: string,
  held: TaskHeldBackAgain,
  given: OptionsGiven = { options: '', note: '' },
): string {
  const records = held.records === 1 ? '1 record' : `${held.records.toLocaleString('en-US')} records`;
  return (
    `write-back ${held.task}: ${records} held back again, as by the previous run` +
    (held.since ? ` (held back by every run since ${held.since})` : '') +
    `: an earlier send of their keys still has no outcome; roundtrip errors --run ${runId}${given.options}${given.note} says why for each (a run still recorded as running, a Bulk job Salesforce has not finished, or keys to record by hand)`
  );
}

/**
 * Records a run stopped by a signal as failed, when it is still `running` (a run that reached its
 * Report keeps its outcome). Whatever the run sent is in its ledger: the next run goes on from
 * there. `afterwards` reads what the CLI says of the run then, on the mark's connection. Whether a
 * row was updated.
 */
export async function markRunInterrupted(
  pool: Pool,
  runId: string,
  signal: string,
  afterwards?: (client: Client) => Promise<void>,
): Promise<boolean> {
  // A connection of its own, with the pool's settings: the steps still running may hold every
  // connection of the pool (a COPY, a lock wait), and the mark must not queue behind them. A
  // Client does not run the pool's onConnect: the session settings are given here.
  const client = new Client(pool.options);
  client.on('error', () => undefined);
  try {
    await client.connect();
    await applySessionSettings(client);
    // One transaction: the mark, and the figures of what the run wrote, counted from its ledger.
    await client.query('BEGIN');
    const marked = await endRunningRun(
      client,
      runId,
      'failed',
      new Date(),
      `Interrupted by ${signal} on this machine before its report`,
    );
    await client.query('COMMIT');
    // What the caller reads of the run once it is marked, on the same connection.
    if (marked && afterwards) await afterwards(client).catch(() => undefined);
    return marked;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Reads one run, or undefined when no run has that id (or the state schema does not exist yet). */
export async function readStoredRun(pool: Pool, runId: string): Promise<StoredRun | undefined> {
  const runs = await readStoredRuns(pool, { runId, limit: 1 });
  return runs[0];
}

/** The most recent runs, newest first (of one pipeline when given). */
export async function readStoredRuns(
  pool: Pool,
  options: { pipeline?: string; runId?: string; limit: number },
): Promise<StoredRun[]> {
  const exists = await pool.query<{ t: string | null }>(`SELECT to_regclass('roundtrip.runs')::text AS t`);
  if (!exists.rows[0]?.t) return [];
  const { rows } = await pool.query<{
    run_id: string;
    pipeline: string;
    status: string;
    dry_run: boolean;
    started_at: Date;
    finished_at: Date | null;
    error: string | null;
    summary: unknown;
    host: string | null;
    pid: number | null;
  }>(
    // host and pid read through to_jsonb: a state schema before version 12 has neither column.
    `SELECT run_id, pipeline, status, dry_run, started_at, finished_at, error, summary,
            to_jsonb(runs) ->> 'host' AS host, (to_jsonb(runs) ->> 'pid')::int AS pid
       FROM roundtrip.runs
      WHERE ($1::text IS NULL OR pipeline = $1) AND ($2::text IS NULL OR run_id = $2)
      ORDER BY started_at DESC, run_id DESC
      LIMIT $3`,
    [options.pipeline ?? null, options.runId ?? null, options.limit],
  );
  return rows.map((r) => ({
    runId: r.run_id,
    pipeline: r.pipeline,
    status: r.status,
    dryRun: r.dry_run,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    error: r.error,
    summary: record(r.summary),
    host: r.host,
    pid: r.pid,
  }));
}

/**
 * The per-task rows of a stored run: Prepare's Salesforce calls (when it made any), extracts (rows
 * read from the source, rows inserted or updated in PostgreSQL, API calls — Athena's include its
 * S3 reads), the transform (rows its statements wrote), then write-backs (source rows, planned
 * changes, records written, rejected before sending, held back for another run's send of their
 * key, refused by Salesforce, API calls). Every task the run recorded figures for is there, the
 * config's in its order, then those it no longer names (renamed or removed since the run,
 * {@link TaskSummary.notInConfig}): a run's figures are what it recorded, whatever config reads them.
 */
export function taskSummaries(config: PipelineConfig, stored: StoredRun): TaskSummary[] {
  const extract = record(stored.summary.extract);
  const writeback = record(stored.summary.writeback);
  /** The recorded tasks of one kind: the config's first, in its order, then the others. */
  const recorded = (figures: Record<string, unknown>, configured: string[]): [string, boolean][] => [
    ...configured.filter((name) => name in figures).map((name): [string, boolean] => [name, false]),
    ...Object.keys(figures)
      .filter((name) => !configured.includes(name))
      .sort()
      .map((name): [string, boolean] => [name, true]),
  ];
  const marked = (row: TaskSummary, notInConfig: boolean): TaskSummary =>
    notInConfig ? { ...row, notInConfig: true } : row;
  return [
    ...prepareSummaries(stored.summary.prepare),
    ...recorded(extract, config.extract.map(taskName)).map(([name, notInConfig]) =>
      marked(extractTaskSummary(name, extract[name]), notInConfig),
    ),
    ...transformTaskSummaries(stored.summary.transform),
    ...recorded(writeback, config.writeback.map(taskName)).map(([name, notInConfig]) =>
      marked(writebackTaskSummary(name, writeback[name]), notInConfig),
    ),
  ];
}

/** The summary of a stored run; `status` is the execution's when the run row is still `running`. */
export function runSummary(
  config: PipelineConfig,
  stored: StoredRun,
  executionStatus: 'succeeded' | 'failed',
): RunSummary {
  const status =
    stored.status === 'skipped' && executionStatus === 'succeeded'
      ? ('skipped' as const)
      : stored.status === 'failed' || executionStatus === 'failed'
        ? 'failed'
        : ('succeeded' as const);
  const heldBackAgain = tasksHeldBackAgain(stored.summary.writeback);
  return {
    runId: stored.runId,
    status,
    tasks: taskSummaries(config, stored),
    ...(heldBackAgain.length > 0 ? { heldBackAgain } : {}),
  };
}

/**
 * The table's columns: a task not in the config is marked by its name instead, and so is a failed
 * write-back task, whose error is said below the table, as are its fields not extracted.
 */
type Column = Exclude<
  keyof TaskSummary,
  | 'notInConfig'
  | 'error'
  | 'stoppedRun'
  | 'notExtracted'
  | 'keyNotExtracted'
  | 'secondRecords'
  | 'duplicateKeys'
  | 'keptPrimaryKey'
  | 'queryCountMismatch'
  | 'overBudget'
  | 'athena'
>;
const COLUMNS: readonly Column[] = [
  'task',
  'kind',
  'rowsRead',
  'planned',
  'written',
  'rejected',
  'heldBack',
  'superseded',
  'failed',
  'outcomeUnknown',
  'apiCalls',
];
const HEADERS: Record<Column, string> = {
  task: 'task',
  kind: 'kind',
  rowsRead: 'rows read',
  planned: 'planned',
  written: 'written',
  rejected: 'rejected',
  heldBack: 'held back',
  superseded: 'superseded',
  failed: 'failed',
  outcomeUnknown: 'outcome unknown',
  apiCalls: 'API calls',
};

/**
 * A task's step error as the summary prints it: its first 300 characters (`roundtrip status` and
 * roundtrip.runs have it whole).
 */
export function shownTaskError(error: string): string {
  return error.length > 300 ? `${error.slice(0, 300)}…` : error;
}

/**
 * A run's summary as the CLI prints it: a plain-text table of its tasks (numbers right-aligned,
 * thousands separated), then each failed task and the notes. `given`: the options given to the
 * command that ran it (cli-common.ts, databaseOptionsGiven), which the commands the notes name
 * repeat.
 */
export function formatSummaryTable(summary: RunSummary, given?: OptionsGiven): string {
  // A run that failed before any step reported (a database that cannot be reached, a refused
  // sign-in) has no row: a table of headers alone would read as a run that did nothing.
  if (summary.recorded === false) {
    return 'no run recorded: the run never started, as its PostgreSQL could not be used (why: above)';
  }
  if (summary.unread) {
    // The figures were recorded, perhaps, but not read: saying no step reported would be untrue.
    const { why, stepsEnded } = summary.unread;
    return [
      `run ${summary.runId}: ${summary.status}; its figures could not be read back: ${why}`,
      stepsEnded.length > 0
        ? `steps that ended before, as this run saw them: ${stepsEnded.join(', ')}; roundtrip status shows the figures they recorded once PostgreSQL can be reached again`
        : 'no step had ended, as this run saw them',
    ].join('\n');
  }
  if (summary.tasks.length === 0) {
    return `run ${summary.runId}: ${summary.status}${summary.status === 'failed' ? ', before any step reported its figures (why: above)' : ''}`;
  }
  // Superseded records come only of runs started by hand that overlap, records of unknown outcome
  // only of answers lost: each column is shown when a task has some, not as zeros in every table.
  const columns = COLUMNS.filter(
    (c) =>
      (c !== 'superseded' || summary.tasks.some((t) => t.superseded > 0)) &&
      (c !== 'outcomeUnknown' || summary.tasks.some((t) => (t.outcomeUnknown ?? 0) > 0)),
  );
  const cells = summary.tasks.map((t) =>
    columns.map((c) =>
      c === 'outcomeUnknown'
        ? (t.outcomeUnknown ?? 0).toLocaleString('en-US')
        : typeof t[c] === 'number'
          ? t[c].toLocaleString('en-US')
          : c === 'task'
            ? `${t.task}${t.notInConfig ? ' (not in config)' : ''}${t.error !== undefined ? ' ✗' : ''}`
            : String(t[c]),
    ),
  );
  const header = columns.map((c) => HEADERS[c]);
  const { lines, widths } = alignColumns([header, ...cells], (i) => i >= 2);
  // Each write-back task a step error stopped (the tasks after it ran, unless its error stopped
  // the run: then it says which did not), with its error's first 300 characters: `roundtrip
  // status` and roundtrip.runs have it whole.
  const failedTasks = summary.tasks.flatMap((t) => {
    if (t.error === undefined) return [];
    const error = shownTaskError(t.error);
    return t.stoppedRun
      ? [
          `✗ write-back ${t.task} failed and stopped the run: ${error}; ${tasksNotRunText(t.stoppedRun.notRun)}`,
        ]
      : [`✗ write-back ${t.task} failed: ${error}`];
  });
  const notes = summary.tasks.flatMap((t) => [
    ...(t.duplicateKeys ? [`warning: ${duplicateKeysWarning(t.task, t.duplicateKeys)}`] : []),
    ...(t.keptPrimaryKey ? [`warning: ${keptPrimaryKeyWarning(t.task, t.keptPrimaryKey)}`] : []),
    ...(t.queryCountMismatch ? [`warning: ${t.queryCountMismatch}`] : []),
    ...(t.notExtracted ? [notExtractedNote(t.task, t.notExtracted)] : []),
    ...(t.keyNotExtracted ? [keyNotExtractedNote(t.task, t.keyNotExtracted)] : []),
    ...(t.secondRecords ? [secondRecordsNote(summary.runId, t.task, t.secondRecords, given)] : []),
    ...(t.overBudget ? [overBudgetWarning(t.task, t.overBudget)] : []),
  ]);
  return [
    `run ${summary.runId}: ${summary.status}`,
    lines[0],
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...lines.slice(1),
    ...failedTasks,
    ...notes,
  ].join('\n');
}
