import type { ReportOutput, WritebackTaskSummary } from '../../../lambdas/core/writeback/contracts';
import {
  extractLines,
  heldBackAgainLines,
  NOTIFICATION_PENDING_SENDS,
  snsSubject,
  succeededRunNotification,
  type HeldBackAgain,
} from '../../../lambdas/core/writeback/notify';

const figures = (over: Partial<WritebackTaskSummary> = {}): WritebackTaskSummary => ({
  sourceRows: 10,
  rejected: 0,
  heldBack: 4,
  heldBackAtPush: 0,
  heldBackRepeatedly: 3,
  superseded: 0,
  unchanged: 6,
  changed: 0,
  written: 0,
  failed: 0,
  outcomeUnknown: 0,
  apiCalls: 2,
  api: 'none',
  durationMs: 5,
  failureRateExceeded: false,
  rejectRateExceeded: false,
  ...over,
});

const output = (runId: string, over: Partial<WritebackTaskSummary> = {}): ReportOutput => ({
  runId,
  status: 'succeeded',
  writeback: { 'Contact-insert': figures(over) },
});

const held = (over: Partial<HeldBackAgain> = {}): HeldBackAgain => ({
  task: 'Contact-insert',
  keys: 3,
  previousRunId: 'run-2',
  pending: [],
  codes: [{ code: 'INSERT_OUTCOME_UNKNOWN', keys: 3 }],
  samples: [
    { key: 'c-1', code: 'INSERT_OUTCOME_UNKNOWN', message: 'key c-1 was sent for insert by run run-1 …' },
  ],
  ...over,
});

