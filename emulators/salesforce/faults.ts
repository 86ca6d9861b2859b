/**
 * Fault injection for the Salesforce emulator: what a real org does to a client on a bad day
 * (latency, bursts of 503 or 401, expired sessions, row locks, failed Bulk jobs, dropped or stalled
 * connections, slow streams, a spent daily allowance). Faults are set at start
 * (`startSalesforceEmulator({ faults })`) and changed while running (`emulator.faults.set(…)`);
 * fractions draw from a seeded RNG so that a test sees the same records locked on every run.
 */
import { suggestion } from '../../lambdas/config/issues';
import type { StreamFault } from './http';

/** The faults that can be switched on. Every field is optional; `set()` merges. */
export interface SalesforceFaults {
  /** Delay, in milliseconds, before the emulator answers any call (logins included). */
  latencyMs?: number;
  /**
   * Delay, in milliseconds, before the emulator answers a call that writes (an API call other than
   * a GET: a REST write, a Bulk job's creation, upload or close), on top of `latencyMs`. Reads and
   * logins answer at once: a run gets to its push quickly, and its write is out for as long as a
   * test needs to stop the run there, however loaded the machine.
   */
  writeLatencyMs?: number;
  /** The next N API calls (under `/services/data/vNN.N/`) answer 503 `SERVER_UNAVAILABLE`. */
  http503Burst?: number;
  /**
   * The next N API calls answer 401 without `INVALID_SESSION_ID`: a plain-text `Unauthorized`
   * body, not Salesforce's JSON error, as a gateway or proxy in front of the org may answer. The
   * session itself stays valid. A client that renews its session only when the body says
   * `INVALID_SESSION_ID` (jsforce's Bulk 2.0 client) fails on it; one that renews on any 401
   * (jsforce's REST calls, salesforce-wire.md "Login") signs in again and sends the call again.
   */
  http401Burst?: number;
  /**
   * The next N API calls answer 400 with an HTML page (`400 Bad Request`), not Salesforce's JSON
   * error list: a proxy or gateway in front of the org refusing a request it will not pass on.
   * Salesforce never sees the call: it is not processed, nor counted against the allowance.
   */
  http400Burst?: number;
  /**
   * Every session (access token) stops working after this many API calls: the next call answers
   * 401 `INVALID_SESSION_ID`, as when Salesforce times a session out. Counted per token from the
   * moment it is issued, or from the moment this fault is set for tokens already issued.
   * `0` or `undefined` switches it off.
   */
  sessionExpiresAfterCalls?: number;
  /**
   * Records a Bulk ingest job processes (written or refused) whose line its `successfulResults`
   * and `failedResults` leave out, by a value of the row as it was uploaded (its Id, exactly as
   * sent, or its external-ID value): a finished job that does not account for every record, which
   * a client must not read as a failure. Stays on until cleared.
   */
  omitIngestResults?: readonly string[];
  /** Fraction (0..1) of records written that fail with the per-record `UNABLE_TO_LOCK_ROW`. */
  lockRowFraction?: number;
  /** Records that fail with `UNABLE_TO_LOCK_ROW`: by Id (15 or 18 characters) or external-ID value. */
  lockRowKeys?: readonly string[];
  /**
   * The next Bulk job (ingest or query) that starts processing ends in state `Failed`; a string is
   * the job's `errorMessage`. One-shot: cleared when a job consumes it.
   */
  failNextBulkJob?: boolean | string;
  /**
   * Destroy the socket after this many bytes of the next streamed response body (a Bulk query
   * results page or a REST query page). One-shot: cleared when a response consumes it, so the
   * client's retry can succeed.
   */
  resetStreamAfterBytes?: number;
  /**
   * Destroy the socket after this many bytes of the answer to the next REST write (a Collections,
   * Composite or single-record POST, PATCH, PUT or DELETE with an answer body): the write is
   * applied, its answer lost, as when a connection drops after Salesforce committed. One-shot.
   */
  resetWriteAnswerAfterBytes?: number;
  /**
   * Send this many bytes of the next streamed response body (a Bulk query results page or a REST
   * query page), then nothing more, the socket left open: a server or network that hangs
   * mid-answer. One-shot, so the client's retry can succeed.
   */
  stallStreamAfterBytes?: number;
  /**
   * The same for the answer to the next REST write (as `resetWriteAnswerAfterBytes`): the write is
   * applied, its answer stops after this many bytes and the socket stays open. One-shot.
   */
  stallWriteAnswerAfterBytes?: number;
  /**
   * Every streamed response body (Bulk query results pages, REST query pages) is sent `chunkBytes`
   * at a time with `pauseMs` between pieces: a slow download that keeps flowing. Stays on until
   * cleared.
   */
  slowStream?: { readonly chunkBytes: number; readonly pauseMs: number };
  /** The daily API allowance (`DailyApiRequests.Max`); lowering it below the usage spends it. */
  dailyApiLimit?: number;
  /**
   * Bulk jobs stay `InProgress` at least this many milliseconds before they process, so that a
   * client's polling loop (and results asked for too early) can be exercised.
   */
  bulkJobDelayMs?: number;
  /**
   * The largest JSON body of a REST call (Collections, Composite, a record, a Bulk job's control
   * call) the emulator takes, in bytes: a larger one answers 413 `REQUEST_ENTITY_TOO_LARGE` and
   * nothing of it is processed. Salesforce documents no such limit that we could find (only the
   * URI and headers', 16,384 bytes), so the emulator's is an option: a test sets a small one to
   * see a client split its calls. @default MAX_JSON_BODY_BYTES (50 MB, a guard of the emulator's
   * memory)
   */
  maxRequestBodyBytes?: number;
}

