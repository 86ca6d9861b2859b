/**
 * The step contracts: every input and output that moves between the state machine and the
 * Lambda handlers, as zod schemas with their inferred types. This is the ONE place they are
 * defined; the state machine definition (statemachine/definition.ts) builds its states from
 * them and the handlers parse their events with them.
 *
 * Only small JSON moves between steps (a state's payload is capped at 256 KB, DESIGN.md §1):
 * ids, task names, counts, job ids. Rows never travel through the state machine.
 */
// `import * as z` rather than `import { z }`: the named `z` is a namespace object that a bundler
// must keep whole (every locale, JSON Schema, …: ~440 KB minified); through `* as z` esbuild keeps
// only what is used (~90 KB). Same module, same default (English) messages.
import * as z from 'zod';
import { athenaQueryTimeoutMinutes, type PipelineConfig } from '../config';
import { ATHENA_MAX_QUERIES_PER_TASK } from '../connectors/athena/tokens';
import { TerminalError } from '../shared/errors';

/**
 * A run id: a Step Functions execution name (1–80 characters; only letters, digits, `-` and `_`
 * so that it also works in CloudWatch log streams and staging table names,
 * https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html#StepFunctions-StartExecution-request-name),
 * or one that {@link newRunId} allocates (time-sortable).
 */
export const RUN_ID_PATTERN = /^[A-Za-z0-9_-]{1,80}$/;

/**
 * The longest a run may take (the state machine's execution timeout, statemachine/definition.ts
 * RUN_TIMEOUT): a run still `running` well after it can no longer be running was abandoned.
 */
export const RUN_TIMEOUT_HOURS = 12;

/** A run still `running` this long after it started is abandoned: an hour beyond the execution timeout. */
export const ABANDONED_AFTER_HOURS = RUN_TIMEOUT_HOURS + 1;

/** A run id. */
export const RunId = z
  .string()
  .regex(RUN_ID_PATTERN, 'expected 1–80 letters, digits, "-" or "_" (a Step Functions execution name)');

/** A task name from the pipeline config. */
export const TaskName = z.string().min(1, 'expected a task name');

/**
 * The execution input a user or the schedule gives: `{}` runs everything.
 * Unknown keys are refused so that a typo (`{"ful": true}`) does not silently run incrementally.
 */
export const RunInput = z.strictObject({
  /** Plan the write-back and stop before any change is sent to Salesforce. */
  dryRun: z.boolean().optional(),
  /** Ignore the stored watermarks: every Salesforce extract reads everything once. */
  full: z.boolean().optional(),
  /** Run only these tasks (extract or write-back task names); all when left out. */
  tasks: z.array(TaskName).min(1, 'expected at least one task name, or leave "tasks" out').optional(),
  /**
   * What to do while another run of the pipeline is still going: `'skip'` ends this run at once
   * as `skipped` (the schedule's input); `'run'` runs alongside (runs started by hand).
   * @default 'run'
   */
  onOverlap: z.enum(['skip', 'run']).optional(),
});
export type RunInput = z.infer<typeof RunInput>;

/**
 * When Step Functions cannot be asked about a run (a laptop's, or the call failed), a `running`
 * run counts as still going while one of its steps started within this many minutes at least
 * ({@link stillGoingQuietMinutes}): longer than any quiet stretch of a live run. A Lambda step
 * runs up to 15; the longest stretch is an Athena extract's, which starts no Lambda step.
 */
export const STILL_GOING_QUIET_MINUTES = 150;

/**
 * Minutes beyond its queries' own time limits that an Athena extract's quiet stretch may take at
 * the very worst: each query's start, the retries of throttled calls, the pauses before a rerun,
 * the stop of a query past its time and the load's invocations that fail before its code runs (its
 * function not ready, the Lambda service's errors): about 19 minutes (test/infra/definition.test.ts).
 * Not Prepare's time: Prepare marks its end on the run's row, where the stretch starts.
 */
export const ATHENA_QUIET_OVERHEAD_MINUTES = 22;

/**
 * How long a `running` run of `config`'s pipeline counts as still going without a step starting:
 * {@link STILL_GOING_QUIET_MINUTES}, or longer when the pipeline's Athena extract can be quiet for
 * longer: no
 * Lambda step starts while the state machine's native query is started and runs (up to
 * `athena.queryTimeoutMinutes`), is rerun after a retryable failure (up to
 * {@link ATHENA_MAX_QUERIES_PER_TASK} queries) and, past its time, stopped. With the default 32
 * minutes: 150 (4 × 32 + 22). A run quiet for longer died without a report (an execution stopped
 * from the console, a process killed on a laptop).
 */
