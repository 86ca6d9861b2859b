import { Metrics } from '@aws-lambda-powertools/metrics';
import { timeLeftOf } from '../../../lambdas/shared/clock';
import {
  METRIC_NAMES,
  instrumentStep,
  measureStepOutput,
  recordMeasurements,
  serviceName,
  type Observability,
} from '../../../lambdas/shared/observability';

describe('measureStepOutput', () => {
  it('reads rows from a loaded Salesforce extract, not its API calls (the report says them)', () => {
    expect(
      measureStepOutput({ status: 'loaded', task: 'Lead', rows: 120, apiCalls: 3, api: 'rest' }),
    ).toEqual([{ task: 'Lead', values: { rowsRead: 120 } }]);
  });

  it('counts the API calls of an Athena load as Athena calls', () => {
    expect(
      measureStepOutput({ status: 'loaded', task: 'customers', queryExecutionId: 'q', rows: 7, apiCalls: 2 }),
    ).toEqual([{ task: 'customers', values: { rowsRead: 7, athenaApiCalls: 2 } }]);
  });

  it('reads rejections from a plan, written and failed records from a finished push or collect', () => {
    expect(
      measureStepOutput({ status: 'planned', task: 'Lead-update', rejected: 4, heldBack: 2, changed: 9 }),
    ).toEqual([{ task: 'Lead-update', values: { rowsRejected: 4, rowsHeldBack: 2 } }]);
    expect(measureStepOutput({ status: 'collected', task: 'Lead-update', succeeded: 8, failed: 1 })).toEqual([
      { task: 'Lead-update', values: { rowsWritten: 8, recordsFailed: 1 } },
    ]);
  });

  it('counts the records an insert push held back (keys another run took since the plan) as held back, not failed', () => {
    expect(
      measureStepOutput({ status: 'collected', task: 'Lead-insert', succeeded: 5, failed: 0, heldBack: 3 }),
    ).toEqual([{ task: 'Lead-insert', values: { rowsWritten: 5, recordsFailed: 0, rowsHeldBack: 3 } }]);
  });

  it('counts the records a push left to a newer run (superseded) apart, neither written nor failed', () => {
    expect(
      measureStepOutput({
        status: 'collected',
        task: 'Lead-update',
        succeeded: 5,
        failed: 0,
        heldBack: 0,
        superseded: 2,
      }),
    ).toEqual([
      {
        task: 'Lead-update',
        values: { rowsWritten: 5, recordsFailed: 0, rowsHeldBack: 0, rowsSuperseded: 2 },
      },
    ]);
  });

  it('reads the API calls of each Salesforce extract from the report, those of a failed one included', () => {
    expect(
      measureStepOutput({
        runId: 'r',
        status: 'failed',
        writeback: {},
        extract: { Lead: { apiCalls: 7 }, Contact: { apiCalls: 3 } },
      }),
    ).toEqual([
      { task: 'Lead', values: { salesforceApiCalls: 7 } },
      { task: 'Contact', values: { salesforceApiCalls: 3 } },
    ]);
  });

  it('reads the write-back API calls of each task from the report', () => {
    expect(
      measureStepOutput({
        runId: 'r',
        status: 'failed',
        writeback: { 'Lead-update': { apiCalls: 12 }, 'Contact-upsert': { apiCalls: 0 } },
      }),
    ).toEqual([
      { task: 'Lead-update', values: { salesforceApiCalls: 12 } },
      { task: 'Contact-upsert', values: { salesforceApiCalls: 0 } },
    ]);
  });

  it("reads Prepare's own Salesforce calls (its forecast's limits and counts) from the report, a failed Prepare's included", () => {
    // Not from Prepare's output: a Prepare that failed has none, and the report says them all.
    const prepared = {
      runId: 'r',
      pipeline: 'lead-scoring',
      tasks: { salesforce: ['Lead'], athena: [], writeback: [] },
      full: false,
      dryRun: false,
      startedAt: '2026-11-29T00:00:00.000Z',
      forecast: { salesforceApiCalls: 9 },
    };
    expect(measureStepOutput({ ...prepared, apiCalls: 2 })).toEqual([]);
    expect(
      measureStepOutput({ runId: 'r', status: 'failed', writeback: {}, prepare: { apiCalls: 2 } }),
    ).toEqual([{ values: { salesforceApiCalls: 2 } }]);
    expect(measureStepOutput({ runId: 'r', status: 'succeeded', writeback: {} })).toEqual([]);
  });

  it('counts one NotificationsFailed for a report whose notification the topic did not take, none otherwise', () => {
    expect(
      measureStepOutput({ runId: 'r', status: 'failed', writeback: {}, notificationFailed: true }),
    ).toEqual([{ values: { notificationsFailed: 1 } }]);
    expect(
      measureStepOutput({
        runId: 'r',
        status: 'succeeded',
        writeback: { 'Lead-update': { apiCalls: 2 } },
        prepare: { apiCalls: 1 },
        notificationFailed: true,
      }),
    ).toEqual([
      { values: { salesforceApiCalls: 1 } },
      { values: { notificationsFailed: 1 } },
      { task: 'Lead-update', values: { salesforceApiCalls: 2 } },
    ]);
    expect(measureStepOutput({ runId: 'r', status: 'failed', writeback: {} })).toEqual([]);
    // Not a report's output: no notification to speak of.
    expect(
      measureStepOutput({
        status: 'collected',
        task: 'T',
        succeeded: 1,
        failed: 0,
        notificationFailed: true,
      }),
    ).toEqual([{ task: 'T', values: { rowsWritten: 1, recordsFailed: 0 } }]);
  });

  it('measures nothing for a pending Bulk job or an output without figures', () => {
    expect(measureStepOutput({ status: 'bulk-pending', task: 'Lead', jobId: 'x', apiCalls: 2 })).toEqual([]);
    expect(measureStepOutput({ runId: 'r', files: [] })).toEqual([]);
    expect(measureStepOutput(null)).toEqual([]);
  });
});

