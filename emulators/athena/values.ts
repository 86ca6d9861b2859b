/**
 * DuckDB values → the text Athena puts in `VarCharValue` and in its result CSV.
 *
 * Athena (Trino) renders values the way Java does (athena-wire.md, "Value text"): booleans
 * `true`/`false`, doubles with `Double.toString` (`1.0`, `1.0E20`), timestamps with milliseconds
 * (`2020-01-01 12:34:56.789`), arrays `[1, 2]`, maps `{k=1}`, rows `{a=1, b=x}`. Inside a nested
 * value NULL is written `null` and strings are not quoted.
 */
import {
  DuckDBTypeId,
  type DuckDBArrayValue,
  type DuckDBBitValue,
  type DuckDBBlobValue,
  type DuckDBDateValue,
  type DuckDBDecimalValue,
  type DuckDBGeometryValue,
  type DuckDBIntervalValue,
  type DuckDBListValue,
  type DuckDBMapValue,
  type DuckDBStructValue,
  type DuckDBTimeNSValue,
  type DuckDBTimestampMillisecondsValue,
  type DuckDBTimestampNanosecondsValue,
  type DuckDBTimestampSecondsValue,
  type DuckDBTimestampTZValue,
  type DuckDBTimestampValue,
  type DuckDBTimeTZValue,
  type DuckDBTimeValue,
  type DuckDBType,
  type DuckDBUnionValue,
  type DuckDBValue,
} from '@duckdb/node-api';

/**
 * Java's `Double.toString` switches to computerized scientific notation outside
 * [10^-3, 10^7) (Java SE API, `Double.toString(double)`).
 */
const JAVA_PLAIN_MIN = 1e-3;
const JAVA_PLAIN_MAX = 1e7;
/** A float32 needs at most 9 significant decimal digits to round-trip (IEEE 754). */
const FLOAT32_MAX_SIGNIFICANT_DIGITS = 9;
/** DuckDB interval months count as 30 days, as DuckDB's own `epoch(interval)` does. */
const DAYS_PER_INTERVAL_MONTH = 30;
const MICROS_PER_DAY = 86_400_000_000n;

/** Formats a double exactly as Java's `Double.toString` (shortest round-trip digits). */
export function formatJavaDouble(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return 'Infinity';
  if (value === -Infinity) return '-Infinity';
  if (value === 0) return Object.is(value, -0) ? '-0.0' : '0.0';
  const magnitude = Math.abs(value);
  if (magnitude >= JAVA_PLAIN_MIN && magnitude < JAVA_PLAIN_MAX) {
    // JS prints plain decimals in this range, with the same shortest digits as Java.
    const text = String(value);
    return text.includes('.') ? text : `${text}.0`;
  }
  const [mantissa = '', exponent = ''] = value.toExponential().split('e');
  return `${mantissa.includes('.') ? mantissa : `${mantissa}.0`}E${exponent.replace('+', '')}`;
}

/** Formats a float32 as Java's `Float.toString`: the shortest digits that round-trip as a float. */
export function formatJavaFloat(value: number): string {
  if (!Number.isFinite(value) || value === 0) return formatJavaDouble(value);
  for (let digits = 1; digits <= FLOAT32_MAX_SIGNIFICANT_DIGITS; digits++) {
    const candidate = Number(value.toPrecision(digits));
    if (Math.fround(candidate) === value) return formatJavaDouble(candidate);
  }
  return formatJavaDouble(value);
}

const pad = (n: number | bigint, width: number): string => String(n).padStart(width, '0');

/** Rounds half away from zero, like Trino's cast of a finer timestamp to timestamp(3). */
function roundDiv(value: bigint, divisor: bigint): bigint {
  const half = divisor / 2n;
  return value >= 0n ? (value + half) / divisor : -((-value + half) / divisor);
}

