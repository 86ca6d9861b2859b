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
 * - **`/` of decimals.** Trino's `decimal(p1,s1) / decimal(p2,s2)` is a
 *   `decimal(min(38, p1 + s2 + max(s2 - s1, 0)), max(s1, s2))`, the quotient rounded half away
 *   from zero (Trino's DecimalOperators.decimalDivideOperator: "r_precision" and "r_scale", and
 *   divideShortShortShort's rounding), an integer operand taken as the decimal that holds it
 *   (tinyint `decimal(3,0)`, smallint `(5,0)`, integer `(10,0)`, bigint `(19,0)`: Trino's implicit
 *   coercion); DuckDB's is a `double`. The result type depends on the operands' types, which only
 *   binding knows: each division in turn is bound as a call that fails naming its operands' types
 *   ({@link probedOperandTypes}), and each division of decimals becomes
 *   {@link DECIMAL_DIVIDE_MACRO} with its result type.
 * - **`CAST(x AS varchar(n))`.** Trino cuts a string longer than n to n characters
 *   (CharacterStringCasts.varcharToVarcharCast) and fails the cast of a number whose text is longer
 *   (`INVALID_CAST_ARGUMENT: Value 12345 cannot be represented as varchar(3)`, the number types'
 *   castToVarchar); DuckDB's parser drops the n. The casts are found in the query's text
 *   ({@link boundedVarcharCasts}) and become {@link VARCHAR_CAST_MACRO}.
 */

import { splitTypeList } from './query-text';

/** Where the macros live: the instance's own in-memory database, never a data-dir database. */
const MACRO_SCHEMA = 'memory.main';
export const DIVIDE_MACRO = 'athena_divide';
export const MODULUS_MACRO = 'athena_modulus';
export const DECIMAL_DIVIDE_MACRO = 'athena_decimal_divide';
export const VARCHAR_CAST_MACRO = { cast: 'athena_varchar_cast', try: 'athena_try_varchar_cast' } as const;

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

/** An exact value's digits without the point, as a HUGEINT (`-1.50` → -150; an integer as it is). */
const unscaled = (x: string): string => `CAST(replace(CAST(${x} AS VARCHAR), '.', '') AS HUGEINT)`;

/**
 * `athena_decimal_divide(a, b, rescale, scale, template)`: Trino's decimal quotient. The operands'
 * unscaled values are divided with the dividend scaled up by `rescale` (the result's scale minus
 * the dividend's plus the divisor's), the quotient rounded half away from zero and given back
 * `scale` digits after the point, as the type of `template` (the result's `decimal(p,s)`). The
 * arithmetic is exact in 128 bits: a dividend past them fails (NUMERIC_VALUE_OUT_OF_RANGE), as
 * Trino's does past its `Decimal overflow`.
 */
function decimalDivideMacro(): string {
  const num = `(${unscaled('a')} * CAST(rpad('1', rescale + 1, '0') AS HUGEINT))`;
  const den = unscaled('b');
  const quotient = `CAST(abs(${num}) // abs(${den}) + CASE WHEN 2 * (abs(${num}) % abs(${den})) >= abs(${den}) THEN 1 ELSE 0 END AS VARCHAR)`;
  const digits = `repeat('0', greatest(0, scale + 1 - length(${quotient}))) || ${quotient}`;
  const text = `CASE WHEN (${num} < 0) <> (${den} < 0) AND ${quotient} <> '0' THEN '-' ELSE '' END ||
    CASE WHEN scale = 0 THEN ${digits} ELSE left(${digits}, length(${digits}) - scale) || '.' || right(${digits}, scale) END`;
  return `CREATE MACRO ${MACRO_SCHEMA}.${DECIMAL_DIVIDE_MACRO}(a, b, rescale, scale, template) AS cast_to_type(CASE
    WHEN a IS NULL OR b IS NULL THEN CAST(NULL AS VARCHAR)
    WHEN ${den} = 0 THEN error('${DIVISION_BY_ZERO_REASON}')
    ELSE ${text} END, template)`;
}

/**
 * `athena_varchar_cast(x, n)` and its TRY_CAST form: Trino's cast to `varchar(n)`. Text is cut to
 * n characters; any other value's text must fit, or the cast fails (the TRY form: NULL).
 */
function varcharCastMacros(): string[] {
  return (['cast', 'try'] as const).map((kind) => {
    const tooLong =
      kind === 'try'
        ? 'CAST(NULL AS VARCHAR)'
        : `error('INVALID_CAST_ARGUMENT: Value ' || CAST(x AS VARCHAR) || ' cannot be represented as varchar(' || n || ')')`;
    return `CREATE MACRO ${MACRO_SCHEMA}.${VARCHAR_CAST_MACRO[kind]}(x, n) AS CASE
      WHEN x IS NULL THEN CAST(NULL AS VARCHAR)
      WHEN typeof(x) = 'VARCHAR' THEN left(CAST(x AS VARCHAR), n)
      WHEN length(CAST(x AS VARCHAR)) <= n THEN CAST(x AS VARCHAR)
      ELSE ${tooLong} END`;
  });
}

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
  decimalDivideMacro(),
  ...varcharCastMacros(),
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
  /** Casts to `varchar(n)`. */
  readonly casts: number;
}

