/**
 * `npm run bench -- prune [--runs N] [--rows M]` (default 10 runs of 200,000 records): the first
 * prune of a backlog of old runs' details (`postgres.keepRunDetailsDays` turned on late, or
 * lowered), on a real PostgreSQL (embedded, or DATABASE_URL). N finished runs of an update task,
 * each with M ledger rows (`writeback_plans`: 1 % failed, 10 left `sent`, the rest succeeded), its
 * plan in M / 1000 pages, and an error per failed record, are written with SQL into a database of
 * their own; then pruned twice, each time in a copy of it (`CREATE DATABASE … TEMPLATE`):
 *
 * 1. `oneTransaction`: every run due in one transaction (`batchRows: Infinity`: the statements of
 *    the prune as it was before it went in batches);
 * 2. `batched`: as the Report step prunes ({@link PRUNE_BATCH_ROWS}), in reports of
 *    {@link REPORT_LAMBDA_MS} each (the Report Lambda's timeout: each report's prune gets that
 *    time left, and the next one goes on), counted.
 *
 * For each: the whole prune's time, its longest transaction, the WAL it wrote, and the longest a
 * concurrent transaction waited to lock a run due (as a plan that resolves an old run's records
 * `sent` locks its row, reconcile.ts), probed every 200 ms on another connection with the oldest
 * run not pruned yet. `lockWaitRatio` divides the one transaction's longest wait by the batched
 * one's. Prints one JSON object as its last line.
 */
import type { Pool } from 'pg';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../emulators/postgres/embedded';
import { createPool, migrate } from '../lambdas/connectors/postgres';
import { PRUNE_BATCH_ROWS, pruneRunDetails, type PrunedDetails } from '../lambdas/core/writeback/report';
import { PIPELINE_STEPS } from '../statemachine/definition';
import { option } from './_common';

const PIPELINE = 'bench';
const TASK = 'Lead-score';
/** The Report Lambda's timeout (statemachine/definition.ts PIPELINE_STEPS.report). */
const REPORT_LAMBDA_MS = PIPELINE_STEPS.report.timeoutSeconds * 1000;
const DAY = 86_400_000;

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

