/**
 * Athena's idempotency tokens, in a module of their own: the Athena load imports them at module
 * initialisation, and this file loads no AWS SDK client (those load on first use).
 */
import { createHash } from 'node:crypto';

/** `ClientRequestToken` length bounds (32–128, https://docs.aws.amazon.com/athena/latest/APIReference/API_StartQueryExecution.html). */
export const ATHENA_CLIENT_REQUEST_TOKEN_MIN_LENGTH = 32;
export const ATHENA_CLIENT_REQUEST_TOKEN_MAX_LENGTH = 128;

/**
 * Queries of one run and task roundtrip runs at most: the first and up to 3 reruns after failures
 * Athena marks `Retryable`. Then the failure is final, so that a step retried without end does not
 * start queries without end. The same bound holds for the local path (lambdas/core/extract-athena.ts)
 * and for the state machine's native query (statemachine/definition.ts).
 */
export const ATHENA_MAX_QUERIES_PER_TASK = 4;

/**
 * The client request token of a run's query task: the same run and task always give the same
 * token, so a step that Step Functions retries gets the query it already started instead of
 * running it twice (Athena returns the same execution id for the same token). `generation` n > 0
 * names the n-th rerun after executions that failed with a retryable error: the same token would
 * only give the failed execution back, so a rerun needs a token of its own — and still one that a
 * retried step finds again.
 */
export function clientRequestTokenFor(runId: string, task: string, generation = 0): string {
  const text = `roundtrip\0${runId}\0${task}${generation > 0 ? `\0${generation}` : ''}`;
  return createHash('sha256').update(text).digest('hex');
}
