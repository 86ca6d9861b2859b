/**
 * A write-back task that fails does not stop the tasks after it: the example pipeline with three
 * write-back tasks, run through the real state machine definition locally. The first (a Contact
 * insert whose keyColumn the source does not have) fails in its plan, the second (the example's
 * Lead update) writes every score, the third (the same update under another name, capped at one
 * change) fails in its plan with MaxChangesExceededError. The run fails at its end, naming both
 * failed tasks and their errors in the execution's Cause, in roundtrip.runs and in the CLI's
 * summary.
 */
import { noteFailure } from '../../bin/commands/run';
import { formatSummaryTable } from '../../bin/local/summary';
import { progressPrinter } from '../../bin/cli-common';
import { parseConfig } from '../../lambdas/config';
import { ERROR_NAMES } from '../../lambdas/shared/errors';
import { RUN_STATES, taskStateNames } from '../../statemachine/definition';
import { MAX_PAYLOAD_BYTES, payloadBytes } from '../../statemachine/local';
import { expectedScores } from './support/expected-scores';
import {
  exampleConfig,
  refusedSignInMessage,
  refuseSignIns,
  signInsSince,
  startWorld,
  type E2eWorld,
} from './support/harness';

describe('a write-back task that fails', () => {
  let world: E2eWorld;
  beforeAll(async () => {
    const example = await exampleConfig();
    const lead = {
      to: 'salesforce',
      object: 'Lead',
      from: 'lead_reverse',
      mode: 'update',
      key: 'Id',
      fields: { LeadScore__c: 'lead_score' },
    } as const;
    // The tasks as a config file gives them, with the defaults filled in by the config's parser.
    const { writeback } = parseConfig({
      name: example.name,
      salesforce: { secret: 'roundtrip/salesforce' },
      postgres: { secret: 'roundtrip/postgres' },
      transform: ['unused.sql'],
      writeback: [
        {
          to: 'salesforce',
          object: 'Contact',
          from: 'lead_reverse',
          mode: 'insert',
          keyColumn: 'no_such_column',
          fields: { LastName: 'lead_score' },
        },
        lead,
        { ...lead, name: 'Lead-capped', maxChanges: 1 },
      ],
    });
    world = await startWorld({ leads: 300, customers: 150, config: { ...example, writeback } });
  });
  afterAll(async () => {
    await world?.close();
  });

  it('runs the tasks after it, then fails the run naming every failed task and its error', async () => {
    const lines: string[] = [];
    const entered: string[] = [];
    const print = progressPrinter((line) => lines.push(line));
    const result = await world.run(
      {},
      {
        onEvent: (event) => {
          if (event.type === 'entered') entered.push(event.state);
          print(event);
        },
      },
    );

    // The tasks after the failed one ran, and the second wrote every score.
    const expected = expectedScores(world.env.leads, world.env.customers).map((s) => s ?? null);
    expect(world.scores()).toEqual(expected);
    const scored = expected.filter((s) => s !== null).length;
    expect(entered).toEqual(
      expect.arrayContaining([
        taskStateNames('Contact-insert').recordFailure,
        taskStateNames('Lead-update').push,
        taskStateNames('Lead-capped').plan,
        taskStateNames('Lead-capped').recordFailure,
        RUN_STATES.report,
      ]),
    );
    expect(entered).not.toContain(RUN_STATES.reportFailure);
    expect(entered).not.toContain(taskStateNames('Contact-insert').push);

    // The execution fails at its end, its Cause naming both tasks and their errors.
    expect(result.execution).toMatchObject({ status: 'failed', error: ERROR_NAMES.writebackTasksFailed });
    const cause = result.execution.status === 'failed' ? result.execution.cause : '';
    expect(cause).toMatch(
      /^2 write-back tasks failed \(the other tasks ran\): Contact-insert: .*no_such_column/,
    );
    expect(cause).toMatch(/; Lead-capped: .*maxChanges/);

    // roundtrip.runs: failed, with each failed task and its error, and the figures of all three.
    const { rows } = await world.local.pool.query<{
      status: string;
      error: string;
      summary: { writeback: Record<string, Record<string, unknown>> };
    }>(`SELECT status, error, summary FROM roundtrip.runs WHERE run_id = $1`, [result.summary.runId]);
    const [run] = rows;
    expect(run?.status).toBe('failed');
    expect(run?.error).toMatch(
      /^write-back Contact-insert failed \(writeback\[0\]\): .*no_such_column.*keyColumn/,
    );
    expect(run?.error).toMatch(
      /; write-back Lead-capped failed \(writeback\[2\]\): .*writeback\[2\]\.maxChanges/,
    );
    const stored = run?.summary.writeback ?? {};
    expect(Object.keys(stored).sort()).toEqual(['Contact-insert', 'Lead-capped', 'Lead-update']);
    expect(stored['Contact-insert']?.error).toMatch(/no_such_column/);
    expect(stored['Lead-capped']).toMatchObject({ sourceRows: scored, changed: scored, written: 0 });
    expect(stored['Lead-capped']?.error).toMatch(/maxChanges/);
    expect(stored['Lead-update']).toMatchObject({ written: scored, failed: 0 });
    expect(stored['Lead-update']).not.toHaveProperty('error');

    // The CLI's summary: every write-back task, the failed ones marked and their errors said.
    expect(result.summary.status).toBe('failed');
    const writebacks = result.summary.tasks.filter((t) => t.kind === 'writeback');
    expect(writebacks.map((t) => [t.task, t.written, t.error !== undefined])).toEqual([
      ['Contact-insert', 0, true],
      ['Lead-update', scored, false],
      ['Lead-capped', 0, true],
    ]);
    const table = formatSummaryTable(result.summary);
    expect(table).toMatch(/^Contact-insert ✗ +writeback/m);
    expect(table).toMatch(/^Lead-update +writeback/m);
    expect(table).toMatch(/^✗ write-back Contact-insert failed: .*no_such_column/m);
    expect(table).toMatch(/^✗ write-back Lead-capped failed: .*maxChanges/m);
    // The step lines: the plan's ✗, then the task recorded as failed and the run going on.
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^ {2}✗ Contact-insert plan: .*no_such_column/),
        '  ✗ Contact-insert recorded as failed: the run goes on with the other tasks, and fails at its end',
        expect.stringMatching(/^ {2}✓ Lead-update push/),
      ]),
    );
  });
});

