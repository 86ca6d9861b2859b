/**
 * One run of a pipeline on this machine: the state machine definition run by
 * statemachine/local.ts with laptop deps, then the run's summary read back from
 * `roundtrip.runs`. Used by `roundtrip demo`, `run` and `plan`, and by the e2e tests.
 */
import type { RunInput } from '../../lambdas/core/contracts';
import { newRunId } from '../../lambdas/core/prepare';
import { RUN_STATES } from '../../statemachine/definition';
import {
  runStateMachineLocally,
  type BoundDefinition,
  type LocalExecutionResult,
  type LocalRunEvent,
  type LocalRunOptions,
} from '../../statemachine/local';
import type { LocalDeps } from './deps';

export type { BoundDefinition };
import { readStoredRun, runSummary, type RunSummary, type StoredRun } from './summary';

/** Options of {@link runPipeline}. */
export interface PipelineRunOptions {
  readonly local: LocalDeps;
  /** The state machine to run (the synthesized one: statemachine/local.ts `loadPipelineDefinition`). */
  readonly definition: BoundDefinition;
  /** @default {} */
  readonly input?: RunInput;
  /** The execution name, which becomes the run id. @default a new time-sortable id */
  readonly runId?: string;
  readonly waitMs?: number;
  readonly retryMs?: number;
  /** Each Task invocation's time left, as Lambda would tell it. @default none (statemachine/local.ts) */
  readonly timeLeft?: LocalRunOptions['timeLeft'];
  readonly onEvent?: (event: LocalRunEvent) => void;
}

/** What {@link runPipeline} did. */
export interface PipelineRunResult {
  readonly execution: LocalExecutionResult;
  readonly summary: RunSummary;
  /** The run's row, when Prepare got as far as recording it. */
  readonly stored: StoredRun | undefined;
  /**
   * Whether `roundtrip.runs` has the run: false when neither Prepare nor a Report step could
   * record it (its PostgreSQL could not be reached or used), so that no command knows its id.
   */
  readonly recorded: boolean;
}

/** The steps that record a run in `roundtrip.runs`: Prepare, and the Report of either outcome. */
const RECORDING_STATES: ReadonlySet<string> = new Set([
  RUN_STATES.prepare,
  RUN_STATES.report,
  RUN_STATES.reportFailure,
]);

/** Runs the pipeline once; see the module comment. */
export async function runPipeline(options: PipelineRunOptions): Promise<PipelineRunResult> {
  const { deps } = options.local;
  const runId = options.runId ?? newRunId(deps.clock.now());
  let recordedBy: string | undefined;
  // The Task states that ended (not failed), in the order they first did: what the summary can
  // still say when the run's figures cannot be read back.
  const stepsEnded: string[] = [];
  const execution = await runStateMachineLocally({
    definition: options.definition.definition,
    taskHandlers: options.definition.taskHandlers,
    deps,
    ...(options.local.athenaClient ? { athenaClient: options.local.athenaClient } : {}),
    input: options.input ?? {},
    executionName: runId,
    ...(options.waitMs !== undefined ? { waitMs: options.waitMs } : {}),
    ...(options.retryMs !== undefined ? { retryMs: options.retryMs } : {}),
    ...(options.timeLeft ? { timeLeft: options.timeLeft } : {}),
    onEvent: (event) => {
      if (event.type === 'exited' && RECORDING_STATES.has(event.state)) recordedBy = event.state;
      if (event.type === 'exited' && event.stateType === 'Task' && !stepsEnded.includes(event.state))
        stepsEnded.push(event.state);
      options.onEvent?.(event);
    },
  });
  // A run that failed because PostgreSQL is unreachable cannot be read back either: its summary
  // is then the execution's (failed, no task rows), not an exception instead of a summary.
  let unreadBecause: string | undefined;
  const stored = await readStoredRun(options.local.pool, runId).catch((err: unknown) => {
    unreadBecause = err instanceof Error ? err.message : String(err);
    return undefined;
  });
  // Not stored and not read back: recorded all the same when a recording step ended (the database
  // went away after it).
  const recorded = stored !== undefined || recordedBy !== undefined;
  const summary: RunSummary = stored
    ? runSummary(deps.config, stored, execution.status)
    : {
        runId,
        status: 'failed',
        tasks: [],
        ...(!recorded
          ? { recorded: false as const }
          : unreadBecause !== undefined
            ? // Recorded, and its steps' figures with it, but they could not be read: say so, and
              // which steps ended as seen from here, rather than that none reported.
              { unread: { why: unreadBecause, stepsEnded } }
            : {}),
      };
  return { execution, summary, stored, recorded };
}
