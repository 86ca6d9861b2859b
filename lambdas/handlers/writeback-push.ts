/** Lambda: the Push step of a write-back task (lambdas/core/writeback/push.ts). */
import { WritebackPushInput, parseStepInput, type WritebackPushOutput } from '../core/contracts';
import { pushWriteback } from '../core/writeback/push';
import { instrumentStep } from '../shared/observability';
import { depsForStep, lambdaDeps, type DepsProvider } from './deps';
import { salesforceFromSecret } from './salesforce-deps';

/** The step's name, in the errors of a malformed event and on every log line. */
export const STEP = 'PushWriteback';

/** The step as this function runs it: parse the event with the step's schema, call the core function. */
export function createHandler(provider: DepsProvider): (event: unknown) => Promise<WritebackPushOutput> {
  return async (event) => {
    const input = parseStepInput(STEP, WritebackPushInput, event);
    return pushWriteback(await depsForStep(provider, input.runId), input);
  };
}

/** This function's deps, built from the environment on the first invocation. */
export const deps = lambdaDeps({ salesforce: salesforceFromSecret });

/** The Lambda entry point. */
export const handler = instrumentStep(STEP, createHandler(deps));
