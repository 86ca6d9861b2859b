/**
 * Applying per-record results to the state tables, set-based, for both APIs: Collections results
 * (arrays from one call) and Bulk result files (COPY'd into a temp table). One rule for both:
 * - success: the ledger row becomes `succeeded` with its Salesforce Id, and `sync_state` takes the
 *   value hash, the values, the Id and the time; an upsert Salesforce created while `sync_state`
 *   held another Id for its key is recorded for a look-up of that record ({@link CREATED_BESIDE_CODE},
 *   {@link reportRecordsCreatedBeside});
 * - `UNABLE_TO_LOCK_ROW` below the retry limit: the row goes back to `planned` with one more
 *   attempt, for the serial retry pass;
 * - any other failure (or a lock past the limit): the row becomes `failed` and
 *   `roundtrip.writeback_errors` gets Salesforce's code, message and fields.
 */
import type { ClientBase, PoolClient } from 'pg';
import { withTransaction } from '../../connectors/postgres';
import type { RecordResult, SalesforceConnector } from '../../connectors/salesforce';
import { queryAllRecords, soqlInLists } from '../../connectors/salesforce/writes';
import type { CoreDeps } from '../deps';
import type { CallBudget } from './budget';
import { MESSAGE_VALUE_CHARS, sqlLiteral } from './state';

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
    seq bigint NOT NULL, success boolean NOT NULL, sf_id text, code text, message text, fields text[],
    created boolean
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
    `INSERT INTO ${RESULTS_TABLE} (seq, success, sf_id, code, message, fields, created)
     SELECT seq, success, sf_id, code, message,
            CASE WHEN fields IS NULL THEN '{}'::text[] ELSE ARRAY(SELECT jsonb_array_elements_text(fields::jsonb)) END,
            created
       FROM unnest($1::bigint[], $2::boolean[], $3::text[], $4::text[], $5::text[], $6::text[], $7::boolean[])
            AS r(seq, success, sf_id, code, message, fields, created)`,
    [
      seqs,
      results.map((r) => r.success === true),
      results.map((r) => r.id ?? null),
      first.map((e) => e?.statusCode ?? null),
      messages,
      first.map((e) => JSON.stringify(e?.fields ?? [])),
      // An upsert's result says whether Salesforce created the record (salesforce-wire.md).
      results.map((r) => (typeof r.created === 'boolean' ? r.created : null)),
    ],
  );
}

/**
 * The code of an upsert Salesforce answered `created` for, while `sync_state` held another record's
 * Id for its key (an earlier sync of the task), and that record is live under another key (or
 * none): its key was changed in Salesforce, and the upsert made a second record beside it. The
 * write succeeded (the values are on the new record, which `sync_state` now points to); the row
 * keeps the old record's Id, and its message the new one's and what to do (docs/writeback.md, "A
 * record's key changed in Salesforce"). The plan's refusal of such a key, when it can see it, is
 * {@link KEY_CHANGED_CODE} (plan.ts).
 */
export const KEY_CHANGED_CREATED_CODE = 'KEY_CHANGED_RECORD_CREATED';

/**
 * The code such a record has from its result until the old record is looked up
 * ({@link reportRecordsCreatedBeside}): written with the result, in its transaction, so a step that
 * dies before the look-up loses nothing; left so (its message says the look-up was not made yet)
 * when no step of the run looks it up, until the task's next real plan does (reconcile.ts,
 * lookUpSecondRecordsOfEndedRuns).
 */
export const CREATED_BESIDE_CODE = 'CREATED_BESIDE_SYNCED_RECORD';

/**
 * The codes of `writeback_errors` rows (stage `push`) whose record was written: reported, not
 * failed (`roundtrip errors` counts them apart).
 */
export const WRITTEN_ERROR_CODES: readonly string[] = [KEY_CHANGED_CREATED_CODE, CREATED_BESIDE_CODE];

/**
 * A CTE of the success statement of {@link applyResults} (`done`: the ledger rows it marked
 * succeeded, with the result's `created`): an upsert Salesforce created while `sync_state` held
 * another Id for the key goes to `writeback_errors` as {@link CREATED_BESIDE_CODE}, with the old Id.
 * Every part of one statement reads the same snapshot: `s` is `sync_state` before the statement
 * points the key to the new record.
 */
