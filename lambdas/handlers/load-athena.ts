/** Lambda: the Athena load step (lambdas/core/extract-athena.ts). */
import { loadAthena } from '../core/extract-athena';
import { AthenaLoadInput, parseStepInput, type AthenaLoadOutput } from '../core/contracts';
import { coreDeps } from './deps';

export async function handler(event: unknown): Promise<AthenaLoadOutput> {
  return loadAthena(parseStepInput('LoadAthena', AthenaLoadInput, event), await coreDeps());
}
