/**
 * The Report tells of a failed run on the notification topic (DESIGN.md §1 step 5), through the
 * real SNS client over HTTP to a stand-in: which run and why, the write-back figures, the errors
 * by task, stage and code, the first records with their messages, where to see them all; once
 * per run; nothing for a run that succeeded; a notification that cannot be sent does not change
 * the run's outcome and is sent by a retried report, as is one that PostgreSQL failed.
 */
import { planWriteback, pushWriteback, reportRun } from '../../../lambdas/core/writeback';
import { executionConsoleUrl } from '../../../lambdas/core/writeback/notify';
import { HANDLER_ENV } from '../../../lambdas/handlers/deps';
import { snsNotifier } from '../../../lambdas/handlers/sns-deps';
import { useLocalAwsEnv } from '../../support/aws-env';
import { startSnsStandIn, type SnsStandIn } from '../../support/sns';
import { crashingConnector, SCORE_UPDATE, startWritebackEnv, type WritebackEnv } from './support';

const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:roundtrip-wb-test-Notifications';

describe('the notification of a failed run', () => {
  let env: WritebackEnv;
  let sns: SnsStandIn;
  useLocalAwsEnv();

  beforeAll(async () => {
    env = await startWritebackEnv();
    sns = await startSnsStandIn();
  });
  afterAll(async () => {
    await sns?.stop();
    await env?.stop();
  });
  beforeEach(() => {
    sns.published.length = 0;
    sns.failNext = 0;
    sns.hang = false;
  });

  function deps() {
    const base = env.deps({ writeback: [SCORE_UPDATE] });
    const notifier = snsNotifier({
      config: base.config,
      env: { [HANDLER_ENV.notificationTopicArn]: TOPIC, AWS_ENDPOINT_URL_SNS: sns.endpoint },
      secrets: { getSecret: () => Promise.reject(new Error('no secrets here')) },
      logger: base.logger,
    });
    return { ...base, ...(notifier ? { notifier } : {}) };
  }

  /** A run whose write-back failed more records than maxFailureRate allows. */
  async function failedRun(): Promise<string> {
    const runId = await env.newRun();
    await env.pool.query(
      `UPDATE roundtrip.runs SET summary = $2::jsonb, execution_arn = $3 WHERE run_id = $1`,
      [
        runId,
        JSON.stringify({
          writeback: {
            'Lead-update': {
              sourceRows: 12,
              rejected: 1,
              unchanged: 1,
              changed: 10,
              written: 6,
              failed: 4,
              failureRate: 0.4,
              failureRateExceeded: true,
              apiCalls: 3,
              api: 'collections',
              collectedAt: '2026-01-01T00:00:00.000Z',
            },
          },
        }),
        `arn:aws:states:eu-west-1:123456789012:execution:roundtrip-wb-test:${runId}`,
      ],
    );
    await env.pool.query(
      `INSERT INTO roundtrip.writeback_errors (run_id, task, key, stage, code, message, fields)
       VALUES ($1, 'Lead-update', '00Q000000000003AAA', 'push', 'FIELD_CUSTOM_VALIDATION_EXCEPTION', 'Score must be below 100', '{LeadScore__c}'),
              ($1, 'Lead-update', '00Q000000000001AAA', 'push', 'FIELD_CUSTOM_VALIDATION_EXCEPTION', 'Score must be below 100', '{LeadScore__c}'),
              ($1, 'Lead-update', '00Q000000000002AAA', 'push', 'FIELD_CUSTOM_VALIDATION_EXCEPTION', E'Score must\\nbe below 100', '{LeadScore__c}'),
              ($1, 'Lead-update', '00Q000000000004AAA', 'push', 'UNABLE_TO_LOCK_ROW', 'unable to obtain exclusive access to this record', '{}'),
              ($1, 'Lead-update', NULL, 'plan', 'MISSING_KEY', 'the key column "Id" is empty', '{}')`,
      [runId],
    );
    return runId;
  }

  it('says which run failed and why, the errors by code and the first records, once', async () => {
    const runId = await failedRun();
    const d = deps();
    const output = await reportRun(d, { runId });
    expect(output.status).toBe('failed');
    expect(sns.published).toHaveLength(1);
    const [sent] = sns.published;
    expect(sent?.topicArn).toBe(TOPIC);
    expect(sent?.subject).toBe(`roundtrip wb-test: run ${runId} failed`);
    expect(sent?.message.split('\n')).toEqual([
      `roundtrip pipeline wb-test: run ${runId} failed.`,
      '',
      'Why: write-back Lead-update: 4 of 10 records failed (40.00 %), more than maxFailureRate 5.00 % (writeback[0].maxFailureRate); write-back Lead-update: 1 of 12 source rows were rejected before sending (8.33 %), more than maxRejectRate 5.00 % (writeback[0].maxRejectRate)',
      '',
      'Write-back:',
      '  Lead-update: 10 to send, 6 written, 4 failed in Salesforce, 1 rejected before sending; 3 API calls (more failed than maxFailureRate allows) (more rejected than maxRejectRate allows)',
      '',
      'Errors by task, stage and code:',
      '  Lead-update push FIELD_CUSTOM_VALIDATION_EXCEPTION: 3',
      '  Lead-update plan MISSING_KEY: 1',
      '  Lead-update push UNABLE_TO_LOCK_ROW: 1',
      '',
      'The first 5 records:',
      '  Lead-update (no key): MISSING_KEY the key column "Id" is empty',
      '  Lead-update 00Q000000000001AAA: FIELD_CUSTOM_VALIDATION_EXCEPTION Score must be below 100 [LeadScore__c]',
      '  Lead-update 00Q000000000002AAA: FIELD_CUSTOM_VALIDATION_EXCEPTION Score must be below 100 [LeadScore__c]',
      '  Lead-update 00Q000000000003AAA: FIELD_CUSTOM_VALIDATION_EXCEPTION Score must be below 100 [LeadScore__c]',
      '  Lead-update 00Q000000000004AAA: UNABLE_TO_LOCK_ROW unable to obtain exclusive access to this record',
      '',
      'Every record:',
      `  SELECT task, stage, key, salesforce_id, code, message, fields FROM roundtrip.writeback_errors WHERE run_id = '${runId}';`,
      `  or: npx roundtrip errors --run ${runId} --csv (with the pipeline's --config and --secrets)`,
      '',
      `The run: SELECT * FROM roundtrip.runs WHERE run_id = '${runId}';`,
      `The execution: https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/arn:aws:states:eu-west-1:123456789012:execution:roundtrip-wb-test:${runId}`,
    ]);

    // A retried report sends nothing more.
    await reportRun(d, { runId });
    expect(sns.published).toHaveLength(1);
  });

  it('sends nothing for a run that succeeded', async () => {
    const runId = await env.newRun();
    expect((await reportRun(deps(), { runId })).status).toBe('succeeded');
    expect(sns.published).toEqual([]);
  });

  it('tells of a run that failed in a step, with the step’s error', async () => {
    const runId = await env.newRun();
    await reportRun(deps(), {
      runId,
      error: {
        Error: 'TerminalError',
        Cause: 'Run refused: it is forecast to make 900 Salesforce API calls',
      },
    });
    // The message, without the class name the state machine matches on.
    expect(sns.published[0]?.message).toContain(
      'Why: Run refused: it is forecast to make 900 Salesforce API calls\n',
    );
    expect(sns.published[0]?.message).not.toContain('Errors by task');
  });

  it('tells of a deployed step’s error by its message: the Cause is the Lambda runtime’s error payload', async () => {
    const runId = await env.newRun();
    const message = 'Write-back Lead-update: the source "public"."lead_reverse" has no column "lead_score"';
    const output = await reportRun(deps(), {
      runId,
      error: {
        Error: 'TerminalError',
        Cause: JSON.stringify({
          errorType: 'TerminalError',
          errorMessage: message,
          trace: [`TerminalError: ${message}`, '    at planWriteback (/var/task/index.mjs:2:31337)'],
        }),
      },
    });
    expect(output.reason).toBe(`TerminalError: ${message}`);
    const { rows } = await env.pool.query('SELECT error FROM roundtrip.runs WHERE run_id = $1', [runId]);
    expect(rows[0].error).toBe(`TerminalError: ${message}`);
    expect(sns.published[0]?.message).toContain(`Why: ${message}\n`);
    expect(sns.published[0]?.message).not.toContain('/var/task');
  });

  it('tells of a failed Athena query by Athena’s reason, not its whole GetQueryExecution answer', async () => {
    const runId = await env.newRun();
    const cause = JSON.stringify({
      QueryExecution: {
        QueryExecutionId: 'q-123',
        Query: 'SELECT * FROM marketing.customerz',
        Status: {
          State: 'FAILED',
          StateChangeReason:
            "TABLE_NOT_FOUND: line 1:15: Table 'awsdatacatalog.marketing.customerz' does not exist",
          AthenaError: {
            ErrorCategory: 2,
            ErrorType: 1006,
            Retryable: false,
            ErrorMessage:
              "TABLE_NOT_FOUND: line 1:15: Table 'awsdatacatalog.marketing.customerz' does not exist",
          },
        },
        ResultConfiguration: { OutputLocation: 's3://results/q-123.csv' },
      },
    });
    const output = await reportRun(deps(), { runId, error: { Error: 'States.TaskFailed', Cause: cause } });
    const reason =
      "States.TaskFailed: Athena query q-123 FAILED: TABLE_NOT_FOUND: line 1:15: Table 'awsdatacatalog.marketing.customerz' does not exist";
    expect(output.reason).toBe(reason);
    expect(sns.published[0]?.message).toContain(
      "Why: Athena query q-123 FAILED: TABLE_NOT_FOUND: line 1:15: Table 'awsdatacatalog.marketing.customerz' does not exist",
    );
    const { rows } = await env.pool.query('SELECT error FROM roundtrip.runs WHERE run_id = $1', [runId]);
    expect(rows[0].error).toBe(reason);
  });

  it('counts what a push that died had written from its ledger, and names the records sent with no outcome', async () => {
    const ids = env.sf.store.seed(
      'Lead',
      Array.from({ length: 1200 }, (_, i) => ({ LastName: `Cnt ${i}`, Company: 'Cnt' })),
    );
    await env.pool.query(`CREATE TABLE IF NOT EXISTS lead_scores ("Id" text, score integer)`);
    await env.pool.query('DELETE FROM lead_scores');
    await env.pool.query(`INSERT INTO lead_scores SELECT id, 42 FROM unnest($1::text[]) AS id`, [ids]);
    const d = deps();
    const runId = await env.newRun();
    await planWriteback(d, { runId, task: 'Lead-update' });
    // The first Composite call (1,000 records) is answered and recorded; the Lambda dies after
    // the second one reached Salesforce, and the step is not retried.
    let writes = 0;
    await expect(
      pushWriteback(
        {
          ...d,
          salesforce: crashingConnector(env.connector, (_op, method) => method !== 'GET' && ++writes === 2),
        },
        { runId, task: 'Lead-update' },
      ),
    ).rejects.toThrow(/simulated crash/);

    const output = await reportRun(d, { runId, error: { Error: 'States.Timeout', Cause: 'Task timed out' } });

    expect(output.writeback['Lead-update']).toMatchObject({
      changed: 1200,
      written: 1000,
      failed: 0,
      outcomeUnknown: 200,
    });
    const { rows } = await env.pool.query(`SELECT summary FROM roundtrip.runs WHERE run_id = $1`, [runId]);
    expect(rows[0].summary.writeback['Lead-update']).toMatchObject({ written: 1000, outcomeUnknown: 200 });
    const message = sns.published[0]?.message ?? '';
    expect(message).toContain(
      '  Lead-update: 1,200 to send, 1,000 written, 0 failed in Salesforce, 0 rejected before sending, 200 sent with no outcome recorded; ',
    );
    expect(message).toContain(
      `  SELECT task, key, salesforce_id, job_id FROM roundtrip.writeback_plans WHERE run_id = '${runId}' AND status = 'sent';`,
    );
    // What becomes of them: the next plan sends these update records again once their call is over.
    expect(message).toContain('update and upsert records sent by a call are sent again');
  });

  it('counts the rows held back apart from those rejected', async () => {
    const runId = await env.newRun();
    await env.pool.query(`UPDATE roundtrip.runs SET summary = $2::jsonb WHERE run_id = $1`, [
      runId,
      JSON.stringify({
        writeback: {
          'Lead-update': { sourceRows: 10, rejected: 0, heldBack: 3, unchanged: 7, changed: 0, api: 'none' },
        },
      }),
    ]);

    const output = await reportRun(deps(), {
      runId,
      error: { Error: 'TransientError', Cause: 'Salesforce is unreachable' },
    });

    expect(output.writeback['Lead-update']).toMatchObject({
      rejected: 0,
      heldBack: 3,
      rejectRateExceeded: false,
    });
    expect(sns.published[0]?.message).toContain(
      "  Lead-update: 0 to send, 0 written, 0 failed in Salesforce, 0 rejected before sending, 3 held back for another run's send of their key; 0 API calls\n",
    );
  });

  it('keeps the run’s outcome when the topic cannot be reached; a later report of the run (a retried step) sends it', async () => {
    const runId = await failedRun();
    sns.failNext = 10; // more than the SDK's attempts
    const d = deps();
    expect((await reportRun(d, { runId })).status).toBe('failed');
    expect(sns.published).toEqual([]);
    expect(
      env.logger.records.find(
        (r) =>
          r.message === 'Could not send the notification of the failed run' && r.attributes.runId === runId,
      ),
    ).toBeDefined();
    sns.failNext = 0;
    await reportRun(d, { runId });
    expect(sns.published).toHaveLength(1);
  });

  it('fails the report transiently when PostgreSQL drops the connection as it tells of the run; the retry sends it, once', async () => {
    const runId = await failedRun();
    const d = deps();
    // The connection drops under the notification's first statement (it reads whether the run was
    // told of), once, as a network or a server restart drops it.
    let dropped = false;
    const pg = new Proxy(d.pg, {
      get(target, prop) {
        if (prop !== 'connect') return Reflect.get(target, prop, target) as unknown;
        return async () => {
          const client = await target.connect();
          return new Proxy(client, {
            get(c, p) {
              const value: unknown = Reflect.get(c, p, c);
              if (p !== 'query')
                return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(c) : value;
              return (...args: unknown[]) => {
                if (!dropped && typeof args[0] === 'string' && args[0].includes(`'notifiedAt'`)) {
                  dropped = true;
                  return Promise.reject(new Error('Connection terminated unexpectedly'));
                }
                return (c.query as (...a: unknown[]) => unknown)(...args);
              };
            },
          });
        };
      },
    });
    await expect(reportRun({ ...d, pg }, { runId })).rejects.toMatchObject({ name: 'TransientError' });
    expect(sns.published).toEqual([]);
    expect((await reportRun(d, { runId })).status).toBe('failed');
    expect(sns.published).toHaveLength(1);
    await reportRun(d, { runId });
    expect(sns.published).toHaveLength(1);
  });

  it('gives up on a topic that does not answer within seconds, and the report still ends', async () => {
    const runId = await failedRun();
    sns.hang = true;
    const started = Date.now();
    expect((await reportRun(deps(), { runId })).status).toBe('failed');
    // Two attempts of at most 5 s each (SNS_TIMEOUTS, SNS_MAX_ATTEMPTS), not a Lambda timeout.
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(
      env.logger.records.find(
        (r) =>
          r.message === 'Could not send the notification of the failed run' && r.attributes.runId === runId,
      )?.attributes.error,
    ).toMatch(/requestTimeout/);
  }, 60_000);

  it('links the execution only for an ARN of a Step Functions execution', () => {
    expect(executionConsoleUrl('arn:aws:states:us-east-1:123456789012:execution:m:run-1')).toBe(
      'https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#/v2/executions/details/arn:aws:states:us-east-1:123456789012:execution:m:run-1',
    );
    expect(executionConsoleUrl(null)).toBeUndefined();
    expect(executionConsoleUrl('local:run-1')).toBeUndefined();
    // Other partitions have consoles of their own (console.amazonaws.cn, …): no link rather than a wrong one.
    expect(
      executionConsoleUrl('arn:aws-cn:states:cn-north-1:123456789012:execution:m:run-1'),
    ).toBeUndefined();
    expect(
      executionConsoleUrl('arn:aws-us-gov:states:us-gov-west-1:123456789012:execution:m:run-1'),
    ).toBeUndefined();
  });
});
