/**
 * `roundtrip run` and `roundtrip plan`: one run of a pipeline config on this machine, through the
 * same state machine definition that deploys (statemachine/local.ts), against the endpoints the
 * config and its secrets name — a real org and AWS, or the emulators.
 *
 * Secrets resolve locally under the config's names: `ROUNDTRIP_SECRET_<NAME>` variables, else
 * the JSON file given with `--secrets` (or `ROUNDTRIP_LOCAL_SECRETS_FILE`). `--aws-endpoint`
 * points Athena and S3 at an endpoint such as `roundtrip emulate athena`; without it the AWS SDK's
 * usual environment (region, credentials) applies.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Pool } from 'pg';
import {
  configWarnings,
  loadConfig,
  loadConfigReading,
  postgresCredentialsSource,
  type ConfigRead,
  type PipelineConfig,
  type ReadSection,
} from '../../lambdas/config';
import type { RunInput } from '../../lambdas/core/contracts';
import { newRunId, selectTasks } from '../../lambdas/core/prepare';
import {
  DRY_RUN_SAMPLE_MAX_BYTES,
  DRY_RUN_SAMPLE_ROWS,
  dryRunSample,
  type StoredPlanSampleRow,
} from '../../lambdas/core/writeback/plan';
import {
  resolveConnection,
  type CreatePoolOptions,
  type PostgresSource,
} from '../../lambdas/connectors/postgres';
import { ConfigError, TerminalError } from '../../lambdas/shared/errors';
import { createConsoleLogger, createNoticeLogger, type Logger } from '../../lambdas/shared/logging';
import { createLocalSecretsProvider, type SecretsProvider } from '../../lambdas/shared/secrets';
import { loadPipelineDefinition } from '../../statemachine/local';
import {
  databaseOptionsGiven,
  EXIT,
  finishRun,
  maxChangesWarnings,
  noteErrorsCommand,
  note,
  parseOptions,
  progressPrinter,
  failureText,
  stopOnSignal,
  untilStopped,
  storedFailureText,
  UsageError,
  type Command,
  type OptionsGiven,
} from '../cli-common';
import { buildLocalDeps, type LocalAwsEndpoint } from '../local/deps';
import { runPipeline, type PipelineRunResult } from '../local/pipeline';
import {
  closeGoneLocalRuns,
  keysToRecordByHand,
  otherRunsStillRunning,
  processGoneNote,
  stillRunningNote,
} from '../local/process';
import { markRunInterrupted, shownTaskError, type RunSummary } from '../local/summary';

/**
 * How long a stop signal's cleanup lets the steps still going give their PostgreSQL connections
 * back before closing them (a step that was between statements gives its back at once).
 */
const STEP_CONNECTIONS_GRACE_MS = 2_000;
/** The config file used when `--config` is not given. */
export const DEFAULT_CONFIG_FILE = 'roundtrip.config.ts';

/** The environment variable naming a local secrets file (also read by the Lambda handlers' local mode). */
export const LOCAL_SECRETS_FILE_ENV = 'ROUNDTRIP_LOCAL_SECRETS_FILE';

/** Options every command that talks to the pipeline's endpoints accepts. */
export const CONNECTION_OPTIONS = {
  config: { type: 'string', short: 'c' },
  secrets: { type: 'string' },
  'aws-endpoint': { type: 'string' },
  verbose: { type: 'boolean', short: 'v' },
} as const;

/**
 * Loads `--config` (or roundtrip.config.ts), turning a bad file into exit code 2. Without
 * `--config` and without that file here, the error says so and how to name one, rather than
 * calling a file the user never named invalid. With `deployment`, for the commands that build the
 * pipeline's stack (run, plan) or check it before a deploy (validate), the problems only a
 * deployment reveals (lib/pipeline-stack.ts `deploymentIssues`, what `cdk synth` refuses) are
 * bad input too, named by the file, before any secret or connection is needed.
 */
