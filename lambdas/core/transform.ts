/**
 * Transform (DESIGN.md §1 step 3): the configured SQL files run in order, in ONE transaction, each
 * statement on its own so that its row count is recorded and an error can name the file and the
 * line. A failure rolls everything back: the tables keep the previous run's results. `roundtrip
 * validate` runs the same files with {@link tryTransform}, which always rolls back.
 */
import { readFile } from 'node:fs/promises';
import { DatabaseError, Query, type PoolClient, type QueryResult } from 'pg';
import {
  applySessionSettings,
  classifyPostgresError,
  inTransaction,
  quoteIdent,
  withClient,
} from '../connectors/postgres';
import { UNBOUNDED_TIME, type TimeLeft } from '../shared/clock';
import { ERROR_NAMES, TerminalError, TransientError } from '../shared/errors';
import { NOTICE_ATTRIBUTE, type Logger } from '../shared/logging';
import type { CoreDeps } from './deps';
import { mergeRunSummary } from './writeback/state';

/** One statement of a SQL file, with where it starts. */
export interface SqlStatement {
  readonly text: string;
  /** 1-based line of the file where the statement's first character is. */
  readonly line: number;
}

/**
 * Splits a SQL script into statements at top-level semicolons, skipping `'…'`, `E'…'`, `"…"`,
 * `$tag$…$tag$`, `-- …`, (nested) `/* … *\/`, parentheses and the `BEGIN ATOMIC … END` body of a
 * function or procedure, as psql does. A psql meta-command (`\copy …`, to the line's end) is a
 * statement of its own, for {@link refuseClientCommands}. Statements that are only comments or
 * blanks are dropped. PostgreSQL's own grammar is the reference; this only has to find the
 * separators.
 */
export function splitSqlStatements(script: string): SqlStatement[] {
  // A byte order mark (a file saved by some Windows editors) is a blank, not part of the first word.
  const sql = script.charCodeAt(0) === 0xfeff ? ` ${script.slice(1)}` : script;
  const out: SqlStatement[] = [];
  let start = 0;
  let i = 0;
  const n = sql.length;
  // The line of an offset, counted on from the last one asked (statements come in order): counting
  // from the file's start each time took quadratic time, minutes for a file of 40,000 statements.
  let countedTo = 0;
  let countedLine = 1;
  const lineOf = (offset: number): number => {
    for (; countedTo < offset && countedTo < n; countedTo += 1)
      if (sql.charCodeAt(countedTo) === 10) countedLine += 1;
    return countedLine;
  };
  const push = (end: number): void => {
    const raw = sql.slice(start, end);
    if (!onlyComments(raw)) {
      const lead = raw.length - raw.trimStart().length;
      // Skip leading comments too, so that the line is the statement's first token.
      let offset = start + lead;
      while ((sql.startsWith('--', offset) || sql.startsWith('/*', offset)) && comment(sql, offset).closed) {
        offset = commentEnd(sql, offset);
        while (offset < end && /\s/.test(sql[offset] as string)) offset += 1;
      }
      // The text starts at the first token, so that an error position counts lines from `line`.
      out.push({ text: sql.slice(offset, end).trimEnd(), line: lineOf(offset) });
    }
    start = end + 1;
    words = [];
    parenDepth = 0;
    beginDepth = 0;
  };
  // psql's own heuristic (psqlscan.l): a `;` inside parentheses, or inside the `BEGIN … END` body
  // of a `CREATE [OR REPLACE] FUNCTION|PROCEDURE` (SQL-standard `BEGIN ATOMIC`, where a CASE also
  // ends with END), does not end the statement.
  let words: string[] = [];
  let parenDepth = 0;
  let beginDepth = 0;
  const routineDefinition = (): boolean => {
    const [a, b, c, d] = words;
    return (
      a === 'create' &&
      (b === 'function' ||
        b === 'procedure' ||
        (b === 'or' && c === 'replace' && (d === 'function' || d === 'procedure')))
    );
  };
  while (i < n) {
    const c = sql[i] as string;
    const next = sql[i + 1];
    if ((c === '-' && next === '-') || (c === '/' && next === '*')) {
      i = commentEnd(sql, i);
    } else if (c === "'") {
      const escapes = i > 0 && /[eE]/.test(sql[i - 1] as string) && !IDENTIFIER_CHAR.test(sql[i - 2] ?? ' ');
      i += 1;
      while (i < n) {
        if (escapes && sql[i] === '\\') i += 2;
        else if (sql[i] === "'" && sql[i + 1] === "'") i += 2;
        else if (sql[i] === "'") break;
        else i += 1;
      }
      i += 1;
    } else if (c === '"') {
      const close = sql.indexOf('"', i + 1);
      i = close < 0 ? n : close + 1;
      while (sql[i] === '"') {
        const again = sql.indexOf('"', i + 1);
        i = again < 0 ? n : again + 1;
      }
    } else if (c === '$') {
      DOLLAR_QUOTE_TAG.lastIndex = i;
      const tag = DOLLAR_QUOTE_TAG.exec(sql);
      if (tag && !IDENTIFIER_CHAR.test(sql[i - 1] ?? ' ')) {
        const close = sql.indexOf(tag[0], i + tag[0].length);
        i = close < 0 ? n : close + tag[0].length;
      } else i += 1;
    } else if (c === ';') {
      if (parenDepth === 0 && beginDepth === 0) push(i);
      i += 1;
    } else if (c === '\\') {
      // A psql meta-command (`\copy`, `\set`, `\i`, `\g`): never SQL outside a string, and psql
      // ends it at the line's end, not at a `;`. Its own statement, refused by its line.
      push(i);
      start = i;
      const nl = sql.indexOf('\n', i);
      const end = nl < 0 ? n : nl;
      push(end);
      i = end + 1;
    } else if (c === '(' || c === ')') {
      parenDepth = c === '(' ? parenDepth + 1 : Math.max(0, parenDepth - 1);
      i += 1;
    } else if (/[A-Za-z_\u0080-\uffff]/.test(c) && !/[A-Za-z0-9_$\u0080-\uffff]/.test(sql[i - 1] ?? ' ')) {
      let end = i + 1;
      while (end < n && /[A-Za-z0-9_$\u0080-\uffff]/.test(sql[end] as string)) end += 1;
      const word = sql.slice(i, end).toLowerCase();
      if (words.length < 4) words.push(word);
      if (parenDepth === 0 && routineDefinition()) {
        if (word === 'begin') beginDepth += 1;
        else if (word === 'case' && beginDepth > 0) beginDepth += 1;
        else if (word === 'end' && beginDepth > 0) beginDepth -= 1;
      }
      i = end;
    } else i += 1;
  }
  if (start < n) push(n);
  return out;
}

/**
 * A dollar quote's opening `$tag$` (or `$$`), read from `lastIndex`: a tag starts with a letter
 * (any letter past ASCII too, as PostgreSQL's lexer takes any byte of a multi-byte character) or
 * `_`, then digits as well.
 */
