import { athenaColumnNameProblems, athenaResultRefusal } from '../../../lambdas/core/extract-athena';

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

describe('athenaResultRefusal', () => {
  const fix =
    ": name columns of the result in the key, or give the column that name with AS in the task's query";

  it('takes distinct names and a key the result has, as written', () => {
    expect(athenaResultRefusal({ key: ['id'] }, 'extract[1]', ['id', 'email'], 'public.t')).toBeUndefined();
    expect(athenaResultRefusal({}, 'extract[1]', ['ID', 'id'], 'public.t')).toBeUndefined();
  });

  it("refuses a key column that differs from the result's in case only, with the result's spelling", () => {
    expect(athenaResultRefusal({ key: ['ID', 'email'] }, 'extract[1]', ['id', 'email'], 'public.t')).toBe(
      `key column "ID" (extract[1].key) is not in the query's result (columns: id, email); did you mean "id" for "ID"? (the table's columns are named as the result's, case and all, and the key names them)${fix}`,
    );
    expect(athenaResultRefusal({ key: ['emial'] }, 'extract[0]', ['id', 'email'], 'public.t')).toBe(
      `key column "emial" (extract[0].key) is not in the query's result (columns: id, email); did you mean "email" for "emial"?${fix}`,
    );
  });

  it('names the query by its config path when the names cannot be the columns of a table, before the key', () => {
    expect(athenaResultRefusal({ key: ['nope'] }, 'extract[2]', ['id', 'id'], 'sales.t')).toBe(
      'the query\'s result columns (extract[2].query) cannot be the columns of sales.t as named: "id" 2 times (columns 1 and 2). ' +
        "Give each column of the result its own name of at most 63 bytes with AS in the task's query (SELECT o.id AS order_id, …)",
    );
  });
});
