/**
 * Time as the steps see it. Core functions never call `Date.now()` or `setTimeout` directly: they
 * receive a {@link Clock}, so that a test can fix "now" and shorten the waits of a poll loop, and
 * the state machine (which does its own waiting in AWS) and the local driver share one code path.
 */

/** The current time and a way to wait. */
export interface Clock {
  /** The current time. */
  now(): Date;
  /** Resolves after `ms` milliseconds (a test clock may resolve sooner). */
  sleep(ms: number): Promise<void>;
}

/** The real clock: `new Date()` and `setTimeout`. */
export const systemClock: Clock = {
  now: () => new Date(),
  sleep: (ms) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms))),
};

/**
 * The system clock's `now()` with waits scaled by `factor` (0 makes every wait a macrotask hop):
 * for tests and benchmarks that run the poll loops of the local driver without the real delays.
 */
export function acceleratedClock(factor: number, base: Clock = systemClock): Clock {
  if (!(factor >= 0)) throw new RangeError(`acceleratedClock: factor must be ≥ 0, got ${factor}`);
  return {
    now: () => base.now(),
    sleep: (ms) => base.sleep(ms * factor),
  };
}

/**
 * The time left to the invocation that runs a step, in milliseconds: in Lambda,
 * `context.getRemainingTimeInMillis()`. A step that works through a long list of calls (the
 * write-back's push and collect) starts no call that this time could not see through, and hands
 * the rest on to its next invocation.
 */
export type TimeLeft = () => number;

/** No end: a step called in-process by a caller that does not bound it (tests, benchmarks, the CLI). */
export const UNBOUNDED_TIME: TimeLeft = () => Number.POSITIVE_INFINITY;

/** The part of Lambda's invocation context that tells the time left. */
export interface InvocationContext {
  getRemainingTimeInMillis(): number;
}

/** The time left of an invocation context; {@link UNBOUNDED_TIME} without one. */
export function timeLeftOf(context: InvocationContext | undefined): TimeLeft {
  return context ? () => context.getRemainingTimeInMillis() : UNBOUNDED_TIME;
}
