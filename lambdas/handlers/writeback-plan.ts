/** Lambda: the Plan step of a write-back task (lambdas/core/writeback/plan.ts). */
import { WritebackPlanInput, parseStepInput, type WritebackPlanOutput } from '../core/contracts';
import { planWriteback } from '../core/writeback/plan';
import { instrumentStep } from '../shared/observability';
import { depsForStep, lambdaDeps, type DepsProvider } from './deps';
import { salesforceFromSecret } from './salesforce-deps';

/** The step's name, in the errors of a malformed event and on every log line. */
export const STEP = 'PlanWriteback';

/** The step as this function runs it: parse the event with the step's schema, call the core function. */
export function createHandler(provider: DepsProvider): (event: unknown) => Promise<WritebackPlanOutput> {
  return async (event) => {
    const input = parseStepInput(STEP, WritebackPlanInput, event);
    return planWriteback(await depsForStep(provider, input.runId), input);
  };
}

/** This function's deps, built from the environment on the first invocation. */
export const deps = lambdaDeps({ salesforce: salesforceFromSecret });

/** The Lambda entry point. */
export const handler = instrumentStep(STEP, createHandler(deps));
