/**
 * What an insert's plan checks, and what its maxRejectRate judges: a row whose key is already
 * inserted (sync_state holds its Salesforce Id, or the extracted copy has the key) is never sent
 * again, so it is neither checked nor rejected (it counts as unchanged), and the reject rate is
 * measured against the rows whose key is not inserted yet, not against a source that keeps every
 * row it ever inserted. Update and upsert keep every source row as the measure. A repeated key's
 * rows name the Salesforce Id the key already has.
 */
import type { WritebackTaskInput } from '../../../lambdas/config';
import { reportRun, runWriteback } from '../../../lambdas/core/writeback';
import {
  errorsOf,
  extractLeads,
  LEAD_SRC_UPSERT,
  runFigures,
  startWritebackEnv,
  type LeadCopy,
  type WritebackEnv,
} from './support';

/** The extracted copy of Lead with Email, which the tasks here map. */
const COPY_WITH_EMAIL: LeadCopy = {
  fields: ['Id', 'LastName', 'Company', 'Email', 'External_Id__c', 'IsDeleted'],
  columns: `"Id" varchar(18) PRIMARY KEY, "LastName" text, "Company" text, "Email" text,
      "External_Id__c" text, "IsDeleted" boolean`,
};

const EXTRACT = {
  from: 'salesforce' as const,
  object: 'Lead',
  fields: [...COPY_WITH_EMAIL.fields],
  table: 'sf_lead',
};

/** Insert of Lead keyed by External_Id__c from `from (ext, last_name, company, email)`. */
function insertTask(name: string, from: string): WritebackTaskInput {
  return {
    to: 'salesforce',
    name,
    object: 'Lead',
    from,
    mode: 'insert',
    key: 'External_Id__c',
    keyColumn: 'ext',
    fields: { LastName: 'last_name', Company: 'company', Email: 'email' },
  };
}

