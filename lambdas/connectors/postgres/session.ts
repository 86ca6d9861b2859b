/**
 * The session settings under which roundtrip reads PostgreSQL's text: the driver (pg parses a
 * `date`, `timestamp` or `timestamptz` from its ISO text only, and gives null for any other
 * DateStyle's), and the SQL that turns values into text (`::text`, `to_jsonb`).
 *
 * A database or role may start its sessions with other ones (`ALTER DATABASE … SET DateStyle =
 * 'SQL, DMY'`), so every new connection of the pool reads what it got and sets those that differ
 * (`SET`, only when needed: RDS Proxy pins a connection on which a `SET` ran), and every
 * transaction of {@link inTransaction} sets them again with `SET LOCAL`: PgBouncer in transaction
 * mode hands each transaction a server connection of its choosing, and restores on it only the
 * settings it tracks (DateStyle, TimeZone, and IntervalStyle from 1.20), not `extra_float_digits`
 * or `bytea_output`. Startup `options` (`-c DateStyle=ISO`) are not used: PgBouncer refuses them unless told to
 * ignore them.
 * A date or time PostgreSQL still sends in another style fails its query with a
 * {@link SessionSettingError} naming the setting, its value and the fix, never a null or a wrong
 * date. See docs/postgres.md, "Session settings".
 */
import type { ClientBase, CustomTypesConfig } from 'pg';
import { types } from 'pg';
import { ERROR_NAMES, TerminalError } from '../../shared/errors';

/** One setting roundtrip needs a session to have. */
export interface SessionSetting {
  /** The setting's name, as `SET` takes it. */
  readonly name: string;
  /** The value roundtrip sets when the session's does not fit. */
  readonly value: string;
  /** Whether the session's value (`current_setting`) gives the text roundtrip reads. */
  readonly fits: (current: string) => boolean;
}

/**
 * - `DateStyle` ISO: `2026-04-05 10:00:00.5+00`, the only text pg parses. Only the output format
 *   is set: the day/month order that input such as `01/02/2026` is read with is kept.
 * - `IntervalStyle` postgres: `1 day 02:00:00`, the text pg parses an interval from.
 * - `extra_float_digits` 1 or more: a float's shortest text that reads back exactly (PostgreSQL
 *   12+); 0 or less rounds it to 15 significant digits or fewer, in the driver and in `::text`.
 * - `bytea_output` hex: the text the plan reads a bytea column as when a text field takes it.
 *
 * `TimeZone` is left as it is: a timestamptz's ISO text carries its UTC offset, and the SQL that
 * needs a zone names it (`AT TIME ZONE 'UTC'`, the write-back plan's `SET LOCAL TimeZone`).
 */
export const SESSION_SETTINGS: readonly SessionSetting[] = [
  { name: 'DateStyle', value: 'ISO', fits: (v) => /^\s*ISO\b/i.test(v) },
  { name: 'IntervalStyle', value: 'postgres', fits: (v) => v.trim().toLowerCase() === 'postgres' },
  { name: 'extra_float_digits', value: '3', fits: (v) => Number(v) >= 1 },
  { name: 'bytea_output', value: 'hex', fits: (v) => v.trim().toLowerCase() === 'hex' },
];

/** A session setting that does not give the text roundtrip reads, and cannot be set. */
export class SessionSettingError extends TerminalError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = ERROR_NAMES.sessionSetting;
  }
}

/** The settings that differ from {@link SESSION_SETTINGS} on each client, as its `SET LOCAL`s. */
const localSettings = new WeakMap<ClientBase, string>();

function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** `SET` (or `SET LOCAL`) statements giving the settings their values, `;`-separated. */
function setStatements(settings: readonly SessionSetting[], local: boolean): string {
  return settings.map((s) => `SET ${local ? 'LOCAL ' : ''}${s.name} = ${quoteLiteral(s.value)}`).join('; ');
}

async function currentSettings(client: ClientBase): Promise<Map<string, string>> {
  const { rows } = await client.query<{ name: string; value: string }>(
    `SELECT s.name, current_setting(s.name) AS value FROM unnest($1::text[]) AS s(name)`,
    [SESSION_SETTINGS.map((s) => s.name)],
  );
  return new Map(rows.map((r) => [r.name, r.value]));
}

/**
 * Gives a new connection the {@link SESSION_SETTINGS} it lacks (the pool's `onConnect`; a
 * connection made outside the pool calls it itself): one query reads them, and only those that
 * differ are `SET`, then read again. A setting that does not take (a pooler that drops `SET`)
 * fails with a {@link SessionSettingError} naming it, its value and the fix. The settings set are
 * remembered for {@link beginTransactionSql}. Answers the `SET`s made, as `name = value` of the
 * session before (empty when none was needed).
 */
export async function applySessionSettings(client: ClientBase): Promise<string[]> {
  const target = client as unknown as SessionTarget;
  const before = await currentSettings(client);
  const differing = SESSION_SETTINGS.filter((s) => !s.fits(before.get(s.name) ?? ''));
  if (differing.length === 0) {
    localSettings.delete(client);
    return [];
  }
  await client.query(setStatements(differing, false));
  const after = await currentSettings(client);
  const refused = differing.filter((s) => !s.fits(after.get(s.name) ?? ''));
  if (refused.length > 0) {
    throw new SessionSettingError(
      `PostgreSQL session settings: ${refused.map((s) => `${s.name} is ${quoteLiteral(after.get(s.name) ?? '')}`).join(', ')} after roundtrip set ${refused.map((s) => `${s.name} = ${quoteLiteral(s.value)}`).join(', ')} on the connection; ${fixOf(refused, target)}`,
    );
  }
  localSettings.set(client, setStatements(differing, true));
  return differing.map((s) => `${s.name} = ${quoteLiteral(before.get(s.name) ?? '')}`);
}

