/**
 * Applying per-record results to the state tables, set-based, for both APIs: Collections results
 * (arrays from one call) and Bulk result files (COPY'd into a temp table). One rule for both:
 * - success: the ledger row becomes `succeeded` with its Salesforce Id, and `sync_state` takes the
 *   value hash, the values, the Id and the time;
 * - `UNABLE_TO_LOCK_ROW` below the retry limit: the row goes back to `planned` with one more
 *   attempt, for the serial retry pass;
 * - any other failure (or a lock past the limit): the row becomes `failed` and
 *   `roundtrip.writeback_errors` gets Salesforce's code, message and fields.
 */
import type { PoolClient } from 'pg';
import type { RecordResult } from '../../connectors/salesforce';

/** The per-record error Salesforce gives a record it could not lock: worth a retry. */
export const ROW_LOCK_ERROR = 'UNABLE_TO_LOCK_ROW';

/**
 * How many times a record refused with `UNABLE_TO_LOCK_ROW` is sent again (serially, after the
 * main pass). Salesforce: "retry … serially" when records of one parent are updated at once.
 * https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/asynch_api_concepts_limits.htm
 */
export const ROW_LOCK_RETRIES = 3;

/** The temp table {@link applyResults} reads: one row per record result. */
export const RESULTS_TABLE = 'wb_results';

/** Creates (or empties) the results temp table on this connection. */
export async function createResultsTable(client: PoolClient): Promise<void> {
  await client.query(`CREATE TEMP TABLE IF NOT EXISTS ${RESULTS_TABLE} (
    seq bigint NOT NULL, success boolean NOT NULL, sf_id text, code text, message text, fields text[]
  ) ON COMMIT DELETE ROWS`);
  await client.query(`TRUNCATE ${RESULTS_TABLE}`);
}

/** Fills the results table from the results of one Collections call (`seqs[i]` ↔ `results[i]`). */
export async function insertCollectionResults(
  client: PoolClient,
  seqs: readonly number[],
  results: readonly RecordResult[],
): Promise<void> {
  const first = results.map((r) => r.errors[0]);
  // Several errors of one record: the first gives the code and fields, the others are kept in
  // the message (as the Bulk parse does, collect.ts BULK_ERROR_SQL).
  const messages = results.map((r) => {
    const [head, ...more] = r.errors;
    if (!head) return null;
    return more.length === 0
      ? head.message
      : `${head.message} (and ${more.map((e) => `${e.statusCode}: ${e.message}`).join(' -- ')})`;
  });
  await client.query(
    `INSERT INTO ${RESULTS_TABLE} (seq, success, sf_id, code, message, fields)
     SELECT seq, success, sf_id, code, message,
            CASE WHEN fields IS NULL THEN '{}'::text[] ELSE ARRAY(SELECT jsonb_array_elements_text(fields::jsonb)) END
       FROM unnest($1::bigint[], $2::boolean[], $3::text[], $4::text[], $5::text[], $6::text[])
            AS r(seq, success, sf_id, code, message, fields)`,
    [
      seqs,
      results.map((r) => r.success === true),
      results.map((r) => r.id ?? null),
      first.map((e) => e?.statusCode ?? null),
      messages,
      first.map((e) => JSON.stringify(e?.fields ?? [])),
    ],
  );
}

/** Counts of one {@link applyResults}. */
export interface AppliedCounts {
  readonly succeeded: number;
  readonly lockRetry: number;
  readonly failed: number;
}

/**
 * Applies the results table to the plan, sync_state and writeback_errors (see the module comment).
 * Call inside a transaction, after filling {@link RESULTS_TABLE}.
 */
