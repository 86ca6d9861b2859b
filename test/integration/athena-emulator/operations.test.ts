import {
  AthenaClient,
  GetQueryResultsCommand,
  StartQueryExecutionCommand,
  StopQueryExecutionCommand,
  GetQueryExecutionCommand,
  GetWorkGroupCommand,
} from '@aws-sdk/client-athena';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { DuckDBInstance } from '@duckdb/node-api';
import {
  rejection,
  resultFile,
  runQuery,
  s3Address,
  startHarness,
  waitForQuery,
  type Harness,
} from './helpers';

const CUSTOMERS =
  '"email","lifetime_value","last_order_at","segment"\n' +
  '"ada@example.com","1200.50","2024-01-02 03:04:05","gold"\n' +
  '"bob@example.com","80","2024-02-03 00:00:00",\n' +
  '"cy@example.com",,,""\n';

const ROWS = 2500;
const many =
  ['"n","label"', ...Array.from({ length: ROWS }, (_, i) => `"${i + 1}","row ${i + 1}"`)].join('\n') + '\n';

jest.setTimeout(60_000);

describe('Athena emulator operations (real @aws-sdk/client-athena)', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness(
      {
        'marketing/customers.csv': CUSTOMERS,
        'marketing/many.csv': many,
        'marketing/typed.csv': '"id","code"\n"1","007"\n',
        'marketing/typed.schema.json': JSON.stringify({ columns: { id: 'INTEGER', code: 'VARCHAR' } }),
        'default/numbers.csv': '"x"\n"1"\n"2"\n',
      },
      {
        workgroups: {
          primary: {},
          roundtrip: { outputLocation: 's3://wg-results/rt/' },
          locked: { outputLocation: 's3://wg-locked/', enforce: true },
          retired: { outputLocation: 's3://wg-retired/', state: 'DISABLED' },
        },
      },
    );
  });
  afterAll(() => h.close());

  const inMarketing = { QueryExecutionContext: { Database: 'marketing' } };
  const output = { ResultConfiguration: { OutputLocation: 's3://query-results/athena/' } };

  describe('StartQueryExecution and GetQueryExecution', () => {
    it('runs a query to SUCCEEDED and reports where the result is, with statistics', async () => {
      const { id, execution } = await runQuery(h.athena, {
        QueryString: 'SELECT email FROM customers',
        ...inMarketing,
        ...output,
      });
      expect(execution.Status?.State).toBe('SUCCEEDED');
      expect(execution.QueryExecutionId).toBe(id);
      expect(execution.Query).toBe('SELECT email FROM customers');
      expect(execution.StatementType).toBe('DML');
      expect(execution.WorkGroup).toBe('primary');
      expect(execution.QueryExecutionContext).toEqual({ Database: 'marketing', Catalog: 'awsdatacatalog' });
      expect(execution.ResultConfiguration?.OutputLocation).toBe(`s3://query-results/athena/${id}.csv`);
      expect(execution.Status?.SubmissionDateTime).toBeInstanceOf(Date);
      expect(execution.Status?.CompletionDateTime).toBeInstanceOf(Date);
      expect(execution.Statistics?.DataScannedInBytes).toBe(Buffer.byteLength(CUSTOMERS));
      expect(execution.Statistics?.EngineExecutionTimeInMillis).toEqual(expect.any(Number));
      expect(execution.Statistics?.TotalExecutionTimeInMillis).toEqual(expect.any(Number));
    });

    it('scans nothing for a query under LIMIT 0 (what validate runs for the result columns), as Trino', async () => {
      // Trino plans a LIMIT 0 as an empty relation: no table is read, the columns are still typed.
      const validate = await runQuery(h.athena, {
        QueryString: 'SELECT * FROM (\nSELECT email, lifetime_value FROM customers\n) LIMIT 0',
        ...inMarketing,
        ...output,
      });
      expect(validate.execution.Status?.State).toBe('SUCCEEDED');
      expect(validate.execution.Statistics?.DataScannedInBytes).toBe(0);
      expect(await resultFile(h.s3, validate.execution)).toBe('"email","lifetime_value"\n');
      const ordered = await runQuery(h.athena, {
        QueryString: 'SELECT email FROM customers ORDER BY email LIMIT 0 OFFSET 1',
        ...inMarketing,
        ...output,
      });
      expect(ordered.execution.Statistics?.DataScannedInBytes).toBe(0);
      // Only the branch under LIMIT 0 reads nothing; the other is scanned as ever.
      const branch = await runQuery(h.athena, {
        QueryString:
          'SELECT CAST(x AS varchar) AS v FROM "default".numbers UNION ALL (SELECT email FROM customers LIMIT 0)',
        ...inMarketing,
        ...output,
      });
      expect(branch.execution.Statistics?.DataScannedInBytes).toBe(Buffer.byteLength('"x"\n"1"\n"2"\n'));
      // LIMIT 1 reads the table (a full scan of CSV, as for any other query).
      const one = await runQuery(h.athena, {
        QueryString: 'SELECT * FROM (SELECT email FROM customers) LIMIT 1',
        ...inMarketing,
        ...output,
      });
      expect(one.execution.Statistics?.DataScannedInBytes).toBe(Buffer.byteLength(CUSTOMERS));
    });

    it('resolves db.table, awsdatacatalog.db.table, and bare tables of the default database', async () => {
      const qualified = await runQuery(h.athena, {
        QueryString:
          'SELECT count(*) AS n FROM marketing.customers JOIN awsdatacatalog.marketing.typed ON true',
        ...output,
      });
      expect(qualified.execution.Status?.State).toBe('SUCCEEDED');
      expect(qualified.execution.QueryExecutionContext?.Database).toBe('default');
      expect(await resultFile(h.s3, qualified.execution)).toBe('"n"\n"3"\n');
      const bare = await runQuery(h.athena, { QueryString: 'SELECT sum(x) FROM numbers', ...output });
      expect(await resultFile(h.s3, bare.execution)).toBe('"_col0"\n"3"\n');
    });

    it('takes column types from a sidecar schema file', async () => {
      const { id } = await runQuery(h.athena, {
        QueryString: 'SELECT id, code FROM typed',
        ...inMarketing,
        ...output,
      });
      const page = await h.athena.send(new GetQueryResultsCommand({ QueryExecutionId: id }));
      expect(page.ResultSet?.ResultSetMetadata?.ColumnInfo?.map((c) => c.Type)).toEqual([
        'integer',
        'varchar',
      ]);
      expect(page.ResultSet?.Rows?.[1]?.Data).toEqual([{ VarCharValue: '1' }, { VarCharValue: '007' }]);
    });

    it('reads Parquet files, folders of files as one table, and picks up files added while it runs', async () => {
      const folder = path.join(h.dataDir, 'marketing', 'orders');
      await mkdir(folder, { recursive: true });
      const duck = await (await DuckDBInstance.create(':memory:')).connect();
      await duck.run(
        `COPY (SELECT 1 AS id, 9.5::DECIMAL(6,2) AS total) TO '${folder}/part-0.parquet' (FORMAT parquet)`,
      );
      await duck.run(
        `COPY (SELECT 2 AS id, NULL::DECIMAL(6,2) AS total) TO '${folder}/part-1.parquet' (FORMAT parquet)`,
      );
      duck.closeSync();
      const { id } = await runQuery(h.athena, {
        QueryString: 'SELECT id, total FROM orders ORDER BY id',
        ...inMarketing,
        ...output,
      });
      const page = await h.athena.send(new GetQueryResultsCommand({ QueryExecutionId: id }));
      expect(
        page.ResultSet?.ResultSetMetadata?.ColumnInfo?.map((c) => [c.Type, c.Precision, c.Scale]),
      ).toEqual([
        ['integer', 10, 0],
        ['decimal', 6, 2],
      ]);
      expect(page.ResultSet?.Rows?.slice(1).map((r) => r.Data)).toEqual([
        [{ VarCharValue: '1' }, { VarCharValue: '9.50' }],
        [{ VarCharValue: '2' }, {}],
      ]);
    });

    it('keeps table column names in lower case, as the Glue catalog does, and names a bare column as the query writes it', async () => {
      await writeFile(
        path.join(h.dataDir, 'marketing', 'cased.csv'),
        '"Email","LifetimeValue"\n"a@x.test","1"\n',
      );
      const star = await runQuery(h.athena, {
        QueryString: 'SELECT * FROM cased',
        ...inMarketing,
        ...output,
      });
      expect(await resultFile(h.s3, star.execution)).toBe('"email","lifetimevalue"\n"a@x.test","1"\n');
      // Trino names an unaliased column reference after its last part as written, an alias as written.
      const named = await runQuery(h.athena, {
        QueryString: 'SELECT c.EMAIL, lifetimevalue, Email AS "MixedAlias" FROM cased c',
        ...inMarketing,
        ...output,
      });
      const page = await h.athena.send(new GetQueryResultsCommand({ QueryExecutionId: named.id }));
      expect(page.ResultSet?.ResultSetMetadata?.ColumnInfo?.map((c) => c.Name)).toEqual([
        'EMAIL',
        'lifetimevalue',
        'MixedAlias',
      ]);
      expect(page.ResultSet?.Rows?.[0]?.Data).toEqual([
        { VarCharValue: 'EMAIL' },
        { VarCharValue: 'lifetimevalue' },
        { VarCharValue: 'MixedAlias' },
      ]);
    });

    it('names the columns of SELECT * over a subquery as the subquery names them, a name repeated included', async () => {
      await writeFile(path.join(h.dataDir, 'marketing', 'pairs.csv'), '"id","Name"\n"1","a"\n');
      const names = async (query: string): Promise<(string | undefined)[] | undefined> => {
        const { id } = await runQuery(h.athena, { QueryString: query, ...inMarketing, ...output });
        const page = await h.athena.send(new GetQueryResultsCommand({ QueryExecutionId: id }));
        return page.ResultSet?.ResultSetMetadata?.ColumnInfo?.map((c) => c.Name);
      };
      const inner = 'SELECT a.id, b.ID, upper(a.name) FROM pairs a JOIN pairs b ON a.id = b.id';
      expect(await names(inner)).toEqual(['id', 'ID', '_col2']);
      // DuckDB alone would answer id, ID_1 (or id_1) and the expression's text.
      expect(await names(`SELECT * FROM (\n${inner}\n) LIMIT 0`)).toEqual(['id', 'ID', '_col2']);
      expect(await names(`SELECT * FROM (SELECT * FROM (${inner}))`)).toEqual(['id', 'ID', '_col2']);
      expect(await names('SELECT * FROM (SELECT * FROM pairs a JOIN pairs b ON a.id = b.id)')).toEqual([
        'id',
        'name',
        'id',
        'name',
      ]);
    });

    it('fails a query on a table whose file cannot be read with HIVE_BAD_DATA, and only that one', async () => {
      await writeFile(path.join(h.dataDir, 'marketing', 'broken.csv'), '"a"\n"1"\n');
      await writeFile(
        path.join(h.dataDir, 'marketing', 'broken.schema.json'),
        JSON.stringify({ columns: { a: 'NOT_A_TYPE' } }),
      );
      const broken = await runQuery(h.athena, {
        QueryString: 'SELECT * FROM broken',
        ...inMarketing,
        ...output,
      });
      expect(broken.execution.Status?.StateChangeReason).toMatch(
        /^HIVE_BAD_DATA: line 1:15: Table 'marketing\.broken': cannot read .*broken\.csv: .*NOT_A_TYPE/,
      );
      const fine = await runQuery(h.athena, {
        QueryString: 'SELECT count(*) FROM customers',
        ...inMarketing,
        ...output,
      });
      expect(fine.execution.Status?.State).toBe('SUCCEEDED');
    });

    it('binds ExecutionParameters to ? placeholders', async () => {
      const { execution } = await runQuery(h.athena, {
        QueryString: 'SELECT email FROM customers WHERE lifetime_value > ? AND segment = ?',
        ExecutionParameters: ['100', "'gold'"],
        ...inMarketing,
        ...output,
      });
      expect(execution.Status?.State).toBe('SUCCEEDED');
      expect(execution.ExecutionParameters).toEqual(['100', "'gold'"]);
      expect(await resultFile(h.s3, execution)).toBe('"email"\n"ada@example.com"\n');
    });

    it('types an ExecutionParameter as the literal it is, as Trino binds one (x / ? divides as x / 2 does)', async () => {
      const values =
        "(VALUES (1, CAST(1.00 AS DECIMAL(10,2)), DATE '2024-01-01'), (2, CAST(2.00 AS DECIMAL(10,2)), DATE '2024-02-01')) AS t(id, x, d)";
      for (const [where, parameters, ids] of [
        // integer / integer is an integer: 1 / 2 = 0, 2 / 2 = 1
        ['id / ? = 0', ['2'], ['1']],
        // decimal(10,2) / integer is a decimal(10,2), rounded: 1.00 / 3 = 0.33
        ['x / ? = 0.33', ['3'], ['1']],
        ['x / ? = 0.67', ['3'], ['2']],
        ['d = ?', ["DATE '2024-02-01'"], ['2']],
        ['d < ? AND id = ?', ["CAST('2024-01-15' AS DATE)", '1'], ['1']],
      ] as const) {
        const { execution } = await runQuery(h.athena, {
          QueryString: `SELECT id FROM ${values} WHERE ${where} ORDER BY id`,
          ExecutionParameters: [...parameters],
          ...output,
        });
        expect([where, execution.Status?.StateChangeReason]).toEqual([where, undefined]);
        expect([where, await resultFile(h.s3, execution)]).toEqual([
          where,
          `"id"\n${ids.map((id) => `"${id}"\n`).join('')}`,
        ]);
      }
    });

    it("refuses ExecutionParameters outside the WHERE clause, and a count that is not the query's, as Athena does", async () => {
      const outside = await runQuery(h.athena, {
        QueryString: 'SELECT lifetime_value / ? AS share FROM customers',
        ExecutionParameters: ['2'],
        ...inMarketing,
        ...output,
      });
      expect(outside.execution.Status?.State).toBe('FAILED');
      expect(outside.execution.Status?.StateChangeReason).toMatch(
        /^NOT_SUPPORTED: line 1:25: Athena takes ExecutionParameters \(\?\) in the WHERE clause only/,
      );
      const missing = await runQuery(h.athena, {
        QueryString: '\nSELECT email FROM customers WHERE segment = ?',
        ...inMarketing,
        ...output,
      });
      expect(missing.execution.Status?.StateChangeReason).toBe(
        'INVALID_PARAMETER_USAGE: line 2:1: Incorrect number of parameters: expected 1 but found 0',
      );
      expect(missing.execution.Status?.AthenaError).toMatchObject({ ErrorCategory: 2, ErrorType: 1006 });
    });

    it('moves QUEUED → RUNNING → SUCCEEDED with the configured delays', async () => {
      const slow = await startHarness(
        { 'd/t.csv': '"a"\n"1"\n' },
        { queryDelaysMs: { queued: 600, running: 600 } },
      );
      try {
        const { states, execution } = await runQuery(slow.athena, {
          QueryString: 'SELECT a FROM t',
          QueryExecutionContext: { Database: 'd' },
        });
        expect(states).toEqual(['QUEUED', 'RUNNING', 'SUCCEEDED']);
        expect(execution.Statistics?.QueryQueueTimeInMillis).toBeGreaterThanOrEqual(600);
      } finally {
        await slow.close();
      }
    });

    it('returns the same id for a repeated ClientRequestToken without running the query again', async () => {
      const input = {
        QueryString: 'SELECT 1',
        ClientRequestToken: 'token-0000000000000000000000000000001',
        ...output,
      };
      const first = await h.athena.send(new StartQueryExecutionCommand(input));
      const second = await h.athena.send(new StartQueryExecutionCommand(input));
      expect(second.QueryExecutionId).toBe(first.QueryExecutionId);
      const err = await rejection(
        h.athena.send(new StartQueryExecutionCommand({ ...input, QueryString: 'SELECT 2' })),
      );
      expect(err.name).toBe('InvalidRequestException');
      expect(err.AthenaErrorCode).toBe('IDEMPOTENT_PARAMETER_MISMATCH');
      expect(err.message).toContain(String(first.QueryExecutionId));
    });

    it('rejects a token outside 32–128 characters', async () => {
      const err = await rejection(
        h.athena.send(
          new StartQueryExecutionCommand({ QueryString: 'SELECT 1', ClientRequestToken: 'short', ...output }),
        ),
      );
      expect(err.name).toBe('InvalidRequestException');
      expect(err.message).toContain("'clientRequestToken'");
    });

    it('rejects a syntax error up front with MALFORMED_QUERY and no execution', async () => {
      const err = await rejection(
        h.athena.send(new StartQueryExecutionCommand({ QueryString: 'SELEC 1', ...output })),
      );
      expect(err.name).toBe('InvalidRequestException');
      expect(err.AthenaErrorCode).toBe('MALFORMED_QUERY');
      expect(err.message).toBe('line 1:1: syntax error at or near "SELEC"');
      const many = await rejection(
        h.athena.send(new StartQueryExecutionCommand({ QueryString: 'SELECT 1; SELECT 2', ...output })),
      );
      expect(many.AthenaErrorCode).toBe('MALFORMED_QUERY');
      expect(many.message).toBe('Only one sql statement is allowed. Got: 2');
    });

    it('takes the output location from the workgroup, and the workgroup wins when it enforces', async () => {
      const fromWorkgroup = await runQuery(h.athena, { QueryString: 'SELECT 1', WorkGroup: 'roundtrip' });
      expect(fromWorkgroup.execution.ResultConfiguration?.OutputLocation).toBe(
        `s3://wg-results/rt/${fromWorkgroup.id}.csv`,
      );
      expect(fromWorkgroup.execution.WorkGroup).toBe('roundtrip');
      const enforced = await runQuery(h.athena, { QueryString: 'SELECT 1', WorkGroup: 'locked', ...output });
      expect(enforced.execution.ResultConfiguration?.OutputLocation).toBe(
        `s3://wg-locked/${enforced.id}.csv`,
      );
      expect(await resultFile(h.s3, enforced.execution)).toBe('"_col0"\n"1"\n');
    });

    it('refuses a query with no output location, an unknown workgroup, or a bad location', async () => {
      const none = await rejection(
        h.athena.send(new StartQueryExecutionCommand({ QueryString: 'SELECT 1' })),
      );
      expect(none.name).toBe('InvalidRequestException');
      expect(none.AthenaErrorCode).toBe('INVALID_INPUT');
      expect(none.message).toContain('No output location provided');
      const wg = await rejection(
        h.athena.send(
          new StartQueryExecutionCommand({ QueryString: 'SELECT 1', WorkGroup: 'nope', ...output }),
        ),
      );
      expect(wg.message).toBe('WorkGroup nope is not found.');
      const bad = await rejection(
        h.athena.send(
          new StartQueryExecutionCommand({
            QueryString: 'SELECT 1',
            ResultConfiguration: { OutputLocation: 'results/' },
          }),
        ),
      );
      expect(bad.message).toContain('OutputLocation results/ is not a valid S3 location');
    });

    it('refuses a query in a DISABLED workgroup', async () => {
      const err = await rejection(
        h.athena.send(new StartQueryExecutionCommand({ QueryString: 'SELECT 1', WorkGroup: 'retired' })),
      );
      expect(err.name).toBe('InvalidRequestException');
      expect(err.message).toBe('WorkGroup retired is disabled.');
    });

    it('fails a query on an unknown table or column after it started, with Athena’s StateChangeReason', async () => {
      const table = await runQuery(h.athena, {
        QueryString: 'SELECT * FROM nope',
        ...inMarketing,
        ...output,
      });
      expect(table.execution.Status?.State).toBe('FAILED');
      expect(table.execution.Status?.StateChangeReason).toBe(
        "TABLE_NOT_FOUND: line 1:15: Table 'awsdatacatalog.marketing.nope' does not exist",
      );
      expect(table.execution.Status?.AthenaError).toMatchObject({
        ErrorCategory: 2,
        ErrorType: 1301,
        Retryable: false,
      });
      const column = await runQuery(h.athena, {
        QueryString: 'SELECT x FROM customers',
        ...inMarketing,
        ...output,
      });
      expect(column.execution.Status?.StateChangeReason).toBe(
        "COLUMN_NOT_FOUND: line 1:8: Column 'x' cannot be resolved",
      );
      const schema = await runQuery(h.athena, {
        QueryString: 'SELECT 1',
        QueryExecutionContext: { Database: 'sales' },
        ...output,
      });
      expect(schema.execution.Status?.StateChangeReason).toBe(
        "SCHEMA_NOT_FOUND: Schema 'sales' does not exist",
      );
      const results = await rejection(
        h.athena.send(new GetQueryResultsCommand({ QueryExecutionId: table.id })),
      );
      expect(results.name).toBe('InvalidRequestException');
      expect(results.AthenaErrorCode).toBe('INVALID_QUERY_EXECUTION_STATE');
    });

    it('fails an operator or a function given types it does not take as Trino does', async () => {
      const operator = await runQuery(h.athena, {
        QueryString: 'SELECT email + 1 FROM customers',
        ...inMarketing,
        ...output,
      });
      expect(operator.execution.Status?.StateChangeReason).toBe(
        'TYPE_MISMATCH: line 1:14: Cannot apply operator: varchar + integer',
      );
      const fn = await runQuery(h.athena, {
        QueryString: 'SELECT substr(1.5, 1), abs(email) FROM customers',
        ...inMarketing,
        ...output,
      });
      expect(fn.execution.Status?.StateChangeReason).toBe(
        'FUNCTION_NOT_FOUND: line 1:8: Unexpected parameters (decimal(2,1), integer) for function substr',
      );
    });

    it('gives each failure the AthenaError category and type Athena gives it', async () => {
      const cases: [query: string, reason: RegExp, category: number, type: number][] = [
        ['SELECT * FROM nope', /^TABLE_NOT_FOUND: /, 2, 1301],
        ['SELECT * FROM sales.nope', /^SCHEMA_NOT_FOUND: /, 2, 1301],
        ['SELECT x FROM customers', /^COLUMN_NOT_FOUND: /, 2, 1006],
        ['SELECT nope_fn(1)', /^FUNCTION_NOT_FOUND: /, 2, 1303],
        ['SELECT email + 1 FROM customers', /^TYPE_MISMATCH: /, 2, 1002],
        ['SELECT abs(email) FROM customers', /^FUNCTION_NOT_FOUND: /, 2, 1303],
        ["SELECT CAST('abc' AS INTEGER) FROM customers", /^INVALID_CAST_ARGUMENT: /, 2, 1100],
        [
          'SELECT sum(x) FROM (VALUES (9223372036854775807), (1)) AS t(x)',
          /^NUMERIC_VALUE_OUT_OF_RANGE: /,
          2,
          1100,
        ],
        ['SELECT 1 / (count(*) - count(*)) FROM customers', /^DIVISION_BY_ZERO: /, 2, 1001],
        ['EXPLAIN SELECT 1', /^NOT_SUPPORTED: /, 2, 1200],
        ['SELECT email, count(*) FROM customers', /^GENERIC_USER_ERROR: /, 2, 1000],
      ];
      for (const [query, reason, category, type] of cases) {
        const { execution } = await runQuery(h.athena, { QueryString: query, ...inMarketing, ...output });
        expect([query, execution.Status?.StateChangeReason]).toEqual([query, expect.stringMatching(reason)]);
        expect([query, execution.Status?.AthenaError]).toEqual([
          query,
          {
            ErrorCategory: category,
            ErrorType: type,
            Retryable: false,
            ErrorMessage: execution.Status?.StateChangeReason,
          },
        ]);
      }
    });

    it('answers EXPLAIN (TYPE VALIDATE) by binding the statement without running it', async () => {
      const valid = await runQuery(h.athena, {
        QueryString: 'EXPLAIN (TYPE VALIDATE) SELECT email, lifetime_value FROM customers',
        ...inMarketing,
        ...output,
      });
      expect(valid.execution.Status?.State).toBe('SUCCEEDED');
      expect(valid.execution.Statistics?.DataScannedInBytes).toBe(0);
      expect(valid.execution.StatementType).toBe('UTILITY');
      expect(await resultFile(h.s3, valid.execution)).toBe('"Valid"\n"true"\n');
      const page = await h.athena.send(new GetQueryResultsCommand({ QueryExecutionId: valid.id }));
      expect(page.ResultSet?.ResultSetMetadata?.ColumnInfo?.map((c) => [c.Name, c.Type])).toEqual([
        ['Valid', 'boolean'],
      ]);
      expect(page.ResultSet?.Rows?.map((r) => r.Data?.map((d) => d.VarCharValue))).toEqual([
        ['Valid'],
        ['true'],
      ]);

      // Positions count in the whole statement, the EXPLAIN's prefix included, as Trino's do.
      const column = await runQuery(h.athena, {
        QueryString: 'explain (type validate)\nSELECT email,\n  lifetime_valu FROM customers',
        ...inMarketing,
        ...output,
      });
      expect(column.execution.Status?.State).toBe('FAILED');
      expect(column.execution.Status?.StateChangeReason).toBe(
        "COLUMN_NOT_FOUND: line 3:3: Column 'lifetime_valu' cannot be resolved",
      );
      const table = await runQuery(h.athena, {
        QueryString: 'EXPLAIN (TYPE VALIDATE) SELECT * FROM nope',
        ...inMarketing,
        ...output,
      });
      expect(table.execution.Status?.StateChangeReason).toBe(
        "TABLE_NOT_FOUND: line 1:39: Table 'awsdatacatalog.marketing.nope' does not exist",
      );

      const syntax = await rejection(
        h.athena.send(
          new StartQueryExecutionCommand({ QueryString: 'EXPLAIN (TYPE VALIDATE) SELEC 1', ...output }),
        ),
      );
      expect(syntax.AthenaErrorCode).toBe('MALFORMED_QUERY');
      expect(syntax.message).toContain('line 1:25: syntax error at or near "SELEC"');

      // Comments before the EXPLAIN are skipped, as Trino's parser does; positions still count them.
      const commented = await runQuery(h.athena, {
        QueryString:
          '-- checked by roundtrip validate\n/* extract[1] */ EXPLAIN (TYPE VALIDATE) SELECT nope FROM customers',
        ...inMarketing,
        ...output,
      });
      expect(commented.execution.Status?.StateChangeReason).toBe(
        "COLUMN_NOT_FOUND: line 2:49: Column 'nope' cannot be resolved",
      );
      const commentedValid = await runQuery(h.athena, {
        QueryString: '/* a */\n  explain (type validate) SELECT email FROM customers',
        ...inMarketing,
        ...output,
      });
      expect(commentedValid.execution.Status?.State).toBe('SUCCEEDED');
      expect(commentedValid.execution.StatementType).toBe('UTILITY');

      const other = await runQuery(h.athena, { QueryString: 'EXPLAIN SELECT 1', ...output });
      expect(other.execution.Status?.State).toBe('FAILED');
      expect(other.execution.Status?.StateChangeReason).toMatch(
        /^NOT_SUPPORTED: The Athena emulator answers EXPLAIN \(TYPE VALIDATE\) only/,
      );
    });

    it('answers an unknown QueryExecutionId with InvalidRequestException', async () => {
      const err = await rejection(
        h.athena.send(
          new GetQueryExecutionCommand({ QueryExecutionId: '00000000-0000-0000-0000-000000000000' }),
        ),
      );
      expect(err.name).toBe('InvalidRequestException');
      expect(err.message).toBe('QueryExecution 00000000-0000-0000-0000-000000000000 was not found');
    });
  });

  describe('StopQueryExecution', () => {
    it('cancels a queued query, refuses its results, and leaves a finished query alone', async () => {
      const slow = await startHarness(
        { 'd/t.csv': '"a"\n"1"\n' },
        { queryDelaysMs: { queued: 5_000, running: 0 } },
      );
      try {
        const { QueryExecutionId } = await slow.athena.send(
          new StartQueryExecutionCommand({
            QueryString: 'SELECT a FROM t',
            QueryExecutionContext: { Database: 'd' },
          }),
        );
        const early = await rejection(slow.athena.send(new GetQueryResultsCommand({ QueryExecutionId })));
        expect(early.AthenaErrorCode).toBe('INVALID_QUERY_EXECUTION_STATE');
        expect(early.message).toBe('Query has not yet finished. Current state: QUEUED');
        expect(await slow.athena.send(new StopQueryExecutionCommand({ QueryExecutionId }))).toBeDefined();
        const { execution } = await waitForQuery(slow.athena, String(QueryExecutionId));
        expect(execution.Status?.State).toBe('CANCELLED');
        expect(execution.Status?.CompletionDateTime).toBeInstanceOf(Date);
        const after = await rejection(slow.athena.send(new GetQueryResultsCommand({ QueryExecutionId })));
        expect(after.message).toBe('Query has been cancelled');
      } finally {
        await slow.close();
      }
      const done = await runQuery(h.athena, { QueryString: 'SELECT 1', ...output });
      await h.athena.send(new StopQueryExecutionCommand({ QueryExecutionId: done.id }));
      expect((await waitForQuery(h.athena, done.id)).execution.Status?.State).toBe('SUCCEEDED');
    });

    it('cancels a running query and removes its partial result', async () => {
      const { QueryExecutionId } = await h.athena.send(
        new StartQueryExecutionCommand({
          // A cross join large enough to still run when the stop arrives.
          QueryString: 'SELECT a.range * b.range AS p FROM range(100000) a, range(100000) b',
          ...output,
        }),
      );
      await waitUntilRunning(String(QueryExecutionId));
      await h.athena.send(new StopQueryExecutionCommand({ QueryExecutionId }));
      const { execution } = await waitForQuery(h.athena, String(QueryExecutionId));
      expect(execution.Status?.State).toBe('CANCELLED');
      expect(execution.Status?.StateChangeReason).toBe('Query cancelled by user');
      const head = await rejection(
        h.s3.send(new HeadObjectCommand(s3Address(execution.ResultConfiguration?.OutputLocation))),
      );
      expect(head.name).toBe('NotFound');
    });
  });

  async function waitUntilRunning(id: string): Promise<void> {
    for (;;) {
      const { QueryExecution } = await h.athena.send(new GetQueryExecutionCommand({ QueryExecutionId: id }));
      if (QueryExecution?.Status?.State !== 'QUEUED') return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  describe('GetQueryResults', () => {
    it('pages 1,000 rows at a time, the header first, with NextToken until the last page', async () => {
      const { id } = await runQuery(h.athena, {
        QueryString: 'SELECT n, label FROM many ORDER BY n',
        ...inMarketing,
        ...output,
      });
      const pages: string[][][] = [];
      let token: string | undefined;
      do {
        const page = await h.athena.send(
          new GetQueryResultsCommand({ QueryExecutionId: id, MaxResults: 1000, NextToken: token }),
        );
        expect(page.UpdateCount).toBe(0);
        expect(page.ResultSet?.ResultSetMetadata?.ColumnInfo?.map((c) => c.Name)).toEqual(['n', 'label']);
        pages.push(
          (page.ResultSet?.Rows ?? []).map((r) => (r.Data ?? []).map((d) => String(d.VarCharValue))),
        );
        token = page.NextToken;
      } while (token);
      expect(pages.map((p) => p.length)).toEqual([1000, 1000, 501]);
      const rows = pages.flat();
      expect(rows[0]).toEqual(['n', 'label']);
      expect(rows[1]).toEqual(['1', 'row 1']);
      expect(rows.at(-1)).toEqual([String(ROWS), `row ${ROWS}`]);
      expect(new Set(rows.slice(1).map((r) => r[0])).size).toBe(ROWS);
    });

    it('defaults MaxResults to 1,000 and refuses more, and refuses a forged NextToken', async () => {
      const { id } = await runQuery(h.athena, {
        QueryString: 'SELECT n FROM many',
        ...inMarketing,
        ...output,
      });
      const first = await h.athena.send(new GetQueryResultsCommand({ QueryExecutionId: id }));
      expect(first.ResultSet?.Rows).toHaveLength(1000);
      const tooMany = await rejection(
        h.athena.send(new GetQueryResultsCommand({ QueryExecutionId: id, MaxResults: 1001 })),
      );
      expect(tooMany.name).toBe('InvalidRequestException');
      expect(tooMany.message).toContain("'maxResults'");
      const forged = Buffer.from(`${id}:0:AAAA`).toString('base64url');
      const bad = await rejection(
        h.athena.send(new GetQueryResultsCommand({ QueryExecutionId: id, NextToken: forged })),
      );
      expect(bad.message).toBe(`NextToken is not valid for query execution ${id}`);
    });

    it('reports NULL as {} and the empty string as an empty VarCharValue', async () => {
      const { id } = await runQuery(h.athena, {
        QueryString: 'SELECT email, segment FROM customers ORDER BY email',
        ...inMarketing,
        ...output,
      });
      const page = await h.athena.send(new GetQueryResultsCommand({ QueryExecutionId: id }));
      expect(page.ResultSet?.Rows?.map((r) => r.Data)).toEqual([
        [{ VarCharValue: 'email' }, { VarCharValue: 'segment' }],
        [{ VarCharValue: 'ada@example.com' }, { VarCharValue: 'gold' }],
        [{ VarCharValue: 'bob@example.com' }, {}],
        [{ VarCharValue: 'cy@example.com' }, { VarCharValue: '' }],
      ]);
      expect(page.NextToken).toBeUndefined();
    });
  });

  it('answers an operation it does not implement with UnknownOperationException naming it', async () => {
    const response = await fetch(h.emulator.endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-amz-json-1.1',
        'x-amz-target': 'AmazonAthena.ListWorkGroups',
      },
      body: '{}',
    });
    expect(response.status).toBe(400);
    expect(response.headers.get('x-amzn-requestid')).toBeTruthy();
    expect(await response.json()).toEqual({
      __type: 'UnknownOperationException',
      Message: expect.stringContaining('does not implement ListWorkGroups'),
    });
  });
  describe('GetWorkGroup', () => {
    it('answers a workgroup with its state and result configuration', async () => {
      const { WorkGroup } = await h.athena.send(new GetWorkGroupCommand({ WorkGroup: 'locked' }));
      expect(WorkGroup).toMatchObject({
        Name: 'locked',
        State: 'ENABLED',
        Configuration: {
          ResultConfiguration: { OutputLocation: 's3://wg-locked/' },
          EnforceWorkGroupConfiguration: true,
        },
      });
      expect(WorkGroup?.CreationTime).toBeInstanceOf(Date);
      const retired = await h.athena.send(new GetWorkGroupCommand({ WorkGroup: 'retired' }));
      expect(retired.WorkGroup?.State).toBe('DISABLED');
      // primary always exists, without a location of its own here.
      const primary = await h.athena.send(new GetWorkGroupCommand({ WorkGroup: 'primary' }));
      expect(primary.WorkGroup).toMatchObject({ Name: 'primary', State: 'ENABLED' });
      expect(primary.WorkGroup?.Configuration?.ResultConfiguration?.OutputLocation).toBeUndefined();
    });

    it('answers an unknown workgroup as Athena does: InvalidRequestException "WorkGroup x is not found."', async () => {
      const err = await rejection(h.athena.send(new GetWorkGroupCommand({ WorkGroup: 'nope' })));
      expect(err.name).toBe('InvalidRequestException');
      expect(err.message).toBe('WorkGroup nope is not found.');
      const bad = await rejection(h.athena.send(new GetWorkGroupCommand({ WorkGroup: 'no spaces' })));
      expect(bad.name).toBe('InvalidRequestException');
      expect(bad.message).toContain("at 'workGroup' failed to satisfy constraint");
    });
  });
  describe('STS AssumeRole (a cross-account athena.roleArn)', () => {
    const sts = (): STSClient =>
      new STSClient({
        endpoint: h.emulator.endpoint,
        region: h.emulator.region,
        credentials: { ...h.emulator.credentials },
        maxAttempts: 1,
      });

    it('assumes any role of a well-formed ARN, and tells which role signs a later call', async () => {
      const client = sts();
      const before = Date.now();
      const { Credentials, AssumedRoleUser } = await client.send(
        new AssumeRoleCommand({
          RoleArn: 'arn:aws:iam::210987654321:role/reader',
          RoleSessionName: 'roundtrip',
          DurationSeconds: 900,
        }),
      );
      client.destroy();
      expect(Credentials?.AccessKeyId).toMatch(/^ASIA[0-9A-F]{16}$/);
      expect(Credentials?.SessionToken).toBeTruthy();
      expect(Credentials?.Expiration?.getTime()).toBeGreaterThanOrEqual(before + 899_000);
      expect(AssumedRoleUser?.Arn).toBe('arn:aws:sts::210987654321:assumed-role/reader/roundtrip');
      expect(h.emulator.assumedRoles.at(-1)).toMatchObject({
        roleArn: 'arn:aws:iam::210987654321:role/reader',
        sessionName: 'roundtrip',
        accessKeyId: Credentials?.AccessKeyId,
      });
      const from = h.emulator.calls.length;
      const asRole = new AthenaClient({
        endpoint: h.emulator.endpoint,
        region: h.emulator.region,
        credentials: {
          accessKeyId: Credentials?.AccessKeyId ?? '',
          secretAccessKey: Credentials?.SecretAccessKey ?? '',
          sessionToken: Credentials?.SessionToken ?? '',
        },
      });
      await asRole.send(new GetWorkGroupCommand({ WorkGroup: 'primary' }));
      asRole.destroy();
      expect(h.emulator.calls.slice(from)).toEqual([
        expect.objectContaining({ operation: 'GetWorkGroup', accessKeyId: Credentials?.AccessKeyId }),
      ]);
    });

    it('refuses a malformed role ARN or session name as STS does (ValidationError), and other actions', async () => {
      const client = sts();
      const badArn = await rejection(
        client.send(
          new AssumeRoleCommand({ RoleArn: 'arn:aws:iam::1:role/x', RoleSessionName: 'roundtrip' }),
        ),
      );
      expect(badArn.name).toBe('ValidationError');
      expect(badArn.message).toBe('arn:aws:iam::1:role/x is invalid');
      const badSession = await rejection(
        client.send(
          new AssumeRoleCommand({ RoleArn: 'arn:aws:iam::210987654321:role/reader', RoleSessionName: 'a b' }),
        ),
      );
      expect(badSession.name).toBe('ValidationError');
      client.destroy();
      const other = await fetch(h.emulator.endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'Action=GetCallerIdentity&Version=2011-06-15',
      });
      expect(other.status).toBe(400);
      expect(await other.text()).toContain('<Code>InvalidAction</Code>');
    });
  });
});
