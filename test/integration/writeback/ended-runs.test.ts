/**
 * Inserts that a run which has ended left without an outcome (sent, result never recorded): the
 * next plan of the task looks them up by external ID once their call can no longer create a
 * record, records those created and inserts those never created; until then, and while that run
 * is still running, they are refused. A key refused only because another run had it pending is
 * not refused for ever.
 */
import type { CoreDeps } from '../../../lambdas/core/deps';
import { planWriteback, pushWriteback, runWriteback } from '../../../lambdas/core/writeback';
import {
  errorsOf,
  givingUpOnWrites,
  leadSeed,
  outlastCallTimeLimit,
  planThenCrashInPush,
  startWritebackEnv,
  type WritebackEnv,
} from './support';

describe('inserts left without an outcome by runs that ended', () => {
  let env: WritebackEnv;

  beforeAll(async () => {
    env = await startWritebackEnv();
    env.sf.store.seed('Lead', leadSeed(5));
    await env.pool.query(`CREATE TABLE lead_src (ext text, last_name text, company text, score integer)`);
  });
  afterAll(async () => env?.stop());

  const insert = {
    to: 'salesforce' as const,
    object: 'Lead',
    from: 'lead_src',
    mode: 'insert' as const,
    key: 'External_Id__c',
    keyColumn: 'ext',
    fields: { LastName: 'last_name', Company: 'company', LeadScore__c: 'score' },
  };

  /** Replaces lead_src by `n` rows keyed `${prefix}-1`…. */
  async function source(prefix: string, n: number): Promise<void> {
    await env.pool.query('DELETE FROM lead_src');
    await env.pool.query(
      `INSERT INTO lead_src SELECT $1 || '-' || i, 'Ended ' || i, 'Initech', i FROM generate_series(1, $2::int) AS i`,
      [prefix, n],
    );
  }

  const holding = (prefix: string): number =>
    [...env.sf.store.all('Lead')].filter((r) => String(r.External_Id__c).startsWith(`${prefix}-`)).length;

  /** Pushes the run's plan through a client that gives up on every write: sent, never created. */
  async function pushLost(deps: CoreDeps, runId: string): Promise<void> {
    await expect(
      pushWriteback(
        { ...deps, salesforce: givingUpOnWrites(env.connector).connector },
        { runId, task: 'Lead-insert' },
      ),
    ).rejects.toThrow(/timed out/);
  }

  async function endRun(runId: string): Promise<void> {
    await env.pool.query(
      `UPDATE roundtrip.runs SET status = 'failed', finished_at = now() WHERE run_id = $1`,
      [runId],
    );
  }

  async function ledger(runId: string): Promise<{ status: string; n: number }[]> {
    const { rows } = await env.pool.query(
      `SELECT status, count(*)::int AS n FROM roundtrip.writeback_plans WHERE run_id = $1 GROUP BY status ORDER BY status`,
      [runId],
    );
    return rows;
  }

  it('records the records an ended run created, and does not insert them again', async () => {
    await source('made', 3);
    const deps = env.deps({ writeback: [insert] });
    const dead = await env.newRun();
    // Salesforce creates the three records; the run dies before recording them, and ends.
    await planThenCrashInPush(env, deps, dead, 'Lead-insert');
    await endRun(dead);
    await outlastCallTimeLimit(env, dead);
    expect(holding('made')).toBe(3);

    env.sf.calls.clear();
    const next = await env.newRun();
    const result = await runWriteback(deps, { runId: next, task: 'Lead-insert' });

    expect(result.plan).toMatchObject({ sourceRows: 3, rejected: 0, changed: 0, unchanged: 3 });
    expect(env.sf.calls.count({ write: true })).toBe(0);
    expect(env.sf.calls.count({ operation: 'query' })).toBe(1);
    expect(holding('made')).toBe(3);
    expect(await ledger(dead)).toEqual([{ status: 'succeeded', n: 3 }]);
    const { rows } = await env.pool.query(
      `SELECT count(*)::int AS n FROM roundtrip.sync_state WHERE task = 'Lead-insert' AND key LIKE 'made-%' AND salesforce_id IS NOT NULL`,
    );
    expect(rows[0].n).toBe(3);
    expect(await errorsOf(env, next)).toEqual([]);
  });

  it('inserts the keys an ended run sent but Salesforce never created, once, and says so in that run', async () => {
    await source('lost', 2);
    const deps = env.deps({ writeback: [insert] });
    const dead = await env.newRun();
    await planWriteback(deps, { runId: dead, task: 'Lead-insert' });
    // The call never reaches Salesforce; the run ends with its records `sent`.
    await pushLost(deps, dead);
    await endRun(dead);
    await outlastCallTimeLimit(env, dead);

    env.sf.calls.clear();
    const next = await env.newRun();
    const result = await runWriteback(deps, { runId: next, task: 'Lead-insert' });

    expect(result.plan).toMatchObject({ sourceRows: 2, rejected: 0, changed: 2 });
    expect(env.sf.calls.writes().map((w) => w.records)).toEqual([2]);
    expect(holding('lost')).toBe(2);
    expect(await ledger(dead)).toEqual([{ status: 'failed', n: 2 }]);
    const released = await errorsOf(env, dead);
    expect(released.map((e) => [e.key, e.code])).toEqual([
      ['lost-1', 'NOT_INSERTED'],
      ['lost-2', 'NOT_INSERTED'],
    ]);
    expect(released[0]?.message).toMatch(
      new RegExp(
        `^sent for insert by this run, whose result was never recorded; run ${next} looked the key up`,
      ),
    );

    // A third run inserts nothing more.
    env.sf.calls.clear();
    const third = await runWriteback(deps, { runId: await env.newRun(), task: 'Lead-insert' });
    expect(third.plan).toMatchObject({ changed: 0 });
    expect(env.sf.calls.count({ write: true })).toBe(0);
    expect(holding('lost')).toBe(2);
  });

  it('still refuses the keys while their call may be running, or while their run is', async () => {
    await source('young', 2);
    const deps = env.deps({ writeback: [insert] });
    const dead = await env.newRun();
    await planWriteback(deps, { runId: dead, task: 'Lead-insert' });
    await pushLost(deps, dead);

    // Still running, long sent: not touched (its own retry resolves them).
    await outlastCallTimeLimit(env, dead);
    env.sf.calls.clear();
    const next = await env.newRun();
    const running = await runWriteback(deps, { runId: next, task: 'Lead-insert' });
    expect(running.plan).toMatchObject({ rejected: 2, changed: 0 });
    expect(env.sf.calls.count({ operation: 'query' })).toBe(0);
    expect((await errorsOf(env, next)).map((e) => e.code)).toEqual([
      'INSERT_OUTCOME_UNKNOWN',
      'INSERT_OUTCOME_UNKNOWN',
    ]);
    expect((await errorsOf(env, next))[0]?.message).toMatch(
      /not inserted by this run\. Once that run has ended and 11 minutes have passed since the send, the next plan looks the key up by External_Id__c/,
    );

    // Ended, but sent just now (a retry marked them again): not touched either.
    await endRun(dead);
    await env.pool.query(`UPDATE roundtrip.writeback_plans SET updated_at = now() WHERE run_id = $1`, [dead]);
    env.sf.calls.clear();
    const ended = await runWriteback(deps, { runId: await env.newRun(), task: 'Lead-insert' });
    expect(ended.plan).toMatchObject({ rejected: 2, changed: 0 });
    expect(env.sf.calls.count()).toBe(0);
    expect(await ledger(dead)).toEqual([{ status: 'sent', n: 2 }]);
    expect(holding('young')).toBe(0);
  });

  it('does not refuse a key for ever because a run refused it while another had it pending', async () => {
    await source('pend', 1);
    const deps = env.deps({ writeback: [insert] });
    // Run A sends the key and dies; run B, planned before A sent it, refuses it at its push.
    const a = await env.newRun();
    const b = await env.newRun();
    await planWriteback(deps, { runId: a, task: 'Lead-insert' });
    await planWriteback(deps, { runId: b, task: 'Lead-insert' });
    await pushLost(deps, a);
    const pushedB = await pushWriteback(deps, { runId: b, task: 'Lead-insert' });
    expect(pushedB).toMatchObject({ succeeded: 0, failed: 1 });
    const refused = await errorsOf(env, b);
    expect(refused.map((e) => e.code)).toEqual(['INSERT_PENDING_ELSEWHERE']);
    expect(refused[0]?.message).toBe(
      `sent for insert by run ${a}, whose result is not recorded yet: not inserted again by this run`,
    );
    await endRun(a);
    await endRun(b);
    await outlastCallTimeLimit(env, a);

    // Run C finds A's key was never created: it inserts it, B's refusal notwithstanding.
    env.sf.calls.clear();
    const c = await runWriteback(deps, { runId: await env.newRun(), task: 'Lead-insert' });
    expect(c.plan).toMatchObject({ rejected: 0, changed: 1 });
    expect(holding('pend')).toBe(1);
  });
});
