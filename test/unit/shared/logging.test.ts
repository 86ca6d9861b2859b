/**
 * recordAfter: a step's bookkeeping (its Salesforce API calls added to the run's summary) runs
 * whether the step succeeded or failed, and a recording that fails as well (PostgreSQL down)
 * does not hide the step's own error. The recording goes through the real withTransaction and
 * addRunApiCalls, on a pool whose statements fail.
 */
import type { Pool, PoolClient } from 'pg';
import { withTransaction } from '../../../lambdas/connectors/postgres';
import { addRunApiCalls } from '../../../lambdas/core/writeback/state';
import { TerminalError, TransientError } from '../../../lambdas/shared/errors';
import { createMemoryLogger, recordAfter } from '../../../lambdas/shared/logging';

/** A pool whose every statement fails as a dropped connection does; `statements` counts them. */
function downPool(): Pool & { statements: string[] } {
  const statements: string[] = [];
  const client = {
    query: jest.fn((text: string) => {
      statements.push(text);
      return Promise.reject(new Error('Connection terminated unexpectedly'));
    }),
    release: jest.fn(),
  } as unknown as PoolClient;
  return Object.assign({ connect: jest.fn(() => Promise.resolve(client)) } as unknown as Pool, {
    statements,
  });
}

/** What a step records: its calls added to the run's summary, as Prepare and Push do. */
const recordCalls = (pool: Pool, calls: number) => async (): Promise<void> => {
  await withTransaction(pool, (client) => addRunApiCalls(client, 'run-1', ['prepare'], calls));
};

describe('recordAfter', () => {
  it("throws the step's own error when the recording fails too, and logs what could not be recorded", async () => {
    const pool = downPool();
    const logger = createMemoryLogger();
    const refused = new TerminalError('Salesforce login refused: INVALID_LOGIN');

    const ran = recordAfter(
      logger,
      () => Promise.reject(refused),
      recordCalls(pool, 3),
      () => 'the 3 Salesforce API calls Prepare made (roundtrip.runs summary.prepare.apiCalls of run run-1)',
    );

    await expect(ran).rejects.toBe(refused);
    // The recording was tried (and failed on its first statement).
    expect(pool.statements).toEqual(['BEGIN']);
    expect(logger.records).toEqual([
      {
        level: 'error',
        message:
          "Could not record the 3 Salesforce API calls Prepare made (roundtrip.runs summary.prepare.apiCalls of run run-1); the step's own error is thrown",
        attributes: {
          error: expect.stringContaining('Connection terminated unexpectedly'),
          stepError: 'Salesforce login refused: INVALID_LOGIN',
        },
      },
    ]);
  });

  it("throws the recording's error when the step itself succeeded", async () => {
    const pool = downPool();
    const logger = createMemoryLogger();

    const ran = recordAfter(
      logger,
      () => Promise.resolve('done'),
      recordCalls(pool, 2),
      () => '2 calls',
    );

    // Classified as withTransaction classifies a dropped connection: retried by the state machine.
    await expect(ran).rejects.toThrow(TransientError);
    await expect(ran).rejects.toThrow(/Connection terminated unexpectedly/);
    expect(logger.records).toEqual([]);
  });

  it("records after a failed step and throws the step's error when the recording succeeds", async () => {
    const recorded: string[] = [];
    const logger = createMemoryLogger();
    const failed = new TransientError('Salesforce is unreachable');

    const ran = recordAfter(
      logger,
      () => Promise.reject(failed),
      async () => {
        recorded.push('calls');
      },
      () => 'calls',
    );

    await expect(ran).rejects.toBe(failed);
    expect(recorded).toEqual(['calls']);
    expect(logger.records).toEqual([]);
  });

  it("answers the step's value once it is recorded", async () => {
    const order: string[] = [];
    const value = await recordAfter(
      createMemoryLogger(),
      async () => {
        order.push('step');
        return 42;
      },
      async () => {
        order.push('record');
      },
      () => 'calls',
    );
    expect(value).toBe(42);
    expect(order).toEqual(['step', 'record']);
  });
});
