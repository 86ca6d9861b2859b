import type { PoolClient } from 'pg';
import type { CoreDeps } from '../../../lambdas/core/deps';
import { ifTaskLockFree } from '../../../lambdas/core/writeback/lock';
import { TerminalError, TransientError } from '../../../lambdas/shared/errors';

/** Deps whose pool hands out one client answering `query` as given; records its release. */
function depsWith(query: (text: string) => Promise<unknown>): { deps: CoreDeps; released: unknown[] } {
  const released: unknown[] = [];
  const client = {
    query: (text: string) => query(text),
    release: (err?: unknown) => released.push(err),
  } as unknown as PoolClient;
  const deps = { pg: { connect: () => Promise.resolve(client) } } as unknown as CoreDeps;
  return { deps, released };
}

describe('ifTaskLockFree', () => {
  it('takes the lock, runs, releases it and returns the client', async () => {
    const sent: string[] = [];
    const { deps, released } = depsWith((text) => {
      sent.push(text);
      return Promise.resolve({ rows: [{ ok: true }] });
    });
    await expect(ifTaskLockFree(deps, 'Lead-update', () => Promise.resolve(7))).resolves.toEqual({
      ran: true,
      value: 7,
    });
    expect(sent.map((t) => t.split('(')[0])).toEqual([
      'SELECT pg_try_advisory_lock',
      'SELECT pg_advisory_unlock',
    ]);
    expect(released).toEqual([undefined]);
  });

  it('a connection dropped while taking the lock is a TransientError (retried), and the client is not reused', async () => {
    const { deps, released } = depsWith(() =>
      Promise.reject(new Error('Connection terminated unexpectedly')),
    );
    const err = await ifTaskLockFree(deps, 'Lead-update', () => Promise.resolve(1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect((err as Error).message).toBe(
      'PostgreSQL taking the task lock: Connection terminated unexpectedly',
    );
    expect(released).toEqual([err]);
  });

  it('any other failure of the lock statement is a TerminalError', async () => {
    const { deps } = depsWith(() => Promise.reject(new Error('something else')));
    await expect(ifTaskLockFree(deps, 'Lead-update', () => Promise.resolve(1))).rejects.toBeInstanceOf(
      TerminalError,
    );
  });
});
