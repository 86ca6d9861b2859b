/**
 * Versioned, idempotent migrations of the `roundtrip` state schema (DESIGN.md §4).
 *
 * - Migrations are code: an ordered array of `{ version, name, sql }`. A version, once
 *   released, is never edited: its SHA-256 is stored and checked on every run, and a
 *   mismatch stops the run (add a new version instead).
 * - `roundtrip.schema_migrations` records what ran. A run applies only what is missing, so
 *   running twice changes nothing.
 * - A session-level advisory lock serialises concurrent runs (two cold starts at once, the
 *   CLI beside a Lambda): the second waits, then finds nothing to do.
 * - Each migration runs in its own transaction together with its bookkeeping row: it is
 *   applied completely or not at all.
 */
import { createHash } from 'node:crypto';
import type { Pool, PoolClient } from 'pg';
import { TerminalError } from '../../shared/errors';
import type { Logger } from '../../shared/logging';
import { silentLogger } from '../../shared/logging';
import { classifyPostgresError } from './errors';
import { inTransaction, withClient } from './pool';

/** The schema that holds the tool's own state. */
export const STATE_SCHEMA = 'roundtrip';

/**
 * The advisory lock key of migration runs: the ASCII of "round" read as a number. Any fixed
 * bigint works; it only has to differ from the keys other applications take in the database.
 */
export const MIGRATION_LOCK_KEY = 0x726f756e64;

/** How long a run waits for another run's migration lock before giving up (transient). */
export const DEFAULT_MIGRATION_LOCK_TIMEOUT_MS = 60_000;

/** One schema change. */
export interface Migration {
  /** 1, 2, 3, …: applied in this order, each once. */
  readonly version: number;
  /** A short description, stored beside the version. */
  readonly name: string;
  /** The DDL; runs inside one transaction. */
  readonly sql: string;
}

/**
 * Version 1: the state tables. Shaped for the later steps:
 * - `runs`: one row per run (Prepare inserts it, Report completes it).
 * - `extract_state`: the watermark per extract task, with the `Id` tie-breaker at the
 *   watermark and the run that advanced it. Advanced in the same transaction as the merge.
 * - `sync_state`: per write-back task and key, the hash (and values) last accepted by
 *   Salesforce and the record's Id, so a rerun never inserts a key twice and unchanged rows
 *   are not sent again.
 * - `writeback_plans`: the plan of a run, with the new values (`payload`) beside what
 *   Salesforce had (`current`); `seq` numbers the rows so chunks and Bulk jobs cover seq
 *   ranges; `job_id`/`attempts` record which call carried a row and how often it was retried.
 * - `writeback_jobs`: Bulk ingest jobs (and Collections calls) checkpointed before polling,
 *   with the seq range they carry, Salesforce's counters and when their results were collected.
 *   Not unique per chunk: a retried step may abort a job it cannot trust and start another.
 * - `writeback_errors`: per-record rejections (stage `plan`: refused locally before any API
 *   call; stage `push`: refused by Salesforce), with Salesforce's code, message and fields and
 *   the job that carried the record, so a retried collect can replace its own rows.
 *
 * Plans, jobs and errors belong to a run and are deleted with it; extract and sync state
 * outlive the runs that wrote them (no foreign key), so old runs can be pruned.
 */
