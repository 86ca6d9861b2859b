/**
 * The Salesforce connector: a session signed in with jsforce (API version pinned; jsforce also
 * renews it) and every call sent with our own fetch or node:http(s), through the environment's
 * proxy when it names one (proxy.ts) — the reads the extract steps
 * need (describe, cached; `COUNT()`; REST query paging; Bulk API 2.0 query jobs with their results
 * paged by locator and streamed), the write-back's calls, API usage, and every error mapped once
 * to transient or terminal with secrets redacted. Every call has time limits
 * ({@link SalesforceTimeouts}): one for its answer to begin and one for a body that stops
 * flowing, so that a hung call fails the step with a TransientError naming it, which the state
 * machine retries, instead of holding the Lambda until its timeout.
 */
import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
// jsforce's Connection alone: the package index also loads every API module (Bulk, Metadata,
// Streaming with faye, …) that this connector does not use, ~600 KB of a bundle.
import { Connection } from 'jsforce/lib/connection';
import {
  SalesforceSignInRefusedError,
  TerminalError,
  TransientError,
  salesforceErrorKind,
} from '../../shared/errors';
import type { Logger } from '../../shared/logging';
import { createRedactor, type Redactor } from '../../shared/redact';
import {
  authFlowOf,
  parseSalesforceSecret,
  secretValuesOf,
  signIn,
  type SalesforceAuthFlow,
  type SalesforceSecret,
} from './auth';
import {
  DEFAULT_BULK_RESULT_PAGE_RECORDS,
  DEFAULT_SALESFORCE_API_VERSION,
  LAST_PAGE_LOCATOR,
  REST_QUERY_MAX_BATCH_SIZE,
  REST_QUERY_MIN_BATCH_SIZE,
  REST_QUERY_URL_MAX_CHARS,
  type BulkQueryJobState,
} from './constants';
import { createBulkCsvPageByteConverter, csvHeaderLine, recordToCopyCsvLine } from './csv';
import { classifySalesforceError, QueryCursorReleasedError } from './errors';
import { parseJsonLossless } from './json';
import { bulkPollDelaySeconds } from './poll';
import { apiRelative, GET_ATTEMPTS } from './calls';
import { proxiedFetch } from './proxy';
import { proxyFor, tunnelAgentFor } from '../../shared/proxy';
import { callCounter } from '../../shared/call-scope';

export { apiRelative, GET_ATTEMPTS } from './calls';

/** The last `Sforce-Limit-Info: api-usage=USED/MAX` seen. */
export interface ApiUsage {
  readonly used: number;
  readonly max: number;
}

/** One entry of `GET /limits`. */
export interface SalesforceLimit {
  readonly Max: number;
  readonly Remaining: number;
}

/** `GET /limits`: `DailyApiRequests`, `DailyBulkV2QueryJobs`, … */
export type SalesforceLimits = Readonly<Record<string, SalesforceLimit>>;

/** A field of an object's describe (the keys the pipeline reads; Salesforce sends more). */
export interface SalesforceFieldDescribe {
  readonly name: string;
  readonly type: string;
  readonly soapType?: string;
  readonly length: number;
  readonly precision: number;
  readonly scale: number;
  readonly digits?: number;
  readonly nillable: boolean;
  readonly createable: boolean;
  readonly updateable: boolean;
  readonly defaultedOnCreate: boolean;
  readonly externalId: boolean;
  readonly idLookup?: boolean;
  readonly unique?: boolean;
  /** Whether values differ by case (a unique external ID is case-insensitive unless this is true). */
  readonly caseSensitive?: boolean;
  readonly calculated?: boolean;
  readonly autoNumber?: boolean;
  readonly custom?: boolean;
  readonly referenceTo?: readonly string[];
  readonly relationshipName?: string | null;
  readonly restrictedPicklist?: boolean;
  readonly picklistValues?: readonly {
    value: string;
    label: string;
    active: boolean;
    defaultValue: boolean;
  }[];
  readonly [key: string]: unknown;
}

/** `GET /sobjects/{Object}/describe`. */
export interface SalesforceObjectDescribe {
  readonly name: string;
  readonly label: string;
  readonly keyPrefix: string | null;
  readonly createable: boolean;
  readonly updateable: boolean;
  readonly deletable: boolean;
  readonly queryable: boolean;
  readonly fields: readonly SalesforceFieldDescribe[];
  readonly [key: string]: unknown;
}

/** The state of a Bulk API 2.0 query job. */
export interface BulkQueryJob {
  readonly id: string;
  readonly state: BulkQueryJobState;
  readonly numberRecordsProcessed: number;
  /** Salesforce's reason when the job `Failed`. */
  readonly errorMessage: string | undefined;
  /** When Salesforce created the job (its clock): the job reads no change made before it. */
  readonly createdDate: Date | undefined;
}

/** Options of {@link SalesforceConnector.queryRestCsv}. */
export interface RestQueryOptions {
  /** `queryAll`: include deleted and archived rows. @default false */
  readonly includeDeleted?: boolean;
  /** Rows per page asked with `Sforce-Query-Options` (200–2,000; Salesforce may send fewer). @default 2000 */
  readonly batchSize?: number;
  /** Fetches of a page (cut off mid-stream, or refused with a transient error) before the read fails. @default 3 */
  readonly pageAttempts?: number;
  /**
   * Called once the last page is read (the stream then ends), with the records the pages held and
   * the `totalSize` the query's first page said it matched: a caller compares them
   * ({@link RestQueryRead}).
   */
  readonly onRead?: (read: RestQueryRead) => void;
}

/** What a REST query read: {@link RestQueryOptions.onRead}. */
export interface RestQueryRead {
  /** Records the pages held. */
  readonly records: number;
  readonly pages: number;
  /**
   * The `totalSize` of the query's first page: the records Salesforce says the query matched
   * (undefined when the answer has none, or says -1: not known). Fewer records than this means
   * one the query matched never arrived.
   */
  readonly totalSize: number | undefined;
}

/** Options of {@link SalesforceConnector.streamBulkQueryResults}. */
export interface BulkResultsOptions {
  /** Rows per result page (`maxRecords`); each page is one API call. @default DEFAULT_BULK_RESULT_PAGE_RECORDS */
  readonly maxRecords?: number;
  /** Attempts per page when the connection drops mid-page (the page resumes after the rows already written). @default 3 */
  readonly pageAttempts?: number;
}

/** Options of {@link SalesforceConnector.waitForBulkQuery}. */
export interface WaitForBulkQueryOptions {
  /** Seconds before poll number n. @default bulkPollDelaySeconds */
  readonly delaySeconds?: (attempt: number) => number;
  /** @default setTimeout */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Give up (TransientError) after this many polls. @default 40 */
  readonly maxPolls?: number;
}

