/**
 * The roundtrip stack: everything `cdk deploy` creates for one pipeline (DESIGN.md §1 as
 * infrastructure), built from a validated pipeline config:
 *
 * - one function per step the state machine invokes (lib/constructs/step-function.ts; none for a
 *   step the config has no use for), each with its own role, granted exactly what its step uses:
 *   the PostgreSQL secret (every step), the Salesforce secret (the steps that call Salesforce),
 *   Athena and the result files (the Athena load);
 * - the state machine (statemachine/definition.ts): Standard, JSONPath, logs every event (level
 *   ALL) without its data to a log group with retention, X-Ray tracing; its role may invoke the
 *   functions and run the Athena queries (Athena, Glue and S3 scoped to the configured database,
 *   tables and data);
 * - an Athena workgroup that enforces its result location in an encrypted results bucket
 *   (`athena.createWorkgroup`), or the existing workgroup and its `outputLocation`;
 * - the EventBridge Scheduler schedule with retries and a dead-letter queue;
 * - the notification topic (customer-managed key, TLS only, e-mail subscriptions), the alarms
 *   and the dashboard (lib/constructs/pipeline-alarms.ts).
 *
 * cdk-nag's AwsSolutions pack runs over the app (bin/app.ts); every acknowledgement below is
 * scoped to one resource, names the exact finding and says why.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  Annotations,
  ArnFormat,
  Aws,
  type CfnElement,
  CfnOutput,
  Duration,
  RemovalPolicy,
  Stack,
  type StackProps,
  Tags,
  TimeZone,
  Validations,
} from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct, IConstruct } from 'constructs';
import { scheduleExpression, type PipelineConfig, type ProxySettings } from '../lambdas/config';
import { caBundleFileProblem } from '../lambdas/shared/ca-bundle';
import { PROXY_CREDENTIALS_SECRET_VARIABLE } from '../lambdas/shared/proxy';
import { s3FolderUrl } from '../lambdas/shared/s3-location';
import { ConfigError, type ConfigIssue } from '../lambdas/shared/errors';
import { serviceName } from '../lambdas/shared/observability';
import {
  PIPELINE_STEPS,
  RUN_TIMEOUT,
  STEP_KEYS,
  buildDefinition,
  functionName,
  type AthenaQueryTimeout,
  type StepKey,
  type TaskBinding,
} from '../statemachine/definition';
import { bundledConfig, writeBundledConfig } from './bundled-config';
import { ResultsWorkgroup } from './constructs/athena-workgroup';
import { PipelineAlarms } from './constructs/pipeline-alarms';
import { StepFunction } from './constructs/step-function';

/** Deployment defaults the stack applies (the parsed config keeps only what was written). */
export const DEPLOYMENT_DEFAULTS = {
  logRetentionDays: 30,
  resultsExpireDays: 7,
  deadLetterQueue: true,
  createWorkgroup: false,
} as const;

/** Props of {@link PipelineStack}. */
export interface PipelineStackProps extends StackProps {
  /** The validated pipeline config (`loadConfig()`; transform paths absolute). */
  readonly config: PipelineConfig;
  /**
   * The config's file, to name in a deployment problem (bin/app.ts passes it).
   * @default "pipeline <name> (deployment)"
   */
  readonly configFile?: string;
  /**
   * Where the bundled config JSON is written before bundling copies it into each function.
   * @default a new temporary folder
   */
  readonly bundleInputDir?: string;
  /**
   * How long the state machine's Athena `.sync` Tasks wait for a query, and what sets that limit
   * (named in the error of a query that outlives it). Only a local run (statemachine/local.ts)
   * gives a shorter one; a deployed stack keeps the default.
   * @default DEPLOYED_ATHENA_QUERY_TIMEOUT (statemachine/definition.ts)
   */
  readonly athenaQueryTimeout?: AthenaQueryTimeout;
}

/**
 * `s3://bucket/prefix/` → its bucket and its prefix as a folder: ending in `/` unless empty
 * (the whole bucket). Athena writes a query's results under `<outputLocation>/<id>.csv` and reads
 * a table's location as a folder, so `s3://bucket/results` is granted as `results/*`: granted as
 * written, `results*` would also cover `results-of-another-team/…`.
 */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([^/]+)\/(.*)$/.exec(s3FolderUrl(url));
  if (!match?.[1]) throw new Error(`Not an S3 URL: ${url}`);
  return { bucket: match[1], prefix: match[2] ?? '' };
}

/** The account's own Glue Data Catalog as Athena names it: the only catalog the stack grants. */
export const DEFAULT_ATHENA_CATALOG = 'AwsDataCatalog';

/** A secret's complete ARN: its name followed by `-` and the six characters Secrets Manager added. */
const COMPLETE_SECRET_ARN = /:secret:.+-[A-Za-z0-9]{6}$/;

