/**
 * Query executions: the state behind StartQueryExecution, GetQueryExecution, GetQueryResults and
 * StopQueryExecution (athena-wire.md, "Operations"). SQL runs in DuckDB; the result is streamed
 * chunk by chunk into `<resultsDir>/<bucket>/<prefix>/<id>.csv` in Athena's CSV dialect, and
 * GetQueryResults pages by reading that file back from a byte offset carried in NextToken.
 */
import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import {
  DuckDBTypeId,
  StatementType,
  type DuckDBConnection,
  type DuckDBInstance,
  type DuckDBPreparedStatement,
  type DuckDBType,
  type DuckDBValue,
} from '@duckdb/node-api';
import {
  countDivisions,
  decimalDivision,
  probedOperandTypes,
  rewriteForTrino,
  substituteParameters,
  type DecimalDivision,
} from './trino-rewrite';
import { charNotSupportedReason, charTypeOffset, lineAndColumn } from './char-type';
import { boundedVarcharCasts, parameterOffsets } from './query-text';
import { ATHENA_CATALOG, DEFAULT_DATABASE, sqlIdentifier, type DataCatalog } from './catalog';
import { athenaCsvLine, readAthenaCsvPage } from './csv';
import {
  AthenaApiError,
  invalidRequest,
  malformedQuery,
  metastoreFailure,
  systemFailure,
  translateDuckDbError,
  userFailure,
  type QueryFailure,
} from './errors';
import { athenaColumnType } from './types';
import { formatAthenaValue } from './values';

/**
 * The folder of the results dir where results are written while their query runs. Its name
 * starts with a dot, which no bucket name does: the S3 handler never serves it.
 */
export const PENDING_RESULTS_DIR = '.pending';

/** Trino's bigint range (a signed 64-bit integer). */
const BIGINT_MAX = 9_223_372_036_854_775_807n;
const BIGINT_MIN = -9_223_372_036_854_775_808n;

/** GetQueryResults returns at most 1,000 rows a call (Athena API reference, `MaxResults`: 1–1000). */
export const ATHENA_MAX_RESULTS_PER_PAGE = 1000;
/** `ClientRequestToken` length bounds (Athena API reference, StartQueryExecution: 32–128). */
export const CLIENT_REQUEST_TOKEN_MIN_LENGTH = 32;
export const CLIENT_REQUEST_TOKEN_MAX_LENGTH = 128;
/** `QueryString` length bounds (Athena API reference, StartQueryExecution: 1–262144). */
export const QUERY_STRING_MAX_LENGTH = 262_144;

/** What may come before a statement's first keyword: whitespace, line comments and block comments. */
const LEADING_TRIVIA = String.raw`^(?:\s+|--[^\n]*(?:\n|$)|/\*[\s\S]*?\*/)*`;

/** Any EXPLAIN statement (comments before it allowed, as Trino's parser skips them). */
const EXPLAIN = new RegExp(`${LEADING_TRIVIA}EXPLAIN\\b`, 'i');

/** `EXPLAIN (TYPE VALIDATE)` and what comes before it. */
const EXPLAIN_VALIDATE = new RegExp(`${LEADING_TRIVIA}EXPLAIN\\s*\\(\\s*TYPE\\s+VALIDATE\\s*\\)`, 'i');

/** The one column of `EXPLAIN (TYPE VALIDATE)`'s answer: `Valid`, `true` (Trino's EXPLAIN docs). */
const VALID_COLUMN: ColumnInfo = {
  CatalogName: 'hive',
  SchemaName: '',
  TableName: '',
  Name: 'Valid',
  Label: 'Valid',
  Type: 'boolean',
  Precision: 0,
  Scale: 0,
  Nullable: 'UNKNOWN',
  CaseSensitive: false,
};

/**
 * The statement of `EXPLAIN (TYPE VALIDATE) <statement>`, with the prefix (and any comment before
 * it) replaced by as many spaces (line breaks kept) so that DuckDB's error positions are the query's; undefined for any
 * other query.
 */
export function explainValidateStatement(query: string): string | undefined {
  const prefix = EXPLAIN_VALIDATE.exec(query)?.[0];
  if (prefix === undefined) return undefined;
  return prefix.replace(/[^\n]/g, ' ') + query.slice(prefix.length);
}

/** A workgroup's result configuration. */
export interface WorkgroupConfig {
  /** `s3://bucket/prefix/` where the workgroup's results go when the request names none. */
  readonly outputLocation?: string;
  /** Like EnforceWorkGroupConfiguration: the workgroup's location wins over the request's. */
  readonly enforce?: boolean;
  /**
   * The workgroup's State: a `DISABLED` one runs no query (StartQueryExecution refuses it) and
   * GetWorkGroup says so. @default 'ENABLED'
   */
  readonly state?: 'ENABLED' | 'DISABLED';
}

/** A workgroup's name (Athena API reference, GetWorkGroup: `WorkGroup`, pattern `[a-zA-Z0-9._-]{1,128}`). */
const WORKGROUP_NAME = /^[a-zA-Z0-9._-]{1,128}$/;

/** Faults the emulator injects; the object is live: change a field while the emulator runs. */
export interface AthenaEmulatorFaults {
  /**
   * The next n Athena API calls, of any operation, answer `ThrottlingException: Rate exceeded`, as
   * Athena answers a call over its per-account rate quota (each one decrements it).
   */
  throttle: number;
  /**
   * The next n StartQueryExecution calls answer `TooManyRequestsException` (Reason
   * `CONCURRENT_QUERY_LIMIT_EXCEEDED`), as Athena refuses a query past the active-query quota;
   * other operations are not affected (each refused start decrements it).
   */
  tooManyQueries: number;
  /**
   * A query whose text contains this substring (or every query, for `true`) goes RUNNING and then
   * FAILED with a GENERIC_INTERNAL_ERROR StateChangeReason instead of SUCCEEDED.
   */
  failQueryAfterRunning: string | boolean;
  /** The next n queries to finish running fail as `failQueryAfterRunning` does (each one decrements it). */
  failNextQueries: number;
  /** Delay before every Athena API answer (a hung endpoint, when longer than the client's limit). */
  athenaLatencyMs: number;
  /** Delay before every S3 response. */
  s3LatencyMs: number;
  /** GetObject sends this many body bytes, then destroys the socket. */
  s3FailAfterBytes: number | undefined;
  /**
   * GetObject stops at this byte of the object: nothing more is sent, the socket left open (a hung
   * read); a read resumed at that byte stalls at once, one resumed past it goes on.
   */
  s3StallAfterBytes: number | undefined;
  /** Every S3 request answers this HTTP status with S3's XML error (500 InternalError, 503 SlowDown, …). */
  s3Fail: number | undefined;
}