export function stillGoingQuietMinutes(config: Pick<PipelineConfig, 'athena' | 'extract'>): number {
  if (!config.extract.some((task) => task.from === 'athena')) return STILL_GOING_QUIET_MINUTES;
  return Math.max(
    STILL_GOING_QUIET_MINUTES,
    ATHENA_MAX_QUERIES_PER_TASK * athenaQueryTimeoutMinutes(config) + ATHENA_QUIET_OVERHEAD_MINUTES,
  );
}

/**
 * What the Prepare step receives: the execution input, and from the state machine's context the
 * execution name (used as the run id, so that a retried Prepare is idempotent) and ARN.
 */
export const PrepareInput = z.strictObject({
  input: RunInput.default({}),
  /** @default a new time-sortable id ({@link newRunId}) */
  runId: RunId.optional(),
  executionArn: z.string().min(1).optional(),
  /**
   * When the execution started (`$$.Execution.StartTime`, ISO 8601): the run's `started_at`, so
   * that it is the time the console shows, not the time Prepare got to run (a cold start later).
   * @default Prepare's clock
   */
  executionStartTime: z.iso.datetime({ offset: true }).optional(),
});
export type PrepareInput = z.input<typeof PrepareInput>;
export type PrepareInputParsed = z.infer<typeof PrepareInput>;

/** The selected tasks of a run, by kind. */
export const SelectedTasks = z.strictObject({
  salesforce: z.array(TaskName),
  athena: z.array(TaskName),
  writeback: z.array(TaskName),
});
export type SelectedTasks = z.infer<typeof SelectedTasks>;

/** Prepare's forecast of the run's Salesforce API cost, with the org's allowance when it was read. */
export const ApiForecast = z.strictObject({
  /** API calls the selected extracts are expected to make (Prepare's own calls included). */
  salesforceApiCalls: z.number().int().nonnegative(),
  /** `DailyApiRequests.Remaining` when Prepare read `/limits`. */
  dailyRemaining: z.number().int().optional(),
  /** `DailyApiRequests.Max`. */
  dailyMax: z.number().int().optional(),
});
export type ApiForecast = z.infer<typeof ApiForecast>;

/** What Prepare returns: the run's identity and the tasks each later branch runs. */
export const PrepareOutput = z.strictObject({
  runId: RunId,
  pipeline: z.string(),
  tasks: SelectedTasks,
  full: z.boolean(),
  dryRun: z.boolean(),
  /** ISO 8601: when the run was first recorded (a retried Prepare returns the same time). */
  startedAt: z.string(),
  forecast: ApiForecast,
  /**
   * Salesforce API calls Prepare itself made (`/limits`, each extract's `COUNT()`), its earlier
   * attempts' included when it was retried: spent, not forecast, and recorded in the run's summary
   * (`prepare.apiCalls`); absent when it made none.
   */
  apiCalls: z.number().int().nonnegative().optional(),
  /**
   * Why the run was skipped, when it was (`onOverlap: 'skip'` and another run still going): the
   * state machine then ends it at once.
   */
  skipped: z.string().optional(),
});
export type PrepareOutput = z.infer<typeof PrepareOutput>;

/** One Salesforce extract task of a run. */
export const SalesforceExtractInput = z.strictObject({
  runId: RunId,
  task: TaskName,
  /** Read everything, ignoring the watermark (the run's `full` override). */
  full: z.boolean().default(false),
});
export type SalesforceExtractInput = z.input<typeof SalesforceExtractInput>;

/** Which read API a Salesforce extract used. */
export const SalesforceReadApi = z.enum(['rest', 'bulk']);
export type SalesforceReadApi = z.infer<typeof SalesforceReadApi>;

