import type { FieldDescribe } from '../../../emulators/salesforce/describe';
import { findField } from '../../../emulators/salesforce/describe';
import {
  coerceFieldValue,
  parseJsonKeepingDigits,
  SfDecimal,
  stringifyJson,
  formatDate,
  formatDatetime,
  parseDate,
  parseDatetime,
} from '../../../emulators/salesforce/values';
import { repoDescribes } from './fixtures';

const lead = repoDescribes().find((d) => d.name === 'Lead');
const field = (name: string): FieldDescribe => {
  const f = lead && findField(lead, name);
  if (!f) throw new Error(`no field ${name}`);
  return f;
};

describe('values', () => {
  it('formats datetimes in the REST form, always UTC', () => {
    expect(formatDatetime(Date.UTC(2024, 4, 20, 20, 49, 32, 7))).toBe('2024-05-20T20:49:32.007+0000');
    expect(formatDate(Date.UTC(2024, 0, 31, 23, 59))).toBe('2024-01-31');
  });

  it('parses datetimes with Z, offsets with and without colon, fractions, and no zone', () => {
    const instant = Date.UTC(2024, 0, 31, 10, 0, 0);
    expect(parseDatetime('2024-01-31T10:00:00Z')).toBe(instant);
    expect(parseDatetime('2024-01-31T12:00:00+02:00')).toBe(instant);
    expect(parseDatetime('2024-01-31T05:30:00-0430')).toBe(instant);
    expect(parseDatetime('2024-01-31T10:00:00.000+0000')).toBe(instant);
    expect(parseDatetime('2024-01-31T10:00:00.5Z')).toBe(instant + 500);
    expect(parseDatetime('2024-01-31T10:00:00')).toBe(instant);
  });

  it('rejects impossible dates and times', () => {
    expect(parseDate('2023-02-29')).toBeUndefined();
    expect(parseDate('2024-02-29')).toBe(Date.UTC(2024, 1, 29));
    expect(parseDate('2024-13-01')).toBeUndefined();
    expect(parseDatetime('2024-01-31T24:00:00Z')).toBeUndefined();
    expect(parseDatetime('yesterday')).toBeUndefined();
  });

  it('stores datetimes in the canonical UTC form whatever the input offset', () => {
    expect(coerceFieldValue(field('CreatedDate'), '2024-01-31T12:00:00+02:00')).toEqual({
      ok: true,
      value: '2024-01-31T10:00:00.000+0000',
    });
  });

  it('stores the day a datetime given for a date field writes, whatever its offset', () => {
    const date: FieldDescribe = { ...field('CreatedDate'), type: 'date' };
    expect(coerceFieldValue(date, '2025-07-01')).toEqual({ ok: true, value: '2025-07-01' });
    expect(coerceFieldValue(date, '2025-07-01T23:30:00-05:00')).toEqual({ ok: true, value: '2025-07-01' });
    expect(coerceFieldValue(date, '2025-07-01T00:30:00+02:00')).toEqual({ ok: true, value: '2025-07-01' });
    expect(coerceFieldValue(date, '2025-07-01T24:00:00Z')).toMatchObject({ ok: false });
  });

  it('stores a time of day and refuses one past 23:59:59.999', () => {
    const time: FieldDescribe = { ...field('CreatedDate'), type: 'time' };
    expect(coerceFieldValue(time, '23:59:59.999Z')).toEqual({ ok: true, value: '23:59:59.999Z' });
    expect(coerceFieldValue(time, '00:00')).toEqual({ ok: true, value: '00:00' });
    for (const late of ['24:00:00.000Z', '23:60:00Z', '23:59:60Z', '99:99']) {
      expect(coerceFieldValue(time, late)).toMatchObject({
        ok: false,
        problem: { code: 'INVALID_TYPE_ON_FIELD_IN_RECORD' },
      });
    }
  });

  it('accepts strings for numbers and booleans, as Bulk CSV sends them', () => {
    expect(coerceFieldValue(field('NumberOfEmployees'), '250')).toEqual({ ok: true, value: 250 });
    expect(coerceFieldValue(field('IsDeleted'), 'true')).toEqual({ ok: true, value: true });
    expect(coerceFieldValue(field('IsDeleted'), 'FALSE')).toEqual({ ok: true, value: false });
    expect(coerceFieldValue(field('LeadScore__c'), ' 42 ')).toEqual({ ok: true, value: 42 });
  });

  it('keeps decimals beyond the scale, as the API does, and enforces precision − scale integer digits', () => {
    // LeadScore__c: precision 3, scale 0. Salesforce rounds to the scale only in its UI.
    expect(coerceFieldValue(field('LeadScore__c'), 41.5)).toEqual({ ok: true, value: 41.5 });
    expect(coerceFieldValue(field('LeadScore__c'), 999)).toEqual({ ok: true, value: 999 });
    expect(coerceFieldValue(field('LeadScore__c'), 999.7)).toEqual({ ok: true, value: 999.7 });
    expect(coerceFieldValue(field('LeadScore__c'), 1000)).toEqual({
      ok: false,
      typeMismatch: false,
      problem: {
        code: 'NUMBER_OUTSIDE_VALID_RANGE',
        message: 'Lead Score: value outside of valid range on numeric field: 1000',
      },
    });
    expect(coerceFieldValue(field('LeadScore__c'), -999)).toEqual({ ok: true, value: -999 });
  });

  it('enforces int digits and integrality', () => {
    expect(coerceFieldValue(field('NumberOfEmployees'), 99_999_999)).toEqual({ ok: true, value: 99_999_999 });
    expect(coerceFieldValue(field('NumberOfEmployees'), 100_000_000)).toMatchObject({
      ok: false,
      problem: { code: 'NUMBER_OUTSIDE_VALID_RANGE' },
    });
    expect(coerceFieldValue(field('NumberOfEmployees'), 1.5)).toMatchObject({
      ok: false,
      typeMismatch: true,
    });
  });

  it('keeps every digit of a number given as text, as a JS number when a double holds it', () => {
    // AnnualRevenue: currency, precision 18, scale 0; LeadScore__c: precision 3, scale 0.
    const revenue = field('AnnualRevenue');
    expect(coerceFieldValue(revenue, '987654321098765432')).toEqual({
      ok: true,
      value: new SfDecimal('987654321098765432'),
    });
    expect(coerceFieldValue(revenue, '-987654321098765432')).toEqual({
      ok: true,
      value: new SfDecimal('-987654321098765432'),
    });
    expect(coerceFieldValue(revenue, '9007199254740993.4')).toEqual({
      ok: true,
      value: new SfDecimal('9007199254740993.4'),
    });
    expect(coerceFieldValue(revenue, '1250000')).toEqual({ ok: true, value: 1_250_000 });
    expect(coerceFieldValue(revenue, '1.5e3')).toEqual({ ok: true, value: 1500 });
    expect(coerceFieldValue(revenue, '-0.4')).toEqual({ ok: true, value: -0.4 });
    // At most 24 decimal places are kept; more are rounded half up.
    expect(coerceFieldValue(revenue, '0.1234567890123456789012345')).toEqual({
      ok: true,
      value: new SfDecimal('0.123456789012345678901235'),
    });
    expect(coerceFieldValue(revenue, '1000000000000000000')).toMatchObject({
      ok: false,
      problem: { code: 'NUMBER_OUTSIDE_VALID_RANGE' },
    });
    expect(coerceFieldValue(field('LeadScore__c'), '41.5')).toEqual({ ok: true, value: 41.5 });
    expect(coerceFieldValue(field('LeadScore__c'), '-41.5')).toEqual({ ok: true, value: -41.5 });
    expect(coerceFieldValue(field('LeadScore__c'), '999.7')).toEqual({ ok: true, value: 999.7 });
    expect(coerceFieldValue(field('LeadScore__c'), '1000.2')).toMatchObject({
      ok: false,
      problem: { code: 'NUMBER_OUTSIDE_VALID_RANGE' },
    });
    expect(coerceFieldValue(field('NumberOfEmployees'), '1.5')).toMatchObject({
      ok: false,
      typeMismatch: true,
    });
    expect(coerceFieldValue(field('NumberOfEmployees'), '12.0')).toEqual({ ok: true, value: 12 });
    expect(coerceFieldValue(revenue, '12abc')).toMatchObject({ ok: false, typeMismatch: true });
    expect(coerceFieldValue(revenue, '.')).toMatchObject({ ok: false, typeMismatch: true });
    // A long JSON literal (parsed as SfDecimal) keeps its digits in a number field.
    expect(coerceFieldValue(revenue, new SfDecimal('123456789012345678'))).toEqual({
      ok: true,
      value: new SfDecimal('123456789012345678'),
    });
  });

  it('reads long JSON number literals without a double, and writes SfDecimal as JSON numbers', () => {
    const body = parseJsonKeepingDigits(
      '{"a": 123456789012345678, "b": -9007199254740993.25, "c": 42, "d": "123456789012345678", "e": [1e400, 0.1]}',
    ) as Record<string, unknown>;
    expect(body.a).toEqual(new SfDecimal('123456789012345678'));
    expect(body.b).toEqual(new SfDecimal('-9007199254740993.25'));
    expect(body.c).toBe(42);
    expect(body.d).toBe('123456789012345678');
    expect(body.e).toEqual([Infinity, 0.1]);
    expect(stringifyJson({ x: new SfDecimal('-987654321098765432.5'), y: [1, 'a"b'], z: null })).toBe(
      '{"x":-987654321098765432.5,"y":[1,"a\\"b"],"z":null}',
    );
    expect(() => parseJsonKeepingDigits('{"a": 12345678901234567890,}')).toThrow(SyntaxError);
  });

  it('reports type mismatches with the field label and the value', () => {
    expect(coerceFieldValue(field('AnnualRevenue'), 'lots')).toEqual({
      ok: false,
      typeMismatch: true,
      problem: {
        code: 'INVALID_TYPE_ON_FIELD_IN_RECORD',
        message: 'Annual Revenue: value not of required type: lots',
      },
    });
    expect(coerceFieldValue(field('IsDeleted'), 'maybe')).toMatchObject({ ok: false, typeMismatch: true });
    expect(coerceFieldValue(field('CreatedDate'), 12)).toMatchObject({ ok: false, typeMismatch: true });
    expect(coerceFieldValue(field('LastName'), { a: 1 })).toMatchObject({ ok: false, typeMismatch: true });
  });

  it('stores text trimmed as Java trims it, as Salesforce does', () => {
    expect(coerceFieldValue(field('LastName'), ' \t Ng \r\n')).toEqual({ ok: true, value: 'Ng' });
    expect(coerceFieldValue(field('LastName'), '   ')).toEqual({ ok: true, value: null });
    // A no-break space is not what String.trim() removes.
    expect(coerceFieldValue(field('LastName'), '\u00a0Ng')).toEqual({ ok: true, value: '\u00a0Ng' });
    // The length is checked after the trim; a restricted picklist value is matched trimmed.
    expect(coerceFieldValue(field('FirstName'), ` ${'x'.repeat(40)} `)).toEqual({
      ok: true,
      value: 'x'.repeat(40),
    });
    expect(coerceFieldValue(field('Status'), 'Working - Contacted ')).toEqual({
      ok: true,
      value: 'Working - Contacted',
    });
  });

  it('counts a text length in UTF-16 code units: an emoji counts 2', () => {
    expect(coerceFieldValue(field('FirstName'), '😀'.repeat(20))).toEqual({
      ok: true,
      value: '😀'.repeat(20),
    });
    expect(coerceFieldValue(field('FirstName'), `x${'😀'.repeat(20)}`)).toMatchObject({
      ok: false,
      problem: { code: 'STRING_TOO_LONG' },
    });
  });

  it('stores a multi-select picklist in the order of its definition, each value once', () => {
    const interests: FieldDescribe = {
      ...field('LastName'),
      name: 'Interests__c',
      label: 'Interests',
      type: 'multipicklist',
      length: 4099,
      picklistValues: ['Golf', 'Chess', 'Tennis'].map((value) => ({
        value,
        label: value,
        active: true,
        defaultValue: false,
      })),
    };
    expect(coerceFieldValue(interests, 'Tennis;Golf;Tennis;;Chess')).toEqual({
      ok: true,
      value: 'Golf;Chess;Tennis',
    });
    // Values the definition does not list (an unrestricted field) follow, in the order given.
    expect(coerceFieldValue(interests, 'Yoga;Tennis;Art')).toEqual({ ok: true, value: 'Tennis;Yoga;Art' });
    const restricted = { ...interests, restrictedPicklist: true };
    expect(coerceFieldValue(restricted, 'Chess;Golf')).toEqual({ ok: true, value: 'Golf;Chess' });
    expect(coerceFieldValue(restricted, 'Chess;Yoga')).toMatchObject({
      ok: false,
      problem: { code: 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST' },
    });
  });

  it('checks text length, restricted picklists, emails and reference ids', () => {
    expect(coerceFieldValue(field('FirstName'), 'x'.repeat(41))).toEqual({
      ok: false,
      typeMismatch: false,
      problem: {
        code: 'STRING_TOO_LONG',
        message: `First Name: data value too large: ${'x'.repeat(41)} (max length=40)`,
      },
    });
    expect(coerceFieldValue(field('FirstName'), 'x'.repeat(40))).toEqual({ ok: true, value: 'x'.repeat(40) });
    expect(coerceFieldValue(field('Status'), 'Working - Contacted')).toEqual({
      ok: true,
      value: 'Working - Contacted',
    });
    expect(coerceFieldValue(field('Status'), 'working - contacted')).toEqual({
      ok: false,
      typeMismatch: false,
      problem: {
        code: 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST',
        message: 'Status: bad value for restricted picklist field: working - contacted',
      },
    });
    // LeadSource is not restricted: any value goes.
    expect(coerceFieldValue(field('LeadSource'), 'Trade Show')).toEqual({ ok: true, value: 'Trade Show' });
    expect(coerceFieldValue(field('Email'), 'not-an-email')).toEqual({
      ok: false,
      typeMismatch: false,
      problem: { code: 'INVALID_EMAIL_ADDRESS', message: 'Email: invalid email address: not-an-email' },
    });
    expect(coerceFieldValue(field('OwnerId'), '0055e000000RtAd')).toEqual({
      ok: true,
      value: '0055e000000RtAdAAK',
    });
    expect(coerceFieldValue(field('OwnerId'), 'nope')).toEqual({
      ok: false,
      typeMismatch: false,
      problem: { code: 'MALFORMED_ID', message: 'Owner ID: id value of incorrect type: nope' },
    });
  });

  it('stores empty text as null and passes null through', () => {
    expect(coerceFieldValue(field('Title'), '')).toEqual({ ok: true, value: null });
    expect(coerceFieldValue(field('Title'), null)).toEqual({ ok: true, value: null });
  });
});
