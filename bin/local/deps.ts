/**
 * Core dependencies built for a laptop (DESIGN.md §2: core never builds a client; the CLI and the
 * tests do). The same secrets as in AWS, by the same names, resolved locally
 * (`createLocalSecretsProvider`: a JSON file and `ROUNDTRIP_SECRET_<NAME>` variables), and the
 * Athena and S3 clients pointed at an endpoint when one is given (the Athena emulator serves both
 * on one port), else at AWS with the SDK's usual credential chain and region; acting as
 * `athena.roleArn` when the config sets one, as the deployed functions do.
 */
import { AthenaClient } from '@aws-sdk/client-athena';
import type { PoolClient } from 'pg';
import { S3Client } from '@aws-sdk/client-s3';
import { STSClient } from '@aws-sdk/client-sts';
import { postgresCredentialsSource, type PipelineConfig } from '../../lambdas/config';
import {
  athenaClientsForRole,
  createAthenaConnector,
  type AthenaConnector,
} from '../../lambdas/connectors/athena';
import { createPool, type PostgresPool, type PostgresSource } from '../../lambdas/connectors/postgres';
import { connectConfiguredSalesforce, type SalesforceConnector } from '../../lambdas/connectors/salesforce';
import type { CoreDeps } from '../../lambdas/core/deps';
import { systemClock, type Clock } from '../../lambdas/shared/clock';
import { cliSessionName, localProcesses } from './process';
import { AWS_API_TIMEOUTS, S3_TIMEOUTS } from '../../lambdas/shared/aws-timeouts';
import { TerminalError } from '../../lambdas/shared/errors';
import type { Logger } from '../../lambdas/shared/logging';
import type { SecretsProvider } from '../../lambdas/shared/secrets';

/** An AWS endpoint with static credentials: an emulator's, or any S3/Athena-compatible one. */
export interface LocalAwsEndpoint {
  readonly endpoint: string;
  readonly region: string;
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string };
}

/**
 * Said instead of the SDK's bare "Region is missing" when no AWS Region is configured: on a laptop
 * that usually means the local emulator was meant and `--aws-endpoint` was left out.
 */
export const NO_AWS_REGION_MESSAGE =
  'No AWS Region for Athena and S3: pass --aws-endpoint http://127.0.0.1:PORT to use the local emulator ' +
  '(roundtrip emulate athena), or set AWS_REGION (or AWS_PROFILE, with a region) to use Athena in AWS';

/** The region the SDK would use from its environment (AWS_REGION, the profile), or undefined. */
async function environmentRegion(): Promise<string | undefined> {
  const probe = new AthenaClient({});
  try {
    return await probe.config.region();
  } catch {
    return undefined;
  } finally {
    probe.destroy();
  }
}

/**
 * Adds to an error of a call to the `--aws-endpoint` that was refused (the emulator not started,
 * or on another port) what to check. The error keeps its name and code, which decide retries.
 */
function explainRefusedEndpoint(client: AthenaClient | S3Client | STSClient, endpoint: string): void {
  (client as AthenaClient).middlewareStack.add(
    (next) => async (args) => {
      try {
        return await next(args);
      } catch (err) {
        // Read structurally: a socket error may come from another realm (a jest sandbox).
        const refused = err as { code?: unknown; message?: unknown } | null;
        if (refused?.code === 'ECONNREFUSED' && typeof refused.message === 'string') {
          refused.message = `${refused.message} (nothing accepts connections at --aws-endpoint ${endpoint}: is the Athena emulator running, on that port? roundtrip emulate athena --port PORT --data DIR)`;
        }
        throw err;
      }
    },
    // Innermost, where the socket's error arrives as it is (the retry step outside may wrap one
    // from another realm).
    { step: 'deserialize', name: 'roundtripExplainRefusedEndpoint' },
  );
}

/** Options of {@link buildLocalDeps}. */
export interface LocalDepsOptions {
  readonly config: PipelineConfig;
  readonly secrets: SecretsProvider;
  readonly logger: Logger;
  /** @default systemClock */
  readonly clock?: Clock;
  /** Athena and S3 at this endpoint (path-style S3). @default AWS, from the SDK's environment */
  readonly aws?: LocalAwsEndpoint;
  /** Connections of the pool. @default 4 */
  readonly poolSize?: number;
  /**
   * Where the PostgreSQL settings come from, named by a refused connection's error and a run that
   * could not be recorded. @default the config's secret (postgresCredentialsSource)
   */
  readonly postgresFrom?: string;
  /** The options the commands that messages name repeat (CoreDeps.commandOptions). @default none */
  readonly commandOptions?: string;
}

