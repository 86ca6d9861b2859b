import { DEFAULT_SALESFORCE_TIMEOUTS } from '../../../lambdas/connectors/salesforce/connector';
import { CallBudget, RECORD_ROOM_MS, roomFor } from '../../../lambdas/core/writeback/budget';

describe('CallBudget', () => {
  const timeouts = DEFAULT_SALESFORCE_TIMEOUTS;

  it('keeps room for a write’s longest answer and its recording, and for a read sent three times', () => {
    expect(roomFor('write', timeouts)).toBe(620_000 + RECORD_ROOM_MS);
    expect(roomFor('read', timeouts)).toBe(3 * 120_000 + 60_000 + RECORD_ROOM_MS);
    expect(roomFor('write', { ...timeouts, writeAnswerMs: 1_000 })).toBe(1_000 + RECORD_ROOM_MS);
  });

  it('always starts the first unit of an invocation, however little time is left', () => {
    const budget = new CallBudget(() => 0, timeouts);
    expect(budget.mayStart('write')).toBe(true);
    expect(budget.handedOn).toBe(false);
    expect(budget.mayStart('write')).toBe(false);
    expect(budget.handedOn).toBe(true);
  });

  it('starts further units while the time left holds their room, and never again once it said no', () => {
    let left = 900_000;
    const budget = new CallBudget(() => left, timeouts);
    expect(budget.mayStart('write')).toBe(true);
    left = 680_000;
    expect(budget.mayStart('write')).toBe(true);
    left = 679_999;
    expect(budget.mayStart('read')).toBe(true);
    expect(budget.mayStart('write')).toBe(false);
    left = 900_000;
    expect(budget.mayStart('read')).toBe(false);
  });

  it('starts a unit whatever the time left again when the first was refunded (a call refused unprocessed), but not once it said no', () => {
    const budget = new CallBudget(() => 0, timeouts);
    expect(budget.mayStart('write')).toBe(true);
    budget.refund();
    expect(budget.mayStart('write')).toBe(true);
    expect(budget.mayStart('write')).toBe(false);
    budget.refund();
    expect(budget.mayStart('write')).toBe(false);
    expect(budget.handedOn).toBe(true);
  });

  it('has no end without a clock', () => {
    const budget = new CallBudget(undefined, timeouts);
    for (let i = 0; i < 100; i += 1) expect(budget.mayStart('write')).toBe(true);
  });
});
