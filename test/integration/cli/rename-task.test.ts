/**
 * A task renamed in the config, through the CLI on the real PostgreSQL and the Salesforce emulator
 * over HTTP: a task's state is kept by its name, so an insert task renamed (a `name` given over its
 * default `Lead-insert`) would insert every record it inserted already again. Its plan (`run`,
 * `plan`) and `validate` refuse it while the old name holds those inserts, before any call to
 * Salesforce; `roundtrip rename-task` carries the old name's state over so the renamed task goes on
 * where it was; `status` and `forget` say that forgetting such a task lets its records be inserted
 * again, and forget needs --insert-again for it before it deletes anything.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { WritebackTaskInput } from '../../../lambdas/config';
import { withClient } from '../../../lambdas/connectors/postgres';
import { claimTaskNames } from '../../../lambdas/core/run-state';
import { runWriteback } from '../../../lambdas/core/writeback';
import { checkRenamedTask, RenamedTaskError } from '../../../lambdas/core/writeback/scope';
import { parseConfig } from '../../../lambdas/config';
import { cli } from '../../support/cli';
import { LEAD_SRC_UPSERT, startWritebackEnv, type WritebackEnv } from '../writeback/support';

function lastJsonLine(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1] as string) as Record<string, unknown>;
}

/** A keyless insert of Lead from `lead_src`: its default name is `Lead-insert`. */
const { key: _key, ...upsert } = LEAD_SRC_UPSERT;
const INSERT: WritebackTaskInput = { ...upsert, mode: 'insert' };

