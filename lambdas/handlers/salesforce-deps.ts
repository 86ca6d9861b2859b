/**
 * The Salesforce builder of the handler deps (./deps.ts), in a module of its own so that only the
 * functions whose step uses Salesforce bundle the connector and jsforce. The connector module is
 * loaded on the first sign-in (dynamic `import()`), not when the handler module is.
 */
import type { SalesforceConnector } from '../connectors/salesforce';
import type { SalesforceBuilder } from './deps';

/**
 * Signs in on first use with the config's secret (the config's `loginUrl`, when set, overrides
 * the secret's) and returns the same connector afterwards. A failed sign-in is not kept: the next
 * call tries again.
 */
export const salesforceFromSecret: SalesforceBuilder = (settings, { secrets, logger }) => {
  let connecting: Promise<SalesforceConnector> | undefined;
  return () => {
    if (!connecting) {
      const attempt = (async () => {
        const secret = await secrets.getSecret(settings.secret);
        const withLoginUrl =
          settings.loginUrl && secret && typeof secret === 'object'
            ? { ...(secret as Record<string, unknown>), loginUrl: settings.loginUrl }
            : secret;
        const { connectSalesforce } = await import('../connectors/salesforce/connector');
        return connectSalesforce({
          secret: withLoginUrl,
          secretName: settings.secret,
          apiVersion: settings.apiVersion,
          logger,
        });
      })();
      connecting = attempt;
      attempt.catch(() => {
        if (connecting === attempt) connecting = undefined;
      });
    }
    return connecting;
  };
};
