/**
 * The demo's world on one laptop: PostgreSQL (embedded, or the one `postgresUrl` names), the
 * Salesforce emulator seeded with the generated leads, the Athena emulator over a data folder
 * holding the generated customers as `marketing/customers.csv`, and the secrets that point the
 * pipeline at them — under the very names the pipeline config uses in AWS.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startAthenaEmulator, type AthenaEmulator } from '../../emulators/athena';
import { startEmbeddedPostgres } from '../../emulators/postgres/embedded';
import {
  startSalesforceEmulator,
  type SalesforceEmulator,
  type SalesforceFaults,
} from '../../emulators/salesforce';
import {
  DEMO_DEFAULTS,
  generateDemoData,
  writeCustomersCsv,
  type DemoCustomer,
  type DemoLead,
} from '../../examples/lead-scoring/generate';
import type { PipelineConfig } from '../../lambdas/config';
import {
  createLocalSecretsProvider,
  secretEnvName,
  type SecretsProvider,
} from '../../lambdas/shared/secrets';
import type { LocalAwsEndpoint } from './deps';

/** The Athena database and table the example pipeline queries. */
export const DEMO_ATHENA_DATABASE = 'marketing';
export const DEMO_ATHENA_TABLE = 'customers';

/** Options of {@link startDemoEnvironment}. */
export interface DemoEnvironmentOptions {
  /** The pipeline config: its secret names, Athena database and workgroup are honoured. */
  readonly config: PipelineConfig;
  /** @default DEMO_DEFAULTS.leads (10,000) */
  readonly leads?: number;
  /** @default DEMO_DEFAULTS.customers (5,000) */
  readonly customers?: number;
  /** @default DEMO_DEFAULTS.seed */
  readonly seed?: number;
  /** Use this database instead of starting an embedded PostgreSQL server. */
  readonly postgresUrl?: string;
  /** Faults of the Salesforce emulator from the start. */
  readonly salesforceFaults?: SalesforceFaults;
  /** Receives progress lines ("starting PostgreSQL …"). */
  readonly onProgress?: (line: string) => void;
}

/** A running demo world; {@link DemoEnvironment.stop} tears everything down. */
export interface DemoEnvironment {
  readonly salesforce: SalesforceEmulator;
  readonly athena: AthenaEmulator;
  /** Where the Athena emulator reads its tables. */
  readonly athenaDataDir: string;
  readonly postgresUrl: string;
  /** Whether PostgreSQL was started here (embedded) rather than given. */
  readonly embeddedPostgres: boolean;
  /** The Athena/S3 endpoint the clients must use. */
  readonly aws: LocalAwsEndpoint;
  /** Secrets under the config's names: the emulator's credentials and the database URL. */
  readonly secrets: SecretsProvider;
  /** The same secrets as `ROUNDTRIP_SECRET_<NAME>` variables (for a child process). */
  readonly secretsEnv: Readonly<Record<string, string>>;
  /** The generated data, and the emulator's Id of each lead (same order). */
  readonly leads: readonly DemoLead[];
  readonly leadIds: readonly string[];
  customers: readonly DemoCustomer[];
  /** Replaces the Athena table's rows (the next run's extract reads them). */
  writeCustomers(customers: readonly DemoCustomer[]): Promise<void>;
  stop(): Promise<void>;
}

/** Starts the demo world; see the module comment. */
export async function startDemoEnvironment(options: DemoEnvironmentOptions): Promise<DemoEnvironment> {
  const progress = options.onProgress ?? (() => undefined);
  const { config } = options;
  if (!config.salesforce || !config.athena) {
    throw new Error(
      `The demo needs a pipeline with both "salesforce" and "athena" (pipeline ${config.name})`,
    );
  }
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async (): Promise<void> => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  };
  try {
    // The generator keeps lead e-mails valid for Salesforce (no surrounding spaces); the
    // customers' side carries the case and space variants that the scoring SQL normalises.
    const data = generateDemoData({
      leads: options.leads ?? DEMO_DEFAULTS.leads,
      customers: options.customers ?? DEMO_DEFAULTS.customers,
      seed: options.seed ?? DEMO_DEFAULTS.seed,
    });

    let postgresUrl = options.postgresUrl;
    if (!postgresUrl) {
      progress('starting PostgreSQL (embedded) …');
      const pg = await startEmbeddedPostgres();
      stops.push(() => pg.stop());
      postgresUrl = pg.url;
    }

    progress(`starting the Salesforce emulator with ${data.leads.length.toLocaleString('en-US')} leads …`);
    const salesforce = await startSalesforceEmulator({
      seed: { Lead: data.leads as unknown as Record<string, unknown>[] },
      ...(options.salesforceFaults ? { faults: options.salesforceFaults } : {}),
    });
    stops.push(() => salesforce.stop());
    const leadIds = [...salesforce.store.all('Lead')].map((r) => String(r.Id));

    const athenaDataDir = await mkdtemp(path.join(os.tmpdir(), 'roundtrip-demo-athena-'));
    stops.push(() => rm(athenaDataDir, { recursive: true, force: true }));
    const database = config.athena.database;
    await mkdir(path.join(athenaDataDir, database), { recursive: true });
    const customersFile = path.join(athenaDataDir, database, `${DEMO_ATHENA_TABLE}.csv`);
    await writeCustomersCsv(customersFile, data.customers);
    progress(
      `starting the Athena emulator with ${data.customers.length.toLocaleString('en-US')} customers …`,
    );
    const athena = await startAthenaEmulator({
      dataDir: athenaDataDir,
      workgroups: { [config.athena.workgroup]: {} },
    });
    stops.push(() => athena.stop());

    const secretValues: Record<string, unknown> = {
      [config.salesforce.secret]: {
        loginUrl: salesforce.loginUrl,
        username: salesforce.credentials.username,
        password: salesforce.credentials.password,
        securityToken: salesforce.credentials.securityToken,
      },
      [config.postgres.secret]: { url: postgresUrl },
    };
    const secretsEnv = Object.fromEntries(
      Object.entries(secretValues).map(([name, value]) => [secretEnvName(name), JSON.stringify(value)]),
    );

    const environment: DemoEnvironment = {
      salesforce,
      athena,
      athenaDataDir,
      postgresUrl,
      embeddedPostgres: options.postgresUrl === undefined,
      aws: { endpoint: athena.endpoint, region: athena.region, credentials: athena.credentials },
      secrets: createLocalSecretsProvider({ env: secretsEnv }),
      secretsEnv,
      leads: data.leads,
      leadIds,
      customers: data.customers,
      async writeCustomers(customers) {
        await writeCustomersCsv(customersFile, customers);
        environment.customers = customers;
      },
      stop: stopAll,
    };
    return environment;
  } catch (err) {
    await stopAll();
    throw err;
  }
}