/** The faults with none active. */
export const NO_FAULTS: AthenaEmulatorFaults = {
  throttle: 0,
  tooManyQueries: 0,
  failQueryAfterRunning: false,
  failNextQueries: 0,
  athenaLatencyMs: 0,
  s3LatencyMs: 0,
  s3FailAfterBytes: undefined,
  s3StallAfterBytes: undefined,
  s3Fail: undefined,
};

type QueryState = 'QUEUED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED';

/** One ColumnInfo entry of GetQueryResults. */
export interface ColumnInfo {
  CatalogName: string;
  SchemaName: string;
  TableName: string;
  Name: string;
  Label: string;
  Type: string;
  Precision: number;
  Scale: number;
  Nullable: 'UNKNOWN';
  CaseSensitive: boolean;
}

interface QueryExecution {
  readonly id: string;
  readonly query: string;
  readonly database: string;
  readonly catalog: string;
  readonly workgroup: string;
  readonly executionParameters: readonly string[] | undefined;
  /**
   * `validate`: `EXPLAIN (TYPE VALIDATE) <statement>`, whose statement is bound, not run;
   * `unsupported`: another EXPLAIN form, which the emulator does not answer.
   */
  readonly explain: 'validate' | 'unsupported' | undefined;
  /** What DuckDB parses and binds: the query, or an EXPLAIN's statement with the prefix blanked. */
  readonly statement: string;
  /** `s3://bucket/prefix/<id>.csv`. */
  readonly outputLocation: string;
  /** Where the result object is, once the query SUCCEEDED (S3 sees it from then on). */
  readonly resultPath: string;
  /** Where the result is written while the query runs: outside every bucket, so no S3 read sees it. */
  readonly pendingPath: string;
  /** The written result's ETag, set when it is complete. */
  resultObject?: StoredObject;
  state: QueryState;
  readonly submittedAt: number;
  runningAt?: number;
  completedAt?: number;
  failure?: QueryFailure;
  cancelReason?: string;
  columns?: ColumnInfo[];
  dataScannedBytes: number;
  connection?: DuckDBConnection;
  /** Ends the current queued/running delay early (StopQueryExecution). */
  wake?: () => void;
}

/** An S3 object the emulator wrote, for the S3 handler: its MD5 ETag. */
export interface StoredObject {
  readonly etag: string;
  readonly contentType: string;
}

/** Everything the engine needs; built by the server. */
export interface QueryEngineOptions {
  readonly instance: DuckDBInstance;
  readonly catalog: DataCatalog;
  readonly resultsDir: string;
  readonly workgroups: Readonly<Record<string, WorkgroupConfig>>;
  readonly queryDelaysMs: { readonly queued: number; readonly running: number };
  readonly faults: AthenaEmulatorFaults;
  /** The objects written so far, keyed by local path (shared with the S3 handler). */
  readonly objects: Map<string, StoredObject>;
}

/** Splits `s3://bucket/prefix/` into bucket and key prefix (ending in `/` unless empty). */
export function parseS3Location(location: string): { bucket: string; prefix: string } | undefined {
  const match = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(location);
  if (!match?.[1]) return undefined;
  const rest = match[2] ?? '';
  return { bucket: match[1], prefix: rest === '' || rest.endsWith('/') ? rest : `${rest}/` };
}

/** A local path for an S3 object, refusing keys that would escape the results dir. */
export function objectPath(resultsDir: string, bucket: string, key: string): string | undefined {
  const bucketDir = path.resolve(resultsDir, bucket);
  const full = path.resolve(bucketDir, key);
  return full.startsWith(bucketDir + path.sep) ? full : undefined;
}

const epochSeconds = (ms: number): number => ms / 1000;

/** Waits `ms`, or less when StopQueryExecution wakes the execution. */
function delay(execution: QueryExecution, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      execution.wake = undefined;
      resolve();
    }
    execution.wake = done;
  });
}

type SelectNode = {
  type?: string;
  select_list?: { class?: string; alias?: string; column_names?: string[]; query_location?: number }[];
};

/**
 * Athena (Trino) names an output column that is neither a bare column nor aliased `_col<i>`
 * (e.g. `SELECT count(*)` → `_col0`), and a bare column reference after its last part as the query
 * writes it (`SELECT c.EMAIL` → `EMAIL`, Trino's StatementAnalyzer: `getLast(name.getOriginalParts())`);
 * DuckDB names the first after the expression and the second after the table's column. Applied
 * to a plain SELECT whose select list maps one to one onto the result columns (no `*`).
 */
export function athenaColumnNames(duckdbNames: readonly string[], ast: unknown): string[] {
  const node = (ast as { statements?: { node?: SelectNode }[] } | undefined)?.statements?.[0]?.node;
  const list = node?.type === 'SELECT_NODE' ? node.select_list : undefined;
  if (!list || list.length !== duckdbNames.length || list.some((e) => e.class === 'STAR')) {
    return [...duckdbNames];
  }
  return duckdbNames.map((name, i) => {
    const entry = list[i];
    if (!entry || entry.alias) return name;
    if (entry.class !== 'COLUMN_REF') return `_col${i}`;
    return entry.column_names?.at(-1) ?? name;
  });
}

/**
 * The subquery of `SELECT * FROM (<subquery>)` (the subquery given no column names), as a parse
 * tree of its own; undefined for any other query. Trino names such a query's columns as the
 * subquery's, a name repeated included (`SELECT * FROM (SELECT o.id, c.id …)` answers `id` twice),
 * where DuckDB makes them distinct (`id`, `id_1`) and names a bare column after the table's column:
 * the names are the subquery's, as {@link athenaColumnNames} gives them.
 */
