/**
 * Trino's division by zero, which DuckDB does not have: in Trino (Athena engine version 3) `/`,
 * `%` and `mod()` of integers or decimals by zero fail the query with `DIVISION_BY_ZERO: Division
 * by zero` (Trino's integer and decimal operators throw `TrinoException(DIVISION_BY_ZERO,
 * "Division by zero")`), and `/` of a `double` or `real` by zero is IEEE 754's: `Infinity`,
 * `-Infinity` or `NaN`, as Java divides. DuckDB gives NULL for all of them (and NaN for `%` of a
 * double by zero, which is Trino's answer too).
 *
 * The emulator rewrites a query's `/`, `%` and `mod(a, b)` into calls of two macros that keep
 * DuckDB's operator for every other divisor, with the same result type, and do Trino's thing for
 * a zero one. The rewrite goes through DuckDB's own parse tree (`json_serialize_sql` →
 * {@link rewriteDivisions} → `json_deserialize_sql`), so it sees every division wherever it is
 * (select list, WHERE, subqueries, CTEs) and nothing inside a string literal or a comment.
 */

/** Where the macros live: the instance's own in-memory database, never a data-dir database. */
const MACRO_SCHEMA = { catalog: 'memory', schema: 'main' } as const;
export const DIVIDE_MACRO = 'athena_divide';
export const MODULUS_MACRO = 'athena_modulus';

/** The failure the macros raise; {@link DIVISION_BY_ZERO_REASON} is the StateChangeReason. */
export const DIVISION_BY_ZERO_REASON = 'DIVISION_BY_ZERO: Division by zero';

const FLOATING = `('FLOAT', 'DOUBLE')`;

/**
 * The macros, created once per DuckDB instance. `typeof()` is constant for a column, so the branch
 * taken is chosen by the operands' types; `cast_to_type(…, a / b)` gives the IEEE branch the type
 * of DuckDB's own `a / b`, so the result type is the operator's (a `real` stays `real`).
 * A NULL operand gives NULL (Trino's operators are not called on NULL).
 */
export const ARITHMETIC_MACROS_SQL = [
  `CREATE MACRO ${MACRO_SCHEMA.catalog}.${MACRO_SCHEMA.schema}.${DIVIDE_MACRO}(a, b) AS CASE
    WHEN b <> 0 OR a IS NULL OR b IS NULL THEN a / b
    WHEN typeof(a) IN ${FLOATING} OR typeof(b) IN ${FLOATING} THEN cast_to_type(
      CAST(a AS DOUBLE) * CASE WHEN signbit(CAST(b AS DOUBLE)) THEN CAST('-Infinity' AS DOUBLE) ELSE CAST('Infinity' AS DOUBLE) END,
      a / b)
    ELSE error('${DIVISION_BY_ZERO_REASON}') END`,
  `CREATE MACRO ${MACRO_SCHEMA.catalog}.${MACRO_SCHEMA.schema}.${MODULUS_MACRO}(a, b) AS CASE
    WHEN b <> 0 OR a IS NULL OR b IS NULL OR typeof(a) IN ${FLOATING} OR typeof(b) IN ${FLOATING} THEN a % b
    ELSE error('${DIVISION_BY_ZERO_REASON}') END`,
];

/** DuckDB's function names for the operators rewritten, and the macro each becomes. */
const REWRITTEN: Readonly<Record<string, string>> = {
  '/': DIVIDE_MACRO,
  '%': MODULUS_MACRO,
  mod: MODULUS_MACRO,
};

type AstNode = Record<string, unknown>;

/**
 * Replaces, in DuckDB's serialized parse tree (`json_serialize_sql`), every two-argument `/`, `%`
 * and unqualified `mod()` by the emulator's macro; returns how many it replaced (0: the tree is
 * unchanged and the query can run as written). The tree is changed in place, and loses its
 * `query_location`s: they point into the query as written, not into the rewritten text.
 */
export function rewriteDivisions(ast: unknown): number {
  let count = 0;
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) {
      node.forEach(visit);
      return;
    }
    if (typeof node !== 'object' || node === null) return;
    const record = node as AstNode;
    // Positions are the original text's (and "none" is 2^64-1, which a JS number cannot hold):
    // the rewritten statement has none.
    delete record.query_location;
    if (
      record.class === 'FUNCTION' &&
      typeof record.function_name === 'string' &&
      Array.isArray(record.children) &&
      record.children.length === 2 &&
      !record.schema &&
      !record.catalog
    ) {
      const macro = REWRITTEN[record.function_name.toLowerCase()];
      if (macro) {
        record.function_name = macro;
        record.catalog = MACRO_SCHEMA.catalog;
        record.schema = MACRO_SCHEMA.schema;
        record.is_operator = false;
        count++;
      }
    }
    Object.values(record).forEach(visit);
  };
  visit(ast);
  return count;
}
