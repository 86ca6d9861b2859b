/**
 * Plan (DESIGN.md §1 step 4): map the source table's columns to Salesforce fields, check every row
 * against the object's describe, keep the rows whose values differ from what Salesforce has, and
 * store them in `roundtrip.writeback_plan_pages` (pages of 1,000 records). No record is sent to
 * Salesforce here: its calls are the (cached) describe and, for what runs that ended left behind
 * ({@link resolveEndedRuns}), the look-ups of an insert keyed on an external ID whose results were
 * never recorded, and the Bulk jobs such runs left unfinished (closed and collected for insert,
 * aborted while `Open` and collected once finished for update and upsert; update and upsert
 * records such runs sent by a call whose outcome they never learned are sent again).
 *
 * Planning is set-based SQL generated from the describe, so that a million rows plan inside
 * PostgreSQL in a few times what COPY takes to load them (docs/writeback.md, "Measured"):
 * 1. Pre-flight on the config (a {@link TerminalError} listing every problem): each mapped field
 *    exists, has a supported type and is writable for the mode (createable for insert, updateable
 *    for update, both for upsert); the key is `Id` for update and an external-ID field for upsert
 *    (and insert, when given); required fields are mapped on insert; the source columns exist.
 * 2. One SELECT reads the source, converts each value to Salesforce's wire form (numbers rounded to
 *    the field's scale, ISO dates and UTC datetimes, booleans; text only in the shapes Salesforce
 *    reads, not every one PostgreSQL does), in the form Salesforce stores it (text trimmed, a
 *    multi-select's values in definition order, once) and computes the first problem of each
 *    row: a value of the wrong type (a fraction for an int field), out of the field's precision,
 *    longer than its length (in UTF-16 code units), the text `#N/A` that a Bulk job would read
 *    as null, a value a restricted picklist does not allow, a required value missing (an insert
 *    leaves out a null that the field's default fills instead: {@link leftOutWhenNull}), a key
 *    missing, malformed, repeated or an Id of another object than the task's (its key prefix),
 *    a lookup's Id of another object than the one it points to, when the plan knows that
 *    object's key prefix (docs/writeback.md, "Values Salesforce stores otherwise").
 *    Rows with a problem go to `roundtrip.writeback_errors` (stage `plan`), counted `rejected`;
 *    so do rows kept back because an earlier run's send of their key has no outcome yet
 *    (`OUTCOME_PENDING`, `INSERT_OUTCOME_UNKNOWN`), counted `heldBack`, apart, since nothing is
 *    wrong with them (not judged by `maxRejectRate`).
 * 3. The diff: the canonical values (a jsonb object, its md5 the value hash) are compared with the
 *    freshly extracted copy of the object when the pipeline extracts it into a table holding every
 *    mapped field (converted the same way and compared value by value, so 45 and 45.0 compare
 *    equal), else with the values of the last successful sync in `roundtrip.sync_state` (by hash
 *    for a row recorded there without values); so is an update's or upsert's key that a copy
 *    extracted with a `where` lacks (its record may be one the condition leaves out). Keys are matched on both sides as Salesforce
 *    tells records apart ({@link keyIdentity}: an Id in 15 or 18 characters, in any case; an
 *    external ID ignoring case unless it is case-sensitive; a number external ID as a number),
 *    and so are the values of Id fields against the copy. Insert never sends a key that was inserted
 *    before (sync_state, or a live record with its external ID in the extracted copy), nor checks
 *    its row: it counts as unchanged, whatever it holds. A key whose record the copy holds
 *    deleted (`"IsDeleted"`, no live record with the key) is rejected (`ENTITY_IS_DELETED`): an
 *    update of it fails, an upsert or insert would create a second record with the key; unless
 *    an upsert or insert task says `recreateDeleted`. An upsert's key the copy has no record of,
 *    while the record sync_state recorded for it is in the copy under another key, is rejected
 *    (`KEY_CHANGED_IN_SALESFORCE`): its key was changed in Salesforce, and the upsert would create
 *    a second record. And an upsert's key the copy (of an extract without `where`) has no record
 *    of is rejected (`REQUIRED_FIELD_MISSING`) when the task does not map a field a new record
 *    needs.
 *
 * Steps 2 and 3 are one statement ({@link insertPlan}); a source column's PostgreSQL type spares
 * the checks it already guarantees ({@link SourceType}). docs/writeback.md has the measurements.
 * 4. `maxChanges` is checked after the plan is stored (so that it can be inspected) and before
 *    anything is written; then the run's API budget, with the fewest calls the push can make
 *    (./api-budget.ts).
 */
import type { Pool, PoolClient } from 'pg';
import { configWarnings, type SalesforceExtractTask, type WritebackTask } from '../../config';
import {
  PLAN_PAGE_ROWS,
  quoteIdent,
  quoteQualified,
  withClient,
  withTransaction,
} from '../../connectors/postgres';
import type {
  SalesforceConnector,
  SalesforceFieldDescribe,
  SalesforceObjectDescribe,
} from '../../connectors/salesforce';
import { STANDARD_KEY_PREFIXES, ID_SUFFIX_ALPHABET } from '../../connectors/salesforce/ids';
import { suggestion } from '../../config/issues';
import { ERROR_NAMES, TerminalError } from '../../shared/errors';
import { recordAfter, type Logger } from '../../shared/logging';
import { salesforceOf, splitTableName, type CoreDeps } from '../deps';
import {
  DELETED_FIELD,
  ID_FIELD,
  WATERMARK_FIELD,
  describeTaskObject,
  extractConfigPath,
} from '../salesforce-read';
import {
  HELD_BACK_CODES,
  type PlanSampleRow,
  type WritebackApi,
  type WritebackPlanInput,
  type WritebackPlanOutput,
} from './contracts';
import { checkPushBudget, pushBudgetProblem } from './api-budget';
import {
  addRunApiCalls,
  mergeRunSummary,
  readRunSummary,
  sqlLiteral,
  writebackConfigPath,
  writebackTaskOf,
  MESSAGE_VALUE_CHARS,
} from './state';
import { INSERT_SETTLE_MS, resolveEndedRuns, sentHowSql } from './reconcile';
import { resolveCommandSql } from './resolve-command';
import { DOUBLE_EXACT_DIGITS, holdsMoreThanDouble } from './numbers';
import { checkRenamedTask, checkSyncScopeIn, recordSyncScope, syncScopeOf } from './scope';
import { checkSourceHasColumns, SourceProblemError, type SourceCheckContext } from './source';

export type { SourceCheckContext } from './source';

/** Rows a dry run shows. */
export const DRY_RUN_SAMPLE_ROWS = 10;

/**
 * The most bytes of JSON a dry run's sample takes in the Plan step's output: that output is a
 * state's payload, which Step Functions caps at 256 KiB (a plan output over it fails the run with
 * `States.DataLimitExceeded`, which no Catch handles: the run would not even be reported). A
 * quarter of it leaves room for the rest of the state.
 */
export const DRY_RUN_SAMPLE_MAX_BYTES = 64 * 1024;

/** The longest text value a dry run's sample shows whole; a longer one is cut, saying its length. */
export const DRY_RUN_SAMPLE_VALUE_CHARS = 200;

/** A UTF-16 surrogate pair: one character (code point) in two units. */
const SURROGATE_PAIR = /[\ud800-\udbff][\udc00-\udfff]/g;

/**
 * `value` whole when it has at most `max` characters (code points: an emoji is one and so is a lone
 * surrogate, as `[...value]` counts), else its first `max` followed by its length. Counted without
 * an array of the characters: a sample row may hold a hundred 131,072-character long texts, whose
 * arrays took over a second a row to make.
 */
function cutText(value: string, max: number): string {
  // A string of at most `max` UTF-16 units has at most `max` code points.
  if (value.length <= max) return value;
  let end = 0;
  for (let count = 0; count < max && end < value.length; count += 1) {
    const unit = value.charCodeAt(end);
    const next = end + 1 < value.length ? value.charCodeAt(end + 1) : 0;
    end += unit >= 0xd800 && unit <= 0xdbff && next >= 0xdc00 && next <= 0xdfff ? 2 : 1;
  }
  if (end >= value.length) return value;
  const characters = value.length - (value.match(SURROGATE_PAIR)?.length ?? 0);
  return `${value.slice(0, end)}… (${characters} characters)`;
}

/** A sample row's values with every text over {@link DRY_RUN_SAMPLE_VALUE_CHARS} cut, saying its length. */
export function shortValues(values: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(values).map(([field, value]) => [
      field,
      typeof value === 'string' ? cutText(value, DRY_RUN_SAMPLE_VALUE_CHARS) : value,
    ]),
  );
}

/** The first rows of `rows` whose JSON takes at most {@link DRY_RUN_SAMPLE_MAX_BYTES} together. */
export function boundedSample(rows: PlanSampleRow[]): PlanSampleRow[] {
  const kept: PlanSampleRow[] = [];
  let bytes = 2;
  for (const row of rows) {
    bytes += Buffer.byteLength(JSON.stringify(row), 'utf8') + 1;
    if (bytes > DRY_RUN_SAMPLE_MAX_BYTES) break;
    kept.push(row);
  }
  return kept;
}

/** A row of a plan's first page as the dry-run sample reads it from `roundtrip.writeback_plan_rows`. */
export interface StoredPlanSampleRow {
  key: string;
  salesforce_id: string | null;
  current: Record<string, unknown> | null;
  payload: Record<string, unknown>;
}

/**
 * A task's dry-run sample from the first rows of its plan (at most {@link DRY_RUN_SAMPLE_ROWS}, in
 * order): long texts cut ({@link shortValues}) and the rows bounded ({@link boundedSample}). The
 * Plan step's output and the sample `roundtrip plan` prints both come from here, so they show the
 * same values, and a 100,000-character text floods neither a state's payload nor a terminal.
 */
export function dryRunSample(rows: readonly StoredPlanSampleRow[]): PlanSampleRow[] {
  return boundedSample(
    rows.map((r) => ({
      key: r.key,
      salesforceId: r.salesforce_id,
      current: r.current && shortValues(r.current),
      next: shortValues(r.payload),
    })),
  );
}

/** The longest refusal of Salesforce quoted in a held-back key's message. */
const REFUSAL_CHARS = 500;

/** The values of a restricted picklist a rejection names (a long list is cut after these). */
const RESTRICTED_VALUES_SHOWN = 10;

/** jsonb_build_object takes at most 100 arguments (FUNC_MAX_ARGS): 40 pairs a call, joined with `||`. */
const JSONB_PAIRS_PER_CALL = 40;

/** `work_mem` of the plan's transaction: its sorts and hashes of a million rows stay in memory. */
export const PLAN_WORK_MEM = '128MB';

/** The first and last day Salesforce takes in a date or datetime field. */
export const MIN_SALESFORCE_DATE = '1700-01-01';
export const MAX_SALESFORCE_DATE = '4000-12-31';

/** PostgreSQL 16 added pg_input_is_valid(), which the date and datetime checks use. */
export const MIN_POSTGRES_VERSION_NUM = 160_000;

/**
 * A character no decimal or scientific number has (`-1.5e+3`, ` 42 `): PostgreSQL 16 also reads
 * `0x1F`, `0o17`, `0b11` and `1_000` as numbers (31, 15, 3, 1000), and NaN and Infinity, none of
 * which Salesforce reads as written.
 */
const NOT_DECIMAL_CHAR_RE = '[^0-9.eE+[:space:]-]';
/**
 * Text Salesforce reads as a date or datetime, ISO 8601: a date with a year of four digits or more
 * (more is refused as out of range, not as malformed), then optionally a time of day after `T` or
 * a space, to the minute, second or a fraction, and an offset (`Z`, `+02`, `+0200`, `+02:00`, or
 * with seconds, as PostgreSQL prints some). PostgreSQL also reads `today`, `now`, `epoch`,
 * `J2460000`, `1/2/3` (in DateStyle's order), `20250701`, `24:00` and ` BC`, which Salesforce does
 * not read, or not as the user meant (the era is lost in the ISO form sent).
 */
const DATETIME_RE = String.raw`^\s*\d{4,}-\d{2}-\d{2}([T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2}(:?\d{2})?)?)?)?\s*$`;
/**
 * A datetime as the plan sends it: UTC, to the second, its milliseconds dropped (to_char's `SS`
 * truncates). "Regular dateTime fields are full timestamps with a precision of one second" (Object
 * Reference, "Primitive Data Types"): Salesforce loses the milliseconds it is sent, so a value sent
 * with them would differ from the extracted copy on every run, and be sent for ever; sent
 * without, what Salesforce keeps is what was sent, and what sync_state records.
 */
const DATETIME_FORMAT = `'YYYY-MM-DD"T"HH24:MI:SS".000Z"'`;
/**
 * PostgreSQL reads a fraction of a second of more than six digits rounded to the microsecond,
 * which can carry into the next second (`10:00:00.9999999` is read as 10:00:01, `23:59:59.9999999`
 * as the time `24:00:00`): such a fraction (.NET's round-trip format writes seven digits) is cut to
 * six before it is read, so that it is truncated like the milliseconds the plan drops. `re` with at
 * most six fraction digits matches nearly every value, which then pays no `regexp_replace`.
 */
function microsecondsRe(re: string): string {
  return re.replace(String.raw`(\.\d+)?`, String.raw`(\.\d{1,6})?`);
}
/** Text `s` with a fraction of a second of more than six digits cut to six (see {@link microsecondsRe}). */
function cutFractionSql(s: string): string {
  return `regexp_replace(${s}, ${sqlLiteral(String.raw`(\.\d{6})\d+`)}, ${sqlLiteral(String.raw`\1`)})`;
}
/**
 * Text read as a time of day: hours to 23 (or 1 to 12 with AM/PM), minutes, optionally seconds
 * and a fraction, in UTC (`Z`, `+00:00`) or without an offset. A time field has no zone: the
 * plan would drop any other offset, and PostgreSQL's `24:00:00` is not a time of day.
 */
const TIME_RE = String.raw`^\s*([01]?\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?\s*([AaPp][Mm]|Z|[+-]00(:?00)?)?\s*$`;
/**
 * A Salesforce Id: 15 case-sensitive or 18 case-safe letters and digits
 * (`^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$`), tested as a length and this class of the other characters.
 */
const NOT_ID_CHAR_RE = '[^a-zA-Z0-9]';
/** Loose e-mail shape: Salesforce refuses values without it (INVALID_EMAIL_ADDRESS). */
const EMAIL_RE = '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$';

/**
 * What Salesforce trims from both ends of a text value it stores: the characters Java's
 * `String.trim()` removes, U+0001 to U+0020 (spaces, tabs, line breaks, other control characters;
 * not U+00A0 nor other Unicode spaces). Apex Developer Guide, "Primitive Data Types": "sObject
 * String field values follow the same rules as in the SOAP API: they can never be empty (only
 * null), and they can never include leading and trailing whitespace." As an escape string literal.
 */
const SALESFORCE_TRIM_CHARS = `E'${Array.from({ length: 32 }, (_, i) => `\\x${(i + 1).toString(16).padStart(2, '0')}`).join('')}'`;

/**
 * Any character but those outside the Basic Multilingual Plane (an emoji, 𠮟), which take two
 * UTF-16 code units: how Salesforce (Java) counts them against a field's length (Help article
 * 005166849, "Surrogate Pair Characters Are Treated as Two Characters"), while PostgreSQL's
 * char_length counts one.
 */
const NOT_SUPPLEMENTARY_CHAR_RE = String.raw`[^\U00010000-\U0010FFFF]`;

/** The length of text `v` in UTF-16 code units, as Salesforce counts it. */
function utf16LengthSql(v: string): string {
  return `(char_length(${v}) + char_length(regexp_replace(${v}, '${NOT_SUPPLEMENTARY_CHAR_RE}', '', 'g')))`;
}

/**
 * The text Bulk API 2.0 reads as null in a CSV field ("To set a field value to null, use a field
 * value of #N/A"), compared ignoring case: a text value that is this would blank the field on the
 * Bulk path (and stay text on the Collections path), so the plan refuses it.
 */
export const BULK_NULL_TEXT = '#N/A';

/**
 * The plan's code for an upsert's key whose record, as sync_state recorded it, holds another key in
 * the extracted copy: its key was changed in Salesforce, and the upsert would create a second
 * record for it (docs/writeback.md, "A record's key changed in Salesforce").
 */
export const KEY_CHANGED_CODE = 'KEY_CHANGED_IN_SALESFORCE';

/** How a field's values are converted and checked. */
type FieldKind =
  | 'string'
  | 'email'
  | 'picklist'
  | 'multipicklist'
  | 'id'
  | 'boolean'
  | 'int'
  | 'number'
  | 'date'
  | 'datetime'
  | 'time';

const KIND_BY_TYPE: Record<string, FieldKind> = {
  string: 'string',
  textarea: 'string',
  phone: 'string',
  url: 'string',
  combobox: 'string',
  encryptedstring: 'string',
  email: 'email',
  picklist: 'picklist',
  multipicklist: 'multipicklist',
  id: 'id',
  reference: 'id',
  boolean: 'boolean',
  int: 'int',
  double: 'number',
  currency: 'number',
  percent: 'number',
  date: 'date',
  datetime: 'datetime',
  time: 'time',
};

/** One Salesforce field fed from one source column. */
export interface MappedField {
  readonly field: SalesforceFieldDescribe;
  readonly kind: FieldKind;
  readonly column: string;
  /** The record key (upsert's external ID, insert's optional external ID): part of the payload. */
  readonly isKey: boolean;
}

