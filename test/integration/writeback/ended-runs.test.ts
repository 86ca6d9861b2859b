/**
 * Inserts that a run which has ended left without an outcome (sent, result never recorded): the
 * next plan of the task looks them up by external ID once their call can no longer create a
 * record, records those created and inserts those never created; until then, and while that run
 * is still running, they are refused. A key refused only because another run had it pending is
 * not refused for ever. Update and upsert Bulk jobs such a run left Open in Salesforce are
 * aborted by the next plan.
 */
import { TransientError } from '../../../lambdas/shared/errors';
import type { CoreDeps } from '../../../lambdas/core/deps';
import { getIngestJob, isFinalIngestState } from '../../../lambdas/connectors/salesforce/writes';
import { pruneRunDetails } from '../../../lambdas/core/writeback/report';
import {
  collectWriteback,
  planWriteback,
  pushWriteback,
  reportRun,
  runWriteback,
} from '../../../lambdas/core/writeback';
import {
  crashingConnector,
  errorsOf,
  givingUpOnWrites,
  LEAD_SRC_UPSERT,
  leadSeed,
  ledgerByStatus,
  outlastCallTimeLimit,
  planThenCrashInPush,
  runFigures,
  SCORE_UPDATE,
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

  const insert = { ...LEAD_SRC_UPSERT, mode: 'insert' as const };

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

  /** A run whose push lost its calls (sent, never created), then ended, long enough ago. */
  async function lostAndEnded(deps: CoreDeps): Promise<string> {
    const dead = await env.newRun();
    await planWriteback(deps, { runId: dead, task: 'Lead-insert' });
    await pushLost(deps, dead);
    await endRun(dead);
    await outlastCallTimeLimit(env, dead);
    return dead;
  }

  it('records the records an ended run created, and does not insert them again', async () => {
    await source('made', 3);
    const deps = env.deps({ writeback: [insert] });
    const dead = await env.newRun();
    // Salesforce creates the three records; the run dies before recording them, and ends.
    await planThenCrashInPush(env, deps, dead, 'Lead-insert');
    await reportRun(deps, { runId: dead, error: { Error: 'States.Timeout', Cause: 'Task timed out' } });
    await outlastCallTimeLimit(env, dead);
    expect(holding('made')).toBe(3);
    const figures = () => runFigures(env, dead, 'Lead-insert');
    expect(await figures()).toMatchObject({ written: 0, failed: 0, outcomeUnknown: 3 });

    env.sf.calls.clear();
    const next = await env.newRun();
    const result = await runWriteback(deps, { runId: next, task: 'Lead-insert' });

    expect(result.plan).toMatchObject({ sourceRows: 3, rejected: 0, changed: 0, unchanged: 3 });
    expect(env.sf.calls.count({ write: true })).toBe(0);
    expect(env.sf.calls.count({ operation: 'queryAll' })).toBe(1);
    expect(holding('made')).toBe(3);
    expect(await ledgerByStatus(env, dead)).toEqual([{ status: 'succeeded', n: 3 }]);
    // The ended run's figures say what became of them, and who found out.
    expect(await figures()).toMatchObject({
      written: 3,
      failed: 0,
      outcomeUnknown: 0,
      outcomesResolvedBy: next,
    });
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
    expect(await ledgerByStatus(env, dead)).toEqual([{ status: 'failed', n: 2 }]);
    // The run ended without reporting (its summary holds its plan's figures alone): its figures
    // are counted from its ledger all the same, with who resolved them.
    expect(await runFigures(env, dead, 'Lead-insert')).toMatchObject({
      written: 0,
      failed: 2,
      outcomeUnknown: 0,
      outcomesResolvedBy: next,
    });
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

  it('deletes what it resolved in a run whose details were pruned already, as the prune would have', async () => {
    await source('pruned', 2);
    const deps = env.deps({ writeback: [insert] });
    const dead = await lostAndEnded(deps);
    // The run's details are pruned while two of its rows are still `sent` (kept: later plans read them).
    const pruned = await pruneRunDetails(env.pool, 'wb-test', 0, new Date(Date.now() + 1000));
    expect(pruned.runs).toBeGreaterThanOrEqual(1);
    expect(await ledgerByStatus(env, dead)).toEqual([{ status: 'sent', n: 2 }]);

    const next = await env.newRun();
    const result = await runWriteback(deps, { runId: next, task: 'Lead-insert' });

    expect(result.plan).toMatchObject({ changed: 2 });
    expect(holding('pruned')).toBe(2);
    // Released, and the release's ledger rows and NOT_INSERTED errors gone with the run's other details.
    expect(await ledgerByStatus(env, dead)).toEqual([]);
    expect(await errorsOf(env, dead)).toEqual([]);
  });

  /**
   * An insert run that ended with 1,200 records planned: the first call (1,000) answered and
   * recorded, the second (200) sent and lost; reported, and past Salesforce's call time limit.
   */
  async function partlyWrittenRun(prefix: string): Promise<{
    deps: CoreDeps;
    dead: string;
    figures: () => Promise<Record<string, unknown>>;
  }> {
    // 1,200 records: the first call (1,000) is answered and recorded, the second (200) is sent and
    // lost. The run ends, and its report counts what its ledger holds. (Scores below 100: the
    // field takes 3 digits.)
    await env.pool.query('DELETE FROM lead_src');
    await env.pool.query(
      `INSERT INTO lead_src SELECT $1 || '-' || i, 'Ended ' || i, 'Initech', i % 100 FROM generate_series(1, 1200) AS i`,
      [prefix],
    );
    const deps = env.deps({ writeback: [insert] });
    const dead = await env.newRun();
    await planWriteback(deps, { runId: dead, task: 'Lead-insert' });
    let writes = 0;
    const firstWriteOnly = Object.create(env.connector, {
      request: {
        value: async (operation: string, method: 'GET' | 'POST', path: string, body?: unknown) => {
          if (method === 'GET' || writes++ === 0) return env.connector.request(operation, method, path, body);
          throw new TransientError(
            `${operation}: the request timed out; whether Salesforce applied it is unknown`,
          );
        },
      },
    }) as CoreDeps['salesforce'];
    await expect(
      pushWriteback({ ...deps, salesforce: firstWriteOnly }, { runId: dead, task: 'Lead-insert' }),
    ).rejects.toThrow(/timed out/);
    await reportRun(deps, { runId: dead, error: { Error: 'States.Timeout', Cause: 'Task timed out' } });
    await outlastCallTimeLimit(env, dead);
    const figures = () => runFigures(env, dead, 'Lead-insert');
    expect(await figures()).toMatchObject({ changed: 1200, written: 1000, failed: 0, outcomeUnknown: 200 });
    expect(holding(prefix)).toBe(1000);
    return { deps, dead, figures };
  }

  it("keeps a pruned run's figures whole when it resolves the records it left sent: what it wrote stays written", async () => {
    const { deps, dead, figures } = await partlyWrittenRun('partly');

    // Its details are pruned: the ledger keeps the 200 rows left `sent` only.
    await pruneRunDetails(env.pool, 'wb-test', 0, new Date(Date.now() + 1000));
    expect(await ledgerByStatus(env, dead)).toEqual([{ status: 'sent', n: 200 }]);
    // Half of them sent just now (as by a retry): left for a later plan.
    await env.pool.query(
      `UPDATE roundtrip.writeback_plans SET updated_at = now()
        WHERE run_id = $1 AND seq IN (SELECT seq FROM roundtrip.writeback_plans WHERE run_id = $1 ORDER BY seq LIMIT 100)`,
      [dead],
    );

    // The next plan finds the other 100 never created (released: failed in that run) and inserts them.
    const next = await env.newRun();
    const result = await runWriteback(deps, { runId: next, task: 'Lead-insert' });
    expect(result.plan).toMatchObject({ changed: 100, heldBack: 100 });
    expect(holding('partly')).toBe(1100);
    // The 1,000 it wrote are still written, 100 failed, 100 still unknown:
    // changed = written + failed + heldBackAtPush + outcomeUnknown.
    expect(await figures()).toMatchObject({
      changed: 1200,
      written: 1000,
      failed: 100,
      heldBackAtPush: 0,
      outcomeUnknown: 100,
      outcomesResolvedBy: next,
    });
    expect(await ledgerByStatus(env, dead)).toEqual([{ status: 'sent', n: 100 }]);

    // A later plan resolves the rest: added once, the first 100 not counted again.
    await outlastCallTimeLimit(env, dead);
    const last = await env.newRun();
    expect((await runWriteback(deps, { runId: last, task: 'Lead-insert' })).plan).toMatchObject({
      changed: 100,
      heldBack: 0,
    });
    expect(holding('partly')).toBe(1200);
    expect(await figures()).toMatchObject({
      changed: 1200,
      written: 1000,
      failed: 200,
      heldBackAtPush: 0,
      outcomeUnknown: 0,
      outcomesResolvedBy: last,
    });
    expect(await ledgerByStatus(env, dead)).toEqual([]);
  });

  it('counts, as it prunes a run, what a later plan resolved and had not counted yet', async () => {
    const { dead, figures } = await partlyWrittenRun('pruning');
    // A later plan's resolution committed (100 of the 200 found never created: released, failed in
    // that run), and its recount of the run not yet, when a report prunes the run.
    await env.pool.query(
      `UPDATE roundtrip.writeback_plans SET status = 'failed', updated_at = now()
        WHERE run_id = $1 AND seq IN (SELECT seq FROM roundtrip.writeback_plans WHERE run_id = $1 AND status = 'sent' ORDER BY seq LIMIT 100)`,
      [dead],
    );
    await pruneRunDetails(env.pool, 'wb-test', 0, new Date(Date.now() + 1000));
    // Counted before they were deleted: changed = written + failed + heldBackAtPush + outcomeUnknown.
    expect(await figures()).toMatchObject({
      changed: 1200,
      written: 1000,
      failed: 100,
      heldBackAtPush: 0,
      outcomeUnknown: 100,
    });
    expect(await ledgerByStatus(env, dead)).toEqual([{ status: 'sent', n: 100 }]);
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
    expect(running.plan).toMatchObject({ rejected: 0, heldBack: 2, changed: 0 });
    expect(env.sf.calls.count({ operation: 'queryAll' })).toBe(0);
    expect((await errorsOf(env, next)).map((e) => e.code)).toEqual([
      'INSERT_OUTCOME_UNKNOWN',
      'INSERT_OUTCOME_UNKNOWN',
    ]);
    expect((await errorsOf(env, next))[0]?.message).toMatch(
      new RegExp(
        `sent for insert by run ${dead}, which is still recorded as running \\(roundtrip status\\), and its result is not recorded yet: not inserted by this run\\. ` +
          `Once that run has ended \\(if its process is gone, roundtrip status --end-run ${dead} ends it\\) and 11 minutes have passed since the send, the next plan looks the key up by External_Id__c`,
      ),
    );

    // Ended, but sent just now (a retry marked them again): not touched either.
    await endRun(dead);
    await env.pool.query(`UPDATE roundtrip.writeback_plans SET updated_at = now() WHERE run_id = $1`, [dead]);
    env.sf.calls.clear();
    const endedRun = await env.newRun();
    const ended = await runWriteback(deps, { runId: endedRun, task: 'Lead-insert' });
    expect(ended.plan).toMatchObject({ rejected: 0, heldBack: 2, changed: 0 });
    expect(env.sf.calls.count()).toBe(0);
    // The run has ended: the message says only the time left, not to wait for the run.
    const message = (await errorsOf(env, endedRun))[0]?.message;
    expect(message).toMatch(
      new RegExp(
        `sent for insert by run ${dead}, which ended without recording its result: not inserted by this run, as Salesforce may still be creating the record until 11 minutes after the send\\. ` +
          `The first plan from \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC on \\((11|10) minutes from this plan\\) looks the key up by External_Id__c`,
      ),
    );
    expect(message).not.toContain('Once that run has ended');
    expect(await ledgerByStatus(env, dead)).toEqual([{ status: 'sent', n: 2 }]);
    expect(holding('young')).toBe(0);
  });

  it('counts the keys it holds back apart from rejected rows: they do not fail the run on maxRejectRate, rows the source got wrong do', async () => {
    // Run A sends held-1 and held-2 and never hears back; it is still running, so later plans
    // hold the keys back (INSERT_OUTCOME_UNKNOWN) whatever the source says of them.
    await source('held', 2);
    const deps = env.deps({ writeback: [insert] });
    const a = await env.newRun();
    await planWriteback(deps, { runId: a, task: 'Lead-insert' });
    await pushLost(deps, a);
    const figures = (runId: string) => runFigures(env, runId, 'Lead-insert');

    // Two of ten source rows held back (20 %, over the default maxRejectRate of 5 %), none wrong.
    await source('held', 10);
    const b = await env.newRun();
    const planned = await runWriteback(deps, { runId: b, task: 'Lead-insert' });
    const reported = await reportRun(deps, { runId: b });

    expect(planned.plan).toMatchObject({
      sourceRows: 10,
      rejected: 0,
      heldBack: 2,
      unchanged: 0,
      changed: 8,
    });
    expect(reported).toMatchObject({
      status: 'succeeded',
      writeback: { 'Lead-insert': { sourceRows: 10, rejected: 0, heldBack: 2, rejectRateExceeded: false } },
    });
    expect(reported.reason).toBeUndefined();
    expect(await figures(b)).toMatchObject({
      sourceRows: 10,
      rejected: 0,
      heldBack: 2,
      unchanged: 0,
      changed: 8,
    });
    // Listed as before: stage plan, with their code and message.
    const held = await env.pool.query(
      `SELECT key, stage, code FROM roundtrip.writeback_errors WHERE run_id = $1 ORDER BY key`,
      [b],
    );
    expect(held.rows).toEqual([
      { key: 'held-1', stage: 'plan', code: 'INSERT_OUTCOME_UNKNOWN' },
      { key: 'held-2', stage: 'plan', code: 'INSERT_OUTCOME_UNKNOWN' },
    ]);
    expect(holding('held')).toBe(8);

    // One row without a key besides: 1 of the 3 rows whose key is not inserted yet rejected
    // (33.33 %) fails the run; the held-back keys are not in that share (but among the 3), the 8
    // inserted before are in neither.
    await env.pool.query(`INSERT INTO lead_src VALUES (NULL, 'No key', 'Initech', 1)`);
    const c = await env.newRun();
    const wrong = await runWriteback(deps, { runId: c, task: 'Lead-insert' });
    const failed = await reportRun(deps, { runId: c });

    expect(wrong.plan).toMatchObject({ sourceRows: 11, rejected: 1, heldBack: 2, unchanged: 8, changed: 0 });
    expect(failed).toMatchObject({
      status: 'failed',
      reason:
        'write-back Lead-insert: 1 of 3 source rows with a key that has no record yet were rejected before sending (33.33 %; the 8 rows whose key has a record already, inserted before or found in the extracted copy, are not counted), more than maxRejectRate 5.00 % (writeback[0].maxRejectRate)',
      writeback: { 'Lead-insert': { rejected: 1, heldBack: 2, rejectRateExceeded: true } },
    });
    for (const run of [b, c]) {
      const f = await figures(run);
      expect(Number(f.rejected) + Number(f.heldBack) + Number(f.unchanged) + Number(f.changed)).toBe(
        f.sourceRows,
      );
    }

    // A plan stored before heldBack was counted apart (its held-back rows in rejected) still reads.
    await env.pool.query(
      `UPDATE roundtrip.runs SET summary = summary #- '{writeback,Lead-insert,heldBack}' WHERE run_id = $1`,
      [c],
    );
    expect(await reportRun(deps, { runId: c })).toMatchObject({
      writeback: { 'Lead-insert': { rejected: 1, heldBack: 0 } },
    });
    await env.pool.query(`DELETE FROM lead_src WHERE ext IS NULL`);
    await endRun(a);
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
    expect(pushedB).toMatchObject({ succeeded: 0, failed: 0, heldBack: 1 });
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
  it('leaves them alone while a push of the task is live (a run marked ended whose Lambda still pushes)', async () => {
    await source('live', 1);
    const deps = env.deps({ writeback: [insert] });
    const dead = await lostAndEnded(deps);
    // The "ended" run's retried push is still running: it holds the task's lock, and is looking
    // its record up.
    let reached!: () => void;
    const lookingUp = new Promise<void>((resolve) => (reached = resolve));
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const slow = Object.create(env.connector, {
      request: {
        value: async (operation: string, method: 'GET' | 'POST', path: string, body?: unknown) => {
          if (operation === 'query') {
            reached();
            await held;
          }
          return env.connector.request(operation, method, path, body);
        },
      },
    }) as typeof env.connector;
    const live = pushWriteback({ ...deps, salesforce: slow }, { runId: dead, task: 'Lead-insert' });
    await lookingUp;

    env.sf.calls.clear();
    const next = await env.newRun();
    const planned = await planWriteback(deps, { runId: next, task: 'Lead-insert' });
    const lookups = env.sf.calls.count({ operation: 'queryAll' });
    release();
    await live;

    // Not looked up, not released: refused this time; the live push created and recorded it.
    expect(planned).toMatchObject({ rejected: 0, heldBack: 1, changed: 0 });
    expect(lookups).toBe(0);
    expect(await errorsOf(env, dead)).toEqual([]);
    expect(await ledgerByStatus(env, dead)).toEqual([{ status: 'succeeded', n: 1 }]);
    expect(holding('live')).toBe(1);
  });

  it('judges only the rows as it read them: a row sent again during the look-up is left alone', async () => {
    await source('reread', 2);
    const deps = env.deps({ writeback: [insert] });
    const dead = await lostAndEnded(deps);
    // While the look-up is on its way, reread-2 is marked sent again (as by a live attempt).
    const marking = Object.create(env.connector, {
      request: {
        value: async (operation: string, method: 'GET' | 'POST', path: string, body?: unknown) => {
          const answer = await env.connector.request(operation, method, path, body);
          if (operation === 'query') {
            await env.pool.query(
              `UPDATE roundtrip.writeback_plans SET updated_at = now() WHERE run_id = $1 AND key = 'reread-2'`,
              [dead],
            );
          }
          return answer;
        },
      },
    }) as typeof env.connector;

    await planWriteback({ ...deps, salesforce: marking }, { runId: await env.newRun(), task: 'Lead-insert' });

    const { rows } = await env.pool.query(
      `SELECT key, status FROM roundtrip.writeback_plans WHERE run_id = $1 ORDER BY key`,
      [dead],
    );
    expect(rows).toEqual([
      { key: 'reread-1', status: 'failed' },
      { key: 'reread-2', status: 'sent' },
    ]);
  });

  it('looks up long keys in queries whose URL Salesforce takes (at most 8,000 characters of query)', async () => {
    await env.pool.query('DELETE FROM lead_src');
    await env.pool.query(
      `INSERT INTO lead_src SELECT 'https://shop.example.com/customers/eu/' || lpad(i::text, 26, '0'), 'Long', 'Initech', i
         FROM generate_series(1, 200) AS i`,
    );
    const deps = env.deps({ writeback: [insert] });
    const dead = await lostAndEnded(deps);

    env.sf.calls.clear();
    const result = await runWriteback(deps, { runId: await env.newRun(), task: 'Lead-insert' });

    expect(result.plan).toMatchObject({ rejected: 0, changed: 200 });
    // 200 keys in one query would make a URL over the 16 KB Salesforce (and Node, here) takes.
    expect(env.sf.calls.count({ operation: 'queryAll' })).toBeGreaterThan(1);
    expect(await ledgerByStatus(env, dead)).toEqual([{ status: 'failed', n: 200 }]);
    expect(
      [...env.sf.store.all('Lead')].filter((r) => String(r.External_Id__c).startsWith('https://')),
    ).toHaveLength(200);
  });

  it('changes nothing on a dry run', async () => {
    await source('dry', 1);
    const deps = env.deps({ writeback: [insert] });
    const dead = await lostAndEnded(deps);
    env.sf.calls.clear();

    const dry = await planWriteback(deps, { runId: await env.newRun(), task: 'Lead-insert', dryRun: true });

    expect(dry).toMatchObject({ status: 'dry-run', rejected: 0, heldBack: 1, changed: 0 });
    expect(env.sf.calls.count({ operation: 'queryAll' })).toBe(0);
    expect(await ledgerByStatus(env, dead)).toEqual([{ status: 'sent', n: 1 }]);
    // Leave it resolved for the tests after this one.
    await runWriteback(deps, { runId: await env.newRun(), task: 'Lead-insert' });
    expect(await ledgerByStatus(env, dead)).toEqual([{ status: 'failed', n: 1 }]);
  });
  /** A connector through which every Bulk upload fails: the job stays Open, recorded Open. */
  const noUpload = (): typeof env.connector =>
    Object.create(env.connector, {
      putStream: {
        value: (operation: string) =>
          Promise.reject(new TransientError(`${operation}: Salesforce is unreachable`)),
      },
    }) as typeof env.connector;
  /** A connector through which no close reaches Salesforce: the job stays Open, recorded Uploaded. */
  const noClose = (): typeof env.connector =>
    Object.create(env.connector, {
      request: {
        value: (operation: string, method: 'PATCH', path: string, body?: unknown) =>
          method === 'PATCH' && path.startsWith('/jobs/ingest/')
            ? Promise.reject(new TransientError(`${operation}: Salesforce is unreachable`))
            : env.connector.request(operation, method, path, body),
      },
    }) as typeof env.connector;

  describe('through Bulk jobs', () => {
    const bulkInsert = { ...insert, bulkThreshold: 5 };

    /**
     * Plans and pushes the source through Bulk jobs with `deps` (the job runs to its end in
     * Salesforce, the keys `refused` refused with a row lock), and ends the run without collecting
     * it; days later Salesforce has deleted the job (an Id it does not know answers 404
     * NOT_FOUND), and the records were sent longer ago than any call of theirs can run.
     */
    async function bulkSentAndForgotten(deps: CoreDeps, refused: readonly string[]): Promise<string> {
      const dead = await env.newRun();
      await planWriteback(deps, { runId: dead, task: 'Lead-insert' });
      if (refused.length > 0) env.sf.faults.set({ lockRowKeys: refused });
      try {
        expect(await pushWriteback(deps, { runId: dead, task: 'Lead-insert' })).toMatchObject({
          status: 'bulk-pending',
        });
        const { rows } = await env.pool.query<{ job_id: string }>(
          `SELECT job_id FROM roundtrip.writeback_jobs WHERE run_id = $1`,
          [dead],
        );
        const jobId = rows[0]?.job_id ?? '';
        while (!isFinalIngestState((await getIngestJob(env.connector, jobId)).state)) {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      } finally {
        env.sf.faults.clear();
      }
      await reportRun(deps, { runId: dead, error: { Error: 'States.Timeout', Cause: 'Task timed out' } });
      await env.pool.query(`UPDATE roundtrip.writeback_jobs SET job_id = $2 WHERE run_id = $1`, [dead, GONE]);
      await env.pool.query(`UPDATE roundtrip.writeback_plans SET job_id = $2 WHERE run_id = $1`, [
        dead,
        GONE,
      ]);
      await outlastCallTimeLimit(env, dead);
      return dead;
    }
    const GONE = '750000000000999AAA';

    it('looks the keys of a job Salesforce no longer knows up by external ID: records those it created, inserts the others once', async () => {
      await source('forgot', 6);
      const deps = env.deps({ writeback: [bulkInsert] });
      // The job created forgot-1 … forgot-5 and refused forgot-6 (a row lock); its results are
      // gone with it.
      const dead = await bulkSentAndForgotten(deps, ['forgot-6']);
      expect(holding('forgot')).toBe(5);

      env.sf.calls.clear();
      const next = await env.newRun();
      const planned = await planWriteback(deps, { runId: next, task: 'Lead-insert' });

      // One question about the job (NOT_FOUND: recorded so), one look-up of its six keys.
      expect(env.sf.calls.count()).toBe(2);
      expect(env.sf.calls.count({ operation: 'bulk.ingest.poll' })).toBe(1);
      expect(env.sf.calls.count({ operation: 'queryAll' })).toBe(1);
      expect(planned).toMatchObject({ sourceRows: 6, rejected: 0, heldBack: 0, unchanged: 5, changed: 1 });
      const { rows: jobs } = await env.pool.query(
        `SELECT state, collected_at IS NOT NULL AS done FROM roundtrip.writeback_jobs WHERE run_id = $1`,
        [dead],
      );
      expect(jobs).toEqual([{ state: 'NotFound', done: true }]);
      // Recorded in the run that sent them: the five created, with their Ids; forgot-6 released.
      const { rows: ledgerRows } = await env.pool.query<{
        key: string;
        status: string;
        salesforce_id: string | null;
      }>(`SELECT key, status, salesforce_id FROM roundtrip.writeback_plans WHERE run_id = $1 ORDER BY key`, [
        dead,
      ]);
      const idOf = (key: string): unknown =>
        [...env.sf.store.all('Lead')].find((r) => r.External_Id__c === key)?.Id;
      expect(ledgerRows).toEqual([
        ...[1, 2, 3, 4, 5].map((i) => ({
          key: `forgot-${i}`,
          status: 'succeeded',
          salesforce_id: idOf(`forgot-${i}`),
        })),
        { key: 'forgot-6', status: 'failed', salesforce_id: null },
      ]);
      const { rows: synced } = await env.pool.query<{ key: string; salesforce_id: string }>(
        `SELECT key, salesforce_id FROM roundtrip.sync_state WHERE task = 'Lead-insert' AND key LIKE 'forgot-%' ORDER BY key`,
      );
      expect(synced).toEqual(
        [1, 2, 3, 4, 5].map((i) => ({ key: `forgot-${i}`, salesforce_id: idOf(`forgot-${i}`) })),
      );
      const released = await errorsOf(env, dead);
      expect(released.map((e) => [e.key, e.code])).toEqual([['forgot-6', 'NOT_INSERTED']]);
      expect(released[0]?.message).toMatch(
        new RegExp(
          `^sent for insert by this run, whose result was never recorded; run ${next} looked the key up`,
        ),
      );
      expect(await runFigures(env, dead, 'Lead-insert')).toMatchObject({
        written: 5,
        failed: 1,
        outcomeUnknown: 0,
        outcomesResolvedBy: next,
      });

      // That run's push inserts forgot-6, and only it; a later run sends nothing.
      env.sf.calls.clear();
      expect(await pushWriteback(deps, { runId: next, task: 'Lead-insert' })).toMatchObject({ succeeded: 1 });
      expect(env.sf.calls.writes().map((w) => w.records)).toEqual([1]);
      env.sf.calls.clear();
      const later = await runWriteback(deps, { runId: await env.newRun(), task: 'Lead-insert' });
      expect(later.plan).toMatchObject({ heldBack: 0, changed: 0, unchanged: 6 });
      expect(env.sf.calls.count()).toBe(0);
      for (let i = 1; i <= 6; i += 1) {
        expect([...env.sf.store.all('Lead')].filter((r) => r.External_Id__c === `forgot-${i}`)).toHaveLength(
          1,
        );
      }
    });

    it('holds the keys of a job Salesforce no longer knows back while Salesforce refuses their look-up, each message quoting the refusal and the command that records it by hand', async () => {
      await source('refusal', 6);
      const deps = env.deps({ writeback: [bulkInsert] });
      const dead = await bulkSentAndForgotten(deps, []);
      // Salesforce no longer lets the integration user read the key field (the connector's
      // describe, cached before, still has it): the look-up is refused with INVALID_FIELD.
      const describe = env.sf.store.describe('Lead');
      const at = describe?.fields.findIndex((f) => f.name === 'External_Id__c') ?? -1;
      if (!describe || at < 0) throw new Error('the emulator has no Lead.External_Id__c');
      const [field] = describe.fields.splice(at, 1);
      let held: string;
      try {
        held = await env.newRun();
        expect(await planWriteback(deps, { runId: held, task: 'Lead-insert' })).toMatchObject({
          heldBack: 6,
          changed: 0,
        });
      } finally {
        if (field) describe.fields.splice(at, 0, field);
      }
      const errors = await errorsOf(env, held);
      expect(errors.map((e) => e.code)).toEqual(Array(6).fill('INSERT_OUTCOME_UNKNOWN'));
      expect(errors[0]?.message).toMatch(
        new RegExp(
          `^key refusal-1 was sent for insert by run ${dead} in Bulk job ${GONE}, which Salesforce no longer answers for, whose result was never recorded: not inserted by this run\\. This plan looked the key up by External_Id__c and Salesforce refused the look-up \\(.*INVALID_FIELD.*No such column 'External_Id__c'.*\\): the key stays held back while it refuses\\. If it keeps refusing, find the record in Salesforce, then record what you found with roundtrip resolve --task Lead-insert --key refusal-1 --without-look-up --inserted <the record's Id> \\(or --not-inserted if there is none, or you delete it there\\)$`,
        ),
      );
      // Once Salesforce answers the look-up again, the next plan records the six: none is sent.
      const next = await env.newRun();
      expect(await planWriteback(deps, { runId: next, task: 'Lead-insert' })).toMatchObject({
        heldBack: 0,
        changed: 0,
        unchanged: 6,
      });
    });

    it('without an external-ID key, asks about a job Salesforce no longer knows once, then holds its keys back to be recorded with roundtrip resolve', async () => {
      await source('unkeyed', 6);
      const dead = await bulkSentAndForgotten(env.deps({ writeback: [bulkInsert] }), []);
      // The task has lost its key field since (its records stay keyed by its keyColumn).
      const { key: _key, ...keyless } = bulkInsert;
      const deps = env.deps({ writeback: [keyless] });

      const polls: number[] = [];
      const lookups: number[] = [];
      let lastRun = '';
      for (let i = 0; i < 2; i += 1) {
        env.sf.calls.clear();
        lastRun = await env.newRun();
        expect(await planWriteback(deps, { runId: lastRun, task: 'Lead-insert' })).toMatchObject({
          rejected: 0,
          heldBack: 6,
          changed: 0,
        });
        polls.push(env.sf.calls.count({ operation: 'bulk.ingest.poll' }));
        lookups.push(env.sf.calls.count({ operation: 'queryAll' }));
      }

      expect(polls).toEqual([1, 0]);
      expect(lookups).toEqual([0, 0]);
      const { rows } = await env.pool.query(
        `SELECT state, collected_at IS NOT NULL AS done FROM roundtrip.writeback_jobs WHERE run_id = $1`,
        [dead],
      );
      expect(rows).toEqual([{ state: 'NotFound', done: true }]);
      expect(await ledgerByStatus(env, dead)).toEqual([{ status: 'sent', n: 6 }]);
      expect((await errorsOf(env, lastRun))[0]?.message).toMatch(
        new RegExp(
          `^key unkeyed-1 was sent for insert by run ${dead} in Bulk job ${GONE}, which Salesforce no longer answers for, and without an external-ID key it cannot be looked up: find the record in Salesforce, then record what you found with roundtrip resolve --task Lead-insert --key unkeyed-1 --inserted <the record's Id> \\(or --not-inserted`,
        ),
      );
      // Out of the way of the tests after this one (their keyed plans would look these keys up).
      await env.pool.query(`UPDATE roundtrip.writeback_plans SET status = 'failed' WHERE run_id = $1`, [
        dead,
      ]);
    });

    it('closes a job an ended run uploaded and never closed, so that its records are written once', async () => {
      await source('unclosed', 6);
      const deps = env.deps({ writeback: [bulkInsert] });
      const dead = await env.newRun();
      await planWriteback(deps, { runId: dead, task: 'Lead-insert' });
      // The whole CSV is uploaded (the job recorded Uploaded, its records `sent`), and no close
      // ever reaches Salesforce before the run's retries are spent: the run ends, its job Open.
      await expect(
        pushWriteback({ ...deps, salesforce: noClose() }, { runId: dead, task: 'Lead-insert' }),
      ).rejects.toThrow(/unreachable/);
      await reportRun(deps, { runId: dead, error: { Error: 'TransientError', Cause: 'retries spent' } });
      expect(await ledgerByStatus(env, dead)).toEqual([{ status: 'sent', n: 6 }]);

      // The next plan closes the job (its keys refused meanwhile: their outcome is not known yet);
      // a plan after the job is finished collects it. Left Open, the job never ran, and its keys
      // were refused by every run for ever: six records never written.
      await planWriteback(deps, { runId: await env.newRun(), task: 'Lead-insert' });
      env.sf.calls.clear();
      const later = await runWriteback(deps, { runId: await env.newRun(), task: 'Lead-insert' });

      expect(later.plan).toMatchObject({ sourceRows: 6, rejected: 0, changed: 0, unchanged: 6 });
      expect(env.sf.calls.count({ write: true })).toBe(0);
      expect(await ledgerByStatus(env, dead)).toEqual([{ status: 'succeeded', n: 6 }]);
      expect(holding('unclosed')).toBe(6);
      // Closed, never aborted (aborting an insert job would leave its keys' fate to chance).
      const { rows: jobs } = await env.pool.query(
        `SELECT state FROM roundtrip.writeback_jobs WHERE run_id = $1`,
        [dead],
      );
      expect(jobs).toEqual([{ state: 'JobComplete' }]);
    });

    it('aborts a job an ended run created and never uploaded to, and inserts its keys once', async () => {
      await source('unloaded', 6);
      const deps = env.deps({ writeback: [bulkInsert] });
      const dead = await env.newRun();
      await planWriteback(deps, { runId: dead, task: 'Lead-insert' });
      // The job is created (recorded Open) and no upload reaches Salesforce before the run ends:
      // none of its records is in the ledger, and Salesforce never runs a job left Open.
      await expect(
        pushWriteback({ ...deps, salesforce: noUpload() }, { runId: dead, task: 'Lead-insert' }),
      ).rejects.toThrow(/unreachable/);
      await reportRun(deps, { runId: dead, error: { Error: 'TransientError', Cause: 'retries spent' } });
      const { rows: before } = await env.pool.query<{ job_id: string; state: string }>(
        `SELECT job_id, state FROM roundtrip.writeback_jobs WHERE run_id = $1`,
        [dead],
      );
      expect(before.map((j) => j.state)).toEqual(['Open']);
      const jobId = before[0]?.job_id ?? '';

      const next = await runWriteback(deps, { runId: await env.newRun(), task: 'Lead-insert' });

      expect(next.plan).toMatchObject({ sourceRows: 6, rejected: 0, changed: 6 });
      expect(next.result).toMatchObject({ succeeded: 6, failed: 0 });
      expect(holding('unloaded')).toBe(6);
      // The job the ended run left is aborted in Salesforce (it would have stayed in the org's job
      // list, Open, until Salesforce deleted it), and recorded so: never asked about again.
      const list = await env.connector.request<{ records: { id: string; state: string }[] }>(
        'Bulk ingest job list',
        'GET',
        '/jobs/ingest',
      );
      expect(list.records.find((j) => j.id === jobId)?.state).toBe('Aborted');
      const { rows: after } = await env.pool.query(
        `SELECT state FROM roundtrip.writeback_jobs WHERE run_id = $1`,
        [dead],
      );
      expect(after).toEqual([{ state: 'Aborted' }]);
      env.sf.calls.clear();
      const third = await runWriteback(deps, { runId: await env.newRun(), task: 'Lead-insert' });
      expect(third.plan).toMatchObject({ changed: 0 });
      expect(env.sf.calls.count({ operation: 'bulk.ingest.poll' })).toBe(0);
    });

    it('collects a job an ended run sent with other fields than the task maps now', async () => {
      await source('remapped', 6);
      const dead = await env.newRun();
      const before = env.deps({ writeback: [bulkInsert] });
      await planWriteback(before, { runId: dead, task: 'Lead-insert' });
      expect(await pushWriteback(before, { runId: dead, task: 'Lead-insert' })).toMatchObject({
        status: 'bulk-pending',
      });
      await endRun(dead);

      // The config gains a field (and its key column moves to the end) before the next run.
      const { key: _key, fields, ...rest } = bulkInsert;
      const remapped = {
        ...rest,
        key: 'External_Id__c',
        fields: { Title: 'company', ...fields },
      };
      const after = env.deps({ writeback: [remapped] });
      const next = await env.newRun();
      expect(await planWriteback(after, { runId: next, task: 'Lead-insert' })).toMatchObject({
        changed: 0,
        rejected: 0,
      });
      expect(await ledgerByStatus(env, dead)).toEqual([{ status: 'succeeded', n: 6 }]);
      expect(holding('remapped')).toBe(6);
    });

    it('looks up a record its row-lock retry pass sent by Collections, whose answer was lost', async () => {
      await source('relock', 6);
      const deps = env.deps({ writeback: [bulkInsert] });
      const dead = await env.newRun();
      await planWriteback(deps, { runId: dead, task: 'Lead-insert' });
      // relock-6 is refused UNABLE_TO_LOCK_ROW by the job; its retry call then never answers.
      env.sf.faults.set({ lockRowKeys: ['relock-6'] });
      const pushed = await pushWriteback(deps, { runId: dead, task: 'Lead-insert' });
      expect(pushed).toMatchObject({ status: 'bulk-pending' });
      const lost = { ...deps, salesforce: givingUpOnWrites(env.connector).connector };
      let failure: unknown;
      for (let out = pushed, i = 0; failure === undefined && i < 200; i += 1) {
        const next = await collectWriteback(lost, out as Parameters<typeof collectWriteback>[1]).catch(
          (e: unknown) => {
            failure = e;
            return out;
          },
        );
        out = next;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      env.sf.faults.clear();
      expect(String(failure)).toMatch(/timed out/);
      const { rows: left } = await env.pool.query(
        `SELECT key, status, attempts, job_id IS NOT NULL AS in_job FROM roundtrip.writeback_plans WHERE run_id = $1 AND status <> 'succeeded'`,
        [dead],
      );
      expect(left).toEqual([{ key: 'relock-6', status: 'sent', attempts: 1, in_job: true }]);
      await endRun(dead);
      await outlastCallTimeLimit(env, dead);

      env.sf.calls.clear();
      const result = await runWriteback(deps, { runId: await env.newRun(), task: 'Lead-insert' });

      expect(env.sf.calls.count({ operation: 'queryAll' })).toBe(1);
      expect(result.plan).toMatchObject({ rejected: 0, unchanged: 5, changed: 1 });
      expect(await ledgerByStatus(env, dead)).toEqual([
        { status: 'failed', n: 1 },
        { status: 'succeeded', n: 5 },
      ]);
      expect(holding('relock')).toBe(6);
    });
  });

  describe('update and upsert Bulk jobs left Open in Salesforce', () => {
    const bulkUpsert = { ...LEAD_SRC_UPSERT, bulkThreshold: 5 };
    const bulkUpdate = { ...SCORE_UPDATE, bulkThreshold: 5 };

    /** Salesforce's list of ingest jobs (`GET /jobs/ingest`), by id: state and records processed. */
    async function jobsInSalesforce(): Promise<Map<string, { state: string; processed: number }>> {
      const list = await env.connector.request<{
        records: { id: string; state: string; numberRecordsProcessed: number }[];
      }>('Bulk ingest job list', 'GET', '/jobs/ingest');
      return new Map(
        list.records.map((j) => [j.id, { state: j.state, processed: j.numberRecordsProcessed }]),
      );
    }

    async function jobsOf(runId: string): Promise<{ job_id: string; state: string; collected: boolean }[]> {
      const { rows } = await env.pool.query(
        `SELECT job_id, state, collected_at IS NOT NULL AS collected FROM roundtrip.writeback_jobs WHERE run_id = $1 ORDER BY created_at`,
        [runId],
      );
      return rows;
    }

    /** Six leads, and a source updating their scores (`score` + i) by Id in lead_scores. */
    async function scoresSource(prefix: string, score: number): Promise<string[]> {
      const ids = [...env.sf.store.all('Lead')]
        .filter((r) => String(r.External_Id__c).startsWith(`${prefix}-`))
        .map((r) => r.Id as string);
      const seeded =
        ids.length > 0
          ? ids
          : env.sf.store.seed(
              'Lead',
              Array.from({ length: 6 }, (_, i) => ({
                LastName: `Scored ${i}`,
                Company: 'Initech',
                External_Id__c: `${prefix}-${i + 1}`,
              })),
            );
      await env.pool.query('DROP TABLE IF EXISTS lead_scores');
      await env.pool.query(`CREATE TABLE lead_scores ("Id" text, score integer)`);
      await env.pool.query(
        `INSERT INTO lead_scores SELECT id, $2 + i FROM unnest($1::text[]) WITH ORDINALITY AS u(id, i)`,
        [seeded, score],
      );
      return seeded;
    }

    /** The scores Salesforce holds for the leads keyed `${prefix}-…`, in key order. */
    const scoresOf = (prefix: string): unknown[] =>
      [...env.sf.store.all('Lead')]
        .filter((r) => String(r.External_Id__c).startsWith(`${prefix}-`))
        .sort((a, b) =>
          String(a.External_Id__c).localeCompare(String(b.External_Id__c), 'en', { numeric: true }),
        )
        .map((r) => r.LeadScore__c);

    const modes = [
      {
        mode: 'upsert',
        task: 'Lead-upsert',
        config: bulkUpsert,
        prepare: async (prefix: string, score: number) => {
          await env.pool.query('DELETE FROM lead_src');
          await env.pool.query(
            `INSERT INTO lead_src SELECT $1 || '-' || i, 'Open ' || i, 'Initech', $2 + i FROM generate_series(1, 6) AS i`,
            [prefix, score],
          );
        },
      },
      {
        mode: 'update',
        task: 'Lead-update',
        config: bulkUpdate,
        prepare: async (prefix: string, score: number) => {
          await scoresSource(prefix, score);
        },
      },
    ] as const;

    it.each(modes)(
      '$mode: aborts the jobs ended runs left Open, uploaded or not, and writes the current values once',
      async ({ task, config, prepare }) => {
        const prefix = `open-${task}`;
        await prepare(prefix, 0);
        const deps = env.deps({ writeback: [config] });
        // Run A creates its job and never uploads to it; run B uploads its job and never closes it.
        const a = await env.newRun();
        await planWriteback(deps, { runId: a, task });
        await expect(pushWriteback({ ...deps, salesforce: noUpload() }, { runId: a, task })).rejects.toThrow(
          /unreachable/,
        );
        const b = await env.newRun();
        // A is still running: its job is not touched by B's plan.
        await planWriteback(deps, { runId: b, task });
        await expect(pushWriteback({ ...deps, salesforce: noClose() }, { runId: b, task })).rejects.toThrow(
          /unreachable/,
        );
        const [jobA] = await jobsOf(a);
        const [jobB] = await jobsOf(b);
        expect([jobA?.state, jobB?.state]).toEqual(['Open', 'Uploaded']);
        const before = await jobsInSalesforce();
        expect([before.get(jobA?.job_id ?? '')?.state, before.get(jobB?.job_id ?? '')?.state]).toEqual([
          'Open',
          'Open',
        ]);
        await endRun(a);
        await reportRun(deps, { runId: b, error: { Error: 'TransientError', Cause: 'retries spent' } });

        // The values change; the next run aborts both jobs before it plans, then sends the new values.
        await prepare(prefix, 100);
        env.sf.calls.clear();
        const next = await env.newRun();
        const result = await runWriteback(deps, { runId: next, task });

        expect(result.plan).toMatchObject({ sourceRows: 6, rejected: 0, changed: 6 });
        expect(result.result).toMatchObject({ succeeded: 6, failed: 0 });
        expect(scoresOf(prefix)).toEqual([101, 102, 103, 104, 105, 106]);
        const after = await jobsInSalesforce();
        const [jobNext] = await jobsOf(next);
        expect(after.get(jobA?.job_id ?? '')).toEqual({ state: 'Aborted', processed: 0 });
        expect(after.get(jobB?.job_id ?? '')).toEqual({ state: 'Aborted', processed: 0 });
        expect(after.get(jobNext?.job_id ?? '')).toEqual({ state: 'JobComplete', processed: 6 });
        // Two aborts and the new job's close; one upload, of the new job.
        expect(env.sf.calls.count({ operation: 'bulk.ingest.close' })).toBe(3);
        expect(env.sf.calls.count({ operation: 'bulk.ingest.upload' })).toBe(1);
        expect(await jobsOf(a)).toEqual([{ job_id: jobA?.job_id, state: 'Aborted', collected: false }]);
        expect(await jobsOf(b)).toEqual([{ job_id: jobB?.job_id, state: 'Aborted', collected: true }]);
        // B's records are failed in B, with what became of them; its figures say so.
        expect(await ledgerByStatus(env, b)).toEqual([{ status: 'failed', n: 6 }]);
        const errors = await errorsOf(env, b);
        expect(new Set(errors.map((e) => e.code))).toEqual(new Set(['BULK_JOB_ABORTED']));
        expect(errors[0]?.message).toMatch(
          new RegExp(`ended Aborted without a result for this record: aborted by the plan of run ${next}`),
        );
        expect(await runFigures(env, b, task)).toMatchObject({
          written: 0,
          failed: 6,
          outcomeUnknown: 0,
          outcomesResolvedBy: next,
        });

        // Nothing is left to resolve: a further run calls Salesforce for nothing.
        env.sf.calls.clear();
        const third = await runWriteback(deps, { runId: await env.newRun(), task });
        expect(third.plan).toMatchObject({ changed: 0 });
        expect(env.sf.calls.count()).toBe(0);
      },
    );

    it('does not send an abort again when its answer was lost: the job found Aborted is done', async () => {
      const prefix = 'lostabort';
      await modes[0].prepare(prefix, 0);
      const deps = env.deps({ writeback: [bulkUpsert] });
      const dead = await env.newRun();
      await planWriteback(deps, { runId: dead, task: 'Lead-upsert' });
      await expect(
        pushWriteback({ ...deps, salesforce: noClose() }, { runId: dead, task: 'Lead-upsert' }),
      ).rejects.toThrow(/unreachable/);
      await endRun(dead);
      const [job] = await jobsOf(dead);

      // The abort reaches Salesforce, its answer is lost, and so is the state read after it.
      const answerLost = crashingConnector(env.connector, (_operation, method) => method === 'PATCH');
      let reads = 0;
      const lost = Object.create(answerLost, {
        request: {
          value: async (operation: string, method: 'GET' | 'PATCH', path: string, body?: unknown) => {
            if (method === 'GET' && path === `/jobs/ingest/${job?.job_id}` && (reads += 1) === 2) {
              throw new TransientError(`${operation}: Salesforce is unreachable`);
            }
            return answerLost.request(operation, method, path, body);
          },
        },
      }) as typeof env.connector;
      const next = await env.newRun();
      await expect(
        planWriteback({ ...deps, salesforce: lost }, { runId: next, task: 'Lead-upsert' }),
      ).rejects.toThrow(TransientError);
      expect((await jobsInSalesforce()).get(job?.job_id ?? '')?.state).toBe('Aborted');
      expect(await jobsOf(dead)).toEqual([{ job_id: job?.job_id, state: 'Uploaded', collected: false }]);

      // The plan step is retried: it reads the job Aborted, sends no abort, and collects it.
      env.sf.calls.clear();
      const planned = await planWriteback(deps, { runId: next, task: 'Lead-upsert' });
      expect(planned).toMatchObject({ changed: 6 });
      expect(env.sf.calls.count({ operation: 'bulk.ingest.close' })).toBe(0);
      expect(await jobsOf(dead)).toEqual([{ job_id: job?.job_id, state: 'Aborted', collected: true }]);
      expect(await ledgerByStatus(env, dead)).toEqual([{ status: 'failed', n: 6 }]);
    });

    it('records the state of a job an ended run uploaded, which a late close started: asked once a plan, collected once finished', async () => {
      const prefix = 'lateclose';
      await modes[0].prepare(prefix, 0);
      const deps = env.deps({ writeback: [bulkUpsert] });
      const dead = await env.newRun();
      await planWriteback(deps, { runId: dead, task: 'Lead-upsert' });
      await expect(
        pushWriteback({ ...deps, salesforce: noClose() }, { runId: dead, task: 'Lead-upsert' }),
      ).rejects.toThrow(/unreachable/);
      const [job] = await jobsOf(dead);
      expect(job?.state).toBe('Uploaded');
      // The push's close reaches Salesforce after all, late; Salesforce holds the job InProgress.
      env.sf.faults.set({ bulkJobDelayMs: 4000 });
      await env.connector.request('the late close', 'PATCH', `/jobs/ingest/${job?.job_id}`, {
        state: 'UploadComplete',
      });
      await endRun(dead);

      env.sf.calls.clear();
      const held = await env.newRun();
      expect(await planWriteback(deps, { runId: held, task: 'Lead-upsert' })).toMatchObject({
        heldBack: 6,
        changed: 0,
      });
      env.sf.faults.clear();
      // Never aborted, asked about once, and recorded as Salesforce answered: not Uploaded any more.
      expect(env.sf.calls.count({ operation: 'bulk.ingest.poll' })).toBe(1);
      expect(env.sf.calls.count({ write: true })).toBe(0);
      expect(await jobsOf(dead)).toEqual([{ job_id: job?.job_id, state: 'InProgress', collected: false }]);

      // Once Salesforce has finished it, a later plan collects it into its run.
      for (
        let i = 0;
        i < 500 && (await jobsInSalesforce()).get(job?.job_id ?? '')?.state !== 'JobComplete';
        i += 1
      ) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await modes[0].prepare(prefix, 100);
      const next = await env.newRun();
      expect((await runWriteback(deps, { runId: next, task: 'Lead-upsert' })).plan).toMatchObject({
        heldBack: 0,
        changed: 6,
      });
      expect(await jobsOf(dead)).toEqual([{ job_id: job?.job_id, state: 'JobComplete', collected: true }]);
      expect(await ledgerByStatus(env, dead)).toEqual([{ status: 'succeeded', n: 6 }]);
      expect(scoresOf(prefix)).toEqual([101, 102, 103, 104, 105, 106]);
    });

    it("never touches the planning run's own job", async () => {
      const prefix = 'ownjob';
      await modes[0].prepare(prefix, 0);
      const deps = env.deps({ writeback: [bulkUpsert] });
      const runId = await env.newRun();
      await planWriteback(deps, { runId, task: 'Lead-upsert' });
      await expect(
        pushWriteback({ ...deps, salesforce: noUpload() }, { runId, task: 'Lead-upsert' }),
      ).rejects.toThrow(/unreachable/);
      const [job] = await jobsOf(runId);
      // Its plan step run again (a retry): its job stays as it is, for its push to take up.
      env.sf.calls.clear();
      await planWriteback(deps, { runId, task: 'Lead-upsert' });
      expect(env.sf.calls.count()).toBe(0);
      expect((await jobsInSalesforce()).get(job?.job_id ?? '')?.state).toBe('Open');
      expect(await jobsOf(runId)).toEqual([{ job_id: job?.job_id, state: 'Open', collected: false }]);
      // Its push goes on: it replaces the job it left, as a retried push does.
      const pushed = (await pushWriteback(deps, { runId, task: 'Lead-upsert' })) as { status: string };
      expect(pushed.status).toBe('bulk-pending');
      expect((await jobsOf(runId))[0]).toMatchObject({ job_id: job?.job_id, state: 'Superseded' });
    });
  });
});
