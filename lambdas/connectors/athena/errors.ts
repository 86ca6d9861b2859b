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
