/**
 * The Salesforce emulator's record store: records per sObject, per-record validation from
 * the describe, soft deletes, and SOQL. The HTTP layer (rest.ts, bulk.ts) turns its
 * results into wire shapes; this module knows nothing of HTTP.
 *
 * Records are kept compact for large volumes (1,000,000 leads): one plain object per record
 * with every describe field present in describe order (so all records of an object share
 * one V8 hidden class), dates and datetimes as strings, and one timestamp string shared by
 * all the records of a write call. Writes apply in memory, synchronously: a call either
 * applies its successful records or (with `allOrNone`) nothing. Several calls can be made one
 * transaction with {@link SalesforceStore.beginTransaction} (Composite with `allOrNone`): an
 * undo log keeps each touched record's values before its first change and each touched
 * object's record count, so a rollback restores exactly what was there (indexes included).
 *
 * Error codes and messages follow salesforce-wire.md ("Per-record errors"); the exact
 * wording of each message is Salesforce's where known, and marked "(unverified)" where the
 * emulator had to choose.
 */
import type { FieldDescribe, ObjectDescribe } from './describe';
import { isRequiredOnCreate } from './describe';
import { makeId, normalizeId, to18 } from './ids';
import { compileQuery } from './soql/evaluate';
import type { CompiledQuery } from './soql/evaluate';
import { SoqlError } from './soql/errors';
import { positioned } from './soql/lexer';
import { parseSoql } from './soql/parser';
import { coerceFieldValue, formatDatetime, toWholeSecond, type SfDecimal } from './values';

export { SoqlError } from './soql/errors';
export type { SoqlErrorCode } from './soql/errors';

/**
 * A stored value: dates and datetimes as Salesforce strings (`2024-05-20T20:49:32.000+0000`),
 * numbers as JS numbers or, when a double cannot hold all their digits, {@link SfDecimal}.
 */
export type SfValue = string | number | boolean | SfDecimal | null;
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

/**
 * A query result that does not copy records: `rows` holds references to the stored records
 * that match, in result order (after ORDER BY, OFFSET and LIMIT); `project` copies one of
 * them down to the selected fields. Iterating the cursor yields projected records lazily.
 * Rows are live: a record updated after the query shows its new values when projected.
 */
export interface QueryCursor extends Iterable<SfRecord> {
  totalSize: number;
  objectName: string;
  fields: string[];
  isCount: boolean;
  rows: readonly SfRecord[];
  project(record: SfRecord): SfRecord;
}

/** Options of a write call. */
export interface WriteOptions {
  /** Any failure fails every record with ALL_OR_NONE_OPERATION_ROLLED_BACK and applies nothing. */
  allOrNone?: boolean;
  /**
   * How a value of the wrong type (`"abc"` for a number) is reported: `'record'` (default) as
   * a per-record INVALID_TYPE_ON_FIELD_IN_RECORD error; `'request'` (REST JSON style) by
   * throwing {@link StoreRequestError} with JSON_PARSER_ERROR for the whole call; `'bulk'` as
   * the per-record text Bulk API result files show, `INVALID_FIELD` with "Failed to
   * deserialize field. Due to, 'abc' is not a valid value for the type xsd:double"
   * (unverified: Salesforce adds "at col N", which only the CSV reader knows).
   */
  typeErrors?: 'record' | 'request' | 'bulk';
}

/** Which write a per-record fault hook is asked about. */
export type WriteOperation = 'create' | 'update' | 'upsert' | 'delete';

/**
 * Hook for per-record faults (e.g. UNABLE_TO_LOCK_ROW), called per record before
 * validation with the record as the client sent it (for delete: `{ Id }`). Returning an
 * error fails that record with it.
 */
export type RecordFault = (
  objectName: string,
  record: Record<string, unknown>,
  op: WriteOperation,
) => RecordError | undefined;

/** Options of {@link SalesforceStore}. */
export interface SalesforceStoreOptions {
  describes: ObjectDescribe[];
  /**
   * Time source. @default () => new Date(), made strictly increasing: two write calls never
   * share a millisecond. A clock given here is used as is (a test may want equal stamps).
   */
  clock?: () => Date;
  /** The org id (18 characters) reported by the store. @default {@link DEFAULT_ORG_ID} */
  orgId?: string;
  /** Owner, creator and last modifier of the records. @default {@link DEFAULT_USER_ID} */
  userId?: string;
}

/** A whole write call rejected (REST: HTTP 400 `[{message, errorCode, fields}]`). */
export class StoreRequestError extends Error {
  constructor(
    readonly errorCode: string,
    message: string,
    readonly fields: string[] = [],
  ) {
    super(message);
    this.name = 'StoreRequestError';
  }
}

/**
 * A seeded record refused, naming it by its place in the records given (`seed Lead[3]: …`, or
 * `seed Lead[3].LeadScore__c: …` for one field's value); a CSV seed turns the place into the
 * file's line.
 */
export class SeedRecordError extends Error {
  constructor(
    readonly objectName: string,
    /** The record's index in the records given to `seed`. */
    readonly recordIndex: number,
    /** What is wrong, without the record's place. */
    readonly problem: string,
    /** The field whose value is refused, when one is. */
    readonly field?: string,
  ) {
    super(`seed ${objectName}[${recordIndex}]${field ? `.${field}` : ''}: ${problem}`);
    this.name = 'SeedRecordError';
  }
}

/** The emulator's org id: key prefix `00D`. */
export const DEFAULT_ORG_ID = to18('00D5e000000RtRt');
/** The emulator's user id: key prefix `005`. */
export const DEFAULT_USER_ID = to18('0055e000000RtAd');

/** Fields the platform maintains (never written by a client). */
const AUDIT_FIELDS = new Set([
  'Id',
  'IsDeleted',
  'CreatedDate',
  'CreatedById',
  'LastModifiedDate',
  'LastModifiedById',
  'SystemModstamp',
]);

/** The error of a record rolled back because another record of an allOrNone call failed. */
export const ROLLED_BACK: Readonly<RecordError> = {
  statusCode: 'ALL_OR_NONE_OPERATION_ROLLED_BACK',
  message: 'Record rolled back because not all records were valid and the request was using AllOrNone header',
  fields: [],
};