export async function configFrom(
  values: Record<string, unknown>,
  options: { deployment?: boolean } = {},
): Promise<PipelineConfig> {
  const file = configFileOf(values);
  let config: PipelineConfig;
  try {
    config = await loadConfig(file);
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err), { showUsage: false });
  }
  if (options.deployment) {
    const { deploymentIssues } = await import('../../lib/pipeline-stack');
    const issues = deploymentIssues(config);
    if (issues.length > 0) {
      throw new UsageError(new ConfigError(issues, path.resolve(file)).message, { showUsage: false });
    }
  }
  return config;
}

/**
 * The config file of `--config`, or roundtrip.config.ts here; without `--config` and without that
 * file, a UsageError that says so and how to name one, rather than calling a file the user never
 * named invalid.
 */
function configFileOf(values: Record<string, unknown>): string {
  const file = typeof values.config === 'string' ? values.config : DEFAULT_CONFIG_FILE;
  if (typeof values.config !== 'string' && !existsSync(path.resolve(file))) {
    throw new UsageError(
      `no --config given, and there is no ${DEFAULT_CONFIG_FILE} in ${process.cwd()}: ` +
        `pass --config FILE (the example pipeline is examples/lead-scoring/roundtrip.config.ts)`,
    );
  }
  return path.resolve(file);
}

/**
 * Loads `--config` (or roundtrip.config.ts) for a command that reads only `name`, `postgres`, its
 * tasks' names and `sections` of it (status, errors, forget, rename-task, resolve:
 * lambdas/config/reading.ts): a mistake elsewhere is answered in `tolerated`, not refused; one in
 * what it reads is bad input (exit 2), as for {@link configFrom}.
 */
export async function configReadFrom(
  values: Record<string, unknown>,
  sections: readonly ReadSection[],
): Promise<ConfigRead> {
  const file = configFileOf(values);
  try {
    return await loadConfigReading(file, sections);
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err), { showUsage: false });
  }
}

/** The Athena/S3 endpoint of `--aws-endpoint`, with credentials and region from the environment. */
export function awsEndpointFrom(values: Record<string, unknown>): LocalAwsEndpoint | undefined {
  const endpoint = values['aws-endpoint'];
  if (typeof endpoint !== 'string') return undefined;
  try {
    new URL(endpoint);
  } catch {
    throw new UsageError(`--aws-endpoint expects a URL such as http://127.0.0.1:4566, got "${endpoint}"`);
  }
  return {
    endpoint,
    region: process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
    // An emulator accepts any key; a real endpoint gets the caller's.
    credentials: {
      accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? 'local',
      secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? 'local',
    },
  };
}

/**
 * The logger of a command: JSON lines on stderr with `--verbose`; otherwise only the sentences of
 * warnings meant for the person watching ({@link createNoticeLogger}), as `  ! …` lines among the
 * progress.
 */
export function loggerFrom(values: Record<string, unknown>, write: (line: string) => void = note): Logger {
  return values.verbose === true
    ? createConsoleLogger('info')
    : createNoticeLogger((sentence) => write(`  ! ${sentence}`));
}

/**
 * The secrets provider of `--secrets` / the environment. A secrets file that does not exist is
 * bad input (exit 2), named with where it came from, before anything runs.
 */
export function secretsFrom(values: Record<string, unknown>) {
  const given = typeof values.secrets === 'string';
  const file = given ? (values.secrets as string) : process.env[LOCAL_SECRETS_FILE_ENV];
  if (file && !existsSync(path.resolve(file))) {
    throw new UsageError(
      `${given ? '--secrets' : `the environment variable ${LOCAL_SECRETS_FILE_ENV}`} names a secrets file that does not exist: ${path.resolve(file)}`,
    );
  }
  return createLocalSecretsProvider({ ...(file ? { file: path.resolve(file) } : {}), env: process.env });
}

/**
 * A secret the command reads itself, before it does anything, from `--secrets` or the environment:
 * one that is missing, or in a secrets file or variable that is not JSON, is bad input (exit 2),
 * named as the provider names it. The local provider reads nothing over a network: its every
 * error is the input's.
 */
export async function inputSecret(secrets: SecretsProvider, name: string): Promise<unknown> {
  try {
    return await secrets.getSecret(name);
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err), { showUsage: false });
  }
}

/**
 * The PostgreSQL settings of a secret or `--database-url`, checked without connecting (the pool's
 * own check, resolveConnection): a source of neither shape, or a URL that is not one, is bad input
 * (exit 2), named with where it comes from (`from`).
 */