/** The checked mapping of a task onto an object's describe. */
export interface WritebackMapping {
  readonly task: WritebackTask;
  readonly object: string;
  /** The key field's API name as the describe spells it (`Id`, `External_Id__c`), if any. */
  readonly keyField: string | undefined;
  /** The payload's fields: the key first for upsert/insert with a key, then the mapped fields. */
  readonly fields: readonly MappedField[];
  /**
   * Upsert: the fields a new record needs (createable, not nillable, no default) that the task
   * does not map. A row the upsert would create is then refused by Salesforce
   * (REQUIRED_FIELD_MISSING), and by the plan when it can tell that the row creates (its key is
   * not in a complete extracted copy). Empty for the other modes (insert must map them).
   */
  readonly unmappedRequired: readonly string[];
  /** The object's key prefix, the first three characters of its Ids (Lead `00Q`); null for an object without one. */
  readonly keyPrefix: string | null;
}

/**
 * Whether an insert leaves the field out of a record whose value for it is null, instead of
 * sending the null: a field that is not nillable but that Salesforce gives a default on create (a
 * checkbox, a picklist with a default value), not the key. Every API gives a field left out of a
 * create its default; none documents what a null sent for such a field does (Apex refuses a null
 * checkbox). The plan's payload has no key for it, Collections sends none, Bulk an empty cell
 * (docs/writeback.md, "An insert leaves out a null that a default would fill"). A nillable field's
 * null is sent as ever; update and upsert send every mapped field, and refuse a null here.
 */
export function leftOutWhenNull(mode: WritebackTask['mode'], m: MappedField): boolean {
  return mode === 'insert' && !m.isKey && !m.field.nillable && m.field.defaultedOnCreate;
}

/** The mapped fields an insert leaves out of a record when null ({@link leftOutWhenNull}). */
export function fieldsLeftOutWhenNull(mapping: WritebackMapping): readonly MappedField[] {
  return mapping.fields.filter((m) => leftOutWhenNull(mapping.task.mode, m));
}

function fieldByName(describe: SalesforceObjectDescribe, name: string): SalesforceFieldDescribe | undefined {
  const lower = name.toLowerCase();
  return describe.fields.find((f) => f.name.toLowerCase() === lower);
}

/**
 * Checks a task against the object's describe and returns the mapping. Every problem is reported
 * at once, as one {@link TerminalError} naming the task and each config key at fault (under
 * `configPath`, e.g. `writeback[0]`, when given), with the field meant when a name is a typo away
 * from one: these are config problems that no row can pass. `checkAccess: false` (collecting what
 * a job already sent) skips the createable/updateable and required-field checks, which a
 * permission changed while the job ran would fail. `keyOnly: true` maps the key alone (the
 * mapping's `fields` hold it, when the task has one): for a step that only collects results and
 * sends again what the plan stored (each record's payload is in the plan), which a mapped field
 * deleted or changed in Salesforce since the plan must not stop; the next plan reports it.
 */
export function mapWritebackTask(
  task: WritebackTask,
  describe: SalesforceObjectDescribe,
  options: {
    checkAccess?: boolean;
    /** Map the key alone, not the other fields (see above). @default false */
    keyOnly?: boolean;
    configPath?: string;
    /** The step that maps, for the message. @default 'plan' */
    step?: 'plan' | 'push' | 'collect';
  } = {},
): WritebackMapping {
  const checkAccess = options.checkAccess ?? true;
  const at = (key: string): string => (options.configPath ? `${options.configPath}.${key}` : key);
  const didYouMean = (name: string): string => {
    const meant = suggestion(
      name,
      describe.fields.map((f) => f.name),
    );
    return meant ? `; did you mean ${meant}?` : '';
  };
  const problems: string[] = [];
  const where = `write-back ${task.name} (${task.mode} of ${describe.name})`;
  // A field the integration user may not set: what it is, and (after the config path) the fix: for
  // a mapped field, the fix of the field or its removal from the mapping (`fix`); for the key, which
  // cannot be removed, the fix of the field or another key (`keyFix`, given that other key's advice).
  const writable = (
    f: SalesforceFieldDescribe,
  ): { what: string; fix: string; keyFix: (another: string) => string } | undefined => {
    if (!checkAccess) return undefined;
    const needCreate = task.mode === 'insert' || task.mode === 'upsert';
    const needUpdate = task.mode === 'update' || task.mode === 'upsert';
    // Field-level security has Read and Edit: Edit lets a user set the field on insert and update.
    const computed = f.calculated === true || f.autoNumber === true;
    const compound = f.type === 'address' || f.type === 'location';
    const by = computed || compound ? '' : ' by the integration user';
    const grant = `grant the integration user Edit access to ${describe.name}.${f.name} (field-level security, in its profile or a permission set)`;
    const notOwn =
      f.custom === true ? '' : ' (a field Salesforce sets itself, such as CreatedDate, no user can set)';
    const computedWhy = `it is ${f.calculated === true ? 'a formula' : 'an auto-number'} field, whose value Salesforce computes`;
    const compoundWhy = `it is a compound field, which Salesforce sets from its parts`;
    const fix = computed
      ? `${computedWhy}: remove it from the mapping`
      : compound
        ? `${compoundWhy}: map those instead`
        : `${grant}, or remove it from the mapping${notOwn}`;
    const keyFix = (another: string): string =>
      computed
        ? `${computedWhy}: ${another}`
        : compound
          ? `${compoundWhy}: ${another}`
          : `${grant}, or ${another}${notOwn}`;
    if (needCreate && !f.createable) return { what: `${f.name} is not createable${by}`, fix, keyFix };
    if (needUpdate && !f.updateable) return { what: `${f.name} is not updateable${by}`, fix, keyFix };
    return undefined;
  };
  const kindOf = (f: SalesforceFieldDescribe, configKey: string): FieldKind | undefined => {
    const kind = KIND_BY_TYPE[f.type];
    if (!kind)
      problems.push(`${f.name} has type ${f.type}, which the write-back cannot send (${at(configKey)})`);
    return kind;
  };
  let keyField: string | undefined;
  const fields: MappedField[] = [];
  if (task.mode === 'update') {
    keyField = 'Id';
  } else if (task.key !== undefined) {
    const f = fieldByName(describe, task.key);
    if (!f)
      problems.push(
        `key ${task.key} is not a field of ${describe.name} (${at('key')})${didYouMean(task.key)}`,
      );
    else if (
      f.name === 'Id' ||
      !(f.externalId || (task.mode === 'upsert' && f.idLookup && f.name !== 'Id'))
    ) {
      // The fields that would do, so that the fix is in the message.
      const external = describe.fields.filter((d) => d.externalId && d.name !== 'Id').map((d) => d.name);
      const candidates = external.length
        ? `; its external-ID fields: ${external.join(', ')}`
        : `; it has no external-ID field`;
      problems.push(
        `key ${f.name} is not an external-ID field of ${describe.name} (${at('key')}: ${task.mode} needs one${candidates})`,
      );
    } else {
      keyField = f.name;
      const notWritable = writable(f);
      if (notWritable) {
        // The key cannot be left out of the mapping: the external-ID fields the mode can set instead.
        const others = describe.fields
          .filter((d) => d.externalId && d.name !== 'Id' && d.name !== f.name && !writable(d))
          .map((d) => d.name);
        const another = others.length
          ? `choose another external-ID field as the key (${at('key')}; ${others.length === 1 ? 'the one' : 'those'} ${task.mode} can set: ${others.join(', ')})`
          : `choose another external-ID field as the key (${at('key')}; ${describe.name} has none ${task.mode} can set: mark a custom field External ID to key by it)`;
        problems.push(
          `key ${notWritable.what} (${at('key')}: ${task.mode} sets it): ${notWritable.keyFix(another)}`,
        );
      }
      const kind = kindOf(f, 'key');
      if (kind) fields.push({ field: f, kind, column: task.keyColumn, isKey: true });
    }
  }
  for (const [name, column] of options.keyOnly ? [] : Object.entries(task.fields)) {
    const f = fieldByName(describe, name);
    const configKey = `fields.${name}`;
    if (!f) {
      problems.push(`field ${name} does not exist on ${describe.name} (${at(configKey)})${didYouMean(name)}`);
      continue;
    }
    if (keyField && f.name === keyField) {
      problems.push(`field ${f.name} is the key; its value comes from keyColumn (${at(configKey)})`);
      continue;
    }
    const notWritable = writable(f);
    if (notWritable) problems.push(`field ${notWritable.what} (${at(configKey)}): ${notWritable.fix}`);
    const kind = kindOf(f, configKey);
    if (kind) fields.push({ field: f, kind, column, isKey: false });
  }
  const unmappedRequired: string[] = [];
  if (task.mode !== 'update' && checkAccess && !options.keyOnly) {
    const mapped = new Set(fields.map((m) => m.field.name));
    for (const f of describe.fields) {
      if (f.createable && !f.nillable && !f.defaultedOnCreate && !mapped.has(f.name)) {
        if (task.mode === 'insert')
          problems.push(`field ${f.name} is required on insert but not mapped (${at('fields')})`);
        else unmappedRequired.push(f.name);
      }
    }
  }
  if (problems.length > 0) {
    throw new TerminalError(`Cannot ${options.step ?? 'plan'} the ${where}: ${problems.join('; ')}`);
  }
  return {
    task,
    object: describe.name,
    keyField,
    fields,
    unmappedRequired,
    keyPrefix: describe.keyPrefix ?? null,
  };
}

/** A SQL error triple for a row: `[code, field, message]`. */
function rowError(code: string, field: string, messageSql: string): string {
  return `jsonb_build_array(${sqlLiteral(code)}, ${sqlLiteral(field)}, ${messageSql})`;
}

function shown(sourceSql: string): string {
  return `left(${sourceSql}, ${MESSAGE_VALUE_CHARS})`;
}

/**
 * A finite decimal or scientific number: the characters of one (a class, cheaper than a regular
 * expression of the whole shape), then pg_input_is_valid for the rest.
 */
function isNumber(s: string): string {
  return `(${s} !~ '${NOT_DECIMAL_CHAR_RE}' AND pg_input_is_valid(${s}, 'numeric'))`;
}

/**
 * `t` is a Salesforce Id (see {@link NOT_ID_CHAR_RE}): a length test and one character class,
 * several times cheaper per row than the counted regular expression.
 */
function isSalesforceId(t: string): string {
  return `(char_length(${t}) IN (15, 18) AND ${t} !~ '${NOT_ID_CHAR_RE}')`;
}

/**
 * The key prefix of an Id `t` (15 or 18 letters and digits) as Salesforce reads it: its first three
 * characters, in the case the first character of an 18-character Id's suffix gives them
 * ({@link idIdentitySql}).
 */
function idPrefixSql(t: string): string {
  const bits = `(strpos('${ID_SUFFIX_ALPHABET}', upper(substr(${t}, 16, 1))) - 1)`;
  const restored = [0, 1, 2]
    .map(
      (i) =>
        `CASE WHEN ${bits} & ${1 << i} <> 0 THEN upper(substr(${t}, ${i + 1}, 1)) ELSE lower(substr(${t}, ${i + 1}, 1)) END`,
    )
    .join(' || ');
  return `CASE char_length(${t}) WHEN 18 THEN ${restored} ELSE left(${t}, 3) END`;
}

/**
 * Whether the Id `t` (15 or 18 letters and digits) is of another object than the one of key prefix
 * `prefix`: its first three characters (nearly every Id of the object, which stops here), then
 * the case an 18-character Id's suffix gives them.
 */
function otherPrefixSql(t: string, prefix: string): string {
  return `(left(${t}, 3) <> ${sqlLiteral(prefix)} AND ${idPrefixSql(t)} <> ${sqlLiteral(prefix)})`;
}

/**
 * The object key prefix `p` (SQL text) belongs to, when known, and the prefix, for a message:
 * `Account, key prefix 001`, or `key prefix a0B` (a custom object's prefix differs from org to org).
 */
function prefixOwnerSql(p: string, own: Pick<WritebackMapping, 'object' | 'keyPrefix'>): string {
  const known = { ...STANDARD_KEY_PREFIXES, ...(own.keyPrefix ? { [own.keyPrefix]: own.object } : {}) };
  const names = Object.entries(known)
    .map(([prefix, object]) => `WHEN ${sqlLiteral(prefix)} THEN ${sqlLiteral(object)}`)
    .join(' ');
  return `concat_ws(', ', CASE ${p} ${names} END, 'key prefix ' || ${p})`;
}

/**
 * The key prefix of `object`'s Ids when the plan knows it without a describe: the task's own
 * object's, or a standard object's ({@link STANDARD_KEY_PREFIXES}, the same in every org).
 */
function keyPrefixOf(
  object: string,
  own: Pick<WritebackMapping, 'object' | 'keyPrefix'>,
): string | undefined {
  if (object === own.object) return own.keyPrefix ?? undefined;
  return Object.entries(STANDARD_KEY_PREFIXES).find(([, name]) => name === object)?.[0];
}

/**
 * An update's key `t` as the Salesforce Id it names (trimmed, as the plan sends it), or NULL when
 * it is not an Id (a row the plan rejects as MALFORMED_ID, a missing key).
 */
function updateKeyIdSql(t: string): string {
  return `CASE WHEN ${isSalesforceId(`btrim(${t})`)} THEN btrim(${t}) END`;
}

/**
 * What PostgreSQL's type of a source column already guarantees about its values, so that the
 * plan skips the checks the type makes redundant (an integer column needs no "is it a number"
 * test, a `varchar(40)` no length test against a field of 80).
 */
export type SourceType =
  /** smallint, integer, bigint: at most `digits` digits. */
  | { readonly class: 'int'; readonly digits: number }
  /** numeric, with its declared precision and scale when it has them. */
  | { readonly class: 'numeric'; readonly precision?: number; readonly scale?: number }
  | { readonly class: 'float' }
  | { readonly class: 'bool' }
  | { readonly class: 'date' }
  | { readonly class: 'timestamp' }
  | { readonly class: 'timestamptz' }
  | { readonly class: 'time' }
  /** text, varchar(n), char(n): at most `maxLength` characters when declared. */
  | { readonly class: 'text'; readonly maxLength?: number }
  /** Anything else: read as its text form, like a text column. */
  | { readonly class: 'other' };

/** Digits of the largest value of each integer type (32767, 2147483647, 9223372036854775807). */
const INT_DIGITS: Record<string, number> = { int2: 5, int4: 10, int8: 19 };

/**
 * The {@link SourceType} of a column from its base type's name (`pg_type.typname`) and its type
 * modifier (`atttypmod`: numeric packs `((precision << 16) | scale) + 4`, varchar/char `n + 4`).
 */
export function sourceTypeOf(typname: string, typmod: number): SourceType {
  const digits = INT_DIGITS[typname];
  if (digits !== undefined) return { class: 'int', digits };
  switch (typname) {
    case 'numeric': {
      if (typmod < 4) return { class: 'numeric' };
      const packed = typmod - 4;
      // Since PostgreSQL 15 the scale is an 11-bit signed number (numeric(3, -2)).
      const scale = ((packed & 0x7ff) ^ 1024) - 1024;
      return { class: 'numeric', precision: (packed >> 16) & 0xffff, scale };
    }
    case 'float4':
    case 'float8':
      return { class: 'float' };
    case 'bool':
      return { class: 'bool' };
    case 'date':
      return { class: 'date' };
    case 'timestamp':
      return { class: 'timestamp' };
    case 'timestamptz':
      return { class: 'timestamptz' };
    case 'time':
      return { class: 'time' };
    case 'text':
      return { class: 'text' };
    case 'varchar':
    case 'bpchar':
      return typmod >= 4 ? { class: 'text', maxLength: typmod - 4 } : { class: 'text' };
    default:
      return { class: 'other' };
  }
}

/** How one source column becomes one field's value, and which checks its type leaves to do. */
interface Conversion {
  /** The value sent (numeric, integer, boolean or text), NULL when absent or not convertible. */
  readonly value: string;
  /** The source as text, for messages (only evaluated for rejected rows). */
  readonly text: string;
  /** SQL true when the source holds something (not NULL, not blank). */
  readonly present: string;
  /** A present source may fail to convert: the INVALID_TYPE check is needed. */
  readonly mayBeInvalid: boolean;
  /** Numbers: the value may have more integer digits than the field takes. */
  readonly rangeCheck: boolean;
  /** Strings: the value may be longer than the field takes. */
  readonly lengthCheck: boolean;
  /** The value is of an integer type (range checks compare it with integer literals). */
  readonly integer: boolean;
}

/** `10^d` as an integer literal (d ≤ 18 fits bigint). */
function powerOfTen(d: number): string {
  return `1${'0'.repeat(d)}`;
}

/** Integer digits a number field takes, and the scale it rounds to. */
function numberShape(m: Pick<MappedField, 'field' | 'kind'>): { scale: number; intDigits: number } {
  if (m.kind === 'int') {
    return { scale: 0, intDigits: m.field.digits && m.field.digits > 0 ? m.field.digits : 18 };
  }
  const scale = Math.max(0, m.field.scale ?? 0);
  return { scale, intDigits: Math.max(0, (m.field.precision ?? 18) - scale) };
}

/**
 * The conversion of source column `c` (SQL) of type `type` to field `m`'s value. Every path
 * yields the same value (so the same payload and hash) as reading the column's text form; typed
 * columns only skip the parsing and the checks their type makes redundant.
 */
