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
