/**
 * The Athena extract's load step (DESIGN.md §1, step 2): a finished query's result into a table.
 *
 * In AWS the state machine runs the query with `athena:startQueryExecution.sync` and hands this
 * step its output; locally (no `QueryExecution` in the input) the step starts the query itself
 * with a client request token derived from the run id and task (so a retried step gets the same
 * execution, not a second query) and waits for it; an execution that FAILED with an error Athena
 * marks `Retryable` is run again under the next token of a deterministic chain (at most
 * `ATHENA_MAX_QUERIES_PER_TASK` queries), which a retried step walks to the latest one. Then:
 * - the columns come from the result metadata (one `GetQueryResults` call, `MaxResults: 1`) and
 *   map to PostgreSQL types through `pgColumnForAthenaColumn` (docs/postgres.md);
 * - the result file is streamed from S3 (one `GetObject`; resumed with a Range request if the
 *   connection drops) straight into `COPY … FROM STDIN` of an UNLOGGED staging table: the file
 *   already is CSV in COPY's dialect (NULL unquoted-empty, the empty string `""`);
 * - without a key the table is refreshed with `swapInTable` (`delete-insert`), under a lock that
 *   makes overlapping runs swap one after the other: readers keep seeing
 *   the old rows until the commit, then all the new ones — never half a table — and the table
 *   keeps its OID, so views on it (the transform's) stay bound (a rename swap would leave them on
 *   the old table; see connectors/postgres/merge.ts). As every row is replaced, the table takes
 *   the result's column types as they are (`replacesRows`: a column whose type changed is
 *   emptied and altered, locking readers out until the commit);
 * - with a key the result is merged on it (insert new, update changed, leave the rest), and a
 *   column whose type changed is widened where no value is lost (any type to text), or the load
 *   refuses, naming the task, column, types and the ways out (docs/extract.md).
 * Evolving the table, the COPY, the swap or merge, the run's result and the staging drop are ONE
 * transaction: a failure leaves the table as it was.
 */
import type { QueryExecution } from '@aws-sdk/client-athena';
import type { AthenaExtractTask } from '../config';
import { AthenaRetryableQueryFailure } from '../connectors/athena/errors';
import { ATHENA_MAX_QUERIES_PER_TASK, clientRequestTokenFor } from '../connectors/athena/tokens';
import {
  athenaTypeForPgType,
  copyIntoStaging,
  dropStagingTable,
  ensureTable,
  mergeStaging,
  pgColumnForAthenaColumn,
  quoteIdent,
  swapInTable,
  withTransaction,
} from '../connectors/postgres';
import type { AthenaColumnInfo } from '../connectors/postgres';
import { TerminalError } from '../shared/errors';
import { AthenaLoadInput, parseStepInput, type AthenaLoadOutput } from './contracts';
import { athenaOf, splitTableName, type CoreDeps } from './deps';
import { recordTaskResult } from './run-state';

/**
 * Milliseconds before poll number `attempt` of a query the local path waits for: 2 s, then
 * doubling up to 30 s. Athena rarely answers a query in under a second or two, and every poll
 * is a GetQueryExecution call (quota about 100/s per account): a query of 10 s costs 3 polls,
 * so the whole load stays within 5 Athena calls (start, polls, one GetQueryResults).
 */
export function athenaLocalPollDelayMs(attempt: number): number {
  return Math.min(2000 * 2 ** Math.min(attempt, 4), 30_000);
}

/** The task named `name`, which must be an Athena extract. */
export function athenaTask(deps: CoreDeps, name: string): AthenaExtractTask {
  const task = deps.config.extract.find((t) => t.name === name);
  if (!task || task.from !== 'athena') {
    const known = deps.config.extract.filter((t) => t.from === 'athena').map((t) => t.name);
    throw new TerminalError(
      `No Athena extract task named "${name}" in pipeline ${deps.config.name} (known: ${known.join(', ') || 'none'})`,
    );
  }
  return task;
}

/**
 * The local path's query: started with the run and task's client request token (a retried step
 * re-attaches to the execution it started) and waited for. An execution that failed with a
 * retryable error is followed by a rerun under the next generation's token
 * ({@link clientRequestTokenFor}): a retried step walks the same chain — each finished execution
 * is found again, not rerun — and continues where it ended.
 */
async function runLocalQuery(
  deps: CoreDeps,
  runId: string,
  task: AthenaExtractTask,
): Promise<QueryExecution> {
  const athena = athenaOf(deps, `Extract task ${task.name}`);
  for (let generation = 0; ; generation += 1) {
    const id = await athena.startQuery(task.query, {
      clientRequestToken: clientRequestTokenFor(runId, task.name, generation),
    });
    try {
      return await athena.waitForQuery(id, {
        pollDelays: athenaLocalPollDelayMs,
        sleep: (ms) => deps.clock.sleep(ms),
      });
    } catch (err) {
      if (!(err instanceof AthenaRetryableQueryFailure)) throw err;
      if (generation + 1 >= ATHENA_MAX_QUERIES_PER_TASK) {
        throw new TerminalError(
          `${err.message} (the query of task ${task.name} failed ${ATHENA_MAX_QUERIES_PER_TASK} times with a retryable error; not rerun again)`,
          { cause: err },
        );
      }
      deps.logger.warn('Athena query failed with a retryable error; running it again', {
        runId,
        task: task.name,
        queryExecutionId: err.queryExecutionId,
        generation: generation + 1,
      });
    }
  }
}

