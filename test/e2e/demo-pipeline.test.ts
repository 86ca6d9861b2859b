/**
 * The demo pipeline end to end, in-process: 2,000 generated leads in the Salesforce emulator,
 * the customers in the Athena emulator, the state machine run locally with every handler bound,
 * and every lead's score in the emulator compared with one computed here from the generated data
 * (test/e2e/support/expected-scores.ts, not the project's SQL).
 */
import { summaryFromExecutionOutput } from '../../bin/commands/start';
import { expectedScores } from './support/expected-scores';
import { exampleConfig, startWorld, type E2eWorld } from './support/harness';

const LEADS = 2_000;
const CUSTOMERS = 1_000;

describe('the demo pipeline', () => {
  let world: E2eWorld;
  let salesforceExtracts: Set<string>;
  beforeAll(async () => {
    const config = await exampleConfig();
    salesforceExtracts = new Set(config.extract.filter((t) => t.from === 'salesforce').map((t) => t.name));
    world = await startWorld({ leads: LEADS, customers: CUSTOMERS, config });
  });
  afterAll(async () => {
    await world?.close();
  });

  it('scores every lead in Salesforce as the rules say', async () => {
    world.env.salesforce.calls.clear();
    const { execution, summary } = await world.run();
    expect(execution).toEqual({ status: 'succeeded', output: expect.anything() });
    expect(summary.status).toBe('succeeded');
    const expected = expectedScores(world.env.leads, world.env.customers).map((s) => s ?? null);
    expect(world.scores()).toEqual(expected);
    const scored = expected.filter((s) => s !== null).length;
    const writeback = summary.tasks.find((t) => t.kind === 'writeback');
    expect(writeback).toMatchObject({ rowsRead: scored, planned: scored, written: scored, failed: 0 });
    // Every Salesforce call of the run is in its summary, and no other: Prepare's (the limits and
    // the counts of its forecast), the Salesforce extracts' and the write-backs'.
    const salesforceCalls = summary.tasks
      .filter((t) => t.kind === 'prepare' || t.kind === 'writeback' || salesforceExtracts.has(t.task))
      .reduce((n, t) => n + t.apiCalls, 0);
    expect(summary.tasks.find((t) => t.kind === 'prepare')?.apiCalls).toBeGreaterThan(0);
    expect(salesforceCalls).toBe(world.env.salesforce.calls.all().filter((c) => c.counted).length);
    // `roundtrip start` builds the same summary from a deployed execution's output, which has
    // the shape of this local one (the same definition).
    const output = execution.status === 'succeeded' ? execution.output : undefined;
    expect(summaryFromExecutionOutput('unused', true, output)).toEqual(summary);
  });

  it('sends nothing on a rerun over the same data', async () => {
    const before = world.env.salesforce.calls.writes().length;
    const { summary } = await world.run();
    expect(summary.status).toBe('succeeded');
    expect(world.env.salesforce.calls.writes().length).toBe(before);
    expect(summary.tasks.find((t) => t.kind === 'writeback')).toMatchObject({ planned: 0, written: 0 });
  });

  it('updates exactly the leads whose score changed when 1% of the Athena rows change', async () => {
    const old = world.env.customers;
    const oldScores = expectedScores(world.env.leads, old);
    // 1% of the customers (every hundredth): lifetime value and last order moved.
    const changed = old.map((c, i) =>
      i % 100 === 0
        ? {
            ...c,
            lifetime_value: c.lifetime_value === '25000.00' ? '10.00' : '25000.00',
            last_order_at: '2025-05-30 12:00:00',
          }
        : c,
    );
    await world.env.writeCustomers(changed);
    const newScores = expectedScores(world.env.leads, changed);
    const affected = world.env.leadIds.filter((_, i) => newScores[i] !== oldScores[i]);
    expect(affected.length).toBeGreaterThan(0);

    world.env.salesforce.calls.clear();
    const { summary } = await world.run();
    expect(summary.status).toBe('succeeded');
    expect(world.scores()).toEqual(newScores.map((s) => s ?? null));
    const written = world.env.salesforce.calls.writes().reduce((n, call) => n + (call.records ?? 0), 0);
    expect(written).toBe(affected.length);
    expect(summary.tasks.find((t) => t.kind === 'writeback')).toMatchObject({
      planned: affected.length,
      written: affected.length,
      failed: 0,
    });
  });
});
