import {
  ApiLimitExceededError,
  ERROR_NAMES,
  SalesforceSignInRefusedError,
  TerminalError,
  TransientError,
} from '../../../../lambdas/shared/errors';
import { createRedactor } from '../../../../lambdas/shared/redact';
import { classifySalesforceError, refusedCallStatus } from '../../../../lambdas/connectors/salesforce/errors';

/** An error shaped like jsforce's HttpApiError. */
function apiError(errorCode: string, message: string): Error {
  return Object.assign(new Error(message), { name: errorCode, errorCode });
}

describe('classifySalesforceError', () => {
  it.each([
    ['INVALID_FIELD', "No such column 'Foo__c' on entity 'Lead'"],
    ['MALFORMED_QUERY', 'unexpected token: FORM'],
    ['INVALID_TYPE', "sObject type 'Leed' is not supported."],
    ['NOT_FOUND', 'The requested resource does not exist'],
    ['INVALID_SESSION_ID', 'Session expired or invalid'],
  ])('%s is terminal and keeps Salesforce’s text', (code, message) => {
    const out = classifySalesforceError(apiError(code, message), { operation: 'describe Lead' });
    expect(out).toBeInstanceOf(TerminalError);
    expect(out.message).toContain(`Salesforce describe Lead failed: ${code}: ${message}`);
  });

  it('treats the daily limit as terminal and says why, the concurrent limit as transient', () => {
    const daily = classifySalesforceError(
      apiError('REQUEST_LIMIT_EXCEEDED', 'TotalRequests Limit exceeded.'),
    );
    expect(daily).toBeInstanceOf(TerminalError);
    // Named apart: the state machine stops the whole run on it, not only the write-back task.
    expect(daily.name).toBe(ERROR_NAMES.apiLimit);
    expect(daily.message).toMatch(/daily API allowance is spent/);
    // Classified again (a connector's error passed up through another), it keeps its name.
    const again = classifySalesforceError(daily, { redactor: createRedactor(['TotalRequests']) });
    expect([again.name, again.message]).toEqual([
      ERROR_NAMES.apiLimit,
      expect.not.stringContaining('TotalRequests'),
    ]);
    const concurrent = classifySalesforceError(
      apiError('REQUEST_LIMIT_EXCEEDED', 'ConcurrentPerOrgLongTxn Limit exceeded.'),
    );
    expect(concurrent).toBeInstanceOf(TransientError);
  });

  it('says of a refused connection that nothing listens at the address, and keeps it transient', () => {
    const refused = Object.assign(
      new Error(
        'request to http://127.0.0.1:8444/services/Soap/u/62.0 failed, reason: connect ECONNREFUSED 127.0.0.1:8444',
      ),
      { name: 'FetchError', code: 'ECONNREFUSED' },
    );
    const out = classifySalesforceError(refused, { operation: 'sign-in (soap) at http://127.0.0.1:8444' });
    expect(out).toBeInstanceOf(TransientError);
    expect(out.message).toBe(
      'Salesforce sign-in (soap) at http://127.0.0.1:8444 failed: ECONNREFUSED: request to http://127.0.0.1:8444/services/Soap/u/62.0 failed, reason: connect ECONNREFUSED 127.0.0.1:8444 (nothing accepts connections there: is the server running, on that host and port?)',
    );
  });

  it('treats sign-in refusals as terminal', () => {
    const oauth = Object.assign(new Error('authentication failure'), { name: 'invalid_grant' });
    expect(classifySalesforceError(oauth)).toBeInstanceOf(TerminalError);
    expect(classifySalesforceError(oauth).message).toContain('invalid_grant: authentication failure');
    const soap = new Error('INVALID_LOGIN: Invalid username, password, security token; or user locked out.');
    expect(classifySalesforceError(soap)).toBeInstanceOf(TerminalError);
    expect(classifySalesforceError(soap).message).toContain('INVALID_LOGIN: Invalid username');
    const refresh = new Error('Unable to refresh session due to: authentication failure');
    expect(classifySalesforceError(refresh).message).toMatch(/session could not be renewed/);
  });

  it.each([
    ['ERROR_HTTP_503', apiError('ERROR_HTTP_503', 'Service Unavailable')],
    ['ERROR_HTTP_429', apiError('ERROR_HTTP_429', 'Too Many Requests')],
    ['SERVER_UNAVAILABLE', apiError('SERVER_UNAVAILABLE', 'Server unavailable')],
    [
      'UNABLE_TO_LOCK_ROW',
      apiError('UNABLE_TO_LOCK_ROW', 'unable to obtain exclusive access to this record'),
    ],
    [
      'ECONNRESET',
      Object.assign(new Error('request to http://x failed, reason: socket hang up'), {
        name: 'FetchError',
        code: 'ECONNRESET',
      }),
    ],
    ['fetch cause', Object.assign(new TypeError('fetch failed'), { cause: { code: 'UND_ERR_SOCKET' } })],
    ['terminated', new TypeError('terminated')],
    [
      'timeout',
      Object.assign(new Error('The operation was aborted due to timeout'), { name: 'TimeoutError' }),
    ],
    ['refresh on a dropped connection', new Error('Unable to refresh session due to: socket hang up')],
  ])('%s is transient', (_label, err) => {
    expect(classifySalesforceError(err)).toBeInstanceOf(TransientError);
  });

  it('says the reason of a fetch that failed, which fetch keeps in its cause', () => {
    const cause = Object.assign(new Error('getaddrinfo ENOTFOUND acme.my.salesforce.com'), {
      code: 'ENOTFOUND',
    });
    const err = classifySalesforceError(new TypeError('fetch failed', { cause }), { operation: 'count' });
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toBe(
      'Salesforce count failed: ENOTFOUND: fetch failed: getaddrinfo ENOTFOUND acme.my.salesforce.com',
    );
  });

  it('reads an error body left unparsed by a text response type', () => {
    const err = apiError(
      'ERROR_HTTP_400',
      '[{"message":"No such column \'X\' on entity \'Lead\'","errorCode":"INVALID_FIELD"}]',
    );
    const out = classifySalesforceError(err, { operation: 'query' });
    expect(out).toBeInstanceOf(TerminalError);
    expect(out.message).toBe("Salesforce query failed: INVALID_FIELD: No such column 'X' on entity 'Lead'");
  });

  it('redacts secrets from the message and from the cause', () => {
    const redactor = createRedactor(['Canary-Secret-9']);
    const err = Object.assign(new Error('bad password Canary-Secret-9 for Bearer 00Dabc!xyz'), {
      name: 'invalid_grant',
      data: { password: 'Canary-Secret-9' },
    });
    const out = classifySalesforceError(err, { redactor });
    expect(out.message).not.toContain('Canary');
    expect(out.message).not.toContain('00Dabc');
    expect(JSON.stringify(out.cause)).not.toContain('Canary');
    expect(String((out.cause as Error).stack)).not.toContain('Canary');
  });

  it('keeps the kind of an error that is already classified', () => {
    const t = new TransientError('later');
    expect(classifySalesforceError(t)).toBe(t);
    expect(
      classifySalesforceError(new TerminalError('x Canary-Secret-9'), {
        redactor: createRedactor(['Canary-Secret-9']),
      }).message,
    ).toBe('x [REDACTED]');
  });

  it.each([
    [ERROR_NAMES.signInRefused, SalesforceSignInRefusedError],
    [ERROR_NAMES.apiLimit, ApiLimitExceededError],
  ])('keeps a %s for the whole run when it is redacted again', (name, Kind) => {
    // What the state machine stops the run on is the name: redacting the message keeps it.
    const out = classifySalesforceError(new Kind('refused for Canary-Secret-9'), {
      redactor: createRedactor(['Canary-Secret-9']),
    });
    expect(out).toBeInstanceOf(Kind);
    expect([out.name, out.message]).toEqual([name, 'refused for [REDACTED]']);
  });
});

describe('refusedCallStatus', () => {
  /** An error as the connector makes of a call Salesforce answered with `status`. */
  const answered = (status: number, errorCode: string): Error =>
    Object.assign(apiError(errorCode, 'refused'), { statusCode: status });

  it('answers the 4xx of a call Salesforce refused as a whole, through the classified error', () => {
    const redactor = createRedactor(['s3cr3t-value']);
    expect(refusedCallStatus(classifySalesforceError(answered(400, 'INVALID_FIELD'), { redactor }))).toBe(
      400,
    );
    expect(refusedCallStatus(classifySalesforceError(answered(403, 'REQUEST_LIMIT_EXCEEDED')))).toBe(403);
    expect(refusedCallStatus(classifySalesforceError(answered(429, 'TooManyRequests')))).toBe(429);
  });

  it('answers nothing for a failure after which Salesforce may have written: a 5xx, no answer', () => {
    expect(refusedCallStatus(classifySalesforceError(answered(500, 'UNKNOWN_EXCEPTION')))).toBeUndefined();
    const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    expect(refusedCallStatus(classifySalesforceError(reset))).toBeUndefined();
    expect(refusedCallStatus(new TransientError('timed out'))).toBeUndefined();
  });
});
