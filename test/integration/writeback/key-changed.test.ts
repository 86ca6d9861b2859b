/**
 * A record's external ID changed by hand in Salesforce after the write-back synced it: the source
 * still writes the old key, and the extracted copy has no record with it. An upsert of that key
 * would create a second record for it beside the one sync_state says the task wrote, so the plan
 * refuses it (KEY_CHANGED_IN_SALESFORCE), naming the record, the key it holds now and the ways
 * out, on every run until someone puts it right. An insert keyed by the external ID never sends a
 * key it inserted again. Each run is the real extract (queryAll into PostgreSQL), the source's SQL
 * and the write-back, against the Salesforce emulator over HTTP; the key is edited by a REST PATCH.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { WritebackTaskInput } from '../../../lambdas/config';
import { runExtract } from '../../../lambdas/core';
import {
  planWriteback,
  pushWriteback,
  reportRun,
  runWriteback,
  type WritebackRun,
} from '../../../lambdas/core/writeback';
import { cli, exitOf, type Captured } from '../../support/cli';
import {
  crashingConnector,
  errorsOf,
  leadSeed,
  runFigures,
  startWritebackEnv,
  type WritebackEnv,
} from './support';

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

  /**
   * One run without an extract of Lead (the plan compares with sync_state): the write-back and the
   * report; `writes` counts the write calls (a Collections call, a Bulk job's upload…), `queries`
   * the SOQL queries the write-back made.
   */
  async function runWithoutCopy(
    writeback: WritebackTaskInput = UPSERT,
  ): Promise<WritebackRun & { runId: string; writes: number; queries: number }> {
    const deps = env.deps({ writeback: [writeback] });
    const runId = await env.newRun();
    env.sf.calls.clear();
    const outcome = await runWriteback(deps, { runId, task: writeback.name ?? `Lead-${writeback.mode}` });
    await reportRun(deps, { runId });
    return {
      ...outcome,
      runId,
      writes: env.sf.calls.writes().length,
      queries: env.sf.calls.count({ operation: 'query' }),
    };
  }

  const syncedId = async (key: string): Promise<unknown> =>
    (
      await env.pool.query(
        `SELECT salesforce_id FROM roundtrip.sync_state WHERE task = 'Lead-upsert' AND key = $1`,
        [key],
      )
    ).rows[0]?.salesforce_id;

  /** `roundtrip errors --run <runId>` of a pipeline with this write-back. */
  async function errorsCommand(runId: string, writeback: WritebackTaskInput): Promise<Captured> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'roundtrip-key-changed-'));
    try {
      const config = await env.writeConfigFile(path.join(dir, 'roundtrip.config.json'), {
        writeback: [writeback],
      });
      const captured = await cli([
        'errors',
        '--run',
        runId,
        '--config',
        config,
        '--database-url',
        env.db.url,
      ]);
      expect(exitOf(captured)).toBe(0);
      return captured;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  const BULK_UPSERT: WritebackTaskInput = { ...UPSERT, bulkThreshold: 1 };

  it.each([
    ['Collections', UPSERT],
    ['Bulk', BULK_UPSERT],
  ])(
    'upsert not compared with a copy (%s): the second record Salesforce creates for the old key is reported with both Ids, once, and sync_state points to it',
    async (_api, upsert) => {
      const first = await runWithoutCopy(upsert);
      expect(first.result).toMatchObject({ succeeded: LEADS, failed: 0 });
      // Created keys sync_state held no Id for: no look-up, no report.
      expect(first.queries).toBe(0);
      expect(first.result?.secondRecords).toBeUndefined();
      const id = withKey(KEY)[0]?.Id as string;

      // Someone gives the record another external ID by hand; the source changes every score.
      await editInSalesforce(id, { External_Id__c: NEW_KEY });
      await env.pool.query(`UPDATE lead_src SET score = 2`);
      const { plan, result, runId, queries } = await runWithoutCopy(upsert);

      // Salesforce found no record with the old key, and created one (as it does).
      expect(plan).toMatchObject({ rejected: 0, changed: LEADS });
      expect(leads()).toHaveLength(LEADS + 1);
      const second = withKey(KEY)[0]?.Id as string;
      expect(withKey(KEY)).toEqual([expect.objectContaining({ Id: second, LeadScore__c: 2 })]);
      expect(second).not.toBe(id);
      expect(withKey(NEW_KEY)).toEqual([expect.objectContaining({ Id: id, LeadScore__c: 1 })]);
      // Written, not failed; one look-up of the old record.
      expect(result).toMatchObject({ succeeded: LEADS, failed: 0, secondRecords: 1 });
      expect(queries).toBe(1);
      expect(await runFigures(env, runId, 'Lead-upsert')).toMatchObject({
        written: LEADS,
        failed: 0,
        secondRecords: 1,
      });
      const { rows: reported } = await env.pool.query(
        `SELECT key, salesforce_id, stage, code, fields, message FROM roundtrip.writeback_errors WHERE run_id = $1`,
        [runId],
      );
      expect(reported).toEqual([
        {
          key: KEY,
          salesforce_id: id,
          stage: 'push',
          code: 'KEY_CHANGED_RECORD_CREATED',
          fields: ['External_Id__c'],
          message: expect.stringContaining(
            `key ${KEY}: Salesforce created record ${second} for it, as no record held the key any more: record ${id}, which this task last wrote with this key (roundtrip.sync_state), holds External_Id__c ${NEW_KEY} in Salesforce now`,
          ),
        },
      ]);
      const { message } = reported[0] as { message: string };
      expect(message).toContain('merge the two in Salesforce');
      expect(message).toContain(`set External_Id__c of record ${id} back to ${KEY}`);
      // roundtrip errors lists it with the key and the old record's Id, written rather than failed.
      const listed = await errorsCommand(runId, upsert);
      expect(listed.stdout).toContain(
        `0 rejected before sending, 0 failed when sent, 1 written as a second record (the key of the record synced before was changed in Salesforce)`,
      );
      expect(listed.stdout).toMatch(
        new RegExp(`Lead-upsert +push +${KEY} +${id} +KEY_CHANGED_RECORD_CREATED`),
      );
      // sync_state holds the record that has the key now.
      expect(await syncedId(KEY)).toBe(second);

      // Nothing changed: nothing is sent, nothing looked up, nothing reported.
      const third = await runWithoutCopy(upsert);
      expect(third.plan).toMatchObject({ changed: 0, unchanged: LEADS });
      expect(third.writes).toBe(0);
      expect(third.queries).toBe(0);
      expect(await errorsOf(env, third.runId)).toEqual([]);
      expect(leads()).toHaveLength(LEADS + 1);
    },
  );

  it('upsert not compared with a copy: a key whose record was deleted in Salesforce is created again, not reported', async () => {
    await runWithoutCopy();
    const id = withKey(KEY)[0]?.Id as string;
    const other = await env.connect();
    const deleted = await other.fetchWithSession('test.delete', `/sobjects/Lead/${id}`, { method: 'DELETE' });
    expect(deleted.status).toBe(204);
    await env.pool.query(`UPDATE lead_src SET score = 2`);

    const { result, runId, queries } = await runWithoutCopy();

    const live = withKey(KEY).filter((r) => r.IsDeleted !== true);
    expect(live).toEqual([expect.objectContaining({ LeadScore__c: 2 })]);
    const second = live[0]?.Id as string;
    expect(second).not.toBe(id);
    expect(queries).toBe(1);
    expect(result).toMatchObject({ succeeded: LEADS, failed: 0 });
    expect(result?.secondRecords).toBeUndefined();
    expect(await errorsOf(env, runId)).toEqual([]);
    expect(await syncedId(KEY)).toBe(second);
  });

  it.each([
    [
      'its look-up of the old record',
      (operation: string) => operation === 'query',
      'CREATED_BESIDE_SYNCED_RECORD',
    ],
    [
      'its upsert call (before recording the results)',
      (operation: string) => /^Collections upsert/.test(operation),
      null,
    ],
  ])(
    'upsert not compared with a copy: a push that dies after %s reports the second record once when retried',
    async (_point, crashesAfter, leftUnchecked) => {
      await runWithoutCopy();
      const id = withKey(KEY)[0]?.Id as string;
      await editInSalesforce(id, { External_Id__c: NEW_KEY });
      await env.pool.query(`UPDATE lead_src SET score = 2`);
      const deps = env.deps({ writeback: [UPSERT] });
      const runId = await env.newRun();
      const plan = await planWriteback(deps, { runId, task: 'Lead-upsert', dryRun: false });
      expect(plan).toMatchObject({ changed: LEADS });

      // The call reaches Salesforce, and the step dies before it records what it answered.
      const crashing = crashingConnector(env.connector, crashesAfter);
      await expect(
        pushWriteback({ ...deps, salesforce: crashing }, { runId, task: 'Lead-upsert' }),
      ).rejects.toThrow(/simulated crash after/);
      expect(leads()).toHaveLength(LEADS + 1);
      // Died after the look-up: the results are recorded, the record kept as not looked up yet.
      // Died after the upsert: nothing is recorded, and the retry sends the records again.
      expect(await errorsOf(env, runId)).toEqual(
        leftUnchecked ? [expect.objectContaining({ key: KEY, code: leftUnchecked })] : [],
      );
      env.sf.calls.clear();
      const retried = await pushWriteback(deps, { runId, task: 'Lead-upsert' });

      expect(env.sf.calls.writes()).toHaveLength(leftUnchecked ? 0 : 1);
      expect(env.sf.calls.count({ operation: 'query' })).toBe(1);
      expect(retried).toMatchObject({ status: 'collected', succeeded: LEADS, failed: 0, secondRecords: 1 });
      const second = withKey(KEY)[0]?.Id as string;
      expect(await errorsOf(env, runId)).toEqual([
        expect.objectContaining({
          key: KEY,
          stage: 'push',
          code: 'KEY_CHANGED_RECORD_CREATED',
          message: expect.stringContaining(`Salesforce created record ${second} for it`),
        }),
      ]);
      expect(leads()).toHaveLength(LEADS + 1);
      expect(await syncedId(KEY)).toBe(second);
    },
  );

  it.each([
    ['Collections: its push died with the look-up, never retried', UPSERT],
    ['Bulk: its job was never collected, and the next plan collects it', BULK_UPSERT],
  ])(
    'upsert not compared with a copy: a second record whose run ended before the look-up (%s) is looked up by the next real plan of the task, and counted in that run',
    async (_how, upsert) => {
      await runWithoutCopy(upsert);
      const id = withKey(KEY)[0]?.Id as string;
      await editInSalesforce(id, { External_Id__c: NEW_KEY });
      await env.pool.query(`UPDATE lead_src SET score = 2`);
      const deps = env.deps({ writeback: [upsert] });
      const ended = await env.newRun();
      await planWriteback(deps, { runId: ended, task: 'Lead-upsert', dryRun: false });
      if (upsert === UPSERT) {
        // The results are recorded, the step dies with its look-up, and no retry comes.
        const crashing = crashingConnector(env.connector, (operation) => operation === 'query');
        await expect(
          pushWriteback({ ...deps, salesforce: crashing }, { runId: ended, task: 'Lead-upsert' }),
        ).rejects.toThrow(/simulated crash after/);
        expect(await errorsOf(env, ended)).toEqual([
          expect.objectContaining({ key: KEY, code: 'CREATED_BESIDE_SYNCED_RECORD' }),
        ]);
      } else {
        // The job is sent, and the run ends before any collect.
        expect(await pushWriteback(deps, { runId: ended, task: 'Lead-upsert' })).toMatchObject({
          status: 'bulk-pending',
        });
      }
      await reportRun(deps, { runId: ended, error: { Error: 'TransientError', Cause: 'retries spent' } });
      expect(await runFigures(env, ended, 'Lead-upsert')).not.toHaveProperty('secondRecords');

      // A dry run changes nothing, and looks nothing up.
      env.sf.calls.clear();
      await planWriteback(deps, { runId: await env.newRun(), task: 'Lead-upsert', dryRun: true });
      expect(env.sf.calls.count({ operation: 'query' })).toBe(0);

      // The next run's plan looks the old record up (one query, counted in the plan's calls) and
      // reports the second record in the ended run, whose figures count it.
      const next = await runWithoutCopy(upsert);
      expect(next.plan).toMatchObject({ changed: 0, unchanged: LEADS });
      expect(next.writes).toBe(0);
      expect(next.queries).toBe(1);
      const second = withKey(KEY)[0]?.Id as string;
      expect(await errorsOf(env, ended)).toEqual([
        expect.objectContaining({
          key: KEY,
          code: 'KEY_CHANGED_RECORD_CREATED',
          message: expect.stringContaining(
            `key ${KEY}: Salesforce created record ${second} for it, as no record held the key any more: record ${id}, which this task last wrote with this key (roundtrip.sync_state), holds External_Id__c ${NEW_KEY} in Salesforce now`,
          ),
        }),
      ]);
      expect(await runFigures(env, ended, 'Lead-upsert')).toMatchObject({
        written: LEADS,
        failed: 0,
        secondRecords: 1,
        outcomesResolvedBy: next.runId,
      });
      expect(await errorsOf(env, next.runId)).toEqual([]);

      // Nothing left to look up: the run after makes no query, one call fewer (and none for the
      // Bulk job: its state and its results, read once).
      const after = await runWithoutCopy(upsert);
      expect(after.queries).toBe(0);
      expect(after.plan.apiCalls).toBe((next.plan.apiCalls ?? 0) - 1 - (upsert === UPSERT ? 0 : 2));
    },
  );

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
