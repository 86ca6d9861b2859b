/**
 * `npm run bench -- writeback [--rows N]` (default 100,000): the write-back against the Salesforce
 * emulator, run in a CHILD process (so that this process's memory is the pipeline's alone), and a
 * real PostgreSQL (embedded, or DATABASE_URL). N leads are seeded; `lead_reverse` ("Id", score)
 * is loaded with COPY; then, with the real clock (Bulk polls wait as in production):
 *
 * 1. every record changed, Bulk path (threshold 2,000): Salesforce calls including polls, plan
 *    time against the COPY time of the source, peak RSS of this process while pushing;
 * 2. every record changed again, Collections path (threshold above N): Composite calls;
 * 3. nothing changed: write calls (expected 0), and the plan time of this steady state;
 * 4. 1 % of the scores changed: records sent on the wire over records changed (expected 1), and
 *    the plan time.
 *
 * `planOverCopy` divides the plan time of run 1 (every row changed, the plan written in full) by
 * the time of the `COPY … FROM STDIN` that loaded the same source rows just before it (two
 * columns, no index, streamed from this process): the reference of issue 5. `floorsOverCopy`
 * divides, by the same COPY, two statements that do a fraction of a plan's work on those rows:
 * `rewrite` copies them into a new table as they are (WAL-logged like a stored plan; no check, no
 * key, no comparison: the least any plan that stores its rows in PostgreSQL writes), `pages` numbers them and stores them in
 * plan pages with their payloads (the plan's storage without any of its checks). Two more, timed on
 * the steady state of run 3 (every row synced) against the same COPY: `compareSerial` and
 * `compareParallel` join the source to `sync_state` and compare the one mapped value, storing
 * nothing and checking nothing, serial and with two parallel workers: the least any plan that
 * compares each row with what Salesforce has takes, whether or not it stores anything.
 *
 * Calls are counted on the connector (every REST and Bulk call it makes); records sent are read
 * from the request bodies. Composite calls "per 100k" scale linearly from N; Bulk calls do not
 * (a job's calls are the same at any size up to 100 MB), so below 100k they are reported as measured. Prints one JSON object
 * as its last line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom } from 'pg-copy-streams';
import { makeId } from '../emulators/salesforce/ids';
import { freePort, startEmbeddedPostgres, type EmbeddedPostgres } from '../emulators/postgres/embedded';
import { parseConfig, type WritebackTaskInput } from '../lambdas/config';
import { createPool, migrate, withClient } from '../lambdas/connectors/postgres';
import { connectSalesforce, type SalesforceConnector } from '../lambdas/connectors/salesforce';
import type { CoreDeps } from '../lambdas/core/deps';
import { runWriteback } from '../lambdas/core/writeback';
import { systemClock } from '../lambdas/shared/clock';
import { createConsoleLogger } from '../lambdas/shared/logging';
import { MB, option } from './_common';

async function startEmulatorProcess(
  seedDir: string,
  port: number,
): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(__dirname, '..', 'bin', 'roundtrip.ts'),
      'emulate',
      'salesforce',
      '--port',
      String(port),
      '--seed',
      seedDir,
      '--daily-api-limit',
      '100000000',
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, NODE_OPTIONS: '--max-old-space-size=4096' },
    },
  );
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m?.[1]) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`the emulator exited (${code}) before listening: ${out}`)));
  });
  return { child, url };
}

/** Counts what the connector sends: every call, write calls, and records in write bodies. */
function counting(
  connector: SalesforceConnector,
): SalesforceConnector & { writes: number; records: number; salesforceMs: number } {
  const counted = Object.create(connector, {
    request: {
      value: async (
        op: string,
        method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE',
        p: string,
        body?: unknown,
      ) => {
        if (method !== 'GET' && !p.startsWith('/jobs/ingest/') && p !== '/jobs/ingest') {
          counted.writes += 1;
          counted.records += typeof body === 'string' ? (body.match(/"attributes":/g) ?? []).length : 0;
        }
        if (p === '/jobs/ingest') counted.writes += 1;
        const start = process.hrtime.bigint();
        try {
          return await connector.request(op, method, p, body);
        } finally {
          counted.salesforceMs += Number(process.hrtime.bigint() - start) / 1e6;
        }
      },
    },
    putStream: {
      value: async (op: string, p: string, body: Readable, headers: Record<string, string>) => {
        counted.writes += 1;
        // Records uploaded: CSV lines on the wire, less the header (the values hold no newline).
        let lines = -1;
        const counter = new Transform({
          transform(chunk: Buffer, _encoding, done) {
            for (const byte of chunk) if (byte === 10) lines += 1;
            done(null, chunk);
          },
        });
        body.on('error', (err) => counter.destroy(err));
        try {
          return await connector.putStream(op, p, body.pipe(counter), headers);
        } finally {
          counted.records += Math.max(0, lines);
        }
      },
    },
  }) as SalesforceConnector & { writes: number; records: number; salesforceMs: number };
  counted.writes = 0;
  counted.salesforceMs = 0;
  counted.records = 0;
  return counted;
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const start = process.hrtime.bigint();
  const result = await fn();
  return [result, Number(process.hrtime.bigint() - start) / 1e6];
}

