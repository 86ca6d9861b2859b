/**
 * A server whose owning process was SIGKILLed keeps running (PostgreSQL has no parent-death
 * signal); the next start sweeps it: stopped, its temp dir removed. Live owners, dirs without an
 * owner file and pids that are not that server's postmaster are left alone.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, existsSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Client } from 'pg';
import { isAlive, sweepOrphanedServers } from '../../../emulators/postgres/embedded';
import { serverUrl } from '../../support/database';

/** Starts an embedded server in a child process and answers its data dir and the child. */
async function serverInChild(): Promise<{ dataDir: string; child: ReturnType<typeof spawn> }> {
  const code = `require('./emulators/postgres/embedded').startEmbeddedPostgres().then((s) => {
    console.log(JSON.stringify({ dataDir: s.dataDir }));
    setInterval(() => undefined, 1 << 30);
  });`;
  const child = spawn(process.execPath, ['--import', 'tsx', '-e', code], {
    cwd: path.resolve(__dirname, '../../..'),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) {
    if (line.startsWith('{')) return { dataDir: (JSON.parse(line) as { dataDir: string }).dataDir, child };
  }
  throw new Error('the child exited before its server started');
}

describe('sweepOrphanedServers', () => {
  it('stops and removes the server of a process that was SIGKILLed, and only that', async () => {
    const { dataDir, child } = await serverInChild();
    const base = path.dirname(dataDir);
    const postmaster = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    expect(isAlive(postmaster)).toBe(true); // the orphan

    // Beside it: a dir without an owner file, and one whose owner is gone but whose
    // postmaster.pid names a process that is not its postgres (this one).
    const root = path.dirname(base);
    const ownerless = mkdtempSync(path.join(root, 'roundtrip-pg-'));
    const impostor = mkdtempSync(path.join(root, 'roundtrip-pg-'));
    mkdirSync(path.join(impostor, 'data'));
    writeFileSync(path.join(impostor, 'owner.pid'), '2147483646\n');
    writeFileSync(path.join(impostor, 'data', 'postmaster.pid'), `${process.pid}\n`);
    try {
      const swept = await sweepOrphanedServers(root);

      expect(swept.stopped).toContain(postmaster);
      expect(swept.stopped).not.toContain(process.pid);
      expect(swept.removed).toContain(base);
      expect(swept.removed).not.toContain(ownerless);
      expect(swept.removed).not.toContain(impostor);
      expect(isAlive(postmaster)).toBe(false);
      expect(existsSync(base)).toBe(false);
      expect(existsSync(ownerless)).toBe(true);
      expect(existsSync(impostor)).toBe(true);
    } finally {
      rmSync(ownerless, { recursive: true, force: true });
      rmSync(impostor, { recursive: true, force: true });
      if (isAlive(postmaster)) process.kill(postmaster, 'SIGKILL');
    }
  });

  it('leaves the servers of live processes alone: this run’s own server still answers', async () => {
    await sweepOrphanedServers(tmpdir());
    const client = new Client({ connectionString: serverUrl() });
    await client.connect();
    try {
      const { rows } = await client.query<{ one: number }>('SELECT 1 AS one');
      expect(rows).toEqual([{ one: 1 }]);
    } finally {
      await client.end();
    }
  });
});
