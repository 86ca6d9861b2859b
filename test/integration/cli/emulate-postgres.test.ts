/**
 * `roundtrip emulate postgres`: the embedded server on its own, for `roundtrip run` on a laptop
 * that runs no PostgreSQL. It prints a URL that a real client connects to, and stopping it stops
 * the server and deletes its data.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { main } from '../../../bin/commands';
import { runPostgresServerCli } from '../../../bin/commands/emulate';
import { isAlive } from '../../../emulators/postgres/embedded';

const BIN = path.resolve(__dirname, '../../../bin/roundtrip.cjs');

/** Resolves once `text` has been read from `stream`, or rejects (with all of it) if `exited` comes first. */
function untilPrinted(
  output: { text: string },
  stream: NodeJS.ReadableStream,
  text: string,
  exited: Promise<unknown>,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const check = (): void => {
      if (output.text.includes(text)) {
        stream.off('data', check);
        resolve();
      }
    };
    stream.on('data', check);
    check();
    void exited.then(() => reject(new Error(`ended before printing "${text}":\n${output.text}`)));
  });
}

describe('roundtrip emulate postgres', () => {
  it('serves a database at the URL it prints, and deletes it when stopped', async () => {
    let stdout = '';
    const out = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      stdout += String(chunk);
      return true;
    });
    let release: () => void = () => undefined;
    const stop = new Promise<void>((resolve) => (release = resolve));
    let listening: (url: string) => void = () => undefined;
    const printed = new Promise<string>((resolve) => (listening = resolve));
    const poll = setInterval(() => {
      const url = /^ {2}url: {4}(\S+)$/m.exec(stdout)?.[1];
      if (url) listening(url);
    }, 20);
    const exit = runPostgresServerCli([], () => stop);
    try {
      const url = await Promise.race([printed, exit.then(() => Promise.reject(new Error(stdout)))]);
      const dataDir = /^ {2}data: {3}(\S+) /m.exec(stdout)?.[1] as string;
      expect(stdout).toContain(`"roundtrip/postgres": { "url": "${url}" }`);
      const client = new Client({ connectionString: url });
      await client.connect();
      try {
        await client.query('CREATE TABLE lead_scores (ext_id text PRIMARY KEY, score integer)');
        await client.query(`INSERT INTO lead_scores VALUES ('EXT-1', 45)`);
        const { rows } = await client.query('SELECT ext_id, score FROM lead_scores');
        expect(rows).toEqual([{ ext_id: 'EXT-1', score: 45 }]);
        // The throwaway server's max_wal_size (emulators/postgres/embedded.ts), not initdb's 1GB.
        const { rows: wal } = await client.query<{ max_wal_size: string }>('SHOW max_wal_size');
        expect(wal).toEqual([{ max_wal_size: '2GB' }]);
        const { rows: warning } = await client.query<{ checkpoint_warning: string }>(
          'SHOW checkpoint_warning',
        );
        expect(warning).toEqual([{ checkpoint_warning: '0' }]);
      } finally {
        await client.end();
      }
      const postmaster = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      expect(isAlive(postmaster)).toBe(true);

      release();
      expect(await exit).toBe(0);
      expect(isAlive(postmaster)).toBe(false);
      expect(existsSync(dataDir)).toBe(false);
      expect(stdout).toContain('PostgreSQL stopped, its data deleted.');
    } finally {
      clearInterval(poll);
      release();
      await exit.catch(() => undefined);
      out.mockRestore();
    }
  });

  it('stops its server and deletes its data on a terminal’s Ctrl-C, whatever copies of the signal follow', async () => {
    // The installed command, in a process group of its own as a terminal's foreground job is.
    const child = spawn(process.execPath, [BIN, 'emulate', 'postgres'], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stdout = { text: '' };
    const stderr = { text: '' };
    child.stdout.on('data', (chunk: Buffer) => (stdout.text += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr.text += chunk.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal })),
    );
    let postmaster = 0;
    try {
      await untilPrinted(stdout, child.stdout, 'Press Ctrl-C to stop.', exited);
      const dataDir = /^ {2}data: {3}(\S+) /m.exec(stdout.text)?.[1] as string;
      // The CLI process (bin/roundtrip.cjs's child) names itself in its server's folder.
      const cli = Number(readFileSync(path.join(dataDir, '..', 'owner.pid'), 'utf8').trim());
      postmaster = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      expect(isAlive(postmaster)).toBe(true);
      // The server held still, as a loaded machine may leave it unscheduled: the stop is still
      // under way when the copies of the signal come, however quick it would be here.
      process.kill(postmaster, 'SIGSTOP');
      // A terminal's Ctrl-C: SIGINT to the whole group (bin/roundtrip.cjs, the CLI and the server),
      // and bin/roundtrip.cjs forwards the one it got to the CLI.
      process.kill(-(child.pid as number), 'SIGINT');
      await untilPrinted(stdout, child.stdout, 'SIGINT: stopping PostgreSQL', exited);
      // A copy that comes once the stop has begun (npm's forward, for `npx roundtrip`, or one that
      // a loaded machine held back) is not a reason to end the process in the middle of it.
      process.kill(cli, 'SIGINT');
      process.kill(postmaster, 'SIGCONT');
      expect(await exited).toEqual({ code: 0, signal: null });
      expect(stdout.text).toContain('PostgreSQL stopped, its data deleted.');
      expect(stderr.text).toBe('');
      expect(isAlive(postmaster)).toBe(false);
      expect(existsSync(path.dirname(dataDir))).toBe(false);
    } finally {
      if (postmaster && isAlive(postmaster)) {
        process.kill(postmaster, 'SIGCONT');
        process.kill(postmaster, 'SIGINT');
      }
      if (child.exitCode === null && child.signalCode === null)
        process.kill(-(child.pid as number), 'SIGKILL');
    }
  });

  it('refuses a port that is not one as bad input', async () => {
    let stderr = '';
    const err = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      stderr += String(chunk);
      return true;
    });
    try {
      expect(await main(['emulate', 'postgres', '--port', '70000'])).toBe(2);
      expect(stderr).toContain('--port expects a whole number from 0 to 65535, got "70000"');
      // A number past the largest safe integer is named by the range of a port too.
      expect(await main(['emulate', 'postgres', '--port', '99999999999999999999'])).toBe(2);
      expect(stderr).toContain('--port expects a whole number from 0 to 65535, got "99999999999999999999"');
      // A negative port is named with its value, as given after the flag and as --port=-1.
      expect(await main(['emulate', 'postgres', '--port', '-1'])).toBe(2);
      expect(stderr).toContain(
        '--port expects a value, and "-1" after it reads as an option: to give it as the value, write --port=-1',
      );
      expect(await main(['emulate', 'postgres', '--port=-1'])).toBe(2);
      expect(stderr).toContain('--port expects a whole number ≥ 0, got "-1"');
      // An empty --port= is not 0 (a free port), nor 0x10 port 16: bad input by the flag.
      expect(await main(['emulate', 'postgres', '--port='])).toBe(2);
      expect(stderr).toContain('--port expects a whole number ≥ 0, got ""');
      expect(await main(['emulate', 'postgres', '--port', '0x10'])).toBe(2);
      expect(stderr).toContain('--port expects a whole number ≥ 0, got "0x10"');
    } finally {
      err.mockRestore();
    }
  });
});
