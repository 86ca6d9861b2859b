/**
 * Update and upsert runs that overlap (started by hand: a schedule skips a run while another is
 * going): a push does not send the records whose key a run that planned after it has synced
 * already. Salesforce keeps that run's newer values, the older run counts the records as
 * `superseded` (in its push's result, its summary, the report and the CLI's summary; not failed,
 * not in its failure rate), their keys' sync_state stays as the newer run wrote it, and the keys
 * the newer run did not sync are sent as planned. Judged by when each run planned, not by the order
 * of the pushes: what a run that planned before this one synced is written over, as before.
 */
import {
  collectWriteback,
  planWriteback,
  pushWriteback,
  reportRun,
  runWriteback,
} from '../../../lambdas/core/writeback';
import type { WritebackPushOutput } from '../../../lambdas/core/contracts';
import type { CoreDeps } from '../../../lambdas/core/deps';
import { readStoredRun, taskSummaries } from '../../../bin/local/summary';
import {
  failingBeforeRowLockRetry,
  LEAD_SRC_UPSERT,
  leadSeed,
  SCORE_UPDATE,
  startWritebackEnv,
  type WritebackEnv,
} from './support';

describe('records a run that planned later has synced since the plan', () => {
  let env: WritebackEnv;

  beforeAll(async () => {
    env = await startWritebackEnv();
    env.sf.store.seed('Lead', leadSeed(6));
    await env.pool.query(`CREATE TABLE lead_src (ext text, last_name text, company text, score integer)`);
    await env.pool.query(`CREATE TABLE lead_scores ("Id" text, score integer)`);
  });
  afterAll(async () => env?.stop());
  afterEach(() => env.sf.faults.clear());

  /** Replaces lead_src by rows keyed `${prefix}-i` for each i of `keys`, scored `score + i`. */
  async function source(prefix: string, keys: number[], score = 0): Promise<void> {
    await env.pool.query('DELETE FROM lead_src');
    await env.pool.query(
      `INSERT INTO lead_src SELECT $1 || '-' || i, 'Newer ' || i, 'Initech', $3 + i FROM unnest($2::int[]) AS i`,
      [prefix, keys, score],
    );
  }

  /** The score of the lead whose external ID is `ext`, as Salesforce holds it. */
  function scoreOf(ext: string): unknown {
    const found = [...env.sf.store.all('Lead')].filter(
      (r) => r.External_Id__c === ext && r.IsDeleted !== true,
    );
    expect(found).toHaveLength(1);
    return found[0]?.LeadScore__c;
  }

  async function syncState(task: string): Promise<{ key: string; run_id: string; score: number }[]> {
    const { rows } = await env.pool.query(
      `SELECT key, run_id, (synced_values->>'LeadScore__c')::int AS score FROM roundtrip.sync_state
        WHERE task = $1 ORDER BY key`,
      [task],
    );
    return rows;
  }

  async function ledger(runId: string): Promise<[string, string][]> {
    const { rows } = await env.pool.query(
      `SELECT key, status FROM roundtrip.writeback_plans WHERE run_id = $1 ORDER BY key`,
      [runId],
    );
    return rows.map((r) => [r.key, r.status]);
  }

  async function pushToEnd(deps: CoreDeps, runId: string, task: string): Promise<WritebackPushOutput> {
    let out = await pushWriteback(deps, { runId, task });
    while (out.status === 'bulk-pending') out = await collectWriteback(deps, out);
    return out;
  }

  it('does not send the keys a run that planned later synced: Salesforce keeps its values, the older run counts them superseded and sends the others', async () => {
    const deps = env.deps({ writeback: [LEAD_SRC_UPSERT] });
    // A run that plans before the older one: what it syncs is older than the older run's plan.
    await source('sup', [3, 4], 50);
    const earlier = await env.newRun();
    expect(await planWriteback(deps, { runId: earlier, task: 'Lead-upsert' })).toMatchObject({ changed: 2 });
    await source('sup', [1, 2, 3, 4]);
    const older = await env.newRun();
    expect(await planWriteback(deps, { runId: older, task: 'Lead-upsert' })).toMatchObject({ changed: 4 });
    // The transform has run again: two of the keys have newer scores, the other two are gone.
    await source('sup', [1, 2], 100);
    const newer = await env.newRun();
    expect(await planWriteback(deps, { runId: newer, task: 'Lead-upsert' })).toMatchObject({ changed: 2 });
    expect(await pushWriteback(deps, { runId: newer, task: 'Lead-upsert' })).toMatchObject({ succeeded: 2 });
    // Pushed after the newer run, the earlier plan's keys are its own: the newer run did not sync them.
    expect(await pushWriteback(deps, { runId: earlier, task: 'Lead-upsert' })).toMatchObject({
      succeeded: 2,
      superseded: 0,
    });
    env.sf.calls.clear();

    const pushed = await pushWriteback(deps, { runId: older, task: 'Lead-upsert' });
    const report = await reportRun(deps, { runId: older });

    expect(pushed).toMatchObject({
      status: 'collected',
      planned: 4,
      succeeded: 2,
      failed: 0,
      heldBack: 0,
      superseded: 2,
      failureRate: 0,
      failureRateExceeded: false,
    });
    // One call, carrying the two keys the newer run did not sync (the earlier run, which planned
    // before this one, did: its values are older than this run's).
    expect(env.sf.calls.count({ operation: 'collections.upsert' })).toBe(1);
    expect([1, 2, 3, 4].map((i) => scoreOf(`sup-${i}`))).toEqual([101, 102, 3, 4]);
    expect(await ledger(older)).toEqual([
      ['sup-1', 'superseded'],
      ['sup-2', 'superseded'],
      ['sup-3', 'succeeded'],
      ['sup-4', 'succeeded'],
    ]);
    expect((await syncState('Lead-upsert')).filter((s) => s.key.startsWith('sup-'))).toEqual([
      { key: 'sup-1', run_id: newer, score: 101 },
      { key: 'sup-2', run_id: newer, score: 102 },
      { key: 'sup-3', run_id: older, score: 3 },
      { key: 'sup-4', run_id: older, score: 4 },
    ]);
    // maxFailureRate is 5 % by default: two of four counted failed would have failed the run.
    expect(report).toMatchObject({
      status: 'succeeded',
      writeback: { 'Lead-upsert': { changed: 4, written: 2, failed: 0, heldBack: 0, superseded: 2 } },
    });
    const stored = await readStoredRun(env.pool, older);
    expect(taskSummaries(deps.config, stored!)).toEqual([
      expect.objectContaining({ task: 'Lead-upsert', planned: 4, written: 2, superseded: 2, failed: 0 }),
    ]);
    // Nothing was written over: a run of the newer source finds nothing to send.
    expect(await planWriteback(deps, { runId: await env.newRun(), task: 'Lead-upsert' })).toMatchObject({
      changed: 0,
    });
  });

  it('does not send a record waiting for its row-lock retry when a run that planned later synced its key meanwhile', async () => {
    const deps = env.deps({ writeback: [LEAD_SRC_UPSERT] });
    await source('slock', [1, 2, 3]);
    const older = await env.newRun();
    await planWriteback(deps, { runId: older, task: 'Lead-upsert' });
    // slock-2 is refused with UNABLE_TO_LOCK_ROW, and the step fails before its retry round.
    env.sf.faults.set({ lockRowKeys: ['slock-2'] });
    const failingBeforeRetry = failingBeforeRowLockRetry(deps);
    await expect(pushWriteback(failingBeforeRetry, { runId: older, task: 'Lead-upsert' })).rejects.toThrow(
      /before the row-lock retry round/,
    );
    env.sf.faults.clear();
    // Meanwhile a run started by hand plans a newer score for slock-2 and writes it.
    await source('slock', [2], 100);
    const newer = await env.newRun();
    expect((await runWriteback(deps, { runId: newer, task: 'Lead-upsert' })).result).toMatchObject({
      succeeded: 1,
    });
    env.sf.calls.clear();

    const retried = await pushWriteback(
      { ...deps, clock: { now: () => new Date(), sleep: async () => undefined } },
      { runId: older, task: 'Lead-upsert' },
    );

    expect(retried).toMatchObject({ status: 'collected', succeeded: 2, failed: 0, superseded: 1 });
    expect(env.sf.calls.count({ write: true })).toBe(0);
    expect([1, 2, 3].map((i) => scoreOf(`slock-${i}`))).toEqual([1, 102, 3]);
    expect(await ledger(older)).toEqual([
      ['slock-1', 'succeeded'],
      ['slock-2', 'superseded'],
      ['slock-3', 'succeeded'],
    ]);
  });

  it('leaves the superseded records out of the Bulk jobs (update by Id), and makes no job when every record is superseded', async () => {
    const task = { ...SCORE_UPDATE, bulkThreshold: 1 };
    const deps = env.deps({ writeback: [task] });
    const ids = [...env.sf.store.all('Lead')]
      .filter((r) => String(r.External_Id__c).startsWith('ext-'))
      .map((r) => r.Id as string)
      .sort()
      .slice(0, 4);
    const scores = async (values: [string, number][]): Promise<void> => {
      await env.pool.query('DELETE FROM lead_scores');
      for (const [id, score] of values)
        await env.pool.query('INSERT INTO lead_scores VALUES ($1, $2)', [id, score]);
    };
    await scores(ids.map((id, i) => [id, 10 + i]));
    const oldest = await env.newRun();
    await planWriteback(deps, { runId: oldest, task: 'Lead-update' });
    const older = await env.newRun();
    expect(await planWriteback(deps, { runId: older, task: 'Lead-update' })).toMatchObject({ changed: 4 });
    // The newer run writes new scores into the first two records, given as 15-character Ids: the
    // same records for Salesforce.
    await scores([
      [ids[0]!.slice(0, 15), 200],
      [ids[1]!.slice(0, 15), 201],
    ]);
    const newer = await env.newRun();
    expect(await planWriteback(deps, { runId: newer, task: 'Lead-update' })).toMatchObject({ changed: 2 });
    expect(await pushToEnd(deps, newer, 'Lead-update')).toMatchObject({ succeeded: 2 });
    env.sf.calls.clear();

    const first = await pushWriteback(deps, { runId: older, task: 'Lead-update' });
    expect(first).toMatchObject({ status: 'bulk-pending', jobIds: [expect.any(String)] });
    let pushed: WritebackPushOutput = first;
    while (pushed.status === 'bulk-pending') pushed = await collectWriteback(deps, pushed);

    expect(pushed).toMatchObject({
      planned: 4,
      succeeded: 2,
      failed: 0,
      superseded: 2,
      failureRateExceeded: false,
    });
    const { rows: jobs } = await env.pool.query(
      `SELECT records_processed::int AS n FROM roundtrip.writeback_jobs WHERE run_id = $1`,
      [older],
    );
    expect(jobs).toEqual([{ n: 2 }]);
    expect(ids.map((id) => env.sf.store.get(id)?.LeadScore__c)).toEqual([200, 201, 12, 13]);
    const { rows: synced } = await env.pool.query(
      `SELECT run_id, count(*)::int AS n FROM roundtrip.sync_state WHERE task = 'Lead-update' GROUP BY run_id ORDER BY n`,
    );
    expect(synced).toEqual(
      expect.arrayContaining([
        { run_id: newer, n: 2 },
        { run_id: older, n: 2 },
      ]),
    );

    // The oldest plan: the two keys of the newer run are superseded, the other two were synced by
    // a run that planned after it too (the older one). Nothing left to send: no job.
    env.sf.calls.clear();
    const last = await pushWriteback(deps, { runId: oldest, task: 'Lead-update' });
    expect(last).toMatchObject({ status: 'collected', planned: 4, succeeded: 0, superseded: 4 });
    expect(env.sf.calls.count({ write: true })).toBe(0);
    expect(ids.map((id) => env.sf.store.get(id)?.LeadScore__c)).toEqual([200, 201, 12, 13]);
  });
});
