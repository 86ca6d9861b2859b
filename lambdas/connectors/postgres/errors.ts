/**
 * The one place where a PostgreSQL driver error becomes a {@link TransientError} (the state
 * machine retries it) or a {@link TerminalError} (the run stops and reports), as STYLE.md asks:
 * "mapping a driver's or API's error to one of the two happens in the connector, once".
 *
 * SQLSTATE codes: https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
import { DatabaseError } from 'pg';
import {
  PostgresAuthenticationError,
  PostgresDatabaseMissingError,
  REFUSED_CONNECTION_HINT,
  TerminalError,
  TransientError,
} from '../../shared/errors';
import { createRedactor } from '../../shared/redact';

/**
 * SQLSTATE codes that a retry may fix, one by one (class prefixes are in
 * {@link TRANSIENT_SQLSTATE_CLASSES}).
 */
export const TRANSIENT_SQLSTATES: ReadonlySet<string> = new Set([
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '55P03', // lock_not_available (lock_timeout while waiting, e.g. for the migration lock)
  '57014', // query_canceled (statement_timeout): the retry budget of the state machine bounds it
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (server starting up or in recovery)
  '57P05', // idle_session_timeout
  '58000', // system_error
  '58030', // io_error
]);

/**
 * SQLSTATE classes whose every code is transient: 08 connection exception, 53 insufficient
 * resources (53300 too_many_connections, 53200 out_of_memory, 53100 disk_full).
 */
export const TRANSIENT_SQLSTATE_CLASSES: readonly string[] = ['08', '53'];

/** Node socket and DNS error codes that mean "the network failed this time". */
const TRANSIENT_NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
]);

/**
 * OpenSSL / Node TLS codes raised when the server's certificate does not verify. Retrying
 * never fixes them: the CA bundle, the host name or the certificate has to change.
 */
const TLS_VERIFICATION_CODES: ReadonlySet<string> = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** pg's own messages for a connection that dropped or timed out (it sets no code on these). */
const TRANSIENT_DRIVER_MESSAGES: readonly RegExp[] = [
  /Connection terminated/i,
  /timeout expired/i,
  /connection timeout/i,
  /Client has encountered a connection error/i,
  /timeout exceeded when trying to connect/i,
];

/** Where the failure happened, for the message; never contains a password. */
export interface PostgresErrorContext {
  /** What was being done, e.g. `connecting`, `migration 1 (roundtrip state tables)`. */
  readonly action?: string;
  /** A redacted target such as `app@db.example.com:5432/roundtrip`. */
  readonly target?: string;
  /**
   * Strings that must never appear in a message (a password): masked by the shared redactor
   * (lambdas/shared/redact.ts), in every encoded form, with the credential shapes it knows; the
   * cause is then a redacted copy when its message held one.
   */
  readonly secrets?: readonly string[];
  /**
   * Where the credentials come from (`the secret roundtrip/postgres`): a refused user or
   * password, or a database that does not exist, says to check it there.
   */
  readonly credentialsFrom?: string | undefined;
}

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Maps any error thrown by pg (or by a socket or TLS layer under it) to a {@link TransientError}
 * or a {@link TerminalError}. An error that is already one of the two is returned as it is.
 *
 * - transient: SQLSTATE class 08 and 53 (too many connections), 40001, 40P01, 55P03, 57014,
 *   57P01..57P03, 58xxx; refused/reset/timed-out sockets; pg's "Connection terminated" and
 *   connection timeouts.
 * - terminal: 28P01/28000 (authentication, no pg_hba entry: a {@link PostgresAuthenticationError},
 *   which stops the whole run), 3D000 (database does not exist: a
 *   {@link PostgresDatabaseMissingError}, which stops the whole run too),
 *   TLS certificate verification failures, a server that refuses TLS, and every other SQL error
 *   (a syntax error or a constraint violation does not go away with a retry).
 *
 * The message names the action, the redacted target, the SQLSTATE and pg's message; the
 * original error is kept as `cause`.
 */
export function classifyPostgresError(
  err: unknown,
  context: PostgresErrorContext = {},
): TransientError | TerminalError {
  if (err instanceof TransientError || err instanceof TerminalError) return err;
  // Read the message structurally: an Error from another realm (a jest sandbox, a worker)
  // fails `instanceof Error` but is still an error.
  const raw = (err as { message?: unknown } | null)?.message;
  const error = { message: typeof raw === 'string' ? raw : String(err) };
  const code = codeOf(err);
  const where = [context.action, context.target ? `(${context.target})` : undefined]
    .filter(Boolean)
    .join(' ');
  const prefix = `PostgreSQL${where ? ` ${where}` : ''}`;
  const redactor = createRedactor(context.secrets);
  const say = (text: string): string => redactor.redact(`${prefix}: ${text}`);
  // The original stays the cause (its SQLSTATE and fields), unless its message held a secret.
  const cause = redactor.redact(error.message) === error.message ? err : redactor.redactError(err);

  if (
    err instanceof DatabaseError ||
    (code && /^[0-9A-Z]{5}$/.test(code) && typeof (err as { severity?: unknown }).severity === 'string')
  ) {
    const sqlstate = code ?? 'unknown';
    // `where` locates COPY errors ("COPY t, line 3, column c: …"); `detail` names the key of a
    // unique violation. Both may quote a data value, as PostgreSQL's own log does.
    const { where: context_, detail: more } = err as { where?: unknown; detail?: unknown };
    const extra = [more, context_].filter((x): x is string => typeof x === 'string' && x !== '');
    const detail = `${error.message} (SQLSTATE ${sqlstate})${extra.length ? ` [${extra.join('; ')}]` : ''}`;
    const check = (what: string): string =>
      context.credentialsFrom ? `; check ${what} in ${context.credentialsFrom}` : '';
    if (sqlstate === '28P01' || sqlstate === '28000') {
      return new PostgresAuthenticationError(
        say(`authentication failed: ${detail}${check('the user and password')}`),
        { cause },
      );
    }
    if (sqlstate === '3D000')
      return new PostgresDatabaseMissingError(
        say(`database does not exist: ${detail}${check('the database name')}`),
        { cause },
      );
    if (TRANSIENT_SQLSTATES.has(sqlstate) || TRANSIENT_SQLSTATE_CLASSES.includes(sqlstate.slice(0, 2))) {
      return new TransientError(say(detail), { cause });
    }
    return new TerminalError(say(detail), { cause });
  }
  if (code && TLS_VERIFICATION_CODES.has(code)) {
    return new TerminalError(
      say(
        `TLS certificate verification failed (${code}): ${error.message}. Check the CA bundle and the host name`,
      ),
      { cause },
    );
  }
  if (/does not support SSL/i.test(error.message)) {
    return new TerminalError(
      say(
        `TLS was required but the server does not support SSL connections (a local server without TLS needs postgres.ssl.mode 'disable' in the pipeline config)`,
      ),
      { cause },
    );
  }
  if (code && TRANSIENT_NETWORK_CODES.has(code)) {
    const hint = code === 'ECONNREFUSED' ? ` ${REFUSED_CONNECTION_HINT}` : '';
    return new TransientError(say(`network error (${code}): ${error.message}${hint}`), { cause });
  }
  if (TRANSIENT_DRIVER_MESSAGES.some((re) => re.test(error.message))) {
    return new TransientError(say(error.message), { cause });
  }
  if (code === 'ENOTFOUND') {
    return new TerminalError(say(`host not found (ENOTFOUND): ${error.message}`), { cause });
  }
  return new TerminalError(say(error.message), { cause });
}