describe('many write-back tasks that fail with long errors', () => {
  /**
   * More failed tasks, each with an error longer than the 2,000 characters a task's error keeps,
   * than the execution's state could carry if it kept their errors: 70 × (2,000 + its share of the
   * run's reason) is past the 256 KiB Step Functions allows a state (States.DataLimitExceeded).
   */
  const FAILING = 70;
  let world: E2eWorld;
  beforeAll(async () => {
    const example = await exampleConfig();
    // Each task maps 40 fields Lead does not have: its plan's error names each with its config
    // path, some 3,000 characters.
    const fields = Object.fromEntries(Array.from({ length: 40 }, (_, f) => [`Field${f}__c`, 'lead_score']));
    const { writeback } = parseConfig({
      name: example.name,
      salesforce: { secret: 'roundtrip/salesforce' },
      postgres: { secret: 'roundtrip/postgres' },
      transform: ['unused.sql'],
      writeback: Array.from({ length: FAILING }, (_, i) => ({
        name: `Wide-${i}`,
        to: 'salesforce',
        object: 'Lead',
        from: 'lead_reverse',
        mode: 'update',
        key: 'Id',
        fields,
      })),
    });
    world = await startWorld({ leads: 20, customers: 10, config: { ...example, writeback } });
  }, 120_000);
  afterAll(async () => {
    await world?.close();
  });

  it('keeps the execution state small and fails the run naming every task', async () => {
    let largest = 0;
    const result = await world.run(
      {},
      {
        onEvent: (event) => {
          if (event.type === 'exited') largest = Math.max(largest, payloadBytes(event.output));
        },
      },
    );

    // Not States.DataLimitExceeded: the run ends as a run whose tasks failed, naming each.
    expect(result.execution).toMatchObject({ status: 'failed', error: ERROR_NAMES.writebackTasksFailed });
    const cause = result.execution.status === 'failed' ? result.execution.cause : '';
    expect(cause).toMatch(
      new RegExp(`^${FAILING} write-back tasks failed \\(the other tasks ran\\): Wide-0: `),
    );
    for (let i = 0; i < FAILING; i += 1) expect(cause).toContain(`Wide-${i}: `);
    // What the state machine carried stayed far from the quota, whatever the errors' length.
    expect(largest).toBeLessThan(MAX_PAYLOAD_BYTES / 4);

    // roundtrip.runs has every task's whole error (2,000 characters each), which the state did not.
    const { rows } = await world.local.pool.query<{
      error: string;
      summary: { writeback: Record<string, { error?: string }> };
    }>(`SELECT error, summary FROM roundtrip.runs WHERE run_id = $1`, [result.summary.runId]);
    const errors = Object.values(rows[0]?.summary.writeback ?? {}).map((t) => t.error ?? '');
    expect(errors).toHaveLength(FAILING);
    for (const error of errors) {
      expect(error).toMatch(
        /^Cannot plan the write-back Wide-\d+ \(update of Lead\): field Field0__c does not exist on Lead/,
      );
      expect(error).toHaveLength(2_000);
    }
    for (let i = 0; i < FAILING; i += 1) {
      expect(rows[0]?.error).toContain(`write-back Wide-${i} failed (writeback[${i}]): `);
    }
    expect(result.summary.tasks.filter((t) => t.kind === 'writeback' && t.error !== undefined)).toHaveLength(
      FAILING,
    );
  }, 300_000);
});

