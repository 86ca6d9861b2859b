/**
 * Athena's error shapes (athena-wire.md, "Transport" → Errors) and the translation of DuckDB's
 * error messages into the `StateChangeReason` texts that Athena (Trino) gives a failed query.
 */
import { splitTypeList } from './query-text';
import { DIVISION_BY_ZERO_REASON } from './trino-rewrite';

/** An error that the Athena API answers with, as JSON `{__type, Message, AthenaErrorCode, …}`. */
export class AthenaApiError extends Error {
  readonly type: string;
  readonly status: number;
  readonly athenaErrorCode: string | undefined;
  readonly reason: string | undefined;

  constructor(
    type: string,
    message: string,
    options: { status?: number; athenaErrorCode?: string; reason?: string } = {},
  ) {
    super(message);
    this.name = 'AthenaApiError';
    this.type = type;
    this.status = options.status ?? (type === 'InternalServerException' ? 500 : 400);
    this.athenaErrorCode = options.athenaErrorCode;
    this.reason = options.reason;
  }

  /** The JSON body Athena sends. */
  toJSON(): Record<string, string> {
    const body: Record<string, string> = { __type: this.type, Message: this.message };
    if (this.athenaErrorCode) {
      body.AthenaErrorCode = this.athenaErrorCode;
      body.ErrorCode = this.athenaErrorCode;
    }
    if (this.reason) body.Reason = this.reason;
    return body;
  }
}

/** `InvalidRequestException` with Athena's error code (`INVALID_INPUT`, `MALFORMED_QUERY`, …). */
export function invalidRequest(athenaErrorCode: string, message: string): AthenaApiError {
  return new AthenaApiError('InvalidRequestException', message, { athenaErrorCode });
}

/**
 * `AthenaError.ErrorCategory` values (Athena user guide, "Athena error catalog"):
 * 1 SYSTEM, 2 USER, 3 OTHER.
 */
export const ATHENA_ERROR_CATEGORY = { system: 1, user: 2, other: 3 } as const;
/**
 * `AthenaError.ErrorType` values used here (same catalog, which gives each number a description
 * but not the errors that get it): 200 "Query engine had an internal error", 204 "The metastore
 * had an error", 1000 "User error", 1001 and 1002 "Data error", 1006 "Syntax error", 1100 "Invalid argument
 * provided", 1200 "Query not supported", 1301 "General entity not found", 1303 "Provided function
 * or function implementation not found".
 */
export const ATHENA_ERROR_TYPE = {
  engineInternal: 200,
  metastore: 204,
  userError: 1000,
  dataError: 1001,
  /** Also "Data error": the catalog has three (1001, 1002, 1007). */
  dataErrorOther: 1002,
  syntaxError: 1006,
  invalidArgument: 1100,
  notSupported: 1200,
  entityNotFound: 1301,
  functionNotFound: 1303,
} as const;

/**
 * The ErrorType of each user error the emulator reports, by the error name that starts its
 * StateChangeReason. The catalog does not say which error gets which number: these are the
 * numbers a public emulator that fronts a real Trino (athena-local, src/failure.rs) records
 * having measured against Athena (unverified here). They agree with the catalog's descriptions
 * but for TABLE_NOT_FOUND and SCHEMA_NOT_FOUND, measured 1301 "General entity not found" rather
 * than 1110 "Provided table or view does not exist". A name not listed (GENERIC_USER_ERROR,
 * HIVE_BAD_DATA: not measured) gets the catalog's generic 1000 "User error".
 */
export const USER_ERROR_TYPES: Readonly<Record<string, number>> = {
  COLUMN_NOT_FOUND: ATHENA_ERROR_TYPE.syntaxError,
  TABLE_NOT_FOUND: ATHENA_ERROR_TYPE.entityNotFound,
  SCHEMA_NOT_FOUND: ATHENA_ERROR_TYPE.entityNotFound,
  FUNCTION_NOT_FOUND: ATHENA_ERROR_TYPE.functionNotFound,
  TYPE_MISMATCH: ATHENA_ERROR_TYPE.dataErrorOther,
  INVALID_CAST_ARGUMENT: ATHENA_ERROR_TYPE.invalidArgument,
  NUMERIC_VALUE_OUT_OF_RANGE: ATHENA_ERROR_TYPE.invalidArgument,
  DIVISION_BY_ZERO: ATHENA_ERROR_TYPE.dataError,
  NOT_SUPPORTED: ATHENA_ERROR_TYPE.notSupported,
  // aws-sdk-js-v3 issue #3837 quotes Athena's AthenaError for it: ErrorType 1006.
  INVALID_PARAMETER_USAGE: ATHENA_ERROR_TYPE.syntaxError,
};

