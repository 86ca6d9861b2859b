/**
 * A record's external ID changed by hand in Salesforce after the write-back synced it: the source
 * still writes the old key, and the extracted copy has no record with it. An upsert of that key
 * would create a second record for it beside the one sync_state says the task wrote, so the plan
 * refuses it (KEY_CHANGED_IN_SALESFORCE), naming the record, the key it holds now and the ways
 * out, on every run until someone puts it right. An insert keyed by the external ID never sends a
 * key it inserted again. Each run is the real extract (queryAll into PostgreSQL), the source's SQL
 * and the write-back, against the Salesforce emulator over HTTP; the key is edited by a REST PATCH.
 */
import type { WritebackTaskInput } from '../../../lambdas/config';
import { runExtract } from '../../../lambdas/core';
import { reportRun, runWriteback, type WritebackRun } from '../../../lambdas/core/writeback';
import { errorsOf, leadSeed, startWritebackEnv, type WritebackEnv } from './support';

const LEAD_EXTRACT = {
  from: 'salesforce' as const,
  object: 'Lead',
  fields: ['Id', 'LastName', 'Company', 'External_Id__c', 'LeadScore__c'],
  table: 'sf_lead',
};

/** Upsert by External_Id__c from `lead_src (ext, last_name, company, score)`, a table of its own. */
const UPSERT: WritebackTaskInput = {
  to: 'salesforce',
  object: 'Lead',
  from: 'lead_src',
  mode: 'upsert',
  key: 'External_Id__c',
  keyColumn: 'ext',
  fields: { LastName: 'last_name', Company: 'company', LeadScore__c: 'score' },
};

const LEADS = 5;
/** The key whose record is edited by hand. */
const KEY = 'ext-0002';
const NEW_KEY = 'ext-0002-renamed';

