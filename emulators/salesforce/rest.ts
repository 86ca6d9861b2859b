/**
 * The REST API of the Salesforce emulator (everything under `/services/data/vNN.N/` except
 * `jobs/`): resources, describeGlobal, describe, single-record CRUD and upsert, SOQL query /
 * queryAll / queryMore with locators, `/limits`, sObject Collections and Composite.
 *
 * Handlers are pure "call in, result out" functions so that Composite can run them as
 * subrequests; server.ts writes the results. Shapes follow salesforce-wire.md.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { CallOperation } from './calls';
import { recordUrl, type EmulatorContext } from './context';
import type { ObjectDescribe } from './describe';
import { ApiError } from './http';
import { normalizeId } from './ids';
import {
  ROLLED_BACK,
  SoqlError,
  StoreRequestError,
  type QueryCursor,
  type RecordError,
  type SaveResult,
  type SfRecord,
} from './store';

/** Most records one sObject Collections call takes (REST API Developer Guide, "sObject Collections"). */
export const COLLECTIONS_MAX_RECORDS = 200;
/** First API version with sObject Collections create, update, delete and retrieve (salesforce-wire.md, "Transport"). */
export const COLLECTIONS_MIN_VERSION = 42;
/** First API version with sObject Collections upsert (salesforce-wire.md, "Transport"). */
export const COLLECTIONS_UPSERT_MIN_VERSION = 46;
/** Most subrequests in one Composite call (REST API Developer Guide, "Composite"). */
export const COMPOSITE_MAX_SUBREQUESTS = 25;
/** Most sObject Collections or query subrequests in one Composite call (same page). */
export const COMPOSITE_MAX_COLLECTION_SUBREQUESTS = 5;
/** Query page size bounds and default (REST API Developer Guide, "Query Options Header"). */
export const QUERY_BATCH_SIZE = { min: 200, max: 2000, default: 2000 } as const;
/**
 * A query cursor lives this long after its last use: the older limit (REST API Developer Guide,
 * "Query", before API version 56.0, which made cursors last two days), kept because it is the
 * stricter, and a test of a cursor released needs one to expire.
 */
export const QUERY_CURSOR_IDLE_MS = 15 * 60 * 1000;

/** The message of `EXCEEDED_ID_LIMIT` (salesforce-wire.md, "sObject Collections"). */
export const EXCEEDED_ID_LIMIT_MESSAGE =
  'record limit reached. cannot submit more than 200 records into this call';
/**
 * REST bodies are JSON: a value of the wrong type fails the whole request with
 * JSON_PARSER_ERROR, as Salesforce's deserializer does (salesforce-wire.md, store.ts `typeErrors`).
 */
const REST_WRITE = { typeErrors: 'request' } as const;

/** The message of `NOT_FOUND`. */
export const NOT_FOUND_MESSAGE = 'The requested resource does not exist';

/** One REST call (or Composite subrequest) as the handlers see it. */
export interface RestCall {
  method: string;
  /** e.g. `62.0`. */
  version: string;
  /** Decoded path segments after `/services/data/vNN.N/`. */
  segments: string[];
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body, if any. */
  body: unknown;
}

/** What a handler answers. */
export interface RestResult {
  status: number;
  /** JSON body; `undefined` for an empty body (204). */
  body?: unknown;
  headers?: Record<string, string>;
  /** Records sent or returned, for the call log. */
  records?: number;
  /** A query page: the "reset mid-stream" fault may cut it. */
  queryPage?: boolean;
}

/** Classifies a REST call for the call log (before it runs). */
export function classifyRest(
  method: string,
  segments: readonly string[],
): { operation: CallOperation; write: boolean } {
  const [first, second, third, fourth] = segments;
  const op = (operation: CallOperation, write = false): { operation: CallOperation; write: boolean } => ({
    operation,
    write,
  });
  if (first === undefined) return op('resources');
  switch (first) {
    case 'sobjects':
      if (second === undefined) return op('describeGlobal');
      if (third === undefined) return method === 'POST' ? op('sobject.create', true) : op('sobject.info');
      if (third === 'describe' && fourth === undefined) return op('describe');
      if (fourth !== undefined) return method === 'GET' ? op('sobject.retrieve') : op('sobject.upsert', true);
      if (method === 'GET') return op('sobject.retrieve');
      if (method === 'PATCH') return op('sobject.update', true);
      if (method === 'DELETE') return op('sobject.delete', true);
      return op('unknown');
    case 'query':
      return op(second === undefined ? 'query' : 'queryMore');
    case 'queryAll':
      return op(second === undefined ? 'queryAll' : 'queryMore');
    case 'limits':
      return op('limits');
    case 'composite':
      if (second === undefined) return op('composite', true);
      if (second === 'sobjects') {
        if (method === 'POST' && third === undefined) return op('collections.create', true);
        if (method === 'POST') return op('collections.retrieve');
        if (method === 'PATCH' && third !== undefined) return op('collections.upsert', true);
        if (method === 'PATCH') return op('collections.update', true);
        if (method === 'DELETE') return op('collections.delete', true);
      }
      return op('unknown');
    default:
      return op('unknown');
  }
}

