/**
 * Runs `roundtrip <argv>` in-process through `main()`, capturing what it writes to stdout and
 * stderr, for the CLI's integration tests.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { main } from '../../bin/commands';
import { loadConfig, type PipelineConfig } from '../../lambdas/config';

/** The example pipeline's folder (examples/lead-scoring). */
export const EXAMPLE = path.join(__dirname, '../../examples/lead-scoring');

/**
 * Writes the example pipeline as a JSON config at `file`, without TLS to the local server (the
 * demo environment's secrets `roundtrip/salesforce` and `roundtrip/postgres`), and returns the
 * example as loaded: the config the CLI tests run against the demo environment.
 */
export async function writeExampleConfig(file: string): Promise<PipelineConfig> {
  const example = await loadConfig(path.join(EXAMPLE, 'roundtrip.config.ts'));
  await writeFile(
    file,
    JSON.stringify({
      name: 'lead-scoring',
      salesforce: { secret: 'roundtrip/salesforce', apiVersion: '62.0' },
      athena: { database: 'marketing', outputLocation: 's3://roundtrip-athena-results/lead-scoring/' },
      postgres: { secret: 'roundtrip/postgres', schema: 'public', ssl: { mode: 'disable' } },
      extract: example.extract.map(({ name: _name, ...task }) => task),
      transform: [path.join(EXAMPLE, 'transforms', 'lead_score.sql')],
      writeback: example.writeback.map(({ name: _name, ...task }) => task),
    }),
  );
  return example;
}

/** What a command wrote, and its exit code. */
export interface Captured {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * A command's exit code, with its stderr when it is not 0: `expect(exitOf(r)).toBe(0)` shows why
 * the command failed, where `expect(r.code).toBe(0)` shows a number.
 */
export function exitOf(captured: Captured): number | string {
  return captured.code === 0 ? 0 : `exit ${captured.code}: ${captured.stderr}`;
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
