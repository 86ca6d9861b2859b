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

/** Names the state machine's Retry and Catch blocks match on. Shared with statemachine/. */
export const ERROR_NAMES = {
  transient: 'TransientError',
  terminal: 'TerminalError',
  config: 'ConfigError',
  busy: 'TaskBusyError',
  pushGoingOn: 'PushGoingOnError',
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

/** Narrows an unknown thrown value to an Error, wrapping anything else. */
export function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

/**
 * A failure's text made readable: a failed Athena query's cause is the whole GetQueryExecution
 * response as JSON (what Step Functions' `startQueryExecution.sync` integration puts in the
 * Cause, locally and deployed), 1–2 KB in which the reason is one field. Such a JSON, alone or
 * after an error name (`States.TaskFailed: {…}`, as `roundtrip.runs.error` stores it), becomes
 * `Athena query <id> FAILED: <Athena's reason>`; any other text is returned as it is.
 */
export function readableFailure(text: string): string {
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
