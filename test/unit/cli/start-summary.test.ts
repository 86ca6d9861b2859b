import { summaryFromExecutionOutput } from '../../../bin/commands/start';

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

  it('calls a failed execution failed, whatever its output', () => {
    expect(summaryFromExecutionOutput('exec-2', false, undefined)).toEqual({
      runId: 'exec-2',
      status: 'failed',
      tasks: [],
    });
  });
});
