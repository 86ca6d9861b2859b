/**
 * Plan from typed source columns: an integer, numeric, float, boolean, date or timestamp column
 * skips the parsing and the checks its type makes redundant, yet plans exactly what the same
 * values as text plan (the same payloads, hashes and seq, the same rejections); and the plan's
 * rows belong to a recorded run (migration 3 replaced the foreign key by a lock and triggers).
 */
import path from 'node:path';
import { DEFAULT_DESCRIBES_DIR } from '../../../emulators/salesforce/describe';
import type { WritebackTaskInput } from '../../../lambdas/config';
import { planWriteback } from '../../../lambdas/core/writeback';
import { TerminalError } from '../../../lambdas/shared/errors';
import { startWritebackEnv, type WritebackEnv } from './support';

const fields = {
  LeadScore__c: 'score',
  NumberOfEmployees: 'employees',
  Discount__c: 'discount',
  AnnualRevenue: 'revenue',
  Is_Hot__c: 'hot',
  Next_Call__c: 'next_call',
  Scored_At__c: 'scored_at',
  Tier__c: 'tier',
  LastName: 'last_name',
};

const task = (name: string, from: string, over: Partial<WritebackTaskInput> = {}): WritebackTaskInput => ({
  name,
  to: 'salesforce',
  object: 'Lead',
  from,
  mode: 'update',
  fields,
  ...over,
});

interface PlanRow {
  key: string;
  seq: string;
  salesforce_id: string;
  payload: string;
  value_hash: string;
}