interface Table {
  describe: ObjectDescribe;
  fieldsByLower: Map<string, FieldDescribe>;
  fieldNames: string[];
  records: SfRecord[];
  byId: Map<string, SfRecord>;
  /** unique and external-id fields → normalised value → live (not deleted) records. */
  /** A single holder is stored bare (most keys of a unique index have one), several as an array. */
  indexes: Map<string, Map<string, SfRecord | SfRecord[]>>;
  indexedFields: FieldDescribe[];
  /** Every field set to null, in describe order, in V8's fast mode: see {@link fastTemplate}. */
  template: SfRecord;
  /** Values a created record gets for fields the client leaves out. */
  defaults: Map<string, SfValue>;
  counter: number;
  deleted: number;
}

/** An open transaction of the store: see {@link SalesforceStore.beginTransaction}. */
export interface StoreTransaction {
  /** Keeps every change made since the transaction began. */
  commit(): void;
  /** Undoes every change made since the transaction began: records, indexes, counters. */
  rollback(): void;
}

/** The undo log of the open transaction. */
interface UndoLog {
  /** Per object touched: its record count and deleted count before the first change. */
  readonly tables: Map<Table, { length: number; deleted: number }>;
  /** Stored records changed in place: a copy of their values before the first change. */
  readonly before: Map<SfRecord, SfRecord>;
}

/** A record that passed validation, waiting to be applied. */
interface PendingWrite {
  index: number;
  existing: SfRecord | null;
  changes: Map<string, SfValue>;
  upsert: boolean;
}

/** In-memory Salesforce data: see the module comment. */
export class SalesforceStore {
  /** The org id. */
  readonly orgId: string;
  /** The id of the user every record is owned, created and modified by. */
  readonly userId: string;
  private readonly tables = new Map<string, Table>();
  private readonly byPrefix = new Map<string, Table>();
  private readonly clock: () => Date;
  private readonly strictClock: boolean;
  private lastStamp = 0;
  private recordFault: RecordFault | undefined;
  private undo: UndoLog | undefined;

  constructor(readonly options: SalesforceStoreOptions) {
    this.clock = options.clock ?? (() => new Date());
    this.strictClock = options.clock === undefined;
    this.orgId = options.orgId ?? DEFAULT_ORG_ID;
    this.userId = options.userId ?? DEFAULT_USER_ID;
    for (const describe of options.describes) {
      const table = buildTable(describe, this.userId);
      this.tables.set(describe.name.toLowerCase(), table);
      this.byPrefix.set(describe.keyPrefix, table);
    }
  }

  /** The store's time: what stamps records, and what the rest of the emulator tells as "now". */
  now(): Date {
    return this.clock();
  }

  /** All object describes, in load order. */
  describes(): ObjectDescribe[] {
    return [...this.tables.values()].map((t) => t.describe);
  }

  /** The describe of an object, case-insensitively. */
  describe(objectName: string): ObjectDescribe | undefined {
    return this.tables.get(objectName.toLowerCase())?.describe;
  }

  /** The describe of the object an id (15 or 18 characters) belongs to, by key prefix. */
  objectForId(id: string): ObjectDescribe | undefined {
    return this.byPrefix.get(id.slice(0, 3))?.describe;
  }

  /** Installs (or clears, with undefined) the per-record fault hook. */
  setRecordFault(fn: RecordFault | undefined): void {
    this.recordFault = fn;
  }

  /**
   * Begins a transaction over the calls that follow (creates, updates, upserts, deletes; not
   * seeding): `rollback()` undoes them all (ids handed out stay used), `commit()` keeps them. One at a time: the emulator
   * answers requests one after the other, and a Composite request runs its subrequests
   * synchronously, so nothing else writes meanwhile.
   * @throws Error when a transaction is open already
   */
  beginTransaction(): StoreTransaction {
    if (this.undo) throw new Error('a store transaction is open already');
    const log: UndoLog = { tables: new Map(), before: new Map() };
    this.undo = log;
    const close = (): void => {
      if (this.undo !== log) throw new Error('this store transaction is closed');
      this.undo = undefined;
    };
    return {
      commit: close,
      rollback: () => {
        close();
        this.undoAll(log);
      },
    };
  }

  /** Whether a transaction ({@link beginTransaction}) is open. */
  get inTransaction(): boolean {
    return this.undo !== undefined;
  }

  /**
   * Creates records. Per record: fault hook, then INVALID_FIELD (unknown field, or an `Id`),
   * INVALID_FIELD_FOR_INSERT_UPDATE, value checks (type, length, picklist, range, email, id),
   * REQUIRED_FIELD_MISSING, DUPLICATE_VALUE (unique fields, also within the call).
   * @throws StoreRequestError INVALID_TYPE for an unknown object; JSON_PARSER_ERROR with `typeErrors: 'request'`.
   */
  create(objectName: string, records: Record<string, unknown>[], opts: WriteOptions = {}): SaveResult[] {
    const table = this.requireTable(objectName);
    const results: SaveResult[] = [];
    const pending: PendingWrite[] = [];
    const batch = new BatchUniqueness();
    records.forEach((input, index) => {
      const errors = this.validateCreate(table, input, opts, pending, batch, index);
      results.push(errors ? failure(null, errors) : { id: null, success: true, errors: [] });
    });
    return this.finish(table, results, pending, opts, false);
  }

