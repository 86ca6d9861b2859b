/**
 * A config read by a command that uses only part of it: `status`, `errors`, `forget`,
 * `rename-task` and `resolve` read the runs' records in the pipeline's database, and need of the
 * config its `name`, its `postgres` section, which task each `extract` and `writeback` entry is,
 * and at most one more section. A mistake elsewhere — a write-back's field mapping, an extract's
 * option, the budget, the schedule — does not keep them from answering in an incident, while
 * `run`, `plan` and `validate` still refuse the config ({@link parseConfig}).
 *
 * {@link parseConfigReading} answers the config with the parts that have a mistake left out: a
 * section dropped (its default, or none), a task's option dropped (its default) and a required
 * one the readers never read given a stand-in ({@link STAND_INS}), and the mistakes tolerated, for
 * the command to say that the config has problems. A mistake in a part it reads is refused as
 * parseConfig refuses it, every problem named.
 */
import { ConfigError, type ConfigIssue } from '../shared/errors';
import { DEFAULT_MESSAGE, suggestion, toConfigIssues } from './issues';
import { inDocumentOrder, parseConfig } from './parse';
import { pipelineConfigSchema } from './schema';
import type { PipelineConfig } from './types';

/** A section a command may read besides `name` and `postgres`. */
export type ReadSection = 'salesforce' | 'athena';

/**
 * The keys of a task that say which task it is, read by every such command: its name and what
 * its default name comes of; of a write-back, the mode, key and key column its records were sent
 * by (which keys an insert without a key left to record by hand, what resolve records).
 */
const TASK_KEYS = {
  extract: ['from', 'object', 'table', 'name'],
  writeback: ['object', 'mode', 'key', 'keyColumn', 'name'],
} as const;

/**
 * What stands in for a required key of a task that has a mistake and that the readers never
 * read, so that the task keeps its place (`writeback[2]`) and its name. Optional keys are left
 * out instead (their defaults).
 */
const STAND_INS: Record<'salesforce' | 'athena' | 'writeback', Record<string, unknown>> = {
  salesforce: { fields: ['Id'] },
  athena: { query: 'SELECT 1' },
  writeback: { to: 'salesforce', from: 'unread', fields: { Unread: 'unread' } },
};

/** The stand-in of a task's key, by the kind of task the raw config's entry is. */
function standIn(value: unknown, list: 'extract' | 'writeback', index: number, key: string): unknown {
  if (list === 'writeback') return STAND_INS.writeback[key];
  const tasks = (value as Record<string, unknown>).extract;
  const from = Array.isArray(tasks) ? (tasks[index] as { from?: unknown } | undefined)?.from : undefined;
  return from === 'salesforce' || from === 'athena' ? STAND_INS[from][key] : undefined;
}

type Segment = string | number;

