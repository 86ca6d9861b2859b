/**
 * Runs the pipeline's state machine on a laptop (DESIGN.md §5): the very ASL definition that the
 * CDK app synthesizes and deploys, executed by `aws-local-stepfunctions`, with
 * - each Lambda Task bound to its handler file's `createHandler` in this process (the same
 *   parse-and-call as the Lambda's), called with dependencies built for the laptop (bin/local),
 *   its event and its result passed through JSON exactly as Lambda would, and an error it throws
 *   reported as Step Functions reports a Lambda's: its name as the `Error`, the runtime's error
 *   payload (`{"errorType","errorMessage","trace"}`) as the `Cause`;
 * - the Athena `startQueryExecution.sync` Task bound to {@link runAthenaQuerySync}, which does what
 *   the service integration does, over the same Athena client the load step uses, and the
 *   request-response `startQueryExecution` and `stopQueryExecution` Tasks to the same calls
 *   ({@link runAthenaStart}, {@link runAthenaStop}); a query that does not end within the state's
 *   TimeoutSeconds fails the state with the library's own `States.Timeout`, which a Catch or Retry
 *   on `States.TaskFailed` does not match, as in AWS. The definition a laptop runs
 *   ({@link loadPipelineDefinition}) is built with a shorter limit,
 *   {@link LOCAL_ATHENA_TIMEOUT_SECONDS}, which the error of a query that outlives it then names;
 * - every Wait state and every Retry interval shortened (the definition's durations are sized
 *   for Salesforce and AWS, not for emulators on the same machine);
 * - a Wait's SecondsPath is read all the same: a missing path or a value that is not an integer of
 *   seconds fails the execution with `States.Runtime`, as in AWS;
 * - Step Functions' payload quota: a state's input (after Parameters), a Task's result, or a
 *   state's output over {@link MAX_PAYLOAD_BYTES} fails the execution with
 *   `States.DataLimitExceeded`, which no Retry or Catch handles (`States.ALL` included), as in AWS.
 *   `aws-local-stepfunctions` checks no size: without this a run that fails deployed passed here.
 *
 * - a Parallel branch's Task still running when the execution ends (another branch failed, and
 *   the run went on to its end) is waited for before the result is given: it spends its calls
 *   and records its figures as its Lambda would, and the caller reads them all.
 *
 * Nothing here decides what a run does: the definition does. A Task state without a local
 * binding is an error naming it, never a silent skip.
 *
 * aws-local-stepfunctions 3.x calls `Promise.withResolvers` (Node ≥ 22); on Node 20 it is
 * polyfilled here before the library is loaded (DESIGN.md §6).
 */
import {
  GetQueryExecutionCommand,
  StartQueryExecutionCommand,
  StopQueryExecutionCommand,
  type AthenaClient,
  type GetQueryExecutionCommandOutput,
  type StartQueryExecutionCommandInput,
} from '@aws-sdk/client-athena';
import type { StateMachineDefinition } from 'aws-local-stepfunctions';
import { ERROR_NAMES, WAITING_ERROR_NAMES } from '../lambdas/shared/errors';
import type { Clock, InvocationContext, TimeLeft } from '../lambdas/shared/clock';
import type { PipelineConfig } from '../lambdas/config';
import type { CoreDeps } from '../lambdas/core/deps';
import { givenDeps, type DepsProvider } from '../lambdas/handlers/deps';
import { withOwnCallCounts } from '../lambdas/shared/call-scope';
import * as extractSalesforceCheckHandler from '../lambdas/handlers/extract-salesforce-check';
import * as extractSalesforceHandler from '../lambdas/handlers/extract-salesforce';
import * as loadAthenaHandler from '../lambdas/handlers/load-athena';
import * as prepareHandler from '../lambdas/handlers/prepare';
import * as reportHandler from '../lambdas/handlers/report';
import * as transformHandler from '../lambdas/handlers/transform';
import * as writebackCollectHandler from '../lambdas/handlers/writeback-collect';
import * as writebackPlanHandler from '../lambdas/handlers/writeback-plan';
import * as writebackPushHandler from '../lambdas/handlers/writeback-push';

/** The Resource of Step Functions' Athena integration that waits for the query (athena-wire.md). */
export const ATHENA_SYNC_RESOURCE = 'arn:aws:states:::athena:startQueryExecution.sync';

/** The request-response Resources: start a query (its id back), stop one. */
export const ATHENA_START_RESOURCE = 'arn:aws:states:::athena:startQueryExecution';
export const ATHENA_STOP_RESOURCE = 'arn:aws:states:::athena:stopQueryExecution';

/** The error a failed `.sync` query raises in Step Functions (athena-wire.md, "Step Functions integration"). */
export const STATES_TASK_FAILED = 'States.TaskFailed';