/** Laptop deps plus what the local runner and the CLI need beside them. */
export interface LocalDeps {
  readonly deps: CoreDeps;
  readonly pool: PostgresPool;
  /** The client the Athena `.sync` Task uses locally; undefined without `athena` in the config. */
  readonly athenaClient: AthenaClient | undefined;
  /** The Salesforce connector, signing in on first use (the same one the steps get). */
  readonly salesforce: (() => Promise<SalesforceConnector>) | undefined;
  /**
   * Closes the pool and the clients. With `forceAfterMs` (a stop signal's cleanup), the PostgreSQL
   * connections steps still hold that long after (a step waiting on a Salesforce call that hangs)
   * are closed under them, so that the command ends without waiting for the step; the number so
   * closed is answered (0 otherwise).
   */
  close(options?: { readonly forceAfterMs?: number }): Promise<number>;
}

/** The Salesforce and Athena connectors of a laptop run, which need no PostgreSQL. */
export interface LocalServices {
  /** The Salesforce connector, signing in on first use; undefined without `salesforce` in the config. */
  readonly salesforce: (() => Promise<SalesforceConnector>) | undefined;
  /** Undefined without `athena` in the config. */
  readonly athena: AthenaConnector | undefined;
  /** The client the Athena `.sync` Task uses locally; undefined without `athena` in the config. */
  readonly athenaClient: AthenaClient | undefined;
  /** Destroys the AWS clients. */
  close(): void;
}

/**
 * The Salesforce connector of a laptop, from the config's `salesforce` secret: a function that
 * signs in on first use (and answers the same connector afterwards); undefined without
 * `salesforce` in the config.
 */
export function localSalesforce(
  options: Pick<LocalDepsOptions, 'config' | 'secrets' | 'logger'>,
): (() => Promise<SalesforceConnector>) | undefined {
  const { secrets, logger } = options;
  const sfSettings = options.config.salesforce;
  if (!sfSettings) return undefined;
  let connecting: Promise<SalesforceConnector> | undefined;
  return () => {
    connecting ??= (async () =>
      connectConfiguredSalesforce(sfSettings, await secrets.getSecret(sfSettings.secret), logger))();
    connecting.catch(() => (connecting = undefined));
    return connecting;
  };
}

/**
 * Builds {@link LocalServices}; nothing connects until a check or a step needs it. Apart from the
 * pool so that `validate` can check Salesforce and Athena when the database's secret is missing.
 */
export async function buildLocalServices(
  options: Pick<LocalDepsOptions, 'config' | 'secrets' | 'logger' | 'aws'>,
): Promise<LocalServices> {
  const { config, secrets, logger } = options;
  const salesforce = localSalesforce({ config, secrets, logger });

  let athena: AthenaConnector | undefined;
  let athenaClient: AthenaClient | undefined;
  let s3Client: S3Client | undefined;
  let stsClient: STSClient | undefined;
  if (config.athena) {
    const region = options.aws ? options.aws.region : await environmentRegion();
    const endpoint = options.aws
      ? {
          endpoint: options.aws.endpoint,
          region: options.aws.region,
          credentials: { ...options.aws.credentials },
        }
      : region === undefined
        ? { region: () => Promise.reject(new TerminalError(NO_AWS_REGION_MESSAGE)) }
        : {};
    // The time limits of the deployed handlers' clients (lambdas/handlers/athena-deps.ts).
    const athenaConfig = { requestHandler: AWS_API_TIMEOUTS };
    const s3Config = { forcePathStyle: options.aws !== undefined, requestHandler: S3_TIMEOUTS };
    const roleArn = config.athena.roleArn;
    if (roleArn && region !== undefined) {
      // As deployed (lambdas/handlers/athena-deps.ts): Athena and S3 act as athena.roleArn, assumed
      // with the credentials at hand (yours, or the emulator's, whose STS grants any role), so that
      // validate, plan and run read the account the data lives in, not your own.
      stsClient = new STSClient({ ...endpoint, requestHandler: AWS_API_TIMEOUTS });
      const at = options.aws ? { endpoint: options.aws.endpoint } : {};
      const clients = athenaClientsForRole(roleArn, {
        sts: stsClient,
        sessionName: 'roundtrip-cli',
        region,
        athenaConfig: { ...at, ...athenaConfig },
        s3Config: { ...at, ...s3Config },
      });
      athenaClient = clients.athena;
      s3Client = clients.s3;
    } else {
      athenaClient = new AthenaClient({ ...endpoint, ...athenaConfig });
      s3Client = new S3Client({ ...endpoint, ...s3Config });
    }
    if (options.aws) {
      explainRefusedEndpoint(athenaClient, options.aws.endpoint);
      explainRefusedEndpoint(s3Client, options.aws.endpoint);
      if (stsClient) explainRefusedEndpoint(stsClient, options.aws.endpoint);
    }
    athena = createAthenaConnector({
      athena: athenaClient,
      s3: s3Client,
      logger,
      workgroup: config.athena.workgroup,
      database: config.athena.database,
      catalog: config.athena.catalog,
      ...(config.athena.outputLocation ? { outputLocation: config.athena.outputLocation } : {}),
    });
  }

  return {
    salesforce,
    athena,
    athenaClient,
    close() {
      athenaClient?.destroy();
      s3Client?.destroy();
      stsClient?.destroy();
    },
  };
}