/** Runs the benchmark (bench/index.ts calls this). */
export async function run(argv: string[]): Promise<void> {
  const rows = option(argv, 'rows', 100_000);
  const logger = createConsoleLogger('warn');
  const work = mkdtempSync(path.join(tmpdir(), 'rt-bench-wb-'));
  let server: EmbeddedPostgres | undefined;
  let emulator: ChildProcess | undefined;
  try {
    // Ids are computed when needed, never held: this process's memory stays the pipeline's.
    const idOf = (i: number): string => makeId('00Q', i + 1);
    const seedDir = path.join(work, 'seed');
    mkdirSync(seedDir);
    async function* seedLines(): AsyncGenerator<string> {
      yield 'Id,LastName,Company\n';
      let chunk = '';
      for (let i = 0; i < rows; i += 1) {
        chunk += `${idOf(i)},Lead ${i},Company ${i % 97}\n`;
        if (chunk.length > 64 * 1024) {
          yield chunk;
          chunk = '';
        }
      }
      if (chunk) yield chunk;
    }
    await pipeline(Readable.from(seedLines()), createWriteStream(path.join(seedDir, 'Lead.csv')));
    const port = await freePort();
    const started = await startEmulatorProcess(seedDir, port);
    emulator = started.child;

    const url = process.env.DATABASE_URL ?? (server = await startEmbeddedPostgres()).url;
    const pool = createPool({ url }, { ssl: { mode: 'disable' }, max: 4 });
    await migrate(pool);
    const base = await connectSalesforce({
      secret: { loginUrl: started.url, username: 'admin@roundtrip.test', password: 'roundtrip' },
      apiVersion: '62.0',
      logger,
    });
    await pool.query('DROP TABLE IF EXISTS lead_reverse');
    await pool.query('CREATE TABLE lead_reverse ("Id" text, lead_score integer)');
    await pool.query(`DELETE FROM roundtrip.sync_state WHERE task LIKE 'Lead-update%'`);
    const load = (bump: (i: number) => number): Promise<number> =>
      withClient(pool, async (client) => {
        await client.query('TRUNCATE lead_reverse');
        async function* lines(): AsyncGenerator<string> {
          let chunk = '';
          for (let i = 0; i < rows; i += 1) {
            chunk += `${idOf(i)},${(i + bump(i)) % 1000}\n`;
            if (chunk.length > 64 * 1024) {
              yield chunk;
              chunk = '';
            }
          }
          if (chunk) yield chunk;
        }
        const [, ms] = await timed(() =>
          pipeline(
            Readable.from(lines()),
            client.query(copyFrom('COPY lead_reverse FROM STDIN (FORMAT csv)')),
          ),
        );
        return ms;
      });

    const task = (bulkThreshold: number): WritebackTaskInput => ({
      to: 'salesforce',
      object: 'Lead',
      from: 'lead_reverse',
      mode: 'update',
      fields: { LeadScore__c: 'lead_score' },
      bulkThreshold,
      maxFailureRate: 0.01,
    });
    const deps = (connector: SalesforceConnector, bulkThreshold: number): CoreDeps => ({
      config: parseConfig({
        name: 'bench-writeback',
        salesforce: { secret: 'x' },
        postgres: { secret: 'x' },
        writeback: [task(bulkThreshold)],
      }),
      pg: pool,
      salesforce: connector,
      logger,
      clock: systemClock,
    });
    let runs = 0;
    const newRun = async (): Promise<string> => {
      const runId = `bench-${Date.now()}-${(runs += 1)}`;
      await pool.query(
        `INSERT INTO roundtrip.runs (run_id, pipeline, status) VALUES ($1, 'bench-writeback', 'running')`,
        [runId],
      );
      return runId;
    };

    // 1. Bulk: every record changed.
    const copyMs = await load(() => 0);
    // Two floors under planOverCopy, on the rows just loaded, each in a transaction rolled back:
    // PostgreSQL writing the same rows again as they are (no check, no key, no comparison), and
    // writing them into plan pages (numbered, 1,000 a page, key and payload, nothing checked).
    const floorMs = (sql: string): Promise<number> =>
      withClient(pool, async (client) => {
        await client.query('BEGIN');
        try {
          await client.query(
            `INSERT INTO roundtrip.runs (run_id, pipeline, status) VALUES ('bench-floor', 'bench-writeback', 'running')`,
          );
          return (await timed(() => client.query(sql)))[1];
        } finally {
          await client.query('ROLLBACK');
        }
      });
    const rewriteMs = await floorMs('CREATE TABLE bench_floor AS SELECT * FROM lead_reverse');
    const pagesFloorMs = await floorMs(
      `INSERT INTO roundtrip.writeback_plan_pages
         (run_id, task, page, first_seq, rows, operation, keys, salesforce_ids, payloads, currents)
       SELECT 'bench-floor', 'floor', (seq - 1) / 1000, min(seq), count(*), 'update',
              array_agg(k ORDER BY seq), array_agg(k ORDER BY seq),
              array_agg(jsonb_build_object('LeadScore__c', lead_score) ORDER BY seq),
              array_agg(NULL::jsonb ORDER BY seq)
         FROM (SELECT "Id" AS k, lead_score, row_number() OVER () AS seq FROM lead_reverse) AS s
        GROUP BY (seq - 1) / 1000`,
    );
    const bulk = counting(base);
    await base.describe('Lead'); // cached: the describe is not part of the push's cost
    global.gc?.();
    const rssBeforePush = process.memoryUsage().rss;
    let peakRss = rssBeforePush;
    let peakHeap = 0;
    let peakBuffers = 0;
    const sampler = setInterval(() => {
      const m = process.memoryUsage();
      peakRss = Math.max(peakRss, m.rss);
      peakHeap = Math.max(peakHeap, m.heapUsed);
      peakBuffers = Math.max(peakBuffers, m.arrayBuffers);
    }, 50);
    const bulkRun = await newRun();
    const callsBefore = base.apiCalls;
    const [bulkResult, bulkMs] = await timed(() =>
      runWriteback(deps(bulk, 2_000), { runId: bulkRun, task: 'Lead-update' }),
    );
    clearInterval(sampler);
    const bulkCalls = base.apiCalls - callsBefore;
    const { rows: planTiming } = await pool.query<{ ms: number; phases: unknown }>(
      `SELECT (summary->'writeback'->'Lead-update'->>'planMs')::float AS ms,
              summary->'writeback'->'Lead-update'->'planPhasesMs' AS phases
         FROM roundtrip.runs WHERE run_id = $1`,
      [bulkRun],
    );
    const planMs = planTiming[0]?.ms ?? NaN;

    // 2. Composite: every record changed again, threshold above N.
    await load(() => 1);
    const composite = counting(base);
    const compositeRun = await newRun();
    const compositeBefore = base.apiCalls;
    const [compositeResult, compositeMs] = await timed(() =>
      runWriteback(deps(composite, rows + 1), { runId: compositeRun, task: 'Lead-update' }),
    );
    const compositeCalls = base.apiCalls - compositeBefore;

    // 3. Nothing changed.
    const unchanged = counting(base);
    const unchangedRun = await newRun();
    await runWriteback(deps(unchanged, rows + 1), { runId: unchangedRun, task: 'Lead-update' });
    // A third floor, on the steady state just planned (every source row synced, none changed): the
    // bare comparison of each row with what sync_state says Salesforce has (one hash join, one
    // value compared, nothing checked, nothing stored), serial as the plan's statement runs (its
    // data-modifying CTEs keep PostgreSQL from a parallel plan) and with two parallel workers: the
    // least any plan that compares every row with what Salesforce has takes on this machine.
    const compareFloorMs = (workers: number): Promise<number> =>
      withClient(pool, async (client) => {
        await client.query('BEGIN');
        try {
          await client.query(
            `SET LOCAL max_parallel_workers_per_gather = ${workers}; SET LOCAL parallel_setup_cost = 0;
             SET LOCAL parallel_tuple_cost = 0`,
          );
          const [result, ms] = await timed(() =>
            client.query<{ changed: string }>(
              `SELECT count(*) FILTER (WHERE s.key IS NULL
                        OR (s.synced_values->>'LeadScore__c')::numeric IS DISTINCT FROM r.lead_score) AS changed
                 FROM lead_reverse r
                 LEFT JOIN roundtrip.sync_state s ON s.task = 'Lead-update' AND s.key = r."Id"`,
            ),
          );
          // The floor must compare what the plan compares: every row is in sync here.
          if (Number(result.rows[0]?.changed) !== 0) {
            throw new Error(`the compare floor found ${result.rows[0]?.changed} rows changed, expected 0`);
          }
          return ms;
        } finally {
          await client.query('ROLLBACK');
        }
      });
    const compareSerialMs = await compareFloorMs(0);
    const compareParallelMs = await compareFloorMs(2);

    // 4. 1 % changed (every 100th lead).
    await load((i) => (i % 100 === 0 ? 2 : 1));
    const onePct = counting(base);
    const onePctRunId = await newRun();
    const onePctRun = await runWriteback(deps(onePct, 2_000), { runId: onePctRunId, task: 'Lead-update' });
    const changedAt1pct = onePctRun.plan.changed;
    // The plan when (nearly) everything is already in Salesforce: the steady state of a daily run.
    const planMsOf = async (runId: string): Promise<number> => {
      const { rows: r } = await pool.query<{ ms: number }>(
        `SELECT (summary->'writeback'->'Lead-update'->>'planMs')::float AS ms FROM roundtrip.runs WHERE run_id = $1`,
        [runId],
      );
      return Math.round(r[0]?.ms ?? NaN);
    };

    const figures = {
      rows,
      machine: { cpus: cpus().length, node: process.version },
      bulk: {
        calls: bulkCalls,
        ms: Math.round(bulkMs),
        succeeded: bulkResult.result?.succeeded,
        planMs: Math.round(planMs),
        planPhasesMs: planTiming[0]?.phases,
      },
      composite: {
        calls: compositeCalls,
        ms: Math.round(compositeMs),
        salesforceMs: Math.round(composite.salesforceMs),
        succeeded: compositeResult.result?.succeeded,
      },
      copyMs: Math.round(copyMs),
      // Plan time of the same N rows compared with sync_state when nothing / 1 % changed.
      planMsUnchanged: await planMsOf(unchangedRun),
      planMsAt1pct: await planMsOf(onePctRunId),
      // A Bulk run costs create + upload + close + polls + result files per job (one job up to
      // 100 MB): it does not shrink with fewer rows, so below 100k the measured count is reported.
      bulkCallsPer100k: rows >= 100_000 ? Math.ceil((bulkCalls * 100_000) / rows) : bulkCalls,
      compositeCallsPer100k: Math.round((compositeCalls * 100_000) / rows),
      writeCallsWhenUnchanged: unchanged.writes,
      sentOverChangedAt1pct: changedAt1pct === 0 ? null : onePct.records / changedAt1pct,
      planOverCopy: Number((planMs / copyMs).toFixed(3)),
      // Lower bounds of planOverCopy on this machine (see the header): no plan stored in
      // PostgreSQL can beat rewriting the rows, nor one stored in pages the bare paging.
      floorsOverCopy: {
        rewrite: Number((rewriteMs / copyMs).toFixed(3)),
        pages: Number((pagesFloorMs / copyMs).toFixed(3)),
        compareSerial: Number((compareSerialMs / copyMs).toFixed(3)),
        compareParallel: Number((compareParallelMs / copyMs).toFixed(3)),
      },
      peakRssMb: Math.round(peakRss / MB),
      // The process before the push: runtime, modules, pools (the baseline of the peak).
      rssBeforePushMb: Math.round(rssBeforePush / MB),
      peakHeapUsedMb: Math.round(peakHeap / MB),
      peakArrayBuffersMb: Math.round(peakBuffers / MB),
    };
    process.stdout.write(JSON.stringify(figures) + '\n');
    await pool.end();
  } finally {
    emulator?.kill('SIGTERM');
    await server?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
