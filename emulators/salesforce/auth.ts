/**
 * Logins and sessions of the Salesforce emulator: SOAP `login()`/`logout()`, the OAuth 2 token
 * endpoint (password, client-credentials, JWT bearer, refresh-token and authorization-code
 * grants), revocation, the identity URL, and the check of `Authorization: Bearer` on API calls.
 *
 * Shapes follow salesforce-wire.md, "Login". The emulator has one user and one connected app;
 * their credentials come from the options (defaults in {@link DEFAULT_CREDENTIALS}).
 */
import {
  createHmac,
  createPublicKey,
  randomBytes,
  timingSafeEqual,
  verify,
  X509Certificate,
} from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { xmlEscape, xmlUnescape } from './http';

/** The credentials the emulator accepts. */
export interface SalesforceCredentials {
  username: string;
  password: string;
  /** Appended to the password in SOAP and OAuth password logins, as Salesforce requires. */
  securityToken: string;
  clientId: string;
  clientSecret: string;
}

/** What `npx roundtrip emulate salesforce` accepts unless told otherwise (issue 3). */
export const DEFAULT_CREDENTIALS: Readonly<SalesforceCredentials> = {
  username: 'admin@roundtrip.test',
  password: 'roundtrip',
  securityToken: '',
  clientId: 'roundtrip-local',
  clientSecret: 'roundtrip-secret',
};

/** The SOAP fault string jsforce surfaces for bad credentials (salesforce-wire.md). */
export const INVALID_LOGIN_MESSAGE = 'Invalid username, password, security token; or user locked out.';

/** The OAuth grant type of the JWT bearer flow (RFC 7523). */
export const JWT_BEARER_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

/** How a session was obtained. */
export type SessionKind =
  'soap' | 'oauth.password' | 'oauth.client_credentials' | 'oauth.jwt' | 'oauth.refresh' | 'oauth.code';

/** A live access token. */
export interface Session {
  readonly token: string;
  readonly kind: SessionKind;
  readonly issuedAt: Date;
  /** API calls made with it since the expiry counter last restarted. */
  calls: number;
  /** The fault epoch the counter belongs to (see FaultController.sessionEpoch). */
  epoch: number;
}

/** An OAuth error answer: status and `{error, error_description}`. */
export class OAuthError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly description: string,
  ) {
    super(`${error}: ${description}`);
    this.name = 'OAuthError';
  }
}

/** A SOAP fault answer (HTTP 500). */
export class SoapFault extends Error {
  constructor(
    readonly exceptionCode: string,
    readonly exceptionMessage: string,
  ) {
    super(`${exceptionCode}: ${exceptionMessage}`);
    this.name = 'SoapFault';
  }

  /** The SOAP envelope with the fault, as Salesforce's partner API sends it. */
  toXml(): string {
    return (
      '<?xml version="1.0" encoding="UTF-8"?>' +
      '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" ' +
      'xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">' +
      '<soapenv:Body><soapenv:Fault>' +
      `<faultcode>sf:${xmlEscape(this.exceptionCode)}</faultcode>` +
      `<faultstring>${xmlEscape(this.message)}</faultstring>` +
      '<detail><sf:LoginFault xsi:type="sf:LoginFault">' +
      `<sf:exceptionCode>${xmlEscape(this.exceptionCode)}</sf:exceptionCode>` +
      `<sf:exceptionMessage>${xmlEscape(this.exceptionMessage)}</sf:exceptionMessage>` +
      '</sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>'
    );
  }
}

/** Options of {@link AuthService}. */
export interface AuthOptions {
  credentials: SalesforceCredentials;
  orgId: string;
  userId: string;
  /** PEM certificate or public key that JWT bearer assertions must be signed for (RS256). */
  jwtCertificate?: string;
  /** Clock for `exp` checks and `issued_at`. */
  clock?: () => Date;
}