function conversionOf(m: Pick<MappedField, 'field' | 'kind'>, c: string, type: SourceType): Conversion {
  const text = `(${c})::text`;
  const typed = type.class !== 'text' && type.class !== 'other';
  const present = typed ? `(${c} IS NOT NULL)` : `(${c} IS NOT NULL AND btrim(${text}) <> '')`;
  const base = { text, present, mayBeInvalid: false, rangeCheck: false, lengthCheck: false, integer: false };
  const fromText = (): Conversion => ({
    ...base,
    present: `(${c} IS NOT NULL AND btrim(${text}) <> '')`,
    value: valueSql(m, text),
    mayBeInvalid:
      m.kind !== 'string' && m.kind !== 'email' && m.kind !== 'picklist' && m.kind !== 'multipicklist',
    rangeCheck: m.kind === 'int' || m.kind === 'number',
    lengthCheck: true,
  });
  switch (m.kind) {
    case 'string':
    case 'email':
    case 'picklist':
    case 'multipicklist': {
      // varchar(n) counts characters, Salesforce UTF-16 code units: up to 2n of them.
      const declared = type.class === 'text' ? type.maxLength : undefined;
      return {
        ...base,
        value: valueSql(m, text),
        lengthCheck: m.field.length > 0 && !(declared !== undefined && declared * 2 <= m.field.length),
      };
    }
    case 'boolean':
      return type.class === 'bool' ? { ...base, value: c } : fromText();
    case 'int':
    case 'number': {
      const { scale, intDigits } = numberShape(m);
      if (type.class === 'int') {
        // Exact integers: the value is the column itself when nothing is rounded (jsonb stores
        // 42 the same whether it came from an integer or a numeric), and an integer type with
        // fewer digits than the field takes cannot be out of range.
        return {
          ...base,
          value: scale === 0 ? c : `round((${c})::numeric, ${scale})`,
          rangeCheck: type.digits > intDigits,
          integer: scale === 0,
        };
      }
      if (type.class === 'numeric') {
        // NaN and ±Infinity sort at or above 'Infinity' (a numeric column may hold them).
        // An int field takes whole numbers only (see valueSql): 2.5 is refused, not rounded.
        const finite =
          m.kind === 'int' && type.scale !== 0
            ? `abs(${c}) < 'Infinity'::numeric AND ${c} = trunc(${c})`
            : `abs(${c}) < 'Infinity'::numeric`;
        const exact = type.scale !== undefined && type.scale <= scale;
        const value =
          type.scale !== undefined && type.scale === scale && scale === 0 ? c : `round(${c}, ${scale})`;
        const digits =
          type.precision !== undefined && type.scale !== undefined ? type.precision - type.scale : undefined;
        // Rounding to fewer decimals can carry into one more integer digit (9.5 → 10).
        const fits = digits !== undefined && (exact ? digits <= intDigits : digits < intDigits);
        return {
          ...base,
          value: `CASE WHEN ${finite} THEN ${value} END`,
          mayBeInvalid: true,
          rangeCheck: !fits,
        };
      }
      if (type.class === 'float') {
        // Through the float's shortest exact text, like the text path (a float→numeric cast keeps
        // only 15 significant digits); NaN and ±Infinity sort at or above 'Infinity'.
        return {
          ...base,
          value: `CASE WHEN abs(${c}) < 'Infinity'::float8${m.kind === 'int' ? ` AND ${c} = trunc(${c})` : ''} THEN round((${text})::numeric, ${scale}) END`,
          mayBeInvalid: true,
          rangeCheck: true,
        };
      }
      return fromText();
    }
    case 'date':
      if (type.class === 'date' || type.class === 'timestamp' || type.class === 'timestamptz') {
        return {
          ...base,
          value: `CASE WHEN isfinite(${c}) THEN ${bcSign(`(${c})::date`, 'date')} || to_char((${c})::date, 'YYYY-MM-DD') END`,
          mayBeInvalid: true,
        };
      }
      return fromText();
    case 'datetime': {
      // The plan's transaction runs with TimeZone UTC: a timestamp (or date) is read as UTC.
      const utc =
        type.class === 'timestamp'
          ? c
          : type.class === 'timestamptz' || type.class === 'date'
            ? `(${c})::timestamptz AT TIME ZONE 'UTC'`
            : undefined;
      if (utc === undefined) return fromText();
      return {
        ...base,
        value: `CASE WHEN isfinite(${c}) THEN ${bcSign(utc, 'timestamp')} || to_char(${utc}, ${DATETIME_FORMAT}) END`,
        mayBeInvalid: true,
      };
    }
    case 'time':
      return type.class === 'time' ? { ...base, value: `to_char(${c}, 'HH24:MI:SS.MS') || 'Z'` } : fromText();
    case 'id':
      return fromText();
  }
}

/**
 * What the extracted copy's column `c` holds for field `m`, to compare with the value the plan
 * would send: converted as a source column is, except that a number keeps its digits. Salesforce
 * enforces a number field's decimal places only in its UI, so it may hold 41.6 in a Number(3,0)
 * field (written by another API client): rounded, that would compare equal to the 42 the plan
 * sends, and the record would keep 41.6 for good. Unrounded, 42 differs from it and is sent.
 */
function copyValueOf(m: MappedField, c: string, type: SourceType): string {
  if (m.kind === 'number') {
    if (type.class === 'numeric') return `CASE WHEN abs(${c}) < 'Infinity'::numeric THEN ${c} END`;
    if (type.class === 'int') return `(${c})::numeric`;
    if (type.class === 'float') {
      return `CASE WHEN abs(${c}) < 'Infinity'::float8 THEN ((${c})::text)::numeric END`;
    }
  }
  return conversionOf(m, c, type).value;
}

/**
 * A multi-select picklist's value (`t`, trimmed text) in the form Salesforce stores it: its values
 * once each, in the order of the field's definition (Help article 000231088, "Multi-Select
 * Picklist Value Ordering Behavior": "SOQL, Apex and API access on these fields will however
 * return the values in their created order"), values the describe does not list after them in
 * text order, empty values dropped; NULL when none is left. Applied to the source and to the
 * extracted copy alike, so that `B;A` and `A;B;A` compare equal to the `A;B` Salesforce holds
 * whatever order it keeps. Each value is trimmed (` Golf ; Chess ` holds Golf and Chess). A value
 * without `;` is kept as it is (the usual case: no sort).
 */
function multipicklistSql(f: SalesforceFieldDescribe, t: string): string {
  // Each value trimmed (`Golf ; Chess` is Golf and Chess: a picklist value has no whitespace
  // around it, and sent untrimmed, the value would hold some at its ends, which Salesforce does not
  // store), then as its definition lists it, when listed in another case (see picklistCaseSql).
  const listed = (f.picklistValues ?? []).map((p) => sqlLiteral(p.value));
  const order = listed.length ? `array_position(ARRAY[${listed.join(', ')}]::text[], x), x` : 'x';
  const one = picklistCaseSql(f, t);
  const each = picklistCaseSql(f, 'v');
  const trimmed = `btrim(w, ${SALESFORCE_TRIM_CHARS})`;
  const values =
    each === 'v'
      ? `unnest(string_to_array(${t}, ';')) AS u(w) CROSS JOIN LATERAL (SELECT ${trimmed} AS x) AS c`
      : `unnest(string_to_array(${t}, ';')) AS u(w) CROSS JOIN LATERAL (SELECT ${trimmed} AS v) AS tv CROSS JOIN LATERAL (SELECT ${each} AS x) AS c`;
  return `CASE WHEN strpos(${t}, ';') = 0 THEN nullif(${one}, '') ELSE nullif(array_to_string(ARRAY(SELECT x FROM ${values} WHERE x <> '' GROUP BY x ORDER BY ${order}), ';'), '') END`;
}

/**
 * A picklist's value `t` as Salesforce stores it: a value its definition lists in another case is
 * stored as listed (Help article 000386557, "Picklist fields are not case sensitive and cannot
 * contain duplicate inactive types": "TEST" and "test" sent after "Test" "will then become
 * "Test""), so the plan sends and compares it so; else `t` as it is. A restricted picklist alike:
 * its listed value is one Salesforce takes whether or not it would take `gold` for `Gold` (which no
 * document says), and is what it would store; a value listed inactive is then refused as such
 * (INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST), one not listed as it is written.
 */
function picklistCaseSql(f: SalesforceFieldDescribe, t: string): string {
  // Listed value by its lower case, as a jsonb object: one look-up (a binary search over its
  // keys) per value, however many values the picklist lists (up to 1,000).
  const listed = new Map<string, string>();
  for (const { value } of f.picklistValues ?? []) {
    if (!listed.has(value.toLowerCase())) listed.set(value.toLowerCase(), value);
  }
  if (listed.size === 0) return t;
  return `coalesce(${sqlLiteral(JSON.stringify(Object.fromEntries(listed)))}::jsonb ->> lower(${t}), ${t})`;
}

/**
 * `-` before the ISO text of a date or timestamp `x` before year 1 (to_char's `YYYY` drops the era:
 * 2000 BC would print as 2000), so that the range check refuses it; else the empty string.
 */
function bcSign(x: string, type: 'date' | 'timestamp'): string {
  return `CASE WHEN ${x} < '0001-01-01'::${type} THEN '-' ELSE '' END`;
}

/**
 * The SQL expression converting a field's source text `s` to the value sent (typed for jsonb:
 * numeric, boolean or text), NULL when `s` is NULL, blank or not convertible.
 */
export function valueSql(m: Pick<MappedField, 'field' | 'kind'>, s: string): string {
  const f = m.field;
  switch (m.kind) {
    case 'string':
      // Salesforce stores text trimmed, and an empty string as null.
      return `nullif(btrim(${s}, ${SALESFORCE_TRIM_CHARS}), '')`;
    case 'email':
      // And an email address in lower case: "Addresses are stored as lower case in Salesforce"
      // (Help article 000384328). Sent so, it is what the copy reads back and sync_state records.
      return `lower(nullif(btrim(${s}, ${SALESFORCE_TRIM_CHARS}), ''))`;
    case 'picklist':
      return picklistCaseSql(f, `nullif(btrim(${s}, ${SALESFORCE_TRIM_CHARS}), '')`);
    case 'multipicklist':
      return multipicklistSql(f, `btrim(${s}, ${SALESFORCE_TRIM_CHARS})`);
    case 'id':
      return `CASE WHEN ${isSalesforceId(`btrim(${s})`)} THEN btrim(${s}) END`;
    case 'boolean':
      return `CASE lower(btrim(${s})) WHEN 'true' THEN true WHEN 't' THEN true WHEN '1' THEN true WHEN 'yes' THEN true WHEN 'false' THEN false WHEN 'f' THEN false WHEN '0' THEN false WHEN 'no' THEN false END`;
    case 'int':
      // A whole number only: Salesforce refuses 2.5 for an int field (rounding it would send
      // another number than the source holds); 2.0 and 2e1 are whole.
      return `CASE WHEN ${isNumber(s)} AND ${s}::numeric = trunc(${s}::numeric) THEN round(${s}::numeric) END`;
    case 'number':
      return `CASE WHEN ${isNumber(s)} THEN round(${s}::numeric, ${Math.max(0, f.scale ?? 0)}) END`;
    // Only the shapes Salesforce reads (which leave out infinity) are parsed.
    case 'date':
      return `CASE WHEN ${s} ~ ${sqlLiteral(DATETIME_RE)} AND pg_input_is_valid(${s}, 'date') THEN to_char(${s}::date, 'YYYY-MM-DD') END`;
    case 'datetime': {
      // A fraction of more than six digits is cut, not rounded by PostgreSQL (microsecondsRe).
      const read = (t: string): string =>
        `pg_input_is_valid(${t}, 'timestamptz') THEN to_char(${t}::timestamptz AT TIME ZONE 'UTC', ${DATETIME_FORMAT})`;
      return `CASE WHEN ${s} ~ ${sqlLiteral(microsecondsRe(DATETIME_RE))} AND ${read(s)} WHEN ${s} ~ ${sqlLiteral(DATETIME_RE)} AND ${read(cutFractionSql(s))} END`;
    }
    case 'time': {
      const read = (t: string): string =>
        `pg_input_is_valid(${t}, 'time') THEN to_char(${t}::time, 'HH24:MI:SS.MS') || 'Z'`;
      return `CASE WHEN ${s} ~ ${sqlLiteral(microsecondsRe(TIME_RE))} AND ${read(s)} WHEN ${s} ~ ${sqlLiteral(TIME_RE)} AND ${read(cutFractionSql(s))} END`;
    }
  }
}

/**
 * A field's checks as SQL: `sql`, the first problem of its value as an error triple, or NULL;
 * `unsent`, the same for a row that is not sent (its values are what Salesforce holds, or held
 * when it last took them): only the problems of a value the plan could not make (not convertible,
 * missing), since a value Salesforce holds is not refused for being what it is (a restricted
 * picklist value deactivated since, the text `#N/A` another client wrote). `conv` says which
 * checks the source's type leaves to do; `v` is the converted value (a column of the level below).
 */