describe('succeededRunNotification', () => {
  it('has a subject of its own: the run succeeded, with records held back again, not a failure', () => {
    const n = succeededRunNotification('crm', output('run-3'), [held()], [], null);
    expect(n.subject).toBe('roundtrip crm: run run-3 succeeded, 3 records held back again');
    expect(n.subject).not.toMatch(/failed/);
    expect(n.text.split('\n')[0]).toBe(
      'roundtrip pipeline crm: run run-3 succeeded, but it held back 3 records that the previous run held back too.',
    );
    // No execution ARN (a local run): no link.
    expect(n.text).not.toContain('The execution:');
  });

  it('keeps its subject within what SNS takes for a long run id, and adds the tasks up', () => {
    const runId = `run-${'x'.repeat(76)}`;
    const n = succeededRunNotification(
      'crm',
      output(runId),
      [held(), held({ task: 'Lead-update', keys: 1 })],
      [],
      null,
    );
    expect(n.subject.length).toBeLessThanOrEqual(99);
    expect(n.subject).toBe(snsSubject(`roundtrip crm: run ${runId} succeeded, 4 records held back again`));
    expect(n.text).toContain('held back 4 records that the previous run held back too.');
    expect(n.text).toContain('\nHeld back again: 1 record of Lead-update held back by 2 runs in a row, ');
  });

  it('says both in its subject and first line when the run held keys back again and made second records', () => {
    const n = succeededRunNotification(
      'crm',
      output('run-3'),
      [held()],
      [
        {
          task: 'Lead-upsert',
          reported: 1,
          unchecked: 1,
          samples: [
            { key: 'a', code: 'KEY_CHANGED_RECORD_CREATED', newId: '00Q2', oldId: '00Q1' },
            { key: 'b', code: 'CREATED_BESIDE_SYNCED_RECORD', newId: '00Q4', oldId: '00Q3' },
          ],
        },
      ],
      null,
    );
    expect(n.subject).toBe(
      'roundtrip crm: run run-3 succeeded, 3 records held back again, 2 second records created',
    );
    expect(n.text.split('\n')[0]).toBe(
      'roundtrip pipeline crm: run run-3 succeeded, but it held back 3 records that the previous run held back too, and 2 upserts created a second record in Salesforce, the key of the record synced before having been changed there.',
    );
    expect(n.text).toContain('\nHeld back again: 3 records of Contact-insert');
    expect(n.text).toContain(
      '\nSecond records: 1 upsert of Lead-upsert created a second record in Salesforce (KEY_CHANGED_RECORD_CREATED): ',
    );
    expect(n.text).toContain(
      '\n  And 1 upsert of Lead-upsert was created beside a record the task had synced with its key, not looked up yet (CREATED_BESIDE_SYNCED_RECORD: ',
    );
    expect(n.text).toContain(
      '\n  The first 2 keys:\n    a: new record 00Q2, old record 00Q1\n    b: new record 00Q4, old record 00Q3 (not looked up yet)\n',
    );
    expect(n.text).toContain(
      'npx roundtrip errors --run run-3 --task Lead-upsert --code KEY_CHANGED_RECORD_CREATED',
    );
    expect(n.text).toContain(
      'npx roundtrip errors --run run-3 --task Lead-upsert --code CREATED_BESIDE_SYNCED_RECORD',
    );
  });

  it('says since which run and when, for a streak longer than two runs', () => {
    const startedAt = new Date('2026-03-01T10:00:00.000Z');
    const lines = heldBackAgainLines('run-9', [held({ since: { runId: 'run-5', startedAt, runs: 5 } })]);
    expect(lines).toContain(
      'Held back again: 3 records of Contact-insert held back by 5 runs in a row, since run run-5 (started 2026-03-01T10:00:00.000Z): the next run does not send them either until what holds them back is resolved.',
    );
  });

  it('names each Bulk job with its recorded state, and a call by its run; the job advice only when a job holds keys', () => {
    const recordedAt = new Date('2026-03-01T10:05:00.000Z');
    const withJob = heldBackAgainLines('run-9', [
      held({
        pending: [
          { runId: 'run-1', jobId: '750A', state: 'InProgress', recordedAt, keys: 2 },
          { runId: 'run-4', jobId: null, state: null, recordedAt: null, keys: 1 },
        ],
      }),
    ]);
    expect(withJob).toEqual(
      expect.arrayContaining([
        '    Bulk job 750A of run run-1, not collected (last recorded InProgress at 2026-03-01T10:05:00.000Z): 2 records',
        '    a Composite call of run run-4: 1 record',
        "    SELECT run_id, job_id, state, updated_at FROM roundtrip.writeback_jobs WHERE task = 'Contact-insert' AND api = 'bulk' AND collected_at IS NULL ORDER BY run_id;",
      ]),
    );
    expect(withJob.some((l) => l.includes('Setup → Bulk Data Load Jobs'))).toBe(true);

    const withoutJob = heldBackAgainLines('run-9', [held()]);
    expect(withoutJob.some((l) => l.includes('Setup → Bulk Data Load Jobs'))).toBe(false);
    expect(withoutJob.some((l) => l.includes('roundtrip.writeback_jobs'))).toBe(false);
    expect(withoutJob).toContain(
      "    SELECT key, code, message FROM roundtrip.writeback_errors WHERE run_id = 'run-9' AND task = 'Contact-insert' AND code IN ('INSERT_OUTCOME_UNKNOWN') ORDER BY key;",
    );
  });

  it(`shows ${NOTIFICATION_PENDING_SENDS} sends at most`, () => {
    const pending = Array.from({ length: NOTIFICATION_PENDING_SENDS + 1 }, (_, i) => ({
      runId: `run-${i}`,
      jobId: `750${i}`,
      state: 'UploadComplete',
      recordedAt: null,
      keys: 1,
    }));
    const lines = heldBackAgainLines('run-9', [held({ pending })]);
    expect(lines.filter((l) => l.startsWith('    Bulk job '))).toHaveLength(NOTIFICATION_PENDING_SENDS);
    expect(lines).toContain('    … and other sends');
  });

  it('adds nothing when no task held keys back again', () => {
    expect(heldBackAgainLines('run-9', [])).toEqual([]);
  });
});

