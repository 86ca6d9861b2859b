import { acceleratedClock, type Clock } from '../../../lambdas/shared/clock';

describe('acceleratedClock', () => {
  it('scales waits and keeps the base clock’s time', async () => {
    const slept: number[] = [];
    const base: Clock = {
      now: () => new Date('2024-01-01T00:00:00Z'),
      sleep: async (ms) => void slept.push(ms),
    };
    const clock = acceleratedClock(0.01, base);
    await clock.sleep(2000);
    await clock.sleep(120_000);
    expect(slept).toEqual([20, 1200]);
    expect(clock.now()).toEqual(new Date('2024-01-01T00:00:00Z'));
    expect(() => acceleratedClock(-1)).toThrow(RangeError);
  });
});
