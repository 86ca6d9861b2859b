/**
 * `roundtrip rename-task --from OLD --to NEW [--yes]`: carries a task's state to a new name, for a
 * task renamed in the config (a `name` given or changed, or a `mode` changed under a default name)
 * that should go on where it was rather than start over: a task's state is kept by its name, so the
 * renamed task would otherwise send every record once (an insert, insert each again: its plan is
 * refused, writeback/scope.ts checkRenamedTask). Moves, in one transaction under both tasks' locks
 * (lambdas/core/task-state.ts renameTask), OLD's sync state, sync scope and watermark (and its
 * resolved INSERT_OUTCOME_UNKNOWN marks) to NEW, and claims NEW for the pipeline. Without `--yes`
 * it says what it would carry and changes nothing, as forget does. Refused while OLD has records
 * whose outcome is unknown or a run still going planned it (their outcomes would land under the old
 * name), while NEW has state of its own, and while the config still names OLD (its next run would
 * start over under that name).
 */
import { TASK_NAME } from '../../lambdas/config/schema';
import { renameTask, renameTaskCommand, type RenameOutcome } from '../../lambdas/core/task-state';
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
import { configPathOf } from './forget';
import { closeGoneRuns } from './run';
import { DATABASE_OPTIONS, runsDatabase } from './status';

function json(outcome: RenameOutcome, pipeline: string, from: string, to: string): Record<string, unknown> {
  const base = { pipeline, from, to };
  switch (outcome.kind) {
    case 'busy':
      return { ...base, moved: false, refused: outcome.holder === 'task-lock' ? 'busy' : 'runStepGoingOn' };
    case 'outcomes-unknown':
      return { ...base, moved: false, refused: 'outcomesUnknown', outcomesUnknown: outcome.outcomesUnknown };
    case 'to-has-state':
      return { ...base, moved: false, refused: 'toHasState', toSyncState: outcome.to.syncedRecords };
    case 'renamed':
      return {
        ...base,
        moved: outcome.moved,
        syncState: outcome.syncState,
        syncScope: outcome.syncScope,
        watermark: outcome.watermark,
        resolvedMarks: outcome.resolvedMarks,
      };
    default:
      return base;
  }
}