function notFound(): ApiError {
  return new ApiError(404, 'NOT_FOUND', NOT_FOUND_MESSAGE);
}

function methodNotAllowed(method: string, segments: readonly string[]): ApiError {
  return new ApiError(
    405,
    'METHOD_NOT_ALLOWED',
    `HTTP Method '${method}' not allowed. Allowed are ${allowedMethods(segments).join(',')}`,
  );
}

function allowedMethods(segments: readonly string[]): string[] {
  const [first, second, third, fourth] = segments;
  if (first === 'sobjects' && second !== undefined && third === undefined) return ['HEAD', 'GET', 'POST'];
  if (first === 'sobjects' && fourth !== undefined) return ['HEAD', 'GET', 'PATCH', 'DELETE'];
  if (first === 'sobjects' && third !== undefined) return ['HEAD', 'GET', 'PATCH', 'DELETE'];
  if (first === 'composite' && second === 'sobjects') return ['POST', 'PATCH', 'DELETE'];
  if (first === 'composite') return ['POST'];
  return ['HEAD', 'GET'];
}

/** An open query: the result and when it was last read. */
interface OpenQuery {
  result: QueryCursor;
  lastUsed: number;
}

/** The REST endpoints of one emulator. */
export class RestApi {
  private readonly cursors = new Map<string, OpenQuery>();
  private cursorCounter = 0;

  constructor(private readonly ctx: EmulatorContext) {}

  /** Drops every open query cursor. */
  closeCursors(): void {
    this.cursors.clear();
  }

  /** Number of open query cursors (for tests of expiry). */
  get openCursors(): number {
    return this.cursors.size;
  }

  /** Runs one call. Throws ApiError for whole-request errors. */
  handle(call: RestCall): RestResult {
    const { method, segments } = call;
    const [first, second, third, fourth] = segments;
    if (segments.length > 4) throw notFound();
    switch (first) {
      case undefined:
        if (method !== 'GET') throw methodNotAllowed(method, segments);
        return { status: 200, body: this.resources(call.version) };
      case 'sobjects':
        return this.sobjects(call, second, third, fourth);
      case 'query':
      case 'queryAll':
        if (method !== 'GET') throw methodNotAllowed(method, segments);
        if (third !== undefined) throw notFound();
        return second === undefined ? this.query(call, first === 'queryAll') : this.queryMore(call, second);
      case 'limits':
        if (method !== 'GET') throw methodNotAllowed(method, segments);
        if (second !== undefined) throw notFound();
        return { status: 200, body: this.limits() };
      case 'composite':
        if (second === undefined) {
          if (method !== 'POST') throw methodNotAllowed(method, segments);
          return this.composite(call);
        }
        if (second === 'sobjects') return this.collections(call, third, fourth);
        throw notFound();
      default:
        throw notFound();
    }
  }

  // ------------------------------------------------------------------ resources & describes

  private resources(version: string): Record<string, string> {
    const base = `/services/data/v${version}`;
    return {
      sobjects: `${base}/sobjects`,
      query: `${base}/query`,
      queryAll: `${base}/queryAll`,
      limits: `${base}/limits`,
      composite: `${base}/composite`,
      jobs: `${base}/jobs`,
      identity: this.ctx.auth.identityUrl,
    };
  }

  private describeOrThrow(objectName: string): ObjectDescribe {
    const describe = this.ctx.store.describe(objectName);
    if (!describe) throw notFound();
    return describe;
  }

  private objectUrls(version: string, d: ObjectDescribe): Record<string, string> {
    const base = `/services/data/v${version}/sobjects/${d.name}`;
    return { sobject: base, describe: `${base}/describe`, rowTemplate: `${base}/{ID}` };
  }

  private describeGlobal(version: string): unknown {
    const describes = this.ctx.store.options.describes;
    return {
      encoding: 'UTF-8',
      maxBatchSize: COLLECTIONS_MAX_RECORDS,
      sobjects: describes.map((d) => {
        const summary: Record<string, unknown> = {};
        for (const [key, value] of Object.entries(d)) {
          if (key !== 'fields' && key !== 'childRelationships' && key !== 'recordTypeInfos')
            summary[key] = value;
        }
        summary.urls = this.objectUrls(version, d);
        return summary;
      }),
    };
  }