export function starOverSubquery(ast: unknown): unknown {
  type Star = { class?: string; relation_name?: string; exclude_list?: unknown[]; replace_list?: unknown[] };
  type From = { type?: string; subquery?: { node?: unknown }; column_name_alias?: unknown[] };
  const node = (ast as { statements?: { node?: unknown }[] } | undefined)?.statements?.[0]?.node as
    { type?: string; select_list?: Star[]; from_table?: From } | undefined;
  const list = node?.type === 'SELECT_NODE' ? node.select_list : undefined;
  const star = list?.length === 1 ? list[0] : undefined;
  const from = node?.from_table;
  if (
    star?.class !== 'STAR' ||
    star.relation_name ||
    star.exclude_list?.length ||
    star.replace_list?.length ||
    from?.type !== 'SUBQUERY' ||
    from.column_name_alias?.length ||
    from.subquery?.node === undefined
  ) {
    return undefined;
  }
  const subquery: unknown = structuredClone(from.subquery.node);
  dropUnsafeLocations(subquery);
  return { statements: [{ node: subquery }] };
}

/**
 * Removes each `query_location` that JSON.parse could not keep: DuckDB writes "no location" as
 * 2^64 - 1 (a subquery's), which comes back rounded, and json_deserialize_sql refuses that number.
 */
function dropUnsafeLocations(node: unknown): void {
  if (Array.isArray(node)) {
    node.forEach(dropUnsafeLocations);
    return;
  }
  if (typeof node !== 'object' || node === null) return;
  const record = node as Record<string, unknown>;
  if ('query_location' in record && !Number.isSafeInteger(record.query_location))
    delete record.query_location;
  Object.values(record).forEach(dropUnsafeLocations);
}

/**
 * The n of each result column that is a cast to `varchar(n)` (by the position of its CAST, see
 * query-text.ts), as Trino types `CAST(x AS varchar(3))`: `varchar(3)`, whose ColumnInfo
 * precision is 3. Only a select list item that is the cast itself (aliased or not) of a plain
 * SELECT whose list maps one to one onto the result columns; other columns are undefined.
 */
export function boundedVarcharColumns(
  ast: unknown,
  casts: ReadonlyMap<number, number>,
  count: number,
): (number | undefined)[] {
  const node = (ast as { statements?: { node?: SelectNode }[] } | undefined)?.statements?.[0]?.node;
  const list = node?.type === 'SELECT_NODE' ? node.select_list : undefined;
  if (!list || list.length !== count || list.some((e) => e.class === 'STAR'))
    return Array<undefined>(count).fill(undefined);
  return list.map((entry) =>
    entry.class === 'CAST' && typeof entry.query_location === 'number'
      ? casts.get(entry.query_location)
      : undefined,
  );
}

/** The tables a query names, from DuckDB's serialized AST (`BASE_TABLE` references). */
export function referencedTables(ast: unknown): { catalog: string; schema: string; table: string }[] {
  return tablesUnder(ast, () => false);
}

/**
 * The tables a query reads: those it names ({@link referencedTables}) but for the ones named only
 * inside a query that ends in `LIMIT 0` (the whole query, a subquery, a UNION's branch, a WITH
 * query). Trino plans such a query as an empty relation (its EvaluateZeroLimit rule) and reads
 * nothing for it, so what roundtrip's validate runs for the result columns,
 * `SELECT * FROM (<query>) LIMIT 0`, scans no table.
 */
export function scannedTables(ast: unknown): { catalog: string; schema: string; table: string }[] {
  return tablesUnder(ast, endsInLimitZero);
}

/** Whether a query node (SELECT, set operation) has a `LIMIT 0` modifier: it returns no row. */
function endsInLimitZero(node: Record<string, unknown>): boolean {
  const modifiers = node.modifiers;
  if (!Array.isArray(modifiers)) return false;
  return modifiers.some((m: unknown) => {
    const modifier = m as {
      type?: unknown;
      limit?: { class?: unknown; value?: { is_null?: unknown; value?: unknown } };
    };
    return (
      modifier?.type === 'LIMIT_MODIFIER' &&
      modifier.limit?.class === 'CONSTANT' &&
      modifier.limit.value?.is_null === false &&
      Number(modifier.limit.value.value) === 0
    );
  });
}

/** The `BASE_TABLE` references of an AST, leaving out the subtrees `skip` says to. */
function tablesUnder(
  ast: unknown,
  skip: (node: Record<string, unknown>) => boolean,
): { catalog: string; schema: string; table: string }[] {
  const found: { catalog: string; schema: string; table: string }[] = [];
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) {
      node.forEach(visit);
      return;
    }
    if (typeof node !== 'object' || node === null) return;
    const record = node as Record<string, unknown>;
    if (skip(record)) return;
    if (record.type === 'BASE_TABLE' && typeof record.table_name === 'string') {
      found.push({
        catalog: String(record.catalog_name ?? ''),
        schema: String(record.schema_name ?? ''),
        table: record.table_name,
      });
    }
    Object.values(record).forEach(visit);
  };
  visit(ast);
  return found;
}

/** The query engine behind the Athena operations. */
export class QueryEngine {
  private readonly executions = new Map<string, QueryExecution>();
  private readonly tokens = new Map<string, { fingerprint: string; id: string }>();
  /** The work on DuckDB that close() waits for: queries, and StartQueryExecution's parses. */
  private readonly running = new Set<Promise<void>>();
  private readonly tokenKey = randomBytes(32);
  /** The workgroups' CreationTime: when the emulator started. */
  private readonly createdAt = Date.now();
  private closed = false;

  constructor(private readonly options: QueryEngineOptions) {}

