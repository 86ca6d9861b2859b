import {
  AthenaApiError,
  malformedQuery,
  metastoreFailure,
  positionFromDuckDbMessage,
  translateDuckDbError,
  userFailure,
  type CatalogContext,
} from '../../../emulators/athena/errors';

const context: CatalogContext = {
  catalog: 'awsdatacatalog',
  database: 'marketing',
  hasDatabase: (name) => name === 'marketing' || name === 'default',
  brokenTable: (db, table) =>
    db === 'marketing' && table === 'bad' ? 'cannot read bad.csv: boom' : undefined,
};

// DuckDB 1.5 messages, as @duckdb/node-api raises them.
const tableMissing = (query: string, caret: number, name = 'nope'): string =>
  `Catalog Error: Table with name ${name} does not exist!\nDid you mean "customers"?\n\nLINE 1: ${query}\n${' '.repeat(8 + caret)}^`;

describe('positionFromDuckDbMessage', () => {
  it('turns the caret under the excerpt into a 1-based line and column', () => {
    const query = 'SELECT * FROM nope';
    expect(positionFromDuckDbMessage(query, tableMissing(query, 14))).toEqual({ line: 1, column: 15 });
  });

  it('finds the column in a shortened excerpt (DuckDB elides long lines with ...)', () => {
    const query = `SELECT ${'a, '.repeat(60)}x FROM t`;
    const excerpt = `...${query.slice(160, 195)}...`;
    const caret = 3 + (query.indexOf('x FROM') - 160);
    const message = `Binder Error: Referenced column "x" not found\n\nLINE 1: ${excerpt}\n${' '.repeat(8 + caret)}^`;
    expect(positionFromDuckDbMessage(query, message)).toEqual({
      line: 1,
      column: query.indexOf('x FROM') + 1,
    });
  });

  it('reads the line number of a multi-line query', () => {
    const query = 'SELECT 1\nFROM nope';
    const message = `Catalog Error: Table with name nope does not exist!\n\nLINE 2: FROM nope\n${' '.repeat(13)}^`;
    expect(positionFromDuckDbMessage(query, message)).toEqual({ line: 2, column: 6 });
  });
});

describe('translateDuckDbError', () => {
  it('reports an unknown bare table in the context database', () => {
    const query = 'SELECT * FROM nope';
    expect(translateDuckDbError(query, tableMissing(query, 14), context).stateChangeReason).toBe(
      "TABLE_NOT_FOUND: line 1:15: Table 'awsdatacatalog.marketing.nope' does not exist",
    );
  });

  it('keeps the database a qualified name gives', () => {
    const query = 'SELECT * FROM Default.Nope';
    expect(translateDuckDbError(query, tableMissing(query, 14), context).stateChangeReason).toBe(
      "TABLE_NOT_FOUND: line 1:15: Table 'awsdatacatalog.default.nope' does not exist",
    );
  });

  it('reports an unknown database as SCHEMA_NOT_FOUND', () => {
    const query = 'SELECT * FROM sales.orders';
    const message = `Catalog Error: Table with name "sales.orders" does not exist because schema "sales" does not exist.\n\nLINE 1: ${query}\n${' '.repeat(22)}^`;
    expect(translateDuckDbError(query, message, context).stateChangeReason).toBe(
      "SCHEMA_NOT_FOUND: line 1:15: Schema 'sales' does not exist",
    );
  });

  it('reports a table whose file cannot be read as HIVE_BAD_DATA', () => {
    const query = 'SELECT * FROM bad';
    expect(translateDuckDbError(query, tableMissing(query, 14, 'bad'), context).stateChangeReason).toBe(
      "HIVE_BAD_DATA: line 1:15: Table 'marketing.bad': cannot read bad.csv: boom",
    );
  });

  it('reports an unknown column as COLUMN_NOT_FOUND, qualified as written', () => {
    const query = 'SELECT c.zz FROM customers c';
    const message = `Binder Error: Table "c" does not have a column named "zz"\n\nLINE 1: ${query}\n${' '.repeat(15)}^`;
    const failure = translateDuckDbError(query, message, context);
    expect(failure.stateChangeReason).toBe("COLUMN_NOT_FOUND: line 1:8: Column 'c.zz' cannot be resolved");
    expect(failure.athenaError).toEqual({
      ErrorCategory: 2,
      ErrorType: 1006,
      Retryable: false,
      ErrorMessage: failure.stateChangeReason,
    });
  });

  it('reports an unknown function and a failed cast', () => {
    const fn = 'SELECT foo(1)';
    expect(
      translateDuckDbError(
        fn,
        `Catalog Error: Scalar Function with name foo does not exist!\n\nLINE 1: ${fn}\n${' '.repeat(15)}^`,
        context,
      ).stateChangeReason,
    ).toBe("FUNCTION_NOT_FOUND: line 1:8: Function 'foo' not registered");
    const cast = "SELECT CAST('x' AS INTEGER)";
    expect(
      translateDuckDbError(
        cast,
        `Conversion Error: Could not convert string 'x' to INT32\n\nLINE 1: ${cast}\n${' '.repeat(15)}^`,
        context,
      ).stateChangeReason,
    ).toBe("INVALID_CAST_ARGUMENT: line 1:8: Could not convert string 'x' to INT32");
  });
});

