/**
 * The emulator's HTTP server: Athena's JSON protocol (`POST /` with `x-amz-target:
 * AmazonAthena.<Operation>`, athena-wire.md "Transport"), S3's path-style GET/HEAD and STS's
 * AssumeRole (./sts.ts) share one port; a request is Athena's when it carries an `x-amz-target`
 * header, STS's when it is a form-encoded `POST /`, S3's otherwise.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { TRINO_MACROS_SQL } from './trino-rewrite';
import { ATHENA_CATALOG, DataCatalog } from './catalog';
import {
  NO_FAULTS,
  QueryEngine,
  parseS3Location,
  type AthenaEmulatorFaults,
  type StoredObject,
  type WorkgroupConfig,
} from './engine';
import { AthenaApiError } from './errors';
import { delayWhileOpen } from '../delay';
import { handleS3Request, s3OperationName } from './s3';
import { handleStsRequest, isStsRequest, signingKeyId, type AssumedRole } from './sts';

/** The JSON protocol's content type (athena-wire.md, "Transport"). */
export const AMZ_JSON_1_1 = 'application/x-amz-json-1.1';
/** `x-amz-target` prefix of every Athena operation. */
export const ATHENA_TARGET_PREFIX = 'AmazonAthena.';
/** Athena's message when a start would exceed the active-query quota (TooManyRequestsException). */
export const TOO_MANY_QUERIES_MESSAGE =
  'You have exceeded the limit for the number of queries you can run concurrently. Please reduce the number of concurrent queries submitted by this account. Contact customer support to request a concurrent query limit increase.';
/** The region the emulator reports unless told otherwise. */
export const DEFAULT_REGION = 'us-east-1';
/** The workgroup Athena uses when the request names none. */
export const PRIMARY_WORKGROUP = 'primary';
/** Static credentials the emulator hands out; it does not check signatures. */
export const EMULATOR_CREDENTIALS = {
  accessKeyId: 'AKIAROUNDTRIPLOCAL00',
  secretAccessKey: 'roundtrip-local-secret',
} as const;

/** Options of {@link startAthenaEmulator}. */
export interface AthenaEmulatorOptions {
  /** Port to listen on; 0 (the default) picks a free one. */
  readonly port?: number;
  /** Interface to bind; default 127.0.0.1. */
  readonly host?: string;
  /** Folder of databases (sub-folders) of tables (CSV or Parquet files). */
  readonly dataDir: string;
  /** Where result files are kept, as `<resultsDir>/<bucket>/<key>`; default a new temp dir, removed on stop. */
  readonly resultsDir?: string;
  /** Workgroups by name; `primary` always exists. */
  readonly workgroups?: Readonly<Record<string, WorkgroupConfig>>;
  /** How long a query stays QUEUED, and at least RUNNING; default 0 and 0. */
  readonly queryDelaysMs?: { readonly queued?: number; readonly running?: number };
  /** Faults active from the start; change them later through `emulator.faults`. */
  readonly faults?: Partial<AthenaEmulatorFaults>;
  /** Region reported to clients; default us-east-1. */
  readonly region?: string;
}

/** One request the emulator answered. */
export interface AthenaEmulatorCall {
  /** `StartQueryExecution`, `GetQueryExecution`, …, `GetObject`, `HeadObject`. */
  readonly operation: string;
  readonly at: Date;
  readonly status: number;
  /** The access key id the request was signed with (an assumed role's: {@link AthenaEmulator.assumedRoles}). */
  readonly accessKeyId?: string;
}

/** A running emulator. */
export interface AthenaEmulator {
  /** `http://127.0.0.1:PORT`: the endpoint of both the Athena and the S3 client. */
  readonly endpoint: string;
  readonly region: string;
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string };
  /** Live fault switches. */
  readonly faults: AthenaEmulatorFaults;
  /** Every request answered, in order. */
  readonly calls: AthenaEmulatorCall[];
  /** The roles assumed through STS AssumeRole, in order, each with the access key id it handed out. */
  readonly assumedRoles: AssumedRole[];
  /** Where result files are written. */
  readonly resultsDir: string;
  /**
   * Closes the server, cancels running queries (a start still parsing runs none), closes DuckDB's
   * connections and then its instance; removes a temp results dir.
   */
  stop(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('content-type', AMZ_JSON_1_1);
  res.setHeader('content-length', Buffer.byteLength(text));
  res.end(text);
}