function errorSql(
  m: MappedField,
  conv: Conversion,
  v: string,
  mapping: WritebackMapping,
): { sql: string; unsent: string } {
  const mode = mapping.task.mode;
  const f = m.field;
  const name = f.name;
  const s = conv.text;
  const whens: string[] = [];
  // The checks of a value not made (`v` NULL): they apply to a row whether it is sent or not.
  const unsentWhens: string[] = [];
  const always = (when: string): void => {
    whens.push(when);
    unsentWhens.push(when);
  };
  // A value refused names the source column it came from: the transform's output to correct.
  const valueError = (code: string, messageSql: string): string =>
    rowError(code, name, `${messageSql} || ${sqlLiteral(` (source column ${m.column})`)}`);
  const invalid = (what: string): void => {
    if (!conv.mayBeInvalid) return;
    always(
      `WHEN ${v} IS NULL AND ${conv.present} THEN ${valueError('INVALID_TYPE_ON_FIELD_IN_RECORD', `format('%s: %s is not ${what}', ${sqlLiteral(name)}, ${shown(s)})`)}`,
    );
  };
  switch (m.kind) {
    case 'id': {
      always(
        `WHEN ${v} IS NULL AND ${conv.present} THEN ${valueError('MALFORMED_ID', `format('%s: %s is not a Salesforce Id (15 or 18 letters and digits)', ${sqlLiteral(name)}, ${shown(s)})`)}`,
      );
      // A lookup to one object whose key prefix the plan knows (its own object's, a standard
      // object's) refuses an Id of another object as Salesforce does (FIELD_INTEGRITY_EXCEPTION,
      // "<label>: id value of incorrect type"). A lookup to several objects (OwnerId: User or
      // Group) or to a custom object of another task is left to Salesforce.
      const [target, ...others] = f.referenceTo ?? [];
      const prefix = target !== undefined && others.length === 0 ? keyPrefixOf(target, mapping) : undefined;
      if (prefix !== undefined) {
        whens.push(
          `WHEN ${v} IS NOT NULL AND ${otherPrefixSql(v, prefix)} THEN ${valueError('FIELD_INTEGRITY_EXCEPTION', `format('%s: %s is an Id of another object (%s; the field takes Ids of %s, key prefix %s)', ${sqlLiteral(name)}, ${shown(s)}, ${prefixOwnerSql(idPrefixSql(v), mapping)}, ${sqlLiteral(target as string)}, ${sqlLiteral(prefix)})`)}`,
        );
      }
      break;
    }
    case 'boolean':
      invalid('a boolean (true/false, t/f, 1/0, yes/no)');
      break;
    case 'int':
    case 'number': {
      invalid(m.kind === 'int' ? 'a whole number (the field takes no decimals)' : 'a number');
      if (!conv.rangeCheck) break;
      const { scale, intDigits } = numberShape(m);
      // An integer column is compared with integer literals: abs() of its smallest value overflows.
      const outside = conv.integer
        ? `(${v} <= -${powerOfTen(intDigits)} OR ${v} >= ${powerOfTen(intDigits)})`
        : `abs(${v}) >= 1e${intDigits}`;
      // A value that fits until rounded to the field's scale (999.5 in Number(3, 0) is sent as
      // 1000) says so: its own digits before the point are not too many. Only a rejected row's
      // message reads the source again.
      const fits = `format('%s: %s does not fit Number(%s, %s): at most ${intDigits} digits before the decimal point', ${sqlLiteral(name)}, ${shown(s)}, ${f.precision ?? 18}, ${scale})`;
      const rounded = `format('%s: %s does not fit Number(%s, %s): rounded to the field’s %s decimal places, as it would be sent, it is %s, of more than ${intDigits} digits before the decimal point; round it in the transform to what the field takes, or widen the field in Salesforce', ${sqlLiteral(name)}, ${shown(s)}, ${f.precision ?? 18}, ${scale}, ${scale}, ${v})`;
      const message =
        m.kind === 'int'
          ? `format('%s: %s has more than ${intDigits} digits', ${sqlLiteral(name)}, ${shown(s)})`
          : conv.integer
            ? fits
            : `CASE WHEN abs((${s})::numeric) < 1e${intDigits} THEN ${rounded} ELSE ${fits} END`;
      whens.push(`WHEN ${outside} THEN ${valueError('NUMBER_OUTSIDE_VALID_RANGE', message)}`);
      break;
    }
    case 'date':
    case 'datetime': {
      invalid(m.kind === 'date' ? 'a date' : 'a datetime');
      // Salesforce takes dates from 1700-01-01 to 4000-12-31 (Data Loader Guide, "Data Import
      // Dates"); a value outside fails its whole Composite subrequest, not just the record.
      // `v` is ISO text: a year of more than four digits makes it longer, a BC year sorts low.
      const day = m.kind === 'date' ? v : `left(${v}, 10)`;
      const length = m.kind === 'date' ? 10 : 24;
      whens.push(
        `WHEN ${v} IS NOT NULL AND (char_length(${v}) <> ${length} OR ${day} < '${MIN_SALESFORCE_DATE}' OR ${day} > '${MAX_SALESFORCE_DATE}') THEN ${valueError('DATE_OUTSIDE_VALID_RANGE', `format('%s: %s is outside the dates Salesforce takes (${MIN_SALESFORCE_DATE} to ${MAX_SALESFORCE_DATE})', ${sqlLiteral(name)}, ${shown(s)})`)}`,
      );
      break;
    }
    case 'time':
      invalid('a time');
      break;
    case 'email':
      whens.push(
        `WHEN ${v} IS NOT NULL AND NOT ${v} ~ '${EMAIL_RE}' THEN ${valueError('INVALID_EMAIL_ADDRESS', `format('%s: invalid email address: %s', ${sqlLiteral(name)}, ${shown(s)})`)}`,
      );
      break;
    case 'picklist':
    case 'multipicklist':
    case 'string':
      break;
  }
  if (m.kind === 'string' || m.kind === 'email' || m.kind === 'picklist' || m.kind === 'multipicklist') {
    // Bulk API 2.0 would read it as null (blanking the field), Collections as text: refused.
    whens.push(
      `WHEN octet_length(${v}) = ${BULK_NULL_TEXT.length} AND upper(${v}) = ${sqlLiteral(BULK_NULL_TEXT)} THEN ${valueError('TEXT_READ_AS_NULL', `format('%s: %s is the text Bulk API 2.0 reads as null: sent in a Bulk job it would blank the field, so it is not sent (a null blanks the field)', ${sqlLiteral(name)}, ${v})`)}`,
    );
    if (conv.lengthCheck && f.length > 0) {
      // Salesforce counts UTF-16 code units: a character outside the BMP counts twice. Only a
      // value of more bytes than the field's length can have more code units (each takes at
      // most as many code units as UTF-8 bytes), so the rest pay for one octet_length.
      const units = utf16LengthSql(v);
      whens.push(
        `WHEN octet_length(${v}) > ${f.length} AND ${units} > ${f.length} THEN ${valueError('STRING_TOO_LONG', `format('%s: data value too large: %s characters, the field takes ${f.length} (Salesforce counts UTF-16 code units: an emoji counts 2)', ${sqlLiteral(name)}, ${units})`)}`,
      );
    }
    if ((m.kind === 'picklist' || m.kind === 'multipicklist') && f.restrictedPicklist) {
      const active = (f.picklistValues ?? []).filter((p) => p.active).map((p) => p.value);
      const list = `ARRAY[${active.map((value) => sqlLiteral(value)).join(', ')}]::text[]`;
      const bad =
        m.kind === 'picklist' ? `NOT (${v} = ANY(${list}))` : `NOT (string_to_array(${v}, ';') <@ ${list})`;
      // The values it takes, so that the fix is in the message: the first few of a long list.
      const takes =
        active.length === 0
          ? 'no active value'
          : active.length <= RESTRICTED_VALUES_SHOWN
            ? active.join(', ')
            : `${active.slice(0, RESTRICTED_VALUES_SHOWN).join(', ')}, … (${active.length} in all)`;
      // A value the definition lists inactive says so: one a record may hold, deactivated since.
      const inactive = (f.picklistValues ?? []).filter((p) => !p.active).map((p) => sqlLiteral(p.value));
      const why =
        m.kind === 'picklist' && inactive.length > 0
          ? `CASE WHEN ${v} = ANY(ARRAY[${inactive.join(', ')}]::text[]) THEN 'a value deactivated in Salesforce; ' ELSE '' END`
          : `''`;
      whens.push(
        `WHEN ${v} IS NOT NULL AND ${bad} THEN ${valueError('INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST', `format('%s: bad value for restricted picklist field: %s (%sthe field takes: %s)', ${sqlLiteral(name)}, ${shown(v)}, ${why}, ${sqlLiteral(takes)})`)}`,
      );
    }
  }
  // Required: a field that may not be null (booleans included) must get a value, unless an insert
  // leaves its null out of the record, the field then taking its default.
  if (!f.nillable && !leftOutWhenNull(mode, m)) {
    always(
      `WHEN ${v} IS NULL THEN ${rowError('REQUIRED_FIELD_MISSING', name, `format('%s: required field is missing (source column %s is null or blank)', ${sqlLiteral(name)}, ${sqlLiteral(m.column)})`)}`,
    );
  } else if (m.isKey) {
    always(`WHEN ${v} IS NULL THEN ${rowError('MISSING_KEY', name, missingKeyMessage(name, m.column))}`);
  }
  const caseOf = (list: string[]): string => (list.length ? `CASE ${list.join(' ')} END` : 'NULL::jsonb');
  return { sql: caseOf(whens), unsent: caseOf(unsentWhens) };
}

/** The message of a row without a key (`MISSING_KEY`), as a SQL text literal. */
function missingKeyMessage(field: string, column: string): string {
  return sqlLiteral(
    `${field}: the key is missing (source column ${column} is null or blank): a row without a key names no record, so it is not sent; give every row its key in the transform, or leave out the rows that have none`,
  );
}

/** `jsonb_build_object('F1', v1, …)`, split into calls of at most 40 pairs. */
function jsonbObjectSql(pairs: readonly [string, string][]): string {
  if (pairs.length === 0) return `'{}'::jsonb`;
  const calls: string[] = [];
  for (let i = 0; i < pairs.length; i += JSONB_PAIRS_PER_CALL) {
    const part = pairs.slice(i, i + JSONB_PAIRS_PER_CALL).map(([k, v]) => `${sqlLiteral(k)}, ${v}`);
    calls.push(`jsonb_build_object(${part.join(', ')})`);
  }
  return calls.join(' || ');
}

/** A column of a table or view: its type as written, and what that type guarantees. */
export interface ColumnInfo {
  readonly type: string;
  readonly source: SourceType;
}

async function tableColumns(
  client: PoolClient,
  schema: string,
  table: string,
): Promise<Map<string, ColumnInfo> | undefined> {
  // A domain is read as its base type (its values are values of that type).
  const { rows } = await client.query<{ attname: string; type: string; typname: string; typmod: number }>(
    `SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type,
            coalesce(b.typname, t.typname) AS typname,
            CASE WHEN b.oid IS NOT NULL THEN t.typtypmod ELSE a.atttypmod END AS typmod
       FROM pg_attribute a
       JOIN pg_type t ON t.oid = a.atttypid
       LEFT JOIN pg_type b ON t.typtype = 'd' AND b.oid = t.typbasetype
      WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`,
    [quoteQualified(schema, table)],
  );
  if (rows.length === 0) return undefined;
  return new Map(rows.map((r) => [r.attname, { type: r.type, source: sourceTypeOf(r.typname, r.typmod) }]));
}

/**
 * The columns of a write-back's source (a table, view, materialized view or foreign table, as the
 * connection sees it, so also inside a transaction that made it), checked against the columns the
 * config names: its `keyColumn` and each of its `fields`. Throws a {@link TerminalError} naming the
 * source that does not exist (`writeback[0].from`) or each column it lacks by its config path
 * (`writeback[0].fields.LeadScore__c`), with the name it was likely meant to be and the columns it
 * has ({@link checkSourceHasColumns}, which the sync scope's check of a changed key column shares).
 * The plan checks its source with it, and `roundtrip validate` the transform's output.
 */
export async function sourceColumnsFor(
  client: PoolClient,
  task: Pick<WritebackTask, 'keyColumn' | 'fields'>,
  context: SourceCheckContext,
): Promise<Map<string, ColumnInfo>> {
  const { source, configPath, taskName } = context;
  const columns = await tableColumns(client, source.schema, source.table);
  if (!columns) {
    // A misspelt name (lead_statuses for lead_status) is far likelier than a transform that did
    // not run: name the table or view of the schema it is a typo away from.
    const { rows: relations } = await client.query<{ relname: string }>(
      `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')`,
      [source.schema],
    );
    const meant = suggestion(
      source.table,
      relations.map((r) => r.relname),
    );
    throw new SourceProblemError(
      taskName,
      `the source ${quoteQualified(source.schema, source.table)} does not exist ` +
        `(${configPath}.from${meant ? `; did you mean ${quoteIdent(meant)}?` : ''}; ${context.absentHint ?? 'is it made by a transform that has not run?'})`,
    );
  }
  checkSourceHasColumns([...columns.keys()], task, context);
  return columns;
}

/**
 * The error a plan fails with when the mapping is refused (`refused`, from
 * {@link mapWritebackTask}): with what is wrong with the source as well, if anything
 * ({@link sourceColumnsFor}), so that both are fixed at once rather than one run after the other.
 * The source is only looked at: a source check that cannot be made (PostgreSQL cannot be reached)
 * leaves the mapping's error as it is, the one the plan fails with.
 */
export async function withSourceProblem(
  refused: unknown,
  pg: Pool,
  task: Pick<WritebackTask, 'keyColumn' | 'fields'>,
  context: SourceCheckContext,
): Promise<unknown> {
  if (!(refused instanceof TerminalError)) return refused;
  try {
    await withClient(pg, (client) => sourceColumnsFor(client, task, context));
  } catch (err) {
    if (err instanceof SourceProblemError)
      return new TerminalError(`${refused.message}; and ${err.problem}`, { cause: refused });
  }
  return refused;
}

/**
 * ANALYZEs a table (or materialized view) whose statistics are missing or behind: never analyzed,
 * or more rows changed since than a tenth of it (and at least {@link STALE_STATISTICS_MIN_ROWS}).
 * A view has no statistics of its own; a table the role may not analyze is skipped by PostgreSQL
 * with a warning.
 */
async function analyzeIfStale(client: PoolClient, schema: string, table: string): Promise<void> {
  const { rows } = await client.query<{ stale: boolean }>(
    `SELECT c.relkind IN ('r', 'm', 'p')
            AND (coalesce(s.last_analyze, s.last_autoanalyze) IS NULL
                 OR s.n_mod_since_analyze > greatest(${STALE_STATISTICS_MIN_ROWS}, s.n_live_tup / 10)) AS stale
       FROM pg_class c LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
      WHERE c.oid = to_regclass($1)`,
    [quoteQualified(schema, table)],
  );
  if (rows[0]?.stale) await client.query(`ANALYZE ${quoteQualified(schema, table)}`);
}

/** Changed rows below which a table's statistics are not refreshed before planning. */
const STALE_STATISTICS_MIN_ROWS = 1000;

/** The table has a unique index on exactly this one column (no predicate, no expression). */
async function isUniqueColumn(
  client: PoolClient,
  schema: string,
  table: string,
  column: string,
): Promise<boolean> {
  const { rows } = await client.query<{ unique: boolean }>(
    `SELECT EXISTS (
       SELECT 1 FROM pg_index i
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indisvalid AND i.indnkeyatts = 1
          AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = $2) AS unique`,
    [quoteQualified(schema, table), column],
  );
  return rows[0]?.unique === true;
}

/** Where the diff reads what Salesforce has. */
type Comparison =
  | {
      kind: 'extract';
      table: string;
      schema: string;
      matchColumn: string;
      hasIsDeleted: boolean;
      /**
       * The extract reads every record of the object (it has no `where`): a key the copy lacks
       * has no record in Salesforce (as of the copy's load), so an upsert of it creates one.
       */
      complete: boolean;
      /** The extracted copy's columns, by field name. */
      columns: Map<string, ColumnInfo>;
      /**
       * Mapped fields the extract does not read now (not in its `fields`, or not loaded into the
       * copy yet): the copy holds no value of theirs, or one its extract no longer refreshes. An
       * update or upsert compares them with `sync_state` (what was last sent), the other fields
       * with the copy, which still tells which records exist and which are deleted.
       */
      notExtracted: readonly string[];
      /** The extract task's config path (`extract[0]`), for the note naming them. */
      extractPath: string;
      /** The match column is unique in the copy (its primary key): no DISTINCT ON needed. */
      uniqueMatch: boolean;
      /**
       * When the copy was last loaded, set only if this task synced records after it (a run that
       * skipped the extract): for those records, what the write-back last sent is newer than the
       * copy, and is what they are compared with.
       */
      syncedAfter?: Date | null;
    }
  | { kind: 'sync_state' };

/**
 * The Salesforce extract task of the write-back's object: the copy the plan compares with. Of
 * several extracts of the object (one filtered with a `where` for a report table, one of every
 * record, say), the one that serves the plan best: one that reads the key (else no record can be
 * matched), then one without a `where` (it sees every record: an edit or a deletion outside a
 * condition is missed), then the one reading the most mapped fields (each other one is compared
 * with what was last sent), then the first in the config.
 */
export function extractOfObject(
  config: Pick<CoreDeps['config'], 'extract'>,
  mapping: Pick<WritebackMapping, 'object' | 'keyField'> & {
    readonly fields: readonly Pick<MappedField, 'field'>[];
  },
): SalesforceExtractTask | undefined {
  const object = mapping.object.toLowerCase();
  const candidates = config.extract.filter(
    (e): e is SalesforceExtractTask => e.from === 'salesforce' && e.object.toLowerCase() === object,
  );
  if (candidates.length <= 1) return candidates[0];
  const rank = (e: SalesforceExtractTask): number[] => [
    mapping.keyField !== undefined && extractReads(e, mapping.keyField) ? 1 : 0,
    e.where === undefined ? 1 : 0,
    mapping.fields.filter((m) => extractReads(e, m.field.name)).length,
  ];
  let best = candidates[0] as SalesforceExtractTask;
  let bestRank = rank(best);
  for (const e of candidates.slice(1)) {
    const r = rank(e);
    const i = r.findIndex((x, j) => x !== bestRank[j]);
    if (i >= 0 && (r[i] as number) > (bestRank[i] as number)) {
      best = e;
      bestRank = r;
    }
  }
  return best;
}

/**
 * Whether the extract reads the field now: its configured fields, and the ones every extract reads.
 * A column left from a field taken out of the extract keeps the values of its last read
 * (extract-salesforce.ts), which no edit in Salesforce moves: no comparison for the plan.
 */
export function extractReads(extract: Pick<SalesforceExtractTask, 'fields'>, field: string): boolean {
  const name = field.toLowerCase();
  return [...extract.fields, ID_FIELD, WATERMARK_FIELD, DELETED_FIELD].some((f) => f.toLowerCase() === name);
}

/**
 * An update's or upsert's mapped fields that the extract of its object does not read, while the
 * extract reads its key: compared with sync_state while the copy serves the others. Empty for an
 * insert (no values compared), without such an extract, or when it does not read the key (the
 * whole task is compared with sync_state). `roundtrip validate` says them from the config alone;
 * the plan also counts a field whose column the extract has not loaded yet.
 */
export function mappedFieldsNotExtracted(
  config: Pick<CoreDeps['config'], 'extract'>,
  mapping: WritebackMapping,
): string[] {
  const extract = extractOfObject(config, mapping);
  if (!extract || mapping.task.mode === 'insert' || !mapping.keyField) return [];
  if (!extractReads(extract, mapping.keyField)) return [];
  return mapping.fields.filter((m) => !extractReads(extract, m.field.name)).map((m) => m.field.name);
}

/**
 * An upsert's or keyed insert's key field that the extract of its object does not read (not in its
 * `fields`): the copy's records cannot be matched with the source's keys, so the plan compares the
 * whole task with `sync_state` (what it last sent), and says so ({@link keyNotExtractedNote}) rather
 * than fall back in silence. Undefined without such an extract, or when it reads the key (an
 * update's key, Id, every extract reads).
 */
export function keyNotExtracted(
  config: Pick<CoreDeps['config'], 'extract'>,
  mapping: WritebackMapping,
): { field: string; extract: SalesforceExtractTask } | undefined {
  const extract = extractOfObject(config, mapping);
  if (!extract || !mapping.keyField || extractReads(extract, mapping.keyField)) return undefined;
  return { field: mapping.keyField, extract };
}

/**
 * What the CLI and the plan's log say of {@link keyNotExtracted}: what is compared instead, what
 * is then missed, and the fix. `extract` is the extract's config path (`extract[0]`).
 */
export function keyNotExtractedNote(
  task: string,
  unread: { field: string; extract: string; mode: string },
): string {
  const { field, extract, mode } = unread;
  const missed =
    mode === 'insert'
      ? `a record that has a key in Salesforce without this task having inserted it (made by hand, by another task) is not seen and is inserted again, and a record deleted in Salesforce is not detected`
      : `an edit made in Salesforce of a field it writes is not seen nor put back, a record deleted in Salesforce is not detected, and a record whose key was changed in Salesforce is upserted again under its old key, as a second record, once its values change (reported after the push as KEY_CHANGED_RECORD_CREATED, not prevented)`;
  return (
    `note: write-back ${task} cannot find its records in the extracted copy, as ${extract}.fields does not list ` +
    `its key ${field}: it compares every record with what it last sent (roundtrip.sync_state) instead, so ${missed}; ` +
    `add ${field} to ${extract}.fields to compare with the copy`
  );
}