describe('translateDuckDbError: types a call does not take', () => {
  const noMatch = (query: string, call: string, caret: number): string =>
    `Binder Error: No function matches the given name and argument types '${call}'. You might need to add explicit type casts.\n\tCandidate functions:\n\t+(TINYINT, TINYINT) -> TINYINT\n\nLINE 1: ${query}\n${' '.repeat(8 + caret)}^`;

  it('reports an operator as TYPE_MISMATCH "Cannot apply operator", in Trino type names', () => {
    const query = 'SELECT email + 1 FROM customers';
    const failure = translateDuckDbError(query, noMatch(query, '+(VARCHAR, INTEGER_LITERAL)', 13), context);
    expect(failure.stateChangeReason).toBe(
      'TYPE_MISMATCH: line 1:14: Cannot apply operator: varchar + integer',
    );
    expect(failure.athenaError.ErrorType).toBe(1002);
  });

  it('reports a function as FUNCTION_NOT_FOUND "Unexpected parameters", nested types kept whole', () => {
    const query = 'SELECT round(x, d) FROM t';
    const failure = translateDuckDbError(
      query,
      noMatch(query, 'round(DECIMAL(12,2), FLOAT, TIMESTAMP)', 7),
      context,
    );
    expect(failure.stateChangeReason).toBe(
      'FUNCTION_NOT_FOUND: line 1:8: Unexpected parameters (decimal(12,2), real, timestamp(3)) for function round',
    );
    expect(failure.athenaError.ErrorType).toBe(1303);
  });
});

describe('AthenaError of a failed query', () => {
  it.each([
    ["TABLE_NOT_FOUND: line 1:15: Table 'awsdatacatalog.m.x' does not exist", 1301],
    ["SCHEMA_NOT_FOUND: Schema 'sales' does not exist", 1301],
    ["COLUMN_NOT_FOUND: line 1:8: Column 'x' cannot be resolved", 1006],
    ["FUNCTION_NOT_FOUND: line 1:8: Function 'foo' not registered", 1303],
    ['TYPE_MISMATCH: line 1:14: Cannot apply operator: varchar + integer', 1002],
    ["INVALID_CAST_ARGUMENT: line 1:8: Could not convert string 'x' to INT32", 1100],
    ['NUMERIC_VALUE_OUT_OF_RANGE: bigint addition overflow', 1100],
    ['DIVISION_BY_ZERO: Division by zero', 1001],
    ['NOT_SUPPORTED: The Athena emulator runs SELECT queries only', 1200],
    ['HIVE_BAD_DATA: cannot read x.csv', 1000],
    ['GENERIC_USER_ERROR: anything else', 1000],
  ])('gives %s the ErrorType %d, USER, not retryable', (reason, type) => {
    expect(userFailure(reason).athenaError).toEqual({
      ErrorCategory: 2,
      ErrorType: type,
      Retryable: false,
      ErrorMessage: reason,
    });
  });

  it('gives a data dir that is not a catalog HIVE_METASTORE_ERROR, SYSTEM 204, not retryable', () => {
    expect(metastoreFailure('x.schema.json: not valid JSON')).toEqual({
      stateChangeReason: 'HIVE_METASTORE_ERROR: x.schema.json: not valid JSON',
      athenaError: {
        ErrorCategory: 1,
        ErrorType: 204,
        Retryable: false,
        ErrorMessage: 'HIVE_METASTORE_ERROR: x.schema.json: not valid JSON',
      },
    });
  });
});

describe('malformedQuery', () => {
  it('is an InvalidRequestException with MALFORMED_QUERY and the position', () => {
    const err = malformedQuery(
      'SELEC 1',
      'Failed to extract statements: Parser Error: syntax error at or near "SELEC"\n\nLINE 1: SELEC 1\n        ^',
    );
    expect(err).toBeInstanceOf(AthenaApiError);
    expect(err.toJSON()).toEqual({
      __type: 'InvalidRequestException',
      Message: 'line 1:1: syntax error at or near "SELEC"',
      AthenaErrorCode: 'MALFORMED_QUERY',
      ErrorCode: 'MALFORMED_QUERY',
    });
    expect(err.status).toBe(400);
  });
});
