/**
 * The SQL form of the shell-quoting rule (lambdas/shared/shell.ts), run by the real PostgreSQL,
 * gives what the TypeScript form gives, for plain values and for every awkward one: the messages
 * built in SQL and those built in TypeScript quote alike.
 */
import { Pool } from 'pg';
import { shellOption, shellOptionSql, shellWord, shellWordSql } from '../../../lambdas/shared/shell';
import { createTestDatabase, type TestDatabase } from '../../support/database';
import { AWKWARD, shellWords } from '../../support/shell-words';

describe('shellWordSql and shellOptionSql', () => {
  let db: TestDatabase;
  let pool: Pool;
  beforeAll(async () => {
    db = await createTestDatabase('rt_shell');
    pool = new Pool({ connectionString: db.url });
  });
  afterAll(async () => {
    await pool?.end();
    await db?.drop();
  });

  it('quote each value in PostgreSQL as shellWord and shellOption do in TypeScript', async () => {
    const values = ['kl-1', 'Lead-update', 'a.b,c:d/e@f%g+h=i_j', '-5', '--yes', ...AWKWARD];
    const { rows } = await pool.query<{ v: string; word: string; option: string }>(
      `SELECT v, ${shellWordSql('v')} AS word, ${shellOptionSql('--key', 'v')} AS option
         FROM unnest($1::text[]) WITH ORDINALITY AS t(v, n) ORDER BY n`,
      [values],
    );
    expect(rows.map((r) => r.v)).toEqual(values);
    for (const r of rows) {
      expect(r.word).toBe(shellWord(r.v));
      expect(r.option).toBe(shellOption('--key', r.v));
      expect(shellWords(r.word)).toEqual([r.v]);
    }
  });
});
