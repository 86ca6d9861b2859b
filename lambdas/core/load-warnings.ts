/**
 * The warnings of an extract's load, in the words the log, `roundtrip run`'s progress and summary,
 * and the run's notification share: keys a keyed Athena result repeated (its output's
 * `duplicateKeys`, extract-athena.ts; and the parts its `duplicateKeys: 'fail'` error shares), and
 * columns a Salesforce load retyped (`retypedColumns`, extract-salesforce.ts). A module of its
 * own, without the extracts' connectors, so that the Report and the CLI load none of them.
 */
import type { AthenaDuplicateKeysFound, AthenaKeptPrimaryKey } from './contracts';

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

/**
 * The warning of an Athena load without a key into a table that has a primary key all the same
 * (its output's `keptPrimaryKey`): said by the log, the local runner's progress, the run's summary
 * and the run's notification, each run, as the next result may break the key.
 */
export function keptPrimaryKeyWarning(task: string, kept: AthenaKeptPrimaryKey): string {
  // Quoted here, not with the postgres connector's quoteIdent: this module loads no connector,
  // and a warning does not refuse a name.
  const ident = (name: string): string => `"${name.replace(/"/g, '""')}"`;
  const dot = kept.table.indexOf('.');
  const qualified =
    dot < 0 ? ident(kept.table) : `${ident(kept.table.slice(0, dot))}.${ident(kept.table.slice(dot + 1))}`;
  return (
    `Extract task ${task} has no key (${kept.keyPath}), but ${kept.table} kept its primary key (${kept.key.join(', ')}) (made by the task's earlier loads with a key, or by hand): ` +
    `the load replaced the table's rows with the result as it is, and a run whose result repeats a value of the key or leaves it NULL will fail. ` +
    `Drop the table's primary key if the task is meant to load without one (ALTER TABLE ${qualified} DROP CONSTRAINT ${ident(kept.constraint)}), ` +
    `or give the task its key again (${kept.keyPath}: [${kept.key.map((k) => `'${k}'`).join(', ')}]: the load then merges, one row a key)`
  );
}

/**
 * The warning of a column of a Salesforce extract's copy that its load retyped, Salesforce having
 * changed its field's type (an element of the output's `retypedColumns`, read loosely from a step
 * output or a stored summary).
 */
export function retypedColumnWarning(column: Readonly<Record<string, unknown>>): string {
  const { object, field, table, from, to } = column;
  return `Salesforce changed the type of ${String(object)}.${String(field)}: column ${String(field)} of ${String(table)} retyped from ${String(from)} to ${String(to)}; a transform that reads it as ${String(from)} may fail`;
}

/**
 * The warning of a Salesforce REST read whose pages held another number of records than the
 * query's `totalSize` said (the output's `queryCountMismatch`, read loosely from a step output or a
 * stored summary): said by the log, the local runner's progress and summary, and the run's
 * notification.
 */
export function queryCountMismatchWarning(
  task: string,
  found: Readonly<Record<string, unknown>>,
  full: boolean,
): string {
  const n = (v: unknown): string => (typeof v === 'number' ? v.toLocaleString('en-US') : String(v));
  const fewer = Number(found.read) < Number(found.totalSize);
  return (
    `Extract task ${task}: Salesforce said its query matched ${n(found.totalSize)} records (totalSize), but its pages held ${n(found.read)}` +
    (fewer ? ': records the query matched may be missing from this read' : '') +
    `. The rows read were loaded, but the watermark was not moved (${typeof found.watermarkKept === 'string' ? `it stays ${found.watermarkKept}` : 'there is none yet'})` +
    (full ? ', no row the read did not return was removed or flagged, and the next read is full again' : '') +
    ", so the next run reads those records again. If this is said run after run, read the task through Bulk (a bulkThreshold below its row count) and report it with the task's query"
  );
}

/**
 * {@link queryCountMismatchWarning} of a Salesforce load's step output or stored summary (read
 * loosely: its `queryCountMismatch` and `full`), or undefined when its read had no mismatch.
 */
export function queryCountMismatchWarningOf(task: string, loaded: unknown): string | undefined {
  const { queryCountMismatch: found, full } = (loaded ?? {}) as {
    queryCountMismatch?: unknown;
    full?: unknown;
  };
  return found !== null && typeof found === 'object'
    ? queryCountMismatchWarning(task, found as Record<string, unknown>, full === true)
    : undefined;
}