  /** StartQueryExecution. */
  async startQueryExecution(input: Record<string, unknown>): Promise<{ QueryExecutionId: string }> {
    if (this.closed) throw stopping();
    const query = input.QueryString;
    if (typeof query !== 'string' || query.length < 1 || query.length > QUERY_STRING_MAX_LENGTH) {
      throw invalidRequest(
        'INVALID_INPUT',
        `1 validation error detected: Value at 'queryString' failed to satisfy constraint: Member must have length between 1 and ${QUERY_STRING_MAX_LENGTH}`,
      );
    }
    const token = input.ClientRequestToken;
    if (
      token !== undefined &&
      (typeof token !== 'string' ||
        token.length < CLIENT_REQUEST_TOKEN_MIN_LENGTH ||
        token.length > CLIENT_REQUEST_TOKEN_MAX_LENGTH)
    ) {
      throw invalidRequest(
        'INVALID_INPUT',
        `1 validation error detected: Value at 'clientRequestToken' failed to satisfy constraint: Member must have length between ${CLIENT_REQUEST_TOKEN_MIN_LENGTH} and ${CLIENT_REQUEST_TOKEN_MAX_LENGTH}`,
      );
    }
    const context = (input.QueryExecutionContext ?? {}) as { Database?: unknown; Catalog?: unknown };
    const resultConfiguration = (input.ResultConfiguration ?? {}) as { OutputLocation?: unknown };
    const workgroupName = typeof input.WorkGroup === 'string' ? input.WorkGroup : 'primary';
    const parameters = input.ExecutionParameters;
    if (
      parameters !== undefined &&
      (!Array.isArray(parameters) || parameters.some((p) => typeof p !== 'string'))
    ) {
      throw invalidRequest('INVALID_INPUT', 'ExecutionParameters must be a list of strings');
    }
    const fingerprint = JSON.stringify([
      query,
      context.Database ?? null,
      context.Catalog ?? null,
      resultConfiguration.OutputLocation ?? null,
      workgroupName,
      parameters ?? null,
    ]);
    const replay = typeof token === 'string' ? this.replay(token, fingerprint) : undefined;
    if (replay) return replay;

    const workgroup = this.options.workgroups[workgroupName];
    if (!workgroup) throw invalidRequest('INVALID_INPUT', `WorkGroup ${workgroupName} is not found.`);
    if (workgroup.state === 'DISABLED') {
      throw invalidRequest('INVALID_INPUT', `WorkGroup ${workgroupName} is disabled.`);
    }
    const requested =
      typeof resultConfiguration.OutputLocation === 'string' ? resultConfiguration.OutputLocation : undefined;
    const location =
      workgroup.enforce && workgroup.outputLocation
        ? workgroup.outputLocation
        : (requested ?? workgroup.outputLocation);
    if (!location) {
      throw invalidRequest(
        'INVALID_INPUT',
        'No output location provided. An output location is required either through the Workgroup result configuration setting or as an API input.',
      );
    }
    const s3 = parseS3Location(location);
    if (!s3) {
      throw invalidRequest(
        'INVALID_INPUT',
        `OutputLocation ${location} is not a valid S3 location (s3://bucket/prefix/)`,
      );
    }
    const catalog = typeof context.Catalog === 'string' ? context.Catalog.toLowerCase() : ATHENA_CATALOG;
    if (catalog !== ATHENA_CATALOG) {
      throw invalidRequest(
        'INVALID_INPUT',
        `Catalog ${catalog} is not found: the emulator serves ${ATHENA_CATALOG} only`,
      );
    }

    const id = randomUUID();
    const resultPath = objectPath(this.options.resultsDir, s3.bucket, `${s3.prefix}${id}.csv`);
    if (!resultPath)
      throw invalidRequest('INVALID_INPUT', `OutputLocation ${location} is not a valid S3 location`);
    const validated = explainValidateStatement(query);
    const execution: QueryExecution = {
      id,
      query,
      explain: validated !== undefined ? 'validate' : EXPLAIN.test(query) ? 'unsupported' : undefined,
      statement: validated ?? query,
      database: typeof context.Database === 'string' ? context.Database.toLowerCase() : DEFAULT_DATABASE,
      catalog,
      workgroup: workgroupName,
      executionParameters: parameters as string[] | undefined,
      outputLocation: `s3://${s3.bucket}/${s3.prefix}${id}.csv`,
      resultPath,
      pendingPath: path.join(this.options.resultsDir, PENDING_RESULTS_DIR, `${id}.csv`),
      state: 'QUEUED',
      submittedAt: Date.now(),
      dataScannedBytes: 0,
    };
    // Syntax errors are rejected here, before an execution exists (MALFORMED_QUERY). close()
    // waits for the parse (its DuckDB connection), and a start it overtook runs no query.
    if (execution.explain !== 'unsupported') await this.tracked(this.assertParses(execution.statement));
    if (this.closed) throw stopping();
    // A retry with the same token may have registered while this one was parsing.
    const raced = typeof token === 'string' ? this.replay(token, fingerprint) : undefined;
    if (raced) return raced;
    this.executions.set(id, execution);
    if (typeof token === 'string') this.tokens.set(token, { fingerprint, id });
    void this.tracked(this.runLifecycle(execution));
    return { QueryExecutionId: id };
  }

  /** The earlier answer for a ClientRequestToken, or IDEMPOTENT_PARAMETER_MISMATCH. */
  private replay(token: string, fingerprint: string): { QueryExecutionId: string } | undefined {
    const previous = this.tokens.get(token);
    if (!previous) return undefined;
    if (previous.fingerprint !== fingerprint) {
      throw invalidRequest(
        'IDEMPOTENT_PARAMETER_MISMATCH',
        `ClientRequestToken ${token} was used before with different parameters (query execution ${previous.id})`,
      );
    }
    return { QueryExecutionId: previous.id };
  }

  /** `work`, which close() waits for. */
  private tracked(work: Promise<void>): Promise<void> {
    this.running.add(work);
    void work.then(
      () => this.running.delete(work),
      () => this.running.delete(work),
    );
    return work;
  }

  /** Parses the query with DuckDB without binding it: a syntax error or several statements reject. */
  async assertParses(query: string): Promise<void> {
    const connection = await this.options.instance.connect();
    try {
      let count: number;
      try {
        count = (await connection.extractStatements(query)).count;
      } catch (err) {
        throw malformedQuery(query, err instanceof Error ? err.message : String(err));
      }
      if (count !== 1) {
        throw invalidRequest('MALFORMED_QUERY', `Only one sql statement is allowed. Got: ${count}`);
      }
    } finally {
      connection.closeSync();
    }
  }

  private async runLifecycle(execution: QueryExecution): Promise<void> {
    const { queued, running } = this.options.queryDelaysMs;
    if (queued > 0) await delay(execution, queued);
    if (execution.state !== 'QUEUED') return; // cancelled while queued
    execution.state = 'RUNNING';
    execution.runningAt = Date.now();
    let failure: QueryFailure | undefined;
    try {
      failure = await this.execute(execution);
    } catch (err) {
      failure = systemFailure(
        `GENERIC_INTERNAL_ERROR: ${err instanceof Error ? err.message : String(err)}`,
        true,
      );
    }
    const remaining = execution.runningAt + running - Date.now();
    if (remaining > 0 && execution.state === 'RUNNING') await delay(execution, remaining);
    if (execution.state !== 'RUNNING') {
      await this.discardResult(execution);
      return; // cancelled while running
    }
    const faults = this.options.faults;
    const fault = faults.failQueryAfterRunning;
    if (
      !failure &&
      (fault === true ||
        (typeof fault === 'string' && fault && execution.query.includes(fault)) ||
        (faults.failNextQueries > 0 && faults.failNextQueries-- > 0))
    ) {
      failure = systemFailure(
        'GENERIC_INTERNAL_ERROR: Query failed after running (injected by the emulator: faults.failQueryAfterRunning)',
        true,
      );
    }
    if (!failure) {
      try {
        await this.publishResult(execution);
      } catch (err) {
        failure = systemFailure(
          `GENERIC_INTERNAL_ERROR: the result could not be stored: ${err instanceof Error ? err.message : String(err)}`,
          true,
        );
      }
    }
    if (failure) {
      await this.discardResult(execution);
      execution.failure = failure;
      execution.state = 'FAILED';
    } else {
      execution.state = 'SUCCEEDED';
    }
    execution.completedAt = Date.now();
  }

