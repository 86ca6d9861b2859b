/**
 * The CSV dialect of Athena's result files (athena-wire.md, "The result file in S3"): a header
 * row; every non-NULL value quoted with `"` and inner quotes doubled; NULL an empty unquoted
 * field; the empty string `""`; LF after every line, the last one included; UTF-8 without BOM.
 */
import { open } from 'node:fs/promises';

const QUOTE = 0x22;
const COMMA = 0x2c;
const LF = 0x0a;
const CR = 0x0d;
/** Bytes read from disk at a time when paging through a result file. */
const READ_BLOCK_BYTES = 64 * 1024;

/** One CSV line (with its LF) for the given fields; `null` is written as NULL. */
export function athenaCsvLine(fields: readonly (string | null)[]): string {
  let line = '';
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i];
    if (i > 0) line += ',';
    if (field !== null && field !== undefined) line += `"${field.replaceAll('"', '""')}"`;
  }
  return `${line}\n`;
}

/** A page of rows read from a result file, and where the next page starts. */
export interface CsvPage {
  /** Each row's fields; `null` for NULL (an empty unquoted field). */
  readonly rows: (string | null)[][];
  /** Byte offset just after the last row returned. */
  readonly nextOffset: number;
  /** True when the file has no row after `nextOffset`. */
  readonly atEnd: boolean;
}

/** Thrown when a file does not follow the dialect; names the byte offset. */
export class AthenaCsvFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AthenaCsvFormatError';
  }
}

/**
 * Parses complete rows from `buffer` (which begins at a row boundary). Returns the rows and the
 * number of bytes they took; a trailing incomplete row is left for the next call.
 */
export function parseAthenaCsvRows(
  buffer: Buffer,
  maxRows: number,
  baseOffset = 0,
): { rows: (string | null)[][]; consumed: number } {
  const rows: (string | null)[][] = [];
  let pos = 0;
  let consumed = 0;
  let row: (string | null)[] = [];
  while (rows.length < maxRows && pos < buffer.length) {
    const byte = buffer[pos];
    let field: string | null;
    if (byte === QUOTE) {
      // Quoted field: find the closing quote (a quote not followed by another quote).
      let end = pos + 1;
      let hasEscapes = false;
      for (;;) {
        const q = buffer.indexOf(QUOTE, end);
        if (q === -1) return { rows, consumed }; // incomplete: needs more bytes
        if (q + 1 >= buffer.length) return { rows, consumed }; // cannot tell "" from " yet
        if (buffer[q + 1] === QUOTE) {
          hasEscapes = true;
          end = q + 2;
          continue;
        }
        field = buffer.toString('utf8', pos + 1, q);
        if (hasEscapes) field = field.replaceAll('""', '"');
        pos = q + 1;
        break;
      }
    } else if (byte === COMMA || byte === LF) {
      field = null;
    } else {
      throw new AthenaCsvFormatError(
        `unquoted value at byte ${baseOffset + pos}: Athena's CSV quotes every non-NULL value`,
      );
    }
    row.push(field);
    const sep = buffer[pos];
    if (sep === undefined) return { rows, consumed }; // the row's end is not in the buffer yet
    if (sep === COMMA) {
      pos += 1;
      continue;
    }
    if (sep === LF || (sep === CR && buffer[pos + 1] === LF)) {
      pos += sep === LF ? 1 : 2;
      rows.push(row);
      row = [];
      consumed = pos;
      continue;
    }
    throw new AthenaCsvFormatError(`expected "," or a line feed at byte ${baseOffset + pos}`);
  }
  return { rows, consumed };
}

/**
 * Reads up to `maxRows` rows of a result file from byte `offset` (a row boundary), reading the
 * file in blocks so that a page of a huge file costs only the bytes of that page.
 */
export async function readAthenaCsvPage(path: string, offset: number, maxRows: number): Promise<CsvPage> {
  const handle = await open(path, 'r');
  try {
    const size = (await handle.stat()).size;
    const rows: (string | null)[][] = [];
    let position = offset;
    let pending = Buffer.alloc(0);
    while (rows.length < maxRows && position + pending.length < size) {
      const block = Buffer.alloc(Math.min(READ_BLOCK_BYTES, size - position - pending.length));
      const { bytesRead } = await handle.read(block, 0, block.length, position + pending.length);
      if (bytesRead === 0) break;
      pending = pending.length ? Buffer.concat([pending, block.subarray(0, bytesRead)]) : block;
      const parsed = parseAthenaCsvRows(pending, maxRows - rows.length, position);
      rows.push(...parsed.rows);
      position += parsed.consumed;
      pending = pending.subarray(parsed.consumed);
    }
    if (rows.length < maxRows && pending.length > 0) {
      throw new AthenaCsvFormatError(`the last line of ${path} does not end with a line feed`);
    }
    return { rows, nextOffset: position, atEnd: position >= size };
  } finally {
    await handle.close();
  }
}