const DOLLAR_QUOTE_TAG = /\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/y;

/** A character of an unquoted identifier (then a `$` after it is part of the name, not a quote). */
const IDENTIFIER_CHAR = /[A-Za-z0-9_$\u0080-\uffff]/;

/** The index just after the comment starting at `i` (`-- …` to the line's end, or nested `/* … *\/`). */
function commentEnd(sql: string, i: number): number {
  return comment(sql, i).end;
}

/**
 * The comment starting at `i`: where it ends, and whether it is closed (a `/*` whose `*\/` never
 * comes runs to the end of the text; PostgreSQL refuses it: `unterminated /* comment`).
 */
function comment(sql: string, i: number): { end: number; closed: boolean } {
  if (sql.startsWith('--', i)) {
    const nl = sql.indexOf('\n', i);
    return { end: nl < 0 ? sql.length : nl + 1, closed: true };
  }
  let depth = 1;
  let k = i + 2;
  while (k < sql.length && depth > 0) {
    if (sql.startsWith('/*', k)) {
      depth += 1;
      k += 2;
    } else if (sql.startsWith('*/', k)) {
      depth -= 1;
      k += 2;
    } else k += 1;
  }
  return { end: k, closed: depth === 0 };
}

/**
 * Whether a piece of SQL holds nothing but comments and blanks. A comment never closed is not
 * nothing: it swallowed the rest of the file, which would otherwise be dropped unrun, without a
 * word; sent, it is PostgreSQL's `unterminated /* comment`, named by its line.
 */
function onlyComments(text: string): boolean {
  let k = 0;
  while (k < text.length) {
    if (/\s/.test(text[k] as string)) k += 1;
    else if (text.startsWith('--', k) || text.startsWith('/*', k)) {
      const { end, closed } = comment(text, k);
      if (!closed) return false;
      k = end;
    } else return false;
  }
  return true;
}

function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let k = 0; k < offset && k < text.length; k += 1) if (text.charCodeAt(k) === 10) line += 1;
  return line;
}

/**
 * Where in the file a statement's error is, and the PL/pgSQL frames it was raised in (PostgreSQL's
 * `CONTEXT`, innermost first, as `in … , called from …`). The line is PostgreSQL's error position
 * when it gives one (a syntax or name error), counted in characters (code points: an emoji before
 * it is one, not the two UTF-16 units of a JavaScript string); else, for a `DO` block, the body's
 * line that PL/pgSQL names (`inline_code_block line 5`), counted from where the body starts in
 * the file; else the statement's first line.
 */
function whereInFile(
  statement: SqlStatement,
  err: { readonly position?: string; readonly where?: string },
): { line: number; context?: string } {
  const position = err.position ? Number(err.position) : undefined;
  const frames = (err.where ?? '').split('\n').filter((frame) => frame.trim() !== '');
  const doBody = doBodyLine(statement);
  let line = statement.line;
  if (position !== undefined && Number.isInteger(position) && position > 0) {
    const before = Array.from(statement.text)
      .slice(0, position - 1)
      .join('');
    line = statement.line + lineAt(before, before.length) - 1;
  }
  const context = frames.map((frame) => {
    const inline = /^PL\/pgSQL function inline_code_block line (\d+)( at .*)?$/.exec(frame);
    if (!inline || doBody === undefined) return frame;
    // The outermost frame is the DO block's own: its line is where the statement failed.
    const atLine = doBody + Number(inline[1]) - 1;
    if (position === undefined) line = atLine;
    return `the DO block, line ${atLine}${inline[2] ?? ''}`;
  });
  return { line, context: context.length > 0 ? `in ${context.join(', called from ')}` : undefined };
}

/**
 * The file line of a `DO` statement's first body line (PL/pgSQL's line 1: the rest of the line of
 * its opening `$tag$` or `'`), or undefined for a statement that is not a `DO`.
 */
function doBodyLine(statement: SqlStatement): number | undefined {
  const opening =
    /^do\s+(?:language\s+(?:"[^"]*"|\w+)\s+)?(\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$|[eE]?')/i.exec(
      statement.text,
    );
  if (!opening) return undefined;
  const bodyStart = opening[0].length;
  return statement.line + lineAt(statement.text, bodyStart) - 1;
}

/**
 * The psql variable (`:name`, `:'name'`, `:"name"`) a syntax error is at, if it is at one: psql
 * replaces it before sending, PostgreSQL sees a `:` it cannot read.
 */
function psqlVariableAt(
  statement: SqlStatement,
  err: { readonly code?: string; readonly position?: string },
): string | undefined {
  const position = Number(err.position);
  if (err.code !== '42601' || !Number.isInteger(position) || position < 1) return undefined;
  const rest = Array.from(statement.text)
    .slice(position - 1, position + 64)
    .join('');
  return /^:(?:[A-Za-z_][A-Za-z0-9_]*|'[A-Za-z_][A-Za-z0-9_]*'|"[A-Za-z_][A-Za-z0-9_]*")/.exec(rest)?.[0];
}

/** What the driver hands a `notice` listener (pg-protocol's NoticeMessage): the fields read here. */
interface Notice {
  readonly severity?: string;
  readonly message?: string;
  readonly detail?: string;
  readonly hint?: string;
  readonly position?: string;
  readonly where?: string;
}

/** What one file did. */
export interface TransformFileResult {
  /** The path as configured. */
  readonly file: string;
  readonly statements: number;
  /** Rows reported by each statement (INSERT/UPDATE/DELETE/SELECT …; 0 for DDL), in order. */
  readonly rowCounts: readonly number[];
  /**
   * Rows written: inserted, updated, merged or copied in, or made by `CREATE TABLE … AS` or
   * `SELECT … INTO`. Not deleted rows, nor rows a plain SELECT returned: a file that empties a
   * table and fills it again wrote the rows once.
   */
  readonly rows: number;
  readonly durationMs: number;
  /**
   * The WARNINGs the file's statements raised (`RAISE WARNING`, in a DO block or a function they
   * call), where they were raised: those among the run's first {@link WARNINGS_KEPT}, each message
   * cut at {@link WARNING_MESSAGE_CHARS}, and a last one counting the file's others; absent when
   * none was.
   */
  readonly warnings?: readonly TransformWarning[];
}

/** A WARNING a transform statement raised: its file line and PostgreSQL's text. */
export interface TransformWarning {
  readonly line: number;
  readonly message: string;
}

/**
 * The warnings the files' results keep, over the whole run (each is logged whole). The results are
 * the Transform step's output, which Step Functions carries in the execution's state (256 KiB at
 * most: past it the run fails with States.DataLimitExceeded, which no Catch handles, unreported):
 * kept per file, a pipeline of many files that each warn could pass it.
 */
export const WARNINGS_KEPT = 20;

/** The characters a kept warning's message keeps (the log has it whole). */
export const WARNING_MESSAGE_CHARS = 1000;

