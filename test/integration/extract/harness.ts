/**
 * Shared set-up of the extract integration tests: the Salesforce emulator (with canary
 * credentials), the Athena emulator over a data dir, a fresh PostgreSQL database, the real
 * connectors (jsforce, the AWS SDK) pointed at them, and the core deps.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AthenaClient } from '@aws-sdk/client-athena';
import { S3Client } from '@aws-sdk/client-s3';
import {
  athenaClientConfig,
  s3ClientConfig,
  startAthenaEmulator,
  type AthenaEmulator,
} from '../../../emulators/athena';
import {
  startSalesforceEmulator,
  type SalesforceEmulator,
  type SeedData,
} from '../../../emulators/salesforce';
import { parseConfig, type PipelineConfig } from '../../../lambdas/config';
import type { ExtractTaskInput, PipelineConfigInput } from '../../../lambdas/config';
import { createAthenaConnector, type AthenaConnector } from '../../../lambdas/connectors/athena';
import { createPool, type PostgresPool } from '../../../lambdas/connectors/postgres';
import { connectSalesforce, type SalesforceConnector } from '../../../lambdas/connectors/salesforce';
import type { CoreDeps } from '../../../lambdas/core';
import { acceleratedClock } from '../../../lambdas/shared/clock';
import { createMemoryLogger, type LogRecord, type Logger } from '../../../lambdas/shared/logging';
import { createTestDatabase, type TestDatabase } from '../../support/database';

/** Credentials that must never appear in a log line, an error or a run summary. */
export const CANARY = {
  password: 'Canary-Pw-extract-5d1e',
  securityToken: 'CanaryTok-extract-90ab77f2',
} as const;

/** Where the Athena emulator writes results. */
export const ATHENA_OUTPUT = 's3://extract-results/roundtrip/';

export interface ExtractHarness {
  readonly sf: SalesforceEmulator;
  readonly athenaEmulator: AthenaEmulator;
  readonly db: TestDatabase;
  readonly pool: PostgresPool;
  readonly logger: Logger & { records: LogRecord[] };
  readonly dataDir: string;
  /** Core deps over `config`; each call signs in a new Salesforce connector (a new "cold start"). */
  deps(config: PipelineConfig, options?: { salesforce?: SalesforceConnector }): CoreDeps;
  /** A signed-in connector with the canary secret. */
  connect(): Promise<SalesforceConnector>;
  /** A config with these extract tasks (defaults for the rest). */
  config(extract: ExtractTaskInput[], extra?: Partial<PipelineConfigInput>): PipelineConfig;
  /** Every SQL query result row as objects. */
  rows<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  readonly seed?: SeedData;
  /** Files of the Athena data dir: `{ 'marketing/customers.csv': '…' }`. */
  readonly athenaFiles?: Record<string, string>;
  /** The Salesforce emulator's clock (SystemModstamp, Bulk job dates, the Date header). @default the system clock */
  readonly salesforceClock?: () => Date;
  /** How long the Athena emulator keeps a query QUEUED, and at least RUNNING. @default none */
  readonly athenaQueryDelaysMs?: { readonly queued?: number; readonly running?: number };
}

