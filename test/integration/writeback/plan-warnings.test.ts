/**
 * What the plan says of a config it runs but that is probably wrong: an upsert whose key field the
 * extract of its object does not read (the copy cannot serve it: the whole task is compared with
 * sync_state, so a hand edit in Salesforce is not put back), and two tasks writing one field of one
 * object. Each case runs the real extract (into PostgreSQL) and the write-back against the
 * Salesforce emulator over HTTP.
 */
import type { WritebackTaskInput } from '../../../lambdas/config';
import { runExtract } from '../../../lambdas/core';
import { runWriteback } from '../../../lambdas/core/writeback';
import { leadSeed, startWritebackEnv, type WritebackEnv } from './support';

const LEADS = 4;

/** The extract of Lead without External_Id__c, the upsert's key. */
const EXTRACT = {
  from: 'salesforce' as const,
  object: 'Lead',
  fields: ['Id', 'LastName', 'Company', 'LeadScore__c'],
  table: 'sf_lead',
};
const WITH_KEY = { ...EXTRACT, fields: [...EXTRACT.fields, 'External_Id__c'] };

/** Upsert of Lead.LeadScore__c by External_Id__c from `lead_src (ext, score)`. */
const UPSERT: WritebackTaskInput = {
  to: 'salesforce',
  object: 'Lead',
  from: 'lead_src',
  mode: 'upsert',
  key: 'External_Id__c',
  keyColumn: 'ext',
  fields: { LeadScore__c: 'score' },
};

/** An update of the same field (in another case: the same field) from another table. */
const UPDATE: WritebackTaskInput = {
  to: 'salesforce',
  object: 'lead',
  from: 'lead_other',
  mode: 'update',
  fields: { leadscore__c: 'score' },
};

describe('the plan says what the config allows but is probably wrong', () => {
  let env: WritebackEnv;

  beforeEach(async () => {
    env = await startWritebackEnv();
    env.sf.store.seed('Lead', leadSeed(LEADS));
    await env.pool.query(`CREATE TABLE lead_src (ext text PRIMARY KEY, score int)`);
    await env.pool.query(
      `INSERT INTO lead_src SELECT format('ext-%s', lpad(i::text, 4, '0')), 10 + i FROM generate_series(0, $1 - 1) AS i`,
      [LEADS],
    );
  });
  afterEach(async () => env?.stop());

  async function run(extract: typeof EXTRACT, writeback: WritebackTaskInput[]) {
    const deps = env.deps({ extract: [extract], writeback });
    const { prepare } = await runExtract({ input: {} }, deps);
    env.logger.records.length = 0;
    const outcome = await runWriteback(deps, { runId: prepare.runId, task: 'Lead-upsert' });
    const { rows } = await env.pool.query<{ summary: { writeback: Record<string, unknown> } }>(
      'SELECT summary FROM roundtrip.runs WHERE run_id = $1',
      [prepare.runId],
    );
    const warnings = env.logger.records.filter((r) => r.level === 'warn').map((r) => r.message);
    return { ...outcome, figures: rows[0]?.summary.writeback['Lead-upsert'], warnings };
  }

  it('says of an upsert whose key the extract does not read that it compares with sync_state, and what that misses: a hand edit is not put back until the key is extracted', async () => {
    const note =
      'note: write-back Lead-upsert cannot find its records in the extracted copy, as extract[0].fields does not list its key External_Id__c: it compares every record with what it last sent (roundtrip.sync_state) instead, so an edit made in Salesforce of a field it writes is not seen nor put back, a record deleted in Salesforce is not detected, and a record whose key was changed in Salesforce is upserted again under its old key, as a second record, once its values change (reported after the push as KEY_CHANGED_RECORD_CREATED, not prevented); add External_Id__c to extract[0].fields to compare with the copy';
    const first = await run(EXTRACT, [UPSERT]);
    expect(first.plan).toMatchObject({ comparedWith: 'sync_state', changed: LEADS });
    expect(first.warnings).toEqual([note]);
    // The CLI's summary says it below its table (bin/local/summary.ts).
    expect(first.figures).toMatchObject({
      keyNotExtracted: { field: 'External_Id__c', extract: 'extract[0]', mode: 'upsert' },
    });

    // What the note says is missed: an edit made in Salesforce stays.
    const edited = [...env.sf.store.all('Lead')].find((r) => r.External_Id__c === 'ext-0001');
    env.sf.store.update('Lead', [{ Id: edited?.Id, LeadScore__c: 99 }]);
    const missed = await run(EXTRACT, [UPSERT]);
    expect(missed.plan).toMatchObject({ comparedWith: 'sync_state', changed: 0 });

    // The fix it names: with the key extracted, the copy serves the task, and the edit is put back.
    const fixed = await run(WITH_KEY, [UPSERT]);
    expect(fixed.plan).toMatchObject({ comparedWith: 'extract:public.sf_lead', changed: 1 });
    expect(fixed.warnings).toEqual([]);
    expect(fixed.figures).not.toHaveProperty('keyNotExtracted');
  });

  it('warns, in the plan of either, of two tasks writing one field of one object, naming both by their config paths', async () => {
    await env.pool.query(`CREATE TABLE lead_other ("Id" text PRIMARY KEY, score int)`);
    const planned = await run(WITH_KEY, [UPDATE, UPSERT]);
    expect(planned.plan).toMatchObject({ changed: LEADS });
    expect(planned.warnings).toEqual([
      "writeback[0] (lead-update) and writeback[1] (Lead-upsert) both write lead.leadscore__c: on a record both sources hold, each overwrites the other's value, and with the extracted copy of lead to compare with, each run each task finds the other's value there and sends its own again, so the field flips on every run and API calls are spent on it for ever (without the copy, Salesforce keeps whichever sent last, unseen). Fine if the two sources never hold the same record; otherwise map the field in one of the two tasks only",
    ]);
  });
});
