/**
 * The PostgreSQL pool: built from a connection URL or from a Secrets Manager secret in the RDS
 * shape, with TLS on and the server's certificate verified unless the caller says otherwise.
 *
 * pg parses a `connectionString` itself, and what it parses (notably `sslmode`) silently
 * overrides the `ssl` option passed next to it. To keep the behaviour deterministic this module
 * never hands pg a connection string: it parses the URL into discrete fields, decides the TLS
 * settings from one rule (see {@link resolveSslMode}) and passes explicit values only, so that
 * neither the URL's query string nor pg's `PG*` environment variables can change them.
 */
import { readFileSync } from 'node:fs';
import { DatabaseError, Pool, type PoolClient, type PoolConfig } from 'pg';
import type { ConnectionOptions } from 'node:tls';
import { caBundleProblem } from '../../shared/ca-bundle';
import { TerminalError } from '../../shared/errors';
import type { Logger } from '../../shared/logging';
import { silentLogger } from '../../shared/logging';
import { classifyPostgresError } from './errors';
import { applySessionSettings, beginTransactionSql, sessionTypeParsers } from './session';

/** A connection URL: `postgres://user:password@host:port/database?sslmode=verify-full`. */
export interface PostgresUrlSource {
  readonly url: string;
}

/**
 * A secret in the shape RDS and Secrets Manager use for PostgreSQL
 * (https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_secret_json_structure.html#reference_secret_json_structure_rds-postgres).
 */
export interface RdsPostgresSecret {
  readonly host: string;
  /** A number, or a string of digits as some secrets carry it. @default 5432 */
  readonly port?: number | string;
  readonly username: string;
  readonly password: string;
  /** @default 'postgres' (the RDS default database) */
  readonly dbname?: string;
  /** When present: `postgres` or `aurora-postgresql`. */
  readonly engine?: string;
}

/** Where to connect. */
export type PostgresSource = PostgresUrlSource | RdsPostgresSecret;

/**
 * - `verify-full`: encrypt, verify the certificate chain against the CA bundle (or Node's
 *   trusted roots) and the host name against the certificate. The default.
 * - `require`: encrypt, but accept any certificate. Protects against passive sniffing only:
 *   anyone who can intercept the connection can impersonate the server and read the password.
 * - `disable`: no TLS, for a server on the same host (the embedded server, a local container).
 */
export type SslMode = 'verify-full' | 'require' | 'disable';

/** The TLS settings of a pool. */
export interface PostgresSslOptions {
  /** @default 'verify-full', or the URL's `sslmode` when it names one of the three modes */
  readonly mode?: SslMode;
  /**
   * Certificates to trust, as PEM text or the path of a PEM file (e.g. the RDS global bundle,
   * https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem). Replaces Node's trusted
   * roots for this pool. @default Node's trusted roots
   */
  readonly caBundle?: string;
}

/** Options of {@link createPool}. */
export interface CreatePoolOptions {
  readonly ssl?: PostgresSslOptions;
  /** Connections in the pool. A Lambda handles one event at a time. @default 2 */
  readonly max?: number;
  /** `application_name` seen in `pg_stat_activity`. @default 'roundtrip' */
  readonly applicationName?: string;
  /** Give up connecting after this long. @default 10000 */
  readonly connectionTimeoutMillis?: number;
  /** Close idle connections after this long. @default 30000 */
  readonly idleTimeoutMillis?: number;
  /** Server-side `statement_timeout`; 0 means none. @default 0 */
  readonly statementTimeoutMillis?: number;
  /** Receives pool-level warnings (an idle connection dropped by the server). */
  readonly logger?: Logger;
  /**
   * The credentials as they are now, read again (the secret, not a cached copy): asked when the
   * server refuses the pool's password on a new connection (SQLSTATE 28P01). A secret rotated
   * since the pool was made (RDS managed rotation changes the password, or the user with the
   * alternating-users strategy) then names another user or password: the pool connects with them
   * from then on, and the refused connection is made once more. @default none: refused is refused
   */
  readonly renewCredentials?: () => Promise<PostgresSource>;
  /**
   * Where the user, password and database come from, named by an error that refuses them (a
   * wrong password, an unknown user or database) so that it says what to correct: `the secret
   * roundtrip/postgres`. @default not named
   */
  readonly credentialsFrom?: string;
}

