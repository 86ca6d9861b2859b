/**
 * Formula fields (describe `calculated: true`) change without SystemModstamp changing, so an
 * incremental task keeps their old values until a full read (docs/extract.md, "What an
 * incremental read does not see"). The extract cannot see such a change; it says so, once per
 * extract, naming the fields, when an incremental task lists any.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startSalesforceEmulator, type SalesforceEmulator } from '../../../emulators/salesforce';
import type { SalesforceExtractTaskInput } from '../../../lambdas/config';
import { runExtract } from '../../../lambdas/core';
import { CANARY, connectTo, leads, startExtractHarness, type ExtractHarness } from './harness';

const DEFAULT_DESCRIBES = path.join(__dirname, '../../../emulators/salesforce/describes');
const FIELDS = ['Id', 'LastName', 'Company', 'Score_Formula__c', 'SystemModstamp', 'IsDeleted'];
const WARNING = 'Formula fields in an incremental task keep stale values until a full read';

describe('Formula fields in a Salesforce extract', () => {
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
          {
            name: 'Score_Formula__c',
            type: 'double',
            precision: 18,
            scale: 0,
            calculated: true,
            createable: false,
          },
        ],
      }),
    );
    sf = await startSalesforceEmulator({
      describesDir: [DEFAULT_DESCRIBES, dir],
      seed: { Lead: leads(30).map((r, i) => ({ ...r, Score_Formula__c: i })) },
      credentials: { password: CANARY.password, securityToken: CANARY.securityToken },
    });
  });
  afterAll(async () => {
    await sf.stop();
    await h.close();
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    h.logger.records.length = 0;
  });

  const run = async (task: Partial<SalesforceExtractTaskInput>) => {
    const connector = await connectTo(sf, h.logger);
    const config = h.config([
      {
        from: 'salesforce',
        object: 'Lead',
        fields: FIELDS,
        table: 'sf_lead',
        ...task,
      } as SalesforceExtractTaskInput,
    ]);
    return runExtract({ input: {} }, h.deps(config, { salesforce: connector }));
  };
  const warnings = () => h.logger.records.filter((r) => r.message === WARNING);

  it('warns once per extract of an incremental task, naming the formula fields, through Bulk polls too', async () => {
    const first = await run({ bulkThreshold: 1, name: 'bulk' });
    expect(first.salesforce.bulk).toMatchObject({ api: 'bulk', rows: 30 });
    expect(warnings()).toEqual([
      expect.objectContaining({
        level: 'warn',
        attributes: expect.objectContaining({ fields: ['Score_Formula__c'] }),
      }),
    ]);
  });

  it('does not warn for a task that reads in full every run', async () => {
    const result = await run({ mode: 'full', table: 'sf_lead_full', name: 'full' });
    expect(result.salesforce.full).toMatchObject({ full: true, rows: 30 });
    expect(warnings()).toEqual([]);
  });
});