/** Epoch milliseconds → `YYYY-MM-DD HH:MM:SS.mmm`, or undefined outside years 0000–9999. */
function formatEpochMillis(millis: bigint): string | undefined {
  const ms = Number(millis);
  const date = new Date(ms);
  if (Number.isNaN(date.getTime())) return undefined;
  const iso = date.toISOString();
  if (iso.length !== 24) return undefined; // ±YYYYYY years: leave them to DuckDB's own text
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)}`;
}

/** Micro- (or nano-) seconds since midnight → `HH:MM:SS.mmm`. */
function formatTimeOfDay(micros: bigint): string {
  const millis = roundDiv(micros, 1000n);
  const ms = Number(millis % 1000n);
  const totalSeconds = Number(millis / 1000n);
  const h = Math.floor(totalSeconds / 3600);
  const m = Math.floor((totalSeconds % 3600) / 60);
  const s = totalSeconds % 60;
  return `${pad(h, 2)}:${pad(m, 2)}:${pad(s, 2)}.${pad(ms, 3)}`;
}

function formatOffset(offsetSeconds: number): string {
  const sign = offsetSeconds < 0 ? '-' : '+';
  const abs = Math.abs(offsetSeconds);
  return `${sign}${pad(Math.floor(abs / 3600), 2)}:${pad(Math.floor((abs % 3600) / 60), 2)}`;
}

/** Trino's `interval day to second` text: `D HH:MM:SS.mmm`, negative with a leading `-`. */
function formatInterval(value: DuckDBIntervalValue): string {
  const totalMicros =
    (BigInt(value.months) * BigInt(DAYS_PER_INTERVAL_MONTH) + BigInt(value.days)) * MICROS_PER_DAY +
    value.micros;
  const sign = totalMicros < 0n ? '-' : '';
  const abs = totalMicros < 0n ? -totalMicros : totalMicros;
  const days = abs / MICROS_PER_DAY;
  return `${sign}${days} ${formatTimeOfDay(abs % MICROS_PER_DAY)}`;
}

/** Varbinary as Athena shows it: lower-case hex bytes separated by spaces. (unverified) */
function formatBytes(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
}

function formatTimestamp(epochMillis: bigint, fallback: { toString(): string }): string {
  return formatEpochMillis(epochMillis) ?? fallback.toString();
}

/**
 * The text of one non-NULL value of the given DuckDB type, as Athena writes it. NULL is not a
 * value here: the caller writes `{}` (GetQueryResults) or an empty unquoted field (CSV).
 */
export function formatAthenaValue(value: Exclude<DuckDBValue, null>, type: DuckDBType): string {
  switch (type.typeId) {
    case DuckDBTypeId.DOUBLE:
      return formatJavaDouble(value as number);
    case DuckDBTypeId.FLOAT:
      return formatJavaFloat(value as number);
    case DuckDBTypeId.DECIMAL:
      return (value as DuckDBDecimalValue).toString();
    case DuckDBTypeId.DATE: {
      const date = value as DuckDBDateValue;
      const text = formatEpochMillis(BigInt(date.days) * 86_400_000n);
      return text ? text.slice(0, 10) : date.toString();
    }
    case DuckDBTypeId.TIMESTAMP: {
      const ts = value as DuckDBTimestampValue;
      return formatTimestamp(roundDiv(ts.micros, 1000n), ts);
    }
    case DuckDBTypeId.TIMESTAMP_S: {
      const ts = value as DuckDBTimestampSecondsValue;
      return formatTimestamp(ts.seconds * 1000n, ts);
    }
    case DuckDBTypeId.TIMESTAMP_MS: {
      const ts = value as DuckDBTimestampMillisecondsValue;
      return formatTimestamp(ts.millis, ts);
    }
    case DuckDBTypeId.TIMESTAMP_NS: {
      const ts = value as DuckDBTimestampNanosecondsValue;
      return formatTimestamp(roundDiv(ts.nanos, 1_000_000n), ts);
    }
    case DuckDBTypeId.TIMESTAMP_TZ: {
      // An instant: rendered in UTC, with Trino's zone suffix.
      const ts = value as DuckDBTimestampTZValue;
      const text = formatEpochMillis(roundDiv(ts.micros, 1000n));
      return text ? `${text} UTC` : ts.toString();
    }
    case DuckDBTypeId.TIME:
      return formatTimeOfDay((value as DuckDBTimeValue).micros);
    case DuckDBTypeId.TIME_NS:
      return formatTimeOfDay(roundDiv((value as DuckDBTimeNSValue).nanos, 1000n));
    case DuckDBTypeId.TIME_TZ: {
      const time = value as DuckDBTimeTZValue;
      return `${formatTimeOfDay(time.micros)}${formatOffset(time.offset)}`;
    }
    case DuckDBTypeId.INTERVAL:
      return formatInterval(value as DuckDBIntervalValue);
    case DuckDBTypeId.BLOB:
    case DuckDBTypeId.GEOMETRY:
      return formatBytes((value as DuckDBBlobValue | DuckDBGeometryValue).bytes);
    case DuckDBTypeId.BIT:
      return (value as DuckDBBitValue).toString();
    case DuckDBTypeId.LIST:
    case DuckDBTypeId.ARRAY: {
      const items = (value as DuckDBListValue | DuckDBArrayValue).items;
      return `[${items.map((item) => formatNested(item, type.valueType)).join(', ')}]`;
    }
    case DuckDBTypeId.MAP: {
      const entries = (value as DuckDBMapValue).entries;
      const text = entries.map(
        (e) => `${formatNested(e.key, type.keyType)}=${formatNested(e.value, type.valueType)}`,
      );
      return `{${text.join(', ')}}`;
    }
    case DuckDBTypeId.STRUCT: {
      const entries = (value as DuckDBStructValue).entries;
      const text = type.entryNames.map((name, i) => {
        const entryType = type.entryTypes[i];
        const entry = entries[name] ?? null;
        return `${name}=${entryType ? formatNested(entry, entryType) : String(entry)}`;
      });
      return `{${text.join(', ')}}`;
    }
    case DuckDBTypeId.UNION: {
      const union = value as DuckDBUnionValue;
      return formatNested(union.value, type.memberTypeForTag(union.tag));
    }
    default:
      // VARCHAR, JSON, ENUM, UUID, BOOLEAN, the integers (number or bigint), BIGNUM, VARIANT:
      // their JS text is Athena's text.
      return String(value);
  }
}

function formatNested(value: DuckDBValue, type: DuckDBType): string {
  return value === null ? 'null' : formatAthenaValue(value, type);
}