/** Builds {@link LocalDeps}; nothing connects until a step needs it. */
export async function buildLocalDeps(options: LocalDepsOptions): Promise<LocalDeps> {
  const { config, secrets, logger } = options;
  const postgresSecret = (await secrets.getSecret(config.postgres.secret)) as PostgresSource;
  let pool: PostgresPool;
  try {
    pool = createPool(postgresSecret, {
      ssl: {
        mode: config.postgres.ssl.mode,
        ...(config.postgres.ssl.caBundle ? { caBundle: config.postgres.ssl.caBundle } : {}),
      },
      max: options.poolSize ?? 4,
      applicationName: cliSessionName(),
      logger,
      credentialsFrom: options.postgresFrom ?? postgresCredentialsSource(config),
    });
  } catch (err) {
    // Where the refused connection settings come from (the config's secret, or DATABASE_URL).
    if (err instanceof TerminalError) {
      throw new TerminalError(
        `${err.message} (${options.postgresFrom ?? postgresCredentialsSource(config)})`,
        {
          cause: err,
        },
      );
    }
    throw err;
  }

  const services = await buildLocalServices(options);
  const { salesforce, athena } = services;
  // The connections steps have checked out, for a stop signal's cleanup (close's forceAfterMs).
  const held = new Set<PoolClient>();
  pool.on('acquire', (client) => held.add(client));
  pool.on('release', (_err, client) => held.delete(client));
  let closing: Promise<number> | undefined;
  const processes = localProcesses();
  const deps: CoreDeps = {
    config,
    pg: pool,
    ...(salesforce ? { salesforce } : {}),
    ...(athena ? { athena } : {}),
    secrets,
    logger,
    clock: options.clock ?? systemClock,
    // Recorded on the run, so that a later command on this machine can tell its process is gone.
    ...(processes ? { processes } : {}),
    ...(options.commandOptions !== undefined ? { commandOptions: options.commandOptions } : {}),
  };
  return {
    deps,
    pool,
    athenaClient: services.athenaClient,
    salesforce,
    // Once: a command's signal handler and its own end may both close (pg refuses a second end).
    close(closeOptions = {}) {
      closing ??= (async () => {
        services.close();
        // pool.end() waits for every checked-out connection to come back.
        const ended = pool.end().then(() => 'ended' as const);
        const { forceAfterMs } = closeOptions;
        if (forceAfterMs === undefined) {
          await ended;
          return 0;
        }
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<'late'>((resolve) => {
          timer = setTimeout(() => resolve('late'), forceAfterMs);
        });
        const first = await Promise.race([ended, late]);
        clearTimeout(timer);
        if (first === 'ended') return 0;
        // Released with an error, a connection is closed and taken out of the pool (pg-pool), which
        // then ends; the step's own release later finds it gone, in a process about to end.
        const stuck = [...held];
        for (const client of stuck) client.release(new Error('closed by the command stopping'));
        await ended;
        return stuck.length;
      })();
      return closing;
    },
  };
}