/**
 * Problems of a config that only deployment reveals, reported together, in the config's order.
 * An existing workgroup whose result location is unknown cannot be granted. Athena writes a query's result file with
 * the permissions of the caller (the state machine), and GetQueryResults reads it with the
 * caller's own `s3:GetObject` (Athena API reference, GetQueryResults), so the location is needed
 * with `results: 'api'` as with `'s3'`: without it the roles would get S3 on nothing (every
 * query and every load failing with AccessDenied) or on everything. A secret ARN without its
 * suffix matches no secret. An Athena catalog other than the account's own Glue Data Catalog
 * cannot be granted without a cross-account role. A PostgreSQL CA bundle that does not exist cannot be copied into the
 * functions, and one that holds no PEM certificate (or one that cannot be parsed) would fail
 * every connection.
 */
export function deploymentIssues(config: PipelineConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const athena = config.athena;
  const readsAthena = config.extract.some((t) => t.from === 'athena');
  if (athena && readsAthena && !athena.createWorkgroup && !athena.roleArn && !athena.outputLocation) {
    issues.push({
      path: 'athena.outputLocation',
      message: `expected the result location of workgroup "${athena.workgroup}" (s3://bucket/prefix/), so that the state machine can be allowed to write exactly it and the Athena load to read it, got nothing (or set "createWorkgroup": true)`,
    });
  }
  // The stack grants the queries Glue reads in this account's own Data Catalog (grantAthena).
  // Another catalog is another account's Glue catalog or a federated one (a Lambda connector, its
  // spill bucket), which would need grants in that account or on that connector: the queries would
  // be denied on every run. A cross-account role brings its own permissions.
  if (
    athena &&
    readsAthena &&
    !athena.roleArn &&
    athena.catalog.toLowerCase() !== DEFAULT_ATHENA_CATALOG.toLowerCase()
  ) {
    issues.push({
      path: 'athena.catalog',
      message: `expected "${DEFAULT_ATHENA_CATALOG}" (this account's Glue Data Catalog, whose database and tables the stack allows the queries to read) unless "roleArn" names a role that may query catalog "${athena.catalog}", got "${athena.catalog}": the stack grants nothing of another account's Glue catalog or of a federated catalog's connector, so every query would be denied`,
    });
  }
  // A secret given by ARN is granted as written: an ARN without the six characters Secrets
  // Manager appended to the name matches no secret, and every run would fail with AccessDenied.
  const secrets = [
    ...(config.salesforce ? [['salesforce.secret', config.salesforce.secret] as const] : []),
    ['postgres.secret', config.postgres.secret] as const,
    ...(config.deployment?.network?.proxy?.credentialsSecret
      ? [
          [
            'deployment.network.proxy.credentialsSecret',
            config.deployment.network.proxy.credentialsSecret,
          ] as const,
        ]
      : []),
  ];
  for (const [configPath, reference] of secrets) {
    if (reference.startsWith('arn:') && !COMPLETE_SECRET_ARN.test(reference)) {
      issues.push({
        path: configPath,
        message: `expected the secret's name or its complete ARN, which ends in "-" and the six characters Secrets Manager added to the name (…:secret:${reference.split(':secret:')[1] ?? ''}-AbCdEf; aws secretsmanager describe-secret --secret-id <name> --query ARN prints it), got ${JSON.stringify(reference)}`,
      });
    }
  }
  // The CA bundle is copied into every function's bundle (lib/bundled-config.ts): a missing file
  // is named here rather than failing the bundling later with a `cp` error. loadConfig made its
  // path absolute (relative to the config's folder, as the transform files) and checked it; a
  // config built otherwise is checked here, a relative path read from the working directory.
  const caBundle = config.postgres.ssl.caBundle;
  if (caBundle !== undefined && !existsSync(path.resolve(caBundle))) {
    issues.push({
      path: 'postgres.ssl.caBundle',
      message: `expected the path of an existing PEM file, got ${JSON.stringify(caBundle)} (${path.resolve(caBundle)} does not exist)`,
    });
  } else if (caBundle !== undefined) {
    // Copied as it is, a file that holds no certificate (a DER file, a key, nothing) would fail
    // every run's first connection, deployed.
    const problem = caBundleFileProblem(caBundle, path.resolve(caBundle));
    if (problem !== undefined) issues.push({ path: 'postgres.ssl.caBundle', message: problem });
  }
  return issues;
}

/** Host names that are the machine itself: a deployed function's own sandbox, never the laptop. */
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * Problems of a config that runs on a laptop but not deployed: settings the local loop needs
 * (docs/cli.md, "Your own pipeline on this laptop") that a deployed function cannot use. A
 * `salesforce.loginUrl` on this machine (the emulator) would be the function's own sandbox, so every
 * sign-in fails; `postgres.ssl.mode: 'disable'` is for a server on the same host, and deployed it
 * sends the database password in clear text (an RDS server that forces TLS refuses it at every
 * run). Checked by `cdk synth` and `cdk deploy` only (bin/app.ts): the local runs build the same
 * stack with these settings on purpose.
 */
