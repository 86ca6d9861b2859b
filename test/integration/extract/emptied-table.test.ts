/**
 * A task's table emptied by hand between runs (`TRUNCATE`, `DELETE`), to load it again: the next
 * read is full, as for a table dropped. An incremental read would only put back the rows changed
 * since the watermark, and the table would lack the others for good, without a word.
 */
import { runExtract } from '../../../lambdas/core';
import { leads, startExtractHarness, type ExtractHarness } from './harness';

const FIELDS = ['Id', 'LastName', 'Company', 'SystemModstamp', 'IsDeleted'];

describe("A task's table emptied between runs", () => {
  let h: ExtractHarness;

  beforeAll(async () => {
    h = await startExtractHarness({ seed: { Lead: leads(30) } });
  });
  afterAll(async () => h.close());

  const tasks = () =>
    h.config([
      { from: 'salesforce', object: 'Lead', fields: FIELDS, table: 'sf_lead', overlapSeconds: 0 },
      {
        from: 'salesforce',
        object: 'Lead',
        name: 'LeadBulk',
        fields: FIELDS,
        table: 'sales.sf_lead_bulk',
        deletes: 'remove',
        overlapSeconds: 0,
        bulkThreshold: 1,
      },
    ]);
  const run = () => runExtract({ input: {} }, h.deps(tasks()));
  const count = async (table: string): Promise<number> =>
    (await h.rows<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`))[0]?.n ?? -1;

  it('is read in full, with the COUNT() Prepare took for it, and then incrementally again', async () => {
    const first = await run();
    expect(first.salesforce.Lead).toMatchObject({ full: true, rows: 30 });
    expect(first.salesforce.LeadBulk).toMatchObject({ full: true, rows: 30, api: 'bulk' });
    const again = await run();
    expect(again.salesforce.Lead).toMatchObject({ full: false, rows: 1 });

    await h.rows('TRUNCATE sf_lead');
    await h.rows('DELETE FROM sales.sf_lead_bulk');
    const reload = await run();
    expect(reload.salesforce.Lead).toMatchObject({ full: true, rows: 30, inserted: 30 });
    expect(reload.salesforce.LeadBulk).toMatchObject({ full: true, rows: 30, inserted: 30, api: 'bulk' });
    expect(await count('sf_lead')).toBe(30);
    expect(await count('sales.sf_lead_bulk')).toBe(30);
    const planned = h.logger.records.filter((r) => r.message === 'Salesforce extract planned').slice(-2);
    expect(planned.map((r) => r.attributes.fullBecause)).toEqual([
      'table public.sf_lead is empty, though earlier reads loaded rows into it (emptied since, by hand: TRUNCATE, DELETE)',
      'table sales.sf_lead_bulk is empty, though earlier reads loaded rows into it (emptied since, by hand: TRUNCATE, DELETE)',
    ]);
    // Prepare counted the full reads: each extract reuses its count.
    expect(planned.map((r) => String(r.attributes.countFrom))).toEqual([
      expect.stringMatching(/^this run's count of /),
      expect.stringMatching(/^this run's count of /),
    ]);

    const after = await run();
    expect(after.salesforce.Lead).toMatchObject({ full: false, rows: 1, inserted: 0 });
    expect(after.salesforce.LeadBulk).toMatchObject({ full: false, inserted: 0 });
  });
});
