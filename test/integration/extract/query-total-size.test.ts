/**
 * A REST query's pages hold fewer records than its `totalSize` says: a record the query matched
 * never arrived. Loading the rows that did arrive as if they were all would lose it for good: an
 * incremental read's watermark moves past it (the next read asks only for newer changes), and a
 * full read removes (or flags) its row as gone from Salesforce. The load says so, keeps the
 * watermark where it was and leaves the rows it did not get alone, so that the next run reads the
 * record.
 */
import { runExtract } from '../../../lambdas/core';
import { connectTo, LEAD_FIELDS, leads, startExtractHarness, type ExtractHarness } from './harness';

describe('A REST read whose pages hold fewer records than totalSize', () => {
  let h: ExtractHarness;
  let now = Date.UTC(2024, 1, 1);
  /** Salesforce's clock: moved by hand, so that the changes are whole seconds before the reads. */
  const later = (seconds: number): void => {
    now += seconds * 1000;
  };

  beforeEach(async () => {
    now = Date.UTC(2024, 1, 1);
    h = await startExtractHarness({ seed: { Lead: leads(20) }, salesforceClock: () => new Date(now) });
  });
  afterEach(() => h.close());

  const config = (deletes: 'flag' | 'remove' = 'flag') =>
    h.config([
      {
        from: 'salesforce',
        object: 'Lead',
        fields: LEAD_FIELDS,
        table: 'sf_lead',
        overlapSeconds: 0,
        deletes,
      },
    ]);

  /**
   * A connector whose first query page (not a COUNT()) loses its record at `index`; totalSize is
   * left as it was, unless `totalSize` is given.
   */
  const losingRecord = async (index: number, lost: string[], totalSize?: number) =>
    connectTo(h.sf, h.logger, {
      fetch: async (input, init) => {
        const res = await fetch(input, init);
        const url = decodeURIComponent(String(input));
        if (!/\/query(All)?[/?]/.test(url) || /COUNT\(\)/.test(url) || lost.length > 0) return res;
        const page = (await res.json()) as { totalSize: number; records: { Id: string }[] };
        const [first] = page.records.splice(index, 1);
        if (first) lost.push(first.Id);
        if (totalSize !== undefined) page.totalSize = totalSize;
        const headers = new Headers(res.headers);
        headers.delete('content-length');
        return new Response(JSON.stringify(page), { status: res.status, headers });
      },
    });

  const watermark = async () =>
    (await h.rows<{ w: string | null }>(`SELECT watermark::text AS w FROM roundtrip.extract_state`))[0]?.w;

  it('keeps the watermark of an incremental read that missed a record, and the next run reads it', async () => {
    later(10);
    await runExtract({ input: {} }, h.deps(config()));
    const before = await watermark();

    later(10);
    const ids = h.sf.store.query('SELECT Id FROM Lead ORDER BY Id').records.map((r) => r.Id as string);
    // Three changes a second apart: the read returns the previous watermark's row (the bound is
    // inclusive), then these in SystemModstamp order; the first of them is lost on the way.
    for (const Id of ids.slice(0, 3)) {
      h.sf.store.update('Lead', [{ Id, FirstName: 'Changed' }]);
      later(1);
    }
    later(10);
    const lost: string[] = [];
    const second = await runExtract(
      { input: {} },
      h.deps(config(), { salesforce: await losingRecord(1, lost) }),
    );
    expect(lost).toEqual([ids[0]]);
    expect(second.salesforce.Lead).toMatchObject({
      full: false,
      rows: 3,
      queryCountMismatch: { totalSize: 4, read: 3 },
    });
    expect(await watermark()).toBe(before);
    const [summary] = await h.rows<{ s: Record<string, unknown> }>(
      `SELECT summary->'extract'->'Lead' AS s FROM roundtrip.runs WHERE run_id = $1`,
      [second.salesforce.Lead?.runId],
    );
    expect(summary?.s).toMatchObject({ queryCountMismatch: { totalSize: 4, read: 3 } });
    expect(h.logger.records.some((r) => r.level === 'warn' && /totalSize/.test(JSON.stringify(r)))).toBe(
      true,
    );

    later(10);
    const third = await runExtract({ input: {} }, h.deps(config()));
    expect(third.salesforce.Lead).not.toHaveProperty('queryCountMismatch');
    expect(await h.rows(`SELECT "FirstName" FROM sf_lead WHERE "Id" = $1`, [lost[0]])).toEqual([
      { FirstName: 'Changed' },
    ]);
  });

  it('does not remove the row of a record a full read missed', async () => {
    later(10);
    await runExtract({ input: {} }, h.deps(config('remove')));
    expect(await h.rows(`SELECT count(*)::int AS n FROM sf_lead`)).toEqual([{ n: 20 }]);

    later(10);
    const lost: string[] = [];
    const full = await runExtract(
      { input: { full: true } },
      h.deps(config('remove'), { salesforce: await losingRecord(0, lost) }),
    );
    expect(full.salesforce.Lead).toMatchObject({
      full: true,
      rows: 19,
      deleted: 0,
      queryCountMismatch: { totalSize: 20, read: 19 },
    });
    expect(await h.rows(`SELECT count(*)::int AS n FROM sf_lead WHERE "Id" = $1`, [lost[0]])).toEqual([
      { n: 1 },
    ]);
  });

  it('reads in full again after a full read that missed a record: an incremental read would not find it', async () => {
    later(10);
    await runExtract({ input: {} }, h.deps(config()));
    // Dropped by hand: the next read is full, and its table is made again from it alone.
    await h.rows('DROP TABLE sf_lead');

    later(10);
    const lost: string[] = [];
    const full = await runExtract(
      { input: {} },
      h.deps(config(), { salesforce: await losingRecord(0, lost) }),
    );
    expect(full.salesforce.Lead).toMatchObject({
      full: true,
      rows: 19,
      queryCountMismatch: { totalSize: 20, read: 19 },
    });

    later(10);
    const next = await runExtract({ input: {} }, h.deps(config()));
    expect(next.salesforce.Lead).toMatchObject({ full: true, rows: 20 });
    expect(await h.rows(`SELECT count(*)::int AS n FROM sf_lead WHERE "Id" = $1`, [lost[0]])).toEqual([
      { n: 1 },
    ]);
    later(10);
    expect((await runExtract({ input: {} }, h.deps(config()))).salesforce.Lead).toMatchObject({
      full: false,
    });
  });

  it('compares nothing when Salesforce says it does not know the total (totalSize -1)', async () => {
    later(10);
    const lost: string[] = [];
    const first = await runExtract(
      { input: {} },
      h.deps(config(), { salesforce: await losingRecord(0, lost, -1) }),
    );
    expect(first.salesforce.Lead).toMatchObject({ full: true, rows: 19 });
    expect(first.salesforce.Lead).not.toHaveProperty('queryCountMismatch');
    expect(await watermark()).not.toBeNull();
  });
});
