/**
 * What every roundtrip sub-command shares: exit codes and the usage error.
 * Exit codes (issue 7): 0 success, 1 a failed run, 2 bad input.
 */
export const EXIT = { ok: 0, failed: 1, badInput: 2 } as const;

/** Bad command-line input: printed with the usage line, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A sub-command: gets the arguments after its name, resolves to an exit code. */
export type Command = (argv: string[]) => Promise<number>;

/** Resolves when the process is asked to stop (Ctrl-C or SIGTERM). */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const done = (signal: NodeJS.Signals): void => resolve(signal);
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
}