/** What a row-lock fault matches of a record written: its Id (as the call gives it) and its external-ID values. */
export interface RowLockKeys {
  readonly ids: readonly string[];
  readonly externalIds: readonly string[];
}

/** The per-record error of a row lock, as Salesforce words it. */
export const UNABLE_TO_LOCK_ROW_MESSAGE = 'unable to obtain exclusive access to this record or 200 records';

/** Default `errorMessage` of a job failed by `failNextBulkJob: true`. */
export const DEFAULT_FAILED_JOB_MESSAGE =
  'InternalServerError : the job failed to process (fault injected by the Salesforce emulator)';

/**
 * mulberry32: a tiny, fast, seedable PRNG. Good enough to pick "10 % of records" reproducibly;
 * not for anything cryptographic.
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Thrown by {@link FaultController.set} for a value that makes no sense. */
export class InvalidFaultError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidFaultError';
  }
}

/** Every fault's name, for refusing a misspelt one (set from JSON: the CLI's --faults, the control endpoint). */
export const FAULT_NAMES: readonly (keyof SalesforceFaults)[] = [
  'latencyMs',
  'writeLatencyMs',
  'http503Burst',
  'http401Burst',
  'http400Burst',
  'sessionExpiresAfterCalls',
  'lockRowFraction',
  'lockRowKeys',
  'omitIngestResults',
  'failNextBulkJob',
  'resetStreamAfterBytes',
  'resetWriteAnswerAfterBytes',
  'stallStreamAfterBytes',
  'stallWriteAnswerAfterBytes',
  'slowStream',
  'dailyApiLimit',
  'bulkJobDelayMs',
  'maxRequestBodyBytes',
];

function checkFaults(faults: SalesforceFaults): void {
  const problems: string[] = [];
  if (typeof faults !== 'object' || faults === null || Array.isArray(faults)) {
    throw new InvalidFaultError(
      `invalid Salesforce emulator faults: expected an object of faults, e.g. { "lockRowKeys": ["00Q…"] }, got ${JSON.stringify(faults)}`,
    );
  }
  faults = Object.fromEntries(Object.entries(faults).filter(([, value]) => value !== null));
  for (const name of Object.keys(faults)) {
    if (!(FAULT_NAMES as readonly string[]).includes(name)) {
      const near = suggestion(name, FAULT_NAMES);
      problems.push(
        `no fault named "${name}"${near ? ` (did you mean "${near}"?)` : ''}: the faults are ${FAULT_NAMES.join(', ')}`,
      );
    }
  }
  const nonNegativeInt = (name: keyof SalesforceFaults, value: unknown): void => {
    if (value !== undefined && (typeof value !== 'number' || !Number.isInteger(value) || value < 0)) {
      problems.push(`${name} must be a non-negative integer, got ${JSON.stringify(value)}`);
    }
  };
  nonNegativeInt('latencyMs', faults.latencyMs);
  nonNegativeInt('writeLatencyMs', faults.writeLatencyMs);
  nonNegativeInt('http503Burst', faults.http503Burst);
  nonNegativeInt('http401Burst', faults.http401Burst);
  nonNegativeInt('http400Burst', faults.http400Burst);
  nonNegativeInt('sessionExpiresAfterCalls', faults.sessionExpiresAfterCalls);
  nonNegativeInt('resetStreamAfterBytes', faults.resetStreamAfterBytes);
  nonNegativeInt('resetWriteAnswerAfterBytes', faults.resetWriteAnswerAfterBytes);
  nonNegativeInt('stallStreamAfterBytes', faults.stallStreamAfterBytes);
  nonNegativeInt('stallWriteAnswerAfterBytes', faults.stallWriteAnswerAfterBytes);
  const slow = faults.slowStream;
  if (
    slow !== undefined &&
    (typeof slow !== 'object' ||
      slow === null ||
      !Number.isInteger(slow.chunkBytes) ||
      slow.chunkBytes < 1 ||
      !Number.isInteger(slow.pauseMs) ||
      slow.pauseMs < 0)
  ) {
    problems.push(
      `slowStream must be { chunkBytes: a positive integer, pauseMs: a non-negative integer }, got ${JSON.stringify(slow)}`,
    );
  }
  nonNegativeInt('dailyApiLimit', faults.dailyApiLimit);
  nonNegativeInt('bulkJobDelayMs', faults.bulkJobDelayMs);
  nonNegativeInt('maxRequestBodyBytes', faults.maxRequestBodyBytes);
  const fraction = faults.lockRowFraction;
  if (fraction !== undefined && (typeof fraction !== 'number' || !(fraction >= 0 && fraction <= 1))) {
    problems.push(`lockRowFraction must be a number between 0 and 1, got ${JSON.stringify(fraction)}`);
  }
  if (faults.lockRowKeys !== undefined && !Array.isArray(faults.lockRowKeys)) {
    problems.push('lockRowKeys must be an array of record Ids or external-ID values');
  }
  if (faults.omitIngestResults !== undefined && !Array.isArray(faults.omitIngestResults)) {
    problems.push('omitIngestResults must be an array of record Ids or external-ID values');
  }
  if (problems.length > 0)
    throw new InvalidFaultError(`invalid Salesforce emulator faults: ${problems.join('; ')}`);
}

