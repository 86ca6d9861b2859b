import { DatabaseError } from 'pg';
import {
  ERROR_NAMES,
  PostgresAuthenticationError,
  PostgresDatabaseMissingError,
  TerminalError,
  TransientError,
} from '../../../lambdas/shared/errors';
import { classifyPostgresError } from '../../../lambdas/connectors/postgres/errors';

function dbError(code: string, message = 'server said no'): DatabaseError {
  const err = new DatabaseError(message, 0, 'error');
  err.code = code;
  err.severity = 'FATAL';
  return err;
}

function withCode(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

describe('classifyPostgresError', () => {
  it.each(['40001', '40P01', '53300', '57P01', '57P02', '57P03', '08006', '08001', '55P03'])(
    'treats SQLSTATE %s as transient',
    (code) => {
      expect(classifyPostgresError(dbError(code))).toBeInstanceOf(TransientError);
    },
  );

  it.each([
    ['28P01', 'authentication failed'],
    ['28000', 'authentication failed'],
    ['3D000', 'database does not exist'],
    ['42601', 'server said no'],
    ['23505', 'server said no'],
  ])('treats SQLSTATE %s as terminal', (code, text) => {
    const err = classifyPostgresError(dbError(code));
    expect(err).toBeInstanceOf(TerminalError);
    expect(err.message).toContain(text);
    expect(err.message).toContain(`(SQLSTATE ${code})`);
  });

  it.each(['28P01', '28000'])(
    'names SQLSTATE %s a PostgresAuthenticationError, which stops the whole run',
    (code) => {
      const err = classifyPostgresError(dbError(code), { credentialsFrom: 'the secret roundtrip/postgres' });
      expect(err).toBeInstanceOf(PostgresAuthenticationError);
      expect(err.name).toBe(ERROR_NAMES.postgresAuth);
      expect(err.message).toMatch(/; check the user and password in the secret roundtrip\/postgres$/);
    },
  );

  it('names SQLSTATE 3D000 a PostgresDatabaseMissingError, which stops the whole run', () => {
    const err = classifyPostgresError(dbError('3D000'), { credentialsFrom: 'the secret roundtrip/postgres' });
    expect(err).toBeInstanceOf(PostgresDatabaseMissingError);
    expect(err.name).toBe(ERROR_NAMES.postgresDatabaseMissing);
    expect(err.message).toMatch(/; check the database name in the secret roundtrip\/postgres$/);
  });

  it.each(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EAI_AGAIN'])(
    'treats socket error %s as transient',
    (code) => {
      expect(classifyPostgresError(withCode('socket', code))).toBeInstanceOf(TransientError);
    },
  );

  it('says of a refused connection that nothing listens at the address it names', () => {
    const err = classifyPostgresError(withCode('connect ECONNREFUSED 127.0.0.1:5434', 'ECONNREFUSED'), {
      action: 'connecting',
      target: 'postgres@127.0.0.1:5434/postgres',
    });
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toBe(
      'PostgreSQL connecting (postgres@127.0.0.1:5434/postgres): network error (ECONNREFUSED): connect ECONNREFUSED 127.0.0.1:5434 (nothing accepts connections there: is the server running, on that host and port?)',
    );
  });

  it("treats pg's dropped-connection and timeout messages as transient", () => {
    expect(classifyPostgresError(new Error('Connection terminated unexpectedly'))).toBeInstanceOf(
      TransientError,
    );
    expect(
      classifyPostgresError(new Error('Connection terminated due to connection timeout')),
    ).toBeInstanceOf(TransientError);
  });

  it.each(['SELF_SIGNED_CERT_IN_CHAIN', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_HAS_EXPIRED'])(
    'treats TLS verification failure %s as terminal and names TLS',
    (code) => {
      const err = classifyPostgresError(withCode('bad cert', code));
      expect(err).toBeInstanceOf(TerminalError);
      expect(err.message).toContain('TLS certificate verification failed');
    },
  );

  it('treats a server without TLS as terminal', () => {
    const err = classifyPostgresError(new Error('The server does not support SSL connections'));
    expect(err).toBeInstanceOf(TerminalError);
    expect(err.message).toContain('does not support SSL');
    // The fix is a config key: named by its path in the pipeline config.
    expect(err.message).toContain("postgres.ssl.mode 'disable' in the pipeline config");
  });

  it('names the action and target, keeps the cause and redacts given secrets', () => {
    const original = dbError('28P01', 'password authentication failed for user "app" hunter2');
    const err = classifyPostgresError(original, {
      action: 'connecting',
      target: 'app@h:5432/d',
      secrets: ['hunter2'],
    });
    expect(err.message).toBe(
      'PostgreSQL connecting (app@h:5432/d): authentication failed: password authentication failed for user "app" [REDACTED] (SQLSTATE 28P01)',
    );
    // The cause is a copy without the secret (a log line formats the cause chain too).
    expect((err.cause as Error).message).toBe('password authentication failed for user "app" [REDACTED]');
    const plain = dbError('28P01', 'password authentication failed for user "app"');
    expect(classifyPostgresError(plain, { secrets: ['hunter2'] }).cause).toBe(plain);
  });

  it('returns an already classified error unchanged', () => {
    const err = new TransientError('x');
    expect(classifyPostgresError(err)).toBe(err);
  });
});
