/**
 * Lambda: the Report step (lambdas/core/writeback/report.ts), and the record of a write-back task
 * that failed, which the state machine's Catch of that task's steps sends here with the task's
 * name (`recordTaskFailure`) before the tasks after it run. The report's answer is what the state
 * machine keeps of it (`reportedOutput`: bounded, the errors left in roundtrip.runs).
 */
import {
  ReportInput,
  TaskFailureInput,
  parseStepInput,
  type ReportOutput,
  type TaskFailureOutput,
} from '../core/contracts';
import { recordTaskFailure, reportedOutput, reportRun } from '../core/writeback/report';
import { timeLeftOf, type InvocationContext } from '../shared/clock';
import { instrumentStep } from '../shared/observability';
import { lambdaDeps, type DepsProvider } from './deps';
import { snsNotifier } from './sns-deps';

/** The step's name, in the errors of a malformed event and on every log line. */
export const STEP = 'Report';

/** The step as this function runs it: parse the event with the step's schema, call the core function. */
export function createHandler(
  provider: DepsProvider,
): (event: unknown, context?: InvocationContext) => Promise<ReportOutput | TaskFailureOutput> {
  return async (event, context) => {
    if (event !== null && typeof event === 'object' && 'task' in event) {
      return recordTaskFailure(await provider(), parseStepInput(STEP, TaskFailureInput, event));
    }
    const input = parseStepInput(STEP, ReportInput, event);
    // What the state machine keeps of it, bounded: the errors are in roundtrip.runs. Lambda's clock:
    // the prune of old runs' details starts no batch it could not see through, and leaves the runs
    // left to the next report.
    return reportedOutput(await reportRun(await provider(), input, { timeLeft: timeLeftOf(context) }));
  };
}

/** This function's deps, built from the environment on the first invocation. */
export const deps = lambdaDeps({ notifier: snsNotifier });

/** The Lambda entry point. */
export const handler = instrumentStep(STEP, createHandler(deps));
