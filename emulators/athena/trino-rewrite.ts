/**
 * Where DuckDB's answer to a query differs from Trino's (Athena engine version 3), the emulator
 * rewrites the query so that DuckDB gives Trino's. The rewrite goes through DuckDB's own parse
 * tree (`json_serialize_sql` → {@link rewriteForTrino} → `json_deserialize_sql`), so it sees every
 * call wherever it is (select list, WHERE, HAVING, subqueries, CTEs) and nothing inside a string
 * literal or a comment; each rewritten call becomes a macro of {@link TRINO_MACROS_SQL}.
 *
 * - **Division by zero.** In Trino `/`, `%` and `mod()` of integers or decimals by zero fail the
 *   query with `DIVISION_BY_ZERO: Division by zero` (Trino's integer and decimal operators throw
 *   `TrinoException(DIVISION_BY_ZERO, "Division by zero")`), and `/` of a `double` or `real` by
 *   zero is IEEE 754's: `Infinity`, `-Infinity` or `NaN`, as Java divides. DuckDB gives NULL for
 *   all of them (and NaN for `%` of a double by zero, which is Trino's answer too). The macros
 *   keep DuckDB's operator, and its result type, for every other divisor.
 * - **`avg`.** Trino's `avg` of a `decimal(p,s)` is a `decimal(p,s)`, the exact mean rounded half
 *   away from zero (Trino's DecimalAverageAggregation), and of a `real` a `real`; DuckDB's is a
 *   `double` for both. Of the other numeric types both give a `double`.
 */

/** Where the macros live: the instance's own in-memory database, never a data-dir database. */
const MACRO_SCHEMA = 'memory.main';
export const DIVIDE_MACRO = 'athena_divide';
export const MODULUS_MACRO = 'athena_modulus';

/** The failure the division macros raise; it is the query's StateChangeReason. */
export const DIVISION_BY_ZERO_REASON = 'DIVISION_BY_ZERO: Division by zero';

const FLOATING = `('FLOAT', 'DOUBLE')`;

/**
 * The mean of a decimal column as the text of a decimal of its scale, exact: the sum of the
 * values' unscaled digits divided by the count, rounded half away from zero, the point put back
 * `s` digits from the right. `d` is `DISTINCT ` or empty. `fast` sums the values (DuckDB's sum of
 * a `decimal(p,s)` is an exact `decimal(38,s)`) and reads the digits of the sum's text, which
 * binds for a numeric column only; otherwise each value's digits are read from its text (a
 * TRY_CAST, NULL for a column that is not a decimal), which binds for any type but costs a string
 * per row.
 */
const decimalMeanText = (d: string, fast: boolean): string => {
  const scale = `CAST(regexp_extract(typeof(any_value(x)), ',(\\d+)\\)$', 1) AS INTEGER)`;
  const sum = fast
    ? `CAST(replace(CAST(sum(${d}x) AS VARCHAR), '.', '') AS HUGEINT)`
    : `sum(${d}CASE WHEN typeof(x) LIKE 'DECIMAL(%' THEN TRY_CAST(replace(CAST(x AS VARCHAR), '.', '') AS HUGEINT) END)`;
  const count = `count(${d}x)`;
  const mean = `CAST(abs(${sum}) // ${count} + CASE WHEN 2 * (abs(${sum}) % ${count}) >= ${count} THEN 1 ELSE 0 END AS VARCHAR)`;
  // At least one digit before the point (lpad would cut a longer text).
  const digits = `repeat('0', greatest(0, ${scale} + 1 - length(${mean}))) || ${mean}`;
  return `CASE WHEN ${sum} < 0 THEN '-' ELSE '' END || CASE WHEN ${scale} = 0 THEN ${digits}
    ELSE left(${digits}, length(${digits}) - ${scale}) || '.' || right(${digits}, ${scale}) END`;
};

/**
 * `avg` as Trino types it: the mean as text (the exact decimal one for a decimal, DuckDB's double
 * otherwise, whose text round-trips), cast to the type of `median()` of the same values, which is
 * the column's own for a decimal or a `real` and `double` for the integers — Trino's avg types.
 * `cast_to_type` only takes that type: no median is computed. The CASE's condition is constant:
 * the other branch's text work never runs (its aggregates, cheap ones, are computed all the same).
 */
const avgMacro = (name: string, d: string, fast: boolean): string =>
  `CREATE MACRO ${MACRO_SCHEMA}.${name}(x) AS cast_to_type(
    CASE WHEN typeof(any_value(x)) LIKE 'DECIMAL(%' THEN ${decimalMeanText(d, fast)}
    ELSE CAST(avg(${d}x) AS VARCHAR) END,
    list_median([any_value(x)]))`;

