/**
 * A task's state that its config no longer names, and starting a task over, through the CLI on the
 * real PostgreSQL: `roundtrip status` lists the tasks a pipeline has state for that its config no
 * longer names; `roundtrip forget --task NAME [--yes]` deletes a task's sync state, sync scope and
 * watermark (a dry run without --yes), refuses while records of the task have no known outcome or
 * its lock is held, and refuses a name the database does not know. The write-backs run in-process
 * against the Salesforce emulator over HTTP (test/integration/writeback/support.ts).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { WritebackTaskInput } from '../../../lambdas/config';
import { advanceWatermark, readWatermark, withClient } from '../../../lambdas/connectors/postgres';
import { planWriteback, reportRun, runWriteback } from '../../../lambdas/core/writeback';
import { pruneRunDetails } from '../../../lambdas/core/writeback/report';
import { HELD_BACK_ERROR_SQL } from '../../../lambdas/core/writeback/state';
import { ifTaskLockFree } from '../../../lambdas/core/writeback/lock';
import { SyncScopeChangedError } from '../../../lambdas/core/writeback/scope';
import { cli } from '../../support/cli';
import {
  LEAD_SRC_UPSERT,
  outlastCallTimeLimit,
  planThenCrashInPush,
  startWritebackEnv,
  type WritebackEnv,
} from '../writeback/support';

function lastJsonLine(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1] as string) as Record<string, unknown>;
}

describe('roundtrip status and forget: task state the config no longer names, a task started over', () => {
  let env: WritebackEnv;
  let dir: string;

  beforeAll(async () => {
    env = await startWritebackEnv();
    await env.pool.query(
      `CREATE TABLE lead_src (ext text, email text, last_name text, company text, score integer)`,
    );
    dir = await mkdtemp(path.join(os.tmpdir(), 'roundtrip-forget-'));
  });
  afterAll(async () => {
    await env?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** `n` rows keyed `${prefix}-i`, e-mail `${prefix}-i@example.test`. */
  async function source(prefix: string, n: number): Promise<void> {
    await env.pool.query('DELETE FROM lead_src');
    await env.pool.query(
      `INSERT INTO lead_src SELECT $1 || '-' || i, $1 || '-' || i || '@example.test', 'Forget ' || i, 'Acme', i
         FROM generate_series(1, $2::int) AS i`,
      [prefix, n],
    );
  }

  /** The pipeline's config file (the tests' pipeline, `wb-test`) with these write-backs. */
  async function configWith(name: string, writeback: WritebackTaskInput[]): Promise<string> {
    return env.writeConfigFile(path.join(dir, `${name}.config.json`), { writeback });
  }

  const db = (): string[] => ['--database-url', env.db.url];

  /** The options `--config config` and db() as the commands printed by forget repeat them. */
  const given = (config: string): string => {
    const url = new URL(env.db.url);
    url.password = '***';
    // Quoted: a shell would take the * of *** for a pattern.
    return ` --config ${config} --database-url '${url.toString()}'`;
  };
  const putPasswordBack = ' (with the password of your --database-url where it shows ***)';
  /** `text` as a regular expression matches it. */
  const escaped = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

  /** Runs the write-back task in a run of its own, which then ends as `status`. */
  async function syncedRun(
    task: WritebackTaskInput & { name: string },
    status = 'succeeded',
  ): Promise<string> {
    const runId = await env.newRun();
    await runWriteback(env.deps({ writeback: [task] }), { runId, task: task.name });
    await endRun(runId, status);
    return runId;
  }

  async function endRun(runId: string, status = 'succeeded'): Promise<void> {
    await env.pool.query(`UPDATE roundtrip.runs SET status = $2, finished_at = now() WHERE run_id = $1`, [
      runId,
      status,
    ]);
  }

  const stateOf = async (task: string): Promise<{ synced: number; scopes: number }> => {
    const { rows } = await env.pool.query<{ synced: number; scopes: number }>(
      `SELECT (SELECT count(*)::int FROM roundtrip.sync_state WHERE task = $1) AS synced,
              (SELECT count(*)::int FROM roundtrip.sync_scope WHERE task = $1) AS scopes`,
      [task],
    );
    return rows[0] as { synced: number; scopes: number };
  };

  const leadsOf = (object: string, prefix: string): Record<string, unknown>[] =>
    [...env.sf.store.all(object)].filter((r) => String(r.Email).startsWith(`${prefix}-`));

  it('status lists a task the config no longer names, with its synced records and last run, and not the tasks it names', async () => {
    await source('renamed', 3);
    const old = { ...LEAD_SRC_UPSERT, name: 'scores-v1' };
    const named = { ...LEAD_SRC_UPSERT, name: 'scores-v2' };
    const oldRun = await syncedRun(old);
    await syncedRun(named);
    // The task renamed in the config: scores-v1 is no longer named.
    const config = await configWith('renamed', [named]);

    const json = lastJsonLine((await cli(['status', '--config', config, ...db(), '--json'])).stdout);
    expect(json.tasksNotInConfig).toEqual([
      {
        task: 'scores-v1',
        syncedRecords: 3,
        syncScope: { object: 'Lead', keyField: 'External_Id__c', keyColumn: 'ext' },
        watermark: null,
        lastRun: { runId: oldRun, status: 'succeeded', startedAt: expect.any(String) },
        outcomesUnknown: { sent: [], insertOutcomeUnknown: [], runningPlans: [], records: 0 },
        todo: `roundtrip forget --task scores-v1${given(config)} --yes`,
      },
    ]);

    const text = await cli(['status', '--config', config, ...db()]);
    expect(text.code).toBe(0);
    const listing = text.stdout.slice(text.stdout.indexOf('\n1 task of pipeline wb-test'));
    expect(listing).toMatch(
      new RegExp(
        `^\\n1 task of pipeline wb-test has state in the database that the config no longer names \\(renamed or removed; put the password of your --database-url back where the commands below show \\*\\*\\*\\):\\n` +
          `  scores-v1: 3 synced records \\(roundtrip\\.sync_state; Lead by External_Id__c, keys from column ext\\); last run ${oldRun} \\(succeeded, started [0-9-]+ [0-9:]+ UTC\\)\\n` +
          `    nothing outstanding: ${escaped(`roundtrip forget --task scores-v1${given(config)} --yes`)} deletes its state \\(its runs' history is kept\\)\\n$`,
      ),
    );
    expect(text.stdout).not.toContain('scores-v2');

    // Forgotten, it is listed no more; its runs are still there.
    expect((await cli(['forget', '--config', config, ...db(), '--task', 'scores-v1', '--yes'])).code).toBe(0);
    const after = lastJsonLine((await cli(['status', '--config', config, ...db(), '--json'])).stdout);
    expect(after.tasksNotInConfig).toEqual([]);
    expect((after.runs as { runId: string }[]).map((r) => r.runId)).toContain(oldRun);
  });

  it("status finds a task by its sync state's run when neither its name nor its scope was recorded (a state older than both)", async () => {
    const runId = await env.newRun();
    await endRun(runId);
    await env.pool.query(
      `INSERT INTO roundtrip.sync_state (task, key, value_hash, run_id) VALUES ('before-claims', 'k1', 'h', $1), ('before-claims', 'k2', 'h', $1)`,
      [runId],
    );
    // Another pipeline's task, by its run: not listed.
    await env.pool.query(
      `INSERT INTO roundtrip.runs (run_id, pipeline, status) VALUES ('theirs-run', 'marketing', 'succeeded')`,
    );
    await env.pool.query(
      `INSERT INTO roundtrip.sync_state (task, key, value_hash, run_id) VALUES ('their-task', 'k1', 'h', 'theirs-run')`,
    );
    const config = await configWith('before-claims', [{ ...LEAD_SRC_UPSERT, name: 'unrelated' }]);
    const json = lastJsonLine((await cli(['status', '--config', config, ...db(), '--json'])).stdout);
    const listed = json.tasksNotInConfig as { task: string; syncedRecords: number; syncScope: unknown }[];
    expect(listed.find((t) => t.task === 'before-claims')).toMatchObject({
      syncedRecords: 2,
      syncScope: null,
    });
    expect(listed.map((t) => t.task)).not.toContain('their-task');
    expect(
      (await cli(['forget', '--config', config, ...db(), '--task', 'before-claims', '--yes'])).code,
    ).toBe(0);
    expect(await stateOf('before-claims')).toEqual({ synced: 0, scopes: 0 });
  });

  it('starts over a task whose object changed: a dry run first deletes nothing, then --yes, and the next plan sends every record once', async () => {
    await source('moving', 3);
    const onLead = {
      ...LEAD_SRC_UPSERT,
      name: 'moving',
      fields: { LastName: 'last_name', Company: 'company' },
    };
    await syncedRun(onLead);
    const onContact = {
      ...onLead,
      object: 'Contact',
      key: 'Email',
      keyColumn: 'email',
      fields: { LastName: 'last_name' },
    };
    const config = await configWith('moving', [onContact]);

    // The plan refuses it, and names the command; that run, failed so, is the task's last.
    const refusedRun = await env.newRun();
    const refused = await planWriteback(env.deps({ writeback: [onContact] }), {
      runId: refusedRun,
      task: 'moving',
    }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(SyncScopeChangedError);
    expect((refused as Error).message).toContain(
      "or start the task over under its name (roundtrip forget --task moving --yes, with the pipeline's --config and --secrets: it deletes the task's sync state, and every record is sent once).",
    );
    await endRun(refusedRun, 'failed');

    const dry = await cli(['forget', '--config', config, ...db(), '--task', 'moving']);
    expect(dry.code).toBe(0);
    expect(dry.stdout.split('\n')).toEqual([
      expect.stringMatching(
        new RegExp(
          `^task moving \\(named in the config as writeback\\[0\\]; last run ${refusedRun} \\(failed, started [0-9-]+ [0-9:]+ UTC\\)\\): would delete$`,
        ),
      ),
      '  roundtrip.sync_state     3 synced records',
      '  roundtrip.sync_scope     1 row (Lead by External_Id__c, keys from column ext)',
      '  roundtrip.extract_state  0 rows',
      `Nothing deleted (a dry run): roundtrip forget --task moving${given(config)} --yes${putPasswordBack} deletes them. The task starts over: its next plan sends every record once.`,
      "Kept: the per-run history (roundtrip.runs, the ledger writeback_plans and writeback_plan_pages, writeback_jobs, writeback_errors, extract_jobs: roundtrip status and errors still show the task's runs) and the task's name in roundtrip.task_owners.",
      '',
    ]);
    expect(await stateOf('moving')).toEqual({ synced: 3, scopes: 1 });
    const dryJson = lastJsonLine(
      (await cli(['forget', '--config', config, ...db(), '--task', 'moving', '--json'])).stdout,
    );
    expect(dryJson).toMatchObject({
      task: 'moving',
      deleted: false,
      syncState: 3,
      syncScope: 1,
      watermark: 0,
    });
    expect(await stateOf('moving')).toEqual({ synced: 3, scopes: 1 });

    const ledgerBefore = (
      await env.pool.query(`SELECT count(*)::int AS n FROM roundtrip.writeback_plans WHERE task = 'moving'`)
    ).rows[0].n as number;
    const done = await cli(['forget', '--config', config, ...db(), '--task', 'moving', '--yes', '--json']);
    expect(done.code).toBe(0);
    expect(lastJsonLine(done.stdout)).toMatchObject({
      deleted: true,
      syncState: 3,
      syncScope: 1,
      watermark: 0,
    });
    expect(await stateOf('moving')).toEqual({ synced: 0, scopes: 0 });
    // The per-run history is kept.
    expect(
      (await env.pool.query(`SELECT count(*)::int AS n FROM roundtrip.writeback_plans WHERE task = 'moving'`))
        .rows[0].n,
    ).toBe(ledgerBefore);

    // The next plan sends every record once, to Contact; the one after sends none.
    const over = await runWriteback(env.deps({ writeback: [onContact] }), {
      runId: await env.newRun(),
      task: 'moving',
    });
    expect(over.plan.changed).toBe(3);
    expect(over.result).toMatchObject({ succeeded: 3, failed: 0 });
    expect(leadsOf('Contact', 'moving')).toHaveLength(3);
    const again = await runWriteback(env.deps({ writeback: [onContact] }), {
      runId: await env.newRun(),
      task: 'moving',
    });
    expect(again.plan.changed).toBe(0);
    expect(leadsOf('Contact', 'moving')).toHaveLength(3);
  });

  it('refuses while records of the task have no known outcome, naming the runs, counts and keys, and deletes nothing', async () => {
    await source('lost', 3);
    const insert = { ...LEAD_SRC_UPSERT, name: 'lost-inserts', mode: 'insert' as const };
    const deps = env.deps({ writeback: [insert] });
    // One run inserted the keys and recorded them; the next (after the source changed) sent three
    // more, crashed before recording their results, and ended.
    await syncedRun(insert);
    await source('lost-more', 3);
    const dead = await env.newRun();
    await planThenCrashInPush(env, deps, dead, 'lost-inserts');
    await endRun(dead, 'failed');
    // An insert held back as INSERT_OUTCOME_UNKNOWN, never resolved; another resolved since (its
    // Salesforce Id recorded), which does not count.
    await env.pool.query(
      `INSERT INTO roundtrip.writeback_errors (run_id, task, key, stage, code, message)
       VALUES ($1, 'lost-inserts', 'lost-9', 'push', 'INSERT_OUTCOME_UNKNOWN', 'sent, result never recorded'),
              ($1, 'lost-inserts', 'lost-1', 'push', 'INSERT_OUTCOME_UNKNOWN', 'sent, result never recorded')`,
      [dead],
    );
    const before = await stateOf('lost-inserts');
    expect(before.synced).toBe(3);
    const config = await configWith('lost', [insert]);

    for (const yes of [[], ['--yes']]) {
      const refused = await cli(['forget', '--config', config, ...db(), '--task', 'lost-inserts', ...yes]);
      expect(refused.code).toBe(1);
      expect(refused.stderr.split('\n')).toEqual([
        'roundtrip forget: refused: task lost-inserts has 4 records whose outcome is unknown: with its sync state gone, the next plan would send them again, and an insert Salesforce did carry out would be inserted twice. Nothing deleted.',
        `  run ${dead} (failed): 3 records sent whose result was never recorded (roundtrip.writeback_plans, status sent): lost-more-1, lost-more-2, lost-more-3`,
        `  run ${dead} (failed): 1 insert key held back as INSERT_OUTCOME_UNKNOWN and not resolved since: lost-9`,
        expect.stringMatching(
          new RegExp(
            `^Let a plan of the task resolve them first: run the pipeline with the task configured as it was.* ` +
              `${escaped(`roundtrip resolve --task lost-inserts${given(config)} --collect-jobs asks`)} .*` +
              `${escaped(`roundtrip resolve --task lost-inserts${given(config)} --key KEY --inserted ID`)} .*` +
              `${escaped(' Put the password of your --database-url back where the commands show ***.')}$`,
          ),
        ),
        '',
      ]);
      expect(await stateOf('lost-inserts')).toEqual(before);
    }

    // status, with the task no longer named, lists it with what is outstanding.
    const other = await configWith('lost-renamed', [{ ...insert, name: 'other' }]);
    const status = await cli(['status', '--config', other, ...db()]);
    expect(status.stdout).toContain(
      `  lost-inserts: 3 synced records (roundtrip.sync_state; Lead by External_Id__c, keys from column ext); last run ${dead} (failed, started `,
    );
    expect(status.stdout).toContain(
      `    run ${dead} (failed): 3 records sent whose result was never recorded (roundtrip.writeback_plans, status sent): lost-more-1, lost-more-2, lost-more-3\n`,
    );
    expect(status.stdout).toMatch(
      new RegExp(
        ` {4}not to be forgotten yet: Let a plan of the task resolve them first: .*` +
          `${escaped(`roundtrip resolve --task lost-inserts${given(other)} --collect-jobs asks`)} .* ` +
          `Then ${escaped(`roundtrip forget --task lost-inserts${given(other)} --yes --insert-again`)}\\.\\n`,
      ),
    );
    const json = lastJsonLine((await cli(['status', '--config', other, ...db(), '--json'])).stdout);
    // (The tasks of the tests before, which this config does not name either, are listed too.)
    expect((json.tasksNotInConfig as { task: string }[]).filter((t) => t.task === 'lost-inserts')).toEqual([
      expect.objectContaining({
        task: 'lost-inserts',
        syncedRecords: 3,
        outcomesUnknown: {
          sent: [
            {
              runId: dead,
              runStatus: 'failed',
              records: 3,
              sample: ['lost-more-1', 'lost-more-2', 'lost-more-3'],
            },
          ],
          insertOutcomeUnknown: [{ runId: dead, runStatus: 'failed', records: 1, sample: ['lost-9'] }],
          runningPlans: [],
          records: 4,
        },
      }),
    ]);
  });

  it('deletes the resolved INSERT_OUTCOME_UNKNOWN marks of a keyless insert, which would hold their keys back for ever once the sync state is gone', async () => {
    await source('keyless', 3);
    const { key: _key, ...upsert } = LEAD_SRC_UPSERT;
    const insert = { ...upsert, name: 'keyless', mode: 'insert' as const };
    const runId = await syncedRun(insert);
    // An earlier push lost the outcome of keyless-2's insert, resolved since by hand (its Id is in
    // the sync state); a rejection of the same run is history, kept.
    await env.pool.query(
      `INSERT INTO roundtrip.writeback_errors (run_id, task, key, stage, code, message)
       VALUES ($1, 'keyless', 'keyless-2', 'push', 'INSERT_OUTCOME_UNKNOWN', 'sent, result never recorded'),
              ($1, 'keyless', 'keyless-9', 'plan', 'STRING_TOO_LONG', 'too long')`,
      [runId],
    );
    const config = await configWith('keyless', [insert]);
    const dry = await cli(['forget', '--config', config, ...db(), '--task', 'keyless']);
    expect(dry.stdout).toContain(
      '  roundtrip.writeback_errors  1 row: resolved INSERT_OUTCOME_UNKNOWN marks of an earlier push (their Salesforce Ids are in the sync state: without it, every later plan would hold those keys back for ever)\n',
    );
    expect(dry.stdout).toContain('(but for the rows above).\n');
    // An insert task: forgotten, its next run inserts the 3 records it inserted again. The dry run
    // says so, and --yes alone is refused (bad input), deleting nothing.
    expect(dry.stdout).toContain(
      'Mind: task keyless inserts records: with its sync state gone, its next run inserts the 3 records it inserted already again, and Salesforce holds each twice, unless you deleted them there or the task now writes another object; --yes needs --insert-again beside it for this task.\n',
    );
    // The command it prints is the one that works, not one refused for want of --insert-again.
    expect(dry.stdout).toContain(
      `Nothing deleted (a dry run): roundtrip forget --task keyless${given(config)} --yes --insert-again${putPasswordBack} deletes them.`,
    );
    const refused = await cli(['forget', '--config', config, ...db(), '--task', 'keyless', '--yes']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(
      'roundtrip forget: refused: task keyless inserts records: with its sync state gone, its next run inserts the 3 records it inserted already again',
    );
    expect(refused.stderr).toContain('run it again with --insert-again beside --yes.');
    const kept = await env.pool.query(
      `SELECT count(*)::int AS n FROM roundtrip.sync_state WHERE task = 'keyless'`,
    );
    expect(kept.rows).toEqual([{ n: 3 }]);
    // Not named in the config any more, it has no next run, but named again, or renamed (the plan
    // of the new name is refused only while this state is kept), it would insert them again: the
    // dry run says so (its latest plan's pages say it inserted), and --yes alone is refused too.
    const unnamed = await configWith('keyless-gone', [{ ...insert, name: 'keyless-renamed' }]);
    const dryUnnamed = await cli(['forget', '--config', unnamed, ...db(), '--task', 'keyless']);
    expect(dryUnnamed.stdout).toContain(
      'The config does not name the task: named again, it starts over (its next plan sends every record once; an insert task, as its latest plan was: it would insert the 3 records it inserted already again).\n',
    );
    expect(dryUnnamed.stdout).toContain(
      `Nothing deleted (a dry run): roundtrip forget --task keyless${given(unnamed)} --yes --insert-again${putPasswordBack} deletes them.`,
    );
    expect(dryUnnamed.stdout).toContain(
      `If the task was renamed, carry its state to the new name instead: roundtrip rename-task --from keyless --to NEW${given(unnamed)} --yes${putPasswordBack}`,
    );
    const refusedUnnamed = await cli(['forget', '--config', unnamed, ...db(), '--task', 'keyless', '--yes']);
    expect(refusedUnnamed.code).toBe(2);
    expect(refusedUnnamed.stderr).toContain('run it again with --insert-again beside --yes.');
    expect((await stateOf('keyless')).synced).toBe(3);
    const done = await cli([
      'forget',
      '--config',
      config,
      ...db(),
      '--task',
      'keyless',
      '--yes',
      '--insert-again',
      '--json',
    ]);
    expect(lastJsonLine(done.stdout)).toMatchObject({ deleted: true, syncState: 3, resolvedMarks: 1 });
    // Started over: every record is planned, keyless-2 too (not held back as INSERT_OUTCOME_UNKNOWN).
    const plan = await planWriteback(env.deps({ writeback: [insert] }), {
      runId: await env.newRun(),
      task: 'keyless',
    });
    expect(plan).toMatchObject({ changed: 3, heldBack: 0 });
    // The marks deleted; the rest of the run's errors kept.
    const { rows } = await env.pool.query(
      `SELECT code FROM roundtrip.writeback_errors WHERE task = 'keyless' ORDER BY code`,
    );
    expect(rows).toEqual([{ code: 'STRING_TOO_LONG' }]);
    await env.pool.query(
      `UPDATE roundtrip.runs SET status = 'failed', finished_at = now() WHERE status = 'running'`,
    );
  });

  it('tells to record the keys of a keyless insert by hand first, as no plan can look them up', async () => {
    await source('handy', 2);
    const keyless = {
      name: 'handy-keyless',
      to: 'salesforce' as const,
      object: 'Lead',
      from: 'lead_src',
      mode: 'insert' as const,
      keyColumn: 'ext',
      fields: { LastName: 'last_name', Company: 'company' },
    };
    const dead = await env.newRun();
    await planThenCrashInPush(env, env.deps({ writeback: [keyless] }), dead, 'handy-keyless');
    await endRun(dead, 'failed');
    const config = await configWith('handy', [keyless]);
    const refused = await cli(['forget', '--config', config, ...db(), '--task', 'handy-keyless', '--yes']);
    expect(refused.code).toBe(1);
    const advice = refused.stderr.split('\n')[2] as string;
    expect(advice).toMatch(
      /^Record them by hand: the task inserts without an external-ID key, so no plan can look them up\. Find each record in Salesforce, then run roundtrip resolve --task handy-keyless --config \S+ --database-url '\S+' --key KEY --inserted ID \(or --not-inserted when there is none\), or record them all at once with roundtrip resolve --task handy-keyless --config \S+ --database-url '\S+' --file outcomes\.csv/,
    );
    expect(advice).toContain(
      `roundtrip errors --task handy-keyless${given(config)} --code INSERT_OUTCOME_UNKNOWN lists the keys the latest run held back. ` +
        `Records sent in a Bulk job their run never collected: roundtrip resolve --task handy-keyless${given(config)} --collect-jobs collects each job`,
    );
    expect(refused.stderr).not.toContain('Let a plan of the task resolve');
  });

  it("deletes an extract task's watermark, so that its next read is a full one", async () => {
    const runId = await env.newRun();
    await endRun(runId);
    await withClient(env.pool, (client) =>
      advanceWatermark(client, 'Lead', {
        watermark: '2026-01-02T03:04:05Z',
        watermarkId: null,
        runId,
        rows: 7,
      }),
    );
    // A config file whose path a shell would split: the command printed quotes it.
    const file = await env.writeConfigFile(path.join(dir, "Lead's extract.config.json"), {
      extract: [{ from: 'salesforce', object: 'Lead', fields: ['Id', 'LastName'], table: 'sf_lead' }],
    });
    const dry = await cli(['forget', '-c', file, ...db(), '--task', 'Lead']);
    expect(dry.stdout).toContain(
      '  roundtrip.extract_state  1 row (watermark 2026-01-02T03:04:05.000Z, 7 rows loaded in all)\n',
    );
    // The command to run is this one's, with the options that named the pipeline and the database
    // (the URL's password not shown), and --yes.
    const url = new URL(env.db.url);
    const password = decodeURIComponent(url.password);
    url.password = '***';
    const quotedFile = `'${file.replace(/'/g, `'\\''`)}'`;
    const printed = `roundtrip forget --task Lead --config ${quotedFile} --database-url '${url.toString()}' --yes`;
    expect(dry.stdout).toContain(
      `Nothing deleted (a dry run): ${printed} (with the password of your --database-url where it shows ***) deletes them. The task starts over: its next read is a full one.\n`,
    );
    // Pasted into a shell, with the password put back, it is the command that deletes the state.
    const { stdout: words } = await promisify(execFile)('sh', [
      '-c',
      `printf '%s\\n' ${printed.replace('***', password).replace(/^roundtrip /, '')}`,
    ]);
    const done = await cli(words.trimEnd().split('\n'));
    expect(done.stdout).toMatch(/: deleted, in one transaction\n/);
    expect(done.code).toBe(0);
    expect(await withClient(env.pool, (client) => readWatermark(client, 'Lead'))).toBeUndefined();
  });

  it('refuses while a run still running planned the task: its push and collect are still to come', async () => {
    await source('going', 2);
    const task = { ...LEAD_SRC_UPSERT, name: 'going' };
    await syncedRun(task);
    await source('going-on', 2);
    const going = await env.newRun();
    await planWriteback(env.deps({ writeback: [task] }), { runId: going, task: 'going' });
    const config = await configWith('going', [task]);
    const refused = await cli(['forget', '--config', config, ...db(), '--task', 'going', '--yes']);
    expect(refused.code).toBe(1);
    expect(refused.stderr.split('\n')).toEqual([
      'roundtrip forget: refused: task going was planned by a run still running: its push and collect, still to come, would record what they send in the sync state this deletes. Nothing deleted.',
      `  run ${going} is still recorded as running and planned the task: its push and collect are still to come`,
      `Run ${going} is still recorded as running and must end first (roundtrip status shows it): its push and collect may still record outcomes. ` +
        `If its process is gone (killed, its machine shut down), roundtrip status --end-run ${going}${given(config)} ends it; a run of this machine whose process is gone is ended by the next run, status or resolve here. ` +
        'Put the password of your --database-url back where the commands show ***.',
      '',
    ]);
    expect(await stateOf('going')).toEqual({ synced: 2, scopes: 1 });
    await endRun(going, 'failed');
    expect((await cli(['forget', '--config', config, ...db(), '--task', 'going', '--yes'])).code).toBe(0);
  });

  it('refuses while a push or collect of the task holds its lock, and deletes nothing', async () => {
    await source('busy', 2);
    const task = { ...LEAD_SRC_UPSERT, name: 'busy' };
    await syncedRun(task);
    const config = await configWith('busy', [task]);
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => (locked = resolve));
    // A push of the task, as pushWriteback holds the lock (withTaskLock: a session lock).
    const push = ifTaskLockFree(env.deps({ writeback: [task] }), 'busy', async () => {
      locked();
      await released;
    });
    await isLocked;
    try {
      const refused = await cli(['forget', '--config', config, ...db(), '--task', 'busy', '--yes']);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toBe(
        'roundtrip forget: a push, collect or plan of task busy holds its lock (a run going on): nothing deleted; run forget again once it has ended (roundtrip status shows the runs)\n',
      );
      expect(await stateOf('busy')).toEqual({ synced: 2, scopes: 1 });
    } finally {
      release();
      await push;
    }
    expect((await cli(['forget', '--config', config, ...db(), '--task', 'busy', '--yes'])).code).toBe(0);
    expect(await stateOf('busy')).toEqual({ synced: 0, scopes: 0 });
  });

  it("refuses while a plan of a run still going is in its transaction (it holds its run's row); once it ended, forgets, and that run's plan sends every record", async () => {
    await source('planning', 2);
    const task = { ...LEAD_SRC_UPSERT, name: 'planning' };
    await syncedRun(task);
    const config = await configWith('planning', [task]);
    const going = await env.newRun();
    // What the plan's transaction holds from its start to its end (writeback/plan.ts).
    const plan = await env.pool.connect();
    try {
      await plan.query('BEGIN');
      await plan.query('SELECT 1 FROM roundtrip.runs WHERE run_id = $1 FOR KEY SHARE', [going]);
      const refused = await cli(['forget', '--config', config, ...db(), '--task', 'planning', '--yes']);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toBe(
        'roundtrip forget: a step of a run of pipeline wb-test still going is writing (a plan, say, which reads the sync state this would delete): nothing deleted; run forget again once it has ended (roundtrip status shows the runs)\n',
      );
      expect(await stateOf('planning')).toEqual({ synced: 2, scopes: 1 });
    } finally {
      await plan.query('ROLLBACK');
      plan.release();
    }
    expect((await cli(['forget', '--config', config, ...db(), '--task', 'planning', '--yes'])).code).toBe(0);
    // Its plan, after the forget, sends every record once.
    expect(
      (await planWriteback(env.deps({ writeback: [task] }), { runId: going, task: 'planning' })).changed,
    ).toBe(2);
    await endRun(going);
  });

  it('refuses a task name the database does not know, or one another pipeline holds: bad input, named', async () => {
    const config = await configWith('unknown', [{ ...LEAD_SRC_UPSERT, name: 'scores-v2' }]);
    const unknown = await cli(['forget', '--config', config, ...db(), '--task', 'no-such-task', '--yes']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe(
      'roundtrip forget: --task: the database knows no task no-such-task of pipeline wb-test (no sync state, sync scope, watermark, claim in roundtrip.task_owners or run of it): nothing to forget. Task names are case-sensitive; roundtrip status lists the tasks the config no longer names that still have state\n',
    );

    await env.pool.query(`INSERT INTO roundtrip.task_owners (task, pipeline) VALUES ('theirs', 'marketing')`);
    await env.pool.query(
      `INSERT INTO roundtrip.sync_state (task, key, value_hash) VALUES ('theirs', 'k', 'h')`,
    );
    const theirs = await cli(['forget', '--config', config, ...db(), '--task', 'theirs', '--yes']);
    expect(theirs.code).toBe(2);
    expect(theirs.stderr).toContain('--task: task theirs belongs to pipeline marketing in this database');
    expect(await stateOf('theirs')).toEqual({ synced: 1, scopes: 0 });

    const missing = await cli(['forget', '--config', config, ...db()]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--task NAME is required');
  });

  it("deletes the keys the task's runs held back, kept past the prune for their streak: its first run after a start over carries on no streak of the task as it was", async () => {
    await source('streak', 3);
    const { key: _key, ...upsert } = LEAD_SRC_UPSERT;
    const task = { ...upsert, name: 'streaky', mode: 'insert' as const };
    const d = env.deps({ writeback: [task] });
    const figures = async (runId: string): Promise<Record<string, unknown> | undefined> =>
      (await reportRun(d, { runId })).writeback[task.name];
    // A run whose calls' answers were lost: the next two runs hold its three keys back, a streak.
    const dead = await env.newRun();
    await planThenCrashInPush(env, d, dead, task.name);
    await reportRun(d, { runId: dead, error: { Error: 'States.Timeout', Cause: 'Task timed out' } });
    const first = await env.newRun();
    expect(await planWriteback(d, { runId: first, task: task.name })).toMatchObject({ heldBack: 3 });
    expect(await figures(first)).toMatchObject({ heldBack: 3, heldBackRepeatedly: 0 });
    const second = await env.newRun();
    expect(await planWriteback(d, { runId: second, task: task.name })).toMatchObject({ heldBack: 3 });
    expect(await figures(second)).toMatchObject({ heldBackRepeatedly: 3, heldBackSince: first });
    // Their details pruned: the task's latest pruned run keeps its held-back keys for the streak.
    await env.pool.query(
      `UPDATE roundtrip.runs SET started_at = started_at - interval '2 days', finished_at = finished_at - interval '2 days'
        WHERE run_id = ANY ($1::text[])`,
      [[dead, first, second]],
    );
    await pruneRunDetails(env.pool, 'wb-test', 1, new Date());
    const heldBackErrors = async (): Promise<string[]> =>
      (
        await env.pool.query<{ run_id: string }>(
          `SELECT e.run_id FROM roundtrip.writeback_errors e WHERE e.task = $1 AND ${HELD_BACK_ERROR_SQL} ORDER BY e.run_id`,
          [task.name],
        )
      ).rows.map((r) => r.run_id);
    // And a key its push held back (another run had taken it since the plan), as the prune keeps
    // those: the error with its `held_back` ledger row, by which it counts as held back.
    await env.pool.query(
      `INSERT INTO roundtrip.writeback_plans (run_id, task, key, seq, operation, payload, value_hash, status)
       VALUES ($1, $2, 'streak-9', 1, 'insert', '{}', 'h', 'held_back')`,
      [second, task.name],
    );
    await env.pool.query(
      `INSERT INTO roundtrip.writeback_errors (run_id, task, key, stage, code, message)
       VALUES ($1, $2, 'streak-9', 'push', 'ALREADY_INSERTED', 'taken by another run since the plan')`,
      [second, task.name],
    );
    expect(await heldBackErrors()).toEqual([second, second, second, second]);

    // The records were never created after all (deleted there): recorded as not inserted, then the
    // task is started over.
    env.sf.store.delete(leadsOf('Lead', 'streak').map((r) => String(r.Id)));
    await outlastCallTimeLimit(env, dead);
    const file = path.join(dir, 'streak.csv');
    await writeFile(file, 'key,salesforce_id\nstreak-1,\nstreak-2,\nstreak-3,\n');
    const config = await configWith('streaky', [task]);
    const resolved = await cli(['resolve', '--config', config, ...db(), '--task', task.name, '--file', file]);
    expect(resolved.stderr).toBe('');
    const dry = await cli(['forget', '--config', config, ...db(), '--task', task.name]);
    expect(dry.stdout).toContain(
      "  roundtrip.writeback_errors  4 rows: the keys earlier runs held back, which the task's next run would compare its own with and so carry on their streak of keys held back again\n" +
        '  roundtrip.writeback_plans   1 row: the held_back ledger rows of those keys that runs whose details were pruned kept for it\n',
    );
    expect(dry.stdout).toContain('(but for the rows above).\n');
    const done = await cli(['forget', '--config', config, ...db(), '--task', task.name, '--yes', '--json']);
    expect(done.code).toBe(0);
    expect(lastJsonLine(done.stdout)).toMatchObject({
      deleted: true,
      heldBack: { errors: 4, ledgerRows: 1 },
    });
    expect(await heldBackErrors()).toEqual([]);
    const ledger = await env.pool.query(
      `SELECT 1 FROM roundtrip.writeback_plans WHERE task = $1 AND status = 'held_back'`,
      [task.name],
    );
    expect(ledger.rowCount).toBe(0);

    // Started over, two runs overlap: the later one sends the keys and its answers are lost; the
    // earlier one, whose previous run of the task is the last one before the start over, holds them
    // back. That is not the streak of the task as it was.
    const earlier = await env.newRun();
    const later = await env.newRun();
    await planThenCrashInPush(env, d, later, task.name);
    await reportRun(d, { runId: later, error: { Error: 'States.Timeout', Cause: 'Task timed out' } });
    expect(await planWriteback(d, { runId: earlier, task: task.name })).toMatchObject({ heldBack: 3 });
    const after = await figures(earlier);
    expect(after).toMatchObject({ heldBack: 3, heldBackRepeatedly: 0 });
    expect(after?.heldBackSince).toBeUndefined();
    await env.pool.query(
      `UPDATE roundtrip.runs SET status = 'failed', finished_at = now() WHERE status = 'running'`,
    );
  });
});
