/**
 * A REST read of many fields: Salesforce takes at most 16,384 bytes of URI and headers in a call
 * and refuses a longer one (414 URI Too Long, 431 Request Header Fields Too Large; Help article
 * 000386264), so a query of a wide object sent as `GET …/query?q=` would fail on every run. Such
 * a query goes in the body of a Composite request instead, as the article advises; its next pages
 * are GETs of the short `nextRecordsUrl`.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  DEFAULT_DESCRIBES_DIR,
  startSalesforceEmulator,
  type SalesforceEmulator,
} from '../../../emulators/salesforce';
import type { SalesforceConnector } from '../../../lambdas/connectors/salesforce';
import { runExtract } from '../../../lambdas/core';
import { TerminalError } from '../../../lambdas/shared/errors';
import { CANARY, connectTo, startExtractHarness, type ExtractHarness } from './harness';

/** 600 custom fields of 30 characters: about 19,000 characters of field list. */
const CUSTOM = Array.from({ length: 600 }, (_, i) => `Customer_Attribute_${String(i).padStart(3, '0')}__c`);
const SYSTEM = ['Id', 'Name', 'SystemModstamp', 'IsDeleted'];
/** More than a page of the batch size asked (200). */
const ROWS = 250;

describe('A REST read whose query is too long for a URL', () => {
  let h: ExtractHarness;
  let sf: SalesforceEmulator;
  let dir: string;
  let connector: SalesforceConnector;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'extract-wide-'));
    await writeFile(
      path.join(dir, 'Wide__c.json'),
      JSON.stringify({
        name: 'Wide__c',
        keyPrefix: 'a07',
        fields: [
          {
            name: 'Id',
            type: 'id',
            nillable: false,
            createable: false,
            updateable: false,
            defaultedOnCreate: true,
          },
          { name: 'Name', type: 'string', length: 80, nameField: true },
          ...CUSTOM.map((name) => ({ name, type: 'string', length: 40, custom: true })),
          { name: 'IsDeleted', type: 'boolean', nillable: false, createable: false, updateable: false },
          {
            name: 'SystemModstamp',
            type: 'datetime',
            nillable: false,
            createable: false,
            updateable: false,
            defaultedOnCreate: true,
          },
        ],
      }),
    );
    h = await startExtractHarness();
    sf = await startSalesforceEmulator({
      describesDir: [DEFAULT_DESCRIBES_DIR, dir],
      seed: {
        Wide__c: Array.from({ length: ROWS }, (_, i) => ({
          Name: `Wide ${i}`,
          [CUSTOM[0] as string]: `first ${i}`,
          [CUSTOM[599] as string]: `last ${i}`,
        })),
      },
      credentials: { password: CANARY.password, securityToken: CANARY.securityToken },
    });
    connector = await connectTo(sf, h.logger);
  });
  afterAll(async () => {
    await sf?.stop();
    await h?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const config = (where?: string) =>
    h.config([
      {
        from: 'salesforce',
        object: 'Wide__c',
        fields: [...SYSTEM, ...CUSTOM],
        table: 'sf_wide',
        ...(where ? { where } : {}),
      },
    ]);

  it('is sent in the body of a Composite request, and its next pages are read as usual', async () => {
    const result = await runExtract({ input: {} }, h.deps(config(), { salesforce: connector }), {
      salesforce: { restBatchSize: 200 },
    });
    expect(result.salesforce.Wide__c).toMatchObject({
      status: 'loaded',
      api: 'rest',
      rows: ROWS,
      inserted: ROWS,
    });
    expect(
      await h.rows(
        `SELECT "Name", "${CUSTOM[0]}" AS first, "${CUSTOM[599]}" AS last FROM sf_wide WHERE "Name" IN ('Wide 0', 'Wide 1') ORDER BY "Name"`,
      ),
    ).toEqual([
      { Name: 'Wide 0', first: 'first 0', last: 'last 0' },
      { Name: 'Wide 1', first: 'first 1', last: 'last 1' },
    ]);
  });

  it('pages by the batch size it asks for, and a refused query says what Salesforce said', async () => {
    const composites = sf.calls.count({ operation: 'composite' });
    const pages = sf.calls.count({ operation: 'queryMore' });
    const result = await runExtract({ input: { full: true } }, h.deps(config(), { salesforce: connector }), {
      salesforce: { restBatchSize: 200 },
    });
    expect(result.salesforce.Wide__c).toMatchObject({ rows: ROWS, full: true });
    // One Composite call for the first page of 200 rows, one GET of its nextRecordsUrl for the rest.
    expect(sf.calls.count({ operation: 'composite' }) - composites).toBe(1);
    expect(sf.calls.count({ operation: 'queryMore' }) - pages).toBe(1);

    // A condition long enough to go through Composite too, naming a field Wide__c does not have:
    // refused as a GET of it would be, named by the config key to correct.
    const names = Array.from({ length: 400 }, (_, i) => `'Somebody with a long name ${i}'`).join(', ');
    const before = sf.calls.count({ operation: 'composite' });
    const refused = await runExtract(
      { input: {} },
      h.deps(config(`Bogus__c = 'x' AND Name IN (${names})`), { salesforce: connector }),
    ).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(TerminalError);
    expect((refused as Error).message).toMatch(
      /^extract\[0\]\.where: Salesforce refused the condition "Bogus__c = 'x' AND .*INVALID_FIELD.*Bogus__c/s,
    );
    expect(sf.calls.count({ operation: 'composite' }) - before).toBe(1);
  });
});
