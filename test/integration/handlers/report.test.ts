/**
 * The Report step of a run that failed before Prepare recorded it (here: an unknown task in the
 * run input, refused before Prepare migrates or records anything): the run still gets its row in
 * roundtrip.runs, status failed, with the error, on a database where the state tables do not
 * exist yet. Through the report handler's createHandler, and through the local state machine.
 * And the same function recording a write-back task that failed, which the run's report then
 * fails the run by, naming it.
 */
import { parseConfig, type PipelineConfig } from '../../../lambdas/config';
import { createPool, migrate, type PostgresPool } from '../../../lambdas/connectors/postgres';
import {
  MAX_FAILED_TASKS_CAUSE_CHARS,
  MAX_REPORTED_REASON_CHARS,
  MAX_TASK_ERROR_CHARS,
  type ReportOutput,
} from '../../../lambdas/core/contracts';
import { failedTasksCause, reportedOutput } from '../../../lambdas/core/writeback/report';
import type { CoreDeps } from '../../../lambdas/core/deps';
import { givenDeps } from '../../../lambdas/handlers/deps';
import { createHandler } from '../../../lambdas/handlers/report';
import { systemClock } from '../../../lambdas/shared/clock';
import { createMemoryLogger } from '../../../lambdas/shared/logging';
import { readableFailure } from '../../../lambdas/shared/errors';
import { loadPipelineDefinition, runStateMachineLocally } from '../../../statemachine/local';
import { createTestDatabase, type TestDatabase } from '../../support/database';

const config: PipelineConfig = parseConfig({
  name: 'report-early-failure',
  postgres: { secret: 'roundtrip/postgres', ssl: { mode: 'disable' } },
  // A pipeline needs a task; this run never reaches it.
  transform: ['score.sql'],
});

/** A fresh database with a pool, and the deps of a pipeline without Salesforce or Athena. */
async function world(): Promise<{ db: TestDatabase; pool: PostgresPool; deps: CoreDeps }> {
  const db = await createTestDatabase('rt_report');
  const pool = createPool({ url: db.url }, { ssl: { mode: 'disable' } });
  return { db, pool, deps: { config, pg: pool, logger: createMemoryLogger('warn'), clock: systemClock } };
}

async function runRow(pool: PostgresPool, runId: string): Promise<Record<string, unknown>[]> {
  const { rows } = await pool.query<Record<string, unknown>>(
    `SELECT pipeline, status, error, finished_at IS NOT NULL AS finished, summary
       FROM roundtrip.runs WHERE run_id = $1`,
    [runId],
  );
  return rows;
}

