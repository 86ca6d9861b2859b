/**
 * Records that change while an extract reads. A query's rows are fixed when it starts (a REST
 * cursor, a Bulk job), but a row of it read later can carry a change made after the start, with a
 * newer SystemModstamp, while a record created in the meantime is not among the rows at all. The
 * watermark must not jump past such a record: the next incremental read has to find it.
 */
import {
  checkSalesforceExtract,
  extractSalesforce,
  prepare,
  runExtract,
  type SalesforceExtractOutput,
} from '../../../lambdas/core';
import { connectTo, LEAD_FIELDS, leads, startExtractHarness, type ExtractHarness } from './harness';

const ROWS = 300;

describe('Salesforce extract: records changed while the read runs', () => {
  let h: ExtractHarness;
  const config = (table: string, bulkThreshold: number) =>
    h.config([
      {
        from: 'salesforce',
        object: 'Lead',
        fields: LEAD_FIELDS,
        table,
        bulkThreshold,
        overlapSeconds: 0,
      },
    ]);

  /** A connector that calls `afterPage(n)` once the n-th page of a query (not a COUNT()) has arrived. */
  const connectWithPageHook = (afterPage: (page: number) => Promise<void>) => {
    let queryPages = 0;
    return connectTo(h.sf, h.logger, {
      fetch: async (input, init) => {
        const res = await fetch(input, init);
        const url = String(input);
        if (/\/query(All)?[/?]/.test(url) && !/COUNT\(\)/.test(decodeURIComponent(url))) {
          queryPages += 1;
          await afterPage(queryPages);
        }
        return res;
      },
    });
  };

  beforeEach(async () => {
    h = await startExtractHarness({ seed: { Lead: leads(ROWS) } });
  });
  afterEach(() => h.close());

  it('Bulk: a record created after the job started is read by the next run, though a later change of a row in the job moved past it', async () => {
    const cfg = config('sf_lead_bulk', 1);
    const first = await runExtract({ input: {} }, h.deps(cfg), {
      salesforce: { bulkResultPageRecords: 100 },
    });
    expect(first.salesforce.Lead).toMatchObject({ api: 'bulk', rows: ROWS });

    const ids = h.sf.store.query('SELECT Id FROM Lead ORDER BY Id').records.map((r) => r.Id as string);
    h.sf.store.update('Lead', [{ Id: ids[0], FirstName: 'Changed before the job' }]);
    const deps = h.deps(cfg);
    const { runId } = await prepare({ input: {} }, deps);
    let output: SalesforceExtractOutput = await extractSalesforce({ runId, task: 'Lead', full: false }, deps);
    expect(output.status).toBe('bulk-pending');
    // While the job runs: a new lead, then a change to a row the job reads.
    await new Promise((resolve) => setTimeout(resolve, 20));
    const [created] = h.sf.store.create('Lead', [{ LastName: 'Created during the job', Company: 'Mid' }]);
    // A later second: SOQL datetimes have no fraction, so the next read's bound is whole seconds.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    h.sf.store.update('Lead', [{ Id: ids[0], FirstName: 'Changed during the job' }]);
    while (output.status === 'bulk-pending') output = await checkSalesforceExtract(output, deps);

    const next = await runExtract({ input: {} }, h.deps(cfg), { salesforce: { bulkResultPageRecords: 100 } });
    expect(next.salesforce.Lead).toMatchObject({ full: false });
    expect(await h.rows(`SELECT "LastName" FROM sf_lead_bulk WHERE "Id" = $1`, [created?.id])).toEqual([
      { LastName: 'Created during the job' },
    ]);
    expect(await h.rows(`SELECT "FirstName" FROM sf_lead_bulk WHERE "Id" = $1`, [ids[0]])).toEqual([
      { FirstName: 'Changed during the job' },
    ]);
  });

  it('REST: a record created between two pages is read by the next run, though a later change of a row on the second page moved past it', async () => {
    const cfg = config('sf_lead_rest', 100_000);
    const first = await runExtract({ input: {} }, h.deps(cfg));
    expect(first.salesforce.Lead).toMatchObject({ api: 'rest', rows: ROWS });

    // 250 changed rows: two REST pages of 200.
    const ids = h.sf.store.query('SELECT Id FROM Lead ORDER BY Id').records.map((r) => r.Id as string);
    h.sf.store.update(
      'Lead',
      ids.slice(0, 250).map((Id) => ({ Id, FirstName: 'Changed before the read' })),
    );
    const lastOfRead = ids[249] as string;
    let createdId: string | undefined;
    let queryPages = 0;
    const connector = await connectWithPageHook(async (page) => {
      queryPages = page;
      if (page !== 1) return;
      // Between the first and the second page: a new lead, then a change to a row of page 2.
      await new Promise((resolve) => setTimeout(resolve, 20));
      createdId =
        h.sf.store.create('Lead', [{ LastName: 'Created during the read', Company: 'Mid' }])[0]?.id ??
        undefined;
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      h.sf.store.update('Lead', [{ Id: lastOfRead, FirstName: 'Changed during the read' }]);
    });
    const second = await runExtract({ input: {} }, h.deps(cfg, { salesforce: connector }), {
      salesforce: { restBatchSize: 200 },
    });
    // The 250 changed rows and the previous watermark's row (the bound is inclusive).
    expect(second.salesforce.Lead).toMatchObject({ full: false, api: 'rest', rows: 251 });
    expect(queryPages).toBe(2);

    await runExtract({ input: {} }, h.deps(cfg));
    expect(await h.rows(`SELECT "LastName" FROM sf_lead_rest WHERE "Id" = $1`, [createdId])).toEqual([
      { LastName: 'Created during the read' },
    ]);
    expect(await h.rows(`SELECT "FirstName" FROM sf_lead_rest WHERE "Id" = $1`, [lastOfRead])).toEqual([
      { FirstName: 'Changed during the read' },
    ]);
  });

  it('an overlapping run: the older values of a read that started earlier never overwrite newer ones a later run loaded', async () => {
    const cfg = config('sf_lead_overlap', 100_000);
    await runExtract({ input: {} }, h.deps(cfg));
    const ids = h.sf.store.query('SELECT Id FROM Lead ORDER BY Id').records.map((r) => r.Id as string);
    h.sf.store.update(
      'Lead',
      ids.slice(0, 250).map((Id) => ({ Id, FirstName: 'Changed before run A' })),
    );
    // The first row run A reads (page 1): the lowest stamp, then the lowest Id.
    const [x] = h.sf.store
      .query(
        `SELECT Id FROM Lead WHERE FirstName = 'Changed before run A' ORDER BY SystemModstamp, Id LIMIT 1`,
      )
      .records.map((r) => r.Id as string);
    let runB: Promise<unknown> | undefined;
    const connector = await connectWithPageHook(async (page) => {
      if (page !== 1) return;
      // Run A has page 1 (x as it was). Now x changes, another lead changes a second later, and
      // run B (a scheduled run overlapping A, say) reads both and commits before A goes on.
      await new Promise((resolve) => setTimeout(resolve, 20));
      h.sf.store.update('Lead', [{ Id: x, FirstName: 'Changed while run A read' }]);
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      h.sf.store.update('Lead', [{ Id: ids[299], FirstName: 'Changed later' }]);
      runB = runExtract({ input: {} }, h.deps(cfg));
      await runB;
    });
    const a = await runExtract({ input: {} }, h.deps(cfg, { salesforce: connector }), {
      salesforce: { restBatchSize: 200 },
    });
    expect(a.salesforce.Lead).toMatchObject({ full: false, api: 'rest' });
    expect(runB).toBeDefined();

    await runExtract({ input: {} }, h.deps(cfg));
    expect(await h.rows(`SELECT "FirstName" FROM sf_lead_overlap WHERE "Id" = $1`, [x])).toEqual([
      { FirstName: 'Changed while run A read' },
    ]);
  });

  it.each(['remove', 'flag'] as const)(
    'a full read (deletes %s) overlapping an incremental run neither removes nor flags the record that run loaded after the read started',
    async (deletes) => {
      const table = `sf_lead_full_${deletes}`;
      const cfg = h.config([
        {
          from: 'salesforce',
          object: 'Lead',
          fields: LEAD_FIELDS,
          table,
          deletes,
          bulkThreshold: 100_000,
          overlapSeconds: 0,
        },
      ]);
      await runExtract({ input: {} }, h.deps(cfg));
      let createdId: string | null | undefined;
      const connector = await connectWithPageHook(async (page) => {
        if (page !== 1) return;
        // Run A (full, a manual one) has its first page. A lead is created, and run B (the
        // scheduled incremental one) loads it and commits before A goes on: A's query started
        // before the lead existed, so A does not return it.
        createdId = h.sf.store.create('Lead', [{ LastName: 'Created during A', Company: 'Mid' }])[0]?.id;
        const b = await runExtract({ input: {} }, h.deps(cfg));
        expect(b.salesforce.Lead).toMatchObject({ full: false, inserted: 1 });
      });
      const a = await runExtract({ input: { full: true } }, h.deps(cfg, { salesforce: connector }), {
        salesforce: { restBatchSize: 200 },
      });
      expect(a.salesforce.Lead).toMatchObject({ full: true, api: 'rest', rows: ROWS, deleted: 0 });
      expect(createdId).toBeDefined();
      expect(
        await h.rows(`SELECT "LastName", "IsDeleted" FROM ${table} WHERE "Id" = $1`, [createdId]),
      ).toEqual([{ LastName: 'Created during A', IsDeleted: false }]);
    },
  );
});
