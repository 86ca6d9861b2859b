/**
 * Plan (DESIGN.md §1 step 4): map the source table's columns to Salesforce fields, check every row
 * against the object's describe, keep the rows whose values differ from what Salesforce has, and
 * store them in `roundtrip.writeback_plans`. Nothing is sent to Salesforce here: the only call is
 * the (cached) describe.
 *
 * Planning is set-based SQL generated from the describe, so that a million rows plan inside
 * PostgreSQL in about the time COPY takes to load them:
 * 1. Pre-flight on the config (a {@link TerminalError} listing every problem): each mapped field
 *    exists, has a supported type and is writable for the mode (createable for insert, updateable
 *    for update, both for upsert); the key is `Id` for update and an external-ID field for upsert
 *    (and insert, when given); required fields are mapped on insert; the source columns exist.
 * 2. One SELECT reads the source, converts each value to Salesforce's wire form (numbers rounded to
 *    the field's scale, ISO dates and UTC datetimes, booleans) and computes the first problem of
 *    each row: a value of the wrong type, out of the field's precision, longer than its length, a
 *    value a restricted picklist does not allow, a required value missing, a key missing,
 *    malformed or repeated. Rows with a problem go to `roundtrip.writeback_errors` (stage `plan`).
 * 3. The diff: the canonical values (a jsonb object, its md5 the value hash) are compared with the
 *    freshly extracted copy of the object when the pipeline extracts it into a table holding every
 *    mapped field (converted the same way, so 45 and 45.0 compare equal), else with the hash of the
 *    last successful sync in `roundtrip.sync_state`. Insert never sends a key that was inserted
 *    before (sync_state, or the extracted copy's external ID).
 * 4. `maxChanges` is checked after the plan is stored (so that it can be inspected) and before
 *    anything is written.
 */
import type { PoolClient } from 'pg';
import type { SalesforceExtractTask, WritebackTask } from '../../config';
import { quoteIdent, quoteQualified, withTransaction } from '../../connectors/postgres';
import type { SalesforceFieldDescribe, SalesforceObjectDescribe } from '../../connectors/salesforce';
import { TerminalError } from '../../shared/errors';
import { salesforceOf, type CoreDeps } from '../deps';
import type { PlanSampleRow, WritebackApi, WritebackPlanInput, WritebackPlanOutput } from './contracts';
import { mergeRunSummary, splitTable, sqlLiteral, writebackTaskOf } from './state';

/** Rows a dry run shows. */
export const DRY_RUN_SAMPLE_ROWS = 10;

/** The longest source value quoted in a rejection message. */
const MESSAGE_VALUE_CHARS = 100;

/** jsonb_build_object takes at most 100 arguments (FUNC_MAX_ARGS): 40 pairs a call, joined with `||`. */
const JSONB_PAIRS_PER_CALL = 40;

/** `work_mem` of the plan's transaction: its sorts and hashes of a million rows stay in memory. */
export const PLAN_WORK_MEM = '128MB';

/** PostgreSQL 16 added pg_input_is_valid(), which the date and datetime checks use. */
export const MIN_POSTGRES_VERSION_NUM = 160_000;

/** Spellings numeric input accepts that are not numbers Salesforce can store. */
const NOT_A_NUMBER = `('nan', 'infinity', '+infinity', '-infinity', 'inf', '+inf', '-inf')`;
/** A Salesforce Id: 15 case-sensitive or 18 case-safe characters. */
const ID_RE = '^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$';
/** Loose e-mail shape: Salesforce refuses values without it (INVALID_EMAIL_ADDRESS). */
const EMAIL_RE = '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$';

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
}

function fieldByName(describe: SalesforceObjectDescribe, name: string): SalesforceFieldDescribe | undefined {
  const lower = name.toLowerCase();
  return describe.fields.find((f) => f.name.toLowerCase() === lower);
}

/**
 * Checks a task against the object's describe and returns the mapping. Every problem is reported
 * at once, as one {@link TerminalError}: these are config problems that no row can pass.
 */