/** A warning's text as kept: at most {@link WARNING_MESSAGE_CHARS} characters, saying its length when cut. */
function keptWarningText(text: string): string {
  const chars = Array.from(text);
  return chars.length <= WARNING_MESSAGE_CHARS
    ? text
    : `${chars.slice(0, WARNING_MESSAGE_CHARS).join('')}… (${chars.length} characters; the step's log has it whole)`;
}

/** How many more warnings the run's file results may keep ({@link WARNINGS_KEPT}). */
interface WarningsLeft {
  count: number;
}

/**
 * What one file did, as the Transform step's output says it: {@link TransformFileResult} without
 * `rowCounts`. The output is carried in the execution's state (256 KiB at most, past which the run
 * fails with States.DataLimitExceeded, unreported): one number per statement passed it for a
 * transform of some 130,000 statements, where this stays the same size whatever a file holds. The
 * counts are kept in the run's summary (`roundtrip.runs.summary.transform.files[].rowCounts`).
 */
export type TransformFileOutput = Omit<TransformFileResult, 'rowCounts'>;

/** The Transform step's output for one file: its result without `rowCounts` ({@link TransformFileOutput}). */
function transformFileOutput(result: TransformFileResult): TransformFileOutput {
  const { rowCounts: _kept, ...output } = result;
  return output;
}

/** What {@link runTransform} did: the Transform step's output. */
export interface TransformResult {
  readonly runId: string;
  readonly files: readonly TransformFileOutput[];
  readonly durationMs: number;
}

/** A transform statement that failed: names the file, the line and PostgreSQL's message. */
export class TransformError extends TerminalError {
  constructor(
    message: string,
    readonly file: string,
    readonly line: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = ERROR_NAMES.transform;
  }
}

/**
 * A statement that begins, ends or prepares a transaction (`BEGIN`, `START TRANSACTION`, `COMMIT`,
 * `END`, `ROLLBACK`, `ABORT`, `PREPARE TRANSACTION`, `COMMIT/ROLLBACK PREPARED`): a `COMMIT` in a
 * file would commit the files before it and leave the rest to run outside any transaction.
 * Savepoints (`SAVEPOINT`, `RELEASE`, `ROLLBACK TO`) stay inside it and are allowed.
 */
const TRANSACTION_CONTROL =
  /^(?:begin|start\s+transaction|commit|end|abort|prepare\s+transaction|rollback(?!(?:\s+(?:work|transaction))?\s+to\b))\b/i;

/** Why a statement outside {@link TRANSACTION_CONTROL} cannot be in a file, and what to do instead. */
interface RefusedStatement {
  readonly pattern: RegExp;
  /** The statement as the message names it. */
  readonly name: string;
  readonly why: string;
}

const OUTSIDE_A_TRANSACTION =
  'cannot run inside a transaction, and the transform runs every file in one (PostgreSQL would refuse it there, after the files before it had run)';

/**
 * Statements PostgreSQL refuses inside a transaction block (SQLSTATE 25001), and those that would
 * set up the transform's transaction, which roundtrip begins (READ WRITE, at the database's
 * isolation level) and in which it records the run's summary after the files: refused with the
 * transaction control, before any file runs, rather than failing the transform where they are
 * (`SET TRANSACTION READ ONLY` failed it after the last file, naming none). `ANALYZE`, `REFRESH
 * MATERIALIZED VIEW CONCURRENTLY` and `SET SESSION CHARACTERISTICS` may run in a transaction and
 * are allowed.
 */
const NOT_IN_THE_TRANSFORM: readonly RefusedStatement[] = [
  {
    pattern: /^vacuum\b/i,
    name: 'VACUUM',
    why: `${OUTSIDE_A_TRANSACTION}: remove it (autovacuum vacuums the tables; ANALYZE, which may run in a transaction, updates a table's statistics)`,
  },
  {
    pattern: /^create\s+(?:unique\s+)?index\s+concurrently\b/i,
    name: 'CREATE INDEX CONCURRENTLY',
    why: `${OUTSIDE_A_TRANSACTION}: use CREATE INDEX without CONCURRENTLY (no other session sees the transform's tables until it commits), or create the index once, outside the transform`,
  },
  {
    pattern: /^drop\s+index\s+concurrently\b/i,
    name: 'DROP INDEX CONCURRENTLY',
    why: `${OUTSIDE_A_TRANSACTION}: use DROP INDEX without CONCURRENTLY, or drop the index once, outside the transform`,
  },
  {
    pattern: /^reindex\s+(?:\([^)]*\)\s*)?(?:index|table)\s+concurrently\b/i,
    name: 'REINDEX CONCURRENTLY',
    why: `${OUTSIDE_A_TRANSACTION}: use REINDEX without CONCURRENTLY, or reindex outside the transform`,
  },
  {
    pattern: /^discard\s+all\b/i,
    name: 'DISCARD ALL',
    why: `${OUTSIDE_A_TRANSACTION}: remove it (the transform resets its connection with DISCARD ALL itself once it ends; DISCARD TEMP drops the temporary tables inside it)`,
  },
  {
    pattern:
      /^(?:alter\s+system|(?:create|drop)\s+(?:database|tablespace)|reindex\s+(?:\([^)]*\)\s*)?(?:schema|database|system))\b/i,
    name: '',
    why: `${OUTSIDE_A_TRANSACTION}: run it outside the transform, once, as an administrator`,
  },
  {
    // SET client_encoding (SET NAMES) to anything but UTF8 (or DEFAULT: the connection's, UTF8).
    pattern:
      /^set\s+(?:(?:local|session)\s+)?(?:client_encoding\s*(?:=|\bto\b)|names\b)(?!\s*(?:'|")?(?:utf-?8|unicode|default)(?:'|")?\s*$)/i,
    name: 'SET client_encoding',
    why: "to another encoding than UTF8 is not allowed: the transform sends its files to PostgreSQL in UTF-8, which would read the text of the statements after it in the other encoding ('Café' written as 'CafÃ©'). Remove it: the server converts UTF-8 into the database's encoding itself",
  },
  {
    pattern:
      /^set\s+(?:(?:local|session)\s+)?(?:transaction|transaction_(?:isolation|read_only|deferrable))\b/i,
    name: '',
    why: "is not allowed: roundtrip begins the transform's transaction, read-write at the database's isolation level, and records the run's summary in it after the files (remove the statement)",
  },
];

/**
 * Throws a {@link TransformError} for the first statement that would control the transaction, or
 * cannot run in it ({@link NOT_IN_THE_TRANSFORM}).
 */
function refuseTransactionControl(file: string, statements: readonly SqlStatement[]): void {
  for (const statement of statements) {
    const match = TRANSACTION_CONTROL.exec(statement.text);
    if (match) {
      const keyword = match[0].replace(/\s+/g, ' ').toUpperCase();
      throw new TransformError(
        `Transform ${file}, line ${statement.line}: ${keyword} is not allowed: the transform runs every file in one transaction and commits it at the end (remove the statement; use SAVEPOINT to undo part of a file); nothing was run`,
        file,
        statement.line,
      );
    }
    for (const refused of NOT_IN_THE_TRANSFORM) {
      const found = refused.pattern.exec(statement.text);
      if (!found) continue;
      // The statement's own words, options and LOCAL left out: SET transaction_read_only, ALTER SYSTEM.
      const name =
        refused.name ||
        found[0]
          .replace(/\s*\([^)]*\)\s*|\s+(?:local|session)\b/gi, ' ')
          .replace(/\s+/g, ' ')
          .replace(/\b[a-z]+\b/gi, (word) => word.toUpperCase());
      throw new TransformError(
        `Transform ${file}, line ${statement.line}: ${name} ${refused.why}; nothing was run`,
        file,
        statement.line,
      );
    }
  }
}

