import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { Connection } from 'jsforce';
import {
  JWT_BEARER_GRANT,
  startSalesforceEmulator,
  type SalesforceEmulator,
} from '../../../emulators/salesforce';
import { api, caught, soapLogin, VERSION } from './support';

function rsaKeys(): { privateKey: KeyObject; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { privateKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

function jwt(claims: Record<string, unknown>, key: KeyObject, alg = 'RS256'): string {
  const enc = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = `${enc({ alg, typ: 'JWT' })}.${enc(claims)}`;
  return `${head}.${sign('RSA-SHA256', Buffer.from(head), key).toString('base64url')}`;
}

describe('Salesforce emulator logins and sessions', () => {
  const keys = rsaKeys();
  let sf: SalesforceEmulator;

  beforeAll(async () => {
    sf = await startSalesforceEmulator({ jwtCertificate: keys.publicPem });
  });
  afterAll(() => sf.stop());
  afterEach(() => sf.faults.clear());

  const oauthConnection = (extra: Record<string, string> = {}): Connection =>
    new Connection({
      oauth2: {
        loginUrl: sf.loginUrl,
        clientId: sf.credentials.clientId,
        clientSecret: sf.credentials.clientSecret,
        ...extra,
      },
      version: VERSION,
    });

  describe('SOAP login', () => {
    it('logs in with the default credentials and points jsforce at the instance', async () => {
      const conn = await soapLogin(sf);
      expect(sf.credentials).toMatchObject({
        username: 'admin@roundtrip.test',
        password: 'roundtrip',
        securityToken: '',
      });
      expect(conn.instanceUrl).toBe(sf.instanceUrl);
      expect(conn.userInfo?.organizationId).toBe(sf.store.orgId);
      expect(conn.accessToken).toMatch(/^00D\w{12}!/);
      expect((await conn.identity()).username).toBe('admin@roundtrip.test');
    });

    it('answers bad credentials with the INVALID_LOGIN SOAP fault', async () => {
      const conn = new Connection({ loginUrl: sf.loginUrl, version: VERSION });
      const err = await caught(conn.login(sf.credentials.username, 'wrong'));
      expect(err.message).toBe(
        'INVALID_LOGIN: Invalid username, password, security token; or user locked out.',
      );
      const res = await fetch(`${sf.loginUrl}/services/Soap/u/${VERSION}`, {
        method: 'POST',
        headers: { 'Content-Type': 'text/xml', SOAPAction: '""' },
        body: '<se:Envelope xmlns:se="http://schemas.xmlsoap.org/soap/envelope/"><se:Body><login xmlns="urn:partner.soap.sforce.com"><username>x</username><password>y</password></login></se:Body></se:Envelope>',
      });
      expect(res.status).toBe(500);
      expect(res.headers.get('content-type')).toBe('text/xml;charset=UTF-8');
      expect(await res.text()).toContain('<faultcode>sf:INVALID_LOGIN</faultcode>');
    });

    it('wants the security token appended to the password when one is set', async () => {
      const tokenOrg = await startSalesforceEmulator({ credentials: { securityToken: 'TOKEN123' } });
      try {
        const conn = new Connection({ loginUrl: tokenOrg.loginUrl, version: VERSION });
        expect((await caught(conn.login('admin@roundtrip.test', 'roundtrip'))).message).toMatch(
          /^INVALID_LOGIN/,
        );
        await conn.login('admin@roundtrip.test', 'roundtripTOKEN123');
        expect(conn.accessToken).toBeTruthy();
      } finally {
        await tokenOrg.stop();
      }
    });

    it('ends the session on logout', async () => {
      const conn = await soapLogin(sf);
      const token = conn.accessToken as string;
      await conn.logout();
      const res = await fetch(`${sf.instanceUrl}/services/data/v${VERSION}/limits`, {
        headers: { Authorization: `Bearer ${token}` },
      });
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual([
        { message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' },
      ]);
    });
  });

  describe('OAuth 2 token endpoint', () => {
    it('grants the password flow and rejects bad secrets and passwords', async () => {
      const conn = oauthConnection();
      await conn.login(sf.credentials.username, sf.credentials.password);
      expect(conn.instanceUrl).toBe(sf.instanceUrl);
      expect((await conn.query('SELECT COUNT() FROM Lead')).totalSize).toBe(0);
      const badPassword = await caught(oauthConnection().login(sf.credentials.username, 'nope'));
      expect([badPassword.name, badPassword.message]).toEqual(['invalid_grant', 'authentication failure']);
      const badSecret = await caught(
        oauthConnection({ clientSecret: 'nope' }).login(sf.credentials.username, sf.credentials.password),
      );
      expect([badSecret.name, badSecret.message]).toEqual(['invalid_client', 'invalid client credentials']);
    });

    it('answers token requests with the reference shape', async () => {
      const res = await fetch(`${sf.loginUrl}/services/oauth2/token`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: sf.credentials.clientId,
          client_secret: sf.credentials.clientSecret,
        }).toString(),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/json;charset=UTF-8');
      const body = (await res.json()) as Record<string, string>;
      expect(body).toMatchObject({
        instance_url: sf.instanceUrl,
        id: `${sf.loginUrl}/id/${sf.store.orgId}/${sf.store.userId}`,
        token_type: 'Bearer',
        issued_at: expect.stringMatching(/^\d+$/),
        signature: expect.any(String),
      });
      const conn = new Connection({
        instanceUrl: body.instance_url,
        accessToken: body.access_token,
        version: VERSION,
      });
      expect((await conn.limits()).DailyApiRequests?.Max).toBe(15_000);
    });

    it('verifies JWT bearer assertions: RS256 signature, iss, sub, aud, exp', async () => {
      const exp = Math.floor(Date.now() / 1000) + 180;
      const good = { iss: sf.credentials.clientId, sub: sf.credentials.username, aud: sf.loginUrl, exp };
      const conn = oauthConnection();
      const token = await conn.oauth2.requestToken({
        grant_type: JWT_BEARER_GRANT,
        assertion: jwt(good, keys.privateKey),
      });
      expect(token.access_token).toBeTruthy();
      const reject = async (assertion: string): Promise<[string, string]> => {
        const err = await caught(conn.oauth2.requestToken({ grant_type: JWT_BEARER_GRANT, assertion }));
        return [err.name, err.message];
      };
      expect(await reject(jwt(good, rsaKeys().privateKey))).toEqual([
        'invalid_grant',
        'invalid assertion: signature does not verify against the configured certificate',
      ]);
      expect(await reject(jwt({ ...good, aud: 'https://login.salesforce.com' }, keys.privateKey))).toEqual([
        'invalid_grant',
        'audience is invalid',
      ]);
      expect(await reject(jwt({ ...good, exp: exp - 3600 }, keys.privateKey))).toEqual([
        'invalid_grant',
        'invalid assertion: exp is missing or in the past',
      ]);
      expect(await reject(jwt({ ...good, iss: 'someone-else' }, keys.privateKey))).toEqual([
        'invalid_client_id',
        'client identifier invalid',
      ]);
      expect(await reject(jwt({ ...good, sub: 'other@roundtrip.test' }, keys.privateKey))).toEqual([
        'invalid_grant',
        "user hasn't approved this consumer",
      ]);
    });

    it('issues a refresh token through the authorization-code flow', async () => {
      const redirectUri = 'http://localhost/callback';
      const authorize = await fetch(
        `${sf.loginUrl}/services/oauth2/authorize?response_type=code&client_id=${sf.credentials.clientId}&redirect_uri=${encodeURIComponent(redirectUri)}&state=s1`,
        { redirect: 'manual' },
      );
      expect(authorize.status).toBe(302);
      const location = new URL(authorize.headers.get('location') as string);
      expect(location.searchParams.get('state')).toBe('s1');
      const conn = oauthConnection({ redirectUri });
      await conn.authorize(location.searchParams.get('code') as string);
      expect(conn.refreshToken).toBeTruthy();
    });
  });

  describe('session expiry', () => {
    it('makes jsforce log in again (SOAP) when the session expires', async () => {
      const conn = await soapLogin(sf);
      sf.faults.set({ sessionExpiresAfterCalls: 2 });
      sf.calls.clear();
      for (let i = 0; i < 5; i++) expect((await conn.query('SELECT COUNT() FROM Lead')).totalSize).toBe(0);
      expect(sf.calls.count({ status: 401 })).toBe(2);
      expect(sf.calls.count({ operation: 'login' })).toBe(2);
      expect(sf.calls.count({ operation: 'query', status: 200 })).toBe(5);
    });

    it('makes jsforce refresh an OAuth session with its refresh token', async () => {
      const redirectUri = 'http://localhost/callback';
      const authorize = await fetch(
        `${sf.loginUrl}/services/oauth2/authorize?response_type=code&client_id=${sf.credentials.clientId}&redirect_uri=${encodeURIComponent(redirectUri)}`,
        { redirect: 'manual' },
      );
      const code = new URL(authorize.headers.get('location') as string).searchParams.get('code') as string;
      const conn = oauthConnection({ redirectUri });
      await conn.authorize(code);
      const firstToken = conn.accessToken;
      sf.faults.set({ sessionExpiresAfterCalls: 1 });
      sf.calls.clear();
      await conn.query('SELECT COUNT() FROM Lead');
      await conn.query('SELECT COUNT() FROM Lead');
      expect(conn.accessToken).not.toBe(firstToken);
      expect(sf.calls.count({ operation: 'oauth.token', status: 200 })).toBe(1);
      expect(sf.calls.count({ status: 401 })).toBe(1);
    });

    it('lets the Bulk 2.0 client re-login on INVALID_SESSION_ID', async () => {
      const conn = await soapLogin(sf);
      sf.faults.set({ sessionExpiresAfterCalls: 3 });
      const res = await conn.bulk2.loadAndWaitForResults({
        object: 'Account',
        operation: 'insert',
        input: [{ Name: 'Bulk Refresh 1' }, { Name: 'Bulk Refresh 2' }],
        pollInterval: 20,
      });
      expect(res.successfulResults).toHaveLength(2);
      expect(sf.calls.count((c) => c.status === 401 && c.operation.startsWith('bulk.'))).toBeGreaterThan(0);
    });

    it('surfaces INVALID_SESSION_ID when the client has no way to refresh', async () => {
      const login = await soapLogin(sf);
      const conn = new Connection({
        instanceUrl: login.instanceUrl,
        accessToken: login.accessToken as string,
        version: VERSION,
      });
      sf.expireSessions();
      const err = await caught(conn.query('SELECT Id FROM Lead'));
      expect(err.name).toBe('INVALID_SESSION_ID');
      const raw = await api(sf, conn, '/limits');
      expect(raw.status).toBe(401);
    });
  });
});
