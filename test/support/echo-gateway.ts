/**
 * A gateway that refuses every request with 400 and quotes the whole request back (method, URL,
 * headers, body), as some proxies and misconfigured endpoints do: the worst case for a secret in
 * a request (a login body, an Authorization header) reaching an error message.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface EchoGateway {
  /** `http://127.0.0.1:PORT`. */
  readonly url: string;
  close(): Promise<void>;
}

export async function startEchoGateway(): Promise<EchoGateway> {
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    req.on('end', () => {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end(`Bad Request: ${req.method} ${req.url} ${JSON.stringify(req.headers)} ${body}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
