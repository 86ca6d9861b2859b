/**
 * Every failure of a Salesforce call is mapped here, once, to a {@link TransientError} (the state
 * machine retries) or a {@link TerminalError} (the run stops and reports). The message names the
 * operation, Salesforce's error code and its text (which names the object or field), after
 * redaction: no password, token, key or session id survives into it.
 */
import { PROXY_TUNNEL_UNAVAILABLE } from '../../shared/proxy';
import {
  ApiLimitExceededError,
  REFUSED_CONNECTION_HINT,
  TerminalError,
  TransientError,
  salesforceErrorKind,
} from '../../shared/errors';
import { createRedactor, type Redactor } from '../../shared/redact';

/** Request-level error codes that a later retry may clear. */
const TRANSIENT_CODES = new Set([
  'SERVER_UNAVAILABLE',
  'UNABLE_TO_LOCK_ROW',
  'REQUEST_RUNNING_TOO_LONG',
  'QUERY_TIMEOUT',
  'JOB_NOT_COMPLETE',
  'TooManyRequests',
]);

/** Node and fetch error codes of a dropped or refused connection. */
const TRANSIENT_NETWORK_CODES = new Set([
  PROXY_TUNNEL_UNAVAILABLE,
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETDOWN',
  'ENETUNREACH',
  'EHOSTDOWN',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/** HTTP statuses a retry may clear: 420 and 429 (throttled), 5xx. */
function isTransientStatus(status: number): boolean {
  return status === 420 || status === 429 || status >= 500;
}

/** What is known of the call that failed, for the message. */
export interface SalesforceErrorContext {
  /** E.g. `describe Lead`, `query`, `bulk query results 750…`. */
  readonly operation?: string;
  /** Masks secrets in the message. @default a redactor that knows no values (patterns only) */
  readonly redactor?: Redactor;
}

const patternsOnly = createRedactor();

function stringProp(err: unknown, key: string): string | undefined {
  const v = (err as Record<string, unknown> | null)?.[key];
  return typeof v === 'string' && v ? v : undefined;
}

function numberProp(err: unknown, key: string): number | undefined {
  const v = (err as Record<string, unknown> | null)?.[key];
  return typeof v === 'number' ? v : undefined;
}

/** `[{"errorCode": …, "message": …}]` (or one such object) in a response body, if that is what it is. */
function parseApiErrorBody(body: string): { errorCode: string; message: string } | undefined {
  try {
    const parsed = JSON.parse(body) as unknown;
    const first = (Array.isArray(parsed) ? parsed[0] : parsed) as
      { errorCode?: unknown; message?: unknown } | undefined;
    if (typeof first?.errorCode === 'string' && typeof first.message === 'string') {
      return { errorCode: first.errorCode, message: first.message };
    }
  } catch {
    // not JSON
  }
  return undefined;
}

/**
 * A query's next page refused with `INVALID_QUERY_LOCATOR`: Salesforce released the query's
 * server-side cursor, as it does with a cursor idle for 15 minutes and with a user's oldest when
 * the user opens an eleventh (SOAP API, QueryLocator: other tools signed in as the same
 * integration user count). The same page will not come back; the query sent again reads from the
 * start, so the step is retried (its load rolled back). Named `TransientError`, as the state
 * machine's Retry matches it.
 */
export class QueryCursorReleasedError extends TransientError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(
      `${message} (Salesforce released the query's cursor, as it does after 15 idle minutes or when the user opens an eleventh, other tools signed in as the same user included; the read starts again from the beginning)`,
      options,
    );
  }
}

/**
 * The HTTP status (4xx) of a call Salesforce answered by refusing it as a whole, from the error
 * the connector threw for it (its cause keeps the status): Salesforce processed nothing of such a
 * call. Undefined for any other failure: a 5xx, a call never answered, an answer cut off or late,
 * after any of which nobody can say what Salesforce did.
 */
export function refusedCallStatus(err: unknown): number | undefined {
  const status = numberProp((err as { cause?: unknown } | null)?.cause, 'statusCode');
  return status !== undefined && status >= 400 && status < 500 ? status : undefined;
}

/**
 * A call Salesforce refused as a whole (a 4xx: see {@link refusedCallStatus}): its status, and
 * Salesforce's error code and message as the connector kept them in the error's cause.
 */
export function refusedCallOf(err: unknown):
  | {
      readonly status: number;
      readonly errorCode: string;
      readonly message: string;
      /**
       * Whether the answer's body was Salesforce's error list (`[{errorCode, message}]`, where the
       * code and message come from). False for any other body, such as a proxy's or gateway's HTML
       * page or plain text: the code is then `ERROR_HTTP_<status>` and the message the body's start
       * (connector.ts, `failed`).
       */
      readonly fromErrorList: boolean;
    }
  | undefined {
  const status = refusedCallStatus(err);
  if (status === undefined) return undefined;
  const cause = (err as { cause?: unknown }).cause;
  const code = salesforceErrorCode(cause);
  return {
    status,
    errorCode: code ?? `ERROR_HTTP_${status}`,
    message: stringProp(cause, 'message') ?? (err instanceof Error ? err.message : String(err)),
    fromErrorList: code !== undefined && !/^ERROR_HTTP_\d{3}$/.test(code),
  };
}

