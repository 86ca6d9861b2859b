/** Lambda: the Salesforce extract step (lambdas/core/extract-salesforce.ts). */
import { extractSalesforce } from '../core/extract-salesforce';
import { SalesforceExtractInput, parseStepInput, type SalesforceExtractOutput } from '../core/contracts';
import { coreDeps } from './deps';

export async function handler(event: unknown): Promise<SalesforceExtractOutput> {
  return extractSalesforce(
    parseStepInput('ExtractSalesforce', SalesforceExtractInput, event),
    await coreDeps(),
  );
}
