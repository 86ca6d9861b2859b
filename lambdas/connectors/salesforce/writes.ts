/**
 * Writes to Salesforce on the connector's authenticated session: sObject Collections (200 records a
 * call), Composite (five Collections calls, 1,000 records, in one API call) and Bulk API 2.0 ingest
 * jobs (create, one streamed CSV upload, close, poll, result files streamed back).
 *
 * Records travel as JSON text made by PostgreSQL (the plan's `payload`), spliced into the request
 * body as they are: numbers keep every digit and no row is parsed into a JS object on the way out.
 * Per-record rejections come back as data ({@link RecordResult}), and so does a call refused as a
 * whole for its records ({@link isRefusalOfRecords}); only a call that cannot be made at all, or
 * is refused for a reason about the call, throws (a {@link TransientError} or {@link TerminalError}
 * from the connector's error mapping).
 */
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { salesforceErrorKind, TerminalError, TransientError } from '../../shared/errors';
import { apiRelative } from './calls';
import { classifySalesforceError, refusedCallOf } from './errors';
import { REST_QUERY_URL_MAX_CHARS } from './constants';
import type { SalesforceConnector } from './connector';

/**
 * Records per sObject Collections call: "up to 200 records".
 * https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections.htm
 */
export const COLLECTIONS_MAX_RECORDS = 200;

/**
 * Collections subrequests per Composite request: a Composite request holds 25 subrequests, "up to
 * five" of which may be sObject Collections or query operations.
 * https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite.htm
 */
export const COMPOSITE_MAX_COLLECTIONS_SUBREQUESTS = 5;

/** Records one Composite call carries: 5 × 200 = 1,000 for one API call. */
export const COMPOSITE_MAX_RECORDS = COMPOSITE_MAX_COLLECTIONS_SUBREQUESTS * COLLECTIONS_MAX_RECORDS;

/**
 * Largest CSV upload of one Bulk API 2.0 ingest job: 150 MB after base64 encoding, which is about
 * 100 MB of raw data ("split it into several jobs").
 * https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_bulkapi.htm
 */
export const BULK_INGEST_MAX_UPLOAD_BYTES = 100 * 1024 * 1024;

/**
 * The Bulk API 2.0 CSV value that sets a field to null (an empty value leaves it unchanged).
 * https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/datafiles_prepare_csv.htm
 */
export const BULK_CSV_NULL = '#N/A';

/** How a write changes Salesforce. */
export type WriteOperation = 'insert' | 'update' | 'upsert';

/** One per-record error as Salesforce reports it. */
export interface RecordError {
  readonly statusCode: string;
  readonly message: string;
  readonly fields: readonly string[];
}

/** The outcome of one record of a Collections call, in the order the records were sent. */
export interface RecordResult {
  readonly id: string | null;
  readonly success: boolean;
  /** Upsert only: whether the record was created. */
  readonly created?: boolean;
  readonly errors: readonly RecordError[];
  /**
   * The answer does not tell what happened to this record: its Composite subrequest failed on
   * Salesforce's side (a 5xx), after which the records may or may not have been written. The
   * write-back leaves it `sent` for the retried step to resolve (resent, or looked up for an insert).
   */
  readonly unknown?: true;
  /**
   * Salesforce refused the Composite subrequest that carried this record, before writing any of
   * its records, for a reason about the call rather than its records (the session, an allowance,
   * a throttle: {@link isRefusalOfRecords}): not written, the record waits to be sent again.
   */
  readonly unprocessed?: true;
  /**
   * With {@link unprocessed}: the error the connector throws for a whole call Salesforce refuses
   * with the subrequest's status, code and message (the same class, transient or terminal: an
   * exhausted daily allowance is an ApiLimitExceededError), for the step to fail with when the
   * record is still waiting at its end.
   */
  readonly refusal?: TransientError | TerminalError;
}

/**
 * 4xx statuses whose refusal of a call is about the call, never its records: the session (401),
 * the org's or user's allowance or access (403: `REQUEST_LIMIT_EXCEEDED`, `API_DISABLED_FOR_ORG`),
 * the request's size (413, 414, 431), a throttle (420, 429), a time-out (408).
 */
const CALL_REFUSAL_STATUSES: ReadonlySet<number> = new Set([401, 403, 408, 413, 414, 420, 429, 431]);

/** Error codes of a 400 or 404 that are about the call all the same (more records than a call takes). */
const CALL_REFUSAL_CODES: ReadonlySet<string> = new Set([
  'EXCEEDED_ID_LIMIT',
  'INVALID_SESSION_ID',
  'REQUEST_LIMIT_EXCEEDED',
]);

