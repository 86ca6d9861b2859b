/**
 * What every roundtrip sub-command shares: exit codes, the usage error, option parsing, progress
 * lines and the run summary. Exit codes (issue 7): 0 success, 1 a failure (a run, checks), 2 bad input
 * (options, config, the secrets a command reads: docs/cli.md).
 * Progress and messages go to stderr; stdout holds the result (with `--json`, its last line is
 * the summary object).
 */
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { taskName, type PipelineConfig } from '../lambdas/config';
import { suggestion } from '../lambdas/config/issues';
import { AthenaDuplicateKeysFound, AthenaKeptPrimaryKey } from '../lambdas/core/contracts';
import {
  duplicateKeysWarning,
  keptPrimaryKeyWarning,
  queryCountMismatchWarningOf,
  retypedColumnWarning,
} from '../lambdas/core/load-warnings';
import type { LocalRunEvent } from '../statemachine/local';
import { redactUrl, urlHasCredentials } from '../lambdas/connectors/postgres';
import { shellOption } from '../lambdas/shared/shell';
import { formatSummaryTable, heldBackAgainNote, transformFileLabels, type RunSummary } from './local/summary';
import {
  failureText,
  readableFailure,
  storedFailureText,
  WAITING_ERROR_NAMES,
} from '../lambdas/shared/errors';

export { failureText, readableFailure, storedFailureText };

export const EXIT = { ok: 0, failed: 1, badInput: 2 } as const;

/**
 * The options that name a pipeline and its database as a command line gave them, for the commands
 * a message names ({@link databaseOptionsGiven}).
 */
export interface OptionsGiven {
  /** ` --config FILE --secrets FILE --database-url URL`, those given, each quoted for a shell. */
  readonly options: string;
  /** What to say after a command of `options`: to put a URL's password back; empty when none is hidden. */
  readonly note: string;
}

/**
 * The options given to a command of the pipeline's database that say which pipeline and database
 * it acts on (`--config`, `--secrets`, `--database-url`), as a shell takes them: what a message
 * adds to the command it tells to run next (`roundtrip forget … --yes`), so that the command
 * pasted acts on what this one read. A URL's password is never shown ({@link redactUrl}); `note`
 * then says to put it back. `absolutePaths`: the `--config` and `--secrets` files by their absolute
 * paths, for texts a run stores (roundtrip.runs, roundtrip.writeback_errors), which `roundtrip
 * status` and `errors` show later, perhaps in another folder, where a relative path names nothing.
 */
export function databaseOptionsGiven(
  values: Record<string, unknown>,
  { absolutePaths = false }: { absolutePaths?: boolean } = {},
): OptionsGiven {
  const url = values['database-url'];
  const hidden = typeof url === 'string' && urlHasCredentials(url);
  const options = (['config', 'secrets', 'database-url'] as const)
    .flatMap((name) => {
      const value = values[name];
      if (typeof value !== 'string') return [];
      if (name === 'database-url')
        return [` ${shellOption('--database-url', hidden ? redactUrl(value) : value)}`];
      return [` ${shellOption(`--${name}`, absolutePaths ? path.resolve(value) : value)}`];
    })
    .join('');
  return { options, note: hidden ? ' (with the password of your --database-url where it shows ***)' : '' };
}

/**
 * A sentence that follows several commands named with {@link databaseOptionsGiven}'s options: to
 * put the password of the `--database-url` back where they show `***`; empty when none is hidden.
 */
export function passwordBack(given: { note: string }): string {
  return given.note ? ' Put the password of your --database-url back where the commands show ***.' : '';
}

/**
 * Bad input (exit code 2): a malformed option, printed with the command's usage; or, with
 * `showUsage: false`, input that is well-formed but wrong (a config that does not validate),
 * printed alone.
 */
export class UsageError extends Error {
  readonly showUsage: boolean;
  constructor(message: string, options: { showUsage?: boolean } = {}) {
    super(message);
    this.name = 'UsageError';
    this.showUsage = options.showUsage ?? true;
  }
}

