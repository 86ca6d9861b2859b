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

const QUOTE_BYTE = 0x22;
/** Bytes of one result chunk: big enough that a 500,000-row page is a few hundred socket writes. */
export const RESULT_CHUNK_BYTES = 256 * 1024;
/** UTF-8 takes at most 3 bytes per UTF-16 code unit (4 per surrogate pair, 2 units). */
const MAX_UTF8_BYTES_PER_UNIT = 3;
const QUOTES = /"/g;

/**
 * Encodes rows of a Bulk API 2.0 query result straight into UTF-8 bytes, in chunks of about
 * {@link RESULT_CHUNK_BYTES}: every value quoted, inner quotes doubled, null as `""`, numbers
 * as `String(n)` and booleans as `true`/`false` — byte for byte what joining {@link quoteCsv}
 * of each value would give, without building a string per value, per row and per piece and
 * encoding it again (the emulator serves 1,000,000-row results; this is its hot loop).
 *
 * ASCII text is copied by a char-code loop; a value with other characters is encoded from its
 * first non-ASCII character on by `Buffer#write`, as `Buffer.from(text)` would (a lone
 * surrogate becomes U+FFFD).
 */
export class QueryResultEncoder {
  private readonly delimiter: number;
  private readonly eol: Uint8Array;
  private readonly filled: Buffer[] = [];
  private buf: Buffer;
  private pos = 0;

  /**
   * @param fields the selected fields, in result order (read by name from each record)
   * @param delimiter the job's column delimiter (one ASCII character)
   * @param lineEnding the job's line ending
   */
  constructor(
    private readonly fields: readonly string[],
    delimiter: string,
    lineEnding: string,
    private readonly chunkBytes = RESULT_CHUNK_BYTES,
  ) {
    if (delimiter.length !== 1 || delimiter.charCodeAt(0) >= 0x80) {
      throw new RangeError(
        `the column delimiter must be one ASCII character, got ${JSON.stringify(delimiter)}`,
      );
    }
    this.delimiter = delimiter.charCodeAt(0);
    this.eol = Buffer.from(lineEnding, 'latin1');
    this.buf = Buffer.allocUnsafe(chunkBytes);
  }

  /** Appends one record as a result line. */
  writeRecord(record: Readonly<Record<string, unknown>>): void {
    const fields = this.fields;
    for (let f = 0; f < fields.length; f++) {
      const value = record[fields[f] as string];
      if (typeof value === 'string') this.writeQuoted(value);
      else if (value === null || value === undefined) this.writeQuoted('');
      else this.writeQuoted(String(value));
      if (f < fields.length - 1) this.buf[this.pos++] = this.delimiter;
    }
    this.room(this.eol.length);
    for (let i = 0; i < this.eol.length; i++) this.buf[this.pos++] = this.eol[i] as number;
  }

  /** The chunks filled so far (each about `chunkBytes`); they are handed over once. */
  takeFilled(): Buffer[] {
    return this.filled.splice(0, this.filled.length);
  }

  /** Everything not yet taken: the filled chunks and the partial one. */
  takeAll(): Buffer[] {
    if (this.pos > 0) this.spill();
    return this.takeFilled();
  }

  /** Writes `"value"` (quotes doubled) and leaves room for the delimiter after it. */
  private writeQuoted(value: string): void {
    const n = value.length;
    // Worst case: every unit a quote doubled (2 bytes) or a 3-byte character; 2 quotes, 1 delimiter.
    this.room(MAX_UTF8_BYTES_PER_UNIT * n + 3);
    const buf = this.buf;
    let pos = this.pos;
    buf[pos++] = QUOTE_BYTE;
    for (let i = 0; i < n; i++) {
      const c = value.charCodeAt(i);
      if (c >= 0x80) {
        const rest = value.slice(i);
        pos += buf.write(rest.includes('"') ? rest.replace(QUOTES, '""') : rest, pos, 'utf8');
        break;
      }
      if (c === QUOTE_BYTE) buf[pos++] = QUOTE_BYTE;
      buf[pos++] = c;
    }
    buf[pos++] = QUOTE_BYTE;
    this.pos = pos;
  }

  private room(bytes: number): void {
    if (this.pos + bytes > this.buf.length) this.spill(bytes);
  }

  private spill(next = 0): void {
    if (this.pos > 0) this.filled.push(this.buf.subarray(0, this.pos));
    this.buf = Buffer.allocUnsafe(Math.max(this.chunkBytes, next));
    this.pos = 0;
  }
}
