/**
 * `roundtrip validate` of Athena extract tasks against the Athena emulator and a real PostgreSQL:
 * what the load would refuse about a query's result is refused by validate, before a run.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startAthenaEmulator, type AthenaEmulator } from '../../../emulators/athena';
import { cli } from '../../support/cli';
import { createTestDatabase, type TestDatabase } from '../../support/database';

const CUSTOMERS = ['id,email,name', '1,ada@example.com,Ada', '2,grace@example.com,Grace'].join('\n');
const ORDERS = ['id,customer_id,total', '10,1,5.5', '11,2,7.25'].join('\n');

describe('roundtrip validate of Athena extract tasks', () => {
  let db: TestDatabase;
  let athena: AthenaEmulator;
  let dir: string;
  let secretsFile: string;
  let configs = 0;

  beforeAll(async () => {
    db = await createTestDatabase('rt_validate_athena');
    dir = await mkdtemp(path.join(os.tmpdir(), 'roundtrip-validate-athena-'));
    const data = path.join(dir, 'data');
    await mkdir(path.join(data, 'marketing'), { recursive: true });
    await writeFile(path.join(data, 'marketing', 'customers.csv'), CUSTOMERS);
    await writeFile(path.join(data, 'marketing', 'orders.csv'), ORDERS);
    athena = await startAthenaEmulator({ dataDir: data });
    secretsFile = path.join(dir, 'secrets.json');
    await writeFile(secretsFile, JSON.stringify({ 'roundtrip/postgres': { url: db.url } }));
  });
  afterAll(async () => {
    await athena?.stop();
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  /** The line validate writes for the pipeline's one Athena extract task (`extract[0]`), and its exit code. */
  const validateTask = async (task: {
    query: string;
    key?: string[];
  }): Promise<{ code: number; line: string }> => {
    configs += 1;
    const file = path.join(dir, `pipeline-${configs}.config.json`);
    await writeFile(
      file,
      JSON.stringify({
        name: 'validate-athena',
        athena: { database: 'marketing', outputLocation: 's3://roundtrip-athena-results/validate/' },
        postgres: { secret: 'roundtrip/postgres', schema: 'public', ssl: { mode: 'disable' } },
        extract: [{ from: 'athena', table: 'customers', ...task }],
        transform: [],
        writeback: [],
      }),
    );
    const result = await cli([
      'validate',
      '--config',
      file,
      '--secrets',
      secretsFile,
      '--aws-endpoint',
      athena.endpoint,
    ]);
    const line = result.stdout.split('\n').find((l) => / extract customers: /.test(l));
    if (line === undefined)
      throw new Error(`validate wrote no line for the task:\n${result.stdout}${result.stderr}`);
    return { code: result.code, line };
  };

  /** The line of a task whose query and key the load takes: two result columns, keyed by id. */
  const checked =
    '✓ extract customers: query valid in marketing (EXPLAIN (TYPE VALIDATE): nothing scanned, not charged); 2 result columns a table takes as named (read with LIMIT 0: no row read); key "id" in its result';

  it('checks the key of a query that ends in a semicolon, a comment or blank lines exactly as the query without them', async () => {
    const plain = 'SELECT id, email FROM customers';
    for (const ending of [
      ';',
      '; -- the customers',
      ' -- the customers\n;',
      ';\n\n  \n',
      '; /* the customers */',
      ' /* a */ ; -- b\n',
    ]) {
      expect(await validateTask({ query: `${plain}${ending}`, key: ['id'] })).toEqual({
        code: 0,
        line: checked,
      });
    }
    // A `--` or `/*` inside a string literal is the query's text, not a comment.
    const literal = "SELECT id, email FROM customers WHERE name <> 'x -- y' AND name <> '/* z'; -- note";
    expect(await validateTask({ query: literal, key: ['id'] })).toEqual({ code: 0, line: checked });
    // And a key the result lacks is refused as it is for the query without the comment.
    const wrong = await validateTask({ query: `${plain}; -- the customers`, key: ['customer_id'] });
    expect(wrong.code).toBe(1);
    expect(wrong.line).toMatch(
      /^✗ extract customers: key column "customer_id" \(extract\[0\]\.key\) is not in/,
    );
  });

  it("refuses a key that differs from the result's column in case only, as the load does, naming the column's spelling", async () => {
    const fix =
      ": name columns of the result in the key, or give the column that name with AS in the task's query";
    const caseOnly = "(the table's columns are named as the result's, case and all, and the key names them)";
    expect(await validateTask({ query: 'SELECT id, email FROM customers', key: ['ID'] })).toEqual({
      code: 1,
      line: `✗ extract customers: key column "ID" (extract[0].key) is not in the query's result (columns: id, email); did you mean "id" for "ID"? ${caseOnly}${fix}`,
    });
    // Athena names a column as the query writes it: SELECT ID answers "ID", which a key "id" is not.
    expect(await validateTask({ query: 'SELECT ID, email FROM customers', key: ['id'] })).toEqual({
      code: 1,
      line: `✗ extract customers: key column "id" (extract[0].key) is not in the query's result (columns: ID, email); did you mean "ID" for "id"? ${caseOnly}${fix}`,
    });
  });

  it('refuses result columns named twice or past 63 bytes, as the load does, naming the query and the fix', async () => {
    const fix =
      "Give each column of the result its own name of at most 63 bytes with AS in the task's query (SELECT o.id AS order_id, …)";
    // A task without a key is checked too: the load refuses such a result all the same.
    expect(
      await validateTask({
        query: 'SELECT o.id, c.id, c.email FROM orders o JOIN customers c ON c.id = o.customer_id',
      }),
    ).toEqual({
      code: 1,
      line: `✗ extract customers: the query's result columns (extract[0].query) cannot be the columns of public.customers as named: "id" 2 times (columns 1 and 2). ${fix}`,
    });
    const long = `customer_${'lifetime_'.repeat(6)}value`;
    expect(
      await validateTask({
        query: `SELECT id, email AS ${long}, name AS ${long}_2 FROM customers`,
        key: ['id'],
      }),
    ).toEqual({
      code: 1,
      line: `✗ extract customers: the query's result columns (extract[0].query) cannot be the columns of public.customers as named: "${long}" has 68 bytes (PostgreSQL keeps 63 of a name and cuts the rest); "${long}_2" has 70 bytes (PostgreSQL keeps 63 of a name and cuts the rest). ${fix}`,
    });
    // Aliased, the same query passes.
    expect(
      await validateTask({
        query:
          'SELECT o.id AS order_id, c.id, c.email FROM orders o JOIN customers c ON c.id = o.customer_id',
      }),
    ).toEqual({
      code: 0,
      line: '✓ extract customers: query valid in marketing (EXPLAIN (TYPE VALIDATE): nothing scanned, not charged); 3 result columns a table takes as named (read with LIMIT 0: no row read)',
    });
  });
});
