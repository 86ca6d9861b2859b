/**
 * The dependencies of the core steps in Lambda, built ONCE per cold start from the environment by
 * small builders (config, secrets, PostgreSQL, and the Salesforce or Athena connector of the steps
 * that use one), on the first invocation: requiring a handler runs nothing.
 *
 * Each handler names the connectors its step uses ({@link lambdaDeps}); the heavy ones come from
 * their own modules (./salesforce-deps.ts, ./athena-deps.ts), so a function that does not use
 * jsforce or the Athena SDK does not even bundle them, and those that do load them on first use
 * (dynamic `import()`), not at module initialisation.
 *
 * Environment:
 * - `ROUNDTRIP_CONFIG_FILE` (required): the pipeline config as JSON, bundled next to the handler.
 *   Relative `transform` and `postgres.ssl.caBundle` paths in it are relative to its folder.
 * - `ROUNDTRIP_LOCAL_SECRETS_FILE` (optional): read secrets from this JSON file and
 *   `ROUNDTRIP_SECRET_<NAME>` variables instead of Secrets Manager (local runs of the handlers).
 * - `ROUNDTRIP_S3_FORCE_PATH_STYLE=true` (optional): path-style S3 URLs, for a local S3 endpoint.
 * - `ROUNDTRIP_NOTIFICATION_TOPIC_ARN` (optional, the Report function's): the SNS topic a failed
 *   run is told to.
 * - `ROUNDTRIP_PROXY_CREDENTIALS_SECRET` (optional, with `HTTPS_PROXY`): the secret of the proxy's
 *   user name and password (`deployment.network.proxy.credentialsSecret`), put into the proxy's
 *   URL before any call goes through it ({@link applyProxyCredentials}).
 * - `AWS_REGION` (set by Lambda), and the SDK's own `AWS_ENDPOINT_URL_ATHENA` /
 *   `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL_SECRETS_MANAGER` / `AWS_ENDPOINT_URL_SNS` /
 *   `AWS_ENDPOINT_URL_SFN` when
 *   pointing the clients elsewhere.
 * - `POWERTOOLS_LOG_LEVEL`, `POWERTOOLS_SERVICE_NAME`: the shared Powertools logger
 *   (lambdas/shared/observability.ts), which the core steps log through.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger as PowertoolsLogger } from '@aws-lambda-powertools/logger';
import { parseConfig, postgresCredentialsSource, type PipelineConfig } from '../config';
import type { AthenaConnector } from '../connectors/athena';
import { createPool, withClient, type PostgresPool, type PostgresSource } from '../connectors/postgres/pool';
import type { SalesforceConnector } from '../connectors/salesforce';
import type { CoreDeps, ExecutionStatusReader, Notifier } from '../core/deps';
import { markStepStarted } from '../core/run-state';
import { systemClock } from '../shared/clock';
import { ConfigError, TerminalError } from '../shared/errors';
import { AWS_API_TIMEOUTS } from '../shared/aws-timeouts';
import { warnOnFailure, type LogAttributes, type Logger } from '../shared/logging';
import { observability } from '../shared/observability';
import { PROXY_CREDENTIALS_SECRET_VARIABLE, setProxyCredentials } from '../shared/proxy';
import type { SecretsProvider } from '../shared/secrets';

/** The AWS clients' time limits (../shared/aws-timeouts.ts), for the handlers' builders. */
export { AWS_API_TIMEOUTS, S3_TIMEOUTS } from '../shared/aws-timeouts';

/** The environment variables read here. */
export const HANDLER_ENV = {
  configFile: 'ROUNDTRIP_CONFIG_FILE',
  localSecretsFile: 'ROUNDTRIP_LOCAL_SECRETS_FILE',
  s3ForcePathStyle: 'ROUNDTRIP_S3_FORCE_PATH_STYLE',
  notificationTopicArn: 'ROUNDTRIP_NOTIFICATION_TOPIC_ARN',
  proxyCredentialsSecret: PROXY_CREDENTIALS_SECRET_VARIABLE,
} as const;

/** The environment the builders read (`process.env` in Lambda). */
export type HandlerEnv = Readonly<Record<string, string | undefined>>;

/** Our {@link Logger} over Powertools' structured JSON logger; `child` keys go on every line. */
export function powertoolsLogger(logger: PowertoolsLogger, base: LogAttributes = {}): Logger {
  const at =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (message: string, attributes?: LogAttributes): void =>
      logger[level](message, { ...base, ...attributes });
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (attributes) => powertoolsLogger(logger, { ...base, ...attributes }),
  };
}

/**
 * A path of the config resolved against the config file's folder (absolute paths unchanged). In
 * Lambda the bundled config sits at the bundle root, which is also the working directory, so
 * the result is the same there; a local run of the handlers from another folder needs this.
 */
function besideConfig(file: string, target: string): string {
  return path.resolve(path.dirname(path.resolve(file)), target);
}

/**
 * Reads and validates the pipeline config JSON of `file`, with its relative `transform` and
 * `postgres.ssl.caBundle` paths resolved against the file's folder. Every problem is a
 * {@link ConfigError} naming the file.
 */
