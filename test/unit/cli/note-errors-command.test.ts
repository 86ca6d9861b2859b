import { noteErrorsCommand } from '../../../bin/cli-common';
import type { RunSummary } from '../../../bin/local/summary';

function summary(rejected: number, failed: number, heldBack = 0): RunSummary {
  return {
    runId: 'r1',
    status: 'failed',
    tasks: [
      {
        task: 'Lead-upsert',
        kind: 'writeback',
        rowsRead: 4,
        planned: 4,
        written: 3,
        rejected,
        heldBack,
        failed,
        apiCalls: 1,
      },
    ],
  };
}

function stderrOf(run: () => void): string {
  let text = '';
  const spy = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    text += String(chunk);
    return true;
  });
  try {
    run();
  } finally {
    spy.mockRestore();
  }
  return text;
}

describe('noteErrorsCommand', () => {
  it('names the errors command for the run, counting records in the singular and the plural', () => {
    expect(stderrOf(() => noteErrorsCommand(summary(0, 1)))).toBe(
      "1 record was rejected or failed: roundtrip errors --run r1 lists them and why (with the pipeline's --config and --secrets)\n",
    );
    expect(stderrOf(() => noteErrorsCommand(summary(1, 1000)))).toMatch(
      /^1,001 records were rejected or failed: /,
    );
  });

  it('counts the rows held back until an earlier run has an outcome, which the command lists too', () => {
    expect(stderrOf(() => noteErrorsCommand(summary(0, 0, 3)))).toMatch(
      /^3 records were rejected, held back or failed: roundtrip errors --run r1 lists them/,
    );
  });

  it('says nothing when every record reached Salesforce', () => {
    expect(stderrOf(() => noteErrorsCommand(summary(0, 0)))).toBe('');
  });
});
