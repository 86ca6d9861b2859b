/**
 * A keyed Athena extract whose query returns a key in more than one row: the merge keeps one row a
 * key (the last in the result file, whose order Athena does not fix), and says so — in the step's
 * output, the log and the run's summary, with the rows dropped, a few keys and the fix — or, with
 * `duplicateKeys: 'fail'`, fails the task with the table left as it was. Queries run by the Athena
 * emulator through the real AWS SDK clients, loaded into the real PostgreSQL.
 */
import type { PoolClient } from 'pg';
import { runExtract } from '../../../lambdas/core';
import type { ExtractTaskInput } from '../../../lambdas/config';
import { TerminalError } from '../../../lambdas/shared/errors';
import { formatSummaryTable, readStoredRun, runSummary } from '../../../bin/local/summary';
import { startExtractHarness, type ExtractHarness } from './harness';

// Order events, one row a version: order 1 has two, order 3 three, order 2 one; a customer's
// orders by a second key, region and number, where (eu, 7) comes twice.
const EVENTS = [
  'id,status,version',
  '1,new,1',
  '1,paid,2',
  '2,new,1',
  '3,new,1',
  '3,paid,2',
  '3,shipped,3',
].join('\n');
const ORDERS = [
  'region,number,total',
  'eu,7,1.5',
  'eu,7,2.5',
  'us,7,3.0',
  "o'brien,8,4.0",
  "o'brien,8,4.5",
].join('\n');

/** The statement that reads the repeated keys: a pass over staging grouped on the key. */
const REPEATED_KEYS_READ = /HAVING count\(\*\) > 1/;

