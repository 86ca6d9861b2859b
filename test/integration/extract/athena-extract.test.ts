/**
 * The Athena extract end to end: queries run by the Athena emulator (DuckDB) through the real
 * AWS SDK clients, the result file streamed from its S3 endpoint into the real PostgreSQL.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Client } from 'pg';
import { loadAthena, prepare, runExtract, type CoreDeps } from '../../../lambdas/core';
import type { ExtractTaskInput } from '../../../lambdas/config';
import { clientRequestTokenFor } from '../../../lambdas/connectors/athena';
import { AthenaQueryFailed } from '../../../lambdas/connectors/athena/errors';
import { TerminalError, TransientError } from '../../../lambdas/shared/errors';
import { ATHENA_OUTPUT, startExtractHarness, type ExtractHarness } from './harness';

/** One column per Athena type: the DuckDB expression, the PostgreSQL type it lands in, the value read back as text. */
const TYPES: [sql: string, athenaType: string, pgType: string, text: string][] = [
  ["'text ü'::VARCHAR", 'varchar', 'text', 'text ü'],
  ['\'{"a": [1, 2]}\'::JSON', 'json', 'jsonb', '{"a": [1, 2]}'],
  ['true', 'boolean', 'boolean', 'true'],
  ['(-128)::TINYINT', 'tinyint', 'smallint', '-128'],
  ['32767::SMALLINT', 'smallint', 'smallint', '32767'],
  ['2147483647::INTEGER', 'integer', 'integer', '2147483647'],
  ['(-9223372036854775808)::BIGINT', 'bigint', 'bigint', '-9223372036854775808'],
  ['18446744073709551615::UBIGINT', 'decimal', 'numeric(20,0)', '18446744073709551615'],
  ['0.1::FLOAT', 'float', 'real', '0.1'],
  ['1e20::DOUBLE', 'double', 'double precision', '1e+20'],
  ['12.345::DECIMAL(12,3)', 'decimal', 'numeric(12,3)', '12.345'],
  ["DATE '2020-02-29'", 'date', 'date', '2020-02-29'],
  [
    "TIMESTAMP '2020-01-01 12:34:56.789'",
    'timestamp',
    'timestamp without time zone',
    '2020-01-01 12:34:56.789',
  ],
  [
    "'2020-01-01 14:34:56.789+02'::TIMESTAMPTZ",
    'timestamp with time zone',
    'timestamp with time zone',
    '2020-01-01 12:34:56.789+00',
  ],
  ["TIME '12:34:56.789'", 'time', 'time without time zone', '12:34:56.789'],
  ["'12:34:56.789+05:30'::TIMETZ", 'time with time zone', 'time with time zone', '12:34:56.789+05:30'],
  ["INTERVAL '2 days 1 hour'", 'interval day to second', 'text', '2 01:00:00.000'],
  ["'\\xDE\\xAD\\x00'::BLOB", 'varbinary', 'bytea', '\\xdead00'],
  ['[1, NULL, 3]', 'array', 'text', '[1, null, 3]'],
  ["MAP {'k': 1.5::DOUBLE}", 'map', 'text', '{k=1.5}'],
  ["{'a': 1, 'b': 'x'}", 'row', 'text', '{a=1, b=x}'],
];

const CUSTOMERS_V1 = [
  'email,lifetime_value,segment',
  'a@x.test,10.5,gold',
  'b@x.test,20,silver',
  'c@x.test,30,bronze',
].join('\n');
const CUSTOMERS_V2 = [
  'email,lifetime_value,segment',
  'a@x.test,11.5,gold',
  'b@x.test,20,silver',
  'd@x.test,40,new',
  'e@x.test,50,new',
].join('\n');

