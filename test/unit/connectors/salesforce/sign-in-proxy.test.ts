import { signInProxyFor } from '../../../../lambdas/connectors/salesforce/connector';

describe('signInProxyFor', () => {
  const PROXY = 'http://proxy.corp.example:3128';

  it('is none without a proxy variable, and jsforce’s first one set otherwise', () => {
    expect(signInProxyFor('https://login.salesforce.com', {})).toBeUndefined();
    expect(signInProxyFor('https://login.salesforce.com', { HTTPS_PROXY: PROXY })).toBe(PROXY);
    expect(signInProxyFor('https://login.salesforce.com', { HTTP_PROXY: PROXY })).toBe(PROXY);
    expect(
      signInProxyFor('https://login.salesforce.com', {
        https_proxy: 'http://a:1',
        HTTPS_PROXY: 'http://b:2',
      }),
    ).toBe('http://a:1');
    // An empty variable is no proxy (jsforce makes no agent of it either).
    expect(signInProxyFor('https://login.salesforce.com', { https_proxy: '', HTTP_PROXY: PROXY })).toBe(
      PROXY,
    );
  });

  it('is none for this machine: localhost, 127.0.0.0/8 and ::1 (a Salesforce emulator)', () => {
    for (const url of [
      'http://localhost:4010/services/Soap/u/62.0',
      'http://127.0.0.1:4010/services/oauth2/token',
      'http://127.12.0.3:80',
      'http://[::1]:4010',
      'http://app.localhost:8080',
    ])
      expect([url, signInProxyFor(url, { HTTPS_PROXY: PROXY })]).toEqual([url, undefined]);
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
      expect([noProxy, signInProxyFor(url, { HTTPS_PROXY: PROXY, NO_PROXY: noProxy })]).toEqual([
        noProxy,
        undefined,
      ]);
    expect(signInProxyFor(url, { HTTPS_PROXY: PROXY, no_proxy: 'force.com,example.test' })).toBe(PROXY);
    // A suffix that is not a whole label does not match.
    expect(signInProxyFor(url, { HTTPS_PROXY: PROXY, NO_PROXY: 'force.com,lesforce.com' })).toBe(PROXY);
  });
});