  /**
   * Updates records by `Id` (or `id`, as Collections send it). With `objectName` undefined
   * the object comes from each id's key prefix. Per record: MISSING_ARGUMENT (no id),
   * MALFORMED_ID, INVALID_CROSS_REFERENCE_KEY (unknown id), ENTITY_IS_DELETED, then the
   * field checks of {@link create} for the fields given (REQUIRED_FIELD_MISSING when one
   * that may not be null is set to null).
   */
  update(
    objectName: string | undefined,
    records: Record<string, unknown>[],
    opts: WriteOptions = {},
  ): SaveResult[] {
    const fixed = objectName === undefined ? undefined : this.requireTable(objectName);
    const results: SaveResult[] = [];
    const pendingByTable = new Map<Table, PendingWrite[]>();
    const batch = new BatchUniqueness();
    records.forEach((input, index) => {
      const rawId = input.Id ?? input.id;
      const table =
        fixed ?? (typeof rawId === 'string' ? this.byPrefix.get(rawId.slice(0, 3)) : undefined) ?? undefined;
      const label = table?.describe.label ?? 'Record';
      const fault = this.recordFault?.(table?.describe.name ?? objectName ?? '', input, 'update');
      if (fault) {
        results.push(failure(typeof rawId === 'string' ? (normalizeId(rawId) ?? null) : null, [fault]));
        return;
      }
      const located = this.locate(table, rawId, label, 'update');
      if ('error' in located) {
        results.push(failure(null, [located.error]));
        return;
      }
      const { table: target, record } = located;
      const fields = { ...input };
      delete fields.Id;
      delete fields.id;
      const checked = this.validateFields(target, fields, 'update', opts);
      if ('errors' in checked) {
        results.push(failure(record.Id as string, checked.errors));
        return;
      }
      const dup = batch.check(target, checked.changes, record);
      if (dup) {
        results.push(failure(record.Id as string, [dup]));
        return;
      }
      const list = pendingByTable.get(target) ?? [];
      list.push({ index, existing: record, changes: checked.changes, upsert: false });
      pendingByTable.set(target, list);
      results.push({ id: record.Id as string, success: true, errors: [] });
    });
    const allPending = [...pendingByTable.entries()];
    if (opts.allOrNone && results.some((r) => !r.success)) return rollBack(results, false);
    for (const [table, pending] of allPending)
      this.finish(table, results, pending, { ...opts, allOrNone: false }, false);
    return results;
  }

  /**
   * Upserts records by an external-id field (or `Id`): no match creates (`created: true`),
   * one match updates (`created: false`), several fail with DUPLICATE_EXTERNAL_ID. The same
   * key twice in one call fails both with DUPLICATE_VALUE.
   * @throws StoreRequestError NOT_FOUND when the field does not exist, INVALID_FIELD when it
   *   is neither an external id nor an id lookup field.
   */
  upsert(
    objectName: string,
    externalIdField: string,
    records: Record<string, unknown>[],
    opts: WriteOptions = {},
  ): SaveResult[] {
    const table = this.requireTable(objectName);
    const keyField = this.requireExternalIdField(table, externalIdField);
    const results: SaveResult[] = [];
    const pending: PendingWrite[] = [];
    const batch = new BatchUniqueness();
    const keyOf = (input: Record<string, unknown>): string | null => {
      const raw = keyField.name === 'Id' ? (input.Id ?? input.id) : valueByName(table, input, keyField.name);
      if (raw === undefined || raw === null || raw === '') return null;
      const coerced = coerceFieldValue(keyField, raw);
      return coerced.ok && coerced.value !== null ? indexKey(keyField, coerced.value) : String(raw);
    };
    const keyCounts = new Map<string, number>();
    for (const input of records) {
      const key = keyOf(input);
      if (key !== null) keyCounts.set(key, (keyCounts.get(key) ?? 0) + 1);
    }
    records.forEach((input, index) => {
      const fault = this.recordFault?.(table.describe.name, input, 'upsert');
      if (fault) {
        results.push(failure(null, [fault], false));
        return;
      }
      const key = keyOf(input);
      if (key === null) {
        // (unverified wording)
        results.push(
          failure(
            null,
            [
              {
                statusCode: 'MISSING_ARGUMENT',
                message: `${keyField.name} not specified`,
                fields: [keyField.name],
              },
            ],
            false,
          ),
        );
        return;
      }
      if ((keyCounts.get(key) ?? 0) > 1) {
        const shown = String(
          keyField.name === 'Id' ? (input.Id ?? input.id) : valueByName(table, input, keyField.name),
        );
        // (unverified wording)
        results.push(
          failure(
            null,
            [
              {
                statusCode: 'DUPLICATE_VALUE',
                message: `Duplicate external id specified: ${shown}`,
                fields: [keyField.name],
              },
            ],
            false,
          ),
        );
        return;
      }
      const matches = this.matchKey(table, keyField, key);
      if (matches.length > 1) {
        results.push(
          failure(
            null,
            [
              {
                statusCode: 'DUPLICATE_EXTERNAL_ID',
                message: `${keyField.label}: more than one record found for external id field: [${matches.map((r) => r.Id).join(', ')}]`,
                fields: [keyField.name],
              },
            ],
            false,
          ),
        );
        return;
      }
      const existing = matches[0];
      if (!existing) {
        if (keyField.name === 'Id') {
          results.push(failure(null, [notFoundError()], false));
          return;
        }
        const errors = this.validateCreate(table, input, opts, pending, batch, index, true);
        results.push(
          errors ? failure(null, errors, false) : { id: null, success: true, errors: [], created: true },
        );
        return;
      }
      const converted = convertedLeadError(table, existing);
      if (converted) {
        results.push(failure(existing.Id as string, [converted], false));
        return;
      }
      const withoutId = { ...input };
      delete withoutId.Id;
      delete withoutId.id;
      const checked = this.validateFields(table, withoutId, 'update', opts);
      if ('errors' in checked) {
        results.push(failure(existing.Id as string, checked.errors, false));
        return;
      }
      const dup = batch.check(table, checked.changes, existing);
      if (dup) {
        results.push(failure(existing.Id as string, [dup], false));
        return;
      }
      pending.push({ index, existing, changes: checked.changes, upsert: true });
      results.push({ id: existing.Id as string, success: true, errors: [], created: false });
    });
    return this.finish(table, results, pending, opts, true);
  }

  /** Records whose external-id (or id lookup) field equals `value`, not deleted (for REST's 300 MULTIPLE_CHOICES). */
  findByExternalId(objectName: string, fieldName: string, value: string): SfRecord[] {
    const table = this.requireTable(objectName);
    const field = this.requireExternalIdField(table, fieldName);
    const coerced = coerceFieldValue(field, value);
    if (!coerced.ok || coerced.value === null) return [];
    return this.matchKey(table, field, indexKey(field, coerced.value));
  }

