/**
 * The check step of a Bulk extract loads with the columns the extract step typed and checkpointed
 * with the job: in AWS it runs in a Lambda of its own, with a connector of its own, and describing
 * the object again there cost one API call per Bulk extract and run that Prepare's forecast did not
 * count. A job checkpointed by an earlier version, without its columns, is still loaded (its check
 * describes the object, as before).
 */
import {
  checkSalesforceExtract,
  extractSalesforce,
  prepare,
  type SalesforceExtractOutput,
} from '../../../lambdas/core';
import { LEAD_FIELDS, leads, startExtractHarness, type ExtractHarness } from './harness';

const ROWS = 300;

describe('Bulk extract check step: the columns come with the checkpointed job', () => {
  let h: ExtractHarness;
  const config = (table: string) =>
    h.config([{ from: 'salesforce', object: 'Lead', fields: LEAD_FIELDS, table, bulkThreshold: 1 }]);

  beforeAll(async () => {
    h = await startExtractHarness({ seed: { Lead: leads(ROWS) } });
    // One lead in the recycle bin: the full read (deletes 'flag', queryAll) loads it flagged.
    const [first] = h.sf.store.query('SELECT Id FROM Lead ORDER BY Id LIMIT 1').records;
    h.sf.store.delete([first?.Id as string]);
  });
  afterAll(() => h.close());

  const lastCall = (): number => h.sf.calls.all().at(-1)?.seq ?? 0;
  const describesSince = (since: number): number =>
    h.sf.calls.all().filter((c) => c.seq > since && c.operation === 'describe').length;

  /** Prepares a run and starts its Bulk extract with one connector; answers the pending job. */
  async function started(table: string): Promise<SalesforceExtractOutput> {
    const deps = h.deps(config(table));
    const { runId } = await prepare({ input: {} }, deps);
    const output = await extractSalesforce({ runId, task: 'Lead', full: false }, deps);
    expect(output.status).toBe('bulk-pending');
    return output;
  }

  /** Checks until loaded, each check with a connector of its own (a Lambda of its own). */
  async function checked(pending: SalesforceExtractOutput, table: string): Promise<SalesforceExtractOutput> {
    let output = pending;
    while (output.status === 'bulk-pending')
      output = await checkSalesforceExtract(output, h.deps(config(table)));
    return output;
  }

  const columnTypes = async (table: string): Promise<Record<string, string>> =>
    Object.fromEntries(
      (
        await h.rows<{ name: string; type: string }>(
          `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type
             FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped`,
          [`public.${table}`],
        )
      ).map((c) => [c.name, c.type]),
    );

  it('loads the results without describing the object again, typed and flagged as the extract step planned', async () => {
    const pending = await started('sf_lead_ckpt');
    const since = lastCall();
    const loaded = await checked(pending, 'sf_lead_ckpt');

    expect(loaded).toMatchObject({ status: 'loaded', api: 'bulk', full: true, rows: ROWS, deleted: 1 });
    expect(describesSince(since)).toBe(0);
    expect(await columnTypes('sf_lead_ckpt')).toEqual({
      Id: 'character varying(18)',
      FirstName: 'text',
      LastName: 'text',
      Company: 'text',
      Email: 'text',
      AnnualRevenue: 'numeric',
      NumberOfEmployees: 'integer',
      LeadScore__c: 'numeric',
      CreatedDate: 'timestamp with time zone',
      SystemModstamp: 'timestamp with time zone',
      IsDeleted: 'boolean',
    });
    expect(await h.rows(`SELECT count(*)::int AS n FROM sf_lead_ckpt WHERE "IsDeleted"`)).toEqual([{ n: 1 }]);
  });

  it('describes the object for a job checkpointed without its columns (by an earlier version)', async () => {
    const pending = await started('sf_lead_old_ckpt');
    if (pending.status !== 'bulk-pending') throw new Error('expected a pending job');
    await h.pool.query('UPDATE roundtrip.extract_jobs SET columns = NULL WHERE run_id = $1', [pending.runId]);
    const since = lastCall();
    const loaded = await checked(pending, 'sf_lead_old_ckpt');

    expect(loaded).toMatchObject({ status: 'loaded', api: 'bulk', full: true, rows: ROWS, deleted: 1 });
    expect(describesSince(since)).toBe(1);
    expect(await columnTypes('sf_lead_old_ckpt')).toEqual(await columnTypes('sf_lead_ckpt'));
  });

  // Last: it takes the column away for the rest of this file's database.
  it('starts and loads a Bulk read in a schema without the column (a run its Prepare migrated before the deploy)', async () => {
    await h.pool.query('ALTER TABLE roundtrip.extract_jobs DROP COLUMN columns');
    const pending = await started('sf_lead_old_schema');
    const since = lastCall();
    const loaded = await checked(pending, 'sf_lead_old_schema');

    expect(loaded).toMatchObject({ status: 'loaded', api: 'bulk', full: true, rows: ROWS, deleted: 1 });
    expect(describesSince(since)).toBe(1);
    expect(await columnTypes('sf_lead_old_schema')).toEqual(await columnTypes('sf_lead_ckpt'));
  });
});
