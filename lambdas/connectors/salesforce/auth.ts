/**
 * Salesforce sign-in: the secret's JSON shapes (one per flow, see docs/salesforce-auth.md), the
 * JWT bearer assertion, and the function that signs a jsforce Connection in (and in again when a
 * session expires).
 */
import { createPrivateKey, createSign, type KeyObject } from 'node:crypto';
import type { Connection } from 'jsforce';
import * as z from 'zod';
import { suggestion } from '../../config/issues';
import { TerminalError } from '../../shared/errors';
import { JWT_ASSERTION_LIFETIME_SECONDS, JWT_BEARER_GRANT_TYPE } from './constants';

/** Said of a login URL with a user name or password in it: shown in messages and logs, it must hold none. */
const LOGIN_URL_WITH_CREDENTIALS =
  "holds a user name or password (https://user:password@…): remove them, the sign-in takes them from the secret's own keys";
const loginUrl = z
  .string()
  .url()
  .refine((u) => !/^[^:/?#]+:\/\/[^/?#]*@/.test(u), { message: LOGIN_URL_WITH_CREDENTIALS })
  .transform((u) => u.replace(/\/+$/, ''));
const nonEmpty = z.string().min(1);

/** SOAP `login()` with username and password (+ security token). */
const soapSecret = z.object({
  flow: z.literal('soap').optional(),
  loginUrl,
  username: nonEmpty,
  password: nonEmpty,
  securityToken: z.string().optional(),
});

/** OAuth 2.0 username-password flow through a connected app. */
const oauthPasswordSecret = z.object({
  flow: z.literal('oauth-password'),
  loginUrl,
  clientId: nonEmpty,
  clientSecret: nonEmpty,
  username: nonEmpty,
  password: nonEmpty,
  securityToken: z.string().optional(),
});

/** OAuth 2.0 client credentials flow (needs the org's My Domain URL as loginUrl). */
const clientCredentialsSecret = z.object({
  flow: z.literal('client-credentials'),
  loginUrl,
  clientId: nonEmpty,
  clientSecret: nonEmpty,
});

/** OAuth 2.0 JWT bearer flow with the connected app's private key (PEM). */
const jwtSecret = z.object({
  flow: z.literal('jwt'),
  loginUrl,
  clientId: nonEmpty,
  username: nonEmpty,
  privateKey: nonEmpty,
  /** The JWT `aud`. @default jwtAudienceFor(loginUrl) */
  audience: z.string().optional(),
});

export type SoapSecret = z.infer<typeof soapSecret>;
export type OAuthPasswordSecret = z.infer<typeof oauthPasswordSecret>;
export type ClientCredentialsSecret = z.infer<typeof clientCredentialsSecret>;
export type JwtSecret = z.infer<typeof jwtSecret>;
/** A validated Salesforce secret: one of the four sign-in flows. */
export type SalesforceSecret = SoapSecret | OAuthPasswordSecret | ClientCredentialsSecret | JwtSecret;
/** The flow names as they appear in a secret's `flow` key (`soap` when absent). */
export type SalesforceAuthFlow = 'soap' | 'oauth-password' | 'client-credentials' | 'jwt';

const FLOW_SCHEMAS = {
  soap: soapSecret,
  'oauth-password': oauthPasswordSecret,
  'client-credentials': clientCredentialsSecret,
  jwt: jwtSecret,
} as const;

/** The flow a secret's JSON asks for. */
export function authFlowOf(secret: Pick<SalesforceSecret, 'flow'>): SalesforceAuthFlow {
  return secret.flow ?? 'soap';
}

/**
 * Validates a Salesforce secret's JSON. Errors name the secret, the flow and each missing or
 * malformed key, and each key the flow does not take that looks like a mistake (a misspelt key of
 * the flow, or another flow's key: nothing would read it); they never echo a value.
 */
export function parseSalesforceSecret(value: unknown, secretName = 'Salesforce secret'): SalesforceSecret {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TerminalError(`${secretName} must be a JSON object (see docs/salesforce-auth.md)`);
  }
  const flowValue = (value as { flow?: unknown }).flow;
  const flow = flowValue === undefined ? 'soap' : flowValue;
  if (typeof flow !== 'string' || !Object.hasOwn(FLOW_SCHEMAS, flow)) {
    throw new TerminalError(
      `${secretName} has an unknown "flow"; expected one of ${Object.keys(FLOW_SCHEMAS).join(', ')} (or none for SOAP login)`,
    );
  }
  const schema = FLOW_SCHEMAS[flow as SalesforceAuthFlow];
  const parsed = schema.safeParse(value);
  // Keys of the secret that its flow does not take: a missing key's likely misspelling, or a key
  // jsforce and the flow would ignore without a word (a misspelt optional `securityTokn` signs in
  // without the token, and Salesforce then refuses a password that is right). Key names only,
  // never a value.
  const known = Object.keys(schema.shape);
  const unknown = Object.keys(value).filter((k) => !known.includes(k));
  const misspellings = new Set<string>();
  const problems = (parsed.success ? [] : parsed.error.issues).map((issue) => {
    const key = issue.path.map(String).join('.') || '(root)';
    const present =
      issue.path.length > 0 && (value as Record<string, unknown>)[String(issue.path[0])] !== undefined;
    const misspelt = present ? undefined : unknown.find((k) => suggestion(k, [key]) === key);
    if (misspelt) misspellings.add(misspelt);
    // zod messages may quote the received value: describe the problem ourselves.
    const what = !present
      ? `is missing${misspelt ? ` (the secret has "${misspelt}": rename it "${key}")` : ''}`
      : issue.code === 'invalid_format'
        ? 'is not a valid URL'
        : issue.code === 'custom'
          ? issue.message
          : 'is empty or not a string';
    return `key "${key}" ${what}`;
  });
  for (const key of unknown) {
    if (misspellings.has(key)) continue;
    const problem = unknownKeyProblem(key, flow as SalesforceAuthFlow, known);
    if (problem) problems.push(`key "${key}" ${problem}`);
  }
  if (parsed.success && problems.length === 0) return parsed.data;
  throw new TerminalError(`${secretName} (flow ${flow}) is invalid: ${problems.join('; ')}`);
}

/**
 * Why a key the flow does not take is refused, and what to do: rename it (it looks like a misspelt
 * key of the flow), or set "flow" (another flow takes it). Undefined for any other key: a secret
 * may carry keys of its own (a note, an owner, a rotation date) that nothing reads, and refusing
 * them would stop a pipeline whose sign-in is right.
 */
function unknownKeyProblem(
  key: string,
  flow: SalesforceAuthFlow,
  known: readonly string[],
): string | undefined {
  const notTaken = `is not one the ${flow} flow takes`;
  const meant = suggestion(key, known);
  if (meant) return `${notTaken}: rename it "${meant}"`;
  const flows = (Object.keys(FLOW_SCHEMAS) as SalesforceAuthFlow[]).filter(
    (f) => f !== flow && Object.hasOwn(FLOW_SCHEMAS[f].shape, key),
  );
  if (flows.length === 0) return undefined;
  const which =
    flows.length === 1 ? `the ${flows[0]} flow takes it` : `the ${flows.join(', ')} flows take it`;
  return `${notTaken} (${which}: set "flow", or remove the key)`;
}

/** The values of a secret that must never be logged (for the redactor). */
export function secretValuesOf(secret: SalesforceSecret): string[] {
  const out: string[] = [];
  if ('password' in secret) out.push(secret.password);
  if ('securityToken' in secret && secret.securityToken) {
    out.push(secret.securityToken);
    out.push(secret.password + secret.securityToken);
  }
  if ('clientSecret' in secret) out.push(secret.clientSecret);
  if ('privateKey' in secret) out.push(secret.privateKey);
  return out;
}

function base64url(input: Buffer | string): string {
  return Buffer.from(input).toString('base64url');
}

/** Claims and key of a JWT bearer assertion. */
export interface JwtAssertionInput {
  /** The connected app's consumer key (`iss`). */
  readonly clientId: string;
  /** The Salesforce username (`sub`). */
  readonly username: string;
  /** The login URL (`aud`). */
  readonly audience: string;
  /** The RSA private key, PEM or KeyObject. */
  readonly privateKey: string | KeyObject;
  /** Seconds since the epoch. @default now */
  readonly nowSeconds?: number;
}

/**
 * Builds and signs (RS256) the assertion of the OAuth 2.0 JWT bearer flow: `iss` client id, `sub`
 * username, `aud` login URL, `exp` now + 3 minutes.
 * https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm
 */
export function buildJwtAssertion(input: JwtAssertionInput): string {
  const now = input.nowSeconds ?? Math.floor(Date.now() / 1000);
  const header = base64url(JSON.stringify({ alg: 'RS256', typ: 'JWT' }));
  const claims = base64url(
    JSON.stringify({
      iss: input.clientId,
      sub: input.username,
      aud: input.audience,
      exp: now + JWT_ASSERTION_LIFETIME_SECONDS,
    }),
  );
  let key: KeyObject;
  try {
    key = typeof input.privateKey === 'string' ? createPrivateKey(input.privateKey) : input.privateKey;
  } catch {
    // OpenSSL's message may quote part of the key material.
    throw new TerminalError('The JWT private key in the Salesforce secret is not a readable PEM private key');
  }
  if (key.asymmetricKeyType !== 'rsa') {
    throw new TerminalError(
      `The JWT private key in the Salesforce secret is a ${key.asymmetricKeyType ?? 'non-asymmetric'} key; RS256 needs an RSA key`,
    );
  }
  const signingInput = `${header}.${claims}`;
  const signature = createSign('RSA-SHA256').update(signingInput).sign(key);
  return `${signingInput}.${base64url(signature)}`;
}

/**
 * The JWT `aud` for a login URL: Salesforce accepts `https://login.salesforce.com`,
 * `https://test.salesforce.com` or an Experience Cloud site URL, not a My Domain URL
 * (https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm). A sandbox My
 * Domain maps to test, a production My Domain to login; any other URL (a site, the emulator) is
 * its own audience.
 */
export function jwtAudienceFor(loginUrl: string): string {
  const host = new URL(loginUrl).hostname.toLowerCase();
  if (host === 'test.salesforce.com' || host.endsWith('.sandbox.my.salesforce.com'))
    return 'https://test.salesforce.com';
  if (host === 'login.salesforce.com' || host.endsWith('.my.salesforce.com'))
    return 'https://login.salesforce.com';
  return loginUrl;
}

/** What a token endpoint answers (the keys jsforce reads). */
interface TokenResponse {
  access_token: string;
  instance_url: string;
  id?: string;
}

function assertTokenResponse(res: unknown, flow: SalesforceAuthFlow): TokenResponse {
  const r = res as Partial<TokenResponse> | undefined;
  if (!r || typeof r.access_token !== 'string' || typeof r.instance_url !== 'string') {
    throw new TerminalError(`Salesforce ${flow} sign-in answered without access_token or instance_url`);
  }
  return r as TokenResponse;
}

/**
 * Signs `conn` in with the flow of `secret` and returns the new access token. Used for the first
 * sign-in and, installed as the connection's `refreshFn`, each time a session expires: the flows
 * roundtrip uses have no refresh token, so a refresh is a new sign-in.
 */
export async function signIn(conn: Connection, secret: SalesforceSecret): Promise<string> {
  const flow = authFlowOf(secret);
  switch (secret.flow) {
    case undefined:
    case 'soap':
      // loginBySoap, not login(): login() would install jsforce's own refresh delegate in place of ours.
      await conn.loginBySoap(secret.username, secret.password + (secret.securityToken ?? ''));
      break;
    case 'oauth-password':
      establish(
        conn,
        assertTokenResponse(
          await conn.oauth2.authenticate(secret.username, secret.password + (secret.securityToken ?? '')),
          flow,
        ),
      );
      break;
    case 'client-credentials':
      establish(
        conn,
        assertTokenResponse(await conn.oauth2.requestToken({ grant_type: 'client_credentials' }), flow),
      );
      break;
    case 'jwt': {
      const assertion = buildJwtAssertion({
        clientId: secret.clientId,
        username: secret.username,
        audience: secret.audience ?? jwtAudienceFor(secret.loginUrl),
        privateKey: secret.privateKey,
      });
      establish(
        conn,
        assertTokenResponse(
          await conn.oauth2.requestToken({ grant_type: JWT_BEARER_GRANT_TYPE, assertion }),
          flow,
        ),
      );
      break;
    }
  }
  if (!conn.accessToken) throw new TerminalError(`Salesforce ${flow} sign-in returned no session`);
  return conn.accessToken;
}

function establish(conn: Connection, res: TokenResponse): void {
  const idParts = res.id?.split('/') ?? [];
  const userId = idParts.pop();
  const organizationId = idParts.pop();
  // `_establish` is what jsforce's own `authorize()` calls after the token request; it is declared
  // public in connection.d.ts. authorize() itself is not used so that each flow sends only its keys.
  conn._establish({
    instanceUrl: res.instance_url,
    accessToken: res.access_token,
    ...(userId && organizationId && res.id ? { userInfo: { id: userId, organizationId, url: res.id } } : {}),
  });
}
