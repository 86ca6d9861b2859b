import {
  BULK_POLL_MAX_DELAY_SECONDS,
  bulkPollDelays,
  bulkPollDelaySeconds,
  bulkPollsForDuration,
} from '../../../../lambdas/connectors/salesforce/poll';

describe('bulkPollDelaySeconds', () => {
  it('grows geometrically to a cap', () => {
    expect(bulkPollDelays(9)).toEqual([2, 4, 8, 16, 32, 64, 120, 120, 120]);
    expect(bulkPollDelaySeconds(10_000)).toBe(BULK_POLL_MAX_DELAY_SECONDS);
  });

  it('costs at most 12 polls for a ten-minute job, and one for a job done in 2 seconds', () => {
    expect(bulkPollsForDuration(600)).toBeLessThanOrEqual(12);
    expect(bulkPollsForDuration(600)).toBe(10);
    expect(bulkPollsForDuration(2)).toBe(1);
    expect(bulkPollsForDuration(60)).toBe(5);
  });

  it('rejects an attempt that is not a non-negative integer', () => {
    expect(() => bulkPollDelaySeconds(-1)).toThrow(RangeError);
    expect(() => bulkPollDelaySeconds(1.5)).toThrow('non-negative integer');
  });
});
