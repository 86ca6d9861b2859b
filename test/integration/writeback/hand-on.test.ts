/**
 * Push and Collect with a Lambda's clock (lambdas/core/writeback/budget.ts): a step starts no
 * Salesforce call that the invocation's time left could not see through, hands the rest on
 * (`push-pending`, or `bulk-pending` with a short wait), and the next invocation goes on from the
 * ledger: every record sent once, nothing left `sent`, no job created twice.
 */
import {
  collectWriteback,
  planWriteback,
  pushWriteback,
  runWriteback,
  type WritebackPushOutput,
} from '../../../lambdas/core/writeback';
import { DEFAULT_SALESFORCE_TIMEOUTS } from '../../../lambdas/connectors/salesforce';
import { HAND_ON_WAIT_SECONDS } from '../../../lambdas/core/writeback/collect';
import type { TimeLeft } from '../../../lambdas/shared/clock';
import { ApiLimitExceededError, TransientError } from '../../../lambdas/shared/errors';
import {
  LEAD_SRC_UPSERT,
  ledgerByStatus,
  secondSubrequestFails,
  startWritebackEnv,
  subrequestsWithKeysFail,
  type WritebackEnv,
} from './support';

/** No time at all: each invocation makes its one guaranteed call, then hands on. */
const NO_TIME: TimeLeft = () => 0;