export function mapWritebackTask(task: WritebackTask, describe: SalesforceObjectDescribe): WritebackMapping {
  const problems: string[] = [];
  const where = `write-back of ${describe.name} (${task.mode})`;
  const writable = (f: SalesforceFieldDescribe): string | undefined => {
    const needCreate = task.mode === 'insert' || task.mode === 'upsert';
    const needUpdate = task.mode === 'update' || task.mode === 'upsert';
    if (needCreate && !f.createable) return `${f.name} is not createable`;
    if (needUpdate && !f.updateable) return `${f.name} is not updateable`;
    return undefined;
  };
  const kindOf = (f: SalesforceFieldDescribe): FieldKind | undefined => {
    const kind = KIND_BY_TYPE[f.type];
    if (!kind) problems.push(`${f.name} has type ${f.type}, which the write-back cannot send`);
    return kind;
  };
  let keyField: string | undefined;
  const fields: MappedField[] = [];
  if (task.mode === 'update') {
    keyField = 'Id';
  } else if (task.key !== undefined) {
    const f = fieldByName(describe, task.key);
    if (!f) problems.push(`key ${task.key} is not a field of ${describe.name}`);
    else if (
      f.name === 'Id' ||
      !(f.externalId || (task.mode === 'upsert' && f.idLookup && f.name !== 'Id'))
    ) {
      problems.push(`key ${f.name} is not an external-ID field of ${describe.name} (${task.mode} needs one)`);
    } else {
      keyField = f.name;
      const notWritable = writable(f);
      if (notWritable) problems.push(`key ${notWritable} (${task.mode} sets it)`);
      const kind = kindOf(f);
      if (kind) fields.push({ field: f, kind, column: task.keyColumn, isKey: true });
    }
  }
  for (const [name, column] of Object.entries(task.fields)) {
    const f = fieldByName(describe, name);
    if (!f) {
      problems.push(`field ${name} does not exist on ${describe.name}`);
      continue;
    }
    if (keyField && f.name === keyField) {
      problems.push(`field ${f.name} is the key; its value comes from keyColumn`);
      continue;
    }
    const notWritable = writable(f);
    if (notWritable) problems.push(`field ${notWritable}`);
    const kind = kindOf(f);
    if (kind) fields.push({ field: f, kind, column, isKey: false });
  }
  if (task.mode === 'insert') {
    const mapped = new Set(fields.map((m) => m.field.name));
    for (const f of describe.fields) {
      if (f.createable && !f.nillable && !f.defaultedOnCreate && !mapped.has(f.name)) {
        problems.push(`field ${f.name} is required on insert but not mapped`);
      }
    }
  }
  if (problems.length > 0) {
    throw new TerminalError(`Cannot plan the ${where}: ${problems.join('; ')}`);
  }
  return { task, object: describe.name, keyField, fields };
}

/** A SQL error triple for a row: `[code, field, message]`. */
function rowError(code: string, field: string, messageSql: string): string {
  return `jsonb_build_array(${sqlLiteral(code)}, ${sqlLiteral(field)}, ${messageSql})`;
}

function shown(sourceSql: string): string {
  return `left(${sourceSql}, ${MESSAGE_VALUE_CHARS})`;
}

/** A finite decimal or scientific number (pg_input_is_valid is cheaper than a regular expression). */
function isNumber(s: string): string {
  return `(pg_input_is_valid(${s}, 'numeric') AND lower(btrim(${s})) NOT IN ${NOT_A_NUMBER})`;
}

/**
 * The SQL expression converting a field's source text `s` to the value sent (typed for jsonb:
 * numeric, boolean or text), NULL when `s` is NULL, blank or not convertible.
 */
