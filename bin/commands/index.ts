/**
 * The roundtrip CLI's commands and their dispatch (bin/roundtrip.ts is the entry point). Each
 * sub-command lives in its own module and is loaded only when used, so that
 * `roundtrip emulate athena` does not load jsforce and so on.
 */
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
  validate [--config FILE] [--secrets FILE] [--aws-endpoint URL] [--json]
                       check the config, the secrets, PostgreSQL, Salesforce (sign-in,
                       describes of every object) and Athena
  status [--config FILE] [--secrets FILE | --database-url URL] [--limit N] [--json]
                       recent runs from roundtrip.runs
  start --state-machine-arn ARN [--input JSON] [--name NAME] [--region R] [--json]
                       start an execution of the deployed state machine and follow it
  emulate salesforce [--port N] [--seed FILE]   run the local Salesforce API emulator
  emulate athena [--port N] --data DIR          run the local Athena + S3 emulator

Progress goes to stderr. A run ends with a summary table; with --json the last line of
stdout is the summary as one JSON object. Exit codes: 0 success, 1 failed run, 2 bad input.
Details: docs/cli.md
`;

const commands: Record<string, () => Promise<Command>> = {
  demo: async () => (await import('./demo')).demo,
  run: async () => (await import('./run')).run,
  plan: async () => (await import('./run')).plan,
  validate: async () => (await import('./validate')).validate,
  status: async () => (await import('./status')).status,
  start: async () => (await import('./start')).start,
  emulate: async () => (await import('./emulate')).emulate,
};

/** Runs `roundtrip <argv>`; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE);
    return name ? EXIT.ok : EXIT.badInput;
  }
  const load = commands[name];
  if (!load) {
    process.stderr.write(`roundtrip: unknown command "${name}"\n\n${USAGE}`);
    return EXIT.badInput;
  }
  try {
    return await (
      await load()
    )(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`roundtrip ${name}: ${err.message}\n\n${USAGE}`);
      return EXIT.badInput;
    }
    throw err;
  }
}
