/**
 * The S3 side of the emulator: path-style `GET` and `HEAD /{bucket}/{key}` over the result files,
 * enough for `@aws-sdk/client-s3` GetObject and HeadObject (with `forcePathStyle: true`).
 * Bodies are streamed from disk; `Range: bytes=a-b` answers 206, an unsatisfiable range 416;
 * errors are S3's XML (`NoSuchKey`, `NoSuchBucket`, …), without a body for HEAD as S3 does.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import type { AthenaEmulatorFaults, StoredObject } from './engine';
import { objectPath } from './engine';
import { delayWhileOpen } from '../delay';

/** What the S3 handler needs from the emulator. */
export interface S3Context {
  readonly resultsDir: string;
  readonly faults: AthenaEmulatorFaults;
  readonly objects: ReadonlyMap<string, StoredObject>;
}

/** A bucket name (S3 user guide, "Bucket naming rules"): 3–63 of a-z 0-9 . -, starting and ending with a letter or digit. */
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** S3 error codes for the statuses `faults.s3Fail` may ask for (S3 API reference, "Error responses"). */
const S3_ERROR_CODES: Readonly<Record<number, string>> = {
  400: 'InvalidRequest',
  403: 'AccessDenied',
  404: 'NoSuchKey',
  500: 'InternalError',
  501: 'NotImplemented',
  503: 'SlowDown',
};

