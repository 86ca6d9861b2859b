/**
 * The proxy of the environment, for every call roundtrip makes: `https_proxy`, `http_proxy`,
 * `HTTPS_PROXY` or `HTTP_PROXY`, the first set, whatever the scheme of the URL (as jsforce picks
 * it for the Salesforce sign-in), except for a loopback host or a host `NO_PROXY` names
 * ({@link proxyFor}). Behind a corporate proxy a laptop reaches Salesforce and AWS only through
 * it; a Lambda has no proxy variable and goes directly.
 *
 * Every call through a proxy goes through a `CONNECT` tunnel opened by {@link TunnelAgent}'s
 * agents, with node:http(s): the Bulk CSV upload, the AWS SDK's clients, and the Salesforce
 * connector's fetch calls (connectors/salesforce/proxy.ts: Node's fetch takes no agent). A user
 * and password in the proxy's URL are sent as `Proxy-Authorization: Basic`; no error shows them.
 */
import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { isIP, type Socket } from 'node:net';
import tls from 'node:tls';

/** The variables a proxy is read from, in the order they are read. */
export const PROXY_VARIABLES = ['https_proxy', 'http_proxy', 'HTTPS_PROXY', 'HTTP_PROXY'] as const;

/** The first of {@link PROXY_VARIABLES} set (not empty), or undefined when none is. */
function proxyVariable(env: NodeJS.ProcessEnv): (typeof PROXY_VARIABLES)[number] | undefined {
  return PROXY_VARIABLES.find((name) => !!env[name]);
}

/** Whether the environment names a proxy at all. */
export function proxyVariableSet(env: NodeJS.ProcessEnv = process.env): boolean {
  return proxyVariable(env) !== undefined;
}

/** The entries of `no_proxy` (or `NO_PROXY`), as written. */
function noProxyEntries(env: NodeJS.ProcessEnv): string[] {
  return (env.no_proxy ?? env.NO_PROXY ?? '').split(/[\s,]+/).filter((entry) => entry !== '');
}

/** `host:port`, an IPv6 address in brackets. */
function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * The proxy a call to `url` goes through, or undefined for none. None for a loopback host
 * (`localhost`, 127.0.0.0/8, `::1`: an emulator on this machine, `roundtrip demo`, `npm start`)
 * or a host that `no_proxy`/`NO_PROXY` names (`*`; a host; a domain, with or without a leading dot
 * or `*.`, and its subdomains; a port in an entry is ignored).
 */
export function proxyFor(url: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const variable = proxyVariable(env);
  if (variable === undefined) return undefined;
  const proxy = env[variable] as string;
  let host: string;
  try {
    host = new URL(url).hostname.toLowerCase().replace(/^\[|\]$/g, '');
  } catch {
    return proxy;
  }
  if (host === 'localhost' || host.endsWith('.localhost') || host === '::1' || /^127\./.test(host))
    return undefined;
  for (const written of noProxyEntries(env)) {
    if (written === '*') return undefined;
    const entry = noProxyDomain(written);
    if (host === entry || host.endsWith(`.${entry}`)) return undefined;
  }
  return proxy;
}

/**
 * A `NO_PROXY` entry as {@link proxyFor} matches a host against it: lower case, without a leading
 * `.` or `*.` and without a port (an entry `*` alone is every host).
 */
export function noProxyDomain(written: string): string {
  return written
    .toLowerCase()
    .replace(/^\*?\./, '')
    .replace(/:\d+$/, '');
}

/**
 * What `roundtrip validate` says of the environment's proxy, or undefined when none is set: the
 * proxy (without its password), the variable it came from, and what goes directly.
 */
export function proxyDescription(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const variable = proxyVariable(env);
  if (variable === undefined) return undefined;
  const direct = noProxyEntries(env);
  return (
    `Salesforce and AWS calls go through ${proxyShown(env[variable] as string)} (${variable}), in a CONNECT tunnel; ` +
    `directly to this machine (localhost, 127.0.0.0/8, ::1)${direct.length > 0 ? ` and to ${direct.join(', ')} (NO_PROXY)` : ''}`
  );
}

/**
 * Puts `username` and `password` into the environment's proxy URL, in the variable
 * {@link proxyFor} reads, replacing any there: the deployed functions' proxy credentials, which
 * the stack keeps in Secrets Manager rather than in `HTTPS_PROXY` (handlers/deps.ts reads them at
 * start and again on each invocation, for a rotated password). Each part is percent-encoded, so
 * that {@link openTunnel} sends exactly what was given. False, and nothing set, when no proxy is.
 */
