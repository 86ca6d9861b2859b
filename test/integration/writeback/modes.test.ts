/**
 * Upsert and insert end to end, idempotent inserts (also after a crash between sending and
 * recording), and per-record failures from Salesforce: row lock (retried serially), deleted
 * record, duplicate external ID, validation rule, and maxFailureRate failing the run after the report.
 */
import {
  ApiLimitExceededError,
  TaskBusyError,
  TerminalError,
  TransientError,
} from '../../../lambdas/shared/errors';
import {
  collectWriteback,
  pushWriteback,
  planWriteback,
  reportRun,
  runWriteback,
} from '../../../lambdas/core/writeback';
import { WritebackPushOutput } from '../../../lambdas/core/contracts';
import { caught } from '../../support/caught';
import {
  compositeAnswerReversed,
  crashingConnector,
  errorsOf,
  failingBeforeRowLockRetry,
  givingUpOnWrites,
  LEAD_SRC_UPSERT,
  leadSeed,
  ledgerByStatus,
  nextWriteBodyCut,
  outlastCallTimeLimit,
  planThenCrashInPush,
  refusingNextWrite,
  SCORE_UPDATE,
  secondSubrequestFails,
  startWritebackEnv,
  subrequestsWithKeysFail,
  type WritebackEnv,
} from './support';

function leadsWithExternalId(env: WritebackEnv, value: string): Record<string, unknown>[] {
  return [...env.sf.store.all('Lead')].filter((r) => r.External_Id__c === value && r.IsDeleted !== true);
}

