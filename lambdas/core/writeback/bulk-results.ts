/**
 * A Bulk ingest job's results, applied: each finished job's `successfulResults` and
 * `failedResults` CSV streamed into PostgreSQL with `COPY … FROM STDIN` (never into JS arrays),
 * joined to the ledger by the job's first column (Id for update, the external ID otherwise) and
 * applied with results.ts, in one transaction with the job's collected mark. Used by Collect for
 * its run's jobs, and by the plan for the jobs of runs that ended before collecting them.
 */
import { pipeline } from 'node:stream/promises';
import type { PoolClient } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { inTransaction, withClient } from '../../connectors/postgres';
import type { SalesforceConnector } from '../../connectors/salesforce';
import { type IngestJob, streamIngestResults } from '../../connectors/salesforce/writes';
import type { Logger } from '../../shared/logging';
import type { CoreDeps } from '../deps';
import type { WritebackMapping } from './plan';
import { applyResults, createResultsTable, RESULTS_TABLE } from './results';

/** The columns of a task's Bulk CSV, in order: the record's Id first for update. */
export function bulkColumns(mapping: WritebackMapping): string[] {
  const fields = mapping.fields.map((m) => m.field.name);
  return mapping.task.mode === 'update' ? ['Id', ...fields] : fields;
}

/** COPYs one result file of a job into a temp table of text columns. */
async function copyResultFile(
  client: PoolClient,
  sf: SalesforceConnector,
  jobId: string,
  which: 'successfulResults' | 'failedResults',
  columns: readonly string[],
): Promise<void> {
  const table = which === 'successfulResults' ? 'wb_bulk_ok' : 'wb_bulk_failed';
  const defs = ['sf_id text', 'sf_extra text', ...columns.map((_, i) => `c${i} text`)];
  await client.query(`CREATE TEMP TABLE IF NOT EXISTS ${table} (${defs.join(', ')}) ON COMMIT DROP`);
  const body = await streamIngestResults(sf, jobId, which);
  // The header names Salesforce's columns; HEADER true skips it. An empty file is an empty table.
  await pipeline(body, client.query(copyFrom(`COPY ${table} FROM STDIN (FORMAT csv, HEADER true)`)));
}

/** A Bulk ingest job that reached a final state, with the seq range it carried and its counters. */
export interface FinishedJob {
  id: string;
  state: string;
  first: number;
  last: number;
  processed: number;
  failed: number;
  errorMessage?: string;
}

/** A finished job as Salesforce answered it, with the seq range its row records. */
export function finishedJob(job: IngestJob, range: { first_seq: string; last_seq: string }): FinishedJob {
  return {
    id: job.id,
    state: job.state,
    first: Number(range.first_seq),
    last: Number(range.last_seq),
    processed: job.numberRecordsProcessed,
    failed: job.numberRecordsFailed,
    ...(job.errorMessage ? { errorMessage: job.errorMessage } : {}),
  };
}

/**
 * The code, message and fields of a failedResults row's `sf__Error` (`r.sf_extra`), as a subquery
 * for a LATERAL join. Salesforce writes `CODE:message:fields --` (salesforce-wire.md); the field
 * list may be empty, with or without a space before `--` (`ENTITY_IS_DELETED:entity is deleted:--`),
 * and the message may hold colons and ` -- ` itself, so the fields are the last `:`-part before
 * the closing `--`. Several errors of one record follow each other (`… -- NEXT_CODE:…`): the
 * first gives the code and fields, the others are kept in the message. Text of any other shape
 * is the message whole, under UNKNOWN_EXCEPTION.
 */
export const BULK_ERROR_SQL = `
  SELECT coalesce(m[1], 'UNKNOWN_EXCEPTION') AS code,
         coalesce(nullif(btrim(m[2]), ''), nullif(btrim(errs[1]), ''), 'Salesforce gave no reason')
           || CASE WHEN cardinality(errs) > 1 THEN ' (and ' || array_to_string(errs[2:], ' -- ') || ')' ELSE '' END
           AS message,
         coalesce(array_remove(string_to_array(m[3], ','), ''), '{}') AS fields
    FROM (SELECT regexp_split_to_array(regexp_replace(btrim(coalesce(r.sf_extra, '')), '\\s*--$', ''),
                                  '\\s*--\\s+(?=[A-Z][A-Z0-9_]*:)') AS errs) AS split
    CROSS JOIN LATERAL (SELECT regexp_match(errs[1], '^([A-Z][A-Z0-9_]*):(.*):([A-Za-z0-9_,]*)\\s*$') AS m) AS parsed`;

