/**
 * The Salesforce emulator's HTTP server (node:http, no framework): routes SOAP login, OAuth,
 * identity, the REST API and Bulk API 2.0; checks sessions; counts API calls against the daily
 * allowance; logs every call; applies the faults.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { delayWhileOpen } from '../delay';
import { AuthService, DEFAULT_CREDENTIALS, OAuthError, SoapFault, type SalesforceCredentials } from './auth';
import { BulkApi, classifyBulk } from './bulk';
import {
  ApiUsage,
  CallLog,
  DEVELOPER_EDITION_DAILY_API_REQUESTS,
  type CallLogEntry,
  type CallOperation,
} from './calls';
import type { BulkUsage, EmulatorContext } from './context';
import { DEFAULT_DESCRIBES_DIR, loadDescribes, type ObjectDescribe } from './describe';
import {
  FaultController,
  InvalidFaultError,
  UNABLE_TO_LOCK_ROW_MESSAGE,
  type RowLockKeys,
  type SalesforceFaults,
} from './faults';
import { ApiError, parseJsonBody, readBody, sendJson, sendJsonStreamed, XML_CONTENT_TYPE } from './http';
import { classifyRest, RestApi, toApiError } from './rest';
import { loadSeed, type SeedData } from './seed';
import { SalesforceStore } from './store';

/** The API version the project pins (salesforce-wire.md, "Transport"). */
export const DEFAULT_API_VERSION = '62.0';

/** API versions served by default: 42.0 (Collections) up to the pinned 62.0. */
export const DEFAULT_API_VERSIONS: readonly string[] = Array.from(
  { length: 62 - 42 + 1 },
  (_, i) => `${42 + i}.0`,
);

/** The URI and headers of one call Salesforce takes at most (Help article 000386264). */
export const MAX_REQUEST_HEAD_BYTES = 16_384;

/** The page a proxy or gateway answers a request it refuses with 400 (the `http400Burst` fault). */
export const PROXY_BAD_REQUEST_PAGE =
  '<html>\r\n<head><title>400 Bad Request</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n';

/** Options of {@link startSalesforceEmulator}. */
export interface SalesforceEmulatorOptions {
  /** TCP port; 0 picks a free one. @default 0 */
  port?: number;
  /** Interface to listen on. @default '127.0.0.1' */
  host?: string;
  /**
   * The host name its URLs (login, instance) give instead of the address it listens on: a name
   * only a proxy resolves, in a test of calls that must go through the proxy. @default host
   */
  publicHost?: string;
  /**
   * Folder(s) of describe files. Files in a later folder extend or override earlier ones.
   * @default the repo's emulators/salesforce/describes
   */
  describesDir?: string | string[];
  /** Records to load at start: a JSON/CSV file or folder path, or an object `{ Lead: [...] }`. */
  seed?: string | SeedData;
  /** Daily API allowance. @default 15,000 (Developer Edition) */
  dailyApiLimit?: number;
  /** Faults active from the start. */
  faults?: SalesforceFaults;
  /** PEM certificate or public key that verifies JWT bearer assertions (RS256). */
  jwtCertificate?: string;
  /** Credentials accepted; unset fields keep the defaults. */
  credentials?: Partial<SalesforceCredentials>;
  /** API versions served. @default 42.0 … 62.0 */
  apiVersions?: string[];
  /** Seed of the RNG behind `lockRowFraction`. @default 1 */
  randomSeed?: number;
  /** Clock of the store (SystemModstamp) and of JWT expiry checks. @default the system clock */
  clock?: () => Date;
}

