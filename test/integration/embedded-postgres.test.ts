import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/database';

describe('the test PostgreSQL server', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db.drop();
  });

  it('accepts connections and runs SQL in a database of its own', async () => {
    const client = new Client({ connectionString: db.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ db: string; n: number }>(
        'SELECT current_database() AS db, 6 * 7 AS n',
      );
      expect(rows[0]).toEqual({ db: db.name, n: 42 });
    } finally {
      await client.end();
    }
  });
});