export async function applyResults(
  client: PoolClient,
  args: { runId: string; task: string; jobId: string | null; syncedAt: Date; lockRetries?: number },
): Promise<AppliedCounts> {
  const retries = args.lockRetries ?? ROW_LOCK_RETRIES;
  const { rows: stats } = await client.query<{
    ok: string;
    bad: string;
    lo: string | null;
    hi: string | null;
  }>(
    `SELECT count(*) FILTER (WHERE success) AS ok, count(*) FILTER (WHERE NOT success) AS bad, min(seq) AS lo, max(seq) AS hi
       FROM ${RESULTS_TABLE}`,
  );
  const ok = Number(stats[0]?.ok ?? 0);
  const bad = Number(stats[0]?.bad ?? 0);
  if (ok + bad === 0) return { succeeded: 0, lockRetry: 0, failed: 0 };
  // The seq range bounds every join to the plan's (run, task, seq) index: a call's 1,000 results
  // never scan the run's whole plan. Fresh statistics of the temp table help the planner too.
  await client.query(`ANALYZE ${RESULTS_TABLE}`);
  const lo = Number(stats[0]?.lo);
  const hi = Number(stats[0]?.hi);
  const { rowCount: succeeded } = await client.query(
    `WITH done AS (
       UPDATE roundtrip.writeback_plans p
          SET status = 'succeeded', salesforce_id = coalesce(r.sf_id, p.salesforce_id),
              attempts = p.attempts + 1, job_id = coalesce($3, p.job_id), updated_at = now()
         FROM ${RESULTS_TABLE} r
        WHERE p.run_id = $1 AND p.task = $2 AND p.seq BETWEEN $5 AND $6 AND p.seq = r.seq AND p.status IN ('planned', 'sent') AND r.success
        RETURNING p.task, p.key, p.salesforce_id, p.value_hash, p.payload, p.run_id)
     INSERT INTO roundtrip.sync_state AS s (task, key, salesforce_id, value_hash, synced_values, synced_at, run_id)
     SELECT task, key, salesforce_id, value_hash, payload, $4, run_id FROM done
     ON CONFLICT (task, key) DO UPDATE
        SET salesforce_id = coalesce(EXCLUDED.salesforce_id, s.salesforce_id), value_hash = EXCLUDED.value_hash,
            synced_values = EXCLUDED.synced_values, synced_at = EXCLUDED.synced_at, run_id = EXCLUDED.run_id`,
    [args.runId, args.task, args.jobId, args.syncedAt, lo, hi],
  );
  if (bad === 0) return { succeeded: succeeded ?? 0, lockRetry: 0, failed: 0 };
  const { rowCount: failed } = await client.query(
    `WITH failed AS (
       UPDATE roundtrip.writeback_plans p
          SET status = 'failed', attempts = p.attempts + 1, job_id = coalesce($3, p.job_id), updated_at = now()
         FROM ${RESULTS_TABLE} r
        WHERE p.run_id = $1 AND p.task = $2 AND p.seq BETWEEN $5 AND $6 AND p.seq = r.seq AND p.status IN ('planned', 'sent') AND NOT r.success
          AND NOT (r.code = '${ROW_LOCK_ERROR}' AND p.attempts < $4)
        RETURNING p.key, p.salesforce_id, p.payload, r.sf_id, r.code, r.message, r.fields)
     INSERT INTO roundtrip.writeback_errors (run_id, task, key, salesforce_id, stage, job_id, code, message, fields, payload)
     SELECT $1, $2, key, coalesce(nullif(sf_id, ''), salesforce_id), 'push', $3,
            coalesce(code, 'UNKNOWN_EXCEPTION'), coalesce(message, 'Salesforce gave no reason'), coalesce(fields, '{}'), payload
       FROM failed`,
    [args.runId, args.task, args.jobId, retries, lo, hi],
  );
  const { rowCount: lockRetry } = await client.query(
    `UPDATE roundtrip.writeback_plans p
        SET status = 'planned', attempts = p.attempts + 1, job_id = coalesce($3, p.job_id), updated_at = now()
       FROM ${RESULTS_TABLE} r
      WHERE p.run_id = $1 AND p.task = $2 AND p.seq BETWEEN $5 AND $6 AND p.seq = r.seq AND p.status IN ('planned', 'sent') AND NOT r.success
        AND r.code = '${ROW_LOCK_ERROR}' AND p.attempts < $4`,
    [args.runId, args.task, args.jobId, retries, lo, hi],
  );
  return { succeeded: succeeded ?? 0, lockRetry: lockRetry ?? 0, failed: failed ?? 0 };
}
