/**
 * The neutral column model of the loader and the two type mappings into it: from a Salesforce
 * describe field and from Athena's result column metadata. The whole mapping is documented as
 * one table in docs/postgres.md; keep the two in step.
 *
 * Types are written the way PostgreSQL's `format_type()` prints them (`character varying(18)`,
 * `timestamp with time zone`, `numeric(18,2)`), so that a declared type compares equal to the
 * type of an existing column without a round trip to the server.
 */

/**
 * How a column's CSV text must be converted on its way from staging to the target, when COPY
 * cannot read it directly as the target type. The staging column is then `text`.
 * - `spaced-hex`: Athena's varbinary rendering, hex byte pairs separated by spaces
 *   (`68 65 6c 6c 6f`) → `bytea`.
 */
export type LoadConversion = 'spaced-hex';

/** One column of a target table. */
export interface PgColumn {
  /** The column name exactly as the source spells it (always quoted in SQL). */
  readonly name: string;
  /** The PostgreSQL type, as `format_type()` prints it. */
  readonly pgType: string;
  /**
   * Whether the source may send NULL. Not a constraint: tables get NOT NULL on their key only.
   * It decides whether an existing NOT NULL column (made by an earlier version) is relaxed
   * (lambdas/connectors/postgres/ddl.ts, `ensureTable`).
   */
  readonly nullable: boolean;
  /** Set when COPY cannot load the source text as `pgType` directly. */
  readonly load?: LoadConversion;
}

/** The part of a Salesforce describe field the mapping reads (salesforce-wire.md, "Describe"). */
export interface SalesforceFieldDescribe {
  readonly name: string;
  readonly type: string;
  readonly length?: number;
  readonly precision?: number;
  readonly scale?: number;
  readonly digits?: number;
  readonly nillable?: boolean;
}

/** The part of Athena's `ResultSetMetadata.ColumnInfo` the mapping reads (athena-wire.md). */
export interface AthenaColumnInfo {
  readonly Name: string;
  readonly Type: string;
  readonly Precision?: number;
  readonly Scale?: number;
  /** `NOT_NULL`, `NULLABLE` or `UNKNOWN`. */
  readonly Nullable?: string;
}

/** Salesforce Ids are 15 or 18 characters (the 18-character form adds a case checksum). */
export const SALESFORCE_ID_LENGTH = 18;

/** The largest `int` that fits PostgreSQL's `integer`: 2,147,483,647 has 10 digits, so 9 always fit. */
const INTEGER_SAFE_DIGITS = 9;

/** PostgreSQL's limit on a numeric's declared precision. */
export const NUMERIC_MAX_PRECISION = 1000;

/** `numeric(p,s)`, or plain `numeric` when the precision is unknown or out of range. */
export function numericType(precision: number | undefined, scale: number | undefined): string {
  const p = precision ?? 0;
  const s = Math.max(0, scale ?? 0);
  if (!Number.isInteger(p) || p <= 0 || p > NUMERIC_MAX_PRECISION || s > p) return 'numeric';
  return `numeric(${p},${s})`;
}

/**
 * Maps a Salesforce describe field to a column:
 * id/reference → `character varying(18)`; string, textarea, email, phone, url, picklist,
 * multipicklist, combobox, encryptedstring, base64 → `text` (lengths are checked against the
 * describe when writing back, and a text column never needs a migration when an admin
 * lengthens a field); boolean → `boolean`; int → `integer` up to 9 digits, else `bigint`;
 * double/currency/percent → `numeric` (unconstrained: see below); date → `date`; datetime →
 * `timestamp with time zone`; time → `time without time zone`; address/location (compound)
 * → `jsonb`; anything else → `text`.
 */
export function pgColumnForSalesforceField(field: SalesforceFieldDescribe): PgColumn {
  const nullable = field.nillable ?? true;
  const column = (pgType: string): PgColumn => ({ name: field.name, pgType, nullable });
  switch (field.type) {
    case 'id':
    case 'reference':
      return column(`character varying(${SALESFORCE_ID_LENGTH})`);
    case 'boolean':
      return column('boolean');
    case 'int':
      return column((field.digits ?? 18) <= INTEGER_SAFE_DIGITS ? 'integer' : 'bigint');
    case 'double':
    case 'currency':
    case 'percent':
      // Plain numeric, not numeric(precision, scale): Salesforce enforces a field's decimal places
      // only in its UI, so a value written through the API keeps its digits (41.6 in a Number(3,0)
      // field, 999.7 even). A typed column would round the copy away from what Salesforce has (and
      // 999.7 would overflow numeric(3,0), failing every load).
      return column('numeric');
    case 'date':
      return column('date');
    case 'datetime':
      return column('timestamp with time zone');
    case 'time':
      return column('time without time zone');
    case 'address':
    case 'location':
      return column('jsonb');
    default:
      // string, textarea, email, phone, url, picklist, multipicklist, combobox, base64,
      // encryptedstring, anyType and types added by later API versions.
      return column('text');
  }
}

