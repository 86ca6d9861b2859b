/**
 * The run as a Step Functions state graph (DESIGN.md §1), built from the pipeline config: a pure
 * function of (scope, functions, config). Standard workflow, JSONPath only, and only what
 * `aws-local-stepfunctions` 3.x also runs (DESIGN.md §5): Task, Parallel, Choice, Wait, Pass,
 * Succeed and Fail states, Retry/Catch, InputPath/Parameters/ResultSelector/ResultPath, the
 * intrinsics `States.ArrayContains`, `States.Format`, `States.Hash` and `States.MathAdd`, and the context object's
 * `$$.Execution.Name`. No JSONata, no variables, no Map with an ItemReader.
 *
 * ```
 * Prepare ─► Extract (Parallel: one branch per extract task) ─► Transform
 *         ─► per write-back task: plan ─► route ─► push ─► [wait ─► collect]* ─►
 *         ─► Report ─► Run succeeded | Write-back tasks failed | Write-back failed
 * a write-back task's step error ─► <task> record failure ─► the next write-back task
 *   (but those of RUN_LEVEL_WRITEBACK_ERRORS, and a failure to record it ─► <task> stops the run
 *   ─► Report failure)
 * any other caught error ─► Report failure ─► Run failed
 * ```
 *
 * Binding a Task state to its handler (what statemachine/local.ts needs): every Lambda Task has
 * the plain function ARN as its `Resource` (`LambdaInvoke` with `payloadResponseOnly`), and the
 * function is named `roundtrip-<pipeline>-<step.functionSuffix>` ({@link functionName}). The
 * handler file of a step is `lambdas/handlers/<step.handler>.ts` ({@link PIPELINE_STEPS}).
 * {@link buildDefinition} also returns `taskStates`: state name → step key (or `'athenaStart'`,
 * `'athenaQuery'`, `'athenaStop'` for the native Athena tasks, which a local run binds to the
 * Athena client), so a runner needs no ARN parsing at all.
 *
 * The run id is the execution name (`$$.Execution.Name`): a retried Prepare, and the Report of
 * a run that failed in Prepare, find the same run. A local runner passes the name in the
 * context object (`{ Execution: { Name } }`).
 */
import { Aws, Duration } from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import {
  athenaQueryTimeoutMinutes,
  MAX_ATHENA_QUERY_TIMEOUT_MINUTES,
  type AthenaExtractTask,
  type PipelineConfig,
  type SalesforceExtractTask,
  type WritebackTask,
} from '../lambdas/config';
import { ERROR_NAMES } from '../lambdas/shared/errors';
import { ATHENA_MAX_QUERIES_PER_TASK } from '../lambdas/connectors/athena/tokens';
import {
  ATHENA_START_REFUSAL_PATTERNS,
  athenaStartRefusedPrefix,
  type AthenaStartRefusal,
} from '../lambdas/connectors/athena/errors';
import { RUN_TIMEOUT_HOURS } from '../lambdas/core/contracts';
import { extractConfigPath } from '../lambdas/core/salesforce-read';

/** One Lambda step of the run: its handler file, function name suffix and Lambda timeout. */
export interface PipelineStep {
  /** `lambdas/handlers/<handler>.ts` */
  readonly handler: string;
  /** The function is named `roundtrip-<pipeline>-<functionSuffix>` (at most 10 characters). */
  readonly functionSuffix: string;
  /** The Lambda timeout; the Task state times out a little later ({@link TASK_TIMEOUT_MARGIN_SECONDS}). */
  readonly timeoutSeconds: number;
  /** Memory in MB: sized to what the step holds (streams, not rows; DESIGN.md §1). */
  readonly memoryMb: number;
  /** Whether the step talks to Salesforce (and so reads its secret). */
  readonly salesforce: boolean;
}

/**
 * The Lambda steps. Timeouts: Lambda's maximum is 900 s (Lambda quotas, "Function timeout");
 * the long ones (extract, load, push, collect) stream up to millions of rows through COPY.
 * Memory: COPY streaming keeps a step under ~200 MB (BENCHMARKS.md); 1024 MB also buys CPU for
 * CSV parsing, since Lambda allocates CPU in proportion to memory.
 */
export const PIPELINE_STEPS = {
  prepare: {
    handler: 'prepare',
    functionSuffix: 'prepare',
    // Not less than the other Salesforce steps: Prepare signs in and sends a GET a task (`/limits`,
    // each Salesforce extract's COUNT()), one after another, and a hung GET fails only after its
    // sends' limits (3 × 120 s, after a sign-in of up to 60 s): a shorter Lambda would end first,
    // with Sandbox.Timedout, which names no call and is not retried.
    timeoutSeconds: 900,
    memoryMb: 512,
    salesforce: true,
  },
  extractSalesforce: {
    handler: 'extract-salesforce',
    functionSuffix: 'sf-extract',
    timeoutSeconds: 900,
    memoryMb: 1024,
    salesforce: true,
  },
  checkSalesforceExtract: {
    handler: 'extract-salesforce-check',
    functionSuffix: 'sf-check',
    timeoutSeconds: 900,
    memoryMb: 1024,
    salesforce: true,
  },
  loadAthena: {
    handler: 'load-athena',
    functionSuffix: 'ath-load',
    timeoutSeconds: 900,
    memoryMb: 1024,
    salesforce: false,
  },
  transform: {
    handler: 'transform',
    functionSuffix: 'transform',
    timeoutSeconds: 900,
    memoryMb: 256,
    salesforce: false,
  },
  planWriteback: {
    handler: 'writeback-plan',
    functionSuffix: 'wb-plan',
    timeoutSeconds: 900,
    memoryMb: 512,
    salesforce: true,
  },
  pushWriteback: {
    handler: 'writeback-push',
    functionSuffix: 'wb-push',
    timeoutSeconds: 900,
    memoryMb: 1024,
    salesforce: true,
  },
  collectWriteback: {
    handler: 'writeback-collect',
    functionSuffix: 'wb-collect',
    timeoutSeconds: 900,
    memoryMb: 1024,
    salesforce: true,
  },
  report: {
    handler: 'report',
    functionSuffix: 'report',
    // Not 120: every step reads the PostgreSQL secret (and a proxy's), which a Secrets Manager that
    // hangs fails named (TimeoutError, retried) only after the SDK's three sends of 35 s each; the
    // Report may also wait a minute for the migration lock and ten seconds for SNS. A shorter Lambda
    // ends first with Sandbox.Timedout, which names no call and is not retried. The prune of old
    // runs' details works within the time left, whatever it is.
    timeoutSeconds: 300,
    memoryMb: 256,
    salesforce: false,
  },
} as const satisfies Record<string, PipelineStep>;

