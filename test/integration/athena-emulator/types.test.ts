import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { GetQueryResultsCommand } from '@aws-sdk/client-athena';
import { startAthenaEmulator } from '../../../emulators/athena';
import { makeDataDir, resultFile, runQuery, startHarness, type Harness } from './helpers';

jest.setTimeout(60_000);

/**
 * Every column type DuckDB can produce in a result, with the Athena type name, precision, scale
 * and the text Athena gives the value (docs/athena-emulator.md has the same table).
 */
const COLUMNS: [sql: string, type: string, precision: number, scale: number, text: string][] = [
  ["'text'::VARCHAR", 'varchar', 2147483647, 0, 'text'],
  ['\'{"a": [1, 2]}\'::JSON', 'json', 0, 0, '{"a": [1, 2]}'],
  ['true', 'boolean', 0, 0, 'true'],
  ['(-128)::TINYINT', 'tinyint', 3, 0, '-128'],
  ['32767::SMALLINT', 'smallint', 5, 0, '32767'],
  ['2147483647::INTEGER', 'integer', 10, 0, '2147483647'],
  ['(-9223372036854775808)::BIGINT', 'bigint', 19, 0, '-9223372036854775808'],
  ['255::UTINYINT', 'smallint', 5, 0, '255'],
  ['65535::USMALLINT', 'integer', 10, 0, '65535'],
  ['4294967295::UINTEGER', 'bigint', 19, 0, '4294967295'],
  ['18446744073709551615::UBIGINT', 'decimal', 20, 0, '18446744073709551615'],
  // DuckDB's sum of integers; Trino's is a bigint.
  ['(-9223372036854775808)::HUGEINT', 'bigint', 19, 0, '-9223372036854775808'],
  ['12345::UHUGEINT', 'decimal', 38, 0, '12345'],
  [
    "'123456789012345678901234567890123456789012'::BIGNUM",
    'varchar',
    2147483647,
    0,
    '123456789012345678901234567890123456789012',
  ],
  ['0.1::FLOAT', 'float', 9, 0, '0.1'],
  ['1e20::DOUBLE', 'double', 17, 0, '1.0E20'],
  ['0.5::DOUBLE', 'double', 17, 0, '0.5'],
  ['12.345::DECIMAL(12,3)', 'decimal', 12, 3, '12.345'],
  ['1.5::DECIMAL(38,10)', 'decimal', 38, 10, '1.5000000000'],
  ["DATE '2020-01-01'", 'date', 0, 0, '2020-01-01'],
  ["TIMESTAMP '2020-01-01 12:34:56.789'", 'timestamp', 3, 3, '2020-01-01 12:34:56.789'],
  ["'2020-01-01 12:34:56'::TIMESTAMP_S", 'timestamp', 3, 3, '2020-01-01 12:34:56.000'],
  ["'2020-01-01 12:34:56.789'::TIMESTAMP_MS", 'timestamp', 3, 3, '2020-01-01 12:34:56.789'],
  ["'2020-01-01 12:34:56.789123456'::TIMESTAMP_NS", 'timestamp', 3, 3, '2020-01-01 12:34:56.789'],
  [
    "'2020-01-01 14:34:56.789+02'::TIMESTAMPTZ",
    'timestamp with time zone',
    3,
    3,
    '2020-01-01 12:34:56.789 UTC',
  ],
  ["TIME '12:34:56.789'", 'time', 3, 3, '12:34:56.789'],
  ["'12:34:56.789'::TIME_NS", 'time', 3, 3, '12:34:56.789'],
  ["'12:34:56.789+05:30'::TIMETZ", 'time with time zone', 3, 3, '12:34:56.789+05:30'],
  ["INTERVAL '2 days 1 hour 2 minutes 3.004 seconds'", 'interval day to second', 0, 3, '2 01:02:03.004'],
  ["'\\xDE\\xAD\\x00'::BLOB", 'varbinary', 2147483647, 0, 'de ad 00'],
  [
    "'POINT(1 2)'::GEOMETRY",
    'varbinary',
    2147483647,
    0,
    '01 01 00 00 00 00 00 00 00 00 00 f0 3f 00 00 00 00 00 00 00 40',
  ],
  ['[1, NULL, 3]', 'array', 0, 0, '[1, null, 3]'],
  ["['a', '']::VARCHAR[2]", 'array', 0, 0, '[a, ]'],
  ["MAP {'k': 1.5::DOUBLE}", 'map', 0, 0, '{k=1.5}'],
  ["{'a': 1, 'b': 'x', 'c': NULL}", 'row', 0, 0, '{a=1, b=x, c=null}'],
  [
    "'00000000-0000-0000-0000-000000000001'::UUID",
    'varchar',
    2147483647,
    0,
    '00000000-0000-0000-0000-000000000001',
  ],
  ['(SELECT small_enum FROM test_all_types() LIMIT 1)', 'varchar', 2147483647, 0, 'DUCK_DUCK_ENUM'],
  ["'101'::BIT", 'varchar', 2147483647, 0, '101'],
  ['union_value(num := 2)', 'varchar', 2147483647, 0, '2'],
  ['1::VARIANT', 'varchar', 2147483647, 0, '1'],
];

