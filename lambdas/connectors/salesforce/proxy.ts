/**
 * The proxy every Salesforce call goes through: the sign-in (jsforce's `httpProxy` option), the
 * REST and Bulk calls (our own fetch) and the Bulk CSV upload (node:http(s)). Behind a corporate
 * proxy, a laptop reaches the org only through it; a Lambda has no proxy in its environment and
 * so goes direct, as before.
 *
 * One proxy for all of them, chosen as jsforce chooses it for the sign-in: `https_proxy`,
 * `http_proxy`, `HTTPS_PROXY` or `HTTP_PROXY`, the first set, whatever the scheme of the URL
 * (the sign-in and the calls after it go to the same org). None for a loopback host or a host
 * `NO_PROXY` names ({@link proxyFor}). The calls reach the org through an HTTP `CONNECT` tunnel
 * (undici's ProxyAgent; https-proxy-agent for the upload); a user and password in the proxy's URL
 * are sent as `Proxy-Authorization: Basic`.
 */
import type { Agent } from 'node:http';
import type { ProxyAgent } from 'undici';

// undici and https-proxy-agent are loaded on the first call through a proxy only: undici alone
// takes about 100 ms to load, which a Lambda (no proxy) would otherwise pay at every cold start.

/**
 * The proxy a call to `url` goes through, or undefined for none. None for a loopback host
 * (`localhost`, 127.0.0.0/8, `::1`: a Salesforce emulator on this machine, `roundtrip demo`,
 * `npm start`) or a host that `no_proxy`/`NO_PROXY` names (`*`; a host; a domain, with or without
 * a leading dot or `*.`, and its subdomains; a port in an entry is ignored).
 */
export function proxyFor(url: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const proxy = env.https_proxy || env.http_proxy || env.HTTPS_PROXY || env.HTTP_PROXY || undefined;
  if (proxy === undefined) return undefined;
  let host: string;
  try {
    host = new URL(url).hostname.toLowerCase().replace(/^\[|\]$/g, '');
  } catch {
    return proxy;
  }
  if (host === 'localhost' || host.endsWith('.localhost') || host === '::1' || /^127\./.test(host))
    return undefined;
  const entries = (env.no_proxy ?? env.NO_PROXY ?? '')
    .split(/[\s,]+/)
    .map((entry) => entry.trim().toLowerCase())
    .filter((entry) => entry !== '');
  for (const raw of entries) {
    if (raw === '*') return undefined;
    const entry = raw.replace(/^\*?\./, '').replace(/:\d+$/, '');
    if (host === entry || host.endsWith(`.${entry}`)) return undefined;
  }
  return proxy;
}

/** The proxy's URL as an error may show it: its scheme, host and port, never a password. */
export function proxyShown(proxy: string): string {
  try {
    const url = new URL(proxy);
    return `${url.protocol}//${url.host}`;
  } catch {
    return 'the proxy (its URL does not parse)';
  }
}

const dispatchers = new Map<string, ProxyAgent>();
const agents = new Map<string, Agent>();

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

/** The node:http(s) agent of a request to `url`: a tunnel through its proxy, or undefined. */
export async function proxyAgentFor(
  url: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Agent | undefined> {
  const proxy = proxyFor(url, env);
  if (proxy === undefined) return undefined;
  let agent = agents.get(proxy);
  if (!agent) {
    const { HttpsProxyAgent } = await import('https-proxy-agent');
    agent = agents.get(proxy) ?? new HttpsProxyAgent(proxy, { keepAlive: true });
    agents.set(proxy, agent);
  }
  return agent;
}

/**
 * A fetch that sends a call through the proxy {@link proxyFor} names for its URL (undici's own
 * fetch with a ProxyAgent: Node's built-in fetch reads no proxy variable), and any other call
 * with Node's fetch. A call that fails on its way through the proxy (refused, or the tunnel
 * refused: a 407 when the proxy wants credentials) fails with an error that names the proxy; the
 * code of the cause is kept (ECONNREFUSED and the like stay transient). An abort (a time limit)
 * is passed on as it is.
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

/** `err` of a call sent through `proxy`, said as such; the cause's `code` kept. */
export function throughProxyError(err: unknown, proxy: string, env: NodeJS.ProcessEnv = process.env): Error {
  // fetch's TypeError("fetch failed") holds the reason in its causes, undici's the deepest.
  // (A DOMException is one of them: not an instance of this realm's Error, so looked at by shape.)
  const isErrorLike = (value: unknown): value is { message: string; code?: unknown; cause?: unknown } =>
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { message?: unknown }).message === 'string';
  let cause: unknown = err;
  let code: unknown;
  for (let depth = 0; isErrorLike(cause) && depth < 5; depth += 1) {
    if (typeof cause.code === 'string') code = cause.code;
    if (!isErrorLike(cause.cause)) break;
    cause = cause.cause;
  }
  const text = isErrorLike(cause) ? cause.message : String(cause);
  const variable = proxyVariableNote(env);
  const wrapped = new Error(
    `the call through the proxy ${proxyShown(proxy)}${variable} failed: ${text}` +
      (/407|Proxy-Authenticate|proxy authentication/i.test(text)
        ? ' (the proxy wants credentials: put them in its URL, http://user:password@host:port)'
        : ''),
    { cause: err },
  );
  if (typeof code === 'string') (wrapped as Error & { code?: string }).code = code;
  return wrapped;
}

function proxyVariableNote(env: NodeJS.ProcessEnv): string {
  for (const name of ['https_proxy', 'http_proxy', 'HTTPS_PROXY', 'HTTP_PROXY']) {
    if (env[name]) return ` (from ${name}; NO_PROXY names hosts to reach directly)`;
  }
  return '';
}
