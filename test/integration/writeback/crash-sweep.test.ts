/**
 * The write-back's crash-point sweep: for each mode (insert keyed by an external ID, upsert,
 * update) and each push API (Collections below `bulkThreshold`, Bulk 2.0 from it on), a crash at
 * every point of plan → push → collect, one point a scenario (crash-points.ts): every PostgreSQL
 * statement (the Lambda dying before it, or after a COMMIT it sent; outside a transaction, the
 * statement failing, once or for good), every Salesforce call (failing before it reaches Salesforce; a call that writes applied with its answer lost too)
 * and every step's output (lost after the step did its work). Each scenario is then retried as
 * the state machine would (the same step again with the same input, then the next steps; a run
 * that fails is reported and the next run goes on), and what the product promises is checked:
 * every source record is in Salesforce exactly once with its values (counted per external key in
 * the emulator's store: the key field is an external ID that is NOT unique, so an insert sent
 * twice makes two records instead of being refused), nothing is reported written that Salesforce
 * does not hold, sync_state agrees with Salesforce, a record Salesforce refuses has its error with
 * Salesforce's code, and a further run with nothing changed sends no write call.
 *
 * Besides the small cases (a few records, one call or two Bulk jobs), larger ones go through what
 * only many records reach: one Composite call of three Collections subrequests (450 records) with
 * a record locked once and one refused for good (DUPLICATE_VALUE on a unique field) in its last
 * subrequest; two Composite calls (1,250 records, two plan pages) pushed one call an invocation,
 * handing on between them (the Lambda clock, budget.ts). And the steps around the write-back: a
 * crash at every point of Prepare (its run recorded once, with one start time and its task names
 * claimed, its API calls counted once) and of Report (its figures those of the ledger, nothing
 * counted twice, the failed run's notification sent). And what the next run's plan resolves of a
 * run that ended with its inserts sent (`endedFirst`): keys looked up by external ID (sent by a
 * call, or in Bulk jobs Salesforce has forgotten) or Bulk jobs collected, the crash in that next
 * run, the ended run's figures checked too. And an upsert and an update after a run that ended
 * with its Bulk jobs left (`endedOpen`): one finished and never collected, one left Open in
 * Salesforce (uploaded and never closed; created and never uploaded), the source changed since;
 * the next plan collects the first and aborts the second, and Salesforce ends with the newest
 * values.
 */
import path from 'node:path';
import type { Readable } from 'node:stream';
import { DEFAULT_DESCRIBES_DIR } from '../../../emulators/salesforce/describe';
import type { WritebackTaskInput } from '../../../lambdas/config';
import { createPool, type PostgresPool } from '../../../lambdas/connectors/postgres';
import type { SalesforceConnector } from '../../../lambdas/connectors/salesforce';
import {
  COLLECTIONS_MAX_RECORDS,
  COMPOSITE_MAX_RECORDS,
  getIngestJob,
  isFinalIngestState,
} from '../../../lambdas/connectors/salesforce/writes';
import type { CoreDeps, Notification } from '../../../lambdas/core/deps';
import { prepare } from '../../../lambdas/core/prepare';
import {
  collectWriteback,
  planWriteback,
  pushWriteback,
  reportRun,
  type PushOptions,
  type ReportOutput,
  type WritebackCollectOutput,
  type WritebackPlanOutput,
} from '../../../lambdas/core/writeback';
import { INSERT_SETTLE_MS, UNKNOWN_VALUE_HASH } from '../../../lambdas/core/writeback/reconcile';
import { TransientError } from '../../../lambdas/shared/errors';
import { CRASH_KINDS, CrashInjector, type CrashKind, type PointCounts } from './crash-points';
import { crashingConnector, startWritebackEnv, type WritebackEnv } from './support';

type Mode = 'insert' | 'upsert' | 'update';
type Api = 'collections' | 'bulk';

/** The non-unique external-ID field of Lead the sweep keys its records by (describes-sweep/Lead.json). */
const KEY_FIELD = 'Sweep_Key__c';
/** Records a small case writes: Collections below the threshold, Bulk from it on. */
const RECORDS: Record<Api, number> = { collections: 6, bulk: 9 };
const BULK_THRESHOLD = 5;
/** Small enough that the Bulk scenarios' nine records go in two jobs. */
const MAX_JOB_BYTES = 1000;
/** The unique (not external-ID) field of describes-sweep/Lead.json: a value another record holds is DUPLICATE_VALUE. */
const UNIQUE_FIELD = 'Sweep_Unique__c';
/** The code Salesforce refuses the record of a case's `refused` index with, every time it is sent. */
const REFUSED_CODE = 'DUPLICATE_VALUE';
/**
 * Runs a scenario may take to get every record written (a run that fails, or that holds keys back
 * until an earlier run's outcome is known, is followed by the next).
 */
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
 * `CRASH_SWEEP_FULL=1` (`npm run test:crash-sweep`) crashes at every point of every kind of every
 * case (2,516 scenarios at the thirteenth session, and 883 in the three `endedFirst` cases added
 * at the fourteenth, and 659 in the two `endedOpen` ones: run it when the write-back's, Prepare's or
 * Report's statements or calls change). By default a small
 * case (Prepare and Report too) crashes at every {@link DEFAULT_STRIDE}th point of the three kinds
 * with most points, a statement before which the Lambda dies and a statement that fails (once, or
 * for good), each case starting at another point (its index), so that the cases between them cover
 * six residues of every eight; a small write-back case at every other point of the Salesforce
 * calls and of the deaths after a commit ({@link SMALL_CASE_HALVED_KINDS}), and at every point of
 * the other kinds (Prepare's and Report's cases at every point of those too); a large case (hundreds of records: a
 * scenario takes a second or more) at every point of the kinds new to it (`everyPointOf`) only:
 * the `endedFirst` and `endedOpen` cases at every {@link ENDED_RUN_STRIDE}th point of those kinds
 * and every fifth point of the Salesforce calls and of the deaths after a commit
 * ({@link ENDED_RUN_HALF_STRIDE}: the five ended cases, whose indexes follow each other, cover the
 * five residues); the small write-back cases' failing statements alternate
 * between their two kinds ({@link ALTERNATING_KINDS}). About 670 scenarios (780 before the
 * twenty-second session made the ended cases' strides longer, to keep `npm test` under ten minutes
 * on a slower machine), fewer since the twenty-third's alternation, and about 520 since the
 * twenty-sixth's longer strides (every eighth, and every third of the ended cases' halved kinds);
 * about 370 since the thirty-second's (the small cases' Salesforce calls and commits halved, the
 * ended cases' strides 48 and 5, one run without a crash after a case's sweep instead of a
 * scenario past the last point of each kind: {@link sweep}), when the sweep took 200 of
 * `npm test`'s 1,560 s of file time.
 * Prepare and Report run before the large cases, whose scenarios leave the org with hundreds of thousands of records that Prepare's forecast would count (32 s instead of 1).
 */
const FULL = process.env.CRASH_SWEEP_FULL === '1';
const DEFAULT_STRIDE = 8;
/**
 * The stride of the cases whose first run ends before the sweep starts (`endedFirst`,
 * `endedOpen`): their runs go through twice the points of a small case's, most of them the same
 * push and collect, which the small cases go through; every forty-eighth keeps `npm test` inside
 * its time (every twenty-fourth before the thirty-second session; their every point:
 * `CRASH_SWEEP_FULL=1`).
 */
const ENDED_RUN_STRIDE = 48;
/**
 * The stride of those cases' Salesforce calls (a call failing before it reaches Salesforce, or
 * applied with its answer lost) and deaths after a commit: half of them are the same Bulk job's
 * polls and results, and the same push's and collect's commits, as a small case's. Every fifth
 * (thirty-second session; every third from the twenty-sixth, every other before; to keep `npm test`
 * inside its ten minutes): the five ended cases, whose indexes (6 to 10) follow each other, cover
 * the five residues between them.
 */
const ENDED_RUN_HALF_STRIDE = 5;
/**
 * The kinds a small write-back case (not `endedFirst`, `endedOpen` or large) crashes at every other
 * point of, by default: a call failing before it reaches Salesforce, a write applied with its answer
 * lost, a death after a commit. Each of the two APIs has three small cases, whose first points
 * alternate ({@link firstPointOf}): between them they go through both residues, each point twice
 * but for one (every point of each case before the thirty-second session, to keep `npm test`
 * inside its ten minutes on a slower machine; every point of each with `CRASH_SWEEP_FULL=1`).
 */
