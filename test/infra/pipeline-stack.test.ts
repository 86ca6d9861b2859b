import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { rootCertificates } from 'node:tls';
import type { CfnElement } from 'aws-cdk-lib';
import { Stack, Stage, Validations } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import type * as iam from 'aws-cdk-lib/aws-iam';
import * as sns from 'aws-cdk-lib/aws-sns';
import { AwsSolutionsChecks } from 'cdk-nag';
import { buildApp, CONFIG_CONTEXT_KEY, DEFAULT_CONFIG } from '../../bin/app';
import { HANDLER_ENV } from '../../lambdas/handlers/deps';
import { ConfigError } from '../../lambdas/shared/errors';
import { METRIC_NAMES, METRICS_NAMESPACE } from '../../lambdas/shared/observability';
import { CONFIG_FILE_ENV } from '../../lib/constructs/step-function';
import {
  NOTIFICATION_TOPIC_ENV,
  PIPELINE_TAG,
  PipelineStack,
  deploymentIssues,
  laptopOnlyIssues,
} from '../../lib/pipeline-stack';
import {
  PIPELINE_STEPS,
  STEP_KEYS,
  functionName,
  type StepKey,
  type TaskBinding,
} from '../../statemachine/definition';
import { LAMBDA_NODE_MAJOR } from '../support/node22';
import {
  LEAD_SCORE_SQL,
  actionsOf,
  fullConfig,
  newApp,
  resourcesOf,
  roleStatements,
  synthPipeline,
  type Statement,
} from './support';

/** Actions that may have "*" as their resource: the services offer no narrower one. */
const NO_RESOURCE_LEVEL_ACTIONS = new Set([
  'xray:PutTraceSegments',
  'xray:PutTelemetryRecords',
  'xray:GetSamplingRules',
  'xray:GetSamplingTargets',
  'logs:CreateLogDelivery',
  'logs:GetLogDelivery',
  'logs:UpdateLogDelivery',
  'logs:DeleteLogDelivery',
  'logs:ListLogDeliveries',
  'logs:PutResourcePolicy',
  'logs:DescribeResourcePolicies',
  'logs:DescribeLogGroups',
  'lakeformation:GetDataAccess',
  'ec2:DescribeNetworkInterfaces',
  'ec2:DescribeSubnets',
]);

const logicalId = (stack: Stack, construct: { node: { defaultChild?: unknown } }): string =>
  stack.getLogicalId(construct.node.defaultChild as CfnElement);

const roleId = (stack: PipelineStack, role: iam.IRole): string => logicalId(stack, role as iam.Role);

/** Every statement of every policy in the template. */
function allStatements(template: Template): Statement[] {
  return Object.values(template.findResources('AWS::IAM::Policy')).flatMap(
    (p) => (p.Properties as { PolicyDocument: { Statement: Statement[] } }).PolicyDocument.Statement,
  );
}

/** The statement with this Sid in a role's policies. */
function statement(template: Template, stack: PipelineStack, role: iam.IRole, sid: string): Statement {
  const found = roleStatements(template, roleId(stack, role)).filter((s) => s.Sid === sid);
  expect(found).toHaveLength(1);
  return found[0] as Statement;
}

/**
 * A state machine's definition as JSON text: the parts of its `Fn::Join` that are references
 * (function ARNs, the Region) stand inside JSON strings, so any text in their place parses.
 */
function definitionText(machine: { Properties?: { DefinitionString?: unknown } } | undefined): string {
  const definition = machine?.Properties?.DefinitionString as { 'Fn::Join': [string, unknown[]] };
  const [separator, parts] = definition['Fn::Join'];
  return parts.map((part) => (typeof part === 'string' ? part : 'REF')).join(separator);
}

/** A dashboard's widgets, each alarm ARN in them read as `<logical id>.Arn`, other references as REF. */
function dashboardWidgets(
  dashboard: { Properties?: { DashboardBody?: unknown } } | undefined,
): { type: string; properties: { title?: string; alarms?: string[]; metrics?: unknown[][] } }[] {
  const body = dashboard?.Properties?.DashboardBody as { 'Fn::Join': [string, unknown[]] };
  const [separator, parts] = body['Fn::Join'];
  const text = parts
    .map((part) => {
      if (typeof part === 'string') return part;
      const att = (part as { 'Fn::GetAtt'?: [string, string] })['Fn::GetAtt'];
      return att ? `${att[0]}.${att[1]}` : 'REF';
    })
    .join(separator);
  return (JSON.parse(text) as { widgets: ReturnType<typeof dashboardWidgets> }).widgets;
}

