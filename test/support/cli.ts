/**
 * Runs `roundtrip <argv>` in-process through `main()`, capturing what it writes to stdout and
 * stderr, for the CLI's integration tests.
 */
import { main } from '../../bin/commands';

/** What a command wrote, and its exit code. */
export interface Captured {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `roundtrip <argv>` in-process, capturing stdout and stderr. */
export async function cli(argv: string[]): Promise<Captured> {
  let stdout = '';
  let stderr = '';
  const out = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const err = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    const code = await main(argv);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}