/** A `COPY … FROM STDIN`: its rows come from the client, which psql sends and roundtrip has none of. */
const COPY_FROM_STDIN = /^copy\s+(?!\()[^;]*?\bfrom\s+stdin\b/i;

/**
 * Throws a {@link TransformError} for the first statement that only psql can run: a meta-command
 * (`\copy`, `\set`, `\i`; the splitter gives each its own statement) or a `COPY … FROM STDIN`.
 * Sent as they are, the first is a `syntax error at or near "\"` on the line before the next
 * statement, and the second fails with the driver's "No source stream defined", taken for a
 * cancellation (SQLSTATE 57014) and retried.
 */
function refuseClientCommands(file: string, statements: readonly SqlStatement[]): void {
  for (const statement of statements) {
    const meta = /^\\[^\s\\]*/.exec(statement.text)?.[0];
    if (meta === undefined && !COPY_FROM_STDIN.test(statement.text)) continue;
    const what =
      meta !== undefined
        ? `${meta} is a psql command, not SQL: the transform sends each statement to PostgreSQL itself, without psql (remove it${/^\\copy$/i.test(meta) ? '; load the data with an extract, or COPY … FROM a file on the database server' : ''})`
        : `COPY … FROM STDIN reads its rows from the client, as psql sends them, and the transform has none to send (load the data with an extract, or COPY … FROM a file on the database server)`;
    throw new TransformError(
      `Transform ${file}, line ${statement.line}: ${what}; nothing was run`,
      file,
      statement.line,
    );
  }
}

/**
 * Runs one statement and answers its result without the rows it returned: the driver would keep
 * every one in memory, and a `SELECT * FROM sf_lead` left in a file to look at the data (its rows
 * only counted here) took hundreds of megabytes, past the Transform function's memory: the
 * Lambda was killed, naming no file. Its fields and row count are kept.
 */
function queryDroppingRows(client: PoolClient, text: string): Promise<QueryResult> {
  return new Promise((resolve, reject) => {
    const query = new Query(text);
    // A listener of `row` and no callback: pg hands each row to it instead of keeping it.
    query.on('row', () => undefined);
    query.on('end', (result: QueryResult) => resolve(result));
    query.on('error', reject);
    client.query(query);
  });
}

/** SQLSTATE query_canceled: a statement timeout, or a cancel request. */
const QUERY_CANCELED = '57014';

/**
 * Commands whose row count is rows written. A `CREATE TABLE … AS` or `SELECT … INTO` answers
 * `SELECT n` without columns, which a SELECT that returns rows has.
 */
const WRITING_COMMANDS = new Set(['INSERT', 'UPDATE', 'MERGE']);

/**
 * A `COPY table [(columns)] FROM …`: rows copied in, written. A `COPY … TO` (a table or a query
 * copied out, to a file or to STDOUT, whose rows the driver drops) answers `COPY n` as well.
 */
const COPY_IN = /^copy\s+(?:"(?:[^"]|"")*"|[^\s("]+)+(?:\s*\([^)]*\)\s*|\s+)from\b/i;

/**
 * What the transform keeps of its step's time (a Lambda's timeout) after its statements: enough to
 * roll back, reset the connection and report. A statement still running then is canceled by
 * PostgreSQL itself ({@link capStatementTimeout}).
 */
export const TRANSFORM_TIME_RESERVE_MS = 30_000;

/**
 * Gives the next statement a `statement_timeout` (`SET LOCAL`) that ends it `TRANSFORM_TIME_RESERVE_MS`
 * before the step's time does, unless the one in force (the role's, the database's, or a file's
 * own `SET statement_timeout`) ends it sooner. Answers whether the timeout is roundtrip's.
 *
 * Why: a Lambda stopped at its timeout takes its socket with it, but PostgreSQL only notices when
 * the statement ends, so the statement would go on running, holding its locks (a TRUNCATE's
 * ACCESS EXCLUSIVE keeps every reader of the table waiting) for as long as it takes, and the run
 * would fail with the Lambda's `Sandbox.Timedout`, naming no file. Canceled by PostgreSQL, the
 * statement fails in the step, which rolls back and names it.
 */
async function capStatementTimeout(
  client: PoolClient,
  budgetMs: number,
  cap: StatementTimeoutCap,
): Promise<boolean> {
  // The timeout in force is the file's (or the role's) unless it is the one set for the statement
  // before: a file's `SET statement_timeout` replaces that.
  const { rows } = await client.query<{ ms: string; ours: boolean }>(
    `WITH s AS (SELECT setting::bigint AS ms FROM pg_settings WHERE name = 'statement_timeout'),
          theirs AS (SELECT s.ms > 0 AND s.ms <= $1 AND s.ms IS DISTINCT FROM $2::bigint AS keep, s.ms FROM s)
     SELECT set_config('statement_timeout', (CASE WHEN keep THEN ms ELSE $1 END)::text, true) AS ms, NOT keep AS ours
       FROM theirs`,
    [budgetMs, cap.ms ?? null],
  );
  const ours = rows[0]?.ours === true;
  cap.ms = ours ? budgetMs : undefined;
  return ours;
}

/** The `statement_timeout` roundtrip last set in the transform's transaction, if it did. */
interface StatementTimeoutCap {
  ms?: number;
}
/** The message of a statement canceled, or not started, because the step's time was nearly out. */
function outOfTime(file: string, line: number, what: string): string {
  return `Transform ${file}, line ${line}: ${what} when the transform step's time was nearly out (its Lambda function's timeout, less ${TRANSFORM_TIME_RESERVE_MS / 1000} s kept to roll back); the transaction was rolled back, previous results are unchanged. Make the transform faster (an index, fewer rows read, a table it rebuilds made incrementally): a retry would run the same SQL on the same data, so the run stops here`;
}

/**
 * How long a transform statement runs before the transform looks whether it is waiting for a lock
 * another session holds, then how often it looks again while it runs.
 */
export const LOCK_WAIT_CHECK_MS = 10_000;

/** What a transform needs to look at its statements' lock waits from a connection of its own. */
interface LockWaitWatch {
  readonly pool: CoreDeps['pg'];
  /** The transform's backend (`pg_backend_pid()` in its transaction). */
  readonly pid: number;
  readonly everyMs: number;
}

