import { parseConfig, type WritebackTaskInput } from '../../../lambdas/config';
import {
  bulkBatchesFor,
  checkPushBudget,
  pushCallsAtLeast,
  retryPassBudgetProblem,
  retryPassCallsAtLeast,
  runApiCalls,
  storedLimits,
  type PushBudgetInput,
} from '../../../lambdas/core/writeback/api-budget';

/**
 * The pipeline's config without its write-backs: a Salesforce extract (task Lead) and an Athena
 * one (task athena_customers), whose calls are not Salesforce's.
 */
const BASE = {
  name: 'budget',
  salesforce: { secret: 'roundtrip/salesforce' },
  postgres: { secret: 'roundtrip/postgres' },
  athena: { database: 'marketing', outputLocation: 's3://results/budget/' },
  extract: [
    { from: 'salesforce', object: 'Lead', fields: ['Id'], table: 'sf_lead' },
    { from: 'athena', query: 'SELECT email FROM customers', table: 'athena_customers' },
  ],
};
const CONFIG = parseConfig(BASE);

function input(over: {
  task?: Partial<WritebackTaskInput>;
  budget?: { maxApiCallsPerRun?: number; reserveDailyApiPercent?: number };
  api: PushBudgetInput['api'];
  records: number;
  summary: Record<string, unknown>;
}): PushBudgetInput {
  const config = parseConfig({
    ...BASE,
    transform: ['t.sql'],
    ...(over.budget ? { budget: over.budget } : {}),
    writeback: [
      {
        to: 'salesforce',
        object: 'Lead',
        from: 'scores',
        mode: 'update',
        fields: { LeadScore__c: 'score' },
        bulkThreshold: 100_000,
        ...over.task,
      },
    ],
  });
  const [task] = config.writeback;
  return {
    config,
    task: task!,
    configPath: 'writeback[0]',
    runId: 'run-1',
    api: over.api,
    records: over.records,
    summary: over.summary,
  };
}

/** A summary with Prepare's calls and limits, an extract's calls and this task's plan calls. */
const summary = (limits?: Record<string, unknown>): Record<string, unknown> => ({
  prepare: { apiCalls: 3, ...(limits ? { limits } : {}) },
  extract: { Lead: { apiCalls: 10, rows: 5 }, athena_customers: { rows: 7, apiCalls: 2, s3Reads: 1 } },
  writeback: { 'Lead-update': { apiCalls: 1, changed: 4_500 }, Earlier: { apiCalls: 6 } },
});

describe('the push’s fewest calls, and the run’s calls so far', () => {
  it('counts a Composite call per 1,000 records, five for a Bulk job, none for nothing to send', () => {
    expect([1, 1_000, 1_001, 4_500].map((n) => pushCallsAtLeast('collections', n))).toEqual([1, 1, 2, 5]);
    expect(pushCallsAtLeast('bulk', 1_000_000)).toBe(5);
    expect(pushCallsAtLeast('none', 0)).toBe(0);
    expect([1, 10_000, 10_001].map(bulkBatchesFor)).toEqual([1, 1, 2]);
  });

  it('adds Prepare’s, the Salesforce extracts’ and the write-backs’ recorded calls, not Athena’s nor what is not a count', () => {
    expect(runApiCalls(summary(), CONFIG)).toEqual({ total: 20, prepare: 3 });
    expect(runApiCalls({}, CONFIG)).toEqual({ total: 0, prepare: 0 });
    expect(
      runApiCalls({ prepare: { apiCalls: 'x' }, writeback: null, extract: { Lead: 2 } }, CONFIG),
    ).toEqual({
      total: 0,
      prepare: 0,
    });
  });

  it('reads the allowances Prepare stored, those well formed', () => {
    expect(
      storedLimits(
        summary({
          DailyApiRequests: { Max: 15_000, Remaining: 900 },
          DailyBulkApiBatches: { Max: 15_000 },
        }),
      ),
    ).toEqual({ DailyApiRequests: { Max: 15_000, Remaining: 900 } });
    expect(storedLimits({})).toEqual({});
  });
});

