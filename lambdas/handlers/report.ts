/** Lambda: the Report step (lambdas/core/writeback/report.ts). */
import { ReportInput, parseStepInput, type ReportOutput } from '../core/contracts';
import { reportRun } from '../core/writeback/report';
import { instrumentStep } from '../shared/observability';
import { lambdaDeps, type DepsProvider } from './deps';
import { snsNotifier } from './sns-deps';

/** The step's name, in the errors of a malformed event and on every log line. */
export const STEP = 'Report';

/** The step as this function runs it: parse the event with the step's schema, call the core function. */
export function createHandler(provider: DepsProvider): (event: unknown) => Promise<ReportOutput> {
  return async (event) => {
    const input = parseStepInput(STEP, ReportInput, event);
    return reportRun(await provider(), input);
  };
}

/** This function's deps, built from the environment on the first invocation. */
export const deps = lambdaDeps({ notifier: snsNotifier });

/** The Lambda entry point. */
export const handler = instrumentStep(STEP, createHandler(deps));
