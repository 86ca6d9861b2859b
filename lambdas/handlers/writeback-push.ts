/** Lambda: the Push step of a write-back task (lambdas/core/writeback/push.ts). */
import { WritebackPushInput, parseStepInput, type WritebackPushOutput } from '../core/contracts';
import { pushWriteback } from '../core/writeback/push';
import { timeLeftOf, type InvocationContext } from '../shared/clock';
import { instrumentStep } from '../shared/observability';
import { depsForStep, lambdaDeps, type DepsProvider } from './deps';
import { salesforceFromSecret } from './salesforce-deps';

/** The step's name, in the errors of a malformed event and on every log line. */
export const STEP = 'PushWriteback';

/** The step as this function runs it: parse the event with the step's schema, call the core function. */
export function createHandler(
  provider: DepsProvider,
): (event: unknown, context?: InvocationContext) => Promise<WritebackPushOutput> {
  return async (event, context) => {
    const input = parseStepInput(STEP, WritebackPushInput, event);
    // Lambda's clock: the step starts no call it could not see through before its timeout.
    return pushWriteback(await depsForStep(provider, input.runId), input, { timeLeft: timeLeftOf(context) });
  };
}

/** This function's deps, built from the environment on the first invocation. */
export const deps = lambdaDeps({ salesforce: salesforceFromSecret });

/** The Lambda entry point. */
export const handler = instrumentStep(STEP, createHandler(deps));
