/**
 * One Lambda function of a pipeline step, with good defaults: Node.js 22 on ARM64, bundled by a
 * local esbuild (minified, source maps, no Docker), X-Ray active tracing, its own log group with
 * retention, its own role (so each function is granted only what its step uses), the pipeline
 * config and the files it names bundled next to the handler, and Powertools configured through
 * the environment. Holds no business logic.
 */
import type { Duration } from 'aws-cdk-lib';
import { RemovalPolicy } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { BuildOptions } from 'esbuild';
import path from 'node:path';
import { METRICS_NAMESPACE } from '../../lambdas/shared/observability';
import { BUNDLED_CONFIG_FILE, LAMBDA_TASK_ROOT, copyCommands, type BundledFile } from '../bundled-config';

/**
 * The variable naming the bundled config, read by lambdas/handlers/deps.ts (`HANDLER_ENV.configFile`;
 * not imported from there: lib/ stays free of runtime code.
 * test/infra checks the two agree).
 */
export const CONFIG_FILE_ENV = 'ROUNDTRIP_CONFIG_FILE';

/** The repository root (lib/constructs/ is two levels down). */
export const PROJECT_ROOT = path.resolve(__dirname, '..', '..');

/**
 * Packages replaced at bundling time (esbuild `--alias`, paths relative to {@link PROJECT_ROOT},
 * esbuild's working directory) by a module that does the same for our code at a fraction of the
 * size. Each replacement says in its own comment why it behaves the same.
 */
export const BUNDLE_ALIASES: Readonly<Record<string, string>> = {
  // node-fetch 2 (under jsforce) only uses it where Node has no URL class: Node's own instead.
  'whatwg-url': './lambdas/handlers/shims/whatwg-url.ts',
  // form-data (under jsforce) looks types up only for the files of a multipart form: none here.
  'mime-types': './lambdas/handlers/shims/mime-types.ts',
};

/**
 * esbuild `--supported` overrides. `dynamic-import: false` makes esbuild turn the handlers'
 * dynamic `import()` of a module left external (the AWS SDK clients they load on first use) into
 * `require()`: a native `import()` resolves bare names with the ES module resolver, which ignores
 * `NODE_PATH`, and `NODE_PATH` is how the Lambda runtime makes its own SDK
 * (/var/runtime/node_modules) reachable. Modules inside the bundle are unaffected.
 */
export const BUNDLE_SUPPORTED: Readonly<Record<string, boolean>> = { 'dynamic-import': false };

/** The esbuild target of the bundles: the Lambda runtime's Node.js. */
export const BUNDLE_TARGET = 'node22';

/** Left out of the bundles: the Node.js 22 runtime ships the AWS SDK v3; bundling it would only add megabytes. */
export const BUNDLE_EXTERNALS: readonly string[] = ['@aws-sdk/*'];

/**
 * The esbuild options the stack's bundling (NodejsFunction's `bundling`, below) comes to, for what
 * bundles a handler outside CDK as it deploys (the bundle benchmark, the tests that run bundles):
 * in one place, so that they cannot drift from what deploys.
 */
export const LAMBDA_ESBUILD_OPTIONS = {
  bundle: true,
  minify: true,
  sourcemap: true,
  sourcesContent: false,
  platform: 'node',
  target: BUNDLE_TARGET,
  format: 'cjs',
  external: [...BUNDLE_EXTERNALS],
  absWorkingDir: PROJECT_ROOT,
  alias: { ...BUNDLE_ALIASES },
  supported: { ...BUNDLE_SUPPORTED },
} as const satisfies BuildOptions;

/** Props of {@link StepFunction}. */
export interface StepFunctionProps {
  /** The handler file, `lambdas/handlers/<handler>.ts`. */
  readonly handler: string;
  /** The function's name. */
  readonly functionName: string;
  /** What the step does, for the console. */
  readonly description: string;
  /** Memory in MB. */
  readonly memoryMb: number;
  /** Lambda timeout. */
  readonly timeout: Duration;
  /** The JSON file of the bundled config (lib/bundled-config.ts) on this machine. */
  readonly configFile: string;
  /** Other files copied into the bundle (transform SQL, CA bundle). @default none */
  readonly files?: readonly BundledFile[];
  /** `roundtrip-<pipeline>`: Powertools' service name and the metrics' `service` dimension. */
  readonly serviceName: string;
  /** Log retention. */
  readonly logRetention: logs.RetentionDays;
  /** Run in this VPC's subnets with these security groups. @default no VPC */
  readonly network?: {
    readonly vpc: ec2.IVpc;
    readonly subnets: ec2.ISubnet[];
    readonly securityGroups: ec2.ISecurityGroup[];
  };
  /** Extra environment variables. @default none */
  readonly environment?: Readonly<Record<string, string>>;
}

