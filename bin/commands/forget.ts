/**
 * `roundtrip forget --task NAME [--yes]`: starts a task over. Deletes what the database holds for
 * it apart from the per-run history (lambdas/core/task-state.ts): a write-back task's sync state
 * and sync scope, an extract task's watermark, in one transaction under the task's lock; of the
 * history, only what later runs would read as the task's own (its resolved INSERT_OUTCOME_UNKNOWN
 * marks, the keys its runs held back). Without
 * `--yes` it says what it would delete and deletes nothing. Refused while the task has records
 * whose outcome is unknown, and when the database knows no task of that name (bad input).
 *
 * For a task whose object or key changed (the plan's SyncScopeChangedError), and for a task
 * renamed or removed from the config whose state `roundtrip status` lists.
 */
import type { PipelineConfig } from '../../lambdas/config';
import {
  forgetCommand,
  forgetTask,
  insertsAgain,
  renameTaskCommand,
  STREAK_ROWS_WHY,
  type ForgetOutcome,
  type TaskState,
  type WriteOperation,
} from '../../lambdas/core/task-state';
import {
  databaseOptionsGiven,
  EXIT,
  parseOptions,
  passwordBack,
  UsageError,
  type Command,
} from '../cli-common';
import {
  count,
  lastRunText,
  outcomesUnknownLines,
  resolveOutcomesFirst,
  scopeText,
} from '../local/task-state-text';
import { closeGoneRuns } from './run';
import { DATABASE_OPTIONS, runsDatabase } from './status';

/** What `forget` never deletes, as its output says. */
export const FORGET_KEEPS =
  'the per-run history (roundtrip.runs, the ledger writeback_plans and writeback_plan_pages, writeback_jobs, ' +
  "writeback_errors, extract_jobs: roundtrip status and errors still show the task's runs) and the task's name in " +
  'roundtrip.task_owners';

/** Why a forget deletes the task's resolved INSERT_OUTCOME_UNKNOWN marks (lambdas/core/task-state.ts). */
const MARKS_WHY =
  'resolved INSERT_OUTCOME_UNKNOWN marks of an earlier push (their Salesforce Ids are in the sync state: without it, ' +
  'every later plan would hold those keys back for ever)';

/**
 * What forgetting an insert task's synced records means, said before they are deleted: its next
 * run inserts each of them again.
 */
function insertAgainText(
  task: string,
  state: TaskState,
  named: boolean,
  given: { options: string; note: string },
): string {
  const unless =
    'and Salesforce holds each twice, unless you deleted them there or the task now writes another object';
  if (named) {
    return (
      `task ${task} inserts records: with its sync state gone, its next run inserts the ${count(state.syncedRecords, 'record')} ` +
      `it inserted already again, ${unless}`
    );
  }
  // Not named in the config: renamed (the plan of the new name is refused while this state is
  // kept, writeback/scope.ts checkRenamedTask) or removed.
  return (
    `task ${task}, which the config no longer names, inserted ${count(state.syncedRecords, 'record')}${state.syncScope ? ` into ${state.syncScope.object}` : ''}: ` +
    `with its sync state gone, a task of that object named ${task} again, or the task it was renamed to, inserts each of them again, ` +
    `${unless}. If the task was renamed, carry its state to the new name instead: ${renameTaskCommand(task, 'NEW', given.options)}${given.note}`
  );
}

/** The task's mode as the config names it now, if it names it as a write-back. */
function configuredModeOf(config: PipelineConfig, task: string): WriteOperation | undefined {
  return config.writeback.find((t) => t.name === task)?.mode;
}

/** Where the config names the task (`writeback[0]`), if it does. */
export function configPathOf(config: PipelineConfig, task: string): string | undefined {
  const w = config.writeback.findIndex((t) => t.name === task);
  if (w >= 0) return `writeback[${w}]`;
  const e = config.extract.findIndex((t) => t.name === task);
  return e >= 0 ? `extract[${e}]` : undefined;
}

