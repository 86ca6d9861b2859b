/**
 * Athena's idempotency tokens, in a module of their own: the Athena load imports them at module
 * initialisation, and this file loads no AWS SDK client (those load on first use).
 */
import { createHash } from 'node:crypto';

/** `ClientRequestToken` length bounds (32–128, https://docs.aws.amazon.com/athena/latest/APIReference/API_StartQueryExecution.html). */
export const ATHENA_CLIENT_REQUEST_TOKEN_MIN_LENGTH = 32;
export const ATHENA_CLIENT_REQUEST_TOKEN_MAX_LENGTH = 128;

/**
 * The client request token of a run's query task: the same run and task always give the same
 * token, so a step that Step Functions retries gets the query it already started instead of
 * running it twice (Athena returns the same execution id for the same token).
 */
export function clientRequestTokenFor(runId: string, task: string): string {
  return createHash('sha256').update(`roundtrip\0${runId}\0${task}`).digest('hex');
}
