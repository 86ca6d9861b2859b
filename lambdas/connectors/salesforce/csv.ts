/**
 * CSV for PostgreSQL `COPY … FROM STDIN (FORMAT csv, HEADER true)`, from both Salesforce read paths.
 *
 * The dialect (https://www.postgresql.org/docs/current/sql-copy.html, "CSV Format"): comma
 * separated, LF after every line, a header line, NULL as an unquoted empty field, every string
 * quoted with `"` doubled inside (so that a quoted empty string would stay an empty string),
 * booleans `true`/`false`, numbers as Salesforce gave them, compound values (address, location)
 * as JSON text.
 *
 * Salesforce itself never stores an empty string: an empty text field reads back as null over REST
 * and as `""` in a Bulk API 2.0 result, where "every value is quoted; empty means null"
 * (salesforce-wire.md). So a Bulk `""` becomes an unquoted empty field (NULL) here, and every
 * other value is passed through quoted: COPY parses a quoted `"42"` or `"true"` into a numeric or
 * boolean column just as an unquoted one.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { LosslessNumber, stringifyJsonLossless, type LosslessJson } from './json';

/** A value quoted for CSV: `"` around it, every `"` inside doubled. */
export function quoteCsv(text: string): string {
  return `"${text.replace(/"/g, '""')}"`;
}

/** One REST JSON value as a COPY CSV field. */
export function formatCopyCsvValue(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return quoteCsv(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`Cannot write the non-finite number ${value} to CSV`);
    return String(value);
  }
  if (value instanceof LosslessNumber) return value.raw;
  if (typeof value === 'bigint') return value.toString();
  // Compound fields (address, location) and anything else structured: JSON text.
  return quoteCsv(stringifyJsonLossless(value as LosslessJson));
}

/** The header line for `fields` (names quoted like any string), with its LF. */
export function csvHeaderLine(fields: readonly string[]): string {
  return fields.map(quoteCsv).join(',') + '\n';
}

type JsonRecord = Record<string, unknown>;

function lookup(record: JsonRecord, key: string): unknown {
  if (Object.hasOwn(record, key)) return record[key];
  // Salesforce answers in describe casing; a config may name a field in any case.
  const lower = key.toLowerCase();
  for (const k of Object.keys(record)) if (k.toLowerCase() === lower) return record[k];
  return undefined;
}

/**
 * The value of `field` in a REST query record: a plain name (`Email`) or a relationship path
 * (`Owner.Name`, read from the nested `Owner` object; null when the relationship is empty).
 */
export function fieldValue(record: JsonRecord, field: string): unknown {
  if (!field.includes('.')) return lookup(record, field);
  let current: unknown = record;
  for (const part of field.split('.')) {
    if (current === null || current === undefined || typeof current !== 'object') return null;
    current = lookup(current as JsonRecord, part);
  }
  return current;
}

/** One REST query record as a COPY CSV line (with its LF), fields in `fields` order. */
export function recordToCopyCsvLine(record: JsonRecord, fields: readonly string[]): string {
  let line = '';
  for (let i = 0; i < fields.length; i += 1) {
    if (i > 0) line += ',';
    line += formatCopyCsvValue(fieldValue(record, fields[i] as string));
  }
  return line + '\n';
}

enum State {
  FieldStart,
  QuotedStart,
  QuotedStartQuote,
  InQuoted,
  QuoteInQuoted,
  InUnquoted,
}

const QUOTE = 34;
const COMMA = 44;
const LF = 10;
const CR = 13;

/** Converts one Bulk API 2.0 query result page (CSV, comma, LF or CRLF) to the COPY dialect, chunk by chunk. */
export interface BulkCsvPageConverter {
  /** Converts a chunk; returns the converted text that is complete so far. */
  write(chunk: Buffer | string): string;
  /** Ends the page; returns the rest (with a final LF). Throws on a truncated quoted value. */
  end(): string;
  /** The header's column names, once the header line has been read. */
  readonly header: readonly string[] | undefined;
  /** Data records read so far, skipped ones included (the header not counted). */
  readonly records: number;
}

/** {@link BulkCsvPageConverter} on bytes: UTF-8 in, UTF-8 out, nothing decoded. */
export interface BulkCsvPageByteConverter {
  /** Converts a chunk; returns the converted bytes of the records complete so far (maybe none). */
  write(chunk: Uint8Array): Buffer;
  /** Ends the page; returns the rest (with a final LF). Throws on a truncated quoted value. */
  end(): Buffer;
  /** The header's column names, once the header line has been read. */
  readonly header: readonly string[] | undefined;
  /** Data records read so far, skipped ones included (the header not counted). */
  readonly records: number;
}

/** Worst growth of a chunk: a one-byte unquoted field `a,` becomes `"a",` (3 bytes for 2 … at most 3×). */
const MAX_GROWTH = 3;
const EMPTY = Buffer.alloc(0);

