/**
 * The Athena builder of the handler deps (./deps.ts), in a module of its own so that only the
 * Athena load function bundles the connector and loads the Athena, S3 and STS clients of the AWS
 * SDK (on first use, through dynamic `import()`).
 */
import type { AthenaConnector } from '../connectors/athena';
import { AWS_API_TIMEOUTS, HANDLER_ENV, S3_TIMEOUTS, traced, type AthenaBuilder } from './deps';

/** The default region when neither `AWS_REGION` nor `AWS_DEFAULT_REGION` is set (Lambda sets it). */
const FALLBACK_REGION = 'us-east-1';

/**
 * The Athena connector, acting as the Lambda's role or as `athena.roleArn` when the config sets
 * one (assumed through STS, renewed before expiry). Its clients are traced by X-Ray in Lambda.
 */
export const athenaFromRole: AthenaBuilder = async (settings, { env, logger }): Promise<AthenaConnector> => {
  const [{ AthenaClient }, { S3Client }, { createAthenaConnector }] = await Promise.all([
    import('@aws-sdk/client-athena'),
    import('@aws-sdk/client-s3'),
    import('../connectors/athena/connector'),
  ]);
  const forcePathStyle = env[HANDLER_ENV.s3ForcePathStyle] === 'true';
  let clients: { athena: InstanceType<typeof AthenaClient>; s3: InstanceType<typeof S3Client> };
  if (settings.roleArn) {
    const [{ STSClient }, { athenaClientsForRole }] = await Promise.all([
      import('@aws-sdk/client-sts'),
      import('../connectors/athena/role'),
    ]);
    clients = athenaClientsForRole(settings.roleArn, {
      sts: traced(new STSClient({ requestHandler: AWS_API_TIMEOUTS })),
      region: env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? FALLBACK_REGION,
      athenaConfig: { requestHandler: AWS_API_TIMEOUTS },
      s3Config: { forcePathStyle, requestHandler: S3_TIMEOUTS },
    });
  } else {
    clients = {
      athena: new AthenaClient({ requestHandler: AWS_API_TIMEOUTS }),
      s3: new S3Client({ forcePathStyle, requestHandler: S3_TIMEOUTS }),
    };
  }
  return createAthenaConnector({
    athena: traced(clients.athena),
    s3: traced(clients.s3),
    logger,
    workgroup: settings.workgroup,
    database: settings.database,
    catalog: settings.catalog,
    ...(settings.outputLocation ? { outputLocation: settings.outputLocation } : {}),
  });
};
