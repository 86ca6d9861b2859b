/**
 * `npm run bench -- salesforce-store [--rows N]`: the Salesforce emulator's record store alone,
 * without HTTP. Seeds N leads (default 1,000,000), then times and measures the heap of:
 * - an extract-style query (`WHERE SystemModstamp >= … ORDER BY SystemModstamp, Id`) through
 *   `queryIterator`, projecting every row as a Bulk query page would;
 * - an update of LeadScore__c on every lead in calls of 10,000 records (Bulk API 2.0's
 *   internal batch size, salesforce-wire.md "Bulk API 2.0 ingest");
 * - a COUNT() with a selective WHERE.
 * Prints one JSON object as its last line. Run with `node --expose-gc` (via
 * `NODE_OPTIONS=--expose-gc`) for a settled heap figure after seeding.
 */
import { loadDescribes } from '../emulators/salesforce/describe';
import { SalesforceStore } from '../emulators/salesforce/store';
import { MB, option } from './_common';

/** Bulk API 2.0 processes ingest data in internal batches of 10,000 records. */
const BULK_INTERNAL_BATCH = 10_000;

function settledHeapMb(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) gc();
  return Math.round(process.memoryUsage().heapUsed / MB);
}

function timed<T>(fn: () => T): [T, number] {
  const start = process.hrtime.bigint();
  const result = fn();
  return [result, Number(process.hrtime.bigint() - start) / 1e6];
}

/** Runs the benchmark; see the module comment. */
export async function run(argv: string[]): Promise<void> {
  const rows = option(argv, 'rows', 1_000_000);
  const store = new SalesforceStore({ describes: loadDescribes() });
  const heapBefore = settledHeapMb();
  const industries = ['Banking', 'Energy', 'Retail', 'Technology', null];
  const [, seedMs] = timed(() => {
    for (let start = 0; start < rows; start += BULK_INTERNAL_BATCH) {
      const batch: Record<string, unknown>[] = [];
      for (let i = start; i < Math.min(rows, start + BULK_INTERNAL_BATCH); i += 1) {
        batch.push({
          FirstName: `First${i}`,
          LastName: `Last${i}`,
          Company: `Company ${i % 5000}`,
          Email: `lead${i}@example.com`,
          Industry: industries[i % industries.length],
          NumberOfEmployees: i % 1000,
          External_Id__c: `ext-${i}`,
        });
      }
      store.seed('Lead', batch);
    }
  });
  const heapAfterSeed = settledHeapMb();

  const [projected, queryMs] = timed(() => {
    const cursor = store.queryIterator(
      'SELECT Id, Email, Company, Status, LeadScore__c, SystemModstamp FROM Lead WHERE SystemModstamp >= 2000-01-01T00:00:00Z ORDER BY SystemModstamp, Id',
    );
    let n = 0;
    for (const row of cursor.rows) {
      if (cursor.project(row).Id) n += 1;
    }
    return n;
  });

  const ids = Array.from(store.all('Lead'), (r) => r.Id as string);
  const [failed, updateMs] = timed(() => {
    let failures = 0;
    for (let start = 0; start < ids.length; start += BULK_INTERNAL_BATCH) {
      const batch = ids
        .slice(start, start + BULK_INTERNAL_BATCH)
        .map((Id, k) => ({ Id, LeadScore__c: (start + k) % 1000 }));
      failures += store.update('Lead', batch).filter((r) => !r.success).length;
    }
    return failures;
  });
  const heapAfterUpdate = settledHeapMb();

  const [count, countMs] = timed(
    () =>
      store.query("SELECT COUNT() FROM Lead WHERE Industry IN ('Banking', 'Energy') AND LeadScore__c >= 500")
        .totalSize,
  );

  const figures = {
    benchmark: 'salesforce-store',
    node: process.version,
    rows,
    seedMs: Math.round(seedMs),
    heapMbBeforeSeed: heapBefore,
    heapMbAfterSeed: heapAfterSeed,
    bytesPerLead: Math.round(((heapAfterSeed - heapBefore) * MB) / rows),
    orderedQueryMs: Math.round(queryMs),
    orderedQueryRows: projected,
    updateMs: Math.round(updateMs),
    updateFailures: failed,
    heapMbAfterUpdate: heapAfterUpdate,
    countMs: Math.round(countMs),
    count,
    rssMb: Math.round(process.memoryUsage().rss / MB),
  };
  process.stdout.write(`${JSON.stringify(figures)}\n`);
}