export function valueSql(m: Pick<MappedField, 'field' | 'kind'>, s: string): string {
  const f = m.field;
  switch (m.kind) {
    case 'string':
    case 'email':
    case 'picklist':
    case 'multipicklist':
      // Salesforce stores an empty string as null.
      return `nullif(${s}, '')`;
    case 'id':
      return `CASE WHEN btrim(${s}) ~ '${ID_RE}' THEN btrim(${s}) END`;
    case 'boolean':
      return `CASE lower(btrim(${s})) WHEN 'true' THEN true WHEN 't' THEN true WHEN '1' THEN true WHEN 'yes' THEN true WHEN 'false' THEN false WHEN 'f' THEN false WHEN '0' THEN false WHEN 'no' THEN false END`;
    case 'int':
      return `CASE WHEN ${isNumber(s)} THEN round(${s}::numeric) END`;
    case 'number':
      return `CASE WHEN ${isNumber(s)} THEN round(${s}::numeric, ${Math.max(0, f.scale ?? 0)}) END`;
    case 'date':
      return `CASE WHEN pg_input_is_valid(${s}, 'date') AND isfinite(${s}::date) THEN to_char(${s}::date, 'YYYY-MM-DD') END`;
    case 'datetime':
      return `CASE WHEN pg_input_is_valid(${s}, 'timestamptz') AND isfinite(${s}::timestamptz) THEN to_char(${s}::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') END`;
    case 'time':
      return `CASE WHEN pg_input_is_valid(${s}, 'time') THEN to_char(${s}::time, 'HH24:MI:SS.MS') || 'Z' END`;
  }
}

