/**
 * `npm run bench -- extract-load [--rows N] [--keep]`: the loader against a real PostgreSQL
 * (an embedded server, or the one DATABASE_URL names). Generates an N-row lead CSV (default
 * 1,000,000) in the temp dir, then times:
 * - `copyIntoStaging` of the file (fs stream → COPY FROM STDIN) against `psql \copy` of the same
 *   file into an identical UNLOGGED table: the reference for what the server itself costs;
 * - `mergeStaging` into an empty target (all inserts), then again (all unchanged) — twice each
 *   with `stagedKeys: 'may-repeat'` (the DISTINCT ON sort) and `'unique'` (staging read as it is),
 *   alternating, the best of each kept — then after a copy where every tenth row changed;
 * - a full refresh with `swapInTable`, `delete-insert` against `truncate-insert`;
 * and samples the process RSS while copying, to show that memory stays flat.
 * Prints one JSON object as its last line.
 */
import { execFile } from 'node:child_process';
import { createReadStream, createWriteStream, existsSync, rmSync, statSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../emulators/postgres/embedded';
import { copyIntoStaging, dropStagingTable } from '../lambdas/connectors/postgres/copy';
import { ensureTable } from '../lambdas/connectors/postgres/ddl';
import { mergeStaging, swapInTable, type StagedKeys } from '../lambdas/connectors/postgres/merge';
import { createPool, withClient, withTransaction } from '../lambdas/connectors/postgres/pool';
import { pgColumnForSalesforceField, type PgColumn } from '../lambdas/connectors/postgres/types';
import { MB, option } from './_common';

const PSQL_CANDIDATES = ['/usr/bin/psql', '/usr/local/bin/psql'];

const COLUMNS: PgColumn[] = [
  pgColumnForSalesforceField({ name: 'Id', type: 'id', nillable: false }),
  pgColumnForSalesforceField({ name: 'Company', type: 'string', length: 255 }),
  pgColumnForSalesforceField({ name: 'Email', type: 'email' }),
  pgColumnForSalesforceField({ name: 'AnnualRevenue', type: 'currency', precision: 18, scale: 2 }),
  pgColumnForSalesforceField({ name: 'NumberOfEmployees', type: 'int', digits: 8 }),
  pgColumnForSalesforceField({ name: 'SystemModstamp', type: 'datetime' }),
  pgColumnForSalesforceField({ name: 'IsDeleted', type: 'boolean' }),
];

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const start = process.hrtime.bigint();
  const result = await fn();
  return [result, Math.round(Number(process.hrtime.bigint() - start) / 1e6)];
}

/** A lead-like CSV, every value quoted as Salesforce's Bulk query writes it; `variant` changes every 10th row. */
async function writeCsv(file: string, rows: number, variant: number): Promise<void> {
  async function* lines(): AsyncGenerator<string> {
    yield COLUMNS.map((c) => `"${c.name}"`).join(',') + '\n';
    const base = Date.UTC(2024, 0, 1);
    let chunk = '';
    for (let i = 0; i < rows; i += 1) {
      const changed = variant > 0 && i % 10 === 0 ? variant : 0;
      const id = `00Q${i.toString(36).padStart(15, '0')}`;
      const modstamp = new Date(base + i * 1000 + changed).toISOString();
      chunk += `"${id}","Company ${i % 5000}, ""Inc""","lead${i}@example.com","${(i % 100000) + 0.25 + changed}","${i % 5000}","${modstamp}","${i % 97 === 0}"\n`;
      if (chunk.length > 64 * 1024) {
        yield chunk;
        chunk = '';
      }
    }
    if (chunk) yield chunk;
  }
  await pipeline(Readable.from(lines()), createWriteStream(file));
}

function psqlPath(): string {
  const found = PSQL_CANDIDATES.find((p) => existsSync(p));
  if (!found) throw new Error(`psql not found at ${PSQL_CANDIDATES.join(' or ')}`);
  return found;
}