/**
 * Whether Salesforce's refusal of a whole Collections call, or of a Composite subrequest, is about
 * the records it carries (a 400 or 404: `INVALID_FIELD`, `JSON_PARSER_ERROR`, `NOT_FOUND`, an
 * external-ID field that is not one…), so that each of them is refused with Salesforce's code and
 * message, as a per-record error is, wherever the records travelled (a plain Collections call, a
 * Composite call, one subrequest of it). Any other 4xx is about the call (the session, the org's
 * allowance, the request's size, a throttle): Salesforce wrote none of its records, which wait to
 * be sent again.
 */
export function isRefusalOfRecords(status: number, errorCode: string): boolean {
  if (CALL_REFUSAL_STATUSES.has(status) || CALL_REFUSAL_CODES.has(errorCode)) return false;
  return status === 400 || status === 404;
}

/** Options of {@link writeCollections}. */
export interface CollectionsWrite {
  readonly object: string;
  readonly operation: WriteOperation;
  /** Upsert: the external-ID field records are matched on. */
  readonly externalIdField?: string;
  /**
   * Each record as JSON text, with `attributes: {type}` and, for update, a lowercase `id`. At most
   * {@link COMPOSITE_MAX_RECORDS}.
   */
  readonly records: readonly string[];
}

function collectionsPath(write: CollectionsWrite): { method: 'POST' | 'PATCH'; path: string } {
  switch (write.operation) {
    case 'insert':
      return { method: 'POST', path: '/composite/sobjects' };
    case 'update':
      return { method: 'PATCH', path: '/composite/sobjects' };
    case 'upsert':
      if (!write.externalIdField) throw new TerminalError('A Collections upsert needs an external-ID field');
      return {
        method: 'PATCH',
        path: `/composite/sobjects/${encodeURIComponent(write.object)}/${encodeURIComponent(write.externalIdField)}`,
      };
  }
}

function collectionsBody(records: readonly string[]): string {
  // allOrNone false: one bad record must not roll back the others (salesforce-wire.md).
  return `{"allOrNone":false,"records":[${records.join(',')}]}`;
}

function checkResults(raw: unknown, expected: number, what: string): RecordResult[] {
  if (!Array.isArray(raw) || raw.length !== expected) {
    throw new TerminalError(
      `Salesforce ${what} answered ${Array.isArray(raw) ? `${raw.length} results` : 'without a result list'} for ${expected} records`,
    );
  }
  return raw as RecordResult[];
}

/**
 * Makes a call of `n` records (`operation`: `Composite upsert of Lead`…); when Salesforce refuses
 * it as a whole for its records ({@link isRefusalOfRecords}), answers each record refused with
 * Salesforce's code and message, as a Composite subrequest refused the same way answers. Any other
 * failure is thrown (a refusal about the call keeps its status in the error: the caller sends the
 * records again later).
 *
 * A 400 or 404 whose body is not Salesforce's error list (a proxy's or gateway's HTML page, plain
 * text) is not Salesforce refusing the records, which the call never reached: thrown, naming the
 * call, its status and the start of the body, with the status kept in its cause, so that the
 * records wait to be sent again instead of failing one by one (up to 1,000 of them).
 */
async function refusalAsResults<T>(
  sf: SalesforceConnector,
  call: () => Promise<T>,
  n: number,
  operation: string,
): Promise<{ readonly answer: T } | { readonly refused: RecordResult[] }> {
  try {
    return { answer: await call() };
  } catch (err) {
    const refused = refusedCallOf(err);
    if (!refused || !isRefusalOfRecords(refused.status, refused.errorCode)) throw err;
    if (!refused.fromErrorList) {
      const start = sf.redact(refused.message).replace(/\s+/g, ' ').trim().slice(0, 200);
      const Kind =
        err instanceof TransientError || err instanceof TerminalError
          ? salesforceErrorKind(err)
          : TerminalError;
      throw new Kind(
        `Salesforce ${operation} (${n} records) was answered HTTP ${refused.status} with a body that is not Salesforce's error list, so not Salesforce refusing the records (a proxy or gateway on the way answers so): ${start ? `"${start}"` : 'an empty body'}. None of the records was written: they wait to be sent again`,
        { cause: (err as { cause?: unknown }).cause },
      );
    }
    const error: RecordError = {
      statusCode: refused.errorCode,
      message: `Salesforce refused the whole ${operation} call that carried this record (${n} records) with HTTP ${refused.status}: ${refused.errorCode}: ${refused.message}`,
      fields: [],
    };
    return { refused: Array.from({ length: n }, () => ({ id: null, success: false, errors: [error] })) };
  }
}

