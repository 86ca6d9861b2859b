/**
 * Bulk API 2.0 of the Salesforce emulator: ingest jobs (create, one streamed CSV upload, close,
 * asynchronous processing in slices, successful/failed/unprocessed result files) and query jobs
 * (create, poll, CSV results paged with `Sforce-Locator` and `maxRecords`). Shapes follow
 * salesforce-wire.md, "Bulk API 2.0 ingest" and "Bulk API 2.0 query".
 *
 * Memory: an upload is kept as the Buffers it arrived in (never one string) and parsed with a
 * streaming parser when the job runs; per-row results are one status byte, the record id and a
 * sparse map of error texts; result files are produced by parsing the upload again while
 * writing, with back-pressure. Query results are written page by page, record by record.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CallOperation } from './calls';
import type { EmulatorContext } from './context';
import type { FieldDescribe, ObjectDescribe } from './describe';
import {
  COLUMN_DELIMITERS,
  CsvStreamParser,
  CsvSyntaxError,
  headerCsv,
  LINE_ENDINGS,
  QueryResultEncoder,
  quoteCsv,
  type ColumnDelimiter,
  type LineEnding,
} from './bulk-csv';
import { ApiError, CSV_CONTENT_TYPE, sendEmpty, sendJson, StreamWriter } from './http';
import { makeId, normalizeId } from './ids';
import { SoqlError, type QueryCursor, type RecordError, type SaveResult, type SfRecord } from './store';
import { formatDatetime } from './values';

/** Largest upload of one ingest job: 150 MB base64-encoded ≈ 100 MB raw (salesforce-wire.md). */
export const BULK_INGEST_MAX_UPLOAD_BYTES = 100 * 1024 * 1024;
/** Salesforce processes ingest data in internal batches of this many records (salesforce-wire.md). */
export const BULK_INTERNAL_BATCH_RECORDS = 10_000;
/** Records the emulator processes per event-loop turn, so that it keeps answering polls meanwhile. */
export const BULK_PROCESSING_SLICE_RECORDS = 2_000;
/**
 * Records per results page when the client gives no `maxRecords` (unverified: Salesforce picks
 * "a default value based on the service"; clients must follow `Sforce-Locator` either way).
 */
export const BULK_QUERY_DEFAULT_PAGE_RECORDS = 50_000;
/**
 * The API version from which a job's failedResults begin with `sf__Id` (before it, with
 * `sf__Error` alone): Bulk API 2.0 Developer Guide, "Get Job Failed Record Results".
 */
export const FAILED_RESULTS_ID_SINCE = 53;
/** Key prefix of Bulk job ids (salesforce-wire.md, "Describe"). */
export const BULK_JOB_KEY_PREFIX = '750';

/** The states of a Bulk API 2.0 job. */
export type JobState = 'Open' | 'UploadComplete' | 'InProgress' | 'JobComplete' | 'Failed' | 'Aborted';
/** Ingest operations. */
export type IngestOperation = 'insert' | 'update' | 'upsert' | 'delete' | 'hardDelete';

const INGEST_OPERATIONS: readonly IngestOperation[] = ['insert', 'update', 'upsert', 'delete', 'hardDelete'];

/** Per-row outcome of an ingest job. */
const enum RowStatus {
  Unprocessed = 0,
  Created = 1,
  Updated = 2,
  Failed = 3,
}

interface JobBase {
  id: string;
  object: string;
  createdDate: string;
  systemModstamp: string;
  state: JobState;
  apiVersion: number;
  lineEnding: LineEnding;
  columnDelimiter: ColumnDelimiter;
  errorMessage?: string;
  startedAt?: number;
  finishedAt?: number;
}

interface IngestJob extends JobBase {
  kind: 'ingest';
  operation: IngestOperation;
  externalIdFieldName?: string;
  chunks: Buffer[];
  uploadBytes: number;
  uploaded: boolean;
  /** Per data row: a RowStatus. Grown as rows are processed. */
  status: Uint8Array;
  ids: (string | null)[];
  errors: Map<number, string>;
  rows: number;
  processed: number;
  failed: number;
}

interface QueryJob extends JobBase {
  kind: 'query';
  operation: 'query' | 'queryAll';
  query: string;
  result?: QueryCursor;
  processed: number;
}

