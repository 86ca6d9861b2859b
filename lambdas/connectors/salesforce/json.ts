/**
 * A JSON parser that keeps numbers exactly as Salesforce wrote them when a JavaScript number
 * cannot (an 18-digit currency value, `1.0`): `JSON.parse` would round `123456789012345678` to
 * `123456789012345680`. Node 22's `JSON.parse` reviver can see the source text, Node 20's cannot,
 * so the REST query pages are parsed here.
 */

/** A JSON number whose text does not survive a round trip through a JavaScript number. */
export class LosslessNumber {
  constructor(readonly raw: string) {}
  toString(): string {
    return this.raw;
  }
}

/** A parsed JSON value; numbers are JS numbers when exact, else {@link LosslessNumber}. */
export type LosslessJson =
  string | number | boolean | null | LosslessNumber | LosslessJson[] | { [key: string]: LosslessJson };

/**
 * Sets a member as `JSON.parse` does (an own, enumerable property), also for the key
 * `"__proto__"`: assigning `obj['__proto__'] = value` would set the object's prototype instead
 * (and drop the member, or take a non-object value silently).
 */
function setMember(obj: Record<string, LosslessJson>, key: string, value: LosslessJson): void {
  if (key === '__proto__') {
    Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
  } else obj[key] = value;
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const WHITESPACE = /[ \t\n\r]*/y;

/** Parses JSON text; throws a SyntaxError naming the offset (never quoting the text) when it is not JSON. */
export function parseJsonLossless(text: string): LosslessJson {
  let i = 0;
  const fail = (what: string): never => {
    throw new SyntaxError(`Invalid JSON at offset ${i}: ${what}`);
  };
  const skip = (): void => {
    WHITESPACE.lastIndex = i;
    WHITESPACE.exec(text);
    i = WHITESPACE.lastIndex;
  };
  const parseString = (): string => {
    // text[i] === '"'
    const start = i;
    let j = i + 1;
    let escaped = false;
    for (;;) {
      const q = text.indexOf('"', j);
      if (q < 0) fail('unterminated string');
      let backslashes = 0;
      for (let k = q - 1; k > start && text.charCodeAt(k) === 92; k -= 1) backslashes += 1;
      if (backslashes > 0) escaped = true;
      if (backslashes % 2 === 0) {
        i = q + 1;
        const body = text.slice(start, i);
        return escaped || body.includes('\\') ? (JSON.parse(body) as string) : body.slice(1, -1);
      }
      j = q + 1;
    }
  };
  const parseValue = (): LosslessJson => {
    skip();
    const c = text[i];
    if (c === '"') return parseString();
    if (c === '{') {
      i += 1;
      const obj: Record<string, LosslessJson> = {};
      skip();
      if (text[i] === '}') {
        i += 1;
        return obj;
      }
      for (;;) {
        skip();
        if (text[i] !== '"') fail('expected a key');
        const key = parseString();
        skip();
        if (text[i] !== ':') fail('expected ":"');
        i += 1;
        setMember(obj, key, parseValue());
        skip();
        if (text[i] === ',') {
          i += 1;
          continue;
        }
        if (text[i] === '}') {
          i += 1;
          return obj;
        }
        fail('expected "," or "}"');
      }
    }
    if (c === '[') {
      i += 1;
      const arr: LosslessJson[] = [];
      skip();
      if (text[i] === ']') {
        i += 1;
        return arr;
      }
      for (;;) {
        arr.push(parseValue());
        skip();
        if (text[i] === ',') {
          i += 1;
          continue;
        }
        if (text[i] === ']') {
          i += 1;
          return arr;
        }
        fail('expected "," or "]"');
      }
    }
    if (text.startsWith('true', i)) {
      i += 4;
      return true;
    }
    if (text.startsWith('false', i)) {
      i += 5;
      return false;
    }
    if (text.startsWith('null', i)) {
      i += 4;
      return null;
    }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m) return fail('unexpected character');
    i = NUMBER.lastIndex;
    const raw = m[0];
    const n = Number(raw);
    return String(n) === raw ? n : new LosslessNumber(raw);
  };
  const value = parseValue();
  skip();
  if (i !== text.length) fail('unexpected text after the value');
  return value;
}

/** JSON text of a parsed value, writing {@link LosslessNumber}s as they were given. */
export function stringifyJsonLossless(value: LosslessJson | undefined): string {
  if (value === undefined || value === null) return 'null';
  if (value instanceof LosslessNumber) return value.raw;
  if (Array.isArray(value)) return `[${value.map(stringifyJsonLossless).join(',')}]`;
  if (typeof value === 'object') {
    return `{${Object.entries(value)
      .map(([k, v]) => `${JSON.stringify(k)}:${stringifyJsonLossless(v)}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}