/**
 * Holds the active faults and answers the questions the server asks on each call. The
 * emulator's `faults` handle is this object.
 */
export class FaultController {
  private active: SalesforceFaults = {};
  private random: () => number;
  /** Bumped on every `set()` that touches `sessionExpiresAfterCalls`, so counters restart. */
  private sessionEpochValue = 0;
  /**
   * Called when `dailyApiLimit` is set, so the usage counter takes the new maximum, and with
   * `undefined` when it is switched off (`null`, `false`, or {@link clear}): the allowance the
   * emulator started with again.
   */
  onDailyApiLimit: ((limit: number | undefined) => void) | undefined;

  constructor(initial: SalesforceFaults = {}, randomSeed = 1) {
    this.random = seededRandom(randomSeed);
    this.set(initial);
  }

  /** Switches faults on (merging with those already set); `undefined` (or `null`, `false`) switches one off. */
  set(faults: SalesforceFaults): void {
    checkFaults(faults);
    // From JSON (the CLI's --faults, the control endpoint) `null` switches a fault off too.
    faults = Object.fromEntries(
      Object.entries(faults).map(([key, value]) => [key, value === null ? undefined : value]),
    ) as SalesforceFaults;
    const next: SalesforceFaults = { ...this.active };
    for (const [key, value] of Object.entries(faults) as [keyof SalesforceFaults, unknown][]) {
      if (value === undefined || value === false) delete next[key];
      else (next as Record<string, unknown>)[key] = value;
    }
    if ('sessionExpiresAfterCalls' in faults) this.sessionEpochValue += 1;
    this.active = next;
    if ('dailyApiLimit' in faults) this.onDailyApiLimit?.(next.dailyApiLimit);
  }

  /** Switches every fault off, the daily allowance back to the one the emulator started with. */
  clear(): void {
    const hadLimit = this.active.dailyApiLimit !== undefined;
    this.active = {};
    this.sessionEpochValue += 1;
    if (hadLimit) this.onDailyApiLimit?.(undefined);
  }

  /** The faults now active (a copy). */
  get(): SalesforceFaults {
    return { ...this.active };
  }

  /** Reseeds the RNG used for `lockRowFraction`. */
  reseed(seed: number): void {
    this.random = seededRandom(seed);
  }

  /** @internal Changes whenever session-expiry counting restarts. */
  get sessionEpoch(): number {
    return this.sessionEpochValue;
  }

  /** @internal */
  latencyMs(): number {
    return this.active.latencyMs ?? 0;
  }

  /** @internal */
  writeLatencyMs(): number {
    return this.active.writeLatencyMs ?? 0;
  }

  /** @internal The largest REST JSON body taken, undefined for the emulator's default. */
  maxRequestBodyBytes(): number | undefined {
    return this.active.maxRequestBodyBytes;
  }

  /** @internal */
  bulkJobDelayMs(): number {
    return this.active.bulkJobDelayMs ?? 0;
  }

  /** Consumes one call of a burst fault; true when this call is one of the burst's. */
  private takeFromBurst(name: 'http503Burst' | 'http401Burst' | 'http400Burst'): boolean {
    const left = this.active[name] ?? 0;
    if (left <= 0) return false;
    if (left === 1) delete this.active[name];
    else this.active[name] = left - 1;
    return true;
  }