/** A pipeline step's function, its role and its log group. */
export class StepFunction extends Construct {
  readonly function: nodejs.NodejsFunction;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: StepFunctionProps) {
    super(scope, id);
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      logGroupName: `/aws/lambda/${props.functionName}`,
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // Our own role instead of the one NodejsFunction makes: that one carries the managed policy
    // AWSLambdaBasicExecutionRole (logs on every log group of the account).
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `${props.functionName}: runs the ${props.handler} step`,
    });
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'WriteOwnLogs',
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [this.logGroup.logGroupArn],
      }),
    );
    const files = props.files ?? [];
    this.function = new nodejs.NodejsFunction(this, 'Function', {
      functionName: props.functionName,
      description: props.description,
      entry: path.join(PROJECT_ROOT, 'lambdas', 'handlers', `${props.handler}.ts`),
      handler: 'handler',
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: path.join(PROJECT_ROOT, 'package-lock.json'),
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memoryMb,
      timeout: props.timeout,
      role: this.role,
      logGroup: this.logGroup,
      tracing: lambda.Tracing.ACTIVE,
      loggingFormat: lambda.LoggingFormat.JSON,
      ...(props.network
        ? {
            vpc: props.network.vpc,
            vpcSubnets: { subnets: props.network.subnets },
            securityGroups: props.network.securityGroups,
          }
        : {}),
      environment: {
        [CONFIG_FILE_ENV]: `${LAMBDA_TASK_ROOT}/${BUNDLED_CONFIG_FILE}`,
        POWERTOOLS_SERVICE_NAME: props.serviceName,
        POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
        POWERTOOLS_LOG_LEVEL: 'INFO',
        NODE_OPTIONS: '--enable-source-maps',
        ...props.environment,
      },
      bundling: {
        minify: true,
        sourceMap: true,
        sourcesContent: false,
        target: BUNDLE_TARGET,
        format: nodejs.OutputFormat.CJS,
        forceDockerBundling: false,
        externalModules: [...BUNDLE_EXTERNALS],
        esbuildArgs: {
          '--alias': Object.entries(BUNDLE_ALIASES).map(([from, to]) => `${from}=${to}`),
          ...Object.fromEntries(
            Object.entries(BUNDLE_SUPPORTED).map(([feature, on]) => [`--supported:${feature}`, String(on)]),
          ),
        },
        commandHooks: {
          beforeBundling: () => [],
          beforeInstall: () => [],
          afterBundling: (_inputDir: string, outputDir: string) =>
            copyCommands(outputDir, props.configFile, files),
        },
      },
    });
    // Lambda creates and removes the network interfaces of a VPC function with its role.
    if (props.network) this.allowVpcNetworkInterfaces(props.network);
  }

  /**
   * The EC2 permissions Lambda needs for a VPC function (Lambda developer guide, "Giving Lambda
   * functions access to a VPC": the EC2 actions of the managed policy
   * AWSLambdaVPCAccessExecutionRole, https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSLambdaVPCAccessExecutionRole.html),
   * scoped to the configured subnets and security groups where EC2 allows it.
   */
  private allowVpcNetworkInterfaces(network: NonNullable<StepFunctionProps['network']>): void {
    const stack = this.function.stack;
    const eni = stack.formatArn({ service: 'ec2', resource: 'network-interface', resourceName: '*' });
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'CreateNetworkInterfacesInConfiguredSubnets',
        actions: ['ec2:CreateNetworkInterface'],
        resources: [
          eni,
          ...network.subnets.map((s) =>
            stack.formatArn({ service: 'ec2', resource: 'subnet', resourceName: s.subnetId }),
          ),
          ...network.securityGroups.map((g) =>
            stack.formatArn({ service: 'ec2', resource: 'security-group', resourceName: g.securityGroupId }),
          ),
        ],
      }),
    );
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ManageOwnNetworkInterfaces',
        actions: [
          'ec2:DeleteNetworkInterface',
          'ec2:AssignPrivateIpAddresses',
          'ec2:UnassignPrivateIpAddresses',
        ],
        resources: [eni],
      }),
    );
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'DescribeNetworkInterfaces',
        // EC2 Describe* actions support no resource-level permissions (Service Authorization
        // Reference, Amazon EC2): "*" is the only resource they accept.
        actions: ['ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets'],
        resources: ['*'],
      }),
    );
  }
}