  /**
   * Soft-deletes records: `IsDeleted` becomes true, `SystemModstamp` moves, the record stays
   * visible to queryAll. Per id: MALFORMED_ID, INVALID_CROSS_REFERENCE_KEY (unknown),
   * ENTITY_IS_DELETED (already deleted).
   */
  delete(ids: string[], opts: WriteOptions = {}): SaveResult[] {
    const results: SaveResult[] = [];
    const targets: SfRecord[] = [];
    for (const rawId of ids) {
      const table = this.byPrefix.get(rawId.slice(0, 3));
      const fault = this.recordFault?.(table?.describe.name ?? '', { Id: rawId }, 'delete');
      if (fault) {
        results.push(failure(normalizeId(rawId) ?? rawId, [fault]));
        continue;
      }
      const located = this.locate(table, rawId, table?.describe.label ?? 'Record', 'delete');
      if ('error' in located) {
        results.push(failure(normalizeId(rawId) ?? rawId, [located.error]));
        continue;
      }
      if (targets.includes(located.record)) {
        // The same id twice in one call (unverified wording).
        results.push(
          failure(located.record.Id as string, [
            { statusCode: 'INVALID_ID_FIELD', message: 'duplicate id in list', fields: [] },
          ]),
        );
        continue;
      }
      targets.push(located.record);
      results.push({ id: located.record.Id as string, success: true, errors: [] });
    }
    if (opts.allOrNone && results.some((r) => !r.success)) return rollBack(results, false);
    if (targets.length === 0) return results;
    const stamp = this.stamp();
    for (const record of targets) {
      const table = this.byPrefix.get((record.Id as string).slice(0, 3)) as Table;
      this.remember(table, record);
      record.IsDeleted = true;
      touch(record, stamp, this.userId);
      table.deleted += 1;
      for (const field of table.indexedFields) unindex(table, field, record);
    }
    return results;
  }

  /**
   * Archives activities (Task, Event) as Salesforce's archival process does with those older than
   * a year: `IsArchived` becomes true and the record leaves `query`'s results, staying in
   * `queryAll`'s. `SystemModstamp` is left as it was (whether the process moves it is not
   * documented: left, it is the case an incremental read cannot see). Not an API call.
   * @throws Error for an object without `IsArchived`, or an id that names no live record of it.
   */
  archive(objectName: string, ids: readonly string[]): void {
    const table = this.requireTable(objectName);
    if (!table.fieldsByLower.has('isarchived'))
      throw new Error(`${table.describe.name} has no IsArchived field: only activities are archived`);
    for (const rawId of ids) {
      const record = table.byId.get(normalizeId(rawId) ?? rawId);
      if (!record || record.IsDeleted === true)
        throw new Error(`archive: no live ${table.describe.name} record ${rawId}`);
      this.remember(table, record);
      record.IsArchived = true;
    }
  }

  /**
   * Runs a SOQL query and copies the selected fields of each result record. Deleted records and
   * archived activities only with `includeDeleted` (queryAll).
   * @throws SoqlError MALFORMED_QUERY, INVALID_FIELD, INVALID_TYPE, INVALID_QUERY_FILTER_OPERATOR.
   */
  query(soql: string, opts: { includeDeleted?: boolean } = {}): QueryResult {
    const cursor = this.queryIterator(soql, opts);
    return {
      totalSize: cursor.totalSize,
      records: cursor.rows.map((r) => cursor.project(r)),
      objectName: cursor.objectName,
      fields: cursor.fields,
      isCount: cursor.isCount,
    };
  }

  /**
   * Like {@link query} but without copying: the matching stored records (as references) and
   * a projection function. For large results (Bulk query of 1,000,000 leads), project page by page.
   */
  queryIterator(soql: string, opts: { includeDeleted?: boolean } = {}): QueryCursor {
    const parsed = parseSoql(soql);
    const table = this.tables.get(parsed.object.name.toLowerCase());
    if (!table) {
      throw new SoqlError(
        'INVALID_TYPE',
        positioned(
          soql,
          parsed.object.offset,
          `sObject type '${parsed.object.name}' is not supported. If you are attempting to use a custom object, be sure ` +
            `to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.`,
        ),
      );
    }
    const compiled = compileQuery(parsed, table.describe, this.clock());
    const rows = selectRows(table, compiled, opts.includeDeleted === true);
    const names = compiled.fields.map((f) => f.name);
    const template = fastTemplate(names);
    const project = (record: SfRecord): SfRecord => {
      const out: SfRecord = { ...template };
      for (const name of names) out[name] = record[name] ?? null;
      return out;
    };
    const visible = compiled.isCount ? [] : rows;
    return {
      totalSize: rows.length,
      objectName: table.describe.name,
      fields: names,
      isCount: compiled.isCount,
      rows: visible,
      project,
      *[Symbol.iterator]() {
        for (const row of visible) yield project(row);
      },
    };
  }

  /** The stored record with this id (15 or 18 characters), deleted or not; treat it as read-only. */
  get(id: string): SfRecord | undefined {
    const normalized = normalizeId(id);
    if (!normalized) return undefined;
    return this.byPrefix.get(normalized.slice(0, 3))?.byId.get(normalized);
  }

  /**
   * Loads records without the API's checks or counting: values are converted to their stored
   * types, `Id` and system fields are filled unless given (a seed may set `CreatedDate`,
   * `SystemModstamp`, `IsDeleted` or its own ids), defaults are applied. Returns the ids.
   * @throws Error naming the record and field when a value cannot be stored, a field is
   *   unknown, or a unique value repeats.
   */
  seed(objectName: string, records: Record<string, unknown>[]): string[] {
    const table = this.requireTable(objectName);
    const stamp = this.stamp();
    const ids: string[] = [];
    for (let i = 0; i < records.length; i += 1) {
      const input = records[i] as Record<string, unknown>;
      const values = new Map<string, SfValue>();
      for (const key of Object.keys(input)) {
        if (key === 'attributes') continue;
        const field = table.fieldsByLower.get(key.toLowerCase());
        if (!field)
          throw new SeedRecordError(table.describe.name, i, `no field '${key}' on ${table.describe.name}`);
        const coerced = coerceFieldValue(field, input[key]);
        if (!coerced.ok)
          throw new SeedRecordError(
            table.describe.name,
            i,
            `${coerced.problem.code}: ${coerced.problem.message}`,
            field.name,
          );
        values.set(field.name, coerced.value);
      }
      let id = values.get('Id');
      if (typeof id === 'string') {
        if (!id.startsWith(table.describe.keyPrefix))
          throw new SeedRecordError(
            table.describe.name,
            i,
            `Id ${id} does not start with key prefix ${table.describe.keyPrefix}`,
          );
        if (table.byId.has(id)) throw new SeedRecordError(table.describe.name, i, `duplicate Id ${id}`);
      } else {
        id = this.nextId(table);
      }
      for (const field of table.indexedFields) {
        const value = values.get(field.name);
        if (!field.unique || value === undefined || value === null || values.get('IsDeleted') === true)
          continue;
        if (holdersOf(table, field, indexKey(field, value)).length > 0) {
          throw new SeedRecordError(
            table.describe.name,
            i,
            `duplicate value ${String(value)} for unique field ${field.name}`,
          );
        }
      }
      this.materialize(table, id, values, stamp, true);
      ids.push(id);
    }
    return ids;
  }

