/**
 * `roundtrip errors --run` of a run that died between sending records and recording their outcome:
 * the records it left `sent` in the ledger (its figures' `outcomeUnknown`) are listed apart from
 * those Salesforce refused, each with its key, Salesforce Id, how it went out (a call, or its Bulk
 * job), when, and what will become of it: the next plan collects the job, looks an insert up by
 * its external ID, or sends an update's values again once the call is certainly over; a keyless
 * insert is recorded by hand with `roundtrip resolve`.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { taskName } from '../../../lambdas/config';
import type { CoreDeps } from '../../../lambdas/core/deps';
import { planWriteback, pushWriteback, reportRun } from '../../../lambdas/core/writeback';
import { cli } from '../../support/cli';
import {
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
/** Insert of Lead keyed by External_Id__c, through Collections calls. */
const KEYED = { ...LEAD_SRC_UPSERT, name: 'Lead-keyed', mode: 'insert' as const };
/** The same through Bulk jobs, from 5 records. */
const BULK_KEYED = { ...KEYED, name: 'Lead-bulk-insert', bulkThreshold: 5 };
// No `name`: the task is known by its default one, Lead-update.
const UPDATE = { ...SCORE_UPDATE };
const UPDATE_NAME = 'Lead-update';

const WRITEBACK = [KEYLESS, KEYED, BULK_KEYED, UPDATE];

function lastJsonLine(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1] as string) as Record<string, unknown>;
}

