/**
 * The roundtrip CLI. Each sub-command lives in its own module and is loaded only when used,
 * so that `roundtrip emulate athena` does not load jsforce and so on.
 */
import { EXIT, UsageError, type Command } from './cli-common';

const USAGE = `usage: roundtrip <command> [options]

commands:
  emulate salesforce [--port N] [--seed FILE]   run the local Salesforce API emulator
  emulate athena [--port N] --data DIR          run the local Athena + S3 emulator
`;

const commands: Record<string, () => Promise<Command>> = {
  emulate: async () => (await import('./commands/emulate')).emulate,
};

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

if (require.main === module || process.argv[1]?.endsWith('roundtrip.cjs')) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`roundtrip: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = EXIT.failed;
    },
  );
}
