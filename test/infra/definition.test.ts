import { readFileSync } from 'node:fs';
// asl-validator ships no type declarations.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const aslValidator = require('asl-validator') as (definition: unknown) => {
  isValid: boolean;
  errors: unknown[];
};
import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import { loadConfig, MAX_ATHENA_QUERY_TIMEOUT_MINUTES, type PipelineConfig } from '../../lambdas/config';
import { ERROR_NAMES } from '../../lambdas/shared/errors';
import {
  ASL_EXAMPLE_CONFIG,
  ASL_FILE,
  aslForConfig,
  aslText,
  type AslDefinition,
} from '../../statemachine/asl';
import {
  LOCKING_STEPS,
  PIPELINE_STEPS,
  STEP_KEYS,
  RUN_STATES,
  TASK_TIMEOUT_MARGIN_SECONDS,
  ATHENA_QUERY_FAILED,
  TRANSIENT_ATHENA_ERRORS,
  TRANSIENT_LAMBDA_ERRORS,
  WRITEBACK_FAILED_ERROR,
  functionName,
  taskStateNames,
  type StepKey,
  type TaskBinding,
} from '../../statemachine/definition';
import { ATHENA_MAX_QUERIES_PER_TASK } from '../../lambdas/connectors/athena/tokens';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GET_ATTEMPTS } from '../../lambdas/connectors/salesforce/calls';
import { POOL_DEFAULTS } from '../../lambdas/connectors/postgres/pool';
import { DEFAULT_MIGRATION_LOCK_TIMEOUT_MS } from '../../lambdas/connectors/postgres/migrations';
import { AWS_API_TIMEOUTS } from '../../lambdas/handlers/deps';
import { SNS_MAX_ATTEMPTS, SNS_TIMEOUTS } from '../../lambdas/handlers/sns-deps';
import { DEFAULT_SALESFORCE_TIMEOUTS } from '../../lambdas/connectors/salesforce/connector';
import {
  RUN_TIMEOUT_HOURS,
  ATHENA_QUIET_OVERHEAD_MINUTES,
  STILL_GOING_QUIET_MINUTES,
  stillGoingQuietMinutes,
  WritebackPlanOutput,
  WritebackPushOutput,
} from '../../lambdas/core/contracts';
import { fullConfig, newApp } from './support';
import { PipelineStack } from '../../lib/pipeline-stack';