/** Final states of an Athena query (Athena API reference, `QueryExecutionStatus.State`). */
const ATHENA_FINAL_STATES = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);

/** How long the local Athena binding waits between polls: Step Functions polls on its own schedule. */
export const LOCAL_ATHENA_POLL_MS = 200;

/**
 * How long an Athena `.sync` Task waits locally for its query before the state fails with
 * `States.Timeout` (deployed: `athena.queryTimeoutMinutes`, 32 by default):
 * {@link loadPipelineDefinition} builds the definition with it, so that the run's error names the
 * limit that held.
 */
export const LOCAL_ATHENA_TIMEOUT_SECONDS = 60;

/**
 * How long the binding of a `.sync` Task polls past the state's timeout before it stops: the
 * state has failed with `States.Timeout` by then (aws-local-stepfunctions raced the binding
 * against it), and nothing reads the binding's answer.
 */
const LOCAL_ATHENA_STOP_MARGIN_MS = 1_000;

/** The error of a binding stopped by its signal: never a state's, the state ended before. */
export class LocalBindingStoppedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LocalBindingStoppedError';
  }
}

/**
 * Local durations: every Wait state pauses this long, every Retry this long, instead of the
 * definition's seconds. Short enough for a demo, long enough that a Bulk poll loop on the
 * emulator does not spin. But for {@link WAITING_ERROR_NAMES}.
 */
export const DEFAULT_LOCAL_WAIT_MS = 250;
export const DEFAULT_LOCAL_RETRY_MS = 100;

/**
 * The local pause of each retrier of a state's `Retry` (aws-local-stepfunctions'
 * `retryIntervalOverrides`: milliseconds, or -1 for the definition's own interval): `retryMs` for
 * every one when given, else the definition's for a retrier of {@link WAITING_ERROR_NAMES} only and
 * {@link DEFAULT_LOCAL_RETRY_MS} for the others. Shortened like the others, a run waiting for
 * another (a deployed run's push on the same database, another run on the laptop) spent its
 * attempts in a second and stopped, though its message said it waited.
 */
export function localRetryIntervals(
  retry: readonly unknown[],
  retryMs: number | undefined,
): number | number[] {
  if (retryMs !== undefined) return retryMs;
  return retry.map((retrier) => {
    const errors = (retrier as { ErrorEquals?: unknown } | null)?.ErrorEquals;
    const waiting =
      Array.isArray(errors) && errors.length > 0 && errors.every((e) => WAITING_ERROR_NAMES.has(String(e)));
    return waiting ? -1 : DEFAULT_LOCAL_RETRY_MS;
  });
}

/** Node 20 lacks `Promise.withResolvers`, which aws-local-stepfunctions 3.x calls. */
export function polyfillPromiseWithResolvers(): void {
  const P = Promise as unknown as { withResolvers?: unknown };
  if (typeof P.withResolvers === 'function') return;
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value: function withResolvers<T>() {
      let resolve!: (value: T | PromiseLike<T>) => void;
      let reject!: (reason?: unknown) => void;
      const promise = new Promise<T>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise, resolve, reject };
    },
  });
}

/** The handlers a Task state can be bound to, named like their files in lambdas/handlers/. */
export const HANDLER_NAMES = [
  'prepare',
  'extract-salesforce',
  'extract-salesforce-check',
  'load-athena',
  'transform',
  'writeback-plan',
  'writeback-push',
  'writeback-collect',
  'report',
] as const;
export type HandlerName = (typeof HANDLER_NAMES)[number];

/**
 * What a Task state is bound to: a handler, or a native Athena call: the query's start
 * (request-response), the query waited for (`.sync`), the stop of a query.
 */
export type LocalTaskBinding = HandlerName | 'athenaStart' | 'athenaQuery' | 'athenaStop';

/**
 * Each handler file's `createHandler`: the very parse-and-call its Lambda `handler` runs, given
 * the laptop's deps instead of those its Lambda builds from the environment (the Lambda wraps
 * it in Powertools' logging, tracing and metrics, which a laptop run leaves out). Kept beside
 * {@link HANDLER_NAMES} so that a new handler fails the type check here until it is bound.
 */
export const LOCAL_HANDLERS: Record<
  HandlerName,
  (deps: DepsProvider) => (event: unknown, context?: InvocationContext) => Promise<unknown>
> = {
  prepare: prepareHandler.createHandler,
  'extract-salesforce': extractSalesforceHandler.createHandler,
  'extract-salesforce-check': extractSalesforceCheckHandler.createHandler,
  'load-athena': loadAthenaHandler.createHandler,
  transform: transformHandler.createHandler,
  'writeback-plan': writebackPlanHandler.createHandler,
  'writeback-push': writebackPushHandler.createHandler,
  'writeback-collect': writebackCollectHandler.createHandler,
  report: reportHandler.createHandler,
};

