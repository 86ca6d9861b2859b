/**
 * The installed `roundtrip` bin in a child process, as a data engineer meets it: each command's
 * `--help`, and a bad option named once with that command's usage.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

const BIN = path.resolve(__dirname, '../../../bin/roundtrip.cjs');

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The environment of a first run: no secrets, no DATABASE_URL (the demo's embedded server). */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.DATABASE_URL;
  delete env.ROUNDTRIP_LOCAL_SECRETS_FILE;
  for (const name of Object.keys(env)) if (name.startsWith('ROUNDTRIP_SECRET_')) delete env[name];
  return env;
}

function roundtrip(argv: string[], env: NodeJS.ProcessEnv = cleanEnv()): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...argv], { env, timeout: 60_000 }, (err, stdout, stderr) => {
      const failure = err as (Error & { code?: number; signal?: NodeJS.Signals }) | null;
      resolve({
        code: failure ? (typeof failure.code === 'number' ? failure.code : null) : 0,
        signal: failure?.signal ?? null,
        stdout,
        stderr,
      });
    });
  });
}

describe('the roundtrip bin', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'roundtrip-cli-process-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it.each(['demo', 'run', 'plan', 'validate', 'status', 'start', 'emulate'])(
    'prints `roundtrip %s --help` on stdout and exits 0',
    async (command) => {
      const result = await roundtrip([command, '--help']);
      expect(result.stderr).toBe('');
      expect(result.stdout).toMatch(new RegExp(`^usage: roundtrip ${command} `));
      expect(result.code).toBe(0);
    },
  );

  it('describes a command with `roundtrip help <command>` and -h', async () => {
    const help = await roundtrip(['help', 'plan']);
    expect(help.stdout).toMatch(/^usage: roundtrip plan /);
    expect(help.stdout).toContain('--tasks a,b');
    expect(help.code).toBe(0);
    const short = await roundtrip(['status', '-h']);
    expect(short.stdout).toMatch(/^usage: roundtrip status /);
    expect(short.code).toBe(0);
  });

  it('names a bad option once and shows that command’s usage, exit 2', async () => {
    const result = await roundtrip(['status', '--bogus']);
    expect(result.stderr).toMatch(/^roundtrip status: Unknown option '--bogus'/);
    expect(result.stderr).toContain('usage: roundtrip status ');
    expect(result.code).toBe(2);
  });
});
