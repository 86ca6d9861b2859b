/**
 * What an update compares each mapped field with when the extracted copy of its object does not
 * hold every one of them as the extract reads it now. The copy is the comparison only for the
 * fields the extract's `fields` list (and Id, SystemModstamp, IsDeleted, always read): a column
 * left by a field taken out of the extract keeps the values of its last read, and a field never
 * extracted has no column. Such fields are compared with `sync_state` (what was last sent), while
 * the copy still serves the others, so an edit of an extracted field in Salesforce is still put
 * back. Each case runs the real extract (into PostgreSQL), the source's SQL and the write-back,
 * against the Salesforce emulator over HTTP.
 */
import type { WritebackTaskInput } from '../../../lambdas/config';
import { runExtract } from '../../../lambdas/core';
import { runWriteback, type WritebackRun } from '../../../lambdas/core/writeback';
import { leadSeed, startWritebackEnv, type WritebackEnv } from './support';

const LEADS = 6;

/** The extract of Lead, Rating included. */
const EXTRACT = {
  from: 'salesforce' as const,
  object: 'Lead',
  fields: ['Id', 'LastName', 'Company', 'External_Id__c', 'LeadScore__c', 'Rating'],
  table: 'sf_lead',
};
/** The same extract once Rating is taken out of it: its column stays in sf_lead, never refreshed. */
const WITHOUT_RATING = { ...EXTRACT, fields: EXTRACT.fields.filter((f) => f !== 'Rating') };

/** Update by Id from `lead_out ("Id", score, rating, industry)`, made from the input below. */
const UPDATE: WritebackTaskInput = {
  to: 'salesforce',
  object: 'Lead',
  from: 'lead_out',
  mode: 'update',
  fields: { LeadScore__c: 'score', Rating: 'rating' },
};

