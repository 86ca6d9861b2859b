/**
 * The Prepare step (DESIGN.md §1, step 1): validate the run input against the config, allocate
 * the run id, migrate the state schema, record the run, check that PostgreSQL and Salesforce
 * answer, and refuse to start a run whose forecast Salesforce API cost exceeds the budget.
 *
 * A run started with `onOverlap: 'skip'` (the schedule's) while another run of the pipeline is
 * still going is recorded `skipped` and ends at once: no Salesforce call, no second extract of the
 * same data. Going: its execution is RUNNING, when Step Functions can be asked (in AWS; a run
 * whose execution ended without its report is closed as failed here); else `running` with a step
 * started within stillGoingQuietMinutes(config) (150 minutes, more with a longer Athena query limit).
 *
 * A task name belongs to one pipeline per database (`roundtrip.task_owners`, claimed here by the
 * first pipeline to run it): a run whose task name another pipeline holds fails with a
 * TerminalError before any read, since the two would share the task's watermark and sync state.
 *
 * Idempotent: given the same run id (the state machine passes its execution name), a retried
 * Prepare finds the row the first attempt inserted and answers with the same start time.
 */
import { randomBytes } from 'node:crypto';
import type { PipelineConfig, SalesforceExtractTask } from '../config';
import { suggestion } from '../config/issues';
import type { PoolClient } from 'pg';
import { checkConnection, migrate, withClient, withTransaction } from '../connectors/postgres';
import type { SalesforceLimits } from '../connectors/salesforce';
import { DEFAULT_BULK_RESULT_PAGE_RECORDS } from '../connectors/salesforce/constants';
import { TerminalError } from '../shared/errors';
import { recordAfter, warnOnFailure } from '../shared/logging';
import {
  ABANDONED_AFTER_HOURS,
  PrepareInput,
  stillGoingQuietMinutes,
  parseStepInput,
  type ApiForecast,
  type PrepareOutput,
  type SelectedTasks,
} from './contracts';
import { salesforceOf, splitTableName, type CoreDeps } from './deps';
import { DAILY_BULK_API_BATCHES_LIMIT, PREPARE_LIMITS_KEY } from './writeback/api-budget';
import { addRunApiCalls, mergeRunSummary } from './writeback/state';
import {
  claimExtractTables,
  claimTaskNames,
  closeRunsWhoseProcessIsGone,
  extractTableClaims,
  extractTableConflictMessage,
  endRunningRun,
  markStepStarted,
  otherRunningRuns,
  recordExtractCount,
  recordRun,
  readExtractTableState,
  taskNameConflictMessage,
  type RecordedRun,
} from './run-state';
import {
  DELETED_FIELD,
  chooseReadApi,
  deletesFor,
  describeTaskObject,
  extractConfigPath,
  fieldsBulkCannotRead,
  forecastReadCalls,
  extractReadError,
  readFilter,
  readScopeChange,
} from './salesforce-read';

/** A Step Functions execution's ARN (`arn:<partition>:states:<region>:<account>:execution:<machine>:<name>`). */
const EXECUTION_ARN = /^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:execution:[^:]+:[^:]+$/;

/** The advisory lock class of a pipeline's Prepare that skips while another run goes on ('runs'). */
export const PREPARE_LOCK_CLASS = 0x72756e73;

/** The `/limits` entry of the daily API allowance (salesforce-wire.md, "Limits and error codes"). */
export const DAILY_API_REQUESTS_LIMIT = 'DailyApiRequests';
/** The `/limits` entry of the Bulk API 2.0 query jobs an org may create a day (10,000). */
export const DAILY_BULK_QUERY_JOBS_LIMIT = 'DailyBulkV2QueryJobs';

/**
 * A new run id, sortable by time: `20240520T204932Z-3f9a1c07` (UTC, then 32 random bits so that
 * two runs started in the same second differ). Fits {@link RUN_ID_PATTERN}.
 */
export function newRunId(now: Date): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
  return `${stamp}-${randomBytes(4).toString('hex')}`;
}

/**
 * When a run started: its execution's start time when the state machine passed it (what the
 * console shows), never after `now` (the two clocks may differ by a little); else `now`.
 */
export function runStartedAt(executionStartTime: string | undefined, now: Date): Date {
  if (executionStartTime === undefined) return now;
  const started = new Date(executionStartTime);
  return started.getTime() < now.getTime() ? started : now;
}

/**
 * The tasks a run input selects, by kind. Unknown names are a TerminalError naming them and the
 * known ones, and where the names were given (`givenIn`: the CLI says `--tasks`).
 */
