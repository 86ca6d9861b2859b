/**
 * DuckDB result types → the type names Athena reports in `ResultSetMetadata.ColumnInfo`.
 *
 * Athena (engine version 3, Trino) names: `varchar char boolean tinyint smallint integer bigint
 * float double decimal date timestamp time varbinary array map row json` (athena-wire.md,
 * "Types in ColumnInfo.Type"). Nested types are reported by their outer name only (`array`, not
 * `array(integer)`). DuckDB types with no Athena counterpart are widened to the nearest one that
 * holds every value (unsigned integers) or reported as `varchar` with their text (BIT, UUID, ENUM,
 * UNION, BIGNUM, VARIANT). The table is repeated in docs/athena-emulator.md.
 */
import { DuckDBTypeId, type DuckDBType } from '@duckdb/node-api';

/** What one column of a result looks like in `ColumnInfo`. */
export interface AthenaColumnType {
  /** Athena's type name, e.g. `varchar`, `decimal`, `timestamp with time zone`. */
  readonly type: string;
  /** Decimal precision for `decimal`; the JDBC-style display precision for the other types. */
  readonly precision: number;
  /** Decimal scale for `decimal`; fractional digits for temporal types; 0 otherwise. */
  readonly scale: number;
  /** Athena reports `true` for character types only. */
  readonly caseSensitive: boolean;
}

/**
 * Precision that Athena's JDBC-derived metadata reports for types without a declared one:
 * unbounded `varchar` is 2147483647 (Java's Integer.MAX_VALUE), integer types their decimal
 * digits, `double` 17 significant digits, `float` 9. (unverified: no document lists these.)
 */
export const ATHENA_UNBOUNDED_VARCHAR_PRECISION = 2_147_483_647;
/** Maximum decimal precision of Athena's `decimal` (Trino's DECIMAL: precision 1..38). */
export const ATHENA_MAX_DECIMAL_PRECISION = 38;
/** Athena timestamps and times are rendered with millisecond precision (timestamp(3)). */
export const ATHENA_TIMESTAMP_FRACTION_DIGITS = 3;

const varchar: AthenaColumnType = {
  type: 'varchar',
  precision: ATHENA_UNBOUNDED_VARCHAR_PRECISION,
  scale: 0,
  caseSensitive: true,
};

const plain = (type: string, precision = 0, scale = 0): AthenaColumnType => ({
  type,
  precision,
  scale,
  caseSensitive: false,
});

/** Maps a DuckDB column type to the Athena type, precision and scale that GetQueryResults reports. */
export function athenaColumnType(type: DuckDBType): AthenaColumnType {
  switch (type.typeId) {
    case DuckDBTypeId.VARCHAR:
      return type.alias === 'JSON' ? plain('json') : varchar;
    case DuckDBTypeId.BOOLEAN:
      return plain('boolean');
    case DuckDBTypeId.TINYINT:
      return plain('tinyint', 3);
    case DuckDBTypeId.SMALLINT:
    case DuckDBTypeId.UTINYINT:
      // UTINYINT (0..255) does not fit tinyint (-128..127).
      return plain('smallint', 5);
    case DuckDBTypeId.INTEGER:
    case DuckDBTypeId.USMALLINT:
    case DuckDBTypeId.INTEGER_LITERAL:
      return plain('integer', 10);
    case DuckDBTypeId.BIGINT:
    case DuckDBTypeId.UINTEGER:
      return plain('bigint', 19);
    case DuckDBTypeId.UBIGINT:
      // 18446744073709551615 has 20 digits: no Athena integer type holds it.
      return plain('decimal', 20, 0);
    case DuckDBTypeId.HUGEINT:
      // What DuckDB's sum of any integer type gives; Trino's sum of tinyint … bigint is a bigint
      // (and fails past its range: the engine fails such a value, NUMERIC_VALUE_OUT_OF_RANGE).
      return plain('bigint', 19);
    case DuckDBTypeId.UHUGEINT:
      // Up to 39 digits; Athena's widest exact type is decimal(38,0). Values past 38 digits keep
      // their text (documented).
      return plain('decimal', ATHENA_MAX_DECIMAL_PRECISION, 0);
    case DuckDBTypeId.FLOAT:
      return plain('float', 9);
    case DuckDBTypeId.DOUBLE:
      return plain('double', 17);
    case DuckDBTypeId.DECIMAL:
      return plain('decimal', type.width, type.scale);
    case DuckDBTypeId.DATE:
      return plain('date');
    case DuckDBTypeId.TIMESTAMP:
    case DuckDBTypeId.TIMESTAMP_S:
    case DuckDBTypeId.TIMESTAMP_MS:
    case DuckDBTypeId.TIMESTAMP_NS:
      return plain('timestamp', ATHENA_TIMESTAMP_FRACTION_DIGITS, ATHENA_TIMESTAMP_FRACTION_DIGITS);
    case DuckDBTypeId.TIMESTAMP_TZ:
      return plain(
        'timestamp with time zone',
        ATHENA_TIMESTAMP_FRACTION_DIGITS,
        ATHENA_TIMESTAMP_FRACTION_DIGITS,
      );
    case DuckDBTypeId.TIME:
    case DuckDBTypeId.TIME_NS:
      return plain('time', ATHENA_TIMESTAMP_FRACTION_DIGITS, ATHENA_TIMESTAMP_FRACTION_DIGITS);
    case DuckDBTypeId.TIME_TZ:
      return plain('time with time zone', ATHENA_TIMESTAMP_FRACTION_DIGITS, ATHENA_TIMESTAMP_FRACTION_DIGITS);
    case DuckDBTypeId.INTERVAL:
      return plain('interval day to second', 0, ATHENA_TIMESTAMP_FRACTION_DIGITS);
    case DuckDBTypeId.BLOB:
    case DuckDBTypeId.GEOMETRY:
      return plain('varbinary', ATHENA_UNBOUNDED_VARCHAR_PRECISION);
    case DuckDBTypeId.LIST:
    case DuckDBTypeId.ARRAY:
      return plain('array');
    case DuckDBTypeId.MAP:
      return plain('map');
    case DuckDBTypeId.STRUCT:
      return plain('row');
    case DuckDBTypeId.SQLNULL:
      return plain('unknown');
    case DuckDBTypeId.UUID:
    case DuckDBTypeId.ENUM:
    case DuckDBTypeId.BIT:
    case DuckDBTypeId.UNION:
    case DuckDBTypeId.BIGNUM:
    case DuckDBTypeId.VARIANT:
    case DuckDBTypeId.STRING_LITERAL:
    case DuckDBTypeId.ANY:
      return varchar;
  }
}
