import { classifyAthenaError } from '../../../lambdas/connectors/athena/errors';
import { classifySalesforceError } from '../../../lambdas/connectors/salesforce/errors';
import { TerminalError, TransientError } from '../../../lambdas/shared/errors';
import {
  ProxyTunnelError,
  proxyDescription,
  proxyFor,
  proxyShown,
  setProxyCredentials,
  throughProxyError,
} from '../../../lambdas/shared/proxy';

describe('proxyFor', () => {
  const PROXY = 'http://proxy.corp.example:3128';

  it('is none without a proxy variable, and jsforce’s first one set otherwise', () => {
    expect(proxyFor('https://login.salesforce.com', {})).toBeUndefined();
    expect(proxyFor('https://login.salesforce.com', { HTTPS_PROXY: PROXY })).toBe(PROXY);
    expect(proxyFor('https://login.salesforce.com', { HTTP_PROXY: PROXY })).toBe(PROXY);
    expect(
      proxyFor('https://login.salesforce.com', {
        https_proxy: 'http://a:1',
        HTTPS_PROXY: 'http://b:2',
      }),
    ).toBe('http://a:1');
    // An empty variable is no proxy (jsforce makes no agent of it either).
    expect(proxyFor('https://login.salesforce.com', { https_proxy: '', HTTP_PROXY: PROXY })).toBe(PROXY);
  });

  it('is none for this machine: localhost, 127.0.0.0/8 and ::1 (a Salesforce emulator)', () => {
    for (const url of [
      'http://localhost:4010/services/Soap/u/62.0',
      'http://127.0.0.1:4010/services/oauth2/token',
      'http://127.12.0.3:80',
      'http://[::1]:4010',
      'http://app.localhost:8080',
    ])
      expect([url, proxyFor(url, { HTTPS_PROXY: PROXY })]).toEqual([url, undefined]);
  });

  it('is none for a host NO_PROXY names: *, the host, or a domain with its subdomains', () => {
    const url = 'https://acme.my.salesforce.com/services/oauth2/token';
    for (const noProxy of [
      '*',
      'acme.my.salesforce.com',
      'salesforce.com',
      '.salesforce.com',
      '*.salesforce.com',
      'intranet, salesforce.com:443',
    ])
      expect([noProxy, proxyFor(url, { HTTPS_PROXY: PROXY, NO_PROXY: noProxy })]).toEqual([
        noProxy,
        undefined,
      ]);
    expect(proxyFor(url, { HTTPS_PROXY: PROXY, no_proxy: 'force.com,example.test' })).toBe(PROXY);
    // A suffix that is not a whole label does not match.
    expect(proxyFor(url, { HTTPS_PROXY: PROXY, NO_PROXY: 'force.com,lesforce.com' })).toBe(PROXY);
  });
});

describe('throughProxyError', () => {
  const env = { HTTPS_PROXY: 'http://bob:hunter2@proxy.corp:3128' };

  it("says the proxy without its password, the variable, and the deepest cause's message and code", () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:3128'), { code: 'ECONNREFUSED' });
    const err = throughProxyError(new TypeError('fetch failed', { cause: refused }), env.HTTPS_PROXY, env);
    expect(err.message).toBe(
      'the call through the proxy http://proxy.corp:3128 (from HTTPS_PROXY; NO_PROXY names hosts to reach directly) failed: connect ECONNREFUSED 10.0.0.1:3128',
    );
    expect((err as Error & { code?: string }).code).toBe('ECONNREFUSED');
    expect(err.message).not.toContain('hunter2');
  });

  const refusedWith = (status: number, text: string): ProxyTunnelError =>
    new ProxyTunnelError(`the proxy answered ${status} ${text} to CONNECT x.test:443`, status);

  it('says when the proxy wants credentials: in its URL on a laptop, the secret’s when deployed', () => {
    const laptop = throughProxyError(
      new TypeError('fetch failed', { cause: refusedWith(407, 'Proxy Authentication Required') }),
      'http://proxy.corp:3128',
      { https_proxy: 'http://proxy.corp:3128' },
    );
    expect(laptop.message).toBe(
      'the call through the proxy http://proxy.corp:3128 (from https_proxy; NO_PROXY names hosts to reach directly) failed: the proxy answered 407 Proxy Authentication Required to CONNECT x.test:443 (the proxy wants credentials: put them in its URL, http://user:password@host:port)',
    );
    // A tunnel refused for its credentials: a setting to change, not a call to retry.
    expect((laptop as Error & { code?: string }).code).toBe('PROXY_TUNNEL_REFUSED');
    const deployed = throughProxyError(refusedWith(407, 'Proxy Authentication Required'), env.HTTPS_PROXY, {
      ...env,
      ROUNDTRIP_PROXY_CREDENTIALS_SECRET: 'roundtrip/proxy',
    });
    expect(deployed.message).toContain(
      'to CONNECT x.test:443 (the proxy refused the credentials of the secret "roundtrip/proxy" (deployment.network.proxy.credentialsSecret))',
    );
    expect(deployed.message).not.toContain('hunter2');
  });
});

