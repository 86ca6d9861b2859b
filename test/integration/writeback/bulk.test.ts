/**
 * The Bulk API 2.0 path: CSV streamed out of PostgreSQL into ingest jobs, results streamed back
 * with COPY, failed rows, several jobs, a job that fails, and crashes around job creation followed
 * by a rerun that re-attaches and duplicates nothing.
 */
import { connectSalesforce, type SalesforceConnector } from '../../../lambdas/connectors/salesforce';
import {
  abortIngestJob,
  createIngestJob,
  getIngestJob,
  isFinalIngestState,
} from '../../../lambdas/connectors/salesforce/writes';
import { collectJob } from '../../../lambdas/core/writeback/bulk-results';
import {
  collectWriteback,
  planWriteback,
  pushWriteback,
  reportRun,
  runWriteback,
  type WritebackCollectInput,
  type WritebackPushOutput,
} from '../../../lambdas/core/writeback';
import { TransientError } from '../../../lambdas/shared/errors';
import {
  crashingConnector,
  errorsOf,
  leadSeed,
  ledgerByStatus,
  startWritebackEnv,
  type WritebackEnv,
} from './support';

const LEADS = 250;

async function untilCollected(
  env: WritebackEnv,
  deps: ReturnType<WritebackEnv['deps']>,
  state: WritebackPushOutput,
) {
  let current = state;
  for (let i = 0; current.status === 'bulk-pending' && i < 50; i += 1) {
    await deps.clock.sleep(current.waitSeconds * 1000);
    current = await collectWriteback(deps, current);
  }
  return current;
}