/** Why a query failed, in the two forms GetQueryExecution reports. */
export interface QueryFailure {
  /** `Status.StateChangeReason`, e.g. `COLUMN_NOT_FOUND: line 1:8: Column 'x' cannot be resolved`. */
  readonly stateChangeReason: string;
  /** `Status.AthenaError`. */
  readonly athenaError: {
    readonly ErrorCategory: number;
    readonly ErrorType: number;
    readonly Retryable: boolean;
    readonly ErrorMessage: string;
  };
}

/**
 * A query failure of the user's making (bad name, bad cast, bad data): its ErrorType is the one
 * {@link USER_ERROR_TYPES} gives the error name that starts the reason (`COLUMN_NOT_FOUND: …`).
 */
export function userFailure(reason: string): QueryFailure {
  const name = /^([A-Z_]+):/.exec(reason)?.[1] ?? '';
  return {
    stateChangeReason: reason,
    athenaError: {
      ErrorCategory: ATHENA_ERROR_CATEGORY.user,
      ErrorType: USER_ERROR_TYPES[name] ?? ATHENA_ERROR_TYPE.userError,
      Retryable: false,
      ErrorMessage: reason,
    },
  };
}

/**
 * The data dir cannot be read as a catalog (a sidecar schema that is not valid, two files for one
 * table): `HIVE_METASTORE_ERROR`, the catalog's 204 "The metastore had an error", in the SYSTEM
 * category because Trino counts it an EXTERNAL error, not a USER_ERROR (unverified: not measured).
 * Not retryable: the data dir must be fixed.
 */
export function metastoreFailure(reason: string): QueryFailure {
  return {
    stateChangeReason: `HIVE_METASTORE_ERROR: ${reason}`,
    athenaError: {
      ErrorCategory: ATHENA_ERROR_CATEGORY.system,
      ErrorType: ATHENA_ERROR_TYPE.metastore,
      Retryable: false,
      ErrorMessage: `HIVE_METASTORE_ERROR: ${reason}`,
    },
  };
}

/** A failure of the engine itself (the injected fault, an unexpected DuckDB error). */
export function systemFailure(reason: string, retryable: boolean): QueryFailure {
  return {
    stateChangeReason: reason,
    athenaError: {
      ErrorCategory: ATHENA_ERROR_CATEGORY.system,
      ErrorType: ATHENA_ERROR_TYPE.engineInternal,
      Retryable: retryable,
      ErrorMessage: reason,
    },
  };
}

/** 1-based line and column of a position in the query text, as Trino reports them. */
export interface QueryPosition {
  readonly line: number;
  readonly column: number;
}

/**
 * Finds the position DuckDB points at with its `LINE n: …` excerpt and caret. DuckDB shortens
 * long lines to a window marked with `...`, so the excerpt is located in the query's line rather
 * than trusted to start at column 1.
 */
export function positionFromDuckDbMessage(query: string, message: string): QueryPosition | undefined {
  const match = /\nLINE (\d+): (.*)\n( *)\^/.exec(message);
  if (!match) return undefined;
  const line = Number(match[1]);
  const prefixLength = `LINE ${match[1]}: `.length;
  let excerpt = match[2] ?? '';
  let caret = (match[3] ?? '').length - prefixLength;
  const queryLine = query.split('\n')[line - 1];
  if (queryLine === undefined || caret < 0) return undefined;
  let start = 0;
  if (excerpt.startsWith('...')) {
    excerpt = excerpt.slice(3);
    caret -= 3;
    if (excerpt.endsWith('...')) excerpt = excerpt.slice(0, -3);
    start = queryLine.indexOf(excerpt);
    if (start === -1) return undefined;
  }
  return { line, column: start + caret + 1 };
}

