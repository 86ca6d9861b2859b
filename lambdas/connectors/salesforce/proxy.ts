/**
 * The Salesforce connector's fetch behind a proxy: its REST and Bulk calls go through the proxy of
 * the environment ({@link proxyFor}, lambdas/shared/proxy.ts), as its sign-in (jsforce's
 * `httpProxy` option) and its Bulk CSV upload (node:http with a tunnel agent) do. Node's built-in
 * fetch reads no proxy variable: a call through a proxy goes with undici's own fetch and
 * ProxyAgent (a `CONNECT` tunnel, credentials in the proxy's URL sent as
 * `Proxy-Authorization: Basic`), any other call with Node's fetch.
 */
import type { ProxyAgent } from 'undici';
import { proxyFor, throughProxyError } from '../../shared/proxy';

// undici is loaded on the first call through a proxy only: it takes about 100 ms to load, which a
// Lambda (no proxy) would otherwise pay at every cold start of a Salesforce step.
const dispatchers = new Map<string, ProxyAgent>();

/** One ProxyAgent per proxy URL, kept for the process: its connections are reused. */
async function dispatcherFor(proxy: string): Promise<ProxyAgent> {
  let dispatcher = dispatchers.get(proxy);
  if (!dispatcher) {
    const undici = await import('undici');
    dispatcher = dispatchers.get(proxy) ?? new undici.ProxyAgent(proxy);
    dispatchers.set(proxy, dispatcher);
  }
  return dispatcher;
}

/**
 * A fetch that sends a call through the proxy {@link proxyFor} names for its URL, and any other
 * call with Node's fetch. A call that fails on its way through the proxy (the proxy refused, or
 * refused the tunnel: a 407 when it wants credentials) fails with an error that names the proxy
 * ({@link throughProxyError}: the cause's code kept, so ECONNREFUSED and the like stay transient).
 * An abort (a time limit) is passed on as it is.
 */
export function proxiedFetch(env: NodeJS.ProcessEnv = process.env): typeof fetch {
  return async (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const proxy = proxyFor(url, env);
    if (proxy === undefined) return globalThis.fetch(input, init);
    const [undici, dispatcher] = await Promise.all([import('undici'), dispatcherFor(proxy)]);
    try {
      // undici's Response is Node's in all but its type (the same package, vendored in Node).
      return (await undici.fetch(url, {
        ...(init as Parameters<typeof undici.fetch>[1]),
        dispatcher,
      })) as unknown as Response;
    } catch (err) {
      if (err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError')) throw err;
      if (init?.signal?.aborted) throw err;
      throw throughProxyError(err, proxy, env);
    }
  };
}