describe('Athena extract with a key whose query returns a key in more than one row', () => {
  let h: ExtractHarness;
  /** Every statement the loads sent, in order. */
  const statements: string[] = [];

  beforeAll(async () => {
    h = await startExtractHarness({
      athenaFiles: { 'marketing/events.csv': EVENTS, 'marketing/orders.csv': ORDERS },
    });
    // Each client the pool hands out records the text of what it is asked, then asks it as asked.
    const watched = new WeakSet<PoolClient>();
    h.pool.on('acquire', (client) => {
      if (watched.has(client)) return;
      watched.add(client);
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      (client as { query: unknown }).query = (...args: unknown[]) => {
        const [first] = args;
        const text = typeof first === 'string' ? first : (first as { text?: unknown } | null)?.text;
        if (typeof text === 'string') statements.push(text);
        return query(...args);
      };
    });
  });
  afterAll(() => h.close());

  /** Runs the extract of one task: its step output, or its error. */
  const extract = async (task: ExtractTaskInput) => {
    statements.length = 0;
    h.logger.records.length = 0;
    const config = h.config([task]);
    try {
      const result = await runExtract({ input: {} }, h.deps(config));
      return { config, runId: result.prepare.runId, output: result.athena[task.name ?? task.table] };
    } catch (err) {
      return { config, error: err as Error };
    }
  };

  const warnings = () => h.logger.records.filter((r) => r.level === 'warn');

  it("keeps the last row of each key, and says in the output, the log and the run's summary how many rows it dropped, which keys and the fix", async () => {
    const task = { from: 'athena', name: 'order_status', table: 'order_status', key: ['id'] } as const;
    const { config, runId, output, error } = await extract({
      ...task,
      query: 'SELECT id, status FROM events',
    });
    expect(error).toBeUndefined();
    expect(output).toMatchObject({ rows: 6, inserted: 3, updated: 0 });
    expect(output?.duplicateKeys).toEqual({
      table: 'public.order_status',
      key: ['id'],
      droppedRows: 3,
      keys: 2,
      examples: [
        { key: { id: '3' }, rows: 3 },
        { key: { id: '1' }, rows: 2 },
      ],
    });
    // One row a key, as before: which one the result file's order decided.
    expect(await h.rows('SELECT id::int AS id FROM order_status ORDER BY id')).toEqual([
      { id: 1 },
      { id: 2 },
      { id: 3 },
    ]);
    // Staging was read once more, for the keys, after the merge.
    expect(statements.filter((s) => REPEATED_KEYS_READ.test(s))).toHaveLength(1);

    const warning =
      "Extract task order_status: the query returned 2 keys in more than one row (id 3: 3 rows, id 1: 2 rows), 3 rows more than keys: public.order_status kept one row a key, the last in the result file, which Athena orders arbitrarily without ORDER BY, so which row is kept may change from run to run; make the task's query return one row a key, the version you want: SELECT <its columns> FROM (SELECT …, row_number() OVER (PARTITION BY id ORDER BY <a column that orders versions> DESC) AS rn FROM …) WHERE rn = 1. Set duplicateKeys: 'fail' on the task to fail instead of loading";
    expect(warnings()).toEqual([
      {
        level: 'warn',
        message: 'Athena extract dropped rows of keys the query returned more than once',
        attributes: expect.objectContaining({
          task: 'order_status',
          table: 'public.order_status',
          duplicateKeys: output?.duplicateKeys,
          warning,
        }) as unknown,
      },
    ]);

    // The run's summary (roundtrip.runs) holds the figures, and the CLI says the warning below its table.
    const stored = await h.rows<{ summary: { extract: Record<string, unknown> } }>(
      'SELECT summary FROM roundtrip.runs WHERE run_id = $1',
      [runId],
    );
    expect(stored[0]?.summary.extract.order_status).toMatchObject({ duplicateKeys: output?.duplicateKeys });
    const run = await readStoredRun(h.pool, runId ?? '');
    if (!run) throw new Error(`run ${String(runId)} is not recorded`);
    expect(
      formatSummaryTable(runSummary(config, run, 'succeeded'))
        .split('\n')
        .slice(-1),
    ).toEqual([`warning: ${warning}`]);
  });

  it('names a key of several columns by each, quoting text, and a second run keeps warning', async () => {
    const task = {
      from: 'athena',
      name: 'regional_orders',
      table: 'regional_orders',
      key: ['region', 'number'],
    } as const;
    for (let run = 0; run < 2; run += 1) {
      const { output, error } = await extract({ ...task, query: 'SELECT region, number, total FROM orders' });
      expect(error).toBeUndefined();
      expect(output?.duplicateKeys).toEqual({
        table: 'public.regional_orders',
        key: ['region', 'number'],
        droppedRows: 2,
        keys: 2,
        examples: [
          { key: { region: 'eu', number: '7' }, rows: 2 },
          { key: { region: "o'brien", number: '8' }, rows: 2 },
        ],
      });
      expect(warnings().map((w) => w.attributes.warning)).toEqual([
        expect.stringContaining(
          "the query returned 2 keys in more than one row ((region, number) = ('eu', 7): 2 rows, (region, number) = ('o''brien', 8): 2 rows), 2 rows more than keys",
        ) as unknown,
      ]);
    }
    expect(await h.rows<{ n: number }>('SELECT count(*)::int AS n FROM regional_orders')).toEqual([{ n: 3 }]);
  });

  it('cuts a long repeated key before a character, never between the halves of an emoji, and loads', async () => {
    const task = { from: 'athena', name: 'long_keys', table: 'long_keys', key: ['k'] } as const;
    // 199 letters, then an emoji: its two UTF-16 halves are the 200th and 201st units.
    const key = `repeat('a', 199) || '😀' || 'tail'`;
    const { output, error } = await extract({
      ...task,
      query: `SELECT ${key} AS k, 1 AS v UNION ALL SELECT ${key}, 2`,
    });
    expect(error).toBeUndefined();
    expect(output?.duplicateKeys?.examples).toEqual([{ key: { k: `${'a'.repeat(199)}…` }, rows: 2 }]);
    expect(await h.rows<{ n: number }>('SELECT count(*)::int AS n FROM long_keys')).toEqual([{ n: 1 }]);
  });

  it('says nothing and reads staging no more when every key comes once', async () => {
    const task = { from: 'athena', name: 'first_status', table: 'first_status', key: ['id'] } as const;
    const { config, runId, output, error } = await extract({
      ...task,
      query: 'SELECT id, status FROM events WHERE version = 1',
    });
    expect(error).toBeUndefined();
    expect(output).toMatchObject({ rows: 3, inserted: 3 });
    expect(output).not.toHaveProperty('duplicateKeys');
    expect(statements.some((s) => /MERGE|INSERT INTO "public"."first_status"/.test(s))).toBe(true);
    expect(statements.filter((s) => REPEATED_KEYS_READ.test(s))).toEqual([]);
    expect(warnings()).toEqual([]);
    const run = await readStoredRun(h.pool, runId ?? '');
    if (!run) throw new Error(`run ${String(runId)} is not recorded`);
    expect(formatSummaryTable(runSummary(config, run, 'succeeded'))).not.toContain('warning:');
  });

  it("with duplicateKeys: 'fail', fails naming the task, the keys and the fix, the table left as it was", async () => {
    const task = {
      from: 'athena',
      name: 'strict_status',
      table: 'strict_status',
      key: ['id'],
      duplicateKeys: 'fail',
    } as const;
    const first = await extract({ ...task, query: 'SELECT id, status FROM events WHERE version = 1' });
    expect(first.error).toBeUndefined();
    const before = await h.rows('SELECT id::int AS id, status FROM strict_status ORDER BY id');
    expect(before).toEqual([
      { id: 1, status: 'new' },
      { id: 2, status: 'new' },
      { id: 3, status: 'new' },
    ]);

    // A new column too: the table's evolution is rolled back with the merge.
    const { error } = await extract({ ...task, query: 'SELECT id, status, version FROM events' });
    expect(error).toBeInstanceOf(TerminalError);
    expect(error?.message).toBe(
      "Extract task strict_status: the query returned 2 keys in more than one row (id 3: 3 rows, id 1: 2 rows), 3 rows more than keys, and the task has duplicateKeys: 'fail' (extract[0].duplicateKeys): make the task's query return one row a key, the version you want: SELECT <its columns> FROM (SELECT …, row_number() OVER (PARTITION BY id ORDER BY <a column that orders versions> DESC) AS rn FROM …) WHERE rn = 1; the table public.strict_status was left as it was",
    );
    expect(await h.rows('SELECT id::int AS id, status FROM strict_status ORDER BY id')).toEqual(before);
    expect(
      await h.rows(
        `SELECT column_name FROM information_schema.columns WHERE table_name = 'strict_status' ORDER BY ordinal_position`,
      ),
    ).toEqual([{ column_name: 'id' }, { column_name: 'status' }]);
    // No staging table left behind.
    expect(
      await h.rows(`SELECT relname FROM pg_class WHERE relname LIKE '%strict_status%' ORDER BY relname`),
    ).toEqual([{ relname: 'strict_status' }, { relname: 'strict_status_pkey' }]);

    // The query fixed as the message says: loads.
    const fixed = await extract({
      ...task,
      query:
        'SELECT id, status FROM (SELECT id, status, row_number() OVER (PARTITION BY id ORDER BY version DESC) AS rn FROM events) WHERE rn = 1',
    });
    expect(fixed.error).toBeUndefined();
    expect(fixed.output).not.toHaveProperty('duplicateKeys');
    expect(await h.rows('SELECT id::int AS id, status FROM strict_status ORDER BY id')).toEqual([
      { id: 1, status: 'paid' },
      { id: 2, status: 'new' },
      { id: 3, status: 'shipped' },
    ]);
  });
});
