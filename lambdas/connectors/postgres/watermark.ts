/**
 * Watermarks of incremental extracts, in `roundtrip.extract_state` (see migrations.ts).
 * {@link advanceWatermark} is meant to run in the same transaction as the merge: either both
 * the rows and the new watermark are committed, or neither is, so a crash never skips rows.
 */
import type { ClientBase } from 'pg';
import { TerminalError } from '../../shared/errors';

/** The stored state of one extract task. */
export interface ExtractWatermark {
  readonly task: string;
  /** The largest change timestamp loaded (Salesforce `SystemModstamp`); null before the first rows. */
  readonly watermark: Date | null;
  /** The largest `Id` among the rows at exactly {@link watermark}: the tie-breaker. */
  readonly watermarkId: string | null;
  readonly lastRunId: string | null;
  /** Rows loaded by all runs so far. */
  readonly rowsTotal: number;
  readonly updatedAt: Date;
  /** What the loaded rows were read with (object, filter, deletes, the fields written); null when not recorded. */
  readonly readScope: string | null;
}

interface Row {
  task: string;
  watermark: Date | null;
  watermark_id: string | null;
  last_run_id: string | null;
  rows_total: string;
  updated_at: Date;
  read_scope: string | null;
}

function fromRow(row: Row): ExtractWatermark {
  return {
    task: row.task,
    watermark: row.watermark,
    watermarkId: row.watermark_id,
    lastRunId: row.last_run_id,
    rowsTotal: Number(row.rows_total),
    updatedAt: row.updated_at,
    readScope: row.read_scope,
  };
}

/** The task's watermark, or undefined when the task never loaded (a first, full extract). */
export async function readWatermark(client: ClientBase, task: string): Promise<ExtractWatermark | undefined> {
  const { rows } = await client.query<Row>(
    `SELECT task, watermark, watermark_id, last_run_id, rows_total, updated_at, read_scope
       FROM roundtrip.extract_state WHERE task = $1`,
    [task],
  );
  return rows[0] ? fromRow(rows[0]) : undefined;
}

/** Options of {@link advanceWatermark}. */
export interface AdvanceWatermarkOptions {
  /** The largest change timestamp of the rows just loaded; null when none were read. */
  readonly watermark: Date | string | null;
  /** The largest Id at that timestamp. */
  readonly watermarkId?: string | null;
  readonly runId: string;
  /** Rows loaded by this run, added to `rowsTotal`. @default 0 */
  readonly rows?: number;
  /**
   * Store the watermark even when it is older than the stored one (a `full: true` run that
   * re-read everything). @default false: a watermark only moves forward.
   */
  readonly force?: boolean;
  /** What the rows were read with (see {@link ExtractWatermark.readScope}); kept when omitted. */
  readonly readScope?: string;
}

/**
 * Records the run's progress: the watermark moves forward only, comparing (timestamp, Id) with
 * Ids in byte order (`COLLATE "C"`, the order Salesforce sorts Ids in), so an overlap window that
 * re-reads older rows never moves it back. Returns the stored state.
 */
export async function advanceWatermark(
  client: ClientBase,
  task: string,
  options: AdvanceWatermarkOptions,
): Promise<ExtractWatermark> {
  const watermark = options.watermark === null ? null : new Date(options.watermark);
  if (watermark !== null && Number.isNaN(watermark.getTime())) {
    throw new TerminalError(
      `Watermark of task ${task} is not a valid timestamp: ${JSON.stringify(options.watermark)}`,
    );
  }
  const rows = options.rows ?? 0;
  if (!Number.isInteger(rows) || rows < 0) {
    throw new TerminalError(`Rows loaded by task ${task} must be a non-negative integer, got ${rows}`);
  }
  const newer = `EXCLUDED.watermark IS NOT NULL AND ($6::boolean OR s.watermark IS NULL
      OR (EXCLUDED.watermark, coalesce(EXCLUDED.watermark_id, '') COLLATE "C")
         > (s.watermark, coalesce(s.watermark_id, '') COLLATE "C"))`;
  const { rows: stored } = await client.query<Row>(
    `INSERT INTO roundtrip.extract_state AS s (task, watermark, watermark_id, last_run_id, rows_total, updated_at, read_scope)
     VALUES ($1, $2, $3, $4, $5, now(), $7)
     ON CONFLICT (task) DO UPDATE SET
       watermark    = CASE WHEN ${newer} THEN EXCLUDED.watermark ELSE s.watermark END,
       watermark_id = CASE WHEN ${newer} THEN EXCLUDED.watermark_id ELSE s.watermark_id END,
       last_run_id  = EXCLUDED.last_run_id,
       rows_total   = s.rows_total + EXCLUDED.rows_total,
       updated_at   = now(),
       read_scope   = coalesce(EXCLUDED.read_scope, s.read_scope)
     RETURNING task, watermark, watermark_id, last_run_id, rows_total, updated_at, read_scope`,
    [
      task,
      watermark,
      watermark === null ? null : (options.watermarkId ?? null),
      options.runId,
      rows,
      options.force ?? false,
      options.readScope ?? null,
    ],
  );
  if (!stored[0]) throw new TerminalError(`Watermark of task ${task} was not stored`);
  return fromRow(stored[0]);
}
