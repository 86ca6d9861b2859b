/**
 * Target tables from the column model: created on first use with a primary key, new columns
 * added on later runs, a changed type widened where no value can be lost, and a clear error
 * otherwise. Columns that disappear from the source are kept: data is never dropped. Only key
 * columns are NOT NULL; a NOT NULL that would refuse what the source now sends is dropped.
 *
 * Identifiers are always quoted through {@link quoteIdent}: a field or column name never
 * becomes SQL, whatever characters it holds.
 */
import type { ClientBase } from 'pg';
import { TerminalError } from '../../shared/errors';
import type { Logger } from '../../shared/logging';
import { silentLogger } from '../../shared/logging';
import { SESSION_SETTINGS } from './session';
import type { PgColumn } from './types';

/**
 * PostgreSQL truncates identifiers longer than NAMEDATALEN-1 = 63 bytes without an error,
 * which could make two columns collide: we refuse them instead.
 * https://www.postgresql.org/docs/current/sql-syntax-lexical.html#SQL-SYNTAX-IDENTIFIERS
 */
export const MAX_IDENTIFIER_BYTES = 63;

/**
 * The most columns a PostgreSQL table can have (MaxHeapAttributeNumber; "tables can have at most
 * 1600 columns", SQLSTATE 54011). A staging table has one more than the columns it stages.
 * https://www.postgresql.org/docs/current/limits.html
 */
export const MAX_TABLE_COLUMNS = 1600;

/** Quotes one identifier (`a"b` → `"a""b"`), refusing what PostgreSQL would silently alter. */
export function quoteIdent(name: string): string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new TerminalError('SQL identifier is empty');
  }
  if (name.includes('\u0000'))
    throw new TerminalError(`SQL identifier ${JSON.stringify(name)} contains a NUL character`);
  if (Buffer.byteLength(name, 'utf8') > MAX_IDENTIFIER_BYTES) {
    throw new TerminalError(
      `SQL identifier ${JSON.stringify(name)} is longer than ${MAX_IDENTIFIER_BYTES} bytes, which PostgreSQL would truncate`,
    );
  }
  return `"${name.replace(/"/g, '""')}"`;
}