/** A Salesforce extract whose rows are in the target and whose watermark moved. */
export const SalesforceExtractLoaded = z.strictObject({
  status: z.literal('loaded'),
  runId: RunId,
  task: TaskName,
  /** Rows read from Salesforce. */
  rows: z.number().int().nonnegative(),
  inserted: z.number().int().nonnegative(),
  updated: z.number().int().nonnegative(),
  /** Rows removed (deletes `remove`) or flagged (deletes `flag`). */
  deleted: z.number().int().nonnegative(),
  /**
   * How this load applied Salesforce's deletes: the task's `deletes`, or its default for the object
   * (`remove` for one without IsDeleted, such as User). Optional: outputs of an earlier version.
   */
  deletes: z.enum(['remove', 'flag']).optional(),
  api: SalesforceReadApi,
  /**
   * Salesforce API calls this task made in the run, over all its steps (polls included) and their
   * attempts (retried ones, failed ones): the run's `summary.extract.<task>.apiCalls`.
   */
  apiCalls: z.number().int().nonnegative(),
  /** Whether this was a full read (override, `mode: 'full'`, first run, or new columns). */
  full: z.boolean(),
  /** The stored watermark after the load (ISO 8601), null while the object has no rows. */
  watermark: z.string().nullable(),
  /**
   * Columns of the copy whose type this load changed, because Salesforce's type of their field
   * changed (a number field made text, say): the object and field, the copy's table (qualified by
   * its schema; the column has the field's name), and the column's PostgreSQL type before and
   * after. A transform that read the column as it was may fail on it. Absent when none changed.
   */
  retypedColumns: z
    .array(
      z.strictObject({
        object: z.string(),
        field: z.string(),
        table: z.string(),
        from: z.string(),
        to: z.string(),
      }),
    )
    .optional(),
  /**
   * A REST read whose pages held another number of records than its query's `totalSize` said
   * (`read` of `totalSize`): a record the query matched may not have arrived. The rows read were
   * loaded, but the watermark stayed as it was, and a full read removed or flagged no row and has
   * the next read full again, so that the next run reads those records. Absent when the figures
   * agree (and for Bulk reads, whose pages are checked one by one).
   */
  queryCountMismatch: z
    .strictObject({
      totalSize: z.number().int().nonnegative(),
      read: z.number().int().nonnegative(),
      /** The watermark kept (ISO 8601), null when the task had none yet. */
      watermarkKept: z.string().nullable(),
    })
    .optional(),
});
export type SalesforceExtractLoaded = z.infer<typeof SalesforceExtractLoaded>;

/**
 * A Bulk API 2.0 query job still running. The state machine Waits `waitSeconds`, then calls the
 * check step with this very object, which answers with the same union.
 */
export const SalesforceExtractPending = z.strictObject({
  status: z.literal('bulk-pending'),
  runId: RunId,
  task: TaskName,
  jobId: z.string().regex(/^[A-Za-z0-9]{15,18}$/, 'expected a Salesforce Bulk job id'),
  /** Polls made so far (0 right after the job was created). */
  attempt: z.number().int().nonnegative(),
  /** How long to wait before the next poll (bulkPollDelaySeconds of `attempt`). */
  waitSeconds: z.number().int().positive(),
  full: z.boolean(),
  /** Rows the COUNT() announced. */
  expectedRows: z.number().int().nonnegative(),
  /**
   * Salesforce API calls this task made so far, as the run's summary holds them (each step adds
   * its own there: the check step does not add this figure again).
   */
  apiCalls: z.number().int().nonnegative(),
});
export type SalesforceExtractPending = z.infer<typeof SalesforceExtractPending>;

/** What the Salesforce extract step and its check step return. */
export const SalesforceExtractOutput = z.discriminatedUnion('status', [
  SalesforceExtractLoaded,
  SalesforceExtractPending,
]);
export type SalesforceExtractOutput = z.infer<typeof SalesforceExtractOutput>;

/** The check step's input: the pending output of the previous step. */
export const SalesforceExtractCheckInput = SalesforceExtractPending;
export type SalesforceExtractCheckInput = SalesforceExtractPending;

/**
 * The part of an Athena `QueryExecution` the load reads (the `.sync` integration's output carries
 * more: statistics, the query text, … which are accepted and ignored).
 */
export const AthenaQueryExecution = z.looseObject({
  QueryExecutionId: z.string().min(1),
  ResultConfiguration: z.looseObject({ OutputLocation: z.string().min(1).optional() }).optional(),
  Status: z
    .looseObject({
      State: z.string().optional(),
      StateChangeReason: z.string().optional(),
    })
    .optional(),
});

