/**
 * `npm run bench -- salesforce-emulator [--rows N] [--page N]`: the Salesforce emulator at volume.
 *
 * Seeds N leads (default 1,000,000), then over real HTTP on loopback:
 * 1. a Bulk API 2.0 query of all of them, the client reading every results page with the
 *    `Sforce-Locator` as a stream (never holding a page as one string);
 * 2. a Bulk API 2.0 ingest updating `LeadScore__c` on every lead, the CSV uploaded chunked
 *    without a content length, then the successfulResults file read as a stream.
 * Emulator and client share this process, so the RSS figures bound both together. Peak RSS is
 * sampled every 50 ms. The last line printed is one JSON object with the figures.
 */
import { startSalesforceEmulator, type SalesforceEmulator } from '../emulators/salesforce';

interface Phase {
  seconds: number;
  peakRssMb: number;
}

const MB = 1024 * 1024;
const VERSION = '62.0';

function option(argv: string[], name: string, fallback: number): number {
  const i = argv.indexOf(name);
  if (i < 0) return fallback;
  const value = Number(argv[i + 1]);
  if (!Number.isInteger(value) || value < 1)
    throw new Error(`${name} must be a positive integer, got ${argv[i + 1]}`);
  return value;
}

/** Runs `fn` while sampling RSS; returns its duration and the peak RSS seen. */
async function measure<T>(fn: () => Promise<T>): Promise<{ result: T; phase: Phase }> {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 50);
  const start = process.hrtime.bigint();
  try {
    const result = await fn();
    peak = Math.max(peak, process.memoryUsage().rss);
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    return { result, phase: { seconds: Math.round(seconds * 100) / 100, peakRssMb: Math.round(peak / MB) } };
  } finally {
    clearInterval(timer);
  }
}