describe('Athena emulator column types (real @aws-sdk/client-athena)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      'shop/prices.csv': '"price"\n"1.00"\n',
      'shop/prices.schema.json': JSON.stringify({ columns: { price: 'DECIMAL(10,2)' } }),
    });
  });
  afterAll(() => h.close());

  it('maps every DuckDB result type to Athena’s name, precision, scale and value text', async () => {
    const query = `SELECT ${COLUMNS.map(([sql], i) => `${sql} AS c${i}`).join(', ')}`;
    const { id, execution } = await runQuery(h.athena, { QueryString: query });
    expect(execution.Status?.StateChangeReason).toBeUndefined();
    const page = await h.athena.send(new GetQueryResultsCommand({ QueryExecutionId: id }));
    const info = page.ResultSet?.ResultSetMetadata?.ColumnInfo ?? [];
    const values = page.ResultSet?.Rows?.[1]?.Data ?? [];
    const actual = COLUMNS.map(([sql], i) => [
      sql,
      info[i]?.Type,
      info[i]?.Precision,
      info[i]?.Scale,
      values[i]?.VarCharValue,
    ]);
    expect(actual).toEqual(COLUMNS);
    expect(info[0]).toEqual({
      CatalogName: 'hive',
      SchemaName: '',
      TableName: '',
      Name: 'c0',
      Label: 'c0',
      Type: 'varchar',
      Precision: 2147483647,
      Scale: 0,
      Nullable: 'UNKNOWN',
      CaseSensitive: true,
    });
    // The result file carries the same text, quoted, in the same order.
    const csv = await resultFile(h.s3, execution);
    const header = COLUMNS.map((_, i) => `"c${i}"`).join(',');
    const row = COLUMNS.map(([, , , , text]) => `"${text.replaceAll('"', '""')}"`).join(',');
    expect(csv).toBe(`${header}\n${row}\n`);
  });

  it('types a sum of integers bigint, as Trino does, and fails one past its range as Trino does', async () => {
    const { id } = await runQuery(h.athena, {
      QueryString: 'SELECT sum(x) AS total FROM (VALUES (1), (2)) AS t(x)',
    });
    const page = await h.athena.send(new GetQueryResultsCommand({ QueryExecutionId: id }));
    const [total] = page.ResultSet?.ResultSetMetadata?.ColumnInfo ?? [];
    expect([total?.Type, total?.Precision, total?.Scale]).toEqual(['bigint', 19, 0]);
    expect(page.ResultSet?.Rows?.[1]?.Data).toEqual([{ VarCharValue: '3' }]);

    const overflow = await runQuery(h.athena, {
      QueryString: 'SELECT sum(x) AS total FROM (VALUES (9223372036854775807), (1)) AS t(x)',
    });
    expect(overflow.execution.Status?.State).toBe('FAILED');
    expect(overflow.execution.Status?.StateChangeReason).toBe(
      'NUMERIC_VALUE_OUT_OF_RANGE: bigint addition overflow: column total holds 9223372036854775808, past bigint (-9223372036854775808 to 9223372036854775807)',
    );
  });

  it('divides integers as Trino does: an integer, truncated toward zero', async () => {
    const { id } = await runQuery(h.athena, {
      QueryString: 'SELECT 7 / 2 AS q, -7 / 2 AS n, CAST(7 AS DOUBLE) / 2 AS f',
    });
    const page = await h.athena.send(new GetQueryResultsCommand({ QueryExecutionId: id }));
    expect(page.ResultSet?.ResultSetMetadata?.ColumnInfo?.map((c) => c.Type)).toEqual([
      'integer',
      'integer',
      'double',
    ]);
    expect(page.ResultSet?.Rows?.[1]?.Data?.map((d) => d.VarCharValue)).toEqual(['3', '-3', '3.5']);
  });

  it('fails a query that divides an integer or a decimal by zero, with /, % or mod(), as Trino does', async () => {
    const queries = [
      'SELECT x / y AS q FROM (VALUES (4, 2), (1, 0)) AS t(x, y)',
      'SELECT x % y AS r FROM (VALUES (CAST(1 AS BIGINT), CAST(0 AS BIGINT))) AS t(x, y)',
      'SELECT mod(x, y) AS r FROM (VALUES (7, 0)) AS t(x, y)',
      'SELECT x / y AS q FROM (VALUES (CAST(1.50 AS DECIMAL(10,2)), CAST(0 AS DECIMAL(10,2)))) AS t(x, y)',
      'SELECT x % 0 AS r FROM (VALUES (CAST(1.5 AS DECIMAL(4,1)))) AS t(x)',
      // Anywhere in the query: a filter, a subquery.
      'SELECT n FROM (VALUES (1), (0)) AS t(n) WHERE 10 / n > 1',
      'SELECT (SELECT max(x) / 0 FROM (VALUES (3)) AS s(x)) AS q',
    ];
    for (const [query, parameters] of [
      ...queries.map((q) => [q, undefined] as const),
      // A divisor given by ExecutionParameters (in the WHERE clause, where Athena takes them).
      ['SELECT x FROM (VALUES (5)) AS t(x) WHERE x / ? > 1', ['0']] as const,
    ]) {
      const { execution } = await runQuery(h.athena, {
        QueryString: query,
        ...(parameters ? { ExecutionParameters: [...parameters] } : {}),
      });
      expect([query, execution.Status?.State, execution.Status?.StateChangeReason]).toEqual([
        query,
        'FAILED',
        'DIVISION_BY_ZERO: Division by zero',
      ]);
      expect(execution.Status?.AthenaError).toMatchObject({
        ErrorCategory: 2,
        ErrorType: 1001,
        Retryable: false,
        ErrorMessage: 'DIVISION_BY_ZERO: Division by zero',
      });
    }
  });

  it("divides decimals as Trino does: a decimal of Trino's precision and scale, rounded half away from zero", async () => {
    const cases = [
      // [expression, type, precision, scale, value]: decimal(p1,s1) / decimal(p2,s2) is
      // decimal(min(38, p1 + s2 + max(s2 - s1, 0)), max(s1, s2)); an integer is decimal(10,0).
      ['CAST(1.00 AS DECIMAL(10,2)) / CAST(3 AS DECIMAL(10,2))', 'decimal', 12, 2, '0.33'],
      ['CAST(2.00 AS DECIMAL(10,2)) / CAST(3 AS DECIMAL(10,2))', 'decimal', 12, 2, '0.67'],
      ['CAST(10.00 AS DECIMAL(10,2)) / 4', 'decimal', 10, 2, '2.50'],
      ['1 / CAST(0.3 AS DECIMAL(2,1))', 'decimal', 12, 1, '3.3'],
      ['CAST(-1.00 AS DECIMAL(3,2)) / CAST(8 AS DECIMAL(1,0))', 'decimal', 3, 2, '-0.13'],
      ['7.5 / 2', 'decimal', 2, 1, '3.8'],
      ['CAST(1 AS BIGINT) / 1.5', 'decimal', 21, 1, '0.7'],
      ['CAST(1 AS DECIMAL(38,0)) / CAST(3 AS DECIMAL(38,10))', 'decimal', 38, 10, '0.3333333333'],
      ['CAST(1 AS DECIMAL(3,0)) / CAST(4 AS DOUBLE)', 'double', 17, 0, '0.25'],
    ] as const;
    const { id, execution } = await runQuery(h.athena, {
      QueryString: `SELECT ${cases.map(([sql], i) => `${sql} AS c${i}`).join(', ')}`,
    });
    expect(execution.Status?.StateChangeReason).toBeUndefined();
    const page = await h.athena.send(new GetQueryResultsCommand({ QueryExecutionId: id }));
    const info = page.ResultSet?.ResultSetMetadata?.ColumnInfo ?? [];
    const values = page.ResultSet?.Rows?.[1]?.Data ?? [];
    expect(
      cases.map(([sql], i) => [
        sql,
        info[i]?.Type,
        info[i]?.Precision,
        info[i]?.Scale,
        values[i]?.VarCharValue,
      ]),
    ).toEqual(cases);

    // Wherever the division is: a filter compares Trino's quotient, an aggregate's too.
    const grouped = await runQuery(h.athena, {
      QueryString:
        'SELECT sum(x) / count(*) AS mean FROM (VALUES (CAST(1.00 AS DECIMAL(10,2))), (2.00)) AS t(x) ' +
        'HAVING sum(x) / 3 = 1.00 AND min(x) / 3 = 0.33',
    });
    expect(await resultFile(h.s3, grouped.execution)).toBe('"mean"\n"1.50"\n');
    // A column of a CSV table, a division of a quotient, a CTE and a UNION: Trino's types too.
    const { execution: tabled, id: tabledId } = await runQuery(h.athena, {
      QueryString:
        'WITH p AS (SELECT price FROM prices) SELECT price / 3 AS third, (price / 3) / 2 AS sixth FROM p ' +
        'UNION ALL SELECT price / 4, price / 8 FROM prices',
      QueryExecutionContext: { Database: 'shop' },
    });
    expect(await resultFile(h.s3, tabled)).toBe('"third","sixth"\n"0.33","0.17"\n"0.25","0.13"\n');
    const tabledPage = await h.athena.send(new GetQueryResultsCommand({ QueryExecutionId: tabledId }));
    expect(
      tabledPage.ResultSet?.ResultSetMetadata?.ColumnInfo?.map((c) => [c.Type, c.Precision, c.Scale]),
    ).toEqual([
      ['decimal', 10, 2],
      ['decimal', 10, 2],
    ]);
    // A quotient named in a subquery keeps its name (and its value).
    const nested = await runQuery(h.athena, {
      QueryString: 'SELECT q FROM (SELECT CAST(1 AS DECIMAL(4,2)) / 3 AS q) AS s WHERE q > 0',
    });
    expect(await resultFile(h.s3, nested.execution)).toBe('"q"\n"0.33"\n');
    const typed = await h.athena.send(new GetQueryResultsCommand({ QueryExecutionId: grouped.id }));
    const [mean] = typed.ResultSet?.ResultSetMetadata?.ColumnInfo ?? [];
    expect([mean?.Type, mean?.Precision, mean?.Scale]).toEqual(['decimal', 38, 2]);
  });

  it('casts to varchar(n) as Trino does: text cut to n characters, a longer number refused, typed varchar(n)', async () => {
    const { id, execution } = await runQuery(h.athena, {
      QueryString:
        "SELECT CAST(s AS varchar(3)) AS short, CAST('ünïcödé' AS VARCHAR(3)) AS wide, CAST(123 AS varchar(3)) AS num, " +
        'TRY_CAST(12345 AS varchar(3)) AS tried, CAST(s AS varchar) AS whole ' +
        "FROM (VALUES ('abcdef'), (NULL)) AS t(s) WHERE CAST(s AS varchar(2)) = 'ab' OR s IS NULL ORDER BY s",
    });
    expect(execution.Status?.StateChangeReason).toBeUndefined();
    expect(await resultFile(h.s3, execution)).toBe(
      '"short","wide","num","tried","whole"\n"abc","ünï","123",,"abcdef"\n,"ünï","123",,\n',
    );
    const page = await h.athena.send(new GetQueryResultsCommand({ QueryExecutionId: id }));
    expect(page.ResultSet?.ResultSetMetadata?.ColumnInfo?.map((c) => [c.Name, c.Type, c.Precision])).toEqual([
      ['short', 'varchar', 3],
      ['wide', 'varchar', 3],
      ['num', 'varchar', 3],
      ['tried', 'varchar', 3],
      ['whole', 'varchar', 2147483647],
    ]);

    const refused = await runQuery(h.athena, { QueryString: 'SELECT CAST(12345 AS varchar(3)) AS v' });
    expect(refused.execution.Status?.State).toBe('FAILED');
    expect(refused.execution.Status?.StateChangeReason).toBe(
      'INVALID_CAST_ARGUMENT: Value 12345 cannot be represented as varchar(3)',
    );
    expect(refused.execution.Status?.AthenaError).toMatchObject({ ErrorCategory: 2, ErrorType: 1100 });
  });

  it('divides a double or real by zero as Java does (Infinity, NaN), keeps NULL, and every type', async () => {
    const { id, execution } = await runQuery(h.athena, {
      QueryString:
        'SELECT d / z AS pos, -d / z AS neg, z / z AS nan, d % z AS rem, CAST(d AS REAL) / CAST(z AS REAL) AS r, ' +
        'd / -z AS negzero, n / 0 AS null_int, x / 4 AS q, x % 4 AS m ' +
        'FROM (VALUES (CAST(1 AS DOUBLE), CAST(0 AS DOUBLE), CAST(NULL AS INTEGER), 10)) AS t(d, z, n, x)',
    });
    expect(execution.Status?.State).toBe('SUCCEEDED');
    const page = await h.athena.send(new GetQueryResultsCommand({ QueryExecutionId: id }));
    expect(page.ResultSet?.ResultSetMetadata?.ColumnInfo?.map((c) => [c.Name, c.Type])).toEqual([
      ['pos', 'double'],
      ['neg', 'double'],
      ['nan', 'double'],
      ['rem', 'double'],
      ['r', 'float'],
      ['negzero', 'double'],
      ['null_int', 'integer'],
      ['q', 'integer'],
      ['m', 'integer'],
    ]);
    expect(page.ResultSet?.Rows?.[1]?.Data).toEqual([
      { VarCharValue: 'Infinity' },
      { VarCharValue: '-Infinity' },
      { VarCharValue: 'NaN' },
      { VarCharValue: 'NaN' },
      { VarCharValue: 'Infinity' },
      { VarCharValue: '-Infinity' },
      {},
      { VarCharValue: '2' },
      { VarCharValue: '2' },
    ]);
  });

  it('reports an error in a query that divides at the position the query as written has', async () => {
    const { execution } = await runQuery(h.athena, {
      QueryString: 'SELECT 1 / 2,\n  nope % 2 FROM (VALUES (1)) AS t(x)',
    });
    expect(execution.Status?.StateChangeReason).toBe(
      "COLUMN_NOT_FOUND: line 2:3: Column 'nope' cannot be resolved",
    );
  });

  it('types avg of a decimal(p,s) decimal(p,s), the exact mean rounded half away from zero, as Trino does', async () => {
    const { id, execution } = await runQuery(h.athena, {
      QueryString:
        'SELECT g, avg(v) AS mean, avg(DISTINCT v) AS distinct_mean, avg(w) AS whole ' +
        'FROM (VALUES (1, 1.00, 5), (1, 1.01, 6), (1, 1.01, 6), (2, -1.00, 5), (2, -1.01, 6), (3, NULL, NULL), ' +
        '(4, 123456.78, 1), (4, 123456.79, 1)) ' +
        'AS t(g, v, w) GROUP BY g HAVING avg(v) IS NULL OR avg(v) <> 0 ORDER BY g',
    });
    expect(execution.Status?.StateChangeReason).toBeUndefined();
    const page = await h.athena.send(new GetQueryResultsCommand({ QueryExecutionId: id }));
    const info = page.ResultSet?.ResultSetMetadata?.ColumnInfo ?? [];
    expect(info.map((c) => [c.Name, c.Type, c.Precision, c.Scale])).toEqual([
      ['g', 'integer', 10, 0],
      ['mean', 'decimal', 8, 2],
      ['distinct_mean', 'decimal', 8, 2],
      ['whole', 'double', 17, 0],
    ]);
    const rows = (page.ResultSet?.Rows ?? []).slice(1).map((r) => r.Data?.map((d) => d.VarCharValue ?? null));
    expect(rows).toEqual([
      // (1.00 + 1.01 + 1.01) / 3 = 1.00666… → 1.01; DISTINCT: (1.00 + 1.01) / 2 = 1.005 → 1.01.
      ['1', '1.01', '1.01', '5.666666666666667'],
      // -1.005 → -1.01: half away from zero, not toward +∞.
      ['2', '-1.01', '-1.01', '5.5'],
      ['3', null, null, null],
      ['4', '123456.79', '123456.79', '1.0'],
    ]);
    expect(await resultFile(h.s3, execution)).toBe(
      '"g","mean","distinct_mean","whole"\n' +
        '"1","1.01","1.01","5.666666666666667"\n' +
        '"2","-1.01","-1.01","5.5"\n' +
        '"3",,,\n' +
        '"4","123456.79","123456.79","1.0"\n',
    );
  });

  it('types avg of a real real, of an integer or double double, and keeps avg of an interval (the decimal ones beside it still Trino’s)', async () => {
    const { id, execution } = await runQuery(h.athena, {
      QueryString:
        'SELECT avg(CAST(x AS REAL)) AS r, avg(x) AS i, avg(CAST(x AS DOUBLE)) AS d, ' +
        'avg(CAST(x AS DECIMAL(38,0))) AS big, avg(CAST(x * 100000 + 0.5 AS DECIMAL(12,1))) AS wide, ' +
        'avg(x * INTERVAL 1 DAY) AS span ' +
        'FROM (VALUES (1), (2)) AS t(x)',
    });
    expect(execution.Status?.StateChangeReason).toBeUndefined();
    const page = await h.athena.send(new GetQueryResultsCommand({ QueryExecutionId: id }));
    expect(
      page.ResultSet?.ResultSetMetadata?.ColumnInfo?.map((c) => [c.Name, c.Type, c.Precision, c.Scale]),
    ).toEqual([
      ['r', 'float', 9, 0],
      ['i', 'double', 17, 0],
      ['d', 'double', 17, 0],
      ['big', 'decimal', 38, 0],
      ['wide', 'decimal', 12, 1],
      ['span', 'interval day to second', 0, 3],
    ]);
    expect(page.ResultSet?.Rows?.[1]?.Data?.map((d) => d.VarCharValue)).toEqual([
      '1.5',
      '1.5',
      '1.5',
      '2',
      '150000.5',
      '1 12:00:00.000',
    ]);
  });

  it('refuses a query that names the char type (NOT_SUPPORTED) rather than answer it unpadded', async () => {
    const query = "SELECT 1 AS n,\n  CAST('ab' AS char(4)) AS code";
    for (const text of [query, `EXPLAIN (TYPE VALIDATE) ${query}`]) {
      const { execution } = await runQuery(h.athena, { QueryString: text });
      expect(execution.Status?.State).toBe('FAILED');
      expect(execution.Status?.StateChangeReason).toMatch(
        /^NOT_SUPPORTED: line 2:16: The Athena emulator does not support the char type: Athena pads a char\(n\) value with spaces to n characters/,
      );
    }
    // A bad column is reported first, as Athena would report it.
    const { execution } = await runQuery(h.athena, {
      QueryString: 'SELECT CAST(nope AS char(4)) FROM (VALUES (1)) AS t(x)',
    });
    expect(execution.Status?.StateChangeReason).toBe(
      "COLUMN_NOT_FOUND: line 1:13: Column 'nope' cannot be resolved",
    );
  });

  it('refuses a sidecar schema that declares a CHAR column, naming the file and the column', async () => {
    const csv = '"code","name"\n"FR","France"\n';
    const sidecar = JSON.stringify({ columns: { code: 'CHAR(2)', name: 'VARCHAR' } });
    const refusal =
      /countries\.schema\.json: column code is CHAR\(2\), and the emulator does not support char: .*; declare it VARCHAR$/;
    // At start (the data dir is read once to fail fast)…
    const dataDir = await makeDataDir({ 'geo/countries.csv': csv, 'geo/countries.schema.json': sidecar });
    try {
      await expect(startAthenaEmulator({ dataDir })).rejects.toThrow(refusal);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
    // … and when the sidecar appears while the emulator runs.
    const running = await startHarness({ 'geo/countries.csv': csv });
    try {
      const before = await runQuery(running.athena, { QueryString: 'SELECT code FROM geo.countries' });
      expect(before.execution.Status?.State).toBe('SUCCEEDED');
      await writeFile(path.join(running.dataDir, 'geo', 'countries.schema.json'), sidecar);
      const { execution } = await runQuery(running.athena, { QueryString: 'SELECT code FROM geo.countries' });
      expect(execution.Status?.State).toBe('FAILED');
      expect(execution.Status?.StateChangeReason).toMatch(/^HIVE_METASTORE_ERROR: /);
      expect(execution.Status?.StateChangeReason).toMatch(refusal);
      expect(execution.Status?.AthenaError).toMatchObject({
        ErrorCategory: 1,
        ErrorType: 204,
        Retryable: false,
      });
    } finally {
      await running.close();
    }
  });

  it('reports NULL of every type as {} and as an empty unquoted field', async () => {
    const { id, execution } = await runQuery(h.athena, {
      QueryString: `SELECT ${COLUMNS.map((_, i) => `c${i}`).join(', ')} FROM (SELECT ${COLUMNS.map(([sql], i) => `${sql} AS c${i}`).join(', ')}) WHERE false UNION ALL SELECT ${COLUMNS.map(() => 'NULL').join(', ')}`,
    });
    expect(execution.Status?.State).toBe('SUCCEEDED');
    const page = await h.athena.send(new GetQueryResultsCommand({ QueryExecutionId: id }));
    expect(page.ResultSet?.Rows?.[1]?.Data).toEqual(COLUMNS.map(() => ({})));
    expect(page.ResultSet?.ResultSetMetadata?.ColumnInfo?.map((c) => c.Type)).toEqual(
      COLUMNS.map(([, type]) => type),
    );
    expect(await resultFile(h.s3, execution)).toBe(
      `${COLUMNS.map((_, i) => `"c${i}"`).join(',')}\n${','.repeat(COLUMNS.length - 1)}\n`,
    );
  });
});
