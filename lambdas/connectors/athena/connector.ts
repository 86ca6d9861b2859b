/**
 * The Athena connector: start a query (idempotently, by client request token), wait for it where
 * no state machine does, read the result's column types with one `GetQueryResults` call, and
 * stream the result file from S3 — already CSV in PostgreSQL COPY's dialect — into the loader.
 * Paging rows through `GetQueryResults` is only a fallback (1,000 rows a call, athena-wire.md).
 */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  StartQueryExecutionCommand,
  type AthenaClient,
  type ColumnInfo,
  type QueryExecution,
} from '@aws-sdk/client-athena';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { TerminalError, TransientError } from '../../shared/errors';
import type { Logger } from '../../shared/logging';
import { callCounter } from '../../shared/call-scope';
import {
  AthenaQueryCancelled,
  AthenaQueryFailed,
  AthenaResultNotRows,
  AthenaRetryableQueryFailure,
  classifyAthenaError,
} from './errors';
import { ATHENA_CLIENT_REQUEST_TOKEN_MAX_LENGTH, ATHENA_CLIENT_REQUEST_TOKEN_MIN_LENGTH } from './tokens';

/** The default data catalog (Glue). */
export const DEFAULT_ATHENA_CATALOG = 'AwsDataCatalog';

/** Rows per `GetQueryResults` page, the API's maximum (https://docs.aws.amazon.com/athena/latest/APIReference/API_GetQueryResults.html). */
export const ATHENA_MAX_RESULTS_PER_PAGE = 1000;

/**
 * Milliseconds before poll number `attempt` of a running query: 1 s, 2 s, 4 s, 8 s, then every
 * 10 s. Used by the CLI and local paths only; in AWS the `.sync` integration waits.
 */
export function athenaPollDelayMs(attempt: number): number {
  return Math.min(1000 * 2 ** Math.min(attempt, 10), 10_000);
}

/** Where a finished query's results are and what their columns are. */
export interface AthenaResultDescription {
  readonly queryExecutionId: string;
  /** `s3://bucket/prefix/<id>.csv`. */
  readonly outputLocation: string;
  /** Names and types, in result order (`Type`, `Precision`, `Scale` drive the table's DDL). */
  readonly columns: readonly ColumnInfo[];
}

/** Options of {@link createAthenaConnector}. */
export interface AthenaConnectorOptions {
  readonly athena: AthenaClient;
  readonly s3: S3Client;
  readonly logger: Logger;
  readonly workgroup: string;
  readonly database: string;
  /** @default DEFAULT_ATHENA_CATALOG */
  readonly catalog?: string;
  /** `s3://…/` for results; when absent the workgroup's setting applies. */
  readonly outputLocation?: string;
  /**
   * Attempts in a row without progress when reading the result file; a read that fails after
   * delivering bytes is resumed from there with a Range request. @default 3
   */
  readonly s3ReadAttempts?: number;
  /**
   * A result file read fails (and is resumed, as a dropped one is) after this long without a
   * byte from S3. Only time spent waiting for S3 counts: the read is pulled a chunk at a time, so
   * a pause while COPY catches up is not timed, and a slow read that keeps flowing is never cut.
   * (The S3 client's own `requestTimeout` bounds only the wait for the answer to begin.)
   * @default DEFAULT_S3_IDLE_MS
   */
  readonly s3IdleMs?: number;
}

/**
 * 60 s without a byte of a result file: S3 sends a file without pauses of that length, so it is a
 * hung connection; the read is resumed from the last byte with a Range request.
 */
export const DEFAULT_S3_IDLE_MS = 60_000;

/** Thrown when a read waits `ms` for the next chunk; the stream is destroyed first. */
async function* idleLimited(body: Readable, ms: number, onIdle: () => Error): AsyncGenerator<Buffer> {
  const it = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let ended = false;
  try {
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      const idle = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => {
          const err = onIdle();
          body.destroy(err);
          reject(err);
        }, ms);
      });
      const next = it.next();
      next.catch(() => undefined);
      let r: IteratorResult<Buffer>;
      try {
        r = await Promise.race([next, idle]);
      } finally {
        clearTimeout(timer);
      }
      if (r.done) {
        ended = true;
        return;
      }
      yield r.value;
    }
  } finally {
    // A consumer that stops early (or a failure) leaves the connection to be closed here.
    if (!ended) body.destroy();
  }
}

