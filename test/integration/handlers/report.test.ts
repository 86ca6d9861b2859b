/**
 * The Report step of a run that failed before Prepare recorded it (here: an unknown task in the
 * run input, refused before Prepare migrates or records anything): the run still gets its row in
 * roundtrip.runs, status failed, with the error, on a database where the state tables do not
 * exist yet. Through the report handler's createHandler, and through the local state machine.
 */
import { parseConfig, type PipelineConfig } from '../../../lambdas/config';
import { createPool, type PostgresPool } from '../../../lambdas/connectors/postgres';
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
