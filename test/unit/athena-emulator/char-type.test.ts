import {
  charNotSupportedReason,
  charTypeOffset,
  isCharTypeName,
  lineAndColumn,
} from '../../../emulators/athena/char-type';

describe('charTypeOffset', () => {
  it.each([
    ['SELECT CAST(x AS char(5)) FROM t', 'char(5)) FROM t'],
    ['SELECT TRY_CAST(x AS CHARACTER) FROM t', 'CHARACTER) FROM t'],
    ['SELECT cast((SELECT a AS b FROM s) AS Char(2))', 'Char(2))'],
    ['SELECT CAST(x AS array(char(3))) FROM t', 'char(3))) FROM t'],
    ["SELECT CHAR 'ab'", "CHAR 'ab'"],
    ['SELECT x::bpchar FROM t', 'bpchar FROM t'],
    ['SELECT CAST(x AS nchar(1)) FROM t', 'nchar(1)) FROM t'],
  ])('finds the char type in %s', (query, rest) => {
    const at = charTypeOffset(query);
    expect(at === undefined ? undefined : query.slice(at)).toBe(rest);
  });

  it.each([
    'SELECT CAST(x AS varchar(5)) FROM t',
    'SELECT CAST(x AS character varying(5)) FROM t',
    "SELECT 'CAST(x AS char(5))' AS text",
    'SELECT "char" FROM t',
    'SELECT x AS char FROM t',
    'SELECT chr(65), CAST(x AS integer) -- CAST(y AS char(2))\nFROM t',
    'SELECT /* CAST(y AS char(2)) */ 1',
    "SELECT CAST('it''s' AS varchar) || 'CHAR ''x'''",
  ])('finds none in %s', (query) => {
    expect(charTypeOffset(query)).toBeUndefined();
  });
});

describe('the char refusal', () => {
  it('places the type at its line and column, as Trino counts them', () => {
    const query = 'SELECT 1,\n  CAST(x AS char(2))';
    expect(lineAndColumn(query, charTypeOffset(query) ?? -1)).toEqual({ line: 2, column: 13 });
    expect(charNotSupportedReason(query, charTypeOffset(query) ?? -1)).toMatch(
      /^NOT_SUPPORTED: line 2:13: The Athena emulator does not support the char type: .* Use varchar/,
    );
  });

  it("tells DuckDB's CHAR sidecar types from VARCHAR ones", () => {
    expect(['CHAR(2)', 'char', 'CHARACTER(3)', 'BPCHAR', 'NCHAR(1)'].map(isCharTypeName)).toEqual([
      true,
      true,
      true,
      true,
      true,
    ]);
    expect(['VARCHAR', 'VARCHAR(10)', 'CHARACTER VARYING(4)', 'INTEGER'].map(isCharTypeName)).toEqual([
      false,
      false,
      false,
      false,
    ]);
  });
});