/** Options of {@link AthenaConnector.waitForQuery}. */
export interface WaitForQueryOptions {
  /** Milliseconds before poll number n. @default athenaPollDelayMs */
  readonly pollDelays?: (attempt: number) => number;
  /** @default setTimeout */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Give up (TransientError) after this many polls. @default 200 */
  readonly maxPolls?: number;
}

/** Athena as the extract steps use it. */
export interface AthenaConnector {
  /** Athena API calls made (StartQueryExecution, GetQueryExecution, GetQueryResults). */
  readonly apiCalls: number;
  /** S3 GetObject requests made. */
  readonly s3Reads: number;
  /** Starts `sql` (or finds the execution already started with this token); returns its id. One call. */
  startQuery(sql: string, options: { clientRequestToken: string }): Promise<string>;
  /** `GetQueryExecution`. One call. */
  getQuery(queryExecutionId: string): Promise<QueryExecution>;
  /** Polls until the query ends: SUCCEEDED is returned, FAILED/CANCELLED throw (see {@link assertQuerySucceeded}). */
  waitForQuery(queryExecutionId: string, options?: WaitForQueryOptions): Promise<QueryExecution>;
  /**
   * The result file and columns of a finished query (from `waitForQuery` or the `.sync` task's
   * output). Throws like {@link assertQuerySucceeded} when it did not succeed, and a TerminalError
   * when the result is not a SELECT's `<id>.csv` (a SHOW or DESCRIBE writes `<id>.txt`). One call.
   */
  describeResult(queryExecution: QueryExecution): Promise<AthenaResultDescription>;
  /**
   * The result file, streamed from S3 as is: header line, every non-NULL value quoted, NULL as an
   * empty unquoted field — the CSV dialect `COPY … (FORMAT csv, HEADER true)` reads. A dropped
   * connection is resumed from the last byte with a Range request.
   */
  streamResultFile(outputLocation: string): Readable;
  /** The fallback: rows paged through `GetQueryResults` (1,000 a call) written as the same CSV. */
  streamResultsViaApi(queryExecutionId: string, columns: readonly ColumnInfo[]): Readable;
  /**
   * Checks `sql` without running it: `EXPLAIN (TYPE VALIDATE)` of it, which parses it and resolves
   * its tables, columns and functions in the catalog. Athena does not charge for an EXPLAIN (it
   * scans no data). Resolves when Athena finds the query valid; throws an {@link AthenaQueryFailed}
   * carrying Athena's reason (`TABLE_NOT_FOUND: line 1:15: …`, positions counted in `sql`) when it
   * does not, and the call's own error when the check could not be made. One StartQueryExecution
   * and its polls.
   */
  validateQuery(sql: string, options?: WaitForQueryOptions): Promise<void>;
  /**
   * The columns of `sql`'s result as a load reads them (`ColumnInfo` of GetQueryResults: names as
   * Athena gives them, types), without reading a row: {@link resultColumnsQuery} is run, which
   * scans nothing and writes a result file of the header line alone (Athena bills a query at least
   * 10 MB of scan, $0.00005, unverified for one that scans none). Throws like
   * {@link validateQuery}, positions counted in `sql`. One StartQueryExecution, its polls and one
   * GetQueryResults.
   */
  resultColumns(sql: string, options?: WaitForQueryOptions): Promise<readonly ColumnInfo[]>;
}

/** The prefix of {@link AthenaConnector.validateQuery}'s statement, on a line of its own. */
export const EXPLAIN_VALIDATE_PREFIX = 'EXPLAIN (TYPE VALIDATE)\n';