const SMALL_CASE_HALVED_KINDS: ReadonlySet<CrashKind> = new Set<CrashKind>([
  'sf-fails-before',
  'sf-answer-lost',
  'pg-dies-after-commit',
]);
const SAMPLED_KINDS: ReadonlySet<CrashKind> = new Set<CrashKind>([
  'pg-dies-before',
  'pg-fails',
  'pg-fails-run-ends',
]);
const ENDED_RUN_HALVED_KINDS: ReadonlySet<CrashKind> = new Set<CrashKind>([
  'sf-fails-before',
  'sf-answer-lost',
  'pg-dies-after-commit',
]);

/** The steps a case crashes in; the others run without a crash. */
type Phase = 'writeback' | 'prepare' | 'report';

/** One case of the sweep: what the scenarios write, and where they crash. */
interface Case {
  readonly name: string;
  readonly mode: Mode;
  readonly api: Api;
  readonly records: number;
  /** The index of the record refused UNABLE_TO_LOCK_ROW by the first write that carries it. */
  readonly locked: number;
  /** The index of the record Salesforce refuses for good ({@link REFUSED_CODE}), if any. */
  readonly refused?: number;
  /** Every push and collect invocation has the time for one unit of work only, and hands on. */
  readonly handOn: boolean;
  readonly phase: Phase;
  /**
   * A large case: the kinds it crashes at (every point of them) in `npm test`; all of them with
   * `CRASH_SWEEP_FULL=1`. Its points are those its first scenario, without a crash, went through.
   */
  readonly everyPointOf?: readonly CrashKind[];
  /** The task's maxFailureRate (the Report case's 0 makes its refused record fail the run). */
  readonly maxFailureRate?: number;
  /**
   * The task's first run (without a crash) ended with every insert `sent`: Salesforce created the
   * first `created` records and refused the others (a row lock), and the run never recorded it (the
   * Collections call's answer lost; its Bulk jobs never collected, and `forgotten`: their results
   * gone with the jobs Salesforce has since deleted); reported failed, and sent longer ago than a
   * call can run ({@link endedRun}). The sweep crashes in the next run, whose plan resolves those
   * inserts: it looks their keys up (a call's, a forgotten job's), or collects the jobs.
   */
  readonly endedFirst?: { readonly created: number; readonly forgotten?: boolean };
  /**
   * An update or upsert through Bulk whose first run (without a crash) ended with its two jobs
   * left: the first closed, run to its end by Salesforce and never collected; the second left
   * `Open` in Salesforce, recorded `Uploaded` (its CSV uploaded, its close never sent) or `Open`
   * (created, never uploaded). Reported failed. The source then changes every record but
   * {@link UNCHANGED_AFTER_ENDED_JOBS} of the first job, the locked one never of those, and the
   * sweep crashes in the next run, whose plan collects the first job (its successes to
   * sync_state) and aborts the second ({@link endedOpenRun}).
   */
  readonly endedOpen?: { readonly recorded: 'Uploaded' | 'Open' };
}

/**
 * The two kinds of a statement that fails, which a small write-back case samples in turn
 * (twenty-third session, to keep `npm test` inside its time): `pg-fails` at every
 * 2 × {@link DEFAULT_STRIDE}th statement from the case's offset, `pg-fails-run-ends` at those
 * {@link DEFAULT_STRIDE} after them, so that between the six small cases six statements of every
 * eight fail in one of the two ways (each way at every sixth before the twenty-third session; both
 * at every point with `CRASH_SWEEP_FULL=1`).
 */
const ALTERNATING_KINDS: Partial<Record<CrashKind, number>> = { 'pg-fails': 0, 'pg-fails-run-ends': 1 };

/** Whether a case's first run ends before the sweep starts (`endedFirst`, `endedOpen`). */
function isEnded(c: Case): boolean {
  return c.endedFirst !== undefined || c.endedOpen !== undefined;
}

/** Whether a case is a small write-back one sampled by default (not large, not ended, not Prepare's or Report's). */
function isSmallWriteback(c: Case): boolean {
  return !FULL && !c.everyPointOf && !isEnded(c) && c.phase === 'writeback';
}

function alternates(c: Case, k: CrashKind): boolean {
  return isSmallWriteback(c) && ALTERNATING_KINDS[k] !== undefined;
}

function halved(c: Case, k: CrashKind): boolean {
  return isSmallWriteback(c) && SMALL_CASE_HALVED_KINDS.has(k);
}

/** The points of kind `k` a case crashes at: 1…n, or every stride-th from its offset. */
function strideOf(c: Case, k: CrashKind): number {
  if (FULL || c.everyPointOf) return 1;
  const ended = isEnded(c);
  if (ended && ENDED_RUN_HALVED_KINDS.has(k)) return ENDED_RUN_HALF_STRIDE;
  if (halved(c, k)) return 2;
  if (!SAMPLED_KINDS.has(k)) return 1;
  if (alternates(c, k)) return 2 * DEFAULT_STRIDE;
  return ended ? ENDED_RUN_STRIDE : DEFAULT_STRIDE;
}

/**
 * The first point of kind `k` a case with offset `offset` (its index) crashes at (then every
 * stride-th). The small cases' halved kinds shift by half the index: the collections cases (0, 2,
 * 4) start at points 1, 2, 1, the Bulk ones (1, 3, 5) at 2, 1, 2.
 */
function firstPointOf(c: Case, k: CrashKind, offset: number): number {
  const shift = alternates(c, k)
    ? (ALTERNATING_KINDS[k] as number) * DEFAULT_STRIDE
    : halved(c, k)
      ? Math.floor(offset / 2)
      : 0;
  return 1 + ((offset + shift) % strideOf(c, k));
}

/**
 * The kinds of crash a case goes through. A run whose Prepare or Report fails for good is not
 * followed by another here (a Report that fails leaves its run for a later report to close): those
 * two go through the retries of a step only.
 */
function kindsOf(c: Case): readonly CrashKind[] {
  if (c.everyPointOf && !FULL) return c.everyPointOf;
  return c.phase === 'writeback' ? CRASH_KINDS : CRASH_KINDS.filter((k) => k !== 'pg-fails-run-ends');
}

/** What is new in the large cases: the Composite calls and their answers, and the hand-on. */
const LARGE_CASE_KINDS: readonly CrashKind[] = ['sf-answer-lost', 'step-output-lost'];

const small = (mode: Mode, api: Api): Case => ({
  name: `${mode} through ${api}`,
  mode,
  api,
  records: RECORDS[api],
  locked: 1,
  handOn: HAND_ON,
  phase: 'writeback',
});

/**
 * The records of an `endedOpen` case's first job whose source values do not change after its run
 * ended (the next plan finds them unchanged once it has collected that job); the others' do. Seven
 * records to send, their names longer: two Bulk jobs again, whichever records each job of the
 * ended run carried (that moves with the length of the scenario's number, and for update with the
 * order of the Ids).
 */
const UNCHANGED_AFTER_ENDED_JOBS = 2;