  /**
   * Converts leads, as Salesforce's `convertLead` does to the Lead itself: `IsConverted` true,
   * `Status` the converted status given (the org's "converted" status; the describe's picklist
   * has `Closed - Converted`), the modification stamps moved. The Account, Contact and
   * Opportunity a real conversion makes are not, nor its `Converted…` fields, which the
   * emulator's Lead describe does not have. Once converted, an update
   * of the lead (by Id, or matched by an upsert's key) is refused with
   * `CANNOT_UPDATE_CONVERTED_LEAD`. For tests and seeds: the API has no REST call for it.
   * @throws Error naming an id that is not a live, unconverted Lead.
   */
  convertLeads(ids: readonly string[], convertedStatus = 'Closed - Converted'): void {
    const table = this.requireTable('Lead');
    const records = ids.map((raw) => {
      const record = table.byId.get(normalizeId(raw) ?? '');
      if (!record || record.IsDeleted === true || record.IsConverted === true)
        throw new Error(`convertLeads: ${raw} is not a live Lead that is not converted yet`);
      return record;
    });
    const stamp = this.stamp();
    for (const record of records) {
      record.IsConverted = true;
      record.Status = convertedStatus;
      touch(record, stamp, this.userId);
    }
  }

  /** Number of records of an object (deleted ones only with `includeDeleted`). */
  count(objectName: string, opts: { includeDeleted?: boolean } = {}): number {
    const table = this.requireTable(objectName);
    return opts.includeDeleted ? table.records.length : table.records.length - table.deleted;
  }

  /** Every stored record of an object, deleted ones included, in creation order; read-only. */
  all(objectName: string): Iterable<SfRecord> {
    return this.requireTable(objectName).records;
  }

  // ---------------------------------------------------------------------------------------

  private requireTable(objectName: string): Table {
    const table = this.tables.get(objectName.toLowerCase());
    if (!table) {
      throw new StoreRequestError(
        'INVALID_TYPE',
        `sObject type '${objectName}' is not supported. If you are attempting to use a custom object, be sure to append ` +
          `the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.`,
      );
    }
    return table;
  }

  private requireExternalIdField(table: Table, name: string): FieldDescribe {
    const field = table.fieldsByLower.get(name.toLowerCase());
    if (!field) {
      throw new StoreRequestError(
        'NOT_FOUND',
        `Provided external ID field does not exist or is not accessible: ${name}`,
      );
    }
    if (field.name !== 'Id' && !field.externalId && !field.idLookup) {
      throw new StoreRequestError(
        'INVALID_FIELD',
        `Field name provided, ${field.name} is not an External ID or indexed field for ${table.describe.name}`,
        [field.name],
      );
    }
    return field;
  }

  private nextId(table: Table): string {
    let id: string;
    do {
      table.counter += 1;
      id = makeId(table.describe.keyPrefix, table.counter);
    } while (table.byId.has(id));
    return id;
  }

  /** In a transaction: notes an object's counts before its first change. */
  private rememberTable(table: Table): void {
    if (!this.undo || this.undo.tables.has(table)) return;
    // The id counter is not restored: like Salesforce, the emulator never hands out an id twice.
    this.undo.tables.set(table, { length: table.records.length, deleted: table.deleted });
  }

  /** In a transaction: keeps a stored record's values before its first change. */
  private remember(table: Table, record: SfRecord): void {
    if (!this.undo) return;
    this.rememberTable(table);
    if (!this.undo.before.has(record)) this.undo.before.set(record, { ...record });
  }

  /** Rolls a transaction back: changed records get their values (and index entries) back, created ones go. */
  private undoAll(log: UndoLog): void {
    for (const [record, saved] of log.before) {
      const table = this.byPrefix.get((record.Id as string).slice(0, 3)) as Table;
      if (record.IsDeleted !== true) for (const field of table.indexedFields) unindex(table, field, record);
      Object.assign(record, saved);
      if (record.IsDeleted !== true) for (const field of table.indexedFields) index(table, field, record);
    }
    for (const [table, mark] of log.tables) {
      for (const record of table.records.splice(mark.length)) {
        table.byId.delete(record.Id as string);
        if (record.IsDeleted !== true) for (const field of table.indexedFields) unindex(table, field, record);
      }
      table.deleted = mark.deleted;
    }
  }

  /** The write timestamp: one per call; strictly increasing with the default clock. */
  private stamp(): string {
    let ms = this.clock().getTime();
    if (this.strictClock && ms <= this.lastStamp) ms = this.lastStamp + 1;
    this.lastStamp = Math.max(this.lastStamp, ms);
    return formatDatetime(ms);
  }