describe('recordMeasurements', () => {
  it('emits each figure with the service dimension, and again with the task', () => {
    const metrics = new Metrics({ namespace: 'roundtrip', serviceName: serviceName('lead-scoring') });
    const published: unknown[] = [];
    const single = metrics.singleMetric.bind(metrics);
    metrics.singleMetric = () => {
      const one = single();
      one.publishStoredMetrics = () => {
        published.push(one.serializeMetrics());
        one.clearMetrics();
        return one;
      };
      return one;
    };
    recordMeasurements(metrics, [{ task: 'Lead-update', values: { rowsWritten: 8, recordsFailed: 1 } }]);
    const emf = metrics.serializeMetrics() as unknown as Record<string, unknown> & {
      _aws: { CloudWatchMetrics: { Dimensions: string[][]; Metrics: { Name: string }[] }[] };
    };
    expect(emf._aws.CloudWatchMetrics[0]?.Dimensions).toEqual([['service']]);
    expect(emf._aws.CloudWatchMetrics[0]?.Metrics.map((m) => m.Name).sort()).toEqual(
      [METRIC_NAMES.recordsFailed, METRIC_NAMES.rowsWritten].sort(),
    );
    expect(emf.service).toBe('roundtrip-lead-scoring');
    expect(emf[METRIC_NAMES.rowsWritten]).toBe(8);
    // The per-task copy (a single metric set is published as soon as it is built).
    const perTask = published as (Record<string, unknown> & {
      _aws: { CloudWatchMetrics: { Dimensions: string[][] }[] };
    })[];
    const withTask = perTask.filter((p) => p.task === 'Lead-update');
    expect(withTask.length).toBeGreaterThan(0);
    expect(withTask[0]?._aws.CloudWatchMetrics[0]?.Dimensions[0]?.sort()).toEqual(['service', 'task']);
  });

  it('skips values that are missing', () => {
    const metrics = new Metrics({ namespace: 'roundtrip', serviceName: 's' });
    recordMeasurements(metrics, [{ values: { rowsRead: undefined } }]);
    expect(metrics.hasStoredMetrics()).toBe(false);
  });
});

