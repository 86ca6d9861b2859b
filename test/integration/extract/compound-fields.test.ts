/**
 * Compound fields (address, location) are read over REST or SOAP only: a Bulk API 2.0 query job
 * that selects one is refused at its create ("Selecting compound data not supported in Bulk
 * Query"). A task that lists one is read over REST whatever its row count, so it does not start
 * failing, run after run, once its table grows past bulkThreshold.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startSalesforceEmulator, type SalesforceEmulator } from '../../../emulators/salesforce';
import type { SalesforceExtractTaskInput } from '../../../lambdas/config';
import { runExtract } from '../../../lambdas/core';
import { CANARY, connectTo, leads, startExtractHarness, type ExtractHarness } from './harness';

const DEFAULT_DESCRIBES = path.join(__dirname, '../../../emulators/salesforce/describes');

describe('Compound fields in a Salesforce extract', () => {
  let h: ExtractHarness;
  let sf: SalesforceEmulator;
  let dir: string;

  beforeAll(async () => {
    h = await startExtractHarness();
    dir = await mkdtemp(path.join(os.tmpdir(), 'extract-describes-'));
    // Lead's compound address, as Salesforce describes it (not createable: its parts are).
    await writeFile(
      path.join(dir, 'Lead.json'),
      JSON.stringify({
        name: 'Lead',
        fields: [
          { name: 'Address', type: 'address', soapType: 'urn:address', createable: false, updateable: false },
        ],
      }),
    );
    sf = await startSalesforceEmulator({
      describesDir: [DEFAULT_DESCRIBES, dir],
      seed: { Lead: leads(30) },
      credentials: { password: CANARY.password, securityToken: CANARY.securityToken },
    });
  });
  afterAll(async () => {
    await sf.stop();
    await h.close();
    await rm(dir, { recursive: true, force: true });
  });

  const run = async (task: Partial<SalesforceExtractTaskInput>) => {
    const connector = await connectTo(sf, h.logger);
    const config = h.config([
      {
        from: 'salesforce',
        object: 'Lead',
        fields: ['Id', 'LastName', 'SystemModstamp', 'IsDeleted'],
        table: 'sf_lead',
        ...task,
      } as SalesforceExtractTaskInput,
    ]);
    return runExtract({ input: {} }, h.deps(config, { salesforce: connector }));
  };

  it('reads a task listing a compound field over REST past bulkThreshold, which Bulk would refuse', async () => {
    sf.calls.clear();
    const result = await run({
      name: 'compound',
      table: 'sf_lead_address',
      fields: ['Id', 'LastName', 'Address', 'SystemModstamp', 'IsDeleted'],
      bulkThreshold: 1,
    });
    expect(result.salesforce.compound).toMatchObject({ api: 'rest', rows: 30 });
    expect(sf.calls.count((c) => c.operation.startsWith('bulk.'))).toBe(0);
    const rows = await h.rows<{ n: string }>('SELECT count(*) AS n FROM sf_lead_address');
    expect(Number(rows[0]?.n)).toBe(30);
    expect(h.logger.records).toContainEqual(
      expect.objectContaining({
        message: 'Salesforce extract planned',
        attributes: expect.objectContaining({
          api: 'rest',
          restBecause: 'Bulk queries cannot read the compound fields Address',
        }),
      }),
    );
  });

  it('still reads a task without one through Bulk from bulkThreshold on', async () => {
    const result = await run({ name: 'plain', table: 'sf_lead_plain', bulkThreshold: 1 });
    expect(result.salesforce.plain).toMatchObject({ api: 'bulk', rows: 30 });
  });

  /** Prepare's forecast of task `name`, as its log line gives it, from the records logged since `from`. */
  const forecastOf = (name: string, from: number): unknown =>
    h.logger.records
      .slice(from)
      .filter((r) => r.message === 'Salesforce API forecast')
      .flatMap((r) => (r.attributes as { perTask: { task: string }[] }).perTask)
      .find((t) => t.task === name);

  it("forecasts the REST read, not Bulk's, for a compound field: by the describe before the table exists, then by its jsonb column", async () => {
    const task = {
      name: 'forecast',
      table: 'sf_lead_forecast',
      fields: ['Id', 'LastName', 'Address', 'SystemModstamp', 'IsDeleted'],
      bulkThreshold: 1,
      mode: 'full' as const,
    };
    // First run: no table yet, so Prepare asks the describe: its own calls are /limits, the
    // COUNT() and the describe (each run connects anew: nothing cached from an earlier run).
    let from = h.logger.records.length;
    const first = await run(task);
    expect(first.salesforce.forecast).toMatchObject({ api: 'rest', rows: 30 });
    expect(forecastOf('forecast', from)).toEqual({ task: 'forecast', rows: 30, api: 'rest', apiCalls: 2 });
    expect(first.prepare.apiCalls).toBe(3);
    // Second run: the table's Address column is jsonb, which no other Salesforce type is: no describe in Prepare.
    from = h.logger.records.length;
    const second = await run(task);
    expect(forecastOf('forecast', from)).toEqual({ task: 'forecast', rows: 30, api: 'rest', apiCalls: 2 });
    expect(second.prepare.apiCalls).toBe(2);
    // Without a compound field the forecast is Bulk's: by the describe on the first run (no table
    // yet), by the table's columns after it.
    const plainTask = {
      ...task,
      name: 'forecast_plain',
      table: 'sf_lead_forecast_plain',
      fields: ['Id', 'LastName', 'SystemModstamp', 'IsDeleted'],
    };
    for (const preparesCalls of [3, 2]) {
      from = h.logger.records.length;
      const plain = await run(plainTask);
      expect(forecastOf('forecast_plain', from)).toMatchObject({ task: 'forecast_plain', api: 'bulk' });
      expect(plain.salesforce.forecast_plain).toMatchObject({ api: 'bulk' });
      expect(plain.prepare.apiCalls).toBe(preparesCalls);
    }
  });
});
