/**
 * The Report step prunes the per-record details of runs that finished more than
 * postgres.keepRunDetailsDays ago (plan pages, ledger rows, errors), keeps the runs and the marks
 * of inserts with an unknown outcome, and each task's latest pruned run's held-back keys until a
 * later run of the task is pruned, and leaves recent and unfinished runs alone. It closes, as
 * failed, runs left `running` longer than any execution can run. A backlog is pruned in batches of
 * runs, each its own transaction: a prune cut off (the Lambda's time left, an error mid-batch)
 * keeps what its batches before pruned, leaves every other run whole, and the next one goes on.
 */
import { Client } from 'pg';
import { ABANDONED_AFTER_HOURS } from '../../../lambdas/core/contracts';
import { withTransaction } from '../../../lambdas/connectors/postgres';
import { reportRun } from '../../../lambdas/core/writeback';
import {
  PRUNE_BATCH_ROWS,
  PRUNE_ROOM_MS,
  pruneResolvedDetails,
  pruneRunDetails,
} from '../../../lambdas/core/writeback/report';
import { HELD_BACK_ERROR_SQL } from '../../../lambdas/core/writeback/state';
import { SCORE_UPDATE, startWritebackEnv, type WritebackEnv } from './support';

const DAY = 86_400_000;

const update = SCORE_UPDATE;

