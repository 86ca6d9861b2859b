/**
 * Shared helpers of the infra tests: configs to synthesize, an app with cdk.json's feature flags
 * that skips bundling (the definition, the IAM statements and the alarms do not depend on the
 * bundles; one test bundles for real), and walkers over the synthesized template.
 */
import path from 'node:path';
import { type App, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { parseConfig, type PipelineConfig } from '../../lambdas/config';
import { inProcessApp, type InProcessAppOptions } from '../../lib/cdk-app';
import { PipelineStack } from '../../lib/pipeline-stack';

/** The example's scoring SQL, an existing file for configs that transform. */
export const LEAD_SCORE_SQL = path.resolve(
  __dirname,
  '../../examples/lead-scoring/transforms/lead_score.sql',
);

/** A config with every deployment option set (and no cross-account role). */
export function fullConfig(overrides: Record<string, unknown> = {}): PipelineConfig {
  return parseConfig({
    name: 'full',
    schedule: {
      cron: '30 1 ? * MON-FRI *',
      timezone: 'Europe/Berlin',
      retries: 3,
      maximumEventAgeSeconds: 3600,
    },
    salesforce: { secret: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:rt/salesforce-AbCdEf' },
    athena: {
      database: 'marketing',
      workgroup: 'roundtrip-full',
      createWorkgroup: true,
      resultsExpireDays: 3,
      tables: ['customers', 'orders'],
      dataLocations: ['s3://data-lake/customers/', 's3://data-lake/orders/'],
    },
    postgres: { secret: 'rt/postgres' },
    extract: [
      {
        from: 'salesforce',
        object: 'Lead',
        fields: ['Id', 'Email', 'SystemModstamp', 'IsDeleted'],
        table: 'sf_lead',
      },
      { from: 'salesforce', object: 'Account', fields: ['Id', 'Name'], table: 'sf_account', mode: 'full' },
      { from: 'athena', query: 'SELECT email, lifetime_value FROM customers', table: 'athena_customers' },
    ],
    transform: [LEAD_SCORE_SQL],
    writeback: [
      {
        to: 'salesforce',
        object: 'Lead',
        from: 'lead_reverse',
        mode: 'update',
        fields: { LeadScore__c: 'lead_score' },
      },
      {
        to: 'salesforce',
        object: 'Contact',
        from: 'contacts_out',
        mode: 'upsert',
        key: 'External_Id__c',
        fields: { Email: 'email' },
        maxFailureRate: 0.01,
      },
    ],
    notifications: { emails: ['data-team@example.com', 'oncall@example.com'] },
    deployment: {
      network: {
        vpcId: 'vpc-0a1b2c3d4e5f67890',
        subnetIds: ['subnet-0a1b2c3d4e5f67890', 'subnet-1a1b2c3d4e5f67890'],
        securityGroupIds: ['sg-0a1b2c3d4e5f67890'],
        proxy: {
          url: 'http://proxy.corp.example:3128',
          noProxy: ['.amazonaws.com', '10.0.0.0'],
          credentialsSecret: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:rt/proxy-GhIjKl',
        },
      },
      kmsKeyArn: 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab',
      logRetentionDays: 90,
    },
    ...overrides,
  });
}

/**
 * An app for tests: cdk.json's feature flags, as `cdk synth` has them, so that the tests check
 * what deploys; no CloudFormation validation (DESIGN.md §6); bundling skipped unless asked.
 */
export function newApp(options: InProcessAppOptions = {}): App {
  return inProcessApp(options);
}

/** A synthesized pipeline stack, with cdk-nag's AwsSolutions pack over the app. */
export function synthPipeline(config: PipelineConfig): {
  app: App;
  stack: PipelineStack;
  template: Template;
} {
  const app = newApp();
  const stack = new PipelineStack(app, `roundtrip-${config.name}`, { config });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  app.synth(); // throws on an unacknowledged finding
  return { app, stack, template: Template.fromStack(stack) };
}

/** A policy statement as synthesized. */
export interface Statement {
  readonly Sid?: string;
  readonly Effect: string;
  readonly Action: string | string[];
  readonly Resource: unknown;
  readonly Condition?: Record<string, unknown>;
}

/** The statements of the IAM policies attached to a role (by the role's logical id). */
export function roleStatements(template: Template, roleLogicalId: string): Statement[] {
  const policies = template.findResources('AWS::IAM::Policy');
  return Object.values(policies)
    .filter((p) =>
      ((p.Properties as { Roles: { Ref: string }[] }).Roles ?? []).some((r) => r.Ref === roleLogicalId),
    )
    .flatMap(
      (p) => (p.Properties as { PolicyDocument: { Statement: Statement[] } }).PolicyDocument.Statement,
    );
}

/** The actions of a statement, as a list. */
export function actionsOf(statement: Statement): string[] {
  return Array.isArray(statement.Action) ? statement.Action : [statement.Action];
}

/** The resources of a statement, as a list. */
export function resourcesOf(statement: Statement): unknown[] {
  return Array.isArray(statement.Resource) ? statement.Resource : [statement.Resource];
}