  private sobjects(call: RestCall, objectName?: string, third?: string, fourth?: string): RestResult {
    const { method, version } = call;
    if (objectName === undefined) {
      if (method !== 'GET') throw methodNotAllowed(method, call.segments);
      return { status: 200, body: this.describeGlobal(version) };
    }
    const describe = this.describeOrThrow(objectName);
    if (third === undefined) {
      if (method === 'GET') {
        const summary = (this.describeGlobal(version) as { sobjects: { name: string }[] }).sobjects.find(
          (s) => s.name === describe.name,
        );
        return { status: 200, body: { objectDescribe: summary, recentItems: [] } };
      }
      if (method === 'POST') return this.createOne(call, describe);
      throw methodNotAllowed(method, call.segments);
    }
    if (third === 'describe' && fourth === undefined) {
      if (method !== 'GET') throw methodNotAllowed(method, call.segments);
      return { status: 200, body: { ...describe, urls: this.objectUrls(version, describe) } };
    }
    if (fourth !== undefined) {
      // /sobjects/{Object}/{ExternalIdField}/{value}
      const field = describe.fields.find((f) => f.name.toLowerCase() === third.toLowerCase());
      if (!field || !(field.externalId || field.idLookup)) {
        throw new ApiError(
          404,
          'NOT_FOUND',
          `Provided external ID field does not exist or is not accessible: ${third}`,
        );
      }
      if (method === 'GET') return this.retrieveByExternalId(call, describe, field.name, fourth);
      if (method === 'PATCH') return this.upsertOne(call, describe, field.name, fourth);
      throw methodNotAllowed(method, call.segments);
    }
    switch (method) {
      case 'GET':
        return this.retrieveOne(call, describe, third);
      case 'PATCH':
        return this.updateOne(call, describe, third);
      case 'DELETE':
        return this.deleteOne(describe, third);
      default:
        throw methodNotAllowed(method, call.segments);
    }
  }

  // ------------------------------------------------------------------ single-record CRUD

