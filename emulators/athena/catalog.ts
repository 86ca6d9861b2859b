/**
 * The emulator's data catalog: one folder under the data dir is a database, one CSV or Parquet
 * file in it (or one sub-folder of such files) is a table. Each table is a DuckDB view in the
 * attached in-memory catalog `awsdatacatalog`, so that `db.table`, `awsdatacatalog.db.table` and
 * a bare table of the context database all resolve as in Athena.
 *
 * CSV files are read in the dialect of Athena's own result files: a header row, an unquoted empty
 * field is NULL and `""` is the empty string (`allow_quoted_nulls = false`). A sidecar
 * `<table>.schema.json` declares column types, as a Glue table does: `{ "columns": { "id":
 * "BIGINT", "email": "string", "code": "varchar(3)" } }` (by name, DuckDB types or Athena's
 * `string` and `varchar(n)`). A column it does not declare gets the type DuckDB's sniffer infers
 * if every value of the file converts to it, else VARCHAR (see {@link csvSchema}).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { isCharTypeName } from './char-type';

/** Athena's default catalog name; also the name of the attached DuckDB database. */
export const ATHENA_CATALOG = 'awsdatacatalog';
/** The database Athena uses when the request names none. */
export const DEFAULT_DATABASE = 'default';

type TableFormat = 'csv' | 'parquet';

/** One table found under the data dir. */
export interface CatalogTable {
  readonly database: string;
  readonly table: string;
  readonly format: TableFormat;
  /** The file, or the folder's files, that hold the rows. */
  readonly files: readonly string[];
  /** Total size of the files: what a full scan reads (DataScannedInBytes). */
  readonly bytes: number;
  /** Sidecar column types (CSV only), by column name. */
  readonly columns: Readonly<Record<string, string>> | undefined;
  /** The sidecar's path, when there is one. */
  readonly sidecar?: string;
  /** Changes when a file or the sidecar changes, so that the view is rebuilt. */
  readonly signature: string;
}

/** Quotes an SQL identifier for DuckDB. */
export const sqlIdentifier = (name: string): string => `"${name.replaceAll('"', '""')}"`;
/** Quotes an SQL string literal for DuckDB. */
export const sqlString = (text: string): string => `'${text.replaceAll("'", "''")}'`;

function formatOf(file: string): TableFormat | undefined {
  const lower = file.toLowerCase();
  if (lower.endsWith('.csv') || lower.endsWith('.csv.gz')) return 'csv';
  if (lower.endsWith('.parquet')) return 'parquet';
  return undefined;
}

function tableNameOf(file: string): string {
  return file.replace(/\.(csv|csv\.gz|parquet)$/i, '').toLowerCase();
}

/** The options of `read_csv` for the dialect of Athena's result files (see the module doc). */
const CSV_DIALECT = `header = true, delim = ',', quote = '"', escape = '"', allow_quoted_nulls = false`;

/**
 * `read_csv` of a table's files: sniffed, or, given the {@link CsvSchema}, with every column typed
 * and nothing left to DuckDB's sniffer (`auto_detect = false`: no file is sniffed when a query
 * binds the view).
 */
const readCsvSql = (table: CatalogTable, schema?: CsvSchema): string => {
  const files = `[${table.files.map(sqlString).join(', ')}]`;
  if (!schema) return `read_csv(${files}, ${CSV_DIALECT})`;
  const typed = schema.columns.map((c) => `${sqlString(c.name)}: ${sqlString(c.type)}`).join(', ');
  const formats = [
    schema.dateFormat ? `, dateformat = ${sqlString(schema.dateFormat)}` : '',
    schema.timestampFormat ? `, timestampformat = ${sqlString(schema.timestampFormat)}` : '',
  ].join('');
  return `read_csv(${files}, ${CSV_DIALECT}, auto_detect = false, columns = {${typed}}${formats})`;
};

/** How a CSV table's files are read: each column's type, and the date formats the sniffer found. */
export interface CsvSchema {
  readonly columns: readonly CsvColumn[];
  readonly dateFormat?: string;
  readonly timestampFormat?: string;
}

/** One column of a CSV table as the view reads it. */
export interface CsvColumn {
  /** Lower case, as the Glue catalog keeps it. */
  readonly name: string;
  /** The DuckDB type the file's text is read as. */
  readonly type: string;
  /** `varchar(n)`'s n: Athena cuts a longer value to n characters when it reads it. */
  readonly maxLength?: number;
}

