/**
 * Streaming CSV into an UNLOGGED staging table with `COPY … FROM STDIN`.
 *
 * Why UNLOGGED in the target's schema rather than TEMP: a TEMP table vanishes with its
 * session, which is tidy after a crash, but it also ties the whole load to one connection and
 * one invocation. An UNLOGGED table skips the WAL just the same (the bulk of the cost on RDS,
 * where wal_level is `replica`), can be filled page by page by several invocations when a
 * Bulk query result is too large for one, and can be inspected after a failed run. Crash
 * safety comes from the transaction instead: the loader creates the staging table, copies,
 * merges, advances the watermark and drops the staging table in ONE transaction, so a crash
 * or a source that fails mid-COPY rolls all of it back (DDL is transactional in PostgreSQL)
 * and leaves neither a staging table nor a half-applied target. The name is deterministic per
 * target and run, so a retry replaces whatever an interrupted multi-invocation load left.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ClientBase } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { TerminalError, TransientError } from '../../shared/errors';
import type { Logger } from '../../shared/logging';
import { silentLogger } from '../../shared/logging';
import {
  MAX_IDENTIFIER_BYTES,
  RESERVED_COLUMN_PREFIX,
  quoteIdent,
  quoteQualified,
  validateColumns,
  parsePgType,
} from './ddl';
import { classifyPostgresError } from './errors';
import type { PgColumn } from './types';

/** The staging column that numbers rows in file order (the last duplicate of a key wins). */
export const STAGING_ROW_COLUMN = `${RESERVED_COLUMN_PREFIX}row`;

function truncateBytes(text: string, maxBytes: number): string {
  let out = '';
  for (const ch of text) {
    if (Buffer.byteLength(out + ch, 'utf8') > maxBytes) break;
    out += ch;
  }
  return out;
}

/**
 * `<target>__staging_<runId>`, or, when that exceeds PostgreSQL's 63-byte identifier limit,
 * a truncated target name with a hash of the full name so that it stays unique.
 */
export function stagingTableName(target: string, runId: string): string {
  const plain = `${target}__staging_${runId}`;
  if (Buffer.byteLength(plain, 'utf8') <= MAX_IDENTIFIER_BYTES) return plain;
  const hash = createHash('sha256').update(plain).digest('hex').slice(0, 12);
  const suffix = `__stg_${hash}`;
  return truncateBytes(target, MAX_IDENTIFIER_BYTES - suffix.length) + suffix;
}

/** The staging column type: the target type, or text when the value needs a conversion. */
function stagingType(column: PgColumn): string {
  return column.load ? 'text' : parsePgType(column.pgType).text;
}

/**
 * The SQL expression that reads a column from staging as its target type (for the merge and
 * the swap). Plain columns are read as they are; converted ones go through their conversion.
 */
export function stagingValueSql(column: PgColumn, alias: string): string {
  const ref = `${alias}.${quoteIdent(column.name)}`;
  switch (column.load) {
    case 'spaced-hex':
      // Athena renders varbinary as hex pairs separated by spaces: "68 65 6c".
      return `decode(replace(${ref}, ' ', ''), 'hex')`;
    case undefined:
      return ref;
  }
}

/**
 * How long a failed COPY waits for the server to acknowledge its CopyFail before giving up on the
 * connection: a local round trip, milliseconds unless the connection is gone.
 */
export const COPY_FAIL_WAIT_MS = 5_000;

/** Options of {@link createStagingTable}. */
export interface CreateStagingOptions {
  readonly schema: string;
  readonly staging: string;
  readonly columns: readonly PgColumn[];
}

/** (Re)creates an empty UNLOGGED staging table: a leftover of an interrupted attempt is dropped. */
export async function createStagingTable(client: ClientBase, options: CreateStagingOptions): Promise<void> {
  const qualified = quoteQualified(options.schema, options.staging);
  validateColumns(`Staging table ${qualified}`, options.columns);
  const defs = [
    `${quoteIdent(STAGING_ROW_COLUMN)} bigint GENERATED ALWAYS AS IDENTITY`,
    ...options.columns.map((c) => `${quoteIdent(c.name)} ${stagingType(c)}`),
  ];
  await client.query(`DROP TABLE IF EXISTS ${qualified}`);
  await client.query(`CREATE UNLOGGED TABLE ${qualified} (\n  ${defs.join(',\n  ')}\n)`);
}

/** Drops a staging table (no error when it is already gone). */
export async function dropStagingTable(client: ClientBase, schema: string, staging: string): Promise<void> {
  await client.query(`DROP TABLE IF EXISTS ${quoteQualified(schema, staging)}`);
}

