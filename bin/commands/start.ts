/**
 * `roundtrip start`: start an execution of the DEPLOYED state machine and follow it to the end,
 * printing each state as the execution history reports it, then the run's summary (from the
 * execution's output: the extract results, the transform and the Report step's write-back
 * figures). AWS credentials and region come from the SDK's usual environment.
 */
import { randomUUID } from 'node:crypto';
import {
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  SFNClient,
  StartExecutionCommand,
  type HistoryEvent,
} from '@aws-sdk/client-sfn';
import { RUN_ID_PATTERN, RunInput, problemsOf } from '../../lambdas/core/contracts';
import { AWS_API_TIMEOUTS } from '../../lambdas/shared/aws-timeouts';
import {
  EXIT,
  failureText,
  finishRun,
  noteErrorsCommand,
  note,
  parseOptions,
  UsageError,
  wholeNumberOption,
  type Command,
} from '../cli-common';
import {
  extractTaskSummary,
  tasksHeldBackAgain,
  prepareSummaries,
  record as obj,
  transformTaskSummaries,
  writebackTaskSummary,
  type RunSummary,
  type TaskSummary,
} from '../local/summary';

/** Seconds between two looks at the execution (DescribeExecution + GetExecutionHistory). */
export const FOLLOW_POLL_SECONDS = 5;

/**
 * The most `--poll-seconds` takes: an hour. A wait longer than Node's timers hold (2^31-1 ms,
 * under 25 days) would fire at once, and one of days follows nothing.
 */
export const MAX_FOLLOW_POLL_SECONDS = 3_600;

/** Statuses after which an execution does not change (DescribeExecution `status`). */
const FINAL_STATUSES = new Set(['SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED']);

/**
 * The summary of a finished execution from its output (statemachine/definition.ts keeps
 * `$.run`, `$.extract`, `$.transform` and `$.report`). A failed execution has no output: its
 * summary has no task rows, and the error is printed from the history. A run Prepare skipped
 * (another run going, `onOverlap: "skip"`) is `skipped`, its reason printed.
 */
export function summaryFromExecutionOutput(
  executionName: string,
  succeeded: boolean,
  output: unknown,
): RunSummary {
  const o = obj(output);
  const runId = typeof obj(o.run).runId === 'string' ? String(obj(o.run).runId) : executionName;
  const report = obj(o.report);
  const tasks: TaskSummary[] = [
    ...prepareSummaries(o.run),
    ...(Array.isArray(o.extract) ? (o.extract as unknown[]) : [])
      .map(obj)
      .filter((b) => b.status === 'loaded')
      .map((b) => extractTaskSummary(String(b.task), b)),
    ...transformTaskSummaries(o.transform),
    ...Object.entries(obj(report.writeback)).map(([task, figures]) => writebackTaskSummary(task, figures)),
  ];
  const skipped = succeeded && typeof obj(o.run).skipped === 'string';
  if (skipped) note(`run ${runId} skipped: ${String(obj(o.run).skipped)}`);
  const status = skipped ? 'skipped' : succeeded && report.status !== 'failed' ? 'succeeded' : 'failed';
  const heldBackAgain = tasksHeldBackAgain(report.writeback);
  return { runId, status, tasks, ...(heldBackAgain.length > 0 ? { heldBackAgain } : {}) };
}

/**
 * How the state that records a failed write-back task ends its name (statemachine/definition.ts
 * `taskStateNames(task).recordFailure`; not imported: that module loads the CDK).
 */
const RECORD_FAILURE_SUFFIX = ' record failure';

/** A progress line for a history event, or undefined for the ones not worth a line. */
export function describeEvent(event: HistoryEvent): string | undefined {
  const entered = event.stateEnteredEventDetails;
  if (entered && event.type === 'TaskStateEntered') return `  … ${entered.name}`;
  const exited = event.stateExitedEventDetails;
  if (exited && event.type === 'TaskStateExited') {
    // A write-back task's failure recorded: not a ✓ (the failed step's ✗ came before it).
    const name = exited.name ?? '';
    if (name.endsWith(RECORD_FAILURE_SUFFIX)) {
      return `  ✗ ${name.slice(0, -RECORD_FAILURE_SUFFIX.length)} recorded as failed: the run goes on with the other tasks, and fails at its end`;
    }
    return `  ✓ ${exited.name}`;
  }
  if (event.type === 'ExecutionFailed') {
    const d = event.executionFailedEventDetails;
    return `  ✗ ${failureText(d?.error, d?.cause).slice(0, 500)}`;
  }
  if (event.type === 'TaskFailed' || event.type === 'LambdaFunctionFailed') {
    const d = event.taskFailedEventDetails ?? event.lambdaFunctionFailedEventDetails;
    return `  ✗ ${failureText(d?.error, d?.cause).slice(0, 300)}`;
  }
  return undefined;
}

