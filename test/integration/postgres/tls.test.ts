/**
 * TLS against a real server: a second embedded PostgreSQL with ssl=on and a certificate from a
 * throwaway CA made with the openssl CLI, for localhost and 127.0.0.1. The server also listens on
 * 127.0.0.2 (all of 127/8 is loopback on Linux), an address the certificate does not name.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generateTestCertificates, hasOpenssl } from '../../../emulators/postgres/certificates';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../../emulators/postgres/embedded';
import { TerminalError } from '../../../lambdas/shared/errors';
import {
  checkConnection,
  createPool,
  type CreatePoolOptions,
} from '../../../lambdas/connectors/postgres/pool';

const PASSWORD = 'tls-test-Secret-42';

async function check(
  url: string,
  options: CreatePoolOptions,
): Promise<Awaited<ReturnType<typeof checkConnection>>> {
  const pool = createPool({ url }, { connectionTimeoutMillis: 5000, ...options });
  try {
    return await checkConnection(pool);
  } finally {
    await pool.end();
  }
}

async function failure(url: string, options: CreatePoolOptions): Promise<Error> {
  const err = await check(url, options).then(
    () => new Error('connected, but a failure was expected'),
    (e: unknown) => e as Error,
  );
  return err;
}

describe('TLS settings of createPool', () => {
  let server: EmbeddedPostgres;
  let caPem: string;
  let dir: string;
  const urlFor = (host: string): string => `postgres://postgres:${PASSWORD}@${host}:${server.port}/postgres`;

  beforeAll(async () => {
    if (!hasOpenssl()) throw new Error('the openssl CLI is needed to make the test certificates');
    const certs = generateTestCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    caPem = certs.caPem;
    dir = mkdtempSync(path.join(tmpdir(), 'roundtrip-tls-test-'));
    server = await startEmbeddedPostgres({
      password: PASSWORD,
      tls: { certPem: certs.certPem, keyPem: certs.keyPem },
      settings: { listen_addresses: '127.0.0.1,127.0.0.2', max_connections: '20', shared_buffers: '16MB' },
    });
  });
  afterAll(async () => {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('verify-full with the CA bundle connects over TLS (pg_stat_ssl.ssl = true)', async () => {
    const result = await check(urlFor('127.0.0.1'), { ssl: { mode: 'verify-full', caBundle: caPem } });
    expect(result.ssl).toBe(true);
  });

  it('verify-full accepts the CA bundle as a file path and checks a DNS name', async () => {
    const caFile = path.join(dir, 'ca.pem');
    writeFileSync(caFile, caPem);
    const result = await check(urlFor('localhost'), { ssl: { caBundle: caFile } });
    expect(result.ssl).toBe(true);
  });

  it('verify-full without the CA fails with a TerminalError naming TLS', async () => {
    const err = await failure(urlFor('127.0.0.1'), { ssl: { mode: 'verify-full' } });
    expect(err).toBeInstanceOf(TerminalError);
    expect(err.message).toContain('TLS certificate verification failed (UNABLE_TO_VERIFY_LEAF_SIGNATURE)');
    expect(err.message).toContain('postgres@127.0.0.1:');
    expect(err.message).not.toContain(PASSWORD);
  });

  it('verify-full to an address the certificate does not name fails', async () => {
    const err = await failure(urlFor('127.0.0.2'), { ssl: { caBundle: caPem } });
    expect(err).toBeInstanceOf(TerminalError);
    expect(err.message).toContain('TLS certificate verification failed (ERR_TLS_CERT_ALTNAME_INVALID)');
    expect(err.message).toContain("IP: 127.0.0.2 is not in the cert's list");
    expect(err.message).not.toContain('Error: ');
  });

  it("ignores pg's environment variables (PGSSLMODE, PGHOST): only the configuration counts", async () => {
    const saved = { PGSSLMODE: process.env.PGSSLMODE, PGHOST: process.env.PGHOST };
    process.env.PGSSLMODE = 'disable';
    process.env.PGHOST = '127.0.0.2';
    try {
      const result = await check(urlFor('127.0.0.1'), { ssl: { caBundle: caPem } });
      expect(result.ssl).toBe(true);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it("'require' connects over TLS without a CA", async () => {
    const result = await check(urlFor('127.0.0.2'), { ssl: { mode: 'require' } });
    expect(result.ssl).toBe(true);
  });

  it('sslmode=require in the URL is honoured the same way', async () => {
    const result = await check(`${urlFor('127.0.0.1')}?sslmode=require`, {});
    expect(result.ssl).toBe(true);
  });

  it("'disable' connects in clear text", async () => {
    const result = await check(urlFor('127.0.0.1'), { ssl: { mode: 'disable' } });
    expect(result.ssl).toBe(false);
  });

  it("'disable' connects to the non-TLS test server, and verify-full to it fails clearly", async () => {
    const url = process.env.DATABASE_URL ?? '';
    expect((await check(url, { ssl: { mode: 'disable' } })).ssl).toBe(false);
    const err = await failure(url, {});
    expect(err).toBeInstanceOf(TerminalError);
    expect(err.message).toContain('TLS was required but the server does not support SSL connections');
  });

  it('a CA bundle path that cannot be read is a TerminalError naming the path', async () => {
    const missing = path.join(dir, 'missing.pem');
    expect(() => createPool({ url: urlFor('127.0.0.1') }, { ssl: { caBundle: missing } })).toThrow(
      `PostgreSQL CA bundle ${missing} cannot be read`,
    );
  });

  it('a CA bundle (or sslrootcert) file that holds no PEM certificate is a TerminalError saying what it holds, before connecting', async () => {
    const der = path.join(dir, 'ca.der');
    writeFileSync(der, new X509Certificate(caPem).raw);
    const holds = `PostgreSQL CA bundle ${der} holds binary data, likely a DER certificate, not PEM text (convert it: openssl x509 -inform der -in FILE -out FILE.pem): expected PEM CA certificates ("-----BEGIN CERTIFICATE-----" blocks)`;
    expect(() => createPool({ url: urlFor('127.0.0.1') }, { ssl: { caBundle: der } })).toThrow(holds);
    // A URL's sslrootcert (a local secrets file, DATABASE_URL) is not in the config: only the pool reads it.
    const fromUrl = (() => {
      try {
        createPool({ url: `${urlFor('127.0.0.1')}?sslrootcert=${encodeURIComponent(der)}` });
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(fromUrl).toBeInstanceOf(TerminalError);
    expect((fromUrl as Error).message).toBe(holds);
  });
});
