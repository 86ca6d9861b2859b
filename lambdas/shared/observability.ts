/**
 * The one observability module of the Lambda handlers (STYLE.md, "From Powertools"): the
 * Powertools logger, metrics and tracer of this container, and {@link instrumentStep}, which
 * wraps a handler so that every invocation
 * - logs structured JSON with the Lambda context and the event's `runId` and `task` as keys,
 * - runs in an X-Ray subsegment `## <step>` with the cold start and service annotated,
 * - emits the step's figures as CloudWatch metrics in the embedded metric format (EMF: the
 *   metrics travel in the log stream, no PutMetricData call and no IAM permission needed).
 *
 * The metric names and dimensions are constants here because the CDK stack builds its alarms
 * and dashboard on them (lib/constructs/pipeline-alarms.ts): the two cannot drift apart. The
 * Powertools objects are created on first use, so importing the constants (as lib/ does) starts
 * nothing.
 *
 * Environment (set by the stack): `POWERTOOLS_SERVICE_NAME` (`roundtrip-<pipeline>`, also the
 * metrics' `service` dimension), `POWERTOOLS_METRICS_NAMESPACE` ({@link METRICS_NAMESPACE}),
 * `POWERTOOLS_LOG_LEVEL`.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { Tracer } from '@aws-lambda-powertools/tracer';
import type { InvocationContext } from './clock';

/** The CloudWatch namespace of the pipeline's metrics. */
export const METRICS_NAMESPACE = 'roundtrip';

/** The metrics the steps emit, each a count per step invocation. */
export const METRIC_NAMES = {
  /** Rows an extract read (Salesforce or Athena). */
  rowsRead: 'RowsRead',
  /** Records Salesforce accepted from a write-back. */
  rowsWritten: 'RowsWritten',
  /** Rows refused by the plan before any API call, for what the source holds. */
  rowsRejected: 'RowsRejected',
  /** Rows the plan kept back until an earlier run's send of their key has an outcome. */
  rowsHeldBack: 'RowsHeldBack',
  /**
   * Records a push did not send because a run that planned after it had synced their key: Salesforce
   * holds that run's newer values (runs that overlap, started by hand).
   */
  rowsSuperseded: 'RowsSuperseded',
  /** Records Salesforce refused. */
  recordsFailed: 'RecordsFailed',
  /** Salesforce API calls (Prepare's, and each Salesforce extract's and write-back's total from the report). */
  salesforceApiCalls: 'SalesforceApiCalls',
  /** Athena API calls of the Athena loads. */
  athenaApiCalls: 'AthenaApiCalls',
  /**
   * Reports whose notification of their run the topic did not take (refused, deleted, not reached):
   * 1 per such Report invocation (`notificationFailed` of its output), none when it was sent or
   * none was due. The run is not told of; an alarm on this is what tells of that.
   */
  notificationsFailed: 'NotificationsFailed',
} as const;

/** A key of {@link METRIC_NAMES}. */
export type MetricKey = keyof typeof METRIC_NAMES;

/**
 * Dimensions: every metric is emitted with `service` (Powertools' default dimension, the
 * service name `roundtrip-<pipeline>`), and once more with `service` and `task` when it belongs
 * to one task (the failed-record rate alarm of each write-back task reads those).
 */
export const METRIC_DIMENSIONS = { service: 'service', task: 'task' } as const;

/** The service name of a pipeline: logs' `service` key, the metrics' `service` dimension. */
export function serviceName(pipeline: string): string {
  return `roundtrip-${pipeline}`;
}

