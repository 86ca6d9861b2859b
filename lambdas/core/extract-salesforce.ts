/**
 * The Salesforce extract (DESIGN.md §1, step 2): one object into one table.
 *
 * 1. Describe the object; the configured fields (plus SystemModstamp, and IsDeleted when the
 *    object has it) become columns through `pgColumnForSalesforceField`; the table's key is "Id".
 * 2. Read the watermark. The read is full when the run says so, when the task's mode is `full`,
 *    when there is no watermark yet, when the table lacks a column the fields now call for
 *    (a field added to the config: rows already loaded must get its value, and an incremental
 *    read would only fill it for changed rows), or when the table is empty although the task's
 *    reads loaded rows (emptied by hand to load it again: an incremental read would leave it
 *    without the rows not changed since). Otherwise it reads changes since the watermark
 *    minus the overlap window (see salesforce-read.ts).
 * 3. `COUNT()` first — the one Prepare took for its forecast when it counted the same SOQL
 *    (`roundtrip.extract_counts`), else asked now —; no rows: nothing is queried, the empty
 *    result is loaded as an empty page would be; below `bulkThreshold` rows REST query paging streams the rows straight
 *    into the load; from it on a Bulk API 2.0 query job is created, checkpointed in
 *    `roundtrip.extract_jobs` (a retried step of the same run and task re-attaches to it instead
 *    of creating another), and the step answers `bulk-pending`: the state machine waits and calls
 *    {@link checkSalesforceExtract}, which polls once and either answers `bulk-pending` again
 *    (with the next wait) or loads the results.
 * 4. The load is ONE transaction: evolve the table, COPY the CSV into an UNLOGGED staging table,
 *    merge on "Id" (IsDeleted rows removed or flagged per the task's `deletes`), after a full
 *    read remove or flag the rows it no longer returned (but not those changed since the read
 *    started: an overlapping run loaded them), advance the watermark to the newest
 *    SystemModstamp seen (and the largest Id at it) — but never past the read's start on
 *    Salesforce's clock (a row read late may show a change newer than a record the query missed) —, record the task's result in the run, drop
 *    staging. A failure anywhere — a connection reset in the middle of the COPY included —
 *    rolls all of it back: the table and the watermark stay as they were. A REST read whose
 *    pages held another number of records than the query's `totalSize` loads its rows but does
 *    not move the watermark, and a full one removes or flags nothing and has the next read full
 *    again (`queryCountMismatch`): a record it missed is read by the next run.
 *
 * Deletes after a full read: with `remove` the read goes through `query` (live rows only) and
 * the table becomes exactly those rows — rows hard-deleted, purged from the recycle bin or no
 * longer matching `where` go too. With `flag` the read goes through `queryAll`: rows in the
 * recycle bin arrive with IsDeleted true; rows gone for good (hard-deleted, purged) are flagged
 * too, unless the task has a `where` (a row that merely stopped matching is not deleted).
 *
 * An object without IsDeleted (User, Profile, RecordType…) is read through `query` only, with no
 * IsDeleted column, and its deletes are `remove`'s: a full read removes the rows it no longer
 * returns; `deletes: 'flag'` written out is refused before anything is read (`deletesFor`).
 */
import { Readable } from 'node:stream';
import type { SalesforceExtractTask } from '../config';
import {
  advanceWatermark,
  copyIntoStaging,
  dropStagingTable,
  ensureTable,
  mergeStaging,
  pgColumnForSalesforceField,
  lockForRefresh,
  swapInTable,
  withClient,
  withTransaction,
  type PgColumn,
} from '../connectors/postgres';
import type { RestQueryRead, SalesforceConnector, SalesforceObjectDescribe } from '../connectors/salesforce';
import { DEFAULT_BULK_RESULT_PAGE_RECORDS } from '../connectors/salesforce/constants';
import { csvHeaderLine } from '../connectors/salesforce/csv';
import { bulkPollDelaySeconds } from '../connectors/salesforce/poll';
import { namedForTask, TerminalError } from '../shared/errors';
import { recordAfter, type Logger } from '../shared/logging';
import {
  SalesforceExtractCheckInput,
  SalesforceExtractInput,
  parseStepInput,
  type SalesforceExtractLoaded,
  type SalesforceExtractOutput,
  type SalesforceExtractPending,
  type SalesforceReadApi,
} from './contracts';
import { salesforceOf, splitTableName, type CoreDeps } from './deps';
import { queryCountMismatchWarning } from './load-warnings';
import {
  checkpointExtractJob,
  flaggedRowCount,
  markExtractJobLoaded,
  newestStagedChange,
  readExtractCount,
  readExtractJob,
  recordExtractCount,
  reconcileMissingRows,
  recordTaskResult,
  readExtractTableState,
  tableHasRows,
} from './run-state';
import { addRunApiCalls } from './writeback/state';
import {
  DELETED_FIELD,
  ID_FIELD,
  REST_QUERY_PAGE_ROWS,
  WATERMARK_FIELD,
  chooseReadApi,
  fieldsBulkCannotRead,
  planSalesforceRead,
  deletesFor,
  describeTaskObject,
  extractConfigPath,
  extractReadError,
  readScopeChange,
  readScopeFields,
  resolveFields,
  storedReadScope,
} from './salesforce-read';