/** The first problem of a field's value as a SQL error triple, or NULL. `s` source text, `v` value. */
function errorSql(m: MappedField, s: string, v: string, mode: WritebackTask['mode']): string {
  const f = m.field;
  const name = f.name;
  const whens: string[] = [];
  const blank = `(${s} IS NULL OR btrim(${s}) = '')`;
  const invalid = (what: string): void => {
    whens.push(
      `WHEN NOT ${blank} AND ${v} IS NULL THEN ${rowError('INVALID_TYPE_ON_FIELD_IN_RECORD', name, `format('%s: %s is not ${what}', ${sqlLiteral(name)}, ${shown(s)})`)}`,
    );
  };
  switch (m.kind) {
    case 'id':
      whens.push(
        `WHEN NOT ${blank} AND ${v} IS NULL THEN ${rowError('MALFORMED_ID', name, `format('%s: %s is not a Salesforce Id (15 or 18 letters and digits)', ${sqlLiteral(name)}, ${shown(s)})`)}`,
      );
      break;
    case 'boolean':
      invalid('a boolean (true/false, t/f, 1/0, yes/no)');
      break;
    case 'int': {
      invalid('a number');
      const digits = f.digits && f.digits > 0 ? f.digits : 18;
      whens.push(
        `WHEN abs(${v}) >= 1e${digits} THEN ${rowError('NUMBER_OUTSIDE_VALID_RANGE', name, `format('%s: %s has more than ${digits} digits', ${sqlLiteral(name)}, ${shown(s)})`)}`,
      );
      break;
    }
    case 'number': {
      invalid('a number');
      const scale = Math.max(0, f.scale ?? 0);
      const intDigits = Math.max(0, (f.precision ?? 18) - scale);
      whens.push(
        `WHEN abs(${v}) >= 1e${intDigits} THEN ${rowError('NUMBER_OUTSIDE_VALID_RANGE', name, `format('%s: %s does not fit Number(%s, %s): at most ${intDigits} digits before the decimal point', ${sqlLiteral(name)}, ${shown(s)}, ${f.precision ?? 18}, ${scale})`)}`,
      );
      break;
    }
    case 'date':
      invalid('a date');
      break;
    case 'datetime':
      invalid('a datetime');
      break;
    case 'time':
      invalid('a time');
      break;
    case 'email':
      whens.push(
        `WHEN ${v} IS NOT NULL AND NOT ${v} ~ '${EMAIL_RE}' THEN ${rowError('INVALID_EMAIL_ADDRESS', name, `format('%s: invalid email address: %s', ${sqlLiteral(name)}, ${shown(s)})`)}`,
      );
      break;
    case 'picklist':
    case 'multipicklist':
    case 'string':
      break;
  }
  if (m.kind === 'string' || m.kind === 'email' || m.kind === 'picklist' || m.kind === 'multipicklist') {
    if (f.length > 0) {
      whens.push(
        `WHEN char_length(${v}) > ${f.length} THEN ${rowError('STRING_TOO_LONG', name, `format('%s: data value too large: %s characters, the field takes ${f.length}', ${sqlLiteral(name)}, char_length(${v}))`)}`,
      );
    }
    if ((m.kind === 'picklist' || m.kind === 'multipicklist') && f.restrictedPicklist) {
      const allowed = (f.picklistValues ?? []).filter((p) => p.active).map((p) => sqlLiteral(p.value));
      const list = `ARRAY[${allowed.join(', ')}]::text[]`;
      const bad =
        m.kind === 'picklist' ? `NOT (${v} = ANY(${list}))` : `NOT (string_to_array(${v}, ';') <@ ${list})`;
      whens.push(
        `WHEN ${v} IS NOT NULL AND ${bad} THEN ${rowError('INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST', name, `format('%s: bad value for restricted picklist field: %s', ${sqlLiteral(name)}, ${shown(v)})`)}`,
      );
    }
  }
  // Required: a field that may not be null (booleans included) must get a value.
  if (!f.nillable && !(mode === 'insert' && f.defaultedOnCreate && !m.isKey)) {
    whens.push(
      `WHEN ${v} IS NULL THEN ${rowError('REQUIRED_FIELD_MISSING', name, `format('%s: required field is missing (source column %s is null or blank)', ${sqlLiteral(name)}, ${sqlLiteral(m.column)})`)}`,
    );
  } else if (m.isKey) {
    whens.push(
      `WHEN ${v} IS NULL THEN ${rowError('MISSING_KEY', name, `format('%s: the key is missing (source column %s is null or blank)', ${sqlLiteral(name)}, ${sqlLiteral(m.column)})`)}`,
    );
  }
  return whens.length ? `CASE ${whens.join(' ')} END` : 'NULL::jsonb';
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

/** Where the diff reads what Salesforce has. */
type Comparison =
  | { kind: 'extract'; table: string; schema: string; matchColumn: string; hasIsDeleted: boolean }
  | { kind: 'sync_state' };

async function tableColumns(
  client: PoolClient,
  schema: string,
  table: string,
): Promise<Map<string, string> | undefined> {
  const { rows } = await client.query<{ attname: string; type: string }>(
    `SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type
       FROM pg_attribute a
      WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`,
    [quoteQualified(schema, table)],
  );
  if (rows.length === 0) return undefined;
  return new Map(rows.map((r) => [r.attname, r.type]));
}

async function chooseComparison(
  client: PoolClient,
  deps: Pick<CoreDeps, 'config'>,
  mapping: WritebackMapping,
): Promise<Comparison> {
  const extract = deps.config.extract.find(
    (e): e is SalesforceExtractTask =>
      e.from === 'salesforce' && e.object.toLowerCase() === mapping.object.toLowerCase(),
  );
  if (!extract) return { kind: 'sync_state' };
  const { schema, table } = splitTable(extract.table, deps.config.postgres.schema);
  const columns = await tableColumns(client, schema, table);
  const matchColumn = mapping.keyField;
  if (!columns || !matchColumn || !columns.has(matchColumn)) return { kind: 'sync_state' };
  if (!mapping.fields.every((m) => columns.has(m.field.name))) return { kind: 'sync_state' };
  return { kind: 'extract', schema, table, matchColumn, hasIsDeleted: columns.has('IsDeleted') };
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
  ) {
    super(
      `Write-back ${task} would change ${changed} records, more than maxChanges (${maxChanges}); nothing was sent. Inspect the plan in roundtrip.writeback_plans, then raise maxChanges or fix the transform`,
    );
    this.name = 'MaxChangesExceededError';
  }
}

interface PlanCounts {
  sourceRows: number;
  rejected: number;
  unchanged: number;
  changed: number;
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
  const describe = await sf.describe(task.object);
  const mapping = mapWritebackTask(task, describe);
  const source = splitTable(task.from, deps.config.postgres.schema);