const CASES: readonly Case[] = [
  small('insert', 'collections'),
  small('insert', 'bulk'),
  small('upsert', 'collections'),
  small('upsert', 'bulk'),
  small('update', 'collections'),
  small('update', 'bulk'),
  // (Before the large cases: their look-ups query the emulator's store, which those fill.)
  // A run that ended with its inserts sent, some created and some not: the next run's plan looks
  // them up by external ID, records those created in that run (ledger, sync_state, its figures
  // recounted) and releases the others (NOT_INSERTED), which it inserts; the crash is in that run.
  // The record locked once is one of those released (through Bulk, six of nine: two Bulk jobs
  // again, whatever the length of the scenario's number in the keys; five would be one or two).
  {
    ...small('insert', 'collections'),
    name: "insert through collections, resolving an ended run's inserts sent by a call",
    locked: 4,
    endedFirst: { created: 3 },
  },
  {
    ...small('insert', 'bulk'),
    name: "insert through bulk, resolving an ended run's inserts sent in Bulk jobs Salesforce forgot",
    locked: 6,
    endedFirst: { created: 3, forgotten: true },
  },
  // The same, its Bulk jobs still known to Salesforce: the next plan collects them into the ended
  // run (the records refused with a row lock fail there: UNABLE_TO_LOCK_ROW) and inserts those.
  {
    ...small('insert', 'bulk'),
    name: "insert through bulk, resolving an ended run's inserts sent in Bulk jobs it never collected",
    locked: 6,
    endedFirst: { created: 3, forgotten: false },
  },
  // A run that ended with its Bulk jobs left, one finished and never collected, one Open in
  // Salesforce; the source then changes for records of both. The next plan collects the first into
  // the ended run and aborts the second (upsert: collected there too, BULK_JOB_ABORTED), and the
  // newest values reach Salesforce (an old job's values written after them would stay). The second
  // job was uploaded and never closed (upsert: recorded Uploaded, collected into the ended run once
  // aborted, BULK_JOB_ABORTED) or created and never uploaded (update: recorded Open, none of its
  // records in the ledger). The record locked once is the last the plan orders (Scenario.locked:
  // `locked` here is the rows' last, which it is for upsert).
  {
    ...small('upsert', 'bulk'),
    name: 'upsert through bulk, after a run that ended with a job uploaded and never closed and one never collected',
    locked: 8,
    endedOpen: { recorded: 'Uploaded' },
  },
  {
    ...small('update', 'bulk'),
    name: 'update through bulk, after a run that ended with a job never uploaded and one never collected',
    locked: 8,
    endedOpen: { recorded: 'Open' },
  },
  // Prepare's and Report's own crash points, before the large cases: Prepare's forecast counts the
  // org's records (COUNT()), which the large cases' scenarios leave by the hundred thousand.
  {
    name: 'Prepare of an upsert run',
    mode: 'upsert',
    api: 'collections',
    records: RECORDS.collections,
    locked: 1,
    handOn: false,
    phase: 'prepare',
  },
  {
    name: 'Report of an upsert run failed by its refused record',
    mode: 'upsert',
    api: 'collections',
    records: RECORDS.collections,
    locked: 1,
    refused: 3,
    handOn: false,
    phase: 'report',
    maxFailureRate: 0,
  },
  // One Composite call of three Collections subrequests (200, 200, 50): the locked record and the
  // refused one are in the third, so that their results must be found past the other two.
  ...(['insert', 'upsert', 'update'] as const).map((mode): Case => ({
    name: `${mode} of 450 records in one Composite call`,
    mode,
    api: 'collections',
    records: 450,
    locked: 410,
    refused: 430,
    handOn: false,
    phase: 'writeback',
    everyPointOf: LARGE_CASE_KINDS,
  })),
  // Two Composite calls (1,000 records, and 250 in subrequests of 200 and 50; two plan pages), one
  // an invocation: the push hands on after each. The refused record is in the first call's fourth
  // subrequest, the locked one in the second call's second. (The upsert's lost answers are an upsert sent again: `npm test` crashes it at
  // every hand-on only, to keep its time.)
  ...(['insert', 'upsert'] as const).map((mode): Case => ({
    name: `${mode} of 1,250 records in two Composite calls, handed on between them`,
    mode,
    api: 'collections',
    records: 1250,
    locked: 1220,
    refused: 620,
    handOn: true,
    phase: 'writeback',
    everyPointOf: mode === 'insert' ? LARGE_CASE_KINDS : ['step-output-lost'],
  })),
];

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
  /** The value of the unique field, when the case maps it (the refused record's is taken). */
  unique?: string;
  /** Whether Salesforce held the record before the scenario (update, half of upsert's). */
  existed: boolean;
}

interface Scenario {
  readonly case: Case;
  readonly mode: Mode;
  readonly api: Api;
  readonly task: string;
  readonly table: string;
  readonly prefix: string;
  readonly rows: readonly SourceRow[];
  /** The key of the record Salesforce refuses for good, if any. */
  readonly refusedKey?: string;
  readonly runIds: string[];
  /** Notifications the runs' reports sent, and whether each went out before the crash. */
  readonly notifications: (Notification & { readonly beforeTheCrash: boolean })[];
  /** The run that ended with its inserts sent, before the crash (cases with `endedFirst`), or its jobs left (`endedOpen`). */
  endedRunId?: string;
  /**
   * The index of the record locked once, when not the case's: an `endedOpen` case's is the last in
   * the plan's order (for update, the Ids', which is not the rows'), so that the next run's last
   * Bulk job always carries it alone, and every scenario goes through the same points.
   */
  locked?: number;
  /** The Bulk jobs the ended run of an `endedOpen` case left: the one it closed, and the one left Open. */
  endedJobs?: { readonly closed: string; readonly open: string; readonly openKeys: readonly string[] };
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
  /** The run that ended with its inserts sent, before the crash (cases with `endedFirst`). */
  readonly endedRunId?: string;
}

let scenarios = 0;

