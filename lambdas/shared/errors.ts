/**
 * The two kinds of failure a step can raise (DESIGN.md §2, "Rules of the house").
 *
 * - A {@link TransientError} means "try again later": the state machine retries it with
 *   backoff (throttling, a dropped connection, a lock, a 5xx).
 * - A {@link TerminalError} means "this run cannot go on": it is caught, reported and the
 *   execution ends in a Fail state (bad config, invalid credentials, a malformed query).
 *
 * A record that Salesforce rejects is neither: it is data, carried as a rejection.
 * Connectors map a driver's or API's error to one of the two, once, where it is raised.
 * The class names are the error names the state machine matches on, so they are stable.
 */

/**
 * The names of our own errors a run can fail with: those the state machine's Retry and Catch
 * blocks match on, the classes a step throws, and the error of the Fail state a run ends in when a
 * write-back passed its limits. Shared with statemachine/. Words for the state machine, not for a
 * user: a failure line leaves them out ({@link failureText}), as the message says all they say.
 */
export const ERROR_NAMES = {
  transient: 'TransientError',
  terminal: 'TerminalError',
  config: 'ConfigError',
  busy: 'TaskBusyError',
  pushGoingOn: 'PushGoingOnError',
  transform: 'TransformError',
  maxChanges: 'MaxChangesExceededError',
  /**
   * Salesforce refused a call because the org's daily API allowance is spent
   * (`REQUEST_LIMIT_EXCEEDED`): terminal, and for the whole run, not one write-back task, since
   * every later call would be refused too.
   */
  apiLimit: 'ApiLimitExceededError',
  /**
   * Salesforce refused the sign-in for its credentials (`INVALID_LOGIN`, `invalid_grant`,
   * `invalid_client`, a user locked out), or the login URL takes no sign-in at all (404, 405):
   * terminal, and for the whole run, not one write-back task, since every later task would sign
   * in with the same secret and be refused the same way, each refusal counting toward the user's
   * lockout (Salesforce's "Maximum invalid login attempts").
   */
  signInRefused: 'SalesforceSignInRefusedError',
  /**
   * PostgreSQL refused the connection's user or password (SQLSTATE 28P01), or has no pg_hba.conf
   * entry for it (28000): terminal, and for the whole run, as every later step connects with the
   * same secret (connectors/postgres/errors.ts).
   */
  postgresAuth: 'PostgresAuthenticationError',
  /**
   * PostgreSQL has no database of the name the connection asks for (SQLSTATE 3D000: dropped,
   * renamed, or a secret rotated to another name): terminal, and for the whole run, as every
   * later step connects to the same database (connectors/postgres/errors.ts).
   */
  postgresDatabaseMissing: 'PostgresDatabaseMissingError',
  /**
   * PostgreSQL sent text roundtrip cannot read (a date in a DateStyle other than ISO), or a session
   * setting roundtrip needs did not take: terminal, naming the setting, its value and the fix
   * (connectors/postgres/session.ts).
   */
  sessionSetting: 'SessionSettingError',
  /**
   * The Fail state's error when a write-back passed its `maxFailureRate` or its `maxRejectRate`
   * (the name predates the second); its cause says which, and where the records are.
   */
  writebackFailed: 'WritebackFailureRateExceeded',
  /**
   * The Fail state's error when write-back tasks failed in a step (plan, push, collect) and the
   * tasks after them ran on; its cause names them and their errors.
   */
  writebackTasksFailed: 'WritebackTasksFailed',
} as const;

/**
 * Said after a connection that was refused (ECONNREFUSED): on a laptop, the usual cause is a
 * server or emulator not started, or listening on another port. Still transient: a server
 * restarting refuses for a moment.
 */
export const REFUSED_CONNECTION_HINT =
  '(nothing accepts connections there: is the server running, on that host and port?)';

/** A failure that a retry may fix. */
export class TransientError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = ERROR_NAMES.transient;
  }
}

/**
 * The errors a step fails with while another run holds what it needs (the task's lock, a push
 * going on over several invocations): the state machine waits for that run by retrying the step
 * on a schedule of their own (minutes: statemachine/definition.ts), and their messages say so.
 */
export const WAITING_ERROR_NAMES: ReadonlySet<string> = new Set([ERROR_NAMES.busy, ERROR_NAMES.pushGoingOn]);

