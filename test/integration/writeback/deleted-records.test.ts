/**
 * Records deleted in Salesforce, as the plan sees them in the extracted copy (`deletes: 'flag'`
 * keeps them with "IsDeleted" true) when the transform does not filter them out: an upsert or an
 * insert of such a key would create a second record with it beside the deleted one, an update
 * fails (ENTITY_IS_DELETED) on every run, so the plan refuses the row, without a call, unless the
 * task says `recreateDeleted`. And an upsert that would create a record without a required field
 * the task does not map, refused by the plan when the copy shows the key has no record. Each case
 * runs the real extract (queryAll into PostgreSQL), then the transform's SQL, then the write-back,
 * against the Salesforce emulator over HTTP; the record is deleted by a REST DELETE.
 */
import type { WritebackTaskInput } from '../../../lambdas/config';
import { runExtract } from '../../../lambdas/core';
import { reportRun, runWriteback, type WritebackRun } from '../../../lambdas/core/writeback';
import { errorsOf, leadSeed, startWritebackEnv, type WritebackEnv } from './support';

/** The tutorial's extract of Lead (docs/cli.md), `deletes` left at its default, `'flag'`. */
const LEAD_EXTRACT = {
  from: 'salesforce' as const,
  object: 'Lead',
  fields: ['Id', 'LastName', 'Company', 'External_Id__c', 'LeadScore__c'],
  table: 'sf_lead',
};

/** Upsert by External_Id__c from `lead_out (ext_id, last_name, company, score)`. */
const UPSERT: WritebackTaskInput = {
  to: 'salesforce',
  object: 'Lead',
  from: 'lead_out',
  mode: 'upsert',
  key: 'External_Id__c',
  keyColumn: 'ext_id',
  fields: { LastName: 'last_name', Company: 'company', LeadScore__c: 'score' },
};

/**
 * The tutorial's transform: a row per extracted lead with an external ID, its score `bump` more
 * than it has, and no filter on "IsDeleted". (`where` adds a condition.)
 */
const TRANSFORM = (bump: number, where = 'TRUE'): string => `
  DROP TABLE IF EXISTS lead_out;
  CREATE TABLE lead_out AS
  SELECT l."Id" AS id, l."External_Id__c" AS ext_id, l."LastName" AS last_name, l."Company" AS company,
         coalesce(l."LeadScore__c", 0) + ${bump} AS score
    FROM sf_lead l
   WHERE l."External_Id__c" IS NOT NULL AND ${where}`;

