/**
 * The write-back's crash-point sweep: for each mode (insert keyed by an external ID, upsert,
 * update) and each push API (Collections below `bulkThreshold`, Bulk 2.0 from it on), a crash at
 * every point of plan → push → collect, one point a scenario (crash-points.ts): every PostgreSQL
 * statement (the Lambda dying before it, or after a COMMIT it sent; outside a transaction, the
 * statement failing),
 * every Salesforce call (failing before it reaches Salesforce, or applied with its answer lost)
 * and every step's output (lost after the step did its work). Each scenario is then retried as
 * the state machine would (the same step again with the same input, then the next steps; a run
 * that fails is reported and the next run goes on), and what the product promises is checked:
 * every source record is in Salesforce exactly once with its values (counted per external key in
 * the emulator's store: the key field is an external ID that is NOT unique, so an insert sent
 * twice makes two records instead of being refused), nothing is reported written that Salesforce
 * does not hold, sync_state agrees with Salesforce, and a further run with nothing changed sends
 * no write call.
 */
import path from 'node:path';
import { DEFAULT_DESCRIBES_DIR } from '../../../emulators/salesforce/describe';
import type { WritebackTaskInput } from '../../../lambdas/config';
import { createPool, type PostgresPool } from '../../../lambdas/connectors/postgres';
import type { SalesforceConnector } from '../../../lambdas/connectors/salesforce';
import type { CoreDeps } from '../../../lambdas/core/deps';
import {
  collectWriteback,
  planWriteback,
  pushWriteback,
  reportRun,
  type PushOptions,
  type WritebackCollectOutput,
  type WritebackPlanOutput,
} from '../../../lambdas/core/writeback';
import { INSERT_SETTLE_MS } from '../../../lambdas/core/writeback/reconcile';
import { CRASH_KINDS, CrashInjector, type CrashKind, type PointCounts } from './crash-points';
import { startWritebackEnv, type WritebackEnv } from './support';

type Mode = 'insert' | 'upsert' | 'update';
type Api = 'collections' | 'bulk';

/** The non-unique external-ID field of Lead the sweep keys its records by (describes-sweep/Lead.json). */
const KEY_FIELD = 'Sweep_Key__c';
/** Records a scenario writes: Collections below the threshold, Bulk from it on. */
const RECORDS: Record<Api, number> = { collections: 6, bulk: 9 };
const BULK_THRESHOLD = 5;
/** Small enough that the Bulk scenarios' nine records go in two jobs. */
const MAX_JOB_BYTES = 1000;
/** Runs a scenario may take to get every record written (a run that fails is followed by the next). */
const MAX_RUNS = 4;
/**
 * Scenarios run side by side, each with a pool of its own (two connections, as a Lambda's): they
 * share the database and the emulator, never a task, a table or a key.
 */
const LANES = 3;

/**
 * Where a scenario runs: a pool and a connector of its own, as a Lambda container has. (One
 * connector shared by scenarios running side by side would count the others' calls as a step's
 * own, and a step records the calls it spent: statements that come and go.)
 */
interface Lane {
  readonly pool: PostgresPool;
  readonly connector: SalesforceConnector;
}

/**
 * `CRASH_SWEEP_HAND_ON=1`: every push and collect invocation has the time for one unit of work
 * only (its first, budget.ts) and hands the rest on, so that the sweep goes through the Lambda
 * clock's hand-on path too (push-pending, several collects, the push marked as going on). Off by
 * default: it adds about half again to the sweep's time, and found nothing when it was added.
 */
const HAND_ON = process.env.CRASH_SWEEP_HAND_ON === '1';

/**
 * `CRASH_SWEEP_FULL=1` crashes at every point of every kind (974 scenarios, about three minutes on
 * two cores: run it when the write-back's statements or calls change). By default the two kinds
 * with most points, a statement before which the Lambda dies and a statement that fails, are
 * crashed at every {@link DEFAULT_STRIDE}th point, each case starting at another point (its index),
 * so that the six cases between them cover every residue; the other kinds at every point. That
 * keeps the file near a minute inside `npm test`'s ten.
 */
const FULL = process.env.CRASH_SWEEP_FULL === '1';
const DEFAULT_STRIDE = 6;
const SAMPLED_KINDS: ReadonlySet<CrashKind> = new Set<CrashKind>(['pg-dies-before', 'pg-fails']);

