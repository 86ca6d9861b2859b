import { generateKeyPairSync, createVerify } from 'node:crypto';
import { TerminalError } from '../../../../lambdas/shared/errors';
import {
  buildJwtAssertion,
  jwtAudienceFor,
  parseSalesforceSecret,
  secretValuesOf,
} from '../../../../lambdas/connectors/salesforce/auth';

describe('parseSalesforceSecret', () => {
  it('accepts each flow and strips a trailing slash from the login URL', () => {
    expect(
      parseSalesforceSecret({ loginUrl: 'https://login.salesforce.com/', username: 'u', password: 'p' }),
    ).toEqual({ loginUrl: 'https://login.salesforce.com', username: 'u', password: 'p' });
    expect(
      parseSalesforceSecret({
        flow: 'oauth-password',
        loginUrl: 'https://test.salesforce.com',
        clientId: 'c',
        clientSecret: 's',
        username: 'u',
        password: 'p',
        securityToken: 't',
      }).flow,
    ).toBe('oauth-password');
    expect(
      parseSalesforceSecret({
        flow: 'client-credentials',
        loginUrl: 'https://acme.my.salesforce.com',
        clientId: 'c',
        clientSecret: 's',
      }).flow,
    ).toBe('client-credentials');
    expect(
      parseSalesforceSecret({
        flow: 'jwt',
        loginUrl: 'http://127.0.0.1:9999',
        clientId: 'c',
        username: 'u',
        privateKey: 'k',
      }).flow,
    ).toBe('jwt');
  });

  it('names every missing or bad key without echoing a value', () => {
    const err = (() => {
      try {
        parseSalesforceSecret(
          {
            flow: 'oauth-password',
            loginUrl: 'not a url Canary1',
            clientSecret: 'Canary2',
            username: 'u',
            password: '',
          },
          'roundtrip/salesforce',
        );
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(TerminalError);
    const message = (err as Error).message;
    expect(message).toBe(
      'roundtrip/salesforce (flow oauth-password) is invalid: key "loginUrl" is not a valid URL; ' +
        'key "clientId" is missing; key "password" is empty or not a string',
    );
    expect(message).not.toMatch(/Canary/);
  });

  it('refuses a login URL with a user name or password in it (logged and shown in messages), without echoing it', () => {
    for (const loginUrl of [
      'https://admin:Canary-Pw-1@login.salesforce.com',
      'https://Canary-Pw-1@test.salesforce.com/',
    ]) {
      const err = ((): unknown => {
        try {
          return parseSalesforceSecret(
            { loginUrl, username: 'u@example.com', password: 'Canary-Pw-2' },
            'roundtrip/salesforce',
          );
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(TerminalError);
      expect((err as Error).message).toBe(
        'roundtrip/salesforce (flow soap) is invalid: key "loginUrl" holds a user name or password (https://user:password@…): remove them, the sign-in takes them from the secret\'s own keys',
      );
      expect((err as Error).message).not.toMatch(/Canary/);
    }
    // An "@" after the host (a path or query) is no user name.
    expect(
      parseSalesforceSecret({ loginUrl: 'https://x.my.salesforce.com/a@b', username: 'u', password: 'p' })
        .loginUrl,
    ).toBe('https://x.my.salesforce.com/a@b');
  });

  it('names a misspelt key the secret has beside the key it lacks, without echoing its value', () => {
    const parse = (): unknown =>
      parseSalesforceSecret(
        { loginUrl: 'http://127.0.0.1:8443', usrname: 'Canary3', password: 'p', securityTokn: 'Canary4' },
        'local/salesforce',
      );
    expect(parse).toThrow(
      'local/salesforce (flow soap) is invalid: key "username" is missing (the secret has "usrname": rename it "username"); ' +
        'key "securityTokn" is not one the soap flow takes: rename it "securityToken"',
    );
    expect(parse).not.toThrow(/Canary/);
  });

  it('refuses a key the flow does not take, naming the key and what to do, never its value', () => {
    const refused = (secret: Record<string, unknown>): string => {
      try {
        parseSalesforceSecret(secret, 'local/salesforce');
      } catch (e) {
        expect(e).toBeInstanceOf(TerminalError);
        return (e as Error).message;
      }
      throw new Error('accepted');
    };
    const soap = { loginUrl: 'http://127.0.0.1:8443', username: 'u', password: 'Canary5' };
    // A misspelt optional key: signing in without the token would fail with a password that is right.
    expect(refused({ ...soap, securityTokn: 'Canary6' })).toBe(
      'local/salesforce (flow soap) is invalid: key "securityTokn" is not one the soap flow takes: rename it "securityToken"',
    );
    // Another flow's key: the "flow" left out.
    expect(refused({ ...soap, clientId: 'Canary7', clientSecret: 'Canary8' })).toBe(
      'local/salesforce (flow soap) is invalid: ' +
        'key "clientId" is not one the soap flow takes (the oauth-password, client-credentials, jwt flows take it: set "flow", or remove the key); ' +
        'key "clientSecret" is not one the soap flow takes (the oauth-password, client-credentials flows take it: set "flow", or remove the key)',
    );
    expect(refused({ flow: 'jwt', ...soap, clientId: 'c', privateKey: 'k', notes: 'Canary9' })).toBe(
      'local/salesforce (flow jwt) is invalid: key "password" is not one the jwt flow takes (the soap, oauth-password flows take it: set "flow", or remove the key)',
    );
    for (const secret of [
      { ...soap, securityTokn: 'Canary6' },
      { ...soap, clientId: 'Canary7', clientSecret: 'Canary8' },
    ])
      expect(refused(secret)).not.toMatch(/Canary/);
    // A key of the secret's own, like no key of any flow (a note, an owner): nothing reads it, and
    // the sign-in is right; not refused.
    expect(parseSalesforceSecret({ ...soap, notes: 'Canary9', owner: 'data-team' })).toEqual(soap);
    // Every key of each documented shape is taken (docs/salesforce-auth.md).
    expect(parseSalesforceSecret({ flow: 'soap', ...soap, securityToken: '' })).toEqual({
      flow: 'soap',
      ...soap,
      securityToken: '',
    });
    expect(
      parseSalesforceSecret({
        flow: 'jwt',
        loginUrl: 'https://login.salesforce.com',
        clientId: 'c',
        username: 'u',
        privateKey: 'k',
        audience: 'https://login.salesforce.com',
      }).flow,
    ).toBe('jwt');
  });

  it('rejects an unknown flow and a non-object', () => {
    expect(() => parseSalesforceSecret({ flow: 'saml' })).toThrow('unknown "flow"');
    expect(() => parseSalesforceSecret('x')).toThrow('must be a JSON object');
  });

  it('lists the values to redact, password with token included', () => {
    const secret = parseSalesforceSecret({
      flow: 'oauth-password',
      loginUrl: 'https://x.test',
      clientId: 'id',
      clientSecret: 'cs',
      username: 'u',
      password: 'pw',
      securityToken: 'tk',
    });
    expect(secretValuesOf(secret).sort()).toEqual(['cs', 'pw', 'pwtk', 'tk']);
  });
});

describe('buildJwtAssertion', () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

  it('signs iss/sub/aud/exp (now + 3 min) with RS256', () => {
    const jwt = buildJwtAssertion({
      clientId: 'client-1',
      username: 'admin@roundtrip.test',
      audience: 'https://login.salesforce.com',
      privateKey: pem,
      nowSeconds: 1_700_000_000,
    });
    const [header, claims, signature] = jwt.split('.');
    expect(JSON.parse(Buffer.from(header!, 'base64url').toString())).toEqual({ alg: 'RS256', typ: 'JWT' });
    expect(JSON.parse(Buffer.from(claims!, 'base64url').toString())).toEqual({
      iss: 'client-1',
      sub: 'admin@roundtrip.test',
      aud: 'https://login.salesforce.com',
      exp: 1_700_000_180,
    });
    const ok = createVerify('RSA-SHA256')
      .update(`${header}.${claims}`)
      .verify(publicKey, Buffer.from(signature!, 'base64url'));
    expect(ok).toBe(true);
  });

  it('rejects an unreadable key without quoting it, and a non-RSA key', () => {
    const bad = '-----BEGIN PRIVATE KEY-----\nCanaryKeyMaterial\n-----END PRIVATE KEY-----';
    expect(() => buildJwtAssertion({ clientId: 'c', username: 'u', audience: 'a', privateKey: bad })).toThrow(
      /^The JWT private key in the Salesforce secret is not a readable PEM private key$/,
    );
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    expect(() => buildJwtAssertion({ clientId: 'c', username: 'u', audience: 'a', privateKey: ec })).toThrow(
      'RS256 needs an RSA key',
    );
  });
});

describe('jwtAudienceFor', () => {
  it('maps My Domain URLs to the login or test audience and keeps any other URL', () => {
    expect(jwtAudienceFor('https://acme.my.salesforce.com')).toBe('https://login.salesforce.com');
    expect(jwtAudienceFor('https://acme--uat.sandbox.my.salesforce.com')).toBe('https://test.salesforce.com');
    expect(jwtAudienceFor('https://test.salesforce.com')).toBe('https://test.salesforce.com');
    expect(jwtAudienceFor('http://127.0.0.1:8383')).toBe('http://127.0.0.1:8383');
  });
});
