/**
 * `npm run bench -- extract [--rows N]`: the extract leg at volume, measured side by side with
 * `psql \copy` in the same run.
 *
 * Three kinds of process, so that each one's memory is its own:
 * - this one (the orchestrator): starts the embedded PostgreSQL, spawns the others, runs the
 *   `psql \copy` references and prints the figures;
 * - an emulator process: the Salesforce emulator seeded with N leads through its store (not the
 *   API) and the Athena emulator over an N-row CSV table;
 * - a loader process: the extract leg itself, as the Lambdas would run it — Prepare, the
 *   Salesforce extract (a Bulk API 2.0 query job: create, poll, result pages by locator, streamed
 *   into COPY, merged) and the Athena load (the result file streamed from S3 into COPY, swapped
 *   in) — with its peak RSS sampled.
 * The same is then run at a tenth of the size (at least 1,000 rows) in fresh processes, for the
 * ratio of peak memory between the two sizes: flat when the load streams.
 *
 * Figures (last line, one JSON object):
 * - `salesforceRateVsPsql`, `athenaRateVsPsql`: rows/s of the extract's COPY phase (the source
 *   streamed through the connector into COPY of the staging table) over rows/s of `psql \copy`
 *   of the very same CSV (for Salesforce the converted Bulk result, fetched once more and written
 *   to a file; for Athena the result file) into an identical empty UNLOGGED table;
 * - `mergeOverCopy`: the Salesforce load's merge step into the empty target (the first load: one
 *   INSERT … SELECT) over that bare `psql \copy`; `remergeOverCopy`: the merge proper, of a
 *   second, full read of the same rows (all unchanged) into the loaded target, over the same;
 * - `peakRssMb` of the loader, `rssRatio1Mto100k` (N against N/10);
 * - `salesforceApiCalls` (every counted call of the run, Prepare included, from the emulator's
 *   call log), `athenaApiCalls` and `s3Reads` (from the Athena emulator's request log).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { AthenaClient } from '@aws-sdk/client-athena';
import { S3Client } from '@aws-sdk/client-s3';
import { Client } from 'pg';
import { athenaClientConfig, s3ClientConfig, startAthenaEmulator } from '../emulators/athena';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../emulators/postgres/embedded';
import { startSalesforceEmulator } from '../emulators/salesforce';
import { parseConfig, type PipelineConfig } from '../lambdas/config';
import { createAthenaConnector, parseS3Url } from '../lambdas/connectors/athena';
import {
  createPool,
  createStagingTable,
  pgColumnForAthenaColumn,
  pgColumnForSalesforceField,
  withClient,
  type AthenaColumnInfo,
  type PgColumn,
} from '../lambdas/connectors/postgres';
import { connectSalesforce, type SalesforceConnector } from '../lambdas/connectors/salesforce';
import { loadAthena, prepare, resolveFields, runSalesforceTask, type CoreDeps } from '../lambdas/core';
import { systemClock } from '../lambdas/shared/clock';
import { createMemoryLogger, silentLogger } from '../lambdas/shared/logging';
import { MB, option } from './_common';

const PSQL_CANDIDATES = ['/usr/bin/psql', '/usr/local/bin/psql'];
/** Lines a child writes for the orchestrator start with this; everything else is its log. */
const MESSAGE_PREFIX = '@@bench ';
const LEAD_FIELDS = [
  'Id',
  'FirstName',
  'LastName',
  'Company',
  'Email',
  'AnnualRevenue',
  'NumberOfEmployees',
  'LeadScore__c',
  'SystemModstamp',
  'IsDeleted',
];
const ATHENA_QUERY = 'SELECT * FROM leads_lake';
const SEGMENTS = ['enterprise', 'mid-market', 'smb', 'startup'];

function stringOption(argv: string[], name: string): string {
  const at = argv.indexOf(`--${name}`);
  const value = at >= 0 ? argv[at + 1] : undefined;
  if (!value) throw new Error(`--${name} is required`);
  return value;
}