/** A signed-in Salesforce org, as the extract steps (and later the write-back) use it. */
export interface SalesforceConnector {
  /** The pinned API version, e.g. `62.0`. */
  readonly apiVersion: string;
  /** `https://…my.salesforce.com` (or the emulator's URL). */
  readonly instanceUrl: string;
  /** The time limits of its calls, as given or defaulted ({@link DEFAULT_SALESFORCE_TIMEOUTS}). */
  readonly timeouts: SalesforceTimeouts;
  /** The sign-in flow of the secret. */
  readonly flow: 'soap' | 'oauth-password' | 'client-credentials' | 'jwt';
  /** API calls this connector made (sign-ins not counted: Salesforce does not count logins). */
  readonly apiCalls: number;
  /**
   * Salesforce's clock: the `Date` header (whole seconds, rounded down) of the latest answer
   * received, undefined before the first. Read right after an answer, it is no later than any
   * call sent after it started on the server.
   */
  readonly serverDate: Date | undefined;
  /** The object's describe, reused for {@link DESCRIBE_MAX_AGE_MS}. One call when not cached. */
  describe(objectName: string): Promise<SalesforceObjectDescribe>;
  /** `totalSize` of a `SELECT COUNT() FROM …` query. One call. */
  count(soql: string, options?: { includeDeleted?: boolean }): Promise<number>;
  /**
   * Runs a SOQL query over REST, paging with `nextRecordsUrl`, and streams the rows as COPY CSV
   * (header first, columns in `fields` order). One call per page.
   */
  queryRestCsv(soql: string, fields: readonly string[], options?: RestQueryOptions): Readable;
  /** Creates a Bulk API 2.0 query job (`query` or `queryAll`); returns its id. One call. */
  startBulkQuery(soql: string, options?: { includeDeleted?: boolean }): Promise<string>;
  /** The job's state. One call (a poll). */
  getBulkQueryJob(jobId: string): Promise<BulkQueryJob>;
  /**
   * Polls until the job is `JobComplete` (returned) or `Failed`/`Aborted` (TerminalError with
   * Salesforce's reason), on the {@link bulkPollDelaySeconds} schedule. For the CLI and local
   * runs; in AWS the state machine's Wait state does the waiting.
   */
  waitForBulkQuery(jobId: string, options?: WaitForBulkQueryOptions): Promise<BulkQueryJob>;
  /** Aborts a query job that is still running. One call. */
  abortBulkQuery(jobId: string): Promise<void>;
  /**
   * Streams a finished job's results as COPY CSV: one header (from `fields`, checked against the
   * result's columns), then every page fetched with its locator, converted as it arrives.
   */
  streamBulkQueryResults(jobId: string, fields: readonly string[], options?: BulkResultsOptions): Readable;
  /** `GET /limits`. One call. */
  limits(): Promise<SalesforceLimits>;
  /** The last `Sforce-Limit-Info` seen, or undefined before the first call. */
  apiUsage(): ApiUsage | undefined;
  /** Masks this connector's secrets and sessions in a text (for callers that build their own messages). */
  redact(text: string): string;
  /**
   * One REST call on the session with our own fetch, counted in {@link apiCalls}, errors
   * classified, the session renewed once on 401: a GET is sent again when cut off or refused with
   * a 5xx; any other method is sent once, and an answer cut off is a TransientError saying its
   * outcome is unknown. `path` is relative to `/services/data/vNN.N`. For the write-back
   * (writes.ts): Collections, Composite and Bulk ingest control calls.
   */
  request<T>(
    operation: string,
    method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE',
    path: string,
    body?: unknown,
  ): Promise<T>;
  /**
   * One call with `fetch` and the session's bearer token: counted, the session refreshed once on
   * a 401, whatever its body says (and the call sent again unless its body is a stream; a second
   * 401 is a TerminalError saying the renewed session was refused). Answers the
   * Response when it is OK; any other status is thrown classified. `path` as in {@link request}.
   * `read`: a POST that only reads (a query in a Composite request) has a GET's time limit, and
   * its timeout says nothing of an outcome unknown.
   */
  fetchWithSession(
    operation: string,
    path: string,
    init: RequestInit,
    options?: { readonly read?: boolean },
  ): Promise<Response>;
  /**
   * A `PUT` of a streamed body (a Bulk CSV upload) with `node:http(s)`, which reads the body only
   * as fast as the server takes it: Node's `fetch` reads a request body as fast as it is made and
   * holds what the server has not taken yet, the whole upload for a slow server. Counted; any
   * status but 2xx thrown classified; an expired session is renewed and the call answered with a
   * TransientError (a streamed body cannot be replayed). `path` as in {@link request}.
   */
  putStream(operation: string, path: string, body: Readable, headers: Record<string, string>): Promise<void>;
}

/** Options of {@link connectSalesforce}. */
export interface ConnectSalesforceOptions {
  /** The secret's JSON (from a SecretsProvider), validated here. */
  readonly secret: unknown;
  /** The secret's name, for messages. @default 'Salesforce secret' */
  readonly secretName?: string;
  /**
   * Where the login URL is set, for messages: `salesforce.loginUrl of the config` when the config's
   * replaces the secret's. @default `loginUrl of the secret <secretName>`
   */
  readonly loginUrlFrom?: string;
  /** The API version to pin. @default DEFAULT_SALESFORCE_API_VERSION */
  readonly apiVersion?: string;
  readonly logger: Logger;
  /** The fetch every call but the sign-in and the Bulk upload goes through. @default globalThis.fetch */
  readonly fetch?: typeof fetch;
  /** Time limits of the calls (tests set small ones). @default DEFAULT_SALESFORCE_TIMEOUTS */
  readonly timeouts?: Partial<SalesforceTimeouts>;
  /** How long a describe is reused. @default DESCRIBE_MAX_AGE_MS */
  readonly describeMaxAgeMs?: number;
  /** The clock of the describe cache (tests move it). @default Date.now */
  readonly now?: () => number;
}

/**
 * A describe is reused for 5 minutes, then asked for again. A connector lives as long as its
 * Lambda's warm container, often hours, while an admin may add a picklist value, make a field
 * read-only or delete it at any time: kept for the container's life, a describe made the plan
 * refuse a value Salesforce now accepts, or send a field it no longer takes, until the container
 * went cold. Five minutes keeps the steps of one run (and a Collect handing on) on one describe in
 * the common case, and costs a scheduled run at most one describe per object and step.
 */
export const DESCRIBE_MAX_AGE_MS = 5 * 60_000;

/**
 * Time limits of the connector's calls, in milliseconds. On any of them the call is abandoned
 * (its connection closed) and fails with a TransientError that names it and says how long it
 * waited; for a write, that its outcome is unknown. GETs are sent again as after any transient
 * failure (up to 3 sends); writes never are.
 */
export interface SalesforceTimeouts {
  /** A GET's answer must begin (status and headers) within this. */
  readonly getAnswerMs: number;
  /**
   * A write's answer (POST, PATCH, PUT, DELETE: Collections, Composite, Bulk job calls) must begin
   * within this, counted from the start of the request (for a Bulk upload, from when its streamed
   * body is all sent).
   */
  readonly writeAnswerMs: number;
  /**
   * An answer's body being read (JSON, a streamed CSV page) fails after this long without a byte,
   * and a streamed upload after this long with the socket taking none. Only time spent waiting
   * for Salesforce counts: a reader that pauses (back-pressure from COPY) is not timed, and a long
   * download that keeps flowing is never cut.
   */
  readonly idleMs: number;
  /** A sign-in (jsforce: SOAP login or an OAuth token request), first or renewed, in all. */
  readonly signInMs: number;
}

/**
 * The default limits, against the Lambda's 900 s timeout:
 * - writes 620 s: Salesforce runs a REST or SOAP call for up to 10 minutes ("The timeout limit
 *   for REST and SOAP API calls is 10 minutes", API Request Limits and Allocations), so a write
 *   still running there must not be given up sooner, which would only turn a slow success into an
 *   unknown outcome; 20 s more for the network. The write-back starts a write only with this
 *   limit and a minute more left in its Lambda (core/writeback/budget.ts), so a write that times
 *   out is recorded, not cut off by the Lambda's end (the push records a write of unknown outcome
 *   and is retried; its insert reconcile waits 11 minutes, INSERT_SETTLE_MS, past this limit);
 * - GETs 120 s: a GET changes nothing and is sent again up to 3 times, so 3 × 120 s (6 minutes)
 *   is the most a hung GET holds a step, with room left in its 900 s (a query too slow for that
 *   is one to read by Bulk, whose job runs on Salesforce's side and is polled);
 * - idle 60 s: once an answer flows, Salesforce sends it without pauses of that length (a Bulk
 *   results page is a file already written, a JSON answer is sent whole); a minute of silence
 *   on an open socket is a hung server or network, and a GET page is then fetched again;
 * - sign-in 60 s: a login answers in seconds; jsforce offers no other bound (its own is 30 min).
 */