/** A session that holds a lock a transform statement waits for, as `pg_stat_activity` shows it. */
interface LockHolder {
  readonly pid: number;
  readonly user: string | null;
  readonly application: string | null;
  readonly state: string | null;
  readonly query: string | null;
  /** Seconds since its transaction began. */
  readonly transactionSeconds: number | null;
}

/** The sessions a statement waited for, at the watch's last look. */
interface LockWait {
  readonly holders: readonly LockHolder[];
  /** Milliseconds the statement had run by then. */
  readonly afterMs: number;
}

/**
 * A lock holder in words: `session 123 (user etl, application "psql", idle in transaction, its
 * transaction begun 612 s before, its last statement: LOCK …)`.
 */
function lockHolderText(holder: LockHolder): string {
  const query = holder.query?.replace(/\s+/g, ' ').trim();
  const chars = query ? Array.from(query) : [];
  const parts = [
    holder.user !== null ? `user ${holder.user}` : undefined,
    holder.application ? `application "${holder.application}"` : undefined,
    holder.state ?? undefined,
    holder.transactionSeconds !== null
      ? `its transaction begun ${holder.transactionSeconds} s before`
      : undefined,
    query
      ? `its ${holder.state === 'active' ? 'statement' : 'last statement'}: ${chars.length > 200 ? `${chars.slice(0, 200).join('')}…` : query}`
      : undefined,
  ].filter(Boolean);
  return `session ${holder.pid}${parts.length > 0 ? ` (${parts.join(', ')})` : ''}`;
}

function lockHoldersText(holders: readonly LockHolder[]): string {
  return holders.map(lockHolderText).join('; ');
}

/**
 * Looks, {@link LOCK_WAIT_CHECK_MS} after a statement starts and as often again while it runs,
 * whether it waits for a lock another session holds (`pg_blocking_pids`, from another connection
 * of the pool), and logs each time it does which sessions hold it. A look that fails (no
 * connection to spare, a role that may not see the other sessions) is skipped: it only informs.
 * `waited()` answers the sessions of the last look that found the statement waiting, while the
 * statement has not started to run since (a later look found it waiting no more: undefined).
 */
function watchLockWait(
  watch: LockWaitWatch,
  file: string,
  statement: SqlStatement,
  logger: Logger,
): { stop(): void; waited(): LockWait | undefined } {
  const started = Date.now();
  let stopped = false;
  let last: LockWait | undefined;
  let timer: NodeJS.Timeout | undefined;
  const look = async (): Promise<void> => {
    try {
      const { rows } = await watch.pool.query<LockHolder>(
        `SELECT a.pid, a.usename AS "user", a.application_name AS application, a.state,
                a.query, floor(extract(epoch FROM now() - a.xact_start))::int AS "transactionSeconds"
           FROM pg_stat_activity a
          WHERE a.pid = ANY (pg_blocking_pids($1::int))
          ORDER BY a.xact_start NULLS LAST, a.pid`,
        [watch.pid],
      );
      if (stopped) return;
      const afterMs = Date.now() - started;
      last = rows.length > 0 ? { holders: rows, afterMs } : undefined;
      if (last) {
        const waitingSeconds = Math.floor(afterMs / 1000);
        const heldBy = lockHoldersText(rows);
        logger.warn('Transform statement waiting for a lock', {
          file,
          line: statement.line,
          waitingSeconds,
          heldBy,
          [NOTICE_ATTRIBUTE]: `Transform ${file}, line ${statement.line} has waited ${waitingSeconds} s for a lock held by ${heldBy}: end that session's transaction (SELECT pg_terminate_backend(${rows[0]?.pid ?? ''}) ends the session); the statement waits until it ends`,
        });
      }
    } catch {
      // Only informs: the statement goes on either way.
    }
    if (!stopped) schedule();
  };
  const schedule = (): void => {
    timer = setTimeout(() => void look(), watch.everyMs);
    timer.unref();
  };
  schedule();
  return {
    stop: () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
    waited: () => last,
  };
}

/**
 * The message of a statement canceled when the step's time was nearly out while it waited for a
 * lock: not slow SQL to make faster, but a session to end or wait for.
 */
function outOfTimeWaitingForLock(file: string, line: number, what: string, waited: LockWait): string {
  const pid = waited.holders[0]?.pid;
  return `Transform ${file}, line ${line}: ${what} when the transform step's time was nearly out (its Lambda function's timeout, less ${TRANSFORM_TIME_RESERVE_MS / 1000} s kept to roll back), while it waited for a lock held by ${lockHoldersText(waited.holders)}, seen ${Math.floor(waited.afterMs / 1000)} s into the statement; the transaction was rolled back, previous results are unchanged. End that session's transaction (SELECT pg_terminate_backend(${pid}) ends the session), or have the pipeline run when it is done: the run stops here`;
}

/**
 * Runs one file's statements. A transient failure (a deadlock, a lock or statement timeout, a
 * serialization failure) ends its message with `(transient: ${retry})`: what happens next, in the
 * caller's words (a run's step is retried; validate is not).
 */