/** An error with the name Step Functions matches Retry and Catch on. */
export class LocalTaskError extends Error {
  constructor(name: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = name;
  }
}

/**
 * Step Functions' payload quota: a state's input and output, and a task's result, are at most
 * 256 KiB, counted as the bytes of their JSON text in UTF-8 (the 262144 of `StateExitedEventDetails`
 * `output`, Step Functions API reference; "Step Functions service quotas").
 */
export const MAX_PAYLOAD_BYTES = 262_144;

/** The terminal error of a payload over {@link MAX_PAYLOAD_BYTES}. */
export const STATES_DATA_LIMIT_EXCEEDED = 'States.DataLimitExceeded';

/** A States.Runtime error: the execution fails, and no Retry or Catch handles it. */
export const STATES_RUNTIME = 'States.Runtime';

/**
 * An error no Retry or Catch handles, `States.ALL` included: `States.Runtime` and
 * `States.DataLimitExceeded` (Step Functions developer guide, "Error names").
 * `aws-local-stepfunctions` reads `isRetryable` and `isCatchable` of the error a state throws (as
 * its own `States.Runtime` sets them).
 */
export class UncatchableStatesError extends LocalTaskError {
  readonly isRetryable = false;
  readonly isCatchable = false;
}

/** `States.DataLimitExceeded`: "a terminal error that can't be caught by the States.ALL error type". */
export class DataLimitExceededError extends UncatchableStatesError {
  constructor(message: string) {
    super(STATES_DATA_LIMIT_EXCEEDED, message);
  }
}

/**
 * The value at a plain `$.a.b` reference path in `input`, `{ found: false }` when a step of it is
 * missing. Only the paths the definition's Wait states use: anything else is refused by name.
 */
function atReferencePath(input: unknown, path: string): { found: true; value: unknown } | { found: false } {
  if (!/^\$(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(path)) {
    throw new Error(`The local runner reads only plain $.a.b paths in a Wait state, not ${path}`);
  }
  let value = input;
  for (const key of path.split('.').slice(1)) {
    if (value === null || typeof value !== 'object' || Array.isArray(value) || !(key in value)) {
      return { found: false };
    }
    value = (value as Record<string, unknown>)[key];
  }
  return { found: true, value };
}

/** The most seconds a Wait state takes (Step Functions developer guide, "Wait workflow state"). */
const MAX_WAIT_SECONDS = 99_999_999;

/**
 * What Step Functions makes of a Wait state's SecondsPath on `input`: the States.Runtime error of a
 * path the input lacks or of a value that is not an integer of seconds from 0, else undefined.
 * The local runner shortens every Wait, which makes aws-local-stepfunctions skip the path.
 */
export function waitSecondsPathError(
  state: string,
  secondsPath: string,
  input: unknown,
): UncatchableStatesError | undefined {
  const at = atReferencePath(input, secondsPath);
  const problem = !at.found
    ? `its input lacks ${secondsPath}`
    : Number.isInteger(at.value) && (at.value as number) >= 0 && (at.value as number) <= MAX_WAIT_SECONDS
      ? undefined
      : `${secondsPath} is ${JSON.stringify(at.value)}, not an integer of seconds from 0 to ${MAX_WAIT_SECONDS}`;
  if (!problem) return undefined;
  return new UncatchableStatesError(
    STATES_RUNTIME,
    `Wait state "${state}": its SecondsPath cannot be read: ${problem}. The deployed state machine fails the execution here with ${STATES_RUNTIME}, which no Catch handles: the step before it must answer the seconds to wait`,
  );
}

/** The size Step Functions counts for a payload: its JSON text's bytes in UTF-8. */
export function payloadBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value ?? null), 'utf8');
}

/**
 * The error for a payload over the quota, or undefined when it fits. `what` names it as a reader
 * finds it: `the output of state "Report"`, `the result of Task state "Plan"`.
 */
export function payloadOverLimit(what: string, value: unknown): DataLimitExceededError | undefined {
  const bytes = payloadBytes(value);
  if (bytes <= MAX_PAYLOAD_BYTES) return undefined;
  return new DataLimitExceededError(
    `${what} is ${bytes} bytes of JSON, over Step Functions' ${MAX_PAYLOAD_BYTES}-byte (256 KiB) payload quota: ` +
      `the deployed state machine fails the execution here with ${STATES_DATA_LIMIT_EXCEEDED}, which no Catch handles. ` +
      'Keep what moves between states small (ids, counts: DESIGN.md §1); rows and long texts belong in PostgreSQL',
  );
}