const isPlainCall = (node: AstNode, name: string, args: number): boolean =>
  node.class === 'FUNCTION' &&
  typeof node.function_name === 'string' &&
  node.function_name.toLowerCase() === name &&
  Array.isArray(node.children) &&
  node.children.length === args &&
  !node.schema &&
  !node.catalog;

const isDivision = (node: AstNode): boolean => isPlainCall(node, '/', 2);

/** Every object of the tree, parents before their children, in key order. */
function preOrder(ast: unknown, visit: (node: AstNode) => void): void {
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) {
      node.forEach(walk);
      return;
    }
    if (typeof node !== 'object' || node === null) return;
    visit(node as AstNode);
    Object.values(node).forEach(walk);
  };
  walk(ast);
}

/**
 * The decimal that holds an exact numeric type (a DuckDB type name), as Trino coerces an integer
 * operand of a decimal operator: tinyint `decimal(3,0)`, smallint `(5,0)`, integer `(10,0)`,
 * bigint `(19,0)`. An integer literal is an integer, as in Trino; DuckDB's own integer types are
 * taken as the Athena types they are reported as (types.ts: HUGEINT, a sum of integers, is a
 * bigint; the unsigned ones widened). Undefined for an inexact or other type.
 */
export function exactNumericType(
  type: string,
): { precision: number; scale: number; decimal: boolean } | undefined {
  const decimal = /^DECIMAL\((\d+),\s*(\d+)\)$/.exec(type);
  if (decimal) return { precision: Number(decimal[1]), scale: Number(decimal[2]), decimal: true };
  const digits: Record<string, number> = {
    TINYINT: 3,
    SMALLINT: 5,
    UTINYINT: 5,
    INTEGER: 10,
    INTEGER_LITERAL: 10,
    USMALLINT: 10,
    BIGINT: 19,
    UINTEGER: 19,
    HUGEINT: 19,
    UBIGINT: 20,
  };
  const precision = digits[type];
  return precision === undefined ? undefined : { precision, scale: 0, decimal: false };
}

/** How one division of decimals is computed: Trino's result type and the dividend's rescale. */
export interface DecimalDivision {
  readonly precision: number;
  readonly scale: number;
  /** The result's scale minus the dividend's plus the divisor's: the dividend's shift left. */
  readonly rescale: number;
}

/**
 * Trino's `decimal(p1,s1) / decimal(p2,s2)`: `decimal(min(38, p1 + s2 + max(s2 - s1, 0)),
 * max(s1, s2))` (DecimalOperators.decimalDivideOperator). Undefined unless both operands are exact
 * and one is a decimal: two integers divide as integers, anything inexact as a double.
 */
export function decimalDivision(left: string, right: string): DecimalDivision | undefined {
  const a = exactNumericType(left);
  const b = exactNumericType(right);
  if (!a || !b || !(a.decimal || b.decimal)) return undefined;
  const scale = Math.max(a.scale, b.scale);
  return {
    precision: Math.min(38, a.precision + b.scale + Math.max(b.scale - a.scale, 0)),
    scale,
    rescale: scale - a.scale + b.scale,
  };
}

