/**
 * Cross-account Athena: when the data lives in another account, the pipeline's optional
 * `athena.roleArn` is assumed with STS AssumeRole and the Athena and S3 clients use the temporary
 * credentials, refreshed before they expire.
 */
import { AthenaClient, type AthenaClientConfig } from '@aws-sdk/client-athena';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { AssumeRoleCommand, type STSClient } from '@aws-sdk/client-sts';
import { TerminalError } from '../../shared/errors';
import { classifyAthenaError } from './errors';

/** Temporary credentials, as the SDK clients take them from a provider. */
export interface TemporaryCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken: string;
  readonly expiration: Date;
}

/** Options of {@link assumeRoleCredentials}. */
export interface AssumeRoleOptions {
  /** The STS client (of the Lambda's own account). */
  readonly sts: STSClient;
  /** @default 'roundtrip' */
  readonly sessionName?: string;
  /** The role's external id, when its trust policy asks for one. */
  readonly externalId?: string;
  /** @default 3600 (the AssumeRole default, https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html) */
  readonly durationSeconds?: number;
  /** Renew this long before expiry. @default 300000 (5 minutes) */
  readonly refreshMarginMs?: number;
  /** @default Date.now */
  readonly now?: () => number;
}

const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]+$/;

/**
 * A credentials provider that assumes `roleArn` and caches the credentials until shortly before
 * they expire. Concurrent calls share one AssumeRole request.
 */
export function assumeRoleCredentials(
  roleArn: string,
  options: AssumeRoleOptions,
): () => Promise<TemporaryCredentials> {
  if (!ROLE_ARN.test(roleArn)) throw new TerminalError(`athena.roleArn is not an IAM role ARN: "${roleArn}"`);
  const now = options.now ?? Date.now;
  const margin = options.refreshMarginMs ?? 300_000;
  let current: TemporaryCredentials | undefined;
  let pending: Promise<TemporaryCredentials> | undefined;

  const assume = async (): Promise<TemporaryCredentials> => {
    let out;
    try {
      out = await options.sts.send(
        new AssumeRoleCommand({
          RoleArn: roleArn,
          RoleSessionName: options.sessionName ?? 'roundtrip',
          DurationSeconds: options.durationSeconds ?? 3600,
          ...(options.externalId ? { ExternalId: options.externalId } : {}),
        }),
      );
    } catch (err) {
      throw classifyAthenaError(err, `STS AssumeRole ${roleArn}`);
    }
    const c = out.Credentials;
    if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken || !c.Expiration) {
      throw new TerminalError(`STS AssumeRole ${roleArn} answered without credentials`);
    }
    return {
      accessKeyId: c.AccessKeyId,
      secretAccessKey: c.SecretAccessKey,
      sessionToken: c.SessionToken,
      expiration: new Date(c.Expiration),
    };
  };

  return async () => {
    if (current && current.expiration.getTime() - margin > now()) return current;
    pending ??= assume().finally(() => {
      pending = undefined;
    });
    current = await pending;
    return current;
  };
}

/** Options of {@link athenaClientsForRole}. */
export interface ClientsForRoleOptions extends AssumeRoleOptions {
  readonly region: string;
  /** Extra client settings (endpoint, retries). */
  readonly athenaConfig?: Omit<AthenaClientConfig, 'credentials' | 'region'>;
  readonly s3Config?: Omit<S3ClientConfig, 'credentials' | 'region'>;
}

/** Athena and S3 clients that act as `roleArn` (assumed through STS, renewed before expiry). */
export function athenaClientsForRole(
  roleArn: string,
  options: ClientsForRoleOptions,
): { athena: AthenaClient; s3: S3Client; credentials: () => Promise<TemporaryCredentials> } {
  const credentials = assumeRoleCredentials(roleArn, options);
  return {
    athena: new AthenaClient({ ...options.athenaConfig, region: options.region, credentials }),
    s3: new S3Client({ ...options.s3Config, region: options.region, credentials }),
    credentials,
  };
}