const V1_STATE_TABLES = `
CREATE TABLE roundtrip.runs (
  run_id        text PRIMARY KEY,
  pipeline      text NOT NULL,
  status        text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
  dry_run       boolean NOT NULL DEFAULT false,
  input         jsonb NOT NULL DEFAULT '{}'::jsonb,
  execution_arn text,
  started_at    timestamptz NOT NULL DEFAULT now(),
  finished_at   timestamptz,
  summary       jsonb,
  error         text
);
CREATE INDEX runs_pipeline_started_at_idx ON roundtrip.runs (pipeline, started_at DESC);
CREATE INDEX runs_running_idx ON roundtrip.runs (pipeline) WHERE status = 'running';

CREATE TABLE roundtrip.extract_state (
  task         text PRIMARY KEY,
  watermark    timestamptz,
  watermark_id text,
  last_run_id  text,
  rows_total   bigint NOT NULL DEFAULT 0 CHECK (rows_total >= 0),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  CHECK (watermark_id IS NULL OR watermark IS NOT NULL)
);

CREATE TABLE roundtrip.sync_state (
  task          text NOT NULL,
  key           text NOT NULL,
  salesforce_id text,
  value_hash    text NOT NULL,
  synced_values jsonb,
  synced_at     timestamptz NOT NULL DEFAULT now(),
  run_id        text,
  PRIMARY KEY (task, key)
);
CREATE INDEX sync_state_salesforce_id_idx ON roundtrip.sync_state (task, salesforce_id)
  WHERE salesforce_id IS NOT NULL;

CREATE TABLE roundtrip.writeback_plans (
  run_id        text NOT NULL REFERENCES roundtrip.runs (run_id) ON DELETE CASCADE,
  task          text NOT NULL,
  key           text NOT NULL,
  seq           bigint NOT NULL CHECK (seq > 0),
  salesforce_id text,
  operation     text NOT NULL CHECK (operation IN ('insert', 'update', 'upsert')),
  payload       jsonb NOT NULL,
  current       jsonb,
  value_hash    text NOT NULL,
  status        text NOT NULL DEFAULT 'planned'
                CHECK (status IN ('planned', 'sent', 'succeeded', 'failed', 'rejected')),
  job_id        text,
  attempts      integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, task, key),
  UNIQUE (run_id, task, seq)
);
CREATE INDEX writeback_plans_status_idx ON roundtrip.writeback_plans (run_id, task, status);
CREATE INDEX writeback_plans_salesforce_id_idx ON roundtrip.writeback_plans (run_id, task, salesforce_id)
  WHERE salesforce_id IS NOT NULL;
CREATE INDEX writeback_plans_job_idx ON roundtrip.writeback_plans (run_id, task, job_id)
  WHERE job_id IS NOT NULL;

CREATE TABLE roundtrip.writeback_jobs (
  run_id            text NOT NULL REFERENCES roundtrip.runs (run_id) ON DELETE CASCADE,
  task              text NOT NULL,
  job_id            text NOT NULL,
  api               text NOT NULL CHECK (api IN ('bulk', 'collections')),
  operation         text NOT NULL CHECK (operation IN ('insert', 'update', 'upsert')),
  state             text NOT NULL,
  chunk             integer NOT NULL CHECK (chunk >= 0),
  first_seq         bigint NOT NULL,
  last_seq          bigint NOT NULL,
  rows              integer NOT NULL CHECK (rows >= 0),
  records_processed integer,
  records_failed    integer,
  error_message     text,
  collected_at      timestamptz,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, task, job_id),
  CHECK (first_seq <= last_seq)
);
CREATE INDEX writeback_jobs_chunk_idx ON roundtrip.writeback_jobs (run_id, task, chunk);

CREATE TABLE roundtrip.writeback_errors (
  id            bigserial PRIMARY KEY,
  run_id        text NOT NULL REFERENCES roundtrip.runs (run_id) ON DELETE CASCADE,
  task          text NOT NULL,
  key           text,
  salesforce_id text,
  stage         text NOT NULL CHECK (stage IN ('plan', 'push')),
  job_id        text,
  code          text NOT NULL,
  message       text NOT NULL,
  fields        text[] NOT NULL DEFAULT '{}',
  payload       jsonb,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX writeback_errors_run_task_idx ON roundtrip.writeback_errors (run_id, task, stage);
CREATE INDEX writeback_errors_job_idx ON roundtrip.writeback_errors (run_id, task, job_id)
  WHERE job_id IS NOT NULL;
CREATE INDEX writeback_errors_key_idx ON roundtrip.writeback_errors (task, key);
`;