/**
 * An error message about `EXPLAIN (TYPE VALIDATE)\n<sql>` with its `line n:c` position counted in
 * `<sql>` instead (one line less). Only the first: Trino's message gives the position first
 * (`COLUMN_NOT_FOUND: line 2:8: Column 'x' …`), and what follows quotes the query, whose text may
 * read like a position (a column named `line 3:4`) and must be shown as written.
 */
export function positionsInValidatedQuery(message: string): string {
  return message.replace(/\bline (\d+):(\d+)/, (whole, line: string, column: string) =>
    Number(line) > 1 ? `line ${Number(line) - 1}:${column}` : whole,
  );
}

/**
 * `sql` up to the end of its last token that is not a `;`: without the blanks, `--` and `/* … *\/`
 * comments and semicolons that may follow it (`SELECT … ; -- note`), which a query put inside
 * another (a subquery) cannot keep. Strings (`'a -- b'`, a quote inside doubled) and quoted names
 * (`"a;b"`) are read whole, so that what looks like a comment or a `;` inside them stays.
 */
export function queryWithoutTrailingText(sql: string): string {
  let end = 0;
  let i = 0;
  while (i < sql.length) {
    const c = sql[i] as string;
    if (sql.startsWith('--', i)) {
      const eol = sql.indexOf('\n', i);
      i = eol === -1 ? sql.length : eol + 1;
    } else if (sql.startsWith('/*', i)) {
      const close = sql.indexOf('*/', i + 2);
      i = close === -1 ? sql.length : close + 2;
    } else if (c === "'" || c === '"') {
      let j = i + 1;
      for (;;) {
        const next = sql.indexOf(c, j);
        if (next === -1) {
          j = sql.length;
          break;
        }
        j = next + 1;
        if (sql[j] !== c) break;
        j += 1;
      }
      i = j;
      end = i;
    } else {
      i += 1;
      if (c !== ';' && !/\s/.test(c)) end = i;
    }
  }
  return sql.slice(0, end);
}

/**
 * `SELECT * FROM (<sql>) LIMIT 0`: a query whose result has the columns of `sql`'s, named as
 * Athena (Trino) names them, a name repeated included, and no row. Trino answers a LIMIT 0 without
 * reading a table (its optimizer replaces the plan with an empty one). `sql` goes in as a subquery
 * on lines of its own, without the `;`, comments and blanks that may end it
 * ({@link queryWithoutTrailingText}): an error's `line n` is one more than in `sql`
 * ({@link positionsInValidatedQuery} counts it back).
 */
export function resultColumnsQuery(sql: string): string {
  return `SELECT * FROM (\n${queryWithoutTrailingText(sql)}\n) LIMIT 0`;
}

/** Splits `s3://bucket/key`. */
export function parseS3Url(url: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(url);
  if (!m?.[1] || !m[2]) throw new TerminalError(`Not an S3 object URL: "${url}"`);
  return { bucket: m[1], key: m[2] };
}

/**
 * Throws unless the query SUCCEEDED: a FAILED query is a TerminalError carrying Athena's
 * `StateChangeReason` — or an {@link AthenaRetryableQueryFailure} (transient) when Athena marks the
 * error `Retryable`; CANCELLED is terminal ({@link AthenaQueryCancelled}); a query still running is
 * transient.
 */
export function assertQuerySucceeded(queryExecution: QueryExecution): void {
  const id = queryExecution.QueryExecutionId ?? '(unknown id)';
  const status = queryExecution.Status;
  const state = status?.State;
  if (state === 'SUCCEEDED') return;
  if (state === 'FAILED') {
    const reason = status?.StateChangeReason ?? status?.AthenaError?.ErrorMessage ?? 'no reason given';
    const message = `Athena query ${id} failed: ${reason}`;
    throw status?.AthenaError?.Retryable
      ? new AthenaRetryableQueryFailure(message, id)
      : new AthenaQueryFailed(message, id);
  }
  if (state === 'CANCELLED') {
    throw new AthenaQueryCancelled(
      `Athena query ${id} was cancelled${status?.StateChangeReason ? `: ${status.StateChangeReason}` : ''}`,
      id,
    );
  }
  throw new TransientError(`Athena query ${id} has not finished (state ${state ?? 'unknown'})`);
}