/** A sub-command: gets the arguments after its name, resolves to an exit code. */
export type Command = (argv: string[]) => Promise<number>;

/** The signals that end a command early: Ctrl-C, `kill`, a closed terminal. */
const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Resolves with the first stop signal (Ctrl-C, SIGTERM, a closed terminal), so that the command
 * stops what it started (`emulate`: its server, its temp folders). Its listeners stay until the
 * process ends and ignore every later signal: a terminal's Ctrl-C reaches the whole process group,
 * so the command gets it directly and again from each wrapper that forwards the one it got
 * (`bin/roundtrip.cjs`; npm, for `npx roundtrip`), as late as a loaded machine runs that wrapper,
 * which no clock tells from a second Ctrl-C. With no listener left, such a copy ended the process
 * by Node's default action in the middle of its stop (the data folder left behind). Ctrl-\
 * (SIGQUIT) still ends it at once. A signal listener keeps no process alive.
 */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    for (const s of STOP_SIGNALS) process.on(s, resolve);
  });
}

/**
 * Until the returned function is called, a stop signal runs `cleanup` (stopping what the command
 * started: an embedded PostgreSQL, the emulators, their temp folders) and then ends the process
 * by that signal, so that the shell and `bin/roundtrip.cjs` see it. A cleanup longer than
 * `graceMs` ends it at once. Signals while the cleanup runs are ignored, as {@link untilSignal}'s
 * are: the copies of a terminal's Ctrl-C that `bin/roundtrip.cjs`, npm or tsx forward come as late
 * as a loaded machine runs them, which no clock tells from a second Ctrl-C (a 2 s window took a
 * late copy for one and ended the process before its cleanup was done); Ctrl-\ (SIGQUIT) still
 * ends it at once.
 */
export function stopOnSignal(
  cleanup: (signal: NodeJS.Signals) => Promise<void>,
  graceMs = 15_000,
): () => void {
  let stopping: NodeJS.Signals | undefined;
  const remove = (): void => {
    for (const s of STOP_SIGNALS) process.removeListener(s, handler);
  };
  const end = (signal: NodeJS.Signals): void => {
    remove();
    process.kill(process.pid, signal);
  };
  function handler(signal: NodeJS.Signals): void {
    if (stopping) return;
    stopping = signal;
    note(`\n${signal}: stopping what this command started …`);
    // The work still in flight fails as its servers go away: expected now, and no reason to
    // abandon the cleanup (an uncaught error would end the process before it is done).
    process.on('uncaughtException', () => undefined);
    process.on('unhandledRejection', () => undefined);
    setTimeout(() => end(signal), graceMs).unref();
    void cleanup(signal)
      .catch((err: unknown) =>
        note(`  could not stop everything: ${err instanceof Error ? err.message : String(err)}`),
      )
      .finally(() => end(signal));
  }
  for (const s of STOP_SIGNALS) process.on(s, handler);
  return remove;
}

/**
 * Never settles: what a command awaits once a {@link stopOnSignal} handler has taken over, which
 * ends the process by the signal when its cleanup is done, so that the command reports nothing
 * of the work its cleanup cut short.
 */
export function untilStopped(): Promise<never> {
  return new Promise<never>(() => undefined);
}

/**
 * The errors of a write to stdout or stderr whose reader is gone: EPIPE, a pipe's reader that
 * stopped early (`roundtrip status | head -3`); EIO, a terminal closed (SIGHUP), whose tty takes
 * no more writes, such as the stop message of {@link stopOnSignal}.
 */
const OUTPUT_GONE: ReadonlySet<string> = new Set(['EPIPE', 'EIO']);

/**
 * The 'error' listener of the CLI's stdout and stderr (bin/roundtrip.ts): an output whose reader
 * is gone ({@link OUTPUT_GONE}) has no one to tell, so what is left to print is dropped and the
 * command ends as it would have (its exit code, a stop signal's cleanup done), not with an
 * unhandled error and its stack trace; any other error is thrown.
 */
