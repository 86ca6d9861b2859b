/**
 * What a valid config allows but is probably wrong: said by `roundtrip validate` (`mind: …`), by
 * `roundtrip plan` and `run` as they start, and logged by the plan of each task it names, never
 * refused (see docs/configuration.md, "Allowed,
 * but said").
 */
import { listed } from '../shared/words';
import type { PipelineConfig, WritebackTask } from './types';

/** One thing to mind, with the config paths (`writeback[0]`) and names of the tasks it concerns. */
export interface ConfigWarning {
  readonly paths: readonly string[];
  readonly tasks: readonly string[];
  readonly message: string;
}

/** The modes that send a record again whenever its value in Salesforce differs from the source's. */
function keepsValues(task: WritebackTask): boolean {
  return task.mode === 'update' || task.mode === 'upsert';
}

/**
 * Two update or upsert tasks that write one field of one object (API names compared without
 * case, as Salesforce compares them). Where both sources hold a record, each task overwrites the
 * other's value, and a plan that compares with the extracted copy finds the other's value there on
 * every run and sends its own again: the field flips for ever, each run spending API calls on it.
 * Two tasks may write the field of disjoint sets of records on purpose, so this is said, not
 * refused. (An insert sets a field once, when it creates the record: an update of it later is
 * what a pipeline may well mean.)
 */
function fieldsWrittenTwice(config: Pick<PipelineConfig, 'writeback'>): ConfigWarning[] {
  const warnings: ConfigWarning[] = [];
  const tasks = config.writeback.map((task, index) => ({ task, path: `writeback[${index}]` }));
  tasks.forEach((a, i) => {
    if (!keepsValues(a.task)) return;
    for (const b of tasks.slice(i + 1)) {
      if (!keepsValues(b.task) || a.task.object.toLowerCase() !== b.task.object.toLowerCase()) continue;
      const theirs = new Set(Object.keys(b.task.fields).map((f) => f.toLowerCase()));
      const shared = Object.keys(a.task.fields).filter((f) => theirs.has(f.toLowerCase()));
      if (shared.length === 0) continue;
      const object = a.task.object;
      const fields = listed(shared.map((f) => `${object}.${f}`));
      const one = shared.length === 1;
      warnings.push({
        paths: [a.path, b.path],
        tasks: [a.task.name, b.task.name],
        message:
          `${a.path} (${a.task.name}) and ${b.path} (${b.task.name}) both write ${fields}: on a record both ` +
          `sources hold, each overwrites the other's value, and with the extracted copy of ${object} to compare ` +
          `with, each run each task finds the other's value there and sends its own again, so the field${one ? '' : 's'} ` +
          `flip${one ? 's' : ''} on every run and API calls are spent on ${one ? 'it' : 'them'} for ever (without the copy, ` +
          `Salesforce keeps whichever sent last, unseen). Fine if the two sources never hold the same record; ` +
          `otherwise map ${one ? 'the field' : 'each field'} in one of the two tasks only`,
      });
    }
  });
  return warnings;
}

/** Everything to mind in a valid config, in config order. */
export function configWarnings(config: Pick<PipelineConfig, 'writeback'>): ConfigWarning[] {
  return fieldsWrittenTwice(config);
}
