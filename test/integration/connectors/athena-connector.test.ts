/**
 * The Athena connector against the Athena emulator with the real AWS SDK clients over HTTP, the
 * result file loaded into the real PostgreSQL with COPY.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { AthenaClient } from '@aws-sdk/client-athena';
import { S3Client } from '@aws-sdk/client-s3';
import { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import {
  athenaClientConfig,
  s3ClientConfig,
  startAthenaEmulator,
  type AthenaEmulator,
} from '../../../emulators/athena';
import {
  AthenaQueryFailed,
  clientRequestTokenFor,
  createAthenaConnector,
  type AthenaConnector,
} from '../../../lambdas/connectors/athena';
import { TerminalError, TransientError } from '../../../lambdas/shared/errors';
import { createMemoryLogger } from '../../../lambdas/shared/logging';
import { createTestDatabase, type TestDatabase } from '../../support/database';

// Athena's own dialect: header, NULL = empty unquoted, "" = empty string.
const CUSTOMERS =
  'email,lifetime_value,last_order_at,note\n' +
  'a@x.test,100.5,2024-01-02 03:04:05,"plain"\n' +
  'b@x.test,,2024-02-03 04:05:06,""\n' +
  'c@x.test,7,,"comma, ""quote""\nnewline 日本"\n';

/** The Athena operations of the emulator's call log (the others are S3's). */
const ATHENA_OPERATIONS = new Set([
  'StartQueryExecution',
  'GetQueryExecution',
  'GetQueryResults',
  'StopQueryExecution',
  'GetWorkGroup',
]);