/**
 * The Athena load step. In AWS the state machine runs the query with
 * `athena:startQueryExecution.sync` and passes its output (`{ QueryExecution: … }`); without it
 * (the local path) the step starts the query itself, idempotently, and waits.
 */
export const AthenaLoadInput = z.strictObject({
  runId: RunId,
  task: TaskName,
  QueryExecution: AthenaQueryExecution.optional(),
});
export type AthenaLoadInput = z.input<typeof AthenaLoadInput>;

/**
 * What a keyed Athena load found when the result held a key in more than one row: the merge kept one
 * row a key (the last in the result file, whose order Athena does not fix without ORDER BY) and
 * dropped the others. The table (qualified) and its key, the rows dropped, the keys returned more
 * than once, and at most 5 of them with their rows (values as PostgreSQL writes them as text).
 */
export const AthenaDuplicateKeysFound = z.strictObject({
  table: z.string(),
  key: z.array(z.string()).min(1),
  droppedRows: z.number().int().positive(),
  keys: z.number().int().positive(),
  examples: z
    .array(
      z.strictObject({
        key: z.record(z.string(), z.string().nullable()),
        rows: z.number().int().min(2),
      }),
    )
    .max(5),
});
export type AthenaDuplicateKeysFound = z.infer<typeof AthenaDuplicateKeysFound>;

/**
 * A task without `key` whose table has a primary key all the same (made by the task's earlier,
 * keyed loads, or by hand): the load replaced the rows as they are, and the key refuses a result
 * that repeats a value of it or leaves it NULL. Said each run until the key goes or comes back.
 */
export const AthenaKeptPrimaryKey = z.strictObject({
  table: z.string(),
  key: z.array(z.string()).min(1),
  constraint: z.string(),
  /** The task's `key` config path (`extract[1].key`), where the key would be given again. */
  keyPath: z.string(),
});
export type AthenaKeptPrimaryKey = z.infer<typeof AthenaKeptPrimaryKey>;

/** What the Athena load step returns. */
export const AthenaLoadOutput = z.strictObject({
  status: z.literal('loaded'),
  runId: RunId,
  task: TaskName,
  queryExecutionId: z.string(),
  /** `swap`: the table was replaced atomically; `merge`: merged on the configured key. */
  refresh: z.enum(['swap', 'merge']),
  rows: z.number().int().nonnegative(),
  inserted: z.number().int().nonnegative(),
  updated: z.number().int().nonnegative(),
  /** `swap`: rows the table held before; `merge`: 0. */
  deleted: z.number().int().nonnegative(),
  /** Athena API calls this step made. */
  apiCalls: z.number().int().nonnegative(),
  /** S3 GetObject requests this step made. */
  s3Reads: z.number().int().nonnegative(),
  /**
   * With `key`, when the result held a key in more than one row: {@link AthenaDuplicateKeysFound}.
   * Absent when every key came once (and without a key).
   */
  duplicateKeys: AthenaDuplicateKeysFound.optional(),
  /**
   * Without `key`, when the table has a primary key all the same: {@link AthenaKeptPrimaryKey}.
   * Absent otherwise.
   */
  keptPrimaryKey: AthenaKeptPrimaryKey.optional(),
});
export type AthenaLoadOutput = z.infer<typeof AthenaLoadOutput>;

/** The Transform step's input: the run whose transform runs. */
export const TransformInput = z.strictObject({ runId: RunId });
export type TransformInput = z.infer<typeof TransformInput>;

// The write-back steps (plan → push → [wait → collect]* → report): only small JSON, ids, counts,
// job ids, and a dry run's short sample.

/**
 * In a write-back step's output: the task's Salesforce calls so far in the run (its plan, pushes
 * and collects together), once the step has recorded its own. The local progress lines count them
 * as they go. Optional: a pending output handed on by a step of an older version lacks it.
 */
const ApiCallsSoFar = z.number().int().nonnegative().optional();

/** Which API a push uses: none when nothing changed. */
export const WritebackApi = z.enum(['collections', 'bulk', 'none']);
export type WritebackApi = z.infer<typeof WritebackApi>;

/** The Plan step's input. */
export const WritebackPlanInput = z.strictObject({
  runId: RunId,
  task: TaskName,
  /** Stop after the plan: nothing is sent. */
  dryRun: z.boolean().default(false),
});
export type WritebackPlanInput = z.input<typeof WritebackPlanInput>;

