/**
 * The roundtrip stack: everything `cdk deploy` creates for one pipeline (DESIGN.md §1 as
 * infrastructure). It is built from a validated pipeline config.
 *
 * What it holds today: the notification topic (encrypted with a customer-managed key,
 * TLS-only, with the config's e-mail subscriptions). The Lambda functions, the state
 * machine, the schedule, the Athena workgroup and the alarms arrive with issue 6; this
 * stack is where they go, and nothing here pretends they exist yet.
 */
import { Stack, type StackProps, CfnOutput, Tags } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';
import type { PipelineConfig } from '../lambdas/config';

/** Props of {@link PipelineStack}. */
export interface PipelineStackProps extends StackProps {
  /** The validated pipeline config (`loadConfig()` / `parseConfig()`). */
  readonly config: PipelineConfig;
}

/** One pipeline's AWS resources. */
export class PipelineStack extends Stack {
  /** Where failures and crossed thresholds are published. */
  readonly notificationTopic: sns.Topic;

  constructor(scope: Construct, id: string, props: PipelineStackProps) {
    super(scope, id, props);
    const { config } = props;
    Tags.of(this).add('roundtrip:pipeline', config.name);

    // CloudWatch alarms can publish only to topics whose key lets CloudWatch use it: an AWS
    // managed key (alias/aws/sns) cannot be given that grant, so the topic gets its own key.
    const topicKey = new kms.Key(this, 'NotificationKey', {
      description: `roundtrip ${config.name}: encrypts the notification topic`,
      enableKeyRotation: true,
    });
    topicKey.grantEncryptDecrypt(new iam.ServicePrincipal('cloudwatch.amazonaws.com'));

    this.notificationTopic = new sns.Topic(this, 'Notifications', {
      displayName: `roundtrip ${config.name}`,
      masterKey: topicKey,
      enforceSSL: true,
    });
    for (const email of config.notifications?.emails ?? []) {
      this.notificationTopic.addSubscription(new subscriptions.EmailSubscription(email));
    }

    new CfnOutput(this, 'NotificationTopicArn', { value: this.notificationTopic.topicArn });
  }
}
