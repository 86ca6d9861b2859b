/**
 * The pipeline's alarms and dashboard: failed, timed-out and throttled executions, each write-back
 * task's failed-record rate, undelivered schedule events, and notifications the Report could not
 * send, all to the notification topic; a dashboard of rows read, written, rejected and API calls
 * per run, and of every alarm's state. The metrics are the ones the handlers emit through
 * lambdas/shared/observability.ts.
 */
import { ArnFormat, Aws, Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { WritebackTask } from '../../lambdas/config';
import {
  METRICS_NAMESPACE,
  METRIC_DIMENSIONS,
  METRIC_NAMES,
  type MetricKey,
} from '../../lambdas/shared/observability';
import { functionName } from '../../statemachine/definition';

/** Execution alarms look at 5-minute periods: one failed run is enough to notify. */
export const EXECUTION_ALARM_PERIOD = Duration.minutes(5);

/**
 * The run metrics are summed over an hour: a run's steps emit its figures minutes apart in
 * practice (hours apart at most, in a long run), so one point is one run at hourly or rarer
 * schedules.
 */
export const RUN_METRIC_PERIOD = Duration.hours(1);

/**
 * The notifications-failed alarm stays in ALARM this long after the last failed publish (one
 * failure in any of its periods is enough). Its own action publishes to the same topic, which
 * may refuse it too (deleted, its key disabled): then its state, in the console and on the
 * dashboard, is what shows it, and a state that went back to OK five minutes after a failure at
 * night would show nothing by morning.
 */
export const NOTIFICATIONS_FAILED_ALARM_HOLD = Duration.hours(24);

/**
 * A rate as the percentage it is written as: `0.07` is `7`, not the `7.000000000000001` that
 * `0.07 * 100` gives in floating point (12 significant digits are more than any rate written has).
 */
export function percentOf(rate: number): string {
  return String(Number((rate * 100).toPrecision(12)));
}

/** An alarm's name: `roundtrip-<pipeline>-<key>` (`roundtrip-lead-scoring-ExecutionsFailed`). */
export function alarmNameOf(pipeline: string, key: string): string {
  return `roundtrip-${pipeline}-${key}`;
}

/** Props of {@link PipelineAlarms}. */
export interface PipelineAlarmsProps {
  readonly pipeline: string;
  /** `roundtrip-<pipeline>`: the metrics' `service` dimension. */
  readonly serviceName: string;
  readonly stateMachine: sfn.IStateMachine;
  readonly topic: sns.ITopic;
  /**
   * The customer managed key that encrypts `topic`: CloudWatch is allowed to use it for these
   * alarms' notifications. @default none (a topic without a key of its own)
   */
  readonly topicKey?: kms.IKey;
  readonly writeback: readonly WritebackTask[];
  /** The schedule's dead-letter queue. @default none */
  readonly deadLetterQueue?: sqs.IQueue;
}

/** The alarms and the dashboard. */
export class PipelineAlarms extends Construct {
  /** Every alarm, by a stable key (`ExecutionsFailed`, `FailedRecordRate-<task>`, …). */
  readonly alarms: ReadonlyMap<string, cloudwatch.Alarm>;
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: PipelineAlarmsProps) {
    super(scope, id);
    const alarms = new Map<string, cloudwatch.Alarm>();
    const notify = new actions.SnsAction(props.topic);
    const add = (key: string, alarm: cloudwatch.Alarm): void => {
      alarm.addAlarmAction(notify);
      alarms.set(key, alarm);
    };
    const executionAlarm = (key: string, metric: cloudwatch.Metric, what: string): void =>
      add(
        key,
        new cloudwatch.Alarm(this, key, {
          alarmName: alarmNameOf(props.pipeline, key),
          alarmDescription: `roundtrip ${props.pipeline}: ${what}. See the execution history of the state machine and roundtrip.runs.`,
          metric: metric.with({ period: EXECUTION_ALARM_PERIOD, statistic: 'Sum' }),
          threshold: 1,
          evaluationPeriods: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
      );
    executionAlarm('ExecutionsFailed', props.stateMachine.metricFailed(), 'a run failed');
    executionAlarm('ExecutionsTimedOut', props.stateMachine.metricTimedOut(), 'a run timed out');
    executionAlarm(
      'ExecutionThrottled',
      props.stateMachine.metricThrottled(),
      'Step Functions throttled the state machine',
    );

    const metric = (key: MetricKey, task?: string): cloudwatch.Metric =>
      new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName: METRIC_NAMES[key],
        dimensionsMap: {
          [METRIC_DIMENSIONS.service]: props.serviceName,
          ...(task === undefined ? {} : { [METRIC_DIMENSIONS.task]: task }),
        },
        statistic: 'Sum',
        period: RUN_METRIC_PERIOD,
      });

    for (const task of props.writeback) {
      const key = `FailedRecordRate-${task.name}`;
      add(
        key,
        new cloudwatch.Alarm(this, key, {
          alarmName: alarmNameOf(props.pipeline, key),
          alarmDescription: `roundtrip ${props.pipeline}: Salesforce refused more than ${percentOf(task.maxFailureRate)} % of the records of write-back ${task.name} (its maxFailureRate). The records are in roundtrip.writeback_errors.`,
          metric: new cloudwatch.MathExpression({
            expression: 'IF(written + failed > 0, failed / (written + failed), 0)',
            usingMetrics: {
              written: metric('rowsWritten', task.name),
              failed: metric('recordsFailed', task.name),
            },
            period: RUN_METRIC_PERIOD,
            label: `${task.name} failed-record rate`,
          }),
          threshold: task.maxFailureRate,
          evaluationPeriods: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
      );
    }

    // 5-minute periods, as the execution alarms, so that a topic that still takes the alarm's own
    // publish (the Report's failed for its role or its network) hears of it within minutes; over a
    // day of them, so that one that does not shows it in ALARM (NOTIFICATIONS_FAILED_ALARM_HOLD).
    add(
      'NotificationsFailed',
      new cloudwatch.Alarm(this, 'NotificationsFailed', {
        alarmName: alarmNameOf(props.pipeline, 'NotificationsFailed'),
        alarmDescription: `roundtrip ${props.pipeline}: the Report could not publish a run's notification (a failed run, or records held back again) to the topic: see the warning "Could not send the notification" in the log group /aws/lambda/${functionName(props.pipeline, 'report')}, and the runs in roundtrip.runs. This alarm's own notification goes to the same topic and may fail as well.`,
        metric: metric('notificationsFailed').with({ period: EXECUTION_ALARM_PERIOD }),
        threshold: 1,
        evaluationPeriods: NOTIFICATIONS_FAILED_ALARM_HOLD.toSeconds() / EXECUTION_ALARM_PERIOD.toSeconds(),
        datapointsToAlarm: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );

    if (props.deadLetterQueue) {
      add(
        'ScheduleDeadLetters',
        new cloudwatch.Alarm(this, 'ScheduleDeadLetters', {
          alarmName: alarmNameOf(props.pipeline, 'ScheduleDeadLetters'),
          alarmDescription: `roundtrip ${props.pipeline}: the schedule could not start a run (the event is in the dead-letter queue)`,
          metric: props.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
            period: EXECUTION_ALARM_PERIOD,
            statistic: 'Maximum',
          }),
          threshold: 1,
          evaluationPeriods: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
      );
    }
    this.alarms = alarms;

    // CloudWatch publishes an alarm's notification as the service, which the topic's access
    // policy must allow: the topic's policy (its TLS-only statement) replaces SNS's default one,
    // which allowed sources of the account, so without this statement every alarm action fails
    // with "… is not authorized to perform: SNS:Publish" (AWS Knowledge Center, "Why didn't I
    // receive an SNS notification for my CloudWatch alarm trigger?",
    // https://repost.aws/knowledge-center/cloudwatch-receive-sns-for-alarm-trigger). Only these
    // alarms, of this account.
    const stack = Stack.of(this);
    const onlyThesePipelineAlarms = {
      StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
      ArnEquals: {
        'aws:SourceArn': [...alarms.keys()].map((key) =>
          stack.formatArn({
            service: 'cloudwatch',
            resource: 'alarm',
            resourceName: alarmNameOf(props.pipeline, key),
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        ),
      },
    };
    props.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowPipelineAlarmsToPublish',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [props.topic.topicArn],
        conditions: onlyThesePipelineAlarms,
      }),
    );
    // And the topic's key: what an AWS service publishing to an encrypted topic needs of it, and
    // no more (kms:GenerateDataKey* and kms:Decrypt; grantEncryptDecrypt would add kms:Encrypt and
    // kms:ReEncrypt*), for these alarms of this account only. The SNS developer guide ("Managing
    // Amazon SNS encryption keys and costs", "Enable compatibility between event sources from AWS
    // services and encrypted topics",
    // https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services)
    // lists CloudWatch (cloudwatch.amazonaws.com) among those sources and has their key statements
    // carry aws:SourceAccount and aws:SourceArn against the confused deputy; the one source for
    // which it says these keys are not supported in the key policy is EventBridge, which does not
    // publish here.
    props.topicKey?.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowCloudWatchAlarmsToUseTheKey',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:GenerateDataKey*', 'kms:Decrypt'],
        resources: ['*'],
        conditions: onlyThesePipelineAlarms,
      }),
    );

    const graph = (title: string, keys: readonly MetricKey[]): cloudwatch.GraphWidget =>
      new cloudwatch.GraphWidget({
        title,
        width: 12,
        left: keys.map((k) => metric(k).with({ label: METRIC_NAMES[k] })),
      });
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: `roundtrip-${props.pipeline}`,
      defaultInterval: Duration.days(14),
      widgets: [
        [
          new cloudwatch.TextWidget({
            width: 24,
            height: 2,
            markdown: `# roundtrip ${props.pipeline}\nPer run (sums per hour): rows read by the extracts, written to, rejected, held back and superseded for Salesforce, API calls, and notifications the Report could not send. Details per run: \`roundtrip.runs\`; refused records: \`roundtrip.writeback_errors\`.`,
          }),
        ],
        [
          graph('Rows read', ['rowsRead']),
          graph('Rows written, rejected, held back, superseded and failed', [
            'rowsWritten',
            'rowsRejected',
            'rowsHeldBack',
            'rowsSuperseded',
            'recordsFailed',
          ]),
        ],
        [
          graph('API calls', ['salesforceApiCalls', 'athenaApiCalls']),
          new cloudwatch.GraphWidget({
            title: 'Runs, and notifications not sent',
            width: 12,
            left: [
              props.stateMachine.metricSucceeded({ period: RUN_METRIC_PERIOD, statistic: 'Sum' }),
              props.stateMachine.metricFailed({ period: RUN_METRIC_PERIOD, statistic: 'Sum' }),
              props.stateMachine.metricTimedOut({ period: RUN_METRIC_PERIOD, statistic: 'Sum' }),
              metric('notificationsFailed').with({ label: METRIC_NAMES.notificationsFailed }),
            ],
          }),
        ],
        [
          new cloudwatch.AlarmStatusWidget({
            title: 'Alarms',
            width: 24,
            alarms: [...alarms.values()],
          }),
        ],
      ],
    });
  }
}