const round = (n: number, digits = 2): number => Math.round(n * 10 ** digits) / 10 ** digits;
const send = (message: unknown): void => {
  process.stdout.write(MESSAGE_PREFIX + JSON.stringify(message) + '\n');
};
const log = (text: string): void => {
  process.stderr.write(`[extract bench ${process.pid}] ${text}\n`);
};

// ---------------------------------------------------------------------------------------------
// The emulator process.

/** What the emulator process tells the others. */
interface EmulatorInfo {
  readonly loginUrl: string;
  readonly username: string;
  readonly password: string;
  readonly securityToken: string;
  readonly apiVersion: string;
  readonly athenaEndpoint: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly resultsDir: string;
}

/** The N-row table of the Athena emulator, in Athena's CSV dialect. */
async function writeLakeTable(file: string, rows: number): Promise<void> {
  async function* lines(): AsyncGenerator<string> {
    yield '"id","email","lifetime_value","last_order_at","active","segment"\n';
    const base = Date.UTC(2024, 0, 1);
    let chunk = '';
    for (let i = 1; i <= rows; i += 1) {
      const ts = new Date(base + i * 37_000).toISOString().replace('T', ' ').slice(0, 23);
      const segment = i % 10 === 0 ? '' : `"${SEGMENTS[i % SEGMENTS.length]}"`;
      chunk += `"${i}","user${i}@example.com","${(i % 100_000) / 100}","${ts}","${i % 3 === 0}",${segment}\n`;
      if (chunk.length > 64 * 1024) {
        yield chunk;
        chunk = '';
      }
    }
    if (chunk) yield chunk;
  }
  await pipeline(lines, createWriteStream(file));
}

async function emulatorRole(argv: string[]): Promise<void> {
  const rows = option(argv, 'rows', 1_000_000);
  const dir = stringOption(argv, 'dir');
  await mkdir(path.join(dir, 'bench'), { recursive: true });
  await writeLakeTable(path.join(dir, 'bench', 'leads_lake.csv'), rows);
  const sf = await startSalesforceEmulator({ dailyApiLimit: 1_000_000 });
  const started = performance.now();
  const BATCH = 10_000;
  for (let start = 0; start < rows; start += BATCH) {
    const batch: Record<string, unknown>[] = [];
    for (let i = start; i < Math.min(rows, start + BATCH); i += 1) {
      batch.push({
        FirstName: i % 11 === 0 ? null : `Ann ${i % 977}`,
        LastName: `Lead, "${i}"`,
        Company: `Company ${i % 5000}`,
        Email: `lead${i}@example.test`,
        AnnualRevenue: (i % 100_000) * 1000,
        NumberOfEmployees: i % 50_000,
        LeadScore__c: i % 100,
      });
    }
    sf.store.seed('Lead', batch);
  }
  log(`seeded ${rows} leads in ${round((performance.now() - started) / 1000)} s`);
  const athena = await startAthenaEmulator({
    dataDir: dir,
    workgroups: { primary: { outputLocation: 's3://bench-results/extract/' } },
  });
  const info: EmulatorInfo = {
    loginUrl: sf.loginUrl,
    username: sf.credentials.username,
    password: sf.credentials.password,
    securityToken: sf.credentials.securityToken,
    apiVersion: sf.apiVersion,
    athenaEndpoint: athena.endpoint,
    region: athena.region,
    accessKeyId: athena.credentials.accessKeyId,
    secretAccessKey: athena.credentials.secretAccessKey,
    resultsDir: athena.resultsDir,
  };
  send({ ready: info });
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'stats') {
      const athenaCalls = athena.calls.filter(
        (c) => c.operation !== 'GetObject' && c.operation !== 'HeadObject',
      );
      send({
        stats: {
          salesforceApiCalls: sf.calls.count({ counted: true }),
          salesforceCalls: Object.fromEntries(
            [...new Set(sf.calls.all().map((c) => c.operation))].map((op) => [
              op,
              sf.calls.count({ operation: op }),
            ]),
          ),
          athenaApiCalls: athenaCalls.length,
          athenaCalls: athenaCalls.map((c) => c.operation),
          s3Reads: athena.calls.filter((c) => c.operation === 'GetObject').length,
        },
      });
    } else if (line === 'stop') {
      break;
    }
  }
  await athena.stop();
  await sf.stop();
  send({ stopped: true });
}

