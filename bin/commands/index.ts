/**
 * The roundtrip CLI's commands and their dispatch (bin/roundtrip.ts is the entry point). Each
 * sub-command lives in its own module and is loaded only when used, so that
 * `roundtrip emulate athena` does not load jsforce and so on.
 */
import { thrownFailureText } from '../../lambdas/shared/errors';
import { EXIT, UsageError, type Command } from '../cli-common';

const USAGE = `usage: roundtrip <command> [options]

commands:
  demo [--leads N] [--customers N] [--seed N] [--again] [--json]
                       the whole loop on this machine: embedded PostgreSQL, both emulators
                       seeded with generated data, the example pipeline, what changed
  run  [--config FILE] [--secrets FILE] [--aws-endpoint URL] [--full] [--tasks a,b] [--json]
                       run a pipeline here against the endpoints its config and secrets name
  plan [same options as run]
                       a dry run: extract, transform and plan, nothing sent to Salesforce
  validate [--config FILE] [--secrets FILE] [--aws-endpoint URL] [--no-transform] [--json]
                       check the config, the secrets, PostgreSQL, Salesforce (sign-in,
                       describes of every object, where conditions), Athena, and the
                       transform (rolled back) against each write-back's columns
  status [--config FILE] [--secrets FILE | --database-url URL] [--limit N] [--json]
         [--end-run ID [--force]]
                       recent runs from roundtrip.runs, and the tasks the config no
                       longer names that still have state in the database
  errors [--config FILE] [--secrets FILE | --database-url URL] [--run ID] [--task NAME]
         [--code CODE] [--limit N] [--csv | --json]
                       the records of a run that were rejected or failed, and why
  resolve --task NAME (--key KEY (--inserted ID | --not-inserted) | --file CSV) [--without-look-up]
          [--dry-run] [--config FILE] [--secrets FILE | --database-url URL] [--json]
                       record what became of insert keys held back as INSERT_OUTCOME_UNKNOWN
                       that no plan can look up (found in Salesforce, or not)
  resolve --task NAME --collect-jobs [--config FILE] [--secrets FILE] [--database-url URL] [--json]
                       collect the insert Bulk jobs ended runs never collected, when no plan can
  forget --task NAME [--config FILE] [--secrets FILE | --database-url URL] [--yes [--insert-again]] [--json]
                       start a task over: delete its sync state, sync scope and watermark
                       (without --yes: say what it would delete)
  rename-task --from OLD --to NEW [--config FILE] [--secrets FILE | --database-url URL] [--yes] [--json]
                       carry a task's state to the name the config gives it now, so the
                       renamed task goes on where it was (without --yes: say what it would move)
  start --state-machine-arn ARN [--input JSON] [--name NAME] [--region R] [--poll-seconds N] [--json]
                       start an execution of the deployed state machine and follow it
  emulate salesforce [--port N] [--seed FILE|DIR] [--faults JSON|FILE]
                                                run the local Salesforce API emulator
  emulate athena [--port N] --data DIR          run the local Athena + S3 emulator
  emulate postgres [--port N]                   run a throwaway local PostgreSQL (embedded)

Progress goes to stderr. A run ends with a summary table; with --json the last line of
stdout is the summary as one JSON object. Exit codes: 0 success, 1 failed (a run, checks),
2 bad input (options, config, secrets).
roundtrip <command> --help describes a command. Details: docs/cli.md
`;

/**
 * `roundtrip <command> --help`: the command's usage line, what it does and its options (the
 * reference is docs/cli.md).
 */
const CONNECTION_HELP = `  -c, --config FILE      the pipeline config (default: roundtrip.config.ts here)
  --secrets FILE         a JSON file of secrets by name (else ROUNDTRIP_SECRET_<NAME>
                         variables, or the file ROUNDTRIP_LOCAL_SECRETS_FILE names)
  --aws-endpoint URL     Athena and S3 at this endpoint (e.g. roundtrip emulate athena)
  -v, --verbose          the steps' structured log lines on stderr`;