/** The task as the output introduces it: where the config names it, and its last run. */
function taskHeading(config: PipelineConfig, state: TaskState): string {
  const where = configPathOf(config, state.task);
  return `task ${state.task} (${where ? `named in the config as ${where}` : 'not named in the config'}; ${lastRunText(state.lastRun)})`;
}

function json(outcome: ForgetOutcome, config: PipelineConfig, task: string): Record<string, unknown> {
  const base = { pipeline: config.name, task };
  switch (outcome.kind) {
    case 'busy':
      return { ...base, deleted: false, refused: outcome.holder === 'task-lock' ? 'busy' : 'runStepGoingOn' };
    case 'insert-again':
      return { ...base, deleted: false, refused: 'insertAgain', syncState: outcome.state.syncedRecords };
    case 'outcomes-unknown':
      return {
        ...base,
        deleted: false,
        refused: 'outcomesUnknown',
        outcomesUnknown: outcome.outcomesUnknown,
      };
    case 'forgotten':
      return {
        ...base,
        deleted: outcome.deleted,
        syncState: outcome.syncState,
        syncScope: outcome.syncScope,
        watermark: outcome.watermark,
        resolvedMarks: outcome.resolvedMarks,
        heldBack: outcome.heldBack,
        lastRun: outcome.state.lastRun ?? null,
        kept: FORGET_KEEPS,
      };
    default:
      return base;
  }
}

