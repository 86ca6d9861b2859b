/**
 * Insert keys in a Bulk job that a run which ended uploaded and never collected, when no plan of
 * the task can collect it: the task's object or key changed in the config (its plan is refused
 * before it resolves what ended runs left: SyncScopeChangedError), or the config no longer names
 * the task (no plan of it runs). `roundtrip resolve` (recordInsertOutcomes) asks Salesforce about
 * the job, closes it when it was uploaded and never closed, and collects it once finished, as the
 * plan would: each key's outcome is the job's results, never a guess; a key whose job may still
 * be running stays refused, saying how to go on. Then `roundtrip forget` can go on.
 */
import type { CoreDeps } from '../../../lambdas/core/deps';
import { getIngestJob, isFinalIngestState } from '../../../lambdas/connectors/salesforce/writes';
import { forgetTask } from '../../../lambdas/core/task-state';
import { planWriteback, pushWriteback, reportRun } from '../../../lambdas/core/writeback';
import {
  collectInsertJobs,
  OutcomeRefusedError,
  recordInsertOutcomes,
} from '../../../lambdas/core/writeback/resolve';
import { SyncScopeChangedError } from '../../../lambdas/core/writeback/scope';
import { TerminalError, TransientError } from '../../../lambdas/shared/errors';
import {
  LEAD_SRC_UPSERT,
  planThenCrashInPush,
  SCORE_UPDATE,
  startWritebackEnv,
  type WritebackEnv,
} from './support';

