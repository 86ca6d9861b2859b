/**
 * The AWS SDK clients' time limits (lambdas/shared/aws-timeouts.ts) and the Athena connector's
 * idle limit on the result file, against the Athena emulator with the real clients over HTTP: a
 * hung Athena call, a hung S3 GetObject and a read that stops mid-file end in a TransientError
 * naming the call; a reader that pauses is not cut. The production options with a 300 ms
 * `requestTimeout`; no assertion on how long anything took (shared machine).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { AthenaClient } from '@aws-sdk/client-athena';
import { S3Client } from '@aws-sdk/client-s3';
import {
  athenaClientConfig,
  s3ClientConfig,
  startAthenaEmulator,
  type AthenaEmulator,
} from '../../../emulators/athena';
import {
  clientRequestTokenFor,
  createAthenaConnector,
  type AthenaConnector,
} from '../../../lambdas/connectors/athena';
import { AWS_API_TIMEOUTS, S3_TIMEOUTS } from '../../../lambdas/shared/aws-timeouts';
import { TransientError } from '../../../lambdas/shared/errors';
import { createMemoryLogger } from '../../../lambdas/shared/logging';
import { caught } from '../../support/caught';

const ROWS = 20_000;
const HUNG_MS = 3_000;
const fastPolls = { pollDelays: () => 0.01 };

async function byteCount(stream: Readable, pauseMs = 0): Promise<number> {
  let bytes = 0;
  let chunks = 0;
  for await (const chunk of stream) {
    bytes += (chunk as Buffer).length;
    chunks += 1;
    // A slow consumer (COPY catching up): the first few chunks each wait three limits.
    if (pauseMs > 0 && chunks <= 4) await new Promise((resolve) => setTimeout(resolve, pauseMs));
  }
  return bytes;
}

describe('AWS SDK and Athena connector time limits', () => {
  let emu: AthenaEmulator;
  let dataDir: string;
  let athena: AthenaClient;
  let s3: S3Client;
  let outputLocation: string;
  let fileBytes: number;

  const connector = (options: { s3ReadAttempts?: number } = {}): AthenaConnector =>
    createAthenaConnector({
      athena,
      s3,
      logger: createMemoryLogger(),
      workgroup: 'roundtrip',
      database: 'marketing',
      s3IdleMs: 300,
      ...options,
    });

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'athena-timeouts-'));
    await mkdir(path.join(dataDir, 'marketing'));
    const rows = Array.from({ length: ROWS }, (_, i) => `c${i}@x.test,${i}.5,"note ${i}"`).join('\n');
    await writeFile(path.join(dataDir, 'marketing', 'customers.csv'), `email,value,note\n${rows}\n`);
    emu = await startAthenaEmulator({
      dataDir,
      workgroups: { roundtrip: { outputLocation: 's3://results-bucket/athena/' } },
    });
    // The production options, with a short wait for an answer; one attempt each (the SDK's own
    // retries would only repeat the wait).
    athena = new AthenaClient({
      ...athenaClientConfig(emu),
      maxAttempts: 1,
      requestHandler: { ...AWS_API_TIMEOUTS, requestTimeout: 300 },
    });
    s3 = new S3Client({
      ...s3ClientConfig(emu),
      maxAttempts: 1,
      requestHandler: { ...S3_TIMEOUTS, requestTimeout: 300 },
    });
    // The result file the tests read, made with the production limits: with 300 ms, a machine busy
    // enough to keep the emulator's answer to a poll past it failed every test here in setup.
    const setupAthena = new AthenaClient({ ...athenaClientConfig(emu), requestHandler: AWS_API_TIMEOUTS });
    const setupS3 = new S3Client({ ...s3ClientConfig(emu), requestHandler: S3_TIMEOUTS });
    const c = createAthenaConnector({
      athena: setupAthena,
      s3: setupS3,
      logger: createMemoryLogger(),
      workgroup: 'roundtrip',
      database: 'marketing',
    });
    const id = await c.startQuery('SELECT * FROM customers', {
      clientRequestToken: clientRequestTokenFor('timeouts', 'customers'),
    });
    const result = await c.describeResult(await c.waitForQuery(id, fastPolls));
    outputLocation = result.outputLocation;
    fileBytes = await byteCount(c.streamResultFile(outputLocation));
    setupAthena.destroy();
    setupS3.destroy();
  });

  afterAll(async () => {
    athena?.destroy();
    s3?.destroy();
    await emu?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  afterEach(() => {
    Object.assign(emu.faults, { athenaLatencyMs: 0, s3LatencyMs: 0, s3StallAfterBytes: undefined });
  });

  it('ends an Athena call that gets no answer in a TransientError naming it', async () => {
    emu.faults.athenaLatencyMs = HUNG_MS;
    const err = await caught(
      connector().startQuery('SELECT 1', { clientRequestToken: clientRequestTokenFor('timeouts', 'hung') }),
    );
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toMatch(/^Athena StartQueryExecution failed: TimeoutError: .*300 ms requestTimeout/);
  });

  it('ends an S3 GetObject that gets no answer in a TransientError naming it, after its attempts', async () => {
    emu.faults.s3LatencyMs = HUNG_MS;
    const err = await caught(byteCount(connector().streamResultFile(outputLocation)));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toMatch(
      new RegExp(`^S3 GetObject ${outputLocation} failed: TimeoutError: .*300 ms requestTimeout`),
    );
  });

  it('ends a result file read that stops mid-file in a TransientError naming it', async () => {
    // The first read stops at byte 1,000; the read resumed there (a Range) stalls at once.
    emu.faults.s3StallAfterBytes = 1_000;
    const err = await caught(byteCount(connector({ s3ReadAttempts: 1 }).streamResultFile(outputLocation)));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toBe(
      `S3 GetObject ${outputLocation} failed: the read stopped: no byte for 0.3 s (the connector's time limit)`,
    );
  });

  it('does not count the time a reader pauses, nor cut a long read once its answer began', async () => {
    expect(fileBytes).toBeGreaterThan(4 * 65_536);
    expect(await byteCount(connector({ s3ReadAttempts: 1 }).streamResultFile(outputLocation), 900)).toBe(
      fileBytes,
    );
  });
});
