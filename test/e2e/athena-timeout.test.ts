/**
 * A run whose Athena query outlives its `.sync` Task's TimeoutSeconds, through the definition that
 * deploys (built with a 1-second limit, as a laptop's is with 60) run by the local runner against an
 * Athena emulator whose queries run for a minute: the query is stopped (CANCELLED in the emulator),
 * and the run fails with States.Timeout and a message naming the task, the limit, what sets it and
 * the query execution, recorded by the run's Report, instead of the bare States.Timeout.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AthenaClient, GetQueryExecutionCommand } from '@aws-sdk/client-athena';
import { athenaClientConfig, startAthenaEmulator, type AthenaEmulator } from '../../emulators/athena';
import { parseConfig } from '../../lambdas/config';
import { createPool, type PostgresPool } from '../../lambdas/connectors/postgres';
import type { CoreDeps } from '../../lambdas/core/deps';
import { systemClock } from '../../lambdas/shared/clock';
import { createMemoryLogger } from '../../lambdas/shared/logging';
import { loadPipelineDefinition, runStateMachineLocally, type LocalRunEvent } from '../../statemachine/local';
import { createTestDatabase, type TestDatabase } from '../support/database';

describe('a run whose Athena query outlives its Task', () => {
  let dataDir: string;
  let slow: AthenaEmulator;
  let athena: AthenaClient;
  let db: TestDatabase;
  let pool: PostgresPool;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'athena-timeout-'));
    await mkdir(path.join(dataDir, 'marketing'));
    await writeFile(path.join(dataDir, 'marketing', 'customers.csv'), 'email\n"a@example.com"\n');
    // Every query runs for a minute (unless stopped): far past the Task's 1 s.
    slow = await startAthenaEmulator({ dataDir, queryDelaysMs: { running: 60_000 } });
    athena = new AthenaClient({ ...athenaClientConfig(slow), maxAttempts: 1 });
    db = await createTestDatabase('rt_athena_timeout');
    pool = createPool({ url: db.url }, { ssl: { mode: 'disable' } });
  });
  afterAll(async () => {
    await pool?.end();
    await db?.drop();
    athena?.destroy();
    await slow?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('stops the query and fails the run naming the task, the limit, what sets it and the query execution', async () => {
    const config = parseConfig({
      name: 'athena-timeout',
      athena: { database: 'marketing', outputLocation: 's3://athena-timeout/results/' },
      postgres: { secret: 'roundtrip/postgres', ssl: { mode: 'disable' } },
      extract: [{ from: 'athena', query: 'SELECT email FROM customers', table: 'athena_customers' }],
    });
    const bound = await loadPipelineDefinition(config, { athenaQueryTimeoutSeconds: 1 });
    const deps = {
      config,
      pg: pool,
      logger: createMemoryLogger('error'),
      clock: systemClock,
    } as unknown as CoreDeps;
    const events: LocalRunEvent[] = [];
    const started = Date.now();
    const result = await runStateMachineLocally({
      definition: bound.definition,
      taskHandlers: bound.taskHandlers,
      deps,
      athenaClient: athena,
      input: {},
      executionName: 'athena-timeout-1',
      waitMs: 1,
      retryMs: 1,
      onEvent: (e) => events.push(e),
    });
    expect(Date.now() - started).toBeLessThan(30_000);

    expect(result).toMatchObject({ status: 'failed', error: 'States.Timeout' });
    const cause = result.status === 'failed' ? result.cause : '';
    const id = /Query execution (\S+) in workgroup primary was stopped with StopQueryExecution/.exec(
      cause,
    )?.[1];
    expect(id).toBeDefined();
    expect(cause).toMatch(
      /^The Athena query of extract task athena_customers did not end within 1 s, the limit of its Task state \(the local runner, LOCAL_ATHENA_TIMEOUT_SECONDS in statemachine\/local\.ts unless given; deployed it is 32 minutes, athena\.queryTimeoutMinutes in the config: raise it there, up to 120, if the query needs longer and the Athena DML query timeout of the account allows it\)\. Query execution /,
    );

    // The query was stopped in Athena, and it was the one query of the task: the `.sync` Task's
    // start, with the start's ClientRequestToken, found the same execution.
    const { QueryExecution } = await athena.send(new GetQueryExecutionCommand({ QueryExecutionId: id }));
    expect(QueryExecution?.Status?.State).toBe('CANCELLED');
    expect(QueryExecution?.Query).toBe('SELECT email FROM customers');
    const calls = (operation: string): number =>
      slow.calls.filter((c) => c.operation === operation && c.status === 200).length;
    expect(calls('StartQueryExecution')).toBe(2);
    expect(calls('StopQueryExecution')).toBe(1);

    // Through the branch's stop and message, the Extract's Catch and the Report, to Run failed.
    const entered = events.filter((e) => e.type === 'entered').map((e) => e.state);
    expect(entered).toEqual(
      expect.arrayContaining([
        'athena_customers start',
        'athena_customers query',
        'athena_customers stop',
        'athena_customers timed out',
        'athena_customers failed',
        'Report failure',
        'Run failed',
      ]),
    );
    expect(entered).not.toContain('athena_customers query failed');
    expect(entered).not.toContain('athena_customers not stopped');

    // The run's row says it too (what `roundtrip status` shows).
    const { rows } = await pool.query<{ status: string; error: string }>(
      `SELECT status, error FROM roundtrip.runs WHERE run_id = $1`,
      ['athena-timeout-1'],
    );
    expect(rows).toEqual([{ status: 'failed', error: `States.Timeout: ${cause}` }]);
  });
});