/** The error code of a jsforce, OAuth, SOAP, fetch or Node error. */
export function salesforceErrorCode(err: unknown): string | undefined {
  const errorCode = stringProp(err, 'errorCode');
  if (errorCode) return errorCode;
  const code = stringProp(err, 'code');
  if (code) return code;
  const causeCode = stringProp((err as { cause?: unknown } | null)?.cause, 'code');
  if (causeCode) return causeCode;
  const name = stringProp(err, 'name');
  if (name && name !== 'Error' && name !== 'TypeError' && name !== 'FetchError') return name;
  // SOAP faults arrive as a plain Error whose message starts with the code: "INVALID_LOGIN: …".
  const message = stringProp(err, 'message') ?? '';
  const m = /^([A-Z][A-Z0-9_]{3,}):/.exec(message);
  return m?.[1];
}

/**
 * Maps a failure of a Salesforce call to a transient or terminal error, once.
 *
 * Terminal: invalid credentials (`INVALID_LOGIN`, `invalid_grant`, `invalid_client`), a session
 * that stays invalid after a refresh, a bad query or field (`INVALID_FIELD`, `MALFORMED_QUERY`,
 * `INVALID_TYPE`, `NOT_FOUND`), and `REQUEST_LIMIT_EXCEEDED` for the daily allowance — it comes
 * back over a rolling 24 hours, far beyond any retry window, so retrying would only burn time.
 * Transient: 420/429/5xx, `SERVER_UNAVAILABLE`, request-level `UNABLE_TO_LOCK_ROW`, the
 * concurrent-request form of `REQUEST_LIMIT_EXCEEDED`, dropped connections and timeouts.
 * Errors that are already transient or terminal keep their kind (their message is redacted again).
 */
export function classifySalesforceError(
  err: unknown,
  context: SalesforceErrorContext = {},
): TransientError | TerminalError {
  const redactor = context.redactor ?? patternsOnly;
  const prefix = context.operation ? `Salesforce ${context.operation} failed` : 'Salesforce call failed';
  if (err instanceof TransientError || err instanceof TerminalError) {
    const Kind = salesforceErrorKind(err);
    if (err.message === redactor.redact(err.message)) return err;
    return new Kind(redactor.redact(err.message), { cause: redactor.redactError(err.cause ?? err) });
  }
  let code = salesforceErrorCode(err);
  let rawMessage = err instanceof Error ? err.message : String(err);
  // fetch says only "fetch failed": the reason (the host that did not resolve, the address that
  // refused) is its cause's message.
  const causeMessage = stringProp((err as { cause?: unknown } | null)?.cause, 'message');
  if (rawMessage === 'fetch failed' && causeMessage) rawMessage = `fetch failed: ${causeMessage}`;
  // A call made with a text response type leaves the JSON error body unparsed in the message.
  const apiError = code?.startsWith('ERROR_HTTP_') ? parseApiErrorBody(rawMessage) : undefined;
  if (apiError) {
    code = apiError.errorCode;
    rawMessage = apiError.message;
  }
  const status = numberProp(err, 'statusCode') ?? numberProp(err, 'status');
  const httpStatus = code ? /^ERROR_HTTP_(\d{3})$/.exec(code) : null;
  const effectiveStatus = status ?? (httpStatus?.[1] ? Number(httpStatus[1]) : undefined);

  let detail = rawMessage;
  // jsforce's "Unable to refresh session due to: …" wraps the sign-in failure of a refresh.
  const refreshFailed = /^Unable to refresh session due to: /.test(rawMessage);
  const networkText =
    /socket hang up|ECONNRESET|ECONNREFUSED|network timeout|timed? ?out|terminated|other side closed/i;
  // Salesforce's query errors span lines (the query, a caret, the reason); HTML bodies can be
  // long: one line, bounded.
  detail = detail.replace(/\s+/g, ' ').trim().slice(0, 1000);
  const text = redactor.redact(code && !detail.startsWith(code) ? `${code}: ${detail}` : detail);
  const message = `${prefix}: ${text}`;
  const cause = redactor.redactError(err);

  const transient = ((): boolean => {
    // A refresh that failed on the network may work later; one that was refused will not.
    if (refreshFailed)
      return networkText.test(rawMessage) || /ERROR_HTTP_5\d\d|Service Unavailable/.test(rawMessage);
    if (code === 'REQUEST_LIMIT_EXCEEDED') return /concurrent/i.test(rawMessage);
    if (code && TRANSIENT_CODES.has(code)) return true;
    if (code && TRANSIENT_NETWORK_CODES.has(code)) return true;
    if (effectiveStatus !== undefined && isTransientStatus(effectiveStatus)) return true;
    if (err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError')) return true;
    return networkText.test(rawMessage);
  })();

  // A refused connection is transient even where the refresh rule above says otherwise (its
  // message may not name the code), and says what to check.
  if (code === 'ECONNREFUSED') return new TransientError(`${message} ${REFUSED_CONNECTION_HINT}`, { cause });
  if (code === 'INVALID_QUERY_LOCATOR') return new QueryCursorReleasedError(message, { cause });
  if (transient) return new TransientError(message, { cause });
  if (code === 'REQUEST_LIMIT_EXCEEDED') {
    return new ApiLimitExceededError(
      `${message} (the org's daily API allowance is spent; it frees up over a rolling 24 hours, so the run is not retried)`,
      { cause },
    );
  }
  if (code === 'INVALID_SESSION_ID' || refreshFailed) {
    return new TerminalError(`${message} (the session could not be renewed: check the Salesforce secret)`, {
      cause,
    });
  }
  return new TerminalError(message, { cause });
}