/** The `AthenaErrorCode` of an Athena API error (`MALFORMED_QUERY`, `INVALID_INPUT`, …), if it has one. */
function athenaErrorCodeOf(err: unknown): string | undefined {
  const code = (err as { AthenaErrorCode?: unknown } | null | undefined)?.AthenaErrorCode;
  return typeof code === 'string' ? code : undefined;
}

/** One `GetQueryResults` datum as a COPY CSV field: no `VarCharValue` is NULL, anything else is quoted. */
function datumToCsv(value: string | undefined): string {
  return value === undefined ? '' : `"${value.replace(/"/g, '""')}"`;
}

/** Creates an {@link AthenaConnector} over the given clients. */
export function createAthenaConnector(options: AthenaConnectorOptions): AthenaConnector {
  const { athena, s3 } = options;
  const logger = options.logger.child({ connector: 'athena' });
  const catalog = options.catalog ?? DEFAULT_ATHENA_CATALOG;
  const s3ReadAttempts = options.s3ReadAttempts ?? 3;
  const s3IdleMs = options.s3IdleMs ?? DEFAULT_S3_IDLE_MS;
  let apiCalls = 0;
  let s3Reads = 0;
  // The calls and reads of the current step invocation, where steps share this connector (the
  // local runner's parallel extracts).
  const callsHere = callCounter();
  const readsHere = callCounter();

  const send = async <T>(operation: string, run: () => Promise<T>): Promise<T> => {
    apiCalls += 1;
    callsHere.count();
    try {
      return await run();
    } catch (err) {
      throw classifyAthenaError(err, `Athena ${operation}`);
    }
  };

  async function* resultFile(outputLocation: string): AsyncGenerator<Buffer> {
    const { bucket, key } = parseS3Url(outputLocation);
    let offset = 0;
    // Attempts without progress: a read that delivered bytes before failing resets the count, so a
    // flaky connection still finishes (each retry resumes where the last one stopped).
    let attempt = 0;
    for (let read = 1; ; read += 1) {
      const startedAt = offset;
      attempt += 1;
      try {
        s3Reads += 1;
        readsHere.count();
        const out = await s3.send(
          new GetObjectCommand({
            Bucket: bucket,
            Key: key,
            ...(offset > 0 ? { Range: `bytes=${offset}-` } : {}),
          }),
        );
        if (!out.Body) throw new TerminalError(`S3 GetObject ${outputLocation} answered without a body`);
        const body = out.Body as Readable;
        // A resumed read must start at the byte asked for: an endpoint that ignored the Range (a
        // 200 with the whole object) would repeat the file's start, the header line among it.
        if (offset > 0 && !out.ContentRange?.startsWith(`bytes ${offset}-`)) {
          body.destroy();
          throw new TerminalError(
            `S3 GetObject ${outputLocation} answered the read resumed at byte ${offset} (Range: bytes=${offset}-) ${
              out.ContentRange
                ? `with Content-Range "${out.ContentRange}", not "bytes ${offset}-…"`
                : `without Content-Range "bytes ${offset}-…"`
            }: appending it would repeat or skip part of the result file`,
          );
        }
        const stopped = (): TransientError =>
          new TransientError(
            `S3 GetObject ${outputLocation} failed: the read stopped: no byte for ${s3IdleMs / 1000} s (the connector's time limit)`,
          );
        for await (const buf of idleLimited(body, s3IdleMs, stopped)) {
          offset += buf.length;
          yield buf;
        }
        logger.info('Athena result file read', { outputLocation, bytes: offset, reads: read });
        return;
      } catch (err) {
        const classified = classifyAthenaError(err, `S3 GetObject ${outputLocation}`);
        if (offset > startedAt) attempt = 0;
        if (!(classified instanceof TransientError) || attempt >= s3ReadAttempts) throw classified;
        logger.warn('Athena result file read interrupted; resuming', {
          outputLocation,
          resumeAtByte: offset,
          attempt,
          error: classified.message,
        });
      }
    }
  }

  async function* viaApi(queryExecutionId: string, columns: readonly ColumnInfo[]): AsyncGenerator<string> {
    yield columns.map((c) => datumToCsv(c.Name ?? '')).join(',') + '\n';
    let nextToken: string | undefined;
    let first = true;
    let rows = 0;
    do {
      const page = await send('GetQueryResults', () =>
        athena.send(
          new GetQueryResultsCommand({
            QueryExecutionId: queryExecutionId,
            MaxResults: ATHENA_MAX_RESULTS_PER_PAGE,
            ...(nextToken ? { NextToken: nextToken } : {}),
          }),
        ),
      );
      let data = page.ResultSet?.Rows ?? [];
      // For a SELECT the first row of the first page is the header (athena-wire.md).
      if (first) data = data.slice(1);
      first = false;
      let chunk = '';
      for (const row of data) {
        chunk += (row.Data ?? []).map((d) => datumToCsv(d.VarCharValue)).join(',') + '\n';
      }
      rows += data.length;
      if (chunk) yield chunk;
      nextToken = page.NextToken;
    } while (nextToken);
    logger.info('Athena results read through GetQueryResults', { queryExecutionId, rows });
  }

  /**
   * Runs a statement that holds a query after one line of its own (an EXPLAIN's prefix, a
   * subquery's opening) and waits for it: a failure is an {@link AthenaQueryFailed} whose position
   * is counted in the query ({@link positionsInValidatedQuery}).
   */
  const runLinePrefixed = async (statement: string, opts: WaitForQueryOptions): Promise<QueryExecution> => {
    let id: string;
    try {
      id = await connector.startQuery(statement, {
        clientRequestToken: `roundtrip-validate-${randomUUID()}`,
      });
    } catch (err) {
      if (err instanceof TerminalError && /\bMALFORMED_QUERY\b/.test(err.message)) {
        throw new AthenaQueryFailed(positionsInValidatedQuery(err.message), undefined, { cause: err });
      }
      throw err;
    }
    try {
      return await connector.waitForQuery(id, opts);
    } catch (err) {
      if (!(err instanceof AthenaQueryFailed)) throw err;
      throw new AthenaQueryFailed(positionsInValidatedQuery(err.message), id, { cause: err });
    }
  };

  const connector: AthenaConnector = {
    get apiCalls() {
      return callsHere.read(apiCalls);
    },
    get s3Reads() {
      return readsHere.read(s3Reads);
    },
    async startQuery(sql, { clientRequestToken }) {
      if (
        clientRequestToken.length < ATHENA_CLIENT_REQUEST_TOKEN_MIN_LENGTH ||
        clientRequestToken.length > ATHENA_CLIENT_REQUEST_TOKEN_MAX_LENGTH
      ) {
        throw new TerminalError(
          `Athena ClientRequestToken must have ${ATHENA_CLIENT_REQUEST_TOKEN_MIN_LENGTH}–${ATHENA_CLIENT_REQUEST_TOKEN_MAX_LENGTH} characters (use clientRequestTokenFor), got ${clientRequestToken.length}`,
        );
      }
      const out = await send('StartQueryExecution', () =>
        athena.send(
          new StartQueryExecutionCommand({
            QueryString: sql,
            ClientRequestToken: clientRequestToken,
            QueryExecutionContext: { Database: options.database, Catalog: catalog },
            WorkGroup: options.workgroup,
            ...(options.outputLocation
              ? { ResultConfiguration: { OutputLocation: options.outputLocation } }
              : {}),
          }),
        ),
      ).catch((err: unknown) => {
        // A syntax error is refused here, before an execution exists (athena-wire.md,
        // StartQueryExecution): the query's fault, as a FAILED execution's reason is.
        if (err instanceof TerminalError && athenaErrorCodeOf(err.cause) === 'MALFORMED_QUERY') {
          throw new AthenaQueryFailed(err.message, undefined, { cause: err });
        }
        throw err;
      });
      if (!out.QueryExecutionId)
        throw new TerminalError('Athena StartQueryExecution answered without a QueryExecutionId');
      logger.info('Athena query started', {
        queryExecutionId: out.QueryExecutionId,
        workgroup: options.workgroup,
      });
      return out.QueryExecutionId;
    },
    async getQuery(queryExecutionId) {
      const out = await send('GetQueryExecution', () =>
        athena.send(new GetQueryExecutionCommand({ QueryExecutionId: queryExecutionId })),
      );
      if (!out.QueryExecution)
        throw new TerminalError(
          `Athena GetQueryExecution ${queryExecutionId} answered without a QueryExecution`,
        );
      return out.QueryExecution;
    },
    async waitForQuery(queryExecutionId, opts = {}) {
      const delay = opts.pollDelays ?? athenaPollDelayMs;
      const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
      const maxPolls = opts.maxPolls ?? 200;
      for (let attempt = 0; attempt < maxPolls; attempt += 1) {
        await sleep(delay(attempt));
        const qe = await connector.getQuery(queryExecutionId);
        const state = qe.Status?.State;
        if (state === 'QUEUED' || state === 'RUNNING') continue;
        assertQuerySucceeded(qe);
        logger.info('Athena query succeeded', {
          queryExecutionId,
          polls: attempt + 1,
          dataScannedBytes: qe.Statistics?.DataScannedInBytes,
          engineMs: qe.Statistics?.EngineExecutionTimeInMillis,
        });
        return qe;
      }
      throw new TransientError(`Athena query ${queryExecutionId} still running after ${maxPolls} polls`);
    },
    async describeResult(queryExecution) {
      assertQuerySucceeded(queryExecution);
      const id = queryExecution.QueryExecutionId;
      const outputLocation = queryExecution.ResultConfiguration?.OutputLocation;
      if (!id) throw new TerminalError('Athena query execution has no QueryExecutionId');
      if (!outputLocation) throw new TerminalError(`Athena query ${id} has no result OutputLocation`);
      // A SELECT writes `<id>.csv` with a header; SHOW, DESCRIBE and other DDL write `<id>.txt`
      // (tab-separated, no header, nothing quoted), whose first row COPY's HEADER would drop.
      const statementType = queryExecution.StatementType;
      if (!outputLocation.endsWith('.csv') || statementType === 'DDL' || statementType === 'UTILITY') {
        throw new AthenaResultNotRows(
          `Athena query ${id} wrote its result as ${outputLocation}, not as the CSV file of a SELECT${statementType ? ` (its StatementType is ${statementType})` : ''}: an Athena extract task loads the rows of a query (SELECT, WITH … SELECT, VALUES); SHOW, DESCRIBE and other DDL write a text file without a header`,
          id,
        );
      }
      const out = await send('GetQueryResults', () =>
        athena.send(new GetQueryResultsCommand({ QueryExecutionId: id, MaxResults: 1 })),
      );
      const columns = out.ResultSet?.ResultSetMetadata?.ColumnInfo;
      if (!columns || columns.length === 0)
        throw new TerminalError(`Athena query ${id} returned no column metadata`);
      return { queryExecutionId: id, outputLocation, columns };
    },
    streamResultFile(outputLocation) {
      parseS3Url(outputLocation);
      return Readable.from(resultFile(outputLocation), { objectMode: false });
    },
    streamResultsViaApi(queryExecutionId, columns) {
      if (columns.length === 0) throw new TerminalError('streamResultsViaApi needs the result columns');
      return Readable.from(viaApi(queryExecutionId, columns), { objectMode: false });
    },
    async validateQuery(sql, opts = {}) {
      await runLinePrefixed(`${EXPLAIN_VALIDATE_PREFIX}${sql}`, opts);
    },
    async resultColumns(sql, opts = {}) {
      const execution = await runLinePrefixed(resultColumnsQuery(sql), opts);
      return (await connector.describeResult(execution)).columns;
    },
  };
  return connector;
}