/** One row of a dry run's sample: what Salesforce has and what would be sent. */
export const PlanSampleRow = z.strictObject({
  key: z.string(),
  salesforceId: z.string().nullable(),
  current: z.record(z.string(), z.unknown()).nullable(),
  next: z.record(z.string(), z.unknown()),
});
export type PlanSampleRow = z.infer<typeof PlanSampleRow>;

/**
 * The codes of rows a run keeps back rather than rejects or fails: nothing is wrong with the
 * source row, and Salesforce refused nothing; another run's send of its key came first, and a later
 * plan decides what to send from that send's outcome. Listed in roundtrip.writeback_errors all the
 * same, counted as `heldBack`, not against `maxRejectRate` nor `maxFailureRate`.
 *
 * Written by the plan (stage `plan`): `OUTCOME_PENDING`, an update or upsert key in a Bulk job of an
 * ended run that Salesforce has not finished; `INSERT_OUTCOME_UNKNOWN`, an insert key whose earlier
 * send has no recorded outcome. A later plan sends them once that outcome is known.
 *
 * Written by an insert's push (stage `push`, ledger status `held_back`), for keys another run took
 * after this run planned them (runs that overlapped): `ALREADY_INSERTED`, inserted by that run (a
 * later plan finds the key inserted and, insert never updating, sends nothing for it);
 * `INSERT_PENDING_ELSEWHERE`, sent by that run with no outcome yet (a later plan holds it back until
 * that outcome is known, and inserts it if that send created nothing).
 */
export const HELD_BACK_CODES = [
  'OUTCOME_PENDING',
  'INSERT_OUTCOME_UNKNOWN',
  'ALREADY_INSERTED',
  'INSERT_PENDING_ELSEWHERE',
] as const;

/** What the Plan step returns. */
export const WritebackPlanOutput = z.strictObject({
  runId: RunId,
  task: TaskName,
  /** `dry-run`: stopped here on purpose; `planned`: push next (api `none`: nothing to send). */
  status: z.enum(['planned', 'dry-run']),
  api: WritebackApi,
  /** Rows read from the source table or view. */
  sourceRows: z.number().int().nonnegative(),
  /**
   * Rows refused before any API call for what the source holds (in roundtrip.writeback_errors,
   * stage `plan`): what `maxRejectRate` judges.
   */
  rejected: z.number().int().nonnegative(),
  /**
   * Rows kept back because an earlier run's send of their key has no outcome yet
   * ({@link HELD_BACK_CODES}; in roundtrip.writeback_errors, stage `plan`): a later plan sends them.
   * `sourceRows = rejected + heldBack + unchanged + changed`.
   */
  heldBack: z.number().int().nonnegative(),
  /**
   * Rows whose mapped values Salesforce already has; for insert, the rows whose key was inserted
   * before (never sent again, so not checked).
   */
  unchanged: z.number().int().nonnegative(),
  /** Rows to send. */
  changed: z.number().int().nonnegative(),
  /** What the diff compared with: `extract:<table>` or `sync_state`. */
  comparedWith: z.string(),
  /**
   * Compared with `extract:<table>`, an update's or upsert's mapped fields the extract does not
   * read: compared with `sync_state` (what was last sent), so an edit of them in Salesforce is not
   * seen. Absent when every mapped field is extracted.
   */
  notExtracted: z.array(z.string()).optional(),
  /** Dry run only: the first rows of the plan, in key order. */
  sample: z.array(PlanSampleRow).optional(),
  apiCalls: ApiCallsSoFar,
});
export type WritebackPlanOutput = z.infer<typeof WritebackPlanOutput>;

/** The Push step's input. */
export const WritebackPushInput = z.strictObject({ runId: RunId, task: TaskName });
export type WritebackPushInput = z.input<typeof WritebackPushInput>;

/** Bulk ingest jobs still running: the state machine Waits `waitSeconds`, then calls Collect with this. */
export const WritebackBulkPending = z.strictObject({
  status: z.literal('bulk-pending'),
  runId: RunId,
  task: TaskName,
  jobIds: z.array(z.string().regex(/^[A-Za-z0-9]{15,18}$/, 'expected a Salesforce Bulk job id')).min(1),
  /** Polls made so far. */
  attempt: z.number().int().nonnegative(),
  waitSeconds: z.number().int().positive(),
  apiCalls: ApiCallsSoFar,
});
export type WritebackBulkPending = z.infer<typeof WritebackBulkPending>;