describe('a write-back task that meets Salesforce down', () => {
  let world: E2eWorld;
  beforeAll(async () => {
    const example = await exampleConfig();
    const [lead] = example.writeback;
    world = await startWorld({
      leads: 50,
      customers: 20,
      config: { ...example, writeback: [lead!, { ...lead!, name: 'Lead-again' }] },
    });
  }, 120_000);
  afterAll(async () => {
    await world?.close();
  });

  it('stops the run at the first task that exhausts its retries, naming the service and the tasks not run', async () => {
    const first = taskStateNames('Lead-update');
    const second = taskStateNames('Lead-again');
    const entered: string[] = [];
    const result = await world.run(
      {},
      {
        onEvent: (event) => {
          if (event.type !== 'entered') return;
          entered.push(event.state);
          // From the first write-back step on, Salesforce answers every API call 503.
          if (event.state === first.plan) {
            world.env.salesforce.faults.set({ http503Burst: 1_000_000 });
          }
        },
      },
    );

    // The run stopped at the first task: the second was never attempted.
    expect(entered).toContain(first.stopsRun);
    expect(entered).toContain(RUN_STATES.reportFailure);
    expect(entered).not.toContain(first.recordFailure);
    expect(entered).not.toContain(second.plan);
    expect(entered).not.toContain(RUN_STATES.report);
    // Only the first task's retries were spent against the service that was down.
    expect(entered.filter((s) => s === first.plan)).toHaveLength(1);
    expect(world.env.salesforce.calls.count({ status: 503 })).toBeGreaterThan(0);

    // The execution's error is the service's, and says which service.
    expect(result.execution).toMatchObject({ status: 'failed', error: ERROR_NAMES.transient });
    const cause = result.execution.status === 'failed' ? result.execution.cause : '';
    expect(cause).toMatch(/Salesforce .*(503|SERVER_UNAVAILABLE)/);

    // roundtrip.runs: the task that stopped the run, its error naming Salesforce, and the task not run.
    const { rows } = await world.local.pool.query<{
      status: string;
      error: string;
      summary: { writeback: Record<string, { error?: string }> };
    }>(`SELECT status, error, summary FROM roundtrip.runs WHERE run_id = $1`, [result.summary.runId]);
    const [run] = rows;
    expect(run?.status).toBe('failed');
    expect(run?.error).toMatch(
      /^write-back Lead-update failed \(writeback\[0\]\) and stopped the run, its error being the run's, not the task's alone: Salesforce .*(503|SERVER_UNAVAILABLE).*; the write-back task after it did not run \(Lead-again\)$/,
    );
    expect(run?.summary.writeback['Lead-update']?.error).toMatch(/^Salesforce .*(503|SERVER_UNAVAILABLE)/);
    expect(run?.summary.writeback).not.toHaveProperty('Lead-again');
    // The CLI's summary names it and why.
    const failed = result.summary.tasks.filter((t) => t.kind === 'writeback' && t.error !== undefined);
    expect(failed.map((t) => [t.task, t.error])).toEqual([
      ['Lead-update', expect.stringMatching(/Salesforce .*(503|SERVER_UNAVAILABLE)/)],
    ]);
  }, 300_000);
});