describe('report of a run that failed before Prepare recorded it', () => {
  const worlds: Awaited<ReturnType<typeof world>>[] = [];
  afterAll(async () => {
    for (const w of worlds) {
      await w.pool.end();
      await w.db.drop();
    }
  });

  it('records the run as failed with its error, creating the state tables first', async () => {
    const w = await world();
    worlds.push(w);
    const report = createHandler(givenDeps(w.deps));
    const error = { Error: 'TerminalError', Cause: 'Unknown task "Nope" in the run input' };
    const output = await report({ runId: 'early-failure-1', error });
    expect(output).toEqual({
      runId: 'early-failure-1',
      status: 'failed',
      reason: 'TerminalError: Unknown task "Nope" in the run input',
      writeback: {},
    });
    const expected = [
      {
        pipeline: 'report-early-failure',
        status: 'failed',
        error: 'TerminalError: Unknown task "Nope" in the run input',
        finished: true,
        summary: { writeback: {} },
      },
    ];
    expect(await runRow(w.pool, 'early-failure-1')).toEqual(expected);

    // A retried report converges to the same row.
    await expect(report({ runId: 'early-failure-1', error })).resolves.toEqual(output);
    expect(await runRow(w.pool, 'early-failure-1')).toEqual(expected);

    // A report without an error is only for runs Prepare recorded: a missing one stays an error.
    await expect(report({ runId: 'never-recorded' })).rejects.toThrow(
      'Run never-recorded is not recorded in roundtrip.runs (the Prepare step records it)',
    );
    expect(await runRow(w.pool, 'never-recorded')).toEqual([]);
  });

  it('ends a local execution whose Prepare refused its input in Fail, with the run recorded', async () => {
    const w = await world();
    worlds.push(w);
    const bound = await loadPipelineDefinition(config);
    const result = await runStateMachineLocally({
      definition: bound.definition,
      taskHandlers: bound.taskHandlers,
      deps: w.deps,
      input: { tasks: ['Nope'] },
      executionName: 'early-failure-sm',
      waitMs: 1,
      retryMs: 1,
    });
    expect(result).toMatchObject({ status: 'failed', error: 'TerminalError' });
    expect(readableFailure(result.status === 'failed' ? result.cause : '')).toMatch(
      /^Unknown task "Nope" in the run input/,
    );
    expect(await runRow(w.pool, 'early-failure-sm')).toEqual([
      {
        pipeline: 'report-early-failure',
        status: 'failed',
        error: expect.stringMatching(/^TerminalError: Unknown task "Nope" in the run input/) as unknown,
        finished: true,
        summary: { writeback: {} },
      },
    ]);
  });
});