/** Runs the benchmark; see the module comment. */
export async function run(argv: string[]): Promise<void> {
  const rows = option(argv, 'rows', 1_000_000);
  let server: EmbeddedPostgres | undefined;
  const url = process.env.DATABASE_URL ?? (server = await startEmbeddedPostgres()).url;
  const pool = createPool({ url }, { ssl: { mode: 'disable' }, max: 2 });
  const file = path.join(tmpdir(), `roundtrip-bench-leads-${process.pid}.csv`);
  const changedFile = path.join(tmpdir(), `roundtrip-bench-leads-${process.pid}-changed.csv`);
  const schema = `bench_${process.pid}`;
  try {
    const [, generateMs] = await timed(async () => {
      await writeCsv(file, rows, 0);
      await writeCsv(changedFile, rows, 7);
    });
    const csvBytes = statSync(file).size;
    process.stderr.write(
      `generated ${rows} rows (${Math.round(csvBytes / MB)} MB) twice in ${generateMs} ms\n`,
    );

    await withClient(pool, (c) =>
      ensureTable(c, { schema, table: 'sf_lead', columns: COLUMNS, primaryKey: ['Id'] }),
    );

    // 1. copyIntoStaging from the file, sampling RSS.
    let peakRss = process.memoryUsage().rss;
    const rssBefore = peakRss;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50);
    const copyOnce = (source: string, runId: string) =>
      withTransaction(pool, (c) =>
        copyIntoStaging(c, {
          schema,
          target: 'sf_lead',
          runId,
          columns: COLUMNS,
          source: createReadStream(source),
          format: 'csv',
          header: true,
          quotedEmptyIsNull: true,
        }),
      );
    const [copied, copyMs] = await timed(() => copyOnce(file, 'r1'));
    clearInterval(sampler);
    process.stderr.write(`copyIntoStaging: ${copied.rows} rows in ${copyMs} ms\n`);

    // 2. psql \copy of the same file into an identical UNLOGGED table.
    const reference = 'psql_reference';
    await pool.query(
      `CREATE UNLOGGED TABLE "${schema}"."${reference}" (LIKE "${schema}"."${copied.staging}" INCLUDING ALL)`,
    );
    const target = new URL(url);
    const cols = COLUMNS.map((c) => `"${c.name}"`).join(', ');
    const [, psqlMs] = await timed(() =>
      promisify(execFile)(
        psqlPath(),
        [
          '-h', target.hostname, '-p', target.port, '-U', decodeURIComponent(target.username),
          '-d', target.pathname.slice(1) || 'postgres', '-v', 'ON_ERROR_STOP=1',
          '-c', `\\copy "${schema}"."${reference}" (${cols}) FROM '${file}' WITH (FORMAT csv, HEADER true, FORCE_NULL (${cols}))`,
        ], // prettier-ignore
        { env: { ...process.env, PGPASSWORD: decodeURIComponent(target.password), PGSSLMODE: 'disable' } },
      ),
    );
    process.stderr.write(`psql \\copy: ${psqlMs} ms\n`);

    // 3. merges.
    const merge = (staging: string, stagedKeys: StagedKeys = 'may-repeat') =>
      withTransaction(pool, (c) =>
        mergeStaging(c, { schema, target: 'sf_lead', staging, columns: COLUMNS, key: ['Id'], stagedKeys }),
      );
    const [inserted, mergeInsertMs] = await timed(() => merge(copied.staging));
    const [unchanged, firstUnchangedMs] = await timed(() => merge(copied.staging));
    const [, firstUniqueMs] = await timed(() => merge(copied.staging, 'unique'));
    const [, secondUnchangedMs] = await timed(() => merge(copied.staging));
    const [uniqueUnchanged, secondUniqueMs] = await timed(() => merge(copied.staging, 'unique'));
    const mergeUnchangedMs = Math.min(firstUnchangedMs, secondUnchangedMs);
    const mergeUnchangedUniqueMs = Math.min(firstUniqueMs, secondUniqueMs);
    if (JSON.stringify(uniqueUnchanged) !== JSON.stringify(unchanged)) {
      throw new Error(
        `the unique-key merge counted ${JSON.stringify(uniqueUnchanged)}, not ${JSON.stringify(unchanged)}`,
      );
    }
    const [changed] = await timed(() => copyOnce(changedFile, 'r2'));
    const [updated, mergeTenthChangedMs] = await timed(() => merge(changed.staging));
    process.stderr.write(
      `merge: insert ${mergeInsertMs} ms ${JSON.stringify(inserted)}; unchanged ${mergeUnchangedMs} ms (unique keys ${mergeUnchangedUniqueMs} ms) ${JSON.stringify(unchanged)}; 10% changed ${mergeTenthChangedMs} ms ${JSON.stringify(updated)}\n`,
    );

    // 4. full refresh strategies.
    const swap = (strategy: 'delete-insert' | 'truncate-insert') =>
      withTransaction(pool, (c) =>
        swapInTable(c, { schema, target: 'sf_lead', staging: copied.staging, columns: COLUMNS, strategy }),
      );
    const [, swapDeleteInsertMs] = await timed(() => swap('delete-insert'));
    const [, swapTruncateInsertMs] = await timed(() => swap('truncate-insert'));
    process.stderr.write(
      `swap: delete-insert ${swapDeleteInsertMs} ms, truncate-insert ${swapTruncateInsertMs} ms\n`,
    );
    await withClient(pool, async (c) => {
      await dropStagingTable(c, schema, copied.staging);
      await dropStagingTable(c, schema, changed.staging);
    });

    const result = {
      bench: 'extract-load',
      rows,
      csvMb: Math.round((csvBytes / MB) * 10) / 10,
      copyIntoStagingMs: copyMs,
      psqlCopyMs: psqlMs,
      copyOverPsql: Math.round((copyMs / psqlMs) * 100) / 100,
      rowsPerSecond: Math.round(rows / (copyMs / 1000)),
      copyRssGrowthMb: Math.round((peakRss - rssBefore) / MB),
      mergeInsertMs,
      mergeUnchangedMs,
      mergeUnchangedUniqueMs,
      mergeTenthChangedMs,
      mergeInsertOverCopy: Math.round((mergeInsertMs / copyMs) * 100) / 100,
      swapDeleteInsertMs,
      swapTruncateInsertMs,
      node: process.version,
      cores: cpus().length,
    };
    process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await pool.end();
    await server?.stop();
    if (!argv.includes('--keep')) for (const f of [file, changedFile]) rmSync(f, { force: true });
  }
}
