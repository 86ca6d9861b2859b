/**
 * Behind a corporate proxy, the AWS SDK's calls (Athena, S3) go through it too: the SDK reads no
 * proxy variable, so the clients' request handlers carry tunnel agents when one is set at start
 * (lambdas/shared/aws-timeouts.ts). The emulator is reached by a name only the test's proxy
 * resolves, so a call that went directly would fail to resolve it. The proxy variable must be set
 * before the SDK's time limits load: the dead proxy, replaced by the live one once it listens.
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
  afterAll(async () => {
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
});