describe('pruning the details of old runs', () => {
  let env: WritebackEnv;

  beforeAll(async () => {
    env = await startWritebackEnv();
  });
  afterAll(async () => env?.stop());

  /** A run with a page of two records, ledger rows (one left sent), and two errors. */
  async function runWithDetails(
    status: 'succeeded' | 'running',
    finishedDaysAgo: number | null,
  ): Promise<string> {
    const runId = await env.newRun();
    const finished = finishedDaysAgo === null ? null : new Date(Date.now() - finishedDaysAgo * DAY);
    await env.pool.query(`UPDATE roundtrip.runs SET status = $2, finished_at = $3 WHERE run_id = $1`, [
      runId,
      status,
      finished,
    ]);
    await env.pool.query(
      `INSERT INTO roundtrip.writeback_plan_pages (run_id, task, page, first_seq, rows, operation, keys, salesforce_ids, payloads, currents)
       VALUES ($1, 'Lead-insert', 0, 1, 2, 'insert', '{k1,k2}', '{NULL,NULL}',
               ARRAY['{"LastName": "a"}'::jsonb, '{"LastName": "b"}'::jsonb], '{NULL,NULL}')`,
      [runId],
    );
    await env.pool.query(
      `INSERT INTO roundtrip.writeback_plans (run_id, task, key, seq, operation, payload, value_hash, status)
       VALUES ($1, 'Lead-insert', 'k1', 1, 'insert', '{"LastName": "a"}', 'h1', 'succeeded'),
              ($1, 'Lead-insert', 'k2', 2, 'insert', '{"LastName": "b"}', 'h2', 'sent')`,
      [runId],
    );
    await env.pool.query(
      `INSERT INTO roundtrip.writeback_errors (run_id, task, key, stage, code, message)
       VALUES ($1, 'Lead-insert', 'k3', 'plan', 'MISSING_KEY', 'no key'),
              ($1, 'Lead-insert', 'k4', 'push', 'INSERT_OUTCOME_UNKNOWN', 'sent, never recorded')`,
      [runId],
    );
    await env.pool.query(
      `INSERT INTO roundtrip.extract_counts (run_id, task, soql, include_deleted, row_count, counted_at)
       VALUES ($1, 'Lead', 'SELECT COUNT() FROM Lead', true, 2, now())`,
      [runId],
    );
    return runId;
  }

  async function details(runId: string): Promise<Record<string, unknown>> {
    const { rows } = await env.pool.query(
      `SELECT (SELECT count(*)::int FROM roundtrip.writeback_plan_pages WHERE run_id = $1) AS pages,
              (SELECT array_agg(status ORDER BY seq) FROM roundtrip.writeback_plans WHERE run_id = $1) AS ledger,
              (SELECT array_agg(code ORDER BY key) FROM roundtrip.writeback_errors WHERE run_id = $1) AS errors,
              (SELECT count(*)::int FROM roundtrip.runs WHERE run_id = $1) AS run,
              (SELECT coalesce(summary ? 'detailsPrunedAt', false) FROM roundtrip.runs WHERE run_id = $1) AS pruned`,
      [runId],
    );
    return rows[0];
  }

  it('prunes runs older than keepRunDetailsDays (30 by default), keeping the run and the unknown-insert marks', async () => {
    const old = await runWithDetails('succeeded', 40);
    const recent = await runWithDetails('succeeded', 1);
    const unfinished = await runWithDetails('running', null);
    const deps = env.deps({ writeback: [update] });
    expect(deps.config.postgres.keepRunDetailsDays).toBe(30);

    const current = await env.newRun();
    await reportRun(deps, { runId: current });

    expect(await details(old)).toEqual({
      pages: 0,
      ledger: ['sent'],
      errors: ['INSERT_OUTCOME_UNKNOWN'],
      run: 1,
      pruned: true,
    });
    const untouched = {
      pages: 1,
      ledger: ['succeeded', 'sent'],
      errors: ['MISSING_KEY', 'INSERT_OUTCOME_UNKNOWN'],
      run: 1,
      pruned: false,
    };
    expect(await details(recent)).toEqual(untouched);
    expect(await details(unfinished)).toEqual(untouched);
    // The COUNT()s its extracts took go too (read by that run's steps alone).
    const { rows: counts } = await env.pool.query<{ run_id: string }>(
      `SELECT run_id FROM roundtrip.extract_counts WHERE run_id = ANY ($1::text[]) ORDER BY run_id`,
      [[old, recent, unfinished]],
    );
    expect(counts.map((c) => c.run_id)).toEqual([recent, unfinished].sort());
    expect(
      env.logger.records.find((r) => r.message === 'Pruned the details of old runs')?.attributes,
    ).toMatchObject({
      keepRunDetailsDays: 30,
      runs: 1,
      pages: 1,
      ledgerRows: 1,
      errors: 1,
    });

    // A run is pruned once: the next report finds nothing to do.
    const before = env.logger.records.length;
    await reportRun(deps, { runId: await env.newRun() });
    expect(env.logger.records.slice(before).some((r) => r.message === 'Pruned the details of old runs')).toBe(
      false,
    );
  });

  it('leaves the old runs of another pipeline sharing the database alone', async () => {
    const other = await runWithDetails('succeeded', 40);
    await env.pool.query(`UPDATE roundtrip.runs SET pipeline = 'another-pipeline' WHERE run_id = $1`, [
      other,
    ]);
    await reportRun(env.deps({ writeback: [update] }), { runId: await env.newRun() });
    expect(await details(other)).toMatchObject({ pages: 1, ledger: ['succeeded', 'sent'], pruned: false });
  });

  it('keeps them longer when the config says so', async () => {
    const old = await runWithDetails('succeeded', 40);
    const deps = env.deps({
      postgres: { secret: 'roundtrip/postgres', keepRunDetailsDays: 60 },
      writeback: [update],
    });
    await reportRun(deps, { runId: await env.newRun() });
    expect(await details(old)).toMatchObject({ pages: 1, ledger: ['succeeded', 'sent'], pruned: false });
  });

  it('closes as failed the runs still running longer than an execution can run, and prunes them in due time', async () => {
    const HOUR = 3_600_000;
    const abandoned = await runWithDetails('running', null);
    const stillGoing = await runWithDetails('running', null);
    const elsewhere = await runWithDetails('running', null);
    const startedAgo = (runId: string, hours: number): Promise<unknown> =>
      env.pool.query(`UPDATE roundtrip.runs SET started_at = $2 WHERE run_id = $1`, [
        runId,
        new Date(Date.now() - hours * HOUR),
      ]);
    await startedAgo(abandoned, ABANDONED_AFTER_HOURS + 1);
    await startedAgo(stillGoing, ABANDONED_AFTER_HOURS - 1);
    await startedAgo(elsewhere, ABANDONED_AFTER_HOURS + 1);
    await env.pool.query(`UPDATE roundtrip.runs SET pipeline = 'another-pipeline' WHERE run_id = $1`, [
      elsewhere,
    ]);
    // Its plan stored its figures; its push never reported what it wrote (1 record, 1 sent).
    await env.pool.query(
      `UPDATE roundtrip.runs SET summary = '{"writeback": {"Lead-insert": {"sourceRows": 2, "changed": 2}}}' WHERE run_id = $1`,
      [abandoned],
    );
    const figures = async (): Promise<unknown> =>
      (
        await env.pool.query(
          `SELECT summary->'writeback'->'Lead-insert' AS f FROM roundtrip.runs WHERE run_id = $1`,
          [abandoned],
        )
      ).rows[0]?.f;

    await reportRun(env.deps({ writeback: [update] }), { runId: await env.newRun() });

    const { rows } = await env.pool.query<{
      run_id: string;
      status: string;
      finished: boolean;
      error: string;
    }>(
      `SELECT run_id, status, finished_at IS NOT NULL AS finished, error FROM roundtrip.runs
        WHERE run_id = ANY($1) ORDER BY run_id`,
      [[abandoned, stillGoing, elsewhere]],
    );
    const byId = new Map(rows.map((r) => [r.run_id, r]));
    expect(byId.get(abandoned)).toMatchObject({ status: 'failed', finished: true });
    expect(byId.get(abandoned)?.error).toMatch(
      /^Abandoned: still running more than 13 hours after it started/,
    );
    expect(byId.get(stillGoing)).toMatchObject({ status: 'running', finished: false, error: null });
    expect(byId.get(elsewhere)).toMatchObject({ status: 'running', finished: false });
    expect(
      env.logger.records.find((r) => r.message === 'Closed runs abandoned without a report as failed')
        ?.attributes,
    ).toEqual({ runIds: [abandoned] });
    // Counted from its ledger as it was closed: no report ever counted them. Of unknown outcome:
    // k2, left sent, and k4, an insert the push reported INSERT_OUTCOME_UNKNOWN.
    expect(await figures()).toMatchObject({
      sourceRows: 2,
      changed: 2,
      written: 1,
      failed: 0,
      outcomeUnknown: 2,
    });
    // Its details are kept like any finished run's (the ledger's `sent` marks for good), and
    // pruned once it finished longer ago than keepRunDetailsDays.
    expect(await details(abandoned)).toMatchObject({
      pages: 1,
      ledger: ['succeeded', 'sent'],
      pruned: false,
    });
    await env.pool.query(`UPDATE roundtrip.runs SET finished_at = $2 WHERE run_id = $1`, [
      abandoned,
      new Date(Date.now() - 40 * DAY),
    ]);
    await reportRun(env.deps({ writeback: [update] }), { runId: await env.newRun() });
    expect(await details(abandoned)).toMatchObject({ pages: 0, ledger: ['sent'], pruned: true });
    expect(await figures()).toMatchObject({ written: 1, outcomeUnknown: 2 });
  });

  describe('a backlog, in batches of runs', () => {
    /**
     * `count` runs with details, finished 40 days ago, started 43, 42, … days ago (pruned in that
     * order), each of a batch's size by its figures (its source rows), so each is a batch.
     */
    async function backlog(count: number): Promise<string[]> {
      const runIds: string[] = [];
      for (let i = 0; i < count; i += 1) {
        const runId = await runWithDetails('succeeded', 40);
        await env.pool.query(
          `UPDATE roundtrip.runs SET started_at = $2,
                  summary = jsonb_build_object('writeback', jsonb_build_object('Lead-insert', jsonb_build_object('sourceRows', $3::int)))
            WHERE run_id = $1`,
          [runId, new Date(Date.now() - (43 - i) * DAY), PRUNE_BATCH_ROWS],
        );
        runIds.push(runId);
      }
      return runIds;
    }
    const prunedWhole = {
      pages: 0,
      ledger: ['sent'],
      errors: ['INSERT_OUTCOME_UNKNOWN'],
      run: 1,
      pruned: true,
    };
    const untouched = {
      pages: 1,
      ledger: ['succeeded', 'sent'],
      errors: ['MISSING_KEY', 'INSERT_OUTCOME_UNKNOWN'],
      run: 1,
      pruned: false,
    };

    it('starts no batch with less time left than one needs, says how many runs are left, and the next report goes on', async () => {
      const [first, second, third] = await backlog(3);
      const deps = env.deps({ writeback: [update] });
      const since = env.logger.records.length;
      const pruneLog = (): Record<string, unknown> | undefined =>
        env.logger.records.slice(since).findLast((r) => r.message === 'Pruned the details of old runs')
          ?.attributes;

      await reportRun(deps, { runId: await env.newRun() }, { timeLeft: () => PRUNE_ROOM_MS - 1 });
      for (const runId of [first, second, third]) expect(await details(runId as string)).toEqual(untouched);
      expect(pruneLog()).toMatchObject({ runs: 0, batches: 0, runsLeft: 3 });

      // Time for one batch, then no more.
      let calls = 0;
      const oneBatch = (): number => (++calls === 1 ? PRUNE_ROOM_MS : PRUNE_ROOM_MS - 1);
      await reportRun(deps, { runId: await env.newRun() }, { timeLeft: oneBatch });
      expect(await details(first as string)).toEqual(prunedWhole);
      expect(await details(second as string)).toEqual(untouched);
      expect(await details(third as string)).toEqual(untouched);
      expect(pruneLog()).toMatchObject({ runs: 1, batches: 1, runsLeft: 2, ledgerRows: 1 });

      await reportRun(deps, { runId: await env.newRun() });
      for (const runId of [first, second, third]) expect(await details(runId as string)).toEqual(prunedWhole);
      // The first batch's one run told that the next could take both.
      expect(pruneLog()).toMatchObject({
        runs: 2,
        batches: 2,
        runsLeft: 0,
        pages: 2,
        ledgerRows: 2,
        errors: 2,
      });
      expect(
        env.logger.records
          .slice(since)
          .filter((r) => r.message === 'Pruning the details of old runs')
          .map((r) => r.attributes?.runs),
      ).toEqual([1, 1, 1]);
    });

    it('a batch cut off mid-way leaves its runs whole and unmarked, keeps the batches before it, and the next report goes on', async () => {
      const [first, second, third] = await backlog(3);
      const deps = env.deps({ writeback: [update] });
      const since = env.logger.records.length;
      // Another session holds a ledger row of the second run: the batch that deletes it waits, and
      // is cancelled there (a statement timeout, a Lambda gone, an operator's pg_cancel_backend).
      const holder = new Client({ connectionString: env.db.url });
      await holder.connect();
      try {
        await holder.query('BEGIN');
        await holder.query(
          `SELECT 1 FROM roundtrip.writeback_plans WHERE run_id = $1 AND key = 'k1' FOR UPDATE`,
          [second],
        );
        const report = reportRun(deps, { runId: await env.newRun() });
        let cancelled = false;
        for (let i = 0; i < 200 && !cancelled; i += 1) {
          // Its transaction's view of pg_stat_activity is taken once: dropped to see the batch come.
          await holder.query('SELECT pg_stat_clear_snapshot()');
          const { rows } = await holder.query<{ cancelled: boolean }>(
            `SELECT pg_cancel_backend(pid) AS cancelled FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'WITH streak%'`,
          );
          cancelled = rows[0]?.cancelled === true;
          if (!cancelled) await new Promise((resolve) => setTimeout(resolve, 50));
        }
        expect(cancelled).toBe(true);
        await report;
        await holder.query('ROLLBACK');
      } finally {
        await holder.end();
      }
      expect(
        env.logger.records.slice(since).find((r) => r.message.startsWith('Could not prune the details'))
          ?.attributes?.error,
      ).toMatch(/cancel/);
      expect(await details(first as string)).toEqual(prunedWhole);
      // Marked and deleted in the batch that was cut off: rolled back together.
      expect(await details(second as string)).toEqual(untouched);
      expect(await details(third as string)).toEqual(untouched);

      await reportRun(deps, { runId: await env.newRun() });
      for (const runId of [first, second, third]) expect(await details(runId as string)).toEqual(prunedWhole);
    });
  });

  describe('the held-back keys a task’s next run compares with', () => {
    /**
     * A run of the pipeline started and finished `daysAgo` days ago, with figures for `task` (it
     * planned the task) and, for `held`, keys held back: by the plan (OUTCOME_PENDING,
     * INSERT_OUTCOME_UNKNOWN) and by the push (INSERT_PENDING_ELSEWHERE, ledger `held_back`),
     * beside details every run has (a record written, one left `sent` with its
     * INSERT_OUTCOME_UNKNOWN, one rejected).
     */
    async function runOfTask(
      task: string,
      daysAgo: number,
      options: { held: boolean; dryRun?: boolean },
    ): Promise<string> {
      const runId = await env.newRun();
      const at = new Date(Date.now() - daysAgo * DAY);
      await env.pool.query(
        `UPDATE roundtrip.runs SET status = 'succeeded', dry_run = $5, started_at = $2, finished_at = $2,
                summary = jsonb_build_object('writeback', jsonb_build_object($3::text, jsonb_build_object('heldBack', $4::int)))
          WHERE run_id = $1`,
        [runId, at, task, options.held ? 3 : 0, options.dryRun === true],
      );
      await env.pool.query(
        `INSERT INTO roundtrip.writeback_plans (run_id, task, key, seq, operation, payload, value_hash, status)
         SELECT $1, $2, key, seq, 'insert', '{}', 'h', status
           FROM (VALUES ('k1', 1, 'succeeded'), ('k2', 2, 'sent'), ('k5', 3, 'held_back')) AS v(key, seq, status)
          WHERE $3 OR status <> 'held_back'`,
        [runId, task, options.held],
      );
      await env.pool.query(
        `INSERT INTO roundtrip.writeback_errors (run_id, task, key, stage, code, message)
         SELECT $1, $2, key, stage, code, 'm'
           FROM (VALUES ('k3', 'plan', 'MISSING_KEY', false), ('k2', 'push', 'INSERT_OUTCOME_UNKNOWN', false),
                        ('k5', 'push', 'INSERT_PENDING_ELSEWHERE', true), ('k6', 'plan', 'OUTCOME_PENDING', true),
                        ('k7', 'plan', 'INSERT_OUTCOME_UNKNOWN', true)) AS v(key, stage, code, held)
          WHERE $3 OR NOT held`,
        [runId, task, options.held],
      );
      return runId;
    }

    /** A run's ledger statuses and error codes, by key, and whether it was pruned. */
    async function kept(runId: string): Promise<Record<string, unknown>> {
      const { rows } = await env.pool.query(
        `SELECT (SELECT coalesce(array_agg(key || ' ' || status ORDER BY key), '{}') FROM roundtrip.writeback_plans WHERE run_id = $1) AS ledger,
                (SELECT coalesce(array_agg(key || ' ' || stage || ' ' || code ORDER BY key, stage), '{}') FROM roundtrip.writeback_errors WHERE run_id = $1) AS errors,
                (SELECT summary ? 'detailsPrunedAt' FROM roundtrip.runs WHERE run_id = $1) AS pruned`,
        [runId],
      );
      return rows[0];
    }

    const always = {
      ledger: ['k2 sent'],
      errors: ['k2 push INSERT_OUTCOME_UNKNOWN'],
      pruned: true,
    };
    const withHeldBack = {
      ledger: ['k2 sent', 'k5 held_back'],
      errors: [
        'k2 push INSERT_OUTCOME_UNKNOWN',
        'k5 push INSERT_PENDING_ELSEWHERE',
        'k6 plan OUTCOME_PENDING',
        'k7 plan INSERT_OUTCOME_UNKNOWN',
      ],
      pruned: true,
    };

    it('keeps the same in batches of one run as in one batch: the latest due run of each task keeps them, whichever batch prunes it', async () => {
      const task = 'Lead-batched';
      const older = await runOfTask(task, 58, { held: true });
      const latest = await runOfTask(task, 56, { held: true });
      const otherTask = await runOfTask('Account-batched', 55, { held: true });
      const dry = await runOfTask(task, 54, { held: true, dryRun: true });

      const first = await pruneRunDetails(env.pool, 'wb-test', 30, new Date(), { batchRows: 1 });
      expect(first).toMatchObject({ runs: 4, batches: 4, runsLeft: 0 });
      expect(await kept(older)).toEqual(always);
      expect(await kept(latest)).toEqual(withHeldBack);
      expect(await kept(otherTask)).toEqual(withHeldBack);
      expect(await kept(dry)).toEqual(always);

      // Two later runs of the task due at once, in batches of one: the first pruned of them
      // replaces `latest` (its held-back keys go), the last keeps its own.
      const next = await runOfTask(task, 52, { held: true });
      const last = await runOfTask(task, 50, { held: true });
      await pruneRunDetails(env.pool, 'wb-test', 30, new Date(), { batchRows: 1 });
      expect(await kept(latest)).toEqual(always);
      expect(await kept(next)).toEqual(always);
      expect(await kept(last)).toEqual(withHeldBack);
      expect(await kept(otherTask)).toEqual(withHeldBack);
    });

    it('keeps them for the latest pruned run of each task, until a later run of the task is pruned too; not for a dry run, nor for another task’s run', async () => {
      const task = 'Lead-streak';
      const older = await runOfTask(task, 48, { held: true });
      const latest = await runOfTask(task, 46, { held: true });
      // Neither a run of another task (it keeps its own) nor a dry run is the task's later run.
      const otherTask = await runOfTask('Account-streak', 45, { held: true });
      const dry = await runOfTask(task, 44, { held: true, dryRun: true });
      const deps = env.deps({ writeback: [update] });

      await reportRun(deps, { runId: await env.newRun() });

      expect(await kept(older)).toEqual(always);
      expect(await kept(latest)).toEqual(withHeldBack);
      expect(await kept(otherTask)).toEqual(withHeldBack);
      expect(await kept(dry)).toEqual(always);
      // What the task's next run compares with (HELD_BACK_BY_BOTH_SQL): the keys it held back.
      const { rows: held } = await env.pool.query(
        `SELECT e.key FROM roundtrip.writeback_errors e WHERE e.run_id = $1 AND ${HELD_BACK_ERROR_SQL} ORDER BY e.key`,
        [latest],
      );
      expect(held.map((r) => r.key)).toEqual(['k5', 'k6', 'k7']);

      // A later plan resolves its record left `sent` (reconcile.ts): the resolved details go, as
      // the prune would have deleted them, the held-back keys stay.
      await env.pool.query(
        `UPDATE roundtrip.writeback_plans SET status = 'succeeded' WHERE run_id = $1 AND key = 'k2'`,
        [latest],
      );
      await env.pool.query(`DELETE FROM roundtrip.writeback_errors WHERE run_id = $1 AND key = 'k2'`, [
        latest,
      ]);
      await withTransaction(env.pool, (client) => pruneResolvedDetails(client, latest, task));
      expect(await kept(latest)).toEqual({
        ledger: ['k5 held_back'],
        errors: [
          'k5 push INSERT_PENDING_ELSEWHERE',
          'k6 plan OUTCOME_PENDING',
          'k7 plan INSERT_OUTCOME_UNKNOWN',
        ],
        pruned: true,
      });

      // A later run of the task that held nothing back, pruned: the held-back keys go.
      const next = await runOfTask(task, 40, { held: false });
      await reportRun(deps, { runId: await env.newRun() });
      expect(await kept(latest)).toEqual({ ledger: [], errors: [], pruned: true });
      expect(await kept(next)).toEqual(always);
      expect(await kept(otherTask)).toEqual(withHeldBack);
      expect(
        env.logger.records.filter((r) => r.message === 'Pruned the details of old runs').at(-1)?.attributes,
      ).toMatchObject({ runs: 1, ledgerRows: 1 + 1, errors: 1 + 3 });
    });
  });
});