/** The points of kind `k` a case crashes at: 1…n, or every stride-th from its offset. */
function strideOf(k: CrashKind): number {
  return FULL || !SAMPLED_KINDS.has(k) ? 1 : DEFAULT_STRIDE;
}

/** A run that failed (the state machine's Catch): reported failed, the next run goes on. */
class RunFailed extends Error {
  constructor(
    message: string,
    readonly errorName: string,
  ) {
    super(message);
    this.name = 'RunFailed';
  }
}

interface SourceRow {
  key: string;
  /** Update: the record's Salesforce Id (the key the task writes by). */
  id?: string;
  lastName: string;
  company: string;
  score: number;
}

interface Scenario {
  readonly mode: Mode;
  readonly api: Api;
  readonly task: string;
  readonly table: string;
  readonly prefix: string;
  readonly rows: readonly SourceRow[];
  readonly runIds: string[];
}

/** What one scenario found. */
interface ScenarioResult {
  readonly task: string;
  readonly fired: boolean;
  readonly point: string;
  readonly problems: string[];
  readonly counts: PointCounts;
  readonly runs: number;
  readonly errorCodes: string[];
}

let scenarios = 0;

/** The points of a kind that a run went through. */
function pointsOf(kind: CrashKind, counts: PointCounts): number {
  switch (kind) {
    case 'pg-dies-before':
      return counts.statements;
    case 'pg-fails':
      return counts.outside;
    case 'pg-dies-after-commit':
      return counts.commits;
    case 'sf-fails-before':
    case 'sf-answer-lost':
      return counts.calls;
    case 'step-output-lost':
      return counts.invocations;
  }
}