describe('Athena connector against the emulator', () => {
  let emu: AthenaEmulator;
  let dataDir: string;
  let db: TestDatabase;
  let pg: Client;
  let athena: AthenaClient;
  let s3: S3Client;
  const logger = createMemoryLogger();
  let connector: AthenaConnector;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'athena-connector-'));
    await mkdir(path.join(dataDir, 'marketing'));
    await writeFile(path.join(dataDir, 'marketing', 'customers.csv'), CUSTOMERS);
    emu = await startAthenaEmulator({
      dataDir,
      workgroups: { roundtrip: { outputLocation: 's3://results-bucket/athena/' } },
    });
    // maxAttempts 1: the connector's classification is what is under test, not the SDK's retry.
    athena = new AthenaClient({ ...athenaClientConfig(emu), maxAttempts: 1 });
    s3 = new S3Client({ ...s3ClientConfig(emu), maxAttempts: 1 });
    connector = createAthenaConnector({ athena, s3, logger, workgroup: 'roundtrip', database: 'marketing' });
    db = await createTestDatabase();
    pg = new Client({ connectionString: db.url });
    await pg.connect();
  });

  afterAll(async () => {
    await pg?.end();
    await db?.drop();
    athena?.destroy();
    s3?.destroy();
    await emu?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  beforeEach(() => {
    Object.assign(emu.faults, {
      throttle: 0,
      failQueryAfterRunning: false,
      failNextQueries: 0,
      s3FailAfterBytes: undefined,
      s3Fail: undefined,
    });
  });

  const SQL = 'SELECT email, lifetime_value, last_order_at, note FROM customers ORDER BY email';
  const fastPolls = { pollDelays: () => 20 };

  async function loadInto(table: string, csv: NodeJS.ReadableStream): Promise<Record<string, unknown>[]> {
    await pg.query(`DROP TABLE IF EXISTS ${table}`);
    await pg.query(
      `CREATE TABLE ${table} (email text, lifetime_value double precision, last_order_at timestamp, note text)`,
    );
    await pipeline(csv, pg.query(copyFrom(`COPY ${table} FROM STDIN (FORMAT csv, HEADER true)`)));
    const { rows } = await pg.query<Record<string, unknown>>(
      `SELECT email, lifetime_value, to_char(last_order_at, 'YYYY-MM-DD HH24:MI:SS') AS at, note FROM ${table} ORDER BY email`,
    );
    return rows;
  }

  const EXPECTED = [
    { email: 'a@x.test', lifetime_value: 100.5, at: '2024-01-02 03:04:05', note: 'plain' },
    { email: 'b@x.test', lifetime_value: null, at: '2024-02-03 04:05:06', note: '' },
    { email: 'c@x.test', lifetime_value: 7, at: null, note: 'comma, "quote"\nnewline 日本' },
  ];

  it('runs a query, reads its columns in one call and streams the result file into COPY', async () => {
    const token = clientRequestTokenFor('run-1', 'athena_customers');
    const id = await connector.startQuery(SQL, { clientRequestToken: token });
    // A retried step with the same token gets the same execution, not a second query.
    expect(await connector.startQuery(SQL, { clientRequestToken: token })).toBe(id);
    const before = { api: connector.apiCalls, s3: connector.s3Reads, logged: emu.calls.length };
    const qe = await connector.waitForQuery(id, fastPolls);
    const result = await connector.describeResult(qe);
    expect(result.outputLocation).toBe(`s3://results-bucket/athena/${id}.csv`);
    expect(result.columns.map((c) => [c.Name, c.Type])).toEqual([
      ['email', 'varchar'],
      ['lifetime_value', 'double'],
      ['last_order_at', 'timestamp'],
      ['note', 'varchar'],
    ]);
    expect(await loadInto('athena_file', connector.streamResultFile(result.outputLocation))).toEqual(
      EXPECTED,
    );
    expect(connector.s3Reads - before.s3).toBe(1);
    // Polls (as many as the query took: more on a busy machine) + one GetQueryResults for the
    // columns, as the emulator saw them, and the connector counted each.
    const athenaCalls = emu.calls
      .slice(before.logged)
      .map((c) => c.operation)
      .filter((operation) => ATHENA_OPERATIONS.has(operation));
    const polls = athenaCalls.filter((operation) => operation === 'GetQueryExecution').length;
    expect(polls).toBeGreaterThanOrEqual(1);
    expect(athenaCalls).toEqual([
      ...Array.from({ length: polls }, () => 'GetQueryExecution'),
      'GetQueryResults',
    ]);
    expect(connector.apiCalls - before.api).toBe(polls + 1);
  });

  it('resumes the result file after a dropped connection, with a Range read', async () => {
    const id = await connector.startQuery(SQL, {
      clientRequestToken: clientRequestTokenFor('run-2', 'resume'),
    });
    const result = await connector.describeResult(await connector.waitForQuery(id, fastPolls));
    emu.faults.s3FailAfterBytes = 40;
    const reads = connector.s3Reads;
    const rows = await loadInto('athena_resumed', connector.streamResultFile(result.outputLocation));
    expect(rows).toEqual(EXPECTED);
    expect(connector.s3Reads - reads).toBeGreaterThanOrEqual(2);
  });

  it('pages GetQueryResults as the fallback and writes the same CSV', async () => {
    const id = await connector.startQuery(SQL, {
      clientRequestToken: clientRequestTokenFor('run-3', 'fallback'),
    });
    const result = await connector.describeResult(await connector.waitForQuery(id, fastPolls));
    expect(await loadInto('athena_api', connector.streamResultsViaApi(id, result.columns))).toEqual(EXPECTED);
  });

  it('reports a failed query as terminal with Athena’s reason', async () => {
    const id = await connector.startQuery('SELECT nope FROM customers', {
      clientRequestToken: clientRequestTokenFor('run-4', 'bad-column'),
    });
    const err = await connector.waitForQuery(id, fastPolls).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TerminalError);
    expect((err as Error).message).toMatch(new RegExp(`^Athena query ${id} failed: COLUMN_NOT_FOUND`));
  });

  it('reports a division by zero as a terminal failure with Athena’s reason, as Trino fails it', async () => {
    const id = await connector.startQuery(
      'SELECT email, count(*) / 0 AS ratio FROM customers GROUP BY email',
      {
        clientRequestToken: clientRequestTokenFor('run-4b', 'division-by-zero'),
      },
    );
    const err = await connector.waitForQuery(id, fastPolls).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AthenaQueryFailed);
    expect(err).toBeInstanceOf(TerminalError);
    expect((err as Error).message).toBe(`Athena query ${id} failed: DIVISION_BY_ZERO: Division by zero`);
  });

  it('rejects a malformed query at start, terminally', async () => {
    const err = await connector
      .startQuery('SELEC oops', { clientRequestToken: clientRequestTokenFor('run-5', 'syntax') })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TerminalError);
    expect((err as Error).message).toMatch(/StartQueryExecution failed: InvalidRequestException/);
  });

  it('validates a query with EXPLAIN (TYPE VALIDATE), its errors placed in the query as written', async () => {
    const calls = connector.apiCalls;
    await expect(connector.validateQuery(SQL, fastPolls)).resolves.toBeUndefined();
    expect(connector.apiCalls - calls).toBeGreaterThanOrEqual(2); // StartQueryExecution and a poll

    const column = await connector
      .validateQuery('SELECT email,\n  lifetime_valu FROM customers', fastPolls)
      .catch((e: unknown) => e);
    expect(column).toBeInstanceOf(AthenaQueryFailed);
    expect((column as Error).message).toMatch(
      /^Athena query \S+ failed: COLUMN_NOT_FOUND: line 2:3: Column 'lifetime_valu' cannot be resolved$/,
    );
    const table = await connector.validateQuery('SELECT * FROM custmers', fastPolls).catch((e: unknown) => e);
    expect((table as Error).message).toMatch(
      /failed: TABLE_NOT_FOUND: line 1:15: Table 'awsdatacatalog.marketing.custmers' does not exist$/,
    );
    const syntax = await connector.validateQuery('SELEC 1', fastPolls).catch((e: unknown) => e);
    expect(syntax).toBeInstanceOf(AthenaQueryFailed);
    expect((syntax as Error).message).toMatch(/MALFORMED_QUERY.*line 1:1: syntax error at or near "SELEC"/);

    // A call that fails is not the query's fault.
    emu.faults.throttle = 1;
    const throttled = await connector.validateQuery(SQL, fastPolls).catch((e: unknown) => e);
    expect(throttled).toBeInstanceOf(TransientError);
    const elsewhere = createAthenaConnector({ athena, s3, logger, workgroup: 'nope', database: 'marketing' });
    const refused = await elsewhere.validateQuery(SQL, fastPolls).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(TerminalError);
    expect(refused).not.toBeInstanceOf(AthenaQueryFailed);
    expect((refused as Error).message).toContain('WorkGroup nope is not found.');
  });

  it('maps throttling to a TransientError, and a retrying client rides it out', async () => {
    emu.faults.throttle = 1;
    const err = await connector
      .startQuery(SQL, { clientRequestToken: clientRequestTokenFor('run-6', 'throttled') })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect((err as Error).message).toMatch(/ThrottlingException.*Rate exceeded/);

    emu.faults.throttle = 1;
    const retrying = new AthenaClient({ ...athenaClientConfig(emu), maxAttempts: 3 });
    try {
      const c = createAthenaConnector({
        athena: retrying,
        s3,
        logger,
        workgroup: 'roundtrip',
        database: 'marketing',
      });
      const id = await c.startQuery(SQL, {
        clientRequestToken: clientRequestTokenFor('run-6', 'throttled-retry'),
      });
      expect((await c.waitForQuery(id, fastPolls)).Status?.State).toBe('SUCCEEDED');
    } finally {
      retrying.destroy();
    }
  });

  it('maps an S3 failure of the result file to transient (5xx) after its attempts', async () => {
    const id = await connector.startQuery(SQL, { clientRequestToken: clientRequestTokenFor('run-7', 's3') });
    const result = await connector.describeResult(await connector.waitForQuery(id, fastPolls));
    emu.faults.s3Fail = 503;
    const err = await connector
      .streamResultFile(result.outputLocation)
      .toArray()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect((err as Error).message).toMatch(/S3 GetObject s3:\/\/results-bucket/);
  });
});
