/**
 * How a keyed Athena extract's keys repeated in its result are told (the load's output
 * `duplicateKeys`, extract-athena.ts): the warning, and the parts its `duplicateKeys: 'fail'`
 * error shares. A module of its own, without the Athena extract's connectors, so that the Report
 * (its notification) and the CLI say the same words without loading them.
 */
import type { AthenaDuplicateKeysFound } from './contracts';

/** A key value as the messages write it: a number as it is, NULL, anything else quoted. */
function keyValueText(value: string | null): string {
  if (value === null) return 'NULL';
  return /^-?\d+(\.\d+)?$/.test(value) ? value : `'${value.replace(/'/g, "''")}'`;
}

/**
 * The keys repeated and the rows dropped, as the warning and the error say them:
 * `2 keys in more than one row (id 7: 3 rows, id 9: 2 rows), 3 rows more than keys`.
 */
export function repeatedKeysText(found: AthenaDuplicateKeysFound): string {
  const many = (n: number, what: string): string =>
    `${n.toLocaleString('en-US')} ${what}${n === 1 ? '' : 's'}`;
  const examples = found.examples.map((e) => {
    const values = found.key.map((k) => keyValueText(e.key[k] ?? null));
    const key =
      found.key.length === 1
        ? `${found.key[0] ?? ''} ${values[0] ?? ''}`
        : `(${found.key.join(', ')}) = (${values.join(', ')})`;
    return `${key}: ${e.rows} rows`;
  });
  const more = found.keys - found.examples.length;
  return `${many(found.keys, 'key')} in more than one row (${examples.join(', ')}${more > 0 ? `, ${more.toLocaleString('en-US')} more` : ''}), ${many(found.droppedRows, 'row')} more than keys`;
}

/** How the query returns one row a key: the message's fix. */
export function oneRowAKeyFix(key: readonly string[]): string {
  return `make the task's query return one row a key, the version you want: SELECT <its columns> FROM (SELECT …, row_number() OVER (PARTITION BY ${key.join(', ')} ORDER BY <a column that orders versions> DESC) AS rn FROM …) WHERE rn = 1`;
}

/**
 * The warning of a keyed Athena load whose result held keys in more than one row (its output's
 * `duplicateKeys`): said by the log, the local runner's progress, the run's summary and the run's
 * notification.
 */
export function duplicateKeysWarning(task: string, found: AthenaDuplicateKeysFound): string {
  return `Extract task ${task}: the query returned ${repeatedKeysText(found)}: ${found.table} kept one row a key, the last in the result file, which Athena orders arbitrarily without ORDER BY, so which row is kept may change from run to run; ${oneRowAKeyFix(found.key)}. Set duplicateKeys: 'fail' on the task to fail instead of loading`;
}