describe('insert: rows whose key is already inserted, and the reject rate', () => {
  let env: WritebackEnv;

  beforeAll(async () => {
    env = await startWritebackEnv();
  });
  afterAll(async () => env?.stop());

  /** Table `table` with rows `${prefix}-${from}` … `${prefix}-${to}`, their email valid or not. */
  async function addRows(
    table: string,
    prefix: string,
    from: number,
    to: number,
    email: string,
  ): Promise<void> {
    await env.pool.query(
      `CREATE TABLE IF NOT EXISTS ${table} (ext text, last_name text, company text, email text)`,
    );
    await env.pool.query(
      `INSERT INTO ${table} SELECT $1 || '-' || i, 'Name ' || i, 'Initech', $2 FROM generate_series($3::int, $4::int) AS i`,
      [prefix, email, from, to],
    );
  }

  function leadsKeyed(key: string): Record<string, unknown>[] {
    return [...env.sf.store.all('Lead')].filter((r) => r.External_Id__c === key && r.IsDeleted !== true);
  }

  it('fails the run when every new row is rejected, however many rows the source inserted before', async () => {
    const task = insertTask('hist-insert', 'hist_src');
    const deps = env.deps({ writeback: [task] });
    await addRows('hist_src', 'hist', 1, 400, 'ok@example.com');
    const first = await env.newRun();
    expect((await runWriteback(deps, { runId: first, task: 'hist-insert' })).result).toMatchObject({
      succeeded: 400,
    });
    expect(await reportRun(deps, { runId: first })).toMatchObject({ status: 'succeeded' });

    // The transform adds 20 rows, every one with an email Salesforce would refuse: 20 of 420
    // source rows (4.76 %) is under the default 5 %, but they are 20 of the 20 rows to insert.
    await addRows('hist_src', 'hist', 401, 420, 'not-an-email');
    const runId = await env.newRun();
    const { plan } = await runWriteback(deps, { runId, task: 'hist-insert' });
    const report = await reportRun(deps, { runId });

    expect(plan).toMatchObject({ sourceRows: 420, rejected: 20, heldBack: 0, unchanged: 400, changed: 0 });
    expect(report).toMatchObject({
      status: 'failed',
      reason:
        'write-back hist-insert: 20 of 20 source rows with a key that has no record yet were rejected before sending (100.00 %; the 400 rows whose key has a record already, inserted before or found in the extracted copy, are not counted), more than maxRejectRate 5.00 % (writeback[0].maxRejectRate)',
      writeback: {
        'hist-insert': { sourceRows: 420, rejected: 20, unchanged: 400, rejectRateExceeded: true },
      },
    });
    const { rows } = await env.pool.query(`SELECT status, error FROM roundtrip.runs WHERE run_id = $1`, [
      runId,
    ]);
    expect(rows[0]).toEqual({ status: 'failed', error: report.reason });
    expect(await runFigures(env, runId, 'hist-insert')).toMatchObject({ rejectRateExceeded: true });
    expect(new Set((await errorsOf(env, runId)).map((e) => e.code))).toEqual(
      new Set(['INVALID_EMAIL_ADDRESS']),
    );
    expect(leadsKeyed('hist-401')).toHaveLength(0);

    // One of 21 new rows rejected (4.76 %): within the 5 %, the other 20 are inserted.
    await env.pool.query(`UPDATE hist_src SET email = 'ok@example.com' WHERE ext <> 'hist-420'`);
    await addRows('hist_src', 'hist', 421, 421, 'ok@example.com');
    const fixed = await env.newRun();
    expect((await runWriteback(deps, { runId: fixed, task: 'hist-insert' })).plan).toMatchObject({
      sourceRows: 421,
      rejected: 1,
      unchanged: 400,
      changed: 20,
    });
    expect(await reportRun(deps, { runId: fixed })).toMatchObject({
      status: 'succeeded',
      writeback: { 'hist-insert': { rejected: 1, written: 20, rejectRateExceeded: false } },
    });
  });

  it('neither checks nor rejects a row whose key is in sync_state: insert never sends it again', async () => {
    const task = insertTask('known-insert', 'known_src');
    const deps = env.deps({ writeback: [task] });
    await addRows('known_src', 'known', 1, 3, 'ok@example.com');
    await runWriteback(deps, { runId: await env.newRun(), task: 'known-insert' });

    // known-1 gets an email Salesforce would refuse; known-4 is new and valid.
    await env.pool.query(`UPDATE known_src SET email = 'not-an-email' WHERE ext = 'known-1'`);
    await addRows('known_src', 'known', 4, 4, 'ok@example.com');
    const runId = await env.newRun();
    const { plan, result } = await runWriteback(deps, { runId, task: 'known-insert' });

    expect(plan).toMatchObject({ sourceRows: 4, rejected: 0, unchanged: 3, changed: 1 });
    expect(result).toMatchObject({ succeeded: 1 });
    expect(await errorsOf(env, runId)).toEqual([]);
    expect(await reportRun(deps, { runId })).toMatchObject({
      status: 'succeeded',
      writeback: { 'known-insert': { rejected: 0, unchanged: 3, rejectRateExceeded: false } },
    });
    // Inserted once, with the email it had then.
    expect(leadsKeyed('known-1')).toEqual([expect.objectContaining({ Email: 'ok@example.com' })]);
  });

  it('neither checks nor rejects a row whose key the extracted copy holds, and still rejects a new key', async () => {
    // made-1 was created in Salesforce by someone else: only the copy knows it.
    env.sf.store.seed('Lead', [{ LastName: 'By hand', Company: 'Initech', External_Id__c: 'made-1' }]);
    await extractLeads(env, COPY_WITH_EMAIL);
    const task = insertTask('copy-insert', 'copy_src');
    const deps = env.deps({ extract: [EXTRACT], writeback: [task] });
    await addRows('copy_src', 'made', 1, 2, 'not-an-email');
    const runId = await env.newRun();

    const { plan } = await runWriteback(deps, { runId, task: 'copy-insert' });

    expect(plan).toMatchObject({
      comparedWith: 'extract:public.sf_lead',
      sourceRows: 2,
      rejected: 1,
      unchanged: 1,
      changed: 0,
    });
    expect((await errorsOf(env, runId)).map((e) => [e.key, e.code])).toEqual([
      ['made-2', 'INVALID_EMAIL_ADDRESS'],
    ]);
    expect(leadsKeyed('made-1')).toHaveLength(1);
  });

  it("names the Salesforce Id a repeated key already has: sync_state's, the copy's, an upsert's", async () => {
    // dup-1 and dup-2 inserted by the task; dup-9 created by hand, known to the copy only.
    const task = insertTask('dup-insert', 'dup_src');
    await addRows('dup_src', 'dup', 1, 2, 'ok@example.com');
    await runWriteback(env.deps({ writeback: [task] }), { runId: await env.newRun(), task: 'dup-insert' });
    env.sf.store.seed('Lead', [{ LastName: 'By hand', Company: 'Initech', External_Id__c: 'dup-9' }]);
    const id = (key: string): unknown => leadsKeyed(key)[0]?.Id;
    expect([id('dup-1'), id('dup-2'), id('dup-9')]).toEqual([
      expect.stringMatching(/^00Q/),
      expect.stringMatching(/^00Q/),
      expect.stringMatching(/^00Q/),
    ]);

    // Each of dup-2, dup-9 and dup-new twice (DUPLICATE_KEY), one row without a key (MISSING_KEY).
    await env.pool.query('DELETE FROM dup_src');
    for (const key of ['dup-1', 'dup-2', 'dup-2', 'dup-9', 'dup-9', 'dup-new', 'dup-new', null]) {
      await env.pool.query(`INSERT INTO dup_src VALUES ($1, 'Name', 'Initech', 'ok@example.com')`, [key]);
    }
    const rejectedIds = async (runId: string): Promise<[string | null, string, unknown][]> => {
      const { rows } = await env.pool.query<{ key: string | null; code: string; salesforce_id: unknown }>(
        `SELECT key, code, salesforce_id FROM roundtrip.writeback_errors WHERE run_id = $1 ORDER BY key NULLS LAST`,
        [runId],
      );
      return rows.map((r) => [r.key, r.code, r.salesforce_id]);
    };

    // Compared with sync_state: dup-2's Id from there; dup-9 is not known.
    const bySyncState = await env.newRun();
    await runWriteback(env.deps({ writeback: [{ ...task, maxRejectRate: 1 }] }), {
      runId: bySyncState,
      task: 'dup-insert',
    });
    expect(await rejectedIds(bySyncState)).toEqual([
      ['dup-2', 'DUPLICATE_KEY', id('dup-2')],
      ['dup-2', 'DUPLICATE_KEY', id('dup-2')],
      ['dup-9', 'DUPLICATE_KEY', null],
      ['dup-9', 'DUPLICATE_KEY', null],
      ['dup-new', 'DUPLICATE_KEY', null],
      ['dup-new', 'DUPLICATE_KEY', null],
      [null, 'MISSING_KEY', null],
    ]);

    // Compared with the copy: dup-9's Id from the copy, dup-2's from the copy or sync_state.
    await extractLeads(env, COPY_WITH_EMAIL);
    const byCopy = await env.newRun();
    const { plan } = await runWriteback(
      env.deps({ extract: [EXTRACT], writeback: [{ ...task, maxRejectRate: 1 }] }),
      { runId: byCopy, task: 'dup-insert' },
    );
    expect(plan).toMatchObject({ comparedWith: 'extract:public.sf_lead', rejected: 7, unchanged: 1 });
    expect(await rejectedIds(byCopy)).toEqual([
      ['dup-2', 'DUPLICATE_KEY', id('dup-2')],
      ['dup-2', 'DUPLICATE_KEY', id('dup-2')],
      ['dup-9', 'DUPLICATE_KEY', id('dup-9')],
      ['dup-9', 'DUPLICATE_KEY', id('dup-9')],
      ['dup-new', 'DUPLICATE_KEY', null],
      ['dup-new', 'DUPLICATE_KEY', null],
      [null, 'MISSING_KEY', null],
    ]);

    // An upsert's repeated key synced before names its record's Id too.
    const upsert = { ...LEAD_SRC_UPSERT, name: 'dup-upsert', from: 'dup_upsert_src', maxRejectRate: 1 };
    await env.pool.query(
      `CREATE TABLE dup_upsert_src (ext text, last_name text, company text, score integer)`,
    );
    await env.pool.query(`INSERT INTO dup_upsert_src VALUES ('dup-up', 'Name', 'Initech', 1)`);
    await runWriteback(env.deps({ writeback: [upsert] }), { runId: await env.newRun(), task: 'dup-upsert' });
    await env.pool.query(`INSERT INTO dup_upsert_src VALUES ('dup-up', 'Name', 'Initech', 2)`);
    const upserted = await env.newRun();
    await runWriteback(env.deps({ writeback: [upsert] }), { runId: upserted, task: 'dup-upsert' });
    expect(await rejectedIds(upserted)).toEqual([
      ['dup-up', 'DUPLICATE_KEY', id('dup-up')],
      ['dup-up', 'DUPLICATE_KEY', id('dup-up')],
    ]);
    expect(id('dup-up')).toEqual(expect.stringMatching(/^00Q/));
  });

  it('measures an upsert against every source row: a bad row among unchanged ones does not fail each run', async () => {
    const upsert = { ...LEAD_SRC_UPSERT, name: 'steady-upsert', from: 'steady_src' };
    const deps = env.deps({ writeback: [upsert] });
    await env.pool.query(`CREATE TABLE steady_src (ext text, last_name text, company text, score integer)`);
    await env.pool.query(
      `INSERT INTO steady_src SELECT 'steady-' || i, 'Name ' || i, 'Initech', i FROM generate_series(1, 40) AS i`,
    );
    await runWriteback(deps, { runId: await env.newRun(), task: 'steady-upsert' });
    // A score out of LeadScore__c's range on a new row, nothing else to send: 1 of 41 (2.44 %).
    await env.pool.query(`INSERT INTO steady_src VALUES ('steady-bad', 'Bad', 'Initech', 1234)`);
    const runId = await env.newRun();

    const { plan } = await runWriteback(deps, { runId, task: 'steady-upsert' });

    expect(plan).toMatchObject({ sourceRows: 41, rejected: 1, unchanged: 40, changed: 0 });
    expect(await reportRun(deps, { runId })).toMatchObject({
      status: 'succeeded',
      writeback: { 'steady-upsert': { rejected: 1, rejectRateExceeded: false } },
    });
  });
});
