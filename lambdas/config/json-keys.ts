/**
 * Keys written twice in one object of a JSON config. `JSON.parse` keeps the last value of a
 * repeated key and drops the others without a word: `"fields": { "LeadScore__c": "score_a",
 * "LeadScore__c": "score_b" }` would write only `score_b`, and the config's own checks never see
 * `score_a`. (A TypeScript config has the compiler for that: TS1117.)
 */
import type { ConfigIssue } from '../shared/errors';
import { formatPath } from './issues';

type Frame =
  | { kind: 'object'; keys: Map<string, number>; key: string | undefined; expectingKey: boolean }
  | { kind: 'array'; index: number };

/** The line of each offset asked, in increasing order: the text is counted through once. */
function lineCounter(text: string): (offset: number) => number {
  let line = 1;
  let counted = 0;
  return (offset) => {
    for (; counted < offset; counted++) if (text.charCodeAt(counted) === 10) line++;
    return line;
  };
}

/** The end (exclusive) of the JSON string that starts with the quote at `start`. */
function stringEnd(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
  return i + 1;
}

/**
 * One issue per key repeated in an object of `text`, which `JSON.parse` accepted: its config path,
 * and the lines of both occurrences. Keys are compared exactly, as `JSON.parse` does (the schema
 * refuses a field mapped twice in another case).
 */
export function repeatedJsonKeys(text: string): ConfigIssue[] {
  const stack: Frame[] = [];
  const issues: ConfigIssue[] = [];
  const path = (): PropertyKey[] => stack.map((f) => (f.kind === 'object' ? (f.key ?? '') : f.index));
  const lineAt = lineCounter(text);
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    const top = stack.at(-1);
    if (c === '{') {
      stack.push({ kind: 'object', keys: new Map(), key: undefined, expectingKey: true });
      i++;
    } else if (c === '[') {
      stack.push({ kind: 'array', index: 0 });
      i++;
    } else if (c === '}' || c === ']') {
      stack.pop();
      i++;
    } else if (c === ',') {
      if (top?.kind === 'array') top.index++;
      else if (top?.kind === 'object') top.expectingKey = true;
      i++;
    } else if (c === '"') {
      const end = stringEnd(text, i);
      if (top?.kind === 'object' && top.expectingKey) {
        const key = JSON.parse(text.slice(i, end)) as string;
        top.key = key;
        top.expectingKey = false;
        const line = lineAt(i);
        const earlier = top.keys.get(key);
        if (earlier === undefined) top.keys.set(key, line);
        else {
          issues.push({
            path: formatPath(path()),
            message: `expected each key once in an object, got ${JSON.stringify(key)} again on line ${line} (also on line ${earlier}): JSON keeps only the last one's value and silently drops the other; keep one`,
          });
        }
      }
      i = end;
    } else {
      i++;
    }
  }
  return issues;
}