const CREATED_BESIDE_SQL = `beside AS (
       INSERT INTO roundtrip.writeback_errors (run_id, task, key, salesforce_id, stage, job_id, code, message, payload)
       SELECT d.run_id, d.task, d.key, s.salesforce_id, 'push', $3, ${sqlLiteral(CREATED_BESIDE_CODE)},
              format(${sqlLiteral(
                'key %s: Salesforce created record %s for it, while this task last wrote the key to record %s (roundtrip.sync_state), which now points to %s: the key of record %s was changed in Salesforce, or the record was deleted. The look-up of record %s was not made yet (the step ended before it; if no step of this run makes it, the next plan of the task does, and rewrites this row): if it is live in Salesforce under another key, the key now has two records: merge them, or set the key back on one',
              )}, left(d.key, ${MESSAGE_VALUE_CHARS}), d.salesforce_id, s.salesforce_id, d.salesforce_id, s.salesforce_id, s.salesforce_id),
              d.payload
         FROM done d JOIN roundtrip.sync_state s ON s.task = d.task AND s.key = d.key
        WHERE d.created AND d.operation = 'upsert' AND s.salesforce_id IS NOT NULL AND d.salesforce_id IS NOT NULL
          AND s.salesforce_id <> d.salesforce_id)`;

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
    made: string;
    lo: string | null;
    hi: string | null;
  }>(
    `SELECT count(*) FILTER (WHERE success) AS ok, count(*) FILTER (WHERE NOT success) AS bad,
            count(*) FILTER (WHERE success AND created) AS made, min(seq) AS lo, max(seq) AS hi
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
        RETURNING p.task, p.key, p.salesforce_id, p.value_hash, p.payload, p.run_id, p.operation, r.created)
     ${Number(stats[0]?.made ?? 0) > 0 ? `, ${CREATED_BESIDE_SQL}` : ''}
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

/**
 * The run's records of the task reported {@link KEY_CHANGED_CREATED_CODE}: upserts written as a
 * second record (its figures' `secondRecords`), by the (run, task, stage) index.
 */
export async function countSecondRecords(
  db: Pick<ClientBase, 'query'>,
  runId: string,
  task: string,
): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM roundtrip.writeback_errors
      WHERE run_id = $1 AND task = $2 AND stage = 'push' AND code = $3`,
    [runId, task, KEY_CHANGED_CREATED_CODE],
  );
  return rows[0]?.n ?? 0;
}

/**
 * Looks up the old records of the run's upserts that Salesforce created beside one the task had
 * synced ({@link CREATED_BESIDE_CODE} rows of `writeback_errors`, written with their results), in
 * as few calls as it can: one query of up to 200 Ids, `SELECT Id, <key> FROM <object> WHERE Id
 * IN (…)`. A record found live holds another key now (or none): its row becomes
 * {@link KEY_CHANGED_CREATED_CODE}, naming the key, both records, what the old one holds and what to
 * do. A record not found (deleted: `query` leaves deleted records out) was re-created as usual:
 * its row goes. No call when the run has no such row (the normal case: one index read). Each
 * query's rows are rewritten in a transaction of their own, only while still unchecked: a step
 * that dies in between leaves them unchecked for its retry to look up again, never twice
 * reported. Stops before a query `budget` has no time for (its `handedOn` then says so).
 * `inTransaction` runs in each query's transaction, after its rows are rewritten (a later plan's
 * look-up for an ended run counts the run's figures again there: reconcile.ts). Answers the rows
 * reported.
 */
