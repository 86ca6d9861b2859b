import { parseConfig } from '../../../lambdas/config';
import { RUN_ID_PATTERN } from '../../../lambdas/core/contracts';
import { checkBudget, newRunId, selectTasks } from '../../../lambdas/core/prepare';
import { TerminalError } from '../../../lambdas/shared/errors';

const config = parseConfig({
  name: 'unit',
  salesforce: { secret: 's' },
  athena: { database: 'marketing', outputLocation: 's3://bucket-name/results/' },
  postgres: { secret: 'p' },
  extract: [
    { from: 'salesforce', object: 'Lead', fields: ['Id'], table: 'sf_lead' },
    { from: 'athena', query: 'SELECT 1 AS x', table: 'athena_x' },
  ],
  writeback: [{ to: 'salesforce', object: 'Lead', from: 'v', mode: 'update', fields: { LeadScore__c: 's' } }],
  budget: { maxApiCallsPerRun: 100, reserveDailyApiPercent: 20 },
});

describe('selectTasks', () => {
  it('selects every task by kind when none are named', () => {
    expect(selectTasks(config, undefined)).toEqual({
      salesforce: ['Lead'],
      athena: ['athena_x'],
      writeback: ['Lead-update'],
    });
  });

  it('selects the named ones and names the unknown ones with the known ones', () => {
    expect(selectTasks(config, ['athena_x'])).toEqual({
      salesforce: [],
      athena: ['athena_x'],
      writeback: [],
    });
    expect(() => selectTasks(config, ['Lead', 'lead', 'Contact'])).toThrow(
      new TerminalError(
        'Unknown tasks "lead" (did you mean "Lead"?), "Contact" in the run input; pipeline unit has: "Lead", "athena_x", "Lead-update"',
      ),
    );
    // Given on the command line, the names are said to come from there.
    expect(() => selectTasks(config, ['Leed'], '--tasks')).toThrow(
      new TerminalError(
        'Unknown task "Leed" (did you mean "Lead"?) in --tasks; pipeline unit has: "Lead", "athena_x", "Lead-update"',
      ),
    );
  });
});

describe('checkBudget', () => {
  const perTask = [{ task: 'Lead', rows: 50_000, api: 'bulk' as const, apiCalls: 14 }];

  it('lets a run within both limits start', () => {
    expect(() =>
      checkBudget(config, 16, perTask, { DailyApiRequests: { Max: 15_000, Remaining: 14_000 } }),
    ).not.toThrow();
    expect(() => checkBudget(config, 16, perTask, undefined)).not.toThrow();
  });

  it('refuses a run above the per-run budget, with the numbers', () => {
    expect(() => checkBudget(config, 101, perTask, undefined)).toThrow(
      new TerminalError(
        'Run refused: it is forecast to make 101 Salesforce API calls (Lead: 14 (bulk, 50000 rows)), more than budget.maxApiCallsPerRun 100',
      ),
    );
  });

  it('refuses a run that would eat into the daily reserve, with the numbers', () => {
    expect(() =>
      checkBudget(config, 16, perTask, { DailyApiRequests: { Max: 15_000, Remaining: 3_010 } }),
    ).toThrow(
      new TerminalError(
        "Run refused: it is forecast to make 16 Salesforce API calls (Lead: 14 (bulk, 50000 rows)); of the org's daily allowance 3010 of 15000 remain, which would leave 2994, below the reserve of 3000 (budget.reserveDailyApiPercent 20%)",
      ),
    );
  });

  it('refuses a run whose Bulk reads need more query jobs than the org has left today', () => {
    const two = [
      ...perTask,
      { task: 'Contact', rows: 9_000, api: 'rest' as const, apiCalls: 6 },
      { task: 'Account', rows: 80_000, api: 'bulk' as const, apiCalls: 9 },
    ];
    const limits = (remaining: number) => ({
      DailyApiRequests: { Max: 15_000, Remaining: 14_000 },
      DailyBulkV2QueryJobs: { Max: 10_000, Remaining: remaining },
    });
    expect(() => checkBudget(config, 31, two, limits(2))).not.toThrow();
    expect(() => checkBudget(config, 31, two, limits(1))).toThrow(
      new TerminalError(
        "Run refused: its Bulk reads (Lead, Account) need 2 Bulk API 2.0 query jobs, and the org has 1 of its 10000 a day left (DailyBulkV2QueryJobs: other tools count too, and they free up over a rolling 24 hours). A task's bulkThreshold above its row count reads it over REST instead",
      ),
    );
    // REST reads need none.
    expect(() => checkBudget(config, 6, [two[1]!], limits(0))).not.toThrow();
  });
});

describe('newRunId', () => {
  it('is sortable by time and fits the run id pattern', () => {
    const a = newRunId(new Date('2024-05-20T20:49:32.123Z'));
    const b = newRunId(new Date('2024-05-20T20:49:33.000Z'));
    expect(a).toMatch(/^20240520T204932Z-[0-9a-f]{8}$/);
    expect(a).toMatch(RUN_ID_PATTERN);
    expect([b, a].sort()).toEqual([a, b]);
    expect(newRunId(new Date('2024-05-20T20:49:32.123Z'))).not.toBe(a);
  });
});
