/**
 * A fresh database per test file on the run's PostgreSQL server (see global-setup.ts).
 */
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';

export interface TestDatabase {
  /** Connection URL of the new database. */
  readonly url: string;
  readonly name: string;
  /** Drops the database (terminating any connection left open). */
  drop(): Promise<void>;
}

export function serverUrl(): string {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('DATABASE_URL is not set: the jest global setup should have started PostgreSQL');
  return url;
}

/**
 * A new database; `settings` are given it with `ALTER DATABASE … SET` (as a DBA would: every
 * session on it starts with them), e.g. `{ DateStyle: 'SQL, DMY' }`.
 */
export async function createTestDatabase(
  prefix = 'rt_test',
  settings: Readonly<Record<string, string>> = {},
): Promise<TestDatabase> {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  const admin = new Client({ connectionString: serverUrl() });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
    for (const [setting, value] of Object.entries(settings)) {
      await admin.query(`ALTER DATABASE "${name}" SET "${setting}" = ${admin.escapeLiteral(value)}`);
    }
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl());
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: async () => {
      const c = new Client({ connectionString: serverUrl() });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