/** Options of {@link runAthenaQuerySync}. */
export interface AthenaSyncOptions {
  readonly athena: AthenaClient;
  /** Waits between polls. */
  readonly clock: Pick<Clock, 'sleep'>;
  /** @default LOCAL_ATHENA_POLL_MS */
  readonly pollMs?: number;
  /**
   * Stops the polls (the state timed out, the execution ended): the query is left to Athena.
   * Without it the binding polls until the query ends, as the integration waits until the
   * state's TimeoutSeconds, which Step Functions (here aws-local-stepfunctions) enforces.
   */
  readonly signal?: AbortSignal;
}

/**
 * `InvalidRequestException` → `Athena.InvalidRequestException`, as the integration names API
 * errors, its Cause the message alone. Not the SDK's error as the `cause`: aws-local-stepfunctions
 * would report a failed state's Cause from it, `<name>: <message>`, and a step's failure line read
 * `Athena.Error: Error: connect ECONNREFUSED …`.
 */
function athenaApiError(err: unknown): LocalTaskError {
  const name = err instanceof Error ? err.name : 'Error';
  const message = err instanceof Error ? err.message : String(err);
  return new LocalTaskError(`Athena.${name}`, message);
}

/**
 * What `arn:aws:states:::athena:startQueryExecution.sync` does: StartQueryExecution with the
 * state's Parameters (the API's own request shape), poll GetQueryExecution until a final state,
 * and return the GetQueryExecution response (`{ QueryExecution }`). A query that ends FAILED or
 * CANCELLED fails the task with `States.TaskFailed`, its cause the response as JSON (the shape
 * Step Functions uses for a failed `.sync` job: unverified for Athena); an API error surfaces as
 * `Athena.<ExceptionName>`. It never gives up on its own: a query that does not end is the
 * state's TimeoutSeconds to end (`States.Timeout`, raised by the state machine, not the task).
 */
export async function runAthenaQuerySync(parameters: unknown, options: AthenaSyncOptions): Promise<unknown> {
  if (parameters === null || typeof parameters !== 'object' || Array.isArray(parameters)) {
    throw new LocalTaskError(
      STATES_TASK_FAILED,
      `The Athena .sync task needs the StartQueryExecution request as its Parameters, got ${JSON.stringify(parameters)}`,
    );
  }
  let id: string | undefined;
  try {
    const started = await options.athena.send(
      new StartQueryExecutionCommand(parameters as StartQueryExecutionCommandInput),
    );
    id = started.QueryExecutionId;
  } catch (err) {
    throw athenaApiError(err);
  }
  if (!id) throw new LocalTaskError(STATES_TASK_FAILED, 'StartQueryExecution returned no QueryExecutionId');
  for (;;) {
    if (options.signal?.aborted) {
      throw new LocalBindingStoppedError(
        `Stopped polling Athena query ${id}, which had not ended: its state is over (timed out, or the execution ended)`,
      );
    }
    let response: GetQueryExecutionCommandOutput;
    try {
      response = await options.athena.send(new GetQueryExecutionCommand({ QueryExecutionId: id }));
    } catch (err) {
      throw athenaApiError(err);
    }
    const state = response.QueryExecution?.Status?.State;
    if (state && ATHENA_FINAL_STATES.has(state)) {
      // Only what the real integration returns: the response without the SDK's $metadata.
      const output = JSON.parse(JSON.stringify({ QueryExecution: response.QueryExecution })) as unknown;
      if (state === 'SUCCEEDED') return output;
      throw new LocalTaskError(STATES_TASK_FAILED, JSON.stringify(output));
    }
    await options.clock.sleep(options.pollMs ?? LOCAL_ATHENA_POLL_MS);
  }
}

/** The request of a request-response Athena Task: its Parameters, which must be an object. */
function athenaRequest(operation: string, parameters: unknown): Record<string, unknown> {
  if (parameters === null || typeof parameters !== 'object' || Array.isArray(parameters)) {
    throw new LocalTaskError(
      STATES_TASK_FAILED,
      `The Athena ${operation} task needs the ${operation} request as its Parameters, got ${JSON.stringify(parameters)}`,
    );
  }
  return parameters as Record<string, unknown>;
}

/**
 * What `arn:aws:states:::athena:startQueryExecution` (request-response) does: StartQueryExecution
 * with the state's Parameters, answering `{ QueryExecutionId }` without waiting for the query; an
 * API error surfaces as `Athena.<ExceptionName>`.
 */
