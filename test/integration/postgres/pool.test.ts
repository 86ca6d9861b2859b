import { createServer, type Server } from 'node:net';
import {
  PostgresAuthenticationError,
  PostgresDatabaseMissingError,
  TerminalError,
  TransientError,
} from '../../../lambdas/shared/errors';
import { createMemoryLogger } from '../../../lambdas/shared/logging';
import {
  checkConnection,
  createPool,
  withClient,
  withTransaction,
} from '../../../lambdas/connectors/postgres/pool';
import { createTestDatabase, serverUrl, type TestDatabase } from '../../support/database';

async function connectError(url: string, credentialsFrom?: string): Promise<Error> {
  const pool = createPool(
    { url },
    {
      ssl: { mode: 'disable' },
      connectionTimeoutMillis: 3000,
      ...(credentialsFrom ? { credentialsFrom } : {}),
    },
  );
  try {
    await checkConnection(pool);
    return new Error('connected, but a failure was expected');
  } catch (err) {
    return err as Error;
  } finally {
    await pool.end();
  }
}

describe('createPool against the test server', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db.drop();
  });

  it('connects from an RDS-shaped secret', async () => {
    const url = new URL(db.url);
    const pool = createPool(
      {
        host: url.hostname,
        port: url.port,
        username: decodeURIComponent(url.username),
        password: decodeURIComponent(url.password),
        dbname: db.name,
        engine: 'postgres',
      },
      { ssl: { mode: 'disable' } },
    );
    try {
      expect(await checkConnection(pool)).toMatchObject({ database: db.name, ssl: false });
      expect(pool.target).toBe(`${decodeURIComponent(url.username)}@${url.hostname}:${url.port}/${db.name}`);
    } finally {
      await pool.end();
    }
  });

  it('survives the server dropping a connection held between queries: logged, and its next query fails', async () => {
    const logger = createMemoryLogger('warn');
    const pool = createPool({ url: db.url }, { ssl: { mode: 'disable' }, logger });
    const admin = createPool({ url: db.url }, { ssl: { mode: 'disable' } });
    const held = await pool.connect();
    try {
      const { rows } = await held.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      await admin.query('SELECT pg_terminate_backend($1)', [rows[0]?.pid]);
      // pg emits 'error' on the held client; without a listener the process would crash here.
      for (
        let i = 0;
        i < 50 && !logger.records.some((r) => r.message === 'PostgreSQL connection failed');
        i += 1
      )
        await new Promise((resolve) => setTimeout(resolve, 20));
      expect(logger.records.map((r) => r.message)).toContain('PostgreSQL connection failed');
      await expect(held.query('SELECT 1')).rejects.toThrow();
    } finally {
      held.release(true);
      await pool.end();
      await admin.end();
    }
  });

  it('maps a wrong password to a TerminalError that does not contain it, one that stops the whole run', async () => {
    const url = new URL(db.url);
    url.password = 'Wrong-Pass-123';
    const err = await connectError(url.toString());
    expect(err).toBeInstanceOf(TerminalError);
    // Every later step would connect with the same secret: the state machine stops the run on it.
    expect(err).toBeInstanceOf(PostgresAuthenticationError);
    expect(err.message).toContain('authentication failed');
    expect(err.message).toContain('(SQLSTATE 28P01)');
    expect(err.message).not.toContain('Wrong-Pass-123');
  });

  it('says where to correct a refused password, an unknown user or database: the secret it came from', async () => {
    const from = 'the secret roundtrip/postgres (postgres.secret of the config)';
    const wrongPassword = new URL(db.url);
    wrongPassword.password = 'Wrong-Pass-123';
    const unknownUser = new URL(db.url);
    unknownUser.username = 'no_such_role_here';
    const unknownDatabase = new URL(db.url);
    unknownDatabase.pathname = '/no_such_database_here';
    const messages = await Promise.all(
      [wrongPassword, unknownUser, unknownDatabase].map(
        async (url) => (await connectError(url.toString(), from)).message,
      ),
    );
    expect(messages[0]).toMatch(
      /\(SQLSTATE 28P01\); check the user and password in the secret roundtrip\/postgres \(postgres\.secret of the config\)$/,
    );
    expect(messages[1]).toMatch(
      /\(SQLSTATE 28(P01|000)\); check the user and password in the secret roundtrip\/postgres \(postgres\.secret of the config\)$/,
    );
    expect(messages[2]).toMatch(
      /\(SQLSTATE 3D000\); check the database name in the secret roundtrip\/postgres \(postgres\.secret of the config\)$/,
    );
  });

  describe('a password rotated while the pool lives (RDS managed rotation)', () => {
    const role = `rotated_${Date.now()}`;
    const urlFor = (user: string, password: string): string => {
      const url = new URL(db.url);
      url.username = user;
      url.password = password;
      return url.toString();
    };
    let admin: ReturnType<typeof createPool>;
    beforeAll(async () => {
      admin = createPool({ url: db.url }, { ssl: { mode: 'disable' } });
      await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD 'Before-Rotation-1'`);
      await admin.query(`CREATE ROLE ${role}_clone LOGIN PASSWORD 'Clone-Pass-3'`);
    });
    afterAll(async () => {
      await admin.query(`DROP ROLE ${role}`);
      await admin.query(`DROP ROLE ${role}_clone`);
      await admin.end();
    });

    it('reads the credentials again when the server refuses the password, and connects with the new ones', async () => {
      const logger = createMemoryLogger('info');
      let secret = { url: urlFor(role, 'Before-Rotation-1') };
      const renewals: string[] = [];
      const pool = createPool(secret, {
        ssl: { mode: 'disable' },
        logger,
        idleTimeoutMillis: 1,
        renewCredentials: async () => {
          renewals.push(secret.url);
          return secret;
        },
      });
      try {
        expect((await pool.query('SELECT current_user AS u')).rows[0].u).toBe(role);
        // The rotation: a new password in the database and in the secret.
        await admin.query(`ALTER ROLE ${role} PASSWORD 'After-Rotation-2'`);
        secret = { url: urlFor(role, 'After-Rotation-2') };
        // Both ways of connecting: pool.query (a callback inside pg-pool) and withClient.
        await new Promise((resolve) => setTimeout(resolve, 20));
        expect((await pool.query('SELECT current_user AS u')).rows[0].u).toBe(role);
        expect(await withClient(pool, async (c) => (await c.query('SELECT 1 AS one')).rows[0].one)).toBe(1);
        expect(renewals).toHaveLength(1);
        expect(logger.records.map((r) => r.message)).toContain(
          'PostgreSQL refused the password; connecting with the credentials read again (rotated)',
        );
        // The alternating-users strategy: the secret names the other user.
        await admin.query(`ALTER ROLE ${role} PASSWORD 'Gone-4'`);
        secret = { url: urlFor(`${role}_clone`, 'Clone-Pass-3') };
        await new Promise((resolve) => setTimeout(resolve, 20));
        expect((await pool.query('SELECT current_user AS u')).rows[0].u).toBe(`${role}_clone`);
        expect(pool.target).toContain(`${role}_clone@`);
      } finally {
        await pool.end();
      }
    });

    it('fails as before when the credentials read again are the ones refused', async () => {
      const secret = { url: urlFor(role, 'Not-The-Password-5') };
      let renewed = 0;
      const pool = createPool(secret, {
        ssl: { mode: 'disable' },
        renewCredentials: async () => {
          renewed += 1;
          return secret;
        },
      });
      try {
        const err = await checkConnection(pool).then(
          () => new Error('connected'),
          (e: unknown) => e as Error,
        );
        expect(err).toBeInstanceOf(TerminalError);
        expect(err.message).toContain('(SQLSTATE 28P01)');
        expect(err.message).not.toContain('Not-The-Password-5');
        expect(renewed).toBe(1);
      } finally {
        await pool.end();
      }
    });
  });

  it('maps a missing database to a PostgresDatabaseMissingError (terminal, for the whole run)', async () => {
    const url = new URL(db.url);
    url.pathname = '/no_such_database_here';
    const err = await connectError(url.toString());
    expect(err).toBeInstanceOf(PostgresDatabaseMissingError);
    expect(err).toBeInstanceOf(TerminalError);
    expect(err.message).toContain('database does not exist');
    expect(err.message).toContain('(SQLSTATE 3D000)');
  });

  it('maps a refused connection to a TransientError', async () => {
    const probe: Server = createServer();
    const port = await new Promise<number>((resolve) =>
      probe.listen(0, '127.0.0.1', () => resolve((probe.address() as { port: number }).port)),
    );
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const err = await connectError(`postgres://u:p@127.0.0.1:${port}/d`);
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toContain('ECONNREFUSED');
  });

  it('maps a server that accepts but never answers to a TransientError (timeout)', async () => {
    const silent = createServer(() => undefined);
    const port = await new Promise<number>((resolve) =>
      silent.listen(0, '127.0.0.1', () => resolve((silent.address() as { port: number }).port)),
    );
    try {
      const pool = createPool(
        { url: `postgres://u:p@127.0.0.1:${port}/d` },
        { ssl: { mode: 'disable' }, connectionTimeoutMillis: 300 },
      );
      const err = await checkConnection(pool).catch((e: unknown) => e as Error);
      await pool.end();
      expect(err).toBeInstanceOf(TransientError);
      expect((err as Error).message).toMatch(/timeout/i);
    } finally {
      silent.close();
    }
  });

  it('maps too many connections (53300) to a TransientError', async () => {
    const pool = createPool({ url: db.url }, { ssl: { mode: 'disable' } });
    const role = `rt_limited_${Date.now()}`;
    const admin = createPool({ url: serverUrl() }, { ssl: { mode: 'disable' } });
    try {
      await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD 'x' CONNECTION LIMIT 0`);
      const url = new URL(db.url);
      url.username = role;
      url.password = 'x';
      const err = await connectError(url.toString());
      expect(err).toBeInstanceOf(TransientError);
      expect(err.message).toContain('(SQLSTATE 53300)');
    } finally {
      await admin.query(`DROP ROLE IF EXISTS ${role}`);
      await admin.end();
      await pool.end();
    }
  });

  it('classifies the errors of pool.query: a connection the server ends is transient, an SQL error terminal', async () => {
    const pool = createPool({ url: db.url }, { ssl: { mode: 'disable' } });
    try {
      // The server ends this very connection (as a restart or failover does): retried, not failed.
      const dropped = await pool
        .query('SELECT pg_terminate_backend(pg_backend_pid())')
        .catch((e: unknown) => e as Error);
      expect(dropped).toBeInstanceOf(TransientError);
      expect((dropped as Error).message).toMatch(/^PostgreSQL \(postgres@[^)]+\): .*\(SQLSTATE 57P01\)/);
      // The pool goes on with another connection.
      expect((await pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      const wrong = await pool.query('SELECT nope FROM pg_class').catch((e: unknown) => e as Error);
      expect(wrong).toBeInstanceOf(TerminalError);
      expect((wrong as Error).message).toContain('column "nope" does not exist (SQLSTATE 42703)');
      expect((wrong as Error & { cause?: { code?: string } }).cause?.code).toBe('42703');
    } finally {
      await pool.end();
    }
  });

  it('rolls a failed transaction back and reports the SQL error as terminal', async () => {
    const pool = createPool({ url: db.url }, { ssl: { mode: 'disable' } });
    try {
      await pool.query('CREATE TABLE tx_probe (id int PRIMARY KEY)');
      const err = await withTransaction(pool, async (client) => {
        await client.query('INSERT INTO tx_probe VALUES (1)');
        await client.query('INSERT INTO tx_probe VALUES (1)');
      }).catch((e: unknown) => e as Error);
      expect(err).toBeInstanceOf(TerminalError);
      expect((err as Error).message).toContain(
        'duplicate key value violates unique constraint "tx_probe_pkey" (SQLSTATE 23505)',
      );
      const n = await withClient(
        pool,
        async (c) => (await c.query('SELECT count(*)::int AS n FROM tx_probe')).rows[0],
      );
      expect(n).toEqual({ n: 0 });
    } finally {
      await pool.end();
    }
  });
});
