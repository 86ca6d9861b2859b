/**
 * The Salesforce connector's fetch behind a proxy: its REST and Bulk calls go through the proxy of
 * the environment ({@link proxyFor}, lambdas/shared/proxy.ts), as its sign-in (jsforce's
 * `httpProxy` option) and its Bulk CSV upload (node:http with a tunnel agent) do. Node's built-in
 * fetch reads no proxy variable, and takes no agent: a call through a proxy is sent with
 * node:http(s) and the tunnel agent ({@link fetchThroughTunnel}), any other call with Node's fetch.
 * (Not undici's ProxyAgent: the package would add 400 KB to every Salesforce function's bundle,
 * past its 1 MB, for a path a Lambda takes only behind a proxy.)
 */
import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import type { Agent } from 'node:http';
import { tunnelAgentFor } from '../../shared/proxy';

/**
 * A fetch that sends a call through the proxy the environment names for its URL (the tunnel agent
 * of shared/proxy.ts), and any other call with Node's fetch.
 */
export function proxiedFetch(env: NodeJS.ProcessEnv = process.env): typeof fetch {
  return (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const target = new URL(url);
    const agent = tunnelAgentFor(target, env);
    if (agent === undefined) return globalThis.fetch(input, init);
    return fetchThroughTunnel(target, init ?? {}, agent);
  };
}

/** Request headers of `init` as a plain object. */
function headersOf(init: RequestInit): Record<string, string> {
  return Object.fromEntries(new Headers(init.headers).entries());
}

/**
 * What the connector asks of fetch, sent with node:http(s) through the tunnel agent: the method,
 * the headers, a body held as text (a streamed body goes with putWithBackpressure), the signal;
 * `agent` is the tunnel's.
 * The answer is a `Response` whose body streams as it arrives (read only as fast as it is
 * consumed), gzip or deflate decoded as fetch does. A refused tunnel fails with the error that
 * names the proxy (shared/proxy.ts); an abort with the signal's reason, as fetch does.
 */
export function fetchThroughTunnel(url: URL, init: RequestInit, agent: Agent): Promise<Response> {
  const body = init.body;
  if (body !== undefined && body !== null && typeof body !== 'string') {
    return Promise.reject(new TypeError('a call through a proxy sends its body as text'));
  }
  const signal = init.signal ?? undefined;
  if (signal?.aborted) return Promise.reject(signal.reason);
  const headers = headersOf(init);
  headers['accept-encoding'] ??= 'gzip, deflate';
  if (body !== undefined && body !== null) headers['content-length'] = String(Buffer.byteLength(body));
  const transport = url.protocol === 'https:' ? https : http;
  return new Promise<Response>((resolve, reject) => {
    const req = transport.request(url, {
      method: (init.method ?? 'GET').toUpperCase(),
      headers,
      agent,
    });
    const onAbort = (): void => {
      const reason: unknown = signal?.reason;
      req.destroy(reason instanceof Error ? reason : new Error(String(reason)));
      reject(reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    req.once('error', (err) => {
      signal?.removeEventListener('abort', onAbort);
      reject(err);
    });
    req.once('response', (res) => {
      // From here on an abort ends the body (the Response's stream errors with the reason).
      signal?.removeEventListener('abort', onAbort);
      const stopBody = (): void => {
        const reason: unknown = signal?.reason;
        res.destroy(reason instanceof Error ? reason : new Error(String(reason)));
      };
      signal?.addEventListener('abort', stopBody, { once: true });
      res.once('close', () => signal?.removeEventListener('abort', stopBody));
      const status = res.statusCode ?? 0;
      const answerHeaders = new Headers();
      for (const [name, value] of Object.entries(res.headers)) {
        if (value === undefined) continue;
        for (const v of Array.isArray(value) ? value : [value]) answerHeaders.append(name, v);
      }
      if ([204, 205, 304].includes(status) || req.method === 'HEAD') {
        res.resume();
        resolve(new Response(null, { status, statusText: res.statusMessage ?? '', headers: answerHeaders }));
        return;
      }
      const encoding = (res.headers['content-encoding'] ?? '').toLowerCase();
      let stream: Readable = res;
      if (encoding === 'gzip' || encoding === 'x-gzip' || encoding === 'deflate') {
        const decoder = encoding === 'deflate' ? zlib.createInflate() : zlib.createGunzip();
        res.once('error', (err) => decoder.destroy(err));
        stream = res.pipe(decoder);
        answerHeaders.delete('content-encoding');
        answerHeaders.delete('content-length');
      }
      resolve(
        new Response(Readable.toWeb(stream) as ReadableStream<Uint8Array>, {
          status,
          statusText: res.statusMessage ?? '',
          headers: answerHeaders,
        }),
      );
    });
    req.end(body ?? undefined);
  });
}