describe('extractLines', () => {
  it('says each extract task’s rows, deletes and calls, and its load’s warnings, under the write-back', () => {
    const extract = {
      Lead: {
        status: 'loaded',
        rows: 1200,
        inserted: 1000,
        updated: 150,
        deleted: 3,
        deletes: 'flag',
        api: 'bulk',
        apiCalls: 5,
        retypedColumns: [
          { object: 'Lead', field: 'Rating__c', table: 'public.sf_lead', from: 'numeric', to: 'text' },
        ],
      },
      Contact: {
        status: 'loaded',
        rows: 7,
        inserted: 0,
        updated: 2,
        deleted: 1,
        deletes: 'remove',
        apiCalls: 1,
        full: false,
        queryCountMismatch: { totalSize: 8, read: 7, watermarkKept: '2024-05-20T20:49:32.000Z' },
      },
      orders: {
        status: 'loaded',
        rows: 40,
        inserted: 38,
        updated: 0,
        deleted: 0,
        apiCalls: 3,
        s3Reads: 1,
        duplicateKeys: {
          table: 'public.orders',
          key: ['order_id'],
          droppedRows: 2,
          keys: 1,
          examples: [{ key: { order_id: '7' }, rows: 3 }],
        },
      },
      customers: {
        status: 'loaded',
        rows: 3,
        inserted: 3,
        updated: 0,
        deleted: 3,
        apiCalls: 2,
        s3Reads: 1,
        keptPrimaryKey: {
          table: 'public.customers',
          key: ['id'],
          constraint: 'customers_pkey',
          keyPath: 'extract[1].key',
        },
      },
      // A task whose step failed: its calls alone.
      Account: { apiCalls: 2 },
    };
    expect(extractLines(extract)).toEqual([
      '',
      'Extract:',
      '  Lead: 1,200 rows read, 1,150 written, 3 flagged deleted; 5 API calls',
      '    Salesforce changed the type of Lead.Rating__c: column Rating__c of public.sf_lead retyped from numeric to text; a transform that reads it as numeric may fail',
      '  Contact: 7 rows read, 2 written, 1 removed; 1 API call',
      "    Extract task Contact: Salesforce said its query matched 8 records (totalSize), but its pages held 7: records the query matched may be missing from this read. The rows read were loaded, but the watermark was not moved (it stays 2024-05-20T20:49:32.000Z), so the next run reads those records again. If this is said run after run, read the task through Bulk (a bulkThreshold below its row count) and report it with the task's query",
      '  orders: 40 rows read, 38 written; 4 Athena/S3 calls',
      "    Extract task orders: the query returned 1 key in more than one row (order_id 7: 3 rows), 2 rows more than keys: public.orders kept one row a key, the last in the result file, which Athena orders arbitrarily without ORDER BY, so which row is kept may change from run to run; make the task's query return one row a key, the version you want: SELECT <its columns> FROM (SELECT …, row_number() OVER (PARTITION BY order_id ORDER BY <a column that orders versions> DESC) AS rn FROM …) WHERE rn = 1. Set duplicateKeys: 'fail' on the task to fail instead of loading",
      '  customers: 3 rows read, 3 written; 3 Athena/S3 calls',
      '    Extract task customers has no key (extract[1].key), but public.customers kept its primary key (id) (made by the task\'s earlier loads with a key, or by hand): the load replaced the table\'s rows with the result as it is, and a run whose result repeats a value of the key or leaves it NULL will fail. Drop the table\'s primary key if the task is meant to load without one (ALTER TABLE "public"."customers" DROP CONSTRAINT "customers_pkey"), or give the task its key again (extract[1].key: [\'id\']: the load then merges, one row a key)',
      '  Account: not loaded; 2 API calls',
    ]);
    expect(extractLines({})).toEqual([]);
    const n = succeededRunNotification('crm', output('run-3'), [held()], [], null, extract);
    const text = n.text.split('\n');
    expect(text.indexOf('Extract:')).toBeGreaterThan(0);
    expect(text.indexOf('Extract:')).toBeLessThan(text.indexOf('Write-back:'));
  });
});
