/**
 * An object without IsDeleted (User: deactivated, never deleted) is extracted without it: full,
 * then incremental by SystemModstamp, over REST and through a Bulk API 2.0 query job, always
 * through `query` (never `queryAll`), into a table with no IsDeleted column. A `deletes: 'flag'`
 * written out for it cannot work and is refused naming its config path; the default works.
 */
import { to18 } from '../../../emulators/salesforce/ids';
import { runExtract } from '../../../lambdas/core';
import { startExtractHarness, type ExtractHarness } from './harness';

const T0 = Date.UTC(2024, 0, 1);
const at = (minutes: number): string => new Date(T0 + minutes * 60_000).toISOString();

const ROLES = [to18('00E5e000000Rol1'), to18('00E5e000000Rol2')];
const USERS = 12;
const seed = Array.from({ length: USERS }, (_, i) => ({
  Username: `user${i}@acme.test`,
  LastName: `User ${i}`,
  FirstName: `F${i}`,
  Name: `F${i} User ${i}`,
  Email: `user${i}@acme.test`,
  Alias: `u${i}`,
  ProfileId: to18('00e5e000000Prf1'),
  UserRoleId: ROLES[i % 2],
  IsActive: true,
  SystemModstamp: at(i),
}));

/** The brief's fields: what scoring leads by their owner's team reads. */
const FIELDS = ['Id', 'Name', 'UserRoleId', 'IsActive'];