export const DEFAULT_SALESFORCE_TIMEOUTS: SalesforceTimeouts = {
  getAnswerMs: 120_000,
  writeAnswerMs: 620_000,
  idleMs: 60_000,
  signInMs: 60_000,
};

/** A limit in seconds, for messages (`0.3 s`, `620 s`). */
function secondsOf(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}

/** Whether a method can change data: its outcome is unknown when its answer does not come. */
function isWrite(method: string): boolean {
  return method !== 'GET' && method !== 'HEAD';
}

/**
 * `body` with an idle limit: each read that waits longer than `idleMs` for Salesforce fails the
 * stream with `onIdle()`'s error (after `abort()` closes the connection). Pulled one chunk at a
 * time (no read-ahead), so time the consumer spends elsewhere is never counted.
 */
export function withIdleLimit(
  body: ReadableStream<Uint8Array>,
  idleMs: number,
  onIdle: () => Error,
  abort: (err: Error) => void,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        let timer: NodeJS.Timeout | undefined;
        const idle = new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => {
            const err = onIdle();
            abort(err);
            reject(err);
          }, idleMs);
        });
        const read = reader.read();
        // Settles after the stream is abandoned: nobody waits for it then.
        read.catch(() => undefined);
        try {
          const r = await Promise.race([read, idle]);
          if (r.done) controller.close();
          else controller.enqueue(r.value);
        } catch (err) {
          reader.cancel(err).catch(() => undefined);
          throw err;
        } finally {
          clearTimeout(timer);
        }
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

/** The org's `api-usage`, not a connected app's `per-app-api-usage` that may share the header. */
const API_USAGE = /(?:^|[\s;,])api-usage=(\d+)\/(\d+)/;

/** Parses a `Sforce-Limit-Info` header value. */
export function parseLimitInfo(header: string | null | undefined): ApiUsage | undefined {
  const m = header ? API_USAGE.exec(header) : null;
  return m ? { used: Number(m[1]), max: Number(m[2]) } : undefined;
}

interface QueryPage {
  totalSize: number;
  done: boolean;
  nextRecordsUrl?: string;
  records: Record<string, unknown>[];
}

/** Time limits of {@link putWithBackpressure}, and the errors it fails with when one passes. */
export interface PutLimits {
  /** The answer must begin within this once the body is all sent. */
  readonly answerMs: number;
  /** The socket must take a byte of the upload, or the answer's body bring one, within this. */
  readonly idleMs: number;
  /** The error of a limit passed: the upload stalled, no answer began, or the answer stopped. */
  readonly error: (what: 'upload' | 'answer' | 'body', ms: number) => Error;
}

/**
 * PUTs `body` to `url` with node:http(s), piped so that the body is read only as fast as the
 * socket drains; answers the status, the body text and the Sforce-Limit-Info header. An answer
 * that comes before the body is all sent (an early 401, say) is kept, and the upload stopped.
 * With `limits`, an upload the socket stops taking (the socket's buffer full and not drained for
 * `idleMs`; a body slow to be produced is not timed), an answer that does not begin within
 * `answerMs` of the upload's end, and an answer that stops for `idleMs` each fail the call with
 * `limits.error(…)`, the connection closed. `agent`: the tunnel through a proxy (proxy.ts), if any.
 */
export function putWithBackpressure(
  url: URL,
  body: Readable,
  headers: Record<string, string>,
  limits?: PutLimits,
  agent?: http.Agent,
): Promise<{ status: number; text: string; limit: string | undefined }> {
  const transport = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    let settled = false;
    let answerTimer: NodeJS.Timeout | undefined;
    let uploadWatch: NodeJS.Timeout | undefined;
    const stopTimers = (): void => {
      clearTimeout(answerTimer);
      clearInterval(uploadWatch);
    };
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      stopTimers();
      fn();
    };
    const req = transport.request(url, { method: 'PUT', headers, agent }, (res) => {
      clearTimeout(answerTimer);
      clearInterval(uploadWatch);
      if (limits) res.setTimeout(limits.idleMs, () => fail(limits.error('body', limits.idleMs)));
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', (err) => settle(() => reject(err)));
      res.on('end', () => {
        const limit = res.headers['sforce-limit-info'];
        settle(() =>
          resolve({
            status: res.statusCode ?? 0,
            text: Buffer.concat(chunks).toString('utf8'),
            limit: Array.isArray(limit) ? limit[0] : limit,
          }),
        );
        body.destroy();
      });
    });
    const fail = (err: Error): void => {
      settle(() => reject(err));
      req.destroy(err);
      body.destroy();
    };
    if (limits) {
      // The upload is stalled when the socket's buffer stays full (needs a drain) for idleMs.
      let progressAt = Date.now();
      req.on('drain', () => (progressAt = Date.now()));
      uploadWatch = setInterval(
        () => {
          if (!req.writableNeedDrain) progressAt = Date.now();
          else if (Date.now() - progressAt >= limits.idleMs) fail(limits.error('upload', limits.idleMs));
        },
        Math.max(10, Math.floor(limits.idleMs / 10)),
      );
      req.on('finish', () => {
        clearInterval(uploadWatch);
        if (settled) return;
        answerTimer = setTimeout(() => fail(limits.error('answer', limits.answerMs)), limits.answerMs);
      });
      req.on('close', stopTimers);
    }
    pipeline(body, req).catch((err: unknown) => {
      // An early answer ends the upload on purpose; any other failure is the call's.
      setImmediate(() => settle(() => reject(err)));
    });
  });
}

/** A date Salesforce sent (a job's `createdDate`, an HTTP `Date` header), or undefined. */
function parseDate(value: unknown): Date | undefined {
  if (typeof value !== 'string' || value === '') return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** A JSON answer's body parsed; a body that is not JSON is a TerminalError naming the call. */
function jsonOf<T>(operation: string, text: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new TerminalError(
      `${operation}: Salesforce answered a body that is not JSON: ${(err as Error).message}`,
    );
  }
}

/** Pause before sending a failed GET again, times the attempt. */
const GET_RETRY_PAUSE_MS = 250;

function checkBatchSize(batchSize: number): number {
  if (
    !Number.isInteger(batchSize) ||
    batchSize < REST_QUERY_MIN_BATCH_SIZE ||
    batchSize > REST_QUERY_MAX_BATCH_SIZE
  ) {
    throw new TerminalError(
      `REST query batchSize must be an integer from ${REST_QUERY_MIN_BATCH_SIZE} to ${REST_QUERY_MAX_BATCH_SIZE}, got ${batchSize}`,
    );
  }
  return batchSize;
}

/**
 * A call that passed one of its time limits ({@link SalesforceTimeouts}): transient, named, with
 * the wait it gave up after; a write's says that its outcome is unknown.
 */
export class CallTimeoutError extends TransientError {
  constructor(operation: string, method: string, what: 'answer' | 'body' | 'upload', ms: number) {
    const waited =
      what === 'answer'
        ? `no answer within ${secondsOf(ms)}${method === 'PUT' ? ' of the upload' : ''}`
        : what === 'body'
          ? `the answer stopped: no byte for ${secondsOf(ms)}`
          : `the upload stalled: Salesforce took no byte for ${secondsOf(ms)}`;
    const kind = isWrite(method) ? 'write' : 'GET';
    super(
      `Salesforce ${operation} failed: ${waited} (the connector's time limit for a ${kind})${
        isWrite(method) ? '; whether Salesforce applied the call is unknown' : ''
      }`,
    );
    // The name stays TransientError: it is what the state machine's Retry matches.
  }
}