/** Starts the emulator. Resolves once it listens. */
export async function startAthenaEmulator(options: AthenaEmulatorOptions): Promise<AthenaEmulator> {
  const workgroups: Record<string, WorkgroupConfig> = { [PRIMARY_WORKGROUP]: {}, ...options.workgroups };
  const buckets: string[] = [];
  for (const [name, wg] of Object.entries(workgroups)) {
    if (!wg.outputLocation) continue;
    const s3 = parseS3Location(wg.outputLocation);
    if (!s3)
      throw new Error(
        `workgroups.${name}.outputLocation: expected s3://bucket/prefix/, got ${wg.outputLocation}`,
      );
    buckets.push(s3.bucket);
  }
  const ownResultsDir = options.resultsDir === undefined;
  const resultsDir =
    options.resultsDir ?? (await mkdtemp(path.join(os.tmpdir(), 'athena-emulator-results-')));
  let instance: DuckDBInstance | undefined;
  try {
    await mkdir(resultsDir, { recursive: true });
    // The workgroups' buckets exist from the start, so HeadObject/GetObject there answer NoSuchKey.
    for (const bucket of buckets) await mkdir(path.join(resultsDir, bucket), { recursive: true });
    // `/` of two integers is an integer, truncated toward zero, as in Trino (DuckDB's own `/`
    // gives a double: `7 / 2` would be 3.5 here and 3 in Athena).
    instance = await DuckDBInstance.create(':memory:', { integer_division: 'true' });
    return await serve(options, { instance, workgroups, resultsDir, ownResultsDir });
  } catch (err) {
    // A start that fails (an unreadable data dir, a port in use) leaves nothing behind: DuckDB is
    // closed, not left to the garbage collector, and a temp results dir is removed.
    instance?.closeSync();
    if (ownResultsDir) await rm(resultsDir, { recursive: true, force: true });
    throw err;
  }
}