/** `roundtrip start`: see the module comment. */
export const start: Command = async (argv) => {
  const { values } = parseOptions(argv, {
    'state-machine-arn': { type: 'string' },
    input: { type: 'string' },
    name: { type: 'string' },
    region: { type: 'string' },
    'poll-seconds': { type: 'string' },
    json: { type: 'boolean' },
  });
  const arn = values['state-machine-arn'];
  if (typeof arn !== 'string' || !/^arn:aws[a-z-]*:states:[^:]+:\d{12}:stateMachine:.+$/.test(arn)) {
    throw new UsageError(
      `--state-machine-arn must be a state machine ARN (arn:aws:states:REGION:ACCOUNT:stateMachine:NAME), got ${JSON.stringify(arn ?? null)}`,
    );
  }
  const inputText = typeof values.input === 'string' ? values.input : '{}';
  let input: unknown;
  try {
    input = JSON.parse(inputText);
  } catch {
    throw new UsageError(`--input must be JSON, e.g. '{"dryRun": true}', got ${inputText}`);
  }
  // The input Prepare accepts (its task names are the deployed config's, checked there): a typo
  // such as {"ful": true} is named here, before an execution is started only to fail in Prepare.
  const checked = RunInput.safeParse(input);
  if (!checked.success) {
    throw new UsageError(
      `--input ${inputText}: ${problemsOf(checked.error)} (the input takes ${Object.keys(RunInput.shape).join(', ')}: docs/deploy.md, "Start a run from the console")`,
    );
  }
  // The execution name is the run id (`$$.Execution.Name`): Step Functions takes names Prepare
  // refuses (`nightly.backfill`), and such a run would fail before it is recorded in roundtrip.runs.
  const givenName = values.name;
  if (typeof givenName === 'string' && !RUN_ID_PATTERN.test(givenName)) {
    throw new UsageError(
      `--name must be 1 to 80 letters, digits, "-" or "_" (it becomes the run id), got ${JSON.stringify(givenName)}`,
    );
  }
  const pollMs =
    wholeNumberOption(
      'poll-seconds',
      values['poll-seconds'] as string | undefined,
      FOLLOW_POLL_SECONDS,
      1,
      MAX_FOLLOW_POLL_SECONDS,
    ) * 1000;
  const region = typeof values.region === 'string' ? values.region : arn.split(':')[3];
  // Time limits as the Lambdas' clients have: an unreachable endpoint fails with a clear error.
  const client = new SFNClient({ ...(region ? { region } : {}), requestHandler: AWS_API_TIMEOUTS });
  try {
    const name =
      typeof givenName === 'string'
        ? givenName
        : `cli-${new Date().toISOString().replace(/[:.]/g, '-')}-${randomUUID().slice(0, 8)}`;
    const started = await client
      .send(new StartExecutionCommand({ stateMachineArn: arn, name, input: inputText }))
      .catch((err: unknown) => {
        if (err instanceof Error && err.name === 'CredentialsProviderError') {
          throw new Error(
            `no AWS credentials to start ${arn}: roundtrip start calls Step Functions with the credentials of the environment. ` +
              `Set AWS_PROFILE (after aws sso login if it is an SSO profile), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; ` +
              `aws sts get-caller-identity shows whether any are found (${err.message})`,
            { cause: err },
          );
        }
        throw err;
      });
    const executionArn = started.executionArn;
    if (!executionArn) throw new Error('StartExecution returned no executionArn');
    note(`started ${executionArn}`);
    let lastEventId = 0;
    for (;;) {
      // The history so far, page by page; only events not printed yet are printed.
      let nextToken: string | undefined;
      do {
        const page = await client.send(
          new GetExecutionHistoryCommand({
            executionArn,
            maxResults: 1000,
            ...(nextToken ? { nextToken } : {}),
          }),
        );
        for (const event of page.events ?? []) {
          if ((event.id ?? 0) <= lastEventId) continue;
          lastEventId = event.id ?? lastEventId;
          const line = describeEvent(event);
          if (line) note(line);
        }
        nextToken = page.nextToken;
      } while (nextToken);
      const described = await client.send(new DescribeExecutionCommand({ executionArn }));
      if (described.status && FINAL_STATUSES.has(described.status)) {
        const output = described.output ? (JSON.parse(described.output) as unknown) : undefined;
        const summary = summaryFromExecutionOutput(name, described.status === 'SUCCEEDED', output);
        if (described.status !== 'SUCCEEDED') {
          note(
            `execution ${described.status}${described.error || described.cause ? `: ${failureText(described.error, described.cause)}` : ''}`,
          );
        }
        noteErrorsCommand(summary);
        return finishRun(summary, values.json === true);
      }
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
  } finally {
    client.destroy();
  }
};

export { EXIT };
