/**
 * Behind a corporate proxy, the AWS SDK's calls (Athena, S3) go through it too: the SDK reads no
 * proxy variable, so the clients' request handlers carry tunnel agents when one is set at start
 * (lambdas/shared/aws-timeouts.ts). The emulator is reached by a name only the test's proxy
 * resolves, so a call that went directly would fail to resolve it. The proxy variable must be set
 * before the SDK's time limits load: the dead proxy, replaced by the live one once it listens.
 * Deployed, the proxy's credentials come from a secret (`deployment.network.proxy.credentialsSecret`):
 * the handlers' deps put them into the proxy's URL, and again on each invocation of a warm container.
 */
import { DEAD_PROXY, restoreProxyEnvironment } from '../../support/dead-proxy';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AthenaClient } from '@aws-sdk/client-athena';
import { S3Client } from '@aws-sdk/client-s3';
import { startConnectProxy, type ConnectProxy } from '../../support/connect-proxy';
import {
  athenaClientConfig,
  s3ClientConfig,
  startAthenaEmulator,
  type AthenaEmulator,
} from '../../../emulators/athena';
import { createAthenaConnector } from '../../../lambdas/connectors/athena';
import { HANDLER_ENV, lambdaDeps } from '../../../lambdas/handlers/deps';
import { athenaFromRole } from '../../../lambdas/handlers/athena-deps';
import { AWS_API_TIMEOUTS, S3_TIMEOUTS } from '../../../lambdas/shared/aws-timeouts';
import { TerminalError, TransientError } from '../../../lambdas/shared/errors';
import { createMemoryLogger } from '../../../lambdas/shared/logging';

const HOST = 'aws.proxied.test';