async function chooseComparison(
  client: PoolClient,
  deps: Pick<CoreDeps, 'config'>,
  mapping: WritebackMapping,
): Promise<Comparison> {
  const extract = extractOfObject(deps.config, mapping);
  if (!extract) return { kind: 'sync_state' };
  const { schema, table } = splitTableName(extract.table, deps.config.postgres.schema);
  const columns = await tableColumns(client, schema, table);
  const matchColumn = mapping.keyField;
  // The copy holds a field's current value only if the extract reads it now, and has loaded it.
  const extracted = (field: string): boolean =>
    extractReads(extract, field) && columns !== undefined && columns.has(field);
  if (!columns || !matchColumn || !extracted(matchColumn)) return { kind: 'sync_state' };
  const notExtracted = mapping.fields.filter((m) => !extracted(m.field.name)).map((m) => m.field.name);
  // The copy is fresh unless this task wrote records after it was loaded (a run that skipped the
  // extract, say): those records would look changed, their new values not in the copy yet.
  const { rows } = await client.query<{ loaded: Date | null; newer: boolean }>(
    `SELECT e.updated_at AS loaded,
            EXISTS (SELECT 1 FROM roundtrip.sync_state s
                     WHERE s.task = $2 AND (e.updated_at IS NULL OR s.synced_at > e.updated_at)) AS newer
       FROM (SELECT (SELECT updated_at FROM roundtrip.extract_state WHERE task = $1) AS updated_at) AS e`,
    [extract.name, mapping.task.name],
  );
  const stale = rows[0]?.newer === true;
  return {
    kind: 'extract',
    schema,
    table,
    matchColumn,
    hasIsDeleted: columns.has('IsDeleted'),
    complete: extract.where === undefined,
    columns,
    notExtracted,
    extractPath: extractConfigPath(deps.config, extract),
    uniqueMatch: await isUniqueColumn(client, schema, table, matchColumn),
    ...(stale ? { syncedAfter: rows[0]?.loaded ?? null } : {}),
  };
}

/** Which push API a number of changed records calls for. */
export function choosePushApi(changed: number, task: WritebackTask): WritebackApi {
  if (changed === 0) return 'none';
  // Bulk results can be tied back to plan rows only through a key column: an insert without an
  // external-ID key stays on Collections, whose results come back in order.
  if (task.mode === 'insert' && task.key === undefined) return 'collections';
  return changed >= task.bulkThreshold ? 'bulk' : 'collections';
}

/** `maxChanges` stopped a run before it wrote anything. */
export class MaxChangesExceededError extends TerminalError {
  constructor(
    readonly task: string,
    readonly changed: number,
    readonly maxChanges: number,
    /** Where the limit is set (`writeback[0]`) and the run whose plan to inspect, for the message. */
    where: { configPath?: string; runId?: string } = {},
  ) {
    const setting = where.configPath ? `${where.configPath}.maxChanges` : 'maxChanges';
    const rows = where.runId
      ? `SELECT * FROM roundtrip.writeback_plan_rows WHERE run_id = ${sqlLiteral(where.runId)} AND task = ${sqlLiteral(task)}`
      : 'roundtrip.writeback_plan_rows';
    super(
      `Write-back ${task} would change ${changed} records, more than ${setting} (${maxChanges}); nothing was sent. Inspect the plan (${rows}), then raise maxChanges or fix the transform`,
    );
    this.name = ERROR_NAMES.maxChanges;
  }
}

/** What a plan counts: `sourceRows = rejected + heldBack + unchanged + changed`. */
interface PlanCounts {
  sourceRows: number;
  /** Rows refused for what the source holds. */
  rejected: number;
  /** Rows kept back while an earlier run's send of their key has no outcome ({@link HELD_BACK_CODES}). */
  heldBack: number;
  unchanged: number;
  changed: number;
}

/** What {@link insertPlan} reads and writes. */
interface PlanStatementArgs {
  readonly runId: string;
  readonly taskName: string;
  readonly mapping: WritebackMapping;
  readonly source: { schema: string; table: string };
  readonly columns: Map<string, ColumnInfo>;
  readonly comparison: Comparison;
  /** Ended runs whose inserts' look-up Salesforce refused this plan, with its answer ({@link resolveEndedRuns}). */
  readonly lookUpsRefused: ReadonlyMap<string, string>;
  /** The task's config path (`writeback[0]`), for messages naming a setting. */
  readonly configPath: string;
}

/**
 * The plan in one pass over the source, written as pages (migration 4):
 *
 * - `single`: the source grouped by key identity (a sort, in memory; {@link keyIdentity}, kept as
 *   `ki` when it is not the key itself): each key's row count, and its row's columns when it has
 *   one row. A key that is missing or repeated is rejected for every row that
 *   has it, by {@link insertKeyErrors}, which runs only when there is such a key;
 * - `converted`: each field's value (computed once: `OFFSET 0` keeps the planner from inlining a
 *   conversion into every check that reads it), and `checked`: the first problem of the row (key,
 *   then fields in mapping order);
 * - `joined`: what Salesforce has (by key identity) and whether the row changed;
 * - `cand`: the row's error, whether it is planned, and its payload and current values (built
 *   for planned rows only), source values for rejected rows;
 * - the rejected rows go to `writeback_errors`, the planned ones, numbered 1…n in key order, to
 *   `writeback_plan_pages` in pages of {@link PLAN_PAGE_ROWS}.
 *
 * No per-record table row is written here: the push writes a record's ledger row
 * (`writeback_plans`) when it sends the record.
 */
