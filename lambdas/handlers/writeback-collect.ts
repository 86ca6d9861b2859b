/** Lambda: the Collect step of a write-back task's Bulk jobs (lambdas/core/writeback/collect.ts). */
import { parseStepInput } from '../core/contracts';
import { WritebackCollectInput, type WritebackCollectOutput } from '../core/writeback/contracts';
import { collectWriteback } from '../core/writeback/collect';
import { instrumentStep } from '../shared/observability';
import { coreDeps } from './deps';

export const handler = instrumentStep(
  'CollectWriteback',
  async (event: unknown): Promise<WritebackCollectOutput> =>
    collectWriteback(await coreDeps(), parseStepInput('CollectWriteback', WritebackCollectInput, event)),
);
