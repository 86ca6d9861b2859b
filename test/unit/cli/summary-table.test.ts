import {
  extractTaskSummary,
  formatSummaryTable,
  transformTaskSummaries,
  writebackTaskSummary,
  type RunSummary,
} from '../../../bin/local/summary';

describe('formatSummaryTable', () => {
  const row = {
    task: 'Lead-upsert',
    kind: 'writeback',
    rowsRead: 1234,
    planned: 4,
    written: 3,
    rejected: 1,
    heldBack: 0,
    superseded: 0,
    failed: 0,
    apiCalls: 1,
  } as const;

  it('prints a row a task, numbers right-aligned with thousands separated', () => {
    const summary: RunSummary = { runId: 'r1', status: 'succeeded', tasks: [row] };
    expect(formatSummaryTable(summary).split('\n')).toEqual([
      'run r1: succeeded',
      'task         kind       rows read  planned  written  rejected  held back  failed  API calls',
      '-----------  ---------  ---------  -------  -------  --------  ---------  ------  ---------',
      'Lead-upsert  writeback      1,234        4        3         1          0       0          1',
    ]);
  });

  it('shows a superseded column when a task has records a run that planned later wrote first', () => {
    const summary: RunSummary = { runId: 'r1', status: 'succeeded', tasks: [{ ...row, superseded: 2 }] };
    expect(formatSummaryTable(summary).split('\n')).toEqual([
      'run r1: succeeded',
      'task         kind       rows read  planned  written  rejected  held back  superseded  failed  API calls',
      '-----------  ---------  ---------  -------  -------  --------  ---------  ----------  ------  ---------',
      'Lead-upsert  writeback      1,234        4        3         1          0           2       0          1',
    ]);
  });

  it('marks a task the config no longer names by its name, its figures shown', () => {
    const summary: RunSummary = {
      runId: 'r1',
      status: 'failed',
      tasks: [row, { ...row, task: 'Contact-rs', failed: 2, notInConfig: true }],
    };
    expect(formatSummaryTable(summary).split('\n').slice(1)).toEqual([
      'task                        kind       rows read  planned  written  rejected  held back  failed  API calls',
      '--------------------------  ---------  ---------  -------  -------  --------  ---------  ------  ---------',
      'Lead-upsert                 writeback      1,234        4        3         1          0       0          1',
      'Contact-rs (not in config)  writeback      1,234        4        3         1          0       2          1',
    ]);
  });

  it('marks a write-back task a step error stopped, and says its error below the table', () => {
    const failed = {
      ...row,
      task: 'Contact-insert',
      rowsRead: 0,
      planned: 0,
      written: 0,
      rejected: 0,
      error: `Write-back Contact-insert: no column "x" (writeback[0].keyColumn)${' and more'.repeat(40)}`,
    };
    const summary: RunSummary = { runId: 'r1', status: 'failed', tasks: [failed, row] };
    expect(formatSummaryTable(summary).split('\n')).toEqual([
      'run r1: failed',
      'task              kind       rows read  planned  written  rejected  held back  failed  API calls',
      '----------------  ---------  ---------  -------  -------  --------  ---------  ------  ---------',
      'Contact-insert ✗  writeback          0        0        0         0          0       0          1',
      'Lead-upsert       writeback      1,234        4        3         1          0       0          1',
      `✗ write-back Contact-insert failed: ${failed.error.slice(0, 300)}…`,
    ]);
  });

  it('says of a write-back task whose error stopped the run that it did, and which tasks did not run', () => {
    const error =
      'Salesforce sign-in (soap) at https://login.salesforce.com failed: INVALID_LOGIN: Invalid username, password, security token; or user locked out.';
    const stopped = writebackTaskSummary('Lead-update', {
      sourceRows: 0,
      error,
      failedAt: '2026-11-30T10:00:00.000Z',
      stoppedRun: { notRun: ['Lead-again', 'Contact-upsert'] },
    });
    expect(stopped.stoppedRun).toEqual({ notRun: ['Lead-again', 'Contact-upsert'] });
    const last = writebackTaskSummary('Lead-last', { error, stoppedRun: { notRun: [] } });
    const lines = (task: typeof stopped) =>
      formatSummaryTable({ runId: 'r1', status: 'failed', tasks: [task] })
        .split('\n')
        .slice(4);
    expect(lines(stopped)).toEqual([
      `✗ write-back Lead-update failed and stopped the run: ${error}; the write-back tasks after it did not run (Lead-again, Contact-upsert)`,
    ]);
    expect(lines(last)).toEqual([
      `✗ write-back Lead-last failed and stopped the run: ${error}; it was the last write-back task`,
    ]);
  });

  it('says below the table which mapped fields a write-back compares with sync_state, not the extract, and how to have them compared with it', () => {
    const summary: RunSummary = {
      runId: 'r1',
      status: 'succeeded',
      tasks: [
        row,
        {
          ...row,
          task: 'Account-upsert',
          notExtracted: { fields: ['Description', 'Industry'], extract: 'extract[1]' },
        },
      ],
    };
    expect(formatSummaryTable(summary).split('\n').slice(5)).toEqual([
      'note: write-back Account-upsert compares Description, Industry with what it last sent (roundtrip.sync_state), not with the extracted copy, as extract[1].fields does not list them: an edit of them made in Salesforce is not seen nor put back (the copy still catches deleted records and edits of the other fields); add them to extract[1].fields to compare them with the copy',
    ]);
  });

  it("reads a write-back's fields not extracted from the figures its plan stored", () => {
    const figures = { sourceRows: 3, changed: 3, notExtracted: ['Industry'], comparedExtract: 'extract[0]' };
    expect(writebackTaskSummary('Lead-update', figures).notExtracted).toEqual({
      fields: ['Industry'],
      extract: 'extract[0]',
    });
    expect(writebackTaskSummary('Lead-update', { sourceRows: 3 }).notExtracted).toBeUndefined();
  });

  it('says below the table of an upsert or keyed insert whose key the extract does not read what is compared instead, what it misses, and the fix', () => {
    const summary: RunSummary = {
      runId: 'r1',
      status: 'succeeded',
      tasks: [
        { ...row, keyNotExtracted: { field: 'External_Id__c', extract: 'extract[0]', mode: 'upsert' } },
        {
          ...row,
          task: 'Lead-insert',
          keyNotExtracted: { field: 'Source_Key__c', extract: 'extract[0]', mode: 'insert' },
        },
      ],
    };
    expect(formatSummaryTable(summary).split('\n').slice(5)).toEqual([
      'note: write-back Lead-upsert cannot find its records in the extracted copy, as extract[0].fields does not list its key External_Id__c: it compares every record with what it last sent (roundtrip.sync_state) instead, so an edit made in Salesforce of a field it writes is not seen nor put back, a record deleted in Salesforce is not detected, and a record whose key was changed in Salesforce is upserted again under its old key, as a second record, once its values change (reported after the push as KEY_CHANGED_RECORD_CREATED, not prevented); add External_Id__c to extract[0].fields to compare with the copy',
      'note: write-back Lead-insert cannot find its records in the extracted copy, as extract[0].fields does not list its key Source_Key__c: it compares every record with what it last sent (roundtrip.sync_state) instead, so a record that has a key in Salesforce without this task having inserted it (made by hand, by another task) is not seen and is inserted again, and a record deleted in Salesforce is not detected; add Source_Key__c to extract[0].fields to compare with the copy',
    ]);
  });

  it('says below the table how many upserts created a second record, the key changed in Salesforce, and where they are listed', () => {
    const summary: RunSummary = { runId: 'r1', status: 'succeeded', tasks: [{ ...row, secondRecords: 1 }] };
    expect(formatSummaryTable(summary).split('\n').slice(4)).toEqual([
      "note: write-back Lead-upsert: 1 upsert created a second record in Salesforce, as the key field of the record this task had synced with its key was changed there (the values were written, to the new record); roundtrip errors --run r1 --task Lead-upsert --code KEY_CHANGED_RECORD_CREATED lists it with both records' Ids and what the old one holds: merge the two in Salesforce, or set the key back on the old one and delete the new one",
    ]);
    // With the options given to `roundtrip run`, which the command repeats to be pasted as it is.
    const given = {
      options: " --config 'my dir/c.ts' --database-url 'postgres://u:***@db/x'",
      note: ' (with the password of your --database-url where it shows ***)',
    };
    expect(formatSummaryTable(summary, given).split('\n')[4]).toContain(
      "roundtrip errors --run r1 --config 'my dir/c.ts' --database-url 'postgres://u:***@db/x' --task Lead-upsert --code KEY_CHANGED_RECORD_CREATED (with the password of your --database-url where it shows ***) lists it with both records' Ids",
    );
    expect(writebackTaskSummary('Lead-upsert', { written: 3, secondRecords: 2 }).secondRecords).toBe(2);
    expect(writebackTaskSummary('Lead-upsert', { written: 3 }).secondRecords).toBeUndefined();
  });

  it("reads a keyed Athena extract's repeated keys from its stored figures, and says them below the table", () => {
    const duplicateKeys = {
      table: 'public.regional_orders',
      key: ['region', 'number'],
      droppedRows: 2,
      keys: 1,
      examples: [{ key: { region: 'eu', number: null }, rows: 3 }],
    };
    const figures = { rows: 5, inserted: 3, updated: 0, apiCalls: 2, s3Reads: 1, duplicateKeys };
    const task = extractTaskSummary('regional_orders', figures);
    expect(task.duplicateKeys).toEqual(duplicateKeys);
    // Figures not of that shape (a summary hand-edited, or written by another version) say nothing.
    expect(
      extractTaskSummary('regional_orders', { ...figures, duplicateKeys: { droppedRows: 2 } }),
    ).not.toHaveProperty('duplicateKeys');
    expect(
      formatSummaryTable({ runId: 'r1', status: 'succeeded', tasks: [task] })
        .split('\n')
        .slice(4),
    ).toEqual([
      "warning: Extract task regional_orders: the query returned 1 key in more than one row ((region, number) = ('eu', NULL): 3 rows), 2 rows more than keys: public.regional_orders kept one row a key, the last in the result file, which Athena orders arbitrarily without ORDER BY, so which row is kept may change from run to run; make the task's query return one row a key, the version you want: SELECT <its columns> FROM (SELECT …, row_number() OVER (PARTITION BY region, number ORDER BY <a column that orders versions> DESC) AS rn FROM …) WHERE rn = 1. Set duplicateKeys: 'fail' on the task to fail instead of loading",
    ]);
  });

  it("reads a keyless Athena extract's kept primary key from its stored figures, and says it below the table", () => {
    const keptPrimaryKey = {
      table: 'public.customers',
      key: ['id'],
      constraint: 'customers_pkey',
      keyPath: 'extract[1].key',
    };
    const figures = { rows: 3, inserted: 3, updated: 0, apiCalls: 2, s3Reads: 1, keptPrimaryKey };
    const task = extractTaskSummary('customers', figures);
    expect(task.keptPrimaryKey).toEqual(keptPrimaryKey);
    expect(extractTaskSummary('customers', { ...figures, keptPrimaryKey: { key: [] } })).not.toHaveProperty(
      'keptPrimaryKey',
    );
    expect(
      formatSummaryTable({ runId: 'r1', status: 'succeeded', tasks: [task] })
        .split('\n')
        .slice(4),
    ).toEqual([
      'warning: Extract task customers has no key (extract[1].key), but public.customers kept its primary key (id) (made by the task\'s earlier loads with a key, or by hand): the load replaced the table\'s rows with the result as it is, and a run whose result repeats a value of the key or leaves it NULL will fail. Drop the table\'s primary key if the task is meant to load without one (ALTER TABLE "public"."customers" DROP CONSTRAINT "customers_pkey"), or give the task its key again (extract[1].key: [\'id\']: the load then merges, one row a key)',
    ]);
  });

  it("reads a Salesforce REST read's count mismatch from its stored figures, and says it below the table", () => {
    const figures = {
      rows: 3,
      inserted: 0,
      updated: 3,
      apiCalls: 2,
      full: false,
      queryCountMismatch: { totalSize: 4, read: 3, watermarkKept: '2024-02-01T00:00:10.000Z' },
    };
    const task = extractTaskSummary('Lead', figures);
    expect(extractTaskSummary('Lead', { ...figures, queryCountMismatch: undefined })).not.toHaveProperty(
      'queryCountMismatch',
    );
    expect(
      formatSummaryTable({ runId: 'r1', status: 'succeeded', tasks: [task] })
        .split('\n')
        .slice(4),
    ).toEqual([
      "warning: Extract task Lead: Salesforce said its query matched 4 records (totalSize), but its pages held 3: records the query matched may be missing from this read. The rows read were loaded, but the watermark was not moved (it stays 2024-02-01T00:00:10.000Z), so the next run reads those records again. If this is said run after run, read the task through Bulk (a bulkThreshold below its row count) and report it with the task's query",
    ]);
  });

  it('says below the table of a dry run’s write-back that a real run would refuse its push for the API budget, and why', () => {
    const problem =
      'its push of 2,500 records needs at least 3 Salesforce API calls (Collections, 2,500 records at 1,000 a call), and the run has made 2 of budget.maxApiCallsPerRun 4.';
    const task = writebackTaskSummary('Lead-upsert', { ...row, sourceRows: 2_500, overBudget: problem });
    expect(task.overBudget).toBe(problem);
    expect(
      formatSummaryTable({ runId: 'r1', status: 'succeeded', tasks: [task] })
        .split('\n')
        .slice(4),
    ).toEqual([
      `dry run: write-back Lead-upsert: a real run would send none of its records and fail the task: ${problem}`,
    ]);
    expect(writebackTaskSummary('Lead-upsert', { sourceRows: 3 }).overBudget).toBeUndefined();
  });

  it("reads a write-back's key not extracted from the figures its plan stored", () => {
    const figures = {
      sourceRows: 3,
      keyNotExtracted: { field: 'External_Id__c', extract: 'extract[0]', mode: 'upsert' },
    };
    expect(writebackTaskSummary('Lead-upsert', figures).keyNotExtracted).toEqual({
      field: 'External_Id__c',
      extract: 'extract[0]',
      mode: 'upsert',
    });
    expect(writebackTaskSummary('Lead-upsert', { sourceRows: 3 }).keyNotExtracted).toBeUndefined();
  });

  it('says that a run failed before any step reported, rather than print headers alone', () => {
    expect(formatSummaryTable({ runId: 'r2', status: 'failed', tasks: [] })).toBe(
      'run r2: failed, before any step reported its figures (why: above)',
    );
  });

  it('says why the figures of a recorded run could not be read, and which steps had ended, not that none reported', () => {
    const unread = (stepsEnded: string[]): string =>
      formatSummaryTable({
        runId: 'r4',
        status: 'failed',
        tasks: [],
        unread: { why: 'PostgreSQL (u@h:5432/db): network error (ECONNREFUSED)', stepsEnded },
      });
    expect(unread(['Prepare', 'Transform']).split('\n')).toEqual([
      'run r4: failed; its figures could not be read back: PostgreSQL (u@h:5432/db): network error (ECONNREFUSED)',
      'steps that ended before, as this run saw them: Prepare, Transform; roundtrip status shows the figures they recorded once PostgreSQL can be reached again',
    ]);
    expect(unread([]).split('\n')[1]).toBe('no step had ended, as this run saw them');
  });

  it('names no run id for a run that was never recorded (its PostgreSQL could not be used)', () => {
    expect(formatSummaryTable({ runId: 'r3', status: 'failed', tasks: [], recorded: false })).toBe(
      'no run recorded: the run never started, as its PostgreSQL could not be used (why: above)',
    );
  });
});