describe('AWS SDK calls with HTTPS_PROXY set', () => {
  let emu: AthenaEmulator;
  let dataDir: string;
  let proxy: ConnectProxy;
  let guarded: ConnectProxy;

  beforeAll(async () => {
    expect(process.env.HTTPS_PROXY).toBe(DEAD_PROXY);
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'aws-proxy-'));
    await mkdir(path.join(dataDir, 'marketing'));
    await writeFile(
      path.join(dataDir, 'marketing', 'customers.csv'),
      'email,score\na@x.test,1\nb@x.test,2\n',
    );
    emu = await startAthenaEmulator({
      dataDir,
      workgroups: { roundtrip: { outputLocation: 's3://results-bucket/athena/' } },
    });
    const port = Number(new URL(emu.endpoint).port);
    proxy = await startConnectProxy({ routes: { [HOST]: port } });
    guarded = await startConnectProxy({ routes: { [HOST]: port }, credentials: 'alice:s3cr3t' });
  });
  const saved = { ...process.env };
  afterAll(async () => {
    process.env = saved;
    restoreProxyEnvironment();
    await proxy?.stop();
    await guarded?.stop();
    await emu?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  const connectorVia = () => {
    const endpoint = emu.endpoint.replace('127.0.0.1', HOST);
    const athena = new AthenaClient({
      ...athenaClientConfig(emu),
      endpoint,
      maxAttempts: 1,
      requestHandler: AWS_API_TIMEOUTS,
    });
    const s3 = new S3Client({
      ...s3ClientConfig(emu),
      endpoint,
      maxAttempts: 1,
      requestHandler: S3_TIMEOUTS,
    });
    return {
      athena,
      s3,
      connector: createAthenaConnector({
        athena,
        s3,
        logger: createMemoryLogger(),
        workgroup: 'roundtrip',
        database: 'marketing',
      }),
    };
  };

  it('runs a query and reads its result file from S3 through the proxy', async () => {
    process.env.HTTPS_PROXY = proxy.url;
    const { athena, s3, connector } = connectorVia();
    try {
      const id = await connector.startQuery('SELECT email, score FROM customers ORDER BY email', {
        clientRequestToken: 'aws-proxy-test-0000000000000000001',
      });
      const done = await connector.waitForQuery(id, { pollDelays: () => 50 });
      const result = await connector.describeResult(done);
      let csv = '';
      for await (const chunk of connector.streamResultFile(result.outputLocation)) csv += String(chunk);
      expect(csv).toBe('"email","score"\n"a@x.test","1"\n"b@x.test","2"\n');
      expect(proxy.tunnels.length).toBeGreaterThan(0);
      expect(
        proxy.tunnels.every((t) => t.opened && t.target === `${HOST}:${new URL(emu.endpoint).port}`),
      ).toBe(true);
    } finally {
      athena.destroy();
      s3.destroy();
    }
  });

  it('names the proxy when it refuses the tunnel (407: credentials wanted)', async () => {
    process.env.HTTPS_PROXY = guarded.url;
    const { athena, s3, connector } = connectorVia();
    try {
      const refused = await connector
        .startQuery('SELECT 1', { clientRequestToken: 'aws-proxy-test-0000000000000000002' })
        .catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(TerminalError);
      expect(refused).not.toBeInstanceOf(TransientError);
      expect((refused as Error).message).toContain(
        `the call through the proxy ${guarded.url} (from HTTPS_PROXY`,
      );
      expect((refused as Error).message).toContain('the proxy wants credentials');

      process.env.HTTPS_PROXY = guarded.urlWith('alice', 's3cr3t');
      const id = await connector.startQuery('SELECT 1 AS one', {
        clientRequestToken: 'aws-proxy-test-0000000000000000003',
      });
      expect(id).toBeTruthy();
      expect(guarded.tunnels.some((t) => t.opened)).toBe(true);
    } finally {
      athena.destroy();
      s3.destroy();
    }
  });

  it('deployed: takes the proxy’s credentials from their secret, and a warm container a rotated password', async () => {
    const endpoint = emu.endpoint.replace('127.0.0.1', HOST);
    const configFile = path.join(dataDir, 'roundtrip.config.json');
    const secretsFile = path.join(dataDir, 'secrets.json');
    await writeFile(
      configFile,
      JSON.stringify({
        name: 'behind-a-proxy',
        athena: { database: 'marketing', workgroup: 'roundtrip' },
        postgres: { secret: 'roundtrip/postgres' },
        extract: [{ from: 'athena', query: 'SELECT email FROM customers', table: 'athena_customers' }],
      }),
    );
    // (No PostgreSQL: the pool connects on its first query, which this test makes none of.)
    await writeFile(
      secretsFile,
      JSON.stringify({ 'roundtrip/postgres': { url: 'postgres://u:p@127.0.0.1:1/none' } }),
    );
    const secretVariable = 'ROUNDTRIP_SECRET_ROUNDTRIP_PROXY';
    Object.assign(process.env, {
      HTTPS_PROXY: guarded.url,
      [HANDLER_ENV.configFile]: configFile,
      [HANDLER_ENV.localSecretsFile]: secretsFile,
      [HANDLER_ENV.s3ForcePathStyle]: 'true',
      [HANDLER_ENV.proxyCredentialsSecret]: 'roundtrip/proxy',
      [secretVariable]: JSON.stringify({ username: 'alice', password: 'old-password' }),
      AWS_ENDPOINT_URL_ATHENA: endpoint,
      AWS_ENDPOINT_URL_S3: endpoint,
      AWS_REGION: emu.region,
      AWS_ACCESS_KEY_ID: emu.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: emu.credentials.secretAccessKey,
      POWERTOOLS_LOG_LEVEL: 'WARN',
    });
    const container = lambdaDeps({ athena: athenaFromRole });
    const cold = await container();
    try {
      // The password in the secret is not the proxy's: refused, and the error names the secret.
      const refused = await cold
        .athena!.startQuery('SELECT 1', { clientRequestToken: 'aws-proxy-test-0000000000000000004' })
        .catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(TerminalError);
      expect((refused as Error).message).toContain(
        `the call through the proxy ${guarded.url} (from HTTPS_PROXY`,
      );
      expect((refused as Error).message).toContain(
        'the proxy refused the credentials of the secret "roundtrip/proxy" (deployment.network.proxy.credentialsSecret)',
      );
      expect((refused as Error).message).not.toContain('old-password');

      // Rotated in the secret: the next invocation of the warm container sends the new one.
      process.env[secretVariable] = JSON.stringify({ username: 'alice', password: 's3cr3t' });
      const opened = guarded.tunnels.filter((t) => t.opened).length;
      const warm = await container();
      expect(warm).toBe(cold);
      const id = await warm.athena!.startQuery('SELECT 1 AS one', {
        clientRequestToken: 'aws-proxy-test-0000000000000000005',
      });
      expect(id).toBeTruthy();
      expect(guarded.tunnels.filter((t) => t.opened).length).toBeGreaterThan(opened);

      // A secret without a password fails the invocation, naming the secret and the field only.
      process.env[secretVariable] = JSON.stringify({ username: 'alice', pass: 's3cr3t' });
      await expect(container()).rejects.toThrow(
        'The secret "roundtrip/proxy" of the proxy\'s credentials (ROUNDTRIP_PROXY_CREDENTIALS_SECRET) must have "username" and "password", each a string that is not empty: "password" is missing',
      );
    } finally {
      await cold.pg.end();
    }
  });
});