/**
 * The DuckDB SQL of the view over one table's files; a CSV table's `schema` is the one
 * {@link csvSchema} settled on (every column typed, so DuckDB's sniffer decides no type).
 */
export function tableViewSql(table: CatalogTable, schema?: CsvSchema): string {
  const files = `[${table.files.map(sqlString).join(', ')}]`;
  if (table.format === 'parquet') return `SELECT * FROM read_parquet(${files})`;
  const cut = (schema?.columns ?? []).filter((c) => c.maxLength !== undefined);
  const replace = cut.length
    ? ` REPLACE (${cut.map((c) => `left(${sqlIdentifier(c.name)}, ${c.maxLength}) AS ${sqlIdentifier(c.name)}`).join(', ')})`
    : '';
  return `SELECT *${replace} FROM ${readCsvSql(table, schema)}`;
}

/** `varchar(n)` / `character varying(n)` in a sidecar: read as text, cut to n characters. */
const BOUNDED_VARCHAR = /^\s*(?:varchar|character\s+varying)\s*\(\s*(\d+)\s*\)\s*$/i;

/** The column DuckDB could not convert, from its CSV reader's error. */
const UNCONVERTIBLE_COLUMN = /Error when converting column "((?:[^"]|"")*)"/;

/**
 * The columns of a CSV table, each with the type it is read as. A column the sidecar declares
 * has the declared type, whatever the file holds, as a Glue table's declared types are what
 * Athena reads (a `string` column is text, whatever it holds; a value that does not parse as a
 * declared type fails the query that reads it, HIVE_BAD_DATA). A column the sidecar does not
 * declare gets the type DuckDB's sniffer infers, but only if every value of the file converts
 * to it: the sniffer decides from a sample and from the first date format it sees, so a column
 * of `2026-01-02` and `01/02/2026` was sniffed DATE and then failed every query; such a column
 * is read as text (VARCHAR) instead. Checking reads the whole file once per change of it.
 */
export async function csvSchema(connection: DuckDBConnection, table: CatalogTable): Promise<CsvSchema> {
  // What read_csv would sniff: it sniffs the first file.
  const reader = await connection.runAndReadAll(
    `SELECT to_json(Columns)::VARCHAR, DateFormat, TimestampFormat FROM sniff_csv(${sqlString(table.files[0] ?? '')}, ${CSV_DIALECT})`,
  );
  const [json, dateFormat, timestampFormat] = reader.getRows()[0] ?? [];
  const sniffed = (JSON.parse(String(json)) as { name: string; type: string }[]).map((c) => ({
    name: c.name.toLowerCase(),
    type: c.type,
  }));
  const formats = {
    ...(typeof dateFormat === 'string' && dateFormat ? { dateFormat } : {}),
    ...(typeof timestampFormat === 'string' && timestampFormat ? { timestampFormat } : {}),
  };
  const declared = new Map<string, string>();
  for (const [name, type] of Object.entries(table.columns ?? {})) declared.set(name.toLowerCase(), type);
  const unknown = [...declared.keys()].filter((name) => !sniffed.some((c) => c.name === name));
  if (unknown.length) {
    throw new Error(
      `${table.sidecar ?? 'the sidecar schema'}: column ${unknown.join(', ')} is not in the header of ${table.files[0] ?? '?'} (${sniffed.map((c) => c.name).join(', ')}); name the file's columns`,
    );
  }
  const columns: CsvColumn[] = sniffed.map(({ name, type }) => {
    const given = declared.get(name);
    if (given === undefined) return { name, type };
    const bounded = BOUNDED_VARCHAR.exec(given);
    return bounded ? { name, type: 'VARCHAR', maxLength: Number(bounded[1]) } : { name, type: given };
  });
  const inferred = columns.filter((c) => !declared.has(c.name) && c.type !== 'VARCHAR');
  // Declared columns are read as text here: only the inferred types are on trial.
  const trial = (): CsvColumn[] =>
    columns.map((c) => (declared.has(c.name) ? { name: c.name, type: 'VARCHAR' } : c));
  for (let tries = 0; inferred.length > 0 && tries <= columns.length; tries++) {
    try {
      await connection.run(
        `SELECT count(COLUMNS(*)) FROM ${readCsvSql(table, { columns: trial(), ...formats })}`,
      );
      break;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      const column = UNCONVERTIBLE_COLUMN.exec(message)?.[1]?.replaceAll('""', '"');
      const index = columns.findIndex((c) => c.name === column && !declared.has(c.name));
      if (index === -1) throw err;
      columns[index] = { name: columns[index]?.name ?? '', type: 'VARCHAR' };
    }
  }
  return { columns, ...formats };
}

