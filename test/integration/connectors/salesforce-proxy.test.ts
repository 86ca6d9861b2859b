/**
 * A corporate proxy in the environment does not stand between roundtrip and a Salesforce on this
 * machine (`roundtrip demo`, `npm start` behind a proxy): jsforce sends every sign-in request
 * through the proxy `HTTPS_PROXY` names and reads no `NO_PROXY`; the connector sends a sign-in to
 * a loopback host directly (proxyFor). This file sets a proxy nothing listens on before
 * jsforce loads.
 */
import { DEAD_PROXY, restoreProxyEnvironment } from '../../support/dead-proxy';
import { startSalesforceEmulator, type SalesforceEmulator } from '../../../emulators/salesforce';
import { connectSalesforce } from '../../../lambdas/connectors/salesforce';
import { createMemoryLogger } from '../../../lambdas/shared/logging';

describe('Salesforce sign-in with HTTPS_PROXY set', () => {
  let sf: SalesforceEmulator;

  beforeAll(async () => {
    sf = await startSalesforceEmulator({ seed: { Lead: [{ LastName: 'Proxy', Company: 'Corp' }] } });
  });
  afterAll(async () => {
    await sf?.stop();
    restoreProxyEnvironment();
  });

  it('signs in to a Salesforce on this machine directly, SOAP and OAuth, not through the proxy', async () => {
    expect(process.env.HTTPS_PROXY).toBe(DEAD_PROXY);
    const soap = await connectSalesforce({
      secret: { loginUrl: sf.loginUrl, username: sf.credentials.username, password: sf.credentials.password },
      logger: createMemoryLogger(),
      apiVersion: sf.apiVersion,
    });
    expect(await soap.count('SELECT COUNT() FROM Lead')).toBe(1);
    const oauth = await connectSalesforce({
      secret: {
        flow: 'oauth-password',
        loginUrl: sf.loginUrl,
        clientId: sf.credentials.clientId,
        clientSecret: sf.credentials.clientSecret,
        username: sf.credentials.username,
        password: sf.credentials.password,
      },
      logger: createMemoryLogger(),
      apiVersion: sf.apiVersion,
    });
    expect(await oauth.count('SELECT COUNT() FROM Lead')).toBe(1);
  });
});