// ---------------------------------------------------------------------------------------------
// The loader process.

function benchConfig(): PipelineConfig {
  return parseConfig({
    name: 'extract-bench',
    salesforce: { secret: 'bench/salesforce' },
    athena: { database: 'bench', outputLocation: 's3://bench-results/extract/' },
    postgres: { secret: 'bench/postgres', ssl: { mode: 'disable' } },
    extract: [
      { from: 'salesforce', object: 'Lead', fields: LEAD_FIELDS, table: 'sf_lead', deletes: 'flag' },
      { from: 'athena', name: 'leads_lake', query: ATHENA_QUERY, table: 'athena_leads' },
    ],
  });
}

function signIn(info: EmulatorInfo): Promise<SalesforceConnector> {
  return connectSalesforce({
    secret: {
      loginUrl: info.loginUrl,
      username: info.username,
      password: info.password,
      securityToken: info.securityToken,
    },
    apiVersion: info.apiVersion,
    logger: silentLogger,
  });
}

function athenaClients(info: EmulatorInfo): { athena: AthenaClient; s3: S3Client } {
  const endpoint = {
    endpoint: info.athenaEndpoint,
    region: info.region,
    credentials: { accessKeyId: info.accessKeyId, secretAccessKey: info.secretAccessKey },
  };
  return {
    athena: new AthenaClient(athenaClientConfig(endpoint)),
    s3: new S3Client(s3ClientConfig(endpoint)),
  };
}

async function loaderRole(): Promise<void> {
  const info = JSON.parse(process.env.BENCH_EMULATORS ?? '') as EmulatorInfo;
  const url = process.env.BENCH_DATABASE_URL ?? '';
  let peak = process.memoryUsage.rss();
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 10);
  const config = benchConfig();
  const logger = createMemoryLogger('info');
  const pool = createPool({ url }, { ssl: { mode: 'disable' } });
  const clients = athenaClients(info);
  const sf = await signIn(info);
  const deps: CoreDeps = {
    config,
    pg: pool,
    salesforce: sf,
    athena: createAthenaConnector({
      ...clients,
      logger,
      workgroup: 'primary',
      database: 'bench',
      outputLocation: 's3://bench-results/extract/',
    }),
    logger,
    // The real waits: the Bulk job's first poll after 2 s, Athena's after 2 s (they cost calls).
    clock: systemClock,
  };
  const startedAt = performance.now();
  const prepared = await prepare({ input: {} }, deps);
  const salesforce = await runSalesforceTask(deps, prepared.runId, 'Lead', false);
  const athena = await loadAthena({ runId: prepared.runId, task: 'leads_lake' }, deps);
  const totalMs = performance.now() - startedAt;
  const maxRss = process.resourceUsage().maxRSS * 1024;
  const loaded = (message: string) => logger.records.find((r) => r.message === message)?.attributes ?? {};
  const sfTimes = loaded('Salesforce extract loaded');
  const athenaTimes = loaded('Athena extract loaded');
  send({
    result: {
      salesforce,
      athena,
      totalMs: Math.round(totalMs),
      salesforceCopyMs: sfTimes.copyMs,
      salesforceMergeMs: sfTimes.mergeMs,
      athenaCopyMs: athenaTimes.copyMs,
      athenaSwapMs: athenaTimes.refreshMs,
      peakRssMb: Math.round(Math.max(peak, maxRss) / MB),
    },
  });
  // The orchestrator reads the emulators' call logs, then asks for a second, full read: every
  // row again, all unchanged — the merge proper (the first load was an INSERT into an empty table).
  const [next] = (await once(createInterface({ input: process.stdin }), 'line')) as [string];
  if (next === 'rerun') {
    logger.records.length = 0;
    const again = await prepare({ input: { full: true, tasks: ['Lead'] } }, deps);
    const rerun = await runSalesforceTask(deps, again.runId, 'Lead', true);
    const times = loaded('Salesforce extract loaded');
    send({ rerun: { salesforce: rerun, copyMs: times.copyMs, mergeMs: times.mergeMs } });
  }
  clearInterval(sampler);
  await pool.end();
  clients.athena.destroy();
  clients.s3.destroy();
}

