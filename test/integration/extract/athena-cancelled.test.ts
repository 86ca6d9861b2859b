/**
 * An Athena query stopped before it ended (StopQueryExecution: by hand in the console, say): the
 * load's error names the task and its query's config path with Athena's reason, as a failed
 * query's does, the table is left as it was, and a retried step starts no second query.
 */
import { AthenaClient, StopQueryExecutionCommand } from '@aws-sdk/client-athena';
import { athenaClientConfig } from '../../../emulators/athena';
import { loadAthena, prepare, type CoreDeps } from '../../../lambdas/core';
import { clientRequestTokenFor } from '../../../lambdas/connectors/athena';
import { TerminalError } from '../../../lambdas/shared/errors';
import { startExtractHarness, type ExtractHarness } from './harness';

describe('an Athena query that was cancelled', () => {
  let h: ExtractHarness;
  let deps: CoreDeps;

  beforeAll(async () => {
    // Queries stay QUEUED for a minute: long past the test, which stops them before they run.
    h = await startExtractHarness({
      athenaFiles: { 'marketing/customers.csv': 'id,name\n1,Ada\n2,Grace\n' },
      athenaQueryDelaysMs: { queued: 60_000 },
    });
    deps = h.deps(
      h.config([
        { from: 'athena', name: 'orders', table: 'orders', query: 'SELECT 1 AS id' },
        { from: 'athena', name: 'customers', table: 'customers', query: 'SELECT id, name FROM customers' },
      ]),
    );
  });
  afterAll(() => h.close());

  it('fails the load naming the task, its query and the reason, and a retried step starts no second query', async () => {
    const { runId } = await prepare({ input: { tasks: ['customers'] } }, deps);
    const athena = deps.athena!;
    // The step's query, started under the task's token, then stopped while it waits in the queue.
    const id = await athena.startQuery('SELECT id, name FROM customers', {
      clientRequestToken: clientRequestTokenFor(runId, 'customers'),
    });
    const client = new AthenaClient(athenaClientConfig(h.athenaEmulator));
    try {
      await client.send(new StopQueryExecutionCommand({ QueryExecutionId: id }));
    } finally {
      client.destroy();
    }
    const started = (): unknown[] =>
      h.logger.records
        .filter((r) => r.message === 'Athena query started')
        .map((r) => r.attributes.queryExecutionId);
    const startedBefore = started().length;

    const failed = await loadAthena({ runId, task: 'customers' }, deps).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(TerminalError);
    expect((failed as Error).message).toBe(
      `Extract task customers (extract[1].query): Athena query ${id} was cancelled: Query cancelled by user`,
    );
    // The retried step finds the same execution (its start answered with the same id), not a new query.
    const again = await loadAthena({ runId, task: 'customers' }, deps).catch((e: unknown) => e);
    expect((again as Error).message).toBe((failed as Error).message);
    expect(started().slice(startedBefore)).toEqual([id, id]);
    expect(h.athenaEmulator.calls.filter((c) => c.operation === 'GetQueryResults')).toEqual([]);
    expect(await h.rows(`SELECT to_regclass('public.customers') AS t`)).toEqual([{ t: null }]);
  });
});
