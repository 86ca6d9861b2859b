/**
 * A Salesforce extract's `COUNT()` is asked once per run: Prepare counts each extract's read for
 * its forecast and stores the count (`roundtrip.extract_counts`), and the extract step reuses it
 * when it reads with the same SOQL (same filter, same lower bound, through the same
 * `query`/`queryAll`, which counts the deleted rows `queryAll` returns). A read counted at 0 rows
 * sends no query: its empty result is loaded as an empty page would be. Against the Salesforce
 * emulator, counting the calls it answered; the rows and watermarks are those the reads always
 * gave.
 */
import {
  extractSalesforce,
  prepare,
  runExtract,
  runSalesforceTask,
  type CoreDeps,
} from '../../../lambdas/core';
import { LEAD_FIELDS, leads, startExtractHarness, type ExtractHarness } from './harness';

const ROWS = 40;
const DELETED = 5;
/** The emulator's operations that sign in or out: not API calls. */
const SIGN_IN = new Set(['login', 'logout', 'oauth.token', 'oauth.authorize', 'oauth.revoke']);

describe('Salesforce extract COUNT() asked once per run', () => {
  let h: ExtractHarness;
  const config = () =>
    h.config([
      {
        from: 'salesforce',
        object: 'Lead',
        name: 'LeadFlag',
        fields: LEAD_FIELDS,
        table: 'sf_lead_flag',
        deletes: 'flag',
        bulkThreshold: 100_000,
      },
      {
        from: 'salesforce',
        object: 'Contact',
        name: 'NoContacts',
        fields: ['Id', 'LastName', 'Email'],
        table: 'sf_contact_none',
      },
    ]);

  beforeAll(async () => {
    h = await startExtractHarness({ seed: { Lead: leads(ROWS) } });
    // In the recycle bin: a flagged read (queryAll) returns them, and its COUNT() counts them.
    const ids = h.sf.store.query(`SELECT Id FROM Lead ORDER BY Id LIMIT ${DELETED}`).records;
    h.sf.store.delete(ids.map((r) => r.Id as string));
    // A second on: the Date header of the next COUNT() (whole seconds), which bounds the watermark,
    // is after the deletes' SystemModstamp.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
  });
  afterAll(() => h.close());

  /** The emulator's newest call so far, to look at the calls after it. */
  const lastCall = (): number => h.sf.calls.all().at(-1)?.seq ?? 0;
  /** The operations of the API calls after `since`, in order. */
  const operationsSince = (since: number): string[] =>
    h.sf.calls
      .all()
      .filter((c) => c.seq > since && !SIGN_IN.has(c.operation))
      .map((c) => c.operation);
  const watermarks = async (): Promise<Record<string, string | null>> =>
    Object.fromEntries(
      (
        await h.rows<{ task: string; watermark: Date | null }>(
          'SELECT task, watermark FROM roundtrip.extract_state ORDER BY task',
        )
      ).map((r) => [r.task, r.watermark?.toISOString() ?? null]),
    );
  /** The newest SystemModstamp of the Leads in the emulator, deleted ones included. */
  const newestLeadChange = (): string =>
    [...h.sf.store.all('Lead')]
      .map((r) => new Date(r.SystemModstamp as string).toISOString())
      .sort()
      .at(-1) as string;
  /** The Leads as the emulator holds them (Id, IsDeleted), deleted ones included. */
  const leadsInSalesforce = (): { Id: string; IsDeleted: boolean }[] =>
    [...h.sf.store.all('Lead')]
      .map((r) => ({ Id: r.Id as string, IsDeleted: r.IsDeleted === true }))
      .sort((a, b) => (a.Id < b.Id ? -1 : a.Id > b.Id ? 1 : 0));

  it("reads with Prepare's COUNT(): one call less per extract, none but the describe for an empty read, the rows and watermarks unchanged", async () => {
    // First run: LeadFlag reads everything through queryAll, Contact has no record.
    let since = lastCall();
    const first = await runExtract({ input: {} }, h.deps(config()));
    const firstOps = operationsSince(since);

    // Prepare: /limits and the two COUNT()s. LeadFlag: its describe and one page (no COUNT()).
    // NoContacts: its describe only (no COUNT(), no empty page).
    expect(first.prepare.apiCalls).toBe(3);
    expect(first.salesforce.LeadFlag).toMatchObject({
      status: 'loaded',
      api: 'rest',
      full: true,
      rows: ROWS,
    });
    expect(first.salesforce.LeadFlag?.apiCalls).toBe(2);
    expect(first.salesforce.NoContacts).toMatchObject({ status: 'loaded', full: true, rows: 0, inserted: 0 });
    expect(first.salesforce.NoContacts?.apiCalls).toBe(1);
    // LeadFlag's COUNT() and page, NoContacts' COUNT() (deletes flagged by default: queryAll).
    expect(firstOps.filter((o) => o === 'queryAll')).toHaveLength(3);
    expect(firstOps.filter((o) => o === 'describe')).toHaveLength(2);
    expect(firstOps).toHaveLength(1 + 3 + 2);

    // The count Prepare stored is queryAll's (deleted rows included): the rows the read returned.
    const counts = await h.rows<{ task: string; soql: string; include_deleted: boolean; row_count: string }>(
      'SELECT task, soql, include_deleted, row_count FROM roundtrip.extract_counts WHERE run_id = $1 ORDER BY task',
      [first.prepare.runId],
    );
    expect(counts).toEqual([
      { task: 'LeadFlag', soql: 'SELECT COUNT() FROM Lead', include_deleted: true, row_count: String(ROWS) },
      { task: 'NoContacts', soql: 'SELECT COUNT() FROM Contact', include_deleted: true, row_count: '0' },
    ]);
    // The rows: every Lead, the deleted ones flagged; the empty read made its table all the same.
    expect(await h.rows('SELECT "Id", "IsDeleted" FROM sf_lead_flag ORDER BY "Id" COLLATE "C"')).toEqual(
      leadsInSalesforce(),
    );
    expect(await h.rows('SELECT count(*)::int AS n FROM sf_contact_none')).toEqual([{ n: 0 }]);
    const afterFirst = await watermarks();
    expect(afterFirst).toEqual({ LeadFlag: newestLeadChange(), NoContacts: null });
    const leadRows = await h.rows('SELECT * FROM sf_lead_flag ORDER BY "Id" COLLATE "C"');

    // A run that changes nothing: LeadFlag re-reads its overlap window (one page), NoContacts
    // still has nothing to read.
    since = lastCall();
    const again = await runExtract({ input: {} }, h.deps(config()));
    const againOps = operationsSince(since);

    expect(again.salesforce.LeadFlag).toMatchObject({ full: false, inserted: 0, updated: 0 });
    expect(again.salesforce.LeadFlag?.rows).toBeGreaterThan(0);
    expect(again.salesforce.LeadFlag?.apiCalls).toBe(2);
    expect(again.salesforce.NoContacts).toMatchObject({ full: true, rows: 0 });
    expect(again.salesforce.NoContacts?.apiCalls).toBe(1);
    // /limits, two COUNT()s, two describes, one page: 6 calls, of a run that made 8 before.
    expect(againOps).toHaveLength(6);
    expect(again.prepare.apiCalls).toBe(3);
    expect(await watermarks()).toEqual(afterFirst);
    expect(await h.rows('SELECT * FROM sf_lead_flag ORDER BY "Id" COLLATE "C"')).toEqual(leadRows);
    expect(await h.rows('SELECT count(*)::int AS n FROM sf_contact_none')).toEqual([{ n: 0 }]);
  });

  it('counts again when the read is not the one Prepare counted: the watermark moved between Prepare and the extract', async () => {
    const deps: CoreDeps = h.deps(config());
    const { runId } = await prepare({ input: { tasks: ['LeadFlag'] } }, deps);
    const [prepared] = await h.rows<{ soql: string }>(
      `SELECT soql FROM roundtrip.extract_counts WHERE run_id = $1 AND task = 'LeadFlag'`,
      [runId],
    );
    // Another run moved the watermark back (say): the read's lower bound is no longer the one
    // Prepare counted with, and its count would be of other rows.
    await h.rows(
      `UPDATE roundtrip.extract_state SET watermark = '2024-01-01T00:00:10Z', watermark_id = NULL WHERE task = 'LeadFlag'`,
    );
    const since = lastCall();
    const loaded = await runSalesforceTask(deps, runId, 'LeadFlag', false);

    // The describe, the COUNT() asked again, then one page.
    expect(operationsSince(since)).toEqual(['describe', 'queryAll', 'queryAll']);
    expect(loaded).toMatchObject({ status: 'loaded', full: false, api: 'rest' });
    const [counted] = await h.rows<{ soql: string; row_count: string }>(
      `SELECT soql, row_count FROM roundtrip.extract_counts WHERE run_id = $1 AND task = 'LeadFlag'`,
      [runId],
    );
    expect(counted?.soql).not.toBe(prepared?.soql);
    // The moved watermark less the overlap (300 s by default).
    expect(counted?.soql).toBe('SELECT COUNT() FROM Lead WHERE SystemModstamp >= 2023-12-31T23:55:10Z');
    expect(Number(counted?.row_count)).toBe(loaded.rows);
    expect(loaded.rows).toBeGreaterThan(ROWS - 15);
    expect(await watermarks()).toMatchObject({ LeadFlag: newestLeadChange() });
  });

  it('a full read counted at 0 rows sends no query and removes the rows Salesforce no longer has, as an empty page did', async () => {
    const cfg = h.config([
      {
        from: 'salesforce',
        object: 'Lead',
        name: 'LeadRemove',
        fields: LEAD_FIELDS,
        table: 'sf_lead_remove',
        deletes: 'remove',
        mode: 'full',
        where: "Company = 'Company 1'",
      },
    ]);
    const first = await runExtract({ input: {} }, h.deps(cfg));
    const live = first.salesforce.LeadRemove?.rows ?? 0;
    expect(live).toBeGreaterThan(0);
    const before = await watermarks();

    // Every Lead the task selects is deleted: a full read through query has none.
    const gone = h.sf.store.query("SELECT Id FROM Lead WHERE Company = 'Company 1'").records;
    h.sf.store.delete(gone.map((r) => r.Id as string));
    const since = lastCall();
    const deps = h.deps(cfg);
    const { runId } = await prepare({ input: {} }, deps);
    const loaded = await extractSalesforce({ runId, task: 'LeadRemove', full: false }, deps);

    // Prepare's /limits and COUNT(), then the extract's describe: no query of its own.
    expect(operationsSince(since)).toEqual(['limits', 'query', 'describe']);
    expect(loaded).toMatchObject({
      status: 'loaded',
      full: true,
      rows: 0,
      inserted: 0,
      deleted: live,
      apiCalls: 1,
    });
    expect(await h.rows('SELECT count(*)::int AS n FROM sf_lead_remove')).toEqual([{ n: 0 }]);
    // An empty read has no newest change: the watermark stays.
    expect((await watermarks()).LeadRemove).toBe(before.LeadRemove);
    expect(
      await h.rows(
        `SELECT summary->'extract'->'LeadRemove'->>'rows' AS rows FROM roundtrip.runs WHERE run_id = $1`,
        [runId],
      ),
    ).toEqual([{ rows: '0' }]);
  });
});
