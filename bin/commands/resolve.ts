/**
 * `roundtrip resolve`: records the outcome of insert keys that the plan holds back as
 * `INSERT_OUTCOME_UNKNOWN` run after run because nothing can look them up — sent by an insert task
 * without an external-ID key, by a call whose outcome was never recorded or in a Bulk job
 * Salesforce no longer answers for — once someone has looked in Salesforce: `--inserted ID` (the
 * record exists: recorded, never inserted again) or `--not-inserted` (it does not: the next plan
 * inserts the key), or many keys from a CSV file. The task may be one the config no longer names
 * (`roundtrip forget` refuses it until its keys are resolved), when the database knows it as an
 * insert task of the pipeline. A keyed task's key, which a plan looks up by its external ID, is
 * recorded only with `--without-look-up`: when no plan can look it up (Salesforce refuses the
 * look-up, the task's object or key changed in the config, the task is no longer in the config and
 * cannot be named as it was), and someone looked in Salesforce instead. A key in a Bulk job its
 * run never collected gets the job's result: the job is asked about in Salesforce (the config's
 * salesforce secret, signed in only then) and collected once finished; `--collect-jobs` collects
 * every such job of the task, without keys. The work is lambdas/core/writeback/resolve.ts.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  collectInsertJobs,
  type InsertJobResolved,
  OutcomeRefusedError,
  recordInsertOutcomes,
  WITHOUT_LOOK_UP_OPTION,
  type InsertOutcomeByHand,
  type InsertOutcomeRecorded,
} from '../../lambdas/core/writeback/resolve';
import { systemClock } from '../../lambdas/shared/clock';
import {
  databaseOptionsGiven,
  EXIT,
  parseOptions,
  passwordBack,
  UsageError,
  type Command,
  type OptionsGiven,
} from '../cli-common';
import { silentLogger } from '../../lambdas/shared/logging';
import { shellOption } from '../../lambdas/shared/shell';
import { localSalesforce } from '../local/deps';
import { secretsFrom } from './run';
import type { Pool } from 'pg';
import { stillRunningNote } from '../local/process';
import { closeGoneRuns } from './run';
import { DATABASE_OPTIONS, runsDatabase } from './status';

/** The header `--file` must start with. */
export const RESOLVE_CSV_HEADER = ['key', 'salesforce_id'] as const;

/** The fields of CSV text (RFC 4180: quoted fields, `""` for a quote, CRLF or LF), row by row. */
function csvRows(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let i = 0;
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  while (i < body.length) {
    const c = body[i] as string;
    if (quoted) {
      if (c === '"' && body[i + 1] === '"') {
        field += '"';
        i += 2;
        continue;
      }
      if (c === '"') quoted = false;
      else field += c;
      i += 1;
      continue;
    }
    if (c === '"' && field === '') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      if (c === '\r' && body[i + 1] === '\n') i += 1;
    } else field += c;
    i += 1;
  }
  if (quoted) throw new UsageError('--file: a quoted field is not closed before the end of the file');
  if (field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  // Blank lines (a trailing newline's) carry nothing.
  return rows.filter((r) => !(r.length === 1 && r[0] === ''));
}

/** The outcomes of a `--file`: `key,salesforce_id` per line, an empty Id meaning not inserted. */
async function outcomesFromFile(file: string): Promise<InsertOutcomeByHand[]> {
  let text: string;
  try {
    text = await readFile(path.resolve(file), 'utf8');
  } catch (err) {
    throw new UsageError(`--file ${file}: cannot be read (${(err as Error).message})`, { showUsage: false });
  }
  const [header, ...rows] = csvRows(text);
  const name = path.basename(file);
  if (!header || header.map((h) => h.trim().toLowerCase()).join(',') !== RESOLVE_CSV_HEADER.join(',')) {
    throw new UsageError(
      `--file ${file}: the first line must be the header ${RESOLVE_CSV_HEADER.join(',')} (then one key a line, its record's Id or nothing for not inserted), got "${(header ?? []).join(',')}"`,
      { showUsage: false },
    );
  }
  if (rows.length === 0)
    throw new UsageError(`--file ${file}: no key after the header`, { showUsage: false });
  return rows.map((r, i) => {
    const source = `line ${i + 2} of ${name}`;
    if (r.length !== 2) {
      throw new UsageError(
        `--file ${file}, line ${i + 2}: expected 2 fields (key,salesforce_id), got ${r.length}; quote a key that holds a comma ("a,b")`,
        { showUsage: false },
      );
    }
    const id = (r[1] as string).trim();
    return { key: r[0] as string, salesforceId: id === '' ? null : id, source };
  });
}