/**
 * Version 2: `extract_jobs`, the Bulk API query job of a Salesforce extract, checkpointed as soon
 * as Salesforce has created it, so that a retried extract step of the same run and task
 * re-attaches to the job instead of creating another (a query job counts against the daily
 * `DailyBulkV2QueryJobs` allowance). `soql` and `include_deleted` are what the job reads: a
 * retry re-attaches only when it would ask for the same; `loaded_at` is set in the load's
 * transaction, after which the job is spent.
 */
const V2_EXTRACT_JOBS = `
CREATE TABLE roundtrip.extract_jobs (
  run_id          text NOT NULL REFERENCES roundtrip.runs (run_id) ON DELETE CASCADE,
  task            text NOT NULL,
  job_id          text NOT NULL,
  soql            text NOT NULL,
  include_deleted boolean NOT NULL,
  full_read       boolean NOT NULL,
  expected_rows   bigint NOT NULL CHECK (expected_rows >= 0),
  created_at      timestamptz NOT NULL DEFAULT now(),
  loaded_at       timestamptz,
  PRIMARY KEY (run_id, task)
);
`;

/**
 * Version 3: `writeback_plans` made cheap to fill. The plan writes up to a million rows in one
 * statement, and every index and per-row trigger on the table is paid on each of them
 * (docs/writeback.md, "Measured"):
 * - `writeback_plans_status_idx` and `writeback_plans_salesforce_id_idx` go: no query reads
 *   them (every plan query starts with `run_id, task`, which the primary key and the `seq` key
 *   serve; Bulk results are matched within a `seq` range by a hash join).
 * - `writeback_plans_sent_idx` serves the one query that looks across runs: an insert plan's
 *   search for keys another run left `sent` (outcome unknown). Rows are `sent` only while a push
 *   is in flight, so the index is nearly empty and costs nothing when the plan is written.
 * - The foreign key to `runs` goes: its check ran once per inserted row (a third of the plan's
 *   time). What it guaranteed is kept: the plan locks its run's row (`FOR KEY SHARE`) before it
 *   writes and fails when the run is not recorded, so no plan row exists without its run; and
 *   deleting or truncating runs still deletes their plans, by statement-level triggers (one
 *   set-based DELETE per statement instead of one cascade per row).
 */
const V3_LEAN_WRITEBACK_PLANS = `
DROP INDEX roundtrip.writeback_plans_status_idx;
DROP INDEX roundtrip.writeback_plans_salesforce_id_idx;
CREATE INDEX writeback_plans_sent_idx ON roundtrip.writeback_plans (task, key) WHERE status = 'sent';

ALTER TABLE roundtrip.writeback_plans DROP CONSTRAINT writeback_plans_run_id_fkey;

CREATE FUNCTION roundtrip.delete_plans_of_deleted_runs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM roundtrip.writeback_plans p USING deleted_runs d WHERE p.run_id = d.run_id;
  RETURN NULL;
END
$$;
CREATE TRIGGER runs_delete_writeback_plans AFTER DELETE ON roundtrip.runs
  REFERENCING OLD TABLE AS deleted_runs
  FOR EACH STATEMENT EXECUTE FUNCTION roundtrip.delete_plans_of_deleted_runs();

CREATE FUNCTION roundtrip.truncate_plans_of_truncated_runs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  TRUNCATE roundtrip.writeback_plans;
  RETURN NULL;
END
$$;
CREATE TRIGGER runs_truncate_writeback_plans AFTER TRUNCATE ON roundtrip.runs
  FOR EACH STATEMENT EXECUTE FUNCTION roundtrip.truncate_plans_of_truncated_runs();
`;

