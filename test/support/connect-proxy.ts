/**
 * A forward proxy for tests: it answers HTTP `CONNECT host:port` by opening a tunnel, as a
 * corporate proxy does, and only to the hosts it is told of (`routes`: a name only this proxy
 * resolves, to a port on this machine). A call that reaches the named host therefore went through
 * the proxy: resolved directly, the name does not exist. It records every tunnel it opened, and
 * with `credentials` refuses a tunnel without them (`407 Proxy Authentication Required`).
 */
import { createServer, type IncomingMessage } from 'node:http';
import net, { type AddressInfo } from 'node:net';

export interface ConnectProxy {
  /** `http://127.0.0.1:<port>` (with the credentials when the proxy wants them: {@link urlWith}). */
  readonly url: string;
  /** The proxy's URL with `user:password` in it. */
  urlWith(user: string, password: string): string;
  /** Every tunnel asked for, in order: `host:port`, and whether it was opened. */
  readonly tunnels: { readonly target: string; readonly opened: boolean }[];
  stop(): Promise<void>;
}

export async function startConnectProxy(options: {
  /** Host name → port on 127.0.0.1. */
  readonly routes: Readonly<Record<string, number>>;
  /** `user:password` the proxy wants in `Proxy-Authorization: Basic`. */
  readonly credentials?: string;
}): Promise<ConnectProxy> {
  const tunnels: { target: string; opened: boolean }[] = [];
  const sockets = new Set<net.Socket>();
  const server = createServer((_req, res) => {
    res.writeHead(405, { 'content-type': 'text/plain' }).end('this proxy only tunnels (CONNECT)');
  });
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('connect', (req: IncomingMessage, client: net.Socket, head: Buffer) => {
    const target = req.url ?? '';
    const wanted = options.credentials
      ? `Basic ${Buffer.from(options.credentials).toString('base64')}`
      : undefined;
    if (wanted && req.headers['proxy-authorization'] !== wanted) {
      tunnels.push({ target, opened: false });
      client.end(
        'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n',
      );
      return;
    }
    const host = target.replace(/:\d+$/, '');
    const port = options.routes[host];
    if (port === undefined) {
      tunnels.push({ target, opened: false });
      client.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    tunnels.push({ target, opened: true });
    const upstream = net.connect(port, '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    urlWith: (user, password) =>
      `http://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}`,
    tunnels,
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
