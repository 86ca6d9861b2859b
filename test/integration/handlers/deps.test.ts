/**
 * The handler deps builders (lambdas/handlers/deps.ts) over real files: the bundled config read
 * with its relative paths resolved against its own folder, the errors that name what is wrong,
 * and a container's deps built once, a failed cold start retried by the next invocation.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  HANDLER_ENV,
  configFromEnv,
  lambdaDeps,
  readHandlerConfig,
  traced,
} from '../../../lambdas/handlers/deps';
import { startSalesforceEmulator } from '../../../emulators/salesforce';
import { createPool } from '../../../lambdas/connectors/postgres';
import { salesforceOf, type CoreDeps } from '../../../lambdas/core/deps';
import { salesforceFromSecret } from '../../../lambdas/handlers/salesforce-deps';
import { ConfigError } from '../../../lambdas/shared/errors';
import { PIPELINE_STEPS, STEP_KEYS } from '../../../statemachine/definition';
import { createTestDatabase } from '../../support/database';

describe('handler deps', () => {
  let dir: string;
  const saved = { ...process.env };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'handler-deps-'));
  });
  afterAll(async () => {
    process.env = saved;
    await rm(dir, { recursive: true, force: true });
  });

  it('resolves relative transform and CA bundle paths against the config file, not the working directory', async () => {
    const file = path.join(dir, 'roundtrip.config.json');
    await writeFile(
      file,
      JSON.stringify({
        name: 'paths',
        postgres: { secret: 'pg', ssl: { mode: 'verify-full', caBundle: 'postgres-ca-bundle.pem' } },
        transform: ['transform/01-score.sql', '/abs/02-other.sql'],
      }),
    );
    const config = await readHandlerConfig(file);
    expect(config.transform).toEqual([path.join(dir, 'transform', '01-score.sql'), '/abs/02-other.sql']);
    expect(config.postgres.ssl.caBundle).toBe(path.join(dir, 'postgres-ca-bundle.pem'));
  });

  it('names the variable, or the file and its problem, when the config cannot be read', async () => {
    await expect(configFromEnv({})).rejects.toThrow(
      `the environment variable ${HANDLER_ENV.configFile} must name the pipeline config (JSON)`,
    );
    const broken = path.join(dir, 'broken.json');
    await writeFile(broken, '{ "name": ');
    const failure = await readHandlerConfig(broken).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(ConfigError);
    expect((failure as Error).message).toContain(broken);
    expect((failure as Error).message).toContain('not valid JSON');
    await expect(readHandlerConfig(path.join(dir, 'missing.json'))).rejects.toThrow(/ENOENT/);
  });

  it('builds a container’s deps once, and again after a cold start that failed', async () => {
    const file = path.join(dir, 'later.config.json');
    const secrets = path.join(dir, 'secrets.json');
    await writeFile(
      secrets,
      JSON.stringify({ 'roundtrip/postgres': { url: 'postgres://u:p@127.0.0.1:1/none' } }),
    );
    Object.assign(process.env, {
      [HANDLER_ENV.configFile]: file,
      [HANDLER_ENV.localSecretsFile]: secrets,
    });
    const deps = lambdaDeps();
    await expect(deps()).rejects.toThrow(ConfigError);
    await writeFile(
      file,
      JSON.stringify({ name: 'later', postgres: { secret: 'roundtrip/postgres' }, transform: ['a.sql'] }),
    );
    const built = await deps();
    try {
      expect(built.config.name).toBe('later');
      expect(built.salesforce).toBeUndefined();
      expect(built.athena).toBeUndefined();
      expect(await deps()).toBe(built);
    } finally {
      await built.pg.end();
    }
  });

  it('keeps a warm container’s pool working after the PostgreSQL password is rotated in its secret', async () => {
    const db = await createTestDatabase('rt_rotation');
    const admin = createPool({ url: db.url }, { ssl: { mode: 'disable' } });
    const role = `rotating_${Date.now()}`;
    const withPassword = (password: string): string => {
      const url = new URL(db.url);
      url.username = role;
      url.password = password;
      return url.toString();
    };
    const file = path.join(dir, 'rotation.config.json');
    const secrets = path.join(dir, 'rotation-secrets.json');
    await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD 'First-Pass-1'`);
    await writeFile(secrets, JSON.stringify({ 'roundtrip/postgres': { url: withPassword('First-Pass-1') } }));
    await writeFile(
      file,
      JSON.stringify({
        name: 'rotation',
        postgres: { secret: 'roundtrip/postgres', ssl: { mode: 'disable' } },
        transform: ['a.sql'],
      }),
    );
    Object.assign(process.env, { [HANDLER_ENV.configFile]: file, [HANDLER_ENV.localSecretsFile]: secrets });
    const built = await lambdaDeps()();
    try {
      expect((await built.pg.query('SELECT current_user AS u')).rows[0].u).toBe(role);
      // The rotation (as Secrets Manager's rotation function does it): the database, then the secret.
      await admin.query(`ALTER ROLE ${role} PASSWORD 'Second-Pass-2'`);
      await writeFile(
        secrets,
        JSON.stringify({ 'roundtrip/postgres': { url: withPassword('Second-Pass-2') } }),
      );
      // The pool's two connections at once: the idle one made before the rotation, and a new one,
      // as the next invocation of the warm container would make once the idle one has closed.
      const connected = await Promise.allSettled([built.pg.connect(), built.pg.connect()]);
      const users: unknown[] = [];
      for (const c of connected) {
        if (c.status === 'rejected') {
          users.push(String(c.reason));
          continue;
        }
        users.push((await c.value.query('SELECT current_user AS u')).rows[0].u);
        c.value.release();
      }
      expect(users).toEqual([role, role]);
    } finally {
      await built.pg.end();
      await admin.query(`DROP ROLE ${role}`);
      await admin.end();
      await db.drop();
    }
  });

  it('signs in to Salesforce again when its secret changed (rotated) since a warm container signed in', async () => {
    const sf = await startSalesforceEmulator();
    const file = path.join(dir, 'sf-rotation.config.json');
    const secretOf = (password: string): string =>
      JSON.stringify({ loginUrl: sf.loginUrl, username: sf.credentials.username, password });
    await writeFile(
      file,
      JSON.stringify({
        name: 'sf-rotation',
        salesforce: { secret: 'roundtrip/salesforce', apiVersion: sf.apiVersion },
        postgres: { secret: 'roundtrip/postgres' },
        extract: [{ from: 'salesforce', object: 'Lead', fields: ['Id'], table: 'sf_lead' }],
      }),
    );
    // Read at every call (Secrets Manager's reads are cached for minutes; these not at all).
    Object.assign(process.env, {
      [HANDLER_ENV.configFile]: file,
      ROUNDTRIP_SECRET_ROUNDTRIP_POSTGRES: JSON.stringify({ url: 'postgres://u:p@127.0.0.1:1/none' }),
      ROUNDTRIP_SECRET_ROUNDTRIP_SALESFORCE: secretOf(sf.credentials.password),
    });
    const built = await lambdaDeps({ salesforce: salesforceFromSecret })();
    try {
      const first = await salesforceOf(built, 'test');
      expect(await salesforceOf(built, 'test')).toBe(first);
      await first.describe('Lead');
      // The rotation: the user's password changes, its sessions end, the secret gets the new one.
      (sf.credentials as { password: string }).password = 'Rotated-Pass-7';
      sf.expireSessions();
      process.env.ROUNDTRIP_SECRET_ROUNDTRIP_SALESFORCE = secretOf('Rotated-Pass-7');
      const second = await salesforceOf(built, 'test');
      expect(second).not.toBe(first);
      await expect(second.describe('Lead')).resolves.toMatchObject({ name: 'Lead' });
    } finally {
      delete process.env.ROUNDTRIP_SECRET_ROUNDTRIP_POSTGRES;
      delete process.env.ROUNDTRIP_SECRET_ROUNDTRIP_SALESFORCE;
      await built.pg.end();
      await sf.stop();
    }
  });

  it('leaves an SDK client as it is when X-Ray tracing is off (outside Lambda)', () => {
    const client = { send: async () => undefined, middlewareStack: {} };
    expect(traced(client)).toBe(client);
  });

  it('gives each function the connectors of its step: Salesforce exactly where the stack grants its secret', async () => {
    const file = path.join(dir, 'both.config.json');
    const secrets = path.join(dir, 'both-secrets.json');
    await writeFile(
      file,
      JSON.stringify({
        name: 'both',
        salesforce: { secret: 'roundtrip/salesforce' },
        athena: { database: 'marketing', outputLocation: 's3://results/out/' },
        postgres: { secret: 'roundtrip/postgres' },
        extract: [{ from: 'salesforce', object: 'Lead', fields: ['Id'], table: 'sf_lead' }],
      }),
    );
    await writeFile(
      secrets,
      JSON.stringify({ 'roundtrip/postgres': { url: 'postgres://u:p@127.0.0.1:1/none' } }),
    );
    Object.assign(process.env, {
      [HANDLER_ENV.configFile]: file,
      [HANDLER_ENV.localSecretsFile]: secrets,
      AWS_REGION: 'us-east-1',
    });
    const found: Record<string, { salesforce: boolean; athena: boolean }> = {};
    const expected: typeof found = {};
    for (const step of STEP_KEYS) {
      const { handler } = PIPELINE_STEPS[step];
      const mod = (await import(`../../../lambdas/handlers/${handler}`)) as { deps: () => Promise<CoreDeps> };
      // Nothing connects while the deps are built: the pool and the sign-in wait for first use.
      const built = await mod.deps();
      found[handler] = {
        salesforce: typeof built.salesforce === 'function',
        athena: built.athena !== undefined,
      };
      expected[handler] = { salesforce: PIPELINE_STEPS[step].salesforce, athena: handler === 'load-athena' };
      await built.pg.end();
    }
    expect(found).toEqual(expected);
  });
});
