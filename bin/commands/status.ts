/**
 * `roundtrip status`: the recent runs of a pipeline, from `roundtrip.runs` in its PostgreSQL
 * (the database the config's secret names, or `--database-url`): when each ran, how it ended,
 * what it moved, and why it failed. Then the tasks the pipeline has state for in the database that
 * its config no longer names (lambdas/core/task-state.ts, tasksNotInConfig): renamed or removed
 * tasks whose sync state or watermark would otherwise stay behind unseen, with what `roundtrip
 * forget` deletes and whether records of theirs still wait for an outcome.
 */
import type { Pool } from 'pg';
import { postgresCredentialsSource, type PipelineConfig, type ReadSection } from '../../lambdas/config';
import { createPool, redactUrl, withClient } from '../../lambdas/connectors/postgres';
import type { PostgresSource } from '../../lambdas/connectors/postgres';
import {
  databaseOptionsGiven,
  EXIT,
  note,
  type OptionsGiven,
  parseOptions,
  storedFailureText,
  UsageError,
  wholeNumberOption,
  type Command,
} from '../cli-common';
import {
  forgetCommand,
  insertedRecords,
  renameTaskCommand,
  tasksNotInConfig,
  type TaskNotInConfig,
} from '../../lambdas/core/task-state';
import { alignColumns } from '../local/columns';
import { cliSessionName, endRunByHand, keysToRecordByHand, stillRunningNote } from '../local/process';
import { heldBackAgainNote, tasksHeldBackAgain, readStoredRuns, taskSummaries } from '../local/summary';
import {
  CONNECTION_OPTIONS,
  checkPostgresSource,
  closeGoneRuns,
  configReadFrom,
  inputSecret,
  secretsFrom,
} from './run';
import {
  count,
  lastRunText,
  outcomesUnknownLines,
  resolveOutcomesFirst,
  scopeText,
} from '../local/task-state-text';

/** Runs listed when `--limit` is not given. */
export const DEFAULT_STATUS_LIMIT = 10;

/** The TLS mode a `--database-url` asks for with `?sslmode=`: `require`/`verify-full`, else none. */
export function urlSslMode(url: string): 'require' | 'verify-full' | 'disable' {
  let mode: string | null = null;
  try {
    mode = new URL(url).searchParams.get('sslmode');
  } catch {
    mode = null;
  }
  return mode === 'require' || mode === 'verify-full' ? mode : 'disable';
}

function protocolOf(url: string): string {
  try {
    return new URL(url).protocol;
  } catch {
    return '';
  }
}

/** Config paths a {@link toleratedNote} names before it says "…". */
const TOLERATED_SHOWN = 3;

/**
 * The line on stderr of a command that answers despite mistakes in parts of the config it does not
 * read: their paths (the first few), and who names them in full.
 */
function toleratedNote(command: string, issues: readonly { path: string }[]): string {
  const paths = [...new Set(issues.map((i) => i.path || 'the config'))];
  const shown = paths.slice(0, TOLERATED_SHOWN).join(', ') + (paths.length > TOLERATED_SHOWN ? ', …' : '');
  return (
    `roundtrip ${command}: mind: the config has ${issues.length === 1 ? 'a problem' : `${issues.length} problems`} ` +
    `where this command does not read it (${shown}), which run and plan refuse: roundtrip validate names ${issues.length === 1 ? 'it' : 'them'}`
  );
}

/**
 * Options of the commands that read a pipeline's runs from its database (`status`, `errors`,
 * `resolve`, `forget`, `rename-task`): the connection options but `--aws-endpoint`, since none of
 * them calls Athena or S3 (accepted, it would be ignored: refused as an unknown option instead).
 */
const { 'aws-endpoint': _awsEndpoint, ...DATABASE_CONNECTION_OPTIONS } = CONNECTION_OPTIONS;
export const DATABASE_OPTIONS = {
  ...DATABASE_CONNECTION_OPTIONS,
  'database-url': { type: 'string' },
} as const;

