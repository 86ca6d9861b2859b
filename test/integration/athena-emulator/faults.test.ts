import { AthenaClient, GetQueryExecutionCommand, StartQueryExecutionCommand } from '@aws-sdk/client-athena';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { athenaClientConfig, s3ClientConfig } from '../../../emulators/athena';
import { rejection, runQuery, s3Address, startHarness, waitForQuery, type Harness } from './helpers';

jest.setTimeout(60_000);

const TABLE =
  ['"n","pad"', ...Array.from({ length: 2000 }, (_, i) => `"${i}","${'x'.repeat(50)}"`)].join('\n') + '\n';

describe('Athena emulator faults', () => {
  let h: Harness;
  let address: { Bucket: string; Key: string };

  beforeAll(async () => {
    h = await startHarness({ 'd/t.csv': TABLE }, { queryDelaysMs: { queued: 0, running: 0 } });
    const { execution } = await runQuery(h.athena, {
      QueryString: 'SELECT * FROM t',
      QueryExecutionContext: { Database: 'd' },
    });
    address = s3Address(execution.ResultConfiguration?.OutputLocation);
  });
  afterEach(() => {
    Object.assign(h.emulator.faults, {
      throttle: 0,
      tooManyQueries: 0,
      failQueryAfterRunning: false,
      failNextQueries: 0,
      s3LatencyMs: 0,
      s3FailAfterBytes: undefined,
      s3Fail: undefined,
    });
  });
  afterAll(() => h.close());

  describe('throttle', () => {
    it('answers ThrottlingException (Rate exceeded), which the SDK retries to success', async () => {
      const athena = new AthenaClient({ ...athenaClientConfig(h.emulator), maxAttempts: 3 });
      h.emulator.faults.throttle = 1;
      const before = h.emulator.calls.length;
      const { QueryExecutionId } = await athena.send(
        new StartQueryExecutionCommand({ QueryString: 'SELECT 1' }),
      );
      expect(QueryExecutionId).toEqual(expect.any(String));
      expect(h.emulator.calls.slice(before).map((c) => [c.operation, c.status])).toEqual([
        ['StartQueryExecution', 400],
        ['StartQueryExecution', 200],
      ]);
      expect(h.emulator.faults.throttle).toBe(0);
      // Its query runs on in the emulator: let it end, or a later test's failNextQueries could
      // count it (a busy machine keeps it running that long).
      await waitForQuery(athena, QueryExecutionId as string);
      athena.destroy();
    });

    it('throttles any operation as the rate quota does, surfacing ThrottlingException once the retries run out', async () => {
      const athena = new AthenaClient({ ...athenaClientConfig(h.emulator), maxAttempts: 2 });
      h.emulator.faults.throttle = 5;
      const err = await rejection(athena.send(new GetQueryExecutionCommand({ QueryExecutionId: 'x' })));
      expect(err.name).toBe('ThrottlingException');
      expect(err.message).toBe('Rate exceeded');
      expect((err.$metadata as { httpStatusCode?: number }).httpStatusCode).toBe(400);
      expect(h.emulator.faults.throttle).toBe(3);
      athena.destroy();
    });
  });

  describe('tooManyQueries', () => {
    it('refuses StartQueryExecution only, with TooManyRequestsException and its Reason, as the active-query quota does', async () => {
      const athena = new AthenaClient({ ...athenaClientConfig(h.emulator), maxAttempts: 1 });
      h.emulator.faults.tooManyQueries = 2;
      const err = await rejection(athena.send(new StartQueryExecutionCommand({ QueryString: 'SELECT 1' })));
      expect(err.name).toBe('TooManyRequestsException');
      expect(err.Reason).toBe('CONCURRENT_QUERY_LIMIT_EXCEEDED');
      expect(err.message).toMatch(
        /^You have exceeded the limit for the number of queries you can run concurrently/,
      );
      // Another operation is answered meanwhile.
      const other = await rejection(athena.send(new GetQueryExecutionCommand({ QueryExecutionId: 'x' })));
      expect(other.name).toBe('InvalidRequestException');
      expect(h.emulator.faults.tooManyQueries).toBe(1);
      athena.destroy();
    });
  });

  it('fails the next n queries after they ran, then runs queries again', async () => {
    h.emulator.faults.failNextQueries = 2;
    const states: string[] = [];
    for (const n of [1, 2, 3]) {
      const { execution } = await runQuery(h.athena, { QueryString: `SELECT ${n}` });
      states.push(`${execution.Status?.State} ${execution.Status?.AthenaError?.Retryable ?? ''}`.trim());
    }
    expect(states).toEqual(['FAILED true', 'FAILED true', 'SUCCEEDED']);
    expect(h.emulator.faults.failNextQueries).toBe(0);
  });

  it('fails a matching query after it ran, leaving other queries alone', async () => {
    const slow = await startHarness({ 'd/t.csv': TABLE }, { queryDelaysMs: { queued: 300, running: 300 } });
    try {
      slow.emulator.faults.failQueryAfterRunning = 'from t';
      const failed = await runQuery(slow.athena, {
        QueryString: 'SELECT count(*) from t',
        QueryExecutionContext: { Database: 'd' },
      });
      expect(failed.states).toEqual(['QUEUED', 'RUNNING', 'FAILED']);
      expect(failed.execution.Status?.StateChangeReason).toMatch(/^GENERIC_INTERNAL_ERROR: /);
      expect(failed.execution.Status?.AthenaError).toMatchObject({ ErrorCategory: 1, Retryable: true });
      const other = await runQuery(slow.athena, { QueryString: 'SELECT 1' });
      expect(other.execution.Status?.State).toBe('SUCCEEDED');
      slow.emulator.faults.failQueryAfterRunning = true;
      const any = await runQuery(slow.athena, { QueryString: 'SELECT 2' });
      expect(any.execution.Status?.State).toBe('FAILED');
    } finally {
      await slow.close();
    }
  });

  it('delays S3 responses: a client with a shorter timeout gives up, a patient one gets the file', async () => {
    h.emulator.faults.s3LatencyMs = 1500;
    // A caller that waits 100 ms gives up (what a Lambda near its deadline sees).
    const err = await rejection(
      h.s3.send(new GetObjectCommand(address), { abortSignal: AbortSignal.timeout(100) }),
    );
    expect(err.name).toBe('AbortError');
    h.emulator.faults.s3LatencyMs = 50;
    const object = await h.s3.send(new GetObjectCommand(address));
    expect(await object.Body?.transformToString()).toBe((await readAll()).toString());
  });

  it('drops the connection mid-body after s3FailAfterBytes', async () => {
    h.emulator.faults.s3FailAfterBytes = 1000;
    const object = await h.s3.send(new GetObjectCommand(address));
    expect(object.ContentLength).toBeGreaterThan(1000);
    await expect(object.Body?.transformToString()).rejects.toThrow();
  });

  it('answers every S3 request with the s3Fail status: the SDK retries 503 SlowDown, then surfaces it', async () => {
    h.emulator.faults.s3Fail = 503;
    const s3 = new S3Client({ ...s3ClientConfig(h.emulator), maxAttempts: 2 });
    const before = h.emulator.calls.length;
    const err = await rejection(s3.send(new GetObjectCommand(address)));
    expect(err.name).toBe('SlowDown');
    expect(h.emulator.calls.slice(before).map((c) => [c.operation, c.status])).toEqual([
      ['GetObject', 503],
      ['GetObject', 503],
    ]);
    h.emulator.faults.s3Fail = 403;
    const denied = await rejection(s3.send(new GetObjectCommand(address)));
    expect(denied.name).toBe('AccessDenied');
    s3.destroy();
  });

  async function readAll(): Promise<Buffer> {
    const saved = { ...h.emulator.faults };
    Object.assign(h.emulator.faults, { s3LatencyMs: 0 });
    try {
      const object = await h.s3.send(new GetObjectCommand(address));
      return Buffer.from((await object.Body?.transformToByteArray()) ?? []);
    } finally {
      Object.assign(h.emulator.faults, saved);
    }
  }
});