/**
 * Version 4: the plan is stored in pages. `writeback_plan_pages` holds a run's plan for a task as
 * rows of up to {@link PLAN_PAGE_ROWS} records each (keys, Salesforce Ids, payloads and current
 * values as arrays, in seq order: record `first_seq + i` is element `i + 1`). Writing a million
 * planned records as a thousand page rows costs a fraction of writing a million table rows with
 * their index entries, which is what kept the plan far slower than a COPY of its source
 * (docs/writeback.md, "Measured").
 *
 * `writeback_plans` stays the push's per-record ledger (status, attempts, job, value hash): the
 * push writes a record's row when it sends the record, so a dry run, a `maxChanges` stop or a
 * plan with nothing to send never pays for it. Plans stored before this version (every record in
 * the ledger) get their pages from it. `writeback_plan_rows` shows the pages one record a row.
 * Deleting or truncating runs deletes their pages too.
 */
const V4_PLAN_PAGES = `
CREATE TABLE roundtrip.writeback_plan_pages (
  run_id         text NOT NULL,
  task           text NOT NULL,
  page           integer NOT NULL CHECK (page >= 0),
  first_seq      bigint NOT NULL CHECK (first_seq > 0),
  rows           integer NOT NULL CHECK (rows > 0),
  operation      text NOT NULL CHECK (operation IN ('insert', 'update', 'upsert')),
  keys           text[] NOT NULL,
  salesforce_ids text[] NOT NULL,
  payloads       jsonb[] NOT NULL,
  currents       jsonb[] NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, task, page),
  CHECK (cardinality(keys) = rows AND cardinality(salesforce_ids) = rows
         AND cardinality(payloads) = rows AND cardinality(currents) = rows)
);
-- Out of line, uncompressed: compressing a million records' arrays took longer than writing them.
ALTER TABLE roundtrip.writeback_plan_pages
  ALTER COLUMN keys SET STORAGE EXTERNAL, ALTER COLUMN salesforce_ids SET STORAGE EXTERNAL,
  ALTER COLUMN payloads SET STORAGE EXTERNAL, ALTER COLUMN currents SET STORAGE EXTERNAL;

CREATE VIEW roundtrip.writeback_plan_rows AS
SELECT p.run_id, p.task, p.page, p.first_seq + u.ord - 1 AS seq, u.key, u.salesforce_id, p.operation,
       u.payload, u.current
  FROM roundtrip.writeback_plan_pages p
 CROSS JOIN LATERAL unnest(p.keys, p.salesforce_ids, p.payloads, p.currents)
       WITH ORDINALITY AS u (key, salesforce_id, payload, current, ord);

-- Plans stored before this version live in the ledger alone: their pages are made from it, so
-- that a run in flight across the upgrade goes on (its ledger rows keep their outcomes).
INSERT INTO roundtrip.writeback_plan_pages
       (run_id, task, page, first_seq, rows, operation, keys, salesforce_ids, payloads, currents)
SELECT run_id, task, ((seq - 1) / 1000)::integer, min(seq), count(*), min(operation),
       array_agg(key ORDER BY seq), array_agg(salesforce_id ORDER BY seq),
       array_agg(payload ORDER BY seq), array_agg(current ORDER BY seq)
  FROM roundtrip.writeback_plans
 GROUP BY run_id, task, (seq - 1) / 1000;

CREATE OR REPLACE FUNCTION roundtrip.delete_plans_of_deleted_runs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM roundtrip.writeback_plans p USING deleted_runs d WHERE p.run_id = d.run_id;
  DELETE FROM roundtrip.writeback_plan_pages p USING deleted_runs d WHERE p.run_id = d.run_id;
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION roundtrip.truncate_plans_of_truncated_runs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  TRUNCATE roundtrip.writeback_plans, roundtrip.writeback_plan_pages;
  RETURN NULL;
END
$$;
`;

