/**
 * The `roundtrip resolve` command that a held-back insert key's message names (bin/commands/resolve.ts
 * records what someone found in Salesforce), built in SQL for the messages a plan or a push writes
 * for many keys at once: the task and the key quoted for a POSIX shell when they need it
 * (lambdas/shared/shell.ts), so that the command pasted into a shell reaches `resolve` with the
 * exact key.
 */
import { shellOption, shellOptionSql } from '../../shared/shell';
import { sqlLiteral } from './state';

/**
 * The option of `roundtrip resolve` by which someone who looked in Salesforce records a keyed
 * task's key that a plan would look up by its external ID, when no plan can (see
 * `RecordOptions.withoutLookUp` in resolve.ts). Named in every message that leads there.
 */
export const WITHOUT_LOOK_UP_OPTION = '--without-look-up';

/**
 * The longest key a command in a message gives whole: a key is never cut inside a command, where a
 * part of it would name another key. 255 is the longest text an external ID holds in Salesforce
 * (a Text field's length), so a keyed task's every key fits; only an insert task without an
 * external-ID key, whose keys are whatever its keyColumn holds, can have a longer one, which the
 * command then names by where to read it whole, keeping the message short.
 */
export const COMMAND_KEY_CHARS = 255;

/**
 * The SQL expression (text) of `roundtrip resolve --task TASK --key KEY [--without-look-up]
 * --inserted <the record's Id> (or --not-inserted …)` for the key that the SQL expression `key`
 * gives: the key whole, quoted when it needs it, or, over {@link COMMAND_KEY_CHARS} characters,
 * `--key <…>` saying where the whole key is listed (`roundtrip errors --csv`).
 */
export function resolveCommandSql(
  task: string,
  key: string,
  options: { withoutLookUp?: boolean } = {},
): string {
  const taskOption = shellOption('--task', task);
  const longKey = `--key <the key, whole: its %s characters are more than a message quotes; roundtrip errors ${taskOption.replace(/%/g, '%%')} --code INSERT_OUTCOME_UNKNOWN --csv lists it>`;
  const rest = `${options.withoutLookUp === true ? ` ${WITHOUT_LOOK_UP_OPTION}` : ''} --inserted <the record's Id> (or --not-inserted if there is none, or you delete it there)`;
  return `(${sqlLiteral(`roundtrip resolve ${taskOption} `)} || CASE WHEN char_length(${key}) <= ${COMMAND_KEY_CHARS} THEN ${shellOptionSql('--key', key)} ELSE format(${sqlLiteral(longKey)}, char_length(${key})) END || ${sqlLiteral(rest)})`;
}