// ---------------------------------------------------------------------------------------------
// The orchestrator.

interface Child {
  readonly process: ChildProcess;
  /** The next message of the given kind. */
  next<T>(kind: string): Promise<T>;
  tell(line: string): void;
  exited: Promise<number | null>;
}

function spawnRole(role: string, args: string[], env: Record<string, string> = {}): Child {
  const child = spawn(
    process.execPath,
    ['--max-old-space-size=8192', '--import', 'tsx', __filename, '--role', role, ...args],
    { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...env } },
  );
  const waiting = new Map<string, (value: unknown) => void>();
  const queued = new Map<string, unknown[]>();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const lines = createInterface({ input: child.stdout as NonNullable<typeof child.stdout> });
  lines.on('line', (line) => {
    if (!line.startsWith(MESSAGE_PREFIX)) {
      process.stderr.write(line + '\n');
      return;
    }
    const message = JSON.parse(line.slice(MESSAGE_PREFIX.length)) as Record<string, unknown>;
    for (const [kind, value] of Object.entries(message)) {
      const resolve = waiting.get(kind);
      if (resolve) {
        waiting.delete(kind);
        resolve(value);
      } else {
        queued.set(kind, [...(queued.get(kind) ?? []), value]);
      }
    }
  });
  return {
    process: child,
    exited,
    tell: (line) => child.stdin?.write(line + '\n'),
    next<T>(kind: string): Promise<T> {
      const q = queued.get(kind);
      if (q && q.length > 0) return Promise.resolve(q.shift() as T);
      return new Promise<T>((resolve, reject) => {
        waiting.set(kind, resolve as (value: unknown) => void);
        void exited.then((code) =>
          reject(new Error(`the ${role} process exited (${code}) before sending "${kind}"`)),
        );
      });
    },
  };
}

function psqlPath(): string {
  const found = PSQL_CANDIDATES.find((p) => existsSync(p));
  if (!found) throw new Error(`psql not found at ${PSQL_CANDIDATES.join(' or ')}`);
  return found;
}

/** `psql \copy` of a CSV file into a new UNLOGGED table shaped like the extract's staging table; ms. */
async function psqlCopy(
  url: string,
  table: string,
  columns: readonly PgColumn[],
  file: string,
): Promise<number> {
  const pool = createPool({ url }, { ssl: { mode: 'disable' } });
  try {
    await withClient(pool, (client) =>
      createStagingTable(client, { schema: 'public', staging: table, columns }),
    );
  } finally {
    await pool.end();
  }
  const target = new URL(url);
  const cols = columns.map((c) => `"${c.name}"`).join(', ');
  const started = performance.now();
  await promisify(execFile)(
    psqlPath(),
    [
      '-h', target.hostname, '-p', target.port, '-U', decodeURIComponent(target.username),
      '-d', target.pathname.slice(1), '-v', 'ON_ERROR_STOP=1',
      '-c', `\\copy "public"."${table}" (${cols}) FROM '${file}' WITH (FORMAT csv, HEADER true)`,
    ], // prettier-ignore
    { env: { ...process.env, PGPASSWORD: decodeURIComponent(target.password), PGSSLMODE: 'disable' } },
  );
  return performance.now() - started;
}

