/** Lambda: the check step of a Bulk Salesforce extract (lambdas/core/extract-salesforce.ts). */
import { SalesforceExtractCheckInput, parseStepInput, type SalesforceExtractOutput } from '../core/contracts';
import { checkSalesforceExtract } from '../core/extract-salesforce';
import { instrumentStep } from '../shared/observability';
import { depsForStep, lambdaDeps, type DepsProvider } from './deps';
import { salesforceFromSecret } from './salesforce-deps';

/** The step's name, in the errors of a malformed event and on every log line. */
export const STEP = 'CheckSalesforceExtract';

/** The step as this function runs it: parse the event with the step's schema, call the core function. */
export function createHandler(provider: DepsProvider): (event: unknown) => Promise<SalesforceExtractOutput> {
  return async (event) => {
    const input = parseStepInput(STEP, SalesforceExtractCheckInput, event);
    return checkSalesforceExtract(input, await depsForStep(provider, input.runId));
  };
}

/** This function's deps, built from the environment on the first invocation. */
export const deps = lambdaDeps({ salesforce: salesforceFromSecret });

/** The Lambda entry point. */
export const handler = instrumentStep(STEP, createHandler(deps));
