/**
 * What a PostgreSQL CA bundle file holds: the PEM certificates Node's TLS `ca` option takes, or,
 * when it holds none or one that cannot be parsed, what it holds instead. One reading for the
 * config's check (lambdas/config/load.ts, `cdk synth`'s deploymentIssues in lib/pipeline-stack.ts)
 * and the pool's (lambdas/connectors/postgres/pool.ts), so that a DER file, a key or an empty file
 * is named the same way wherever it is found, before anything connects.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** A PEM block: `-----BEGIN <label>-----` … `-----END <label>-----` (RFC 7468). */
const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

/** The label of a certificate's PEM block (RFC 7468 §5). */
const CERTIFICATE_LABEL = 'CERTIFICATE';

/** The ASN.1 SEQUENCE tag a DER certificate starts with. */
const DER_SEQUENCE = 0x30;

/** The 1-based line of `offset` in `text`. */
function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) line += 1;
  return line;
}

/**
 * Why `content` is not a bundle of PEM CA certificates, said as what it holds ("is empty",
 * "holds binary data …", "holds a PEM PRIVATE KEY block and no certificate", "its certificate 2
 * (line 23) cannot be parsed: …"); undefined when it holds at least one certificate and each of
 * its certificates parses.
 */
export function caBundleProblem(content: Buffer | string): string | undefined {
  const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  if (bytes.length === 0 || bytes.toString('utf8').trim() === '') return 'is empty';
  const text = bytes.toString('utf8');
  // A DER file (or any binary file) does not survive a UTF-8 reading: NUL bytes or U+FFFD.
  if (bytes.includes(0) || text.includes('\uFFFD')) {
    return bytes[0] === DER_SEQUENCE
      ? 'holds binary data, likely a DER certificate, not PEM text (convert it: openssl x509 -inform der -in FILE -out FILE.pem)'
      : 'holds binary data, not PEM text';
  }
  const blocks = [...text.matchAll(PEM_BLOCK)];
  const certificates = blocks.filter((b) => b[1] === CERTIFICATE_LABEL);
  if (certificates.length === 0) {
    const labels = [...new Set(blocks.map((b) => b[1]))];
    if (labels.length > 0) {
      return `holds ${labels.map((l) => `a PEM ${l} block`).join(', ')} and no certificate`;
    }
    return text.includes(`-----BEGIN ${CERTIFICATE_LABEL}-----`)
      ? `holds a "-----BEGIN ${CERTIFICATE_LABEL}-----" line without its "-----END ${CERTIFICATE_LABEL}-----" (a cut-off file?)`
      : 'holds text with no PEM block';
  }
  for (const [i, block] of certificates.entries()) {
    try {
      new X509Certificate(block[0]);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      return `holds ${certificates.length} PEM certificate${certificates.length === 1 ? '' : 's'}, and certificate ${i + 1} (line ${lineOf(text, block.index)}) cannot be parsed: ${why}`;
    }
  }
  return undefined;
}

/** What a CA bundle is expected to be, for a config problem. */
export const CA_BUNDLE_EXPECTED =
  'expected a PEM file of CA certificates ("-----BEGIN CERTIFICATE-----" blocks, such as the RDS global bundle)';

/**
 * The config problem of an existing CA bundle file `absolute` (given in the config as `given`)
 * that is not a bundle of PEM CA certificates, or undefined when it is one.
 */
export function caBundleFileProblem(given: string, absolute: string): string | undefined {
  let problem: string | undefined;
  try {
    problem = caBundleProblem(readFileSync(absolute));
  } catch (err) {
    problem = `cannot be read: ${err instanceof Error ? err.message : String(err)}`;
  }
  return problem === undefined
    ? undefined
    : `${CA_BUNDLE_EXPECTED}, got ${JSON.stringify(given)} (${absolute}), which ${problem}`;
}