/** A step's figures, per task when they belong to one. */
export interface StepMeasurement {
  readonly task?: string;
  readonly values: Partial<Record<MetricKey, number>>;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function count(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

function task(output: Record<string, unknown>): string | undefined {
  return typeof output.task === 'string' ? output.task : undefined;
}

/**
 * The figures in a step's output (the step contracts of lambdas/core): read structurally, so
 * that a step whose output has none of them measures nothing. Outputs still pending (a Bulk job
 * running) measure nothing either: their figures arrive with the final output.
 */
export function measureStepOutput(output: unknown): StepMeasurement[] {
  if (!isRecord(output)) return [];
  const status = output.status;
  // Salesforce extract / check, Athena load: `loaded`. A Salesforce extract's calls are measured
  // from the report, as the write-back's: a task whose step failed spent calls too, and has no
  // `loaded` to say them.
  if (status === 'loaded') {
    const isAthena = typeof output.queryExecutionId === 'string';
    return [
      {
        ...(task(output) ? { task: task(output) } : {}),
        values: {
          rowsRead: count(output.rows),
          ...(isAthena ? { athenaApiCalls: count(output.apiCalls) } : {}),
        },
      },
    ];
  }
  // Write-back plan.
  if ((status === 'planned' || status === 'dry-run') && count(output.rejected) !== undefined) {
    return [
      {
        ...(task(output) ? { task: task(output) } : {}),
        values: { rowsRejected: count(output.rejected), rowsHeldBack: count(output.heldBack) },
      },
    ];
  }
  // Write-back push / collect, once every result is in.
  if (status === 'collected') {
    return [
      {
        ...(task(output) ? { task: task(output) } : {}),
        // Held back at the push (insert keys another run took since the plan): rowsHeldBack, as
        // the plan's, never recordsFailed; nor are records a newer run's values superseded.
        values: {
          rowsWritten: count(output.succeeded),
          recordsFailed: count(output.failed),
          rowsHeldBack: count(output.heldBack),
          rowsSuperseded: count(output.superseded),
        },
      },
    ];
  }
  // Report: the Salesforce API calls of the run: Prepare's (its forecast's; no task made them), and
  // each extract's and write-back's, per task (those of steps that failed included: Prepare's
  // own output cannot say the calls of a Prepare that failed, so it is not measured itself); and
  // a notification of the run this Report could not send.
  if ((status === 'succeeded' || status === 'failed') && isRecord(output.writeback)) {
    const extract = isRecord(output.extract) ? output.extract : {};
    const prepareCalls = isRecord(output.prepare) ? count(output.prepare.apiCalls) : undefined;
    return [
      ...(prepareCalls === undefined ? [] : [{ values: { salesforceApiCalls: prepareCalls } }]),
      // Its own measurement: a Report with no calls of Prepare's to say still says this.
      ...(output.notificationFailed === true ? [{ values: { notificationsFailed: 1 } }] : []),
      ...[...Object.entries(extract), ...Object.entries(output.writeback)].flatMap(([name, summary]) =>
        isRecord(summary) ? [{ task: name, values: { salesforceApiCalls: count(summary.apiCalls) } }] : [],
      ),
    ];
  }
  return [];
}

/** The Powertools objects of this container. */
export interface Observability {
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly tracer: Tracer;
}

let current: Observability | undefined;

/** The logger, metrics and tracer of this container, created on first use. */
export function observability(): Observability {
  current ??= (() => {
    const service = process.env.POWERTOOLS_SERVICE_NAME ?? 'roundtrip';
    return {
      logger: new Logger({ serviceName: service }),
      metrics: new Metrics({
        namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? METRICS_NAMESPACE,
        serviceName: service,
      }),
      tracer: new Tracer({ serviceName: service }),
    };
  })();
  return current;
}

/** Adds a step's measurements to `metrics` (published by the caller). */
export function recordMeasurements(metrics: Metrics, measurements: readonly StepMeasurement[]): void {
  for (const measurement of measurements) {
    const entries = Object.entries(measurement.values).filter(
      (entry): entry is [MetricKey, number] => entry[1] !== undefined,
    );
    for (const [key, value] of entries) metrics.addMetric(METRIC_NAMES[key], MetricUnit.Count, value);
    if (measurement.task !== undefined && entries.length > 0) {
      const perTask = metrics.singleMetric();
      perTask.addDimension(METRIC_DIMENSIONS.task, measurement.task);
      for (const [key, value] of entries) perTask.addMetric(METRIC_NAMES[key], MetricUnit.Count, value);
    }
  }
}

/** The part of the Lambda context object the logger and the steps read. */
export interface LambdaContext extends InvocationContext {
  readonly functionName: string;
  readonly functionVersion: string;
  readonly invokedFunctionArn: string;
  readonly memoryLimitInMB: string;
  readonly awsRequestId: string;
}

/** The keys of an event that go on every log line of its invocation. */
const EVENT_KEYS = ['runId', 'task'] as const;

/**
 * Wraps a step handler with logging context, a trace subsegment and metrics (see the module
 * comment). Errors are logged, traced and rethrown unchanged: their name is what the state
 * machine's Retry and Catch match on.
 */
export function instrumentStep<Output>(
  step: string,
  run: (event: unknown, context?: InvocationContext) => Promise<Output>,
  obs: () => Observability = observability,
): (event: unknown, context?: LambdaContext) => Promise<Output> {
  return async (event, context) => {
    const { logger, metrics, tracer } = obs();
    if (context) logger.addContext(context as unknown as Parameters<Logger['addContext']>[0]);
    const keys: Record<string, string> = { step };
    if (isRecord(event)) {
      for (const key of EVENT_KEYS) if (typeof event[key] === 'string') keys[key] = event[key];
    }
    logger.appendKeys(keys);
    metrics.captureColdStartMetric();

    const tracing = tracer.isTracingEnabled();
    const segment = tracing ? tracer.getSegment() : undefined;
    const subsegment = segment?.addNewSubsegment(`## ${step}`);
    if (subsegment) {
      tracer.setSegment(subsegment);
      tracer.annotateColdStart();
      tracer.addServiceNameAnnotation();
    }
    try {
      const output = await run(event, context);
      const figures = measureStepOutput(output);
      recordMeasurements(metrics, figures);
      logger.info('Step finished', { figures });
      return output;
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      if (subsegment) tracer.addErrorAsMetadata(error);
      logger.error('Step failed', { error });
      throw err;
    } finally {
      if (subsegment && segment) {
        subsegment.close();
        tracer.setSegment(segment);
      }
      if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
      logger.removeKeys(Object.keys(keys));
    }
  };
}