async function runFile(
  client: PoolClient,
  file: string,
  statements: readonly SqlStatement[],
  retry: string,
  timeLeft: TimeLeft,
  cap: StatementTimeoutCap,
  warningsLeft: WarningsLeft,
  watch: LockWaitWatch | undefined,
  logger: Logger,
): Promise<TransformFileResult> {
  const started = Date.now();
  const rowCounts: number[] = [];
  let written = 0;
  const warnings: TransformWarning[] = [];
  let warned = 0;
  let firstNotKept: number | undefined;
  let current: SqlStatement | undefined;
  // What the statements RAISE (a NOTICE of DROP … IF EXISTS too) arrives before their result: said
  // with the line it came from, each in the log, a WARNING in the file's result as well.
  const onNotice = (notice: Notice): void => {
    if (!current) return;
    const { line, context } = whereInFile(current, notice);
    const text = [notice.message, context, notice.detail, notice.hint ? `hint: ${notice.hint}` : undefined]
      .filter(Boolean)
      .join('; ');
    if (notice.severity === 'WARNING') {
      warned += 1;
      if (warningsLeft.count > 0) {
        warningsLeft.count -= 1;
        warnings.push({ line, message: keptWarningText(text) });
      } else {
        firstNotKept ??= line;
      }
      logger.warn('Transform statement raised a warning', { file, line, message: text });
    } else {
      logger.info('Transform statement raised a notice', {
        file,
        line,
        severity: notice.severity,
        message: text,
      });
    }
  };
  client.on('notice', onNotice);
  try {
    for (const statement of statements) {
      current = statement;
      let capped = false;
      const left = timeLeft();
      if (Number.isFinite(left)) {
        const budget = Math.floor(left - TRANSFORM_TIME_RESERVE_MS);
        if (budget < 1) {
          throw new TransformError(outOfTime(file, statement.line, 'not started'), file, statement.line);
        }
        capped = await capStatementTimeout(client, budget, cap);
      }
      const lockWait = watch ? watchLockWait(watch, file, statement, logger) : undefined;
      try {
        const result = await queryDroppingRows(client, statement.text).finally(() => lockWait?.stop());
        rowCounts.push(result.rowCount ?? 0);
        if (
          WRITING_COMMANDS.has(result.command) ||
          (result.command === 'COPY' && COPY_IN.test(statement.text)) ||
          (result.command === 'SELECT' && result.fields.length === 0)
        ) {
          written += result.rowCount ?? 0;
        }
      } catch (err) {
        if (!(err instanceof DatabaseError)) {
          // A dropped connection, a socket timeout: transient or terminal as the connector says.
          throw classifyPostgresError(err, { action: `running transform ${file}, line ${statement.line}` });
        }
        const { line, context } = whereInFile(statement, err);
        if (capped && err.code === QUERY_CANCELED && /statement timeout/i.test(err.message)) {
          const waited = lockWait?.waited();
          throw new TransformError(
            waited
              ? outOfTimeWaitingForLock(file, line, `canceled (${err.message}, SQLSTATE ${err.code})`, waited)
              : outOfTime(file, line, `canceled (${err.message}, SQLSTATE ${err.code})`),
            file,
            line,
            { cause: err },
          );
        }
        const variable = psqlVariableAt(statement, err);
        const detail = [
          context,
          err.detail,
          err.hint ? `hint: ${err.hint}` : undefined,
          variable
            ? `hint: ${variable} is a psql variable (psql -v or \\set), which psql replaces before it sends the statement; the transform sends the file as it is: write the value itself`
            : undefined,
        ]
          .filter(Boolean)
          .join('; ');
        const message = `Transform ${file}, line ${line}: ${err.message}${err.code ? ` (SQLSTATE ${err.code})` : ''}${detail ? ` — ${detail}` : ''}; the transaction was rolled back, previous results are unchanged`;
        // A deadlock, a lock or statement timeout, a server shutting down: a retry may succeed.
        if (classifyPostgresError(err) instanceof TransientError) {
          throw new TransientError(`${message} (transient: ${retry})`, { cause: err });
        }
        throw new TransformError(message, file, line, { cause: err });
      }
      // Defence in depth: a statement that left the transform's transaction (status idle) would let
      // the next ones commit on their own.
      if (client.getTransactionStatus() === 'I') {
        throw new TransformError(
          `Transform ${file}, line ${statement.line}: the statement ended the transform's transaction; the files must not control transactions`,
          file,
          statement.line,
        );
      }
    }
  } finally {
    client.off('notice', onNotice);
  }
  if (warned > warnings.length) {
    const more = warned - warnings.length;
    warnings.push({
      line: firstNotKept ?? 1,
      message: `${warnings.length > 0 ? 'and ' : ''}${more} more warning${more === 1 ? '' : 's'} (a run keeps its first ${WARNINGS_KEPT}; the step's log has each)`,
    });
  }
  return {
    file,
    statements: statements.length,
    rowCounts,
    rows: written,
    durationMs: Date.now() - started,
    ...(warnings.length > 0 ? { warnings } : {}),
  };
}

/**
 * Checks the constraints the files deferred (`DEFERRABLE INITIALLY DEFERRED`, `SET CONSTRAINTS …
 * DEFERRED`) now, once every file has run, rather than at the commit: there a violation failed the
 * run with PostgreSQL's bare error, not a TransformError, and `roundtrip validate`, which rolls
 * back, never saw it. Named by the last file, after which it is checked (PostgreSQL does not say
 * which statement left the row).
 */
async function checkDeferredConstraints(
  client: PoolClient,
  lastFile: string | undefined,
  retry: string,
): Promise<void> {
  if (lastFile === undefined) return;
  try {
    await client.query('SET CONSTRAINTS ALL IMMEDIATE');
  } catch (err) {
    if (!(err instanceof DatabaseError)) {
      throw classifyPostgresError(err, { action: `checking the transform's deferred constraints` });
    }
    const detail = [err.detail, err.hint ? `hint: ${err.hint}` : undefined].filter(Boolean).join('; ');
    const message = `Transform: a deferred constraint failed when checked after the last file (${lastFile}) had run: ${err.message}${err.code ? ` (SQLSTATE ${err.code})` : ''}${detail ? ` — ${detail}` : ''}; the transaction was rolled back, previous results are unchanged`;
    if (classifyPostgresError(err) instanceof TransientError) {
      throw new TransientError(`${message} (transient: ${retry})`, { cause: err });
    }
    throw new TransformError(message, lastFile, 1, { cause: err });
  }
}

/** Runs the files in order ({@link runFile}), each result handed to `ran` as it comes. */
async function runFiles(
  client: PoolClient,
  sources: readonly TransformSource[],
  retry: string,
  timeLeft: TimeLeft,
  lockWatch: Omit<LockWaitWatch, 'pid'>,
  logger: Logger,
  ran: (result: TransformFileResult) => void,
): Promise<TransformFileResult[]> {
  const results: TransformFileResult[] = [];
  const cap: StatementTimeoutCap = {};
  const warningsLeft: WarningsLeft = { count: WARNINGS_KEPT };
  // The transaction's backend, which the lock-wait watch looks for (behind a pooler, not the
  // connection's own process id).
  const { rows } = await client.query<{ pid: number }>(`SELECT pg_backend_pid() AS pid`);
  const watch = rows[0] ? { ...lockWatch, pid: rows[0].pid } : undefined;
  for (const { file, statements } of sources) {
    const result = await runFile(client, file, statements, retry, timeLeft, cap, warningsLeft, watch, logger);
    ran(result);
    results.push(result);
  }
  await checkDeferredConstraints(client, sources.at(-1)?.file, retry);
  // A file's `SET ROLE` (to own the tables it makes) lasts to the end of the transaction: what
  // roundtrip does in it after the files (the run's summary, validate's source checks) is done as
  // the configured user again, not refused to a role without rights on the roundtrip schema. So
  // is a superuser's `SET SESSION AUTHORIZATION` (pg_dump --use-set-session-authorization writes
  // them), which RESET ROLE does not undo; any user may reset it to the one it signed in as.
  await client.query('RESET SESSION AUTHORIZATION');
  await client.query('RESET ROLE');
  return results;
}

/**
 * A transform file's text, from its bytes in UTF-8. A file in another encoding is refused, naming
 * the line of its first byte that is not UTF-8, rather than read with U+FFFD for each (an accent
 * of a file saved as Latin-1 or Windows-1252 then written into the data, and on to Salesforce, as
 * `�`); so is a UTF-16 file (by its byte order mark: some Windows tools export so), whose NULs
 * PostgreSQL refused as a protocol error taken for a transient one, and a NUL character, for the
 * same reason.
 */