/** Classifies a `jobs/…` call for the call log. */
export function classifyBulk(
  method: string,
  segments: readonly string[],
): { operation: CallOperation; write: boolean } {
  const [, type, id, sub] = segments;
  const prefix = type === 'query' ? 'bulk.query' : 'bulk.ingest';
  const op = (name: string, write = false): { operation: CallOperation; write: boolean } => ({
    operation: `${prefix}.${name}` as CallOperation,
    write,
  });
  if (id === undefined) return method === 'POST' ? op('create', type === 'ingest') : op('list');
  if (sub === undefined) {
    if (method === 'GET') return op('poll');
    if (method === 'DELETE') return op('delete');
    return op('close', type === 'ingest'); // PATCH state (UploadComplete or Aborted)
  }
  if (sub === 'batches') return op('upload', true);
  return op('results');
}

function encodeLocator(offset: number): string {
  // Salesforce's locators are opaque; observed ones are base64 of the offset (e.g. `MTAwMDA` = 10000).
  return Buffer.from(String(offset)).toString('base64').replace(/=+$/, '');
}

function decodeLocator(locator: string): number | undefined {
  const text = Buffer.from(locator, 'base64').toString('utf8');
  return /^\d+$/.test(text) ? parseInt(text, 10) : undefined;
}

function formatRecordErrors(errors: readonly RecordError[]): string {
  // failedResults' sf__Error: `CODE:message:fields --` (salesforce-wire.md).
  return errors.map((e) => `${e.statusCode}:${e.message}:${e.fields.join(',')} --`).join(' ');
}

/** The Bulk API 2.0 endpoints of one emulator. */
export class BulkApi {
  private readonly jobs = new Map<string, IngestJob | QueryJob>();
  private counter = 0;

  constructor(private readonly ctx: EmulatorContext) {}

  /** Number of jobs the emulator holds (deleted jobs are forgotten). */
  get jobCount(): number {
    return this.jobs.size;
  }

  private newJobId(): string {
    this.counter += 1;
    return makeId(BULK_JOB_KEY_PREFIX, this.counter);
  }

  /** Jobs are stamped on the records' clock, as in Salesforce (one org, one time). */
  private now(): string {
    return formatDatetime(this.ctx.store.now());
  }

  /** Answers one `jobs/…` call. Throws ApiError for whole-request errors. */
  async handle(
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    version: string,
    segments: string[],
    query: URLSearchParams,
    readJson: () => Promise<unknown>,
    headers: Record<string, string>,
  ): Promise<{ records?: number }> {
    const [, type, id, sub, extra] = segments;
    if ((type !== 'ingest' && type !== 'query') || extra !== undefined) throw notFound();
    if (id === undefined) {
      if (method === 'POST') {
        const body = await readJson();
        const job = type === 'ingest' ? this.createIngest(body, version) : this.createQuery(body, version);
        sendJson(res, 200, this.jobInfo(job, true, version), headers);
        return {};
      }
      if (method === 'GET') {
        sendJson(res, 200, this.list(type, version), headers);
        return {};
      }
      throw new ApiError(
        405,
        'METHOD_NOT_ALLOWED',
        `HTTP Method '${method}' not allowed. Allowed are GET,POST`,
      );
    }
    const job = this.jobs.get(normalizeId(id) ?? id);
    if (!job || job.kind !== type) throw notFound();
    if (sub === undefined) {
      switch (method) {
        case 'GET':
          sendJson(res, 200, this.jobInfo(job, false, version), headers);
          return {};
        case 'PATCH':
          this.changeState(job, await readJson());
          sendJson(res, 200, this.jobInfo(job, false, version), headers);
          return {};
        case 'DELETE':
          this.deleteJob(job);
          sendEmpty(res, 204, headers);
          return {};
        default:
          throw new ApiError(
            405,
            'METHOD_NOT_ALLOWED',
            `HTTP Method '${method}' not allowed. Allowed are GET,PATCH,DELETE`,
          );
      }
    }
    if (job.kind === 'ingest') {
      if (sub === 'batches') {
        if (method !== 'PUT')
          throw new ApiError(
            405,
            'METHOD_NOT_ALLOWED',
            `HTTP Method '${method}' not allowed. Allowed are PUT`,
          );
        await this.upload(job, req);
        sendEmpty(res, 201, headers);
        return {};
      }
      if (method !== 'GET')
        throw new ApiError(405, 'METHOD_NOT_ALLOWED', `HTTP Method '${method}' not allowed. Allowed are GET`);
      if (sub === 'successfulResults')
        return { records: await this.writeIngestResults(job, 'successful', version, res, headers) };
      if (sub === 'failedResults')
        return { records: await this.writeIngestResults(job, 'failed', version, res, headers) };
      if (sub === 'unprocessedrecords')
        return { records: await this.writeIngestResults(job, 'unprocessed', version, res, headers) };
      throw notFound();
    }
    if (sub !== 'results') throw notFound();
    if (method !== 'GET')
      throw new ApiError(405, 'METHOD_NOT_ALLOWED', `HTTP Method '${method}' not allowed. Allowed are GET`);
    return { records: await this.writeQueryResults(job, query, res, headers) };
  }