interface LoaderResult {
  readonly salesforce: { rows: number; api: string; apiCalls: number };
  readonly athena: { rows: number; queryExecutionId: string; apiCalls: number; s3Reads: number };
  readonly totalMs: number;
  readonly salesforceCopyMs: number;
  readonly salesforceMergeMs: number;
  readonly athenaCopyMs: number;
  readonly athenaSwapMs: number;
  readonly peakRssMb: number;
}

interface RerunResult {
  readonly salesforce: { rows: number; updated: number; inserted: number };
  readonly copyMs: number;
  readonly mergeMs: number;
}

interface EmulatorStats {
  readonly salesforceApiCalls: number;
  readonly salesforceCalls: Record<string, number>;
  readonly athenaApiCalls: number;
  readonly athenaCalls: string[];
  readonly s3Reads: number;
}

async function createDatabase(serverUrl: string, name: string): Promise<string> {
  const admin = new Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** One size: emulators and loader in their own processes; with the references when asked. */
async function measureSize(
  serverUrl: string,
  rows: number,
  withReferences: boolean,
): Promise<{
  loader: LoaderResult;
  stats: EmulatorStats;
  rerun?: RerunResult;
  references?: { sfPsqlMs: number; athenaPsqlMs: number; sfSourceMs: number };
}> {
  const dir = await mkdtemp(path.join(tmpdir(), 'roundtrip-extract-bench-'));
  const emulators = spawnRole('emulators', ['--rows', String(rows), '--dir', dir]);
  try {
    const info = await emulators.next<EmulatorInfo>('ready');
    const url = await createDatabase(serverUrl, `extract_bench_${rows}`);
    log(`${rows} rows: loading`);
    const loaderProcess = spawnRole('loader', [], {
      BENCH_EMULATORS: JSON.stringify(info),
      BENCH_DATABASE_URL: url,
    });
    const loader = await loaderProcess.next<LoaderResult>('result');
    emulators.tell('stats');
    const stats = await emulators.next<EmulatorStats>('stats');
    log(`${rows} rows: loaded in ${round(loader.totalMs / 1000)} s, peak RSS ${loader.peakRssMb} MB`);
    if (!withReferences) {
      loaderProcess.tell('exit');
      await loaderProcess.exited;
      return { loader, stats };
    }
    loaderProcess.tell('rerun');
    const rerun = await loaderProcess.next<RerunResult>('rerun');
    await loaderProcess.exited;
    log(`${rows} rows: full re-read merged in ${round(rerun.mergeMs / 1000)} s`);

    // The references, in this process (its memory is not measured).
    const sf = await signIn(info);
    const describe = await sf.describe('Lead');
    const { fields } = resolveFields({ object: 'Lead', fields: LEAD_FIELDS, name: 'Lead' }, describe.fields);
    const sfColumns = fields.map((f) =>
      pgColumnForSalesforceField(describe.fields.find((d) => d.name === f)!),
    );
    const jobId = await sf.startBulkQuery(`SELECT ${fields.join(', ')} FROM Lead`, { includeDeleted: true });
    await sf.waitForBulkQuery(jobId, { sleep: (ms) => new Promise((r) => setTimeout(r, ms / 10)) });
    const sfFile = path.join(dir, 'salesforce-bulk.csv');
    // The source alone: the same pages read through the connector into a file, nothing loaded.
    const dumpStarted = performance.now();
    await pipeline(sf.streamBulkQueryResults(jobId, fields), createWriteStream(sfFile));
    const sfSourceMs = performance.now() - dumpStarted;
    log(`Salesforce reference CSV: ${round((await stat(sfFile)).size / MB)} MB`);
    const sfPsqlMs = await psqlCopy(url, 'psql_sf_lead', sfColumns, sfFile);

    const clients = athenaClients(info);
    const athena = createAthenaConnector({
      ...clients,
      logger: silentLogger,
      workgroup: 'primary',
      database: 'bench',
    });
    const described = await athena.describeResult(await athena.getQuery(loader.athena.queryExecutionId));
    const { bucket, key } = parseS3Url(described.outputLocation);
    const athenaFile = path.join(info.resultsDir, bucket, key);
    const athenaColumns = described.columns.map((c) => pgColumnForAthenaColumn(c as AthenaColumnInfo));
    const athenaPsqlMs = await psqlCopy(url, 'psql_athena_leads', athenaColumns, athenaFile);
    clients.athena.destroy();
    clients.s3.destroy();
    return { loader, stats, rerun, references: { sfPsqlMs, athenaPsqlMs, sfSourceMs } };
  } finally {
    emulators.tell('stop');
    await emulators.exited;
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs the benchmark; see the module comment. */
export async function run(argv: string[]): Promise<void> {
  const rows = option(argv, 'rows', 1_000_000);
  const smallRows = Math.max(1_000, Math.round(rows / 10));
  let server: EmbeddedPostgres | undefined;
  const serverUrl = process.env.DATABASE_URL ?? (server = await startEmbeddedPostgres()).url;
  try {
    const main = await measureSize(serverUrl, rows, true);
    const small = await measureSize(serverUrl, smallRows, false);
    const refs = main.references!;
    const { loader, stats } = main;
    const rate = (n: number, ms: number): number => n / (ms / 1000);
    const figures = {
      rows,
      machine: { cores: (await import('node:os')).cpus().length, node: process.version },
      salesforceRows: loader.salesforce.rows,
      athenaRows: loader.athena.rows,
      salesforceApi: loader.salesforce.api,
      salesforceCopyMs: loader.salesforceCopyMs,
      salesforceMergeMs: loader.salesforceMergeMs,
      salesforcePsqlCopyMs: Math.round(refs.sfPsqlMs),
      athenaCopyMs: loader.athenaCopyMs,
      athenaSwapMs: loader.athenaSwapMs,
      athenaPsqlCopyMs: Math.round(refs.athenaPsqlMs),
      salesforceRowsPerSecond: Math.round(rate(rows, loader.salesforceCopyMs)),
      psqlSalesforceRowsPerSecond: Math.round(rate(rows, refs.sfPsqlMs)),
      salesforceRateVsPsql: round(rate(rows, loader.salesforceCopyMs) / rate(rows, refs.sfPsqlMs)),
      // How fast the emulator alone serves the pages (connector → file, nothing loaded).
      salesforceSourceOnlyMs: Math.round(refs.sfSourceMs),
      salesforceSourceRowsPerSecond: Math.round(rate(rows, refs.sfSourceMs)),
      athenaRowsPerSecond: Math.round(rate(rows, loader.athenaCopyMs)),
      psqlAthenaRowsPerSecond: Math.round(rate(rows, refs.athenaPsqlMs)),
      athenaRateVsPsql: round(rate(rows, loader.athenaCopyMs) / rate(rows, refs.athenaPsqlMs)),
      mergeOverCopy: round(loader.salesforceMergeMs / refs.sfPsqlMs),
      remergeMs: main.rerun?.mergeMs,
      remergeCopyMs: main.rerun?.copyMs,
      remergeOverCopy: main.rerun ? round(main.rerun.mergeMs / refs.sfPsqlMs) : undefined,
      loaderTotalMs: loader.totalMs,
      peakRssMb: loader.peakRssMb,
      peakRssMbSmall: small.loader.peakRssMb,
      smallRows,
      rssRatio1Mto100k: round(loader.peakRssMb / small.loader.peakRssMb),
      salesforceApiCalls: stats.salesforceApiCalls,
      salesforceCalls: stats.salesforceCalls,
      athenaApiCalls: stats.athenaApiCalls,
      athenaCalls: stats.athenaCalls,
      s3Reads: stats.s3Reads,
    };
    process.stdout.write(JSON.stringify(figures) + '\n');
  } finally {
    await server?.stop();
  }
}

/** Child process entry: `--role emulators|loader`. */
if (require.main === module) {
  const argv = process.argv.slice(2);
  const role = argv[argv.indexOf('--role') + 1];
  const work = role === 'emulators' ? emulatorRole(argv) : role === 'loader' ? loaderRole() : run(argv);
  work.then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
