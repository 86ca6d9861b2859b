/**
 * Validating a config value: {@link parseConfig} (used by the CDK app, the CLI and each
 * Lambda at cold start), {@link defineConfig} for config files, and {@link taskName}.
 */
import { ConfigError, type ConfigIssue } from '../shared/errors';
import { DEFAULT_MESSAGE, toConfigIssues } from './issues';
import { crossFieldIssues } from './rules';
import { CONFIG_DEFAULTS, pipelineConfigSchema } from './schema';
import type {
  ExtractTask,
  ExtractTaskInput,
  PipelineConfig,
  PipelineConfigInput,
  WritebackTask,
  WritebackTaskInput,
} from './types';

/** The top-level keys in the order the reference documents them; issues are listed in this order. */
const SECTION_ORDER = [
  'name',
  'schedule',
  'salesforce',
  'athena',
  'postgres',
  'extract',
  'transform',
  'writeback',
  'budget',
  'notifications',
  'deployment',
];

/** Sorts issues by section, then by task index, keeping the order within one task (stable sort). */
export function inDocumentOrder(issues: readonly ConfigIssue[]): ConfigIssue[] {
  const rank = (issue: ConfigIssue): [number, number] => {
    if (issue.path === '') return [-1, -1];
    const match = /^([^.[]+)(?:\[(\d+)\])?/.exec(issue.path);
    const section = SECTION_ORDER.indexOf(match?.[1] ?? '');
    return [
      section === -1 ? SECTION_ORDER.length : section,
      match?.[2] === undefined ? -1 : Number(match[2]),
    ];
  };
  return issues
    .map((issue, position) => ({ issue, position, rank: rank(issue) }))
    .sort((a, b) => a.rank[0] - b.rank[0] || a.rank[1] - b.rank[1] || a.position - b.position)
    .map(({ issue }) => issue);
}

/**
 * Declares a pipeline config in `roundtrip.config.ts`. It returns its argument unchanged: its
 * use is the type, which gives an editor completion and documentation for every option.
 * Validation happens when the config is loaded ({@link parseConfig}).
 *
 * @example
 * export default defineConfig({ name: 'lead-scoring', postgres: { secret: 'roundtrip/postgres' }, … });
 */
export function defineConfig(config: PipelineConfigInput): PipelineConfigInput {
  return config;
}

/**
 * Validates a config value and applies the defaults.
 *
 * @param value the config as written (an object from a `.ts` file, parsed JSON, …).
 * @param source where it came from (a file path), named in the error.
 * @returns the config with every default applied. `transform` paths are returned as written.
 * @throws ConfigError listing every problem at once, each with its path in the config,
 *   e.g. `writeback[0].mode: expected "insert" | "update" | "upsert", got "merge"`.
 */
export function parseConfig(value: unknown, source?: string): PipelineConfig {
  const result = pipelineConfigSchema.safeParse(value, { error: () => DEFAULT_MESSAGE });
  const issues: ConfigIssue[] = result.success
    ? []
    : result.error.issues.flatMap((issue) => toConfigIssues(issue, value));
  issues.push(...crossFieldIssues(value));
  if (issues.length > 0 || !result.success) throw new ConfigError(inDocumentOrder(issues), source);
  return result.data;
}

/**
 * The name of a task: in logs, metrics, state tables and `{"tasks": [...]}` run input.
 * Works on validated tasks (where the name is always set) and on tasks as written, where it
 * applies the default: the object for a Salesforce extract, the table for an Athena extract,
 * `<object>-<mode>` for a write-back.
 */
export function taskName(task: ExtractTask | WritebackTask | ExtractTaskInput | WritebackTaskInput): string {
  if (task.name !== undefined) return task.name;
  if ('to' in task) return `${task.object}-${task.mode}`;
  return task.from === 'salesforce' ? task.object : task.table;
}

/**
 * How long the state machine waits for an Athena query, in minutes: `athena.queryTimeoutMinutes`,
 * or its default for a config built without parsing (the parsed config always has it).
 */
export function athenaQueryTimeoutMinutes(config: Pick<PipelineConfig, 'athena'>): number {
  return config.athena?.queryTimeoutMinutes ?? CONFIG_DEFAULTS.athenaQueryTimeoutMinutes;
}

/**
 * Where a pipeline's PostgreSQL user, password and database come from, as an error that refuses
 * them names it (`createPool`'s `credentialsFrom`).
 */
export function postgresCredentialsSource(config: Pick<PipelineConfig, 'postgres'>): string {
  return `the secret ${config.postgres.secret} (postgres.secret of the config)`;
}
