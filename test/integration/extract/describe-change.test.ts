/**
 * A custom field added in Salesforce between two runs (the describe gains `Region__c`) and
 * listed in the task: the table gains the column, and the run reads everything once so that
 * the rows loaded before get their value too. Deleted again in Salesforce while the task lists it,
 * the extract says so, rather than to check its spelling.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startSalesforceEmulator, type SalesforceEmulator } from '../../../emulators/salesforce';
import { runExtract } from '../../../lambdas/core';
import { CANARY, connectTo, leads, startExtractHarness, type ExtractHarness } from './harness';

const DEFAULT_DESCRIBES = path.join(__dirname, '../../../emulators/salesforce/describes');
const FIELDS = ['Id', 'LastName', 'Company', 'SystemModstamp', 'IsDeleted'];

describe('A field added to the describe between runs, and deleted again', () => {
  let h: ExtractHarness;
  let later: SalesforceEmulator | undefined;
  let extraDir: string;

  beforeAll(async () => {
    h = await startExtractHarness({ seed: { Lead: leads(25) } });
    extraDir = await mkdtemp(path.join(os.tmpdir(), 'extract-describes-'));
    await writeFile(
      path.join(extraDir, 'Lead.json'),
      JSON.stringify({
        name: 'Lead',
        fields: [{ name: 'Region__c', type: 'string', length: 40, label: 'Region' }],
      }),
    );
  });
  afterAll(async () => {
    await later?.stop();
    await h.close();
    await rm(extraDir, { recursive: true, force: true });
  });

  it('becomes a new column, filled for every row by a full read', async () => {
    const first = await runExtract(
      { input: {} },
      h.deps(h.config([{ from: 'salesforce', object: 'Lead', fields: FIELDS, table: 'sf_lead' }])),
    );
    expect(first.salesforce.Lead).toMatchObject({ full: true, rows: 25, inserted: 25 });

    // The org after an admin added Region__c and filled it: the same records, same Ids and stamps.
    const records = [...h.sf.store.all('Lead')].map((r) => ({
      Id: r.Id,
      LastName: r.LastName,
      Company: r.Company,
      SystemModstamp: r.SystemModstamp,
      CreatedDate: r.CreatedDate,
      Region__c: `Region ${String(r.LastName).slice(-1)}`,
    }));
    later = await startSalesforceEmulator({
      describesDir: [DEFAULT_DESCRIBES, extraDir],
      seed: { Lead: records },
      credentials: { password: CANARY.password, securityToken: CANARY.securityToken },
    });
    const connector = await connectTo(later, h.logger);
    const config = h.config([
      { from: 'salesforce', object: 'Lead', fields: [...FIELDS, 'Region__c'], table: 'sf_lead' },
    ]);
    const second = await runExtract({ input: {} }, h.deps(config, { salesforce: connector }));
    expect(second.salesforce.Lead).toMatchObject({ full: true, rows: 25, inserted: 0, updated: 25 });
    expect(
      h.logger.records.find(
        (r) =>
          r.message === 'Salesforce extract planned' &&
          r.attributes.full === true &&
          r.attributes.fullBecause !== 'no watermark yet',
      )?.attributes.fullBecause,
    ).toBe('new columns Region__c must be filled for every row');
    expect(await h.rows(`SELECT count(*)::int AS n FROM sf_lead WHERE "Region__c" LIKE 'Region _'`)).toEqual([
      { n: 25 },
    ]);
    const type = await h.rows(
      `SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute WHERE attrelid = 'sf_lead'::regclass AND attname = 'Region__c'`,
    );
    expect(type).toEqual([{ t: 'text' }]);

    // And the run after that is incremental again.
    const third = await runExtract({ input: {} }, h.deps(config, { salesforce: connector }));
    expect(third.salesforce.Lead).toMatchObject({ full: false, inserted: 0, updated: 0 });
    const stale = (): unknown =>
      h.logger.records.find(
        (r) => r.message === 'Columns the task no longer reads keep the values of their last read',
      )?.attributes;
    expect(stale()).toBeUndefined();

    // The field taken out of the task again: its column stays, with its values, and the run says so.
    await runExtract(
      { input: {} },
      h.deps(h.config([{ from: 'salesforce', object: 'Lead', fields: FIELDS, table: 'sf_lead' }]), {
        salesforce: connector,
      }),
    );
    expect(stale()).toMatchObject({
      table: 'public.sf_lead',
      columns: ['Region__c'],
      fix: 'drop them (ALTER TABLE … DROP COLUMN) once no transform reads them, or list their fields in extract[0].fields again',
    });
    expect(await h.rows(`SELECT count(*)::int AS n FROM sf_lead WHERE "Region__c" LIKE 'Region _'`)).toEqual([
      { n: 25 },
    ]);
  });

  it('deleted in Salesforce after a read had it: the error says so and what to do, not to check the spelling', async () => {
    const connector = await connectTo(later as SalesforceEmulator, h.logger);
    const withRegion = h.config([
      { from: 'salesforce', object: 'Lead', fields: [...FIELDS, 'Region__c'], table: 'sf_lead' },
    ]);
    // Listed again: read in full (its column kept the values of an earlier read).
    const again = await runExtract({ input: {} }, h.deps(withRegion, { salesforce: connector }));
    expect(again.salesforce.Lead).toMatchObject({ full: true, rows: 25 });

    // The org where an admin deleted Region__c: the first emulator's describe has none.
    await expect(runExtract({ input: {} }, h.deps(withRegion))).rejects.toThrow(
      'Extract task Lead: Lead has no field "Region__c" (extract[0].fields[5]; the last read had it) ' +
        '(deleted or renamed in Salesforce since, or hidden from the integration user by its field-level security: ' +
        "take it out of extract[0].fields (its column keeps the values of the last read), or restore the field or the user's access to it)",
    );
    // Taken out of the task, as it says: the run goes on, the column keeps its values.
    const without = await runExtract(
      { input: {} },
      h.deps(h.config([{ from: 'salesforce', object: 'Lead', fields: FIELDS, table: 'sf_lead' }])),
    );
    expect(without.salesforce.Lead).toMatchObject({ status: 'loaded' });
    expect(await h.rows(`SELECT count(*)::int AS n FROM sf_lead WHERE "Region__c" LIKE 'Region _'`)).toEqual([
      { n: 25 },
    ]);
  });
});