const RUN_HELP = `${CONNECTION_HELP}
  --full                 ignore the watermarks: read every source in full
  --tasks a,b            run only these tasks
  --json                 the last line of stdout is the run's summary as one JSON object`;

export const COMMAND_HELP: Record<string, string> = {
  demo: `usage: roundtrip demo [--leads N] [--customers N] [--seed N] [--again] [--json] [-v]

The whole loop on this machine: an embedded PostgreSQL (or DATABASE_URL), the Salesforce
and Athena emulators seeded with generated data, the example pipeline (examples/lead-scoring),
then what changed in Salesforce. Everything it starts is stopped when it ends or is interrupted.

  --leads N              leads in the Salesforce emulator (default 10,000)
  --customers N          customers in the Athena emulator (default 5,000)
  --seed N               the generator's seed (default 42)
  --again                run the pipeline a second time on the same data
  --json                 the last line of stdout is the run's summary as one JSON object
  -v, --verbose          the steps' structured log lines on stderr
`,
  run: `usage: roundtrip run [--config FILE] [--secrets FILE] [--aws-endpoint URL] [--full] [--tasks a,b] [--json] [-v]

One run of a pipeline here, against the endpoints its config and secrets name (a real org
and AWS, or the emulators), through the state machine definition that deploys.

${RUN_HELP}
`,
  plan: `usage: roundtrip plan [--config FILE] [--secrets FILE] [--aws-endpoint URL] [--full] [--tasks a,b] [--json] [-v]

A dry run: extract, transform and plan; nothing is sent to Salesforce. Prints a sample of
the plan (current → new values).

${RUN_HELP}
`,
  validate: `usage: roundtrip validate [--config FILE] [--secrets FILE] [--aws-endpoint URL] [--no-transform] [--json] [-v]

Checks the config, each secret, PostgreSQL, the Salesforce sign-in and API allowance, every
extract's fields and write-back mapping against the object's describe, and Athena. Then runs
the transform's files in a transaction that is rolled back, and checks that each write-back's
source has the columns its fields and keyColumn name. Keeps nothing. Exit 0 when every check
passes or was not possible yet (a line starting with –, which says why), 1 otherwise.

${CONNECTION_HELP}
  --no-transform         do not run the transform: check the write-backs' sources as they
                         are in the database (a long transform on production data)
  --json                 one JSON object { ok, checks } on stdout
`,
  status: `usage: roundtrip status [--config FILE] [--secrets FILE | --database-url URL] [--limit N] [--json]
                       [--end-run ID [--force]] [-v]

The recent runs of the pipeline from roundtrip.runs: status, duration, rows extracted,
written, rejected, held back (for another run's send of their key), failed, API calls,
and the error of a failed run or the reason of a skipped one (a scheduled run that found
another still going), and the write-backs that held back records the run before held
back too (heldBackAgain in --json). Then the tasks the pipeline has state for in the
database that its config no longer names (renamed or removed): their synced records, last
run, records whose outcome is unknown, and the roundtrip forget command that deletes their
state (tasksNotInConfig in --json). A run recorded on this machine whose process is gone
(killed, crashed) is closed as failed first: it would hold back the keys it sent.

  -c, --config FILE      the pipeline config (default: roundtrip.config.ts here)
  --secrets FILE         a JSON file of secrets by name (the config's postgres secret)
  --database-url URL     read this database instead (postgres://…; ?sslmode=require for TLS)
  --limit N              runs listed (default 10)
  --json                 one JSON object { pipeline, runs, tasksNotInConfig } on stdout
  --end-run ID           end run ID, still recorded as running, as failed, and nothing else:
                         refused while its process runs on this machine, for a run of the
                         deployed state machine (stop its execution instead), and for a run
                         of another machine that started a step in the last 150 minutes
  --force                with --end-run: end such a run of another machine all the same,
                         once you know its process is gone
  -v, --verbose          a failure's stack trace (a failure that is not the input's)
`,
  errors: `usage: roundtrip errors [--config FILE] [--secrets FILE | --database-url URL] [--run ID] [--task NAME]
                       [--code CODE] [--limit N] [--csv | --json] [-v]

The records of a run that did not reach Salesforce, from roundtrip.writeback_errors: each
one's task, stage (plan: rejected before any call, or held back while an earlier run's
send of its key has no outcome; push: refused by Salesforce, not sent, or held back as
another run took the key since the plan), key, Salesforce Id, code, fields and message,
after their counts by task, stage and code. Then, apart, the records the run sent and never
learned the outcome of (left sent in roundtrip.writeback_plans: outcome unknown), each with
its key, Salesforce Id, call or Bulk job, when, and what happens next.

  -c, --config FILE      the pipeline config (default: roundtrip.config.ts here)
  --secrets FILE         a JSON file of secrets by name (the config's postgres secret)
  --database-url URL     read this database instead (postgres://…; ?sslmode=require for TLS)
  --run ID               this run (default: the pipeline's latest, as roundtrip status lists them)
  --task NAME            only this write-back task's records
  --code CODE            only records with this code (e.g. FIELD_CUSTOM_VALIDATION_EXCEPTION)
  --limit N              records listed (default 50; with --csv, all unless given)
  --csv                  every record as CSV on stdout, streamed from PostgreSQL
  --json                 one JSON object { pipeline, runId, status, total, rejected, heldBack,
                         failed, counts, records, outcomeUnknown, sentCounts, sentRecords }; a
                         count's and a record's heldBack tells held back from rejected (stage
                         plan) or failed (stage push)
  -v, --verbose          a failure's stack trace (a failure that is not the input's)
`,
  resolve: `usage: roundtrip resolve --task NAME --key KEY (--inserted SALESFORCE_ID | --not-inserted)
       roundtrip resolve --task NAME --file CSV
                        [--without-look-up] [--config FILE] [--secrets FILE | --database-url URL]
                        [--dry-run] [--json] [-v]
       roundtrip resolve --task NAME --collect-jobs [--config FILE] [--secrets FILE] [--database-url URL] [--json] [-v]

Records what became of insert keys that the plan holds back as INSERT_OUTCOME_UNKNOWN run
after run because nothing can look them up: sent by an insert task without an external-ID
key, by a call whose outcome was never recorded or in a Bulk job Salesforce no longer answers
for (a keyed task's are looked up by the next plan by its external ID; when no plan can, say
so with --without-look-up). Look for each record in Salesforce first. A record found is recorded as the plan's look-up records one (in the ledger of the run
that sent it and in roundtrip.sync_state: never inserted again); a key not found (or whose
record you deleted) is released (NOT_INSERTED in that run: the next plan inserts it). Under the task's lock, in one transaction: every key is
recorded, or none (each refusal names the key and why). Exit 0 recorded, 1 a push or collect
of the task is running (run it again later), 2 refused.

A key in a Bulk job that its run never collected is never recorded as given: the job may still
be running. Its next plan collects the job; when no plan can (the task's object or key changed
in the config, or the config no longer names it), resolve asks Salesforce about the job with
the config's Salesforce secret, closes it if its run uploaded it and never closed it, and once
it has finished collects it as the plan would (in a transaction of its own, whatever is refused
after): every key it carried gets the job's result, not the outcome given. --collect-jobs does
that for all such jobs of the task, without keys (then forget can go on).

  --task NAME            the insert task (as roundtrip errors lists it), or one the config no
                         longer names that the database knows as an insert task of the
                         pipeline (roundtrip status lists it)
  --key KEY              the key, as the task's keyColumn holds it
  --inserted ID          its record exists in Salesforce: its Id (15 or 18 characters)
  --not-inserted         it does not (never created, or deleted there)
  --file CSV             many keys: a header key,salesforce_id, then one key a line with its
                         record's Id, or nothing for not inserted
  --without-look-up      record keys of a task with an external-ID key too, which its plan
                         would look up, when no plan can: Salesforce refuses the look-up (the
                         key's message in roundtrip errors says so), the task's object or key
                         changed in the config, or the config no longer names it and it cannot
                         be named as it was. You looked in Salesforce instead; every other
                         check stands
  --collect-jobs         ask Salesforce about the task's Bulk jobs that ended runs never
                         collected, and collect those finished (each job's keys by outcome)
  --dry-run              check everything and say what would be recorded; record nothing (a
                         key in a Bulk job never collected is refused: nothing is asked)
  -c, --config FILE      the pipeline config (default: roundtrip.config.ts here)
  --secrets FILE         a JSON file of secrets by name (the config's postgres secret, and its
                         salesforce secret for a Bulk job never collected)
  --database-url URL     use this database instead (postgres://…; ?sslmode=require for TLS)
  --json                 one JSON object { pipeline, task, dryRun, outcomes } on stdout
                         ({ pipeline, task, jobs } with --collect-jobs)
  -v, --verbose          a failure's stack trace (a failure that is not the input's)
`,
  forget: `usage: roundtrip forget --task NAME [--config FILE] [--secrets FILE | --database-url URL] [--yes [--insert-again]] [--json] [-v]

Starts a task over: deletes, in one transaction under the task's lock (never beside a push,
collect or plan of it), a write-back task's sync state and sync scope (the records it last
synced, and the object and key it synced them by) and an extract task's watermark. Its next
plan then sends every record once, its next read is full. For a write-back whose object or key
changed (SyncScopeChangedError), and for a task renamed or removed from the config.
Without --yes it says what it would delete, and deletes nothing. Refused (exit 1) while the
task has records whose outcome is unknown (sent and never answered, or inserts held back as
INSERT_OUTCOME_UNKNOWN): they would be sent again. Keeps the per-run history (runs, ledger,
errors, but for the task's resolved INSERT_OUTCOME_UNKNOWN marks, which later plans would read
as unresolved once the sync state is gone, and the keys its runs held back, which its next run
would compare its own with and so carry on their streak) and the task's name in
roundtrip.task_owners.

  --task NAME            the task (as roundtrip status names it); one the database does not
                         know is bad input (exit 2)
  --yes                  delete; without it, a dry run
  --insert-again         with --yes, for an insert task with synced records: its next run
                         inserts them all again (Salesforce holds each twice unless you
                         deleted them there or the task now writes another object); refused
                         (exit 2) without it
  -c, --config FILE      the pipeline config (default: roundtrip.config.ts here)
  --secrets FILE         a JSON file of secrets by name (the config's postgres secret)
  --database-url URL     use this database instead (postgres://…; ?sslmode=require for TLS)
  --json                 one JSON object { pipeline, task, deleted, … } on stdout
  -v, --verbose          a failure's stack trace (a failure that is not the input's)
`,
  'rename-task': `usage: roundtrip rename-task --from OLD --to NEW [--config FILE] [--secrets FILE | --database-url URL] [--yes] [--json] [-v]

Carries a task's state to a new name, for a task renamed in the config (a name given or changed,
or a mode changed under a default name) that should go on where it was: a task's state is kept
by name, so renamed it would send every record once, and an insert would insert each again (its
plan is refused while the old name holds inserts into the same object). Moves, in one
transaction under both tasks' locks, OLD's sync state, sync scope and watermark to NEW, and
claims NEW for the pipeline; OLD's runs' history stays under OLD. Without --yes it says what it
would move, and moves nothing. Refused (exit 1) while OLD has records whose outcome is unknown
or a run still running planned it, and while NEW has state of its own; bad input (exit 2) while
the config still names OLD, and for a name the database does not know.

  --from OLD             the name the task had (as roundtrip status names it)
  --to NEW               the name the config gives it now
  --yes                  move; without it, a dry run
  -c, --config FILE      the pipeline config (default: roundtrip.config.ts here)
  --secrets FILE         a JSON file of secrets by name (the config's postgres secret)
  --database-url URL     use this database instead (postgres://…; ?sslmode=require for TLS)
  --json                 one JSON object { pipeline, from, to, moved, … } on stdout
  -v, --verbose          a failure's stack trace (a failure that is not the input's)
`,
  start: `usage: roundtrip start --state-machine-arn ARN [--input JSON] [--name NAME] [--region R] [--poll-seconds N] [--json]

Starts an execution of the deployed state machine (AWS credentials from the environment) and
follows it to the end, then prints the run's summary.

  --state-machine-arn ARN   arn:aws:states:REGION:ACCOUNT:stateMachine:NAME
  --input JSON           the execution input, e.g. '{"dryRun":true}' (default {})
  --name NAME            the execution name (default cli-<time>-<random>)
  --region R             the Region (default: the ARN's)
  --poll-seconds N       how often the execution's history is read, 1 to 3600 (default 5)
  --json                 the last line of stdout is the run's summary as one JSON object
`,
  emulate: `usage: roundtrip emulate salesforce [--port N] [--host HOST] [--seed FILE|DIR] [--describes DIR]
                                  [--daily-api-limit N] [--jwt-certificate PEM_FILE] [--faults JSON|FILE]
       roundtrip emulate athena --data DIR [--port N] [--host HOST] [--results DIR]
                                [--workgroup NAME[=s3://bucket/prefix/][!][:DISABLED]]…
                                [--queued-ms N] [--running-ms N]
       roundtrip emulate postgres [--port N]

Runs one emulator until Ctrl-C, after printing its endpoint and the credentials it accepts.
\`emulate postgres\` is a real PostgreSQL (the demo's embedded server) for \`roundtrip run\` on a
laptop: it prints the URL for the local secrets file; its data is deleted when it stops.
Details: docs/salesforce-emulator.md, docs/athena-emulator.md, docs/cli.md
`,
};

