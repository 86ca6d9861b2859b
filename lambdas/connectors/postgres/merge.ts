/**
 * From staging into the target: a keyed merge for incremental loads, and a whole-table
 * replacement for full refreshes. Both are plain statements meant to run inside the load's
 * transaction, together with {@link advanceWatermark} and the staging table's drop.
 *
 * Full refresh: why not load a new table and swap it in by rename? A view on the target (the
 * transform's `lead_reverse`, say) binds to the table's OID, not its name: after a rename swap
 * the view still reads the old table, and grants, comments and dependent foreign keys stay
 * behind too. So the target is kept and its contents are replaced in the same transaction:
 * - `delete-insert` (default): `DELETE` then `INSERT … SELECT`. Readers keep seeing the old rows,
 *   without waiting, until the commit, then all the new rows. The old row versions are left for
 *   autovacuum (the table briefly takes twice its size).
 * - `truncate-insert`: `TRUNCATE` then `INSERT`. Faster and leaves no dead rows, but TRUNCATE
 *   takes an ACCESS EXCLUSIVE lock: readers wait for the commit (they still never see half a
 *   table), and a REPEATABLE READ reader that started earlier sees the table empty.
 * See bench/extract-load.ts for the figures.
 */
import type { ClientBase } from 'pg';
import { TerminalError } from '../../shared/errors';
import { quoteIdent, quoteQualified, validateColumns } from './ddl';
import { STAGING_ROW_COLUMN, stagingValueSql } from './copy';
import type { PgColumn } from './types';

/** How deleted source rows are applied. */
export type DeleteMode =
  /** Delete the target row when the staged row's flag column is true. */
  | { readonly mode: 'remove'; readonly flagColumn: string }
  /** Keep the row with its flag column set (it is an ordinary column of the table). */
  | { readonly mode: 'flag'; readonly flagColumn: string };

/** Options of {@link mergeStaging}. */
export interface MergeStagingOptions {
  readonly schema: string;
  readonly target: string;
  /** The staging table, in the same schema. */
  readonly staging: string;
  /** The staged columns; the target may have more (they are left alone). */
  readonly columns: readonly PgColumn[];
  /** The key: the target's primary key columns. */
  readonly key: readonly string[];
  /** How to apply rows the source marks as deleted (e.g. Salesforce's `IsDeleted` from queryAll). */
  readonly deletes?: DeleteMode;
  /**
   * Whether a key may appear more than once in staging.
   * - `may-repeat`: the last row of a key (in file order) wins, by a `DISTINCT ON` over staging —
   *   a sort of every staged row.
   * - `unique`: the caller knows each key comes once (one Salesforce query returns each Id once),
   *   so staging is read as it is, without the sort. Should a key repeat after all and one of its
   *   rows insert or change the target row, PostgreSQL refuses the statement (`ON CONFLICT DO
   *   UPDATE` cannot touch a row twice): the merge fails with a {@link TerminalError} naming the
   *   duplicate and the load's transaction rolls back. When all its rows equal the target's row,
   *   nothing is written, as with `may-repeat` (only `staged` and `unchanged` count it twice).
   * @default 'may-repeat'
   */
  readonly stagedKeys?: StagedKeys;
  /**
   * A column that versions rows (Salesforce's `SystemModstamp`): a staged row older than the
   * target's row neither updates nor deletes it — it comes from a read that started before the
   * one that loaded the target's row (an overlapping run). A NULL on either side does not guard.
   * @default none: the staged row always wins
   */
  readonly versionColumn?: string;
}

/** Whether staging may hold a key more than once: see {@link MergeStagingOptions.stagedKeys}. */
export type StagedKeys = 'may-repeat' | 'unique';

/** What {@link mergeStaging} did. */
export interface MergeResult {
  /**
   * Distinct keys in staging (the last of duplicate keys wins, in file order). The staging table's
   * rows minus this are the rows dropped as repeated keys, whatever the deletes mode (a row flagged
   * deleted counts here like any other); {@link repeatedStagedKeys} says which keys, when there are
   * any.
   */
  readonly staged: number;
  readonly inserted: number;
  /** Existing rows whose values changed. */
  readonly updated: number;
  /** Staged rows identical to the target row: not written at all. */
  readonly unchanged: number;
  /** `remove`: rows deleted from the target. `flag`: flagged rows written (inserted or updated). */
  readonly deleted: number;
}