/** A key of {@link PIPELINE_STEPS}. */
export type StepKey = keyof typeof PIPELINE_STEPS;

/** The steps, in run order. */
export const STEP_KEYS = Object.keys(PIPELINE_STEPS) as StepKey[];

/**
 * The function of a step, as the definition needs it: asked for only for the steps a Task state of
 * the definition invokes, so that a deployment creates those alone (lib/pipeline-stack.ts: no
 * function, and so no role that reads the secrets, for a step the pipeline never runs).
 */
export type PipelineFunctions = (step: StepKey) => lambda.IFunction;

/** `roundtrip-<pipeline>-<suffix>`: at most 10 + 32 + 1 + 10 = 53 of Lambda's 64 characters. */
export function functionName(pipeline: string, step: StepKey): string {
  return `roundtrip-${pipeline}-${PIPELINE_STEPS[step].functionSuffix}`;
}

/** How long a Task state waits beyond its Lambda's own timeout (a cold start, the invoke itself). */
export const TASK_TIMEOUT_MARGIN_SECONDS = 30;

/**
 * The time limit of the request-response Athena Tasks (the query's start, its stop): one API call
 * each, which Athena answers in well under a second; a call that hangs fails its Task with
 * `States.Timeout` instead of holding the run.
 */
export const ATHENA_CALL_TIMEOUT_SECONDS = 60;

/**
 * How long an Athena `.sync` Task waits for its query, and what sets that limit, as the message of
 * a timed-out query names it: the config's `athena.queryTimeoutMinutes`
 * ({@link configuredAthenaQueryTimeout}), or a shorter limit a local run builds its definition with
 * (statemachine/local.ts).
 */
export interface AthenaQueryTimeout {
  /** The Task's TimeoutSeconds (at least 1). */
  readonly seconds: number;
  /** The limit as the message says it: `32 minutes`, `1 s`. */
  readonly described: string;
  /** Where the limit is set and how to change it, in the message of a query that outlived it. */
  readonly setBy: string;
}

/** The deployed limit: `athena.queryTimeoutMinutes` (32 minutes by default). */
export function configuredAthenaQueryTimeout(config: Pick<PipelineConfig, 'athena'>): AthenaQueryTimeout {
  const minutes = athenaQueryTimeoutMinutes(config);
  return {
    seconds: minutes * 60,
    described: minutes === 1 ? '1 minute' : `${minutes} minutes`,
    setBy: `athena.queryTimeoutMinutes in the config: raise it there, up to ${MAX_ATHENA_QUERY_TIMEOUT_MINUTES}, if the query needs longer and the Athena DML query timeout of the account allows it`,
  };
}

/** Options of {@link buildDefinition}. */
export interface DefinitionOptions {
  /** @default configuredAthenaQueryTimeout(config) */
  readonly athenaQueryTimeout?: AthenaQueryTimeout;
}

/** The whole run may take at most this long; a longer run is a timed-out execution (alarmed). */
export const RUN_TIMEOUT = Duration.hours(RUN_TIMEOUT_HOURS);

/**
 * Errors a retry can fix: our {@link ERROR_NAMES.transient}, and the Lambda service errors that
 * the Step Functions guide says to retry ("Handle transient Lambda service exceptions").
 */
export const TRANSIENT_LAMBDA_ERRORS = [
  ERROR_NAMES.transient,
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
  'Lambda.TooManyRequestsException',
  'Lambda.ClientExecutionTimeoutException',
] as const;

/**
 * The errors of a Lambda function that is not ready to run, which its invocation meets before any
 * of its code runs (so a retry cannot do anything twice). A function in a VPC left idle for weeks
 * is made `Inactive` (Lambda reclaims its network interfaces): "When you try to invoke a function
 * that is inactive, the invocation fails and Lambda sets the function to pending state until the
 * function resources are recreated" (Lambda developer guide, "Lambda function states"), the first
 * invocation with ResourceNotReadyException ("The function is inactive and its VPC connection is
 * no longer available. Wait for the VPC connection to reestablish and try again", Lambda API
 * reference, Invoke), those while it is `Pending` with ResourceConflictException ("The operation
 * cannot be performed at this time. The function is currently in the following state: Pending"),
 * and ENINotReadyException while its network interface is not ready yet. A pipeline scheduled
 * weekly or monthly meets it at each of its steps' first invocation of a run. While Lambda sets
 * the function's network up, EC2 may throttle it or fail on its side: EC2ThrottledException ("Amazon
 * EC2 throttled Lambda during Lambda function initialization using the execution role provided for
 * the function") and EC2UnexpectedException ("Lambda received an unexpected Amazon EC2 client
 * exception while setting up for the Lambda function"), Invoke's errors (HTTP 502) that a moment
 * later clears; no code of the function ran either. (Not EC2AccessDeniedException, nor
 * ENILimitReachedException and SubnetIPAddressLimitReachedException: a role, a quota or a subnet
 * to change, which two minutes of waiting do not.)
 */
export const FUNCTION_NOT_READY_ERRORS = [
  'Lambda.ResourceNotReadyException',
  'Lambda.ResourceConflictException',
  'Lambda.ENINotReadyException',
  'Lambda.EC2ThrottledException',
  'Lambda.EC2UnexpectedException',
] as const;

/**
 * The retry of a function not ready to run ({@link FUNCTION_NOT_READY_ERRORS}): 10, 20, 40 and
 * 60 s, over two minutes in all, for the minute and a half Lambda is said to take to make its
 * network interface again. Without jitter: the wait is for the function, not to spread a crowd.
 * (No longer: it counts in an Athena extract's quiet stretch, before the load's first statement,
 * which ATHENA_QUIET_OVERHEAD_MINUTES bounds; test/infra/definition.test.ts.)
 */
export const FUNCTION_NOT_READY_RETRY = {
  interval: Duration.seconds(10),
  backoffRate: 2,
  maxAttempts: 4,
  maxDelay: Duration.seconds(60),
  jitterStrategy: sfn.JitterType.NONE,
} as const;

/** The error of a `.sync` Athena query that ran and ended FAILED or CANCELLED (athena-wire.md). */
export const ATHENA_QUERY_FAILED = 'States.TaskFailed';

/**
 * The error of an Athena start the service refused as asked: a query with a syntax error
 * (`MALFORMED_QUERY`: Athena parses it at StartQueryExecution, athena-wire.md), and a request it
 * cannot run (an unknown workgroup, no output location). Not retried: the same request is refused
 * again.
 */
export const ATHENA_INVALID_REQUEST = 'Athena.InvalidRequestException';