  private locate(
    table: Table | undefined,
    rawId: unknown,
    label: string,
    op: 'update' | 'delete',
  ): { table: Table; record: SfRecord } | { error: RecordError } {
    if (rawId === undefined || rawId === null || rawId === '') {
      return {
        error: { statusCode: 'MISSING_ARGUMENT', message: `Id not specified in an ${op} call`, fields: [] },
      };
    }
    const id = typeof rawId === 'string' ? normalizeId(rawId) : undefined;
    if (!id || !table || !id.startsWith(table.describe.keyPrefix)) {
      if (id && !table) return { error: notFoundError() };
      // "<Object> ID: id value of incorrect type: <value>" is what Salesforce says for an id of
      // the wrong shape or object.
      return {
        error: {
          statusCode: 'MALFORMED_ID',
          message: `${label} ID: id value of incorrect type: ${String(rawId)}`,
          fields: ['Id'],
        },
      };
    }
    const record = table.byId.get(id);
    if (!record) return { error: notFoundError() };
    if (record.IsDeleted === true)
      return { error: { statusCode: 'ENTITY_IS_DELETED', message: 'entity is deleted', fields: [] } };
    if (op === 'update') {
      const converted = convertedLeadError(table, record);
      if (converted) return { error: converted };
    }
    return { table, record };
  }

  private validateCreate(
    table: Table,
    input: Record<string, unknown>,
    opts: WriteOptions,
    pending: PendingWrite[],
    batch: BatchUniqueness,
    index: number,
    upsert = false,
  ): RecordError[] | undefined {
    // An upsert has asked the fault hook already, before matching.
    const fault = upsert ? undefined : this.recordFault?.(table.describe.name, input, 'create');
    if (fault) return [fault];
    const hasId = Object.keys(input).some((k) => k === 'Id' || k === 'id');
    if (hasId && !upsert) {
      const value = input.Id ?? input.id;
      if (value !== null && value !== undefined && value !== '') {
        return [
          {
            statusCode: 'INVALID_FIELD_FOR_INSERT_UPDATE',
            message: 'cannot specify Id in an insert call',
            fields: ['Id'],
          },
        ];
      }
    }
    const withoutId = { ...input };
    delete withoutId.Id;
    delete withoutId.id;
    const checked = this.validateFields(table, withoutId, 'create', opts);
    if ('errors' in checked) return checked.errors;
    const dup = batch.check(table, checked.changes, null);
    if (dup) return [dup];
    pending.push({ index, existing: null, changes: checked.changes, upsert });
    return undefined;
  }

  /** Field-level checks shared by create and update; returns the stored-form changes. */
  private validateFields(
    table: Table,
    input: Record<string, unknown>,
    op: 'create' | 'update',
    opts: WriteOptions,
  ): { changes: Map<string, SfValue> } | { errors: RecordError[] } {
    const errors: RecordError[] = [];
    const notWritable: string[] = [];
    const given: [FieldDescribe, unknown][] = [];
    for (const key of Object.keys(input)) {
      if (key === 'attributes') continue;
      const field = table.fieldsByLower.get(key.toLowerCase());
      if (!field) {
        errors.push({
          statusCode: 'INVALID_FIELD',
          message: `No such column '${key}' on sobject of type ${table.describe.name}`,
          fields: [],
        });
        continue;
      }
      const writable = op === 'create' ? field.createable : field.updateable;
      if (!writable || AUDIT_FIELDS.has(field.name)) notWritable.push(field.name);
      else given.push([field, input[key]]);
    }
    if (notWritable.length > 0) {
      errors.push({
        statusCode: 'INVALID_FIELD_FOR_INSERT_UPDATE',
        message:
          `Unable to create/update fields: ${notWritable.join(', ')}. Please check the security settings of this field ` +
          `and verify that it is read/write for your profile or permission set.`,
        fields: notWritable,
      });
    }
    if (errors.length > 0) return { errors };
    const changes = new Map<string, SfValue>();
    const nulledRequired: string[] = [];
    for (const [field, raw] of given) {
      const coerced = coerceFieldValue(field, raw);
      if (!coerced.ok) {
        if (coerced.typeMismatch && opts.typeErrors === 'request') {
          // (unverified wording) modelled on the REST API's Jackson message.
          throw new StoreRequestError(
            'JSON_PARSER_ERROR',
            `Cannot deserialize instance of ${field.soapType.replace(/^\w+:/, '')} from VALUE_STRING value ${String(raw)} or request may be missing a required field`,
            [field.name],
          );
        }
        if (coerced.typeMismatch && opts.typeErrors === 'bulk') {
          errors.push({
            statusCode: 'INVALID_FIELD',
            message: `Failed to deserialize field. Due to, '${String(raw)}' is not a valid value for the type ${field.soapType}`,
            fields: [field.name],
          });
          continue;
        }
        errors.push({
          statusCode: coerced.problem.code,
          message: coerced.problem.message,
          fields: [field.name],
        });
        continue;
      }
      const badReference =
        field.type === 'reference' && typeof coerced.value === 'string'
          ? this.referenceProblem(field, coerced.value)
          : undefined;
      if (badReference) {
        errors.push(badReference);
        continue;
      }
      if (coerced.value === null && !field.nillable && op === 'update') nulledRequired.push(field.name);
      if (coerced.value === null && op === 'create' && table.defaults.has(field.name)) continue; // default applies
      changes.set(field.name, field.type === 'datetime' ? toWholeSecond(coerced.value) : coerced.value);
    }
    const missing =
      op === 'create'
        ? table.describe.fields
            .filter(
              (f) =>
                isRequiredOnCreate(f) && !AUDIT_FIELDS.has(f.name) && (changes.get(f.name) ?? null) === null,
            )
            .map((f) => f.name)
        : nulledRequired;
    if (missing.length > 0) {
      errors.push({
        statusCode: 'REQUIRED_FIELD_MISSING',
        message: `Required fields are missing: [${missing.join(', ')}]`,
        fields: missing,
      });
    }
    return errors.length > 0 ? { errors } : { changes };
  }

