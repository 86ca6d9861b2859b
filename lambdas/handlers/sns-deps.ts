/**
 * The notifier builder of the handler deps (./deps.ts), in a module of its own so that only the
 * Report function bundles it, and loads the SNS client of the AWS SDK on first use.
 */
import type { PublishCommand as PublishCommandType, SNSClient as SNSClientType } from '@aws-sdk/client-sns';
import type { Notifier } from '../core/deps';
import { HANDLER_ENV, traced, type NotifierBuilder } from './deps';
import { AWS_PROXY_AGENTS } from '../shared/aws-timeouts';

/** SNS messages are at most 256 KB; ours are a few KB, and one is cut well below that. */
export const SNS_MESSAGE_MAX_BYTES = 200_000;

/**
 * An SNS that cannot be reached (a VPC without a NAT gateway or an SNS endpoint) fails the
 * publish in seconds, not at the Report's Lambda timeout: the run's outcome is saved by then, and
 * the Report must still close abandoned runs and prune.
 */
export const SNS_TIMEOUTS = {
  connectionTimeout: 3_000,
  requestTimeout: 5_000,
  throwOnRequestTimeout: true,
  ...AWS_PROXY_AGENTS,
} as const;

/** Attempts of a publish (the SDK's default is 3): with the timeouts, at most about 10 s in all. */
export const SNS_MAX_ATTEMPTS = 2;

/** A message's text within {@link SNS_MESSAGE_MAX_BYTES} of UTF-8. */
export function withinSnsLimit(text: string): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= SNS_MESSAGE_MAX_BYTES) return text;
  // A cut inside a character leaves a replacement character, dropped here.
  return `${bytes
    .subarray(0, SNS_MESSAGE_MAX_BYTES)
    .toString('utf8')
    .replace(/\uFFFD$/, '')}\n…`;
}

/**
 * Publishes to the topic `ROUNDTRIP_NOTIFICATION_TOPIC_ARN` names (the stack's notification
 * topic, where the e-mail subscriptions are); no notifier when it is not set (a local run).
 * `AWS_ENDPOINT_URL_SNS` in the same environment points the client elsewhere.
 */
export const snsNotifier: NotifierBuilder = ({ env }): Notifier | undefined => {
  const topicArn = env[HANDLER_ENV.notificationTopicArn];
  if (!topicArn) return undefined;
  const endpoint = env.AWS_ENDPOINT_URL_SNS;
  let sns: Promise<{ client: SNSClientType; PublishCommand: typeof PublishCommandType }> | undefined;
  return {
    async publish(message) {
      sns ??= import('@aws-sdk/client-sns').then(({ SNSClient, PublishCommand }) => ({
        client: traced(
          new SNSClient({
            ...(endpoint ? { endpoint } : {}),
            // (`throwOnRequestTimeout`: without it the SDK only warns when the answer is late.)
            requestHandler: SNS_TIMEOUTS,
            maxAttempts: SNS_MAX_ATTEMPTS,
          }),
        ),
        PublishCommand,
      }));
      const { client, PublishCommand } = await sns;
      await client.send(
        new PublishCommand({
          TopicArn: topicArn,
          Subject: message.subject,
          Message: withinSnsLimit(message.text),
        }),
      );
    },
  };
};
