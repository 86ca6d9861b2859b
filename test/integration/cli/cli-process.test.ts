/**
 * The installed `roundtrip` bin in a child process, as a data engineer meets it: `--help`, failures
 * as one sentence (no stack trace) with the right exit code, and Ctrl-C during `roundtrip demo`
 * stopping the embedded PostgreSQL it started.
 *
 * A child process costs about a second (tsx and the CLI's modules loading), two to three on a
 * loaded machine, so each behaviour goes through the bin once, with one command; the same check
 * for every other command that has it runs in-process through `main()` (test/support/cli.ts),
 * which is what the bin runs: the sentence, the stack left out and the exit code are main()'s.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isAlive } from '../../../emulators/postgres/embedded';
import { cli } from '../../support/cli';

const BIN = path.resolve(__dirname, '../../../bin/roundtrip.cjs');
const EXAMPLE_CONFIG = path.resolve(__dirname, '../../../examples/lead-scoring/roundtrip.config.ts');

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
  delete env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED;
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

/**
 * `roundtrip <argv>` in-process through main(), with `env` as the process's environment for the
 * call (the secrets are read from it), then the environment as it was.
 */
async function inProcess(argv: string[], env: NodeJS.ProcessEnv = cleanEnv()): Promise<Outcome> {
  const saved = { ...process.env };
  const set = (to: NodeJS.ProcessEnv): void => {
    for (const name of Object.keys(process.env)) if (!(name in to)) delete process.env[name];
    Object.assign(process.env, to);
  };
  set(env);
  try {
    const result = await cli(argv);
    return { ...result, signal: null };
  } finally {
    set(saved);
  }
}

/** The bin for the first command of a list (index 0), main() in-process for the others. */
function eachWay(index: number): typeof roundtrip {
  return index === 0 ? roundtrip : inProcess;
}

const STACK_LINE = /^\s+at .+/m;