/** SQLSTATE invalid_password: the server refused the user's password (or it has none). */
export const INVALID_PASSWORD_SQLSTATE = '28P01';

/** Defaults of {@link CreatePoolOptions}. */
export const POOL_DEFAULTS = {
  max: 2,
  applicationName: 'roundtrip',
  connectionTimeoutMillis: 10_000,
  idleTimeoutMillis: 30_000,
  statementTimeoutMillis: 0,
} as const;

/** PostgreSQL's default port. */
export const DEFAULT_POSTGRES_PORT = 5432;

/** URL query parameters that {@link createPool} understands; any other one is refused. */
const SUPPORTED_URL_PARAMETERS = new Set(['sslmode', 'sslrootcert', 'application_name', 'connect_timeout']);

/** Values of libpq's `sslmode` that we refuse, with the reason given to the user. */
const REFUSED_SSLMODES: Record<string, string> = {
  allow: 'it silently falls back to a clear-text connection',
  prefer: 'it silently falls back to a clear-text connection',
  'verify-ca': 'it checks the chain but not the host name; use verify-full',
  'no-verify': 'it is a pg-only alias; use require and accept the risk explicitly',
};

/** The discrete connection fields, after parsing and validation. The password is non-enumerable. */
export interface ResolvedConnection {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly database: string;
  readonly password: string;
  readonly sslMode: SslMode;
  /** PEM text, when a CA bundle was given. */
  readonly ca: string | undefined;
  readonly applicationName: string;
  readonly connectionTimeoutMillis: number;
  /** `user@host:port/database`, safe for messages and logs. */
  readonly target: string;
}

function isUrlSource(source: PostgresSource): source is PostgresUrlSource {
  return typeof (source as { url?: unknown }).url === 'string';
}

/**
 * URL parameters that carry a credential: libpq takes the password as `?password=` too, and the
 * client key's passphrase as `?sslpassword=` (https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS).
 */
const CREDENTIAL_URL_PARAMETERS: readonly string[] = ['password', 'sslpassword'];

/**
 * Whether {@link redactUrl} hides part of the URL: a password, a credential parameter, a fragment,
 * or text that does not parse as a URL. A URL without any is shown as it is.
 */
export function urlHasCredentials(url: string): boolean {
  try {
    const parsed = new URL(url);
    return (
      parsed.password !== '' ||
      parsed.hash !== '' ||
      CREDENTIAL_URL_PARAMETERS.some((k) => parsed.searchParams.has(k))
    );
  } catch {
    return true;
  }
}

/**
 * Redacts the password of a PostgreSQL URL (for messages and logs): the one after the user name,
 * the value of a `password` or `sslpassword` parameter, and the fragment (no part of a connection
 * URL: a `#` in an unencoded password starts one, which then holds the password's end). Text that
 * does not parse as a URL is replaced entirely, since it may hold a password in a place we cannot
 * find.
 */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    for (const key of CREDENTIAL_URL_PARAMETERS)
      if (parsed.searchParams.has(key)) parsed.searchParams.set(key, '***');
    parsed.hash = '';
    return parsed.toString();
  } catch {
    return '<unparseable connection URL>';
  }
}

/**
 * Decides the TLS mode from the option and the URL's `sslmode`, one rule for every case:
 * the URL's `sslmode` must be one of the three supported modes (others are refused with the
 * reason); when both are given they must agree; else whichever is given wins; else `verify-full`.
 */
export function resolveSslMode(option: SslMode | undefined, urlSslmode: string | undefined): SslMode {
  if (urlSslmode !== undefined) {
    const refused = REFUSED_SSLMODES[urlSslmode];
    if (refused)
      throw new TerminalError(`PostgreSQL URL: sslmode=${urlSslmode} is not supported: ${refused}`);
    if (urlSslmode !== 'verify-full' && urlSslmode !== 'require' && urlSslmode !== 'disable') {
      throw new TerminalError(
        `PostgreSQL URL: sslmode=${urlSslmode} is not a known mode (expected verify-full, require or disable)`,
      );
    }
    if (option !== undefined && option !== urlSslmode) {
      throw new TerminalError(
        `PostgreSQL TLS settings conflict: the URL says sslmode=${urlSslmode} but the ssl option says mode '${option}'; give one of them`,
      );
    }
    return urlSslmode;
  }
  return option ?? 'verify-full';
}