/** A running emulator. */
export interface SalesforceEmulator {
  /** `http://HOST:PORT`: the login URL and the instance URL at once. */
  readonly url: string;
  readonly loginUrl: string;
  readonly instanceUrl: string;
  readonly port: number;
  /** The API version to pin in clients (the latest served). */
  readonly apiVersion: string;
  readonly credentials: Readonly<SalesforceCredentials>;
  /** The records (read them, seed them, or change them without counting API calls). */
  readonly store: SalesforceStore;
  /** Every call answered, in order. */
  readonly calls: CallLog;
  /** Fault controls: `faults.set({...})`, `faults.clear()`. */
  readonly faults: FaultController;
  /** API usage now: calls counted today and the allowance. */
  readonly limits: { readonly used: number; readonly max: number };
  /**
   * The Bulk allocations used today, as `/limits` reports them (`DailyBulkV2QueryJobs`,
   * `DailyBulkApiBatches`): raise one to spend what other tools of the org would have.
   */
  readonly bulkUsage: BulkUsage;
  /** Starts a new "day": API usage back to 0. */
  resetApiUsage(): void;
  /** Ends every session now, as if they had all timed out. */
  expireSessions(): void;
  /**
   * Releases every open REST query cursor, as Salesforce does with one idle for 15 minutes or a
   * user's oldest when the user opens an eleventh: its next page answers `INVALID_QUERY_LOCATOR`.
   */
  releaseQueryCursors(): void;
  /** Closes the server (open connections are dropped). */
  stop(): Promise<void>;
}

function versionLabel(version: string): string {
  // 59.0 is Winter '24; three releases a year (Winter, Spring, Summer).
  const major = Math.floor(parseFloat(version));
  const offset = major - 59;
  const season = ['Winter', 'Spring', 'Summer'][((offset % 3) + 3) % 3] as string;
  const year = 24 + Math.floor(offset / 3);
  return `${season} '${String(year).padStart(2, '0')}`;
}

function decodeSegments(pathname: string): string[] | undefined {
  try {
    return pathname
      .split('/')
      .filter((s) => s !== '')
      .map((s) => decodeURIComponent(s));
  } catch {
    return undefined;
  }
}

/**
 * The keys a row-lock fault matches: the record's Id (15 or 18 characters, as the call gives it)
 * and its external-ID values, apart: an Id matches by its 15-character form, an external-ID value
 * only exactly.
 */
function lockKeys(describe: ObjectDescribe | undefined, record: Record<string, unknown>): RowLockKeys {
  const ids: string[] = [];
  const externalIds: string[] = [];
  for (const name of ['Id', 'id']) {
    const v = record[name];
    if (typeof v === 'string') ids.push(v);
  }
  if (describe) {
    for (const field of describe.fields) {
      if (!field.externalId) continue;
      for (const [key, value] of Object.entries(record)) {
        if (
          key.toLowerCase() === field.name.toLowerCase() &&
          (typeof value === 'string' || typeof value === 'number')
        ) {
          externalIds.push(String(value));
        }
      }
    }
  }
  return { ids, externalIds };
}

/**
 * Starts the emulator and resolves once it listens. See docs/salesforce-emulator.md.
 */