describe('transformTaskSummaries', () => {
  const ran = (...files: string[]) => ({ files: files.map((file, i) => ({ file, rows: i })) });
  const tasks = (figures: unknown) => transformTaskSummaries(figures).map((t) => t.task);

  it('names each transform file by its name when no other file of the run has it', () => {
    expect(tasks(ran('/p/transforms/01_a.sql', '/p/transforms/02_b.sql'))).toEqual(['01_a.sql', '02_b.sql']);
    // The deployed transform's bundled names.
    expect(tasks(ran('transform/01-score.sql', 'transform/02-score.sql'))).toEqual([
      '01-score.sql',
      '02-score.sql',
    ]);
  });

  it('names files of one name in different folders by as much of their path as tells them apart', () => {
    // By name alone both rows would read `score.sql`: which wrote what could not be told.
    expect(
      tasks(
        ran('/p/a/score.sql', '/p/b/score.sql', '/p/other.sql', '/p/x/sql/lead.sql', '/p/y/sql/lead.sql'),
      ),
    ).toEqual(['a/score.sql', 'b/score.sql', 'other.sql', 'x/sql/lead.sql', 'y/sql/lead.sql']);
    expect(tasks(ran('/x/a/s.sql', '/y/x/a/s.sql'))).toEqual(['/x/a/s.sql', 'y/x/a/s.sql']);
    // One file recorded twice (a run from before the config refused it) is one file.
    expect(tasks(ran('/p/a/score.sql', '/p/a/score.sql'))).toEqual(['score.sql', 'score.sql']);
  });
});