  // ------------------------------------------------------------------ job info

  private jobInfo(job: IngestJob | QueryJob, created: boolean, version: string): Record<string, unknown> {
    const info: Record<string, unknown> = {
      id: job.id,
      operation: job.operation,
      object: job.object,
      createdById: this.ctx.store.userId,
      createdDate: job.createdDate,
      systemModstamp: job.systemModstamp,
      state: job.state,
    };
    if (job.kind === 'ingest' && job.externalIdFieldName) info.externalIdFieldName = job.externalIdFieldName;
    info.concurrencyMode = 'Parallel';
    info.contentType = 'CSV';
    info.apiVersion = job.apiVersion;
    if (job.kind === 'ingest' && created)
      info.contentUrl = `services/data/v${version}/jobs/ingest/${job.id}/batches`;
    info.lineEnding = job.lineEnding;
    info.columnDelimiter = job.columnDelimiter;
    if (!created) {
      info.jobType = job.kind === 'ingest' ? 'V2Ingest' : 'V2Query';
      info.numberRecordsProcessed = job.processed;
      if (job.kind === 'ingest') info.numberRecordsFailed = job.failed;
      info.retries = 0;
      const elapsed = job.startedAt !== undefined ? (job.finishedAt ?? Date.now()) - job.startedAt : 0;
      info.totalProcessingTime = elapsed;
      if (job.kind === 'ingest') {
        info.apiActiveProcessingTime = elapsed;
        info.apexProcessingTime = 0;
      }
      if (job.errorMessage !== undefined) info.errorMessage = job.errorMessage;
    }
    return info;
  }

  private list(type: 'ingest' | 'query', version: string): unknown {
    const records = [...this.jobs.values()]
      .filter((j) => j.kind === type)
      .map((j) => this.jobInfo(j, false, version));
    return { done: true, records, nextRecordsUrl: null };
  }

  private dialect(body: Record<string, unknown>): {
    lineEnding: LineEnding;
    columnDelimiter: ColumnDelimiter;
  } {
    const lineEnding = (body.lineEnding ?? 'LF') as string;
    const columnDelimiter = (body.columnDelimiter ?? 'COMMA') as string;
    if (!(lineEnding in LINE_ENDINGS)) {
      throw new ApiError(400, 'INVALIDJOB', `Invalid lineEnding '${lineEnding}': expected LF or CRLF`);
    }
    if (!(columnDelimiter in COLUMN_DELIMITERS)) {
      throw new ApiError(
        400,
        'INVALIDJOB',
        `Invalid columnDelimiter '${columnDelimiter}': expected one of ${Object.keys(COLUMN_DELIMITERS).join(', ')}`,
      );
    }
    if (body.contentType !== undefined && body.contentType !== 'CSV') {
      throw new ApiError(
        400,
        'INVALIDJOB',
        `Invalid contentType '${String(body.contentType)}': only CSV is supported`,
      );
    }
    return { lineEnding: lineEnding as LineEnding, columnDelimiter: columnDelimiter as ColumnDelimiter };
  }

  private objectBody(body: unknown): Record<string, unknown> {
    if (!body || typeof body !== 'object' || Array.isArray(body)) {
      throw new ApiError(
        400,
        'JSON_PARSER_ERROR',
        'The request body must be a JSON object describing the job',
      );
    }
    return body as Record<string, unknown>;
  }

  // ------------------------------------------------------------------ ingest

