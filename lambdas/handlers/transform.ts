/** Lambda: the Transform step (lambdas/core/transform.ts). */
import { TransformInput, parseStepInput } from '../core/contracts';
import { runTransform, type TransformResult } from '../core/transform';
import { instrumentStep } from '../shared/observability';
import { depsForStep, lambdaDeps, type DepsProvider } from './deps';

/** The step's name, in the errors of a malformed event and on every log line. */
export const STEP = 'Transform';

/** The step as this function runs it: parse the event with the step's schema, call the core function. */
export function createHandler(provider: DepsProvider): (event: unknown) => Promise<TransformResult> {
  return async (event) => {
    const input = parseStepInput(STEP, TransformInput, event);
    return runTransform(await depsForStep(provider, input.runId), input);
  };
}

/** This function's deps, built from the environment on the first invocation. */
export const deps = lambdaDeps();

/** The Lambda entry point. */
export const handler = instrumentStep(STEP, createHandler(deps));