/** Loads one Athena extract task; see the module comment. */
export async function loadAthena(event: AthenaLoadInput, deps: CoreDeps): Promise<AthenaLoadOutput> {
  const input = parseStepInput('LoadAthena', AthenaLoadInput, event);
  const task = athenaTask(deps, input.task);
  const athena = athenaOf(deps, `Extract task ${task.name}`);
  const logger = deps.logger.child({ runId: input.runId, task: task.name });
  const { schema, table } = splitTableName(task.table, deps.config.postgres.schema);
  const callsBefore = athena.apiCalls;
  const readsBefore = athena.s3Reads;

  let execution: QueryExecution;
  if (input.QueryExecution?.Status?.State) {
    execution = input.QueryExecution as QueryExecution;
  } else if (input.QueryExecution) {
    // An execution passed without its status (a trimmed `.sync` output): ask for it.
    execution = await athena.getQuery(input.QueryExecution.QueryExecutionId);
  } else {
    execution = await runLocalQuery(deps, input.runId, task);
  }
  const result = await athena.describeResult(execution);
  const columns = result.columns.map((c) => pgColumnForAthenaColumn(c as AthenaColumnInfo));
  const key = task.key ?? [];
  const missingKeys = key.filter((k) => !columns.some((c) => c.name === k));
  if (missingKeys.length > 0) {
    throw new TerminalError(
      `Extract task ${task.name}: key column ${missingKeys.map((k) => `"${k}"`).join(', ')} is not in the query's result (columns: ${columns.map((c) => c.name).join(', ')})`,
    );
  }

  const ms = (from: number): number => deps.clock.now().getTime() - from;
  return withTransaction(deps.pg, async (client) => {
    const started = deps.clock.now().getTime();
    const evolved = await ensureTable(client, {
      schema,
      table,
      columns,
      ...(key.length > 0 ? { primaryKey: key } : {}),
      onNarrower: 'keep',
      // A full refresh replaces every row: the table takes the result's types as they are.
      replacesRows: key.length === 0,
      owner: `Extract task ${task.name}`,
      keepTypeHint: (column, type) => {
        const athenaType = athenaTypeForPgType(type);
        return athenaType && `CAST(${quoteIdent(column)} AS ${athenaType}) in the task's query`;
      },
      logger,
    });
    const copied = await copyIntoStaging(client, {
      schema,
      target: table,
      runId: input.runId,
      columns,
      // `results: 'api'` is the fallback for a result bucket the role cannot read (1,000 rows a call).
      source:
        deps.config.athena?.results === 'api'
          ? athena.streamResultsViaApi(result.queryExecutionId, result.columns)
          : athena.streamResultFile(result.outputLocation),
      format: 'csv',
      header: true,
      logger,
    });
    const copyMs = ms(started);
    const refreshStarted = deps.clock.now().getTime();
    let counts: { inserted: number; updated: number; deleted: number };
    if (key.length > 0) {
      const merged = await mergeStaging(client, {
        schema,
        target: table,
        staging: copied.staging,
        columns,
        key,
      });
      counts = { inserted: merged.inserted, updated: merged.updated, deleted: 0 };
    } else {
      // Runs that overlap swap one at a time: swapInTable locks the table first (lockForRefresh).
      const swapped = await swapInTable(client, { schema, target: table, staging: copied.staging, columns });
      // Rows a retyped column's table lost before the swap (ensureTable's `cleared`) count too.
      counts = { inserted: swapped.inserted, updated: 0, deleted: swapped.removed + evolved.cleared };
    }
    const refreshMs = ms(refreshStarted);
    await dropStagingTable(client, schema, copied.staging);
    const output: AthenaLoadOutput = {
      status: 'loaded',
      runId: input.runId,
      task: task.name,
      queryExecutionId: result.queryExecutionId,
      refresh: key.length > 0 ? 'merge' : 'swap',
      rows: copied.rows,
      ...counts,
      apiCalls: athena.apiCalls - callsBefore,
      s3Reads: athena.s3Reads - readsBefore,
    };
    await recordTaskResult(client, input.runId, task.name, { kind: 'athena', ...output, copyMs, refreshMs });
    logger.info('Athena extract loaded', {
      table: `${schema}.${table}`,
      ...output,
      // COPY (the S3 file streamed in), then the swap or merge.
      copyMs,
      refreshMs,
      totalMs: ms(started),
    });
    return output;
  });
}