/** The segments of an issue's path (`writeback[0].fields["Lead Score"]`); undefined if unreadable. */
function segmentsOf(path: string): Segment[] | undefined {
  const token = /(?:^|\.)([A-Za-z_$][\w$]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/y;
  const segments: Segment[] = [];
  while (token.lastIndex < path.length) {
    const at = token.lastIndex;
    const match = token.exec(path);
    if (!match || match.index !== at) return undefined;
    if (match[1] !== undefined) segments.push(match[1]);
    else if (match[2] !== undefined) segments.push(Number(match[2]));
    else segments.push(JSON.parse(match[3] as string) as string);
  }
  return segments;
}

/** Whether a mistake at `path` is in a part the command reads. */
function isRead(path: string, sections: readonly ReadSection[]): boolean {
  // The config as a whole: not an object (read), or without any task (not read).
  if (path === '') return false;
  const segments = segmentsOf(path);
  if (segments === undefined) return true;
  const [top, index, key] = segments;
  const read = ['name', 'postgres', 'extract', 'writeback', ...sections];
  if (typeof top !== 'string') return true;
  if (top !== 'extract' && top !== 'writeback') {
    // A key misspelt for one it reads (`postgress`, `writebak`) hides that part: read.
    return read.includes(top) || suggestion(top, read) !== undefined;
  }
  // The list itself, or an entry that is not a task object.
  if (typeof index !== 'number' || typeof key !== 'string') return true;
  const keys: readonly string[] = TASK_KEYS[top];
  return keys.includes(key) || suggestion(key, keys) !== undefined;
}

/** `value` with the key at `segments` removed, or set to `replacement`; copied along the path. */
function withKey(value: unknown, segments: readonly Segment[], replacement?: { value: unknown }): unknown {
  const [head, ...rest] = segments;
  if (head === undefined || typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    if (typeof head !== 'number' || head >= value.length) return value;
    return value.map((item: unknown, i) => (i === head ? withKey(item, rest, replacement) : item));
  }
  const record = value as Record<string, unknown>;
  if (typeof head !== 'string' || !Object.prototype.hasOwnProperty.call(record, head)) {
    return rest.length === 0 && replacement ? { ...record, [String(head)]: replacement.value } : value;
  }
  if (rest.length > 0) return { ...record, [head]: withKey(record[head], rest, replacement) };
  if (replacement) return { ...record, [head]: replacement.value };
  const { [head]: _left, ...others } = record;
  return others;
}

/** The raw config with the part an issue (one the command does not read) points at left out. */
function leftOut(value: unknown, path: string): unknown {
  const segments = segmentsOf(path);
  if (segments === undefined || segments.length === 0) return value;
  const [top, index, key] = segments;
  if ((top === 'extract' || top === 'writeback') && typeof index === 'number' && typeof key === 'string') {
    const replacement = standIn(value, top, index, key);
    return withKey(value, [top, index, key], replacement === undefined ? undefined : { value: replacement });
  }
  return withKey(value, [segments[0] as Segment]);
}

/** The schema's issues of a value (the shape alone: the rules across fields are not looked at). */
function shapeIssues(value: unknown): { config?: PipelineConfig; issues: ConfigIssue[] } {
  const result = pipelineConfigSchema.safeParse(value, { error: () => DEFAULT_MESSAGE });
  return result.success
    ? { config: result.data, issues: [] }
    : { issues: result.error.issues.flatMap((issue) => toConfigIssues(issue, value)) };
}

/** A config as {@link parseConfigReading} answers it. */
export interface ConfigRead {
  readonly config: PipelineConfig;
  /** The mistakes of the parts the command does not read, left out of `config`; in document order. */
  readonly tolerated: readonly ConfigIssue[];
}

/**
 * Validates a config for a command that reads only `name`, `postgres`, which task each entry of
 * `extract` and `writeback` is (their names and what defaults them; a write-back's mode, key and
 * key column) and `sections`: see the module comment.
 *
 * @param also issues found outside the schema, named with the others (repeated JSON keys).
 * @throws ConfigError naming every problem of the config, as {@link parseConfig}, when one of
 *   them is in a part the command reads.
 */
export function parseConfigReading(
  value: unknown,
  source: string,
  sections: readonly ReadSection[],
  also: readonly ConfigIssue[] = [],
): ConfigRead {
  let issues: ConfigIssue[];
  try {
    const config = parseConfig(value, source);
    if (also.length === 0) return { config, tolerated: [] };
    issues = [];
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    issues = [...error.issues];
  }
  const all = inDocumentOrder([...also, ...issues]);
  const refused = new ConfigError(all, source);
  if (typeof value !== 'object' || value === null || all.some((i) => isRead(i.path, sections))) {
    throw refused;
  }
  // Each part left out can show another (a required key dropped is missing): a few rounds.
  let repaired: unknown = value;
  let pending: readonly ConfigIssue[] = all;
  for (let round = 0; round < 4; round++) {
    for (const issue of pending) repaired = leftOut(repaired, issue.path);
    const { config, issues: left } = shapeIssues(repaired);
    if (config) return { config, tolerated: all };
    if (left.some((i) => isRead(i.path, sections))) break;
    pending = left;
  }
  throw refused;
}
