/**
 * The one logging interface of the runtime code. Core functions receive a {@link Logger};
 * Lambda handlers pass Powertools' logger (structured JSON with run id and task keys), the
 * CLI and tests pass {@link createConsoleLogger} or a capturing logger.
 * Never log a secret: connectors redact credentials before anything reaches a logger.
 */
export type LogAttributes = Record<string, unknown>;

export interface Logger {
  debug(message: string, attributes?: LogAttributes): void;
  info(message: string, attributes?: LogAttributes): void;
  warn(message: string, attributes?: LogAttributes): void;
  error(message: string, attributes?: LogAttributes): void;
  /** A logger that adds these keys to every line (run id, task, …). */
  child(attributes: LogAttributes): Logger;
}

/**
 * Runs `work` where its failure must not fail the caller (bookkeeping done on the side: a mark, a
 * notification, a prune): a failure is logged as a warning, `message` with `attributes` and the
 * error's message, and answers `undefined`.
 */
export async function warnOnFailure<T>(
  logger: Logger,
  message: string,
  attributes: LogAttributes,
  work: () => Promise<T>,
): Promise<T | undefined> {
  try {
    return await work();
  } catch (err) {
    logger.warn(message, { ...attributes, error: err instanceof Error ? err.message : String(err) });
    return undefined;
  }
}

/**
 * Runs a step's `work`, then `record` (the bookkeeping of what the step spent, such as its
 * Salesforce API calls) whether `work` succeeded or failed, as a `finally` would, but with the
 * step's own error winning. In a `finally`, a recording that fails too (PostgreSQL down, the
 * likely cause of both) throws its own error in place of the step's, which is then lost: the
 * state machine and the run's report would show "connection terminated" for a step that failed
 * on, say, a refused Salesforce login. Here, when `work` failed and `record` fails as well,
 * `work`'s error is thrown and the recording's is logged as an error naming what could not be
 * recorded (`unrecorded`, read then: it may name figures `record` computed). When `work`
 * succeeded, a failing `record` fails the step with its error, as before: what the step spent
 * must not go unrecorded silently.
 */
export async function recordAfter<T>(
  logger: Logger,
  work: () => Promise<T>,
  record: () => Promise<void>,
  unrecorded: () => string,
): Promise<T> {
  let value: T;
  try {
    value = await work();
  } catch (stepError) {
    try {
      await record();
    } catch (recordError) {
      logger.error(`Could not record ${unrecorded()}; the step's own error is thrown`, {
        error: recordError instanceof Error ? recordError.message : String(recordError),
        stepError: stepError instanceof Error ? stepError.message : String(stepError),
      });
    }
    throw stepError;
  }
  await record();
  return value;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };

/** One log line as a structured record; what {@link createMemoryLogger} keeps. */
export interface LogRecord {
  level: Exclude<LogLevel, 'silent'>;
  message: string;
  attributes: LogAttributes;
}

function makeLogger(emit: (record: LogRecord) => void, minLevel: LogLevel, base: LogAttributes): Logger {
  const at =
    (level: LogRecord['level']) =>
    (message: string, attributes?: LogAttributes): void => {
      if (LEVELS[level] < LEVELS[minLevel]) return;
      emit({ level, message, attributes: { ...base, ...attributes } });
    };
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (attributes) => makeLogger(emit, minLevel, { ...base, ...attributes }),
  };
}

/** JSON lines on stderr (stdout stays free for a command's own output). */
export function createConsoleLogger(minLevel: LogLevel = 'info', base: LogAttributes = {}): Logger {
  return makeLogger(
    (r) =>
      process.stderr.write(JSON.stringify({ level: r.level, message: r.message, ...r.attributes }) + '\n'),
    minLevel,
    base,
  );
}

/** A logger that keeps every record in memory: for tests (e.g. checking that no secret is logged). */
export function createMemoryLogger(minLevel: LogLevel = 'debug'): Logger & { records: LogRecord[] } {
  const records: LogRecord[] = [];
  return Object.assign(
    makeLogger((r) => records.push(r), minLevel, {}),
    { records },
  );
}

/**
 * The attribute of a log record that a person watching a command should see even without
 * `--verbose`: one sentence that stands on its own (the record's other attributes are for the log).
 * A transform statement waiting minutes for a lock another session holds is one: without it a
 * local run shows its transform's progress line and nothing more, as if hung.
 */
export const NOTICE_ATTRIBUTE = 'notice';

/**
 * A logger that drops everything but the {@link NOTICE_ATTRIBUTE} sentences of warnings and errors,
 * which it hands to `write`: what a CLI command logs without `--verbose`.
 */
export function createNoticeLogger(write: (sentence: string) => void): Logger {
  return makeLogger(
    (r) => {
      const notice = r.attributes[NOTICE_ATTRIBUTE];
      if (typeof notice === 'string' && notice !== '') write(notice);
    },
    'warn',
    {},
  );
}

/** A logger that drops everything. */
export const silentLogger: Logger = makeLogger(() => undefined, 'silent', {});