export async function runAthenaStart(parameters: unknown, athena: AthenaClient): Promise<unknown> {
  const request = athenaRequest('StartQueryExecution', parameters);
  try {
    const started = await athena.send(
      new StartQueryExecutionCommand(request as unknown as StartQueryExecutionCommandInput),
    );
    return { QueryExecutionId: started.QueryExecutionId };
  } catch (err) {
    throw athenaApiError(err);
  }
}

/**
 * What `arn:aws:states:::athena:stopQueryExecution` does: StopQueryExecution with the state's
 * Parameters (`{ QueryExecutionId }`), answering `{}`; an API error surfaces as
 * `Athena.<ExceptionName>`.
 */
export async function runAthenaStop(parameters: unknown, athena: AthenaClient): Promise<unknown> {
  const request = athenaRequest('StopQueryExecution', parameters);
  try {
    await athena.send(new StopQueryExecutionCommand({ QueryExecutionId: String(request.QueryExecutionId) }));
    return {};
  } catch (err) {
    throw athenaApiError(err);
  }
}

/** A state of the definition, wherever it sits (top level, a Parallel branch, a Map iterator). */
export interface FoundState {
  readonly name: string;
  readonly definition: Record<string, unknown>;
}

/** Every state of the definition, nested ones included. */
export function allStates(definition: { States: Record<string, unknown> }): FoundState[] {
  const found: FoundState[] = [];
  const visit = (states: Record<string, unknown>): void => {
    for (const [name, raw] of Object.entries(states)) {
      const state = raw as Record<string, unknown>;
      found.push({ name, definition: state });
      for (const branch of (state.Branches as { States: Record<string, unknown> }[] | undefined) ?? []) {
        visit(branch.States);
      }
      for (const key of ['Iterator', 'ItemProcessor']) {
        const inner = state[key] as { States?: Record<string, unknown> } | undefined;
        if (inner?.States) visit(inner.States);
      }
    }
  };
  visit(definition.States);
  return found;
}

/** One thing that happened during a local execution, for progress output. */
export interface LocalRunEvent {
  readonly type: 'entered' | 'exited' | 'failed' | 'retried' | 'caught';
  readonly state: string;
  readonly stateType: string;
  /** Exited: a Task's own result (before ResultPath), another state's output. */
  readonly output?: unknown;
  /** The error (failed). */
  readonly error?: { readonly name: string; readonly cause: string };
}

/** Options of {@link runStateMachineLocally}. */
export interface LocalRunOptions {
  /** The resolved ASL definition (plain JSON, no CloudFormation tokens left). */
  readonly definition: StateMachineDefinition;
  /** Task state name → what it runs (the definition's documented mapping). */
  readonly taskHandlers: Readonly<Record<string, LocalTaskBinding>>;
  /** The dependencies every handler gets, built for the laptop. */
  readonly deps: CoreDeps;
  /** The Athena client the `.sync` Task uses (the same endpoint as `deps.athena`). */
  readonly athenaClient?: AthenaClient;
  /** The execution input (`{}`, `{ "dryRun": true }`, …). */
  readonly input: unknown;
  /** The execution's name (Step Functions uses it as the run id). */
  readonly executionName: string;
  /** Every Wait state pauses this long. @default DEFAULT_LOCAL_WAIT_MS */
  readonly waitMs?: number;
  /**
   * Every Retry pauses this long. @default DEFAULT_LOCAL_RETRY_MS, but the definition's own
   * intervals for the errors of waiting for another run ({@link WAITING_ERROR_NAMES})
   */
  readonly retryMs?: number;
  /**
   * The time left to each invocation of a Task state's handler, asked as the invocation starts
   * (what Lambda's `getRemainingTimeInMillis` tells). @default none: a laptop has no Lambda timeout
   */
  readonly timeLeft?: (state: string) => TimeLeft;
  /** Progress. */
  readonly onEvent?: (event: LocalRunEvent) => void;
}

/** How a local execution ended. */
export type LocalExecutionResult =
  | { readonly status: 'succeeded'; readonly output: unknown }
  | { readonly status: 'failed'; readonly error: string; readonly cause: string };

/** A fake but well-formed ARN of the local state machine, for the context object. */
function localArn(kind: 'stateMachine' | 'execution', name: string, machine = 'roundtrip-local'): string {
  return kind === 'stateMachine'
    ? `arn:aws:states:local:000000000000:stateMachine:${machine}`
    : `arn:aws:states:local:000000000000:execution:${machine}:${name}`;
}

/**
 * An error as it leaves a Lambda: its name is Step Functions' `Error`, and the `Cause` is the error
 * payload Node.js's Lambda runtime answers, as JSON: `{"errorType","errorMessage","trace"}` (the
 * stack's lines). Nothing else: aws-local-stepfunctions would report a failed state's Cause from
 * the error's own `cause` when it has one (a TransformError's would be PostgreSQL's bare message,
 * without the file and line). Readers make it readable with `readableFailure`, as they must for a
 * deployed run's.
 */
