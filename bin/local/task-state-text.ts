/**
 * How `roundtrip forget` and `roundtrip status` tell of a task's state (lambdas/core/task-state.ts):
 * its sync scope, its records whose outcome is unknown, and what to do about those.
 */
import type { OutcomesUnknown, RecordedSyncScope, TaskLastRun } from '../../lambdas/core/task-state';
import { WITHOUT_LOOK_UP_OPTION } from '../../lambdas/core/writeback/resolve';
import { shellOption } from '../../lambdas/shared/shell';

/** `3 records`, `1 record`. */
export function count(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;
}

/** `last run 20250601T020000Z-1a2b3c4d (failed, started 2025-06-01 02:00:00 UTC)`, or that there is none. */
export function lastRunText(run: TaskLastRun | undefined): string {
  return run
    ? `last run ${run.runId} (${run.status}, started ${run.startedAt.toISOString().replace('T', ' ').slice(0, 19)} UTC)`
    : 'no run of it recorded';
}

/** `Lead by External_Id__c, keys from column ext`. */
export function scopeText(scope: RecordedSyncScope): string {
  return (
    `${scope.object} ${scope.keyField ? `by ${scope.keyField}` : 'without a key field'}` +
    (scope.keyColumn ? `, keys from column ${scope.keyColumn}` : '')
  );
}

/** Lines naming the records whose outcome is unknown, by run, with a sample of their keys. */
export function outcomesUnknownLines(unknown: OutcomesUnknown): string[] {
  const keys = (sample: readonly string[], n: number): string =>
    `${sample.join(', ')}${n > sample.length ? ', …' : ''}`;
  return [
    ...unknown.sent.map(
      (r) =>
        `run ${r.runId}${r.runStatus ? ` (${r.runStatus})` : ''}: ${count(r.records, 'record')} sent whose result was never recorded (roundtrip.writeback_plans, status sent): ${keys(r.sample, r.records)}`,
    ),
    ...unknown.insertOutcomeUnknown.map(
      (r) =>
        `run ${r.runId}${r.runStatus ? ` (${r.runStatus})` : ''}: ${count(r.records, 'insert key')} held back as INSERT_OUTCOME_UNKNOWN and not resolved since: ${keys(r.sample, r.records)}`,
    ),
    ...unknown.runningPlans.map(
      (runId) =>
        `run ${runId} is still recorded as running and planned the task: its push and collect are still to come`,
    ),
  ];
}

/**
 * What to do before a task with records of unknown outcome (or planned by a run still going) can be
 * forgotten, the step that applies first:
 * - runs still recorded as running that sent them (or planned the task): nothing resolves their
 *   records before they have ended, so ending them comes first (`roundtrip status --end-run` when
 *   their process is gone);
 * - an insert task without an external-ID key (`state`: its sync scope has no key field): no plan
 *   can look its records up, so they are recorded by hand with `roundtrip resolve`;
 * - otherwise a plan of the task resolves what it can look up (the config must name it as it was),
 *   and `roundtrip resolve` records the inserts no plan can look up, the task in the config or not.
 *
 * `given`: the options that name the pipeline and its database as the command line gave them
 * (bin/cli-common.ts databaseOptionsGiven), repeated in each command named, so that it can be
 * pasted as is.
 */
export function resolveOutcomesFirst(
  unknown: OutcomesUnknown,
  task: string,
  state?: { readonly syncScope: RecordedSyncScope | undefined; readonly lastOperation: string | undefined },
  given = '',
): string {
  const taskOption = `${shellOption('--task', task)}${given}`;
  const steps: string[] = [];
  const running = [
    ...new Set([
      ...unknown.sent.filter((r) => r.runStatus === 'running').map((r) => r.runId),
      ...unknown.insertOutcomeUnknown.filter((r) => r.runStatus === 'running').map((r) => r.runId),
      ...unknown.runningPlans,
    ]),
  ].sort();
  if (running.length > 0) {
    const one = running.length === 1;
    steps.push(
      `${one ? 'Run' : 'Runs'} ${running.join(', ')} ${one ? 'is' : 'are'} still recorded as running and must end first ` +
        `(roundtrip status shows ${one ? 'it' : 'them'}): ${one ? 'its' : 'their'} push and collect may still record ` +
        `outcomes. If ${one ? 'its process is' : 'the process of one is'} gone (killed, its machine shut down), roundtrip ` +
        `status --end-run ${one ? (running[0] as string) : 'RUN_ID'}${given} ends it; a run of this machine whose process is gone ` +
        `is ended by the next run, status or resolve here.`,
    );
  }
  const keyless =
    state?.lastOperation === 'insert' && state.syncScope !== undefined && state.syncScope.keyField === null;
  if (unknown.records > 0 && keyless) {
    steps.push(
      `${running.length > 0 ? 'Then record' : 'Record'} them by hand: the task inserts without an external-ID key, so no ` +
        `plan can look them up. Find each record in Salesforce, then run roundtrip resolve ${taskOption} ` +
        `--key KEY --inserted ID (or --not-inserted when there is none), or record them all at once with roundtrip ` +
        `resolve ${taskOption} --file outcomes.csv (a line key,salesforce_id each, the Id empty for not ` +
        `inserted); roundtrip errors ${taskOption} --code INSERT_OUTCOME_UNKNOWN lists the keys the latest ` +
        `run held back. Records sent in a Bulk job their run never collected: roundtrip resolve ` +
        `${taskOption} --collect-jobs collects each job once ` +
        "Salesforce has finished it, recording every key's outcome from its results.",
    );
    return steps.join(' ');
  }
  if (unknown.sent.length > 0) {
    steps.push(
      `${running.length > 0 ? 'Then let a plan of the task resolve them' : 'Let a plan of the task resolve them first'}: run the pipeline with the task configured as it was when they ` +
        'were sent (same name, object and key: a plan refused for a changed object or key resolves nothing); its plan ' +
        'looks inserts up by their external ID and collects the Bulk jobs Salesforce has finished (roundtrip errors ' +
        'lists what it still holds back). Records sent in an insert Bulk job their run never collected, when no plan ' +
        "can collect it (the task's object or key changed in the config, or the config no longer names it): " +
        `roundtrip resolve ${taskOption} --collect-jobs asks ` +
        "Salesforce about each such job and collects it once finished, recording every key's outcome from its results.",
    );
  }
  if (unknown.records > 0) {
    steps.push(
      `An insert no plan can look up (its task without an external-ID key, sent by a call or in a Bulk job Salesforce ` +
        `no longer answers for; those held back as INSERT_OUTCOME_UNKNOWN) is recorded with roundtrip resolve ` +
        `${taskOption} --key KEY --inserted ID (or --not-inserted), once you looked for it in Salesforce, whether ` +
        `or not the config still names the task; so is one of a task with an external-ID key that no plan can look up, ` +
        `with ${WITHOUT_LOOK_UP_OPTION} added (Salesforce refuses the look-up, the task's object or key changed in the ` +
        `config, or the config no longer names it and it cannot be named as it was).`,
    );
  }
  return steps.join(' ');
}