export function selectTasks(
  config: PipelineConfig,
  names: readonly string[] | undefined,
  givenIn = 'the run input',
): SelectedTasks {
  const known = [...config.extract.map((t) => t.name), ...config.writeback.map((t) => t.name)];
  if (names) {
    const unknown = names.filter((n) => !known.includes(n));
    if (unknown.length > 0) {
      throw new TerminalError(
        `Unknown task${unknown.length === 1 ? '' : 's'} ${unknown
          .map((n) => {
            const meant = suggestion(n, known);
            return `"${n}"${meant ? ` (did you mean "${meant}"?)` : ''}`;
          })
          .join(
            ', ',
          )} in ${givenIn}; pipeline ${config.name} has: ${known.map((n) => `"${n}"`).join(', ') || 'no tasks'}`,
      );
    }
  }
  const wanted = (name: string): boolean => !names || names.includes(name);
  return {
    salesforce: config.extract.filter((t) => t.from === 'salesforce' && wanted(t.name)).map((t) => t.name),
    athena: config.extract.filter((t) => t.from === 'athena' && wanted(t.name)).map((t) => t.name),
    writeback: config.writeback.filter((t) => wanted(t.name)).map((t) => t.name),
  };
}

/** One Salesforce extract's share of the forecast. */
export interface ExtractForecast {
  readonly task: string;
  readonly rows: number;
  readonly api: 'rest' | 'bulk';
  /**
   * The extract's describe + the read's own calls (none when nothing is to be read): its COUNT()
   * is the one Prepare took (stored, reused by the extract step).
   */
  readonly apiCalls: number;
}

/**
 * Checks a forecast against the budget: at most `maxApiCallsPerRun`, and what remains of the
 * daily allowance afterwards must stay at or above `reserveDailyApiPercent` of its maximum; and
 * against the org's Bulk API 2.0 query jobs left today (`DailyBulkV2QueryJobs`): a read forecast
 * to go through Bulk creates one, and with none left its task would fail after the run started.
 * Throws a TerminalError with the numbers.
 */
export function checkBudget(
  config: PipelineConfig,
  forecast: number,
  perTask: readonly ExtractForecast[],
  limits: SalesforceLimits | undefined,
): void {
  const detail = perTask.map((t) => `${t.task}: ${t.apiCalls} (${t.api}, ${t.rows} rows)`).join(', ');
  const { maxApiCallsPerRun, reserveDailyApiPercent } = config.budget;
  if (forecast > maxApiCallsPerRun) {
    throw new TerminalError(
      `Run refused: it is forecast to make ${forecast} Salesforce API calls (${detail}), more than budget.maxApiCallsPerRun ${maxApiCallsPerRun}`,
    );
  }
  const bulkReads = perTask.filter((t) => t.api === 'bulk').map((t) => t.task);
  const jobs = limits?.[DAILY_BULK_QUERY_JOBS_LIMIT];
  if (jobs && bulkReads.length > jobs.Remaining) {
    throw new TerminalError(
      `Run refused: its Bulk reads (${bulkReads.join(', ')}) need ${bulkReads.length} Bulk API 2.0 query ` +
        `job${bulkReads.length === 1 ? '' : 's'}, and the org has ${jobs.Remaining} of its ${jobs.Max} a day left ` +
        `(${DAILY_BULK_QUERY_JOBS_LIMIT}: other tools count too, and they free up over a rolling 24 hours). ` +
        `A task's bulkThreshold above its row count reads it over REST instead`,
    );
  }
  const daily = limits?.[DAILY_API_REQUESTS_LIMIT];
  if (!daily) return;
  const reserve = Math.ceil((daily.Max * reserveDailyApiPercent) / 100);
  const left = daily.Remaining - forecast;
  if (left < reserve) {
    throw new TerminalError(
      `Run refused: it is forecast to make ${forecast} Salesforce API calls (${detail}); of the org's daily allowance ` +
        `${daily.Remaining} of ${daily.Max} remain, which would leave ${left}, below the reserve of ${reserve} ` +
        `(budget.reserveDailyApiPercent ${reserveDailyApiPercent}%)`,
    );
  }
}

/** Options of {@link prepare}. */
export interface PrepareOptions {
  /** Rows per Bulk result page the extracts use (for the forecast). @default DEFAULT_BULK_RESULT_PAGE_RECORDS */
  readonly bulkResultPageRecords?: number;
}

