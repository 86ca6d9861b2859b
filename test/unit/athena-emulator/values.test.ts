import {
  ARRAY,
  BIGINT,
  BIT,
  BLOB,
  BOOLEAN,
  DATE,
  DECIMAL,
  DOUBLE,
  DuckDBVarCharType,
  FLOAT,
  HUGEINT,
  INTEGER,
  INTERVAL,
  LIST,
  MAP,
  STRUCT,
  TIME,
  TIME_NS,
  TIMESTAMP,
  TIMESTAMP_MS,
  TIMESTAMP_NS,
  TIMESTAMP_S,
  TIMESTAMPTZ,
  TIMETZ,
  UNION,
  UUID,
  VARCHAR,
  arrayValue,
  bitValue,
  blobValue,
  dateValue,
  decimalValue,
  intervalValue,
  listValue,
  mapValue,
  structValue,
  timeNSValue,
  timeTZValue,
  timeValue,
  timestampMillisValue,
  timestampNanosValue,
  timestampSecondsValue,
  timestampTZValue,
  timestampValue,
  unionValue,
  uuidValue,
} from '@duckdb/node-api';
import { formatAthenaValue, formatJavaDouble, formatJavaFloat } from '../../../emulators/athena/values';

// 2020-01-01 12:34:56.789 UTC
const EPOCH_MS = 1_577_882_096_789n;

describe('formatJavaDouble', () => {
  it.each([
    [1, '1.0'],
    [1.5, '1.5'],
    [-2, '-2.0'],
    [0, '0.0'],
    [-0, '-0.0'],
    [0.001, '0.001'],
    [0.0001, '1.0E-4'],
    [1234567.25, '1234567.25'],
    [1e7, '1.0E7'],
    [12345678.9, '1.23456789E7'],
    [1e20, '1.0E20'],
    [3e20, '3.0E20'],
    [-1.5e-10, '-1.5E-10'],
    [0.1 + 0.2, '0.30000000000000004'],
    [Number.MAX_VALUE, '1.7976931348623157E308'],
    [NaN, 'NaN'],
    [Infinity, 'Infinity'],
    [-Infinity, '-Infinity'],
  ])('formats %p as %p', (value, text) => {
    expect(formatJavaDouble(value)).toBe(text);
  });
});

describe('formatJavaFloat', () => {
  it('uses the shortest digits that round-trip as a float32, not the double digits', () => {
    expect(formatJavaFloat(Math.fround(0.1))).toBe('0.1');
    expect(formatJavaFloat(Math.fround(1.1))).toBe('1.1');
    expect(formatJavaFloat(Math.fround(3.4028234663852886e38))).toBe('3.4028235E38');
    expect(formatJavaFloat(Math.fround(1.5))).toBe('1.5');
  });
});