describe('a write-back task that failed, recorded by the report function', () => {
  const wbConfig: PipelineConfig = parseConfig({
    name: 'report-task-failure',
    salesforce: { secret: 'roundtrip/salesforce' },
    postgres: { secret: 'roundtrip/postgres', ssl: { mode: 'disable' } },
    transform: ['score.sql'],
    writeback: [
      {
        to: 'salesforce',
        object: 'Contact',
        from: 'contacts',
        mode: 'insert',
        keyColumn: 'id',
        fields: { LastName: 'name' },
      },
      { to: 'salesforce', object: 'Lead', from: 'leads', mode: 'update', fields: { LeadScore__c: 'score' } },
    ],
  });
  let db: TestDatabase;
  let pool: PostgresPool;
  let deps: CoreDeps;
  beforeAll(async () => {
    db = await createTestDatabase('rt_report_task');
    pool = createPool({ url: db.url }, { ssl: { mode: 'disable' } });
    await migrate(pool);
    deps = { config: wbConfig, pg: pool, logger: createMemoryLogger('error'), clock: systemClock };
  });
  afterAll(async () => {
    await pool?.end();
    await db?.drop();
  });

  it('keeps the task’s error, bounded, then fails the run naming it in the reason and the Cause', async () => {
    await pool.query(
      `INSERT INTO roundtrip.runs (run_id, pipeline, status) VALUES ('task-failed-1', 'report-task-failure', 'running')`,
    );
    const handler = createHandler(givenDeps(deps));
    // A Lambda's error payload, as the Catch passes it; its message far longer than is kept.
    const message = `Write-back Contact-insert: the source has no column "id" (writeback[0].keyColumn)${' …'.repeat(2_000)}`;
    const error = {
      Error: 'TerminalError',
      Cause: JSON.stringify({ errorType: 'TerminalError', errorMessage: message, trace: ['at x'] }),
    };
    const recorded = await handler({ runId: 'task-failed-1', task: 'Contact-insert', error });
    const kept = `${message.slice(0, MAX_TASK_ERROR_CHARS - 1)}…`;
    expect(recorded).toEqual({
      runId: 'task-failed-1',
      task: 'Contact-insert',
      taskFailed: true,
      error: kept,
    });
    const failedAt = async (): Promise<unknown> =>
      (
        await pool.query<{ at: unknown }>(
          `SELECT summary->'writeback'->'Contact-insert'->>'failedAt' AS at FROM roundtrip.runs WHERE run_id = 'task-failed-1'`,
        )
      ).rows[0]?.at;
    const first = await failedAt();
    // A retry stores the same, its first time kept.
    await expect(handler({ runId: 'task-failed-1', task: 'Contact-insert', error })).resolves.toEqual(
      recorded,
    );
    expect(await failedAt()).toBe(first);
    // A task the config does not name is refused, by name.
    await expect(handler({ runId: 'task-failed-1', task: 'Nope', error })).rejects.toThrow(
      'No write-back task named "Nope" in pipeline report-task-failure (known: Contact-insert, Lead-update)',
    );

    const report = (await handler({ runId: 'task-failed-1' })) as ReportOutput;
    expect(report).toMatchObject({
      status: 'failed',
      reason: `write-back Contact-insert failed (writeback[0]): ${kept}`,
      failedTasks: { tasks: ['Contact-insert'] },
      writeback: { 'Contact-insert': { written: 0 } },
    });
    // The answer, which the state machine keeps in the execution's state, leaves the task's
    // error out: it is in roundtrip.runs.
    expect(report.writeback['Contact-insert']).not.toHaveProperty('error');
    expect(report.failedTasks?.cause).toMatch(
      /^A write-back task failed \(the other tasks ran\): Contact-insert: Write-back Contact-insert: the source has no column "id" \(writeback\[0\]\.keyColumn\)/,
    );
    expect(report.failedTasks?.cause.length).toBeLessThanOrEqual(MAX_FAILED_TASKS_CAUSE_CHARS);
    const { rows } = await pool.query<{ status: string; error: string; kept: string }>(
      `SELECT status, error, summary->'writeback'->'Contact-insert'->>'error' AS kept
         FROM roundtrip.runs WHERE run_id = 'task-failed-1'`,
    );
    expect(rows).toEqual([{ status: 'failed', error: report.reason, kept }]);
  });

  it('answers the state machine a bounded reason however many tasks failed, the whole one in roundtrip.runs', async () => {
    await pool.query(
      `INSERT INTO roundtrip.runs (run_id, pipeline, status) VALUES ('task-failed-2', 'report-task-failure', 'running')`,
    );
    const handler = createHandler(givenDeps(deps));
    const long = (task: string): { Error: string; Cause: string } => ({
      Error: 'TerminalError',
      Cause: `Write-back ${task}: ${'a long reason '.repeat(400)}`,
    });
    for (const task of ['Contact-insert', 'Lead-update']) {
      await handler({ runId: 'task-failed-2', task, error: long(task) });
    }
    const report = (await handler({ runId: 'task-failed-2' })) as ReportOutput;
    const { rows } = await pool.query<{ error: string }>(
      `SELECT error FROM roundtrip.runs WHERE run_id = 'task-failed-2'`,
    );
    const whole = rows[0]?.error ?? '';
    expect(whole).toMatch(
      /^write-back Contact-insert failed .*; write-back Lead-update failed \(writeback\[1\]\): /,
    );
    expect(whole.length).toBeGreaterThan(MAX_REPORTED_REASON_CHARS / 2);
    expect(report.reason?.length).toBeLessThanOrEqual(MAX_REPORTED_REASON_CHARS);
    expect(report.failedTasks?.tasks).toEqual(['Contact-insert', 'Lead-update']);
    expect(reportedOutput({ ...report, reason: 'x'.repeat(20_000) }).reason).toMatch(
      /^x+ … \(cut: the whole reason is in roundtrip\.runs\.error\)$/,
    );
    expect(reportedOutput({ ...report, reason: 'x'.repeat(20_000) }).reason).toHaveLength(
      MAX_REPORTED_REASON_CHARS,
    );
  });

  it('records the task whose error stopped the run, and names the tasks after it that did not run', async () => {
    await pool.query(
      `INSERT INTO roundtrip.runs (run_id, pipeline, status) VALUES ('task-stopped-1', 'report-task-failure', 'running')`,
    );
    const handler = createHandler(givenDeps(deps));
    const message =
      'Salesforce Collections update of Contact failed: SERVER_UNAVAILABLE: Server temporarily unavailable';
    const error = {
      Error: 'TransientError',
      Cause: JSON.stringify({ errorType: 'TransientError', errorMessage: message, trace: ['at x'] }),
      task: 'Contact-insert',
    };
    const report = (await handler({ runId: 'task-stopped-1', error })) as ReportOutput;
    const reason = `write-back Contact-insert failed (writeback[0]) and stopped the run, its error being the run's, not the task's alone: ${message}; the write-back task after it did not run (Lead-update)`;
    expect(report).toMatchObject({ status: 'failed', reason, failedTasks: { tasks: ['Contact-insert'] } });
    const { rows } = await pool.query<{ error: string; kept: string; stopped: unknown }>(
      `SELECT error, summary->'writeback'->'Contact-insert'->>'error' AS kept,
              summary->'writeback'->'Contact-insert'->'stoppedRun' AS stopped
         FROM roundtrip.runs WHERE run_id = 'task-stopped-1'`,
    );
    // The task's figures say it stopped the run, and which tasks did not run (the CLI's summary).
    expect(rows).toEqual([{ error: reason, kept: message, stopped: { notRun: ['Lead-update'] } }]);
  });

  it('names every failed task in the Cause, their errors shortened to fit', () => {
    const failed = Array.from({ length: 30 }, (_, i) => ({
      task: `Task-${i}`,
      error: 'x'.repeat(MAX_TASK_ERROR_CHARS),
    }));
    const cause = failedTasksCause(failed);
    expect(cause.length).toBeLessThanOrEqual(MAX_FAILED_TASKS_CAUSE_CHARS);
    for (const { task } of failed) expect(cause).toContain(`${task}: x`);
    expect(cause).toMatch(/^30 write-back tasks failed \(the other tasks ran\): /);
    expect(cause).toMatch(/roundtrip status shows the run$/);
  });
});

