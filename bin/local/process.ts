/**
 * The machine and process of a local run (`roundtrip.runs` host, host_id, pid), and what the CLI
 * does with them: closes the runs of this machine whose process is gone (a `roundtrip run` killed
 * with SIGKILL, or that crashed), and ends a run by hand (`roundtrip status --end-run`), never one
 * whose process still runs here, nor a run of the deployed state machine.
 *
 * A process id means the same process only on the machine, boot and pid namespace it was read in:
 * the host id is the boot's id (Linux `/proc/sys/kernel/random/boot_id`, macOS
 * `kern.bootsessionuuid`, each drawn at random at every boot) and, on Linux, the pid namespace (a
 * container has its own). A machine that tells neither records no host id: its runs are closed by
 * `--end-run` or, 13 hours on, by a later run's report.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import os from 'node:os';
import type { Pool } from 'pg';
import { taskName, type PipelineConfig } from '../../lambdas/config';
import { shellOption } from '../../lambdas/shared/shell';
import { withTransaction } from '../../lambdas/connectors/postgres';
import { stillGoingQuietMinutes } from '../../lambdas/core/contracts';
import { sentByCall } from '../../lambdas/core/writeback/reconcile';
import type { RunProcesses } from '../../lambdas/core/deps';
import type { OptionsGiven } from '../cli-common';
import {
  closeRunsWhoseProcessIsGone,
  endRunningRun,
  type RunWhoseProcessIsGone,
} from '../../lambdas/core/run-state';

function readTrimmed(read: () => string): string | undefined {
  try {
    const text = read().trim();
    return text === '' ? undefined : text;
  } catch {
    return undefined;
  }
}

/** This machine's boot and pid namespace, or undefined when it tells neither. */
export function hostIdOfThisMachine(): string | undefined {
  if (process.platform === 'linux') {
    const boot = readTrimmed(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8'));
    const namespace = readTrimmed(() => readlinkSync('/proc/self/ns/pid'));
    return boot && namespace ? `linux boot ${boot} ${namespace}` : undefined;
  }
  if (process.platform === 'darwin') {
    const boot = readTrimmed(() =>
      execFileSync('/usr/sbin/sysctl', ['-n', 'kern.bootsessionuuid'], { encoding: 'utf8', timeout: 2000 }),
    );
    return boot ? `darwin boot ${boot}` : undefined;
  }
  return undefined;
}

/**
 * Whether process `pid` of this machine still runs. A process another user owns answers EPERM: it
 * runs. A zombie (exited, its parent has not reaped it yet) does not run.
 */
export function isProcessRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  if (process.platform === 'linux') {
    const stat = readTrimmed(() => readFileSync(`/proc/${pid}/stat`, 'utf8'));
    // "pid (comm) state …": comm may hold spaces and parentheses, so read after the last ")".
    if (stat && stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return false;
  }
  return true;
}

let cached: RunProcesses | null | undefined;

/** This process as a run records it, or undefined when this machine cannot tell a gone process. */
export function localProcesses(): RunProcesses | undefined {
  if (cached === undefined) {
    const hostId = hostIdOfThisMachine();
    cached = hostId
      ? { self: { host: os.hostname(), hostId, pid: process.pid }, isRunning: isProcessRunning }
      : null;
  }
  return cached ?? undefined;
}

/** 8 hex digits of the hash of host id `hostId`: a CLI session's name says its machine by them. */
function hostTag(hostId: string): string {
  return createHash('sha256').update(hostId).digest('hex').slice(0, 8);
}

/**
 * The `application_name` of the PostgreSQL sessions of CLI process `pid` of the machine `hostId`
 * (a boot and pid namespace, {@link hostIdOfThisMachine}, as 8 hex digits of its hash: within
 * PostgreSQL's 63 characters): how a later command of this machine tells the sessions of a process
 * that is gone ({@link goneProcessSessionsEnded}). Plain `roundtrip-cli` on a machine that tells
 * no host id. An `application_name` in `--database-url` or the secret's URL wins over it.
 */
export function sessionNameOf(pid: number, hostId: string | undefined): string {
  return hostId === undefined ? 'roundtrip-cli' : `roundtrip-cli pid ${pid} ${hostTag(hostId)}`;
}

/** The `application_name` of this process's PostgreSQL sessions ({@link sessionNameOf}). */
export function cliSessionName(): string {
  const self = localProcesses()?.self;
  return sessionNameOf(self?.pid ?? process.pid, self?.hostId);
}

/** How long {@link goneProcessSessionsEnded} waits at most. */
export const GONE_SESSIONS_WAIT_MS = 5_000;

/** How long {@link goneProcessSessionsEnded} leaves the server to end such sessions itself. */
export const GONE_SESSIONS_GRACE_MS = 500;

/**
 * Ends the sessions PostgreSQL still holds for this machine's CLI processes that are gone (named
 * by {@link sessionNameOf}; found in `pg_stat_activity`), and waits until they have ended, for
 * `limitMs` at most. A process killed, or ended by Ctrl-C, leaves its sessions for a moment, until
 * the server reads the closed connection, and one of them may hold a write-back task's lock
 * (lock.ts): a command run right then (resolve, forget, rename-task, a run) would find the task
 * busy, and say a push of it runs. The server is left {@link GONE_SESSIONS_GRACE_MS} to end them;
 * then they are ended with `pg_terminate_backend`, which is safe as nothing can use them any more
 * (their process is gone from this machine's boot and pid namespace, which their name says), and
 * which ends at once a session the server would keep for hours (a connection cut without a word,
 * until TCP keepalive gives up). Answers whether none is left; when some are (a role that may not
 * end them, or `pg_stat_activity` that cannot be read), the command goes on, and a lock such a
 * session still holds says busy, which is then what it is.
 */
export async function goneProcessSessionsEnded(
  db: Pick<Pool, 'query'>,
  limitMs = GONE_SESSIONS_WAIT_MS,
): Promise<boolean> {
  const processes = localProcesses();
  if (!processes) return true;
  const tag = hostTag(processes.self.hostId);
  const started = Date.now();
  let terminated = false;
  for (;;) {
    let sessions: { backend: number; name: string }[];
    try {
      ({ rows: sessions } = await db.query<{ backend: number; name: string }>(
        `SELECT pid AS backend, application_name AS name FROM pg_stat_activity
          WHERE application_name LIKE 'roundtrip-cli pid % ' || $1 AND pid <> pg_backend_pid()`,
        [tag],
      ));
    } catch {
      return false;
    }
    const gone = sessions.filter(({ name }) => {
      const pid = Number(/^roundtrip-cli pid (\d+) /.exec(name)?.[1]);
      return Number.isInteger(pid) && pid !== processes.self.pid && !processes.isRunning(pid);
    });
    if (gone.length === 0) return true;
    const elapsed = Date.now() - started;
    if (elapsed >= limitMs) return false;
    if (!terminated && elapsed >= Math.min(GONE_SESSIONS_GRACE_MS, limitMs / 2)) {
      terminated = true;
      try {
        await db.query('SELECT pg_terminate_backend(b) FROM unnest($1::int[]) AS b', [
          gone.map((s) => s.backend),
        ]);
      } catch {
        // Not allowed to (another role's sessions): wait for the server.
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** What the CLI says of a run it closed because its process is gone. */
export function processGoneNote(closed: RunWhoseProcessIsGone): string {
  return (
    `run ${closed.runId} was still recorded as running, but its process (pid ${closed.pid} on this machine) ` +
    `is gone: closed as failed; the next plan of its tasks collects and looks up what it sent`
  );
}

/**
 * Closes the runs of `pipeline` recorded on this machine whose process is gone (see the module
 * comment), as `closedBy` (a command), and waits for PostgreSQL to end the sessions of gone
 * processes ({@link goneProcessSessionsEnded}). Answers the runs closed; nothing on a machine that
 * cannot tell.
 */
export async function closeGoneLocalRuns(
  pool: Pool,
  pipeline: string,
  closedBy: string,
): Promise<RunWhoseProcessIsGone[]> {
  const processes = localProcesses();
  if (!processes) return [];
  const closed = await withTransaction(pool, (client) =>
    closeRunsWhoseProcessIsGone(client, pipeline, processes, closedBy, new Date()),
  );
  // The command goes on to take locks a gone process's sessions may hold for a moment more.
  await goneProcessSessionsEnded(pool);
  return closed;
}

/**
 * What the CLI says of a run still recorded as running: where it runs, that the keys it sent wait
 * for it to end, and how to end it when its process is gone: `roundtrip status --end-run`, with the
 * options `given` to the command that says it (cli-common.ts, databaseOptionsGiven), to be pasted as is.
 */
export function stillRunningNote(
  runId: string,
  where: { host: string | null; pid: number } | null | undefined,
  given: OptionsGiven = { options: '', note: '' },
): string {
  const at = where ? ` (pid ${where.pid} on ${where.host ?? 'a machine not recorded'})` : '';
  return (
    `still recorded as running${at}: no later plan collects or looks up what it sent until it has ended. ` +
    `If its process is gone (killed, its machine shut down), roundtrip status --end-run ${runId}${given.options}${given.note} ends it; a run of ` +
    `this machine whose process is gone is ended by the next run, status or resolve here`
  );
}

/** The runs of `pipeline` still recorded as running but `runId`, with their process when recorded. */
export async function otherRunsStillRunning(
  pool: Pool,
  pipeline: string,
  runId: string,
): Promise<{ runId: string; process: { host: string | null; pid: number } | null }[]> {
  const { rows } = await pool.query<{ run_id: string; host: string | null; pid: number | null }>(
    `SELECT run_id, host, pid FROM roundtrip.runs
      WHERE pipeline = $1 AND status = 'running' AND run_id <> $2 ORDER BY started_at, run_id`,
    [pipeline, runId],
  );
  return rows.map((r) => ({
    runId: r.run_id,
    process: r.pid === null ? null : { host: r.host, pid: r.pid },
  }));
}

/**
 * The lines that say which keys run `runId` sent for insert without an external-ID key and left
 * without an outcome (ledger rows `sent`: it was interrupted or killed before their answer was
 * recorded). No plan can look them up: someone finds them in Salesforce and records them with
 * `roundtrip resolve`, and until then every run holds them back. Nothing for a keyed task, whose
 * next plan looks its keys up, or for keys in a Bulk job, which the next plan collects. The command
 * carries the options `given` to the command that says it (cli-common.ts, databaseOptionsGiven).
 */
export async function keysToRecordByHand(
  db: Pick<Pool, 'query'>,
  config: PipelineConfig,
  runId: string,
  given: OptionsGiven = { options: '', note: '' },
): Promise<string[]> {
  const keyless = config.writeback.filter((t) => t.mode === 'insert' && t.key === undefined).map(taskName);
  if (keyless.length === 0) return [];
  const { rows } = await db.query<{ task: string; n: number; sample: string[] }>(
    `SELECT task, count(*)::int AS n, (array_agg(key ORDER BY key))[1:3] AS sample
       FROM roundtrip.writeback_plans
      WHERE run_id = $1 AND task = ANY($2::text[]) AND status = 'sent' AND ${sentByCall()}
      GROUP BY task ORDER BY task`,
    [runId, keyless],
  );
  return rows.map(
    (r) =>
      `task ${r.task}: ${r.n.toLocaleString('en-US')} ${r.n === 1 ? 'key was' : 'keys were'} sent for insert by run ${runId} ` +
      `with no recorded outcome (${r.sample.join(', ')}${r.n > r.sample.length ? ', …' : ''}), and without an external-ID ` +
      `key no plan can look them up: every run holds them back until you find them in Salesforce and record them with ` +
      `roundtrip resolve ${shellOption('--task', r.task)}${given.options} --file outcomes.csv (a line key,salesforce_id each, the Id empty for not ` +
      `inserted) or --key KEY --inserted ID${given.note}`,
  );
}

/** A local state machine's execution ARN (statemachine/local.ts): region `local`, account zeros. */
const LOCAL_EXECUTION = /^arn:aws:states:local:000000000000:execution:/;

/** What `roundtrip status --end-run` did, or why it would not. */
export type EndRunOutcome =
  | { readonly outcome: 'ended'; readonly error: string }
  | { readonly outcome: 'not-running'; readonly status: string }
  | { readonly outcome: 'unknown' }
  | { readonly outcome: 'refused'; readonly reason: string; readonly forceable: boolean };

interface RunRow {
  pipeline: string;
  status: string;
  execution_arn: string | null;
  host: string | null;
  host_id: string | null;
  pid: number | null;
  started_at: Date;
  last_step_at: Date;
}

/**
 * Ends run `runId` of `pipeline` as failed, by hand, when nothing can still be running it:
 * - a run of the deployed state machine is refused, forced or not: its execution is stopped in
 *   Step Functions, and the next scheduled run's Prepare closes it, saying how it ended;
 * - a run recorded on this machine is ended when its process is gone, and refused, forced or not,
 *   while it runs (it is stopped with Ctrl-C, which records the run failed itself);
 * - a run recorded elsewhere (another machine, an earlier boot, a container), or before its
 *   process was recorded, is refused while a step of it started within the quiet stretch a live
 *   run may have (stillGoingQuietMinutes: 150 minutes, more with a longer Athena query limit), as
 *   Prepare counts it going, unless `force`: its process cannot be seen from here, and whoever
 *   forces says it is gone.
 * The row is locked while deciding, so a run that ends meanwhile keeps its outcome.
 */
export async function endRunByHand(
  pool: Pool,
  config: PipelineConfig,
  runId: string,
  options: { force: boolean; now?: Date },
): Promise<EndRunOutcome> {
  const now = options.now ?? new Date();
  const pipeline = config.name;
  const quietMinutes = stillGoingQuietMinutes(config);
  const here = localProcesses();
  return withTransaction(pool, async (client) => {
    const { rows } = await client.query<RunRow>(
      `SELECT pipeline, status, execution_arn, host, host_id, pid, started_at,
              greatest(started_at, last_step_at) AS last_step_at
         FROM roundtrip.runs WHERE run_id = $1 FOR UPDATE`,
      [runId],
    );
    const row = rows[0];
    if (!row || row.pipeline !== pipeline) return { outcome: 'unknown' };
    if (row.status !== 'running') return { outcome: 'not-running', status: row.status };
    if (row.execution_arn && !LOCAL_EXECUTION.test(row.execution_arn)) {
      return {
        outcome: 'refused',
        forceable: false,
        reason:
          `run ${runId} is an execution of the deployed state machine (${row.execution_arn}), which Step Functions ` +
          `tells of, not a process of a machine: stop it there (aws stepfunctions stop-execution --execution-arn ` +
          `${row.execution_arn}, or Stop execution in the console); the next scheduled run's Prepare then closes it as ` +
          `failed, saying how its execution ended. An execution runs for 12 hours at most, and a later report ` +
          `closes a run still recorded as running 13 hours after it started`,
      };
    }
    const where = row.pid === null ? undefined : `pid ${row.pid} on ${row.host ?? 'a machine not recorded'}`;
    if (here && row.pid !== null && row.host_id === here.self.hostId) {
      if (row.pid === here.self.pid || here.isRunning(row.pid)) {
        return {
          outcome: 'refused',
          forceable: false,
          reason:
            `run ${runId} is still running: its process (${where}, this machine) runs. Stop it with Ctrl-C in its ` +
            `terminal (or kill ${row.pid}), which records the run as failed; a run whose process still runs is never ` +
            `ended by hand, as it may still send records and record their outcomes`,
        };
      }
      const error = `Ended by roundtrip status --end-run: its process (${where}) is gone, and the run never reported`;
      await endRunningRun(client, runId, 'failed', now, error);
      return { outcome: 'ended', error };
    }
    const quietSince = new Date(now.getTime() - quietMinutes * 60_000);
    const recent = row.last_step_at > quietSince;
    const seen = where
      ? `its process (${where}) is not on this machine (or was recorded before a restart), so it cannot be seen from here`
      : 'it was recorded without its process, so nothing here can tell whether that still runs';
    if (recent && !options.force) {
      return {
        outcome: 'refused',
        forceable: true,
        reason:
          `run ${runId} started a step at ${row.last_step_at.toISOString()}, less than ${quietMinutes} ` +
          `minutes ago, and ${seen}. Make sure it is gone (${where ? `on ${row.host ?? 'that machine'}: ps -p ${row.pid}` : 'no terminal still shows it running'}), then add --force`,
      };
    }
    const error =
      `Ended by roundtrip status --end-run${options.force && recent ? ' --force' : ''}: ${where ? `its process (${where})` : 'its process'} ` +
      `was said to be gone; its latest step started ${row.last_step_at.toISOString()}`;
    await endRunningRun(client, runId, 'failed', now, error);
    return { outcome: 'ended', error };
  });
}