/** Reads `decimal(10,2)` style parameters when Athena puts them in the type string. */
function typeParameters(type: string): number[] {
  const match = /\(([\d\s,]+)\)\s*$/.exec(type);
  return match?.[1] ? match[1].split(',').map((n) => Number(n.trim())) : [];
}

/**
 * Maps an Athena result column to a column:
 * varchar/char/string → `text`; boolean; tinyint/smallint → `smallint`; integer → `integer`;
 * bigint → `bigint`; float/real → `real`; double → `double precision`; decimal(p,s) →
 * `numeric(p,s)`; date; timestamp → `timestamp without time zone`; timestamp with time zone →
 * `timestamp with time zone`; time → `time without time zone`; varbinary → `bytea` (converted
 * from Athena's spaced hex); json → `jsonb`; array, map and row → `text` holding Athena's own
 * rendering (`[1, 2]`, `{k=1}`), because that rendering is not JSON and cannot be parsed back
 * unambiguously: cast such a column to JSON in the query to get `jsonb`. Anything else → `text`.
 */
export function pgColumnForAthenaColumn(info: AthenaColumnInfo): PgColumn {
  const type = info.Type.trim().toLowerCase();
  const base = /^[a-z]+/.exec(type)?.[0] ?? '';
  const nullable = info.Nullable !== 'NOT_NULL';
  const column = (pgType: string, load?: LoadConversion): PgColumn =>
    load ? { name: info.Name, pgType, nullable, load } : { name: info.Name, pgType, nullable };
  switch (base) {
    case 'boolean':
      return column('boolean');
    case 'tinyint':
    case 'smallint':
      return column('smallint');
    case 'integer':
    case 'int':
      return column('integer');
    case 'bigint':
      return column('bigint');
    case 'float':
    case 'real':
      return column('real');
    case 'double':
      return column('double precision');
    case 'decimal': {
      const [p, s] = typeParameters(type);
      return column(numericType(info.Precision || p, info.Scale ?? s));
    }
    case 'date':
      return column('date');
    case 'timestamp':
      return column(
        type.includes('with time zone') ? 'timestamp with time zone' : 'timestamp without time zone',
      );
    case 'time':
      return column(type.includes('with time zone') ? 'time with time zone' : 'time without time zone');
    case 'varbinary':
      return column('bytea', 'spaced-hex');
    case 'json':
      return column('jsonb');
    default:
      // varchar, char, string, array, map, row, ipaddress, uuid, … : loaded as the text Athena wrote.
      return column('text');
  }
}

/**
 * The Athena type that {@link pgColumnForAthenaColumn} maps to `pgType`, as a query would CAST
 * to it (`DATE`, `DECIMAL(12,2)`, `TIMESTAMP`), or undefined when no Athena type maps there.
 * For the way out of a refused type change: the query casts the column back to its old type.
 */
export function athenaTypeForPgType(pgType: string): string | undefined {
  const type = pgType.trim().toLowerCase();
  const decimal = /^numeric\((\d+),(\d+)\)$/.exec(type);
  if (decimal) return `DECIMAL(${decimal[1]},${decimal[2]})`;
  const types: Record<string, string> = {
    text: 'VARCHAR',
    boolean: 'BOOLEAN',
    smallint: 'SMALLINT',
    integer: 'INTEGER',
    bigint: 'BIGINT',
    real: 'REAL',
    'double precision': 'DOUBLE',
    date: 'DATE',
    'timestamp without time zone': 'TIMESTAMP',
    'timestamp with time zone': 'TIMESTAMP WITH TIME ZONE',
    'time without time zone': 'TIME',
    'time with time zone': 'TIME WITH TIME ZONE',
    bytea: 'VARBINARY',
    jsonb: 'JSON',
  };
  return types[type];
}
