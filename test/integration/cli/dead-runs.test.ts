/**
 * Runs killed hard: `roundtrip run` in a child process group killed with SIGKILL (as a crash, or a
 * supervisor, would) mid-push, against the real PostgreSQL and the Salesforce emulator. The run
 * records its machine and process; the next command on this machine (a run, status, resolve) finds
 * the process gone and closes the run as failed, so that what it sent is collected and looked up at
 * once instead of being held back for 13 hours. `roundtrip status --end-run` ends a run by hand,
 * never one whose process still runs here, nor a run of the deployed state machine; the messages
 * of keys held back for a run still recorded as running say so, and how to end it.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { getIngestJob, isFinalIngestState } from '../../../lambdas/connectors/salesforce/writes';
import { planWriteback } from '../../../lambdas/core/writeback';
import { cli, exitOf } from '../../support/cli';
import { Client } from 'pg';
import {
  goneProcessSessionsEnded,
  isProcessRunning,
  localProcesses,
  sessionNameOf,
} from '../../../bin/local/process';
import { WRITEBACK_LOCK_CLASS } from '../../../lambdas/core/writeback/lock';
import {
  errorsOf,
  planThenCrashInPush,
  runFigures,
  startWritebackEnv,
  type WritebackEnv,
} from '../writeback/support';

const BIN = path.resolve(__dirname, '../../../bin/roundtrip.cjs');

/** Insert of Lead keyed by External_Id__c, through a Bulk job from 5 records. */
const BULK = {
  name: 'Lead-bulk',
  to: 'salesforce' as const,
  object: 'Lead',
  from: 'bulk_src',
  mode: 'insert' as const,
  key: 'External_Id__c',
  keyColumn: 'ext',
  bulkThreshold: 5,
  fields: { LastName: 'last_name', Company: 'company' },
};