describe('write-back of a record whose key was changed in Salesforce', () => {
  let env: WritebackEnv;

  beforeEach(async () => {
    env = await startWritebackEnv();
    env.sf.store.seed('Lead', leadSeed(LEADS));
    // The source: the seeded leads' keys (ext-0000 … ext-0004), from a system of its own.
    await env.pool.query(`CREATE TABLE lead_src AS
      SELECT format('ext-%s', lpad(i::text, 4, '0')) AS ext, format('Lead %s', i) AS last_name,
             format('Company %s', i % 7) AS company, 1 AS score
        FROM generate_series(0, ${LEADS - 1}) AS i`);
  });
  afterEach(async () => env?.stop());

  const leads = (): Record<string, unknown>[] => [...env.sf.store.all('Lead')];
  const withKey = (ext: string): Record<string, unknown>[] => leads().filter((r) => r.External_Id__c === ext);

  /** Changes a record's fields as a user does: `PATCH /sobjects/Lead/{id}` over HTTP. */
  async function editInSalesforce(id: string, fields: Record<string, unknown>): Promise<void> {
    const other = await env.connect();
    const response = await other.fetchWithSession('test.patch', `/sobjects/Lead/${id}`, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(fields),
    });
    expect(response.status).toBe(204);
  }

  /** One run: the extract, then the write-back and the report; `sent` counts the records written. */
  async function run(
    writeback: WritebackTaskInput = UPSERT,
  ): Promise<WritebackRun & { runId: string; sent: number }> {
    const deps = env.deps({ extract: [LEAD_EXTRACT], writeback: [writeback] });
    const { prepare } = await runExtract({ input: {} }, deps);
    env.sf.calls.clear();
    const outcome = await runWriteback(deps, {
      runId: prepare.runId,
      task: writeback.name ?? `Lead-${writeback.mode}`,
    });
    await reportRun(deps, { runId: prepare.runId });
    const sent = env.sf.calls.writes().reduce((n, w) => n + (w.records ?? 0), 0);
    return { ...outcome, runId: prepare.runId, sent };
  }

  it('upsert: refuses the old key instead of creating a second record, on every run, until the key is put back', async () => {
    const first = await run();
    expect(first.plan).toMatchObject({ changed: LEADS });
    const id = withKey(KEY)[0]?.Id as string;
    const { rows: synced } = await env.pool.query(
      `SELECT salesforce_id FROM roundtrip.sync_state WHERE task = 'Lead-upsert' AND key = $1`,
      [KEY],
    );
    expect(synced).toEqual([{ salesforce_id: id }]);

    // Someone gives the record another external ID by hand; the source changes every score.
    await editInSalesforce(id, { External_Id__c: NEW_KEY });
    await env.pool.query(`UPDATE lead_src SET score = 2`);

    const { plan, result, runId, sent } = await run();

    // The four others are written; the old key is refused before any call.
    expect(plan).toMatchObject({ sourceRows: LEADS, rejected: 1, heldBack: 0, changed: LEADS - 1 });
    expect(result).toMatchObject({ planned: LEADS - 1, succeeded: LEADS - 1, failed: 0 });
    expect(sent).toBe(LEADS - 1);
    // No second record: none holds the old key, and the record keeps its new key and old score.
    expect(leads()).toHaveLength(LEADS);
    expect(withKey(KEY)).toEqual([]);
    expect(withKey(NEW_KEY)).toEqual([expect.objectContaining({ Id: id, LeadScore__c: 1 })]);
    expect(leads().filter((r) => r.Id !== id && r.LeadScore__c !== 2)).toEqual([]);

    const errors = await errorsOf(env, runId);
    expect(errors).toEqual([
      {
        key: KEY,
        stage: 'plan',
        code: 'KEY_CHANGED_IN_SALESFORCE',
        fields: ['External_Id__c'],
        message: expect.stringContaining(
          `key ${KEY}: its record ${id}, which this task last wrote with this key (roundtrip.sync_state), holds External_Id__c ${NEW_KEY} in Salesforce now ("public"."sf_lead", the extracted copy of Lead, has no record with key ${KEY})`,
        ),
      },
    ]);
    const { message } = errors[0] as { message: string };
    expect(message).toContain('an upsert of the key would create a second record for it, so it is not sent');
    expect(message).toContain(`set External_Id__c of record ${id} back to ${KEY} in Salesforce`);
    expect(message).toContain(`make the source write it for this record instead of ${KEY}`);
    expect(message).toContain(
      `DELETE FROM roundtrip.sync_state WHERE task = 'Lead-upsert' AND key = '${KEY}'`,
    );
    const { rows: ids } = await env.pool.query(
      `SELECT salesforce_id FROM roundtrip.writeback_errors WHERE run_id = $1`,
      [runId],
    );
    expect(ids).toEqual([{ salesforce_id: id }]);
    // sync_state still holds what was synced: the next run sees the same.
    const { rows: after } = await env.pool.query(
      `SELECT salesforce_id, synced_values->'LeadScore__c' AS score FROM roundtrip.sync_state WHERE task = 'Lead-upsert' AND key = $1`,
      [KEY],
    );
    expect(after).toEqual([{ salesforce_id: id, score: 1 }]);

    // Nothing changed: nothing is sent, and the key is refused again.
    const again = await run();
    expect(again.plan).toMatchObject({ rejected: 1, changed: 0, unchanged: LEADS - 1 });
    expect(again.sent).toBe(0);
    expect(await errorsOf(env, again.runId)).toEqual([
      expect.objectContaining({ key: KEY, code: 'KEY_CHANGED_IN_SALESFORCE' }),
    ]);
    expect(leads()).toHaveLength(LEADS);
    expect(withKey(KEY)).toEqual([]);

    // The key put back in Salesforce: the row updates the record, once.
    await editInSalesforce(id, { External_Id__c: KEY });
    const fixed = await run();
    expect(fixed.plan).toMatchObject({ rejected: 0, changed: 1, unchanged: LEADS - 1 });
    expect(withKey(KEY)).toEqual([expect.objectContaining({ Id: id, LeadScore__c: 2 })]);
    expect(leads()).toHaveLength(LEADS);
    expect((await run()).plan).toMatchObject({ rejected: 0, changed: 0 });
  });

  it('upsert: the source writing the new key updates the record; the DELETE the message gives creates a record for the old key on purpose', async () => {
    await run();
    const id = withKey(KEY)[0]?.Id as string;
    await editInSalesforce(id, { External_Id__c: NEW_KEY });
    const refused = await run();
    const [error] = await errorsOf(env, refused.runId);
    const forget = /DELETE FROM roundtrip\.sync_state WHERE .*$/.exec(error?.message ?? '')?.[0];
    expect(forget).toBeDefined();

    // The new key is right: the source writes it, and its row finds the record.
    await env.pool.query(`UPDATE lead_src SET ext = $2, score = 3 WHERE ext = $1`, [KEY, NEW_KEY]);
    const renamed = await run();
    expect(renamed.plan).toMatchObject({ rejected: 0, changed: 1 });
    expect(withKey(NEW_KEY)).toEqual([expect.objectContaining({ Id: id, LeadScore__c: 3 })]);
    expect(leads()).toHaveLength(LEADS);

    // The old key back in the source beside it: still refused (sync_state still ties it to the record).
    await env.pool.query(`INSERT INTO lead_src VALUES ($1, 'Lead again', 'Company 2', 4)`, [KEY]);
    expect((await run()).plan).toMatchObject({ rejected: 1, changed: 0 });

    // Forgotten on purpose, as the message says: the key is created as a new record.
    await env.pool.query(forget as string);
    const created = await run();
    expect(created.plan).toMatchObject({ rejected: 0, changed: 1 });
    expect(withKey(KEY)).toEqual([expect.objectContaining({ LastName: 'Lead again', LeadScore__c: 4 })]);
    expect(withKey(KEY)[0]?.Id).not.toBe(id);
    expect(leads()).toHaveLength(LEADS + 1);
  });

  it('upsert: refuses a key whose record has no key in Salesforce now', async () => {
    await run();
    const id = withKey(KEY)[0]?.Id as string;
    await editInSalesforce(id, { External_Id__c: null });
    await env.pool.query(`UPDATE lead_src SET score = 2`);

    const { plan, runId } = await run();

    expect(plan).toMatchObject({ rejected: 1, changed: LEADS - 1 });
    expect(leads()).toHaveLength(LEADS);
    expect(withKey(KEY)).toEqual([]);
    expect(await errorsOf(env, runId)).toEqual([
      expect.objectContaining({
        key: KEY,
        code: 'KEY_CHANGED_IN_SALESFORCE',
        message: expect.stringContaining(
          `its record ${id}, which this task last wrote with this key (roundtrip.sync_state), holds no External_Id__c in Salesforce now`,
        ),
      }),
    ]);
  });

  it('insert keyed by the external ID: a key it inserted is never sent again, whatever its record holds now', async () => {
    const insert: WritebackTaskInput = {
      to: 'salesforce',
      object: 'Lead',
      from: 'lead_new',
      mode: 'insert',
      key: 'External_Id__c',
      keyColumn: 'ext',
      fields: { LastName: 'last_name', Company: 'company' },
    };
    await env.pool.query(
      `CREATE TABLE lead_new AS SELECT * FROM (VALUES ('new-1', 'New', 'Acme'), ('new-2', 'Two', 'Acme')) AS v(ext, last_name, company)`,
    );
    const first = await run(insert);
    expect(first.plan).toMatchObject({ changed: 2 });
    const id = withKey('new-1')[0]?.Id as string;
    await editInSalesforce(id, { External_Id__c: 'new-1-renamed' });

    const { plan, sent, runId } = await run(insert);

    expect(plan).toMatchObject({ sourceRows: 2, rejected: 0, unchanged: 2, changed: 0 });
    expect(sent).toBe(0);
    expect(await errorsOf(env, runId)).toEqual([]);
    expect(withKey('new-1')).toEqual([]);
    expect(withKey('new-1-renamed')).toEqual([expect.objectContaining({ Id: id })]);
    expect(leads()).toHaveLength(LEADS + 2);
  });
});
