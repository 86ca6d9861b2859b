/**
 * What a Salesforce extract reads: the fields (checked against the describe), the SOQL of the
 * read and of its `COUNT()`, and which API reads it. Pure functions, shared by Prepare (which
 * forecasts the run's API cost from the same `COUNT()`) and the extract steps.
 */
import type { DeletePolicy, ExtractTask, PipelineConfig, SalesforceExtractTask } from '../config';
import { suggestion } from '../config/issues';
import type { SalesforceFieldDescribe, SalesforceObjectDescribe } from '../connectors/salesforce';
import { salesforceErrorCode } from '../connectors/salesforce/errors';
import { bulkPollsForDuration } from '../connectors/salesforce/poll';
import { TerminalError } from '../shared/errors';
import { listed } from '../shared/words';

/** The field that orders changes: set by Salesforce on every write, including system ones. */
export const WATERMARK_FIELD = 'SystemModstamp';
/**
 * The field that `queryAll` sets on deleted (recycle-bin) rows. Not every object has it: User
 * (deactivated, never deleted) and setup objects such as Profile, UserRole, RecordType or Group
 * (deleted for good, without a recycle bin) do not; their extract reads without it
 * ({@link resolveFields}, {@link deletesFor}).
 */
export const DELETED_FIELD = 'IsDeleted';
/** The key of every Salesforce table. */
export const ID_FIELD = 'Id';

/**
 * Rows per REST query page: 2,000 by default and at most
 * (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_queryoptions.htm).
 */
export const REST_QUERY_PAGE_ROWS = 2_000;

/**
 * The Bulk job's duration the forecast budgets polls for: ten minutes, which the poll schedule
 * (connectors/salesforce/poll.ts) covers with {@link bulkPollsForDuration}(600) = 10 polls.
 */
export const FORECAST_BULK_JOB_SECONDS = 600;

/** How a Salesforce extract reads this run. */
export interface SalesforceReadPlan {
  /** Fields in describe casing, in the config's order, with SystemModstamp and IsDeleted added when missing. */
  readonly fields: readonly string[];
  /** Whether the object has IsDeleted (then among `fields`): User and setup objects do not. */
  readonly deletedField: boolean;
  /** Fields that the config did not list but the extract needs (logged). */
  readonly addedFields: readonly string[];
  /** The read, with ORDER BY when `orderBy` is set. */
  readonly soql: (options: { orderBy: boolean }) => string;
  /** `SELECT COUNT() …` with the same filter. */
  readonly countSoql: string;
  /** `queryAll`: deleted rows in the recycle bin are read too (with IsDeleted true); never without IsDeleted. */
  readonly includeDeleted: boolean;
  /** The lower bound of an incremental read (watermark minus overlap), undefined for a full read. */
  readonly since: Date | undefined;
}

/**
 * A SOQL datetime literal, `YYYY-MM-DDThh:mm:ssZ`, rounded DOWN to the second: Salesforce's
 * literal has no fraction (SOQL and SOSL Reference, "Date Formats and Date Literals"), and
 * rounding down only widens an inclusive lower bound.
 */