describe('write-back compared with a copy that does not extract every mapped field', () => {
  let env: WritebackEnv;
  let ids: string[];

  beforeEach(async () => {
    env = await startWritebackEnv();
    ids = env.sf.store.seed(
      'Lead',
      leadSeed(LEADS).map((lead) => ({ ...lead, Rating: 'Cold', Industry: 'Energy' })),
    );
    // The transform's input: each lead's score, rating and industry, by Id.
    await env.pool.query(
      `CREATE TABLE lead_in ("Id" text PRIMARY KEY, score int, rating text, industry text)`,
    );
    await env.pool.query(
      `INSERT INTO lead_in SELECT id, i, 'Cold', 'Energy' FROM unnest($1::text[]) WITH ORDINALITY AS t(id, i)`,
      [ids],
    );
  });
  afterEach(async () => env?.stop());

  /** One run: the extract, the transform's SQL (a join of the copy with the input), the write-back. */
  async function run(
    extract: typeof EXTRACT,
    writeback: WritebackTaskInput,
    { dryRun = false } = {},
  ): Promise<WritebackRun & { runId: string; sent: number }> {
    const deps = env.deps({ extract: [extract], writeback: [writeback] });
    const { prepare } = await runExtract({ input: {} }, deps);
    await env.pool.query(`DROP TABLE IF EXISTS lead_out;
      CREATE TABLE lead_out AS
      SELECT l."Id", i.score, i.rating, i.industry FROM sf_lead l JOIN lead_in i ON i."Id" = l."Id"
       WHERE l."IsDeleted" IS NOT TRUE`);
    env.sf.calls.clear();
    const outcome = await runWriteback(deps, { runId: prepare.runId, task: 'Lead-update', dryRun });
    const sent = env.sf.calls.writes().reduce((n, w) => n + (w.records ?? 0), 0);
    return { ...outcome, runId: prepare.runId, sent };
  }

  const lead = (id: string): Record<string, unknown> =>
    [...env.sf.store.all('Lead')].find((r) => r.Id === id) ?? {};

  it('compares a field taken out of the extract with what was last sent, not with its stale column, and sends a change once', async () => {
    const first = await run(EXTRACT, UPDATE);
    expect(first.plan).toMatchObject({ comparedWith: 'extract:public.sf_lead', changed: LEADS });
    expect(first.plan.notExtracted).toBeUndefined();

    // Rating leaves the extract; its column keeps 'Cold', the values of its last read.
    await env.pool.query(`UPDATE lead_in SET rating = 'Hot'`);
    const changed = await run(WITHOUT_RATING, UPDATE);
    expect(changed.plan).toMatchObject({
      comparedWith: 'extract:public.sf_lead',
      notExtracted: ['Rating'],
      changed: LEADS,
    });
    expect(changed.result).toMatchObject({ succeeded: LEADS, failed: 0 });
    const { rows } = await env.pool.query<{ rating: string }>(
      `SELECT DISTINCT "Rating" AS rating FROM sf_lead`,
    );
    expect(rows).toEqual([{ rating: 'Cold' }]);

    // Sent once: the next run finds it in sync_state, whatever the stale column says.
    const again = await run(WITHOUT_RATING, UPDATE);
    expect(again.plan).toMatchObject({ changed: 0, unchanged: LEADS });
    expect(again.sent).toBe(0);

    // A change of the field is sent, once.
    await env.pool.query(`UPDATE lead_in SET rating = 'Warm' WHERE "Id" = $1`, [ids[0]]);
    const one = await run(WITHOUT_RATING, UPDATE);
    expect(one.plan).toMatchObject({ changed: 1, unchanged: LEADS - 1 });
    expect(lead(ids[0] as string).Rating).toBe('Warm');
    expect((await run(WITHOUT_RATING, UPDATE)).plan).toMatchObject({ changed: 0 });
  });

  it('still compares the extracted fields with the copy when another mapped field is not extracted: an edit made in Salesforce is put back', async () => {
    const task: WritebackTaskInput = { ...UPDATE, fields: { LeadScore__c: 'score', Industry: 'industry' } };
    const first = await run(EXTRACT, task);
    // Industry has no column: what Salesforce holds in it is not known, so every record is sent once.
    expect(first.plan).toMatchObject({
      comparedWith: 'extract:public.sf_lead',
      notExtracted: ['Industry'],
      changed: LEADS,
    });
    expect((await run(EXTRACT, task)).plan).toMatchObject({ changed: 0, unchanged: LEADS });

    // A hand edit of the extracted score is seen in the copy and put back.
    const edited = ids[2] as string;
    env.sf.store.update('Lead', [{ Id: edited, LeadScore__c: 99 }]);
    const fixed = await run(EXTRACT, task);
    expect(fixed.plan).toMatchObject({ changed: 1, unchanged: LEADS - 1 });
    expect(fixed.sent).toBe(1);
    expect(lead(edited).LeadScore__c).toBe(3);

    // A change of the field not extracted is sent, compared with what was last sent.
    await env.pool.query(`UPDATE lead_in SET industry = 'Banking' WHERE "Id" = ANY($1)`, [ids.slice(0, 2)]);
    const industry = await run(EXTRACT, task);
    expect(industry.plan).toMatchObject({ changed: 2, unchanged: LEADS - 2 });
    expect(ids.slice(0, 2).map((id) => lead(id).Industry)).toEqual(['Banking', 'Banking']);

    // A dry run shows the current values: the copy's score, and the industry last sent.
    await env.pool.query(`UPDATE lead_in SET score = score + 10, industry = 'Chemicals' WHERE "Id" = $1`, [
      ids[0],
    ]);
    const dry = await run(EXTRACT, task, { dryRun: true });
    expect(dry.plan.sample).toEqual([
      expect.objectContaining({
        current: { LeadScore__c: 1, Industry: 'Banking' },
        next: { LeadScore__c: 11, Industry: 'Chemicals' },
      }),
    ]);
  });
  it('plans a task none of whose mapped fields the extract reads: every field compared with what was last sent, the copy telling which records exist', async () => {
    const task: WritebackTaskInput = { ...UPDATE, fields: { Industry: 'industry' } };
    const first = await run(EXTRACT, task);
    expect(first.plan).toMatchObject({
      comparedWith: 'extract:public.sf_lead',
      notExtracted: ['Industry'],
      changed: LEADS,
    });
    expect((await run(EXTRACT, task)).plan).toMatchObject({ changed: 0, unchanged: LEADS });
    await env.pool.query(`UPDATE lead_in SET industry = 'Banking' WHERE "Id" = $1`, [ids[1]]);
    const one = await run(EXTRACT, task);
    expect(one.plan).toMatchObject({ changed: 1, unchanged: LEADS - 1 });
    expect(one.sent).toBe(1);
    expect(lead(ids[1] as string).Industry).toBe('Banking');
  });
});