/**
 * Version 5: what an extract's watermark covers. `read_scope` is the object, filter and deletes
 * handling the loaded rows were read with; a read with another scope reads in full, since rows
 * already loaded may not be those it selects (a widened `where` would never load the older rows
 * it now matches). NULL for states written before: taken as matching, and filled by their next read.
 */
const V5_EXTRACT_READ_SCOPE = `
ALTER TABLE roundtrip.extract_state ADD COLUMN read_scope text;
`;

/** Records a plan page holds (also the records of one Composite call: 5 × 200). */
export const PLAN_PAGE_ROWS = 1000;

/**
 * Runs that overlap (lambdas/core/prepare.ts): each step of a run marks when it started
 * (`last_step_at`), so that a later run can tell a run still going from one that died without a
 * report; a run started with `onOverlap: 'skip'` while another is going ends as `skipped`.
 */
const V6_RUN_OVERLAP = `
ALTER TABLE roundtrip.runs ADD COLUMN last_step_at timestamptz;
ALTER TABLE roundtrip.runs DROP CONSTRAINT runs_status_check;
ALTER TABLE roundtrip.runs ADD CONSTRAINT runs_status_check
  CHECK (status IN ('running', 'succeeded', 'failed', 'skipped'));
`;

/**
 * Version 7: `task_owners`, which pipeline uses each task name in this database. The state tables
 * are keyed by task name alone (`extract_state`, `extract_jobs`, `sync_state`, …), so two
 * pipelines sharing the database with a task of the same name — the default name is the object,
 * `Lead` — would share one watermark, and one pipeline's read would make the other skip rows.
 * Prepare claims the run's extract and write-back task names for its pipeline and refuses a name
 * another pipeline holds, before anything is read or written. Empty when created: in a database
 * already in use, the first pipeline to run claims its names. `run_id` is the run that claimed it.
 */
const V7_TASK_OWNERS = `
CREATE TABLE roundtrip.task_owners (
  task       text PRIMARY KEY,
  pipeline   text NOT NULL,
  run_id     text,
  claimed_at timestamptz NOT NULL DEFAULT now()
);
`;

/**
 * Version 8: `sync_scope`, what a write-back task's `sync_state` is about: the object its records
 * were written to, the field Salesforce matched them by (`key_field`, NULL for an insert without a
 * key) and the source column their keys were read from (`key_column`). Keyed otherwise, records
 * would look new, so the plan refuses a task whose object or key changed while it has synced
 * records (lambdas/core/writeback/scope.ts). Empty when created: a task synced before is taken as
 * matching and recorded by its next plan.
 */
const V8_SYNC_SCOPE = `
CREATE TABLE roundtrip.sync_scope (
  task        text PRIMARY KEY,
  object      text NOT NULL,
  key_field   text,
  key_column  text,
  run_id      text,
  recorded_at timestamptz NOT NULL DEFAULT now()
);
`;

/**
 * Version 9: the ledger status `held_back`, for an insert record a push did not send because another
 * run took its key after this run planned it (lambdas/core/writeback/push.ts,
 * refuseKeysTakenElsewhere): an outcome, counted as held back, not as failed. Records held back so
 * before were written `failed`, and stay so.
 */
const V9_LEDGER_HELD_BACK = `
ALTER TABLE roundtrip.writeback_plans DROP CONSTRAINT writeback_plans_status_check;
ALTER TABLE roundtrip.writeback_plans ADD CONSTRAINT writeback_plans_status_check
  CHECK (status IN ('planned', 'sent', 'succeeded', 'failed', 'rejected', 'held_back'));
`;

/**
 * Version 10: the ledger status `superseded`, for an update or upsert record a push did not send
 * because a run that planned after this one had synced its key already (its `sync_state` row):
 * Salesforce holds newer values than this run's (lambdas/core/writeback/push.ts,
 * supersedeKeysSyncedByNewerRuns). An outcome, counted apart, not as failed nor as held back.
 */