/** Every result is in PostgreSQL: counts of the task's push. */
export const WritebackCollected = z.strictObject({
  status: z.literal('collected'),
  runId: RunId,
  task: TaskName,
  api: WritebackApi,
  /** Records in the plan. */
  planned: z.number().int().nonnegative(),
  succeeded: z.number().int().nonnegative(),
  /** Records Salesforce refused (after the row-lock retries). */
  failed: z.number().int().nonnegative(),
  /**
   * Insert records sent whose outcome is unknown: Salesforce's answer was lost after sending, and
   * without an external-ID key nothing can look them up (`INSERT_OUTCOME_UNKNOWN`, until
   * `roundtrip resolve` records them). Not failures: not in `failed` nor in `failureRate`; the
   * run fails at its report all the same, naming them and what to do. 0 when absent: the output
   * of a push or collect deployed before it, read by a step of the new version mid-execution.
   */
  outcomeUnknown: z.number().int().nonnegative().default(0),
  /**
   * Insert: records not sent because another run took their key after this run planned it
   * (`ALREADY_INSERTED`, `INSERT_PENDING_ELSEWHERE` of {@link HELD_BACK_CODES}). Not failures.
   */
  heldBack: z.number().int().nonnegative(),
  /**
   * Update and upsert: records not sent because a run that planned after this one had synced their
   * key (ledger status `superseded`): Salesforce holds that run's newer values. Not failures.
   */
  superseded: z.number().int().nonnegative(),
  /**
   * Upsert: records of `succeeded` for which Salesforce created a second record, as the key of the
   * record the task had synced was changed in Salesforce (`KEY_CHANGED_RECORD_CREATED` in
   * roundtrip.writeback_errors). Written, not failed. Absent when none.
   */
  secondRecords: z.number().int().nonnegative().optional(),
  /** `failed` over the records sent (`planned - heldBack - superseded`), 0 when none was. */
  failureRate: z.number().min(0).max(1),
  maxFailureRate: z.number().min(0).max(1),
  /** The run fails after the report when true. */
  failureRateExceeded: z.boolean(),
  apiCalls: ApiCallsSoFar,
});
export type WritebackCollected = z.infer<typeof WritebackCollected>;

/**
 * Push stopped between two calls, every result so far recorded, because its invocation had too
 * little time left for another (lambdas/core/writeback/budget.ts): the state machine calls Push
 * again at once, and it goes on from its ledger.
 */
export const WritebackPushPending = z.strictObject({
  status: z.literal('push-pending'),
  runId: RunId,
  task: TaskName,
  api: z.enum(['collections', 'bulk']),
  /** Records in the plan. */
  planned: z.number().int().nonnegative(),
  /** Records with an outcome so far (written, failed, held back or superseded). */
  done: z.number().int().nonnegative(),
  apiCalls: ApiCallsSoFar,
});
export type WritebackPushPending = z.infer<typeof WritebackPushPending>;

/** What Push returns. */
export const WritebackPushOutput = z.discriminatedUnion('status', [
  WritebackBulkPending,
  WritebackPushPending,
  WritebackCollected,
]);
export type WritebackPushOutput = z.infer<typeof WritebackPushOutput>;

/** Collect's input: the pending output of Push or of the previous Collect. */
export const WritebackCollectInput = WritebackBulkPending;
export type WritebackCollectInput = WritebackBulkPending;

/** What Collect returns: jobs still running (or more results to collect), or every result in. */
export const WritebackCollectOutput = z.discriminatedUnion('status', [
  WritebackBulkPending,
  WritebackCollected,
]);
export type WritebackCollectOutput = z.infer<typeof WritebackCollectOutput>;

/**
 * The error a state machine's Catch puts in the state (`$.error`): `{ Error, Cause }`, and `task`
 * when a write-back task's step met an error that stops the whole run (statemachine/definition.ts
 * RUN_LEVEL_WRITEBACK_ERRORS, the `<task> stops the run` state): the Report of the failure
 * records it against that task.
 */
export const CaughtError = z.looseObject({
  Error: z.string().optional(),
  Cause: z.string().optional(),
  task: z.string().min(1).optional(),
});
export type CaughtError = z.input<typeof CaughtError>;