/** Options of {@link copyIntoStaging}. */
export interface CopyIntoStagingOptions {
  readonly schema: string;
  /** The target table; the staging table is named after it and the run. */
  readonly target: string;
  readonly runId: string;
  /** The CSV's columns, in file order. */
  readonly columns: readonly PgColumn[];
  /** The CSV bytes (UTF-8). Backpressure is honoured: the source is read as fast as the server takes it. */
  readonly source: Readable;
  readonly format: 'csv';
  /**
   * `true`: skip the first line. `'match'`: PostgreSQL ≥ 15 also checks that it names the
   * columns in order and fails otherwise.
   */
  readonly header: boolean | 'match';
  /**
   * Treat a quoted empty value (`""`) as NULL too. Salesforce's Bulk query CSV quotes every
   * value and writes NULL as `""`; Athena writes NULL unquoted and the empty string as `""`,
   * which is COPY's own rule. @default false
   */
  readonly quotedEmptyIsNull?: boolean;
  /** @default ',' */
  readonly delimiter?: string;
  /** Add to an existing staging table (a later page of the same load) instead of recreating it. @default false */
  readonly append?: boolean;
  readonly logger?: Logger;
}

/** What {@link copyIntoStaging} did. */
export interface CopyIntoStagingResult {
  /** The staging table's name (in `schema`). */
  readonly staging: string;
  /** Rows copied by this call. */
  readonly rows: number;
}

function sqlLiteral(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/**
 * Creates the UNLOGGED staging table (unless appending) and streams the CSV into it with
 * `COPY … FROM STDIN (FORMAT csv)`, through `stream.pipeline` so that memory stays flat and
 * an error on either side aborts the other: a source that fails mid-stream makes the COPY
 * fail (CopyFail), nothing of it is kept, and the error is rethrown classified. Call it inside
 * the load's transaction (see the module comment).
 */
export async function copyIntoStaging(
  client: ClientBase,
  options: CopyIntoStagingOptions,
): Promise<CopyIntoStagingResult> {
  if (options.format !== 'csv')
    throw new TerminalError(`copyIntoStaging: format ${String(options.format)} is not supported (csv only)`);
  const delimiter = options.delimiter ?? ',';
  if ([...delimiter].length !== 1 || delimiter === '"' || /[\r\n]/.test(delimiter)) {
    throw new TerminalError(
      `copyIntoStaging: delimiter ${JSON.stringify(delimiter)} must be one character other than a quote or newline`,
    );
  }
  const logger = options.logger ?? silentLogger;
  const staging = stagingTableName(options.target, options.runId);
  const qualified = quoteQualified(options.schema, staging);
  if (!options.append)
    await createStagingTable(client, { schema: options.schema, staging, columns: options.columns });
  else validateColumns(`Staging table ${qualified}`, options.columns);

  const columnList = options.columns.map((c) => quoteIdent(c.name)).join(', ');
  const copyOptions = [
    'FORMAT csv',
    `HEADER ${options.header === 'match' ? 'MATCH' : options.header ? 'true' : 'false'}`,
    `DELIMITER ${sqlLiteral(delimiter)}`,
    "ENCODING 'UTF8'",
    ...(options.quotedEmptyIsNull ? [`FORCE_NULL (${columnList})`] : []),
  ];
  const copy = copyFrom(`COPY ${qualified} (${columnList}) FROM STDIN WITH (${copyOptions.join(', ')})`);
  const started = Date.now();
  try {
    await pipeline(options.source, client.query(copy));
  } catch (err) {
    // Let the CopyFail round trip finish so the connection is ready for the ROLLBACK — but not
    // for ever: when the connection itself died mid-COPY, pg-copy-streams sends its CopyFail into
    // the dead socket and the stream never closes, which held the step until its Lambda timed out
    // (and a Lambda that died fails the run). On a live connection the round trip takes
    // milliseconds; after COPY_FAIL_WAIT_MS the error goes up, and the caller (withClient)
    // destroys the client, whose protocol state is then unknown, rather than reuse it.
    if (!copy.closed) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => copy.once('close', () => resolve())),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, COPY_FAIL_WAIT_MS);
        }),
      ]);
      clearTimeout(timer);
    }
    if (err instanceof TransientError || err instanceof TerminalError) throw err;
    throw classifyPostgresError(err, { action: `copying CSV into ${qualified}` });
  }
  logger.debug('Copied into staging', {
    staging: `${options.schema}.${staging}`,
    rows: copy.rowCount,
    ms: Date.now() - started,
  });
  return { staging, rows: copy.rowCount };
}