/** Reads a CA bundle given as PEM text or as a path. */
export function loadCaBundle(caBundle: string): string {
  if (caBundle.includes('-----BEGIN')) return caBundle;
  let bytes: Buffer;
  try {
    bytes = readFileSync(caBundle);
  } catch (cause) {
    throw new TerminalError(`PostgreSQL CA bundle ${caBundle} cannot be read: ${(cause as Error).message}`, {
      cause,
    });
  }
  const problem = caBundleProblem(bytes);
  if (problem !== undefined) {
    throw new TerminalError(
      `PostgreSQL CA bundle ${caBundle} ${problem}: expected PEM CA certificates ("-----BEGIN CERTIFICATE-----" blocks)`,
    );
  }
  return bytes.toString('utf8');
}

function parsePort(value: unknown, where: string, showValue = true): number {
  const port =
    typeof value === 'number'
      ? value
      : typeof value === 'string' && /^\d+$/.test(value)
        ? Number(value)
        : NaN;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new TerminalError(
      `${where}: port must be an integer from 1 to 65535, got ${showValue ? JSON.stringify(value) : `a ${typeof value === 'string' ? 'text' : typeof value} that is not one`}`,
    );
  }
  return port;
}

function requireString(secret: Record<string, unknown>, key: string): string {
  const value = secret[key];
  if (typeof value !== 'string' || value === '') {
    // Never echo the value: it may be the password.
    throw new TerminalError(`PostgreSQL secret: "${key}" must be a non-empty string`);
  }
  return value;
}

/**
 * Parses and validates a source and options into discrete connection fields, without
 * connecting. Errors are {@link TerminalError}s that never contain the password.
 */