/** The outcomes the options give, or the UsageError that says which option is wrong. */
async function outcomesFrom(values: Record<string, unknown>): Promise<InsertOutcomeByHand[]> {
  const key = typeof values.key === 'string' ? values.key : undefined;
  const inserted = typeof values.inserted === 'string' ? values.inserted : undefined;
  const notInserted = values['not-inserted'] === true;
  const file = typeof values.file === 'string' ? values.file : undefined;
  if (file !== undefined) {
    if (key !== undefined || inserted !== undefined || notInserted) {
      throw new UsageError(
        '--file gives the keys and their outcomes: not with --key, --inserted or --not-inserted',
      );
    }
    return outcomesFromFile(file);
  }
  if (key === undefined) throw new UsageError('--key KEY (or --file FILE) is required');
  if (inserted !== undefined && notInserted)
    throw new UsageError('--inserted and --not-inserted cannot be used together');
  if (inserted === undefined && !notInserted) {
    throw new UsageError(
      `--inserted SALESFORCE_ID (key ${key}'s record exists in Salesforce) or --not-inserted (it does not) is required`,
    );
  }
  return [{ key, salesforceId: inserted ?? null }];
}

/** One line of the text output for an outcome. */
function outcomeLine(o: InsertOutcomeRecorded, dryRun: boolean): string {
  if (o.fromJobResults && o.sentBy.api === 'bulk') {
    const result =
      o.outcome === 'inserted'
        ? `inserted, Id ${o.salesforceId ?? ''}: recorded, never inserted again`
        : 'not inserted (roundtrip errors shows why): the next plan inserts it';
    return (
      `key ${o.key} (sent by run ${o.runId} in Bulk job ${o.sentBy.jobId}, never collected by it; ${o.sentBy.jobState} in Salesforce, collected now): ` +
      `its results say ${result}${o.fromJobResults.differs ? ' (not the outcome given: the results are what Salesforce did)' : ''}`
    );
  }
  const sent =
    o.sentBy.api === 'bulk'
      ? `sent by run ${o.runId} in Bulk job ${o.sentBy.jobId} (${o.sentBy.jobState})`
      : `sent by run ${o.runId} in a Collections call`;
  const what =
    o.outcome === 'inserted'
      ? `${dryRun ? 'would be recorded' : 'recorded'} as inserted, Id ${o.salesforceId ?? ''}: never inserted again`
      : `${dryRun ? 'would be recorded' : 'recorded'} as not inserted: the next plan inserts it`;
  return `key ${o.key} (${sent}): ${what}`;
}

/** One line of the text output of `--collect-jobs` for a job. */
function jobLine(task: string, j: InsertJobResolved, given: string): string {
  const taskOption = `${shellOption('--task', task)}${given}`;
  const head = `Bulk job ${j.jobId} of run ${j.runId}`;
  if (j.state === 'NotFound') {
    // Its results went with it: no plan or resolve learns its keys' outcomes from them.
    return (
      `${head}: Salesforce no longer knows it (NotFound): its results are gone with it, and its ${j.sent} key(s) stay held back: ` +
      `look for each record in Salesforce and record what you found with roundtrip resolve ${taskOption} --key KEY --inserted ID (or --not-inserted), ` +
      `with ${WITHOUT_LOOK_UP_OPTION} for a task with an external-ID key (SELECT key FROM roundtrip.writeback_plans WHERE job_id = '${j.jobId}' AND status = 'sent' lists them)`
    );
  }
  if (j.unread !== undefined) {
    return `${head}: left as recorded (${j.state}): ${j.unread}. Its ${j.sent} key(s) stay held back; run this again once Salesforce answers for the job`;
  }
  if (!j.collected) {
    return `${head}: not finished (${j.state}, as Salesforce last answered or as recorded when it could not be asked): its ${j.sent} key(s) stay held back; run this again once it has finished`;
  }
  return (
    `${head}: ${j.state} in Salesforce, collected: ${j.inserted} inserted (recorded, never inserted again), ` +
    `${j.notInserted} not inserted (the next plan inserts them; roundtrip errors --run ${j.runId} ${taskOption} shows why)` +
    (j.sent > 0
      ? `, ${j.sent} without a result in the job (held back: roundtrip errors ${taskOption} lists them)`
      : '')
  );
}