/** The referenceId of a Composite call's `i`th Collections subrequest (0-based). */
function referenceIdOf(i: number): string {
  return `chunk${i}`;
}

/**
 * Sends up to 1,000 records in ONE API call: a plain Collections call for up to 200, a Composite
 * call with up to five Collections subrequests above. Answers one result per record, in order:
 * each Composite subrequest's response is found by its referenceId (the answer's order is not
 * relied on), and a Collections result list is in the order of its records.
 * A subrequest that fails as a whole (not per record) answers its code and message for each of
 * its records, marked {@link RecordResult.unknown} when it failed on Salesforce's side (5xx).
 */
export async function writeCollections(
  sf: SalesforceConnector,
  write: CollectionsWrite,
): Promise<RecordResult[]> {
  const n = write.records.length;
  if (n === 0) return [];
  if (n > COMPOSITE_MAX_RECORDS) {
    throw new TerminalError(`writeCollections takes at most ${COMPOSITE_MAX_RECORDS} records, got ${n}`);
  }
  const { method, path } = collectionsPath(write);
  const what = `Collections ${write.operation} of ${write.object}`;
  if (n <= COLLECTIONS_MAX_RECORDS) {
    const raw = await refusalAsResults(
      sf,
      () => sf.request<unknown>(what, method, path, collectionsBody(write.records)),
      n,
      what,
    );
    return 'refused' in raw ? raw.refused : checkResults(raw.answer, n, what);
  }
  const chunks: (readonly string[])[] = [];
  for (let i = 0; i < n; i += COLLECTIONS_MAX_RECORDS)
    chunks.push(write.records.slice(i, i + COLLECTIONS_MAX_RECORDS));
  const subrequests = chunks.map(
    (chunk, i) =>
      `{"method":"${method}","url":${JSON.stringify(`/services/data/v${sf.apiVersion}${path}`)},"referenceId":"${referenceIdOf(i)}","body":${collectionsBody(chunk)}}`,
  );
  const composite = `Composite ${write.operation} of ${write.object}`;
  const sent = await refusalAsResults(
    sf,
    () =>
      sf.request<{
        compositeResponse?: { body: unknown; httpStatusCode: number; referenceId: string }[];
      }>(
        composite,
        'POST',
        '/composite',
        `{"allOrNone":false,"compositeRequest":[${subrequests.join(',')}]}`,
      ),
    n,
    composite,
  );
  if ('refused' in sent) return sent.refused;
  const parts = sent.answer.compositeResponse;
  if (!Array.isArray(parts) || parts.length !== chunks.length) {
    throw new TerminalError(
      `Salesforce Composite ${write.operation} of ${write.object} answered without one response per subrequest`,
    );
  }
  // Each response is the subrequest's its referenceId names, wherever it stands in the answer.
  const byReference = new Map(parts.map((part) => [part?.referenceId, part]));
  const results: RecordResult[] = [];
  chunks.forEach((chunk, i) => {
    const size = chunk.length;
    const part = byReference.get(referenceIdOf(i));
    if (!part) {
      throw new TerminalError(
        `Salesforce Composite ${write.operation} of ${write.object} answered no response for subrequest ${referenceIdOf(i)} (it answered ${parts.map((p) => JSON.stringify(p?.referenceId)).join(', ')})`,
      );
    }
    if (part.httpStatusCode < 300) {
      results.push(...checkResults(part.body, size, `${what} (${part.referenceId})`));
      return;
    }
    // A subrequest that failed as a whole answers for each of its records; the other
    // subrequests' results stand (allOrNone false: they were written).
    const first = (Array.isArray(part.body) ? part.body[0] : part.body) as
      { errorCode?: string; message?: string; fields?: string[] } | undefined;
    const error: RecordError = {
      statusCode: first?.errorCode ?? `HTTP_${part.httpStatusCode}`,
      message: `the Composite subrequest of this record (${part.referenceId}, ${size} records) failed as a whole with HTTP ${part.httpStatusCode}: ${sf.redact(first?.message ?? 'no reason given')}`,
      fields: Array.isArray(first?.fields) ? first.fields : [],
    };
    // A 4xx refused the subrequest before any record was written: about its records, each is
    // refused; about the call, each waits to be sent again. After a 5xx nobody can say.
    const result: RecordResult =
      part.httpStatusCode >= 500
        ? { id: null, success: false, errors: [error], unknown: true }
        : isRefusalOfRecords(part.httpStatusCode, error.statusCode)
          ? { id: null, success: false, errors: [error] }
          : {
              id: null,
              success: false,
              errors: [error],
              unprocessed: true,
              // Classified as the connector classifies a whole call refused so (connector.ts, failed).
              refusal: classifySalesforceError(
                Object.assign(new Error(sf.redact(first?.message ?? 'no reason given')), {
                  name: first?.errorCode ?? `ERROR_HTTP_${part.httpStatusCode}`,
                  errorCode: first?.errorCode ?? `ERROR_HTTP_${part.httpStatusCode}`,
                  statusCode: part.httpStatusCode,
                }),
                { operation: `${what} (Composite subrequest ${part.referenceId}, ${size} records)` },
              ),
            };
    for (let j = 0; j < size; j += 1) results.push(result);
  });
  return results;
}