describe('Salesforce extract of an object without IsDeleted (User)', () => {
  let h: ExtractHarness;
  const config = () =>
    h.config([
      // The default deletes: nothing to flag, rows Salesforce no longer returns go on a full read.
      { from: 'salesforce', object: 'User', fields: FIELDS, table: 'sf_user', overlapSeconds: 0 },
      {
        from: 'salesforce',
        object: 'User',
        name: 'UserBulk',
        fields: FIELDS,
        table: 'sf_user_bulk',
        deletes: 'remove',
        overlapSeconds: 0,
        bulkThreshold: 1,
      },
    ]);
  const run = () => runExtract({ input: {} }, h.deps(config()), { salesforce: { bulkResultPageRecords: 5 } });
  /** The REST query operations (`query`, `queryAll`, `queryMore`) of the calls since `seq`. */
  const restOps = (since: number): string[] =>
    h.sf.calls
      .all()
      .filter((c) => c.seq > since && c.operation.startsWith('query'))
      .map((c) => c.operation);
  const lastSeq = (): number => h.sf.calls.all().at(-1)?.seq ?? 0;
  /** Whether each Bulk query job of the run went through queryAll (as the extract created it). */
  const bulkIncludeDeleted = async (runId: string) =>
    (
      await h.rows<{ include_deleted: boolean }>(
        'SELECT include_deleted FROM roundtrip.extract_jobs WHERE run_id = $1',
        [runId],
      )
    ).map((r) => r.include_deleted);

  beforeAll(async () => {
    h = await startExtractHarness({ seed: { User: seed } });
  });
  afterAll(() => h.close());

  it('reads User in full, then its changes, over REST and Bulk, through query, with no IsDeleted column', async () => {
    let since = lastSeq();
    const first = await run();
    expect(first.salesforce.User).toMatchObject({ status: 'loaded', api: 'rest', full: true, rows: USERS });
    expect(first.salesforce.UserBulk).toMatchObject({
      status: 'loaded',
      api: 'bulk',
      full: true,
      rows: USERS,
    });
    // The reads: the REST task's page and the other COUNT() go through query. The one queryAll is
    // Prepare's COUNT() of the task with the default deletes, before any table told it that User
    // has no IsDeleted (Prepare reads no describe for it); the extract, which reads the describe,
    // reuses it (queryAll adds no row on an object without IsDeleted) rather than count again.
    const ops = restOps(since);
    expect(ops.filter((o) => o === 'queryAll')).toEqual(['queryAll']);
    expect(ops.indexOf('queryAll')).toBe(0);
    expect(ops.filter((o) => o === 'query')).toHaveLength(2);
    expect(first.salesforce.User?.apiCalls).toBe(1);
    expect(await bulkIncludeDeleted(first.prepare.runId)).toEqual([false]);
    for (const table of ['sf_user', 'sf_user_bulk']) {
      const columns = await h.rows<{ column_name: string }>(
        `SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`,
        [table],
      );
      expect(columns.map((c) => c.column_name)).toEqual([
        'Id',
        'Name',
        'UserRoleId',
        'IsActive',
        'SystemModstamp',
      ]);
      expect(
        await h.rows(`SELECT "Name", "UserRoleId", "IsActive" FROM ${table} WHERE "Name" = 'F3 User 3'`),
      ).toEqual([{ Name: 'F3 User 3', UserRoleId: ROLES[1], IsActive: true }]);
    }

    // A user deactivated and another moved to another role in Salesforce: the next run reads
    // those two (and the row at the watermark), incrementally, still through query.
    const [deactivated, moved] = h.sf.store
      .query(`SELECT Id FROM User WHERE LastName IN ('User 4', 'User 5') ORDER BY LastName`)
      .records.map((r) => r.Id as string);
    h.sf.store.update('User', [{ Id: deactivated, IsActive: false }]);
    h.sf.store.update('User', [{ Id: moved, UserRoleId: ROLES[0] }]);
    since = lastSeq();
    const second = await run();
    expect(second.salesforce.User).toMatchObject({
      full: false,
      api: 'rest',
      rows: 3,
      updated: 2,
      deleted: 0,
      // The default of an object without IsDeleted, which the task does not write out.
      deletes: 'remove',
    });
    expect(second.salesforce.UserBulk).toMatchObject({
      full: false,
      api: 'bulk',
      rows: 3,
      updated: 2,
      deleted: 0,
    });
    // Now Prepare knows from the table (no IsDeleted column): every COUNT() and read is a query.
    expect(restOps(since)).toEqual(['query', 'query', 'query']);
    expect(second.salesforce.User?.apiCalls).toBe(2);
    expect(await bulkIncludeDeleted(second.prepare.runId)).toEqual([false]);
    for (const table of ['sf_user', 'sf_user_bulk']) {
      expect(
        await h.rows(
          `SELECT "Id", "UserRoleId", "IsActive" FROM ${table} WHERE "Id" = ANY($1) ORDER BY "Name"`,
          [[deactivated, moved]],
        ),
      ).toEqual([
        { Id: deactivated, UserRoleId: ROLES[0], IsActive: false },
        { Id: moved, UserRoleId: ROLES[0], IsActive: true },
      ]);
      expect(await h.rows(`SELECT count(*)::int AS n FROM ${table}`)).toEqual([{ n: USERS }]);
    }

    // A full read keeps every user (none is gone from Salesforce), through query again.
    since = lastSeq();
    const full = await runExtract({ input: { full: true } }, h.deps(config()));
    expect(full.salesforce.User).toMatchObject({ full: true, rows: USERS, deleted: 0 });
    expect(full.salesforce.UserBulk).toMatchObject({ full: true, rows: USERS, deleted: 0 });
    expect(restOps(since).filter((o) => o === 'queryAll')).toEqual([]);
    expect(await h.rows(`SELECT count(*)::int AS n FROM sf_user`)).toEqual([{ n: USERS }]);
  });

  it("refuses deletes: 'flag' written out for User, naming its config path, before reading", async () => {
    const flagged = h.config([
      { from: 'salesforce', object: 'Lead', fields: ['Id', 'LastName'], table: 'sf_lead_x' },
      { from: 'salesforce', object: 'User', fields: FIELDS, table: 'sf_user_flag', deletes: 'flag' },
    ]);
    await expect(runExtract({ input: {} }, h.deps(flagged))).rejects.toThrow(
      "extract[1].deletes: User has no IsDeleted field (its records are deactivated, not deleted: IsActive): 'flag' cannot mark deleted records; " +
        "remove the option (or set 'remove'): a full read then removes the rows Salesforce no longer returns",
    );
    // Refused before anything was loaded: no table made.
    expect(await h.rows(`SELECT to_regclass('public.sf_user_flag') AS t`)).toEqual([{ t: null }]);
  });

  it("refuses it in Prepare when Prepare reads User's describe (a Bulk read to check): no extract runs", async () => {
    const flagged = h.config([
      { from: 'salesforce', object: 'Lead', fields: ['Id', 'LastName'], table: 'sf_lead_y' },
      {
        from: 'salesforce',
        object: 'User',
        fields: FIELDS,
        table: 'sf_user_flag',
        deletes: 'flag',
        bulkThreshold: 1,
      },
    ]);
    await expect(runExtract({ input: {} }, h.deps(flagged))).rejects.toThrow(
      "extract[1].deletes: User has no IsDeleted field (its records are deactivated, not deleted: IsActive): 'flag' cannot mark deleted records",
    );
    expect(await h.rows(`SELECT to_regclass('public.sf_lead_y') AS t`)).toEqual([{ t: null }]);
  });
});
