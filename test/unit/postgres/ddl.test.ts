import { TerminalError } from '../../../lambdas/shared/errors';
import {
  commonSupertype,
  parsePgType,
  quoteIdent,
  quoteQualified,
  validateColumns,
} from '../../../lambdas/connectors/postgres/ddl';
import { stagingTableName } from '../../../lambdas/connectors/postgres/copy';

describe('quoteIdent', () => {
  it('doubles embedded quotes and wraps the name', () => {
    expect(quoteIdent('Weird "Name", select')).toBe('"Weird ""Name"", select"');
    expect(quoteQualified('my schema', 'a"b')).toBe('"my schema"."a""b"');
  });

  it('refuses names PostgreSQL would truncate, and empty names', () => {
    expect(() => quoteIdent('x'.repeat(64))).toThrow(TerminalError);
    expect(() => quoteIdent('é'.repeat(32))).toThrow('longer than 63 bytes');
    expect(quoteIdent('é'.repeat(31))).toBe(`"${'é'.repeat(31)}"`);
    expect(() => quoteIdent('')).toThrow('SQL identifier is empty');
  });
});

describe('parsePgType', () => {
  it('canonicalises aliases to format_type spelling', () => {
    expect(parsePgType('varchar(18)').text).toBe('character varying(18)');
    expect(parsePgType('timestamptz').text).toBe('timestamp with time zone');
    expect(parsePgType('INT8').text).toBe('bigint');
    expect(parsePgType('decimal(10, 2)').text).toBe('numeric(10,2)');
    expect(parsePgType('float8').text).toBe('double precision');
  });
});

describe('commonSupertype', () => {
  it.each([
    ['character varying(18)', 'character varying(40)', 'character varying(40)'],
    ['character varying(18)', 'text', 'text'],
    ['smallint', 'integer', 'integer'],
    ['integer', 'bigint', 'bigint'],
    ['integer', 'numeric', 'numeric'],
    ['integer', 'numeric(18,2)', 'numeric(18,2)'],
    ['bigint', 'numeric(18,2)', 'numeric(21,2)'],
    ['numeric(10,2)', 'numeric(12,4)', 'numeric(12,4)'],
    ['numeric(18,2)', 'numeric(18,0)', 'numeric(20,2)'],
    ['real', 'double precision', 'double precision'],
    ['bigint', 'integer', 'bigint'],
    ['text', 'character varying(5)', 'text'],
    // Every type's text reads back as the same value: text holds them all.
    ['date', 'text', 'text'],
    ['text', 'date', 'text'],
    ['timestamp with time zone', 'text', 'text'],
    ['numeric(12,2)', 'text', 'text'],
    ['double precision', 'text', 'text'],
    ['boolean', 'character varying(5)', 'text'],
    ['jsonb', 'text', 'text'],
    ['text', 'integer', 'text'],
  ])('of %s and %s is %s', (a, b, expected) => {
    expect(commonSupertype(a, b)).toBe(expected);
  });

  it.each([
    ['date', 'timestamp without time zone'],
    ['timestamp without time zone', 'timestamp with time zone'],
    ['integer', 'real'],
    ['boolean', 'integer'],
    ['jsonb', 'bytea'],
    ['date', 'boolean'],
  ])('refuses %s and %s', (a, b) => {
    expect(commonSupertype(a, b)).toBeUndefined();
  });
});

describe('validateColumns', () => {
  it('names duplicate, reserved and missing key columns', () => {
    const col = (name: string) => ({ name, pgType: 'text', nullable: true });
    expect(() => validateColumns('T', [col('a'), col('a')])).toThrow('T: column "a" is declared twice');
    expect(() => validateColumns('T', [col('__roundtrip_row')])).toThrow('reserved prefix');
    expect(() => validateColumns('T', [col('a')], ['Id'])).toThrow(
      'T: key column "Id" is not among the columns',
    );
  });
});

describe('stagingTableName', () => {
  it('is <target>__staging_<run> when it fits', () => {
    expect(stagingTableName('sf_lead', 'run-1')).toBe('sf_lead__staging_run-1');
  });

  it('stays within 63 bytes and unique for long names', () => {
    const a = stagingTableName('t'.repeat(60), 'run-aaaaaaaa');
    const b = stagingTableName('t'.repeat(60), 'run-bbbbbbbb');
    expect(Buffer.byteLength(a)).toBeLessThanOrEqual(63);
    expect(a).not.toBe(b);
  });
});