export function laptopOnlyIssues(config: PipelineConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const loginUrl = config.salesforce?.loginUrl;
  if (loginUrl !== undefined && LOOPBACK_HOSTS.has(new URL(loginUrl).hostname)) {
    issues.push({
      path: 'salesforce.loginUrl',
      message: `expected a login URL a deployed function can reach (https://login.salesforce.com, https://test.salesforce.com or your My Domain), got ${JSON.stringify(loginUrl)}: that is this machine (the local emulator). Leave salesforce.loginUrl out to use the loginUrl of the secret ${config.salesforce?.secret ?? ''}, or set your org's`,
    });
  }
  if (config.postgres.ssl.mode === 'disable') {
    issues.push({
      path: 'postgres.ssl.mode',
      message: `expected "verify-full" (the default) or "require" for a deployed function, got "disable": that is for a server on the same host (the embedded server, a local container), and deployed it would send the database password in clear text. Leave postgres.ssl out, or give the database's CA bundle as postgres.ssl.caBundle`,
    });
  }
  return issues;
}

/**
 * Secrets Manager appends a hyphen and six random characters to a secret's name in its ARN
 * (Secrets Manager user guide, "Secret ARN"; IAM policies match them with `-??????`).
 */
export const SECRET_ARN_SUFFIX_PATTERN = '-??????';

/**
 * The ARN to grant for an existing secret: a complete ARN (with its 6-character suffix) as
 * given, a name as `…:secret:<name>-??????`, which matches exactly that secret (a `?` is one
 * character; a longer name with the same prefix has more).
 */
export function secretArnForPolicy(stack: Stack, reference: string): string {
  return reference.startsWith('arn:')
    ? reference
    : stack.formatArn({
        service: 'secretsmanager',
        resource: 'secret',
        resourceName: `${reference}${SECRET_ARN_SUFFIX_PATTERN}`,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      });
}

/**
 * The variable naming the notification topic in the Report function, read by
 * lambdas/handlers/sns-deps.ts (`HANDLER_ENV.notificationTopicArn`; not imported from there: lib/
 * stays free of runtime code. test/infra checks the two agree).
 */
export const NOTIFICATION_TOPIC_ENV = 'ROUNDTRIP_NOTIFICATION_TOPIC_ARN';

/** The condition that a KMS key be used only by `service` on the caller's behalf, in this Region. */
function onlyThrough(service: 'secretsmanager' | 's3' | 'sns'): Record<string, unknown> {
  return { StringEquals: { 'kms:ViaService': `${service}.${Aws.REGION}.amazonaws.com` } };
}

/** The tag on the stack and its resources whose value is the pipeline's name. */
export const PIPELINE_TAG = 'roundtrip:pipeline';

/** The state machine's name: `roundtrip-<pipeline>`. */
export function stateMachineNameOf(pipeline: string): string {
  return `roundtrip-${pipeline}`;
}

/** One pipeline's AWS resources. */
export class PipelineStack extends Stack {
  /** Where failures and crossed thresholds are published. */
  readonly notificationTopic: sns.Topic;
  /**
   * The functions, by step: one for each step the state machine invokes, none for a step the
   * config has no use for ({@link stepFunction} gives one that must be there).
   */
  readonly functions: Readonly<Partial<Record<StepKey, StepFunction>>>;
  /** The steps that have a function, in run order. */
  readonly steps: readonly StepKey[];
  readonly stateMachine: sfn.StateMachine;
  /** Task state name → what it runs (statemachine/definition.ts). */
  readonly taskStates: ReadonlyMap<string, TaskBinding>;
  /** The workgroup the stack created, when `athena.createWorkgroup`. */
  readonly resultsWorkgroup?: ResultsWorkgroup;
  readonly schedule?: scheduler.Schedule;
  readonly deadLetterQueue?: sqs.Queue;
  readonly alarms: PipelineAlarms;

