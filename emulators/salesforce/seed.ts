/**
 * Seeding the emulator with records, from code or from the `--seed` file of the CLI.
 *
 * Formats (docs/salesforce-emulator.md, "Seeding"):
 * - a JSON file (or object) `{ "Lead": [ { "LastName": "Ng", "Company": "Acme" }, … ], "Account": [ … ] }`;
 * - a CSV file named after its object (`Lead.csv`): a header of field API names, one record per
 *   row, comma-delimited, LF or CRLF; an empty value leaves the field unset;
 * - a folder of such `.json` and `.csv` files, loaded in file-name order.
 *
 * Seeding goes through `SalesforceStore.seed`: values are converted to their field types, `Id`
 * and system fields are filled unless given, and no API call is counted.
 */
import { createReadStream, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { CsvStreamParser } from './bulk-csv';
import { SeedRecordError, type SalesforceStore } from './store';
import { parseJsonKeepingDigits } from './values';

/** Records to seed, by object API name. */
export type SeedData = Record<string, Record<string, unknown>[]>;

/** Records seeded per object (a CSV is seeded in batches of this many rows). */
export const SEED_BATCH_RECORDS = 10_000;

/** A seed that cannot be loaded: names the file and what is wrong. */
export class SeedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SeedError';
  }
}

/** Seeds records given in memory. Returns the number of records seeded per object. */
export function seedFromData(
  store: SalesforceStore,
  data: SeedData,
  source = '<seed>',
): Record<string, number> {
  if (!data || typeof data !== 'object' || Array.isArray(data)) {
    throw new SeedError(
      `${source}: a seed must be an object of arrays, e.g. {"Lead": [{"LastName": "Ng", "Company": "Acme"}]}`,
    );
  }
  const counts: Record<string, number> = {};
  for (const [objectName, records] of Object.entries(data)) {
    const describe = store.describe(objectName);
    if (!describe)
      throw new SeedError(`${source}: no object named '${objectName}' (no describe file defines it)`);
    if (!Array.isArray(records))
      throw new SeedError(`${source}: "${objectName}" must be an array of records`);
    try {
      store.seed(describe.name, records);
    } catch (err) {
      throw new SeedError(`${source}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    counts[describe.name] = (counts[describe.name] ?? 0) + records.length;
  }
  return counts;
}

async function seedCsvFile(store: SalesforceStore, file: string): Promise<number> {
  const objectName = path.basename(file, path.extname(file));
  const describe = store.describe(objectName);
  if (!describe)
    throw new SeedError(
      `${file}: the file name must be an object's API name; no object named '${objectName}'`,
    );
  let header: string[] | undefined;
  let batch: Record<string, unknown>[] = [];
  // The file's line of each record of the batch: a refused record is named by its line, not by
  // its place in a batch.
  let lines: number[] = [];
  let count = 0;
  let failure: unknown;
  const flush = (): void => {
    if (batch.length === 0) return;
    try {
      store.seed(describe.name, batch);
    } catch (err) {
      const line = err instanceof SeedRecordError ? lines[err.recordIndex] : undefined;
      throw new SeedError(
        err instanceof SeedRecordError && line !== undefined
          ? `${file}: line ${line}${err.field ? `, ${err.field}` : ''}: ${err.problem}`
          : `${file}: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    }
    count += batch.length;
    batch = [];
    lines = [];
  };
  const onRow = (fields: string[], line: number): void => {
    if (!header) {
      header = fields.map((f) => f.trim());
      return;
    }
    if (fields.length !== header.length) {
      failure = new SeedError(
        `${file}: line ${line} has ${fields.length} values, the header has ${header.length}`,
      );
      return;
    }
    const record: Record<string, unknown> = {};
    header.forEach((name, i) => {
      const value = fields[i] as string;
      if (value !== '') record[name] = value;
    });
    batch.push(record);
    lines.push(line);
  };
  let parser: CsvStreamParser | undefined;
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    // The line ending is the first one the file uses.
    parser ??= new CsvStreamParser('COMMA', chunk.includes('\r\n') ? 'CRLF' : 'LF', onRow);
    parser.push(chunk);
    if (failure) throw failure;
    if (batch.length >= SEED_BATCH_RECORDS) flush();
  }
  parser?.end();
  if (failure) throw failure;
  flush();
  return count;
}

/** What a seed path may name (docs/salesforce-emulator.md#seeding), said when it names none of them. */
const SEED_SHAPES =
  'give a JSON file ({ "Lead": [ … ] }), a CSV file named after its object (Lead.csv), or a folder of them';

/**
 * Seeds from a JSON file, a CSV file named after its object, or a folder of them; or from an
 * object given in code. Returns the number of records seeded per object.
 */
export async function loadSeed(
  store: SalesforceStore,
  seed: string | SeedData,
): Promise<Record<string, number>> {
  if (typeof seed !== 'string') return seedFromData(store, seed);
  let stat;
  try {
    stat = statSync(seed);
  } catch (err) {
    throw new SeedError(`seed ${seed} does not exist: ${SEED_SHAPES}`, { cause: err });
  }
  let files = [seed];
  if (stat.isDirectory()) {
    const entries = readdirSync(seed, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name));
    files = entries
      .map((e) => e.name)
      .filter((f) => /\.(json|csv)$/i.test(f))
      .map((f) => path.join(seed, f));
    // A folder that seeds nothing is a wrong folder (its parent, say), not an empty org by intent.
    if (files.length === 0) {
      const names = entries.slice(0, 5).map((e) => (e.isDirectory() ? `${e.name}/` : e.name));
      const shown = names.join(', ') + (entries.length > 5 ? ', …' : '');
      throw new SeedError(
        `seed ${seed} is a folder without a .json or .csv file (${entries.length === 0 ? 'it is empty' : `it has ${shown}`}): ${SEED_SHAPES}`,
      );
    }
  }
  const counts: Record<string, number> = {};
  for (const file of files) {
    if (/\.csv$/i.test(file)) {
      const name = store.describe(path.basename(file, path.extname(file)))?.name ?? path.basename(file);
      counts[name] = (counts[name] ?? 0) + (await seedCsvFile(store, file));
      continue;
    }
    let data: unknown;
    try {
      // Long number literals keep their digits (values.ts).
      data = parseJsonKeepingDigits(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new SeedError(`${file}: not valid JSON (${err instanceof Error ? err.message : String(err)})`, {
        cause: err,
      });
    }
    for (const [name, n] of Object.entries(seedFromData(store, data as SeedData, file))) {
      counts[name] = (counts[name] ?? 0) + n;
    }
  }
  return counts;
}
