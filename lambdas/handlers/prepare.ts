/** Lambda: the Prepare step (lambdas/core/prepare.ts). */
import { PrepareInput, parseStepInput, type PrepareOutput } from '../core/contracts';
import { prepare } from '../core/prepare';
import { instrumentStep } from '../shared/observability';
import { lambdaDeps, type DepsProvider } from './deps';
import { salesforceFromSecret } from './salesforce-deps';
import { sfnExecutions } from './sfn-deps';

/** The step's name, in the errors of a malformed event and on every log line. */
export const STEP = 'Prepare';

/** The step as this function runs it: parse the event with the step's schema, call the core function. */
export function createHandler(provider: DepsProvider): (event: unknown) => Promise<PrepareOutput> {
  return async (event) => {
    const input = parseStepInput(STEP, PrepareInput, event);
    return prepare(input, await provider());
  };
}

/** This function's deps, built from the environment on the first invocation. */
export const deps = lambdaDeps({ salesforce: salesforceFromSecret, executions: sfnExecutions });

/** The Lambda entry point. */
export const handler = instrumentStep(STEP, createHandler(deps));
