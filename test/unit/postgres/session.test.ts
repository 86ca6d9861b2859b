import type { ClientBase } from 'pg';
import {
  applySessionSettings,
  beginTransactionSql,
  SESSION_SETTINGS,
  SessionSettingError,
  sessionTypeParsers,
} from '../../../lambdas/connectors/postgres/session';

const TIMESTAMPTZ = 1184;
const DATE = 1082;
const TIMESTAMPTZ_ARRAY = 1185;

function parser(oid: number): (text: string) => unknown {
  const types = sessionTypeParsers({ database: 'warehouse', user: 'app' });
  return types.getTypeParser(oid, 'text') as (text: string) => unknown;
}

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a throw');
}

/**
 * A client whose settings are `settings`: `SET`s change them, except those named in `ignored`
 * (as a pooler that drops a SET would). Records the statements sent.
 */
function fakeClient(settings: Record<string, string>, ignored: string[] = []) {
  const sent: string[] = [];
  const client = {
    database: 'warehouse',
    user: 'app',
    query: async (sql: string) => {
      sent.push(sql);
      if (sql.startsWith('SELECT')) {
        return { rows: SESSION_SETTINGS.map((s) => ({ name: s.name, value: settings[s.name] })) };
      }
      for (const m of sql.matchAll(/SET (\w+) = '([^']*)'/g)) {
        if (!ignored.includes(m[1] as string)) settings[m[1] as string] = m[2] as string;
      }
      return { rows: [] };
    },
  };
  return { client: client as unknown as ClientBase, sent };
}

const DEFAULTS = {
  DateStyle: 'ISO, MDY',
  IntervalStyle: 'postgres',
  extra_float_digits: '1',
  bytea_output: 'hex',
};

describe('sessionTypeParsers', () => {
  it('reads ISO dates and times as pg does', () => {
    expect(parser(TIMESTAMPTZ)('2026-01-02 03:04:05.5+05:30')).toEqual(new Date('2026-01-01T21:34:05.500Z'));
    expect(parser(TIMESTAMPTZ)('0044-03-15 12:00:00+00:19:32 BC')).toBeInstanceOf(Date);
    expect(parser(TIMESTAMPTZ)('infinity')).toBe(Infinity);
    expect(parser(DATE)('2026-01-02')).toEqual(new Date(2026, 0, 2));
    expect(parser(TIMESTAMPTZ_ARRAY)('{"2026-01-02 03:04:05+00",NULL}')).toEqual([
      new Date('2026-01-02T03:04:05Z'),
      null,
    ]);
  });

  it.each([
    ['02/01/2026 03:04:05 UTC', 'SQL'],
    ['02.01.2026 03:04:05 UTC', 'German'],
    ['Fri Jan 02 03:04:05 2026 UTC', 'Postgres'],
  ])('refuses %s, naming DateStyle %s and the fix', (text, style) => {
    const err = thrown(() => parser(TIMESTAMPTZ)(text));
    expect(err).toBeInstanceOf(SessionSettingError);
    expect(err.message).toContain(`PostgreSQL sent the timestamptz "${text}" in DateStyle ${style}, not ISO`);
    expect(err.message).toContain(`ALTER DATABASE "warehouse" SET DateStyle = 'ISO'`);
    expect(err.message).toContain('ALTER ROLE "app" SET');
  });

  it('refuses a date of another style in an array', () => {
    const err = thrown(() => parser(TIMESTAMPTZ_ARRAY)('{"02/01/2026 03:04:05 UTC"}'));
    expect(err.message).toContain('the timestamptz in an array "02/01/2026 03:04:05 UTC" in DateStyle SQL');
  });
});

describe('applySessionSettings', () => {
  it('sends no SET when the session has the settings (RDS Proxy pins a connection that ran one)', async () => {
    const { client, sent } = fakeClient({ ...DEFAULTS });
    expect(await applySessionSettings(client)).toEqual([]);
    expect(sent).toHaveLength(1);
    expect(beginTransactionSql(client)).toBe('BEGIN');
  });

  it('sets only the settings that differ, and again in each transaction', async () => {
    const settings = { ...DEFAULTS, DateStyle: 'SQL, DMY', extra_float_digits: '0' };
    const { client, sent } = fakeClient(settings);
    expect(await applySessionSettings(client)).toEqual([
      "DateStyle = 'SQL, DMY'",
      "extra_float_digits = '0'",
    ]);
    expect(sent[1]).toBe(`SET DateStyle = 'ISO'; SET extra_float_digits = '3'`);
    expect(settings.DateStyle).toBe('ISO');
    expect(beginTransactionSql(client)).toBe(
      `BEGIN; SET LOCAL DateStyle = 'ISO'; SET LOCAL extra_float_digits = '3'`,
    );
  });

  it('fails naming the setting, its value and the fix when a SET does not take', async () => {
    const { client } = fakeClient({ ...DEFAULTS, IntervalStyle: 'sql_standard' }, ['IntervalStyle']);
    const err = await applySessionSettings(client).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(SessionSettingError);
    expect((err as Error).message).toBe(
      `PostgreSQL session settings: IntervalStyle is 'sql_standard' after roundtrip set IntervalStyle = 'postgres' on the connection; give the database the value roundtrip needs, so that every server connection starts with it: ALTER DATABASE "warehouse" SET IntervalStyle = 'postgres' (or ALTER ROLE "app" SET …), then let the pooler open new server connections`,
    );
  });
});