export function ignoreOutputGone(err: NodeJS.ErrnoException): void {
  if (err.code === undefined || !OUTPUT_GONE.has(err.code)) throw err;
}

/** Writes to stderr: progress and messages, so that stdout holds only a command's result. */
export function note(line: string): void {
  process.stderr.write(`${line}\n`);
}

/**
 * A whole number as a flag takes it: decimal digits, in groups an underscore may part (`1_000`).
 * Not what `Number()` reads besides: `0x10`, `1e3`, ` 7 ` or an empty `--port=` (0).
 */
const WHOLE_NUMBER_TEXT = /^\d+(?:_\d+)*$/;

/**
 * A whole number from `min` to `max` from an option, or a UsageError naming the option. `max` is
 * at most Number.MAX_SAFE_INTEGER: a number past it is not the one typed (JavaScript rounds it),
 * and one handed on as it is fails far from the flag, as something else (`--limit
 * 99999999999999999999` in a SQL LIMIT: PostgreSQL's "out of range for type bigint", exit 1).
 * Only decimal digits are a number ({@link WHOLE_NUMBER_TEXT}): `--limit 0x10` or `--port=` is
 * refused, not taken as 16 or 0.
 */
export function wholeNumberOption(
  name: string,
  value: string | undefined,
  fallback: number,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  const n = WHOLE_NUMBER_TEXT.test(value) ? Number(value.replace(/_/g, '')) : Number.NaN;
  if (!Number.isInteger(n) || n < min) {
    throw new UsageError(`--${name} expects a whole number ≥ ${min}, got "${value}"`);
  }
  const highest = Math.min(max, Number.MAX_SAFE_INTEGER);
  if (n > highest) {
    throw new UsageError(`--${name} expects a whole number from ${min} to ${highest}, got "${value}"`);
  }
  return n;
}

/**
 * Parses options with node:util's parseArgs (strict: an unknown option is a UsageError). No
 * command takes a bare argument, so one is a UsageError too: ignored, `roundtrip validate
 * my.config.ts` would check `roundtrip.config.ts` instead and report that file missing. When the
 * command has `--config`, the error says to give the file with it.
 */
export function parseOptions<T extends ParseArgsConfig['options']>(
  argv: string[],
  options: T,
): { values: Record<string, string | boolean | undefined> } {
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  } catch (err) {
    throw new UsageError(
      unknownOptionMessage(err, options) ??
        ambiguousValueMessage(err, argv, options) ??
        (err instanceof Error ? err.message : String(err)),
    );
  }
  const [extra] = parsed.positionals;
  if (extra !== undefined) {
    const hint =
      options && 'config' in options
        ? `; to use "${extra}" as the pipeline config, pass --config ${extra}`
        : '';
    throw new UsageError(`unexpected argument "${extra}" (this command takes options only)${hint}`);
  }
  return { values: parsed.values as Record<string, string | boolean | undefined> };
}

/**
 * An unknown option named with the one it most likely meant, instead of parseArgs's own text,
 * whose advice (to pass a positional argument after `--`) fits no roundtrip command: none takes
 * one. Undefined for any other parse error.
 */
function unknownOptionMessage(err: unknown, options: ParseArgsConfig['options']): string | undefined {
  // parseArgs's error may come from another realm (jest's), so not `instanceof Error`.
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown };
  if (code !== 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || typeof message !== 'string') return undefined;
  const given = /'(-[^']*)'/.exec(message)?.[1];
  if (given === undefined) return undefined;
  const meant = given.startsWith('--') ? suggestion(given.slice(2), Object.keys(options ?? {})) : undefined;
  return `Unknown option '${given}'${meant ? ` (did you mean --${meant}?)` : ''}: the options are below`;
}