async function insertPlan(client: PoolClient, args: PlanStatementArgs): Promise<PlanCounts> {
  const { mapping, comparison } = args;
  const task = mapping.task;
  const typeOf = (column: string): SourceType => args.columns.get(column)?.source ?? { class: 'other' };
  // The raw source columns: the key column and every mapped column, each once.
  const raw = [...new Set([task.keyColumn, ...mapping.fields.map((m) => m.column)])];
  const rawName = (column: string): string => `r${raw.indexOf(column)}`;
  // Conversions and checks read the grouped row's columns (`r0`, `r1`, …).
  const checks = mapping.fields.map((m) => conversionOf(m, rawName(m.column), typeOf(m.column)));
  const v = (i: number): string => `v${i}`;

  const keyErrors: string[] = [];
  // Keys of another kind (external IDs fed to an update) fail every row: say what to change.
  const notAnIdHint = `an update finds records by Id, read from column ${quoteIdent(task.keyColumn)}: to match records by an external ID, use mode 'upsert' with that field as its key`;
  if (task.mode === 'update') {
    // An Id of another object (its key prefix not the object's: an Account's 001… fed to an update
    // of Lead, 00Q…) Salesforce refuses as MALFORMED_ID ("Lead ID: id value of incorrect type"):
    // refused here, without a call. An object without a key prefix is not checked.
    const otherObject =
      mapping.keyPrefix === null
        ? ''
        : // The untrimmed key's first characters first: nearly every row stops there.
          `WHEN left(k, 3) <> ${sqlLiteral(mapping.keyPrefix)} AND ${otherPrefixSql('btrim(k)', mapping.keyPrefix)} THEN ${rowError(
            'MALFORMED_ID',
            'Id',
            `format('Id: %s is an Id of another object (%s; %s''s is %s): %s', ${shown('k')}, ${prefixOwnerSql(idPrefixSql('btrim(k)'), mapping)}, ${sqlLiteral(mapping.object)}, ${sqlLiteral(mapping.keyPrefix)}, ${sqlLiteral(`an update finds records by Id, read from column ${quoteIdent(task.keyColumn)}, which must hold Ids of ${mapping.object} records`)})`,
          )}`;
    keyErrors.push(
      // An Id without padding passes the first test without trimming (nearly every row).
      `CASE WHEN NOT ${isSalesforceId('k')} AND NOT ${isSalesforceId('btrim(k)')} THEN ${rowError('MALFORMED_ID', 'Id', `format('Id: %s is not a Salesforce Id (15 or 18 letters and digits); %s', ${shown('k')}, ${sqlLiteral(notAnIdHint)})`)} ${otherObject} END`,
    );
  }
  const fieldErrors = mapping.fields.map((m, i) => errorSql(m, checks[i] as Conversion, v(i), mapping));
  const ownError = [...keyErrors, ...fieldErrors.map((e) => e.sql)];
  // A row that is not sent (unchanged) is refused only for a value the plan could not make: its
  // other values are what Salesforce holds (or held when it took them), and are not sent.
  const unsentError = [...keyErrors, ...fieldErrors.map((e) => e.unsent)].filter((e) => e !== 'NULL::jsonb');
  const pairs = mapping.fields.map((m, i): [string, string] => [m.field.name, v(i)]);
  const payloadSql = jsonbObjectSql(pairs);
  // The payload stored for a planned row: an insert leaves a null out of it in a field it leaves
  // out when null (leftOutWhenNull), which then takes its default; every other mapped field has its
  // key, null or not. Only a task mapping such a field pays for the strip, once per planned row.
  const leftOut = mapping.fields.map((m) => leftOutWhenNull(task.mode, m));
  const storedPayloadSql = !leftOut.includes(true)
    ? payloadSql
    : `${jsonbObjectSql(pairs.filter((_, i) => !leftOut[i]))} || jsonb_strip_nulls(${jsonbObjectSql(pairs.filter((_, i) => leftOut[i]))})`;
  // Whether the payload differs from what a sync_state row says was last accepted: its values,
  // compared as jsonb (45 = 45.0), or its hash for a row recorded by hand without values. Each
  // mapped field must hold its synced value (containment): a field no longer mapped changes
  // nothing in Salesforce, so dropping one from the config resends nothing; a field added, whose
  // value Salesforce holds is not known, sends every record once.
  const differsFromSynced = (alias: string): string =>
    `CASE WHEN ${alias}.synced_values IS NOT NULL THEN NOT (${alias}.synced_values @> ${payloadSql})
          ELSE ${alias}.value_hash IS DISTINCT FROM md5((${payloadSql})::text) END`;
  const sourcePayload = jsonbObjectSql(raw.map((c) => [c, `(${rawName(c)})::text`]));
  const valueList = mapping.fields.map((_, i) => v(i));
  const rawList = raw.map(rawName);
  // Grouped by how Salesforce tells keys apart: keys naming one record are repeated keys.
  const keyText = `(src.${quoteIdent(task.keyColumn)})::text`;
  const identity = keyIdentity(args.mapping, keyText);
  // Keys written differently may name one record (an Id in 15 or 18 characters, an external ID
  // in another case): every join by key then compares identities, the source's computed once
  // per row by the grouped pass (`ki`, the expression it groups by).
  const byIdentity = identity.sql !== keyText;
  const ki = byIdentity ? 'ki' : 'k';
  const kiCol = byIdentity ? ', ki' : '';
  // sync_state keeps each key as the plan's row had it, as the source wrote it (results.ts): a
  // record whose key the source has written differently since has a row under each spelling, and
  // the one synced last speaks for it. Finding it sorts all the task's rows (a fifth to a third
  // more plan time at a million rows, measured), so it is done only when some key is stored in
  // another spelling than the one canonical for its identity (one scan, which stops at the first
  // such key). Otherwise only the canonical rows are read, one per identity whatever a concurrent
  // push writes meanwhile: for update Salesforce's own 18-character Id (the salesforce_id the
  // results recorded; upper() of it is its identity), else the identity itself.
  // An update's or upsert's key that a copy extracted with a `where` lacks may have a record the
  // condition leaves out: it is compared with sync_state, as without a copy (`outside`).
  const outside = comparison.kind === 'extract' && !comparison.complete && task.mode !== 'insert';
  const usesState =
    comparison.kind === 'sync_state' ||
    task.mode === 'insert' ||
    comparison.syncedAfter !== undefined ||
    comparison.notExtracted.length > 0 ||
    outside;
  const stateKey = keyIdentity(mapping, 's.key').sql;
  const canonical =
    task.mode === 'update' ? `s.key = s.salesforce_id AND octet_length(s.key) = 18` : `s.key = ${stateKey}`;
  const canonicalKey = task.mode === 'update' ? 'upper(s.key)' : 's.key';
  const respelled =
    byIdentity &&
    usesState &&
    (
      await client.query<{ found: boolean }>(
        `SELECT EXISTS (SELECT 1 FROM roundtrip.sync_state s WHERE s.task = $1 AND (${canonical}) IS NOT TRUE) AS found`,
        [args.taskName],
      )
    ).rows[0]?.found === true;
  /** A task's sync_state rows (alias `s`) matching `where`, one per key identity (as `key`). */
  const stateRows = (cols: string, where = ''): string =>
    !byIdentity
      ? `SELECT s.key, ${cols} FROM roundtrip.sync_state s WHERE s.task = $2 ${where}`
      : respelled
        ? `SELECT DISTINCT ON (${stateKey}) ${stateKey} AS key, ${cols} FROM roundtrip.sync_state s
            WHERE s.task = $2 ${where} ORDER BY ${stateKey}, s.synced_at DESC`
        : // OFFSET 0: each row's identity is computed once, not again by every comparison the hash
          // join makes with it.
          `SELECT ${canonicalKey} AS key, ${cols} FROM roundtrip.sync_state s
            WHERE s.task = $2 ${where} AND ${canonical} OFFSET 0`;

  // What Salesforce has, by key, and the `changed` test against it.
  let currentSql: string;
  let changedSql: string;
  let currentJson: string;
  let carried: string;
  // The carried columns currentJson is built from (for planned rows only, after the paging sort).
  let currentInputs: string[];
  let currentCols: string[] = [];
  let freshJoin = '';
  // The Salesforce Id of the key's record, as far as the plan knows it.
  let curIdSql = 'cur.salesforce_id';
  // A row the copy shows Salesforce would refuse or mishandle whatever its values: its key's record
  // is deleted, or an upsert would create a record lacking a required field.
  let copyError = 'NULL::jsonb';
  if (comparison.kind === 'extract') {
    const t = quoteQualified(comparison.schema, comparison.table);
    const match = `t.${quoteIdent(comparison.matchColumn)}`;
    // The fields the copy holds as the extract reads them now are compared with it (`inCopy`); an
    // update's or upsert's other mapped fields with what sync_state says was last sent
    // (`fromState`), the copy still telling which records exist and which are deleted. (An insert
    // compares no values.)
    const inCopy = mapping.fields.flatMap((m, i) =>
      comparison.notExtracted.includes(m.field.name) ? [] : [i],
    );
    const fromState =
      task.mode === 'insert' ? [] : mapping.fields.flatMap((_, i) => (inCopy.includes(i) ? [] : [i]));
    currentCols = inCopy.map((i) => `cv${i}`);
    const converted = inCopy.map((i) => {
      const m = mapping.fields[i] as MappedField;
      const type = comparison.columns.get(m.field.name)?.source ?? { class: 'other' as const };
      return `${copyValueOf(m, `t.${quoteIdent(m.field.name)}`, type)} AS cv${i}`;
    });
    // A record deleted in Salesforce stays in a copy extracted with `deletes: 'flag'`, with
    // "IsDeleted" true. Its key is not free: an upsert or insert of it would create a second
    // record with the key beside the deleted one (in the recycle bin), an update of it fails
    // (ENTITY_IS_DELETED) on every run. So the copy's deleted rows are read, a live row with the
    // same key winning over them (a record re-created in Salesforce), and a row whose key has
    // only a deleted record is refused (`copyError`). With `recreateDeleted` (insert, upsert)
    // they are left out instead: the key is one Salesforce has no record of, and is created.
    const recreate = comparison.hasIsDeleted && task.mode !== 'update' && task.recreateDeleted === true;
    const seesDeleted = comparison.hasIsDeleted && !recreate;
    const live = recreate ? `WHERE t."IsDeleted" IS NOT TRUE` : '';
    const deletedSql = seesDeleted ? `(t."IsDeleted" IS TRUE)` : 'false';
    // The copy's key as the source's is matched, by its identity: for update the extract's Id is
    // Salesforce's 18 characters, whose identity is upper() of it; a number key is its column
    // converted as the plan converts it (its type spares the parsing), as text.
    const keyMapped = mapping.fields.find((m) => m.isKey);
    let copyKey = `${match}::text`;
    if (byIdentity && task.mode === 'update') {
      copyKey = `upper(${copyKey})`;
    } else if (byIdentity && keyMapped && (keyMapped.kind === 'int' || keyMapped.kind === 'number')) {
      const type = comparison.columns.get(keyMapped.field.name)?.source ?? { class: 'other' as const };
      const value = conversionOf(keyMapped, match, type).value;
      copyKey = holdsMoreThanDouble(keyMapped) ? `((${value})::float8)::text` : `(${value})::text`;
    } else if (byIdentity) {
      copyKey = keyIdentity(mapping, copyKey).sql;
    }
    // A unique match column (the copy's primary key) joins as it is, and so does the identity of
    // a unique Id, computed once per row (OFFSET 0: not again by every comparison the hash join
    // makes; the conversions, above it, only for the rows that match); else one row per key.
    const copyColumns = [
      ...new Set([
        'Id',
        comparison.matchColumn,
        ...inCopy.map((i) => (mapping.fields[i] as MappedField).field.name),
        ...(seesDeleted ? ['IsDeleted'] : []),
      ]),
    ];
    const identityOnce = `(SELECT ${copyKey} AS key, ${copyColumns.map((c) => `t.${quoteIdent(c)}`).join(', ')}
                             FROM ${t} AS t ${live} OFFSET 0)`;
    // (No converted value when the copy holds none of the mapped fields: every one is compared
    // with sync_state, the copy telling only which records exist and which are deleted.)
    const selected = [`t."Id"::text AS salesforce_id`, `${deletedSql} AS deleted`, ...converted].join(', ');
    currentSql = !(comparison.uniqueMatch && (!byIdentity || task.mode === 'update'))
      ? `SELECT DISTINCT ON (${copyKey}) ${copyKey} AS key, ${selected}
           FROM ${t} AS t ${live} ORDER BY ${copyKey}${seesDeleted ? ', t."IsDeleted" IS TRUE' : ''}`
      : byIdentity
        ? `SELECT t.key, ${selected} FROM ${identityOnce} AS t`
        : `SELECT ${copyKey} AS key, ${selected} FROM ${t} AS t ${live}`;
    // Typed values compared directly (45 = 45.0): no payload is built for an unchanged row. An Id
    // is compared by identity: the copy holds Salesforce's 18 characters, the source may give 15,
    // or 18 in another case, and either names the same record.
    const compared = (m: MappedField, x: string): string => (m.kind === 'id' ? idIdentitySql(x, x) : x);
    // A number field whose precision passes what a double holds: Salesforce may keep the value it
    // was sent as the nearest double (below), so such fields are compared apart from the others.
    const wide = inCopy.filter((i) => holdsMoreThanDouble(mapping.fields[i] as MappedField));
    const exact = inCopy.filter((i) => !wide.includes(i));
    const exactTest = exact.length
      ? [
          `(${exact.map((i) => compared(mapping.fields[i] as MappedField, v(i))).join(', ')}) IS DISTINCT FROM (${exact.map((i) => compared(mapping.fields[i] as MappedField, `cur.cv${i}`)).join(', ')})`,
        ]
      : [];
    // A wide value differs unless the copy holds it, or holds its nearest double while sync_state
    // says this very value was sent: what Salesforce keeps of a number over 15 significant digits
    // is undocumented (Help 000394530 shows such values rounded as doubles; a record saved in the
    // UI is rounded so), and resending it would change nothing Salesforce can hold. A value the
    // task never sent is compared exactly, so a change past the 15th digit is still sent.
    const wideTest = wide.map((i) => {
      const name = sqlLiteral((mapping.fields[i] as MappedField).field.name);
      return `(${v(i)} IS DISTINCT FROM cur.cv${i} AND NOT coalesce(${v(i)}::float8 = cur.cv${i}::float8 AND sent.synced_values -> ${name} = to_jsonb(${v(i)}), false))`;
    });
    // A field the copy does not hold differs unless it holds the value last sent (containment, as
    // in differsFromSynced; a row recorded by hand without values, by the hash of the whole
    // payload); a record never synced is sent.
    const stateTest = fromState.length
      ? [
          `NOT coalesce(sent.synced_values @> ${jsonbObjectSql(fromState.map((i) => [(mapping.fields[i] as MappedField).field.name, v(i)]))}, sent.value_hash = md5((${payloadSql})::text), false)`,
        ]
      : [];
    const valueTests = [...exactTest, ...wideTest, ...stateTest].join(' OR ');
    // A key the copy lacks: of a copy of every record, one Salesforce has no record of (sent); of
    // a copy extracted with a `where`, maybe one the condition leaves out, compared with what was
    // last sent (a key never sent is sent).
    const againstCopy = outside
      ? `CASE WHEN cur.key IS NULL THEN ${differsFromSynced('sent')} ELSE ${valueTests} END`
      : `cur.key IS NULL OR ${valueTests}`;
    const fresh = task.mode !== 'insert' && comparison.syncedAfter !== undefined;
    changedSql =
      task.mode === 'insert'
        ? `cur.key IS NULL AND ss.key IS NULL`
        : fresh
          ? // A record this task synced after the copy was loaded: compared with what was sent.
            `CASE WHEN fresh.key IS NULL THEN ${againstCopy} ELSE ${differsFromSynced('fresh')} END`
          : againstCopy;
    // Carried as typed values; the jsonb of what Salesforce has is built for planned rows only.
    const stateCols = fromState.length || outside ? ['sent_values'] : [];
    carried = `cur.key AS cur_key, ${[...currentCols.map((c) => `cur.${c}`), ...(stateCols.length ? ['sent.synced_values AS sent_values'] : [])].join(', ')}${fresh ? ', fresh.synced_values AS fresh_values' : ''}`;
    // The current values: the copy's, and for the fields it does not hold, the ones last sent.
    const fromCopyJson = jsonbObjectSql(
      inCopy.map((i) => [(mapping.fields[i] as MappedField).field.name, `cv${i}`]),
    );
    const fromStateJson = fromState.length
      ? ` || ${jsonbObjectSql(
          fromState.map((i) => {
            const name = (mapping.fields[i] as MappedField).field.name;
            return [name, `sent_values -> ${sqlLiteral(name)}`];
          }),
        )}`
      : '';
    // A key outside a copy extracted with a `where`: the values last sent.
    const copyJson = `CASE WHEN cur_key IS NOT NULL THEN ${fromCopyJson}${fromStateJson}${outside ? ' ELSE sent_values' : ''} END`;
    currentJson = fresh ? `coalesce(fresh_values, ${copyJson})` : copyJson;
    if (outside) curIdSql = 'coalesce(cur.salesforce_id, sent.salesforce_id)';
    currentInputs = ['cur_key', ...currentCols, ...stateCols, ...(fresh ? ['fresh_values'] : [])];
    freshJoin = fresh
      ? `LEFT JOIN (${stateRows(
          's.synced_values, s.value_hash',
          comparison.syncedAfter
            ? `AND s.synced_at > ${sqlLiteral(comparison.syncedAfter.toISOString())}::timestamptz`
            : '',
        )}) AS fresh ON fresh.key = checked.${ki}`
      : '';
    if ((wide.length > 0 || fromState.length > 0 || outside) && task.mode !== 'insert') {
      const sentCols =
        fromState.length > 0 || outside
          ? `s.synced_values, s.value_hash${outside ? ', s.salesforce_id' : ''}`
          : 's.synced_values';
      freshJoin += ` LEFT JOIN (${stateRows(sentCols)}) AS sent ON sent.key = checked.${ki}`;
    }
    // Not for a key this task synced after the copy was loaded (its record was live then), nor for
    // one this task inserted (never sent again: unchanged).
    const notSyncedSince = fresh
      ? ' AND fresh.key IS NULL'
      : task.mode === 'insert'
        ? ' AND ss.key IS NULL'
        : '';
    // In format()'s pattern: a `%` of the table's name (an identifier may hold one) is doubled.
    const copyName = quoteQualified(comparison.schema, comparison.table).replaceAll('%', '%%');
    const keyName = mapping.keyField ?? task.keyColumn;
    const deletedWhy =
      task.mode === 'update'
        ? `an update of a deleted record fails (ENTITY_IS_DELETED) on every run, so it is not sent. Leave the rows of records deleted in Salesforce out of the source, in the transform however it is built: ${copyName}, the extracted copy of ${mapping.object}, holds "IsDeleted" for each record (keep the rows whose record there has "IsDeleted" IS NOT TRUE); or undelete the record in Salesforce (the next extract sees it live)`
        : `an ${task.mode} would create a second record with this key beside the deleted one, so it is not sent. Leave the rows of records deleted in Salesforce out of the source, in the transform however it is built: ${copyName}, the extracted copy of ${mapping.object}, holds "IsDeleted" for each record (keep the rows whose record there has "IsDeleted" IS NOT TRUE); or undelete the record in Salesforce (the next extract sees it live), or, to create a new record for such keys, set ${args.configPath}.recreateDeleted: true`;
    const whens = seesDeleted
      ? [
          `WHEN cur.deleted${notSyncedSince} THEN jsonb_build_array('ENTITY_IS_DELETED', ${sqlLiteral(keyName)}, format(${sqlLiteral(
            `key %s: its record %s is deleted in Salesforce (${copyName} holds it with "IsDeleted" true, and no live record with this key): ${deletedWhy}`,
          )}, left(k, ${MESSAGE_VALUE_CHARS}), cur.salesforce_id))`,
        ]
      : [];
    // Upsert: a key whose record, the Salesforce Id sync_state recorded for it, the copy holds live
    // under another key (or none): someone changed the record's key in Salesforce. The copy has no
    // record with the key (`cur`), so the upsert would create a second record for it beside the
    // one this task synced. Refused, naming the record and what it holds now; sync_state is left
    // as it is, so every run refuses it the same way until someone puts the key back in
    // Salesforce or changes the source. Asked only for a key the copy lacks (a new record, in a
    // task's steady state a few), by a look-up of sync_state's primary key and the copy's (its
    // `Id`), and only when the task's sync_state holds an Id at all (a first load asks nothing).
    // Not for a key this task synced after the copy was loaded (`fresh`): its record was written
    // since, and the copy may predate it. An insert never sends a key it inserted (`ss`).
    const moved =
      task.mode === 'upsert' &&
      !(fresh && comparison.syncedAfter === null) &&
      (
        await client.query<{ found: boolean }>(
          `SELECT EXISTS (SELECT 1 FROM roundtrip.sync_state s WHERE s.task = $1 AND s.salesforce_id IS NOT NULL) AS found`,
          [args.taskName],
        )
      ).rows[0]?.found === true;
    const keyField = quoteIdent(comparison.matchColumn);
    const movedSql = moved
      ? `CASE WHEN cur.key IS NULL${fresh ? ' AND fresh.key IS NULL' : ''} THEN (
           SELECT jsonb_build_array(${sqlLiteral(KEY_CHANGED_CODE)}, ${sqlLiteral(keyName)}, format(${sqlLiteral(
             `key %s: its record %s, which this task last wrote with this key (roundtrip.sync_state), holds %s in Salesforce now (${copyName}, the extracted copy of ${mapping.object}, has no record with key %s): its ${keyName} was changed in Salesforce, and an upsert of the key would create a second record for it, so it is not sent. If the change was a mistake, set ${keyName} of record %s back to %s in Salesforce: the next run's extract sees it, and the row updates the record. If the new key is right, make the source write it for this record instead of %s: its row then updates the record. To create a new record with key %s beside it on purpose, forget what this task synced under the key: DELETE FROM roundtrip.sync_state WHERE task = %L AND key = %L`,
           )}, left(checked.k, ${MESSAGE_VALUE_CHARS}), s.salesforce_id,
               CASE WHEN t.${keyField} IS NULL THEN ${sqlLiteral(`no ${keyName}`)} ELSE ${sqlLiteral(`${keyName} `)} || left(t.${keyField}::text, ${MESSAGE_VALUE_CHARS}) END,
               left(checked.k, ${MESSAGE_VALUE_CHARS}), s.salesforce_id, left(checked.k, ${MESSAGE_VALUE_CHARS}),
               left(checked.k, ${MESSAGE_VALUE_CHARS}), left(checked.k, ${MESSAGE_VALUE_CHARS}), $2::text, s.key),
             s.salesforce_id)
             FROM roundtrip.sync_state s JOIN ${t} AS t ON t."Id" = s.salesforce_id
            WHERE s.task = $2 AND s.key = ANY (ARRAY[checked.k, checked.${ki}]) AND s.salesforce_id IS NOT NULL
                  ${comparison.hasIsDeleted ? 'AND t."IsDeleted" IS NOT TRUE' : ''}
            ORDER BY s.synced_at DESC LIMIT 1) END`
      : undefined;
    const missing = mapping.unmappedRequired;
    const [firstMissing] = missing;
    let requiredSql: string | undefined;
    if (task.mode === 'upsert' && comparison.complete && firstMissing !== undefined) {
      const them = missing.length === 1 ? 'it' : 'them';
      requiredSql = `CASE WHEN cur.key IS NULL${fresh ? ' AND fresh.key IS NULL' : ''} THEN jsonb_build_array('REQUIRED_FIELD_MISSING', ${sqlLiteral(firstMissing)}, format(${sqlLiteral(
        `key %s has no record in ${copyName} (the extracted copy of ${mapping.object}): the upsert would create one, which needs ${missing.join(', ')} (required: not nillable, no default), and ${args.configPath}.fields does not map ${them}: Salesforce would refuse it (REQUIRED_FIELD_MISSING), so it is not sent. Map ${them} in ${args.configPath}.fields, or leave the keys that have no record out of the source (a record created in Salesforce since the extract is seen by the next one)`,
      )}, left(k, ${MESSAGE_VALUE_CHARS}))) END`;
    }
    // The first that applies: a deleted record, a key changed in Salesforce, a required field missing.
    const copyErrors = [
      ...(whens.length > 0 ? [`CASE ${whens.join(' ')} END`] : []),
      ...(movedSql ? [movedSql] : []),
      ...(requiredSql ? [requiredSql] : []),
    ];
    if (copyErrors.length === 1) copyError = copyErrors[0] as string;
    else if (copyErrors.length > 1) copyError = `coalesce(${copyErrors.join(', ')})`;
  } else {
    currentSql = stateRows('s.salesforce_id, s.synced_values, s.value_hash');
    // The values last accepted by Salesforce.
    changedSql =
      task.mode === 'insert' ? `cur.key IS NULL` : `cur.key IS NULL OR ${differsFromSynced('cur')}`;
    carried = `cur.synced_values AS current_values`;
    currentJson = 'current_values';
    currentInputs = ['current_values'];
  }
  // Insert: a key inserted before (its Salesforce Id in sync_state) is never sent again.
  const insertedJoinOn = (on: string): string =>
    task.mode === 'insert' && comparison.kind === 'extract'
      ? `LEFT JOIN (${stateRows('s.salesforce_id', 'AND s.salesforce_id IS NOT NULL')}) AS ss ON ss.key = ${on}`
      : '';
  const insertedJoin = insertedJoinOn(`checked.${ki}`);
  // Insert: a key whose earlier insert has no recorded outcome is never sent again blindly: still
  // `sent` in another run's plan, or reported INSERT_OUTCOME_UNKNOWN there, and not resolved since
  // (its Salesforce Id recorded in sync_state).
  const unknownKey = keyIdentity(mapping, 'x.key').sql;
  // How the earlier send went out: `call` (Collections), `job` (a Bulk job that run never
  // collected: a later plan collects it), `gone` (a job Salesforce no longer answers for). A key
  // sent by a call or in a job gone is looked up by a later plan when the task is keyed, else
  // recorded by hand, with roundtrip resolve.
  const unknownJoin =
    task.mode === 'insert'
      ? `LEFT JOIN (
           SELECT DISTINCT ON (${unknownKey}) ${unknownKey} AS key, x.run_id, x.how, x.job_id, x.sent_at,
                  EXISTS (SELECT 1 FROM roundtrip.runs r WHERE r.run_id = x.run_id AND r.status = 'running') AS running
             FROM (
             SELECT p.key, p.run_id, p.job_id,
                    ${sentHowSql()} AS how,
                    p.updated_at AS sent_at
               FROM roundtrip.writeback_plans p
               LEFT JOIN roundtrip.writeback_jobs j ON j.run_id = p.run_id AND j.task = p.task AND j.job_id = p.job_id
              WHERE p.task = $2 AND p.status = 'sent' AND p.run_id <> $1
             UNION ALL
             SELECT e.key, e.run_id, NULL, 'call', e.created_at FROM roundtrip.writeback_errors e
              WHERE e.task = $2 AND e.code = 'INSERT_OUTCOME_UNKNOWN' AND e.stage = 'push' AND e.run_id <> $1) AS x
            WHERE x.key IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM roundtrip.sync_state s WHERE s.task = $2 AND s.key = x.key AND s.salesforce_id IS NOT NULL)
            ORDER BY ${unknownKey}, x.run_id) AS u ON u.key = checked.${ki}`
      : '';
  // What no plan can resolve is recorded by hand, once someone looked in Salesforce: the command
  // that records it (bin/commands/resolve.ts), with the task and the whole key, quoted for a shell.
  const resolveCommand = resolveCommandSql(args.taskName, 'k');
  const byHand = `'key %s was sent for insert by run %s, whose result was never recorded, and without an external-ID key it cannot be looked up: find the record in Salesforce, then record what you found with %s'`;
  // A key whose look-up Salesforce refused this plan (resolveEndedRuns): held back as long as it
  // refuses, which may be for good (a key field the user can no longer read). The message gives
  // Salesforce's answer and the way out: someone looks in Salesforce and records it by hand.
  const refusedRuns = [...args.lookUpsRefused];
  const refusedMessage = (sent: string, job: string | null): string =>
    `format(${sqlLiteral(
      `key %s was sent for insert by run %s${sent}, whose result was never recorded: not inserted by this run. This plan looked the key up by ${mapping.keyField ?? ''} and Salesforce refused the look-up (%s): the key stays held back while it refuses. If it keeps refusing, find the record in Salesforce, then record what you found with %s`,
    )}, left(k, ${MESSAGE_VALUE_CHARS}), unknown_run,${job === null ? '' : ` ${job},`} left(CASE unknown_run ${refusedRuns
      .map(([run, why]) => `WHEN ${sqlLiteral(run)} THEN ${sqlLiteral(why)}`)
      .join(' ')} END, ${REFUSAL_CHARS}), ${resolveCommandSql(args.taskName, 'k', { withoutLookUp: true })})`;
  const lookUpRefused = (refused: string, otherwise: string): string =>
    mapping.keyField && refusedRuns.length > 0
      ? `CASE WHEN unknown_run IN (${refusedRuns.map(([run]) => sqlLiteral(run)).join(', ')}) THEN ${refused} ELSE ${otherwise} END`
      : otherwise;
  // A key in a job gone is looked up as one sent by a call when the task is keyed (resolveEndedRuns).
  const goneMessage = (job: string): string =>
    mapping.keyField
      ? `format(${sqlLiteral(
          `key %s was sent for insert by run %s in Bulk job %s, which Salesforce no longer answers for (its results went with it): not inserted by this run. Once ${INSERT_SETTLE_MS / 60_000} minutes have passed since the send, the next plan looks the key up by ${mapping.keyField} and records the record or inserts the key`,
        )}, left(k, ${MESSAGE_VALUE_CHARS}), unknown_run, ${job})`
      : `format('key %s was sent for insert by run %s in Bulk job %s, which Salesforce no longer answers for, and without an external-ID key it cannot be looked up: find the record in Salesforce, then record what you found with %s', left(k, ${MESSAGE_VALUE_CHARS}), unknown_run, ${job}, ${resolveCommand})`;
  // The sending run still recorded as running: no plan collects its jobs nor looks its keys up
  // before it has ended, whatever Salesforce did; the message says so, and how it is ended when its
  // process is gone (a run of this machine is ended by the next command here itself).
  const endIt = `(if its process is gone, roundtrip status --end-run %s ends it)`;
  const settled = `(unknown_sent_at + ${INSERT_SETTLE_MS} * interval '1 millisecond')`;
  const keyedCall = mapping.keyField
    ? `CASE WHEN unknown_running THEN format(${sqlLiteral(
        `key %s was sent for insert by run %s, which is still recorded as running (roundtrip status), and its result is not recorded yet: not inserted by this run. Once that run has ended ${endIt} and ${INSERT_SETTLE_MS / 60_000} minutes have passed since the send, the next plan looks the key up by ${mapping.keyField} and records the record or inserts the key`,
      )}, left(k, ${MESSAGE_VALUE_CHARS}), unknown_run, unknown_run)
       WHEN ${settled} > now() THEN format(${sqlLiteral(
         `key %s was sent for insert by run %s, which ended without recording its result: not inserted by this run, as Salesforce may still be creating the record until ${INSERT_SETTLE_MS / 60_000} minutes after the send. The first plan from %s UTC on (%s minutes from this plan) looks the key up by ${mapping.keyField} and records the record or inserts the key`,
       )}, left(k, ${MESSAGE_VALUE_CHARS}), unknown_run, to_char(${settled} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), ceil(extract(epoch FROM ${settled} - now()) / 60)::int)
       ELSE format(${sqlLiteral(
         `key %s was sent for insert by run %s, which ended without recording its result: not inserted by this run. The next plan looks the key up by ${mapping.keyField} and records the record or inserts the key`,
       )}, left(k, ${MESSAGE_VALUE_CHARS}), unknown_run) END`
    : `CASE WHEN unknown_running THEN format(${sqlLiteral(
        `key %s was sent for insert by run %s, which is still recorded as running (roundtrip status), and without an external-ID key it cannot be looked up: not inserted by this run. Once that run has ended ${endIt}, find the record in Salesforce, then record what you found with %s`,
      )}, left(k, ${MESSAGE_VALUE_CHARS}), unknown_run, unknown_run, ${resolveCommand})
       ELSE format(${byHand}, left(k, ${MESSAGE_VALUE_CHARS}), unknown_run, ${resolveCommand}) END`;
  const unknownMessage = (how: string, job: string): string =>
    `CASE ${how}
       WHEN 'job' THEN CASE WHEN unknown_running
         THEN format(${sqlLiteral(
           `key %s was sent for insert by run %s in Bulk job %s, and that run is still recorded as running (roundtrip status): no plan collects the job's results before the run has ended, finished in Salesforce or not. Not inserted by this run. Once the run has ended ${endIt}, the next plan collects them once Salesforce says the job is finished`,
         )}, left(k, ${MESSAGE_VALUE_CHARS}), unknown_run, ${job}, unknown_run)
         ELSE format('key %s was sent for insert by run %s in Bulk job %s, whose results that run never collected, and Salesforce had not finished the job when this run planned (or could not be asked): not inserted by this run; the next plan collects them once Salesforce says the job is finished', left(k, ${MESSAGE_VALUE_CHARS}), unknown_run, ${job}) END
       WHEN 'gone' THEN ${lookUpRefused(refusedMessage(' in Bulk job %s, which Salesforce no longer answers for', job), goneMessage(job))}
       ELSE ${lookUpRefused(refusedMessage('', null), keyedCall)} END`;
  // Update and upsert: a key in a Bulk job of an ended run that was not collected (Salesforce had
  // not finished it when resolveEndedRuns asked, or could not be asked) is kept back. Sent now, its
  // current values could be written before the job's older ones, which would then stay in
  // Salesforce while sync_state, once the job is collected, holds them and the plan compares the
  // source with them; kept back, the next plan collects the job first and sends what differs.
  const pendingJoin =
    task.mode === 'insert'
      ? ''
      : `LEFT JOIN (
           SELECT DISTINCT ON (${unknownKey}) ${unknownKey} AS key, x.run_id, x.job_id FROM (
             SELECT p.key, p.run_id, p.job_id
               FROM roundtrip.writeback_plans p
               JOIN roundtrip.writeback_jobs j ON j.run_id = p.run_id AND j.task = p.task AND j.job_id = p.job_id
               JOIN roundtrip.runs r ON r.run_id = p.run_id
              WHERE p.task = $2 AND p.status = 'sent' AND p.attempts = 0 AND p.run_id <> $1
                AND j.collected_at IS NULL AND r.status <> 'running') AS x
            ORDER BY ${unknownKey}, x.run_id) AS u ON u.key = checked.${ki}`;
  const unknownCol =
    task.mode === 'insert'
      ? `, u.key AS unknown_key, u.run_id AS unknown_run, u.how AS unknown_how, u.job_id AS unknown_job,
         u.running AS unknown_running, u.sent_at AS unknown_sent_at`
      : `, u.key AS unknown_key, u.run_id AS unknown_run, u.job_id AS unknown_job`;
  const pendingMessage = `format(${sqlLiteral(
    `key %s was sent for ${task.mode} by run %s in Bulk job %s, which Salesforce had not finished when this run planned: not sent by this run, so that the job cannot write its older values after this run's; the next plan collects the job and sends the key's current values if they differ from what it wrote`,
  )}, left(k, ${MESSAGE_VALUE_CHARS}), unknown_run, unknown_job)`;
  const unknownRef =
    task.mode === 'insert'
      ? `CASE WHEN unknown_key IS NOT NULL THEN jsonb_build_array('INSERT_OUTCOME_UNKNOWN', ${sqlLiteral(task.keyColumn)}, ${unknownMessage('unknown_how', 'unknown_job')}) END`
      : `CASE WHEN unknown_key IS NOT NULL THEN jsonb_build_array('OUTCOME_PENDING', ${sqlLiteral(task.keyColumn)}, ${pendingMessage}) END`;
  const salesforceIdSql = task.mode === 'update' ? 'btrim(k)' : 'cur_salesforce_id';
  // A rejected row's Salesforce Id, as far as the plan knows it (roundtrip errors shows it beside
  // the key): an update's key is the Id, unless it is not one (MALFORMED_ID); an upsert's or an
  // insert's key found in what Salesforce has (the extracted copy or sync_state) has its record's.
  const rejectedIdSql = task.mode === 'update' ? updateKeyIdSql('k') : 'cur_salesforce_id';
  // A planned row's Id, payload and current values are built from these columns in the paging
  // pass, not in cand: cand's rows stay narrow (a materialised million of them fit in work_mem
  // instead of spilling), and the jsonb is built once, for the rows paged.
  const planInputs = [
    ...(task.mode === 'update' ? [] : ['cur_salesforce_id']),
    ...valueList,
    ...currentInputs,
  ];
  // Insert: a key inserted before is never sent again (changed is false for it), so its row is
  // not checked either: what it holds is never sent, and a value Salesforce would refuse in it
  // must neither be listed nor count toward maxRejectRate. It counts as unchanged. (Held back
  // all the same while an earlier run's send of the key has no outcome; and a key whose only
  // record in the copy is deleted, not changed either, is rejected by copy_error.)
  // Update, upsert: a row that is not sent (unchanged: its values are those of the record, or those
  // it last took) is refused only for a value the plan could not make (not convertible, missing;
  // its NULL may match the record's): not for a value the record holds, which would fail every run
  // while nothing is sent (a restricted picklist value deactivated since it was written, the text
  // `#N/A` another client wrote). Those checks run again only for such rows (few).
  const ownErrorOfRow =
    task.mode === 'insert'
      ? 'CASE WHEN changed THEN own_error END'
      : `CASE WHEN own_error IS NULL OR changed THEN own_error ELSE ${unsentError.length ? `coalesce(${unsentError.join(', ')})` : 'NULL::jsonb'} END`;
  // A key repeated or missing: its rows are rejected by insertKeyErrors.
  const specialSql = `(copies > 1 OR k IS NULL OR btrim(k) = '')`;
  const sql = `
    WITH cand AS MATERIALIZED (
      SELECT k${kiCol}, copies, special, err, planned,
             ${planInputs.map((c) => `CASE WHEN planned THEN ${c} END AS ${c},`).join(' ')}
             CASE WHEN err IS NOT NULL THEN ${sourcePayload} END AS source_values,
             CASE WHEN err IS NOT NULL THEN coalesce(${rejectedIdSql}, err->>3) END AS rejected_salesforce_id
        FROM (
          SELECT *, NOT special AND err IS NULL AND changed AS planned
            FROM (
              SELECT joined.*,
                     CASE WHEN special THEN NULL ELSE coalesce(${ownErrorOfRow}, copy_error, ${unknownRef}) END AS err
                FROM (
                  SELECT checked.*, ${curIdSql} AS cur_salesforce_id, ${carried},
                         (${changedSql}) AS changed, ${copyError} AS copy_error
                         ${unknownCol}
                    FROM (
                      SELECT k${kiCol}, copies, special, ${[...valueList, ...rawList].join(', ')},
                             CASE WHEN NOT special THEN
                               ${ownError.length ? `coalesce(${ownError.join(',\n                                        ')}, NULL::jsonb)` : 'NULL::jsonb'} END AS own_error
                        FROM (
                          SELECT k${kiCol}, copies, ${specialSql} AS special,
                                 ${checks.map((c, i) => `${c.value} AS ${v(i)}`).join(', ')},
                                 ${rawList.join(', ')}
                            FROM (
                              SELECT ${byIdentity ? `any_value(${keyText}) AS k, ${identity.sql} AS ki` : `${keyText} AS k`}, count(*) AS copies,
                                     ${raw.map((c) => `any_value(src.${quoteIdent(c)}) AS ${rawName(c)}`).join(', ')}
                                FROM ${quoteQualified(args.source.schema, args.source.table)} AS src
                               GROUP BY ${identity.sql}
                            ) AS single
                          -- Each conversion runs once per row, not once per check that reads it.
                          OFFSET 0
                        ) AS converted
                      -- The payload and the checks are computed once, below the join.
                      OFFSET 0
                    ) AS checked
                    LEFT JOIN (${currentSql}) AS cur ON cur.key = checked.${ki}
                    ${freshJoin}
                    ${insertedJoin}
                    ${unknownJoin}
                    ${pendingJoin}
                  -- The changed test (a payload built and compared) runs once per row, not once per reference.
                  OFFSET 0
                ) AS joined
            ) AS flagged
        ) AS decided
    ),
    rejected AS (
      INSERT INTO roundtrip.writeback_errors (run_id, task, key, salesforce_id, stage, code, message, fields, payload)
      SELECT $1, $2, k, rejected_salesforce_id, 'plan', err->>0, err->>2, ARRAY[err->>1], source_values
        FROM cand WHERE err IS NOT NULL
    ),
    paged AS (
      INSERT INTO roundtrip.writeback_plan_pages (run_id, task, page, first_seq, rows, operation, keys, salesforce_ids, payloads, currents)
      SELECT $1, $2, (seq - 1) / ${PLAN_PAGE_ROWS}, min(seq), count(*), $3,
             array_agg(k ORDER BY seq), array_agg(salesforce_id ORDER BY seq),
             array_agg(payload ORDER BY seq), array_agg(current_values ORDER BY seq)
        -- Numbered by key identity, the grouped pass's order: the joins hand it on when the source is
        -- the side they probe with (then this sort only checks it), and whichever side the planner
        -- hashes the pages keep it.
        FROM (SELECT k, ${salesforceIdSql} AS salesforce_id, ${storedPayloadSql} AS payload, ${currentJson} AS current_values,
                     row_number() OVER (ORDER BY ${ki}) AS seq
                FROM cand WHERE planned) AS numbered
       GROUP BY (seq - 1) / ${PLAN_PAGE_ROWS}
    )
    SELECT coalesce(sum(copies), 0) AS source_rows,
           count(*) FILTER (WHERE err IS NOT NULL AND NOT (err->>0 = ANY ($4::text[]))) AS rejected,
           count(*) FILTER (WHERE err->>0 = ANY ($4::text[])) AS held_back,
           coalesce(sum(copies) FILTER (WHERE special), 0) AS key_rejected,
           count(*) FILTER (WHERE planned) AS changed
      FROM cand`;
  const { rows } = await client.query<{
    source_rows: string;
    rejected: string;
    held_back: string;
    key_rejected: string;
    changed: string;
  }>(sql, [args.runId, args.taskName, task.mode, [...HELD_BACK_CODES]]);
  const keyRejected = Number(rows[0]?.key_rejected ?? 0);
  if (keyRejected > 0) {
    // A repeated key's rows name the Id the key already has, as a rejected row does (rejectedIdSql).
    const knownId =
      task.mode === 'update'
        ? undefined
        : {
            joins: (on: string) =>
              `LEFT JOIN (${currentSql}) AS cur ON cur.key = ${on} ${insertedJoinOn(on)}`,
            id: insertedJoin ? 'coalesce(cur.salesforce_id, ss.salesforce_id)' : 'cur.salesforce_id',
          };
    await insertKeyErrors(client, args, raw, sourcePayload, knownId);
  }
  const sourceRows = Number(rows[0]?.source_rows ?? 0);
  const rejected = Number(rows[0]?.rejected ?? 0) + keyRejected;
  // Held back, not rejected: a row whose own values pass is kept back only for its key's earlier
  // send (`unknownRef`, taken when the row has no error of its own), which is not the source's fault.
  const heldBack = Number(rows[0]?.held_back ?? 0);
  const changed = Number(rows[0]?.changed ?? 0);
  return { sourceRows, rejected, heldBack, changed, unchanged: sourceRows - rejected - heldBack - changed };
}

