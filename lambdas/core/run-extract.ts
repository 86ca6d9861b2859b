/**
 * A local driver of the extract leg: Prepare, then every selected extract task the way the state
 * machine runs them — every branch of the Parallel state, and for a Bulk read the
 * `bulk-pending` → Wait `waitSeconds` → check loop, waiting on `deps.clock` (a test or benchmark
 * passes a clock whose sleep is short). It only sequences the steps: nothing lives here that the
 * state machine would not do, so that statemachine/local.ts can replace it without losing logic.
 */
import {
  checkStepOutput,
  SalesforceExtractCheckInput,
  SalesforceExtractOutput,
  type AthenaLoadOutput,
  type PrepareInput,
  type PrepareOutput,
  type SalesforceExtractLoaded,
} from './contracts';
import type { CoreDeps } from './deps';
import { loadAthena } from './extract-athena';
import {
  checkSalesforceExtract,
  extractSalesforce,
  type SalesforceExtractOptions,
} from './extract-salesforce';
import { prepare, type PrepareOptions } from './prepare';

/** Options of {@link runExtract}. */
export interface RunExtractOptions {
  readonly prepare?: PrepareOptions;
  readonly salesforce?: SalesforceExtractOptions;
}

/** What {@link runExtract} did. */
export interface RunExtractResult {
  readonly prepare: PrepareOutput;
  readonly salesforce: Record<string, SalesforceExtractLoaded>;
  readonly athena: Record<string, AthenaLoadOutput>;
}

/** One Salesforce extract task to the end: the start step, then checks until loaded. */
export async function runSalesforceTask(
  deps: CoreDeps,
  runId: string,
  task: string,
  full: boolean,
  options: SalesforceExtractOptions = {},
): Promise<SalesforceExtractLoaded> {
  // Each output checked against the contract the state machine hands on (checkStepOutput).
  let output = checkStepOutput(
    'ExtractSalesforce',
    SalesforceExtractOutput,
    await extractSalesforce({ runId, task, full }, deps, options),
  );
  while (output.status === 'bulk-pending') {
    const pending = checkStepOutput('ExtractSalesforce', SalesforceExtractCheckInput, output);
    await deps.clock.sleep(pending.waitSeconds * 1000);
    output = checkStepOutput(
      'CheckSalesforceExtract',
      SalesforceExtractOutput,
      await checkSalesforceExtract(pending, deps, options),
    );
  }
  return output;
}

/**
 * Runs Prepare and the selected extract tasks. Like the Parallel state, every branch runs to its
 * end even when another failed, and the first failure (in task order) is thrown afterwards. The
 * branches run one after another, not side by side: each step reports its API calls as the
 * change of its connector's counters, which is exact when one step at a time uses a connector —
 * as in Lambda, where each invocation has its own container.
 */
export async function runExtract(
  event: PrepareInput,
  deps: CoreDeps,
  options: RunExtractOptions = {},
): Promise<RunExtractResult> {
  const prepared = await prepare(event, deps, options.prepare);
  const result: RunExtractResult = { prepare: prepared, salesforce: {}, athena: {} };
  const failures: unknown[] = [];
  for (const task of prepared.tasks.salesforce) {
    try {
      result.salesforce[task] = await runSalesforceTask(
        deps,
        prepared.runId,
        task,
        prepared.full,
        options.salesforce,
      );
    } catch (err) {
      failures.push(err);
    }
  }
  for (const task of prepared.tasks.athena) {
    try {
      result.athena[task] = await loadAthena({ runId: prepared.runId, task }, deps);
    } catch (err) {
      failures.push(err);
    }
  }
  if (failures.length > 0) throw failures[0];
  return result;
}
