/**
 * `roundtrip resolve` against the real PostgreSQL and the Salesforce emulator: insert keys that the
 * plan holds back as INSERT_OUTCOME_UNKNOWN run after run because nothing can look them up (an
 * insert without an external-ID key whose call's answer was lost, or whose Bulk job Salesforce no
 * longer answers for) are recorded as inserted — the next plan never sends them, sync_state has
 * the Id — or as not inserted — the next plan inserts them, once. Every refusal is exit 2 and
 * writes nothing; a push of the task running is exit 1.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import type { FieldDescribe } from '../../../emulators/salesforce/describe';
import { getIngestJob, isFinalIngestState } from '../../../lambdas/connectors/salesforce/writes';
import type { WritebackTaskInput } from '../../../lambdas/config';
import type { CoreDeps } from '../../../lambdas/core/deps';
import { planWriteback, pushWriteback, reportRun, runWriteback } from '../../../lambdas/core/writeback';
import { WRITEBACK_LOCK_CLASS } from '../../../lambdas/core/writeback/lock';
import { pruneRunDetails } from '../../../lambdas/core/writeback/report';
import { SyncScopeChangedError } from '../../../lambdas/core/writeback/scope';
import { formatSummaryTable, readStoredRun, runSummary, type StoredRun } from '../../../bin/local/summary';
import { cli } from '../../support/cli';
import { shellWords } from '../../support/shell-words';
import {
  errorsOf,
  LEAD_SRC_UPSERT,
  outlastCallTimeLimit,
  planThenCrashInPush,
  runFigures,
  SCORE_UPDATE,
  startWritebackEnv,
  type WritebackEnv,
} from '../writeback/support';

/** Insert of Lead without an external-ID key: nothing can look its records up. */
const KEYLESS = {
  name: 'Lead-keyless',
  to: 'salesforce' as const,
  object: 'Lead',
  from: 'lead_src',
  mode: 'insert' as const,
  keyColumn: 'ext',
  fields: { LastName: 'last_name', Company: 'company', LeadScore__c: 'score' },
};

/** Insert of Lead keyed by External_Id__c, through Bulk jobs from 5 records. */
const BULK_KEYED = {
  ...LEAD_SRC_UPSERT,
  name: 'Lead-bulk-insert',
  mode: 'insert' as const,
  bulkThreshold: 5,
};

/** The same, through Collections calls (the next plan looks its keys up itself). */
const KEYED = { ...LEAD_SRC_UPSERT, name: 'Lead-keyed', mode: 'insert' as const };

/**
 * Insert of Lead without an external-ID key now, through Bulk jobs while it had one (an insert
 * without a key always uses Collections): the key field is gone from the config since.
 */
const BULK_UNKEYED = { ...KEYLESS, name: 'Lead-bulk-unkeyed', bulkThreshold: 5 };

const WRITEBACK = [KEYLESS, BULK_KEYED, KEYED, BULK_UNKEYED, SCORE_UPDATE];