/**
 * The config and a pool to the pipeline's database (one connection unless `connections` says
 * more): `--database-url`, else the config's PostgreSQL secret. A `--database-url` that is not a
 * PostgreSQL URL is bad input.
 *
 * The config is read for what these commands use of it, `name`, `postgres`, its tasks' names and
 * `reads` (lambdas/config/reading.ts): a mistake elsewhere (a write-back's field mapping, an
 * extract's option) does not keep them from answering in an incident, while run, plan and validate
 * refuse it. Such a config gets one line on stderr saying so, and that validate names its problems.
 */
export async function runsDatabase(
  values: Record<string, unknown>,
  options: { command: string; connections?: number; reads?: readonly ReadSection[] },
): Promise<{ config: PipelineConfig; pool: Pool }> {
  const databaseUrl = values['database-url'];
  if (typeof databaseUrl === 'string' && !/^postgres(ql)?:$/.test(protocolOf(databaseUrl))) {
    throw new UsageError(
      // Shown without its password: a URL of another database (mysql://user:password@…) has one too.
      `--database-url expects a URL such as postgres://user:password@127.0.0.1:5432/db, got "${redactUrl(databaseUrl)}"`,
    );
  }
  // These commands read and record the runs' state and never run the transform: its files are not
  // looked for, so that one renamed or moved does not keep them from answering.
  const { config, tolerated } = await configReadFrom(values, options.reads ?? []);
  if (tolerated.length > 0) note(toleratedNote(options.command, tolerated));
  // A secret that is missing or not JSON, or a source of the wrong shape, is bad input (exit 2).
  const source: PostgresSource =
    typeof databaseUrl === 'string'
      ? { url: databaseUrl }
      : ((await inputSecret(secretsFrom(values), config.postgres.secret)) as PostgresSource);
  const credentialsFrom =
    typeof databaseUrl === 'string' ? '--database-url' : postgresCredentialsSource(config);
  const poolOptions = {
    ssl: {
      mode: typeof databaseUrl === 'string' ? urlSslMode(databaseUrl) : config.postgres.ssl.mode,
      ...(config.postgres.ssl.caBundle ? { caBundle: config.postgres.ssl.caBundle } : {}),
    },
    max: options.connections ?? 1,
    applicationName: cliSessionName(),
    credentialsFrom,
  };
  checkPostgresSource(source, poolOptions, credentialsFrom);
  const pool = createPool(source, poolOptions);
  // Connect once here, so that a database that cannot be reached is named as run and validate
  // name it (PostgreSQL, the address, why), not by the socket's bare "connect ECONNREFUSED".
  try {
    await withClient(pool, async () => undefined);
  } catch (err) {
    await pool.end();
    throw err;
  }
  return { config, pool };
}

/**
 * What to do with a task the config no longer names once nothing of it is outstanding: forget it,
 * or, for one that inserted its records, say what forgetting means (a task named so again, or the
 * one it was renamed to, inserts each of them again: forget needs --insert-again) and how to carry
 * its state to the name it was renamed to instead.
 */
function whenClear(t: TaskNotInConfig, given: string): string {
  if (!insertedRecords(t))
    return `${forgetCommand(t.task, { given })} deletes its state (its runs' history is kept)`;
  const records = `${t.syncedRecords.toLocaleString('en-US')} record${t.syncedRecords === 1 ? '' : 's'}`;
  return (
    `it inserted ${records}${t.syncScope ? ` into ${t.syncScope.object}` : ''}. Renamed: ${renameTaskCommand(t.task, 'NEW', given)} ` +
    `carries its state to the new name (until then the plan of an insert task of that object with no state of its own is refused). ` +
    `Removed: ${forgetCommand(t.task, { insertAgain: true, given })} deletes its state, and a task named ${t.task} again, or renamed from it, ` +
    `then inserts each of the ${records} again`
  );
}

/**
 * A task the config no longer names, as `status --json` lists it; `given` as
 * {@link databaseOptionsGiven} says, in the commands of its `todo`.
 */
