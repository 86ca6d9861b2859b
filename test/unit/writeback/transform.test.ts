import { splitSqlStatements } from '../../../lambdas/core/transform';

describe('splitSqlStatements', () => {
  it('splits at top-level semicolons and gives each statement its first line', () => {
    const sql = `-- header comment\nCREATE TABLE t (a int);\n\nINSERT INTO t\nVALUES (1);\n`;
    expect(splitSqlStatements(sql)).toEqual([
      { text: 'CREATE TABLE t (a int)', line: 2 },
      { text: 'INSERT INTO t\nVALUES (1)', line: 4 },
    ]);
  });

  it('keeps semicolons inside strings, quoted identifiers, dollar quotes and comments', () => {
    const sql = [
      `SELECT 'a;b', 'it''s;', E'x\\';y' AS "semi;colon";`,
      `/* one; /* nested; */ still comment; */ SELECT 2;`,
      `CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$;`,
      `SELECT $$;$$ -- trailing; comment`,
    ].join('\n');
    const statements = splitSqlStatements(sql);
    expect(statements.map((s) => s.line)).toEqual([1, 2, 3, 4]);
    expect(statements[0]?.text).toBe(`SELECT 'a;b', 'it''s;', E'x\\';y' AS "semi;colon"`);
    expect(statements[2]?.text).toContain('$body$ SELECT 1; $body$');
    expect(statements[3]?.text).toBe('SELECT $$;$$ -- trailing; comment');
  });

  it('starts a statement after its leading (nested) comments, so error positions count from its line', () => {
    const sql = `/* a /* nested; */ comment; */\n-- and another\n  UPDATE t SET a = 1;`;
    expect(splitSqlStatements(sql)).toEqual([{ text: 'UPDATE t SET a = 1', line: 3 }]);
  });

  it('drops statements that are only comments or blanks', () => {
    expect(splitSqlStatements(`;\n-- nothing\n;  /* none */ ;`)).toEqual([]);
  });

  it('keeps a comment never closed, with the rest of the file it swallows, as a statement, for PostgreSQL to refuse, rather than dropping the rest unrun', () => {
    expect(splitSqlStatements(`SELECT 1;\n/* never /* closed */\nSELECT 2;\n`)).toEqual([
      { text: 'SELECT 1', line: 1 },
      { text: '/* never /* closed */\nSELECT 2;', line: 2 },
    ]);
    expect(splitSqlStatements(`SELECT 1; /* a */ /* b`)).toEqual([
      { text: 'SELECT 1', line: 1 },
      { text: '/* b', line: 1 },
    ]);
  });

  it('keeps a SQL-standard function body (BEGIN ATOMIC … END) and a parenthesised rule action in one statement, as psql does', () => {
    const sql = [
      `CREATE OR REPLACE FUNCTION score(x int) RETURNS int LANGUAGE sql`,
      `BEGIN ATOMIC`,
      `  SELECT CASE WHEN x > 0 THEN x ELSE 0 END;`,
      `  SELECT x * 2;`,
      `END;`,
      `CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC INSERT INTO t VALUES (1); END;`,
      `CREATE RULE r AS ON INSERT TO a DO ALSO (INSERT INTO b VALUES (1); INSERT INTO c VALUES (2));`,
      `SELECT CASE WHEN true THEN 1 END;`,
      `SELECT begin FROM periods;`,
    ].join('\n');
    expect(splitSqlStatements(sql).map((s) => [s.line, s.text.split('\n').length])).toEqual([
      [1, 5],
      [6, 1],
      [7, 1],
      [8, 1],
      [9, 1],
    ]);
  });

  it('does not take a positional parameter or an identifier with $ for a dollar quote', () => {
    expect(splitSqlStatements(`SELECT a$b FROM t WHERE x = $1; SELECT 2`).map((s) => s.text)).toEqual([
      'SELECT a$b FROM t WHERE x = $1',
      'SELECT 2',
    ]);
  });

  it('takes a dollar quote whose tag has letters past ASCII ($é$, as PostgreSQL allows) for one, and an identifier ending in one before $ for a name', () => {
    const sql = `CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $corps_é$ SELECT 1; $corps_é$;\nSELECT café$$x$$ FROM t; SELECT 2`;
    expect(splitSqlStatements(sql).map((s) => s.text)).toEqual([
      'CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $corps_é$ SELECT 1; $corps_é$',
      'SELECT café$$x$$ FROM t',
      'SELECT 2',
    ]);
  });
});

describe('splitSqlStatements: what psql reads differently', () => {
  it('gives a psql meta-command its own statement, to the end of its line, so the SQL after it is not run as part of it', () => {
    const sql = `\\set ON_ERROR_STOP on\nCREATE TABLE t (a int);\n  \\copy t FROM 'a;b.csv' CSV\nSELECT '\\x', E'\\\\';`;
    expect(splitSqlStatements(sql)).toEqual([
      { text: '\\set ON_ERROR_STOP on', line: 1 },
      { text: 'CREATE TABLE t (a int)', line: 2 },
      { text: "\\copy t FROM 'a;b.csv' CSV", line: 3 },
      { text: "SELECT '\\x', E'\\\\'", line: 4 },
    ]);
  });

  it('ignores a byte order mark, so a function body of a file saved with one is still one statement', () => {
    const sql = `\uFEFFCREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\nEND;\nSELECT f();`;
    expect(splitSqlStatements(sql).map((s) => [s.line, s.text.slice(0, 6)])).toEqual([
      [1, 'CREATE'],
      [5, 'SELECT'],
    ]);
  });
});

describe('splitSqlStatements: a generated script of many statements', () => {
  it('gives each statement its own line, counted on from the one before (comments, blank lines and several statements a line between them)', () => {
    const parts: string[] = [];
    const expected: { text: string; line: number }[] = [];
    let line = 1;
    for (let i = 0; i < 5_000; i += 1) {
      if (i % 3 === 0) {
        parts.push(`-- row ${i}\n\nINSERT INTO t VALUES (${i}); INSERT INTO t VALUES (-${i});\n`);
        expected.push({ text: `INSERT INTO t VALUES (${i})`, line: line + 2 });
        expected.push({ text: `INSERT INTO t VALUES (-${i})`, line: line + 2 });
        line += 3;
      } else {
        parts.push(`INSERT INTO t\n  VALUES (${i});\n`);
        expected.push({ text: `INSERT INTO t\n  VALUES (${i})`, line });
        line += 2;
      }
    }
    expect(splitSqlStatements(parts.join(''))).toEqual(expected);
  });
});