/**
 * Applies one finished job's result files, in one transaction with its collected mark. Records
 * refused with `UNABLE_TO_LOCK_ROW` go back to `planned` for the retry pass while they have
 * attempts left (`lockRetries`), else fail.
 */
export async function collectJob(
  deps: CoreDeps,
  sf: SalesforceConnector,
  mapping: WritebackMapping,
  runId: string,
  taskName: string,
  job: FinishedJob,
  lockRetries: number,
  logger: Logger,
): Promise<void> {
  const columns = bulkColumns(mapping);
  // The first column identifies the record: Id for update, the external ID otherwise.
  const match =
    mapping.task.mode === 'update'
      ? 'p.salesforce_id = r.c0'
      : `p.payload->>${`'${(mapping.keyField as string).replace(/'/g, "''")}'`} = r.c0`;
  await withClient(deps.pg, (client) =>
    inTransaction(client, async () => {
      await createResultsTable(client);
      const range = `p.run_id = $1 AND p.task = $2 AND p.seq BETWEEN $3 AND $4`;
      const wantOk = job.state !== 'JobComplete' || job.processed - job.failed > 0;
      const wantFailed = job.state !== 'JobComplete' || job.failed > 0;
      if (wantOk) {
        await copyResultFile(client, sf, job.id, 'successfulResults', columns);
        await client.query(
          `INSERT INTO ${RESULTS_TABLE} (seq, success, sf_id)
           SELECT p.seq, true, nullif(r.sf_id, '') FROM wb_bulk_ok r JOIN roundtrip.writeback_plans p ON ${range} AND ${match}`,
          [runId, taskName, job.first, job.last],
        );
      }
      if (wantFailed) {
        await copyResultFile(client, sf, job.id, 'failedResults', columns);
        await client.query(
          `INSERT INTO ${RESULTS_TABLE} (seq, success, sf_id, code, message, fields)
           SELECT p.seq, false, nullif(r.sf_id, ''), e.code, e.message, e.fields
             FROM wb_bulk_failed r
             CROSS JOIN LATERAL (${BULK_ERROR_SQL}) e
             JOIN roundtrip.writeback_plans p ON ${range} AND ${match}`,
          [runId, taskName, job.first, job.last],
        );
      }
      const applied = await applyResults(client, {
        runId,
        task: taskName,
        jobId: job.id,
        syncedAt: deps.clock.now(),
        lockRetries,
      });
      // Rows of the job with no result line (a job that failed as a whole, or aborted).
      const { rowCount: unprocessed } = await client.query(
        `WITH left_over AS (
           UPDATE roundtrip.writeback_plans p SET status = 'failed', updated_at = now()
            WHERE ${range} AND p.job_id = $5 AND p.status = 'sent' RETURNING p.key, p.salesforce_id, p.payload)
         INSERT INTO roundtrip.writeback_errors (run_id, task, key, salesforce_id, stage, job_id, code, message, payload)
         SELECT $1, $2, key, salesforce_id, 'push', $5, $6, $7, payload FROM left_over`,
        [
          runId,
          taskName,
          job.first,
          job.last,
          job.id,
          `BULK_JOB_${job.state.toUpperCase()}`,
          `Bulk ingest job ${job.id} ended ${job.state} without a result for this record${job.errorMessage ? `: ${sf.redact(job.errorMessage)}` : ''}`,
        ],
      );
      await client.query(
        `UPDATE roundtrip.writeback_jobs SET state = $4, records_processed = $5, records_failed = $6, error_message = $7,
                collected_at = now(), updated_at = now()
          WHERE run_id = $1 AND task = $2 AND job_id = $3`,
        [runId, taskName, job.id, job.state, job.processed, job.failed, job.errorMessage ?? null],
      );
      logger.info('Bulk ingest job collected', { jobId: job.id, state: job.state, ...applied, unprocessed });
    }),
  );
}
