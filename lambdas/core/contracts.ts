/**
 * The step contracts: every input and output that moves between the state machine and the
 * Lambda handlers, as zod schemas with their inferred types. This is the ONE place they are
 * defined; the state machine definition (statemachine/definition.ts) builds its states from
 * them and the handlers parse their events with them.
 *
 * Only small JSON moves between steps (a state's payload is capped at 256 KB, DESIGN.md §1):
 * ids, task names, counts, job ids. Rows never travel through the state machine.
 */
import { z } from 'zod';
import { TerminalError } from '../shared/errors';

/**
 * A run id: a Step Functions execution name (1–80 characters; only letters, digits, `-` and `_`
 * so that it also works in CloudWatch log streams and staging table names,
 * https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html#StepFunctions-StartExecution-request-name),
 * or one that {@link newRunId} allocates (time-sortable).
 */
export const RUN_ID_PATTERN = /^[A-Za-z0-9_-]{1,80}$/;

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
});
export type RunInput = z.infer<typeof RunInput>;

/**
 * What the Prepare step receives: the execution input, and from the state machine's context the
 * execution name (used as the run id, so that a retried Prepare is idempotent) and ARN.
 */
export const PrepareInput = z.strictObject({
  input: RunInput.default({}),
  /** @default a new time-sortable id ({@link newRunId}) */
  runId: RunId.optional(),
  executionArn: z.string().min(1).optional(),
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
  api: SalesforceReadApi,
  /** Salesforce API calls this task made, over all its steps (polls included). */
  apiCalls: z.number().int().nonnegative(),
  /** Whether this was a full read (override, `mode: 'full'`, first run, or new columns). */
  full: z.boolean(),
  /** The stored watermark after the load (ISO 8601), null while the object has no rows. */
  watermark: z.string().nullable(),
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
  /** Salesforce API calls this task made so far. */
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
});
export type AthenaLoadOutput = z.infer<typeof AthenaLoadOutput>;

/**
 * Parses a step's event with its schema. A malformed event is the state machine's bug, not a
 * passing condition: a TerminalError naming the step and every problem (path: message).
 */
export function parseStepInput<S extends z.ZodType>(step: string, schema: S, event: unknown): z.infer<S> {
  const result = schema.safeParse(event);
  if (result.success) return result.data;
  const problems = result.error.issues.map(
    (i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`,
  );
  throw new TerminalError(`Invalid input of step ${step}: ${problems.join('; ')}`);
}
