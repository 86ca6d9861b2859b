/**
 * statemachine/local.ts shortens every Retry of the definition to a fraction of a second (a laptop
 * need not wait minutes for a throttle), but for the errors of waiting for another run
 * (`TaskBusyError`, `PushGoingOnError`): their retriers keep the definition's intervals, as the
 * deployed state machine waits, unless the caller gives `retryMs` (the tests do). Shortened, a
 * local run waiting for another's push spent its attempts in a second and stopped, while its
 * message said it waited for the other's end. Handlers are replaced here (a unit test of the
 * runner alone).
 */
import type { StateMachineDefinition } from 'aws-local-stepfunctions';
import type { CoreDeps } from '../../../lambdas/core/deps';
import { acceleratedClock } from '../../../lambdas/shared/clock';
import { TaskBusyError, TransientError } from '../../../lambdas/shared/errors';
import {
  DEFAULT_LOCAL_RETRY_MS,
  LOCAL_HANDLERS,
  localRetryIntervals,
  runStateMachineLocally,
} from '../../../statemachine/local';

const deps = { clock: acceleratedClock(0) } as unknown as CoreDeps;
const RESOURCE = 'arn:aws:lambda:us-east-1:000000000000:function:step';

// The local runner loads aws-local-stepfunctions and every handler module on its first run (a few
// seconds on a machine other test files keep busy): more than the unit tests' 5 s.
jest.setTimeout(30_000);

afterEach(() => jest.restoreAllMocks());

/** Binds the `report` handler to throw `first` once, then answer `{}`; the times of its calls. */
function failingOnce(first: Error): number[] {
  const calls: number[] = [];
  jest.spyOn(LOCAL_HANDLERS, 'report').mockImplementation(() => async () => {
    calls.push(Date.now());
    if (calls.length === 1) throw first;
    return {};
  });
  return calls;
}

/** The pause between the failed call and its retry. */
const pause = (calls: readonly number[]): number => (calls[1] ?? Infinity) - (calls[0] ?? 0);

/** A Task retried on TaskBusyError every second, and on anything else after 30 s. */
const definition = {
  StartAt: 'Step',
  States: {
    Step: {
      Type: 'Task',
      Resource: RESOURCE,
      Retry: [
        { ErrorEquals: ['TaskBusyError'], IntervalSeconds: 1, MaxAttempts: 2, JitterStrategy: 'NONE' },
        { ErrorEquals: ['States.ALL'], IntervalSeconds: 30, MaxAttempts: 2, JitterStrategy: 'NONE' },
      ],
      End: true,
    },
  },
} as unknown as StateMachineDefinition;

async function run(retryMs?: number): Promise<string> {
  const result = await runStateMachineLocally({
    definition,
    taskHandlers: { Step: 'report' },
    deps,
    input: {},
    executionName: 'local-retry',
    ...(retryMs !== undefined ? { retryMs } : {}),
  });
  return result.status;
}

describe('the local runner shortens Retry intervals, but not those of waiting for another run', () => {
  it("keeps the definition's intervals for a retrier of TaskBusyError or PushGoingOnError only, shortens the others, and shortens all of them when retryMs is given", () => {
    const retry = [
      { ErrorEquals: ['TaskBusyError'], IntervalSeconds: 20 },
      { ErrorEquals: ['PushGoingOnError'], IntervalSeconds: 120 },
      { ErrorEquals: ['TaskBusyError', 'TransientError'], IntervalSeconds: 5 },
      { ErrorEquals: ['States.ALL'], IntervalSeconds: 5 },
      {},
    ];
    expect(localRetryIntervals(retry, undefined)).toEqual([
      -1,
      -1,
      DEFAULT_LOCAL_RETRY_MS,
      DEFAULT_LOCAL_RETRY_MS,
      DEFAULT_LOCAL_RETRY_MS,
    ]);
    expect(localRetryIntervals(retry, 7)).toBe(7);
  });

  it('waits the definition’s interval before retrying a step that found the task busy', async () => {
    const calls = failingOnce(
      new TaskBusyError('Write-back Lead-update: another push holds the task; this run waits for its end'),
    );
    expect(await run()).toBe('succeeded');
    expect(calls).toHaveLength(2);
    // The retrier's one second, not DEFAULT_LOCAL_RETRY_MS (a lower bound: a busy machine only
    // makes it longer).
    expect(pause(calls)).toBeGreaterThanOrEqual(950);
  });

  it('retries any other error after DEFAULT_LOCAL_RETRY_MS, not the 30 s of the definition', async () => {
    const calls = failingOnce(new TransientError('Salesforce answered 503'));
    expect(await run()).toBe('succeeded');
    expect(calls).toHaveLength(2);
    expect(pause(calls)).toBeLessThan(25_000);
  });
});