  /**
   * Makes the finished result the S3 object `<OutputLocation>`: Athena uploads it whole as the
   * query ends, so a read while it runs finds no object (NoSuchKey), never part of one.
   */
  private async publishResult(execution: QueryExecution): Promise<void> {
    if (!execution.resultObject) throw new Error('no result was written');
    await mkdir(path.dirname(execution.resultPath), { recursive: true });
    await rename(execution.pendingPath, execution.resultPath);
    this.options.objects.set(execution.resultPath, execution.resultObject);
  }

  /** A failed or cancelled query leaves no result object behind. */
  private async discardResult(execution: QueryExecution): Promise<void> {
    await rm(execution.pendingPath, { force: true });
    await rm(execution.resultPath, { force: true });
    this.options.objects.delete(execution.resultPath);
  }

  /** Binds and runs the query, streaming the result to disk. Returns the failure, if any. */
  private async execute(execution: QueryExecution): Promise<QueryFailure | undefined> {
    const connection = await this.options.instance.connect();
    execution.connection = connection;
    try {
      try {
        await this.options.catalog.sync(connection);
      } catch (err) {
        return metastoreFailure(err instanceof Error ? err.message : String(err));
      }
      if (!this.options.catalog.hasDatabase(execution.database)) {
        return userFailure(`SCHEMA_NOT_FOUND: Schema '${execution.database}' does not exist`);
      }
      await connection.run(`USE ${ATHENA_CATALOG}.${sqlIdentifier(execution.database)}`);
      if (execution.explain === 'unsupported') {
        return userFailure(
          'NOT_SUPPORTED: The Athena emulator answers EXPLAIN (TYPE VALIDATE) only (other EXPLAIN forms are not emulated)',
        );
      }
      let prepared: DuckDBPreparedStatement;
      try {
        prepared = await (await connection.extractStatements(execution.statement)).prepare(0);
        if (prepared.statementType !== StatementType.SELECT) {
          return userFailure(
            'NOT_SUPPORTED: The Athena emulator runs SELECT queries only (DDL and DML are not emulated)',
          );
        }
        const parameters = execution.executionParameters ?? [];
        if (parameters.length !== prepared.parameterCount) {
          // Athena's words (the SDK's issue #3837 quotes them, ErrorType 1006): "line 1:1:
          // Incorrect number of parameters: expected 1 but found 0", at the statement's start.
          const start = new RegExp(LEADING_TRIVIA).exec(execution.statement)?.[0].length ?? 0;
          const { line, column } = lineAndColumn(execution.statement, start);
          return userFailure(
            `INVALID_PARAMETER_USAGE: line ${line}:${column}: Incorrect number of parameters: expected ${prepared.parameterCount} but found ${parameters.length}`,
          );
        }
        await this.bindParameters(connection, prepared, parameters);
      } catch (err) {
        return this.translate(execution, err);
      }
      // Bound first, so that a query Athena would refuse for another reason is refused for it.
      const charAt = charTypeOffset(execution.statement);
      if (charAt !== undefined) return userFailure(charNotSupportedReason(execution.statement, charAt));
      if (execution.explain === 'validate') {
        // Bound without running: nothing scanned, one boolean row (Trino's `Valid`).
        execution.columns = [VALID_COLUMN];
        await this.writeResult(execution, [athenaCsvLine(['Valid']), athenaCsvLine(['true'])]);
        return undefined;
      }
      const written = await this.serializedAst(connection, execution.query);
      execution.dataScannedBytes = this.scannedBytes(execution, written);
      const parameters = await this.parameterExpressions(connection, execution, written);
      if ('failure' in parameters) return parameters.failure;
      const ast = parameters.ast;
      const duckNames: string[] = [];
      for (let i = 0; i < prepared.columnCount; i++) duckNames.push(prepared.columnName(i));
      // Names come from the query as written; what runs is the query with Trino's division, avg and
      // varchar(n), and the types are its.
      const run = await this.withTrinoSemantics(connection, prepared, ast, execution);
      if ('failure' in run) return run.failure;
      prepared = run.prepared;
      const types: DuckDBType[] = [];
      for (let i = 0; i < prepared.columnCount; i++) types.push(prepared.columnType(i));
      const names = await this.resultColumnNames(connection, duckNames, ast);
      const lengths = boundedVarcharColumns(ast, boundedVarcharCasts(execution.query), names.length);
      execution.columns = names.map((name, i) => {
        const type = types[i] as DuckDBType;
        const length = type.typeId === DuckDBTypeId.VARCHAR ? lengths[i] : undefined;
        const t =
          length === undefined ? athenaColumnType(type) : { ...athenaColumnType(type), precision: length };
        return {
          CatalogName: 'hive',
          SchemaName: '',
          TableName: '',
          Name: name,
          Label: name,
          Type: t.type,
          Precision: t.precision,
          Scale: t.scale,
          Nullable: 'UNKNOWN',
          CaseSensitive: t.caseSensitive,
        };
      });
      try {
        await this.streamResult(execution, prepared, names, types);
      } catch (err) {
        if (execution.state !== 'RUNNING') return undefined; // interrupted by StopQueryExecution
        return this.translate(execution, err);
      }
      return undefined;
    } finally {
      execution.connection = undefined;
      connection.closeSync();
    }
  }

