/**
 * The Salesforce connector's fetch behind a proxy (connectors/salesforce/proxy.ts): node:http
 * through a CONNECT tunnel, answering as fetch does. Against a plain HTTP server that only the
 * test's proxy reaches by name.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';
import { proxiedFetch } from '../../../lambdas/connectors/salesforce/proxy';
import { startConnectProxy, type ConnectProxy } from '../../support/connect-proxy';

const HOST = 'api.proxied.test';

describe('fetch through a proxy tunnel', () => {
  let server: Server;
  let port: number;
  let proxy: ConnectProxy;
  let fetchVia: typeof fetch;
  const seen: { method: string; body: string; length: string | undefined }[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', body, length: req.headers['content-length'] });
        if (req.url === '/gzip') {
          res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
          res.end(zlib.gzipSync(JSON.stringify({ ok: true, accept: req.headers['accept-encoding'] })));
        } else if (req.url === '/empty') {
          res.writeHead(204).end();
        } else if (req.url === '/never') {
          // Never answers.
        } else if (req.url === '/stalls') {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.write('first part;');
        } else {
          res.writeHead(201, { 'content-type': 'text/plain', 'x-echo': 'yes' });
          res.end(`${req.method} ${body}`);
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    proxy = await startConnectProxy({ routes: { [HOST]: port } });
    fetchVia = proxiedFetch({ HTTPS_PROXY: proxy.url });
  });
  afterAll(async () => {
    await proxy?.stop();
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });

  it('sends the method, headers and text body, and answers the status, headers and body', async () => {
    const res = await fetchVia(`http://${HOST}:${port}/echo`, {
      method: 'post',
      headers: { 'Content-Type': 'application/json' },
      body: '{"a":"é"}',
    });
    expect([res.status, res.headers.get('x-echo'), await res.text()]).toEqual([201, 'yes', 'POST {"a":"é"}']);
    expect(seen.at(-1)).toEqual({ method: 'POST', body: '{"a":"é"}', length: '10' });
    expect(proxy.tunnels.at(-1)).toEqual({ target: `${HOST}:${port}`, opened: true });
  });

  it('decodes a gzip answer, as fetch does', async () => {
    const res = await fetchVia(`http://${HOST}:${port}/gzip`);
    expect(await res.json()).toEqual({ ok: true, accept: 'gzip, deflate' });
    expect(res.headers.get('content-encoding')).toBeNull();
  });

  it('answers a 204 without a body', async () => {
    const res = await fetchVia(`http://${HOST}:${port}/empty`, { method: 'DELETE' });
    expect([res.status, await res.text()]).toEqual([204, '']);
  });

  it('fails with the signal’s reason when aborted before the answer, and ends a body aborted mid-way', async () => {
    const waiting = new AbortController();
    const pending = fetchVia(`http://${HOST}:${port}/never`, { signal: waiting.signal });
    const reason = new Error('answer took too long');
    setTimeout(() => waiting.abort(reason), 50);
    await expect(pending).rejects.toBe(reason);

    const reading = new AbortController();
    const res = await fetchVia(`http://${HOST}:${port}/stalls`, { signal: reading.signal });
    expect(res.status).toBe(200);
    const stalled = new Error('body stalled');
    setTimeout(() => reading.abort(stalled), 50);
    await expect(res.text()).rejects.toThrow('body stalled');
  });
});
