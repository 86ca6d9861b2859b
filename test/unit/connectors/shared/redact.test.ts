import { createRedactor, redactCredentialPatterns, REDACTED } from '../../../../lambdas/shared/redact';

describe('createRedactor', () => {
  const password = 'Canary-Pa$$w0rd&<x>"q"';
  const redactor = createRedactor([password, 'tok', undefined, null, '']);

  it('masks a known secret in every form it may take in a message', () => {
    const forms = [
      password,
      JSON.stringify(password).slice(1, -1),
      encodeURIComponent(password),
      new URLSearchParams({ p: password }).toString().slice(2),
      password.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;'),
    ];
    for (const form of forms) {
      const out = redactor.redact(`login failed for x with ${form} here`);
      expect(out).toBe(`login failed for x with ${REDACTED} here`);
    }
  });

  it('ignores values too short to be credentials', () => {
    expect(redactor.redact('a token was given')).toBe('a token was given');
  });

  it('learns values added later (a session id after sign-in)', () => {
    const r = createRedactor();
    r.add('00D000000000001!AQ4AQFakeSessionId');
    expect(r.redact('Bearer-less 00D000000000001!AQ4AQFakeSessionId')).toBe(`Bearer-less ${REDACTED}`);
  });

  it('masks every line of a PEM key, also when only a part of it appears', () => {
    const pem =
      '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----\n';
    const r = createRedactor([pem]);
    expect(r.redact('bad key near BKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj')).toBe(`bad key near ${REDACTED}`);
    expect(r.redact(`key: ${pem}`)).not.toContain('MIIEvQIBADANBgkqhkiG9w0BAQEFAASC');
  });

  it('redacts deeply and copies errors without their data', () => {
    const err = Object.assign(new Error(`boom ${password}`), { code: 'E1', data: { password } });
    const out = redactor.redactDeep({ list: [password, 1, true], nested: { err }, keep: 'plain' });
    expect(JSON.stringify(out)).not.toContain('Canary');
    expect(out.keep).toBe('plain');
    expect(out.list[1]).toBe(1);
    const copy = out.nested.err as Error & { code?: string; data?: unknown };
    expect(copy).toBeInstanceOf(Error);
    expect(copy.message).toBe(`boom ${REDACTED}`);
    expect(copy.code).toBe('E1');
    expect(copy.data).toBeUndefined();
    expect(copy.stack).not.toContain('Canary');
  });
});

describe('redactCredentialPatterns', () => {
  it.each([
    ['Authorization: Bearer 00Dxx!abc.def', 'Authorization: Bearer [REDACTED]'],
    [
      '{"access_token":"00Dxx!abc","instance_url":"https://x"}',
      '{"access_token":"[REDACTED]","instance_url":"https://x"}',
    ],
    [
      'grant_type=password&password=hunter22&client_secret=s3cr3t',
      'grant_type=password&password=[REDACTED]&client_secret=[REDACTED]',
    ],
    ['<sessionId>00Dxx!abc</sessionId>', '<sessionId>[REDACTED]</sessionId>'],
    ['-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----', '[REDACTED]'],
    [
      'got "postgres://app:Pw%2Fx@y@db.example.com:5432/rt?sslmode=require"',
      'got "postgres://app:[REDACTED]@db.example.com:5432/rt?sslmode=require"',
    ],
    [
      'DATABASE_URL=postgresql://app:hunter22@10.0.0.1/rt',
      'DATABASE_URL=postgresql://app:[REDACTED]@10.0.0.1/rt',
    ],
    ['mysql://:hunter22@h/d and https://u:p@h', 'mysql://:[REDACTED]@h/d and https://u:[REDACTED]@h'],
    ['{"authorization":"Basic Y2lkOnMzY3JldA=="}', '{"authorization":"Basic [REDACTED]"}'],
    [
      'GET https://x.my.salesforce.com/secur/frontdoor.jsp?sid=00Dxx!AQ4Aabc&retURL=/home',
      'GET https://x.my.salesforce.com/secur/frontdoor.jsp?sid=[REDACTED]&retURL=/home',
    ],
  ])('masks %s', (input, expected) => {
    expect(redactCredentialPatterns(input)).toBe(expected);
  });

  it('leaves ordinary messages alone', () => {
    const text = "INVALID_FIELD: No such column 'Foo__c' on entity 'Lead'";
    expect(redactCredentialPatterns(text)).toBe(text);
    // A URL without a password, a time and an e-mail address are not credentials.
    for (const plain of [
      'PostgreSQL connecting (app@db.example.com:5432/rt) at https://x.my.salesforce.com:443/a@b',
      'postgres://app@db.example.com/rt at 12:30 by ops@example.com',
      'Basic auth is not supported; consider sid, the side id',
      'Secret "arn:aws:secretsmanager:eu-west-1:123456789012:secret:roundtrip/pg-AbCdEf" not found',
    ])
      expect(redactCredentialPatterns(plain)).toBe(plain);
  });
});
