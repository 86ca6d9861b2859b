import { athenaColumnNameProblems } from '../../../lambdas/core/extract-athena';

describe('athenaColumnNameProblems', () => {
  it('finds nothing wrong with distinct names of at most 63 bytes', () => {
    expect(athenaColumnNameProblems(['id', 'ID', 'name', '_col2', 'x'.repeat(63), 'é'.repeat(31)])).toEqual(
      [],
    );
  });

  it('names each name used more than once, with every column that uses it', () => {
    expect(athenaColumnNameProblems(['id', 'name', 'id', 'total', 'id', 'name'])).toEqual([
      '"id" 3 times (columns 1, 3 and 5)',
      '"name" 2 times (columns 2 and 6)',
    ]);
  });

  it('counts a name in UTF-8 bytes, as PostgreSQL does', () => {
    expect(athenaColumnNameProblems(['é'.repeat(32), 'y'.repeat(64)])).toEqual([
      `"${'é'.repeat(32)}" has 64 bytes (PostgreSQL keeps 63 of a name and cuts the rest)`,
      `"${'y'.repeat(64)}" has 64 bytes (PostgreSQL keeps 63 of a name and cuts the rest)`,
    ]);
  });

  it("refuses the loader's own prefix and empty names", () => {
    expect(athenaColumnNameProblems(['__roundtrip_row', '', 'a', ''])).toEqual([
      '"__roundtrip_row" starts with __roundtrip_, kept for the loader\'s own columns',
      'columns 2 and 4 have no name',
    ]);
    expect(athenaColumnNameProblems([''])).toEqual(['column 1 has no name']);
  });
});