export function checkPostgresSource(source: PostgresSource, options: CreatePoolOptions, from: string): void {
  try {
    resolveConnection(source, options);
  } catch (err) {
    if (!(err instanceof TerminalError)) throw err;
    throw new UsageError(`${err.message} (${from})`, { showUsage: false });
  }
}

/**
 * The secrets a run reads, read before anything runs: the database's (and its shape), and
 * Salesforce's when the tasks run include a Salesforce extract or a write-back. Missing or not
 * JSON, they are bad input (exit 2), as a task the pipeline does not have is, not a failed run.
 */
async function checkRunSecrets(
  config: PipelineConfig,
  secrets: SecretsProvider,
  tasks: readonly string[] | undefined,
): Promise<void> {
  const postgres = (await inputSecret(secrets, config.postgres.secret)) as PostgresSource;
  checkPostgresSource(
    postgres,
    {
      ssl: {
        mode: config.postgres.ssl.mode,
        ...(config.postgres.ssl.caBundle ? { caBundle: config.postgres.ssl.caBundle } : {}),
      },
    },
    postgresCredentialsSource(config),
  );
  const selected = selectTasks(config, tasks);
  if (config.salesforce && selected.salesforce.length + selected.writeback.length > 0) {
    await inputSecret(secrets, config.salesforce.secret);
  }
}

/**
 * The task names of `--tasks a,b`, checked against the config before anything runs: a name the
 * pipeline does not have is bad input (exit 2), not a failed run in `roundtrip.runs`.
 */
export function tasksFrom(config: PipelineConfig, list: string): string[] {
  const names = list
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  if (names.length === 0) {
    throw new UsageError(`--tasks expects task names separated by commas, got "${list}"`);
  }
  try {
    selectTasks(config, names, '--tasks');
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err), {
      showUsage: false,
    });
  }
  return names;
}

/**
 * Why a local run failed, on stderr: the execution's error, and the stored one when it says more
 * (alone when it holds the execution's, so that the error is said once).
 * A run that was never recorded (its PostgreSQL could not be reached or used) is named without its
 * id, which no command would know, and with where the database's settings come from
 * (`postgresFrom`: the secret, DATABASE_URL).
 */
export function noteFailure(result: PipelineRunResult, postgresFrom: string): void {
  if (result.execution.status !== 'failed') return;
  const line = failureText(result.execution.error, result.execution.cause);
  if (!result.recorded) {
    note(`the run never started: ${line}`);
    note(
      `  nothing was recorded: its PostgreSQL could not be used, so roundtrip.runs has no row of it and ` +
        `roundtrip status and errors cannot show it. Check the database that ${postgresFrom} names ` +
        `(running, reachable from here, its user and password), then run again`,
    );
    return;
  }
  const stored = result.stored?.error ? storedFailureText(result.stored.error) : undefined;
  // The stored error says more when it holds the execution's (a write-back task's error that
  // stopped the run, with the task and the tasks not run): then it alone, not the error twice.
  if (stored && stored !== line && stored.includes(line)) {
    note(`run ${result.summary.runId} failed: ${stored}`);
    return;
  }
  note(`run ${result.summary.runId} failed: ${line}`);
  if (stored && !line.includes(stored)) note(`  ${stored}`);
}