/**
 * Athena API errors a retry of the `.sync` task can fix (throttling, server side). Athena answers a
 * start over the active-query quota `TooManyRequestsException`, and any call over its rate quota
 * (StartQueryExecution 20/s) `ThrottlingException: Rate exceeded` (athena-wire.md, "Quotas"; the
 * API reference's common errors). ThrottlingException is not in Athena's model: Step Functions may
 * name it as such or after the SDK's base exception of the service, as it does Lambda's
 * (`Lambda.AWSLambdaException`), so both names are retried. (unverified: no document gives the
 * name; retrying another error of that base, AccessDenied say, only delays its failure.)
 */
export const TRANSIENT_ATHENA_ERRORS = [
  'Athena.TooManyRequestsException',
  'Athena.ThrottlingException',
  'Athena.AmazonAthenaException',
  'Athena.InternalServerException',
] as const;

/**
 * The retry policy of every Task: exponential backoff (2, 4, 8, 16, 32 s, capped at 60 s) with
 * full jitter, so that parallel branches hitting one throttle do not retry in lockstep.
 */
export const TRANSIENT_RETRY = {
  interval: Duration.seconds(2),
  backoffRate: 2,
  maxAttempts: 5,
  maxDelay: Duration.seconds(60),
  jitterStrategy: sfn.JitterType.FULL,
} as const;

/**
 * The retry of a write-back push or collect that found its task held by another invocation
 * (TaskBusyError): 20 s, then ×1.5 up to 2 min, 12 attempts — 18 minutes in all, longer than a
 * Lambda can run (15), so the holder has finished or died (releasing the lock) by the last one.
 * Without jitter: full jitter would draw each wait between 0 and its interval, about 9 minutes
 * in all on average, and then the last attempt could come while the holder still runs; and there
 * is no crowd to spread, only the one holder to outwait.
 */
export const BUSY_RETRY = {
  interval: Duration.seconds(20),
  backoffRate: 1.5,
  maxAttempts: 12,
  maxDelay: Duration.seconds(120),
  jitterStrategy: sfn.JitterType.NONE,
} as const;

/**
 * The retry of a write-back push that found another run's push of its task going on over several
 * invocations (PushGoingOnError: that push handed on, or waits for its Bulk jobs): every 2
 * minutes, 60 attempts — two hours, the longest such a push is expected to take (a million records
 * through Composite calls of 3–5 s each is under 90 minutes), within the run's 12-hour timeout.
 * A run whose steps stopped starting holds no one back (push.ts), so this never waits on the dead.
 */
export const PUSH_GOING_ON_RETRY = {
  interval: Duration.seconds(120),
  backoffRate: 1,
  maxAttempts: 60,
  jitterStrategy: sfn.JitterType.NONE,
} as const;

/**
 * How Step Functions names a Lambda that died without answering: "Unhandled errors in Lambda are
 * reported as Lambda.Unknown … These include out-of-memory errors and function timeouts" (Step
 * Functions Developer Guide, "Handle Lambda service exceptions"); newer runtimes report a timeout
 * as `Sandbox.Timedout`.
 */
export const LAMBDA_DIED_ERRORS = ['Lambda.Unknown', 'Sandbox.Timedout'] as const;

/**
 * The retry of a write-back push or collect whose Lambda died (its 900 s ran out: a large
 * Collections push, a call that hung late in the step): twice, a minute apart. Each attempt goes
 * on from the ledger where the last one stopped (records sent are resent to the same Ids, inserts
 * looked up, Bulk jobs re-attached), and the dead Lambda's connection, closed with it, released
 * the task's lock. Other steps are not retried on it: a transform or an extract that outgrew its
 * Lambda would only do so again.
 */
export const LAMBDA_DIED_RETRY = {
  interval: Duration.seconds(60),
  backoffRate: 2,
  maxAttempts: 2,
  jitterStrategy: sfn.JitterType.NONE,
} as const;

/** The steps that take a task's write-back lock (lambdas/core/writeback/push.ts withTaskLock). */
export const LOCKING_STEPS: ReadonlySet<StepKey> = new Set<StepKey>(['pushWriteback', 'collectWriteback']);

/**
 * Where a caught error is put in the state (`{ Error, Cause }`; with `task` when a write-back task's
 * error stops the run; `{ task, taskFailed }` once a write-back task's error is recorded).
 */
export const ERROR_PATH = '$.error';

/**
 * The errors of a write-back step that stop the whole run at once (to its Report failure, the
 * task named: `<task> stops the run`), not only their task: every other error of a task's plan,
 * push or collect is about the task (its source, its config, its object's describe, Salesforce
 * refusing its job) and is recorded against it, and the tasks after it run (docs/writeback.md, "A
 * write-back task that fails"). Run-level are the errors of the services every task uses:
 * - a {@link ERROR_NAMES.transient} left after the retries: Salesforce unreachable, throttling or
 *   answering 5xx, the connection to PostgreSQL lost, Secrets Manager failing. Each later task
 *   would spend its own retries against the same service (N times the time and the calls) and
 *   fail the same way;
 * - the Lambda service's own errors ({@link TRANSIENT_LAMBDA_ERRORS} but ours, and a function not
 *   ready to run, {@link FUNCTION_NOT_READY_ERRORS}), left after the retries, for the same reason;
 * - the org's daily API allowance spent (every later call would be refused too);
 * - Salesforce refusing the sign-in for its credentials, or a login URL that takes no sign-in
 *   ({@link ERROR_NAMES.signInRefused}): every later task would sign in with the same secret and
 *   URL and be refused the same way, and each refusal counts toward Salesforce's lockout of the
 *   user ("Maximum invalid login attempts"): a run of five write-back tasks with a changed
 *   password would spend five of them. (A session that expired is not one: the connector signs in
 *   again once, and only that sign-in's refusal is.)
 * - PostgreSQL refusing the user or password ({@link ERROR_NAMES.postgresAuth}, after the pool
 *   read the secret again): a step's Lambda connects afresh once its connections idled out, so a
 *   password changed mid-run is met by the next step, and every later one would be refused too.
 *   (Recording the task's failure needs the same database, so it would mostly fail and stop the
 *   run anyway; but not when the report function still holds a connection made before.) So does
 *   a database missing ({@link ERROR_NAMES.postgresDatabaseMissing}: dropped, renamed, or the
 *   secret rotated to another name): every later step connects to the same one.
 * - a task held by another invocation past all the waits for it (TaskBusyError, PushGoingOnError:
 *   another execution of the pipeline is sending, and the run is not to race it task after task).
 * A Lambda that died (Lambda.Unknown, Sandbox.Timedout: out of time or memory) or a Task that timed
 * out stays the task's: its size, not a service, is the likely cause.
 * The steps before the write-back (Prepare, the extracts, the transform) stop the run as before:
 * the write-backs read what they produce.
 */
