/**
 * API calls counted per step invocation where several steps share one connector at once: the
 * local runner runs the Extract's parallel branches in one process, with one Salesforce and one
 * Athena connector, and each step reports `connector.apiCalls` at its end less what it read at its
 * start. Shared, each branch's difference would also hold the other branches' calls. Run each
 * invocation in {@link withOwnCallCounts}: a connector's `apiCalls` then reads the calls made from
 * within that invocation. Outside one (a Lambda runs one invocation at a time), it reads the
 * connector's total, as before.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

const invocation = new AsyncLocalStorage<Map<symbol, number>>();

/** Runs `fn` with call counts of its own (and of everything it starts). */
export function withOwnCallCounts<T>(fn: () => Promise<T>): Promise<T> {
  return invocation.run(new Map(), fn);
}

/** A connector's counter in the current invocation's counts. */
export interface CallCounter {
  /** Counts one call in the current invocation, if any. */
  count(): void;
  /** The calls of the current invocation, or `total` outside one. */
  read(total: number): number;
}

/** A counter of one connector (each connector its own). */
export function callCounter(): CallCounter {
  const key = Symbol('apiCalls');
  return {
    count() {
      const counts = invocation.getStore();
      if (counts) counts.set(key, (counts.get(key) ?? 0) + 1);
    },
    read(total) {
      const counts = invocation.getStore();
      return counts ? (counts.get(key) ?? 0) : total;
    },
  };
}
