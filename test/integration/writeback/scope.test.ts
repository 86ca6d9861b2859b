/**
 * A write-back task whose object or key changed while it has synced records: the plan refuses it
 * before reading or writing anything (every record would look new and be created again), says how
 * to go on, and goes on once the task is started over. Changing fields or mode by the same key is
 * not refused. Through the emulator and the real PostgreSQL.
 */
import { planWriteback, pushWriteback, reportRun, runWriteback } from '../../../lambdas/core/writeback';
import { SyncScopeChangedError } from '../../../lambdas/core/writeback/scope';
import { forgetTask } from '../../../lambdas/core/task-state';
import { LEAD_SRC_UPSERT, planThenCrashInPush, startWritebackEnv, type WritebackEnv } from './support';

describe('a write-back task synced by one object and key, then configured with another', () => {
  let env: WritebackEnv;

  beforeAll(async () => {
    env = await startWritebackEnv();
    await env.pool.query(
      `CREATE TABLE lead_src (ext text, email text, last_name text, company text, score integer)`,
    );
  });
  afterAll(async () => env?.stop());

  /** `n` rows keyed `${prefix}-i` with e-mail `${prefix}-i@example.test`. */
  async function source(prefix: string, n: number, score = 1): Promise<void> {
    await env.pool.query('DELETE FROM lead_src');
    await env.pool.query(
      `INSERT INTO lead_src SELECT $1 || '-' || i, $1 || '-' || i || '@example.test', 'Scope ' || i, 'Acme', $3
         FROM generate_series(1, $2::int) AS i`,
      [prefix, n, score],
    );
  }

  const leadsOf = (prefix: string): Record<string, unknown>[] =>
    [...env.sf.store.all('Lead')].filter(
      (r) => String(r.LastName).startsWith('Scope ') && String(r.Email).startsWith(`${prefix}-`),
    );

  const byExternalId = {
    ...LEAD_SRC_UPSERT,
    name: 'scored',
    fields: { LastName: 'last_name', Company: 'company', LeadScore__c: 'score' },
  };
  const byEmail = { ...byExternalId, key: 'Email', keyColumn: 'email' };

  it('refuses an upsert whose key moved, before any call or write, and says how to move without duplicates', async () => {
    await source('moved', 4);
    // Synced by External_Id__c, which the records carry; Email is not sent.
    const first = await runWriteback(env.deps({ writeback: [byExternalId] }), {
      runId: await env.newRun(),
      task: 'scored',
    });
    expect(first.result).toMatchObject({ succeeded: 4 });
    for (const lead of leadsOf('moved')) expect(lead.Email ?? null).toBeNull();

    env.sf.calls.clear();
    const runId = await env.newRun();
    const refused = await planWriteback(env.deps({ writeback: [byEmail] }), { runId, task: 'scored' }).catch(
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(SyncScopeChangedError);
    expect((refused as Error).message).toBe(
      'Write-back scored (writeback[0]): its 4 synced record(s) in roundtrip.sync_state were matched by External_Id__c, and the task now upserts by Email. ' +
        'Records that do not carry Email yet would be created again by the upsert. ' +
        'To move the records to Email without creating any again, first map Email as a field while the key is still External_Id__c and run (every record gets it); ' +
        "then give the task a new `name` (writeback[0].name: every record is sent once and found by Email), or start the task over under its name (roundtrip forget --task scored --yes, with the pipeline's --config and --secrets: it deletes the task's sync state, and every record is sent once).",
    );
    // No call (the describe was cached): no look-up of ended runs' inserts, no write; nothing planned.
    expect(env.sf.calls.all().map((c) => c.operation)).toEqual([]);
    const { rows } = await env.pool.query(
      `SELECT count(*)::int AS n FROM roundtrip.writeback_plan_pages WHERE run_id = $1`,
      [runId],
    );
    expect(rows[0].n).toBe(0);
    // A dry run is refused alike (roundtrip plan shows it), and records nothing.
    await expect(
      planWriteback(env.deps({ writeback: [byEmail] }), {
        runId: await env.newRun(),
        task: 'scored',
        dryRun: true,
      }),
    ).rejects.toThrow(SyncScopeChangedError);

    // The way the message gives: Email mapped as a field under the old key, then the key moved.
    const withEmail = { ...byExternalId, fields: { ...byExternalId.fields, Email: 'email' } };
    expect(
      (
        await runWriteback(env.deps({ writeback: [withEmail] }), {
          runId: await env.newRun(),
          task: 'scored',
        })
      ).result,
    ).toMatchObject({ succeeded: 4 });
    const startedOver = { ...byEmail, name: 'scored-by-email' };
    await source('moved', 4, 2);
    const moved = await runWriteback(env.deps({ writeback: [startedOver] }), {
      runId: await env.newRun(),
      task: 'scored-by-email',
    });
    expect(moved.result).toMatchObject({ succeeded: 4, failed: 0 });
    // Updated by Email, none created again.
    expect(leadsOf('moved')).toHaveLength(4);
    for (const lead of leadsOf('moved')) expect(lead.LeadScore__c).toBe(2);
  });

  it('refuses a task whose object changed under the same name, whose keys would be taken as synced', async () => {
    await source('object', 2);
    const task = { ...byExternalId, name: 'moving' };
    await runWriteback(env.deps({ writeback: [task] }), { runId: await env.newRun(), task: 'moving' });
    const contact = {
      ...task,
      object: 'Contact',
      key: 'Email',
      keyColumn: 'email',
      fields: { LastName: 'last_name' },
    };
    await expect(
      planWriteback(env.deps({ writeback: [contact] }), { runId: await env.newRun(), task: 'moving' }),
    ).rejects.toThrow(
      "Write-back moving (writeback[0]): its 2 synced record(s) in roundtrip.sync_state were written to Lead, and the task now writes Contact. Their keys would be taken as synced, and those records never written to Contact. To write them to Contact, give the task a new `name` (writeback[0].name: its sync state starts empty and every record is sent once), or start the task over under its name (roundtrip forget --task moving --yes, with the pipeline's --config and --secrets: it deletes the task's sync state, and every record is sent once).",
    );
    // Planned by the CLI (run, plan), the command carries the options it was given, to be pasted
    // as it is, instead of saying to add the pipeline's.
    const fromCli = {
      ...env.deps({ writeback: [contact] }),
      commandOptions: " --config 'my pipeline.config.ts'",
    };
    await expect(planWriteback(fromCli, { runId: await env.newRun(), task: 'moving' })).rejects.toThrow(
      "or start the task over under its name (roundtrip forget --task moving --config 'my pipeline.config.ts' --yes: it deletes the task's sync state, and every record is sent once).",
    );

    // Started over as the message says (roundtrip forget: its sync state and scope deleted), the
    // task syncs by the new scope. Forget waits for the runs that planned it to end (their Report).
    await env.pool.query(
      `UPDATE roundtrip.runs SET status = 'succeeded', finished_at = now() WHERE status = 'running'`,
    );
    expect(await forgetTask(env.pool, 'wb-test', 'moving', { apply: true })).toMatchObject({
      kind: 'forgotten',
      syncState: 2,
      syncScope: 1,
    });
    const over = await runWriteback(env.deps({ writeback: [contact] }), {
      runId: await env.newRun(),
      task: 'moving',
    });
    expect(over.result).toMatchObject({ succeeded: 2 });
    const { rows } = await env.pool.query(
      `SELECT object, key_field FROM roundtrip.sync_scope WHERE task = 'moving'`,
    );
    expect(rows).toEqual([{ object: 'Contact', key_field: 'Email' }]);
  });

  it('names --insert-again in the forget command it gives an insert task whose object changed', async () => {
    await source('inserting', 2);
    const task = { ...byExternalId, name: 'inserting', mode: 'insert' as const };
    await runWriteback(env.deps({ writeback: [task] }), { runId: await env.newRun(), task: 'inserting' });
    // Contact has no external-ID field: inserted without one, its keys read from the same column.
    const { key: _key, ...keyless } = task;
    const contact = { ...keyless, object: 'Contact', fields: { LastName: 'last_name' } };
    await expect(
      planWriteback(env.deps({ writeback: [contact] }), { runId: await env.newRun(), task: 'inserting' }),
    ).rejects.toThrow(
      'or start the task over under its name (roundtrip forget --task inserting --yes --insert-again, with the pipeline',
    );
    await env.pool.query(
      `UPDATE roundtrip.runs SET status = 'succeeded', finished_at = now() WHERE status = 'running'`,
    );
  });

  it('plans fields and modes changed by the same key, and tasks synced before the scope was recorded', async () => {
    await source('same', 3);
    const task = { ...byExternalId, name: 'same-key' };
    await runWriteback(env.deps({ writeback: [task] }), { runId: await env.newRun(), task: 'same-key' });
    // Another field, and `lead` spelt otherwise: the same scope.
    const more = { ...task, object: 'lead', fields: { ...task.fields, Title: 'company' } };
    expect(
      (await planWriteback(env.deps({ writeback: [more] }), { runId: await env.newRun(), task: 'same-key' }))
        .changed,
    ).toBe(3);

    // Synced before migration 8: no scope recorded. Taken as matching, then recorded.
    await env.pool.query(`DELETE FROM roundtrip.sync_scope WHERE task = 'same-key'`);
    await planWriteback(env.deps({ writeback: [task] }), { runId: await env.newRun(), task: 'same-key' });
    const { rows } = await env.pool.query(
      `SELECT object, key_field FROM roundtrip.sync_scope WHERE task = 'same-key'`,
    );
    expect(rows).toEqual([{ object: 'Lead', key_field: 'External_Id__c' }]);
  });

  it('lets an insert drop its key field (its keys stay its key column), but not hide a change of match field that way', async () => {
    await source('detour', 2);
    const keyed = { ...byExternalId, name: 'detour', mode: 'insert' as const };
    expect(
      (await runWriteback(env.deps({ writeback: [keyed] }), { runId: await env.newRun(), task: 'detour' }))
        .result,
    ).toMatchObject({ succeeded: 2 });
    const { key: _key, ...keyless } = keyed;
    expect(
      (await planWriteback(env.deps({ writeback: [keyless] }), { runId: await env.newRun(), task: 'detour' }))
        .changed,
    ).toBe(0);
    const upsertByEmail = { ...byEmail, name: 'detour' };
    await expect(
      planWriteback(env.deps({ writeback: [upsertByEmail] }), { runId: await env.newRun(), task: 'detour' }),
    ).rejects.toThrow(/were matched by External_Id__c, and the task now upserts by Email\./);
  });

  it('refuses an upsert after an update by Id or a keyless insert, whose records need not carry its key; not the reverse', async () => {
    await source('from-id', 2);
    // Records created by an upsert by External_Id__c, then written by an update by Id.
    await runWriteback(env.deps({ writeback: [{ ...byExternalId, name: 'creator' }] }), {
      runId: await env.newRun(),
      task: 'creator',
    });
    const ids = [...env.sf.store.all('Lead')]
      .filter((r) => String(r.External_Id__c).startsWith('from-id-'))
      .map((r) => r.Id as string);
    expect(ids).toHaveLength(2);
    await env.pool.query(`CREATE TABLE by_id ("Id" text, score integer)`);
    await env.pool.query(`INSERT INTO by_id SELECT unnest($1::text[]), 5`, [ids]);
    const update = {
      to: 'salesforce' as const,
      object: 'Lead',
      from: 'by_id',
      mode: 'update' as const,
      name: 'switching',
      fields: { LeadScore__c: 'score' },
    };
    expect(
      (
        await runWriteback(env.deps({ writeback: [update] }), {
          runId: await env.newRun(),
          task: 'switching',
        })
      ).result,
    ).toMatchObject({ succeeded: 2 });
    const upsert = { ...byExternalId, name: 'switching' };
    await expect(
      planWriteback(env.deps({ writeback: [upsert] }), { runId: await env.newRun(), task: 'switching' }),
    ).rejects.toThrow(
      /were matched by Id, and the task now upserts by External_Id__c\. .* first map External_Id__c as a field while the key is still Id and run/,
    );

    // A keyless insert's records carry no key field at all.
    await source('keyless', 2);
    const { key: _key, ...keylessInsert } = { ...byExternalId, name: 'keyless', mode: 'insert' as const };
    expect(
      (
        await runWriteback(env.deps({ writeback: [keylessInsert] }), {
          runId: await env.newRun(),
          task: 'keyless',
        })
      ).result,
    ).toMatchObject({ succeeded: 2 });
    // Given its key field later (the same key column), the insert plans on; the records it
    // inserted before still do not carry the field, so an upsert by it stays refused.
    await runWriteback(env.deps({ writeback: [{ ...keylessInsert, key: 'External_Id__c' }] }), {
      runId: await env.newRun(),
      task: 'keyless',
    });
    await expect(
      planWriteback(env.deps({ writeback: [{ ...byExternalId, name: 'keyless' }] }), {
        runId: await env.newRun(),
        task: 'keyless',
      }),
    ).rejects.toThrow(
      /were inserted without a key field, and the task now upserts by External_Id__c\. .* first map External_Id__c as a field of an update by Id and run/,
    );

    // An upsert turned into an update matches by Id, which creates nothing: not refused.
    const upserted = { ...byExternalId, name: 'to-update' };
    await source('to-update', 2);
    await runWriteback(env.deps({ writeback: [upserted] }), { runId: await env.newRun(), task: 'to-update' });
    await expect(
      planWriteback(env.deps({ writeback: [{ ...update, name: 'to-update' }] }), {
        runId: await env.newRun(),
        task: 'to-update',
      }),
    ).resolves.toMatchObject({ changed: expect.any(Number) });
  });

  it('refuses an insert keyed by another field, or after an update by Id: its keys are other keys', async () => {
    await source('rekeyed', 2);
    const insert = { ...byExternalId, name: 'rekeyed', mode: 'insert' as const };
    // Synced keyed by another external ID (Lead has one only here: the state is written as an earlier run left it).
    await env.pool.query(
      `INSERT INTO roundtrip.sync_scope (task, object, key_field) VALUES ('rekeyed', 'Lead', 'Legacy_Id__c')`,
    );
    await env.pool.query(
      `INSERT INTO roundtrip.sync_state (task, key, value_hash) VALUES ('rekeyed', 'L-1', 'h'), ('rekeyed', 'L-2', 'h')`,
    );
    await expect(
      planWriteback(env.deps({ writeback: [insert] }), { runId: await env.newRun(), task: 'rekeyed' }),
    ).rejects.toThrow(
      'Write-back rekeyed (writeback[0]): its 2 synced record(s) in roundtrip.sync_state were keyed by Legacy_Id__c, and the task now inserts by External_Id__c. Keyed otherwise, every record would be inserted again. An insert cannot change its key without inserting its records again: keep its key, or write the records by an upsert by the new key under a new `name` once every record carries it (map it as a field of an update by Id and run first).',
    );
    // Written by an update: keyed by Id.
    await env.pool.query(`UPDATE roundtrip.sync_scope SET key_field = 'Id' WHERE task = 'rekeyed'`);
    const { key: _key, ...keyless } = insert;
    await expect(
      planWriteback(env.deps({ writeback: [keyless] }), { runId: await env.newRun(), task: 'rekeyed' }),
    ).rejects.toThrow(/were keyed by Id, and the task now inserts without a key field\./);
  });

  it("refuses an insert or upsert whose key column changed (other values are other keys), not an update's", async () => {
    await source('column', 3);
    const { key: _key, ...keyless } = { ...byExternalId, name: 'by-column', mode: 'insert' as const };
    const first = await runWriteback(env.deps({ writeback: [keyless] }), {
      runId: await env.newRun(),
      task: 'by-column',
    });
    expect(first.result).toMatchObject({ succeeded: 3 });
    // Keyed by e-mail now: none of the synced keys (the ext values) matches, so every record
    // would be inserted again.
    const byEmailColumn = { ...keyless, keyColumn: 'email' };
    await expect(
      planWriteback(env.deps({ writeback: [byEmailColumn] }), {
        runId: await env.newRun(),
        task: 'by-column',
      }),
    ).rejects.toThrow(
      "Write-back by-column (writeback[0]): its 3 synced record(s) in roundtrip.sync_state were keyed by the values of column ext, and the task now reads its keys from email (writeback[0].keyColumn). Other values are other keys: every record would be sent as new, and inserted again. If email holds the keys ext held (a column renamed), record it: UPDATE roundtrip.sync_scope SET key_column = 'email' WHERE task = 'by-column'.",
    );
    // A key column the source does not have is a misspelling, not a column renamed: named as the
    // column it lacks, with the one meant, and not as a change to record by hand; in the plan's
    // own words for a column its source lacks (what to correct included).
    const misspelt = await planWriteback(env.deps({ writeback: [{ ...keyless, keyColumn: 'emial' }] }), {
      runId: await env.newRun(),
      task: 'by-column',
    }).catch((e: unknown) => e);
    expect(misspelt).not.toBeInstanceOf(SyncScopeChangedError);
    expect((misspelt as Error).message).toBe(
      'Write-back by-column: the source "public"."lead_src" has no column "emial" (writeback[0].keyColumn; did you mean "email"?) (it has "ext", "email", "last_name", "company", "score"): correct the name in the config, or the SQL that makes the source (a column\'s alias)',
    );
    // A field's column misspelt too: named in the same message, as the plan's check names them.
    const misspeltBoth = await planWriteback(
      env.deps({
        writeback: [{ ...keyless, keyColumn: 'emial', fields: { ...keyless.fields, LeadScore__c: 'scor' } }],
      }),
      { runId: await env.newRun(), task: 'by-column' },
    ).catch((e: unknown) => e);
    expect(misspeltBoth).not.toBeInstanceOf(SyncScopeChangedError);
    expect((misspeltBoth as Error).message).toBe(
      'Write-back by-column: the source "public"."lead_src" has no column "emial" (writeback[0].keyColumn; did you mean "email"?), "scor" (writeback[0].fields.LeadScore__c; did you mean "score"?) (it has "ext", "email", "last_name", "company", "score"): correct the name in the config, or the SQL that makes the source (a column\'s alias)',
    );
    // Nor through a key field read from the other column.
    const keyedByEmailColumn = { ...keyless, key: 'External_Id__c', keyColumn: 'email' };
    await expect(
      planWriteback(env.deps({ writeback: [keyedByEmailColumn] }), {
        runId: await env.newRun(),
        task: 'by-column',
      }),
    ).rejects.toThrow(/were keyed by the values of column ext, and the task now reads its keys from email/);
    // The same column under a key field keeps the keys.
    const keyedByExt = { ...keyless, key: 'External_Id__c' };
    expect(
      (
        await planWriteback(env.deps({ writeback: [keyedByExt] }), {
          runId: await env.newRun(),
          task: 'by-column',
        })
      ).changed,
    ).toBe(0);
    // An update's keys are Ids whatever column holds them: not refused.
    await env.pool.query(
      `CREATE TABLE ids_moved AS SELECT salesforce_id AS "Id", salesforce_id AS sf_id, 7 AS score
         FROM roundtrip.sync_state WHERE task = 'by-column'`,
    );
    const update = {
      to: 'salesforce' as const,
      object: 'Lead',
      from: 'ids_moved',
      mode: 'update' as const,
      name: 'update-moved',
      fields: { LeadScore__c: 'score' },
    };
    await runWriteback(env.deps({ writeback: [update] }), {
      runId: await env.newRun(),
      task: 'update-moved',
    });
    expect(
      (
        await planWriteback(env.deps({ writeback: [{ ...update, keyColumn: 'sf_id' }] }), {
          runId: await env.newRun(),
          task: 'update-moved',
        })
      ).changed,
    ).toBe(0);
    // A column renamed, recorded as the error says: planned again.
    await env.pool.query(`UPDATE roundtrip.sync_scope SET key_column = 'email' WHERE task = 'by-column'`);
    await env.pool.query(
      `UPDATE roundtrip.sync_state SET key = key || '@example.test' WHERE task = 'by-column'`,
    );
    expect(
      (
        await planWriteback(env.deps({ writeback: [byEmailColumn] }), {
          runId: await env.newRun(),
          task: 'by-column',
        })
      ).changed,
    ).toBe(0);
  });

  it('a keyless insert with keys sent without an outcome, refused for its key column: no plan looks them up, so the message gives the resolve command alone', async () => {
    await source('lostcol', 2);
    const { key: _key, ...keyless } = { ...byExternalId, name: 'lost-keyless', mode: 'insert' as const };
    const deps = env.deps({ writeback: [keyless] });
    const dead = await env.newRun();
    await planThenCrashInPush(env, deps, dead, 'lost-keyless');
    await reportRun(deps, { runId: dead, error: { Error: 'States.Timeout', Cause: 'Task timed out' } });
    const refused = await planWriteback(env.deps({ writeback: [{ ...keyless, keyColumn: 'email' }] }), {
      runId: await env.newRun(),
      task: 'lost-keyless',
    }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(SyncScopeChangedError);
    const message = (refused as Error).message;
    // Without an external-ID key, no plan looks them up, as the config was or not.
    expect(message).not.toContain('whose plan looks them up');
    expect(message).not.toContain('--without-look-up');
    expect(message).toContain(
      ' Its 2 insert record(s) sent whose outcome is unknown (roundtrip.writeback_plans, status sent) are looked up by no plan (the task inserts without an external-ID key), and forget refuses the task until they are resolved: for the 2 sent by a Collections call or in a Bulk job Salesforce no longer answers for, look for each in Salesforce and record what you found with roundtrip resolve --task lost-keyless --key KEY --inserted ID (or --not-inserted).',
    );
    // Planned by the CLI, with the options it was given.
    const fromCli = await planWriteback(
      {
        ...env.deps({ writeback: [{ ...keyless, keyColumn: 'email' }] }),
        commandOptions: ' --secrets s.json',
      },
      { runId: await env.newRun(), task: 'lost-keyless' },
    ).catch((e: unknown) => (e as Error).message);
    expect(fromCli).toContain(
      'record what you found with roundtrip resolve --task lost-keyless --secrets s.json --key KEY --inserted ID (or --not-inserted).',
    );
  });

  it("a keyless insert's keys a push reported INSERT_OUTCOME_UNKNOWN, refused for its key column: the message counts them and gives the resolve command, as forget refuses the task for them", async () => {
    await source('reported', 2);
    const { key: _key, ...keyless } = { ...byExternalId, name: 'reported-keyless', mode: 'insert' as const };
    const deps = env.deps({ writeback: [keyless] });
    expect(
      (await runWriteback(deps, { runId: await env.newRun(), task: 'reported-keyless' })).result,
    ).toMatchObject({ succeeded: 2 });
    // A third key sent, its answer lost; the step's retry can only report it (no key to look it up by).
    await source('reported', 3);
    const dead = await env.newRun();
    await planThenCrashInPush(env, deps, dead, 'reported-keyless');
    await pushWriteback(deps, { runId: dead, task: 'reported-keyless' });
    await reportRun(deps, { runId: dead });
    const { rows: marks } = await env.pool.query(
      `SELECT key, code FROM roundtrip.writeback_errors WHERE run_id = $1 AND task = 'reported-keyless'`,
      [dead],
    );
    expect(marks).toEqual([{ key: 'reported-3', code: 'INSERT_OUTCOME_UNKNOWN' }]);
    expect(
      await forgetTask(env.pool, 'wb-test', 'reported-keyless', { apply: true, configuredMode: 'insert' }),
    ).toMatchObject({ kind: 'outcomes-unknown' });

    const refused = await planWriteback(env.deps({ writeback: [{ ...keyless, keyColumn: 'email' }] }), {
      runId: await env.newRun(),
      task: 'reported-keyless',
    }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(SyncScopeChangedError);
    expect((refused as Error).message).toContain(
      ' Its 1 insert record(s) sent whose outcome is unknown (0 left sent in roundtrip.writeback_plans, 1 reported INSERT_OUTCOME_UNKNOWN by a push) are looked up by no plan (the task inserts without an external-ID key), and forget refuses the task until they are resolved: for the 1 sent by a Collections call or in a Bulk job Salesforce no longer answers for, look for each in Salesforce and record what you found with roundtrip resolve --task reported-keyless --key KEY --inserted ID (or --not-inserted).',
    );
  });

  it("holds a keyless insert's scope by keys a push reported INSERT_OUTCOME_UNKNOWN alone: nothing synced, nothing left sent, and the lost sends may have created their records", async () => {
    await source('firstlost', 2);
    const { key: _key, ...keyless } = { ...byExternalId, name: 'first-lost', mode: 'insert' as const };
    const deps = env.deps({ writeback: [keyless] });
    // The task's first run: its answer lost, the step's retry can only report the keys.
    const dead = await env.newRun();
    await planThenCrashInPush(env, deps, dead, 'first-lost');
    await pushWriteback(deps, { runId: dead, task: 'first-lost' });
    await reportRun(deps, { runId: dead });
    const { rows: state } = await env.pool.query(
      `SELECT (SELECT count(*)::int FROM roundtrip.sync_state WHERE task = 'first-lost') AS synced,
              (SELECT count(*)::int FROM roundtrip.writeback_plans WHERE task = 'first-lost' AND status = 'sent') AS sent,
              (SELECT count(*)::int FROM roundtrip.writeback_errors WHERE task = 'first-lost' AND code = 'INSERT_OUTCOME_UNKNOWN') AS unknown`,
    );
    expect(state).toEqual([{ synced: 0, sent: 0, unknown: 2 }]);

    const refused = await planWriteback(env.deps({ writeback: [{ ...keyless, keyColumn: 'email' }] }), {
      runId: await env.newRun(),
      task: 'first-lost',
    }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(SyncScopeChangedError);
    expect((refused as Error).message).toMatch(
      /^Write-back first-lost \(writeback\[0\]\): its 2 record\(s\) sent for insert, which Salesforce may have created without the outcome being recorded, were keyed by the values of column /,
    );
    expect((refused as Error).message).toContain(
      'roundtrip resolve --task first-lost --key KEY --inserted ID (or --not-inserted)',
    );
  });

  it('counts records sent whose results are not recorded yet: a first run still collecting holds its scope', async () => {
    await source('inflight', 3);
    const task = { ...byExternalId, name: 'inflight', bulkThreshold: 1 };
    const deps = env.deps({ writeback: [task] });
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'inflight' });
    expect(await pushWriteback(deps, { runId, task: 'inflight' })).toMatchObject({ status: 'bulk-pending' });
    await expect(
      planWriteback(env.deps({ writeback: [{ ...task, key: 'Email', keyColumn: 'email' }] }), {
        runId: await env.newRun(),
        task: 'inflight',
      }),
    ).rejects.toThrow(
      /^Write-back inflight \(writeback\[0\]\): its 3 record\(s\) sent, whose results are not recorded yet, were matched by External_Id__c, and the task now upserts by Email\./,
    );
  });

  it('does not hold a scope that nothing was synced by: a first plan under another key goes on', async () => {
    await source('unsynced', 2);
    const task = { ...byExternalId, name: 'fresh' };
    // A plan (not pushed) records its scope; nothing is synced by it.
    await planWriteback(env.deps({ writeback: [task] }), { runId: await env.newRun(), task: 'fresh' });
    const other = { ...byEmail, name: 'fresh' };
    expect(
      (await planWriteback(env.deps({ writeback: [other] }), { runId: await env.newRun(), task: 'fresh' }))
        .changed,
    ).toBe(2);
  });
});
