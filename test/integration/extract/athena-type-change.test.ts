/**
 * An Athena column whose type changes between runs (a bad value turns a CSV table's date column
 * into varchar, and taking it out turns it back): queries run by the Athena emulator (DuckDB)
 * through the real AWS SDK clients, loaded into the real PostgreSQL.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Client } from 'pg';
import { AthenaClient } from '@aws-sdk/client-athena';
import { S3Client } from '@aws-sdk/client-s3';
import { athenaClientConfig, s3ClientConfig } from '../../../emulators/athena';
import { createAthenaConnector } from '../../../lambdas/connectors/athena';
import { runExtract, type CoreDeps } from '../../../lambdas/core';
import type { ExtractTaskInput } from '../../../lambdas/config';
import { TerminalError } from '../../../lambdas/shared/errors';
import { ATHENA_OUTPUT, startExtractHarness, type ExtractHarness } from './harness';

const ISO = ['email,signed_up_on', 'a@x.test,2026-04-01', 'b@x.test,2026-04-02'].join('\n');
const WITH_BAD_ROW = `${ISO}\nc@x.test,05/04/2026`;
const TIMESTAMPS = [
  'email,signed_up_on',
  'a@x.test,2026-04-01 10:00:00',
  'b@x.test,2026-04-02 11:30:00',
].join('\n');

describe('Athena extract: a column whose type changes between runs', () => {
  let h: ExtractHarness;

  beforeAll(async () => {
    h = await startExtractHarness();
    await mkdir(path.join(h.dataDir, 'events'));
  });
  afterAll(() => h.close());

  const tasks = (): ExtractTaskInput[] => [
    { from: 'athena', name: 'signups', query: 'SELECT * FROM events.signups', table: 'signups' },
    {
      from: 'athena',
      name: 'signups_keyed',
      query: 'SELECT * FROM events.signups',
      table: 'signups_keyed',
      key: ['email'],
    },
  ];
  const deps = (only?: string): CoreDeps =>
    h.deps(h.config(tasks().filter((t) => only === undefined || t.name === only)));
  /**
   * The table's file and its column types (a sidecar schema, as a Glue table declares them:
   * DuckDB's sniffer fails on a date column holding two formats rather than reading it as text).
   */
  const setData = async (csv: string, type = 'DATE'): Promise<void> => {
    await writeFile(path.join(h.dataDir, 'events/signups.csv'), csv);
    await writeFile(
      path.join(h.dataDir, 'events/signups.schema.json'),
      JSON.stringify({ columns: { email: 'VARCHAR', signed_up_on: type } }),
    );
  };
  const columnType = async (table: string, column = 'signed_up_on'): Promise<string | undefined> =>
    (
      await h.rows<{ type: string }>(
        `SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute
          WHERE attrelid = $1::regclass AND attname = $2 AND NOT attisdropped`,
        [table, column],
      )
    )[0]?.type;
  const values = (table: string): Promise<{ email: string; signed_up_on: string }[]> =>
    h.rows(`SELECT email, signed_up_on::text AS signed_up_on FROM ${table} ORDER BY email`);
  const oid = async (table: string): Promise<number> =>
    (await h.rows<{ oid: number }>('SELECT $1::regclass::oid::int AS oid', [table]))[0]?.oid ?? 0;

  it('widens a keyed table’s date column to text when the Athena column becomes varchar, the old dates as Athena writes them, and keeps text when it goes back to date', async () => {
    await setData(ISO);
    await runExtract({ input: {} }, deps('signups_keyed'));
    expect(await columnType('signups_keyed')).toBe('date');

    await setData(WITH_BAD_ROW, 'VARCHAR');
    const widened = await runExtract({ input: {} }, deps('signups_keyed'));
    expect(await columnType('signups_keyed')).toBe('text');
    // The old rows read `2026-04-01` as text, as Athena now sends them: nothing is updated.
    expect(widened.athena.signups_keyed).toMatchObject({
      refresh: 'merge',
      rows: 3,
      inserted: 1,
      updated: 0,
    });
    expect(await values('signups_keyed')).toEqual([
      { email: 'a@x.test', signed_up_on: '2026-04-01' },
      { email: 'b@x.test', signed_up_on: '2026-04-02' },
      { email: 'c@x.test', signed_up_on: '05/04/2026' },
    ]);

    // The bad row fixed in Athena: the column is date again there; the table keeps text (its
    // rows are kept by a merge, and c's value is no date) and the run says so.
    await setData(`${ISO}\nc@x.test,2026-05-04`);
    h.logger.records.length = 0;
    const back = await runExtract({ input: {} }, deps('signups_keyed'));
    expect(await columnType('signups_keyed')).toBe('text');
    expect(back.athena.signups_keyed).toMatchObject({ rows: 3, inserted: 0, updated: 1 });
    expect(await values('signups_keyed')).toEqual([
      { email: 'a@x.test', signed_up_on: '2026-04-01' },
      { email: 'b@x.test', signed_up_on: '2026-04-02' },
      { email: 'c@x.test', signed_up_on: '2026-05-04' },
    ]);
    expect(h.logger.records).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        message: 'Kept columns wider than the source declares',
        attributes: expect.objectContaining({
          keptWider: [{ column: 'signed_up_on', from: 'text', to: 'date' }],
        }) as unknown,
      }),
    );
  });

  it('gives a keyless (replaced) table the result’s types as they are, in one swap readers see whole, keeping its OID and the views on other columns', async () => {
    await setData(ISO);
    await runExtract({ input: {} }, deps('signups'));
    expect(await columnType('signups')).toBe('date');
    const before = await oid('signups');
    await h.rows('CREATE VIEW signup_emails AS SELECT email FROM signups');

    // A reader inside a transaction holds the table: the run's ALTER waits for it, and meanwhile
    // the reader still sees the old rows, with their old type.
    await setData(WITH_BAD_ROW, 'VARCHAR');
    const reader = new Client({ connectionString: h.db.url });
    await reader.connect();
    try {
      await reader.query('BEGIN');
      await reader.query('SELECT count(*) FROM signups');
      const run = runExtract({ input: {} }, deps('signups'));
      let waiting = false;
      for (let i = 0; i < 600 && !waiting; i += 1) {
        const { rows } = await h.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'ALTER TABLE%'`,
        );
        waiting = (rows[0]?.n ?? 0) > 0;
        if (!waiting) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(waiting).toBe(true);
      const during = await reader.query<{ email: string; signed_up_on: string }>(
        "SELECT email, to_char(signed_up_on, 'YYYY-MM-DD') AS signed_up_on FROM signups ORDER BY email",
      );
      expect(during.rows).toEqual([
        { email: 'a@x.test', signed_up_on: '2026-04-01' },
        { email: 'b@x.test', signed_up_on: '2026-04-02' },
      ]);
      await reader.query('COMMIT');
      const result = await run;
      expect(result.athena.signups).toMatchObject({ refresh: 'swap', rows: 3, inserted: 3, deleted: 2 });
    } finally {
      await reader.end();
    }
    expect(await columnType('signups')).toBe('text');
    expect(await values('signups')).toEqual([
      { email: 'a@x.test', signed_up_on: '2026-04-01' },
      { email: 'b@x.test', signed_up_on: '2026-04-02' },
      { email: 'c@x.test', signed_up_on: '05/04/2026' },
    ]);

    // The bad row removed: date again, though the table held text (a `USING` cast of
    // '05/04/2026' would have failed, and it is not needed: the rows are replaced).
    await setData(ISO);
    const back = await runExtract({ input: {} }, deps('signups'));
    expect(back.athena.signups).toMatchObject({ rows: 2, inserted: 2, deleted: 3 });
    expect(await columnType('signups')).toBe('date');
    expect(await values('signups')).toEqual([
      { email: 'a@x.test', signed_up_on: '2026-04-01' },
      { email: 'b@x.test', signed_up_on: '2026-04-02' },
    ]);
    expect(await oid('signups')).toBe(before);
    expect(await h.rows('SELECT email FROM signup_emails ORDER BY email')).toEqual([
      { email: 'a@x.test' },
      { email: 'b@x.test' },
    ]);
  });

  it('reads the result file before it adds a column the result gained: readers are not locked out of the table while it downloads', async () => {
    await h.rows('DROP TABLE IF EXISTS signups CASCADE');
    await setData(ISO);
    await runExtract({ input: {} }, deps('signups'));
    await writeFile(
      path.join(h.dataDir, 'events/signups.csv'),
      ['email,signed_up_on,plan', 'a@x.test,2026-04-01,pro', 'b@x.test,2026-04-02,free'].join('\n'),
    );
    await writeFile(
      path.join(h.dataDir, 'events/signups.schema.json'),
      JSON.stringify({ columns: { email: 'VARCHAR', signed_up_on: 'DATE', plan: 'VARCHAR' } }),
    );
    // The load's S3 reads wait at a gate (the real client, over HTTP, once it opens): the load is
    // held where it reads the result file, as it is while a large one downloads.
    const athenaClient = new AthenaClient({ ...athenaClientConfig(h.athenaEmulator), maxAttempts: 1 });
    const s3 = new S3Client({ ...s3ClientConfig(h.athenaEmulator), maxAttempts: 1 });
    let reached = (): void => undefined;
    const atRead = new Promise<void>((resolve) => (reached = resolve));
    let open = (): void => undefined;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const gated = {
      send: async (command: unknown) => {
        reached();
        await gate;
        return s3.send(command as never);
      },
    } as unknown as S3Client;
    const d: CoreDeps = {
      ...deps('signups'),
      athena: createAthenaConnector({
        athena: athenaClient,
        s3: gated,
        logger: h.logger,
        workgroup: 'primary',
        database: 'marketing',
        outputLocation: ATHENA_OUTPUT,
      }),
    };
    const reader = new Client({ connectionString: h.db.url });
    await reader.connect();
    try {
      const run = runExtract({ input: {} }, d);
      await atRead;
      // No lock on the table yet (an ALTER TABLE's would keep every reader waiting for the
      // download), and a reader sees the old rows at once (lock_timeout: fail, not hang).
      const locks = await h.rows<{ mode: string }>(
        "SELECT mode FROM pg_locks WHERE relation = 'public.signups'::regclass AND pid <> pg_backend_pid()",
      );
      expect(locks).toEqual([]);
      await reader.query("SET lock_timeout = '5s'");
      const during = await reader.query('SELECT email FROM signups ORDER BY email');
      expect(during.rows).toEqual([{ email: 'a@x.test' }, { email: 'b@x.test' }]);
      open();
      expect((await run).athena.signups).toMatchObject({ refresh: 'swap', rows: 2, inserted: 2, deleted: 2 });
    } finally {
      open();
      await reader.end();
      athenaClient.destroy();
      s3.destroy();
    }
    expect(await h.rows('SELECT email, plan FROM signups ORDER BY email')).toEqual([
      { email: 'a@x.test', plan: 'pro' },
      { email: 'b@x.test', plan: 'free' },
    ]);
  });

  it('refuses a type change a view stands in the way of, naming the task, column, types, view and the way out, and leaves the table as it was', async () => {
    await h.rows('DROP TABLE IF EXISTS signups, signups_keyed CASCADE');
    await setData(ISO);
    await runExtract({ input: {} }, deps());
    await h.rows('CREATE VIEW recent_signups AS SELECT email, signed_up_on FROM signups');
    await h.rows('CREATE VIEW recent_keyed AS SELECT email, signed_up_on FROM signups_keyed');
    try {
      await setData(WITH_BAD_ROW, 'VARCHAR');
      for (const [task, view] of [
        ['signups', 'recent_signups'],
        ['signups_keyed', 'recent_keyed'],
      ] as const) {
        const err = await runExtract({ input: {} }, deps(task)).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(TerminalError);
        expect((err as Error).message).toContain(
          `Extract task ${task}: cannot change column "signed_up_on" of table "public"."${task}" from date to text: ` +
            `view "public"."${view}" uses it, and PostgreSQL cannot change the type of a column a view uses; ` +
            `drop the view and create it again after this load, or have the source send date again ` +
            `(CAST("signed_up_on" AS DATE) in the task's query)`,
        );
        expect(await columnType(task)).toBe('date');
        expect(await values(task)).toEqual([
          { email: 'a@x.test', signed_up_on: '2026-04-01' },
          { email: 'b@x.test', signed_up_on: '2026-04-02' },
        ]);
      }
    } finally {
      await h.rows('DROP VIEW recent_signups, recent_keyed');
    }
  });

  it('refuses a keyed table’s change of meaning (date → timestamp) naming the task, column, both types and the ways out', async () => {
    await h.rows('DROP TABLE IF EXISTS signups_keyed');
    await setData(ISO);
    await runExtract({ input: {} }, deps('signups_keyed'));
    await setData(TIMESTAMPS, 'TIMESTAMP');
    const err = await runExtract({ input: {} }, deps('signups_keyed')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TerminalError);
    expect((err as Error).message).toContain(
      'Extract task signups_keyed: cannot change column "signed_up_on" of table "public"."signups_keyed" ' +
        'from date to timestamp without time zone: no lossless conversion exists; have the source send date again ' +
        `(CAST("signed_up_on" AS DATE) in the task's query), convert the column yourself if every value converts ` +
        '(ALTER TABLE "public"."signups_keyed" ALTER COLUMN "signed_up_on" TYPE timestamp without time zone ' +
        'USING "signed_up_on"::timestamp without time zone), or load into a new table',
    );
    expect(await columnType('signups_keyed')).toBe('date');
    // The keyless task takes the timestamps as they are.
    await runExtract({ input: {} }, deps('signups'));
    expect(await columnType('signups')).toBe('timestamp without time zone');
  });
});
