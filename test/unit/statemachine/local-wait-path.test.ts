/**
 * statemachine/local.ts shortens every Wait state, as aws-local-stepfunctions' waitTimeOverrides do,
 * but a Wait's SecondsPath is still read as Step Functions reads it: a path its input lacks, or a
 * value that is not an integer of seconds from 0, is a States.Runtime error that fails the
 * execution, uncaught (the library skips the path when the wait is overridden). Handlers are
 * replaced here (a unit test of the runner alone).
 */
import type { StateMachineDefinition } from 'aws-local-stepfunctions';
import type { CoreDeps } from '../../../lambdas/core/deps';
import { acceleratedClock } from '../../../lambdas/shared/clock';
import { LOCAL_HANDLERS, runStateMachineLocally } from '../../../statemachine/local';

const deps = { clock: acceleratedClock(0) } as unknown as CoreDeps;

// The local runner loads aws-local-stepfunctions and every handler module on its first run (a few
// seconds on a machine other test files keep busy): more than the unit tests' 5 s.
jest.setTimeout(30_000);

afterEach(() => jest.restoreAllMocks());

async function waitThenStep(given: unknown) {
  let calls = 0;
  jest.spyOn(LOCAL_HANDLERS, 'report').mockImplementation(() => async () => {
    calls += 1;
    return { ok: true };
  });
  const definition = {
    StartAt: 'Pending',
    States: {
      Pending: { Type: 'Pass', Result: given, ResultPath: '$.wb', Next: 'Wait' },
      Wait: { Type: 'Wait', SecondsPath: '$.wb.waitSeconds', Next: 'Step' },
      Step: {
        Type: 'Task',
        Resource: 'arn:aws:lambda:us-east-1:000000000000:function:step',
        Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'Caught' }],
        End: true,
      },
      Caught: { Type: 'Succeed' },
    },
  } as unknown as StateMachineDefinition;
  const result = await runStateMachineLocally({
    definition,
    taskHandlers: { Step: 'report' },
    deps,
    input: {},
    executionName: 'wait-path',
    waitMs: 1,
  });
  return { result, calls };
}

describe("the local runner's Wait states", () => {
  it('wait the shortened time when SecondsPath reads an integer of seconds', async () => {
    const { result, calls } = await waitThenStep({ waitSeconds: 30 });
    expect(result.status).toBe('succeeded');
    expect(calls).toBe(1);
  });

  it.each([
    ['a path the input lacks', { status: 'bulk-pending' }, /lacks \$\.wb\.waitSeconds/],
    ['seconds that are not an integer', { waitSeconds: 2.5 }, /\$\.wb\.waitSeconds is 2\.5/],
    ['seconds as text', { waitSeconds: '30' }, /\$\.wb\.waitSeconds is "30"/],
    ['negative seconds', { waitSeconds: -1 }, /\$\.wb\.waitSeconds is -1/],
  ])(
    'fail the execution with States.Runtime, uncaught, on %s, as Step Functions does',
    async (_, given, cause) => {
      const { result, calls } = await waitThenStep(given);
      expect(result).toMatchObject({ status: 'failed', error: 'States.Runtime' });
      expect(result.status === 'failed' && result.cause).toMatch(/^Wait state "Wait": its SecondsPath /);
      expect(result.status === 'failed' && result.cause).toMatch(cause);
      expect(calls).toBe(0);
    },
  );
});