// aws-local-stepfunctions 3.x wants Promise.withResolvers, which Node 20 lacks (DESIGN.md §6).
const promiseCtor = Promise as unknown as { withResolvers?: unknown };
promiseCtor.withResolvers ??= function withResolvers<T>() {
  let resolve!: (value: T) => void;
  let reject!: (reason?: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
};

type State = Record<string, unknown> & { Type: string };

/** Every state, nested ones (Parallel branches) included, by name. */
function allStates(definition: { States: Record<string, unknown> }): Map<string, State> {
  const found = new Map<string, State>();
  const visit = (states: Record<string, unknown>): void => {
    for (const [name, raw] of Object.entries(states)) {
      const state = raw as State;
      found.set(name, state);
      for (const branch of (state.Branches as { States: Record<string, unknown> }[] | undefined) ?? []) {
        visit(branch.States);
      }
    }
  };
  visit(definition.States);
  return found;
}

type ChoiceRule = Record<string, unknown>;

/** The value at a `$.a.b` path, or throws naming the path and the Choice state that read it. */
function readPath(input: unknown, path: string, state: string): unknown {
  let value: unknown = input;
  for (const key of path
    .replace(/^\$\.?/, '')
    .split('.')
    .filter(Boolean)) {
    if (value === null || typeof value !== 'object' || !(key in value)) {
      throw new Error(
        `Choice state "${state}" reads ${path}, which its input lacks: ${JSON.stringify(input)}`,
      );
    }
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

/**
 * A Choice rule of the comparisons the definition uses, every operand of And, Or and Not evaluated
 * (none skipped because an earlier one decided the result).
 */
function evaluateEagerly(rule: ChoiceRule, input: unknown, state: string): boolean {
  if (Array.isArray(rule.And)) {
    return (rule.And as ChoiceRule[]).map((r) => evaluateEagerly(r, input, state)).every(Boolean);
  }
  if (Array.isArray(rule.Or)) {
    return (rule.Or as ChoiceRule[]).map((r) => evaluateEagerly(r, input, state)).some(Boolean);
  }
  if (rule.Not) return !evaluateEagerly(rule.Not as ChoiceRule, input, state);
  const value = readPath(input, rule.Variable as string, state);
  if ('StringEquals' in rule) return value === rule.StringEquals;
  if ('BooleanEquals' in rule) return value === rule.BooleanEquals;
  throw new Error(`evaluateEagerly does not know the rule ${JSON.stringify(rule)}`);
}

/** The state types aws-local-stepfunctions 3.x runs (Map only inline, and none is used). */
const LOCAL_STATE_TYPES = new Set(['Task', 'Parallel', 'Choice', 'Wait', 'Pass', 'Succeed', 'Fail']);

describe('the state machine definition', () => {
  let example: PipelineConfig;
  let exampleAsl: AslDefinition;
  let full: AslDefinition;
  let fullTasks: ReadonlyMap<string, TaskBinding>;

  beforeAll(async () => {
    example = await loadConfig(ASL_EXAMPLE_CONFIG);
    exampleAsl = aslForConfig(example);
    const stack = new PipelineStack(newApp(), 'roundtrip-full', { config: fullConfig() });
    fullTasks = stack.taskStates;
    full = aslForConfig(fullConfig());
  });

  it('is committed as statemachine/pipeline.asl.json, exactly as the CDK code generates it (npm run asl)', () => {
    expect(readFileSync(ASL_FILE, 'utf8')).toBe(aslText(exampleAsl));
  });

  it('passes asl-validator, for the example and for a pipeline with every kind of task', () => {
    for (const definition of [exampleAsl, full]) {
      const result = aslValidator(structuredClone(definition) as never);
      expect(result.errors).toEqual([]);
      expect(result.isValid).toBe(true);
    }
  });

  it('is a JSONPath definition within what aws-local-stepfunctions runs', () => {
    expect(full.QueryLanguage).toBe('JSONPath');
    const text = JSON.stringify(full);
    for (const field of ['"Arguments"', '"Assign"', '"Output"', '"ItemReader"', '{%'])
      expect(text).not.toContain(field);
    for (const state of allStates(full).values()) expect(LOCAL_STATE_TYPES).toContain(state.Type);
    for (const match of text.matchAll(/States\.[A-Za-z]+(?=\()/g)) {
      expect(['States.ArrayContains', 'States.Format', 'States.Hash', 'States.MathAdd']).toContain(match[0]);
    }
  });

  it("routes the write-back's step outputs by paths each of them has, whatever order Step Functions evaluates And and Or in", () => {
    // A Choice rule that reads a path its input lacks is a States.Runtime error in Step Functions,
    // which no Catch handles. The ASL spec does not say that And and Or stop at the first operand
    // that decides them (aws-local-stepfunctions does): a rule must not count on it.
    const states = allStates(exampleAsl);
    const names = taskStateNames('Lead-update');
    const route = (state: string, wb: unknown): string => {
      const choice = states.get(state) as unknown as { Choices: ChoiceRule[]; Default: string };
      const input = { run: { runId: 'run-1' }, wb };
      for (const rule of choice.Choices) if (evaluateEagerly(rule, input, state)) return rule.Next as string;
      return choice.Default;
    };
    const base = { runId: 'run-1', task: 'Lead-update', apiCalls: 3 };
    const plan = (over: Partial<WritebackPlanOutput>): WritebackPlanOutput =>
      WritebackPlanOutput.parse({
        ...base,
        status: 'planned',
        api: 'collections',
        sourceRows: 2,
        rejected: 0,
        heldBack: 0,
        unchanged: 0,
        changed: 2,
        comparedWith: 'sync_state',
        ...over,
      });
    expect(route(names.route, plan({}))).toBe(names.push);
    expect(route(names.route, plan({ api: 'bulk' }))).toBe(names.pushBulk);
    expect(route(names.route, plan({ api: 'none' }))).toBe(names.nothingToSend);
    expect(route(names.route, plan({ status: 'dry-run' }))).toBe(names.nothingToSend);

    const bulkPending = WritebackPushOutput.parse({
      ...base,
      status: 'bulk-pending',
      jobIds: ['7504x000004ABCDAAA'],
      attempt: 0,
      waitSeconds: 5,
    });
    const pushPending = (api: 'bulk' | 'collections') =>
      WritebackPushOutput.parse({ ...base, status: 'push-pending', api, planned: 9, done: 4 });
    const collected = WritebackPushOutput.parse({
      ...base,
      status: 'collected',
      api: 'bulk',
      planned: 2,
      succeeded: 2,
      failed: 0,
      heldBack: 0,
      superseded: 0,
      failureRate: 0,
      maxFailureRate: 0.1,
      failureRateExceeded: false,
    });
    expect(route(names.bulkPending, bulkPending)).toBe(names.wait);
    expect(route(names.bulkPending, pushPending('bulk'))).toBe(names.pushBulk);
    expect(route(names.bulkPending, pushPending('collections'))).toBe(names.push);
    expect(route(names.bulkPending, collected)).toBe(names.pushed);
  });

  it('gives every Task a retry with exponential backoff and full jitter, a catch of everything, and a timeout', () => {
    const tasks = [...allStates(full)].filter(([, s]) => s.Type === 'Task');
    expect(tasks.length).toBeGreaterThan(15);
    let locking = 0;
    for (const [name, task] of tasks) {
      let retry = (task.Retry as Record<string, unknown>[] | undefined) ?? [];
      // A write-back push or collect first retries a task held by another invocation, slowly.
      if (LOCKING_STEPS.has(fullTasks.get(name) as StepKey)) {
        locking += 1;
        expect(retry[0]).toEqual({
          ErrorEquals: [ERROR_NAMES.busy],
          IntervalSeconds: 20,
          BackoffRate: 1.5,
          MaxAttempts: 12,
          MaxDelaySeconds: 120,
          JitterStrategy: 'NONE',
        });
        // Longer than the 15 minutes a Lambda (the holder) can run: 20, 30, 45, 67.5, 101.25, then 120 s.
        const waits = Array.from({ length: 12 }, (_, i) => Math.min(20 * 1.5 ** i, 120));
        expect(waits.reduce((a, b) => a + b, 0)).toBeGreaterThan(15 * 60);
        // Then, twice, a Lambda that died (timed out, out of memory): the step goes on from its ledger.
        expect(retry[1]).toEqual({
          ErrorEquals: ['Lambda.Unknown', 'Sandbox.Timedout'],
          IntervalSeconds: 60,
          BackoffRate: 2,
          MaxAttempts: 2,
          JitterStrategy: 'NONE',
        });
        retry = retry.slice(2);
        // A push also waits, for up to two hours, for another run's push of its task that goes
        // on over several invocations.
        if (fullTasks.get(name) === 'pushWriteback') {
          expect(retry[0]).toEqual({
            ErrorEquals: [ERROR_NAMES.pushGoingOn],
            IntervalSeconds: 120,
            BackoffRate: 1,
            MaxAttempts: 60,
            JitterStrategy: 'NONE',
          });
          retry = retry.slice(1);
        }
      }
      // A Lambda function not ready to run (made Inactive after weeks idle, Pending while Lambda
      // makes its network interface again, EC2 throttling Lambda as it does) is waited for: 10, 20,
      // 40, 60 s.
      if (!String(task.Resource).includes(':athena:')) {
        expect({ name, retrier: retry[0] }).toEqual({
          name,
          retrier: {
            ErrorEquals: [
              'Lambda.ResourceNotReadyException',
              'Lambda.ResourceConflictException',
              'Lambda.ENINotReadyException',
              'Lambda.EC2ThrottledException',
              'Lambda.EC2UnexpectedException',
            ],
            IntervalSeconds: 10,
            BackoffRate: 2,
            MaxAttempts: 4,
            MaxDelaySeconds: 60,
            JitterStrategy: 'NONE',
          },
        });
        retry = retry.slice(1);
      }
      expect({ name, retries: retry.length }).toEqual({ name, retries: 1 });
      const [retrier] = retry as [Record<string, unknown>];
      const transient = String(task.Resource).includes(':athena:')
        ? TRANSIENT_ATHENA_ERRORS
        : TRANSIENT_LAMBDA_ERRORS;
      expect(retrier.ErrorEquals).toEqual([...transient]);
      // deploy.md: "exponential backoff and jitter (2 s up to 60 s, 5 attempts)".
      expect(retrier).toMatchObject({
        IntervalSeconds: 2,
        BackoffRate: 2,
        JitterStrategy: 'FULL',
        MaxDelaySeconds: 60,
        MaxAttempts: 5,
      });
      // An Athena query that ran and failed first goes to the choice of running it again; one that
      // outlived its Task, to its stop; one refused at its start, to the message naming its task. A stop that failed goes on to the message that says so.
      const binding = fullTasks.get(name);
      const task_ = name.replace(/ (start|query|stop)$/, '');
      const athenaCatches =
        binding === 'athenaQuery'
          ? [
              { ErrorEquals: [ATHENA_QUERY_FAILED], Next: `${task_} query failed`, ResultPath: '$.error' },
              { ErrorEquals: ['States.Timeout'], Next: `${task_} stop`, ResultPath: '$.error' },
            ]
          : binding === 'athenaStart'
            ? // A query Athena refuses at its start (a syntax error) is named by its task.
              [
                {
                  ErrorEquals: ['Athena.InvalidRequestException'],
                  Next: `${task_} refused`,
                  ResultPath: '$.error',
                },
              ]
            : [];
      // A write-back step's errors are its task's, recorded before the next task runs; but those
      // that stop the whole run (the org's API allowance spent, Salesforce refusing the sign-in, a
      // task held by another execution).
      const writebackStep =
        binding === 'planWriteback' || binding === 'pushWriteback' || binding === 'collectWriteback';
      const writebackTask = name.replace(/ (plan|push|push bulk|collect)$/, '');
      const runLevel = writebackStep
        ? [
            {
              ErrorEquals: [
                'TransientError',
                'Lambda.ServiceException',
                'Lambda.AWSLambdaException',
                'Lambda.SdkClientException',
                'Lambda.TooManyRequestsException',
                'Lambda.ClientExecutionTimeoutException',
                'Lambda.ResourceNotReadyException',
                'Lambda.ResourceConflictException',
                'Lambda.ENINotReadyException',
                'Lambda.EC2ThrottledException',
                'Lambda.EC2UnexpectedException',
                'ApiLimitExceededError',
                'SalesforceSignInRefusedError',
                'PostgresAuthenticationError',
                'PostgresDatabaseMissingError',
                'TaskBusyError',
                'PushGoingOnError',
              ],
              Next: taskStateNames(writebackTask).stopsRun,
              ResultPath: '$.error',
            },
          ]
        : [];
      const all =
        binding === 'athenaStop'
          ? { ErrorEquals: ['States.ALL'], Next: `${task_} not stopped`, ResultPath: '$.stopError' }
          : writebackStep
            ? {
                ErrorEquals: ['States.ALL'],
                Next: taskStateNames(writebackTask).recordFailure,
                ResultPath: '$.error',
              }
            : expect.objectContaining({ ErrorEquals: ['States.ALL'] });
      expect({ name, catch: task.Catch }).toEqual({ name, catch: [...athenaCatches, ...runLevel, all] });
      expect(task.TimeoutSeconds).toEqual(expect.any(Number));
    }
    expect(locking).toBeGreaterThanOrEqual(2);
    // Our own error names are the ones the retries match on.
    expect(TRANSIENT_LAMBDA_ERRORS[0]).toBe(ERROR_NAMES.transient);
  });

  it('gives every step that calls Salesforce the time for a hung call to fail by its own limits, named and retried, before its Lambda ends', () => {
    // A sign-in, then a GET whose answer never begins, sent GET_ATTEMPTS times (connector.ts): the
    // step then fails with the CallTimeoutError that names the call (transient: the state machine
    // retries it). A Lambda timeout shorter than that ends the step first with Sandbox.Timedout,
    // which names nothing and, but for push and collect, is not retried.
    const t = DEFAULT_SALESFORCE_TIMEOUTS;
    const hungGetSeconds = (t.signInMs + GET_ATTEMPTS * t.getAnswerMs) / 1000;
    for (const step of STEP_KEYS.filter((k) => PIPELINE_STEPS[k].salesforce)) {
      expect({ step, outlivesAHungGet: PIPELINE_STEPS[step].timeoutSeconds > hungGetSeconds }).toEqual({
        step,
        outlivesAHungGet: true,
      });
    }
  });

  it('gives every step the time for a hung Secrets Manager, PostgreSQL or SNS call to fail by its own limits, named and retried, before its Lambda ends', async () => {
    // Every step reads the PostgreSQL secret and, behind a proxy with credentials, the proxy's
    // (lambdas/handlers/deps.ts), each a GetSecretValue the SDK sends up to maxAttempts times, each
    // given AWS_API_TIMEOUTS; then it connects to PostgreSQL. The Report may first migrate (a run
    // that failed in Prepare), waiting for the migration lock, and publishes to SNS. A Lambda
    // timeout shorter than that ends the step first with Sandbox.Timedout, which names nothing and
    // (but for push and collect) is not retried: a Secrets Manager endpoint that hangs for a minute
    // failed the Report of a run that had succeeded, for good, instead of its TimeoutError being
    // retried by the state machine.
    const client = new SecretsManagerClient({ region: 'eu-west-1', requestHandler: AWS_API_TIMEOUTS });
    const attempts = await client.config.maxAttempts();
    client.destroy();
    const hungSecretSeconds =
      (attempts * (AWS_API_TIMEOUTS.connectionTimeout + AWS_API_TIMEOUTS.requestTimeout)) / 1000;
    const common = 2 * hungSecretSeconds + POOL_DEFAULTS.connectionTimeoutMillis / 1000;
    const report =
      DEFAULT_MIGRATION_LOCK_TIMEOUT_MS / 1000 +
      (SNS_MAX_ATTEMPTS * (SNS_TIMEOUTS.connectionTimeout + SNS_TIMEOUTS.requestTimeout)) / 1000;
    for (const step of STEP_KEYS) {
      const needs = common + (step === 'report' ? report : 0);
      expect({ step, outlivesHungCalls: PIPELINE_STEPS[step].timeoutSeconds > needs }).toEqual({
        step,
        outlivesHungCalls: true,
      });
    }
  });

  it('times each Lambda Task out after its function, and names the function it binds to', () => {
    for (const [name, binding] of fullTasks) {
      const state = allStates(full).get(name);
      expect(state?.Type).toBe('Task');
      if (binding === 'athenaStart' || binding === 'athenaQuery' || binding === 'athenaStop') {
        expect(state?.Resource).toBe(
          {
            athenaStart: 'arn:aws:states:::athena:startQueryExecution',
            athenaQuery: 'arn:aws:states:::athena:startQueryExecution.sync',
            athenaStop: 'arn:aws:states:::athena:stopQueryExecution',
          }[binding],
        );
        continue;
      }
      const step = PIPELINE_STEPS[binding as StepKey];
      expect(state?.TimeoutSeconds).toBe(step.timeoutSeconds + TASK_TIMEOUT_MARGIN_SECONDS);
      expect(state?.Resource).toBe(
        `arn:aws:lambda:us-east-1:123456789012:function:${functionName('full', binding as StepKey)}`,
      );
    }
    // The map covers every Task state.
    const tasks = [...allStates(full)].filter(([, s]) => s.Type === 'Task').map(([n]) => n);
    expect([...fullTasks.keys()].sort()).toEqual(tasks.sort());
  });

  it('runs the Athena query natively and idempotently, in the configured workgroup and database', () => {
    const query = allStates(full).get(taskStateNames('athena_customers').query);
    expect(query?.Parameters).toEqual({
      QueryString: 'SELECT email, lifetime_value FROM customers',
      'ClientRequestToken.$':
        "States.Hash(States.Format('{}/{}/{}', $.runId, 'athena_customers', $.queryAttempt), 'SHA-256')",
      QueryExecutionContext: { Database: 'marketing', Catalog: 'AwsDataCatalog' },
      WorkGroup: 'roundtrip-full',
    });
    expect(query?.TimeoutSeconds).toBeGreaterThanOrEqual(30 * 60);
  });

  it('waits athena.queryTimeoutMinutes for a query, and the message of one that outlives it names that setting', () => {
    const base = fullConfig();
    const states = allStates(aslForConfig({ ...base, athena: { ...base.athena!, queryTimeoutMinutes: 90 } }));
    const names = taskStateNames('athena_customers');
    expect(states.get(names.query)?.TimeoutSeconds).toBe(90 * 60);
    for (const message of [names.timedOut, names.notStopped]) {
      const cause = String((states.get(message)?.Parameters as Record<string, unknown>)['Cause.$']);
      expect(cause).toContain(
        'did not end within 90 minutes, the limit of its Task state (athena.queryTimeoutMinutes in the config: raise it there, up to 120, if the query needs longer',
      );
    }
  });

  it.each([
    ['its default Athena query limit', undefined],
    ['the longest Athena query limit', MAX_ATHENA_QUERY_TIMEOUT_MINUTES],
  ])(
    'counts a live run as still going through its longest stretch without a step (an Athena query and its reruns), with %s',
    (_title, queryTimeoutMinutes) => {
      // Each Lambda step marks its start on the run (last_step_at); the native query's start, its
      // wait, its reruns and the stop of a query that outlived its Task do not. A scheduled run must
      // not take a live run that is only waiting on Athena for dead.
      const base = fullConfig();
      const config: PipelineConfig =
        queryTimeoutMinutes === undefined
          ? base
          : { ...base, athena: { ...base.athena!, queryTimeoutMinutes } };
      const states = allStates(queryTimeoutMinutes === undefined ? full : aslForConfig(config));
      const names = taskStateNames('athena_customers');
      type RetriedTask = State & {
        TimeoutSeconds: number;
        Retry: {
          ErrorEquals: string[];
          IntervalSeconds: number;
          BackoffRate: number;
          MaxAttempts: number;
          MaxDelaySeconds: number;
        }[];
      };
      /** The longest waits of a retrier: every attempt's longest wait (each attempt answered at once). */
      const waits = (retry: RetriedTask['Retry'][number] | undefined): number => {
        let delays = 0;
        for (let k = 0; k < (retry?.MaxAttempts ?? 0); k++) {
          delays += Math.min(retry!.IntervalSeconds * retry!.BackoffRate ** k, retry!.MaxDelaySeconds);
        }
        return delays;
      };
      /** A Task's longest time: its timeout, and every retry's longest wait. */
      const longest = (name: string): number => {
        const task = states.get(name) as RetriedTask;
        return (
          task.TimeoutSeconds +
          waits(task.Retry.find((r) => r.ErrorEquals.includes(TRANSIENT_ATHENA_ERRORS[0])))
        );
      };
      // The load's invocations that fail before its code runs (its function not ready, the Lambda
      // service's errors) are quiet too: the load marks its start once it runs.
      const load = states.get(names.load) as RetriedTask;
      const loadWaits =
        waits(load.Retry.find((r) => r.ErrorEquals.includes('Lambda.ResourceNotReadyException'))) +
        waits(load.Retry.find((r) => r.ErrorEquals.includes('Lambda.ServiceException')));
      const query = states.get(names.query) as RetriedTask;
      expect(query.TimeoutSeconds).toBe((queryTimeoutMinutes ?? 32) * 60);
      const requeryWait = states.get(names.requeryWait) as State & { Seconds: number };
      // The stretch starts when Prepare ends (it marks its end on the run's row, overlap.test.ts).
      const overheadSeconds =
        ATHENA_MAX_QUERIES_PER_TASK * (longest(names.start) + longest(names.query) - query.TimeoutSeconds) +
        (ATHENA_MAX_QUERIES_PER_TASK - 1) * requeryWait.Seconds +
        longest(names.stop) +
        loadWaits;
      expect(ATHENA_QUIET_OVERHEAD_MINUTES * 60).toBeGreaterThan(overheadSeconds);
      const longestQuietSeconds = overheadSeconds + ATHENA_MAX_QUERIES_PER_TASK * query.TimeoutSeconds;
      expect(stillGoingQuietMinutes(config) * 60).toBeGreaterThan(longestQuietSeconds);
      // A run that died without its report is closed by a later report well after that.
      expect(stillGoingQuietMinutes(config)).toBeLessThan(RUN_TIMEOUT_HOURS * 60);
      // Before Prepare's end the run's time is the execution's start: Prepare, every retry of it
      // that ran its code to its timeout, and the waits, fit in the shortest stretch (an invocation
      // of a function not ready fails before its code runs).
      const prepare = states.get(RUN_STATES.prepare) as RetriedTask;
      const transient = prepare.Retry.find((r) => r.ErrorEquals.includes(TRANSIENT_LAMBDA_ERRORS[0]));
      const notReady = prepare.Retry.find((r) => r.ErrorEquals.includes('Lambda.ResourceNotReadyException'));
      const prepareSeconds =
        (1 + (transient?.MaxAttempts ?? 0)) * prepare.TimeoutSeconds + waits(transient) + waits(notReady);
      expect(STILL_GOING_QUIET_MINUTES * 60).toBeGreaterThan(prepareSeconds);
    },
  );

  it('runs the queries with the cross-account role when the config names one', () => {
    const base = fullConfig();
    const crossAccount = aslForConfig({
      ...base,
      athena: {
        database: 'marketing',
        workgroup: 'lake',
        catalog: 'AwsDataCatalog',
        results: 's3',
        roleArn: 'arn:aws:iam::210987654321:role/lake-reader',
      },
    });
    // The query's start, its wait, and the stop of a query that outlived it: all as that role.
    const names = taskStateNames('athena_customers');
    for (const state of [names.start, names.query, names.stop]) {
      expect({ state, credentials: allStates(crossAccount).get(state)?.Credentials }).toEqual({
        state,
        credentials: { RoleArn: 'arn:aws:iam::210987654321:role/lake-reader' },
      });
    }
    expect(aslValidator(structuredClone(crossAccount)).errors).toEqual([]);
    expect(allStates(full).get(taskStateNames('athena_customers').query)?.Credentials).toBeUndefined();
  });

  describe('run locally with stand-in handlers', () => {
    /** What each step returns, per state name; records the states that ran. */
    function handlers(
      config: PipelineConfig,
      overrides: Record<string, (input: Record<string, unknown>) => unknown> = {},
    ): { ran: string[]; handlers: Record<string, (input: unknown) => Promise<never>> } {
      const ran: string[] = [];
      const selected = (input: unknown): Record<string, unknown> => input as Record<string, unknown>;
      const tasksOf = (input: Record<string, unknown>): string[] | undefined =>
        (input.input as { tasks?: string[] }).tasks;
      const defaults: Record<string, (input: Record<string, unknown>) => unknown> = {
        [RUN_STATES.prepare]: (input) => {
          const only = tasksOf(input);
          const pick = (names: string[]): string[] => names.filter((n) => !only || only.includes(n));
          return {
            runId: 'run-1',
            pipeline: config.name,
            tasks: {
              salesforce: pick(config.extract.filter((t) => t.from === 'salesforce').map((t) => t.name)),
              athena: pick(config.extract.filter((t) => t.from === 'athena').map((t) => t.name)),
              writeback: pick(config.writeback.map((t) => t.name)),
            },
            full: false,
            dryRun: (input.input as { dryRun?: boolean }).dryRun ?? false,
          };
        },
        [RUN_STATES.transform]: (input) => ({ runId: input.runId, files: [] }),
        [RUN_STATES.report]: (input) => ({ runId: input.runId, status: 'succeeded', writeback: {} }),
        [RUN_STATES.reportFailure]: (input) => ({ runId: input.runId, status: 'failed', writeback: {} }),
      };
      for (const task of config.extract) {
        const names = taskStateNames(task.name);
        if (task.from === 'salesforce') {
          defaults[names.extract] = (input) => ({ status: 'loaded', task: input.task, rows: 1 });
          defaults[names.check] = (input) => ({ status: 'loaded', task: input.task, rows: 1 });
        } else {
          defaults[names.start] = () => ({ QueryExecutionId: 'q-1' });
          defaults[names.stop] = () => ({});
          defaults[names.query] = () => ({
            QueryExecution: {
              QueryExecutionId: 'q-1',
              ResultConfiguration: { OutputLocation: 's3://r/q-1.csv' },
              Status: { State: 'SUCCEEDED' },
            },
          });
          defaults[names.load] = (input) => ({ status: 'loaded', task: input.task, queryExecutionId: 'q-1' });
        }
      }
      for (const task of config.writeback) {
        const names = taskStateNames(task.name);
        defaults[names.plan] = (input) => ({
          task: input.task,
          status: input.dryRun ? 'dry-run' : 'planned',
          api: 'collections',
        });
        defaults[names.push] = (input) => ({ status: 'collected', task: input.task });
        defaults[names.pushBulk] = (input) => ({ status: 'collected', task: input.task });
        defaults[names.collect] = (input) => ({ status: 'collected', task: input.task });
      }
      const all = { ...defaults, ...overrides };
      return {
        ran,
        handlers: Object.fromEntries(
          Object.entries(all).map(([state, fn]) => [
            state,
            async (input: unknown) => {
              ran.push(state);
              return fn(selected(input)) as never;
            },
          ]),
        ),
      };
    }

    async function run(
      definition: AslDefinition,
      input: unknown,
      h: ReturnType<typeof handlers>,
    ): Promise<
      | { status: 'succeeded'; output: Record<string, unknown> }
      | { status: 'failed'; error: string; cause: string }
    > {
      const waits = Object.fromEntries(
        [...allStates(definition)].filter(([, s]) => s.Type === 'Wait').map(([n]) => [n, 0]),
      );
      const retries = Object.fromEntries(
        [...allStates(definition)].filter(([, s]) => s.Retry).map(([n]) => [n, 0]),
      );
      const machine = new StateMachine(structuredClone(definition) as unknown as StateMachineDefinition, {
        validationOptions: { checkArn: false },
      });
      const execution = machine.run(input as Parameters<typeof machine.run>[0], {
        overrides: {
          taskResourceLocalHandlers: h.handlers,
          waitTimeOverrides: waits,
          retryIntervalOverrides: retries,
        },
        context: {
          Execution: { Name: 'run-1', Id: 'arn:aws:states:us-east-1:123456789012:execution:m:run-1' },
        },
      });
      try {
        return { status: 'succeeded', output: (await execution.result) as Record<string, unknown> };
      } catch (err) {
        // ExecutionError wraps the Fail state's error: its cause carries the name and cause.
        const e = (err as { cause?: { name?: string; message?: string } }).cause ?? {};
        return { status: 'failed', error: String(e.name), cause: String(e.message) };
      }
    }

    it('runs every configured task for `{}`', async () => {
      const h = handlers(fullConfig());
      const result = await run(full, {}, h);
      expect(result.status).toBe('succeeded');
      for (const state of [
        'Prepare',
        'Lead extract',
        'Account extract',
        'athena_customers query',
        'athena_customers load',
        'Transform',
        'Lead-update plan',
        'Lead-update push',
        'Contact-upsert plan',
        'Contact-upsert push',
        'Report',
      ]) {
        expect(h.ran).toContain(state);
      }
      expect(h.ran).not.toContain(RUN_STATES.reportFailure);
    });

    it('runs only the tasks of `{"tasks": [...]}` and skips the others', async () => {
      const h = handlers(fullConfig());
      const result = await run(full, { tasks: ['Lead', 'Lead-update'] }, h);
      expect(result.status).toBe('succeeded');
      expect(h.ran).toContain('Lead extract');
      expect(h.ran).toContain('Lead-update push');
      for (const state of ['Account extract', 'athena_customers query', 'Contact-upsert plan'])
        expect(h.ran).not.toContain(state);
    });

    it('plans but sends nothing on a dry run', async () => {
      const h = handlers(fullConfig());
      const result = await run(full, { dryRun: true }, h);
      expect(result.status).toBe('succeeded');
      expect(h.ran).toContain('Lead-update plan');
      expect(h.ran.filter((s) => /push|collect/.test(s))).toEqual([]);
    });

    it('ends a run that Prepare skipped (another run going) at once, in success', async () => {
      const h = handlers(fullConfig(), {
        [RUN_STATES.prepare]: () => ({
          runId: 'run-1',
          pipeline: 'full',
          tasks: { salesforce: ['Lead'], athena: [], writeback: ['Lead-update'] },
          full: false,
          dryRun: false,
          startedAt: '2026-01-01T00:00:00.000Z',
          forecast: { salesforceApiCalls: 0 },
          skipped: 'Skipped: run run-0 of pipeline full is still going',
        }),
      });
      expect((await run(full, { onOverlap: 'skip' }, h)).status).toBe('succeeded');
      expect(h.ran).toEqual([RUN_STATES.prepare]);
    });

    it('polls a Bulk extract through wait and check until it is loaded', async () => {
      let polls = 0;
      const h = handlers(fullConfig(), {
        'Lead extract': (input) => ({ status: 'bulk-pending', task: input.task, waitSeconds: 5, attempt: 0 }),
        'Lead check': (input) =>
          ++polls < 3 ? { ...input, attempt: polls } : { status: 'loaded', task: input.task, rows: 10 },
      });
      expect((await run(full, {}, h)).status).toBe('succeeded');
      expect(h.ran.filter((s) => s === 'Lead check')).toHaveLength(3);
    });

    it('pushes a Bulk plan and collects until every job is done', async () => {
      let polls = 0;
      const h = handlers(fullConfig(), {
        'Contact-upsert plan': (input) => ({ task: input.task, status: 'planned', api: 'bulk' }),
        'Contact-upsert push bulk': (input) => ({
          status: 'bulk-pending',
          runId: 'run-1',
          task: input.task,
          jobIds: ['750000000000001'],
          attempt: 0,
          waitSeconds: 5,
        }),
        'Contact-upsert collect': (input) =>
          ++polls < 2 ? { ...input, attempt: polls } : { status: 'collected', task: input.task },
      });
      expect((await run(full, {}, h)).status).toBe('succeeded');
      expect(h.ran.filter((s) => s === 'Contact-upsert collect')).toHaveLength(2);
      expect(h.ran).not.toContain('Contact-upsert push');
    });

    it('calls a Collections push again at once while it hands on for want of Lambda time', async () => {
      let pushes = 0;
      const h = handlers(fullConfig(), {
        'Contact-upsert push': (input) =>
          ++pushes < 3
            ? {
                status: 'push-pending',
                runId: 'run-1',
                task: input.task,
                api: 'collections',
                planned: 9,
                done: 3,
              }
            : { status: 'collected', task: input.task },
      });
      expect((await run(full, {}, h)).status).toBe('succeeded');
      const wb = h.ran.filter((s) => s.startsWith('Contact-upsert'));
      expect(wb).toEqual([
        'Contact-upsert plan',
        'Contact-upsert push',
        'Contact-upsert push',
        'Contact-upsert push',
      ]);
    });

    it('calls a Bulk push again while it hands on, then collects its jobs', async () => {
      let pushes = 0;
      const h = handlers(fullConfig(), {
        'Contact-upsert plan': (input) => ({ task: input.task, status: 'planned', api: 'bulk' }),
        'Contact-upsert push bulk': (input) =>
          ++pushes < 2
            ? { status: 'push-pending', runId: 'run-1', task: input.task, api: 'bulk', planned: 9, done: 0 }
            : {
                status: 'bulk-pending',
                runId: 'run-1',
                task: input.task,
                jobIds: ['750000000000001', '750000000000002'],
                attempt: 0,
                waitSeconds: 5,
              },
      });
      expect((await run(full, {}, h)).status).toBe('succeeded');
      const wb = h.ran.filter((s) => s.startsWith('Contact-upsert'));
      expect(wb).toEqual([
        'Contact-upsert plan',
        'Contact-upsert push bulk',
        'Contact-upsert push bulk',
        'Contact-upsert collect',
      ]);
    });

    it('reports a terminal error and fails with that error', async () => {
      const h = handlers(fullConfig(), {
        'athena_customers load': () => {
          const error = new Error('Athena query failed: table customers not found');
          error.name = ERROR_NAMES.terminal;
          throw error;
        },
      });
      const result = await run(full, {}, h);
      expect(result).toMatchObject({ status: 'failed', error: ERROR_NAMES.terminal });
      expect(h.ran).toContain(RUN_STATES.reportFailure);
      expect(h.ran).not.toContain('Transform');
    });

    describe('an Athena query that outlives its Task', () => {
      const names = taskStateNames('athena_customers');
      /** The full definition with the query Task's TimeoutSeconds cut to 1 s, and a query that never ends. */
      function timingOut(stop: (input: Record<string, unknown>) => unknown) {
        const definition = structuredClone(full);
        (allStates(definition).get(names.query) as State).TimeoutSeconds = 1;
        const stopped: unknown[] = [];
        let reported: unknown;
        const h = handlers(fullConfig(), {
          [names.query]: () => new Promise((resolve) => setTimeout(resolve, 5_000)),
          [names.stop]: (input) => {
            stopped.push(input);
            return stop(input);
          },
          [RUN_STATES.reportFailure]: (input) => {
            reported = input.error;
            return { runId: input.runId, status: 'failed', writeback: {} };
          },
        });
        return { definition, h, stopped, reported: () => reported };
      }

      it('stops the query the start named and fails the run naming the task, the limit, what sets it and the query', async () => {
        const { definition, h, stopped, reported } = timingOut(() => ({}));
        const result = await run(definition, {}, h);
        expect(result).toMatchObject({ status: 'failed', error: 'States.Timeout' });
        expect(stopped).toEqual([{ QueryExecutionId: 'q-1' }]);
        const cause = result.status === 'failed' ? result.cause : '';
        expect(cause).toBe(
          'The Athena query of extract task athena_customers did not end within 32 minutes, the limit of its Task state ' +
            '(athena.queryTimeoutMinutes in the config: raise it there, up to 120, if the query needs longer and the Athena DML query timeout of the account allows it). ' +
            'Query execution q-1 in workgroup roundtrip-full was stopped with StopQueryExecution (it bills the data scanned until then). ' +
            'Look it up by that id in the Athena console for its time queued and running and the data it scanned; ' +
            'a query that runs this long needs less data to read (partitions, fewer columns) or a lighter query',
        );
        // The Report records the same error.
        expect(reported()).toEqual({ Error: 'States.Timeout', Cause: cause });
        expect(h.ran).not.toContain('athena_customers load');
      });

      it('says so, and how to stop it, when StopQueryExecution fails', async () => {
        const { definition, h } = timingOut(() => {
          const error = new Error('Query q-1 is in another account');
          error.name = 'Athena.InvalidRequestException';
          throw error;
        });
        const result = await run(definition, {}, h);
        expect(result).toMatchObject({ status: 'failed', error: 'States.Timeout' });
        expect(result.status === 'failed' ? result.cause : '').toMatch(
          / within 32 minutes, .*Query execution q-1 in workgroup roundtrip-full could not be stopped \(StopQueryExecution failed with Athena\.InvalidRequestException\): it may still be running and billing the data it scans\. Stop it in the Athena console or with: aws athena stop-query-execution --query-execution-id q-1$/,
        );
      });
    });

    describe('an Athena query that ran and failed', () => {
      const query = taskStateNames('athena_customers').query;
      /** The cause of a failed `.sync` query: the GetQueryExecution response as JSON. */
      const failure = (status: Record<string, unknown>, query = 'SELECT email FROM customers'): Error => {
        const error = new Error(
          JSON.stringify({ QueryExecution: { QueryExecutionId: 'q-x', Query: query, Status: status } }),
        );
        error.name = ATHENA_QUERY_FAILED;
        return error;
      };
      const internal = failure({
        State: 'FAILED',
        StateChangeReason: 'GENERIC_INTERNAL_ERROR: worker lost',
        AthenaError: { ErrorCategory: 1, ErrorType: 401, Retryable: true },
      });
      /** Fails the first `failures` queries with `error`; records each query's token. */
      function failing(failures: number, error: Error) {
        const tokens: string[] = [];
        const h = handlers(fullConfig(), {
          [query]: (input) => {
            tokens.push(String(input.ClientRequestToken));
            if (tokens.length <= failures) throw error;
            return {
              QueryExecution: {
                QueryExecutionId: `q-${tokens.length}`,
                ResultConfiguration: { OutputLocation: 's3://r/q.csv' },
                Status: { State: 'SUCCEEDED' },
              },
            };
          },
        });
        return { h, tokens };
      }

      it('runs it again under a new token when Athena says the error is retryable, then loads', async () => {
        const { h, tokens } = failing(1, internal);
        expect((await run(full, {}, h)).status).toBe('succeeded');
        expect(tokens).toHaveLength(2);
        expect(new Set(tokens).size).toBe(2);
        for (const token of tokens) expect(token).toMatch(/^[0-9a-f]{64}$/);
        expect(h.ran.filter((s) => s === 'athena_customers load')).toHaveLength(1);
      });

      it(`stops after ${ATHENA_MAX_QUERIES_PER_TASK} queries and fails the run with the last failure`, async () => {
        const { h, tokens } = failing(Infinity, internal);
        const result = await run(full, {}, h);
        expect(result).toMatchObject({ status: 'failed', error: ATHENA_QUERY_FAILED });
        expect((result as { cause: string }).cause).toContain('GENERIC_INTERNAL_ERROR');
        expect(new Set(tokens).size).toBe(ATHENA_MAX_QUERIES_PER_TASK);
        expect(h.ran).toContain(RUN_STATES.reportFailure);
        expect(h.ran).not.toContain('athena_customers load');
      });

      it.each([
        [
          'Athena says it is not retryable',
          failure({
            State: 'FAILED',
            StateChangeReason: 'COLUMN_NOT_FOUND: line 1:8: Column x cannot be resolved',
            AthenaError: { ErrorCategory: 2, ErrorType: 1006, Retryable: false },
          }),
        ],
        ['it was cancelled', failure({ State: 'CANCELLED', StateChangeReason: 'Query cancelled by user' })],
      ])('fails the run at once when %s', async (_why, error) => {
        const { h, tokens } = failing(Infinity, error);
        const result = await run(full, {}, h);
        expect(result).toMatchObject({ status: 'failed', error: ATHENA_QUERY_FAILED });
        // Athena's answer whole after the task's name, as readableFailure reads it.
        expect(result).toMatchObject({
          cause: expect.stringMatching(
            /^Extract task athena_customers \(extract\[2\]\.query\): \{"QueryExecution"/,
          ),
        });
        expect(tokens).toHaveLength(1);
      });

      it('runs it again when its text says CANCELLED but its state does not', async () => {
        const { h, tokens } = failing(
          1,
          failure(
            {
              State: 'FAILED',
              StateChangeReason: 'GENERIC_INTERNAL_ERROR: worker lost',
              AthenaError: { ErrorCategory: 1, ErrorType: 401, Retryable: true },
            },
            "SELECT email FROM customers WHERE status <> 'CANCELLED'",
          ),
        );
        expect((await run(full, {}, h)).status).toBe('succeeded');
        expect(tokens).toHaveLength(2);
      });

      it('does not rerun a query Athena refused (an API error, which States.TaskFailed also catches)', async () => {
        const malformed = new Error('line 1:8: mismatched input');
        malformed.name = 'Athena.InvalidRequestException';
        const { h, tokens } = failing(Infinity, malformed);
        expect(await run(full, {}, h)).toMatchObject({
          status: 'failed',
          error: 'Athena.InvalidRequestException',
        });
        expect(tokens).toHaveLength(1);
      });

      it('names the task and its config path when Athena refuses the query at its start (a syntax error), and does not retry it', async () => {
        const malformed = new Error("line 1:8: mismatched input 'FROM'");
        malformed.name = 'Athena.InvalidRequestException';
        let starts = 0;
        const h = handlers(fullConfig(), {
          [taskStateNames('athena_customers').start]: () => {
            starts += 1;
            throw malformed;
          },
        });
        expect(await run(full, {}, h)).toEqual({
          status: 'failed',
          error: 'Athena.InvalidRequestException',
          cause: "Extract task athena_customers (extract[2].query): line 1:8: mismatched input 'FROM'",
        });
        expect(starts).toBe(1);
        expect(h.ran).not.toContain(query);
      });

      it.each([
        [
          'an unknown workgroup',
          'WorkGroup roundtrip-full is not found.',
          'Extract task athena_customers: Athena refused to start its query in workgroup roundtrip-full (athena.workgroup): WorkGroup roundtrip-full is not found.',
        ],
        [
          'no result location',
          'No output location provided. An output location is required either through the Workgroup result configuration setting or as an API input.',
          'Extract task athena_customers: Athena refused to start its query for where its result goes (athena.outputLocation, or the result location of workgroup roundtrip-full): No output location provided. An output location is required either through the Workgroup result configuration setting or as an API input.',
        ],
        [
          'a syntax error that quotes a word of the query (WorkGroup)',
          "line 1:8: mismatched input 'WorkGroup'",
          "Extract task athena_customers (extract[2].query): line 1:8: mismatched input 'WorkGroup'",
        ],
        [
          'more than one statement',
          'Only one sql statement is allowed. Got: 2',
          'Extract task athena_customers (extract[2].query): Only one sql statement is allowed. Got: 2',
        ],
      ])(
        'names the config path Athena refused the start for (%s), not the query whatever the reason',
        async (_why, message, cause) => {
          const refused = new Error(message);
          refused.name = 'Athena.InvalidRequestException';
          let starts = 0;
          const h = handlers(fullConfig(), {
            [taskStateNames('athena_customers').start]: () => {
              starts += 1;
              throw refused;
            },
          });
          expect(await run(full, {}, h)).toEqual({
            status: 'failed',
            error: 'Athena.InvalidRequestException',
            cause,
          });
          expect(starts).toBe(1);
          expect(h.ran).not.toContain(query);
        },
      );

      it('names the task before any other Athena error of its start or query, past the retries', async () => {
        for (const state of ['start', 'query'] as const) {
          const denied = new Error(
            'User: arn:aws:sts::1:assumed-role/x is not authorized to perform: athena:StartQueryExecution',
          );
          denied.name = 'Athena.AccessDeniedException';
          const h = handlers(fullConfig(), {
            [taskStateNames('athena_customers')[state]]: () => {
              throw denied;
            },
          });
          expect(await run(full, {}, h)).toEqual({
            status: 'failed',
            error: 'Athena.AccessDeniedException',
            cause: `Extract task athena_customers: ${denied.message}`,
          });
        }
      });

      it('runs it again, as many times, when the cause does not say whether it is retryable', async () => {
        const unknown = new Error('Athena query failed');
        unknown.name = ATHENA_QUERY_FAILED;
        const { h, tokens } = failing(Infinity, unknown);
        // The run's cause names the task and its query's config path before the failure.
        expect(await run(full, {}, h)).toMatchObject({
          status: 'failed',
          cause: 'Extract task athena_customers (extract[2].query): Athena query failed',
        });
        expect(new Set(tokens).size).toBe(ATHENA_MAX_QUERIES_PER_TASK);
      });

      // Athena answers an API call over its rate quota ThrottlingException ("Rate exceeded", any
      // operation), a start over the active-query quota TooManyRequestsException; ThrottlingException
      // is not in Athena's model, and Step Functions may name such an error after the SDK's base
      // exception, as it does Lambda's (Lambda.AWSLambdaException).
      it.each([
        'Athena.TooManyRequestsException',
        'Athena.ThrottlingException',
        'Athena.AmazonAthenaException',
      ])('retries %s on the same request (the same token)', async (name) => {
        const throttled = new Error('Rate exceeded');
        throttled.name = name;
        const { h, tokens } = failing(2, throttled);
        expect((await run(full, {}, h)).status).toBe('succeeded');
        expect(tokens).toHaveLength(3);
        expect(new Set(tokens).size).toBe(1);
      });
    });

    it('retries a transient error, then goes on', async () => {
      let calls = 0;
      const h = handlers(fullConfig(), {
        Transform: (input) => {
          calls += 1;
          if (calls < 3) {
            const error = new Error('connection reset');
            error.name = ERROR_NAMES.transient;
            throw error;
          }
          return { runId: input.runId, files: [] };
        },
      });
      expect((await run(full, {}, h)).status).toBe('succeeded');
      expect(calls).toBe(3);
    });

    it('waits for a function Lambda made Inactive after weeks idle, then goes on', async () => {
      // The first invocation of an Inactive function fails, and those while Lambda makes its
      // network interface again (Pending); then it runs.
      const notReady = [
        'Lambda.ResourceNotReadyException',
        'Lambda.ResourceConflictException',
        'Lambda.ENINotReadyException',
      ];
      const config = fullConfig();
      const plan = taskStateNames(config.writeback[0]?.name as string).plan;
      const calls: Record<string, number> = {};
      const waking =
        (state: string, answer: (input: Record<string, unknown>) => unknown) =>
        (input: Record<string, unknown>): unknown => {
          const call = (calls[state] = (calls[state] ?? 0) + 1);
          const name = notReady[call - 1];
          if (name) {
            const error = new Error(
              call === 1
                ? 'The function is inactive and its VPC connection is no longer available. Wait for the VPC connection to reestablish and try again.'
                : 'The operation cannot be performed at this time. The function is currently in the following state: Pending',
            );
            error.name = name;
            throw error;
          }
          return answer(input);
        };
      const base = handlers(config);
      const h = handlers(config, {
        [RUN_STATES.prepare]: waking(RUN_STATES.prepare, (input) =>
          (base.handlers[RUN_STATES.prepare] as (i: unknown) => unknown)(input),
        ),
        [plan]: waking(plan, (input) => ({ task: input.task, status: 'planned', api: 'collections' })),
      });
      const result = await run(full, {}, h);
      expect(result.status).toBe('succeeded');
      expect(calls).toEqual({ [RUN_STATES.prepare]: 4, [plan]: 4 });
      expect(h.ran).not.toContain(RUN_STATES.reportFailure);
    });

    it('invokes a step again when EC2 throttled or failed Lambda setting up its function’s network, before any of its code ran', async () => {
      // Invoke's EC2ThrottledException and EC2UnexpectedException (HTTP 502): a VPC function whose
      // network interface Lambda makes (again) at the invocation; a moment later it goes through.
      const config = fullConfig();
      const plan = taskStateNames(config.writeback[0]?.name as string).plan;
      const calls: Record<string, number> = {};
      const throttledOnce =
        (state: string, errorName: string, answer: (input: Record<string, unknown>) => unknown) =>
        (input: Record<string, unknown>): unknown => {
          calls[state] = (calls[state] ?? 0) + 1;
          if (calls[state] === 1) {
            const error = new Error(
              'Amazon EC2 throttled Lambda during Lambda function initialization using the execution role provided for the function.',
            );
            error.name = errorName;
            throw error;
          }
          return answer(input);
        };
      const base = handlers(config);
      const h = handlers(config, {
        [RUN_STATES.prepare]: throttledOnce(RUN_STATES.prepare, 'Lambda.EC2ThrottledException', (input) =>
          (base.handlers[RUN_STATES.prepare] as (i: unknown) => unknown)(input),
        ),
        [plan]: throttledOnce(plan, 'Lambda.EC2UnexpectedException', (input) => ({
          task: input.task,
          status: 'planned',
          api: 'collections',
        })),
      });
      const result = await run(full, {}, h);
      expect(result.status).toBe('succeeded');
      expect(calls).toEqual({ [RUN_STATES.prepare]: 2, [plan]: 2 });
      expect(h.ran).not.toContain(RUN_STATES.reportFailure);
    });

    it('runs a push again when its Lambda died, but not a transform', async () => {
      const died = (): Error => {
        const error = new Error('Task timed out after 900.00 seconds');
        error.name = 'Sandbox.Timedout';
        return error;
      };
      const config = fullConfig();
      const push = taskStateNames(config.writeback[0]?.name as string).push;
      let pushes = 0;
      const pushed = await run(
        full,
        {},
        handlers(config, {
          [push]: (input) => {
            pushes += 1;
            if (pushes === 1) throw died();
            return { status: 'collected', task: input.task };
          },
        }),
      );
      expect(pushed.status).toBe('succeeded');
      expect(pushes).toBe(2);

      let transforms = 0;
      const transformed = await run(
        full,
        {},
        handlers(config, {
          Transform: () => {
            transforms += 1;
            throw died();
          },
        }),
      );
      expect(transformed).toMatchObject({ status: 'failed', error: 'Sandbox.Timedout' });
      expect(transforms).toBe(1);
    });

    it('keeps a push waiting while another run’s push of its task goes on, then pushes', async () => {
      const config = fullConfig();
      const push = taskStateNames(config.writeback[0]?.name as string).push;
      let pushes = 0;
      const goingOn = (): Error => {
        const error = new Error(
          'Write-back Contact-upsert: the push of run run-0 goes on over several invocations',
        );
        error.name = ERROR_NAMES.pushGoingOn;
        return error;
      };
      const pushed = await run(
        full,
        {},
        handlers(config, {
          [push]: (input) => {
            pushes += 1;
            // More waits than the 12 attempts of a busy task, fewer than the 60 of this one.
            if (pushes <= 20) throw goingOn();
            return { status: 'collected', task: input.task };
          },
        }),
      );
      expect(pushed.status).toBe('succeeded');
      expect(pushes).toBe(21);
    });

    describe('a write-back task whose step fails', () => {
      /** A step error of `name`, as a Lambda function's error reaches the state machine. */
      const failure = (name: string, message: string): Error => Object.assign(new Error(message), { name });
      /** The full config's stand-ins, with the first write-back task's plan failing with `error`. */
      function firstTaskFails(error: () => Error) {
        const config = fullConfig();
        const [first, second] = config.writeback.map((t) => taskStateNames(t.name));
        const recorded: Record<string, unknown>[] = [];
        let reported: Record<string, unknown> | undefined;
        let stoppedWith: unknown;
        const h = handlers(config, {
          [RUN_STATES.reportFailure]: (input) => {
            stoppedWith = input.error;
            return { runId: input.runId, status: 'failed', writeback: {} };
          },
          [first!.plan]: () => {
            throw error();
          },
          [first!.recordFailure]: (input) => {
            recorded.push(input);
            return { runId: input.runId, task: input.task, taskFailed: true, error: 'recorded' };
          },
          [RUN_STATES.report]: (input) => {
            reported = input;
            return {
              runId: input.runId,
              status: 'failed',
              writeback: {},
              failedTasks: {
                tasks: ['Lead-update'],
                cause: 'A write-back task failed: Lead-update: no column lead_id',
              },
            };
          },
        });
        return {
          first: first!,
          second: second!,
          recorded,
          reported: () => reported,
          stoppedWith: () => stoppedWith,
          h,
        };
      }

      it('records its failure, runs the next task, and fails the run after the report naming it', async () => {
        const { first, second, recorded, reported, h } = firstTaskFails(() =>
          failure(ERROR_NAMES.terminal, 'Write-back Lead-update: no column lead_id'),
        );
        const result = await run(full, {}, h);
        expect(result).toEqual({
          status: 'failed',
          error: ERROR_NAMES.writebackTasksFailed,
          cause: 'A write-back task failed: Lead-update: no column lead_id',
        });
        expect(recorded).toEqual([
          {
            runId: 'run-1',
            task: 'Lead-update',
            error: { Error: ERROR_NAMES.terminal, Cause: 'Write-back Lead-update: no column lead_id' },
          },
        ]);
        expect(h.ran).not.toContain(first.push);
        expect(h.ran).toContain(second.plan);
        expect(h.ran).toContain(second.push);
        expect(reported()).toEqual({ runId: 'run-1' });
        expect(h.ran).not.toContain(RUN_STATES.reportFailure);
      });

      it.each([
        ERROR_NAMES.apiLimit,
        ERROR_NAMES.signInRefused,
        ERROR_NAMES.postgresAuth,
        ERROR_NAMES.postgresDatabaseMissing,
        ERROR_NAMES.busy,
        ERROR_NAMES.transient,
        'Lambda.ServiceException',
      ])('stops the whole run at once on %s, naming the task', async (name) => {
        const { second, recorded, stoppedWith, h } = firstTaskFails(() =>
          failure(name, 'Salesforce said no'),
        );
        // TaskBusyError and the transient ones are retried first, then caught.
        const result = await run(full, {}, h);
        expect(result).toMatchObject({ status: 'failed', error: name });
        expect(recorded).toEqual([]);
        expect(h.ran).toContain(RUN_STATES.reportFailure);
        expect(h.ran).not.toContain(second.plan);
        // Named by the task's `stops the run` state.
        expect(stoppedWith()).toEqual({ Error: name, Cause: 'Salesforce said no', task: 'Lead-update' });
      });

      it('stops the run with the task’s own error when its failure cannot be recorded', async () => {
        const config = fullConfig();
        const [first, second] = config.writeback.map((t) => taskStateNames(t.name));
        let reported: unknown;
        const h = handlers(config, {
          [first!.push]: () => {
            throw failure(ERROR_NAMES.terminal, 'Write-back Lead-update: bad field');
          },
          [first!.recordFailure]: () => {
            throw failure(ERROR_NAMES.terminal, 'Run run-1 is not recorded in roundtrip.runs');
          },
          [RUN_STATES.reportFailure]: (input) => {
            reported = input.error;
            return { runId: input.runId, status: 'failed', writeback: {} };
          },
        });
        const result = await run(full, {}, h);
        expect(result).toMatchObject({ status: 'failed', error: ERROR_NAMES.terminal });
        expect(reported).toEqual({
          Error: ERROR_NAMES.terminal,
          Cause: 'Write-back Lead-update: bad field',
          task: 'Lead-update',
        });
        expect(h.ran).not.toContain(second!.plan);
      });
    });

    it('fails after the report when a write-back passed its failure rate, with the report’s reason as the cause', async () => {
      const reason = 'write-back Lead-update: 3 of 10 records failed (30 %), more than maxFailureRate 10 %';
      const h = handlers(fullConfig(), {
        Report: (input) => ({ runId: input.runId, status: 'failed', reason, writeback: {} }),
      });
      expect(await run(full, {}, h)).toMatchObject({
        status: 'failed',
        error: WRITEBACK_FAILED_ERROR,
        cause: reason,
      });
      // A report without a reason still fails the run, with the general cause.
      const unsaid = handlers(fullConfig(), {
        Report: (input) => ({ runId: input.runId, status: 'failed', writeback: {} }),
      });
      expect(await run(full, {}, unsaid)).toMatchObject({
        status: 'failed',
        error: WRITEBACK_FAILED_ERROR,
        cause: expect.stringMatching(/^A write-back task passed its maxFailureRate/),
      });
    });
  });
});
