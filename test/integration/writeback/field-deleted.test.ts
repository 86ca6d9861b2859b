/**
 * A field the task maps deleted in Salesforce after the push sent the records and before their
 * results are all in: the step that collects them records every outcome Salesforce gives (it sends
 * again, for a row-lock retry, the payload the plan stored), and the next plan is the one that
 * reports the deleted field, with its place in the config.
 */
import type { FieldDescribe } from '../../../emulators/salesforce/describe';
import type { CoreDeps } from '../../../lambdas/core/deps';
import {
  collectWriteback,
  planWriteback,
  pushWriteback,
  type WritebackCollectOutput,
  type WritebackPushOutput,
} from '../../../lambdas/core/writeback';
import type { TimeLeft } from '../../../lambdas/shared/clock';
import {
  errorsOf,
  LEAD_SRC_UPSERT,
  refusingNextWrite,
  startWritebackEnv,
  type WritebackEnv,
} from './support';

/** No time at all: each invocation makes its one guaranteed call, then hands on. */
const NO_TIME: TimeLeft = () => 0;

describe('a mapped field deleted in Salesforce between push and collect', () => {
  let env: WritebackEnv;
  let restore: (() => void) | undefined;

  beforeAll(async () => {
    env = await startWritebackEnv();
    await env.pool.query(`CREATE TABLE lead_src (ext text, last_name text, company text, score integer)`);
    // An org's validation rule refuses the score of `*-3`; `*-2` is locked once, then written.
    const locked = new Set<string>();
    env.sf.store.setRecordFault((_object, record) => {
      const key = String(record.External_Id__c);
      if (key.endsWith('-3')) {
        return {
          statusCode: 'FIELD_CUSTOM_VALIDATION_EXCEPTION',
          message: 'Scores of this lead are frozen',
          fields: ['LeadScore__c'],
        };
      }
      if (key.endsWith('-2') && !locked.has(key)) {
        locked.add(key);
        return {
          statusCode: 'UNABLE_TO_LOCK_ROW',
          message: 'unable to obtain exclusive access to this record',
          fields: [],
        };
      }
      return undefined;
    });
  });
  afterEach(() => {
    restore?.();
    restore = undefined;
    env.sf.faults.clear();
  });
  afterAll(async () => env?.stop());

  /** Replaces lead_src by `n` rows keyed `${prefix}-1`…, scored 10 + i. */
  async function source(prefix: string, n: number): Promise<void> {
    await env.pool.query('DELETE FROM lead_src');
    await env.pool.query(
      `INSERT INTO lead_src SELECT $1 || '-' || i, 'Name ' || i, 'Acme', 10 + i FROM generate_series(1, $2::int) AS i`,
      [prefix, n],
    );
  }

  /** Deletes Lead.LeadScore__c from the describe Salesforce answers (put back after the test). */
  function deleteScoreField(): void {
    const describe = env.sf.store.describe('Lead');
    const at = describe?.fields.findIndex((f) => f.name === 'LeadScore__c') ?? -1;
    if (!describe || at < 0) throw new Error('the emulator has no Lead.LeadScore__c');
    const [field] = describe.fields.splice(at, 1) as [FieldDescribe];
    restore = () => describe.fields.splice(at, 0, field);
  }

  /** Deps on a connector signed in after the deletion (another Lambda container: a fresh describe). */
  async function afterDeletion(deps: CoreDeps): Promise<CoreDeps> {
    deleteScoreField();
    return { ...deps, salesforce: await env.connect() };
  }

  async function outcomes(runId: string): Promise<Record<string, string>> {
    const { rows } = await env.pool.query<{ key: string; status: string }>(
      `SELECT key, status FROM roundtrip.writeback_plans WHERE run_id = $1 ORDER BY key`,
      [runId],
    );
    return Object.fromEntries(rows.map((r) => [r.key, r.status]));
  }

  async function synced(prefix: string): Promise<Record<string, unknown>> {
    const { rows } = await env.pool.query<{ key: string; score: unknown }>(
      `SELECT key, synced_values->'LeadScore__c' AS score FROM roundtrip.sync_state WHERE task = 'Lead-upsert' AND key LIKE $1 ORDER BY key`,
      [`${prefix}-%`],
    );
    return Object.fromEntries(rows.map((r) => [r.key, r.score]));
  }

  /** The next plan reports the deleted field, with its place in the config and what to do. */
  async function nextPlanReportsIt(deps: CoreDeps): Promise<void> {
    await expect(planWriteback(deps, { runId: await env.newRun(), task: 'Lead-upsert' })).rejects.toThrow(
      'Cannot plan the write-back Lead-upsert (upsert of Lead): field LeadScore__c does not exist on Lead (writeback[0].fields.LeadScore__c)',
    );
  }

  it('Collections: the push going on after every record was sent records every outcome', async () => {
    await source('co', 4);
    const deps = env.deps({ writeback: [LEAD_SRC_UPSERT] });
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'Lead-upsert' });
    // One Composite call sends the four records; co-2 is locked, and the row-lock retry is handed on.
    const first = await pushWriteback(deps, { runId, task: 'Lead-upsert' }, { timeLeft: NO_TIME });
    expect(first).toMatchObject({ status: 'push-pending', planned: 4, done: 3 });

    const later = await afterDeletion(deps);
    const pushed = await pushWriteback(later, { runId, task: 'Lead-upsert' });

    expect(pushed).toMatchObject({ status: 'collected', planned: 4, succeeded: 3, failed: 1 });
    expect(await outcomes(runId)).toEqual({
      'co-1': 'succeeded',
      'co-2': 'succeeded',
      'co-3': 'failed',
      'co-4': 'succeeded',
    });
    expect(await synced('co')).toEqual({ 'co-1': 11, 'co-2': 12, 'co-4': 14 });
    expect((await errorsOf(env, runId)).map((e) => [e.key, e.stage, e.code, e.message, e.fields])).toEqual([
      [
        'co-3',
        'push',
        'FIELD_CUSTOM_VALIDATION_EXCEPTION',
        'Scores of this lead are frozen',
        ['LeadScore__c'],
      ],
    ]);
    await nextPlanReportsIt(later);
  });

  it('Collections: records put back to planned after a refused call are not taken for sent: the push reports the deleted field, sending nothing', async () => {
    await source('rf', 1);
    const deps = env.deps({ writeback: [LEAD_SRC_UPSERT] });
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'Lead-upsert' });
    // The org's daily allowance runs out right before the call: refused, nothing processed.
    const refusing = refusingNextWrite(env.connector, () => env.sf.faults.set({ dailyApiLimit: 1 }));
    await expect(
      pushWriteback({ ...deps, salesforce: refusing }, { runId, task: 'Lead-upsert' }),
    ).rejects.toThrow(/REQUEST_LIMIT_EXCEEDED/);
    expect(await outcomes(runId)).toEqual({ 'rf-1': 'planned' });
    env.sf.faults.clear();

    const later = await afterDeletion(deps);
    env.sf.calls.clear();
    // Never sent: the push maps the task in full, as before any send, and the mapping fails.
    await expect(pushWriteback(later, { runId, task: 'Lead-upsert' })).rejects.toThrow(
      'field LeadScore__c does not exist on Lead (writeback[0].fields.LeadScore__c)',
    );
    expect(env.sf.calls.writes()).toEqual([]);
    expect(await outcomes(runId)).toEqual({ 'rf-1': 'planned' });
  });

  it('Bulk: Collect records every result of the job, and sends the row-lock retry the plan stored', async () => {
    await source('bk', 6);
    const deps = env.deps({ writeback: [{ ...LEAD_SRC_UPSERT, bulkThreshold: 5 }] });
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'Lead-upsert' });
    const pushed: WritebackPushOutput = await pushWriteback(deps, { runId, task: 'Lead-upsert' });
    if (pushed.status !== 'bulk-pending') throw new Error(`expected bulk-pending, got ${pushed.status}`);
    // The job runs to its end before the field goes.
    const [jobId] = pushed.jobIds;
    for (let state = ''; state !== 'JobComplete';) {
      ({ state } = await env.connector.request<{ state: string }>('poll', 'GET', `/jobs/ingest/${jobId}`));
      if (state === 'Failed' || state === 'Aborted') throw new Error(`the job ended ${state}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }

    const later = await afterDeletion(deps);
    let out: WritebackCollectOutput = pushed;
    for (let i = 0; out.status === 'bulk-pending' && i < 20; i += 1) out = await collectWriteback(later, out);

    expect(out).toMatchObject({ status: 'collected', planned: 6, succeeded: 5, failed: 1 });
    expect(await outcomes(runId)).toEqual({
      'bk-1': 'succeeded',
      'bk-2': 'succeeded',
      'bk-3': 'failed',
      'bk-4': 'succeeded',
      'bk-5': 'succeeded',
      'bk-6': 'succeeded',
    });
    expect(await synced('bk')).toEqual({ 'bk-1': 11, 'bk-2': 12, 'bk-4': 14, 'bk-5': 15, 'bk-6': 16 });
    expect((await errorsOf(env, runId)).map((e) => [e.key, e.stage, e.code, e.message, e.fields])).toEqual([
      [
        'bk-3',
        'push',
        'FIELD_CUSTOM_VALIDATION_EXCEPTION',
        'Scores of this lead are frozen',
        ['LeadScore__c'],
      ],
    ]);
    await nextPlanReportsIt(later);
  });
});