/** An answer of a sign-in request: what a failed sign-in was told, which jsforce's error leaves out. */
interface SignInAnswer {
  readonly method: string;
  readonly url: string;
  readonly status: number;
  readonly body: string;
}

/**
 * Gives every request of a jsforce transport (the sign-in's) jsforce's `timeout` option, and the
 * proxy {@link proxyFor} says (none for this machine's own hosts; jsforce would take the proxy of
 * the environment for every request, this machine's included, and reads no `NO_PROXY`): the
 * request is aborted when its answer has not begun within `ms`. (A body that stops after that is
 * bounded only by the wait in `signInWithin`.) Each answer is handed to `onAnswer`: jsforce's
 * error of a SOAP sign-in is the answer's body alone, without its status.
 */
function limitJsforceRequests(
  transport: Connection['_transport'],
  ms: number,
  onAnswer: (answer: SignInAnswer) => void,
): void {
  const httpRequest = transport.httpRequest.bind(transport);
  transport.httpRequest = (req, options = {}) => {
    const answer = httpRequest(req, { ...options, timeout: ms, httpProxy: proxyFor(req.url) });
    answer.then(
      (res) => onAnswer({ method: req.method, url: req.url, status: res.statusCode, body: res.body }),
      () => undefined,
    );
    return answer;
  };
}

/**
 * Statuses with which a URL says it takes no sign-in at all (not a refusal of the credentials,
 * which is a SOAP fault or an OAuth error): 404, a path that does not exist (a login URL with a
 * path after its host, a typo in it); 405, a host that is not a login service (a Lightning
 * `….lightning.force.com` address).
 */
const NOT_A_LOGIN_URL_STATUSES: ReadonlySet<number> = new Set([404, 405]);

/**
 * A short excerpt of an answer's body for a message: Salesforce's `[{errorCode, message}]` as
 * `CODE: message`, an HTML page (what Salesforce's servers answer for a path they do not have) by
 * its title or its first words, any other text by its first words.
 */
export function answerExcerpt(body: string, max = 160): string {
  const text = body.trim();
  let excerpt = text;
  try {
    const parsed = JSON.parse(text) as unknown;
    const first = (Array.isArray(parsed) ? parsed[0] : parsed) as Record<string, unknown> | undefined;
    const code = first?.errorCode ?? first?.error;
    const message = first?.message ?? first?.error_description;
    if (typeof code === 'string' || typeof message === 'string') {
      excerpt = [code, message].filter((x) => typeof x === 'string' && x).join(': ');
    }
  } catch {
    if (/^<(!doctype|html|\?xml)/i.test(text) || /<(html|body)[\s>]/i.test(text)) {
      const title = /<title[^>]*>([^<]*)<\/title>/i.exec(text)?.[1]?.trim();
      excerpt = title || text.replace(/<(script|style)[\s\S]*?<\/\1>/gi, ' ').replace(/<[^>]+>/g, ' ');
    }
  }
  excerpt = excerpt.replace(/\s+/g, ' ').trim();
  return excerpt.length > max ? `${excerpt.slice(0, max - 1)}…` : excerpt;
}

/**
 * How Salesforce refuses a sign-in for its credentials: SOAP's `INVALID_LOGIN` (and the faults of
 * a password that must change or is locked out), OAuth's `invalid_grant` / `invalid_client`
 * (with `authentication failure`, or a user or app not allowed).
 */
const SIGN_IN_REFUSED =
  /\b(INVALID_LOGIN|LOGIN_MUST_USE_SECURITY_TOKEN|INVALID_OPERATION_WITH_EXPIRED_PASSWORD|PASSWORD_LOCKOUT|invalid_grant|invalid_client(_id)?|invalid_app_access|unauthorized_client)\b|authentication failure/i;

/** The keys of the secret that a refused sign-in of each flow depends on. */
const SIGN_IN_KEYS: Readonly<Record<SalesforceAuthFlow, string>> = {
  soap: "username, password and securityToken (the token is appended to the password; empty when the org trusts the caller's IP address)",
  'oauth-password': 'clientId, clientSecret, username, password and securityToken',
  'client-credentials': 'clientId and clientSecret (and that the connected app has a run-as user)',
  jwt: 'clientId, username and privateKey (its certificate uploaded to the connected app, the user pre-authorized)',
};

/**
 * Signs in with the pipeline config's `salesforce` settings and the secret they name (its JSON as
 * read): the config's `loginUrl`, when set, replaces the secret's (and is named so in messages).
 * The Lambdas' connector (lambdas/handlers/salesforce-deps.ts) and the CLI's (bin/local/deps.ts).
 */
export function connectConfiguredSalesforce(
  settings: { readonly secret: string; readonly loginUrl?: string; readonly apiVersion: string },
  secret: unknown,
  logger: Logger,
): Promise<SalesforceConnector> {
  const withLoginUrl =
    settings.loginUrl && secret && typeof secret === 'object'
      ? { ...(secret as Record<string, unknown>), loginUrl: settings.loginUrl }
      : secret;
  return connectSalesforce({
    secret: withLoginUrl,
    secretName: settings.secret,
    ...(settings.loginUrl ? { loginUrlFrom: 'salesforce.loginUrl of the config' } : {}),
    apiVersion: settings.apiVersion,
    logger,
  });
}

/**
 * Signs in with the secret's flow and returns a connector. A sign-in refused for the credentials
 * (bad password, unknown client, bad key), or at a URL that takes none, is a
 * SalesforceSignInRefusedError (terminal, and for the whole run) naming the flow and Salesforce's
 * code, never a credential; so is a renewal of the session refused later.
 */