describe('push and collect hand on when the Lambda runs out of time', () => {
  let env: WritebackEnv;

  beforeAll(async () => {
    env = await startWritebackEnv();
    await env.pool.query(`CREATE TABLE lead_src (ext text, last_name text, company text, score integer)`);
  });
  afterAll(async () => env?.stop());
  afterEach(() => env.sf.faults.clear());

  /** Replaces lead_src by `n` rows keyed `${prefix}-1`…, scored i. */
  async function leads(prefix: string, n: number): Promise<void> {
    await env.pool.query('DELETE FROM lead_src');
    await env.pool.query(
      `INSERT INTO lead_src SELECT $1 || '-' || i, 'Name ' || i, 'Acme', i % 100 FROM generate_series(1, $2::int) AS i`,
      [prefix, n],
    );
  }

  const upsert = { ...LEAD_SRC_UPSERT, bulkThreshold: 100_000 };
  const insert = { ...upsert, mode: 'insert' as const };

  /** Records holding each external ID of `prefix`-1 … `prefix`-n: exactly one each. */
  function copiesByKey(prefix: string): Map<string, number> {
    const copies = new Map<string, number>();
    for (const r of env.sf.store.all('Lead')) {
      const key = r.External_Id__c;
      if (typeof key === 'string' && key.startsWith(`${prefix}-`) && r.IsDeleted !== true) {
        copies.set(key, (copies.get(key) ?? 0) + 1);
      }
    }
    return copies;
  }

  it('hands a Collections push on between calls; the next invocations send the rest, each record once', async () => {
    await leads('co', 2_500);
    const deps = env.deps({ writeback: [upsert] });
    const runId = await env.newRun();
    const plan = await planWriteback(deps, { runId, task: 'Lead-upsert' });
    env.sf.calls.clear();
    const input = { runId, task: 'Lead-upsert' };

    const first = await pushWriteback(deps, input, { timeLeft: NO_TIME });
    expect(first).toEqual({
      status: 'push-pending',
      runId,
      task: 'Lead-upsert',
      api: 'collections',
      planned: 2_500,
      done: 1_000,
      // The task's calls so far: the plan's, and this invocation's.
      apiCalls: (plan.apiCalls ?? 0) + env.sf.calls.count(),
    });
    // Every call made has its results recorded: nothing is left `sent`.
    expect(await ledgerByStatus(env, runId)).toEqual([{ status: 'succeeded', n: 1_000 }]);
    expect(await pushWriteback(deps, input, { timeLeft: NO_TIME })).toMatchObject({
      status: 'push-pending',
      done: 2_000,
    });
    expect(await pushWriteback(deps, input, { timeLeft: NO_TIME })).toMatchObject({
      status: 'collected',
      planned: 2_500,
      succeeded: 2_500,
      failed: 0,
    });

    expect(env.sf.calls.writes().map((w) => w.records)).toEqual([1_000, 1_000, 500]);
    const copies = copiesByKey('co');
    expect(copies.size).toBe(2_500);
    expect([...copies.values()].every((n) => n === 1)).toBe(true);
  });

  it('starts a write only with room for its longest answer and its recording (620 s + 60 s)', async () => {
    await leads('room', 5_000);
    const deps = env.deps({ writeback: [upsert] });
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'Lead-upsert' });
    env.sf.calls.clear();
    // A Lambda of 900 s in which each call takes 100 s: calls start at 900, 800 and 700 s left;
    // at 600 s left a call could outlast the Lambda.
    const lambdaClock = (): TimeLeft => {
      const base = env.sf.calls.writes().length;
      return () => 900_000 - 100_000 * (env.sf.calls.writes().length - base);
    };
    const room = DEFAULT_SALESFORCE_TIMEOUTS.writeAnswerMs + 60_000;
    expect(room).toBe(680_000);

    const first = await pushWriteback(deps, { runId, task: 'Lead-upsert' }, { timeLeft: lambdaClock() });
    expect(first).toMatchObject({ status: 'push-pending', done: 3_000 });
    const second = await pushWriteback(deps, { runId, task: 'Lead-upsert' }, { timeLeft: lambdaClock() });
    expect(second).toMatchObject({ status: 'collected', succeeded: 5_000 });
    expect(env.sf.calls.writes().map((w) => w.records)).toEqual([1_000, 1_000, 1_000, 1_000, 1_000]);

    // With the time for every call, one invocation sends them all.
    await env.pool.query(`UPDATE lead_src SET score = score + 1`);
    const again = await env.newRun();
    await planWriteback(deps, { runId: again, task: 'Lead-upsert' });
    expect(
      await pushWriteback(deps, { runId: again, task: 'Lead-upsert' }, { timeLeft: () => 900_000 }),
    ).toMatchObject({ status: 'collected', succeeded: 5_000 });
  });

  it('looks up an insert’s records of unknown outcome before handing on, not 11 minutes later', async () => {
    await leads('unk', 1_450);
    // Salesforce writes every record; its answer says the second subrequest failed with a 500.
    const lying = secondSubrequestFails(env.connector);
    const deps = { ...env.deps({ writeback: [insert] }), salesforce: lying };
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'Lead-insert' });
    env.sf.calls.clear();

    const first = await pushWriteback(deps, { runId, task: 'Lead-insert' }, { timeLeft: NO_TIME });
    // The 200 records of the failed subrequest were found by external ID and recorded.
    expect(first).toMatchObject({ status: 'push-pending', planned: 1_450, done: 1_000 });
    expect(await ledgerByStatus(env, runId)).toEqual([{ status: 'succeeded', n: 1_000 }]);
    // Before, the next invocation took them for records of a call that may still be running.
    const second = await pushWriteback(deps, { runId, task: 'Lead-insert' }, { timeLeft: NO_TIME });
    expect(second).toMatchObject({ status: 'collected', succeeded: 1_450, failed: 0 });

    expect(env.sf.calls.writes().map((w) => w.records)).toEqual([1_000, 450]);
    const copies = copiesByKey('unk');
    expect(copies.size).toBe(1_450);
    expect([...copies.values()].every((n) => n === 1)).toBe(true);
  });

  it('fails the step instead of handing on while records of a subrequest Salesforce failed have no outcome', async () => {
    await leads('down', 2_500);
    const deps = env.deps({ writeback: [upsert] });
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'Lead-upsert' });
    // Two subrequests of the first call fail on Salesforce's side every time they are sent.
    const { rows } = await env.pool.query<{ key: string }>(
      `SELECT key FROM roundtrip.writeback_plan_rows WHERE run_id = $1 AND seq IN (250, 450) ORDER BY seq`,
      [runId],
    );
    const failing = {
      ...deps,
      salesforce: subrequestsWithKeysFail(
        env.connector,
        rows.map((r) => r.key),
      ),
    };
    const input = { runId, task: 'Lead-upsert' };
    const first = await env.pool.query<{ key: string }>(
      `SELECT key FROM roundtrip.writeback_plan_rows WHERE run_id = $1 AND seq = 201`,
      [runId],
    );
    const firstFailing = first.rows[0]?.key;
    env.sf.calls.clear();

    // Each invocation has time for one call, which is the 400 records without an outcome: handing
    // on would answer push-pending for ever, the rest of the plan never sent. The step fails
    // instead, and the state machine's retries of a failing step are bounded.
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const push = pushWriteback(failing, input, { timeLeft: NO_TIME });
      await expect(push).rejects.toBeInstanceOf(TransientError);
      await expect(push).rejects.toThrow(
        /400 records of a call that failed on Salesforce's side have no outcome/,
      );
      // Salesforce's code and message, and the first record of the failed subrequests (seq 201;
      // the second subrequest of the first call, the first of the calls sending them again).
      await expect(push).rejects.toThrow(
        `; retry the step, which sends them again first. Salesforce answered without their outcome: UNKNOWN_EXCEPTION: the Composite subrequest of this record (chunk${attempt === 0 ? 1 : 0}, 200 records) failed as a whole with HTTP 500: An unexpected error occurred (first record key "${firstFailing}")`,
      );
    }
    expect(await ledgerByStatus(env, runId)).toEqual([
      { status: 'sent', n: 400 },
      { status: 'succeeded', n: 600 },
    ]);

    // Once Salesforce takes them, the retried step sends them first, then the rest of the plan.
    const outputs: WritebackPushOutput[] = [await pushWriteback(deps, input, { timeLeft: NO_TIME })];
    while (outputs[outputs.length - 1]?.status === 'push-pending') {
      outputs.push(await pushWriteback(deps, input, { timeLeft: NO_TIME }));
    }
    expect(outputs.map((o) => (o.status === 'push-pending' ? o.done : o.status))).toEqual([
      1_000,
      2_000,
      'collected',
    ]);
    expect(outputs[2]).toMatchObject({ planned: 2_500, succeeded: 2_500, failed: 0 });
    expect(env.sf.calls.writes().map((w) => w.records)).toEqual([600, 400, 1_000, 500]);
    const copies = copiesByKey('down');
    expect(copies.size).toBe(2_500);
    expect([...copies.values()].every((n) => n === 1)).toBe(true);
  });

  it('stops the run at once, not handing on, when a subrequest was refused for the spent daily allowance; hands on after a throttle', async () => {
    const deps = env.deps({ writeback: [upsert] });
    const input = async (prefix: string) => {
      await leads(prefix, 1_050);
      const runId = await env.newRun();
      await planWriteback(deps, { runId, task: 'Lead-upsert' });
      // A key of the first call's second subrequest (seq 201 to 400).
      const { rows } = await env.pool.query<{ key: string }>(
        `SELECT key FROM roundtrip.writeback_plan_rows WHERE run_id = $1 AND seq = 300`,
        [runId],
      );
      return { runId, task: 'Lead-upsert', key: rows[0]?.key ?? '' };
    };
    const refusing = (key: string, message: string) => ({
      ...deps,
      salesforce: subrequestsWithKeysFail(env.connector, [key], {
        status: 403,
        errorCode: 'REQUEST_LIMIT_EXCEEDED',
        message,
      }),
    });

    // The daily allowance: the next invocation's call would be refused as a whole, so the run
    // stops now, as after a plain call refused for it.
    const spent = await input('spent');
    const stopped = pushWriteback(
      refusing(spent.key, 'TotalRequests Limit exceeded.'),
      { runId: spent.runId, task: spent.task },
      { timeLeft: NO_TIME },
    );
    await expect(stopped).rejects.toBeInstanceOf(ApiLimitExceededError);
    await expect(stopped).rejects.toThrow(
      /^Write-back Lead-upsert: 200 records wait to be sent again \(planned\): .*REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded\./,
    );
    expect(await ledgerByStatus(env, spent.runId)).toEqual([
      { status: 'planned', n: 200 },
      { status: 'succeeded', n: 800 },
    ]);

    // The concurrent-request limit frees up in seconds: handed on, the next invocation sends them.
    const busy = await input('busy');
    const handed = await pushWriteback(
      refusing(busy.key, 'ConcurrentPerOrgLongTxn Limit exceeded.'),
      { runId: busy.runId, task: busy.task },
      { timeLeft: NO_TIME },
    );
    expect(handed).toMatchObject({ status: 'push-pending', planned: 1_050, done: 800 });
    let out: WritebackPushOutput = handed;
    while (out.status === 'push-pending') {
      out = await pushWriteback(deps, { runId: busy.runId, task: busy.task }, { timeLeft: NO_TIME });
    }
    expect(out).toMatchObject({ status: 'collected', planned: 1_050, succeeded: 1_050, failed: 0 });
    const copies = copiesByKey('busy');
    expect(copies.size).toBe(1_050);
    expect([...copies.values()].every((n) => n === 1)).toBe(true);
  });

  it('names the records of a subrequest Salesforce failed too when it stops the run for a subrequest refused for the spent daily allowance', async () => {
    const deps = env.deps({ writeback: [upsert] });
    await leads('spentboth', 1_050);
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'Lead-upsert' });
    // Keys of the first call's first subrequest (seq 1 to 200) and second (seq 201 to 400).
    const { rows } = await env.pool.query<{ seq: string; key: string }>(
      `SELECT seq, key FROM roundtrip.writeback_plan_rows WHERE run_id = $1 AND seq IN (1, 300) ORDER BY seq`,
      [runId],
    );
    const [first, refusedKey] = rows.map((r) => r.key);
    const failing = subrequestsWithKeysFail(
      subrequestsWithKeysFail(env.connector, [first ?? '']),
      [refusedKey ?? ''],
      { status: 403, errorCode: 'REQUEST_LIMIT_EXCEEDED', message: 'TotalRequests Limit exceeded.' },
    );

    const stopped = pushWriteback(
      { ...deps, salesforce: failing },
      { runId, task: 'Lead-upsert' },
      { timeLeft: NO_TIME },
    );

    await expect(stopped).rejects.toBeInstanceOf(ApiLimitExceededError);
    await expect(stopped).rejects.toThrow(
      new RegExp(
        `^Write-back Lead-upsert: 200 records wait to be sent again \\(planned\\): .*REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded\\. .*\\. Besides, 200 records sent have no outcome yet\\. Salesforce answered without their outcome: UNKNOWN_EXCEPTION: the Composite subrequest of this record \\(chunk0, 200 records\\) failed as a whole with HTTP 500: An unexpected error occurred \\(first record key "${first ?? ''}"\\)$`,
      ),
    );
    expect(await ledgerByStatus(env, runId)).toEqual([
      { status: 'planned', n: 200 },
      { status: 'sent', n: 200 },
      { status: 'succeeded', n: 600 },
    ]);
  });

  it('puts back the halves of a call split for its size (413) that the time left cannot send, and the next invocations go on with them', async () => {
    await leads('half', 6);
    // One record whose JSON alone is over the limit that one ordinary record is under.
    await env.pool.query(`UPDATE lead_src SET last_name = repeat('L', 80) WHERE ext = 'half-6'`);
    const deps = env.deps({ writeback: [upsert] });
    const runId = await env.newRun();
    const input = { runId, task: 'Lead-upsert' };
    await planWriteback(deps, input);
    env.sf.faults.set({ maxRequestBodyBytes: 200 });
    env.sf.calls.clear();
    // Time for four calls after the first written: 6, then 3, then 2 are refused (413) and split
    // (a refused call is not one), 1 written, then 2 and 3; 4–6 refused and split, 4–5 refused
    // and split, and the time is out before 4 is sent.
    let asked = 0;
    const fourMoreCalls: TimeLeft = () => (asked++ < 4 ? Number.POSITIVE_INFINITY : 0);

    const first = await pushWriteback(deps, input, { timeLeft: fourMoreCalls });

    expect(first).toMatchObject({ status: 'push-pending', planned: 6, done: 3 });
    expect(env.sf.calls.writes().map((w) => w.status)).toEqual([413, 413, 413, 200, 200, 200, 413, 413]);
    // The halves not sent are planned again, none left `sent` (of unknown outcome).
    expect(await ledgerByStatus(env, runId)).toEqual([
      { status: 'planned', n: 3 },
      { status: 'succeeded', n: 3 },
    ]);
    // Each later invocation has time for one call only: when that call is refused as too large,
    // its first half is sent all the same, so each invocation writes something.
    const outputs: WritebackPushOutput[] = [];
    for (let i = 0; i < 10 && outputs[outputs.length - 1]?.status !== 'collected'; i += 1) {
      outputs.push(await pushWriteback(deps, input, { timeLeft: NO_TIME }));
    }
    // One record written by each: 4, then 5; then 6, refused alone.
    expect(outputs.map((o) => (o.status === 'push-pending' ? o.done : o.status))).toEqual([
      4,
      5,
      'collected',
    ]);
    expect(outputs[outputs.length - 1]).toMatchObject({
      status: 'collected',
      planned: 6,
      succeeded: 5,
      failed: 1,
      outcomeUnknown: 0,
    });
    // Every record written once, none sent again after its call was answered.
    const written = env.sf.calls.writes().filter((w) => w.status === 200);
    expect(written.map((w) => w.records ?? 0).reduce((a, b) => a + b, 0)).toBe(5);
    const copies = copiesByKey('half');
    expect([...copies.keys()].sort()).toEqual(['half-1', 'half-2', 'half-3', 'half-4', 'half-5']);
    expect([...copies.values()].every((n) => n === 1)).toBe(true);
  });

  it('goes on with the row-lock retries in the next invocation', async () => {
    await leads('lock', 30);
    env.sf.faults.set({ lockRowKeys: ['lock-7'] });
    const deps = env.deps({ writeback: [upsert] });
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'Lead-upsert' });
    env.sf.calls.clear();

    const first = await pushWriteback(deps, { runId, task: 'Lead-upsert' }, { timeLeft: NO_TIME });
    expect(first).toMatchObject({ status: 'push-pending', planned: 30, done: 29 });
    expect(await ledgerByStatus(env, runId)).toEqual([
      { status: 'planned', n: 1 },
      { status: 'succeeded', n: 29 },
    ]);
    env.sf.faults.clear();
    const second = await pushWriteback(deps, { runId, task: 'Lead-upsert' }, { timeLeft: NO_TIME });
    expect(second).toMatchObject({ status: 'collected', succeeded: 30, failed: 0 });
    expect(env.sf.calls.writes().map((w) => w.records)).toEqual([30, 1]);
  });

  it('hands a Bulk push on between jobs and Collect between job results; no job is created twice', async () => {
    await leads('bulk', 600);
    const deps = env.deps({ writeback: [{ ...insert, bulkThreshold: 50 }] });
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'Lead-insert' });
    env.sf.calls.clear();
    const options = { timeLeft: NO_TIME, maxJobBytes: 20_000 };

    const outputs: WritebackPushOutput[] = [];
    let state = await pushWriteback(deps, { runId, task: 'Lead-insert' }, options);
    outputs.push(state);
    while (state.status === 'push-pending') {
      state = await pushWriteback(deps, { runId, task: 'Lead-insert' }, options);
      outputs.push(state);
    }
    const { rows: jobs } = await env.pool.query(
      `SELECT job_id FROM roundtrip.writeback_jobs WHERE run_id = $1 ORDER BY chunk`,
      [runId],
    );
    expect(jobs.length).toBeGreaterThanOrEqual(3);
    // One job an invocation: the first is always made, the next would need more time.
    expect(outputs.map((o) => o.status)).toEqual([
      ...jobs.slice(1).map(() => 'push-pending'),
      'bulk-pending',
    ]);
    expect(state).toMatchObject({ jobIds: jobs.map((j) => j.job_id) });
    expect(env.sf.calls.count({ operation: 'bulk.ingest.create' })).toBe(jobs.length);

    const collects: string[] = [];
    // Collect runs in a Lambda of its own: its warm container's connector, signed in once.
    const collectDeps = { ...deps, salesforce: await env.connect() };
    // Polls made once a Collect has found every job finished (it hands on only then).
    let pollsAfterAllFinished: number | undefined;
    while (state.status === 'bulk-pending') {
      await deps.clock.sleep(state.waitSeconds * 1000);
      const polled = state.attempt;
      state = await collectWriteback(collectDeps, state, options);
      collects.push(state.status === 'bulk-pending' ? `wait ${state.waitSeconds}` : state.status);
      if (
        pollsAfterAllFinished === undefined &&
        state.status === 'bulk-pending' &&
        state.attempt === polled
      ) {
        pollsAfterAllFinished = env.sf.calls.count({ operation: 'bulk.ingest.poll' });
      }
    }
    // Each Collect that found the jobs finished collected one job's results, then handed on.
    expect(collects.filter((c) => c === `wait ${HAND_ON_WAIT_SECONDS}`).length).toBeGreaterThanOrEqual(
      jobs.length - 1,
    );
    expect(state).toMatchObject({ status: 'collected', planned: 600, succeeded: 600, failed: 0 });
    // One results file a job (none failed): no file read twice. The records of jobs not collected
    // yet were not taken for inserts of unknown outcome and looked up.
    expect(env.sf.calls.count({ operation: 'bulk.ingest.results' })).toBe(jobs.length);
    expect(env.sf.calls.count({ operation: 'queryAll' })).toBe(0);
    // A finished job is not asked about again by the Collects that go on collecting the others.
    expect(pollsAfterAllFinished).toBeDefined();
    expect(env.sf.calls.count({ operation: 'bulk.ingest.poll' })).toBe(pollsAfterAllFinished);
    // The Collects describe the object only to send records again (a row-lock retry): none here.
    // (The push's describe came from the plan's, on the same connector.)
    expect(env.sf.calls.count({ operation: 'describe' })).toBe(0);
    const copies = copiesByKey('bulk');
    expect(copies.size).toBe(600);
    expect([...copies.values()].every((n) => n === 1)).toBe(true);
  });

  it('keeps another run’s push of the task waiting while a push goes on over invocations, so the newer values are the ones left', async () => {
    await leads('ov', 2_500);
    const deps = env.deps({ writeback: [upsert] });
    const older = await env.newRun();
    await planWriteback(deps, { runId: older, task: 'Lead-upsert' });
    const olderPush = { runId: older, task: 'Lead-upsert' };
    expect(await pushWriteback(deps, olderPush, { timeLeft: NO_TIME })).toMatchObject({
      status: 'push-pending',
    });

    // A newer run, started by hand, plans newer scores while the older one's push goes on.
    await env.pool.query(`UPDATE lead_src SET score = score + 50`);
    const newer = await env.newRun();
    await planWriteback(deps, { runId: newer, task: 'Lead-upsert' });
    env.sf.calls.clear();
    const refused = await pushWriteback(deps, { runId: newer, task: 'Lead-upsert' }).catch((e: unknown) => e);
    expect(refused).toMatchObject({ name: 'PushGoingOnError' });
    expect(String(refused)).toContain(`the push of run ${older} goes on over several invocations`);
    expect(env.sf.calls.count({})).toBe(0);

    let out = await pushWriteback(deps, olderPush, { timeLeft: NO_TIME });
    while (out.status === 'push-pending') out = await pushWriteback(deps, olderPush, { timeLeft: NO_TIME });
    expect(out).toMatchObject({ status: 'collected', succeeded: 2_500 });
    // Its push over, the newer run's goes: every record ends with the newer score.
    expect(await pushWriteback(deps, { runId: newer, task: 'Lead-upsert' })).toMatchObject({
      status: 'collected',
      succeeded: 2_500,
    });
    const { rows } = await env.pool.query<{ ext: string; score: number }>(`SELECT ext, score FROM lead_src`);
    const byKey = new Map(
      [...env.sf.store.all('Lead')].map((r) => [String(r.External_Id__c), r.LeadScore__c] as const),
    );
    expect(rows.filter((r) => byKey.get(r.ext) !== r.score)).toEqual([]);
  });

  it('does not keep other runs waiting for a run whose steps stopped starting (an execution stopped by hand)', async () => {
    await leads('stop', 1_500);
    const deps = env.deps({ writeback: [upsert] });
    const stopped = await env.newRun();
    await planWriteback(deps, { runId: stopped, task: 'Lead-upsert' });
    expect(
      await pushWriteback(deps, { runId: stopped, task: 'Lead-upsert' }, { timeLeft: NO_TIME }),
    ).toMatchObject({
      status: 'push-pending',
    });
    // Its execution was stopped: no step started for 31 minutes, and no report marked it ended.
    await env.pool.query(
      `UPDATE roundtrip.runs SET started_at = now() - interval '2 hours', last_step_at = now() - interval '31 minutes' WHERE run_id = $1`,
      [stopped],
    );
    const next = await env.newRun();
    await planWriteback(deps, { runId: next, task: 'Lead-upsert' });
    expect(await pushWriteback(deps, { runId: next, task: 'Lead-upsert' })).toMatchObject({
      status: 'collected',
    });
  });

  it('runWriteback calls a push that hands on again until it is done', async () => {
    await leads('loop', 2_100);
    const deps = env.deps({ writeback: [insert] });
    const runId = await env.newRun();
    env.sf.calls.clear();

    const { result } = await runWriteback(deps, { runId, task: 'Lead-insert' }, { timeLeft: NO_TIME });

    expect(result).toMatchObject({ status: 'collected', planned: 2_100, succeeded: 2_100 });
    expect(env.sf.calls.writes().map((w) => w.records)).toEqual([1_000, 1_000, 100]);
    expect(copiesByKey('loop').size).toBe(2_100);
  });
});
