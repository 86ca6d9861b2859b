/**
 * The extract when things go wrong: a connection reset in the middle of the COPY, a page
 * interrupted and fetched again, an expired session between two steps, a failed Bulk job, a
 * retried check step — and, over all of it, no secret in any log line, error or run summary.
 */
import {
  checkSalesforceExtract,
  extractSalesforce,
  prepare,
  runExtract,
  type CoreDeps,
  type SalesforceExtractOutput,
} from '../../../lambdas/core';
import { TerminalError, TransientError } from '../../../lambdas/shared/errors';
import { CANARY, LEAD_FIELDS, leads, startExtractHarness, type ExtractHarness } from './harness';

const ROWS = 300;

describe('Salesforce extract under faults', () => {
  let h: ExtractHarness;
  const errors: unknown[] = [];
  const config = () =>
    h.config([
      {
        from: 'salesforce',
        object: 'Lead',
        fields: LEAD_FIELDS,
        table: 'sf_lead',
        bulkThreshold: 50,
        overlapSeconds: 0,
      },
    ]);
  const options = (pageAttempts: number) => ({
    salesforce: { bulkResultPageRecords: 100, bulkResultPageAttempts: pageAttempts },
  });

  /** A fingerprint of the table's whole content and the task's watermark. */
  const snapshot = async () => ({
    table: await h.rows(
      `SELECT count(*)::int AS n, md5(string_agg(t::text, '|' ORDER BY "Id")) AS digest FROM sf_lead AS t`,
    ),
    state: await h.rows('SELECT watermark, watermark_id, rows_total FROM roundtrip.extract_state'),
    staging: await h.rows(
      `SELECT relname FROM pg_class WHERE relname LIKE '%staging%' OR relname LIKE '%__stg_%'`,
    ),
  });

  async function capture<T>(promise: Promise<T>): Promise<unknown> {
    try {
      await promise;
    } catch (err) {
      errors.push(err);
      return err;
    }
    throw new Error('expected the promise to reject');
  }

  beforeAll(async () => {
    h = await startExtractHarness({ seed: { Lead: leads(ROWS) } });
    const first = await runExtract({ input: {} }, h.deps(config()), options(3));
    expect(first.salesforce.Lead).toMatchObject({ api: 'bulk', rows: ROWS, inserted: ROWS });
  });
  afterAll(() => h.close());

  /**
   * Prepare, the extract step (a Bulk job), then the faults, then the check steps: so that the
   * fault hits the result pages, not the COUNT() before them.
   */
  async function runWithFault(
    faults: Parameters<ExtractHarness['sf']['faults']['set']>[0],
    pageAttempts: number,
  ): Promise<SalesforceExtractOutput> {
    const deps = h.deps(config());
    const { runId } = await prepare({ input: {} }, deps);
    const stepOptions = { bulkResultPageRecords: 100, bulkResultPageAttempts: pageAttempts };
    let output = await extractSalesforce({ runId, task: 'Lead', full: false }, deps, stepOptions);
    h.sf.faults.set(faults);
    while (output.status === 'bulk-pending') output = await checkSalesforceExtract(output, deps, stepOptions);
    return output;
  }

  it('leaves the table and the watermark untouched when the connection resets in the middle of the COPY, and converges on the rerun', async () => {
    const ids = h.sf.store.query('SELECT Id FROM Lead').records.map((r) => r.Id as string);
    h.sf.store.update(
      'Lead',
      ids.slice(0, 120).map((Id) => ({ Id, Company: 'Moved Ltd' })),
    );
    const before = await snapshot();
    // The first result page dies after a few thousand bytes, in the middle of the COPY.
    const err = await capture(runWithFault({ resetStreamAfterBytes: 3000 }, 1));
    expect(err).toBeInstanceOf(TransientError);
    // Named by its task: the connector's error names the job only.
    expect((err as Error).message).toMatch(
      /^Extract task Lead: Salesforce Bulk query results of job 750\w+ failed/,
    );
    expect(await snapshot()).toEqual(before);

    const rerun = await runExtract({ input: {} }, h.deps(config()), options(1));
    // 120 changed rows, and the row at the watermark itself (the bound is inclusive).
    expect(rerun.salesforce.Lead).toMatchObject({ rows: 121, updated: 120, inserted: 0 });
    expect(await h.rows(`SELECT count(*)::int AS n FROM sf_lead WHERE "Company" = 'Moved Ltd'`)).toEqual([
      { n: 120 },
    ]);
    expect((await snapshot()).staging).toEqual([]);
  });

  it('fetches an interrupted result page again and skips the rows it already has', async () => {
    const ids = h.sf.store.query('SELECT Id FROM Lead').records.map((r) => r.Id as string);
    h.sf.store.update(
      'Lead',
      ids.slice(0, 150).map((Id) => ({ Id, Company: 'Again Ltd' })),
    );
    const result = await runWithFault({ resetStreamAfterBytes: 5000 }, 3);
    expect(result).toMatchObject({ status: 'loaded', rows: 150, updated: 150, inserted: 0 });
    expect(
      h.logger.records.some((r) => r.message === 'Bulk query results page interrupted; fetching it again'),
    ).toBe(true);
    expect(await h.rows('SELECT count(*)::int AS n FROM sf_lead')).toEqual([{ n: ROWS }]);
  });

  it('renews an expired session between the Bulk steps, and a retried check re-attaches to the same job', async () => {
    const deps: CoreDeps = h.deps(config());
    const { runId } = await prepare({ input: {} }, deps);
    const ids = h.sf.store.query('SELECT Id FROM Lead').records.map((r) => r.Id as string);
    h.sf.store.update(
      'Lead',
      ids.slice(0, 60).map((Id) => ({ Id, FirstName: 'Renewed' })),
    );
    const started = await extractSalesforce({ runId, task: 'Lead', full: false }, deps, {
      bulkResultPageRecords: 100,
    });
    // The watermark is within the same second as the previous test's changes (SOQL datetimes
    // have no fraction, so the bound is rounded down): those are read again, harmlessly.
    expect(started).toMatchObject({ status: 'bulk-pending', attempt: 0, waitSeconds: 2 });
    expect((started as { expectedRows: number }).expectedRows).toBeGreaterThanOrEqual(60);
    const jobsBefore = h.sf.calls.count({ operation: 'bulk.query.create' });

    h.sf.expireSessions();
    let output: SalesforceExtractOutput = started;
    // The state machine would Wait output.waitSeconds here; the emulator's job is done at once.
    output = await checkSalesforceExtract(started as never, deps, { bulkResultPageRecords: 100 });
    // A retry of the same check (say, the Lambda timed out after loading) converges: same job, no new rows.
    const retried = await checkSalesforceExtract(started as never, deps, { bulkResultPageRecords: 100 });
    const expected = (started as { expectedRows: number }).expectedRows;
    expect(output).toMatchObject({ status: 'loaded', api: 'bulk', rows: expected, updated: 60, inserted: 0 });
    expect(retried).toMatchObject({ status: 'loaded', api: 'bulk', rows: expected, updated: 0, inserted: 0 });
    expect(h.sf.calls.count({ operation: 'bulk.query.create' })).toBe(jobsBefore);
    expect(h.logger.records.some((r) => r.message === 'Salesforce session renewed')).toBe(true);
    expect(await h.rows(`SELECT count(*)::int AS n FROM sf_lead WHERE "FirstName" = 'Renewed'`)).toEqual([
      { n: 60 },
    ]);
  });

  it('re-attaches a retried start to the job an earlier attempt created: one job per run and task', async () => {
    const deps: CoreDeps = h.deps(config());
    const { runId } = await prepare({ input: {} }, deps);
    const ids = h.sf.store.query('SELECT Id FROM Lead').records.map((r) => r.Id as string);
    h.sf.store.update(
      'Lead',
      ids.slice(0, 80).map((Id) => ({ Id, LastName: 'Started twice' })),
    );
    const jobsBefore = h.sf.calls.count({ operation: 'bulk.query.create' });
    const input = { runId, task: 'Lead', full: false };
    const first = await extractSalesforce(input, deps, { bulkResultPageRecords: 100 });
    expect(first).toMatchObject({ status: 'bulk-pending', attempt: 0 });
    // The state machine retries the step (its Lambda timed out after Salesforce created the job),
    // in a new container: another connector, the same run id and task.
    const countsBefore =
      h.sf.calls.count({ operation: 'query' }) + h.sf.calls.count({ operation: 'queryAll' });
    const retried = await extractSalesforce(input, h.deps(config()), { bulkResultPageRecords: 100 });
    expect(retried).toEqual({ ...first, apiCalls: (retried as { apiCalls: number }).apiCalls });
    expect(h.sf.calls.count({ operation: 'bulk.query.create' })).toBe(jobsBefore + 1);
    // Re-attaching needs no COUNT(): only the describe of the new connector.
    expect(h.sf.calls.count({ operation: 'query' }) + h.sf.calls.count({ operation: 'queryAll' })).toBe(
      countsBefore,
    );
    expect(h.logger.records.some((r) => r.message === 'Salesforce Bulk query job re-attached')).toBe(true);
    expect(
      await h.rows('SELECT run_id, task, job_id, loaded_at FROM roundtrip.extract_jobs WHERE run_id = $1', [
        runId,
      ]),
    ).toEqual([{ run_id: runId, task: 'Lead', job_id: (first as { jobId: string }).jobId, loaded_at: null }]);

    let output: SalesforceExtractOutput = retried;
    while (output.status === 'bulk-pending')
      output = await checkSalesforceExtract(output, deps, { bulkResultPageRecords: 100 });
    expect(output).toMatchObject({ status: 'loaded', api: 'bulk', updated: 80, inserted: 0 });
    expect(await h.rows(`SELECT count(*)::int AS n FROM sf_lead WHERE "LastName" = 'Started twice'`)).toEqual(
      [{ n: 80 }],
    );
    const [job] = await h.rows<{ loaded_at: Date | null }>(
      'SELECT loaded_at FROM roundtrip.extract_jobs WHERE run_id = $1',
      [runId],
    );
    expect(job?.loaded_at).toBeInstanceOf(Date);

    // Once loaded, the job is spent: a start of the same run and task asks again (a new job).
    const again = await extractSalesforce(input, deps, { bulkResultPageRecords: 100 });
    expect(again).toMatchObject({ status: 'bulk-pending' });
    expect((again as { jobId: string }).jobId).not.toBe((first as { jobId: string }).jobId);
    expect(h.sf.calls.count({ operation: 'bulk.query.create' })).toBe(jobsBefore + 2);
    output = again;
    while (output.status === 'bulk-pending')
      output = await checkSalesforceExtract(output, deps, { bulkResultPageRecords: 100 });
    expect(output).toMatchObject({ status: 'loaded', updated: 0, inserted: 0 });
  });

  it('does not re-attach to a job that reads other rows: a retried start with full asks anew', async () => {
    const deps: CoreDeps = h.deps(config());
    const { runId } = await prepare({ input: {} }, deps);
    const jobsBefore = h.sf.calls.count({ operation: 'bulk.query.create' });
    const incremental = await extractSalesforce({ runId, task: 'Lead', full: false }, deps, {});
    const full = await extractSalesforce({ runId, task: 'Lead', full: true }, deps, {});
    expect(full).toMatchObject({ status: 'bulk-pending', full: true, expectedRows: ROWS });
    expect((full as { jobId: string }).jobId).not.toBe((incremental as { jobId: string }).jobId);
    expect(h.sf.calls.count({ operation: 'bulk.query.create' })).toBe(jobsBefore + 2);
    const [job] = await h.rows<{ job_id: string; full_read: boolean }>(
      'SELECT job_id, full_read FROM roundtrip.extract_jobs WHERE run_id = $1',
      [runId],
    );
    expect(job).toEqual({ job_id: (full as { jobId: string }).jobId, full_read: true });
    let output: SalesforceExtractOutput = full;
    while (output.status === 'bulk-pending') output = await checkSalesforceExtract(output, deps, {});
    expect(output).toMatchObject({ status: 'loaded', rows: ROWS, inserted: 0 });
  });

  it('fails with Salesforce’s reason when the Bulk job fails, leaving the table as it was', async () => {
    const ids = h.sf.store.query('SELECT Id FROM Lead').records.map((r) => r.Id as string);
    h.sf.store.update(
      'Lead',
      ids.slice(0, 70).map((Id) => ({ Id, Title: 'Never loaded' })),
    );
    const before = await snapshot();
    h.sf.faults.set({ failNextBulkJob: 'InternalServerError : query timed out on the server' });
    const err = await capture(runExtract({ input: {} }, h.deps(config()), options(3)));
    expect(err).toBeInstanceOf(TerminalError);
    expect((err as Error).message).toMatch(
      /^Salesforce Bulk query job 750\w+ of extract task Lead ended Failed: InternalServerError : query timed out on the server$/,
    );
    expect(await snapshot()).toEqual(before);
  });

  it('never lets a credential reach a log line, an error or a run summary', async () => {
    expect(h.logger.records.length).toBeGreaterThan(20);
    const texts = [
      ...h.logger.records.map((r) => JSON.stringify(r)),
      ...errors.flatMap((e) => {
        const chain: string[] = [];
        for (let c: unknown = e; c instanceof Error; c = (c as { cause?: unknown }).cause) {
          chain.push(c.message, String(c.stack), JSON.stringify(c));
        }
        return chain;
      }),
      ...(await h.rows('SELECT * FROM roundtrip.runs')).map((r) => JSON.stringify(r)),
      ...(await h.rows('SELECT * FROM roundtrip.extract_state')).map((r) => JSON.stringify(r)),
    ];
    expect(errors.length).toBeGreaterThanOrEqual(2);
    for (const text of texts) {
      for (const canary of Object.values(CANARY)) expect(text).not.toContain(canary);
      // A session id or bearer token, had one slipped out unredacted.
      expect(text).not.toMatch(/Bearer (?!\[REDACTED\])\S{8,}/);
      expect(text).not.toMatch(/00D\w{12,15}![\w.]{20,}/);
    }
  });
});