export async function reportRecordsCreatedBeside(
  deps: CoreDeps,
  sf: SalesforceConnector,
  args: {
    runId: string;
    task: string;
    object: string;
    keyField: string;
    budget?: CallBudget;
    inTransaction?: (client: PoolClient) => Promise<void>;
  },
): Promise<number> {
  const { runId, task, object, keyField, budget, inTransaction } = args;
  const { rows } = await deps.pg.query<{ id: string }>(
    `SELECT DISTINCT salesforce_id AS id FROM roundtrip.writeback_errors
      WHERE run_id = $1 AND task = $2 AND stage = 'push' AND code = $3 AND salesforce_id IS NOT NULL
      ORDER BY 1`,
    [runId, task, CREATED_BESIDE_CODE],
  );
  // Ids Salesforce answered: letters and digits only, quoted all the same.
  const ids = rows.map((r) => r.id).filter((id) => /^[A-Za-z0-9]{15,18}$/.test(id));
  if (ids.length === 0) return 0;
  const select = `SELECT Id, ${keyField} FROM ${object} WHERE Id IN `;
  const held = (r: Record<string, unknown>): unknown =>
    Object.entries(r).find(([name]) => name.toLowerCase() === keyField.toLowerCase())?.[1];
  let reported = 0;
  for (const { values: asked, list } of soqlInLists(select, ids, (id) => `'${id}'`)) {
    if (budget && !budget.mayStart('read')) break;
    const found = await queryAllRecords<Record<string, unknown>>(sf, `${select}(${list})`);
    const live = found.filter((r): r is Record<string, unknown> & { Id: string } => typeof r.Id === 'string');
    const keys = live.map((r) => {
      const value = held(r);
      return value === null || value === undefined || value === '' ? null : String(value);
    });
    reported += await withTransaction(deps.pg, async (client) => {
      const { rowCount } = await client.query(
        `UPDATE roundtrip.writeback_errors e
            SET code = $4, fields = ARRAY[$5::text],
                message = format($6, left(e.key, ${MESSAGE_VALUE_CHARS}), l.salesforce_id, e.salesforce_id,
                                 CASE WHEN f.held IS NULL THEN 'no ' || $5 ELSE $5 || ' ' || left(f.held, ${MESSAGE_VALUE_CHARS}) END,
                                 $5, l.salesforce_id, l.salesforce_id, $5, e.salesforce_id, left(e.key, ${MESSAGE_VALUE_CHARS}),
                                 left(e.key, ${MESSAGE_VALUE_CHARS}), e.salesforce_id, l.salesforce_id)
           FROM unnest($7::text[], $8::text[]) AS f(id, held), roundtrip.writeback_plans l
          WHERE e.run_id = $1 AND e.task = $2 AND e.stage = 'push' AND e.code = $3 AND e.salesforce_id = f.id
            AND l.run_id = e.run_id AND l.task = e.task AND l.key = e.key`,
        [
          runId,
          task,
          CREATED_BESIDE_CODE,
          KEY_CHANGED_CREATED_CODE,
          keyField,
          KEY_CHANGED_CREATED_MESSAGE,
          live.map((r) => r.Id),
          keys,
        ],
      );
      await client.query(
        `DELETE FROM roundtrip.writeback_errors
          WHERE run_id = $1 AND task = $2 AND stage = 'push' AND code = $3 AND salesforce_id = ANY($4::text[])`,
        [runId, task, CREATED_BESIDE_CODE, asked],
      );
      if (inTransaction) await inTransaction(client);
      return rowCount ?? 0;
    });
  }
  if (reported > 0) {
    deps.logger.warn(
      'Upserts created a second record: the key of the record the task had synced was changed in Salesforce',
      {
        runId,
        task,
        records: reported,
        code: KEY_CHANGED_CREATED_CODE,
      },
    );
  }
  return reported;
}

/**
 * The message of a {@link KEY_CHANGED_CREATED_CODE} row, a `format()` pattern: the key, the new
 * record, the old record, what the old record's key field holds now, and what to do.
 */
const KEY_CHANGED_CREATED_MESSAGE =
  'key %s: Salesforce created record %s for it, as no record held the key any more: record %s, which this task last wrote with this key (roundtrip.sync_state), holds %s in Salesforce now: its %s was changed in Salesforce. The values were written to the new record %s, which roundtrip.sync_state now holds for the key (the next run compares with it); the old record keeps the values it had. The key now has a second record: merge the two in Salesforce (keeping the one other systems link to); or, if the change was a mistake, delete record %s and set %s of record %s back to %s (the next run whose values change updates it); or, if the new key is right, make the source write it instead of %s (its row then updates record %s) and delete record %s.';