/**
 * A streaming converter for one Bulk result page, on bytes. The page's header line is not written
 * out: it is captured in `header` (the caller writes one header for the whole stream and checks the
 * columns). A field `""` becomes an empty unquoted field (NULL); every other field is written quoted
 * with `"` doubled; CRLF record ends become LF. Only whole records are returned; the first
 * `skipRecords` data records are read but not returned (to resume an interrupted page). Memory is
 * bounded by one record (and three times the largest chunk).
 *
 * It works on the UTF-8 bytes as they arrive: every byte the CSV syntax cares about is ASCII, and
 * no byte of a multi-byte UTF-8 sequence is, so text is copied through without decoding (and
 * without encoding it again for COPY). This is the per-byte loop of a Bulk extract: a
 * 1,000,000-row result is 150 MB.
 */
export function createBulkCsvPageByteConverter(
  options: { skipRecords?: number } = {},
): BulkCsvPageByteConverter {
  const skipRecords = options.skipRecords ?? 0;
  // out[0, done) holds the whole records converted by this write; out[done, len) the record being
  // converted, carried to the next write: written out only once complete, so that a page
  // interrupted mid-stream can be fetched again and resumed after its last whole record.
  let out = Buffer.allocUnsafe(64 * 1024);
  let len = 0;
  let done = 0;
  let state = State.FieldStart;
  let records = 0;
  let recordOpen = false;
  // The header line's bytes until it is complete (it is short), then its parsed names.
  let headerLine: number[] | undefined = [];
  let headerInQuotes = false;
  let header: string[] | undefined;

  const reserve = (bytes: number): void => {
    if (len + bytes <= out.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(out.length * 2, len + bytes));
    out.copy(bigger, 0, 0, len);
    out = bigger;
  };

  /** Collects the header line; returns the index of the first byte after it (or the chunk's end). */
  const readHeader = (bytes: Uint8Array): number => {
    const line = headerLine as number[];
    for (let i = 0; i < bytes.length; i += 1) {
      const c = bytes[i] as number;
      if (line.length === 0 && (c === LF || c === CR)) continue; // blank lines before it
      if (c === QUOTE) headerInQuotes = !headerInQuotes;
      else if (c === LF && !headerInQuotes) {
        header = parseHeaderLine(Buffer.from(line).toString('utf8'));
        headerLine = undefined;
        return i + 1;
      }
      line.push(c);
    }
    return bytes.length;
  };

  const convert = (bytes: Uint8Array): void => {
    const n = bytes.length;
    let i = headerLine ? readHeader(bytes) : 0;
    if (i >= n) return;
    reserve(MAX_GROWTH * (n - i) + 2);
    // Locals, not the closure's variables, in the loop: V8 keeps them in registers.
    const o = out;
    let l = len;
    let d = done;
    let st = state;
    let rec = records;
    let open = recordOpen;
    while (i < n) {
      const c = bytes[i] as number;
      switch (st) {
        case State.InQuoted:
          // The hot loop: copy the value up to its next quote.
          while (i < n) {
            const b = bytes[i] as number;
            if (b === QUOTE) break;
            o[l++] = b;
            i += 1;
          }
          if (i < n) {
            st = State.QuoteInQuoted;
            i += 1;
          }
          continue;
        case State.FieldStart:
          if (!open && (c === LF || c === CR)) {
            // A blank line holds no record (a single null column is written `""`).
            i += 1;
            continue;
          }
          open = true;
          if (c === QUOTE) st = State.QuotedStart;
          else if (c === COMMA) o[l++] = COMMA;
          else if (c === LF) {
            o[l++] = LF;
            if (rec >= skipRecords) d = l;
            else l = d; // read, not returned
            rec += 1;
            open = false;
          } else if (c !== CR) {
            o[l++] = QUOTE;
            st = State.InUnquoted;
            continue; // re-read c as content
          } // a CR is dropped: LF ends the record
          i += 1;
          continue;
        case State.QuotedStart:
          if (c === QUOTE) {
            st = State.QuotedStartQuote;
            i += 1;
          } else {
            o[l++] = QUOTE;
            st = State.InQuoted;
          }
          continue;
        case State.QuotedStartQuote:
          // `""` seen: an empty field (NULL), or the start of an escaped quote (`"""…`).
          if (c === QUOTE) {
            o[l++] = QUOTE;
            o[l++] = QUOTE;
            o[l++] = QUOTE;
            st = State.InQuoted;
          } else if (c === COMMA) {
            o[l++] = COMMA;
            st = State.FieldStart;
          } else if (c === LF) {
            o[l++] = LF;
            if (rec >= skipRecords) d = l;
            else l = d;
            rec += 1;
            open = false;
            st = State.FieldStart;
          } else if (c !== CR) {
            throw unexpectedAfterQuote(rec + 1);
          }
          i += 1;
          continue;
        case State.QuoteInQuoted:
          if (c === QUOTE) {
            o[l++] = QUOTE;
            o[l++] = QUOTE;
            st = State.InQuoted;
          } else if (c === COMMA) {
            o[l++] = QUOTE;
            o[l++] = COMMA;
            st = State.FieldStart;
          } else if (c === LF) {
            o[l++] = QUOTE;
            o[l++] = LF;
            if (rec >= skipRecords) d = l;
            else l = d;
            rec += 1;
            open = false;
            st = State.FieldStart;
          } else if (c !== CR) {
            throw unexpectedAfterQuote(rec + 1);
          }
          i += 1;
          continue;
        case State.InUnquoted:
          if (c === COMMA) {
            o[l++] = QUOTE;
            o[l++] = COMMA;
            st = State.FieldStart;
          } else if (c === LF) {
            o[l++] = QUOTE;
            o[l++] = LF;
            if (rec >= skipRecords) d = l;
            else l = d;
            rec += 1;
            open = false;
            st = State.FieldStart;
          } else if (c === QUOTE) {
            o[l++] = QUOTE;
            o[l++] = QUOTE;
          } else if (c !== CR) o[l++] = c;
          i += 1;
          continue;
      }
    }
    len = l;
    done = d;
    state = st;
    records = rec;
    recordOpen = open;
  };

  /** The whole records converted so far, handed over; the open record moves to the front. */
  const take = (): Buffer => {
    if (done === 0) return EMPTY;
    const whole = Buffer.from(out.subarray(0, done));
    out.copy(out, 0, done, len);
    len -= done;
    done = 0;
    return whole;
  };

  const finish = (): Buffer => {
    if (headerLine) {
      // A page that is only a header without its line break.
      if (headerInQuotes) throw new SyntaxError('Bulk result CSV ends inside a quoted value (the header)');
      if (headerLine.length > 0) header = parseHeaderLine(Buffer.from(headerLine).toString('utf8'));
      headerLine = undefined;
      return EMPTY;
    }
    switch (state) {
      case State.InQuoted:
      case State.QuotedStart:
        throw new SyntaxError(`Bulk result CSV ends inside a quoted value (record ${records + 1})`);
      case State.QuoteInQuoted:
      case State.InUnquoted:
        reserve(1);
        out[len++] = QUOTE;
        break;
      default:
        break;
    }
    if (recordOpen) {
      // The page did not end with a line break: close its last record.
      state = State.FieldStart;
      convert(LF_BYTES);
    }
    return take();
  };

  return {
    write(chunk) {
      convert(chunk);
      return take();
    },
    end: finish,
    get header() {
      return header;
    },
    get records() {
      return records;
    },
  };
}