describe('write-back through Bulk API 2.0 ingest', () => {
  let env: WritebackEnv;
  let ids: string[];

  beforeAll(async () => {
    env = await startWritebackEnv();
    ids = env.sf.store.seed('Lead', leadSeed(LEADS));
    await env.pool.query(`CREATE TABLE lead_reverse ("Id" text, lead_score integer)`);
    await env.pool.query(`CREATE TABLE lead_src (ext text, last_name text, score integer)`);
  });
  afterAll(async () => env?.stop());
  afterEach(() => env.sf.faults.clear());

  const update = {
    to: 'salesforce' as const,
    object: 'Lead',
    from: 'lead_reverse',
    mode: 'update' as const,
    fields: { LeadScore__c: 'lead_score' },
    bulkThreshold: 50,
    maxFailureRate: 0.5,
  };
  const upsert = {
    to: 'salesforce' as const,
    object: 'Lead',
    from: 'lead_src',
    mode: 'upsert' as const,
    key: 'External_Id__c',
    keyColumn: 'ext',
    fields: { LastName: 'last_name', Company: 'last_name', LeadScore__c: 'score' },
    bulkThreshold: 50,
  };

  async function scores(plus: number): Promise<void> {
    await env.pool.query('DELETE FROM lead_reverse');
    await env.pool.query(
      `INSERT INTO lead_reverse SELECT id, (i + $2) % 100 FROM unnest($1::text[]) WITH ORDINALITY AS t(id, i)`,
      [ids, plus],
    );
  }

  it('updates through one job, streams the results back and records the failed rows', async () => {
    await scores(0);
    env.sf.store.delete([ids[0] as string, ids[100] as string]);
    const deps = env.deps({ writeback: [update] });
    const runId = await env.newRun();
    env.sf.calls.clear();

    const { plan, result } = await runWriteback(deps, { runId, task: 'Lead-update' });

    expect(plan).toMatchObject({ api: 'bulk', changed: LEADS });
    expect(result).toMatchObject({ api: 'bulk', planned: LEADS, succeeded: LEADS - 2, failed: 2 });
    ids.slice(1, 100).forEach((id, i) => expect(env.sf.store.get(id)?.LeadScore__c).toBe((i + 2) % 100));
    const errors = await errorsOf(env, runId);
    expect(errors.map((e) => [e.key, e.code])).toEqual(
      [
        [ids[0], 'ENTITY_IS_DELETED'],
        [ids[100], 'ENTITY_IS_DELETED'],
      ].sort(),
    );
    expect(errors[0]?.message).toBe('entity is deleted');
    const { rows: jobs } = await env.pool.query(
      `SELECT state, rows, records_processed, records_failed, collected_at FROM roundtrip.writeback_jobs WHERE run_id = $1`,
      [runId],
    );
    expect(jobs).toEqual([
      expect.objectContaining({
        state: 'JobComplete',
        rows: LEADS,
        records_processed: LEADS,
        records_failed: 2,
        collected_at: expect.any(Date),
      }),
    ]);
    // create, upload, close, polls, successfulResults, failedResults: no per-record call.
    expect(env.sf.calls.count({ operation: 'bulk.ingest.create' })).toBe(1);
    expect(env.sf.calls.count({ operation: 'bulk.ingest.upload' })).toBe(1);
    expect(env.sf.calls.count({ operation: 'bulk.ingest.results' })).toBe(2);
    expect(env.sf.calls.count({ write: true, operation: 'composite' })).toBe(0);
    const { rows: sync } = await env.pool.query(
      `SELECT count(*)::int AS n FROM roundtrip.sync_state WHERE task = 'Lead-update'`,
    );
    expect(sync[0].n).toBe(LEADS - 2);
  });

  it('splits a plan larger than the upload limit into several jobs', async () => {
    await scores(3);
    const deps = env.deps({ writeback: [update] });
    const runId = await env.newRun();
    env.sf.calls.clear();

    const { result } = await runWriteback(deps, { runId, task: 'Lead-update' }, { maxJobBytes: 8_000 });

    const { rows: jobs } = await env.pool.query(
      `SELECT chunk, first_seq, last_seq, rows FROM roundtrip.writeback_jobs WHERE run_id = $1 ORDER BY chunk`,
      [runId],
    );
    expect(jobs.length).toBeGreaterThan(2);
    // The two deleted leads were never synced, so they are planned (and refused) again.
    expect(jobs.reduce((sum, j) => sum + j.rows, 0)).toBe(LEADS);
    jobs.slice(1).forEach((j, i) => expect(Number(j.first_seq)).toBe(Number(jobs[i].last_seq) + 1));
    expect(env.sf.calls.count({ operation: 'bulk.ingest.create' })).toBe(jobs.length);
    // The two deleted leads fail again; every other lead has its new score.
    expect(result).toMatchObject({ succeeded: LEADS - 2, failed: 2 });
    expect(env.sf.store.get(ids[5] as string)?.LeadScore__c).toBe((6 + 3) % 100);
  });

  it('says at each collect that finds jobs running how many records they carry and how many Salesforce processed', async () => {
    await scores(5);
    const deps = env.deps({ writeback: [update] });
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'Lead-update' });
    env.sf.faults.set({ bulkJobDelayMs: 1_500 });
    try {
      const pushed = await pushWriteback(deps, { runId, task: 'Lead-update' });
      expect(pushed).toMatchObject({ status: 'bulk-pending' });
      const running = await collectWriteback(deps, pushed as WritebackCollectInput);
      expect(running).toMatchObject({ status: 'bulk-pending', attempt: 1 });
      const said = env.logger.records.filter((r) => r.message === 'Bulk ingest jobs still running').at(-1);
      expect(said?.level).toBe('info');
      expect(said?.attributes).toMatchObject({ running: 1, attempt: 1, records: LEADS });
      expect(said?.attributes.recordsProcessed).toEqual(expect.any(Number));
      // The job finishes in Salesforce's time (the emulator's delay), not the test clock's.
      let state = running;
      for (let i = 0; state.status === 'bulk-pending' && i < 100; i += 1) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        state = await collectWriteback(deps, state);
      }
      expect(state).toMatchObject({ status: 'collected' });
    } finally {
      env.sf.faults.clear();
    }
  });

  it('a crash after the job was closed is followed by a rerun that re-attaches and duplicates nothing', async () => {
    await env.pool.query('DELETE FROM lead_src');
    await env.pool.query(
      `INSERT INTO lead_src SELECT 'bulk-' || i, 'Bulk ' || i, i FROM generate_series(1, 120) AS i`,
    );
    const deps = env.deps({ writeback: [upsert] });
    const runId = await env.newRun();
    const before = env.sf.store.count('Lead');
    await planWriteback(deps, { runId, task: 'Lead-upsert' });
    env.sf.calls.clear();

    await expect(
      pushWriteback(
        { ...deps, salesforce: crashingConnector(env.connector, (operation) => /close/.test(operation)) },
        { runId, task: 'Lead-upsert' },
      ),
    ).rejects.toThrow(/simulated crash/);
    const { rows: recorded } = await env.pool.query(
      `SELECT job_id, state FROM roundtrip.writeback_jobs WHERE run_id = $1`,
      [runId],
    );
    // The whole CSV was uploaded before the close: a retry closes or re-attaches, never aborts.
    expect(recorded).toEqual([expect.objectContaining({ state: 'Uploaded' })]);

    const pending = await pushWriteback(deps, { runId, task: 'Lead-upsert' });
    expect(pending).toMatchObject({ status: 'bulk-pending', jobIds: [recorded[0].job_id] });
    const result = await untilCollected(env, deps, pending);

    expect(result).toMatchObject({ status: 'collected', succeeded: 120, failed: 0 });
    expect(env.sf.calls.count({ operation: 'bulk.ingest.create' })).toBe(1);
    expect(env.sf.calls.count({ operation: 'bulk.ingest.upload' })).toBe(1);
    expect(env.sf.store.count('Lead')).toBe(before + 120);
    const created = [...env.sf.store.all('Lead')].filter((r) => String(r.External_Id__c).startsWith('bulk-'));
    expect(created).toHaveLength(120);
  });

  it('a crash right after the job was created replaces the open job and sends each record once', async () => {
    await env.pool.query(`UPDATE lead_src SET score = score + 1`);
    const deps = env.deps({ writeback: [upsert] });
    const runId = await env.newRun();
    const before = env.sf.store.count('Lead');
    await planWriteback(deps, { runId, task: 'Lead-upsert' });
    env.sf.calls.clear();

    // The job is created and recorded; the upload never happens.
    const noUpload = Object.create(env.connector, {
      putStream: {
        value: async () => {
          throw new TransientError('simulated crash before the upload');
        },
      },
    }) as SalesforceConnector;
    await expect(
      pushWriteback({ ...deps, salesforce: noUpload }, { runId, task: 'Lead-upsert' }),
    ).rejects.toThrow(/before the upload/);
    // A retried plan step now answers the stored plan: the job's seq range refers to it.
    const pagesBefore = await env.pool.query(
      `SELECT page, created_at FROM roundtrip.writeback_plan_pages WHERE run_id = $1 ORDER BY page`,
      [runId],
    );
    expect(await planWriteback(deps, { runId, task: 'Lead-upsert' })).toMatchObject({ changed: 120 });
    const pagesAfter = await env.pool.query(
      `SELECT page, created_at FROM roundtrip.writeback_plan_pages WHERE run_id = $1 ORDER BY page`,
      [runId],
    );
    expect(pagesAfter.rows).toEqual(pagesBefore.rows);

    const result = await untilCollected(env, deps, await pushWriteback(deps, { runId, task: 'Lead-upsert' }));

    expect(result).toMatchObject({ succeeded: 120, failed: 0 });
    expect(env.sf.calls.count({ operation: 'bulk.ingest.create' })).toBe(2);
    expect(env.sf.calls.count({ operation: 'bulk.ingest.upload' })).toBe(1);
    const { rows: jobs } = await env.pool.query(
      `SELECT state FROM roundtrip.writeback_jobs WHERE run_id = $1 ORDER BY created_at`,
      [runId],
    );
    expect(jobs.map((j) => j.state)).toEqual(['Superseded', 'JobComplete']);
    expect(env.sf.store.count('Lead')).toBe(before);
    const bulk7 = [...env.sf.store.all('Lead')].filter((r) => r.External_Id__c === 'bulk-7');
    expect(bulk7).toEqual([expect.objectContaining({ LeadScore__c: 8 })]);
  });

  /**
   * Inserts `n` new keyed leads through one Bulk job whose close never reaches Salesforce in the
   * first push; `retry` is the connector of the second push. Answers the run's jobs afterwards.
   */
  async function insertWithLostClose(
    prefix: string,
    n: number,
    retry: (jobId: string) => SalesforceConnector,
  ) {
    await env.pool.query('DELETE FROM lead_src');
    await env.pool.query(
      `INSERT INTO lead_src SELECT $1 || i, 'Late ' || i, i FROM generate_series(1, $2::int) AS i`,
      [prefix, n],
    );
    const insert = { ...upsert, mode: 'insert' as const };
    const deps = env.deps({ writeback: [insert] });
    const runId = await env.newRun();
    const before = env.sf.store.count('Lead');
    await planWriteback(deps, { runId, task: 'Lead-insert' });
    env.sf.calls.clear();
    const closeLost = Object.create(env.connector, {
      request: {
        value: async (operation: string, method: string, path: string, body?: unknown) => {
          if (/ close$/.test(operation))
            throw new TransientError('simulated network failure before the close');
          return env.connector.request(operation, method as 'GET', path, body);
        },
      },
    }) as SalesforceConnector;
    await expect(
      pushWriteback({ ...deps, salesforce: closeLost }, { runId, task: 'Lead-insert' }),
    ).rejects.toThrow(/before the close/);
    const { rows: recorded } = await env.pool.query(
      `SELECT job_id, state FROM roundtrip.writeback_jobs WHERE run_id = $1`,
      [runId],
    );
    expect(recorded).toEqual([expect.objectContaining({ state: 'Uploaded' })]);

    const pushed = await pushWriteback(
      { ...deps, salesforce: retry(recorded[0].job_id) },
      { runId, task: 'Lead-insert' },
    );
    expect(pushed).toMatchObject({ status: 'bulk-pending', jobIds: [recorded[0].job_id] });
    const result = await untilCollected(env, deps, pushed);

    expect(result).toMatchObject({ status: 'collected', succeeded: n, failed: 0 });
    expect(env.sf.calls.count({ operation: 'bulk.ingest.create' })).toBe(1);
    expect(env.sf.calls.count({ operation: 'bulk.ingest.upload' })).toBe(1);
    expect(env.sf.calls.count({ operation: 'bulk.ingest.abort' })).toBe(0);
    expect(env.sf.store.count('Lead')).toBe(before + n);
    const inserted = [...env.sf.store.all('Lead')].filter((r) => String(r.External_Id__c).startsWith(prefix));
    expect(inserted).toHaveLength(n);
    const { rows: jobs } = await env.pool.query(
      `SELECT job_id, state FROM roundtrip.writeback_jobs WHERE run_id = $1`,
      [runId],
    );
    expect(jobs).toEqual([{ job_id: recorded[0].job_id, state: 'JobComplete' }]);
  }

  it('a job uploaded but never closed is closed by the retried push, not replaced', async () => {
    await insertWithLostClose('unclosed-', 80, () => env.connector);
    expect(env.sf.calls.count({ operation: 'bulk.ingest.close' })).toBe(1);
  });

  it('a close that reaches Salesforce late, after the retry read the job Open, is not aborted: each record is inserted once', async () => {
    // The retry reads the job Open; right after, the first attempt's close arrives (sent here on
    // the side), so the retry's own close is refused and the job read again.
    const lateClose = (jobId: string): SalesforceConnector =>
      Object.create(env.connector, {
        request: {
          value: async (operation: string, method: string, path: string, body?: unknown) => {
            const answer = await env.connector.request(operation, method as 'GET', path, body);
            if (
              method === 'GET' &&
              path === `/jobs/ingest/${jobId}` &&
              (answer as { state?: string }).state === 'Open'
            ) {
              await env.connector.request('the late close', 'PATCH', path, { state: 'UploadComplete' });
            }
            return answer;
          },
        },
      }) as SalesforceConnector;
    await insertWithLostClose('late-', 90, lateClose);
    // The late close and the retry's refused one.
    expect(env.sf.calls.count({ operation: 'bulk.ingest.close' })).toBe(2);
  });

  it('a Bulk insert whose run ended after the close, before it recorded the outcome, is refused while its job runs, then collected by a later plan and never inserted again', async () => {
    await env.pool.query('DELETE FROM lead_src');
    await env.pool.query(
      `INSERT INTO lead_src SELECT 'gone-' || i, 'Gone ' || i, i FROM generate_series(1, 70) AS i`,
    );
    const insert = { ...upsert, mode: 'insert' as const };
    const deps = env.deps({ writeback: [insert] });
    const dead = await env.newRun();
    await planWriteback(deps, { runId: dead, task: 'Lead-insert' });
    // The close reaches Salesforce (the job runs, slowly), then the Lambda dies; the step is not
    // retried and the run ends failed.
    // Two records cannot be locked: the job will end with 68 created, 2 failed.
    env.sf.faults.set({ bulkJobDelayMs: 3_000, lockRowKeys: ['gone-7', 'gone-8'] });
    await expect(
      pushWriteback(
        { ...deps, salesforce: crashingConnector(env.connector, (operation) => / close$/.test(operation)) },
        { runId: dead, task: 'Lead-insert' },
      ),
    ).rejects.toThrow(/simulated crash/);
    await reportRun(deps, { runId: dead, error: { Error: 'States.Timeout', Cause: 'Task timed out' } });
    const ledger = (): Promise<{ status: string; n: number }[]> => ledgerByStatus(env, dead);
    expect(await ledger()).toEqual([{ status: 'sent', n: 70 }]);
    const gone = (): number =>
      [...env.sf.store.all('Lead')].filter((r) => String(r.External_Id__c).startsWith('gone-')).length;

    // While the job runs, a later run refuses the keys and sends nothing.
    env.sf.calls.clear();
    const next = await env.newRun();
    const again = await runWriteback(deps, { runId: next, task: 'Lead-insert' });
    expect(again.plan).toMatchObject({ changed: 0, rejected: 0, heldBack: 70 });
    expect(env.sf.calls.count({ write: true })).toBe(0);
    expect(new Set((await errorsOf(env, next)).map((e) => e.code))).toEqual(
      new Set(['INSERT_OUTCOME_UNKNOWN']),
    );

    // The job finishes: the next plan collects its results into the ended run.
    const { rows: jobs } = await env.pool.query(
      `SELECT job_id FROM roundtrip.writeback_jobs WHERE run_id = $1`,
      [dead],
    );
    expect(jobs).toHaveLength(1);
    while (!isFinalIngestState((await getIngestJob(env.connector, jobs[0].job_id)).state)) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    env.sf.faults.clear();
    const jobDone = await env.newRun();
    env.sf.calls.clear();
    const resolved = await runWriteback(deps, { runId: jobDone, task: 'Lead-insert' });
    expect(await ledger()).toEqual([
      { status: 'failed', n: 2 },
      { status: 'succeeded', n: 68 },
    ]);
    expect((await errorsOf(env, dead)).map((e) => [e.key, e.code])).toEqual([
      ['gone-7', 'UNABLE_TO_LOCK_ROW'],
      ['gone-8', 'UNABLE_TO_LOCK_ROW'],
    ]);
    // The 68 created are recorded and not sent again; the two never created are inserted, once.
    expect(resolved.plan).toMatchObject({ sourceRows: 70, rejected: 0, unchanged: 68, changed: 2 });
    expect(env.sf.calls.writes().map((w) => w.records)).toEqual([2]);
    expect(gone()).toBe(70);
    for (let i = 1; i <= 70; i += 1) {
      expect([...env.sf.store.all('Lead')].filter((r) => r.External_Id__c === `gone-${i}`)).toHaveLength(1);
    }
  });

  it('inserts through a job keyed on an external ID, records the new Ids, and never inserts them again', async () => {
    await env.pool.query('DELETE FROM lead_src');
    await env.pool.query(
      `INSERT INTO lead_src SELECT 'ins-' || i, 'Ins ' || i, i FROM generate_series(1, 60) AS i`,
    );
    const insert = { ...upsert, mode: 'insert' as const };
    const deps = env.deps({ writeback: [insert] });
    const before = env.sf.store.count('Lead');
    env.sf.calls.clear();

    const first = await runWriteback(deps, { runId: await env.newRun(), task: 'Lead-insert' });

    expect(first.result).toMatchObject({ api: 'bulk', succeeded: 60, failed: 0 });
    expect(env.sf.calls.count({ operation: 'bulk.ingest.create' })).toBe(1);
    expect(env.sf.store.count('Lead')).toBe(before + 60);
    const { rows } = await env.pool.query(
      `SELECT s.salesforce_id FROM roundtrip.sync_state s WHERE s.task = 'Lead-insert' AND s.key = 'ins-7'`,
    );
    expect(env.sf.store.get(rows[0].salesforce_id)).toMatchObject({
      External_Id__c: 'ins-7',
      LeadScore__c: 7,
    });

    const second = await runWriteback(deps, { runId: await env.newRun(), task: 'Lead-insert' });
    expect(second.plan.changed).toBe(0);
    expect(env.sf.store.count('Lead')).toBe(before + 60);
  });

  it('a job that fails as a whole fails its rows with the job message', async () => {
    await scores(11);
    env.sf.faults.set({ failNextBulkJob: 'InvalidBatch : simulated failure' });
    const deps = env.deps({ writeback: [update] });
    const runId = await env.newRun();

    const { result } = await runWriteback(deps, { runId, task: 'Lead-update' });

    expect(result).toMatchObject({ succeeded: 0, failed: LEADS, failureRateExceeded: true });
    const errors = await errorsOf(env, runId);
    expect(new Set(errors.map((e) => e.code))).toEqual(new Set(['BULK_JOB_FAILED']));
    expect(errors[0]?.message).toMatch(
      /ended Failed without a result for this record: InvalidBatch : simulated failure/,
    );
  });

  it('retries records refused with UNABLE_TO_LOCK_ROW serially through Collections after collecting', async () => {
    await scores(20);
    const locked = ids[42] as string;
    env.sf.faults.set({ lockRowKeys: [locked] });
    const base = env.deps({ writeback: [update] });
    const deps = {
      ...base,
      // The lock goes away while the collect waits before its first retry round (the Bulk
      // polls of this test wait on the same clock, so only a retry round releases it).
      clock: {
        now: () => new Date(),
        sleep: async (ms: number) => {
          if (ms === 1000) env.sf.faults.set({ lockRowKeys: undefined });
        },
      },
    };
    const runId = await env.newRun();
    env.sf.calls.clear();

    const { result } = await runWriteback(deps, { runId, task: 'Lead-update' });

    expect(result).toMatchObject({ succeeded: LEADS - 2, failed: 2 });
    expect(env.sf.store.get(locked)?.LeadScore__c).toBe((43 + 20) % 100);
    expect(env.sf.calls.count({ operation: 'collections.update' })).toBe(1);
  });

  it('collects a job whose result files are empty (aborted before any upload): no rows, no error', async () => {
    const deps = env.deps({ writeback: [update] });
    const runId = await env.newRun();
    const created = await createIngestJob(env.connector, { object: 'Lead', operation: 'update' });
    const aborted = await abortIngestJob(env.connector, created.id);
    expect(aborted.state).toBe('Aborted');
    await env.pool.query(
      `INSERT INTO roundtrip.writeback_jobs (run_id, task, job_id, api, operation, state, chunk, first_seq, last_seq, rows)
       VALUES ($1, 'Lead-update', $2, 'bulk', 'update', 'Aborted', 1, 1, 1, 0)`,
      [runId, created.id],
    );

    await collectJob(
      deps,
      env.connector,
      runId,
      'Lead-update',
      { id: created.id, state: 'Aborted', first: 1, last: 1, processed: 0, failed: 0 },
      0,
      env.logger,
    );

    const { rows } = await env.pool.query(
      `SELECT collected_at IS NOT NULL AS collected FROM roundtrip.writeback_jobs WHERE run_id = $1`,
      [runId],
    );
    expect(rows).toEqual([{ collected: true }]);
  });

  /** The connector, with each job's result files answered by `body(which)` instead of Salesforce. */
  function resultsAnsweredBy(body: (which: string) => ReadableStream<Uint8Array>): SalesforceConnector {
    const real = env.connector;
    return Object.create(real, {
      fetchWithSession: {
        value: async (operation: string, path: string, init: RequestInit) => {
          const which = /\/(successfulResults|failedResults)$/.exec(path)?.[1];
          if (!which) return real.fetchWithSession(operation, path, init);
          return new Response(body(which), { status: 200, headers: { 'content-type': 'text/csv' } });
        },
      },
    }) as SalesforceConnector;
  }

  it('collects a result file of Salesforce’s two columns only as matching nothing: the records, whose outcome it does not tell, are sent again, not failed', async () => {
    await scores(61);
    const deps = env.deps({ writeback: [update] });
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'Lead-update' });
    const pushed = await pushWriteback(deps, { runId, task: 'Lead-update' });
    expect(pushed.status).toBe('bulk-pending');
    const text = (which: string) =>
      new Response(`"sf__Id","${which === 'successfulResults' ? 'sf__Created' : 'sf__Error'}"\n`).body!;
    env.sf.calls.clear();
    const final = await untilCollected(env, { ...deps, salesforce: resultsAnsweredBy(text) }, pushed);
    expect(final.status).toBe('collected');
    // The job completed: Salesforce processed every record, and the files say nothing of them.
    // Taken as answers lost, not as refusals: the two deleted leads fail as Salesforce refuses
    // them, the others are written.
    expect(final).toMatchObject({ succeeded: LEADS - 2, failed: 2 });
    expect((await errorsOf(env, runId)).map((e) => e.code)).toEqual([
      'ENTITY_IS_DELETED',
      'ENTITY_IS_DELETED',
    ]);
    expect(env.sf.calls.count({ operation: 'collections.update' })).toBe(Math.ceil(LEADS / 200));
    const { rows } = await env.pool.query(
      `SELECT count(*)::int AS n FROM roundtrip.writeback_jobs WHERE run_id = $1 AND collected_at IS NULL`,
      [runId],
    );
    expect(rows[0].n).toBe(0);
  });

  it('reads the failedResults of an API version before 53.0, without sf__Id, by its header: the refused records fail, the others are written', async () => {
    await scores(83);
    env.sf.store.delete([ids[0] as string, ids[100] as string]); // deleted already when the whole file runs
    const v52 = await connectSalesforce({
      secret: env.salesforceSecret,
      apiVersion: '52.0',
      logger: env.logger,
    });
    const deps = { ...env.deps({ writeback: [update] }), salesforce: v52 };
    const runId = await env.newRun();
    env.sf.calls.clear();

    const { result } = await runWriteback(deps, { runId, task: 'Lead-update' });

    const failedFile = env.sf.calls.all().find((c) => c.path.endsWith('/failedResults'));
    expect(failedFile?.path).toMatch(/^\/services\/data\/v52\.0\//);
    expect(result).toMatchObject({ api: 'bulk', planned: LEADS, succeeded: LEADS - 2, failed: 2 });
    expect((await errorsOf(env, runId)).map((e) => [e.key, e.code, e.message])).toEqual(
      [
        [ids[0], 'ENTITY_IS_DELETED', 'entity is deleted'],
        [ids[100], 'ENTITY_IS_DELETED', 'entity is deleted'],
      ].sort(),
    );
    // Every record had its line: none is sent again.
    expect(env.sf.calls.count({ operation: 'collections.update' })).toBe(0);
    expect(env.sf.store.get(ids[1] as string)?.LeadScore__c).toBe((2 + 83) % 100);
  });

  it('maps the columns of a result file by their names, whatever their order', async () => {
    await scores(87);
    const deps = env.deps({ writeback: [update] });
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'Lead-update' });
    const pushed = await pushWriteback(deps, { runId, task: 'Lead-update' });
    expect(pushed.status).toBe('bulk-pending');
    const { rows: planned } = await env.pool.query<{ key: string; score: string }>(
      `SELECT key, payload->>'LeadScore__c' AS score FROM roundtrip.writeback_plans WHERE run_id = $1 ORDER BY seq`,
      [runId],
    );
    const refused = new Set([ids[0], ids[100]]);
    // Salesforce's own columns after the sent ones, the sent ones in the job's order.
    const files: Record<string, string> = {
      successfulResults:
        '"Id","LeadScore__c","sf__Created","sf__Id"\n' +
        planned
          .filter((p) => !refused.has(p.key))
          .map((p) => `"${p.key}","${p.score}","false","${p.key}"\n`)
          .join(''),
      failedResults:
        'Id,LeadScore__c,sf__Error\n' +
        planned
          .filter((p) => refused.has(p.key))
          .map((p) => `${p.key},${p.score},"ENTITY_IS_DELETED:entity is deleted:--"\n`)
          .join(''),
    };
    env.sf.calls.clear();
    const final = await untilCollected(
      env,
      { ...deps, salesforce: resultsAnsweredBy((which) => new Response(files[which]).body!) },
      pushed,
    );

    expect(final).toMatchObject({ status: 'collected', succeeded: LEADS - 2, failed: 2 });
    // Every record was matched to its line: none is sent again.
    expect(env.sf.calls.count({ write: true })).toBe(0);
    expect((await errorsOf(env, runId)).map((e) => [e.key, e.code])).toEqual(
      [
        [ids[0], 'ENTITY_IS_DELETED'],
        [ids[100], 'ENTITY_IS_DELETED'],
      ].sort(),
    );
    const { rows } = await env.pool.query(
      `SELECT status, count(*)::int AS n, count(*) FILTER (WHERE salesforce_id = key)::int AS with_id
         FROM roundtrip.writeback_plans WHERE run_id = $1 GROUP BY status ORDER BY status`,
      [runId],
    );
    expect(rows).toEqual([
      { status: 'failed', n: 2, with_id: 2 },
      { status: 'succeeded', n: LEADS - 2, with_id: LEADS - 2 },
    ]);
  });

  it('a completed job without a result line for a record: an update sends it again, in this run', async () => {
    await scores(71);
    const omitted = ids[17] as string;
    env.sf.faults.set({ omitIngestResults: [omitted] });
    const deps = env.deps({ writeback: [update] });
    const runId = await env.newRun();
    env.sf.calls.clear();

    const { result } = await runWriteback(deps, { runId, task: 'Lead-update' });

    expect(result).toMatchObject({ api: 'bulk', succeeded: LEADS - 2, failed: 2 });
    expect((await errorsOf(env, runId)).map((e) => e.code)).toEqual([
      'ENTITY_IS_DELETED',
      'ENTITY_IS_DELETED',
    ]);
    // One record sent again, by one call.
    expect(env.sf.calls.count({ operation: 'collections.update' })).toBe(1);
    expect(env.sf.store.get(omitted)?.LeadScore__c).toBe((18 + 71) % 100);
    const { rows } = await env.pool.query(
      `SELECT status, attempts FROM roundtrip.writeback_plans WHERE run_id = $1 AND key = $2`,
      [runId, omitted],
    );
    expect(rows).toEqual([{ status: 'succeeded', attempts: 2 }]);
  });

  it('a completed job without a result line for an insert: the record is looked up by its external ID and recorded, never inserted twice', async () => {
    await env.pool.query('DELETE FROM lead_src');
    await env.pool.query(
      `INSERT INTO lead_src SELECT 'lost-' || i, 'Lost ' || i, i FROM generate_series(1, 60) AS i`,
    );
    env.sf.faults.set({ omitIngestResults: ['lost-9'] });
    const insert = { ...upsert, mode: 'insert' as const };
    const deps = env.deps({ writeback: [insert] });
    const before = env.sf.store.count('Lead');
    env.sf.calls.clear();

    const first = await runWriteback(deps, { runId: await env.newRun(), task: 'Lead-insert' });

    expect(first.result).toMatchObject({ api: 'bulk', succeeded: 60, failed: 0 });
    expect(env.sf.store.count('Lead')).toBe(before + 60);
    // Looked up, not sent again.
    expect(env.sf.calls.count({ operation: 'queryAll' })).toBe(1);
    expect(
      env.sf.calls
        .writes()
        .map((c) => c.operation)
        .filter((op) => !op.startsWith('bulk.')),
    ).toEqual([]);
    const { rows } = await env.pool.query(
      `SELECT s.salesforce_id FROM roundtrip.sync_state s WHERE s.task = 'Lead-insert' AND s.key = 'lost-9'`,
    );
    expect(env.sf.store.get(rows[0].salesforce_id)).toMatchObject({
      External_Id__c: 'lost-9',
      LeadScore__c: 9,
    });

    env.sf.faults.clear();
    const second = await runWriteback(deps, { runId: await env.newRun(), task: 'Lead-insert' });
    expect(second.plan.changed).toBe(0);
    expect(env.sf.store.count('Lead')).toBe(before + 60);
  });

  it('fails the collect with the error of a result file cut while its table is made, without an unhandled error', async () => {
    await scores(62);
    const deps = env.deps({ writeback: [update] });
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'Lead-update' });
    const pushed = await pushWriteback(deps, { runId, task: 'Lead-update' });
    // The header, then the connection drops at once: while Collect makes the temp table.
    const cut = () =>
      new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('"sf__Id","sf__Created","Id","LeadScore__c"\n'));
          setImmediate(() => controller.error(new Error('socket hang up')));
        },
      });
    let state = pushed;
    let failure: unknown;
    for (let i = 0; state.status === 'bulk-pending' && i < 50 && !failure; i += 1) {
      await deps.clock.sleep(state.waitSeconds * 1000);
      state = await collectWriteback({ ...deps, salesforce: resultsAnsweredBy(cut) }, state).catch(
        (e: unknown) => {
          failure = e;
          return state;
        },
      );
    }
    expect(String(failure)).toMatch(/socket hang up/);
    // Nothing was recorded for the job: a retried Collect collects it whole (every record has
    // Salesforce's own outcome; the records earlier tests deleted fail as such).
    const final = await untilCollected(env, deps, state);
    expect(final.status).toBe('collected');
    const codes = (await errorsOf(env, runId)).map((e) => e.code);
    expect(codes.filter((c) => c.startsWith('BULK_JOB_'))).toEqual([]);
    const { rows } = await env.pool.query(
      `SELECT count(*)::int AS n FROM roundtrip.writeback_plans WHERE run_id = $1 AND status = 'sent'`,
      [runId],
    );
    expect(rows[0].n).toBe(0);
  });
});
