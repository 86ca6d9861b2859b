/**
 * The pool's session settings against a database whose sessions start with others
 * (`ALTER DATABASE … SET`), as a DBA may give it: what the driver and SQL text read, the input
 * order kept, no SET on a database that needs none, and a connection that lost them (as a pooler
 * in transaction mode hands a transaction another server connection).
 */
import { Client } from 'pg';
import {
  applySessionSettings,
  createPool,
  exactTimestampTextSql,
  inTransaction,
  SessionSettingError,
  withClient,
  type PostgresPool,
} from '../../../lambdas/connectors/postgres';
import { createMemoryLogger } from '../../../lambdas/shared/logging';
import { createTestDatabase, type TestDatabase } from '../../support/database';

const OTHER_SETTINGS = {
  DateStyle: 'SQL, DMY',
  TimeZone: 'Asia/Kolkata',
  IntervalStyle: 'iso_8601',
  extra_float_digits: '0',
  bytea_output: 'escape',
};

/** Values of every type whose text a setting changes, and SQL's own text of some. */
const VALUES_SQL = `SELECT '2026-01-02 03:04:05.678+00'::timestamptz AS ts,
                           '2026-01-02 03:04:05'::timestamp AS local_ts,
                           '2026-01-02'::date AS d,
                           ARRAY['2026-01-02 03:04:05+00'::timestamptz, NULL] AS tss,
                           0.1::float8 + 0.2::float8 AS f,
                           '1 day 02:00:00'::interval AS i,
                           '\\x0102'::bytea AS b,
                           ('2026-01-02 03:04:05.678+00'::timestamptz)::text AS ts_text,
                           (0.1::float8 + 0.2::float8)::text AS f_text,
                           ('1 day 02:00:00'::interval)::text AS i_text,
                           ('\\x0102'::bytea)::text AS b_text`;

function expectRightValues(row: Record<string, unknown> | undefined): void {
  expect(row).toMatchObject({
    ts: new Date('2026-01-02T03:04:05.678Z'),
    // pg reads a timestamp without a zone and a date in the process's local time.
    local_ts: new Date(2026, 0, 2, 3, 4, 5),
    d: new Date(2026, 0, 2),
    tss: [new Date('2026-01-02T03:04:05Z'), null],
    f: 0.30000000000000004,
    i: expect.objectContaining({ days: 1, hours: 2 }),
    b: Buffer.from([1, 2]),
    ts_text: '2026-01-02 08:34:05.678+05:30',
    f_text: '0.30000000000000004',
    i_text: '1 day 02:00:00',
    b_text: '\\x0102',
  });
}

describe('session settings', () => {
  let other: TestDatabase;
  let plain: TestDatabase;
  let pool: PostgresPool;
  const logger = createMemoryLogger('debug');

  beforeAll(async () => {
    other = await createTestDatabase('rt_settings', OTHER_SETTINGS);
    plain = await createTestDatabase('rt_settings');
    pool = createPool({ url: other.url }, { ssl: { mode: 'disable' }, max: 2, logger });
  });
  afterAll(async () => {
    await pool?.end();
    await other?.drop();
    await plain?.drop();
  });

  it('reads dates, times, floats, intervals and bytea as on a default database', async () => {
    const { rows } = await pool.query<Record<string, unknown>>(VALUES_SQL);
    expectRightValues(rows[0]);
    // Only the output format of dates is set: the database's day/month order is kept for input.
    const { rows: order } = await pool.query<{ style: string; first: Date; iso: Date }>(
      `SELECT current_setting('DateStyle') AS style, '01/02/2026'::date AS first, '2026-01-02'::date AS iso`,
    );
    expect(order[0]).toEqual({ style: 'ISO, DMY', first: new Date(2026, 1, 1), iso: new Date(2026, 0, 2) });
    expect(
      logger.records.some((e) => e.message === 'PostgreSQL session settings set on the connection'),
    ).toBe(true);
  });

  it('sets nothing on a connection whose database has the settings already', async () => {
    const client = new Client({ connectionString: plain.url });
    await client.connect();
    try {
      expect(await applySessionSettings(client)).toEqual([]);
    } finally {
      await client.end();
    }
    const client2 = new Client({ connectionString: other.url });
    await client2.connect();
    try {
      expect(await applySessionSettings(client2)).toEqual([
        "DateStyle = 'SQL, DMY'",
        "IntervalStyle = 'iso_8601'",
        "extra_float_digits = '0'",
        "bytea_output = 'escape'",
      ]);
    } finally {
      await client2.end();
    }
  });

  it("keeps a timestamp as text that reads back as the same instant under the database's settings", async () => {
    // A connection of the database's settings (SQL, DMY; Asia/Kolkata), none of roundtrip's: a
    // ledger row's `sent` mark read as text may be compared on another connection than its read.
    const client = new Client({ connectionString: other.url });
    await client.connect();
    try {
      const at = '2026-01-02 03:04:05.678912+00';
      const { rows } = await client.query<{ exact: string; plain: string }>(
        `SELECT ${exactTimestampTextSql('t')} AS exact, t::text AS plain FROM (SELECT $1::timestamptz AS t) s`,
        [at],
      );
      expect(rows[0]).toEqual({
        exact: '2026-01-02T03:04:05.678912Z',
        plain: '02/01/2026 08:34:05.678912 IST',
      });
      const { rows: back } = await client.query<{ exact: boolean; plain: boolean }>(
        `SELECT $1::timestamptz = $3::timestamptz AS exact, $2::timestamptz = $3::timestamptz AS plain`,
        [rows[0]?.exact, rows[0]?.plain, at],
      );
      // `::text` does not: PostgreSQL reads IST as Israel's time, not India's.
      expect(back[0]).toEqual({ exact: true, plain: false });
    } finally {
      await client.end();
    }
  });

  describe('on a connection that lost them (a pooler ran the statement on another server connection)', () => {
    // One connection, whose settings each test resets (RESET ALL: the database's, as a server
    // connection of a pooler that never saw the SET has them).
    let one: PostgresPool;
    beforeAll(() => {
      one = createPool({ url: other.url }, { ssl: { mode: 'disable' }, max: 1 });
    });
    afterAll(async () => {
      await one?.end();
    });

    it('a transaction sets them again', async () => {
      await withClient(one, async (client) => {
        await client.query('RESET ALL');
        const row = await inTransaction(client, async () => {
          const { rows } = await client.query<Record<string, unknown>>(VALUES_SQL);
          return rows[0];
        });
        expectRightValues(row);
      });
    });

    it('a date read outside a transaction fails naming DateStyle, its value and the fix', async () => {
      const failed = await withClient(one, async (client) => {
        await client.query('RESET ALL');
        await client.query(`SELECT '2026-01-02 03:04:05.678+00'::timestamptz AS ts`);
      }).catch((err: unknown) => err);
      expect(failed).toBeInstanceOf(SessionSettingError);
      expect((failed as Error).message).toContain(
        'PostgreSQL sent the timestamptz "02/01/2026 08:34:05.678 IST" in DateStyle SQL, not ISO',
      );
      expect((failed as Error).message).toContain(`ALTER DATABASE "${other.name}" SET DateStyle = 'ISO'`);
      // The pool goes on: the connection was dropped, and a new one is given the settings.
      const { rows } = await one.query<Record<string, unknown>>(VALUES_SQL);
      expectRightValues(rows[0]);
    });
  });
});