/** The Report step's input: the run, and the error that stopped it when one did. */
export const ReportInput = z.strictObject({
  runId: RunId,
  /** From the state machine's Catch (`$.error`): `{ Error, Cause }`. */
  error: CaughtError.optional(),
});
export type ReportInput = z.input<typeof ReportInput>;

/**
 * The same function's other input: a write-back task whose step (plan, push, collect) failed, by
 * the state machine's Catch, recorded before the tasks after it run (writeback/report.ts
 * `recordTaskFailure`). Told apart from {@link ReportInput} by its `task`.
 */
export const TaskFailureInput = z.strictObject({
  runId: RunId,
  task: z.string().min(1),
  error: CaughtError,
});
export type TaskFailureInput = z.input<typeof TaskFailureInput>;

/** What recording a task's failure returns: the task and its error as stored (bounded). */
export const TaskFailureOutput = z.strictObject({
  runId: RunId,
  task: z.string(),
  taskFailed: z.literal(true),
  error: z.string(),
});
export type TaskFailureOutput = z.infer<typeof TaskFailureOutput>;

/** The longest error kept of a write-back task that failed (its summary's `error`). */
export const MAX_TASK_ERROR_CHARS = 2_000;

/**
 * The longest Cause of a run whose write-back tasks failed: well within the 32,768 characters
 * Step Functions keeps of a Cause; the whole errors are in `roundtrip.runs`.
 */
export const MAX_FAILED_TASKS_CAUSE_CHARS = 8_000;

/**
 * The longest `reason` of the Report's answer to the state machine, which keeps it in the
 * execution's state (limited to 256 KiB): the whole reason, one per failed task, is
 * `roundtrip.runs.error`.
 */
export const MAX_REPORTED_REASON_CHARS = 8_000;

/** Per write-back task, as written to the run's summary. */
export const WritebackTaskSummary = z.strictObject({
  sourceRows: z.number().int().nonnegative(),
  /** Rows the plan refused for what the source holds (judged by `maxRejectRate`). */
  rejected: z.number().int().nonnegative(),
  /**
   * Rows kept back for another run's send of their key ({@link HELD_BACK_CODES}): by the plan, and
   * by the push (`heldBackAtPush` of them, which are among `changed`).
   */
  heldBack: z.number().int().nonnegative(),
  /**
   * The records of `changed` the push kept back (insert keys another run took since the plan):
   * `sourceRows = rejected + (heldBack - heldBackAtPush) + unchanged + changed`.
   */
  heldBackAtPush: z.number().int().nonnegative(),
  /**
   * Of `heldBack`, the keys the task's previous run held back too: two runs in a row, so not the
   * one-run wait after a crash (a Bulk job Salesforce does not finish, an insert whose outcome is
   * to be recorded with `roundtrip resolve`). Non-zero, the run notifies even when it succeeded
   * (notify.ts).
   */
  heldBackRepeatedly: z.number().int().nonnegative(),
  /**
   * With `heldBackRepeatedly`: the run from which each run of the task held back keys its previous
   * run held back too (the first run of that streak).
   */
  heldBackSince: RunId.optional(),
  /**
   * The records of `changed` the push did not send because a run that planned later had synced
   * their key (update, upsert): `changed = written + failed + heldBackAtPush + superseded` once
   * every record has an outcome. 0 in a summary stored before it was counted.
   */
  superseded: z.number().int().nonnegative(),
  unchanged: z.number().int().nonnegative(),
  changed: z.number().int().nonnegative(),
  written: z.number().int().nonnegative(),
  /**
   * Upsert: the records of `written` Salesforce created as a second record, the key of the record
   * the task had synced having been changed in Salesforce (`KEY_CHANGED_RECORD_CREATED` in
   * roundtrip.writeback_errors; writeback/results.ts). Written, not failed. Absent when none.
   */
  secondRecords: z.number().int().nonnegative().optional(),
  failed: z.number().int().nonnegative(),
  /** Records sent by a push that never finished, with no outcome recorded (see the ledger). */
  outcomeUnknown: z.number().int().nonnegative(),
  apiCalls: z.number().int().nonnegative(),
  api: WritebackApi,
  durationMs: z.number().int().nonnegative(),
  failureRateExceeded: z.boolean(),
  /**
   * The plan rejected more of the rows it judges than `maxRejectRate` allows (every source row;
   * for insert, `sourceRows - unchanged`, those whose key is not inserted yet): the run failed.
   */
  rejectRateExceeded: z.boolean(),
  /**
   * The error of the step (plan, push, collect) that stopped this task, as recorded when it was
   * caught (at most {@link MAX_TASK_ERROR_CHARS} characters): the tasks after it ran, and the run
   * failed at its end. Absent for a task that ran to its end.
   */
  error: z.string().optional(),
});
export type WritebackTaskSummary = z.infer<typeof WritebackTaskSummary>;

