import { SoqlError } from '../../../emulators/salesforce/store';
import type { SalesforceStore } from '../../../emulators/salesforce/store';
import { parseSoql } from '../../../emulators/salesforce/soql/parser';
import { likeToRegExp } from '../../../emulators/salesforce/soql/evaluate';
import { makeStore } from './fixtures';

const NOW = new Date('2024-06-15T12:00:00.000Z');

/** Five leads with distinct, partly null values; LastName is the handle tests assert on. */
function seededStore(): SalesforceStore {
  const store = makeStore({ clock: () => NOW });
  store.seed('Lead', [
    {
      LastName: 'Ada',
      Company: 'Acme',
      Email: 'ada@acme.com',
      LeadScore__c: 90,
      NumberOfEmployees: 10,
      Industry: 'Banking',
      CreatedDate: '2024-06-15T08:00:00Z',
      External_Id__c: 'A-1',
    },
    {
      LastName: 'Bob',
      Company: 'acme',
      Email: 'bob@ACME.com',
      LeadScore__c: 40,
      NumberOfEmployees: 200,
      Industry: null,
      CreatedDate: '2024-06-14T23:59:59.999Z',
    },
    {
      LastName: 'Cy',
      Company: 'Globex',
      Email: null,
      LeadScore__c: null,
      NumberOfEmployees: 5000,
      Industry: 'Energy',
      CreatedDate: '2024-06-01T00:00:00Z',
      Status: 'Working - Contacted',
    },
    {
      LastName: "O'Brien",
      Company: 'Initech_50%',
      Email: 'ob@initech.io',
      LeadScore__c: 75,
      Industry: 'banking',
      CreatedDate: '2024-05-31T23:00:00-02:00',
    },
    {
      LastName: 'Dee',
      Company: 'Umbrella',
      Email: 'dee@umbrella.com',
      LeadScore__c: 10,
      NumberOfEmployees: 3,
      CreatedDate: '2023-12-31T23:59:59Z',
      IsDeleted: true,
    },
  ]);
  return store;
}

const names = (store: SalesforceStore, soql: string, opts?: { includeDeleted?: boolean }): string[] =>
  store.query(soql, opts).records.map((r) => String(r.LastName));

function soqlError(fn: () => unknown): SoqlError {
  try {
    fn();
  } catch (error: unknown) {
    if (error instanceof SoqlError) return error;
    throw error;
  }
  throw new Error('expected a SoqlError');
}