function notInConfigJson(t: TaskNotInConfig, given: string): Record<string, unknown> {
  const clear = t.outcomesUnknown.records === 0 && t.outcomesUnknown.runningPlans.length === 0;
  return {
    task: t.task,
    syncedRecords: t.syncedRecords,
    syncScope: t.syncScope ?? null,
    watermark: t.watermark ?? null,
    lastRun: t.lastRun
      ? { runId: t.lastRun.runId, status: t.lastRun.status, startedAt: t.lastRun.startedAt.toISOString() }
      : null,
    outcomesUnknown: t.outcomesUnknown,
    todo: clear
      ? insertedRecords(t)
        ? whenClear(t, given)
        : forgetCommand(t.task, { given })
      : `${resolveOutcomesFirst(t.outcomesUnknown, t.task, t, given)} Then ${forgetCommand(t.task, { insertAgain: insertedRecords(t), given })}.`,
  };
}

/**
 * The lines that follow the runs: each task the config no longer names that still has state in
 * the database, with what it holds and what to do: the commands to run with the options given to
 * status ({@link databaseOptionsGiven}), to be pasted as they are.
 */
function notInConfigLines(
  pipeline: string,
  tasks: readonly TaskNotInConfig[],
  given: { options: string; note: string },
): string[] {
  if (tasks.length === 0) return [];
  const lines = [
    '',
    `${tasks.length === 1 ? '1 task' : `${tasks.length} tasks`} of pipeline ${pipeline} ${tasks.length === 1 ? 'has' : 'have'} state in the database that the config no longer names (renamed or removed${given.note ? '; put the password of your --database-url back where the commands below show ***' : ''}):`,
  ];
  for (const t of tasks) {
    const held = [
      t.syncedRecords > 0 || t.syncScope
        ? `${count(t.syncedRecords, 'synced record')} (roundtrip.sync_state${t.syncScope ? `; ${scopeText(t.syncScope)}` : ''})`
        : undefined,
      t.watermark ? `a watermark (${t.watermark.watermark ?? 'none'}; roundtrip.extract_state)` : undefined,
    ].filter(Boolean);
    lines.push(`  ${t.task}: ${held.join(', ') || 'no sync state'}; ${lastRunText(t.lastRun)}`);
    const unknown = outcomesUnknownLines(t.outcomesUnknown);
    if (unknown.length === 0) {
      lines.push(`    nothing outstanding: ${whenClear(t, given.options)}`);
    } else {
      lines.push(...unknown.map((l) => `    ${l}`));
      lines.push(
        `    not to be forgotten yet: ${resolveOutcomesFirst(t.outcomesUnknown, t.task, t, given.options)} Then ${forgetCommand(t.task, { insertAgain: insertedRecords(t), given: given.options })}.`,
      );
    }
  }
  return lines;
}

/** `roundtrip status --end-run RUN_ID [--force]`: ends one run by hand (bin/local/process.ts). */
async function endRunCommand(
  pool: Pool,
  config: PipelineConfig,
  runId: string,
  force: boolean,
  asJson: boolean,
  given: OptionsGiven,
): Promise<number> {
  const pipeline = config.name;
  const ended = await endRunByHand(pool, config, runId, { force });
  // With --json, one object on stdout whatever the outcome (the lines for people go to stderr).
  const say = (text: string, json: Record<string, unknown>): void => {
    process.stdout.write(asJson ? `${JSON.stringify({ pipeline, runId, ...json })}\n` : `${text}\n`);
  };
  switch (ended.outcome) {
    case 'unknown':
      throw new UsageError(
        `--end-run: pipeline ${pipeline} has no run ${runId} (roundtrip status lists its runs)`,
        {
          showUsage: false,
        },
      );
    case 'not-running':
      say(`run ${runId} is not running (${ended.status}): nothing to end`, {
        ended: false,
        status: ended.status,
      });
      return EXIT.ok;
    case 'refused':
      note(`roundtrip status: --end-run refused: ${ended.reason}`);
      if (asJson) say('', { ended: false, status: 'running', refused: ended.reason });
      return EXIT.failed;
    case 'ended':
      say(
        `run ${runId} ended as failed: ${ended.error}. The next plan of its write-back tasks collects the Bulk jobs ` +
          `it left and looks up what it sent (roundtrip errors says which keys, if any, need roundtrip resolve)`,
        { ended: true, status: 'failed', error: ended.error },
      );
      for (const line of await keysToRecordByHand(pool, config, runId, given)) note(line);
      return EXIT.ok;
  }
}