export function setProxyCredentials(
  username: string,
  password: string,
  env: NodeJS.ProcessEnv = process.env,
): boolean {
  const variable = proxyVariable(env);
  if (variable === undefined) return false;
  let url: URL;
  try {
    url = new URL(env[variable] as string);
  } catch {
    throw new Error(`${variable} is not a URL: cannot give the proxy its credentials`);
  }
  url.username = encodeURIComponent(username);
  url.password = encodeURIComponent(password);
  env[variable] = url.href;
  return true;
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

/**
 * `err` of a call sent through `proxy`, said as such: the proxy (without credentials), the
 * variable it came from, the deepest cause's message (fetch's "fetch failed" holds it in its
 * causes), and a hint when the proxy wants credentials (407). The deepest cause's `code` is kept,
 * so that a refused connection stays transient.
 */
export function throughProxyError(err: unknown, proxy: string, env: NodeJS.ProcessEnv = process.env): Error {
  // (A DOMException is one of the causes: not an instance of this realm's Error, so read by shape.)
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
  const variable = proxyVariable(env);
  const wrapped = new Error(
    `the call through the proxy ${proxyShown(proxy)}` +
      (variable ? ` (from ${variable}; NO_PROXY names hosts to reach directly)` : '') +
      ` failed: ${text}` +
      (/\b407\b|proxy authentication/i.test(text) ? ` (${credentialsHint(env)})` : ''),
    { cause: err },
  );
  if (typeof code === 'string') (wrapped as Error & { code?: string }).code = code;
  return wrapped;
}

/**
 * The variable that names the secret of the deployed functions' proxy credentials
 * (handlers/deps.ts, `HANDLER_ENV.proxyCredentialsSecret`).
 */
export const PROXY_CREDENTIALS_SECRET_VARIABLE = 'ROUNDTRIP_PROXY_CREDENTIALS_SECRET';

/** What to do when the proxy wants credentials (407): where they come from here. */
function credentialsHint(env: NodeJS.ProcessEnv): string {
  const secret = env[PROXY_CREDENTIALS_SECRET_VARIABLE];
  return secret
    ? `the proxy refused the credentials of the secret "${secret}" (deployment.network.proxy.credentialsSecret)`
    : 'the proxy wants credentials: put them in its URL, http://user:password@host:port';
}

/** How long opening a tunnel may take: the proxy's connection and its answer to `CONNECT`. */
export const TUNNEL_TIMEOUT_MS = 30_000;

/**
 * The code of an error of a tunnel the proxy refused with `status`: {@link PROXY_TUNNEL_UNAVAILABLE}
 * for a 5xx (the proxy could not reach the host, or is failing: a later call may pass), which the
 * connectors count transient; {@link PROXY_TUNNEL_REFUSED} otherwise (407 without credentials, 403
 * a host the proxy forbids: a setting to change).
 */
export const PROXY_TUNNEL_UNAVAILABLE = 'PROXY_TUNNEL_UNAVAILABLE';
export const PROXY_TUNNEL_REFUSED = 'PROXY_TUNNEL_REFUSED';

function tunnelCode(status: number): string {
  return status >= 500 ? PROXY_TUNNEL_UNAVAILABLE : PROXY_TUNNEL_REFUSED;
}

/** A proxy refused a tunnel (`CONNECT` answered other than 200). */
export class ProxyTunnelError extends Error {
  readonly code: string;
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'ProxyTunnelError';
    this.code = tunnelCode(status);
  }
}

/** Opens a `CONNECT` tunnel through `proxy` to `host:port`; answers its socket. */
export function openTunnel(
  proxy: string,
  host: string,
  port: number,
  env: NodeJS.ProcessEnv,
  timeoutMs: number = TUNNEL_TIMEOUT_MS,
): Promise<Socket> {
  const url = new URL(proxy);
  const target = hostPort(host, port);
  const headers: Record<string, string> = { host: target };
  if (url.username || url.password) {
    const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
    headers['proxy-authorization'] = `Basic ${Buffer.from(credentials).toString('base64')}`;
  }
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'https:' ? https : http).request({
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port || (url.protocol === 'https:' ? 443 : 80),
      method: 'CONNECT',
      path: target,
      headers,
      agent: false,
    });
    // A limit on opening the tunnel only: the request's own `timeout` option would stay on the
    // socket, and end a tunnel that waits longer than it for an answer (a slow Salesforce call).
    const timer = setTimeout(
      () =>
        req.destroy(
          Object.assign(new Error(`no tunnel to ${target} within ${timeoutMs / 1000} s`), {
            code: 'ETIMEDOUT',
          }),
        ),
      timeoutMs,
    );
    req.once('close', () => clearTimeout(timer));
    req.once('connect', (res, socket, head) => {
      clearTimeout(timer);
      if (res.statusCode === 200) {
        if (head.length > 0) socket.unshift(head);
        resolve(socket);
        return;
      }
      socket.destroy();
      const status = res.statusCode ?? 0;
      reject(
        throughProxyError(
          new ProxyTunnelError(
            `the proxy answered ${status} ${res.statusMessage ?? ''} to CONNECT ${target}`.trim(),
            status,
          ),
          proxy,
          env,
        ),
      );
    });
    req.once('error', (err) => reject(throughProxyError(err, proxy, env)));
    req.end();
  });
}

type ConnectOptions = http.ClientRequestArgs & tls.ConnectionOptions;
type Callback = (err: Error | null, stream: Duplex) => void;