describe('checkPushBudget', () => {
  it('lets a push through that fits maxApiCallsPerRun exactly, and refuses one call more', () => {
    // 20 spent + 5 Composite calls for 4,500 records.
    expect(() =>
      checkPushBudget(
        input({ api: 'collections', records: 4_500, summary: summary(), budget: { maxApiCallsPerRun: 25 } }),
      ),
    ).not.toThrow();
    expect(() =>
      checkPushBudget(
        input({ api: 'collections', records: 4_500, summary: summary(), budget: { maxApiCallsPerRun: 24 } }),
      ),
    ).toThrow(
      'its push of 4,500 records needs at least 5 Salesforce API calls (Collections, 4,500 records at 1,000 a call), and the run has made 20 of budget.maxApiCallsPerRun 24. A Bulk job would send them in a few calls: lower writeback[0].bulkThreshold (100,000) to 4,500 or less.',
    );
  });

  it('tells an insert without an external-ID key, which Bulk cannot send, to give it a key', () => {
    const refused = input({
      task: {
        mode: 'insert',
        keyColumn: 'row_id',
        fields: { LastName: 'name', Company: 'name' },
        bulkThreshold: 10_000,
      },
      api: 'collections',
      records: 20_000,
      summary: summary(),
      budget: { maxApiCallsPerRun: 30 },
    });
    expect(() => checkPushBudget(refused)).toThrow(
      'An insert without an external-ID key is always sent through Collections: give it a key (writeback[0].key) and it goes through Bulk from writeback[0].bulkThreshold (10,000) on.',
    );
  });

  it('keeps the daily reserve: what Prepare read, less the run’s calls since it', () => {
    // Prepare saw 47 remaining; 17 calls since (20 spent, 3 of them Prepare's): about 30 now.
    const limits = { DailyApiRequests: { Max: 100, Remaining: 47 } };
    const at = (records: number, reserveDailyApiPercent: number) =>
      input({ api: 'collections', records, summary: summary(limits), budget: { reserveDailyApiPercent } });
    // 30 − 10 = 20 left, the reserve of 20 % kept exactly.
    expect(() => checkPushBudget(at(10_000, 20))).not.toThrow();
    expect(() => checkPushBudget(at(10_001, 20))).toThrow(
      "needs at least 11 Salesforce API calls (Collections, 10,001 records at 1,000 a call); of the org's daily allowance about 30 of 100 remain (DailyApiRequests when the run started, less the run's calls since), which would leave 19, below the reserve of 20 (budget.reserveDailyApiPercent 20%).",
    );
  });

  it('refuses a Bulk push the org has too few batches left for, and checks nothing it was not told of', () => {
    const batches = (Remaining: number) => summary({ DailyBulkApiBatches: { Max: 15_000, Remaining } });
    expect(() => checkPushBudget(input({ api: 'bulk', records: 30_000, summary: batches(3) }))).not.toThrow();
    expect(() => checkPushBudget(input({ api: 'bulk', records: 30_001, summary: batches(3) }))).toThrow(
      "needs 4 of the org's Bulk API batches (one per 10,000 records), and the org had 3 of its 15,000 a day left",
    );
    // The run's earlier Bulk pushes took batches since Prepare read the allowance: 25,000 records
    // answered for (3 batches) leave 0 of 3; a Collections push's records take none.
    const taken = {
      ...batches(3),
      writeback: {
        Earlier: { api: 'bulk', written: 24_000, failed: 1_000, apiCalls: 6 },
        Small: { api: 'collections', written: 900, apiCalls: 1 },
      },
    };
    expect(() => checkPushBudget(input({ api: 'bulk', records: 1, summary: taken }))).toThrow(
      "needs 1 of the org's Bulk API batches (one per 10,000 records), and the org had 3 of its 15,000 a day left when the run started, of which this run's Bulk pushes have taken 3 since",
    );
    // No allowances stored (a run recorded before Prepare kept them): maxApiCallsPerRun alone.
    expect(() =>
      checkPushBudget(input({ api: 'bulk', records: 1_000_000, summary: summary() })),
    ).not.toThrow();
    expect(() =>
      checkPushBudget(
        input({ api: 'none', records: 0, summary: summary(), budget: { maxApiCallsPerRun: 1 } }),
      ),
    ).not.toThrow();
  });
});