function acrossLambda(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const payload = { errorType: err.name, errorMessage: err.message, trace: (err.stack ?? '').split('\n') };
  return new LocalTaskError(err.name, JSON.stringify(payload));
}

/** The value as JSON text and back: what crossing Lambda's boundary does to it (Dates become text). */
function throughJson(value: unknown): unknown {
  return value === undefined ? null : (JSON.parse(JSON.stringify(value)) as unknown);
}

/**
 * Runs one execution of `definition` locally; see the module comment. Resolves with how it ended
 * (a failed execution resolves too, with its error and cause); rejects only when the definition
 * cannot be run here (a Task without a binding, an invalid definition).
 */
export async function runStateMachineLocally(options: LocalRunOptions): Promise<LocalExecutionResult> {
  polyfillPromiseWithResolvers();
  const { StateMachine, ExecutionError } = await import('aws-local-stepfunctions');
  const { deps } = options;
  const provider = givenDeps(deps);
  const machineDefinition = structuredClone(options.definition);
  const states = allStates(machineDefinition as unknown as { States: Record<string, unknown> });
  // Aborted once the execution is over: a binding still polling Athena stops.
  const executionOver = new AbortController();

  // The execution's start on the run's clock (a test's may be fixed), which Prepare records as the
  // run's. The library sets `$$.Execution.StartTime` to the wall clock whatever the context says:
  // Prepare's input gets this time instead.
  const startTime = deps.clock.now().toISOString();
  const taskResourceLocalHandlers: Record<string, (input: unknown) => Promise<unknown>> = {};

  // The first error Step Functions would end the execution with that the library does not raise,
  // found from the execution's events: a payload over the quota (every state's input and output,
  // those of Parallel branches too), a Wait's SecondsPath it cannot read (the library skips the
  // path of a shortened Wait). The library runs on: a state after it would still run, so every
  // Task binding first lets the events be read (they are dispatched before the next state starts,
  // and read in microtasks) and refuses to run once one is found, and the execution's result is
  // this error whatever the library made of it.
  let terminal: UncatchableStatesError | undefined;
  const refuseAfterTerminalError = async (state: string, input: unknown): Promise<void> => {
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (terminal) throw terminal;
    const over = payloadOverLimit(`the input of Task state "${state}" (after Parameters)`, input);
    if (over) throw over;
  };
  const waitTimeOverrides: Record<string, number> = {};
  /** Wait state → its SecondsPath, read as Step Functions reads it (the override skips it). */
  const waitSecondsPaths = new Map<string, string>();
  const retryIntervalOverrides: Record<string, number | number[]> = {};
  const unbound: string[] = [];
  for (const { name, definition } of states) {
    if (Array.isArray(definition.Retry))
      retryIntervalOverrides[name] = localRetryIntervals(definition.Retry as unknown[], options.retryMs);
    if (definition.Type === 'Wait') {
      waitTimeOverrides[name] = options.waitMs ?? DEFAULT_LOCAL_WAIT_MS;
      if (typeof definition.SecondsPath === 'string') waitSecondsPaths.set(name, definition.SecondsPath);
    }
    if (definition.Type !== 'Task') continue;
    const resource = String(definition.Resource);
    const binding = options.taskHandlers[name];
    const noAthenaClient = (): LocalTaskError =>
      new LocalTaskError(
        ERROR_NAMES.terminal,
        `Task state ${name} calls Athena, but no Athena client was given to the local runner`,
      );
    if (
      binding === 'athenaStart' ||
      binding === 'athenaStop' ||
      resource === ATHENA_START_RESOURCE ||
      resource === ATHENA_STOP_RESOURCE
    ) {
      const athena = options.athenaClient;
      const call =
        binding === 'athenaStart' || resource === ATHENA_START_RESOURCE ? runAthenaStart : runAthenaStop;
      taskResourceLocalHandlers[name] = async (input) => {
        if (!athena) throw noAthenaClient();
        await refuseAfterTerminalError(name, input);
        return call(input, athena);
      };
      continue;
    }
    if (binding === 'athenaQuery' || resource === ATHENA_SYNC_RESOURCE) {
      const athena = options.athenaClient;
      // aws-local-stepfunctions enforces the state's TimeoutSeconds with its own States.Timeout
      // error, the one error its Catch and Retry on States.TaskFailed do not match
      // ("States.TaskFailed … matches any known error name except States.Timeout", Step Functions
      // developer guide, "Error names"): an error the binding raised under that name would be
      // caught by States.TaskFailed, and a run would take another path than in AWS.
      const timeoutMs =
        typeof definition.TimeoutSeconds === 'number' ? definition.TimeoutSeconds * 1000 : undefined;
      taskResourceLocalHandlers[name] = async (input) => {
        if (!athena) throw noAthenaClient();
        await refuseAfterTerminalError(name, input);
        // The polls stop a little after the state timed out (the library's timer started first),
        // or when the execution is over.
        const stop = new AbortController();
        const timer =
          timeoutMs === undefined
            ? undefined
            : setTimeout(() => stop.abort(), timeoutMs + LOCAL_ATHENA_STOP_MARGIN_MS);
        const onOver = (): void => stop.abort();
        executionOver.signal.addEventListener('abort', onOver, { once: true });
        let result: unknown;
        try {
          result = await runAthenaQuerySync(input, { athena, clock: deps.clock, signal: stop.signal });
        } finally {
          clearTimeout(timer);
          executionOver.signal.removeEventListener('abort', onOver);
        }
        const over = payloadOverLimit(`the result of Task state "${name}"`, result);
        if (over) throw over;
        return result;
      };
      continue;
    }
    if (!binding) {
      unbound.push(`${name} (${resource})`);
      continue;
    }
    const handler = LOCAL_HANDLERS[binding](provider);
    taskResourceLocalHandlers[name] = async (given) => {
      const input =
        binding === 'prepare' && typeof given === 'object' && given !== null && 'executionStartTime' in given
          ? { ...given, executionStartTime: startTime }
          : given;
      await refuseAfterTerminalError(name, input);
      const timeLeft = options.timeLeft?.(name);
      const context = timeLeft ? { getRemainingTimeInMillis: timeLeft } : undefined;
      let result: unknown;
      try {
        // Its own API call counts: the Extract's branches run here at once on shared connectors.
        result = throughJson(await withOwnCallCounts(() => handler(throughJson(input), context)));
      } catch (err) {
        throw acrossLambda(err);
      }
      // The connector's output over the quota: the Lambda ran, its result is refused.
      const over = payloadOverLimit(`the result of Task state "${name}"`, result);
      if (over) throw over;
      // The step's own result (the library's StateExited carries it after ResultPath).
      options.onEvent?.({ type: 'exited', state: name, stateType: 'Task', output: result });
      return result;
    };
  }
  if (unbound.length > 0) {
    throw new Error(
      `Task states without a local binding: ${unbound.join(', ')}. Bind each to one of ${HANDLER_NAMES.join(', ')}, athenaStart, athenaQuery or athenaStop`,
    );
  }

  // Every binding's call still going on. A Parallel state fails as soon as one branch fails, and
  // the execution goes on (a Catch, the Report) and may end while another branch's Task still
  // runs, as a Lambda invoked by Step Functions runs to its end whatever became of the execution.
  // Here it runs in this process: the execution's result waits for it, so that whoever reads the
  // run's figures then (the CLI's summary) reads every step's, and its progress comes before them.
  const inFlight = new Set<Promise<unknown>>();
  for (const [name, run] of Object.entries(taskResourceLocalHandlers)) {
    taskResourceLocalHandlers[name] = (given) => {
      const call = run(given);
      inFlight.add(call);
      const forget = (): void => void inFlight.delete(call);
      call.then(forget, forget);
      return call;
    };
  }

  const machine = new StateMachine(machineDefinition, {
    validationOptions: { checkPaths: true, checkArn: true },
  });
  const input = throughJson(options.input);
  const execution = machine.run(input as never, {
    overrides: {
      taskResourceLocalHandlers: taskResourceLocalHandlers as never,
      waitTimeOverrides,
      retryIntervalOverrides,
    },
    context: {
      Execution: {
        Id: localArn('execution', options.executionName),
        Name: options.executionName,
        Input: input as never,
        StartTime: startTime,
        RoleArn: 'arn:aws:iam::000000000000:role/roundtrip-local',
      },
      StateMachine: { Id: localArn('stateMachine', ''), Name: 'roundtrip-local' },
    },
  });

  const events = (async () => {
    for await (const event of execution.eventLogs) {
      if (!('state' in event)) continue;
      if (!terminal && event.type === 'StateEntered') {
        // The execution's input, and every state's as it enters (a Task's after Parameters: its binding).
        terminal = payloadOverLimit(`the input of state "${event.state.name}"`, event.state.input);
        const secondsPath = waitSecondsPaths.get(event.state.name);
        if (!terminal && secondsPath) {
          terminal = waitSecondsPathError(event.state.name, secondsPath, event.state.input);
        }
      }
      if (!terminal && event.type === 'StateExited') {
        terminal = payloadOverLimit(`the output of state "${event.state.name}"`, event.state.output);
      }
      if (!options.onEvent) continue;
      const base = { state: event.state.name, stateType: event.state.type };
      switch (event.type) {
        case 'StateEntered':
          options.onEvent({ type: 'entered', ...base });
          break;
        case 'StateExited':
          // Task results are reported by the binding itself, before ResultPath applies.
          if (event.state.type !== 'Task')
            options.onEvent({ type: 'exited', ...base, output: event.state.output });
          break;
        case 'StateFailed':
          options.onEvent({
            type: 'failed',
            ...base,
            error: { name: event.Error, cause: String(event.Cause) },
          });
          break;
        case 'StateRetried':
          options.onEvent({ type: 'retried', ...base });
          break;
        case 'StateCaught':
          options.onEvent({ type: 'caught', ...base });
          break;
      }
    }
  })();

  let result: LocalExecutionResult;
  try {
    result = { status: 'succeeded', output: await execution.result };
  } catch (err) {
    if (!(err instanceof ExecutionError)) throw err;
    // ExecutionError wraps the error that ended the run: a Fail state's Error/Cause, or a task's.
    const inner = (err as { cause?: unknown }).cause;
    const name = inner instanceof Error ? inner.name : err.name;
    const cause = inner instanceof Error ? inner.message : err.message;
    result = { status: 'failed', error: name, cause };
  } finally {
    executionOver.abort();
  }
  await Promise.allSettled([...inFlight]);
  await events;
  if (terminal) return { status: 'failed', error: terminal.name, cause: terminal.message };
  return result;
}