/** A Bulk API 2.0 ingest job's state (salesforce-wire.md). */
export type IngestJobState = 'Open' | 'UploadComplete' | 'InProgress' | 'JobComplete' | 'Failed' | 'Aborted';

/** Whether a job will change no more. */
export function isFinalIngestState(state: string): boolean {
  return state === 'JobComplete' || state === 'Failed' || state === 'Aborted';
}

/** `GET /jobs/ingest/{id}`, the part the write-back reads. */
export interface IngestJob {
  readonly id: string;
  readonly state: IngestJobState;
  readonly numberRecordsProcessed: number;
  readonly numberRecordsFailed: number;
  readonly errorMessage: string | undefined;
}

/** Options of {@link createIngestJob}. */
export interface CreateIngestJob {
  readonly object: string;
  readonly operation: WriteOperation;
  /** Upsert: the external-ID field. */
  readonly externalIdFieldName?: string;
}

function checkJobId(jobId: string): string {
  if (!/^[A-Za-z0-9]{15,18}$/.test(jobId))
    throw new TerminalError(`Not a Salesforce Bulk job id: "${jobId}"`);
  return jobId;
}

function toIngestJob(raw: Record<string, unknown>, jobId: string): IngestJob {
  return {
    id: typeof raw.id === 'string' ? raw.id : jobId,
    state: raw.state as IngestJobState,
    numberRecordsProcessed: typeof raw.numberRecordsProcessed === 'number' ? raw.numberRecordsProcessed : 0,
    numberRecordsFailed: typeof raw.numberRecordsFailed === 'number' ? raw.numberRecordsFailed : 0,
    errorMessage: typeof raw.errorMessage === 'string' && raw.errorMessage ? raw.errorMessage : undefined,
  };
}

/** Creates an ingest job (CSV, comma, LF) and answers it (state `Open`). One call. */
export async function createIngestJob(sf: SalesforceConnector, job: CreateIngestJob): Promise<IngestJob> {
  const raw = await sf.request<Record<string, unknown>>(
    `Bulk ingest job create (${job.operation} ${job.object})`,
    'POST',
    '/jobs/ingest',
    {
      object: job.object,
      operation: job.operation,
      ...(job.externalIdFieldName ? { externalIdFieldName: job.externalIdFieldName } : {}),
      contentType: 'CSV',
      columnDelimiter: 'COMMA',
      lineEnding: 'LF',
    },
  );
  if (typeof raw.id !== 'string')
    throw new TerminalError('Salesforce Bulk ingest job create answered without an id');
  return toIngestJob(raw, raw.id);
}

/**
 * Streams the job's one CSV upload (`PUT …/batches`, chunked) from `csv`, honouring backpressure:
 * memory stays flat whatever the size. One call. The caller keeps the upload under
 * {@link BULK_INGEST_MAX_UPLOAD_BYTES}.
 */
export async function uploadIngestData(sf: SalesforceConnector, jobId: string, csv: Readable): Promise<void> {
  await sf.putStream(`Bulk ingest upload of job ${jobId}`, `/jobs/ingest/${checkJobId(jobId)}/batches`, csv, {
    'Content-Type': 'text/csv',
  });
}

async function patchState(
  sf: SalesforceConnector,
  jobId: string,
  state: 'UploadComplete' | 'Aborted',
): Promise<IngestJob> {
  const raw = await sf.request<Record<string, unknown>>(
    `Bulk ingest job ${jobId} ${state === 'Aborted' ? 'abort' : 'close'}`,
    'PATCH',
    `/jobs/ingest/${checkJobId(jobId)}`,
    { state },
  );
  return toIngestJob(raw, jobId);
}