describe('formatAthenaValue', () => {
  it('renders scalars as Athena does', () => {
    expect(formatAthenaValue(true, BOOLEAN)).toBe('true');
    expect(formatAthenaValue(false, BOOLEAN)).toBe('false');
    expect(formatAthenaValue(42, INTEGER)).toBe('42');
    expect(formatAthenaValue(-9223372036854775808n, BIGINT)).toBe('-9223372036854775808');
    expect(formatAthenaValue(12345678901234567890123n, HUGEINT)).toBe('12345678901234567890123');
    expect(formatAthenaValue(1e20, DOUBLE)).toBe('1.0E20');
    expect(formatAthenaValue(Math.fround(0.1), FLOAT)).toBe('0.1');
    expect(formatAthenaValue(decimalValue(150n, 10, 2), DECIMAL(10, 2))).toBe('1.50');
    expect(formatAthenaValue(decimalValue(-5n, 4, 1), DECIMAL(4, 1))).toBe('-0.5');
    expect(formatAthenaValue('a "b", c', VARCHAR)).toBe('a "b", c');
    expect(formatAthenaValue('{"a":1}', DuckDBVarCharType.create('JSON'))).toBe('{"a":1}');
    expect(formatAthenaValue(uuidValue(0n), UUID)).toBe('00000000-0000-0000-0000-000000000000');
    expect(formatAthenaValue(bitValue('101'), BIT)).toBe('101');
  });

  it('renders varbinary as space-separated hex bytes', () => {
    expect(formatAthenaValue(blobValue(new Uint8Array([0xde, 0xad, 0x00, 0x0f])), BLOB)).toBe('de ad 00 0f');
  });

  it('renders dates, timestamps and times with millisecond precision', () => {
    expect(formatAthenaValue(dateValue(18262), DATE)).toBe('2020-01-01');
    expect(formatAthenaValue(timestampValue(EPOCH_MS * 1000n), TIMESTAMP)).toBe('2020-01-01 12:34:56.789');
    expect(formatAthenaValue(timestampValue(EPOCH_MS * 1000n + 499n), TIMESTAMP)).toBe(
      '2020-01-01 12:34:56.789',
    );
    expect(formatAthenaValue(timestampValue(EPOCH_MS * 1000n + 500n), TIMESTAMP)).toBe(
      '2020-01-01 12:34:56.790',
    );
    expect(formatAthenaValue(timestampSecondsValue(EPOCH_MS / 1000n), TIMESTAMP_S)).toBe(
      '2020-01-01 12:34:56.000',
    );
    expect(formatAthenaValue(timestampMillisValue(EPOCH_MS), TIMESTAMP_MS)).toBe('2020-01-01 12:34:56.789');
    expect(formatAthenaValue(timestampNanosValue(EPOCH_MS * 1_000_000n + 1n), TIMESTAMP_NS)).toBe(
      '2020-01-01 12:34:56.789',
    );
    expect(formatAthenaValue(timestampValue(-1000n), TIMESTAMP)).toBe('1969-12-31 23:59:59.999');
    expect(formatAthenaValue(timestampTZValue(EPOCH_MS * 1000n), TIMESTAMPTZ)).toBe(
      '2020-01-01 12:34:56.789 UTC',
    );
    expect(formatAthenaValue(timeValue(45_296_789_000n), TIME)).toBe('12:34:56.789');
    expect(formatAthenaValue(timeNSValue(45_296_789_000_000n), TIME_NS)).toBe('12:34:56.789');
    expect(formatAthenaValue(timeTZValue(45_296_789_000n, 5 * 3600 + 30 * 60), TIMETZ)).toBe(
      '12:34:56.789+05:30',
    );
  });

  it('renders intervals as day-to-second, counting a month as 30 days', () => {
    expect(formatAthenaValue(intervalValue(0, 2, 3_723_004_000n), INTERVAL)).toBe('2 01:02:03.004');
    expect(formatAthenaValue(intervalValue(1, 0, 0n), INTERVAL)).toBe('30 00:00:00.000');
    expect(formatAthenaValue(intervalValue(0, -1, 0n), INTERVAL)).toBe('-1 00:00:00.000');
  });

  it('renders arrays, maps and rows with null inside and unquoted strings', () => {
    expect(formatAthenaValue(listValue([1, null, 3]), LIST(INTEGER))).toBe('[1, null, 3]');
    expect(formatAthenaValue(listValue(['a', '']), LIST(VARCHAR))).toBe('[a, ]');
    expect(formatAthenaValue(arrayValue([1.5, 1e20]), ARRAY(DOUBLE, 2))).toBe('[1.5, 1.0E20]');
    expect(formatAthenaValue(listValue([listValue([1]), listValue([])]), LIST(LIST(INTEGER)))).toBe(
      '[[1], []]',
    );
    expect(
      formatAthenaValue(
        mapValue([
          { key: 'k', value: 1 },
          { key: 'j', value: null },
        ]),
        MAP(VARCHAR, INTEGER),
      ),
    ).toBe('{k=1, j=null}');
    expect(
      formatAthenaValue(
        structValue({ a: 1, b: 'x', d: dateValue(0) }),
        STRUCT({ a: INTEGER, b: VARCHAR, d: DATE }),
      ),
    ).toBe('{a=1, b=x, d=1970-01-01}');
  });

  it('renders a union as its active member', () => {
    const type = UNION({ name: VARCHAR, age: INTEGER });
    expect(formatAthenaValue(unionValue('age', 5), type)).toBe('5');
    expect(formatAthenaValue(unionValue('name', 'Frank'), type)).toBe('Frank');
  });
});
