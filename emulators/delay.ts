/**
 * A delay for the emulators' latency faults that ends early when the client goes away, so that
 * no timer outlives a connection (a test's client that gave up, a server being stopped).
 */
import type { ServerResponse } from 'node:http';

/** Waits `ms`, or less if the connection of `res` closes first. */
export function delayWhileOpen(ms: number, res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      res.off('close', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    res.once('close', done);
  });
}