describe('SOQL', () => {
  const store = seededStore();

  describe('select list and result shape', () => {
    it('returns the selected fields in select order, in describe casing, nulls present', () => {
      const result = store.query("select lastname, EMAIL, id from LEAD where LastName = 'Cy'");
      expect(result.objectName).toBe('Lead');
      expect(result.fields).toEqual(['LastName', 'Email', 'Id']);
      expect(result.isCount).toBe(false);
      expect(result.totalSize).toBe(1);
      expect(Object.keys(result.records[0] ?? {})).toEqual(['LastName', 'Email', 'Id']);
      expect(result.records[0]).toMatchObject({ LastName: 'Cy', Email: null });
      expect(String(result.records[0]?.Id)).toMatch(/^00Q[A-Za-z0-9]{15}$/);
    });

    it('counts with COUNT(), without records', () => {
      const result = store.query('SELECT COUNT() FROM Lead');
      expect(result).toEqual({ totalSize: 4, records: [], objectName: 'Lead', fields: [], isCount: true });
      expect(store.query('SELECT COUNT() FROM Lead', { includeDeleted: true }).totalSize).toBe(5);
      expect(store.query('SELECT COUNT() FROM Lead WHERE LeadScore__c > 50').totalSize).toBe(2);
    });

    it('hides deleted records unless includeDeleted (queryAll)', () => {
      expect(names(store, 'SELECT LastName FROM Lead ORDER BY LastName')).toEqual([
        'Ada',
        'Bob',
        'Cy',
        "O'Brien",
      ]);
      expect(
        names(store, 'SELECT LastName FROM Lead WHERE IsDeleted = true', { includeDeleted: true }),
      ).toEqual(['Dee']);
    });

    it('streams references through queryIterator without copying stored records', () => {
      const cursor = store.queryIterator('SELECT LastName FROM Lead ORDER BY LastName DESC LIMIT 2');
      expect(cursor.totalSize).toBe(2);
      expect(cursor.rows[0]?.Company).toBe('Initech_50%'); // the stored record, all fields
      expect([...cursor]).toEqual([{ LastName: "O'Brien" }, { LastName: 'Cy' }]);
    });
  });

  describe('comparison operators', () => {
    it.each([
      ['LeadScore__c = 40', ['Bob']],
      ['LeadScore__c != 40', ['Ada', 'Cy', "O'Brien"]],
      ['LeadScore__c <> 40', ['Ada', 'Cy', "O'Brien"]],
      ['LeadScore__c < 75', ['Bob']],
      ['LeadScore__c <= 75', ['Bob', "O'Brien"]],
      ['LeadScore__c > 75', ['Ada']],
      ['LeadScore__c >= 75', ['Ada', "O'Brien"]],
      ['NumberOfEmployees >= 200', ['Bob', 'Cy']],
      ['LeadScore__c > -1.5', ['Ada', 'Bob', "O'Brien"]],
      ["Company = 'ACME'", ['Ada', 'Bob']],
      ["Company != 'acme'", ['Cy', "O'Brien"]],
      ["Company < 'h'", ['Ada', 'Bob', 'Cy']],
      ["LastName = 'O\\'Brien'", ["O'Brien"]],
      ["Status = 'Open - Not Contacted'", ['Ada', 'Bob', "O'Brien"]],
      ['IsDeleted = false', ['Ada', 'Bob', 'Cy', "O'Brien"]],
    ])('WHERE %s', (where, expected) => {
      expect(names(store, `SELECT LastName FROM Lead WHERE ${where} ORDER BY LastName`)).toEqual(expected);
    });

    it('treats null as emptiness: = null, != null, and != / NOT IN include null rows', () => {
      expect(names(store, 'SELECT LastName FROM Lead WHERE Email = null')).toEqual(['Cy']);
      expect(names(store, 'SELECT LastName FROM Lead WHERE Email != null ORDER BY LastName')).toEqual([
        'Ada',
        'Bob',
        "O'Brien",
      ]);
      expect(names(store, "SELECT LastName FROM Lead WHERE Industry != 'Banking' ORDER BY LastName")).toEqual(
        ['Bob', 'Cy'],
      );
      expect(
        names(store, "SELECT LastName FROM Lead WHERE Industry NOT IN ('Energy') ORDER BY LastName"),
      ).toEqual(['Ada', 'Bob', "O'Brien"]);
      expect(names(store, 'SELECT LastName FROM Lead WHERE LeadScore__c < 1000 ORDER BY LastName')).toEqual([
        'Ada',
        'Bob',
        "O'Brien",
      ]);
      expect(
        names(store, "SELECT LastName FROM Lead WHERE Industry IN ('Energy', null) ORDER BY LastName"),
      ).toEqual(['Bob', 'Cy']);
    });

    it('IN and NOT IN compare text case-insensitively and ids after normalisation', () => {
      expect(
        names(store, "SELECT LastName FROM Lead WHERE Industry IN ('BANKING', 'x') ORDER BY LastName"),
      ).toEqual(['Ada', "O'Brien"]);
      const ada = store.query("SELECT Id FROM Lead WHERE LastName = 'Ada'").records[0]?.Id as string;
      expect(names(store, `SELECT LastName FROM Lead WHERE Id IN ('${ada.slice(0, 15)}')`)).toEqual(['Ada']);
      expect(names(store, `SELECT LastName FROM Lead WHERE Id = '${ada.toLowerCase()}'`)).toEqual(['Ada']);
      expect(names(store, `SELECT LastName FROM Lead WHERE Id NOT IN ('${ada}') ORDER BY LastName`)).toEqual([
        'Bob',
        'Cy',
        "O'Brien",
      ]);
    });

    it('LIKE matches % and _ case-insensitively, with \\% and \\_ literal', () => {
      expect(
        names(store, "SELECT LastName FROM Lead WHERE Email LIKE '%@ACME.com' ORDER BY LastName"),
      ).toEqual(['Ada', 'Bob']);
      expect(names(store, "SELECT LastName FROM Lead WHERE LastName LIKE '_y'")).toEqual(['Cy']);
      expect(names(store, "SELECT LastName FROM Lead WHERE Company LIKE '%\\_50\\%'")).toEqual(["O'Brien"]);
      expect(names(store, "SELECT LastName FROM Lead WHERE Company LIKE 'Initech%50'")).toEqual([]);
      expect(likeToRegExp('a.b%').test('A.Bxyz')).toBe(true);
      expect(likeToRegExp('a.b%').test('aXb')).toBe(false);
    });
  });

  describe('logical operators', () => {
    it('combines with AND, OR, NOT and parentheses', () => {
      expect(names(store, "SELECT LastName FROM Lead WHERE Company = 'acme' AND LeadScore__c > 50")).toEqual([
        'Ada',
      ]);
      expect(
        names(
          store,
          "SELECT LastName FROM Lead WHERE LastName = 'Cy' OR LeadScore__c = 40 OR LastName = 'x'",
        ),
      ).toEqual(['Bob', 'Cy']);
      expect(names(store, "SELECT LastName FROM Lead WHERE NOT Company = 'acme' ORDER BY LastName")).toEqual([
        'Cy',
        "O'Brien",
      ]);
      expect(
        names(
          store,
          "SELECT LastName FROM Lead WHERE (Company = 'acme' OR Company = 'Globex') AND (NOT LeadScore__c > 50) ORDER BY LastName",
        ),
      ).toEqual(['Bob', 'Cy']);
      expect(
        names(
          store,
          "SELECT LastName FROM Lead WHERE Company = 'acme' AND (LeadScore__c > 50 OR NumberOfEmployees > 100) ORDER BY LastName",
        ),
      ).toEqual(['Ada', 'Bob']);
    });

    it('rejects AND mixed with OR without parentheses, as Salesforce does', () => {
      const soql = "SELECT Id FROM Lead WHERE Company = 'acme' AND LeadScore__c > 50 OR LastName = 'Cy'";
      const error = soqlError(() => store.query(soql));
      expect(error.errorCode).toBe('MALFORMED_QUERY');
      const column = soql.indexOf(' OR ') + 2;
      expect(column).toBe(66);
      expect(error.message).toBe(
        `\n${soql}\n${' '.repeat(column - 1)}^\nERROR at Row:1:Column:66\nunexpected token: 'OR'`,
      );
    });
  });

  describe('dates and datetimes', () => {
    it('compares datetimes as instants whatever the literal offset', () => {
      expect(names(store, 'SELECT LastName FROM Lead WHERE CreatedDate >= 2024-06-15T00:00:00Z')).toEqual([
        'Ada',
      ]);
      expect(
        names(
          store,
          'SELECT LastName FROM Lead WHERE CreatedDate >= 2024-06-15T01:59:59.999+02:00 ORDER BY LastName',
        ),
      ).toEqual(['Ada', 'Bob']);
      expect(
        names(store, 'SELECT LastName FROM Lead WHERE CreatedDate = 2024-06-01T01:00:00.000+0100'),
      ).toEqual(['Cy']);
      // O'Brien was created at 2024-05-31T23:00:00-02:00, i.e. 01:00 UTC on June 1st.
      expect(names(store, 'SELECT LastName FROM Lead WHERE CreatedDate = 2024-06-01T03:00:00+02:00')).toEqual(
        ["O'Brien"],
      );
      expect(
        names(
          store,
          'SELECT LastName FROM Lead WHERE CreatedDate > 2024-06-01T00:59:59.999Z AND CreatedDate < 2024-06-02T00:00:00Z',
        ),
      ).toEqual(["O'Brien"]);
      expect(names(store, 'SELECT LastName FROM Lead WHERE CreatedDate < 2024-06-01T00:00:00Z')).toEqual([]);
    });

    it('evaluates relative date literals as UTC day ranges', () => {
      expect(names(store, 'SELECT LastName FROM Lead WHERE CreatedDate = TODAY')).toEqual(['Ada']);
      expect(names(store, 'SELECT LastName FROM Lead WHERE CreatedDate = YESTERDAY')).toEqual(['Bob']);
      expect(names(store, 'SELECT LastName FROM Lead WHERE CreatedDate < TODAY ORDER BY LastName')).toEqual([
        'Bob',
        'Cy',
        "O'Brien",
      ]);
      expect(names(store, 'SELECT LastName FROM Lead WHERE CreatedDate > YESTERDAY')).toEqual(['Ada']);
      expect(
        names(store, 'SELECT LastName FROM Lead WHERE CreatedDate = LAST_N_DAYS:14 ORDER BY LastName'),
      ).toEqual(['Ada', 'Bob', 'Cy', "O'Brien"]);
      expect(
        names(store, 'SELECT LastName FROM Lead WHERE CreatedDate = LAST_N_DAYS:13 ORDER BY LastName'),
      ).toEqual(['Ada', 'Bob']);
      expect(
        names(store, 'SELECT LastName FROM Lead WHERE CreatedDate = THIS_MONTH ORDER BY LastName'),
      ).toEqual(['Ada', 'Bob', 'Cy', "O'Brien"]);
      expect(
        names(store, 'SELECT LastName FROM Lead WHERE CreatedDate = LAST_YEAR', { includeDeleted: true }),
      ).toEqual(['Dee']);
      expect(names(store, 'SELECT LastName FROM Lead WHERE CreatedDate = NEXT_N_DAYS:3')).toEqual([]);
    });

    it('requires a datetime literal, unquoted, for a datetime field', () => {
      const quoted = soqlError(() =>
        store.query("SELECT Id FROM Lead WHERE CreatedDate > '2024-01-01T00:00:00Z'"),
      );
      expect(quoted.errorCode).toBe('MALFORMED_QUERY');
      expect(quoted.message).toContain(
        "ERROR at Row:1:Column:41\nvalue of filter criterion for field 'CreatedDate' must be of type dateTime and should not be enclosed in quotes",
      );
      const dateOnly = soqlError(() => store.query('SELECT Id FROM Lead WHERE CreatedDate > 2024-01-01'));
      expect(dateOnly.message).toContain('must be of type dateTime and should not be enclosed in quotes');
    });

    it('rejects mistyped filter values for numbers and booleans', () => {
      expect(
        soqlError(() => store.query("SELECT Id FROM Lead WHERE NumberOfEmployees = '5'")).message,
      ).toContain(
        "value of filter criterion for field 'NumberOfEmployees' must be of type integer and should not be enclosed in quotes",
      );
      expect(soqlError(() => store.query('SELECT Id FROM Lead WHERE IsDeleted = 1')).message).toContain(
        "value of filter criterion for field 'IsDeleted' must be of type boolean and should be enclosed in quotes",
      );
      expect(soqlError(() => store.query('SELECT Id FROM Lead WHERE Email = 5')).message).toContain(
        "value of filter criterion for field 'Email' must be of type string and should be enclosed in quotes",
      );
    });
  });

  describe('incremental extract', () => {
    it('pages by SystemModstamp with Id as tie-breaker, as the extract does', () => {
      let now = new Date('2024-01-01T00:00:00.000Z');
      const clocked = makeStore({ clock: () => now });
      // Three leads share one stamp (one call), two come later.
      const first = clocked
        .create(
          'Lead',
          [0, 1, 2].map((i) => ({ LastName: `L${i}`, Company: 'C' })),
        )
        .map((r) => String(r.id));
      now = new Date('2024-01-01T00:00:01.000Z');
      clocked.create(
        'Lead',
        [3, 4].map((i) => ({ LastName: `L${i}`, Company: 'C', IsConverted: i === 4 })),
      );
      const page = (stamp: string, afterId: string): string[] =>
        names(
          clocked,
          `SELECT Id, LastName FROM Lead WHERE (SystemModstamp > ${stamp} OR (SystemModstamp = ${stamp} AND Id > '${afterId}')) AND IsConverted = false ORDER BY SystemModstamp, Id LIMIT 2`,
        );
      expect(page('2024-01-01T00:00:00.000Z', first[0] as string)).toEqual(['L1', 'L2']);
      expect(page('2024-01-01T00:00:00Z', first[2] as string)).toEqual(['L3']);
    });
  });

  describe('ORDER BY, LIMIT, OFFSET', () => {
    it('sorts by several keys, text case-insensitively, nulls first by default', () => {
      expect(names(store, 'SELECT LastName FROM Lead ORDER BY Company, LastName DESC')).toEqual([
        'Bob',
        'Ada',
        'Cy',
        "O'Brien",
      ]);
      expect(names(store, 'SELECT LastName FROM Lead ORDER BY LeadScore__c')).toEqual([
        'Cy',
        'Bob',
        "O'Brien",
        'Ada',
      ]);
      expect(names(store, 'SELECT LastName FROM Lead ORDER BY LeadScore__c DESC')).toEqual([
        'Cy',
        'Ada',
        "O'Brien",
        'Bob',
      ]);
      expect(names(store, 'SELECT LastName FROM Lead ORDER BY LeadScore__c DESC NULLS LAST')).toEqual([
        'Ada',
        "O'Brien",
        'Bob',
        'Cy',
      ]);
      expect(names(store, 'SELECT LastName FROM Lead ORDER BY LeadScore__c ASC NULLS FIRST')).toEqual([
        'Cy',
        'Bob',
        "O'Brien",
        'Ada',
      ]);
      expect(names(store, 'SELECT LastName FROM Lead ORDER BY CreatedDate')).toEqual([
        'Cy',
        "O'Brien",
        'Bob',
        'Ada',
      ]);
    });

    it('applies OFFSET then LIMIT after sorting', () => {
      expect(names(store, 'SELECT LastName FROM Lead ORDER BY LastName LIMIT 2')).toEqual(['Ada', 'Bob']);
      expect(names(store, 'SELECT LastName FROM Lead ORDER BY LastName LIMIT 2 OFFSET 1')).toEqual([
        'Bob',
        'Cy',
      ]);
      expect(names(store, 'SELECT LastName FROM Lead ORDER BY LastName LIMIT 0')).toEqual([]);
      expect(store.query('SELECT LastName FROM Lead LIMIT 3').totalSize).toBe(3);
    });
  });

  describe('errors', () => {
    it('names an unknown column with Salesforce INVALID_FIELD text', () => {
      const error = soqlError(() => store.query('SELECT Id, Foo FROM Lead'));
      expect(error.errorCode).toBe('INVALID_FIELD');
      expect(error.message).toBe(
        "\nSELECT Id, Foo FROM Lead\n           ^\nERROR at Row:1:Column:12\nNo such column 'Foo' on entity 'Lead'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
      );
      expect(soqlError(() => store.query('SELECT Id FROM Lead WHERE Score = 1')).errorCode).toBe(
        'INVALID_FIELD',
      );
      expect(soqlError(() => store.query('SELECT Id FROM Lead ORDER BY Score')).errorCode).toBe(
        'INVALID_FIELD',
      );
      expect(soqlError(() => store.query('SELECT Owner.Name FROM Lead')).message).toContain(
        "Didn't understand relationship 'Owner' in field path.",
      );
    });

    it('names an unknown object with INVALID_TYPE', () => {
      const error = soqlError(() => store.query('SELECT Id FROM Opportunity'));
      expect(error.errorCode).toBe('INVALID_TYPE');
      expect(error.message).toBe(
        "\nSELECT Id FROM Opportunity\n               ^\nERROR at Row:1:Column:16\nsObject type 'Opportunity' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.",
      );
    });

    it.each([
      ['SELECT FROM Lead', "unexpected token: 'FROM'"],
      ['SELECT Id Lead', "unexpected token: 'Lead'"],
      ['SELECT Id FROM Lead WHERE', 'unexpected token: <EOF>'],
      ["SELECT Id FROM Lead WHERE LastName = 'x", "unexpected token: ''x'"],
      ['SELECT Id FROM Lead WHERE LastName', 'unexpected token: <EOF>'],
      ['SELECT Id FROM Lead LIMIT x', "unexpected token: 'x'"],
      ['SELECT Id FROM Lead ORDER BY LastName SIDEWAYS', "unexpected token: 'SIDEWAYS'"],
      ['SELECT Id FROM Lead WHERE (LastName = null', 'unexpected token: <EOF>'],
      ['SELECT Id FROM Lead WHERE LastName LIKE 5', "unexpected token: '5'"],
      ['SELECT Id, Id FROM Lead', 'duplicate field selected: Id'],
      ['SELECT Id FROM Lead WHERE LastName = # ', "unexpected token: '#'"],
      [
        'SELECT COUNT(Id) FROM Lead',
        "unexpected token: 'Id' (the emulator supports COUNT() only, not COUNT(field) or other aggregates)",
      ],
    ])('%s → MALFORMED_QUERY %s', (soql, reason) => {
      const error = soqlError(() => store.query(soql));
      expect(error.errorCode).toBe('MALFORMED_QUERY');
      expect(error.message.endsWith(`\n${reason}`)).toBe(true);
    });

    it('reports the row and column of a multi-line query', () => {
      const error = soqlError(() => store.query('SELECT Id\nFROM Lead\nWHERE LastName == 1'));
      expect(error.message).toBe(
        "\nWHERE LastName == 1\n                ^\nERROR at Row:3:Column:17\nunexpected token: '='",
      );
    });

    it('rejects a malformed id literal', () => {
      const error = soqlError(() => store.query("SELECT Id FROM Lead WHERE Id = 'abc'"));
      expect(error.errorCode).toBe('INVALID_QUERY_FILTER_OPERATOR');
      expect(error.message.endsWith('\ninvalid ID field: abc')).toBe(true);
    });
  });

  describe('parser', () => {
    it('reads string escapes', () => {
      const q = parseSoql("SELECT Id FROM Lead WHERE Title = 'a\\nb\\tc\\\\d\\'e\\\"f'");
      expect(q.where).toMatchObject({ kind: 'compare', value: { kind: 'string', value: 'a\nb\tc\\d\'e"f' } });
      expect(() => parseSoql("SELECT Id FROM Lead WHERE Title = 'a\\qb'")).toThrow(
        "Illegal character sequence '\\q' in string literal.",
      );
    });

    it('builds AND/OR/NOT trees and keyword-insensitive clauses', () => {
      const q = parseSoql(
        "select id from lead where not (a = 1 or b = 2) and c in ('x') order by a desc nulls last, b limit 5 offset 2",
      );
      expect(q.where).toMatchObject({
        kind: 'and',
        operands: [
          { kind: 'not', operand: { kind: 'or' } },
          { kind: 'in', negated: false },
        ],
      });
      expect(q.orderBy.map((k) => [k.field.name, k.descending, k.nullsFirst])).toEqual([
        ['a', true, false],
        ['b', false, true],
      ]);
      expect([q.limit, q.offset]).toEqual([5, 2]);
    });
  });
});
