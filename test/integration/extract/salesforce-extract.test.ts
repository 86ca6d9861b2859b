/**
 * The Salesforce extract end to end: the local driver runs Prepare and the extract steps against
 * the Salesforce emulator (jsforce over HTTP) into the real PostgreSQL. One task reads over REST,
 * a second one (same object, another table, `bulkThreshold: 1`) through a Bulk API 2.0 query job
 * with small result pages, so both paths see the same data.
 */
import { runExtract } from '../../../lambdas/core';
import { TerminalError } from '../../../lambdas/shared/errors';
import { LEAD_FIELDS, startExtractHarness, type ExtractHarness } from './harness';

const T0 = Date.UTC(2024, 0, 1);
const at = (minutes: number): string => new Date(T0 + minutes * 60_000).toISOString();

/** Values that break naive CSV, JSON or type handling. */
const HARD = [
  {
    FirstName: 'Müller–Ødegård 山田 😀',
    LastName: 'Comma, "Quote" & Co',
    Company: 'Line\nBreak\r\nand CRLF',
    Email: null,
    AnnualRevenue: 9007199254740991,
    NumberOfEmployees: 99999999,
    CreatedDate: '2024-02-29T23:30:00.000+09:00',
  },
  { FirstName: '', LastName: '"', Company: ',', Email: 'q@x.test', AnnualRevenue: 0, LeadScore__c: -5 },
  {
    FirstName: 'Back\\slash',
    LastName: "O'Brien",
    Company: 'Tab\there',
    Email: 'r@x.test',
    LeadScore__c: 999,
  },
];
const ORDINARY = 40;

const seed = [
  ...HARD.map((lead, i) => ({ ...lead, SystemModstamp: at(i) })),
  ...Array.from({ length: ORDINARY }, (_, i) => ({
    FirstName: `F${i}`,
    LastName: `Lead ${i}`,
    Company: `Company ${i % 7}`,
    Email: `lead${i}@example.test`,
    NumberOfEmployees: i,
    SystemModstamp: at(10 + i),
  })),
];
const TOTAL = seed.length;

