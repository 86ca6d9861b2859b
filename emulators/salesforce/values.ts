/**
 * Salesforce field values: parsing what a client sends (JSON values from REST, strings from
 * Bulk CSV) into the stored form, and the stored forms themselves.
 *
 * Stored forms (what the REST API returns, salesforce-wire.md "SOQL query"):
 * - datetime: `2024-05-20T20:49:32.000+0000`, always UTC, so that stored datetimes compare
 *   correctly as strings (the SOQL evaluator relies on it);
 * - date: `2024-05-20`; time: `20:49:32.000Z`;
 * - int/double/currency/percent: JSON numbers; boolean: JSON booleans; the rest: strings.
 *
 * Numbers are kept exactly: a value a double holds with all its digits (`String(n)` gives it
 * back) is stored as a JS number; one that it cannot hold (an 18-digit currency amount, past
 * 2^53) as an {@link SfDecimal}, which goes on the wire with the same digits — as a JSON number
 * in REST answers (see http.ts), as text in Bulk CSV. Exact values come in as text: Bulk CSV, a
 * seed's strings, and JSON request bodies, whose long number literals are read without going
 * through a double (http.ts). SOQL filters and ORDER BY compare such values as doubles.
 */
import type { FieldDescribe } from './describe';
import { normalizeId } from './ids';
import type { SfValue } from './store';

const pad = (n: number, width: number): string => String(n).padStart(width, '0');

/**
 * Where a JSON text carries an {@link SfDecimal} as a string to be written as a number:
 * `toJSON` writes this prefix and the digits, and the JSON writer (http.ts) turns
 * `"\u0001decimal:123…"` back into `123…`. A control character no client string holds.
 */
export const DECIMAL_JSON_MARK = '\u0001decimal:';

/** A number kept with all its digits (canonical text: `-?\d+(\.\d+)?`, no trailing zeros). */
export class SfDecimal {
  constructor(readonly text: string) {}

  /** The digits, as Bulk CSV and String() show them. */
  toString(): string {
    return this.text;
  }

  /** The marked digits: see {@link DECIMAL_JSON_MARK}. */
  toJSON(): string {
    return DECIMAL_JSON_MARK + this.text;
  }

  /** The nearest double (for SOQL comparisons). */
  valueOf(): number {
    return Number(this.text);
  }
}

/** Formats an instant as Salesforce's REST datetime, e.g. `2024-05-20T20:49:32.000+0000`. */
export function formatDatetime(instant: Date | number): string {
  const d = typeof instant === 'number' ? new Date(instant) : instant;
  return (
    `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)}` +
    `T${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}:${pad(d.getUTCSeconds(), 2)}.${pad(d.getUTCMilliseconds(), 3)}+0000`
  );
}

/**
 * A datetime a client writes, as a record keeps it: to the second, its milliseconds dropped.
 * "Regular dateTime fields are full timestamps with a precision of one second" (Object Reference,
 * "Primitive Data Types"); the milliseconds sent are lost (a query reads `.000`). The emulator's
 * own timestamps (`SystemModstamp`, `CreatedDate`) and seeded values keep theirs.
 */
export function toWholeSecond(value: SfValue): SfValue {
  return typeof value === 'string' ? value.replace(/\.\d{3}\+0000$/, '.000+0000') : value;
}

