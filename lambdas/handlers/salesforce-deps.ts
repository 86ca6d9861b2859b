/**
 * The Salesforce builder of the handler deps (./deps.ts), in a module of its own so that only the
 * functions whose step uses Salesforce bundle the connector and jsforce. The connector module is
 * loaded on the first sign-in (dynamic `import()`), not when the handler module is.
 */
import type { SalesforceConnector } from '../connectors/salesforce';
import type { SalesforceBuilder } from './deps';

/**
 * Signs in on first use with the config's secret (the config's `loginUrl`, when set, overrides
 * the secret's) and returns the same connector afterwards, as long as the secret is the same: a
 * warm container outlives a rotation of the secret (a new password, client secret or key), and
 * its connector would renew its session with the old one. Each call reads the secret (Secrets
 * Manager's reads are cached for minutes) and signs in again when it changed. A failed sign-in is
 * not kept: the next call tries again.
 */
export const salesforceFromSecret: SalesforceBuilder = (settings, { secrets, logger }) => {
  let current: { readonly secret: string; readonly connector: Promise<SalesforceConnector> } | undefined;
  return async () => {
    const secret = await secrets.getSecret(settings.secret);
    const text = JSON.stringify(secret);
    if (current?.secret !== text) {
      if (current) logger.info('The Salesforce secret changed since the last sign-in: signing in with it');
      const attempt = (async () => {
        const { connectConfiguredSalesforce } = await import('../connectors/salesforce/connector');
        return connectConfiguredSalesforce(settings, secret, logger);
      })();
      const signingIn = { secret: text, connector: attempt };
      current = signingIn;
      attempt.catch(() => {
        if (current === signingIn) current = undefined;
      });
    }
    return current.connector;
  };
};