/** `roundtrip status`: see the module comment. */
export const status: Command = async (argv) => {
  const { values } = parseOptions(argv, {
    ...DATABASE_OPTIONS,
    limit: { type: 'string' },
    json: { type: 'boolean' },
    'end-run': { type: 'string' },
    force: { type: 'boolean' },
  });
  const limit = wholeNumberOption('limit', values.limit as string | undefined, DEFAULT_STATUS_LIMIT, 1);
  const endRun = values['end-run'] as string | undefined;
  if (endRun !== undefined && values.limit !== undefined) {
    throw new UsageError(
      '--limit goes with the list of runs, not with --end-run RUN_ID, which lists nothing',
    );
  }
  if (values.force === true && endRun === undefined) {
    throw new UsageError('--force goes with --end-run RUN_ID: it ends a run of another machine all the same');
  }
  // --end-run weighs how long a run may stay quiet by athena.queryTimeoutMinutes.
  const { config, pool } = await runsDatabase(values, {
    command: 'status',
    reads: endRun !== undefined ? ['athena'] : [],
  });
  try {
    // The commands it names, with the options that named this pipeline and database.
    const given = databaseOptionsGiven(values);
    if (endRun !== undefined)
      return await endRunCommand(pool, config, endRun, values.force === true, values.json === true, given);
    await closeGoneRuns(pool, config, 'roundtrip status', { given });
    const runs = await readStoredRuns(pool, { pipeline: config.name, limit });
    const rows = runs.map((run) => {
      const tasks = taskSummaries(config, run);
      const sum = (
        kind: string,
        key: 'rowsRead' | 'written' | 'failed' | 'rejected' | 'heldBack' | 'superseded',
      ): number => tasks.filter((t) => t.kind === kind).reduce((n, t) => n + t[key], 0);
      const calls = (athena: boolean): number =>
        tasks.filter((t) => (t.athena === true) === athena).reduce((n, t) => n + t.apiCalls, 0);
      const salesforceApiCalls = calls(false);
      const athenaApiCalls = calls(true);
      return {
        runId: run.runId,
        status: run.status,
        dryRun: run.dryRun,
        startedAt: run.startedAt.toISOString(),
        durationSeconds: run.finishedAt
          ? Math.round((run.finishedAt.getTime() - run.startedAt.getTime()) / 100) / 10
          : null,
        rowsExtracted: sum('extract', 'rowsRead'),
        written: sum('writeback', 'written'),
        rejected: sum('writeback', 'rejected'),
        heldBack: sum('writeback', 'heldBack'),
        superseded: sum('writeback', 'superseded'),
        failed: sum('writeback', 'failed'),
        // Sent, their answer lost: neither written nor failed (bin/local/summary.ts).
        outcomeUnknown: tasks.reduce((n, t) => n + (t.outcomeUnknown ?? 0), 0),
        heldBackAgain: tasksHeldBackAgain(run.summary.writeback),
        // Tasks renamed or removed since the run: counted all the same (what the run recorded).
        notInConfig: tasks.filter((t) => t.notInConfig).map((t) => t.task),
        // Every call the run made, and apart those to Salesforce (what the org's daily allowance
        // and budget.maxApiCallsPerRun count) and to Athena and S3 (its Athena loads').
        apiCalls: salesforceApiCalls + athenaApiCalls,
        salesforceApiCalls,
        athenaApiCalls,
        // As the table shows it: the message, without the names of our own errors (docs/cli.md).
        error: run.error === null ? null : storedFailureText(run.error),
        ...(run.status === 'running'
          ? { process: run.pid ? { host: run.host ?? null, pid: run.pid } : null }
          : {}),
      };
    });
    const names = [...config.extract, ...config.writeback].map((t) => t.name);
    const notInConfig = await tasksNotInConfig(pool, config.name, names);
    if (values.json === true) {
      process.stdout.write(
        `${JSON.stringify({ pipeline: config.name, runs: rows, tasksNotInConfig: notInConfig.map((t) => notInConfigJson(t, given.options)) })}\n`,
      );
      return EXIT.ok;
    }
    if (rows.length === 0) {
      process.stdout.write(
        [`no runs of pipeline ${config.name} yet`, ...notInConfigLines(config.name, notInConfig, given)].join(
          '\n',
        ) + '\n',
      );
      return EXIT.ok;
    }
    // Superseded records come only of runs started by hand that overlap: a column when some run has them.
    const superseded = rows.some((r) => r.superseded > 0);
    // Records of unknown outcome come only of answers lost: a column when some run has them.
    const unknown = rows.some((r) => r.outcomeUnknown > 0);
    // Athena's and S3's calls come only of Athena loads: a column when some run made some.
    const athena = rows.some((r) => r.athenaApiCalls > 0);
    const header = [
      'run',
      'status',
      // The time is UTC's, whatever the machine's zone, as errors' "started … UTC" says.
      'started (UTC)',
      'seconds',
      'extracted',
      'written',
      'rejected',
      'held back',
      ...(superseded ? ['superseded'] : []),
      'failed',
      ...(unknown ? ['outcome unknown'] : []),
      'Salesforce calls',
      ...(athena ? ['Athena/S3 calls'] : []),
    ];
    const cells = rows.map((r) => [
      r.runId + (r.dryRun ? ' (dry run)' : ''),
      r.status,
      r.startedAt.replace('T', ' ').slice(0, 19),
      r.durationSeconds === null ? '—' : String(r.durationSeconds),
      r.rowsExtracted.toLocaleString('en-US'),
      r.written.toLocaleString('en-US'),
      r.rejected.toLocaleString('en-US'),
      r.heldBack.toLocaleString('en-US'),
      ...(superseded ? [r.superseded.toLocaleString('en-US')] : []),
      r.failed.toLocaleString('en-US'),
      ...(unknown ? [r.outcomeUnknown.toLocaleString('en-US')] : []),
      r.salesforceApiCalls.toLocaleString('en-US'),
      ...(athena ? [r.athenaApiCalls.toLocaleString('en-US')] : []),
    ]);
    process.stdout.write(alignColumns([header, ...cells], (i) => i >= 3).lines.join('\n') + '\n');
    for (const r of rows) {
      if (r.process) process.stdout.write(`\n${r.runId}: ${stillRunningNote(r.runId, r.process, given)}\n`);
      if (r.error) process.stdout.write(`\n${r.runId}: ${storedFailureText(r.error)}\n`);
      for (const held of r.heldBackAgain)
        process.stdout.write(`\n${r.runId}: ${heldBackAgainNote(r.runId, held, given)}\n`);
    }
    // Tasks renamed or removed since: said once for every run listed that has figures of them
    // (after a rename, every earlier run has), not once a run.
    const withOld = rows.filter((r) => r.notInConfig.length > 0);
    if (withOld.length > 0) {
      const names = [...new Set(withOld.flatMap((r) => r.notInConfig))];
      const tasks = `${names.length === 1 ? 'task' : 'tasks'} ${names.join(', ')}`;
      const first = withOld[0] as (typeof withOld)[number];
      const last = withOld[withOld.length - 1] as (typeof withOld)[number];
      process.stdout.write(
        withOld.length === 1
          ? `\n${first.runId}: its figures include ${tasks}, which the config no longer names (as the run recorded them)\n`
          : `\n${withOld.length} runs above (${first.runId} to ${last.runId}): their figures include ${tasks}, which the config no longer names (as the runs recorded them; status --json lists each run's in notInConfig)\n`,
      );
    }
    const orphans = notInConfigLines(config.name, notInConfig, given);
    if (orphans.length > 0) process.stdout.write(`${orphans.join('\n')}\n`);
    return EXIT.ok;
  } finally {
    await pool.end();
  }
};
