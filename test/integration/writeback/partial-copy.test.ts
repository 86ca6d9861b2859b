/**
 * A write-back whose object the pipeline extracts with a `where`: the copy holds only the records
 * the condition selects, so a source key it lacks may well have a record in Salesforce. Such keys
 * are compared with what this task last sent (`roundtrip.sync_state`), as for an object the
 * pipeline does not extract; the keys the copy holds keep being compared with it (an edit made in
 * Salesforce is put back). Each case runs the real extract (into PostgreSQL), the source's SQL and
 * the write-back, against the Salesforce emulator over HTTP.
 */
import type { WritebackTaskInput } from '../../../lambdas/config';
import { runExtract } from '../../../lambdas/core';
import { runWriteback, type WritebackRun } from '../../../lambdas/core/writeback';
import { leadSeed, startWritebackEnv, type WritebackEnv } from './support';

const LEADS = 6;

/** An extract of the leads of Company 0 only: one of the six (leadSeed numbers companies i % 7). */
const EXTRACT = {
  from: 'salesforce' as const,
  object: 'Lead',
  fields: ['Id', 'LastName', 'Company', 'External_Id__c', 'LeadScore__c'],
  table: 'sf_lead',
  where: "Company = 'Company 0'",
};

/** Each lead's score, by Id and by external ID: the source the transform writes `lead_out` from. */
const TRANSFORM = `DROP TABLE IF EXISTS lead_out;
  CREATE TABLE lead_out AS SELECT "Id", ext_id, score FROM lead_in`;

const TASKS: Record<'update' | 'upsert', WritebackTaskInput> = {
  update: {
    to: 'salesforce',
    object: 'Lead',
    from: 'lead_out',
    mode: 'update',
    fields: { LeadScore__c: 'score' },
  },
  upsert: {
    to: 'salesforce',
    object: 'Lead',
    from: 'lead_out',
    mode: 'upsert',
    key: 'External_Id__c',
    keyColumn: 'ext_id',
    fields: { LeadScore__c: 'score' },
  },
};

