/**
 * A local driver of the extract leg: Prepare, then every selected extract task the way the state
 * machine runs them — the tasks side by side (the Parallel state), and for a Bulk read the
 * `bulk-pending` → Wait `waitSeconds` → check loop, waiting on `deps.clock` (a test or benchmark
 * passes a clock whose sleep is short). It only sequences the steps: nothing lives here that the
 * state machine would not do, so that statemachine/local.ts can replace it without losing logic.
 */
import type { AthenaLoadOutput, PrepareInput, PrepareOutput, SalesforceExtractLoaded } from './contracts';
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
  let output = await extractSalesforce({ runId, task, full }, deps, options);
  while (output.status === 'bulk-pending') {
    await deps.clock.sleep(output.waitSeconds * 1000);
    output = await checkSalesforceExtract(output, deps, options);
  }
  return output;
}

/**
 * Runs Prepare and the selected extract tasks. Like a Parallel state, every branch runs to its
 * end; when any failed, the first failure (in task order) is thrown after all have settled.
 */
export async function runExtract(
  event: PrepareInput,
  deps: CoreDeps,
  options: RunExtractOptions = {},
): Promise<RunExtractResult> {
  const prepared = await prepare(event, deps, options.prepare);
  const branches = [
    ...prepared.tasks.salesforce.map(async (task) => ({
      kind: 'salesforce' as const,
      task,
      output: await runSalesforceTask(deps, prepared.runId, task, prepared.full, options.salesforce),
    })),
    ...prepared.tasks.athena.map(async (task) => ({
      kind: 'athena' as const,
      task,
      output: await loadAthena({ runId: prepared.runId, task }, deps),
    })),
  ];
  const settled = await Promise.allSettled(branches);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  const result: RunExtractResult = { prepare: prepared, salesforce: {}, athena: {} };
  for (const s of settled) {
    if (s.status !== 'fulfilled') continue;
    if (s.value.kind === 'salesforce') result.salesforce[s.value.task] = s.value.output;
    else result.athena[s.value.task] = s.value.output;
  }
  return result;
}