function decodeTransformFile(file: string, bytes: Buffer): string {
  const refuse = (line: number, what: string): never => {
    throw new TransformError(`Transform ${file}, line ${line}: ${what}; nothing was run`, file, line);
  };
  const lineOf = (offset: number): number => {
    let line = 1;
    for (let k = 0; k < offset; k += 1) if (bytes[k] === 0x0a) line += 1;
    return line;
  };
  if (
    bytes.length >= 2 &&
    ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff))
  ) {
    refuse(
      1,
      `the file is UTF-16 (${bytes[0] === 0xff ? 'little' : 'big'}-endian, by its byte order mark), not UTF-8; save it as UTF-8`,
    );
  }
  try {
    const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
    const nul = bytes.indexOf(0);
    if (nul >= 0) {
      refuse(
        lineOf(nul),
        'the file holds a NUL character (byte 0x00), which PostgreSQL does not take in SQL (a file saved as UTF-16 has one beside each ASCII letter); remove it, or save the file as UTF-8',
      );
    }
    return text;
  } catch (err) {
    if (err instanceof TransformError) throw err;
    // The first byte that is not UTF-8: the longest prefix that decodes (a character cut at its
    // end is no error in a stream) ends before it.
    let good = 0;
    let bad = bytes.length;
    while (bad - good > 1) {
      const mid = Math.floor((good + bad) / 2);
      try {
        new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, mid), { stream: true });
        good = mid;
      } catch {
        bad = mid;
      }
    }
    // The decoder sees the error at the byte that cannot follow (a letter after 0xE9): the sequence
    // begins at the lead byte before it, when there is one.
    let at = bad - 1;
    if ((bytes[at] ?? 0) < 0xc0) {
      for (let k = at; k >= Math.max(0, at - 3); k -= 1) {
        if ((bytes[k] ?? 0) >= 0xc0) {
          at = k;
          break;
        }
      }
    }
    const byte = (bytes[at] ?? 0).toString(16).toUpperCase().padStart(2, '0');
    return refuse(
      lineOf(at),
      `the file is not UTF-8: byte 0x${byte} is not UTF-8 there (a file saved as Latin-1 or Windows-1252?); save it as UTF-8`,
    );
  }
}

/** A transform file read and split, ready to run. */
interface TransformSource {
  readonly file: string;
  readonly statements: readonly SqlStatement[];
}

/**
 * Reads and splits the transform files. Every file is checked before any runs: a statement that
 * would control the transaction is refused (a {@link TransformError}) with the database untouched;
 * a file that cannot be read is a {@link TerminalError} naming it.
 */
async function readTransformFiles(files: readonly string[]): Promise<TransformSource[]> {
  const sources: TransformSource[] = [];
  for (const file of files) {
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (err) {
      throw new TerminalError(`Transform file ${file} cannot be read: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const statements = splitSqlStatements(decodeTransformFile(file, bytes));
    refuseTransactionControl(file, statements);
    refuseClientCommands(file, statements);
    sources.push({ file, statements });
  }
  return sources;
}

/**
 * Points the transaction's `search_path` at `postgres.schema`, then `public` (`SET LOCAL`, so the
 * files run with it and it ends with the transaction); with `public`, at `public` alone. Not left
 * at PostgreSQL's default (`"$user", public`) for `public` either: a schema named after the
 * database user comes first in it, and with a user named `roundtrip`, roundtrip's own schema is
 * one (its ledger, made by the migrations): the files' tables named without a schema would be
 * made and read there, beside the ledger, while the write-backs read `public`.
 *
 * Why: the extracts write a table named without a schema into `postgres.schema`, and each
 * write-back reads its `from` there too, but a transform's statements would resolve the same
 * names through PostgreSQL's default search_path, in `public`: `relation "sf_lead" does not
 * exist`, or, where `public` has tables of the same names, stale tables read and the output
 * written where no write-back reads it. `public` stays second, for what the pipeline does not
 * make (a function or a reference table kept there). A file's own `SET search_path` still
 * replaces this one; a role's or a database's (`ALTER ROLE … SET search_path`) does not: a file
 * that reads another schema names it, or sets the path itself.
 *
 * A schema that does not exist yet (no extract has run into it: a pipeline without extracts) is
 * created, as an extract creates it (ensureTable): PostgreSQL skips a missing schema in the path,
 * and the files' tables would otherwise be made in `public`, where the write-backs do not read.
 */
async function useConfiguredSchema(client: PoolClient, schema: string): Promise<void> {
  if (schema === 'public') {
    await client.query(`SELECT set_config('search_path', 'public', true)`);
    return;
  }
  const quoted = quoteIdent(schema);
  // One round trip: the setting (is_local true: SET LOCAL) and whether the schema exists.
  const { rows } = await client.query<{ path: string; exists: boolean }>(
    `SELECT set_config('search_path', $1, true) AS path,
            EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $2) AS exists`,
    [`${quoted}, public`, schema],
  );
  if (rows[0]?.exists === true) return;
  try {
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoted}`);
  } catch (err) {
    const classified = classifyPostgresError(err, {
      action: `creating schema ${quoted} (postgres.schema) for the transform`,
    });
    if (classified instanceof TransientError) throw classified;
    throw new TerminalError(
      `${classified.message}; the transform makes the tables it names without a schema in postgres.schema, where the extracts write and the write-backs read: create the schema (CREATE SCHEMA ${quoted}) as a user allowed to, or grant this one CREATE on the database; nothing was run`,
      { cause: err },
    );
  }
}

/**
 * Runs `fn` in a transaction on one client of the pool, committed (a run) or always rolled back
 * (`commit` false: {@link tryTransform}), with `search_path` set to `schema` (postgres.schema:
 * {@link useConfiguredSchema}), then hands the connection back as a new one would be: a file may change its session (SET search_path, SET ROLE, a temp table, a session
 * advisory lock). After a rollback (which undid the file's SETs already) the transform's own error
 * is the one reported; should the reset fail after a commit, withClient discards the connection.
 */
async function inTransformTransaction<T>(
  pg: CoreDeps['pg'],
  schema: string,
  commit: boolean,
  fn: (client: PoolClient) => Promise<T>,
): Promise<T> {
  return withClient(pg, async (client) => {
    // DISCARD ALL resets the session settings too: given again, as the pool gives a new connection.
    const reset = async (): Promise<unknown> => {
      await client.query('DISCARD ALL');
      return applySessionSettings(client);
    };
    let result: T;
    try {
      result = await inTransaction(
        client,
        async () => {
          await useConfiguredSchema(client, schema);
          return fn(client);
        },
        { rollback: !commit },
      );
    } catch (err) {
      await reset().catch(() => undefined);
      throw err;
    }
    await reset();
    return result;
  });
}

