/**
 * How long to wait before each poll of a Bulk API 2.0 job. Every poll is an API call counted
 * against the org's daily allowance (salesforce-wire.md, "Bulk API 2.0 ingest"), so the delays grow
 * geometrically: 2, 4, 8, 16, 32, 64 seconds, then every {@link BULK_POLL_MAX_DELAY_SECONDS}.
 * A ten-minute job costs 10 polls (2+4+8+16+32+64+120×4 = 606 s), within the budget of 12.
 *
 * A pure function of the attempt number, so that the state machine's Wait state (which reads the
 * delay from the step's output) and the in-process loop of the CLI use the very same schedule.
 */

/** The first delay, in seconds. */
export const BULK_POLL_FIRST_DELAY_SECONDS = 2;
/** The longest delay between two polls, in seconds. */
export const BULK_POLL_MAX_DELAY_SECONDS = 120;

/** Seconds to wait before poll number `attempt` (0 = the first poll after the job was created). */
export function bulkPollDelaySeconds(attempt: number): number {
  if (!Number.isInteger(attempt) || attempt < 0) {
    throw new RangeError(`bulkPollDelaySeconds: attempt must be a non-negative integer, got ${attempt}`);
  }
  // 2 * 2^attempt, capped; the cap check first keeps 2 ** attempt from overflowing for large attempts.
  if (attempt >= 6) return BULK_POLL_MAX_DELAY_SECONDS;
  return Math.min(BULK_POLL_FIRST_DELAY_SECONDS * 2 ** attempt, BULK_POLL_MAX_DELAY_SECONDS);
}

/** The delays of the first `count` polls, in seconds. */
export function bulkPollDelays(count: number): number[] {
  return Array.from({ length: count }, (_, i) => bulkPollDelaySeconds(i));
}

/** How many polls a job that takes `jobSeconds` costs with this schedule (the poll that sees it finished included). */
export function bulkPollsForDuration(jobSeconds: number): number {
  let waited = 0;
  let polls = 0;
  do {
    waited += bulkPollDelaySeconds(polls);
    polls += 1;
  } while (waited < jobSeconds);
  return polls;
}
