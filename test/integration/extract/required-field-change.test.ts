/**
 * A required field (describe `nillable: false`: Lead's Company) that stops being required: dropped
 * from the task, deleted in Salesforce (which forces it out of the task: an unknown field stops
 * every run), or made optional by an admin. Rows without a value must still load, on every run: a
 * new table is NOT NULL on its key only, and a table an earlier version created with the field's
 * column NOT NULL has that constraint dropped.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startSalesforceEmulator, type SalesforceEmulator } from '../../../emulators/salesforce';
import { runExtract } from '../../../lambdas/core';
import { CANARY, connectTo, leads, startExtractHarness, type ExtractHarness } from './harness';

const DEFAULT_DESCRIBES = path.join(__dirname, '../../../emulators/salesforce/describes');
const FIELDS = ['Id', 'FirstName', 'LastName', 'Company', 'SystemModstamp', 'IsDeleted'];

describe('A required field that stops being required', () => {
  let h: ExtractHarness;
  let later: SalesforceEmulator | undefined;
  const task = (fields: string[]) =>
    h.config([{ from: 'salesforce', object: 'Lead', fields, table: 'sf_lead' }]);
  const notNullColumns = async (): Promise<string[]> =>
    (
      await h.rows<{ name: string }>(
        `SELECT attname AS name FROM pg_attribute
          WHERE attrelid = 'sf_lead'::regclass AND attnum > 0 AND NOT attisdropped AND attnotnull
          ORDER BY attnum`,
      )
    ).map((r) => r.name);
  /** The table as versions before made it: a required field's column NOT NULL. */
  const asAnEarlierVersionMadeIt = () => h.rows(`ALTER TABLE sf_lead ALTER COLUMN "Company" SET NOT NULL`);

  beforeEach(async () => {
    h = await startExtractHarness({ seed: { Lead: leads(20) } });
  });
  afterEach(async () => {
    await later?.stop();
    later = undefined;
    await h.close();
  });

  it('is not made NOT NULL when the table is created: only the key is', async () => {
    const describe = await (await h.connect()).describe('Lead');
    expect(describe.fields.find((f) => f.name === 'Company')?.nillable).toBe(false);
    await runExtract({ input: {} }, h.deps(task(FIELDS)));
    expect(await notNullColumns()).toEqual(['Id']);
  });

  it('dropped from the task: later records still load, and the NOT NULL an earlier version made goes', async () => {
    await runExtract({ input: {} }, h.deps(task(FIELDS)));
    await asAnEarlierVersionMadeIt();

    const [created] = h.sf.store.create('Lead', [{ LastName: 'Created later', Company: 'Acme' }]);
    const second = await runExtract({ input: {} }, h.deps(task(FIELDS.filter((f) => f !== 'Company'))));
    expect(second.salesforce.Lead).toMatchObject({ full: false, inserted: 1 });
    expect(await h.rows(`SELECT "LastName", "Company" FROM sf_lead WHERE "Id" = $1`, [created?.id])).toEqual([
      { LastName: 'Created later', Company: null },
    ]);
    expect(await notNullColumns()).toEqual(['Id']);
    expect(h.logger.records.find((r) => r.message === 'Evolved table')?.attributes).toMatchObject({
      table: 'public.sf_lead',
      relaxed: ['Company'],
    });
  });

  it('made optional by an admin: a record without a value loads', async () => {
    const config = task(FIELDS);
    await runExtract({ input: {} }, h.deps(config));
    await asAnEarlierVersionMadeIt();

    // The same org after an admin unticked "Required" on Company (describe: nillable true).
    const dir = await mkdtemp(path.join(os.tmpdir(), 'extract-describes-'));
    try {
      await writeFile(
        path.join(dir, 'Lead.json'),
        JSON.stringify({
          name: 'Lead',
          fields: [{ name: 'Company', type: 'string', length: 255, nillable: true }],
        }),
      );
      const records = [...h.sf.store.all('Lead')].map((r) => ({
        Id: r.Id,
        FirstName: r.FirstName,
        LastName: r.LastName,
        Company: r.Company,
        SystemModstamp: r.SystemModstamp,
        CreatedDate: r.CreatedDate,
      }));
      later = await startSalesforceEmulator({
        describesDir: [DEFAULT_DESCRIBES, dir],
        seed: { Lead: records },
        credentials: { password: CANARY.password, securityToken: CANARY.securityToken },
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const [created] = later.store.create('Lead', [{ LastName: 'No company' }]);
    const connector = await connectTo(later, h.logger);
    const second = await runExtract({ input: {} }, h.deps(config, { salesforce: connector }));
    expect(second.salesforce.Lead).toMatchObject({ full: false, inserted: 1 });
    expect(await h.rows(`SELECT "Company" FROM sf_lead WHERE "Id" = $1`, [created?.id])).toEqual([
      { Company: null },
    ]);
    expect(await notNullColumns()).toEqual(['Id']);
  });
});