/**
 * Transient, but worth a longer wait than a throttle: the work is held by another invocation (a
 * write-back push or collect of the same task). The state machine retries it on its own, slower
 * schedule (statemachine/definition.ts BUSY_RETRY).
 */
export class TaskBusyError extends TransientError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = ERROR_NAMES.busy;
  }
}

/**
 * Busy for longer: another run's write-back push of the task goes on over several invocations
 * (handed on for want of time, or waiting for its Bulk jobs), which may last far longer than one
 * Lambda. The state machine waits for it on a schedule of its own (statemachine/definition.ts
 * PUSH_GOING_ON_RETRY), not the 18 minutes of a {@link TaskBusyError}.
 */
export class PushGoingOnError extends TransientError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = ERROR_NAMES.pushGoingOn;
  }
}

/** A failure that no retry will fix: the run stops and reports. */
export class TerminalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = ERROR_NAMES.terminal;
  }
}

/**
 * `err` told as an extract task's when it is a plain {@link TerminalError} or
 * {@link TransientError} (the name the state machine retries by) that does not name the task yet:
 * made again, the same class, as `Extract task X: <message><tail>`; any other error (a subclass,
 * which callers and the state machine tell apart by its class or name) as it is. The connectors'
 * errors name the call, the job or the file, not the task: with several extracts the run's error
 * did not say which one failed.
 */
export function namedForTask(err: unknown, task: string, tail = ''): unknown {
  const prefix = `Extract task ${task}`;
  const named = (e: Error): string => `${prefix}: ${e.message}${tail}`;
  // Named already (`Extract task X: …`, `… of extract task X ended Failed`): a task name holds
  // letters, digits, `_`, `.` and `-`, so one that goes on is another task's.
  const escaped = task.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  if (!(err instanceof Error) || new RegExp(`\\b[Ee]xtract task ${escaped}(?![\\w.-])`).test(err.message)) {
    return err;
  }
  if (err instanceof TerminalError && err.constructor === TerminalError) {
    return new TerminalError(named(err), { cause: err });
  }
  if (err instanceof TransientError && err.constructor === TransientError) {
    return new TransientError(named(err), { cause: err });
  }
  return err;
}

/**
 * Salesforce refused a call for the org's daily API allowance (`REQUEST_LIMIT_EXCEEDED`, not its
 * concurrent-request form): it frees up over a rolling 24 hours, so no retry helps, and the
 * state machine stops the whole run on it, not only the write-back task that met it
 * (statemachine/definition.ts RUN_LEVEL_WRITEBACK_ERRORS).
 */
export class ApiLimitExceededError extends TerminalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = ERROR_NAMES.apiLimit;
  }
}

/**
 * Salesforce refused to sign in with the secret (a wrong password, client, key or token, a user
 * locked out or not allowed), or the login URL answered that it takes no sign-in (404, 405): no
 * retry helps, and every later sign-in of the run would use the same secret and URL. The state
 * machine stops the whole run on it (statemachine/definition.ts RUN_LEVEL_WRITEBACK_ERRORS), so
 * a run signs in with a bad secret once, not once per write-back task: each refused attempt counts
 * toward Salesforce's lockout of the user ("Maximum invalid login attempts", often 3 to 10). The
 * message names the flow, Salesforce's code and message, and the secret and keys to check.
 */
export class SalesforceSignInRefusedError extends TerminalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = ERROR_NAMES.signInRefused;
  }
}

/**
 * The class a Salesforce call's {@link TransientError} or {@link TerminalError} is made again with
 * (its message redacted, or told of the records or task it stopped): the subclasses the state
 * machine stops the whole run on ({@link ApiLimitExceededError}, {@link SalesforceSignInRefusedError})
 * kept, any other a plain TransientError or TerminalError.
 */
export function salesforceErrorKind(
  err: TransientError | TerminalError,
): typeof TransientError | typeof TerminalError {
  if (err instanceof TransientError) return TransientError;
  if (err instanceof ApiLimitExceededError) return ApiLimitExceededError;
  if (err instanceof SalesforceSignInRefusedError) return SalesforceSignInRefusedError;
  return TerminalError;
}

/**
 * PostgreSQL refused to let the connection in (SQLSTATE 28P01 `invalid_password`, 28000
 * `invalid_authorization_specification`: a wrong user or password, no pg_hba.conf entry) after
 * the pool read the secret again (a rotation). Every later step connects with the same secret, so
 * the state machine stops the whole run on it, as on a refused Salesforce sign-in
 * (statemachine/definition.ts RUN_LEVEL_WRITEBACK_ERRORS). The message names the target and
 * where the user and password come from.
 */