export async function startSalesforceEmulator(
  options: SalesforceEmulatorOptions = {},
): Promise<SalesforceEmulator> {
  const describesDirs =
    options.describesDir === undefined
      ? [DEFAULT_DESCRIBES_DIR]
      : Array.isArray(options.describesDir)
        ? options.describesDir
        : [options.describesDir];
  const describes = loadDescribes(describesDirs);
  const store = new SalesforceStore({ describes, ...(options.clock ? { clock: options.clock } : {}) });
  const credentials: SalesforceCredentials = { ...DEFAULT_CREDENTIALS, ...options.credentials };
  const auth = new AuthService({
    credentials,
    orgId: store.orgId,
    userId: store.userId,
    ...(options.jwtCertificate ? { jwtCertificate: options.jwtCertificate } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
  });
  // The allowance of the emulator's day; a `dailyApiLimit` fault replaces it while set.
  const startingLimit = options.dailyApiLimit ?? DEVELOPER_EDITION_DAILY_API_REQUESTS;
  const usage = new ApiUsage(options.faults?.dailyApiLimit ?? startingLimit);
  const faults = new FaultController({}, options.randomSeed ?? 1);
  faults.onDailyApiLimit = (limit) => {
    usage.max = limit ?? startingLimit;
  };
  faults.set(options.faults ?? {});
  const apiVersions = options.apiVersions ?? [...DEFAULT_API_VERSIONS];
  const ctx: EmulatorContext = {
    store,
    auth,
    calls: new CallLog(),
    faults,
    usage,
    bulkUsage: { queryJobs: 0, ingestBatches: 0 },
    apiVersions,
  };
  store.setRecordFault((objectName, record) => {
    if (!faults.hasRecordFaults()) return undefined;
    if (!faults.isRowLocked(lockKeys(store.describe(objectName), record))) return undefined;
    return { statusCode: 'UNABLE_TO_LOCK_ROW', message: UNABLE_TO_LOCK_ROW_MESSAGE, fields: [] };
  });
  if (options.seed !== undefined) await loadSeed(store, options.seed);

  const rest = new RestApi(ctx);
  const bulk = new BulkApi(ctx);
  // Salesforce takes at most 16,384 bytes of URI and headers in a call and refuses a longer one
  // (414, 431; Help article 000386264): Node answers 431 past this size, whatever its default.
  const server = createServer({ maxHeaderSize: MAX_REQUEST_HEAD_BYTES }, (req, res) => {
    handleRequest(ctx, rest, bulk, req, res).catch((err: unknown) => {
      if (!res.headersSent) {
        sendJson(res, 500, [
          {
            errorCode: 'UNKNOWN_EXCEPTION',
            message: `emulator error: ${err instanceof Error ? err.message : String(err)}`,
          },
        ]);
      } else {
        res.destroy();
      }
      console.error('[salesforce-emulator]', err);
    });
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const named = options.publicHost ?? host;
  const url = `http://${named.includes(':') ? `[${named}]` : named}:${port}`;
  auth.loginUrl = url;
  auth.instanceUrl = url;
  const apiVersion = [...apiVersions].sort((a, b) => parseFloat(b) - parseFloat(a))[0] ?? DEFAULT_API_VERSION;

  return {
    url,
    loginUrl: url,
    instanceUrl: url,
    port,
    apiVersion,
    credentials,
    store,
    calls: ctx.calls,
    faults,
    get limits() {
      return { used: usage.used, max: usage.max };
    },
    bulkUsage: ctx.bulkUsage,
    resetApiUsage: () => usage.reset(),
    expireSessions: () => auth.expireAll(),
    releaseQueryCursors: () => rest.closeCursors(),
    stop: () =>
      new Promise<void>((resolve, reject) => {
        rest.closeCursors();
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

/**
 * The path of the emulator's fault control (not a Salesforce endpoint): `GET` answers the active
 * faults, `PUT`/`POST` with a JSON object of faults sets them (merged, as `faults.set`), `DELETE`
 * switches every fault off. No session needed: the emulator is a local test server.
 */
export const FAULTS_CONTROL_PATH = '/_emulator/faults';

async function controlFaults(
  ctx: EmulatorContext,
  method: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  try {
    switch (method) {
      case 'GET':
        break;
      case 'PUT':
      case 'POST': {
        const text = (await readBody(req)).toString('utf8');
        let faults: unknown;
        try {
          faults = JSON.parse(text);
        } catch (err) {
          throw new InvalidFaultError(
            `the body must be a JSON object of faults: ${err instanceof Error ? err.message : String(err)}`,
          );
        }
        ctx.faults.set(faults as SalesforceFaults);
        break;
      }
      case 'DELETE':
        ctx.faults.clear();
        break;
      default:
        sendJson(res, 405, { error: `${method} ${FAULTS_CONTROL_PATH}: use GET, PUT, POST or DELETE` });
        return;
    }
    sendJson(res, 200, { faults: ctx.faults.get() });
  } catch (err) {
    if (!(err instanceof InvalidFaultError) && !(err instanceof ApiError)) throw err;
    sendJson(res, 400, { error: err.message });
  }
}

/**
 * The path of the emulator's call log (not a Salesforce endpoint), for a client that did not
 * start the emulator (the CLI's `roundtrip emulate salesforce`): `GET` answers the calls logged
 * (`?since=SEQ`: those after that one), what they add up to, and the daily allowance spent;
 * `DELETE` forgets them (sequence numbers keep growing). Neither logged nor counted, like the
 * fault control.
 */
export const CALLS_PATH = '/_emulator/calls';

function answerCalls(ctx: EmulatorContext, method: string, url: URL, res: ServerResponse): void {
  if (method === 'DELETE') {
    ctx.calls.clear();
  } else if (method !== 'GET') {
    sendJson(res, 405, { error: `${method} ${CALLS_PATH}: use GET or DELETE` });
    return;
  }
  const sinceText = url.searchParams.get('since');
  const since = sinceText === null ? 0 : Number(sinceText);
  if (!Number.isInteger(since) || since < 0) {
    sendJson(res, 400, {
      error: `since must be a call's seq (a whole number, 0 or more), not ${JSON.stringify(sinceText)}`,
    });
    return;
  }
  const calls = ctx.calls.all().filter((c) => c.seq > since);
  const byOperation: Record<string, number> = {};
  for (const c of calls) byOperation[c.operation] = (byOperation[c.operation] ?? 0) + 1;
  sendJson(res, 200, {
    total: calls.length,
    counted: calls.filter((c) => c.counted).length,
    writes: calls.filter((c) => c.write).length,
    byOperation,
    apiUsage: { used: ctx.usage.used, max: ctx.usage.max },
    calls,
  });
}

function logEntry(
  ctx: EmulatorContext,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  operation: CallOperation,
  write: boolean,
): CallLogEntry {
  const entry = ctx.calls.start(req.method ?? 'GET', path, operation, write);
  const done = (): void => {
    if (entry.status === 0) entry.status = res.headersSent ? res.statusCode : 0;
  };
  res.once('finish', done);
  res.once('close', done);
  return entry;
}

async function handleRequest(
  ctx: EmulatorContext,
  rest: RestApi,
  bulk: BulkApi,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  // The Date header on the records' clock too: a client takes it for Salesforce's time (the
  // extract caps its watermark at it), so with a test's clock it must agree with SystemModstamp.
  res.setHeader('Date', ctx.store.now().toUTCString());
  const method = (req.method ?? 'GET').toUpperCase();
  const url = new URL(req.url ?? '/', 'http://emulator');
  const pathname = url.pathname.replace(/\/+$/, '') || '/';
  // The emulator's own control endpoint, not Salesforce's: answered before any fault (a latency
  // set through it must not hold the call that clears it) and never logged nor counted.
  if (pathname === FAULTS_CONTROL_PATH) {
    await controlFaults(ctx, method, req, res);
    return;
  }
  if (pathname === CALLS_PATH) {
    answerCalls(ctx, method, url, res);
    return;
  }
  const writes = method !== 'GET' && method !== 'HEAD' && pathname.startsWith('/services/data/');
  const latency = ctx.faults.latencyMs() + (writes ? ctx.faults.writeLatencyMs() : 0);
  if (latency > 0) {
    await delayWhileOpen(latency, res);
    // A client that gave up while the call waited (its time limit) has closed the connection:
    // the call is dropped, neither run nor logged, and no timer outlives it.
    if (res.destroyed || req.socket.destroyed) return;
  }

  // ------------------------------------------------------------------ SOAP login / logout
  const soap = /^\/services\/Soap\/u\/(\d+\.\d+)(?:\/.*)?$/.exec(pathname);
  if (soap?.[1]) {
    const entry = logEntry(ctx, req, res, pathname, 'login', false);
    if (method !== 'POST') {
      sendJson(res, 405, [
        { errorCode: 'METHOD_NOT_ALLOWED', message: `HTTP Method '${method}' not allowed. Allowed are POST` },
      ]);
      return;
    }
    const body = (await readBody(req)).toString('utf8');
    try {
      const answer = ctx.auth.soap(body, soap[1]);
      entry.operation = answer.operation;
      res.writeHead(200, { 'Content-Type': XML_CONTENT_TYPE });
      res.end(answer.xml);
    } catch (err) {
      if (!(err instanceof SoapFault)) throw err;
      res.writeHead(500, { 'Content-Type': XML_CONTENT_TYPE });
      res.end(err.toXml());
    }
    return;
  }

  // ------------------------------------------------------------------ OAuth 2
  if (pathname.startsWith('/services/oauth2/')) {
    const which = pathname.slice('/services/oauth2/'.length);
    const operation: CallOperation =
      which === 'token'
        ? 'oauth.token'
        : which === 'authorize'
          ? 'oauth.authorize'
          : which === 'revoke'
            ? 'oauth.revoke'
            : 'unknown';
    logEntry(ctx, req, res, pathname, operation, false);
    try {
      if (which === 'authorize' && method === 'GET') {
        res.writeHead(302, { Location: ctx.auth.authorize(url.searchParams) });
        res.end();
        return;
      }
      if ((which === 'token' || which === 'revoke') && method === 'POST') {
        const params = new URLSearchParams((await readBody(req)).toString('utf8'));
        if (which === 'token') {
          sendJson(res, 200, ctx.auth.token(params));
        } else {
          ctx.auth.revoke(params.get('token') ?? url.searchParams.get('token') ?? undefined);
          res.writeHead(200);
          res.end();
        }
        return;
      }
      sendJson(res, 404, {
        error: 'not_found',
        error_description: `no OAuth endpoint ${method} ${pathname}`,
      });
    } catch (err) {
      if (!(err instanceof OAuthError)) throw err;
      sendJson(res, err.status, { error: err.error, error_description: err.description });
    }
    return;
  }

  // ------------------------------------------------------------------ identity
  if (/^\/id\/[^/]+\/[^/]+$/.test(pathname)) {
    logEntry(ctx, req, res, pathname, 'identity', false);
    const token = url.searchParams.get('oauth_token');
    const session = ctx.auth.sessionFor(req.headers.authorization ?? (token ? `Bearer ${token}` : undefined));
    if (!session) {
      res.writeHead(403, { 'Content-Type': 'text/plain' });
      res.end('Bad_OAuth_Token');
      return;
    }
    sendJson(res, 200, ctx.auth.identity());
    return;
  }

  // ------------------------------------------------------------------ versions list
  if (pathname === '/services/data') {
    logEntry(ctx, req, res, pathname, 'versions', false);
    sendJson(
      res,
      200,
      ctx.apiVersions.map((version) => ({
        label: versionLabel(version),
        url: `/services/data/v${version}`,
        version,
      })),
    );
    return;
  }

  // ------------------------------------------------------------------ the API
  const api = /^\/services\/data\/v(\d+\.\d+)(\/.*)?$/.exec(pathname);
  if (!api?.[1]) {
    logEntry(ctx, req, res, pathname, 'unknown', false);
    sendJson(res, 404, [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }]);
    return;
  }
  const version = api[1];
  const segments = decodeSegments(api[2] ?? '');
  const isBulk = segments?.[0] === 'jobs';
  const { operation, write } = segments
    ? isBulk
      ? classifyBulk(method, segments)
      : classifyRest(method, segments)
    : { operation: 'unknown' as CallOperation, write: false };
  const entry = logEntry(ctx, req, res, pathname, operation, write);
  const limitHeader = (): Record<string, string> => ({ 'Sforce-Limit-Info': ctx.usage.header() });
  const fail = (err: ApiError): void => {
    req.resume(); // discard an unread body so the connection can be reused
    sendJson(res, err.status, err.body(), limitHeader());
  };

  if (!segments || !ctx.apiVersions.includes(version)) {
    fail(new ApiError(404, 'NOT_FOUND', 'The requested resource does not exist'));
    return;
  }
  if (ctx.faults.take503()) {
    fail(
      new ApiError(
        503,
        'SERVER_UNAVAILABLE',
        'Server temporarily unavailable (fault injected by the Salesforce emulator)',
      ),
    );
    return;
  }
  if (ctx.faults.take401()) {
    // A 401 that does not say INVALID_SESSION_ID (the http401Burst fault): plain text, not JSON.
    req.resume();
    res.writeHead(401, { 'Content-Type': 'text/plain;charset=UTF-8', ...limitHeader() });
    res.end('Unauthorized');
    return;
  }
  if (ctx.faults.take400()) {
    // A proxy's or gateway's 400 (the http400Burst fault): an HTML page, not Salesforce's JSON.
    req.resume();
    res.writeHead(400, { 'Content-Type': 'text/html;charset=UTF-8' });
    res.end(PROXY_BAD_REQUEST_PAGE);
    return;
  }
  const session = ctx.auth.sessionFor(req.headers.authorization);
  // 401 INVALID_SESSION_ID (salesforce-wire.md, "Login"); jsforce's Bulk 2.0 client refreshes only on this code.
  const expired = (): ApiError => new ApiError(401, 'INVALID_SESSION_ID', 'Session expired or invalid');
  if (!session) {
    fail(expired());
    return;
  }
  const expiresAfter = ctx.faults.sessionExpiresAfterCalls();
  if (expiresAfter !== undefined) {
    if (session.epoch !== ctx.faults.sessionEpoch) {
      session.epoch = ctx.faults.sessionEpoch;
      session.calls = 0;
    }
    if (session.calls >= expiresAfter) {
      ctx.auth.expire(session.token);
      fail(expired());
      return;
    }
  }
  if (ctx.usage.exhausted) {
    fail(new ApiError(403, 'REQUEST_LIMIT_EXCEEDED', 'TotalRequests Limit exceeded.'));
    return;
  }
  ctx.usage.used += 1;
  session.calls += 1;
  entry.counted = true;

  try {
    if (isBulk) {
      const readJson = async (): Promise<unknown> =>
        parseJsonBody(await readBody(req, ctx.faults.maxRequestBodyBytes()));
      const out = await bulk.handle(
        req,
        res,
        method,
        version,
        segments,
        url.searchParams,
        readJson,
        limitHeader(),
      );
      if (out.records !== undefined) entry.records = out.records;
      return;
    }
    const body =
      method === 'GET' || method === 'DELETE' || method === 'HEAD'
        ? undefined
        : parseJsonBody(await readBody(req, ctx.faults.maxRequestBodyBytes()));
    const result = rest.handle({
      method,
      version,
      segments,
      query: url.searchParams,
      headers: req.headers,
      body,
    });
    if (result.records !== undefined) entry.records = result.records;
    const headers = { ...limitHeader(), ...result.headers };
    if (result.body === undefined) {
      res.writeHead(result.status, headers);
      res.end();
      return;
    }
    const streamFault = result.queryPage
      ? ctx.faults.takeStreamFault()
      : method !== 'GET' && method !== 'HEAD'
        ? ctx.faults.takeWriteAnswerFault()
        : undefined;
    if (streamFault !== undefined) {
      await sendJsonStreamed(res, result.status, result.body, headers, streamFault);
      return;
    }
    sendJson(res, result.status, result.body, headers);
  } catch (err) {
    const apiError = toApiError(err);
    if (!apiError) throw err;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    fail(apiError);
  }
}