describe('a tunnel the proxy refused, as the connectors classify it', () => {
  const through = (status: number): Error =>
    throughProxyError(
      new TypeError('fetch failed', {
        cause: new ProxyTunnelError(`the proxy answered ${status} to CONNECT x:443`, status),
      }),
      'http://proxy.corp:3128',
      { HTTPS_PROXY: 'http://proxy.corp:3128' },
    );

  it('is transient when the proxy answered 5xx (it could not reach the host), terminal for 407 and 403', () => {
    for (const status of [502, 503]) {
      expect(classifySalesforceError(through(status), { operation: 'count' })).toBeInstanceOf(TransientError);
      expect(classifyAthenaError(through(status), 'Athena GetQueryExecution')).toBeInstanceOf(TransientError);
    }
    for (const status of [407, 403]) {
      const sf = classifySalesforceError(through(status), { operation: 'count' });
      expect(sf).toBeInstanceOf(TerminalError);
      expect(sf).not.toBeInstanceOf(TransientError);
      expect(classifyAthenaError(through(status), 'Athena GetQueryExecution')).not.toBeInstanceOf(
        TransientError,
      );
    }
  });
});

describe('setProxyCredentials', () => {
  it('puts the user name and password into the proxy variable in effect, exactly as given', () => {
    const env: NodeJS.ProcessEnv = {
      HTTPS_PROXY: 'http://old:secret@proxy.corp:3128',
      HTTP_PROXY: 'http://other:8080',
    };
    expect(setProxyCredentials('svc@corp', 'p:a/s%41 w?#', env)).toBe(true);
    expect(env.HTTP_PROXY).toBe('http://other:8080');
    const url = new URL(env.HTTPS_PROXY as string);
    expect([url.host, decodeURIComponent(url.username), decodeURIComponent(url.password)]).toEqual([
      'proxy.corp:3128',
      'svc@corp',
      'p:a/s%41 w?#',
    ]);
    expect(proxyShown(env.HTTPS_PROXY as string)).toBe('http://proxy.corp:3128');
  });

  it('sets nothing without a proxy variable', () => {
    const env: NodeJS.ProcessEnv = {};
    expect(setProxyCredentials('u', 'p', env)).toBe(false);
    expect(env).toEqual({});
  });
});

describe('proxyDescription', () => {
  it('says nothing without a proxy, and the proxy without its password, its variable and NO_PROXY with one', () => {
    expect(proxyDescription({})).toBeUndefined();
    expect(
      proxyDescription({ HTTP_PROXY: 'http://bob:hunter2@proxy.corp:3128', NO_PROXY: '.internal, db.corp' }),
    ).toBe(
      'Salesforce and AWS calls go through http://proxy.corp:3128 (HTTP_PROXY), in a CONNECT tunnel; directly to this machine (localhost, 127.0.0.0/8, ::1) and to .internal, db.corp (NO_PROXY)',
    );
    expect(proxyDescription({ https_proxy: 'http://proxy.corp:3128' })).toBe(
      'Salesforce and AWS calls go through http://proxy.corp:3128 (https_proxy), in a CONNECT tunnel; directly to this machine (localhost, 127.0.0.0/8, ::1)',
    );
  });
});
