/**
 * stopOnSignal (demo, run, plan): the first stop signal runs the cleanup, which then ends the
 * process by that signal. A terminal's Ctrl-C comes more than once (directly, and forwarded by
 * bin/roundtrip.cjs, npm or tsx, as late as a loaded machine runs them), so a signal during the
 * cleanup must not end the process before the cleanup is done, however late it comes.
 */
import { stopOnSignal } from '../../../bin/cli-common';

describe('stopOnSignal', () => {
  let kill: jest.SpyInstance;
  let restore: () => void = () => undefined;

  beforeEach(() => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'queueMicrotask', 'setImmediate'] });
    kill = jest.spyOn(process, 'kill').mockImplementation(() => true);
    const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    // The handler's own listeners, which keep the in-flight work's failures from ending the process.
    const before = {
      uncaughtException: process.listeners('uncaughtException'),
      unhandledRejection: process.listeners('unhandledRejection'),
    };
    restore = () => {
      for (const listener of process.listeners('uncaughtException'))
        if (!before.uncaughtException.includes(listener))
          process.removeListener('uncaughtException', listener);
      for (const listener of process.listeners('unhandledRejection'))
        if (!before.unhandledRejection.includes(listener))
          process.removeListener('unhandledRejection', listener);
      stderr.mockRestore();
      kill.mockRestore();
      jest.useRealTimers();
    };
  });
  afterEach(() => restore());

  /** Lets the cleanup's promise chain settle. */
  const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

  it('ignores the signals that come while its cleanup runs, however late, and ends by the first when done', async () => {
    let finish: () => void = () => undefined;
    const cleanup = jest.fn((_signal: NodeJS.Signals) => new Promise<void>((resolve) => (finish = resolve)));
    const release = stopOnSignal(cleanup);
    try {
      process.emit('SIGINT', 'SIGINT');
      expect(cleanup).toHaveBeenCalledWith('SIGINT');
      // The forwarded copy, seconds later by the clock (a loaded machine), then Ctrl-C again and a
      // SIGTERM: the cleanup is not cut short by any of them.
      jest.setSystemTime(Date.now() + 10_000);
      process.emit('SIGINT', 'SIGINT');
      process.emit('SIGINT', 'SIGINT');
      process.emit('SIGTERM', 'SIGTERM');
      await settle();
      expect(kill).not.toHaveBeenCalled();
      expect(cleanup).toHaveBeenCalledTimes(1);

      finish();
      await settle();
      expect(kill.mock.calls).toEqual([[process.pid, 'SIGINT']]);
    } finally {
      release();
    }
  });

  it('ends the process by the signal when the cleanup outlasts its grace', async () => {
    const release = stopOnSignal(() => new Promise<void>(() => undefined), 15_000);
    try {
      process.emit('SIGTERM', 'SIGTERM');
      jest.advanceTimersByTime(14_999);
      expect(kill).not.toHaveBeenCalled();
      jest.advanceTimersByTime(1);
      expect(kill.mock.calls).toEqual([[process.pid, 'SIGTERM']]);
    } finally {
      release();
    }
  });
});