  /**
   * What Salesforce refuses in a lookup's value (a well-formed Id; a malformed one is MALFORMED_ID
   * already): an Id of an object the field does not point to, FIELD_INTEGRITY_EXCEPTION ("<label>:
   * id value of incorrect type"); an Id of the right object that no record has,
   * INVALID_CROSS_REFERENCE_KEY; one of a record in the recycle bin, ENTITY_IS_DELETED. Only
   * what the emulator can tell: a field pointing to an object it does not hold (Group) is not
   * checked against that object. The user it signs every caller in as ({@link userId}, the owner
   * and creator of every record) is a User of the org whether or not a User record was seeded.
   */
  private referenceProblem(field: FieldDescribe, id: string): RecordError | undefined {
    const targets = (field.referenceTo ?? []).map((name) => this.tables.get(name.toLowerCase()));
    if (targets.length === 0) return undefined;
    const owner = this.byPrefix.get(id.slice(0, 3));
    const pointsTo = owner !== undefined && targets.includes(owner);
    if (!pointsTo) {
      // An object the field does not name, or one the emulator cannot rule out (an unknown prefix
      // while the field also names objects it does not hold).
      if (owner === undefined && targets.some((t) => t === undefined)) return undefined;
      return {
        statusCode: 'FIELD_INTEGRITY_EXCEPTION',
        message: `${field.label}: id value of incorrect type: ${id}`,
        fields: [field.name],
      };
    }
    if (id === this.userId && owner.describe.name.toLowerCase() === 'user') return undefined;
    const record = owner.byId.get(id);
    if (!record)
      return {
        statusCode: 'INVALID_CROSS_REFERENCE_KEY',
        message: 'invalid cross reference id',
        fields: [field.name],
      };
    if (record.IsDeleted === true)
      return { statusCode: 'ENTITY_IS_DELETED', message: 'entity is deleted', fields: [field.name] };
    return undefined;
  }

  /** Records live under `key` in the index of `field` (or by id for `Id`). */
  private matchKey(table: Table, field: FieldDescribe, key: string): SfRecord[] {
    if (field.name === 'Id') {
      const record = table.byId.get(key);
      return record && record.IsDeleted !== true ? [record] : [];
    }
    if (table.indexes.has(field.name)) return [...holdersOf(table, field, key)];
    // An id-lookup field without an index (e.g. Email): scan.
    const matches: SfRecord[] = [];
    for (const record of table.records) {
      const v = record[field.name];
      if (record.IsDeleted !== true && v !== null && v !== undefined && indexKey(field, v) === key)
        matches.push(record);
    }
    return matches;
  }

  /** Applies pending writes in call order unless allOrNone failed; fills ids into results. */
  private finish(
    table: Table,
    results: SaveResult[],
    pending: PendingWrite[],
    opts: WriteOptions,
    upsert: boolean,
  ): SaveResult[] {
    if (opts.allOrNone && results.some((r) => !r.success)) return rollBack(results, upsert);
    if (pending.length === 0) return results;
    const stamp = this.stamp();
    this.rememberTable(table);
    for (const write of pending) {
      const result = results[write.index] as SaveResult;
      if (write.existing) {
        const record = write.existing;
        this.remember(table, record);
        for (const field of table.indexedFields)
          if (write.changes.has(field.name)) unindex(table, field, record);
        for (const [name, value] of write.changes) record[name] = value;
        for (const field of table.indexedFields)
          if (write.changes.has(field.name)) index(table, field, record);
        touch(record, stamp, this.userId);
        result.id = record.Id as string;
      } else {
        const id = this.nextId(table);
        this.materialize(table, id, write.changes, stamp, false);
        result.id = id;
      }
    }
    return results;
  }

  /** Builds and stores a record with every field in describe order (one hidden class per object). */
  private materialize(
    table: Table,
    id: string,
    values: Map<string, SfValue>,
    stamp: string,
    seeding: boolean,
  ): SfRecord {
    const record: SfRecord = { ...table.template };
    for (const name of table.fieldNames) {
      let value: SfValue | undefined = values.get(name);
      if (value === undefined) {
        switch (name) {
          case 'Id':
            value = id;
            break;
          case 'IsDeleted':
            value = false;
            break;
          case 'CreatedDate':
          case 'LastModifiedDate':
          case 'SystemModstamp':
            value =
              (seeding ? (values.get('LastModifiedDate') ?? values.get('CreatedDate')) : undefined) ?? stamp;
            break;
          case 'CreatedById':
          case 'LastModifiedById':
            value = this.userId;
            break;
          default:
            value = table.defaults.get(name) ?? null;
        }
      }
      record[name] = value;
    }
    record.Id = id;
    table.records.push(record);
    table.byId.set(id, record);
    if (record.IsDeleted === true) table.deleted += 1;
    else for (const field of table.indexedFields) index(table, field, record);
    return record;
  }
}

function buildTable(describe: ObjectDescribe, userId: string): Table {
  const fieldsByLower = new Map(describe.fields.map((f) => [f.name.toLowerCase(), f]));
  const indexedFields = describe.fields.filter((f) => (f.unique || f.externalId) && f.name !== 'Id');
  const defaults = new Map<string, SfValue>();
  for (const field of describe.fields) {
    if (AUDIT_FIELDS.has(field.name)) continue;
    const picklistDefault = field.picklistValues.find((p) => p.defaultValue && p.active);
    if (picklistDefault) defaults.set(field.name, picklistDefault.value);
    else if (field.name === 'OwnerId') defaults.set(field.name, userId);
    else if (field.defaultValue !== null && field.defaultValue !== undefined) {
      const coerced = coerceFieldValue(field, field.defaultValue);
      if (coerced.ok) defaults.set(field.name, coerced.value);
    } else if (field.type === 'boolean') defaults.set(field.name, false);
  }
  const fieldNames = describe.fields.map((f) => f.name);
  return {
    describe,
    fieldsByLower,
    fieldNames,
    template: fastTemplate(fieldNames),
    records: [],
    byId: new Map(),
    indexes: new Map(indexedFields.map((f) => [f.name, new Map<string, SfRecord | SfRecord[]>()])),
    indexedFields,
    defaults,
    counter: 0,
    deleted: 0,
  };
}

/**
 * An object with the given keys, all null, in V8's fast (hidden class) mode. Objects built
 * by assigning computed keys one by one fall into dictionary mode past about a dozen
 * properties, which costs ~2 KB per lead instead of a few hundred bytes; JSON.parse builds
 * fast-mode objects, and a spread copy of one keeps its hidden class.
 */
function fastTemplate(keys: string[]): SfRecord {
  const json = `{${keys.map((k) => `${JSON.stringify(k)}:null`).join(',')}}`;
  return JSON.parse(json) as SfRecord;
}

/** Number field types: their unique and external-ID values match by the nearest double. */
const NUMBER_TYPES = new Set(['int', 'double', 'currency', 'percent']);