  private createIngest(raw: unknown, version: string): IngestJob {
    const body = this.objectBody(raw);
    const operation = body.operation as IngestOperation;
    if (!INGEST_OPERATIONS.includes(operation)) {
      throw new ApiError(
        400,
        'INVALIDJOB',
        `Invalid operation '${String(body.operation)}': expected one of ${INGEST_OPERATIONS.join(', ')}`,
      );
    }
    const describe = typeof body.object === 'string' ? this.ctx.store.describe(body.object) : undefined;
    if (!describe) {
      // (unverified) Salesforce's wording for an unknown object in a Bulk job.
      throw new ApiError(400, 'INVALIDJOB', `Unable to find object: ${String(body.object)}`);
    }
    let externalIdFieldName: string | undefined;
    if (operation === 'upsert') {
      const name = body.externalIdFieldName;
      const field =
        typeof name === 'string'
          ? describe.fields.find((f) => f.name.toLowerCase() === name.toLowerCase())
          : undefined;
      if (!field || !(field.externalId || field.idLookup)) {
        throw new ApiError(
          400,
          'INVALIDJOB',
          name === undefined
            ? 'externalIdFieldName is required for an upsert job'
            : `Field name provided, ${String(name)} is not an External ID or indexed field for ${describe.name}`,
        );
      }
      externalIdFieldName = field.name;
    }
    const now = this.now();
    const job: IngestJob = {
      kind: 'ingest',
      id: this.newJobId(),
      object: describe.name,
      operation,
      ...(externalIdFieldName ? { externalIdFieldName } : {}),
      ...this.dialect(body),
      createdDate: now,
      systemModstamp: now,
      state: 'Open',
      apiVersion: parseFloat(version),
      chunks: [],
      uploadBytes: 0,
      uploaded: false,
      status: new Uint8Array(0),
      ids: [],
      errors: new Map(),
      rows: 0,
      processed: 0,
      failed: 0,
    };
    this.jobs.set(job.id, job);
    return job;
  }

  private async upload(job: IngestJob, req: IncomingMessage): Promise<void> {
    if (job.state !== 'Open') {
      throw new ApiError(
        409,
        'INVALIDJOB',
        `Job ${job.id} is ${job.state}: data can be uploaded only to an Open job`,
      );
    }
    if (job.uploaded) {
      throw new ApiError(
        400,
        'INVALIDJOB',
        `Found multiple contents for job: <${job.id}>, please 'Close' / 'Abort' / 'Delete' the current Job then create a new Job and make sure you only do 'PUT' once on a given Job.`,
      );
    }
    const contentType = req.headers['content-type'] ?? '';
    if (!/^text\/csv\b/i.test(contentType)) {
      throw new ApiError(400, 'INVALIDJOB', `Upload must be text/csv, got '${contentType || '(none)'}'`);
    }
    job.uploaded = true;
    // Chunked, without a content length: keep the pieces as they come.
    for await (const chunk of req as AsyncIterable<Buffer>) {
      job.uploadBytes += chunk.length;
      if (job.uploadBytes > BULK_INGEST_MAX_UPLOAD_BYTES) {
        job.chunks = [];
        job.uploaded = false;
        throw new ApiError(
          413,
          'REQUEST_ENTITY_TOO_LARGE',
          `the upload exceeds ${BULK_INGEST_MAX_UPLOAD_BYTES} bytes (150 MB base64-encoded): split the data into several jobs`,
        );
      }
      job.chunks.push(chunk);
    }
    job.systemModstamp = this.now();
  }

  private changeState(job: IngestJob | QueryJob, raw: unknown): void {
    const body = this.objectBody(raw);
    const target = body.state;
    if (target === 'Aborted') {
      if (job.state === 'JobComplete' || job.state === 'Failed' || job.state === 'Aborted') {
        throw new ApiError(400, 'INVALIDJOB', `Job ${job.id} is ${job.state} and cannot be aborted`);
      }
      job.state = 'Aborted';
      job.finishedAt = Date.now();
      job.systemModstamp = this.now();
      return;
    }
    if (target === 'UploadComplete' && job.kind === 'ingest') {
      if (job.state !== 'Open')
        throw new ApiError(400, 'INVALIDJOB', `Job ${job.id} is ${job.state}, not Open: it cannot be closed`);
      job.state = 'UploadComplete';
      job.systemModstamp = this.now();
      setImmediate(() => void this.processIngest(job));
      return;
    }
    throw new ApiError(
      400,
      'INVALIDJOB',
      `Invalid state '${String(target)}': expected ${job.kind === 'ingest' ? 'UploadComplete or Aborted' : 'Aborted'}`,
    );
  }