export class PostgresAuthenticationError extends TerminalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = ERROR_NAMES.postgresAuth;
  }
}

/**
 * PostgreSQL has no database of the name the connection asks for (SQLSTATE 3D000
 * `invalid_catalog_name`). Every later step connects to the same database, so the state machine
 * stops the whole run on it, as on a refused password (statemachine/definition.ts
 * RUN_LEVEL_WRITEBACK_ERRORS). The message names the target and where the name comes from.
 */
export class PostgresDatabaseMissingError extends TerminalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = ERROR_NAMES.postgresDatabaseMissing;
  }
}

/** One problem in a pipeline config: the path inside the config and what is wrong there. */
export interface ConfigIssue {
  /** Dotted path with indexes, e.g. `writeback[0].mode`; empty for the whole file. */
  readonly path: string;
  /** What was expected and what was found. */
  readonly message: string;
}

/** A config that does not validate. Carries every issue found, not only the first. */
export class ConfigError extends TerminalError {
  readonly issues: readonly ConfigIssue[];
  readonly source: string | undefined;

  constructor(issues: readonly ConfigIssue[], source?: string, options?: { cause?: unknown }) {
    const lines = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message));
    const head = source ? `Invalid pipeline config ${source}` : 'Invalid pipeline config';
    super(
      `${head} (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n  ${lines.join('\n  ')}`,
      options,
    );
    this.name = ERROR_NAMES.config;
    this.issues = issues;
    this.source = source;
  }
}

/**
 * Where `JSON.parse` stopped reading `text`, as `line 3, column 1`, from its message's `at position
 * N` (Node 20 names only the offset); undefined when the message names no position.
 */
export function jsonErrorPlace(message: string, text: string): string | undefined {
  const at = /at position (\d+)/.exec(message);
  if (!at) return undefined;
  const before = text.slice(0, Number(at[1]));
  return `line ${before.split('\n').length}, column ${before.length - before.lastIndexOf('\n')}`;
}

/** Narrows an unknown thrown value to an Error, wrapping anything else. */
export function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

/**
 * A failure's text made readable, alone or after an error name (`TerminalError: …`, as
 * `roundtrip.runs.error` stores it):
 * - the Cause of a Task whose Lambda function threw is the function's error payload as JSON,
 *   `{"errorType":"TerminalError","errorMessage":"…","trace":["TerminalError: …","    at …"]}`
 *   (Node.js's runtime; `stackTrace` in others), deployed and locally (statemachine/local.ts): it
 *   becomes the message alone, without the stack;
 * - a failed Athena query's cause is the whole GetQueryExecution response as JSON (what Step
 *   Functions' `startQueryExecution.sync` integration puts in the Cause, locally and deployed),
 *   1–2 KB in which the reason is one field: it becomes `Athena query <id> FAILED: <Athena's reason>`.
 * Any other text is returned as it is.
 */
export function readableFailure(text: string): string {
  return athenaFailure(lambdaFailure(text));
}

/** `[<name>: ]{"errorType":…,"errorMessage":"…",…}` → `[<name>: ]<errorMessage>`; else the text. */
function lambdaFailure(text: string): string {
  const shape = /^((?:[A-Za-z][\w.]*: )?)(\{[\s\S]*"errorMessage"\s*:[\s\S]*)$/.exec(text);
  if (!shape) return text;
  const [, name = '', payload = ''] = shape;
  try {
    const parsed = JSON.parse(payload) as { errorMessage?: unknown };
    if (typeof parsed.errorMessage === 'string') return name + parsed.errorMessage;
  } catch {
    // A payload cut short (Step Functions keeps 32,768 characters of a Cause): its message first.
    const message = /"errorMessage"\s*:\s*("(?:[^"\\]|\\.)*")/.exec(payload)?.[1];
    if (message) return name + (JSON.parse(message) as string);
  }
  return text;
}