function parentOf(pid: number): number | undefined {
  try {
    // /proc/<pid>/stat: "pid (comm) state ppid …"; comm may hold spaces, so split after ")".
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

describe('the roundtrip bin', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'roundtrip-cli-process-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('prints each command’s `--help` on stdout and exits 0', async () => {
    const commands = [
      'plan',
      'demo',
      'run',
      'validate',
      'status',
      'forget',
      'rename-task',
      'start',
      'emulate',
    ];
    for (const [index, command] of commands.entries()) {
      const result = await eachWay(index)([command, '--help']);
      expect(result.stderr).toBe('');
      expect(result.stdout).toMatch(new RegExp(`^usage: roundtrip ${command} `));
      expect(result.code).toBe(0);
    }
  });

  it('describes a command with `roundtrip help <command>` and -h', async () => {
    const help = await inProcess(['help', 'plan']);
    expect(help.stdout).toMatch(/^usage: roundtrip plan /);
    expect(help.stdout).toContain('--tasks a,b');
    expect(help.code).toBe(0);
    const short = await roundtrip(['status', '-h']);
    expect(short.stdout).toMatch(/^usage: roundtrip status /);
    expect(short.code).toBe(0);
  });

  it('names a missing secret in one sentence, without a stack trace, and exits 2 (bad input), in every command that reads it', async () => {
    for (const [index, command] of [
      ['run'],
      ['plan'],
      ['status'],
      ['errors'],
      ['forget', '--task', 'Lead'],
      ['resolve', '--task', 'Lead', '--key', 'k1', '--not-inserted'],
    ].entries()) {
      const result = await eachWay(index)([...command, '--config', EXAMPLE_CONFIG]);
      expect(result.stderr).toContain(
        `roundtrip ${command[0]}: Secret "roundtrip/postgres" not found: set the environment variable ROUNDTRIP_SECRET_ROUNDTRIP_POSTGRES`,
      );
      expect(result.stderr).not.toMatch(STACK_LINE);
      // Not followed by the command's usage: the options were right.
      expect(result.stderr).not.toContain('usage:');
      expect(result.code).toBe(2);
    }
  });

  it('exits 2 for a secrets file that is not JSON, a database secret of neither shape, a Salesforce secret a run needs missing, and a --database-url without a user', async () => {
    const notJson = path.join(dir, 'not-json.json');
    await writeFile(notJson, '{"roundtrip/postgres": ');
    const neither = {
      ...cleanEnv(),
      ROUNDTRIP_SECRET_ROUNDTRIP_POSTGRES: JSON.stringify({ URL: 'postgres://u:p@h/db' }),
    };
    const noSalesforce = {
      ...cleanEnv(),
      ROUNDTRIP_SECRET_ROUNDTRIP_POSTGRES: JSON.stringify({ url: 'postgres://u:p@127.0.0.1:1/db' }),
    };
    for (const [index, command] of ['status', 'run', 'plan', 'errors'].entries()) {
      const file = await eachWay(index)([command, '--config', EXAMPLE_CONFIG, '--secrets', notJson]);
      expect(file.stderr).toContain(
        `roundtrip ${command}: The local secrets file ${notJson} is not valid JSON`,
      );
      expect(file.code).toBe(2);
      const shape = await eachWay(index)([command, '--config', EXAMPLE_CONFIG], neither);
      expect(shape.stderr).toContain(
        `roundtrip ${command}: PostgreSQL secret: expected { "url": "postgres://user:password@host:port/db" } or the RDS shape`,
      );
      expect(shape.stderr).toContain('(the secret roundtrip/postgres (postgres.secret of the config))');
      expect(shape.stderr).not.toContain('u:p@');
      expect(shape.code).toBe(2);
    }
    // A run reads the Salesforce secret before anything runs, as it reads the database's: nothing
    // is recorded of a run that could not start for its input.
    for (const [index, command] of ['run', 'plan'].entries()) {
      const result = await eachWay(index)([command, '--config', EXAMPLE_CONFIG], noSalesforce);
      expect(result.stderr).toContain(`roundtrip ${command}: Secret "roundtrip/salesforce" not found`);
      expect(result.code).toBe(2);
    }
    const url = await inProcess([
      'status',
      '--config',
      EXAMPLE_CONFIG,
      '--database-url',
      'postgres://127.0.0.1/db',
    ]);
    expect(url.stderr).toContain(
      'roundtrip status: PostgreSQL URL postgres://127.0.0.1/db: no user name (--database-url)',
    );
    expect(url.code).toBe(2);
  });

  it('reports a run whose database is unreachable as never started, with no run id, naming the secret, exit 1', async () => {
    const env = {
      ...cleanEnv(),
      ROUNDTRIP_SECRET_ROUNDTRIP_POSTGRES: JSON.stringify({ url: 'postgres://u:p@127.0.0.1:1/db' }),
      // Read before the run starts (a missing one is bad input); never used, the database failing first.
      ROUNDTRIP_SECRET_ROUNDTRIP_SALESFORCE: JSON.stringify({ username: 'u', password: 'p' }),
    };
    const run = await roundtrip(['run', '--config', EXAMPLE_CONFIG, '--json'], env);
    expect(run.stderr).toContain('ECONNREFUSED 127.0.0.1:1');
    expect(run.stderr).not.toMatch(STACK_LINE);
    // Nor the AWS SDK's notice that its releases after January 2027 need Node 22 (on Node 20).
    expect(run.stderr).not.toContain('NodeVersionSupportWarning');
    // Nothing was recorded: no id that status or errors would then call unknown.
    expect(run.stderr).toMatch(/^the run never started: PostgreSQL connecting \(u@127\.0\.0\.1:1\/db\): /m);
    expect(run.stderr).toContain(
      'nothing was recorded: its PostgreSQL could not be used, so roundtrip.runs has no row of it and roundtrip status and errors cannot show it. Check the database that the secret roundtrip/postgres (postgres.secret of the config) names',
    );
    expect(run.stderr).not.toMatch(/run \d{8}T\d{6}Z-\w+/);
    const lines = run.stdout.trim().split('\n');
    expect(JSON.parse(lines[lines.length - 1] as string)).toEqual({
      runId: null,
      status: 'failed',
      tasks: [],
    });
    expect(run.code).toBe(1);
    const text = await inProcess(['run', '--config', EXAMPLE_CONFIG], env);
    expect(text.stdout.trim()).toBe(
      'no run recorded: the run never started, as its PostgreSQL could not be used (why: above)',
    );
    expect(text.code).toBe(1);
    // A dry run the same: it does not then read its plan sample from the database it could not use.
    const plan = await inProcess(['plan', '--config', EXAMPLE_CONFIG], env);
    expect(plan.stdout.trim()).toBe(
      'no run recorded: the run never started, as its PostgreSQL could not be used (why: above)',
    );
    expect(plan.stderr).not.toMatch(/^roundtrip plan: PostgreSQL/m);
    expect(plan.code).toBe(1);

    const status = await inProcess(['status', '--config', EXAMPLE_CONFIG], env);
    // Named as run names it: PostgreSQL, the address, and what to check.
    expect(status.stderr).toContain(
      'roundtrip status: PostgreSQL connecting (u@127.0.0.1:1/db): network error (ECONNREFUSED): connect ECONNREFUSED 127.0.0.1:1 (nothing accepts connections there: is the server running, on that host and port?)',
    );
    expect(status.stderr).not.toMatch(STACK_LINE);
    expect(status.code).toBe(1);
  });

  it('prints the stack of a failure with -v', async () => {
    const env = {
      ...cleanEnv(),
      ROUNDTRIP_SECRET_ROUNDTRIP_POSTGRES: JSON.stringify({ url: 'postgres://u:p@127.0.0.1:1/db' }),
    };
    const result = await roundtrip(['status', '--config', EXAMPLE_CONFIG, '-v'], env);
    expect(result.stderr).toContain('ECONNREFUSED 127.0.0.1:1');
    expect(result.stderr).toMatch(STACK_LINE);
    expect(result.code).toBe(1);
  });

  it('refuses a config with mistakes by path, without the whole usage text, exit 2', async () => {
    const file = path.join(dir, 'bad.json');
    await writeFile(
      file,
      JSON.stringify({
        name: 'lead-scoring',
        salesforce: { secret: 'roundtrip/salesforce', apiVersion: '62.0' },
        postgres: { secret: 'roundtrip/postgres' },
        writeback: [
          {
            to: 'salesforce',
            object: 'Lead',
            from: 'lead_reverse',
            mode: 'merge',
            key: 'Id',
            fields: { Foo: 3 },
          },
        ],
      }),
    );
    const result = await roundtrip(['validate', '--config', file]);
    expect(result.stderr).toContain(`roundtrip validate: Invalid pipeline config ${file} (2 problems):`);
    expect(result.stderr).toContain(
      'writeback[0].mode: expected "insert" | "update" | "upsert", got "merge"',
    );
    expect(result.stderr).toContain('writeback[0].fields.Foo: ');
    expect(result.stderr).not.toContain('commands:');
    expect(result.code).toBe(2);
  });

  it('refuses a --database-url that is not a PostgreSQL URL as bad input, exit 2', async () => {
    const result = await roundtrip([
      'status',
      '--config',
      EXAMPLE_CONFIG,
      '--database-url',
      'localhost:5432',
    ]);
    expect(result.stderr).toContain(
      'roundtrip status: --database-url expects a URL such as postgres://user:password@127.0.0.1:5432/db, got "localhost:5432"',
    );
    expect(result.stderr).not.toMatch(STACK_LINE);
    expect(result.code).toBe(2);
    // Another database's URL, or one whose scheme lost its colon, is shown without its password.
    for (const [url, shown] of [
      ['mysql://app:Canary-Db-Pw-1@db.example.com/rt', 'mysql://app:***@db.example.com/rt'],
      ['postgres//app:Canary-Db-Pw-1@db.example.com/rt', '<unparseable connection URL>'],
    ]) {
      const other = await inProcess(['errors', '--config', EXAMPLE_CONFIG, '--database-url', url!]);
      expect(other.stderr).toContain(
        `roundtrip errors: --database-url expects a URL such as postgres://user:password@127.0.0.1:5432/db, got "${shown}"`,
      );
      expect(other.stderr + other.stdout).not.toContain('Canary-Db-Pw-1');
      expect(other.code).toBe(2);
    }
  });

  it('refuses --tasks naming no task of the pipeline before anything runs, exit 2', async () => {
    for (const [index, command] of ['run', 'plan'].entries()) {
      const unknown = await eachWay(index)([
        command,
        '--config',
        EXAMPLE_CONFIG,
        '--tasks',
        'Lead,lead-update',
      ]);
      expect(unknown.stderr).toContain(
        `roundtrip ${command}: Unknown task "lead-update" (did you mean "Lead-update"?) in --tasks; pipeline lead-scoring has: "Lead", "athena_customers", "Lead-update"`,
      );
      // Refused before the secrets are read: no run was started (and none recorded).
      expect(unknown.stderr).not.toContain('Secret');
      expect(unknown.code).toBe(2);
    }
    const empty = await inProcess(['run', '--config', EXAMPLE_CONFIG, '--tasks', ',']);
    expect(empty.stderr).toContain('roundtrip run: --tasks expects task names separated by commas, got ","');
    expect(empty.code).toBe(2);
  });

  it('does not call a failed demo run "nothing needed sending", exit 1', async () => {
    const env = { ...cleanEnv(), DATABASE_URL: 'postgres://u:p@127.0.0.1:1/db' };
    const result = await roundtrip(['demo', '--leads', '50', '--customers', '10'], env);
    expect(result.stderr).toContain('ECONNREFUSED 127.0.0.1:1');
    expect(result.stdout).not.toContain('Nothing needed sending');
    expect(result.stdout).toContain('Nothing was written: the run never started (its error is above).');
    expect(result.stderr).toContain('Check the database that DATABASE_URL names');
    expect(result.stdout).not.toMatch(/run \d{8}T\d{6}Z-\w+/);
    expect(result.code).toBe(1);
  });

  it('ends as usual, without an EPIPE stack trace, when its reader has closed the pipe (| head)', async () => {
    // The read end of stdout is closed before the CLI, still loading, writes its usage.
    const child = spawn(process.execPath, [BIN, '--help'], {
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });

  it('names a bad option once and shows that command’s usage, exit 2', async () => {
    const result = await roundtrip(['status', '--bogus']);
    expect(result.stderr).toMatch(/^roundtrip status: Unknown option '--bogus'/);
    expect(result.stderr).toContain('usage: roundtrip status ');
    expect(result.code).toBe(2);
  });

  it('stops the demo’s embedded PostgreSQL when the demo is interrupted', async () => {
    const before = new Set(readdirSync(os.tmpdir()).filter((n) => n.startsWith('roundtrip-pg-')));
    // Enough leads that their extract (a Bulk query job polled every 250 ms, then a COPY of the
    // CSV) is still going when the signal comes: stopped there, rather than at the collect after
    // the transform, plan and push of as many records, the test costs a quarter of the time.
    const child = spawn(process.execPath, [BIN, 'demo', '--leads', '20000', '--customers', '5000'], {
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal })),
    );
    child.stdout.resume();
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        // Mid-run: the steps hold PostgreSQL connections that the shutdown will drop.
        if (stderr.includes('… Lead extract')) resolve();
      });
      void exited.then(() => reject(new Error(`the demo ended before running:\n${stderr}`)));
    });
    // The server this demo started: a temp dir whose owner is the bin's child process.
    const mine = readdirSync(os.tmpdir())
      .filter((n) => n.startsWith('roundtrip-pg-') && !before.has(n))
      .map((n) => path.join(os.tmpdir(), n))
      .filter((base) => {
        try {
          const owner = Number(readFileSync(path.join(base, 'owner.pid'), 'utf8').trim());
          return parentOf(owner) === child.pid;
        } catch {
          return false;
        }
      });
    expect(mine).toHaveLength(1);
    const base = mine[0] as string;
    const postmaster = Number(readFileSync(path.join(base, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
    expect(isAlive(postmaster)).toBe(true);

    // A supervisor's SIGINT to the command alone (a terminal's Ctrl-C reaches the server too).
    child.kill('SIGINT');
    const end = await exited;
    expect(end.signal).toBe('SIGINT');
    expect(stderr).toContain('SIGINT: stopping');
    expect(stderr).not.toMatch(STACK_LINE);
    // The steps still going fail as the servers go away: expected, so none of it is printed as the
    // run's failure (it printed '✗ … collect: PostgreSQL connecting …', a failed Report and more).
    const afterSignal = stderr.slice(stderr.indexOf('SIGINT: stopping'));
    expect(afterSignal).not.toMatch(/✗|failed|Cannot use a pool/);
    try {
      expect(isAlive(postmaster)).toBe(false);
      expect(existsSync(base)).toBe(false);
    } finally {
      if (isAlive(postmaster)) process.kill(postmaster, 'SIGINT');
    }
  });

  it('runs `npm start` with a launcher that waits for a CLI slow to take Ctrl-C, not one that kills it', async () => {
    // package.json's start script with a quick command for `demo`, which stops on Ctrl-C as the
    // demo does. tsx's own CLI, which it ran, SIGKILLed its child when the child had not taken a
    // signal within 60 ms, as a loaded machine's may not: the demo died before its cleanup.
    const root = path.resolve(__dirname, '../../..');
    const { scripts } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    const [command = '', ...args] = (scripts.start ?? '').replace(/ demo$/, ' emulate salesforce').split(' ');
    expect(args.at(-2)).toBe('emulate');
    const child = spawn(command, args, {
      cwd: root,
      detached: true,
      env: { ...cleanEnv(), PATH: `${path.join(root, 'node_modules', '.bin')}:${process.env.PATH ?? ''}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal })),
    );
    let cli = 0;
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (chunk: Buffer) => {
          stdout += chunk.toString();
          if (stdout.includes('Press Ctrl-C to stop.')) resolve();
        });
        void exited.then(() => reject(new Error(`the command ended before serving:\n${stdout}${stderr}`)));
      });
      // The CLI: the launcher's child, which prints what we read.
      cli = readdirSync('/proc')
        .map(Number)
        .find((pid) => Number.isInteger(pid) && parentOf(pid) === child.pid) as number;
      expect(cli).toEqual(expect.any(Number));
      // The CLI held still (as a loaded machine may leave it unscheduled) through a terminal's
      // Ctrl-C to the whole group and a second on: long enough for a launcher to give up on it.
      process.kill(cli, 'SIGSTOP');
      process.kill(-(child.pid as number), 'SIGINT');
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(isAlive(cli)).toBe(true);
      process.kill(cli, 'SIGCONT');
      expect(await exited).toEqual({ code: 0, signal: null });
      expect(stdout).toContain('Salesforce emulator stopped.');
    } finally {
      if (cli && isAlive(cli)) process.kill(cli, 'SIGCONT');
      if (child.exitCode === null && child.signalCode === null)
        process.kill(-(child.pid as number), 'SIGKILL');
    }
  });
});