function runCommand(dryRun: boolean): Command {
  const name = dryRun ? 'plan' : 'run';
  return async (argv) => {
    const { values } = parseOptions(argv, {
      ...CONNECTION_OPTIONS,
      full: { type: 'boolean' },
      tasks: { type: 'string' },
      json: { type: 'boolean' },
    });
    const config = await configFrom(values, { deployment: true });
    const tasks = typeof values.tasks === 'string' ? tasksFrom(config, values.tasks) : undefined;
    const input: RunInput = {
      ...(dryRun ? { dryRun: true } : {}),
      ...(values.full === true ? { full: true } : {}),
      ...(tasks ? { tasks } : {}),
    };
    const aws = awsEndpointFrom(values);
    const secrets = secretsFrom(values);
    // The commands it names (roundtrip errors, resolve, status --end-run), with the --config and
    // --secrets given, to be pasted as they are.
    const given = databaseOptionsGiven(values);
    await checkRunSecrets(config, secrets, tasks);
    const local = await buildLocalDeps({
      config,
      secrets,
      logger: loggerFrom(values),
      ...(aws ? { aws } : {}),
      // The commands in the texts the run stores (its error, the keys it holds back), which status
      // and errors show later, perhaps elsewhere: the files by their absolute paths.
      commandOptions: databaseOptionsGiven(values, { absolutePaths: true }).options,
    });
    note(`roundtrip ${name}: pipeline ${config.name}${dryRun ? ' (dry run: nothing is sent)' : ''}`);
    // What the config allows but is probably wrong, of the tasks this run runs (validate says it too).
    for (const w of configWarnings(config))
      if (!tasks || w.tasks.some((t) => tasks.includes(t))) note(`mind: ${w.message}`);
    // The state machine is built first (a second or two of CDK): the run id's time is then the
    // execution's start, which Prepare records as the run's.
    const definition = await loadPipelineDefinition(config).catch(async (err: unknown) => {
      await local.close();
      throw err;
    });
    // Ctrl-C (or a SIGTERM) records the run as failed instead of leaving it `running`, closes the
    // connections and ends the process by the signal (stopOnSignal). The steps still going then
    // fail on the closed pool: expected, not the run's failure, so nothing more is printed of them
    // and the command waits for that end instead of reporting the run.
    const runId = newRunId(local.deps.clock.now());
    let interrupted = false;
    const release = stopOnSignal(async (signal) => {
      interrupted = true;
      let byHand: string[] = [];
      const marked = await markRunInterrupted(local.pool, runId, signal, async (client) => {
        byHand = await keysToRecordByHand(client, config, runId, given);
      }).catch(() => false);
      if (marked) {
        note(`  run ${runId} recorded as failed (interrupted); the next run goes on from what it sent`);
        for (const line of byHand) note(`  ${line}`);
      }
      // A step waiting on a call that does not answer (a hung Salesforce write) keeps its
      // PostgreSQL connection: closed under it after a moment, rather than the command waiting
      // out its grace. Its call's outcome is then unknown, as the run's ledger already says.
      const closed = await local.close({ forceAfterMs: STEP_CONNECTIONS_GRACE_MS });
      if (closed > 0)
        note(
          `  closed ${closed} PostgreSQL connection${closed === 1 ? '' : 's'} a step still held (waiting on a call that had not answered)`,
        );
    });
    const printProgress = progressPrinter(note, config);
    try {
      // A run of this machine killed before its report is closed first (Prepare would too, unsaid).
      await closeGoneRuns(local.pool, config, `roundtrip ${name} (run ${runId})`, { tolerant: true, given });
      const result = await runPipeline({
        local,
        definition,
        input,
        runId,
        onEvent: (event) => {
          if (!interrupted) printProgress(event);
        },
      });
      if (interrupted) return await untilStopped();
      if (result.execution.status === 'failed') noteFailure(result, postgresCredentialsSource(config));
      const plan = dryRun && !values.json ? await planSample(local.pool, result.summary) : undefined;
      if (dryRun) for (const line of maxChangesWarnings(config, result.summary)) note(line);
      noteErrorsCommand(result.summary, given);
      if (result.summary.tasks.some((t) => t.heldBack > 0)) {
        const running = await otherRunsStillRunning(local.pool, config.name, runId).catch(() => []);
        for (const other of running)
          note(`  run ${other.runId} is ${stillRunningNote(other.runId, other.process, given)}`);
      }
      return finishRun(result.summary, values.json === true, plan, given);
    } catch (err) {
      if (interrupted) return await untilStopped();
      throw err;
    } finally {
      if (!interrupted) {
        release();
        await local.close();
      }
    }
  };
}

