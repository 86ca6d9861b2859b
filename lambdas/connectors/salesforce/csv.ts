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
import { StringDecoder } from 'node:string_decoder';
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

/**
 * A streaming converter for one Bulk result page. The page's header line is not written out: it is
 * captured in `header` (the caller writes one header for the whole stream and checks the columns).
 * A field `""` becomes an empty unquoted field (NULL); every other field is written quoted with
 * `"` doubled; CRLF record ends become LF. Only whole records are returned; the first
 * `skipRecords` data records are read but not returned (to resume an interrupted page).
 * Memory is bounded by one record.
 */
export function createBulkCsvPageConverter(options: { skipRecords?: number } = {}): BulkCsvPageConverter {
  const skipRecords = options.skipRecords ?? 0;
  const decoder = new StringDecoder('utf8');
  // The record being converted: written out only once complete, so that a page interrupted
  // mid-stream can be fetched again and resumed after its last whole record (skipRecords).
  let rec = '';
  let state = State.FieldStart;
  let inHeader = true;
  let headerField = '';
  const header: string[] = [];
  let headerDone: string[] | undefined;
  let records = 0;
  let recordOpen = false;

  const convert = (text: string): string => {
    let out = '';
    // Header fields are collected instead of emitted.
    const emit = (s: string): void => {
      if (inHeader) headerField += s;
      else rec += s;
    };
    const endField = (): void => {
      if (inHeader) {
        header.push(headerField);
        headerField = '';
      }
    };
    const endRecord = (): void => {
      endField();
      if (inHeader) {
        inHeader = false;
        headerDone = header.slice();
      } else {
        if (records >= skipRecords) out += rec + '\n';
        rec = '';
        records += 1;
      }
      recordOpen = false;
    };
    const n = text.length;
    let i = 0;
    while (i < n) {
      const c = text.charCodeAt(i);
      switch (state) {
        case State.FieldStart:
          if (!recordOpen && (c === LF || c === CR)) {
            // A blank line holds no record (a single null column is written `""`).
            i += 1;
            break;
          }
          recordOpen = true;
          if (c === QUOTE) state = State.QuotedStart;
          else if (c === COMMA) {
            endField();
            if (!inHeader) rec += ',';
          } else if (c === LF) endRecord();
          else if (c === CR) {
            /* dropped: LF ends the record */
          } else {
            if (!inHeader) rec += '"';
            state = State.InUnquoted;
            continue; // re-read c as content
          }
          i += 1;
          break;
        case State.QuotedStart:
          if (c === QUOTE) {
            state = State.QuotedStartQuote;
            i += 1;
          } else {
            if (!inHeader) rec += '"';
            state = State.InQuoted;
          }
          break;
        case State.QuotedStartQuote:
          // `""` seen: an empty field, or the start of an escaped quote (`"""…`).
          if (c === QUOTE) {
            if (!inHeader) rec += '"';
            emit('""');
            state = State.InQuoted;
          } else if (c === COMMA) {
            endField();
            if (!inHeader) rec += ',';
            state = State.FieldStart;
          } else if (c === LF) {
            endRecord();
            state = State.FieldStart;
          } else if (c !== CR) {
            throw new SyntaxError(
              `Bulk result CSV: unexpected character after a closing quote (record ${records + 1})`,
            );
          }
          i += 1;
          break;
        case State.InQuoted: {
          const q = text.indexOf('"', i);
          if (q < 0) {
            emit(text.slice(i));
            i = n;
          } else {
            emit(text.slice(i, q));
            state = State.QuoteInQuoted;
            i = q + 1;
          }
          break;
        }
        case State.QuoteInQuoted:
          if (c === QUOTE) {
            emit('""');
            state = State.InQuoted;
          } else if (c === COMMA) {
            if (!inHeader) rec += '",';
            endField();
            state = State.FieldStart;
          } else if (c === LF) {
            if (!inHeader) rec += '"';
            endRecord();
            state = State.FieldStart;
          } else if (c !== CR) {
            throw new SyntaxError(
              `Bulk result CSV: unexpected character after a closing quote (record ${records + 1})`,
            );
          }
          i += 1;
          break;
        case State.InUnquoted:
          if (c === COMMA) {
            if (!inHeader) rec += '",';
            endField();
            state = State.FieldStart;
          } else if (c === LF) {
            if (!inHeader) rec += '"';
            endRecord();
            state = State.FieldStart;
          } else if (c === QUOTE) emit('""');
          else if (c !== CR) emit(text[i] as string);
          i += 1;
          break;
      }
    }
    return out;
  };

  const finish = (): string => {
    let out = convert(decoder.end());
    switch (state) {
      case State.InQuoted:
      case State.QuotedStart:
        throw new SyntaxError(`Bulk result CSV ends inside a quoted value (record ${records + 1})`);
      case State.QuoteInQuoted:
      case State.InUnquoted:
        if (!inHeader) rec += '"';
        break;
      default:
        break;
    }
    if (recordOpen) {
      // The page did not end with a line break: close its last record.
      const before = out;
      state = State.FieldStart;
      out = before + convert('\n');
    }
    return out;
  };

  return {
    write: (chunk) => convert(typeof chunk === 'string' ? chunk : decoder.write(chunk)),
    end: finish,
    get header() {
      return headerDone?.map((h) => h.replace(/""/g, '"'));
    },
    get records() {
      return records;
    },
  };
}

/**
 * A Transform over one whole Bulk result page that writes the COPY dialect, header included
 * (the page's own header, quoted). For a single page; multi-page streams use the page converter.
 */
export function bulkCsvToCopyCsv(): Transform {
  const converter = createBulkCsvPageConverter();
  let headerWritten = false;
  const withHeader = (text: string): string => {
    if (headerWritten || !converter.header) return text;
    headerWritten = true;
    return csvHeaderLine(converter.header) + text;
  };
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      try {
        const text = withHeader(converter.write(chunk));
        callback(null, text || undefined);
      } catch (err) {
        callback(err as Error);
      }
    },
    flush(callback: TransformCallback) {
      try {
        const text = withHeader(converter.end());
        callback(null, text || undefined);
      } catch (err) {
        callback(err as Error);
      }
    },
  });
}