/** The token response of every successful OAuth grant. */
export interface TokenResponse {
  access_token: string;
  instance_url: string;
  id: string;
  token_type: 'Bearer';
  issued_at: string;
  signature: string;
  scope: string;
  refresh_token?: string;
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function base64UrlDecode(part: string): Buffer {
  return Buffer.from(part.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

function readTag(xml: string, tag: string): string | undefined {
  const m = new RegExp(`<(?:[\\w-]+:)?${tag}(?:\\s[^>]*)?>([\\s\\S]*?)</(?:[\\w-]+:)?${tag}>`).exec(xml);
  return m?.[1] === undefined ? undefined : xmlUnescape(m[1]);
}

/** Loads the JWT verification key from a PEM certificate or public key. */
export function loadJwtKey(pem: string): KeyObject {
  if (pem.includes('BEGIN CERTIFICATE')) return new X509Certificate(pem).publicKey;
  return createPublicKey(pem);
}

/** Issues and checks sessions. */
export class AuthService {
  /** Where the emulator listens; set once the server is bound. */
  loginUrl = '';
  instanceUrl = '';
  private readonly sessions = new Map<string, Session>();
  private readonly refreshTokens = new Set<string>();
  private readonly authorizationCodes = new Map<string, string>(); // code → redirect_uri
  private readonly jwtKey: KeyObject | undefined;
  private readonly clock: () => Date;

  constructor(private readonly options: AuthOptions) {
    this.jwtKey = options.jwtCertificate ? loadJwtKey(options.jwtCertificate) : undefined;
    this.clock = options.clock ?? (() => new Date());
  }

  get credentials(): SalesforceCredentials {
    return this.options.credentials;
  }

  /** The identity URL of the emulator's user: `{loginUrl}/id/{orgId}/{userId}`. */
  get identityUrl(): string {
    return `${this.loginUrl}/id/${this.options.orgId}/${this.options.userId}`;
  }

  private newToken(kind: SessionKind): Session {
    // Salesforce session ids start with the org id (15 chars) and '!'.
    const token = `${this.options.orgId.slice(0, 15)}!${randomBytes(48).toString('base64url')}`;
    const session: Session = { token, kind, issuedAt: this.clock(), calls: 0, epoch: -1 };
    this.sessions.set(token, session);
    return session;
  }

  /** The session of a `Bearer` header, or undefined when the token is unknown, revoked or expired. */
  sessionFor(authorization: string | undefined): Session | undefined {
    if (!authorization) return undefined;
    const m = /^(?:Bearer|OAuth)\s+(.+)$/i.exec(authorization.trim());
    return m?.[1] ? this.sessions.get(m[1]) : undefined;
  }

  /** Ends a session (expiry fault, logout, revocation). */
  expire(token: string): void {
    this.sessions.delete(token);
  }

  /** Ends every session: every client must log in again. */
  expireAll(): void {
    this.sessions.clear();
  }

  /** Number of live sessions. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  private checkPassword(username: string | undefined, password: string | undefined): boolean {
    const c = this.options.credentials;
    return (
      username !== undefined &&
      password !== undefined &&
      username.toLowerCase() === c.username.toLowerCase() &&
      safeEqual(password, c.password + c.securityToken)
    );
  }

  // ---------------------------------------------------------------- SOAP

  /** Answers a SOAP call on `/services/Soap/u/{version}`: `login` or `logout`. Throws SoapFault. */
  soap(body: string, version: string): { xml: string; operation: 'login' | 'logout' } {
    if (/<(?:[\w-]+:)?logout[\s/>]/.test(body)) {
      const sessionId = readTag(body, 'sessionId');
      if (!sessionId || !this.sessions.has(sessionId)) {
        throw new SoapFault(
          'INVALID_SESSION_ID',
          'Invalid Session ID found in SessionHeader: Illegal Session',
        );
      }
      this.expire(sessionId);
      return {
        operation: 'logout',
        xml:
          '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" ' +
          'xmlns="urn:partner.soap.sforce.com"><soapenv:Body><logoutResponse/></soapenv:Body></soapenv:Envelope>',
      };
    }
    if (!/<(?:[\w-]+:)?login[\s>]/.test(body)) {
      throw new SoapFault(
        'INVALID_OPERATION',
        'The emulator answers only login and logout on the SOAP endpoint',
      );
    }
    const username = readTag(body, 'username');
    const password = readTag(body, 'password');
    if (!this.checkPassword(username, password)) {
      throw new SoapFault('INVALID_LOGIN', INVALID_LOGIN_MESSAGE);
    }
    const session = this.newToken('soap');
    const { orgId, userId, credentials } = this.options;
    const serverUrl = `${this.instanceUrl}/services/Soap/u/${version}/${orgId.slice(0, 15)}`;
    const metadataServerUrl = `${this.instanceUrl}/services/Soap/m/${version}/${orgId.slice(0, 15)}`;
    return {
      operation: 'login',
      xml:
        '<?xml version="1.0" encoding="UTF-8"?>' +
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" ' +
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><loginResponse><result>' +
        `<metadataServerUrl>${xmlEscape(metadataServerUrl)}</metadataServerUrl>` +
        '<passwordExpired>false</passwordExpired><sandbox>false</sandbox>' +
        `<serverUrl>${xmlEscape(serverUrl)}</serverUrl>` +
        `<sessionId>${xmlEscape(session.token)}</sessionId>` +
        `<userId>${userId}</userId>` +
        '<userInfo>' +
        `<organizationId>${orgId}</organizationId><organizationName>roundtrip emulator</organizationName>` +
        `<sessionSecondsValid>7200</sessionSecondsValid><userEmail>${xmlEscape(credentials.username)}</userEmail>` +
        `<userFullName>Roundtrip Admin</userFullName><userId>${userId}</userId>` +
        `<userName>${xmlEscape(credentials.username)}</userName><userTimeZone>UTC</userTimeZone>` +
        '</userInfo></result></loginResponse></soapenv:Body></soapenv:Envelope>',
    };
  }

  // ---------------------------------------------------------------- OAuth

  private tokenResponse(session: Session, refreshToken?: string): TokenResponse {
    const issuedAt = String(session.issuedAt.getTime());
    const id = this.identityUrl;
    const signature = createHmac('sha256', this.options.credentials.clientSecret)
      .update(id + issuedAt)
      .digest('base64');
    return {
      access_token: session.token,
      instance_url: this.instanceUrl,
      id,
      token_type: 'Bearer',
      issued_at: issuedAt,
      signature,
      scope: refreshToken ? 'api refresh_token' : 'api',
      ...(refreshToken ? { refresh_token: refreshToken } : {}),
    };
  }

  private checkClient(
    clientId: string | undefined,
    clientSecret: string | undefined,
    secretRequired: boolean,
  ): void {
    const c = this.options.credentials;
    if (!clientId || clientId !== c.clientId) {
      throw new OAuthError(400, 'invalid_client_id', 'client identifier invalid');
    }
    if (
      (secretRequired || clientSecret !== undefined) &&
      (!clientSecret || !safeEqual(clientSecret, c.clientSecret))
    ) {
      throw new OAuthError(400, 'invalid_client', 'invalid client credentials');
    }
  }

  /** Answers `POST /services/oauth2/token` (form-encoded params). Throws OAuthError. */
  token(params: URLSearchParams): TokenResponse {
    const get = (name: string): string | undefined => params.get(name) ?? undefined;
    const grant = get('grant_type');
    switch (grant) {
      case 'password': {
        this.checkClient(get('client_id'), get('client_secret'), true);
        if (!this.checkPassword(get('username'), get('password'))) {
          throw new OAuthError(400, 'invalid_grant', 'authentication failure');
        }
        return this.tokenResponse(this.newToken('oauth.password'));
      }
      case 'client_credentials': {
        this.checkClient(get('client_id'), get('client_secret'), true);
        return this.tokenResponse(this.newToken('oauth.client_credentials'));
      }
      case JWT_BEARER_GRANT:
        return this.tokenResponse(this.verifyJwt(get('assertion')));
      case 'refresh_token': {
        this.checkClient(get('client_id'), get('client_secret'), false);
        const refreshToken = get('refresh_token');
        if (!refreshToken || !this.refreshTokens.has(refreshToken)) {
          throw new OAuthError(400, 'invalid_grant', 'expired access/refresh token');
        }
        return this.tokenResponse(this.newToken('oauth.refresh'));
      }
      case 'authorization_code': {
        this.checkClient(get('client_id'), get('client_secret'), true);
        const code = get('code');
        const redirectUri = code ? this.authorizationCodes.get(code) : undefined;
        if (!code || redirectUri === undefined) {
          throw new OAuthError(400, 'invalid_grant', 'invalid authorization code');
        }
        if ((get('redirect_uri') ?? '') !== redirectUri) {
          throw new OAuthError(400, 'redirect_uri_mismatch', 'redirect_uri must match configuration');
        }
        this.authorizationCodes.delete(code);
        const refreshToken = `${this.options.orgId.slice(0, 15)}!R${randomBytes(48).toString('base64url')}`;
        this.refreshTokens.add(refreshToken);
        return this.tokenResponse(this.newToken('oauth.code'), refreshToken);
      }
      default:
        throw new OAuthError(400, 'unsupported_grant_type', `grant type not supported: ${grant ?? '(none)'}`);
    }
  }

  /**
   * The web-server flow's authorize step, approved at once for the emulator's one user (there is
   * no login page): returns the redirect location with a one-time `code`.
   */
  authorize(params: URLSearchParams): string {
    if (params.get('response_type') !== 'code') {
      throw new OAuthError(
        400,
        'unsupported_response_type',
        'response type not supported (the emulator supports code)',
      );
    }
    this.checkClient(params.get('client_id') ?? undefined, undefined, false);
    const redirectUri = params.get('redirect_uri');
    if (!redirectUri)
      throw new OAuthError(400, 'redirect_uri_mismatch', 'redirect_uri must match configuration');
    const code = randomBytes(24).toString('base64url');
    this.authorizationCodes.set(code, redirectUri);
    const location = new URL(redirectUri);
    location.searchParams.set('code', code);
    const state = params.get('state');
    if (state !== null) location.searchParams.set('state', state);
    return location.toString();
  }

  /** Answers `POST /services/oauth2/revoke`: ends an access token or a refresh token. */
  revoke(token: string | undefined): void {
    if (token && this.sessions.delete(token)) return;
    if (token && this.refreshTokens.delete(token)) return;
    throw new OAuthError(400, 'unsupported_token_type', 'this token type is not supported');
  }

  /** Checks a JWT bearer assertion: RS256 signature, iss, sub, aud, exp. */
  private verifyJwt(assertion: string | undefined): Session {
    if (!this.jwtKey) {
      throw new OAuthError(
        400,
        'invalid_grant',
        'invalid assertion: no certificate is configured (option jwtCertificate)',
      );
    }
    const parts = assertion?.split('.') ?? [];
    const [headerPart, payloadPart, signaturePart] = parts;
    if (parts.length !== 3 || !headerPart || !payloadPart || signaturePart === undefined) {
      throw new OAuthError(400, 'invalid_grant', 'invalid assertion: not a JWT (header.payload.signature)');
    }
    let header: { alg?: unknown };
    let claims: { iss?: unknown; sub?: unknown; aud?: unknown; exp?: unknown };
    try {
      header = JSON.parse(base64UrlDecode(headerPart).toString('utf8')) as typeof header;
      claims = JSON.parse(base64UrlDecode(payloadPart).toString('utf8')) as typeof claims;
    } catch {
      throw new OAuthError(
        400,
        'invalid_grant',
        'invalid assertion: header or payload is not base64url JSON',
      );
    }
    if (header.alg !== 'RS256') {
      throw new OAuthError(
        400,
        'invalid_grant',
        `invalid assertion: alg must be RS256, got ${String(header.alg)}`,
      );
    }
    const signed = Buffer.from(`${headerPart}.${payloadPart}`);
    if (!verify('RSA-SHA256', signed, this.jwtKey, base64UrlDecode(signaturePart))) {
      throw new OAuthError(
        400,
        'invalid_grant',
        'invalid assertion: signature does not verify against the configured certificate',
      );
    }
    const c = this.options.credentials;
    if (claims.iss !== c.clientId) {
      throw new OAuthError(400, 'invalid_client_id', 'client identifier invalid');
    }
    if (typeof claims.sub !== 'string' || claims.sub.toLowerCase() !== c.username.toLowerCase()) {
      throw new OAuthError(400, 'invalid_grant', "user hasn't approved this consumer");
    }
    const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    const accepted = new Set([this.loginUrl, `${this.loginUrl}/`]);
    if (!audiences.some((a) => typeof a === 'string' && accepted.has(a))) {
      throw new OAuthError(400, 'invalid_grant', 'audience is invalid');
    }
    if (typeof claims.exp !== 'number' || claims.exp * 1000 <= this.clock().getTime()) {
      throw new OAuthError(400, 'invalid_grant', 'invalid assertion: exp is missing or in the past');
    }
    return this.newToken('oauth.jwt');
  }

  /** The identity document (`GET /id/{orgId}/{userId}`). */
  identity(): Record<string, unknown> {
    const { orgId, userId, credentials } = this.options;
    return {
      id: this.identityUrl,
      asserted_user: true,
      user_id: userId,
      organization_id: orgId,
      username: credentials.username,
      nick_name: 'admin',
      display_name: 'Roundtrip Admin',
      email: credentials.username,
      active: true,
      user_type: 'STANDARD',
      language: 'en_US',
      locale: 'en_US',
      utcOffset: 0,
      urls: {
        rest: `${this.instanceUrl}/services/data/v{version}/`,
        sobjects: `${this.instanceUrl}/services/data/v{version}/sobjects/`,
        query: `${this.instanceUrl}/services/data/v{version}/query/`,
      },
    };
  }
}
