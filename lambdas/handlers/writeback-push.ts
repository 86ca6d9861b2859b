/** Lambda: the Push step of a write-back task (lambdas/core/writeback/push.ts). */
import { parseStepInput } from '../core/contracts';
import { WritebackPushInput, type WritebackPushOutput } from '../core/writeback/contracts';
import { pushWriteback } from '../core/writeback/push';
import { instrumentStep } from '../shared/observability';
import { coreDeps } from './deps';

export const handler = instrumentStep('PushWriteback', async (event: unknown): Promise<WritebackPushOutput> =>
  pushWriteback(await coreDeps(), parseStepInput('PushWriteback', WritebackPushInput, event)),
);
