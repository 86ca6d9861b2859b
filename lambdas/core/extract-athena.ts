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
 *   refuses, naming the task, column, types and the ways out (docs/extract.md). A key the result
 *   holds in more than one row is merged once (the last in the file): the rows dropped are the
 *   staged rows less the merge's distinct keys, and when there are some the load names a few keys
 *   and warns (the output's `duplicateKeys`, the log) or, with the task's `duplicateKeys: 'fail'`,
 *   fails before the commit.
 * The COPY, evolving the table, the swap or merge, the run's result and the staging drop are ONE
 * transaction: a failure leaves the table as it was. The table is evolved after the COPY: an ALTER
 * TABLE locks readers out until the commit, which must not include the result's download.
 */
import type { ColumnInfo, QueryExecution } from '@aws-sdk/client-athena';
import type { AthenaExtractTask, PipelineConfig } from '../config';
import {
  AthenaQueryCancelled,
  AthenaQueryFailed,
  AthenaResultNotRows,
  AthenaRetryableQueryFailure,
  athenaStartRefusal,
  athenaStartRefusedPrefix,
} from '../connectors/athena/errors';
import { ATHENA_MAX_QUERIES_PER_TASK, clientRequestTokenFor } from '../connectors/athena/tokens';
import {
  athenaTypeForPgType,
  copyIntoStaging,
  dropStagingTable,
  ensureSchema,
  ensureTable,
  MAX_IDENTIFIER_BYTES,
  MAX_TABLE_COLUMNS,
  mergeStaging,
  STAGING_ROW_COLUMN,
  pgColumnForAthenaColumn,
  quoteIdent,
  quoteQualified,
  repeatedStagedKeys,
  RESERVED_COLUMN_PREFIX,
  swapInTable,
  withTransaction,
} from '../connectors/postgres';
import type { AthenaColumnInfo, PgColumn } from '../connectors/postgres';
import { namedForTask, TerminalError } from '../shared/errors';
import { listed } from '../shared/words';
import {
  AthenaLoadInput,
  parseStepInput,
  type AthenaDuplicateKeysFound,
  type AthenaKeptPrimaryKey,
  type AthenaLoadOutput,
} from './contracts';
import { athenaOf, splitTableName, type CoreDeps } from './deps';
import {
  duplicateKeysWarning,
  keptPrimaryKeyWarning,
  oneRowAKeyFix,
  repeatedKeysText,
} from './load-warnings';
import { recordTaskResult } from './run-state';
import { suggestion } from '../config/issues';
import { extractConfigPath } from './salesforce-read';

/**
 * Milliseconds before poll number `attempt` of a query the local path waits for: 2 s, then
 * doubling up to 30 s. Athena rarely answers a query in under a second or two, and every poll
 * is a GetQueryExecution call (quota about 100/s per account): a query of 10 s costs 3 polls,
 * so the whole load stays within 5 Athena calls (start, polls, one GetQueryResults).
 */
export function athenaLocalPollDelayMs(attempt: number): number {
  return Math.min(2000 * 2 ** Math.min(attempt, 4), 30_000);
}

/**
 * What keeps an Athena result's column names (in result order) from naming a table's columns as
 * they are, one phrase a problem; empty when nothing does. Athena names result columns freely:
 * `SELECT *` over a join repeats a name (the `id` of both tables), and an alias or a Glue column
 * name may have up to 255 bytes. A PostgreSQL table needs distinct names of at most 63 bytes (it
 * would cut a longer one, and two names could then collide), and the loader keeps names starting
 * with its prefix for its own staging columns.
 */
export function athenaColumnNameProblems(names: readonly string[]): string[] {
  const problems: string[] = [];
  const seen = new Map<string, number[]>();
  names.forEach((name, i) => seen.set(name, [...(seen.get(name) ?? []), i + 1]));
  for (const [name, at] of seen) {
    if (name === '') {
      problems.push(
        `${at.length > 1 ? 'columns' : 'column'} ${listed(at)} ${at.length > 1 ? 'have' : 'has'} no name`,
      );
      continue;
    }
    if (at.length > 1) problems.push(`${JSON.stringify(name)} ${at.length} times (columns ${listed(at)})`);
    const bytes = Buffer.byteLength(name, 'utf8');
    if (bytes > MAX_IDENTIFIER_BYTES) {
      problems.push(
        `${JSON.stringify(name)} has ${bytes} bytes (PostgreSQL keeps ${MAX_IDENTIFIER_BYTES} of a name and cuts the rest)`,
      );
    }
    if (name.startsWith(RESERVED_COLUMN_PREFIX)) {
      problems.push(
        `${JSON.stringify(name)} starts with ${RESERVED_COLUMN_PREFIX}, kept for the loader's own columns`,
      );
    }
  }
  return problems;
}

/**
 * What the load refuses in a query's result before it touches the task's table, as the sentence
 * that follows `Extract task <name>: `; undefined when it takes the result. The load checks the
 * result's columns with it once the query ran, and `roundtrip validate` before any run, with the
 * columns of the query's result read without its rows (`resultColumns` of the Athena connector):
 * - names the table's columns cannot have as they are ({@link athenaColumnNameProblems});
 * - more columns than a load stages ({@link MAX_TABLE_COLUMNS} less its own);
 * - a `key` column the result does not have. Compared as written, case and all: the key names the
 *   table's columns (its primary key), which are named as the result's, and PostgreSQL tells a
 *   quoted "ID" from "id". Athena gives a column the case the query writes it in (`SELECT ID` →
 *   `ID`), so a key that differs from it in case only is refused with the result's spelling, not
 *   taken for it: a table keyed on a name its config does not spell would be named one way in the
 *   config and another in PostgreSQL, its transforms and every message about the key.
 */
export function athenaResultRefusal(
  task: Pick<AthenaExtractTask, 'key'>,
  configPath: string,
  columnNames: readonly string[],
  table: string,
): string | undefined {
  const nameProblems = athenaColumnNameProblems(columnNames);
  if (nameProblems.length > 0) {
    return `the query's result columns (${configPath}.query) cannot be the columns of ${table} as named: ${nameProblems.join('; ')}. Give each column of the result its own name of at most ${MAX_IDENTIFIER_BYTES} bytes with AS in the task's query (SELECT o.id AS order_id, …)`;
  }
  // The staging table holds the result's columns and its own row number.
  const maxColumns = MAX_TABLE_COLUMNS - 1;
  if (columnNames.length > maxColumns) {
    return `the query's result (${configPath}.query) has ${columnNames.length} columns, more than the ${maxColumns} a load takes: a PostgreSQL table has at most ${MAX_TABLE_COLUMNS}, and the load stages the rows in a table with one column more (${STAGING_ROW_COLUMN}). Select fewer columns in the task's query, or combine several into one value (CAST(ROW(a, b) AS JSON) loads as one jsonb column)`;
  }
  const key = task.key ?? [];
  const missingKeys = key.filter((k) => !columnNames.includes(k));
  if (missingKeys.length === 0) return undefined;
  const hints = missingKeys.map((k) => {
    const meant = suggestion(k, columnNames);
    if (meant === undefined) return '';
    return meant.toLowerCase() === k.toLowerCase()
      ? `; did you mean "${meant}" for "${k}"? (the table's columns are named as the result's, case and all, and the key names them)`
      : `; did you mean "${meant}" for "${k}"?`;
  });
  return (
    `key column ${missingKeys.map((k) => `"${k}"`).join(', ')} (${configPath}.key) is not in the query's result (columns: ${columnNames.join(', ')})` +
    hints.join('') +
    `: name columns of the result in the key, or give the column that name with AS in the task's query`
  );
}

/**
 * The merge's error when the query returned a row whose key column is NULL (SQLSTATE 23502 on a
 * key column: the key is the table's primary key), told as the task's; undefined for any other.
 */
function nullKeyError(
  err: unknown,
  task: AthenaExtractTask,
  table: string,
  key: readonly string[],
): TerminalError | undefined {
  const cause = (err as { cause?: unknown } | null)?.cause ?? err;
  const { code, column, detail } = (cause ?? {}) as { code?: unknown; column?: unknown; detail?: unknown };
  if (code !== '23502' || typeof column !== 'string' || !key.includes(column)) return undefined;
  return new TerminalError(
    `Extract task ${task.name}: the query returned a row whose key column "${column}" is NULL${
      typeof detail === 'string' ? ` (${detail.replace(/\.$/, '')})` : ''
    }, and the table ${table} is merged on its key (${key.join(', ')}), which must name every row: leave such rows out in the task's query (WHERE ${quoteIdent(column)} IS NOT NULL) or give them a key there (coalesce); the table was left as it was`,
    { cause: err },
  );
}

/**
 * The swap's error when the table of a task without `key` still has a primary key (made by the
 * task's earlier, keyed loads, or by hand) that the result breaks: a value of it in more than one
 * row (SQLSTATE 23505 on that constraint), or a row without one (23502 on a key column: NULL, or
 * the query no longer returns the column). Told as the task's, with the table's key and the ways
 * out; undefined for any other error. Without a key the result replaces the table's rows as they
 * are, so the load itself never asks for one row a value.
 */
function keptPrimaryKeyError(
  err: unknown,
  task: AthenaExtractTask,
  configPath: string,
  target: { readonly schema: string; readonly table: string },
  primaryKey: { readonly constraint: string | undefined; readonly columns: readonly string[] },
  resultColumns: readonly string[],
): TerminalError | undefined {
  if (primaryKey.columns.length === 0 || primaryKey.constraint === undefined) return undefined;
  const table = `${target.schema}.${target.table}`;
  const cause = (err as { cause?: unknown } | null)?.cause ?? err;
  const { code, column, constraint, detail } = (cause ?? {}) as Record<string, unknown>;
  const key = primaryKey.columns;
  const keyText = `(${key.join(', ')})`;
  let what: string;
  if (code === '23505' && (constraint === undefined || constraint === primaryKey.constraint)) {
    const value = typeof detail === 'string' ? /^Key (.*) already exists\.?$/s.exec(detail)?.[1] : undefined;
    what = `the query returned ${value ? `the key ${value}` : 'a value of the key'} in more than one row`;
  } else if (code === '23502' && typeof column === 'string' && key.includes(column)) {
    what = resultColumns.includes(column)
      ? `the query returned a row whose "${column}" is NULL`
      : `the query's result has no column "${column}"`;
  } else {
    return undefined;
  }
  const drop = `ALTER TABLE ${quoteQualified(target.schema, target.table)} DROP CONSTRAINT ${quoteIdent(primaryKey.constraint)}`;
  return new TerminalError(
    `Extract task ${task.name}: ${what}, and the table ${table} has the primary key ${keyText}, which needs one row a value; ` +
      `the task has no key (${configPath}.key), so the result replaces the table's rows as they are, and the table kept the key it was made with (by the task's earlier loads with a key, or by hand). ` +
      `Either drop the table's primary key if the task is meant to load without one (${drop}), ` +
      `or give the task its key again (${configPath}.key: [${key.map((k) => `'${k}'`).join(', ')}]: the load then merges, one row a key) and have the query return a value of it in every row; the table was left as it was`,
    { cause: err },
  );
}

/**
 * The COPY's error when a value of the result holds the character U+0000, told as the task's;
 * undefined for any other error. Athena's varchar carries it (data written by other systems often
 * does), and PostgreSQL stores it in no text value: raw in a text column it fails as
 * `invalid byte sequence for encoding "UTF8": 0x00` (SQLSTATE 22021), PostgreSQL naming the line of
 * the result file (a value's line breaks count) but not the column; escaped in a json value
 * (`"\u0000"`), which the load keeps as jsonb, it fails as 22P05, naming the column.
 */
function nulCharacterError(err: unknown, task: AthenaExtractTask, table: string): TerminalError | undefined {
  const cause = (err as { cause?: unknown } | null)?.cause ?? err;
  const { code, message, detail, where } = (cause ?? {}) as Record<string, unknown>;
  const context = typeof where === 'string' ? where : '';
  const line = /\bCOPY .*?, line (\d+)/.exec(context)?.[1];
  const onLine = line
    ? `line ${line} of the result file, counting its header line and the line breaks inside values`
    : undefined;
  const leftAsItWas = `the table ${table} was left as it was`;
  if (code === '22021' && typeof message === 'string' && /\b0x00\b/.test(message)) {
    return new TerminalError(
      `Extract task ${task.name}: a value of the query's result holds the character U+0000 (NUL)${onLine ? ` (${onLine})` : ''}, which PostgreSQL cannot store in text: take it out in the task's query (replace(column, chr(0), '')); ${leftAsItWas}`,
      { cause: err },
    );
  }
  if (code === '22P05' && typeof detail === 'string' && detail.includes('\\u0000')) {
    const column = /\bCOPY .*?, line \d+, column (.*?): /s.exec(context)?.[1];
    const which = column ? ` of column "${column}"` : '';
    return new TerminalError(
      `Extract task ${task.name}: a json value${which} holds the character U+0000 (the escape \\u0000)${onLine ? ` (${onLine})` : ''}, which PostgreSQL's jsonb cannot store: load the column as text with json_format(${column ? quoteIdent(column) : 'column'}) in the task's query, or take the character out; ${leftAsItWas}`,
      { cause: err },
    );
  }
  return undefined;
}

/**
 * The COPY's error when a value of the result is not one PostgreSQL takes as its column's type
 * (SQLSTATE class 22, data exception, located by COPY's context `COPY …, line n, column c: …`),
 * told as the task's: the column, its Athena and PostgreSQL types, the line of the result file,
 * PostgreSQL's reason and the way out in the query. Undefined for any other error. Athena answers
 * values PostgreSQL's types refuse: a `date` or `timestamp` of the year 0 (Trino's calendar has
 * one, PostgreSQL's goes from 1 BC to 1 AD) or past PostgreSQL's range, say. Without this the run's
 * error named the staging table, not the task.
 */
function valueNotTakenError(
  err: unknown,
  task: AthenaExtractTask,
  configPath: string,
  columns: readonly PgColumn[],
  athenaColumns: readonly ColumnInfo[],
  table: string,
): TerminalError | undefined {
  const cause = (err as { cause?: unknown } | null)?.cause ?? err;
  const { code, message, where } = (cause ?? {}) as Record<string, unknown>;
  if (typeof code !== 'string' || !code.startsWith('22') || typeof where !== 'string') return undefined;
  const located = /\bCOPY .*?, line (\d+), column (.*?): /s.exec(where);
  if (!located) return undefined;
  const [, line, name] = located;
  const index = columns.findIndex((c) => c.name === name);
  const column = columns[index];
  if (!column) return undefined;
  const athenaType = athenaColumns[index]?.Type;
  return new TerminalError(
    `Extract task ${task.name}: a value of column "${column.name}" (Athena ${athenaType ?? 'type unknown'}, loaded as ${column.pgType}) on line ${line} of the result file (counting its header line and the line breaks inside values) is not one PostgreSQL takes as ${column.pgType}: ${typeof message === 'string' ? message : String(code)} (SQLSTATE ${code}). ` +
      `Change or leave out such values in the task's query (${configPath}.query), or load the column as text there (CAST(${quoteIdent(column.name)} AS VARCHAR)); the table ${table} was left as it was`,
    { cause: err },
  );
}

/**
 * Any other error of the COPY (the result file's read: S3 `NoSuchKey`, its retries spent; the
 * connection to PostgreSQL lost), told as the task's ({@link namedForTask}). Without it the run's
 * error named the result file or the staging table, not the task.
 */
function copyFailedError(err: unknown, task: AthenaExtractTask, table: string): unknown {
  return namedForTask(err, task.name, `; the table ${table} was left as it was`);
}

/**
 * The read's error when S3 refused the result file (`AccessDenied`, HTTP 403), told as the task's
 * with the likely cause; undefined for any other error. The stack grants the load `s3:GetObject`
 * under `athena.outputLocation` only (lib/pipeline-stack.ts): a workgroup that enforces its own
 * result location writes elsewhere, and a result file encrypted with a KMS key needs `kms:Decrypt`
 * on it, which only `athena.resultsKmsKeyArn` grants.
 */
function resultFileRefusedError(
  err: unknown,
  task: AthenaExtractTask,
  athena: PipelineConfig['athena'],
  location: string,
  table: string,
): TerminalError | undefined {
  const cause = (err as { cause?: unknown } | null)?.cause;
  const { name, $metadata } = (cause ?? {}) as { name?: unknown; $metadata?: { httpStatusCode?: unknown } };
  if (!(err instanceof TerminalError) || (name !== 'AccessDenied' && $metadata?.httpStatusCode !== 403)) {
    return undefined;
  }
  const configured = athena?.outputLocation;
  const elsewhere =
    configured !== undefined &&
    !location.startsWith(configured.endsWith('/') ? configured : `${configured}/`);
  const why = elsewhere
    ? `the query wrote it outside athena.outputLocation ${configured}, the location whose files the load may read: workgroup ${athena?.workgroup ?? 'primary'} enforces its own result location (roundtrip validate names it); set athena.outputLocation to that location and deploy again`
    : `the load's role${athena?.roleArn ? ` (athena.roleArn ${athena.roleArn})` : ''} needs s3:GetObject on it, and kms:Decrypt on the KMS key that encrypts it when the workgroup encrypts its results with SSE-KMS: name that key in athena.resultsKmsKeyArn${athena?.resultsKmsKeyArn ? ` (now ${athena.resultsKmsKeyArn})` : ' (not set)'} and deploy again`;
  return new TerminalError(
    `Extract task ${task.name}: the load may not read the query's result file (${err.message}): ${why}; the table ${table} was left as it was`,
    { cause: err },
  );
}

/** The characters of a repeated key's value that the output and messages keep (the rest cut, `…`). */
const MAX_KEY_VALUE_CHARS = 200;

/**
 * `value` cut to {@link MAX_KEY_VALUE_CHARS} UTF-16 units and `…`, never between the two halves of
 * a character outside the BMP (an emoji): half of one is no text, and PostgreSQL refuses it in the
 * run's summary (jsonb: `Unicode low surrogate must follow a high surrogate`), which failed the load.
 */
export function cutKeyValue(value: string): string {
  if (value.length <= MAX_KEY_VALUE_CHARS) return value;
  const last = value.charCodeAt(MAX_KEY_VALUE_CHARS - 1);
  const end = last >= 0xd800 && last <= 0xdbff ? MAX_KEY_VALUE_CHARS - 1 : MAX_KEY_VALUE_CHARS;
  return `${value.slice(0, end)}…`;
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
 * The start's error when Athena refused it as asked (`InvalidRequestException`) for another reason
 * than a syntax error (already an {@link AthenaQueryFailed}): told as the task's, with the config
 * path Athena's message is about ({@link athenaStartRefusal}), as the state machine's start state
 * tells it (statemachine/definition.ts); one about the query becomes an {@link AthenaQueryFailed},
 * which the caller names by the query's path. Undefined for any other error.
 */
function startRefusedError(
  err: unknown,
  config: PipelineConfig,
  task: AthenaExtractTask,
): TerminalError | undefined {
  if (!(err instanceof TerminalError) || err instanceof AthenaQueryFailed) return undefined;
  const cause = err.cause as { name?: unknown; message?: unknown } | undefined;
  if (cause?.name !== 'InvalidRequestException' || typeof cause.message !== 'string') return undefined;
  const about = athenaStartRefusal(cause.message);
  // The query's: named with its config path below, as a syntax error is.
  if (about === 'query') return new AthenaQueryFailed(err.message, undefined, { cause: err });
  const prefix = athenaStartRefusedPrefix(
    about,
    task.name,
    `${extractConfigPath(config, task)}.query`,
    config.athena?.workgroup ?? 'primary',
  );
  return new TerminalError(`${prefix}${err.message}`, { cause: err });
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
    try {
      // Inside the try: a query Athena refuses at its start (a syntax error, MALFORMED_QUERY) is
      // named by its task as one that ran and failed is.
      const id = await athena
        .startQuery(task.query, {
          clientRequestToken: clientRequestTokenFor(runId, task.name, generation),
        })
        .catch((err: unknown) => {
          throw startRefusedError(err, deps.config, task) ?? err;
        });
      return await athena.waitForQuery(id, {
        pollDelays: athenaLocalPollDelayMs,
        sleep: (ms) => deps.clock.sleep(ms),
      });
    } catch (err) {
      // A query that failed for good is named by its task and config path, as the state
      // machine's run error names it (statemachine/definition.ts, the query refused).
      const named = `Extract task ${task.name} (${extractConfigPath(deps.config, task)}.query): ${err instanceof Error ? err.message : String(err)}`;
      if (err instanceof AthenaQueryFailed) {
        throw new AthenaQueryFailed(named, err.queryExecutionId, { cause: err });
      }
      // So is one that was stopped (by hand, say), which is not rerun either.
      if (err instanceof AthenaQueryCancelled) {
        throw new AthenaQueryCancelled(named, err.queryExecutionId, { cause: err });
      }
      // Any other (Athena throttling past the SDK's retries, a refused call) names the task too.
      if (!(err instanceof AthenaRetryableQueryFailure)) throw namedForTask(err, task.name);
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
  const result = await athena.describeResult(execution).catch((err: unknown) => {
    // A result that is not rows (the query is a SHOW), or that Athena describes without its file
    // or columns, fails the task: named by it (and its query, when the query is at fault), as a
    // query that failed is; the connector's message alone named no task.
    if (err instanceof AthenaResultNotRows) {
      throw new TerminalError(
        `Extract task ${task.name} (${extractConfigPath(deps.config, task)}.query): ${err.message}; the table ${schema}.${table} was left as it was`,
        { cause: err },
      );
    }
    throw namedForTask(err, task.name);
  });
  const refusal = athenaResultRefusal(
    task,
    extractConfigPath(deps.config, task),
    result.columns.map((c) => c.Name ?? ''),
    `${schema}.${table}`,
  );
  if (refusal !== undefined) {
    throw new TerminalError(
      `Extract task ${task.name}: ${refusal}; the table ${schema}.${table} was left as it was`,
    );
  }
  const columns = result.columns.map((c) => pgColumnForAthenaColumn(c as AthenaColumnInfo));
  const key = task.key ?? [];

  const ms = (from: number): number => deps.clock.now().getTime() - from;
  return withTransaction(deps.pg, async (client) => {
    const started = deps.clock.now().getTime();
    // The result is staged first, and only then is the table evolved: ALTER TABLE (a column added,
    // a type changed) locks out the table's readers until the commit, and the download of a large
    // result would otherwise take place under that lock. The staging table needs only the schema.
    await ensureSchema(client, schema);
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
    }).catch((err: unknown) => {
      throw (
        nulCharacterError(err, task, `${schema}.${table}`) ??
        valueNotTakenError(
          err,
          task,
          extractConfigPath(deps.config, task),
          columns,
          result.columns,
          `${schema}.${table}`,
        ) ??
        resultFileRefusedError(err, task, deps.config.athena, result.outputLocation, `${schema}.${table}`) ??
        copyFailedError(err, task, `${schema}.${table}`)
      );
    });
    const copyMs = ms(started);
    const refreshStarted = deps.clock.now().getTime();
    const evolved = await ensureTable(client, {
      schema,
      table,
      columns,
      ...(key.length > 0 ? { primaryKey: key } : {}),
      onNarrower: 'keep',
      // A full refresh replaces every row: the table takes the result's types as they are.
      replacesRows: key.length === 0,
      owner: `Extract task ${task.name}`,
      // The query is read whole each run: a table dropped is made again by the next load.
      keyOrigin: { configPath: `${extractConfigPath(deps.config, task)}.key`, reloadsInFull: true },
      keepTypeHint: (column, type) => {
        const athenaType = athenaTypeForPgType(type);
        return athenaType && `CAST(${quoteIdent(column)} AS ${athenaType}) in the task's query`;
      },
      logger,
    });
    let counts: { inserted: number; updated: number; deleted: number };
    let duplicateKeys: AthenaDuplicateKeysFound | undefined;
    if (key.length > 0) {
      const merged = await mergeStaging(client, {
        schema,
        target: table,
        staging: copied.staging,
        columns,
        key,
      }).catch((err: unknown) => {
        throw nullKeyError(err, task, `${schema}.${table}`, key) ?? err;
      });
      counts = { inserted: merged.inserted, updated: merged.updated, deleted: 0 };
      // Rows the merge dropped as repeated keys: the staged rows past the distinct keys it merged
      // (exact: every staged row reaches DISTINCT ON). Only when there are some is staging read
      // again, once, for which keys.
      const droppedRows = copied.rows - merged.staged;
      if (droppedRows > 0) {
        const repeated = await repeatedStagedKeys(client, {
          schema,
          staging: copied.staging,
          columns,
          key,
        });
        duplicateKeys = {
          table: `${schema}.${table}`,
          key: [...key],
          droppedRows,
          keys: repeated.keys,
          // A long value cut: the output goes through Step Functions (256 KB a state).
          examples: repeated.examples.map((e) => ({
            key: Object.fromEntries(
              Object.entries(e.key).map(([k, v]) => [k, v === null ? v : cutKeyValue(v)]),
            ),
            rows: e.rows,
          })),
        };
        if (task.duplicateKeys === 'fail') {
          // Thrown inside the load's transaction: the merge is rolled back with it.
          throw new TerminalError(
            `Extract task ${task.name}: the query returned ${repeatedKeysText(duplicateKeys)}, and the task has duplicateKeys: 'fail' (${extractConfigPath(deps.config, task)}.duplicateKeys): ${oneRowAKeyFix(key)}; the table ${schema}.${table} was left as it was`,
          );
        }
      }
    } else {
      // Runs that overlap swap one at a time: swapInTable locks the table first (lockForRefresh).
      const swapped = await swapInTable(client, {
        schema,
        target: table,
        staging: copied.staging,
        columns,
      }).catch((err: unknown) => {
        throw (
          keptPrimaryKeyError(
            err,
            task,
            extractConfigPath(deps.config, task),
            { schema, table },
            evolved.primaryKey,
            columns.map((c) => c.name),
          ) ?? err
        );
      });
      // Rows a retyped column's table lost before the swap (ensureTable's `cleared`) count too.
      counts = { inserted: swapped.inserted, updated: 0, deleted: swapped.removed + evolved.cleared };
    }
    const refreshMs = ms(refreshStarted);
    // Without a key, a primary key the table kept (from the task's keyed loads, or by hand) held
    // this time, but refuses the first result that repeats or leaves out a value of it: said now.
    const keptPrimaryKey: AthenaKeptPrimaryKey | undefined =
      key.length === 0 && evolved.primaryKey.columns.length > 0 && evolved.primaryKey.constraint
        ? {
            table: `${schema}.${table}`,
            key: [...evolved.primaryKey.columns],
            constraint: evolved.primaryKey.constraint,
            keyPath: `${extractConfigPath(deps.config, task)}.key`,
          }
        : undefined;
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
      ...(duplicateKeys ? { duplicateKeys } : {}),
      ...(keptPrimaryKey ? { keptPrimaryKey } : {}),
    };
    if (keptPrimaryKey) {
      logger.warn('Athena extract without a key loaded a table that has a primary key', {
        keptPrimaryKey,
        warning: keptPrimaryKeyWarning(task.name, keptPrimaryKey),
      });
    }
    if (duplicateKeys) {
      logger.warn('Athena extract dropped rows of keys the query returned more than once', {
        table: `${schema}.${table}`,
        duplicateKeys,
        warning: duplicateKeysWarning(task.name, duplicateKeys),
      });
    }
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
