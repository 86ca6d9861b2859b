/**
 * Athena and S3 failures mapped once to transient or terminal (athena-wire.md, "Transport").
 */
import { PROXY_TUNNEL_UNAVAILABLE } from '../../shared/proxy';
import { TerminalError, TransientError } from '../../shared/errors';

/** Error names a retry may clear (Athena throttling, S3 SlowDown, 5xx, dropped connections). */
const TRANSIENT_NAMES = new Set([
  'TooManyRequestsException',
  'ThrottlingException',
  'InternalServerException',
  'InternalError',
  'ServiceUnavailable',
  'SlowDown',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
  'AbortError',
]);

const TRANSIENT_NETWORK_CODES = new Set([
  PROXY_TUNNEL_UNAVAILABLE,
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
]);

/** Maps an AWS SDK (Athena, S3, STS) or network error to a transient or terminal error naming the operation. */
export function classifyAthenaError(err: unknown, operation: string): TransientError | TerminalError {
  if (err instanceof TransientError || err instanceof TerminalError) return err;
  const e = (err ?? {}) as {
    name?: unknown;
    message?: unknown;
    code?: unknown;
    AthenaErrorCode?: unknown;
    Reason?: unknown;
    $metadata?: { httpStatusCode?: number };
    $response?: { statusCode?: number };
  };
  const name = typeof e.name === 'string' ? e.name : 'Error';
  const code = typeof e.code === 'string' ? e.code : undefined;
  const status = e.$metadata?.httpStatusCode ?? e.$response?.statusCode;
  const detail = [
    typeof e.AthenaErrorCode === 'string' ? e.AthenaErrorCode : undefined,
    typeof e.Reason === 'string' ? e.Reason : undefined,
  ]
    .filter(Boolean)
    .join(', ');
  const message = `${operation} failed: ${name}${detail ? ` (${detail})` : ''}: ${
    typeof e.message === 'string' ? e.message : String(err)
  }`;
  const cause = err instanceof Error ? err : undefined;
  const transient =
    TRANSIENT_NAMES.has(name) ||
    (code !== undefined && TRANSIENT_NETWORK_CODES.has(code)) ||
    (status !== undefined && (status === 429 || status >= 500)) ||
    /socket hang up|ECONNRESET|premature close|aborted|terminated/i.test(String(e.message));
  return transient ? new TransientError(message, { cause }) : new TerminalError(message, { cause });
}

/**
 * A query that ended FAILED with an error Athena marks `Retryable` (an internal error rather than
 * the query's fault). Transient, but only a NEW execution can succeed: the same client request
 * token gives the same failed execution back.
 */
export class AthenaRetryableQueryFailure extends TransientError {
  constructor(
    message: string,
    readonly queryExecutionId: string,
  ) {
    super(message);
  }
}

/**
 * A query Athena refused as written: FAILED with a non-retryable reason (`TABLE_NOT_FOUND: …`), or
 * rejected at start as `MALFORMED_QUERY`. Terminal; its own class so that a caller can tell the
 * query's fault from a failed call (access denied, an unknown workgroup).
 */
export class AthenaQueryFailed extends TerminalError {
  constructor(
    message: string,
    readonly queryExecutionId: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * A query that ended CANCELLED (StopQueryExecution: by hand in the console, or a query that
 * outlived its time limit). Terminal, and not the query's fault: its own class so that the local
 * load can name its task, as it names a failed query's.
 */
export class AthenaQueryCancelled extends TerminalError {
  constructor(
    message: string,
    readonly queryExecutionId: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** What a start Athena refused as asked (`InvalidRequestException`) is about. */
export type AthenaStartRefusal = 'query' | 'outputLocation' | 'workgroup';

/**
 * How to tell, by Athena's message, what a start refused as asked (`InvalidRequestException`) is
 * about, checked in order, in the wildcard form of Step Functions' `StringMatches` (`*` any text),
 * so that the state machine's start state ({@link athenaStartRefusal}'s twin in
 * statemachine/definition.ts) and the local path say the same: a syntax error (`line 1:8:
 * mismatched input …`, MALFORMED_QUERY) is the query's, whatever words of the query it quotes; a
 * missing or bad result location (`No output location provided. …`, `OutputLocation … is not a
 * valid S3 location`) is `athena.outputLocation`'s; an unknown or disabled workgroup (`WorkGroup x
 * is not found.`) is `athena.workgroup`'s. Anything else is taken to be the query's (more than one
 * statement, a statement Athena does not run), as every refusal was before.
 */
export const ATHENA_START_REFUSAL_PATTERNS: readonly {
  readonly about: AthenaStartRefusal;
  readonly patterns: readonly string[];
}[] = [
  { about: 'query', patterns: ['line *'] },
  { about: 'outputLocation', patterns: ['*output location*', '*OutputLocation*'] },
  { about: 'workgroup', patterns: ['*WorkGroup *'] },
];

/** Whether `text` matches a Step Functions `StringMatches` pattern (`*` any text, `\*` a star). */
export function matchesStatesPattern(text: string, pattern: string): boolean {
  const source = pattern
    .split(/(\\\*|\*)/)
    .map((part) =>
      part === '*' ? '[\\s\\S]*' : part.replace(/\\\*/g, '*').replace(/[.*+?^${}()|[\]\\]/g, '\\$&'),
    )
    .join('');
  return new RegExp(`^${source}$`).test(text);
}

/** What Athena's message of a start it refused as asked is about ({@link ATHENA_START_REFUSAL_PATTERNS}). */
export function athenaStartRefusal(message: string): AthenaStartRefusal {
  return (
    ATHENA_START_REFUSAL_PATTERNS.find((r) => r.patterns.some((p) => matchesStatesPattern(message, p)))
      ?.about ?? 'query'
  );
}

/**
 * The words put before Athena's message when it refused to start an extract task's query as asked:
 * the task and the config path the message is about ({@link athenaStartRefusal}). `queryPath` is
 * the task's query's path (`extract[1].query`). Holds no `'`, `{`, `}` or `\` of its own, so that
 * the state machine can put it in a `States.Format` template (task and workgroup names hold none).
 */
export function athenaStartRefusedPrefix(
  about: AthenaStartRefusal,
  task: string,
  queryPath: string,
  workgroup: string,
): string {
  switch (about) {
    case 'query':
      return `Extract task ${task} (${queryPath}): `;
    case 'outputLocation':
      return `Extract task ${task}: Athena refused to start its query for where its result goes (athena.outputLocation, or the result location of workgroup ${workgroup}): `;
    case 'workgroup':
      return `Extract task ${task}: Athena refused to start its query in workgroup ${workgroup} (athena.workgroup): `;
  }
}

/**
 * A finished query whose result is not the rows of a SELECT (a SHOW or DESCRIBE writes `<id>.txt`,
 * tab-separated and without a header): the query's fault, as written. Terminal; its own class so
 * that the load names the task's query.
 */
export class AthenaResultNotRows extends TerminalError {
  constructor(
    message: string,
    readonly queryExecutionId: string,
  ) {
    super(message);
  }
}
