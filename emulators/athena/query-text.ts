/**
 * The query's text as tokens, for what DuckDB's parse tree does not keep: where a cast names
 * `char` or `varchar(n)` (DuckDB's parser reads both as a plain VARCHAR) and where each `?` is
 * (a parameter's position is "none" in the tree).
 */

export interface Token {
  /** `word` (unquoted identifier or keyword, lower-cased), `string`, `quoted`, or a punctuation mark. */
  readonly kind: 'word' | 'string' | 'quoted' | 'punct';
  readonly text: string;
  /** 0-based offset in the query. */
  readonly at: number;
}

/** Splits a query into tokens, skipping whitespace and comments. */
export function tokenize(query: string): Token[] {
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

/**
 * Each `CAST(… AS type)` / `TRY_CAST(… AS type)` of the tokens: the offset of its keyword (the
 * cast's `query_location` in DuckDB's parse tree) and the tokens of its type, which is what follows
 * the last AS at the depth of the cast's own parentheses.
 */
export function castTargets(tokens: readonly Token[]): { at: number; type: Token[] }[] {
  const casts: { at: number; type: Token[] }[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] as Token;
    if (
      token.kind !== 'word' ||
      (token.text !== 'cast' && token.text !== 'try_cast') ||
      tokens[i + 1]?.text !== '('
    ) {
      continue;
    }
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
    if (typeStart !== undefined) casts.push({ at: token.at, type: tokens.slice(typeStart, end) });
  }
  return casts;
}

/**
 * The casts to `varchar(n)` in a query: n by the offset of their `CAST` / `TRY_CAST` keyword, in
 * UTF-8 bytes as DuckDB's parse tree counts it (`query_location`).
 * Strings, quoted identifiers and comments are not looked into.
 */
export function boundedVarcharCasts(query: string): Map<number, number> {
  const found = new Map<number, number>();
  for (const cast of castTargets(tokenize(query))) {
    // The tokenizer takes each digit for a mark of its own: `varchar ( 1 2 )`.
    const [name, open, ...rest] = cast.type.map((t) => t.text);
    const length = rest.slice(0, -1).join('');
    if (name === 'varchar' && open === '(' && rest.at(-1) === ')' && /^\d+$/.test(length)) {
      // DuckDB's query_location counts UTF-8 bytes.
      found.set(Buffer.byteLength(query.slice(0, cast.at)), Number(length));
    }
  }
  return found;
}

/** The offset of each `?` of a query, in order. */
export function parameterOffsets(query: string): number[] {
  return tokenize(query).flatMap((t) => (t.kind === 'punct' && t.text === '?' ? [t.at] : []));
}

/** Splits `VARCHAR, DECIMAL(10,2), INTEGER` at the commas outside parentheses. */
export function splitTypeList(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(text.slice(start).trim());
  return parts;
}