  /**
   * The statement to run: the query as prepared when nothing in it answers differently in Trino,
   * else the query (its ExecutionParameters in place) rewritten to Trino's division (by zero, of
   * decimals), `avg` types and `varchar(n)` casts (see trino-rewrite.ts), prepared. The query as
   * written was bound first, so its own errors keep their positions. An `avg` of a column that is not numeric (an interval) does not bind with the fast
   * avg macros: the query is then rewritten with the ones that take any column. The rewrite failing
   * to prepare is the emulator's fault and says so.
   */
  private async withTrinoSemantics(
    connection: DuckDBConnection,
    prepared: DuckDBPreparedStatement,
    ast: unknown,
    execution: QueryExecution,
  ): Promise<{ prepared: DuckDBPreparedStatement } | { failure: QueryFailure }> {
    if (ast === undefined) return { prepared };
    const varcharCasts = boundedVarcharCasts(execution.query);
    let error: unknown;
    try {
      const decimalDivisions = await this.decimalDivisions(connection, ast);
      for (const averages of ['fast', 'any'] as const) {
        const rewritten: unknown = structuredClone(ast);
        const count = rewriteForTrino(rewritten, { averages, decimalDivisions, varcharCasts });
        if (count.divisions + count.averages + count.casts === 0) return { prepared };
        try {
          return { prepared: await this.prepareAst(connection, rewritten) };
        } catch (err) {
          error = err;
          if (count.averages === 0) break;
        }
      }
    } catch (err) {
      error = err;
    }
    const reason = error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error);
    return {
      failure: systemFailure(
        `GENERIC_INTERNAL_ERROR: The Athena emulator could not rewrite this query to Trino's division, avg and varchar(n) semantics (${reason}); report the query`,
        false,
      ),
    };
  }

  /**
   * The result's column names as Athena gives them ({@link athenaColumnNames}), those of a
   * `SELECT * FROM (<subquery>)` being the subquery's ({@link starOverSubquery}).
   */
  private async resultColumnNames(
    connection: DuckDBConnection,
    duckNames: readonly string[],
    ast: unknown,
  ): Promise<string[]> {
    const inner = starOverSubquery(ast);
    if (inner !== undefined) {
      const prepared = await this.prepareAst(connection, inner).catch(() => undefined);
      const innerNames: string[] = [];
      for (let i = 0; i < (prepared?.columnCount ?? 0); i++) innerNames.push(prepared?.columnName(i) ?? '');
      // The outer query bound, so does its subquery: a count that differs is a shape not handled here.
      if (innerNames.length === duckNames.length)
        return this.resultColumnNames(connection, innerNames, inner);
    }
    return athenaColumnNames(duckNames, ast);
  }

  /** Prepares the SQL of a parse tree (`json_deserialize_sql`). */
  private async prepareAst(connection: DuckDBConnection, ast: unknown): Promise<DuckDBPreparedStatement> {
    const reader = await connection.runAndReadAll('SELECT json_deserialize_sql($1::JSON)', [
      JSON.stringify(ast),
    ]);
    const sql = reader.getRows()[0]?.[0];
    if (typeof sql !== 'string') throw new Error('json_deserialize_sql gave no SQL');
    return (await connection.extractStatements(sql)).prepare(0);
  }

  /**
   * The divisions of the query whose operands are decimals (or a decimal and an integer), by their
   * number (trino-rewrite.ts), with Trino's result type. Each division in turn is bound as a call
   * that fails naming its operands' types (probedOperandTypes), innermost first, the ones inside
   * it already rewritten (`(x / 3) / 2` divides a decimal). A division whose probe fails otherwise
   * is left to DuckDB's double.
   */
  private async decimalDivisions(
    connection: DuckDBConnection,
    ast: unknown,
  ): Promise<Map<number, DecimalDivision>> {
    const found = new Map<number, DecimalDivision>();
    // Numbered parents first: from the last, each division comes after those inside it.
    for (let site = countDivisions(ast) - 1; site >= 0; site--) {
      const probe: unknown = structuredClone(ast);
      rewriteForTrino(probe, { averages: 'any', decimalDivisions: found, probeSite: site });
      let types: readonly [string, string] | undefined;
      try {
        await this.prepareAst(connection, probe);
      } catch (err) {
        types = probedOperandTypes(err instanceof Error ? err.message : String(err));
      }
      const division = types && decimalDivision(...types);
      if (division) found.set(site, division);
    }
    return found;
  }

  /**
   * The parse tree to run: the query's, with each `?` replaced by its ExecutionParameter's
   * expression, as Trino binds the parameters of a prepared statement (each is an SQL literal or
   * expression: `'text'` a varchar, `42` an integer, `1.5` a decimal(2,1), `DATE '2024-01-01'`),
   * so that `x / ?` is typed as `x / 2` is. Athena takes `?` in the WHERE clause only ("Currently,
   * ? parameters can be placed only in the WHERE clause. Syntax like SELECT ? FROM table is not
   * supported", user guide, "Use parameterized queries"): one anywhere else fails NOT_SUPPORTED at
   * its position (Athena's own words for it are not documented).
   */
  private async parameterExpressions(
    connection: DuckDBConnection,
    execution: QueryExecution,
    ast: unknown,
  ): Promise<{ ast: unknown } | { failure: QueryFailure }> {
    const literals = execution.executionParameters ?? [];
    if (literals.length === 0 || ast === undefined) return { ast };
    const expressions: unknown[] = [];
    for (const literal of literals) {
      const parsed = (await this.serializedAst(connection, `SELECT ${literal}`)) as
        { statements?: { node?: { select_list?: unknown[] } }[] } | undefined;
      expressions.push(parsed?.statements?.[0]?.node?.select_list?.[0]);
    }
    const substituted: unknown = structuredClone(ast);
    const outside = substituteParameters(substituted, expressions);
    if (outside !== undefined) {
      const offset = parameterOffsets(execution.query)[outside - 1] ?? 0;
      const { line, column } = lineAndColumn(execution.query, offset);
      return {
        failure: userFailure(
          `NOT_SUPPORTED: line ${line}:${column}: Athena takes ExecutionParameters (?) in the WHERE clause only ("Currently, ? parameters can be placed only in the WHERE clause", Athena user guide); put the value in the query, or filter on it in the WHERE clause`,
        ),
      };
    }
    return { ast: substituted };
  }

  private translate(execution: QueryExecution, err: unknown): QueryFailure {
    const catalog = this.options.catalog;
    return translateDuckDbError(execution.statement, err instanceof Error ? err.message : String(err), {
      catalog: ATHENA_CATALOG,
      database: execution.database,
      hasDatabase: (name) => catalog.hasDatabase(name),
      brokenTable: (db, table) => catalog.brokenTable(db, table),
    });
  }

  /**
   * Binds Athena ExecutionParameters to the query as written (whose errors are reported first):
   * each is an SQL literal (`'text'`, `42`, `DATE '2024-01-01'`) for one `?`, evaluated by DuckDB
   * and bound with its type. What runs has them in place instead (see parameterExpressions).
   */
  private async bindParameters(
    connection: DuckDBConnection,
    prepared: DuckDBPreparedStatement,
    parameters: readonly string[],
  ): Promise<void> {
    const values: DuckDBValue[] = [];
    const types: DuckDBType[] = [];
    for (const literal of parameters) {
      const reader = await connection.runAndReadAll(`SELECT ${literal}`);
      if (reader.columnCount !== 1)
        throw new Error(`Binder Error: ExecutionParameter ${literal} is not one value`);
      values.push(reader.getRows()[0]?.[0] ?? null);
      types.push(reader.columnTypes()[0] as DuckDBType);
    }
    if (values.length) prepared.bind(values, types);
  }

  private async serializedAst(connection: DuckDBConnection, query: string): Promise<unknown> {
    const reader = await connection.runAndReadAll('SELECT json_serialize_sql($1::VARCHAR)', [query]);
    const text = reader.getRows()[0]?.[0];
    try {
      return typeof text === 'string' ? JSON.parse(text) : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * DataScannedInBytes: the size of every table file the query reads (a full scan, as for CSV);
   * none for a table named only under a `LIMIT 0` ({@link scannedTables}).
   */
  private scannedBytes(execution: QueryExecution, ast: unknown): number {
    const seen = new Set<string>();
    let bytes = 0;
    for (const ref of scannedTables(ast)) {
      const table = this.options.catalog.table(ref.schema || execution.database, ref.table);
      if (!table || seen.has(`${table.database}.${table.table}`)) continue;
      seen.add(`${table.database}.${table.table}`);
      bytes += table.bytes;
    }
    return bytes;
  }

  /**
   * Streams DuckDB's result chunks into the result file: one chunk (≤ 2,048 rows) is formatted
   * and written at a time, so memory stays flat whatever the row count.
   */
  private async streamResult(
    execution: QueryExecution,
    prepared: DuckDBPreparedStatement,
    names: readonly string[],
    types: readonly DuckDBType[],
  ): Promise<void> {
    const result = await prepared.stream();
    const converter = (value: DuckDBValue, type: DuckDBType): string | null =>
      value === null ? null : formatAthenaValue(value, type);
    // HUGEINT columns are reported bigint (a sum of integers: Trino's is a bigint); a value past
    // bigint fails the query, as Trino's sum overflows.
    const hugeint = types.flatMap((t, i) => (t.typeId === DuckDBTypeId.HUGEINT ? [i] : []));
    const checkBigint = (row: readonly (string | null)[]): void => {
      for (const i of hugeint) {
        const text = row[i];
        if (text === null || text === undefined) continue;
        const value = BigInt(text);
        if (value > BIGINT_MAX || value < BIGINT_MIN) {
          throw new Error(
            `Out of Range Error: bigint addition overflow: column ${names[i] ?? i} holds ${text}, past bigint (${BIGINT_MIN} to ${BIGINT_MAX})`,
          );
        }
      }
    };
    async function* lines(): AsyncGenerator<string> {
      yield athenaCsvLine(names);
      for (;;) {
        const chunk = await result.fetchChunk();
        if (!chunk || chunk.rowCount === 0) return;
        if (execution.state !== 'RUNNING') return;
        let text = '';
        for (const row of chunk.convertRows(converter)) {
          if (hugeint.length > 0) checkBigint(row);
          text += athenaCsvLine(row);
        }
        yield text;
      }
    }
    await this.writeResult(execution, lines());
  }

  /**
   * Writes a result file from its text to its pending path (see {@link publishResult}), waiting
   * for the disk when the write buffer is full; the MD5 of the bytes becomes the S3 ETag.
   */
  private async writeResult(
    execution: QueryExecution,
    texts: Iterable<string> | AsyncIterable<string>,
  ): Promise<void> {
    await mkdir(path.dirname(execution.pendingPath), { recursive: true });
    const out = createWriteStream(execution.pendingPath);
    const md5 = createHash('md5');
    try {
      for await (const text of texts) {
        md5.update(text);
        if (!out.write(text)) await drained(out);
      }
    } finally {
      await new Promise<void>((resolve, reject) =>
        out.end((err?: Error | null) => (err ? reject(err) : resolve())),
      );
    }
    execution.resultObject = { etag: `"${md5.digest('hex')}"`, contentType: 'text/csv' };
  }

  /**
   * GetWorkGroup: the workgroup's name, state and result configuration (Athena API reference,
   * GetWorkGroup). An unknown name is `InvalidRequestException` "WorkGroup <name> is not found.",
   * as Athena answers it (and as StartQueryExecution does here).
   */
  getWorkGroup(input: Record<string, unknown>): { WorkGroup: Record<string, unknown> } {
    const name = input.WorkGroup;
    if (typeof name !== 'string' || !WORKGROUP_NAME.test(name)) {
      throw invalidRequest(
        'INVALID_INPUT',
        `1 validation error detected: Value ${JSON.stringify(name ?? null)} at 'workGroup' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9._-]{1,128}`,
      );
    }
    const workgroup = this.options.workgroups[name];
    if (!workgroup) throw invalidRequest('INVALID_INPUT', `WorkGroup ${name} is not found.`);
    return {
      WorkGroup: {
        Name: name,
        State: workgroup.state ?? 'ENABLED',
        Configuration: {
          ResultConfiguration: workgroup.outputLocation ? { OutputLocation: workgroup.outputLocation } : {},
          EnforceWorkGroupConfiguration: workgroup.enforce === true,
          PublishCloudWatchMetricsEnabled: false,
          RequesterPaysEnabled: false,
          EngineVersion: { SelectedEngineVersion: 'AUTO', EffectiveEngineVersion: 'Athena engine version 3' },
        },
        Description: '',
        CreationTime: epochSeconds(this.createdAt),
      },
    };
  }

  /** GetQueryExecution. */
  getQueryExecution(input: Record<string, unknown>): Record<string, unknown> {
    const execution = this.find(input.QueryExecutionId);
    const now = Date.now();
    const end = execution.completedAt ?? now;
    const queueEnd = execution.runningAt ?? end;
    const status: Record<string, unknown> = {
      State: execution.state,
      SubmissionDateTime: epochSeconds(execution.submittedAt),
    };
    if (execution.completedAt !== undefined) status.CompletionDateTime = epochSeconds(execution.completedAt);
    if (execution.failure) {
      status.StateChangeReason = execution.failure.stateChangeReason;
      status.AthenaError = execution.failure.athenaError;
    } else if (execution.cancelReason) {
      status.StateChangeReason = execution.cancelReason;
    }
    const engineMillis = execution.runningAt !== undefined ? end - execution.runningAt : 0;
    return {
      QueryExecution: {
        QueryExecutionId: execution.id,
        Query: execution.query,
        // An EXPLAIN's types are not documented; Athena's UTILITY covers "other" statements.
        ...(execution.explain
          ? { StatementType: 'UTILITY', SubstatementType: 'EXPLAIN' }
          : { StatementType: 'DML', SubstatementType: 'SELECT' }),
        ResultConfiguration: { OutputLocation: execution.outputLocation },
        ResultReuseConfiguration: { ResultReuseByAgeConfiguration: { Enabled: false } },
        QueryExecutionContext: { Database: execution.database, Catalog: execution.catalog },
        Status: status,
        Statistics: {
          EngineExecutionTimeInMillis: engineMillis,
          DataScannedInBytes: execution.dataScannedBytes,
          TotalExecutionTimeInMillis: end - execution.submittedAt,
          QueryQueueTimeInMillis: queueEnd - execution.submittedAt,
          ServicePreProcessingTimeInMillis: 0,
          QueryPlanningTimeInMillis: 0,
          ServiceProcessingTimeInMillis: 0,
          ResultReuseInformation: { ReusedPreviousResult: false },
        },
        WorkGroup: execution.workgroup,
        EngineVersion: {
          SelectedEngineVersion: 'AUTO',
          EffectiveEngineVersion: 'Athena engine version 3',
        },
        ...(execution.executionParameters ? { ExecutionParameters: execution.executionParameters } : {}),
      },
    };
  }

  /** GetQueryResults: one page read from the result file. */
  async getQueryResults(input: Record<string, unknown>): Promise<Record<string, unknown>> {
    const execution = this.find(input.QueryExecutionId);
    const max = input.MaxResults ?? ATHENA_MAX_RESULTS_PER_PAGE;
    if (typeof max !== 'number' || !Number.isInteger(max) || max < 1 || max > ATHENA_MAX_RESULTS_PER_PAGE) {
      throw invalidRequest(
        'INVALID_INPUT',
        `1 validation error detected: Value '${String(max)}' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and ${ATHENA_MAX_RESULTS_PER_PAGE}`,
      );
    }
    if (execution.state !== 'SUCCEEDED') {
      const why =
        execution.state === 'FAILED'
          ? `Query has failed: ${execution.failure?.stateChangeReason ?? ''}`
          : execution.state === 'CANCELLED'
            ? 'Query has been cancelled'
            : `Query has not yet finished. Current state: ${execution.state}`;
      throw invalidRequest('INVALID_QUERY_EXECUTION_STATE', why);
    }
    const offset = input.NextToken === undefined ? 0 : this.readToken(execution.id, input.NextToken);
    const page = await readAthenaCsvPage(execution.resultPath, offset, max);
    const response: Record<string, unknown> = {
      UpdateCount: 0,
      ResultSet: {
        Rows: page.rows.map((row) => ({ Data: row.map((f) => (f === null ? {} : { VarCharValue: f })) })),
        ResultSetMetadata: { ColumnInfo: execution.columns ?? [] },
      },
    };
    if (!page.atEnd) response.NextToken = this.makeToken(execution.id, page.nextOffset);
    return response;
  }

  /**
   * NextToken is `<id>:<byte offset>` signed with a key of this emulator instance, so it needs no
   * server-side state and a forged or foreign token is refused rather than misread.
   */
  private makeToken(id: string, offset: number): string {
    const body = `${id}:${offset}`;
    const mac = createHmac('sha256', this.tokenKey).update(body).digest('base64url');
    return Buffer.from(`${body}:${mac}`).toString('base64url');
  }

  private readToken(id: string, token: unknown): number {
    const invalid = invalidRequest('INVALID_INPUT', `NextToken is not valid for query execution ${id}`);
    if (typeof token !== 'string') throw invalid;
    const [tokenId, offset, mac] = Buffer.from(token, 'base64url').toString().split(':');
    if (tokenId !== id || !offset || !mac) throw invalid;
    const expected = createHmac('sha256', this.tokenKey).update(`${tokenId}:${offset}`).digest();
    const given = Buffer.from(mac, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalid;
    return Number(offset);
  }

  /** StopQueryExecution: cancels a queued or running query; a finished one is left as it is. */
  stopQueryExecution(input: Record<string, unknown>): Record<string, never> {
    const execution = this.find(input.QueryExecutionId);
    if (execution.state === 'QUEUED' || execution.state === 'RUNNING') {
      const wasRunning = execution.state === 'RUNNING';
      execution.state = 'CANCELLED';
      execution.cancelReason = 'Query cancelled by user';
      execution.completedAt = Date.now();
      if (wasRunning) execution.connection?.interrupt();
      execution.wake?.();
    }
    return {};
  }

  private find(id: unknown): QueryExecution {
    const execution = typeof id === 'string' ? this.executions.get(id) : undefined;
    if (!execution) throw invalidRequest('INVALID_INPUT', `QueryExecution ${String(id)} was not found`);
    return execution;
  }

  /**
   * Cancels what runs and waits for it to settle: once it resolves, no DuckDB connection of the
   * engine is open and none is opened (a StartQueryExecution is refused from the start of close()).
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const execution of this.executions.values())
      this.stopQueryExecution({ QueryExecutionId: execution.id });
    await Promise.allSettled([...this.running]);
  }
}

/** What a StartQueryExecution gets once the emulator is stopping (close() was called). */
function stopping(): AthenaApiError {
  return new AthenaApiError(
    'InternalServerException',
    'The Athena emulator is stopping: StartQueryExecution was refused and runs no query',
  );
}

function drained(stream: WriteStream): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = (): void => {
      stream.off('error', onError);
      resolve();
    };
    const onError = (err: Error): void => {
      stream.off('drain', onDrain);
      reject(err);
    };
    stream.once('drain', onDrain);
    stream.once('error', onError);
  });
}
