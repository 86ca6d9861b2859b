/**
 * HTTP plumbing shared by the emulator's endpoints: reading bodies, answering JSON and errors
 * with Salesforce's exact shapes and content types, and writing large bodies as streams with
 * back-pressure (and the "connection reset mid-stream" fault).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseJsonKeepingDigits, stringifyJson } from './values';

/** Salesforce's JSON content type, exactly (salesforce-wire.md, "Transport"). */
export const JSON_CONTENT_TYPE = 'application/json;charset=UTF-8';
/** Bulk API 2.0 CSV results. */
export const CSV_CONTENT_TYPE = 'text/csv';
/** SOAP responses. */
export const XML_CONTENT_TYPE = 'text/xml;charset=UTF-8';

/** Largest JSON request body the emulator reads (REST calls are small; guards memory). */
export const MAX_JSON_BODY_BYTES = 50 * 1024 * 1024;

/** A whole-request error as Salesforce's REST API sends it: status + `[{message, errorCode, fields?}]`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: string,
    message: string,
    readonly fields?: string[],
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /** The body Salesforce sends: an array of one error. */
  body(): { message: string; errorCode: string; fields?: string[] }[] {
    return [
      this.fields
        ? { message: this.message, errorCode: this.errorCode, fields: this.fields }
        : { message: this.message, errorCode: this.errorCode },
    ];
  }
}

/**
 * Reads a request body into one Buffer, refusing more than `limit` bytes with 413. A body over the
 * limit is read to its end (and dropped) before the refusal, so that the client, still sending,
 * reads the 413 rather than a connection reset.
 */
export async function readBody(req: IncomingMessage, limit = MAX_JSON_BODY_BYTES): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= limit) chunks.push(chunk);
  }
  if (size > limit) {
    throw new ApiError(413, 'REQUEST_ENTITY_TOO_LARGE', `request body exceeds ${limit} bytes`);
  }
  return Buffer.concat(chunks);
}

/** Parses a JSON request body; a syntax error is Salesforce's 400 `JSON_PARSER_ERROR`. */
export function parseJsonBody(raw: Buffer): unknown {
  const text = raw.toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    // Long number literals keep their digits (an 18-digit currency amount): see values.ts.
    return parseJsonKeepingDigits(text);
  } catch (err) {
    throw new ApiError(
      400,
      'JSON_PARSER_ERROR',
      `Unexpected character in the request body: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

/** Sends a JSON body with Salesforce's content type. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = stringifyJson(body);
  res.writeHead(status, {
    ...headers,
    'Content-Type': JSON_CONTENT_TYPE,
    'Content-Length': String(Buffer.byteLength(text)),
  });
  res.end(text);
}

/** Sends an empty response (204, or 201 for a Bulk upload). */
export function sendEmpty(res: ServerResponse, status: number, headers: Record<string, string> = {}): void {
  res.writeHead(status, headers);
  res.end();
}

/**
 * A fault of one streamed body: cut (the socket destroyed) or stalled (nothing more sent, the
 * socket left open) after a number of bytes, and/or sent slowly (`pace`).
 */
export interface StreamFault {
  /** Destroy the socket once this many bytes are written ("connection reset mid-stream"). */
  readonly resetAfterBytes?: number;
  /** Send this many bytes, then nothing more, the socket left open (a hung server or network). */
  readonly stallAfterBytes?: number;
  /** Send the body `chunkBytes` at a time with `pauseMs` between pieces: slow, but flowing. */
  readonly pace?: { readonly chunkBytes: number; readonly pauseMs: number };
}

/**
 * Writes a body piece by piece, waiting for `drain` when the socket buffer is full, so a large
 * response never sits in memory as a whole. With a {@link StreamFault}, the body is cut, stalled
 * or paced as it says.
 */
export class StreamWriter {
  private written = 0;
  private destroyed = false;
  private stalled = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly fault: StreamFault = {},
  ) {}

  /** Whether the fault (or the client) ended the connection, or the body stalled: stop producing. */
  get aborted(): boolean {
    return this.destroyed || this.stalled || this.res.destroyed;
  }

  /** Writes one piece (text as UTF-8); resolves when the socket can take more. */
  async write(piece: string | Buffer): Promise<void> {
    const buf = typeof piece === 'string' ? Buffer.from(piece, 'utf8') : piece;
    const pace = this.fault.pace;
    if (!pace) return this.writeNow(buf);
    for (let i = 0; i < buf.length && !this.aborted; i += pace.chunkBytes) {
      if (this.written > 0) await new Promise((resolve) => setTimeout(resolve, pace.pauseMs));
      await this.writeNow(buf.subarray(i, i + pace.chunkBytes));
    }
  }

  private async writeNow(piece: Buffer): Promise<void> {
    if (this.aborted) return;
    let buf = piece;
    const { resetAfterBytes, stallAfterBytes } = this.fault;
    if (resetAfterBytes !== undefined && this.written + buf.length >= resetAfterBytes) {
      buf = buf.subarray(0, Math.max(0, resetAfterBytes - this.written));
      this.written += buf.length;
      // Flush what fits, then drop the connection the way a broken network would.
      if (buf.length > 0) this.res.write(buf);
      this.destroyed = true;
      setImmediate(() => this.res.socket?.destroy());
      return;
    }
    if (stallAfterBytes !== undefined && this.written + buf.length >= stallAfterBytes) {
      buf = buf.subarray(0, Math.max(0, stallAfterBytes - this.written));
      this.written += buf.length;
      // Flush what fits, then go silent: the response is never ended, the socket stays open
      // until the client gives up (or the emulator stops).
      if (buf.length > 0) this.res.write(buf);
      this.stalled = true;
      return;
    }
    this.written += buf.length;
    if (!this.res.write(buf)) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          this.res.off('drain', done);
          this.res.off('close', done);
          resolve();
        };
        this.res.on('drain', done);
        this.res.on('close', done);
      });
    }
  }

  /** Ends the response (unless the connection is gone or the body stalled). */
  end(): void {
    if (!this.aborted) this.res.end();
  }
}

/** Sends a complete JSON body through a {@link StreamWriter} (used when a stream fault is armed). */
export async function sendJsonStreamed(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string>,
  fault: StreamFault,
): Promise<void> {
  const text = stringifyJson(body);
  res.writeHead(status, {
    ...headers,
    'Content-Type': JSON_CONTENT_TYPE,
    'Content-Length': String(Buffer.byteLength(text)),
  });
  const writer = new StreamWriter(res, fault);
  const PIECE = 1024;
  for (let i = 0; i < text.length && !writer.aborted; i += PIECE)
    await writer.write(text.slice(i, i + PIECE));
  writer.end();
}

/** Escapes text for an XML element body. */
export function xmlEscape(value: string): string {
  return value
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** Decodes the five XML entities (and numeric references) in element text. */
export function xmlUnescape(value: string): string {
  return value.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g, (_m, entity: string) => {
    switch (entity) {
      case 'amp':
        return '&';
      case 'lt':
        return '<';
      case 'gt':
        return '>';
      case 'quot':
        return '"';
      case 'apos':
        return "'";
      default:
        return String.fromCodePoint(
          entity.startsWith('#x') ? parseInt(entity.slice(2), 16) : parseInt(entity.slice(1), 10),
        );
    }
  });
}
