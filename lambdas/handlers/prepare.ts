/** Lambda: the Prepare step (lambdas/core/prepare.ts). */
import { prepare } from '../core/prepare';
import { PrepareInput, parseStepInput, type PrepareOutput } from '../core/contracts';
import { coreDeps } from './deps';

export async function handler(event: unknown): Promise<PrepareOutput> {
  return prepare(parseStepInput('Prepare', PrepareInput, event), await coreDeps());
}
