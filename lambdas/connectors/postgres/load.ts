/**
 * One load, the whole way: evolve the table, COPY the CSV into staging, merge it (or replace the
 * table's contents), advance the watermark and drop the staging table — in ONE transaction, so
 * that a failure anywhere leaves the target, the watermark and the catalog as they were. This is
 * what the extract steps call; the pieces stay exported for loads that need another shape.
 */
import type { Readable } from 'node:stream';
import type { Pool } from 'pg';
import { TerminalError } from '../../shared/errors';
import type { Logger } from '../../shared/logging';
import { silentLogger } from '../../shared/logging';
import { copyIntoStaging, dropStagingTable } from './copy';
import { ensureTable, type EnsureTableResult } from './ddl';
import { mergeStaging, swapInTable, type DeleteMode, type MergeResult, type SwapResult } from './merge';
import { withTransaction } from './pool';
import type { PgColumn } from './types';
import { advanceWatermark, type ExtractWatermark } from './watermark';

/** Options of {@link loadIntoTable}. */
export interface LoadIntoTableOptions {
  readonly schema: string;
  readonly table: string;
  /** The CSV's columns in file order, from the type mappings of types.ts. */
  readonly columns: readonly PgColumn[];
  readonly runId: string;
  /** The CSV bytes. */
  readonly source: Readable;
  /** See {@link copyIntoStaging}. */
  readonly header: boolean | 'match';
  /** See {@link copyIntoStaging}: true for Salesforce Bulk CSV. @default false */
  readonly quotedEmptyIsNull?: boolean;
  /**
   * `merge`: upsert on `key` (incremental Salesforce loads, keyed Athena loads).
   * `replace`: the table's rows become the CSV's (an Athena full refresh).
   */
  readonly mode: 'merge' | 'replace';
  /** The primary key; required for `merge`, optional for `replace`. */
  readonly key?: readonly string[];
  /** How source deletes are applied (`merge` only). */
  readonly deletes?: DeleteMode;
  /** @default 'delete-insert' (see merge.ts) */
  readonly replaceStrategy?: 'delete-insert' | 'truncate-insert';
  /** When given, the task's watermark advances in the same transaction. */
  readonly watermark?: {
    readonly task: string;
    readonly watermark: Date | string | null;
    readonly watermarkId?: string | null;
    readonly force?: boolean;
  };
  /** See {@link ensureTable}. @default 'error' */
  readonly onNarrower?: 'error' | 'keep';
  readonly logger?: Logger;
}

/** What {@link loadIntoTable} did. */
export interface LoadResult {
  readonly table: EnsureTableResult;
  /** Rows in the CSV (duplicates included). */
  readonly rows: number;
  readonly merge?: MergeResult;
  readonly replace?: SwapResult;
  readonly watermark?: ExtractWatermark;
}

/**
 * Loads a CSV stream into a table in one transaction (see the module comment). Errors are
 * classified: a source that fails mid-stream keeps its own class (or is classified like a
 * socket error), bad data is a TerminalError naming the line and column.
 */
export async function loadIntoTable(pool: Pool, options: LoadIntoTableOptions): Promise<LoadResult> {
  const { schema, table, columns, runId } = options;
  const key = options.key ?? [];
  if (options.mode === 'merge' && key.length === 0) {
    throw new TerminalError(`Load into ${schema}.${table}: mode 'merge' needs a key`);
  }
  if (options.mode === 'replace' && options.deletes) {
    throw new TerminalError(`Load into ${schema}.${table}: deletes apply to mode 'merge' only`);
  }
  const logger = (options.logger ?? silentLogger).child({ table: `${schema}.${table}`, runId });
  const started = Date.now();
  const result = await withTransaction(pool, async (client) => {
    const evolved = await ensureTable(client, {
      schema,
      table,
      columns,
      primaryKey: key,
      logger,
      ...(options.onNarrower ? { onNarrower: options.onNarrower } : {}),
      // Every row is replaced: the table takes the declared types as they are.
      replacesRows: options.mode === 'replace',
    });
    const copied = await copyIntoStaging(client, {
      schema,
      target: table,
      runId,
      columns,
      source: options.source,
      format: 'csv',
      header: options.header,
      quotedEmptyIsNull: options.quotedEmptyIsNull ?? false,
      logger,
    });
    const base = { schema, target: table, staging: copied.staging, columns };
    const merge =
      options.mode === 'merge'
        ? await mergeStaging(client, {
            ...base,
            key,
            ...(options.deletes ? { deletes: options.deletes } : {}),
          })
        : undefined;
    const replace =
      options.mode === 'replace'
        ? await swapInTable(client, { ...base, strategy: options.replaceStrategy ?? 'delete-insert' })
        : undefined;
    // Rows deleted before a column was retyped (ensureTable's `cleared`) were replaced too.
    const replaced = replace && { ...replace, removed: replace.removed + evolved.cleared };
    const watermark = options.watermark
      ? await advanceWatermark(client, options.watermark.task, {
          watermark: options.watermark.watermark,
          watermarkId: options.watermark.watermarkId ?? null,
          runId,
          rows: copied.rows,
          force: options.watermark.force ?? false,
        })
      : undefined;
    await dropStagingTable(client, schema, copied.staging);
    return {
      table: evolved,
      rows: copied.rows,
      ...(merge ? { merge } : {}),
      ...(replaced ? { replace: replaced } : {}),
      ...(watermark ? { watermark } : {}),
    };
  });
  logger.info('Loaded table', {
    rows: result.rows,
    ...(result.merge ? { merge: result.merge } : {}),
    ...(result.replace ? { replace: result.replace } : {}),
    ms: Date.now() - started,
  });
  return result;
}
