/**
 * Plan: pre-flight refusals of the mapping, per-row rejections without an API call, the values
 * as they will be sent, a dry run that only reads, and maxChanges stopping a run.
 */
import net from 'node:net';
import path from 'node:path';
import { Pool } from 'pg';
import { DEFAULT_DESCRIBES_DIR } from '../../../emulators/salesforce/describe';
import { makeId } from '../../../emulators/salesforce/ids';
import type { WritebackTaskInput } from '../../../lambdas/config';
import {
  DRY_RUN_SAMPLE_MAX_BYTES,
  DRY_RUN_SAMPLE_ROWS,
  MaxChangesExceededError,
  planWriteback,
  pushWriteback,
  runWriteback,
} from '../../../lambdas/core/writeback';
import { TerminalError } from '../../../lambdas/shared/errors';
import { withSourceProblem } from '../../../lambdas/core/writeback/plan';
import { MAX_PAYLOAD_BYTES, payloadBytes } from '../../../statemachine/local';
import { errorsOf, planThenCrashInPush, startWritebackEnv, type WritebackEnv } from './support';

const wide = (over: Partial<WritebackTaskInput> = {}): WritebackTaskInput => ({
  to: 'salesforce',
  object: 'Lead',
  from: 'wide_source',
  mode: 'update',
  fields: {
    LeadScore__c: 'score',
    Email: 'email',
    Status: 'status',
    NumberOfEmployees: 'employees',
    Next_Call__c: 'next_call',
    Scored_At__c: 'scored_at',
    Is_Hot__c: 'hot',
    Tier__c: 'tier',
    Discount__c: 'discount',
    LastName: 'last_name',
  },
  ...over,
});