/**
 * The dry run's sample: what Salesforce has and what would be sent, the first
 * {@link DRY_RUN_SAMPLE_ROWS} records of each write-back task, as the Plan step's own output holds
 * them ({@link dryRunSample}: a text over DRY_RUN_SAMPLE_VALUE_CHARS characters cut, saying
 * its length, and a task's rows kept while their JSON fits in {@link DRY_RUN_SAMPLE_MAX_BYTES}). Nothing
 * for a run that was never recorded (its PostgreSQL could not be used: the summary says so, and
 * reading the plan would only fail again), and no "nothing would be sent" for a run that failed
 * before any write-back planned, nor for a write-back whose plan failed (its error is said
 * instead), which would read as a plan that found nothing to send.
 */
async function planSample(pool: Pool, summary: RunSummary): Promise<string | undefined> {
  if (summary.recorded === false) return undefined;
  // The first records of each task's plan (the first page holds them), not the first task's alone.
  const { rows } = await pool.query<StoredPlanSampleRow & { task: string }>(
    `SELECT task, key, salesforce_id, current, payload FROM (
       SELECT task, key, salesforce_id, current, payload, seq,
              row_number() OVER (PARTITION BY task ORDER BY seq) AS n
         FROM roundtrip.writeback_plan_rows WHERE run_id = $1 AND page = 0) AS first
      WHERE n <= $2 ORDER BY task, seq`,
    [summary.runId, DRY_RUN_SAMPLE_ROWS],
  );
  const writebacks = summary.tasks.filter((t) => t.kind === 'writeback');
  // A write-back whose plan failed has no plan: not one that found nothing to send.
  const failed = writebacks.flatMap((t) =>
    t.error === undefined
      ? []
      : [`dry run: no plan: the plan of write-back ${t.task} failed: ${shownTaskError(t.error)}`],
  );
  if (rows.length === 0) {
    if (summary.status === 'failed' && writebacks.length === 0)
      return 'dry run: no plan: the run failed before any write-back planned (why: above)';
    const planned = writebacks.filter((t) => t.error === undefined).map((t) => t.task);
    if (failed.length === 0) return 'dry run: nothing would be sent';
    return [
      ...failed,
      ...(planned.length > 0 ? [`dry run: nothing would be sent by write-back ${planned.join(', ')}`] : []),
    ].join('\n');
  }
  const byTask = new Map<string, StoredPlanSampleRow[]>();
  for (const row of rows) byTask.set(row.task, [...(byTask.get(row.task) ?? []), row]);
  const lines = [...failed, 'dry run: a sample of what would be sent (current → new)'];
  for (const [task, planned] of byTask) {
    const sample = dryRunSample(planned);
    for (const r of sample) {
      lines.push(`  ${task} ${r.key}: ${JSON.stringify(r.current ?? null)} → ${JSON.stringify(r.next)}`);
    }
    if (sample.length < planned.length) {
      lines.push(
        `  ${task}: ${planned.length - sample.length} more of its first ${planned.length} not shown ` +
          `(a sample takes at most ${DRY_RUN_SAMPLE_MAX_BYTES / 1024} KiB of JSON a task)`,
      );
    }
  }
  return lines.join('\n');
}

/**
 * Closes the pipeline's runs recorded on this machine whose process is gone, as `closedBy` (a
 * command), and says so on stderr, with what each left to record by hand: the commands that read or
 * resolve outcomes then see them ended. `tolerant` (before a run): a database that cannot be used is
 * left to the run to report (Prepare fails), not this. `given`: the options given to the command
 * ({@link databaseOptionsGiven}), which the commands said repeat.
 */
export async function closeGoneRuns(
  pool: Pool,
  config: PipelineConfig,
  closedBy: string,
  options: { tolerant?: boolean; given?: OptionsGiven } = {},
): Promise<void> {
  const tolerated = <T>(work: Promise<T>, otherwise: T): Promise<T> =>
    options.tolerant === true ? work.catch(() => otherwise) : work;
  for (const closed of await tolerated(closeGoneLocalRuns(pool, config.name, closedBy), [])) {
    note(processGoneNote(closed));
    for (const line of await tolerated(keysToRecordByHand(pool, config, closed.runId, options.given), []))
      note(`  ${line}`);
  }
}

/** `roundtrip run`: see the module comment. */
export const run: Command = runCommand(false);

/** `roundtrip plan`: a dry run — extract, transform and plan, nothing sent to Salesforce. */
export const plan: Command = runCommand(true);

export { EXIT };
