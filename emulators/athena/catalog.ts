/**
 * The emulator's data catalog: one folder under the data dir is a database, one CSV or Parquet
 * file in it (or one sub-folder of such files) is a table. Each table is a DuckDB view in the
 * attached in-memory catalog `awsdatacatalog`, so that `db.table`, `awsdatacatalog.db.table` and
 * a bare table of the context database all resolve as in Athena.
 *
 * CSV files are read in the dialect of Athena's own result files: a header row, an unquoted empty
 * field is NULL and `""` is the empty string (`allow_quoted_nulls = false`). Column types are
 * inferred by DuckDB's sniffer unless a sidecar `<table>.schema.json` gives them:
 * `{ "columns": { "id": "BIGINT", "email": "VARCHAR" } }` (names in file order, DuckDB types).
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
  /** Sidecar column types (CSV only). */
  readonly columns: Readonly<Record<string, string>> | undefined;
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

/** The DuckDB SQL of the view over one table's files. */
export function tableViewSql(table: CatalogTable): string {
  const files = `[${table.files.map(sqlString).join(', ')}]`;
  if (table.format === 'parquet') return `SELECT * FROM read_parquet(${files})`;
  const columns = table.columns
    ? `, columns = {${Object.entries(table.columns)
        .map(([name, type]) => `${sqlString(name)}: ${sqlString(type)}`)
        .join(', ')}}`
    : '';
  return (
    `SELECT * FROM read_csv(${files}, header = true, delim = ',', quote = '"', escape = '"', ` +
    `allow_quoted_nulls = false${columns})`
  );
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
 * Renames a table view's columns to lower case, as the Glue catalog keeps every column name
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
          await connection.run(`CREATE OR REPLACE VIEW ${name} AS ${tableViewSql(table)}`);
          await lowerCaseColumns(connection, name, table);
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