describe('retryPassBudgetProblem', () => {
  /** Collect's retry pass of the task (update unless `task` says) with `over`'s budget and records. */
  const pass = (over: {
    task?: Partial<WritebackTaskInput>;
    budget?: { maxApiCallsPerRun?: number; reserveDailyApiPercent?: number };
    unknown: number;
    waiting?: number;
    stepCalls?: number;
    limits?: Record<string, unknown>;
  }) => {
    const { config, task } = input({
      api: 'bulk',
      records: 0,
      summary: {},
      ...(over.task ? { task: over.task } : {}),
      ...(over.budget ? { budget: over.budget } : {}),
    });
    return retryPassBudgetProblem({
      config,
      task,
      runId: 'run-1',
      unknown: over.unknown,
      waiting: over.waiting ?? 0,
      summary: summary(over.limits),
      stepCalls: over.stepCalls ?? 0,
    });
  };
  const insert = {
    mode: 'insert' as const,
    key: 'External_Id__c',
    keyColumn: 'ext',
    fields: { LastName: 'name', Company: 'name' },
  };

  it('counts a Collections call per 200 records sent again, and a query per 200 insert keys looked up', () => {
    const { task: update } = input({ api: 'bulk', records: 0, summary: {} });
    expect(retryPassCallsAtLeast(update, 2_500, 0)).toBe(13);
    expect(retryPassCallsAtLeast(update, 150, 100)).toBe(2);
    const { task: inserting } = input({ api: 'bulk', records: 0, summary: {}, task: insert });
    expect(retryPassCallsAtLeast(inserting, 150, 100)).toBe(2);
    expect(retryPassCallsAtLeast(inserting, 0, 0)).toBe(0);
  });

  it('lets a pass through that fits maxApiCallsPerRun exactly, the step’s calls so far counted, and refuses one call more', () => {
    // 20 spent in the summary, 2 by the step, and 13 calls for 2,500 records.
    expect(pass({ unknown: 2_500, stepCalls: 2, budget: { maxApiCallsPerRun: 35 } })).toBeUndefined();
    expect(pass({ unknown: 2_500, stepCalls: 3, budget: { maxApiCallsPerRun: 35 } })).toBe(
      "its retry pass of 2,500 records a completed Bulk job gave no result line for (outcome unknown) needs at least 13 Salesforce API calls (Collections, 200 records a call), and the run has made 23 of budget.maxApiCallsPerRun 35. None of them was sent again nor looked up: they stay as they are, neither failed nor sent twice, and the task's next plan, once their send is 11 minutes old, marks the outcome of those sent unknown (OUTCOME_UNKNOWN in this run) and sends their current values again (SELECT * FROM roundtrip.writeback_plans WHERE run_id = 'run-1' AND task = 'Lead-update' AND status IN ('planned', 'sent')); raise budget.maxApiCallsPerRun to send them within a run",
    );
    expect(pass({ unknown: 0, budget: { maxApiCallsPerRun: 1 } })).toBeUndefined();
  });

  it('says what an insert’s pass looks up, and keeps the daily reserve', () => {
    // Prepare saw 47 remaining; 17 calls since, and 3 of the step's: about 27 now, 20 kept.
    const limits = { DailyApiRequests: { Max: 100, Remaining: 47 } };
    expect(pass({ task: insert, unknown: 1_000, waiting: 401, stepCalls: 3, limits })).toBe(
      "its retry pass of 1,000 records a completed Bulk job gave no result line for (outcome unknown, to be looked up by external ID) and 401 records waiting to be sent again needs at least 8 Salesforce API calls (200 keys a query, 200 records a Collections call), and of the org's daily allowance about 27 of 100 remain (DailyApiRequests when the run started, less the run's calls since), which would leave 19, below the reserve of 20 (budget.reserveDailyApiPercent 20%). None of them was sent again nor looked up: they stay as they are, neither failed nor sent twice, and the task's next plan looks those sent up by external ID once their send is 11 minutes old, records those Salesforce created and sends the others again (SELECT * FROM roundtrip.writeback_plans WHERE run_id = 'run-1' AND task = 'Lead-insert' AND status IN ('planned', 'sent'))",
    );
    // 5 look-ups and 2 Collections calls leave the reserve exactly.
    expect(pass({ task: insert, unknown: 1_000, waiting: 400, stepCalls: 3, limits })).toBeUndefined();
  });
});