/** The points of a kind that a run went through. */
function pointsOf(kind: CrashKind, counts: PointCounts): number {
  switch (kind) {
    case 'pg-dies-before':
      return counts.statements;
    case 'pg-fails':
    case 'pg-fails-run-ends':
      return counts.outside;
    case 'pg-dies-after-commit':
      return counts.commits;
    case 'sf-fails-before':
      return counts.calls;
    case 'sf-answer-lost':
      return counts.writeCalls;
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
    await analyzeSyncState(); // see newScenario
    for (let i = 0; i < LANES; i += 1) {
      pools.push(createPool({ url: env.db.url }, { ssl: { mode: 'disable' }, max: 2 }));
    }
  });
  afterAll(async () => {
    await Promise.all(pools.map((pool) => pool.end()));
    await env?.stop();
  });

  /**
   * ANALYZEs sync_state, which resets the count of its rows changed since (what makes the plan's own
   * ANALYZE due), from a sample of 3,000 rows rather than 30,000: the large cases leave it hundreds
   * of thousands of rows long, and at the default sample these ANALYZEs were a twentieth of the
   * sweep's PostgreSQL time.
   */
  async function analyzeSyncState(): Promise<void> {
    const client = await env.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SET LOCAL default_statistics_target = 10');
      await client.query('ANALYZE roundtrip.sync_state');
      await client.query('COMMIT');
    } finally {
      client.release();
    }
  }

  /** A fresh task, source table and set of keys, with the records an update or upsert finds. */
  async function newScenario(c: Case): Promise<Scenario> {
    const { mode } = c;
    scenarios += 1;
    const n = scenarios;
    // The plan ANALYZEs sync_state (shared by every scenario's task) when 1,000 changes made its
    // statistics stale: one statement more, in whichever scenario meets it. Kept fresh here, every
    // run of a mode and API goes through the same points, and the sweep can count them exactly.
    if (n % 20 === 0 || c.records > 100) await analyzeSyncState();
    const prefix = `sw${n}-`;
    const rows: SourceRow[] = Array.from({ length: c.records }, (_, i) => ({
      key: `${prefix}${i}`,
      lastName: `Sweep ${n}.${i}`,
      company: `Co ${i}`,
      score: (10 * i + 1) % 1000, // LeadScore__c is a Number(3, 0)
      existed: mode === 'update' || (mode === 'upsert' && i % 2 === 0),
      ...(c.refused === undefined ? {} : { unique: `${prefix}u${i}` }),
    }));
    const refused = c.refused === undefined ? undefined : rows[c.refused];
    if (refused) {
      // Another record holds the refused record's unique value: Salesforce refuses it every time.
      refused.unique = `${prefix}taken`;
      env.sf.store.seed('Lead', [
        {
          LastName: 'Holder',
          Company: 'Holder Co',
          [KEY_FIELD]: `holder-${n}`,
          [UNIQUE_FIELD]: refused.unique,
        },
      ]);
    }
    // Update writes records that exist; upsert finds half of its keys and creates the others.
    const existing = rows.filter((r) => r.existed);
    const ids = env.sf.store.seed(
      'Lead',
      existing.map((r) => ({ LastName: 'Old', Company: 'Old Co', [KEY_FIELD]: r.key })),
    );
    existing.forEach((r, i) => {
      r.id = ids[i];
    });
    const table = `sweep_src_${n}`;
    const unique = rows.map((r) => r.unique ?? null);
    if (mode === 'update') {
      await env.pool.query(`CREATE TABLE ${table} ("Id" text, last_name text, score integer, uniq text)`);
      await env.pool.query(
        `INSERT INTO ${table} SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[])`,
        [rows.map((r) => r.id), rows.map((r) => r.lastName), rows.map((r) => r.score), unique],
      );
    } else {
      await env.pool.query(
        `CREATE TABLE ${table} (ext text, last_name text, company text, score integer, uniq text)`,
      );
      await env.pool.query(
        `INSERT INTO ${table} SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[])`,
        [
          rows.map((r) => r.key),
          rows.map((r) => r.lastName),
          rows.map((r) => r.company),
          rows.map((r) => r.score),
          unique,
        ],
      );
    }
    return {
      case: c,
      mode,
      api: c.api,
      task: `sweep-${n}`,
      table,
      prefix,
      rows,
      ...(refused ? { refusedKey: refused.key } : {}),
      runIds: [],
      notifications: [],
    };
  }

  function taskConfig(s: Scenario): WritebackTaskInput {
    const common = {
      name: s.task,
      to: 'salesforce' as const,
      object: 'Lead',
      from: s.table,
      bulkThreshold: s.api === 'bulk' ? BULK_THRESHOLD : 2000,
      // A run that goes on from a failed one may send little more than the refused record: a
      // failure rate of up to 100 % (the Report case sets its own, to fail its run).
      ...(s.case.refused === undefined ? {} : { maxFailureRate: s.case.maxFailureRate ?? 1 }),
    };
    const unique: Record<string, string> = s.case.refused === undefined ? {} : { [UNIQUE_FIELD]: 'uniq' };
    return s.mode === 'update'
      ? { ...common, mode: 'update', fields: { LastName: 'last_name', LeadScore__c: 'score', ...unique } }
      : {
          ...common,
          mode: s.mode,
          key: KEY_FIELD,
          keyColumn: 'ext',
          fields: { LastName: 'last_name', Company: 'company', LeadScore__c: 'score', ...unique },
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
        if (injector.failedForGoodInThisInvocation) throw new RunFailed(error.message, error.name);
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

  /** What a run left for the checks. */
  interface RunOutcome {
    readonly runId: string;
    /** The run's status after its report; `unreported` when the Report itself failed for good. */
    readonly status: string;
    readonly plan?: WritebackPlanOutput;
    /** Prepare's answer (Prepare cases), and the Salesforce calls its attempts made. */
    readonly prepared?: {
      readonly startedAt: string;
      readonly callsMade: number;
      /** The calls of attempts that could record them (their Lambda lived, PostgreSQL answered). */
      readonly callsRecordable: number;
    };
    /** The task's API calls in the run's summary before its report (Report cases). */
    readonly apiCallsBeforeReport?: number;
    readonly report?: ReportOutput;
  }

  /**
   * One run of the task: (Prepare,) plan, push, collect, report, as the state machine chains them.
   * The injector counts and crashes in the steps of `arm` only (none: a run without a crash).
   */
  async function run(
    s: Scenario,
    deps: CoreDeps,
    injector: CrashInjector,
    arm: Phase | undefined,
    sfCalls: () => number,
  ): Promise<RunOutcome> {
    const armFor = (phase: Phase): void => {
      injector.armed = arm === phase;
      injector.settle();
    };
    let runId = `sweep-${s.task}-${s.runIds.length + 1}`;
    const options: PushOptions = {
      maxJobBytes: MAX_JOB_BYTES,
      ...(s.case.handOn ? { timeLeft: () => 1000 } : {}),
    };
    let plan: WritebackPlanOutput | undefined;
    let prepared: RunOutcome['prepared'];
    try {
      if (s.case.phase === 'prepare') {
        s.runIds.push(runId);
        armFor('prepare');
        const before = sfCalls();
        let callsRecordable = 0;
        const out = await step(s, injector, 'prepare', async () => {
          const attemptBefore = sfCalls();
          const firedBefore = injector.fired;
          try {
            return await prepare({ runId, input: {} }, deps);
          } finally {
            // An attempt records its calls unless its Lambda died, or PostgreSQL failed it (the
            // failed statement may be the one that records them).
            const failedByPg = !firedBefore && injector.firedKind?.startsWith('pg-') === true;
            if (!injector.diedInThisInvocation && !failedByPg) callsRecordable += sfCalls() - attemptBefore;
          }
        });
        prepared = { startedAt: out.startedAt, callsMade: sfCalls() - before, callsRecordable };
      } else {
        runId = await env.newRun();
        s.runIds.push(runId);
      }
      armFor('writeback');
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
    } catch (err) {
      if (!(err instanceof RunFailed)) throw err;
      armFor('report');
      const error = { Error: err.errorName, Cause: err.message };
      await step(s, injector, 'report', () => reportRun(deps, { runId, error })).catch((e: unknown) => {
        if (!(e instanceof RunFailed)) throw e;
      });
      injector.armed = false;
      injector.settle();
      return { runId, status: 'failed', ...(plan ? { plan } : {}), ...(prepared ? { prepared } : {}) };
    }
    const apiCallsBeforeReport = await taskApiCalls(runId, s.task);
    armFor('report');
    try {
      // Report is retried as every step is (on a transient error; after a death, by a redrive).
      const report = await step(s, injector, 'report', () => reportRun(deps, { runId }));
      return {
        runId,
        status: report.status,
        report,
        apiCallsBeforeReport,
        ...(plan ? { plan } : {}),
        ...(prepared ? { prepared } : {}),
      };
    } catch (err) {
      if (!(err instanceof RunFailed)) throw err;
      return { runId, status: 'unreported', ...(plan ? { plan } : {}) };
    } finally {
      injector.armed = false;
      injector.settle();
    }
  }

  /** The task's API calls in the run's summary (`summary.writeback.<task>.apiCalls`). */
  async function taskApiCalls(runId: string, task: string): Promise<number | undefined> {
    const { rows } = await env.pool.query<{ n: string | null }>(
      `SELECT summary->'writeback'->$2->>'apiCalls' AS n FROM roundtrip.runs WHERE run_id = $1`,
      [runId, task],
    );
    const n = rows[0]?.n;
    return n === null || n === undefined ? undefined : Number(n);
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
      value_hash: string;
    }>(`SELECT key, salesforce_id, synced_values, value_hash FROM roundtrip.sync_state WHERE task = $1`, [
      s.task,
    ]);
    const state = new Map(stateRows.map((r) => [r.key, r]));
    const same = (a: unknown, b: unknown): boolean =>
      typeof a === 'number' || typeof b === 'number' ? Number(a) === Number(b) : a === b;
    const stateKeyOf = (row: SourceRow): string => (s.mode === 'update' ? (row.id as string) : row.key);
    for (const row of s.rows) {
      const holders = live.filter((r) => r[KEY_FIELD] === row.key);
      if (row.key === s.refusedKey) {
        // Refused every time: Salesforce holds what it held before, and nothing says it was synced.
        if (holders.length !== (row.existed ? 1 : 0))
          problems.push(`key ${row.key} (refused): ${holders.length} records in Salesforce`);
        for (const h of holders) {
          if (h.LastName !== 'Old' || h[UNIQUE_FIELD] != null)
            problems.push(
              `key ${row.key} (refused): Salesforce holds LastName ${String(h.LastName)}, ${UNIQUE_FIELD} ${String(h[UNIQUE_FIELD])}`,
            );
        }
        // (A row whose synced values are unknown claims nothing: a run that ended before it heard
        // Salesforce's answer left the record sent, and a later plan marked it so, reconcile.ts.)
        if (state.has(stateKeyOf(row)) && state.get(stateKeyOf(row))?.value_hash !== UNKNOWN_VALUE_HASH)
          problems.push(`key ${row.key} (refused): sync_state holds it`);
        continue;
      }
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
      if (row.unique !== undefined) want[UNIQUE_FIELD] = row.unique;
      for (const [field, value] of Object.entries(want)) {
        if (!same(record[field], value))
          problems.push(
            `key ${row.key}: Salesforce holds ${field} = ${String(record[field])}, not ${String(value)}`,
          );
      }
      const synced = state.get(stateKeyOf(row));
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
      failed: string | null;
      succeeded: string;
      ledger_failed: string;
    }>(
      `SELECT r.run_id, r.summary->'writeback'->$1->>'written' AS written, r.summary->'writeback'->$1->>'failed' AS failed,
              (SELECT count(*) FROM roundtrip.writeback_plans l
                WHERE l.run_id = r.run_id AND l.task = $1 AND l.status = 'succeeded') AS succeeded,
              (SELECT count(*) FROM roundtrip.writeback_plans l
                WHERE l.run_id = r.run_id AND l.task = $1 AND l.status = 'failed') AS ledger_failed
         FROM roundtrip.runs r WHERE r.run_id = ANY($2::text[])`,
      [s.task, s.runIds],
    );
    for (const r of runs) {
      if (r.written !== null && Number(r.written) !== Number(r.succeeded))
        problems.push(`run ${r.run_id} reports ${r.written} written, its ledger ${r.succeeded}`);
      if (r.failed !== null && Number(r.failed) !== Number(r.ledger_failed))
        problems.push(`run ${r.run_id} reports ${r.failed} failed, its ledger ${r.ledger_failed}`);
    }
    if (s.endedRunId !== undefined) {
      // The run that ended with its inserts sent: each resolved (recorded or released), its figures
      // saying so (written and failed are checked against its ledger above).
      const { rows: ended } = await env.pool.query<{ unknown: string | null; sent: number }>(
        `SELECT r.summary->'writeback'->$2->>'outcomeUnknown' AS unknown,
                (SELECT count(*)::int FROM roundtrip.writeback_plans l
                  WHERE l.run_id = r.run_id AND l.task = $2 AND l.status = 'sent') AS sent
           FROM roundtrip.runs r WHERE r.run_id = $1`,
        [s.endedRunId, s.task],
      );
      const e = ended[0];
      if (e?.sent !== 0) problems.push(`the ended run ${s.endedRunId} still has ${e?.sent} inserts sent`);
      if (Number(e?.unknown) !== 0)
        problems.push(`the ended run ${s.endedRunId} reports ${String(e?.unknown)} outcomes unknown`);
    }
    if (s.endedRunId !== undefined && s.endedJobs !== undefined)
      problems.push(...(await checkEndedJobs(s, s.endedRunId, s.endedJobs)));
    problems.push(...(await checkErrors(s)));
    return problems;
  }

  /**
   * What became of the Bulk jobs an `endedOpen` case's ended run left: the one left `Open` aborted
   * in Salesforce, having processed nothing (closed late, it would write older values), and
   * recorded so; the finished one collected into the ended run, its records written there; the
   * aborted one's records (recorded `Uploaded`: in the ledger) failed there with
   * BULK_JOB_ABORTED; and its figures counted again by a later run.
   */
  async function checkEndedJobs(
    s: Scenario,
    endedRunId: string,
    jobs: NonNullable<Scenario['endedJobs']>,
  ): Promise<string[]> {
    const problems: string[] = [];
    const recorded = s.case.endedOpen?.recorded;
    const open = await getIngestJob(env.connector, jobs.open);
    if (open.state !== 'Aborted' || open.numberRecordsProcessed !== 0)
      problems.push(
        `the job left ${String(recorded)} is ${open.state} in Salesforce, ${open.numberRecordsProcessed} records processed`,
      );
    const { rows: recordedJobs } = await env.pool.query<{
      job_id: string;
      state: string;
      collected: boolean;
    }>(
      `SELECT job_id, state, collected_at IS NOT NULL AS collected FROM roundtrip.writeback_jobs WHERE run_id = $1 AND task = $2`,
      [endedRunId, s.task],
    );
    const want = [
      { job_id: jobs.closed, state: 'JobComplete', collected: true },
      { job_id: jobs.open, state: 'Aborted', collected: recorded === 'Uploaded' },
    ];
    const sorted = (xs: readonly { job_id: string }[]): string =>
      JSON.stringify([...xs].sort((a, b) => a.job_id.localeCompare(b.job_id)));
    if (sorted(recordedJobs) !== sorted(want))
      problems.push(`the ended run's jobs are recorded ${sorted(recordedJobs)}, not ${sorted(want)}`);
    const { rows: ledger } = await env.pool.query<{ key: string; status: string; codes: string[] }>(
      `SELECT l.key, l.status,
              ARRAY(SELECT e.code FROM roundtrip.writeback_errors e
                     WHERE e.run_id = l.run_id AND e.task = l.task AND e.key = l.key ORDER BY e.code) AS codes
         FROM roundtrip.writeback_plans l WHERE l.run_id = $1 AND l.task = $2`,
      [endedRunId, s.task],
    );
    const openKeys = new Set(jobs.openKeys);
    const byKey = new Map(ledger.map((l) => [l.key, l]));
    for (const row of s.rows) {
      const key = s.mode === 'update' ? (row.id as string) : row.key;
      const l = byKey.get(key);
      const was = l === undefined ? 'not in its ledger' : `${l.status} ${l.codes.join(', ')}`.trim();
      // The job never uploaded sent nothing: none of its records is in the ledger.
      const want = !openKeys.has(key)
        ? 'succeeded'
        : recorded === 'Uploaded'
          ? 'failed BULK_JOB_ABORTED'
          : 'not in its ledger';
      if (was !== want)
        problems.push(
          `the ended run's key ${key} (${openKeys.has(key) ? `in the job left ${String(recorded)}` : 'in the job it closed'}) is ${was}, not ${want}`,
        );
    }
    const { rows: figures } = await env.pool.query<{ by: string | null }>(
      `SELECT summary->'writeback'->$2->>'outcomesResolvedBy' AS by FROM roundtrip.runs WHERE run_id = $1`,
      [endedRunId, s.task],
    );
    const by = figures[0]?.by ?? null;
    if (by === null || by === endedRunId || !s.runIds.includes(by))
      problems.push(`the ended run's figures say its outcomes were resolved by ${String(by)}`);
    return problems;
  }

  /**
   * Errors recorded as Salesforce gave them: every run that failed the refused record holds its
   * error with {@link REFUSED_CODE} (but a run that ended before it heard Salesforce's answer:
   * its insert is released, NOT_INSERTED; an update or upsert is OUTCOME_UNKNOWN), and some run does; no other record has that code, and no record but the one
   * locked once has UNABLE_TO_LOCK_ROW (which fails it in a run that ended before its retry, when
   * a later plan collects that run's Bulk job: docs/writeback.md, "Inserts are idempotent").
   */
  async function checkErrors(s: Scenario): Promise<string[]> {
    const problems: string[] = [];
    const { rows } = await env.pool.query<{ run_id: string; key: string; status: string; codes: string[] }>(
      `SELECT l.run_id, l.key, l.status,
              ARRAY(SELECT e.code FROM roundtrip.writeback_errors e
                     WHERE e.run_id = l.run_id AND e.task = l.task AND e.key = l.key ORDER BY e.code) AS codes
         FROM roundtrip.writeback_plans l
        WHERE l.task = $1 AND (l.status = 'failed' OR EXISTS (
               SELECT 1 FROM roundtrip.writeback_errors e WHERE e.run_id = l.run_id AND e.task = l.task AND e.key = l.key))`,
      [s.task],
    );
    const ledgerKey = (row: SourceRow | undefined): string | undefined =>
      s.mode === 'update' ? row?.id : row?.key;
    const refusedKey = ledgerKey(s.rows.find((r) => r.key === s.refusedKey));
    const lockedKey = ledgerKey(s.rows[s.locked ?? s.case.locked]);
    // The keys an ended run's Bulk jobs were refused with a row lock, when a plan collects them.
    const lockedInEndedJobs = new Set(
      s.case.endedFirst && s.case.endedFirst.forgotten === false
        ? s.rows.slice(s.case.endedFirst.created).map((r) => r.key)
        : [],
    );
    for (const r of rows) {
      if (r.key === refusedKey) {
        // A run that ended before it recorded Salesforce's answer never learned the code: a later
        // plan that finds its insert not made releases the key (NOT_INSERTED, reconcile.ts), or
        // marks an update or upsert's outcome unknown and sends it again (OUTCOME_UNKNOWN).
        const released =
          (s.mode === 'insert' && r.codes.includes('NOT_INSERTED')) ||
          (s.mode !== 'insert' && r.codes.includes('OUTCOME_UNKNOWN'));
        if (r.status === 'failed' && !r.codes.includes(REFUSED_CODE) && !released)
          problems.push(
            `run ${r.run_id}: the refused record failed with ${r.codes.join(', ') || 'no error'}`,
          );
      } else if (
        r.codes.includes(REFUSED_CODE) ||
        (r.key !== lockedKey &&
          !(r.run_id === s.endedRunId && lockedInEndedJobs.has(r.key)) &&
          r.codes.includes('UNABLE_TO_LOCK_ROW'))
      ) {
        problems.push(`run ${r.run_id}: key ${r.key} has errors ${r.codes.join(', ')} (${r.status})`);
      }
    }
    if (
      refusedKey !== undefined &&
      !rows.some((r) => r.key === refusedKey && r.status === 'failed' && r.codes.includes(REFUSED_CODE))
    )
      problems.push(`the refused record ${refusedKey} failed with ${REFUSED_CODE} in no run`);
    return problems;
  }

  /**
   * The first run of an `endedFirst` or `endedOpen` case, on the scenario's lane, planned: its
   * deps, and its id, recorded as the scenario's ended run.
   */
  async function plannedEndedRun(s: Scenario, lane: Lane): Promise<{ deps: CoreDeps; runId: string }> {
    const deps: CoreDeps = {
      ...env.deps({ writeback: [taskConfig(s)] }),
      pg: lane.pool,
      salesforce: lane.connector,
    };
    const runId = await env.newRun();
    s.runIds.push(runId);
    s.endedRunId = runId;
    await planWriteback(deps, { runId, task: s.task });
    return { deps, runId };
  }

  /** Waits until Salesforce has run the Bulk job to its end. */
  async function untilJobFinished(lane: Lane, jobId: string): Promise<void> {
    while (!isFinalIngestState((await getIngestJob(lane.connector, jobId)).state)) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /**
   * The run of {@link Case.endedFirst}, without a crash, on the scenario's lane: planned, pushed
   * while the records after the first `created` are locked (refused UNABLE_TO_LOCK_ROW), and ended
   * before it recorded anything: through Collections, the call's answer is lost (the push fails of
   * it); through Bulk, the jobs run to their end and are never collected, and, `forgotten`, by the
   * next run Salesforce has deleted them (their Ids answer 404 NOT_FOUND, as ended-runs.test.ts
   * simulates).
   * Reported failed (its inserts outcome unknown), and sent longer ago than INSERT_SETTLE_MS.
   */
  async function endedRun(
    s: Scenario,
    { created, forgotten }: NonNullable<Case['endedFirst']>,
    lane: Lane,
  ): Promise<void> {
    const { deps, runId } = await plannedEndedRun(s, lane);
    const refused = s.rows.slice(created).map((r) => r.key);
    // Other lanes' scenarios lock keys of their own in the same emulator: add and take away ours only.
    const lockKeys = (): string[] => [...(env.sf.faults.get().lockRowKeys ?? [])];
    env.sf.faults.set({ lockRowKeys: [...lockKeys(), ...refused] });
    try {
      if (s.api === 'collections') {
        const answerLost = crashingConnector(lane.connector, (_operation, method) => method !== 'GET');
        const pushed = await pushWriteback(
          { ...deps, salesforce: answerLost },
          { runId, task: s.task },
          { maxJobBytes: MAX_JOB_BYTES },
        ).then(
          (out) => out,
          (err: unknown) => err,
        );
        if (!(pushed instanceof Error) || !/simulated crash/.test(pushed.message))
          throw new Error(`the ended run's push was to lose its call's answer: ${String(pushed)}`);
      } else {
        const pushed = await pushWriteback(deps, { runId, task: s.task }, { maxJobBytes: MAX_JOB_BYTES });
        if (pushed.status !== 'bulk-pending')
          throw new Error(`the ended run's push was to leave Bulk jobs: ${pushed.status}`);
        const { rows: jobs } = await env.pool.query<{ job_id: string }>(
          `SELECT job_id FROM roundtrip.writeback_jobs WHERE run_id = $1 ORDER BY job_id`,
          [runId],
        );
        for (const [i, { job_id: jobId }] of jobs.entries()) {
          await untilJobFinished(lane, jobId);
          if (!forgotten) continue;
          // Deleted by Salesforce since: an Id it never gave out (not of the emulator's instance,
          // 5e0) answers as one it deleted does. Digits only: its checksum suffix is AAA.
          const gone = `750999${s.task.replace(/\D/g, '').padStart(8, '0')}${i}AAA`;
          await env.pool.query(
            `UPDATE roundtrip.writeback_jobs SET job_id = $3 WHERE run_id = $1 AND job_id = $2`,
            [runId, jobId, gone],
          );
          await env.pool.query(
            `UPDATE roundtrip.writeback_plans SET job_id = $3 WHERE run_id = $1 AND job_id = $2`,
            [runId, jobId, gone],
          );
        }
      }
    } finally {
      env.sf.faults.set({ lockRowKeys: lockKeys().filter((k) => !refused.includes(k)) });
    }
    await reportRun(deps, { runId, error: { Error: 'States.Timeout', Cause: 'Task timed out' } });
    const { rows } = await env.pool.query<{ status: string; n: number }>(
      `SELECT status, count(*)::int AS n FROM roundtrip.writeback_plans WHERE run_id = $1 GROUP BY status`,
      [runId],
    );
    if (rows.length !== 1 || rows[0]?.status !== 'sent' || rows[0].n !== s.rows.length)
      throw new Error(
        `the ended run was to leave its ${s.rows.length} inserts sent: ${JSON.stringify(rows)}`,
      );
    const held = [...env.sf.store.all('Lead')].filter((r) => String(r[KEY_FIELD] ?? '').startsWith(s.prefix));
    if (held.length !== created)
      throw new Error(`the ended run was to create ${created} records; Salesforce holds ${held.length}`);
    await ageLedger(s);
  }

  /**
   * The run of {@link Case.endedOpen}, without a crash, on the scenario's lane: planned and pushed
   * in two Bulk jobs, the first closed, the second's close (`Uploaded`) or upload (`Open`) never
   * reaching Salesforce, so that the push fails and the job stays `Open` there; the first run to
   * its end by Salesforce and never collected. Reported failed. Then the source changes every
   * record but the first {@link UNCHANGED_AFTER_ENDED_JOBS} of the first job (the scenario's rows
   * say the new values, which Salesforce must end with).
   */
  async function endedOpenRun(
    s: Scenario,
    { recorded }: NonNullable<Case['endedOpen']>,
    lane: Lane,
  ): Promise<void> {
    const { deps, runId } = await plannedEndedRun(s, lane);
    // The second close (a PATCH of a job) or upload never reaches Salesforce.
    let sends = 0;
    const second = (): boolean => (sends += 1) === 2;
    const unreachable = (operation: string): Promise<never> =>
      Promise.reject(new TransientError(`${operation}: Salesforce is unreachable (simulated)`));
    const sf: SalesforceConnector = Object.create(
      lane.connector,
      recorded === 'Uploaded'
        ? {
            request: {
              value: (operation: string, method: 'GET' | 'POST' | 'PATCH', path: string, body?: unknown) =>
                method === 'PATCH' && path.startsWith('/jobs/ingest/') && second()
                  ? unreachable(operation)
                  : lane.connector.request(operation, method, path, body),
            },
          }
        : {
            putStream: {
              value: (operation: string, path: string, body: Readable, headers: Record<string, string>) =>
                second() ? unreachable(operation) : lane.connector.putStream(operation, path, body, headers),
            },
          },
    ) as SalesforceConnector;
    const pushed = await pushWriteback(
      { ...deps, salesforce: sf },
      { runId, task: s.task },
      { maxJobBytes: MAX_JOB_BYTES },
    ).then(
      (out) => out,
      (err: unknown) => err,
    );
    if (!(pushed instanceof Error) || !/unreachable \(simulated\)/.test(pushed.message))
      throw new Error(`the ended run's push was to fail at its second job: ${String(pushed)}`);
    const { rows: jobs } = await env.pool.query<{
      job_id: string;
      state: string;
      first_seq: string;
      last_seq: string;
    }>(
      `SELECT job_id, state, first_seq, last_seq FROM roundtrip.writeback_jobs WHERE run_id = $1 AND task = $2 ORDER BY chunk`,
      [runId, s.task],
    );
    const [closed, open] = jobs;
    if (jobs.length !== 2 || closed?.state !== 'UploadComplete' || open?.state !== recorded)
      throw new Error(`the ended run was to leave a job closed and one ${recorded}: ${JSON.stringify(jobs)}`);
    await untilJobFinished(lane, closed.job_id);
    const openState = (await getIngestJob(lane.connector, open.job_id)).state;
    if (openState !== 'Open') throw new Error(`the job left ${recorded} is ${openState} in Salesforce`);
    await reportRun(deps, { runId, error: { Error: 'TransientError', Cause: 'retries spent' } });
    // Which records each job carried (by the plan's seqs: a job never uploaded has none in the ledger).
    const { rows: planned } = await env.pool.query<{ key: string; open: boolean }>(
      `SELECT key, seq BETWEEN $3 AND $4 AS open FROM roundtrip.writeback_plan_rows
        WHERE run_id = $1 AND task = $2 ORDER BY seq`,
      [runId, s.task, open.first_seq, open.last_seq],
    );
    const ledgerKey = (r: SourceRow): string => (s.mode === 'update' ? (r.id as string) : r.key);
    // The record locked once: the last planned, in the job left Open (see Scenario.locked).
    const lastKey = planned[planned.length - 1]?.key;
    s.locked = s.rows.findIndex((r) => ledgerKey(r) === lastKey);
    const lockedKey = ledgerKey(s.rows[s.locked] as SourceRow);
    const openKeys = new Set(planned.filter((p) => p.open).map((p) => p.key));
    const unchanged = new Set(
      planned
        .filter((p) => !p.open && p.key !== lockedKey)
        .slice(0, UNCHANGED_AFTER_ENDED_JOBS)
        .map((p) => p.key),
    );
    const changedRows = s.rows.filter((r) => !unchanged.has(ledgerKey(r)));
    if (openKeys.size === 0 || unchanged.size + openKeys.size >= s.rows.length)
      throw new Error(
        `the ended run's jobs were to carry records of both kinds: the one left ${recorded} carries ${[...openKeys].join(', ')}`,
      );
    s.endedJobs = { closed: closed.job_id, open: open.job_id, openKeys: [...openKeys] };
    // The newer values: the job left Open must never write its older ones over them.
    for (const r of changedRows) {
      r.lastName = `${r.lastName} (newer)`;
      r.score = (r.score + 500) % 1000;
    }
    await env.pool.query(
      `UPDATE ${s.table} t SET last_name = u.last_name, score = u.score
         FROM unnest($1::text[], $2::text[], $3::int[]) AS u(k, last_name, score)
        WHERE t.${s.mode === 'update' ? '"Id"' : 'ext'} = u.k`,
      [changedRows.map(ledgerKey), changedRows.map((r) => r.lastName), changedRows.map((r) => r.score)],
    );
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
    const row = s.rows[s.locked ?? s.case.locked] as SourceRow;
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
    c: Case,
    crash: { kind: CrashKind; at: number } | undefined,
    lane: Lane,
  ): Promise<ScenarioResult> {
    const s = await newScenario(c);
    if (c.endedFirst) await endedRun(s, c.endedFirst, lane);
    if (c.endedOpen) await endedOpenRun(s, c.endedOpen, lane);
    const injector = new CrashInjector(crash, env.sf);
    const locked = lockedOnce(s, lane.connector);
    const deps: CoreDeps = {
      ...env.deps({ writeback: [taskConfig(s)] }),
      pg: injector.pool(lane.pool),
      salesforce: injector.connector(locked.connector),
      notifier: {
        publish: async (message: Notification) => {
          s.notifications.push({ ...message, beforeTheCrash: !injector.fired });
        },
      },
    };
    const sfCalls = (): number => lane.connector.apiCalls;
    const problems: string[] = [];
    // The Report case's run fails, as its maxFailureRate says: one run, whose report is checked.
    const ending = c.maxFailureRate === 0 ? 'failed' : 'succeeded';
    let runs = 0;
    let outcome: RunOutcome | undefined;
    try {
      // A run that held keys back (an earlier run's send of them has no outcome yet) succeeds
      // without writing them: the next run does, as the schedule's would.
      const heldBack = (o: RunOutcome | undefined): number => o?.plan?.heldBack ?? 0;
      while (
        runs < (ending === 'failed' ? 1 : MAX_RUNS) &&
        (outcome?.status !== ending || heldBack(outcome) > 0)
      ) {
        if (runs > 0) await ageLedger(s);
        outcome = await run(s, deps, injector, runs === 0 ? c.phase : undefined, sfCalls);
        if (runs === 0 && c.phase === 'prepare') problems.push(...(await checkPrepare(s, outcome)));
        if (runs === 0 && c.phase === 'report')
          problems.push(...(await checkReport(s, outcome, deps, injector)));
        runs += 1;
      }
    } finally {
      locked.unlock();
    }
    if (!locked.retried) problems.push(`the record locked once was never sent again`);
    if (outcome?.status !== ending) problems.push(`no run ended ${ending} in ${runs}`);
    problems.push(...(await check(s)));
    // Nothing changed: the next run plans nothing and sends no write (but the refused record,
    // which Salesforce refuses again).
    const refused = s.refusedKey === undefined ? 0 : 1;
    const writesBefore = injector.writes;
    const again = await run(s, deps, injector, undefined, sfCalls);
    const writes = injector.writes - writesBefore;
    if (again.status !== ending) problems.push(`the run with nothing changed ended ${again.status}`);
    if ((again.plan?.changed ?? 0) !== refused)
      problems.push(`the run with nothing changed planned ${again.plan?.changed}`);
    if (writes !== refused) problems.push(`the run with nothing changed made ${writes} write calls`);
    if (refused > 0) problems.push(...(await checkErrors(s)));
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
      ...(s.endedRunId === undefined ? {} : { endedRunId: s.endedRunId }),
    };
  }

  /**
   * Prepare retried loses and duplicates nothing: its run recorded once, with the start time its
   * answer gives; the task's name claimed for the pipeline; the Salesforce calls of its attempts
   * counted once each (all those of attempts that lived to record them, no more than were made).
   */
  async function checkPrepare(s: Scenario, outcome: RunOutcome): Promise<string[]> {
    const problems: string[] = [];
    const { rows } = await env.pool.query<{ started_at: Date; calls: string | null; owner: string | null }>(
      `SELECT r.started_at, r.summary->'prepare'->>'apiCalls' AS calls,
              (SELECT o.pipeline FROM roundtrip.task_owners o WHERE o.task = $2) AS owner
         FROM roundtrip.runs r WHERE r.run_id = $1`,
      [outcome.runId, s.task],
    );
    const run = rows[0];
    if (!run) return [`run ${outcome.runId} is not recorded`];
    if (outcome.status === 'failed') return [`the run failed: ${outcome.runId}`];
    const prepared = outcome.prepared;
    if (!prepared) return ['Prepare answered nothing'];
    if (run.started_at.toISOString() !== prepared.startedAt)
      problems.push(
        `Prepare answered startedAt ${prepared.startedAt}, the run holds ${run.started_at.toISOString()}`,
      );
    if (run.owner !== 'wb-test') problems.push(`task ${s.task} is claimed by ${String(run.owner)}`);
    const calls = Number(run.calls ?? 0);
    if (calls > prepared.callsMade || calls < prepared.callsRecordable)
      problems.push(
        `summary.prepare.apiCalls is ${calls}; Prepare's attempts made ${prepared.callsMade} calls, of which ${prepared.callsRecordable} by attempts that lived to record them`,
      );
    return problems;
  }

  /**
   * Report retried counts nothing twice: the task's figures are its ledger's (check() compares
   * written and failed), its API calls those the steps recorded before the report, the run failed
   * with the reason, its notification sent; and a further report changes none of it.
   */
  async function checkReport(
    s: Scenario,
    outcome: RunOutcome,
    deps: CoreDeps,
    injector: CrashInjector,
  ): Promise<string[]> {
    const problems: string[] = [];
    if (outcome.status !== 'failed') return [`the run ended ${outcome.status}, not failed`];
    const figures = async (): Promise<{
      status: string;
      error: string | null;
      task: Record<string, unknown>;
    }> => {
      const { rows } = await env.pool.query<{
        status: string;
        error: string | null;
        task: Record<string, unknown>;
      }>(`SELECT status, error, summary->'writeback'->$2 AS task FROM roundtrip.runs WHERE run_id = $1`, [
        outcome.runId,
        s.task,
      ]);
      const { durationMs: _, ...rest } = rows[0]?.task ?? {};
      return { status: rows[0]?.status ?? 'missing', error: rows[0]?.error ?? null, task: rest };
    };
    const first = await figures();
    if (first.status !== 'failed' || !/maxFailureRate/.test(first.error ?? ''))
      problems.push(`the run is recorded ${first.status} (${String(first.error)})`);
    const want = {
      changed: s.rows.length,
      failed: 1,
      written: s.rows.length - 1,
      outcomeUnknown: 0,
      apiCalls: outcome.apiCallsBeforeReport,
    };
    for (const [k, v] of Object.entries(want)) {
      if (first.task[k] !== v)
        problems.push(`the report says ${k} ${String(first.task[k])}, not ${String(v)}`);
    }
    // Sent once; a second time only by the retry of a Report whose Lambda died after sending it
    // and before recording so (summary.notifiedAt): at least once, never lost to the crash.
    const sent = s.notifications.length;
    const diedAfterSending =
      injector.firedKind === 'pg-dies-before' && s.notifications[0]?.beforeTheCrash === true;
    if (sent !== 1 && !(sent === 2 && diedAfterSending))
      problems.push(`${sent} notifications of the failed run`);
    await reportRun(deps, { runId: outcome.runId });
    const again = await figures();
    if (JSON.stringify(again) !== JSON.stringify(first))
      problems.push(`a further report changed the run: ${JSON.stringify(first)} → ${JSON.stringify(again)}`);
    if (s.notifications.length > sent) problems.push(`a further report notified again`);
    return problems;
  }

  /**
   * Every point of every kind of crash, one scenario each, on {@link LANES} lanes: point 1, 2, 3…
   * of a kind (every stride-th of a sampled one) up to the points the case's first scenario, without
   * a crash, went through (`baseline`): a scenario's run goes through those points until its crash,
   * so each is reached, or the sweep says which was not. Then one more scenario without a crash goes
   * through the points the first did, kind by kind: a run whose points moved with the scenarios
   * before it (a statement for each task or run in the database, say), or from one run to the next,
   * would leave points of the later runs never crashed at. (Until the thirty-second session each kind
   * ended with a scenario armed past its last point, seen not to fire: a run without a crash before
   * that point, as this one is, seven times a case.)
   */
  async function sweep(c: Case, lanes: readonly Lane[], offset: number, baseline: PointCounts) {
    const problems: string[] = [];
    // What the crashes led to: scenarios that needed another run, and the error codes recorded.
    let laterRuns = 0;
    const codes = new Set<string>();
    const reached = Object.fromEntries(CRASH_KINDS.map((k) => [k, new Set<number>()])) as Record<
      CrashKind,
      Set<number>
    >;
    let kind = 0;
    let at: number | undefined;
    const n = (k: CrashKind): number => pointsOf(k, baseline);
    const next = (): { kind: CrashKind; at: number } | undefined => {
      for (;;) {
        const k = kindsOf(c)[kind];
        if (k === undefined) return undefined;
        at = at === undefined ? firstPointOf(c, k, offset) : at + strideOf(c, k);
        if (at <= n(k)) return { kind: k, at };
        kind += 1;
        at = undefined;
      }
    };
    await Promise.all(
      lanes.map(async (lane) => {
        for (let crash = next(); crash; crash = next()) {
          const result = await scenario(c, crash, lane);
          const where = result.fired ? result.point : 'not reached';
          problems.push(...result.problems.map((p) => `${crash.kind} #${crash.at} (${where}): ${p}`));
          if (result.runs > 1) laterRuns += 1;
          result.errorCodes.forEach((code) => codes.add(code));
          if (result.fired) reached[crash.kind].add(crash.at);
          else
            problems.push(
              `${crash.kind} #${crash.at}: not reached, though the case's first run went through ${n(crash.kind)} (its run went through ${pointsOf(crash.kind, result.counts)})`,
            );
        }
      }),
    );
    if (!c.everyPointOf) {
      const after = await scenario(c, undefined, lanes[0] as Lane);
      problems.push(...after.problems.map((p) => `the run without a crash after the sweep: ${p}`));
      for (const k of kindsOf(c)) {
        const m = pointsOf(k, after.counts);
        if (m !== n(k))
          problems.push(
            `${k}: a run without a crash after the sweep went through ${m} points, the case's first ${n(k)}: runs go through other points the more scenarios ran before them (a statement for each task or run in the database?)`,
          );
      }
    }
    return { problems, reached, laterRuns, codes: [...codes].sort() };
  }

  it.each(CASES.map((c, index) => [c.name, c, index] as const))(
    '%s: a crash at any point, retried, loses and duplicates nothing',
    async (_name, c, index) => {
      // Fresh connectors, their describe of Lead loaded: no scenario of the case asks for it (a
      // connector keeps it five minutes).
      const lanes = await Promise.all(
        pools.map(async (pool): Promise<Lane> => {
          const connector = await env.connect();
          await connector.describe('Lead');
          return { pool, connector };
        }),
      );
      const callsBefore = env.sf.calls.all().length;
      const baseline = await scenario(c, undefined, lanes[0] as Lane);
      expect(baseline.problems).toEqual([]);
      if (c.records > COLLECTIONS_MAX_RECORDS) {
        // The records went in Composite calls of 1,000 at most (subrequests of 200), as the case
        // says (calls of one record: the row-lock retry).
        const calls = env.sf.calls
          .all()
          .slice(callsBefore)
          .filter((e) => e.write && (e.records ?? 0) > 1)
          .map((e) => `${e.operation} of ${String(e.records)}`);
        const rest = c.records - COMPOSITE_MAX_RECORDS;
        expect(calls).toEqual(
          rest > 0
            ? [`composite of ${COMPOSITE_MAX_RECORDS}`, `composite of ${rest}`]
            : [`composite of ${c.records}`],
        );
      }
      // (Not counting the jobs of the run that ended before: endedRun.)
      const { rows: jobs } = await env.pool.query(
        `SELECT job_id FROM roundtrip.writeback_jobs WHERE task = $1 AND run_id IS DISTINCT FROM $2`,
        [baseline.task, baseline.endedRunId ?? null],
      );
      expect(jobs).toHaveLength(c.api === 'bulk' ? 2 : 0);
      const { problems, reached, laterRuns, codes } = await sweep(c, lanes, index, baseline.counts);
      expect(problems).toEqual([]);
      // Every point of a run (every stride-th of a sampled kind) was crashed at, and those are many.
      const counts = Object.fromEntries(CRASH_KINDS.map((k) => [k, reached[k].size]));
      const points = Object.fromEntries(CRASH_KINDS.map((k) => [k, pointsOf(k, baseline.counts)])) as Record<
        CrashKind,
        number
      >;
      for (const k of kindsOf(c)) {
        // Crashed at points first, first + stride, … up to n, where n is what a run without a
        // crash goes through: the case's first scenario's, and the run after its sweep's.
        const n = points[k];
        const stride = strideOf(c, k);
        const first = firstPointOf(c, k, index);
        const expected = Array.from(
          { length: n >= first ? Math.floor((n - first) / stride) + 1 : 0 },
          (_, i) => first + i * stride,
        );
        expect([k, [...reached[k]].sort((a, b) => a - b)]).toEqual([k, expected]);
      }
      if (c.phase === 'writeback') {
        expect(points['pg-dies-before']).toBeGreaterThan(40);
        expect(points['pg-dies-after-commit']).toBeGreaterThan(3);
        expect(points['pg-fails']).toBeGreaterThan(15);
        // Writes: Bulk, two jobs' creation, upload and close at least; Collections, a call and its
        // row-lock retry.
        expect(points['sf-answer-lost']).toBeGreaterThan(c.api === 'bulk' ? 5 : 1);
        expect(points['step-output-lost']).toBeGreaterThan(1);
      } else {
        expect(points['pg-dies-before']).toBeGreaterThan(5);
        expect(points['pg-dies-after-commit']).toBeGreaterThan(0);
        expect(points['step-output-lost']).toBe(1);
        // Prepare reads the org's limits; Report calls nothing. Neither writes.
        expect(points['sf-fails-before']).toBe(c.phase === 'prepare' ? 1 : 0);
        expect(points['sf-answer-lost']).toBe(0);
      }
      console.log(
        `${c.name}: crashed at ${JSON.stringify(counts)} of ${JSON.stringify(points)} points; ${laterRuns} scenarios needed another run; error codes recorded: ${codes.join(', ') || 'none'}`,
      );
    },
    900_000,
  );
});