/** A definition with its Task → binding map: what {@link runStateMachineLocally} runs. */
export interface BoundDefinition {
  readonly definition: StateMachineDefinition;
  readonly taskHandlers: Readonly<Record<string, LocalTaskBinding>>;
}

/** Options of {@link loadPipelineDefinition}. */
export interface LoadDefinitionOptions {
  /**
   * The TimeoutSeconds of the Athena `.sync` Tasks (at least 1), instead of the deployed
   * `athena.queryTimeoutMinutes` (32 by default): a laptop does not wait half an hour on an
   * emulator's query. The error of a query that outlives it names it.
   * @default LOCAL_ATHENA_TIMEOUT_SECONDS, or the configured limit when shorter
   */
  readonly athenaQueryTimeoutSeconds?: number;
}

/**
 * The pipeline's state machine for `config`, as plain ASL with its Task bindings: the CDK app's
 * PipelineStack built in-process with cdk.json's feature flags (without bundling the functions,
 * which the definition does not depend on), its state machine's definition resolved to plain
 * ASL by statemachine/asl.ts, and each Task state bound through the stack's `taskStates`
 * (state → step, statemachine/definition.ts) to the step's handler. It is the very definition
 * that deploys, but for the Athena query Tasks' TimeoutSeconds (`athenaQueryTimeoutSeconds`).
 * Nothing is bundled or deployed.
 */
