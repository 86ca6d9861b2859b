/**
 * Two pipelines sharing one PostgreSQL database, each extracting Lead into its own schema. The
 * state tables are keyed by task name, and a task's name defaults to its object: both pipelines'
 * "Lead" would share one watermark, and the second pipeline's incremental read would skip what the
 * first one's already read. A task name belongs to the first pipeline that runs it
 * (`roundtrip.task_owners`); another pipeline's run with that name is refused in Prepare, before
 * anything is read or written. With distinct names each keeps its own watermark.
 */
import type { WritebackTaskInput } from '../../../lambdas/config';
import { prepare, runExtract } from '../../../lambdas/core';
import { TerminalError } from '../../../lambdas/shared/errors';
import { leads, startExtractHarness, type ExtractHarness } from './harness';

const FIELDS = ['Id', 'FirstName', 'LastName', 'Company', 'SystemModstamp', 'IsDeleted'];
const WRITEBACK: WritebackTaskInput = {
  to: 'salesforce',
  object: 'Lead',
  from: 'lead_reverse',
  mode: 'update',
  key: 'Id',
  fields: { LeadScore__c: 'lead_score' },
};

describe('Pipelines sharing one database', () => {
  let h: ExtractHarness;
  /**
   * A pipeline extracting Lead into `<schema>.sf_lead`, with a write-back of the same object; the
   * tasks' names are the defaults ("Lead", "Lead-update") unless `prefix` is given.
   */
  const pipeline = (name: string, schema: string, prefix?: string) =>
    h.config(
      [
        {
          from: 'salesforce',
          object: 'Lead',
          fields: FIELDS,
          table: 'sf_lead',
          ...(prefix ? { name: `${prefix}-Lead` } : {}),
        },
      ],
      {
        name,
        postgres: { secret: 'roundtrip/postgres', schema, ssl: { mode: 'disable' } },
        writeback: [{ ...WRITEBACK, ...(prefix ? { name: `${prefix}-Lead-update` } : {}) }],
      },
    );
  const owners = () => h.rows(`SELECT task, pipeline FROM roundtrip.task_owners ORDER BY task`);

  beforeEach(async () => {
    h = await startExtractHarness({ seed: { Lead: leads(30) } });
  });
  afterEach(() => h.close());

  it('refuses a task name another pipeline uses before reading or writing anything, naming the task, that pipeline and the fix', async () => {
    const marketing = pipeline('marketing', 'mkt');
    const first = await runExtract({ input: {} }, h.deps(marketing));
    expect(await owners()).toEqual([
      { task: 'Lead', pipeline: 'marketing' },
      { task: 'Lead-update', pipeline: 'marketing' },
    ]);

    const callsBefore = h.sf.calls.count();
    const refused = await runExtract({ input: {} }, h.deps(pipeline('sales', 'sales'))).then(
      () => undefined,
      (err: unknown) => err as Error,
    );
    expect(refused).toBeInstanceOf(TerminalError);
    expect(refused?.message).toMatch(
      /^Pipeline "sales" cannot use task names "Lead" \(used by pipeline "marketing" since \S+\), "Lead-update" \(used by pipeline "marketing" since \S+\): in one PostgreSQL database a task name belongs to one pipeline/,
    );
    expect(refused?.message).toContain(
      'Give each of these tasks a distinct `name` in one of the configs (or, if pipeline "marketing" was renamed or removed, release its names: DELETE FROM roundtrip.task_owners WHERE pipeline = \'marketing\')',
    );
    // Nothing read from Salesforce, nothing written: no table, the watermark untouched, no claim.
    expect(h.sf.calls.count()).toBe(callsBefore);
    expect(await h.rows(`SELECT to_regclass('sales.sf_lead') AS t`)).toEqual([{ t: null }]);
    expect(await h.rows(`SELECT task, last_run_id FROM roundtrip.extract_state`)).toEqual([
      { task: 'Lead', last_run_id: first.prepare.runId },
    ]);
    expect(await owners()).toEqual([
      { task: 'Lead', pipeline: 'marketing' },
      { task: 'Lead-update', pipeline: 'marketing' },
    ]);

    // The owner goes on: its own claim, a retried Prepare of a run included.
    const again = await runExtract({ input: {} }, h.deps(marketing));
    expect(again.salesforce.Lead).toMatchObject({ full: false });
    await expect(
      prepare({ input: {}, runId: again.prepare.runId }, h.deps(marketing)),
    ).resolves.toMatchObject({
      runId: again.prepare.runId,
    });
  });

  it('claims only the names a run selects, and a refused run claims none of them', async () => {
    await runExtract({ input: { tasks: ['Lead'] } }, h.deps(pipeline('marketing', 'mkt')));
    expect(await owners()).toEqual([{ task: 'Lead', pipeline: 'marketing' }]);

    // "sales-Lead" is free, "Lead-update" too, "Lead" is not: the run fails and claims nothing.
    const sales = h.config(
      [
        { from: 'salesforce', object: 'Lead', fields: FIELDS, table: 'sf_lead', name: 'sales-Lead' },
        { from: 'salesforce', object: 'Lead', fields: FIELDS, table: 'sf_lead_2', name: 'Lead' },
      ],
      {
        name: 'sales',
        postgres: { secret: 'roundtrip/postgres', schema: 'sales', ssl: { mode: 'disable' } },
        writeback: [WRITEBACK],
      },
    );
    await expect(runExtract({ input: {} }, h.deps(sales))).rejects.toThrow(
      /^Pipeline "sales" cannot use task name "Lead" \(used by pipeline "marketing" since \S+\)/,
    );
    expect(await owners()).toEqual([{ task: 'Lead', pipeline: 'marketing' }]);
  });

  it('gives a name to one of two pipelines whose first runs start together', async () => {
    const results = await Promise.allSettled([
      prepare({ input: {} }, h.deps(pipeline('marketing', 'mkt'))),
      prepare({ input: {} }, h.deps(pipeline('sales', 'sales'))),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    const winner = results[0]?.status === 'fulfilled' ? 'marketing' : 'sales';
    expect(await owners()).toEqual([
      { task: 'Lead', pipeline: winner },
      { task: 'Lead-update', pipeline: winner },
    ]);
  });

  it('with distinct task names, each pipeline keeps its own watermark and neither misses a change', async () => {
    const marketing = pipeline('marketing', 'mkt');
    const sales = pipeline('sales', 'sales', 'sales');
    await runExtract({ input: {} }, h.deps(marketing));
    await runExtract({ input: {} }, h.deps(sales));

    const ids = h.sf.store.query('SELECT Id FROM Lead ORDER BY Id').records.map((r) => r.Id as string);
    h.sf.store.update('Lead', [{ Id: ids[0], FirstName: 'Changed' }]);
    const [created] = h.sf.store.create('Lead', [{ LastName: 'Created', Company: 'New' }]);

    // The marketing pipeline's run, then the sales pipeline's: both incremental.
    const m = await runExtract({ input: {} }, h.deps(marketing));
    const s = await runExtract({ input: {} }, h.deps(sales));
    expect(m.salesforce.Lead).toMatchObject({ full: false, inserted: 1, updated: 1 });
    expect(s.salesforce['sales-Lead']).toMatchObject({ full: false, inserted: 1, updated: 1 });
    for (const schema of ['mkt', 'sales']) {
      expect(await h.rows(`SELECT "FirstName" FROM ${schema}.sf_lead WHERE "Id" = $1`, [ids[0]])).toEqual([
        { FirstName: 'Changed' },
      ]);
      expect(await h.rows(`SELECT "LastName" FROM ${schema}.sf_lead WHERE "Id" = $1`, [created?.id])).toEqual(
        [{ LastName: 'Created' }],
      );
    }
    expect(await h.rows(`SELECT task FROM roundtrip.extract_state ORDER BY task`)).toEqual([
      { task: 'Lead' },
      { task: 'sales-Lead' },
    ]);
    expect(await owners()).toEqual([
      { task: 'Lead', pipeline: 'marketing' },
      { task: 'Lead-update', pipeline: 'marketing' },
      { task: 'sales-Lead', pipeline: 'sales' },
      { task: 'sales-Lead-update', pipeline: 'sales' },
    ]);
  });
});
