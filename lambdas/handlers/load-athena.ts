/** Lambda: the Athena load step (lambdas/core/extract-athena.ts). */
import { AthenaLoadInput, parseStepInput, type AthenaLoadOutput } from '../core/contracts';
import { loadAthena } from '../core/extract-athena';
import { instrumentStep } from '../shared/observability';
import { depsForStep, lambdaDeps, type DepsProvider } from './deps';
import { athenaFromRole } from './athena-deps';

/** The step's name, in the errors of a malformed event and on every log line. */
export const STEP = 'LoadAthena';

/** The step as this function runs it: parse the event with the step's schema, call the core function. */
export function createHandler(provider: DepsProvider): (event: unknown) => Promise<AthenaLoadOutput> {
  return async (event) => {
    const input = parseStepInput(STEP, AthenaLoadInput, event);
    return loadAthena(input, await depsForStep(provider, input.runId));
  };
}

/** This function's deps, built from the environment on the first invocation. */
export const deps = lambdaDeps({ athena: athenaFromRole });

/** The Lambda entry point. */
export const handler = instrumentStep(STEP, createHandler(deps));