/**
 * How Salesforce tells two keys apart, as SQL over the key text `k` (and a note for messages):
 * two source rows whose keys normalise alike name the same record, so both are refused, and the
 * plan matches what Salesforce has by it. An Id is its 18-character form in upper case
 * ({@link idIdentitySql}), spaces trimmed as the plan trims them; a text external ID is trimmed as
 * Salesforce stores it, and ignores case unless it is case-sensitive; a number external ID is its value at the field's scale (42 and
 * 42.0 are one record, whose copy holds 42.00), as text, a key that is not a number as it is.
 */
export function keyIdentity(mapping: WritebackMapping, k: string): { sql: string; note: string } {
  if (mapping.task.mode === 'update') {
    // The usual key, 18 characters without spaces, takes the short way.
    return {
      sql: `CASE char_length(${k}) WHEN 18 THEN upper(${k}) ELSE ${idIdentitySql(`btrim(${k})`, k)} END`,
      note: ' (an Id names one record in its 15- and 18-character forms)',
    };
  }
  const field = mapping.fields.find((m) => m.field.name === mapping.keyField)?.field;
  if (field && TEXT_KEY_TYPES.has(field.type)) {
    // Stored trimmed, as any text: ` k1 ` names the record holding `k1`.
    const trimmed = `btrim(${k}, ${SALESFORCE_TRIM_CHARS})`;
    // An email address is stored in lower case (valueSql), whatever the describe's caseSensitive.
    return field.caseSensitive !== true || field.type === 'email'
      ? {
          sql: `lower(${trimmed})`,
          note: ` (${field.name} is matched by Salesforce ignoring case and surrounding whitespace)`,
        }
      : { sql: trimmed, note: ` (${field.name} is matched by Salesforce ignoring surrounding whitespace)` };
  }
  const kind = field && KIND_BY_TYPE[field.type];
  if (field && (kind === 'int' || kind === 'number')) {
    const { scale } = numberShape({ field, kind });
    if (holdsMoreThanDouble({ field, kind })) {
      // Held as a double (item 6 of docs/writeback.md "Values Salesforce stores otherwise"), and
      // answered as a JSON number, which a client parses into one: keys that are one double name
      // one record.
      return {
        sql: `CASE WHEN ${isNumber(k)} THEN (round((${k})::numeric, ${scale})::float8)::text ELSE ${k} END`,
        note: ` (${field.name} has more than ${DOUBLE_EXACT_DIGITS} digits, which Salesforce holds as a double: keys that are one double name one record)`,
      };
    }
    return {
      sql: `CASE WHEN ${isNumber(k)} THEN round((${k})::numeric, ${scale})::text ELSE ${k} END`,
      note: ` (${field.name} is matched by Salesforce as a number)`,
    };
  }
  return { sql: k, note: '' };
}