/** What Report returns: the run's final status. */
export const ReportOutput = z.strictObject({
  runId: RunId,
  status: z.enum(['succeeded', 'failed']),
  /**
   * Why it failed, when it did. In the step's answer (the execution's state) at most
   * {@link MAX_REPORTED_REASON_CHARS} characters; the whole is `roundtrip.runs.error`.
   */
  reason: z.string().optional(),
  /**
   * Each write-back task's figures. In the step's answer without their `error` (the execution's
   * state is limited to 256 KiB, and a failed execution has no output to read them from): the
   * errors are in `roundtrip.runs` (`summary.writeback.<task>.error`).
   */
  writeback: z.record(z.string(), WritebackTaskSummary),
  /**
   * The write-back tasks a step error stopped (their summary's `error`), in the config's order,
   * and the Cause of the Fail state the run then ends in (at most {@link MAX_FAILED_TASKS_CAUSE_CHARS}
   * characters: it names each, its error shortened to fit). Absent when none failed.
   */
  failedTasks: z.strictObject({ tasks: z.array(z.string()).min(1), cause: z.string() }).optional(),
  /**
   * Prepare's Salesforce calls (its `/limits` and forecast `COUNT()`s), when it made any: recorded
   * also when it failed, which its own output then cannot say.
   */
  prepare: z.strictObject({ apiCalls: z.number().int().nonnegative() }).optional(),
  /**
   * Each Salesforce extract task's calls over all its steps and attempts, by task, when it made
   * any: recorded also when a step failed, which has no output to say them.
   */
  extract: z.record(z.string(), z.strictObject({ apiCalls: z.number().int().nonnegative() })).optional(),
  /**
   * This Report's notification of the run (a failed run, records held back again, second records) was due and the
   * topic did not take it (writeback/notify.ts `notifyRun`): the run is not told of. Measured as
   * `NotificationsFailed`, on which the stack alarms. Absent when it was sent or none was due.
   */
  notificationFailed: z.literal(true).optional(),
});
export type ReportOutput = z.infer<typeof ReportOutput>;

/**
 * Parses a step's event with its schema. A malformed event is the state machine's bug, not a
 * passing condition: a TerminalError naming the step and every problem (path: message).
 */
export function parseStepInput<S extends z.ZodType>(step: string, schema: S, event: unknown): z.infer<S> {
  const result = schema.safeParse(event);
  if (result.success) return result.data;
  throw new TerminalError(`Invalid input of step ${step}: ${problemsOf(result.error, '(root)')}`);
}

/**
 * Every problem of a failed parse, as `path: message; …`. A problem of the whole value (an array
 * where an object belongs, an unknown top-level key) has no path: it reads `rootLabel: message`,
 * or the bare message where no label is given because the words before it already name the
 * value (`roundtrip start`'s `--input {…}: Unrecognized key: "ful"`).
 */
export function problemsOf(error: z.ZodError, rootLabel?: string): string {
  return error.issues
    .map((i) => {
      const where = i.path.length ? i.path.join('.') : rootLabel;
      return where === undefined ? i.message : `${where}: ${i.message}`;
    })
    .join('; ');
}

/**
 * Checks what a step answered against the contract the state machine hands on (the next step's
 * input schema, or the step's output schema) and answers it unchanged: the in-process drivers
 * (runWriteback, runSalesforceTask) call it between steps, so that an output the next Lambda
 * would refuse fails where it is made, in every test that runs them, not only in AWS.
 */
export function checkStepOutput<S extends z.ZodType, T extends z.infer<S>>(
  step: string,
  schema: S,
  output: T,
): T {
  const result = schema.safeParse(output);
  if (result.success) return output;
  throw new TerminalError(`Invalid output of step ${step}: ${problemsOf(result.error, '(root)')}`);
}
