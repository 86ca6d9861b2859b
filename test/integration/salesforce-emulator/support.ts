/**
 * Helpers for the emulator's integration tests: a jsforce connection pinned to the project's
 * API version, and raw HTTP calls (fetch) for what jsforce hides (headers, status, raw bodies).
 */
import { Connection } from 'jsforce';
import type { SalesforceEmulator } from '../../../emulators/salesforce';

/** The version the project pins (salesforce-wire.md). */
export const VERSION = '62.0';

/** Logs in with SOAP (the default of `conn.login` without OAuth client settings). */
export async function soapLogin(sf: SalesforceEmulator): Promise<Connection> {
  const conn = new Connection({ loginUrl: sf.loginUrl, version: VERSION });
  await conn.login(sf.credentials.username, sf.credentials.password + sf.credentials.securityToken);
  return conn;
}

/** A raw call with the connection's token; `path` is relative to `/services/data/v62.0`. */
export async function api(
  sf: SalesforceEmulator,
  conn: Connection,
  path: string,
  init: { method?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Response> {
  const headers: Record<string, string> = {
    Authorization: `Bearer ${conn.accessToken ?? ''}`,
    ...init.headers,
  };
  let body: string | undefined;
  if (init.body !== undefined) {
    body = typeof init.body === 'string' ? init.body : JSON.stringify(init.body);
    headers['Content-Type'] ??= 'application/json';
  }
  return fetch(`${sf.instanceUrl}/services/data/v${VERSION}${path}`, {
    method: init.method ?? 'GET',
    headers,
    body,
  });
}

/** The error jsforce raised, for asserting on `errorCode` / `name` / `message`. */
export { caught } from '../../support/caught';

/**
 * The `statusCode` of a save result's first error. Collections send `statusCode` per record
 * (salesforce-wire.md); jsforce's `SaveError` type names it `errorCode`, hence the cast.
 */
export function firstStatusCode(result: { errors: unknown[] } | undefined): string | undefined {
  return (result?.errors[0] as { statusCode?: string } | undefined)?.statusCode;
}
