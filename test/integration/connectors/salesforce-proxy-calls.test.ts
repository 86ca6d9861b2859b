/**
 * Behind a corporate proxy (`HTTPS_PROXY`), every Salesforce call goes through it: the sign-in,
 * the REST and Bulk calls, and the Bulk CSV upload. The emulator's URLs name a host that only the
 * test's proxy resolves, so a call that went directly would fail to resolve it.
 */
import { Readable } from 'node:stream';
import { startConnectProxy, type ConnectProxy } from '../../support/connect-proxy';
import { startSalesforceEmulator, type SalesforceEmulator } from '../../../emulators/salesforce';
import { connectSalesforce, type SalesforceConnector } from '../../../lambdas/connectors/salesforce';
import {
  closeIngestJob,
  createIngestJob,
  getIngestJob,
  isFinalIngestState,
  uploadIngestData,
} from '../../../lambdas/connectors/salesforce/writes';
import { TerminalError } from '../../../lambdas/shared/errors';
import { createMemoryLogger } from '../../../lambdas/shared/logging';

const HOST = 'salesforce.proxied.test';
const LEADS = 450;
const PROXY_VARIABLES = ['https_proxy', 'http_proxy', 'HTTPS_PROXY', 'HTTP_PROXY', 'no_proxy', 'NO_PROXY'];

describe('Salesforce calls with HTTPS_PROXY set', () => {
  let sf: SalesforceEmulator;
  let proxy: ConnectProxy;
  let guarded: ConnectProxy;
  const saved: Record<string, string | undefined> = {};

  const useProxy = (url: string | undefined): void => {
    for (const name of PROXY_VARIABLES) delete process.env[name];
    if (url !== undefined) process.env.HTTPS_PROXY = url;
  };

  beforeAll(async () => {
    for (const name of PROXY_VARIABLES) saved[name] = process.env[name];
    sf = await startSalesforceEmulator({
      publicHost: HOST,
      seed: {
        Lead: Array.from({ length: LEADS }, (_, i) => ({ LastName: `Proxied ${i}`, Company: 'Corp' })),
      },
    });
    proxy = await startConnectProxy({ routes: { [HOST]: sf.port } });
    guarded = await startConnectProxy({ routes: { [HOST]: sf.port }, credentials: 'alice:s3cr3t' });
  });
  afterAll(async () => {
    for (const name of PROXY_VARIABLES) {
      if (saved[name] === undefined) delete process.env[name];
      else process.env[name] = saved[name];
    }
    await proxy?.stop();
    await guarded?.stop();
    await sf?.stop();
  });

  const connect = (): Promise<SalesforceConnector> =>
    connectSalesforce({
      secret: { loginUrl: sf.loginUrl, username: sf.credentials.username, password: sf.credentials.password },
      logger: createMemoryLogger(),
      apiVersion: sf.apiVersion,
    });

  const readAll = async (stream: Readable): Promise<string> => {
    let text = '';
    for await (const chunk of stream) text += String(chunk);
    return text;
  };

  it('signs in, queries over REST and Bulk, and uploads a Bulk CSV through the proxy', async () => {
    useProxy(proxy.url);
    expect(sf.loginUrl).toContain(HOST);
    const connector = await connect();
    expect(connector.instanceUrl).toContain(HOST);

    expect(await connector.count('SELECT COUNT() FROM Lead')).toBe(LEADS);
    // Three REST pages of 200: the query and two nextRecordsUrl calls.
    const rest = await readAll(
      connector.queryRestCsv('SELECT Id, LastName FROM Lead', ['Id', 'LastName'], { batchSize: 200 }),
    );
    expect(rest.trim().split('\n')).toHaveLength(LEADS + 1);

    const jobId = await connector.startBulkQuery('SELECT Id, LastName FROM Lead');
    await connector.waitForBulkQuery(jobId, { delaySeconds: () => 0.05 });
    const bulk = await readAll(connector.streamBulkQueryResults(jobId, ['Id', 'LastName']));
    expect(bulk.trim().split('\n')).toHaveLength(LEADS + 1);

    const ids = rest
      .trim()
      .split('\n')
      .slice(1, 4)
      .map((line) => (line.split(',')[0] as string).replace(/"/g, ''));
    const job = await createIngestJob(connector, { object: 'Lead', operation: 'update' });
    await uploadIngestData(
      connector,
      job.id,
      Readable.from([`Id,LastName\n`, ...ids.map((id) => `${id},Uploaded through the proxy\n`)]),
    );
    await closeIngestJob(connector, job.id);
    let state = (await getIngestJob(connector, job.id)).state;
    for (let i = 0; i < 200 && !isFinalIngestState(state); i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      state = (await getIngestJob(connector, job.id)).state;
    }
    expect(state).toBe('JobComplete');
    for (const id of ids) expect(sf.store.get(id)?.LastName).toBe('Uploaded through the proxy');

    expect(proxy.tunnels.length).toBeGreaterThan(0);
    expect(proxy.tunnels.every((t) => t.opened && t.target === `${HOST}:${sf.port}`)).toBe(true);
  });

  it('sends the credentials in the proxy URL, and names the proxy when it refuses a call', async () => {
    useProxy(guarded.urlWith('alice', 's3cr3t'));
    const connector = await connect();
    expect(await connector.count('SELECT COUNT() FROM Lead')).toBe(LEADS);
    expect(guarded.tunnels.some((t) => t.opened)).toBe(true);

    // The same session, the proxy's URL now without the credentials: each call is refused (407).
    useProxy(guarded.url);
    const refused = await connector.count('SELECT COUNT() FROM Lead').catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(TerminalError);
    expect((refused as Error).message).toContain(
      `the call through the proxy ${guarded.url} (from HTTPS_PROXY`,
    );
    expect((refused as Error).message).toContain('the proxy wants credentials');

    const job = await createIngestJob(connector, { object: 'Lead', operation: 'update' }).catch(
      (err: unknown) => err,
    );
    expect(job).toBeInstanceOf(TerminalError);

    useProxy(guarded.urlWith('alice', 's3cr3t'));
    const open = await createIngestJob(connector, { object: 'Lead', operation: 'update' });
    useProxy(guarded.url);
    const upload = await uploadIngestData(connector, open.id, Readable.from(['Id,LastName\n'])).catch(
      (err: unknown) => err,
    );
    expect(upload).toBeInstanceOf(TerminalError);
    expect((upload as Error).message).toContain(`through the proxy ${guarded.url}`);
    expect((upload as Error).message).not.toContain('s3cr3t');
  });

  it('goes directly to a host NO_PROXY names (here, one that only the proxy resolves: the call fails)', async () => {
    useProxy(proxy.url);
    const connector = await connect();
    const before = proxy.tunnels.length;
    process.env.NO_PROXY = 'proxied.test';
    const failed = await connector.count('SELECT COUNT() FROM Lead').catch((err: unknown) => err);
    expect(failed).toBeInstanceOf(Error);
    expect(String((failed as Error).message)).not.toContain('through the proxy');
    expect(proxy.tunnels.length).toBe(before);
  });
});
