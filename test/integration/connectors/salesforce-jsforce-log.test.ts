/**
 * jsforce's own logging stays off under the connector, whatever JSFORCE_LOG_LEVEL says: at DEBUG
 * jsforce prints the SOAP login's answer whole (`SOAP response = …<sessionId>…`) and HTML answers'
 * bodies with console.log, beside our logger and its redaction, into the function's log. The
 * variable is read when jsforce is first loaded, so this file sets it before loading anything.
 */
process.env.JSFORCE_LOG_LEVEL = 'DEBUG';

import type { SalesforceEmulator } from '../../../emulators/salesforce';

describe('the Salesforce connector under JSFORCE_LOG_LEVEL=DEBUG', () => {
  let sf: SalesforceEmulator;

  beforeAll(async () => {
    const { startSalesforceEmulator } = await import('../../../emulators/salesforce');
    sf = await startSalesforceEmulator({ seed: { Lead: [{ LastName: 'Log', Company: 'Quiet' }] } });
  });
  afterAll(async () => {
    await sf?.stop();
    delete process.env.JSFORCE_LOG_LEVEL;
  });

  it('signs in, renews its session and reads without jsforce printing the session id or its calls', async () => {
    const { connectSalesforce } = await import('../../../lambdas/connectors/salesforce');
    const { createMemoryLogger } = await import('../../../lambdas/shared/logging');
    let printed = '';
    const capture = (...args: unknown[]): void => {
      printed += `${args.map(String).join(' ')}\n`;
    };
    const log = jest.spyOn(console, 'log').mockImplementation(capture);
    const error = jest.spyOn(console, 'error').mockImplementation(capture);
    try {
      const connector = await connectSalesforce({
        secret: {
          loginUrl: sf.loginUrl,
          username: sf.credentials.username,
          password: sf.credentials.password,
          securityToken: sf.credentials.securityToken,
        },
        logger: createMemoryLogger(),
        apiVersion: '62.0',
      });
      // A session that expires: jsforce renews it (a SOAP login again) and sends the call again.
      sf.faults.set({ sessionExpiresAfterCalls: 1 });
      expect(await connector.count('SELECT COUNT() FROM Lead')).toBe(1);
      expect(await connector.count('SELECT COUNT() FROM Lead')).toBe(1);
    } finally {
      sf.faults.clear();
      log.mockRestore();
      error.mockRestore();
    }
    // Nothing of the connection or its HTTP calls (answers whole); jsforce's module-wide loggers
    // (request-helper, stream: sizes and timings; the refresh delegate's "<refresh token>" label,
    // made before the connection's level is set) cannot be told per connection and say no value.
    expect(printed).not.toMatch(/\[(connection|http-api)\]/);
    expect(printed).not.toMatch(/sessionId|00D5e000000RtRt!/);
  });
});
