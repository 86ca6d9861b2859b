/**
 * A task whose `where` (or `deletes`) changes between runs: the rows already loaded are not those
 * the task now selects, so the next read is full — a widened filter loads the older rows it now
 * matches, a narrowed one with `deletes: 'remove'` removes the rows it no longer does. An
 * unchanged task keeps reading only changes, which do not include a row that stops matching: it
 * keeps its last values until a full read (docs/extract.md, "What an incremental read does not see").
 */
import { runExtract } from '../../../lambdas/core';
import { leads, startExtractHarness, type ExtractHarness } from './harness';

const FIELDS = ['Id', 'LastName', 'Company', 'SystemModstamp', 'IsDeleted'];

describe('A task whose filter changes between runs', () => {
  let h: ExtractHarness;

  beforeAll(async () => {
    h = await startExtractHarness({ seed: { Lead: leads(26) } });
  });
  afterAll(async () => h.close());

  const run = (where: string, deletes: 'flag' | 'remove' = 'flag') =>
    runExtract(
      { input: {} },
      h.deps(
        h.config([
          { from: 'salesforce', object: 'Lead', fields: FIELDS, table: 'sf_scoped', where, deletes },
        ]),
      ),
    );
  const companies = async (): Promise<string[]> =>
    (await h.pool.query(`SELECT DISTINCT "Company" FROM sf_scoped ORDER BY 1`)).rows.map((r) => r.Company);

  it('reads in full when the where changes, loading the older rows a widened filter now matches', async () => {
    const first = await run(`Company = 'Company 1'`);
    expect(first.salesforce.Lead).toMatchObject({ full: true, rows: 2 });

    // Unchanged: an incremental read (its overlap window re-reads the newest rows, nothing else).
    const again = await run(`Company = 'Company 1'`);
    expect(again.salesforce.Lead).toMatchObject({ full: false, inserted: 0 });

    // Widened: the records of Company 2 were not modified since the watermark, yet they now belong.
    const widened = await run(`Company IN ('Company 1', 'Company 2')`);
    expect(widened.salesforce.Lead).toMatchObject({ full: true, rows: 4, inserted: 2 });
    expect(await companies()).toEqual(['Company 1', 'Company 2']);
    expect(
      h.logger.records.find(
        (r) =>
          r.message === 'Salesforce extract planned' &&
          String(r.attributes.fullBecause).startsWith("the task's object, where or deletes changed"),
      ),
    ).toBeDefined();

    // Narrowed, deletes 'remove': the full read removes what the filter no longer selects (with
    // 'flag', a row that merely stopped matching is kept: it is not deleted in Salesforce).
    const narrowed = await run(`Company = 'Company 1'`, 'remove');
    expect(narrowed.salesforce.Lead).toMatchObject({ full: true, rows: 2 });
    expect(await companies()).toEqual(['Company 1']);
  });

  it('keeps the last values of a row that stops matching an unchanged where until a full read, which removes it (deletes remove)', async () => {
    const config = h.config([
      {
        from: 'salesforce',
        object: 'Lead',
        fields: FIELDS,
        table: 'sf_leaving',
        where: `Company = 'Company 3'`,
        deletes: 'remove',
        name: 'Leaving',
      },
    ]);
    const first = await runExtract({ input: {} }, h.deps(config));
    expect(first.salesforce.Leaving).toMatchObject({ full: true, rows: 2 });
    const [id] = (await h.rows<{ Id: string }>(`SELECT "Id" FROM sf_leaving ORDER BY "Id" LIMIT 1`)).map(
      (r) => r.Id,
    );
    h.sf.store.update('Lead', [{ Id: id, Company: 'Moved elsewhere' }]);
    const row = () => h.rows(`SELECT "Company" FROM sf_leaving WHERE "Id" = $1`, [id]);

    // The incremental read asks for changed rows that match: the moved lead is not among them.
    const incremental = await runExtract({ input: {} }, h.deps(config));
    expect(incremental.salesforce.Leaving).toMatchObject({ full: false, updated: 0, deleted: 0 });
    expect(await row()).toEqual([{ Company: 'Company 3' }]);

    // A later second: the full read's start is known to the second, and a row changed within it
    // is left for the next full read (lambdas/core/run-state.ts, reconcileMissingRows).
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const full = await runExtract({ input: { full: true } }, h.deps(config));
    expect(full.salesforce.Leaving).toMatchObject({ full: true, rows: 1, deleted: 1 });
    expect(await row()).toEqual([]);
  });
});