async function token(sf: SalesforceEmulator): Promise<string> {
  const res = await fetch(`${sf.loginUrl}/services/oauth2/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: sf.credentials.clientId,
      client_secret: sf.credentials.clientSecret,
    }).toString(),
  });
  return ((await res.json()) as { access_token: string }).access_token;
}

/** Counts newline characters of a streamed body without keeping it. */
async function countLines(res: Response): Promise<{ lines: number; bytes: number }> {
  let lines = 0;
  let bytes = 0;
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes += value.length;
    for (let i = 0; i < value.length; i++) if (value[i] === 10) lines++;
  }
  return { lines, bytes };
}

async function waitForJob(
  base: string,
  auth: Record<string, string>,
  path: string,
): Promise<Record<string, unknown>> {
  for (;;) {
    const info = (await (await fetch(`${base}${path}`, { headers: auth })).json()) as Record<string, unknown>;
    if (info.state === 'JobComplete') return info;
    if (info.state === 'Failed' || info.state === 'Aborted')
      throw new Error(`job ${path} ended ${String(info.state)}: ${String(info.errorMessage)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Entry point for bench/index.ts. */
export async function run(argv: string[]): Promise<void> {
  const rows = option(argv, '--rows', 1_000_000);
  const pageSize = option(argv, '--page', 50_000);
  const sf = await startSalesforceEmulator({ dailyApiLimit: 1_000_000 });
  try {
    const baseline = Math.round(process.memoryUsage().rss / MB);
    const seed = await measure(async () => {
      const BATCH = 10_000;
      for (let start = 0; start < rows; start += BATCH) {
        const batch = [];
        for (let i = start; i < Math.min(rows, start + BATCH); i++) {
          batch.push({
            LastName: `Lead ${i}`,
            Company: `Company ${i % 5000}`,
            Email: `lead${i}@example.test`,
            LeadScore__c: i % 100,
          });
        }
        sf.store.seed('Lead', batch);
      }
    });
    process.stderr.write(`seeded ${rows} leads in ${seed.phase.seconds}s, rss ${seed.phase.peakRssMb} MB\n`);

    const base = `${sf.instanceUrl}/services/data/v${VERSION}`;
    const auth = { Authorization: `Bearer ${await token(sf)}` };

    const query = await measure(async () => {
      const job = (await (
        await fetch(`${base}/jobs/query`, {
          method: 'POST',
          headers: { ...auth, 'Content-Type': 'application/json' },
          body: JSON.stringify({
            operation: 'query',
            query: 'SELECT Id, LastName, Company, Email, LeadScore__c FROM Lead',
          }),
        })
      ).json()) as { id: string };
      await waitForJob(base, auth, `/jobs/query/${job.id}`);
      let locator = '';
      let records = 0;
      let bytes = 0;
      let pages = 0;
      do {
        const res = await fetch(
          `${base}/jobs/query/${job.id}/results?maxRecords=${pageSize}${locator ? `&locator=${locator}` : ''}`,
          {
            headers: { ...auth, Accept: 'text/csv' },
          },
        );
        locator = res.headers.get('sforce-locator') ?? 'null';
        const counted = await countLines(res);
        records += counted.lines - 1; // minus the header row
        bytes += counted.bytes;
        pages++;
      } while (locator !== 'null');
      if (records !== rows) throw new Error(`the Bulk query returned ${records} records, expected ${rows}`);
      return { records, pages, mb: Math.round(bytes / MB) };
    });
    process.stderr.write(`bulk query: ${JSON.stringify(query)}\n`);

    const ids = [...sf.store.all('Lead')].map((r) => r.Id as string);
    const ingest = await measure(async () => {
      const job = (await (
        await fetch(`${base}/jobs/ingest`, {
          method: 'POST',
          headers: { ...auth, 'Content-Type': 'application/json' },
          body: JSON.stringify({ object: 'Lead', operation: 'update', contentType: 'CSV', lineEnding: 'LF' }),
        })
      ).json()) as { id: string };
      let next = 0;
      const encoder = new TextEncoder();
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (next === 0) controller.enqueue(encoder.encode('Id,LeadScore__c\n'));
          if (next >= ids.length) {
            controller.close();
            return;
          }
          let piece = '';
          const stop = Math.min(ids.length, next + 5_000);
          for (; next < stop; next++) piece += `${ids[next] as string},${(next * 7) % 1000}\n`;
          controller.enqueue(encoder.encode(piece));
        },
      });
      const upload = await fetch(`${base}/jobs/ingest/${job.id}/batches`, {
        method: 'PUT',
        headers: { ...auth, 'Content-Type': 'text/csv' },
        body,
        duplex: 'half',
      } as RequestInit);
      if (upload.status !== 201) throw new Error(`upload answered ${upload.status}: ${await upload.text()}`);
      await fetch(`${base}/jobs/ingest/${job.id}`, {
        method: 'PATCH',
        headers: { ...auth, 'Content-Type': 'application/json' },
        body: JSON.stringify({ state: 'UploadComplete' }),
      });
      const info = await waitForJob(base, auth, `/jobs/ingest/${job.id}`);
      const results = await countLines(
        await fetch(`${base}/jobs/ingest/${job.id}/successfulResults`, { headers: auth }),
      );
      if (info.numberRecordsFailed !== 0 || results.lines - 1 !== rows) {
        throw new Error(
          `ingest: ${String(info.numberRecordsFailed)} failed, ${results.lines - 1} successful results for ${rows} rows`,
        );
      }
      return { processed: info.numberRecordsProcessed, successfulResultsMb: Math.round(results.bytes / MB) };
    });
    process.stderr.write(`bulk ingest: ${JSON.stringify(ingest)}\n`);

    const summary = {
      benchmark: 'salesforce-emulator',
      rows,
      node: process.version,
      baselineRssMb: baseline,
      seed: seed.phase,
      bulkQuery: {
        ...query.phase,
        ...query.result,
        recordsPerSecond: Math.round(rows / query.phase.seconds),
      },
      bulkIngest: {
        ...ingest.phase,
        ...ingest.result,
        recordsPerSecond: Math.round(rows / ingest.phase.seconds),
      },
      apiCalls: sf.limits.used,
    };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } finally {
    await sf.stop();
  }
}