describe('instrumentStep', () => {
  /** Stand-ins for the Powertools objects, recording what the wrapper does with them. */
  function fakeObservability() {
    const calls: string[] = [];
    const logged: { level: string; message: string; attributes?: unknown }[] = [];
    const keys = new Map<string, string>();
    const obs = {
      logger: {
        addContext: () => calls.push('addContext'),
        appendKeys: (k: Record<string, string>) => Object.entries(k).forEach(([a, b]) => keys.set(a, b)),
        removeKeys: (k: string[]) => k.forEach((a) => keys.delete(a)),
        info: (message: string, attributes?: unknown) =>
          logged.push({ level: 'info', message, attributes: { ...Object.fromEntries(keys), attributes } }),
        error: (message: string, attributes?: unknown) =>
          logged.push({ level: 'error', message, attributes: { ...Object.fromEntries(keys), attributes } }),
      },
      metrics: {
        captureColdStartMetric: () => calls.push('coldStart'),
        addMetric: (name: string, _unit: string, value: number) => calls.push(`metric ${name}=${value}`),
        singleMetric: () => ({ addDimension: () => undefined, addMetric: () => undefined }),
        hasStoredMetrics: () => calls.some((c) => c.startsWith('metric')),
        publishStoredMetrics: () => calls.push('publish'),
      },
      tracer: { isTracingEnabled: () => false },
    };
    return { calls, logged, keys, obs: () => obs as unknown as Observability };
  }

  it('logs with the run id and task, publishes the step figures, and returns the output', async () => {
    const fake = fakeObservability();
    const handler = instrumentStep(
      'ExtractSalesforce',
      async (event) => ({ status: 'loaded', task: (event as { task: string }).task, rows: 5, apiCalls: 2 }),
      fake.obs,
    );
    const output = await handler({ runId: 'run-1', task: 'Lead' });
    expect(output).toEqual({ status: 'loaded', task: 'Lead', rows: 5, apiCalls: 2 });
    // A Salesforce extract's API calls are the report's to measure (a failed step's included).
    expect(fake.calls).toEqual(['coldStart', 'metric RowsRead=5', 'publish']);
    expect(fake.logged[0]).toMatchObject({
      message: 'Step finished',
      attributes: { step: 'ExtractSalesforce', runId: 'run-1', task: 'Lead' },
    });
    expect(fake.keys.size).toBe(0); // the keys do not leak into the next invocation
  });

  it('hands the invocation context to the step, which reads its time left from it', async () => {
    const fake = fakeObservability();
    const handler = instrumentStep(
      'PushWriteback',
      async (_event, context) => ({ left: timeLeftOf(context)() }),
      fake.obs,
    );
    const context = {
      functionName: 'f',
      functionVersion: '$LATEST',
      invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:f',
      memoryLimitInMB: '1024',
      awsRequestId: 'r-1',
      getRemainingTimeInMillis: () => 123_456,
    };
    expect(await handler({ runId: 'run-3' }, context)).toEqual({ left: 123_456 });
    expect(await handler({ runId: 'run-3' })).toEqual({ left: Number.POSITIVE_INFINITY });
  });

  it('logs and rethrows an error unchanged, so the state machine sees its name', async () => {
    const fake = fakeObservability();
    const failure = Object.assign(new Error('bad secret'), { name: 'TerminalError' });
    const handler = instrumentStep(
      'Prepare',
      async () => {
        throw failure;
      },
      fake.obs,
    );
    await expect(handler({ runId: 'run-2' })).rejects.toBe(failure);
    expect(fake.logged).toEqual([
      {
        level: 'error',
        message: 'Step failed',
        attributes: { step: 'Prepare', runId: 'run-2', attributes: { error: failure } },
      },
    ]);
    expect(fake.keys.size).toBe(0);
  });
});