describe('write-back plan from typed source columns', () => {
  let env: WritebackEnv;
  let ids: string[];

  beforeAll(async () => {
    env = await startWritebackEnv({
      describesDir: [DEFAULT_DESCRIBES_DIR, path.join(__dirname, 'describes')],
    });
    ids = env.sf.store.seed(
      'Lead',
      Array.from({ length: 12 }, (_, i) => ({ LastName: `L${i}`, Company: 'C', Is_Hot__c: false })),
    );
    await env.pool.query(`CREATE TABLE typed_source (
      "Id" varchar(24), score integer, employees bigint, discount numeric(6,3), revenue double precision,
      hot boolean, next_call date, scored_at timestamptz, scored_local timestamp, tier varchar(10),
      last_name varchar(80))`);
    const row = (id: string, over: Record<string, unknown> = {}): unknown[] => {
      const r: Record<string, unknown> = {
        score: 42,
        employees: 10,
        discount: '12.3456',
        revenue: 1234.5,
        hot: true,
        next_call: '2025-07-01',
        scored_at: '2025-06-01 23:30:00-05',
        scored_local: '2025-06-01 10:00:00.1239',
        tier: 'Gold',
        last_name: 'Name',
        ...over,
      };
      return [
        id,
        r.score,
        r.employees,
        r.discount,
        r.revenue,
        r.hot,
        r.next_call,
        r.scored_at,
        r.scored_local,
        r.tier,
        r.last_name,
      ];
    };
    const rows = [
      row(ids[0] as string),
      row(ids[1] as string, { score: 1234 }), // Number(3,0) from an integer column
      row(ids[2] as string, { discount: '999.995' }), // rounds to 1000.00: Number(5,2) takes 3 digits
      row(ids[3] as string, { revenue: 'NaN' }),
      row(ids[4] as string, { next_call: 'infinity' }),
      row(ids[5] as string, { employees: 123456789 }), // int field of 8 digits from a bigint
      row(ids[6] as string, { tier: 'Retired' }), // inactive value of a restricted picklist
      row(ids[7] as string, { hot: null }), // Is_Hot__c is not nillable
      row(ids[8] as string, { score: -2147483648 }), // the smallest integer: no overflow in the check
      row(ids[9] as string, { score: null, discount: '0.005', revenue: -0.5, scored_at: null }),
      row(ids[10] as string),
      row(ids[10] as string, { score: 7 }), // the same key twice
      row(`  ${ids[11] as string} `, { revenue: 1e20 }), // a padded Id; 21 digits for Number(18,0)
    ];
    for (const r of rows) {
      await env.pool.query(
        `INSERT INTO typed_source VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
        r,
      );
    }
    // The same values as text: what a transform that casts nothing would leave.
    await env.pool.query(`SET TimeZone = 'UTC'`);
    await env.pool.query(`CREATE TABLE text_source AS SELECT "Id"::text AS "Id", score::text AS score,
      employees::text AS employees, discount::text AS discount, revenue::text AS revenue, hot::text AS hot,
      next_call::text AS next_call, scored_at::text AS scored_at, scored_local::text AS scored_local,
      tier::text AS tier, last_name::text AS last_name FROM typed_source`);
  });
  afterAll(async () => env?.stop());

  async function planOf(runId: string, name: string): Promise<PlanRow[]> {
    const { rows } = await env.pool.query<PlanRow>(
      `SELECT key, seq::text, salesforce_id, payload::text, md5(payload::text) AS value_hash
         FROM roundtrip.writeback_plan_rows WHERE run_id = $1 AND task = $2 ORDER BY seq`,
      [runId, name],
    );
    return rows;
  }

  it('plans the same payloads, hashes and rejections as the same values in text columns', async () => {
    const runId = await env.newRun();
    const deps = env.deps({
      writeback: [
        task('typed', 'typed_source'),
        task('text', 'text_source'),
        task('typed-local', 'typed_source', { fields: { ...fields, Scored_At__c: 'scored_local' } }),
        task('text-local', 'text_source', { fields: { ...fields, Scored_At__c: 'scored_local' } }),
      ],
    });
    env.sf.calls.clear();

    const typed = await planWriteback(deps, { runId, task: 'typed', dryRun: true });
    const text = await planWriteback(deps, { runId, task: 'text', dryRun: true });
    const typedLocal = await planWriteback(deps, { runId, task: 'typed-local', dryRun: true });
    const textLocal = await planWriteback(deps, { runId, task: 'text-local', dryRun: true });

    expect(typed).toMatchObject({ sourceRows: 13, rejected: 11, changed: 2 });
    // (apiCalls: the first plan described the object, the others found the describe cached.)
    expect({ ...text, task: 'typed', sample: undefined, apiCalls: 0 }).toEqual({
      ...typed,
      sample: undefined,
      apiCalls: 0,
    });
    expect(await planOf(runId, 'typed')).toEqual(await planOf(runId, 'text'));
    expect(await planOf(runId, 'typed-local')).toEqual(await planOf(runId, 'text-local'));
    expect(typedLocal.changed).toBe(2);
    expect(textLocal.changed).toBe(2);

    const { rows: byTask } = await env.pool.query<{
      task: string;
      key: string;
      code: string;
      fields: string[];
      message: string;
    }>(
      `SELECT task, key, code, fields, message FROM roundtrip.writeback_errors WHERE run_id = $1 ORDER BY task, key, code`,
      [runId],
    );
    const rejections = (name: string): string[] =>
      byTask
        .filter((e) => e.task === name)
        .map((e) => `${e.key}|${e.code}|${e.fields.join(',')}|${e.message}`);
    expect(rejections('typed')).toEqual(rejections('text'));
    const code = new Map(byTask.filter((e) => e.task === 'typed').map((e) => [e.key, e.code]));
    expect(code.get(ids[1] as string)).toBe('NUMBER_OUTSIDE_VALID_RANGE');
    expect(code.get(ids[2] as string)).toBe('NUMBER_OUTSIDE_VALID_RANGE');
    expect(code.get(ids[3] as string)).toBe('INVALID_TYPE_ON_FIELD_IN_RECORD');
    expect(code.get(ids[4] as string)).toBe('INVALID_TYPE_ON_FIELD_IN_RECORD');
    expect(code.get(ids[5] as string)).toBe('NUMBER_OUTSIDE_VALID_RANGE');
    expect(code.get(ids[6] as string)).toBe('INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST');
    expect(code.get(ids[7] as string)).toBe('REQUIRED_FIELD_MISSING');
    expect(code.get(ids[8] as string)).toBe('NUMBER_OUTSIDE_VALID_RANGE');
    expect(code.get(ids[10] as string)).toBe('DUPLICATE_KEY');
    expect(code.get(`  ${ids[11] as string} `)).toBe('NUMBER_OUTSIDE_VALID_RANGE');

    const plan = await planOf(runId, 'typed');
    expect(plan.map((p) => [p.key, p.seq, p.salesforce_id])).toEqual(
      [ids[0], ids[9]].sort().map((id, i) => [id, String(i + 1), id]),
    );
    const payload = (id: string): Record<string, unknown> =>
      JSON.parse(plan.find((p) => p.key === id)?.payload ?? '{}') as Record<string, unknown>;
    expect(payload(ids[0] as string)).toEqual({
      LeadScore__c: 42,
      NumberOfEmployees: 10,
      Discount__c: 12.35, // numeric(6,3) rounded half away from zero to the field's scale 2
      AnnualRevenue: 1235, // a double rounded to Number(18,0)
      Is_Hot__c: true,
      Next_Call__c: '2025-07-01',
      Scored_At__c: '2025-06-02T04:30:00.000Z', // -05:00 became UTC
      Tier__c: 'Gold',
      LastName: 'Name',
    });
    expect(payload(ids[9] as string)).toMatchObject({
      LeadScore__c: null,
      Discount__c: 0.01,
      AnnualRevenue: -1,
      Scored_At__c: null,
    });
    const local = await planOf(runId, 'typed-local');
    // A timestamp without a zone is read as UTC; milliseconds are dropped (Salesforce keeps the second), not rounded.
    expect(JSON.parse(local[0]?.payload ?? '{}')).toMatchObject({ Scored_At__c: '2025-06-01T10:00:00.000Z' });
    expect(env.sf.calls.count({ write: true })).toBe(0);
  });

  it('refuses a date or timestamp before year 1 as out of range, not as the same year AD', async () => {
    await env.pool.query(
      `CREATE TABLE bc_source ("Id" text, next_call date, scored_at timestamptz, scored_local timestamp)`,
    );
    await env.pool.query(
      `INSERT INTO bc_source VALUES ($1, '2000-07-01 BC', NULL, NULL), ($2, NULL, '2000-07-01 10:00:00+00 BC', NULL),
                                    ($3, NULL, NULL, '2000-07-01 10:00:00 BC'), ($4, '2025-07-01', '2025-07-01 10:00:00+00', NULL)`,
      [ids[0], ids[1], ids[2], ids[3]],
    );
    const runId = await env.newRun();
    const deps = env.deps({
      writeback: [
        task('bc', 'bc_source', { fields: { Next_Call__c: 'next_call', Scored_At__c: 'scored_at' } }),
        task('bc-local', 'bc_source', { fields: { Scored_At__c: 'scored_local' } }),
      ],
    });

    const bc = await planWriteback(deps, { runId, task: 'bc', dryRun: true });
    const local = await planWriteback(deps, { runId, task: 'bc-local', dryRun: true });

    expect(bc).toMatchObject({ sourceRows: 4, rejected: 2, changed: 2 });
    expect(local).toMatchObject({ rejected: 1 });
    const { rows } = await env.pool.query(
      `SELECT task, key, code, fields FROM roundtrip.writeback_errors WHERE run_id = $1 ORDER BY task, key`,
      [runId],
    );
    expect(rows.map((r) => [r.task, r.key, r.code, r.fields])).toEqual([
      ['bc', ids[0], 'DATE_OUTSIDE_VALID_RANGE', ['Next_Call__c']],
      ['bc', ids[1], 'DATE_OUTSIDE_VALID_RANGE', ['Scored_At__c']],
      ['bc-local', ids[2], 'DATE_OUTSIDE_VALID_RANGE', ['Scored_At__c']],
    ]);
  });

  it('refuses to plan for a run that is not recorded, and a deleted run takes its plan along', async () => {
    const deps = env.deps({ writeback: [task('typed', 'typed_source')] });
    const missing = planWriteback(deps, { runId: 'never-recorded', task: 'typed' });
    await expect(missing).rejects.toThrow(TerminalError);
    await expect(missing).rejects.toThrow(/Run never-recorded is not recorded in roundtrip.runs/);

    const runId = await env.newRun();
    await planWriteback(deps, { runId, task: 'typed', dryRun: true });
    expect(await planOf(runId, 'typed')).toHaveLength(2);
    await env.pool.query(`DELETE FROM roundtrip.runs WHERE run_id = $1`, [runId]);
    expect(await planOf(runId, 'typed')).toHaveLength(0);
    const { rows } = await env.pool.query(
      `SELECT count(*)::int AS n FROM roundtrip.writeback_errors WHERE run_id = $1`,
      [runId],
    );
    expect(rows[0].n).toBe(0);
  });
});