/** Formats an instant's UTC calendar date as `yyyy-MM-dd`. */
export function formatDate(instant: Date | number): string {
  const d = typeof instant === 'number' ? new Date(instant) : instant;
  return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)}`;
}

const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATETIME_RE =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}(?::?\d{2})?)?$/;

function validCalendarDate(y: number, m: number, d: number): boolean {
  if (m < 1 || m > 12 || d < 1) return false;
  const days = new Date(Date.UTC(y, m, 0)).getUTCDate();
  return d <= days;
}

/**
 * Parses a date (`2024-01-31`) to its UTC midnight in epoch milliseconds, or undefined when
 * it is not a real calendar date.
 */
export function parseDate(text: string): number | undefined {
  const m = DATE_RE.exec(text);
  if (!m) return undefined;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (!validCalendarDate(y, mo, d)) return undefined;
  return Date.UTC(y, mo - 1, d);
}

/**
 * Parses a datetime in the forms Salesforce accepts (`2024-01-31T10:00:00Z`,
 * `2024-01-31T10:00:00.123+02:00`, `…+0200`, without zone = UTC) to epoch milliseconds, or
 * undefined when malformed or not a real date/time.
 */
export function parseDatetime(text: string): number | undefined {
  const m = DATETIME_RE.exec(text);
  if (!m) return undefined;
  const [y, mo, d, h, mi] = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5])];
  const s = m[6] === undefined ? 0 : Number(m[6]);
  const ms = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, '0'));
  if (!validCalendarDate(y, mo, d) || h > 23 || mi > 59 || s > 59) return undefined;
  let offsetMinutes = 0;
  const zone = m[8];
  if (zone && zone !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const oh = Number(digits.slice(0, 2));
    const om = digits.length > 2 ? Number(digits.slice(2, 4)) : 0;
    if (oh > 14 || om > 59) return undefined;
    offsetMinutes = sign * (oh * 60 + om);
  }
  return Date.UTC(y, mo - 1, d, h, mi, s, ms) - offsetMinutes * 60_000;
}

/** Why a value cannot be stored in a field; `code` is the per-record `statusCode`. */
export interface ValueProblem {
  code: string;
  message: string;
}

/** The outcome of {@link coerceFieldValue}. */
export type CoercedValue =
  { ok: true; value: SfValue } | { ok: false; problem: ValueProblem; typeMismatch: boolean };

const NUMERIC = new Set(['int', 'double', 'currency', 'percent']);
const TEXT = new Set([
  'string',
  'textarea',
  'email',
  'phone',
  'url',
  'picklist',
  'multipicklist',
  'combobox',
  'base64',
]);
// A deliberately loose check, close to what Salesforce accepts (unverified: Salesforce's
// exact grammar for email fields is not documented).
const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/** Whether a field holds a number. */
export function isNumericField(field: FieldDescribe): boolean {
  return NUMERIC.has(field.type);
}

/** Whether a field holds text (compared case-insensitively by SOQL). */
export function isTextField(field: FieldDescribe): boolean {
  return TEXT.has(field.type);
}

function typeMismatch(field: FieldDescribe, raw: unknown): CoercedValue {
  // Modelled on Bulk API 2.0's per-record text "… is not a valid value for the type
  // xsd:double" (unverified in this exact wording). The REST API rejects such a body as a
  // whole with JSON_PARSER_ERROR instead: see SalesforceStore's `typeErrors` option.
  const shown = typeof raw === 'string' ? raw : JSON.stringify(raw);
  return {
    ok: false,
    typeMismatch: true,
    problem: {
      code: 'INVALID_TYPE_ON_FIELD_IN_RECORD',
      message: `${field.label}: value not of required type: ${shown}`,
    },
  };
}

/**
 * Checks one value against a field's describe and returns it in stored form: type
 * (strings are accepted for every type, as Bulk CSV sends them), text length
 * (STRING_TOO_LONG), restricted picklist (INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST),
 * precision/scale and int digits (NUMBER_OUTSIDE_VALID_RANGE), email syntax
 * (INVALID_EMAIL_ADDRESS), reference id syntax (MALFORMED_ID). `null` (and `undefined`)
 * pass through as null; whether the field may be null is the caller's check.
 */
export function coerceFieldValue(field: FieldDescribe, raw: unknown): CoercedValue {
  if (raw === null || raw === undefined) return { ok: true, value: null };
  // A long number literal of a JSON body: its digits for a number field, else what JSON.parse gives.
  if (raw instanceof SfDecimal) raw = NUMERIC.has(field.type) ? raw.text : Number(raw.text);
  switch (field.type) {
    case 'boolean': {
      if (typeof raw === 'boolean') return { ok: true, value: raw };
      if (typeof raw === 'string') {
        const lower = raw.trim().toLowerCase();
        if (lower === 'true' || lower === '1') return { ok: true, value: true };
        if (lower === 'false' || lower === '0') return { ok: true, value: false };
      }
      return typeMismatch(field, raw);
    }
    case 'int':
    case 'double':
    case 'currency':
    case 'percent':
      return coerceNumber(field, raw);
    case 'date': {
      if (typeof raw !== 'string') return typeMismatch(field, raw);
      const text = raw.trim();
      // A datetime given for a date keeps the day it writes, whatever its offset (unverified:
      // "Specifying an offset for date is not supported", REST API Developer Guide, "Valid Date and
      // DateTime Formats"); its day in UTC could be another.
      const ms =
        parseDate(text) ?? (parseDatetime(text) === undefined ? undefined : parseDate(text.slice(0, 10)));
      return ms === undefined ? typeMismatch(field, raw) : { ok: true, value: formatDate(ms) };
    }
    case 'datetime': {
      if (typeof raw !== 'string') return typeMismatch(field, raw);
      const text = raw.trim();
      const ms = parseDatetime(text) ?? parseDate(text);
      return ms === undefined ? typeMismatch(field, raw) : { ok: true, value: formatDatetime(ms) };
    }
    case 'time': {
      // A time of day: 00:00 to 23:59:59.999 (24:00 is no time Salesforce holds).
      if (typeof raw !== 'string' || !/^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,3})?)?Z?$/.test(raw))
        return typeMismatch(field, raw);
      return { ok: true, value: raw };
    }
    case 'id':
    case 'reference': {
      if (typeof raw !== 'string') return typeMismatch(field, raw);
      if (raw === '') return { ok: true, value: null };
      const id = normalizeId(raw);
      if (!id) {
        return {
          ok: false,
          typeMismatch: false,
          problem: { code: 'MALFORMED_ID', message: `${field.label}: id value of incorrect type: ${raw}` },
        };
      }
      return { ok: true, value: id };
    }
    default:
      return coerceText(field, raw);
  }
}

/**
 * Trims what Java's `String.trim()` trims, U+0000 to U+0020 at both ends (not U+00A0): Salesforce
 * stores text without leading or trailing whitespace (Apex Developer Guide, "Primitive Data
 * Types": sObject String field values "can never include leading and trailing whitespace").
 */
export function salesforceTrim(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && text.charCodeAt(start) <= 0x20) start++;
  while (end > start && text.charCodeAt(end - 1) <= 0x20) end--;
  return start === 0 && end === text.length ? text : text.slice(start, end);
}

/**
 * A multi-select picklist value as Salesforce stores it: each value once, in the order of the
 * field's definition (Help article 000231088: API access returns the values "in their created
 * order"), values the definition does not list after them in the order given, empty ones dropped.
 * Dropping repeated values is unverified (no document says it; a multi-select holds a value or not).
 */
export function canonicalMultipicklist(field: FieldDescribe, text: string): string {
  const position = new Map(field.picklistValues.map((p, i) => [p.value, i]));
  const values = [
    ...new Set(
      text
        .split(';')
        .map((v) => listedCase(field, v))
        .filter((v) => v !== ''),
    ),
  ];
  const rank = (v: string): number => position.get(v) ?? position.size;
  return values
    .map((v, i) => ({ v, i }))
    .sort((a, b) => rank(a.v) - rank(b.v) || a.i - b.i)
    .map(({ v }) => v)
    .join(';');
}

/**
 * An unrestricted picklist's value as Salesforce stores it: as its definition lists it when it
 * lists it in another case (Help article 000386557, "Picklist fields are not case sensitive and
 * cannot contain duplicate inactive types": "TEST" and "test" sent after "Test" "will then become
 * "Test""); else as given. A restricted picklist's value is kept as given and checked as it is
 * (whether Salesforce takes `gold` for `Gold` there is not documented).
 */
export function listedCase(field: FieldDescribe, value: string): string {
  if (field.restrictedPicklist) return value;
  const lower = value.toLowerCase();
  return field.picklistValues.find((p) => p.value.toLowerCase() === lower)?.value ?? value;
}

function coerceText(field: FieldDescribe, raw: unknown): CoercedValue {
  let text: string;
  if (typeof raw === 'string') text = raw;
  else if (typeof raw === 'number' || typeof raw === 'boolean') text = String(raw);
  else return typeMismatch(field, raw);
  if (field.type !== 'base64') text = salesforceTrim(text);
  if (field.type === 'multipicklist') text = canonicalMultipicklist(field, text);
  else if (field.type === 'picklist') text = listedCase(field, text);
  // "Addresses are stored as lower case in Salesforce" (Help article 000384328, "Salesforce Email
  // Address Format Technical Standards Validation").
  else if (field.type === 'email') text = text.toLowerCase();
  // String.length counts UTF-16 code units, as Salesforce (Java) does: an emoji counts 2
  // (Help article 005166849).
  if (field.length > 0 && text.length > field.length) {
    return {
      ok: false,
      typeMismatch: false,
      problem: {
        code: 'STRING_TOO_LONG',
        message: `${field.label}: data value too large: ${text} (max length=${field.length})`,
      },
    };
  }
  if (
    (field.type === 'picklist' || field.type === 'multipicklist') &&
    field.restrictedPicklist &&
    text !== ''
  ) {
    const values = field.type === 'multipicklist' ? text.split(';') : [text];
    const allowed = values.every((v) => field.picklistValues.some((p) => p.active && p.value === v));
    if (!allowed) {
      return {
        ok: false,
        typeMismatch: false,
        problem: {
          code: 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST',
          message: `${field.label}: bad value for restricted picklist field: ${text}`,
        },
      };
    }
  }
  if (field.type === 'email' && text !== '' && !EMAIL_RE.test(text)) {
    return {
      ok: false,
      typeMismatch: false,
      problem: { code: 'INVALID_EMAIL_ADDRESS', message: `${field.label}: invalid email address: ${text}` },
    };
  }
  // Salesforce stores an empty text value as null.
  return { ok: true, value: text === '' ? null : text };
}

const NUMBER_TEXT = /^\s*([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?\s*$/;

function coerceNumber(field: FieldDescribe, raw: unknown): CoercedValue {
  if (typeof raw === 'string') return coerceNumberText(field, raw);
  let n: number;
  if (typeof raw === 'number') n = raw;
  else return typeMismatch(field, raw);
  if (!Number.isFinite(n)) return typeMismatch(field, raw);
  const outOfRange: CoercedValue = {
    ok: false,
    typeMismatch: false,
    problem: {
      code: 'NUMBER_OUTSIDE_VALID_RANGE',
      message: `${field.label}: value outside of valid range on numeric field: ${String(raw)}`,
    },
  };
  if (field.type === 'int') {
    if (!Number.isInteger(n)) return typeMismatch(field, raw);
    const digits = field.digits > 0 ? field.digits : 9;
    return Math.abs(n) >= 10 ** digits ? outOfRange : { ok: true, value: n };
  }
  // precision counts all digits, scale those right of the point: at most precision − scale
  // digits left of it. The decimals are kept as given: Salesforce enforces a field's decimal
  // places only in its UI, and a value written through the API is stored and read back unrounded
  // (Help articles 000212661 and 000387302: 237.631 in a Number(3,1) field stays 237.631).
  const scale = Math.max(0, field.scale);
  if (field.precision > 0 && Math.trunc(Math.abs(n)) >= 10 ** (field.precision - scale)) return outOfRange;
  return { ok: true, value: Object.is(n, -0) ? 0 : n };
}

/**
 * Decimal places a number written through the API keeps, whatever the field's scale (Help article
 * 000212661: "up to 24 decimal points via API"); more are rounded half up.
 */
export const API_DECIMAL_PLACES = 24;

/**
 * A number given as text (Bulk CSV, a seed, a long JSON literal), exactly: the same checks as for
 * a JS number, done on the digits (BigInt), so that no digit is lost.
 */
function coerceNumberText(field: FieldDescribe, raw: string): CoercedValue {
  const m = NUMBER_TEXT.exec(raw);
  const intPart = m?.[2] ?? '';
  const fracPart = m?.[3] ?? '';
  if (!m || (intPart === '' && fracPart === '')) return typeMismatch(field, raw);
  const outOfRange: CoercedValue = {
    ok: false,
    typeMismatch: false,
    problem: {
      code: 'NUMBER_OUTSIDE_VALID_RANGE',
      message: `${field.label}: value outside of valid range on numeric field: ${raw.trim()}`,
    },
  };
  const negative = m[1] === '-';
  // The value is digits × 10^exponent.
  const digits = BigInt(intPart + fracPart || '0');
  const exponent = Number(m[4] ?? 0) - fracPart.length;
  if (!Number.isSafeInteger(exponent) || Math.abs(exponent) > 400) return typeMismatch(field, raw);
  const scale = field.type === 'int' ? 0 : API_DECIMAL_PLACES;
  let scaled: bigint; // the magnitude × 10^scale, rounded half up
  if (exponent + scale >= 0) scaled = digits * 10n ** BigInt(exponent + scale);
  else {
    const divisor = 10n ** BigInt(-(exponent + scale));
    if (field.type === 'int' && digits % divisor !== 0n) return typeMismatch(field, raw);
    scaled = digits / divisor + ((digits % divisor) * 2n >= divisor ? 1n : 0n);
  }
  const limitDigits =
    field.type === 'int' ? (field.digits > 0 ? field.digits : 9) : field.precision - Math.max(0, field.scale);
  if ((field.type === 'int' || field.precision > 0) && scaled >= 10n ** BigInt(limitDigits + scale)) {
    return outOfRange;
  }
  return { ok: true, value: decimalValue(negative && scaled !== 0n, scaled, scale) };
}

/** ±scaled / 10^scale as a JS number when a double holds it exactly, else as an {@link SfDecimal}. */
function decimalValue(negative: boolean, scaled: bigint, scale: number): number | SfDecimal {
  let text = scaled.toString();
  if (scale > 0) {
    text = text.padStart(scale + 1, '0');
    text = `${text.slice(0, -scale)}.${text.slice(-scale)}`.replace(/\.?0+$/, '');
  }
  if (negative) text = `-${text}`;
  const n = Number(text);
  return String(n) === text ? n : new SfDecimal(text);
}

/** Significant digits a double always gives back exactly (IEEE 754 binary64: 15). */
const DOUBLE_EXACT_DIGITS = 15;
const ESCAPED_DECIMAL = /"\\u0001decimal:(-?\d+(?:\.\d+)?)"/g;

/** JSON.stringify, with {@link SfDecimal} values written as JSON numbers with all their digits. */
export function stringifyJson(value: unknown): string {
  const text = JSON.stringify(value);
  // JSON.stringify writes the mark's control character as the escape `\u0001`.
  return text.includes('\\u0001decimal:') ? text.replace(ESCAPED_DECIMAL, '$1') : text;
}

/**
 * JSON.parse, except that a number literal with more significant digits than a double keeps
 * (`123456789012345678`) becomes an {@link SfDecimal} instead of losing digits.
 * @throws SyntaxError as JSON.parse
 */
export function parseJsonKeepingDigits(text: string): unknown {
  let parts: string[] | undefined;
  let last = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // A string: skip it, escapes included.
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c) i++;
        else if (d === 0x22) break;
      }
      continue;
    }
    if (c !== 0x2d && (c < 0x30 || c > 0x39)) continue;
    let j = i + 1;
    while (j < text.length && /[-+0-9.eE]/.test(text[j] as string)) j++;
    const token = text.slice(i, j);
    const mantissa = token
      .replace(/^-/, '')
      .replace(/[eE].*$/, '')
      .replace('.', '')
      .replace(/^0+/, '');
    if (mantissa.length > DOUBLE_EXACT_DIGITS && /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(token)) {
      (parts ??= []).push(text.slice(last, i), JSON.stringify(DECIMAL_JSON_MARK + token));
      last = j;
    }
    i = j - 1;
  }
  if (!parts) return JSON.parse(text) as unknown;
  parts.push(text.slice(last));
  return JSON.parse(parts.join(''), (_key, value: unknown) =>
    typeof value === 'string' && value.startsWith(DECIMAL_JSON_MARK)
      ? new SfDecimal(value.slice(DECIMAL_JSON_MARK.length))
      : value,
  ) as unknown;
}
