/**
 * The check of a write-back's source columns against the columns its config names (`keyColumn`
 * and each of `fields`), in one wording wherever it is made: the plan's check of its source
 * (`sourceColumnsFor`, which `roundtrip validate` runs on the transform's output), and the sync
 * scope's, which tells a `keyColumn` the source lacks (misspelt) from a key column changed.
 */
import type { WritebackTask } from '../../config';
import { suggestion } from '../../config/issues';
import { quoteIdent, quoteQualified } from '../../connectors/postgres';
import { TerminalError } from '../../shared/errors';

/** What the plan's source check needs to name a write-back's source and where the config names it. */
export interface SourceCheckContext {
  /** The task's name (`Lead-update`). */
  readonly taskName: string;
  /** The task's config path (`writeback[0]`). */
  readonly configPath: string;
  /** The task's `from`, split into schema and name. */
  readonly source: { readonly schema: string; readonly table: string };
  /**
   * What to ask when the source does not exist. Default: whether a transform that has not run
   * makes it (what a plan asks); `validate`, which ran the transform, says that it did not.
   */
  readonly absentHint?: string;
}

/**
 * A write-back's source that does not exist, or lacks a column its config names: the message is
 * `Write-back <task>: <problem>`; `problem` alone is what a plan that also refuses the mapping
 * adds to its own error (plan.ts {@link withSourceProblem}).
 */
export class SourceProblemError extends TerminalError {
  constructor(
    taskName: string,
    readonly problem: string,
  ) {
    super(`Write-back ${taskName}: ${problem}`);
  }
}

/**
 * Throws a {@link SourceProblemError} naming each column the config names that the source, with
 * columns `has` (in their order), lacks: by its config path (`writeback[0].keyColumn`,
 * `writeback[0].fields.LeadScore__c`), with the name it was likely meant to be, the columns the
 * source has, and what to correct (the config, or the SQL's alias).
 */
export function checkSourceHasColumns(
  has: readonly string[],
  task: Pick<WritebackTask, 'keyColumn' | 'fields'>,
  context: Pick<SourceCheckContext, 'taskName' | 'configPath' | 'source'>,
): void {
  const { source, configPath, taskName } = context;
  // Each column the config names, with where it names it and the column it was likely meant to be.
  const named: [string, string][] = [
    [task.keyColumn, `${configPath}.keyColumn`],
    ...Object.entries(task.fields).map(([field, column]): [string, string] => [
      column,
      `${configPath}.fields.${field}`,
    ]),
  ];
  const present = new Set(has);
  const missing = new Map<string, string[]>();
  for (const [column, path] of named) {
    if (!present.has(column)) missing.set(column, [...(missing.get(column) ?? []), path]);
  }
  if (missing.size === 0) return;
  const each = [...missing].map(([column, paths]) => {
    const meant = suggestion(column, has);
    return `${quoteIdent(column)} (${paths.join(', ')}${meant ? `; did you mean ${quoteIdent(meant)}?` : ''})`;
  });
  throw new SourceProblemError(
    taskName,
    `the source ${quoteQualified(source.schema, source.table)} has no column ${each.join(', ')} (it has ${has.map((c) => quoteIdent(c)).join(', ')}): correct the name in the config, or the SQL that makes the source (a column's alias)`,
  );
}
