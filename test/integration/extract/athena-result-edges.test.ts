/**
 * Results that Athena answers and PostgreSQL cannot take as they are: the load refuses them with
 * the task, what is wrong and the way out in the query, and leaves the table as it was. Queries
 * run by the Athena emulator through the real AWS SDK clients, loaded into the real PostgreSQL.
 */
import { loadAthena, prepare, runExtract } from '../../../lambdas/core';
import { clientRequestTokenFor } from '../../../lambdas/connectors/athena';
import type { ExtractTaskInput } from '../../../lambdas/config';
import { TerminalError } from '../../../lambdas/shared/errors';
import { ATHENA_OUTPUT, startExtractHarness, type ExtractHarness } from './harness';

const CUSTOMERS = ['id,name', '1,Ada', '2,Grace', '3,Edsger'].join('\n');
const ORDERS = ['id,customer_id,total', '10,1,5.5', '11,2,7.25', '12,9,1.0'].join('\n');

describe('Athena results PostgreSQL cannot take as they are', () => {
  let h: ExtractHarness;

  beforeAll(async () => {
    h = await startExtractHarness({
      athenaFiles: { 'marketing/customers.csv': CUSTOMERS, 'marketing/orders.csv': ORDERS },
    });
  });
  afterAll(() => h.close());

  /** Runs the extract of one task; resolves with its error, or undefined when it loaded. */
  const extract = async (task: ExtractTaskInput): Promise<Error | undefined> => {
    try {
      await runExtract({ input: {} }, h.deps(h.config([task])));
      return undefined;
    } catch (err) {
      return err as Error;
    }
  };

  it('refuses columns named twice (SELECT * over a join) or past 63 bytes, naming the task, the columns and the fix', async () => {
    const task = { from: 'athena', name: 'joined', table: 'joined_orders' } as const;
    expect(
      await extract({
        ...task,
        query: 'SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id',
      }),
    ).toBeUndefined();
    const before = await h.rows('SELECT * FROM joined_orders ORDER BY id');
    expect(before).toHaveLength(2);

    const joined = await extract({
      ...task,
      query: 'SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id',
    });
    expect(joined).toBeInstanceOf(TerminalError);
    expect(joined?.message).toBe(
      'Extract task joined: the query\'s result columns (extract[0].query) cannot be the columns of public.joined_orders as named: "id" 2 times (columns 1 and 4). ' +
        "Give each column of the result its own name of at most 63 bytes with AS in the task's query (SELECT o.id AS order_id, …); the table public.joined_orders was left as it was",
    );

    const long = `customer_${'lifetime_'.repeat(6)}value`;
    const tooLong = await extract({ ...task, query: `SELECT o.id, o.total AS ${long} FROM orders o` });
    expect(tooLong).toBeInstanceOf(TerminalError);
    expect(tooLong?.message).toContain(
      `Extract task joined: the query's result columns (extract[0].query) cannot be the columns of public.joined_orders as named: "${long}" has 68 bytes (PostgreSQL keeps 63 of a name and cuts the rest).`,
    );
    expect(await h.rows('SELECT * FROM joined_orders ORDER BY id')).toEqual(before);
  });

  it("loads a result of 1,599 columns and refuses a wider one before the table is touched: its staging table would pass PostgreSQL's 1,600", async () => {
    const wide = (n: number): string =>
      `SELECT ${Array.from({ length: n }, (_, i) => `${i} AS c${i}`).join(', ')}`;
    const task = { from: 'athena', name: 'features', table: 'features' } as const;
    expect(await extract({ ...task, query: wide(1599) })).toBeUndefined();
    const [count] = await h.rows<{ n: number }>(
      `SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'features'`,
    );
    expect(count?.n).toBe(1599);

    const error = await extract({ ...task, query: wide(1600) });
    expect(error).toBeInstanceOf(TerminalError);
    expect(error?.message).toBe(
      "Extract task features: the query's result (extract[0].query) has 1600 columns, more than the 1599 a load takes: a PostgreSQL table has at most 1600, " +
        "and the load stages the rows in a table with one column more (__roundtrip_row). Select fewer columns in the task's query, " +
        'or combine several into one value (CAST(ROW(a, b) AS JSON) loads as one jsonb column); the table public.features was left as it was',
    );
    expect(await h.rows('SELECT c0, c1598 FROM features')).toEqual([{ c0: 0, c1598: 1598 }]);
  });

  it('refuses a row whose key is NULL (an outer join), naming the task, the key column and the fix', async () => {
    const task = {
      from: 'athena',
      name: 'by_customer',
      table: 'order_customers',
      key: ['customer_id'],
    } as const;
    expect(
      await extract({ ...task, query: 'SELECT c.id AS customer_id, c.name FROM customers c' }),
    ).toBeUndefined();
    const before = await h.rows('SELECT * FROM order_customers ORDER BY customer_id');
    expect(before).toHaveLength(3);

    const error = await extract({
      ...task,
      query: 'SELECT c.id AS customer_id, c.name FROM orders o LEFT JOIN customers c ON c.id = o.customer_id',
    });
    expect(error).toBeInstanceOf(TerminalError);
    expect(error?.message).toBe(
      'Extract task by_customer: the query returned a row whose key column "customer_id" is NULL (Failing row contains (null, null)), ' +
        'and the table public.order_customers is merged on its key (customer_id), which must name every row: ' +
        'leave such rows out in the task\'s query (WHERE "customer_id" IS NOT NULL) or give them a key there (coalesce); the table was left as it was',
    );
    expect(await h.rows('SELECT * FROM order_customers ORDER BY customer_id')).toEqual(before);
  });

  it("names the primary key a task's table kept after the task's key was taken out, when the result breaks it, and the ways out", async () => {
    const task = { from: 'athena', name: 'customers_once', table: 'customers_once' } as const;
    expect(await extract({ ...task, key: ['id'], query: 'SELECT id, name FROM customers' })).toBeUndefined();
    const before = await h.rows('SELECT * FROM customers_once ORDER BY id');
    expect(before).toHaveLength(3);
    // Without its key, the task's result replaces the table's rows as they are: still loads while
    // every id comes once, and says that the table kept its key, which a later result may break.
    const warningsBefore = h.logger.records.filter((r) => r.level === 'warn').length;
    const keyless = await runExtract(
      { input: {} },
      h.deps(h.config([{ ...task, query: 'SELECT id, name FROM customers' }])),
    );
    expect(await h.rows('SELECT * FROM customers_once ORDER BY id')).toEqual(before);
    const kept = {
      table: 'public.customers_once',
      key: ['id'],
      constraint: 'customers_once_pkey',
      keyPath: 'extract[0].key',
    };
    expect(keyless.athena.customers_once?.keptPrimaryKey).toEqual(kept);
    const warning =
      "Extract task customers_once has no key (extract[0].key), but public.customers_once kept its primary key (id) (made by the task's earlier loads with a key, or by hand): " +
      "the load replaced the table's rows with the result as it is, and a run whose result repeats a value of the key or leaves it NULL will fail. " +
      'Drop the table\'s primary key if the task is meant to load without one (ALTER TABLE "public"."customers_once" DROP CONSTRAINT "customers_once_pkey"), ' +
      "or give the task its key again (extract[0].key: ['id']: the load then merges, one row a key)";
    expect(
      h.logger.records
        .filter((r) => r.level === 'warn')
        .slice(warningsBefore)
        .map((r) => [r.message, r.attributes.warning]),
    ).toEqual([['Athena extract without a key loaded a table that has a primary key', warning]]);

    const ways =
      'and the table public.customers_once has the primary key (id), which needs one row a value; ' +
      "the task has no key (extract[0].key), so the result replaces the table's rows as they are, and the table kept the key it was made with (by the task's earlier loads with a key, or by hand). " +
      'Either drop the table\'s primary key if the task is meant to load without one (ALTER TABLE "public"."customers_once" DROP CONSTRAINT "customers_once_pkey"), ' +
      "or give the task its key again (extract[0].key: ['id']: the load then merges, one row a key) and have the query return a value of it in every row; the table was left as it was";
    const repeated = await extract({
      ...task,
      query: "SELECT id, name FROM customers UNION ALL SELECT 1, 'Ada again'",
    });
    expect(repeated).toBeInstanceOf(TerminalError);
    expect(repeated?.message).toBe(
      `Extract task customers_once: the query returned the key (id)=(1) in more than one row, ${ways}`,
    );
    const nullKey = await extract({
      ...task,
      query: "SELECT id, name FROM customers UNION ALL SELECT NULL, 'Nobody'",
    });
    expect(nullKey?.message).toBe(
      `Extract task customers_once: the query returned a row whose "id" is NULL, ${ways}`,
    );
    const noKey = await extract({ ...task, query: 'SELECT name FROM customers' });
    expect(noKey?.message).toBe(
      `Extract task customers_once: the query's result has no column "id", ${ways}`,
    );
    expect(await h.rows('SELECT * FROM customers_once ORDER BY id')).toEqual(before);

    // The first way out, as the message gives it: then the repeated key loads.
    await h.rows('ALTER TABLE "public"."customers_once" DROP CONSTRAINT "customers_once_pkey"');
    const unkeyed = await runExtract(
      { input: {} },
      h.deps(
        h.config([{ ...task, query: "SELECT id, name FROM customers UNION ALL SELECT 1, 'Ada again'" }]),
      ),
    );
    expect(unkeyed.athena.customers_once).not.toHaveProperty('keptPrimaryKey');
    expect(await h.rows('SELECT count(*)::int AS n FROM customers_once WHERE id = 1')).toEqual([{ n: 2 }]);
  });

  it('says why S3 refused the result file (AccessDenied): a workgroup that wrote it outside athena.outputLocation, or the KMS key', async () => {
    const task = { from: 'athena', name: 'refused', table: 'refused_customers' } as const;
    const config = h.config([{ ...task, query: 'SELECT id, name FROM customers' }]);
    expect(await extract({ ...task, query: 'SELECT id, name FROM customers' })).toBeUndefined();
    const before = await h.rows('SELECT * FROM refused_customers ORDER BY id');
    const d = h.deps(config);
    const { runId } = await prepare({ input: {} }, d);
    const id = await d.athena!.startQuery('SELECT id, name FROM customers', {
      clientRequestToken: clientRequestTokenFor(runId, 'refused'),
    });
    const execution = await d.athena!.waitForQuery(id, { sleep: () => Promise.resolve() });
    const location = execution.ResultConfiguration?.OutputLocation ?? '';
    expect(location).toBe(`${ATHENA_OUTPUT}${id}.csv`);
    const load = (outputLocation: string): Promise<unknown> =>
      loadAthena(
        {
          runId,
          task: 'refused',
          QueryExecution: {
            QueryExecutionId: id,
            ResultConfiguration: { OutputLocation: outputLocation },
            Status: { State: 'SUCCEEDED' },
          },
        },
        d,
      ).catch((e: unknown) => e);
    h.athenaEmulator.faults.s3Fail = 403;
    try {
      const denied = `S3 GetObject ${location} failed: AccessDenied: Injected by the emulator (faults.s3Fail = 403)`;
      const inside = await load(location);
      expect(inside).toBeInstanceOf(TerminalError);
      expect((inside as Error).message).toBe(
        `Extract task refused: the load may not read the query's result file (${denied}): ` +
          "the load's role needs s3:GetObject on it, and kms:Decrypt on the KMS key that encrypts it when the workgroup encrypts its results with SSE-KMS: " +
          'name that key in athena.resultsKmsKeyArn (not set) and deploy again; the table public.refused_customers was left as it was',
      );
      // What the .sync integration hands over when the workgroup enforces a location of its own.
      const governed = `s3://governed-results/athena/${id}.csv`;
      const outside = await load(governed);
      expect((outside as Error).message).toBe(
        `Extract task refused: the load may not read the query's result file (S3 GetObject ${governed} failed: AccessDenied: Injected by the emulator (faults.s3Fail = 403)): ` +
          `the query wrote it outside athena.outputLocation ${ATHENA_OUTPUT}, the location whose files the load may read: workgroup primary enforces its own result location (roundtrip validate names it); ` +
          'set athena.outputLocation to that location and deploy again; the table public.refused_customers was left as it was',
      );
    } finally {
      h.athenaEmulator.faults.s3Fail = undefined;
    }
    expect(await h.rows('SELECT * FROM refused_customers ORDER BY id')).toEqual(before);
  });

  it('refuses a value holding U+0000, naming the task, the line of the result file and the fix', async () => {
    const task = { from: 'athena', name: 'notes', table: 'customer_notes' } as const;
    expect(await extract({ ...task, query: 'SELECT id, name FROM customers' })).toBeUndefined();
    const before = await h.rows('SELECT * FROM customer_notes ORDER BY id');

    const error = await extract({
      ...task,
      query: `SELECT * FROM (VALUES (1, 'two' || chr(10) || 'lines'), (2, 'a' || chr(0) || 'b')) AS t(id, name) ORDER BY id`,
    });
    expect(error).toBeInstanceOf(TerminalError);
    // Line 1 is the header, lines 2 and 3 the first row (its value's line break), line 4 the second.
    expect(error?.message).toBe(
      "Extract task notes: a value of the query's result holds the character U+0000 (NUL) (line 4 of the result file, counting its header line and the line breaks inside values), " +
        "which PostgreSQL cannot store in text: take it out in the task's query (replace(column, chr(0), '')); the table public.customer_notes was left as it was",
    );
    expect(await h.rows('SELECT * FROM customer_notes ORDER BY id')).toEqual(before);

    // In a json value the character is escaped, which jsonb refuses too: PostgreSQL names the column.
    const json = await extract({
      ...task,
      query: `SELECT id, name, CAST('{"note": "a\\u0000b"}' AS JSON) AS doc FROM customers`,
    });
    expect(json).toBeInstanceOf(TerminalError);
    expect(json?.message).toBe(
      'Extract task notes: a json value of column "doc" holds the character U+0000 (the escape \\u0000) (line 2 of the result file, counting its header line and the line breaks inside values), ' +
        'which PostgreSQL\'s jsonb cannot store: load the column as text with json_format("doc") in the task\'s query, or take the character out; the table public.customer_notes was left as it was',
    );
    expect(await h.rows('SELECT * FROM customer_notes ORDER BY id')).toEqual(before);
  });
  it("refuses a value PostgreSQL does not take as its column's type (a date of the year 0), naming the task, the column, its types, the line and the fix", async () => {
    const task = { from: 'athena', name: 'signups', table: 'customer_signups' } as const;
    expect(
      await extract({ ...task, query: "SELECT id, DATE '2024-03-01' AS signed_up_on FROM customers" }),
    ).toBeUndefined();
    const before = await h.rows('SELECT * FROM customer_signups ORDER BY id');
    expect(before).toHaveLength(3);

    // Trino's calendar has a year 0 (1 BC); PostgreSQL's goes from 1 BC to 1 AD and refuses it.
    const error = await extract({
      ...task,
      query:
        "SELECT id, CASE WHEN id = 2 THEN DATE '0000-01-01' ELSE DATE '2024-03-01' END AS signed_up_on FROM customers ORDER BY id",
    });
    expect(error).toBeInstanceOf(TerminalError);
    expect(error?.message).toBe(
      'Extract task signups: a value of column "signed_up_on" (Athena date, loaded as date) on line 3 of the result file (counting its header line and the line breaks inside values) ' +
        'is not one PostgreSQL takes as date: date/time field value out of range: "0000-01-01" (SQLSTATE 22008). ' +
        'Change or leave out such values in the task\'s query (extract[0].query), or load the column as text there (CAST("signed_up_on" AS VARCHAR)); the table public.customer_signups was left as it was',
    );
    expect(await h.rows('SELECT * FROM customer_signups ORDER BY id')).toEqual(before);
  });
});