async function readSidecar(file: string): Promise<Record<string, string> | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  const columns = (parsed as { columns?: unknown } | null)?.columns;
  if (
    typeof columns !== 'object' ||
    columns === null ||
    Object.values(columns).some((t) => typeof t !== 'string')
  ) {
    throw new Error(`${file}: expected {"columns": {"<name>": "<DuckDB type>", …}}`);
  }
  for (const [name, type] of Object.entries(columns as Record<string, string>)) {
    if (isCharTypeName(type)) {
      throw new Error(
        `${file}: column ${name} is ${type}, and the emulator does not support char: DuckDB's CHAR is an unpadded VARCHAR, while Athena pads a char(n) value with spaces to n characters; declare it VARCHAR`,
      );
    }
  }
  return columns as Record<string, string>;
}

/** Scans the data dir: databases and their tables. Throws when two files claim one table. */
export async function scanDataDir(dataDir: string): Promise<Map<string, CatalogTable[]>> {
  const databases = new Map<string, CatalogTable[]>();
  for (const dbEntry of await readdir(dataDir, { withFileTypes: true })) {
    if (!dbEntry.isDirectory() || dbEntry.name.startsWith('.')) continue;
    const database = dbEntry.name.toLowerCase();
    const dbDir = path.join(dataDir, dbEntry.name);
    const tables = new Map<string, CatalogTable>();
    for (const entry of await readdir(dbDir, { withFileTypes: true })) {
      if (entry.name.startsWith('.') || entry.name.startsWith('_')) continue;
      const full = path.join(dbDir, entry.name);
      let files: string[];
      let format: TableFormat | undefined;
      let table: string;
      if (entry.isDirectory()) {
        const inner = (await readdir(full)).filter((f) => formatOf(f)).sort();
        const formats = new Set(inner.map(formatOf));
        if (inner.length === 0) continue;
        if (formats.size > 1) {
          throw new Error(`${full}: a table folder holds CSV and Parquet files; keep one format`);
        }
        files = inner.map((f) => path.join(full, f));
        format = formatOf(inner[0] ?? '');
        table = entry.name.toLowerCase();
      } else {
        format = formatOf(entry.name);
        files = [full];
        table = tableNameOf(entry.name);
      }
      if (!format) continue;
      const previous = tables.get(table);
      if (previous) {
        throw new Error(
          `${database}.${table} is defined twice: ${previous.files[0]} and ${files[0]}; rename one`,
        );
      }
      const stats = await Promise.all(files.map((f) => stat(f)));
      const sidecarPath = path.join(dbDir, `${table}.schema.json`);
      const columns = format === 'csv' ? await readSidecar(sidecarPath) : undefined;
      const sidecarStat = columns ? await stat(sidecarPath) : undefined;
      tables.set(table, {
        database,
        table,
        format,
        files,
        bytes: stats.reduce((sum, s) => sum + s.size, 0),
        columns,
        sidecar: columns ? sidecarPath : undefined,
        signature: JSON.stringify([
          files,
          stats.map((s) => [s.size, s.mtimeMs]),
          sidecarStat?.mtimeMs,
          columns,
        ]),
      });
    }
    databases.set(database, [...tables.values()]);
  }
  return databases;
}

/**
 * Renames a Parquet table view's columns to lower case (a CSV view names them so itself), as the Glue catalog keeps every column name
 * (Athena user guide, "Name databases, tables, and columns": Athena lower-cases the names of
 * databases, tables and columns), so that `SELECT *` over a file whose header says `Email` gives
 * `email`, as it would in Athena. Two names that differ only in case never reach here: DuckDB
 * renames the second (`email_1`).
 */