function unexpectedAfterQuote(record: number): SyntaxError {
  return new SyntaxError(`Bulk result CSV: unexpected character after a closing quote (record ${record})`);
}

/** Splits the header line into names: quoted (`""` inside is a quote) or bare; CRs outside quotes dropped. */
function parseHeaderLine(line: string): string[] {
  const names: string[] = [];
  let i = 0;
  for (;;) {
    let name = '';
    if (line[i] === '"') {
      for (i += 1; ; i += 1) {
        if (i >= line.length)
          throw new SyntaxError('Bulk result CSV ends inside a quoted value (the header)');
        if (line[i] === '"') {
          if (line[i + 1] !== '"') break;
          i += 1;
        }
        name += line[i];
      }
      i += 1; // the closing quote
      while (line[i] === '\r') i += 1;
      if (i < line.length && line[i] !== ',') {
        throw new SyntaxError('Bulk result CSV: unexpected character after a closing quote in the header');
      }
    } else {
      for (; i < line.length && line[i] !== ','; i += 1) if (line[i] !== '\r') name += line[i];
    }
    names.push(name);
    if (i >= line.length) return names;
    i += 1; // the comma
  }
}

const LF_BYTES = Buffer.from('\n');

/**
 * {@link createBulkCsvPageByteConverter} with text out (and text or bytes in). Invalid UTF-8 in
 * the page becomes U+FFFD here; the byte converter passes it through (COPY refuses it).
 */
export function createBulkCsvPageConverter(options: { skipRecords?: number } = {}): BulkCsvPageConverter {
  const bytes = createBulkCsvPageByteConverter(options);
  return {
    write: (chunk) =>
      bytes.write(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk).toString('utf8'),
    end: () => bytes.end().toString('utf8'),
    get header() {
      return bytes.header;
    },
    get records() {
      return bytes.records;
    },
  };
}

/**
 * A Transform over one whole Bulk result page that writes the COPY dialect, header included
 * (the page's own header, quoted). For a single page; multi-page streams use the page converter.
 */
export function bulkCsvToCopyCsv(): Transform {
  const converter = createBulkCsvPageByteConverter();
  let headerWritten = false;
  const withHeader = (bytes: Buffer): Buffer => {
    if (headerWritten || !converter.header) return bytes;
    headerWritten = true;
    return Buffer.concat([Buffer.from(csvHeaderLine(converter.header), 'utf8'), bytes]);
  };
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      try {
        const bytes = withHeader(converter.write(chunk));
        callback(null, bytes.length > 0 ? bytes : undefined);
      } catch (err) {
        callback(err as Error);
      }
    },
    flush(callback: TransformCallback) {
      try {
        const bytes = withHeader(converter.end());
        callback(null, bytes.length > 0 ? bytes : undefined);
      } catch (err) {
        callback(err as Error);
      }
    },
  });
}
