import { maxChangesWarnings } from '../../../bin/cli-common';
import type { RunSummary, TaskSummary } from '../../../bin/local/summary';
import { parseConfig } from '../../../lambdas/config';

function writeback(task: string, planned: number): TaskSummary {
  return {
    task,
    kind: 'writeback',
    rowsRead: planned,
    planned,
    written: 0,
    rejected: 0,
    heldBack: 0,
    superseded: 0,
    failed: 0,
    apiCalls: 0,
  };
}

const config = parseConfig({
  name: 'scores',
  salesforce: { secret: 'sf' },
  postgres: { secret: 'pg' },
  writeback: [
    {
      to: 'salesforce',
      object: 'Lead',
      from: 'a',
      mode: 'update',
      fields: { LeadScore__c: 's' },
      maxChanges: 2,
    },
    {
      to: 'salesforce',
      object: 'Contact',
      from: 'b',
      mode: 'upsert',
      key: 'Ext__c',
      fields: { Score__c: 's' },
      maxChanges: 10,
    },
    { to: 'salesforce', object: 'Account', from: 'c', mode: 'update', fields: { Score__c: 's' } },
  ],
});

describe('maxChangesWarnings', () => {
  it('names each write-back whose dry-run plan a real run would refuse, with its count and limit', () => {
    const summary: RunSummary = {
      runId: 'r1',
      status: 'succeeded',
      tasks: [
        writeback('Lead-update', 4),
        writeback('Contact-upsert', 10),
        writeback('Account-update', 5000),
      ],
    };
    expect(maxChangesWarnings(config, summary)).toEqual([
      'dry run: write-back Lead-update would send 4 records, more than its maxChanges (2, writeback[0].maxChanges): ' +
        'a real run would send none of them and fail. Check the plan (roundtrip.writeback_plan_rows, ' +
        'run r1), then fix the transform or raise maxChanges',
    ]);
  });

  it('says nothing when every plan is within its limit, or a task did not run', () => {
    expect(
      maxChangesWarnings(config, { runId: 'r2', status: 'succeeded', tasks: [writeback('Lead-update', 2)] }),
    ).toEqual([]);
  });
});
