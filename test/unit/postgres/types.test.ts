import {
  athenaTypeForPgType,
  numericType,
  pgColumnForAthenaColumn,
  pgColumnForSalesforceField,
} from '../../../lambdas/connectors/postgres/types';

describe('pgColumnForSalesforceField', () => {
  it.each([
    [{ type: 'id' }, 'character varying(18)'],
    [{ type: 'reference' }, 'character varying(18)'],
    [{ type: 'string', length: 80 }, 'text'],
    [{ type: 'textarea', length: 32000 }, 'text'],
    [{ type: 'email' }, 'text'],
    [{ type: 'phone' }, 'text'],
    [{ type: 'url' }, 'text'],
    [{ type: 'picklist' }, 'text'],
    [{ type: 'multipicklist' }, 'text'],
    [{ type: 'combobox' }, 'text'],
    [{ type: 'base64' }, 'text'],
    [{ type: 'boolean' }, 'boolean'],
    [{ type: 'int', digits: 9 }, 'integer'],
    [{ type: 'int', digits: 18 }, 'bigint'],
    [{ type: 'int' }, 'bigint'],
    // Unconstrained: Salesforce keeps API-written values unrounded (41.6 in a Number(3,0) field).
    [{ type: 'double', precision: 18, scale: 0 }, 'numeric'],
    [{ type: 'currency', precision: 18, scale: 2 }, 'numeric'],
    [{ type: 'percent', precision: 5, scale: 2 }, 'numeric'],
    [{ type: 'double', precision: 0, scale: 0 }, 'numeric'],
    [{ type: 'date' }, 'date'],
    [{ type: 'datetime' }, 'timestamp with time zone'],
    [{ type: 'time' }, 'time without time zone'],
    [{ type: 'address' }, 'jsonb'],
    [{ type: 'location' }, 'jsonb'],
    [{ type: 'anyType' }, 'text'],
    [{ type: 'somethingNew' }, 'text'],
  ])('maps %j to %s', (field, pgType) => {
    expect(pgColumnForSalesforceField({ name: 'F', ...field })).toEqual({
      name: 'F',
      pgType,
      nullable: true,
    });
  });

  it('keeps the describe nillable flag', () => {
    expect(pgColumnForSalesforceField({ name: 'Id', type: 'id', nillable: false }).nullable).toBe(false);
  });
});

describe('pgColumnForAthenaColumn', () => {
  it.each([
    ['varchar', 'text'],
    ['char', 'text'],
    ['boolean', 'boolean'],
    ['tinyint', 'smallint'],
    ['smallint', 'smallint'],
    ['integer', 'integer'],
    ['bigint', 'bigint'],
    ['float', 'real'],
    ['real', 'real'],
    ['double', 'double precision'],
    ['date', 'date'],
    ['timestamp', 'timestamp without time zone'],
    ['timestamp with time zone', 'timestamp with time zone'],
    ['time', 'time without time zone'],
    ['json', 'jsonb'],
    ['array', 'text'],
    ['map', 'text'],
    ['row', 'text'],
    ['array(integer)', 'text'],
    ['uuid', 'text'],
  ])('maps %s to %s', (Type, pgType) => {
    expect(pgColumnForAthenaColumn({ Name: 'c', Type, Nullable: 'UNKNOWN' })).toEqual({
      name: 'c',
      pgType,
      nullable: true,
    });
  });

  it('maps decimal with Precision/Scale, or with parameters in the type string', () => {
    expect(pgColumnForAthenaColumn({ Name: 'd', Type: 'decimal', Precision: 38, Scale: 9 }).pgType).toBe(
      'numeric(38,9)',
    );
    expect(pgColumnForAthenaColumn({ Name: 'd', Type: 'decimal(10,2)' }).pgType).toBe('numeric(10,2)');
  });

  it('maps varbinary to bytea with the spaced-hex conversion', () => {
    expect(pgColumnForAthenaColumn({ Name: 'b', Type: 'varbinary' })).toEqual({
      name: 'b',
      pgType: 'bytea',
      nullable: true,
      load: 'spaced-hex',
    });
  });

  it('treats NOT_NULL as not nullable', () => {
    expect(pgColumnForAthenaColumn({ Name: 'c', Type: 'integer', Nullable: 'NOT_NULL' }).nullable).toBe(
      false,
    );
  });
});

describe('athenaTypeForPgType', () => {
  it.each([
    'varchar',
    'boolean',
    'smallint',
    'integer',
    'bigint',
    'real',
    'double',
    'decimal(12,2)',
    'date',
    'timestamp',
    'timestamp with time zone',
    'time',
    'time with time zone',
    'varbinary',
    'json',
  ])('gives a type that maps back to the column type of Athena %s', (type) => {
    const pgType = pgColumnForAthenaColumn({ Name: 'c', Type: type }).pgType;
    const athenaType = athenaTypeForPgType(pgType);
    expect(athenaType).toBeDefined();
    expect(pgColumnForAthenaColumn({ Name: 'c', Type: (athenaType as string).toLowerCase() }).pgType).toBe(
      pgType,
    );
  });

  it('gives none for a type no Athena type maps to', () => {
    expect(athenaTypeForPgType('character varying(18)')).toBeUndefined();
    expect(athenaTypeForPgType('numeric')).toBeUndefined();
  });
});

describe('numericType', () => {
  it('falls back to unconstrained numeric when precision is unusable', () => {
    expect(numericType(undefined, undefined)).toBe('numeric');
    expect(numericType(2000, 0)).toBe('numeric');
    expect(numericType(2, 5)).toBe('numeric');
    expect(numericType(12, 4)).toBe('numeric(12,4)');
  });
});