  private recordBody(call: RestCall): Record<string, unknown> {
    const body = call.body;
    if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw new ApiError(400, 'JSON_PARSER_ERROR', 'The request body must be a JSON object of field values');
    }
    const { attributes: _attributes, ...fields } = body as Record<string, unknown>;
    return fields;
  }

  /** Single-record errors use `errorCode` (not `statusCode`): REST API Developer Guide, "Status Codes and Error Responses". */
  private singleRecordError(result: SaveResult | undefined): ApiError {
    const errors = result?.errors ?? [];
    const first = errors[0];
    if (errors.length > 1) return new RecordErrorsApiError(400, errors);
    return new ApiError(
      400,
      first?.statusCode ?? 'UNKNOWN_EXCEPTION',
      first?.message ?? 'unknown error',
      first?.fields ?? [],
    );
  }

  private createOne(call: RestCall, describe: ObjectDescribe): RestResult {
    const [result] = this.ctx.store.create(describe.name, [this.recordBody(call)], REST_WRITE);
    if (!result?.success) throw this.singleRecordError(result);
    return {
      status: 201,
      body: { id: result.id, success: true, errors: [] },
      headers: { Location: recordUrl(call.version, describe.name, result.id ?? '') },
      records: 1,
    };
  }

  private liveRecord(describe: ObjectDescribe, rawId: string): SfRecord {
    const id = normalizeId(rawId);
    const record = id ? this.ctx.store.get(id) : undefined;
    if (!record || this.ctx.store.objectForId(record.Id as string)?.name !== describe.name) throw notFound();
    if (record.IsDeleted === true) throw new ApiError(404, 'ENTITY_IS_DELETED', 'entity is deleted');
    return record;
  }

  private wireRecord(
    version: string,
    describe: ObjectDescribe,
    record: SfRecord,
    fields?: string[],
  ): Record<string, unknown> {
    const out: Record<string, unknown> = {
      attributes: { type: describe.name, url: recordUrl(version, describe.name, String(record.Id)) },
    };
    const names = fields ?? describe.fields.map((f) => f.name);
    for (const name of names) out[name] = record[name] ?? null;
    return out;
  }

  private selectedFields(call: RestCall, describe: ObjectDescribe): string[] | undefined {
    const fieldsParam = call.query.get('fields');
    if (!fieldsParam) return undefined;
    return fieldsParam.split(',').map((raw) => {
      const name = raw.trim();
      const field = describe.fields.find((f) => f.name.toLowerCase() === name.toLowerCase());
      if (!field) {
        throw new ApiError(
          400,
          'INVALID_FIELD',
          `No such column '${name}' on entity '${describe.name}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name.`,
        );
      }
      return field.name;
    });
  }

  private retrieveOne(call: RestCall, describe: ObjectDescribe, rawId: string): RestResult {
    const record = this.liveRecord(describe, rawId);
    return {
      status: 200,
      body: this.wireRecord(call.version, describe, record, this.selectedFields(call, describe)),
      records: 1,
    };
  }

  private findByExternalId(describe: ObjectDescribe, fieldName: string, value: string): SfRecord[] {
    return this.ctx.store.findByExternalId(describe.name, fieldName, value);
  }

  private retrieveByExternalId(
    call: RestCall,
    describe: ObjectDescribe,
    fieldName: string,
    value: string,
  ): RestResult {
    const matches = this.findByExternalId(describe, fieldName, value);
    if (matches.length === 0) throw notFound();
    if (matches.length > 1) {
      return { status: 300, body: matches.map((r) => recordUrl(call.version, describe.name, String(r.Id))) };
    }
    return {
      status: 200,
      body: this.wireRecord(
        call.version,
        describe,
        matches[0] as SfRecord,
        this.selectedFields(call, describe),
      ),
      records: 1,
    };
  }

  private updateOne(call: RestCall, describe: ObjectDescribe, rawId: string): RestResult {
    const id = this.liveRecord(describe, rawId).Id as string;
    const [result] = this.ctx.store.update(describe.name, [{ ...this.recordBody(call), Id: id }], REST_WRITE);
    if (!result?.success) throw this.singleRecordError(result);
    return { status: 204, records: 1 };
  }

  private deleteOne(describe: ObjectDescribe, rawId: string): RestResult {
    const id = this.liveRecord(describe, rawId).Id as string;
    const [result] = this.ctx.store.delete([id]);
    if (!result?.success) throw this.singleRecordError(result);
    return { status: 204, records: 1 };
  }

  private upsertOne(call: RestCall, describe: ObjectDescribe, fieldName: string, value: string): RestResult {
    const matches = this.findByExternalId(describe, fieldName, value);
    if (matches.length > 1) {
      // 300 Multiple Choices: the body lists the matching records (jsforce raises MULTIPLE_CHOICES).
      return { status: 300, body: matches.map((r) => recordUrl(call.version, describe.name, String(r.Id))) };
    }
    const fields = this.recordBody(call);
    const [result] = this.ctx.store.upsert(
      describe.name,
      fieldName,
      [{ ...fields, [fieldName]: value }],
      REST_WRITE,
    );
    if (!result?.success) throw this.singleRecordError(result);
    // API ≥ 46.0 answers 201 (created) or 200 (updated) with a body (REST API Developer Guide, "Insert or Update (Upsert) a Record Using an External ID").
    return {
      status: result.created ? 201 : 200,
      body: { id: result.id, success: true, errors: [], created: result.created === true },
      ...(result.created
        ? { headers: { Location: recordUrl(call.version, describe.name, result.id ?? '') } }
        : {}),
      records: 1,
    };
  }

  // ------------------------------------------------------------------ query

  private batchSize(call: RestCall): number {
    const header = call.headers['sforce-query-options'];
    const text = Array.isArray(header) ? header.join(',') : header;
    const m = text ? /batchSize\s*=\s*(\d+)/i.exec(text) : null;
    if (!m?.[1]) return QUERY_BATCH_SIZE.default;
    return Math.min(QUERY_BATCH_SIZE.max, Math.max(QUERY_BATCH_SIZE.min, parseInt(m[1], 10)));
  }

  private runQuery(soql: string, includeDeleted: boolean): QueryCursor {
    try {
      return this.ctx.store.queryIterator(soql, { includeDeleted });
    } catch (err) {
      if (err instanceof SoqlError) throw new ApiError(400, err.errorCode, err.message);
      throw err;
    }
  }

  private query(call: RestCall, includeDeleted: boolean): RestResult {
    const soql = call.query.get('q');
    if (!soql) throw new ApiError(400, 'MALFORMED_QUERY', 'A query string has to be specified');
    const result = this.runQuery(soql, includeDeleted);
    if (result.isCount) {
      return {
        status: 200,
        body: { totalSize: result.totalSize, done: true, records: [] },
        records: 0,
        queryPage: true,
      };
    }
    return this.page(call, result, 0, this.newCursorId());
  }

  private newCursorId(): string {
    this.cursorCounter += 1;
    // Salesforce query locators look like `01gD0000002HU6KIAW-2000`: an id, a dash, the offset.
    return `01g5e${String(this.cursorCounter).padStart(10, '0')}${randomBytes(2).toString('hex').slice(0, 3).toUpperCase()}`;
  }

  private page(call: RestCall, result: QueryCursor, offset: number, cursorId: string): RestResult {
    this.expireCursors();
    const size = this.batchSize(call);
    const end = Math.min(result.rows.length, offset + size);
    const records: Record<string, unknown>[] = [];
    for (let i = offset; i < end; i++) {
      // rows are the stored records: Id is there even when the query does not select it.
      const row = result.rows[i] as SfRecord;
      const out: Record<string, unknown> = {
        attributes: {
          type: result.objectName,
          url: recordUrl(call.version, result.objectName, String(row.Id)),
        },
      };
      for (const field of result.fields) out[field] = row[field] ?? null;
      records.push(out);
    }
    const done = end >= result.rows.length;
    const body: Record<string, unknown> = { totalSize: result.totalSize, done };
    if (!done) {
      this.cursors.set(cursorId, { result, lastUsed: Date.now() });
      body.nextRecordsUrl = `/services/data/v${call.version}/query/${cursorId}-${end}`;
    }
    body.records = records;
    return { status: 200, body, records: records.length, queryPage: true };
  }

  private queryMore(call: RestCall, locator: string): RestResult {
    this.expireCursors();
    const m = /^(.+)-(\d+)$/.exec(locator);
    const cursor = m?.[1] ? this.cursors.get(m[1]) : undefined;
    if (!m?.[1] || !m[2] || !cursor) {
      throw new ApiError(400, 'INVALID_QUERY_LOCATOR', 'invalid query locator');
    }
    const offset = parseInt(m[2], 10);
    if (offset > cursor.result.rows.length)
      throw new ApiError(400, 'INVALID_QUERY_LOCATOR', 'invalid query locator');
    cursor.lastUsed = Date.now();
    const result = this.page(call, cursor.result, offset, m[1]);
    // The last page was served: the cursor stays until it idles out, so a client may retry a page.
    return result;
  }

  private expireCursors(): void {
    const now = Date.now();
    for (const [id, cursor] of this.cursors)
      if (now - cursor.lastUsed > QUERY_CURSOR_IDLE_MS) this.cursors.delete(id);
  }

  // ------------------------------------------------------------------ limits

  /** The `/limits` body: the daily API allowance and the Bulk allocations. */
  limits(): Record<string, { Max: number; Remaining: number }> {
    const { usage, bulkUsage } = this.ctx;
    return {
      DailyApiRequests: { Max: usage.max, Remaining: Math.max(0, usage.max - usage.used) },
      DailyBulkApiBatches: {
        Max: BULK_DAILY_BATCHES,
        Remaining: Math.max(0, BULK_DAILY_BATCHES - bulkUsage.ingestBatches),
      },
      DailyBulkV2QueryJobs: {
        Max: BULK_DAILY_QUERY_JOBS,
        Remaining: Math.max(0, BULK_DAILY_QUERY_JOBS - bulkUsage.queryJobs),
      },
      DailyBulkV2QueryFileStorageMB: { Max: 1_000_000, Remaining: 1_000_000 },
      DataStorageMB: { Max: 5, Remaining: 5 },
      FileStorageMB: { Max: 20, Remaining: 20 },
    };
  }

  // ------------------------------------------------------------------ sObject Collections

  private collectionRecords(call: RestCall): { allOrNone: boolean; records: Record<string, unknown>[] } {
    const body = call.body as { allOrNone?: unknown; records?: unknown } | undefined;
    if (!body || typeof body !== 'object' || !Array.isArray(body.records)) {
      throw new ApiError(
        400,
        'JSON_PARSER_ERROR',
        'The request body must be {"allOrNone": boolean, "records": [...]}',
      );
    }
    if (body.records.length > COLLECTIONS_MAX_RECORDS)
      throw new ApiError(400, 'EXCEEDED_ID_LIMIT', EXCEEDED_ID_LIMIT_MESSAGE);
    body.records.forEach((r, i) => {
      if (!r || typeof r !== 'object' || Array.isArray(r)) {
        throw new ApiError(400, 'JSON_PARSER_ERROR', `records[${i}] must be a JSON object`);
      }
    });
    return { allOrNone: body.allOrNone === true, records: body.records as Record<string, unknown>[] };
  }

  /** The object of each record from `attributes.type` (required for create). */
  private recordType(record: Record<string, unknown>, index: number, required: boolean): string | undefined {
    const attributes = record.attributes as { type?: unknown } | undefined;
    const type = attributes?.type;
    if (type === undefined) {
      if (required) throw new ApiError(400, 'INVALID_TYPE', `records[${index}]: attributes.type is required`);
      return undefined;
    }
    if (typeof type !== 'string' || !this.ctx.store.describe(type)) {
      throw new ApiError(400, 'INVALID_TYPE', `sObject type '${String(type)}' is not supported.`);
    }
    return (this.ctx.store.describe(type) as ObjectDescribe).name;
  }

  private collections(call: RestCall, third?: string, fourth?: string): RestResult {
    const { method } = call;
    // The resources do not exist before their API versions: Collections 42.0, Collections upsert
    // 46.0 (salesforce-wire.md, "Transport"; below them jsforce sends one call per record).
    const version = parseFloat(call.version);
    if (version < COLLECTIONS_MIN_VERSION) throw notFound();
    if (method === 'PATCH' && third !== undefined && version < COLLECTIONS_UPSERT_MIN_VERSION)
      throw notFound();
    if (method === 'DELETE' && third === undefined) return this.collectionsDelete(call);
    if (method === 'POST' && third !== undefined && fourth === undefined)
      return this.collectionsRetrieve(call, third);
    if (method === 'POST' && third === undefined) return this.collectionsWrite(call, 'create');
    if (method === 'PATCH' && third === undefined) return this.collectionsWrite(call, 'update');
    if (method === 'PATCH' && third !== undefined && fourth !== undefined)
      return this.collectionsUpsert(call, third, fourth);
    throw methodNotAllowed(method, call.segments);
  }

  private collectionsWrite(call: RestCall, kind: 'create' | 'update'): RestResult {
    const { allOrNone, records } = this.collectionRecords(call);
    const types = records.map((r, i) => this.recordType(r, i, kind === 'create'));
    const stripped = records.map(({ attributes: _a, ...fields }) => fields);
    const distinct = new Set(types);
    let results: SaveResult[];
    if (distinct.size <= 1) {
      const [type] = distinct;
      results =
        kind === 'create'
          ? this.ctx.store.create(type as string, stripped, { ...REST_WRITE, allOrNone })
          : this.ctx.store.update(type, stripped, { ...REST_WRITE, allOrNone });
    } else {
      // Records of several objects: the store writes one object per call. With allOrNone the
      // calls run in one store transaction, rolled back when any record fails; inside a
      // Composite allOrNone the Composite's transaction is open already and rolls back itself.
      const store = this.ctx.store;
      const transaction = allOrNone && !store.inTransaction ? store.beginTransaction() : undefined;
      results = new Array<SaveResult>(records.length);
      try {
        for (const type of distinct) {
          const indexes = types.flatMap((t, i) => (t === type ? [i] : []));
          const batch = indexes.map((i) => stripped[i] as Record<string, unknown>);
          const opts = { ...REST_WRITE, allOrNone };
          const out =
            kind === 'create' ? store.create(type as string, batch, opts) : store.update(type, batch, opts);
          indexes.forEach((recordIndex, k) => (results[recordIndex] = out[k] as SaveResult));
        }
      } catch (err) {
        transaction?.rollback();
        throw err;
      }
      if (allOrNone && results.some((r) => !r.success)) {
        transaction?.rollback();
        // salesforce-wire.md, "sObject Collections": with allOrNone the others fail with
        // ALL_OR_NONE_OPERATION_ROLLED_BACK (those of an object whose own records all passed too).
        results = results.map((r) =>
          r.success || r.errors.every((e) => e.statusCode === ROLLED_BACK.statusCode)
            ? { id: null, success: false, errors: [{ ...ROLLED_BACK }] }
            : { ...r, id: null },
        );
      } else {
        transaction?.commit();
      }
    }
    return { status: 200, body: results.map((r) => wireSaveResult(r, false)), records: records.length };
  }

  private collectionsUpsert(call: RestCall, objectName: string, fieldName: string): RestResult {
    const describe = this.describeOrThrow(objectName);
    const field = describe.fields.find((f) => f.name.toLowerCase() === fieldName.toLowerCase());
    if (!field || !(field.externalId || field.idLookup)) {
      throw new ApiError(
        400,
        'INVALID_FIELD',
        `Field name provided, ${fieldName} is not an External ID or indexed field for ${describe.name}`,
      );
    }
    const { allOrNone, records } = this.collectionRecords(call);
    records.forEach((r, i) => {
      const type = this.recordType(r, i, false);
      if (type !== undefined && type !== describe.name) {
        throw new ApiError(400, 'INVALID_TYPE', `records[${i}] is a ${type}, the URL names ${describe.name}`);
      }
    });
    const stripped = records.map(({ attributes: _a, ...fields }) => fields);
    const results = this.ctx.store.upsert(describe.name, field.name, stripped, { ...REST_WRITE, allOrNone });
    return { status: 200, body: results.map((r) => wireSaveResult(r, true)), records: records.length };
  }

  private collectionsDelete(call: RestCall): RestResult {
    const idsParam = call.query.get('ids');
    if (!idsParam) throw new ApiError(400, 'MALFORMED_QUERY', 'The ids parameter is required: ?ids=id1,id2');
    const ids = idsParam
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    if (ids.length > COLLECTIONS_MAX_RECORDS)
      throw new ApiError(400, 'EXCEEDED_ID_LIMIT', EXCEEDED_ID_LIMIT_MESSAGE);
    const allOrNone = call.query.get('allOrNone') === 'true';
    const results = this.ctx.store.delete(ids, { allOrNone });
    return { status: 200, body: results.map((r) => wireSaveResult(r, false)), records: ids.length };
  }

  private collectionsRetrieve(call: RestCall, objectName: string): RestResult {
    const describe = this.describeOrThrow(objectName);
    const body = call.body as { ids?: unknown; fields?: unknown } | undefined;
    if (!body || !Array.isArray(body.ids) || !Array.isArray(body.fields)) {
      throw new ApiError(
        400,
        'JSON_PARSER_ERROR',
        'The request body must be {"ids": [...], "fields": [...]}',
      );
    }
    if (body.ids.length > 2000)
      throw new ApiError(400, 'EXCEEDED_ID_LIMIT', 'cannot retrieve more than 2000 records in one call');
    const fields = (body.fields as unknown[]).map((f) => {
      const field = describe.fields.find((d) => d.name.toLowerCase() === String(f).toLowerCase());
      if (!field)
        throw new ApiError(
          400,
          'INVALID_FIELD',
          `No such column '${String(f)}' on entity '${describe.name}'.`,
        );
      return field.name;
    });
    const out = (body.ids as unknown[]).map((raw) => {
      const id = typeof raw === 'string' ? normalizeId(raw) : undefined;
      const record = id ? this.ctx.store.get(id) : undefined;
      if (
        !record ||
        record.IsDeleted === true ||
        this.ctx.store.objectForId(id as string)?.name !== describe.name
      )
        return null;
      return this.wireRecord(call.version, describe, record, fields);
    });
    return { status: 200, body: out, records: out.filter((r) => r !== null).length };
  }

  // ------------------------------------------------------------------ Composite

  private composite(call: RestCall): RestResult {
    const body = call.body as { allOrNone?: unknown; compositeRequest?: unknown } | undefined;
    if (!body || !Array.isArray(body.compositeRequest)) {
      throw new ApiError(400, 'JSON_PARSER_ERROR', 'The request body must be {"compositeRequest": [...]}');
    }
    const subrequests = body.compositeRequest as {
      method?: unknown;
      url?: unknown;
      referenceId?: unknown;
      body?: unknown;
      httpHeaders?: unknown;
    }[];
    if (subrequests.length > COMPOSITE_MAX_SUBREQUESTS) {
      throw new ApiError(
        400,
        'LIMIT_EXCEEDED',
        `the composite request holds ${subrequests.length} subrequests; the limit is ${COMPOSITE_MAX_SUBREQUESTS}`,
      );
    }
    const parsed = subrequests.map((sub, i) => {
      if (
        typeof sub.method !== 'string' ||
        typeof sub.url !== 'string' ||
        typeof sub.referenceId !== 'string'
      ) {
        throw new ApiError(
          400,
          'JSON_PARSER_ERROR',
          `compositeRequest[${i}] needs method, url and referenceId`,
        );
      }
      return {
        method: sub.method.toUpperCase(),
        url: sub.url,
        referenceId: sub.referenceId,
        body: sub.body,
        httpHeaders: sub.httpHeaders,
      };
    });
    const heavy = parsed.filter((p) => /\/composite\/sobjects|\/query(All)?[/?]/.test(p.url)).length;
    if (heavy > COMPOSITE_MAX_COLLECTION_SUBREQUESTS) {
      throw new ApiError(
        400,
        'LIMIT_EXCEEDED',
        `the composite request holds ${heavy} sObject Collections or query subrequests; the limit is ${COMPOSITE_MAX_COLLECTION_SUBREQUESTS}`,
      );
    }
    const allOrNone = body.allOrNone === true;
    const results = new Map<string, unknown>();
    const responses: {
      body: unknown;
      httpHeaders: Record<string, string>;
      httpStatusCode: number;
      referenceId: string;
    }[] = [];
    // "If the value is true, the entire composite request is rolled back" (REST API Developer
    // Guide, Composite Request Body): the subrequests run in one store transaction.
    const transaction = allOrNone ? this.ctx.store.beginTransaction() : undefined;
    let failedAt = -1;
    let records = 0;
    try {
      for (const sub of parsed) {
        if (failedAt >= 0) {
          responses.push(processingHalted(sub.referenceId));
          continue;
        }
        let result: RestResult;
        let collections = false;
        try {
          const url = resolveReferences(sub.url, results, true) as string;
          const m = /^\/services\/data\/v(\d+\.\d+)\/([^?]*)(?:\?(.*))?$/.exec(url);
          if (!m?.[1] || m[2] === undefined)
            throw new ApiError(
              400,
              'INVALID_URL',
              `subrequest url must start with /services/data/vNN.N/: ${url}`,
            );
          if (
            m[2].startsWith('jobs') ||
            (m[2].startsWith('composite') && !m[2].startsWith('composite/sobjects'))
          ) {
            throw new ApiError(400, 'INVALID_URL', `the emulator does not run ${m[2]} inside Composite`);
          }
          collections = m[2].startsWith('composite/sobjects');
          const query = new URLSearchParams(m[3] ?? '');
          let subBody = resolveReferences(sub.body, results, false);
          if (allOrNone && collections) {
            // The Composite request's allOrNone "also applies to each of the sObject Collections
            // subrequests, overriding the value of allOrNone in the subrequests" (REST API
            // Developer Guide, "allOrNone Parameters in Composite and Collections Requests").
            if (sub.method === 'DELETE') query.set('allOrNone', 'true');
            else if (subBody !== null && typeof subBody === 'object' && !Array.isArray(subBody))
              subBody = { ...(subBody as Record<string, unknown>), allOrNone: true };
          }
          result = this.handle({
            method: sub.method,
            version: m[1],
            segments: m[2]
              .split('/')
              .filter((s) => s !== '')
              .map((s) => decodeURIComponent(s)),
            query,
            // "Request headers and their values to include with the subrequest" (Composite
            // Subrequest, httpHeaders): a query's Sforce-Query-Options, say.
            headers: subrequestHeaders(sub.httpHeaders),
            body: subBody,
          });
        } catch (err) {
          const apiError = toApiError(err);
          if (!apiError) throw err;
          result = { status: apiError.status, body: apiError.body() };
        }
        records += result.records ?? 0;
        results.set(sub.referenceId, result.body);
        responses.push({
          body: result.body ?? null,
          httpHeaders: result.headers ?? {},
          httpStatusCode: result.status,
          referenceId: sub.referenceId,
        });
        const failed =
          result.status >= 400 ||
          (collections &&
            Array.isArray(result.body) &&
            result.body.some((r) => (r as { success?: unknown } | null)?.success === false));
        if (allOrNone && failed) failedAt = responses.length - 1;
      }
    } catch (err) {
      transaction?.rollback();
      throw err;
    }
    if (transaction && failedAt >= 0) {
      transaction.rollback();
      // "If allOrNone is set to true in the composite request and a subrequest returns an error,
      // all other subrequests return the 400 HTTP status code" (Composite Subrequest Result):
      // those that ran were rolled back, and say so.
      for (let i = 0; i < failedAt; i++) responses[i] = processingHalted(responses[i]?.referenceId ?? '');
      records = 0;
    } else {
      transaction?.commit();
    }
    return { status: 200, body: { compositeResponse: responses }, records };
  }
}