export async function loadPipelineDefinition(
  config: PipelineConfig,
  options: LoadDefinitionOptions = {},
): Promise<BoundDefinition> {
  const { inProcessApp } = await import('../lib/cdk-app');
  const { PipelineStack } = await import('../lib/pipeline-stack');
  const { resolveDefinition } = await import('./asl');
  const { configuredAthenaQueryTimeout, PIPELINE_STEPS } = await import('./definition');
  const deployed = configuredAthenaQueryTimeout(config);
  const seconds =
    options.athenaQueryTimeoutSeconds ?? Math.min(LOCAL_ATHENA_TIMEOUT_SECONDS, deployed.seconds);
  const athenaQueryTimeout = {
    seconds,
    described: `${seconds} s`,
    setBy: `the local runner, LOCAL_ATHENA_TIMEOUT_SECONDS in statemachine/local.ts unless given; deployed it is ${deployed.described}, ${deployed.setBy}`,
  };
  // cdk.json's feature flags, nothing bundled (the definition does not depend on the bundles).
  const stack = new PipelineStack(inProcessApp(), `roundtrip-${config.name}`, { config, athenaQueryTimeout });
  const definition = resolveDefinition(stack, stack.stateMachine) as unknown as StateMachineDefinition;
  const taskHandlers: Record<string, LocalTaskBinding> = {};
  for (const [state, step] of stack.taskStates) {
    if (step === 'athenaStart' || step === 'athenaQuery' || step === 'athenaStop') {
      taskHandlers[state] = step;
      continue;
    }
    const handler = PIPELINE_STEPS[step].handler as string;
    if (!(HANDLER_NAMES as readonly string[]).includes(handler)) {
      throw new Error(`Task state ${state} runs handler "${handler}", which has no local binding`);
    }
    taskHandlers[state] = handler as HandlerName;
  }
  return { definition, taskHandlers };
}
