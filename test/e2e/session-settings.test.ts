/**
 * The demo pipeline end to end on databases whose sessions start with other settings than
 * PostgreSQL's defaults, as a DBA may give a database (`ALTER DATABASE … SET DateStyle = 'SQL,
 * DMY'`): dates and times in another DateStyle (pg reads only ISO), another TimeZone (SQL and
 * German styles print its abbreviation), intervals in ISO 8601, floats rounded to 15 digits, bytea
 * in the escape format. Every run must score the leads as on a default database, a second run
 * must send nothing (the watermark and runs read back right), and `roundtrip status` must show
 * the runs at the times they started.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { readWatermark, withClient } from '../../lambdas/connectors/postgres';
import { cli, writeExampleConfig } from '../support/cli';
import { expectedScores } from './support/expected-scores';
import { exampleConfig, startWorld, type E2eWorld } from './support/harness';

const LEADS = 300;
const CUSTOMERS = 150;

describe.each<Record<string, string>>([
  { DateStyle: 'SQL, DMY' },
  { DateStyle: 'German, DMY', TimeZone: 'Asia/Kolkata' },
  {
    DateStyle: 'Postgres, MDY',
    TimeZone: 'America/New_York',
    IntervalStyle: 'iso_8601',
    extra_float_digits: '0',
    bytea_output: 'escape',
  },
])('the demo pipeline on a database whose sessions start with %j', (settings) => {
  let world: E2eWorld;
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rt-settings-'));
    world = await startWorld({
      leads: LEADS,
      customers: CUSTOMERS,
      config: await exampleConfig(),
      databaseSettings: settings,
    });
  });
  afterAll(async () => {
    await world?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('gives the database the settings (what a session on it starts with)', async () => {
    const client = new Client({ connectionString: world.databaseUrl });
    await client.connect();
    try {
      for (const [name, value] of Object.entries(settings)) {
        const { rows } = await client.query<{ v: string }>(`SELECT current_setting($1) AS v`, [name]);
        expect(rows[0]?.v).toBe(value);
      }
    } finally {
      await client.end();
    }
  });

  it('scores every lead, sends nothing on a rerun, and status shows the runs', async () => {
    const first = await world.run();
    expect(first.execution).toMatchObject({ status: 'succeeded' });
    expect(first.summary.status).toBe('succeeded');
    const expected = expectedScores(world.env.leads, world.env.customers).map((s) => s ?? null);
    expect(world.scores()).toEqual(expected);
    const scored = expected.filter((s) => s !== null).length;
    expect(first.summary.tasks.find((t) => t.kind === 'writeback')).toMatchObject({
      planned: scored,
      written: scored,
      failed: 0,
    });

    const writes = world.env.salesforce.calls.writes().length;
    const second = await world.run();
    expect(second.summary.status).toBe('succeeded');
    expect(world.env.salesforce.calls.writes().length).toBe(writes);
    expect(second.summary.tasks.find((t) => t.kind === 'writeback')).toMatchObject({
      planned: 0,
      written: 0,
    });

    // The Salesforce extract's watermark, read back as the newest SystemModstamp it loaded.
    const newest = Math.max(
      ...world.env.leadIds.map((id) =>
        Date.parse(String(world.env.salesforce.store.get(id)?.SystemModstamp)),
      ),
    );
    // At the newest, or capped below it by the time of Salesforce's answer to the count (its Date
    // header, to the second: a record changed within the second of the count is read again by the
    // next run). A date read in another DateStyle would be null, or days off (day and month).
    const watermark = await withClient(world.local.pool, (client) => readWatermark(client, 'Lead'));
    const behind = newest - (watermark?.watermark?.getTime() ?? Number.NaN);
    expect(behind).toBeGreaterThanOrEqual(0);
    expect(behind).toBeLessThan(1000);

    // The runs as stored, read by `roundtrip status` through its own pool.
    const stored = [second.stored, first.stored];
    expect(stored.map((run) => run?.startedAt)).toEqual([expect.any(Date), expect.any(Date)]);
    const config = path.join(dir, 'roundtrip.config.json');
    await writeExampleConfig(config);
    const status = await cli(['status', '--config', config, '--database-url', world.databaseUrl, '--json']);
    expect(status.stderr).toBe('');
    expect(status.code).toBe(0);
    const shown = JSON.parse(status.stdout.trim().split('\n').pop() ?? '{}') as {
      runs: { runId: string; status: string; startedAt: string }[];
    };
    expect(shown.runs.map((r) => ({ runId: r.runId, status: r.status, startedAt: r.startedAt }))).toEqual(
      stored.map((run) => ({
        runId: run?.runId,
        status: 'succeeded',
        startedAt: run?.startedAt.toISOString(),
      })),
    );
    // Started when the test ran them, not a date read with day and month swapped.
    for (const run of shown.runs) {
      expect(Math.abs(Date.parse(run.startedAt) - Date.now())).toBeLessThan(10 * 60_000);
    }
  });
});
