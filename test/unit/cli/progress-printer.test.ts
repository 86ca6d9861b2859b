import { progressPrinter } from '../../../bin/cli-common';
import { parseConfig } from '../../../lambdas/config';

describe('progressPrinter', () => {
  it('keeps the latest figures per task, write-back steps and Report included', () => {
    const lines: string[] = [];
    const print = progressPrinter((line) => lines.push(line));
    print({ type: 'entered', state: 'Lead extract', stateType: 'Task' });
    print({
      type: 'exited',
      state: 'Lead extract',
      stateType: 'Task',
      output: { task: 'Lead', apiCalls: 3 },
    });
    // A Bulk check reports the task's cumulative count: it replaces, not adds.
    print({
      type: 'exited',
      state: 'Lead check',
      stateType: 'Task',
      output: { status: 'loaded', task: 'Lead', rows: 10_000, inserted: 10_000, updated: 0, apiCalls: 5 },
    });
    print({
      type: 'exited',
      state: 'athena_customers load',
      stateType: 'Task',
      output: {
        status: 'loaded',
        task: 'athena_customers',
        rows: 5_000,
        inserted: 4_000,
        updated: 900,
        apiCalls: 1,
        s3Reads: 1,
      },
    });
    print({ type: 'exited', state: 'Choice', stateType: 'Choice', output: {} });
    // The write-back steps report their task's calls so far (plan, pushes, collects together).
    print({
      type: 'exited',
      state: 'Lead-update plan',
      stateType: 'Task',
      output: {
        runId: 'r',
        task: 'Lead-update',
        status: 'planned',
        changed: 9,
        rejected: 2,
        heldBack: 3,
        apiCalls: 1,
      },
    });
    print({
      type: 'exited',
      state: 'Lead-update push',
      stateType: 'Task',
      output: { runId: 'r', task: 'Lead-update', status: 'collected', succeeded: 9, apiCalls: 4 },
    });
    // A plan that sends nothing says so, and counts the rows it rejected.
    const plan = { runId: 'r', status: 'planned', sourceRows: 3, unchanged: 1, apiCalls: 0 };
    print({
      type: 'exited',
      state: 'Lead-upsert plan',
      stateType: 'Task',
      output: { ...plan, task: 'Lead-upsert', rejected: 2, changed: 0 },
    });
    print({
      type: 'exited',
      state: 'Lead-insert plan',
      stateType: 'Task',
      output: { ...plan, task: 'Lead-insert', rejected: 0, changed: 1 },
    });
    print({
      type: 'exited',
      state: 'Report',
      stateType: 'Task',
      output: { runId: 'r', status: 'succeeded', writeback: { 'Lead-update': { apiCalls: 5, written: 9 } } },
    });
    expect(lines).toEqual([
      '  … Lead extract',
      '  ✓ Lead extract: 3 Salesforce API calls  (so far: 0 rows read, 3 Salesforce API calls)',
      // A step's line says its own calls: the task's figure less what its earlier steps reported.
      '  ✓ Lead check: 10,000 rows read, 10,000 written, 2 Salesforce API calls  (so far: 10,000 rows read, 5 Salesforce API calls)',
      // An Athena load's calls are counted apart: Athena's and S3's, not Salesforce's.
      '  ✓ athena_customers load: 5,000 rows read, 4,900 written, 2 Athena/S3 calls  (so far: 15,000 rows read, 5 Salesforce API calls, 2 Athena/S3 calls)',
      '  ✓ Lead-update plan: 9 records to send, 2 rejected, 3 held back, 1 Salesforce API call  (so far: 15,000 rows read, 6 Salesforce API calls, 2 Athena/S3 calls)',
      '  ✓ Lead-update push: 9 written, 3 Salesforce API calls  (so far: 15,000 rows read, 9 Salesforce API calls, 2 Athena/S3 calls)',
      '  ✓ Lead-upsert plan: 0 records to send, 2 rejected  (so far: 15,000 rows read, 9 Salesforce API calls, 2 Athena/S3 calls)',
      '  ✓ Lead-insert plan: 1 record to send  (so far: 15,000 rows read, 9 Salesforce API calls, 2 Athena/S3 calls)',
      '  ✓ Report  (so far: 15,000 rows read, 10 Salesforce API calls, 2 Athena/S3 calls)',
    ]);
  });

  it("says an extract's rows in the summary's words and figures: read, and of them written", () => {
    const lines: string[] = [];
    const print = progressPrinter((line) => lines.push(line));
    // An incremental read: two rows again through the overlap window, unchanged (the summary's
    // rowsRead 2, written 0).
    const output = {
      status: 'loaded',
      runId: 'r',
      task: 'Lead',
      rows: 2,
      inserted: 0,
      updated: 0,
      deleted: 0,
      api: 'rest',
      apiCalls: 1,
      full: false,
      watermark: '2025-06-01T02:00:00.000Z',
    };
    print({ type: 'exited', state: 'Lead extract', stateType: 'Task', output });
    // Nothing read: said all the same, as the summary's row says it.
    print({
      type: 'exited',
      state: 'Contact extract',
      stateType: 'Task',
      output: { ...output, task: 'Contact', rows: 0, apiCalls: 1 },
    });
    expect(lines).toEqual([
      '  ✓ Lead extract: 2 rows read, 0 written, 1 Salesforce API call  (so far: 2 rows read, 1 Salesforce API call)',
      '  ✓ Contact extract: 0 rows read, 0 written, 1 Salesforce API call  (so far: 2 rows read, 2 Salesforce API calls)',
    ]);
  });

  it('counts the calls of a step that failed, which the Report says (Prepare) or says again (a write-back step)', () => {
    const failedPrepare: string[] = [];
    let print = progressPrinter((line) => failedPrepare.push(line));
    print({
      type: 'failed',
      state: 'Prepare',
      stateType: 'Task',
      error: { name: 'TerminalError', cause: 'extract[0].object: Salesforce has no object Leads' },
    });
    print({
      type: 'exited',
      state: 'Report failure',
      stateType: 'Task',
      output: { runId: 'r', status: 'failed', writeback: {}, prepare: { apiCalls: 2 } },
    });
    expect(failedPrepare.at(-1)).toBe('  ✓ Report failure  (so far: 0 rows read, 2 Salesforce API calls)');

    // Prepare's own output and the Report's say the same calls: counted once.
    const failedPlan: string[] = [];
    print = progressPrinter((line) => failedPlan.push(line));
    print({ type: 'exited', state: 'Prepare', stateType: 'Task', output: { runId: 'r', apiCalls: 2 } });
    print({
      type: 'failed',
      state: 'Lead-update plan',
      stateType: 'Task',
      error: { name: 'TerminalError', cause: 'field Nope__c does not exist on Lead' },
    });
    print({
      type: 'exited',
      state: 'Report failure',
      stateType: 'Task',
      output: {
        runId: 'r',
        status: 'failed',
        writeback: { 'Lead-update': { apiCalls: 1 } },
        prepare: { apiCalls: 2 },
      },
    });
    expect(failedPlan.filter((l) => l.includes('so far'))).toEqual([
      '  ✓ Prepare: 2 Salesforce API calls  (so far: 0 rows read, 2 Salesforce API calls)',
      '  ✓ Report failure  (so far: 0 rows read, 3 Salesforce API calls)',
    ]);
  });

  it('counts the calls of a Salesforce extract whose check failed once, from the Report, beside those it reported', () => {
    const lines: string[] = [];
    const print = progressPrinter((line) => lines.push(line));
    print({ type: 'exited', state: 'Prepare', stateType: 'Task', output: { runId: 'r', apiCalls: 2 } });
    // The start and three polls answered bulk-pending, each with the task's calls so far.
    print({
      type: 'exited',
      state: 'Lead extract',
      stateType: 'Task',
      output: { status: 'bulk-pending', task: 'Lead', apiCalls: 3 },
    });
    print({
      type: 'exited',
      state: 'Lead check',
      stateType: 'Task',
      output: { status: 'bulk-pending', task: 'Lead', apiCalls: 6 },
    });
    print({
      type: 'failed',
      state: 'Lead check',
      stateType: 'Task',
      error: {
        name: 'TerminalError',
        cause: 'Salesforce Bulk query job 750x of extract task Lead ended Failed',
      },
    });
    print({
      type: 'exited',
      state: 'Report failure',
      stateType: 'Task',
      output: {
        runId: 'r',
        status: 'failed',
        writeback: {},
        prepare: { apiCalls: 2 },
        extract: { Lead: { apiCalls: 7 } },
      },
    });
    expect(lines.filter((l) => l.includes('so far')).at(-1)).toBe(
      '  ✓ Report failure  (so far: 0 rows read, 9 Salesforce API calls)',
    );
  });

  it("names a retried step's error once, and a different error in full", () => {
    const lines: string[] = [];
    const print = progressPrinter((line) => lines.push(line));
    const refused = {
      name: 'TransientError',
      cause: 'PostgreSQL connecting (u@127.0.0.1:1/db): connect ECONNREFUSED',
    };
    for (const error of [refused, refused, refused, { name: 'TerminalError', cause: 'other' }]) {
      print({ type: 'failed', state: 'Prepare', stateType: 'Task', error });
      print({ type: 'retried', state: 'Prepare', stateType: 'Task' });
    }
    print({ type: 'failed', state: 'Report failure', stateType: 'Task', error: refused });
    expect(lines).toEqual([
      '  ✗ Prepare: PostgreSQL connecting (u@127.0.0.1:1/db): connect ECONNREFUSED',
      '  ↻ Prepare: retrying',
      '  ✗ Prepare: the same error again',
      '  ↻ Prepare: retrying',
      '  ✗ Prepare: the same error again',
      '  ↻ Prepare: retrying',
      '  ✗ Prepare: other',
      '  ↻ Prepare: retrying',
      '  ✗ Report failure: PostgreSQL connecting (u@127.0.0.1:1/db): connect ECONNREFUSED',
    ]);
  });

  it('says a step that waits for another run waits, not that it failed', () => {
    const lines: string[] = [];
    const print = progressPrinter((line) => lines.push(line));
    const busy = {
      name: 'TaskBusyError',
      cause:
        'Write-back Lead-update: another push or collect of the task is going on; this run waits for its end',
    };
    for (const error of [busy, busy]) {
      print({ type: 'failed', state: 'Lead-update push', stateType: 'Task', error });
      print({ type: 'retried', state: 'Lead-update push', stateType: 'Task' });
    }
    expect(lines).toEqual([
      '  … Lead-update push: Write-back Lead-update: another push or collect of the task is going on; this run waits for its end (tried again after the Retry interval of the definition, as the deployed state machine does)',
      '  ↻ Lead-update push: retrying',
      '  … Lead-update push: the same wait again',
      '  ↻ Lead-update push: retrying',
    ]);
  });

  it("says the rows a Salesforce extract with deletes 'remove' removed, when there are any", () => {
    const config = parseConfig({
      name: 'scores',
      salesforce: { secret: 'sf' },
      postgres: { secret: 'pg' },
      extract: [
        {
          from: 'salesforce',
          object: 'Contact',
          fields: ['Id', 'Email'],
          table: 'contacts',
          deletes: 'remove',
        },
        { from: 'salesforce', object: 'Lead', fields: ['Id', 'Email'], table: 'leads' },
      ],
    });
    const lines: string[] = [];
    const print = progressPrinter((line) => lines.push(line), config);
    const loaded = (task: string, deleted: number): Record<string, unknown> => ({
      status: 'loaded',
      runId: 'r',
      task,
      rows: 3,
      inserted: 0,
      updated: 0,
      deleted,
      api: 'rest',
      apiCalls: 1,
      full: true,
      watermark: null,
    });
    print({ type: 'exited', state: 'Contact extract', stateType: 'Task', output: loaded('Contact', 2) });
    print({ type: 'exited', state: 'Contact extract', stateType: 'Task', output: loaded('Contact', 0) });
    // Flagged rows stay in the table (deletes 'flag', the default): none removed.
    print({ type: 'exited', state: 'Lead extract', stateType: 'Task', output: loaded('Lead', 2) });
    expect(lines.map((l) => l.split('  (so far')[0])).toEqual([
      '  ✓ Contact extract: 3 rows read, 0 written, 2 removed, 1 Salesforce API call',
      '  ✓ Contact extract: 3 rows read, 0 written',
      '  ✓ Lead extract: 3 rows read, 0 written, 1 Salesforce API call',
    ]);
  });

  it('goes by the deletes a load says it applied: User’s default removes, which its config does not say', () => {
    const config = parseConfig({
      name: 'users',
      salesforce: { secret: 'sf' },
      postgres: { secret: 'pg' },
      extract: [
        { from: 'salesforce', object: 'User', fields: ['Id', 'Email'], table: 'users' },
        { from: 'salesforce', object: 'Contact', fields: ['Id'], table: 'contacts', deletes: 'remove' },
      ],
    });
    const lines: string[] = [];
    const print = progressPrinter((line) => lines.push(line), config);
    const loaded = (task: string, deletes: 'remove' | 'flag'): Record<string, unknown> => ({
      status: 'loaded',
      runId: 'r',
      task,
      rows: 3,
      inserted: 1,
      updated: 0,
      deleted: 2,
      deletes,
      api: 'rest',
      apiCalls: 1,
      full: true,
      watermark: null,
    });
    print({ type: 'exited', state: 'User extract', stateType: 'Task', output: loaded('User', 'remove') });
    print({ type: 'exited', state: 'Contact extract', stateType: 'Task', output: loaded('Contact', 'flag') });
    expect(lines.map((l) => l.split(', 1 Salesforce')[0])).toEqual([
      '  ✓ User extract: 3 rows read, 1 written, 2 removed',
      '  ✓ Contact extract: 3 rows read, 1 written',
    ]);
  });

  it('says below a keyed Athena load whose query returned keys in more than one row which, how many rows it dropped and the fix', () => {
    const lines: string[] = [];
    const print = progressPrinter((line) => lines.push(line));
    const loaded = {
      status: 'loaded',
      runId: 'r',
      task: 'order_status',
      queryExecutionId: 'q',
      refresh: 'merge',
      rows: 9,
      inserted: 3,
      updated: 0,
      deleted: 0,
      apiCalls: 2,
      s3Reads: 1,
    };
    print({ type: 'exited', state: 'order_status load', stateType: 'Task', output: loaded });
    print({
      type: 'exited',
      state: 'order_status load',
      stateType: 'Task',
      output: {
        ...loaded,
        duplicateKeys: {
          table: 'public.order_status',
          key: ['id'],
          droppedRows: 6,
          keys: 6,
          examples: [1, 2, 3, 4, 5].map((id) => ({ key: { id: String(id) }, rows: 2 })),
        },
      },
    });
    expect(lines.map((l) => l.split('  (so far')[0])).toEqual([
      '  ✓ order_status load: 9 rows read, 3 written, 3 Athena/S3 calls',
      '  ✓ order_status load: 9 rows read, 3 written',
      "  ! Extract task order_status: the query returned 6 keys in more than one row (id 1: 2 rows, id 2: 2 rows, id 3: 2 rows, id 4: 2 rows, id 5: 2 rows, 1 more), 6 rows more than keys: public.order_status kept one row a key, the last in the result file, which Athena orders arbitrarily without ORDER BY, so which row is kept may change from run to run; make the task's query return one row a key, the version you want: SELECT <its columns> FROM (SELECT …, row_number() OVER (PARTITION BY id ORDER BY <a column that orders versions> DESC) AS rn FROM …) WHERE rn = 1. Set duplicateKeys: 'fail' on the task to fail instead of loading",
    ]);
  });

  it('says below an Athena load without a key that its table kept a primary key, and the ways out', () => {
    const lines: string[] = [];
    const print = progressPrinter((line) => lines.push(line));
    const output = {
      status: 'loaded',
      runId: 'r',
      task: 'customers',
      queryExecutionId: 'q',
      refresh: 'swap',
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
    };
    print({ type: 'exited', state: 'customers load', stateType: 'Task', output });
    expect(lines.slice(1)).toEqual([
      '  ! Extract task customers has no key (extract[1].key), but public.customers kept its primary key (id) (made by the task\'s earlier loads with a key, or by hand): the load replaced the table\'s rows with the result as it is, and a run whose result repeats a value of the key or leaves it NULL will fail. Drop the table\'s primary key if the task is meant to load without one (ALTER TABLE "public"."customers" DROP CONSTRAINT "customers_pkey"), or give the task its key again (extract[1].key: [\'id\']: the load then merges, one row a key)',
    ]);
  });

  it('says below a Salesforce REST read that its pages held fewer records than its totalSize, and that the watermark stayed', () => {
    const lines: string[] = [];
    const print = progressPrinter((line) => lines.push(line));
    const output = {
      status: 'loaded',
      runId: 'r',
      task: 'Lead',
      rows: 3,
      inserted: 0,
      updated: 3,
      deleted: 0,
      deletes: 'flag',
      api: 'rest',
      apiCalls: 2,
      full: true,
      watermark: null,
      queryCountMismatch: { totalSize: 4, read: 3, watermarkKept: null },
    };
    print({ type: 'exited', state: 'Lead', stateType: 'Task', output });
    expect(lines.slice(1)).toEqual([
      "  ! Extract task Lead: Salesforce said its query matched 4 records (totalSize), but its pages held 3: records the query matched may be missing from this read. The rows read were loaded, but the watermark was not moved (there is none yet), no row the read did not return was removed or flagged, and the next read is full again, so the next run reads those records again. If this is said run after run, read the task through Bulk (a bulkThreshold below its row count) and report it with the task's query",
    ]);
  });

  it('says each warning a transform file raised, by file and line, after the Transform line', () => {
    const lines: string[] = [];
    const print = progressPrinter((line) => lines.push(line));
    print({
      type: 'exited',
      state: 'Transform',
      stateType: 'Task',
      output: {
        runId: 'r',
        durationMs: 5,
        files: [
          { file: '/p/transforms/01_a.sql', statements: 1, rows: 2, durationMs: 1 },
          {
            file: '/p/transforms/02_b.sql',
            statements: 2,
            rows: 0,
            durationMs: 1,
            warnings: [{ line: 5, message: 'only 3 scores; in the DO block, line 5 at RAISE' }],
          },
        ],
      },
    });
    expect(lines).toEqual([
      '  ✓ Transform  (so far: 0 rows read, 0 Salesforce API calls)',
      '  ! 02_b.sql, line 5: WARNING: only 3 scores; in the DO block, line 5 at RAISE',
    ]);
  });

  it('names a transform file whose name another file of the run has by its folder too, as the summary does', () => {
    const lines: string[] = [];
    const print = progressPrinter((line) => lines.push(line));
    const file = (name: string) => ({
      file: name,
      statements: 1,
      rows: 0,
      durationMs: 1,
      warnings: [{ line: 1, message: 'no rows' }],
    });
    print({
      type: 'exited',
      state: 'Transform',
      stateType: 'Task',
      output: { runId: 'r', durationMs: 5, files: [file('/p/a/score.sql'), file('/p/b/score.sql')] },
    });
    expect(lines.slice(1)).toEqual([
      '  ! a/score.sql, line 1: WARNING: no rows',
      '  ! b/score.sql, line 1: WARNING: no rows',
    ]);
  });
});
