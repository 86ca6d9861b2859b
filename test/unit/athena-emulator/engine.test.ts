import {
  athenaColumnNames,
  objectPath,
  parseS3Location,
  referencedTables,
} from '../../../emulators/athena/engine';

const select = (list: { class: string; alias?: string }[]): unknown => ({
  statements: [{ node: { type: 'SELECT_NODE', select_list: list.map((e) => ({ alias: '', ...e })) } }],
});

describe('athenaColumnNames', () => {
  it('names unaliased expressions _col<i> and keeps bare columns and aliases', () => {
    const ast = select([{ class: 'FUNCTION' }, { class: 'COLUMN_REF' }, { class: 'FUNCTION', alias: 'n' }]);
    expect(athenaColumnNames(['count_star()', 'email', 'n'], ast)).toEqual(['_col0', 'email', 'n']);
  });

  it('names a bare column reference after its last part as the query writes it, as Trino does', () => {
    const ast = select([
      { class: 'COLUMN_REF', column_names: ['c', 'EMAIL'] } as { class: string },
      { class: 'COLUMN_REF', column_names: ['Score'] } as { class: string },
      { class: 'COLUMN_REF', alias: 'MyAlias', column_names: ['x'] } as { class: string },
    ]);
    expect(athenaColumnNames(['email', 'score', 'MyAlias'], ast)).toEqual(['EMAIL', 'Score', 'MyAlias']);
  });

  it("keeps DuckDB's names when the select list has a star", () => {
    const ast = select([{ class: 'STAR' }]);
    expect(athenaColumnNames(['a', 'b'], ast)).toEqual(['a', 'b']);
  });
});

describe('referencedTables', () => {
  it('finds every BASE_TABLE in a nested AST', () => {
    const ast = {
      statements: [
        {
          node: {
            from_table: {
              type: 'JOIN',
              left: {
                type: 'BASE_TABLE',
                catalog_name: '',
                schema_name: 'marketing',
                table_name: 'customers',
              },
              right: {
                type: 'SUBQUERY',
                subquery: { node: { from_table: { type: 'BASE_TABLE', table_name: 'x' } } },
              },
            },
          },
        },
      ],
    };
    expect(referencedTables(ast)).toEqual([
      { catalog: '', schema: 'marketing', table: 'customers' },
      { catalog: '', schema: '', table: 'x' },
    ]);
  });
});

describe('parseS3Location', () => {
  it('splits bucket and prefix, adding the trailing slash', () => {
    expect(parseS3Location('s3://results/athena')).toEqual({ bucket: 'results', prefix: 'athena/' });
    expect(parseS3Location('s3://results/a/b/')).toEqual({ bucket: 'results', prefix: 'a/b/' });
    expect(parseS3Location('s3://results')).toEqual({ bucket: 'results', prefix: '' });
  });

  it('rejects what is not an S3 URI with a valid bucket name', () => {
    expect(parseS3Location('https://results/x')).toBeUndefined();
    expect(parseS3Location('s3://Results/x')).toBeUndefined();
    expect(parseS3Location('s3://')).toBeUndefined();
  });
});

describe('objectPath', () => {
  it('maps a key under the bucket folder and refuses keys that climb out', () => {
    expect(objectPath('/r', 'b', 'p/q.csv')).toBe('/r/b/p/q.csv');
    expect(objectPath('/r', 'b', '../c/q.csv')).toBeUndefined();
    expect(objectPath('/r', 'b', '')).toBeUndefined();
  });
});