export async function connectSalesforce(options: ConnectSalesforceOptions): Promise<SalesforceConnector> {
  const secretName = options.secretName ?? 'Salesforce secret';
  const secret: SalesforceSecret = parseSalesforceSecret(options.secret, secretName);
  const flow = authFlowOf(secret);
  const apiVersion = options.apiVersion ?? DEFAULT_SALESFORCE_API_VERSION;
  if (!/^\d+\.0$/.test(apiVersion)) {
    throw new TerminalError(`Salesforce apiVersion must look like "62.0", got "${apiVersion}"`);
  }
  const redactor: Redactor = createRedactor(secretValuesOf(secret));
  const logger = options.logger.child({ connector: 'salesforce' });
  const doFetch = options.fetch ?? proxiedFetch();
  const timeouts: SalesforceTimeouts = { ...DEFAULT_SALESFORCE_TIMEOUTS, ...options.timeouts };
  const secretRef = options.secretName ? `the secret ${options.secretName}` : 'the Salesforce secret';
  const loginUrlFrom = options.loginUrlFrom ?? `loginUrl of ${secretRef}`;

  /**
   * A sign-in (first or renewed) within `timeouts.signInMs`: jsforce's request takes no signal,
   * and its own bound is 30 minutes, so the wait is ended here; its request is also given the
   * limit (jsforce's `timeout` option, which aborts it until its answer begins).
   */
  const signInWithin = (c: Connection): Promise<string> => {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new TransientError(
              `Salesforce sign-in (${flow}) at ${secret.loginUrl} (${loginUrlFrom}) failed: timed out, no answer within ${secondsOf(timeouts.signInMs)} (the connector's time limit for a sign-in)`,
            ),
          ),
        timeouts.signInMs,
      );
    });
    const attempt = signIn(c, secret);
    attempt.catch(() => undefined);
    return Promise.race([attempt, limit]).finally(() => clearTimeout(timer));
  };

  const conn = new Connection({
    loginUrl: secret.loginUrl,
    version: apiVersion,
    // jsforce's own logging off, whatever JSFORCE_LOG_LEVEL says: at DEBUG it prints the SOAP
    // login's answer (the session id) and HTML answers whole with console.log, past the redactor.
    logLevel: 'NONE',
    ...('clientId' in secret
      ? {
          oauth2: {
            loginUrl: secret.loginUrl,
            clientId: secret.clientId,
            ...('clientSecret' in secret ? { clientSecret: secret.clientSecret } : {}),
          },
        }
      : {}),
    // The flows roundtrip supports get no refresh token: a refresh is a new sign-in (for SOAP that
    // is what jsforce's own login() delegate does too).
    refreshFn: (c, callback) => {
      signInWithin(c).then(
        (token) => {
          redactor.add(token);
          refusedRenewal = undefined;
          callback(null, token);
        },
        (err: unknown) => {
          const error = signInError(err);
          refusedRenewal = error instanceof SalesforceSignInRefusedError ? error : undefined;
          // Any other failure goes on as it came, for `failed` to classify (a network one is transient).
          callback(refusedRenewal ?? redactor.redactError(err));
        },
      );
    },
  });
  conn.on('refresh', () => logger.info('Salesforce session renewed', { flow }));
  let lastAnswer: SignInAnswer | undefined;
  /** The error of the last renewal of the session when Salesforce refused it (see `failed`). */
  let refusedRenewal: SalesforceSignInRefusedError | undefined;
  for (const transport of [conn._transport, conn.oauth2._transport])
    limitJsforceRequests(transport, timeouts.signInMs, (answer) => (lastAnswer = answer));

  /**
   * A failed sign-in (the first or a renewal) as the step is to fail with it. Refused for the
   * credentials, or at a URL that takes no sign-in: a {@link SalesforceSignInRefusedError}, which
   * stops the whole run (every later sign-in would use the same secret and URL, and each refusal
   * counts toward Salesforce's lockout of the user). A timeout, a dropped connection or a 5xx stays
   * transient; anything else (a certificate not trusted) is terminal, named as it is.
   */
  function signInError(err: unknown): TransientError | TerminalError {
    const at = (where: string) =>
      classifySalesforceError(err, { operation: `sign-in (${flow}) at ${where}`, redactor });
    let classified = at(secret.loginUrl);
    // No answer, or none that refuses the credentials (refused, a host not found, a connection
    // dropped, a 503): the URL is named by where it is set, as a 404's is, since a wrong one (an
    // emulator stopped, its port changed) is corrected there.
    if (classified instanceof TransientError && !(err instanceof TransientError))
      classified = at(`${secret.loginUrl} (${loginUrlFrom})`);
    logger.error('Salesforce sign-in failed', { flow, loginUrl: secret.loginUrl, error: classified.message });
    // A URL that takes no sign-in (a path Salesforce does not have: 404): said so, by where the
    // URL is set, rather than with the page it answered.
    const answer = lastAnswer;
    if (!(classified instanceof TransientError) && answer && NOT_A_LOGIN_URL_STATUSES.has(answer.status)) {
      const excerpt = redactor.redact(answerExcerpt(answer.body));
      const path = new URL(answer.url).pathname;
      return new SalesforceSignInRefusedError(
        `Salesforce sign-in (${flow}) failed: the login URL ${secret.loginUrl} (${loginUrlFrom}) answered ` +
          `${answer.status} ${http.STATUS_CODES[answer.status] ?? ''} to ${answer.method} ${path}` +
          `${excerpt ? ` ("${excerpt}")` : ''}: there is no Salesforce sign-in at that URL. Check it: a login ` +
          `URL is https://login.salesforce.com, https://test.salesforce.com (a sandbox), a My Domain ` +
          `(https://NAME.my.salesforce.com) or the emulator's address (http://127.0.0.1:PORT), with nothing ` +
          `after the host (docs/salesforce-auth.md)`,
        { cause: classified.cause ?? classified },
      );
    }
    // Refused for its credentials (a wrong password, client or key): what to correct, and where.
    // Anything else (a certificate not trusted) is named as it is.
    if (classified instanceof TransientError || !SIGN_IN_REFUSED.test(classified.message)) return classified;
    return new SalesforceSignInRefusedError(
      `${classified.message.replace(/\.?$/, '.')} Check ${SIGN_IN_KEYS[flow]} in ${secretRef} (docs/salesforce-auth.md).`,
      { cause: classified.cause ?? classified },
    );
  }

  try {
    redactor.add(await signInWithin(conn));
  } catch (err) {
    throw signInError(err);
  }
  logger.info('Signed in to Salesforce', { flow, instanceUrl: conn.instanceUrl, apiVersion });

  let apiCalls = 0;
  // The calls of the current step invocation, where steps share this connector (the local runner).
  const callsHere = callCounter();
  let usage: ApiUsage | undefined;
  let serverDate: Date | undefined;
  const describes = new Map<
    string,
    { readonly at: number; readonly describe: Promise<SalesforceObjectDescribe> }
  >();
  const describeMaxAgeMs = options.describeMaxAgeMs ?? DESCRIBE_MAX_AGE_MS;
  const now = options.now ?? Date.now;
  const base = (): string => `${conn.instanceUrl}/services/data/v${apiVersion}`;

  /**
   * One call with a JSON body, or none (a write, a Bulk job's create, close or abort), sent once
   * with our own fetch: jsforce 3.10.16 never settles a request whose answer is cut mid-body, so a
   * connection dropped there would hold the step until its timeout. Never sent twice on our own
   * (Salesforce may have acted on it), except after a 401, when it did not
   * ({@link SalesforceConnector.fetchWithSession}). An answer cut off is a TransientError that says
   * the outcome is unknown: the step is retried, and the write-back resolves what was sent
   * (records resent to the same Ids, inserts reconciled by external ID).
   */
  const send = async <T>(
    operation: string,
    method: 'POST' | 'PATCH' | 'PUT' | 'DELETE',
    path: string,
    body?: string,
  ): Promise<T> => {
    const res = await connector.fetchWithSession(operation, path, {
      method,
      headers: {
        Accept: 'application/json',
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body }),
    });
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      if (err instanceof CallTimeoutError) throw err;
      throw new TransientError(
        `${operation}: the answer was cut off, so whether Salesforce applied the call is unknown: ${(err as Error).message}`,
        { cause: err },
      );
    }
    return text.trim() === '' ? (undefined as T) : jsonOf<T>(operation, text);
  };

  const queryPath = (soql: string, includeDeleted: boolean): string =>
    `/${includeDeleted ? 'queryAll' : 'query'}?q=${encodeURIComponent(soql)}`;

  /**
   * The body of one GET, read with our own fetch rather than jsforce's request: jsforce 3.10.16
   * never settles a request whose response body is cut mid-stream, so a connection reset there
   * would hang the step until its timeout. A GET cut off, or refused with a transient error (a
   * 5xx, a reset), is sent again after a short pause (a GET changes nothing, and a query page's
   * URL names its position, so the same answer comes back), `attempts` times in all.
   */
  const getText = async (
    operation: string,
    path: string,
    headers: Record<string, string>,
    attempts: number,
    /** A read sent as a POST with this body (a query inside a Composite request), as safe to send again. */
    postBody?: string,
  ): Promise<string> => {
    for (let attempt = 1; ; attempt += 1) {
      try {
        const res = await connector.fetchWithSession(
          operation,
          path,
          postBody === undefined ? { headers } : { method: 'POST', headers, body: postBody },
          { read: true },
        );
        try {
          return await res.text();
        } catch (err) {
          if (err instanceof CallTimeoutError) throw err;
          throw new TransientError(`${operation}: the answer was cut off: ${(err as Error).message}`, {
            cause: err,
          });
        }
      } catch (err) {
        // A released cursor does not come back: sending the page's GET again only costs calls.
        if (
          !(err instanceof TransientError) ||
          err instanceof QueryCursorReleasedError ||
          attempt >= attempts
        )
          throw err;
        logger.warn('Salesforce GET failed; sending it again', { operation, attempt, error: err.message });
        await new Promise((resolve) => setTimeout(resolve, GET_RETRY_PAUSE_MS * attempt));
      }
    }
  };

  const getJson = async <T>(operation: string, path: string): Promise<T> =>
    jsonOf<T>(operation, await getText(operation, path, { Accept: 'application/json' }, GET_ATTEMPTS));

  /**
   * The answer of a query GET (`path`: `/query?q=…`, `/queryAll?q=…` or a next page's), its
   * numbers kept digit for digit (json.ts). A path longer than {@link REST_QUERY_URL_MAX_CHARS}
   * (a query of many fields, or a long condition) would be refused for its length (414, 431), so
   * it is sent as the one subrequest of a Composite request, in the body of a POST, with the same
   * headers (Help article 000386264): one API call either way. A query only reads, so that POST is
   * sent again as a GET would be ({@link getText}), with a GET's time limit (120 s, not a write's
   * 620 s); the subrequest's error is thrown as the GET's would have been.
   */
  const queryAnswer = async (
    operation: string,
    path: string,
    headers: Record<string, string>,
    attempts: number,
  ): Promise<unknown> => {
    const parse = (text: string): unknown => {
      try {
        return parseJsonLossless(text);
      } catch (err) {
        throw new TerminalError(
          `Salesforce ${operation} answered with a body that is not JSON: ${(err as Error).message}`,
        );
      }
    };
    const accept = { Accept: 'application/json' };
    if (path.length <= REST_QUERY_URL_MAX_CHARS) {
      return parse(await getText(operation, path, { ...headers, ...accept }, attempts));
    }
    const composite = JSON.stringify({
      allOrNone: false,
      compositeRequest: [
        {
          method: 'GET',
          url: `/services/data/v${apiVersion}${path}`,
          referenceId: 'query',
          ...(Object.keys(headers).length > 0 ? { httpHeaders: headers } : {}),
        },
      ],
    });
    const answer = parse(
      await getText(
        operation,
        '/composite',
        { ...accept, 'Content-Type': 'application/json' },
        attempts,
        composite,
      ),
    ) as { compositeResponse?: { body?: unknown; httpStatusCode?: unknown }[] } | null;
    const sub = answer?.compositeResponse?.[0];
    if (!sub || typeof sub.httpStatusCode !== 'number') {
      throw new TerminalError(
        `Salesforce ${operation} (a query too long for a URL, sent in a Composite request) answered without the query's result`,
      );
    }
    if (sub.httpStatusCode < 400) return sub.body;
    const first = (Array.isArray(sub.body) ? sub.body[0] : sub.body) as
      { errorCode?: unknown; message?: unknown } | null | undefined;
    const errorCode =
      typeof first?.errorCode === 'string' ? first.errorCode : `ERROR_HTTP_${sub.httpStatusCode}`;
    const message =
      typeof first?.message === 'string' ? first.message : JSON.stringify(sub.body ?? null).slice(0, 300);
    throw classifySalesforceError(
      Object.assign(new Error(message), { name: errorCode, errorCode, statusCode: sub.httpStatusCode }),
      { operation, redactor },
    );
  };

  /** One REST query page ({@link queryAnswer}). */
  const fetchQueryPage = async (path: string, batchSize: number, attempts: number): Promise<QueryPage> => {
    const page = (await queryAnswer(
      'query',
      path,
      { 'Sforce-Query-Options': `batchSize=${batchSize}` },
      attempts,
    )) as QueryPage | null;
    if (page === null || typeof page !== 'object') {
      throw new TerminalError('Salesforce query answered without a query result');
    }
    if (!Array.isArray(page.records))
      throw new TerminalError('Salesforce query answered without a records array');
    return page;
  };

  async function* restCsv(
    soql: string,
    fields: readonly string[],
    opts: RestQueryOptions,
  ): AsyncGenerator<string> {
    const batchSize = checkBatchSize(opts.batchSize ?? REST_QUERY_MAX_BATCH_SIZE);
    const attempts = opts.pageAttempts ?? GET_ATTEMPTS;
    yield csvHeaderLine(fields);
    let path: string | undefined = queryPath(soql, opts.includeDeleted ?? false);
    let rows = 0;
    let pages = 0;
    let totalSize: number | undefined;
    while (path) {
      const page = await fetchQueryPage(path, batchSize, attempts);
      pages += 1;
      // -1 when Salesforce does not know it (an external object's adapter that pages without a
      // count, Apex Connector Framework): nothing to compare.
      if (pages === 1 && typeof page.totalSize === 'number' && page.totalSize >= 0)
        totalSize = page.totalSize;
      let chunk = '';
      for (const record of page.records) chunk += recordToCopyCsvLine(record, fields);
      rows += page.records.length;
      if (chunk) yield chunk;
      if (page.done !== true && !page.nextRecordsUrl) {
        // Ending here would load the rows so far as if they were all.
        throw new TerminalError(
          `Salesforce query page ${pages} is not done but came without a nextRecordsUrl: the read cannot go on`,
        );
      }
      path = page.done === true ? undefined : apiRelative(page.nextRecordsUrl as string);
    }
    logger.info('Salesforce REST query read', { rows, pages, totalSize });
    opts.onRead?.({ records: rows, pages, totalSize });
  }

  const toJob = (raw: Record<string, unknown>, jobId: string): BulkQueryJob => ({
    id: typeof raw.id === 'string' ? raw.id : jobId,
    state: raw.state as BulkQueryJobState,
    numberRecordsProcessed: typeof raw.numberRecordsProcessed === 'number' ? raw.numberRecordsProcessed : 0,
    errorMessage: typeof raw.errorMessage === 'string' && raw.errorMessage ? raw.errorMessage : undefined,
    createdDate: parseDate(raw.createdDate),
  });

  const checkJobId = (jobId: string): string => {
    if (!/^[A-Za-z0-9]{15,18}$/.test(jobId))
      throw new TerminalError(`Not a Salesforce Bulk job id: "${jobId}"`);
    return jobId;
  };

  /**
   * One GET of a results page. `fetchWithSession` renews the session once on a 401 (any, as for
   * every REST call: jsforce's Bulk 2.0 client renews only on `INVALID_SESSION_ID`) and replays the
   * (bodiless) request.
   */
  const fetchResultsPage = (
    jobId: string,
    locator: string | undefined,
    maxRecords: number,
  ): Promise<Response> => {
    const params = new URLSearchParams({ maxRecords: String(maxRecords) });
    if (locator) params.set('locator', locator);
    return connector.fetchWithSession(
      `Bulk query results of job ${jobId}`,
      `/jobs/query/${jobId}/results?${params.toString()}`,
      { headers: { Accept: 'text/csv' } },
    );
  };

  async function* bulkCsv(
    jobId: string,
    fields: readonly string[],
    opts: BulkResultsOptions,
  ): AsyncGenerator<string | Buffer> {
    const maxRecords = opts.maxRecords ?? DEFAULT_BULK_RESULT_PAGE_RECORDS;
    const pageAttempts = opts.pageAttempts ?? 3;
    yield csvHeaderLine(fields);
    let locator: string | undefined;
    let pages = 0;
    let rows = 0;
    for (;;) {
      let written = 0; // data rows of this page already handed on
      let next: string | null = null;
      for (let attempt = 1; ; attempt += 1) {
        try {
          const res = await fetchResultsPage(jobId, locator, maxRecords);
          const converter = createBulkCsvPageByteConverter({ skipRecords: written });
          if (!res.body) throw new TerminalError(`Bulk query results of job ${jobId} came without a body`);
          let headerChecked = false;
          for await (const chunk of Readable.fromWeb(res.body as WebReadableStream)) {
            const bytes = converter.write(chunk as Buffer);
            if (!headerChecked && converter.header) {
              checkHeader(converter.header, fields, jobId);
              headerChecked = true;
            }
            if (bytes.length > 0) {
              written = converter.records;
              yield bytes;
            }
          }
          const rest = converter.end();
          // An empty result may come as an empty body: no header, no rows.
          if (!headerChecked && converter.header) checkHeader(converter.header, fields, jobId);
          written = converter.records;
          if (rest.length > 0) yield rest;
          checkPageRecords(jobId, pages + 1, res.headers.get('sforce-numberofrecords'), converter.records);
          next = res.headers.get('sforce-locator');
          if (next === null || next === '') {
            // The last page says `null`; no header at all does not tell whether more pages follow.
            throw new TerminalError(
              `Bulk query results page ${pages + 1} of job ${jobId} came without a Sforce-Locator header: the read cannot tell whether it is complete`,
            );
          }
          break;
        } catch (err) {
          const classified = classifySalesforceError(err, {
            operation: `Bulk query results of job ${jobId}`,
            redactor,
          });
          if (!(classified instanceof TransientError) || attempt >= pageAttempts) throw classified;
          logger.warn('Bulk query results page interrupted; fetching it again', {
            jobId,
            page: pages + 1,
            rowsAlreadyWritten: written,
            attempt,
            error: classified.message,
          });
        }
      }
      pages += 1;
      rows += written;
      if (next === LAST_PAGE_LOCATOR) break;
      locator = next;
    }
    logger.info('Salesforce Bulk query results read', { jobId, rows, pages });
  }

  /**
   * A results page holds as many records as its `Sforce-NumberOfRecords` header says. Fewer or
   * more in the CSV read means records run together or split apart (a quote or a line end the
   * conversion took otherwise than Salesforce meant), and loading them would lose or invent
   * records silently: the read fails instead, nothing of it kept (the load's transaction). The
   * same answer would come again, so it is not retried. A page without the header is taken as
   * it is, unchecked (Salesforce documents it on every page).
   */
  function checkPageRecords(jobId: string, page: number, header: string | null, read: number): void {
    if (header === null || header.trim() === '') return;
    const said = Number(header.trim());
    if (!Number.isSafeInteger(said) || said < 0) {
      throw new TerminalError(
        `Bulk query results page ${page} of job ${jobId} came with Sforce-NumberOfRecords "${answerExcerpt(header, 40)}", not a record count`,
      );
    }
    if (said !== read) {
      throw new TerminalError(
        `Bulk query results page ${page} of job ${jobId} holds ${read.toLocaleString('en-US')} records in its CSV, but Salesforce says ${said.toLocaleString('en-US')} (Sforce-NumberOfRecords): a value the CSV conversion read otherwise than Salesforce wrote it would lose or invent records, so nothing of this read is loaded. Report it with the job id; a bulkThreshold above the task's row count reads it over REST, without the CSV`,
      );
    }
  }

  function checkHeader(header: readonly string[], fields: readonly string[], jobId: string): void {
    const same =
      header.length === fields.length && header.every((h, i) => h.toLowerCase() === fields[i]?.toLowerCase());
    if (!same) {
      throw new TerminalError(
        `Bulk query results of job ${jobId} have columns [${header.join(', ')}], expected [${fields.join(', ')}]`,
      );
    }
  }

  /**
   * A call that Salesforce answered with a non-2xx status: throws the classified error, unless it
   * is the first 401 of a call and the session could be renewed: then answers true (the caller
   * replays a call without a body or with one held as text; a streamed body cannot be replayed, so
   * the step is retried as a whole: its caller re-attaches to or replaces the job). Any 401 is
   * renewed, whatever its body says, as jsforce does for REST (salesforce-wire.md, "Login"): an
   * expired session says `INVALID_SESSION_ID`, but a 401 without it (another code, a gateway's
   * text) refuses the session all the same. Bulk API 2.0 calls are REST calls and are renewed the
   * same way. A 401 of the call sent again on the renewed session (`attempt` > 0) is not renewed
   * again: a TerminalError that names the call and says that the session of a fresh sign-in was
   * refused.
   */
  const failed = async (
    operation: string,
    status: number,
    text: string,
    attempt: number,
    sentAt: number,
  ): Promise<true> => {
    let apiError: { errorCode?: string; message?: string } | undefined;
    try {
      const parsed = JSON.parse(text) as unknown;
      apiError = (Array.isArray(parsed) ? parsed[0] : parsed) as typeof apiError;
    } catch {
      apiError = undefined;
    }
    const errorCode = apiError?.errorCode ?? `ERROR_HTTP_${status}`;
    /**
     * The 401 itself, as the cause of the error a refused session ends in: it keeps the status,
     * which says that Salesforce processed nothing of the call (errors.ts, refusedCallStatus), so a
     * write-back takes back the `sent` mark of its records as after any refusal of a whole call.
     */
    const unauthorized = (): Error =>
      redactor.redactError(
        Object.assign(new Error(apiError?.message ?? (text.slice(0, 300) || 'Unauthorized')), {
          name: errorCode,
          statusCode: 401,
        }),
      );
    if (status === 401 && attempt === 0 && conn._refreshDelegate) {
      try {
        await conn._refreshDelegate.refresh(sentAt);
      } catch (err) {
        // jsforce wraps the renewal's error in its own (`Unable to refresh session due to: …`):
        // one that Salesforce refused for the credentials is the sign-in's own, as the first
        // sign-in would have failed with it, and stops the run the same way. Either is thrown with
        // the call's 401 as its cause: the call was refused, not processed.
        if (refusedRenewal)
          throw new SalesforceSignInRefusedError(refusedRenewal.message, { cause: unauthorized() });
        const classified = classifySalesforceError(err, { operation, redactor });
        const Kind = salesforceErrorKind(classified);
        throw new Kind(classified.message, { cause: unauthorized() });
      }
      return true;
    }
    if (status === 401 && attempt > 0) {
      const said = answerExcerpt(redactor.redact(text), 300);
      throw new TerminalError(
        `Salesforce ${operation} failed: the session was refused again (401${said ? ` "${said}"` : ''}) right after the connector renewed it with a new sign-in (${flow}): the credentials of ${secretRef} sign in, but Salesforce refuses their session for this call. Check the user's access in Salesforce (API Enabled, the connected app's policies, its login IP ranges) and ${secretRef} (docs/salesforce-auth.md)`,
        { cause: unauthorized() },
      );
    }
    const error = Object.assign(new Error(apiError?.message ?? text.slice(0, 300)), {
      name: errorCode,
      errorCode,
      statusCode: status,
    });
    throw classifySalesforceError(error, { operation, redactor });
  };

  const sessionRenewedError = (operation: string): TransientError =>
    new TransientError(
      `${operation}: the Salesforce session expired during the request; it was renewed, retry the step`,
    );

  const connector: SalesforceConnector = {
    apiVersion,
    timeouts,
    get instanceUrl() {
      return conn.instanceUrl;
    },
    flow,
    get apiCalls() {
      return callsHere.read(apiCalls);
    },
    get serverDate() {
      return serverDate;
    },
    describe(objectName) {
      const key = objectName.toLowerCase();
      const cached = describes.get(key);
      if (cached && now() - cached.at < describeMaxAgeMs) return cached.describe;
      const entry = {
        at: now(),
        describe: getJson<SalesforceObjectDescribe>(
          `describe ${objectName}`,
          `/sobjects/${encodeURIComponent(objectName)}/describe`,
        ),
      };
      describes.set(key, entry);
      // A failure is not cached: the next call asks again.
      entry.describe.catch(() => {
        if (describes.get(key) === entry) describes.delete(key);
      });
      return entry.describe;
    },
    async count(soql, opts = {}) {
      const res = ((await queryAnswer(
        'count',
        queryPath(soql, opts.includeDeleted ?? false),
        {},
        GET_ATTEMPTS,
      )) ?? {}) as { totalSize?: unknown };
      if (typeof res.totalSize !== 'number')
        throw new TerminalError('Salesforce COUNT() query answered without totalSize');
      return res.totalSize;
    },
    queryRestCsv(soql, fields, opts = {}) {
      if (fields.length === 0) throw new TerminalError('queryRestCsv needs at least one field');
      return Readable.from(restCsv(soql, fields, opts), { objectMode: false });
    },
    async startBulkQuery(soql, opts = {}) {
      const job = await send<Record<string, unknown>>(
        'Bulk query job create',
        'POST',
        '/jobs/query',
        JSON.stringify({
          operation: opts.includeDeleted ? 'queryAll' : 'query',
          query: soql,
          contentType: 'CSV',
          columnDelimiter: 'COMMA',
          lineEnding: 'LF',
        }),
      );
      if (typeof job.id !== 'string')
        throw new TerminalError('Salesforce Bulk query job create answered without an id');
      logger.info('Salesforce Bulk query job created', {
        jobId: job.id,
        includeDeleted: opts.includeDeleted ?? false,
      });
      return job.id;
    },
    async getBulkQueryJob(jobId) {
      const raw = await getJson<Record<string, unknown>>(
        `Bulk query job ${jobId} poll`,
        `/jobs/query/${checkJobId(jobId)}`,
      );
      return toJob(raw, jobId);
    },
    async waitForBulkQuery(jobId, opts = {}) {
      const delay = opts.delaySeconds ?? bulkPollDelaySeconds;
      const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
      const maxPolls = opts.maxPolls ?? 40;
      for (let attempt = 0; attempt < maxPolls; attempt += 1) {
        await sleep(delay(attempt) * 1000);
        const job = await connector.getBulkQueryJob(jobId);
        logger.debug('Salesforce Bulk query job polled', { jobId, state: job.state, poll: attempt + 1 });
        if (job.state === 'JobComplete') return job;
        if (job.state === 'Failed' || job.state === 'Aborted') {
          throw new TerminalError(
            `Salesforce Bulk query job ${jobId} ended ${job.state}: ${redactor.redact(job.errorMessage ?? 'no reason given')}`,
          );
        }
      }
      throw new TransientError(`Salesforce Bulk query job ${jobId} still running after ${maxPolls} polls`);
    },
    async abortBulkQuery(jobId) {
      await send(
        `Bulk query job ${jobId} abort`,
        'PATCH',
        `/jobs/query/${checkJobId(jobId)}`,
        JSON.stringify({ state: 'Aborted' }),
      );
    },
    streamBulkQueryResults(jobId, fields, opts = {}) {
      checkJobId(jobId);
      if (fields.length === 0) throw new TerminalError('streamBulkQueryResults needs at least one field');
      return Readable.from(bulkCsv(jobId, fields, opts), { objectMode: false });
    },
    limits() {
      return getJson<SalesforceLimits>('limits', '/limits');
    },
    apiUsage() {
      return usage;
    },
    redact(text) {
      return redactor.redact(text);
    },
    request<T>(
      operation: string,
      method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE',
      path: string,
      body?: unknown,
    ) {
      if (method === 'GET') {
        if (body !== undefined) throw new TerminalError(`${operation}: a GET takes no body`);
        return getJson<T>(operation, path);
      }
      return send<T>(
        operation,
        method,
        path,
        body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      );
    },
    async fetchWithSession(operation, path, init, options = {}) {
      // A read sent as a POST is timed and named as the GET it stands for.
      const method = options.read ? 'GET' : (init.method ?? 'GET').toUpperCase();
      const answerMs = isWrite(method) ? timeouts.writeAnswerMs : timeouts.getAnswerMs;
      for (let attempt = 0; ; attempt += 1) {
        const sentAt = Date.now();
        apiCalls += 1;
        callsHere.count();
        // One controller per send: the answer's limit aborts it, and so does the body's idle limit.
        const controller = new AbortController();
        const abort = (err: Error): void => controller.abort(err);
        let timedOut: CallTimeoutError | undefined;
        const answerTimer = setTimeout(() => {
          timedOut = new CallTimeoutError(operation, method, 'answer', answerMs);
          abort(timedOut);
        }, answerMs);
        let fetched: Response;
        try {
          fetched = await doFetch(base() + path, {
            ...init,
            signal: controller.signal,
            headers: {
              ...(init.headers as Record<string, string>),
              Authorization: `Bearer ${conn.accessToken ?? ''}`,
            },
          });
        } catch (err) {
          if (timedOut) throw timedOut;
          throw classifySalesforceError(err, { operation, redactor });
        } finally {
          clearTimeout(answerTimer);
        }
        // (A Response cannot be built with a body for 204, 205 or 304; fetch gives those none.)
        const res =
          fetched.body && ![204, 205, 304].includes(fetched.status)
            ? new Response(
                withIdleLimit(
                  fetched.body as ReadableStream<Uint8Array>,
                  timeouts.idleMs,
                  () => new CallTimeoutError(operation, method, 'body', timeouts.idleMs),
                  abort,
                ),
                { status: fetched.status, statusText: fetched.statusText, headers: fetched.headers },
              )
            : fetched;
        const limitInfo = parseLimitInfo(res.headers.get('sforce-limit-info'));
        if (limitInfo) usage = limitInfo;
        serverDate = parseDate(res.headers.get('date')) ?? serverDate;
        if (res.ok) return res;
        const renewed = await failed(operation, res.status, await res.text(), attempt, sentAt);
        // Salesforce did nothing with a call it refused for the session: once the session is
        // renewed, a call without a body or with one held as text is sent again; a streamed body
        // cannot be (see `failed`).
        if (renewed && (init.body === undefined || init.body === null || typeof init.body === 'string'))
          continue;
        throw sessionRenewedError(operation);
      }
    },
    async putStream(operation, path, body, headers) {
      const sentAt = Date.now();
      apiCalls += 1;
      callsHere.count();
      const url = new URL(base() + path);
      let answer: { status: number; text: string; limit: string | undefined };
      const agent = tunnelAgentFor(url);
      try {
        answer = await putWithBackpressure(
          url,
          body,
          { ...headers, Authorization: `Bearer ${conn.accessToken ?? ''}` },
          {
            answerMs: timeouts.writeAnswerMs,
            idleMs: timeouts.idleMs,
            error: (what, ms) => new CallTimeoutError(operation, 'PUT', what, ms),
          },
          agent,
        );
      } catch (err) {
        // (A tunnel the proxy refused fails with an error that names the proxy: lambdas/shared/proxy.ts.)
        throw classifySalesforceError(err, { operation, redactor });
      }
      const limitInfo = parseLimitInfo(answer.limit);
      if (limitInfo) usage = limitInfo;
      if (answer.status >= 200 && answer.status < 300) return;
      await failed(operation, answer.status, answer.text, 0, sentAt);
      throw sessionRenewedError(operation);
    },
  };
  return connector;
}
