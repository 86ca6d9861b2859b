/**
 * Turns zod issues into the config's own error messages, one style throughout:
 *
 *     <path>: expected <what>, got <what was there>
 *     <path>.<key>: unknown key (expected one of: a, b, c)
 *
 * zod 4's default messages ("Invalid input: expected string, received undefined") name
 * neither the config path in the way a user writes it nor what the option means, so every
 * schema in schema.ts carries its own "expected" text (see {@link expected}) and this module
 * adds the path and a rendering of the value that was found.
 */
import type { ConfigIssue } from '../shared/errors';
import { redactCredentialPatterns } from '../shared/redact';

/** What the per-parse error map returns: "no custom text, format from the issue's code". */
export const DEFAULT_MESSAGE = '\u0000default';

/** Prefix of the message an object schema gives an unknown key, followed by its known keys. */
const KNOWN_KEYS = '\u0000known:';

/** A zod issue as it arrives after parsing (the fields this module reads). */
export interface RawIssue {
  readonly code: string;
  readonly path: readonly PropertyKey[];
  readonly message: string;
  readonly keys?: readonly string[];
  readonly values?: readonly unknown[];
  readonly options?: readonly unknown[];
  readonly expected?: string;
  readonly origin?: string;
  readonly minimum?: number | bigint;
  readonly maximum?: number | bigint;
  readonly params?: { readonly complete?: boolean };
}

/**
 * In a complete message, stands for the path of a sibling element `[index]` of the issue's
 * own path (e.g. the first occurrence of a repeated field); {@link toConfigIssues} expands it.
 */
export function siblingPath(index: number): string {
  return `\uE000${index}\uE000`;
}

/** Params for a custom issue whose message is already complete ("expected …, got …"). */
export const COMPLETE = { complete: true } as const;

/**
 * A zod `error` option that answers every issue of a schema with the text of what it
 * expects, e.g. `expected('a non-empty string')`.
 */
export function expected(text: string): (issue: { code: string }) => string | undefined {
  return (issue) => (issue.code === 'unrecognized_keys' ? undefined : text);
}

/** The `error` option of an object schema: its expected text, and its keys for unknown-key issues. */
export function objectError(text: string, keys: readonly string[]): (issue: { code: string }) => string {
  return (issue) => (issue.code === 'unrecognized_keys' ? `${KNOWN_KEYS}${keys.join(',')}` : text);
}

/** `writeback[0].fields.LeadScore__c`; keys that are not identifiers are quoted: `fields["Lead Score"]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (typeof segment === 'string' && /^[A-Za-z_$][\w$]*$/.test(segment))
      out += out ? `.${segment}` : segment;
    else out += `[${JSON.stringify(String(segment))}]`;
  }
  return out;
}

const MAX_SHOWN = 60;

/**
 * How a value that was found reads in a message: `"merge"`, `42`, `null`, `nothing`, `an object`.
 * A string is shown with its credential-shaped parts masked (redactCredentialPatterns): a
 * connection URL with its password pasted where a secret's name belongs is shown without it.
 */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') {
    const shown = JSON.stringify(redactCredentialPatterns(value));
    return shown.length > MAX_SHOWN
      ? `${shown.slice(0, MAX_SHOWN - 4)}…" (${value.length} characters)`
      : shown;
  }
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  if (Array.isArray(value)) {
    if (value.length === 0) return 'an empty list';
    const json = safeJson(value);
    const shown = json && redactCredentialPatterns(json);
    return shown && shown.length <= MAX_SHOWN ? shown : `a list of ${value.length}`;
  }
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'object') return Object.keys(value).length === 0 ? 'an empty object' : 'an object';
  return typeof value;
}

function safeJson(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch {
    return undefined;
  }
}

/** The value at a path inside the raw input (undefined where the path leads nowhere). */
export function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let current: unknown = root;
  for (const segment of path) {
    if (current === null || typeof current !== 'object') return undefined;
    if (!Object.prototype.hasOwnProperty.call(current, segment)) return undefined;
    current = (current as Record<PropertyKey, unknown>)[segment];
  }
  return current;
}

const TYPE_TEXT: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  object: 'an object',
  array: 'a list',
  record: 'an object',
};

function literalList(values: readonly unknown[]): string {
  return values.map((v) => (typeof v === 'string' ? JSON.stringify(v) : String(v))).join(' | ');
}

/** The "expected" text zod's own issue data gives, for schemas without a text of their own. */
function defaultExpectation(issue: RawIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return TYPE_TEXT[issue.expected ?? ''] ?? `a value of type ${issue.expected ?? 'unknown'}`;
    case 'invalid_value':
      return literalList(issue.values ?? []);
    case 'invalid_union':
      return issue.options ? literalList(issue.options) : 'one of the allowed shapes';
    case 'too_small':
      if (issue.origin === 'string') return 'a non-empty string';
      if (issue.origin === 'array') return `a list of at least ${String(issue.minimum)}`;
      return `a number ≥ ${String(issue.minimum)}`;
    case 'too_big':
      if (issue.origin === 'string') return `at most ${String(issue.maximum)} characters`;
      if (issue.origin === 'array') return `a list of at most ${String(issue.maximum)}`;
      return `a number ≤ ${String(issue.maximum)}`;
    default:
      return 'a valid value';
  }
}

/** Edit distance counting a swap of two neighbours as one edit, for "did you mean" on unknown keys. */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number): number => d[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i <= a.length; i++) {
    const row = d[i] ?? [];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, at(i - 2, j - 2) + 1);
      row[j] = best;
    }
  }
  return at(a.length, b.length);
}

/** The known name closest to `key` (case ignored, a typo or two), for a "did you mean". */
export function suggestion(key: string, known: readonly string[]): string | undefined {
  const lower = key.toLowerCase();
  let best: { key: string; d: number } | undefined;
  for (const candidate of known) {
    const d = candidate.toLowerCase() === lower ? 0 : distance(lower, candidate.toLowerCase());
    if (d <= (key.length <= 4 ? 1 : 2) && (!best || d < best.d)) best = { key: candidate, d };
  }
  return best?.key;
}

/**
 * One zod issue as config issues (an unknown-keys issue yields one per key).
 * @param input the raw config, to show what was found at the issue's path.
 */
export function toConfigIssues(issue: RawIssue, input: unknown): ConfigIssue[] {
  const path = issue.path;
  if (issue.code === 'unrecognized_keys') {
    const known = issue.message.startsWith(KNOWN_KEYS)
      ? issue.message.slice(KNOWN_KEYS.length).split(',').filter(Boolean)
      : [];
    return (issue.keys ?? []).map((key) => {
      const hint = suggestion(key, known);
      const list = known.length > 0 ? ` (expected one of: ${known.join(', ')})` : '';
      return {
        path: formatPath([...path, key]),
        message: `unknown key${list}${hint ? `; did you mean "${hint}"?` : ''}`,
      };
    });
  }
  if (issue.code === 'custom' && issue.params?.complete) {
    const message = issue.message.replace(/\uE000(\d+)\uE000/g, (_, index: string) =>
      formatPath([...path.slice(0, -1), Number(index)]),
    );
    return [{ path: formatPath(path), message }];
  }
  const what = issue.message === DEFAULT_MESSAGE ? defaultExpectation(issue) : issue.message;
  return [
    { path: formatPath(path), message: `expected ${what}, got ${describeValue(valueAt(input, path))}` },
  ];
}