/** Runs the Prepare step; see the module comment. */
export async function prepare(
  event: PrepareInput,
  deps: CoreDeps,
  options: PrepareOptions = {},
): Promise<PrepareOutput> {
  const input = parseStepInput('Prepare', PrepareInput, event);
  const { config } = deps;
  const tasks = selectTasks(config, input.input.tasks);
  const runId = input.runId ?? newRunId(deps.clock.now());
  const logger = deps.logger.child({ runId });
  const full = input.input.full ?? false;
  const dryRun = input.input.dryRun ?? false;

  const server = await checkConnection(deps.pg);
  logger.info('PostgreSQL reachable', { serverVersion: server.serverVersion, ssl: server.ssl });
  await migrate(deps.pg, { logger });
  const skipWhileGoing = input.input.onOverlap === 'skip';
  const { run, skipped } = await withTransaction(deps.pg, async (client) => {
    // Runs that skip decide one at a time per pipeline: two that start together cannot both miss
    // the other (the lock ends with the transaction, the row of the first is then committed).
    if (skipWhileGoing) {
      await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [PREPARE_LOCK_CLASS, config.name]);
    }
    const recorded = await recordRun(client, {
      runId,
      pipeline: config.name,
      dryRun,
      input: input.input,
      executionArn: input.executionArn,
      startedAt: runStartedAt(input.executionStartTime, deps.clock.now()),
      process: deps.processes?.self,
    });
    // A run of this machine whose process is gone (killed with SIGKILL, crashed) never reports:
    // closed now, so that it neither holds back the keys it sent nor makes this run skip.
    if (deps.processes) {
      const gone = await closeRunsWhoseProcessIsGone(
        client,
        config.name,
        deps.processes,
        `the Prepare of run ${runId}`,
        deps.clock.now(),
      );
      for (const closed of gone) {
        logger.warn('Closed a run whose process is gone', { closedRunId: closed.runId, pid: closed.pid });
      }
    }
    return { run: recorded, skipped: skipWhileGoing ? await skipIfGoing(client, recorded) : undefined };
  });
  logger.info(run.created ? 'Run recorded' : 'Run already recorded (Prepare retried)', {
    pipeline: config.name,
    tasks,
    full,
    dryRun,
  });
  const output = (forecast: ApiForecast, apiCalls = 0): PrepareOutput => ({
    runId,
    pipeline: config.name,
    tasks,
    full,
    dryRun,
    startedAt: run.startedAt.toISOString(),
    forecast,
    ...(apiCalls > 0 ? { apiCalls } : {}),
    ...(skipped ? { skipped } : {}),
  });
  if (skipped) {
    logger.warn('Run skipped: another run of the pipeline is still going', { reason: skipped });
    return output({ salesforceApiCalls: 0 });
  }

  // The state tables are keyed by task name alone: a name another pipeline uses in this database
  // would share its watermark and sync state. Checked before anything is read (the forecast reads
  // the watermarks) or written; a refused run claims none of its names (the transaction rolls back).
  const taskNames = [...tasks.salesforce, ...tasks.athena, ...tasks.writeback];
  // So is an extract table: one that another pipeline loads, or that holds rows no run of this
  // pipeline loaded (a typo in `table`, a table of the application), would have its rows merged
  // into or replaced. Refused here, before any extract touches it.
  const tableClaims = extractTableClaims(config, [...tasks.salesforce, ...tasks.athena]);
  await withTransaction(deps.pg, async (client) => {
    const owners = await claimTaskNames(client, config.name, runId, taskNames);
    if (owners.length > 0) throw new TerminalError(taskNameConflictMessage(config.name, owners));
    const tables = await claimExtractTables(client, config.name, runId, tableClaims);
    if (tables.length > 0) throw new TerminalError(extractTableConflictMessage(config.name, tables));
  });

  let forecast: ApiForecast = { salesforceApiCalls: 0 };
  let spentByRun = 0;
  if (tasks.salesforce.length > 0 || tasks.writeback.length > 0) {
    const sf = await salesforceOf(deps, 'Prepare');
    const before = sf.apiCalls;
    const perTask: ExtractForecast[] = [];
    let spent = 0;
    // Prepare's own calls (limits, the counts) are part of the run's cost, spent whether or not
    // the budget lets the run go on, or this attempt gets to the end: added to what earlier
    // attempts of a retried Prepare recorded (the output answers the run's total). When the
    // forecast failed and the record fails too, the forecast's error is the one thrown.
    const limits: SalesforceLimits = await recordAfter(
      logger,
      async () => {
        const answer = await sf.limits();
        for (const name of tasks.salesforce) {
          const task = config.extract.find((t) => t.name === name) as SalesforceExtractTask;
          perTask.push(await forecastExtract(deps, task, full, options));
        }
        return answer;
      },
      async () => {
        spent = sf.apiCalls - before;
        spentByRun = await withTransaction(deps.pg, (client) =>
          addRunApiCalls(client, runId, ['prepare'], spent),
        );
      },
      () =>
        `the ${spent} Salesforce API call${spent === 1 ? '' : 's'} Prepare made (roundtrip.runs summary.prepare.apiCalls of run ${runId})`,
    );
    // The allowances, for the write-backs, which check their push against them once planned
    // (writeback/api-budget.ts): what a write-back sends is not known yet.
    const kept = Object.fromEntries(
      [DAILY_API_REQUESTS_LIMIT, DAILY_BULK_API_BATCHES_LIMIT].flatMap((name) => {
        const entry = limits[name];
        return entry ? [[name, { Max: entry.Max, Remaining: entry.Remaining }]] : [];
      }),
    );
    await withTransaction(deps.pg, (client) =>
      mergeRunSummary(client, runId, ['prepare'], { [PREPARE_LIMITS_KEY]: kept }),
    );
    const total = spent + perTask.reduce((sum, t) => sum + t.apiCalls, 0);
    const daily = limits[DAILY_API_REQUESTS_LIMIT];
    forecast = {
      salesforceApiCalls: total,
      ...(daily ? { dailyRemaining: daily.Remaining, dailyMax: daily.Max } : {}),
    };
    logger.info('Salesforce API forecast', { ...forecast, perTask });
    checkBudget(config, total, perTask, limits);
  }

  // The state machine's next states may start no Lambda step for a long while (an Athena query
  // and its reruns): the quiet stretch a later run allows this one (stillGoingQuietMinutes) is
  // counted from here, not from the execution's start, so that Prepare's own time (its function
  // runs up to 900 s, and a retried Prepare several times that) is not part of it.
  await warnOnFailure(logger, 'Could not mark the end of Prepare on its run', { runId }, () =>
    withClient(deps.pg, (client) => markStepStarted(client, runId, deps.clock.now())),
  );
  return output(forecast, spentByRun);

  /**
   * The reason this run is skipped, when another run of the pipeline is still going: the run is
   * then recorded `skipped`. A retried Prepare answers what the first attempt decided.
   */
  async function skipIfGoing(client: PoolClient, recorded: RecordedRun): Promise<string | undefined> {
    if (!recorded.created) {
      if (recorded.status !== 'skipped') return undefined;
      return recorded.error ?? 'Skipped';
    }
    const now = deps.clock.now();
    const since = new Date(now.getTime() - ABANDONED_AFTER_HOURS * 3_600_000);
    const quietSince = new Date(now.getTime() - stillGoingQuietMinutes(config) * 60_000);
    for (const other of await otherRunningRuns(client, config.name, runId, since)) {
      const execution = await executionStatus(other.executionArn);
      if (execution !== undefined && execution !== 'RUNNING') {
        // Its execution is over, and never reported: stopped from the console, say.
        await endRunningRun(
          client,
          other.runId,
          'failed',
          now,
          `Its execution ended ${execution} without its report (seen by the Prepare of run ${runId})`,
        );
        logger.warn('Closed a run whose execution ended without its report', {
          closedRunId: other.runId,
          executionStatus: execution,
        });
        continue;
      }
      if (execution === undefined && other.lastStepAt <= quietSince) continue;
      const why =
        execution === 'RUNNING'
          ? 'its execution is RUNNING'
          : `its latest step started ${other.lastStepAt.toISOString()}`;
      const reason =
        `Skipped: run ${other.runId} of pipeline ${config.name} is still going (started ${other.startedAt.toISOString()}, ` +
        `${why}), and this run was started with onOverlap "skip"`;
      await endRunningRun(client, runId, 'skipped', now, reason);
      return reason;
    }
    return undefined;
  }

  /**
   * The status of a run's execution when Step Functions can be asked (in AWS, for an execution's
   * ARN); `undefined` when it cannot (a laptop, a run recorded locally, an error asking): the run
   * then counts as going while its steps start (stillGoingQuietMinutes).
   */
  async function executionStatus(executionArn: string | null): Promise<string | undefined> {
    const executions = deps.executions;
    if (!executions || !executionArn || !EXECUTION_ARN.test(executionArn)) return undefined;
    return warnOnFailure(
      logger,
      'Could not ask Step Functions whether a run still runs; going by its steps',
      { executionArn },
      () => executions.statusOf(executionArn),
    );
  }

  async function forecastExtract(
    d: CoreDeps,
    task: SalesforceExtractTask,
    fullRun: boolean,
    opts: PrepareOptions,
  ): Promise<ExtractForecast> {
    const sf = await salesforceOf(d, 'Prepare');
    const { schema, table } = splitTableName(task.table, config.postgres.schema);
    const { watermark, columns, emptied } = await withClient(d.pg, (client) =>
      readExtractTableState(client, task.name, schema, table),
    );
    // As the extract decides, approximately (the describe's spelling is not known here).
    const lower = new Set([...(columns ?? [])].map((c) => c.toLowerCase()));
    const newColumns = columns === undefined || task.fields.some((f) => !lower.has(f.toLowerCase()));
    const scopeChanged = readScopeChange(watermark?.readScope, task, task.fields) !== undefined;
    const readsFull =
      fullRun || task.mode === 'full' || !watermark?.watermark || newColumns || scopeChanged || emptied;
    // An object without IsDeleted (User) is read through `query`, and its table has no IsDeleted
    // column (the extract adds it to every other object's): the count goes through the same API,
    // so that the extract reuses it. No table yet: counted as for an object with it; the extract,
    // which reads the describe, counts again when the object has none.
    const deletedField = columns === undefined || lower.has(DELETED_FIELD.toLowerCase());
    const filter = readFilter(task, { full: readsFull, watermark: watermark?.watermark, deletedField });
    const clockBeforeCount = d.clock.now();
    const rows = await sf
      .count(filter.countSoql, { includeDeleted: filter.includeDeleted })
      .catch((err: unknown) => {
        throw extractReadError(err, task, extractConfigPath(config, task));
      });
    // Kept for the run's extract step, which reuses it when it reads with the same SOQL (it decides
    // the read from the describe: a spelling that differs, or a watermark another run moved since,
    // makes it count again).
    await withClient(d.pg, (client) =>
      recordExtractCount(client, runId, task.name, {
        soql: filter.countSoql,
        includeDeleted: filter.includeDeleted,
        rows,
        countedAt: sf.serverDate ?? clockBeforeCount,
      }),
    );
    // A read selecting a compound field goes over REST whatever its count (chooseReadApi), as
    // the extract decides from the describe. The table's columns tell (a compound field is a
    // jsonb column, and no other Salesforce type is); a table not made yet, or without a column
    // of each field, does not: then the describe does, one call, only when the count would
    // choose Bulk.
    let bulkUnreadable: readonly string[] = [];
    if (rows >= task.bulkThreshold) {
      if (columns !== undefined && !newColumns) {
        const compound = await withClient(d.pg, (client) => jsonbColumns(client, schema, table));
        bulkUnreadable = task.fields.filter((f) => compound.has(f.toLowerCase()));
      } else {
        const describe = await describeTaskObject(
          sf,
          task.object,
          `${extractConfigPath(config, task)}.object`,
        );
        bulkUnreadable = fieldsBulkCannotRead(task.fields, describe.fields);
        // Read for this, the describe also tells whether the task's `deletes` can work for its
        // object (User has no IsDeleted: 'flag' cannot): refused now rather than by the extract.
        deletesFor(
          task,
          describe.fields.some((f) => f.name.toLowerCase() === DELETED_FIELD.toLowerCase()),
          extractConfigPath(config, task),
        );
      }
    }
    const api = chooseReadApi(rows, task.bulkThreshold, bulkUnreadable);
    // No rows: the extract sends no query.
    const read =
      rows === 0
        ? 0
        : forecastReadCalls(rows, api, {
            bulkPageRecords: opts.bulkResultPageRecords ?? DEFAULT_BULK_RESULT_PAGE_RECORDS,
          });
    // The extract's own describe, then the read (the COUNT() is this one, reused).
    return { task: task.name, rows, api, apiCalls: 1 + read };
  }
}

/**
 * The jsonb columns of `schema.table`, lower-cased: in an extract's table, the compound fields
 * (address, location; lambdas/connectors/postgres/types.ts), which a Bulk query cannot read.
 */
async function jsonbColumns(client: PoolClient, schema: string, table: string): Promise<Set<string>> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT lower(a.attname) AS name
       FROM pg_attribute a
       JOIN pg_class c ON c.oid = a.attrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped
        AND a.atttypid = 'jsonb'::regtype`,
    [schema, table],
  );
  return new Set(rows.map((r) => r.name));
}
