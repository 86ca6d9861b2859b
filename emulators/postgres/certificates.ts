/**
 * Throwaway TLS material for a local PostgreSQL server: a CA and a server certificate signed by
 * it, made with the `openssl` CLI (Node's crypto can parse X.509 certificates but not issue
 * them). For tests and local demos only: the keys are unencrypted and live one day.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** PEM text of a CA and of a server certificate it signed. */
export interface TestCertificates {
  /** The CA certificate: what a client trusts (`caBundle`). */
  readonly caPem: string;
  /** The server certificate. */
  readonly certPem: string;
  /** The server's private key (unencrypted). */
  readonly keyPem: string;
}

/** Options of {@link generateTestCertificates}. */
export interface TestCertificateOptions {
  /** Host names put in the certificate's subjectAltName. @default ['localhost'] */
  readonly dnsNames?: readonly string[];
  /** IP addresses put in the certificate's subjectAltName. @default ['127.0.0.1'] */
  readonly ipAddresses?: readonly string[];
  /** The subject CN (clients check the SAN, not the CN). @default the first DNS name */
  readonly commonName?: string;
}

/** Whether the `openssl` CLI can be run here. */
export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Makes a fresh CA and a server certificate for the given names (RSA 2048, SHA-256, one day). */
export function generateTestCertificates(options: TestCertificateOptions = {}): TestCertificates {
  const dnsNames = options.dnsNames ?? ['localhost'];
  const ips = options.ipAddresses ?? ['127.0.0.1'];
  const commonName = options.commonName ?? dnsNames[0] ?? ips[0] ?? 'localhost';
  const dir = mkdtempSync(path.join(tmpdir(), 'roundtrip-certs-'));
  const file = (name: string): string => path.join(dir, name);
  const openssl = (...args: string[]): void => {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  };
  try {
    // prettier-ignore
    openssl(
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '1',
      '-subj', '/CN=roundtrip test CA',
      '-addext', 'basicConstraints=critical,CA:TRUE',
      '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
      '-keyout', file('ca.key'), '-out', file('ca.crt'),
    );
    // prettier-ignore
    openssl(
      'req', '-new', '-newkey', 'rsa:2048', '-nodes', '-sha256',
      '-subj', `/CN=${commonName}`,
      '-keyout', file('server.key'), '-out', file('server.csr'),
    );
    const san = [...dnsNames.map((n) => `DNS:${n}`), ...ips.map((ip) => `IP:${ip}`)].join(',');
    writeFileSync(
      file('server.ext'),
      [
        'basicConstraints=CA:FALSE',
        'keyUsage=critical,digitalSignature,keyEncipherment',
        'extendedKeyUsage=serverAuth',
        `subjectAltName=${san}`,
      ].join('\n') + '\n',
    );
    // prettier-ignore
    openssl(
      'x509', '-req', '-in', file('server.csr'), '-CA', file('ca.crt'), '-CAkey', file('ca.key'),
      '-CAcreateserial', '-days', '1', '-sha256', '-extfile', file('server.ext'), '-out', file('server.crt'),
    );
    return {
      caPem: readFileSync(file('ca.crt'), 'utf8'),
      certPem: readFileSync(file('server.crt'), 'utf8'),
      keyPem: readFileSync(file('server.key'), 'utf8'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
