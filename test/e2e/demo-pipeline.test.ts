/**
 * The demo pipeline end to end, in-process: 2,000 generated leads in the Salesforce emulator,
 * the customers in the Athena emulator, the state machine run locally with every handler bound,
 * and every lead's score in the emulator compared with one computed here from the generated data
 * (test/e2e/support/expected-scores.ts, not the project's SQL).
 */
import { expectedScores } from './support/expected-scores';
import { exampleConfig, startWorld, type E2eWorld } from './support/harness';

const LEADS = 2_000;
const CUSTOMERS = 1_000;

describe('the demo pipeline', () => {
  let world: E2eWorld;
  beforeAll(async () => {
    world = await startWorld({ leads: LEADS, customers: CUSTOMERS, config: await exampleConfig() });
  });
  afterAll(async () => {
    await world?.close();
  });

  it('scores every lead in Salesforce as the rules say', async () => {
    const { execution, summary } = await world.run();
    expect(execution).toEqual({ status: 'succeeded', output: expect.anything() });
    expect(summary.status).toBe('succeeded');
    const expected = expectedScores(world.env.leads, world.env.customers).map((s) => s ?? null);
    expect(world.scores()).toEqual(expected);
    const scored = expected.filter((s) => s !== null).length;
    const writeback = summary.tasks.find((t) => t.kind === 'writeback');
    expect(writeback).toMatchObject({ rowsRead: scored, planned: scored, written: scored, failed: 0 });
  });
});