/** A Composite subrequest's `httpHeaders` as Node names a request's headers (lowercase). */
function subrequestHeaders(raw: unknown): Record<string, string> {
  const headers: Record<string, string> = {};
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return headers;
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof value === 'string') headers[name.toLowerCase()] = value;
  }
  return headers;
}

/** The answer of a Composite subrequest rolled back, or never run, because another one failed (allOrNone). */
function processingHalted(referenceId: string): {
  body: unknown;
  httpHeaders: Record<string, string>;
  httpStatusCode: number;
  referenceId: string;
} {
  return {
    body: [
      {
        errorCode: 'PROCESSING_HALTED',
        message: 'The transaction was rolled back since another operation in the same transaction failed.',
      },
    ],
    httpHeaders: {},
    httpStatusCode: 400,
    referenceId,
  };
}

/** A single-record REST failure with several errors: `MULTIPLE_API_ERRORS` is jsforce's name for it. */
class RecordErrorsApiError extends ApiError {
  constructor(
    status: number,
    private readonly errors: RecordError[],
  ) {
    super(status, errors[0]?.statusCode ?? 'UNKNOWN_EXCEPTION', errors.map((e) => e.message).join('; '));
  }

  override body(): { message: string; errorCode: string; fields?: string[] }[] {
    return this.errors.map((e) => ({ message: e.message, errorCode: e.statusCode, fields: e.fields }));
  }
}