const V10_LEDGER_SUPERSEDED = `
ALTER TABLE roundtrip.writeback_plans DROP CONSTRAINT writeback_plans_status_check;
ALTER TABLE roundtrip.writeback_plans ADD CONSTRAINT writeback_plans_status_check
  CHECK (status IN ('planned', 'sent', 'succeeded', 'failed', 'rejected', 'held_back', 'superseded'));
`;

/**
 * Version 11: `writeback_plans_job_idx` goes. No query looks a ledger row up by its job alone:
 * every one that names a job bounds the job's seq range too (a job carries one chunk of seqs),
 * which the `seq` key serves. A Bulk push writes each of its records into the ledger and then
 * updates it with its result, and every index on the table is paid on both: this one cost about
 * 1.4 s of the 10 s of writing 1,000,000 ledger rows `sent`, and more of the results' update
 * (docs/writeback.md, "Measured").
 */
const V11_LEDGER_NO_JOB_INDEX = `
DROP INDEX roundtrip.writeback_plans_job_idx;
`;

/**
 * Version 12: the machine and process of a run started by `roundtrip run` (or `plan`, `demo`):
 * `host` (the machine's name, for people), `host_id` (what says a process id means the same
 * process: the machine's boot and, on Linux, its pid namespace) and `pid`. A later command on that
 * machine that finds the process gone closes the run as failed (lambdas/core/run-state.ts,
 * closeRunsWhoseProcessIsGone) instead of leaving it `running` for 13 hours. Null for a run of
 * the deployed state machine, whose execution Step Functions tells of.
 */
const V12_RUN_PROCESS = `
ALTER TABLE roundtrip.runs ADD COLUMN host text, ADD COLUMN host_id text, ADD COLUMN pid integer;
`;

/**
 * Version 13: `extract_counts`, the `COUNT()` of a Salesforce extract's read taken in a run (by
 * Prepare for its forecast, or by the extract step), so that the extract step of the same run
 * reuses it instead of asking Salesforce again: one API call less per extract and run. `soql` and
 * `include_deleted` are what was counted (the extract reuses the count only for the same text,
 * lower bound of the window included, through the same `query`/`queryAll`); `counted_at` is
 * Salesforce's time of the answer, which bounds the watermark the read may store.
 */
const V13_EXTRACT_COUNTS = `
CREATE TABLE roundtrip.extract_counts (
  run_id          text NOT NULL REFERENCES roundtrip.runs (run_id) ON DELETE CASCADE,
  task            text NOT NULL,
  soql            text NOT NULL,
  include_deleted boolean NOT NULL,
  row_count       bigint NOT NULL CHECK (row_count >= 0),
  counted_at      timestamptz NOT NULL,
  PRIMARY KEY (run_id, task)
);
`;

/**
 * Version 14: `table_owners`, which pipeline loads each extract table of this database. An extract
 * merges into its table (and adds columns to it), and a keyless Athena load replaces every row of
 * it: pointed at a table roundtrip did not make (a typo in `table`, a table of the application),
 * or at another pipeline's, it would change data that is not its own. Prepare claims the run's
 * extract tables for its pipeline and refuses one another pipeline holds, or one that exists,
 * holds rows and no run of the pipeline loaded, before anything is read or written
 * (lambdas/core/run-state.ts). Empty when created: a table this pipeline loaded before is claimed
 * by its next run.
 */
const V14_TABLE_OWNERS = `
CREATE TABLE roundtrip.table_owners (
  schema_name text NOT NULL,
  table_name  text NOT NULL,
  pipeline    text NOT NULL,
  task        text NOT NULL,
  run_id      text,
  claimed_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (schema_name, table_name)
);
`;

/**
 * Version 15: `extract_jobs.columns`, the columns a Bulk query job's results load into (name,
 * PostgreSQL type, nullability), as the extract step typed them from the describe it read before
 * creating the job. The check step that loads the results takes them from here instead of
 * describing the object again: one API call less per Bulk extract, and the load matches the job's
 * own SOQL even when the describe or the task's fields changed while the job ran. NULL for a job
 * checkpointed before this version: its check describes the object as before.
 */
