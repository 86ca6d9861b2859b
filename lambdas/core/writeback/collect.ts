/**
 * Collect (DESIGN.md §1 step 4): polls the task's Bulk ingest jobs once each; when every job is
 * finished, streams each job's `successfulResults` and `failedResults` CSV into PostgreSQL with
 * `COPY … FROM STDIN` (never into JS arrays: a million results stay a stream), applies them to the
 * plan, `sync_state` and `writeback_errors` (results.ts) and marks the job collected in the same
 * transaction, so a retried collect neither loses nor doubles a result. Records refused with
 * `UNABLE_TO_LOCK_ROW` are then retried serially through Collections, a bounded number of times.
 */
import { pipeline } from 'node:stream/promises';
import type { PoolClient } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { withClient, inTransaction } from '../../connectors/postgres';
import type { SalesforceConnector } from '../../connectors/salesforce';
import { bulkPollDelaySeconds } from '../../connectors/salesforce/poll';
import { getIngestJob, isFinalIngestState, streamIngestResults } from '../../connectors/salesforce/writes';
import type { Logger } from '../../shared/logging';
import { salesforceOf, type CoreDeps } from '../deps';
import type { WritebackCollectInput, WritebackCollectOutput } from './contracts';
import { addApiCalls, mapWritebackTask, type WritebackMapping } from './plan';
import { bulkColumns, finishWriteback, retryLockedRows, withTaskLock, type PushOptions } from './push';
import { applyResults, createResultsTable, ROW_LOCK_RETRIES, RESULTS_TABLE } from './results';
import { writebackTaskOf } from './state';

interface JobRecord {
  job_id: string;
  state: string;
  first_seq: string;
  last_seq: string;
  collected_at: Date | null;
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
interface FinishedJob {
  id: string;
  state: string;
  first: number;
  last: number;
  processed: number;
  failed: number;
  errorMessage?: string;
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

/** Applies one finished job's result files, in one transaction with its collected mark. */
async function collectJob(
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

/**
 * Polls the task's Bulk jobs and, once all are finished, collects their results (see the module
 * comment). Answers `bulk-pending` (wait `waitSeconds`, call again with this output) or
 * `collected` with the task's counts. Idempotent: collected jobs are skipped.
 */
export async function collectWriteback(
  deps: CoreDeps,
  input: WritebackCollectInput,
  options: Pick<PushOptions, 'lockRetries'> = {},
): Promise<WritebackCollectOutput> {
  return withTaskLock(deps, input.task, () => collectLocked(deps, input, options));
}

async function collectLocked(
  deps: CoreDeps,
  input: WritebackCollectInput,
  options: Pick<PushOptions, 'lockRetries'>,
): Promise<WritebackCollectOutput> {
  const task = writebackTaskOf(deps, input.task);
  const logger = deps.logger.child({ runId: input.runId, task: input.task, step: 'writeback-collect' });
  const sf = await salesforceOf(deps, `Write-back ${input.task}`);
  const callsBefore = sf.apiCalls;
  const lockRetries = options.lockRetries ?? ROW_LOCK_RETRIES;
  try {
    const { rows: jobs } = await deps.pg.query<JobRecord>(
      `SELECT job_id, state, first_seq, last_seq, collected_at FROM roundtrip.writeback_jobs
        WHERE run_id = $1 AND task = $2 AND api = 'bulk' AND state <> 'Superseded' ORDER BY chunk`,
      [input.runId, input.task],
    );
    const open = jobs.filter((j) => j.collected_at === null);
    const finished: FinishedJob[] = [];
    let running = 0;
    for (const j of open) {
      const job = await getIngestJob(sf, j.job_id);
      await deps.pg.query(
        `UPDATE roundtrip.writeback_jobs SET state = $4, records_processed = $5, records_failed = $6, updated_at = now()
          WHERE run_id = $1 AND task = $2 AND job_id = $3`,
        [input.runId, input.task, job.id, job.state, job.numberRecordsProcessed, job.numberRecordsFailed],
      );
      if (!isFinalIngestState(job.state)) {
        running += 1;
        continue;
      }
      finished.push({
        id: job.id,
        state: job.state,
        first: Number(j.first_seq),
        last: Number(j.last_seq),
        processed: job.numberRecordsProcessed,
        failed: job.numberRecordsFailed,
        ...(job.errorMessage ? { errorMessage: job.errorMessage } : {}),
      });
    }
    if (running > 0) {
      const attempt = input.attempt + 1;
      logger.info('Bulk ingest jobs still running', { running, attempt });
      return { ...input, attempt, waitSeconds: bulkPollDelaySeconds(attempt) };
    }
    // What was sent is collected whatever changed in the org's permissions since.
    const mapping = mapWritebackTask(task, await sf.describe(task.object), { checkAccess: false });
    for (const job of finished) {
      await collectJob(deps, sf, mapping, input.runId, input.task, job, lockRetries, logger);
    }
    await retryLockedRows(deps, sf, mapping, input.runId, input.task, lockRetries);
    return await finishWriteback(deps, input.runId, task, input.task, 'bulk');
  } finally {
    const spent = sf.apiCalls - callsBefore;
    if (spent > 0) {
      await withClient(deps.pg, (client) =>
        inTransaction(client, () => addApiCalls(client, input.runId, input.task, spent)),
      );
    }
  }
}
