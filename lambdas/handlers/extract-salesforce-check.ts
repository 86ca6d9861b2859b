/** Lambda: the check step of a Bulk Salesforce extract (lambdas/core/extract-salesforce.ts). */
import { checkSalesforceExtract } from '../core/extract-salesforce';
import { SalesforceExtractCheckInput, parseStepInput, type SalesforceExtractOutput } from '../core/contracts';
import { coreDeps } from './deps';

export async function handler(event: unknown): Promise<SalesforceExtractOutput> {
  return checkSalesforceExtract(
    parseStepInput('CheckSalesforceExtract', SalesforceExtractCheckInput, event),
    await coreDeps(),
  );
}
