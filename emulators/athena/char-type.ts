/**
 * Trino's `char(n)` (fixed-length text, padded with spaces to n characters: `CAST('ab' AS
 * char(4))` is `'ab  '`, typed `char` with precision 4) has no DuckDB counterpart: DuckDB parses
 * `CHAR(n)` as a plain `VARCHAR` and keeps `'ab'`, and its parse tree no longer tells which was
 * written. Rather than answer with the wrong value and type, the emulator refuses a query that
 * names the type (NOT_SUPPORTED); this module finds where it does, in the query's text.
 */

/** The names Trino (and DuckDB) take for the fixed-length type; `CHARACTER VARYING` is varchar. */
const CHAR_NAMES = new Set(['char', 'character', 'nchar', 'bpchar']);

interface Token {
  /** `word` (unquoted identifier or keyword, lower-cased), `string`, `quoted`, or a punctuation mark. */
  readonly kind: 'word' | 'string' | 'quoted' | 'punct';
  readonly text: string;
  /** 0-based offset in the query. */
  readonly at: number;
}

/** Splits a query into tokens, skipping whitespace and comments. */
function tokenize(query: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < query.length) {
    const c = query[i] ?? '';
    if (/\s/.test(c)) {
      i++;
    } else if (query.startsWith('--', i)) {
      const end = query.indexOf('\n', i);
      i = end === -1 ? query.length : end + 1;
    } else if (query.startsWith('/*', i)) {
      const end = query.indexOf('*/', i + 2);
      i = end === -1 ? query.length : end + 2;
    } else if (c === "'" || c === '"') {
      // A quote inside is doubled ('it''s', "a""b").
      let j = i + 1;
      for (;;) {
        const next = query.indexOf(c, j);
        if (next === -1) {
          j = query.length;
          break;
        }
        if (query[next + 1] === c) {
          j = next + 2;
          continue;
        }
        j = next + 1;
        break;
      }
      tokens.push({ kind: c === "'" ? 'string' : 'quoted', text: query.slice(i, j), at: i });
      i = j;
    } else if (/[A-Za-z_]/.test(c)) {
      const word = /^[A-Za-z_][A-Za-z0-9_$]*/.exec(query.slice(i))?.[0] ?? c;
      tokens.push({ kind: 'word', text: word.toLowerCase(), at: i });
      i += word.length;
    } else if (query.startsWith('::', i)) {
      tokens.push({ kind: 'punct', text: '::', at: i });
      i += 2;
    } else {
      tokens.push({ kind: 'punct', text: c, at: i });
      i++;
    }
  }
  return tokens;
}

const isCharName = (tokens: readonly Token[], i: number): boolean => {
  const token = tokens[i];
  const next = tokens[i + 1];
  return (
    token?.kind === 'word' &&
    CHAR_NAMES.has(token.text) &&
    !(next?.kind === 'word' && next.text === 'varying')
  );
};

/**
 * The offset of the first place the query names the `char` type, or undefined: the target type
 * of a `CAST(… AS …)` / `TRY_CAST(… AS …)` (nested types too: `array(char(2))`), a typed literal
 * (`CHAR 'x'`), or a `::` cast. Strings, quoted identifiers and comments are not looked into.
 */
export function charTypeOffset(query: string): number | undefined {
  const tokens = tokenize(query);
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] as Token;
    if (isCharName(tokens, i) && tokens[i + 1]?.kind === 'string') return token.at; // CHAR 'x'
    if (token.kind === 'punct' && token.text === '::' && isCharName(tokens, i + 1)) {
      return tokens[i + 1]?.at;
    }
    if (
      token.kind !== 'word' ||
      (token.text !== 'cast' && token.text !== 'try_cast') ||
      tokens[i + 1]?.text !== '('
    ) {
      continue;
    }
    // The CAST's parentheses: its type is what follows the last AS at their own depth.
    let depth = 0;
    let typeStart: number | undefined;
    let end = tokens.length;
    for (let j = i + 1; j < tokens.length; j++) {
      const inner = tokens[j] as Token;
      if (inner.kind !== 'punct' && inner.kind !== 'word') continue;
      if (inner.text === '(') depth++;
      else if (inner.text === ')' && --depth === 0) {
        end = j;
        break;
      } else if (depth === 1 && inner.kind === 'word' && inner.text === 'as') typeStart = j + 1;
    }
    if (typeStart === undefined) continue;
    for (let j = typeStart; j < end; j++) if (isCharName(tokens, j)) return tokens[j]?.at;
  }
  return undefined;
}

/** 1-based line and column of an offset, as Trino reports positions. */
export function lineAndColumn(query: string, offset: number): { line: number; column: number } {
  const before = query.slice(0, offset).split('\n');
  return { line: before.length, column: (before.at(-1)?.length ?? 0) + 1 };
}

/** The StateChangeReason of a query refused for naming `char`. */
export function charNotSupportedReason(query: string, offset: number): string {
  const { line, column } = lineAndColumn(query, offset);
  return (
    `NOT_SUPPORTED: line ${line}:${column}: The Athena emulator does not support the char type: ` +
    `Athena pads a char(n) value with spaces to n characters, and DuckDB, which runs the query here, ` +
    `has no such type (its CHAR is an unpadded varchar). Use varchar (rpad(x, n, ' ') pads), or run this query in Athena`
  );
}

/**
 * Whether a sidecar column type (a DuckDB type) is DuckDB's `CHAR`, which is not Athena's char:
 * `CHAR(2)`, `CHARACTER`, `BPCHAR`, `NCHAR(1)`, not `CHARACTER VARYING`.
 */
export function isCharTypeName(type: string): boolean {
  return charTypeOffset(`CAST(NULL AS ${type})`) !== undefined;
}