  private deleteJob(job: IngestJob | QueryJob): void {
    if (job.state === 'Open' || job.state === 'InProgress') {
      // Bulk API 2.0 Developer Guide, "Delete a Job": the job must be UploadComplete, JobComplete, Aborted or Failed.
      throw new ApiError(
        400,
        'INVALIDJOB',
        `Job ${job.id} is ${job.state}: only UploadComplete, JobComplete, Aborted or Failed jobs can be deleted`,
      );
    }
    this.jobs.delete(job.id);
  }

  private fail(job: JobBase, message: string): void {
    job.state = 'Failed';
    job.errorMessage = message;
    job.finishedAt = Date.now();
    job.systemModstamp = this.now();
  }

  /** Resolves the header row against the describe: the field of each column, or fails the job. */
  private columns(job: IngestJob, describe: ObjectDescribe, header: string[]): FieldDescribe[] | undefined {
    const fields: FieldDescribe[] = [];
    for (const raw of header) {
      const name = raw.trim();
      const field = describe.fields.find((f) => f.name.toLowerCase() === name.toLowerCase());
      if (!field) {
        this.fail(job, `InvalidBatch : Field name not found : ${name}`);
        return undefined;
      }
      fields.push(field);
    }
    const has = (name: string): boolean => fields.some((f) => f.name === name);
    if (
      (job.operation === 'update' || job.operation === 'delete' || job.operation === 'hardDelete') &&
      !has('Id')
    ) {
      this.fail(job, `InvalidBatch : Field name not found : Id (required for ${job.operation})`);
      return undefined;
    }
    if (job.operation === 'upsert' && job.externalIdFieldName && !has(job.externalIdFieldName)) {
      this.fail(
        job,
        `InvalidBatch : Field name not found : ${job.externalIdFieldName} (the job's externalIdFieldName)`,
      );
      return undefined;
    }
    return fields;
  }

  private ensureCapacity(job: IngestJob, rows: number): void {
    if (job.status.length >= rows) return;
    const next = new Uint8Array(Math.max(rows, job.status.length * 2, 1024));
    next.set(job.status);
    job.status = next;
  }