/**
 * Polls of one Bulk query job before the extract gives up (and aborts it): with the poll schedule
 * (2, 4, …, 64 s, then every 120 s) 60 polls are about 1 h 50 min.
 */
export const MAX_BULK_QUERY_POLLS = 60;

/** Tuning of the Salesforce extract; the defaults suit production. */
export interface SalesforceExtractOptions {
  /** Rows per Bulk result page (one API call each). @default DEFAULT_BULK_RESULT_PAGE_RECORDS */
  readonly bulkResultPageRecords?: number;
  /** Attempts per Bulk result page when the connection drops mid-page. @default 3 */
  readonly bulkResultPageAttempts?: number;
  /** Rows asked per REST page (200–2,000). @default REST_QUERY_PAGE_ROWS */
  readonly restBatchSize?: number;
  /** @default MAX_BULK_QUERY_POLLS */
  readonly maxBulkPolls?: number;
}

/** The task named `name`, which must be a Salesforce extract. */
export function salesforceTask(deps: CoreDeps, name: string): SalesforceExtractTask {
  const task = deps.config.extract.find((t) => t.name === name);
  if (!task || task.from !== 'salesforce') {
    const known = deps.config.extract.filter((t) => t.from === 'salesforce').map((t) => t.name);
    throw new TerminalError(
      `No Salesforce extract task named "${name}" in pipeline ${deps.config.name} (known: ${known.join(', ') || 'none'})`,
    );
  }
  return task;
}

function columnsFor(
  task: SalesforceExtractTask,
  describe: SalesforceObjectDescribe,
  fields: readonly string[],
): PgColumn[] {
  const byName = new Map(describe.fields.map((f) => [f.name, f]));
  return fields.map((name) => {
    const field = byName.get(name);
    if (!field) throw new TerminalError(`Extract task ${task.name}: ${task.object} has no field "${name}"`);
    return pgColumnForSalesforceField(field);
  });
}

interface TaskContext {
  readonly task: SalesforceExtractTask;
  readonly schema: string;
  readonly table: string;
  readonly logger: Logger;
}

function contextOf(deps: CoreDeps, runId: string, taskName: string): TaskContext {
  const task = salesforceTask(deps, taskName);
  const { schema, table } = splitTableName(task.table, deps.config.postgres.schema);
  return { task, schema, table, logger: deps.logger.child({ runId, task: task.name }) };
}

/**
 * The Salesforce calls of one invocation of an extract step (the start or a check), and how many
 * of them the run's summary holds. Every invocation adds its own calls to the task's figure,
 * `summary.extract.<task>.apiCalls` ({@link addRunApiCalls}), once, whatever it answers: a pending
 * Bulk job (before answering), a load (in the load's transaction), or an error. So the figure is
 * what the task spent over all its steps and their attempts: a retried step adds its calls to
 * those of the attempts before it, and nothing is carried from one step to the next to be counted
 * twice.
 */
interface ExtractApiCalls {
  /** Calls this invocation made that the run's summary does not hold yet. */
  unrecorded(): number;
  /** Marks `calls` of them as held by the summary, once the transaction that added them committed. */
  recorded(calls: number): void;
  /** Adds the calls not recorded yet to the task's, in a transaction of its own; answers the task's total. */
  record(): Promise<number>;
}

/**
 * Runs an extract step's `work` with its {@link ExtractApiCalls}, then records the calls the work
 * left unrecorded whether it ended or failed ({@link recordAfter}, as Prepare and the write-back
 * steps do): an extract that fails, a Bulk job that ended Failed say, still spent its create and
 * polls. When the work failed and the record fails too (PostgreSQL down), the work's own error is
 * the one thrown, and the calls that could not be recorded are logged as an error.
 */