/**
 * Merges staging into the target with `INSERT … ON CONFLICT (key) DO UPDATE … WHERE the row
 * differs` (`IS DISTINCT FROM`, so NULLs compare as values and unchanged rows are not
 * rewritten). Insert and update counts use the `xmax = 0` test on the returned rows (a row
 * version created by the insert has no deleting or locking transaction yet); it works on every
 * supported PostgreSQL, unlike `MERGE … RETURNING merge_action()` (17+ only).
 */
export async function mergeStaging(client: ClientBase, options: MergeStagingOptions): Promise<MergeResult> {
  const { columns, key } = options;
  const target = quoteQualified(options.schema, options.target);
  const staging = quoteQualified(options.schema, options.staging);
  if (key.length === 0) throw new TerminalError(`Merge into ${target}: no key columns`);
  validateColumns(`Merge into ${target}`, columns, key);
  const flag = options.deletes?.flagColumn;
  if (flag !== undefined) {
    const flagColumn = columns.find((c) => c.name === flag);
    if (!flagColumn)
      throw new TerminalError(`Merge into ${target}: delete flag column "${flag}" is not among the columns`);
    if (flagColumn.pgType !== 'boolean') {
      throw new TerminalError(
        `Merge into ${target}: delete flag column "${flag}" must be boolean, not ${flagColumn.pgType}`,
      );
    }
  }

  const version = options.versionColumn;
  if (version !== undefined && !columns.some((c) => c.name === version)) {
    throw new TerminalError(`Merge into ${target}: version column "${version}" is not among the columns`);
  }
  /** Whether the target row `t` is newer than the staged row `alias`. */
  const targetIsNewer = (alias: string): string =>
    version === undefined
      ? 'false'
      : `coalesce(t.${quoteIdent(version)} > ${alias}.${quoteIdent(version)}, false)`;

  const keySet = new Set(key);
  const names = columns.map((c) => quoteIdent(c.name));
  const keys = key.map(quoteIdent);
  const others = columns.filter((c) => !keySet.has(c.name)).map((c) => quoteIdent(c.name));
  const selectList = columns.map((c) => `${stagingValueSql(c, 's')} AS ${quoteIdent(c.name)}`).join(', ');
  const sortKeys = key
    .map((k) => stagingValueSql(columns.find((c) => c.name === k) as PgColumn, 's'))
    .join(', ');
  const isDeleted = flag === undefined ? 'false' : `src.${quoteIdent(flag)} IS TRUE`;
  const upsertFilter = options.deletes?.mode === 'remove' ? `WHERE NOT (${isDeleted})` : '';
  const onConflict =
    others.length === 0
      ? 'DO NOTHING'
      : `DO UPDATE SET ${others.map((c) => `${c} = EXCLUDED.${c}`).join(', ')}
         WHERE (${others.map((c) => `t.${c}`).join(', ')}) IS DISTINCT FROM (${others.map((c) => `EXCLUDED.${c}`).join(', ')})
           AND NOT ${targetIsNewer('EXCLUDED')}`;
  const deleteStep =
    options.deletes?.mode === 'remove'
      ? `DELETE FROM ${target} AS t USING src WHERE ${isDeleted} AND ${keys.map((k) => `t.${k} = src.${k}`).join(' AND ')} AND NOT ${targetIsNewer('src')} RETURNING 1`
      : 'SELECT 1 WHERE false';
  const flagged =
    options.deletes?.mode === 'flag' ? `t.${quoteIdent(options.deletes.flagColumn)} IS TRUE` : 'false';

  const unique = options.stagedKeys === 'unique';
  // With unique keys, src is inlined where it is used (NOT MATERIALIZED): a few scans of staging
  // cost less than writing every row to a tuplestore (which spills to disk past work_mem).
  const src = unique
    ? `src AS NOT MATERIALIZED (
  SELECT ${selectList}
    FROM ${staging} AS s
)`
    : `src AS (
  SELECT DISTINCT ON (${sortKeys}) ${selectList}
    FROM ${staging} AS s
   ORDER BY ${sortKeys}, s.${quoteIdent(STAGING_ROW_COLUMN)} DESC
)`;
  const sql = `
WITH ${src}, removed AS (
  ${deleteStep}
), written AS (
  INSERT INTO ${target} AS t (${names.join(', ')})
  SELECT ${names.join(', ')} FROM src ${upsertFilter}
  ON CONFLICT (${keys.join(', ')}) ${onConflict}
  RETURNING (t.xmax = 0) AS inserted, ${flagged} AS flagged
)
SELECT (SELECT count(*) FROM src)::bigint AS staged,
       (SELECT count(*) FROM src WHERE ${isDeleted})::bigint AS to_remove,
       (SELECT count(*) FROM removed)::bigint AS removed,
       count(*) FILTER (WHERE inserted)::bigint AS inserted,
       count(*) FILTER (WHERE NOT inserted)::bigint AS updated,
       count(*) FILTER (WHERE flagged)::bigint AS flagged
  FROM written`;
  let rows: Record<'staged' | 'to_remove' | 'removed' | 'inserted' | 'updated' | 'flagged', string>[];
  try {
    ({ rows } = await client.query(sql));
  } catch (err) {
    if (unique) throw duplicateStagedKey(err, target, options.staging, key) ?? err;
    throw err;
  }
  const row = rows[0];
  if (!row) throw new TerminalError(`Merge into ${target} returned no counts`);
  const staged = Number(row.staged);
  const inserted = Number(row.inserted);
  const updated = Number(row.updated);
  const deleted = options.deletes?.mode === 'remove' ? Number(row.removed) : Number(row.flagged);
  const removedStaged = options.deletes?.mode === 'remove' ? Number(row.to_remove) : 0;
  return { staged, inserted, updated, unchanged: staged - removedStaged - inserted - updated, deleted };
}