export async function startExtractHarness(options: HarnessOptions = {}): Promise<ExtractHarness> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'extract-athena-data-'));
  await mkdir(path.join(dataDir, 'marketing'), { recursive: true });
  for (const [name, content] of Object.entries(options.athenaFiles ?? {})) {
    await mkdir(path.dirname(path.join(dataDir, name)), { recursive: true });
    await writeFile(path.join(dataDir, name), content);
  }
  const sf = await startSalesforceEmulator({
    ...(options.seed ? { seed: options.seed } : {}),
    ...(options.salesforceClock ? { clock: options.salesforceClock } : {}),
    credentials: { password: CANARY.password, securityToken: CANARY.securityToken },
  });
  const athenaEmulator = await startAthenaEmulator({
    dataDir,
    ...(options.athenaQueryDelaysMs ? { queryDelaysMs: options.athenaQueryDelaysMs } : {}),
  });
  const athenaClient = new AthenaClient({ ...athenaClientConfig(athenaEmulator), maxAttempts: 1 });
  const s3Client = new S3Client({ ...s3ClientConfig(athenaEmulator), maxAttempts: 1 });
  const db = await createTestDatabase('rt_extract');
  const pool = createPool({ url: db.url }, { ssl: { mode: 'disable' }, max: 4 });
  const logger = createMemoryLogger('debug');
  const connectors: SalesforceConnector[] = [];

  const connect = async (): Promise<SalesforceConnector> => {
    const connector = await connectTo(sf, logger, { secretName: 'roundtrip/salesforce' });
    connectors.push(connector);
    return connector;
  };

  const athena = (config: PipelineConfig): AthenaConnector =>
    createAthenaConnector({
      athena: athenaClient,
      s3: s3Client,
      logger,
      workgroup: config.athena?.workgroup ?? 'primary',
      database: config.athena?.database ?? 'marketing',
      outputLocation: ATHENA_OUTPUT,
    });

  return {
    sf,
    athenaEmulator,
    db,
    pool,
    logger,
    dataDir,
    connect,
    deps(config, opts = {}) {
      let signedIn: Promise<SalesforceConnector> | undefined;
      return {
        config,
        pg: pool,
        salesforce: opts.salesforce ?? (() => (signedIn ??= connect())),
        athena: athena(config),
        logger,
        // The waits of the poll loops, a hundred times shorter.
        clock: acceleratedClock(0.01),
      };
    },
    config(extract, extra = {}) {
      return parseConfig({
        name: 'extract-test',
        salesforce: { secret: 'roundtrip/salesforce', apiVersion: '62.0' },
        athena: { database: 'marketing', outputLocation: ATHENA_OUTPUT },
        postgres: { secret: 'roundtrip/postgres', schema: 'public', ssl: { mode: 'disable' } },
        extract,
        ...extra,
      });
    },
    async rows<T>(sql: string, params: unknown[] = []) {
      return (await pool.query(sql, params)).rows as T[];
    },
    async close() {
      await pool.end();
      await db.drop();
      athenaClient.destroy();
      s3Client.destroy();
      await athenaEmulator.stop();
      await sf.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A Lead field list most tests use. */
export const LEAD_FIELDS = [
  'Id',
  'FirstName',
  'LastName',
  'Company',
  'Email',
  'AnnualRevenue',
  'NumberOfEmployees',
  'LeadScore__c',
  'CreatedDate',
  'SystemModstamp',
  'IsDeleted',
];

/** `n` ordinary leads, last modified one second apart from 2024-01-01T00:00:00Z on. */
export function leads(n: number, prefix = 'Lead'): Record<string, unknown>[] {
  const base = Date.UTC(2024, 0, 1);
  return Array.from({ length: n }, (_, i) => ({
    SystemModstamp: new Date(base + i * 1000).toISOString(),
    FirstName: `F${i}`,
    LastName: `${prefix} ${i}`,
    Company: `Company ${i % 13}`,
    Email: `${prefix.toLowerCase().replace(/\W/g, '')}${i}@example.test`,
    NumberOfEmployees: i,
  }));
}

/**
 * A connector signed in to `emulator` (started with the {@link CANARY} credentials): for a test
 * that runs an extract against a second emulator, one whose describes differ, say, or whose calls
 * go through a `fetch` of its own (one that watches or breaks them).
 */
export function connectTo(
  emulator: SalesforceEmulator,
  logger: Logger,
  options: { fetch?: typeof fetch; secretName?: string } = {},
): Promise<SalesforceConnector> {
  return connectSalesforce({
    secret: {
      loginUrl: emulator.loginUrl,
      username: emulator.credentials.username,
      password: CANARY.password,
      securityToken: CANARY.securityToken,
    },
    apiVersion: emulator.apiVersion,
    logger,
    ...options,
  });
}