describe('a task renamed in the config: the plan refuses an insert that would insert its records again, and rename-task carries its state over', () => {
  let env: WritebackEnv;
  let dir: string;
  let secrets: string;

  beforeAll(async () => {
    env = await startWritebackEnv();
    await env.pool.query(
      `CREATE TABLE lead_src (ext text, email text, last_name text, company text, score integer)`,
    );
    dir = await mkdtemp(path.join(os.tmpdir(), 'roundtrip-rename-'));
    secrets = path.join(dir, 'secrets.json');
    await writeFile(
      secrets,
      JSON.stringify({
        'roundtrip/salesforce': env.salesforceSecret,
        'roundtrip/postgres': { url: env.db.url },
      }),
    );
  });
  afterAll(async () => {
    await env?.stop();
    await rm(dir, { recursive: true, force: true });
  });
  // Each test starts from a database without task state, and its own source rows.
  beforeEach(async () => {
    await env.pool.query(`TRUNCATE roundtrip.sync_state, roundtrip.sync_scope`);
  });

  async function source(prefix: string, n: number): Promise<void> {
    await env.pool.query('DELETE FROM lead_src');
    await env.pool.query(
      `INSERT INTO lead_src SELECT $1 || '-' || i, $1 || '-' || i || '@example.test', $1 || '-' || i, 'Acme', i
         FROM generate_series(1, $2::int) AS i`,
      [prefix, n],
    );
  }

  /** The pipeline's config file (the tests' pipeline, `wb-test`) with these write-backs. */
  async function configWith(name: string, writeback: WritebackTaskInput[]): Promise<string> {
    return env.writeConfigFile(path.join(dir, `${name}.config.json`), { writeback });
  }

  /** Runs the write-back task in a run of its own (the config naming `others` too), which then ends. */
  async function syncedRun(task: WritebackTaskInput, others: WritebackTaskInput[] = []): Promise<string> {
    const runId = await env.newRun();
    // The names claimed for the pipeline, as its Prepare claims a run's task names.
    await withClient(env.pool, (client) =>
      claimTaskNames(
        client,
        'wb-test',
        runId,
        [task, ...others].map((t) => t.name ?? `${t.object}-${t.mode}`),
      ),
    );
    await runWriteback(env.deps({ writeback: [task, ...others] }), {
      runId,
      task: task.name ?? `${task.object}-${task.mode}`,
    });
    await env.pool.query(
      `UPDATE roundtrip.runs SET status = 'succeeded', finished_at = now() WHERE run_id = $1`,
      [runId],
    );
    return runId;
  }

  const leadsOf = (prefix: string): number =>
    [...env.sf.store.all('Lead')].filter((r) => String(r.LastName).startsWith(`${prefix}-`)).length;

  const syncedOf = async (task: string): Promise<number> =>
    (
      await env.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM roundtrip.sync_state WHERE task = $1`,
        [task],
      )
    ).rows[0]?.n ?? -1;

  it('refuses the renamed insert task in validate, plan and run, naming both tasks, the object, the count and the ways out; nothing is sent', async () => {
    await source('hot', 4);
    await syncedRun(INSERT);
    expect(leadsOf('hot')).toBe(4);
    expect(await syncedOf('Lead-insert')).toBe(4);
    const config = await configWith('renamed', [{ ...INSERT, name: 'hot-leads' }]);
    const connection = ['--config', config, '--secrets', secrets];

    const validate = await cli(['validate', ...connection, '--json']);
    expect(validate.code).toBe(1);
    const checks = (
      lastJsonLine(validate.stdout) as { checks: { check: string; ok: boolean; detail: string }[] }
    ).checks;
    const check = checks.find((c) => c.check === 'write-back hot-leads');
    expect(check?.ok).toBe(false);
    // The commands it names carry the --config and --secrets given, to be pasted as they are.
    const given = ` ${connection.join(' ')}`;
    const refusal =
      "Write-back hot-leads (writeback[0]): it inserts Lead and has no sync state of its own, while task Lead-insert inserted 4 records into Lead (keys from column ext), and the config no longer names it (renamed or removed). A task's sync state is kept by its name: if hot-leads is Lead-insert renamed, its first run would insert all 4 records again, and Salesforce would hold each twice. Nothing was sent. Either rename the task back (writeback[0].name: 'Lead-insert'); or carry Lead-insert's state over to the new name: " +
      `roundtrip rename-task --from Lead-insert --to hot-leads${given} --yes (the task then sends only what changed); or, to insert the records again on purpose (a new task, not a renamed one), start Lead-insert over first: roundtrip forget --task Lead-insert${given} --yes --insert-again.`;
    expect(check?.detail).toContain(refusal);
    // Pasted into a shell (without --yes: a dry run), it is the command of this pipeline and database.
    const printed = refusal.slice(refusal.indexOf('roundtrip rename-task '), refusal.indexOf(' --yes'));
    const { stdout: words } = await promisify(execFile)('sh', [
      '-c',
      `printf '%s\\n' ${printed.replace(/^roundtrip /, '')}`,
    ]);
    const pasted = await cli(words.trimEnd().split('\n'));
    expect(pasted.stderr).toBe('');
    expect(pasted.stdout).toContain(`Nothing moved (a dry run): ${printed} --yes moves them.`);

    const leadsBefore = [...env.sf.store.all('Lead')].length;
    for (const command of ['plan', 'run']) {
      const result = await cli([command, ...connection]);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(refusal);
    }
    // Given by relative paths, the files are named by their absolute ones in the run's refusal,
    // which roundtrip.runs keeps and status shows later, perhaps in another folder.
    const relative = [
      '--config',
      path.relative(process.cwd(), config),
      '--secrets',
      path.relative(process.cwd(), secrets),
    ];
    expect(relative[1]).not.toBe(config);
    const fromHere = await cli(['run', ...relative]);
    expect(fromHere.code).toBe(1);
    expect(fromHere.stderr).toContain(refusal);
    const { rows: stored } = await env.pool.query<{ error: string }>(
      `SELECT error FROM roundtrip.runs ORDER BY started_at DESC LIMIT 1`,
    );
    expect(stored[0]?.error).toContain(
      `roundtrip rename-task --from Lead-insert --to hot-leads${given} --yes`,
    );
    expect([...env.sf.store.all('Lead')].length).toBe(leadsBefore);
    expect(leadsOf('hot')).toBe(4);
    const { rows } = await env.pool.query(
      `SELECT count(*)::int AS n FROM roundtrip.writeback_plans WHERE task = 'hot-leads'`,
    );
    expect(rows).toEqual([{ n: 0 }]);

    // In-process too, the error is the plan's, before any call to Salesforce. Without a command
    // line (in AWS), its commands say to add the pipeline's --config and --secrets.
    const calls = env.connector.apiCalls;
    const runId = await env.newRun();
    const inAws = await runWriteback(env.deps({ writeback: [{ ...INSERT, name: 'hot-leads' }] }), {
      runId,
      task: 'hot-leads',
    }).catch((e: unknown) => e);
    expect(inAws).toBeInstanceOf(RenamedTaskError);
    expect((inAws as Error).message).toContain(
      "roundtrip rename-task --from Lead-insert --to hot-leads --yes (with the pipeline's --config and --secrets; the task then sends only what changed); " +
        'or, to insert the records again on purpose (a new task, not a renamed one), start Lead-insert over first: roundtrip forget --task Lead-insert --yes --insert-again.',
    );
    expect(env.connector.apiCalls).toBe(calls);
    await env.pool.query(
      `UPDATE roundtrip.runs SET status = 'failed', finished_at = now() WHERE run_id = $1`,
      [runId],
    );

    // Named back as it was, the task plans as before: nothing to send.
    const back = await cli([
      'plan',
      '--config',
      await configWith('back', [INSERT]),
      '--secrets',
      secrets,
      '--json',
    ]);
    expect(back.code).toBe(0);
  });

  it("rename-task carries the old name's state to the new one (a dry run first): the renamed task sends nothing", async () => {
    await source('carry', 3);
    await syncedRun(INSERT);
    expect(leadsOf('carry')).toBe(3);
    const config = await configWith('carry', [{ ...INSERT, name: 'carried' }]);
    const connection = ['--config', config, '--secrets', secrets];

    // Refused while the config still names the old task: its next run would start over.
    const named = await cli([
      'rename-task',
      '--config',
      await configWith('carry-old', [INSERT]),
      '--secrets',
      secrets,
      '--from',
      'Lead-insert',
      '--to',
      'carried',
      '--yes',
    ]);
    expect(named.code).toBe(2);
    expect(named.stderr).toContain('--from: the config still names task Lead-insert (writeback[0])');
    expect(await syncedOf('Lead-insert')).toBe(3);

    // Refused when the config names no task NEW (a typo): the state would go where no task reads it.
    const typo = await cli([
      'rename-task',
      ...connection,
      '--from',
      'Lead-insert',
      '--to',
      'Carried',
      '--yes',
    ]);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain(
      '--to: the config names no task Carried (its tasks: carried): give the renamed task that name in the config first, or name the one it has; task names are case-sensitive',
    );
    expect(await syncedOf('Lead-insert')).toBe(3);
    expect(await syncedOf('Carried')).toBe(0);

    const dry = await cli(['rename-task', ...connection, '--from', 'Lead-insert', '--to', 'carried']);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('to carried (named in the config as writeback[0]): would move\n');
    expect(dry.stdout).toContain('  roundtrip.sync_state     3 synced records\n');
    expect(dry.stdout).toContain(
      // With the options that named the pipeline and its database, as given.
      `Nothing moved (a dry run): roundtrip rename-task --from Lead-insert --to carried --config ${config} --secrets ${secrets} --yes moves them.`,
    );
    expect(await syncedOf('Lead-insert')).toBe(3);
    expect(await syncedOf('carried')).toBe(0);

    const moved = await cli([
      'rename-task',
      ...connection,
      '--from',
      'Lead-insert',
      '--to',
      'carried',
      '--yes',
      '--json',
    ]);
    expect(moved.code).toBe(0);
    expect(lastJsonLine(moved.stdout)).toEqual({
      pipeline: 'wb-test',
      from: 'Lead-insert',
      to: 'carried',
      moved: true,
      syncState: 3,
      syncScope: 1,
      watermark: 0,
      resolvedMarks: 0,
    });
    expect(await syncedOf('Lead-insert')).toBe(0);
    expect(await syncedOf('carried')).toBe(3);
    const { rows: owners } = await env.pool.query(
      `SELECT pipeline FROM roundtrip.task_owners WHERE task = 'carried'`,
    );
    expect(owners).toEqual([{ pipeline: 'wb-test' }]);

    // The renamed task goes on where it was: nothing sent, nothing inserted again.
    const run = await cli(['run', ...connection, '--json']);
    expect(run.stderr).not.toContain('RenamedTaskError');
    expect(run.code).toBe(0);
    expect(leadsOf('carry')).toBe(3);
    const { rows: sent } = await env.pool.query(
      `SELECT count(*)::int AS n FROM roundtrip.writeback_plans WHERE task = 'carried'`,
    );
    expect(sent).toEqual([{ n: 0 }]);

    // status lists the old name no more: its state went with the task.
    const status = await cli(['status', ...connection, '--json']);
    expect((lastJsonLine(status.stdout) as { tasksNotInConfig: unknown[] }).tasksNotInConfig).toEqual([]);

    // Refused when the new name has state of its own: the two would mix.
    await source('other', 2);
    await syncedRun({ ...INSERT, name: 'other-leads' }, [{ ...INSERT, name: 'carried' }]);
    const mixed = await cli([
      'rename-task',
      ...connection,
      '--from',
      'other-leads',
      '--to',
      'carried',
      '--yes',
    ]);
    expect(mixed.code).toBe(1);
    expect(mixed.stderr).toContain(
      'roundtrip rename-task: refused: task carried has state of its own (3 synced records',
    );
    expect(await syncedOf('other-leads')).toBe(2);
    expect(await syncedOf('carried')).toBe(3);
  });

  it('refuses to carry the state of a task with records whose outcome is unknown: they would land under the old name', async () => {
    await source('unknown', 2);
    const runId = await syncedRun({ ...INSERT, name: 'lost' });
    await env.pool.query(
      `INSERT INTO roundtrip.writeback_errors (run_id, task, key, stage, code, message)
       VALUES ($1, 'lost', 'unknown-9', 'push', 'INSERT_OUTCOME_UNKNOWN', 'sent, result never recorded')`,
      [runId],
    );
    const config = await configWith('lost', [{ ...INSERT, name: 'found' }]);
    const refused = await cli([
      'rename-task',
      '--config',
      config,
      '--secrets',
      secrets,
      '--from',
      'lost',
      '--to',
      'found',
      '--yes',
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(
      'roundtrip rename-task: refused: task lost has 1 record whose outcome is unknown',
    );
    // The command to run once they are resolved, with the options given.
    expect(refused.stderr).toContain(
      `Then roundtrip rename-task --from lost --to found --config ${config} --secrets ${secrets} --yes.`,
    );
    expect(await syncedOf('lost')).toBe(2);
    expect(await syncedOf('found')).toBe(0);
  });

  it('status says what forgetting a renamed insert task means, and forget --yes needs --insert-again before it deletes anything', async () => {
    await source('again', 3);
    await syncedRun(INSERT);
    const config = await configWith('again', [{ ...INSERT, name: 'again-leads' }]);
    const connection = ['--config', config, '--secrets', secrets];

    const status = await cli(['status', ...connection]);
    expect(status.stdout).toContain(
      `    nothing outstanding: it inserted 3 records into Lead. Renamed: roundtrip rename-task --from Lead-insert --to NEW --config ${config} --secrets ${secrets} --yes carries its state to the new name (until then the plan of an insert task of that object with no state of its own is refused). Removed: roundtrip forget --task Lead-insert --config ${config} --secrets ${secrets} --yes --insert-again deletes its state, and a task named Lead-insert again, or renamed from it, then inserts each of the 3 records again\n`,
    );
    expect(status.stdout).not.toContain('roundtrip forget --task Lead-insert --yes deletes');

    const refused = await cli(['forget', ...connection, '--task', 'Lead-insert', '--yes']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(
      'roundtrip forget: refused: task Lead-insert, which the config no longer names, inserted 3 records into Lead: with its sync state gone, a task of that object named Lead-insert again, or the task it was renamed to, inserts each of them again',
    );
    expect(refused.stderr).toContain(
      `roundtrip rename-task --from Lead-insert --to NEW --config ${config} --secrets ${secrets} --yes`,
    );
    expect(refused.stderr).toContain('run it again with --insert-again beside --yes.');
    expect(await syncedOf('Lead-insert')).toBe(3);

    // On purpose: forgotten with --insert-again, the renamed task is no longer refused, and inserts
    // the records again, as asked.
    const done = await cli(['forget', ...connection, '--task', 'Lead-insert', '--yes', '--insert-again']);
    expect(done.code).toBe(0);
    expect(await syncedOf('Lead-insert')).toBe(0);
    const run = await cli(['run', ...connection]);
    expect(run.code).toBe(0);
    expect(leadsOf('again')).toBe(6);
  });

  it('warns, without refusing, of an upsert renamed away from its sync state: every record is sent once', async () => {
    await source('warn', 2);
    await syncedRun({ ...LEAD_SRC_UPSERT, name: 'scores-v1' });
    const config = await configWith('warn', [{ ...LEAD_SRC_UPSERT, name: 'scores-v2' }]);
    const validate = await cli(['validate', '--config', config, '--secrets', secrets, '--json']);
    const checks = (
      lastJsonLine(validate.stdout) as { checks: { check: string; ok: boolean; detail: string }[] }
    ).checks;
    const check = checks.find((c) => c.check === 'write-back scores-v2');
    expect(check?.ok).toBe(true);
    expect(check?.detail).toContain(
      'mind: write-back scores-v2 (writeback[0]) has no sync state of its own, while task scores-v1 synced 2 records into Lead (keys from column ext), and the config no longer names it: if scores-v2 is it renamed, its next run sends every record once (an upsert creates none twice). To go on where it was, carry its state over: ' +
        `roundtrip rename-task --from scores-v1 --to scores-v2 --config ${config} --secrets ${secrets} --yes`,
    );
  });
  it('reads the tasks left behind in one query, however many: of another object, with nothing synced, or upserts of the same object (candidates, not inserts)', async () => {
    // Statements the check sends, counted on every client the pool hands out.
    let statements = 0;
    const counting = new WeakSet<object>();
    const count = (client: { query: (...a: unknown[]) => unknown }): void => {
      if (counting.has(client)) return;
      counting.add(client);
      const query = client.query.bind(client);
      client.query = (...a: unknown[]) => {
        statements += 1;
        return query(...a);
      };
    };
    env.pool.on('acquire', count);
    const config = parseConfig({
      name: 'wb-test',
      salesforce: { secret: 'roundtrip/salesforce' },
      postgres: { secret: 'roundtrip/postgres' },
      writeback: [{ ...INSERT, name: 'fresh-insert' }],
    });
    const task = config.writeback[0]!;
    const check = async (): Promise<number> => {
      statements = 0;
      await checkRenamedTask(env.pool, config, task, 'writeback[0]');
      return statements;
    };
    try {
      const alone = await check();
      // Sixty tasks the pipeline claims that the config no longer names: thirty synced Contacts,
      // ten synced nothing (a scope recorded, no record yet), twenty upserted Leads by an external
      // ID (what the check reads: none of them inserted, so nothing is refused).
      const runId = await env.newRun();
      const left = Array.from({ length: 60 }, (_, i) => `left-${String(i).padStart(2, '0')}`);
      await withClient(env.pool, (client) => claimTaskNames(client, 'wb-test', runId, left));
      await env.pool.query(
        `INSERT INTO roundtrip.sync_scope (task, object, key_field, key_column, run_id)
           SELECT t, CASE WHEN i <= 30 THEN 'Contact' ELSE 'Lead' END,
                  CASE WHEN i > 40 THEN 'External_Id__c' END, 'ext', $2
             FROM unnest($1::text[]) WITH ORDINALITY AS u (t, i)`,
        [left, runId],
      );
      await env.pool.query(
        `INSERT INTO roundtrip.sync_state (task, key, salesforce_id, value_hash, run_id)
           SELECT t, 'k-1', '003000000000001AAA', 'h', $2
             FROM unnest($1::text[]) WITH ORDINALITY AS u (t, i) WHERE i <= 30 OR i > 40`,
        [left, runId],
      );
      expect(await check()).toBe(alone);
      await env.pool.query(
        `UPDATE roundtrip.runs SET status = 'succeeded', finished_at = now() WHERE run_id = $1`,
        [runId],
      );
      await env.pool.query(`DELETE FROM roundtrip.task_owners WHERE task LIKE 'left-%'`);
    } finally {
      env.pool.off('acquire', count);
    }
  });
});