async function lowerCaseColumns(
  connection: DuckDBConnection,
  view: string,
  table: CatalogTable,
): Promise<void> {
  const reader = await connection.runAndReadAll(
    'SELECT column_name FROM duckdb_columns() WHERE database_name = $1 AND schema_name = $2 AND table_name = $3 ORDER BY column_index',
    [ATHENA_CATALOG, table.database, table.table],
  );
  const names = reader.getRows().map((row) => String(row[0]));
  if (names.every((n) => n === n.toLowerCase())) return;
  const columns = names.map((n) => sqlIdentifier(n.toLowerCase())).join(', ');
  await connection.run(`CREATE OR REPLACE VIEW ${view} (${columns}) AS ${tableViewSql(table)}`);
}

/**
 * Keeps DuckDB's `awsdatacatalog` in step with the data dir. `sync()` runs before each query
 * (a readdir and a stat per file), so files added, changed or removed while the emulator runs are
 * seen by the next query. Syncs are serialized.
 */
export class DataCatalog {
  private readonly views = new Map<string, CatalogTable>();
  private readonly schemas = new Set<string>();
  private readonly broken = new Map<string, string>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly dataDir: string) {}

  /** Whether a database exists (as of the last sync). */
  hasDatabase(name: string): boolean {
    return this.schemas.has(name.toLowerCase());
  }

  /** A table (as of the last sync), by database and table name. */
  table(database: string, table: string): CatalogTable | undefined {
    return this.views.get(`${database.toLowerCase()}.${table.toLowerCase()}`);
  }

  /** Why a table found on disk could not be registered (a file DuckDB cannot read), if so. */
  brokenTable(database: string, table: string): string | undefined {
    return this.broken.get(`${database.toLowerCase()}.${table.toLowerCase()}`);
  }

  /** Brings DuckDB's catalog in line with the data dir. */
  sync(connection: DuckDBConnection): Promise<void> {
    const run = this.queue.then(() => this.syncNow(connection));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async syncNow(connection: DuckDBConnection): Promise<void> {
    const found = await scanDataDir(this.dataDir);
    if (!found.has(DEFAULT_DATABASE)) found.set(DEFAULT_DATABASE, []);
    for (const [database, tables] of found) {
      if (!this.schemas.has(database)) {
        await connection.run(`CREATE SCHEMA IF NOT EXISTS ${ATHENA_CATALOG}.${sqlIdentifier(database)}`);
        this.schemas.add(database);
      }
      for (const table of tables) {
        const key = `${database}.${table.table}`;
        if (this.views.get(key)?.signature === table.signature) continue;
        const name = `${ATHENA_CATALOG}.${sqlIdentifier(database)}.${sqlIdentifier(table.table)}`;
        try {
          if (table.format === 'csv') {
            const schema = await csvSchema(connection, table);
            await connection.run(`CREATE OR REPLACE VIEW ${name} AS ${tableViewSql(table, schema)}`);
          } else {
            await connection.run(`CREATE OR REPLACE VIEW ${name} AS ${tableViewSql(table)}`);
            await lowerCaseColumns(connection, name, table);
          }
        } catch (err) {
          // One unreadable file must not break queries over the other tables: the table is left
          // out and a query that names it is told why (see brokenTable()).
          await connection.run(`DROP VIEW IF EXISTS ${name}`);
          this.views.delete(key);
          const message = err instanceof Error ? (err.message.split('\n')[0] ?? err.message) : String(err);
          this.broken.set(key, `cannot read ${table.files.join(', ')}: ${message}`);
          continue;
        }
        this.broken.delete(key);
        this.views.set(key, table);
      }
      const current = new Set(tables.map((t) => t.table));
      for (const key of this.broken.keys()) {
        const [db, name] = key.split('.');
        if (db === database && !current.has(name ?? '')) this.broken.delete(key);
      }
      for (const [key, table] of this.views) {
        if (table.database === database && !current.has(table.table)) {
          await connection.run(
            `DROP VIEW IF EXISTS ${ATHENA_CATALOG}.${sqlIdentifier(database)}.${sqlIdentifier(table.table)}`,
          );
          this.views.delete(key);
        }
      }
    }
    for (const database of [...this.schemas]) {
      if (found.has(database)) continue;
      await connection.run(`DROP SCHEMA IF EXISTS ${ATHENA_CATALOG}.${sqlIdentifier(database)} CASCADE`);
      this.schemas.delete(database);
      for (const [key, table] of this.views) if (table.database === database) this.views.delete(key);
    }
  }
}
