/**
 * Prepare, Plan, Push and Collect add the Salesforce calls they made to the run's summary whether they
 * succeed or fail. When a step fails and PostgreSQL is down by the time it records its calls (the
 * database's failover, a dropped network), the step's own error is the one it throws, and the lost
 * record is logged: the error that reaches the state machine and the run's report says what went
 * wrong with the step, not only that the database went away afterwards.
 */
import type { Pool, PoolClient } from 'pg';
import { classifyPostgresError } from '../../../lambdas/connectors/postgres';
import type { SalesforceConnector } from '../../../lambdas/connectors/salesforce';
import { prepare } from '../../../lambdas/core/prepare';
import { collectWriteback, planWriteback, pushWriteback } from '../../../lambdas/core/writeback';
import { TransientError } from '../../../lambdas/shared/errors';
import { LEAD_SRC_UPSERT, startWritebackEnv, type WritebackEnv } from './support';

describe("a step's own error, when recording its API calls fails too", () => {
  let env: WritebackEnv;
  /** Whether PostgreSQL is "down": every statement through {@link failingPool} then fails. */
  let down = false;

  beforeAll(async () => {
    env = await startWritebackEnv();
    await env.pool.query(`CREATE TABLE lead_src (ext text, last_name text, company text, score integer)`);
  });
  afterEach(() => {
    down = false;
  });
  afterAll(async () => env?.stop());

  /** The statement error of a dropped connection, as the pool and its clients hand it over. */
  const dropped = (): Error => classifyPostgresError(new Error('Connection terminated unexpectedly'));

  /** The test pool, whose statements (its own and its clients') fail while {@link down}. */
  function failingPool(pool: Pool): Pool {
    const client = (c: PoolClient): PoolClient =>
      new Proxy(c, {
        get: (target, prop) => {
          if (prop === 'query')
            return (...args: unknown[]) =>
              down ? Promise.reject(dropped()) : (target.query as (...a: unknown[]) => unknown)(...args);
          const value: unknown = Reflect.get(target, prop, target);
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
    return new Proxy(pool, {
      get: (target, prop) => {
        if (prop === 'query')
          return (...args: unknown[]) =>
            down ? Promise.reject(dropped()) : (target.query as (...a: unknown[]) => unknown)(...args);
        if (prop === 'connect')
          return async () => (down ? Promise.reject(dropped()) : client(await target.connect()));
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  /**
   * A connector whose first write (`write`: any method but GET) or read (`read`) reaches
   * Salesforce, and then the step loses its answer and PostgreSQL goes down at once.
   */
  function failingAfter(kind: 'write' | 'read'): SalesforceConnector {
    const connector = env.connector;
    return Object.create(connector, {
      request: {
        value: async (operation: string, method: 'GET' | 'PATCH', path: string, body?: unknown) => {
          const answer = await connector.request(operation, method, path, body);
          if ((method === 'GET') === (kind === 'read') && !down) {
            down = true;
            throw new TransientError(`${operation}: the answer was lost (simulated)`);
          }
          return answer;
        },
      },
    }) as SalesforceConnector;
  }

  const lostRecord = (step: string): unknown[] =>
    env.logger.records.filter(
      (r) => r.level === 'error' && r.message.includes(`API call`) && r.message.includes(step),
    );

  async function source(prefix: string, n: number): Promise<void> {
    await env.pool.query('DELETE FROM lead_src');
    await env.pool.query(
      `INSERT INTO lead_src SELECT $1 || '-' || i, 'Down ' || i, 'Initech', i FROM generate_series(1, $2::int) AS i`,
      [prefix, n],
    );
  }

  it('Push throws the lost call, not the database error of recording its calls', async () => {
    await source('push', 3);
    const deps = env.deps({ writeback: [LEAD_SRC_UPSERT] });
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'Lead-upsert' });

    const pushed = pushWriteback(
      { ...deps, pg: failingPool(env.pool), salesforce: failingAfter('write') },
      { runId, task: 'Lead-upsert' },
    );

    await expect(pushed).rejects.toThrow(/the answer was lost \(simulated\)/);
    expect(lostRecord('of the push')).toEqual([
      expect.objectContaining({
        message: `Could not record the 1 Salesforce API call of the push (roundtrip.runs summary.writeback.Lead-upsert.apiCalls of run ${runId}); the step's own error is thrown`,
        attributes: expect.objectContaining({
          error: expect.stringContaining('Connection terminated unexpectedly'),
        }),
      }),
    ]);
  });

  it('Collect throws the lost poll, not the database error of recording its calls', async () => {
    await source('collect', 3);
    const deps = env.deps({ writeback: [{ ...LEAD_SRC_UPSERT, bulkThreshold: 2 }] });
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'Lead-upsert' });
    const pending = await pushWriteback(deps, { runId, task: 'Lead-upsert' });
    if (pending.status !== 'bulk-pending') throw new Error(`expected bulk-pending, got ${pending.status}`);

    const collected = collectWriteback(
      { ...deps, pg: failingPool(env.pool), salesforce: failingAfter('read') },
      pending,
    );

    await expect(collected).rejects.toThrow(/the answer was lost \(simulated\)/);
    expect(lostRecord('of the collect')).toHaveLength(1);
  });

  it('Prepare throws the failed /limits call, not the database error of recording its calls', async () => {
    const deps = env.deps({ writeback: [LEAD_SRC_UPSERT] });
    const connector = env.connector;
    const limitsLost = Object.create(connector, {
      limits: {
        value: async () => {
          await connector.limits();
          down = true;
          throw new TransientError('limits: the answer was lost (simulated)');
        },
      },
    }) as SalesforceConnector;

    const prepared = prepare(
      { runId: `prepare-down-${Date.now()}`, input: {} },
      { ...deps, pg: failingPool(env.pool), salesforce: limitsLost },
    );

    await expect(prepared).rejects.toThrow('limits: the answer was lost (simulated)');
    expect(lostRecord('Prepare made')).toHaveLength(1);
  });
  it('Plan records the calls it made when it fails, and throws its own error when the record fails too', async () => {
    const deps = env.deps({ writeback: [{ ...LEAD_SRC_UPSERT, from: 'lead_srcc' }] });
    const apiCalls = async (runId: string): Promise<unknown> =>
      (
        await env.pool.query(
          `SELECT summary->'writeback'->'Lead-upsert'->'apiCalls' AS n FROM roundtrip.runs WHERE run_id = $1`,
          [runId],
        )
      ).rows[0]?.n;

    // A new container's connector: its describe is a call. The source is misspelt: the plan fails
    // after the describe, which the run's summary counts all the same.
    const runId = await env.newRun();
    await expect(
      planWriteback({ ...deps, salesforce: await env.connect() }, { runId, task: 'Lead-upsert' }),
    ).rejects.toThrow(/the source "public"."lead_srcc" does not exist/);
    expect(await apiCalls(runId)).toBe(1);

    // The same, with PostgreSQL down by the time the plan fails: the plan's own error is thrown.
    const connector = await env.connect();
    const downAfterDescribe = Object.create(connector, {
      describe: {
        value: async (object: string) => {
          await connector.describe(object);
          down = true;
          throw new TransientError('describe: the answer was lost (simulated)');
        },
      },
    }) as SalesforceConnector;
    const second = await env.newRun();
    await expect(
      planWriteback(
        { ...deps, pg: failingPool(env.pool), salesforce: downAfterDescribe },
        { runId: second, task: 'Lead-upsert' },
      ),
    ).rejects.toThrow('describe: the answer was lost (simulated)');
    expect(lostRecord('of the plan')).toHaveLength(1);
  });
});
