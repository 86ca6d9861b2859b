/**
 * How `roundtrip forget` and `roundtrip status` tell of a task's state (lambdas/core/task-state.ts):
 * its sync scope, its records whose outcome is unknown, and what to do about those.
 */
import type { OutcomesUnknown, RecordedSyncScope } from '../../lambdas/core/task-state';

/** `3 records`, `1 record`. */
export function count(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;
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
      (runId) => `run ${runId} is still running and planned the task: its push and collect are still to come`,
    ),
  ];
}

/** What to do before a task with records of unknown outcome (or planned by a run still going) can be forgotten. */
export function resolveOutcomesFirst(unknown: OutcomesUnknown): string {
  const steps: string[] = [];
  if (unknown.records > 0) {
    steps.push(
      'Let a plan of the task resolve them first: run the pipeline with the task configured as it was when they ' +
        'were sent (same name, object and key: a plan refused for a changed object or key resolves nothing); its plan ' +
        'looks inserts up by their external ID and collects the Bulk jobs Salesforce has finished (roundtrip errors ' +
        'lists what it still holds back). An insert no plan can look up (its task without an external-ID key, sent by a ' +
        'call or in a Bulk job Salesforce no longer answers for) is recorded with roundtrip resolve --task NAME --key KEY, ' +
        'once you looked for it in Salesforce.',
    );
  }
  if (unknown.runningPlans.length > 0) {
    steps.push('Wait for the run still running to end (roundtrip status shows it).');
  }
  return steps.join(' ');
}
