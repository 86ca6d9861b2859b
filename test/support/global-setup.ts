/**
 * Starts one embedded PostgreSQL server for the whole jest run, unless DATABASE_URL names one.
 * Workers inherit DATABASE_URL; each test file then makes its own database with
 * `createTestDatabase()` (test/support/database.ts) so that files running in parallel never
 * share state.
 */
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../emulators/postgres/embedded';

declare global {
  var __ROUNDTRIP_PG__: EmbeddedPostgres | undefined;
}

export default async function globalSetup(): Promise<void> {
  for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy']) delete process.env[name];
  if (process.env.DATABASE_URL) return;
  const server = await startEmbeddedPostgres();
  globalThis.__ROUNDTRIP_PG__ = server;
  process.env.DATABASE_URL = server.url;
  process.env.ROUNDTRIP_TEST_EMBEDDED_PG = '1';
}
