/**
 * statemachine/local.ts on its own: the Athena `.sync` binding behaves like Step Functions' Athena
 * integration (the GetQueryExecution response on success, States.TaskFailed when the query fails,
 * Athena.<Exception> for an API error; a query that does not end times out as the state's
 * TimeoutSeconds does in AWS, with a States.Timeout that States.TaskFailed does not catch), a Task
 * state without a binding is refused by name, and a failed Lambda Task is reported by the message
 * its Lambda would answer.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AthenaClient } from '@aws-sdk/client-athena';
import type { StateMachineDefinition } from 'aws-local-stepfunctions';
import { athenaClientConfig, startAthenaEmulator, type AthenaEmulator } from '../../emulators/athena';
import { parseConfig } from '../../lambdas/config';
import { createPool, migrate } from '../../lambdas/connectors/postgres';
import type { CoreDeps } from '../../lambdas/core/deps';
import { acceleratedClock } from '../../lambdas/shared/clock';
import { createMemoryLogger } from '../../lambdas/shared/logging';
import { readableFailure } from '../../lambdas/shared/errors';
import {
  LocalTaskError,
  runAthenaQuerySync,
  runStateMachineLocally,
  STATES_TASK_FAILED,
  type LocalRunEvent,
} from '../../statemachine/local';
import { createTestDatabase } from '../support/database';

describe('the local state machine runner', () => {
  let dataDir: string;
  let emulator: AthenaEmulator;
  let athena: AthenaClient;
  const clock = acceleratedClock(0);
  const request = {
    QueryString: 'SELECT email FROM customers',
    WorkGroup: 'primary',
    QueryExecutionContext: { Database: 'marketing' },
    ResultConfiguration: { OutputLocation: 's3://local-runner/results/' },
  };

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'local-runner-'));
    await mkdir(path.join(dataDir, 'marketing'));
    await writeFile(path.join(dataDir, 'marketing', 'customers.csv'), 'email\n"a@example.com"\n');
    emulator = await startAthenaEmulator({ dataDir });
    athena = new AthenaClient({ ...athenaClientConfig(emulator), maxAttempts: 1 });
  });
  afterAll(async () => {
    athena?.destroy();
    await emulator?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('returns the GetQueryExecution response of a query that succeeded', async () => {
    const output = (await runAthenaQuerySync(request, { athena, clock })) as {
      QueryExecution: { Status: { State: string }; ResultConfiguration: { OutputLocation: string } };
    };
    expect(output.QueryExecution.Status.State).toBe('SUCCEEDED');
    expect(output.QueryExecution.ResultConfiguration.OutputLocation).toMatch(
      /^s3:\/\/local-runner\/results\/.+\.csv$/,
    );
    expect(Object.keys(output)).toEqual(['QueryExecution']);
  });

  it('fails with States.TaskFailed, the response as the cause, when the query fails', async () => {
    emulator.faults.failQueryAfterRunning = true;
    try {
      const failure = await runAthenaQuerySync(request, { athena, clock }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(failure).toBeInstanceOf(LocalTaskError);
      expect((failure as Error).name).toBe(STATES_TASK_FAILED);
      const cause = JSON.parse((failure as Error).message) as {
        QueryExecution: { Status: { State: string } };
      };
      expect(cause.QueryExecution.Status.State).toBe('FAILED');
    } finally {
      emulator.faults.failQueryAfterRunning = false;
    }
  });

  it('names an Athena API error Athena.<exception>', async () => {
    emulator.faults.tooManyQueries = 1;
    const failure = await runAthenaQuerySync(request, { athena, clock }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect((failure as Error).name).toBe('Athena.TooManyRequestsException');
  });

  it("reports an Athena API error's message as the failed state's Cause, once: not the SDK error's `<name>: <message>`", async () => {
    const definition = {
      StartAt: 'Query',
      States: {
        Query: {
          Type: 'Task',
          Resource: 'arn:aws:states:::athena:startQueryExecution.sync',
          Parameters: request,
          End: true,
        },
      },
    } as unknown as StateMachineDefinition;
    const events: LocalRunEvent[] = [];
    emulator.faults.tooManyQueries = 1;
    const result = await runStateMachineLocally({
      definition,
      taskHandlers: {},
      deps: { clock } as unknown as CoreDeps,
      athenaClient: athena,
      input: {},
      executionName: 'throttled',
      onEvent: (e) => events.push(e),
    });
    expect(result).toMatchObject({ status: 'failed', error: 'Athena.TooManyRequestsException' });
    const cause = result.status === 'failed' ? result.cause : '';
    expect(cause).not.toMatch(/^TooManyRequestsException/);
    const failed = events.find((e) => e.type === 'failed' && e.state === 'Query');
    // What the step's failure line shows: `✗ <state>: Athena.TooManyRequestsException: <message>`.
    expect(failed?.error).toEqual({ name: 'Athena.TooManyRequestsException', cause });
  });

  it("takes AWS's path when a query outlives its state's TimeoutSeconds: States.Timeout goes past the Catch on States.TaskFailed to the one on States.Timeout", async () => {
    // The Athena branch of the committed definition (npm run asl; test/infra keeps it current),
    // its query's TimeoutSeconds cut to 1 s: the query Task catches States.TaskFailed into the
    // "query failed" Choice (a failed query is run again), States.Timeout into the query's stop. In
    // AWS, States.TaskFailed "matches any known error name except States.Timeout" (Step Functions
    // developer guide, "Error names").
    const asl = JSON.parse(
      await readFile(path.join(__dirname, '../../statemachine/pipeline.asl.json'), 'utf8'),
    ) as {
      States: {
        Extract: {
          Branches: { StartAt: string; States: Record<string, { Type: string; TimeoutSeconds?: number }> }[];
        };
      };
    };
    const branch = asl.States.Extract.Branches.find((b) => b.StartAt === 'athena_customers select');
    if (!branch) throw new Error('pipeline.asl.json has no athena_customers branch');
    branch.States['athena_customers query']!.TimeoutSeconds = 1;
    const slow = await startAthenaEmulator({ dataDir, queryDelaysMs: { running: 60_000 } });
    const slowAthena = new AthenaClient({ ...athenaClientConfig(slow), maxAttempts: 1 });
    const events: LocalRunEvent[] = [];
    const started = Date.now();
    try {
      const result = await runStateMachineLocally({
        definition: branch as unknown as StateMachineDefinition,
        taskHandlers: {
          'athena_customers start': 'athenaStart',
          'athena_customers query': 'athenaQuery',
          'athena_customers stop': 'athenaStop',
          'athena_customers load': 'load-athena',
        },
        deps: { clock } as unknown as CoreDeps,
        athenaClient: slowAthena,
        input: { run: { runId: 'timed-out', tasks: { athena: ['athena_customers'] } } },
        executionName: 'timed-out',
        onEvent: (e) => events.push(e),
      });
      expect(result).toMatchObject({ status: 'failed', error: 'States.Timeout' });
      expect(events.filter((e) => e.type === 'entered').map((e) => e.state)).toEqual([
        'athena_customers select',
        'athena_customers run or skip',
        'athena_customers start',
        'athena_customers query',
        'athena_customers stop',
        'athena_customers timed out',
        'athena_customers failed',
      ]);
      expect(
        events.find((e) => e.type === 'failed' && e.state === 'athena_customers query')?.error?.name,
      ).toBe('States.Timeout');
      expect(Date.now() - started).toBeLessThan(10_000);
      // The binding polled until the state timed out, and stops once the execution is over.
      const polls = (): number => slow.calls.filter((c) => c.operation === 'GetQueryExecution').length;
      expect(polls()).toBeGreaterThan(1);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const after = polls();
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(polls()).toBe(after);
    } finally {
      slowAthena.destroy();
      await slow.stop();
    }
  });

  it('refuses a definition with a Task state it cannot bind, naming the state', async () => {
    const definition = {
      StartAt: 'Mystery',
      States: {
        Mystery: {
          Type: 'Task',
          Resource: 'arn:aws:lambda:us-east-1:000000000000:function:mystery',
          End: true,
        },
      },
    } as unknown as StateMachineDefinition;
    await expect(
      runStateMachineLocally({
        definition,
        taskHandlers: {},
        deps: { clock } as unknown as CoreDeps,
        input: {},
        executionName: 'unbound',
      }),
    ).rejects.toThrow(
      /Task states without a local binding: Mystery \(arn:aws:lambda:us-east-1:000000000000:function:mystery\)/,
    );
  });

  it('reports a failed Lambda Task as Step Functions does: its name, and the error payload its Lambda answers (not the error it wraps)', async () => {
    // A transform whose SQL fails: its TransformError names the file and line, and wraps
    // PostgreSQL's bare error as its `cause`.
    const sql = path.join(dataDir, 'broken.sql');
    await writeFile(sql, 'SELECT 1;\nSELECT no_such_column FROM pg_class;\n');
    const db = await createTestDatabase('rt_local_runner');
    const pool = createPool({ url: db.url }, { ssl: { mode: 'disable' }, max: 2 });
    try {
      await migrate(pool);
      const config = parseConfig({
        name: 'local-runner',
        postgres: { secret: 'roundtrip/postgres' },
        transform: [sql],
      });
      const deps = { config, pg: pool, logger: createMemoryLogger('error'), clock } as unknown as CoreDeps;
      const definition = {
        StartAt: 'Transform',
        States: {
          Transform: {
            Type: 'Task',
            Resource: 'arn:aws:lambda:us-east-1:000000000000:function:transform',
            Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'Failed' }],
            End: true,
          },
          Failed: { Type: 'Fail', ErrorPath: '$.error.Error', CausePath: '$.error.Cause' },
        },
      } as unknown as StateMachineDefinition;
      const events: LocalRunEvent[] = [];
      const result = await runStateMachineLocally({
        definition,
        taskHandlers: { Transform: 'transform' },
        deps,
        input: { runId: 'local-runner-1' },
        executionName: 'local-runner-1',
        onEvent: (e) => events.push(e),
      });

      const message =
        /^Transform .*broken\.sql, line 2: column "no_such_column" does not exist \(SQLSTATE 42703\)/;
      expect(result).toMatchObject({ status: 'failed', error: 'TransformError' });
      // The Cause is the error payload Lambda's Node.js runtime answers, as deployed.
      const payload = JSON.parse(result.status === 'failed' ? result.cause : '{}') as Record<string, unknown>;
      expect(payload).toEqual({
        errorType: 'TransformError',
        errorMessage: expect.stringMatching(message),
        trace: expect.any(Array),
      });
      expect((payload.trace as string[])[0]).toMatch(/^TransformError: Transform /);
      const failed = events.find((e) => e.type === 'failed' && e.state === 'Transform');
      expect(failed?.error?.name).toBe('TransformError');
      expect(readableFailure(failed?.error?.cause ?? '')).toMatch(message);
    } finally {
      await pool.end();
      await db.drop();
    }
  });

  it('runs the Retry and Catch of the definition around a bound Task, and reports a Fail state', async () => {
    const definition = {
      StartAt: 'Query',
      States: {
        Query: {
          Type: 'Task',
          Resource: 'arn:aws:states:::athena:startQueryExecution.sync',
          Parameters: request,
          Retry: [{ ErrorEquals: ['Athena.TooManyRequestsException'], MaxAttempts: 3, IntervalSeconds: 30 }],
          Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'Failed' }],
          End: true,
        },
        Failed: { Type: 'Fail', ErrorPath: '$.error.Error', CausePath: '$.error.Cause' },
      },
    } as unknown as StateMachineDefinition;
    const deps = { clock } as unknown as CoreDeps;
    emulator.faults.tooManyQueries = 2;
    const retried = await runStateMachineLocally({
      definition,
      taskHandlers: {},
      deps,
      athenaClient: athena,
      input: {},
      executionName: 'retried',
      retryMs: 1,
    });
    expect(retried.status).toBe('succeeded');

    emulator.faults.failQueryAfterRunning = true;
    try {
      const failed = await runStateMachineLocally({
        definition,
        taskHandlers: {},
        deps,
        athenaClient: athena,
        input: {},
        executionName: 'failed',
      });
      expect(failed).toMatchObject({ status: 'failed', error: STATES_TASK_FAILED });
    } finally {
      emulator.faults.failQueryAfterRunning = false;
    }
  });
});