/** Insert of Lead without an external-ID key (Collections calls): nothing can look its records up. */
const KEYLESS = {
  name: 'Lead-keyless',
  to: 'salesforce' as const,
  object: 'Lead',
  from: 'keyless_src',
  mode: 'insert' as const,
  keyColumn: 'ext',
  fields: { LastName: 'last_name', Company: 'company' },
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('a run killed hard (SIGKILL), and the runs it leaves running', () => {
  let env: WritebackEnv;
  let dir: string;
  let connection: string[];
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    env = await startWritebackEnv();
    for (const table of ['bulk_src', 'keyless_src']) {
      await env.pool.query(`CREATE TABLE ${table} (ext text, last_name text, company text)`);
    }
    dir = await mkdtemp(path.join(os.tmpdir(), 'roundtrip-dead-runs-'));
    const config = await env.writeConfigFile(path.join(dir, 'roundtrip.config.json'), {
      writeback: [BULK, KEYLESS],
    });
    const secrets = path.join(dir, 'secrets.json');
    await writeFile(
      secrets,
      JSON.stringify({
        'roundtrip/salesforce': env.salesforceSecret,
        'roundtrip/postgres': { url: env.db.url },
      }),
    );
    connection = ['--config', config, '--secrets', secrets];
  });
  afterEach(() => env.sf.faults.clear());
  afterAll(async () => {
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null && child.pid) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    }
    await env?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function source(table: string, prefix: string, n: number): Promise<void> {
    await env.pool.query(`DELETE FROM ${table}`);
    await env.pool.query(
      `INSERT INTO ${table} SELECT $1 || '-' || i, $1 || ' ' || i, 'Initech' FROM generate_series(1, $2::int) AS i`,
      [prefix, n],
    );
  }

  /** The live Leads whose last name starts with `${prefix} `, by last name. */
  function leadsNamed(prefix: string): Map<string, number> {
    const byName = new Map<string, number>();
    for (const r of env.sf.store.all('Lead')) {
      const name = String(r.LastName);
      if (r.IsDeleted !== true && name.startsWith(`${prefix} `))
        byName.set(name, (byName.get(name) ?? 0) + 1);
    }
    return byName;
  }

  /** `roundtrip run --tasks task` in a process group of its own (the bin and the CLI it starts). */
  function startRun(task: string): { child: ChildProcess; exited: Promise<NodeJS.Signals | null> } {
    const child = spawn(process.execPath, [BIN, 'run', ...connection, '--tasks', task], {
      stdio: 'ignore',
      detached: true,
    });
    children.push(child);
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.once('exit', (_code, signal) => resolve(signal)),
    );
    return { child, exited };
  }

  /** Polls until `sql` (with `params`) answers a row on `db` (the test's pool unless given), and answers it. */
  async function waitFor<T>(
    sql: string,
    params: unknown[],
    what: string,
    db: Pick<Client, 'query'> = env.pool,
  ): Promise<T> {
    const until = Date.now() + 60_000;
    for (;;) {
      const { rows } = await db.query(sql, params);
      if (rows[0]) return rows[0] as T;
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
      await sleep(25);
    }
  }

  /** The run the child recorded (the latest running run with a process), and its pid. */
  function recordedRun(): Promise<{ run_id: string; pid: number; host: string }> {
    return waitFor(
      `SELECT run_id, pid, host FROM roundtrip.runs WHERE status = 'running' AND pid IS NOT NULL
        ORDER BY started_at DESC LIMIT 1`,
      [],
      'the run to be recorded',
    );
  }

  /** Kills the run's process group, and waits until the CLI's process (`pid`, the bin's child) is gone too. */
  async function killGroup(
    child: ChildProcess,
    exited: Promise<NodeJS.Signals | null>,
    pid: number,
  ): Promise<void> {
    process.kill(-(child.pid as number), 'SIGKILL');
    expect(await exited).toBe('SIGKILL');
    while (isProcessRunning(pid)) await sleep(10);
  }

  async function runRow(runId: string): Promise<{ status: string; error: string | null }> {
    const { rows } = await env.pool.query<{ status: string; error: string | null }>(
      `SELECT status, error FROM roundtrip.runs WHERE run_id = $1`,
      [runId],
    );
    return rows[0] as { status: string; error: string | null };
  }

  it('killed during a Bulk push: the next run closes it ("its process is gone"), collects its finished job and inserts nothing twice', async () => {
    await source('bulk_src', 'bk', 6);
    // The job runs for a while in Salesforce, so that the push is still waiting on it when killed.
    env.sf.faults.set({ bulkJobDelayMs: 1_500 });
    const { child, exited } = startRun('Lead-bulk');
    const run = await recordedRun();
    const job = await waitFor<{ job_id: string }>(
      `SELECT job_id FROM roundtrip.writeback_jobs WHERE run_id = $1 AND state = 'UploadComplete'`,
      [run.run_id],
      'the Bulk job to be uploaded and closed',
    );
    await killGroup(child, exited, run.pid);
    expect(await runRow(run.run_id)).toEqual({ status: 'running', error: null });
    while (!isFinalIngestState((await getIngestJob(env.connector, job.job_id)).state)) await sleep(50);
    expect(leadsNamed('bk').size).toBe(6);

    // A plan while the run is still recorded as running (a plan of another machine, which cannot
    // see its process) holds the keys back, and says why: the run, not Salesforce.
    const deps = env.deps({ writeback: [BULK, KEYLESS] });
    const other = await env.newRun();
    expect(await planWriteback(deps, { runId: other, task: 'Lead-bulk' })).toMatchObject({ heldBack: 6 });
    const held = (await errorsOf(env, other))[0]?.message;
    expect(held).toBe(
      `key bk-1 was sent for insert by run ${run.run_id} in Bulk job ${job.job_id}, and that run is still recorded as running (roundtrip status): ` +
        `no plan collects the job's results before the run has ended, finished in Salesforce or not. Not inserted by this run. Once the run ` +
        `has ended (if its process is gone, roundtrip status --end-run ${run.run_id} ends it), the next plan collects them once Salesforce says the job is finished`,
    );
    await env.pool.query(`UPDATE roundtrip.runs SET status = 'failed' WHERE run_id = $1`, [other]);
    // So does resolve --collect-jobs, seeing the run as one of another machine (its process cannot
    // be seen from there): nothing to collect while the run is recorded as running, and why.
    await env.pool.query(`UPDATE roundtrip.runs SET host_id = 'elsewhere' WHERE run_id = $1`, [run.run_id]);
    const collect = await cli(['resolve', ...connection, '--task', 'Lead-bulk', '--collect-jobs']);
    expect(collect.stdout).toContain(
      `  Bulk job ${job.job_id} of run ${run.run_id} is not collected, as that run is still recorded as running (pid ${run.pid} on ${run.host}): no later plan collects or looks up what it sent until it has ended. If its process is gone`,
    );
    await env.pool.query(`UPDATE roundtrip.runs SET host_id = $2 WHERE run_id = $1`, [
      run.run_id,
      localProcesses()?.self.hostId,
    ]);

    // The next run on this machine finds the process gone and closes the run first.
    const next = await cli(['run', ...connection, '--tasks', 'Lead-bulk', '--json']);
    expect(next.stderr).toContain(
      `run ${run.run_id} was still recorded as running, but its process (pid ${run.pid} on this machine) is gone: closed as failed`,
    );
    expect(exitOf(next)).toBe(0);
    const closed = await runRow(run.run_id);
    expect(closed.status).toBe('failed');
    expect(closed.error).toMatch(
      new RegExp(
        `^Its process is gone: pid ${run.pid} on ${run.host} no longer runs .*; closed as failed by roundtrip run \\(run \\S+\\)$`,
      ),
    );
    const nextRunId = (JSON.parse(next.stdout.trim().split('\n').pop() as string) as { runId: string }).runId;
    expect(await runFigures(env, nextRunId, 'Lead-bulk')).toMatchObject({ heldBack: 0, changed: 0 });
    // The killed run never reported: its figures were counted from its ledger when it was closed
    // (6 sent, no outcome), and again once the plan collected its job: it wrote the 6 records,
    // which roundtrip status says of it (not of the run that collected them).
    expect(await runFigures(env, run.run_id, 'Lead-bulk')).toMatchObject({
      written: 6,
      failed: 0,
      outcomeUnknown: 0,
      outcomesResolvedBy: nextRunId,
    });
    const listed = JSON.parse((await cli(['status', ...connection, '--json'])).stdout) as {
      runs: { runId: string; written: number }[];
    };
    expect(listed.runs.filter((r) => [run.run_id, nextRunId].includes(r.runId))).toEqual([
      expect.objectContaining({ runId: nextRunId, written: 0 }),
      expect.objectContaining({ runId: run.run_id, written: 6 }),
    ]);
    // The job's records were recorded from its results: each Lead once, none inserted again.
    expect([...leadsNamed('bk').values()]).toEqual([1, 1, 1, 1, 1, 1]);
    const { rows } = await env.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM roundtrip.sync_state WHERE task = 'Lead-bulk' AND salesforce_id IS NOT NULL`,
    );
    expect(rows[0]?.n).toBe(6);
  });

  it('killed during a keyless Collections push: resolve closes it and records the key, instead of refusing "still running"', async () => {
    await source('keyless_src', 'kl', 3);
    // Its write waits a minute, so that the run is killed while its call is out, however loaded
    // the machine (every call held 500 ms left a loaded machine's run time to finish first).
    env.sf.faults.set({ writeLatencyMs: 60_000 });
    const { child, exited } = startRun('Lead-keyless');
    const run = await recordedRun();
    await waitFor(
      `SELECT 1 FROM roundtrip.writeback_plans WHERE run_id = $1 AND status = 'sent'`,
      [run.run_id],
      'the keys to be sent',
    );
    await killGroup(child, exited, run.pid);
    env.sf.faults.clear();
    // Someone looked in Salesforce and found kl-1's record (made here for the test).
    const [found] = env.sf.store.create('Lead', [{ LastName: 'kl 1', Company: 'Initech' }]);
    const id = found?.id as string;
    // A killed process's sessions outlive it until PostgreSQL reads the closed connection (tens
    // of milliseconds here, more on a loaded machine), and the one holding the task's lock made
    // a command run right after the kill find the task busy. Made certain here: a session named
    // as the killed process's holds the lock for 1.5 s more (longer than resolve takes to reach
    // the lock, even on a loaded machine). resolve waits for it to end, and ends it past the
    // server's grace.
    const lingering = new Client({
      connectionString: env.db.url,
      application_name: sessionNameOf(run.pid, localProcesses()?.self.hostId),
    });
    // Ended by the server when a failed test stops it first.
    lingering.on('error', () => undefined);
    await lingering.connect();
    // Taken once the killed process's own session has let it go.
    await waitFor(
      'SELECT 1 FROM (SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok) AS t WHERE ok',
      [WRITEBACK_LOCK_CLASS, 'Lead-keyless'],
      'the killed run to let the task lock go',
      lingering,
    );
    const ended = sleep(1_500).then(() => lingering.end());

    const resolved = await cli([
      'resolve',
      ...connection,
      '--task',
      'Lead-keyless',
      '--key',
      'kl-1',
      '--inserted',
      id,
    ]);
    expect(resolved.stderr).toContain(
      `run ${run.run_id} was still recorded as running, but its process (pid ${run.pid} on this machine) is gone: closed as failed`,
    );
    // What it left that no plan can look up, and the command that records it, with the options
    // given to the command that says so.
    expect(resolved.stderr).toContain(
      `  task Lead-keyless: 3 keys were sent for insert by run ${run.run_id} with no recorded outcome (kl-1, kl-2, kl-3), and without an external-ID key no plan can look them up: every run holds them back until you find them in Salesforce and record them with roundtrip resolve --task Lead-keyless ${connection.join(' ')} --file outcomes.csv`,
    );
    expect(resolved.stderr).not.toContain('still running');
    expect(exitOf(resolved)).toBe(0);
    await ended;
    const { rows } = await env.pool.query<{ salesforce_id: string }>(
      `SELECT salesforce_id FROM roundtrip.sync_state WHERE task = 'Lead-keyless' AND key = 'kl-1'`,
    );
    expect(rows[0]?.salesforce_id).toBe(id);
    // Counted when closed (3 sent, no outcome), and again for the key recorded by hand.
    expect(await runFigures(env, run.run_id, 'Lead-keyless')).toMatchObject({
      written: 1,
      failed: 0,
      outcomeUnknown: 2,
      outcomesResolvedBy: 'roundtrip resolve',
    });
    // The two others, recorded from a file once their call is over: the run that sent them counts them.
    await env.pool.query(
      `UPDATE roundtrip.writeback_plans SET updated_at = updated_at - interval '1 hour' WHERE run_id = $1`,
      [run.run_id],
    );
    const [two] = env.sf.store.create('Lead', [{ LastName: 'kl 2', Company: 'Initech' }]);
    await writeFile(path.join(dir, 'kl.csv'), `key,salesforce_id\nkl-2,${two?.id as string}\nkl-3,\n`);
    const byFile = await cli([
      'resolve',
      ...connection,
      '--task',
      'Lead-keyless',
      '--file',
      path.join(dir, 'kl.csv'),
    ]);
    expect(byFile).toMatchObject({ code: 0, stderr: '' });
    expect(await runFigures(env, run.run_id, 'Lead-keyless')).toMatchObject({
      written: 2,
      failed: 1,
      outcomeUnknown: 0,
      outcomesResolvedBy: 'roundtrip resolve',
    });
  });

  it('Ctrl-C during a keyless Collections push names the keys to record by hand, and the command', async () => {
    await source('keyless_src', 'cc', 2);
    // Its write waits a minute: the Ctrl-C comes while it is out, however loaded the machine (every
    // call held 500 ms was once not enough). The command's cleanup closes the connection the push
    // still holds after a moment, rather than waiting for the write or out its 15 s grace.
    env.sf.faults.set({ writeLatencyMs: 60_000 });
    const child = spawn(process.execPath, [BIN, 'run', ...connection, '--tasks', 'Lead-keyless'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    children.push(child);
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const run = await recordedRun();
    await waitFor(
      `SELECT 1 FROM roundtrip.writeback_plans WHERE run_id = $1 AND status = 'sent'`,
      [run.run_id],
      'the keys to be sent',
    );
    // A supervisor's SIGINT to the command (a terminal's Ctrl-C reaches its whole group).
    child.kill('SIGINT');
    await exited;
    expect(stderr).toContain(`run ${run.run_id} recorded as failed (interrupted)`);
    expect(stderr).toContain(
      'closed 1 PostgreSQL connection a step still held (waiting on a call that had not answered)',
    );
    // Its figures counted from its ledger as it was marked: 2 sent, no outcome.
    expect(await runFigures(env, run.run_id, 'Lead-keyless')).toMatchObject({
      written: 0,
      failed: 0,
      outcomeUnknown: 2,
    });
    // The command carries the run's --config and --secrets.
    const printed = `roundtrip resolve --task Lead-keyless ${connection.join(' ')} --file outcomes.csv`;
    expect(stderr).toContain(
      `  task Lead-keyless: 2 keys were sent for insert by run ${run.run_id} with no recorded outcome (cc-1, cc-2), and without an external-ID key no plan can look them up: every run holds them back until you find them in Salesforce and record them with ${printed} (a line key,salesforce_id each, the Id empty for not inserted) or --key KEY --inserted ID\n`,
    );
    expect((await runRow(run.run_id)).status).toBe('failed');
    // Recorded as not inserted (the call was dropped as the run ended), so that later tests start clean.
    await env.pool.query(
      `UPDATE roundtrip.writeback_plans SET updated_at = updated_at - interval '1 hour' WHERE run_id = $1`,
      [run.run_id],
    );
    await writeFile(path.join(dir, 'cc.csv'), 'key,salesforce_id\ncc-1,\ncc-2,\n');
    // Pasted into a shell as printed (the file named as the one written), it records them.
    const { stdout: words } = await promisify(execFile)('sh', [
      '-c',
      `printf '%s\\n' ${printed.replace('outcomes.csv', path.join(dir, 'cc.csv')).replace(/^roundtrip /, '')}`,
    ]);
    const resolved = await cli(words.trimEnd().split('\n'));
    expect(resolved.stderr).toBe('');
    expect(exitOf(resolved)).toBe(0);
    expect(await runFigures(env, run.run_id, 'Lead-keyless')).toMatchObject({ outcomeUnknown: 0 });
  });

  it("waits for the sessions a gone process of this machine left in PostgreSQL, ends those the server keeps, and leaves a live process's alone", async () => {
    const hostId = localProcesses()?.self.hostId;
    const ended = spawn(process.execPath, ['-e', '']);
    await new Promise((resolve) => ended.once('exit', resolve));
    const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    children.push(live);
    const session = async (pid: number): Promise<Client> => {
      const client = new Client({
        connectionString: env.db.url,
        application_name: sessionNameOf(pid, hostId),
      });
      client.on('error', () => undefined);
      await client.connect();
      return client;
    };
    const ofLive = await session(live.pid as number);
    const ofGone = await session(ended.pid as number);
    try {
      // The gone process's session ends 300 ms on: waited for; the live one's is not.
      const closing = sleep(300).then(() => ofGone.end());
      const started = Date.now();
      expect(await goneProcessSessionsEnded(env.pool)).toBe(true);
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
      await closing;
      // One the server keeps (a connection cut without a word), holding a task's lock: said to be
      // left when there is no time, else ended once the server had its grace, and the lock with it.
      const staying = await session(ended.pid as number);
      const lock = [WRITEBACK_LOCK_CLASS, 'Lead-stuck'];
      await staying.query('SELECT pg_advisory_lock($1, hashtext($2))', lock);
      expect(await goneProcessSessionsEnded(env.pool, 0)).toBe(false);
      expect(await goneProcessSessionsEnded(env.pool)).toBe(true);
      const { rows } = await env.pool.query<{ ok: boolean }>(
        'SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok',
        lock,
      );
      expect(rows[0]?.ok).toBe(true);
      await env.pool.query('SELECT pg_advisory_unlock_all()');
      // The live process's session is left alone.
      expect((await ofLive.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await ofLive.end();
      live.kill('SIGKILL');
    }
  });

  it('status --end-run: never a run whose process runs here, forced or not; once it is killed, ends it', async () => {
    await source('keyless_src', 'live', 2);
    env.sf.faults.set({ writeLatencyMs: 60_000 });
    const { child, exited } = startRun('Lead-keyless');
    const run = await recordedRun();
    for (const force of [[], ['--force']]) {
      const refused = await cli(['status', ...connection, '--end-run', run.run_id, ...force]);
      expect(refused.stderr).toContain(
        `roundtrip status: --end-run refused: run ${run.run_id} is still running: its process (pid ${run.pid} on ${run.host}, this machine) runs. Stop it with Ctrl-C`,
      );
      expect(refused.code).toBe(1);
      expect((await runRow(run.run_id)).status).toBe('running');
    }
    // Nor does status close it: its process runs.
    const listed = await cli(['status', ...connection]);
    expect(listed.stderr).not.toContain(run.run_id);
    expect(listed.stdout).toContain(
      `${run.run_id}: still recorded as running (pid ${run.pid} on ${run.host}): no later plan collects or looks up what it sent until it has ended. If its process is gone`,
    );
    expect((await runRow(run.run_id)).status).toBe('running');
    const json = JSON.parse((await cli(['status', ...connection, '--json'])).stdout) as {
      runs: { runId: string; process?: unknown }[];
    };
    expect(json.runs.find((r) => r.runId === run.run_id)?.process).toEqual({ host: run.host, pid: run.pid });

    await killGroup(child, exited, run.pid);
    env.sf.faults.clear();
    const ended = await cli(['status', ...connection, '--end-run', run.run_id]);
    expect(ended.stdout).toContain(
      `run ${run.run_id} ended as failed: Ended by roundtrip status --end-run: its process (pid ${run.pid} on ${run.host}) is gone, and the run never reported.`,
    );
    expect(exitOf(ended)).toBe(0);
    expect(await runRow(run.run_id)).toMatchObject({ status: 'failed' });
    const again = await cli(['status', ...connection, '--end-run', run.run_id]);
    expect(again).toMatchObject({
      code: 0,
      stdout: `run ${run.run_id} is not running (failed): nothing to end\n`,
    });
    // --json says the same as one object; --limit, which goes with the list, is refused.
    const againJson = await cli(['status', ...connection, '--end-run', run.run_id, '--json']);
    expect(againJson.code).toBe(0);
    expect(JSON.parse(againJson.stdout)).toEqual({
      pipeline: 'wb-test',
      runId: run.run_id,
      ended: false,
      status: 'failed',
    });
    expect(await cli(['status', ...connection, '--end-run', run.run_id, '--limit', '3'])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--limit goes with the list of runs, not with --end-run RUN_ID'),
    });
  });

  it('status --end-run: a run of another machine only with --force while its steps are recent; a deployed run never', async () => {
    const elsewhere = await env.newRun();
    await env.pool.query(
      `UPDATE roundtrip.runs SET host = 'other-laptop', host_id = 'linux boot elsewhere pid:[1]', pid = 4242,
              execution_arn = 'arn:aws:states:local:000000000000:execution:roundtrip-wb-test:' || run_id,
              last_step_at = now() WHERE run_id = $1`,
      [elsewhere],
    );
    // Status leaves it alone: its process cannot be seen from here.
    expect((await cli(['status', ...connection])).stderr).not.toContain(elsewhere);
    const refused = await cli(['status', ...connection, '--end-run', elsewhere]);
    expect(refused.stderr).toMatch(
      new RegExp(
        `--end-run refused: run ${elsewhere} started a step at \\S+, less than 150 minutes ago, and its process \\(pid 4242 on other-laptop\\) is not on this machine .*ps -p 4242\\), then add --force`,
      ),
    );
    expect(refused.code).toBe(1);
    expect((await runRow(elsewhere)).status).toBe('running');
    const forced = await cli(['status', ...connection, '--end-run', elsewhere, '--force', '--json']);
    expect(exitOf(forced)).toBe(0);
    expect(JSON.parse(forced.stdout)).toEqual({
      pipeline: 'wb-test',
      runId: elsewhere,
      ended: true,
      status: 'failed',
      error: expect.stringMatching(/^Ended by roundtrip status --end-run --force: /),
    });
    expect(await runRow(elsewhere)).toEqual({
      status: 'failed',
      error: expect.stringMatching(
        /^Ended by roundtrip status --end-run --force: its process \(pid 4242 on other-laptop\) was said to be gone; its latest step started /,
      ),
    });

    const deployed = await env.newRun();
    const arn = `arn:aws:states:eu-west-1:123456789012:execution:roundtrip-wb-test:${deployed}`;
    await env.pool.query(
      `UPDATE roundtrip.runs SET execution_arn = $2, started_at = now() - interval '5 hours' WHERE run_id = $1`,
      [deployed, arn],
    );
    for (const force of [[], ['--force']]) {
      const no = await cli(['status', ...connection, '--end-run', deployed, ...force]);
      expect(no.stderr).toContain(
        `--end-run refused: run ${deployed} is an execution of the deployed state machine (${arn}), which Step Functions tells of, not a process of a machine: stop it there (aws stepfunctions stop-execution --execution-arn ${arn}`,
      );
      expect(no.code).toBe(1);
    }
    expect((await runRow(deployed)).status).toBe('running');
    await env.pool.query(`UPDATE roundtrip.runs SET status = 'failed' WHERE run_id = $1`, [deployed]);

    expect(await cli(['status', ...connection, '--force'])).toMatchObject({ code: 2 });
    expect(await cli(['status', ...connection, '--end-run', 'run-nope'])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--end-run: pipeline wb-test has no run run-nope'),
    });
  });

  it('holds a keyless key back for a run still running on another machine, saying to end that run before resolving', async () => {
    await source('keyless_src', 'far', 1);
    const deps = env.deps({ writeback: [BULK, KEYLESS] });
    const far = await env.newRun();
    await env.pool.query(
      `UPDATE roundtrip.runs SET host = 'other-laptop', host_id = 'elsewhere', pid = 4243 WHERE run_id = $1`,
      [far],
    );
    await planThenCrashInPush(env, deps, far, 'Lead-keyless');
    const next = await env.newRun();
    expect(await planWriteback(deps, { runId: next, task: 'Lead-keyless' })).toMatchObject({ heldBack: 1 });
    expect((await errorsOf(env, next))[0]?.message).toBe(
      `key far-1 was sent for insert by run ${far}, which is still recorded as running (roundtrip status), and without an external-ID key it ` +
        `cannot be looked up: not inserted by this run. Once that run has ended (if its process is gone, roundtrip status --end-run ${far} ends it), ` +
        `find the record in Salesforce, then record what you found with roundtrip resolve --task Lead-keyless --key far-1 --inserted <the record's Id> ` +
        `(or --not-inserted if there is none, or you delete it there)`,
    );
    // A run of the task holds it back too, and names the run still running as the reason.
    await env.pool.query(`UPDATE roundtrip.runs SET status = 'failed' WHERE run_id = $1`, [next]);
    const ran = await cli(['run', ...connection, '--tasks', 'Lead-keyless']);
    expect(ran.stderr).toContain('Lead-keyless plan: 0 records to send, 1 held back');
    expect(ran.stderr).toContain(
      `  run ${far} is still recorded as running (pid 4243 on other-laptop): no later plan collects or looks up what it sent until it has ended. If its process is gone (killed, its machine shut down), roundtrip status --end-run ${far} ${connection.join(' ')} ends it`,
    );
    const refused = await cli([
      'resolve',
      ...connection,
      '--task',
      'Lead-keyless',
      '--key',
      'far-1',
      '--not-inserted',
    ]);
    expect(refused.stderr).toContain(
      `key far-1 was sent by run ${far}, which is still recorded as running (roundtrip status): its push may still record the outcome; resolve the key once that run has ended (if its process is gone, roundtrip status --end-run ${far} ${connection.join(' ')} ends it)`,
    );
    for (const id of [far, next])
      await env.pool.query(`UPDATE roundtrip.runs SET status = 'failed' WHERE run_id = $1`, [id]);
  });
});
