/**
 * Imported first by a test file: sets `HTTPS_PROXY` to a proxy nothing listens on before jsforce
 * loads (jsforce reads the proxy variables once, when it loads, and sends every request of its
 * own through that proxy). Jest's workers run files one after another in one process:
 * {@link restoreProxyEnvironment} in the file's `afterAll` puts the variable back.
 */
export const DEAD_PROXY = 'http://127.0.0.1:9';

const saved = process.env.HTTPS_PROXY;
process.env.HTTPS_PROXY = DEAD_PROXY;

export function restoreProxyEnvironment(): void {
  if (saved === undefined) delete process.env.HTTPS_PROXY;
  else process.env.HTTPS_PROXY = saved;
}
