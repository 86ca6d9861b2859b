/**
 * CSV as Bulk API 2.0 speaks it: a streaming RFC 4180 parser for uploads (fed chunk by chunk,
 * never holding the file as one string) and the field writer for result files.
 *
 * Dialects (Bulk API 2.0 Developer Guide, "Create a Job" and "Prepare CSV Files"): the job's
 * `columnDelimiter` (COMMA, TAB, PIPE, SEMICOLON, CARET, BACKQUOTE) and `lineEnding` (LF, CRLF);
 * fields may be quoted with `"`, a quote inside a quoted field is doubled.
 */
import { StringDecoder } from 'node:string_decoder';

/** The `columnDelimiter` values of a job and the character each stands for. */
export const COLUMN_DELIMITERS = {
  BACKQUOTE: '`',
  CARET: '^',
  COMMA: ',',
  PIPE: '|',
  SEMICOLON: ';',
  TAB: '\t',
} as const;

/** A job's `columnDelimiter`. */
export type ColumnDelimiter = keyof typeof COLUMN_DELIMITERS;

/** The `lineEnding` values of a job and the characters each stands for. */
export const LINE_ENDINGS = { LF: '\n', CRLF: '\r\n' } as const;

/** A job's `lineEnding`. */
export type LineEnding = keyof typeof LINE_ENDINGS;

/** A CSV that cannot be parsed: names the 1-based line and what is wrong. */
export class CsvSyntaxError extends Error {
  constructor(
    readonly line: number,
    problem: string,
  ) {
    super(`line ${line}: ${problem}`);
    this.name = 'CsvSyntaxError';
  }
}

const enum State {
  FieldStart,
  Unquoted,
  Quoted,
  QuoteInQuoted,
}

/**
 * A push parser: give it text (or bytes) as it arrives, it calls `onRow` with each complete row.
 * Blank lines are skipped. With `lineEnding: 'LF'` a `\r` before the `\n` is data, as in
 * Salesforce (the job said LF); with `'CRLF'` only `\r\n` ends a row.
 */
export class CsvStreamParser {
  private readonly delimiter: string;
  private readonly crlf: boolean;
  private readonly decoder = new StringDecoder('utf8');
  private state = State.FieldStart;
  private field = '';
  private row: string[] = [];
  private pendingCr = false;
  private line = 1;
  private rowStartLine = 1;

  constructor(
    delimiter: ColumnDelimiter = 'COMMA',
    lineEnding: LineEnding = 'LF',
    private readonly onRow: (fields: string[], line: number) => void,
  ) {
    this.delimiter = COLUMN_DELIMITERS[delimiter];
    this.crlf = lineEnding === 'CRLF';
  }

  /** Feeds the next piece of the upload. */
  push(chunk: Buffer | string): void {
    const text = typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    const delimiter = this.delimiter;
    let field = this.field;
    let state = this.state;
    for (let i = 0; i < text.length; i++) {
      const ch = text[i] as string;
      if (this.pendingCr) {
        this.pendingCr = false;
        if (ch === '\n') {
          this.field = field;
          this.endRow();
          field = '';
          state = State.FieldStart;
          continue;
        }
        // A lone CR in a CRLF file is data.
        if (state === State.FieldStart) state = State.Unquoted;
        field += '\r';
      }
      switch (state) {
        case State.Quoted:
          if (ch === '"') state = State.QuoteInQuoted;
          else {
            if (ch === '\n') this.line++;
            field += ch;
          }
          continue;
        case State.QuoteInQuoted:
          if (ch === '"') {
            field += '"';
            state = State.Quoted;
            continue;
          }
          // The quoted field ended: only a delimiter or a line ending may follow.
          if (ch !== delimiter && ch !== '\n' && !(this.crlf && ch === '\r')) {
            throw new CsvSyntaxError(
              this.line,
              `unexpected character ${JSON.stringify(ch)} after a closing quote`,
            );
          }
          state = State.Unquoted;
          break;
        case State.FieldStart:
          if (ch === '"') {
            state = State.Quoted;
            continue;
          }
          state = State.Unquoted;
          break;
        case State.Unquoted:
          break;
      }
      // Unquoted content (or the character right after a closing quote).
      if (ch === delimiter) {
        this.row.push(field);
        field = '';
        state = State.FieldStart;
      } else if (ch === '\n') {
        if (this.crlf) {
          field += ch; // a bare LF inside a CRLF file is data
          this.line++;
        } else {
          this.field = field;
          this.endRow();
          field = '';
          state = State.FieldStart;
        }
      } else if (ch === '\r' && this.crlf) {
        this.pendingCr = true;
      } else if (ch === '"') {
        throw new CsvSyntaxError(
          this.line,
          'a quote inside an unquoted field (quote the whole field and double the quote)',
        );
      } else {
        field += ch;
      }
    }
    this.field = field;
    this.state = state;
  }

  private endRow(): void {
    const fields = this.row;
    fields.push(this.field);
    this.field = '';
    this.row = [];
    const line = this.rowStartLine;
    this.line++;
    this.rowStartLine = this.line;
    if (fields.length === 1 && fields[0] === '') return; // blank line
    this.onRow(fields, line);
  }

  /** Signals the end of the upload: emits the last row when the file does not end with a line ending. */
  end(): void {
    const rest = this.decoder.end();
    if (rest) this.push(rest);
    if (this.pendingCr) {
      this.pendingCr = false;
      this.field += '\r';
    }
    if (this.state === State.Quoted) {
      throw new CsvSyntaxError(this.rowStartLine, 'a quoted field is not closed before the end of the data');
    }
    if (this.field !== '' || this.row.length > 0 || this.state === State.QuoteInQuoted) this.endRow();
  }
}

/** Quotes one value for a result file: always quoted, inner quotes doubled. */
export function quoteCsv(value: string): string {
  return `"${value.replace(/"/g, '""')}"`;
}

/** Writes a header name as the client sent it, quoting only when it must. */
export function headerCsv(name: string, delimiter: string): string {
  return name.includes('"') || name.includes(delimiter) || /[\r\n]/.test(name) ? quoteCsv(name) : name;
}