  /** Runs an ingest job in slices, yielding to the event loop between them. */
  private async processIngest(job: IngestJob): Promise<void> {
    if (job.state !== 'UploadComplete') return;
    job.state = 'InProgress';
    job.startedAt = Date.now();
    job.systemModstamp = this.now();
    const held = this.ctx.faults.bulkJobDelayMs();
    if (held > 0) {
      await new Promise((resolve) => setTimeout(resolve, held).unref());
      if ((job.state as JobState) !== 'InProgress') return; // aborted meanwhile
    }
    const injected = this.ctx.faults.takeBulkJobFailure();
    if (injected !== undefined) {
      this.fail(job, injected);
      return;
    }
    if (job.uploadBytes === 0) {
      this.fail(job, 'InvalidBatch : No data was uploaded to the job');
      return;
    }
    const describe = this.ctx.store.describe(job.object) as ObjectDescribe;
    let columns: FieldDescribe[] | undefined;
    let pending: { row: number; fields: string[] }[] = [];
    let rowIndex = 0;
    let headerSeen = false;
    const parser = new CsvStreamParser(job.columnDelimiter, job.lineEnding, (fields) => {
      if (!headerSeen) {
        headerSeen = true;
        columns = this.columns(job, describe, fields);
        return;
      }
      pending.push({ row: rowIndex++, fields });
    });
    const yieldTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
    try {
      for (const chunk of job.chunks) {
        parser.push(chunk);
        if (job.state !== 'InProgress') return;
        while (pending.length >= BULK_PROCESSING_SLICE_RECORDS) {
          const slice = pending.slice(0, BULK_PROCESSING_SLICE_RECORDS);
          pending = pending.slice(BULK_PROCESSING_SLICE_RECORDS);
          this.applySlice(job, columns as FieldDescribe[], slice);
          await yieldTurn();
          if ((job.state as JobState) !== 'InProgress') return; // aborted meanwhile
        }
      }
      parser.end();
      if (job.state !== 'InProgress') return;
      if (!headerSeen) {
        this.fail(job, 'InvalidBatch : The upload has no header row');
        return;
      }
      while (pending.length > 0) {
        const slice = pending.slice(0, BULK_PROCESSING_SLICE_RECORDS);
        pending = pending.slice(BULK_PROCESSING_SLICE_RECORDS);
        this.applySlice(job, columns as FieldDescribe[], slice);
        await yieldTurn();
        if ((job.state as JobState) !== 'InProgress') return;
      }
    } catch (err) {
      if (err instanceof CsvSyntaxError) {
        this.fail(job, `InvalidBatch : Failed to parse CSV: ${err.message}`);
        return;
      }
      this.fail(job, `InternalServerError : ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    job.state = 'JobComplete';
    job.finishedAt = Date.now();
    job.systemModstamp = this.now();
    this.ctx.bulkUsage.ingestBatches += Math.max(1, Math.ceil(job.rows / BULK_INTERNAL_BATCH_RECORDS));
  }

  /** Applies one slice of rows to the store and records each row's outcome. */
  private applySlice(
    job: IngestJob,
    columns: FieldDescribe[],
    slice: { row: number; fields: string[] }[],
  ): void {
    const last = slice[slice.length - 1];
    if (!last) return;
    this.ensureCapacity(job, last.row + 1);
    job.rows = Math.max(job.rows, last.row + 1);
    const rows: number[] = [];
    const records: Record<string, unknown>[] = [];
    const ids: string[] = [];
    for (const { row, fields } of slice) {
      if (fields.length !== columns.length) {
        // (unverified) Salesforce's text for a row whose column count differs from the header.
        this.recordFailure(job, row, null, [
          {
            statusCode: 'INVALID_FIELD',
            message: `the row has ${fields.length} values but the header has ${columns.length} columns`,
            fields: [],
          },
        ]);
        continue;
      }
      const record: Record<string, unknown> = {};
      columns.forEach((field, i) => {
        const value = fields[i] as string;
        // An empty value leaves the field unchanged; #N/A sets it to null (salesforce-wire.md).
        if (value === '') return;
        record[field.name] = value === '#N/A' ? null : value;
      });
      rows.push(row);
      if (job.operation === 'delete' || job.operation === 'hardDelete') ids.push(String(record.Id ?? ''));
      else records.push(record);
    }
    let results: SaveResult[] = [];
    const store = this.ctx.store;
    switch (job.operation) {
      case 'insert':
        results = store.create(job.object, records);
        break;
      case 'update':
        results = store.update(job.object, records);
        break;
      case 'upsert':
        results = store.upsert(job.object, job.externalIdFieldName as string, records);
        break;
      case 'delete':
      case 'hardDelete':
        // hardDelete is a soft delete here too: the emulator keeps no recycle bin of its own.
        results = store.delete(ids);
        break;
    }
    rows.forEach((row, i) => {
      const result = results[i];
      if (!result) return;
      if (result.success) {
        const created = job.operation === 'insert' || (job.operation === 'upsert' && result.created === true);
        job.status[row] = created ? RowStatus.Created : RowStatus.Updated;
        job.ids[row] = result.id;
        job.processed += 1;
      } else {
        this.recordFailure(job, row, result.id, result.errors);
      }
    });
  }

  private recordFailure(job: IngestJob, row: number, id: string | null, errors: RecordError[]): void {
    job.status[row] = RowStatus.Failed;
    job.ids[row] = id;
    job.errors.set(row, formatRecordErrors(errors));
    job.processed += 1;
    job.failed += 1;
  }

  /**
   * Streams successfulResults, failedResults or unprocessedrecords by re-reading the upload, as
   * asked for at API `version`: failedResults has its `sf__Id` column from 53.0 on only (Bulk API
   * 2.0 Developer Guide, "Get Job Failed Record Results").
   */
  private async writeIngestResults(
    job: IngestJob,
    which: 'successful' | 'failed' | 'unprocessed',
    version: string,
    res: ServerResponse,
    headers: Record<string, string>,
  ): Promise<number> {
    if (job.state === 'Open' || job.state === 'UploadComplete' || job.state === 'InProgress') {
      throw new ApiError(
        400,
        'INVALIDJOB',
        `Job ${job.id} is ${job.state}: results are available once it is JobComplete, Failed or Aborted`,
      );
    }
    const delimiter = COLUMN_DELIMITERS[job.columnDelimiter];
    const eol = LINE_ENDINGS[job.lineEnding];
    res.writeHead(200, { ...headers, 'Content-Type': CSV_CONTENT_TYPE });
    const writer = new StreamWriter(res);
    let written = 0;
    let headerSeen = false;
    let rowIndex = 0;
    let buffer: string[] = [];
    const failedWithId = parseFloat(version) >= FAILED_RESULTS_ID_SINCE;
    const parser = new CsvStreamParser(job.columnDelimiter, job.lineEnding, (fields) => {
      if (!headerSeen) {
        headerSeen = true;
        const names = fields.map((f) => headerCsv(f, delimiter));
        const prefix =
          which === 'successful'
            ? ['"sf__Id"', '"sf__Created"']
            : which === 'failed'
              ? failedWithId
                ? ['"sf__Id"', '"sf__Error"']
                : ['"sf__Error"']
              : [];
        buffer.push([...prefix, ...names].join(delimiter) + eol);
        return;
      }
      const row = rowIndex++;
      const status = row < job.status.length ? (job.status[row] as RowStatus) : RowStatus.Unprocessed;
      // A processed record whose result line the fault leaves out of both result files.
      if (status !== RowStatus.Unprocessed && this.ctx.faults.isResultOmitted(fields)) return;
      const original = fields.map(quoteCsv);
      if (which === 'successful' && (status === RowStatus.Created || status === RowStatus.Updated)) {
        buffer.push(
          [quoteCsv(job.ids[row] ?? ''), quoteCsv(String(status === RowStatus.Created)), ...original].join(
            delimiter,
          ) + eol,
        );
        written++;
      } else if (which === 'failed' && status === RowStatus.Failed) {
        const error = quoteCsv(job.errors.get(row) ?? '');
        const own = failedWithId ? [quoteCsv(job.ids[row] ?? ''), error] : [error];
        buffer.push([...own, ...original].join(delimiter) + eol);
        written++;
      } else if (which === 'unprocessed' && status === RowStatus.Unprocessed) {
        buffer.push(original.join(delimiter) + eol);
        written++;
      }
    });
    try {
      for (const chunk of job.chunks) {
        parser.push(chunk);
        if (buffer.length > 0) {
          const piece = buffer.join('');
          buffer = [];
          await writer.write(piece);
          if (writer.aborted) return written;
        }
      }
      parser.end();
    } catch (err) {
      if (!(err instanceof CsvSyntaxError)) throw err;
      // The job failed on this syntax error; rows after it are not part of any result file.
    }
    if (buffer.length > 0) await writer.write(buffer.join(''));
    writer.end();
    return written;
  }

  // ------------------------------------------------------------------ query

  private createQuery(raw: unknown, version: string): QueryJob {
    const body = this.objectBody(raw);
    const operation = body.operation ?? 'query';
    if (operation !== 'query' && operation !== 'queryAll') {
      throw new ApiError(
        400,
        'INVALIDJOB',
        `Invalid operation '${String(operation)}': expected query or queryAll`,
      );
    }
    if (typeof body.query !== 'string' || body.query.trim() === '') {
      throw new ApiError(400, 'INVALIDJOB', 'The job needs a SOQL query in "query"');
    }
    const dialect = this.dialect(body);
    let result: QueryCursor;
    try {
      // The query is checked (and run) when the job is created, so that a malformed one is a 400 here.
      // queryIterator keeps references to the stored records: nothing is copied for 1,000,000 rows.
      result = this.ctx.store.queryIterator(body.query, { includeDeleted: operation === 'queryAll' });
    } catch (err) {
      if (err instanceof SoqlError) throw new ApiError(400, err.errorCode, err.message);
      throw err;
    }
    if (result.isCount) {
      // Bulk API 2.0 Developer Guide, "Bulk API 2.0 Query": COUNT() is not supported.
      throw new ApiError(400, 'INVALIDJOB', 'Bulk API 2.0 query jobs do not support COUNT()');
    }
    // Compound fields (address, location) are read over REST or SOAP only: the Bulk APIs refuse a
    // query that selects one (Object Reference, "Compound Field Considerations and Limitations"),
    // Bulk API 2.0 with this answer to the job's create.
    const describe = this.ctx.store.describe(result.objectName);
    if (describe && result.fields.some((name) => isCompoundField(describe, name))) {
      throw new ApiError(400, 'API_ERROR', BULK_QUERY_COMPOUND_MESSAGE);
    }
    const now = this.now();
    const job: QueryJob = {
      kind: 'query',
      id: this.newJobId(),
      operation,
      query: body.query,
      object: result.objectName,
      ...dialect,
      createdDate: now,
      systemModstamp: now,
      state: 'UploadComplete',
      apiVersion: parseFloat(version),
      result,
      processed: 0,
    };
    this.ctx.bulkUsage.queryJobs += 1;
    this.jobs.set(job.id, job);
    setImmediate(() => {
      if (job.state !== 'UploadComplete') return;
      job.state = 'InProgress';
      job.startedAt = Date.now();
      job.systemModstamp = this.now();
      // Held InProgress first, then failed or completed: as an ingest job (processIngest), so that
      // bulkJobDelayMs holds a job that failNextBulkJob fails too.
      const complete = (): void => {
        if (job.state !== 'InProgress') return; // aborted meanwhile
        const injected = this.ctx.faults.takeBulkJobFailure();
        if (injected !== undefined) {
          delete job.result;
          this.fail(job, injected);
          return;
        }
        job.state = 'JobComplete';
        job.processed = job.result?.rows.length ?? 0;
        job.finishedAt = Date.now();
        job.systemModstamp = this.now();
      };
      const held = this.ctx.faults.bulkJobDelayMs();
      if (held > 0) setTimeout(complete, held).unref();
      else setImmediate(complete);
    });
    return job;
  }

  /** Streams one page of a query job's results. */
  private async writeQueryResults(
    job: QueryJob,
    query: URLSearchParams,
    res: ServerResponse,
    headers: Record<string, string>,
  ): Promise<number> {
    if (job.state !== 'JobComplete' || !job.result) {
      throw new ApiError(
        412,
        'JOB_NOT_COMPLETE',
        `Job ${job.id} is ${job.state}: results are available once it is JobComplete`,
      );
    }
    const locator = query.get('locator');
    let offset = 0;
    if (locator !== null && locator !== '' && locator !== 'null') {
      const decoded = decodeLocator(locator);
      if (decoded === undefined || decoded > job.result.rows.length) {
        throw new ApiError(400, 'INVALIDLOCATOR', `Invalid locator: ${locator}`);
      }
      offset = decoded;
    }
    const maxParam = query.get('maxRecords');
    let pageSize = BULK_QUERY_DEFAULT_PAGE_RECORDS;
    if (maxParam !== null) {
      if (!/^\d+$/.test(maxParam) || parseInt(maxParam, 10) < 1) {
        throw new ApiError(
          400,
          'INVALIDMAXRECORDS',
          `maxRecords must be a positive integer, got '${maxParam}'`,
        );
      }
      pageSize = parseInt(maxParam, 10);
    }
    const records = job.result.rows;
    const end = Math.min(records.length, offset + pageSize);
    const next = end < records.length ? encodeLocator(end) : 'null';
    const delimiter = COLUMN_DELIMITERS[job.columnDelimiter];
    const eol = LINE_ENDINGS[job.lineEnding];
    const fields = job.result.fields;
    res.writeHead(200, {
      ...headers,
      'Content-Type': CSV_CONTENT_TYPE,
      'Sforce-Locator': next,
      'Sforce-NumberOfRecords': String(end - offset),
    });
    const writer = new StreamWriter(res, this.ctx.faults.takeStreamFault());
    await writer.write(fields.map(quoteCsv).join(delimiter) + eol);
    // Rows are encoded straight into byte chunks; a chunk goes out as soon as it is full, and
    // the loop waits for the socket to drain (back-pressure) before encoding more.
    const encoder = new QueryResultEncoder(fields, delimiter, eol);
    for (let i = offset; i < end && !writer.aborted; i++) {
      encoder.writeRecord(records[i] as SfRecord);
      if ((i & 255) === 255) for (const chunk of encoder.takeFilled()) await writer.write(chunk);
    }
    for (const chunk of encoder.takeAll()) await writer.write(chunk);
    writer.end();
    return end - offset;
  }
}

/** Bulk API 2.0's answer to a query job selecting a compound field. */
export const BULK_QUERY_COMPOUND_MESSAGE = 'Selecting compound data not supported in Bulk Query';

/** Whether `name` is a compound (address or location) field of the object. */
function isCompoundField(describe: ObjectDescribe, name: string): boolean {
  const lower = name.toLowerCase();
  const field = describe.fields.find((f) => f.name.toLowerCase() === lower);
  return field?.type === 'address' || field?.type === 'location';
}

function notFound(): ApiError {
  return new ApiError(404, 'NOT_FOUND', 'The requested resource does not exist');
}