const V15_EXTRACT_JOB_COLUMNS = `
ALTER TABLE roundtrip.extract_jobs ADD COLUMN columns jsonb;
`;

/** The migrations of the state schema, in order. Append only. */
export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'state tables: runs, extract_state, sync_state, writeback_*', sql: V1_STATE_TABLES },
  { version: 2, name: 'extract_jobs: Bulk query jobs checkpointed per run and task', sql: V2_EXTRACT_JOBS },
  {
    version: 3,
    name: 'writeback_plans: only the indexes read, run cascade by statement triggers',
    sql: V3_LEAN_WRITEBACK_PLANS,
  },
  { version: 4, name: 'writeback_plan_pages: the plan stored in pages of records', sql: V4_PLAN_PAGES },
  {
    version: 5,
    name: 'extract_state.read_scope: a changed filter reads in full',
    sql: V5_EXTRACT_READ_SCOPE,
  },
  {
    version: 6,
    name: 'runs.last_step_at and status skipped: runs that overlap',
    sql: V6_RUN_OVERLAP,
  },
  {
    version: 7,
    name: 'task_owners: a task name belongs to one pipeline per database',
    sql: V7_TASK_OWNERS,
  },
  {
    version: 8,
    name: 'sync_scope: the object and key a write-back task synced by',
    sql: V8_SYNC_SCOPE,
  },
  {
    version: 9,
    name: 'writeback_plans.status held_back: insert keys another run took since the plan',
    sql: V9_LEDGER_HELD_BACK,
  },
  {
    version: 10,
    name: 'writeback_plans.status superseded: keys a newer run synced since the plan',
    sql: V10_LEDGER_SUPERSEDED,
  },
  {
    version: 11,
    name: 'writeback_plans: no index by job (every query by job bounds its seq range)',
    sql: V11_LEDGER_NO_JOB_INDEX,
  },
  {
    version: 12,
    name: 'runs.host, host_id and pid: a local run whose process is gone is closed',
    sql: V12_RUN_PROCESS,
  },
  {
    version: 13,
    name: "extract_counts: an extract reuses the COUNT() its run's Prepare took",
    sql: V13_EXTRACT_COUNTS,
  },
  {
    version: 14,
    name: 'table_owners: an extract table belongs to one pipeline, and never to none',
    sql: V14_TABLE_OWNERS,
  },
  {
    version: 15,
    name: "extract_jobs.columns: a Bulk extract's check loads without describing again",
    sql: V15_EXTRACT_JOB_COLUMNS,
  },
];

/** SHA-256 of a migration's SQL, stored so that an edited migration is detected. */
export function migrationChecksum(migration: Migration): string {
  return createHash('sha256').update(migration.sql).digest('hex');
}

/** Options of {@link migrate}. */
export interface MigrateOptions {
  readonly logger?: Logger;
  /** @default {@link MIGRATIONS} (tests pass their own) */
  readonly migrations?: readonly Migration[];
  /** @default {@link DEFAULT_MIGRATION_LOCK_TIMEOUT_MS} */
  readonly lockTimeoutMillis?: number;
}

/** What {@link migrate} did. */
export interface MigrateResult {
  /** Versions applied by this call, in order; empty when the schema was current. */
  readonly applied: readonly number[];
  /** The schema version after the call. */
  readonly version: number;
}

function checkMigrationList(migrations: readonly Migration[]): void {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) {
      throw new TerminalError(
        `Migration list is malformed: entry ${i} has version ${m.version}, expected ${i + 1} (versions run 1, 2, 3, … without gaps)`,
      );
    }
  });
}

