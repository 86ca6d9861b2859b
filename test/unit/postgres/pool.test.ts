import { TerminalError } from '../../../lambdas/shared/errors';
import {
  poolConfigFor,
  redactUrl,
  resolveConnection,
  resolveSslMode,
  tlsOptionsFor,
} from '../../../lambdas/connectors/postgres/pool';

const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a throw');
}

describe('resolveConnection', () => {
  it('parses a URL into discrete fields, defaulting to verify-full TLS', () => {
    const c = resolveConnection({ url: 'postgresql://app:s%40cret@db.example.com:6543/warehouse' });
    expect(c).toMatchObject({
      host: 'db.example.com',
      port: 6543,
      user: 'app',
      database: 'warehouse',
      sslMode: 'verify-full',
      target: 'app@db.example.com:6543/warehouse',
    });
    expect(c.password).toBe('s@cret');
    expect(JSON.stringify(c)).not.toContain('s@cret');
  });

  it('reads an RDS secret, with a port given as a string', () => {
    const c = resolveConnection({
      host: 'x.rds.amazonaws.com',
      port: '5432',
      username: 'u',
      password: 'p',
      dbname: 'd',
      engine: 'postgres',
    });
    expect(c).toMatchObject({ host: 'x.rds.amazonaws.com', port: 5432, user: 'u', database: 'd' });
  });

  it('defaults the secret port to 5432 and the database to postgres', () => {
    const c = resolveConnection({ host: 'h', username: 'u', password: 'p' });
    expect([c.port, c.database]).toEqual([5432, 'postgres']);
  });

  it('names a missing secret key without echoing any value', () => {
    const err = thrown(() => resolveConnection({ host: 'h', username: 'u', password: '' } as never));
    expect(err).toBeInstanceOf(TerminalError);
    expect(err.message).toBe('PostgreSQL secret: "password" must be a non-empty string');
  });

  it('names both shapes of a secret that has neither, and its keys without their values', () => {
    const err = thrown(() => resolveConnection({ URL: 'postgres://u:hunter2@h/d' } as never));
    expect(err).toBeInstanceOf(TerminalError);
    expect(err.message).toBe(
      'PostgreSQL secret: expected { "url": "postgres://user:password@host:port/db" } or the RDS shape { "host", "port", "dbname", "username", "password" }, got the keys "URL"',
    );
  });

  it('refuses a secret for another engine', () => {
    expect(() => resolveConnection({ host: 'h', username: 'u', password: 'p', engine: 'mysql' })).toThrow(
      'PostgreSQL secret: engine is "mysql", expected "postgres" or "aurora-postgresql"',
    );
  });

  it('refuses an unknown URL parameter and redacts the password in the message', () => {
    const err = thrown(() => resolveConnection({ url: 'postgres://u:hunter2@h/d?ssl=true' }));
    expect(err.message).toContain('parameter "ssl" is not supported');
    expect(err.message).toContain('postgres://u:***@h/d');
    expect(err.message).not.toContain('hunter2');
  });

  it('refuses a password given as a URL parameter without showing it, and says where it goes', () => {
    for (const key of ['password', 'sslpassword']) {
      const err = thrown(() =>
        resolveConnection({ url: `postgres://u@h/d?sslmode=require&${key}=Hunter2-Canary` }),
      );
      expect(err.message).toContain(
        `postgres://u@h/d?sslmode=require&${key}=***: parameter "${key}" is not supported`,
      );
      expect(err.message).not.toContain('Hunter2-Canary');
    }
    expect(thrown(() => resolveConnection({ url: 'postgres://u@h/d?password=x1' })).message).toMatch(
      /; give the password after the user name: postgres:\/\/user:password@host\/db$/,
    );
  });

  it('never echoes the port of a secret, which may be another key moved', () => {
    const err = thrown(() =>
      resolveConnection({ host: 'h', username: 'u', password: 'p', port: 'Hunter2-Canary' }),
    );
    expect(err.message).toBe(
      'PostgreSQL secret: "port": port must be an integer from 1 to 65535, got a text that is not one',
    );
  });

  it('honours sslmode=disable in the URL', () => {
    const c = resolveConnection({ url: 'postgres://u:p@127.0.0.1:5/d?sslmode=disable' });
    expect(c.sslMode).toBe('disable');
    expect(poolConfigFor(c).ssl).toBe(false);
  });

  it('takes the CA from sslrootcert text or the caBundle option, not both', () => {
    const c = resolveConnection({ url: 'postgres://u:p@h/d' }, { ssl: { caBundle: PEM } });
    expect(tlsOptionsFor(c)).toEqual({ rejectUnauthorized: true, ca: PEM });
    expect(() =>
      resolveConnection({ url: 'postgres://u:p@h/d?sslrootcert=/x.pem' }, { ssl: { caBundle: PEM } }),
    ).toThrow('both the URL (sslrootcert) and the ssl option (caBundle) give a CA bundle');
  });

  it('converts connect_timeout seconds to milliseconds', () => {
    expect(resolveConnection({ url: 'postgres://u:p@h/d?connect_timeout=3' }).connectionTimeoutMillis).toBe(
      3000,
    );
  });
});

describe('resolveSslMode', () => {
  it('defaults to verify-full', () => {
    expect(resolveSslMode(undefined, undefined)).toBe('verify-full');
  });
  it('uses whichever of option and URL is given', () => {
    expect(resolveSslMode('require', undefined)).toBe('require');
    expect(resolveSslMode(undefined, 'require')).toBe('require');
  });
  it('accepts agreement and refuses conflict', () => {
    expect(resolveSslMode('disable', 'disable')).toBe('disable');
    expect(() => resolveSslMode('verify-full', 'disable')).toThrow(
      "the URL says sslmode=disable but the ssl option says mode 'verify-full'",
    );
  });
  it.each(['prefer', 'allow', 'verify-ca', 'no-verify', 'bogus'])('refuses sslmode=%s', (mode) => {
    expect(() => resolveSslMode(undefined, mode)).toThrow(`sslmode=${mode} is not`);
  });
});

describe('tlsOptionsFor', () => {
  it('encrypts without verification in require mode', () => {
    const c = resolveConnection({ url: 'postgres://u:p@h/d' }, { ssl: { mode: 'require' } });
    expect(tlsOptionsFor(c)).toEqual({ rejectUnauthorized: false });
  });
  it('verifies with Node roots when no CA is given', () => {
    expect(tlsOptionsFor(resolveConnection({ url: 'postgres://u:p@h/d' }))).toEqual({
      rejectUnauthorized: true,
    });
  });
});

describe('redactUrl', () => {
  it('hides the password and keeps the rest', () => {
    expect(redactUrl('postgres://a:b%2Fc@h:1/d?sslmode=require')).toBe(
      'postgres://a:***@h:1/d?sslmode=require',
    );
  });
  it('hides a password given as a parameter, and a fragment (the end of an unencoded password with a "#")', () => {
    expect(redactUrl('postgres://a@h/d?password=s3cret&sslpassword=k3y&sslmode=require')).toBe(
      'postgres://a@h/d?password=***&sslpassword=***&sslmode=require',
    );
    expect(redactUrl('postgres://a:12#s3cret@h/d')).toBe('postgres://a:12');
  });
  it('hides unparseable text entirely', () => {
    expect(redactUrl('not a url with password')).toBe('<unparseable connection URL>');
  });
});