  /** @internal Consumes one 503 from the burst; true when this call must answer 503. */
  take503(): boolean {
    return this.takeFromBurst('http503Burst');
  }

  /** @internal Consumes one 401 from the burst; true when this call must answer 401 `Unauthorized`. */
  take401(): boolean {
    return this.takeFromBurst('http401Burst');
  }

  /** @internal Consumes one 400 from the burst; true when this call must answer a proxy's 400 page. */
  take400(): boolean {
    return this.takeFromBurst('http400Burst');
  }

  /** @internal */
  sessionExpiresAfterCalls(): number | undefined {
    const n = this.active.sessionExpiresAfterCalls;
    return n && n > 0 ? n : undefined;
  }

  /**
   * @internal Whether a record write must fail with `UNABLE_TO_LOCK_ROW`. A `lockRowKeys` entry
   * names the record by its Id, in either form (the 15-character forms compare), or by an
   * external-ID value, which compares exactly: two external-ID values of 15 or 18 letters and
   * digits that share their first 15 are two records.
   */
  isRowLocked(keys: RowLockKeys): boolean {
    const lockKeys = this.active.lockRowKeys;
    if (lockKeys && lockKeys.length > 0) {
      for (const lock of lockKeys) {
        if (keys.externalIds.includes(lock)) return true;
        if (
          keys.ids.some(
            (id) => id === lock || (isSalesforceIdLike(id) && isSalesforceIdLike(lock) && sameId(id, lock)),
          )
        )
          return true;
      }
    }
    const fraction = this.active.lockRowFraction;
    return fraction !== undefined && fraction > 0 && this.random() < fraction;
  }

  /** @internal Whether an ingest result line of the row uploaded as `fields` is left out. */
  isResultOmitted(fields: readonly string[]): boolean {
    const omitted = this.active.omitIngestResults;
    return omitted !== undefined && omitted.length > 0 && fields.some((f) => omitted.includes(f));
  }

  /** @internal Whether any per-record fault is on (lets the hot path skip the hook). */
  hasRecordFaults(): boolean {
    return (this.active.lockRowKeys?.length ?? 0) > 0 || (this.active.lockRowFraction ?? 0) > 0;
  }

  /** @internal Consumes `failNextBulkJob`; returns the job's error message or undefined. */
  takeBulkJobFailure(): string | undefined {
    const fault = this.active.failNextBulkJob;
    if (fault === undefined || fault === false) return undefined;
    delete this.active.failNextBulkJob;
    return typeof fault === 'string' ? fault : DEFAULT_FAILED_JOB_MESSAGE;
  }

  /**
   * @internal The fault of the next streamed body (a Bulk query results page, a REST query page):
   * consumes `resetStreamAfterBytes` and `stallStreamAfterBytes`, adds `slowStream`; undefined
   * when none is on.
   */
  takeStreamFault(): StreamFault | undefined {
    const { resetStreamAfterBytes, stallStreamAfterBytes, slowStream } = this.active;
    delete this.active.resetStreamAfterBytes;
    delete this.active.stallStreamAfterBytes;
    return streamFault(resetStreamAfterBytes, stallStreamAfterBytes, slowStream);
  }

  /**
   * @internal The fault of the next REST write's answer: consumes `resetWriteAnswerAfterBytes`
   * and `stallWriteAnswerAfterBytes`; undefined when neither is on.
   */
  takeWriteAnswerFault(): StreamFault | undefined {
    const { resetWriteAnswerAfterBytes, stallWriteAnswerAfterBytes } = this.active;
    delete this.active.resetWriteAnswerAfterBytes;
    delete this.active.stallWriteAnswerAfterBytes;
    return streamFault(resetWriteAnswerAfterBytes, stallWriteAnswerAfterBytes, undefined);
  }
}

function streamFault(
  resetAfterBytes: number | undefined,
  stallAfterBytes: number | undefined,
  pace: SalesforceFaults['slowStream'],
): StreamFault | undefined {
  if (resetAfterBytes === undefined && stallAfterBytes === undefined && pace === undefined) return undefined;
  return {
    ...(resetAfterBytes !== undefined ? { resetAfterBytes } : {}),
    ...(stallAfterBytes !== undefined ? { stallAfterBytes } : {}),
    ...(pace !== undefined ? { pace: { ...pace } } : {}),
  };
}

function isSalesforceIdLike(value: string): boolean {
  return (value.length === 15 || value.length === 18) && /^[a-zA-Z0-9]+$/.test(value);
}

/** Two Ids name the same record when their case-sensitive 15-character forms match. */
function sameId(a: string, b: string): boolean {
  return a.slice(0, 15) === b.slice(0, 15);
}
