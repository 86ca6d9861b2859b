/**
 * Redaction of secret values before anything reaches a logger, an error message or a run summary.
 *
 * Connectors hold a {@link Redactor} seeded with the values of their secret (password, security
 * token, client secret, private key) and extended with what they obtain at run time (session ids,
 * access tokens). Every message that leaves a connector goes through {@link Redactor.redact}, and
 * every structured value through {@link Redactor.redactDeep}.
 *
 * Besides the exact values it knows, a redactor also masks the shapes a credential takes on the
 * wire even when it does not know the value ({@link redactCredentialPatterns}): a `Bearer` header,
 * an `Authorization: Basic` header, a session id in a URL's query (`frontdoor.jsp?sid=…`),
 * an `access_token` in JSON, a SOAP `<sessionId>`, a PEM private key block, a form-encoded password,
 * the password of a URL (`postgres://user:password@host/db`, a connection string pasted where a
 * secret's name belongs).
 */

/** What a redacted value is replaced with. */
export const REDACTED = '[REDACTED]';

/**
 * Values shorter than this are not registered: masking every "ab" in a message would destroy it,
 * and no credential Salesforce or AWS accepts is that short (Salesforce passwords have at least
 * 8 characters, security tokens 24, session ids over 100).
 */
export const MIN_SECRET_LENGTH = 4;

/** Lines of a PEM body shorter than this are not registered on their own (the last line may be short). */
const MIN_PEM_LINE_LENGTH = 16;

const PEM_BLOCK = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g;

/** Patterns of credentials on the wire, each with the part to keep before the value. */
const CREDENTIAL_PATTERNS: readonly RegExp[] = [
  /(\bBearer\s+)[^\s"',;]+/gi,
  // Basic credentials (base64 of client id:secret) only as an Authorization header's value: the
  // word "Basic" alone is ordinary text.
  /(\bauthorization["']?\s*[:=]\s*["']?Basic\s+)[^\s"',;]+/gi,
  // Not after a ":": `arn:aws:secretsmanager:…:secret:NAME` names a secret, it holds none.
  /((?<![A-Za-z0-9_:])["']?(?:access_token|refresh_token|client_secret|password|assertion|sessionId|session_id|sid|securityToken|privateKey|secret)["']?\s*[:=]\s*["']?)[^"'\s,&}]+/gi,
  /(<(?:[A-Za-z]+:)?(?:sessionId|password)>)[^<]*/gi,
  // A URL's user:password@ (userinfo ends at the last "@" before the host; "/", "?", "#" and
  // whitespace cannot be in it unencoded). The user name is kept: it says which credentials.
  /(\b[A-Za-z][A-Za-z0-9+.-]*:\/\/[^\s/?#@:"']*:)[^\s/?#"']*(?=@)/g,
];

/**
 * Masks credential-shaped substrings (Bearer headers, tokens in JSON or forms, SOAP session ids, PEM
 * keys, URL passwords).
 */
export function redactCredentialPatterns(text: string): string {
  let out = text.replace(PEM_BLOCK, REDACTED);
  for (const pattern of CREDENTIAL_PATTERNS) out = out.replace(pattern, `$1${REDACTED}`);
  return out;
}

function escapeXml(value: string): string {
  return value
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** The forms in which a secret may appear inside a message: as is, JSON-escaped, URL-encoded, XML-escaped. */
function encodedForms(value: string): string[] {
  const forms = new Set<string>([value]);
  forms.add(JSON.stringify(value).slice(1, -1));
  forms.add(encodeURIComponent(value));
  forms.add(new URLSearchParams({ v: value }).toString().slice(2));
  forms.add(escapeXml(value));
  return [...forms];
}

/** Removes secret values from strings and structured values. */
export interface Redactor {
  /** Registers more secret values (e.g. a session id obtained after login). Short or empty values are ignored. */
  add(...values: readonly (string | null | undefined)[]): void;
  /** The text with every known secret and every credential-shaped substring masked. */
  redact(text: string): string;
  /** A deep copy of `value` with every string redacted (object keys are kept). */
  redactDeep<T>(value: T): T;
  /**
   * A new Error with the same name, a redacted message, redacted string `code` and numeric
   * `statusCode` (an HTTP status, no secret), without the original's data.
   */
  redactError(error: unknown): Error;
}

/** Creates a {@link Redactor} that knows `values` (more can be added later). */
export function createRedactor(values: readonly (string | null | undefined)[] = []): Redactor {
  // Longest first, so that a secret containing another is masked whole.
  let known: string[] = [];
  const add = (...more: readonly (string | null | undefined)[]): void => {
    const next = new Set(known);
    for (const value of more) {
      if (typeof value !== 'string' || value.length < MIN_SECRET_LENGTH) continue;
      for (const form of encodedForms(value)) next.add(form);
      const pem = /-----BEGIN [A-Z0-9 ]*-----([\s\S]*?)-----END [A-Z0-9 ]*-----/.exec(value);
      if (pem?.[1]) {
        for (const line of pem[1].split(/\r?\n/)) {
          const trimmed = line.trim();
          if (trimmed.length >= MIN_PEM_LINE_LENGTH) next.add(trimmed);
        }
      }
    }
    known = [...next].sort((a, b) => b.length - a.length);
  };
  add(...values);

  const redact = (text: string): string => {
    let out = text;
    for (const secret of known) {
      if (out.includes(secret)) out = out.split(secret).join(REDACTED);
    }
    return redactCredentialPatterns(out);
  };

  const redactDeep = <T>(value: T): T => {
    const seen = new WeakMap<object, unknown>();
    const walk = (v: unknown): unknown => {
      if (typeof v === 'string') return redact(v);
      if (v === null || typeof v !== 'object') return v;
      if (seen.has(v)) return seen.get(v);
      if (v instanceof Error) {
        const copy = redactError(v);
        seen.set(v, copy);
        return copy;
      }
      if (Array.isArray(v)) {
        const arr: unknown[] = [];
        seen.set(v, arr);
        for (const item of v) arr.push(walk(item));
        return arr;
      }
      const obj: Record<string, unknown> = {};
      seen.set(v, obj);
      for (const [k, item] of Object.entries(v)) obj[k] = walk(item);
      return obj;
    };
    return walk(value) as T;
  };

  const redactError = (error: unknown): Error => {
    if (!(error instanceof Error)) return new Error(redact(String(error)));
    const copy = new Error(redact(error.message));
    copy.name = error.name;
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string') Object.assign(copy, { code: redact(code) });
    const statusCode = (error as { statusCode?: unknown }).statusCode;
    if (typeof statusCode === 'number') Object.assign(copy, { statusCode });
    if (typeof error.stack === 'string') copy.stack = redact(error.stack);
    return copy;
  };

  return { add, redact, redactDeep, redactError };
}