/**
 * Index key of a value: text compares case-insensitively unless the field is case-sensitive; a
 * number as its nearest double, as SOQL compares it (Salesforce holds number fields as doubles,
 * Help 000385889: two values that are one double name one record).
 */
function indexKey(field: FieldDescribe, value: SfValue): string {
  const text = String(value);
  if (NUMBER_TYPES.has(field.type)) return String(Number(text));
  return field.caseSensitive || field.type === 'id' || field.type === 'reference' ? text : text.toLowerCase();
}

/** The live records under `key` in the index of `field`. */
function holdersOf(table: Table, field: FieldDescribe, key: string): readonly SfRecord[] {
  const held = table.indexes.get(field.name)?.get(key);
  if (held === undefined) return [];
  return Array.isArray(held) ? held : [held];
}

function index(table: Table, field: FieldDescribe, record: SfRecord): void {
  const value = record[field.name];
  if (value === null || value === undefined) return;
  const map = table.indexes.get(field.name) as Map<string, SfRecord | SfRecord[]>;
  const key = indexKey(field, value);
  const held = map.get(key);
  if (held === undefined) map.set(key, record);
  else if (Array.isArray(held)) held.push(record);
  else map.set(key, [held, record]);
}

function unindex(table: Table, field: FieldDescribe, record: SfRecord): void {
  const value = record[field.name];
  if (value === null || value === undefined) return;
  const map = table.indexes.get(field.name) as Map<string, SfRecord | SfRecord[]>;
  const key = indexKey(field, value);
  const held = map.get(key);
  if (held === undefined) return;
  if (!Array.isArray(held)) {
    if (held === record) map.delete(key);
    return;
  }
  const rest = held.filter((r) => r !== record);
  if (rest.length === 0) map.delete(key);
  else map.set(key, rest.length === 1 ? (rest[0] as SfRecord) : rest);
}

function touch(record: SfRecord, stamp: string, userId: string): void {
  if ('LastModifiedDate' in record) record.LastModifiedDate = stamp;
  if ('SystemModstamp' in record) record.SystemModstamp = stamp;
  if ('LastModifiedById' in record) record.LastModifiedById = userId;
}

function valueByName(table: Table, input: Record<string, unknown>, fieldName: string): unknown {
  for (const key of Object.keys(input)) {
    if (table.fieldsByLower.get(key.toLowerCase())?.name === fieldName) return input[key];
  }
  return undefined;
}

/**
 * A converted Lead is read-only: Salesforce refuses to update it, by Id or matched by an upsert's
 * key, with this (as its API answers, e.g. `CANNOT_UPDATE_CONVERTED_LEAD, cannot reference
 * converted lead: []`). An org may grant "View and Edit Converted Leads", which the emulator
 * does not model.
 */
function convertedLeadError(table: Table, record: SfRecord): RecordError | undefined {
  if (table.describe.name !== 'Lead' || record.IsConverted !== true) return undefined;
  return {
    statusCode: 'CANNOT_UPDATE_CONVERTED_LEAD',
    message: 'cannot reference converted lead',
    fields: [],
  };
}

function notFoundError(): RecordError {
  // What Salesforce answers for a well-formed id that matches no record (unverified for
  // every operation: some return ENTITY_IS_DELETED instead).
  return { statusCode: 'INVALID_CROSS_REFERENCE_KEY', message: 'invalid cross reference id', fields: [] };
}

function failure(id: string | null, errors: RecordError[], created?: boolean): SaveResult {
  return created === undefined ? { id, success: false, errors } : { id, success: false, errors, created };
}

function rollBack(results: SaveResult[], upsert: boolean): SaveResult[] {
  return results.map((r) => {
    if (!r.success) return upsert ? { ...r, id: null, created: false } : { ...r, id: null };
    const rolled: SaveResult = { id: null, success: false, errors: [{ ...ROLLED_BACK }] };
    if (upsert) rolled.created = false;
    return rolled;
  });
}

/**
 * Unique values claimed by earlier records of the same call, so that two records of one
 * call cannot both take a value (Salesforce processes a call's records in order).
 */
class BatchUniqueness {
  private readonly claimed = new Map<string, Map<string, object>>();

  /** `self`: the record being updated, or null for a record being created. */
  check(table: Table, changes: Map<string, SfValue>, self: SfRecord | null): RecordError | undefined {
    const claimant: object = self ?? {};
    for (const field of table.indexedFields) {
      if (!field.unique) continue;
      const value = changes.get(field.name);
      if (value === undefined || value === null) continue;
      const key = indexKey(field, value);
      const holders = holdersOf(table, field, key);
      const other = holders.find((r) => r !== self);
      const claimedBy = this.claimed.get(`${table.describe.name}.${field.name}`);
      if (other || (claimedBy?.has(key) && claimedBy.get(key) !== claimant)) {
        const otherId = other ? (other.Id as string) : '';
        return {
          statusCode: 'DUPLICATE_VALUE',
          message: `duplicate value found: ${field.name} duplicates value on record with id: ${otherId}`,
          fields: [],
        };
      }
    }
    for (const field of table.indexedFields) {
      if (!field.unique) continue;
      const value = changes.get(field.name);
      if (value === undefined || value === null) continue;
      const mapKey = `${table.describe.name}.${field.name}`;
      const claimed = this.claimed.get(mapKey) ?? new Map<string, object>();
      claimed.set(indexKey(field, value), claimant);
      this.claimed.set(mapKey, claimed);
    }
    return undefined;
  }
}

function selectRows(table: Table, compiled: CompiledQuery, includeDeleted: boolean): SfRecord[] {
  const rows: SfRecord[] = [];
  const { matches } = compiled;
  for (const record of table.records) {
    // `query` leaves out deleted records and archived activities; `queryAll` returns both (SOAP
    // API, queryAll(): "You cannot use query() as it automatically filters out all records where
    // isArchived is set to true").
    if (!includeDeleted && (record.IsDeleted === true || record.IsArchived === true)) continue;
    if (matches(record)) rows.push(record);
  }
  if (compiled.compare) rows.sort(compiled.compare);
  const start = compiled.offset ?? 0;
  const end = compiled.limit === null ? rows.length : start + compiled.limit;
  return start === 0 && end >= rows.length ? rows : rows.slice(start, end);
}