/** The avg macros: `plain` and `distinct`, `fast` (numeric columns) or `any` (any column). */
export const AVG_MACROS = {
  fast: { plain: 'athena_avg', distinct: 'athena_avg_distinct' },
  any: { plain: 'athena_avg_any', distinct: 'athena_avg_any_distinct' },
} as const;

/**
 * The macros, created once per DuckDB instance. `typeof()` is constant for a column, so the branch
 * taken is chosen by the operands' types; `cast_to_type(…, a / b)` gives the IEEE branch the type
 * of DuckDB's own `a / b`, so the result type is the operator's (a `real` stays `real`). A NULL
 * operand gives NULL (Trino's operators are not called on NULL).
 */
export const TRINO_MACROS_SQL = [
  `CREATE MACRO ${MACRO_SCHEMA}.${DIVIDE_MACRO}(a, b) AS CASE
    WHEN b <> 0 OR a IS NULL OR b IS NULL THEN a / b
    WHEN typeof(a) IN ${FLOATING} OR typeof(b) IN ${FLOATING} THEN cast_to_type(
      CAST(a AS DOUBLE) * CASE WHEN signbit(CAST(b AS DOUBLE)) THEN CAST('-Infinity' AS DOUBLE) ELSE CAST('Infinity' AS DOUBLE) END,
      a / b)
    ELSE error('${DIVISION_BY_ZERO_REASON}') END`,
  `CREATE MACRO ${MACRO_SCHEMA}.${MODULUS_MACRO}(a, b) AS CASE
    WHEN b <> 0 OR a IS NULL OR b IS NULL OR typeof(a) IN ${FLOATING} OR typeof(b) IN ${FLOATING} THEN a % b
    ELSE error('${DIVISION_BY_ZERO_REASON}') END`,
  ...(['fast', 'any'] as const).flatMap((kind) => [
    avgMacro(AVG_MACROS[kind].plain, '', kind === 'fast'),
    avgMacro(AVG_MACROS[kind].distinct, 'DISTINCT ', kind === 'fast'),
  ]),
];

type AstNode = Record<string, unknown>;

/** What {@link rewriteForTrino} replaced. */
export interface TrinoRewrites {
  /** `/`, `%` and `mod()` calls. */
  readonly divisions: number;
  /** `avg()` calls. */
  readonly averages: number;
}

const isPlainCall = (node: AstNode, name: string, args: number): boolean =>
  node.class === 'FUNCTION' &&
  typeof node.function_name === 'string' &&
  node.function_name.toLowerCase() === name &&
  Array.isArray(node.children) &&
  node.children.length === args &&
  !node.schema &&
  !node.catalog;

/**
 * Replaces, in DuckDB's serialized parse tree (`json_serialize_sql`), every two-argument `/`, `%`
 * and unqualified `mod()` by the division macros, and every aggregate `avg(x)` (also
 * `avg(DISTINCT x)`; not one with a FILTER or ORDER BY, nor a window's) by the avg macro of the
 * kind `options.averages` names (`fast` unless told). The tree is changed in place, and loses its `query_location`s: they point into the query
 * as written, not into the rewritten text (and "none" is 2^64-1, which a JS number cannot hold).
 * A result of zero rewrites means the query can run as written.
 */
export function rewriteForTrino(
  ast: unknown,
  options: { averages: keyof typeof AVG_MACROS } = { averages: 'fast' },
): TrinoRewrites {
  let divisions = 0;
  let averages = 0;
  const rename = (node: AstNode, name: string): void => {
    const [catalog, schema] = MACRO_SCHEMA.split('.');
    Object.assign(node, { function_name: name, catalog, schema, is_operator: false });
  };
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) {
      node.forEach(visit);
      return;
    }
    if (typeof node !== 'object' || node === null) return;
    const record = node as AstNode;
    delete record.query_location;
    if (isPlainCall(record, '/', 2) || isPlainCall(record, '%', 2) || isPlainCall(record, 'mod', 2)) {
      rename(record, record.function_name === '/' ? DIVIDE_MACRO : MODULUS_MACRO);
      divisions++;
    } else if (
      isPlainCall(record, 'avg', 1) &&
      record.filter === null &&
      !((record.order_bys as { orders?: unknown[] } | undefined)?.orders ?? []).length
    ) {
      const macros = AVG_MACROS[options.averages];
      rename(record, record.distinct === true ? macros.distinct : macros.plain);
      record.distinct = false;
      averages++;
    }
    Object.values(record).forEach(visit);
  };
  visit(ast);
  return { divisions, averages };
}