async function withExtractApiCalls<T>(
  deps: CoreDeps,
  ctx: TaskContext,
  runId: string,
  sf: SalesforceConnector,
  step: 'extract' | 'check',
  work: (calls: ExtractApiCalls) => Promise<T>,
): Promise<T> {
  const path = ['extract', ctx.task.name];
  let recordedUpTo = sf.apiCalls;
  const calls: ExtractApiCalls = {
    unrecorded: () => sf.apiCalls - recordedUpTo,
    recorded: (n) => {
      recordedUpTo += n;
    },
    record: async () => {
      const spent = calls.unrecorded();
      const total = await withTransaction(deps.pg, (client) => addRunApiCalls(client, runId, path, spent));
      calls.recorded(spent);
      return total;
    },
  };
  let spent = 0;
  return recordAfter(
    ctx.logger,
    () => work(calls),
    async () => {
      spent = calls.unrecorded();
      if (spent > 0) await calls.record();
    },
    () =>
      `the ${spent} Salesforce API call${spent === 1 ? '' : 's'} of the ${step === 'extract' ? 'extract' : "extract's check"} step (roundtrip.runs summary.extract.${ctx.task.name}.apiCalls of run ${runId})`,
  );
}

/** Loads a CSV stream of the task's fields: the one transaction described in the module comment. */
async function loadRows(
  deps: CoreDeps,
  ctx: TaskContext,
  load: {
    runId: string;
    columns: readonly PgColumn[];
    full: boolean;
    api: SalesforceReadApi;
    source: () => Readable;
    /** The step's calls: those not recorded yet are added to the task's in the load's transaction. */
    calls: ExtractApiCalls;
    /** The Bulk query job read, marked loaded in the same transaction. */
    jobId?: string;
    /** How deletes apply ({@link deletesFor}): without a flag column (no IsDeleted), none by flag. */
    deletes: { mode: 'remove' | 'flag'; flagColumn: string | undefined };
    /**
     * Salesforce's time, no later than the read's start: a change made after it may be among the
     * rows read (a row read later shows it) while another one, made before it, is not (a record
     * created after the start). The watermark never goes past it. Undefined: not capped.
     */
    readStartedAt?: Date;
    /**
     * After the read: the records it got and those Salesforce said the query matched (a REST
     * query's `totalSize`), when they differ. Undefined: they agree, or nothing to compare.
     */
    countMismatch?: () => { totalSize: number; read: number } | undefined;
  },
): Promise<SalesforceExtractLoaded> {
  const { task, schema, table, logger } = ctx;
  const flagColumn = load.deletes.flagColumn;
  // Staged rows flagged deleted (queryAll's IsDeleted true) are removed or kept flagged; an object
  // without IsDeleted has no such row.
  const deletes = flagColumn === undefined ? undefined : { mode: load.deletes.mode, flagColumn };
  const ms = (from: number): number => deps.clock.now().getTime() - from;
  const { result, recordedCalls } = await withTransaction(deps.pg, async (client) => {
    const started = deps.clock.now().getTime();
    const evolved = await ensureTable(client, {
      schema,
      table,
      columns: load.columns,
      primaryKey: [ID_FIELD],
      // A field an admin narrowed (e.g. a number's precision) keeps its wider column.
      onNarrower: 'keep',
      owner: `Extract task ${task.name}`,
      // No config sets the key: a refusal of the table's offers to change the table, not the task.
      keyOrigin: {
        fixed: 'a Salesforce extract merges its rows by their Id',
        tablePath: `${extractConfigPath(deps.config, task)}.table`,
      },
      logger,
    });
    const copied = await copyIntoStaging(client, {
      schema,
      target: table,
      runId: load.runId,
      columns: load.columns,
      source: load.source(),
      format: 'csv',
      header: true,
      logger,
    });
    const copyMs = ms(started);
    // Fewer records than the query said it matched: one may be missing. The rows read are real
    // and merged, but nothing that would take the read as complete is done: no row it did not
    // return is removed or flagged (a full read), the watermark stays, and a full read's scope is
    // stored incomplete, so the next run reads the window (or everything) again. More than it
    // said: the same caution (a record counted twice fails the merge).
    const mismatch = load.countMismatch?.();
    const mergeStarted = deps.clock.now().getTime();
    // A full read into an empty table (the first load) has nothing to merge with: the rows go in
    // with one INSERT … SELECT. Salesforce returns each Id once per query, so the primary key
    // holds; flagged deletes arrive flagged, and a full read with `remove` reads live rows only.
    // Locked before the check, so that rows an overlapping run merges in cannot arrive between
    // the check and the swap (which would delete them).
    if (load.full && !evolved.created) await lockForRefresh(client, schema, table);
    const firstLoad = load.full && (evolved.created || !(await tableHasRows(client, schema, table)));
    let merged: { inserted: number; updated: number; unchanged: number; deleted: number };
    if (firstLoad) {
      const swapped = await swapInTable(client, {
        schema,
        target: table,
        staging: copied.staging,
        columns: load.columns,
      });
      merged = {
        inserted: swapped.inserted,
        updated: 0,
        unchanged: 0,
        deleted: flagColumn === undefined ? 0 : await flaggedRowCount(client, schema, table, flagColumn),
      };
    } else {
      merged = await mergeStaging(client, {
        schema,
        target: table,
        staging: copied.staging,
        columns: load.columns,
        key: [ID_FIELD],
        ...(deletes ? { deletes } : {}),
        // Staging holds ONE query's rows, and a query returns each Id once: REST pages follow
        // Salesforce's server-side cursor (a retried page is the same page, yielded once);
        // Bulk result pages partition the job's result by locator, and a page fetched again
        // after a dropped connection resumes after the rows already written. The overlap window
        // re-reads rows of earlier runs (already in the target), not rows of this query twice.
        // Should an Id come twice all the same, the merge fails rather than merge wrongly.
        stagedKeys: 'unique',
        // A read that started before another run's (overlapping runs) never puts back older values.
        versionColumn: WATERMARK_FIELD,
      });
    }
    let deleted = merged.deleted;
    if (
      mismatch === undefined &&
      !firstLoad &&
      load.full &&
      (load.deletes.mode === 'remove' || task.where === undefined)
    ) {
      if (load.readStartedAt === undefined) {
        logger.warn(
          "The read's start is unknown: rows an overlapping run loaded during this full read may be removed or flagged",
          { jobId: load.jobId },
        );
      }
      deleted += await reconcileMissingRows(client, {
        schema,
        target: table,
        staging: copied.staging,
        key: ID_FIELD,
        mode: load.deletes.mode,
        flagColumn: flagColumn ?? DELETED_FIELD,
        // Rows changed since the read started were loaded by an overlapping run: live, kept.
        versionColumn: WATERMARK_FIELD,
        readStartedAt: load.readStartedAt,
      });
    }
    const mergeMs = ms(mergeStarted);
    const newest = await newestStagedChange(client, schema, copied.staging, WATERMARK_FIELD, ID_FIELD);
    // Rows stamped after the read started do not prove that every change before them was read:
    // the next read starts again from the read's start.
    const capped =
      newest !== undefined && load.readStartedAt !== undefined && newest.stamp > load.readStartedAt;
    const state = await advanceWatermark(client, task.name, {
      // The fields too: one taken out of the task and listed again is read in full (readScopeChange).
      // An incremental read that may have missed records keeps the scope it had (and the
      // watermark: the window is read again); a full one stores its scope marked incomplete, so
      // that the next read is full again (the records it missed may be in no table at all).
      ...(mismatch && !load.full
        ? {}
        : {
            readScope: storedReadScope(
              task,
              load.columns.map((c) => c.name),
              { incomplete: mismatch !== undefined },
            ),
          }),
      // null keeps the stored watermark: a read that may have missed records does not move it.
      watermark: mismatch ? null : capped ? (load.readStartedAt as Date) : (newest?.stamp ?? null),
      watermarkId: mismatch || capped ? null : (newest?.id ?? null),
      runId: load.runId,
      rows: copied.rows,
      // A full read saw everything: what it saw is the truth, even if older than the stored mark.
      force: load.full,
    });
    await dropStagingTable(client, schema, copied.staging);
    if (load.jobId !== undefined) await markExtractJobLoaded(client, load.runId, task.name, load.jobId);
    // The read is over (the COPY consumed it): this step's calls join those of the task's earlier
    // steps and attempts, in the load's transaction, so that a load and its calls commit together.
    const spent = load.calls.unrecorded();
    const apiCalls = await addRunApiCalls(client, load.runId, ['extract', task.name], spent);
    const loaded: SalesforceExtractLoaded = {
      status: 'loaded',
      runId: load.runId,
      task: task.name,
      rows: copied.rows,
      inserted: merged.inserted,
      updated: merged.updated,
      deleted,
      deletes: load.deletes.mode,
      api: load.api,
      apiCalls,
      full: load.full,
      watermark: state.watermark?.toISOString() ?? null,
    };
    if (mismatch) {
      loaded.queryCountMismatch = { ...mismatch, watermarkKept: loaded.watermark };
      logger.warn(queryCountMismatchWarning(task.name, loaded.queryCountMismatch, load.full), {
        table: `${schema}.${table}`,
        queryCountMismatch: loaded.queryCountMismatch,
      });
    }
    // Columns whose type changed with their field's (widened, or retyped by a full read).
    const retyped = [...evolved.widened, ...evolved.retyped];
    if (retyped.length > 0) {
      loaded.retypedColumns = retyped.map((c) => ({
        object: task.object,
        field: c.column,
        table: `${schema}.${table}`,
        from: c.from,
        to: c.to,
      }));
      logger.warn('Salesforce changed the type of fields: their columns were retyped', {
        table: `${schema}.${table}`,
        retypedColumns: loaded.retypedColumns,
      });
    }
    await recordTaskResult(client, load.runId, task.name, {
      kind: 'salesforce',
      ...loaded,
      unchanged: merged.unchanged,
      addedColumns: evolved.added,
      copyMs,
      mergeMs,
    });
    logger.info('Salesforce extract loaded', {
      table: `${schema}.${table}`,
      rows: loaded.rows,
      inserted: loaded.inserted,
      updated: loaded.updated,
      unchanged: merged.unchanged,
      deleted,
      deletes: load.deletes.mode,
      api: load.api,
      apiCalls,
      full: load.full,
      watermark: loaded.watermark,
      addedColumns: evolved.added,
      // COPY (the read streamed in), then merge with the deletes of a full read.
      copyMs,
      mergeMs,
      totalMs: ms(started),
    });
    return { result: loaded, recordedCalls: spent };
  });
  load.calls.recorded(recordedCalls);
  return result;
}