/** `"schema"."name"`, both parts quoted. */
export function quoteQualified(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

/** A PostgreSQL type broken into what the widening rules compare. */
interface ParsedType {
  readonly kind: 'varchar' | 'text' | 'int' | 'numeric' | 'float' | 'other';
  /** varchar length, int/float byte size, numeric precision (undefined: unconstrained). */
  readonly size?: number;
  readonly scale?: number;
  /** The canonical spelling. */
  readonly text: string;
}

const ALIASES: Record<string, string> = {
  int: 'integer',
  int4: 'integer',
  int2: 'smallint',
  int8: 'bigint',
  float4: 'real',
  float8: 'double precision',
  bool: 'boolean',
  timestamptz: 'timestamp with time zone',
  timestamp: 'timestamp without time zone',
  timetz: 'time with time zone',
  time: 'time without time zone',
  decimal: 'numeric',
  varchar: 'character varying',
};

/** Integer digits each integer type can hold (bigint: 9,223,372,036,854,775,807 has 19). */
const INT_DIGITS: Record<number, number> = { 2: 5, 4: 10, 8: 19 };

/** Parses a type as written in the model or printed by `format_type()`. */
export function parsePgType(type: string): ParsedType {
  const t = type.trim().toLowerCase().replace(/\s+/g, ' ');
  const match = /^([a-z][a-z0-9 ]*?)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?$/.exec(t);
  if (!match?.[1]) return { kind: 'other', text: t };
  const name = ALIASES[match[1]] ?? match[1];
  const a = match[2] === undefined ? undefined : Number(match[2]);
  const b = match[3] === undefined ? undefined : Number(match[3]);
  switch (name) {
    case 'character varying':
      return a === undefined
        ? { kind: 'text', text: 'text' }
        : { kind: 'varchar', size: a, text: `character varying(${a})` };
    case 'text':
      return { kind: 'text', text: 'text' };
    case 'smallint':
      return { kind: 'int', size: 2, text: name };
    case 'integer':
      return { kind: 'int', size: 4, text: name };
    case 'bigint':
      return { kind: 'int', size: 8, text: name };
    case 'real':
      return { kind: 'float', size: 4, text: name };
    case 'double precision':
      return { kind: 'float', size: 8, text: name };
    case 'numeric':
      return a === undefined
        ? { kind: 'numeric', text: 'numeric' }
        : { kind: 'numeric', size: a, scale: b ?? 0, text: `numeric(${a},${b ?? 0})` };
    default:
      return {
        kind: 'other',
        text: a === undefined ? name : `${name}(${[a, b].filter((x) => x !== undefined).join(',')})`,
      };
  }
}

/** Integer digits and scale of a numeric-like type; `undefined` digits: unbounded. */
function digitsOf(t: ParsedType): { int: number | undefined; scale: number } {
  if (t.kind === 'int') return { int: INT_DIGITS[t.size ?? 8] ?? 19, scale: 0 };
  if (t.size === undefined) return { int: undefined, scale: Number.POSITIVE_INFINITY };
  return { int: t.size - (t.scale ?? 0), scale: t.scale ?? 0 };
}

/**
 * The narrowest type that holds every value of both `existing` and `declared` without loss and
 * that PostgreSQL converts to in place, or undefined when there is none (the rules of
 * docs/postgres.md: varchar grows or becomes text; every other type becomes text, whose output
 * reads back as the same value — see {@link TEXT_OUTPUT_SETTINGS}; smallint → integer → bigint →
 * numeric; numeric grows in integer digits and scale; real → double precision; everything else
 * only stays the same — date → timestamp and timestamp → timestamptz change meaning and are
 * refused).
 */
export function commonSupertype(existing: string, declared: string): string | undefined {
  const a = parsePgType(existing);
  const b = parsePgType(declared);
  if (a.text === b.text) return a.text;
  const strings = new Set(['varchar', 'text']);
  if (strings.has(a.kind) && strings.has(b.kind)) {
    if (a.kind === 'text' || b.kind === 'text') return 'text';
    return `character varying(${Math.max(a.size ?? 0, b.size ?? 0)})`;
  }
  // A string and any other type: text holds the other type's output, which reads back as the
  // same value (a varchar(n) may be too short for it).
  if (strings.has(a.kind) || strings.has(b.kind)) return 'text';
  if (a.kind === 'float' && b.kind === 'float') return 'double precision';
  if (a.kind === 'int' && b.kind === 'int') return (a.size ?? 0) >= (b.size ?? 0) ? a.text : b.text;
  const numericLike = new Set(['int', 'numeric']);
  if (numericLike.has(a.kind) && numericLike.has(b.kind)) {
    const da = digitsOf(a);
    const db = digitsOf(b);
    if (da.int === undefined || db.int === undefined) return 'numeric';
    const scale = Math.max(da.scale, db.scale);
    const precision = Math.max(da.int, db.int) + scale;
    return precision > 1000 ? 'numeric' : `numeric(${precision},${scale})`;
  }
  return undefined;
}

/**
 * Creates `schema` when it does not exist (a staging table or a table to be made goes in it).
 * Looked up first, so that a role without CREATE on the database loads into a schema that exists.
 */
export async function ensureSchema(client: ClientBase, schema: string): Promise<void> {
  const { rows } = await client.query<{ exists: boolean }>(
    'SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS exists',
    [schema],
  );
  if (!rows[0]?.exists) await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
}

/** Options of {@link ensureTable}. */
export interface EnsureTableOptions {
  readonly schema: string;
  readonly table: string;
  readonly columns: readonly PgColumn[];
  /** Key columns; the table gets this primary key when created, and an existing one must match. */
  readonly primaryKey?: readonly string[];
  /**
   * What to do when the source now declares a narrower type than the column has (e.g. bigint
   * → integer): `error` refuses with a TerminalError; `keep` keeps the wider column, which
   * holds every value of the narrower type, and reports it. @default 'error'
   */
  readonly onNarrower?: 'error' | 'keep';
  /**
   * The caller replaces every row of the table in this transaction (a full refresh through
   * `swapInTable`): the old rows' types do not matter then, and a column whose type differs
   * takes the declared type as it is, whatever the old one was (wider, narrower or another kind).
   * The old rows are deleted first, under `lockForRefresh`'s lock, so that no old value has to
   * convert (their count is returned in `cleared`), then the column is altered; the table keeps
   * its OID, so views on its other columns stay bound. @default false
   */
  readonly replacesRows?: boolean;
  /** Who loads the table, at the start of a refusal (`Extract task signups`). */
  readonly owner?: string;
  /**
   * For a refusal of the primary key: where the key is configured (`extract[1].key`), and whether
   * the load makes the whole table again from its source each run (an Athena query: dropping the
   * table is then a way out; an incremental extract would lose the rows it does not read again).
   * Or, for a load whose key no config sets (a Salesforce extract merges by "Id", always), why
   * the key is what it is and where the table is named: the refusal then offers neither to set
   * the key back nor to take it out, which the config cannot do.
   */
  readonly keyOrigin?:
    | { readonly configPath: string; readonly reloadsInFull: boolean }
    | { readonly fixed: string; readonly tablePath: string };
  /**
   * How the source can send a column's type again, for the way out of a refusal: e.g.
   * `CAST("d" AS DATE) in the task's query`. Undefined: the refusal says it in general terms.
   */
  readonly keepTypeHint?: (column: string, type: string) => string | undefined;
  readonly logger?: Logger;
}

/** A column whose type was changed in place. */
export interface WidenedColumn {
  readonly column: string;
  readonly from: string;
  readonly to: string;
}

/** What {@link ensureTable} did. */
export interface EnsureTableResult {
  readonly created: boolean;
  readonly added: readonly string[];
  readonly widened: readonly WidenedColumn[];
  /** Columns kept wider than the declared type (`onNarrower: 'keep'`). */
  readonly keptWider: readonly WidenedColumn[];
  /** Non-key columns whose NOT NULL was dropped (see {@link ensureTable}). */
  readonly relaxed: readonly string[];
  /** Columns given the declared type as it is (`replacesRows`). */
  readonly retyped: readonly WidenedColumn[];
  /** Rows deleted before retyping (`replacesRows`); 0 when no column was retyped. */
  readonly cleared: number;
  /**
   * The table's primary key as the load finds it: the columns (none: no key) and, for a table
   * that existed, the constraint's name. A load without `primaryKey` may find one (a table made
   * by an earlier, keyed load, or keyed by hand), which still refuses a repeated or NULL value.
   */
  readonly primaryKey: { readonly constraint: string | undefined; readonly columns: readonly string[] };
}

/**
 * Output settings under which the text of every type reads back as the same value, set for the
 * load's transaction (`set_config(…, true)`, as SET LOCAL) when a column changes between text
 * and another type, or a text column takes another type's values: `DateStyle` ISO gives
 * `2026-04-05` and `2026-04-05 10:00:00.5`, as Athena writes them, whatever the database's
 * DateStyle (only the output format is set: the day/month order input is read with is kept);
 * `extra_float_digits` 3 gives floats the shortest text that reads back exactly (PostgreSQL 12+;
 * 17 significant digits before); `IntervalStyle` and `bytea_output` are set to their defaults.
 * `TimeZone` is left alone: a timestamptz's text carries its UTC offset, the same instant in any
 * zone. See docs/postgres.md, "Schema evolution: ensureTable". The values of the session settings
 * every connection has (session.ts), set here whatever the session's: `extra_float_digits` 3
 * where the session may keep 1 or 2.
 */
export const TEXT_OUTPUT_SETTINGS: Readonly<Record<string, string>> = Object.fromEntries(
  SESSION_SETTINGS.map((s) => [s.name, s.value]),
);

/** Whether a type is varchar or text. */
function isStringType(type: string): boolean {
  const kind = parsePgType(type).kind;
  return kind === 'text' || kind === 'varchar';
}

/**
 * The views (and rules) that use these columns of the table: PostgreSQL refuses to change the
 * type of such a column (`cannot alter type of a column used by a view or rule`), so the caller
 * names them before trying.
 */
async function viewsUsingColumns(
  client: ClientBase,
  qualified: string,
  columns: readonly string[],
): Promise<{ column: string; view: string; kind: string }[]> {
  const { rows } = await client.query<{ column: string; schema: string; name: string; kind: string }>(
    `SELECT DISTINCT a.attname AS column, vn.nspname AS schema, v.relname AS name, v.relkind::text AS kind
       FROM pg_depend d
       JOIN pg_rewrite r ON r.oid = d.objid
       JOIN pg_class v ON v.oid = r.ev_class
       JOIN pg_namespace vn ON vn.oid = v.relnamespace
       JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
      WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
        AND d.refobjid = $1::regclass AND a.attname = ANY($2::text[])
      ORDER BY 1, 2, 3`,
    [qualified, columns],
  );
  return rows.map((r) => ({
    column: r.column,
    view: quoteQualified(r.schema, r.name),
    kind: r.kind === 'm' ? 'materialized view' : r.kind === 'v' ? 'view' : 'rule on table',
  }));
}

/** Names the loader reserves for its own staging columns. */
export const RESERVED_COLUMN_PREFIX = '__roundtrip_';

/** Checks a column list: names present, unique, quotable and not reserved; key columns present. */
export function validateColumns(
  where: string,
  columns: readonly PgColumn[],
  primaryKey: readonly string[] = [],
): void {
  if (columns.length === 0) throw new TerminalError(`${where}: no columns`);
  const seen = new Set<string>();
  for (const c of columns) {
    quoteIdent(c.name);
    if (seen.has(c.name)) throw new TerminalError(`${where}: column "${c.name}" is declared twice`);
    if (c.name.startsWith(RESERVED_COLUMN_PREFIX)) {
      throw new TerminalError(
        `${where}: column "${c.name}" uses the reserved prefix ${RESERVED_COLUMN_PREFIX}`,
      );
    }
    seen.add(c.name);
  }
  for (const k of primaryKey) {
    if (!seen.has(k)) throw new TerminalError(`${where}: key column "${k}" is not among the columns`);
  }
}

interface ExistingColumn {
  name: string;
  type: string;
  notNull: boolean;
  /** An INSERT that leaves the column out fills it with the default. */
  hasDefault: boolean;
  /** Identity and generated columns: filled by PostgreSQL, which refuses DROP NOT NULL on them. */
  managed: boolean;
}

async function existingColumns(
  client: ClientBase,
  schema: string,
  table: string,
): Promise<ExistingColumn[] | undefined> {
  const { rows } = await client.query<{
    relkind: string | null;
    name: string | null;
    type: string | null;
    notnull: boolean | null;
    hasdef: boolean | null;
    managed: boolean | null;
  }>(
    `SELECT c.relkind::text AS relkind, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
            a.attnotnull AS notnull, a.atthasdef AS hasdef,
            (a.attidentity <> '' OR a.attgenerated <> '') AS managed
       FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      WHERE n.nspname = $1 AND c.relname = $2
      ORDER BY a.attnum`,
    [schema, table],
  );
  if (rows.length === 0) return undefined;
  const kind = rows[0]?.relkind;
  if (kind !== 'r' && kind !== 'p') {
    throw new TerminalError(`${quoteQualified(schema, table)} exists but is not a table (relkind ${kind})`);
  }
  return rows
    .filter((r) => r.name !== null)
    .map((r) => ({
      name: r.name as string,
      type: r.type as string,
      notNull: r.notnull === true,
      hasDefault: r.hasdef === true,
      managed: r.managed === true,
    }));
}

/** The table's primary key: its constraint's name and its columns in order (none: no key). */
async function existingPrimaryKey(
  client: ClientBase,
  schema: string,
  table: string,
): Promise<{ constraint: string | undefined; columns: string[] }> {
  const { rows } = await client.query<{ conname: string; name: string }>(
    `SELECT co.conname, a.attname AS name
       FROM pg_constraint co
       JOIN pg_class c ON c.oid = co.conrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN LATERAL unnest(co.conkey) WITH ORDINALITY AS k(attnum, ord) ON true
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
      WHERE n.nspname = $1 AND c.relname = $2 AND co.contype = 'p'
      ORDER BY k.ord`,
    [schema, table],
  );
  return { constraint: rows[0]?.conname, columns: rows.map((r) => r.name) };
}

/**
 * Why a table whose primary key is `existing` cannot take a load keyed by `key`, and the ways out: the
 * key set back in the config, the table's key changed to the task's (the statement, which
 * PostgreSQL refuses while a key repeats or is NULL), or, for a load that makes the whole table
 * each run, the table dropped.
 */
function primaryKeyRefusal(
  options: EnsureTableOptions,
  existing: { constraint: string | undefined; columns: readonly string[] },
  key: readonly string[],
): string {
  const qualified = quoteQualified(options.schema, options.table);
  const pk = existing.columns;
  const columns = (names: readonly string[]): string => names.map(quoteIdent).join(', ');
  const alter =
    pk.length > 0
      ? `ALTER TABLE ${qualified} DROP CONSTRAINT ${quoteIdent(existing.constraint ?? 'its_primary_key')}, ADD PRIMARY KEY (${columns(key)})`
      : `ALTER TABLE ${qualified} ADD PRIMARY KEY (${columns(key)})`;
  const keyOrigin = options.keyOrigin;
  if (keyOrigin !== undefined && 'fixed' in keyOrigin) {
    return (
      `${options.owner ? `${options.owner}: table` : 'Table'} ${qualified} has primary key (${pk.join(', ') || 'none'}), ` +
      `but ${keyOrigin.fixed}, which must be the table's primary key. Either change the table's key ` +
      `(${alter}; refused while a key repeats or is NULL), or name a table of the task's own in ${keyOrigin.tablePath} ` +
      '(the load makes it); the table was left as it was'
    );
  }
  const origin = keyOrigin;
  const back =
    pk.length > 0
      ? `set the key back to (${pk.join(', ')})${origin ? ` in ${origin.configPath}` : ''}`
      : `take the key out${origin ? ` of ${origin.configPath}` : ''} (without one, the load replaces every row)`;
  return (
    `${options.owner ? `${options.owner}: table` : 'Table'} ${qualified} has primary key (${pk.join(', ') || 'none'}) ` +
    `but the task's key${origin ? ` (${origin.configPath})` : ''} is (${key.join(', ')}): the load merges rows by the ` +
    `task's key, which must be the table's primary key. Either ${back}, or change the table's key to the task's ` +
    `(${alter}; refused while a key repeats or is NULL)` +
    (origin?.reloadsInFull
      ? `, or drop the table (DROP TABLE ${qualified}): the next load makes it again from the whole result of the query`
      : '') +
    '; the table was left as it was'
  );
}

/**
 * Creates the table when missing (with its primary key), adds declared columns it lacks, and
 * widens columns whose declared type is wider (any type to text: {@link TEXT_OUTPUT_SETTINGS}),
 * or, with `replacesRows`, gives changed columns the declared type as it is. Throws a
 * {@link TerminalError} naming the owner, table, column, old and new type and the ways out when
 * a type cannot change safely or a view uses the column, and when an existing table's primary
 * key differs from `primaryKey`. Run it inside the load's transaction so that a failed load
 * leaves no half-evolved table; DDL takes an exclusive lock on the table until commit.
 *
 * NOT NULL: a new table has it on its key columns only, whatever the source declares. A source's
 * "never null" (a Salesforce field's `nillable: false`, Athena's `NOT_NULL`) describes its
 * metadata today, which an admin changes without the pipeline knowing (a field made optional,
 * deleted, or dropped from the task): a constraint copied from it makes the load fail on every
 * run from then on, and a copy of the source's rows gains nothing from re-checking the source's
 * rules. Existing tables (created NOT NULL by earlier versions, or by hand) get `DROP NOT NULL` on
 * every non-key column that would refuse a row: declared nullable, or no longer declared and
 * without a default (the load's INSERT leaves it out). Columns still declared non-nullable keep
 * theirs: the DDL would lock the table against readers until the load commits, for nothing.
 */
export async function ensureTable(
  client: ClientBase,
  options: EnsureTableOptions,
): Promise<EnsureTableResult> {
  const { schema, table, columns } = options;
  const primaryKey = options.primaryKey ?? [];
  const logger = options.logger ?? silentLogger;
  const qualified = quoteQualified(schema, table);
  validateColumns(`Table ${qualified}`, columns, primaryKey);

  const existing = await existingColumns(client, schema, table);
  if (!existing) {
    await ensureSchema(client, schema);
    // Only the key is NOT NULL (see the function's comment): `nullable` is not a constraint.
    const keySet = new Set(primaryKey);
    const defs = columns.map(
      (c) => `${quoteIdent(c.name)} ${parsePgType(c.pgType).text}${keySet.has(c.name) ? ' NOT NULL' : ''}`,
    );
    if (primaryKey.length > 0) defs.push(`PRIMARY KEY (${primaryKey.map(quoteIdent).join(', ')})`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${qualified} (\n  ${defs.join(',\n  ')}\n)`);
    logger.info('Created table', { table: `${schema}.${table}`, columns: columns.length });
    return {
      created: true,
      added: [],
      widened: [],
      keptWider: [],
      relaxed: [],
      retyped: [],
      cleared: 0,
      primaryKey: { constraint: undefined, columns: [...primaryKey] },
    };
  }

  const existingKey = await existingPrimaryKey(client, schema, table);
  const pk = existingKey.columns;
  if (primaryKey.length > 0) {
    if (pk.join('\u0000') !== primaryKey.join('\u0000')) {
      throw new TerminalError(primaryKeyRefusal(options, existingKey, primaryKey));
    }
  }

  const byName = new Map(existing.map((c) => [c.name, c.type]));
  const declaredByName = new Map(columns.map((c) => [c.name, c]));
  const keyColumns = new Set(pk);
  // NOT NULL columns that would refuse a row of this load (see the function's comment).
  const relaxed = existing
    .filter((c) => c.notNull && !c.managed && !keyColumns.has(c.name))
    .filter((c) => {
      const declared = declaredByName.get(c.name);
      return declared ? declared.nullable : !c.hasDefault;
    })
    .map((c) => c.name);
  const added: string[] = [];
  const widened: WidenedColumn[] = [];
  const keptWider: WidenedColumn[] = [];
  const retyped: WidenedColumn[] = [];
  const alterations: string[] = [];
  const start = options.owner ? `${options.owner}: cannot` : 'Cannot';
  /** The way out of a refusal that keeps the column: the source sends its type again. */
  const keepType = (name: string, type: string): string => {
    const hint = options.keepTypeHint?.(name, type);
    return `have the source send ${type} again${hint ? ` (${hint})` : ''}`;
  };
  for (const column of columns) {
    const declared = parsePgType(column.pgType).text;
    const current = byName.get(column.name);
    if (current === undefined) {
      alterations.push(`ADD COLUMN ${quoteIdent(column.name)} ${declared}`);
      added.push(column.name);
      continue;
    }
    const currentText = parsePgType(current).text;
    if (currentText === declared) continue;
    if (options.replacesRows === true) {
      // The rows are deleted before this runs: no old value converts, whatever the two types.
      alterations.push(`ALTER COLUMN ${quoteIdent(column.name)} TYPE ${declared} USING NULL::${declared}`);
      retyped.push({ column: column.name, from: currentText, to: declared });
      continue;
    }
    const target = commonSupertype(currentText, declared);
    const what = `column ${quoteIdent(column.name)} of table ${qualified} from ${currentText} to ${declared}`;
    if (target === undefined) {
      throw new TerminalError(
        `${start} change ${what}: no lossless conversion exists; ${keepType(column.name, currentText)}, ` +
          `convert the column yourself if every value converts (ALTER TABLE ${qualified} ALTER COLUMN ${quoteIdent(column.name)} TYPE ${declared} USING ${quoteIdent(column.name)}::${declared}), ` +
          `or load into a new table`,
      );
    }
    if (target === currentText) {
      if ((options.onNarrower ?? 'error') === 'error') {
        throw new TerminalError(
          `${start} change ${what}: that narrows the column and could lose data (set onNarrower: 'keep' to keep the wider column)`,
        );
      }
      keptWider.push({ column: column.name, from: currentText, to: declared });
      continue;
    }
    alterations.push(`ALTER COLUMN ${quoteIdent(column.name)} TYPE ${target}`);
    widened.push({ column: column.name, from: currentText, to: target });
  }
  const changing = [...widened, ...retyped];
  if (changing.length > 0) {
    const used = await viewsUsingColumns(
      client,
      qualified,
      changing.map((c) => c.column),
    );
    const first = used[0];
    if (first) {
      const change = changing.find((c) => c.column === first.column) as WidenedColumn;
      const users = used.filter((u) => u.column === first.column).map((u) => `${u.kind} ${u.view}`);
      const others = used
        .filter((u) => u.column !== first.column)
        .map((u) => `${u.kind} ${u.view} on ${quoteIdent(u.column)}`);
      throw new TerminalError(
        `${start} change column ${quoteIdent(first.column)} of table ${qualified} from ${change.from} to ${change.to}: ` +
          `${users.join(', ')} ${users.length > 1 ? 'use' : 'uses'} it, and PostgreSQL cannot change the type of a column a view uses; ` +
          `${used.length > 1 ? 'drop the views and create them' : 'drop the view and create it'} again after this load, or ${keepType(first.column, change.from)}` +
          (others.length > 0 ? ` (also in the way: ${others.join(', ')})` : ''),
      );
    }
  }
  let cleared = 0;
  if (retyped.length > 0) {
    // lockForRefresh's lock (merge.ts), taken before the DELETE as swapInTable does: a run that
    // overlaps waits here, then deletes this one's rows rather than missing them.
    await client.query(`LOCK TABLE ${qualified} IN SHARE ROW EXCLUSIVE MODE`);
    cleared = (await client.query(`DELETE FROM ${qualified}`)).rowCount ?? 0;
  }
  if ([...widened, ...keptWider].some((c) => isStringType(c.from) !== isStringType(c.to))) {
    const settings = Object.entries(TEXT_OUTPUT_SETTINGS);
    await client.query(
      `SELECT ${settings.map((_, i) => `set_config($${2 * i + 1}, $${2 * i + 2}, true)`).join(', ')}`,
      settings.flat(),
    );
  }
  for (const name of relaxed) alterations.push(`ALTER COLUMN ${quoteIdent(name)} DROP NOT NULL`);
  if (alterations.length > 0) {
    await client.query(`ALTER TABLE ${qualified} ${alterations.join(', ')}`);
    // `relaxed`: the columns whose NOT NULL was dropped.
    logger.info('Evolved table', {
      table: `${schema}.${table}`,
      added,
      widened,
      relaxed,
      ...(retyped.length > 0 ? { retyped, cleared } : {}),
    });
  }
  if (keptWider.length > 0)
    logger.warn('Kept columns wider than the source declares', { table: `${schema}.${table}`, keptWider });
  return { created: false, added, widened, keptWider, relaxed, retyped, cleared, primaryKey: existingKey };
}