/** Writes `runs` finished runs, a day apart and more than 30 days old, of `rows` records each. */
export async function writeBacklog(pool: Pool, runs: number, rows: number): Promise<void> {
  const started = Date.now();
  for (let i = 0; i < runs; i += 1) {
    const runId = `bench-run-${String(i).padStart(4, '0')}`;
    const at = new Date(Date.now() - (31 + runs - i) * DAY);
    const failed = Math.floor(rows / 100);
    await pool.query(
      `INSERT INTO roundtrip.runs (run_id, pipeline, status, started_at, finished_at, summary)
       VALUES ($1, $2, 'succeeded', $3, $3::timestamptz + interval '20 minutes',
               jsonb_build_object('writeback', jsonb_build_object($4::text, jsonb_build_object(
                 'sourceRows', $5::int, 'changed', $5::int, 'written', $5::int - $6::int - 10,
                 'failed', $6::int, 'outcomeUnknown', 10, 'heldBack', 0))))`,
      [runId, PIPELINE, at, TASK, rows, failed],
    );
    await pool.query(
      `INSERT INTO roundtrip.writeback_plans
              (run_id, task, key, seq, salesforce_id, operation, payload, value_hash, status, job_id, attempts)
       SELECT $1, $2, id, g, id, 'update', jsonb_build_object('Id', id, 'Score__c', g % 100), md5(g::text),
              CASE WHEN g % 100 = 0 THEN 'failed' WHEN g % ($3::int / 10) = 1 THEN 'sent' ELSE 'succeeded' END,
              '750' || lpad((g / 10000)::text, 15, '0'), 1
         FROM generate_series(1, $3::int) AS g, LATERAL (SELECT '00Q' || lpad(g::text, 15, '0') AS id) k`,
      [runId, TASK, rows],
    );
    await pool.query(
      `INSERT INTO roundtrip.writeback_plan_pages
              (run_id, task, page, first_seq, rows, operation, keys, salesforce_ids, payloads, currents)
       SELECT run_id, task, ((seq - 1) / 1000)::int, min(seq), count(*), 'update',
              array_agg(key ORDER BY seq), array_agg(salesforce_id ORDER BY seq),
              array_agg(payload ORDER BY seq), array_agg(jsonb_build_object('Score__c', 0) ORDER BY seq)
         FROM roundtrip.writeback_plans WHERE run_id = $1 GROUP BY run_id, task, (seq - 1) / 1000`,
      [runId],
    );
    await pool.query(
      `INSERT INTO roundtrip.writeback_errors (run_id, task, key, salesforce_id, stage, job_id, code, message, fields, payload)
       SELECT run_id, task, key, salesforce_id, 'push', job_id, 'FIELD_CUSTOM_VALIDATION_EXCEPTION',
              'Score must be below 100', '{Score__c}', payload
         FROM roundtrip.writeback_plans WHERE run_id = $1 AND status = 'failed'`,
      [runId],
    );
  }
  await pool.query(`VACUUM ANALYZE roundtrip.runs, roundtrip.writeback_plans, roundtrip.writeback_plan_pages,
                    roundtrip.writeback_errors`);
  log(
    `  backlog: ${runs} runs of ${rows} records written in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
}

interface Measured {
  readonly pruned: Omit<PrunedDetails, 'runsLeft'>;
  readonly seconds: number;
  readonly longestTransactionSeconds: number;
  readonly walMb: number;
  readonly longestLockWaitSeconds: number;
  readonly reports: number;
}

/** Probes, every 200 ms until `stop`, how long locking the oldest run not pruned yet takes. */
async function probeLockWaits(pool: Pool, stop: () => boolean): Promise<number> {
  let longest = 0;
  while (!stop()) {
    const client = await pool.connect();
    try {
      const { rows } = await client.query<{ run_id: string }>(
        `SELECT run_id FROM roundtrip.runs WHERE pipeline = $1 AND NOT coalesce(summary ? 'detailsPrunedAt', false)
          ORDER BY started_at LIMIT 1`,
        [PIPELINE],
      );
      const runId = rows[0]?.run_id;
      if (runId) {
        const started = Date.now();
        await client.query('BEGIN');
        await client.query('SELECT 1 FROM roundtrip.runs WHERE run_id = $1 FOR UPDATE', [runId]);
        await client.query('COMMIT');
        longest = Math.max(longest, (Date.now() - started) / 1000);
      }
    } finally {
      client.release();
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return longest;
}

async function walLsn(pool: Pool): Promise<string> {
  const { rows } = await pool.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  return rows[0]?.lsn ?? '0/0';
}

async function measure(pool: Pool, batched: boolean): Promise<Measured> {
  const total = { runs: 0, pages: 0, ledgerRows: 0, errors: 0, batches: 0 };
  let longestTransaction = 0;
  let reports = 0;
  let done = false;
  const walBefore = await walLsn(pool);
  const probe = probeLockWaits(pool, () => done);
  const started = Date.now();
  try {
    for (;;) {
      reports += 1;
      const reportStarted = Date.now();
      const pruned = await pruneRunDetails(pool, PIPELINE, 30, new Date(), {
        ...(batched
          ? { timeLeft: () => REPORT_LAMBDA_MS - (Date.now() - reportStarted) }
          : { batchRows: Number.POSITIVE_INFINITY }),
        logger: {
          info: (message, attributes) => {
            const ms = Number(attributes?.ms ?? 0);
            longestTransaction = Math.max(longestTransaction, ms / 1000);
            log(`  ${message}: ${JSON.stringify(attributes)}`);
          },
          warn: () => undefined,
          error: () => undefined,
          debug: () => undefined,
          child() {
            return this;
          },
        },
      });
      total.runs += pruned.runs;
      total.pages += pruned.pages;
      total.ledgerRows += pruned.ledgerRows;
      total.errors += pruned.errors;
      total.batches += pruned.batches;
      if (pruned.runsLeft === 0) break;
      log(`  report ${reports} stopped with ${pruned.runsLeft} runs left; the next report goes on`);
    }
  } finally {
    done = true;
  }
  const seconds = (Date.now() - started) / 1000;
  const longestLockWaitSeconds = await probe;
  const { rows } = await pool.query<{ bytes: string }>(
    `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1) AS bytes`,
    [walBefore],
  );
  return {
    pruned: total,
    seconds,
    longestTransactionSeconds: longestTransaction,
    walMb: Math.round(Number(rows[0]?.bytes ?? 0) / 1048576),
    longestLockWaitSeconds,
    reports,
  };
}

/** `url` with its database replaced by `database`. */
function onDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

export async function run(argv: string[]): Promise<void> {
  const runs = option(argv, 'runs', 10);
  const rows = option(argv, 'rows', 200_000);
  let server: EmbeddedPostgres | undefined;
  const url = process.env.DATABASE_URL ?? (server = await startEmbeddedPostgres()).url;
  const admin = createPool({ url }, { ssl: { mode: 'disable' }, max: 1 });
  const backlog = 'roundtrip_prune_backlog';
  const measured: Record<string, Measured> = {};
  let kept = 0;
  try {
    log(`prune: ${runs} old runs of ${rows} records (batches of ${PRUNE_BATCH_ROWS} detail rows)`);
    // Written once, then copied for each way of pruning (a file copy, minutes faster than again).
    await admin.query(`DROP DATABASE IF EXISTS ${backlog}`);
    await admin.query(`CREATE DATABASE ${backlog}`);
    const seed = createPool({ url: onDatabase(url, backlog) }, { ssl: { mode: 'disable' }, max: 1 });
    try {
      await migrate(seed);
      await writeBacklog(seed, runs, rows);
    } finally {
      await seed.end();
    }
    for (const mode of ['oneTransaction', 'batched'] as const) {
      const db = `roundtrip_prune_${mode.toLowerCase()}`;
      await admin.query(`DROP DATABASE IF EXISTS ${db}`);
      const copying = Date.now();
      await admin.query(`CREATE DATABASE ${db} TEMPLATE ${backlog} STRATEGY FILE_COPY`);
      log(`${mode} (backlog copied in ${((Date.now() - copying) / 1000).toFixed(1)} s):`);
      const pool = createPool({ url: onDatabase(url, db) }, { ssl: { mode: 'disable' }, max: 4 });
      try {
        measured[mode] = await measure(pool, mode === 'batched');
        const { rows: sent } = await pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM roundtrip.writeback_plans WHERE status = 'sent'`,
        );
        kept = sent[0]?.n ?? 0;
      } finally {
        await pool.end();
      }
      await admin.query(`DROP DATABASE ${db}`);
    }
    await admin.query(`DROP DATABASE ${backlog}`);
    const one = measured.oneTransaction as Measured;
    const batched = measured.batched as Measured;
    const figures = {
      runs,
      rowsPerRun: rows,
      oneTransaction: one,
      batched,
      keptSentRows: kept,
      lockWaitRatio: Number(
        (one.longestLockWaitSeconds / Math.max(0.001, batched.longestLockWaitSeconds)).toFixed(1),
      ),
      longestTransactionRatio: Number(
        (one.longestTransactionSeconds / Math.max(0.001, batched.longestTransactionSeconds)).toFixed(1),
      ),
      timeRatio: Number((batched.seconds / one.seconds).toFixed(2)),
    };
    process.stdout.write(`${JSON.stringify(figures)}\n`);
  } finally {
    await admin.end();
    await server?.stop();
  }
}