describe('a write-back task whose Salesforce sign-in is refused', () => {
  let world: E2eWorld;
  const SCORED = 10;
  beforeAll(async () => {
    const example = await exampleConfig();
    const [lead] = example.writeback;
    // Write-back only: no extract signs in before the tasks, and the source table is the test's.
    world = await startWorld({
      leads: 30,
      customers: 10,
      config: {
        ...example,
        extract: [],
        transform: [],
        writeback: [lead!, { ...lead!, name: 'Lead-again' }],
      },
    });
    await world.local.pool.query(
      `CREATE TABLE lead_reverse ("Id" text PRIMARY KEY, lead_score integer NOT NULL)`,
    );
    await world.local.pool.query(
      `INSERT INTO lead_reverse ("Id", lead_score) SELECT id, 42 FROM unnest($1::text[]) AS id`,
      [world.env.leadIds.slice(0, SCORED)],
    );
  }, 120_000);
  afterAll(async () => {
    await world?.close();
  });

  it('stops the run at the first task after one refused sign-in, naming the secret to check and the task not run', async () => {
    const first = taskStateNames('Lead-update');
    const second = taskStateNames('Lead-again');
    const sf = world.env.salesforce;
    const entered: string[] = [];
    const lines: string[] = [];
    const print = progressPrinter((line) => lines.push(line));
    let loginsBefore = -1;
    const result = await world.run(
      {},
      {
        onEvent: (event) => {
          print(event);
          if (event.type !== 'entered') return;
          entered.push(event.state);
          // After Prepare signed in: the user's password changes in Salesforce (the secret keeps
          // the old one) and its sessions end, so the write-back must sign in again.
          if (event.state === first.plan) {
            loginsBefore = refuseSignIns(sf);
          }
        },
      },
    );

    // One sign-in attempt, refused: not one per task (each would count toward the user's lockout).
    expect(loginsBefore).toBeGreaterThanOrEqual(1);
    expect(signInsSince(sf, loginsBefore)).toEqual([500]);

    // The run stopped at the first task: the second was never attempted.
    expect(entered).toContain(first.stopsRun);
    expect(entered).toContain(RUN_STATES.reportFailure);
    expect(entered).not.toContain(first.recordFailure);
    expect(entered).not.toContain(second.plan);
    expect(entered).not.toContain(RUN_STATES.report);

    // The execution's error is the sign-in's, as the connector words it: what to check, and where.
    const signIn = refusedSignInMessage(sf);
    expect(result.execution).toMatchObject({ status: 'failed', error: ERROR_NAMES.signInRefused });
    const cause = result.execution.status === 'failed' ? result.execution.cause : '';
    expect(cause).toContain(signIn);

    // roundtrip.runs: the task that stopped the run, the sign-in's error said once, the task not run.
    const { rows } = await world.local.pool.query<{
      status: string;
      error: string;
      summary: { writeback: Record<string, { error?: string }> };
    }>(`SELECT status, error, summary FROM roundtrip.runs WHERE run_id = $1`, [result.summary.runId]);
    const [run] = rows;
    expect(run?.status).toBe('failed');
    expect(run?.error).toBe(
      `write-back Lead-update failed (writeback[0]) and stopped the run, its error being the run's, not the task's alone: ${signIn}; the write-back task after it did not run (Lead-again)`,
    );
    expect(run?.summary.writeback['Lead-update']?.error).toBe(signIn);
    expect(run?.summary.writeback).not.toHaveProperty('Lead-again');

    // The CLI's summary: the one task, its error said once.
    const failed = result.summary.tasks.filter((t) => t.kind === 'writeback' && t.error !== undefined);
    expect(failed.map((t) => [t.task, t.error])).toEqual([['Lead-update', signIn]]);
    expect(failed[0]?.stoppedRun).toEqual({ notRun: ['Lead-again'] });
    const table = formatSummaryTable(result.summary);
    expect(table.split('INVALID_LOGIN')).toHaveLength(2);
    expect(table).toMatch(
      /^✗ write-back Lead-update failed and stopped the run: Salesforce sign-in \(soap\) .*INVALID_LOGIN.*…; the write-back task after it did not run \(Lead-again\)$/m,
    );
    // roundtrip run's failure line (stderr): the stored error, which holds the execution's, once.
    const stderr: string[] = [];
    const write = jest.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      stderr.push(String(chunk));
      return true;
    });
    try {
      noteFailure(result, 'the secret roundtrip/postgres');
    } finally {
      write.mockRestore();
    }
    expect(stderr).toEqual([`run ${result.summary.runId} failed: ${run?.error}\n`]);
    // The step's line: the sign-in's error, and no task recorded as failed to go on from.
    expect(lines).toContainEqual(expect.stringMatching(/^ {2}✗ Lead-update (plan|push): Salesforce sign-in/));
    expect(lines.filter((l) => l.includes('recorded as failed'))).toEqual([]);
    // Nothing was written.
    expect(world.scores().filter((s) => s === 42)).toHaveLength(0);
  }, 300_000);
});