/** `roundtrip rename-task`: see the module comment. */
export const renameTaskCli: Command = async (argv) => {
  const { values } = parseOptions(argv, {
    ...DATABASE_OPTIONS,
    from: { type: 'string' },
    to: { type: 'string' },
    yes: { type: 'boolean' },
    json: { type: 'boolean' },
  });
  if (typeof values.from !== 'string' || values.from.trim() === '') {
    throw new UsageError('--from OLD is required: the name the task had (as roundtrip status names it)');
  }
  if (typeof values.to !== 'string' || values.to.trim() === '') {
    throw new UsageError('--to NEW is required: the name the config gives the task now');
  }
  const from = values.from;
  const to = values.to;
  if (!TASK_NAME.test(to)) {
    throw new UsageError(
      `--to: "${to}" is not a task name: a letter, then up to 63 letters, digits, "_", "." or "-"`,
    );
  }
  if (from === to) throw new UsageError(`--from and --to name the same task ${from}: nothing to carry`);
  const apply = values.yes === true;
  const { config, pool } = await runsDatabase(values, { command: 'rename-task' });
  // The commands it names, with the options that named this pipeline and database.
  const given = databaseOptionsGiven(values);
  try {
    const stillNamed = configPathOf(config, from);
    if (stillNamed) {
      throw new UsageError(
        `--from: the config still names task ${from} (${stillNamed}): rename it in the config first ` +
          `(${stillNamed}.name: '${to}'), then carry its state over; moved while the config names it, its next run ` +
          `would start over under that name`,
        { showUsage: false },
      );
    }
    // A name the config does not give any task (a typo, say) would move the state where no task
    // reads it, and the renamed task would start over all the same.
    const toPath = configPathOf(config, to);
    if (!toPath) {
      const names = [...config.extract, ...config.writeback].map((t) => t.name);
      throw new UsageError(
        `--to: the config names no task ${to} (its tasks: ${names.join(', ') || 'none'}): give the renamed ` +
          `task that name in the config first, or name the one it has; task names are case-sensitive`,
        { showUsage: false },
      );
    }
    await closeGoneRuns(pool, config, 'roundtrip rename-task', { given });
    const outcome = await renameTask(pool, config.name, from, to, { apply });
    switch (outcome.kind) {
      case 'unknown':
        throw new UsageError(
          `--from: the database knows no task ${from} of pipeline ${config.name} (no sync state, sync scope, ` +
            `watermark, claim in roundtrip.task_owners or run of it). Task names are case-sensitive; roundtrip status ` +
            `lists the tasks the config no longer names that still have state`,
          { showUsage: false },
        );
      case 'no-state':
        throw new UsageError(
          `--from: task ${from} of pipeline ${config.name} holds no state to carry (no sync state, sync scope or ` +
            `watermark; ${lastRunText(outcome.state?.lastRun)}): ${to} starts as it would anyway`,
          { showUsage: false },
        );
      case 'other-pipeline':
      case 'to-other-pipeline':
        throw new UsageError(
          `--${outcome.kind === 'other-pipeline' ? 'from' : 'to'}: task ${outcome.kind === 'other-pipeline' ? from : to} ` +
            `belongs to pipeline ${outcome.owner} in this database (roundtrip.task_owners), not to ${config.name}`,
          { showUsage: false },
        );
      default:
        break;
    }
    if (values.json === true)
      process.stdout.write(`${JSON.stringify(json(outcome, config.name, from, to))}\n`);
    if (outcome.kind === 'busy') {
      process.stderr.write(
        outcome.holder === 'task-lock'
          ? `roundtrip rename-task: a push, collect or plan of task ${from} or ${to} holds its lock (a run going on): nothing moved; ` +
              `run it again once that run has ended (roundtrip status shows the runs)\n`
          : `roundtrip rename-task: a step of a run of pipeline ${config.name} still going is writing (a plan, say, which reads ` +
              `the sync state this would move): nothing moved; run it again once it has ended (roundtrip status shows the runs)\n`,
      );
      return EXIT.failed;
    }
    if (outcome.kind === 'to-has-state') {
      const t = outcome.to;
      const held = [
        t.syncedRecords > 0 || t.syncScope
          ? `${count(t.syncedRecords, 'synced record')}${t.syncScope ? ` (${scopeText(t.syncScope)})` : ''}`
          : undefined,
        t.watermark ? 'a watermark' : undefined,
        outcome.outcomesUnknown.records > 0
          ? `${count(outcome.outcomesUnknown.records, 'record')} whose outcome is unknown`
          : undefined,
        outcome.outcomesUnknown.runningPlans.length > 0 ? 'a plan of a run still running' : undefined,
      ].filter(Boolean);
      process.stderr.write(
        `roundtrip rename-task: refused: task ${to} has state of its own (${held.join(', ')}; ${lastRunText(t.lastRun)}): ` +
          `carried over, ${from}'s would mix with it. Nothing moved. If ${to} ran already under its new name, its state is ` +
          `what it synced since: keep it (roundtrip status lists ${from}, with what its state means and what to do with it)\n`,
      );
      return EXIT.failed;
    }
    if (outcome.kind === 'outcomes-unknown') {
      const unknown = outcome.outcomesUnknown;
      process.stderr.write(
        [
          `roundtrip rename-task: refused: task ${from} ${
            unknown.records > 0
              ? `has ${count(unknown.records, 'record')} whose outcome is unknown: their outcomes would be recorded under ${from}, after its state moved to ${to}`
              : `was planned by a run still running: its push and collect, still to come, would record what they send under ${from}`
          }. Nothing moved.`,
          ...outcomesUnknownLines(unknown).map((l) => `  ${l}`),
          resolveOutcomesFirst(unknown, from, outcome.state, given.options) + passwordBack(given),
          `Then ${renameTaskCommand(from, to, given.options)}${given.note}.`,
          '',
        ].join('\n'),
      );
      return EXIT.failed;
    }
    if (values.json === true) return EXIT.ok;
    const { state } = outcome;
    const lines = [
      `task ${from} (${lastRunText(state.lastRun)}) to ${to} (named in the config as ${toPath})` +
        (outcome.moved ? ': moved, in one transaction' : ': would move'),
      `  roundtrip.sync_state     ${count(outcome.syncState, 'synced record')}`,
      `  roundtrip.sync_scope     ${count(outcome.syncScope, 'row')}${state.syncScope ? ` (${scopeText(state.syncScope)})` : ''}`,
      `  roundtrip.extract_state  ${count(outcome.watermark, 'row')}`,
      ...(outcome.resolvedMarks > 0
        ? [
            `  roundtrip.writeback_errors  ${count(outcome.resolvedMarks, 'row')}: resolved INSERT_OUTCOME_UNKNOWN marks (their Salesforce Ids are in the sync state)`,
          ]
        : []),
      outcome.moved
        ? `Done: ${to} goes on where ${from} was (its next plan sends only what changed). Kept under ${from}: its runs' history and its name in roundtrip.task_owners.`
        : `Nothing moved (a dry run): ${renameTaskCommand(from, to, given.options)}${given.note} moves them.`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    return EXIT.ok;
  } finally {
    await pool.end();
  }
};