/** `roundtrip resolve --collect-jobs`: see {@link collectInsertJobs}. */
async function collectJobs(values: Record<string, unknown>, task: string): Promise<number> {
  for (const other of [
    'key',
    'file',
    'inserted',
    'not-inserted',
    'dry-run',
    WITHOUT_LOOK_UP_OPTION.slice(2),
  ]) {
    if (values[other] !== undefined) {
      throw new UsageError(
        `--collect-jobs collects the task's Bulk jobs whatever keys they carried: not with --${other}`,
      );
    }
  }
  const { config, pool } = await runsDatabase(values, {
    command: 'resolve',
    connections: 2,
    reads: ['salesforce'],
  });
  // The commands it names, with the options that named this pipeline and database.
  const given = databaseOptionsGiven(values);
  try {
    await closeGoneRuns(pool, config, 'roundtrip resolve', { given });
    const salesforce = localSalesforce({ config, secrets: secretsFrom(values), logger: silentLogger });
    let jobs: InsertJobResolved[];
    try {
      jobs = await collectInsertJobs(
        { config, pg: pool, clock: systemClock, logger: silentLogger, ...(salesforce ? { salesforce } : {}) },
        task,
      );
    } catch (err) {
      if (err instanceof OutcomeRefusedError) {
        throw new UsageError(`nothing was collected:\n${err.problems.map((p) => `  ${p}`).join('\n')}`, {
          showUsage: false,
        });
      }
      throw err;
    }
    if (values.json === true) {
      process.stdout.write(`${JSON.stringify({ pipeline: config.name, task, jobs })}\n`);
      return EXIT.ok;
    }
    const waiting = jobs.length === 0 ? await jobsOfRunsStillRunning(pool, task) : [];
    const lines =
      jobs.length === 0
        ? [
            `task ${task} has no Bulk job that a run which has ended left uncollected with keys sent: nothing to collect (roundtrip errors ${shellOption('--task', task)}${given.options} --code INSERT_OUTCOME_UNKNOWN lists the keys held back otherwise)`,
            ...waiting.map(
              (j) =>
                `  Bulk job ${j.jobId} of run ${j.runId} is not collected, as that run is ${stillRunningNote(j.runId, j.process, { options: given.options, note: '' })}; then run this command again`,
            ),
          ]
        : jobs.map((j) => jobLine(task, j, given.options));
    if (given.note) lines.push(passwordBack(given).trim());
    process.stdout.write(`${lines.join('\n')}\n`);
    return EXIT.ok;
  } finally {
    await pool.end();
  }
}

/**
 * The Bulk jobs of task `task` not collected whose run is still recorded as running: neither a
 * plan nor `--collect-jobs` collects them before their run has ended, which is then the reason.
 */
async function jobsOfRunsStillRunning(
  pool: Pool,
  task: string,
): Promise<{ jobId: string; runId: string; process: { host: string | null; pid: number } | null }[]> {
  const { rows } = await pool.query<{
    job_id: string;
    run_id: string;
    host: string | null;
    pid: number | null;
  }>(
    `SELECT j.job_id, j.run_id, to_jsonb(r) ->> 'host' AS host, (to_jsonb(r) ->> 'pid')::int AS pid
       FROM roundtrip.writeback_jobs j JOIN roundtrip.runs r ON r.run_id = j.run_id
      WHERE j.task = $1 AND j.collected_at IS NULL AND r.status = 'running'
      ORDER BY j.run_id, j.job_id`,
    [task],
  );
  return rows.map((r) => ({
    jobId: r.job_id,
    runId: r.run_id,
    process: r.pid === null ? null : { host: r.host, pid: r.pid },
  }));
}

