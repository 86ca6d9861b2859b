/**
 * Update by Id through sObject Collections, end to end: plan against the freshly extracted copy
 * (or sync_state), push, results in PostgreSQL, report; reruns send only what changed.
 */
import { planWriteback, reportRun, runWriteback } from '../../../lambdas/core/writeback';
import {
  errorsOf,
  extractLeads,
  leadSeed,
  scoresInSalesforce,
  startWritebackEnv,
  type WritebackEnv,
} from './support';

const LEADS = 300;

const updateTask = {
  to: 'salesforce' as const,
  object: 'Lead',
  from: 'lead_reverse',
  mode: 'update' as const,
  fields: { LeadScore__c: 'lead_score' },
};

const leadExtract = {
  from: 'salesforce' as const,
  object: 'Lead',
  fields: ['Id', 'LastName', 'Company', 'Status', 'LeadScore__c', 'External_Id__c', 'IsDeleted'],
  table: 'sf_lead',
};

describe('write-back update (Collections)', () => {
  let env: WritebackEnv;
  let ids: string[];

  beforeAll(async () => {
    env = await startWritebackEnv();
    ids = env.sf.store.seed('Lead', leadSeed(LEADS));
    await env.pool.query(`CREATE TABLE lead_reverse ("Id" text PRIMARY KEY, lead_score integer)`);
  });
  afterAll(async () => env?.stop());

  /** Scores: the lead's index mod 90, plus `bump` for the first `changed` leads. */
  async function fillScores(bump = 0, changed = 0): Promise<void> {
    await env.pool.query('DELETE FROM lead_reverse');
    await env.pool.query(
      `INSERT INTO lead_reverse ("Id", lead_score)
       SELECT id, (i % 90) + CASE WHEN i <= $2 THEN $3 ELSE 0 END FROM unnest($1::text[]) WITH ORDINALITY AS t(id, i)`,
      [ids, changed, bump],
    );
  }

  it('sends every changed score, records the results and reports the run', async () => {
    await fillScores();
    await extractLeads(env);
    const deps = env.deps({ extract: [leadExtract], writeback: [updateTask] });
    const runId = await env.newRun();
    env.sf.calls.clear();

    const { plan, result } = await runWriteback(deps, { runId, task: 'Lead-update' });

    expect(plan).toMatchObject({
      status: 'planned',
      api: 'collections',
      sourceRows: LEADS,
      changed: LEADS,
      rejected: 0,
      comparedWith: 'extract:public.sf_lead',
    });
    expect(result).toMatchObject({
      status: 'collected',
      planned: LEADS,
      succeeded: LEADS,
      failed: 0,
      failureRateExceeded: false,
    });
    // 300 records: one Composite call (2 × 200 would be two Collections calls).
    expect(env.sf.calls.count({ write: true })).toBe(1);
    expect(env.sf.calls.count({ operation: 'composite' })).toBe(1);
    const scores = scoresInSalesforce(env);
    ids.forEach((id, i) => expect(scores.get(id)).toBe((i + 1) % 90));

    const { rows: sync } = await env.pool.query(
      `SELECT count(*)::int AS n, count(salesforce_id)::int AS ids FROM roundtrip.sync_state WHERE task = 'Lead-update'`,
    );
    expect(sync[0]).toEqual({ n: LEADS, ids: LEADS });
    expect(await errorsOf(env, runId)).toEqual([]);

    const report = await reportRun(deps, { runId });
    expect(report.status).toBe('succeeded');
    expect(report.writeback['Lead-update']).toMatchObject({
      sourceRows: LEADS,
      changed: LEADS,
      written: LEADS,
      rejected: 0,
      failed: 0,
      api: 'collections',
    });
    // Each step's output carries the task's calls so far, as the summary holds them: the plan's
    // own, then the plan's and the push's together, all the emulator counted.
    expect(plan.apiCalls).toBeLessThan(result?.apiCalls ?? 0);
    expect(result?.apiCalls).toBe(env.sf.calls.count());
    expect(report.writeback['Lead-update']?.apiCalls).toBe(result?.apiCalls);
    const { rows: runs } = await env.pool.query(
      `SELECT status, summary FROM roundtrip.runs WHERE run_id = $1`,
      [runId],
    );
    expect(runs[0].status).toBe('succeeded');
    expect(runs[0].summary.writeback['Lead-update'].written).toBe(LEADS);
  });

  it('counts the calls of every attempt of a retried plan', async () => {
    const config = { extract: [leadExtract], writeback: [updateTask] };
    const runId = await env.newRun();
    // Each attempt in a Lambda of its own: a connector of its own, which describes Lead again.
    const first = await planWriteback(
      { ...env.deps(config), salesforce: await env.connect() },
      { runId, task: 'Lead-update' },
    );
    const second = await planWriteback(
      { ...env.deps(config), salesforce: await env.connect() },
      { runId, task: 'Lead-update' },
    );

    expect(first.apiCalls).toBeGreaterThan(0);
    expect(second.apiCalls).toBe(2 * (first.apiCalls ?? 0));
  });

  it('makes no write call when nothing changed', async () => {
    await extractLeads(env);
    const deps = env.deps({ extract: [leadExtract], writeback: [updateTask] });
    const runId = await env.newRun();
    env.sf.calls.clear();

    const { plan, result } = await runWriteback(deps, { runId, task: 'Lead-update' });

    expect(plan).toMatchObject({ api: 'none', changed: 0, unchanged: LEADS });
    expect(result).toMatchObject({ planned: 0, succeeded: 0 });
    expect(env.sf.calls.count({ write: true })).toBe(0);
  });

  it('sends a score Salesforce holds with decimals its field does not show (41.6 in a Number(3,0) field, from another client)', async () => {
    await fillScores();
    // In sync since the tests before; then another API client writes 41.6 where the source has 42.
    const target = ids[41] as string;
    expect(
      (await env.pool.query(`SELECT lead_score FROM lead_reverse WHERE "Id" = $1`, [target])).rows,
    ).toEqual([{ lead_score: 42 }]);
    env.sf.store.update('Lead', [{ Id: target, LeadScore__c: 41.6 }]);
    await extractLeads(env);
    const deps = env.deps({ extract: [leadExtract], writeback: [updateTask] });

    const { plan, result } = await runWriteback(deps, { runId: await env.newRun(), task: 'Lead-update' });

    expect(plan).toMatchObject({ comparedWith: 'extract:public.sf_lead', changed: 1 });
    expect(result).toMatchObject({ succeeded: 1 });
    expect(env.sf.store.get(target)?.LeadScore__c).toBe(42);
    await extractLeads(env);
    const again = await runWriteback(deps, { runId: await env.newRun(), task: 'Lead-update' });
    expect(again.plan.changed).toBe(0);
  });

  it('sends exactly the records whose score changed (1 %)', async () => {
    await fillScores(5, 3);
    await extractLeads(env);
    const deps = env.deps({ extract: [leadExtract], writeback: [updateTask] });
    const runId = await env.newRun();
    env.sf.calls.clear();

    const { plan } = await runWriteback(deps, { runId, task: 'Lead-update' });

    expect(plan.changed).toBe(3);
    const writes = env.sf.calls.writes();
    expect(writes).toHaveLength(1);
    expect(writes[0]?.records).toBe(3);
    const { rows } = await env.pool.query(
      `SELECT key FROM roundtrip.writeback_plans WHERE run_id = $1 ORDER BY key`,
      [runId],
    );
    expect(rows.map((r) => r.key)).toEqual(ids.slice(0, 3).sort());
    expect(scoresInSalesforce(env).get(ids[0] as string)).toBe(1 + 5);
  });

  it('catches an edit made in Salesforce since the last sync, through the fresh extract', async () => {
    // Someone changes a score by hand in Salesforce; the transform's value did not change.
    const edited = ids[10] as string;
    env.sf.store.update('Lead', [{ Id: edited, LeadScore__c: 1 }]);
    await extractLeads(env);
    const deps = env.deps({ extract: [leadExtract], writeback: [updateTask] });
    const runId = await env.newRun();

    const { plan } = await runWriteback(deps, { runId, task: 'Lead-update' });

    expect(plan.changed).toBe(1);
    expect(scoresInSalesforce(env).get(edited)).toBe(11 % 90);
  });

  it('compares what it synced after the last extract with what it sent: a run without the extract resends nothing', async () => {
    // The previous test synced one record after the copy was loaded; this run does not extract.
    const edited = ids[10] as string;
    const deps = env.deps({ extract: [leadExtract], writeback: [updateTask] });
    env.sf.calls.clear();

    const { plan } = await runWriteback(deps, { runId: await env.newRun(), task: 'Lead-update' });

    // The copy still shows the hand edit (1); sync_state holds what was sent since: nothing to do.
    expect(plan).toMatchObject({ comparedWith: 'extract:public.sf_lead', changed: 0 });
    expect(env.sf.calls.count({ write: true })).toBe(0);
    const { rows } = await env.pool.query(
      `SELECT "LeadScore__c"::int AS score FROM sf_lead WHERE "Id" = $1`,
      [edited],
    );
    expect(rows).toEqual([{ score: 1 }]);

    // A later edit in Salesforce is caught once the copy is fresh again.
    env.sf.store.update('Lead', [{ Id: edited, LeadScore__c: 2 }]);
    await extractLeads(env);
    const again = await runWriteback(deps, { runId: await env.newRun(), task: 'Lead-update' });
    expect(again.plan.changed).toBe(1);
    expect(scoresInSalesforce(env).get(edited)).toBe(11 % 90);
  });

  it('compares with sync_state when the pipeline does not extract the object', async () => {
    const deps = env.deps({ writeback: [updateTask] });
    const first = await runWriteback(deps, { runId: await env.newRun(), task: 'Lead-update' });
    // sync_state already holds every key with the same hash: nothing to send.
    expect(first.plan).toMatchObject({ comparedWith: 'sync_state', changed: 0 });

    await env.pool.query(`UPDATE lead_reverse SET lead_score = lead_score + 1 WHERE "Id" = ANY($1)`, [
      ids.slice(50, 52),
    ]);
    env.sf.calls.clear();
    const second = await runWriteback(deps, { runId: await env.newRun(), task: 'Lead-update' });
    expect(second.plan.changed).toBe(2);
    expect(env.sf.calls.writes().map((w) => w.records)).toEqual([2]);
  });

  it('sends every record once when a field is added to the mapping, and nothing when one is dropped (sync_state)', async () => {
    const run = async (fields: Record<string, string>) =>
      runWriteback(env.deps({ writeback: [{ ...updateTask, fields }] }), {
        runId: await env.newRun(),
        task: 'Lead-update',
      });
    expect((await run(updateTask.fields)).plan).toMatchObject({ comparedWith: 'sync_state', changed: 0 });
    // What Salesforce holds in the new field is not known: every record is sent with it.
    const added = await run({ ...updateTask.fields, NumberOfEmployees: 'lead_score' });
    expect(added.plan.changed).toBe(LEADS);
    expect(added.result).toMatchObject({ succeeded: LEADS });
    // A field no longer mapped changes nothing in Salesforce: nothing is sent.
    env.sf.calls.clear();
    const dropped = await run(updateTask.fields);
    expect(dropped.plan.changed).toBe(0);
    expect(env.sf.calls.count({ write: true })).toBe(0);
    // And a change of the fields still mapped is still seen.
    await env.pool.query(`UPDATE lead_reverse SET lead_score = lead_score + 1 WHERE "Id" = $1`, [ids[7]]);
    expect((await run(updateTask.fields)).plan.changed).toBe(1);
  });
});