  const result = await withTransaction(deps.pg, async (client) => {
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

    const { rows: pushed } = await client.query<{ n: string }>(
      `SELECT count(*) AS n FROM roundtrip.writeback_plans WHERE run_id = $1 AND task = $2 AND status <> 'planned'`,
      [input.runId, input.task],
    );
    if (Number(pushed[0]?.n ?? 0) > 0) {
      return { reused: true as const };
    }

    const columns = await tableColumns(client, source.schema, source.table);
    if (!columns) {
      throw new TerminalError(
        `Write-back ${input.task}: the source ${quoteQualified(source.schema, source.table)} does not exist (is it made by a transform that has not run?)`,
      );
    }
    const needed = [task.keyColumn, ...mapping.fields.map((m) => m.column)];
    const missing = [...new Set(needed)].filter((c) => !columns.has(c));
    if (missing.length > 0) {
      throw new TerminalError(
        `Write-back ${input.task}: the source ${quoteQualified(source.schema, source.table)} has no column ${missing.map((c) => quoteIdent(c)).join(', ')} (it has ${[...columns.keys()].map((c) => quoteIdent(c)).join(', ')})`,
      );
    }

    const comparison = await chooseComparison(client, deps, mapping);
    let mark = Date.now();
    const phases: Record<string, number> = {};
    const lap = (): number => {
      const now = Date.now();
      const ms = now - mark;
      mark = now;
      return ms;
    };
    await client.query(`DELETE FROM roundtrip.writeback_plans WHERE run_id = $1 AND task = $2`, [
      input.runId,
      input.task,
    ]);
    await client.query(
      `DELETE FROM roundtrip.writeback_errors WHERE run_id = $1 AND task = $2 AND stage = 'plan'`,
      [input.runId, input.task],
    );

    // Level 1: source text; level 2: converted values; level 3: errors and payload.
    const sourceCols = mapping.fields.map((m, i) => `(${quoteIdent(m.column)})::text AS s${i}`);
    const valueCols = mapping.fields.map((m, i) => `${valueSql(m, `s${i}`)} AS v${i}`);
    const keyErrors: string[] = [];
    keyErrors.push(
      `CASE WHEN k IS NULL OR btrim(k) = '' THEN ${rowError('MISSING_KEY', task.keyColumn, `format('the key column %s is null or blank', ${sqlLiteral(task.keyColumn)})`)} END`,
    );
    if (task.mode === 'update') {
      keyErrors.push(
        `CASE WHEN NOT btrim(k) ~ '${ID_RE}' THEN ${rowError('MALFORMED_ID', 'Id', `format('Id: %s is not a Salesforce Id (15 or 18 letters and digits)', ${shown('k')})`)} END`,
      );
    }
    const fieldErrors = mapping.fields.map((m, i) => errorSql(m, `s${i}`, `v${i}`, task.mode));
    const payload = jsonbObjectSql(mapping.fields.map((m, i) => [m.field.name, `v${i}`]));
    // The source values of a rejected row go to writeback_errors.payload; built for those rows only.
    const sourcePayload = jsonbObjectSql(
      [[task.keyColumn, 'c.key'] as [string, string]].concat(
        mapping.fields
          .filter((m) => m.column !== task.keyColumn)
          .map((m) => [m.column, `c.s${mapping.fields.indexOf(m)}`] as [string, string]),
      ),
    );
    const sourceList = mapping.fields.map((_, i) => `s${i}`).join(', ');
    await client.query(`
      CREATE TEMP TABLE wb_candidates ON COMMIT DROP AS
      SELECT k AS key, err, payload, md5(payload::text) AS value_hash, ${sourceList}
        FROM (
          SELECT k, ${sourceList},
                 COALESCE(${[...keyErrors, ...fieldErrors].join(',\n                          ')}) AS err,
                 ${payload} AS payload
            FROM (
              SELECT k, ${sourceList}, ${valueCols.join(', ')}
                FROM (
                  SELECT (${quoteIdent(task.keyColumn)})::text AS k, ${sourceCols.join(', ')}
                    FROM ${quoteQualified(source.schema, source.table)}
                ) AS src
              -- OFFSET 0 keeps the planner from inlining each converted value into every check
              -- that reads it: each conversion runs once per row.
              OFFSET 0
            ) AS conv
        ) AS checked`);

    phases.candidates = lap();
    // The same key twice: every copy is refused (which one is meant cannot be known). A hash
    // aggregate over the candidates, cheaper than a window sort over the source.
    await client.query(
      `UPDATE wb_candidates c
          SET err = jsonb_build_array('DUPLICATE_KEY', $1::text, format('key %s appears in more than one source row', left(c.key, ${MESSAGE_VALUE_CHARS})))
        WHERE c.key IN (SELECT key FROM wb_candidates WHERE key IS NOT NULL GROUP BY key HAVING count(*) > 1)
          AND (c.err IS NULL OR c.err->>0 <> 'MISSING_KEY')`,
      [task.keyColumn],
    );
    await client.query('ANALYZE wb_candidates');
    phases.duplicates = lap();

    // The current values and Salesforce Ids, by key.
    let currentSql: string;
    if (comparison.kind === 'extract') {
      const t = quoteQualified(comparison.schema, comparison.table);
      const match = quoteIdent(comparison.matchColumn);
      const curPayload = jsonbObjectSql(
        mapping.fields.map((m) => [m.field.name, valueSql(m, `(t.${quoteIdent(m.field.name)})::text`)]),
      );
      const live = comparison.hasIsDeleted && task.mode !== 'update' ? `WHERE t."IsDeleted" IS NOT TRUE` : '';
      currentSql = `SELECT DISTINCT ON (t.${match}::text) t.${match}::text AS key, t."Id"::text AS salesforce_id, ${curPayload} AS current, NULL::text AS current_hash
                      FROM ${t} AS t ${live}
                     ORDER BY t.${match}::text`;
    } else {
      currentSql = `SELECT key, salesforce_id, synced_values AS current, value_hash AS current_hash
                      FROM roundtrip.sync_state WHERE task = ${sqlLiteral(input.task)}`;
    }

    // Insert: a key whose earlier insert has no recorded outcome is never sent again blindly:
    // still `sent` in another run's plan, or reported INSERT_OUTCOME_UNKNOWN there, and not
    // resolved since (its Salesforce Id recorded in sync_state).
    if (task.mode === 'insert') {
      await client.query(
        `UPDATE wb_candidates c
            SET err = jsonb_build_array('INSERT_OUTCOME_UNKNOWN', $2::text,
                format('key %s was sent for insert by run %s, whose result was never recorded: find the record in Salesforce and record its Id in roundtrip.sync_state (task %s), or delete it there and remove that run''s plan row and error', left(c.key, ${MESSAGE_VALUE_CHARS}), u.run_id, $1::text))
           FROM (SELECT p.key, p.run_id FROM roundtrip.writeback_plans p
                  WHERE p.task = $1 AND p.status = 'sent' AND p.run_id <> $3
                 UNION ALL
                 SELECT e.key, e.run_id FROM roundtrip.writeback_errors e
                  WHERE e.task = $1 AND e.code = 'INSERT_OUTCOME_UNKNOWN' AND e.stage = 'push' AND e.run_id <> $3) AS u
          WHERE c.err IS NULL AND u.key = c.key
            AND NOT EXISTS (SELECT 1 FROM roundtrip.sync_state ss WHERE ss.task = $1 AND ss.key = c.key AND ss.salesforce_id IS NOT NULL)`,
        [input.task, task.keyColumn, input.runId],
      );
    }

    const { rowCount: rejected } = await client.query(
      `INSERT INTO roundtrip.writeback_errors (run_id, task, key, stage, code, message, fields, payload)
       SELECT $1, $2, c.key, 'plan', c.err->>0, c.err->>2, ARRAY[c.err->>1], ${sourcePayload}
         FROM wb_candidates c WHERE c.err IS NOT NULL`,
      [input.runId, input.task],
    );

    const salesforceIdSql = task.mode === 'update' ? 'btrim(c.key)' : 'cur.salesforce_id';
    const changedSql =
      task.mode === 'insert'
        ? // Insert never sends a key that exists: inserted before, or seen in the extracted copy.
          `cur.key IS NULL AND NOT EXISTS (SELECT 1 FROM roundtrip.sync_state ss WHERE ss.task = $2 AND ss.key = c.key AND ss.salesforce_id IS NOT NULL)`
        : comparison.kind === 'extract'
          ? `cur.current IS DISTINCT FROM c.payload`
          : `cur.current_hash IS DISTINCT FROM c.value_hash`;
    phases.rejected = lap();
    const { rowCount: changed } = await client.query(
      `INSERT INTO roundtrip.writeback_plans (run_id, task, key, seq, salesforce_id, operation, payload, current, value_hash)
       SELECT $1, $2, c.key, row_number() OVER (ORDER BY c.key), ${salesforceIdSql}, $3, c.payload, cur.current, c.value_hash
         FROM wb_candidates c
         LEFT JOIN (${currentSql}) AS cur ON cur.key = c.key
        WHERE c.err IS NULL AND ${changedSql}`,
      [input.runId, input.task, task.mode],
    );
    // Fresh statistics: push and collect join a run's plan by seq right after this.
    await client.query('ANALYZE roundtrip.writeback_plans');
    phases.planned = lap();
    const { rows: total } = await client.query<{ n: string }>('SELECT count(*) AS n FROM wb_candidates');
    const sourceRows = Number(total[0]?.n ?? 0);
    const counts: PlanCounts = {
      sourceRows,
      rejected: rejected ?? 0,
      changed: changed ?? 0,
      unchanged: sourceRows - (rejected ?? 0) - (changed ?? 0),
    };
    let sample: PlanSampleRow[] | undefined;
    if (input.dryRun) {
      const { rows } = await client.query<{
        key: string;
        salesforce_id: string | null;
        current: Record<string, unknown> | null;
        payload: Record<string, unknown>;
      }>(
        `SELECT key, salesforce_id, current, payload FROM roundtrip.writeback_plans WHERE run_id = $1 AND task = $2 ORDER BY seq LIMIT ${DRY_RUN_SAMPLE_ROWS}`,
        [input.runId, input.task],
      );
      sample = rows.map((r) => ({
        key: r.key,
        salesforceId: r.salesforce_id,
        current: r.current,
        next: r.payload,
      }));
    }
    const comparedWith =
      comparison.kind === 'extract' ? `extract:${comparison.schema}.${comparison.table}` : 'sync_state';
    const api = choosePushApi(counts.changed, task);
    await mergeRunSummary(client, input.runId, ['writeback', input.task], {
      ...counts,
      api,
      comparedWith,
      dryRun: input.dryRun,
      startedAt: startedAt.toISOString(),
      planMs: Date.now() - started,
      planPhasesMs: phases,
      apiCalls: 0,
    });
    return { reused: false as const, counts, sample, comparedWith, api };
  });