/** The database and user a connection is made to, for the fix an error names. */
export interface SessionTarget {
  readonly database?: string | undefined;
  readonly user?: string | undefined;
}

function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** What to do when a setting does not stick: give the database (or role) the value. */
function fixOf(settings: readonly SessionSetting[], target: SessionTarget): string {
  const database = target.database ? quoteIdentifier(target.database) : '<database>';
  const user = target.user ? quoteIdentifier(target.user) : '<user>';
  return `give the database the value roundtrip needs, so that every server connection starts with it: ${settings.map((s) => `ALTER DATABASE ${database} SET ${s.name} = ${quoteLiteral(s.value)}`).join('; ')} (or ALTER ROLE ${user} SET …), then let the pooler open new server connections`;
}

/**
 * `BEGIN`, with `SET LOCAL` of the settings that the client's connection found differing, in one
 * round trip: a pooler in transaction mode may run the transaction on a server connection that
 * never saw the session's `SET`.
 */
export function beginTransactionSql(client: ClientBase): string {
  const local = localSettings.get(client);
  return local ? `BEGIN; ${local}` : 'BEGIN';
}

/**
 * SQL: the text of timestamptz `x` that reads back (`::timestamptz`) as the same instant, to the
 * microsecond, under any DateStyle and TimeZone: ISO 8601 in UTC. `x::text` does only under
 * DateStyle ISO: the SQL, German and Postgres styles end in the zone's abbreviation, which
 * PostgreSQL may read as another zone (`IST`, India's, is read as Israel's), in the session's
 * day/month order. For a timestamp kept as a token and compared later (a ledger row's `sent`
 * mark), possibly on another connection.
 */
export function exactTimestampTextSql(x: string): string {
  return `to_char((${x}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
}

/** `YYYY-MM-DD`, optionally ` HH:MM[:SS[.fff]]` and an offset: PostgreSQL's ISO output. */
const ISO_DATE_TIME =
  /^(-?infinity|\d{4,}-\d{2}-\d{2}( \d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}(:\d{2}){0,2})?)?( BC)?)$/;

/** The DateStyle a date's text was printed in, from its shape. */
function dateStyleOf(text: string): string {
  if (/^[A-Za-z]/.test(text)) return 'Postgres';
  if (/^\d{1,2}\.\d{1,2}\.\d/.test(text)) return 'German';
  if (/^\d{1,2}\/\d{1,2}\/\d/.test(text)) return 'SQL';
  return 'not ISO';
}

/** The parser pg would use for `oid`, refusing text that is not ISO. */
function isoOnly(oid: number, type: string, target: SessionTarget): (text: string) => unknown {
  const parse = types.getTypeParser(oid, 'text') as (text: string) => unknown;
  return (text: string) => {
    if (!ISO_DATE_TIME.test(text)) {
      throw new SessionSettingError(
        `PostgreSQL sent the ${type} ${JSON.stringify(text)} in DateStyle ${dateStyleOf(text)}, not ISO, the only form roundtrip reads: a statement changed the connection's DateStyle after roundtrip set it to ISO (a transform's SET: use SET LOCAL), or a pooler ran the statement on a server connection without it; ${fixOf(SESSION_SETTINGS.slice(0, 1), target)}`,
      );
    }
    return parse(text);
  };
}

/** The arrays of those types: pg's array parser over the element's. */
const ARRAY_OF: Readonly<Record<number, number>> = { 1182: 1082, 1115: 1114, 1185: 1184 };
const DATE_TYPES: Readonly<Record<number, string>> = {
  1082: 'date',
  1114: 'timestamp',
  1184: 'timestamptz',
};

/**
 * A pool's type parsers: pg's own, except that a date, timestamp or timestamptz (or an array of
 * them) in any DateStyle but ISO fails its query with a {@link SessionSettingError} (pg would give
 * null, or a wrong date), instead of a value read wrong.
 */
export function sessionTypeParsers(target: SessionTarget = {}): CustomTypesConfig {
  const getTypeParser = (oid: number, format?: 'text' | 'binary'): unknown => {
    if (format === 'binary') return types.getTypeParser(oid, 'binary');
    const type = DATE_TYPES[oid];
    if (type) return isoOnly(oid, type, target);
    const element = ARRAY_OF[oid];
    if (element !== undefined) {
      const checked = isoOnly(element, `${DATE_TYPES[element]} in an array`, target);
      const parseArray = types.getTypeParser(oid, 'text') as (text: string) => unknown;
      // pg's array parsers take the element parser from pg-types' registry: check each element
      // first by splitting the array's text the way PostgreSQL prints it (quoted elements).
      return (text: string) => {
        for (const m of text.matchAll(/"((?:[^"\\]|\\.)*)"|([^{},]+)/g)) {
          const element = m[1] ?? m[2];
          if (element !== undefined && element !== 'NULL') checked(element);
        }
        return parseArray(text);
      };
    }
    return types.getTypeParser(oid, 'text');
  };
  return { getTypeParser: getTypeParser as CustomTypesConfig['getTypeParser'] };
}