/**
 * Runs the config's transform files in order in one transaction (its search_path `postgres.schema`,
 * then public: {@link useConfiguredSchema}) and records, per file, the
 * statements run and their row counts in the run's summary (`summary.transform`); answers each
 * file's totals without the counts ({@link TransformFileOutput}), the step's output. A failing
 * statement rolls back every file and throws a {@link TransformError}; so does, before any file
 * runs, a statement that would control the transaction (`BEGIN`, `COMMIT`, …). A file that cannot
 * be read is a {@link TerminalError} naming it. Idempotent: a retry runs the same SQL on the same inputs.
 *
 * `options.timeLeft` (the Lambda's remaining time) bounds each statement: one still running
 * {@link TRANSFORM_TIME_RESERVE_MS} before the step's end is canceled by PostgreSQL and the
 * transform fails with a {@link TransformError} naming it, rather than the Lambda being stopped
 * while the statement runs on in the database holding its locks.
 *
 * A statement waiting for a lock another session holds is logged with that session, every
 * `options.lockWaitCheckMs` ({@link LOCK_WAIT_CHECK_MS}) it waits, and named in the error should
 * the step's time run out while it waits.
 */
export async function runTransform(
  deps: Pick<CoreDeps, 'config' | 'pg' | 'logger' | 'clock'>,
  input: { runId: string },
  options: { readonly timeLeft?: TimeLeft; readonly lockWaitCheckMs?: number } = {},
): Promise<TransformResult> {
  const logger = deps.logger.child({ runId: input.runId, step: 'transform' });
  const started = Date.now();
  const sources = await readTransformFiles(deps.config.transform);
  const files = await inTransformTransaction(deps.pg, deps.config.postgres.schema, true, async (client) => {
    const ran = await runFiles(
      client,
      sources,
      'the step is retried',
      options.timeLeft ?? UNBOUNDED_TIME,
      { pool: deps.pg, everyMs: options.lockWaitCheckMs ?? LOCK_WAIT_CHECK_MS },
      logger,
      // Each file's totals: one count a statement could pass a log event's size (256 KiB in CloudWatch).
      (result) => logger.info('Transform file ran', { ...transformFileOutput(result) }),
    );
    await mergeRunSummary(client, input.runId, ['transform'], {
      files: ran,
      finishedAt: deps.clock.now().toISOString(),
    });
    return ran;
  }).catch(async (err: unknown) => {
    throw err instanceof TransformError ? await withRetypedColumns(deps, input.runId, err, sources) : err;
  });
  // Each file's statements and rows: the counts of each statement are in the run's summary only.
  return { runId: input.runId, files: files.map(transformFileOutput), durationMs: Date.now() - started };
}

/** A column of the copy that the run's Salesforce extract retyped (`retypedColumns` of its output). */
interface RetypedColumn {
  readonly object: string;
  readonly field: string;
  readonly table: string;
  readonly from: string;
  readonly to: string;
}

/**
 * The transform's error, with the columns the failed file reads (names it, as a word) that this
 * run's Salesforce extracts retyped (`summary.extract.<task>.retypedColumns`): the likely cause of
 * a type error. The error as it was when none did, or when the summary cannot be read.
 */
async function withRetypedColumns(
  deps: Pick<CoreDeps, 'pg'>,
  runId: string,
  err: TransformError,
  sources: readonly TransformSource[],
): Promise<TransformError> {
  const sql =
    sources
      .find((s) => s.file === err.file)
      ?.statements.map((s) => s.text)
      .join('\n') ?? '';
  let retyped: RetypedColumn[];
  try {
    const { rows } = await withClient(deps.pg, (client) =>
      client.query<{ columns: RetypedColumn[] | null }>(
        `SELECT jsonb_agg(c) AS columns
           FROM roundtrip.runs r, jsonb_each(coalesce(r.summary->'extract', '{}'::jsonb)) AS t,
                jsonb_array_elements(CASE WHEN jsonb_typeof(t.value->'retypedColumns') = 'array' THEN t.value->'retypedColumns' ELSE '[]' END) AS c
          WHERE r.run_id = $1`,
        [runId],
      ),
    );
    retyped = rows[0]?.columns ?? [];
  } catch {
    return err;
  }
  const read = retyped.filter((c) =>
    new RegExp(`(^|[^\\w$])${escapeRegExp(c.field)}($|[^\\w$])`, 'i').test(sql),
  );
  if (read.length === 0) return err;
  const what = read
    .map((c) => `${c.object}.${c.field} (column ${c.table}.${c.field}, ${c.from} before, ${c.to} now)`)
    .join(', ');
  return new TransformError(
    `${err.message}. This run's extract retyped ${read.length === 1 ? 'a column' : 'columns'} the file reads, Salesforce having changed the type of ${read.length === 1 ? 'its field' : 'their fields'}: ${what}; change the transform for the new type, or have the field's type changed back in Salesforce`,
    err.file,
    err.line,
    { cause: err.cause },
  );
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** What {@link tryTransform} did, and what its `inspect` answered. */
export interface TriedTransform<T> {
  readonly files: readonly TransformFileResult[];
  readonly durationMs: number;
  readonly inspected: T;
}

/**
 * Runs the config's transform files exactly as {@link runTransform} does (the same checks, one
 * transaction with the search_path of `postgres.schema`, a failing statement a
 * {@link TransformError} naming its file and line), then calls
 * `inspect` on the same connection, inside that transaction, so that it sees the tables and views
 * the files made; then ROLLS BACK, whatever happened: nothing the files did persists, and nothing
 * is recorded in `roundtrip.runs` (no run is needed). What a rollback cannot undo, the files could
 * not do in a run's transaction either (`COMMIT`, `VACUUM`, `CREATE INDEX CONCURRENTLY`), except
 * sequences: a `nextval` stays taken. `roundtrip validate` checks the transform's output with it.
 * While it runs it holds the locks the files take, as a run's transform does.
 *
 * Nothing retries it: a transient failure (a lock timeout, a deadlock, a serialization failure)
 * says so, with `options.retry` (what the caller's user can do: validate's "run validate again"),
 * instead of a run's "the step is retried".
 */
export async function tryTransform<T>(
  deps: Pick<CoreDeps, 'config' | 'pg' | 'logger'>,
  inspect: (client: PoolClient) => Promise<T>,
  options: { readonly retry?: string; readonly lockWaitCheckMs?: number } = {},
): Promise<TriedTransform<T>> {
  const logger = deps.logger.child({ step: 'transform', rolledBack: true });
  const started = Date.now();
  const sources = await readTransformFiles(deps.config.transform);
  return inTransformTransaction(deps.pg, deps.config.postgres.schema, false, async (client) => {
    const files = await runFiles(
      client,
      sources,
      options.retry ?? 'nothing retries it here: try again (a run retries its transform step)',
      UNBOUNDED_TIME,
      { pool: deps.pg, everyMs: options.lockWaitCheckMs ?? LOCK_WAIT_CHECK_MS },
      logger,
      (result) => logger.info('Transform file ran (to be rolled back)', { ...transformFileOutput(result) }),
    );
    const durationMs = Date.now() - started;
    return { files, durationMs, inspected: await inspect(client) };
  });
}