/**
 * What a division probed by {@link rewriteForTrino}'s `probeSite` becomes: `date_diff(a, b)`, a
 * call no pair of arguments fits (date_diff takes three), so that binding fails with DuckDB's
 * "No function matches the given name and argument types 'date_diff(DECIMAL(10,2),
 * INTEGER_LITERAL)'": the operands' types as bound, where they are, whatever they come from (a
 * CSV table's view included, which DuckDB's json_serialize_plan cannot write).
 */
const PROBE_FUNCTION = 'date_diff';

/** The operand types a probe's binding error names, or undefined for any other error. */
export function probedOperandTypes(message: string): readonly [string, string] | undefined {
  const args = new RegExp(`argument types '${PROBE_FUNCTION}\\((.*)\\)'`).exec(message)?.[1];
  if (args === undefined) return undefined;
  const types = splitTypeList(args);
  return types.length === 2 ? [types[0] ?? '', types[1] ?? ''] : undefined;
}

/** How many two-argument `/` the tree has: the divisions {@link rewriteForTrino} numbers 0, 1, …. */
export function countDivisions(ast: unknown): number {
  let count = 0;
  preOrder(ast, (node) => {
    if (isDivision(node)) count++;
  });
  return count;
}

const functionNode = (name: string, children: unknown[], qualified = false): AstNode => ({
  class: 'FUNCTION',
  type: 'FUNCTION',
  alias: '',
  function_name: name,
  schema: qualified ? (MACRO_SCHEMA.split('.')[1] ?? '') : '',
  catalog: qualified ? (MACRO_SCHEMA.split('.')[0] ?? '') : '',
  children,
  filter: null,
  order_bys: { type: 'ORDER_MODIFIER', orders: [] },
  distinct: false,
  is_operator: false,
  export_state: false,
});

const constantNode = (value: number | string): AstNode => ({
  class: 'CONSTANT',
  type: 'VALUE_CONSTANT',
  alias: '',
  value: {
    type: { id: typeof value === 'number' ? 'INTEGER' : 'VARCHAR', type_info: null },
    is_null: false,
    value,
  },
});

/** `CAST(NULL AS DECIMAL(p,s))`: a value of the type a macro's result is cast to. */
const decimalTemplateNode = (precision: number, scale: number): AstNode => ({
  class: 'CAST',
  type: 'OPERATOR_CAST',
  alias: '',
  child: {
    class: 'CONSTANT',
    type: 'VALUE_CONSTANT',
    alias: '',
    value: { type: { id: 'NULL', type_info: null }, is_null: true },
  },
  cast_type: {
    id: 'DECIMAL',
    type_info: { type: 'DECIMAL_TYPE_INFO', alias: '', extension_info: null, width: precision, scale },
  },
  try_cast: false,
});

/**
 * Makes `target` the node `source` is (in place: its parent keeps pointing at it), under the
 * target's alias (`SELECT a / b AS q`: a subquery's column is named by it).
 */
function replaceNode(target: AstNode, source: AstNode): void {
  const alias = target.alias;
  for (const key of Object.keys(target)) delete target[key];
  Object.assign(target, source, typeof alias === 'string' && alias !== '' ? { alias } : {});
}

/**
 * Replaces each `?` of a parse tree (PARAMETER, numbered from 1 in the order the query writes
 * them) inside a WHERE clause by a copy of its expression (`expressions[n - 1]`, without
 * positions). Returns the number of the first `?` found outside every WHERE clause (a select
 * list, a JOIN's ON, HAVING, LIMIT, …: Athena takes none there), or undefined when all were in one.
 */
