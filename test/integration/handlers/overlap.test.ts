/**
 * Runs that overlap: a run started with `onOverlap: "skip"` (the schedule's input) while another
 * run of the pipeline is still going is recorded `skipped` by Prepare and ends at once in the
 * state machine; a run quiet for longer than STILL_GOING_QUIET_MINUTES no longer counts as going;
 * each step marks its start on its run; runs started without "skip" go alongside; a run that
 * starts while another is being recorded waits for it. Through the handlers' createHandler and the local state machine,
 * on a transform-only pipeline (no Salesforce, no Athena).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseConfig, type PipelineConfig } from '../../../lambdas/config';
import { createPool, migrate, type PostgresPool } from '../../../lambdas/connectors/postgres';
import { STILL_GOING_QUIET_MINUTES, stillGoingQuietMinutes } from '../../../lambdas/core/contracts';
import type { CoreDeps } from '../../../lambdas/core/deps';
import { PREPARE_LOCK_CLASS } from '../../../lambdas/core/prepare';
import { givenDeps } from '../../../lambdas/handlers/deps';
import { createHandler as prepareHandler } from '../../../lambdas/handlers/prepare';
import { sfnExecutions } from '../../../lambdas/handlers/sfn-deps';
import { createHandler as transformHandler } from '../../../lambdas/handlers/transform';
import { systemClock } from '../../../lambdas/shared/clock';
import { createMemoryLogger } from '../../../lambdas/shared/logging';
import {
  loadPipelineDefinition,
  runStateMachineLocally,
  type LocalRunEvent,
} from '../../../statemachine/local';
import { createTestDatabase, type TestDatabase } from '../../support/database';
import { useLocalAwsEnv } from '../../support/aws-env';
import { startSfnStandIn, type SfnStandIn } from '../../support/sfn';

const MINUTE = 60_000;

describe('runs that overlap', () => {
  let db: TestDatabase;
  let pool: PostgresPool;
  let dir: string;
  let config: PipelineConfig;
  let deps: CoreDeps;

  beforeAll(async () => {
    db = await createTestDatabase('rt_overlap');
    pool = createPool({ url: db.url }, { ssl: { mode: 'disable' }, max: 4 });
    await migrate(pool);
    dir = await mkdtemp(path.join(os.tmpdir(), 'roundtrip-overlap-'));
    const sql = path.join(dir, 'touch.sql');
    await writeFile(
      sql,
      'CREATE TABLE IF NOT EXISTS overlap_touch (n integer);\nINSERT INTO overlap_touch VALUES (1);\n',
    );
    config = parseConfig({
      name: 'overlap',
      postgres: { secret: 'roundtrip/postgres', ssl: { mode: 'disable' } },
      transform: [sql],
    });
    deps = { config, pg: pool, logger: createMemoryLogger('info'), clock: systemClock };
  });
  beforeEach(async () => {
    await pool.query('DELETE FROM roundtrip.runs');
  });
  afterAll(async () => {
    await pool?.end();
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  const prepare: ReturnType<typeof prepareHandler> = (event) => prepareHandler(givenDeps(deps))(event);
  const row = async (runId: string): Promise<Record<string, unknown> | undefined> =>
    (
      await pool.query<Record<string, unknown>>(
        `SELECT status, error, finished_at IS NOT NULL AS finished FROM roundtrip.runs WHERE run_id = $1`,
        [runId],
      )
    ).rows[0];
  /** The pipeline's state machine, run here with `input`; the states it entered. */
  async function execute(runId: string, input: unknown): Promise<{ status: string; states: string[] }> {
    const bound = await loadPipelineDefinition(config);
    const states: string[] = [];
    const result = await runStateMachineLocally({
      definition: bound.definition,
      taskHandlers: bound.taskHandlers,
      deps,
      input,
      executionName: runId,
      waitMs: 1,
      retryMs: 1,
      onEvent: (e: LocalRunEvent) => {
        if (e.type === 'entered') states.push(e.state);
      },
    });
    return { status: result.status, states };
  }

  it('skips a run started with onOverlap "skip" while another is going: recorded skipped, nothing run', async () => {
    await prepare({ runId: 'going-1', input: {} });
    const skipped = await execute('skipping-1', { onOverlap: 'skip' });
    expect(skipped.status).toBe('succeeded');
    expect(skipped.states).toEqual(['Prepare', 'Another run going', 'Run skipped']);
    expect(await row('skipping-1')).toEqual({
      status: 'skipped',
      error: expect.stringMatching(
        /^Skipped: run going-1 of pipeline overlap is still going \(started .+, its latest step started .+\), and this run was started with onOverlap "skip"$/,
      ) as unknown,
      finished: true,
    });
    expect(await row('going-1')).toMatchObject({ status: 'running', finished: false });

    // A retried Prepare answers what the first attempt decided.
    const again = await prepare({ runId: 'skipping-1', input: { onOverlap: 'skip' } });
    expect(again.skipped).toEqual((await row('skipping-1'))?.error);
  });

  it('runs alongside when started without "skip" (by hand), and when the other run went quiet', async () => {
    await prepare({ runId: 'going-2', input: {} });
    const byHand = await execute('by-hand-2', {});
    expect(byHand).toMatchObject({ status: 'succeeded' });
    expect(byHand.states).toContain('Transform');

    // A run with no step for longer than STILL_GOING_QUIET_MINUTES died without a report.
    const quietSince = new Date(Date.now() - (STILL_GOING_QUIET_MINUTES + 1) * MINUTE);
    await pool.query(`UPDATE roundtrip.runs SET started_at = $2, last_step_at = $2 WHERE run_id = $1`, [
      'going-2',
      quietSince,
    ]);
    const scheduled = await execute('scheduled-2', { onOverlap: 'skip' });
    expect(scheduled.states).toContain('Transform');
    expect(await row('scheduled-2')).toMatchObject({ status: 'succeeded' });
  });

  it('counts a run as going while its steps start: each step marks its start on its run', async () => {
    const quietSince = new Date(Date.now() - (STILL_GOING_QUIET_MINUTES + 1) * MINUTE);
    await prepare({ runId: 'long-3', input: {} });
    await pool.query(`UPDATE roundtrip.runs SET started_at = $2, last_step_at = $2 WHERE run_id = $1`, [
      'long-3',
      quietSince,
    ]);
    // A step of the long run starts now.
    await transformHandler(givenDeps(deps))({ runId: 'long-3' });
    const { rows } = await pool.query<{ recent: boolean }>(
      `SELECT last_step_at > now() - interval '1 minute' AS recent FROM roundtrip.runs WHERE run_id = 'long-3'`,
    );
    expect(rows).toEqual([{ recent: true }]);
    expect((await prepare({ runId: 'scheduled-3', input: { onOverlap: 'skip' } })).skipped).toMatch(
      /^Skipped: run long-3 /,
    );
  });

  it('counts the quiet stretch from the end of Prepare, not from the execution’s start: a long Prepare is not part of it', async () => {
    // Prepare may take its function's 900 s, and a retried Prepare several times that: an
    // execution that started longer ago than the stretch, whose Prepare has just ended (its next
    // state an Athena query, say, which starts no step), is still going.
    const startedLongAgo = new Date(Date.now() - (STILL_GOING_QUIET_MINUTES + 10) * MINUTE);
    await prepare({ runId: 'slow-prepare-6', input: {}, executionStartTime: startedLongAgo.toISOString() });
    expect((await prepare({ runId: 'scheduled-6', input: { onOverlap: 'skip' } })).skipped).toMatch(
      /^Skipped: run slow-prepare-6 of pipeline overlap is still going \(started .+, its latest step started .+\)/,
    );
  });

  it('counts a quiet run as going for longer when the Athena query limit (athena.queryTimeoutMinutes) is longer', async () => {
    // An Athena extract may wait on its queries without a step for up to 4 × 120 minutes and more.
    const athenaConfig = parseConfig({
      name: 'overlap',
      athena: { database: 'marketing', outputLocation: 's3://overlap/results/', queryTimeoutMinutes: 120 },
      postgres: { secret: 'roundtrip/postgres', ssl: { mode: 'disable' } },
      extract: [{ from: 'athena', query: 'SELECT 1 AS one', table: 'overlap_one' }],
    });
    expect(stillGoingQuietMinutes(athenaConfig)).toBe(4 * 120 + 22);
    const athenaDeps = { ...deps, config: athenaConfig };
    const prepareAthena: typeof prepare = (event) => prepareHandler(givenDeps(athenaDeps))(event);
    await prepareAthena({ runId: 'querying-5', input: {} });
    const quiet = async (minutes: number): Promise<void> => {
      const since = new Date(Date.now() - minutes * MINUTE);
      await pool.query(`UPDATE roundtrip.runs SET started_at = $2, last_step_at = $2 WHERE run_id = $1`, [
        'querying-5',
        since,
      ]);
    };
    // Quiet for longer than the 150 minutes of a pipeline with the default limit: still going.
    await quiet(STILL_GOING_QUIET_MINUTES + 1);
    expect((await prepareAthena({ runId: 'scheduled-5a', input: { onOverlap: 'skip' } })).skipped).toMatch(
      /^Skipped: run querying-5 /,
    );
    // Quiet for longer than its queries could take: it died.
    await quiet(4 * 120 + 22 + 1);
    expect(
      (await prepareAthena({ runId: 'scheduled-5b', input: { onOverlap: 'skip' } })).skipped,
    ).toBeUndefined();
  });

  it('lets a run that starts while another is being recorded wait for it, then skip', async () => {
    // Another Prepare of the pipeline, mid-way: it holds the pipeline's lock and has inserted its
    // row, not yet committed. Without the lock the second run would not see that row and go too.
    const held = await pool.connect();
    try {
      await held.query('BEGIN');
      await held.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [PREPARE_LOCK_CLASS, 'overlap']);
      await held.query(
        `INSERT INTO roundtrip.runs (run_id, pipeline, status) VALUES ('first-in', 'overlap', 'running')`,
      );
      const second = prepare({ runId: 'second-in', input: { onOverlap: 'skip' } });
      await new Promise((resolve) => setTimeout(resolve, 500));
      await held.query('COMMIT');
      expect((await second).skipped).toMatch(/^Skipped: run first-in /);
    } finally {
      held.release();
    }
    expect(await row('second-in')).toMatchObject({ status: 'skipped' });
  });

  it('records a run as started when its execution started ($$.Execution.StartTime), not when Prepare got to run', async () => {
    const startedAt = async (runId: string): Promise<string | undefined> =>
      (
        await pool.query<{ started_at: Date }>('SELECT started_at FROM roundtrip.runs WHERE run_id = $1', [
          runId,
        ])
      ).rows[0]?.started_at.toISOString();
    // A Prepare invoked (a cold start) after its execution started.
    await prepare({ runId: 'timed-1', executionStartTime: '2026-03-01T08:00:00.123Z', input: {} });
    expect(await startedAt('timed-1')).toBe('2026-03-01T08:00:00.123Z');
    // An execution's clock a little ahead of Prepare's: never a start after Prepare's now.
    const before = Date.now();
    await prepare({
      runId: 'timed-2',
      executionStartTime: new Date(before + 60 * MINUTE).toISOString(),
      input: {},
    });
    expect(Date.parse((await startedAt('timed-2')) ?? '')).toBeLessThanOrEqual(Date.now());
    await expect(prepare({ runId: 'timed-3', executionStartTime: 'yesterday', input: {} })).rejects.toThrow(
      /executionStartTime/,
    );

    // Through the state machine, on a clock that moves 5 s at every look: the run starts at the
    // first look (the execution's start), Prepare looks later.
    let t = Date.parse('2026-03-02T09:00:00.000Z');
    const ticking = { ...systemClock, now: () => new Date((t += 5_000) - 5_000) };
    const bound = await loadPipelineDefinition(config);
    const result = await runStateMachineLocally({
      definition: bound.definition,
      taskHandlers: bound.taskHandlers,
      deps: { ...deps, clock: ticking },
      input: {},
      executionName: 'timed-4',
      waitMs: 1,
      retryMs: 1,
    });
    expect(result.status).toBe('succeeded');
    expect(await startedAt('timed-4')).toBe('2026-03-02T09:00:00.000Z');
  });

  describe('in AWS, where Prepare asks Step Functions (the real SFN client to a stand-in)', () => {
    let sfn: SfnStandIn;
    useLocalAwsEnv();
    const arnOf = (runId: string): string =>
      `arn:aws:states:eu-west-1:123456789012:execution:roundtrip-overlap:${runId}`;

    beforeAll(async () => {
      sfn = await startSfnStandIn();
    });
    afterAll(async () => {
      await sfn?.stop();
    });

    /** Prepare as the Lambda builds it: with the executions reader of lambdas/handlers/sfn-deps.ts. */
    const awsPrepare: ReturnType<typeof prepareHandler> = (event) =>
      prepareHandler(
        givenDeps({
          ...deps,
          executions: sfnExecutions({
            config,
            env: { AWS_ENDPOINT_URL_SFN: sfn.endpoint },
            secrets: { getSecret: () => Promise.reject(new Error('none')) },
            logger: deps.logger,
          }),
        }),
      )(event);

    it('closes a run whose execution was stopped without its report, and goes', async () => {
      await prepare({ runId: 'stopped-5', executionArn: arnOf('stopped-5'), input: {} });
      sfn.statuses.set(arnOf('stopped-5'), 'ABORTED');
      const next = await awsPrepare({
        runId: 'next-5',
        executionArn: arnOf('next-5'),
        input: { onOverlap: 'skip' },
      });
      expect(next.skipped).toBeUndefined();
      expect(sfn.asked).toContain(arnOf('stopped-5'));
      expect(await row('stopped-5')).toEqual({
        status: 'failed',
        error: 'Its execution ended ABORTED without its report (seen by the Prepare of run next-5)',
        finished: true,
      });
      expect(await row('next-5')).toMatchObject({ status: 'running' });
    });

    it('skips while the execution runs, however long its steps have been quiet', async () => {
      await prepare({ runId: 'slow-6', executionArn: arnOf('slow-6'), input: {} });
      const longAgo = new Date(Date.now() - (STILL_GOING_QUIET_MINUTES + 30) * MINUTE);
      await pool.query(`UPDATE roundtrip.runs SET started_at = $2, last_step_at = $2 WHERE run_id = $1`, [
        'slow-6',
        longAgo,
      ]);
      sfn.statuses.set(arnOf('slow-6'), 'RUNNING');
      const next = await awsPrepare({
        runId: 'next-6',
        executionArn: arnOf('next-6'),
        input: { onOverlap: 'skip' },
      });
      expect(next.skipped).toMatch(
        /^Skipped: run slow-6 of pipeline overlap is still going \(started .+, its execution is RUNNING\)/,
      );
      expect(await row('slow-6')).toMatchObject({ status: 'running' });
    });

    it('goes by the steps for a run Step Functions does not know (recorded by a laptop)', async () => {
      await prepare({ runId: 'laptop-7', executionArn: arnOf('laptop-7'), input: {} });
      const next = await awsPrepare({
        runId: 'next-7',
        executionArn: arnOf('next-7'),
        input: { onOverlap: 'skip' },
      });
      expect(next.skipped).toMatch(/^Skipped: run laptop-7 .*its latest step started/);
    });
  });
});