/**
 * An option given a value that starts with `-` as the next argument (`--port -1`), which parseArgs
 * refuses as "ambiguous" without saying the value: named with the value, and how to give it as
 * one (`--port=-1`, which the option's own check then takes or refuses). Undefined for any other
 * parse error.
 */
function ambiguousValueMessage(
  err: unknown,
  argv: readonly string[],
  options: ParseArgsConfig['options'],
): string | undefined {
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown };
  if (code !== 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' || typeof message !== 'string') return undefined;
  const given = /^Option '(-[^' ]+)' argument is ambiguous/.exec(message)?.[1];
  const value = given === undefined ? undefined : argv[argv.indexOf(given) + 1];
  if (given === undefined || value === undefined) return undefined;
  const long = given.startsWith('--')
    ? given
    : `--${Object.entries(options ?? {}).find(([, o]) => o.short === given.slice(1))?.[0] ?? given.slice(1)}`;
  return `${given} expects a value, and "${value}" after it reads as an option: to give it as the value, write ${long}=${value}`;
}

function numberAt(value: unknown, key: string): number {
  if (value === null || typeof value !== 'object') return 0;
  const v = (value as Record<string, unknown>)[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

/**
 * The name of the Prepare state (statemachine/definition.ts RUN_STATES.prepare, not imported: that
 * module loads the CDK).
 */
const PREPARE_STATE = 'Prepare';

/**
 * Renders a local execution's events as progress lines on stderr: the state being run, and after
 * each Task what its step reported (rows read and written, records to send, rejected, held back,
 * written, failed, API calls: an extract's in the words and figures of the run's summary),
 * with the run's totals so far. A task's steps report cumulative API calls (a Bulk extract's
 * check carries the count of the whole task), so the totals keep the latest figure per task, and a
 * step's line says its own calls: the task's figure less what its earlier steps reported.
 * Salesforce's API calls (what the org's daily allowance counts, and what the run's summary says
 * in all) are counted apart from the AWS calls of an Athena load (Athena and S3).
 */
export function progressPrinter(
  write: (line: string) => void = note,
  config?: PipelineConfig,
): (event: LocalRunEvent) => void {
  // The Salesforce extracts whose load deletes rows Salesforce deleted (`deletes: 'remove'`): their
  // `deleted` rows are gone from the table, which the line says. (With 'flag' they stay, flagged.)
  // The load says which it applied (`deletes`: also the default of an object without IsDeleted,
  // which the config does not tell); the config, for an output without it.
  const removingTasks = new Set(
    (config?.extract ?? []).filter((t) => t.from === 'salesforce' && t.deletes === 'remove').map(taskName),
  );
  const rowsByTask = new Map<string, number>();
  const callsByTask = new Map<string, number>();
  const awsCallsByTask = new Map<string, number>();
  const lastFailure = new Map<string, string>();
  const sum = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);
  const fmt = (n: number): string => n.toLocaleString('en-US');
  const apiCalls = (n: number): string => `${fmt(n)} Salesforce API call${n === 1 ? '' : 's'}`;
  const awsCalls = (n: number): string => `${fmt(n)} Athena/S3 call${n === 1 ? '' : 's'}`;
  return (event) => {
    if (event.stateType !== 'Task') return;
    switch (event.type) {
      case 'entered':
        write(`  … ${event.state}`);
        break;
      case 'exited': {
        const out = event.output;
        // A write-back task's failure recorded (statemachine/definition.ts `<task> record failure`):
        // its step's ✗ came before; the run goes on with the next task.
        if (
          out !== null &&
          typeof out === 'object' &&
          (out as { taskFailed?: unknown }).taskFailed === true
        ) {
          write(
            `  ✗ ${String((out as { task?: unknown }).task)} recorded as failed: the run goes on with the other tasks, and fails at its end`,
          );
          break;
        }
        const task =
          out !== null && typeof out === 'object' && typeof (out as { task?: unknown }).task === 'string'
            ? String((out as { task: string }).task)
            : event.state;
        const rows = numberAt(out, 'rows');
        // An Athena load's calls are Athena's and S3's (its output has `s3Reads`), not Salesforce's.
        const aws = out !== null && typeof out === 'object' && 's3Reads' in out;
        const calls = numberAt(out, 'apiCalls') + numberAt(out, 's3Reads');
        if (rows) rowsByTask.set(task, rows);
        // The step's own calls: its task's figure less what the task's earlier steps reported.
        const byTask = aws ? awsCallsByTask : callsByTask;
        const ownCalls = Math.max(0, calls - (byTask.get(task) ?? 0));
        if (calls) byTask.set(task, calls);
        // A write-back step reports its task's calls so far (plan, pushes and collects together),
        // a Salesforce extract's step its task's (start, polls, load and the attempts before);
        // the Report step's output carries each such task's final figure, and Prepare's: what a
        // step that failed spent too (it records its calls also then, but has no output).
        for (const key of ['writeback', 'extract'] as const) {
          const figuresByTask = (out as Record<string, unknown> | null)?.[key];
          if (figuresByTask === null || typeof figuresByTask !== 'object') continue;
          for (const [name, figures] of Object.entries(figuresByTask)) {
            const n = numberAt(figures, 'apiCalls');
            if (n) callsByTask.set(name, n);
          }
        }
        const prepared = numberAt((out as { prepare?: unknown } | null)?.prepare, 'apiCalls');
        // Under the name Prepare's own output is counted by (its state's, RUN_STATES.prepare).
        if (prepared) callsByTask.set(PREPARE_STATE, prepared);
        // A plan (it reports `unchanged`) says what it will send even when that is nothing: a plan
        // that sends none because it rejected every row is not a quiet ✓.
        const plan = out !== null && typeof out === 'object' && 'unchanged' in out;
        const changed = numberAt(out, 'changed');
        const rejected = numberAt(out, 'rejected');
        // An extract's load (Salesforce's or Athena's: it reports `inserted`) in the summary's words
        // and figures: rows read, and of them written (inserted or updated); rows read again through
        // the overlap window, unchanged, are read but not written.
        const load = out !== null && typeof out === 'object' && 'inserted' in out;
        const written = numberAt(out, 'inserted') + numberAt(out, 'updated');
        const deletes = (out as { deletes?: unknown } | null)?.deletes;
        const removing = deletes === undefined ? removingTasks.has(task) : deletes === 'remove';
        const removed = load && !aws && removing ? numberAt(out, 'deleted') : 0;
        const parts = [
          load
            ? `${fmt(rows)} rows read, ${fmt(written)} written${removed ? `, ${fmt(removed)} removed` : ''}`
            : rows
              ? `${fmt(rows)} rows read`
              : undefined,
          changed || plan ? `${fmt(changed)} record${changed === 1 ? '' : 's'} to send` : undefined,
          // A plan's rows refused for what the source holds, and those kept back (by the plan, or
          // an insert's push) for another run's send of their key: neither the source's fault nor
          // refused by Salesforce.
          rejected ? `${fmt(rejected)} rejected` : undefined,
          numberAt(out, 'heldBack') ? `${fmt(numberAt(out, 'heldBack'))} held back` : undefined,
          // Not sent: a run that planned later wrote their keys first (runs started by hand).
          numberAt(out, 'superseded') ? `${fmt(numberAt(out, 'superseded'))} superseded` : undefined,
          numberAt(out, 'succeeded') ? `${fmt(numberAt(out, 'succeeded'))} written` : undefined,
          numberAt(out, 'failed') ? `${fmt(numberAt(out, 'failed'))} failed` : undefined,
          ownCalls ? (aws ? awsCalls(ownCalls) : apiCalls(ownCalls)) : undefined,
        ].filter(Boolean);
        const awsSoFar = sum(awsCallsByTask);
        write(
          `  ✓ ${event.state}${parts.length ? `: ${parts.join(', ')}` : ''}` +
            `  (so far: ${fmt(sum(rowsByTask))} rows read, ${apiCalls(sum(callsByTask))}` +
            `${awsSoFar ? `, ${awsCalls(awsSoFar)}` : ''})`,
        );
        // A Salesforce extract that retyped columns of its copy, a field's type having changed:
        // said here, since a transform that reads the column as it was may fail on it.
        const retyped = (out as { retypedColumns?: unknown } | null)?.retypedColumns;
        for (const c of Array.isArray(retyped) ? (retyped as Record<string, unknown>[]) : []) {
          write(`  ! ${task}: ${retypedColumnWarning(c)}`);
        }
        // A Salesforce REST read that got another number of records than its query said: the
        // watermark stayed, so the next run reads them again.
        const mismatch = queryCountMismatchWarningOf(task, out);
        if (mismatch) write(`  ! ${mismatch}`);
        // A keyed Athena extract whose query returned keys in more than one row: the merge kept
        // one row a key, which one Athena's order decided.
        const repeated = AthenaDuplicateKeysFound.safeParse(
          (out as { duplicateKeys?: unknown } | null)?.duplicateKeys,
        );
        if (repeated.success) write(`  ! ${duplicateKeysWarning(task, repeated.data)}`);
        // An Athena extract without a key whose table kept a primary key: the next result may break it.
        const kept = AthenaKeptPrimaryKey.safeParse(
          (out as { keptPrimaryKey?: unknown } | null)?.keptPrimaryKey,
        );
        if (kept.success) write(`  ! ${keptPrimaryKeyWarning(task, kept.data)}`);
        // The WARNINGs a transform file raised (`RAISE WARNING`), where they were raised.
        // Each file named as the summary names it (two of one name by their folders too).
        const files = (out as { files?: unknown } | null)?.files;
        const ran = Array.isArray(files) ? (files as Record<string, unknown>[]) : [];
        const labels = transformFileLabels(ran.map((f) => String(f.file)));
        ran.forEach((f, i) => {
          const warnings = Array.isArray(f.warnings) ? (f.warnings as Record<string, unknown>[]) : [];
          for (const w of warnings) {
            write(`  ! ${labels[i]}, line ${String(w.line)}: WARNING: ${String(w.message)}`);
          }
        });
        break;
      }
      case 'retried':
        write(`  ↻ ${event.state}: retrying`);
        break;
      case 'failed': {
        // The first 300 characters: the whole message ends the run's output (`run … failed:`).
        const full = failureText(event.error?.name, event.error?.cause);
        const failure = full.length > 300 ? `${full.slice(0, 300)}…` : full;
        // A step waiting for another run (its Retry keeps the definition's intervals locally:
        // lambdas/shared/errors.ts WAITING_ERROR_NAMES) is not a failure yet.
        const mark = WAITING_ERROR_NAMES.has(event.error?.name ?? '') ? '…' : '✗';
        // A step retried with the same error (a database that is down, six attempts) says it once.
        write(
          lastFailure.get(event.state) === failure
            ? `  ${mark} ${event.state}: the same ${mark === '…' ? 'wait' : 'error'} again`
            : `  ${mark} ${event.state}: ${failure}${mark === '…' ? ' (tried again after the Retry interval of the definition, as the deployed state machine does)' : ''}`,
        );
        lastFailure.set(event.state, failure);
        break;
      }
      case 'caught':
        break;
    }
  };
}

/**
 * On stderr, when records of the run were rejected, held back or failed, sent without their
 * outcome being recorded, or written as a second record (an upsert whose key was changed in
 * Salesforce on the record synced before): the command that lists them (held-back rows are in
 * roundtrip.writeback_errors too, with the run whose outcome they wait for; records left `sent`,
 * with what becomes of them); first, each write-back that held back keys its previous run held
 * back too. `given`: the `--config` and `--secrets` given to `run` (cli-common.ts databaseOptionsGiven),
 * which the commands named repeat, to be pasted as they are; undefined for `start`, which follows a
 * deployed run and was given neither: the line then says to add the pipeline's.
 */
export function noteErrorsCommand(summary: RunSummary, given?: OptionsGiven): void {
  for (const held of summary.heldBackAgain ?? []) note(heldBackAgainNote(summary.runId, held, given));
  const notSent = summary.tasks.reduce((n, t) => n + t.rejected + t.heldBack + t.failed, 0);
  const unknown = summary.tasks.reduce((n, t) => n + (t.outcomeUnknown ?? 0), 0);
  // Written, but as a second record: the key of the record synced before was changed in Salesforce.
  const second = summary.tasks.reduce((n, t) => n + (t.secondRecords ?? 0), 0);
  if (notSent === 0 && unknown === 0 && second === 0) return;
  const records = (n: number): string => (n === 1 ? '1 record' : `${n.toLocaleString('en-US')} records`);
  const how = summary.tasks.some((t) => t.heldBack > 0)
    ? 'rejected, held back or failed'
    : 'rejected or failed';
  const counts = [
    ...(notSent > 0 ? [`${records(notSent)} ${notSent === 1 ? 'was' : 'were'} ${how}`] : []),
    ...(unknown > 0 ? [`${records(unknown)} sent with no outcome recorded`] : []),
    ...(second > 0
      ? [
          `${records(second)} ${second === 1 ? 'was' : 'were'} written as a second record (the key of the record synced before was changed in Salesforce)`,
        ]
      : []),
  ];
  note(
    `${counts.join(', ')}: roundtrip errors --run ${summary.runId}${given ? `${given.options}${given.note}` : ''} ` +
      `lists them and ${notSent + second > 0 ? 'why' : 'what becomes of them'}${given ? '' : " (with the pipeline's --config and --secrets)"}`,
  );
}

/**
 * The lines a dry run adds when a write-back planned more records than its `maxChanges`: the plan
 * step checks that limit only on a real run (which then sends nothing and fails), so without them
 * `roundtrip plan` would report `succeeded` for a plan that `roundtrip run` refuses.
 */
export function maxChangesWarnings(config: PipelineConfig, summary: RunSummary): string[] {
  const lines: string[] = [];
  for (const [index, task] of config.writeback.entries()) {
    if (task.maxChanges === undefined) continue;
    const name = taskName(task);
    const planned = summary.tasks.find((t) => t.kind === 'writeback' && t.task === name)?.planned ?? 0;
    if (planned <= task.maxChanges) continue;
    lines.push(
      `dry run: write-back ${name} would send ${planned.toLocaleString('en-US')} records, more than its ` +
        `maxChanges (${task.maxChanges.toLocaleString('en-US')}, writeback[${index}].maxChanges): a real run ` +
        `would send none of them and fail. Check the plan (roundtrip.writeback_plan_rows, run ${summary.runId}), ` +
        `then fix the transform or raise maxChanges`,
    );
  }
  return lines;
}

/**
 * Ends a run's output: the summary table on stdout, or with `json` the summary as ONE JSON object
 * on the last stdout line. Returns the exit code: 0 succeeded, 1 failed. `given`: the options given
 * to the command ({@link databaseOptionsGiven}), which the commands the table's notes name repeat.
 */
export function finishRun(summary: RunSummary, json: boolean, extra?: string, given?: OptionsGiven): number {
  if (json) {
    // A run that was never recorded has no id any command knows.
    const { recorded, ...figures } = summary;
    process.stdout.write(`${JSON.stringify(recorded === false ? { ...figures, runId: null } : figures)}\n`);
  } else {
    if (extra) process.stdout.write(`${extra}\n`);
    process.stdout.write(`${formatSummaryTable(summary, given)}\n`);
  }
  return summary.status === 'failed' ? EXIT.failed : EXIT.ok;
}
