/**
 * statemachine/local.ts enforces Step Functions' payload quota as AWS does: a state's input or
 * output, or a Task's result, over 256 KiB (262144 bytes of JSON in UTF-8) fails the execution with
 * States.DataLimitExceeded, which neither Retry nor Catch on States.ALL handles ("Error names",
 * Step Functions developer guide). aws-local-stepfunctions checks no size: without this, a run
 * that fails deployed succeeded on a laptop. Handlers are replaced here (a unit test of the
 * runner alone).
 */
import type { StateMachineDefinition } from 'aws-local-stepfunctions';
import type { CoreDeps } from '../../../lambdas/core/deps';
import { acceleratedClock } from '../../../lambdas/shared/clock';
import {
  LOCAL_HANDLERS,
  MAX_PAYLOAD_BYTES,
  runStateMachineLocally,
  STATES_DATA_LIMIT_EXCEEDED,
} from '../../../statemachine/local';

const deps = { clock: acceleratedClock(0) } as unknown as CoreDeps;
const RESOURCE = 'arn:aws:lambda:us-east-1:000000000000:function:step';

/** A string whose JSON text is `bytes` long. */
const jsonOfBytes = (bytes: number): string => 'x'.repeat(bytes - 2);

/** Replaces the `report` handler by `fn`, counting its calls. */
function bindReport(fn: (event: unknown) => Promise<unknown>): { calls: number } {
  const counter = { calls: 0 };
  jest.spyOn(LOCAL_HANDLERS, 'report').mockImplementation(() => async (event: unknown) => {
    counter.calls += 1;
    return fn(event);
  });
  return counter;
}

/** A Task bound to `report`, retried and caught on States.ALL, then `after`. */
const guardedTask = (extra: Record<string, unknown> = {}) =>
  Object.fromEntries(
    Object.entries({
      Type: 'Task',
      Resource: RESOURCE,
      Retry: [{ ErrorEquals: ['States.ALL'], MaxAttempts: 2, IntervalSeconds: 1 }],
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'Caught' }],
      Next: 'Done',
      ...extra,
    }).filter(([, value]) => value !== undefined),
  );

function run(definition: Record<string, unknown>, input: unknown = {}) {
  return runStateMachineLocally({
    definition: definition as unknown as StateMachineDefinition,
    taskHandlers: { Step: 'report' },
    deps,
    input,
    executionName: 'payload-limit',
    retryMs: 1,
  });
}

// The local runner loads aws-local-stepfunctions and every handler module on its first run (a few
// seconds on a machine other test files keep busy): more than the unit tests' 5 s.
jest.setTimeout(30_000);

afterEach(() => jest.restoreAllMocks());

describe('the local runner and the 256 KiB payload quota', () => {
  it('fails the execution when a Task returns more than 256 KiB: neither its Retry nor its Catch on States.ALL handles it', async () => {
    const step = bindReport(async () => ({ big: jsonOfBytes(MAX_PAYLOAD_BYTES) }));
    const result = await run({
      StartAt: 'Step',
      States: {
        Step: guardedTask({ ResultPath: '$.step' }),
        Caught: { Type: 'Succeed' },
        Done: { Type: 'Succeed' },
      },
    });
    expect(result).toMatchObject({ status: 'failed', error: STATES_DATA_LIMIT_EXCEEDED });
    expect(result.status === 'failed' && result.cause).toMatch(
      /^the result of Task state "Step" is 262152 bytes of JSON, over Step Functions' 262144-byte \(256 KiB\) payload quota/,
    );
    expect(step.calls).toBe(1);
  });

  it('fails the execution when a Catch puts an error whose Cause is over 256 KiB into the state output', async () => {
    bindReport(async () => {
      throw new Error(jsonOfBytes(MAX_PAYLOAD_BYTES));
    });
    const result = await run({
      StartAt: 'Step',
      States: {
        Step: guardedTask({ Retry: undefined }),
        Caught: { Type: 'Succeed' },
        Done: { Type: 'Succeed' },
      },
    });
    expect(result).toMatchObject({ status: 'failed', error: STATES_DATA_LIMIT_EXCEEDED });
    expect(result.status === 'failed' && result.cause).toMatch(/^the output of state "Step" is \d+ bytes/);
  });

  it('stops at the state whose output is over the quota: the Task after it does not run', async () => {
    const step = bindReport(async () => ({ ok: true }));
    const result = await run({
      StartAt: 'Big',
      States: {
        Big: { Type: 'Pass', Result: jsonOfBytes(MAX_PAYLOAD_BYTES + 1), Next: 'Step' },
        Step: guardedTask({ ResultPath: null }),
        Caught: { Type: 'Succeed' },
        Done: { Type: 'Succeed' },
      },
    });
    expect(result).toMatchObject({ status: 'failed', error: STATES_DATA_LIMIT_EXCEEDED });
    expect(result.status === 'failed' && result.cause).toMatch(/^the output of state "Big" is 262145 bytes/);
    expect(step.calls).toBe(0);
  });

  it("refuses a Task's input over the quota after Parameters, before its Lambda runs", async () => {
    const step = bindReport(async () => ({ ok: true }));
    const result = await run(
      {
        StartAt: 'Step',
        States: {
          Step: guardedTask({
            Parameters: { 'big.$': "States.Format('{}{}', $.half, $.half)" },
            ResultPath: null,
          }),
          Caught: { Type: 'Succeed' },
          Done: { Type: 'Succeed' },
        },
      },
      { half: jsonOfBytes(MAX_PAYLOAD_BYTES / 2) },
    );
    // Only the doubled text is over the quota: the execution's input, half of it, is not.
    expect(result).toMatchObject({ status: 'failed', error: STATES_DATA_LIMIT_EXCEEDED });
    expect(step.calls).toBe(0);
  });

  it('counts UTF-8 bytes, and lets a payload of exactly 256 KiB through', async () => {
    const step = bindReport(async () => 'é'.repeat((MAX_PAYLOAD_BYTES - 2) / 2));
    const exactly = await run({
      StartAt: 'Step',
      States: { Step: guardedTask(), Caught: { Type: 'Succeed' }, Done: { Type: 'Succeed' } },
    });
    expect(exactly.status).toBe('succeeded');
    expect(step.calls).toBe(1);

    bindReport(async () => 'é'.repeat((MAX_PAYLOAD_BYTES - 2) / 2 + 1));
    const over = await run({
      StartAt: 'Step',
      States: { Step: guardedTask(), Caught: { Type: 'Succeed' }, Done: { Type: 'Succeed' } },
    });
    expect(over).toMatchObject({ status: 'failed', error: STATES_DATA_LIMIT_EXCEEDED });
  });
});
