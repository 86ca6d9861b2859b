/**
 * Time limits of the AWS SDK clients (the `requestHandler` options of `@smithy/node-http-handler`,
 * which every SDK v3 client uses in Node), shared by the handlers and the local runner. An
 * endpoint that cannot be reached (a VPC with neither a NAT gateway nor an interface endpoint for
 * it) or that accepts a call and never answers fails it with the SDK's `TimeoutError`, which the
 * connectors classify as transient and which names the service, instead of holding the step until
 * its Lambda timeout (`States.Timeout`, which says nothing of why and is not retried).
 *
 * In this version of the handler, `requestTimeout` bounds the wait for an answer to begin (its
 * timer stops when the status and headers arrive), so it never cuts a long body read;
 * `throwOnRequestTimeout`: without it the SDK only logs a warning when an answer is late. A body
 * that stops mid-stream is the reader's to bound (the Athena connector's `s3IdleMs`): the SDK's
 * `socketTimeout` would also count the pauses of a reader that is busy elsewhere.
 */
import { awsProxyAgents } from './proxy';

/**
 * The agents of every AWS SDK client when the environment names a proxy at start (a laptop behind
 * a corporate proxy: the SDK itself reads no proxy variable), through which the calls go in a
 * `CONNECT` tunnel, but to this machine's hosts and those `NO_PROXY` names (lambdas/shared/proxy.ts);
 * none in a Lambda, which keeps the SDK's own.
 */
export const AWS_PROXY_AGENTS = awsProxyAgents();

/** Secrets Manager, Athena, STS, Step Functions: 5 s to connect, 30 s for an answer to begin. */
export const AWS_API_TIMEOUTS = {
  connectionTimeout: 5_000,
  requestTimeout: 30_000,
  throwOnRequestTimeout: true,
  ...AWS_PROXY_AGENTS,
} as const;

/**
 * S3 (GetObject of Athena's result file): the same. The body is then streamed into COPY and may
 * pause while the database catches up; the 30 s do not run during it.
 */
export const S3_TIMEOUTS = AWS_API_TIMEOUTS;