async function ensureBookkeeping(client: PoolClient): Promise<void> {
  // Looked up first so that a role without CREATE on the database can run a current schema.
  const { rows } = await client.query<{ exists: boolean }>(
    `SELECT to_regclass('roundtrip.schema_migrations') IS NOT NULL AS exists`,
  );
  if (rows[0]?.exists) return;
  await inTransaction(client, async () => {
    await client.query(`CREATE SCHEMA IF NOT EXISTS roundtrip`);
    await client.query(`CREATE TABLE IF NOT EXISTS roundtrip.schema_migrations (
      version     integer PRIMARY KEY,
      name        text NOT NULL,
      checksum    text NOT NULL,
      applied_at  timestamptz NOT NULL DEFAULT now(),
      duration_ms integer NOT NULL
    )`);
  });
}

/**
 * Brings the `roundtrip` schema to the latest version. Safe to call on every cold start:
 * when nothing is missing it reads one table and returns. Concurrent calls serialise on an
 * advisory lock. Throws a {@link TerminalError} when a stored migration differs from the code
 * (edited after release) or when the database is ahead of the code; lock timeouts and
 * connection failures are {@link TransientError}s.
 */
export async function migrate(pool: Pool, options: MigrateOptions = {}): Promise<MigrateResult> {
  const logger = options.logger ?? silentLogger;
  const migrations = options.migrations ?? MIGRATIONS;
  const lockTimeout = options.lockTimeoutMillis ?? DEFAULT_MIGRATION_LOCK_TIMEOUT_MS;
  checkMigrationList(migrations);

  return withClient(pool, async (client) => {
    // A session lock taken inside a transaction outlives it; SET LOCAL bounds only the wait.
    try {
      await inTransaction(client, async () => {
        await client.query(`SELECT set_config('lock_timeout', $1, true)`, [`${lockTimeout}ms`]);
        await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
      });
    } catch (err) {
      throw classifyPostgresError(err, { action: 'waiting for the migration lock' });
    }
    try {
      await ensureBookkeeping(client);
      const { rows: done } = await client.query<{ version: number; name: string; checksum: string }>(
        'SELECT version, name, checksum FROM roundtrip.schema_migrations ORDER BY version',
      );
      const known = new Map(migrations.map((m) => [m.version, m]));
      for (const row of done) {
        const migration = known.get(row.version);
        if (!migration) {
          throw new TerminalError(
            `Schema ${STATE_SCHEMA} is at version ${done[done.length - 1]?.version}, newer than this code knows (${migrations.length}): deploy the newer code or restore the database`,
          );
        }
        if (migrationChecksum(migration) !== row.checksum) {
          throw new TerminalError(
            `Migration ${row.version} (${row.name}) was applied with different SQL than this code has: released migrations must not be edited; add a new version`,
          );
        }
      }
      const applied: number[] = [];
      const doneVersions = new Set(done.map((r) => r.version));
      for (const migration of migrations) {
        if (doneVersions.has(migration.version)) continue;
        const started = Date.now();
        try {
          await inTransaction(client, async () => {
            await client.query(migration.sql);
            await client.query(
              'INSERT INTO roundtrip.schema_migrations (version, name, checksum, duration_ms) VALUES ($1, $2, $3, $4)',
              [migration.version, migration.name, migrationChecksum(migration), Date.now() - started],
            );
          });
        } catch (err) {
          throw classifyPostgresError(err, {
            action: `applying migration ${migration.version} (${migration.name})`,
          });
        }
        applied.push(migration.version);
        logger.info('Applied migration', {
          version: migration.version,
          name: migration.name,
          durationMs: Date.now() - started,
        });
      }
      const version = Math.max(0, ...done.map((r) => r.version), ...applied);
      if (applied.length === 0) logger.debug('Schema is current', { schema: STATE_SCHEMA, version });
      return { applied, version };
    } finally {
      try {
        await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
      } catch {
        // The connection is gone, and a session lock goes with it; keep the original error.
      }
    }
  });
}