describe('write-back modes and per-record failures', () => {
  let env: WritebackEnv;

  beforeAll(async () => {
    env = await startWritebackEnv();
    env.sf.store.seed('Lead', leadSeed(10));
    await env.pool.query(`CREATE TABLE lead_src (ext text, last_name text, company text, score integer)`);
    await env.pool.query(`CREATE TABLE lead_scores ("Id" text, score integer)`);
  });
  afterAll(async () => env?.stop());

  afterEach(() => env.sf.faults.clear());

  /** Replaces lead_src by `n` rows: keys `${prefix}-1`…, LastName `${name} i`, the company, score i. */
  async function leads(prefix: string, name: string, company: string, n: number): Promise<void> {
    await env.pool.query('DELETE FROM lead_src');
    await env.pool.query(
      `INSERT INTO lead_src SELECT $1 || '-' || i, $2 || ' ' || i, $3, i FROM generate_series(1, $4::int) AS i`,
      [prefix, name, company, n],
    );
  }

  const upsert = LEAD_SRC_UPSERT;

  it('upsert updates the records it finds by external ID and creates the others, then sends nothing on a rerun', async () => {
    // ext-0005 … ext-0014: five exist, five are new.
    await env.pool.query(
      `INSERT INTO lead_src SELECT 'ext-' || lpad(i::text, 4, '0'), 'Up ' || i, 'Acme', i FROM generate_series(5, 14) AS i`,
    );
    const deps = env.deps({ writeback: [upsert] });
    const runId = await env.newRun();
    env.sf.calls.clear();

    const { result } = await runWriteback(deps, { runId, task: 'Lead-upsert' });

    expect(result).toMatchObject({ planned: 10, succeeded: 10, failed: 0 });
    expect(env.sf.calls.count({ operation: 'collections.upsert' })).toBe(1);
    expect(env.sf.store.count('Lead')).toBe(15);
    for (let i = 5; i < 15; i += 1) {
      const found = leadsWithExternalId(env, `ext-${String(i).padStart(4, '0')}`);
      expect(found).toHaveLength(1);
      expect(found[0]).toMatchObject({ LastName: `Up ${i}`, LeadScore__c: i });
    }
    const { rows } = await env.pool.query(
      `SELECT count(*)::int AS n FROM roundtrip.sync_state WHERE task = 'Lead-upsert' AND salesforce_id LIKE '00Q%'`,
    );
    expect(rows[0].n).toBe(10);

    env.sf.calls.clear();
    const again = await runWriteback(deps, { runId: await env.newRun(), task: 'Lead-upsert' });
    expect(again.plan.changed).toBe(0);
    expect(env.sf.calls.count({ write: true })).toBe(0);
  });

  it('refuses upsert keys that differ only in case: Salesforce matches them to one record', async () => {
    await env.pool.query('DELETE FROM lead_src');
    await env.pool.query(
      `INSERT INTO lead_src VALUES ('case-x', 'Lower', 'Acme', 1), ('CASE-X', 'Upper', 'Acme', 2), ('case-y', 'Other', 'Acme', 3)`,
    );
    const runId = await env.newRun();
    env.sf.calls.clear();

    const { plan, result } = await runWriteback(env.deps({ writeback: [upsert] }), {
      runId,
      task: 'Lead-upsert',
    });

    expect(plan).toMatchObject({ sourceRows: 3, rejected: 2, changed: 1 });
    expect(result).toMatchObject({ succeeded: 1, failed: 0 });
    expect((await errorsOf(env, runId)).map((e) => [e.key, e.code, e.message]).sort()).toEqual([
      [
        'CASE-X',
        'DUPLICATE_KEY',
        'key CASE-X appears in more than one source row (External_Id__c is matched by Salesforce ignoring case and surrounding whitespace); none of them is sent: make the source hold one row per key',
      ],
      [
        'case-x',
        'DUPLICATE_KEY',
        'key case-x appears in more than one source row (External_Id__c is matched by Salesforce ignoring case and surrounding whitespace); none of them is sent: make the source hold one row per key',
      ],
    ]);
    expect(leadsWithExternalId(env, 'case-x')).toHaveLength(0);
  });

  it("names a rejected upsert row's Salesforce Id when its key was synced before, and none for a new key", async () => {
    // ext-0006 was upserted by the first test: sync_state holds its record's Id.
    const [record] = leadsWithExternalId(env, 'ext-0006');
    await env.pool.query('DELETE FROM lead_src');
    await env.pool.query(
      `INSERT INTO lead_src VALUES ('ext-0006', 'Up 6', 'Acme', 1234), ('ext-new', 'New', 'Acme', 5678)`,
    );
    const runId = await env.newRun();
    const { plan } = await runWriteback(env.deps({ writeback: [{ ...upsert, maxRejectRate: 1 }] }), {
      runId,
      task: 'Lead-upsert',
    });
    expect(plan).toMatchObject({ sourceRows: 2, rejected: 2, changed: 0 });
    const { rows } = await env.pool.query(
      `SELECT key, salesforce_id, code FROM roundtrip.writeback_errors WHERE run_id = $1 ORDER BY key`,
      [runId],
    );
    expect(rows).toEqual([
      { key: 'ext-0006', salesforce_id: record?.Id, code: 'NUMBER_OUTSIDE_VALID_RANGE' },
      { key: 'ext-new', salesforce_id: null, code: 'NUMBER_OUTSIDE_VALID_RANGE' },
    ]);
    expect(record?.Id).toEqual(expect.stringMatching(/^00Q/));
  });

  it('sends the rows that pass, and fails the run after the report when the plan rejects more than maxRejectRate', async () => {
    await leads('rej', 'Rej', 'Globex', 10);
    await env.pool.query(`UPDATE lead_src SET ext = NULL WHERE ext IN ('rej-3', 'rej-7')`);

    // 2 of 10 rows rejected: within a maxRejectRate of 25 %.
    const lenient = env.deps({ writeback: [{ ...upsert, maxRejectRate: 0.25 }] });
    const first = await env.newRun();
    const { plan, result } = await runWriteback(lenient, { runId: first, task: 'Lead-upsert' });
    expect(plan).toMatchObject({ sourceRows: 10, rejected: 2, changed: 8 });
    expect(result).toMatchObject({ succeeded: 8, failed: 0, failureRateExceeded: false });
    expect(await reportRun(lenient, { runId: first })).toMatchObject({
      status: 'succeeded',
      writeback: { 'Lead-upsert': { rejected: 2, rejectRateExceeded: false } },
    });

    // The same rows against the default 5 %: nothing left to send, and the run fails.
    const strict = env.deps({ writeback: [upsert] });
    const second = await env.newRun();
    const again = await runWriteback(strict, { runId: second, task: 'Lead-upsert' });
    expect(again.plan).toMatchObject({ sourceRows: 10, rejected: 2, changed: 0 });
    const report = await reportRun(strict, { runId: second });
    expect(report).toMatchObject({
      status: 'failed',
      reason:
        'write-back Lead-upsert: 2 of 10 source rows were rejected before sending (20.00 %), more than maxRejectRate 5.00 % (writeback[0].maxRejectRate)',
      writeback: { 'Lead-upsert': { rejected: 2, rejectRateExceeded: true } },
    });
    const { rows } = await env.pool.query(`SELECT status, error FROM roundtrip.runs WHERE run_id = $1`, [
      second,
    ]);
    expect(rows[0]).toEqual({ status: 'failed', error: report.reason });
    expect((await errorsOf(env, second)).map((e) => e.code)).toEqual(['MISSING_KEY', 'MISSING_KEY']);
  });

  it('insert creates each key once, and a rerun never inserts it again', async () => {
    await leads('new', 'New', 'Initech', 6);
    const insert = { ...upsert, mode: 'insert' as const };
    const deps = env.deps({ writeback: [insert] });
    const before = env.sf.store.count('Lead');

    const first = await runWriteback(deps, { runId: await env.newRun(), task: 'Lead-insert' });
    expect(first.result).toMatchObject({ succeeded: 6 });
    expect(env.sf.store.count('Lead')).toBe(before + 6);

    // Values change, but insert never sends a key it inserted before.
    await env.pool.query(`UPDATE lead_src SET score = score + 1`);
    env.sf.calls.clear();
    const second = await runWriteback(deps, { runId: await env.newRun(), task: 'Lead-insert' });
    expect(second.plan).toMatchObject({ changed: 0, unchanged: 6 });
    expect(env.sf.calls.count({ write: true })).toBe(0);
    expect(env.sf.store.count('Lead')).toBe(before + 6);
  });

  it('an insert waiting for its row-lock retry is not sent again when an overlapping run inserted the key meanwhile', async () => {
    await leads('lock', 'Lock', 'Umbrella', 3);
    const insert = { ...upsert, mode: 'insert' as const };
    const deps = env.deps({ writeback: [insert] });
    const a = await env.newRun();
    await planWriteback(deps, { runId: a, task: 'Lead-insert' });
    // lock-2 is refused with UNABLE_TO_LOCK_ROW, and the step fails before its retry round.
    env.sf.faults.set({ lockRowKeys: ['lock-2'] });
    const failingBeforeRetry = failingBeforeRowLockRetry(deps);
    await expect(pushWriteback(failingBeforeRetry, { runId: a, task: 'Lead-insert' })).rejects.toThrow(
      /before the row-lock retry round/,
    );
    env.sf.faults.clear();
    // Meanwhile a run started by hand plans and inserts lock-2 (nobody had sent it).
    const b = await env.newRun();
    expect((await runWriteback(deps, { runId: b, task: 'Lead-insert' })).result).toMatchObject({
      succeeded: 1,
    });

    env.sf.calls.clear();
    const retried = await pushWriteback(
      { ...deps, clock: { now: () => new Date(), sleep: async () => undefined } },
      { runId: a, task: 'Lead-insert' },
    );

    expect(retried).toMatchObject({ status: 'collected', succeeded: 2, failed: 0, heldBack: 1 });
    expect(env.sf.calls.count({ write: true })).toBe(0);
    expect(leadsWithExternalId(env, 'lock-2')).toHaveLength(1);
    expect((await errorsOf(env, a)).map((e) => [e.key, e.code])).toEqual([['lock-2', 'ALREADY_INSERTED']]);
  });

  it('an insert whose result was lost in a crash is reconciled by external ID, not inserted twice', async () => {
    await leads('crash', 'Crash', 'Hooli', 4);
    const insert = { ...upsert, mode: 'insert' as const };
    const deps = env.deps({ writeback: [insert] });
    const runId = await env.newRun();
    const before = env.sf.store.count('Lead');

    await planThenCrashInPush(env, deps, runId, 'Lead-insert');
    // Salesforce created them; PostgreSQL only knows they were sent.
    expect(env.sf.store.count('Lead')).toBe(before + 4);
    const { rows: sent } = await env.pool.query(
      `SELECT count(*)::int AS n FROM roundtrip.writeback_plans WHERE run_id = $1 AND status = 'sent'`,
      [runId],
    );
    expect(sent[0].n).toBe(4);

    env.sf.calls.clear();
    const retried = await pushWriteback(deps, { runId, task: 'Lead-insert' });

    expect(retried).toMatchObject({ status: 'collected', succeeded: 4, failed: 0 });
    expect(env.sf.calls.count({ write: true })).toBe(0);
    expect(env.sf.calls.count({ operation: 'queryAll' })).toBe(1);
    expect(env.sf.store.count('Lead')).toBe(before + 4);
    const { rows: sync } = await env.pool.query(
      `SELECT count(*)::int AS n FROM roundtrip.sync_state WHERE task = 'Lead-insert' AND key LIKE 'crash-%' AND salesforce_id IS NOT NULL`,
    );
    expect(sync[0].n).toBe(4);
  });

  it('recognises its lost insert when Salesforce answers the key in another case (the field ignores case)', async () => {
    await leads('fold', 'Fold', 'Hooli', 2);
    const deps = env.deps({ writeback: [{ ...upsert, mode: 'insert' as const }] });
    const runId = await env.newRun();
    const before = env.sf.store.count('Lead');
    await planThenCrashInPush(env, deps, runId, 'Lead-insert');
    // Salesforce holds the keys in upper case (as another writer changed them since).
    const created = [...env.sf.store.all('Lead')].filter((r) => String(r.External_Id__c).startsWith('fold-'));
    env.sf.store.update(
      'Lead',
      created.map((r) => ({ Id: r.Id, External_Id__c: String(r.External_Id__c).toUpperCase() })),
    );
    await outlastCallTimeLimit(env, runId);

    env.sf.calls.clear();
    const retried = await pushWriteback(deps, { runId, task: 'Lead-insert' });

    expect(retried).toMatchObject({ status: 'collected', succeeded: 2, failed: 0 });
    expect(env.sf.calls.count({ write: true })).toBe(0);
    expect(env.sf.store.count('Lead')).toBe(before + 2);
  });

  it('does not take a record that held the key before the lost insert for its own', async () => {
    await env.pool.query('DELETE FROM lead_src');
    await env.pool.query(`INSERT INTO lead_src VALUES ('pre-1', 'Ours', 'Initech', 5)`);
    // Someone else's record holds the key already (created long ago).
    const [theirs] = env.sf.store.seed('Lead', [
      {
        LastName: 'Theirs',
        Company: 'Other',
        External_Id__c: 'pre-1',
        CreatedDate: '2020-01-01T00:00:00.000+0000',
      },
    ]);
    const deps = env.deps({ writeback: [{ ...upsert, mode: 'insert' as const }] });
    const runId = await env.newRun();
    // The insert is refused (DUPLICATE_VALUE), and the answer is lost in a crash.
    await planThenCrashInPush(env, deps, runId, 'Lead-insert');
    // Not ours, so not found: sent again once the crashed call can no longer create a record.
    await outlastCallTimeLimit(env, runId);

    const retried = await pushWriteback(deps, { runId, task: 'Lead-insert' });

    // Not adopted: sent again, and refused again with Salesforce's own reason.
    expect(retried).toMatchObject({ succeeded: 0, failed: 1 });
    expect((await errorsOf(env, runId)).map((e) => e.code)).toEqual(['DUPLICATE_VALUE']);
    const { rows } = await env.pool.query(
      `SELECT salesforce_id FROM roundtrip.sync_state WHERE task = 'Lead-insert' AND key = 'pre-1'`,
    );
    expect(rows).toEqual([]);
    expect(env.sf.store.get(theirs as string)).toMatchObject({ LastName: 'Theirs' });
    expect(leadsWithExternalId(env, 'pre-1')).toHaveLength(1);
  });

  it('an insert whose call may still be running in Salesforce is looked up again after the call’s time limit, not sent twice', async () => {
    await leads('slow', 'Slow', 'Hooli', 4);
    const deps = env.deps({ writeback: [{ ...upsert, mode: 'insert' as const }] });
    const runId = await env.newRun();
    const before = env.sf.store.count('Lead');
    await planWriteback(deps, { runId, task: 'Lead-insert' });
    // The client gives up on the write (a timeout) while Salesforce is still working on it: the
    // records are created later, when `late` runs.
    const slow = givingUpOnWrites(env.connector);
    await expect(
      pushWriteback({ ...deps, salesforce: slow.connector }, { runId, task: 'Lead-insert' }),
    ).rejects.toThrow(/timed out/);
    expect(env.sf.store.count('Lead')).toBe(before);

    // The retried step finds nothing yet, and neither sends nor gives the records up.
    env.sf.calls.clear();
    const err = await pushWriteback(deps, { runId, task: 'Lead-insert' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TaskBusyError);
    expect((err as Error).message).toMatch(
      /^Write-back Lead-insert: 4 insert records sent by a call whose outcome was never recorded \(its attempt died, or Salesforce answered it with a server error\) are not in Salesforce yet, .* may still be running .* looked up again in about \d+ s, not sent a second time now$/,
    );
    expect(env.sf.calls.count({ write: true })).toBe(0);
    const { rows: sent } = await env.pool.query(
      `SELECT count(*)::int AS n FROM roundtrip.writeback_plans WHERE run_id = $1 AND status = 'sent'`,
      [runId],
    );
    expect(sent[0].n).toBe(4);

    // Salesforce finishes the first call; the time limit of any call passes; the step runs again.
    await slow.late();
    expect(env.sf.store.count('Lead')).toBe(before + 4);
    await outlastCallTimeLimit(env, runId);
    env.sf.calls.clear();
    const retried = await pushWriteback(deps, { runId, task: 'Lead-insert' });
    expect(retried).toMatchObject({ status: 'collected', succeeded: 4, failed: 0 });
    expect(env.sf.calls.count({ write: true })).toBe(0);
    expect(env.sf.store.count('Lead')).toBe(before + 4);
    for (let i = 1; i <= 4; i += 1) expect(leadsWithExternalId(env, `slow-${i}`)).toHaveLength(1);
  });

  it('an insert that never reached Salesforce is sent again once its call’s time limit has passed', async () => {
    await leads('lost', 'Lost', 'Hooli', 3);
    const deps = env.deps({ writeback: [{ ...upsert, mode: 'insert' as const }] });
    const runId = await env.newRun();
    const before = env.sf.store.count('Lead');
    await planWriteback(deps, { runId, task: 'Lead-insert' });
    // The write never reaches Salesforce.
    const dropping = givingUpOnWrites(env.connector).connector;
    await expect(
      pushWriteback({ ...deps, salesforce: dropping }, { runId, task: 'Lead-insert' }),
    ).rejects.toThrow(/timed out/);
    await expect(pushWriteback(deps, { runId, task: 'Lead-insert' })).rejects.toBeInstanceOf(TaskBusyError);
    expect(env.sf.store.count('Lead')).toBe(before);

    await outlastCallTimeLimit(env, runId);
    env.sf.calls.clear();
    const retried = await pushWriteback(deps, { runId, task: 'Lead-insert' });
    expect(retried).toMatchObject({ status: 'collected', succeeded: 3, failed: 0 });
    expect(env.sf.calls.writes().map((w) => w.records)).toEqual([3]);
    expect(env.sf.store.count('Lead')).toBe(before + 3);
  });

  it('an insert whose answer was cut off fails the step transiently, and the rerun reconciles it instead of inserting again', async () => {
    await leads('cut', 'Cut', 'Pied Piper', 4);
    const deps = env.deps({ writeback: [{ ...upsert, mode: 'insert' as const }] });
    const runId = await env.newRun();
    const before = env.sf.store.count('Lead');
    await planWriteback(deps, { runId, task: 'Lead-insert' });
    // Salesforce creates the four records; the connection drops in the middle of its answer.
    env.sf.faults.set({ resetWriteAnswerAfterBytes: 40 });

    const err = await pushWriteback(deps, { runId, task: 'Lead-insert' }).then(
      () => undefined,
      (e: unknown) => e,
    );

    expect(err).toBeInstanceOf(TransientError);
    expect((err as Error).message).toMatch(/^Collections insert of Lead: the answer was cut off/);
    expect(env.sf.store.count('Lead')).toBe(before + 4);
    env.sf.calls.clear();
    const retried = await pushWriteback(deps, { runId, task: 'Lead-insert' });
    expect(retried).toMatchObject({ status: 'collected', succeeded: 4, failed: 0 });
    expect(env.sf.calls.count({ write: true })).toBe(0);
    expect(env.sf.store.count('Lead')).toBe(before + 4);
  });

  it('an insert whose answer was lost is not inserted again when its record was deleted since: the look-up reads the recycle bin too', async () => {
    await leads('bin', 'Bin', 'Hooli', 4);
    const deps = env.deps({ writeback: [{ ...upsert, mode: 'insert' as const }] });
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'Lead-insert' });
    // Salesforce creates the four records; the connection drops in the middle of its answer.
    env.sf.faults.set({ resetWriteAnswerAfterBytes: 40 });
    await expect(pushWriteback(deps, { runId, task: 'Lead-insert' })).rejects.toBeInstanceOf(TransientError);
    // Someone deletes one of them before the step is retried: it is in the recycle bin.
    const deleted = leadsWithExternalId(env, 'bin-2')[0]?.Id as string;
    expect(env.sf.store.delete([deleted])).toEqual([expect.objectContaining({ success: true })]);
    // Retried once the call that carried it is certainly over: a key not found is sent again.
    await outlastCallTimeLimit(env, runId);
    env.sf.calls.clear();

    const retried = await pushWriteback(deps, { runId, task: 'Lead-insert' });

    // Inserted once: found, deleted, and recorded, not created a second time.
    expect(retried).toMatchObject({ status: 'collected', succeeded: 4, failed: 0 });
    expect(env.sf.calls.count({ write: true })).toBe(0);
    expect(leadsWithExternalId(env, 'bin-2')).toEqual([]);
    const { rows } = await env.pool.query<{ salesforce_id: string }>(
      `SELECT salesforce_id FROM roundtrip.sync_state WHERE task = 'Lead-insert' AND key = 'bin-2'`,
    );
    expect(rows).toEqual([{ salesforce_id: deleted }]);
  });

  it('a Composite insert Salesforce refuses as a whole (4xx) leaves its records planned, not sent: the retry sends them at once', async () => {
    await leads('spent', 'Spent', 'Vandelay', 450);
    const deps = env.deps({ writeback: [{ ...upsert, mode: 'insert' as const }] });
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'Lead-insert' });
    // The org's daily allowance runs out right before the call: 403 REQUEST_LIMIT_EXCEEDED.
    const refusing = refusingNextWrite(env.connector, () => env.sf.faults.set({ dailyApiLimit: 1 }));

    await expect(
      pushWriteback({ ...deps, salesforce: refusing }, { runId, task: 'Lead-insert' }),
    ).rejects.toThrow(/REQUEST_LIMIT_EXCEEDED/);

    // Salesforce processed none of them: not sent, so no outcome is unknown.
    const ledger = await env.pool.query(
      `SELECT status, count(*)::int AS n FROM roundtrip.writeback_plans WHERE run_id = $1 GROUP BY status`,
      [runId],
    );
    expect(ledger.rows).toEqual([{ status: 'planned', n: 450 }]);
    expect(leadsWithExternalId(env, 'spent-1')).toEqual([]);
    env.sf.faults.clear();
    env.sf.calls.clear();
    // Sent at once, not held 11 minutes for a look-up of records that may be being created.
    const retried = await pushWriteback(deps, { runId, task: 'Lead-insert' });
    expect(retried).toMatchObject({ status: 'collected', succeeded: 450, failed: 0 });
    expect(env.sf.calls.writes().map((w) => w.records)).toEqual([450]);
    expect(leadsWithExternalId(env, 'spent-450')).toHaveLength(1);
  });

  it('an insert refused with a 401 again after the session was renewed leaves its records planned: the retry sends them at once', async () => {
    await leads('unauth', 'Unauth', 'Pendant', 3);
    const deps = env.deps({ writeback: [{ ...upsert, mode: 'insert' as const }] });
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'Lead-insert' });
    // The call answers 401, the connector signs in again and sends it again: 401 again.
    const refusing = refusingNextWrite(env.connector, () => env.sf.faults.set({ http401Burst: 2 }));
    env.sf.calls.clear();

    await expect(
      pushWriteback({ ...deps, salesforce: refusing }, { runId, task: 'Lead-insert' }),
    ).rejects.toThrow(/the session was refused again \(401/);

    // Salesforce processed neither send: the records are not sent, so no outcome is unknown.
    expect(env.sf.calls.writes().map((w) => w.status)).toEqual([401, 401]);
    const ledger = await env.pool.query(
      `SELECT status, count(*)::int AS n FROM roundtrip.writeback_plans WHERE run_id = $1 GROUP BY status`,
      [runId],
    );
    expect(ledger.rows).toEqual([{ status: 'planned', n: 3 }]);
    env.sf.calls.clear();
    // Sent at once, not held 11 minutes for a look-up of records that may be being created.
    const retried = await pushWriteback(deps, { runId, task: 'Lead-insert' });
    expect(retried).toMatchObject({ status: 'collected', succeeded: 3, failed: 0, outcomeUnknown: 0 });
    expect(env.sf.calls.writes().map((w) => w.records)).toEqual([3]);
    expect(leadsWithExternalId(env, 'unauth-3')).toHaveLength(1);
  });

  it('refuses each record of a call Salesforce refuses for its records (400), alike in a plain Collections call and in a Composite subrequest', async () => {
    // An admin takes the key field's External ID flag away after the push read the describe:
    // Salesforce refuses each call carrying the records, 400 INVALID_FIELD.
    const key = env.sf.store.describe('Lead')?.fields.find((f) => f.name === 'External_Id__c');
    if (!key) throw new Error('the emulator has no Lead.External_Id__c');
    const refuseKey = () => {
      key.externalId = false;
      key.idLookup = false;
    };
    const deps = env.deps({ writeback: [upsert] });
    const push = async (records: number) => {
      await leads(`gone${records}`, 'Gone', 'Kramerica', records);
      const runId = await env.newRun();
      await planWriteback(deps, { runId, task: 'Lead-upsert' });
      env.sf.calls.clear();
      const pushed = await pushWriteback(
        { ...deps, salesforce: refusingNextWrite(env.connector, refuseKey) },
        { runId, task: 'Lead-upsert' },
      );
      const ledger = await env.pool.query(
        `SELECT status, count(*)::int AS n FROM roundtrip.writeback_plans WHERE run_id = $1 GROUP BY status`,
        [runId],
      );
      const errors = await errorsOf(env, runId);
      return { runId, pushed, ledger: ledger.rows, errors, writes: env.sf.calls.writes().length };
    };
    try {
      // 3 records: one plain Collections call; 250: one Composite call, its two subrequests refused.
      const plain = await push(3);
      const composite = await push(250);
      for (const [outcome, n] of [
        [plain, 3],
        [composite, 250],
      ] as const) {
        // Neither fails the step, nor leaves a record without an outcome: each is refused, with
        // Salesforce's code and message, in one call; the failure rate decides the run.
        expect(outcome.pushed).toMatchObject({ status: 'collected', planned: n, succeeded: 0, failed: n });
        expect(outcome.pushed).toMatchObject({ outcomeUnknown: 0, failureRateExceeded: true });
        expect(outcome.ledger).toEqual([{ status: 'failed', n }]);
        expect(outcome.writes).toBe(1);
        expect(outcome.errors).toHaveLength(n);
        for (const error of outcome.errors) {
          expect(error).toMatchObject({ stage: 'push', code: 'INVALID_FIELD' });
          expect(error.message).toContain(
            'Field name provided, External_Id__c is not an External ID or indexed field for Lead',
          );
        }
      }
      expect(plain.errors[0]?.message).toBe(
        'Salesforce refused the whole Collections upsert of Lead call that carried this record (3 records) with HTTP 400: INVALID_FIELD: Field name provided, External_Id__c is not an External ID or indexed field for Lead',
      );
      expect(composite.errors[0]?.message).toMatch(
        /^the Composite subrequest of this record \(chunk\d, \d+ records\) failed as a whole with HTTP 400: /,
      );
    } finally {
      key.externalId = true;
      key.idLookup = true;
    }
  });

  it('refuses each record of a whole Composite call Salesforce refuses with its error list (400 JSON_PARSER_ERROR), quoting its code and message', async () => {
    await leads('cut', 'Cut', 'Kramerica', 250);
    const deps = env.deps({ writeback: [upsert] });
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'Lead-upsert' });
    env.sf.calls.clear();

    const pushed = await pushWriteback(
      { ...deps, salesforce: nextWriteBodyCut(env.connector) },
      { runId, task: 'Lead-upsert' },
    );

    // Salesforce's own refusal of the call, about what it carries: each record fails with it.
    expect(pushed).toMatchObject({ status: 'collected', planned: 250, succeeded: 0, failed: 250 });
    expect(env.sf.calls.writes().map((w) => w.status)).toEqual([400]);
    const errors = await errorsOf(env, runId);
    expect(errors).toHaveLength(250);
    expect(new Set(errors.map((e) => e.code))).toEqual(new Set(['JSON_PARSER_ERROR']));
    expect(errors[0]?.message).toMatch(
      /^Salesforce refused the whole Composite upsert of Lead call that carried this record \(250 records\) with HTTP 400: JSON_PARSER_ERROR: Unexpected character in the request body: /,
    );
  });

  it("fails the step on a whole call answered 400 with a body that is not Salesforce's error list (a proxy's page), naming the call, its status and the body, every record left planned", async () => {
    const deps = env.deps({ writeback: [upsert] });
    for (const [records, call] of [
      [3, 'Collections upsert of Lead'],
      [250, 'Composite upsert of Lead'],
    ] as const) {
      await leads(`proxy${records}`, 'Proxy', 'Kramerica', records);
      const runId = await env.newRun();
      await planWriteback(deps, { runId, task: 'Lead-upsert' });
      env.sf.calls.clear();
      // A proxy between the connector and Salesforce refuses the call with its own HTML page.
      const proxied = refusingNextWrite(env.connector, () => env.sf.faults.set({ http400Burst: 1 }));

      const failed = await caught(
        pushWriteback({ ...deps, salesforce: proxied }, { runId, task: 'Lead-upsert' }),
      );

      expect(failed).toBeInstanceOf(TerminalError);
      expect(failed.message).toBe(
        `Salesforce ${call} (${records} records) was answered HTTP 400 with a body that is not Salesforce's error list, so not Salesforce refusing the records (a proxy or gateway on the way answers so): "<html> <head><title>400 Bad Request</title></head> <body> <center><h1>400 Bad Request</h1></center> <hr><center>nginx</center> </body> </html>". None of the records was written: they wait to be sent again`,
      );
      // Nothing lost, nothing failed: every record waits, planned, and none is recorded refused.
      const ledger = await env.pool.query(
        `SELECT status, count(*)::int AS n FROM roundtrip.writeback_plans WHERE run_id = $1 GROUP BY status`,
        [runId],
      );
      expect(ledger.rows).toEqual([{ status: 'planned', n: records }]);
      expect(await errorsOf(env, runId)).toEqual([]);
      expect(env.sf.calls.writes().map((w) => w.status)).toEqual([400]);
      expect(leadsWithExternalId(env, `proxy${records}-1`)).toEqual([]);

      env.sf.calls.clear();
      const retried = await pushWriteback(deps, { runId, task: 'Lead-upsert' });
      expect(retried).toMatchObject({ status: 'collected', planned: records, succeeded: records, failed: 0 });
      expect(env.sf.calls.writes().map((w) => w.records)).toEqual([records]);
      expect(leadsWithExternalId(env, `proxy${records}-${records}`)).toHaveLength(1);
    }
  });

  /**
   * 250 upserts (two subrequests of one Composite call) whose subrequest holding `${prefix}-99` is
   * refused with `message` (and 403 REQUEST_LIMIT_EXCEEDED unless `refusal` says otherwise): the
   * push's error, and the ledger checked as left (the refused subrequest's 50 records planned, the
   * other's 200 written).
   */
  async function pushWithSubrequestRefused(
    prefix: string,
    message: string,
    refusal: { status: number; errorCode: string } = { status: 403, errorCode: 'REQUEST_LIMIT_EXCEEDED' },
  ): Promise<{ failed: Error; runId: string; deps: ReturnType<WritebackEnv['deps']> }> {
    await leads(prefix, 'Sub', 'Kramerica', 250);
    const deps = env.deps({ writeback: [upsert] });
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'Lead-upsert' });
    const refusing = subrequestsWithKeysFail(env.connector, [`${prefix}-99`], { ...refusal, message });
    const failed = await caught(
      pushWriteback({ ...deps, salesforce: refusing }, { runId, task: 'Lead-upsert' }),
    );
    expect(await ledgerByStatus(env, runId)).toEqual([
      { status: 'planned', n: 50 },
      { status: 'succeeded', n: 200 },
    ]);
    return { failed, runId, deps };
  }

  it('a Composite subrequest refused for the daily allowance (403) leaves its records planned, and stops the run with ApiLimitExceededError as a refused plain call does', async () => {
    const { failed, runId, deps } = await pushWithSubrequestRefused(
      'sub403',
      'TotalRequests Limit exceeded.',
    );

    // The step fails as the call refused as a whole would have: the daily allowance is spent, so
    // the run stops (not retried in vain), with Salesforce's code and message and the task.
    expect(failed).toBeInstanceOf(ApiLimitExceededError);
    expect(failed.message).toMatch(
      /^Write-back Lead-upsert: 50 records wait to be sent again \(planned\): Salesforce wrote none of them, refusing their Composite subrequest for a reason about the call: Salesforce Collections upsert of Lead \(Composite subrequest chunk\d, 50 records\) failed: REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded\. \(the org's daily API allowance is spent; .*\)$/,
    );

    // The other subrequest's 200 records were written; the refused one's 50 wait, not failed.
    expect(await errorsOf(env, runId)).toEqual([]);
    env.sf.calls.clear();
    const retried = await pushWriteback(deps, { runId, task: 'Lead-upsert' });
    expect(retried).toMatchObject({ status: 'collected', planned: 250, succeeded: 250, failed: 0 });
    expect(env.sf.calls.writes().map((w) => w.records)).toEqual([50]);
  });

  it('a Composite subrequest refused for a concurrent-request limit fails the step transiently, with Salesforce’s code and message, as a refused plain call does', async () => {
    const { failed } = await pushWithSubrequestRefused('sub429', 'ConcurrentPerOrgLongTxn Limit exceeded.');

    // Concurrent requests free up in seconds: retried, unlike a spent daily allowance.
    expect(failed).toBeInstanceOf(TransientError);
    expect(failed).not.toBeInstanceOf(TerminalError);
    expect(failed.message).toMatch(
      /^Write-back Lead-upsert: 50 records wait to be sent again \(planned\): Salesforce wrote none of them, refusing their Composite subrequest for a reason about the call: Salesforce Collections upsert of Lead \(Composite subrequest chunk\d, 50 records\) failed: REQUEST_LIMIT_EXCEEDED: ConcurrentPerOrgLongTxn Limit exceeded\.$/,
    );
  });

  it('a Composite subrequest refused as too large (413) is not split: its records wait, planned, and the step fails with Salesforce’s code and message', async () => {
    env.sf.calls.clear();
    const { failed, runId } = await pushWithSubrequestRefused(
      'sub413',
      'request body exceeds 1048576 bytes',
      {
        status: 413,
        errorCode: 'REQUEST_ENTITY_TOO_LARGE',
      },
    );

    // Salesforce judges a request's size on its whole body; no subrequest answered 413 is known,
    // so none is split (push.ts, REQUEST_TOO_LARGE_STATUS): one call, nothing guessed at.
    expect(failed).toBeInstanceOf(TerminalError);
    expect(failed.message).toMatch(
      /^Write-back Lead-upsert: 50 records wait to be sent again \(planned\): Salesforce wrote none of them, refusing their Composite subrequest for a reason about the call: Salesforce Collections upsert of Lead \(Composite subrequest chunk\d, 50 records\) failed: REQUEST_ENTITY_TOO_LARGE: request body exceeds 1048576 bytes$/,
    );
    expect(env.sf.calls.writes()).toHaveLength(1);
    expect(await errorsOf(env, runId)).toEqual([]);
  });

  it('a Composite call with one subrequest refused for a reason about the call and another failed on Salesforce’s side fails the step with the refusal, its message naming both', async () => {
    await leads('both', 'Both', 'Kramerica', 250);
    const deps = env.deps({ writeback: [upsert] });
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'Lead-upsert' });
    // The first subrequest (the first 200 keys in order, both-1 among them) fails on Salesforce's
    // side, the second (the last 50, both-99 among them) is refused for the concurrent-request limit.
    const failing = subrequestsWithKeysFail(subrequestsWithKeysFail(env.connector, ['both-1']), ['both-99'], {
      status: 403,
      errorCode: 'REQUEST_LIMIT_EXCEEDED',
      message: 'ConcurrentPerOrgLongTxn Limit exceeded.',
    });

    const failed = await caught(
      pushWriteback({ ...deps, salesforce: failing }, { runId, task: 'Lead-upsert' }),
    );

    // The refusal's class (retried), and a message that says both what waits and what is unknown.
    expect(failed).toBeInstanceOf(TransientError);
    expect(failed.message).toBe(
      'Write-back Lead-upsert: 50 records wait to be sent again (planned): Salesforce wrote none of them, refusing their Composite subrequest for a reason about the call: Salesforce Collections upsert of Lead (Composite subrequest chunk1, 50 records) failed: REQUEST_LIMIT_EXCEEDED: ConcurrentPerOrgLongTxn Limit exceeded. Besides, 200 records sent have no outcome yet. Salesforce answered without their outcome: UNKNOWN_EXCEPTION: the Composite subrequest of this record (chunk0, 200 records) failed as a whole with HTTP 500: An unexpected error occurred (first record key "both-1")',
    );
    expect(await ledgerByStatus(env, runId)).toEqual([
      { status: 'planned', n: 50 },
      { status: 'sent', n: 200 },
    ]);

    // The retry sends both sets again, in one call.
    env.sf.calls.clear();
    const retried = await pushWriteback(deps, { runId, task: 'Lead-upsert' });
    expect(retried).toMatchObject({ status: 'collected', planned: 250, succeeded: 250, failed: 0 });
    expect(env.sf.calls.writes().map((w) => w.records)).toEqual([250]);
  });

  it('splits a call Salesforce refuses as too large (413) down to one record, and refuses a record too large alone with its key and size', async () => {
    await leads('big', 'Big', 'Acme', 6);
    // One record whose JSON alone is over the limit that one ordinary record is under.
    await env.pool.query(`UPDATE lead_src SET last_name = repeat('L', 80) WHERE ext = 'big-6'`);
    const deps = env.deps({ writeback: [upsert] });
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'Lead-upsert' });
    env.sf.faults.set({ maxRequestBodyBytes: 200 });
    env.sf.calls.clear();

    const pushed = await pushWriteback(deps, { runId, task: 'Lead-upsert' });

    // The run goes on: every record but the one too large alone is written.
    expect(pushed).toMatchObject({
      status: 'collected',
      planned: 6,
      succeeded: 5,
      failed: 1,
      outcomeUnknown: 0,
    });
    for (let i = 1; i <= 5; i += 1) expect(leadsWithExternalId(env, `big-${i}`)).toHaveLength(1);
    expect(leadsWithExternalId(env, 'big-6')).toEqual([]);
    const errors = await errorsOf(env, runId);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ key: 'big-6', stage: 'push', code: 'REQUEST_ENTITY_TOO_LARGE' });
    expect(errors[0]?.message).toMatch(
      /^key "big-6": Salesforce refused the call of this record alone as too large \(HTTP 413: request body exceeds 200 bytes\); the record's JSON is \d+ bytes\./,
    );
    // Split only after a 413, in halves: 6 → 3 + 3 → (2 → 1 + 1) + 1 and (2 → 1 + 1) + 1, the
    // last refused alone. Each call is made once; the refused ones wrote nothing.
    expect(env.sf.calls.writes().map((w) => w.status)).toEqual([
      413, 413, 413, 200, 200, 200, 413, 413, 200, 200, 413,
    ]);
    // The push's count of its calls has the refused ones too: each is an API call to Salesforce.
    expect(env.sf.calls.count({ write: true, counted: true })).toBe(11);
    const sent = env.logger.records.filter(
      (r) => r.message === 'Plan sent with sObject Collections' && r.attributes.runId === runId,
    );
    expect(sent.map((r) => r.attributes.calls)).toEqual([11]);
  });

  it('keeps the results of a Composite call whose one subrequest failed on Salesforce’s side, and resolves that subrequest’s records', async () => {
    await env.pool.query('DELETE FROM lead_src');
    await env.pool.query(
      `INSERT INTO lead_src SELECT 'sub-' || lpad(i::text, 3, '0'), 'Sub ' || i, 'Globex', i % 100 FROM generate_series(1, 450) AS i`,
    );
    // Salesforce writes every record; its answer says the second subrequest failed with a 500.
    const lying = secondSubrequestFails(env.connector);
    const status = (runId: string) => ledgerByStatus(env, runId);
    const before = env.sf.store.count('Lead');

    // Insert: the 200 records of unknown outcome are looked up by external ID in the same step.
    const insertDeps = env.deps({ writeback: [{ ...upsert, mode: 'insert' as const }] });
    const insertRun = await env.newRun();
    await planWriteback(insertDeps, { runId: insertRun, task: 'Lead-insert' });
    env.sf.calls.clear();
    const inserted = await pushWriteback(
      { ...insertDeps, salesforce: lying },
      { runId: insertRun, task: 'Lead-insert' },
    );
    expect(inserted).toMatchObject({ status: 'collected', planned: 450, succeeded: 450, failed: 0 });
    expect(env.sf.calls.writes().map((w) => w.records)).toEqual([450]);
    expect(env.sf.store.count('Lead')).toBe(before + 450);
    expect(await status(insertRun)).toEqual([{ status: 'succeeded', n: 450 }]);

    // Upsert: they stay `sent`, the step fails transiently, and its retry sends just those again.
    await env.pool.query(`UPDATE lead_src SET score = score + 1`);
    const upsertDeps = env.deps({ writeback: [upsert] });
    const upsertRun = await env.newRun();
    await planWriteback(upsertDeps, { runId: upsertRun, task: 'Lead-upsert' });
    await expect(
      pushWriteback({ ...upsertDeps, salesforce: lying }, { runId: upsertRun, task: 'Lead-upsert' }),
    ).rejects.toThrow(
      'Write-back Lead-upsert: 200 records sent or waiting to be sent have no outcome yet; retry the step. Salesforce answered without their outcome: UNKNOWN_EXCEPTION: the Composite subrequest of this record (chunk1, 200 records) failed as a whole with HTTP 500: An unexpected error occurred (first record key "sub-201")',
    );
    expect(await status(upsertRun)).toEqual([
      { status: 'sent', n: 200 },
      { status: 'succeeded', n: 250 },
    ]);
    env.sf.calls.clear();
    const upserted = await pushWriteback(upsertDeps, { runId: upsertRun, task: 'Lead-upsert' });
    expect(upserted).toMatchObject({ status: 'collected', planned: 450, succeeded: 450, failed: 0 });
    expect(env.sf.calls.writes().map((w) => w.records)).toEqual([200]);
    expect(env.sf.store.count('Lead')).toBe(before + 450);
    expect(leadsWithExternalId(env, 'sub-300')[0]).toMatchObject({ LeadScore__c: 1 });
    expect(await status(upsertRun)).toEqual([{ status: 'succeeded', n: 450 }]);
  });

  it('ties each Composite subrequest’s results to its own records by referenceId, whatever the answer’s order', async () => {
    // Two subrequests of 200; one record of the plan is locked for good.
    await leads('ref', 'Ref', 'Initech', 400);
    env.sf.faults.set({ lockRowKeys: ['ref-250'] });
    const deps = env.deps({ writeback: [{ ...upsert, mode: 'insert' as const }] });
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'Lead-insert' });

    const pushed = await pushWriteback(
      { ...deps, salesforce: compositeAnswerReversed(env.connector) },
      { runId, task: 'Lead-insert' },
    );

    expect(pushed).toMatchObject({ status: 'collected', planned: 400, succeeded: 399, failed: 1 });
    expect((await errorsOf(env, runId)).map((e) => [e.key, e.code])).toEqual([
      ['ref-250', 'UNABLE_TO_LOCK_ROW'],
    ]);
    // Each key once in Salesforce, and recorded with the Id of the record created for it.
    const { rows } = await env.pool.query<{ key: string; salesforce_id: string }>(
      `SELECT key, salesforce_id FROM roundtrip.sync_state WHERE task = 'Lead-insert' AND key LIKE 'ref-%'`,
    );
    expect(rows).toHaveLength(399);
    const wrong = rows.filter((r) => {
      const found = leadsWithExternalId(env, r.key);
      return found.length !== 1 || found[0]?.Id !== r.salesforce_id;
    });
    expect(wrong).toEqual([]);
    expect(leadsWithExternalId(env, 'ref-250')).toEqual([]);
  });

  it('an insert to be sent again after its subrequest failed on Salesforce’s side is not, when an overlapping run inserted the key meanwhile', async () => {
    await leads('resend', 'Resend', 'Initech', 450);
    const deps = env.deps({ writeback: [{ ...upsert, mode: 'insert' as const }] });
    const a = await env.newRun();
    await planWriteback(deps, { runId: a, task: 'Lead-insert' });
    // The second subrequest (seq 201–400) fails on Salesforce's side and creates nothing: looked
    // up at once and not found, its records are to be sent again, and the step fails transiently.
    const { rows } = await env.pool.query<{ key: string }>(
      `SELECT key FROM roundtrip.writeback_plan_rows WHERE run_id = $1 AND seq = 250`,
      [a],
    );
    const failing = {
      ...deps,
      salesforce: subrequestsWithKeysFail(
        env.connector,
        rows.map((r) => r.key),
      ),
    };
    await expect(pushWriteback(failing, { runId: a, task: 'Lead-insert' })).rejects.toThrow(
      /200 records sent or waiting to be sent have no outcome yet/,
    );
    // Before the step's retry, a run started by hand plans and inserts those 200 keys (nobody
    // holds them as sent).
    const b = await env.newRun();
    expect((await runWriteback(deps, { runId: b, task: 'Lead-insert' })).result).toMatchObject({
      succeeded: 200,
    });

    env.sf.calls.clear();
    const retried = await pushWriteback(deps, { runId: a, task: 'Lead-insert' });

    expect(retried).toMatchObject({
      status: 'collected',
      planned: 450,
      succeeded: 250,
      failed: 0,
      heldBack: 200,
    });
    expect(env.sf.calls.count({ write: true })).toBe(0);
    const errors = await errorsOf(env, a);
    expect(errors).toHaveLength(200);
    expect(errors.every((e) => e.code === 'ALREADY_INSERTED')).toBe(true);
    for (let i = 1; i <= 450; i += 1) expect(leadsWithExternalId(env, `resend-${i}`)).toHaveLength(1);
  });

  it('never inserts a key twice when two runs overlap: the later push refuses keys the other run inserted since its plan', async () => {
    await leads('ovl', 'Overlap', 'Soylent', 3);
    const deps = env.deps({ writeback: [{ ...upsert, mode: 'insert' as const }] });
    const before = env.sf.store.count('Lead');
    const early = await env.newRun();
    const late = await env.newRun();
    // Both plan before either pushes: each sees three keys to insert.
    expect(await planWriteback(deps, { runId: early, task: 'Lead-insert' })).toMatchObject({ changed: 3 });
    expect(await planWriteback(deps, { runId: late, task: 'Lead-insert' })).toMatchObject({ changed: 3 });
    expect(await pushWriteback(deps, { runId: late, task: 'Lead-insert' })).toMatchObject({ succeeded: 3 });
    env.sf.calls.clear();

    const pushed = await pushWriteback(deps, { runId: early, task: 'Lead-insert' });

    expect(pushed).toMatchObject({ planned: 3, succeeded: 0, failed: 0, heldBack: 3 });
    expect(env.sf.calls.count({ write: true })).toBe(0);
    expect(env.sf.store.count('Lead')).toBe(before + 3);
    const errors = await errorsOf(env, early);
    expect(errors.map((e) => [e.key, e.code])).toEqual([
      ['ovl-1', 'ALREADY_INSERTED'],
      ['ovl-2', 'ALREADY_INSERTED'],
      ['ovl-3', 'ALREADY_INSERTED'],
    ]);
    expect(errors[0]?.message).toMatch(
      new RegExp(`^inserted as 00Q\\w+ by run ${late} after this run planned it`),
    );
  });

  it('refuses a key the other run inserted written otherwise (case, surrounding whitespace): one record for Salesforce', async () => {
    await leads('wov', 'Written otherwise', 'Soylent', 2);
    const deps = env.deps({ writeback: [{ ...upsert, mode: 'insert' as const }] });
    const before = env.sf.store.count('Lead');
    const late = await env.newRun();
    expect(await planWriteback(deps, { runId: late, task: 'Lead-insert' })).toMatchObject({ changed: 2 });
    await env.pool.query(`UPDATE lead_src SET ext = ' ' || upper(ext) || ' '`);
    const early = await env.newRun();
    expect(await planWriteback(deps, { runId: early, task: 'Lead-insert' })).toMatchObject({ changed: 2 });
    expect(await pushWriteback(deps, { runId: late, task: 'Lead-insert' })).toMatchObject({ succeeded: 2 });
    env.sf.calls.clear();

    const pushed = await pushWriteback(deps, { runId: early, task: 'Lead-insert' });

    expect(pushed).toMatchObject({ planned: 2, succeeded: 0, failed: 0, heldBack: 2 });
    expect(env.sf.calls.count({ write: true })).toBe(0);
    expect(env.sf.store.count('Lead')).toBe(before + 2);
    expect((await errorsOf(env, early)).map((e) => [e.key, e.code])).toEqual([
      [' WOV-1 ', 'ALREADY_INSERTED'],
      [' WOV-2 ', 'ALREADY_INSERTED'],
    ]);
  });

  it('refuses them on the Bulk path too, creating no job for a chunk with nothing left to send', async () => {
    await leads('bovl', 'Bulk overlap', 'Tyrell', 4);
    const deps = env.deps({ writeback: [{ ...upsert, mode: 'insert' as const, bulkThreshold: 1 }] });
    const before = env.sf.store.count('Lead');
    const earliest = await env.newRun();
    const early = await env.newRun();
    const late = await env.newRun();
    await planWriteback(deps, { runId: earliest, task: 'Lead-insert' });
    await planWriteback(deps, { runId: early, task: 'Lead-insert' });
    // The later run inserts two of the four keys.
    await env.pool.query(`DELETE FROM lead_src WHERE ext IN ('bovl-3', 'bovl-4')`);
    await planWriteback(deps, { runId: late, task: 'Lead-insert' });
    await env.pool.query(
      `INSERT INTO lead_src SELECT 'bovl-' || i, 'Bulk overlap ' || i, 'Tyrell', i FROM generate_series(3, 4) AS i`,
    );
    let late_ = await pushWriteback(deps, { runId: late, task: 'Lead-insert' });
    while (late_.status === 'bulk-pending') late_ = await collectWriteback(deps, late_);
    expect(late_).toMatchObject({ succeeded: 2 });
    env.sf.calls.clear();

    let pushed = await pushWriteback(deps, { runId: early, task: 'Lead-insert' });
    expect(pushed).toMatchObject({ status: 'bulk-pending', jobIds: [expect.any(String)] });
    while (pushed.status === 'bulk-pending') pushed = await collectWriteback(deps, pushed);

    expect(pushed).toMatchObject({ planned: 4, succeeded: 2, failed: 0, heldBack: 2 });
    // Only the two keys nobody inserted went into the job.
    const { rows: jobs } = await env.pool.query(
      `SELECT records_processed::int AS n FROM roundtrip.writeback_jobs WHERE run_id = $1`,
      [early],
    );
    expect(jobs).toEqual([{ n: 2 }]);
    expect(env.sf.store.count('Lead')).toBe(before + 4);
    expect((await errorsOf(env, early)).map((e) => [e.key, e.code])).toEqual([
      ['bovl-1', 'ALREADY_INSERTED'],
      ['bovl-2', 'ALREADY_INSERTED'],
    ]);

    // A run whose every key was inserted since its plan creates no job at all, and has none to
    // wait for (a bulk-pending without jobs is no valid input of Collect).
    env.sf.calls.clear();
    const last = await pushWriteback(deps, { runId: earliest, task: 'Lead-insert' });
    expect(WritebackPushOutput.parse(last)).toMatchObject({
      status: 'collected',
      planned: 4,
      succeeded: 0,
      failed: 0,
      heldBack: 4,
    });
    expect(env.sf.calls.count({ write: true })).toBe(0);
    expect(env.sf.store.count('Lead')).toBe(before + 4);
  });

  it('runs one push of a task at a time: a second one at once is a transient error, and inserts nothing twice', async () => {
    await leads('once', 'Once', 'Wonka', 5);
    const deps = env.deps({ writeback: [{ ...upsert, mode: 'insert' as const }] });
    const runId = await env.newRun();
    const before = env.sf.store.count('Lead');
    await planWriteback(deps, { runId, task: 'Lead-insert' });
    env.sf.faults.set({ latencyMs: 200 });

    // The same step started twice (a retried invoke while the first still runs).
    const outcomes = await Promise.allSettled([
      pushWriteback(deps, { runId, task: 'Lead-insert' }),
      pushWriteback(deps, { runId, task: 'Lead-insert' }),
    ]);

    const refused = outcomes.filter((o) => o.status === 'rejected');
    expect(refused).toHaveLength(1);
    expect((refused[0] as PromiseRejectedResult).reason).toBeInstanceOf(TransientError);
    expect((refused[0] as PromiseRejectedResult).reason).toMatchObject({ name: 'TaskBusyError' });
    expect(String((refused[0] as PromiseRejectedResult).reason)).toMatch(
      /Write-back Lead-insert: another push or collect of this task is running/,
    );
    expect(outcomes.find((o) => o.status === 'fulfilled')).toMatchObject({
      value: { succeeded: 5, failed: 0 },
    });
    expect(env.sf.store.count('Lead')).toBe(before + 5);
    // Its retry finds the work done.
    env.sf.faults.clear();
    env.sf.calls.clear();
    expect(await pushWriteback(deps, { runId, task: 'Lead-insert' })).toMatchObject({
      succeeded: 5,
      failed: 0,
    });
    expect(env.sf.calls.count({ write: true })).toBe(0);
  });

  it('an insert without an external-ID key whose result was lost is reported, never resent', async () => {
    await leads('nokey', 'NoKey', 'Vandelay', 3);
    const insert = {
      to: 'salesforce' as const,
      object: 'Lead',
      from: 'lead_src',
      mode: 'insert' as const,
      keyColumn: 'ext',
      fields: { LastName: 'last_name', Company: 'company' },
    };
    const deps = env.deps({ writeback: [insert] });
    const runId = await env.newRun();
    const before = env.sf.store.count('Lead');
    await planThenCrashInPush(env, deps, runId, 'Lead-insert');
    env.sf.calls.clear();

    const retried = await pushWriteback(deps, { runId, task: 'Lead-insert' });

    // Not refused by Salesforce: of unknown outcome.
    expect(retried).toMatchObject({ succeeded: 0, failed: 0, outcomeUnknown: 3 });
    expect(env.sf.calls.count({ write: true })).toBe(0);
    expect(env.sf.store.count('Lead')).toBe(before + 3);
    expect((await errorsOf(env, runId)).map((e) => e.code)).toEqual(Array(3).fill('INSERT_OUTCOME_UNKNOWN'));
    // A later run does not send them either.
    const later = await runWriteback(deps, { runId: await env.newRun(), task: 'Lead-insert' });
    expect(later.plan).toMatchObject({ changed: 0, rejected: 0, heldBack: 3 });
    expect(env.sf.store.count('Lead')).toBe(before + 3);
  });

  describe('per-record failures (update through Collections)', () => {
    const update = SCORE_UPDATE;
    let ids: string[];

    beforeAll(async () => {
      ids = env.sf.store.seed('Lead', leadSeed(20, 100));
    });

    async function scores(score: (i: number) => number): Promise<void> {
      await env.pool.query('DELETE FROM lead_scores');
      await env.pool.query(`INSERT INTO lead_scores SELECT id, 0 FROM unnest($1::text[]) AS id`, [ids]);
      await env.pool.query(
        `UPDATE lead_scores s SET score = v.score FROM unnest($1::text[], $2::int[]) AS v(id, score) WHERE s."Id" = v.id`,
        [ids, ids.map((_, i) => score(i))],
      );
    }

    it('retries a locked record serially and records it once the lock is gone', async () => {
      await scores((i) => i + 1);
      const locked = ids[3] as string;
      env.sf.faults.set({ lockRowKeys: [locked] });
      const base = env.deps({ writeback: [update] });
      let pauses = 0;
      // The lock is released while the push waits before its first retry.
      const deps = {
        ...base,
        clock: {
          now: () => new Date(),
          sleep: async () => {
            pauses += 1;
            env.sf.faults.set({ lockRowKeys: undefined });
          },
        },
      };
      const runId = await env.newRun();
      env.sf.calls.clear();

      const { result } = await runWriteback(deps, { runId, task: 'Lead-update' });

      expect(result).toMatchObject({ succeeded: 20, failed: 0 });
      expect(pauses).toBe(1);
      expect(env.sf.calls.writes().map((w) => w.records)).toEqual([20, 1]);
      expect(env.sf.store.get(locked)?.LeadScore__c).toBe(4);
      expect(await errorsOf(env, runId)).toEqual([]);
    });

    it('sends a locked record again when its retry call died with the step, instead of leaving it out of every count', async () => {
      await scores((i) => i + 7);
      const locked = ids[2] as string;
      env.sf.faults.set({ lockRowKeys: [locked] });
      const base = env.deps({ writeback: [update] });
      const runId = await env.newRun();
      await planWriteback(base, { runId, task: 'Lead-update' });
      // The main call is answered (one record locked); the serial retry's call reaches
      // Salesforce, the lock now gone, but the step dies before recording its answer.
      let writes = 0;
      const crashing = crashingConnector(
        env.connector,
        (_operation, method) => method !== 'GET' && ++writes === 2,
      );
      const dying = {
        ...base,
        salesforce: crashing,
        clock: { now: () => new Date(), sleep: async () => env.sf.faults.set({ lockRowKeys: undefined }) },
      };
      await expect(pushWriteback(dying, { runId, task: 'Lead-update' })).rejects.toThrow(/simulated crash/);
      env.sf.calls.clear();

      const retried = await pushWriteback(
        { ...base, clock: { now: () => new Date(), sleep: async () => undefined } },
        { runId, task: 'Lead-update' },
      );

      expect(retried).toMatchObject({ status: 'collected', planned: 20, succeeded: 20, failed: 0 });
      // Only the record without an outcome is sent again.
      expect(env.sf.calls.writes().map((w) => w.records)).toEqual([1]);
      expect(env.sf.store.get(locked)?.LeadScore__c).toBe(9);
      const { rows } = await env.pool.query(
        `SELECT status, count(*)::int AS n FROM roundtrip.writeback_plans WHERE run_id = $1 GROUP BY status`,
        [runId],
      );
      expect(rows).toEqual([{ status: 'succeeded', n: 20 }]);
    });

    it('gives up on a record still locked after the bounded retries, with Salesforce code and message', async () => {
      await scores((i) => i + 2);
      const locked = ids[5] as string;
      env.sf.faults.set({ lockRowKeys: [locked] });
      const runId = await env.newRun();
      env.sf.calls.clear();

      const { result } = await runWriteback(env.deps({ writeback: [update] }), {
        runId,
        task: 'Lead-update',
      });

      expect(result).toMatchObject({ succeeded: 19, failed: 1 });
      // First pass, then three serial retries of the one record.
      expect(env.sf.calls.writes().map((w) => w.records)).toEqual([20, 1, 1, 1]);
      const errors = await errorsOf(env, runId);
      expect(errors).toEqual([
        expect.objectContaining({
          key: locked,
          stage: 'push',
          code: 'UNABLE_TO_LOCK_ROW',
          message: expect.stringMatching(/unable to obtain exclusive access/),
        }),
      ]);
      const { rows } = await env.pool.query(
        `SELECT attempts FROM roundtrip.writeback_plans WHERE run_id = $1 AND key = $2`,
        [runId, locked],
      );
      expect(rows[0].attempts).toBe(4);
    });

    it('records a deleted record as ENTITY_IS_DELETED and fails the run when the failure rate passes maxFailureRate, after reporting', async () => {
      await scores((i) => i + 3);
      env.sf.store.delete([ids[0] as string, ids[1] as string]);
      const deps = env.deps({ writeback: [{ ...update, maxFailureRate: 0.05 }] });
      const runId = await env.newRun();

      const { result } = await runWriteback(deps, { runId, task: 'Lead-update' });

      expect(result).toMatchObject({
        planned: 20,
        succeeded: 18,
        failed: 2,
        failureRate: 0.1,
        failureRateExceeded: true,
      });
      const errors = await errorsOf(env, runId);
      expect(errors.map((e) => e.code)).toEqual(['ENTITY_IS_DELETED', 'ENTITY_IS_DELETED']);
      expect(errors.map((e) => e.key).sort()).toEqual([ids[0], ids[1]].sort());
      const report = await reportRun(deps, { runId });
      expect(report.status).toBe('failed');
      expect(report.reason).toMatch(/2 of 20 records failed \(10\.00 %\), more than maxFailureRate 5\.00 %/);
      const { rows } = await env.pool.query(
        `SELECT status, error, summary FROM roundtrip.runs WHERE run_id = $1`,
        [runId],
      );
      expect(rows[0]).toMatchObject({ status: 'failed', error: report.reason });
      expect(rows[0].summary.writeback['Lead-update']).toMatchObject({ written: 18, failed: 2 });
    });

    it('records a duplicate value refused by Salesforce (a unique external ID taken by another record)', async () => {
      await env.pool.query(`CREATE TABLE lead_ext ("Id" text, ext text)`);
      // ids[9] takes the external ID that ids[10] already has; ids[11] gets a fresh one.
      await env.pool.query(`INSERT INTO lead_ext VALUES ($1, 'ext-0110'), ($2, 'fresh-11')`, [
        ids[9],
        ids[11],
      ]);
      const runId = await env.newRun();
      const task = {
        to: 'salesforce' as const,
        object: 'Lead',
        from: 'lead_ext',
        mode: 'update' as const,
        fields: { External_Id__c: 'ext' },
      };

      const { result } = await runWriteback(env.deps({ writeback: [task] }), { runId, task: 'Lead-update' });

      expect(result).toMatchObject({ succeeded: 1, failed: 1 });
      expect(await errorsOf(env, runId)).toEqual([
        expect.objectContaining({
          key: ids[9],
          stage: 'push',
          code: 'DUPLICATE_VALUE',
          message: `duplicate value found: External_Id__c duplicates value on record with id: ${ids[10]}`,
        }),
      ]);
      expect(env.sf.store.get(ids[11] as string)?.External_Id__c).toBe('fresh-11');
    });

    it('records a validation rule failure with its message and fields', async () => {
      // A validation rule of the org: scores of 13 are refused. (Runs last: it replaces the emulator's fault hook.)
      env.sf.store.setRecordFault((_object, record) =>
        record.LeadScore__c === 13
          ? {
              statusCode: 'FIELD_CUSTOM_VALIDATION_EXCEPTION',
              message: 'Score 13 is not allowed',
              fields: ['LeadScore__c'],
            }
          : undefined,
      );
      await scores((i) => (i === 7 ? 13 : 50 + i));
      const runId = await env.newRun();

      const { result } = await runWriteback(env.deps({ writeback: [update] }), {
        runId,
        task: 'Lead-update',
      });

      // The two leads deleted by an earlier test fail too.
      expect(result).toMatchObject({ failed: 3 });
      expect((await errorsOf(env, runId)).filter((e) => e.code !== 'ENTITY_IS_DELETED')).toEqual([
        expect.objectContaining({
          key: ids[7],
          code: 'FIELD_CUSTOM_VALIDATION_EXCEPTION',
          message: 'Score 13 is not allowed',
          fields: ['LeadScore__c'],
        }),
      ]);
      expect(env.sf.store.get(ids[8] as string)?.LeadScore__c).toBe(58);
    });

    it('records a converted lead as CANNOT_UPDATE_CONVERTED_LEAD: Salesforce refuses any update of it', async () => {
      // Converted in Salesforce since its score was last written.
      const converted = ids[12] as string;
      env.sf.store.convertLeads([converted]);
      await scores((i) => 60 + i);
      const runId = await env.newRun();

      const { result } = await runWriteback(env.deps({ writeback: [update] }), {
        runId,
        task: 'Lead-update',
      });

      // The two leads deleted by an earlier test fail too.
      expect(result).toMatchObject({ failed: 3 });
      expect((await errorsOf(env, runId)).filter((e) => e.code !== 'ENTITY_IS_DELETED')).toEqual([
        expect.objectContaining({
          key: converted,
          stage: 'push',
          code: 'CANNOT_UPDATE_CONVERTED_LEAD',
          message: 'cannot reference converted lead',
          fields: [],
        }),
      ]);
      expect(env.sf.store.get(converted)?.LeadScore__c).toBe(62);
      expect(env.sf.store.get(ids[13] as string)?.LeadScore__c).toBe(73);
    });
  });
});
