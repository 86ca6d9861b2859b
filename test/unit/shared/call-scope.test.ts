import { callCounter, withOwnCallCounts } from '../../../lambdas/shared/call-scope';

describe('callCounter', () => {
  it('reads the total outside an invocation, and each invocation its own calls, each counter its own', async () => {
    const calls = callCounter();
    const reads = callCounter();
    let total = 0;
    const call = (): void => {
      total += 1;
      calls.count();
    };
    call();
    expect(calls.read(total)).toBe(1);
    const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
    const [a, b] = await Promise.all([
      withOwnCallCounts(async () => {
        call();
        await tick();
        call();
        reads.count();
        await tick();
        return [calls.read(total), reads.read(0)];
      }),
      withOwnCallCounts(async () => {
        await tick();
        call();
        return [calls.read(total), reads.read(0)];
      }),
    ]);
    expect([a, b]).toEqual([
      [2, 1],
      [1, 0],
    ]);
    expect(calls.read(total)).toBe(4);
  });
});
