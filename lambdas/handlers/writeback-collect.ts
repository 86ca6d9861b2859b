/** Lambda: the Collect step of a write-back task's Bulk jobs (lambdas/core/writeback/collect.ts). */
import { WritebackCollectInput, parseStepInput, type WritebackCollectOutput } from '../core/contracts';
import { collectWriteback } from '../core/writeback/collect';
import { timeLeftOf, type InvocationContext } from '../shared/clock';
import { instrumentStep } from '../shared/observability';
import { depsForStep, lambdaDeps, type DepsProvider } from './deps';
import { salesforceFromSecret } from './salesforce-deps';

/** The step's name, in the errors of a malformed event and on every log line. */
export const STEP = 'CollectWriteback';

/** The step as this function runs it: parse the event with the step's schema, call the core function. */
export function createHandler(
  provider: DepsProvider,
): (event: unknown, context?: InvocationContext) => Promise<WritebackCollectOutput> {
  return async (event, context) => {
    const input = parseStepInput(STEP, WritebackCollectInput, event);
    // Lambda's clock: the step starts no call it could not see through before its timeout.
    return collectWriteback(await depsForStep(provider, input.runId), input, {
      timeLeft: timeLeftOf(context),
    });
  };
}

/** This function's deps, built from the environment on the first invocation. */
export const deps = lambdaDeps({ salesforce: salesforceFromSecret });

/** The Lambda entry point. */
export const handler = instrumentStep(STEP, createHandler(deps));