describe('write-back compared with a copy extracted with a where', () => {
  let env: WritebackEnv;
  let ids: string[];

  beforeEach(async () => {
    env = await startWritebackEnv();
    ids = env.sf.store.seed('Lead', leadSeed(LEADS));
    await env.pool.query(`CREATE TABLE lead_in ("Id" text PRIMARY KEY, ext_id text, score int)`);
    await env.pool.query(
      `INSERT INTO lead_in SELECT id, format('ext-%s', lpad((i - 1)::text, 4, '0')), i
         FROM unnest($1::text[]) WITH ORDINALITY AS t(id, i)`,
      [ids],
    );
  });
  afterEach(async () => env?.stop());

  /** One run: the extract, the transform's SQL, the write-back; `sent` counts the records written. */
  async function run(
    writeback: WritebackTaskInput,
    { dryRun = false } = {},
  ): Promise<WritebackRun & { sent: number }> {
    const deps = env.deps({ extract: [EXTRACT], writeback: [writeback] });
    const { prepare } = await runExtract({ input: {} }, deps);
    await env.pool.query(TRANSFORM);
    env.sf.calls.clear();
    const task = `Lead-${writeback.mode}`;
    const outcome = await runWriteback(deps, { runId: prepare.runId, task, dryRun });
    const sent = env.sf.calls.writes().reduce((n, w) => n + (w.records ?? 0), 0);
    return { ...outcome, sent };
  }

  const score = (id: string): unknown => [...env.sf.store.all('Lead')].find((r) => r.Id === id)?.LeadScore__c;

  it.each(['update', 'upsert'] as const)(
    '%s: sends a key outside the copy once, then only when its row changes, and still puts back an edit of a key inside it',
    async (mode) => {
      const task = TASKS[mode];
      const first = await run(task);
      expect(first.plan).toMatchObject({ comparedWith: 'extract:public.sf_lead', changed: LEADS });
      expect(first.result).toMatchObject({ succeeded: LEADS, failed: 0 });
      const { rows } = await env.pool.query<{ n: string }>(`SELECT count(*) AS n FROM sf_lead`);
      expect(Number(rows[0]?.n)).toBe(1);

      // Nothing changed: nothing is sent, the five keys outside the copy included.
      const again = await run(task);
      expect(again.plan).toMatchObject({ changed: 0, unchanged: LEADS });
      expect(again.sent).toBe(0);

      // A change of a row outside the copy is sent, once; a dry run shows what was last sent.
      const outside = ids[3] as string;
      await env.pool.query(`UPDATE lead_in SET score = 40 WHERE "Id" = $1`, [outside]);
      const dry = await run(task, { dryRun: true });
      expect(dry.plan).toMatchObject({ changed: 1, unchanged: LEADS - 1 });
      expect(dry.plan.sample).toEqual([
        expect.objectContaining({
          salesforceId: outside,
          current: expect.objectContaining({ LeadScore__c: 4 }),
          next: expect.objectContaining({ LeadScore__c: 40 }),
        }),
      ]);
      const one = await run(task);
      expect(one.plan).toMatchObject({ changed: 1, unchanged: LEADS - 1 });
      expect(one.sent).toBe(1);
      expect(score(outside)).toBe(40);
      expect((await run(task)).plan).toMatchObject({ changed: 0, unchanged: LEADS });

      // An edit made in Salesforce of the record the copy holds is seen there and put back.
      const inside = ids[0] as string;
      env.sf.store.update('Lead', [{ Id: inside, LeadScore__c: 99 }]);
      const fixed = await run(task);
      expect(fixed.plan).toMatchObject({ changed: 1, unchanged: LEADS - 1 });
      expect(score(inside)).toBe(1);
    },
  );

  it('of two extracts of the object, compares with the one of every record, whatever their order', async () => {
    // The filtered extract first in the config, an extract of every Lead after it.
    const extract = [EXTRACT, { ...EXTRACT, name: 'all_leads', table: 'sf_lead_all', where: undefined }];
    const deps = env.deps({ extract, writeback: [TASKS.update] });
    const runOnce = async (): Promise<WritebackRun> => {
      const { prepare } = await runExtract({ input: {} }, deps);
      await env.pool.query(TRANSFORM);
      return runWriteback(deps, { runId: prepare.runId, task: 'Lead-update' });
    };
    expect((await runOnce()).plan).toMatchObject({
      comparedWith: 'extract:public.sf_lead_all',
      changed: LEADS,
    });
    // An edit made in Salesforce of a record the filtered copy lacks is seen in the full one and put back.
    const outside = ids[3] as string;
    env.sf.store.update('Lead', [{ Id: outside, LeadScore__c: 99 }]);
    expect((await runOnce()).plan).toMatchObject({ changed: 1, unchanged: LEADS - 1 });
    expect(score(outside)).toBe(4);
  });

  it('insert: never inserts again a key it inserted that the copy lacks', async () => {
    const insert: WritebackTaskInput = {
      to: 'salesforce',
      object: 'Lead',
      from: 'lead_out',
      mode: 'insert',
      key: 'External_Id__c',
      keyColumn: 'ext_id',
      fields: { LastName: 'last_name', Company: 'company', LeadScore__c: 'score' },
    };
    // Six new leads of Company 8 and 9: none is in the copy of Company 0's.
    const transform = (n: number): string => `DROP TABLE IF EXISTS lead_out;
      CREATE TABLE lead_out AS SELECT format('new-%s', i) AS ext_id, format('New %s', i) AS last_name,
             format('Company %s', 8 + i % 2) AS company, i AS score FROM generate_series(1, ${n}) AS i`;
    const deps = env.deps({ extract: [EXTRACT], writeback: [insert] });
    const runOnce = async (n: number): Promise<WritebackRun> => {
      const { prepare } = await runExtract({ input: {} }, deps);
      await env.pool.query(transform(n));
      return runWriteback(deps, { runId: prepare.runId, task: 'Lead-insert' });
    };
    expect((await runOnce(LEADS)).plan).toMatchObject({ changed: LEADS });
    const again = await runOnce(LEADS + 1);
    expect(again.plan).toMatchObject({ changed: 1, unchanged: LEADS });
    const inserted = [...env.sf.store.all('Lead')].filter((r) => String(r.External_Id__c).startsWith('new-'));
    expect(inserted).toHaveLength(LEADS + 1);
  });
});
