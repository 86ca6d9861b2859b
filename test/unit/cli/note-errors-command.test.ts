import { databaseOptionsGiven, noteErrorsCommand } from '../../../bin/cli-common';
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
        superseded: 0,
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
  // Without the options (start, which follows a deployed run and was given neither), the line says
  // to add the pipeline's.
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

  it('counts the upserts written as a second record, the key changed in Salesforce, which the command lists too', () => {
    const second: RunSummary = { ...summary(0, 0), status: 'succeeded' };
    const task = second.tasks[0] as RunSummary['tasks'][number];
    expect(stderrOf(() => noteErrorsCommand({ ...second, tasks: [{ ...task, secondRecords: 1 }] }))).toBe(
      "1 record was written as a second record (the key of the record synced before was changed in Salesforce): roundtrip errors --run r1 lists them and why (with the pipeline's --config and --secrets)\n",
    );
    expect(stderrOf(() => noteErrorsCommand(second))).toBe('');
  });

  it('says first of each write-back that held back records the previous run held back too', () => {
    const held: RunSummary = {
      ...summary(0, 0, 6),
      status: 'succeeded',
      heldBackAgain: [{ task: 'Lead-upsert', records: 6, since: 'r0' }],
    };
    expect(stderrOf(() => noteErrorsCommand(held)).split('\n')).toEqual([
      'write-back Lead-upsert: 6 records held back again, as by the previous run (held back by every run since r0): an earlier send of their keys still has no outcome; roundtrip errors --run r1 says why for each (a run still recorded as running, a Bulk job Salesforce has not finished, or keys to record by hand)',
      "6 records were rejected, held back or failed: roundtrip errors --run r1 lists them and why (with the pipeline's --config and --secrets)",
      '',
    ]);
  });

  it('counts the records sent whose outcome was never recorded, which the command lists too', () => {
    const lost = (failed: number): RunSummary => {
      const run = summary(0, failed);
      return { ...run, tasks: run.tasks.map((t) => ({ ...t, outcomeUnknown: 3 })) };
    };
    expect(stderrOf(() => noteErrorsCommand(lost(0)))).toBe(
      "3 records sent with no outcome recorded: roundtrip errors --run r1 lists them and what becomes of them (with the pipeline's --config and --secrets)\n",
    );
    expect(stderrOf(() => noteErrorsCommand(lost(1)))).toMatch(
      /^1 record was rejected or failed, 3 records sent with no outcome recorded: roundtrip errors --run r1 lists them and why/,
    );
  });

  it("names the command with the run's --config and --secrets, quoted for a shell, to be pasted as it is", () => {
    const given = databaseOptionsGiven({
      config: "pipelines/Lead's scores.config.ts",
      secrets: 'secrets.json',
      json: true,
    });
    const held: RunSummary = {
      ...summary(0, 1, 6),
      heldBackAgain: [{ task: 'Lead-upsert', records: 6 }],
    };
    expect(stderrOf(() => noteErrorsCommand(held, given)).split('\n')).toEqual([
      "write-back Lead-upsert: 6 records held back again, as by the previous run: an earlier send of their keys still has no outcome; roundtrip errors --run r1 --config 'pipelines/Lead'\\''s scores.config.ts' --secrets secrets.json says why for each (a run still recorded as running, a Bulk job Salesforce has not finished, or keys to record by hand)",
      "7 records were rejected, held back or failed: roundtrip errors --run r1 --config 'pipelines/Lead'\\''s scores.config.ts' --secrets secrets.json lists them and why",
      '',
    ]);
    // None given (the default config and secrets): the command as it is, nothing to add.
    expect(stderrOf(() => noteErrorsCommand(summary(0, 1), databaseOptionsGiven({})))).toBe(
      '1 record was rejected or failed: roundtrip errors --run r1 lists them and why\n',
    );
  });

  it('says nothing when every record reached Salesforce', () => {
    expect(stderrOf(() => noteErrorsCommand(summary(0, 0)))).toBe('');
  });
});
