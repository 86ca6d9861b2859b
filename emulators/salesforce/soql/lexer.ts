/**
 * SOQL tokenizer for the emulator's subset. Keywords are not distinguished here: the
 * parser matches identifiers case-insensitively where the grammar expects a keyword
 * (SOQL keywords are case-insensitive and field names may look like keywords).
 */
import { SoqlError } from './errors';

/** Token kinds. `datetime` and `date` are unquoted literals (`2024-01-31T10:00:00Z`, `2024-01-31`). */
export type TokenKind =
  | 'ident'
  | 'string'
  | 'number'
  | 'date'
  | 'datetime'
  | 'op'
  | 'lparen'
  | 'rparen'
  | 'comma'
  | 'colon'
  | 'eof';

/** One token with its position (0-based offset into the query). */
export interface Token {
  kind: TokenKind;
  /** For strings: the unescaped value; otherwise the source text. */
  value: string;
  /** The token's source text as written (quotes included). */
  text: string;
  offset: number;
}

const DATETIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})/;
const DATE_RE = /^\d{4}-\d{2}-\d{2}(?![\w-])/;
const NUMBER_RE = /^\d+(\.\d+)?|^\.\d+/;
const IDENT_RE = /^[A-Za-z_][A-Za-z0-9_.]*/;

/** SOQL string escapes (SOQL and SOSL Reference, "Quoted String Escape Sequences"). */
const ESCAPES: Record<string, string> = {
  n: '\n',
  N: '\n',
  r: '\r',
  R: '\r',
  t: '\t',
  T: '\t',
  b: '\b',
  B: '\b',
  f: '\f',
  F: '\f',
  '"': '"',
  "'": "'",
  '\\': '\\',
  // \_ and \% stay escaped: they only mean something inside LIKE patterns.
  _: '\\_',
  '%': '\\%',
};

/** Splits a SOQL query into tokens; throws MALFORMED_QUERY on a character it cannot start a token with. */
export function tokenize(soql: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const n = soql.length;
  while (i < n) {
    const c = soql[i] as string;
    if (/\s/.test(c)) {
      i += 1;
      continue;
    }
    const rest = soql.slice(i, i + 40);
    if (c === "'") {
      let value = '';
      let j = i + 1;
      let closed = false;
      while (j < n) {
        const ch = soql[j] as string;
        if (ch === '\\') {
          const next = soql[j + 1];
          const mapped = next === undefined ? undefined : ESCAPES[next];
          if (mapped === undefined) {
            throw malformedAt(
              soql,
              j,
              `Invalid string literal '${soql.slice(i, j + 2)}'. Illegal character sequence '\\${next ?? ''}' in string literal.`,
            );
          }
          value += mapped;
          j += 2;
          continue;
        }
        if (ch === "'") {
          closed = true;
          break;
        }
        value += ch;
        j += 1;
      }
      if (!closed) throw malformedAt(soql, i, `unexpected token: '${soql.slice(i)}'`);
      tokens.push({ kind: 'string', value, text: soql.slice(i, j + 1), offset: i });
      i = j + 1;
      continue;
    }
    let m = DATETIME_RE.exec(rest);
    if (m) {
      tokens.push({ kind: 'datetime', value: m[0], text: m[0], offset: i });
      i += m[0].length;
      continue;
    }
    m = DATE_RE.exec(rest);
    if (m) {
      tokens.push({ kind: 'date', value: m[0], text: m[0], offset: i });
      i += m[0].length;
      continue;
    }
    m = NUMBER_RE.exec(soql.slice(i));
    if (m && /[0-9.]/.test(c)) {
      tokens.push({ kind: 'number', value: m[0], text: m[0], offset: i });
      i += m[0].length;
      continue;
    }
    m = IDENT_RE.exec(soql.slice(i, i + 256));
    if (m) {
      tokens.push({ kind: 'ident', value: m[0], text: m[0], offset: i });
      i += m[0].length;
      continue;
    }
    const two = soql.slice(i, i + 2);
    if (two === '!=' || two === '<>' || two === '<=' || two === '>=') {
      tokens.push({ kind: 'op', value: two, text: two, offset: i });
      i += 2;
      continue;
    }
    if (c === '=' || c === '<' || c === '>' || c === '-' || c === '+') {
      tokens.push({ kind: 'op', value: c, text: c, offset: i });
      i += 1;
      continue;
    }
    const punct: Partial<Record<string, TokenKind>> = {
      '(': 'lparen',
      ')': 'rparen',
      ',': 'comma',
      ':': 'colon',
    };
    const kind = punct[c];
    if (kind) {
      tokens.push({ kind, value: c, text: c, offset: i });
      i += 1;
      continue;
    }
    throw malformedAt(soql, i, `unexpected token: '${c}'`);
  }
  tokens.push({ kind: 'eof', value: '', text: '<EOF>', offset: n });
  return tokens;
}

/**
 * A MALFORMED_QUERY error in Salesforce's layout: the query line, a caret under the
 * offending column, `ERROR at Row:r:Column:c` and the reason (layout as the REST API returns
 * it; the exact excerpt window Salesforce prints for long queries is not reproduced).
 */
export function malformedAt(soql: string, offset: number, reason: string): SoqlError {
  return new SoqlError('MALFORMED_QUERY', positioned(soql, offset, reason));
}

/** Formats `reason` with the query line and an `ERROR at Row:…:Column:…` marker. */
export function positioned(soql: string, offset: number, reason: string): string {
  const before = soql.slice(0, offset);
  const row = before.split('\n').length;
  const lineStart = before.lastIndexOf('\n') + 1;
  const lineEnd = soql.indexOf('\n', offset) === -1 ? soql.length : soql.indexOf('\n', offset);
  const column = offset - lineStart + 1;
  const line = soql.slice(lineStart, lineEnd);
  return `\n${line}\n${' '.repeat(column - 1)}^\nERROR at Row:${row}:Column:${column}\n${reason}`;
}