export function soqlDatetime(at: Date): string {
  if (Number.isNaN(at.getTime())) throw new TerminalError('Cannot write an invalid date as a SOQL datetime');
  return new Date(Math.floor(at.getTime() / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * The codes by which Salesforce says that an object of that name does not exist for this user:
 * a describe's `NOT_FOUND`, a query's `INVALID_TYPE` ("sObject type 'Leads' is not supported").
 */
const NO_SUCH_OBJECT_CODES: ReadonlySet<string> = new Set(['NOT_FOUND', 'INVALID_TYPE']);

/**
 * `err`, or, when it is Salesforce saying that the task's object does not exist, a TerminalError
 * that names the config key to correct (`extract[0].object`) and what to check, with
 * Salesforce's words after it. Other errors are returned as they are.
 */
export function noSuchObjectError(err: unknown, object: string, objectPath: string): unknown {
  if (!(err instanceof TerminalError) || !NO_SUCH_OBJECT_CODES.has(salesforceErrorCode(err.cause) ?? '')) {
    return err;
  }
  return new TerminalError(
    `${objectPath}: Salesforce has no object ${object} that the integration user can see: check the API name ` +
      `(a custom object ends in __c) and the user's permission to read it (${err.message})`,
    { cause: err },
  );
}

/**
 * The codes by which Salesforce refuses a query's condition: a field it does not have, a syntax
 * error, an operator the field's type does not take.
 */
const BAD_CONDITION_CODES: ReadonlySet<string> = new Set([
  'INVALID_FIELD',
  'MALFORMED_QUERY',
  'INVALID_QUERY_FILTER_OPERATOR',
]);

/**
 * `err`, or, when it is Salesforce refusing a read of a Salesforce extract for its object or its
 * `where` condition (the only parts of a COUNT() the config writes), a TerminalError naming that
 * key (`extract[0].object`, `extract[0].where`) and what to check, with Salesforce's words.
 */
export function extractReadError(
  err: unknown,
  task: Pick<SalesforceExtractTask, 'object' | 'where'>,
  configPath: string,
): unknown {
  const code = err instanceof TerminalError ? salesforceErrorCode(err.cause) : undefined;
  if (code && task.where !== undefined && BAD_CONDITION_CODES.has(code)) {
    return new TerminalError(
      `${configPath}.where: Salesforce refused the condition ${JSON.stringify(task.where)} on ${task.object}: ` +
        `check its field names and syntax (a SOQL condition, without the WHERE keyword) (${(err as Error).message})`,
      { cause: err },
    );
  }
  return noSuchObjectError(err, task.object, `${configPath}.object`);
}

/** The describe of a task's object; an object that does not exist is named by `objectPath`. */
export async function describeTaskObject(
  sf: { describe(object: string): Promise<SalesforceObjectDescribe> },
  object: string,
  objectPath: string,
): Promise<SalesforceObjectDescribe> {
  try {
    return await sf.describe(object);
  } catch (err) {
    throw noSuchObjectError(err, object, objectPath);
  }
}

/** An extract's place in the config, `extract[0]`, for messages that point at what to edit. */
export function extractConfigPath(config: Pick<PipelineConfig, 'extract'>, task: ExtractTask): string {
  return `extract[${config.extract.indexOf(task)}]`;
}

/**
 * Maps the configured fields to the describe's spelling and adds what the extract needs:
 * `SystemModstamp` (the watermark) and `IsDeleted` (deletes) when the object has it
 * (`deletedField`: User and setup objects do not; see {@link deletesFor}). An object without
 * `SystemModstamp` is refused: the extract has nothing to read changes by, nor to order an
 * overlapping run's rows with. Unknown fields are a TerminalError
 * naming every one of them, the object, each one's config path (`extract[0].fields[1]`, when the
 * task's `configPath` is given) and the field of the describe it is a typo away from. A base64
 * field (a file's content: Attachment.Body, ContentVersion.VersionData) is refused by its path: a
 * query answers a link to each record's file in its place, which would be loaded as the value.
 */
export function resolveFields(
  task: Pick<SalesforceExtractTask, 'object' | 'fields' | 'name'>,
  describeFields: readonly (Pick<SalesforceFieldDescribe, 'name'> & { readonly type?: string })[],
  configPath?: string,
  /**
   * The fields the task's last read wrote ({@link readScopeFields}): one of them missing from the
   * describe now was not misspelt but deleted, renamed or hidden since, and is named so.
   */
  lastRead?: readonly string[],
): { fields: string[]; added: string[]; deletedField: boolean } {
  const byLower = new Map(describeFields.map((f) => [f.name.toLowerCase(), f.name]));
  const unknown: string[] = [];
  const fields: string[] = [];
  for (const name of task.fields) {
    const found = byLower.get(name.toLowerCase());
    if (found === undefined) unknown.push(name);
    else if (!fields.includes(found)) fields.push(found);
  }
  if (unknown.length > 0) {
    const known = describeFields.map((f) => f.name);
    const read = new Set((lastRead ?? []).map((f) => f.toLowerCase()));
    const wasRead = (name: string): boolean => read.has(name.toLowerCase());
    const each = unknown.map((name) => {
      const where = configPath ? `${configPath}.fields[${task.fields.indexOf(name)}]` : undefined;
      const meant = wasRead(name) ? undefined : suggestion(name, known);
      const notes = [
        where,
        wasRead(name) ? 'the last read had it' : undefined,
        meant ? `did you mean "${meant}"?` : undefined,
      ]
        .filter(Boolean)
        .join('; ');
      return `"${name}"${notes ? ` (${notes})` : ''}`;
    });
    const hint = unknown.every(wasRead)
      ? `deleted or renamed in Salesforce since, or hidden from the integration user by its field-level security: ` +
        `take it out of ${configPath ? `${configPath}.fields` : "the task's fields"} (its column keeps the values of the last read), ` +
        `or restore the field or the user's access to it`
      : 'check the spelling and the field-level security of the integration user';
    throw new TerminalError(
      `Extract task ${task.name}: ${task.object} has no field ${each.join(', ')} (${hint})`,
    );
  }
  const blobs = fields.filter((name) => describeFields.find((f) => f.name === name)?.type === 'base64');
  if (blobs.length > 0) {
    const each = blobs.map((name) => {
      const index = task.fields.findIndex((f) => f.toLowerCase() === name.toLowerCase());
      return `${task.object}.${name}${configPath ? ` (${configPath}.fields[${index}])` : ''}`;
    });
    throw new TerminalError(
      `Extract task ${task.name}: ${listed(each)} ${blobs.length === 1 ? 'is a base64 field' : 'are base64 fields'}, ` +
        `a file's content: a query answers in its place a link to each record's file, not the content (that is ` +
        `one more call a record, sObject Blob Get), so roundtrip does not extract it; take it out of ` +
        `${configPath ? `${configPath}.fields` : "the task's fields"}`,
    );
  }
  const added: string[] = [];
  const who = `Extract task ${task.name}${configPath ? ` (${configPath}.object)` : ''}`;
  if (!byLower.has(ID_FIELD.toLowerCase())) {
    throw new TerminalError(
      `${who}: ${task.object} has no Id field, which the extract keys its table by (is it a queryable sObject?)`,
    );
  }
  if (!byLower.has(WATERMARK_FIELD.toLowerCase())) {
    // History objects (CreatedDate only) and a few setup objects. Reading them in full every run
    // would cost their whole size in API calls each time, and a full read could not tell an
    // overlapping run's newer rows from its own (the merge orders them by SystemModstamp).
    throw new TerminalError(
      `${who}: ${task.object} has no ${WATERMARK_FIELD} field, by which the extract reads changes and orders ` +
        `them: roundtrip cannot extract it; take the task out of the config`,
    );
  }
  const deletedField = byLower.has(DELETED_FIELD.toLowerCase());
  for (const needed of deletedField
    ? [ID_FIELD, WATERMARK_FIELD, DELETED_FIELD]
    : [ID_FIELD, WATERMARK_FIELD]) {
    const found = byLower.get(needed.toLowerCase()) as string;
    if (!fields.includes(found)) {
      fields.push(found);
      added.push(found);
    }
  }
  return { fields, added, deletedField };
}

/**
 * How a task's load applies deletes, for an object with or without `IsDeleted` (`deletedField`,
 * from {@link resolveFields}):
 *
 * - with it, the task's `deletes` as configured (`flag`, the default, or `remove`), by the
 *   `IsDeleted` column;
 * - without it (User: deactivated, never deleted; Profile, UserRole, RecordType, Group…: deleted
 *   for good, no recycle bin), there is no deleted row to read and no column to flag: `remove`,
 *   the default too, removes on a full read the rows Salesforce no longer returns; `flag` written
 *   out in the config cannot work, and is refused naming `configPath.deletes`.
 *
 * `flagColumn` is undefined without `IsDeleted`: the merge then deletes nothing by flag.
 */
export function deletesFor(
  task: Pick<SalesforceExtractTask, 'object' | 'deletes' | 'deletesDefaulted'>,
  deletedField: boolean,
  configPath: string,
): { mode: DeletePolicy; flagColumn: string | undefined } {
  if (deletedField) return { mode: task.deletes, flagColumn: DELETED_FIELD };
  if (task.deletes === 'flag' && task.deletesDefaulted !== true) {
    const why =
      task.object.toLowerCase() === 'user'
        ? ' (its records are deactivated, not deleted: IsActive)'
        : ' (its records are not moved to a recycle bin: a delete is for good)';
    throw new TerminalError(
      `${configPath}.deletes: ${task.object} has no ${DELETED_FIELD} field${why}: 'flag' cannot mark deleted records; ` +
        `remove the option (or set 'remove'): a full read then removes the rows Salesforce no longer returns`,
    );
  }
  return { mode: 'remove', flagColumn: undefined };
}

/** Options of {@link planSalesforceRead}. */
export interface PlanReadOptions {
  /** Read everything (override, `mode: 'full'`, first run, new columns). */
  readonly full: boolean;
  /** The stored watermark, for an incremental read. */
  readonly watermark: Date | null | undefined;
  /**
   * Whether the object has `IsDeleted`: without it the read goes through `query`, never
   * `queryAll`. @default true
   */
  readonly deletedField?: boolean;
}

/**
 * Builds the read of one extract task.
 *
 * Incremental: `WHERE SystemModstamp >= watermark − overlap` through `queryAll`, so that deleted
 * rows come back with `IsDeleted` true. The bound is inclusive: rows sharing the boundary
 * timestamp are re-read, never missed; the overlap re-reads a window before it for changes
 * committed late with an earlier stamp; the merge makes re-reads harmless (unchanged rows are not
 * even rewritten). REST reads are ordered by `SystemModstamp, Id` (Id the tie-breaker) so that
 * pages are deterministic; Bulk reads are not ordered, because ORDER BY turns off PK chunking in
 * Bulk API 2.0 (https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/queries.htm,
 * "SOQL Considerations"); the watermark is taken from the loaded rows, not from their order.
 *
 * Full: no watermark filter; `queryAll` when deletes are flagged (deleted rows in the recycle
 * bin arrive flagged), `query` when they are removed (the table becomes the live rows); for an
 * activity object (Task, Event: {@link ARCHIVING_OBJECTS}) `queryAll … AND IsDeleted = false`
 * instead, whose live rows include the archived ones `query` leaves out.
 *
 * An object without `IsDeleted` (User) is read through `query`, incremental or full: `queryAll`
 * has nothing more to return for it.
 */
export function planSalesforceRead(
  task: SalesforceExtractTask,
  describeFields: readonly Pick<SalesforceFieldDescribe, 'name'>[],
  options: PlanReadOptions,
): SalesforceReadPlan {
  const { fields, added, deletedField } = resolveFields(task, describeFields);
  const filter = readFilter(task, { ...options, deletedField });
  return {
    fields,
    deletedField,
    addedFields: added,
    soql: ({ orderBy }) =>
      `SELECT ${fields.join(', ')}${filter.from}${orderBy ? ` ORDER BY ${WATERMARK_FIELD}, ${ID_FIELD}` : ''}`,
    countSoql: filter.countSoql,
    includeDeleted: filter.includeDeleted,
    since: filter.since,
  };
}

/** The FROM/WHERE part of a task's read, without the field list (all that a COUNT() needs). */
export function readFilter(
  task: Pick<SalesforceExtractTask, 'object' | 'where' | 'overlapSeconds' | 'deletes'>,
  options: PlanReadOptions,
): { from: string; countSoql: string; includeDeleted: boolean; since: Date | undefined } {
  const incremental = !options.full && options.watermark !== null && options.watermark !== undefined;
  const since = incremental
    ? new Date((options.watermark as Date).getTime() - task.overlapSeconds * 1000)
    : undefined;
  const conditions: string[] = [];
  if (task.where !== undefined && task.where.trim() !== '') conditions.push(`(${task.where})`);
  if (since) conditions.push(`${WATERMARK_FIELD} >= ${soqlDatetime(since)}`);
  let includeDeleted = options.deletedField !== false && (incremental || task.deletes === 'flag');
  if (!includeDeleted && options.deletedField !== false && ARCHIVING_OBJECTS.has(task.object.toLowerCase())) {
    // The live rows of an activity object, archived ones with them: `query` would leave those out,
    // and a full read with deletes 'remove' would then remove them from the table.
    conditions.push(`${DELETED_FIELD} = false`);
    includeDeleted = true;
  }
  const where = conditions.length > 0 ? ` WHERE ${conditions.join(' AND ')}` : '';
  const from = ` FROM ${task.object}${where}`;
  return { from, countSoql: `SELECT COUNT()${from}`, includeDeleted, since };
}

/**
 * The objects whose archived records `query` leaves out and `queryAll` returns: activities (Task,
 * Event), which Salesforce archives a year after their date ("You cannot use query() as it
 * automatically filters out all records where isArchived is set to true", SOAP API, queryAll()).
 * A read of live rows of one ({@link readFilter}: a full read with deletes `remove`) goes through
 * `queryAll` with `IsDeleted = false`, so that the table keeps its archived activities.
 */
export const ARCHIVING_OBJECTS: ReadonlySet<string> = new Set(['task', 'event']);

/**
 * What a task's rows are read with, as stored beside its watermark: when it changes (a widened or
 * narrowed `where`, another `deletes`), the rows already loaded may not be those the task selects
 * now, and the next read is full. The stored scope also lists the `fields` the read wrote (see
 * {@link readScopeChange}); this comparable part leaves them out.
 */
export function readScopeOf(task: Pick<SalesforceExtractTask, 'object' | 'where' | 'deletes'>): string {
  return JSON.stringify({ object: task.object, where: task.where ?? null, deletes: task.deletes });
}

/**
 * The scope stored beside the watermark: {@link readScopeOf} and the fields the read wrote.
 * `incomplete`: a full read that may have missed records (its REST pages held another number of
 * records than its query's `totalSize`): the next read is full again ({@link readScopeChange}).
 */
export function storedReadScope(
  task: SalesforceExtractTask,
  fields: readonly string[],
  options: { incomplete?: boolean } = {},
): string {
  return JSON.stringify({
    object: task.object,
    where: task.where ?? null,
    deletes: task.deletes,
    fields: [...fields],
    ...(options.incomplete ? { incomplete: true } : {}),
  });
}

/** The fields a read with the stored scope `stored` wrote, or undefined when it does not say. */
export function readScopeFields(stored: string | null | undefined): string[] | undefined {
  if (stored == null) return undefined;
  try {
    const fields = (JSON.parse(stored) as { fields?: unknown }).fields;
    return Array.isArray(fields) ? fields.map(String) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Why a read cannot go on from the watermark of one with the stored scope `stored`, or undefined:
 *
 * - the task's object, `where` or `deletes` changed: the rows loaded may not be those it selects;
 * - the last read was full and may have missed records (`incomplete`, {@link storedReadScope});
 * - a field of `fields` (describe casing; or the config's, compared without case) was not written
 *   by the last read although its column is there: a field taken out of the task and listed
 *   again. Its column kept the values of an earlier read, and the records changed in between were
 *   read without it: an incremental read would leave those with a value Salesforce no longer has.
 *
 * A scope stored before it listed its fields (or before there was one) tells neither: it is taken
 * as matching, and the next read stores one that does.
 */
export function readScopeChange(
  stored: string | null | undefined,
  task: SalesforceExtractTask,
  fields: readonly string[],
): string | undefined {
  if (stored == null) return undefined;
  let parsed: {
    object?: unknown;
    where?: unknown;
    deletes?: unknown;
    fields?: unknown;
    incomplete?: unknown;
  };
  try {
    parsed = JSON.parse(stored) as typeof parsed;
  } catch {
    parsed = {};
  }
  const storedScope = readScopeOf({
    object: parsed.object as string,
    where: (parsed.where ?? undefined) as string | undefined,
    deletes: parsed.deletes as SalesforceExtractTask['deletes'],
  });
  if (storedScope !== readScopeOf(task)) {
    return `the task's object, where or deletes changed since the last read (was ${storedScope})`;
  }
  if (parsed.incomplete === true) {
    // The rows it missed may be in no table, and an incremental read returns only newer changes.
    return "the last full read got another number of records than its query's totalSize: records may be missing";
  }
  if (!Array.isArray(parsed.fields)) return undefined;
  const written = new Set(parsed.fields.map((f) => String(f).toLowerCase()));
  const relisted = fields.filter((f) => !written.has(f.toLowerCase()));
  if (relisted.length === 0) return undefined;
  return (
    `fields ${relisted.join(', ')} are read again: their columns hold the values of an earlier read, ` +
    'and records changed since were read without them'
  );
}

/**
 * Field types the Bulk APIs do not read: compound fields (address, location) are read over REST
 * or SOAP only, and a Bulk API 2.0 query job selecting one is refused at its create
 * ("Selecting compound data not supported in Bulk Query"; Object Reference, "Compound Field
 * Considerations and Limitations").
 */
export const BULK_UNREADABLE_TYPES: ReadonlySet<string> = new Set(['address', 'location']);

/** The fields of a read (`fields`, describe casing) that a Bulk query job would refuse. */
export function fieldsBulkCannotRead(
  fields: readonly string[],
  describeFields: readonly Pick<SalesforceFieldDescribe, 'name' | 'type'>[],
): string[] {
  const types = new Map(describeFields.map((f) => [f.name.toLowerCase(), f.type]));
  return fields.filter((f) => BULK_UNREADABLE_TYPES.has(types.get(f.toLowerCase()) ?? ''));
}

/**
 * Which API reads `rows` rows: a Bulk API 2.0 query job from `bulkThreshold` rows on (the
 * config's documented meaning: "from this many rows to read on"), REST query paging below, and
 * REST whatever the count when the read selects a field Bulk cannot read
 * ({@link fieldsBulkCannotRead}): a Bulk job would be refused, run after run, once the table grew
 * past the threshold.
 */
export function chooseReadApi(
  rows: number,
  bulkThreshold: number,
  bulkUnreadable: readonly string[] = [],
): 'rest' | 'bulk' {
  return rows >= bulkThreshold && bulkUnreadable.length === 0 ? 'bulk' : 'rest';
}

/** Options of {@link forecastExtractApiCalls}. */
export interface ForecastOptions {
  /** Rows per Bulk result page (one call each). */
  readonly bulkPageRecords: number;
  /** Rows per REST page. @default REST_QUERY_PAGE_ROWS */
  readonly restPageRows?: number;
}

/**
 * The Salesforce API calls one extract is expected to make for `rows` rows, besides its
 * describe and COUNT(): REST pages = ceil(rows / 2,000), at least one; Bulk = the job's create,
 * the polls of a ten-minute job, and one call per result page.
 */
export function forecastReadCalls(rows: number, api: 'rest' | 'bulk', options: ForecastOptions): number {
  if (api === 'rest') return Math.max(1, Math.ceil(rows / (options.restPageRows ?? REST_QUERY_PAGE_ROWS)));
  return (
    1 +
    bulkPollsForDuration(FORECAST_BULK_JOB_SECONDS) +
    Math.max(1, Math.ceil(rows / options.bulkPageRecords))
  );
}
