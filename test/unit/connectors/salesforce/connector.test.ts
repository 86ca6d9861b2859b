import { apiRelative, parseLimitInfo } from '../../../../lambdas/connectors/salesforce';
import { TerminalError } from '../../../../lambdas/shared/errors';

describe('apiRelative', () => {
  it('turns a nextRecordsUrl into a path under the versioned API base', () => {
    expect(apiRelative('/services/data/v62.0/query/01gxx0000000001AAA-2000')).toBe(
      '/query/01gxx0000000001AAA-2000',
    );
    expect(apiRelative('/services/data/v59.0/queryAll/01gxx0000000001AAA-400')).toBe(
      '/queryAll/01gxx0000000001AAA-400',
    );
  });

  it('refuses a URL of another form, terminally, naming it', () => {
    for (const url of [
      'https://x.my.salesforce.com/services/data/v62.0/query/1',
      '/query/1',
      '/services/data/v62/query/1',
    ]) {
      expect(() => apiRelative(url)).toThrow(TerminalError);
      expect(() => apiRelative(url)).toThrow(
        `Salesforce answered a nextRecordsUrl of an unexpected form: ${url}`,
      );
    }
  });
});

describe('parseLimitInfo', () => {
  it('reads the API usage of a Sforce-Limit-Info header', () => {
    expect(parseLimitInfo('api-usage=25/15000')).toEqual({ used: 25, max: 15000 });
    expect(parseLimitInfo(undefined)).toBeUndefined();
    // A connected app's own count may share the header, in either order.
    expect(parseLimitInfo('per-app-api-usage=1/10(appName=x)')).toBeUndefined();
    expect(parseLimitInfo('per-app-api-usage=17/250(appName=x); api-usage=135/5000')).toEqual({
      used: 135,
      max: 5000,
    });
    expect(parseLimitInfo('api-usage=135/5000; per-app-api-usage=17/250(appName=x)')).toEqual({
      used: 135,
      max: 5000,
    });
  });
});