export async function readHandlerConfig(file: string): Promise<PipelineConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    throw new ConfigError([{ path: '', message: `cannot read the file (${String(code ?? err)})` }], file);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ConfigError([{ path: '', message: `not valid JSON: ${(err as Error).message}` }], file);
  }
  const config = parseConfig(value, file);
  const caBundle = config.postgres.ssl.caBundle;
  return {
    ...config,
    transform: config.transform.map((sql) => besideConfig(file, sql)),
    postgres: {
      ...config.postgres,
      ssl: { ...config.postgres.ssl, ...(caBundle ? { caBundle: besideConfig(file, caBundle) } : {}) },
    },
  };
}

/** The config named by `ROUNDTRIP_CONFIG_FILE`; see {@link readHandlerConfig}. */
export async function configFromEnv(env: HandlerEnv): Promise<PipelineConfig> {
  const file = env[HANDLER_ENV.configFile];
  if (!file) {
    throw new ConfigError([
      {
        path: '',
        message: `the environment variable ${HANDLER_ENV.configFile} must name the pipeline config (JSON)`,
      },
    ]);
  }
  return readHandlerConfig(file);
}

/**
 * The secrets of this environment: a local file and variables when `ROUNDTRIP_LOCAL_SECRETS_FILE`
 * is set, else Secrets Manager (its client traced by X-Ray in Lambda). The Secrets Manager SDK is
 * loaded here, on first use, not when the handler module is.
 */
export async function secretsFromEnv(env: HandlerEnv): Promise<SecretsProvider> {
  const secrets = await import('../shared/secrets');
  const localFile = env[HANDLER_ENV.localSecretsFile];
  if (localFile) return secrets.createLocalSecretsProvider({ file: localFile, env });
  const { SecretsManagerClient } = await import('@aws-sdk/client-secrets-manager');
  return secrets.createSecretsManagerProvider({
    client: traced(new SecretsManagerClient({ requestHandler: AWS_API_TIMEOUTS })),
  });
}

/** What a secret's field is, for an error that must not show its value. */
function shapeOf(value: unknown): string {
  if (value === undefined) return 'missing';
  if (value === '') return 'empty';
  if (value === null) return 'null';
  return Array.isArray(value) ? 'a list' : `a ${typeof value}`;
}

/**
 * Gives the environment's proxy the user name and password of the secret that
 * `ROUNDTRIP_PROXY_CREDENTIALS_SECRET` names (`{ "username": "…", "password": "…" }`), when it
 * names one: the deployed functions' `HTTPS_PROXY` holds no credentials (they would be plain text
 * in the functions' settings). The secret is read directly, not through the proxy (the config
 * requires `noProxy` to cover Secrets Manager), and through the provider's cache: called on every
 * invocation, it picks a rotated password up within the cache's five minutes. The proxy variables
 * are the process's (`process.env`), which every call's route is read from.
 */
export async function applyProxyCredentials(env: HandlerEnv, secrets: SecretsProvider): Promise<void> {
  const name = env[HANDLER_ENV.proxyCredentialsSecret];
  if (!name) return;
  const value = await secrets.getSecret(name);
  const what = `The secret "${name}" of the proxy's credentials (${HANDLER_ENV.proxyCredentialsSecret})`;
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new TerminalError(`${what} must be a JSON object with "username" and "password"`);
  const fields = value as Record<string, unknown>;
  const missing = ['username', 'password'].filter(
    (field) => typeof fields[field] !== 'string' || fields[field] === '',
  );
  if (missing.length > 0) {
    throw new TerminalError(
      `${what} must have "username" and "password", each a string that is not empty: ${missing
        .map((field) => `"${field}" is ${shapeOf(fields[field])}`)
        .join(', ')}`,
    );
  }
  if (!setProxyCredentials(fields.username as string, fields.password as string)) {
    throw new TerminalError(
      `${HANDLER_ENV.proxyCredentialsSecret} names the proxy's credentials, but no proxy is set (HTTPS_PROXY)`,
    );
  }
}

/**
 * The PostgreSQL pool of the config, with the credentials of its secret. A warm container keeps
 * its pool across invocations: when the server refuses the password on a new connection, the
 * secret is read again from Secrets Manager (not its cache) and the pool goes on with the rotated
 * credentials, instead of failing every run until the container goes cold.
 */
export async function postgresPool(
  config: PipelineConfig,
  secrets: SecretsProvider,
  logger?: Logger,
): Promise<PostgresPool> {
  const source = (await secrets.getSecret(config.postgres.secret)) as PostgresSource;
  return createPool(source, {
    ssl: {
      mode: config.postgres.ssl.mode,
      ...(config.postgres.ssl.caBundle ? { caBundle: config.postgres.ssl.caBundle } : {}),
    },
    ...(logger ? { logger } : {}),
    credentialsFrom: postgresCredentialsSource(config),
    renewCredentials: async () =>
      (await secrets.getSecret(config.postgres.secret, { fresh: true })) as PostgresSource,
  });
}

