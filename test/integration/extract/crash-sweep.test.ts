/**
 * A crash-point sweep of the extract leg: for each scenario (a Salesforce incremental read over
 * REST and over Bulk, with records created, updated and deleted between runs; Salesforce full
 * reads over REST and Bulk; an Athena refresh and an Athena merge), every PostgreSQL statement and
 * every Salesforce or Athena call of the task's steps is failed in turn, one point per run
 * (crash-points.ts), and the run goes on as Step Functions would drive it: a step that failed
 * with a TransientError is sent again with the same input, any other failure fails the run and a
 * next run starts. After every attempt and at the end the table is compared with the emulator's
 * records:
 * - nothing missing and nothing twice, deleted records flagged or removed as docs/extract.md says;
 * - a failed attempt leaves the table as it was or as it would be after the load (never half);
 * - the watermark never passes a record the table does not hold as it is;
 * - a further run with nothing changed inserts, updates and deletes nothing.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AthenaClient } from '@aws-sdk/client-athena';
import { S3Client } from '@aws-sdk/client-s3';
import { athenaClientConfig, s3ClientConfig } from '../../../emulators/athena';
import type { ExtractTaskInput, PipelineConfig } from '../../../lambdas/config';
import { createAthenaConnector, type AthenaConnector } from '../../../lambdas/connectors/athena';
import { connectSalesforce } from '../../../lambdas/connectors/salesforce';
import {
  checkSalesforceExtract,
  extractSalesforce,
  loadAthena,
  prepare,
  type CoreDeps,
  type SalesforceExtractOptions,
  type SalesforceExtractOutput,
} from '../../../lambdas/core';
import { TransientError } from '../../../lambdas/shared/errors';
import { silentLogger } from '../../../lambdas/shared/logging';
import {
  CrashPlan,
  crashAwsCalls,
  crashingFetch,
  crashingPool,
  type CrashChannel,
  type CrashMode,
} from './crash-points';
import { ATHENA_OUTPUT, CANARY, leads, startExtractHarness, type ExtractHarness } from './harness';

const FIELDS = ['Id', 'FirstName', 'LastName', 'Company', 'NumberOfEmployees', 'SystemModstamp', 'IsDeleted'];
/** Leads seeded: more than one REST page of 200 for the full reads. */
const SEEDED = 205;
/** Step Functions' TRANSIENT_RETRY sends a step 5 times; then the run fails. */
const STEP_ATTEMPTS = 5;
/** Runs after the one that crashed before the sweep gives up on a scenario. */
const MAX_RUNS = 3;

interface SalesforceScenario {
  readonly kind: 'salesforce';
  readonly name: string;
  readonly task: ExtractTaskInput & { from: 'salesforce' };
  readonly options: SalesforceExtractOptions;
  /** Incremental: the watermark is checked after every attempt. */
  readonly incremental: boolean;
}

interface AthenaScenario {
  readonly kind: 'athena';
  readonly name: string;
  readonly task: ExtractTaskInput & { from: 'athena' };
}

type Scenario = SalesforceScenario | AthenaScenario;

const salesforceTask = (
  name: string,
  extra: Partial<ExtractTaskInput & { from: 'salesforce' }>,
): ExtractTaskInput & { from: 'salesforce' } => ({
  from: 'salesforce',
  name,
  object: 'Lead',
  fields: FIELDS,
  table: `crash_${name}`,
  overlapSeconds: 0,
  ...extra,
});

const SCENARIOS: Scenario[] = [
  {
    kind: 'salesforce',
    name: 'incremental over REST, deletes flagged',
    task: salesforceTask('inc_rest', { deletes: 'flag', bulkThreshold: 100_000 }),
    options: { restBatchSize: 200 },
    incremental: true,
  },
  {
    kind: 'salesforce',
    name: 'incremental over Bulk, deletes removed',
    task: salesforceTask('inc_bulk', { deletes: 'remove', bulkThreshold: 1 }),
    options: { bulkResultPageRecords: 5 },
    incremental: true,
  },
  {
    kind: 'salesforce',
    name: 'full over REST, deletes removed',
    task: salesforceTask('full_rest', { mode: 'full', deletes: 'remove', bulkThreshold: 100_000 }),
    options: { restBatchSize: 200 },
    incremental: false,
  },
  {
    kind: 'salesforce',
    name: 'full over Bulk, deletes flagged',
    task: salesforceTask('full_bulk', { mode: 'full', deletes: 'flag', bulkThreshold: 1 }),
    options: { bulkResultPageRecords: 200 },
    incremental: false,
  },
  {
    kind: 'athena',
    name: 'Athena refresh (no key, swapped in)',
    task: { from: 'athena', name: 'ath_swap', query: 'SELECT * FROM customers', table: 'crash_ath_swap' },
  },
  {
    kind: 'athena',
    name: 'Athena merge (key)',
    task: {
      from: 'athena',
      name: 'ath_merge',
      query: 'SELECT * FROM customers',
      table: 'crash_ath_merge',
      key: ['email'],
    },
  },
];

