/** Shared set-up for the Athena emulator's integration tests: data dirs, clients, polling. */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  AthenaClient,
  GetQueryExecutionCommand,
  StartQueryExecutionCommand,
  type QueryExecution,
  type StartQueryExecutionCommandInput,
} from '@aws-sdk/client-athena';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  athenaClientConfig,
  s3ClientConfig,
  startAthenaEmulator,
  type AthenaEmulator,
  type AthenaEmulatorOptions,
} from '../../../emulators/athena';

/** Writes `{ 'marketing/customers.csv': '…' }` under a new temp dir. */
export async function makeDataDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'athena-emulator-data-'));
  for (const [name, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), content);
  }
  return dir;
}

/** An emulator over the given files plus SDK clients pointed at it. */
export interface Harness {
  readonly emulator: AthenaEmulator;
  readonly athena: AthenaClient;
  readonly s3: S3Client;
  readonly dataDir: string;
  close(): Promise<void>;
}

export async function startHarness(
  files: Record<string, string>,
  options: Omit<AthenaEmulatorOptions, 'dataDir'> = {},
  clientOptions: { maxAttempts?: number } = {},
): Promise<Harness> {
  const dataDir = await makeDataDir(files);
  const emulator = await startAthenaEmulator({
    workgroups: { primary: { outputLocation: 's3://query-results/athena/' } },
    ...options,
    dataDir,
  });
  const athena = new AthenaClient({ ...athenaClientConfig(emulator), ...clientOptions });
  const s3 = new S3Client({ ...s3ClientConfig(emulator), ...clientOptions });
  return {
    emulator,
    athena,
    s3,
    dataDir,
    close: async () => {
      athena.destroy();
      s3.destroy();
      await emulator.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

const FINAL_STATES = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);

/** Polls GetQueryExecution until the query is final; returns it and every state seen. */
export async function waitForQuery(
  athena: AthenaClient,
  id: string,
): Promise<{ execution: QueryExecution; states: string[] }> {
  const states: string[] = [];
  for (;;) {
    const { QueryExecution: execution } = await athena.send(
      new GetQueryExecutionCommand({ QueryExecutionId: id }),
    );
    const state = execution?.Status?.State ?? 'UNKNOWN';
    if (states.at(-1) !== state) states.push(state);
    if (execution && FINAL_STATES.has(state)) return { execution, states };
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Starts a query and waits for it. */
export async function runQuery(
  athena: AthenaClient,
  input: StartQueryExecutionCommandInput,
): Promise<{ id: string; execution: QueryExecution; states: string[] }> {
  const { QueryExecutionId: id } = await athena.send(new StartQueryExecutionCommand(input));
  if (!id) throw new Error('StartQueryExecution returned no QueryExecutionId');
  return { id, ...(await waitForQuery(athena, id)) };
}

/** Splits `s3://bucket/key` for GetObject. */
export function s3Address(location: string | undefined): { Bucket: string; Key: string } {
  const match = /^s3:\/\/([^/]+)\/(.+)$/.exec(location ?? '');
  if (!match?.[1] || !match[2]) throw new Error(`not an s3:// object location: ${String(location)}`);
  return { Bucket: match[1], Key: match[2] };
}

/** The whole result file of a query, as text. */
export async function resultFile(s3: S3Client, execution: QueryExecution): Promise<string> {
  const object = await s3.send(
    new GetObjectCommand(s3Address(execution.ResultConfiguration?.OutputLocation)),
  );
  if (!object.Body) throw new Error('GetObject returned no body');
  return object.Body.transformToString();
}

/** Asserts a promise rejects with an SDK error carrying these fields. */
export async function rejection(promise: Promise<unknown>): Promise<Record<string, unknown> & Error> {
  try {
    await promise;
  } catch (err) {
    return err as Record<string, unknown> & Error;
  }
  throw new Error('expected the call to fail, and it succeeded');
}