describe('write-back plan', () => {
  let env: WritebackEnv;
  let ids: string[];

  beforeAll(async () => {
    env = await startWritebackEnv({
      describesDir: [DEFAULT_DESCRIBES_DIR, path.join(__dirname, 'describes')],
    });
    ids = env.sf.store.seed(
      'Lead',
      Array.from({ length: 20 }, (_, i) => ({ LastName: `L${i}`, Company: 'C', Is_Hot__c: false })),
    );
    await env.pool.query(`CREATE TABLE wide_source (
      "Id" text, score text, email text, status text, employees numeric, next_call text, scored_at text,
      hot text, tier text, discount double precision, last_name text)`);
  });
  afterAll(async () => env?.stop());

  async function row(id: string | null, over: Record<string, unknown> = {}): Promise<void> {
    const r = {
      score: '42',
      email: 'a@b.test',
      status: 'Working - Contacted',
      employees: 10,
      next_call: '2025-07-01',
      scored_at: '2025-06-01 10:00:00+02',
      hot: 'yes',
      tier: 'Gold',
      discount: 12.345,
      last_name: 'Name',
      ...over,
    };
    await env.pool.query(`INSERT INTO wide_source VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`, [
      id,
      r.score,
      r.email,
      r.status,
      r.employees,
      r.next_call,
      r.scored_at,
      r.hot,
      r.tier,
      r.discount,
      r.last_name,
    ]);
  }

  describe('pre-flight', () => {
    const refusals: [string, Partial<WritebackTaskInput>, RegExp][] = [
      [
        'a field that does not exist',
        { fields: { Nope__c: 'score', LeadScor__c: 'score' } },
        /field Nope__c does not exist on Lead \(writeback\[0\]\.fields\.Nope__c\); field LeadScor__c does not exist on Lead \(writeback\[0\]\.fields\.LeadScor__c\); did you mean LeadScore__c\?/,
      ],
      [
        'a field not updateable in update mode',
        { fields: { IsConverted: 'hot' } },
        /field IsConverted is not updateable/,
      ],
      [
        'a field not createable in upsert mode',
        { mode: 'upsert', key: 'Lead_Key__c', fields: { CreatedDate: 'scored_at' } },
        /field CreatedDate is not createable/,
      ],
      [
        'an upsert key that is not an external ID',
        { mode: 'upsert', key: 'LastName', fields: { LeadScore__c: 'score' } },
        /key LastName is not an external-ID field of Lead \(writeback\[0\]\.key: upsert needs one; its external-ID fields: External_Id__c, Legacy_Number__c, Lead_Key__c, Lead_Number__c\)/,
      ],
      [
        'a required field left unmapped on insert',
        { mode: 'insert', key: 'Lead_Key__c', fields: { LeadScore__c: 'score' } },
        /field LastName is required on insert but not mapped.*field Company is required/,
      ],
      [
        'a source column that does not exist',
        { fields: { LeadScore__c: 'scor' } },
        /has no column "scor" \(writeback\[0\]\.fields\.LeadScore__c; did you mean "score"\?\) \(it has /,
      ],
      [
        'a field that does not exist and a source column that does not exist, both at once',
        { fields: { Nope__c: 'score', LeadScore__c: 'scor' } },
        /^Cannot plan the write-back Lead-update \(update of Lead\): field Nope__c does not exist on Lead \(writeback\[0\]\.fields\.Nope__c\); and the source "public"\."wide_source" has no column "scor" \(writeback\[0\]\.fields\.LeadScore__c; did you mean "score"\?\) \(it has .*\): correct the name in the config, or the SQL that makes the source \(a column's alias\)$/,
      ],
      [
        'a source table that does not exist',
        { from: 'missing_table', fields: { LeadScore__c: 'score' } },
        /the source "public"\."missing_table" does not exist \(writeback\[0\]\.from; is it made by a transform that has not run\?\)$/,
      ],
      [
        'a source table whose name is a typo away from one that exists',
        { from: 'wide_sources', fields: { LeadScore__c: 'score' } },
        /the source "public"\."wide_sources" does not exist \(writeback\[0\]\.from; did you mean "wide_source"\?; is it made by a transform that has not run\?\)$/,
      ],
    ];
    it.each(refusals)('refuses %s before any write', async (_what, over, message) => {
      const runId = await env.newRun();
      const task = { ...wide(), ...over } as WritebackTaskInput;
      const deps = env.deps({ writeback: [task] });
      env.sf.calls.clear();
      const name = `Lead-${task.mode}`;
      await expect(planWriteback(deps, { runId, task: name })).rejects.toThrow(TerminalError);
      await expect(planWriteback(deps, { runId, task: name })).rejects.toThrow(message);
      expect(env.sf.calls.count({ write: true })).toBe(0);
      const { rows } = await env.pool.query(
        `SELECT count(*)::int AS n FROM roundtrip.writeback_plans WHERE run_id = $1`,
        [runId],
      );
      expect(rows[0].n).toBe(0);
    });

    it('keeps the mapping error when the source cannot be checked beside it: PostgreSQL cannot be reached', async () => {
      const refused = new TerminalError(
        'Cannot plan the write-back Lead-update (update of Lead): field Nope__c does not exist on Lead (writeback[0].fields.Nope__c)',
      );
      const task = { keyColumn: 'Id', fields: { Nope__c: 'score', LeadScore__c: 'scor' } };
      const context = {
        taskName: 'Lead-update',
        configPath: 'writeback[0]',
        source: { schema: 'public', table: 'wide_source' },
      };
      // A port nothing listens on: the connection is refused.
      const port = await new Promise<number>((resolve) => {
        const server = net.createServer().listen(0, '127.0.0.1', () => {
          const { port: free } = server.address() as net.AddressInfo;
          server.close(() => resolve(free));
        });
      });
      const unreachable = new Pool({ host: '127.0.0.1', port, user: 'nobody', database: 'nowhere' });
      try {
        expect(await withSourceProblem(refused, unreachable, task, context)).toBe(refused);
      } finally {
        await unreachable.end();
      }
      // Reached, the source's problem is added to it.
      const both = await withSourceProblem(refused, env.pool, task, context);
      expect(both).toBeInstanceOf(TerminalError);
      expect((both as Error).message).toMatch(
        /^Cannot plan .*\(writeback\[0\]\.fields\.Nope__c\); and the source "public"\."wide_source" has no column "scor" /,
      );
    });
  });

  it('rejects each bad row with its key and reason, converts the good ones, and sends nothing for the rejected', async () => {
    await env.pool.query('DELETE FROM wide_source');
    await row(ids[0] as string); // good
    await row(ids[1] as string, { score: '1234' }); // Number(3,0)
    await row(ids[2] as string, { score: 'abc' });
    await row(ids[3] as string, { email: 'not-an-email' });
    await row(ids[4] as string, { status: 'Maybe' }); // restricted picklist
    await row(ids[5] as string, { tier: 'Retired' }); // inactive value of a restricted picklist
    await row(ids[6] as string, { last_name: 'x'.repeat(81) }); // LastName is 80
    await row(ids[7] as string, { last_name: null }); // required
    await row(ids[8] as string, { next_call: '2025-02-30' });
    await row(ids[9] as string, { scored_at: 'yesterday-ish' });
    await row(ids[10] as string, { hot: 'maybe' });
    await row(ids[11] as string, { discount: 1234.5 }); // Number(5,2): 3 integer digits
    // One record named twice: padded with spaces, and by its 15-character Id.
    await row(ids[16] as string);
    await row(` ${ids[16] as string} `);
    await row(ids[17] as string);
    await row((ids[17] as string).slice(0, 15));
    await row(ids[14] as string, { next_call: '1699-12-31' }); // before Salesforce's first day
    await row(ids[15] as string, { scored_at: '12345-01-01T00:00:00Z' }); // a five-digit year
    await row('not-an-id');
    await row(null);
    await row(ids[12] as string);
    await row(ids[12] as string, { score: '7' }); // the same key twice
    await row(ids[13] as string, {
      score: '41.5',
      discount: 0.005,
      scored_at: '2025-06-01T23:30:00-05:00',
      hot: 'f',
    });
    const runId = await env.newRun();
    const deps = env.deps({ writeback: [wide()] });
    env.sf.calls.clear();

    const { plan, result } = await runWriteback(deps, { runId, task: 'Lead-update' });

    expect(plan).toMatchObject({ sourceRows: 23, rejected: 21, changed: 2 });
    const errors = await errorsOf(env, runId);
    const byKey = new Map(errors.map((e) => [e.key, e]));
    expect(errors.every((e) => e.stage === 'plan')).toBe(true);
    expect(byKey.get(ids[1] as string)).toMatchObject({
      code: 'NUMBER_OUTSIDE_VALID_RANGE',
      fields: ['LeadScore__c'],
    });
    expect(byKey.get(ids[2] as string)).toMatchObject({
      code: 'INVALID_TYPE_ON_FIELD_IN_RECORD',
      fields: ['LeadScore__c'],
    });
    expect(byKey.get(ids[2] as string)?.message).toBe(
      'LeadScore__c: abc is not a number (source column score)',
    );
    expect(byKey.get(ids[3] as string)).toMatchObject({ code: 'INVALID_EMAIL_ADDRESS', fields: ['Email'] });
    expect(byKey.get(ids[4] as string)).toMatchObject({
      code: 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST',
      fields: ['Status'],
    });
    expect(byKey.get(ids[4] as string)?.message).toBe(
      'Status: bad value for restricted picklist field: Maybe (the field takes: Open - Not Contacted, Working - Contacted, Closed - Converted, Closed - Not Converted) (source column status)',
    );
    expect(byKey.get(ids[5] as string)).toMatchObject({
      code: 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST',
      fields: ['Tier__c'],
    });
    // An inactive value is not among those it takes.
    expect(byKey.get(ids[5] as string)?.message).toBe(
      'Tier__c: bad value for restricted picklist field: Retired (a value deactivated in Salesforce; the field takes: Gold, Silver) (source column tier)',
    );
    expect(byKey.get(ids[6] as string)).toMatchObject({ code: 'STRING_TOO_LONG', fields: ['LastName'] });
    expect(byKey.get(ids[7] as string)).toMatchObject({
      code: 'REQUIRED_FIELD_MISSING',
      fields: ['LastName'],
    });
    expect(byKey.get(ids[8] as string)).toMatchObject({
      code: 'INVALID_TYPE_ON_FIELD_IN_RECORD',
      fields: ['Next_Call__c'],
    });
    expect(byKey.get(ids[9] as string)).toMatchObject({
      code: 'INVALID_TYPE_ON_FIELD_IN_RECORD',
      fields: ['Scored_At__c'],
    });
    expect(byKey.get(ids[10] as string)).toMatchObject({
      code: 'INVALID_TYPE_ON_FIELD_IN_RECORD',
      fields: ['Is_Hot__c'],
    });
    expect(byKey.get(ids[11] as string)).toMatchObject({
      code: 'NUMBER_OUTSIDE_VALID_RANGE',
      fields: ['Discount__c'],
    });
    expect(byKey.get(ids[14] as string)).toMatchObject({
      code: 'DATE_OUTSIDE_VALID_RANGE',
      fields: ['Next_Call__c'],
      message:
        'Next_Call__c: 1699-12-31 is outside the dates Salesforce takes (1700-01-01 to 4000-12-31) (source column next_call)',
    });
    expect(byKey.get(ids[15] as string)).toMatchObject({
      code: 'DATE_OUTSIDE_VALID_RANGE',
      fields: ['Scored_At__c'],
    });
    expect(byKey.get('not-an-id')).toMatchObject({
      code: 'MALFORMED_ID',
      message:
        'Id: not-an-id is not a Salesforce Id (15 or 18 letters and digits); an update finds records by Id, read from column "Id": to match records by an external ID, use mode \'upsert\' with that field as its key',
    });
    expect(byKey.get(null)).toMatchObject({ code: 'MISSING_KEY' });
    expect(errors.filter((e) => e.key === ids[12])).toHaveLength(2);
    expect(errors.filter((e) => e.key === ids[12]).every((e) => e.code === 'DUPLICATE_KEY')).toBe(true);
    for (const key of [
      ids[16] as string,
      ` ${ids[16] as string} `,
      ids[17] as string,
      (ids[17] as string).slice(0, 15),
    ]) {
      expect(byKey.get(key)).toMatchObject({
        code: 'DUPLICATE_KEY',
        message: `key ${key} appears in more than one source row (an Id names one record in its 15- and 18-character forms); none of them is sent: make the source hold one row per key`,
      });
    }

    // An update's key is the record's Id: each rejected row names it as its Salesforce Id too
    // (roundtrip errors shows both), trimmed as it would be sent; a key that is no Id names none.
    const { rows: idsOf } = await env.pool.query<{ key: string | null; salesforce_id: string | null }>(
      `SELECT key, salesforce_id FROM roundtrip.writeback_errors WHERE run_id = $1`,
      [runId],
    );
    const idOf = new Map(idsOf.map((e) => [e.key, e.salesforce_id]));
    for (const key of [ids[1], ids[7], ids[15], ids[12], ids[17]] as string[])
      expect(idOf.get(key)).toBe(key);
    expect(idOf.get(` ${ids[16] as string} `)).toBe(ids[16]);
    expect(idOf.get((ids[17] as string).slice(0, 15))).toBe((ids[17] as string).slice(0, 15));
    expect(idOf.get('not-an-id')).toBeNull();
    expect(idOf.get(null)).toBeNull();

    // Only the two good rows went out, in one call, and Salesforce accepted both.
    expect(env.sf.calls.writes().map((w) => w.records)).toEqual([2]);
    expect(result).toMatchObject({ succeeded: 2, failed: 0 });
    const converted = env.sf.store.get(ids[13] as string);
    expect(converted).toMatchObject({
      LeadScore__c: 42, // 41.5 rounded to scale 0 (half away from zero)
      Discount__c: 0.01, // 0.005 rounded to scale 2
      Is_Hot__c: false,
      Next_Call__c: '2025-07-01',
    });
    // -05:00 became UTC.
    expect(String(converted?.Scored_At__c)).toMatch(/^2025-06-02T04:30:00\.000(Z|\+0000)$/);
  });

  it("rejects an update key that is an Id of another object (its key prefix not the object's) without sending it", async () => {
    const [account, other] = env.sf.store.seed('Account', [{ Name: 'A1' }, { Name: 'A2' }]) as [
      string,
      string,
    ];
    const custom = makeId('a0B', 7); // a custom object's Id: its prefix names no standard object
    // Leads of this test's own: the later tests expect the shared ones as they left them.
    const leads = env.sf.store.seed(
      'Lead',
      [0, 1, 2].map((i) => ({ LastName: `P${i}`, Company: 'C', Is_Hot__c: false })),
    );
    const lead = (i: number): string => leads[i] as string;
    // A 15-character Id is case-sensitive: 00q is not Lead's prefix.
    const lowerPrefix15 = `00q${lead(2).slice(3, 15)}`;
    await env.pool.query(`CREATE TABLE prefix_source ("Id" text, score text)`);
    await env.pool.query(
      `INSERT INTO prefix_source VALUES ($1, '71'), ($2, '72'), ($3, '73'), ($4, '74'), ($5, '75'), ($6, '76')`,
      [
        lead(0),
        // An 18-character Id in any case names its record: its suffix restores the case (00Q).
        lead(1).toLowerCase(),
        account,
        ` ${other.slice(0, 15)} `,
        custom,
        lowerPrefix15,
      ],
    );
    const runId = await env.newRun();
    const deps = env.deps({
      writeback: [{ ...wide(), from: 'prefix_source', fields: { LeadScore__c: 'score' } }],
    });
    env.sf.calls.clear();

    const { plan, result } = await runWriteback(deps, { runId, task: 'Lead-update' });

    expect(plan).toMatchObject({ sourceRows: 6, rejected: 4, changed: 2 });
    const errors = await errorsOf(env, runId);
    const hint = 'an update finds records by Id, read from column "Id", which must hold Ids of Lead records';
    const byKey = (a: { key?: string | null }, b: { key?: string | null }): number =>
      (a.key ?? '') < (b.key ?? '') ? -1 : 1;
    expect(errors.sort(byKey)).toEqual(
      [
        [
          account,
          `Id: ${account} is an Id of another object (Account, key prefix 001; Lead's is 00Q): ${hint}`,
        ],
        [
          ` ${other.slice(0, 15)} `,
          `Id:  ${other.slice(0, 15)}  is an Id of another object (Account, key prefix 001; Lead's is 00Q): ${hint}`,
        ],
        [custom, `Id: ${custom} is an Id of another object (key prefix a0B; Lead's is 00Q): ${hint}`],
        [
          lowerPrefix15,
          `Id: ${lowerPrefix15} is an Id of another object (key prefix 00q; Lead's is 00Q): ${hint}`,
        ],
      ]
        .map(([key, message]) => ({ key, stage: 'plan', code: 'MALFORMED_ID', fields: ['Id'], message }))
        .sort(byKey),
    );
    // The two Lead rows went out in one call, the others not at all; Salesforce took both.
    expect(env.sf.calls.writes().map((w) => w.records)).toEqual([2]);
    expect(result).toMatchObject({ succeeded: 2, failed: 0 });
    expect(env.sf.store.get(lead(0))).toMatchObject({ LeadScore__c: 71 });
    expect(env.sf.store.get(lead(1))).toMatchObject({ LeadScore__c: 72 });
  });

  it('rejects an Id of another object in a lookup to one object whose key prefix it knows, without sending it', async () => {
    const [account, other] = env.sf.store.seed('Account', [{ Name: 'A3' }, { Name: 'A4' }]) as [
      string,
      string,
    ];
    const contacts = env.sf.store.seed(
      'Contact',
      Array.from({ length: 4 }, (_, i) => ({ LastName: `C${i}` })),
    );
    const contact = (i: number): string => contacts[i] as string;
    const lead = ids[3] as string;
    await env.pool.query(`CREATE TABLE contact_source ("Id" text, account text, owner text)`);
    // OwnerId points to User or Group: not checked by the plan (a User's Id here: the org's
    // integration user, which Salesforce, and the emulator, know).
    const owner = env.sf.store.userId;
    await env.pool.query(
      `INSERT INTO contact_source VALUES ($1, $2, $9), ($3, $4, $9), ($5, $6, $9), ($7, $8, $9)`,
      [
        contact(0),
        account,
        contact(1),
        lead, // a Lead's Id in Contact.AccountId, which points to Account
        contact(2),
        // Trimmed, and in any case: the 18-character form's suffix restores it (001).
        ` ${other.toLowerCase()} `,
        contact(3),
        account.slice(0, 15), // the 15-character form, whose case is its own
        owner,
      ],
    );
    const runId = await env.newRun();
    const deps = env.deps({
      writeback: [
        {
          to: 'salesforce',
          object: 'Contact',
          from: 'contact_source',
          mode: 'update',
          fields: { AccountId: 'account', OwnerId: 'owner' },
        },
      ],
    });
    env.sf.calls.clear();

    const { plan, result } = await runWriteback(deps, {
      runId,
      task: 'Contact-update',
    });

    expect(plan).toMatchObject({ sourceRows: 4, rejected: 1, changed: 3 });
    expect(await errorsOf(env, runId)).toEqual([
      {
        key: contact(1),
        stage: 'plan',
        code: 'FIELD_INTEGRITY_EXCEPTION',
        fields: ['AccountId'],
        message: `AccountId: ${lead} is an Id of another object (Lead, key prefix 00Q; the field takes Ids of Account, key prefix 001) (source column account)`,
      },
    ]);
    expect(env.sf.calls.writes().map((w) => w.records)).toEqual([3]);
    expect(result).toMatchObject({ succeeded: 3, failed: 0 });
    expect(env.sf.store.get(contact(0))).toMatchObject({ AccountId: account });
    expect(env.sf.store.get(contact(2))).toMatchObject({ AccountId: other });
    expect(env.sf.store.get(contact(3))).toMatchObject({ AccountId: account });
  });

  it('names the first ten values a restricted picklist of more takes, and how many it takes', async () => {
    await env.pool.query(`CREATE TABLE region_source ("Id" text, region text)`);
    await env.pool.query(`INSERT INTO region_source VALUES ($1, 'Plains'), ($2, 'Tundra')`, [ids[0], ids[1]]);
    const runId = await env.newRun();
    const deps = env.deps({
      writeback: [{ ...wide(), from: 'region_source', fields: { Region__c: 'region' } }],
    });

    const plan = await planWriteback(deps, { runId, task: 'Lead-update' });

    expect(plan).toMatchObject({ sourceRows: 2, rejected: 1, changed: 1 });
    expect((await errorsOf(env, runId)).map((e) => [e.key, e.code, e.message])).toEqual([
      [
        ids[1],
        'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST',
        'Region__c: bad value for restricted picklist field: Tundra (the field takes: North, South, East, West, Central, Alpine, Coastal, Delta, Highlands, Islands, … (12 in all)) (source column region)',
      ],
    ]);
  });

  it('a number out of range only once rounded to the field’s scale says so: 999.5 fits three digits, the 1000 it would be sent as does not', async () => {
    await env.pool.query(`CREATE TABLE rounded_source ("Id" text, score text, discount numeric)`);
    await env.pool.query(
      `INSERT INTO rounded_source VALUES ($1, '999.5', 1), ($2, '1', 999.995), ($3, '1234', 1), ($4, '1', 1000)`,
      [ids[0], ids[1], ids[2], ids[3]],
    );
    const runId = await env.newRun();
    const deps = env.deps({
      writeback: [
        { ...wide(), from: 'rounded_source', fields: { LeadScore__c: 'score', Discount__c: 'discount' } },
      ],
    });

    await planWriteback(deps, { runId, task: 'Lead-update' });

    // LeadScore__c is Number(3, 0), Discount__c Percent(5, 2).
    expect((await errorsOf(env, runId)).map((e) => [e.key, e.code, e.message])).toEqual(
      [
        [
          ids[0],
          'NUMBER_OUTSIDE_VALID_RANGE',
          'LeadScore__c: 999.5 does not fit Number(3, 0): rounded to the field’s 0 decimal places, as it would be sent, it is 1000, of more than 3 digits before the decimal point; round it in the transform to what the field takes, or widen the field in Salesforce (source column score)',
        ],
        [
          ids[1],
          'NUMBER_OUTSIDE_VALID_RANGE',
          'Discount__c: 999.995 does not fit Number(5, 2): rounded to the field’s 2 decimal places, as it would be sent, it is 1000.00, of more than 3 digits before the decimal point; round it in the transform to what the field takes, or widen the field in Salesforce (source column discount)',
        ],
        [
          ids[2],
          'NUMBER_OUTSIDE_VALID_RANGE',
          'LeadScore__c: 1234 does not fit Number(3, 0): at most 3 digits before the decimal point (source column score)',
        ],
        [
          ids[3],
          'NUMBER_OUTSIDE_VALID_RANGE',
          'Discount__c: 1000 does not fit Number(5, 2): at most 3 digits before the decimal point (source column discount)',
        ],
      ].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    );
  });

  it('a row without a key names the key field, its source column and what to do; a repeated key names the key field', async () => {
    await env.pool.query(
      `CREATE TABLE keyless_source (record_id text, ext text, last_name text, company text)`,
    );
    await env.pool.query(
      `INSERT INTO keyless_source VALUES (NULL, NULL, 'A', 'C'), ('  ', '  ', 'B', 'C'), ($1, 'k1', 'C', 'C'), ($1, 'k1', 'D', 'C')`,
      [ids[0]],
    );
    const update = {
      ...wide(),
      name: 'keyless-update',
      from: 'keyless_source',
      keyColumn: 'record_id',
      fields: { LastName: 'last_name' },
    };
    const upsert: WritebackTaskInput = {
      to: 'salesforce',
      name: 'keyless-upsert',
      object: 'Lead',
      from: 'keyless_source',
      mode: 'upsert',
      key: 'External_Id__c',
      keyColumn: 'ext',
      fields: { LastName: 'last_name', Company: 'company' },
    };
    const deps = env.deps({ writeback: [update, upsert] });
    for (const [task, field, column] of [
      ['keyless-update', 'Id', 'record_id'],
      ['keyless-upsert', 'External_Id__c', 'ext'],
    ]) {
      const runId = await env.newRun();
      await planWriteback(deps, { runId, task: task as string });
      const errors = await errorsOf(env, runId);
      // The key field, as every other code names a field (not the source column).
      expect(errors.map((e) => e.fields)).toEqual(errors.map(() => [field]));
      for (const e of errors.filter((x) => x.code === 'MISSING_KEY')) {
        expect(e.message).toBe(
          `${field as string}: the key is missing (source column ${column as string} is null or blank): a row without a key names no record, so it is not sent; give every row its key in the transform, or leave out the rows that have none`,
        );
      }
      expect(errors.filter((e) => e.code === 'MISSING_KEY')).toHaveLength(2);
      expect(errors.filter((e) => e.code === 'DUPLICATE_KEY')).toHaveLength(2);
    }
  });

  it('refuses numbers, dates and times that PostgreSQL reads but Salesforce does not read as written', async () => {
    await env.pool.query(
      `CREATE TABLE shapes_source ("Id" text, score text, next_call text, scored_at text, call_time text)`,
    );
    const rows: [string | null, string | null, string | null, string | null][] = [
      // PostgreSQL 16 reads hexadecimal, octal and binary integers, and underscores between digits.
      ['0x1F', null, null, null],
      ['0b11', null, null, null],
      ['0o17', null, null, null],
      ['1_0', null, null, null],
      // Dates and datetimes in words, Julian days, DateStyle's order, no dashes, the hour 24.
      [null, 'today', null, null],
      [null, 'epoch', null, null],
      [null, 'J2460000', null, null],
      [null, '1/2/3', null, null],
      [null, '20250701', null, null],
      [null, null, 'now', null],
      [null, null, '2025-07-01T24:00:00Z', null],
      // A time with an offset (a time field has none), and 24:00.
      [null, null, null, '10:00:00+02:00'],
      [null, null, null, '24:00:00'],
      // The shapes Salesforce reads.
      ['1e2', '2025-07-01T23:30:00-05:00', '2025-07-01 10:00:00+02', '10:00 PM'],
      [' -0.5 ', ' 2025-07-02 ', '2025-07-01T10:00:00.1234Z', '10:00:00Z'],
    ];
    for (const [i, r] of rows.entries()) {
      await env.pool.query(`INSERT INTO shapes_source VALUES ($1, $2, $3, $4, $5)`, [ids[i], ...r]);
    }
    const task: WritebackTaskInput = {
      name: 'Lead-shapes',
      to: 'salesforce',
      object: 'Lead',
      from: 'shapes_source',
      mode: 'update',
      fields: {
        LeadScore__c: 'score',
        Next_Call__c: 'next_call',
        Scored_At__c: 'scored_at',
        Call_Time__c: 'call_time',
      },
    };
    const runId = await env.newRun();

    const plan = await planWriteback(env.deps({ writeback: [task] }), {
      runId,
      task: 'Lead-shapes',
      dryRun: true,
    });

    expect(plan).toMatchObject({ sourceRows: 15, rejected: 13, changed: 2 });
    const errors = await errorsOf(env, runId);
    const messages = rows.slice(0, 13).map((_, i) => errors.find((e) => e.key === ids[i]));
    expect(messages.map((e) => [e?.code, e?.message])).toEqual([
      ...['0x1F', '0b11', '0o17', '1_0'].map((v) => [
        'INVALID_TYPE_ON_FIELD_IN_RECORD',
        `LeadScore__c: ${v} is not a number (source column score)`,
      ]),
      ...['today', 'epoch', 'J2460000', '1/2/3', '20250701'].map((v) => [
        'INVALID_TYPE_ON_FIELD_IN_RECORD',
        `Next_Call__c: ${v} is not a date (source column next_call)`,
      ]),
      ...['now', '2025-07-01T24:00:00Z'].map((v) => [
        'INVALID_TYPE_ON_FIELD_IN_RECORD',
        `Scored_At__c: ${v} is not a datetime (source column scored_at)`,
      ]),
      ...['10:00:00+02:00', '24:00:00'].map((v) => [
        'INVALID_TYPE_ON_FIELD_IN_RECORD',
        `Call_Time__c: ${v} is not a time (source column call_time)`,
      ]),
    ]);
    const { rows: planned } = await env.pool.query(
      `SELECT key, payload FROM roundtrip.writeback_plan_rows WHERE run_id = $1 ORDER BY key`,
      [runId],
    );
    expect(new Map(planned.map((r) => [r.key, r.payload]))).toEqual(
      new Map([
        [
          ids[13],
          {
            LeadScore__c: 100,
            Next_Call__c: '2025-07-01', // the day written
            Scored_At__c: '2025-07-01T08:00:00.000Z',
            Call_Time__c: '22:00:00.000Z',
          },
        ],
        [
          ids[14],
          {
            LeadScore__c: -1, // rounded half away from zero
            Next_Call__c: '2025-07-02',
            Scored_At__c: '2025-07-01T10:00:00.000Z', // Salesforce keeps the second
            Call_Time__c: '10:00:00.000Z',
          },
        ],
      ]),
    );
  });

  it('a dry run stores the plan, answers counts and a sample with current and new values, and only reads', async () => {
    await env.pool.query('DELETE FROM wide_source');
    for (const id of ids.slice(0, 5)) await row(id, { score: '99' });
    const runId = await env.newRun();
    const deps = env.deps({ writeback: [wide()] });
    env.sf.calls.clear();

    const { plan, result } = await runWriteback(deps, { runId, task: 'Lead-update', dryRun: true });

    expect(result).toBeUndefined();
    expect(plan).toMatchObject({ status: 'dry-run', changed: 5, rejected: 0 });
    expect(plan.sample).toHaveLength(5);
    const sampled = plan.sample?.find((s) => s.key === ids[0]);
    // ids[0] was synced with score 42 by the previous test: that is what Salesforce has.
    expect(sampled?.current).toMatchObject({ LeadScore__c: 42 });
    expect(sampled?.next).toMatchObject({ LeadScore__c: 99, Tier__c: 'Gold' });
    expect(env.sf.calls.count({ write: true })).toBe(0);
    expect(env.sf.calls.all().every((c) => !c.write)).toBe(true);
    expect(env.sf.store.get(ids[0] as string)?.LeadScore__c).toBe(42);
  });

  it("a dry run's sample fits in Step Functions' 256 KiB state payload, long texts cut: a plan output over it fails the deployed run uncaught (States.DataLimitExceeded)", async () => {
    const accounts = env.sf.store.seed(
      'Account',
      Array.from({ length: DRY_RUN_SAMPLE_ROWS }, (_, i) => ({ Name: `A${i}` })),
    );
    await env.pool.query('CREATE TABLE long_source ("Id" text, descr text)');
    // Account.Description holds 32000 characters: ten of them are 640 KB of JSON in UTF-8.
    const long = 'é'.repeat(32_000);
    for (const id of accounts) {
      await env.pool.query('INSERT INTO long_source VALUES ($1, $2)', [id, long]);
    }
    const deps = env.deps({
      writeback: [
        {
          to: 'salesforce',
          object: 'Account',
          from: 'long_source',
          mode: 'update',
          fields: { Description: 'descr' },
        },
      ],
    });

    const { plan } = await runWriteback(deps, {
      runId: await env.newRun(),
      task: 'Account-update',
      dryRun: true,
    });

    expect(plan).toMatchObject({ status: 'dry-run', changed: DRY_RUN_SAMPLE_ROWS });
    expect(payloadBytes(plan)).toBeLessThanOrEqual(DRY_RUN_SAMPLE_MAX_BYTES + 1024);
    expect(DRY_RUN_SAMPLE_MAX_BYTES).toBeLessThan(MAX_PAYLOAD_BYTES / 2);
    // Every row is still shown, its long text cut and saying how long it is.
    expect(plan.sample).toHaveLength(DRY_RUN_SAMPLE_ROWS);
    const description = plan.sample?.[0]?.next.Description as string;
    expect(description.startsWith('é'.repeat(100))).toBe(true);
    expect(description).toMatch(/… \(32000 characters\)$/);
  });

  it('maxChanges stops a run that would change more records, before any write', async () => {
    const runId = await env.newRun();
    const deps = env.deps({ writeback: [wide({ maxChanges: 3 })] });
    env.sf.calls.clear();

    const attempt = runWriteback(deps, { runId, task: 'Lead-update' });

    await expect(attempt).rejects.toThrow(MaxChangesExceededError);
    await expect(attempt).rejects.toThrow(
      `Write-back Lead-update would change 5 records, more than writeback[0].maxChanges (3); nothing was sent. Inspect the plan (SELECT * FROM roundtrip.writeback_plan_rows WHERE run_id = '${runId}' AND task = 'Lead-update'), then raise maxChanges or fix the transform`,
    );
    expect(env.sf.calls.count({ write: true })).toBe(0);
    expect(env.sf.store.get(ids[0] as string)?.LeadScore__c).toBe(42);
  });

  it('reconciles a lost insert by a number external ID: 42.00 in the payload is the 42 Salesforce answers', async () => {
    await env.pool.query(`CREATE TABLE numbered_source (num numeric, last_name text, hot boolean)`);
    await env.pool.query(`INSERT INTO numbered_source VALUES (42, 'Numbered', false), (43.5, 'Half', true)`);
    const deps = env.deps({
      writeback: [
        {
          to: 'salesforce',
          object: 'Lead',
          from: 'numbered_source',
          mode: 'insert',
          key: 'Lead_Number__c',
          keyColumn: 'num',
          fields: { LastName: 'last_name', Company: 'last_name', Is_Hot__c: 'hot' },
        },
      ],
    });
    const runId = await env.newRun();
    const before = env.sf.store.count('Lead');
    await planThenCrashInPush(env, deps, runId, 'Lead-insert');
    env.sf.calls.clear();

    const retried = await pushWriteback(deps, { runId, task: 'Lead-insert' });

    // Both found by their number (the query lists them unquoted), none sent again.
    expect(retried).toMatchObject({ succeeded: 2, failed: 0 });
    expect(env.sf.calls.count({ write: true })).toBe(0);
    expect(env.sf.calls.count({ operation: 'queryAll' })).toBe(1);
    expect(env.sf.store.count('Lead')).toBe(before + 2);
  });

  it('compares with sync_state field by field: a value that became null, or is held otherwise, is sent', async () => {
    // Three leads synced with every field set, then compared through the plan (dry runs).
    const mine = ids.slice(15, 18) as string[];
    await env.pool.query('DELETE FROM wide_source');
    for (const id of mine) await row(id, { hot: 'no' });
    const deps = env.deps({ writeback: [wide({ name: 'diff' })] });
    expect((await runWriteback(deps, { runId: await env.newRun(), task: 'diff' })).result).toMatchObject({
      succeeded: 3,
    });
    const changed = async (): Promise<string[]> => {
      const { plan } = await runWriteback(deps, { runId: await env.newRun(), task: 'diff', dryRun: true });
      return (plan.sample ?? []).map((r) => r.key).sort();
    };
    const synced = (sql: string, id: string) =>
      env.pool.query(
        `UPDATE roundtrip.sync_state SET synced_values = ${sql} WHERE task = 'diff' AND key = $1`,
        [id],
      );
    const [a, b, c] = mine as [string, string, string];
    expect(await changed()).toEqual([]);

    // The same numbers at another scale, as a row recorded by hand may hold them: unchanged.
    await synced(`synced_values || '{"LeadScore__c": 42.000, "NumberOfEmployees": 10.0}'`, a);
    expect(await changed()).toEqual([]);

    // A value that became null (blank text, a null number, a picklist's value taken away) is a
    // change to send. (A checkbox takes no null: that row would be rejected, not compared.)
    await env.pool.query(`UPDATE wide_source SET email = '  ' WHERE "Id" = $1`, [a]);
    await env.pool.query(`UPDATE wide_source SET employees = NULL WHERE "Id" = $1`, [b]);
    await env.pool.query(`UPDATE wide_source SET tier = NULL WHERE "Id" = $1`, [c]);
    expect(await changed()).toEqual([a, b, c].sort());
    await runWriteback(deps, { runId: await env.newRun(), task: 'diff' });
    expect(env.sf.store.get(a)?.Email ?? null).toBeNull();
    expect(env.sf.store.get(b)?.NumberOfEmployees ?? null).toBeNull();
    expect(env.sf.store.get(c)?.Tier__c ?? null).toBeNull();
    expect(await changed()).toEqual([]);

    // A null sent for a field the synced values do not hold (recorded before it was mapped): what
    // Salesforce holds there is not known, so it is sent.
    await synced(`synced_values - 'Email'`, a);
    // Held as another type or inside an array (containment looks into arrays): not the value sent.
    await synced(`jsonb_set(synced_values, '{LeadScore__c}', '"42"')`, b);
    await env.pool.query(`UPDATE wide_source SET tier = 'Gold' WHERE "Id" = $1`, [c]);
    await synced(`jsonb_set(synced_values, '{Tier__c}', '["Gold", "Silver"]')`, c);
    expect(await changed()).toEqual([a, b, c].sort());
  });
});
