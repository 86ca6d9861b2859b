/**
 * Trino's `char(n)` (fixed-length text, padded with spaces to n characters: `CAST('ab' AS
 * char(4))` is `'ab  '`, typed `char` with precision 4) has no DuckDB counterpart: DuckDB parses
 * `CHAR(n)` as a plain `VARCHAR` and keeps `'ab'`, and its parse tree no longer tells which was
 * written. Rather than answer with the wrong value and type, the emulator refuses a query that
 * names the type (NOT_SUPPORTED); this module finds where it does, in the query's text.
 */

import { castTargets, tokenize, type Token } from './query-text';

/** The names Trino (and DuckDB) take for the fixed-length type; `CHARACTER VARYING` is varchar. */
const CHAR_NAMES = new Set(['char', 'character', 'nchar', 'bpchar']);

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
  const offsets: number[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] as Token;
    if (isCharName(tokens, i) && tokens[i + 1]?.kind === 'string') offsets.push(token.at); // CHAR 'x'
    if (token.kind === 'punct' && token.text === '::' && isCharName(tokens, i + 1)) {
      offsets.push(tokens[i + 1]?.at ?? token.at);
    }
  }
  for (const cast of castTargets(tokens)) {
    const at = cast.type.findIndex((_, j) => isCharName(cast.type, j));
    if (at !== -1) offsets.push(cast.type[at]?.at ?? cast.at);
  }
  return offsets.length ? Math.min(...offsets) : undefined;
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
