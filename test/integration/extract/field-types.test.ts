/**
 * Each field type a describe gives, with the values that are hard to carry (quotes, commas, line
 * ends of every kind, a `\.` line that COPY could take for its end-of-data marker, non-BMP
 * characters, numbers with exponents and many digits, datetimes and times at the millisecond's
 * edge, empty fields), extracted over REST (JSON) and through a Bulk job (CSV): the column types
 * a data engineer expects and the same values from both paths.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startSalesforceEmulator, type SalesforceEmulator } from '../../../emulators/salesforce';
import { runExtract } from '../../../lambdas/core';
import { CANARY, connectTo, startExtractHarness, type ExtractHarness } from './harness';

const DEFAULT_DESCRIBES = path.join(__dirname, '../../../emulators/salesforce/describes');

/** Field → [value written to Salesforce, the column's text in PostgreSQL], a lead each. */
const VALUES: Record<string, [string, string][]> = {
  Notes__c: [
    ['with "quotes", and commas', 'with "quotes", and commas'],
    ['line1\nline2', 'line1\nline2'],
    ['crlf1\r\ncrlf2', 'crlf1\r\ncrlf2'],
    ['cr1\rcr2', 'cr1\rcr2'],
    ['a\n\\.\nb', 'a\n\\.\nb'],
    ['\\.', '\\.'],
    ['emoji 😀 and 𝄞', 'emoji 😀 and 𝄞'],
    ['NULL', 'NULL'],
    ['tab\tinside', 'tab\tinside'],
  ],
  Tags__c: [
    ['B;A', 'A;B'],
    ['A', 'A'],
  ],
  Pct__c: [
    ['12.5', '12.5'],
    ['-0.001', '-0.001'],
  ],
  Ratio__c: [
    ['1E-7', '0.0000001'],
    ['123456789012.123456', '123456789012.123456'],
    ['1.5e3', '1500'],
    ['0.30000000000000004', '0.30000000000000004'],
  ],
  Born__c: [['2024-02-29', '2024-02-29']],
  Alarm__c: [
    ['20:49:32.123Z', '20:49:32.123'],
    ['23:59:59.999Z', '23:59:59.999'],
  ],
  When__c: [
    ['2024-05-20T20:49:32.999Z', '2024-05-20 20:49:32.999+00'],
    ['2024-12-31T23:59:59.999+14:00', '2024-12-31 09:59:59.999+00'],
  ],
  Big__c: [
    ['123456789012345678', '123456789012345678'],
    ['-999999999999999999', '-999999999999999999'],
  ],
  Flag__c: [
    ['true', 'true'],
    ['false', 'false'],
  ],
};

describe('Field types from Salesforce to PostgreSQL, over REST and through Bulk', () => {
  let h: ExtractHarness;
  let sf: SalesforceEmulator;
  let dir: string;

  beforeAll(async () => {
    h = await startExtractHarness();
    dir = await mkdtemp(path.join(os.tmpdir(), 'extract-describes-'));
    await writeFile(
      path.join(dir, 'Lead.json'),
      JSON.stringify({
        name: 'Lead',
        fields: [
          { name: 'Notes__c', type: 'textarea', length: 32000 },
          {
            name: 'Tags__c',
            type: 'multipicklist',
            picklistValues: [
              { value: 'A', active: true },
              { value: 'B', active: true },
            ],
          },
          { name: 'Pct__c', type: 'percent', precision: 5, scale: 2 },
          { name: 'Ratio__c', type: 'double', precision: 18, scale: 6 },
          { name: 'Born__c', type: 'date' },
          { name: 'Alarm__c', type: 'time' },
          { name: 'When__c', type: 'datetime' },
          { name: 'Big__c', type: 'int', digits: 18 },
          { name: 'Flag__c', type: 'boolean', nillable: false, defaultedOnCreate: true },
        ],
      }),
    );
    const seed = Object.entries(VALUES).flatMap(([field, values]) =>
      values.map(([value], i) => ({ LastName: `${field} ${i}`, Company: 'C', [field]: value })),
    );
    sf = await startSalesforceEmulator({
      describesDir: [DEFAULT_DESCRIBES, dir],
      seed: { Lead: [...seed, { LastName: 'Empty', Company: 'C' }] },
      credentials: { password: CANARY.password, securityToken: CANARY.securityToken },
    });
  });
  afterAll(async () => {
    await sf.stop();
    await h.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('types the columns and loads the same values from both paths', async () => {
    const fields = ['Id', 'LastName', ...Object.keys(VALUES)];
    const config = h.config([
      { from: 'salesforce', object: 'Lead', fields, table: 'sf_rest' },
      { from: 'salesforce', object: 'Lead', name: 'LeadBulk', fields, table: 'sf_bulk', bulkThreshold: 1 },
    ]);
    const result = await runExtract(
      { input: {} },
      h.deps(config, { salesforce: await connectTo(sf, h.logger) }),
    );
    expect(result.salesforce.Lead).toMatchObject({ api: 'rest' });
    expect(result.salesforce.LeadBulk).toMatchObject({ api: 'bulk' });

    for (const table of ['sf_rest', 'sf_bulk']) {
      const types = await h.rows<{ column_name: string; type: string }>(
        `SELECT a.attname AS column_name, format_type(a.atttypid, a.atttypmod) AS type
           FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped`,
        [`public.${table}`],
      );
      expect(Object.fromEntries(types.map((t) => [t.column_name, t.type]))).toMatchObject({
        Notes__c: 'text',
        Tags__c: 'text',
        Pct__c: 'numeric',
        Ratio__c: 'numeric',
        Born__c: 'date',
        Alarm__c: 'time without time zone',
        When__c: 'timestamp with time zone',
        Big__c: 'bigint',
        Flag__c: 'boolean',
      });
      for (const [field, values] of Object.entries(VALUES)) {
        const rows = await h.rows<{ name: string; v: string | null }>(
          `SELECT "LastName" AS name, "${field}"::text AS v FROM ${table} WHERE "LastName" LIKE $1 ORDER BY "LastName"`,
          [`${field} %`],
        );
        expect({ table, field, values: rows.map((r) => r.v) }).toEqual({
          table,
          field,
          values: values.map(([, text]) => text),
        });
      }
      // A field never written is NULL on both paths (Bulk's "" included), a boolean false.
      const [empty] = await h.rows<Record<string, unknown>>(
        `SELECT ${Object.keys(VALUES)
          .map((f) => `"${f}"::text AS "${f}"`)
          .join(', ')} FROM ${table} WHERE "LastName" = 'Empty'`,
      );
      expect(empty).toEqual({
        ...Object.fromEntries(Object.keys(VALUES).map((f) => [f, null])),
        Flag__c: 'false',
      });
    }
  });
});