describe('Athena extract into PostgreSQL', () => {
  let h: ExtractHarness;
  const typesQuery = `SELECT ${TYPES.map(([sql], i) => `${sql} AS c${i}`).join(', ')}
    UNION ALL SELECT ${TYPES.map(() => 'NULL').join(', ')}`;
  const hardQuery = `SELECT * FROM (VALUES
      (1, 'Müller–Ødegård 山田 😀', 'Comma, "Quote"', 9223372036854775807::BIGINT, TIMESTAMPTZ '2024-02-29 23:30:00+09:00'),
      (2, '', 'Line
Break', 0::BIGINT, NULL),
      (3, NULL, 'Back\\slash '';''', -1::BIGINT, TIMESTAMPTZ '1999-12-31 23:59:59.999-05:00')
    ) AS t(id, name, note, big, happened_at)`;
  const tasks = (): ExtractTaskInput[] => [
    { from: 'athena', name: 'types', query: typesQuery, table: 'athena_types' },
    { from: 'athena', name: 'hard', query: hardQuery, table: 'athena_hard', key: ['id'] },
    { from: 'athena', name: 'customers', query: 'SELECT * FROM customers', table: 'athena_customers' },
    {
      from: 'athena',
      name: 'customers_merged',
      query: 'SELECT * FROM customers',
      table: 'analytics.customers_merged',
      key: ['email'],
    },
  ];
  const deps = (): CoreDeps => h.deps(h.config(tasks()));

  beforeAll(async () => {
    h = await startExtractHarness({ athenaFiles: { 'marketing/customers.csv': CUSTOMERS_V1 } });
  });
  afterAll(() => h.close());

  it('loads every task of a run in one S3 read each: one start, polls, one result-metadata call', async () => {
    const before = h.athenaEmulator.calls.length;
    const result = await runExtract({ input: {} }, deps());
    expect(result.prepare.tasks.athena).toEqual(['types', 'hard', 'customers', 'customers_merged']);
    // How many polls a query takes depends on how fast the emulator runs it against the
    // accelerated clock's 20 ms first wait (the machine's load): the other calls do not.
    const calls = h.athenaEmulator.calls.slice(before).map((c) => c.operation);
    const count = (operation: string): number => calls.filter((c) => c === operation).length;
    const polls = count('GetQueryExecution');
    expect(count('StartQueryExecution')).toBe(4);
    expect(count('GetQueryResults')).toBe(4);
    expect(polls).toBeGreaterThanOrEqual(4);
    expect(count('GetObject')).toBe(4);
    const outputs = Object.values(result.athena);
    for (const output of outputs) {
      expect(output.apiCalls).toBeGreaterThanOrEqual(3);
      expect(output.s3Reads).toBe(1);
    }
    expect(outputs.reduce((n, o) => n + o.apiCalls, 0)).toBe(8 + polls);
    expect(result.athena.customers).toMatchObject({ refresh: 'swap', rows: 3, inserted: 3, deleted: 0 });
    expect(result.athena.customers_merged).toMatchObject({ refresh: 'merge', rows: 3, inserted: 3 });
    // No Salesforce task: Prepare never signed in.
    expect(h.sf.calls.count({ operation: 'login' })).toBe(0);
  });

  it('maps every Athena type to its PostgreSQL column and keeps each value and NULL', async () => {
    const columns = await h.rows<{ column_name: string; type: string }>(
      `SELECT a.attname AS column_name, format_type(a.atttypid, a.atttypmod) AS type
         FROM pg_attribute a WHERE a.attrelid = 'public.athena_types'::regclass AND a.attnum > 0 ORDER BY a.attnum`,
    );
    expect(columns.map((c) => c.type)).toEqual(TYPES.map(([, , pgType]) => pgType));
    const select = TYPES.map((_, i) => `c${i}::text`).join(', ');
    const client = new Client({ connectionString: h.db.url });
    await client.connect();
    try {
      await client.query(`SET TIME ZONE 'UTC'`);
      const { rows: typed } = await client.query<Record<string, string | null>>(
        `SELECT ${select} FROM athena_types ORDER BY c2 NULLS LAST`,
      );
      expect(Object.values(typed[0] ?? {})).toEqual(TYPES.map(([, , , text]) => text));
      expect(Object.values(typed[1] ?? {})).toEqual(TYPES.map(() => null));
    } finally {
      await client.end();
    }
  });

  it('keeps hard values intact: Unicode, quotes, commas, newlines, empty string versus NULL, large numbers, offsets', async () => {
    expect(
      await h.rows(`SELECT id, name, note, big::text AS big, happened_at FROM athena_hard ORDER BY id`),
    ).toEqual([
      {
        id: 1,
        name: 'Müller–Ødegård 山田 😀',
        note: 'Comma, "Quote"',
        big: '9223372036854775807',
        happened_at: new Date('2024-02-29T14:30:00Z'),
      },
      { id: 2, name: '', note: 'Line\nBreak', big: '0', happened_at: null },
      {
        id: 3,
        name: null,
        note: "Back\\slash ';'",
        big: '-1',
        happened_at: new Date('2000-01-01T04:59:59.999Z'),
      },
    ]);
  });

  it('swaps a full refresh in atomically: readers see the old rows or the new ones, and views stay bound', async () => {
    await h.rows(
      'CREATE VIEW gold_customers AS SELECT email FROM athena_customers WHERE lifetime_value > 10',
    );
    await writeFile(path.join(h.dataDir, 'marketing/customers.csv'), CUSTOMERS_V2);
    const reader = new Client({ connectionString: h.db.url });
    await reader.connect();
    const seen = new Set<number>();
    let loading = true;
    const sampling = (async () => {
      while (loading) {
        const { rows } = await reader.query<{ n: number }>('SELECT count(*)::int AS n FROM athena_customers');
        seen.add(rows[0]?.n ?? -1);
      }
    })();
    try {
      const result = await runExtract({ input: { tasks: ['customers', 'customers_merged'] } }, deps());
      expect(result.athena.customers).toMatchObject({ refresh: 'swap', rows: 4, inserted: 4, deleted: 3 });
      // Merged on the key: a changed, b unchanged, d and e new, c kept (it is no longer in the result).
      expect(result.athena.customers_merged).toMatchObject({
        refresh: 'merge',
        rows: 4,
        inserted: 2,
        updated: 1,
      });
    } finally {
      loading = false;
      await sampling;
      await reader.end();
    }
    for (const n of seen) expect([3, 4]).toContain(n);
    expect(await h.rows('SELECT email FROM gold_customers ORDER BY email')).toEqual([
      { email: 'a@x.test' },
      { email: 'b@x.test' },
      { email: 'd@x.test' },
      { email: 'e@x.test' },
    ]);
    expect(
      await h.rows('SELECT email, lifetime_value::text AS v FROM analytics.customers_merged ORDER BY email'),
    ).toEqual([
      { email: 'a@x.test', v: '11.5' },
      { email: 'b@x.test', v: '20' },
      { email: 'c@x.test', v: '30' },
      { email: 'd@x.test', v: '40' },
      { email: 'e@x.test', v: '50' },
    ]);
  });

  it('loads what the .sync integration hands over, and a retried local step reuses the same query', async () => {
    const d = deps();
    const { runId } = await prepare({ input: { tasks: ['customers'] } }, d);
    const athena = d.athena!;
    const token = 'a'.repeat(40);
    const id = await athena.startQuery('SELECT * FROM customers', { clientRequestToken: token });
    const execution = await athena.waitForQuery(id, { sleep: () => Promise.resolve() });
    const loaded = await loadAthena({ runId, task: 'customers', QueryExecution: execution as never }, d);
    // Only GetQueryResults for the column types: the state machine did the rest.
    expect(loaded).toMatchObject({ queryExecutionId: id, apiCalls: 1, s3Reads: 1, rows: 4 });

    const first = await loadAthena({ runId, task: 'customers' }, d);
    const again = await loadAthena({ runId, task: 'customers' }, d);
    expect(again.queryExecutionId).toBe(first.queryExecutionId);
    expect(again).toMatchObject({ rows: 4, inserted: 4, deleted: 4 });

    // A query that is a SHOW or DESCRIBE ran (the emulator refuses them at once): Athena wrote its
    // answer as `<id>.txt`, which the load refuses, naming the task and its query, before any read.
    const before = await h.rows('SELECT * FROM athena_customers ORDER BY email');
    const shown = await loadAthena(
      {
        runId,
        task: 'customers',
        QueryExecution: {
          QueryExecutionId: id,
          ResultConfiguration: { OutputLocation: `${ATHENA_OUTPUT}${id}.txt` },
          Status: { State: 'SUCCEEDED' },
        },
      },
      d,
    ).catch((e: unknown) => e);
    expect(shown).toBeInstanceOf(TerminalError);
    expect((shown as Error).message).toBe(
      `Extract task customers (extract[2].query): Athena query ${id} wrote its result as ${ATHENA_OUTPUT}${id}.txt, not as the CSV file of a SELECT: ` +
        'an Athena extract task loads the rows of a query (SELECT, WITH … SELECT, VALUES); SHOW, DESCRIBE and other DDL write a text file without a header; ' +
        'the table public.athena_customers was left as it was',
    );
    expect(await h.rows('SELECT * FROM athena_customers ORDER BY email')).toEqual(before);

    // A result file gone by the time the load reads it (a lifecycle rule on the results bucket, a
    // retried step hours later): S3's NoSuchKey, named with the task.
    const gone = await loadAthena(
      {
        runId,
        task: 'customers',
        QueryExecution: {
          QueryExecutionId: id,
          ResultConfiguration: { OutputLocation: `${ATHENA_OUTPUT}expired/${id}.csv` },
          Status: { State: 'SUCCEEDED' },
        },
      },
      d,
    ).catch((e: unknown) => e);
    expect(gone).toBeInstanceOf(TerminalError);
    expect((gone as Error).message).toMatch(
      new RegExp(
        `^Extract task customers: S3 GetObject ${ATHENA_OUTPUT}expired/${id}\\.csv failed: NoSuchKey: .*; the table public\\.athena_customers was left as it was$`,
      ),
    );
    expect(await h.rows('SELECT * FROM athena_customers ORDER BY email')).toEqual(before);
  });

  it('fails with Athena’s reason when the query fails, and leaves the table as it was', async () => {
    const broken = h.config([
      {
        from: 'athena',
        name: 'customers',
        query: 'SELECT no_such_column FROM customers',
        table: 'athena_customers',
      },
    ]);
    const before = await h.rows('SELECT * FROM athena_customers ORDER BY email');
    const d = h.deps(broken);
    const error = await runExtract({ input: {} }, d).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TerminalError);
    expect((error as Error).message).toMatch(
      /^Extract task customers \(extract\[0\]\.query\): Athena query \S+ failed: COLUMN_NOT_FOUND: /,
    );
    // A syntax error is refused at the query's start, before an execution exists: named the same.
    const malformed = await runExtract(
      { input: {} },
      h.deps(
        h.config([
          { from: 'athena', name: 'fine', query: 'SELECT 1 AS one', table: 'athena_fine' },
          { from: 'athena', name: 'customers', query: 'SELECT FROM customers', table: 'athena_customers' },
        ]),
      ),
    ).catch((e: unknown) => e);
    expect(malformed).toBeInstanceOf(AthenaQueryFailed);
    expect((malformed as Error).message).toBe(
      'Extract task customers (extract[1].query): Athena StartQueryExecution failed: InvalidRequestException (MALFORMED_QUERY): SELECT clause without selection list',
    );
    // A start refused for the workgroup names athena.workgroup, not the query.
    const noWorkgroup = await runExtract(
      { input: {} },
      h.deps(
        h.config([{ from: 'athena', name: 'fine', query: 'SELECT 1 AS one', table: 'athena_fine' }], {
          athena: { database: 'marketing', outputLocation: ATHENA_OUTPUT, workgroup: 'analysts' },
        }),
      ),
    ).catch((e: unknown) => e);
    expect(noWorkgroup).toBeInstanceOf(TerminalError);
    expect(noWorkgroup).not.toBeInstanceOf(AthenaQueryFailed);
    expect((noWorkgroup as Error).message).toBe(
      'Extract task fine: Athena refused to start its query in workgroup analysts (athena.workgroup): Athena StartQueryExecution failed: InvalidRequestException (INVALID_INPUT): WorkGroup analysts is not found.',
    );
    // Athena throttling past the client's retries: transient (the step is retried), named by its task.
    h.athenaEmulator.faults.throttle = 1;
    const throttled = await runExtract(
      { input: {} },
      h.deps(h.config([{ from: 'athena', name: 'fine', query: 'SELECT 1 AS one', table: 'athena_fine' }])),
    ).catch((e: unknown) => e);
    h.athenaEmulator.faults.throttle = 0;
    expect(throttled).toBeInstanceOf(TransientError);
    expect((throttled as Error).message).toBe(
      'Extract task fine: Athena StartQueryExecution failed: ThrottlingException: Rate exceeded',
    );
    h.athenaEmulator.faults.failQueryAfterRunning = 'customers';
    try {
      const internal = await runExtract({ input: {} }, h.deps(h.config(tasks().slice(2, 3)))).catch(
        (e: unknown) => e,
      );
      expect(internal).toBeInstanceOf(Error);
      expect((internal as Error).message).toMatch(/GENERIC_INTERNAL_ERROR/);
    } finally {
      h.athenaEmulator.faults.failQueryAfterRunning = false;
    }
    expect(await h.rows('SELECT * FROM athena_customers ORDER BY email')).toEqual(before);
  });

  it('names a key the query does not return by its config path and the column meant, and says how to key a table loaded without one', async () => {
    const task = {
      from: 'athena',
      name: 'customers',
      query: 'SELECT * FROM customers',
      table: 'customers_rekeyed',
    } as const;
    const failure = (config: ReturnType<typeof h.config>): Promise<string> =>
      runExtract({ input: {} }, h.deps(config)).then(
        () => 'no error',
        (e: unknown) => (e as Error).message,
      );
    expect(await failure(h.config([{ ...task, key: ['emial'] }]))).toBe(
      `Extract task customers: key column "emial" (extract[0].key) is not in the query's result (columns: email, lifetime_value, segment); did you mean "email" for "emial"?: name columns of the result in the key, or give the column that name with AS in the task's query; the table public.customers_rekeyed was left as it was`,
    );

    // Loaded without a key, then given one: the table has no primary key.
    await runExtract({ input: {} }, h.deps(h.config([task])));
    const refusal = await failure(h.config([{ ...task, key: ['email'] }]));
    expect(refusal).toBe(
      `Extract task customers: table "public"."customers_rekeyed" has primary key (none) but the task's key (extract[0].key) is (email): the load merges rows by the task's key, which must be the table's primary key. Either take the key out of extract[0].key (without one, the load replaces every row), or change the table's key to the task's (ALTER TABLE "public"."customers_rekeyed" ADD PRIMARY KEY ("email"); refused while a key repeats or is NULL), or drop the table (DROP TABLE "public"."customers_rekeyed"): the next load makes it again from the whole result of the query; the table was left as it was`,
    );
    // The statement it gives is the way out: the next load merges by the key.
    await h.pool.query(/\((ALTER TABLE [^;]+);/.exec(refusal)?.[1] as string);
    const merged = await runExtract({ input: {} }, h.deps(h.config([{ ...task, key: ['email'] }])));
    // Every row was loaded a moment ago without the key: the merge inserts none.
    expect(merged.athena.customers).toMatchObject({ inserted: 0 });
    expect(await h.rows(`SELECT count(*)::int AS n FROM customers_rekeyed`)).toEqual([
      { n: merged.athena.customers?.rows },
    ]);
  });

  it('never doubles a full refresh when two runs swap the same table at once', async () => {
    // Run A is between its DELETE and its COMMIT (its swap holds the old rows)…
    const a = new Client({ connectionString: h.db.url });
    await a.connect();
    const d = deps();
    const { runId } = await prepare({ input: { tasks: ['customers'] } }, d);
    let loading: Promise<unknown> | undefined;
    try {
      await a.query('BEGIN');
      await a.query('DELETE FROM athena_customers');
      await a.query(
        `INSERT INTO athena_customers (email, lifetime_value, segment) VALUES ('z@x.test', 1, 'run a')`,
      );
      // …when run B's load of the same task reaches its swap and waits for A.
      loading = loadAthena({ runId, task: 'customers' }, d);
      for (let i = 0; i < 200; i += 1) {
        const { rows } = await a.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`,
        );
        if ((rows[0]?.n ?? 0) > 0) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      await a.query('COMMIT');
      await loading;
    } finally {
      await loading?.catch(() => undefined);
      await a.end();
    }
    // B's refresh replaced A's rows: the table holds B's result once, not B's plus A's.
    expect(await h.rows('SELECT email FROM athena_customers ORDER BY email')).toEqual([
      { email: 'a@x.test' },
      { email: 'b@x.test' },
      { email: 'd@x.test' },
      { email: 'e@x.test' },
    ]);
  });

  it('runs the query anew when a retried local step finds it failed with a retryable error, and re-attaches to that rerun', async () => {
    const d = deps();
    const { runId } = await prepare({ input: { tasks: ['customers'] } }, d);
    const athena = d.athena!;
    // An earlier attempt of the step started the query, which failed with Athena's internal
    // (retryable) error, and then the attempt ended (a Lambda timeout, say).
    h.athenaEmulator.faults.failQueryAfterRunning = 'customers';
    let failedId: string;
    try {
      failedId = await athena.startQuery('SELECT * FROM customers', {
        clientRequestToken: clientRequestTokenFor(runId, 'customers'),
      });
      const failed = await athena
        .waitForQuery(failedId, { sleep: () => Promise.resolve() })
        .catch((e: unknown) => e);
      expect(failed).toBeInstanceOf(TransientError);
    } finally {
      h.athenaEmulator.faults.failQueryAfterRunning = false;
    }

    // The retried step runs the query again instead of finding the same failed execution.
    const retried = await loadAthena({ runId, task: 'customers' }, d);
    expect(retried.queryExecutionId).not.toBe(failedId);
    expect(retried).toMatchObject({ rows: 4, inserted: 4 });
    // A step retried once more re-attaches to the successful rerun.
    const again = await loadAthena({ runId, task: 'customers' }, d);
    expect(again.queryExecutionId).toBe(retried.queryExecutionId);
  });

  it('stops rerunning a query that keeps failing with a retryable error: terminal after a bounded number of queries', async () => {
    const d = deps();
    const { runId } = await prepare({ input: { tasks: ['customers'] } }, d);
    const rerunIds = (): Set<string> =>
      new Set(
        h.logger.records
          .filter((r) => r.message.includes('running it again') && r.attributes.runId === runId)
          .map((r) => String(r.attributes.queryExecutionId)),
      );
    h.athenaEmulator.faults.failQueryAfterRunning = 'customers';
    try {
      const first = await loadAthena({ runId, task: 'customers' }, d).catch((e: unknown) => e);
      expect(first).toBeInstanceOf(TerminalError);
      expect((first as Error).message).toMatch(/GENERIC_INTERNAL_ERROR.*failed 4 times/);
      expect(rerunIds().size).toBe(3);
      // A retried step walks the same chain and starts no fifth query.
      const second = await loadAthena({ runId, task: 'customers' }, d).catch((e: unknown) => e);
      expect((second as Error).message).toBe((first as Error).message);
      expect(rerunIds().size).toBe(3);
    } finally {
      h.athenaEmulator.faults.failQueryAfterRunning = false;
    }
  });
});