/** The identifier chain (`a`, `a.b`, `"A".b.c`) that starts at a position of the query. */
function identifierAt(query: string, position: QueryPosition): string[] | undefined {
  const text = (query.split('\n')[position.line - 1] ?? '').slice(position.column - 1);
  const part = String.raw`(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)`;
  const chain = new RegExp(String.raw`^${part}(?:\s*\.\s*${part})*`).exec(text);
  if (!chain) return undefined;
  const parts = chain[0].match(new RegExp(part, 'g')) ?? [];
  // Trino folds unquoted identifiers to lower case in its messages.
  return parts.map((p) => (p.startsWith('"') ? p.slice(1, -1).replaceAll('""', '"') : p.toLowerCase()));
}

const where = (position: QueryPosition | undefined): string =>
  position ? `line ${position.line}:${position.column}: ` : '';

/** Trino's binary operators, whose type errors are TYPE_MISMATCH "Cannot apply operator". */
const BINARY_OPERATORS = new Set(['+', '-', '*', '/', '%', '=', '<>', '!=', '<', '>', '<=', '>=']);

/** DuckDB's type names as Trino writes them (a literal's length, which Trino adds, is not known). */
const TRINO_TYPE_NAMES: Readonly<Record<string, string>> = {
  VARCHAR: 'varchar',
  STRING_LITERAL: 'varchar',
  INTEGER_LITERAL: 'integer',
  FLOAT: 'real',
  TIMESTAMP: 'timestamp(3)',
  'TIMESTAMP WITH TIME ZONE': 'timestamp(3) with time zone',
  BLOB: 'varbinary',
};

function trinoTypeName(duckdb: string): string {
  return TRINO_TYPE_NAMES[duckdb] ?? duckdb.toLowerCase();
}

/** What the translation needs to know about the emulator's catalog. */
export interface CatalogContext {
  /** Athena's catalog name, `awsdatacatalog`. */
  readonly catalog: string;
  /** The query's context database (QueryExecutionContext.Database). */
  readonly database: string;
  /** Whether a database (a folder under the data dir) exists. */
  hasDatabase(name: string): boolean;
  /** Why a table on disk could not be read, when that is why it is missing. */
  brokenTable(database: string, table: string): string | undefined;
}

/**
 * Turns a DuckDB error raised while binding or running a query into Athena's failure reason:
 * `TABLE_NOT_FOUND`, `SCHEMA_NOT_FOUND`, `COLUMN_NOT_FOUND`, `FUNCTION_NOT_FOUND`, `TYPE_MISMATCH` (an
 * operator of types it does not take; a function's is FUNCTION_NOT_FOUND, as in Trino),
 * `INVALID_CAST_ARGUMENT`, `NUMERIC_VALUE_OUT_OF_RANGE`, `DIVISION_BY_ZERO`, `HIVE_BAD_DATA` (a data file that does
 * not parse) and, for anything else, `GENERIC_USER_ERROR` with DuckDB's own first line.
 */