describe('Salesforce extract (REST and Bulk) into PostgreSQL', () => {
  let h: ExtractHarness;
  const config = () =>
    h.config([
      {
        from: 'salesforce',
        object: 'Lead',
        fields: LEAD_FIELDS,
        table: 'sf_lead',
        deletes: 'flag',
        overlapSeconds: 0,
      },
      {
        from: 'salesforce',
        object: 'Lead',
        name: 'LeadLive',
        // Fields as an admin might type them: other case, no SystemModstamp or IsDeleted.
        fields: [
          'Id',
          'firstname',
          'LastName',
          'Company',
          'Email',
          'AnnualRevenue',
          'NumberOfEmployees',
          'CreatedDate',
        ],
        table: 'sf_lead_live',
        deletes: 'remove',
        overlapSeconds: 120,
        bulkThreshold: 1,
      },
    ]);
  const run = (input: Record<string, unknown> = {}) =>
    runExtract({ input }, h.deps(config()), { salesforce: { bulkResultPageRecords: 7 } });
  const watermarkOf = async (task: string) =>
    (
      await h.rows<{ watermark: Date | null; watermark_id: string | null }>(
        'SELECT watermark, watermark_id FROM roundtrip.extract_state WHERE task = $1',
        [task],
      )
    )[0];

  beforeAll(async () => {
    h = await startExtractHarness({ seed: { Lead: seed } });
  });
  afterAll(() => h.close());

  it('reads everything on the first run, over REST and through a Bulk job, with hard values intact', async () => {
    const callsBefore = h.sf.calls.count({ counted: true });
    const result = await run();
    expect(result.prepare.tasks).toEqual({ salesforce: ['Lead', 'LeadLive'], athena: [], writeback: [] });
    expect(result.salesforce.Lead).toMatchObject({
      status: 'loaded',
      api: 'rest',
      full: true,
      rows: TOTAL,
      inserted: TOTAL,
    });
    expect(result.salesforce.LeadLive).toMatchObject({
      status: 'loaded',
      api: 'bulk',
      full: true,
      rows: TOTAL,
      inserted: TOTAL,
    });
    // Bulk: create, at least one poll, ceil(43 / 7) = 7 result pages; REST: one page.
    expect(h.sf.calls.count({ operation: 'bulk.query.results' })).toBe(Math.ceil(TOTAL / 7));
    // Per task: REST = one page; Bulk = create, the polls, the pages. The COUNT() of each is
    // Prepare's, which the extract reuses. The describe of Lead is Prepare's too: with no table
    // yet and a count past bulkThreshold, it asks whether LeadLive selects a field Bulk cannot
    // read; both tasks find it in the connector's cache.
    expect(result.salesforce.Lead?.apiCalls).toBe(1);
    const polls = h.sf.calls.count({ operation: 'bulk.query.poll' });
    expect(result.salesforce.LeadLive?.apiCalls).toBe(1 + polls + Math.ceil(TOTAL / 7));
    // Prepare's forecast covers what was spent (the emulator counts every call).
    const spent = h.sf.calls.count({ counted: true }) - callsBefore;
    expect(result.prepare.forecast.salesforceApiCalls).toBeGreaterThanOrEqual(spent - 2);

    for (const table of ['sf_lead', 'sf_lead_live']) {
      const rows = await h.rows<Record<string, unknown>>(
        `SELECT "FirstName", "LastName", "Company", "Email", "AnnualRevenue"::text AS revenue,
                "NumberOfEmployees", "CreatedDate" FROM ${table} WHERE "LastName" IN ($1, $2, $3) ORDER BY "LastName"`,
        HARD.map((l) => l.LastName),
      );
      expect(rows).toEqual([
        expect.objectContaining({
          LastName: '"',
          FirstName: null,
          Company: ',',
          Email: 'q@x.test',
          revenue: '0',
        }),
        expect.objectContaining({
          LastName: 'Comma, "Quote" & Co',
          FirstName: 'Müller–Ødegård 山田 😀',
          Company: 'Line\nBreak\r\nand CRLF',
          Email: null,
          revenue: '9007199254740991',
          NumberOfEmployees: 99999999,
          CreatedDate: new Date('2024-02-29T14:30:00.000Z'),
        }),
        expect.objectContaining({ LastName: "O'Brien", FirstName: 'Back\\slash', Company: 'Tab\there' }),
      ]);
    }
    const score = await h.rows<{ s: string }>(
      `SELECT "LeadScore__c"::text AS s FROM sf_lead WHERE "LastName" = 'O''Brien'`,
    );
    expect(score[0]?.s).toBe('999');
    // The columns the task did not list were added, in describe casing.
    const live = await h.rows<{ column_name: string }>(
      `SELECT column_name FROM information_schema.columns WHERE table_name = 'sf_lead_live' ORDER BY ordinal_position`,
    );
    expect(live.map((c) => c.column_name)).toEqual([
      'Id',
      'FirstName',
      'LastName',
      'Company',
      'Email',
      'AnnualRevenue',
      'NumberOfEmployees',
      'CreatedDate',
      'SystemModstamp',
      'IsDeleted',
    ]);
    const mark = await watermarkOf('Lead');
    expect(mark?.watermark).toEqual(new Date(at(10 + ORDINARY - 1)));
    const summary = await h.rows<{ summary: { extract: Record<string, { rows: number }> } }>(
      'SELECT summary FROM roundtrip.runs WHERE run_id = $1',
      [result.prepare.runId],
    );
    expect(summary[0]?.summary.extract.Lead?.rows).toBe(TOTAL);
    expect(summary[0]?.summary.extract.LeadLive?.rows).toBe(TOTAL);
  });

  it('reads only changes on the next run, and never misses a row modified exactly at the watermark', async () => {
    const before = await watermarkOf('Lead');
    const boundary = before?.watermark as Date;
    // A lead committed late with exactly the watermark's timestamp.
    const [lateId] = h.sf.store.seed('Lead', [
      { LastName: 'Late at the boundary', Company: 'Tie', SystemModstamp: boundary.toISOString() },
    ]);
    const [changed] = h.sf.store.query(`SELECT Id FROM Lead WHERE LastName = 'Lead 3'`).records;
    h.sf.store.update('Lead', [{ Id: changed?.Id, Company: 'Changed Inc' }]);

    const result = await run();
    const lead = result.salesforce.Lead;
    // Rows at >= the watermark: the previous newest row, the late one, and the changed one.
    expect(lead).toMatchObject({ full: false, api: 'rest', rows: 3, inserted: 1, updated: 1, deleted: 0 });
    expect(await h.rows(`SELECT "Company" FROM sf_lead WHERE "Id" = $1`, [lateId])).toEqual([
      { Company: 'Tie' },
    ]);
    expect(await h.rows(`SELECT "Company" FROM sf_lead WHERE "LastName" = 'Lead 3'`)).toEqual([
      { Company: 'Changed Inc' },
    ]);
    // The Bulk task saw the same changes (its overlap window re-reads a little more).
    expect(result.salesforce.LeadLive).toMatchObject({ full: false, api: 'bulk', inserted: 1, updated: 1 });
    expect(await h.rows('SELECT count(*)::int AS n FROM sf_lead_live')).toEqual([{ n: TOTAL + 1 }]);
    const after = await watermarkOf('Lead');
    expect(after?.watermark?.getTime()).toBeGreaterThan(boundary.getTime());
    // The newest row read and its Id; or, when that change fell in the second the read started
    // (Salesforce's clock, whole seconds), that second, without an Id: never past the read's start.
    const changedStamp = new Date(h.sf.store.get(changed?.Id as string)?.SystemModstamp as string);
    if (after?.watermark_id === null) {
      expect(after.watermark?.getTime()).toBe(Math.floor(changedStamp.getTime() / 1000) * 1000);
    } else {
      expect(after?.watermark_id).toBe(changed?.Id);
      expect(after?.watermark?.getTime()).toBe(changedStamp.getTime());
    }
  });

  it('flags deletes in one table and removes them from the other', async () => {
    const [victim] = h.sf.store.query(`SELECT Id FROM Lead WHERE LastName = 'Lead 5'`).records;
    h.sf.store.delete([victim?.Id as string]);
    const result = await run();
    expect(result.salesforce.Lead).toMatchObject({ full: false, deleted: 1 });
    expect(result.salesforce.LeadLive).toMatchObject({ full: false, deleted: 1 });
    expect(await h.rows(`SELECT "IsDeleted" FROM sf_lead WHERE "Id" = $1`, [victim?.Id])).toEqual([
      { IsDeleted: true },
    ]);
    expect(await h.rows(`SELECT 1 FROM sf_lead_live WHERE "Id" = $1`, [victim?.Id])).toEqual([]);
  });

  it('re-reads everything when the run asks for it, and drops or flags rows Salesforce no longer has', async () => {
    // Rows Salesforce no longer returns at all (hard-deleted, purged from the recycle bin),
    // loaded by an earlier read: last changed before this read starts.
    const ghost = '00Q000000000999AAA';
    for (const table of ['sf_lead', 'sf_lead_live']) {
      await h.rows(
        `INSERT INTO ${table} ("Id", "LastName", "Company", "CreatedDate", "SystemModstamp", "IsDeleted")
         VALUES ($1, 'Ghost', 'Gone Inc', now() - interval '1 day', now() - interval '1 day', false)`,
        [ghost],
      );
    }
    const result = await run({ full: true });
    expect(result.prepare.full).toBe(true);
    expect(result.salesforce.Lead).toMatchObject({
      full: true,
      api: 'rest',
      rows: TOTAL + 1,
      inserted: 0,
      updated: 0,
      deleted: 1,
    });
    expect(result.salesforce.LeadLive).toMatchObject({ full: true, api: 'bulk', rows: TOTAL, deleted: 1 });
    expect(await h.rows(`SELECT "IsDeleted" FROM sf_lead WHERE "Id" = $1`, [ghost])).toEqual([
      { IsDeleted: true },
    ]);
    expect(await h.rows(`SELECT 1 FROM sf_lead_live WHERE "Id" = $1`, [ghost])).toEqual([]);
    expect(await h.rows('SELECT count(*)::int AS n FROM sf_lead_live')).toEqual([{ n: TOTAL }]);
  });

  it('runs only the tasks asked for, and names unknown ones', async () => {
    const only = await run({ tasks: ['LeadLive'] });
    expect(Object.keys(only.salesforce)).toEqual(['LeadLive']);
    await expect(run({ tasks: ['Lead', 'Contact', 'Nope'] })).rejects.toThrow(
      new TerminalError(
        'Unknown tasks "Contact", "Nope" in the run input; pipeline extract-test has: "Lead", "LeadLive"',
      ),
    );
    // A name in another case or a letter off is named with the task meant.
    await expect(run({ tasks: ['leadlive', 'Laed'] })).rejects.toThrow(
      new TerminalError(
        'Unknown tasks "leadlive" (did you mean "LeadLive"?), "Laed" (did you mean "Lead"?) in the run input; pipeline extract-test has: "Lead", "LeadLive"',
      ),
    );
    await expect(run({ ful: true })).rejects.toThrow(
      /Invalid input of step Prepare: input: Unrecognized key: "ful"/,
    );
  });

  it('is idempotent for a retried Prepare with the same run id', async () => {
    const deps = h.deps(config());
    const { prepare } = await import('../../../lambdas/core');
    const callsBefore = h.sf.calls.count({ counted: true });
    const first = await prepare({ runId: 'exec-retried-1', input: { tasks: ['Lead'] } }, deps);
    const second = await prepare({ runId: 'exec-retried-1', input: { tasks: ['Lead'] } }, deps);
    expect(second.startedAt).toBe(first.startedAt);
    expect(
      await h.rows(`SELECT count(*)::int AS n FROM roundtrip.runs WHERE run_id = 'exec-retried-1'`),
    ).toEqual([{ n: 1 }]);
    // Both attempts' calls are the run's: the retry adds its own to the first's.
    const spent = h.sf.calls.count({ counted: true }) - callsBefore;
    expect(first.apiCalls).toBeGreaterThan(0);
    expect(second.apiCalls).toBe(spent);
    expect(
      await h.rows(
        `SELECT (summary->'prepare'->>'apiCalls')::int AS n FROM roundtrip.runs WHERE run_id = 'exec-retried-1'`,
      ),
    ).toEqual([{ n: spent }]);
  });

  it('refuses a run whose forecast exceeds the per-run budget or eats into the daily reserve', async () => {
    const tight = h.config(
      [
        {
          from: 'salesforce',
          object: 'Lead',
          fields: LEAD_FIELDS,
          table: 'sf_lead_budget',
          bulkThreshold: 5,
        },
      ],
      { budget: { maxApiCallsPerRun: 6, reserveDailyApiPercent: 20 } },
    );
    // A first read of the ~45 rows through Bulk: the extract's describe, create, 10 polls, 1 page
    // = 13 > 6 (its COUNT() is Prepare's, among Prepare's own calls).
    await expect(runExtract({ input: {} }, h.deps(tight))).rejects.toThrow(
      /Run refused: it is forecast to make \d+ Salesforce API calls \(Lead: 13 \(bulk, \d+ rows\)\), more than budget\.maxApiCallsPerRun 6/,
    );
    const reserve = h.config(
      [{ from: 'salesforce', object: 'Lead', fields: LEAD_FIELDS, table: 'sf_lead_budget' }],
      { budget: { maxApiCallsPerRun: 5000, reserveDailyApiPercent: 50 } },
    );
    h.sf.faults.set({ dailyApiLimit: h.sf.limits.used + 40 });
    try {
      await expect(runExtract({ input: {} }, h.deps(reserve))).rejects.toThrow(
        /of the org's daily allowance \d+ of \d+ remain, which would leave \d+, below the reserve of \d+ \(budget\.reserveDailyApiPercent 50%\)/,
      );
    } finally {
      h.sf.faults.set({ dailyApiLimit: 15_000 });
    }
    expect(await h.rows(`SELECT to_regclass('public.sf_lead_budget') AS t`)).toEqual([{ t: null }]);
  });
});