export const RUN_LEVEL_WRITEBACK_ERRORS = [
  ...TRANSIENT_LAMBDA_ERRORS,
  ...FUNCTION_NOT_READY_ERRORS,
  ERROR_NAMES.apiLimit,
  ERROR_NAMES.signInRefused,
  ERROR_NAMES.postgresAuth,
  ERROR_NAMES.postgresDatabaseMissing,
  ERROR_NAMES.busy,
  ERROR_NAMES.pushGoingOn,
] as const;

/** The names of the states of one task (each at most the 80 characters Step Functions allows). */
export function taskStateNames(task: string) {
  return {
    select: `${task} select`,
    runOrSkip: `${task} run or skip`,
    skipped: `${task} skipped`,
    failed: `${task} failed`,
    // Salesforce extract
    extract: `${task} extract`,
    bulkPending: `${task} bulk pending`,
    wait: `${task} wait`,
    check: `${task} check`,
    extracted: `${task} extracted`,
    // Athena extract
    start: `${task} start`,
    query: `${task} query`,
    queryFailed: `${task} query failed`,
    queryRefused: `${task} query refused`,
    startRefused: `${task} refused`,
    badWorkgroup: `${task} bad workgroup`,
    badOutput: `${task} bad output`,
    apiFailed: `${task} api failed`,
    apiError: `${task} api error`,
    stop: `${task} stop`,
    timedOut: `${task} timed out`,
    notStopped: `${task} not stopped`,
    requery: `${task} requery`,
    requeryWait: `${task} requery wait`,
    load: `${task} load`,
    // write-back
    plan: `${task} plan`,
    route: `${task} route`,
    nothingToSend: `${task} nothing to send`,
    push: `${task} push`,
    pushBulk: `${task} push bulk`,
    collect: `${task} collect`,
    pushed: `${task} pushed`,
    recordFailure: `${task} record failure`,
    stopsRun: `${task} stops the run`,
    next: `${task} next`,
  } as const;
}

/** The names of the run-level states. */
export const RUN_STATES = {
  prepare: 'Prepare',
  skipCheck: 'Another run going',
  skipped: 'Run skipped',
  extract: 'Extract',
  transform: 'Transform',
  report: 'Report',
  reportFailure: 'Report failure',
  checkOutcome: 'Run outcome',
  succeeded: 'Run succeeded',
  writebackTasksFailed: 'Write-back tasks failed',
  writebackFailed: 'Write-back failed',
  writebackFailedUnsaid: 'Write-back failed (no reason reported)',
  failed: 'Run failed',
} as const;

/**
 * The error name of a run that ends because a write-back passed its `maxFailureRate` or its
 * `maxRejectRate`, or sent keyless inserts whose outcome is unknown (the name predates the
 * others); the cause is the Report's reason.
 */
export const WRITEBACK_FAILED_ERROR = ERROR_NAMES.writebackFailed;

/**
 * The error name of a run whose write-back tasks failed in a step (and the tasks after them ran):
 * its Cause names each and its error (the Report's `failedTasks.cause`).
 */
export const WRITEBACK_TASKS_FAILED_ERROR = ERROR_NAMES.writebackTasksFailed;

/**
 * What a Task state runs: a Lambda step, or one of the native Athena calls: the query's start
 * (`athenaStart`, request-response: its QueryExecutionId), the query waited for (`athenaQuery`,
 * `.sync`), the stop of a query that outlived its Task (`athenaStop`).
 */
export type TaskBinding = StepKey | 'athenaStart' | 'athenaQuery' | 'athenaStop';

/** What {@link buildDefinition} returns. */
export interface PipelineDefinition {
  /** The first state, chained to all others. */
  readonly start: sfn.IChainable;
  /** Every Task state's name → what it runs. */
  readonly taskStates: ReadonlyMap<string, TaskBinding>;
}

/** Everything the state machine role needs to be allowed for the Athena tasks is in lib/. */
interface Builder {
  readonly scope: Construct;
  readonly functions: PipelineFunctions;
  readonly config: PipelineConfig;
  readonly taskStates: Map<string, TaskBinding>;
  readonly athenaQueryTimeout: AthenaQueryTimeout;
}

function lambdaTask(
  b: Builder,
  name: string,
  step: StepKey,
  props: Partial<tasks.LambdaInvokeProps> = {},
): tasks.LambdaInvoke {
  const task = new tasks.LambdaInvoke(b.scope, name, {
    lambdaFunction: b.functions(step),
    // Plain `Resource: <function ARN>`: the output is the handler's return value, and a local
    // runner binds the state to the handler by the function's name.
    payloadResponseOnly: true,
    retryOnServiceExceptions: false, // replaced by TRANSIENT_RETRY, with jitter
    taskTimeout: sfn.Timeout.duration(
      Duration.seconds(PIPELINE_STEPS[step].timeoutSeconds + TASK_TIMEOUT_MARGIN_SECONDS),
    ),
    ...props,
  });
  if (LOCKING_STEPS.has(step)) {
    task.addRetry({ errors: [ERROR_NAMES.busy], ...BUSY_RETRY });
    task.addRetry({ errors: [...LAMBDA_DIED_ERRORS], ...LAMBDA_DIED_RETRY });
    if (step === 'pushWriteback') {
      task.addRetry({ errors: [ERROR_NAMES.pushGoingOn], ...PUSH_GOING_ON_RETRY });
    }
  }
  task.addRetry({ errors: [...FUNCTION_NOT_READY_ERRORS], ...FUNCTION_NOT_READY_RETRY });
  task.addRetry({ errors: [...TRANSIENT_LAMBDA_ERRORS], ...TRANSIENT_RETRY });
  b.taskStates.set(name, step);
  return task;
}

/** `States.ArrayContains(<list>, '<task>')`: task names cannot hold quotes or braces (config rule). */
function selected(listPath: string, task: string): string {
  return sfn.JsonPath.arrayContains(sfn.JsonPath.listAt(listPath), task);
}

/** A branch-level Fail that re-raises the caught error, so the Parallel's Catch sees its name. */
function reraise(b: Builder, name: string): sfn.Fail {
  return new sfn.Fail(b.scope, name, { errorPath: `${ERROR_PATH}.Error`, causePath: `${ERROR_PATH}.Cause` });
}

/** Select → run or skip: the branch of a task that `{"tasks": [...]}` may leave out. */
function selectOrSkip(
  b: Builder,
  task: string,
  listPath: string,
  parameters: Record<string, unknown>,
  run: sfn.IChainable,
): sfn.Chain {
  const names = taskStateNames(task);
  const select = new sfn.Pass(b.scope, names.select, {
    parameters: { ...parameters, selected: selected(listPath, task) },
  });
  const skipped = new sfn.Pass(b.scope, names.skipped, { parameters: { task, status: 'skipped' } });
  return select.next(
    new sfn.Choice(b.scope, names.runOrSkip)
      .when(sfn.Condition.booleanEquals('$.selected', true), run)
      .otherwise(skipped),
  );
}