  constructor(scope: Construct, id: string, props: PipelineStackProps) {
    // The stack carries the pipeline's tag, and CloudFormation gives a stack's tags to what it
    // creates. Given here: with @aws-cdk/core:explicitStackTags (cdk.json) `Tags.of(stack)` no
    // longer tags the stack itself, only the resources of its template.
    super(scope, id, { ...props, tags: { ...props.tags, [PIPELINE_TAG]: props.config.name } });
    const { config } = props;
    const issues = deploymentIssues(config);
    if (issues.length > 0) {
      throw new ConfigError(issues, props.configFile ?? `pipeline ${config.name} (deployment)`);
    }
    // And every resource of the template that takes tags, so that the template says so too.
    Tags.of(this).add(PIPELINE_TAG, config.name);
    const service = serviceName(config.name);
    const logRetentionDays = config.deployment?.logRetentionDays ?? DEPLOYMENT_DEFAULTS.logRetentionDays;
    const logRetention = logRetentionDays as logs.RetentionDays;

    // --- Notifications -----------------------------------------------------------------------
    // CloudWatch alarms can publish only to topics whose key lets CloudWatch use it: an AWS
    // managed key (alias/aws/sns) cannot be given that grant, so the topic gets its own key.
    const topicKey = new kms.Key(this, 'NotificationKey', {
      description: `roundtrip ${config.name}: encrypts the notification topic`,
      enableKeyRotation: true,
    });
    // (The alarms get their use of it, and of the topic, in lib/constructs/pipeline-alarms.ts.)
    this.notificationTopic = new sns.Topic(this, 'Notifications', {
      displayName: `roundtrip ${config.name}`,
      masterKey: topicKey,
      enforceSSL: true,
    });
    for (const email of config.notifications?.emails ?? []) {
      this.notificationTopic.addSubscription(new subscriptions.EmailSubscription(email));
    }

    // --- Network -----------------------------------------------------------------------------
    const net = config.deployment?.network;
    const network = net
      ? {
          vpc: ec2.Vpc.fromVpcAttributes(this, 'Vpc', {
            vpcId: net.vpcId,
            availabilityZones: Stack.of(this).availabilityZones.slice(0, net.subnetIds.length),
          }),
          subnets: net.subnetIds.map((subnetId, i) => {
            const subnet = ec2.Subnet.fromSubnetId(this, `Subnet${i}`, subnetId);
            // An imported subnet without its route table warns at every synth; nothing here reads
            // the route table (the stack adds no route and no gateway endpoint to it).
            Annotations.of(subnet).acknowledgeWarning(
              '@aws-cdk/aws-ec2:noSubnetRouteTableId',
              'The stack reads no route table of the configured subnets.',
            );
            return subnet;
          }),
          securityGroups: net.securityGroupIds.map((sg, i) =>
            ec2.SecurityGroup.fromSecurityGroupId(this, `SecurityGroup${i}`, sg, { mutable: false }),
          ),
        }
      : undefined;

    // --- Athena workgroup ----------------------------------------------------------------------
    const athena = config.athena;
    if (athena?.createWorkgroup ?? DEPLOYMENT_DEFAULTS.createWorkgroup) {
      this.resultsWorkgroup = new ResultsWorkgroup(this, 'Athena', {
        name: athena?.workgroup ?? '',
        resultsExpireDays: athena?.resultsExpireDays ?? DEPLOYMENT_DEFAULTS.resultsExpireDays,
        ...(athena?.resultsKmsKeyArn ? { kmsKeyArn: athena.resultsKmsKeyArn } : {}),
        description: `roundtrip ${config.name}: extract queries`,
      });
      acknowledge(
        this.resultsWorkgroup.bucket,
        ['AwsSolutions-S1'],
        'Holds only Athena query results, which expire after days; the stack grants access to them to the state machine (writes) and the Athena load (reads) only, and CloudTrail S3 data events record object access where the account audits it. Server access logs would need a second bucket to keep a log of a cache.',
      );
    }
    // The runtime config: a created workgroup's result location is the bucket's.
    const outputLocation = this.resultsWorkgroup?.outputLocation ?? athena?.outputLocation;

    // --- Functions -----------------------------------------------------------------------------
    const bundled = bundledConfig(config);
    const configFile = writeBundledConfig(
      bundled,
      props.bundleInputDir ?? mkdtempSync(path.join(os.tmpdir(), 'roundtrip-bundle-')),
    );
    // One function per step the state machine invokes, made when the definition first asks for it:
    // a step the config has no use for (the Athena load without an Athena extract, the Salesforce
    // extract steps without a Salesforce extract, the write-back steps without a write-back task,
    // the transform without SQL files) gets no function, and so no role that may read the secrets.
    const functions: Partial<Record<StepKey, StepFunction>> = {};
    const functionOf = (step: StepKey): lambda.IFunction => {
      const made = functions[step];
      if (made) return made.function;
      const spec = PIPELINE_STEPS[step];
      const created = new StepFunction(this, `Step-${spec.functionSuffix}`, {
        handler: spec.handler,
        functionName: functionName(config.name, step),
        description: `roundtrip ${config.name}: ${spec.handler} step`,
        memoryMb: spec.memoryMb,
        timeout: Duration.seconds(spec.timeoutSeconds),
        configFile,
        files: [...bundled.common, ...(step === 'transform' ? bundled.transform : [])],
        serviceName: service,
        logRetention,
        ...(network ? { network } : {}),
        ...(net?.proxy ? { environment: proxyEnvironment(net.proxy) } : {}),
      });
      functions[step] = created;
      return created.function;
    };
    const definition = buildDefinition(this, functionOf, config, {
      ...(props.athenaQueryTimeout ? { athenaQueryTimeout: props.athenaQueryTimeout } : {}),
    });
    this.taskStates = definition.taskStates;
    this.functions = functions;
    this.steps = STEP_KEYS.filter((step) => functions[step] !== undefined);
    const prepare = this.stepFunction('prepare');
    const report = this.stepFunction('report');
    // Prepare asks whether another run's execution still runs (runs that overlap,
    // lambdas/core/prepare.ts): executions of this state machine only, by name.
    const executionsArn = this.formatArn({
      service: 'states',
      resource: 'execution',
      resourceName: `${stateMachineNameOf(config.name)}:*`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    prepare.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'DescribeOwnExecutions',
        actions: ['states:DescribeExecution'],
        resources: [executionsArn],
      }),
    );
    acknowledge(
      policyOf(prepare.role),
      [`AwsSolutions-IAM5[Resource::${nagResource(this, executionsArn)}]`],
      "Executions are named when they start (the run id): the executions of this pipeline's own state machine is the narrowest resource.",
    );
    // The Report tells of a failed run on the topic: why, the errors by code, the first records
    // (lambdas/core/writeback/notify.ts). The alarms still tell of executions that fail before.
    report.function.addEnvironment(NOTIFICATION_TOPIC_ENV, this.notificationTopic.topicArn);
    report.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'PublishToNotificationTopic',
        actions: ['sns:Publish'],
        resources: [this.notificationTopic.topicArn],
      }),
    );
    // (Topic.grantPublish would grant kms:GenerateDataKey*; SNS asks only for a data key.)
    report.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'EncryptNotificationsThroughSns',
        actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
        resources: [topicKey.keyArn],
        conditions: onlyThrough('sns'),
      }),
    );

    // --- Secrets -------------------------------------------------------------------------------
    const postgresSecret = secretArnForPolicy(this, config.postgres.secret);
    const salesforceSecret = config.salesforce
      ? secretArnForPolicy(this, config.salesforce.secret)
      : undefined;
    // Every function's calls may go through the proxy: each reads its credentials.
    const proxyCredentials = net?.proxy?.credentialsSecret;
    const proxySecret = proxyCredentials ? secretArnForPolicy(this, proxyCredentials) : undefined;
    const secretsKey = config.deployment?.kmsKeyArn;
    for (const step of this.steps) {
      const role = this.stepFunction(step).role;
      const secrets = [
        postgresSecret,
        ...(PIPELINE_STEPS[step].salesforce && salesforceSecret ? [salesforceSecret] : []),
        ...(proxySecret ? [proxySecret] : []),
      ];
      // GetSecretValue is the one Secrets Manager call the functions make (lambdas/shared/secrets.ts);
      // none writes a secret back (no sign-in flow returns a refresh token to keep).
      role.addToPolicy(
        new iam.PolicyStatement({
          sid: 'ReadPipelineSecrets',
          actions: ['secretsmanager:GetSecretValue'],
          resources: secrets,
        }),
      );
      if (secretsKey) {
        role.addToPolicy(
          new iam.PolicyStatement({
            sid: 'DecryptSecretsThroughSecretsManager',
            actions: ['kms:Decrypt'],
            resources: [secretsKey],
            conditions: onlyThrough('secretsmanager'),
          }),
        );
      }
    }

    // --- State machine -------------------------------------------------------------------------
    const stateMachineLogs = new logs.LogGroup(this, 'StateMachineLogs', {
      logGroupName: `/aws/vendedlogs/states/roundtrip-${config.name}`,
      retention: logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      stateMachineName: stateMachineNameOf(config.name),
      stateMachineType: sfn.StateMachineType.STANDARD,
      queryLanguage: sfn.QueryLanguage.JSON_PATH,
      definitionBody: sfn.DefinitionBody.fromChainable(definition.start),
      comment: `roundtrip ${config.name}: prepare, extract, transform, write back, report`,
      timeout: RUN_TIMEOUT,
      tracingEnabled: true,
      // Every event (which state, what happened, when), without its data: the states' input and
      // output carry record values (a dry run's plan samples, the records of a step's answer),
      // which would stay in the log group for its retention under no key of the customer. Nothing
      // reads this log group: the alarms watch the state machine's metrics, `roundtrip status`
      // reads roundtrip.runs, `roundtrip start` and the console the execution's history, which
      // keeps the data behind states:GetExecutionHistory.
      logs: { destination: stateMachineLogs, level: sfn.LogLevel.ALL, includeExecutionData: false },
    });
    const readsAthena = config.extract.some((t) => t.from === 'athena');
    if (athena && readsAthena) this.grantAthena(config, outputLocation);

    // --- Schedule ------------------------------------------------------------------------------
    if (config.schedule) {
      const schedule = config.schedule;
      if (schedule.deadLetterQueue ?? DEPLOYMENT_DEFAULTS.deadLetterQueue) {
        this.deadLetterQueue = new sqs.Queue(this, 'ScheduleDeadLetters', {
          encryption: sqs.QueueEncryption.SQS_MANAGED,
          enforceSSL: true,
          retentionPeriod: Duration.days(14),
        });
        acknowledge(
          this.deadLetterQueue,
          ['AwsSolutions-SQS3'],
          'This queue is the dead-letter queue of the EventBridge Scheduler schedule (a Scheduler target DLQ, not an SQS redrive, so cdk-nag cannot see it); a DLQ of a DLQ has no use.',
        );
      }
      this.schedule = new scheduler.Schedule(this, 'Schedule', {
        scheduleName: `roundtrip-${config.name}`,
        description: `roundtrip ${config.name}: starts a run`,
        schedule: scheduler.ScheduleExpression.expression(
          scheduleExpression(schedule),
          TimeZone.of(schedule.timezone),
        ),
        enabled: schedule.enabled,
        target: new targets.StepFunctionsStartExecution(this.stateMachine, {
          // `{}` runs the configured pipeline, like "Start execution" in the console.
          // A scheduled run that finds the previous one still going skips (lambdas/core/prepare.ts).
          input: scheduler.ScheduleTargetInput.fromObject({ onOverlap: 'skip' }),
          ...(schedule.retries !== undefined ? { retryAttempts: schedule.retries } : {}),
          ...(schedule.maximumEventAgeSeconds !== undefined
            ? { maxEventAge: Duration.seconds(schedule.maximumEventAgeSeconds) }
            : {}),
          ...(this.deadLetterQueue ? { deadLetterQueue: this.deadLetterQueue } : {}),
        }),
      });
    }

    // --- Alarms and dashboard ------------------------------------------------------------------
    this.alarms = new PipelineAlarms(this, 'Observability', {
      pipeline: config.name,
      serviceName: service,
      stateMachine: this.stateMachine,
      topic: this.notificationTopic,
      topicKey,
      writeback: config.writeback,
      ...(this.deadLetterQueue ? { deadLetterQueue: this.deadLetterQueue } : {}),
    });

    this.acknowledgeFindings(config);

    new CfnOutput(this, 'NotificationTopicArn', { value: this.notificationTopic.topicArn });
    new CfnOutput(this, 'StateMachineArn', { value: this.stateMachine.stateMachineArn });
    new CfnOutput(this, 'DashboardName', { value: `roundtrip-${config.name}` });
    if (this.resultsWorkgroup) {
      new CfnOutput(this, 'AthenaResultsBucket', { value: this.resultsWorkgroup.bucket.bucketName });
    }
  }

  /**
   * Athena for the extract queries: the state machine runs them (`startQueryExecution.sync`),
   * the load function reads their results. With `athena.roleArn` both assume that role instead
   * and get no Athena, Glue or S3 permission in this account.
   */
  private grantAthena(config: PipelineConfig, outputLocation: string | undefined): void {
    const athena = config.athena;
    if (!athena) return;
    const smRole = this.stateMachine.role;
    const loadRole = this.stepFunction('loadAthena').role;
    if (athena.roleArn) {
      const assume = new iam.PolicyStatement({
        sid: 'AssumeCrossAccountAthenaRole',
        actions: ['sts:AssumeRole'],
        resources: [athena.roleArn],
      });
      smRole.addToPrincipalPolicy(assume);
      loadRole.addToPrincipalPolicy(assume);
      // The role in the other account must trust these two (its trust policy names the principals
      // that may assume it), and their names are made by CloudFormation: without them in the
      // outputs, `cdk deploy` gave nothing to put there, and every query failed on AssumeRole.
      new CfnOutput(this, 'AthenaStateMachineRoleArn', {
        description: `Runs the Athena queries as ${athena.roleArn}: that role's trust policy must allow it sts:AssumeRole`,
        value: smRole.roleArn,
      });
      new CfnOutput(this, 'AthenaLoadRoleArn', {
        description: `Reads the Athena results as ${athena.roleArn}: that role's trust policy must allow it sts:AssumeRole`,
        value: loadRole.roleArn,
      });
      return;
    }
    const workgroupArn = this.formatArn({
      service: 'athena',
      resource: 'workgroup',
      resourceName: athena.workgroup,
    });
    const catalogArn = this.formatArn({
      service: 'athena',
      resource: 'datacatalog',
      resourceName: athena.catalog,
    });
    const results = outputLocation ? parseS3Url(outputLocation) : undefined;
    const wildcard = (role: iam.IRole, resource: string, reason: string): void =>
      acknowledge(policyOf(role), [`AwsSolutions-IAM5[Resource::${nagResource(this, resource)}]`], reason);
    const RESULT_FILES =
      'Result files are named by their query execution id, known only once a query runs: objects under the configured result prefix is the narrowest resource.';
    const resultsBucketArn = results ? `arn:${Aws.PARTITION}:s3:::${results.bucket}` : undefined;
    const resultObjectsArn = results ? `${resultsBucketArn}/${results.prefix}*` : undefined;

    // What the `.sync` integration needs (Step Functions developer guide, "IAM policies for Amazon
    // Athena", https://docs.aws.amazon.com/step-functions/latest/dg/athena-iam.html): the query
    // actions on the workgroup and athena:GetDataCatalog; S3 GetBucketLocation, ListBucket,
    // GetObject, PutObject and the multipart actions for the result location; Glue catalog reads
    // (and writes, which only DDL uses); lakeformation:GetDataAccess. Granted here narrowed to
    // what a SELECT in the configured workgroup, catalog, database and tables does: no Glue write,
    // no s3:CreateBucket, S3 only on the result prefix and the configured data locations. The
    // definition's own start (request-response) and stop of a query that outlived its Task use the
    // same StartQueryExecution and StopQueryExecution.
    smRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'RunQueriesInWorkgroup',
        actions: ['athena:StartQueryExecution', 'athena:GetQueryExecution', 'athena:StopQueryExecution'],
        resources: [workgroupArn],
      }),
    );
    smRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadDataCatalog',
        actions: ['athena:GetDataCatalog'],
        resources: [catalogArn],
      }),
    );
    const glue = (resource: string, name?: string): string =>
      this.formatArn({ service: 'glue', resource, ...(name ? { resourceName: name } : {}) });
    smRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadConfiguredGlueTables',
        actions: [
          'glue:GetDatabase',
          'glue:GetTable',
          'glue:GetPartition',
          'glue:GetPartitions',
          'glue:BatchGetPartition',
        ],
        resources: [
          glue('catalog'),
          glue('database', athena.database),
          ...(athena.tables ?? ['*']).map((t) => glue('table', `${athena.database}/${t}`)),
        ],
      }),
    );
    if (!athena.tables) {
      wildcard(
        smRole,
        glue('table', `${athena.database}/*`),
        `athena.tables is not configured: the queries may read every table of database ${athena.database}. Set athena.tables to name them.`,
      );
    }
    if (resultsBucketArn && resultObjectsArn) {
      wildcard(smRole, resultObjectsArn, RESULT_FILES);
      wildcard(loadRole, resultObjectsArn, RESULT_FILES);
      smRole.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'WriteQueryResultsBucket',
          actions: ['s3:GetBucketLocation', 's3:ListBucket', 's3:ListBucketMultipartUploads'],
          resources: [resultsBucketArn],
        }),
      );
      smRole.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'WriteQueryResults',
          actions: ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
          resources: [resultObjectsArn],
        }),
      );
    }
    const dataLocations = (athena.dataLocations ?? []).map(parseS3Url);
    for (const [i, location] of dataLocations.entries()) {
      const bucketArn = `arn:${Aws.PARTITION}:s3:::${location.bucket}`;
      // Athena reads a table's data with the caller's permissions: GetBucketLocation and ListBucket
      // on its bucket, GetObject on its objects (Athena user guide, "Access to Amazon S3";
      // https://repost.aws/knowledge-center/athena-access-iam). Only a ListBucket request carries
      // `s3:prefix`; GetBucketLocation has no such key, so under that condition it would be denied
      // (Service Authorization Reference, Amazon S3: condition keys per action): it goes alone.
      // Athena lists a table's folder with the prefix `<folder>/`, which `<folder>/*` matches (a
      // `*` matches nothing too), and so does every deeper prefix (partitions).
      smRole.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: `LocateSourceData${i}`,
          actions: ['s3:GetBucketLocation'],
          resources: [bucketArn],
        }),
      );
      smRole.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: `ListSourceData${i}`,
          actions: ['s3:ListBucket'],
          resources: [bucketArn],
          conditions: { StringLike: { 's3:prefix': [`${location.prefix}*`] } },
        }),
      );
      wildcard(
        smRole,
        `${bucketArn}/${location.prefix}*`,
        `The objects of configured data location s3://${location.bucket}/${location.prefix} (athena.dataLocations), which Athena reads for the queries.`,
      );
      smRole.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: `ReadSourceData${i}`,
          actions: ['s3:GetObject'],
          resources: [`${bucketArn}/${location.prefix}*`],
        }),
      );
    }
    if (dataLocations.length === 0) {
      // (The "*" of this statement is acknowledged with the others of the role, in
      // acknowledgeFindings: one finding id per role and resource.)
      // Without data locations the data is governed by Lake Formation, which vends the access.
      smRole.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'LakeFormationDataAccess',
          // lakeformation:GetDataAccess supports no resource-level permissions (Service
          // Authorization Reference, AWS Lake Formation): "*" is its only resource.
          actions: ['lakeformation:GetDataAccess'],
          resources: ['*'],
        }),
      );
    }

    if (athena.dataKmsKeyArns) {
      // Source data encrypted with customer managed keys (SSE-KMS): Athena reads it with the state
      // machine's permissions, and S3 decrypts an object only for a caller allowed kms:Decrypt on
      // its key (Athena user guide, "Permissions to encrypted data in Amazon S3"). Only through S3.
      smRole.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'DecryptSourceData',
          actions: ['kms:Decrypt'],
          resources: [...athena.dataKmsKeyArns],
          conditions: onlyThrough('s3'),
        }),
      );
    }
    if (athena.resultsKmsKeyArn) {
      // Result files encrypted with a customer managed key (SSE-KMS): S3 asks KMS for a data key
      // when Athena writes one with the state machine's permissions, and to decrypt it when the
      // load (or GetQueryResults, with the load's permissions) reads it. Only through S3.
      const throughS3 = onlyThrough('s3');
      smRole.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'EncryptQueryResults',
          actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
          resources: [athena.resultsKmsKeyArn],
          conditions: throughS3,
        }),
      );
      loadRole.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'DecryptQueryResults',
          actions: ['kms:Decrypt'],
          resources: [athena.resultsKmsKeyArn],
          conditions: throughS3,
        }),
      );
    }
    // The load asks for the execution (GetQueryExecution, when the `.sync` output was trimmed), its
    // column types (GetQueryResults, one row) and, with `results: 'api'`, every page of rows; then
    // reads the result file with GetObject. GetQueryResults itself reads the file with the caller's
    // s3:GetObject (Athena API reference, GetQueryResults,
    // https://docs.aws.amazon.com/athena/latest/APIReference/API_GetQueryResults.html).
    loadRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadQueryExecutions',
        actions: ['athena:GetQueryExecution', 'athena:GetQueryResults'],
        resources: [workgroupArn],
      }),
    );
    if (resultObjectsArn) {
      loadRole.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'ReadQueryResults',
          actions: ['s3:GetObject'],
          resources: [resultObjectsArn],
        }),
      );
    }
  }

  /**
   * The function of a step the state machine invokes. Throws for a step it does not invoke (the
   * config has no use for it), which has no function.
   */
  stepFunction(step: StepKey): StepFunction {
    const fn = this.functions[step];
    if (!fn) {
      throw new Error(
        `Stack ${this.stackName} has no function for step ${step}: its state machine does not invoke it (the config has no use for it)`,
      );
    }
    return fn;
  }

  /** The cdk-nag findings that are acknowledged, each on one resource with its reason. */
  private acknowledgeFindings(config: PipelineConfig): void {
    const XRAY =
      'X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions (Service Authorization Reference, AWS X-Ray): "*" is their only resource. Added by active tracing.';
    const VPC = config.deployment?.network
      ? ' EC2 DescribeNetworkInterfaces/DescribeSubnets, which Lambda needs for a VPC function, support no resource-level permissions either.'
      : '';
    for (const step of this.steps) {
      const fn = this.stepFunction(step);
      acknowledge(policyOf(fn.role), ['AwsSolutions-IAM5[Resource::*]'], `${XRAY}${VPC}`);
      if (config.deployment?.network) {
        acknowledge(
          policyOf(fn.role),
          [
            `AwsSolutions-IAM5[Resource::${nagResource(this, this.formatArn({ service: 'ec2', resource: 'network-interface', resourceName: '*' }))}]`,
          ],
          'The network interfaces Lambda creates for a VPC function get ids only when created: network interfaces of this account and Region is the narrowest resource (the subnets and security groups are named).',
        );
      }
      acknowledge(
        fn.function,
        ['AwsSolutions-L1'],
        'Node.js 22 is the runtime this code is built, bundled (esbuild target node22) and tested for (DESIGN.md §6); it is in Lambda standard support until April 2027. Moving to a newer runtime is a deliberate upgrade with its own test run, not a default.',
      );
    }
    const smPolicy = policyOf(this.stateMachine.role);
    acknowledge(
      smPolicy,
      ['AwsSolutions-IAM5[Resource::*]'],
      `${XRAY} The CloudWatch Logs vended-log delivery actions (logs:CreateLogDelivery, …) that state machine logging needs support no resource-level permissions either.${
        config.athena && !config.athena.roleArn && !config.athena.dataLocations
          ? ' Neither does lakeformation:GetDataAccess, with which Lake Formation vends the data access of the Athena queries (athena.dataLocations is not configured).'
          : ''
      }`,
    );
    acknowledge(
      smPolicy,
      this.steps.map(
        (k) =>
          `AwsSolutions-IAM5[Resource::<${this.getLogicalId(this.stepFunction(k).function.node.defaultChild as CfnElement)}.Arn>:*]`,
      ),
      'LambdaInvoke grants each function and its qualified ARNs (`<arn>:*`, versions and aliases); the definition invokes only the unqualified ARN of these step functions.',
    );
  }
}