/**
 * A Salesforce Id's 18-character form in upper case (`t` trimmed key text; other lengths give
 * `otherwise`): the 18-character form adds to the case-sensitive 15 a checksum of their case,
 * three characters each naming which of five characters is upper case, so it names one record
 * whatever the case it is written in.
 */
function idIdentitySql(t: string, otherwise: string): string {
  const bits = (chunk: number): string =>
    Array.from(
      { length: 5 },
      (_, i) =>
        `CASE WHEN ascii(substr(${t}, ${chunk * 5 + i + 1}, 1)) BETWEEN 65 AND 90 THEN ${1 << i} ELSE 0 END`,
    ).join(' + ');
  const suffix = [0, 1, 2]
    .map((chunk) => `substr('ABCDEFGHIJKLMNOPQRSTUVWXYZ012345', 1 + ${bits(chunk)}, 1)`)
    .join(' || ');
  return `CASE char_length(${t}) WHEN 18 THEN upper(${t}) WHEN 15 THEN upper(${t} || ${suffix}) ELSE ${otherwise} END`;
}

/** Key field types whose values Salesforce may compare ignoring case. */
const TEXT_KEY_TYPES = new Set(['string', 'email', 'phone', 'url', 'textarea']);

/**
 * Rejects every source row whose key is missing (null or blank) or shared with another row: the
 * plan's grouped pass set these keys aside. A second read of the source, made only when there
 * are such keys. A repeated key's rows name the Salesforce Id the key already has (an update's
 * key itself; else `knownId`: joined on the key's identity, what Salesforce has as the plan read
 * it, for `roundtrip errors`).
 */
async function insertKeyErrors(
  client: PoolClient,
  args: PlanStatementArgs,
  raw: readonly string[],
  sourcePayload: string,
  knownId: { joins: (on: string) => string; id: string } | undefined,
): Promise<void> {
  const task = args.mapping.task;
  const rawName = (column: string): string => `r${raw.indexOf(column)}`;
  const keySql = `(src.${quoteIdent(task.keyColumn)})::text`;
  const identity = keyIdentity(args.mapping, keySql);
  const missing = `k IS NULL OR btrim(k) = ''`;
  // Named as every other rejection names a field: the Salesforce field (`Id` for update).
  const keyField = args.mapping.keyField ?? 'Id';
  await client.query(
    `INSERT INTO roundtrip.writeback_errors (run_id, task, key, salesforce_id, stage, code, message, fields, payload)
     SELECT $1, $2, k, ${task.mode === 'update' ? updateKeyIdSql('k') : (knownId?.id ?? 'NULL')}, 'plan', err->>0, err->>2, ARRAY[err->>1], ${sourcePayload}
       FROM (
         SELECT k, CASE WHEN NOT (${missing}) THEN ki END AS repeated_ki, ${raw.map(rawName).join(', ')},
                CASE WHEN ${missing} THEN ${rowError('MISSING_KEY', keyField, missingKeyMessage(keyField, task.keyColumn))}
                     ELSE jsonb_build_array('DUPLICATE_KEY', ${sqlLiteral(keyField)}, format('key %s appears in more than one source row%s; none of them is sent: make the source hold one row per key', left(k, ${MESSAGE_VALUE_CHARS}), $3::text)) END AS err
           FROM (
             SELECT ${keySql} AS k, ${identity.sql} AS ki, ${raw.map((c) => `src.${quoteIdent(c)} AS ${rawName(c)}`).join(', ')},
                    count(*) OVER (PARTITION BY ${identity.sql}) AS copies
               FROM ${quoteQualified(args.source.schema, args.source.table)} AS src
           ) AS counted
          WHERE ${missing} OR copies > 1
       ) AS bad
       ${task.mode === 'update' || !knownId ? '' : knownId.joins('bad.repeated_ki')}`,
    [args.runId, args.taskName, identity.note],
  );
}

/**
 * Plans one write-back task of a run (see the module comment). Idempotent: a retry replaces the
 * stored plan, unless the push already started, in which case the stored counts are answered.
 * Throws {@link MaxChangesExceededError} when the plan exceeds `maxChanges` (after storing it).
 */
export async function planWriteback(
  deps: CoreDeps,
  rawInput: WritebackPlanInput,
): Promise<WritebackPlanOutput> {
  const input = { ...rawInput, dryRun: rawInput.dryRun ?? false };
  const task = writebackTaskOf(deps, input.task);
  const logger = deps.logger.child({ runId: input.runId, task: input.task, step: 'writeback-plan' });
  const started = Date.now();
  const startedAt = deps.clock.now();
  const sf = await salesforceOf(deps, `Write-back ${input.task}`);
  const callsBefore = sf.apiCalls;
  const configPath = writebackConfigPath(deps.config, task);
  // The calls spent (the describe, what ended runs left) are recorded whether the plan ends or
  // fails; when it failed and the record fails too, the plan's own error is the one thrown.
  const result = await withStepApiCalls(deps, sf, callsBefore, input, 'plan', logger, async () => {
    // Before any call: is this a task renamed away from its sync state (an insert would insert its
    // records again: refused; an update or upsert would send each once: said)?
    const renamed = await checkRenamedTask(deps.pg, deps.config, task, configPath, deps.commandOptions);
    if (renamed) logger.warn(renamed);
    // What the config allows but is probably wrong for this task (another task writing its fields).
    for (const w of configWarnings(deps.config)) if (w.paths.includes(configPath)) logger.warn(w.message);
    const describe = await describeTaskObject(sf, task.object, `${configPath}.object`);
    const source = splitTableName(task.from, deps.config.postgres.schema);
    let mapping: WritebackMapping;
    try {
      mapping = mapWritebackTask(task, describe, { configPath });
    } catch (err) {
      // What is wrong with the source too, said in the same error.
      throw await withSourceProblem(err, deps.pg, task, { taskName: input.task, configPath, source });
    }
    // A key the extract does not read: the whole task is compared with sync_state (said; the
    // CLI's summary says it below its table).
    const unread = keyNotExtracted(deps.config, mapping);
    const keyUnread = unread && {
      field: unread.field,
      extract: extractConfigPath(deps.config, unread.extract),
      mode: task.mode,
    };
    if (keyUnread) logger.warn(keyNotExtractedNote(input.task, keyUnread));
    // Before anything reads the ledger or Salesforce by key: are the synced keys this task's keys?
    const scope = syncScopeOf(mapping);
    await checkSyncScopeIn(
      deps.pg,
      input.task,
      scope,
      configPath,
      { ...source, fields: task.fields },
      deps.commandOptions,
    );
    // What ended runs left without an outcome: inserts recorded or released, Bulk jobs closed and
    // collected, or aborted, before the plan reads the ledger.
    // (A dry run changes nothing: it leaves them as they are.)
    const ended = input.dryRun
      ? undefined
      : await resolveEndedRuns(deps, sf, mapping, input.runId, input.task, logger);

    return await withTransaction(deps.pg, async (client) => {
      const { rows: version } = await client.query<{ v: number }>(
        `SELECT current_setting('server_version_num')::int AS v`,
      );
      if ((version[0]?.v ?? 0) < MIN_POSTGRES_VERSION_NUM) {
        throw new TerminalError(
          `The write-back plan needs PostgreSQL 16 or later (pg_input_is_valid); the server is ${version[0]?.v}`,
        );
      }
      // Timestamps without a zone are read as UTC, and dates print ISO, whatever the role's settings.
      await client.query(`SET LOCAL TimeZone = 'UTC'`);
      await client.query(`SET LOCAL DateStyle = 'ISO, YMD'`);
      // The plan sorts and hashes every source row once: in memory rather than in temp files.
      await client.query(`SET LOCAL work_mem = '${PLAN_WORK_MEM}'`);
      // The source is grouped by key with a sort (a hash of a million keys takes twice the time and
      // memory), which also hands the rows on in key order.
      await client.query('SET LOCAL enable_hashagg = off');
      // The joins with what Salesforce has are hash joins: matched by an expression (the key's
      // identity) that has no statistics, they would be estimated as merge joins sorting both sides.
      await client.query('SET LOCAL enable_mergejoin = off');

      // The plan's rows belong to its run: the run must be recorded, and stays so until this
      // transaction ends (migration 3 replaced the per-row foreign key by this one lock).
      const { rowCount: runs } = await client.query(
        'SELECT 1 FROM roundtrip.runs WHERE run_id = $1 FOR KEY SHARE',
        [input.runId],
      );
      if (runs === 0) {
        throw new TerminalError(
          `Run ${input.runId} is not recorded in roundtrip.runs (the Prepare step records it)`,
        );
      }

      // Once the push has sent a record or created a job, the plan is fixed: its seq numbers are
      // in the ledger and in the jobs' ranges.
      const { rowCount: pushed } = await client.query(
        `SELECT 1 FROM roundtrip.writeback_plans WHERE run_id = $1 AND task = $2
       UNION ALL
       SELECT 1 FROM roundtrip.writeback_jobs WHERE run_id = $1 AND task = $2
       LIMIT 1`,
        [input.runId, input.task],
      );
      if ((pushed ?? 0) > 0) {
        return { reused: true as const };
      }
      if (!input.dryRun) await recordSyncScope(client, input.task, scope, input.runId);

      const columns = await sourceColumnsFor(client, task, { taskName: input.task, configPath, source });

      const comparison = await chooseComparison(client, deps, mapping);
      let mark = Date.now();
      const phases: Record<string, number> = {};
      const lap = (): number => {
        const now = Date.now();
        const ms = now - mark;
        mark = now;
        return ms;
      };
      // The plan joins the source with what Salesforce has: fresh statistics let the planner pick a
      // hash join for a large source (a transform has usually just rewritten it).
      await analyzeIfStale(client, source.schema, source.table);
      if (comparison.kind === 'extract') await analyzeIfStale(client, comparison.schema, comparison.table);
      else await analyzeIfStale(client, 'roundtrip', 'sync_state');
      phases.analyzed = lap();
      await client.query(`DELETE FROM roundtrip.writeback_plan_pages WHERE run_id = $1 AND task = $2`, [
        input.runId,
        input.task,
      ]);
      await client.query(
        `DELETE FROM roundtrip.writeback_errors WHERE run_id = $1 AND task = $2 AND stage = 'plan'`,
        [input.runId, input.task],
      );

      const counts = await insertPlan(client, {
        runId: input.runId,
        taskName: input.task,
        mapping,
        source,
        columns,
        comparison,
        lookUpsRefused: ended?.lookUpsRefused ?? new Map(),
        configPath,
      });
      phases.planned = lap();
      let sample: PlanSampleRow[] | undefined;
      if (input.dryRun) {
        const { rows } = await client.query<StoredPlanSampleRow>(
          `SELECT key, salesforce_id, current, payload FROM roundtrip.writeback_plan_rows
          WHERE run_id = $1 AND task = $2 AND page = 0 ORDER BY seq LIMIT ${DRY_RUN_SAMPLE_ROWS}`,
          [input.runId, input.task],
        );
        sample = dryRunSample(rows);
      }
      const comparedWith =
        comparison.kind === 'extract' ? `extract:${comparison.schema}.${comparison.table}` : 'sync_state';
      // An insert compares no values: only an update's or upsert's fields not extracted are named.
      const notExtracted =
        comparison.kind === 'extract' && task.mode !== 'insert' && comparison.notExtracted.length > 0
          ? [...comparison.notExtracted]
          : undefined;
      const api = choosePushApi(counts.changed, task);
      await mergeRunSummary(client, input.runId, ['writeback', input.task], {
        ...counts,
        api,
        comparedWith,
        // The CLI's note says which extract task's fields to add them to.
        ...(notExtracted && comparison.kind === 'extract'
          ? { notExtracted, comparedExtract: comparison.extractPath }
          : {}),
        ...(keyUnread && comparison.kind === 'sync_state' ? { keyNotExtracted: keyUnread } : {}),
        dryRun: input.dryRun,
        startedAt: startedAt.toISOString(),
        planMs: Date.now() - started,
        planPhasesMs: phases,
      });
      return { reused: false as const, counts, sample, comparedWith, notExtracted, api };
    });
  });
  if (result.reused) {
    const stored = await storedPlanOutput(deps, input.runId, input.task);
    logger.info('Plan already pushed; answering the stored plan', { ...stored });
    return withApiCallsSoFar(deps, stored);
  }
  const output: WritebackPlanOutput = {
    runId: input.runId,
    task: input.task,
    status: input.dryRun ? 'dry-run' : 'planned',
    api: result.api,
    ...result.counts,
    comparedWith: result.comparedWith,
    ...(result.notExtracted ? { notExtracted: result.notExtracted } : {}),
    ...(result.sample ? { sample: result.sample } : {}),
  };
  logger.info('Write-back planned', {
    ...result.counts,
    api: result.api,
    comparedWith: result.comparedWith,
    ...(result.notExtracted ? { notExtracted: result.notExtracted } : {}),
    dryRun: input.dryRun,
  });
  if (!input.dryRun && task.maxChanges !== undefined && result.counts.changed > task.maxChanges) {
    throw new MaxChangesExceededError(input.task, result.counts.changed, task.maxChanges, {
      configPath,
      runId: input.runId,
    });
  }
  if (result.api !== 'none') {
    // The run's calls so far, this plan's recorded, and the allowances Prepare read.
    const summary = await withClient(deps.pg, (client) => readRunSummary(client, input.runId));
    const budget = {
      config: deps.config,
      task,
      configPath,
      runId: input.runId,
      api: result.api,
      records: result.counts.changed,
      summary,
    };
    if (!input.dryRun) checkPushBudget(budget);
    else {
      // A dry run sends nothing, so it is not refused: the CLI says what a real run would do.
      const overBudget = pushBudgetProblem(budget);
      if (overBudget !== undefined) {
        logger.warn('A run that is not a dry run would refuse this push', { overBudget });
        await withTransaction(deps.pg, (client) =>
          mergeRunSummary(client, input.runId, ['writeback', input.task], { overBudget }),
        );
      }
    }
  }
  return withApiCallsSoFar(deps, output);
}

/**
 * Runs a write-back step's `work`, then adds the Salesforce calls the step made since
 * `callsBefore` to the task's summary whether the work ended or failed ({@link recordAfter}: when
 * it failed and the record fails too, the step's own error is the one thrown).
 */
export function withStepApiCalls<T>(
  deps: CoreDeps,
  sf: SalesforceConnector,
  callsBefore: number,
  input: { runId: string; task: string },
  step: 'plan' | 'push' | 'collect',
  logger: Logger,
  work: () => Promise<T>,
): Promise<T> {
  let spent = 0;
  return recordAfter(
    logger,
    work,
    async () => {
      spent = sf.apiCalls - callsBefore;
      if (spent > 0)
        await withTransaction(deps.pg, (client) => addApiCalls(client, input.runId, input.task, spent));
    },
    () =>
      `the ${spent} Salesforce API call${spent === 1 ? '' : 's'} of the ${step} (roundtrip.runs summary.writeback.${input.task}.apiCalls of run ${input.runId})`,
  );
}

/** Adds API calls spent by a step to the task's summary ({@link addRunApiCalls}). */
export async function addApiCalls(
  client: PoolClient,
  runId: string,
  task: string,
  calls: number,
): Promise<void> {
  await addRunApiCalls(client, runId, ['writeback', task], calls);
}

/**
 * The task's write-back Salesforce calls so far in the run (its plan, pushes and collects
 * together), as the run's summary holds them.
 */
async function taskApiCalls(deps: CoreDeps, runId: string, task: string): Promise<number> {
  const { rows } = await deps.pg.query<{ n: string | null }>(
    `SELECT summary->'writeback'->$2->>'apiCalls' AS n FROM roundtrip.runs WHERE run_id = $1`,
    [runId, task],
  );
  return Number(rows[0]?.n ?? 0);
}

/**
 * A write-back step's output with the task's calls so far in the run ({@link taskApiCalls}), read
 * once the step has recorded its own: the local progress lines count them as they go, not only
 * once the Report has run.
 */
export async function withApiCallsSoFar<T extends { runId: string; task: string }>(
  deps: CoreDeps,
  output: T,
): Promise<T & { apiCalls: number }> {
  return { ...output, apiCalls: await taskApiCalls(deps, output.runId, output.task) };
}

async function storedPlanOutput(deps: CoreDeps, runId: string, task: string): Promise<WritebackPlanOutput> {
  const { rows } = await deps.pg.query<{ s: Record<string, unknown> | null }>(
    `SELECT summary->'writeback'->$2 AS s FROM roundtrip.runs WHERE run_id = $1`,
    [runId, task],
  );
  const s = rows[0]?.s ?? {};
  const num = (k: string): number => (typeof s[k] === 'number' ? (s[k] as number) : 0);
  return {
    runId,
    task,
    status: 'planned',
    api: (s.api as WritebackApi | undefined) ?? 'none',
    sourceRows: num('sourceRows'),
    rejected: num('rejected'),
    // A plan stored before heldBack was counted apart has none (its held-back rows are in rejected).
    heldBack: num('heldBack'),
    unchanged: num('unchanged'),
    changed: num('changed'),
    comparedWith: typeof s.comparedWith === 'string' ? s.comparedWith : 'sync_state',
    ...(Array.isArray(s.notExtracted)
      ? { notExtracted: s.notExtracted.filter((f): f is string => typeof f === 'string') }
      : {}),
  };
}