function salesforceBranch(b: Builder, task: SalesforceExtractTask): sfn.Chain {
  const names = taskStateNames(task.name);
  const failed = reraise(b, names.failed);
  const extract = lambdaTask(b, names.extract, 'extractSalesforce', {
    payload: sfn.TaskInput.fromObject({ 'runId.$': '$.runId', task: task.name, 'full.$': '$.full' }),
  }).addCatch(failed, { resultPath: ERROR_PATH });
  // Bulk API 2.0 query jobs: the step returns `bulk-pending` with the wait before the next poll;
  // the check step answers with the same union (lambdas/core/contracts.ts).
  const check = lambdaTask(b, names.check, 'checkSalesforceExtract').addCatch(failed, {
    resultPath: ERROR_PATH,
  });
  const pending = new sfn.Choice(b.scope, names.bulkPending);
  const wait = new sfn.Wait(b.scope, names.wait, { time: sfn.WaitTime.secondsPath('$.waitSeconds') });
  pending
    .when(sfn.Condition.stringEquals('$.status', 'bulk-pending'), wait.next(check).next(pending))
    .otherwise(new sfn.Pass(b.scope, names.extracted));
  return selectOrSkip(
    b,
    task.name,
    '$.run.tasks.salesforce',
    { 'runId.$': '$.run.runId', 'full.$': '$.run.full' },
    extract.next(pending),
  );
}

/**
 * Whether a query that ran and failed is run again: the error is exactly `States.TaskFailed` (in
 * a Catch that name also matches every other error but a timeout: the Athena API errors, which
 * rerunning would not fix), fewer than {@link ATHENA_MAX_QUERIES_PER_TASK} queries ran, the query
 * was not cancelled and Athena does not say it is not retryable. The cause is the GetQueryExecution
 * response as JSON, the query's text included: only `"State":"CANCELLED"` means cancelled. A cause
 * that does not say (its shape for Athena is not documented) counts as retryable: a failed query
 * costs nothing (Athena bills no failed query), a rerun of a failure of the query's own making
 * only delays the same error.
 */
export function athenaRerunCondition(): sfn.Condition {
  const cause = `${ERROR_PATH}.Cause`;
  const says = (pattern: string): sfn.Condition => sfn.Condition.stringMatches(cause, pattern);
  // A JSON member of the cause, written with or without a space after the colon.
  const member = (name: string, value: string): sfn.Condition[] => [
    says(`*"${name}":${value}*`),
    says(`*"${name}": ${value}*`),
  ];
  return sfn.Condition.and(
    sfn.Condition.stringEquals(`${ERROR_PATH}.Error`, ATHENA_QUERY_FAILED),
    sfn.Condition.isString(cause),
    sfn.Condition.numberLessThan('$.queryAttempt', ATHENA_MAX_QUERIES_PER_TASK - 1),
    sfn.Condition.not(sfn.Condition.or(...member('State', '"CANCELLED"'))),
    sfn.Condition.or(...member('Retryable', 'true'), sfn.Condition.not(says('*Retryable*'))),
  );
}

/** How long the state machine waits before it runs a failed Athena query again. */
export const ATHENA_REQUERY_WAIT = Duration.seconds(30);

/**
 * Text put literally into a `States.Format` template: the template's own characters (`{`, `}`,
 * `'`, `\`) would need escaping, and none of the texts given has a reason to hold them (task and
 * workgroup names cannot: config rules).
 */
