/**
 * Compiles a parsed SOQL query against an object's describe into a record predicate and a
 * sort comparator, resolving field names case-insensitively to their describe casing.
 *
 * Semantics (SOQL and SOSL Reference, "Comparison Operators"), as the emulator implements them:
 * - `= null` / `!= null` test for (non-)emptiness; `!=` and `NOT IN` also match records whose
 *   field is null; `<`, `>`, `IN`, `LIKE` never match null.
 * - Text comparisons (`=`, `IN`, `LIKE`, `<`, `>`) are case-insensitive; ids compare exactly
 *   after normalisation to 18 characters.
 * - Datetimes compare as instants: the stored form is always UTC (`…+0000`) with a fixed
 *   width, so the literal is converted once to the stored form and compared as a string.
 * - Date literals (TODAY, LAST_N_DAYS:n, …) are ranges in UTC (the emulator's user time zone).
 */
import type { FieldDescribe, ObjectDescribe } from '../describe';
import { findField } from '../describe';
import { normalizeId } from '../ids';
import type { SfRecord, SfValue } from '../store';
import { formatDate, formatDatetime, isTextField, parseDate, parseDatetime, SfDecimal } from '../values';
import { SoqlError } from './errors';
import { malformedAt, positioned } from './lexer';
import type { Condition, FieldRef, Literal, SoqlQuery } from './parser';

/** A query compiled against a describe. */
export interface CompiledQuery {
  object: ObjectDescribe;
  /** Selected fields in select order (empty for COUNT()). */
  fields: FieldDescribe[];
  isCount: boolean;
  /** Matches the WHERE clause (always true without one). */
  matches: (record: SfRecord) => boolean;
  /** ORDER BY comparator, or null for none (insertion order). */
  compare: ((a: SfRecord, b: SfRecord) => number) | null;
  limit: number | null;
  offset: number | null;
}

/**
 * Resolves the query's fields against the describe and builds its predicate and comparator.
 * @throws SoqlError INVALID_FIELD for unknown fields, MALFORMED_QUERY for type mismatches.
 */
export function compileQuery(query: SoqlQuery, object: ObjectDescribe, now: Date): CompiledQuery {
  const resolve = (ref: FieldRef): FieldDescribe => resolveField(query.source, object, ref);
  const fields = query.fields.map(resolve);
  const seen = new Set<string>();
  for (const [i, f] of fields.entries()) {
    if (seen.has(f.name)) {
      const ref = query.fields[i] as FieldRef;
      throw malformedAt(query.source, ref.offset, `duplicate field selected: ${f.name}`);
    }
    seen.add(f.name);
  }
  const matches = query.where ? compileCondition(query.source, query.where, resolve, now) : () => true;
  const keys = query.orderBy.map((k) => ({
    field: resolve(k.field),
    descending: k.descending,
    nullsFirst: k.nullsFirst,
  }));
  let compare: CompiledQuery['compare'] = null;
  if (keys.length > 0) {
    const comparators = keys.map((k) => {
      const name = k.field.name;
      const text = isTextField(k.field);
      const dir = k.descending ? -1 : 1;
      const nullOrder = k.nullsFirst ? -1 : 1;
      return (a: SfRecord, b: SfRecord): number => {
        const va = a[name] ?? null;
        const vb = b[name] ?? null;
        if (va === vb) return 0;
        if (va === null) return nullOrder;
        if (vb === null) return -nullOrder;
        return dir * compareValues(va, vb, text);
      };
    });
    compare = (a, b) => {
      for (const c of comparators) {
        const r = c(a, b);
        if (r !== 0) return r;
      }
      return 0;
    };
  }
  return { object, fields, isCount: query.count, matches, compare, limit: query.limit, offset: query.offset };
}