export function substituteParameters(ast: unknown, expressions: readonly unknown[]): number | undefined {
  let outside: number | undefined;
  const walk = (node: unknown, inWhere: boolean): void => {
    if (Array.isArray(node)) {
      node.forEach((item) => walk(item, inWhere));
      return;
    }
    if (typeof node !== 'object' || node === null) return;
    const record = node as AstNode;
    if (record.class === 'PARAMETER') {
      const number = Number(record.identifier);
      const expression = expressions[number - 1];
      if (!inWhere || expression === undefined) {
        outside = outside === undefined ? number : Math.min(outside, number);
        return;
      }
      const copy: unknown = structuredClone(expression);
      preOrder(copy, (inner) => delete inner.query_location);
      replaceNode(record, copy as AstNode);
      return;
    }
    const select = record.type === 'SELECT_NODE';
    for (const [key, value] of Object.entries(record)) walk(value, select ? key === 'where_clause' : inWhere);
  };
  walk(ast, false);
  return outside;
}

/** Options of {@link rewriteForTrino}. */
export interface TrinoRewriteOptions {
  /** Which avg macros: `fast` (numeric columns) or `any`. @default 'fast' */
  readonly averages?: keyof typeof AVG_MACROS;
  /** The divisions of decimals, by their number (see {@link divisionProbe}), and how to compute them. */
  readonly decimalDivisions?: ReadonlyMap<number, DecimalDivision>;
  /** The casts to `varchar(n)`: n by the position of their CAST (see query-text.ts). */
  readonly varcharCasts?: ReadonlyMap<number, number>;
  /** The division whose operand types binding is to tell (see {@link probedOperandTypes}). */
  readonly probeSite?: number;
}

/**
 * Replaces, in DuckDB's serialized parse tree (`json_serialize_sql`), every two-argument `/`, `%`
 * and unqualified `mod()` by the division macros (a `/` that `options.decimalDivisions` names by
 * the decimal one), every aggregate `avg(x)` (also `avg(DISTINCT x)`; not one with a FILTER or
 * ORDER BY, nor a window's) by the avg macro of the kind `options.averages` names, and each cast
 * that `options.varcharCasts` names by the varchar(n) macro. The tree is changed in place, and
 * loses its `query_location`s: they point into the query as written, not into the rewritten text
 * (and "none" is 2^64-1, which a JS number cannot hold). A result of zero rewrites means the query
 * can run as written.
 */
export function rewriteForTrino(ast: unknown, options: TrinoRewriteOptions = {}): TrinoRewrites {
  let divisions = 0;
  let averages = 0;
  let casts = 0;
  let site = 0;
  const rename = (node: AstNode, name: string): void => {
    const [catalog, schema] = MACRO_SCHEMA.split('.');
    Object.assign(node, { function_name: name, catalog, schema, is_operator: false });
  };
  preOrder(ast, (record) => {
    const at = record.query_location;
    delete record.query_location;
    if (record.class === 'CAST' && typeof at === 'number' && options.varcharCasts?.has(at)) {
      const length = options.varcharCasts.get(at) ?? 0;
      const macro = record.try_cast === true ? VARCHAR_CAST_MACRO.try : VARCHAR_CAST_MACRO.cast;
      replaceNode(record, functionNode(macro, [record.child, constantNode(length)], true));
      casts++;
    } else if (isDivision(record)) {
      const number = site++;
      const decimal = options.decimalDivisions?.get(number);
      if (number === options.probeSite) {
        replaceNode(record, functionNode(PROBE_FUNCTION, record.children as unknown[]));
      } else if (decimal) {
        const [a, b] = record.children as unknown[];
        replaceNode(
          record,
          functionNode(
            DECIMAL_DIVIDE_MACRO,
            [
              a,
              b,
              constantNode(decimal.rescale),
              constantNode(decimal.scale),
              decimalTemplateNode(decimal.precision, decimal.scale),
            ],
            true,
          ),
        );
      } else {
        rename(record, DIVIDE_MACRO);
      }
      divisions++;
    } else if (isPlainCall(record, '%', 2) || isPlainCall(record, 'mod', 2)) {
      rename(record, MODULUS_MACRO);
      divisions++;
    } else if (
      isPlainCall(record, 'avg', 1) &&
      record.filter === null &&
      !((record.order_bys as { orders?: unknown[] } | undefined)?.orders ?? []).length
    ) {
      const macros = AVG_MACROS[options.averages ?? 'fast'];
      rename(record, record.distinct === true ? macros.distinct : macros.plain);
      record.distinct = false;
      averages++;
    }
  });
  return { divisions, averages, casts };
}