/** The emulator over a new DuckDB instance: its catalog, query engine and HTTP server. */
async function serve(
  options: AthenaEmulatorOptions,
  made: {
    readonly instance: DuckDBInstance;
    readonly workgroups: Record<string, WorkgroupConfig>;
    readonly resultsDir: string;
    readonly ownResultsDir: boolean;
  },
): Promise<AthenaEmulator> {
  const { instance, workgroups, resultsDir, ownResultsDir } = made;
  const region = options.region ?? DEFAULT_REGION;
  const faults: AthenaEmulatorFaults = { ...NO_FAULTS, ...options.faults };
  const calls: AthenaEmulatorCall[] = [];
  const assumedRoles: AssumedRole[] = [];
  const objects = new Map<string, StoredObject>();

  const setup = await instance.connect();
  const catalog = new DataCatalog(options.dataDir);
  try {
    await setup.run(`ATTACH ':memory:' AS ${ATHENA_CATALOG}`);
    for (const sql of TRINO_MACROS_SQL) await setup.run(sql);
    await catalog.sync(setup); // fail fast on an unreadable data dir
  } finally {
    setup.closeSync();
  }
  const engine = new QueryEngine({
    instance,
    catalog,
    resultsDir,
    workgroups,
    queryDelaysMs: {
      queued: options.queryDelaysMs?.queued ?? 0,
      running: options.queryDelaysMs?.running ?? 0,
    },
    faults,
    objects,
  });

  const athena = async (operation: string, input: Record<string, unknown>): Promise<unknown> => {
    switch (operation) {
      case 'StartQueryExecution':
        return engine.startQueryExecution(input);
      case 'GetQueryExecution':
        return engine.getQueryExecution(input);
      case 'GetQueryResults':
        return engine.getQueryResults(input);
      case 'StopQueryExecution':
        return engine.stopQueryExecution(input);
      case 'GetWorkGroup':
        return engine.getWorkGroup(input);
      default:
        throw new AthenaApiError(
          'UnknownOperationException',
          `The Athena emulator does not implement ${operation}; it implements StartQueryExecution, GetQueryExecution, GetQueryResults, StopQueryExecution and GetWorkGroup`,
        );
    }
  };

  const handleAthena = async (req: IncomingMessage, res: ServerResponse, target: string): Promise<string> => {
    res.setHeader('x-amzn-requestid', randomUUID());
    const operation = target.startsWith(ATHENA_TARGET_PREFIX)
      ? target.slice(ATHENA_TARGET_PREFIX.length)
      : target;
    try {
      if (req.method !== 'POST' || !target.startsWith(ATHENA_TARGET_PREFIX)) {
        throw new AthenaApiError('UnknownOperationException', `Unknown operation ${req.method} ${target}`);
      }
      const text = await readBody(req);
      let input: unknown;
      try {
        input = text ? JSON.parse(text) : {};
      } catch {
        throw new AthenaApiError('SerializationException', 'The request body is not valid JSON');
      }
      if (typeof input !== 'object' || input === null || Array.isArray(input)) {
        throw new AthenaApiError('SerializationException', 'The request body must be a JSON object');
      }
      if (faults.athenaLatencyMs > 0) {
        await delayWhileOpen(faults.athenaLatencyMs, res);
        // The client gave up while the call was held: nothing to answer.
        if (res.destroyed || req.socket.destroyed) return operation;
      }
      if (faults.throttle > 0) {
        faults.throttle -= 1;
        throw new AthenaApiError('ThrottlingException', 'Rate exceeded');
      }
      if (operation === 'StartQueryExecution' && faults.tooManyQueries > 0) {
        faults.tooManyQueries -= 1;
        throw new AthenaApiError('TooManyRequestsException', TOO_MANY_QUERIES_MESSAGE, {
          reason: 'CONCURRENT_QUERY_LIMIT_EXCEEDED',
        });
      }
      sendJson(res, 200, await athena(operation, input as Record<string, unknown>));
    } catch (err) {
      if (err instanceof AthenaApiError) {
        sendJson(res, err.status, err.toJSON());
      } else {
        const message = err instanceof Error ? err.message : String(err);
        sendJson(res, 500, { __type: 'InternalServerException', Message: message });
      }
    }
    return operation;
  };

  const server = createServer((req, res) => {
    const target = req.headers['x-amz-target'];
    const started = new Date();
    const handled =
      typeof target === 'string'
        ? handleAthena(req, res, target)
        : isStsRequest(req)
          ? readBody(req).then((body) =>
              handleStsRequest(body, res, { now: () => new Date(), assumed: assumedRoles }),
            )
          : handleS3Request(req, res, { resultsDir, faults, objects }).then(() => s3OperationName(req));
    void handled
      .catch((err: unknown) => {
        if (!res.headersSent) sendJson(res, 500, { __type: 'InternalServerException', Message: String(err) });
        return typeof target === 'string' ? target : s3OperationName(req);
      })
      .then((operation) => {
        const accessKeyId = signingKeyId(req);
        calls.push({
          operation,
          at: started,
          status: res.statusCode,
          ...(accessKeyId ? { accessKeyId } : {}),
        });
      });
  });
  // Keep-alive sockets would hold stop() open; the SDK reconnects as needed.
  server.keepAliveTimeout = 1000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  let stopped: Promise<void> | undefined;
  return {
    endpoint: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${address.port}`,
    region,
    credentials: { ...EMULATOR_CREDENTIALS },
    faults,
    calls,
    assumedRoles,
    resultsDir,
    stop: () => {
      stopped ??= (async () => {
        // In this order: no new request; the queries cancelled and every DuckDB connection (with
        // its prepared statements) closed, including a StartQueryExecution's still parsing when
        // the request's socket was closed; then the instance.
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        await engine.close();
        instance.closeSync();
        if (ownResultsDir) await rm(resultsDir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}
