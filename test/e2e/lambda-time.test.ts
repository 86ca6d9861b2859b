/**
 * The demo pipeline with the Lambda clock of a step that runs out of time: every invocation is
 * told it has no time left (but the Transform's), so each Push invocation makes its one guaranteed Composite call and
 * hands on (`push-pending`), and the synthesized state machine calls Push again until the plan
 * is sent. Every lead ends with its score, each record sent once.
 */
import { UNBOUNDED_TIME } from '../../lambdas/shared/clock';
import { RUN_STATES } from '../../statemachine/definition';
import { expectedScores } from './support/expected-scores';
import { exampleConfig, startWorld, type E2eWorld } from './support/harness';

/** Composite calls take 1,000 records (five Collections of 200). */
const RECORDS_PER_CALL = 1_000;

describe('the demo pipeline when each step invocation has no time to spare', () => {
  let world: E2eWorld;
  beforeAll(async () => {
    world = await startWorld({
      leads: 2_500,
      customers: 1_000,
      // Collections whatever the size: a push of several calls.
      config: await exampleConfig({ bulkThreshold: 100_000 }),
    });
  });
  afterAll(async () => {
    await world?.close();
  });

  it('pushes across invocations through the state machine, each record once', async () => {
    world.env.salesforce.calls.clear();
    // The Transform excepted: with no time left it starts no statement (a Lambda would be stopped
    // under it), which transform.test.ts tests.
    const { execution, summary } = await world.run(
      {},
      { timeLeft: (state) => (state === RUN_STATES.transform ? UNBOUNDED_TIME : () => 0) },
    );

    expect(execution.status).toBe('succeeded');
    const expected = expectedScores(world.env.leads, world.env.customers).map((s) => s ?? null);
    expect(world.scores()).toEqual(expected);
    const scored = expected.filter((s) => s !== null).length;
    expect(scored).toBeGreaterThan(2 * RECORDS_PER_CALL);
    const calls = Math.ceil(scored / RECORDS_PER_CALL);
    expect(world.env.salesforce.calls.writes().map((w) => w.records)).toEqual([
      ...Array.from({ length: calls - 1 }, () => RECORDS_PER_CALL),
      scored - (calls - 1) * RECORDS_PER_CALL,
    ]);
    const handedOn = world.logger.records.filter((r) => r.message.startsWith('Push handed on'));
    expect(handedOn).toHaveLength(calls - 1);
    expect(summary.tasks.find((t) => t.kind === 'writeback')).toMatchObject({
      planned: scored,
      written: scored,
      failed: 0,
    });
  });
});