describe('write-back of records deleted in Salesforce', () => {
  let env: WritebackEnv;

  beforeEach(async () => {
    env = await startWritebackEnv();
    env.sf.store.seed('Lead', leadSeed(5));
  });
  afterEach(async () => env?.stop());

  /** The live and the deleted leads holding an external ID, as the emulator's store has them. */
  function leadsWithKey(ext: string): {
    live: Record<string, unknown>[];
    deleted: Record<string, unknown>[];
  } {
    const all = [...env.sf.store.all('Lead')].filter((r) => r.External_Id__c === ext);
    return {
      live: all.filter((r) => r.IsDeleted !== true),
      deleted: all.filter((r) => r.IsDeleted === true),
    };
  }

  /** Deletes a record as a user or an integration does: `DELETE /sobjects/Lead/{id}` over HTTP. */
  async function deleteInSalesforce(id: string): Promise<void> {
    const other = await env.connect();
    const response = await other.fetchWithSession('test.delete', `/sobjects/Lead/${id}`, {
      method: 'DELETE',
    });
    expect(response.status).toBe(204);
  }

  /** One run: extract, the transform's SQL, the write-back, the report. */
  async function run(
    writeback: WritebackTaskInput,
    transformSql: string,
  ): Promise<WritebackRun & { runId: string }> {
    const deps = env.deps({ extract: [LEAD_EXTRACT], writeback: [writeback] });
    const { prepare } = await runExtract({ input: {} }, deps);
    await env.pool.query(transformSql);
    env.sf.calls.clear();
    const outcome = await runWriteback(deps, { runId: prepare.runId, task: taskName(writeback) });
    await reportRun(deps, { runId: prepare.runId });
    return { ...outcome, runId: prepare.runId };
  }

  const taskName = (task: WritebackTaskInput): string => task.name ?? `${task.object}-${task.mode}`;
  const idOf = (ext: string): string => leadsWithKey(ext).live[0]?.Id as string;

  it('refuses an upsert of a key whose record is deleted, with no call: it would create a second record with the key', async () => {
    await run(UPSERT, TRANSFORM(1));
    const deletedId = idOf('ext-0002');
    await deleteInSalesforce(deletedId);

    const { plan, result, runId } = await run(UPSERT, TRANSFORM(1));

    // The four live leads are written; the deleted one's key is refused before any call.
    expect(plan).toMatchObject({ sourceRows: 5, rejected: 1, changed: 4 });
    expect(result).toMatchObject({ planned: 4, succeeded: 4, failed: 0 });
    expect(leadsWithKey('ext-0002')).toEqual({
      live: [],
      deleted: [expect.objectContaining({ Id: deletedId })],
    });
    expect(env.sf.store.count('Lead')).toBe(4);
    const errors = await errorsOf(env, runId);
    expect(errors).toEqual([
      {
        key: 'ext-0002',
        stage: 'plan',
        code: 'ENTITY_IS_DELETED',
        fields: ['External_Id__c'],
        message: expect.stringContaining(`key ext-0002: its record ${deletedId} is deleted in Salesforce`),
      },
    ]);
    const { message } = errors[0] as { message: string };
    expect(message).toContain('an upsert would create a second record with this key');
    // It names the copy of the written object as the table holding "IsDeleted", without claiming
    // the source is built from it.
    expect(message).toContain(
      'Leave the rows of records deleted in Salesforce out of the source, in the transform however it is built: "public"."sf_lead", the extracted copy of Lead, holds "IsDeleted" for each record (keep the rows whose record there has "IsDeleted" IS NOT TRUE)',
    );
    expect(message).not.toMatch(/IS NOT TRUE on /);
    expect(message).toContain('undelete the record in Salesforce');
    expect(message).toContain('set writeback[0].recreateDeleted: true');
    const { rows } = await env.pool.query(
      `SELECT salesforce_id FROM roundtrip.writeback_errors WHERE run_id = $1 AND code = 'ENTITY_IS_DELETED'`,
      [runId],
    );
    expect(rows).toEqual([{ salesforce_id: deletedId }]);

    // The transform filtering deleted records: nothing refused, and nothing left to send.
    const filtered = await run(UPSERT, TRANSFORM(1, `l."IsDeleted" IS NOT TRUE`));
    expect(filtered.plan).toMatchObject({ sourceRows: 4, rejected: 0, changed: 4 });
    const again = await run(UPSERT, TRANSFORM(0, `l."IsDeleted" IS NOT TRUE`));
    expect(again.plan).toMatchObject({ sourceRows: 4, rejected: 0, changed: 0 });
  });

  it('refuses an upsert of a deleted record when the task maps a field the extract does not read: the copy still tells which records are deleted', async () => {
    // Industry is not extracted: it is compared with what was last sent, the other fields with the copy.
    const task: WritebackTaskInput = { ...UPSERT, fields: { ...UPSERT.fields, Industry: 'industry' } };
    const transform = (bump: number): string =>
      `${TRANSFORM(bump)};
       ALTER TABLE lead_out ADD COLUMN industry text DEFAULT 'Energy'`;
    const first = await run(task, transform(1));
    expect(first.plan).toMatchObject({
      comparedWith: 'extract:public.sf_lead',
      notExtracted: ['Industry'],
      changed: 5,
    });
    const deletedId = idOf('ext-0002');
    await deleteInSalesforce(deletedId);

    const { plan, result, runId } = await run(task, transform(2));

    expect(plan).toMatchObject({ sourceRows: 5, rejected: 1, changed: 4 });
    expect(result).toMatchObject({ succeeded: 4, failed: 0 });
    expect(leadsWithKey('ext-0002')).toEqual({
      live: [],
      deleted: [expect.objectContaining({ Id: deletedId })],
    });
    expect(await errorsOf(env, runId)).toEqual([
      expect.objectContaining({ key: 'ext-0002', code: 'ENTITY_IS_DELETED' }),
    ]);
  });

  it('names a copy whose table name holds a % in its message as it is', async () => {
    const extract = { ...LEAD_EXTRACT, table: 'sf_lead%copy' };
    const source = `DROP TABLE IF EXISTS lead_out;
      CREATE TABLE lead_out AS SELECT "External_Id__c" AS ext_id, "LastName" AS last_name, "Company" AS company,
             coalesce("LeadScore__c", 0) + 1 AS score FROM "sf_lead%copy"`;
    const deps = env.deps({ extract: [extract], writeback: [UPSERT] });
    await deleteInSalesforce(idOf('ext-0004'));
    const { prepare } = await runExtract({ input: {} }, deps);
    await env.pool.query(source);

    const { plan } = await runWriteback(deps, { runId: prepare.runId, task: 'Lead-upsert' });

    expect(plan).toMatchObject({ rejected: 1, changed: 4 });
    expect(await errorsOf(env, prepare.runId)).toEqual([
      expect.objectContaining({
        key: 'ext-0004',
        code: 'ENTITY_IS_DELETED',
        message: expect.stringContaining('("public"."sf_lead%copy" holds it with "IsDeleted" true'),
      }),
    ]);
  });

  it('compares a key re-created in Salesforce with its live record, not the deleted one', async () => {
    await run(UPSERT, TRANSFORM(1));
    const deletedId = idOf('ext-0002');
    await deleteInSalesforce(deletedId);
    // Re-created by someone else in Salesforce, with the same external ID and another score.
    env.sf.store.create('Lead', [
      { LastName: 'Again', Company: 'Company 2', External_Id__c: 'ext-0002', LeadScore__c: 40 },
    ]);
    const liveId = idOf('ext-0002');

    // (Unfiltered, the transform would make two rows of ext-0002, both refused as DUPLICATE_KEY.)
    const { plan, result, runId } = await run(UPSERT, TRANSFORM(1, `l."IsDeleted" IS NOT TRUE`));

    expect(plan).toMatchObject({ rejected: 0, changed: 5 });
    expect(result).toMatchObject({ succeeded: 5, failed: 0 });
    expect(leadsWithKey('ext-0002').live).toEqual([
      expect.objectContaining({ Id: liveId, LastName: 'Again', LeadScore__c: 41 }),
    ]);
    expect(await errorsOf(env, runId)).toEqual([]);
    const { rows } = await env.pool.query(
      `SELECT salesforce_id FROM roundtrip.sync_state WHERE task = 'Lead-upsert' AND key = 'ext-0002'`,
    );
    expect(rows).toEqual([{ salesforce_id: liveId }]);
  });

  it('with recreateDeleted, creates a new record for the key once, and then compares with it', async () => {
    const recreate = { ...UPSERT, recreateDeleted: true };
    await run(recreate, TRANSFORM(1));
    const deletedId = idOf('ext-0002');
    await deleteInSalesforce(deletedId);

    const { plan, result } = await run(recreate, TRANSFORM(1));

    expect(plan).toMatchObject({ rejected: 0, changed: 5 });
    expect(result).toMatchObject({ succeeded: 5, failed: 0 });
    const { live, deleted } = leadsWithKey('ext-0002');
    expect(deleted.map((r) => r.Id)).toEqual([deletedId]);
    expect(live).toHaveLength(1);
    expect(live[0]?.Id).not.toBe(deletedId);

    // Its copy holds the deleted record and the new one: the new one is compared with.
    const { plan: again } = await run(recreate, TRANSFORM(0, `l."IsDeleted" IS NOT TRUE`));
    expect(again).toMatchObject({ sourceRows: 5, rejected: 0, changed: 0 });
    expect(leadsWithKey('ext-0002').live).toHaveLength(1);
  });

  it('refuses an update of a deleted record in the plan: no call, instead of ENTITY_IS_DELETED from Salesforce on every run', async () => {
    const update: WritebackTaskInput = {
      to: 'salesforce',
      object: 'Lead',
      from: 'lead_out',
      mode: 'update',
      keyColumn: 'id',
      fields: { LeadScore__c: 'score' },
    };
    await run(update, TRANSFORM(1));
    const deletedId = idOf('ext-0003');
    await deleteInSalesforce(deletedId);

    for (const bump of [1, 2]) {
      const { plan, result, runId } = await run(update, TRANSFORM(bump));
      expect(plan).toMatchObject({ sourceRows: 5, rejected: 1, changed: 4 });
      expect(result).toMatchObject({ planned: 4, succeeded: 4, failed: 0 });
      expect(env.sf.calls.count({ write: true })).toBe(1);
      const errors = await errorsOf(env, runId);
      expect(errors).toEqual([
        expect.objectContaining({ key: deletedId, stage: 'plan', code: 'ENTITY_IS_DELETED', fields: ['Id'] }),
      ]);
      const { message } = errors[0] as { message: string };
      expect(message).toContain(`its record ${deletedId} is deleted in Salesforce`);
      expect(message).toContain('an update of a deleted record fails (ENTITY_IS_DELETED) on every run');
      expect(message).not.toContain('recreateDeleted');
    }
  });

  it('insert: refuses a key whose record is deleted, and never inserts again a key it inserted that was deleted since', async () => {
    const insert: WritebackTaskInput = {
      to: 'salesforce',
      object: 'Lead',
      from: 'lead_new',
      mode: 'insert',
      key: 'External_Id__c',
      keyColumn: 'ext_id',
      fields: { LastName: 'last_name', Company: 'company' },
    };
    const source = `
      DROP TABLE IF EXISTS lead_new;
      CREATE TABLE lead_new AS SELECT * FROM (VALUES ('new-1', 'New', 'Acme'), ('ext-0001', 'Old', 'Acme')) AS v(ext_id, last_name, company)`;
    // ext-0001 exists (seeded): not inserted. new-1 is inserted.
    const first = await run(insert, source);
    expect(first.plan).toMatchObject({ rejected: 0, changed: 1 });
    const insertedId = idOf('new-1');
    // Both deleted in Salesforce: the seeded record, and the one this task inserted.
    const seededId = idOf('ext-0001');
    await deleteInSalesforce(seededId);
    await deleteInSalesforce(insertedId);

    const { plan, runId } = await run(insert, source);

    // new-1 stays inserted (sync_state): unchanged. ext-0001 would be a second record: refused.
    expect(plan).toMatchObject({ sourceRows: 2, rejected: 1, unchanged: 1, changed: 0 });
    expect(env.sf.calls.count({ write: true })).toBe(0);
    expect(await errorsOf(env, runId)).toEqual([
      expect.objectContaining({
        key: 'ext-0001',
        stage: 'plan',
        code: 'ENTITY_IS_DELETED',
        message: expect.stringContaining(`its record ${seededId} is deleted in Salesforce`),
      }),
    ]);
    expect(leadsWithKey('new-1').live).toEqual([]);
    expect(leadsWithKey('ext-0001').live).toEqual([]);
  });

  it('refuses an upsert that would create a record without a required field the task does not map, with no call', async () => {
    // The tutorial's upsert maps the score alone: fine for the leads the copy holds, but a key
    // without a record would be created without LastName and Company, which Salesforce refuses.
    const scoreOnly: WritebackTaskInput = { ...UPSERT, fields: { LeadScore__c: 'score' } };
    const source = `${TRANSFORM(1, `l."IsDeleted" IS NOT TRUE`)};
      INSERT INTO lead_out (ext_id, score) VALUES ('ext-new', 7)`;

    const { plan, result, runId } = await run(scoreOnly, source);

    expect(plan).toMatchObject({ sourceRows: 6, rejected: 1, changed: 5 });
    expect(result).toMatchObject({ planned: 5, succeeded: 5, failed: 0 });
    expect(leadsWithKey('ext-new').live).toEqual([]);
    const errors = await errorsOf(env, runId);
    expect(errors).toEqual([
      expect.objectContaining({
        key: 'ext-new',
        stage: 'plan',
        code: 'REQUIRED_FIELD_MISSING',
        fields: ['LastName'],
      }),
    ]);
    const { message } = errors[0] as { message: string };
    expect(message).toContain('key ext-new has no record in "public"."sf_lead"');
    expect(message).toContain('which needs LastName, Company');
    expect(message).toContain('writeback[0].fields does not map them');

    // With an extract that reads only some records (a `where`), a key it lacks may have a record:
    // the plan cannot tell, and sends it (Salesforce answers).
    const deps = env.deps({
      extract: [{ ...LEAD_EXTRACT, table: 'sf_lead_some', where: "Company = 'Company 1'" }],
      writeback: [scoreOnly],
    });
    const { prepare } = await runExtract({ input: {} }, deps);
    await env.pool.query(`UPDATE lead_out SET score = score + 1`);
    const some = await runWriteback(deps, { runId: prepare.runId, task: 'Lead-upsert' });
    expect(some.plan).toMatchObject({ rejected: 0 });
    expect(await errorsOf(env, prepare.runId)).toEqual([
      expect.objectContaining({ key: 'ext-new', stage: 'push', code: 'REQUIRED_FIELD_MISSING' }),
    ]);
  });
});