/**
 * The extract step: plans the read, counts, and either loads the rows over REST (answering
 * `loaded`) or creates a Bulk query job (answering `bulk-pending`). Its Salesforce calls are added
 * to the task's in the run's summary, also when it fails ({@link withExtractApiCalls}); either
 * answer's `apiCalls` is the task's total so far.
 */
export async function extractSalesforce(
  event: SalesforceExtractInput,
  deps: CoreDeps,
  options: SalesforceExtractOptions = {},
): Promise<SalesforceExtractOutput> {
  const input = parseStepInput('ExtractSalesforce', SalesforceExtractInput, event);
  const ctx = contextOf(deps, input.runId, input.task);
  const sf = await salesforceOf(deps, `Extract task ${ctx.task.name}`);
  return withExtractApiCalls(deps, ctx, input.runId, sf, 'extract', (calls) =>
    startExtract(deps, ctx, input, sf, calls, options),
  ).catch((err: unknown) => {
    throw namedForTask(err, ctx.task.name);
  });
}

/** The extract step's work, once signed in ({@link extractSalesforce}). */
async function startExtract(
  deps: CoreDeps,
  ctx: TaskContext,
  input: { runId: string; full: boolean },
  sf: SalesforceConnector,
  calls: ExtractApiCalls,
  options: SalesforceExtractOptions,
): Promise<SalesforceExtractOutput> {
  const { task, schema, table, logger } = ctx;
  const describe = await describeTaskObject(
    sf,
    task.object,
    `${extractConfigPath(deps.config, task)}.object`,
  );

  const { watermark, existing, emptied, checkpoint, counted } = await withClient(deps.pg, async (client) => {
    const state = await readExtractTableState(client, task.name, schema, table);
    return {
      watermark: state.watermark,
      existing: state.columns,
      emptied: state.emptied,
      checkpoint: await readExtractJob(client, input.runId, task.name),
      counted: await readExtractCount(client, input.runId, task.name),
    };
  });
  // A field the last read had and the describe lacks now is named as such (deleted, renamed or
  // hidden since), not as a typo.
  const {
    fields: wanted,
    added,
    deletedField,
  } = resolveFields(
    task,
    describe.fields,
    extractConfigPath(deps.config, task),
    readScopeFields(watermark?.readScope),
  );
  // A `deletes` the object cannot have (User has no IsDeleted: 'flag') is refused before reading.
  const deletes = deletesFor(task, deletedField, extractConfigPath(deps.config, task));
  if (added.length > 0) {
    logger.info('Fields added to the read that the config does not list', { fields: added });
  }
  // A formula field's value changes when what it computes from changes (another record, the
  // date), and SystemModstamp does not move: incremental reads keep its old value until a full
  // read (docs/extract.md, "What an incremental read does not see"). Once per extract, not per poll.
  if (task.mode === 'incremental') {
    const calculated = describe.fields.filter((f) => f.calculated === true && wanted.includes(f.name));
    if (calculated.length > 0) {
      logger.warn('Formula fields in an incremental task keep stale values until a full read', {
        fields: calculated.map((f) => f.name),
      });
    }
  }
  const missingColumns = existing ? wanted.filter((f) => !existing.has(f)) : [];
  const scopeChange = readScopeChange(watermark?.readScope, task, wanted);
  const reason = input.full
    ? 'the run asked for a full read'
    : task.mode === 'full'
      ? 'the task reads in full'
      : !watermark?.watermark
        ? 'no watermark yet'
        : !existing
          ? `table ${schema}.${table} does not exist (yet, or any more)`
          : emptied
            ? `table ${schema}.${table} is empty, though earlier reads loaded rows into it (emptied since, by hand: TRUNCATE, DELETE)`
            : missingColumns.length > 0
              ? `new columns ${missingColumns.join(', ')} must be filled for every row`
              : scopeChange;
  const full = reason !== undefined;
  const plan = planSalesforceRead(task, describe.fields, { full, watermark: watermark?.watermark });
  const columns = columnsFor(task, describe, plan.fields);
  // A field taken out of the task (or renamed in Salesforce and in the task) keeps its column, with
  // the values of its last read and never updated again: a transform still reading it reads stale
  // values. Said once per extract; dropping the column is the user's call (docs/extract.md).
  const written = new Set(columns.map((c) => c.name));
  const notRead = [...(existing ?? [])].filter((c) => !written.has(c));
  if (notRead.length > 0) {
    logger.warn('Columns the task no longer reads keep the values of their last read', {
      table: `${schema}.${table}`,
      columns: notRead,
      fix: `drop them (ALTER TABLE … DROP COLUMN) once no transform reads them, or list their fields in ${extractConfigPath(deps.config, task)}.fields again`,
    });
  }
  const bulkSoql = plan.soql({ orderBy: false });

  // A retry of this step (the Lambda timed out, say, after Salesforce created the job) finds the
  // job an earlier attempt checkpointed and re-attaches to it, when it asks for the same rows and
  // was not loaded yet: no second job, no second COUNT().
  // Not to a job that was aborted, though: an attempt whose checkpoint write failed aborts its job
  // (below), yet the write may have committed with only its answer lost; re-attached, that job
  // would fail the check step, and the run with it, for one transient error. Such a job is
  // replaced by a new one (one poll to tell; re-attaching is rare).
  if (
    checkpoint &&
    checkpoint.loadedAt === undefined &&
    checkpoint.soql === bulkSoql &&
    checkpoint.includeDeleted === plan.includeDeleted &&
    (await sf.getBulkQueryJob(checkpoint.jobId)).state !== 'Aborted'
  ) {
    const attached: SalesforceExtractPending = {
      status: 'bulk-pending',
      runId: input.runId,
      task: task.name,
      jobId: checkpoint.jobId,
      attempt: 0,
      waitSeconds: bulkPollDelaySeconds(0),
      full: checkpoint.full,
      expectedRows: checkpoint.expectedRows,
      apiCalls: await calls.record(),
    };
    logger.info('Salesforce Bulk query job re-attached', {
      jobId: checkpoint.jobId,
      checkpointedAt: checkpoint.createdAt.toISOString(),
      waitSeconds: attached.waitSeconds,
    });
    return attached;
  }

  // The COUNT() this run took already (Prepare's, for its forecast; or an earlier attempt of this
  // step's) when it counted the same SOQL — same filter, same lower bound of the window, through
  // the same query/queryAll (which counts the deleted rows queryAll reads) —, else one asked now
  // and kept for a retry. The window has no upper bound: rows changed since the count are read
  // all the same, and its time, Salesforce's, still bounds the watermark (loadRows' readStartedAt:
  // a time before the read's start, so those rows are read again by the next run).
  // On an object without IsDeleted (User) queryAll has no deleted or archived rows to add: a
  // count through it (Prepare's, for a task with the default deletes, before any table told it the
  // object has none) counts the rows this read's query returns, and is reused, one call fewer.
  const reused =
    counted !== undefined &&
    counted.soql === plan.countSoql &&
    (counted.includeDeleted === plan.includeDeleted || !deletedField)
      ? counted
      : undefined;
  const { rows, countedAt } = reused ?? (await countRead());
  const bulkUnreadable = fieldsBulkCannotRead(plan.fields, describe.fields);
  const api = chooseReadApi(rows, task.bulkThreshold, bulkUnreadable);
  logger.info('Salesforce extract planned', {
    object: task.object,
    full,
    ...(reason ? { fullBecause: reason } : {}),
    since: plan.since?.toISOString(),
    includeDeleted: plan.includeDeleted,
    rows,
    countFrom: reused ? `this run's count of ${reused.countedAt.toISOString()}` : 'counted now',
    api,
    ...(api === 'rest' && rows >= task.bulkThreshold
      ? { restBecause: `Bulk queries cannot read the compound fields ${bulkUnreadable.join(', ')}` }
      : {}),
  });

  if (rows === 0) {
    // Nothing to read: the query would answer one empty page. Not sent; the empty result is loaded
    // as that page would be (the table made or evolved, a full read's reconcile, the run's result,
    // the watermark kept: an empty read has no newest change).
    return loadRows(deps, ctx, {
      runId: input.runId,
      columns,
      full,
      api,
      source: () => Readable.from([csvHeaderLine(plan.fields)]),
      calls,
      deletes,
      readStartedAt: countedAt,
    });
  }

  if (api === 'rest') {
    let read: RestQueryRead | undefined;
    return loadRows(deps, ctx, {
      runId: input.runId,
      columns,
      full,
      api,
      source: () => {
        read = undefined;
        return sf.queryRestCsv(plan.soql({ orderBy: true }), plan.fields, {
          includeDeleted: plan.includeDeleted,
          batchSize: options.restBatchSize ?? REST_QUERY_PAGE_ROWS,
          onRead: (r) => {
            read = r;
          },
        });
      },
      calls,
      deletes,
      readStartedAt: countedAt,
      // The query's own count, of the rows its cursor holds (not the COUNT() before it, which
      // changes made in between may differ from).
      countMismatch: () =>
        read?.totalSize !== undefined && read.totalSize !== read.records
          ? { totalSize: read.totalSize, read: read.records }
          : undefined,
    });
  }

  const jobId = await sf.startBulkQuery(bulkSoql, { includeDeleted: plan.includeDeleted });
  // Checkpointed at once, before answering: a retry from here on re-attaches. (Between
  // Salesforce's answer and this commit a crash still orphans the job: Bulk API 2.0 takes no
  // idempotency key. An orphaned query job reads, it writes nothing; it costs one job of the
  // daily allowance.)
  try {
    await withClient(deps.pg, (client) =>
      checkpointExtractJob(client, {
        runId: input.runId,
        task: task.name,
        jobId,
        soql: bulkSoql,
        includeDeleted: plan.includeDeleted,
        full,
        expectedRows: rows,
        columns,
      }),
    );
  } catch (err) {
    // The retry will not know this job: stop it rather than leave it running for nothing.
    await sf.abortBulkQuery(jobId).catch((abortError: unknown) =>
      logger.warn('Could not abort the Bulk query job that was not checkpointed', {
        jobId,
        error: abortError instanceof Error ? abortError.message : String(abortError),
      }),
    );
    throw err;
  }
  const pending: SalesforceExtractPending = {
    status: 'bulk-pending',
    runId: input.runId,
    task: task.name,
    jobId,
    attempt: 0,
    waitSeconds: bulkPollDelaySeconds(0),
    full,
    expectedRows: rows,
    apiCalls: await calls.record(),
  };
  logger.info('Salesforce Bulk query job pending', { jobId, waitSeconds: pending.waitSeconds });
  return pending;

  /** Asks Salesforce for the read's COUNT() and keeps it for the run (a retried step reuses it). */
  async function countRead(): Promise<{ rows: number; countedAt: Date }> {
    const clockBeforeCount = deps.clock.now();
    const answer = await sf
      .count(plan.countSoql, { includeDeleted: plan.includeDeleted })
      .catch((err: unknown) => {
        throw extractReadError(err, task, extractConfigPath(deps.config, task));
      });
    // Salesforce's time of the COUNT()'s answer: before the REST query starts.
    const at = sf.serverDate ?? clockBeforeCount;
    await withClient(deps.pg, (client) =>
      recordExtractCount(client, input.runId, task.name, {
        soql: plan.countSoql,
        includeDeleted: plan.includeDeleted,
        rows: answer,
        countedAt: at,
      }),
    );
    return { rows: answer, countedAt: at };
  }
}

