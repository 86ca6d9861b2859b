/** Lambda: the Transform step (lambdas/core/transform.ts). */
import { TransformInput, parseStepInput } from '../core/contracts';
import { runTransform, type TransformResult } from '../core/transform';
import { timeLeftOf, type InvocationContext } from '../shared/clock';
import { instrumentStep } from '../shared/observability';
import { depsForStep, lambdaDeps, type DepsProvider } from './deps';

/** The step's name, in the errors of a malformed event and on every log line. */
export const STEP = 'Transform';

/** The step as this function runs it: parse the event with the step's schema, call the core function. */
export function createHandler(
  provider: DepsProvider,
): (event: unknown, context?: InvocationContext) => Promise<TransformResult> {
  return async (event, context) => {
    const input = parseStepInput(STEP, TransformInput, event);
    // Lambda's clock: a statement still running near the timeout is canceled, not left running.
    return runTransform(await depsForStep(provider, input.runId), input, { timeLeft: timeLeftOf(context) });
  };
}

/** This function's deps, built from the environment on the first invocation. */
export const deps = lambdaDeps();

/** The Lambda entry point. */
export const handler = instrumentStep(STEP, createHandler(deps));
