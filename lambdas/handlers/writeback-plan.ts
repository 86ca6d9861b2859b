/** Lambda: the Plan step of a write-back task (lambdas/core/writeback/plan.ts). */
import { parseStepInput } from '../core/contracts';
import { WritebackPlanInput, type WritebackPlanOutput } from '../core/writeback/contracts';
import { planWriteback } from '../core/writeback/plan';
import { instrumentStep } from '../shared/observability';
import { coreDeps } from './deps';

export const handler = instrumentStep('PlanWriteback', async (event: unknown): Promise<WritebackPlanOutput> =>
  planWriteback(await coreDeps(), parseStepInput('PlanWriteback', WritebackPlanInput, event)),
);