  const apiCallsNow = sf.apiCalls - callsBefore;
  if (apiCallsNow > 0) {
    await withTransaction(deps.pg, (client) => addApiCalls(client, input.runId, input.task, apiCallsNow));
  }
  if (result.reused) {
    const stored = await storedPlanOutput(deps, input.runId, input.task);
    logger.info('Plan already pushed; answering the stored plan', { ...stored });
    return stored;
  }
  const output: WritebackPlanOutput = {
    runId: input.runId,
    task: input.task,
    status: input.dryRun ? 'dry-run' : 'planned',
    api: result.api,
    ...result.counts,
    comparedWith: result.comparedWith,
    ...(result.sample ? { sample: result.sample } : {}),
  };
  logger.info('Write-back planned', {
    ...result.counts,
    api: result.api,
    comparedWith: result.comparedWith,
    dryRun: input.dryRun,
  });
  if (!input.dryRun && task.maxChanges !== undefined && result.counts.changed > task.maxChanges) {
    throw new MaxChangesExceededError(input.task, result.counts.changed, task.maxChanges);
  }
  return output;
}

/** Adds API calls spent by a step to the task's summary. */
export async function addApiCalls(
  client: PoolClient,
  runId: string,
  task: string,
  calls: number,
): Promise<void> {
  const { rows } = await client.query<{ n: string | null }>(
    `SELECT summary->'writeback'->$2->>'apiCalls' AS n FROM roundtrip.runs WHERE run_id = $1`,
    [runId, task],
  );
  await mergeRunSummary(client, runId, ['writeback', task], { apiCalls: Number(rows[0]?.n ?? 0) + calls });
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
    unchanged: num('unchanged'),
    changed: num('changed'),
    comparedWith: typeof s.comparedWith === 'string' ? s.comparedWith : 'sync_state',
  };
}