/**
 * Where a connection of an agent's `options` goes: its host and port, and the proxy it goes
 * through ({@link proxyFor}), undefined for none.
 */
function connectionRoute(
  secure: boolean,
  env: NodeJS.ProcessEnv,
  options: ConnectOptions,
): { host: string; port: number; proxy: string | undefined } {
  const host = String(options.host ?? options.hostname ?? 'localhost').replace(/^\[|\]$/g, '');
  const port = Number(options.port ?? (secure ? 443 : 80));
  return { host, port, proxy: proxyFor(`${secure ? 'https' : 'http'}://${hostPort(host, port)}`, env) };
}

/**
 * A new connection of a {@link TunnelAgent}: through a `CONNECT` tunnel to a host the proxy serves
 * ({@link proxyFor}, read at each new connection), TLS running inside it for https; directly to any
 * other host (`direct`, the plain agent's own).
 */
function connectThroughProxy(
  secure: boolean,
  env: NodeJS.ProcessEnv,
  tunnelTimeoutMs: number,
  options: ConnectOptions,
  callback: Callback | undefined,
  direct: () => Duplex,
): Duplex | undefined {
  const { host, port, proxy } = connectionRoute(secure, env, options);
  if (proxy === undefined) return direct();
  openTunnel(proxy, host, port, env, tunnelTimeoutMs).then(
    (socket) => {
      if (!secure) return callback?.(null, socket);
      // SNI names the host, never an IP address (which TLS does not allow in it).
      const servername = options.servername || (isIP(host) ? undefined : host);
      const secured = tls.connect({ ...options, socket, ...(servername ? { servername } : {}) });
      callback?.(null, secured);
    },
    (err: Error) => callback?.(err, undefined as unknown as Duplex),
  );
  return undefined;
}

/**
 * The agents of calls through node:http(s) behind a proxy ({@link connectThroughProxy}): they keep
 * connections alive and pool them per host, as the AWS SDK's own agents do.
 */
export const TunnelAgent = {
  https: class HttpsTunnelAgent extends https.Agent {
    constructor(
      private readonly env: NodeJS.ProcessEnv = process.env,
      private readonly tunnelTimeoutMs: number = TUNNEL_TIMEOUT_MS,
    ) {
      super({ keepAlive: true, maxSockets: 50 });
    }
    override createConnection(options: ConnectOptions, callback?: Callback): Duplex | undefined {
      const direct = (): Duplex =>
        (https.Agent.prototype.createConnection as (o: ConnectOptions) => Duplex).call(this, options);
      return connectThroughProxy(true, this.env, this.tunnelTimeoutMs, options, callback, direct);
    }
    // Connections are pooled by host and by the proxy they go through.
    override getName(options?: https.AgentOptions & ConnectOptions): string {
      return `${super.getName(options)}:${connectionRoute(true, this.env, options ?? {}).proxy ?? 'direct'}`;
    }
  },
  http: class HttpTunnelAgent extends http.Agent {
    constructor(
      private readonly env: NodeJS.ProcessEnv = process.env,
      private readonly tunnelTimeoutMs: number = TUNNEL_TIMEOUT_MS,
    ) {
      super({ keepAlive: true, maxSockets: 50 });
    }
    override createConnection(options: ConnectOptions, callback?: Callback): Duplex | undefined {
      const direct = (): Duplex =>
        (http.Agent.prototype.createConnection as (o: ConnectOptions, cb?: Callback) => Duplex).call(
          this,
          options,
          callback,
        );
      return connectThroughProxy(false, this.env, this.tunnelTimeoutMs, options, callback, direct);
    }
    override getName(options?: ConnectOptions): string {
      return `${super.getName(options)}:${connectionRoute(false, this.env, options ?? {}).proxy ?? 'direct'}`;
    }
  },
};

/** The agent of a node:http(s) request to `url` behind the environment's proxy, or undefined. */
export function tunnelAgentFor(url: URL, env: NodeJS.ProcessEnv = process.env): http.Agent | undefined {
  if (proxyFor(url.href, env) === undefined) return undefined;
  if (env !== process.env)
    return url.protocol === 'https:' ? new TunnelAgent.https(env) : new TunnelAgent.http(env);
  // One of each for the process: their tunnels are kept and reused.
  if (url.protocol === 'https:') return (shared.https ??= new TunnelAgent.https());
  return (shared.http ??= new TunnelAgent.http());
}

const shared: { https?: https.Agent; http?: http.Agent } = {};

/**
 * The `httpAgent` and `httpsAgent` an AWS SDK client's request handler takes, when the
 * environment names a proxy at start; none otherwise (a Lambda keeps the SDK's own agents).
 */
export function awsProxyAgents(env: NodeJS.ProcessEnv = process.env): {
  httpAgent?: http.Agent;
  httpsAgent?: https.Agent;
} {
  if (!proxyVariableSet(env)) return {};
  return { httpAgent: new TunnelAgent.http(env), httpsAgent: new TunnelAgent.https(env) };
}
