/**
 * A Bulk ingest job's results, applied: each finished job's `successfulResults` and
 * `failedResults` CSV streamed into PostgreSQL with `COPY … FROM STDIN` (never into JS arrays),
 * its columns taken by the names of its header, joined to the ledger by the job's first column (Id
 * for update, the external ID otherwise) and applied with results.ts, in one transaction with the
 * job's collected mark. Used by Collect for its run's jobs, and by the plan for the jobs of runs
 * that ended before collecting them.
 */
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { PoolClient } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { inTransaction, withClient } from '../../connectors/postgres';
import type { SalesforceConnector } from '../../connectors/salesforce';
import { type IngestJob, streamIngestResults } from '../../connectors/salesforce/writes';
import type { Logger } from '../../shared/logging';
import type { CoreDeps } from '../deps';
import { applyResults, createResultsTable, RESULTS_TABLE } from './results';
import { sqlLiteral } from './state';

/**
 * The names of a CSV header line (quoted or not, `""` inside quotes; the line break and a BOM
 * dropped). Salesforce's result headers are `"sf__Id","sf__Created"` or `"sf__Id","sf__Error"`
 * (`"sf__Error"` alone before API 53.0) followed by the columns of the CSV that was sent, as it
 * was sent: {@link resultColumns} maps them by name.
 */
export function csvHeaderNames(line: string): string[] {
  const text = line.replace(/^\uFEFF/, '').replace(/\r?\n$/, '');
  const names: string[] = [];
  let i = 0;
  for (;;) {
    let name = '';
    if (text[i] === '"') {
      for (i += 1; i < text.length; i += 1) {
        if (text[i] === '"') {
          if (text[i + 1] !== '"') break;
          i += 1;
        }
        name += text[i];
      }
      i += 1; // the closing quote
    }
    const comma = text.indexOf(',', i);
    name += text.slice(i, comma === -1 ? text.length : comma);
    names.push(name);
    if (comma === -1) return names;
    i = comma + 1;
  }
}

/**
 * Reads a stream's first line (up to and including its line break) and puts the rest back, so
 * the stream then yields the lines after it. Undefined for an empty stream.
 */
function readFirstLine(body: Readable): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const done = (line: string | undefined, rest?: Buffer): void => {
      body.off('readable', onReadable).off('end', onEnd).off('error', onError);
      if (rest && rest.length > 0) body.unshift(rest);
      resolve(line);
    };
    const onReadable = (): void => {
      for (let chunk: Buffer | string | null; (chunk = body.read() as Buffer | string | null) !== null;) {
        const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        const nl = buf.indexOf(0x0a);
        if (nl === -1) {
          chunks.push(buf);
          continue;
        }
        chunks.push(buf.subarray(0, nl + 1));
        done(Buffer.concat(chunks).toString('utf8'), buf.subarray(nl + 1));
        return;
      }
    };
    const onEnd = (): void => done(chunks.length > 0 ? Buffer.concat(chunks).toString('utf8') : undefined);
    const onError = (err: Error): void => {
      body.off('readable', onReadable).off('end', onEnd).off('error', onError);
      reject(err);
    };
    body.on('readable', onReadable).on('end', onEnd).on('error', onError);
  });
}

/** A result file's columns, read from its header: where COPY puts each, and the columns sent. */
interface ResultColumns {
  /** The temp table's column of each column of the file, in the file's order. */
  readonly copied: readonly string[];
  /** The names of the columns sent with the job, in the file's order (`c0`'s first). */
  readonly sent: readonly string[];
}

/**
 * Maps a result file's header names to the temp table's columns by name, not by place: `sf__Id`
 * to `sf_id`, the file's own column (`sf__Created` in successfulResults, `sf__Error` in
 * failedResults) to `sf_extra`, and the columns sent to `c0`, `c1`, … in their order. Salesforce
 * writes its own columns first, but failedResults has `sf__Id` only from API 53.0 on
 * (salesforce-wire.md): a column the file lacks stays null. Another `sf__` column, or one of
 * Salesforce's named twice, goes to a column nothing reads.
 */
