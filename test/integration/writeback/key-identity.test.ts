/**
 * The plan tells records apart as Salesforce does, against the extracted copy and against
 * sync_state: an Id given in 15 characters, or in 18 in another case, names the record the copy
 * holds in Salesforce's 18; an external ID that is not case-sensitive names it in any case. A
 * record already as the source wants it is not sent again, and an insert never sends a key
 * whose record exists. What is sent stays as the source wrote it.
 */
import path from 'node:path';
import { DEFAULT_DESCRIBES_DIR } from '../../../emulators/salesforce/describe';
import type { WritebackTaskInput } from '../../../lambdas/config';
import { planWriteback, pushWriteback, runWriteback } from '../../../lambdas/core/writeback';
import { TransientError } from '../../../lambdas/shared/errors';
import {
  errorsOf,
  extractLeads,
  replaceTable,
  startWritebackEnv,
  type LeadCopy,
  type WritebackEnv,
} from './support';

/** The copy of Lead these tests compare with: an Id field, the external IDs, typed as the extract types them. */
const COPY: LeadCopy = {
  fields: [
    'Id',
    'OwnerId',
    'LastName',
    'Company',
    'LeadScore__c',
    'Lead_Number__c',
    'Lead_Key__c',
    'Legacy_Number__c',
    'IsDeleted',
  ],
  columns: `"Id" varchar(18) PRIMARY KEY, "OwnerId" varchar(18), "LastName" text, "Company" text,
    "LeadScore__c" numeric(3,0), "Lead_Number__c" numeric(12,2), "Lead_Key__c" text,
    "Legacy_Number__c" numeric(18,0), "IsDeleted" boolean`,
};

const leadExtract = {
  from: 'salesforce' as const,
  object: 'Lead',
  fields: [...COPY.fields],
  table: 'sf_lead',
};

/** Update of Lead by Id from `from`, as task `name`. */
function update(name: string, from: string, fields: Record<string, string>): WritebackTaskInput {
  return { name, to: 'salesforce', object: 'Lead', from, mode: 'update', fields };
}