function compareValues(a: SfValue, b: SfValue, text: boolean): number {
  if (typeof a === 'string' && typeof b === 'string') {
    if (text) {
      // "Sorting is case insensitive" (SOQL and SOSL Reference, ORDER BY).
      const la = a.toLowerCase();
      const lb = b.toLowerCase();
      return la < lb ? -1 : la > lb ? 1 : 0;
    }
    return a < b ? -1 : a > b ? 1 : 0;
  }
  if (typeof a === 'boolean' && typeof b === 'boolean') return a === b ? 0 : a ? 1 : -1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  // A number kept as SfDecimal (past 2^53) compares as the nearest double.
  if (a instanceof SfDecimal || b instanceof SfDecimal) return Number(a) - Number(b);
  return String(a) < String(b) ? -1 : 1;
}

/** The INVALID_FIELD text Salesforce returns for an unknown column. */
export function noSuchColumnMessage(field: string, objectName: string): string {
  return (
    `No such column '${field}' on entity '${objectName}'. If you are attempting to use a custom field, ` +
    `be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe ` +
    `call for the appropriate names.`
  );
}

function resolveField(source: string, object: ObjectDescribe, ref: FieldRef): FieldDescribe {
  if (ref.name.includes('.')) {
    const relationship = ref.name.split('.')[0] ?? ref.name;
    // Relationship queries (Owner.Name) are outside the emulator's subset.
    throw new SoqlError(
      'INVALID_FIELD',
      positioned(
        source,
        ref.offset,
        `Didn't understand relationship '${relationship}' in field path. If you are attempting to use a custom ` +
          `relationship, be sure to append the '__r' after the custom relationship name. Please reference your ` +
          `WSDL or the describe call for the appropriate names.`,
      ),
    );
  }
  const field = findField(object, ref.name);
  if (!field)
    throw new SoqlError(
      'INVALID_FIELD',
      positioned(source, ref.offset, noSuchColumnMessage(ref.name, object.name)),
    );
  return field;
}

type Resolve = (ref: FieldRef) => FieldDescribe;
type Predicate = (record: SfRecord) => boolean;

function compileCondition(source: string, condition: Condition, resolve: Resolve, now: Date): Predicate {
  switch (condition.kind) {
    case 'and': {
      const parts = condition.operands.map((c) => compileCondition(source, c, resolve, now));
      return (r) => parts.every((p) => p(r));
    }
    case 'or': {
      const parts = condition.operands.map((c) => compileCondition(source, c, resolve, now));
      return (r) => parts.some((p) => p(r));
    }
    case 'not': {
      const inner = compileCondition(source, condition.operand, resolve, now);
      return (r) => !inner(r);
    }
    case 'like': {
      const field = resolve(condition.field);
      if (!isTextField(field) && field.type !== 'id' && field.type !== 'reference') {
        // (unverified wording)
        throw new SoqlError(
          'INVALID_QUERY_FILTER_OPERATOR',
          positioned(source, condition.field.offset, `invalid operator on ${field.type} field: LIKE`),
        );
      }
      const regex = likeToRegExp(condition.pattern);
      const name = field.name;
      return (r) => {
        const v = r[name];
        return typeof v === 'string' && regex.test(v);
      };
    }
    case 'in': {
      const field = resolve(condition.field);
      const values = condition.values.map((lit) => literalFor(source, field, lit, now, 'IN'));
      const name = field.name;
      const includesNull = values.some((v) => v.kind === 'null');
      const set = new Set(
        values.flatMap((v) => (v.kind === 'value' ? [normalizeForEquality(field, v.value)] : [])),
      );
      if (condition.negated) {
        return (r) => {
          const v = r[name] ?? null;
          if (v === null) return !includesNull;
          return !set.has(normalizeForEquality(field, v));
        };
      }
      return (r) => {
        const v = r[name] ?? null;
        if (v === null) return includesNull;
        return set.has(normalizeForEquality(field, v));
      };
    }
    case 'compare': {
      const field = resolve(condition.field);
      const name = field.name;
      const lit = literalFor(source, field, condition.value, now, condition.op);
      const op = condition.op;
      if (lit.kind === 'null') {
        if (op === '=') return (r) => (r[name] ?? null) === null;
        if (op === '!=') return (r) => (r[name] ?? null) !== null;
        return () => false;
      }
      if (lit.kind === 'range') {
        const { from, to } = lit;
        const inRange = (v: SfValue): boolean => typeof v === 'string' && v >= from && v < to;
        switch (op) {
          case '=':
            return (r) => inRange(r[name] ?? null);
          case '!=':
            return (r) => !inRange(r[name] ?? null);
          case '<':
            return (r) => stringBelow(r[name], from);
          case '<=':
            return (r) => stringBelow(r[name], to);
          case '>':
            return (r) => stringAtLeast(r[name], to);
          case '>=':
            return (r) => stringAtLeast(r[name], from);
        }
      }
      const target = normalizeForEquality(field, lit.value);
      const text = isTextField(field);
      switch (op) {
        case '=':
          return (r) => {
            const v = r[name] ?? null;
            return v !== null && normalizeForEquality(field, v) === target;
          };
        case '!=':
          return (r) => {
            const v = r[name] ?? null;
            return v === null || normalizeForEquality(field, v) !== target;
          };
        default: {
          const wanted = op;
          return (r) => {
            const v = r[name] ?? null;
            if (v === null) return false;
            const c = compareValues(v, lit.value, text);
            return wanted === '<' ? c < 0 : wanted === '<=' ? c <= 0 : wanted === '>' ? c > 0 : c >= 0;
          };
        }
      }
    }
  }
}

