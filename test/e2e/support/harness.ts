/**
 * The e2e world: the example pipeline's config (with test-sized thresholds), the demo environment
 * (both emulators seeded from the generator) on a fresh database of the jest run's PostgreSQL,
 * laptop deps, and the pipeline run through the local state machine runner.
 */
import path from 'node:path';
import { loadConfig, type PipelineConfig } from '../../../lambdas/config';
import { acceleratedClock } from '../../../lambdas/shared/clock';
import { createMemoryLogger } from '../../../lambdas/shared/logging';
import { buildLocalDeps, type LocalDeps } from '../../../bin/local/deps';
import { startDemoEnvironment, type DemoEnvironment } from '../../../bin/local/environment';
import {
  runPipeline,
  type BoundDefinition,
  type PipelineRunOptions,
  type PipelineRunResult,
} from '../../../bin/local/pipeline';
import type { SalesforceEmulator, SalesforceFaults } from '../../../emulators/salesforce';
import type { RunInput } from '../../../lambdas/core/contracts';
import { createTestDatabase, type TestDatabase } from '../../support/database';
import { loadPipelineDefinition } from '../../../statemachine/local';

export const EXAMPLE_CONFIG = path.resolve(__dirname, '../../../examples/lead-scoring/roundtrip.config.ts');

/** The example config for a laptop: no TLS to the local server, and the given overrides of the write-back. */
export async function exampleConfig(
  writeback: { bulkThreshold?: number; maxFailureRate?: number } = {},
): Promise<PipelineConfig> {
  const config = await loadConfig(EXAMPLE_CONFIG);
  return {
    ...config,
    postgres: { ...config.postgres, ssl: { ...config.postgres.ssl, mode: 'disable' } },
    writeback: config.writeback.map((task) => ({ ...task, ...writeback })),
  };
}

export interface E2eWorld {
  readonly env: DemoEnvironment;
  readonly local: LocalDeps;
  readonly config: PipelineConfig;
  readonly definition: BoundDefinition;
  readonly logger: ReturnType<typeof createMemoryLogger>;
  /** The URL of the run's database. */
  readonly databaseUrl: string;
  run(
    input?: RunInput,
    options?: Pick<PipelineRunOptions, 'timeLeft' | 'onEvent'>,
  ): Promise<PipelineRunResult>;
  /** LeadScore__c of every generated lead in the emulator, in the generator's order. */
  scores(): (number | null)[];
  close(): Promise<void>;
}

export async function startWorld(options: {
  leads: number;
  customers: number;
  config: PipelineConfig;
  salesforceFaults?: SalesforceFaults;
  /** Settings given the test's database (`ALTER DATABASE … SET`) before anything connects to it. */
  databaseSettings?: Readonly<Record<string, string>>;
  /**
   * The URL the world connects to the test's database by, given its own (a proxy's that the test
   * cuts, say). @default the database's own
   */
  connectBy?: (databaseUrl: string) => Promise<string>;
}): Promise<E2eWorld> {
  const db: TestDatabase = await createTestDatabase('rt_e2e', options.databaseSettings);
  const env = await startDemoEnvironment({
    config: options.config,
    leads: options.leads,
    customers: options.customers,
    postgresUrl: options.connectBy ? await options.connectBy(db.url) : db.url,
    ...(options.salesforceFaults ? { salesforceFaults: options.salesforceFaults } : {}),
  });
  const logger = createMemoryLogger('info');
  const local = await buildLocalDeps({
    config: options.config,
    secrets: env.secrets,
    logger,
    aws: env.aws,
    // The poll loops inside the steps (Athena's, a Bulk job's) a hundred times shorter.
    clock: acceleratedClock(0.01),
  });
  const definition = await loadPipelineDefinition(options.config);
  return {
    env,
    local,
    config: options.config,
    definition,
    logger,
    databaseUrl: db.url,
    run: (input = {}, options = {}) =>
      runPipeline({ local, definition, input, waitMs: 20, retryMs: 20, ...options }),
    scores: () =>
      env.leadIds.map((id) => {
        const value = env.salesforce.store.get(id)?.LeadScore__c;
        return typeof value === 'number' ? value : null;
      }),
    async close() {
      await local.close();
      await env.stop();
      await db.drop();
    },
  };
}

/**
 * The integration user's password changed in Salesforce while the secret keeps the old one, and
 * its sessions ended: the next call signs in again and is refused. Answers the number of sign-ins
 * made before, for counting the refused ones after ({@link signInsSince}).
 */
export function refuseSignIns(sf: SalesforceEmulator): number {
  (sf.credentials as { password: string }).password = 'Rotated-Pass-7';
  sf.expireSessions();
  return sf.calls.count({ operation: 'login' });
}

/** The HTTP statuses of the sign-ins made since `before` ({@link refuseSignIns}): `[500]` for one refused. */
export function signInsSince(sf: SalesforceEmulator, before: number): number[] {
  return sf.calls
    .all()
    .filter((c) => c.operation === 'login')
    .slice(before)
    .map((c) => c.status);
}

/** The message of a SOAP sign-in the emulator `sf` refused, as the connector words it. */
export function refusedSignInMessage(sf: SalesforceEmulator): string {
  return (
    `Salesforce sign-in (soap) at ${sf.loginUrl} failed: INVALID_LOGIN: Invalid username, password, security token; or user locked out. ` +
    "Check username, password and securityToken (the token is appended to the password; empty when the org trusts the caller's IP address) in the secret roundtrip/salesforce (docs/salesforce-auth.md)."
  );
}