export function resolveConnection(
  source: PostgresSource,
  options: CreatePoolOptions = {},
): ResolvedConnection {
  let host: string;
  let port: number;
  let user: string;
  let password: string;
  let database: string;
  let urlSslmode: string | undefined;
  let urlCa: string | undefined;
  let applicationName = options.applicationName ?? POOL_DEFAULTS.applicationName;
  let connectionTimeoutMillis = options.connectionTimeoutMillis ?? POOL_DEFAULTS.connectionTimeoutMillis;

  if (isUrlSource(source)) {
    let url: URL;
    try {
      url = new URL(source.url);
    } catch {
      throw new TerminalError(`PostgreSQL URL ${redactUrl(source.url)} is not a valid URL`);
    }
    const shown = redactUrl(source.url);
    if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
      throw new TerminalError(`PostgreSQL URL ${shown}: the scheme must be postgres:// or postgresql://`);
    }
    for (const key of url.searchParams.keys()) {
      if (!SUPPORTED_URL_PARAMETERS.has(key)) {
        throw new TerminalError(
          `PostgreSQL URL ${shown}: parameter "${key}" is not supported (supported: ${[...SUPPORTED_URL_PARAMETERS].join(', ')})` +
            (key === 'password'
              ? '; give the password after the user name: postgres://user:password@host/db'
              : ''),
        );
      }
    }
    host = decodeURIComponent(url.hostname).replace(/^\[(.*)\]$/, '$1');
    if (!host) throw new TerminalError(`PostgreSQL URL ${shown}: no host`);
    port = url.port ? parsePort(url.port, `PostgreSQL URL ${shown}`) : DEFAULT_POSTGRES_PORT;
    user = decodeURIComponent(url.username);
    if (!user) throw new TerminalError(`PostgreSQL URL ${shown}: no user name`);
    password = decodeURIComponent(url.password);
    database = decodeURIComponent(url.pathname.replace(/^\//, '')) || 'postgres';
    urlSslmode = url.searchParams.get('sslmode') ?? undefined;
    urlCa = url.searchParams.get('sslrootcert') ?? undefined;
    applicationName = url.searchParams.get('application_name') ?? applicationName;
    const timeout = url.searchParams.get('connect_timeout');
    if (timeout !== null) {
      // libpq's connect_timeout is in seconds.
      if (!/^\d+$/.test(timeout)) {
        throw new TerminalError(
          `PostgreSQL URL ${shown}: connect_timeout must be whole seconds, got "${timeout}"`,
        );
      }
      connectionTimeoutMillis = Number(timeout) * 1000;
    }
  } else {
    const secret = source as unknown as Record<string, unknown>;
    if (typeof secret !== 'object' || secret === null)
      throw new TerminalError('PostgreSQL secret: not an object');
    if (secret.host === undefined) {
      // Neither shape (a misspelt "URL", say): name both, and the keys it has (never a value).
      const keys = Object.keys(secret);
      throw new TerminalError(
        `PostgreSQL secret: expected { "url": "postgres://user:password@host:port/db" } or the RDS shape ` +
          `{ "host", "port", "dbname", "username", "password" }, got ${keys.length ? `the keys ${keys.map((k) => `"${k}"`).join(', ')}` : 'an empty object'}`,
      );
    }
    host = requireString(secret, 'host');
    user = requireString(secret, 'username');
    password = requireString(secret, 'password');
    // A secret's value is never echoed: a port that is not one may be another key's value, moved.
    port =
      secret.port === undefined
        ? DEFAULT_POSTGRES_PORT
        : parsePort(secret.port, 'PostgreSQL secret: "port"', false);
    database = secret.dbname === undefined ? 'postgres' : requireString(secret, 'dbname');
    if (
      secret.engine !== undefined &&
      secret.engine !== 'postgres' &&
      secret.engine !== 'aurora-postgresql'
    ) {
      throw new TerminalError(
        `PostgreSQL secret: engine is ${JSON.stringify(secret.engine)}, expected "postgres" or "aurora-postgresql"`,
      );
    }
  }

  const sslMode = resolveSslMode(options.ssl?.mode, urlSslmode);
  if (options.ssl?.caBundle !== undefined && urlCa !== undefined) {
    throw new TerminalError(
      'PostgreSQL TLS settings conflict: both the URL (sslrootcert) and the ssl option (caBundle) give a CA bundle; give one of them',
    );
  }
  const caSource = options.ssl?.caBundle ?? urlCa;
  const ca = caSource !== undefined && sslMode !== 'disable' ? loadCaBundle(caSource) : undefined;

  const resolved = {
    host,
    port,
    user,
    database,
    sslMode,
    ca,
    applicationName,
    connectionTimeoutMillis,
    target: `${user}@${host.includes(':') ? `[${host}]` : host}:${port}/${database}`,
  };
  Object.defineProperty(resolved, 'password', { value: password, enumerable: false });
  return resolved as ResolvedConnection;
}

/** The `ssl` option for pg (and Node's tls.connect) for a resolved connection. */
export function tlsOptionsFor(connection: ResolvedConnection): false | ConnectionOptions {
  switch (connection.sslMode) {
    case 'disable':
      return false;
    case 'require':
      // Encrypt without verifying: see SslMode for the risk.
      return { rejectUnauthorized: false };
    case 'verify-full':
      // Node verifies the chain (rejectUnauthorized) and the host name (its default
      // checkServerIdentity against the host, or the IP SAN when the host is an address).
      return connection.ca ? { rejectUnauthorized: true, ca: connection.ca } : { rejectUnauthorized: true };
  }
}

/**
 * The complete pg PoolConfig: explicit values only, no connection string. Each new connection is
 * given the session settings roundtrip reads text under, and dates are read in ISO only
 * (session.ts).
 */
export function poolConfigFor(connection: ResolvedConnection, options: CreatePoolOptions = {}): PoolConfig {
  const statementTimeout = options.statementTimeoutMillis ?? POOL_DEFAULTS.statementTimeoutMillis;
  const logger = options.logger ?? silentLogger;
  return {
    host: connection.host,
    port: connection.port,
    user: connection.user,
    password: connection.password,
    database: connection.database,
    ssl: tlsOptionsFor(connection),
    application_name: connection.applicationName,
    max: options.max ?? POOL_DEFAULTS.max,
    connectionTimeoutMillis: connection.connectionTimeoutMillis,
    idleTimeoutMillis: options.idleTimeoutMillis ?? POOL_DEFAULTS.idleTimeoutMillis,
    ...(statementTimeout > 0 ? { statement_timeout: statementTimeout } : {}),
    types: sessionTypeParsers(connection),
    onConnect: async (client) => {
      const set = await applySessionSettings(client);
      if (set.length > 0) {
        logger.debug('PostgreSQL session settings set on the connection', {
          target: connection.target,
          was: set,
        });
      }
    },
  };
}

/** A pg Pool that knows its redacted target, for error messages. */
export interface PostgresPool extends Pool {
  /** `user@host:port/database`: never the password. */
  readonly target: string;
  /** The TLS mode in force. */
  readonly sslMode: SslMode;
  /** {@link CreatePoolOptions.credentialsFrom}. */
  readonly credentialsFrom?: string;
}

/**
 * Creates a pg Pool from a URL or an RDS secret. TLS defaults to `verify-full`. Connections are
 * made lazily: use {@link withClient} or {@link checkConnection} to surface classified errors.
 * A connection that the server drops, idle or held, is logged, not thrown (pg would crash the
 * process); a query on a held one then fails, classified.
 */
export function createPool(source: PostgresSource, options: CreatePoolOptions = {}): PostgresPool {
  const connection = resolveConnection(source, options);
  const pool = new Pool(poolConfigFor(connection, options)) as PostgresPool;
  // Configurable: credentials renewed for another user (renewOnRefusedPassword) name it.
  Object.defineProperty(pool, 'target', { value: connection.target, enumerable: true, configurable: true });
  Object.defineProperty(pool, 'sslMode', { value: connection.sslMode, enumerable: true });
  if (options.credentialsFrom)
    Object.defineProperty(pool, 'credentialsFrom', { value: options.credentialsFrom, enumerable: true });
  const logger = options.logger ?? silentLogger;
  if (options.renewCredentials) renewOnRefusedPassword(pool, options.renewCredentials, options, logger);
  classifyQueryErrors(pool);
  pool.on('error', (err) => {
    logger.warn('PostgreSQL idle connection failed', {
      target: connection.target,
      error: classifyPostgresError(err).message,
    });
  });
  // A connection checked out and held between queries (the write-back's task lock while
  // Salesforce answers, a step's transaction) has no listener of the pool's: the server dropping
  // it would end the process with an unhandled 'error' event. Logged here; its next query fails.
  pool.on('connect', (client) => {
    client.on('error', (err) => {
      logger.warn('PostgreSQL connection failed', {
        target: connection.target,
        error: classifyPostgresError(err).message,
      });
    });
  });
  return pool;
}

/**
 * Wraps `pool.connect` (which `pool.query` uses too): a new connection refused for its password
 * asks `renew` for the credentials as they are now; other ones are put in the pool's options (pg
 * makes each new connection from them) and the connection is made once more. The same ones, or a
 * second refusal, fail as before (classified by the caller).
 */
function renewOnRefusedPassword(
  pool: PostgresPool,
  renew: () => Promise<PostgresSource>,
  options: CreatePoolOptions,
  logger: Logger,
): void {
  const connect = pool.connect.bind(pool) as () => Promise<PoolClient>;
  const settings = (pool as unknown as { options: { user?: string; password?: unknown } }).options;
  const connectRenewing = async (): Promise<PoolClient> => {
    try {
      return await connect();
    } catch (err) {
      if ((err as { code?: unknown }).code !== INVALID_PASSWORD_SQLSTATE) throw err;
      const now = resolveConnection(await renew(), options);
      if (now.user === settings.user && now.password === settings.password) throw err;
      settings.user = now.user;
      settings.password = now.password;
      Object.defineProperty(pool, 'target', { value: now.target, enumerable: true, configurable: true });
      logger.info('PostgreSQL refused the password; connecting with the credentials read again (rotated)', {
        target: pool.target,
        user: now.user,
      });
      return connect();
    }
  };
  // pg-pool's query() calls connect() with a callback; everything else awaits its promise.
  pool.connect = ((callback?: (err: Error | undefined, client?: PoolClient, done?: () => void) => void) => {
    const connected = connectRenewing();
    if (!callback) return connected;
    connected.then(
      (client) => callback(undefined, client, client.release.bind(client)),
      (err: Error) => callback(err),
    );
    return undefined;
  }) as typeof pool.connect;
}

/**
 * Classifies the errors of `pool.query` (its promise form) as {@link withClient} does those of a
 * client's work: a step's statement sent straight to the pool (most of the write-back's) that
 * fails for a dropped connection or a server restarting is then a TransientError, which the
 * state machine retries, not an `Error` that fails the run; an SQL error stays terminal, its
 * SQLSTATE and the server's message in the text, the original error its `cause`.
 */
function classifyQueryErrors(pool: PostgresPool): void {
  const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
  pool.query = ((...args: unknown[]) => {
    const result = query(...args);
    if (result === undefined || typeof (result as Promise<unknown>).then !== 'function') return result;
    return (result as Promise<unknown>).catch((err: unknown) => {
      throw classifyPostgresError(err, { target: pool.target, credentialsFrom: pool.credentialsFrom });
    });
  }) as typeof pool.query;
}

function targetOf(pool: Pool): string | undefined {
  const target = (pool as Partial<PostgresPool>).target;
  return typeof target === 'string' ? target : undefined;
}

function credentialsOf(pool: Pool): string | undefined {
  const from = (pool as Partial<PostgresPool>).credentialsFrom;
  return typeof from === 'string' ? from : undefined;
}

/**
 * Runs `fn` with a client from the pool and releases it; errors (connecting or inside `fn`)
 * are classified with {@link classifyPostgresError}. A client whose work failed with anything
 * but an error reported by the server (a dropped socket, a stream aborted mid-COPY) is destroyed
 * rather than returned to the pool, since its protocol state is unknown.
 */
export async function withClient<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  let client: PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    throw classifyPostgresError(err, {
      action: 'connecting',
      target: targetOf(pool),
      credentialsFrom: credentialsOf(pool),
    });
  }
  let broken: Error | undefined;
  try {
    return await fn(client);
  } catch (err) {
    const classified = classifyPostgresError(err, { target: targetOf(pool) });
    if (!(err instanceof DatabaseError)) broken = classified;
    throw classified;
  } finally {
    client.release(broken);
  }
}