function stringBelow(v: SfValue | undefined, bound: string): boolean {
  return typeof v === 'string' && v < bound;
}

function stringAtLeast(v: SfValue | undefined, bound: string): boolean {
  return typeof v === 'string' && v >= bound;
}

/** Equality key: text case-insensitively, everything else as stored. */
function normalizeForEquality(field: FieldDescribe, v: SfValue): SfValue {
  if (v instanceof SfDecimal) return Number(v.text);
  return typeof v === 'string' && isTextField(field) ? v.toLowerCase() : v;
}

type ResolvedLiteral =
  { kind: 'null' } | { kind: 'value'; value: SfValue } | { kind: 'range'; from: string; to: string };

const SOAP_TYPE_NAMES: Record<string, string> = {
  int: 'integer',
  double: 'double',
  currency: 'double',
  percent: 'double',
  boolean: 'boolean',
  date: 'date',
  datetime: 'dateTime',
};

function filterTypeError(source: string, field: FieldDescribe, lit: Literal, quoted: boolean): SoqlError {
  const typeName = SOAP_TYPE_NAMES[field.type] ?? 'string';
  const quoting = quoted ? 'should not be enclosed in quotes' : 'should be enclosed in quotes';
  return malformedAt(
    source,
    lit.offset,
    `value of filter criterion for field '${field.name}' must be of type ${typeName} and ${quoting}`,
  );
}

/** Converts a literal to the stored form of the field it is compared with, or a date range. */
function literalFor(
  source: string,
  field: FieldDescribe,
  lit: Literal,
  now: Date,
  op: string,
): ResolvedLiteral {
  if (lit.kind === 'null') return { kind: 'null' };
  switch (field.type) {
    case 'boolean':
      if (lit.kind === 'boolean') return { kind: 'value', value: lit.value };
      throw filterTypeError(source, field, lit, lit.kind === 'string');
    case 'int':
    case 'double':
    case 'currency':
    case 'percent':
      if (lit.kind === 'number') return { kind: 'value', value: lit.value };
      throw filterTypeError(source, field, lit, lit.kind === 'string');
    case 'date':
    case 'datetime': {
      const isDate = field.type === 'date';
      if (lit.kind === 'dateLiteral') {
        if (op === 'IN') throw malformedAt(source, lit.offset, `unexpected token: '${lit.name}'`);
        const [from, to] = dateLiteralRange(lit.name, lit.n, now, source, lit.offset);
        return isDate
          ? { kind: 'range', from: formatDate(from), to: formatDate(to) }
          : { kind: 'range', from: formatDatetime(from), to: formatDatetime(to) };
      }
      if (isDate && lit.kind === 'date') {
        const ms = parseDate(lit.value);
        if (ms === undefined)
          throw malformedAt(
            source,
            lit.offset,
            `line 1:${lit.offset} no viable alternative at character '${lit.value}'`,
          );
        return { kind: 'value', value: formatDate(ms) };
      }
      if (!isDate && lit.kind === 'datetime') {
        const ms = parseDatetime(lit.value);
        if (ms === undefined)
          throw malformedAt(
            source,
            lit.offset,
            `line 1:${lit.offset} no viable alternative at character '${lit.value}'`,
          );
        return { kind: 'value', value: formatDatetime(ms) };
      }
      // Salesforce says "should not be enclosed in quotes" for any wrong literal here,
      // including a date given for a datetime field.
      throw filterTypeError(source, field, lit, true);
    }
    case 'id':
    case 'reference': {
      if (lit.kind !== 'string') throw filterTypeError(source, field, lit, false);
      const id = normalizeId(lit.value);
      if (!id) {
        // Salesforce rejects a malformed id literal as a whole (unverified wording).
        throw new SoqlError(
          'INVALID_QUERY_FILTER_OPERATOR',
          positioned(source, lit.offset, `invalid ID field: ${lit.value}`),
        );
      }
      return { kind: 'value', value: id };
    }
    default:
      if (lit.kind === 'string') return { kind: 'value', value: lit.value };
      throw filterTypeError(source, field, lit, false);
  }
}