function formatLiteral(text: string): string {
  if (/['{}\\]/.test(text)) {
    throw new Error(`Cannot put ${JSON.stringify(text)} into a States.Format template: it holds ' { } or \\`);
  }
  return text;
}

/**
 * The Cause of a run whose Athena query outlived its Task's TimeoutSeconds, as a `States.Format`
 * call on the state: the task, the limit and what sets it, the query execution's id (from the
 * start, `$.started`) and workgroup, and whether StopQueryExecution stopped it (the Error of its
 * failure, `$.stopError`, when not). Step Functions' own error says only `States.Timeout`.
 */
export function athenaTimeoutCause(
  task: string,
  workgroup: string,
  limit: AthenaQueryTimeout,
  stopped: boolean,
): string {
  const head = `${formatLiteral(
    `The Athena query of extract task ${task} did not end within ${limit.described}, the limit of its Task state (${limit.setBy}). Query execution `,
  )}{}${formatLiteral(` in workgroup ${workgroup}`)}`;
  if (stopped) {
    const tail = formatLiteral(
      ' was stopped with StopQueryExecution (it bills the data scanned until then). Look it up by that id in the Athena console for its time queued and running and the data it scanned; a query that runs this long needs less data to read (partitions, fewer columns) or a lighter query',
    );
    return `States.Format('${head}${tail}', $.started.QueryExecutionId)`;
  }
  const tail = `${formatLiteral(' could not be stopped (StopQueryExecution failed with ')}{}${formatLiteral(
    '): it may still be running and billing the data it scans. Stop it in the Athena console or with: aws athena stop-query-execution --query-execution-id ',
  )}{}`;
  return `States.Format('${head}${tail}', $.started.QueryExecutionId, $.stopError.Error, $.started.QueryExecutionId)`;
}

function athenaBranch(b: Builder, task: AthenaExtractTask): sfn.Chain {
  const names = taskStateNames(task.name);
  const athena = b.config.athena;
  if (!athena) throw new Error(`Athena extract ${task.name} needs the config's "athena" section`);
  const failed = reraise(b, names.failed);
  const parameters: Record<string, unknown> = {
    QueryString: task.query,
    // Idempotent start: a retried task gets the same query execution back (Athena API,
    // StartQueryExecution "ClientRequestToken", 32-128 characters: a SHA-256 in hex is 64). A
    // rerun after a failed query is a new attempt with a token of its own: the same token would
    // only give the failed execution back.
    'ClientRequestToken.$': `States.Hash(States.Format('{}/{}/{}', $.runId, '${task.name}', $.queryAttempt), 'SHA-256')`,
    QueryExecutionContext: { Database: athena.database, Catalog: athena.catalog },
    WorkGroup: athena.workgroup,
    ...(athena.outputLocation ? { ResultConfiguration: { OutputLocation: athena.outputLocation } } : {}),
  };
  const credentials = athena.roleArn ? { Credentials: { RoleArn: athena.roleArn } } : {};
  // The query is started first on its own (request-response), so that its QueryExecutionId is in
  // the state before the `.sync` Task waits: a query that outlives that Task is then known by its
  // id, named in the run's error and stopped. The `.sync` Task starts it again with the same
  // ClientRequestToken, and Athena answers the same execution, not a second query ("If another
  // StartQueryExecution request is received, the same response is returned and another query is
  // not created", StartQueryExecution, ClientRequestToken).
  const start = new sfn.CustomState(b.scope, names.start, {
    stateJson: {
      Type: 'Task',
      Resource: `arn:${Aws.PARTITION}:states:::athena:startQueryExecution`,
      Parameters: parameters,
      ResultSelector: { 'QueryExecutionId.$': '$.QueryExecutionId' },
      ResultPath: '$.started',
      TimeoutSeconds: ATHENA_CALL_TIMEOUT_SECONDS,
      ...credentials,
    },
  });
  b.taskStates.set(names.start, 'athenaStart');
  const stateJson: Record<string, unknown> = {
    Type: 'Task',
    Resource: `arn:${Aws.PARTITION}:states:::athena:startQueryExecution.sync`,
    Parameters: parameters,
    // Only what the load reads (lambdas/core/contracts.ts AthenaQueryExecution).
    ResultSelector: {
      'QueryExecutionId.$': '$.QueryExecution.QueryExecutionId',
      'ResultConfiguration.$': '$.QueryExecution.ResultConfiguration',
      'Status.$': '$.QueryExecution.Status',
    },
    ResultPath: '$.QueryExecution',
    TimeoutSeconds: b.athenaQueryTimeout.seconds,
    ...credentials,
  };
  // A CustomState, not tasks.AthenaStartQueryExecution: that construct grants s3:* on "*" and
  // Glue write actions; lib/ grants the state machine exactly what these queries need.
  const query = new sfn.CustomState(b.scope, names.query, { stateJson });
  // A query that ran and FAILED (an internal Athena error, say) is run again under the next
  // attempt's token, after a pause, a bounded number of times (athenaRerunCondition).
  const requery = new sfn.Pass(b.scope, names.requery, {
    parameters: { 'runId.$': '$.runId', 'queryAttempt.$': 'States.MathAdd($.queryAttempt, 1)' },
  });
  const requeryWait = new sfn.Wait(b.scope, names.requeryWait, {
    time: sfn.WaitTime.duration(ATHENA_REQUERY_WAIT),
  });
  // A query that failed for good: the run's error names the task and its query's config path
  // before Athena's answer (readableFailure reads the GetQueryExecution JSON after it), so that a
  // pipeline with several Athena extracts says which query failed. Both are safe in a
  // States.Format template, as task names are (letters, digits, `_`, `.`, `-`).
  const refused = new sfn.Pass(b.scope, names.queryRefused, {
    parameters: {
      'Error.$': `${ERROR_PATH}.Error`,
      'Cause.$': `States.Format('Extract task ${task.name} (${extractConfigPath(b.config, task)}.query): {}', ${ERROR_PATH}.Cause)`,
    },
    resultPath: ERROR_PATH,
  });
  // A start Athena refused as asked (InvalidRequestException) names the config path its message is
  // about: the query (a syntax error), athena.outputLocation or athena.workgroup
  // (ATHENA_START_REFUSAL_PATTERNS, which the local path reads too).
  const refusedFor = (about: Exclude<AthenaStartRefusal, 'query'>, name: string): sfn.Pass =>
    new sfn.Pass(b.scope, name, {
      parameters: {
        'Error.$': `${ERROR_PATH}.Error`,
        'Cause.$': `States.Format('${formatLiteral(
          athenaStartRefusedPrefix(
            about,
            task.name,
            `${extractConfigPath(b.config, task)}.query`,
            athena.workgroup,
          ),
        )}{}', ${ERROR_PATH}.Cause)`,
      },
      resultPath: ERROR_PATH,
    });
  const about = (which: AthenaStartRefusal): sfn.Condition =>
    sfn.Condition.and(
      sfn.Condition.isString(`${ERROR_PATH}.Cause`),
      sfn.Condition.or(
        ...(ATHENA_START_REFUSAL_PATTERNS.find((r) => r.about === which)?.patterns ?? []).map((p) =>
          sfn.Condition.stringMatches(`${ERROR_PATH}.Cause`, p),
        ),
      ),
    );
  const startRefused = new sfn.Choice(b.scope, names.startRefused)
    .when(about('query'), refused)
    .when(about('outputLocation'), refusedFor('outputLocation', names.badOutput).next(failed))
    .when(about('workgroup'), refusedFor('workgroup', names.badWorkgroup).next(failed))
    .otherwise(refused);
  // Any other error of the Athena Tasks past their retries (throttling that outlasted them,
  // AccessDeniedException, the start's own time limit) names the task before Athena's words, when
  // the error has a Cause to put them in: with several Athena extracts, the run's error said which
  // service call failed but not for which task.
  const apiFailed = new sfn.Choice(b.scope, names.apiFailed)
    .when(
      sfn.Condition.isString(`${ERROR_PATH}.Cause`),
      new sfn.Pass(b.scope, names.apiError, {
        parameters: {
          'Error.$': `${ERROR_PATH}.Error`,
          'Cause.$': `States.Format('Extract task ${task.name}: {}', ${ERROR_PATH}.Cause)`,
        },
        resultPath: ERROR_PATH,
      }).next(failed),
    )
    .otherwise(failed);
  // The Catch on States.TaskFailed also catches the Athena API errors of the `.sync` Task (its
  // calls throttled past the retries, AccessDeniedException): those are not the query's, and are
  // named by the task alone.
  const queryFailed = new sfn.Choice(b.scope, names.queryFailed)
    .when(athenaRerunCondition(), requery.next(requeryWait).next(start))
    .when(sfn.Condition.stringEquals(`${ERROR_PATH}.Error`, ATHENA_QUERY_FAILED), refused.next(failed))
    .otherwise(apiFailed);
  // A query that outlived the Task (States.Timeout, which the Catch on States.TaskFailed does not
  // match): whether Step Functions stops it is documented nowhere (docs/deploy.md, "An Athena query
  // that takes too long"), so it is stopped here, by the role that runs it, and the run's error
  // says which query, the limit and what sets it, instead of the bare States.Timeout. Stopping a
  // query that has ended since changes nothing (athena-wire.md).
  const timedOut = new sfn.Pass(b.scope, names.timedOut, {
    parameters: {
      'Error.$': `${ERROR_PATH}.Error`,
      'Cause.$': athenaTimeoutCause(task.name, athena.workgroup, b.athenaQueryTimeout, true),
    },
    resultPath: ERROR_PATH,
  });
  const notStopped = new sfn.Pass(b.scope, names.notStopped, {
    parameters: {
      'Error.$': `${ERROR_PATH}.Error`,
      'Cause.$': athenaTimeoutCause(task.name, athena.workgroup, b.athenaQueryTimeout, false),
    },
    resultPath: ERROR_PATH,
  });
  const stop = new sfn.CustomState(b.scope, names.stop, {
    stateJson: {
      Type: 'Task',
      Resource: `arn:${Aws.PARTITION}:states:::athena:stopQueryExecution`,
      Parameters: { 'QueryExecutionId.$': '$.started.QueryExecutionId' },
      ResultPath: sfn.JsonPath.DISCARD,
      TimeoutSeconds: ATHENA_CALL_TIMEOUT_SECONDS,
      ...credentials,
    },
  });
  b.taskStates.set(names.stop, 'athenaStop');
  stop
    .addRetry({ errors: [...TRANSIENT_ATHENA_ERRORS], ...TRANSIENT_RETRY })
    .addCatch(notStopped, { resultPath: '$.stopError' });
  stop.next(timedOut);
  timedOut.next(failed);
  notStopped.next(failed);
  // A query Athena refuses at its start (a syntax error: InvalidRequestException, MALFORMED_QUERY;
  // athena-wire.md, StartQueryExecution) never becomes an execution that fails: named by its task
  // and config path all the same, as a query that ran and failed is; a start refused for the
  // workgroup or the result location names that setting instead (startRefused).
  start
    .addRetry({ errors: [...TRANSIENT_ATHENA_ERRORS], ...TRANSIENT_RETRY })
    .addCatch(startRefused, { errors: [ATHENA_INVALID_REQUEST], resultPath: ERROR_PATH })
    .addCatch(apiFailed, { resultPath: ERROR_PATH });
  query
    .addRetry({ errors: [...TRANSIENT_ATHENA_ERRORS], ...TRANSIENT_RETRY })
    .addCatch(queryFailed, { errors: [ATHENA_QUERY_FAILED], resultPath: ERROR_PATH })
    .addCatch(stop, { errors: [sfn.Errors.TIMEOUT], resultPath: ERROR_PATH })
    .addCatch(apiFailed, { resultPath: ERROR_PATH });
  b.taskStates.set(names.query, 'athenaQuery');
  const load = lambdaTask(b, names.load, 'loadAthena', {
    payload: sfn.TaskInput.fromObject({
      'runId.$': '$.runId',
      task: task.name,
      'QueryExecution.$': '$.QueryExecution',
    }),
  }).addCatch(failed, { resultPath: ERROR_PATH });
  return selectOrSkip(
    b,
    task.name,
    '$.run.tasks.athena',
    { 'runId.$': '$.run.runId', queryAttempt: 0 },
    start.next(query).next(load),
  );
}

function writebackChain(b: Builder, task: WritebackTask, runFailure: sfn.IChainable): sfn.Chain {
  const names = taskStateNames(task.name);
  const result = { resultPath: '$.wb' };
  const next = new sfn.Pass(b.scope, names.next);
  // An error of the services every task uses stops the run (RUN_LEVEL_WRITEBACK_ERRORS): the task
  // that met it is named beside the error (`$.error.task`), and its Report failure records it
  // against that task and says the tasks after it did not run.
  const stopsRun = new sfn.Pass(b.scope, names.stopsRun, {
    result: sfn.Result.fromString(task.name),
    resultPath: `${ERROR_PATH}.task`,
  });
  stopsRun.next(runFailure);
  // Any other step error is the task's: recorded (the report function, by the task's name), then
  // the next task runs. What stays in the state is a reference, `{ task, taskFailed }` in place of
  // the caught `{ Error, Cause }` (the error itself is in roundtrip.runs): nothing of a failed
  // task's error is carried on, so the state stays the same size however many tasks fail and
  // however long their errors (Step Functions fails an execution whose state passes 256 KiB). When
  // the failure cannot be recorded (PostgreSQL gone past the retries), the run stops with the
  // task's own error, still in `$.error` (a Catch's ResultPath applies to the state's input).
  const recordFailure = lambdaTask(b, names.recordFailure, 'report', {
    payload: sfn.TaskInput.fromObject({
      'runId.$': '$$.Execution.Name',
      task: task.name,
      'error.$': ERROR_PATH,
    }),
    resultSelector: { 'task.$': '$.task', 'taskFailed.$': '$.taskFailed' },
    resultPath: ERROR_PATH,
  }).addCatch(stopsRun, { resultPath: '$.recordError' });
  recordFailure.next(next);
  /** Catches a step's errors: those of the whole run stop it, any other goes to the task's record. */
  const caught = <T extends sfn.TaskStateBase>(state: T): T => {
    state.addCatch(stopsRun, { errors: [...RUN_LEVEL_WRITEBACK_ERRORS], resultPath: ERROR_PATH });
    state.addCatch(recordFailure, { resultPath: ERROR_PATH });
    return state;
  };
  const plan = caught(
    lambdaTask(b, names.plan, 'planWriteback', {
      payload: sfn.TaskInput.fromObject({
        'runId.$': '$.run.runId',
        task: task.name,
        'dryRun.$': '$.run.dryRun',
      }),
      ...result,
    }),
  );
  const pushPayload = sfn.TaskInput.fromObject({ 'runId.$': '$.run.runId', task: task.name });
  const push = caught(lambdaTask(b, names.push, 'pushWriteback', { payload: pushPayload, ...result }));
  const pushBulk = caught(
    lambdaTask(b, names.pushBulk, 'pushWriteback', { payload: pushPayload, ...result }),
  );
  // Collect's input is exactly the pending output of Push or of the previous Collect.
  const collect = caught(lambdaTask(b, names.collect, 'collectWriteback', { inputPath: '$.wb', ...result }));
  const done = new sfn.Pass(b.scope, names.pushed);
  const pending = new sfn.Choice(b.scope, names.bulkPending);
  // A push that ran out of Lambda time between two calls (push-pending) is called again at once;
  // it goes on from its ledger (lambdas/core/writeback/budget.ts). Bulk jobs still running
  // (bulk-pending, which has no `api`) are routed first: the rule that reads `$.wb.api` is then
  // reached only by outputs that have it. A rule reading a missing path is a States.Runtime error,
  // and the ASL spec does not say that And stops at its first false operand.
  const pushPending = sfn.Condition.stringEquals('$.wb.status', 'push-pending');
  pending
    .when(
      sfn.Condition.stringEquals('$.wb.status', 'bulk-pending'),
      new sfn.Wait(b.scope, names.wait, { time: sfn.WaitTime.secondsPath('$.wb.waitSeconds') })
        .next(collect)
        .next(pending),
    )
    .when(sfn.Condition.and(pushPending, sfn.Condition.stringEquals('$.wb.api', 'bulk')), pushBulk)
    .when(pushPending, push)
    .otherwise(done);
  const nothing = new sfn.Pass(b.scope, names.nothingToSend);
  const route = new sfn.Choice(b.scope, names.route)
    .when(
      sfn.Condition.or(
        sfn.Condition.stringEquals('$.wb.status', 'dry-run'),
        sfn.Condition.stringEquals('$.wb.api', 'none'),
      ),
      nothing,
    )
    .when(sfn.Condition.stringEquals('$.wb.api', 'bulk'), pushBulk.next(pending))
    .otherwise(push.next(pending));
  // The run's state is kept (write-back tasks run one after another on it): the Pass adds
  // `$.selection.selected` beside `$.run` instead of replacing the state.
  const select = new sfn.Pass(b.scope, names.select, {
    parameters: { selected: selected('$.run.tasks.writeback', task.name) },
    resultPath: '$.selection',
  });
  const skipped = new sfn.Pass(b.scope, names.skipped, {
    parameters: { task: task.name, status: 'skipped' },
    resultPath: '$.wb',
  });
  nothing.next(next);
  done.next(next);
  skipped.next(next);
  select.next(
    new sfn.Choice(b.scope, names.runOrSkip)
      .when(sfn.Condition.booleanEquals('$.selection.selected', true), plan.next(route))
      .otherwise(skipped),
  );
  return sfn.Chain.custom(select, [next], next);
}

/**
 * Builds the state graph of a pipeline in `scope` (one construct per state, named like the
 * state). `functions` gives the function of a step; it is asked only for the steps the config
 * uses (prepare and report always, the others as the extract tasks, the transform and the
 * write-back tasks need them: {@link PipelineDefinition.taskStates} lists them).
 */
export function buildDefinition(
  scope: Construct,
  functions: PipelineFunctions,
  config: PipelineConfig,
  options: DefinitionOptions = {},
): PipelineDefinition {
  const athenaQueryTimeout = options.athenaQueryTimeout ?? configuredAthenaQueryTimeout(config);
  if (!(Number.isInteger(athenaQueryTimeout.seconds) && athenaQueryTimeout.seconds >= 1)) {
    throw new RangeError(
      `athenaQueryTimeout.seconds must be a whole number of seconds from 1, got ${athenaQueryTimeout.seconds}`,
    );
  }
  const b: Builder = {
    scope: new Construct(scope, 'States'),
    functions,
    config,
    taskStates: new Map(),
    athenaQueryTimeout,
  };
  const catchTo = { resultPath: ERROR_PATH };

  const failed = new sfn.Fail(b.scope, RUN_STATES.failed, {
    errorPath: `${ERROR_PATH}.Error`,
    causePath: `${ERROR_PATH}.Cause`,
  });
  // The report of a failed run: the run id is the execution name, so it works even when
  // Prepare failed before returning one. If the report itself fails, the original error stays.
  const reportFailure = lambdaTask(b, RUN_STATES.reportFailure, 'report', {
    payload: sfn.TaskInput.fromObject({ 'runId.$': '$$.Execution.Name', 'error.$': ERROR_PATH }),
    resultPath: '$.report',
  }).addCatch(failed, { resultPath: '$.reportError' });
  reportFailure.next(failed);

  const prepare = lambdaTask(b, RUN_STATES.prepare, 'prepare', {
    payload: sfn.TaskInput.fromObject({
      'input.$': '$',
      'runId.$': '$$.Execution.Name',
      'executionArn.$': '$$.Execution.Id',
      'executionStartTime.$': '$$.Execution.StartTime',
    }),
    resultPath: '$.run',
  }).addCatch(reportFailure, catchTo);

  // A run started with onOverlap "skip" while another is still going ends here, recorded by
  // Prepare as skipped: nothing is read or sent twice, nothing to report.
  const skipped = new sfn.Choice(b.scope, RUN_STATES.skipCheck).when(
    sfn.Condition.isPresent('$.run.skipped'),
    new sfn.Succeed(b.scope, RUN_STATES.skipped, {
      comment: 'Another run of the pipeline is still going: this run is recorded as skipped',
    }),
  );
  let chain: sfn.Chain = sfn.Chain.start(prepare).next(skipped.afterwards({ includeOtherwise: true }));

  const branches: sfn.Chain[] = config.extract.map((task) =>
    task.from === 'salesforce' ? salesforceBranch(b, task) : athenaBranch(b, task),
  );
  if (branches.length > 0) {
    const extract = new sfn.Parallel(b.scope, RUN_STATES.extract, { resultPath: '$.extract' });
    for (const branch of branches) extract.branch(branch);
    extract.addCatch(reportFailure, catchTo);
    chain = chain.next(extract);
  }

  if (config.transform.length > 0) {
    const transform = lambdaTask(b, RUN_STATES.transform, 'transform', {
      payload: sfn.TaskInput.fromObject({ 'runId.$': '$.run.runId' }),
      resultPath: '$.transform',
    }).addCatch(reportFailure, catchTo);
    chain = chain.next(transform);
  }

  for (const task of config.writeback) chain = chain.next(writebackChain(b, task, reportFailure));

  const report = lambdaTask(b, RUN_STATES.report, 'report', {
    payload: sfn.TaskInput.fromObject({ 'runId.$': '$$.Execution.Name' }),
    resultPath: '$.report',
  }).addCatch(failed, { resultPath: ERROR_PATH });
  const outcome = new sfn.Choice(b.scope, RUN_STATES.checkOutcome)
    .when(
      sfn.Condition.isPresent('$.report.failedTasks'),
      new sfn.Fail(b.scope, RUN_STATES.writebackTasksFailed, {
        error: WRITEBACK_TASKS_FAILED_ERROR,
        causePath: '$.report.failedTasks.cause',
      }),
    )
    // The Report's reason (bounded for Step Functions) is the run's cause: which task, which limit
    // or which records of unknown outcome, as roundtrip.runs.error has it. A report without one
    // (none is written so) fails with the general cause.
    .when(
      sfn.Condition.and(
        sfn.Condition.stringEquals('$.report.status', 'failed'),
        sfn.Condition.isPresent('$.report.reason'),
      ),
      new sfn.Fail(b.scope, RUN_STATES.writebackFailed, {
        error: WRITEBACK_FAILED_ERROR,
        causePath: '$.report.reason',
      }),
    )
    .when(
      sfn.Condition.stringEquals('$.report.status', 'failed'),
      new sfn.Fail(b.scope, RUN_STATES.writebackFailedUnsaid, {
        error: WRITEBACK_FAILED_ERROR,
        cause:
          'A write-back task passed its maxFailureRate (records Salesforce refused) or its maxRejectRate (rows the plan rejected), or sent records whose outcome is unknown: the records are in roundtrip.writeback_errors, the reason and the summary in roundtrip.runs',
      }),
    )
    .otherwise(new sfn.Succeed(b.scope, RUN_STATES.succeeded));
  chain = chain.next(report).next(outcome);

  return { start: chain, taskStates: b.taskStates };
}