describe('roundtrip resolve', () => {
  let env: WritebackEnv;
  let deps: CoreDeps;
  let dir: string;
  let connection: string[];
  /**
   * `--config file --database-url url` (as connection and configNaming give them) as the commands
   * resolve's refusals name repeat them: the URL's password as ***, quoted.
   */
  const shown = (options: readonly string[]): string => {
    const url = new URL(options[3]!);
    url.password = '***';
    return ` --config ${options[1]} --database-url '${url.toString()}'`;
  };
  const putPasswordBack = 'Put the password of your --database-url back where the commands show ***.';

  beforeAll(async () => {
    env = await startWritebackEnv();
    deps = env.deps({ writeback: WRITEBACK });
    await env.pool.query(`CREATE TABLE lead_src (ext text, last_name text, company text, score integer)`);
    dir = await mkdtemp(path.join(os.tmpdir(), 'roundtrip-resolve-'));
    const configFile = await env.writeConfigFile(path.join(dir, 'roundtrip.config.json'), {
      writeback: WRITEBACK,
    });
    connection = ['--config', configFile, '--database-url', env.db.url];
  });
  afterAll(async () => {
    await env?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Replaces lead_src by `n` rows keyed `${prefix}-1`… (last name `${prefix} i`). */
  async function source(prefix: string, n: number): Promise<void> {
    await env.pool.query('DELETE FROM lead_src');
    await env.pool.query(
      `INSERT INTO lead_src SELECT $1 || '-' || i, $1 || ' ' || i, 'Initech', i FROM generate_series(1, $2::int) AS i`,
      [prefix, n],
    );
  }

  /** The live Leads (not deleted) whose last name is `${prefix} i`, by i. */
  function leadsNamed(prefix: string, i: number): string[] {
    return [...env.sf.store.all('Lead')]
      .filter((r) => r.LastName === `${prefix} ${i}` && r.IsDeleted !== true)
      .map((r) => r.Id as string);
  }

  async function ledger(runId: string, task: string): Promise<Record<string, string>> {
    const { rows } = await env.pool.query<{ key: string; status: string }>(
      `SELECT key, status FROM roundtrip.writeback_plans WHERE run_id = $1 AND task = $2 ORDER BY key`,
      [runId, task],
    );
    return Object.fromEntries(rows.map((r) => [r.key, r.status]));
  }

  async function syncedId(task: string, key: string): Promise<string | null> {
    const { rows } = await env.pool.query<{ salesforce_id: string | null }>(
      `SELECT salesforce_id FROM roundtrip.sync_state WHERE task = $1 AND key = $2`,
      [task, key],
    );
    return rows[0]?.salesforce_id ?? null;
  }

  const figures = (runId: string, task: string) => runFigures(env, runId, task);

  /** Everything resolve may write, to show that a refusal wrote nothing. */
  async function stateOf(): Promise<unknown> {
    const { rows } = await env.pool.query(
      `SELECT (SELECT json_agg(p ORDER BY run_id, task, seq) FROM roundtrip.writeback_plans p) AS plans,
              (SELECT json_agg(e ORDER BY id) FROM roundtrip.writeback_errors e) AS errors,
              (SELECT json_agg(s ORDER BY task, key) FROM roundtrip.sync_state s) AS synced,
              (SELECT json_agg(r.summary ORDER BY run_id) FROM roundtrip.runs r) AS summaries`,
    );
    return rows[0];
  }

  /**
   * A run of the keyless task whose push's calls reached Salesforce (the records are created) and
   * whose answers were lost, then ended by its Report: its keys `sent`, held back by later plans.
   */
  async function keylessLost(prefix: string, n: number): Promise<string> {
    await source(prefix, n);
    const dead = await env.newRun();
    await planThenCrashInPush(env, deps, dead, KEYLESS.name);
    await reportRun(deps, { runId: dead, error: { Error: 'States.Timeout', Cause: 'Task timed out' } });
    return dead;
  }

  it('records a keyless insert found in Salesforce, and releases one deleted there: the next plan inserts only that one, once', async () => {
    const dead = await keylessLost('kl', 3);
    expect(await ledger(dead, KEYLESS.name)).toEqual({ 'kl-1': 'sent', 'kl-2': 'sent', 'kl-3': 'sent' });
    // Held back, with a message that names the command.
    const held = await env.newRun();
    expect(await planWriteback(deps, { runId: held, task: KEYLESS.name })).toMatchObject({
      heldBack: 3,
      changed: 0,
    });
    expect((await errorsOf(env, held))[0]?.message).toBe(
      `key kl-1 was sent for insert by run ${dead}, whose result was never recorded, and without an external-ID key it cannot be looked up: find the record in Salesforce, then record what you found with roundtrip resolve --task Lead-keyless --key kl-1 --inserted <the record's Id> (or --not-inserted if there is none, or you delete it there)`,
    );
    const [id1] = leadsNamed('kl', 1);
    const [id2] = leadsNamed('kl', 2);
    expect(id1).toBeDefined();
    // Sent less than 11 minutes ago: not inserted cannot be said yet (the call may still create it).
    const early = await cli([
      'resolve',
      ...connection,
      '--task',
      KEYLESS.name,
      '--key',
      'kl-2',
      '--not-inserted',
    ]);
    expect(early.code).toBe(2);
    expect(early.stderr).toMatch(
      new RegExp(
        `key kl-2 was sent by run ${dead} in a Collections call less than 11 minutes ago: Salesforce may still be running the call`,
      ),
    );
    await outlastCallTimeLimit(env, dead);
    // The operator deletes kl-2's record in Salesforce, then records both.
    env.sf.store.delete([id2 as string]);

    // Given in its 15-character form, recorded in the 18 the APIs answer.
    const inserted = await cli([
      'resolve',
      ...connection,
      '--task',
      KEYLESS.name,
      '--key',
      'kl-1',
      '--inserted',
      (id1 as string).slice(0, 15),
    ]);
    expect(inserted.stderr).toBe('');
    expect(inserted.stdout).toBe(
      `key kl-1 (sent by run ${dead} in a Collections call): recorded as inserted, Id ${id1}: never inserted again\n` +
        `1 key of task Lead-keyless: 1 inserted, 0 not inserted (the runs that sent them count them again: roundtrip status)\n`,
    );
    expect(inserted.code).toBe(0);
    const released = await cli([
      'resolve',
      ...connection,
      '--task',
      KEYLESS.name,
      '--key',
      'kl-2',
      '--not-inserted',
    ]);
    expect(released.code).toBe(0);
    expect(released.stdout).toContain(
      `key kl-2 (sent by run ${dead} in a Collections call): recorded as not inserted: the next plan inserts it`,
    );

    expect(await syncedId(KEYLESS.name, 'kl-1')).toBe(id1);
    expect(await syncedId(KEYLESS.name, 'kl-2')).toBeNull();
    expect(await ledger(dead, KEYLESS.name)).toEqual({
      'kl-1': 'succeeded',
      'kl-2': 'failed',
      'kl-3': 'sent',
    });
    const deadErrors = await errorsOf(env, dead);
    expect(deadErrors.map((e) => [e.key, e.code])).toEqual([['kl-2', 'NOT_INSERTED']]);
    expect(deadErrors[0]?.message).toMatch(
      /^sent for insert by this run, whose result was never recorded; recorded as not inserted by hand \(roundtrip resolve, .*\): no record of it is in Salesforce, and the key is free to insert again$/,
    );
    expect(await figures(dead, KEYLESS.name)).toMatchObject({
      written: 1,
      failed: 1,
      outcomeUnknown: 1,
      outcomesResolvedBy: 'roundtrip resolve',
    });

    // The next run inserts kl-2 once, never kl-1, and still holds kl-3 back.
    env.sf.calls.clear();
    const next = await env.newRun();
    const result = await runWriteback(deps, { runId: next, task: KEYLESS.name });
    expect(result.plan).toMatchObject({ sourceRows: 3, heldBack: 1, changed: 1 });
    expect(result.result).toMatchObject({ succeeded: 1, failed: 0 });
    expect(env.sf.calls.writes().map((w) => w.records)).toEqual([1]);
    expect(leadsNamed('kl', 1)).toEqual([id1]);
    expect(leadsNamed('kl', 2)).toHaveLength(1);
    expect(await ledger(next, KEYLESS.name)).toEqual({ 'kl-2': 'succeeded' });
    // And the one after sends nothing.
    env.sf.calls.clear();
    const after = await runWriteback(deps, { runId: await env.newRun(), task: KEYLESS.name });
    expect(after.plan).toMatchObject({ heldBack: 1, changed: 0 });
    expect(env.sf.calls.count({ write: true })).toBe(0);
    expect(leadsNamed('kl', 2)).toHaveLength(1);
  });

  it('records a keyless insert its own retried push reported INSERT_OUTCOME_UNKNOWN', async () => {
    await source('rp', 2);
    const dead = await env.newRun();
    await planThenCrashInPush(env, deps, dead, KEYLESS.name);
    // The step's retry finds the rows sent: without a key it can only report them.
    await pushWriteback(deps, { runId: dead, task: KEYLESS.name });
    await reportRun(deps, { runId: dead });
    expect(await ledger(dead, KEYLESS.name)).toEqual({ 'rp-1': 'failed', 'rp-2': 'failed' });
    expect((await errorsOf(env, dead)).map((e) => e.code)).toEqual([
      'INSERT_OUTCOME_UNKNOWN',
      'INSERT_OUTCOME_UNKNOWN',
    ]);
    // Each message gives the command that records the key's outcome.
    expect((await errorsOf(env, dead)).map((e) => e.message)).toEqual(
      ['rp-1', 'rp-2'].map(
        (key) =>
          `sent for insert, and Salesforce's answer was lost after sending (cut off on its way, or the attempt that sent it ended before recording it): the record may have been created; without an external-ID key it cannot be looked up, so it is not sent again, and the task's next plans hold its key back until you find the record in Salesforce and record what you found with roundtrip resolve --task ${KEYLESS.name} --key ${key} --inserted <the record's Id> (or --not-inserted if there is none, or you delete it there); an upsert by an external ID makes this automatic`,
      ),
    );
    await outlastCallTimeLimit(env, dead);
    const [id1] = leadsNamed('rp', 1);
    const [id2] = leadsNamed('rp', 2);
    env.sf.store.delete([id2 as string]);
    const file = path.join(dir, 'reported.csv');
    await writeFile(file, `key,salesforce_id\nrp-1,${id1}\nrp-2,\n`);

    const result = await cli(['resolve', ...connection, '--task', KEYLESS.name, '--file', file]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(await ledger(dead, KEYLESS.name)).toEqual({ 'rp-1': 'succeeded', 'rp-2': 'failed' });
    expect((await errorsOf(env, dead)).map((e) => [e.key, e.code])).toEqual([['rp-2', 'NOT_INSERTED']]);
    expect(await syncedId(KEYLESS.name, 'rp-1')).toBe(id1);
    expect(await figures(dead, KEYLESS.name)).toMatchObject({ written: 1, failed: 1, outcomeUnknown: 0 });

    env.sf.calls.clear();
    const next = await runWriteback(deps, { runId: await env.newRun(), task: KEYLESS.name });
    expect(next.plan).toMatchObject({ heldBack: 0, changed: 1 });
    expect(env.sf.calls.writes().map((w) => w.records)).toEqual([1]);
    expect(leadsNamed('rp', 1)).toEqual([id1]);
    expect(leadsNamed('rp', 2)).toHaveLength(1);
  });

  it('counts a keyless insert whose answer was cut off as of unknown outcome, not failed: the run fails saying so and what to do, whatever maxFailureRate allows', async () => {
    await source('cut', 3);
    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: KEYLESS.name });
    // Salesforce creates the three records; the connection drops in the middle of its answer.
    env.sf.faults.set({ resetWriteAnswerAfterBytes: 40 });
    await expect(pushWriteback(deps, { runId, task: KEYLESS.name })).rejects.toThrow(/answer was cut off/);
    expect([1, 2, 3].map((i) => leadsNamed('cut', i).length)).toEqual([1, 1, 1]);
    // The step's retry: without a key it can only report them.
    const pushed = await pushWriteback(deps, { runId, task: KEYLESS.name });
    expect(pushed).toMatchObject({ status: 'collected', failed: 0, outcomeUnknown: 3, failureRate: 0 });
    expect((await errorsOf(env, runId)).map((e) => e.message)).toEqual(
      [1, 2, 3].map(
        (i) =>
          `sent for insert, and Salesforce's answer was lost after sending (cut off on its way, or the attempt that sent it ended before recording it): the record may have been created; without an external-ID key it cannot be looked up, so it is not sent again, and the task's next plans hold its key back until you find the record in Salesforce and record what you found with roundtrip resolve --task ${KEYLESS.name} --key cut-${i} --inserted <the record's Id> (or --not-inserted if there is none, or you delete it there); an upsert by an external ID makes this automatic`,
      ),
    );
    const report = await reportRun(deps, { runId });
    expect(report.status).toBe('failed');
    expect(report.writeback[KEYLESS.name]).toMatchObject({
      written: 0,
      failed: 0,
      outcomeUnknown: 3,
      failureRateExceeded: false,
    });
    expect(report.reason).toBe(
      `write-back ${KEYLESS.name}: 3 records sent for insert have an unknown outcome, not a failure (writeback[0]): Salesforce's answer was lost after they were sent, so Salesforce may have created them, and without an external-ID key nothing can look them up. They are not sent again: the task's next plans hold their keys back until you find them in Salesforce and record what you found with roundtrip resolve --task ${KEYLESS.name} (roundtrip errors --run ${runId} --task ${KEYLESS.name} --code INSERT_OUTCOME_UNKNOWN lists them, each with its command); an upsert by an external ID (writeback[0].key) makes this automatic`,
    );
    expect(await figures(runId, KEYLESS.name)).toMatchObject({ written: 0, failed: 0, outcomeUnknown: 3 });
    // roundtrip status says so too: 0 failed, 3 of unknown outcome, and the calls the run counted
    // (the push's, and the plan's describe when no earlier test of the file had it cached).
    const calls = String((await figures(runId, KEYLESS.name)).apiCalls);
    expect(['1', '2']).toContain(calls);
    const status = await cli(['status', ...connection]);
    const row = status.stdout.split('\n').find((l) => l.startsWith(runId));
    expect(status.stdout).toMatch(/ failed +outcome unknown +Salesforce calls\n/);
    expect(row?.split(/ +/).slice(-3)).toEqual(['0', '3', calls]);
    // And the table a run ends with.
    const stored = await readStoredRun(env.pool, runId);
    const table = formatSummaryTable(runSummary(deps.config, stored as StoredRun, 'failed')).split('\n');
    expect(table[1]).toMatch(/ failed +outcome unknown +API calls$/);
    expect(
      table
        .find((l) => l.startsWith(KEYLESS.name))
        ?.split(/ +/)
        .slice(-3),
    ).toEqual(['0', '3', calls]);
    // roundtrip errors counts them as status does: of unknown outcome, none failed.
    const listed = await cli(['errors', ...connection, '--run', runId]);
    expect(listed.stdout.split('\n')[0]).toMatch(
      /: 0 rejected before sending, 0 failed when sent, 3 sent for insert whose outcome is unknown \(INSERT_OUTCOME_UNKNOWN: Salesforce's answer was lost\)$/,
    );
    const json = JSON.parse(
      (await cli(['errors', ...connection, '--run', runId, '--json'])).stdout,
    ) as unknown;
    expect(json).toMatchObject({
      total: 3,
      rejected: 0,
      heldBack: 0,
      failed: 0,
      secondRecords: 0,
      insertOutcomeUnknown: 3,
      outcomeUnknown: 3,
      counts: [
        { task: KEYLESS.name, stage: 'push', code: 'INSERT_OUTCOME_UNKNOWN', records: 3, outcomeUnknown: 3 },
      ],
    });
    const statusJson = JSON.parse((await cli(['status', ...connection, '--json'])).stdout) as {
      runs: { runId: string }[];
    };
    expect(statusJson.runs.find((r) => r.runId === runId)).toMatchObject({ failed: 0, outcomeUnknown: 3 });

    // Recorded by hand: written, and nothing of unknown outcome is left.
    const file = path.join(dir, 'cut.csv');
    await writeFile(
      file,
      `key,salesforce_id\n${[1, 2, 3].map((i) => `cut-${i},${leadsNamed('cut', i)[0] as string}`).join('\n')}\n`,
    );
    await outlastCallTimeLimit(env, runId);
    const resolved = await cli(['resolve', ...connection, '--task', KEYLESS.name, '--file', file]);
    expect(resolved.stderr).toBe('');
    expect(await figures(runId, KEYLESS.name)).toMatchObject({ written: 3, failed: 0, outcomeUnknown: 0 });
  });

  it("names in each held-back key's message a command that a shell passes to resolve with the exact key, and never a cut key", async () => {
    // Keys a shell would split, expand, end the command at or read as an option; one over the
    // 100 characters a message quotes of a key; one over the 255 a command quotes.
    const wide = ` ${'k'.repeat(150)} `;
    const keys = [`O'Brien & co; $HOME`, 'a b', '-5', '"q" `id` \\', wide, 'sq-plain'];
    const long = 'y'.repeat(300);
    await env.pool.query('DELETE FROM lead_src');
    await env.pool.query(
      `INSERT INTO lead_src SELECT ext, 'sq ' || i, 'Initech', i FROM unnest($1::text[]) WITH ORDINALITY AS t(ext, i)`,
      [[...keys, long]],
    );
    const dead = await env.newRun();
    await planThenCrashInPush(env, deps, dead, KEYLESS.name);
    // The step's retry reports them (reconcile.ts builds that message), and a later plan holds them
    // back (plan.ts builds its own): both name the command.
    await pushWriteback(deps, { runId: dead, task: KEYLESS.name });
    await reportRun(deps, { runId: dead });
    const held = await env.newRun();
    expect(await planWriteback(deps, { runId: held, task: KEYLESS.name })).toMatchObject({ heldBack: 7 });
    await outlastCallTimeLimit(env, dead);

    /** The arguments a shell gives resolve from the command in a message (up to its placeholder). */
    const commandIn = (message: string): string[] => {
      const command = /roundtrip (resolve .*?) --inserted <the record's Id>/.exec(message)?.[1];
      expect(command).toBeDefined();
      return shellWords(command as string);
    };
    const reported = await errorsOf(env, dead);
    const heldBack = await errorsOf(env, held);
    for (const [i, key] of keys.entries()) {
      const messageOf = (errors: typeof reported): string => errors.find((e) => e.key === key)?.message ?? '';
      const args = commandIn(messageOf(heldBack));
      expect(commandIn(messageOf(reported))).toEqual(args);
      expect(args).toEqual([
        'resolve',
        '--task',
        KEYLESS.name,
        ...(key.startsWith('-') ? [`--key=${key}`] : ['--key', key]),
      ]);
      const [id] = leadsNamed('sq', i + 1);
      const result = await cli([...args, '--inserted', id as string, ...connection]);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(await syncedId(KEYLESS.name, key)).toBe(id);
    }
    // An ordinary key's command is as it always was; the message quotes a key of 100 characters at
    // most, but the command has it whole.
    expect(heldBack.find((e) => e.key === 'sq-plain')?.message).toContain(
      `roundtrip resolve --task ${KEYLESS.name} --key sq-plain --inserted <the record's Id>`,
    );
    expect(heldBack.find((e) => e.key === wide)?.message).toMatch(/^key {2}k{99} was sent for insert/);
    // A key too long for a command is not cut there: the command says where it is listed whole.
    for (const errors of [reported, heldBack]) {
      const message = errors.find((e) => e.key === long)?.message ?? '';
      expect(message).toContain(
        `roundtrip resolve --task ${KEYLESS.name} --key <the key, whole: its 300 characters are more than a message quotes; roundtrip errors --task ${KEYLESS.name} --code INSERT_OUTCOME_UNKNOWN --csv lists it> --inserted <the record's Id>`,
      );
      expect(message).not.toMatch(/--key y/);
    }
    const [longId] = leadsNamed('sq', keys.length + 1);
    const recorded = await cli([
      'resolve',
      ...connection,
      '--task',
      KEYLESS.name,
      `--key=${long}`,
      '--inserted',
      longId as string,
    ]);
    expect(recorded.code).toBe(0);
    const next = await planWriteback(deps, { runId: await env.newRun(), task: KEYLESS.name });
    expect(next).toMatchObject({ heldBack: 0, changed: 0 });
  });

  it('records keys reported INSERT_OUTCOME_UNKNOWN in a run whose details were pruned: the error is all that is left of the send', async () => {
    await source('pr', 2);
    const dead = await env.newRun();
    await planThenCrashInPush(env, deps, dead, KEYLESS.name);
    await pushWriteback(deps, { runId: dead, task: KEYLESS.name });
    await reportRun(deps, { runId: dead });
    await env.pool.query(
      `UPDATE roundtrip.runs SET finished_at = now() - interval '1 day' WHERE run_id = $1`,
      [dead],
    );
    await pruneRunDetails(env.pool, 'wb-test', 0, new Date());
    expect(await ledger(dead, KEYLESS.name)).toEqual({});
    expect(await figures(dead, KEYLESS.name)).toMatchObject({ written: 0, failed: 0, outcomeUnknown: 2 });
    expect((await errorsOf(env, dead)).map((e) => [e.key, e.code])).toEqual([
      ['pr-1', 'INSERT_OUTCOME_UNKNOWN'],
      ['pr-2', 'INSERT_OUTCOME_UNKNOWN'],
    ]);
    // Reported long enough ago for the call to be over.
    await env.pool.query(
      `UPDATE roundtrip.writeback_errors SET created_at = created_at - interval '11 minutes' WHERE run_id = $1`,
      [dead],
    );
    const [id1] = leadsNamed('pr', 1);
    const [id2] = leadsNamed('pr', 2);
    env.sf.store.delete([id2 as string]);
    const file = path.join(dir, 'pruned.csv');
    await writeFile(file, `key,salesforce_id\npr-1,${id1}\npr-2,\n`);

    const result = await cli(['resolve', ...connection, '--task', KEYLESS.name, '--file', file]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(await syncedId(KEYLESS.name, 'pr-1')).toBe(id1);
    // Resolved, the errors go as the prune would have taken them; the figures count pr-1 written,
    // pr-2 (not inserted) failed, and none of unknown outcome.
    expect(await errorsOf(env, dead)).toEqual([]);
    expect(await figures(dead, KEYLESS.name)).toMatchObject({
      written: 1,
      failed: 1,
      outcomeUnknown: 0,
      outcomesResolvedBy: 'roundtrip resolve',
    });

    env.sf.calls.clear();
    const next = await runWriteback(deps, { runId: await env.newRun(), task: KEYLESS.name });
    expect(next.plan).toMatchObject({ heldBack: 0, changed: 1 });
    expect(env.sf.calls.writes().map((w) => w.records)).toEqual([1]);
    expect(leadsNamed('pr', 1)).toEqual([id1]);
    expect(leadsNamed('pr', 2)).toHaveLength(1);
  });

  it('records keys of a Bulk job Salesforce no longer answers for, of a task without an external-ID key, from a CSV file, after a dry run that records nothing', async () => {
    await source('gone', 6);
    const dead = await env.newRun();
    // Sent while the task had its key field (the records are created in Salesforce).
    const keyed = env.deps({ writeback: [{ ...BULK_UNKEYED, key: 'External_Id__c' }] });
    await planWriteback(keyed, { runId: dead, task: BULK_UNKEYED.name });
    expect(await pushWriteback(keyed, { runId: dead, task: BULK_UNKEYED.name })).toMatchObject({
      status: 'bulk-pending',
    });
    await reportRun(keyed, { runId: dead, error: { Error: 'States.Timeout', Cause: 'Task timed out' } });
    // Days later Salesforce has deleted the job: an Id it does not know.
    const gone = '750000000000999AAA';
    await env.pool.query(`UPDATE roundtrip.writeback_jobs SET job_id = $2 WHERE run_id = $1`, [dead, gone]);
    await env.pool.query(`UPDATE roundtrip.writeback_plans SET job_id = $2 WHERE run_id = $1`, [dead, gone]);
    const held = await env.newRun();
    expect(await planWriteback(deps, { runId: held, task: BULK_UNKEYED.name })).toMatchObject({
      heldBack: 6,
      changed: 0,
    });
    // Asked about once (NOT_FOUND), and nothing to look the keys up by.
    expect((await errorsOf(env, held))[0]?.message).toContain(
      `which Salesforce no longer answers for, and without an external-ID key it cannot be looked up: find the record in Salesforce, then record what you found with roundtrip resolve --task Lead-bulk-unkeyed --key gone-1 --inserted <the record's Id>`,
    );
    const ids = [1, 2, 3, 4].map((i) => leadsNamed('gone', i)[0] as string);
    env.sf.store.delete([ids[3] as string]);
    const file = path.join(dir, 'gone.csv');
    // Quoted fields, CRLF and an Id in lower case (its checksum restores the case).
    await writeFile(
      file,
      `key,salesforce_id\r\n"gone-1",${ids[0]}\r\ngone-2,${(ids[1] as string).toLowerCase()}\r\ngone-3,"${ids[2]}"\r\ngone-4,\r\n`,
    );

    const before = await stateOf();
    const dry = await cli([
      'resolve',
      ...connection,
      '--task',
      BULK_UNKEYED.name,
      '--file',
      file,
      '--dry-run',
    ]);
    expect(dry.stderr).toBe('');
    expect(dry.code).toBe(0);
    expect(dry.stdout).toBe(
      [
        `key gone-1 (sent by run ${dead} in Bulk job ${gone} (NotFound)): would be recorded as inserted, Id ${ids[0]}: never inserted again`,
        `key gone-2 (sent by run ${dead} in Bulk job ${gone} (NotFound)): would be recorded as inserted, Id ${ids[1]}: never inserted again`,
        `key gone-3 (sent by run ${dead} in Bulk job ${gone} (NotFound)): would be recorded as inserted, Id ${ids[2]}: never inserted again`,
        `key gone-4 (sent by run ${dead} in Bulk job ${gone} (NotFound)): would be recorded as not inserted: the next plan inserts it`,
        'dry run, nothing recorded: 4 keys of task Lead-bulk-unkeyed: 3 inserted, 1 not inserted',
        '',
      ].join('\n'),
    );
    expect(await stateOf()).toEqual(before);

    const json = await cli(['resolve', ...connection, '--task', BULK_UNKEYED.name, '--file', file, '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({
      pipeline: 'wb-test',
      task: BULK_UNKEYED.name,
      dryRun: false,
      outcomes: [
        ...[0, 1, 2].map((i) => ({
          key: `gone-${i + 1}`,
          runId: dead,
          sentBy: { api: 'bulk', jobId: gone, jobState: 'NotFound' },
          outcome: 'inserted',
          salesforceId: ids[i],
        })),
        {
          key: 'gone-4',
          runId: dead,
          sentBy: { api: 'bulk', jobId: gone, jobState: 'NotFound' },
          outcome: 'not-inserted',
          salesforceId: null,
        },
      ],
    });
    for (const i of [0, 1, 2]) expect(await syncedId(BULK_UNKEYED.name, `gone-${i + 1}`)).toBe(ids[i]);
    expect(await ledger(dead, BULK_UNKEYED.name)).toEqual({
      'gone-1': 'succeeded',
      'gone-2': 'succeeded',
      'gone-3': 'succeeded',
      'gone-4': 'failed',
      'gone-5': 'sent',
      'gone-6': 'sent',
    });
    expect(await figures(dead, BULK_UNKEYED.name)).toMatchObject({
      written: 3,
      failed: 1,
      outcomeUnknown: 2,
    });

    env.sf.calls.clear();
    const next = await runWriteback(deps, { runId: await env.newRun(), task: BULK_UNKEYED.name });
    expect(next.plan).toMatchObject({ sourceRows: 6, heldBack: 2, changed: 1 });
    expect(env.sf.calls.writes().map((w) => w.records)).toEqual([1]);
    for (const i of [1, 2, 3, 4]) expect(leadsNamed('gone', i)).toHaveLength(1);
    expect(leadsNamed('gone', 1)).toEqual([ids[0]]);
  });

  describe('refusals: exit 2, naming what is wrong, and nothing written', () => {
    let dead: string;
    let before: unknown;

    beforeAll(async () => {
      dead = await keylessLost('rf', 3);
      await outlastCallTimeLimit(env, dead);
    });
    beforeEach(async () => {
      before = await stateOf();
    });
    afterEach(async () => {
      expect(await stateOf()).toEqual(before);
    });

    const refused = async (args: string[]): Promise<string> => {
      const result = await cli(['resolve', ...connection, ...args]);
      expect(result.stdout).toBe('');
      expect(result.code).toBe(2);
      return result.stderr;
    };

    it('a task the config does not have, or one that is not an insert task', async () => {
      expect(await refused(['--task', 'Lead-nope', '--key', 'rf-1', '--not-inserted'])).toContain(
        'task Lead-nope: pipeline wb-test has no write-back task of that name, in its config (its insert tasks: Lead-keyless, Lead-bulk-insert, Lead-keyed, Lead-bulk-unkeyed) or in the database (no claim in roundtrip.task_owners, no run of it)',
      );
      expect(await refused(['--task', 'Lead-update', '--key', 'rf-1', '--not-inserted'])).toContain(
        'task Lead-update is an update task: outcomes are recorded by hand for insert tasks only',
      );
    });

    it('options missing or contradicting each other', async () => {
      expect(await refused(['--key', 'rf-1', '--not-inserted'])).toContain('--task NAME');
      expect(await refused(['--task', KEYLESS.name, '--key', 'rf-1'])).toContain(
        '--inserted SALESFORCE_ID (key rf-1',
      );
      expect(
        await refused(['--task', KEYLESS.name, '--key', 'rf-1', '--not-inserted', '--inserted', 'x']),
      ).toContain('--inserted and --not-inserted cannot be used together');
    });

    it('an Id that is not one, or not of the task object', async () => {
      const [id] = leadsNamed('rf', 1);
      expect(await refused(['--task', KEYLESS.name, '--key', 'rf-1', '--inserted', '00Q5e00000'])).toContain(
        'key rf-1: "00Q5e00000" is not a Salesforce Id: 15 or 18 letters and digits (it has 10 characters)',
      );
      expect(
        await refused([
          '--task',
          KEYLESS.name,
          '--key',
          'rf-1',
          '--inserted',
          `${(id as string).slice(0, 15)}9AA`,
        ]),
      ).toContain('are not the case checksum of an 18-character Id');
      // An Account's Id (001…) where the task inserts Leads (00Q…, as the records it recorded say).
      expect(
        await refused(['--task', KEYLESS.name, '--key', 'rf-1', '--inserted', '001000000000001AAA']),
      ).toContain(
        'Id 001000000000001AAA is not a record of Lead: the Ids of the records task Lead-keyless inserted start with 00Q, this one with 001',
      );
    });

    it('an Id recorded for another key already', async () => {
      const [id] = leadsNamed('kl', 1);
      expect(await refused(['--task', KEYLESS.name, '--key', 'rf-1', '--inserted', id as string])).toContain(
        `Id ${id} is recorded for key kl-1 of task Lead-keyless already`,
      );
    });

    it('a key not held back, or recorded already', async () => {
      // The command named carries the options given (the URL's password as ***, said after).
      const notHeld = await refused(['--task', KEYLESS.name, '--key', 'rf-9', '--not-inserted']);
      expect(notHeld).toContain(
        `key rf-9 is not held back with an unknown outcome in task Lead-keyless (no run sent it for insert without recording the outcome): roundtrip errors --task Lead-keyless${shown(connection)} --code INSERT_OUTCOME_UNKNOWN`,
      );
      expect(notHeld.trimEnd().split('\n').at(-1)).toBe(putPasswordBack);
      expect(await refused(['--task', KEYLESS.name, '--key', 'kl-1', '--not-inserted'])).toContain(
        'key kl-1 of task Lead-keyless is recorded as inserted already',
      );
      // Held back in another letter case: named, not taken for the key given.
      expect(await refused(['--task', KEYLESS.name, '--key', 'RF-1', '--not-inserted'])).toContain(
        `key RF-1 is not held back with an unknown outcome in task Lead-keyless (no run sent it for insert without recording the outcome); did you mean "rf-1"? Keys are matched as the task's keyColumn held them, letter case included: roundtrip errors --task Lead-keyless${shown(connection)} --code INSERT_OUTCOME_UNKNOWN`,
      );
    });

    it('a key whose run is still running', async () => {
      await source('live', 1);
      const live = await env.newRun();
      await planThenCrashInPush(env, deps, live, KEYLESS.name);
      await outlastCallTimeLimit(env, live);
      before = await stateOf();
      expect(await refused(['--task', KEYLESS.name, '--key', 'live-1', '--not-inserted'])).toContain(
        `key live-1 was sent by run ${live}, which is still recorded as running (roundtrip status)`,
      );
      await env.pool.query(`UPDATE roundtrip.runs SET status = 'failed' WHERE run_id = $1`, [live]);
      before = await stateOf();
    });

    it('a key the next plan resolves itself: looked up by its external ID', async () => {
      await source('keyed', 1);
      const lost = await env.newRun();
      await planThenCrashInPush(env, deps, lost, KEYED.name);
      await env.pool.query(`UPDATE roundtrip.runs SET status = 'failed' WHERE run_id = $1`, [lost]);
      before = await stateOf();
      expect(await refused(['--task', KEYED.name, '--key', 'keyed-1', '--not-inserted'])).toContain(
        'the next plan of the task looks the key up by External_Id__c and records its outcome itself',
      );
    });

    it('a key the next plan resolves itself: in a Bulk job Salesforce no longer answers for, of a task with an external-ID key', async () => {
      await source('gk', 6);
      const lost = await env.newRun();
      await planWriteback(deps, { runId: lost, task: BULK_KEYED.name });
      expect(await pushWriteback(deps, { runId: lost, task: BULK_KEYED.name })).toMatchObject({
        status: 'bulk-pending',
      });
      await env.pool.query(`UPDATE roundtrip.runs SET status = 'failed' WHERE run_id = $1`, [lost]);
      // Salesforce has deleted the job; the next plan finds it so (the keys, sent just now, are
      // looked up by a plan 11 minutes after the send).
      const gone = '750000000000998AAA';
      await env.pool.query(`UPDATE roundtrip.writeback_jobs SET job_id = $2 WHERE run_id = $1`, [lost, gone]);
      await env.pool.query(`UPDATE roundtrip.writeback_plans SET job_id = $2 WHERE run_id = $1`, [
        lost,
        gone,
      ]);
      expect(await planWriteback(deps, { runId: await env.newRun(), task: BULK_KEYED.name })).toMatchObject({
        heldBack: 6,
      });
      const { rows } = await env.pool.query(`SELECT state FROM roundtrip.writeback_jobs WHERE run_id = $1`, [
        lost,
      ]);
      expect(rows).toEqual([{ state: 'NotFound' }]);
      before = await stateOf();
      expect(await refused(['--task', BULK_KEYED.name, '--key', 'gk-1', '--not-inserted'])).toContain(
        `key gk-1 was sent by run ${lost} in Bulk job ${gone}, which Salesforce no longer answers for: once 11 minutes have passed since the send, the next plan of the task looks the key up by External_Id__c and records its outcome itself`,
      );
    });

    it('a key two runs sent without an outcome (as overlapping runs could): which send an Id belongs to is unknown', async () => {
      const other = await env.newRun();
      await env.pool.query(`UPDATE roundtrip.runs SET status = 'failed' WHERE run_id = $1`, [other]);
      await env.pool.query(
        `INSERT INTO roundtrip.writeback_plans (run_id, task, key, seq, operation, payload, value_hash, status, updated_at)
         SELECT $2, task, key, seq, operation, payload, value_hash, status, updated_at
           FROM roundtrip.writeback_plans WHERE run_id = $1 AND task = $3 AND key = 'rf-3'`,
        [dead, other, KEYLESS.name],
      );
      before = await stateOf();
      expect(await refused(['--task', KEYLESS.name, '--key', 'rf-3', '--not-inserted'])).toContain(
        `key rf-3 was sent for insert without a recorded outcome by 2 runs (${[dead, other].sort().join(', ')}): each may have created a record of its own`,
      );
      await env.pool.query(`DELETE FROM roundtrip.runs WHERE run_id = $1`, [other]);
      before = await stateOf();
    });

    it('a file with one key that cannot be recorded records none of them', async () => {
      const file = path.join(dir, 'partly.csv');
      await writeFile(file, `key,salesforce_id\nrf-2,\nrf-9,\n`);
      const stderr = await refused(['--task', KEYLESS.name, '--file', file]);
      expect(stderr).toContain('nothing was recorded:\n  line 3 of partly.csv: key rf-9 is not held back');
      expect(stderr).not.toContain('rf-2');
      await writeFile(file, `id,key\nrf-2,\n`);
      expect(await refused(['--task', KEYLESS.name, '--file', file])).toContain(
        'the first line must be the header key,salesforce_id',
      );
    });
  });

  it('exits 1 while a push or collect of the task holds its lock, and records nothing', async () => {
    const dead = await keylessLost('busy', 1);
    await outlastCallTimeLimit(env, dead);
    const push = new Client({ connectionString: env.db.url });
    await push.connect();
    try {
      await push.query('SELECT pg_advisory_lock($1, hashtext($2))', [WRITEBACK_LOCK_CLASS, KEYLESS.name]);
      const result = await cli([
        'resolve',
        ...connection,
        '--task',
        KEYLESS.name,
        '--key',
        'busy-1',
        '--not-inserted',
      ]);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(
        'Write-back Lead-keyless: a push or collect of this task is running (roundtrip status shows the run); nothing was recorded',
      );
      expect(await ledger(dead, KEYLESS.name)).toEqual({ 'busy-1': 'sent' });
    } finally {
      await push.end();
    }
    const result = await cli([
      'resolve',
      ...connection,
      '--task',
      KEYLESS.name,
      '--key',
      'busy-1',
      '--not-inserted',
    ]);
    expect(result.code).toBe(0);
    expect(await ledger(dead, KEYLESS.name)).toEqual({ 'busy-1': 'failed' });
  });
  describe('a task the config no longer names (removed or renamed), as the database knows it', () => {
    /** The pipeline's config without any of the insert tasks below. */
    let removed: string[];

    beforeAll(async () => {
      const file = await env.writeConfigFile(path.join(dir, 'removed.config.json'), {
        writeback: [SCORE_UPDATE],
      });
      removed = ['--config', file, '--database-url', env.db.url];
    });

    /**
     * The options `args` (pairs, as removed's) as the commands a message names repeat them: the
     * URL's password as ***, quoted.
     */
    const given = (args: readonly string[]): string =>
      args
        .map((a, i) => {
          if (i % 2 === 0 || args[i - 1] !== '--database-url') return ` ${a}`;
          const url = new URL(a);
          url.password = '***';
          return ` '${url.toString()}'`;
        })
        .join('');

    /**
     * A run of insert task `name` (keys `prefix`-1…6) that ended with its Bulk job uploaded and
     * never collected, the job then finished in Salesforce; and a secrets file `file` with the
     * emulator's Salesforce sign-in, for resolve to ask about the job.
     */
    const endedWithFinishedJob = async (name: string, prefix: string, file: string) => {
      const task = { ...BULK_KEYED, name };
      const ran = env.deps({ writeback: [task] });
      await source(prefix, 6);
      const dead = await env.newRun();
      await planWriteback(ran, { runId: dead, task: task.name });
      expect(await pushWriteback(ran, { runId: dead, task: task.name })).toMatchObject({
        status: 'bulk-pending',
      });
      await reportRun(ran, { runId: dead, error: { Error: 'States.Timeout', Cause: 'Task timed out' } });
      const { rows } = await env.pool.query<{ job_id: string }>(
        `SELECT job_id FROM roundtrip.writeback_jobs WHERE run_id = $1`,
        [dead],
      );
      const jobId = rows[0]?.job_id ?? '';
      while (!isFinalIngestState((await getIngestJob(env.connector, jobId)).state)) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const secrets = path.join(dir, file);
      await writeFile(secrets, JSON.stringify({ 'roundtrip/salesforce': env.salesforceSecret }));
      return { task, dead, jobId, secrets };
    };

    it("collects a Bulk job its ended run never collected (--collect-jobs, with the config's Salesforce secret): forget, which refused the task for its keys and named the command, then starts it over", async () => {
      const { task, dead, jobId, secrets } = await endedWithFinishedJob(
        'Lead-removed-bulk',
        'rb',
        'sf-secrets.json',
      );

      const refusedForget = await cli(['forget', ...removed, '--task', task.name, '--yes']);
      expect(refusedForget.code).toBe(1);
      expect(refusedForget.stderr).toContain(
        `roundtrip resolve --task Lead-removed-bulk${given(removed)} --collect-jobs asks Salesforce about each such job and collects it once finished`,
      );

      // Without the secret to sign in with, nothing is asked or collected, and the error names it.
      const unsigned = await cli(['resolve', ...removed, '--task', task.name, '--collect-jobs']);
      expect(unsigned.code).toBe(1);
      expect(unsigned.stderr).toContain('roundtrip/salesforce');
      expect(await ledger(dead, task.name)).toEqual(
        Object.fromEntries([1, 2, 3, 4, 5, 6].map((i) => [`rb-${i}`, 'sent'])),
      );

      const result = await cli([
        'resolve',
        ...removed,
        '--secrets',
        secrets,
        '--task',
        task.name,
        '--collect-jobs',
      ]);
      expect(result.stderr).toBe('');
      expect(result.stdout).toBe(
        `Bulk job ${jobId} of run ${dead}: JobComplete in Salesforce, collected: 6 inserted (recorded, never inserted again), 0 not inserted (the next plan inserts them; roundtrip errors --run ${dead} --task Lead-removed-bulk${given([...removed.slice(0, 2), '--secrets', secrets, ...removed.slice(2)])} shows why)\n` +
          'Put the password of your --database-url back where the commands show ***.\n',
      );
      expect(result.code).toBe(0);
      expect(await ledger(dead, task.name)).toEqual(
        Object.fromEntries([1, 2, 3, 4, 5, 6].map((i) => [`rb-${i}`, 'succeeded'])),
      );
      expect(await syncedId(task.name, 'rb-1')).toBe(leadsNamed('rb', 1)[0]);
      const forgotten = await cli(['forget', ...removed, '--task', task.name, '--yes', '--insert-again']);
      expect(forgotten.stderr).toBe('');
      expect(forgotten.code).toBe(0);
    });

    it('a refusal of a key given after its Bulk job was collected says the job was collected and its outcomes recorded, not that nothing was', async () => {
      const { task, dead, jobId, secrets } = await endedWithFinishedJob(
        'Lead-removed-mixed',
        'rm',
        'sf-secrets-mixed.json',
      );
      const csv = path.join(dir, 'mixed.csv');
      await writeFile(csv, 'key,salesforce_id\nrm-1,\nnever-sent,\n');

      const result = await cli([
        'resolve',
        ...removed,
        '--secrets',
        secrets,
        '--task',
        task.name,
        '--file',
        csv,
      ]);
      expect(result.code).toBe(2);
      expect(result.stderr).not.toContain('nothing was recorded');
      expect(result.stderr).toContain(
        `none of the outcomes given was recorded; but Bulk job ${jobId} of run ${dead} (JobComplete), never collected by its run, was collected first: the outcome of every key it carried is recorded from its results (roundtrip errors --task Lead-removed-mixed${given([...removed.slice(0, 2), '--secrets', secrets, ...removed.slice(2)])} lists the keys still held back):\n`,
      );
      expect(result.stderr).toMatch(/key never-sent is not held back with an unknown outcome/);
      expect(await ledger(dead, task.name)).toEqual(
        Object.fromEntries([1, 2, 3, 4, 5, 6].map((i) => [`rm-${i}`, 'succeeded'])),
      );
    });

    it('--collect-jobs on a job Salesforce no longer knows says its results are gone and how its keys are recorded, not that it was collected', async () => {
      const task = { ...BULK_KEYED, name: 'Lead-removed-gone' };
      const ran = env.deps({ writeback: [task] });
      await source('rg', 6);
      const dead = await env.newRun();
      await planWriteback(ran, { runId: dead, task: task.name });
      expect(await pushWriteback(ran, { runId: dead, task: task.name })).toMatchObject({
        status: 'bulk-pending',
      });
      await reportRun(ran, { runId: dead, error: { Error: 'States.Timeout', Cause: 'Task timed out' } });
      // Salesforce deleted the job since.
      const gone = '750000000000996AAA';
      await env.pool.query(`UPDATE roundtrip.writeback_jobs SET job_id = $2 WHERE run_id = $1`, [dead, gone]);
      await env.pool.query(`UPDATE roundtrip.writeback_plans SET job_id = $2 WHERE run_id = $1`, [
        dead,
        gone,
      ]);
      const secrets = path.join(dir, 'sf-secrets-gone.json');
      await writeFile(secrets, JSON.stringify({ 'roundtrip/salesforce': env.salesforceSecret }));
      const result = await cli([
        'resolve',
        ...removed,
        '--secrets',
        secrets,
        '--task',
        task.name,
        '--collect-jobs',
      ]);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(result.stdout).toBe(
        `Bulk job ${gone} of run ${dead}: Salesforce no longer knows it (NotFound): its results are gone with it, and its 6 key(s) stay held back: look for each record in Salesforce and record what you found with roundtrip resolve --task Lead-removed-gone${given([...removed.slice(0, 2), '--secrets', secrets, ...removed.slice(2)])} --key KEY --inserted ID (or --not-inserted), with --without-look-up for a task with an external-ID key (SELECT key FROM roundtrip.writeback_plans WHERE job_id = '${gone}' AND status = 'sent' lists them)\n` +
          'Put the password of your --database-url back where the commands show ***.\n',
      );
      expect(await ledger(dead, task.name)).toEqual(
        Object.fromEntries([1, 2, 3, 4, 5, 6].map((i) => [`rg-${i}`, 'sent'])),
      );
    });

    /** A keyless insert task of that name, as the config named it when it ran. */
    const keylessNamed = (name: string): typeof KEYLESS => ({ ...KEYLESS, name });

    it('records its keys held back, and forget, which refused it for them, then starts it over', async () => {
      const task = keylessNamed('Lead-removed');
      const ran = env.deps({ writeback: [task] });
      await source('rm', 2);
      const dead = await env.newRun();
      await planThenCrashInPush(env, ran, dead, task.name);
      await reportRun(ran, { runId: dead, error: { Error: 'States.Timeout', Cause: 'Task timed out' } });
      await outlastCallTimeLimit(env, dead);
      const [id1] = leadsNamed('rm', 1);
      const [id2] = leadsNamed('rm', 2);
      env.sf.store.delete([id2 as string]);

      // forget refuses while they have no outcome, and names resolve for this task, named or not.
      const refusedForget = await cli(['forget', ...removed, '--task', task.name, '--yes']);
      expect(refusedForget.code).toBe(1);
      expect(refusedForget.stderr).toContain(
        `Record them by hand: the task inserts without an external-ID key, so no plan can look them up. Find each record in Salesforce, then run roundtrip resolve --task Lead-removed${given(removed)} --key KEY --inserted ID (or --not-inserted when there is none), or record them all at once with roundtrip resolve --task Lead-removed${given(removed)} --file outcomes.csv`,
      );
      // Not "let a plan resolve them", which no plan of a keyless task can.
      expect(refusedForget.stderr).not.toContain('Let a plan of the task resolve');

      const file = path.join(dir, 'removed.csv');
      await writeFile(file, `key,salesforce_id\nrm-1,${id1}\nrm-2,\n`);
      const result = await cli(['resolve', ...removed, '--task', task.name, '--file', file]);
      expect(result.stderr).toBe('');
      expect(result.stdout).toBe(
        `key rm-1 (sent by run ${dead} in a Collections call): recorded as inserted, Id ${id1}: never inserted again\n` +
          `key rm-2 (sent by run ${dead} in a Collections call): recorded as not inserted: the next plan inserts it\n` +
          `2 keys of task Lead-removed: 1 inserted, 1 not inserted (the runs that sent them count them again: roundtrip status)\n`,
      );
      expect(result.code).toBe(0);
      expect(await syncedId(task.name, 'rm-1')).toBe(id1);
      expect(await ledger(dead, task.name)).toEqual({ 'rm-1': 'succeeded', 'rm-2': 'failed' });
      expect(await figures(dead, task.name)).toMatchObject({
        written: 1,
        failed: 1,
        outcomesResolvedBy: 'roundtrip resolve',
      });

      // Nothing is left without an outcome: forget starts the task over.
      const forgotten = await cli(['forget', ...removed, '--task', task.name, '--yes', '--insert-again']);
      expect(forgotten.stderr).toBe('');
      expect(forgotten.code).toBe(0);
      expect(forgotten.stdout).toMatch(
        /^task Lead-removed \(not named in the config; .*\): deleted, in one transaction\n/,
      );
      expect(await syncedId(task.name, 'rm-1')).toBeNull();
    });

    it('knows it as an insert task after its runs were pruned: by the ledger rows left sent, or by the INSERT_OUTCOME_UNKNOWN marks alone', async () => {
      // One task whose keys were left sent (kept by the prune, the plan pages are not) …
      const sent = keylessNamed('Lead-pruned-sent');
      await source('ps', 1);
      const sentRun = await env.newRun();
      await planThenCrashInPush(env, env.deps({ writeback: [sent] }), sentRun, sent.name);
      await reportRun(env.deps({ writeback: [sent] }), { runId: sentRun });
      // … and one whose retried push reported them INSERT_OUTCOME_UNKNOWN: its marks are all that is kept.
      const marked = keylessNamed('Lead-pruned-marked');
      const markedDeps = env.deps({ writeback: [marked] });
      await source('pm', 1);
      const markedRun = await env.newRun();
      await planThenCrashInPush(env, markedDeps, markedRun, marked.name);
      await pushWriteback(markedDeps, { runId: markedRun, task: marked.name });
      await reportRun(markedDeps, { runId: markedRun });
      await env.pool.query(
        `UPDATE roundtrip.runs SET finished_at = now() - interval '1 day' WHERE run_id = ANY ($1::text[])`,
        [[sentRun, markedRun]],
      );
      await pruneRunDetails(env.pool, 'wb-test', 0, new Date());
      await outlastCallTimeLimit(env, sentRun);
      await env.pool.query(
        `UPDATE roundtrip.writeback_errors SET created_at = created_at - interval '11 minutes' WHERE run_id = $1`,
        [markedRun],
      );
      const { rows } = await env.pool.query<{ task: string; pages: number; sent: number; marks: number }>(
        `SELECT t AS task,
                (SELECT count(*)::int FROM roundtrip.writeback_plan_pages WHERE task = t) AS pages,
                (SELECT count(*)::int FROM roundtrip.writeback_plans WHERE task = t AND status = 'sent') AS sent,
                (SELECT count(*)::int FROM roundtrip.writeback_errors WHERE task = t AND code = 'INSERT_OUTCOME_UNKNOWN') AS marks
           FROM unnest($1::text[]) AS t ORDER BY t`,
        [[marked.name, sent.name]],
      );
      expect(rows).toEqual([
        { task: marked.name, pages: 0, sent: 0, marks: 1 },
        { task: sent.name, pages: 0, sent: 1, marks: 0 },
      ]);

      const [sentId] = leadsNamed('ps', 1);
      const byLedger = await cli([
        'resolve',
        ...removed,
        '--task',
        sent.name,
        '--key',
        'ps-1',
        '--inserted',
        sentId as string,
      ]);
      expect(byLedger.stderr).toBe('');
      expect(byLedger.code).toBe(0);
      expect(await syncedId(sent.name, 'ps-1')).toBe(sentId);
      const [markedId] = leadsNamed('pm', 1);
      env.sf.store.delete([markedId as string]);
      const byMarks = await cli([
        'resolve',
        ...removed,
        '--task',
        marked.name,
        '--key',
        'pm-1',
        '--not-inserted',
      ]);
      expect(byMarks.stderr).toBe('');
      expect(byMarks.code).toBe(0);
      expect(await errorsOf(env, markedRun)).toEqual([]);
      for (const task of [sent.name, marked.name])
        expect((await cli(['forget', ...removed, '--task', task, '--yes', '--insert-again'])).code).toBe(0);
    });

    describe('refusals: exit 2, naming what is wrong, and nothing written', () => {
      let before: unknown;
      beforeEach(async () => {
        before = await stateOf();
      });
      afterEach(async () => {
        expect(await stateOf()).toEqual(before);
      });

      const refused = async (args: string[]): Promise<string> => {
        const result = await cli(['resolve', ...removed, ...args]);
        expect(result.stdout).toBe('');
        expect(result.code).toBe(2);
        return result.stderr;
      };

      it('a name the database knows no task of', async () => {
        expect(await refused(['--task', 'Lead-never', '--key', 'k', '--not-inserted'])).toContain(
          'task Lead-never: pipeline wb-test has no write-back task of that name, in its config (its insert tasks: none) or in the database (no claim in roundtrip.task_owners, no run of it): task names are case-sensitive; roundtrip status lists the tasks the config no longer names that still have state',
        );
      });

      it("another pipeline's task, though it inserts", async () => {
        const theirs = keylessNamed('Lead-theirs');
        await source('th', 1);
        const run = await env.newRun();
        await planThenCrashInPush(env, env.deps({ writeback: [theirs] }), run, theirs.name);
        await env.pool.query(`UPDATE roundtrip.runs SET status = 'failed' WHERE run_id = $1`, [run]);
        await outlastCallTimeLimit(env, run);
        await env.pool.query(`INSERT INTO roundtrip.task_owners (task, pipeline) VALUES ($1, 'marketing')`, [
          theirs.name,
        ]);
        before = await stateOf();
        const why =
          "task Lead-theirs belongs to pipeline marketing in this database (roundtrip.task_owners), not to wb-test: its outcomes are that pipeline's to record (run resolve with its --config)";
        expect(await refused(['--task', theirs.name, '--key', 'th-1', '--not-inserted'])).toContain(why);
        // So too when this pipeline's config names it.
        const naming = await env.writeConfigFile(path.join(dir, 'naming-theirs.config.json'), {
          writeback: [theirs],
        });
        const named = await cli([
          'resolve',
          '--config',
          naming,
          '--database-url',
          env.db.url,
          '--task',
          theirs.name,
          '--key',
          'th-1',
          '--not-inserted',
        ]);
        expect(named.code).toBe(2);
        expect(named.stderr).toContain(why);
      });

      it('a task whose latest plan was an update, and one no plan or mark of which is kept', async () => {
        const run = await env.newRun();
        await env.pool.query(`UPDATE roundtrip.runs SET status = 'failed' WHERE run_id = $1`, [run]);
        await env.pool.query(
          `INSERT INTO roundtrip.task_owners (task, pipeline) VALUES ('Lead-update-gone', 'wb-test'), ('Lead-bare', 'wb-test')`,
        );
        await env.pool.query(
          `INSERT INTO roundtrip.writeback_plans (run_id, task, key, seq, operation, payload, value_hash, status)
           VALUES ($1, 'Lead-update-gone', '00Q000000000001AAA', 1, 'update', '{}', 'x', 'sent')`,
          [run],
        );
        before = await stateOf();
        expect(
          await refused(['--task', 'Lead-update-gone', '--key', '00Q000000000001AAA', '--not-inserted']),
        ).toContain(
          'task Lead-update-gone, which the config of pipeline wb-test no longer names, is an update task, as its latest plan stored it: outcomes are recorded by hand for insert tasks only',
        );
        expect(await refused(['--task', 'Lead-bare', '--key', 'k', '--not-inserted'])).toContain(
          'task Lead-bare, which the config of pipeline wb-test no longer names, is not known as an insert task in the database',
        );
      });

      it('a key its plan would look up itself, were the task named again as it was', async () => {
        const keyed = { ...KEYED, name: 'Lead-keyed-removed' };
        await source('kr', 1);
        const lost = await env.newRun();
        await planThenCrashInPush(env, env.deps({ writeback: [keyed] }), lost, keyed.name);
        await env.pool.query(`UPDATE roundtrip.runs SET status = 'failed' WHERE run_id = $1`, [lost]);
        await outlastCallTimeLimit(env, lost);
        before = await stateOf();
        expect(await refused(['--task', keyed.name, '--key', 'kr-1', '--not-inserted'])).toContain(
          `key kr-1 was sent by run ${lost} in a Collections call: once 11 minutes have passed since the send, the next plan of the task looks the key up by External_Id__c and records its outcome itself; the config no longer names task Lead-keyed-removed: name it again as it was (the same name, object Lead, key External_Id__c) and run the pipeline, whose plan does it`,
        );
      });
    });
  });

  describe('a keyed task whose keys no plan can look up: recorded with --without-look-up', () => {
    /** Config files naming `tasks` (besides the update task), by file name. */
    async function configNaming(name: string, tasks: WritebackTaskInput[]): Promise<string[]> {
      const file = await env.writeConfigFile(path.join(dir, `${name}.config.json`), {
        writeback: [...tasks, SCORE_UPDATE],
      });
      return ['--config', file, '--database-url', env.db.url];
    }

    /** Puts Lead.External_Id__c back after a test deleted it from the describe Salesforce answers. */
    let restoreKeyField: (() => void) | undefined;
    afterEach(() => {
      restoreKeyField?.();
      restoreKeyField = undefined;
    });

    /**
     * Deletes Lead.External_Id__c from what Salesforce answers (as for an integration user who lost
     * read access to it): a query naming it is refused with INVALID_FIELD, and a describe asked
     * afterwards (a connector signed in since) does not list it.
     */
    function deleteKeyField(): void {
      const describe = env.sf.store.describe('Lead');
      const at = describe?.fields.findIndex((f) => f.name === 'External_Id__c') ?? -1;
      if (!describe || at < 0) throw new Error('the emulator has no Lead.External_Id__c');
      const [field] = describe.fields.splice(at, 1) as [FieldDescribe];
      restoreKeyField = () => describe.fields.splice(at, 0, field);
    }

    /** A run of keyed task `task` whose push's calls created the records and whose answers were lost, ended. */
    async function keyedLost(task: typeof KEYED, prefix: string, n: number): Promise<string> {
      await source(prefix, n);
      const dead = await env.newRun();
      const named = env.deps({ writeback: [task] });
      await planThenCrashInPush(env, named, dead, task.name);
      await reportRun(named, { runId: dead, error: { Error: 'States.Timeout', Cause: 'Task timed out' } });
      return dead;
    }

    it("the task's key column changed in the config: its plan is refused before any look-up, and forget refuses; resolve says why and records the keys with --without-look-up", async () => {
      const task = { ...KEYED, name: 'Lead-scope-changed' };
      const dead = await keyedLost(task, 'sc', 2);
      const [id1] = leadsNamed('sc', 1);
      const [id2] = leadsNamed('sc', 2);
      env.sf.store.delete([id2 as string]);
      const changed = { ...task, keyColumn: 'company' };
      const changedConfig = await configNaming('scope-changed', [changed]);

      // The plan stops before it looks anything up, run after run.
      const refusedPlan = planWriteback(env.deps({ writeback: [changed] }), {
        runId: await env.newRun(),
        task: task.name,
      });
      await expect(refusedPlan).rejects.toBeInstanceOf(SyncScopeChangedError);
      await expect(refusedPlan).rejects.toThrow('now reads its keys from company');
      // Its refusal says that no plan looks the keys up meanwhile, and the way out.
      await expect(refusedPlan).rejects.toThrow(
        'Its 2 insert record(s) sent whose outcome is unknown (roundtrip.writeback_plans, status sent) are resolved by no plan while the task is refused so, and forget refuses the task until they are resolved: put the config back as it was and run the pipeline, whose plan resolves them, or for the 2 sent by a Collections call or in a Bulk job Salesforce no longer answers for, look for each in Salesforce and record what you found with roundtrip resolve --task Lead-scope-changed --key KEY --without-look-up --inserted ID (or --not-inserted).',
      );
      // No Bulk job of theirs to collect: --collect-jobs is not named.
      await expect(refusedPlan).rejects.toThrow(/\(or --not-inserted\)\.$/);
      expect(await ledger(dead, task.name)).toEqual({ 'sc-1': 'sent', 'sc-2': 'sent' });
      // forget refuses while the keys have no outcome, and names the way out.
      const forget = await cli(['forget', ...changedConfig, '--task', task.name, '--yes', '--insert-again']);
      expect(forget.code).toBe(1);
      expect(forget.stderr).toContain(
        "so is one of a task with an external-ID key that no plan can look up, with --without-look-up added (Salesforce refuses the look-up, the task's object or key changed in the config, or the config no longer names it and it cannot be named as it was)",
      );

      // Every other check stands: not inserted cannot be said while the call may still create it.
      const early = await cli([
        'resolve',
        ...changedConfig,
        '--task',
        task.name,
        '--key',
        'sc-2',
        '--not-inserted',
        '--without-look-up',
      ]);
      expect(early.code).toBe(2);
      expect(early.stderr).toContain(
        `key sc-2 was sent by run ${dead} in a Collections call less than 11 minutes ago`,
      );
      await outlastCallTimeLimit(env, dead);

      const file = path.join(dir, 'scope-changed.csv');
      await writeFile(file, `key,salesforce_id\nsc-1,${id1}\nsc-2,\n`);
      const refused = await cli(['resolve', ...changedConfig, '--task', task.name, '--file', file]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain(
        `line 2 of scope-changed.csv: key sc-1 was sent by run ${dead} in a Collections call: once 11 minutes have passed since the send, the next plan of the task looks the key up by External_Id__c and records its outcome itself; but the config's task no longer writes the object or key its records were synced by (object Lead, key External_Id__c, column ext in roundtrip.sync_scope; writeback[0] now has object Lead, key External_Id__c, column company), so its plan is refused before any look-up (SyncScopeChangedError): put the config back as it was and run the pipeline, whose plan does it, or look for the record in Salesforce yourself and record what you found with --without-look-up added to this command`,
      );
      expect(await ledger(dead, task.name)).toEqual({ 'sc-1': 'sent', 'sc-2': 'sent' });

      const result = await cli([
        'resolve',
        ...changedConfig,
        '--task',
        task.name,
        '--file',
        file,
        '--without-look-up',
      ]);
      expect(result.stderr).toBe('');
      expect(result.stdout).toBe(
        `key sc-1 (sent by run ${dead} in a Collections call): recorded as inserted, Id ${id1}: never inserted again\n` +
          `key sc-2 (sent by run ${dead} in a Collections call): recorded as not inserted: the next plan inserts it\n` +
          `2 keys of task Lead-scope-changed: 1 inserted, 1 not inserted (the runs that sent them count them again: roundtrip status)\n`,
      );
      expect(result.code).toBe(0);
      expect(await syncedId(task.name, 'sc-1')).toBe(id1);
      expect(await ledger(dead, task.name)).toEqual({ 'sc-1': 'succeeded', 'sc-2': 'failed' });
      // Nothing is left without an outcome: forget starts the task over under its new key column.
      const forgotten = await cli([
        'forget',
        ...changedConfig,
        '--task',
        task.name,
        '--yes',
        '--insert-again',
      ]);
      expect(forgotten.stderr).toBe('');
      expect(forgotten.code).toBe(0);
    });

    it('Salesforce refuses the look-up for good: the held-back keys say so and name the command, which records them with --without-look-up', async () => {
      const task = { ...KEYED, name: 'Lead-look-up-refused' };
      const dead = await keyedLost(task, 'lr', 2);
      await outlastCallTimeLimit(env, dead);
      const [id1] = leadsNamed('lr', 1);
      const [id2] = leadsNamed('lr', 2);
      env.sf.store.delete([id2 as string]);
      // The connector described Lead before (a warm Lambda's cached describe): the plan passes its
      // pre-flight, and Salesforce refuses the look-up by a field the user may no longer read.
      deleteKeyField();
      const named = env.deps({ writeback: [task] });
      const namedConfig = await configNaming('look-up-refused', [task]);
      const held = await env.newRun();
      expect(await planWriteback(named, { runId: held, task: task.name })).toMatchObject({
        heldBack: 2,
        changed: 0,
      });
      expect(await ledger(dead, task.name)).toEqual({ 'lr-1': 'sent', 'lr-2': 'sent' });
      const [first] = await errorsOf(env, held);
      expect(first).toMatchObject({ key: 'lr-1', code: 'INSERT_OUTCOME_UNKNOWN' });
      expect(first?.message).toMatch(
        new RegExp(
          `^key lr-1 was sent for insert by run ${dead}, whose result was never recorded: not inserted by this run\\. This plan looked the key up by External_Id__c and Salesforce refused the look-up \\(.*INVALID_FIELD.*No such column 'External_Id__c' on entity 'Lead'.*\\): the key stays held back while it refuses\\. If it keeps refusing, find the record in Salesforce, then record what you found with roundtrip resolve --task Lead-look-up-refused --key lr-1 --without-look-up --inserted <the record's Id> \\(or --not-inserted if there is none, or you delete it there\\)$`,
        ),
      );
      // A connector signed in since (a cold Lambda) no longer sees the field: the plan is refused
      // before any look-up.
      await expect(
        planWriteback(
          { ...named, salesforce: await env.connect() },
          { runId: await env.newRun(), task: task.name },
        ),
      ).rejects.toThrow('key External_Id__c is not a field of Lead (writeback[0].key)');

      // Without the option, resolve says what may keep the plan from looking them up.
      const refused = await cli([
        'resolve',
        ...namedConfig,
        '--task',
        task.name,
        '--key',
        'lr-1',
        '--inserted',
        id1 as string,
      ]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain(
        `key lr-1 was sent by run ${dead} in a Collections call: once 11 minutes have passed since the send, the next plan of the task looks the key up by External_Id__c and records its outcome itself. Should it not (Salesforce refuses the look-up: roundtrip errors --task Lead-look-up-refused${shown(namedConfig)} --code INSERT_OUTCOME_UNKNOWN shows the refusal in the key's message; or the plan is refused before it, by a key field gone from Salesforce, say), look for the record in Salesforce yourself and record what you found with --without-look-up added to this command`,
      );
      for (const [key, outcome] of [
        ['lr-1', ['--inserted', id1 as string]],
        ['lr-2', ['--not-inserted']],
      ] as const) {
        const result = await cli([
          'resolve',
          ...namedConfig,
          '--task',
          task.name,
          '--key',
          key,
          ...outcome,
          '--without-look-up',
        ]);
        expect(result.stderr).toBe('');
        expect(result.code).toBe(0);
      }
      expect(await syncedId(task.name, 'lr-1')).toBe(id1);
      expect(await ledger(dead, task.name)).toEqual({ 'lr-1': 'succeeded', 'lr-2': 'failed' });
      expect(await figures(dead, task.name)).toMatchObject({
        written: 1,
        failed: 1,
        outcomesResolvedBy: 'roundtrip resolve',
      });

      // Once Salesforce answers for the field again, the next run inserts lr-2 once, never lr-1.
      restoreKeyField?.();
      restoreKeyField = undefined;
      const next = await runWriteback(named, { runId: await env.newRun(), task: task.name });
      expect(next.plan).toMatchObject({ heldBack: 0, changed: 1 });
      expect(leadsNamed('lr', 1)).toEqual([id1]);
      expect(leadsNamed('lr', 2)).toHaveLength(1);
    });

    it('a task the config no longer names that cannot be named again as it was (its key field gone from Salesforce): recorded with --without-look-up', async () => {
      const task = { ...KEYED, name: 'Lead-removed-key-gone' };
      const dead = await keyedLost(task, 'rg', 1);
      await outlastCallTimeLimit(env, dead);
      const [id1] = leadsNamed('rg', 1);
      deleteKeyField();
      // Named again as it was, its plan is refused before any look-up.
      await expect(
        planWriteback(
          { ...env.deps({ writeback: [task] }), salesforce: await env.connect() },
          { runId: await env.newRun(), task: task.name },
        ),
      ).rejects.toThrow('key External_Id__c is not a field of Lead (writeback[0].key)');
      const removed = await configNaming('key-gone', []);
      const refused = await cli([
        'resolve',
        ...removed,
        '--task',
        task.name,
        '--key',
        'rg-1',
        '--inserted',
        id1 as string,
      ]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain(
        `the config no longer names task Lead-removed-key-gone: name it again as it was (the same name, object Lead, key External_Id__c) and run the pipeline, whose plan does it, or, if it cannot be named so again (its key field gone from Salesforce, say), look for the record in Salesforce yourself and record what you found with --without-look-up added to this command`,
      );
      const result = await cli([
        'resolve',
        ...removed,
        '--task',
        task.name,
        '--key',
        'rg-1',
        '--inserted',
        id1 as string,
        '--without-look-up',
      ]);
      expect(result.stderr).toBe('');
      expect(result.stdout).toContain(
        `key rg-1 (sent by run ${dead} in a Collections call): recorded as inserted, Id ${id1}: never inserted again`,
      );
      expect(result.code).toBe(0);
      expect(await syncedId(task.name, 'rg-1')).toBe(id1);
      // forget, which refused the task for the key, starts it over.
      const forgotten = await cli(['forget', ...removed, '--task', task.name, '--yes', '--insert-again']);
      expect(forgotten.stderr).toBe('');
      expect(forgotten.code).toBe(0);
    });
  });
});
