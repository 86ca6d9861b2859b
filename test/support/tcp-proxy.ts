/**
 * A TCP proxy in front of a server (the test's PostgreSQL), which a test cuts at a chosen moment:
 * every connection through it is destroyed and new ones are refused, as when the server is
 * killed or the network to it goes. `cut` is synchronous, so that it can be called from a
 * synchronous callback (a local run's onEvent) before the next step starts.
 */
import net from 'node:net';

export interface TcpProxy {
  /** The target's URL with the proxy's host and port. */
  readonly url: string;
  /** Destroys every connection through the proxy and stops accepting new ones (refused). */
  cut(): void;
  close(): Promise<void>;
}

/** Starts a proxy on 127.0.0.1 (a free port) to the host and port of `targetUrl`. */
export async function startTcpProxy(targetUrl: string): Promise<TcpProxy> {
  const target = new URL(targetUrl);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const url = new URL(targetUrl);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  let closed: Promise<void> | undefined;
  const cut = (): void => {
    closed ??= new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of sockets) s.destroy();
  };
  return {
    url: url.toString(),
    cut,
    async close() {
      cut();
      await closed;
    },
  };
}