describe('insert keys in a Bulk job never collected, of a task no plan of which collects it', () => {
  let env: WritebackEnv;

  beforeAll(async () => {
    env = await startWritebackEnv();
    await env.pool.query(
      `CREATE TABLE lead_src (ext text, ext2 text, last_name text, company text, score integer)`,
    );
  });
  afterAll(async () => env?.stop());

  /** Insert of Lead keyed by External_Id__c, through Bulk jobs from 5 records. */
  const task = (name: string) => ({ ...LEAD_SRC_UPSERT, name, mode: 'insert' as const, bulkThreshold: 5 });

  /** Replaces lead_src by `n` rows keyed `${prefix}-1`… (ext2 the same keys, another column). */
  async function source(prefix: string, n: number): Promise<void> {
    await env.pool.query('DELETE FROM lead_src');
    await env.pool.query(
      `INSERT INTO lead_src SELECT $1 || '-' || i, $1 || '-' || i, $1 || ' ' || i, 'Initech', i
         FROM generate_series(1, $2::int) AS i`,
      [prefix, n],
    );
  }

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

  async function finished(jobId: string): Promise<void> {
    while (!isFinalIngestState((await getIngestJob(env.connector, jobId)).state)) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /**
   * Plans and pushes `name` through one Bulk job and ends the run before it collected the job
   * (its records left `sent`): the job run to its end in Salesforce, or (`closed` false) uploaded
   * whole and never closed, `Open` there.
   */
  async function sentAndEnded(
    deps: CoreDeps,
    name: string,
    closed: boolean,
  ): Promise<{ dead: string; jobId: string }> {
    const dead = await env.newRun();
    await planWriteback(deps, { runId: dead, task: name });
    if (closed) {
      expect(await pushWriteback(deps, { runId: dead, task: name })).toMatchObject({
        status: 'bulk-pending',
      });
    } else {
      await expect(
        pushWriteback({ ...deps, salesforce: noClose() }, { runId: dead, task: name }),
      ).rejects.toThrow(/unreachable/);
    }
    await reportRun(deps, { runId: dead, error: { Error: 'States.Timeout', Cause: 'Task timed out' } });
    const { rows } = await env.pool.query<{ job_id: string }>(
      `SELECT job_id FROM roundtrip.writeback_jobs WHERE run_id = $1`,
      [dead],
    );
    const jobId = rows[0]?.job_id ?? '';
    if (closed) await finished(jobId);
    return { dead, jobId };
  }

  async function ledger(runId: string): Promise<Record<string, number>> {
    const { rows } = await env.pool.query<{ status: string; n: number }>(
      `SELECT status, count(*)::int AS n FROM roundtrip.writeback_plans WHERE run_id = $1 GROUP BY status`,
      [runId],
    );
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }

  async function job(jobId: string): Promise<{ state: string; collected: boolean } | undefined> {
    const { rows } = await env.pool.query<{ state: string; collected: boolean }>(
      `SELECT state, collected_at IS NOT NULL AS collected FROM roundtrip.writeback_jobs WHERE job_id = $1`,
      [jobId],
    );
    return rows[0];
  }

  function leadOf(name: string): string | undefined {
    return [...env.sf.store.all('Lead')].find((r) => r.LastName === name)?.Id as string | undefined;
  }

  const refusal = async (p: Promise<unknown>): Promise<readonly string[]> => {
    const err: unknown = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(OutcomeRefusedError);
    return (err as OutcomeRefusedError).problems;
  };

  it("whose object or key changed: the plan is refused before it collects the job; resolve collects it, recording the job's outcomes, and forget goes on", async () => {
    await source('moved', 6);
    const before = env.deps({ writeback: [task('Lead-moved')] });
    const { dead, jobId } = await sentAndEnded(before, 'Lead-moved', true);

    // The task now reads its keys from another column: its plan is refused before it resolves
    // what the ended run left, so the job is never collected, and forget refuses the task.
    const changed = env.deps({ writeback: [{ ...task('Lead-moved'), keyColumn: 'ext2' }] });
    const plan = planWriteback(changed, { runId: await env.newRun(), task: 'Lead-moved' });
    await expect(plan).rejects.toThrow(SyncScopeChangedError);
    // Its message names the way out: the job's results tell, nothing to look for in Salesforce.
    const message = await plan.then(
      () => '',
      (e: unknown) => (e as Error).message,
    );
    expect(message).toMatch(
      / Its 6 insert record\(s\) sent whose outcome is unknown \(roundtrip\.writeback_plans, status sent\) are resolved by no plan while the task is refused so, and forget refuses the task until they are resolved: put the config back as it was and run the pipeline, whose plan resolves them, or for the 6 in Bulk jobs their run never collected, nothing to look for \(the jobs' results tell\): roundtrip resolve --task Lead-moved --collect-jobs \(with the pipeline's --config and --secrets\) asks Salesforce about each job and collects it once finished, recording each key's outcome from its results\.$/,
    );
    expect(message).not.toContain('--without-look-up');
    // Planned by the CLI (run, plan), the command carries the options it was given instead.
    const fromCli = await planWriteback(
      { ...changed, commandOptions: " --config 'my pipeline.config.ts' --secrets secrets.json" },
      { runId: await env.newRun(), task: 'Lead-moved' },
    ).catch((e: unknown) => (e as Error).message);
    expect(fromCli).toContain(
      ": roundtrip resolve --task Lead-moved --config 'my pipeline.config.ts' --secrets secrets.json --collect-jobs asks Salesforce about each job",
    );
    expect(await job(jobId)).toMatchObject({ collected: false });
    expect(
      await forgetTask(env.pool, 'wb-test', 'Lead-moved', { apply: true, configuredMode: 'insert' }),
    ).toMatchObject({ kind: 'outcomes-unknown' });
    // Without Salesforce to ask, the key is refused as before, naming the way out.
    const { salesforce: _sf, ...offline } = changed;
    expect(
      await refusal(recordInsertOutcomes(offline, 'Lead-moved', [{ key: 'moved-1', salesforceId: null }])),
    ).toEqual([
      expect.stringMatching(
        new RegExp(
          `^key moved-1 was sent by run ${dead} in Bulk job ${jobId}, which that run never collected: .*this command asks Salesforce about the job with the config's Salesforce secret, which the config of this pipeline does not name \\(salesforce.secret\\): run it with the pipeline's own --config and --secrets`,
        ),
      ),
    ]);

    // resolve asks Salesforce, finds the job finished and collects it: the outcome recorded is
    // the job's (created), not the one given, and so for every key the job carried.
    env.sf.calls.clear();
    const recorded = await recordInsertOutcomes(changed, 'Lead-moved', [
      { key: 'moved-1', salesforceId: null },
    ]);
    expect(recorded).toEqual([
      {
        key: 'moved-1',
        runId: dead,
        sentBy: { api: 'bulk', jobId, jobState: 'JobComplete' },
        outcome: 'inserted',
        salesforceId: leadOf('moved 1'),
        fromJobResults: { differs: true },
      },
    ]);
    expect(env.sf.calls.count({ write: true })).toBe(0);
    expect(await ledger(dead)).toEqual({ succeeded: 6 });
    expect(await job(jobId)).toEqual({ state: 'JobComplete', collected: true });
    const { rows: synced } = await env.pool.query(
      `SELECT count(*)::int AS n FROM roundtrip.sync_state WHERE task = 'Lead-moved' AND salesforce_id IS NOT NULL`,
    );
    expect(synced).toEqual([{ n: 6 }]);
    const { rows: figures } = await env.pool.query(
      `SELECT summary->'writeback'->'Lead-moved' AS f FROM roundtrip.runs WHERE run_id = $1`,
      [dead],
    );
    expect(figures[0]?.f).toMatchObject({
      written: 6,
      outcomeUnknown: 0,
      outcomesResolvedBy: 'roundtrip resolve',
    });

    // Nothing unknown is left: forget goes on (the records inserted are inserted again, as it says).
    expect(
      await forgetTask(env.pool, 'wb-test', 'Lead-moved', {
        apply: true,
        configuredMode: 'insert',
        insertAgain: true,
      }),
    ).toMatchObject({ kind: 'forgotten', deleted: true });
  });

  it('whose object or key changed, with keys sent by a call and keys in a job never collected: the refusal gives each kind its own way out, with its count', async () => {
    const name = 'Lead-both';
    const before = env.deps({ writeback: [task(name)] });
    // Two keys sent by a Collections call (fewer than bulkThreshold), its answers lost, the run ended.
    await source('both', 2);
    const byCall = await env.newRun();
    await planThenCrashInPush(env, before, byCall, name);
    await reportRun(before, { runId: byCall, error: { Error: 'States.Timeout', Cause: 'Task timed out' } });
    // Six more in a Bulk job the next run uploaded and never collected (the two sent by the call
    // are held back: sent less than 11 minutes ago, not looked up yet).
    await source('both', 8);
    await sentAndEnded(before, name, true);

    const changed = env.deps({ writeback: [{ ...task(name), keyColumn: 'ext2' }] });
    const message = await planWriteback(changed, { runId: await env.newRun(), task: name }).then(
      () => '',
      (e: unknown) => (e instanceof SyncScopeChangedError ? e.message : String(e)),
    );
    expect(message).toMatch(
      / Its 8 insert record\(s\) sent whose outcome is unknown \(roundtrip\.writeback_plans, status sent\) are resolved by no plan while the task is refused so, and forget refuses the task until they are resolved: put the config back as it was and run the pipeline, whose plan resolves them, or for the 2 sent by a Collections call or in a Bulk job Salesforce no longer answers for, look for each in Salesforce and record what you found with roundtrip resolve --task Lead-both --key KEY --without-look-up --inserted ID \(or --not-inserted\); for the 6 in Bulk jobs their run never collected, nothing to look for \(the jobs' results tell\): roundtrip resolve --task Lead-both --collect-jobs \(with the pipeline's --config and --secrets\) asks Salesforce about each job and collects it once finished, recording each key's outcome from its results\.$/,
    );
  });

  it('whose object or key changed while the run that sent its keys is still running: the refusal says that run records their outcomes', async () => {
    const name = 'Lead-running';
    await source('running', 6);
    const before = env.deps({ writeback: [task(name)] });
    const runId = await env.newRun();
    await planWriteback(before, { runId, task: name });
    expect(await pushWriteback(before, { runId, task: name })).toMatchObject({ status: 'bulk-pending' });

    const changed = env.deps({ writeback: [{ ...task(name), keyColumn: 'ext2' }] });
    const message = await planWriteback(changed, { runId: await env.newRun(), task: name }).then(
      () => '',
      (e: unknown) => (e instanceof SyncScopeChangedError ? e.message : String(e)),
    );
    expect(message).toMatch(
      / Its 6 insert record\(s\) sent whose outcome is unknown \(roundtrip\.writeback_plans, status sent\) are resolved by no plan while the task is refused so, and forget refuses the task until they are resolved\. The 6 sent by a run still running \(roundtrip status\) get their outcomes from that run: resolve any left once it has ended\.$/,
    );
    expect(message).not.toMatch(/--without-look-up|--collect-jobs/);
  });

  it('no longer in the config, its job uploaded and never closed: resolve closes it, refuses its keys while it runs, and collects it once finished', async () => {
    await source('removed', 6);
    const before = env.deps({ writeback: [task('Lead-removed')] });
    const { dead, jobId } = await sentAndEnded(before, 'Lead-removed', false);
    expect(await job(jobId)).toEqual({ state: 'Uploaded', collected: false });
    expect((await getIngestJob(env.connector, jobId)).state).toBe('Open');

    const removed = env.deps({ writeback: [{ ...SCORE_UPDATE, name: 'Lead-scores' }] });
    const given = [
      { key: 'removed-1', salesforceId: null },
      { key: 'removed-2', salesforceId: null },
    ];
    // Asked about and closed (never aborted: its whole CSV is with Salesforce), it runs: no
    // outcome is recorded while it may still create the records.
    const problems = await refusal(
      recordInsertOutcomes(removed, 'Lead-removed', given, { withoutLookUp: true }),
    );
    expect(problems).toEqual(
      ['removed-1', 'removed-2'].map((key) =>
        expect.stringMatching(
          new RegExp(
            `^key ${key} was sent by run ${dead} in Bulk job ${jobId}, which that run never collected, and which has not finished \\((UploadComplete|InProgress) in roundtrip.writeback_jobs.*run this command again once the job has finished`,
          ),
        ),
      ),
    );
    expect(await ledger(dead)).toEqual({ sent: 6 });
    expect(await job(jobId)).toMatchObject({ collected: false });
    await finished(jobId);

    const recorded = await recordInsertOutcomes(removed, 'Lead-removed', given);
    expect(recorded.map((r) => [r.key, r.outcome, r.salesforceId, r.fromJobResults])).toEqual([
      ['removed-1', 'inserted', leadOf('removed 1'), { differs: true }],
      ['removed-2', 'inserted', leadOf('removed 2'), { differs: true }],
    ]);
    expect(await ledger(dead)).toEqual({ succeeded: 6 });
    expect(await job(jobId)).toEqual({ state: 'JobComplete', collected: true });
    // Each record created once.
    expect(
      [1, 2, 3, 4, 5, 6].map(
        (i) => [...env.sf.store.all('Lead')].filter((r) => r.LastName === `removed ${i}`).length,
      ),
    ).toEqual([1, 1, 1, 1, 1, 1]);
    expect(
      await forgetTask(env.pool, 'wb-test', 'Lead-removed', { apply: true, insertAgain: true }),
    ).toMatchObject({ kind: 'forgotten', deleted: true });
  });

  it('collects such jobs of a task without keys given (--collect-jobs): closed and left while running, collected once finished', async () => {
    await source('all', 6);
    const before = env.deps({ writeback: [task('Lead-all')] });
    const { dead, jobId } = await sentAndEnded(before, 'Lead-all', false);
    // Moved to another object, the task's plan is refused even before its scope check: the
    // object's describe has none of its fields. No plan collects the job.
    const changed = env.deps({ writeback: [{ ...task('Lead-all'), object: 'Contact' }] });
    await expect(planWriteback(changed, { runId: await env.newRun(), task: 'Lead-all' })).rejects.toThrow(
      /^Cannot plan the write-back Lead-all \(insert of Contact\): key External_Id__c is not a field of Contact/,
    );

    expect(await collectInsertJobs(changed, 'Lead-all')).toEqual([
      {
        runId: dead,
        jobId,
        state: expect.stringMatching(/^(UploadComplete|InProgress)$/),
        collected: false,
        inserted: 0,
        notInserted: 0,
        sent: 6,
      },
    ]);
    expect(await ledger(dead)).toEqual({ sent: 6 });
    expect(
      await forgetTask(env.pool, 'wb-test', 'Lead-all', { apply: true, insertAgain: true }),
    ).toMatchObject({
      kind: 'outcomes-unknown',
    });

    await finished(jobId);
    expect(await collectInsertJobs(changed, 'Lead-all')).toEqual([
      { runId: dead, jobId, state: 'JobComplete', collected: true, inserted: 6, notInserted: 0, sent: 0 },
    ]);
    expect(await ledger(dead)).toEqual({ succeeded: 6 });
    // Nothing left: nothing asked.
    env.sf.calls.clear();
    expect(await collectInsertJobs(changed, 'Lead-all')).toEqual([]);
    expect(env.sf.calls.count()).toBe(0);
    expect(
      await forgetTask(env.pool, 'wb-test', 'Lead-all', { apply: true, insertAgain: true }),
    ).toMatchObject({
      kind: 'forgotten',
      deleted: true,
    });
  });

  it("a refusal of another key given after a job was collected says the job's outcomes were recorded: the job stays collected", async () => {
    await source('mixed', 6);
    const deps = env.deps({ writeback: [task('Lead-mixed')] });
    const { dead, jobId } = await sentAndEnded(deps, 'Lead-mixed', true);
    const removed = env.deps({ writeback: [{ ...SCORE_UPDATE, name: 'Lead-scores' }] });
    const err: unknown = await recordInsertOutcomes(removed, 'Lead-mixed', [
      { key: 'mixed-1', salesforceId: null },
      { key: 'never-sent', salesforceId: null },
    ]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(OutcomeRefusedError);
    expect((err as OutcomeRefusedError).problems).toEqual([
      expect.stringMatching(/^key never-sent is not held back with an unknown outcome in task Lead-mixed/),
    ]);
    // Collected before the checks, in a transaction of its own: recorded, and the refusal says so.
    expect((err as OutcomeRefusedError).jobsCollected).toEqual([
      { runId: dead, jobId, state: 'JobComplete' },
    ]);
    expect(await ledger(dead)).toEqual({ succeeded: 6 });
    expect(await job(jobId)).toEqual({ state: 'JobComplete', collected: true });
  });

  it('--collect-jobs on a job Salesforce no longer knows: recorded NotFound, not collected (its results are gone), its keys still sent', async () => {
    await source('lost', 6);
    const deps = env.deps({ writeback: [task('Lead-lost')] });
    const { dead, jobId } = await sentAndEnded(deps, 'Lead-lost', true);
    // Salesforce deleted the job since (it keeps them for days).
    const gone = '750000000000997AAA';
    await env.pool.query(`UPDATE roundtrip.writeback_jobs SET job_id = $2 WHERE job_id = $1`, [jobId, gone]);
    await env.pool.query(`UPDATE roundtrip.writeback_plans SET job_id = $2 WHERE job_id = $1`, [jobId, gone]);
    const removed = env.deps({ writeback: [{ ...SCORE_UPDATE, name: 'Lead-scores' }] });
    expect(await collectInsertJobs(removed, 'Lead-lost')).toEqual([
      { runId: dead, jobId: gone, state: 'NotFound', collected: false, inserted: 0, notInserted: 0, sent: 6 },
    ]);
    expect(await ledger(dead)).toEqual({ sent: 6 });
  });

  it("a job Salesforce refuses to read is left as recorded, and the refusal says Salesforce's answer instead of 'not finished'", async () => {
    await source('unread', 6);
    const deps = env.deps({ writeback: [task('Lead-unread')] });
    const { dead, jobId } = await sentAndEnded(deps, 'Lead-unread', true);
    const refusing = Object.create(env.connector, {
      request: {
        value: (operation: string, method: 'GET', path: string, body?: unknown) =>
          method === 'GET' && path.startsWith('/jobs/ingest/')
            ? Promise.reject(new TerminalError(`${operation}: INSUFFICIENT_ACCESS: no access to this job`))
            : env.connector.request(operation, method, path, body),
      },
    }) as typeof env.connector;
    const removed = {
      ...env.deps({ writeback: [{ ...SCORE_UPDATE, name: 'Lead-scores' }] }),
      salesforce: refusing,
    };
    const [problem] = await refusal(
      recordInsertOutcomes(removed, 'Lead-unread', [{ key: 'unread-1', salesforceId: null }]),
    );
    expect(problem).toMatch(
      new RegExp(
        `^key unread-1 was sent by run ${dead} in Bulk job ${jobId}, which that run never collected, and which is left as recorded \\(\\w+ in roundtrip.writeback_jobs\\): Salesforce refused to read it: .*INSUFFICIENT_ACCESS: no access to this job\\. Nothing is recorded for the key`,
      ),
    );
    expect(problem).not.toContain('has not finished');
    expect(await collectInsertJobs(removed, 'Lead-unread')).toEqual([
      expect.objectContaining({
        jobId,
        collected: false,
        sent: 6,
        unread: expect.stringMatching(/^Salesforce refused to read it: .*INSUFFICIENT_ACCESS/),
      }),
    ]);
    expect(await ledger(dead)).toEqual({ sent: 6 });
  });

  it('a dry run asks Salesforce nothing and changes nothing: the key is refused, naming the command that collects the job', async () => {
    await source('dry', 6);
    const deps = env.deps({ writeback: [task('Lead-dry')] });
    const { dead, jobId } = await sentAndEnded(deps, 'Lead-dry', true);
    const removed = env.deps({ writeback: [{ ...SCORE_UPDATE, name: 'Lead-scores' }] });
    env.sf.calls.clear();
    expect(
      await refusal(
        recordInsertOutcomes(removed, 'Lead-dry', [{ key: 'dry-1', salesforceId: null }], { dryRun: true }),
      ),
    ).toEqual([
      expect.stringContaining('run this command without --dry-run (it asks Salesforce about the job'),
    ]);
    expect(env.sf.calls.count()).toBe(0);
    expect(await ledger(dead)).toEqual({ sent: 6 });
    expect(await job(jobId)).toMatchObject({ collected: false });
  });
});
