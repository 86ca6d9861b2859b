/**
 * An extract table belongs to one pipeline (`roundtrip.table_owners`, migration 14), and a table
 * that holds rows no run of the pipeline loaded is not taken: an extract merges rows into its
 * table and adds columns, a keyless Athena load replaces every row, so a `table` that names an
 * application's table (a typo) or another pipeline's would change data roundtrip does not own.
 * Prepare refuses such a run before anything is read or written, naming the task's config path.
 */
import { prepare, runExtract } from '../../../lambdas/core';
import { TerminalError } from '../../../lambdas/shared/errors';
import { leads, startExtractHarness, type ExtractHarness } from './harness';

const FIELDS = ['Id', 'FirstName', 'LastName', 'Company', 'SystemModstamp', 'IsDeleted'];

describe('Extract tables that are not the pipeline’s', () => {
  let h: ExtractHarness;
  const pipeline = (name: string, table: string, schema = 'public') =>
    h.config([{ from: 'salesforce', object: 'Lead', fields: FIELDS, table, name: `${name}-Lead` }], {
      name,
      postgres: { secret: 'roundtrip/postgres', schema, ssl: { mode: 'disable' } },
    });
  const owners = () =>
    h.rows(`SELECT schema_name, table_name, pipeline, task FROM roundtrip.table_owners ORDER BY 1, 2`);
  const refusal = (promise: Promise<unknown>): Promise<Error | undefined> =>
    promise.then(
      () => undefined,
      (err: unknown) => err as Error,
    );

  beforeEach(async () => {
    h = await startExtractHarness({
      seed: { Lead: leads(20) },
      athenaFiles: { 'marketing/customers.csv': 'email,lifetime_value\nng@acme.test,10\nli@acme.test,20\n' },
    });
  });
  afterEach(() => h.close());

  it('refuses a table that holds rows no run of the pipeline loaded, and leaves it as it was', async () => {
    await h.pool.query(`CREATE TABLE public.precious (note text)`);
    await h.pool.query(`INSERT INTO public.precious VALUES ('keep me'), ('me too')`);
    const calls = h.sf.calls.count();

    const refused = await refusal(runExtract({ input: {} }, h.deps(pipeline('sales', 'precious'))));

    expect(refused).toBeInstanceOf(TerminalError);
    expect(refused?.message).toBe(
      `Pipeline "sales" cannot load this table; nothing was read or written: extract task sales-Lead (extract[0].table): table public.precious exists, holds rows, and no run of this pipeline loaded it, and its load merges rows into the table by key (and adds columns to it): it would change data roundtrip does not own. Name a table of its own in extract[0].table, or, if this table was made for the task, claim it for the pipeline first: INSERT INTO roundtrip.table_owners (schema_name, table_name, pipeline, task) VALUES ('public', 'precious', 'sales', 'sales-Lead')`,
    );
    // Nothing read, nothing written: the rows and columns as they were, no claim, no task name.
    expect(h.sf.calls.count()).toBe(calls);
    expect(await h.rows(`SELECT * FROM public.precious ORDER BY note`)).toEqual([
      { note: 'keep me' },
      { note: 'me too' },
    ]);
    expect(await owners()).toEqual([]);
    expect(await h.rows(`SELECT task FROM roundtrip.task_owners`)).toEqual([]);
  });

  it('refuses a keyless Athena load, which would replace every row, into such a table: a dry-run plan too', async () => {
    await h.pool.query(`CREATE TABLE public.precious2 (note text)`);
    await h.pool.query(`INSERT INTO public.precious2 VALUES ('keep me')`);
    const config = h.config(
      [
        {
          from: 'athena',
          name: 'customers',
          table: 'precious2',
          query: 'SELECT email, lifetime_value FROM customers',
        },
      ],
      { name: 'marketing' },
    );

    const calls = h.athenaEmulator.calls.length;
    const refused = await refusal(runExtract({ input: { dryRun: true } }, h.deps(config)));

    expect(refused?.message).toContain(
      'extract task customers (extract[0].table): table public.precious2 exists, holds rows, and no run of this pipeline loaded it, and its load replaces every row of the table: it would change data roundtrip does not own',
    );
    expect(h.athenaEmulator.calls.length).toBe(calls);
    expect(await h.rows(`SELECT * FROM public.precious2`)).toEqual([{ note: 'keep me' }]);
  });

  it('takes a table made for the task once it is claimed as the refusal says, or an empty one', async () => {
    // Made for the task, with its key (a Salesforce extract merges by Id) and a row of its own.
    await h.pool.query(`CREATE TABLE public.made_by_hand ("Id" text PRIMARY KEY, note text)`);
    await h.pool.query(`INSERT INTO public.made_by_hand VALUES ('00Q000000000001AAA', 'old')`);
    const config = pipeline('sales', 'made_by_hand');
    const refused = await refusal(runExtract({ input: {} }, h.deps(config)));
    const claim = /INSERT INTO roundtrip\.table_owners .*$/.exec(refused?.message ?? '')?.[0];
    expect(claim).toBeDefined();
    await h.pool.query(claim as string);

    const run = await runExtract({ input: {} }, h.deps(config));
    expect(run.salesforce['sales-Lead']).toMatchObject({ rows: 20 });
    expect(await h.rows(`SELECT count(*)::int AS n FROM public.made_by_hand`)).toEqual([{ n: 21 }]);

    // An empty table holds nothing to lose: claimed by the run.
    await h.pool.query(`CREATE TABLE public.empty_one ("Id" text PRIMARY KEY)`);
    await runExtract({ input: {} }, h.deps(pipeline('marketing', 'empty_one')));
    expect(await owners()).toEqual([
      { schema_name: 'public', table_name: 'empty_one', pipeline: 'marketing', task: 'marketing-Lead' },
      { schema_name: 'public', table_name: 'made_by_hand', pipeline: 'sales', task: 'sales-Lead' },
    ]);
  });

  it("refuses an empty table made for a Salesforce task with another key, offering to change the table's key, which the config cannot", async () => {
    // Made by hand with a key of its own (a surrogate id): a Salesforce extract merges by Id.
    await h.pool.query(
      `CREATE TABLE public.keyed_by_hand (id serial PRIMARY KEY, "Id" varchar(18), note text)`,
    );
    const config = pipeline('sales', 'keyed_by_hand');
    const refused = await refusal(runExtract({ input: {} }, h.deps(config)));
    expect(refused).toBeInstanceOf(TerminalError);
    expect(refused?.message).toBe(
      'Extract task sales-Lead: table "public"."keyed_by_hand" has primary key (id), but a Salesforce extract merges its rows by their Id, ' +
        'which must be the table\'s primary key. Either change the table\'s key (ALTER TABLE "public"."keyed_by_hand" DROP CONSTRAINT "keyed_by_hand_pkey", ADD PRIMARY KEY ("Id"); ' +
        "refused while a key repeats or is NULL), or name a table of the task's own in extract[0].table (the load makes it); the table was left as it was",
    );
    expect(await h.rows(`SELECT count(*)::int AS n FROM public.keyed_by_hand`)).toEqual([{ n: 0 }]);

    // The statement the refusal gives, run: then the table loads.
    const alter = /ALTER TABLE [^;]*/.exec(refused?.message ?? '')?.[0];
    await h.pool.query(alter as string);
    const run = await runExtract({ input: {} }, h.deps(config));
    expect(run.salesforce['sales-Lead']).toMatchObject({ rows: 20, inserted: 20 });
    expect(await h.rows(`SELECT count(*)::int AS n FROM public.keyed_by_hand`)).toEqual([{ n: 20 }]);
  });

  it('refuses a table another pipeline loads, naming it and how to release it', async () => {
    await runExtract({ input: {} }, h.deps(pipeline('marketing', 'sf_lead')));
    expect(await owners()).toEqual([
      { schema_name: 'public', table_name: 'sf_lead', pipeline: 'marketing', task: 'marketing-Lead' },
    ]);

    const refused = await refusal(runExtract({ input: {} }, h.deps(pipeline('sales', 'sf_lead'))));
    expect(refused?.message).toMatch(
      /^Pipeline "sales" cannot load this table; nothing was read or written: extract task sales-Lead \(extract\[0\]\.table\): table public\.sf_lead is loaded by task marketing-Lead of pipeline "marketing" \(since \S+\), and its load merges rows into the table by key \(and adds columns to it\): the two pipelines would overwrite each other's rows\. Name a table of its own in extract\[0\]\.table \(or, if pipeline "marketing" was renamed or removed, release its tables: DELETE FROM roundtrip\.table_owners WHERE pipeline = 'marketing'\)$/,
    );
    // Not even an empty table of another pipeline's: it is its to fill.
    await h.pool.query(`TRUNCATE public.sf_lead`);
    await expect(runExtract({ input: {} }, h.deps(pipeline('sales', 'sf_lead')))).rejects.toThrow(
      /is loaded by task marketing-Lead of pipeline "marketing"/,
    );
    // The same name in another schema is another table.
    await runExtract({ input: {} }, h.deps(pipeline('sales', 'sf_lead', 'sales')));
    expect((await owners()).map((o) => `${o.schema_name}.${o.table_name} ${o.pipeline}`)).toEqual([
      'public.sf_lead marketing',
      'sales.sf_lead sales',
    ]);
  });

  it('claims a table the pipeline loaded before the claims were kept, and follows a task renamed', async () => {
    const config = pipeline('sales', 'sf_lead');
    const first = await runExtract({ input: {} }, h.deps(config));
    // As a database migrated from version 13: the table loaded, its claim not recorded.
    await h.pool.query(`DELETE FROM roundtrip.table_owners`);
    await runExtract({ input: {} }, h.deps(config));
    expect(await owners()).toEqual([
      { schema_name: 'public', table_name: 'sf_lead', pipeline: 'sales', task: 'sales-Lead' },
    ]);

    // The task renamed in the config: the table stays the pipeline's, under the new name.
    const renamed = h.config(
      [{ from: 'salesforce', object: 'Lead', fields: FIELDS, table: 'sf_lead', name: 'sales-leads' }],
      {
        name: 'sales',
        postgres: { secret: 'roundtrip/postgres', schema: 'public', ssl: { mode: 'disable' } },
      },
    );
    await prepare({ input: {} }, h.deps(renamed));
    expect(await owners()).toEqual([
      { schema_name: 'public', table_name: 'sf_lead', pipeline: 'sales', task: 'sales-leads' },
    ]);
    expect(first.prepare.runId).toBeDefined();
  });
});
