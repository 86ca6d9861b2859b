/** Lambda: the Transform step (lambdas/core/transform.ts). */
import { z } from 'zod';
import { RunId, parseStepInput } from '../core/contracts';
import { runTransform, type TransformResult } from '../core/transform';
import { instrumentStep } from '../shared/observability';
import { coreDeps } from './deps';

/** The Transform step's input. (To move into lambdas/core/contracts.ts with the other steps.) */
const TransformInput = z.strictObject({ runId: RunId });

export const handler = instrumentStep('Transform', async (event: unknown): Promise<TransformResult> =>
  runTransform(await coreDeps(), parseStepInput('Transform', TransformInput, event)),
);