/**
 * The error of a merge told that staged keys are unique when PostgreSQL found one twice (`21000`:
 * ON CONFLICT DO UPDATE reached a row it had already inserted or updated). Undefined for any
 * other error.
 */
function duplicateStagedKey(
  err: unknown,
  target: string,
  staging: string,
  key: readonly string[],
): TerminalError | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (code !== '21000') return undefined;
  const detail = (err as { detail?: unknown }).detail;
  return new TerminalError(
    `Merge into ${target}: staging table ${staging} holds a key (${key.join(', ')}) more than once, ` +
      `though the merge was told its keys are unique (stagedKeys: 'unique'): ${err instanceof Error ? err.message : String(err)}` +
      (typeof detail === 'string' ? ` (${detail})` : ''),
    { cause: err },
  );
}

/** A key that staging holds more than once: {@link repeatedStagedKeys}. */
export interface RepeatedStagedKey {
  /** The key's columns and their values, as PostgreSQL writes them as text (NULL as null). */
  readonly key: Readonly<Record<string, string | null>>;
  /** Rows staging holds for it (2 or more). */
  readonly rows: number;
}

/** What {@link repeatedStagedKeys} found. */
export interface RepeatedStagedKeys {
  /** Keys staging holds more than once. */
  readonly keys: number;
  /** At most `limit` of them, those with the most rows first, then by key. */
  readonly examples: readonly RepeatedStagedKey[];
}

/**
 * The keys a staging table holds more than once (which {@link mergeStaging}'s `may-repeat` merged
 * as one, the last in file order winning), compared as the merge compares them: how many, and a
 * few with their rows. One pass over staging, grouped on the key: call it only when the merge's
 * count says there are some (staged rows more than {@link MergeResult.staged}), and before the
 * staging table is dropped.
 */