const DAY = 86_400_000;

/** [from, to) in epoch ms of a relative date literal, in UTC. */
function dateLiteralRange(
  name: string,
  n: number | null,
  now: Date,
  source: string,
  offset: number,
): [number, number] {
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  const y = now.getUTCFullYear();
  const m = now.getUTCMonth();
  // Weeks start on Sunday (the en_US locale).
  const weekStart = today - now.getUTCDay() * DAY;
  switch (name) {
    case 'TODAY':
      return [today, today + DAY];
    case 'YESTERDAY':
      return [today - DAY, today];
    case 'TOMORROW':
      return [today + DAY, today + 2 * DAY];
    case 'LAST_N_DAYS':
      // "starts with the current day and continues for the past n days"
      return [today - (n ?? 0) * DAY, today + DAY];
    case 'NEXT_N_DAYS':
      // "starts 00:00:00 of the next day and continues for the next n days"
      return [today + DAY, today + ((n ?? 0) + 1) * DAY];
    case 'THIS_WEEK':
      return [weekStart, weekStart + 7 * DAY];
    case 'LAST_WEEK':
      return [weekStart - 7 * DAY, weekStart];
    case 'NEXT_WEEK':
      return [weekStart + 7 * DAY, weekStart + 14 * DAY];
    case 'THIS_MONTH':
      return [Date.UTC(y, m, 1), Date.UTC(y, m + 1, 1)];
    case 'LAST_MONTH':
      return [Date.UTC(y, m - 1, 1), Date.UTC(y, m, 1)];
    case 'NEXT_MONTH':
      return [Date.UTC(y, m + 1, 1), Date.UTC(y, m + 2, 1)];
    case 'THIS_YEAR':
      return [Date.UTC(y, 0, 1), Date.UTC(y + 1, 0, 1)];
    case 'LAST_YEAR':
      return [Date.UTC(y - 1, 0, 1), Date.UTC(y, 0, 1)];
    case 'NEXT_YEAR':
      return [Date.UTC(y + 1, 0, 1), Date.UTC(y + 2, 0, 1)];
    default:
      throw malformedAt(source, offset, `unexpected token: '${name}'`);
  }
}

/** Translates a LIKE pattern (`%` any run, `_` one character, `\%` `\_` literal) to a case-insensitive RegExp. */
export function likeToRegExp(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i += 1) {
    const c = pattern[i] as string;
    if (c === '\\' && (pattern[i + 1] === '%' || pattern[i + 1] === '_')) {
      out += pattern[i + 1];
      i += 1;
    } else if (c === '%') out += '[\\s\\S]*';
    else if (c === '_') out += '[\\s\\S]';
    else out += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${out}$`, 'i');
}
