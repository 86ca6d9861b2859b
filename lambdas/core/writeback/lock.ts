/**
 * The write-back task lock: a session advisory lock per task name, taken without waiting, so
 * that one push or collect of a task runs at a time across runs, and the plan's resolution of
 * ended runs' inserts never races a push still live.
 */
import type { ClientBase, PoolClient } from 'pg';
import { classifyPostgresError } from '../../connectors/postgres';
import { TaskBusyError } from '../../shared/errors';
import type { CoreDeps } from '../deps';

/** The advisory lock class of write-back tasks ("wbak" in ASCII); the task name is hashed into the key. */
export const WRITEBACK_LOCK_CLASS = 0x7762616b;

/**
 * Runs `fn` while holding the task's session advisory lock on a connection of its own: one push
 * or collect of a task at a time, across runs (a step retried while its first attempt still runs,
 * two runs of a schedule overlapping). Taken or not, it never waits: a held lock is a
 * TaskBusyError, which the state machine retries on a slower schedule (18 minutes in all).
 * A Lambda that dies closes its connection, which releases the lock.
 */
export async function withTaskLock<T>(
  deps: Pick<CoreDeps, 'pg'>,
  taskName: string,
  fn: () => Promise<T>,
): Promise<T> {
  const done = await ifTaskLockFree(deps, taskName, fn);
  if (!done.ran) {
    throw new TaskBusyError(
      `Write-back ${taskName}: another push or collect of this task is running (a retried step, or an overlapping run); the step is retried once it ends`,
    );
  }
  return done.value;
}

/**
 * Runs `fn` under the task's lock, as {@link withTaskLock}, if nobody holds it; else answers
 * `{ ran: false }` at once.
 */
export async function ifTaskLockFree<T>(
  deps: Pick<CoreDeps, 'pg'>,
  taskName: string,
  fn: () => Promise<T>,
): Promise<{ ran: true; value: T } | { ran: false }> {
  let client: PoolClient;
  try {
    client = await deps.pg.connect();
  } catch (err) {
    throw classifyPostgresError(err, { action: 'connecting' });
  }
  let broken: Error | undefined;
  try {
    let rows: { ok: boolean }[];
    try {
      ({ rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok', [
        WRITEBACK_LOCK_CLASS,
        taskName,
      ]));
    } catch (err) {
      // Classified as the pool's statements are: a connection dropped here is retried.
      broken = classifyPostgresError(err, { action: 'taking the task lock' });
      throw broken;
    }
    if (!rows[0]?.ok) return { ran: false };
    try {
      return { ran: true, value: await fn() };
    } finally {
      try {
        await client.query('SELECT pg_advisory_unlock($1, hashtext($2))', [WRITEBACK_LOCK_CLASS, taskName]);
      } catch (err) {
        // The session ends instead, which releases the lock.
        broken = err as Error;
      }
    }
  } finally {
    client.release(broken);
  }
}

/**
 * Takes the task's lock for the transaction `client` is in, without waiting: true when taken
 * (released by its COMMIT or ROLLBACK), false while a push, collect or a plan's resolution of
 * ended runs holds it. The same lock as {@link withTaskLock}'s (a transaction's advisory lock and
 * a session's on one key exclude each other), for work that must not run beside them and fits in
 * one transaction: `roundtrip forget` deleting a task's sync state (lambdas/core/task-state.ts).
 */
export async function tryTaskLockInTransaction(client: ClientBase, taskName: string): Promise<boolean> {
  try {
    const { rows } = await client.query<{ ok: boolean }>(
      'SELECT pg_try_advisory_xact_lock($1, hashtext($2)) AS ok',
      [WRITEBACK_LOCK_CLASS, taskName],
    );
    return rows[0]?.ok === true;
  } catch (err) {
    throw classifyPostgresError(err, { action: 'taking the task lock' });
  }
}
