/**
 * The dependencies of the core steps, built ONCE per cold start from the Lambda's environment
 * (every handler awaits {@link coreDeps}; the promise is shared by the invocations of a warm
 * container). Environment:
 * - `ROUNDTRIP_CONFIG_FILE` (required): the pipeline config as JSON, bundled next to the handler.
 * - `ROUNDTRIP_LOCAL_SECRETS_FILE` (optional): read secrets from this JSON file and
 *   `ROUNDTRIP_SECRET_<NAME>` variables instead of Secrets Manager (local runs of the handlers).
 * - `ROUNDTRIP_S3_FORCE_PATH_STYLE=true` (optional): path-style S3 URLs, for a local S3 endpoint.
 * - `AWS_REGION` (set by Lambda), and the SDK's own `AWS_ENDPOINT_URL_ATHENA` /
 *   `AWS_ENDPOINT_URL_S3` when pointing the clients at the local emulators.
 * - `POWERTOOLS_LOG_LEVEL`, `POWERTOOLS_SERVICE_NAME`: Powertools' logger settings.
 * Athena and S3 act as the Lambda's role, or assume `athena.roleArn` when the config sets one.
 */
import { readFile } from 'node:fs/promises';
import { AthenaClient } from '@aws-sdk/client-athena';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { STSClient } from '@aws-sdk/client-sts';
import { Logger as PowertoolsLogger } from '@aws-lambda-powertools/logger';
import { parseConfig, type PipelineConfig } from '../config';
import { athenaClientsForRole, createAthenaConnector, type AthenaConnector } from '../connectors/athena';
import { createPool, type PostgresSource } from '../connectors/postgres';
import { connectSalesforce, type SalesforceConnector } from '../connectors/salesforce';
import type { CoreDeps } from '../core/deps';
import { systemClock } from '../shared/clock';
import { ConfigError } from '../shared/errors';
import type { LogAttributes, Logger } from '../shared/logging';
import {
  createLocalSecretsProvider,
  createSecretsManagerProvider,
  type SecretsProvider,
} from '../shared/secrets';

/** The environment variables read here. */
export const HANDLER_ENV = {
  configFile: 'ROUNDTRIP_CONFIG_FILE',
  localSecretsFile: 'ROUNDTRIP_LOCAL_SECRETS_FILE',
  s3ForcePathStyle: 'ROUNDTRIP_S3_FORCE_PATH_STYLE',
} as const;

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

async function readConfig(file: string): Promise<PipelineConfig> {
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
  return parseConfig(value, file);
}

/** Builds the deps from an environment; see the module comment. */
export async function buildCoreDeps(env: Readonly<Record<string, string | undefined>>): Promise<CoreDeps> {
  const configFile = env[HANDLER_ENV.configFile];
  if (!configFile) {
    throw new ConfigError([
      {
        path: '',
        message: `the environment variable ${HANDLER_ENV.configFile} must name the pipeline config (JSON)`,
      },
    ]);
  }
  const config = await readConfig(configFile);
  const logger = powertoolsLogger(
    new PowertoolsLogger({ serviceName: env.POWERTOOLS_SERVICE_NAME ?? `roundtrip-${config.name}` }),
    { pipeline: config.name },
  );
  const localSecrets = env[HANDLER_ENV.localSecretsFile];
  const secrets: SecretsProvider = localSecrets
    ? createLocalSecretsProvider({ file: localSecrets, env })
    : createSecretsManagerProvider({ client: new SecretsManagerClient({}) });

  const postgresSecret = (await secrets.getSecret(config.postgres.secret)) as PostgresSource;
  const pg = createPool(postgresSecret, {
    ssl: {
      mode: config.postgres.ssl.mode,
      ...(config.postgres.ssl.caBundle ? { caBundle: config.postgres.ssl.caBundle } : {}),
    },
  });

  let salesforce: (() => Promise<SalesforceConnector>) | undefined;
  const sfSettings = config.salesforce;
  if (sfSettings) {
    let connecting: Promise<SalesforceConnector> | undefined;
    salesforce = () => {
      connecting ??= (async () => {
        const secret = await secrets.getSecret(sfSettings.secret);
        const withLoginUrl =
          sfSettings.loginUrl && secret && typeof secret === 'object'
            ? { ...(secret as Record<string, unknown>), loginUrl: sfSettings.loginUrl }
            : secret;
        return connectSalesforce({
          secret: withLoginUrl,
          secretName: sfSettings.secret,
          apiVersion: sfSettings.apiVersion,
          logger,
        });
      })();
      // A failed sign-in is not kept: the next invocation tries again.
      connecting.catch(() => (connecting = undefined));
      return connecting;
    };
  }

  let athena: AthenaConnector | undefined;
  if (config.athena) {
    const forcePathStyle = env[HANDLER_ENV.s3ForcePathStyle] === 'true';
    const region = env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
    const clients = config.athena.roleArn
      ? athenaClientsForRole(config.athena.roleArn, {
          sts: new STSClient({}),
          region: region ?? 'us-east-1',
          s3Config: { forcePathStyle },
        })
      : { athena: new AthenaClient({}), s3: new S3Client({ forcePathStyle }) };
    athena = createAthenaConnector({
      athena: clients.athena,
      s3: clients.s3,
      logger,
      workgroup: config.athena.workgroup,
      database: config.athena.database,
      catalog: config.athena.catalog,
      ...(config.athena.outputLocation ? { outputLocation: config.athena.outputLocation } : {}),
    });
  }

  return {
    config,
    pg,
    ...(salesforce ? { salesforce } : {}),
    ...(athena ? { athena } : {}),
    secrets,
    logger,
    clock: systemClock,
  };
}

let built: Promise<CoreDeps> | undefined;

/** The deps of this container, built on first use from `process.env` and kept for its life. */
export function coreDeps(): Promise<CoreDeps> {
  built ??= buildCoreDeps(process.env);
  // A cold start that failed (a missing secret, say) is not kept: the next invocation retries.
  built.catch(() => (built = undefined));
  return built;
}