/**
 * The first line of a refusal of outcomes given: nothing was recorded, unless Bulk jobs never
 * collected were collected before the checks (their keys' outcomes recorded from their results).
 */
function refusedHead(err: OutcomeRefusedError, task: string, given: string): string {
  if (err.jobsCollected.length === 0) return 'nothing was recorded';
  const jobs = err.jobsCollected.map((j) => `Bulk job ${j.jobId} of run ${j.runId} (${j.state})`).join(', ');
  return (
    `none of the outcomes given was recorded; but ${jobs}, never collected by its run, was collected first: ` +
    `the outcome of every key it carried is recorded from its results (roundtrip errors ${shellOption('--task', task)}${given} lists the keys still held back)`
  );
}

/**
 * The refusal of the outcomes given: {@link refusedHead}, then each problem, whose commands carry
 * the options `given`; and, when a command shows a --database-url's password as ***, to put it back.
 */
function refusalText(err: OutcomeRefusedError, task: string, given: OptionsGiven): string {
  const text = `${refusedHead(err, task, given.options)}:\n${err.problems.map((p) => `  ${p}`).join('\n')}`;
  return given.note && text.includes(given.options) ? `${text}\n${passwordBack(given).trim()}` : text;
}

/** `roundtrip resolve`: see the module comment. */
export const resolve: Command = async (argv) => {
  const { values } = parseOptions(argv, {
    ...DATABASE_OPTIONS,
    task: { type: 'string' },
    key: { type: 'string' },
    inserted: { type: 'string' },
    'not-inserted': { type: 'boolean' },
    file: { type: 'string' },
    [WITHOUT_LOOK_UP_OPTION.slice(2)]: { type: 'boolean' },
    'collect-jobs': { type: 'boolean' },
    'dry-run': { type: 'boolean' },
    json: { type: 'boolean' },
  });
  const task = typeof values.task === 'string' ? values.task : undefined;
  if (task === undefined)
    throw new UsageError('--task NAME (the insert task the keys belong to) is required');
  if (values['collect-jobs'] === true) return collectJobs(values, task);
  const outcomes = await outcomesFrom(values);
  const dryRun = values['dry-run'] === true;
  // Two connections: the task's lock holds one for the whole work (lock.ts), the transaction the other.
  const { config, pool } = await runsDatabase(values, {
    command: 'resolve',
    connections: 2,
    reads: ['salesforce'],
  });
  try {
    await closeGoneRuns(pool, config, 'roundtrip resolve', { given: databaseOptionsGiven(values) });
    let recorded: InsertOutcomeRecorded[];
    try {
      // Salesforce only for a key in a Bulk job its run never collected: asked about, and
      // collected once finished (signs in then, with the config's secret).
      const salesforce = localSalesforce({ config, secrets: secretsFrom(values), logger: silentLogger });
      recorded = await recordInsertOutcomes(
        {
          config,
          pg: pool,
          clock: systemClock,
          logger: silentLogger,
          ...(salesforce ? { salesforce } : {}),
          // The commands its refusals name carry the options given.
          commandOptions: databaseOptionsGiven(values).options,
        },
        task,
        outcomes,
        {
          dryRun,
          withoutLookUp: values[WITHOUT_LOOK_UP_OPTION.slice(2)] === true,
        },
      );
    } catch (err) {
      if (err instanceof OutcomeRefusedError) {
        throw new UsageError(refusalText(err, task, databaseOptionsGiven(values)), {
          showUsage: false,
        });
      }
      throw err;
    }
    if (values.json === true) {
      process.stdout.write(
        `${JSON.stringify({ pipeline: config.name, task, dryRun, outcomes: recorded })}\n`,
      );
      return EXIT.ok;
    }
    const inserted = recorded.filter((o) => o.outcome === 'inserted').length;
    const lines = [
      ...recorded.map((o) => outcomeLine(o, dryRun)),
      `${dryRun ? 'dry run, nothing recorded: ' : ''}${recorded.length} key${recorded.length === 1 ? '' : 's'} of task ${task}: ${inserted} inserted, ${recorded.length - inserted} not inserted` +
        (dryRun ? '' : ` (the runs that sent them count them again: roundtrip status)`),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    return EXIT.ok;
  } finally {
    await pool.end();
  }
};