/** `roundtrip forget`: see the module comment. */
export const forget: Command = async (argv) => {
  const { values } = parseOptions(argv, {
    ...DATABASE_OPTIONS,
    task: { type: 'string' },
    yes: { type: 'boolean' },
    'insert-again': { type: 'boolean' },
    json: { type: 'boolean' },
  });
  if (typeof values.task !== 'string' || values.task.trim() === '') {
    throw new UsageError('--task NAME is required: the task to start over (as roundtrip status names it)');
  }
  const task = values.task;
  const apply = values.yes === true;
  // The commands it names, with the options that named this pipeline and database.
  const given = databaseOptionsGiven(values);
  const { config, pool } = await runsDatabase(values, { command: 'forget' });
  try {
    await closeGoneRuns(pool, config, 'roundtrip forget', { given });
    const configuredMode = configuredModeOf(config, task);
    const outcome = await forgetTask(pool, config.name, task, {
      apply,
      ...(configuredMode ? { configuredMode } : {}),
      insertAgain: values['insert-again'] === true,
    });
    if (outcome.kind === 'unknown') {
      throw new UsageError(
        `--task: the database knows no task ${task} of pipeline ${config.name} (no sync state, sync scope, ` +
          `watermark, claim in roundtrip.task_owners or run of it): nothing to forget. Task names are ` +
          `case-sensitive; roundtrip status lists the tasks the config no longer names that still have state`,
        { showUsage: false },
      );
    }
    if (outcome.kind === 'other-pipeline') {
      throw new UsageError(
        `--task: task ${task} belongs to pipeline ${outcome.owner} in this database (roundtrip.task_owners), ` +
          `not to ${config.name}: its state is not this pipeline's to delete (run forget with that pipeline's --config)`,
        { showUsage: false },
      );
    }
    if (values.json === true) process.stdout.write(`${JSON.stringify(json(outcome, config, task))}\n`);
    if (outcome.kind === 'busy') {
      process.stderr.write(
        outcome.holder === 'task-lock'
          ? `roundtrip forget: a push, collect or plan of task ${task} holds its lock (a run going on): nothing deleted; ` +
              `run forget again once it has ended (roundtrip status shows the runs)\n`
          : `roundtrip forget: a step of a run of pipeline ${config.name} still going is writing (a plan, say, which reads ` +
              `the sync state this would delete): nothing deleted; run forget again once it has ended (roundtrip status shows the runs)\n`,
      );
      return EXIT.failed;
    }
    if (outcome.kind === 'insert-again') {
      process.stderr.write(
        `roundtrip forget: refused: ${insertAgainText(task, outcome.state, configuredMode !== undefined, given)}. Nothing deleted. ` +
          `If that is what you want, run it again with --insert-again beside --yes.\n`,
      );
      return EXIT.badInput;
    }
    if (outcome.kind === 'outcomes-unknown') {
      const unknown = outcome.outcomesUnknown;
      const why =
        unknown.records > 0
          ? `has ${count(unknown.records, 'record')} whose outcome is unknown: with its sync state gone, the next ` +
            `plan would send them again, and an insert Salesforce did carry out would be inserted twice`
          : `was planned by a run still running: its push and collect, still to come, would record what they send ` +
            `in the sync state this deletes`;
      process.stderr.write(
        [
          `roundtrip forget: refused: task ${task} ${why}. Nothing deleted.`,
          ...outcomesUnknownLines(unknown).map((l) => `  ${l}`),
          resolveOutcomesFirst(unknown, task, outcome.state, given.options) + passwordBack(given),
          '',
        ].join('\n'),
      );
      return EXIT.failed;
    }
    if (values.json === true) return EXIT.ok;
    const { state } = outcome;
    const scope = state.syncScope ? ` (${scopeText(state.syncScope)})` : '';
    const watermark = state.watermark
      ? ` (watermark ${state.watermark.watermark ?? 'none'}, ${count(state.watermark.rowsTotal, 'row')} loaded in all)`
      : '';
    const lines = [
      `${taskHeading(config, state)}${outcome.deleted ? ': deleted, in one transaction' : ': would delete'}`,
      `  roundtrip.sync_state     ${count(outcome.syncState, 'synced record')}`,
      `  roundtrip.sync_scope     ${count(outcome.syncScope, 'row')}${scope}`,
      `  roundtrip.extract_state  ${count(outcome.watermark, 'row')}${watermark}`,
      ...(outcome.resolvedMarks > 0
        ? [`  roundtrip.writeback_errors  ${count(outcome.resolvedMarks, 'row')}: ${MARKS_WHY}`]
        : []),
      ...(outcome.heldBack.errors > 0
        ? [`  roundtrip.writeback_errors  ${count(outcome.heldBack.errors, 'row')}: ${STREAK_ROWS_WHY}`]
        : []),
      ...(outcome.heldBack.ledgerRows > 0
        ? [
            `  roundtrip.writeback_plans   ${count(outcome.heldBack.ledgerRows, 'row')}: the held_back ledger rows of those keys ` +
              `that runs whose details were pruned kept for it`,
          ]
        : []),
    ];
    const historyDeleted = outcome.resolvedMarks + outcome.heldBack.errors + outcome.heldBack.ledgerRows > 0;
    const starts = [
      outcome.syncState > 0 || outcome.syncScope > 0 ? 'its next plan sends every record once' : undefined,
      outcome.watermark > 0 ? 'its next read is a full one' : undefined,
    ].filter(Boolean);
    const next =
      starts.length === 0
        ? ''
        : configPathOf(config, task)
          ? ` The task starts over: ${starts.join(', and ')}.`
          : ` The config does not name the task: named again, it starts over (${starts.join(', and ')}${
              state.lastOperation === 'insert' && outcome.syncState > 0
                ? `; an insert task, as its latest plan was: it would insert the ${count(outcome.syncState, 'record')} it inserted already again`
                : ''
            }).`;
    if (!outcome.deleted && insertsAgain(state, configuredMode)) {
      lines.push(
        `Mind: ${insertAgainText(task, state, configuredMode !== undefined, given)}; --yes needs --insert-again beside it for this task.`,
      );
    }
    lines.push(
      outcome.deleted
        ? `Done.${next}`
        : `Nothing deleted (a dry run): ${forgetCommand(task, { insertAgain: insertsAgain(state, configuredMode), given: given.options })}${given.note} deletes them.${next}`,
    );
    lines.push(`Kept: ${FORGET_KEEPS}${historyDeleted ? ' (but for the rows above)' : ''}.`);
    process.stdout.write(`${lines.join('\n')}\n`);
    return EXIT.ok;
  } finally {
    await pool.end();
  }
};