/** Marks the upload complete: Salesforce starts processing. One call. */
export function closeIngestJob(sf: SalesforceConnector, jobId: string): Promise<IngestJob> {
  return patchState(sf, jobId, 'UploadComplete');
}

/** Aborts a job (nothing of an `Open` job was processed). One call. */
export function abortIngestJob(sf: SalesforceConnector, jobId: string): Promise<IngestJob> {
  return patchState(sf, jobId, 'Aborted');
}

/** The job's state and counters. One call (a poll). */
export async function getIngestJob(sf: SalesforceConnector, jobId: string): Promise<IngestJob> {
  const raw = await sf.request<Record<string, unknown>>(
    `Bulk ingest job ${jobId} poll`,
    'GET',
    `/jobs/ingest/${checkJobId(jobId)}`,
  );
  return toIngestJob(raw, jobId);
}

/**
 * Streams a finished job's `successfulResults` (`"sf__Id","sf__Created",<uploaded columns>`) or
 * `failedResults` (`"sf__Id","sf__Error",<uploaded columns>`; no `sf__Id` before API 53.0) CSV.
 * One call.
 */
export async function streamIngestResults(
  sf: SalesforceConnector,
  jobId: string,
  which: 'successfulResults' | 'failedResults',
): Promise<Readable> {
  const res = await sf.fetchWithSession(
    `Bulk ingest ${which} of job ${jobId}`,
    `/jobs/ingest/${checkJobId(jobId)}/${which}`,
    {
      method: 'GET',
      headers: { Accept: 'text/csv' },
    },
  );
  if (!res.body) return Readable.from([]);
  return Readable.fromWeb(res.body as WebReadableStream);
}

/** One IN list of {@link soqlInLists}: the values it holds, and its text. */
export interface SoqlInList<T> {
  /** The values of the list, in the order given. */
  readonly values: readonly T[];
  /** Their SOQL literals joined by commas, for `select … IN (list)`. */
  readonly list: string;
}

/**
 * Splits values into IN lists for `select … IN (list)`, each value written as the SOQL literal
 * `literal` makes of it: at most 200 values a query, and at most {@link REST_QUERY_URL_MAX_CHARS}
 * characters of encoded query text, the limit of a query sent as a GET. Each list comes with its values, for a caller that matches
 * what a query answers with what it asked.
 */
export function soqlInLists<T>(
  select: string,
  values: readonly T[],
  literal: (value: T) => string,
): SoqlInList<T>[] {
  const lists: SoqlInList<T>[] = [];
  let current: { values: T[]; literals: string[] } = { values: [], literals: [] };
  let size = encodeURIComponent(`${select}()`).length;
  const base = size;
  for (const value of values) {
    const text = literal(value);
    const cost = encodeURIComponent(`${text},`).length;
    if (
      current.values.length > 0 &&
      (current.values.length === COLLECTIONS_MAX_RECORDS || size + cost > REST_QUERY_URL_MAX_CHARS)
    ) {
      lists.push({ values: current.values, list: current.literals.join(',') });
      current = { values: [], literals: [] };
      size = base;
    }
    current.values.push(value);
    current.literals.push(text);
    size += cost;
  }
  if (current.values.length > 0) lists.push({ values: current.values, list: current.literals.join(',') });
  return lists;
}

/**
 * `SELECT …` over REST, every page (for the small look-ups of the write-back: reconciling
 * inserts). A page that is not done but names no next page fails the look-up: returning the
 * records so far would take the missing ones for never inserted, and insert them again.
 * `includeDeleted` reads through `queryAll`: records deleted since (in the recycle bin, with
 * `IsDeleted` true) are answered too.
 */
export async function queryAllRecords<T extends Record<string, unknown>>(
  sf: SalesforceConnector,
  soql: string,
  options: { readonly includeDeleted?: boolean } = {},
): Promise<T[]> {
  const out: T[] = [];
  const resource = options.includeDeleted ? 'queryAll' : 'query';
  let page = await sf.request<{ done: boolean; nextRecordsUrl?: string; records: T[] }>(
    'query',
    'GET',
    `/${resource}?q=${encodeURIComponent(soql)}`,
  );
  for (let pages = 1; ; pages += 1) {
    out.push(...page.records);
    if (page.done === true) return out;
    if (!page.nextRecordsUrl) {
      throw new TransientError(
        `Salesforce query page ${pages} is not done but came without a nextRecordsUrl: the look-up cannot go on`,
      );
    }
    page = await sf.request('query', 'GET', apiRelative(page.nextRecordsUrl));
  }
}
