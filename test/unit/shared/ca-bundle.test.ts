import { X509Certificate } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import { caBundleProblem } from '../../../lambdas/shared/ca-bundle';

// Real CA certificates without a file: the roots Node ships.
const [first, second] = rootCertificates as [string, string];

describe('caBundleProblem', () => {
  it('accepts one PEM certificate, a bundle of several, and text around them (a bundle with comments)', () => {
    expect(caBundleProblem(first)).toBeUndefined();
    expect(caBundleProblem(Buffer.from(`${first}\n${second}\n`))).toBeUndefined();
    expect(caBundleProblem(`# Amazon RDS global bundle\n${first}\nSubject: …\n${second}`)).toBeUndefined();
  });

  it('says that an empty file is empty', () => {
    expect(caBundleProblem(Buffer.alloc(0))).toBe('is empty');
    expect(caBundleProblem('\n  \n')).toBe('is empty');
  });

  it('names a DER certificate as binary and says how to convert it', () => {
    const der = new X509Certificate(first).raw;
    expect(caBundleProblem(der)).toBe(
      'holds binary data, likely a DER certificate, not PEM text (convert it: openssl x509 -inform der -in FILE -out FILE.pem)',
    );
    expect(caBundleProblem(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0x01]))).toBe(
      'holds binary data, not PEM text',
    );
  });

  it('names the PEM blocks it holds when none is a certificate (a key given for the CA)', () => {
    const key = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n';
    expect(caBundleProblem(key)).toBe('holds a PEM PRIVATE KEY block and no certificate');
    expect(caBundleProblem('host=db.example.com\n')).toBe('holds text with no PEM block');
    expect(caBundleProblem(first.slice(0, 200))).toBe(
      'holds a "-----BEGIN CERTIFICATE-----" line without its "-----END CERTIFICATE-----" (a cut-off file?)',
    );
  });

  it('names the certificate that cannot be parsed, by its number and line', () => {
    const broken = second.replace(/\n([A-Za-z0-9+/]{10})/, '\n#$1');
    const problem = caBundleProblem(`${first}\n${broken}`);
    const line = first.split('\n').length + 1;
    expect(problem).toMatch(
      new RegExp(`^holds 2 PEM certificates, and certificate 2 \\(line ${line}\\) cannot be parsed: .+`),
    );
  });
});
