/**
 * An update of a User custom field compared with the extracted copy of User, an object without
 * IsDeleted (users are deactivated, never deleted): the copy has no IsDeleted column, and the plan
 * compares with it all the same, so a run sends only the records whose value differs from what
 * the copy holds (a second run nothing, an edit made in Salesforce is put back). The real extract
 * (into PostgreSQL), the source's SQL and the write-back, against the Salesforce emulator over HTTP.
 */
import path from 'node:path';
import { DEFAULT_DESCRIBES_DIR } from '../../../emulators/salesforce';
import { to18 } from '../../../emulators/salesforce/ids';
import type { WritebackTaskInput } from '../../../lambdas/config';
import { runExtract } from '../../../lambdas/core';
import { runWriteback, type WritebackRun } from '../../../lambdas/core/writeback';
import { startWritebackEnv, type WritebackEnv } from './support';

const USERS = 5;

/** The extract of User: the brief's fields and the custom field the write-back sets. */
const EXTRACT = {
  from: 'salesforce' as const,
  object: 'User',
  fields: ['Id', 'Name', 'UserRoleId', 'IsActive', 'Team_Lead_Score__c'],
  table: 'sf_user',
};

/** Update of User.Team_Lead_Score__c by Id from `user_out ("Id", score)`. */
const UPDATE: WritebackTaskInput = {
  to: 'salesforce',
  object: 'User',
  from: 'user_out',
  mode: 'update',
  fields: { Team_Lead_Score__c: 'score' },
};

describe('update of a User field compared with the extracted copy of User (no IsDeleted)', () => {
  let env: WritebackEnv;
  let ids: string[];

  beforeAll(async () => {
    env = await startWritebackEnv({
      describesDir: [DEFAULT_DESCRIBES_DIR, path.join(__dirname, 'describes-user')],
    });
    ids = env.sf.store.seed(
      'User',
      Array.from({ length: USERS }, (_, i) => ({
        Username: `owner${i}@acme.test`,
        LastName: `Owner ${i}`,
        Name: `Owner ${i}`,
        Email: `owner${i}@acme.test`,
        Alias: `o${i}`,
        ProfileId: to18('00e5e000000Prf1'),
        IsActive: true,
      })),
    );
    // The transform's input: each owner's team score.
    await env.pool.query(`CREATE TABLE team_scores ("Id" text PRIMARY KEY, score int)`);
    await env.pool.query(
      `INSERT INTO team_scores SELECT id, 10 * i FROM unnest($1::text[]) WITH ORDINALITY AS t(id, i)`,
      [ids],
    );
  });
  afterAll(async () => env?.stop());

  /** One run: the extract, the transform's SQL (the copy joined with the scores), the write-back. */
  async function run(): Promise<WritebackRun & { sent: number }> {
    const deps = env.deps({ extract: [EXTRACT], writeback: [UPDATE] });
    const { prepare } = await runExtract({ input: {} }, deps);
    await env.pool.query(`DROP TABLE IF EXISTS user_out;
      CREATE TABLE user_out AS
      SELECT u."Id", s.score FROM sf_user u JOIN team_scores s ON s."Id" = u."Id" WHERE u."IsActive"`);
    env.sf.calls.clear();
    const outcome = await runWriteback(deps, { runId: prepare.runId, task: 'User-update' });
    const sent = env.sf.calls.writes().reduce((n, w) => n + (w.records ?? 0), 0);
    return { ...outcome, sent };
  }
  const scoreOf = (id: string): unknown => env.sf.store.get(id)?.Team_Lead_Score__c;

  it('sends every record once, then only those whose value the copy shows differs', async () => {
    const first = await run();
    expect(first.plan).toMatchObject({ comparedWith: 'extract:public.sf_user', changed: USERS });
    expect(first.result).toMatchObject({ succeeded: USERS, failed: 0 });
    expect(ids.map(scoreOf)).toEqual([10, 20, 30, 40, 50]);
    const { rows } = await env.pool.query<{ column_name: string }>(
      `SELECT column_name FROM information_schema.columns WHERE table_name = 'sf_user' ORDER BY ordinal_position`,
    );
    expect(rows.map((r) => r.column_name)).not.toContain('IsDeleted');

    // The copy now holds what was sent: nothing to send.
    const again = await run();
    expect(again.plan).toMatchObject({
      comparedWith: 'extract:public.sf_user',
      changed: 0,
      unchanged: USERS,
    });
    expect(again.sent).toBe(0);

    // One score changes at the source, and another is edited by hand in Salesforce: those two.
    await env.pool.query(`UPDATE team_scores SET score = 99 WHERE "Id" = $1`, [ids[0]]);
    env.sf.store.update('User', [{ Id: ids[3], Team_Lead_Score__c: 7 }]);
    const two = await run();
    expect(two.plan).toMatchObject({ changed: 2, unchanged: USERS - 2 });
    expect(two.sent).toBe(2);
    expect(ids.map(scoreOf)).toEqual([99, 20, 30, 40, 50]);
    expect((await run()).sent).toBe(0);
  });
});