export function translateDuckDbError(query: string, message: string, context: CatalogContext): QueryFailure {
  const position = positionFromDuckDbMessage(query, message);
  // Errors raised through a prepared statement arrive prefixed with "Error: ".
  const firstLine = (message.split('\n')[0] ?? message).trim().replace(/^Error: /, '');
  const named = position ? identifierAt(query, position) : undefined;

  if (/^Catalog Error: Table with name .* does not exist/.test(firstLine)) {
    const parts = named ?? [/Table with name (\S+)/.exec(firstLine)?.[1] ?? '?'];
    const [catalog, schema, table] =
      parts.length >= 3
        ? parts
        : parts.length === 2
          ? [context.catalog, parts[0], parts[1]]
          : [context.catalog, context.database, parts[0]];
    if (schema && !context.hasDatabase(schema)) {
      return userFailure(`SCHEMA_NOT_FOUND: ${where(position)}Schema '${schema}' does not exist`);
    }
    const broken = schema && table ? context.brokenTable(schema, table) : undefined;
    if (broken) return userFailure(`HIVE_BAD_DATA: ${where(position)}Table '${schema}.${table}': ${broken}`);
    return userFailure(
      `TABLE_NOT_FOUND: ${where(position)}Table '${catalog}.${schema}.${table}' does not exist`,
    );
  }
  if (/^Catalog Error: Schema with name .* does not exist/.test(firstLine)) {
    const schema = /Schema with name (\S+)/.exec(firstLine)?.[1] ?? '?';
    return userFailure(`SCHEMA_NOT_FOUND: ${where(position)}Schema '${schema}' does not exist`);
  }
  if (
    /^Binder Error: (Referenced column|Values list .* does not have a column|Table .* does not have a column)/.test(
      firstLine,
    )
  ) {
    const column = named?.join('.') ?? /"([^"]+)"/.exec(firstLine)?.[1] ?? '?';
    return userFailure(`COLUMN_NOT_FOUND: ${where(position)}Column '${column}' cannot be resolved`);
  }
  if (/^Catalog Error: (Scalar|Aggregate|Table) Function with name .* does not exist/.test(firstLine)) {
    const fn = /Function with name (\S+)/.exec(firstLine)?.[1] ?? '?';
    return userFailure(`FUNCTION_NOT_FOUND: ${where(position)}Function '${fn}' not registered`);
  }
  const mismatch =
    /^Binder Error: No function matches the given name and argument types '([^(]+)\((.*)\)'/.exec(firstLine);
  if (mismatch) {
    const [, fn = '?', args = ''] = mismatch;
    const types = args === '' ? [] : splitTypeList(args).map(trinoTypeName);
    if (BINARY_OPERATORS.has(fn) && types.length === 2) {
      return userFailure(
        `TYPE_MISMATCH: ${where(position)}Cannot apply operator: ${types[0]} ${fn} ${types[1]}`,
      );
    }
    return userFailure(
      `FUNCTION_NOT_FOUND: ${where(position)}Unexpected parameters (${types.join(', ')}) for function ${fn}`,
    );
  }
  const detail = firstLine.replace(/^[A-Za-z ]+ Error: /, '');
  // Raised at run time by the emulator's division macros (trino-rewrite.ts); Trino's runtime errors
  // carry no position.
  if (firstLine.startsWith('Invalid Input Error:') && detail === DIVISION_BY_ZERO_REASON) {
    return userFailure(DIVISION_BY_ZERO_REASON);
  }
  // Raised by the varchar(n) cast macro, in Trino's words.
  if (firstLine.startsWith('Invalid Input Error:') && detail.startsWith('INVALID_CAST_ARGUMENT: Value ')) {
    return userFailure(detail);
  }
  // A value of a CSV file that does not parse as its column's declared type: Athena fails the
  // query reading it with HIVE_BAD_DATA (its CSV SerDe: "Error parsing field value …"), not as a
  // cast in the query. DuckDB's first line only says where; the next ones say which value.
  if (firstLine.startsWith('Conversion Error: CSV Error')) {
    const lines = message.split('\n').map((l) => l.trim());
    const why = lines.find((l) => l.startsWith('Error when converting column')) ?? '';
    return userFailure(`HIVE_BAD_DATA: ${[detail, why].filter(Boolean).join(': ')}`);
  }
  if (firstLine.startsWith('Conversion Error:')) {
    return userFailure(`INVALID_CAST_ARGUMENT: ${where(position)}${detail}`);
  }
  if (firstLine.startsWith('Out of Range Error:')) {
    return userFailure(`NUMERIC_VALUE_OUT_OF_RANGE: ${where(position)}${detail}`);
  }
  if (firstLine.startsWith('Invalid Input Error:') && /CSV|Parquet|parquet|csv/.test(message)) {
    return userFailure(`HIVE_BAD_DATA: ${detail}`);
  }
  return userFailure(`GENERIC_USER_ERROR: ${where(position)}${detail}`);
}

/**
 * A syntax error as Athena answers StartQueryExecution (`MALFORMED_QUERY`), from DuckDB's parser
 * message, e.g. `line 1:1: syntax error at or near "SELEC"`.
 */
export function malformedQuery(query: string, message: string): AthenaApiError {
  const position = positionFromDuckDbMessage(query, message);
  const firstLine = (message.split('\n')[0] ?? message)
    .replace(/^Failed to extract statements: /, '')
    .replace(/^Parser Error: /, '')
    .trim();
  return invalidRequest('MALFORMED_QUERY', `${where(position)}${firstLine}`);
}