/**
 * An AWS SDK v3 client traced by X-Ray when tracing is on (in Lambda with active tracing);
 * unchanged otherwise, so that local runs pay nothing for it.
 */
export function traced<Client>(client: Client): Client {
  const { tracer } = observability();
  return tracer.isTracingEnabled() ? tracer.captureAWSv3Client(client) : client;
}

/** What a connector builder is given. */
export interface ConnectorContext {
  readonly config: PipelineConfig;
  readonly env: HandlerEnv;
  readonly secrets: SecretsProvider;
  readonly logger: Logger;
}

/**
 * Builds the Salesforce source of the deps: a function that signs in on first use. Only called
 * when the config has a `salesforce` section.
 */
export type SalesforceBuilder = (
  settings: NonNullable<PipelineConfig['salesforce']>,
  context: ConnectorContext,
) => () => Promise<SalesforceConnector>;

/** Builds the Athena connector of the deps. Only called when the config has an `athena` section. */
export type AthenaBuilder = (
  settings: NonNullable<PipelineConfig['athena']>,
  context: ConnectorContext,
) => Promise<AthenaConnector>;

/** Builds the notifier of the deps, or nothing when the environment names no topic. */
export type NotifierBuilder = (context: ConnectorContext) => Notifier | undefined;

/** Builds the reader of executions' status (Step Functions), for the Prepare step. */
export type ExecutionsBuilder = (context: ConnectorContext) => ExecutionStatusReader;

/** The connectors a step uses, by their builders (./salesforce-deps.ts, ./athena-deps.ts, ./sns-deps.ts, ./sfn-deps.ts). */
export interface StepConnectors {
  readonly salesforce?: SalesforceBuilder;
  readonly athena?: AthenaBuilder;
  readonly notifier?: NotifierBuilder;
  readonly executions?: ExecutionsBuilder;
}

/**
 * Builds the deps of a step from an environment: config, logger (the shared Powertools logger
 * with the pipeline's name on every line), secrets, the PostgreSQL pool, and the connectors the
 * step names when the config configures them.
 */
export async function buildHandlerDeps(
  env: HandlerEnv,
  connectors: StepConnectors = {},
  powertools: PowertoolsLogger = observability().logger,
): Promise<CoreDeps> {
  const config = await configFromEnv(env);
  const logger = powertoolsLogger(powertools, { pipeline: config.name });
  const secrets = await secretsFromEnv(env);
  await applyProxyCredentials(env, secrets);
  const pg = await postgresPool(config, secrets, logger);
  const context: ConnectorContext = { config, env, secrets, logger };
  const salesforce =
    connectors.salesforce && config.salesforce
      ? connectors.salesforce(config.salesforce, context)
      : undefined;
  let athena: AthenaConnector | undefined;
  try {
    athena = connectors.athena && config.athena ? await connectors.athena(config.athena, context) : undefined;
  } catch (err) {
    await pg.end();
    throw err;
  }
  const notifier = connectors.notifier?.(context);
  const executions = connectors.executions?.(context);
  return {
    config,
    pg,
    ...(salesforce ? { salesforce } : {}),
    ...(athena ? { athena } : {}),
    ...(notifier ? { notifier } : {}),
    ...(executions ? { executions } : {}),
    secrets,
    logger,
    clock: systemClock,
  };
}

/** Where a handler gets its deps: built once and shared, or given (tests, the local runner). */
export type DepsProvider = () => Promise<CoreDeps>;

/**
 * The deps of this container for a step that uses `connectors`, built from `process.env` on the
 * first call and shared by the invocations of a warm container. A cold start that failed (a
 * missing secret, say) is not kept: the next invocation tries again.
 */
export function lambdaDeps(connectors: StepConnectors = {}): DepsProvider {
  let built: Promise<CoreDeps> | undefined;
  return async () => {
    if (!built) {
      const building = buildHandlerDeps(process.env, connectors);
      built = building;
      building.catch(() => {
        if (built === building) built = undefined;
      });
      return building;
    }
    const deps = await built;
    // A warm container: the proxy's credentials again, from the secrets' cache (a rotated password).
    if (deps.secrets) await applyProxyCredentials(process.env, deps.secrets);
    return deps;
  };
}

/** A provider of deps that already exist (the local state machine, tests). */
export function givenDeps(deps: CoreDeps): DepsProvider {
  return () => Promise.resolve(deps);
}

/**
 * The deps of a step of run `runId`, once the step's start is marked on the run's row
 * (`last_step_at`: how a later run started with `onOverlap: 'skip'` tells a run still going
 * from one that died without a report, lambdas/core/prepare.ts). Best effort: a step that cannot
 * reach its database fails on its own work, with its own error.
 */
export async function depsForStep(provider: DepsProvider, runId: string): Promise<CoreDeps> {
  const deps = await provider();
  await warnOnFailure(deps.logger, 'Could not mark the start of the step on its run', { runId }, () =>
    withClient(deps.pg, (client) => markStepStarted(client, runId, deps.clock.now())),
  );
  return deps;
}
