/**
 * Update and upsert records that a run which has ended sent without ever learning the outcome: a
 * Collections call whose answer was lost, a Bulk job it never collected. Salesforce may hold the
 * values sent while sync_state still holds the ones before; were they left so, a source going back
 * to the earlier values would compare unchanged and Salesforce would keep the lost run's values
 * for ever. The next plan resolves them: a job Salesforce finished is collected into its run, a
 * job still running keeps its keys back, and a call that is certainly over has its keys' synced
 * values marked unknown, so that their current values are sent again.
 */
import { TransientError } from '../../../lambdas/shared/errors';
import type { CoreDeps } from '../../../lambdas/core/deps';
import { planWriteback, pushWriteback, reportRun, runWriteback } from '../../../lambdas/core/writeback';
import { UNKNOWN_VALUE_HASH } from '../../../lambdas/core/writeback/reconcile';
import {
  errorsOf,
  extractLeads,
  LEAD_COPY,
  LEAD_SRC_UPSERT,
  ledgerByStatus,
  outlastCallTimeLimit,
  SCORE_UPDATE,
  startWritebackEnv,
  type WritebackEnv,
} from './support';

describe('update and upsert records left without an outcome by runs that ended', () => {
  let env: WritebackEnv;

  beforeAll(async () => {
    env = await startWritebackEnv();
    await env.pool.query(`CREATE TABLE lead_src (ext text, last_name text, company text, score integer)`);
    await env.pool.query(`CREATE TABLE lead_scores ("Id" text, score integer)`);
  });
  afterAll(async () => env?.stop());

  /** Six leads keyed `${prefix}-1`…`-6`, made once. */
  function leads(prefix: string): string[] {
    const ids = [...env.sf.store.all('Lead')]
      .filter((r) => String(r.External_Id__c).startsWith(`${prefix}-`))
      .sort((a, b) => String(a.External_Id__c).localeCompare(String(b.External_Id__c)))
      .map((r) => r.Id as string);
    if (ids.length > 0) return ids;
    return env.sf.store.seed(
      'Lead',
      Array.from({ length: 6 }, (_, i) => ({
        LastName: `Unknown ${i + 1}`,
        Company: 'Initech',
        External_Id__c: `${prefix}-${i + 1}`,
      })),
    );
  }

  /** The scores Salesforce holds for the leads keyed `${prefix}-…`, in key order. */
  const scoresOf = (prefix: string): unknown[] =>
    [...env.sf.store.all('Lead')]
      .filter((r) => String(r.External_Id__c).startsWith(`${prefix}-`))
      .sort((a, b) => String(a.External_Id__c).localeCompare(String(b.External_Id__c)))
      .map((r) => r.LeadScore__c);

  const modes = [
    {
      mode: 'upsert',
      task: 'Lead-upsert',
      config: LEAD_SRC_UPSERT,
      /** The source: the six leads with scores `score + i`. */
      source: async (prefix: string, score: number) => {
        leads(prefix);
        await env.pool.query('DELETE FROM lead_src');
        await env.pool.query(
          `INSERT INTO lead_src SELECT $1 || '-' || i, 'Unknown ' || i, 'Initech', $2 + i FROM generate_series(1, 6) AS i`,
          [prefix, score],
        );
      },
    },
    {
      mode: 'update',
      task: 'Lead-update',
      config: SCORE_UPDATE,
      source: async (prefix: string, score: number) => {
        await env.pool.query('DELETE FROM lead_scores');
        await env.pool.query(
          `INSERT INTO lead_scores SELECT id, $2 + i FROM unnest($1::text[]) WITH ORDINALITY AS u(id, i)`,
          [leads(prefix), score],
        );
      },
    },
  ] as const;

  /** A run of the task that writes its plan and reports: what a scheduled run does. */
  async function fullRun(deps: CoreDeps, task: string): Promise<{ runId: string; changed: number }> {
    const runId = await env.newRun();
    const { plan } = await runWriteback(deps, { runId, task });
    await reportRun(deps, { runId });
    return { runId, changed: plan.changed };
  }

  /** Ends a run as the state machine does when a step's retries are spent: its Report, with the error. */
  async function endRun(deps: CoreDeps, runId: string): Promise<void> {
    await reportRun(deps, { runId, error: { Error: 'TransientError', Cause: 'retries spent' } });
  }

  /** The ended run's figures for the task, as its summary holds them. */
  async function figures(runId: string, task: string): Promise<Record<string, unknown>> {
    const { rows } = await env.pool.query(
      `SELECT summary->'writeback'->$2 AS s FROM roundtrip.runs WHERE run_id = $1`,
      [runId, task],
    );
    return rows[0]?.s as Record<string, unknown>;
  }

  describe('through Collections: a call whose answer was lost', () => {
    /** Run 1 syncs v0 (0 + i); run 2 sends v1 (100 + i), Salesforce applies it, the answer is lost and the run ends. */
    async function lostAnswer(
      deps: CoreDeps,
      { task, source }: (typeof modes)[number],
      prefix: string,
    ): Promise<string> {
      await source(prefix, 0);
      await fullRun(deps, task);
      expect(scoresOf(prefix)).toEqual([1, 2, 3, 4, 5, 6]);
      await source(prefix, 100);
      const lost = await env.newRun();
      expect(await planWriteback(deps, { runId: lost, task })).toMatchObject({
        changed: 6,
        api: 'collections',
      });
      env.sf.faults.set({ resetWriteAnswerAfterBytes: 40 });
      await expect(pushWriteback(deps, { runId: lost, task })).rejects.toThrow(TransientError);
      await endRun(deps, lost);
      expect(scoresOf(prefix)).toEqual([101, 102, 103, 104, 105, 106]);
      expect(await ledgerByStatus(env, lost)).toEqual([{ status: 'sent', n: 6 }]);
      return lost;
    }

    it.each(modes)(
      '$mode: sends the current values again once the call is over, and says so in the run that lost it',
      async (m) => {
        const prefix = `lost-${m.mode}`;
        const deps = env.deps({ writeback: [m.config] });
        const lost = await lostAnswer(deps, m, prefix);
        // The source goes back to v0: what sync_state says was synced last.
        await m.source(prefix, 0);

        // Sent less than 11 minutes ago, the call may still be running: left for a later plan.
        env.sf.calls.clear();
        const young = await fullRun(deps, m.task);
        expect(young.changed).toBe(0);
        expect(env.sf.calls.count()).toBe(0);
        expect(await ledgerByStatus(env, lost)).toEqual([{ status: 'sent', n: 6 }]);

        // Once the call is certainly over, the next plan sends v0 again.
        await outlastCallTimeLimit(env, lost);
        env.sf.calls.clear();
        const next = await env.newRun();
        const result = await runWriteback(deps, { runId: next, task: m.task });

        expect(result.plan).toMatchObject({ sourceRows: 6, rejected: 0, changed: 6 });
        expect(result.result).toMatchObject({ succeeded: 6, failed: 0 });
        expect(env.sf.calls.writes().map((w) => w.records)).toEqual([6]);
        expect(scoresOf(prefix)).toEqual([1, 2, 3, 4, 5, 6]);
        // The run that lost the answer: its rows failed, with what became of them and who resent them.
        expect(await ledgerByStatus(env, lost)).toEqual([{ status: 'failed', n: 6 }]);
        const errors = await errorsOf(env, lost);
        expect(errors.map((e) => e.code)).toEqual(Array(6).fill('OUTCOME_UNKNOWN'));
        expect(errors[0]?.message).toMatch(
          new RegExp(
            `^sent for ${m.mode} by this run, whose result was never recorded: Salesforce may hold these values or not\\. Run ${next} found the call over .*marked the key's synced values unknown in roundtrip\\.sync_state`,
          ),
        );
        expect(await figures(lost, m.task)).toMatchObject({
          written: 0,
          failed: 6,
          outcomeUnknown: 0,
          outcomesResolvedBy: next,
        });
        expect(await errorsOf(env, next)).toEqual([]);

        // A further run has nothing to resolve and nothing to send: no call at all.
        env.sf.calls.clear();
        const further = await fullRun(deps, m.task);
        expect(further.changed).toBe(0);
        expect(env.sf.calls.count()).toBe(0);
      },
    );

    it('a plan step that fails after resolving, run again, resolves nothing twice and still sends the values', async () => {
      const m = modes[0];
      const prefix = 'retried';
      const deps = env.deps({ writeback: [m.config] });
      const lost = await lostAnswer(deps, m, prefix);
      await m.source(prefix, 0);
      await outlastCallTimeLimit(env, lost);

      // The plan resolves the rows, then fails before its own statement (its source is missing):
      // the step is retried once the source is back.
      const next = await env.newRun();
      await env.pool.query('ALTER TABLE lead_src RENAME TO lead_src_away');
      await expect(planWriteback(deps, { runId: next, task: m.task })).rejects.toThrow(/lead_src/);
      await env.pool.query('ALTER TABLE lead_src_away RENAME TO lead_src');
      expect(await ledgerByStatus(env, lost)).toEqual([{ status: 'failed', n: 6 }]);
      expect(await figures(lost, m.task)).toMatchObject({ failed: 6, outcomesResolvedBy: next });

      const result = await runWriteback(deps, { runId: next, task: m.task });
      expect(result.plan).toMatchObject({ changed: 6 });
      expect(scoresOf(prefix)).toEqual([1, 2, 3, 4, 5, 6]);
      expect((await errorsOf(env, lost)).length).toBe(6);
    });

    it('compared with a copy extracted before the lost call: the keys are sent again all the same', async () => {
      const m = modes[0];
      const prefix = 'copied';
      const extract = {
        from: 'salesforce' as const,
        object: 'Lead',
        fields: [...LEAD_COPY.fields],
        table: 'sf_lead',
      };
      const deps = env.deps({ extract: [extract], writeback: [m.config] });
      await m.source(prefix, 0);
      await fullRun(deps, m.task);
      // The copy shows v0; the runs after it skip the extract (it is loaded before run 2's call).
      await extractLeads(env);
      const lost = await lostAnswer(deps, m, prefix);
      await m.source(prefix, 0);
      await outlastCallTimeLimit(env, lost);

      const next = await env.newRun();
      const result = await runWriteback(deps, { runId: next, task: m.task });

      expect(result.plan).toMatchObject({ comparedWith: 'extract:public.sf_lead', changed: 6 });
      expect(scoresOf(prefix)).toEqual([1, 2, 3, 4, 5, 6]);
      const { rows } = await env.pool.query(
        `SELECT count(*)::int AS n FROM roundtrip.sync_state WHERE task = $1 AND key LIKE $2 AND value_hash = $3`,
        [m.task, `${prefix}-%`, UNKNOWN_VALUE_HASH],
      );
      expect(rows[0].n).toBe(0);
    });
  });

  describe('through Bulk: a job the ended run never collected', () => {
    /** Salesforce's state of an ingest job. */
    async function jobState(jobId: string): Promise<string> {
      const job = await env.connector.request<{ state: string }>(
        'Bulk ingest job poll',
        'GET',
        `/jobs/ingest/${jobId}`,
      );
      return job.state;
    }

    /** Waits until Salesforce has finished the job. */
    async function finished(jobId: string): Promise<void> {
      for (
        let i = 0;
        i < 500 && !['JobComplete', 'Failed', 'Aborted'].includes(await jobState(jobId));
        i += 1
      ) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(await jobState(jobId)).toBe('JobComplete');
    }

    /** Run 1 syncs v0; run 2 closes a job of v1 and ends before collecting it (recorded UploadComplete). */
    async function uncollected(
      deps: CoreDeps,
      { task, source }: (typeof modes)[number],
      prefix: string,
      holdMs = 0,
    ): Promise<{ dead: string; jobId: string }> {
      await source(prefix, 0);
      await fullRun(deps, task);
      await source(prefix, 100);
      // Salesforce holds the job InProgress for a while before it processes it.
      if (holdMs > 0) env.sf.faults.set({ bulkJobDelayMs: holdMs });
      const dead = await env.newRun();
      expect(await planWriteback(deps, { runId: dead, task })).toMatchObject({ changed: 6, api: 'bulk' });
      expect(await pushWriteback(deps, { runId: dead, task })).toMatchObject({ status: 'bulk-pending' });
      await endRun(deps, dead);
      const { rows } = await env.pool.query<{ job_id: string; state: string }>(
        `SELECT job_id, state FROM roundtrip.writeback_jobs WHERE run_id = $1`,
        [dead],
      );
      expect(rows.map((r) => r.state)).toEqual(['UploadComplete']);
      expect(await ledgerByStatus(env, dead)).toEqual([{ status: 'sent', n: 6 }]);
      return { dead, jobId: rows[0]?.job_id ?? '' };
    }

    it.each(modes)(
      '$mode: collects a job Salesforce finished into its run, then compares with what it wrote',
      async (m) => {
        const prefix = `job-${m.mode}`;
        const deps = env.deps({ writeback: [{ ...m.config, bulkThreshold: 5 }] });
        const { dead, jobId } = await uncollected(deps, m, prefix);
        await finished(jobId);
        expect(scoresOf(prefix)).toEqual([101, 102, 103, 104, 105, 106]);
        // The source goes back to v0, what sync_state held before the job.
        await m.source(prefix, 0);

        env.sf.calls.clear();
        const next = await env.newRun();
        const result = await runWriteback(deps, { runId: next, task: m.task });

        expect(result.plan).toMatchObject({ sourceRows: 6, rejected: 0, changed: 6 });
        expect(scoresOf(prefix)).toEqual([1, 2, 3, 4, 5, 6]);
        expect(await ledgerByStatus(env, dead)).toEqual([{ status: 'succeeded', n: 6 }]);
        expect(await figures(dead, m.task)).toMatchObject({
          written: 6,
          outcomeUnknown: 0,
          outcomesResolvedBy: next,
        });

        env.sf.calls.clear();
        const further = await fullRun(deps, m.task);
        expect(further.changed).toBe(0);
        expect(env.sf.calls.count()).toBe(0);
      },
    );

    it('sends again the keys of a job Salesforce no longer knows, once their call is over', async () => {
      const m = modes[1];
      const prefix = 'forgotten';
      const deps = env.deps({ writeback: [{ ...m.config, bulkThreshold: 5 }] });
      const { dead, jobId } = await uncollected(deps, m, prefix);
      await finished(jobId);
      // Days later, Salesforce has deleted the job: an Id it does not know answers 404 NOT_FOUND.
      const gone = '750000000000998AAA';
      await env.pool.query(`UPDATE roundtrip.writeback_jobs SET job_id = $2 WHERE run_id = $1`, [dead, gone]);
      await env.pool.query(`UPDATE roundtrip.writeback_plans SET job_id = $2 WHERE run_id = $1`, [
        dead,
        gone,
      ]);
      await outlastCallTimeLimit(env, dead);
      await m.source(prefix, 0);

      const next = await env.newRun();
      const result = await runWriteback(deps, { runId: next, task: m.task });

      expect(result.plan).toMatchObject({ rejected: 0, changed: 6 });
      expect(scoresOf(prefix)).toEqual([1, 2, 3, 4, 5, 6]);
      const { rows } = await env.pool.query(`SELECT state FROM roundtrip.writeback_jobs WHERE run_id = $1`, [
        dead,
      ]);
      expect(rows).toEqual([{ state: 'NotFound' }]);
      expect(await ledgerByStatus(env, dead)).toEqual([{ status: 'failed', n: 6 }]);
      expect((await errorsOf(env, dead)).map((e) => e.code)).toEqual(Array(6).fill('OUTCOME_UNKNOWN'));
    });

    it('keeps back the keys of a job still running, so that it cannot write its older values last', async () => {
      const m = modes[0];
      const prefix = 'running';
      const deps = env.deps({ writeback: [{ ...m.config, bulkThreshold: 5 }] });
      const { dead, jobId } = await uncollected(deps, m, prefix, 4000);
      // The source changes again while the job runs: v2 must be the value Salesforce ends with.
      await m.source(prefix, 200);

      env.sf.calls.clear();
      const held = await env.newRun();
      const { rows: clock } = await env.pool.query<{ before: Date }>(`SELECT now() AS before`);
      const planned = await planWriteback(deps, { runId: held, task: m.task });
      env.sf.faults.clear();
      expect(planned).toMatchObject({ rejected: 0, heldBack: 6, changed: 0 });
      expect(env.sf.calls.count({ write: true })).toBe(0);
      // The state Salesforce answered the plan is recorded, not the one at upload time.
      const { rows: job } = await env.pool.query<{ state: string; updated_at: Date }>(
        `SELECT state, updated_at FROM roundtrip.writeback_jobs WHERE job_id = $1`,
        [jobId],
      );
      expect(job[0]?.state).toBe('InProgress');
      expect(job[0]?.updated_at.getTime()).toBeGreaterThanOrEqual(clock[0]?.before.getTime() ?? Infinity);
      const errors = await errorsOf(env, held);
      expect(errors.map((e) => e.code)).toEqual(Array(6).fill('OUTCOME_PENDING'));
      expect(errors[0]?.message).toBe(
        `key ${prefix}-1 was sent for upsert by run ${dead} in Bulk job ${jobId}, which Salesforce had not finished when this run planned: not sent by this run, so that the job cannot write its older values after this run's; the next plan collects the job and sends the key's current values if they differ from what it wrote`,
      );
      expect(await ledgerByStatus(env, dead)).toEqual([{ status: 'sent', n: 6 }]);
      // Every source row held back, none wrong: the run does not fail on its maxRejectRate (5 %).
      expect(await reportRun(deps, { runId: held })).toMatchObject({
        status: 'succeeded',
        writeback: {
          [m.task]: {
            sourceRows: 6,
            rejected: 0,
            heldBack: 6,
            unchanged: 0,
            changed: 0,
            rejectRateExceeded: false,
          },
        },
      });

      await finished(jobId);
      expect(scoresOf(prefix)).toEqual([101, 102, 103, 104, 105, 106]);
      const next = await env.newRun();
      const result = await runWriteback(deps, { runId: next, task: m.task });
      expect(result.plan).toMatchObject({ rejected: 0, changed: 6 });
      expect(scoresOf(prefix)).toEqual([201, 202, 203, 204, 205, 206]);
      expect(await ledgerByStatus(env, dead)).toEqual([{ status: 'succeeded', n: 6 }]);
    });
  });
});