function resultColumns(
  names: readonly string[],
  which: 'successfulResults' | 'failedResults',
): ResultColumns {
  const own = new Map([
    ['sf__Id', 'sf_id'],
    [which === 'successfulResults' ? 'sf__Created' : 'sf__Error', 'sf_extra'],
  ]);
  const copied: string[] = [];
  const sent: string[] = [];
  names.forEach((name, i) => {
    const column = own.get(name);
    if (column !== undefined) {
      own.delete(name);
      copied.push(column);
    } else if (name.startsWith('sf__')) {
      copied.push(`sf_unread_${i}`);
    } else {
      copied.push(`c${sent.length}`);
      sent.push(name);
    }
  });
  return { copied, sent };
}

/**
 * COPYs one result file of a job into a temp table of text columns — `sf_id`, `sf_extra`
 * (`sf__Created` or `sf__Error`), then `c0`, `c1`, … for the columns that were sent — shaped by
 * the file's own header ({@link resultColumns}), not by the task's mapping today: a job sent by a
 * run that ended before collecting it is collected by a later plan, after the config may have
 * changed the fields. Returns the names of the sent columns (`c0`'s first), none for an empty file.
 */
async function copyResultFile(
  client: PoolClient,
  sf: SalesforceConnector,
  jobId: string,
  which: 'successfulResults' | 'failedResults',
): Promise<readonly string[]> {
  const table = which === 'successfulResults' ? 'wb_bulk_ok' : 'wb_bulk_failed';
  const body = await streamIngestResults(sf, jobId, which);
  const header = await readFirstLine(body);
  // Without the sent columns (no file, or only Salesforce's own), no record can be matched: the
  // job's records are then reported as ended without a result, not collected for ever.
  const { copied, sent } = resultColumns(header === undefined ? [] : csvHeaderNames(header), which);
  const defs = [...new Set(['sf_id', 'sf_extra', ...copied])].map((column) => `${column} text`);
  // The body waits, paused, while the table is made: an error it meets meanwhile is kept, not
  // left without a listener (which would end the process), and a failed statement releases it.
  let failed: Error | undefined;
  const keep = (err: Error): void => {
    failed ??= err;
  };
  body.on('error', keep);
  try {
    await client.query(`DROP TABLE IF EXISTS ${table}`);
    await client.query(`CREATE TEMP TABLE ${table} (${defs.join(', ')}) ON COMMIT DROP`);
  } catch (err) {
    body.destroy();
    throw err;
  } finally {
    body.off('error', keep);
  }
  if (failed) throw failed;
  // The header was read above; the rest are the records, each column into the table's column of
  // its name. An empty file is an empty table.
  const into = copied.length > 0 ? `${table} (${copied.join(', ')})` : table;
  await pipeline(body, client.query(copyFrom(`COPY ${into} FROM STDIN (FORMAT csv)`)));
  return sent;
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
 * the closing `--` (names joined by commas, a space after each tolerated). Several errors of one record follow each other (`… -- NEXT_CODE:…`): the
 * first gives the code and fields, the others are kept in the message. Text of any other shape
 * is the message whole, under UNKNOWN_EXCEPTION.
 */
export const BULK_ERROR_SQL = `
  SELECT coalesce(m[1], 'UNKNOWN_EXCEPTION') AS code,
         coalesce(nullif(btrim(m[2]), ''), nullif(btrim(errs[1]), ''), 'Salesforce gave no reason')
           || CASE WHEN cardinality(errs) > 1 THEN ' (and ' || array_to_string(errs[2:], ' -- ') || ')' ELSE '' END
           AS message,
         coalesce(array_remove(string_to_array(regexp_replace(m[3], '\\s+', '', 'g'), ','), ''), '{}') AS fields
    FROM (SELECT regexp_split_to_array(regexp_replace(btrim(coalesce(r.sf_extra, '')), '\\s*--$', ''),
                                  '\\s*--\\s+(?=[A-Z][A-Z0-9_]*:)') AS errs) AS split
    CROSS JOIN LATERAL (SELECT regexp_match(errs[1], '^([A-Z][A-Z0-9_]*):(.*):\\s*([A-Za-z0-9_]+(\\s*,\\s*[A-Za-z0-9_]+)*)?\\s*$') AS m) AS parsed`;

/**
 * Applies one finished job's result files, in one transaction with its collected mark. Records
 * refused with `UNABLE_TO_LOCK_ROW` go back to `planned` for the retry pass while they have
 * attempts left (`lockRetries`), else fail. `andThen` runs in the same transaction, after: the
 * plan counts an ended run's figures again there (reconcile.ts), which a transaction of their own
 * would leave stale for ever if the Lambda died between the two (the job is collected: no retry
 * collects it again).
 */
export async function collectJob(
  deps: CoreDeps,
  sf: SalesforceConnector,
  runId: string,
  taskName: string,
  job: FinishedJob,
  lockRetries: number,
  logger: Logger,
  andThen?: (client: PoolClient) => Promise<void>,
): Promise<void> {
  // The first column sent identifies the record: Id for update, the external ID otherwise. Its
  // name is the file's (the job was sent by the plan of its run, whatever the mapping is now).
  // An empty file (no header, not even Salesforce's columns) made a table without `c0` and holds
  // no row: nothing to match.
  const matchOn = (sent: readonly string[]): string => {
    const first = sent[0];
    if (first === undefined) return 'false';
    return first === 'Id' ? 'p.salesforce_id = r.c0' : `p.payload->>${sqlLiteral(first)} = r.c0`;
  };
  await withClient(deps.pg, (client) =>
    inTransaction(client, async () => {
      await createResultsTable(client);
      const range = `p.run_id = $1 AND p.task = $2 AND p.seq BETWEEN $3 AND $4`;
      const wantOk = job.state !== 'JobComplete' || job.processed - job.failed > 0;
      const wantFailed = job.state !== 'JobComplete' || job.failed > 0;
      if (wantOk) {
        const match = matchOn(await copyResultFile(client, sf, job.id, 'successfulResults'));
        await client.query(
          // `sf__Created` ("true"/"false"): whether an upsert created the record (salesforce-wire.md).
          `INSERT INTO ${RESULTS_TABLE} (seq, success, sf_id, created)
           SELECT p.seq, true, nullif(r.sf_id, ''), lower(btrim(r.sf_extra)) = 'true'
             FROM wb_bulk_ok r JOIN roundtrip.writeback_plans p ON ${range} AND ${match}`,
          [runId, taskName, job.first, job.last],
        );
      }
      if (wantFailed) {
        const match = matchOn(await copyResultFile(client, sf, job.id, 'failedResults'));
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
      // Rows of the job with no result line. A job that failed or was aborted left them
      // unprocessed (Salesforce: "the remaining data isn't processed"): they failed, nothing was
      // written. A job that completed processed every record, so one without a line has an outcome
      // nobody told: it is handled as a record whose call's answer was lost (a retry call's, with
      // its attempt counted and the record left `sent`): the retry pass looks an insert up by its
      // external ID, and sends an update or upsert again; failing it would insert a record again
      // that Salesforce may have created.
      let untold = 0;
      let unprocessed = 0;
      if (job.state === 'JobComplete') {
        const { rowCount } = await client.query(
          // updated_at stays the time of the send: a look-up takes only a record created after it.
          `UPDATE roundtrip.writeback_plans p SET attempts = p.attempts + 1
            WHERE ${range} AND p.job_id = $5 AND p.status = 'sent'`,
          [runId, taskName, job.first, job.last, job.id],
        );
        untold = rowCount ?? 0;
        if (untold > 0) {
          logger.warn(
            'Bulk ingest job completed without a result for some of its records: looked up or sent again',
            {
              jobId: job.id,
              records: untold,
            },
          );
        }
      } else {
        const { rowCount } = await client.query(
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
        unprocessed = rowCount ?? 0;
      }
      await client.query(
        `UPDATE roundtrip.writeback_jobs SET state = $4, records_processed = $5, records_failed = $6, error_message = $7,
                collected_at = now(), updated_at = now()
          WHERE run_id = $1 AND task = $2 AND job_id = $3`,
        [runId, taskName, job.id, job.state, job.processed, job.failed, job.errorMessage ?? null],
      );
      if (andThen) await andThen(client);
      logger.info('Bulk ingest job collected', {
        jobId: job.id,
        state: job.state,
        ...applied,
        unprocessed,
        withoutResult: untold,
      });
    }),
  );
}
