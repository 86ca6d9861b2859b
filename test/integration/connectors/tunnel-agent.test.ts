/**
 * TunnelAgent's https agent (lambdas/shared/proxy.ts) against a real TLS server: through the
 * proxy, TLS runs inside the `CONNECT` tunnel and checks the certificate against the host's name
 * (not the proxy's); its tunnels are kept alive and reused; a host the proxy does not serve
 * (loopback here) is reached directly.
 */
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { generateTestCertificates, hasOpenssl } from '../../../emulators/postgres/certificates';
import { TunnelAgent } from '../../../lambdas/shared/proxy';
import { startConnectProxy, type ConnectProxy } from '../../support/connect-proxy';

const HOST = 'tls.proxied.test';

describe('TunnelAgent over TLS', () => {
  let server: https.Server;
  let port: number;
  let proxy: ConnectProxy;
  let caPem: string;

  beforeAll(async () => {
    if (!hasOpenssl()) throw new Error('the openssl CLI is needed to make the test certificates');
    const certs = generateTestCertificates({ dnsNames: [HOST, 'localhost'], ipAddresses: ['127.0.0.1'] });
    caPem = certs.caPem;
    server = https.createServer({ cert: certs.certPem, key: certs.keyPem }, (req, res) => {
      const answer = (): void => void res.end(`hello ${req.headers.host}`);
      if (req.url === '/slow') setTimeout(answer, 600);
      else answer();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    proxy = await startConnectProxy({ routes: { [HOST]: port } });
  });
  afterAll(async () => {
    await proxy?.stop();
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });

  const get = (agent: https.Agent, url: string): Promise<string> =>
    new Promise((resolve, reject) => {
      https
        .get(url, { agent, ca: caPem }, (res) => {
          let body = '';
          res.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
          res.on('end', () => resolve(`${res.statusCode} ${body}`));
        })
        .on('error', reject);
    });

  it('speaks TLS to the host through the tunnel, checks its name, and reuses the tunnel', async () => {
    const agent = new TunnelAgent.https({ HTTPS_PROXY: proxy.url });
    try {
      expect(await get(agent, `https://${HOST}:${port}/`)).toBe(`200 hello ${HOST}:${port}`);
      expect(await get(agent, `https://${HOST}:${port}/again`)).toBe(`200 hello ${HOST}:${port}`);
      expect(proxy.tunnels).toEqual([{ target: `${HOST}:${port}`, opened: true }]);
    } finally {
      agent.destroy();
    }
  });

  it('refuses a certificate that does not name the host, tunnel or not', async () => {
    const other = 'other.proxied.test';
    const strict = await startConnectProxy({ routes: { [other]: port } });
    const agent = new TunnelAgent.https({ HTTPS_PROXY: strict.url });
    try {
      const err = await get(agent, `https://${other}:${port}/`).catch((e: unknown) => e);
      expect(String((err as Error).message)).toMatch(/Hostname\/IP does not match certificate|altnames/);
      expect(strict.tunnels).toEqual([{ target: `${other}:${port}`, opened: true }]);
    } finally {
      agent.destroy();
      await strict.stop();
    }
  });

  it('connects directly to a loopback host, the proxy set or not', async () => {
    const before = proxy.tunnels.length;
    const agent = new TunnelAgent.https({ HTTPS_PROXY: proxy.url });
    try {
      expect(await get(agent, `https://localhost:${port}/`)).toBe(`200 hello localhost:${port}`);
      expect(proxy.tunnels.length).toBe(before);
    } finally {
      agent.destroy();
    }
  });

  it('bounds the opening of a tunnel only: an answer slower than that limit still comes through it', async () => {
    const agent = new TunnelAgent.https({ HTTPS_PROXY: proxy.url }, 200);
    try {
      expect(await get(agent, `https://${HOST}:${port}/slow`)).toBe(`200 hello ${HOST}:${port}`);
    } finally {
      agent.destroy();
    }
  });

  it('fails a tunnel the proxy does not answer within the limit, naming the proxy', async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const agent = new TunnelAgent.https({ HTTPS_PROXY: url }, 200);
    try {
      const err = (await get(agent, `https://${HOST}:${port}/`).catch((e: unknown) => e)) as Error & {
        code?: string;
      };
      expect(err.message).toBe(
        `the call through the proxy ${url} (from HTTPS_PROXY; NO_PROXY names hosts to reach directly) failed: no tunnel to ${HOST}:${port} within 0.2 s`,
      );
      expect(err.code).toBe('ETIMEDOUT');
    } finally {
      agent.destroy();
      silent.close();
    }
  });
});
