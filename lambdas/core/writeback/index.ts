/**
 * The write-back steps: plan → push → (wait → collect)* , then the run's report. Each is a core
 * function of `(deps, input)` for a thin Lambda handler; {@link runWriteback} chains them in-process
 * for the CLI, local runs and tests, waiting on the deps' clock where the state machine would Wait.
 */
import { TerminalError } from '../../shared/errors';
import type { CoreDeps } from '../deps';
import { collectWriteback } from './collect';
import { checkStepOutput } from '../contracts';
import {
  WritebackCollectInput,
  WritebackCollectOutput,
  WritebackPlanOutput,
  WritebackPushOutput,
  type WritebackCollected,
} from './contracts';
import { planWriteback } from './plan';
import { pushWriteback, type PushOptions } from './push';

export * from './contracts';
export {
  planWriteback,
  mapWritebackTask,
  choosePushApi,
  valueSql,
  MaxChangesExceededError,
  DRY_RUN_SAMPLE_ROWS,
  DRY_RUN_SAMPLE_MAX_BYTES,
  DRY_RUN_SAMPLE_VALUE_CHARS,
} from './plan';
export { pushWriteback, bulkCopySql, type PushOptions } from './push';
export { csvHeaderNames } from './bulk-results';
export { collectWriteback } from './collect';
export { reportRun } from './report';
export { ROW_LOCK_RETRIES, ROW_LOCK_ERROR } from './results';
export { mergeRunSummary, readRunSummary } from './state';

/** The most Collect rounds {@link runWriteback} makes before giving up on a Bulk job. */
export const MAX_COLLECT_ROUNDS = 40;

/** What {@link runWriteback} did. */
export interface WritebackRun {
  readonly plan: WritebackPlanOutput;
  /** Absent after a dry run. */
  readonly result?: WritebackCollected;
}

/**
 * Runs one write-back task of a run in-process: plan, push, and collect until the Bulk jobs are
 * done (sleeping on `deps.clock` as the state machine's Wait state would). Does not report: call
 * `reportRun` once every task is done.
 */
export async function runWriteback(
  deps: CoreDeps,
  input: { runId: string; task: string; dryRun?: boolean },
  options: PushOptions = {},
): Promise<WritebackRun> {
  const plan = checkStepOutput(
    'PlanWriteback',
    WritebackPlanOutput,
    await planWriteback(deps, { runId: input.runId, task: input.task, dryRun: input.dryRun ?? false }),
  );
  if (plan.status === 'dry-run') return { plan };
  const push = { runId: input.runId, task: input.task };
  const pushed = async (): Promise<WritebackPushOutput> =>
    checkStepOutput('PushWriteback', WritebackPushOutput, await pushWriteback(deps, push, options));
  // A push that ran out of time hands on (push-pending) and is called again at once, as the state
  // machine does; each invocation gives its records an outcome (a push whose call left some
  // without one fails instead), so this ends.
  let first = await pushed();
  while (first.status === 'push-pending') first = await pushed();
  let state: WritebackCollectOutput = first;
  while (state.status === 'bulk-pending') {
    // Polls of jobs still running; a Collect that handed on for want of time counts none.
    if (state.attempt >= MAX_COLLECT_ROUNDS) {
      throw new TerminalError(
        `Write-back ${input.task}: Bulk jobs ${state.jobIds.join(', ')} still running after ${state.attempt} polls`,
      );
    }
    // What the state machine hands to Collect, checked as Collect's Lambda would.
    const pending = checkStepOutput('PushWriteback', WritebackCollectInput, state);
    await deps.clock.sleep(pending.waitSeconds * 1000);
    state = checkStepOutput(
      'CollectWriteback',
      WritebackCollectOutput,
      await collectWriteback(deps, pending, options),
    );
  }
  return { plan, result: state };
}