/** A failed Athena query's GetQueryExecution response, alone or after a name; else the text. */
function athenaFailure(text: string): string {
  const start = text.indexOf('{"QueryExecution"');
  if (start < 0) return text;
  let execution: Record<string, unknown>;
  try {
    execution =
      (JSON.parse(text.slice(start)) as { QueryExecution?: Record<string, unknown> }).QueryExecution ?? {};
  } catch {
    return text;
  }
  const status = (execution.Status ?? {}) as {
    State?: string;
    StateChangeReason?: string;
    AthenaError?: { ErrorMessage?: string };
  };
  const reason = status.AthenaError?.ErrorMessage ?? status.StateChangeReason ?? 'no reason given';
  const id = typeof execution.QueryExecutionId === 'string' ? ` ${execution.QueryExecutionId}` : '';
  return `${text.slice(0, start)}Athena query${id} ${status.State ?? 'failed'}: ${reason}`;
}

/**
 * Error names a failure line (the CLI's, a notification's) leaves out, because the message says
 * all they say: every one of the project's own ({@link ERROR_NAMES}: classes and the write-back's
 * Fail state, words for the state machine, whose messages name the config path, file or record), a
 * plain `Error`, and Step Functions' `States.TaskFailed`, whose cause says what failed (an Athena
 * query, by its id, and why). Any other name is kept, as it tells the user something the message
 * may not: `States.Timeout`, `Athena.InvalidRequestException` (which service refused), a
 * `TypeError` (a fault to report).
 */
const UNTOLD_ERROR_NAMES: ReadonlySet<string> = new Set([
  ...Object.values(ERROR_NAMES),
  'Error',
  // statemachine/local.ts STATES_TASK_FAILED, not imported: every CLI command and Lambda loads
  // this module, and that one loads the state machine's runner.
  'States.TaskFailed',
]);

/**
 * Whether a name tells nothing the message does not: one of UNTOLD_ERROR_NAMES, also as the local
 * Athena binding names an error of the call that is not Athena's answer (statemachine/local.ts:
 * `Athena.Error` for a refused connection, `Athena.TerminalError` for no AWS Region), whose
 * message names Athena itself.
 */
function untoldName(name: string): boolean {
  return (
    UNTOLD_ERROR_NAMES.has(name) || (name.startsWith('Athena.') && UNTOLD_ERROR_NAMES.has(name.slice(7)))
  );
}

/**
 * A failure as a user reads it: the cause made readable ({@link readableFailure}), after the
 * error's name only when the name tells something (see UNTOLD_ERROR_NAMES), or when there is no
 * cause to show, or one that only repeats the name. Nothing of the cause is left out.
 */
export function failureText(name: string | undefined, cause: string | undefined): string {
  const text = readableFailure(cause ?? '').trim();
  if (!name) return text || 'failed, no reason given';
  // A cause that only repeats the name (the States.Timeout of a local run's timed-out Task).
  if (!text || text === name) return name;
  return untoldName(name) ? text : `${name}: ${text}`;
}

/**
 * JavaScript's own error classes other than `Error`: the language and the runtime throw them for a
 * fault in the code (`Cannot read properties of undefined` is a TypeError, `Invalid time value` a
 * RangeError), and the project never throws them on purpose, so their name tells the reader it
 * is a bug to report, which the message alone does not.
 */
const BUILT_IN_ERROR_NAMES: ReadonlySet<string> = new Set([
  'TypeError',
  'RangeError',
  'ReferenceError',
  'SyntaxError',
  'EvalError',
  'URIError',
  'AggregateError',
]);

/**
 * An error thrown in this process as a failure line shows it (the CLI's `roundtrip <command>: …`):
 * its message, after its name only when that is one of JavaScript's built-in names other than
 * `Error` (see BUILT_IN_ERROR_NAMES), as {@link failureText} keeps a name that says more than the
 * message. The names of our own classes (every one in {@link ERROR_NAMES}, and those of the
 * emulators and the CLI) and of other libraries' errors are left out: their messages name what is
 * wrong. A value that is not an Error is shown as a string.
 */
export function thrownFailureText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  if (!BUILT_IN_ERROR_NAMES.has(err.name)) return err.message;
  return err.message ? `${err.name}: ${err.message}` : err.name;
}

/**
 * A stored failure (`roundtrip.runs.error`, written as `<Error>: <Cause>` by the Report step)
 * as {@link failureText} shows it; a text of another shape (a skipped run's reason) as it is.
 */
export function storedFailureText(stored: string): string {
  const named = /^([A-Za-z][\w.]*): ([\s\S]*)$/.exec(stored);
  return named ? failureText(named[1], named[2]) : readableFailure(stored);
}