describe('write-back crash-point sweep', () => {
  let env: WritebackEnv;
  const pools: PostgresPool[] = [];

  beforeAll(async () => {
    env = await startWritebackEnv({
      describesDir: [DEFAULT_DESCRIBES_DIR, path.join(__dirname, 'describes-sweep')],
      // The sweep makes tens of thousands of calls: more than a Developer Edition's day.
      dailyApiLimit: 10_000_000,
    });
    await env.pool.query('ANALYZE roundtrip.sync_state'); // see newScenario
    for (let i = 0; i < LANES; i += 1) {
      pools.push(createPool({ url: env.db.url }, { ssl: { mode: 'disable' }, max: 2 }));
    }
  });
  afterAll(async () => {
    await Promise.all(pools.map((pool) => pool.end()));
    await env?.stop();
  });

  /** A fresh task, source table and set of keys, with the records an update or upsert finds. */
  async function newScenario(mode: Mode, api: Api): Promise<Scenario> {
    scenarios += 1;
    const n = scenarios;
    // The plan ANALYZEs sync_state (shared by every scenario's task) when 1,000 changes made its
    // statistics stale: one statement more, in whichever scenario meets it. Kept fresh here, every
    // run of a mode and API goes through the same points, and the sweep can count them exactly.
    if (n % 20 === 0) await env.pool.query('ANALYZE roundtrip.sync_state');
    const prefix = `sw${n}-`;
    const rows: SourceRow[] = Array.from({ length: RECORDS[api] }, (_, i) => ({
      key: `${prefix}${i}`,
      lastName: `Sweep ${n}.${i}`,
      company: `Co ${i}`,
      score: 10 * i + 1,
    }));
    // Update writes records that exist; upsert finds half of its keys and creates the others.
    const existing = mode === 'update' ? rows : mode === 'upsert' ? rows.filter((_, i) => i % 2 === 0) : [];
    const ids = env.sf.store.seed(
      'Lead',
      existing.map((r) => ({ LastName: 'Old', Company: 'Old Co', [KEY_FIELD]: r.key })),
    );
    existing.forEach((r, i) => {
      r.id = ids[i];
    });
    const table = `sweep_src_${n}`;
    if (mode === 'update') {
      await env.pool.query(`CREATE TABLE ${table} ("Id" text, last_name text, score integer)`);
      await env.pool.query(`INSERT INTO ${table} SELECT * FROM unnest($1::text[], $2::text[], $3::int[])`, [
        rows.map((r) => r.id),
        rows.map((r) => r.lastName),
        rows.map((r) => r.score),
      ]);
    } else {
      await env.pool.query(`CREATE TABLE ${table} (ext text, last_name text, company text, score integer)`);
      await env.pool.query(
        `INSERT INTO ${table} SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[])`,
        [
          rows.map((r) => r.key),
          rows.map((r) => r.lastName),
          rows.map((r) => r.company),
          rows.map((r) => r.score),
        ],
      );
    }
    return { mode, api, task: `sweep-${n}`, table, prefix, rows, runIds: [] };
  }

  function taskConfig(s: Scenario): WritebackTaskInput {
    const common = {
      name: s.task,
      to: 'salesforce' as const,
      object: 'Lead',
      from: s.table,
      bulkThreshold: s.api === 'bulk' ? BULK_THRESHOLD : 2000,
    };
    return s.mode === 'update'
      ? { ...common, mode: 'update', fields: { LastName: 'last_name', LeadScore__c: 'score' } }
      : {
          ...common,
          mode: s.mode,
          key: KEY_FIELD,
          keyColumn: 'ext',
          fields: { LastName: 'last_name', Company: 'company', LeadScore__c: 'score' },
        };
  }

  /**
   * One step as the state machine runs it: retried with the same input on a TransientError
   * (5 times), a TaskBusyError (12 times: its 18 minutes outlast an insert's settling, which is
   * stepped over here by ageing the ledger) or a Lambda that died (twice); any other error, or
   * retries spent, fails the run.
   */
  async function step<T>(
    s: Scenario,
    injector: CrashInjector,
    name: string,
    fn: () => Promise<T>,
  ): Promise<T> {
    const tries = { transient: 0, busy: 0, died: 0 };
    for (;;) {
      injector.startInvocation();
      try {
        const out = await fn();
        injector.endInvocation(name);
        return out;
      } catch (err) {
        const error = err as Error;
        if (injector.diedInThisInvocation) {
          if ((tries.died += 1) > 2) throw new RunFailed(error.message, 'Lambda.Unknown');
          continue;
        }
        if (error.name === 'TaskBusyError') {
          if ((tries.busy += 1) > 12) throw new RunFailed(error.message, error.name);
          if (/looked up again/.test(error.message)) await ageLedger(s);
          // A dead invocation's connection (and its task lock) goes a moment after it is closed.
          else await new Promise((resolve) => setTimeout(resolve, 20));
          continue;
        }
        if (error.name === 'TransientError' || error.name === 'PushGoingOnError') {
          if ((tries.transient += 1) > 5) throw new RunFailed(error.message, error.name);
          continue;
        }
        throw new RunFailed(error.message, error.name);
      }
    }
  }

  /** As if every call that carried the task's records had had the time to end (INSERT_SETTLE_MS). */
  async function ageLedger(s: Scenario): Promise<void> {
    await env.pool.query(
      `UPDATE roundtrip.writeback_plans SET updated_at = updated_at - $2 * interval '1 millisecond' WHERE task = $1`,
      [s.task, INSERT_SETTLE_MS],
    );
  }

  /** One run of the task: plan, push, collect, report, as the state machine chains them. */
  async function run(
    s: Scenario,
    deps: CoreDeps,
    injector: CrashInjector,
  ): Promise<{ status: string; plan?: WritebackPlanOutput }> {
    const runId = await env.newRun();
    s.runIds.push(runId);
    const options: PushOptions = { maxJobBytes: MAX_JOB_BYTES, ...(HAND_ON ? { timeLeft: () => 1000 } : {}) };
    let plan: WritebackPlanOutput | undefined;
    try {
      plan = await step(s, injector, 'plan', () => planWriteback(deps, { runId, task: s.task }));
      let pushed = await step(s, injector, 'push', () =>
        pushWriteback(deps, { runId, task: s.task }, options),
      );
      while (pushed.status === 'push-pending') {
        pushed = await step(s, injector, 'push', () => pushWriteback(deps, { runId, task: s.task }, options));
      }
      let state: WritebackCollectOutput = pushed;
      for (let polls = 0; state.status === 'bulk-pending'; polls += 1) {
        if (polls > 40) throw new RunFailed('Bulk jobs still running after 40 polls', 'TerminalError');
        const pending = state;
        state = await step(s, injector, 'collect', () => collectWriteback(deps, pending, options));
      }
      injector.armed = false;
      injector.settle();
      const report = await reportRun(deps, { runId });
      return { status: report.status, plan };
    } catch (err) {
      if (!(err instanceof RunFailed)) throw err;
      injector.armed = false;
      injector.settle();
      await reportRun(deps, { runId, error: { Error: err.errorName, Cause: err.message } });
      return { status: 'failed', ...(plan ? { plan } : {}) };
    }
  }

  /** What the product promises, checked against the emulator's store and the state tables. */
  async function check(s: Scenario): Promise<string[]> {
    const problems: string[] = [];
    const live = [...env.sf.store.all('Lead')].filter(
      (r) => r.IsDeleted !== true && String(r[KEY_FIELD] ?? '').startsWith(s.prefix),
    );
    const liveById = new Map(live.map((r) => [r.Id as string, r]));
    const { rows: stateRows } = await env.pool.query<{
      key: string;
      salesforce_id: string | null;
      synced_values: Record<string, unknown> | null;
    }>(`SELECT key, salesforce_id, synced_values FROM roundtrip.sync_state WHERE task = $1`, [s.task]);
    const state = new Map(stateRows.map((r) => [r.key, r]));
    const same = (a: unknown, b: unknown): boolean =>
      typeof a === 'number' || typeof b === 'number' ? Number(a) === Number(b) : a === b;
    for (const row of s.rows) {
      const holders = live.filter((r) => r[KEY_FIELD] === row.key);
      if (holders.length !== 1) {
        problems.push(
          holders.length === 0
            ? `key ${row.key}: no record in Salesforce (lost)`
            : `key ${row.key}: ${holders.length} records in Salesforce (${holders.map((h) => h.Id).join(', ')}): duplicated`,
        );
        continue;
      }
      const record = holders[0] as Record<string, unknown>;
      const want: Record<string, unknown> = { LastName: row.lastName, LeadScore__c: row.score };
      if (s.mode !== 'update') want.Company = row.company;
      for (const [field, value] of Object.entries(want)) {
        if (!same(record[field], value))
          problems.push(
            `key ${row.key}: Salesforce holds ${field} = ${String(record[field])}, not ${String(value)}`,
          );
      }
      const synced = state.get(s.mode === 'update' ? (row.id as string) : row.key);
      if (!synced) {
        problems.push(`key ${row.key}: no sync_state row, though Salesforce holds it`);
      } else {
        if (synced.salesforce_id !== record.Id)
          problems.push(
            `key ${row.key}: sync_state says Id ${synced.salesforce_id}, Salesforce has ${String(record.Id)}`,
          );
        for (const [field, value] of Object.entries(synced.synced_values ?? {})) {
          if (!same(record[field], value))
            problems.push(
              `key ${row.key}: sync_state says ${field} = ${String(value)}, Salesforce holds ${String(record[field])}`,
            );
        }
      }
    }
    const keys = new Set(s.rows.map((r) => r.key));
    for (const r of live) {
      if (!keys.has(r[KEY_FIELD] as string))
        problems.push(`record ${String(r.Id)} holds a key no source row has`);
    }
    for (const r of stateRows) {
      if (r.salesforce_id !== null && !liveById.has(r.salesforce_id))
        problems.push(`sync_state key ${r.key}: Id ${r.salesforce_id} is not a record in Salesforce`);
    }
    // Nothing reported written that Salesforce does not hold: ledger rows and the runs' figures.
    const { rows: ledger } = await env.pool.query<{
      run_id: string;
      key: string;
      salesforce_id: string | null;
    }>(
      `SELECT run_id, key, salesforce_id FROM roundtrip.writeback_plans WHERE task = $1 AND status = 'succeeded'`,
      [s.task],
    );
    for (const l of ledger) {
      const record = l.salesforce_id === null ? undefined : liveById.get(l.salesforce_id);
      const key = s.mode === 'update' ? s.rows.find((r) => r.id === l.key)?.key : l.key;
      if (!record || record[KEY_FIELD] !== key)
        problems.push(
          `run ${l.run_id} recorded key ${l.key} written as ${String(l.salesforce_id)}, which Salesforce does not hold`,
        );
    }
    const { rows: runs } = await env.pool.query<{
      run_id: string;
      written: string | null;
      succeeded: string;
    }>(
      `SELECT r.run_id, r.summary->'writeback'->$1->>'written' AS written,
              (SELECT count(*) FROM roundtrip.writeback_plans l
                WHERE l.run_id = r.run_id AND l.task = $1 AND l.status = 'succeeded') AS succeeded
         FROM roundtrip.runs r WHERE r.run_id = ANY($2::text[])`,
      [s.task, s.runIds],
    );
    for (const r of runs) {
      if (r.written !== null && Number(r.written) !== Number(r.succeeded))
        problems.push(`run ${r.run_id} reports ${r.written} written, its ledger ${r.succeeded}`);
    }
    return problems;
  }

  /**
   * The scenario's second record is refused UNABLE_TO_LOCK_ROW by the first write that carries it
   * (the Collections call, or the Bulk job) and by nothing after: every scenario goes through the
   * serial row-lock retry pass as well. The lock is lifted before the first Collections call that
   * carries it again (for Bulk, the first to carry it at all).
   */
  function lockedOnce(
    s: Scenario,
    sf: SalesforceConnector,
  ): { connector: SalesforceConnector; unlock: () => void; retried: boolean } {
    const row = s.rows[1] as SourceRow;
    // The emulator locks a record by what the write carries: the Id for update, else the key.
    const value = s.mode === 'update' ? (row.id as string) : row.key;
    const lockKeys = (): string[] => [...(env.sf.faults.get().lockRowKeys ?? [])];
    env.sf.faults.set({ lockRowKeys: [...lockKeys(), value] });
    let carriers = 0;
    const state = {
      retried: false,
      unlock: () => env.sf.faults.set({ lockRowKeys: lockKeys().filter((k) => k !== value) }),
      connector: Object.create(sf, {
        request: {
          value: (operation: string, method: 'GET' | 'POST' | 'PATCH', path: string, body?: unknown) => {
            if (method !== 'GET' && typeof body === 'string' && body.includes(`"${value}"`)) {
              carriers += 1;
              if (carriers >= (s.api === 'bulk' ? 1 : 2)) {
                state.unlock();
                state.retried = true;
              }
            }
            return sf.request(operation, method, path, body);
          },
        },
      }) as SalesforceConnector,
    };
    return state;
  }

  /** One scenario: the crash, the retries and runs that follow, the checks, and a run with nothing to do. */
  async function scenario(
    mode: Mode,
    api: Api,
    crash: { kind: CrashKind; at: number } | undefined,
    lane: Lane,
  ): Promise<ScenarioResult> {
    const s = await newScenario(mode, api);
    const injector = new CrashInjector(crash, env.sf);
    const locked = lockedOnce(s, lane.connector);
    const deps: CoreDeps = {
      ...env.deps({ writeback: [taskConfig(s)] }),
      pg: injector.pool(lane.pool),
      salesforce: injector.connector(locked.connector),
    };
    const problems: string[] = [];
    injector.armed = true;
    let runs = 0;
    let status = '';
    try {
      while (runs < MAX_RUNS && status !== 'succeeded') {
        if (runs > 0) await ageLedger(s);
        ({ status } = await run(s, deps, injector));
        runs += 1;
      }
    } finally {
      locked.unlock();
    }
    if (!locked.retried) problems.push(`the record locked once was never sent again`);
    if (status !== 'succeeded') problems.push(`no run succeeded in ${MAX_RUNS}`);
    problems.push(...(await check(s)));
    // Nothing changed: the next run plans nothing and sends no write.
    const writesBefore = injector.writes;
    const again = await run(s, deps, injector);
    const writes = injector.writes - writesBefore;
    if (again.status !== 'succeeded') problems.push(`the run with nothing changed ended ${again.status}`);
    if ((again.plan?.changed ?? 0) !== 0)
      problems.push(`the run with nothing changed planned ${again.plan?.changed}`);
    if (writes !== 0) problems.push(`the run with nothing changed made ${writes} write calls`);
    const { rows: errors } = await env.pool.query<{ code: string }>(
      `SELECT DISTINCT code FROM roundtrip.writeback_errors WHERE task = $1 ORDER BY code`,
      [s.task],
    );
    return {
      task: s.task,
      fired: injector.fired,
      point: injector.firedAt,
      problems,
      counts: injector.counts,
      runs,
      errorCodes: errors.map((e) => e.code),
    };
  }

  const cases: [Mode, Api][] = [
    ['insert', 'collections'],
    ['insert', 'bulk'],
    ['upsert', 'collections'],
    ['upsert', 'bulk'],
    ['update', 'collections'],
    ['update', 'bulk'],
  ];

  /**
   * Every point of every kind of crash, one scenario each, on {@link LANES} lanes: point 1, 2, 3…
   * of a kind until a scenario's run no longer reaches its point (a lane may have started a few
   * points past it: they run as scenarios without a crash).
   */
  async function sweep(mode: Mode, api: Api, lanes: readonly Lane[], offset: number) {
    const problems: string[] = [];
    // What the crashes led to: scenarios that needed another run, and the error codes recorded.
    let laterRuns = 0;
    const codes = new Set<string>();
    const reached = Object.fromEntries(CRASH_KINDS.map((k) => [k, new Set<number>()])) as Record<
      CrashKind,
      Set<number>
    >;
    // Per kind, the first point no run reached.
    const there: Partial<Record<CrashKind, { at: number; points: number }>> = {};
    let kind = 0;
    let at: number | undefined;
    const first = (k: CrashKind): number => 1 + (offset % strideOf(k));
    const next = (): { kind: CrashKind; at: number } | undefined => {
      for (;;) {
        const k = CRASH_KINDS[kind];
        if (k === undefined) return undefined;
        at = at === undefined ? first(k) : at + strideOf(k);
        if (at < (there[k]?.at ?? Infinity)) return { kind: k, at };
        kind += 1;
        at = undefined;
      }
    };
    await Promise.all(
      lanes.map(async (lane) => {
        for (let crash = next(); crash; crash = next()) {
          const result = await scenario(mode, api, crash, lane);
          const where = result.fired ? result.point : 'not reached';
          problems.push(...result.problems.map((p) => `${crash.kind} #${crash.at} (${where}): ${p}`));
          if (result.runs > 1) laterRuns += 1;
          result.errorCodes.forEach((c) => codes.add(c));
          if (result.fired) reached[crash.kind].add(crash.at);
          else if (crash.at < (there[crash.kind]?.at ?? Infinity))
            there[crash.kind] = { at: crash.at, points: pointsOf(crash.kind, result.counts) };
        }
      }),
    );
    return { problems, reached, there, laterRuns, codes: [...codes].sort() };
  }

  it.each(cases.map(([mode, api], index) => [mode, api, index] as const))(
    '%s through %s: a crash at any point of plan, push or collect, retried, loses and duplicates nothing',
    async (mode, api, index) => {
      // Fresh connectors, their describe of Lead loaded: no scenario of the case asks for it (a
      // connector keeps it five minutes).
      const lanes = await Promise.all(
        pools.map(async (pool): Promise<Lane> => {
          const connector = await env.connect();
          await connector.describe('Lead');
          return { pool, connector };
        }),
      );
      const baseline = await scenario(mode, api, undefined, lanes[0] as Lane);
      expect(baseline.problems).toEqual([]);
      const { rows: jobs } = await env.pool.query(
        `SELECT job_id FROM roundtrip.writeback_jobs WHERE task = $1`,
        [baseline.task],
      );
      expect(jobs).toHaveLength(api === 'bulk' ? 2 : 0);
      const { problems, reached, there, laterRuns, codes } = await sweep(mode, api, lanes, index);
      expect(problems).toEqual([]);
      // Every point of a run (every stride-th of a sampled kind) was crashed at, and those are many.
      const counts = Object.fromEntries(CRASH_KINDS.map((k) => [k, reached[k].size]));
      const points = Object.fromEntries(CRASH_KINDS.map((k) => [k, pointsOf(k, baseline.counts)]));
      for (const k of CRASH_KINDS) {
        // Crashed at points first, first + stride, … up to n, where n is what a run without a
        // crash goes through: the not-reached scenario's run, and the case's first scenario's.
        const n = points[k] as number;
        const stride = strideOf(k);
        const first = 1 + (index % stride);
        const expected = Array.from(
          { length: n >= first ? Math.floor((n - first) / stride) + 1 : 0 },
          (_, i) => first + i * stride,
        );
        expect([k, [...reached[k]].sort((a, b) => a - b)]).toEqual([k, expected]);
        expect([k, there[k]]).toEqual([k, { at: first + expected.length * stride, points: n }]);
      }
      expect(points['pg-dies-before']).toBeGreaterThan(40);
      expect(points['pg-dies-after-commit']).toBeGreaterThan(3);
      expect(points['pg-fails']).toBeGreaterThan(15);
      expect(counts['sf-answer-lost']).toBeGreaterThan(api === 'bulk' ? 8 : 1);
      expect(counts['step-output-lost']).toBeGreaterThan(1);
      console.log(
        `${mode}/${api}: crashed at ${JSON.stringify(counts)} of ${JSON.stringify(points)} points; ${laterRuns} scenarios needed another run; error codes recorded: ${codes.join(', ') || 'none'}`,
      );
    },
    600_000,
  );
});