/** The modes tried at a point, given what it is (learnt from the `error` run at it). */
function modesFor(
  channel: CrashChannel,
  inTransaction: boolean,
  what: string,
  streamed: boolean,
): CrashMode[] {
  if (channel === 'pg') {
    // Inside a transaction a statement that failed, ran or never came are all rolled back: the
    // `error` run covers them. A COMMIT, or a statement on its own, is done once it ran.
    return inTransaction && !/^COMMIT/i.test(what) ? [] : ['lost-answer', 'crash-before', 'crash-after'];
  }
  // A read changes nothing: answered or not, it is the same to a crash; the connector resends it.
  const read = /^GET\b|^(Athena|S3) Get/.test(what);
  return [
    ...(read ? (['crash-before'] as const) : (['lost-answer', 'crash-before', 'crash-after'] as const)),
    ...(streamed ? (['cut', 'cut-crash'] as const) : []),
  ];
}

/** The modes that fail with a TransientError, which Step Functions retries with the same input. */
const TRANSIENT_MODES: ReadonlySet<CrashMode> = new Set(['error', 'lost-answer', 'cut']);

describe('extract crash sweep: one crash per run at every statement and call, then retries', () => {
  let h: ExtractHarness;
  let athenaPlan: CrashPlan | undefined;
  let athena: AthenaConnector;
  const clients: { destroy(): void }[] = [];
  /** Rows of the Athena table `customers`, rewritten before every run. */
  let customers: { email: string; ltv: number; version: number }[] = [];
  let version = 0;
  /**
   * Time as Salesforce and the steps see it: the real clock plus `skew`, which jumps forward
   * between batches of changes, so that a run's changes span several seconds (SOQL bounds are
   * whole seconds: without the jumps every change of a quick test shares the watermark's second,
   * is read again by the next run, and a watermark that went past a record would go unnoticed).
   */
  let skew = 0;
  const salesforceNow = (): Date => new Date(Date.now() + skew);
  const passSeconds = (ms: number): void => {
    skew += ms;
  };

  beforeAll(async () => {
    h = await startExtractHarness({
      seed: { Lead: leads(SEEDED, 'Crash') },
      salesforceClock: () => salesforceNow(),
    });
    const athenaClient = new AthenaClient({ ...athenaClientConfig(h.athenaEmulator), maxAttempts: 1 });
    const s3 = new S3Client({ ...s3ClientConfig(h.athenaEmulator), maxAttempts: 1 });
    clients.push(athenaClient, s3);
    crashAwsCalls(athenaClient, 'Athena', () => athenaPlan);
    crashAwsCalls(s3, 'S3', () => athenaPlan);
    athena = createAthenaConnector({
      athena: athenaClient,
      s3,
      logger: silentLogger,
      workgroup: 'primary',
      database: 'marketing',
      outputLocation: ATHENA_OUTPUT,
    });
  });
  afterAll(async () => {
    for (const c of clients) c.destroy();
    await h.close();
  });

  const configOf = (s: Scenario): PipelineConfig => h.config([s.task]);

  /** The deps of one step attempt: a new "container" whose every statement and call `plan` numbers. */
  function depsFor(config: PipelineConfig, plan: CrashPlan): CoreDeps {
    let signedIn: ReturnType<typeof connectSalesforce> | undefined;
    athenaPlan = plan;
    return {
      ...h.deps(config),
      logger: silentLogger,
      pg: crashingPool(h.pool, plan) as CoreDeps['pg'],
      salesforce: () =>
        (signedIn ??= connectSalesforce({
          secret: {
            loginUrl: h.sf.loginUrl,
            username: h.sf.credentials.username,
            password: CANARY.password,
            securityToken: CANARY.securityToken,
          },
          apiVersion: h.sf.apiVersion,
          logger: silentLogger,
          fetch: crashingFetch(plan),
        })),
      athena,
      clock: {
        now: salesforceNow,
        sleep: (ms) => new Promise<void>((resolve) => setTimeout(resolve, ms / 100)),
      },
    };
  }

  const cleanDeps = (config: PipelineConfig): CoreDeps => ({
    ...depsFor(config, new CrashPlan()),
    pg: h.pool,
  });

  // ------------------------------------------------------------------------ what must be true

  /** The table's rows, one canonical line each, sorted. */
  async function tableLines(s: Scenario): Promise<string[]> {
    const table = s.task.table;
    const exists = await h.rows(`SELECT 1 FROM pg_class WHERE relname = $1`, [table]);
    if (exists.length === 0) return [];
    if (s.kind === 'athena') {
      const rows = await h.rows<{ line: string }>(
        `SELECT concat_ws('|', email, ltv::text, version::text) AS line FROM ${table}`,
      );
      return rows.map((r) => r.line).sort();
    }
    // Built by PostgreSQL, in the form salesforceLine gives the emulator's records.
    const columns = FIELDS.map((f) =>
      f === 'SystemModstamp'
        ? `to_char("${f}" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`
        : `coalesce("${f}"::text, '')`,
    );
    const rows = await h.rows<{ line: string }>(
      `SELECT concat_ws('|', ${columns.join(', ')}) AS line FROM ${table}`,
    );
    return rows.map((r) => r.line).sort();
  }

  /** A record of the emulator's store as one line (its datetimes are `…T….mmm+0000`). */
  function salesforceLine(r: Record<string, unknown>): string {
    return FIELDS.map((f) => {
      const v = r[f];
      if (f === 'SystemModstamp') return String(v).replace(/\+0000$/, 'Z');
      return v === null || v === undefined ? '' : String(v);
    }).join('|');
  }

  const stampOf = (v: unknown): Date => (v instanceof Date ? v : new Date(String(v).replace(/\+0000$/, 'Z')));

  /** What Salesforce or Athena holds, as the table should: one canonical line each, sorted. */
  function expectedLines(s: Scenario, merged?: Map<string, string>): string[] {
    if (s.kind === 'athena') {
      if (merged) return [...merged.values()].sort();
      return customers.map((c) => `${c.email}|${c.ltv}|${c.version}`).sort();
    }
    const keep =
      s.task.deletes === 'remove' ? (r: Record<string, unknown>) => r.IsDeleted !== true : () => true;
    return [...h.sf.store.all('Lead')]
      .filter(keep)
      .map((r) => salesforceLine(r))
      .sort();
  }

  /** Records the watermark of an incremental task has gone past without the table holding them as they are. */
  async function watermarkViolations(s: SalesforceScenario, lines: string[]): Promise<string[]> {
    const [state] = await h.rows<{ watermark: Date | null }>(
      'SELECT watermark FROM roundtrip.extract_state WHERE task = $1',
      [s.task.name],
    );
    if (!state?.watermark) return [];
    // The next read asks for SystemModstamp >= watermark − overlap, rounded down to the second.
    const bound = Math.floor(state.watermark.getTime() / 1000) * 1000 - (s.task.overlapSeconds ?? 0) * 1000;
    const table = new Set(lines);
    const ids = new Set([...table].map((l) => l.split('|')[0]));
    const problems: string[] = [];
    for (const record of h.sf.store.all('Lead')) {
      const stamp = stampOf(record.SystemModstamp).getTime();
      if (stamp >= bound) continue;
      const removed = s.task.deletes === 'remove' && record.IsDeleted === true;
      const line = salesforceLine(record);
      if (removed ? ids.has(String(record.Id)) : !table.has(line)) {
        problems.push(
          `watermark ${state.watermark.toISOString()} is past ${String(record.Id)} (${removed ? 'deleted, still in the table' : 'not in the table as it is'})`,
        );
      }
    }
    return problems;
  }

  // ------------------------------------------------------------------------ changes between runs

  /**
   * Updates a lead, then, a second later, creates one, updates another and deletes a third (not
   * counted as API calls): the watermark of the next load is past the first change.
   */
  function changeSalesforce(point: number): void {
    const live = h.sf.store
      .query('SELECT Id FROM Lead WHERE IsDeleted = false ORDER BY Id')
      .records.map((r) => r.Id as string);
    const pick = (k: number): string => live[(point * 7 + k * 13) % live.length] as string;
    passSeconds(1_100);
    h.sf.store.update('Lead', [{ Id: pick(1), FirstName: `Upd ${point}a` }]);
    passSeconds(1_100);
    // A value with a quote, a comma and a line break: a cut page must resume on a record boundary.
    h.sf.store.create('Lead', [
      { LastName: `Created "${point}",\nsecond line`, Company: 'Sweep', FirstName: 'New' },
    ]);
    h.sf.store.update('Lead', [{ Id: pick(2), Company: `Upd ${point}b` }]);
    h.sf.store.delete([pick(3)]);
  }

  /** Rewrites the Athena table: every row's version moves; one row comes, another goes. */
  async function changeAthena(merged: Map<string, string> | undefined): Promise<void> {
    version += 1;
    const n = 12 + (version % 3);
    customers = Array.from({ length: n }, (_, i) => ({
      email: `c${(i + version) % 40}@x.test`,
      ltv: i * 10 + version,
      version,
    }));
    await writeFile(
      path.join(h.dataDir, 'marketing', 'customers.csv'),
      ['email,ltv,version', ...customers.map((c) => `${c.email},${c.ltv},${c.version}`)].join('\n') + '\n',
    );
    if (merged) for (const c of customers) merged.set(c.email, `${c.email}|${c.ltv}|${c.version}`);
  }

  // ------------------------------------------------------------------------ driving the runs

  interface Outcome {
    readonly fired: boolean;
    readonly runs: number;
    readonly attempts: number;
    readonly violations: string[];
    readonly loaded?: { inserted: number; updated: number; deleted: number };
  }

  /**
   * One scenario run with `plan` armed until it fires, then runs and retries as Step Functions
   * would until the task is loaded; invariants are checked after every attempt.
   */
  async function runWithCrash(
    s: Scenario,
    plan: CrashPlan,
    merged: Map<string, string> | undefined,
    label: string,
  ): Promise<Outcome> {
    const config = configOf(s);
    const violations: string[] = [];
    let attempts = 0;
    const before = await tableLines(s);
    for (let run = 1; run <= MAX_RUNS + 1; run += 1) {
      const prepared = await prepare({ input: {} }, cleanDeps(config));
      let pending: SalesforceExtractOutput | undefined;
      for (let attempt = 1; attempt <= STEP_ATTEMPTS; attempt += 1) {
        const armed = !plan.fired ? plan : new CrashPlan();
        const deps = depsFor(config, armed);
        attempts += 1;
        const at = `${label}, run ${run}, attempt ${attempt}${armed === plan ? ` (${plan.describe()})` : ''}`;
        let failure: unknown;
        let loaded: Outcome['loaded'];
        const attemptStartedAt = salesforceNow().getTime();
        try {
          if (s.kind === 'athena') {
            loaded = await loadAthena({ runId: prepared.runId, task: s.task.name ?? '' }, deps);
          } else {
            const out: SalesforceExtractOutput =
              pending === undefined
                ? await extractSalesforce(
                    { runId: prepared.runId, task: s.task.name ?? '', full: prepared.full },
                    deps,
                    s.options,
                  )
                : await checkSalesforceExtract(pending as never, deps, s.options);
            if (out.status === 'loaded') loaded = out;
            else {
              pending = out;
              attempt = 0; // a new step: its own retries
            }
          }
        } catch (err) {
          failure = err;
        }
        // A Bulk start that answered pending changed no table: nothing to check yet.
        if (failure === undefined && !loaded) continue;
        const now = await tableLines(s);
        if (s.kind === 'salesforce' && s.incremental) {
          for (const v of await watermarkViolations(s, now)) violations.push(`${at}: ${v}`);
        }
        const expected = expectedLines(s, merged);
        const settled = withoutDocumentedLeftovers(s, now, attemptStartedAt);
        if (failure !== undefined && !same(now, before) && !same(settled, expected)) {
          violations.push(
            `${at}: the failed attempt left the table neither as it was nor loaded (${diff(now, expected)})`,
          );
        }
        if (loaded) {
          if (!same(settled, expected)) violations.push(`${at}: loaded, but ${diff(now, expected)}`);
          return { fired: plan.fired, runs: run, attempts, violations, loaded };
        }
        if (failure !== undefined && !(failure instanceof TransientError)) break; // the run fails
      }
    }
    violations.push(`${label}: not loaded after ${MAX_RUNS + 1} runs (${attempts} attempts)`);
    return { fired: plan.fired, runs: MAX_RUNS + 1, attempts, violations };
  }

  /**
   * `now` without the rows docs/extract.md says a full read with `remove` leaves for the next one:
   * a record deleted in the same second as the read started, whose row was loaded in that second
   * too (stamped at or after the read's start, known to the second, the row counts as loaded by
   * an overlapping run).
   */
  function withoutDocumentedLeftovers(s: Scenario, now: string[], attemptStartedAt: number): string[] {
    if (s.kind !== 'salesforce' || s.incremental || s.task.deletes !== 'remove') return now;
    const since = Math.floor(attemptStartedAt / 1000) * 1000;
    return now.filter((line) => {
      const [id = '', , , , , stamp = ''] = line.split('|');
      return !(h.sf.store.get(id)?.IsDeleted === true && new Date(stamp).getTime() >= since);
    });
  }

  const same = (a: string[], b: string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
  function diff(actual: string[], expected: string[]): string {
    const count = (xs: string[]) =>
      xs.reduce((m, x) => m.set(x, (m.get(x) ?? 0) + 1), new Map<string, number>());
    const a = count(actual);
    const e = count(expected);
    const missing = [...e].filter(([x, n]) => (a.get(x) ?? 0) < n).map(([x]) => x);
    const extra = [...a].filter(([x, n]) => (e.get(x) ?? 0) < n).map(([x]) => x);
    return `${actual.length} rows for ${expected.length} expected; missing or stale ${JSON.stringify(missing.slice(0, 3))}; extra or twice ${JSON.stringify(extra.slice(0, 3))}`;
  }

  /** Sweeps one scenario: every point of every channel, every mode that differs there. */
  async function sweep(
    s: Scenario,
  ): Promise<{ points: number; byChannel: Record<string, number>; violations: string[] }> {
    const merged = s.kind === 'athena' && s.task.key ? new Map<string, string>() : undefined;
    const change = async (point: number): Promise<void> => {
      if (s.kind === 'athena') await changeAthena(merged);
      else changeSalesforce(point);
    };
    const violations: string[] = [];
    // Bulk query jobs take a moment, as Salesforce's do: an abort or a poll can find one running.
    h.sf.faults.set({ bulkJobDelayMs: s.kind === 'salesforce' ? 10 : undefined });
    // The first load, without faults.
    await change(0);
    const first = await runWithCrash(s, new CrashPlan(), merged, `${s.name}: first load`);
    violations.push(...first.violations);

    const channels: CrashChannel[] = s.kind === 'athena' ? ['pg', 'athena'] : ['pg', 'salesforce'];
    const byChannel: Record<string, number> = {};
    let points = 0;
    let changes = 0;
    for (const channel of channels) {
      for (let n = 1; ; n += 1) {
        // The `error` run at n tells what the point is; the other modes follow when they differ.
        const probe = new CrashPlan(channel, n, 'error');
        await change((changes += 1));
        const outcome = await runWithCrash(s, probe, merged, `${s.name}: error at ${channel} #${n}`);
        violations.push(...outcome.violations);
        if (outcome.runs > 1) {
          violations.push(
            `${s.name}: error at ${channel} #${n}: a transient failure failed the run (loaded by run ${outcome.runs})`,
          );
        }
        if (!outcome.fired) break;
        points += 1;
        byChannel[channel] = (byChannel[channel] ?? 0) + 1;
        const point = probe.points.find((p) => p.channel === channel && p.n === n);
        if (!point) throw new Error(`the ${channel} point #${n} fired but was not recorded`);
        for (const mode of modesFor(channel, point.inTransaction, point.what, point.streamed)) {
          const plan = new CrashPlan(channel, n, mode);
          await change((changes += 1));
          const label = `${s.name}: ${mode} at ${channel} #${n} (${point.what})`;
          const result = await runWithCrash(s, plan, merged, label);
          violations.push(...result.violations);
          // A transient failure is retried with the same input: the run itself must not fail.
          if (TRANSIENT_MODES.has(mode) && result.runs > 1) {
            violations.push(`${label}: a transient failure failed the run (loaded by run ${result.runs})`);
          }
          if (result.fired) {
            points += 1;
            byChannel[channel] = (byChannel[channel] ?? 0) + 1;
          }
        }
      }
    }
    // Nothing changed: a further run loads nothing new and leaves the table as it is. A second
    // later, so that a full read's start no longer shares its second with the last changes.
    passSeconds(1_100);
    const before = await tableLines(s);
    const quiet = await runWithCrash(s, new CrashPlan(), merged, `${s.name}: run with nothing changed`);
    violations.push(...quiet.violations);
    if (s.kind === 'salesforce' && quiet.loaded) {
      const { inserted, updated, deleted } = quiet.loaded;
      if (inserted + updated + deleted > 0) {
        violations.push(
          `${s.name}: a run with nothing changed inserted ${inserted}, updated ${updated}, deleted ${deleted}`,
        );
      }
    }
    if (!same(await tableLines(s), before))
      violations.push(`${s.name}: a run with nothing changed changed the table`);
    return { points, byChannel, violations };
  }

  it('a retried Bulk start whose checkpoint committed, its answer lost, does not re-attach to the job it aborted', async () => {
    const s: SalesforceScenario = {
      kind: 'salesforce',
      name: 'checkpoint answer lost',
      task: salesforceTask('ckpt_lost', { deletes: 'flag', bulkThreshold: 1 }),
      options: { bulkResultPageRecords: 200 },
      incremental: true,
    };
    const config = configOf(s);
    expect((await runWithCrash(s, new CrashPlan(), undefined, 'first load')).violations).toEqual([]);
    changeSalesforce(1_000);
    const { runId } = await prepare({ input: {} }, cleanDeps(config));
    const input = { runId, task: s.task.name ?? '', full: false };
    // The job is still running when the step, told its checkpoint failed, aborts it.
    h.sf.faults.set({ bulkJobDelayMs: 60_000 });
    const plan = new CrashPlan('pg', /^INSERT INTO roundtrip\.extract_jobs/, 'lost-answer');
    await expect(extractSalesforce(input, depsFor(config, plan), s.options)).rejects.toBeInstanceOf(
      TransientError,
    );
    const [checkpointed] = await h.rows<{ job_id: string }>(
      'SELECT job_id FROM roundtrip.extract_jobs WHERE run_id = $1',
      [runId],
    );
    expect(checkpointed).toBeDefined();
    h.sf.faults.set({ bulkJobDelayMs: undefined });

    // Step Functions retries the step with the same input: a new job, not the aborted one.
    let output = await extractSalesforce(input, depsFor(config, new CrashPlan()), s.options);
    expect(output).toMatchObject({ status: 'bulk-pending' });
    expect((output as { jobId: string }).jobId).not.toBe(checkpointed?.job_id);
    while (output.status === 'bulk-pending') {
      output = await checkSalesforceExtract(output, depsFor(config, new CrashPlan()), s.options);
    }
    expect(output).toMatchObject({ status: 'loaded', api: 'bulk' });
    expect(await tableLines(s)).toEqual(expectedLines(s));
  });

  it.each(SCENARIOS.map((s) => [s.name, s] as const))(
    '%s: no record lost or loaded twice, the watermark never past a record not loaded',
    async (_name, scenario) => {
      const started = Date.now();
      const result = await sweep(scenario);
      console.info(
        `${scenario.name}: ${result.points} crash points ${JSON.stringify(result.byChannel)} in ${Date.now() - started} ms`,
      );
      // The first few say where it went wrong; one mistake repeats at every later point.
      expect({ violations: result.violations.length, first: result.violations.slice(0, 6) }).toEqual({
        violations: 0,
        first: [],
      });
      // Every point of the step was reached: a floor on their number keeps the sweep from passing empty.
      expect(result.byChannel.pg ?? 0).toBeGreaterThanOrEqual(scenario.kind === 'athena' ? 10 : 15);
      expect(
        result.byChannel[scenario.kind === 'athena' ? 'athena' : 'salesforce'] ?? 0,
      ).toBeGreaterThanOrEqual(4);
    },
    120_000,
  );
});
