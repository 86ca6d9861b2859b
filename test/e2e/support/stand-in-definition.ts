/**
 * A hand-written ASL of the run's shape (Prepare → Parallel extracts with the Bulk poll loop and
 * the Athena `.sync` task → Transform → Plan → Push → Collect loop → Report), used ONLY to test the
 * local runner's mechanics (Task bindings, the `.sync` binding, Wait and Retry overrides, Catch to
 * Report) independently of the CDK code. The pipeline itself always runs the synthesized
 * definition (statemachine/local.ts `loadPipelineDefinition`).
 */
import type { StateMachineDefinition } from 'aws-local-stepfunctions';
import type { PipelineConfig } from '../../../lambdas/config';
import type { HandlerName } from '../../../statemachine/local';
import { ATHENA_SYNC_RESOURCE } from '../../../statemachine/local';

const lambda = (name: string): string => `arn:aws:lambda:us-east-1:123456789012:function:standin-${name}`;
const retry = [{ ErrorEquals: ['TransientError'], IntervalSeconds: 2, MaxAttempts: 4, BackoffRate: 2 }];
const catchToReport = [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'ReportFailure' }];

/** The stand-in definition and its Task → handler map for `config`. */
export function standInDefinition(config: PipelineConfig): {
  definition: StateMachineDefinition;
  taskHandlers: Record<string, HandlerName>;
} {
  const taskHandlers: Record<string, HandlerName> = {
    Prepare: 'prepare',
    Transform: 'transform',
    Report: 'report',
    ReportFailure: 'report',
  };
  const branches: unknown[] = [];
  for (const task of config.extract) {
    if (task.from === 'salesforce') {
      const [start, wait, check, choice] = ['Extract', 'Wait', 'Check', 'Loaded'].map(
        (p) => `${p}${task.name}`,
      );
      taskHandlers[start as string] = 'extract-salesforce';
      taskHandlers[check as string] = 'extract-salesforce-check';
      branches.push({
        StartAt: start,
        States: {
          [start as string]: {
            Type: 'Task',
            Resource: lambda('extract-salesforce'),
            Parameters: { 'runId.$': '$.prepare.runId', task: task.name, 'full.$': '$.prepare.full' },
            Retry: retry,
            Next: choice,
          },
          [choice as string]: {
            Type: 'Choice',
            Choices: [{ Variable: '$.status', StringEquals: 'bulk-pending', Next: wait }],
            Default: `Done${task.name}`,
          },
          [wait as string]: { Type: 'Wait', SecondsPath: '$.waitSeconds', Next: check },
          [check as string]: {
            Type: 'Task',
            Resource: lambda('extract-salesforce-check'),
            Retry: retry,
            Next: choice,
          },
          [`Done${task.name}`]: { Type: 'Succeed' },
        },
      });
    } else {
      const query = `Query${task.name}`;
      const load = `Load${task.name}`;
      taskHandlers[load] = 'load-athena';
      branches.push({
        StartAt: query,
        States: {
          [query]: {
            Type: 'Task',
            Resource: ATHENA_SYNC_RESOURCE,
            Parameters: {
              QueryString: task.query,
              WorkGroup: config.athena?.workgroup ?? 'primary',
              QueryExecutionContext: { Database: config.athena?.database ?? 'default' },
              ...(config.athena?.outputLocation
                ? { ResultConfiguration: { OutputLocation: config.athena.outputLocation } }
                : {}),
            },
            Retry: [{ ErrorEquals: ['Athena.TooManyRequestsException'], MaxAttempts: 5 }],
            ResultPath: '$.query',
            Next: load,
          },
          [load]: {
            Type: 'Task',
            Resource: lambda('load-athena'),
            Parameters: {
              'runId.$': '$.prepare.runId',
              task: task.name,
              'QueryExecution.$': '$.query.QueryExecution',
            },
            Retry: retry,
            End: true,
          },
        },
      });
    }
  }
  const states: Record<string, unknown> = {
    Prepare: {
      Type: 'Task',
      Resource: lambda('prepare'),
      Parameters: { 'input.$': '$$.Execution.Input', 'runId.$': '$$.Execution.Name' },
      ResultPath: '$.prepare',
      Retry: retry,
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'FailBeforeRun' }],
      Next: 'Extract',
    },
    Extract: {
      Type: 'Parallel',
      Branches: branches,
      ResultPath: null,
      Catch: catchToReport,
      Next: 'Transform',
    },
    Transform: {
      Type: 'Task',
      Resource: lambda('transform'),
      Parameters: { 'runId.$': '$.prepare.runId' },
      ResultPath: null,
      Retry: retry,
      Catch: catchToReport,
      Next: config.writeback.length > 0 ? `Plan${config.writeback[0]?.name}` : 'Report',
    },
  };
  config.writeback.forEach((task, i) => {
    const next = config.writeback[i + 1] ? `Plan${config.writeback[i + 1]?.name}` : 'Report';
    const [plan, push, pushed, wait, collect] = ['Plan', 'Push', 'Pushed', 'WaitPush', 'Collect'].map(
      (p) => `${p}${task.name}`,
    ) as [string, string, string, string, string];
    taskHandlers[plan] = 'writeback-plan';
    taskHandlers[push] = 'writeback-push';
    taskHandlers[collect] = 'writeback-collect';
    Object.assign(states, {
      [plan]: {
        Type: 'Task',
        Resource: lambda('writeback-plan'),
        Parameters: { 'runId.$': '$.prepare.runId', task: task.name, 'dryRun.$': '$.prepare.dryRun' },
        ResultPath: '$.plan',
        Retry: retry,
        Catch: catchToReport,
        Next: `Planned${task.name}`,
      },
      [`Planned${task.name}`]: {
        Type: 'Choice',
        Choices: [{ Variable: '$.plan.status', StringEquals: 'dry-run', Next: next }],
        Default: push,
      },
      [push]: {
        Type: 'Task',
        Resource: lambda('writeback-push'),
        Parameters: { 'runId.$': '$.prepare.runId', task: task.name },
        ResultPath: '$.push',
        Retry: retry,
        Catch: catchToReport,
        Next: pushed,
      },
      [pushed]: {
        Type: 'Choice',
        Choices: [{ Variable: '$.push.status', StringEquals: 'bulk-pending', Next: wait }],
        Default: next,
      },
      [wait]: { Type: 'Wait', SecondsPath: '$.push.waitSeconds', Next: collect },
      [collect]: {
        Type: 'Task',
        Resource: lambda('writeback-collect'),
        InputPath: '$.push',
        ResultPath: '$.push',
        Retry: retry,
        Catch: catchToReport,
        Next: pushed,
      },
    });
  });
  Object.assign(states, {
    Report: {
      Type: 'Task',
      Resource: lambda('report'),
      Parameters: { 'runId.$': '$.prepare.runId' },
      Retry: retry,
      Next: 'Reported',
    },
    Reported: {
      Type: 'Choice',
      Choices: [{ Variable: '$.status', StringEquals: 'failed', Next: 'RunFailed' }],
      Default: 'RunSucceeded',
    },
    ReportFailure: {
      Type: 'Task',
      Resource: lambda('report'),
      Parameters: { 'runId.$': '$.prepare.runId', 'error.$': '$.error' },
      Retry: retry,
      Next: 'RunFailed',
    },
    RunFailed: { Type: 'Fail', Error: 'RunFailed', Cause: 'The run failed: see roundtrip.runs' },
    FailBeforeRun: { Type: 'Fail', Error: 'PrepareFailed', Cause: 'Prepare failed' },
    RunSucceeded: { Type: 'Succeed' },
  });
  return {
    definition: { StartAt: 'Prepare', States: states } as unknown as StateMachineDefinition,
    taskHandlers,
  };
}