export async function repeatedStagedKeys(
  client: ClientBase,
  options: {
    readonly schema: string;
    readonly staging: string;
    readonly columns: readonly PgColumn[];
    readonly key: readonly string[];
    /** @default 5 */
    readonly limit?: number;
  },
): Promise<RepeatedStagedKeys> {
  const staging = quoteQualified(options.schema, options.staging);
  const keyValues = options.key.map((k) => {
    const column = options.columns.find((c) => c.name === k);
    if (!column) throw new TerminalError(`Keys of ${staging}: key column "${k}" is not among the columns`);
    return stagingValueSql(column, 's');
  });
  const { rows } = await client.query<{ key: string[]; rows: string; keys: string }>(
    `SELECT ARRAY[${keyValues.map((v) => `(${v})::text`).join(', ')}] AS key,
            count(*)::bigint AS rows,
            count(*) OVER ()::bigint AS keys
       FROM ${staging} AS s
      GROUP BY ${keyValues.join(', ')}
     HAVING count(*) > 1
      ORDER BY count(*) DESC, ${keyValues.join(', ')}
      LIMIT $1`,
    [options.limit ?? 5],
  );
  return {
    keys: Number(rows[0]?.keys ?? 0),
    examples: rows.map((r) => ({
      key: Object.fromEntries(options.key.map((k, i) => [k, r.key[i] ?? null])),
      rows: Number(r.rows),
    })),
  };
}

/** Options of {@link swapInTable}. */
export interface SwapInTableOptions {
  readonly schema: string;
  readonly target: string;
  readonly staging: string;
  readonly columns: readonly PgColumn[];
  /** @default 'delete-insert' (see the module comment) */
  readonly strategy?: 'delete-insert' | 'truncate-insert';
}

/** What {@link swapInTable} did. */
export interface SwapResult {
  /** Rows the target held before (for `truncate-insert`: counted before truncating). */
  readonly removed: number;
  readonly inserted: number;
}

/**
 * Locks a table against every other writer until the transaction ends, readers unaffected
 * (SHARE ROW EXCLUSIVE conflicts with itself and with the ROW EXCLUSIVE of INSERT, UPDATE and
 * DELETE). Runs that overlap (a scheduled run and a manual one) then refresh a table one at a
 * time: without it a second DELETE, blocked by the first run's, skips the rows that run inserts
 * (they are not in its snapshot) and both runs' rows stay; and a check that a table is empty
 * holds until the rows go in.
 */
export async function lockForRefresh(client: ClientBase, schema: string, table: string): Promise<void> {
  await client.query(`LOCK TABLE ${quoteQualified(schema, table)} IN SHARE ROW EXCLUSIVE MODE`);
}

/**
 * Replaces the target's rows with the staging table's, for a full refresh. Must run inside a
 * transaction (with the staging drop): readers then see the old table or the new one, never
 * a mix. The target keeps its OID, so views, grants and comments on it stay valid. Takes
 * {@link lockForRefresh} first.
 */
export async function swapInTable(client: ClientBase, options: SwapInTableOptions): Promise<SwapResult> {
  const target = quoteQualified(options.schema, options.target);
  const staging = quoteQualified(options.schema, options.staging);
  validateColumns(`Refresh of ${target}`, options.columns);
  await lockForRefresh(client, options.schema, options.target);
  let removed: number;
  if ((options.strategy ?? 'delete-insert') === 'truncate-insert') {
    removed = Number(
      (await client.query<{ n: string }>(`SELECT count(*)::bigint AS n FROM ${target}`)).rows[0]?.n ?? 0,
    );
    await client.query(`TRUNCATE ${target}`);
  } else {
    removed = (await client.query(`DELETE FROM ${target}`)).rowCount ?? 0;
  }
  const names = options.columns.map((c) => quoteIdent(c.name)).join(', ');
  const values = options.columns.map((c) => stagingValueSql(c, 's')).join(', ');
  const inserted = await client.query(
    `INSERT INTO ${target} (${names}) SELECT ${values} FROM ${staging} AS s`,
  );
  return { removed, inserted: inserted.rowCount ?? 0 };
}
