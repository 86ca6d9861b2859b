/**
 * `npm run bench -- athena-emulator [--rows N]`: the Athena emulator on a large table.
 *
 * Generates an N-row CSV table (default 1,000,000; mixed types, some NULLs) in a temp dir, runs
 * `SELECT *` over it through @aws-sdk/client-athena against the emulator (same process), then
 * streams the result file back with @aws-sdk/client-s3 GetObject counting bytes and rows. The
 * reference is DuckDB itself writing the same rows to CSV (`COPY … TO`), so the ratio shows what
 * the emulator's own formatting and streaming cost. Reports time and RSS (before, after, and the
 * peak sampled every 20 ms), and prints one JSON object as its last line.
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdtemp, mkdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { AthenaClient, GetQueryExecutionCommand, StartQueryExecutionCommand } from '@aws-sdk/client-athena';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DuckDBInstance } from '@duckdb/node-api';
import { athenaClientConfig, s3ClientConfig, startAthenaEmulator } from '../emulators/athena';

const MB = 1024 * 1024;
const SEGMENTS = ['gold', 'silver', 'bronze', ''];

function parseRows(argv: readonly string[]): number {
  const i = argv.indexOf('--rows');
  if (i === -1) return 1_000_000;
  const n = Number(argv[i + 1]);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`--rows: expected a positive integer, got ${argv[i + 1]}`);
  return n;
}

/** Writes the table in Athena's CSV dialect, streaming, 10,000 rows a write. */
async function generateTable(file: string, rows: number): Promise<void> {
  const out = createWriteStream(file);
  out.write('"id","email","lifetime_value","last_order_at","active","segment"\n');
  const base = Date.UTC(2024, 0, 1);
  let batch = '';
  for (let i = 1; i <= rows; i++) {
    const ts = new Date(base + i * 37_000).toISOString().replace('T', ' ').slice(0, 23);
    const segment = i % 10 === 0 ? '' : `"${SEGMENTS[i % SEGMENTS.length]}"`; // every 10th NULL
    batch += `"${i}","user${i}@example.com","${(i % 100_000) / 100}","${ts}","${i % 3 === 0}",${segment}\n`;
    if (i % 10_000 === 0 || i === rows) {
      if (!out.write(batch)) await once(out, 'drain');
      batch = '';
    }
  }
  out.end();
  await once(out, 'finish');
}

/** Samples RSS every 20 ms while `work` runs; returns its result and the peak. */
async function withPeakRss<T>(work: () => Promise<T>): Promise<{ value: T; peakRssMb: number; ms: number }> {
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 20);
  const started = performance.now();
  try {
    const value = await work();
    peak = Math.max(peak, process.memoryUsage.rss());
    return { value, peakRssMb: peak / MB, ms: performance.now() - started };
  } finally {
    clearInterval(timer);
  }
}

const round = (n: number, digits = 1): number => Math.round(n * 10 ** digits) / 10 ** digits;

/** Runs the benchmark and prints its figures; the last line is one JSON object. */
export async function run(argv: string[]): Promise<void> {
  const rows = parseRows(argv);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-athena-emulator-'));
  const dataDir = path.join(dir, 'data');
  await mkdir(path.join(dataDir, 'bench'), { recursive: true });
  const table = path.join(dataDir, 'bench', 'customers.csv');
  try {
    const generated = await withPeakRss(() => generateTable(table, rows));
    const tableBytes = (await stat(table)).size;
    process.stdout.write(
      `generated ${rows} rows (${round(tableBytes / MB)} MB) in ${round(generated.ms / 1000, 2)} s\n`,
    );
    const query = 'SELECT * FROM customers';

    // Reference: DuckDB alone writes the same rows to CSV.
    const reference = await withPeakRss(async () => {
      const instance = await DuckDBInstance.create(':memory:');
      const connection = await instance.connect();
      await connection.run(
        `COPY (SELECT * FROM read_csv('${table}', header = true, allow_quoted_nulls = false)) ` +
          `TO '${path.join(dir, 'reference.csv')}' (HEADER, FORCE_QUOTE *)`,
      );
      connection.closeSync();
      instance.closeSync();
    });

    const rssBeforeMb = process.memoryUsage.rss() / MB;
    const emulator = await startAthenaEmulator({
      dataDir,
      workgroups: { primary: { outputLocation: 's3://bench-results/athena/' } },
    });
    const athena = new AthenaClient(athenaClientConfig(emulator));
    const s3 = new S3Client(s3ClientConfig(emulator));
    try {
      const queried = await withPeakRss(async () => {
        const { QueryExecutionId } = await athena.send(
          new StartQueryExecutionCommand({
            QueryString: query,
            QueryExecutionContext: { Database: 'bench' },
          }),
        );
        for (;;) {
          const { QueryExecution } = await athena.send(new GetQueryExecutionCommand({ QueryExecutionId }));
          const state = QueryExecution?.Status?.State;
          if (state === 'SUCCEEDED') return QueryExecution;
          if (state === 'FAILED' || state === 'CANCELLED') {
            throw new Error(`query ${state}: ${QueryExecution?.Status?.StateChangeReason ?? ''}`);
          }
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      });
      const location = /^s3:\/\/([^/]+)\/(.+)$/.exec(
        queried.value?.ResultConfiguration?.OutputLocation ?? '',
      );
      if (!location?.[1] || !location[2]) throw new Error('no result location');
      const downloaded = await withPeakRss(async () => {
        const object = await s3.send(new GetObjectCommand({ Bucket: location[1], Key: location[2] }));
        let bytes = 0;
        let lines = 0;
        for await (const chunk of object.Body as Readable) {
          const buffer = chunk as Buffer;
          bytes += buffer.length;
          for (let i = buffer.indexOf(10); i !== -1; i = buffer.indexOf(10, i + 1)) lines++;
        }
        return { bytes, dataRows: lines - 1 };
      });
      if (downloaded.value.dataRows !== rows) {
        throw new Error(`streamed ${downloaded.value.dataRows} rows, expected ${rows}`);
      }
      const rssAfterMb = process.memoryUsage.rss() / MB;
      const figures = {
        benchmark: 'athena-emulator',
        machine: `${os.cpus().length} cores, Node ${process.versions.node}`,
        rows,
        tableMb: round(tableBytes / MB),
        resultMb: round(downloaded.value.bytes / MB),
        querySeconds: round(queried.ms / 1000, 2),
        getObjectSeconds: round(downloaded.ms / 1000, 2),
        rowsPerSecondQuery: Math.round(rows / (queried.ms / 1000)),
        referenceDuckDbCopySeconds: round(reference.ms / 1000, 2),
        queryVsReference: round(queried.ms / reference.ms, 2),
        rssBeforeMb: round(rssBeforeMb),
        peakRssQueryMb: round(queried.peakRssMb),
        peakRssGetObjectMb: round(downloaded.peakRssMb),
        rssAfterMb: round(rssAfterMb),
        dataScannedBytes: queried.value?.Statistics?.DataScannedInBytes,
      };
      process.stdout.write(
        `query ${figures.querySeconds} s (DuckDB COPY alone ${figures.referenceDuckDbCopySeconds} s), ` +
          `GetObject ${figures.getObjectSeconds} s for ${figures.resultMb} MB, ` +
          `RSS ${figures.rssBeforeMb} → peak ${Math.max(figures.peakRssQueryMb, figures.peakRssGetObjectMb)} → ${figures.rssAfterMb} MB\n`,
      );
      process.stdout.write(`${JSON.stringify(figures)}\n`);
    } finally {
      athena.destroy();
      s3.destroy();
      await emulator.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
