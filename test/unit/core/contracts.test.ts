import {
  AthenaLoadInput,
  PrepareInput,
  ReportInput,
  RunInput,
  SalesforceExtractOutput,
  TransformInput,
  WritebackPlanInput,
  WritebackCollectInput,
  WritebackPushOutput,
  checkStepOutput,
  parseStepInput,
  problemsOf,
} from '../../../lambdas/core/contracts';
import * as writebackContracts from '../../../lambdas/core/writeback/contracts';
import { TerminalError } from '../../../lambdas/shared/errors';

describe('step contracts', () => {
  it('accepts the empty run input and the documented overrides', () => {
    expect(RunInput.parse({})).toEqual({});
    expect(RunInput.parse({ dryRun: true, full: true, tasks: ['Lead'] })).toEqual({
      dryRun: true,
      full: true,
      tasks: ['Lead'],
    });
  });

  it('refuses unknown keys and empty task lists in the run input, naming the path', () => {
    expect(() => parseStepInput('Prepare', PrepareInput, { input: { ful: true } })).toThrow(
      new TerminalError('Invalid input of step Prepare: input: Unrecognized key: "ful"'),
    );
    expect(() => parseStepInput('Prepare', PrepareInput, { input: { tasks: [] } })).toThrow(
      /input\.tasks: expected at least one task name, or leave "tasks" out/,
    );
  });

  it('formats every problem by path, and one of the whole value by the root label or as its bare message', () => {
    const problems = (value: unknown, rootLabel?: string): string => {
      const result = RunInput.safeParse(value);
      if (result.success) throw new Error('expected a refusal');
      return problemsOf(result.error, rootLabel);
    };
    expect(problems({ dryRun: 'yes', ful: true })).toBe(
      'dryRun: Invalid input: expected boolean, received string; Unrecognized key: "ful"',
    );
    expect(problems({ dryRun: 'yes', ful: true }, '(root)')).toBe(
      'dryRun: Invalid input: expected boolean, received string; (root): Unrecognized key: "ful"',
    );
    expect(problems([])).toBe('Invalid input: expected object, received array');
    expect(problems([], '(root)')).toBe('(root): Invalid input: expected object, received array');
  });

  it('answers a step output its contract takes unchanged, and names the step and the path of one it refuses', () => {
    const pending = {
      status: 'bulk-pending' as const,
      runId: 'run-1',
      task: 'Lead',
      jobIds: ['750000000000001'],
      attempt: 0,
      waitSeconds: 2,
    };
    expect(checkStepOutput('PushWriteback', WritebackCollectInput, pending)).toBe(pending);
    expect(() => checkStepOutput('PushWriteback', WritebackCollectInput, { ...pending, jobIds: [] })).toThrow(
      new TerminalError(
        'Invalid output of step PushWriteback: jobIds: Too small: expected array to have >=1 items',
      ),
    );
  });

  it('defaults the Prepare input and checks the run id against the execution-name rules', () => {
    expect(PrepareInput.parse({})).toEqual({ input: {} });
    expect(PrepareInput.parse({ runId: 'exec_2024-05-20' }).runId).toBe('exec_2024-05-20');
    expect(() => parseStepInput('Prepare', PrepareInput, { runId: 'has space' })).toThrow(
      /runId: expected 1–80 letters, digits, "-" or "_"/,
    );
    expect(() => parseStepInput('Prepare', PrepareInput, { runId: 'x'.repeat(81) })).toThrow(TerminalError);
  });

  it('discriminates the Salesforce extract output on status', () => {
    const pending = {
      status: 'bulk-pending',
      runId: 'r1',
      task: 'Lead',
      jobId: '750000000000001AAA',
      attempt: 0,
      waitSeconds: 2,
      full: false,
      expectedRows: 20_000,
      apiCalls: 3,
    };
    expect(SalesforceExtractOutput.parse(pending)).toEqual(pending);
    expect(() => SalesforceExtractOutput.parse({ ...pending, jobId: 'not a job' })).toThrow(
      /expected a Salesforce Bulk job id/,
    );
    expect(() => SalesforceExtractOutput.parse({ ...pending, status: 'loaded' })).toThrow();
  });

  it('takes the .sync integration output as it comes, extra fields and all', () => {
    const syncOutput = {
      runId: 'r1',
      task: 'customers',
      QueryExecution: {
        QueryExecutionId: 'q-1',
        Query: 'SELECT 1',
        ResultConfiguration: { OutputLocation: 's3://b/p/q-1.csv' },
        Status: { State: 'SUCCEEDED', SubmissionDateTime: 1704164645.123 },
        Statistics: { DataScannedInBytes: 10 },
      },
    };
    const parsed = AthenaLoadInput.parse(syncOutput);
    expect(parsed.QueryExecution?.ResultConfiguration?.OutputLocation).toBe('s3://b/p/q-1.csv');
    expect(parsed.QueryExecution?.Statistics).toEqual({ DataScannedInBytes: 10 });
    expect(AthenaLoadInput.parse({ runId: 'r1', task: 'customers' })).toEqual({
      runId: 'r1',
      task: 'customers',
    });
  });

  it('takes the Transform input as the run id alone', () => {
    expect(parseStepInput('Transform', TransformInput, { runId: 'r-1' })).toEqual({ runId: 'r-1' });
    expect(() => parseStepInput('Transform', TransformInput, { runId: 'r-1', task: 'x' })).toThrow(
      new TerminalError('Invalid input of step Transform: (root): Unrecognized key: "task"'),
    );
    expect(() => parseStepInput('Transform', TransformInput, {})).toThrow(
      /^Invalid input of step Transform: runId: /,
    );
  });

  it('defines the write-back contracts here, the write-back folder re-exporting the same schemas', () => {
    expect(writebackContracts.WritebackPlanInput).toBe(WritebackPlanInput);
    expect(writebackContracts.ReportInput).toBe(ReportInput);
    expect(WritebackPlanInput.parse({ runId: 'r', task: 'Lead' })).toEqual({
      runId: 'r',
      task: 'Lead',
      dryRun: false,
    });
    expect(() =>
      WritebackPushOutput.parse({
        status: 'bulk-pending',
        runId: 'r',
        task: 'Lead',
        jobIds: [],
        attempt: 0,
        waitSeconds: 5,
      }),
    ).toThrow();
  });
});