/** Whether the arguments ask for help (before a `--` that ends the options). */
function asksForHelp(argv: readonly string[]): boolean {
  for (const arg of argv) {
    if (arg === '--') return false;
    if (arg === '--help' || arg === '-h') return true;
  }
  return false;
}

/**
 * The message of an error (after its name when that is a built-in one other than Error, which
 * says the failure is a bug: thrownFailureText), and its stack only when asked for (-v / --verbose).
 */
function describeFailure(err: unknown, verbose: boolean): string {
  if (verbose && err instanceof Error && err.stack) return err.stack;
  return thrownFailureText(err);
}

const commands: Record<string, () => Promise<Command>> = {
  demo: async () => (await import('./demo')).demo,
  run: async () => (await import('./run')).run,
  plan: async () => (await import('./run')).plan,
  validate: async () => (await import('./validate')).validate,
  status: async () => (await import('./status')).status,
  errors: async () => (await import('./errors')).errors,
  resolve: async () => (await import('./resolve')).resolve,
  forget: async () => (await import('./forget')).forget,
  'rename-task': async () => (await import('./rename-task')).renameTaskCli,
  start: async () => (await import('./start')).start,
  emulate: async () => (await import('./emulate')).emulate,
};

/** Runs `roundtrip <argv>`; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? rest[0] : undefined;
    process.stdout.write(topic && COMMAND_HELP[topic] ? COMMAND_HELP[topic] : USAGE);
    return name ? EXIT.ok : EXIT.badInput;
  }
  const load = commands[name];
  if (!load) {
    process.stderr.write(`roundtrip: unknown command "${name}"\n\n${USAGE}`);
    return EXIT.badInput;
  }
  if (asksForHelp(rest)) {
    process.stdout.write(COMMAND_HELP[name] ?? USAGE);
    return EXIT.ok;
  }
  try {
    return await (
      await load()
    )(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(
        `roundtrip ${name}: ${err.message}\n${err.showUsage ? `\n${COMMAND_HELP[name] ?? USAGE}` : ''}`,
      );
      return EXIT.badInput;
    }
    // A failure that is not the input's: one sentence, the stack only with -v.
    const verbose = rest.includes('-v') || rest.includes('--verbose');
    process.stderr.write(`roundtrip ${name}: ${describeFailure(err, verbose)}\n`);
    return EXIT.failed;
  }
}
