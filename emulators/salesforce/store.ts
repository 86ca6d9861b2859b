/**
 * The Salesforce emulator's record store: records per sObject, per-record validation from
 * the describe, soft deletes, and SOQL. The HTTP layer (rest.ts, bulk.ts) turns its
 * results into wire shapes; this module knows nothing of HTTP.
 */
import type { ObjectDescribe } from './describe';

/** A stored value: dates and datetimes as Salesforce strings (`2024-05-20T20:49:32.000+0000`). */
export type SfValue = string | number | boolean | null;
/** A record: field API name (describe casing) → value; always has `Id`. */
export type SfRecord = Record<string, SfValue>;

/** One per-record error, as sObject Collections return it (`statusCode`, not `errorCode`). */
export interface RecordError {
  statusCode: string;
  message: string;
  fields: string[];
}

/** The result of one record of a create/update/upsert/delete call. */
export interface SaveResult {
  id: string | null;
  success: boolean;
  errors: RecordError[];
  /** Upsert only: whether the record was created (true) or updated (false). */
  created?: boolean;
}

/** SOQL error codes the store raises. */
export type SoqlErrorCode =
  'MALFORMED_QUERY' | 'INVALID_FIELD' | 'INVALID_TYPE' | 'INVALID_QUERY_FILTER_OPERATOR';

/** A query that Salesforce would reject as a whole (HTTP 400 `[{errorCode, message}]`). */
export class SoqlError extends Error {
  constructor(
    readonly errorCode: SoqlErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'SoqlError';
  }
}

/** The result of a SOQL query. */
export interface QueryResult {
  totalSize: number;
  /** Only the selected fields, in select order, WITHOUT `attributes` (the protocol layer adds them). */
  records: SfRecord[];
  /** The queried object's API name in describe casing. */
  objectName: string;
  /** Selected field API names in describe casing. */
  fields: string[];
  /** `SELECT COUNT() …`: `totalSize` is the count and `records` is empty. */
  isCount: boolean;
}

/** Options of a write call. */
export interface WriteOptions {
  /** Any failure fails every record with ALL_OR_NONE_OPERATION_ROLLED_BACK and applies nothing. */
  allOrNone?: boolean;
}

/** Which write a per-record fault hook is asked about. */
export type WriteOperation = 'create' | 'update' | 'upsert' | 'delete';

/** Hook for per-record faults (e.g. UNABLE_TO_LOCK_ROW), called per record before validation. */
export type RecordFault = (
  objectName: string,
  record: Record<string, unknown>,
  op: WriteOperation,
) => RecordError | undefined;

/** Options of {@link SalesforceStore}. */
export interface SalesforceStoreOptions {
  describes: ObjectDescribe[];
  /** Time source; @default () => new Date(). */
  clock?: () => Date;
  /** @default '00D5e000000RtRtEAK'-style org id */
  orgId?: string;
  /** Owner and creator of the records it stores. */
  userId?: string;
}

/** In-memory Salesforce data: see the module comment. */
export class SalesforceStore {
  constructor(readonly options: SalesforceStoreOptions) {}

  /** The describe of an object, case-insensitively. */
  describe(_objectName: string): ObjectDescribe | undefined {
    throw new Error('not implemented yet');
  }

  /** The describe of the object an id belongs to, by key prefix. */
  objectForId(_id: string): ObjectDescribe | undefined {
    throw new Error('not implemented yet');
  }

  /** Installs (or clears, with undefined) the per-record fault hook. */
  setRecordFault(_fn: RecordFault | undefined): void {
    throw new Error('not implemented yet');
  }

  create(_objectName: string, _records: Record<string, unknown>[], _opts?: WriteOptions): SaveResult[] {
    throw new Error('not implemented yet');
  }

  update(
    _objectName: string | undefined,
    _records: Record<string, unknown>[],
    _opts?: WriteOptions,
  ): SaveResult[] {
    throw new Error('not implemented yet');
  }

  upsert(
    _objectName: string,
    _externalIdField: string,
    _records: Record<string, unknown>[],
    _opts?: WriteOptions,
  ): SaveResult[] {
    throw new Error('not implemented yet');
  }

  delete(_ids: string[], _opts?: WriteOptions): SaveResult[] {
    throw new Error('not implemented yet');
  }

  query(_soql: string, _opts?: { includeDeleted?: boolean }): QueryResult {
    throw new Error('not implemented yet');
  }

  get(_id: string): SfRecord | undefined {
    throw new Error('not implemented yet');
  }

  seed(_objectName: string, _records: Record<string, unknown>[]): string[] {
    throw new Error('not implemented yet');
  }

  count(_objectName: string, _opts?: { includeDeleted?: boolean }): number {
    throw new Error('not implemented yet');
  }

  all(_objectName: string): Iterable<SfRecord> {
    throw new Error('not implemented yet');
  }
}