describe('the prune of old runs’ details, in the Report Lambda’s time', () => {
  let w: Awaited<ReturnType<typeof world>>;
  beforeAll(async () => {
    w = await world();
    await migrate(w.pool);
  });
  afterAll(async () => {
    await w.pool.end();
    await w.db.drop();
  });

  /** A run of the pipeline that finished 40 days ago, with a ledger row to prune. */
  async function oldRun(runId: string): Promise<void> {
    await w.pool.query(
      `INSERT INTO roundtrip.runs (run_id, pipeline, status, started_at, finished_at)
       VALUES ($1, $2, 'succeeded', now() - interval '41 days', now() - interval '40 days')`,
      [runId, config.name],
    );
    await w.pool.query(
      `INSERT INTO roundtrip.writeback_plans (run_id, task, key, seq, operation, payload, value_hash, status)
       VALUES ($1, 'Lead-update', 'k1', 1, 'update', '{}', 'h', 'succeeded')`,
      [runId],
    );
  }
  const ledgerRows = async (runId: string): Promise<number> =>
    (
      await w.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM roundtrip.writeback_plans WHERE run_id = $1`,
        [runId],
      )
    ).rows[0]?.n ?? -1;

  it('starts none with less time left than a batch needs (the next report prunes it), and prunes with enough', async () => {
    await oldRun('old-run-1');
    const report = createHandler(givenDeps(w.deps));
    const error = { Error: 'TerminalError', Cause: 'Unknown task "Nope" in the run input' };
    await report({ runId: 'prune-report-1', error }, { getRemainingTimeInMillis: () => 5_000 });
    expect(await ledgerRows('old-run-1')).toBe(1);
    await report({ runId: 'prune-report-2', error }, { getRemainingTimeInMillis: () => 110_000 });
    expect(await ledgerRows('old-run-1')).toBe(0);
  });
});