/** Bulk API batches per rolling 24 hours (salesforce-wire.md, "Bulk API 2.0 ingest"). */
export const BULK_DAILY_BATCHES = 15_000;
/** Bulk API 2.0 query jobs per rolling 24 hours (salesforce-wire.md, "Bulk API 2.0 query"). */
export const BULK_DAILY_QUERY_JOBS = 10_000;

/** Maps the store's whole-request errors to REST errors (400 `[{message, errorCode, fields}]`). */
export function toApiError(err: unknown): ApiError | undefined {
  if (err instanceof ApiError) return err;
  if (err instanceof StoreRequestError) return new ApiError(400, err.errorCode, err.message, err.fields);
  if (err instanceof SoqlError) return new ApiError(400, err.errorCode, err.message);
  return undefined;
}

/** One Collections result on the wire: `id` omitted when there is none, `created` for upserts. */
export function wireSaveResult(result: SaveResult, upsert: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (result.id !== null) out.id = result.id;
  out.success = result.success;
  out.errors = result.errors.map((e) => ({ statusCode: e.statusCode, message: e.message, fields: e.fields }));
  if (upsert) out.created = result.created === true;
  return out;
}

/** Replaces Composite references `@{refId.path}` with values from earlier subrequest bodies. */
function resolveReferences(value: unknown, results: Map<string, unknown>, inUrl: boolean): unknown {
  if (typeof value === 'string') {
    const whole = /^@\{([^}]+)\}$/.exec(value);
    if (whole?.[1] && !inUrl) return lookupReference(whole[1], results);
    return value.replace(/@\{([^}]+)\}/g, (_m, ref: string) => String(lookupReference(ref, results)));
  }
  if (Array.isArray(value)) return value.map((v) => resolveReferences(v, results, inUrl));
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, resolveReferences(v, results, inUrl)]),
    );
  }
  return value;
}

function lookupReference(ref: string, results: Map<string, unknown>): unknown {
  const [refId, ...path] = ref.split('.');
  if (!refId || !results.has(refId)) {
    throw new ApiError(
      400,
      'INVALID_REFERENCE',
      `Invalid reference specified. No value for ${ref} found in ${refId ?? ''}.`,
    );
  }
  let current: unknown = results.get(refId);
  for (const part of path) {
    const m = /^([^[\]]+)((?:\[\d+\])*)$/.exec(part);
    if (!m?.[1]) throw new ApiError(400, 'INVALID_REFERENCE', `Invalid reference specified: ${ref}`);
    current = (current as Record<string, unknown> | undefined)?.[m[1]];
    for (const idx of m[2]?.match(/\d+/g) ?? []) current = (current as unknown[] | undefined)?.[Number(idx)];
  }
  if (current === undefined) {
    throw new ApiError(400, 'INVALID_REFERENCE', `Invalid reference specified. No value for ${ref} found.`);
  }
  return current;
}