describe('write-back keys and Ids compared as Salesforce tells records apart', () => {
  let env: WritebackEnv;

  beforeAll(async () => {
    env = await startWritebackEnv({
      describesDir: [DEFAULT_DESCRIBES_DIR, path.join(__dirname, 'describes')],
    });
  });
  afterAll(async () => env?.stop());

  const source = (table: string, columns: string, rows: unknown[][]): Promise<void> =>
    replaceTable(env, table, columns, rows);

  /**
   * Runs `task` in a new run, comparing with the extracted copy when `extract` (else with
   * sync_state); answers the plan, the push's result and the planned rows.
   */
  async function write(task: WritebackTaskInput, options: { extract?: boolean } = {}) {
    const deps = env.deps({ extract: options.extract ? [leadExtract] : [], writeback: [task] });
    const runId = await env.newRun();
    const { plan, result } = await runWriteback(deps, { runId, task: task.name as string });
    const { rows } = await env.pool.query<{
      key: string;
      salesforce_id: string | null;
      payload: Record<string, unknown>;
    }>(
      `SELECT key, salesforce_id, payload FROM roundtrip.writeback_plan_rows WHERE run_id = $1 ORDER BY seq`,
      [runId],
    );
    return { plan, result, rows, runId };
  }

  it('an Id field given in 15 characters, or in 18 in another case, is the Id the copy holds: sent only when the record changed, as written', async () => {
    const [id] = env.sf.store.seed('Lead', [{ LastName: 'Owned', Company: 'C', LeadScore__c: 1 }]);
    const owner = env.sf.store.get(id as string)?.OwnerId as string;
    expect(owner).toHaveLength(18);
    await extractLeads(env, COPY);
    const task = update('owner-ids', 'owner_src', { OwnerId: 'owner', LeadScore__c: 'score' });
    const columns = `"Id" text, owner text, score integer`;

    await source('owner_src', columns, [[id, owner.slice(0, 15), 1]]);
    const short = await write(task, { extract: true });
    await source('owner_src', columns, [[id, owner.toLowerCase(), 1]]);
    const recased = await write(task, { extract: true });
    await source('owner_src', columns, [[id, owner.slice(0, 15), 2]]);
    const changed = await write(task, { extract: true });

    expect([short.plan, recased.plan, changed.plan]).toMatchObject([
      { comparedWith: 'extract:public.sf_lead', changed: 0 },
      { comparedWith: 'extract:public.sf_lead', changed: 0 },
      { comparedWith: 'extract:public.sf_lead', changed: 1 },
    ]);
    expect(changed.rows.map((r) => r.payload)).toEqual([{ OwnerId: owner.slice(0, 15), LeadScore__c: 2 }]);
    expect(env.sf.store.get(id as string)).toMatchObject({ OwnerId: owner, LeadScore__c: 2 });
  });

  it('an update key given in 15 characters, or in 18 in another case, is the record the copy holds', async () => {
    const [a, b] = env.sf.store.seed('Lead', [
      { LastName: 'A', Company: 'C', LeadScore__c: 7 },
      { LastName: 'B', Company: 'C', LeadScore__c: 8 },
    ]) as [string, string];
    await extractLeads(env, COPY);
    const task = update('short-keys', 'key_src', { LeadScore__c: 'score' });
    const columns = `"Id" text, score integer`;

    await source('key_src', columns, [
      [a.slice(0, 15), 7],
      [b.toLowerCase(), 8],
    ]);
    const same = await write(task, { extract: true });
    await source('key_src', columns, [
      [a.slice(0, 15), 9],
      [b.toLowerCase(), 8],
    ]);
    const one = await write(task, { extract: true });

    expect(same.plan).toMatchObject({ comparedWith: 'extract:public.sf_lead', changed: 0, unchanged: 2 });
    expect(one.plan).toMatchObject({ changed: 1, unchanged: 1 });
    // Compared with the copy's record, sent to the Id as written.
    expect(one.rows).toEqual([
      { key: a.slice(0, 15), salesforce_id: a.slice(0, 15), payload: { LeadScore__c: 9 } },
    ]);
    expect(env.sf.store.get(a)?.LeadScore__c).toBe(9);
  });

  it('matches an Id stored in sync_state as written with any form of it; the latest synced form speaks for the record', async () => {
    const [id] = env.sf.store.seed('Lead', [{ LastName: 'Stored', Company: 'C' }]) as [string];
    const task = update('stored-ids', 'stored_src', { LeadScore__c: 'score' });
    const changed = async (key: string, score: number): Promise<number> => {
      await source('stored_src', `"Id" text, score integer`, [[key, score]]);
      return (await write(task)).plan.changed;
    };
    const short = id.slice(0, 15);

    expect(await changed(id, 5)).toBe(1); // stored under the 18-character key
    expect(await changed(id, 5)).toBe(0); // the key as stored
    expect(await changed(short, 5)).toBe(0); // the same record in 15 characters
    expect(await changed(short, 6)).toBe(1); // stored under the 15-character key as well
    // The 18-character key's row says 5, the later 15-character one 6: Salesforce has 6.
    expect(await changed(id, 6)).toBe(0);
    expect(await changed(id.toLowerCase(), 5)).toBe(1);

    const { rows } = await env.pool.query(
      `SELECT key FROM roundtrip.sync_state WHERE task = 'stored-ids' ORDER BY synced_at`,
    );
    expect(rows.map((r) => r.key)).toEqual([id, short, id.toLowerCase()]);
    expect(env.sf.store.get(id)?.LeadScore__c).toBe(5);
  });

  it('never inserts an external ID that Salesforce matches ignoring case when its record exists in another case', async () => {
    env.sf.store.seed('Lead', [{ LastName: 'Keyed', Company: 'C', Lead_Key__c: 'abc-1' }]);
    await extractLeads(env, COPY);
    const task: WritebackTaskInput = {
      name: 'keyed-insert',
      to: 'salesforce',
      object: 'Lead',
      from: 'keyed_src',
      mode: 'insert',
      key: 'Lead_Key__c',
      keyColumn: 'k',
      fields: { LastName: 'last_name', Company: 'company' },
    };
    const columns = `k text, last_name text, company text`;

    await source('keyed_src', columns, [
      ['ABC-1', 'Keyed', 'C'],
      ['key-2', 'New', 'C'],
      ['Key-3', 'Newer', 'C'],
    ]);
    const first = await write(task, { extract: true });
    // Without the copy, sync_state knows key-2 and Key-3 were inserted: KEY-2 and key-3 are them.
    await source('keyed_src', columns, [
      ['KEY-2', 'New', 'C'],
      ['key-3', 'Newer', 'C'],
    ]);
    const again = await write(task);

    expect(first.plan).toMatchObject({ comparedWith: 'extract:public.sf_lead', changed: 2 });
    expect(first.rows.map((r) => r.key)).toEqual(['key-2', 'Key-3']);
    expect(again.plan).toMatchObject({ comparedWith: 'sync_state', changed: 0 });
    expect(await errorsOf(env, first.runId)).toEqual([]);
    expect(await errorsOf(env, again.runId)).toEqual([]);
    const keys = [...env.sf.store.all('Lead')].map((r) => r.Lead_Key__c).filter((k) => k);
    expect(keys.sort()).toEqual(['Key-3', 'abc-1', 'key-2']);
  });

  it('matches a text external ID written with surrounding whitespace to the record holding it trimmed, and sends it trimmed', async () => {
    env.sf.store.seed('Lead', [{ LastName: 'Padded', Company: 'C', Lead_Key__c: 'pad-1' }]);
    await extractLeads(env, COPY);
    const task: WritebackTaskInput = {
      name: 'padded-insert',
      to: 'salesforce',
      object: 'Lead',
      from: 'padded_src',
      mode: 'insert',
      key: 'Lead_Key__c',
      keyColumn: 'k',
      fields: { LastName: 'last_name', Company: 'company' },
    };
    const columns = `k text, last_name text, company text`;

    await source('padded_src', columns, [
      ['  pad-1 ', 'Padded', 'C'],
      [' pad-2\t', 'New', 'C'],
      [' dup', 'One', 'C'],
      ['DUP ', 'Two', 'C'],
    ]);
    const first = await write(task, { extract: true });
    // Against sync_state, the key inserted as ` pad-2<tab>` is `pad-2 `.
    await source('padded_src', columns, [['pad-2 ', 'New', 'C']]);
    const again = await write(task);

    expect(first.plan).toMatchObject({ changed: 1, rejected: 2 });
    expect(first.rows.map((r) => [r.key, r.payload.Lead_Key__c])).toEqual([[' pad-2\t', 'pad-2']]);
    expect((await errorsOf(env, first.runId)).map((e) => [e.key, e.code])).toEqual([
      [' dup', 'DUPLICATE_KEY'],
      ['DUP ', 'DUPLICATE_KEY'],
    ]);
    expect(again.plan).toMatchObject({ comparedWith: 'sync_state', changed: 0, rejected: 0 });
    const keys = [...env.sf.store.all('Lead')]
      .map((r) => r.Lead_Key__c)
      .filter((k) => String(k).startsWith('pad-'));
    expect(keys.sort()).toEqual(['pad-1', 'pad-2']);
  });

  it('matches a number external ID as a number: 42 from an integer column is the 42.00 the copy holds, 44.0 the 44 inserted', async () => {
    env.sf.store.seed('Lead', [
      { LastName: 'Forty-two', Company: 'C', Lead_Number__c: 42 },
      { LastName: 'Forty-three', Company: 'C', Lead_Number__c: 43 },
    ]);
    await extractLeads(env, COPY);
    const numbered = (name: string, from: string, mode: 'upsert' | 'insert'): WritebackTaskInput => ({
      name,
      to: 'salesforce',
      object: 'Lead',
      from,
      mode,
      key: 'Lead_Number__c',
      keyColumn: 'num',
      fields: { LastName: 'last_name', Company: 'company' },
    });
    const upsert = numbered('number-upsert', 'int_src', 'upsert');
    const insert = numbered('number-insert', 'text_src', 'insert');

    await source('int_src', `num integer, last_name text, company text`, [[42, 'Forty-two', 'C']]);
    const same = await write(upsert, { extract: true });
    await source('text_src', `num text, last_name text, company text`, [
      ['43', 'Forty-three', 'C'],
      ['44', 'Forty-four', 'C'],
    ]);
    const inserted = await write(insert, { extract: true });
    // Without the copy, sync_state knows 44 was inserted.
    await source('text_src', `num text, last_name text, company text`, [['44.0', 'Forty-four', 'C']]);
    const again = await write(insert);

    expect(same.plan).toMatchObject({ comparedWith: 'extract:public.sf_lead', changed: 0, unchanged: 1 });
    expect(inserted.plan).toMatchObject({ comparedWith: 'extract:public.sf_lead', changed: 1 });
    expect(inserted.rows.map((r) => r.key)).toEqual(['44']);
    expect(again.plan).toMatchObject({ comparedWith: 'sync_state', changed: 0 });
    expect([...(await errorsOf(env, inserted.runId)), ...(await errorsOf(env, again.runId))]).toEqual([]);
    const numbers = [...env.sf.store.all('Lead')].map((r) => r.Lead_Number__c).filter((n) => n != null);
    expect(numbers.sort()).toEqual([42, 43, 44]);
  });

  it('refuses two source rows whose number keys are one number (45 and 45.00)', async () => {
    await source('dup_src', `num text, last_name text, company text`, [
      ['45', 'A', 'C'],
      ['45.00', 'B', 'C'],
      ['46', 'C', 'C'],
    ]);
    const task: WritebackTaskInput = {
      name: 'number-dup',
      to: 'salesforce',
      object: 'Lead',
      from: 'dup_src',
      mode: 'upsert',
      key: 'Lead_Number__c',
      keyColumn: 'num',
      fields: { LastName: 'last_name', Company: 'company' },
    };

    const { plan, runId } = await write(task);

    expect(plan).toMatchObject({ sourceRows: 3, rejected: 2, changed: 1 });
    expect((await errorsOf(env, runId)).map((e) => [e.key, e.code, e.message])).toEqual([
      [
        '45',
        'DUPLICATE_KEY',
        'key 45 appears in more than one source row (Lead_Number__c is matched by Salesforce as a number); none of them is sent: make the source hold one row per key',
      ],
      [
        '45.00',
        'DUPLICATE_KEY',
        'key 45.00 appears in more than one source row (Lead_Number__c is matched by Salesforce as a number); none of them is sent: make the source hold one row per key',
      ],
    ]);
  });
  /** Upsert or insert of Lead keyed by Legacy_Number__c, a Number(18, 0) external ID, from `from`. */
  const wide = (name: string, from: string, mode: 'upsert' | 'insert'): WritebackTaskInput => ({
    name,
    to: 'salesforce',
    object: 'Lead',
    from,
    mode,
    key: 'Legacy_Number__c',
    keyColumn: 'num',
    fields: { LastName: 'last_name', Company: 'company' },
  });

  it('matches a number external ID of more than 15 digits as the double Salesforce holds, and refuses keys that are one double', async () => {
    // 12223334445556669 is held as the double 12223334445556668 (the nearest: Help 000394530).
    const [wideId] = env.sf.store.seed('Lead', [
      { LastName: 'Wide', Company: 'C', Legacy_Number__c: '12223334445556668' },
    ]);
    await extractLeads(env, COPY);
    await source('wide_src', `num text, last_name text, company text`, [['12223334445556669', 'Wide', 'C']]);
    const first = await write(wide('wide-upsert', 'wide_src', 'upsert'), { extract: true });
    await extractLeads(env, COPY);
    const again = await write(wide('wide-upsert', 'wide_src', 'upsert'), { extract: true });
    await source('wide_dup', `num numeric, last_name text, company text`, [
      ['12223334445556669', 'A', 'C'],
      ['12223334445556668', 'B', 'C'],
      ['12223334445556670', 'C', 'C'],
    ]);
    const dup = await write(wide('wide-dup', 'wide_dup', 'upsert'));

    // The copy's record is the source's (its Id sent): its key is sent once, as any value of more
    // than 15 digits the task never sent, and then never again.
    expect(first.plan).toMatchObject({ comparedWith: 'extract:public.sf_lead', changed: 1 });
    expect(first.rows.map((r) => r.salesforce_id)).toEqual([wideId]);
    expect(again.plan).toMatchObject({ comparedWith: 'extract:public.sf_lead', changed: 0, unchanged: 1 });
    expect([...env.sf.store.all('Lead')].filter((r) => r.LastName === 'Wide')).toHaveLength(1);
    // Two keys Salesforce cannot tell apart would write one record twice: both refused, the third sent.
    expect(dup.plan).toMatchObject({ sourceRows: 3, rejected: 2, changed: 1 });
    expect((await errorsOf(env, dup.runId)).map((e) => [e.key, e.code, e.message])).toEqual(
      ['12223334445556668', '12223334445556669'].map((k) => [
        k,
        'DUPLICATE_KEY',
        `key ${k} appears in more than one source row (Legacy_Number__c has more than 15 digits, which Salesforce holds as a double: keys that are one double name one record); none of them is sent: make the source hold one row per key`,
      ]),
    );
  });

  it('finds the records a lost answer created by a number external ID of more than 15 digits, and does not insert them again', async () => {
    await source('wide_ins', `num text, last_name text, company text`, [
      ['22223334445556669', 'First', 'C'],
      ['22223334445556673', 'Second', 'C'],
    ]);
    const task = wide('wide-insert', 'wide_ins', 'insert');
    const deps = env.deps({ writeback: [task] });
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'wide-insert' });
    // Salesforce creates both records; the connection drops in the middle of its answer.
    env.sf.faults.set({ resetWriteAnswerAfterBytes: 40 });
    await expect(pushWriteback(deps, { runId, task: 'wide-insert' })).rejects.toBeInstanceOf(TransientError);
    env.sf.calls.clear();

    // The retry looks the keys up: Salesforce answers them as numbers (doubles, once parsed).
    const retried = await pushWriteback(deps, { runId, task: 'wide-insert' });

    expect(retried).toMatchObject({ status: 'collected', succeeded: 2, failed: 0 });
    expect(env.sf.calls.count({ write: true })).toBe(0);
    const held = [...env.sf.store.all('Lead')].filter((r) => String(r.Legacy_Number__c).startsWith('2222'));
    expect(held.map((r) => r.LastName).sort()).toEqual(['First', 'Second']);
  });
});