/**
 * Runs `fn` inside `BEGIN … COMMIT` on one client, rolling back when it throws. Everything the
 * loader does that must be all-or-nothing (merge plus watermark) goes through here.
 */
export async function withTransaction<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  return withClient(pool, (client) => inTransaction(client, () => fn(client)));
}

/**
 * `BEGIN`, `fn`, `COMMIT` on a client you already hold; `ROLLBACK` when `fn` throws. With
 * `rollback`, `fn`'s transaction is rolled back whatever happens (a trial: `roundtrip validate`
 * runs the transform so), and `fn`'s answer returned.
 */
export async function inTransaction<T>(
  client: PoolClient,
  fn: () => Promise<T>,
  options: { readonly rollback?: boolean } = {},
): Promise<T> {
  // With the session settings again, SET LOCAL (session.ts): a pooler may have dropped them.
  await client.query(beginTransactionSql(client));
  try {
    const result = await fn();
    await client.query(options.rollback ? 'ROLLBACK' : 'COMMIT');
    return result;
  } catch (err) {
    try {
      await client.query('ROLLBACK');
    } catch {
      // the connection is gone; the server rolls back on its own
    }
    throw err;
  }
}

/** What {@link checkConnection} found. */
export interface ConnectionCheck {
  readonly serverVersion: string;
  /** Whether this connection is encrypted, as the server sees it (`pg_stat_ssl`). */
  readonly ssl: boolean;
  readonly database: string;
  readonly user: string;
}

/** Connects once and reports the server version and whether TLS is in use. */
export async function checkConnection(pool: Pool): Promise<ConnectionCheck> {
  return withClient(pool, async (client) => {
    const { rows } = await client.query<{
      server_version: string;
      ssl: boolean | null;
      db: string;
      usr: string;
    }>(
      `SELECT current_setting('server_version') AS server_version,
              (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) AS ssl,
              current_database() AS db, current_user AS usr`,
    );
    const row = rows[0];
    if (!row) throw new TerminalError('PostgreSQL connection check returned no row');
    return { serverVersion: row.server_version, ssl: row.ssl === true, database: row.db, user: row.usr };
  });
}