/** The default policy of a role, where its statements (and so the IAM findings) are. */
function policyOf(role: iam.IRole): IConstruct {
  return role.node.findChild('DefaultPolicy');
}

/**
 * How cdk-nag writes a resource in a finding id: a token-free string as is, `Ref`s and
 * `Fn::GetAtt`s as `<AWS::Region>`, `<LogicalId>`, `<LogicalId.Arn>`.
 */
export function nagResource(stack: Stack, value: string): string {
  const render = (part: unknown): string => {
    if (typeof part === 'string') return part;
    if (typeof part === 'object' && part !== null) {
      const o = part as Record<string, unknown>;
      if (typeof o.Ref === 'string') return `<${o.Ref}>`;
      const getAtt = o['Fn::GetAtt'];
      if (Array.isArray(getAtt)) return `<${getAtt.join('.')}>`;
      const join = o['Fn::Join'];
      if (Array.isArray(join) && typeof join[0] === 'string' && Array.isArray(join[1])) {
        return (join[1] as unknown[]).map(render).join(join[0]);
      }
    }
    throw new Error(`Cannot render ${JSON.stringify(part)} as cdk-nag does`);
  };
  return render(stack.resolve(value));
}

/** Acknowledges exact cdk-nag findings (`Rule[Finding]`) on one construct, with one reason. */
function acknowledge(scope: IConstruct, ids: readonly string[], reason: string): void {
  for (const id of ids) Validations.of(scope).acknowledge({ id, reason });
}

/**
 * The environment of every function behind `deployment.network.proxy`: the proxy its Salesforce and
 * AWS calls go through (lambdas/shared/proxy.ts reads `HTTPS_PROXY` for both schemes), the hosts
 * reached directly (`NO_PROXY`: the VPC's interface endpoints, say), and the secret of the proxy's
 * credentials, which lambdas/handlers/deps.ts puts into the proxy's URL at start
 * (`ROUNDTRIP_PROXY_CREDENTIALS_SECRET`).
 */
export function proxyEnvironment(proxy: ProxySettings): Record<string, string> {
  return {
    HTTPS_PROXY: proxy.url,
    ...(proxy.noProxy && proxy.noProxy.length > 0 ? { NO_PROXY: proxy.noProxy.join(',') } : {}),
    ...(proxy.credentialsSecret ? { [PROXY_CREDENTIALS_SECRET_VARIABLE]: proxy.credentialsSecret } : {}),
  };
}