describe('PipelineStack', () => {
  describe('the lead-scoring example (cdk.json context)', () => {
    let stack: PipelineStack;
    let template: Template;

    beforeAll(async () => {
      const built = await buildApp(newApp({ context: { [CONFIG_CONTEXT_KEY]: DEFAULT_CONFIG } }));
      stack = built.stack;
      built.app.synth(); // cdk-nag's AwsSolutions pack runs here: a finding throws
      template = Template.fromStack(stack);
    });

    it('is named after the pipeline and keeps the encrypted, TLS-only notification topic', () => {
      expect(stack.stackName).toBe('roundtrip-lead-scoring');
      template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
      template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
      // CloudWatch (the alarms) may use the topic's key as SNS requires of a publishing service.
      const [key] = Object.values(template.findResources('AWS::KMS::Key'));
      const forCloudWatch = (
        key?.Properties as { KeyPolicy: { Statement: (Statement & { Principal: unknown })[] } }
      ).KeyPolicy.Statement.filter((st) => JSON.stringify(st.Principal).includes('cloudwatch.amazonaws.com'));
      expect(forCloudWatch.map((st) => [...actionsOf(st)].sort())).toEqual([
        ['kms:Decrypt', 'kms:GenerateDataKey*'],
      ]);
      // Only for the pipeline's alarms, of this account (the confused deputy): the source
      // conditions of the topic's own policy, every alarm of the template named.
      const useKey = forCloudWatch[0] as Statement;
      expect(useKey.Condition?.StringEquals).toEqual({ 'aws:SourceAccount': { Ref: 'AWS::AccountId' } });
      const sources = (useKey.Condition?.ArnEquals as Record<string, unknown[]> | undefined)?.[
        'aws:SourceArn'
      ];
      const alarmNames = Object.values(template.findResources('AWS::CloudWatch::Alarm')).map(
        (a) => (a.Properties as { AlarmName: string }).AlarmName,
      );
      expect(alarmNames).toHaveLength(6);
      expect(
        (sources ?? [])
          .map((arn) => JSON.stringify(arn).replace(/.*:cloudwatch:.*:alarm:([^"]+)".*/, '$1'))
          .sort(),
      ).toEqual(alarmNames.sort());
      template.hasResourceProperties('AWS::SNS::TopicPolicy', {
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          ]),
        },
      });
    });

    it('has one Node.js 22 ARM64 function per step, sized per step, traced, with the bundled config', () => {
      template.resourceCountIs('AWS::Lambda::Function', STEP_KEYS.length);
      for (const step of STEP_KEYS) {
        template.hasResourceProperties('AWS::Lambda::Function', {
          FunctionName: functionName('lead-scoring', step),
          Runtime: `nodejs${LAMBDA_NODE_MAJOR}.x`,
          Architectures: ['arm64'],
          MemorySize: PIPELINE_STEPS[step].memoryMb,
          Timeout: PIPELINE_STEPS[step].timeoutSeconds,
          TracingConfig: { Mode: 'Active' },
          Environment: {
            Variables: Match.objectLike({
              [CONFIG_FILE_ENV]: '/var/task/roundtrip.config.json',
              POWERTOOLS_SERVICE_NAME: 'roundtrip-lead-scoring',
              POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
              NODE_OPTIONS: '--enable-source-maps',
            }),
          },
        });
      }
      // The stack's name for the variable is the one the handlers read.
      expect(CONFIG_FILE_ENV).toBe(HANDLER_ENV.configFile);
    });

    it('logs each function as JSON to its own log group, and gives push and collect the 900 s deploy.md names', () => {
      for (const step of STEP_KEYS) {
        template.hasResourceProperties('AWS::Lambda::Function', {
          FunctionName: functionName('lead-scoring', step),
          LoggingConfig: {
            LogFormat: 'JSON',
            LogGroup: { Ref: logicalId(stack, stack.stepFunction(step).logGroup) },
          },
        });
      }
      for (const step of ['pushWriteback', 'collectWriteback'] as const) {
        template.hasResourceProperties('AWS::Lambda::Function', {
          FunctionName: functionName('lead-scoring', step),
          Timeout: 900,
        });
      }
    });

    it('runs outside any VPC when deployment.network is not set', () => {
      const functions = Object.values(template.findResources('AWS::Lambda::Function'));
      expect(functions).toHaveLength(STEP_KEYS.length);
      for (const fn of functions) {
        expect(fn.Properties).not.toHaveProperty('VpcConfig');
        expect(Object.keys(fn.Properties.Environment.Variables)).not.toContain('HTTPS_PROXY');
      }
      const actions = allStatements(template).flatMap(actionsOf);
      expect(actions.filter((a) => a.startsWith('ec2:'))).toEqual([]);
    });

    it('lets the Report function, and only it, publish to the notification topic it is told of', () => {
      const topicRef = { Ref: logicalId(stack, stack.notificationTopic) };
      template.hasResourceProperties('AWS::Lambda::Function', {
        FunctionName: functionName('lead-scoring', 'report'),
        Environment: { Variables: Match.objectLike({ [NOTIFICATION_TOPIC_ENV]: topicRef }) },
      });
      expect(NOTIFICATION_TOPIC_ENV).toBe(HANDLER_ENV.notificationTopicArn);
      for (const step of STEP_KEYS) {
        const publishes = roleStatements(template, roleId(stack, stack.stepFunction(step).role)).filter(
          (st) => actionsOf(st).includes('sns:Publish'),
        );
        if (step === 'report') {
          expect(publishes.map((st) => st.Resource)).toEqual([topicRef]);
          // The topic is encrypted with its own key: publishing needs it.
          const kms = statement(
            template,
            stack,
            stack.stepFunction('report').role,
            'EncryptNotificationsThroughSns',
          );
          expect([...actionsOf(kms)].sort()).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
          expect(JSON.stringify(kms.Condition)).toContain('kms:ViaService');
        } else {
          expect({ step, publishes }).toEqual({ step, publishes: [] });
        }
      }
    });

    it('lets Prepare, and only it, ask after the executions of its own state machine', () => {
      const describe = statement(
        template,
        stack,
        stack.stepFunction('prepare').role,
        'DescribeOwnExecutions',
      );
      expect(actionsOf(describe)).toEqual(['states:DescribeExecution']);
      expect(JSON.stringify(describe.Resource)).toContain(':execution:roundtrip-lead-scoring:*');
      for (const step of STEP_KEYS.filter((k) => k !== 'prepare')) {
        const actions = roleStatements(template, roleId(stack, stack.stepFunction(step).role)).flatMap(
          actionsOf,
        );
        expect({ step, describes: actions.includes('states:DescribeExecution') }).toEqual({
          step,
          describes: false,
        });
      }
    });

    it('gives every function and the state machine a log group with the default retention', () => {
      for (const step of STEP_KEYS) {
        template.hasResourceProperties('AWS::Logs::LogGroup', {
          LogGroupName: `/aws/lambda/${functionName('lead-scoring', step)}`,
          RetentionInDays: 30,
        });
      }
      template.hasResourceProperties('AWS::Logs::LogGroup', {
        LogGroupName: '/aws/vendedlogs/states/roundtrip-lead-scoring',
        RetentionInDays: 30,
      });
    });

    it('runs a Standard JSONPath state machine that logs every event, without record data, and is traced', () => {
      template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
        StateMachineName: 'roundtrip-lead-scoring',
        StateMachineType: 'STANDARD',
        // The states' input and output (a dry run's plan samples: record values) stay out of the
        // log group; deploy.md says so.
        LoggingConfiguration: Match.objectLike({ Level: 'ALL', IncludeExecutionData: false }),
        TracingConfiguration: { Enabled: true },
      });
      // deploy.md: "12 h run timeout".
      const [machine] = Object.values(template.findResources('AWS::StepFunctions::StateMachine'));
      const definition = JSON.parse(definitionText(machine)) as { TimeoutSeconds?: number };
      expect(definition.TimeoutSeconds).toBe(12 * 60 * 60);
    });

    it('lets each function read exactly the secrets its step uses', () => {
      const postgres = {
        'Fn::Join': [
          '',
          Match.arrayWith([Match.stringLikeRegexp(':secret:roundtrip/postgres-\\?\\?\\?\\?\\?\\?$')]),
        ],
      };
      const salesforce = {
        'Fn::Join': [
          '',
          Match.arrayWith([Match.stringLikeRegexp(':secret:roundtrip/salesforce-\\?\\?\\?\\?\\?\\?$')]),
        ],
      };
      for (const step of STEP_KEYS) {
        const read = statement(template, stack, stack.stepFunction(step).role, 'ReadPipelineSecrets');
        // GetSecretValue is the only Secrets Manager call of the functions (lambdas/shared/secrets.ts).
        expect(actionsOf(read)).toEqual(['secretsmanager:GetSecretValue']);
        const expected = PIPELINE_STEPS[step].salesforce ? [postgres, salesforce] : [postgres];
        expect(resourcesOf(read)).toHaveLength(expected.length);
        Template.fromJSON({
          Resources: { R: { Type: 'T', Properties: { Resource: resourcesOf(read) } } },
        }).hasResourceProperties('T', { Resource: expected });
      }
      // No KMS key configured: no kms statement for the secrets (only the Report's, for the
      // notification topic's own key).
      expect(
        allStatements(template)
          .filter((st) => st.Sid !== 'EncryptNotificationsThroughSns')
          .flatMap(actionsOf),
      ).not.toContain('kms:Decrypt');
    });

    it('grants the Athena load and the query task only the workgroup, the database and the result prefix', () => {
      const workgroup = Match.objectLike({
        'Fn::Join': ['', Match.arrayWith([Match.stringLikeRegexp(':workgroup/primary$')])],
      });
      const load = statement(template, stack, stack.stepFunction('loadAthena').role, 'ReadQueryExecutions');
      expect(actionsOf(load).sort()).toEqual(['athena:GetQueryExecution', 'athena:GetQueryResults']);
      const results = statement(template, stack, stack.stepFunction('loadAthena').role, 'ReadQueryResults');
      expect(actionsOf(results)).toEqual(['s3:GetObject']);
      expect(JSON.stringify(results.Resource)).toContain(':s3:::roundtrip-athena-results/lead-scoring/*');

      const sm = stack.stateMachine.role;
      // Start and StopQueryExecution serve the `.sync` query and the definition's own start and
      // stop of a query that outlived its Task (statemachine/definition.ts): no Lambda gets them.
      const run = statement(template, stack, sm, 'RunQueriesInWorkgroup');
      expect(actionsOf(run).sort()).toEqual([
        'athena:GetQueryExecution',
        'athena:StartQueryExecution',
        'athena:StopQueryExecution',
      ]);
      Template.fromJSON({
        Resources: { R: { Type: 'T', Properties: { R: run.Resource } } },
      }).hasResourceProperties('T', {
        R: workgroup,
      });
      const glue = statement(template, stack, sm, 'ReadConfiguredGlueTables');
      expect(JSON.stringify(glue.Resource)).toContain(':database/marketing');
      expect(JSON.stringify(glue.Resource)).toContain(':table/marketing/*');
      // Only the steps that need Athena have it.
      for (const step of STEP_KEYS.filter((s) => s !== 'loadAthena')) {
        const actions = roleStatements(template, roleId(stack, stack.stepFunction(step).role)).flatMap(
          actionsOf,
        );
        expect(actions.filter((a) => a.startsWith('athena:') || a.startsWith('s3:'))).toEqual([]);
      }
    });

    it('lets the state machine invoke exactly the step functions', () => {
      const invoke = roleStatements(template, roleId(stack, stack.stateMachine.role)).filter((s) =>
        actionsOf(s).includes('lambda:InvokeFunction'),
      );
      const targets = invoke.flatMap(resourcesOf).map((r) => JSON.stringify(r));
      // Each step function and its versions (`arn:*`, as CDK grants an invoke), and nothing else.
      const expected = STEP_KEYS.flatMap((step) => {
        const arn = { 'Fn::GetAtt': [logicalId(stack, stack.stepFunction(step).function), 'Arn'] };
        return [JSON.stringify(arn), JSON.stringify({ 'Fn::Join': ['', [arn, ':*']] })];
      });
      expect([...targets].sort()).toEqual([...expected].sort());
    });

    it('uses "*" as a resource only for actions that support nothing narrower', () => {
      const wildcard = allStatements(template).filter((s) => resourcesOf(s).includes('*'));
      expect(wildcard.length).toBeGreaterThan(0);
      for (const s of wildcard) {
        for (const action of actionsOf(s)) expect(NO_RESOURCE_LEVEL_ACTIONS).toContain(action);
      }
    });

    it('schedules the run with the config cron in its time zone, skipping while a run goes on, and a dead-letter queue', () => {
      template.hasResourceProperties('AWS::Scheduler::Schedule', {
        Name: 'roundtrip-lead-scoring',
        ScheduleExpression: 'cron(0 2 * * ? *)',
        ScheduleExpressionTimezone: 'Asia/Tokyo',
        State: 'ENABLED',
        FlexibleTimeWindow: { Mode: 'OFF' },
        Target: Match.objectLike({
          Arn: { Ref: logicalId(stack, stack.stateMachine) },
          Input: '{"onOverlap":"skip"}',
          DeadLetterConfig: { Arn: { 'Fn::GetAtt': [logicalId(stack, stack.deadLetterQueue!), 'Arn'] } },
        }),
      });
      template.hasResourceProperties('AWS::SQS::Queue', { SqsManagedSseEnabled: true });
    });

    it('alarms on failed, timed-out and throttled runs, the failed-record rate and dead letters, to the topic', () => {
      const topic = { Ref: logicalId(stack, stack.notificationTopic) };
      for (const metric of ['ExecutionsFailed', 'ExecutionsTimedOut', 'ExecutionThrottled']) {
        template.hasResourceProperties('AWS::CloudWatch::Alarm', {
          AlarmName: `roundtrip-lead-scoring-${metric}`,
          Namespace: 'AWS/States',
          MetricName: metric,
          Statistic: 'Sum',
          Threshold: 1,
          ComparisonOperator: 'GreaterThanOrEqualToThreshold',
          AlarmActions: [topic],
        });
      }
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        AlarmName: 'roundtrip-lead-scoring-FailedRecordRate-Lead-update',
        Threshold: 0.05,
        ComparisonOperator: 'GreaterThanThreshold',
        AlarmActions: [topic],
        Metrics: Match.arrayWith([
          Match.objectLike({ Expression: 'IF(written + failed > 0, failed / (written + failed), 0)' }),
          Match.objectLike({
            Id: 'failed',
            MetricStat: Match.objectLike({
              Metric: {
                Namespace: METRICS_NAMESPACE,
                MetricName: METRIC_NAMES.recordsFailed,
                Dimensions: [
                  { Name: 'service', Value: 'roundtrip-lead-scoring' },
                  { Name: 'task', Value: 'Lead-update' },
                ],
              },
            }),
          }),
        ]),
      });
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        AlarmName: 'roundtrip-lead-scoring-ScheduleDeadLetters',
        MetricName: 'ApproximateNumberOfMessagesVisible',
        AlarmActions: [topic],
      });
      template.resourceCountIs('AWS::CloudWatch::Alarm', 6);
    });

    it('alarms to the topic on one notification the Report could not send, for a day after it (deploy.md, "Alarms")', () => {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        AlarmName: 'roundtrip-lead-scoring-NotificationsFailed',
        Namespace: METRICS_NAMESPACE,
        MetricName: METRIC_NAMES.notificationsFailed,
        Dimensions: [{ Name: 'service', Value: 'roundtrip-lead-scoring' }],
        Statistic: 'Sum',
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        // One failed publish in any 5-minute period of the last 24 hours: the alarm's state shows
        // it that long, also when the topic refuses the alarm's own notification.
        Period: 300,
        EvaluationPeriods: 288,
        DatapointsToAlarm: 1,
        TreatMissingData: 'notBreaching',
        AlarmActions: [{ Ref: logicalId(stack, stack.notificationTopic) }],
        AlarmDescription: Match.stringLikeRegexp('/aws/lambda/roundtrip-lead-scoring-report'),
      });
      // CloudWatch's limit for periods under an hour: at most a day of them (PutMetricAlarm).
      const [alarm] = Object.values(
        template.findResources('AWS::CloudWatch::Alarm', {
          Properties: { AlarmName: 'roundtrip-lead-scoring-NotificationsFailed' },
        }),
      );
      const { Period, EvaluationPeriods } = alarm?.Properties as {
        Period: number;
        EvaluationPeriods: number;
      };
      expect(Period * EvaluationPeriods).toBeLessThanOrEqual(86_400);
    });

    it("lets exactly the pipeline's alarms publish to the topic, whose own policy replaces SNS's default", () => {
      const policies = Object.values(template.findResources('AWS::SNS::TopicPolicy'));
      expect(policies).toHaveLength(1);
      const statements = (
        policies[0]?.Properties as { PolicyDocument: { Statement: (Statement & { Principal: unknown })[] } }
      ).PolicyDocument.Statement;
      const allow = statements.filter((st) => st.Effect === 'Allow');
      expect(allow).toHaveLength(1);
      const [publish] = allow as [Statement & { Principal: unknown }];
      expect(publish).toMatchObject({
        Sid: 'AllowPipelineAlarmsToPublish',
        Principal: { Service: 'cloudwatch.amazonaws.com' },
        Action: 'sns:Publish',
        Resource: { Ref: logicalId(stack, stack.notificationTopic) },
      });
      expect(publish.Condition?.StringEquals).toEqual({ 'aws:SourceAccount': { Ref: 'AWS::AccountId' } });
      // The source ARNs are those of the alarms the template holds, every one.
      const sources = (publish.Condition?.ArnEquals as Record<string, unknown[]>)['aws:SourceArn'] ?? [];
      const names = Object.values(template.findResources('AWS::CloudWatch::Alarm')).map(
        (a) => (a.Properties as { AlarmName: string }).AlarmName,
      );
      expect(names).toHaveLength(6);
      expect(sources.map((arn) => JSON.stringify(arn).replace(/.*:alarm:([^"]+)".*/, '$1')).sort()).toEqual(
        names.sort(),
      );
      for (const arn of sources) expect(JSON.stringify(arn)).toContain(':cloudwatch:');
    });

    it('has a dashboard of rows read, written, rejected and API calls', () => {
      template.hasResourceProperties('AWS::CloudWatch::Dashboard', {
        DashboardName: 'roundtrip-lead-scoring',
      });
      const dashboards = Object.values(template.findResources('AWS::CloudWatch::Dashboard'));
      expect(dashboards).toHaveLength(1);
      const body = JSON.stringify(dashboards[0]);
      for (const name of Object.values(METRIC_NAMES)) expect(body).toContain(name);
    });

    it("shows every alarm's state on the dashboard, the notifications-failed alarm's among them", () => {
      const widgets = dashboardWidgets(
        Object.values(template.findResources('AWS::CloudWatch::Dashboard'))[0],
      );
      const status = widgets.filter((w) => w.type === 'alarm');
      expect(status).toHaveLength(1);
      const alarmIds = Object.keys(template.findResources('AWS::CloudWatch::Alarm'));
      expect(alarmIds).toHaveLength(6);
      expect([...(status[0]?.properties.alarms ?? [])].sort()).toEqual(
        alarmIds.map((id) => `${id}.Arn`).sort(),
      );
      const [notificationsFailed] = Object.keys(
        template.findResources('AWS::CloudWatch::Alarm', {
          Properties: { AlarmName: 'roundtrip-lead-scoring-NotificationsFailed' },
        }),
      );
      expect(status[0]?.properties.alarms).toContain(`${notificationsFailed}.Arn`);
      // And its metric beside the runs'.
      const runs = widgets.find((w) => w.properties.title === 'Runs, and notifications not sent');
      expect(runs?.properties.metrics).toContainEqual([
        METRICS_NAMESPACE,
        METRIC_NAMES.notificationsFailed,
        'service',
        'roundtrip-lead-scoring',
        { label: METRIC_NAMES.notificationsFailed, period: 3600, stat: 'Sum' },
      ]);
    });

    it('outputs the state machine ARN, the topic ARN and the dashboard name (deploy.md, "Deploy")', () => {
      expect(template.toJSON().Outputs).toEqual({
        StateMachineArn: { Value: { Ref: logicalId(stack, stack.stateMachine) } },
        NotificationTopicArn: { Value: { Ref: logicalId(stack, stack.notificationTopic) } },
        DashboardName: { Value: 'roundtrip-lead-scoring' },
      });
    });

    it('deletes the log groups with the stack and keeps the topic key (deploy.md, "Remove a pipeline")', () => {
      const groups = Object.values(template.findResources('AWS::Logs::LogGroup'));
      expect(groups).toHaveLength(STEP_KEYS.length + 1);
      for (const group of groups) expect(group.DeletionPolicy).toBe('Delete');
      const keys = Object.values(template.findResources('AWS::KMS::Key'));
      expect(keys).toHaveLength(1);
      expect(keys[0]?.DeletionPolicy).toBe('Retain');
    });
  });

  describe('with every deployment option', () => {
    let stack: PipelineStack;
    let template: Template;

    beforeAll(() => {
      ({ stack, template } = synthPipeline(fullConfig()));
    });

    it("tags the stack, and so what CloudFormation creates, and its template's resources with the pipeline", () => {
      // The stack's tags in the cloud assembly are what `cdk deploy` gives the CloudFormation stack.
      const artifact = Stage.of(stack)?.synth().getStackArtifact(stack.artifactId);
      expect(artifact?.tags).toEqual({ [PIPELINE_TAG]: 'full' });
      const tag = { Key: PIPELINE_TAG, Value: 'full' };
      for (const type of ['AWS::StepFunctions::StateMachine', 'AWS::Lambda::Function', 'AWS::SNS::Topic']) {
        template.allResourcesProperties(type, { Tags: Match.arrayWith([tag]) });
      }
    });

    it('puts every function in the configured subnets and security groups, with scoped ENI permissions', () => {
      const functions = Object.values(template.findResources('AWS::Lambda::Function'));
      expect(functions).toHaveLength(STEP_KEYS.length);
      for (const fn of functions) {
        expect(fn.Properties.VpcConfig).toEqual({
          SubnetIds: ['subnet-0a1b2c3d4e5f67890', 'subnet-1a1b2c3d4e5f67890'],
          SecurityGroupIds: ['sg-0a1b2c3d4e5f67890'],
        });
        // deployment.network.proxy: the variables lambdas/shared/proxy.ts reads.
        expect(fn.Properties.Environment.Variables).toMatchObject({
          HTTPS_PROXY: 'http://proxy.corp.example:3128',
          NO_PROXY: '.amazonaws.com,10.0.0.0',
          // The secret of the proxy's credentials, which lambdas/handlers/deps.ts reads at start.
          ROUNDTRIP_PROXY_CREDENTIALS_SECRET:
            'arn:aws:secretsmanager:eu-west-1:123456789012:secret:rt/proxy-GhIjKl',
        });
      }
      // The security groups are the caller's: the stack adds no rule to them.
      template.resourceCountIs('AWS::EC2::SecurityGroup', 0);
      template.resourceCountIs('AWS::EC2::SecurityGroupIngress', 0);
      template.resourceCountIs('AWS::EC2::SecurityGroupEgress', 0);
      for (const step of STEP_KEYS) {
        const role = stack.stepFunction(step).role;
        const create = statement(template, stack, role, 'CreateNetworkInterfacesInConfiguredSubnets');
        const text = JSON.stringify(create.Resource);
        expect(text).toContain(':subnet/subnet-0a1b2c3d4e5f67890');
        expect(text).toContain(':subnet/subnet-1a1b2c3d4e5f67890');
        expect(text).toContain(':security-group/sg-0a1b2c3d4e5f67890');
        // The EC2 actions of AWSLambdaVPCAccessExecutionRole, nothing more.
        expect(
          roleStatements(template, roleId(stack, role))
            .flatMap(actionsOf)
            .filter((a) => a.startsWith('ec2:'))
            .sort(),
        ).toEqual([
          'ec2:AssignPrivateIpAddresses',
          'ec2:CreateNetworkInterface',
          'ec2:DeleteNetworkInterface',
          'ec2:DescribeNetworkInterfaces',
          'ec2:DescribeSubnets',
          'ec2:UnassignPrivateIpAddresses',
        ]);
      }
      // The documented synth prints no warning for the imported subnets' unknown route tables.
      Annotations.fromStack(stack).hasNoWarning('*', Match.anyValue());
      // No managed policy (AWSLambdaVPCAccessExecutionRole has its actions on "*").
      for (const role of Object.values(template.findResources('AWS::IAM::Role'))) {
        expect(role.Properties.ManagedPolicyArns).toBeUndefined();
      }
    });

    it('uses "*" as a resource only for actions that support nothing narrower', () => {
      const wildcard = allStatements(template).filter((s) => resourcesOf(s).includes('*'));
      expect(wildcard.length).toBeGreaterThan(0);
      for (const s of wildcard) {
        for (const action of actionsOf(s)) expect(NO_RESOURCE_LEVEL_ACTIONS).toContain(action);
      }
    });

    it('outputs the results bucket of the workgroup it creates', () => {
      expect(template.toJSON().Outputs.AthenaResultsBucket).toEqual({
        Value: { Ref: logicalId(stack, stack.resultsWorkgroup!.bucket) },
      });
    });

    it('decrypts the secrets with the configured key, through Secrets Manager only', () => {
      for (const step of STEP_KEYS) {
        const decrypt = statement(
          template,
          stack,
          stack.stepFunction(step).role,
          'DecryptSecretsThroughSecretsManager',
        );
        expect(decrypt.Action).toBe('kms:Decrypt');
        expect(decrypt.Resource).toBe(
          'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab',
        );
        expect(JSON.stringify(decrypt.Condition)).toContain('kms:ViaService');
      }
      // A complete secret ARN is granted as is.
      const read = statement(template, stack, stack.stepFunction('prepare').role, 'ReadPipelineSecrets');
      expect(resourcesOf(read)).toContain(
        'arn:aws:secretsmanager:eu-west-1:123456789012:secret:rt/salesforce-AbCdEf',
      );
      // The proxy's credentials: every function's calls go through the proxy, so each reads them.
      for (const step of STEP_KEYS) {
        expect(
          resourcesOf(statement(template, stack, stack.stepFunction(step).role, 'ReadPipelineSecrets')),
        ).toContain('arn:aws:secretsmanager:eu-west-1:123456789012:secret:rt/proxy-GhIjKl');
      }
    });

    it('creates the workgroup enforcing its result location in a private, TLS-only, expiring bucket', () => {
      template.hasResourceProperties('AWS::Athena::WorkGroup', {
        Name: 'roundtrip-full',
        WorkGroupConfiguration: Match.objectLike({
          EnforceWorkGroupConfiguration: true,
          ResultConfiguration: Match.objectLike({ EncryptionConfiguration: { EncryptionOption: 'SSE_S3' } }),
        }),
      });
      template.hasResourceProperties('AWS::S3::Bucket', {
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        },
        BucketEncryption: Match.anyValue(),
        LifecycleConfiguration: {
          Rules: Match.arrayWith([
            Match.objectLike({ ExpirationInDays: 3, Prefix: 'results/', Status: 'Enabled' }),
          ]),
        },
      });
      template.hasResourceProperties('AWS::S3::BucketPolicy', {
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          ]),
        },
      });
    });

    it('keeps the results bucket when the stack is deleted: CloudFormation cannot delete a bucket holding files', () => {
      // Deleting a bucket that still holds result files (they live resultsExpireDays) fails, and
      // with it `cdk destroy` (DELETE_FAILED); retained, the lifecycle rule empties it.
      const buckets = template.findResources('AWS::S3::Bucket');
      expect(Object.keys(buckets)).toHaveLength(1);
      for (const bucket of Object.values(buckets)) {
        expect(bucket.DeletionPolicy).toBe('Retain');
        expect(bucket.UpdateReplacePolicy).toBe('Retain');
      }
      // The workgroup goes with the stack, even with its query history (deploy.md, "Remove a pipeline").
      const [workgroup] = Object.values(template.findResources('AWS::Athena::WorkGroup'));
      expect(workgroup?.DeletionPolicy).toBeUndefined();
      expect(workgroup?.Properties).toMatchObject({ RecursiveDeleteOption: true });
    });

    it('scopes Glue to the configured tables and S3 to the configured data locations, without Lake Formation', () => {
      const sm = stack.stateMachine.role;
      const glue = JSON.stringify(statement(template, stack, sm, 'ReadConfiguredGlueTables').Resource);
      expect(glue).toContain(':table/marketing/customers');
      expect(glue).toContain(':table/marketing/orders');
      expect(glue).not.toContain('/*');
      const data = statement(template, stack, sm, 'ReadSourceData1');
      expect(actionsOf(data)).toEqual(['s3:GetObject']);
      expect(JSON.stringify(data.Resource)).toContain(':s3:::data-lake/orders/*');
      const list = statement(template, stack, sm, 'ListSourceData0');
      expect(actionsOf(list)).toEqual(['s3:ListBucket']);
      expect(list.Condition).toEqual({ StringLike: { 's3:prefix': ['customers/*'] } });
      // GetBucketLocation carries no s3:prefix: under that condition it would never be allowed.
      const locate = statement(template, stack, sm, 'LocateSourceData0');
      expect(actionsOf(locate)).toEqual(['s3:GetBucketLocation']);
      expect(locate.Condition).toBeUndefined();
      expect(JSON.stringify(locate.Resource)).toContain(':s3:::data-lake"');
      for (const st of roleStatements(template, roleId(stack, sm))) {
        if (st.Condition && JSON.stringify(st.Condition).includes('s3:prefix')) {
          expect(actionsOf(st)).toEqual(['s3:ListBucket']);
        }
      }
      expect(roleStatements(template, roleId(stack, sm)).flatMap(actionsOf)).not.toContain(
        'lakeformation:GetDataAccess',
      );
    });

    it('schedules with the configured retries and event age, and one failed-record alarm per write-back', () => {
      template.hasResourceProperties('AWS::Scheduler::Schedule', {
        ScheduleExpression: 'cron(30 1 ? * MON-FRI *)',
        ScheduleExpressionTimezone: 'Europe/Berlin',
        Target: Match.objectLike({
          RetryPolicy: { MaximumRetryAttempts: 3, MaximumEventAgeInSeconds: 3600 },
        }),
      });
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        AlarmName: 'roundtrip-full-FailedRecordRate-Contact-upsert',
        Threshold: 0.01,
      });
      template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 90 });
      template.resourceCountIs('AWS::SNS::Subscription', 2);
    });
  });

  describe('variants', () => {
    it('schedules in the time zone as the IANA database spells it, whatever the case the config gave it in', () => {
      const base = fullConfig();
      const { template } = synthPipeline(
        fullConfig({ schedule: { ...base.schedule!, timezone: 'america/new_york' } }),
      );
      template.hasResourceProperties('AWS::Scheduler::Schedule', {
        ScheduleExpressionTimezone: 'America/New_York',
      });
    });

    it('deploys a paused schedule without a dead-letter queue when told so', () => {
      const base = fullConfig();
      const { template } = synthPipeline({
        ...base,
        schedule: { ...base.schedule!, enabled: false, deadLetterQueue: false },
      });
      template.hasResourceProperties('AWS::Scheduler::Schedule', {
        State: 'DISABLED',
        Target: Match.objectLike({ DeadLetterConfig: Match.absent() }),
      });
      template.resourceCountIs('AWS::SQS::Queue', 0);
    });

    it("states each write-back's maxFailureRate in its alarm's description as the percentage written", () => {
      const base = fullConfig();
      const rates = [0.07, 0.29, 0.0125];
      const { template } = synthPipeline({
        ...base,
        writeback: rates.map((maxFailureRate, i) => ({
          ...base.writeback[0]!,
          name: `Lead-${i}`,
          maxFailureRate,
        })),
      });
      const described = Object.values(template.findResources('AWS::CloudWatch::Alarm'))
        .map((a) => String((a.Properties as { AlarmDescription?: unknown }).AlarmDescription))
        .filter((d) => d.includes('maxFailureRate'))
        .map((d) => /more than (\S+) %/.exec(d)?.[1]);
      // 0.07 × 100 is 7.000000000000001 in floating point, 0.29 × 100 28.999999999999996.
      expect(described.sort()).toEqual(['1.25', '29', '7']);
    });

    it('assumes the cross-account role for Athena instead of holding Athena, Glue or S3 permissions', () => {
      const base = fullConfig();
      const { stack, template } = synthPipeline({
        ...base,
        athena: {
          database: 'marketing',
          workgroup: 'lake',
          catalog: 'AwsDataCatalog',
          results: 's3',
          roleArn: 'arn:aws:iam::210987654321:role/lake-reader',
        },
      });
      for (const role of [stack.stateMachine.role, stack.stepFunction('loadAthena').role]) {
        const assume = statement(template, stack, role, 'AssumeCrossAccountAthenaRole');
        expect(assume.Resource).toBe('arn:aws:iam::210987654321:role/lake-reader');
        const actions = roleStatements(template, roleId(stack, role)).flatMap(actionsOf);
        expect(actions.filter((a) => /^(athena|glue|s3|lakeformation):/.test(a))).toEqual([]);
      }
      template.resourceCountIs('AWS::Athena::WorkGroup', 0);
      // The role in the other account must trust exactly these two: the stack names them.
      const outputs = template.toJSON().Outputs as Record<string, { Value: unknown }>;
      expect(outputs.AthenaStateMachineRoleArn?.Value).toEqual({
        'Fn::GetAtt': [roleId(stack, stack.stateMachine.role), 'Arn'],
      });
      expect(outputs.AthenaLoadRoleArn?.Value).toEqual({
        'Fn::GetAtt': [roleId(stack, stack.stepFunction('loadAthena').role), 'Arn'],
      });
    });

    // The stack grants a cross-account role nothing in this account: athena.tables and
    // athena.dataLocations, which narrow the Glue and S3 grants of the state machine, would be
    // dropped without a word (the role's own policy, in the other account, decides what it reads).
    it('refuses Glue tables and data locations with the cross-account role, which the stack would not grant', () => {
      const athena = {
        database: 'marketing',
        workgroup: 'lake',
        roleArn: 'arn:aws:iam::210987654321:role/lake-reader',
      };
      const { stack, template } = synthPipeline(fullConfig({ athena }));
      const smActions = roleStatements(template, roleId(stack, stack.stateMachine.role)).flatMap(actionsOf);
      expect(smActions.filter((a) => /^(glue|s3):/.test(a))).toEqual([]);
      let error: unknown;
      try {
        fullConfig({
          athena: { ...athena, tables: ['customers'], dataLocations: ['s3://data-lake/customers/'] },
        });
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).issues.map((i) => i.path)).toEqual([
        'athena.tables',
        'athena.dataLocations',
      ]);
      expect((error as ConfigError).issues[0]?.message).toMatch(/^expected nothing with "roleArn"/);
    });

    // With results paged through the API too: GetQueryResults reads the result file with the
    // caller's own S3 permissions (Athena API reference, GetQueryResults), and Athena writes it
    // with the state machine's: without the location neither can be granted.
    it.each(['s3', 'api'] as const)(
      'refuses an existing workgroup without its result location, naming the option (results: %s)',
      (results) => {
        const config = {
          ...fullConfig(),
          athena: { database: 'marketing', workgroup: 'etl', catalog: 'AwsDataCatalog', results },
        };
        let error: unknown;
        try {
          new PipelineStack(newApp(), 'x', { config });
        } catch (err) {
          error = err;
        }
        expect(error).toBeInstanceOf(ConfigError);
        expect((error as ConfigError).issues).toEqual([
          {
            path: 'athena.outputLocation',
            message:
              'expected the result location of workgroup "etl" (s3://bucket/prefix/), so that the state machine can be allowed to write exactly it and the Athena load to read it, got nothing (or set "createWorkgroup": true)',
          },
        ]);
      },
    );

    // The Glue reads are granted in this account's own Data Catalog: a query through another
    // catalog (another account's Glue catalog, a federated connector) would be denied every run.
    it('refuses an Athena catalog it cannot grant, unless a cross-account role queries it', () => {
      const base = fullConfig();
      const athena = { ...base.athena!, catalog: 'partner_lake' };
      expect(deploymentIssues({ ...base, athena })).toEqual([
        {
          path: 'athena.catalog',
          message:
            'expected "AwsDataCatalog" (this account\'s Glue Data Catalog, whose database and tables the stack allows the queries to read) unless "roleArn" names a role that may query catalog "partner_lake", got "partner_lake": the stack grants nothing of another account\'s Glue catalog or of a federated catalog\'s connector, so every query would be denied',
        },
      ]);
      expect(() => new PipelineStack(newApp(), 'x', { config: { ...base, athena } })).toThrow(ConfigError);
      // The account's catalog in any case, and any catalog through the role, are accepted.
      expect(deploymentIssues({ ...base, athena: { ...athena, catalog: 'awsdatacatalog' } })).toEqual([]);
      const viaRole = {
        database: 'marketing',
        workgroup: 'lake',
        catalog: 'partner_lake',
        results: 's3' as const,
        queryTimeoutMinutes: 32,
        roleArn: 'arn:aws:iam::210987654321:role/lake-reader',
      };
      expect(deploymentIssues({ ...base, athena: viaRole })).toEqual([]);
      // Without an Athena extract the section is not granted at all.
      expect(
        deploymentIssues({ ...base, athena, extract: base.extract.filter((t) => t.from !== 'athena') }),
      ).toEqual([]);
    });

    it('refuses a PostgreSQL CA bundle that does not exist, naming the option, before bundling copies it', () => {
      const base = fullConfig();
      const missing = 'certs/no-such-bundle.pem';
      let error: unknown;
      try {
        new PipelineStack(newApp(), 'x', {
          config: {
            ...base,
            postgres: { ...base.postgres, ssl: { mode: 'verify-full', caBundle: missing } },
          },
        });
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).issues).toEqual([
        {
          path: 'postgres.ssl.caBundle',
          message: `expected the path of an existing PEM file, got "${missing}" (${path.resolve(missing)} does not exist)`,
        },
      ]);
      // An existing PEM file is accepted (a config not loaded by loadConfig, whose relative paths
      // are made absolute beside the config file: read from the working directory).
      const withBundle = (caBundle: string) => ({
        ...base,
        postgres: { ...base.postgres, ssl: { mode: 'verify-full' as const, caBundle } },
      });
      const dir = mkdtempSync(path.join(os.tmpdir(), 'roundtrip-ca-'));
      const pem = path.join(dir, 'global-bundle.pem');
      writeFileSync(pem, rootCertificates.slice(0, 3).join('\n'));
      expect(deploymentIssues(withBundle(path.relative(process.cwd(), pem)))).toEqual([]);
      // An existing file that holds no certificate would be copied into every function and fail
      // every connection: refused by synth, saying what it holds.
      const existing = path.relative(process.cwd(), LEAD_SCORE_SQL);
      expect(deploymentIssues(withBundle(existing))).toEqual([
        {
          path: 'postgres.ssl.caBundle',
          message: `expected a PEM file of CA certificates ("-----BEGIN CERTIFICATE-----" blocks, such as the RDS global bundle), got ${JSON.stringify(existing)} (${LEAD_SCORE_SQL}), which holds text with no PEM block`,
        },
      ]);
    });

    it('refuses a secret ARN without the suffix Secrets Manager adds: granted as written, it matches no secret', () => {
      const base = fullConfig();
      const partial = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:rt/postgres';
      expect(deploymentIssues({ ...base, postgres: { ...base.postgres, secret: partial } })).toEqual([
        {
          path: 'postgres.secret',
          message: `expected the secret's name or its complete ARN, which ends in "-" and the six characters Secrets Manager added to the name (…:secret:rt/postgres-AbCdEf; aws secretsmanager describe-secret --secret-id <name> --query ARN prints it), got "${partial}"`,
        },
      ]);
      // The every-option config names the Salesforce secret by its complete ARN and PostgreSQL's by name.
      expect(deploymentIssues(base)).toEqual([]);
      expect(
        deploymentIssues({
          ...base,
          salesforce: {
            ...base.salesforce!,
            secret: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:rt/sf',
          },
        }).map((i) => i.path),
      ).toEqual(['salesforce.secret']);
      const network = base.deployment!.network!;
      expect(
        deploymentIssues({
          ...base,
          deployment: {
            ...base.deployment,
            network: {
              ...network,
              proxy: {
                ...network.proxy!,
                credentialsSecret: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:rt/proxy',
              },
            },
          },
        }).map((i) => i.path),
      ).toEqual(['deployment.network.proxy.credentialsSecret']);
    });

    it('lets the Athena load read the result files also when it pages through GetQueryResults', () => {
      const base = fullConfig();
      const { stack, template } = synthPipeline({
        ...base,
        athena: {
          database: 'marketing',
          workgroup: 'etl',
          catalog: 'AwsDataCatalog',
          results: 'api',
          outputLocation: 's3://etl-results/roundtrip/',
        },
      });
      const load = stack.stepFunction('loadAthena').role;
      expect(actionsOf(statement(template, stack, load, 'ReadQueryExecutions'))).toContain(
        'athena:GetQueryResults',
      );
      const results = statement(template, stack, load, 'ReadQueryResults');
      expect(actionsOf(results)).toEqual(['s3:GetObject']);
      expect(JSON.stringify(results.Resource)).toContain(':s3:::etl-results/roundtrip/*');
      const write = statement(template, stack, stack.stateMachine.role, 'WriteQueryResults');
      expect(JSON.stringify(write.Resource)).toContain(':s3:::etl-results/roundtrip/*');
    });

    it('grants a result location and a data location written without a trailing "/" as folders, not as every key that starts alike', () => {
      const base = fullConfig();
      const { stack, template } = synthPipeline({
        ...base,
        athena: {
          database: 'marketing',
          workgroup: 'etl',
          catalog: 'AwsDataCatalog',
          results: 's3',
          outputLocation: 's3://etl-results/roundtrip',
          dataLocations: ['s3://data-lake/customers', 's3://data-lake/'],
        },
      });
      const sm = stack.stateMachine.role;
      const load = stack.stepFunction('loadAthena').role;
      const resources = (role: typeof sm, sid: string): string =>
        JSON.stringify(statement(template, stack, role, sid).Resource);
      // `etl-results/roundtrip*` would also be `etl-results/roundtrip-of-another-team/…`.
      for (const [role, sid] of [
        [sm, 'WriteQueryResults'],
        [load, 'ReadQueryResults'],
      ] as const) {
        expect(resources(role, sid)).toContain(':s3:::etl-results/roundtrip/*"');
      }
      expect(resources(sm, 'ReadSourceData0')).toContain(':s3:::data-lake/customers/*"');
      // Athena lists a table's folder with the prefix `customers/`: `customers/*` matches it.
      expect(statement(template, stack, sm, 'ListSourceData0').Condition).toEqual({
        StringLike: { 's3:prefix': ['customers/*'] },
      });
      // A whole bucket stays the whole bucket.
      expect(resources(sm, 'ReadSourceData1')).toContain(':s3:::data-lake/*"');
      expect(statement(template, stack, sm, 'ListSourceData1').Condition).toEqual({
        StringLike: { 's3:prefix': ['*'] },
      });
    });

    it('lets the queries read source data encrypted with the configured keys, through S3 only, and nothing else decrypt with them', () => {
      const keys = [
        'arn:aws:kms:eu-west-1:123456789012:key/1111abcd-12ab-34cd-56ef-1234567890ab',
        'arn:aws:kms:eu-west-1:123456789012:key/2222abcd-12ab-34cd-56ef-1234567890ab',
      ];
      const base = fullConfig();
      const { stack, template } = synthPipeline({
        ...base,
        athena: { ...base.athena!, dataKmsKeyArns: keys },
      });
      const decrypt = statement(template, stack, stack.stateMachine.role, 'DecryptSourceData');
      expect(decrypt).toEqual({
        Sid: 'DecryptSourceData',
        Effect: 'Allow',
        Action: 'kms:Decrypt',
        Resource: keys,
        Condition: {
          StringEquals: {
            'kms:ViaService': { 'Fn::Join': ['', ['s3.', { Ref: 'AWS::Region' }, '.amazonaws.com']] },
          },
        },
      });
      // The functions never read the source data: none of them is allowed the keys.
      for (const step of stack.steps) {
        const granted = roleStatements(template, roleId(stack, stack.stepFunction(step).role)).filter((st) =>
          JSON.stringify(st.Resource ?? '').includes('1111abcd'),
        );
        expect({ step, granted }).toEqual({ step, granted: [] });
      }
      // Without keys, no KMS permission on source data.
      const plain = synthPipeline(base);
      const sids = roleStatements(plain.template, roleId(plain.stack, plain.stack.stateMachine.role)).map(
        (st) => st.Sid,
      );
      expect(sids).not.toContain('DecryptSourceData');
    });

    it('lets the query write and the load read result files encrypted with the configured key, through S3 only', () => {
      const key = 'arn:aws:kms:eu-west-1:123456789012:key/0000abcd-12ab-34cd-56ef-1234567890ab';
      const base = fullConfig();
      const existing = {
        database: 'marketing',
        workgroup: 'etl',
        catalog: 'AwsDataCatalog',
        results: 's3' as const,
        outputLocation: 's3://etl-results/roundtrip/',
      };
      const { stack, template } = synthPipeline({ ...base, athena: { ...existing, resultsKmsKeyArn: key } });
      // kms:ViaService s3.<the stack's Region>.amazonaws.com (the Region is a token here).
      const throughS3 = {
        StringEquals: {
          'kms:ViaService': { 'Fn::Join': ['', ['s3.', { Ref: 'AWS::Region' }, '.amazonaws.com']] },
        },
      };
      const encrypt = statement(template, stack, stack.stateMachine.role, 'EncryptQueryResults');
      expect(encrypt).toMatchObject({ Resource: key, Condition: throughS3 });
      expect([...actionsOf(encrypt)].sort()).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
      const decrypt = statement(
        template,
        stack,
        stack.stepFunction('loadAthena').role,
        'DecryptQueryResults',
      );
      expect(decrypt).toMatchObject({ Action: 'kms:Decrypt', Resource: key, Condition: throughS3 });

      // Without the key: no KMS permission for the results.
      const plain = synthPipeline({ ...base, athena: existing });
      const kmsActions = [plain.stack.stateMachine.role, plain.stack.stepFunction('loadAthena').role].flatMap(
        (role) =>
          roleStatements(plain.template, roleId(plain.stack, role))
            .filter((st) => st.Sid === 'EncryptQueryResults' || st.Sid === 'DecryptQueryResults')
            .flatMap(actionsOf),
      );
      expect(kmsActions).toEqual([]);

      // A workgroup the stack creates encrypts its results with the key.
      const created = synthPipeline({
        ...base,
        athena: { ...base.athena!, resultsKmsKeyArn: key },
      });
      created.template.hasResourceProperties('AWS::Athena::WorkGroup', {
        WorkGroupConfiguration: Match.objectLike({
          ResultConfiguration: Match.objectLike({
            EncryptionConfiguration: { EncryptionOption: 'SSE_KMS', KmsKey: key },
          }),
        }),
      });
      statement(created.template, created.stack, created.stack.stateMachine.role, 'EncryptQueryResults');
    });

    it('references only the steps a pipeline uses in its definition', () => {
      const base = fullConfig();
      const { stack } = synthPipeline({ ...base, extract: [], writeback: [], salesforce: undefined });
      const used = new Set<StepKey>(stack.taskStates.values() as Iterable<StepKey>);
      expect([...used].sort()).toEqual(['prepare', 'report', 'transform']);
    });

    // Configs the schema accepts (fullConfig parses them), each without some source or target.
    const salesforceExtract = {
      from: 'salesforce',
      object: 'Lead',
      fields: ['Id', 'Email', 'SystemModstamp', 'IsDeleted'],
      table: 'sf_lead',
    };
    const athenaExtract = { from: 'athena', query: 'SELECT email FROM customers', table: 'athena_customers' };
    const salesforceSteps = ['extractSalesforce', 'checkSalesforceExtract'] as const;
    const writebackSteps = ['planWriteback', 'pushWriteback', 'collectWriteback'] as const;
    it.each<[string, Record<string, unknown>, readonly StepKey[]]>([
      ['every step', {}, STEP_KEYS],
      [
        'no Athena',
        { athena: undefined, extract: [salesforceExtract] },
        STEP_KEYS.filter((s) => s !== 'loadAthena'),
      ],
      [
        'no Salesforce extract',
        { extract: [athenaExtract] },
        STEP_KEYS.filter((s) => !(salesforceSteps as readonly StepKey[]).includes(s)),
      ],
      [
        'no write-back',
        { writeback: [] },
        STEP_KEYS.filter((s) => !(writebackSteps as readonly StepKey[]).includes(s)),
      ],
      [
        'no Salesforce at all',
        { salesforce: undefined, extract: [athenaExtract], writeback: [] },
        ['prepare', 'loadAthena', 'transform', 'report'],
      ],
      [
        'no transform',
        { transform: [], writeback: [] },
        ['prepare', ...salesforceSteps, 'loadAthena', 'report'],
      ],
    ])(
      'deploys a function for each step its state machine invokes and none other, so that only those may read the secrets (%s)',
      (_, overrides, expected) => {
        const { stack, template } = synthPipeline(fullConfig(overrides)); // cdk-nag passes
        const invoked = new Set<TaskBinding>(stack.taskStates.values());
        expect(STEP_KEYS.filter((s) => invoked.has(s))).toEqual(expected);
        expect(stack.steps).toEqual(expected);
        const names = Object.values(template.findResources('AWS::Lambda::Function')).map(
          (fn) => (fn.Properties as { FunctionName: string }).FunctionName,
        );
        expect(names.sort()).toEqual(expected.map((s) => functionName('full', s)).sort());
        // The roles that may read a secret: the deployed functions', each once.
        const readers = Object.values(template.findResources('AWS::IAM::Policy'))
          .filter((p) =>
            (p.Properties as { PolicyDocument: { Statement: Statement[] } }).PolicyDocument.Statement.some(
              (st) => actionsOf(st).includes('secretsmanager:GetSecretValue'),
            ),
          )
          .flatMap((p) => (p.Properties as { Roles: { Ref: string }[] }).Roles.map((r) => r.Ref));
        expect(readers.sort()).toEqual(expected.map((s) => roleId(stack, stack.stepFunction(s).role)).sort());
        for (const step of STEP_KEYS.filter((s) => !expected.includes(s))) {
          expect(() => stack.stepFunction(step)).toThrow(
            `Stack roundtrip-full has no function for step ${step}: its state machine does not invoke it (the config has no use for it)`,
          );
        }
      },
    );
  });

  it('fails synth when cdk-nag finds something (the check is real)', () => {
    const app = newApp();
    const stack = new Stack(app, 'Insecure');
    new sns.Topic(stack, 'Plain'); // publishers not required to use TLS: AwsSolutions-SNS3
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    expect(() => app.synth()).toThrow(/AwsSolutions-SNS3/);
  });

  it('names the config file in a problem of the files it names, read beside it (cdk synth)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'roundtrip-app-'));
    const file = path.join(dir, 'roundtrip.config.json');
    writeFileSync(
      file,
      JSON.stringify({
        name: 'ca',
        postgres: { secret: 'pg', ssl: { caBundle: 'no-such-ca-bundle.pem' } },
        transform: [LEAD_SCORE_SQL],
      }),
    );
    await expect(buildApp(newApp({ context: { [CONFIG_CONTEXT_KEY]: file } }))).rejects.toThrow(
      `Invalid pipeline config ${file} (1 problem):\n  postgres.ssl.caBundle: expected an existing PEM file of CA certificates (a relative path is read from the config's folder), got "no-such-ca-bundle.pem" (${path.join(dir, 'no-such-ca-bundle.pem')} does not exist)`,
    );
  });

  it('refuses for AWS what only a local run can use: an emulator login URL, a database without TLS (cdk synth)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'roundtrip-app-'));
    const file = path.join(dir, 'roundtrip.config.json');
    // A laptop config as docs/cli.md has it, deployed as it is, with an existing workgroup
    // whose result location is missing: every problem at once.
    const laptop = {
      name: 'from-laptop',
      salesforce: { secret: 'local/salesforce', loginUrl: 'http://127.0.0.1:8443' },
      athena: { database: 'marketing', workgroup: 'analytics' },
      postgres: { secret: 'local/postgres', ssl: { mode: 'disable' } },
      extract: [{ from: 'athena', query: 'SELECT 1 AS one', table: 'ones' }],
    };
    writeFileSync(file, JSON.stringify(laptop));
    const error = await buildApp(newApp({ context: { [CONFIG_CONTEXT_KEY]: file } })).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toMatch(
      new RegExp(`^Invalid pipeline config ${file} \\(3 problems\\):`),
    );
    expect((error as ConfigError).issues.map((i) => i.path)).toEqual([
      'salesforce.loginUrl',
      'postgres.ssl.mode',
      'athena.outputLocation',
    ]);
    expect((error as ConfigError).message).toContain(
      'salesforce.loginUrl: expected a login URL a deployed function can reach (https://login.salesforce.com, https://test.salesforce.com or your My Domain), got "http://127.0.0.1:8443": that is this machine (the local emulator). Leave salesforce.loginUrl out to use the loginUrl of the secret local/salesforce',
    );
    expect((error as ConfigError).message).toContain(
      'postgres.ssl.mode: expected "verify-full" (the default) or "require" for a deployed function, got "disable"',
    );
    // The local runs build the same stack from such a config (docs/cli.md): the stack takes it.
    const local = fullConfig();
    const { stack } = synthPipeline({
      ...local,
      salesforce: { ...local.salesforce!, loginUrl: 'http://localhost:8443' },
      postgres: { ...local.postgres, ssl: { mode: 'disable' } },
    });
    expect(stack.stateMachine).toBeDefined();
    // A My Domain login URL and TLS without verification are fine deployed.
    expect(
      laptopOnlyIssues({
        ...local,
        salesforce: { ...local.salesforce!, loginUrl: 'https://acme.my.salesforce.com' },
        postgres: { ...local.postgres, ssl: { mode: 'require' } },
      }),
    ).toEqual([]);
  });

  it('refuses an invalid config with the path of the problem', async () => {
    await expect(
      buildApp(newApp({ context: { [CONFIG_CONTEXT_KEY]: 'examples/does-not-exist.ts' } })),
    ).rejects.toThrow(/does-not-exist\.ts/);
  });
});