describe('roundtrip errors: the records a failed run sent and never learned the outcome of', () => {
  let env: WritebackEnv;
  let deps: CoreDeps;
  let dir: string;
  let connection: string[];
  let dead: string;
  /**
   * The options `--config file` and `--database-url` as the commands errors names repeat them (the
   * URL's password as ***, quoted).
   */
  const given = (file: string): string => {
    const url = new URL(env.db.url);
    url.password = '***';
    return ` --config ${file} --database-url '${url.toString()}'`;
  };
  let updateIds: string[];

  beforeAll(async () => {
    env = await startWritebackEnv();
    deps = env.deps({ writeback: WRITEBACK });
    await env.pool.query(`CREATE TABLE lead_src (ext text, last_name text, company text, score integer)`);
    await env.pool.query(`CREATE TABLE lead_scores ("Id" text, score integer)`);
    dir = await mkdtemp(path.join(os.tmpdir(), 'roundtrip-errors-sent-'));
    const configFile = await env.writeConfigFile(path.join(dir, 'roundtrip.config.json'), {
      writeback: WRITEBACK,
    });
    connection = ['--config', configFile, '--database-url', env.db.url];

    const source = async (prefix: string, n: number): Promise<void> => {
      await env.pool.query('DELETE FROM lead_src');
      await env.pool.query(
        `INSERT INTO lead_src SELECT $1 || '-' || i, $1 || ' ' || i, 'Initech', i FROM generate_series(1, $2::int) AS i`,
        [prefix, n],
      );
    };
    updateIds = env.sf.store.seed(
      'Lead',
      [1, 2].map((i) => ({ LastName: `Scored ${i}`, Company: 'Initech' })),
    );
    await env.pool.query(
      `INSERT INTO lead_scores SELECT id, 40 + i FROM unnest($1::text[]) WITH ORDINALITY AS u(id, i)`,
      [updateIds],
    );
    // One run sends through each task and dies before recording any outcome, then is reported
    // failed as the state machine does once the step's retries are spent.
    dead = await env.newRun();
    await source('kl', 2);
    await planThenCrashInPush(env, deps, dead, KEYLESS.name);
    await source('ky', 2);
    await planThenCrashInPush(env, deps, dead, KEYED.name);
    await source('bk', 6);
    await planWriteback(deps, { runId: dead, task: BULK_KEYED.name });
    expect(await pushWriteback(deps, { runId: dead, task: BULK_KEYED.name })).toMatchObject({
      status: 'bulk-pending',
    });
    await planThenCrashInPush(env, deps, dead, UPDATE_NAME);
    await reportRun(deps, { runId: dead, error: { Error: 'States.Timeout', Cause: 'Task timed out' } });
  });
  afterAll(async () => {
    await env?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('lists them apart from the refused ones, each with what will become of it (text and --json)', async () => {
    // The run's figures count them as outcome unknown: 2 + 2 + 6 + 2.
    const unknown = await Promise.all(
      WRITEBACK.map(async (t) => (await runFigures(env, dead, taskName(t))).outcomeUnknown),
    );
    expect(unknown).toEqual([2, 2, 6, 2]);
    const { rows: jobs } = await env.pool.query<{ job_id: string }>(
      `SELECT job_id FROM roundtrip.writeback_jobs WHERE run_id = $1 AND task = $2`,
      [dead, BULK_KEYED.name],
    );
    const job = jobs[0]?.job_id as string;

    const json = await cli(['errors', ...connection, '--run', dead, '--json']);
    expect(json.code).toBe(0);
    const listed = lastJsonLine(json.stdout);
    expect(listed).toMatchObject({ runId: dead, status: 'failed', total: 0, outcomeUnknown: 12 });
    expect(listed.sentCounts).toEqual([
      { task: BULK_KEYED.name, sentBy: 'job', records: 6 },
      { task: KEYED.name, sentBy: 'call', records: 2 },
      { task: KEYLESS.name, sentBy: 'call', records: 2 },
      { task: UPDATE_NAME, sentBy: 'call', records: 2 },
    ]);
    const records = listed.sentRecords as Record<string, unknown>[];
    expect(records.map((r) => [r.task, r.key, r.salesforceId, r.sentBy, r.jobId])).toEqual([
      ...[1, 2, 3, 4, 5, 6].map((i) => [BULK_KEYED.name, `bk-${i}`, null, 'job', job]),
      [KEYED.name, 'ky-1', null, 'call', null],
      [KEYED.name, 'ky-2', null, 'call', null],
      [KEYLESS.name, 'kl-1', null, 'call', null],
      [KEYLESS.name, 'kl-2', null, 'call', null],
      [UPDATE_NAME, updateIds[0], updateIds[0], 'call', null],
      [UPDATE_NAME, updateIds[1], updateIds[1], 'call', null],
    ]);
    const byKey = new Map(records.map((r) => [r.key, r]));
    expect(byKey.get('bk-1')?.next).toBe(
      `the next plan of the task asks Salesforce about Bulk job ${job} (closing it first if it was left open) and, once it is finished, collects its results into this run: a record created is recorded, one refused fails here`,
    );
    // Sent just now: the call may still be running in Salesforce for 11 minutes.
    const { rows: sentAt } = await env.pool.query<{ at: Date }>(
      `SELECT updated_at AS at FROM roundtrip.writeback_plans WHERE run_id = $1 AND task = $2 AND key = 'ky-1'`,
      [dead, KEYED.name],
    );
    const settled = new Date((sentAt[0]?.at as Date).getTime() + 11 * 60_000)
      .toISOString()
      .replace('T', ' ')
      .slice(0, 19);
    expect(byKey.get('ky-1')?.sentAt).toBe((sentAt[0]?.at as Date).toISOString());
    expect(byKey.get('ky-1')?.next).toBe(
      `the first plan of the task from ${settled} UTC on (11 minutes after the send, when Salesforce can no longer be running the call) looks the key up by External_Id__c: a record created since the send is recorded, else the key is inserted again`,
    );
    // The command carries the --config and --database-url given to errors, to be pasted as it is.
    expect(byKey.get('kl-1')?.next).toBe(
      `without an external-ID key no plan can look it up: find the record in Salesforce, then record what you found with roundtrip resolve --task Lead-keyless${given(connection[1]!)} --key kl-1 --inserted <the record's Id> (or --not-inserted)`,
    );
    expect(byKey.get(updateIds[0])?.next).toMatch(
      /^the first plan of the task from \S+ \S+ UTC on \(11 minutes after the send, when Salesforce can no longer be running the call\) fails it here with OUTCOME_UNKNOWN \(Salesforce may hold these values or the ones before\) and sends the key's current values again$/,
    );

    const text = await cli(['errors', ...connection, '--run', dead]);
    expect(text.code).toBe(0);
    const lines = text.stdout.trim().split('\n');
    expect(lines[0]).toMatch(
      new RegExp(
        `^run ${dead} \\(failed, started .* UTC\\): 0 rejected before sending, 0 failed when sent; 12 sent whose outcome was never recorded$`,
      ),
    );
    expect(lines[1]).toBe('none refused; the run failed: States.Timeout: Task timed out');
    expect(lines[3]).toBe(
      "sent, outcome never recorded (the run ended between sending and recording; the next plan of the task resolves them, a real run's, not a dry run's): 12",
    );
    expect(lines[4]).toMatch(/^task +key +Salesforce Id +sent by +sent at \(UTC\) +what happens next$/);
    expect(lines[5]).toMatch(
      new RegExp(`^Lead-bulk-insert +bk-1 +— +Bulk job ${job} +\\S+ \\S+ +the next plan`),
    );
    expect(lines.find((l) => l.startsWith('Lead-keyless ') && l.includes(' kl-2 '))).toContain(
      `without an external-ID key no plan can look it up: find the record in Salesforce, then record what you found with roundtrip resolve --task Lead-keyless${given(connection[1]!)} --key kl-2 --inserted`,
    );
    // The URL's password is not shown: a line after the table says to put it back.
    expect(lines[5 + 12]).toBe('Put the password of your --database-url back where the commands show ***.');
    expect(lines).toHaveLength(5 + 12 + 1);
    // Pasted into a shell, the password put back and the outcome given, it is a command of this
    // pipeline and database: it reads the key's send from the run's ledger (and refuses it for now,
    // as the call may still be running: a dry run, it would record nothing anyway).
    const shown = lines.find((l) => l.startsWith('Lead-keyless ') && l.includes(' kl-2 '))!;
    const printed = shown.slice(shown.indexOf('roundtrip resolve '), shown.indexOf(' --inserted'));
    const password = decodeURIComponent(new URL(env.db.url).password);
    const { stdout: words } = await promisify(execFile)('sh', [
      '-c',
      `printf '%s\\n' ${printed.replace('***', password).replace(/^roundtrip /, '')}`,
    ]);
    const pasted = await cli([...words.trimEnd().split('\n'), '--not-inserted', '--dry-run']);
    expect(pasted.stderr).toContain(
      `key kl-2 was sent by run ${dead} in a Collections call less than 11 minutes ago: Salesforce may still be running the call`,
    );
    expect(pasted.code).toBe(2);

    // Bounded as the refused records are: --limit.
    const limited = (await cli(['errors', ...connection, '--run', dead, '--limit', '3'])).stdout
      .trim()
      .split('\n');
    expect(limited.slice(5)).toEqual([
      expect.stringMatching(/^Lead-bulk-insert +bk-1 /),
      expect.stringMatching(/^Lead-bulk-insert +bk-2 /),
      expect.stringMatching(/^Lead-bulk-insert +bk-3 /),
      '',
      '3 of 12 sent records shown: --limit N for more',
    ]);
    // Of one task; and a --code (they have none) lists none of them.
    expect(
      lastJsonLine(
        (await cli(['errors', ...connection, '--run', dead, '--task', KEYLESS.name, '--json'])).stdout,
      ),
    ).toMatchObject({ outcomeUnknown: 2, sentCounts: [{ task: KEYLESS.name, sentBy: 'call', records: 2 }] });
    expect(
      lastJsonLine(
        (await cli(['errors', ...connection, '--run', dead, '--code', 'OUTCOME_UNKNOWN', '--json'])).stdout,
      ),
    ).toMatchObject({ outcomeUnknown: 0, sentRecords: [] });
  });

  it('of a task the config no longer names: says no plan resolves them, and what does', async () => {
    const file = await env.writeConfigFile(path.join(dir, 'update-only.config.json'), {
      writeback: [UPDATE],
    });
    const listed = lastJsonLine(
      (await cli(['errors', '--config', file, '--database-url', env.db.url, '--run', dead, '--json'])).stdout,
    );
    const next = new Map((listed.sentRecords as Record<string, unknown>[]).map((r) => [r.key, r.next]));
    expect(next.get('kl-1')).toBe(
      `the task is not in the config, so no plan resolves it: find the record in Salesforce, then record what you found with roundtrip resolve --task Lead-keyless${given(file)} --key kl-1 --without-look-up --inserted <the record's Id> (or --not-inserted)`,
    );
    expect(next.get('bk-1')).toMatch(
      new RegExp(
        `^the task is not in the config, so no plan resolves it: roundtrip resolve --task Lead-bulk-insert${given(file).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} --collect-jobs collects Bulk job \\w+ once Salesforce has finished it$`,
      ),
    );
    // The update task is still named: its plan resolves its records.
    expect(next.get(updateIds[0])).toMatch(/^the first plan of the task from /);
  });

  it('once the call is over: the next plan resolves them (no time given), and a resolved record is no longer listed', async () => {
    await outlastCallTimeLimit(env, dead);
    const listed = lastJsonLine((await cli(['errors', ...connection, '--run', dead, '--json'])).stdout);
    const records = listed.sentRecords as Record<string, unknown>[];
    expect(records.find((r) => r.key === 'ky-2')?.next).toBe(
      'the next plan of the task looks the key up by External_Id__c: a record created since the send is recorded, else the key is inserted again',
    );
    // The next plan of the keyed task looks its keys up, finds both created, records them.
    await planWriteback(deps, { runId: await env.newRun(), task: KEYED.name });
    const after = lastJsonLine((await cli(['errors', ...connection, '--run', dead, '--json'])).stdout);
    expect(after.outcomeUnknown).toBe(10);
    expect((after.sentRecords as Record<string, unknown>[]).map((r) => r.key)).not.toContain('ky-2');
  });

  it("refuses a run of another pipeline in the same database, saying whose it is: its records are not this pipeline's", async () => {
    const file = await env.writeConfigFile(path.join(dir, 'other.config.json'), {
      name: 'other-pipeline',
      writeback: WRITEBACK,
    });
    for (const format of [[], ['--json'], ['--csv']]) {
      const result = await cli([
        'errors',
        '--config',
        file,
        '--database-url',
        env.db.url,
        '--run',
        dead,
        ...format,
      ]);
      // Not wb-test's records listed as `"pipeline": "other-pipeline"`.
      expect(result).toMatchObject({ code: 2, stdout: '' });
      expect(result.stderr).toContain(
        `--run: pipeline other-pipeline has no run ${dead} (it is a run of pipeline wb-test: give that pipeline's config to list its records)`,
      );
    }
    // A run no pipeline has, as status --end-run says it.
    const unknown = await cli(['errors', ...connection, '--run', 'no-such-run']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain(
      '--run: pipeline wb-test has no run no-such-run (roundtrip status lists its runs)',
    );
  });
});