const xmlEscape = (text: string): string =>
  text.replace(
    /[<>&'"]/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c] ?? c,
  );

function sendError(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  extra: Record<string, string> = {},
): void {
  const requestId = res.getHeader('x-amz-request-id');
  const fields = Object.entries({ Code: code, Message: message, ...extra, RequestId: String(requestId) })
    .map(([k, v]) => `<${k}>${xmlEscape(v)}</${k}>`)
    .join('');
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error>${fields}</Error>`;
  res.statusCode = status;
  res.setHeader('content-type', 'application/xml');
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  res.setHeader('content-length', Buffer.byteLength(body));
  res.end(body);
}

/** A parsed `Range` header: an inclusive byte range, `unsatisfiable`, or `ignored` (serve it all). */
export type ByteRange = { start: number; end: number } | 'unsatisfiable' | 'ignored';

/**
 * Parses `Range: bytes=a-b`, `bytes=a-` and `bytes=-n` against an object size (RFC 9110 §14.1.2).
 * S3 does not serve multiple ranges in one GET; like S3, a multi-range or malformed header is
 * ignored and the whole object is sent.
 */
export function parseByteRange(header: string | undefined, size: number): ByteRange {
  if (!header) return 'ignored';
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) return 'ignored';
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return 'ignored';
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  if (start >= size) return 'unsatisfiable';
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (end < start) return 'ignored';
  return { start, end };
}

/** The S3 operation name of a request, for the call log. */
export function s3OperationName(req: IncomingMessage): string {
  if (req.method === 'HEAD') return 'HeadObject';
  if (req.method === 'GET') return 'GetObject';
  return `S3:${req.method ?? '?'}`;
}

/** Answers one S3 request. */
export async function handleS3Request(
  req: IncomingMessage,
  res: ServerResponse,
  ctx: S3Context,
): Promise<void> {
  res.setHeader('x-amz-request-id', randomUUID().replaceAll('-', '').slice(0, 16).toUpperCase());
  res.setHeader('x-amz-id-2', randomUUID());
  const { faults } = ctx;
  if (faults.s3LatencyMs > 0) {
    await delayWhileOpen(faults.s3LatencyMs, res);
    // The client gave up while the request was held: nothing to answer.
    if (res.destroyed || req.socket.destroyed) return;
  }
  if (faults.s3Fail !== undefined) {
    const code = S3_ERROR_CODES[faults.s3Fail] ?? 'InternalError';
    sendError(req, res, faults.s3Fail, code, `Injected by the emulator (faults.s3Fail = ${faults.s3Fail})`);
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    sendError(req, res, 405, 'MethodNotAllowed', `The emulator serves GET and HEAD only, not ${req.method}`);
    return;
  }
  const url = new URL(req.url ?? '/', 'http://localhost');
  const [, bucketPart = '', ...keyParts] = url.pathname.split('/');
  const bucket = decodeURIComponent(bucketPart);
  const key = keyParts.map(decodeURIComponent).join('/');
  if (!bucket) {
    sendError(req, res, 501, 'NotImplemented', 'ListBuckets is not implemented by the emulator');
    return;
  }
  const bucketDir = path.resolve(ctx.resultsDir, bucket);
  // Only a bucket's name names a bucket: the results dir also holds the results of running
  // queries (PENDING_RESULTS_DIR), which no bucket name can reach.
  const bucketStat = BUCKET_NAME.test(bucket) ? await stat(bucketDir).catch(() => undefined) : undefined;
  if (!bucketStat?.isDirectory() || path.dirname(bucketDir) !== path.resolve(ctx.resultsDir)) {
    sendError(req, res, 404, 'NoSuchBucket', 'The specified bucket does not exist', { BucketName: bucket });
    return;
  }
  if (!key) {
    sendError(req, res, 501, 'NotImplemented', 'ListObjects is not implemented by the emulator');
    return;
  }
  const file = objectPath(ctx.resultsDir, bucket, key);
  const fileStat = file ? await stat(file).catch(() => undefined) : undefined;
  if (!file || !fileStat?.isFile()) {
    sendError(req, res, 404, 'NoSuchKey', 'The specified key does not exist.', { Key: key });
    return;
  }
  const size = fileStat.size;
  const stored = ctx.objects.get(file);
  res.setHeader(
    'etag',
    stored?.etag ?? `"${size.toString(16)}-${Math.floor(fileStat.mtimeMs).toString(16)}"`,
  );
  res.setHeader('last-modified', fileStat.mtime.toUTCString());
  res.setHeader('content-type', stored?.contentType ?? 'application/octet-stream');
  res.setHeader('accept-ranges', 'bytes');

  const range = parseByteRange(req.headers.range, size);
  if (range === 'unsatisfiable') {
    res.setHeader('content-range', `bytes */${size}`);
    sendError(req, res, 416, 'InvalidRange', 'The requested range is not satisfiable', {
      RangeRequested: String(req.headers.range),
      ActualObjectSize: String(size),
    });
    return;
  }
  const start = range === 'ignored' ? 0 : range.start;
  const end = range === 'ignored' ? size - 1 : range.end;
  const length = size === 0 ? 0 : end - start + 1;
  res.statusCode = range === 'ignored' ? 200 : 206;
  if (range !== 'ignored') res.setHeader('content-range', `bytes ${start}-${end}/${size}`);
  res.setHeader('content-length', length);
  if (req.method === 'HEAD' || length === 0) {
    res.end();
    return;
  }
  // The stall is at a byte of the object: a read resumed past it (a Range) goes on; one resumed
  // at it stalls again at once.
  const stallAt = faults.s3StallAfterBytes === undefined ? undefined : faults.s3StallAfterBytes - start;
  if (stallAt !== undefined && stallAt <= 0) {
    res.flushHeaders();
    return;
  }
  const body = createReadStream(file, { start, end });
  const limit = faults.s3FailAfterBytes;
  let sent = 0;
  body.on('data', (chunk: Buffer | string) => {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (stallAt !== undefined && sent + bytes.length > stallAt) {
      // The fault: part of the body, then silence, the socket left open until the client gives up.
      body.destroy();
      res.write(bytes.subarray(0, Math.max(0, stallAt - sent)));
      sent = stallAt;
      return;
    }
    if (limit !== undefined && sent + bytes.length > limit) {
      // The fault: part of the body, then the connection drops, as a reset S3 read does.
      body.destroy();
      res.write(bytes.subarray(0, Math.max(0, limit - sent)), () => res.socket?.destroy());
      sent = limit;
      return;
    }
    sent += bytes.length;
    if (!res.write(bytes)) {
      body.pause();
      res.once('drain', () => body.resume());
    }
  });
  body.on('end', () => res.end());
  body.on('error', () => res.socket?.destroy());
  res.on('close', () => body.destroy());
}