/**
 * The check step of a Bulk read: polls the job once. Still running: `bulk-pending` with the next
 * wait. Complete: streams the results page by page (by locator) into the load and answers
 * `loaded`. Failed or aborted: TerminalError with Salesforce's reason. A retried check works on
 * the same job id, so it re-attaches instead of starting another job. Its calls are added to the
 * task's as the start's are (the input's `apiCalls` is not added again: it was recorded).
 */
export async function checkSalesforceExtract(
  event: SalesforceExtractCheckInput,
  deps: CoreDeps,
  options: SalesforceExtractOptions = {},
): Promise<SalesforceExtractOutput> {
  const pending = parseStepInput('CheckSalesforceExtract', SalesforceExtractCheckInput, event);
  const ctx = contextOf(deps, pending.runId, pending.task);
  const sf: SalesforceConnector = await salesforceOf(deps, `Extract task ${ctx.task.name}`);
  return withExtractApiCalls(deps, ctx, pending.runId, sf, 'check', (calls) =>
    checkExtract(deps, ctx, pending, sf, calls, options),
  ).catch((err: unknown) => {
    throw namedForTask(err, ctx.task.name);
  });
}

/** The check step's work, once signed in ({@link checkSalesforceExtract}). */
async function checkExtract(
  deps: CoreDeps,
  ctx: TaskContext,
  pending: SalesforceExtractPending,
  sf: SalesforceConnector,
  calls: ExtractApiCalls,
  options: SalesforceExtractOptions,
): Promise<SalesforceExtractOutput> {
  const { task, logger } = ctx;
  const job = await sf.getBulkQueryJob(pending.jobId);
  const poll = pending.attempt + 1;
  logger.debug('Salesforce Bulk query job polled', { jobId: job.id, state: job.state, poll });

  if (job.state === 'Failed' || job.state === 'Aborted') {
    throw new TerminalError(
      `Salesforce Bulk query job ${job.id} of extract task ${task.name} ended ${job.state}: ${sf.redact(job.errorMessage ?? 'no reason given')}`,
    );
  }
  if (job.state !== 'JobComplete') {
    const maxPolls = options.maxBulkPolls ?? MAX_BULK_QUERY_POLLS;
    if (poll >= maxPolls) {
      await sf.abortBulkQuery(job.id).catch((err: unknown) =>
        logger.warn('Could not abort the Bulk query job', {
          jobId: job.id,
          error: err instanceof Error ? err.message : String(err),
        }),
      );
      throw new TerminalError(
        `Salesforce Bulk query job ${job.id} of extract task ${task.name} was still ${job.state} after ${poll} polls: aborted`,
      );
    }
    const waitSeconds = bulkPollDelaySeconds(poll);
    // Said at info, a line a poll: a job of millions of records runs for minutes, and the log
    // shows how far it got (Salesforce counts the records it has read so far).
    logger.info('Salesforce Bulk query job still running', {
      jobId: job.id,
      state: job.state,
      poll,
      recordsProcessed: job.numberRecordsProcessed,
      nextPollInSeconds: waitSeconds,
    });
    return { ...pending, attempt: poll, waitSeconds, apiCalls: await calls.record() };
  }

  const { columns, deletedField } = await jobColumns(deps, ctx, pending, sf);
  const fields = columns.map((c) => c.name);
  const deletes = deletesFor(task, deletedField, extractConfigPath(deps.config, task));
  return loadRows(deps, ctx, {
    runId: pending.runId,
    columns,
    full: pending.full,
    api: 'bulk',
    source: () =>
      sf.streamBulkQueryResults(job.id, fields, {
        maxRecords: options.bulkResultPageRecords ?? DEFAULT_BULK_RESULT_PAGE_RECORDS,
        pageAttempts: options.bulkResultPageAttempts ?? 3,
      }),
    calls,
    deletes,
    jobId: pending.jobId,
    ...(job.createdDate ? { readStartedAt: job.createdDate } : {}),
  });
}

/**
 * The columns a complete Bulk job's results load into: those the extract step typed from its
 * describe and checkpointed with the job (its SOQL's fields, in order), so that the check makes no
 * describe call of its own and loads what the job read even when the describe or the task's fields
 * changed since. A job checkpointed without them (by an earlier version) is typed from a describe
 * read now, as before.
 */
async function jobColumns(
  deps: CoreDeps,
  ctx: TaskContext,
  pending: SalesforceExtractPending,
  sf: SalesforceConnector,
): Promise<{ columns: readonly PgColumn[]; deletedField: boolean }> {
  const { task } = ctx;
  const checkpoint = await withClient(deps.pg, (client) => readExtractJob(client, pending.runId, task.name));
  if (checkpoint?.jobId === pending.jobId && checkpoint.columns !== undefined) {
    const columns = checkpoint.columns;
    return { columns, deletedField: columns.some((c) => c.name === DELETED_FIELD) };
  }
  const describe = await describeTaskObject(
    sf,
    task.object,
    `${extractConfigPath(deps.config, task)}.object`,
  );
  const { fields, deletedField } = resolveFields(task, describe.fields, extractConfigPath(deps.config, task));
  return { columns: columnsFor(task, describe, fields), deletedField };
}
