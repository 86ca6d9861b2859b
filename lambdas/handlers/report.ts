/** Lambda: the Report step (lambdas/core/writeback/report.ts). */
import { parseStepInput } from '../core/contracts';
import { ReportInput, type ReportOutput } from '../core/writeback/contracts';
import { reportRun } from '../core/writeback/report';
import { instrumentStep } from '../shared/observability';
import { coreDeps } from './deps';

export const handler = instrumentStep('Report', async (event: unknown): Promise<ReportOutput> =>
  reportRun(await coreDeps(), parseStepInput('Report', ReportInput, event)),
);
