import { describeEvent, summaryFromExecutionOutput } from '../../../bin/commands/start';
import { ReportOutput } from '../../../lambdas/core/writeback/contracts';
import { reportedOutput } from '../../../lambdas/core/writeback/report';
import { taskStateNames } from '../../../statemachine/definition';

describe('describeEvent', () => {
  it('says a write-back task was recorded as failed, not ✓, when its record-failure state ends', () => {
    const exited = (name: string) =>
      describeEvent({
        id: 1,
        timestamp: new Date(0),
        type: 'TaskStateExited',
        stateExitedEventDetails: { name },
      });
    expect(exited(taskStateNames('Contact-insert').recordFailure)).toBe(
      '  ✗ Contact-insert recorded as failed: the run goes on with the other tasks, and fails at its end',
    );
    expect(exited(taskStateNames('Contact-insert').plan)).toBe('  ✓ Contact-insert plan');
  });
});

describe('summaryFromExecutionOutput', () => {
  it('calls a run that Prepare skipped "skipped", with no task rows, and says why on stderr', () => {
    const err = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const summary = summaryFromExecutionOutput('exec-1', true, {
        onOverlap: 'skip',
        run: { runId: 'exec-1', skipped: 'Skipped: run exec-0 of pipeline p is still going' },
      });
      expect(summary).toEqual({ runId: 'exec-1', status: 'skipped', tasks: [] });
      expect(err).toHaveBeenCalledWith(
        'run exec-1 skipped: Skipped: run exec-0 of pipeline p is still going\n',
      );
    } finally {
      err.mockRestore();
    }
  });

  it('names the write-backs that held back records the previous run held back too, from the report', () => {
    const figures = { sourceRows: 6, heldBack: 6, changed: 0, written: 0, failed: 0, apiCalls: 2 };
    const summary = summaryFromExecutionOutput('exec-3', true, {
      run: { runId: 'exec-3' },
      report: {
        status: 'succeeded',
        writeback: {
          'Lead-update': { ...figures, heldBackRepeatedly: 6, heldBackSince: 'exec-1' },
          'Lead-upsert': { ...figures, heldBackRepeatedly: 0 },
        },
      },
    });
    expect(summary.heldBackAgain).toEqual([{ task: 'Lead-update', records: 6, since: 'exec-1' }]);
    // None: no key of it in the summary (the --json object stays as it was).
    const quiet = summaryFromExecutionOutput('exec-4', true, {
      run: { runId: 'exec-4' },
      report: { status: 'succeeded', writeback: { 'Lead-upsert': { ...figures, heldBackRepeatedly: 0 } } },
    });
    expect(Object.keys(quiet)).toEqual(['runId', 'status', 'tasks']);
  });

  it('has the second records of an upsert, from the Report’s figures as the state machine keeps them', () => {
    const figures = {
      sourceRows: 3,
      rejected: 0,
      heldBack: 0,
      heldBackAtPush: 0,
      heldBackRepeatedly: 0,
      superseded: 0,
      unchanged: 0,
      changed: 3,
      written: 3,
      failed: 0,
      outcomeUnknown: 0,
      apiCalls: 2,
      api: 'collections',
      durationMs: 40,
      failureRateExceeded: false,
      rejectRateExceeded: false,
    } as const;
    const report = reportedOutput(
      ReportOutput.parse({
        runId: 'exec-5',
        status: 'succeeded',
        writeback: { 'Lead-upsert': { ...figures, secondRecords: 1 }, 'Lead-update': figures },
      }),
    );
    const summary = summaryFromExecutionOutput('exec-5', true, { run: { runId: 'exec-5' }, report });
    expect(summary.tasks.map((t) => [t.task, t.secondRecords])).toEqual([
      ['Lead-upsert', 1],
      ['Lead-update', undefined],
    ]);
  });

  it('calls a failed execution failed, whatever its output', () => {
    expect(summaryFromExecutionOutput('exec-2', false, undefined)).toEqual({
      runId: 'exec-2',
      status: 'failed',
      tasks: [],
    });
  });
});
