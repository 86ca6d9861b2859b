/**
 * The Report tells of a failed run on the notification topic (DESIGN.md §1 step 5), through the
 * real SNS client over HTTP to a stand-in: which run and why, the write-back figures, the errors
 * by task, stage and code, the first records with their messages, where to see them all; once
 * per run; nothing for a run that succeeded; a notification that cannot be sent does not change
 * the run's outcome and is sent by a retried report, as is one that PostgreSQL failed. A run that
 * succeeded is told of when it held back keys its previous run held back too (a Bulk job that
 * Salesforce does not finish), or when its upserts created second records (the key changed in
 * Salesforce), and only then. An insert run whose new rows were all rejected is
 * told of, however many rows its source inserted before.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { Tracer } from '@aws-lambda-powertools/tracer';
import type { WritebackTaskInput } from '../../../lambdas/config';
import { withClient } from '../../../lambdas/connectors/postgres';
import type { ReportOutput } from '../../../lambdas/core/contracts';
import { recordTaskResult } from '../../../lambdas/core/run-state';
import { planWriteback, pushWriteback, reportRun, runWriteback } from '../../../lambdas/core/writeback';
import { executionConsoleUrl, HELD_BACK_NOTICE_EVERY_HOURS } from '../../../lambdas/core/writeback/notify';
import { givenDeps, HANDLER_ENV } from '../../../lambdas/handlers/deps';
import { createHandler, STEP } from '../../../lambdas/handlers/report';
import { snsNotifier } from '../../../lambdas/handlers/sns-deps';
import {
  instrumentStep,
  METRIC_NAMES,
  METRICS_NAMESPACE,
  serviceName,
} from '../../../lambdas/shared/observability';
import { useLocalAwsEnv } from '../../support/aws-env';
import { SNS_REFUSALS, startSnsStandIn, type SnsStandIn } from '../../support/sns';
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
    sns.refuse = undefined;
    sns.hang = false;
  });

  function deps(task: WritebackTaskInput = SCORE_UPDATE) {
    const base = env.deps({ writeback: [task] });
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

  it('gives the figures of the run’s extracts, and the warnings of their loads, read from its summary', async () => {
    const runId = await env.newRun();
    await withClient(env.pool, async (client) => {
      await recordTaskResult(client, runId, 'Lead', {
        status: 'loaded',
        runId,
        task: 'Lead',
        rows: 12,
        inserted: 10,
        updated: 2,
        deleted: 1,
        deletes: 'flag',
        api: 'rest',
        apiCalls: 2,
        full: false,
        watermark: null,
      });
      await recordTaskResult(client, runId, 'orders', {
        status: 'loaded',
        runId,
        task: 'orders',
        refresh: 'merge',
        rows: 5,
        inserted: 4,
        updated: 0,
        deleted: 0,
        apiCalls: 3,
        s3Reads: 1,
        duplicateKeys: {
          table: 'public.orders',
          key: ['order_id'],
          droppedRows: 1,
          keys: 1,
          examples: [{ key: { order_id: '7' }, rows: 2 }],
        },
      });
    });
    await reportRun(deps(), { runId, error: { Error: 'TerminalError', Cause: 'the transform failed' } });
    const lines = sns.published[0]?.message.split('\n') ?? [];
    const at = lines.indexOf('Extract:');
    expect(lines.slice(at, at + 4)).toEqual([
      'Extract:',
      '  Lead: 12 rows read, 12 written, 1 flagged deleted; 2 API calls',
      '  orders: 5 rows read, 4 written; 4 Athena/S3 calls',
      "    Extract task orders: the query returned 1 key in more than one row (order_id 7: 2 rows), 1 row more than keys: public.orders kept one row a key, the last in the result file, which Athena orders arbitrarily without ORDER BY, so which row is kept may change from run to run; make the task's query return one row a key, the version you want: SELECT <its columns> FROM (SELECT …, row_number() OVER (PARTITION BY order_id ORDER BY <a column that orders versions> DESC) AS rn FROM …) WHERE rn = 1. Set duplicateKeys: 'fail' on the task to fail instead of loading",
    ]);
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

  it('tells of an insert run whose new rows were all rejected, however many rows it inserted before', async () => {
    const insert: WritebackTaskInput = {
      to: 'salesforce',
      name: 'Lead-insert',
      object: 'Lead',
      from: 'insert_src',
      mode: 'insert',
      key: 'External_Id__c',
      keyColumn: 'ext',
      fields: { LastName: 'last_name', Company: 'company', Email: 'email' },
    };
    const d = deps(insert);
    await env.pool.query(`CREATE TABLE insert_src (ext text, last_name text, company text, email text)`);
    const add = (from: number, to: number, email: string) =>
      env.pool.query(
        `INSERT INTO insert_src SELECT 'ins-' || i, 'Name ' || i, 'Initech', $1 FROM generate_series($2::int, $3::int) AS i`,
        [email, from, to],
      );
    await add(1, 40, 'ok@example.com');
    const first = await env.newRun();
    await runWriteback(d, { runId: first, task: 'Lead-insert' });
    expect(await reportRun(d, { runId: first })).toMatchObject({ status: 'succeeded' });
    expect(sns.published).toHaveLength(0);

    // 2 new rows, both with an email Salesforce would refuse: 2 of 42 source rows, 2 of 2 new ones.
    await add(41, 42, 'not-an-email');
    const runId = await env.newRun();
    await runWriteback(d, { runId, task: 'Lead-insert' });
    expect(await reportRun(d, { runId })).toMatchObject({ status: 'failed' });

    expect(sns.published).toHaveLength(1);
    expect(sns.published[0]?.subject).toBe(`roundtrip wb-test: run ${runId} failed`);
    expect(sns.published[0]?.message.split('\n').slice(2, 6)).toEqual([
      'Why: write-back Lead-insert: 2 of 2 source rows with a key that has no record yet were rejected before sending (100.00 %; the 40 rows whose key has a record already, inserted before or found in the extracted copy, are not counted), more than maxRejectRate 5.00 % (writeback[0].maxRejectRate)',
      '',
      'Write-back:',
      '  Lead-insert: 0 to send, 0 written, 0 failed in Salesforce, 2 rejected before sending; 0 API calls (more rejected than maxRejectRate allows)',
    ]);
  });

  describe('upserts written as a second record (the key changed in Salesforce)', () => {
    const upsert: WritebackTaskInput = {
      to: 'salesforce',
      name: 'Lead-upsert',
      object: 'Lead',
      from: 'second_src',
      mode: 'upsert',
      key: 'External_Id__c',
      keyColumn: 'ext',
      fields: { LastName: 'last_name', Company: 'company', LeadScore__c: 'score' },
    };

    /**
     * Three leads keyed `<prefix>-1` … `-3`, upserted by a first run (updated: nothing to tell);
     * then the key of the second changed in Salesforce and every score by the source: the next
     * upsert of the old key creates a second record. Answers the old record's Id.
     */
    async function keyChangedAfterSync(d: ReturnType<typeof deps>, prefix: string): Promise<string> {
      const ids = env.sf.store.seed(
        'Lead',
        [1, 2, 3].map((i) => ({
          LastName: `${prefix} ${i}`,
          Company: 'Second',
          External_Id__c: `${prefix}-${i}`,
        })),
      );
      await env.pool.query(
        `CREATE TABLE IF NOT EXISTS second_src (ext text, last_name text, company text, score int)`,
      );
      await env.pool.query('DELETE FROM second_src');
      await env.pool.query(
        `INSERT INTO second_src SELECT $1 || '-' || i, $1 || ' ' || i, 'Second', 1 FROM generate_series(1, 3) AS i`,
        [prefix],
      );
      const first = await env.newRun();
      await runWriteback(d, { runId: first, task: 'Lead-upsert' });
      const reported = await reportRun(d, { runId: first });
      expect(reported).toMatchObject({ status: 'succeeded' });
      // None: absent from the figures, as the other rare counts' notes are from the message.
      expect(reported.writeback['Lead-upsert']).not.toHaveProperty('secondRecords');
      // Upserts that updated their records: nothing to tell.
      expect(sns.published).toEqual([]);
      const old = ids[1] as string;
      env.sf.store.update('Lead', [{ Id: old, External_Id__c: `${prefix}-2-renamed` }]);
      await env.pool.query('UPDATE second_src SET score = 2');
      return old;
    }

    const newRecordOf = (key: string): string =>
      [...env.sf.store.all('Lead')].find((r) => r.External_Id__c === key)?.Id as string;

    it('tells of a run that succeeded: which task, how many, the keys with both Ids and the command that lists them', async () => {
      const d = deps(upsert);
      const old = await keyChangedAfterSync(d, 'sr');
      const runId = await env.newRun();
      await runWriteback(d, { runId, task: 'Lead-upsert' });

      const output = await reportRun(d, { runId });

      expect(output).toMatchObject({
        status: 'succeeded',
        writeback: { 'Lead-upsert': { written: 3, failed: 0, secondRecords: 1 } },
      });
      const second = newRecordOf('sr-2');
      expect(second).not.toBe(old);
      expect(sns.published).toHaveLength(1);
      const [sent] = sns.published;
      expect(sent?.subject).toBe(`roundtrip wb-test: run ${runId} succeeded, 1 second record created`);
      expect(sent?.message.split('\n')).toEqual([
        `roundtrip pipeline wb-test: run ${runId} succeeded, but 1 upsert created a second record in Salesforce, the key of the record synced before having been changed there.`,
        '',
        'Write-back:',
        '  Lead-upsert: 3 to send, 3 written (1 of them as a second record), 0 failed in Salesforce, 0 rejected before sending; 2 API calls',
        '',
        'Second records: 1 upsert of Lead-upsert created a second record in Salesforce (KEY_CHANGED_RECORD_CREATED): the key field of the record the task had synced with that key was changed there, and Salesforce, finding no record with the key, created one. The values were written, to the new record, which roundtrip.sync_state now holds for the key; the old record keeps the values it had.',
        '  The first key:',
        `    sr-2: new record ${second}, old record ${old}`,
        '  Every one, with what the old record holds and the ways out:',
        `    npx roundtrip errors --run ${runId} --task Lead-upsert --code KEY_CHANGED_RECORD_CREATED (with the pipeline's --config and --secrets)`,
        '',
        "What to do with a second record: merge the two records in Salesforce (keeping the one other systems link to); or, if the key was changed by mistake, delete the new record and set the key back on the old one; or, if the new key is right, make the source write it and delete the new record. Each record's message says which Ids and values.",
        '',
        `The run: SELECT * FROM roundtrip.runs WHERE run_id = '${runId}';`,
      ]);

      // Once per run; and the next run, which sends nothing, tells of nothing.
      await reportRun(d, { runId });
      const next = await env.newRun();
      await runWriteback(d, { runId: next, task: 'Lead-upsert' });
      expect(await reportRun(d, { runId: next })).toMatchObject({ status: 'succeeded' });
      expect(sns.published).toHaveLength(1);
    });

    it('tells of them in a failed run apart from its errors, those not looked up yet said so', async () => {
      const d = deps(upsert);
      const old = await keyChangedAfterSync(d, 'sf');
      const runId = await env.newRun();
      await planWriteback(d, { runId, task: 'Lead-upsert' });
      // The push records the results and dies with the look-up of the old record, never retried.
      const crashing = crashingConnector(env.connector, (operation) => operation === 'query');
      await expect(
        pushWriteback({ ...d, salesforce: crashing }, { runId, task: 'Lead-upsert' }),
      ).rejects.toThrow(/simulated crash after/);

      const output = await reportRun(d, {
        runId,
        error: { Error: 'TransientError', Cause: 'retries spent' },
      });

      expect(output).toMatchObject({ status: 'failed', writeback: { 'Lead-upsert': { written: 3 } } });
      // Not looked up yet: not counted as second records (the next plan looks them up).
      expect(output.writeback['Lead-upsert']).not.toHaveProperty('secondRecords');
      expect(sns.published).toHaveLength(1);
      const message = sns.published[0]?.message ?? '';
      expect(message).not.toContain('Errors by task, stage and code');
      expect(message).toContain(
        '\nSecond records: 1 upsert of Lead-upsert was created beside a record the task had synced with its key, not looked up yet (CREATED_BESIDE_SYNCED_RECORD: the step ended before it; the next plan of the task looks them up and rewrites the rows of this run): each old record is either live under another key (a second record) or deleted in Salesforce (an ordinary re-create).\n' +
          '  The first key:\n' +
          `    sf-2: new record ${newRecordOf('sf-2')}, old record ${old} (not looked up yet)\n` +
          '  Every one, with what the old record holds and the ways out:\n' +
          `    npx roundtrip errors --run ${runId} --task Lead-upsert --code CREATED_BESIDE_SYNCED_RECORD (with the pipeline's --config and --secrets)\n`,
      );
    });

    it('counts them in the figures of a failed run whose push died after the look-up, before storing its own', async () => {
      const d = deps(upsert);
      await keyChangedAfterSync(d, 'sd');
      const runId = await env.newRun();
      await planWriteback(d, { runId, task: 'Lead-upsert' });
      // The push looks the old record up, then its Lambda dies as it counts its figures (the first
      // statement on the pool after the look-up's transaction), never retried: none is stored.
      const pg = new Proxy(d.pg, {
        get(target, prop) {
          const value: unknown = Reflect.get(target, prop, target);
          if (prop !== 'query')
            return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
          return (...args: unknown[]) =>
            typeof args[0] === 'string' &&
            args[0].includes('count(*)::int AS n FROM roundtrip.writeback_errors')
              ? Promise.reject(new Error('simulated crash: the Lambda died as the push counted its figures'))
              : (target.query as (...a: unknown[]) => unknown)(...args);
        },
      });
      await expect(pushWriteback({ ...d, pg }, { runId, task: 'Lead-upsert' })).rejects.toThrow(
        /simulated crash/,
      );
      const { rows: reported } = await env.pool.query(
        `SELECT code FROM roundtrip.writeback_errors WHERE run_id = $1`,
        [runId],
      );
      expect(reported).toEqual([{ code: 'KEY_CHANGED_RECORD_CREATED' }]);

      const output = await reportRun(d, {
        runId,
        error: { Error: 'TransientError', Cause: 'retries spent' },
      });

      // Counted from what the push left, as its written and failed are.
      expect(output).toMatchObject({
        status: 'failed',
        writeback: { 'Lead-upsert': { written: 3, failed: 0, secondRecords: 1 } },
      });
      const { rows } = await env.pool.query<{ n: unknown }>(
        `SELECT summary->'writeback'->'Lead-upsert'->'secondRecords' AS n FROM roundtrip.runs WHERE run_id = $1`,
        [runId],
      );
      expect(rows).toEqual([{ n: 1 }]);
      expect(sns.published).toHaveLength(1);
      expect(sns.published[0]?.message).toContain(
        '\n  Lead-upsert: 3 to send, 3 written (1 of them as a second record), 0 failed in Salesforce,',
      );
    });
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

  describe('a notification the topic refuses', () => {
    /** One line of the embedded metric format, as the Lambda's log holds it. */
    interface EmfLine {
      readonly _aws: {
        CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string }[] }[];
      };
      readonly [key: string]: unknown;
    }

    /**
     * The Report step as its Lambda runs it: its handler wrapped by instrumentStep with Powertools'
     * own metrics, whose EMF lines (written to stdout, the Lambda's log) are caught.
     */
    async function reportInvocation(
      d: ReturnType<typeof deps>,
      runId: string,
    ): Promise<{ output: ReportOutput; emf: EmfLine[] }> {
      const service = serviceName('wb-test');
      const obs = {
        logger: new Logger({ serviceName: service, logLevel: 'SILENT' }),
        metrics: new Metrics({ namespace: METRICS_NAMESPACE, serviceName: service }),
        tracer: new Tracer({ serviceName: service, enabled: false }),
      };
      const lines: string[] = [];
      const write = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
        lines.push(...String(chunk).split('\n'));
        return true;
      });
      try {
        // A report (not a task's failure: no `task` in the event).
        const output = (await instrumentStep(
          STEP,
          createHandler(givenDeps(d)),
          () => obs,
        )({ runId })) as ReportOutput;
        return {
          output,
          emf: lines
            .filter((l) => l.startsWith('{') && l.includes('"_aws"'))
            .map((l) => JSON.parse(l) as EmfLine),
        };
      } finally {
        write.mockRestore();
      }
    }

    /** The NotificationsFailed values in `emf`, each checked to carry the pipeline's dimension. */
    function notificationsFailed(emf: readonly EmfLine[]): unknown[] {
      const name = METRIC_NAMES.notificationsFailed;
      const lines = emf.filter((e) =>
        e._aws.CloudWatchMetrics.some((m) => m.Metrics.some((x) => x.Name === name)),
      );
      for (const line of lines) {
        expect(line._aws.CloudWatchMetrics).toEqual([
          expect.objectContaining({ Namespace: METRICS_NAMESPACE, Dimensions: [['service']] }),
        ]);
        expect(line.service).toBe('roundtrip-wb-test');
      }
      return lines.map((line) => line[name]);
    }

    it('emits NotificationsFailed once per report that could not send it, and nothing once one sends it', async () => {
      const runId = await failedRun();
      const d = deps();
      // The topic's key refuses, the topic is deleted, the Report may not publish: each is one
      // attempt (SNS's answer is final, the SDK does not retry it), one failed notification.
      for (const refusal of [
        SNS_REFUSALS.kmsAccessDenied,
        SNS_REFUSALS.notFound,
        SNS_REFUSALS.authorizationError,
      ]) {
        sns.refuse = refusal;
        const requests = sns.requests;
        const { output, emf } = await reportInvocation(d, runId);
        expect(output).toMatchObject({ status: 'failed', notificationFailed: true });
        expect(sns.requests).toBe(requests + 1);
        expect(notificationsFailed(emf)).toEqual([1]);
        expect(
          env.logger.records.filter(
            (r) =>
              r.message === 'Could not send the notification of the failed run' &&
              r.attributes.runId === runId &&
              r.attributes.error === refusal.message,
          ),
        ).toHaveLength(1);
      }
      expect(sns.published).toEqual([]);
      // deploy.md's query of the failed runs no notification reached lists it.
      const untold = async (): Promise<string[]> =>
        (
          await env.pool.query<{ run_id: string }>(
            `SELECT run_id, started_at, error FROM roundtrip.runs WHERE status = 'failed' AND NOT coalesce(summary ? 'notifiedAt', false) ORDER BY started_at DESC`,
          )
        ).rows.map((r) => r.run_id);
      expect(await untold()).toContain(runId);

      // The topic takes it: the notification is sent, and nothing is counted.
      sns.refuse = undefined;
      const sent = await reportInvocation(d, runId);
      expect(sent.output.status).toBe('failed');
      expect(sent.output.notificationFailed).toBeUndefined();
      expect(sns.published).toHaveLength(1);
      expect(notificationsFailed(sent.emf)).toEqual([]);
      expect(await untold()).not.toContain(runId);
      // The report's other figures still go out: the metrics were published, only not this one.
      expect(
        sent.emf.some((e) =>
          e._aws.CloudWatchMetrics.some((m) =>
            m.Metrics.some((x) => x.Name === METRIC_NAMES.salesforceApiCalls),
          ),
        ),
      ).toBe(true);

      // Told of already: no notification due, none counted, also with the topic refusing again.
      sns.refuse = SNS_REFUSALS.kmsAccessDenied;
      const again = await reportInvocation(d, runId);
      expect(again.output.notificationFailed).toBeUndefined();
      expect(notificationsFailed(again.emf)).toEqual([]);
      expect(sns.published).toHaveLength(1);
    });

    it('emits nothing for a run with nothing to tell, the topic refusing or not', async () => {
      sns.refuse = SNS_REFUSALS.notFound;
      const runId = await env.newRun();
      const requests = sns.requests;
      const { output, emf } = await reportInvocation(deps(), runId);
      expect(output.status).toBe('succeeded');
      expect(output.notificationFailed).toBeUndefined();
      expect(sns.requests).toBe(requests);
      expect(notificationsFailed(emf)).toEqual([]);
    });
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

  describe('records held back by two runs in a row', () => {
    const bulkUpdate = { ...SCORE_UPDATE, bulkThreshold: 5 };

    /** Six leads scored by `lead_scores`, their Ids in key order. */
    async function sixLeads(prefix: string): Promise<string[]> {
      const ids = env.sf.store
        .seed(
          'Lead',
          Array.from({ length: 6 }, (_, i) => ({ LastName: `${prefix} ${i + 1}`, Company: 'Held' })),
        )
        .sort();
      await env.pool.query(`CREATE TABLE IF NOT EXISTS lead_scores ("Id" text, score integer)`);
      await env.pool.query('DELETE FROM lead_scores');
      await env.pool.query(`INSERT INTO lead_scores SELECT id, 7 FROM unnest($1::text[]) AS id`, [ids]);
      return ids;
    }

    /**
     * A run that closes a Bulk job of the six leads, which Salesforce holds `holdMs` before it
     * processes it, and ends (its retries spent) before collecting it: the next plans hold the
     * keys back (OUTCOME_PENDING) until the job is finished. Its failure's notification is let go.
     */
    async function uncollectedJob(
      d: ReturnType<typeof deps>,
      holdMs: number,
    ): Promise<{ dead: string; jobId: string }> {
      env.sf.faults.set({ bulkJobDelayMs: holdMs });
      const dead = await env.newRun();
      expect(await planWriteback(d, { runId: dead, task: 'Lead-update' })).toMatchObject({
        changed: 6,
        api: 'bulk',
      });
      expect(await pushWriteback(d, { runId: dead, task: 'Lead-update' })).toMatchObject({
        status: 'bulk-pending',
      });
      env.sf.faults.clear();
      await reportRun(d, { runId: dead, error: { Error: 'TransientError', Cause: 'retries spent' } });
      const { rows } = await env.pool.query<{ job_id: string }>(
        `SELECT job_id FROM roundtrip.writeback_jobs WHERE run_id = $1`,
        [dead],
      );
      sns.published.length = 0;
      return { dead, jobId: rows[0]?.job_id ?? '' };
    }

    /** A run that plans the task and reports: every key held back, it succeeds. */
    async function heldRun(d: ReturnType<typeof deps>): Promise<string> {
      const runId = await env.newRun();
      expect(await planWriteback(d, { runId, task: 'Lead-update' })).toMatchObject({
        heldBack: 6,
        changed: 0,
      });
      return runId;
    }

    it('sends nothing when one run held keys back: the wait after a crash, the next run sends them', async () => {
      const d = deps(bulkUpdate);
      await sixLeads('Once');
      await uncollectedJob(d, 120_000);
      const runId = await heldRun(d);

      const output = await reportRun(d, { runId });

      expect(output.status).toBe('succeeded');
      expect(output.writeback['Lead-update']).toMatchObject({ heldBack: 6, heldBackRepeatedly: 0 });
      expect(output.writeback['Lead-update']?.heldBackSince).toBeUndefined();
      expect(sns.published).toEqual([]);
    });

    it('tells, once, of a run that succeeded holding back the keys its previous run held back: why, which, what to do', async () => {
      const d = deps(bulkUpdate);
      const ids = await sixLeads('Twice');
      const { dead, jobId } = await uncollectedJob(d, 120_000);
      const first = await heldRun(d);
      await reportRun(d, { runId: first });
      expect(sns.published).toEqual([]);
      const second = await heldRun(d);
      await env.pool.query(`UPDATE roundtrip.runs SET execution_arn = $2 WHERE run_id = $1`, [
        second,
        `arn:aws:states:eu-west-1:123456789012:execution:roundtrip-wb-test:${second}`,
      ]);

      const output = await reportRun(d, { runId: second });

      expect(output.status).toBe('succeeded');
      expect(output.writeback['Lead-update']).toMatchObject({
        heldBack: 6,
        heldBackRepeatedly: 6,
        heldBackSince: first,
      });
      const { rows: summary } = await env.pool.query(`SELECT summary FROM roundtrip.runs WHERE run_id = $1`, [
        second,
      ]);
      expect(summary[0].summary.writeback['Lead-update']).toMatchObject({
        heldBackRepeatedly: 6,
        heldBackSince: first,
      });
      const { rows: job } = await env.pool.query<{ state: string; updated_at: Date }>(
        `SELECT state, updated_at FROM roundtrip.writeback_jobs WHERE job_id = $1`,
        [jobId],
      );
      // What Salesforce answered the last plan (the emulator holds the job InProgress), not the
      // state recorded at upload time (UploadComplete).
      expect(job[0]?.state).toBe('InProgress');
      const state = `${job[0]?.state} at ${job[0]?.updated_at.toISOString()}`;
      const message = (id: string): string =>
        `key ${id} was sent for update by run ${dead} in Bulk job ${jobId}, which Salesforce had not finished when this run planned: not sent by this run, so that the job cannot write its older values after this run's; the next plan collects the job and sends the key's current values if they differ from what it wrote`;
      expect(sns.published).toHaveLength(1);
      expect(sns.published[0]?.subject).toBe(
        `roundtrip wb-test: run ${second} succeeded, 6 records held back again`,
      );
      expect(sns.published[0]?.message.split('\n')).toEqual([
        `roundtrip pipeline wb-test: run ${second} succeeded, but it held back 6 records that the previous run held back too.`,
        '',
        'Write-back:',
        // The plan's calls: the describe of Lead, and its question about the job.
        "  Lead-update: 0 to send, 0 written, 0 failed in Salesforce, 0 rejected before sending, 6 held back for another run's send of their key (6 of them by the previous run too); 2 API calls",
        '',
        `Held back again: 6 records of Lead-update held back by 2 runs in a row, this run and the previous one (${first}): the next run does not send them either until what holds them back is resolved.`,
        '  Why: sent by another run with no outcome recorded yet:',
        `    Bulk job ${jobId} of run ${dead}, not collected (last recorded ${state}): 6 records`,
        '  Codes: OUTCOME_PENDING 6',
        '  The first 6 keys:',
        // Each line cut at 300 characters (LINE_MAX_CHARS), as a long message is.
        ...ids.map((id) => `    ${`${id}: OUTCOME_PENDING ${message(id)}`.slice(0, 299)}…`),
        '  Every one:',
        `    SELECT key, code, message FROM roundtrip.writeback_errors WHERE run_id = '${second}' AND task = 'Lead-update' AND code IN ('OUTCOME_PENDING') ORDER BY key;`,
        "    SELECT run_id, job_id, state, updated_at FROM roundtrip.writeback_jobs WHERE task = 'Lead-update' AND api = 'bulk' AND collected_at IS NULL ORDER BY run_id;",
        '',
        'What to do:',
        "  Look the job up in Salesforce (Setup → Bulk Data Load Jobs, by its id). A later plan collects it once Salesforce has finished it (completed, failed, or aborted there) and then sends the keys' current values; while Salesforce has not, its keys stay held back, run after run.",
        `  Each key's message says what holds it back and what resolves it (an insert whose outcome cannot be looked up, its task having no external-ID key, is recorded with npx roundtrip resolve --task TASK --key KEY --inserted ID or --not-inserted, once you have looked for it in Salesforce): see the SQL above, or npx roundtrip errors --run ${second} (with the pipeline's --config and --secrets).`,
        '',
        `The run: SELECT * FROM roundtrip.runs WHERE run_id = '${second}';`,
        `The execution: https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/arn:aws:states:eu-west-1:123456789012:execution:roundtrip-wb-test:${second}`,
      ]);

      // A retried report sends nothing more, and reports the same figures.
      expect((await reportRun(d, { runId: second })).writeback['Lead-update']).toMatchObject({
        heldBackRepeatedly: 6,
        heldBackSince: first,
      });
      expect(sns.published).toHaveLength(1);

      // A third run in a row that fails says so too, since the first of them.
      const third = await heldRun(d);
      await reportRun(d, {
        runId: third,
        error: { Error: 'TerminalError', Cause: 'Salesforce refused the sign-in' },
      });
      expect(sns.published).toHaveLength(2);
      expect(sns.published[1]?.subject).toBe(`roundtrip wb-test: run ${third} failed`);
      const { rows: started } = await env.pool.query<{ started_at: Date }>(
        `SELECT started_at FROM roundtrip.runs WHERE run_id = $1`,
        [first],
      );
      expect(sns.published[1]?.message).toContain(
        `\nHeld back again: 6 records of Lead-update held back by 3 runs in a row, since run ${first} (started ${started[0]?.started_at.toISOString()}): `,
      );
      expect(sns.published[1]?.message).toContain(`    Bulk job ${jobId} of run ${dead}, not collected`);
    });

    it('tells again of the same streak only HELD_BACK_NOTICE_EVERY_HOURS after its last notice, not at every run', async () => {
      const d = deps(bulkUpdate);
      await sixLeads('Stuck');
      await uncollectedJob(d, 120_000);
      const first = await heldRun(d);
      await reportRun(d, { runId: first });
      const second = await heldRun(d);
      await reportRun(d, { runId: second });
      expect(sns.published.map((p) => p.subject)).toEqual([
        `roundtrip wb-test: run ${second} succeeded, 6 records held back again`,
      ]);

      // An hour later (an hourly schedule): the streak goes on, told of already.
      const third = await heldRun(d);
      const hours = (h: number): typeof d.clock => ({
        now: () => new Date(Date.now() + h * 3_600_000),
        sleep: d.clock.sleep,
      });
      const output = await reportRun({ ...d, clock: hours(1) }, { runId: third });
      expect(output.status).toBe('succeeded');
      expect(output.writeback['Lead-update']).toMatchObject({ heldBackRepeatedly: 6, heldBackSince: first });
      expect(sns.published).toHaveLength(1);
      const { rows: told } = await env.pool.query(
        `SELECT summary ? 'notifiedAt' AS told FROM roundtrip.runs WHERE run_id = $1`,
        [third],
      );
      expect(told).toEqual([{ told: false }]);

      // HELD_BACK_NOTICE_EVERY_HOURS after the last notice: told again, since the streak's first run.
      const fourth = await heldRun(d);
      await reportRun({ ...d, clock: hours(HELD_BACK_NOTICE_EVERY_HOURS) }, { runId: fourth });
      expect(sns.published).toHaveLength(2);
      expect(sns.published[1]?.subject).toBe(
        `roundtrip wb-test: run ${fourth} succeeded, 6 records held back again`,
      );
      expect(sns.published[1]?.message).toContain(
        `Held back again: 6 records of Lead-update held back by 4 runs in a row, since run ${first} (`,
      );
    });

    it('sends nothing once the held-back keys are collected: the job finished, the next run sends them', async () => {
      const d = deps(bulkUpdate);
      const ids = await sixLeads('Collected');
      const { dead, jobId } = await uncollectedJob(d, 1500);
      const held = await heldRun(d);
      await reportRun(d, { runId: held });
      for (let i = 0; i < 200; i += 1) {
        const job = await env.connector.request<{ state: string }>('poll', 'GET', `/jobs/ingest/${jobId}`);
        if (job.state === 'JobComplete') break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await env.pool.query('UPDATE lead_scores SET score = 8');

      const next = await env.newRun();
      const result = await runWriteback(d, { runId: next, task: 'Lead-update' });
      expect(result.plan).toMatchObject({ heldBack: 0, changed: 6 });
      const output = await reportRun(d, { runId: next });

      expect(output.status).toBe('succeeded');
      expect(output.writeback['Lead-update']).toMatchObject({
        heldBack: 0,
        heldBackRepeatedly: 0,
        written: 6,
      });
      expect(sns.published).toEqual([]);
      const { rows } = await env.pool.query(
        `SELECT status, count(*)::int AS n FROM roundtrip.writeback_plans WHERE run_id = $1 GROUP BY status`,
        [dead],
      );
      expect(rows).toEqual([{ status: 'succeeded', n: 6 }]);
      expect(ids.map((id) => env.sf.store.get(id)?.LeadScore__c)).toEqual(Array(6).fill(8));
    });

    /** The task's errors of each run, by code: `{ [runId]: { [code]: count } }`. */
    async function errorsOf(...runIds: string[]): Promise<Record<string, Record<string, number>>> {
      const { rows } = await env.pool.query<{ run_id: string; code: string; n: number }>(
        `SELECT run_id, code, count(*)::int AS n FROM roundtrip.writeback_errors
          WHERE run_id = ANY($1) AND task = 'Lead-update' GROUP BY run_id, code`,
        [runIds],
      );
      const byRun: Record<string, Record<string, number>> = Object.fromEntries(runIds.map((id) => [id, {}]));
      for (const r of rows) (byRun[r.run_id] as Record<string, number>)[r.code] = r.n;
      return byRun;
    }

    /** The clock `n` days from now: a report then prunes the runs finished before `n - 30` days. */
    const days = (d: ReturnType<typeof deps>, n: number): typeof d.clock => ({
      now: () => new Date(Date.now() + n * 86_400_000),
      sleep: d.clock.sleep,
    });

    it('sees the streak across a prune of the previous run’s details (keepRunDetailsDays): the task’s latest pruned run keeps its held-back keys', async () => {
      // The streak reads the previous run's held-back errors, which are among the details a report
      // prunes keepRunDetailsDays (30) after a run finished. A report of the pipeline's run that
      // does not plan the task (another task's run, one that failed before its plan) that late
      // prunes the task's runs before its next run reads them: the latest keeps its held-back keys.
      const d = deps(bulkUpdate);
      await sixLeads('Pruned');
      await uncollectedJob(d, 120_000);
      const first = await heldRun(d);
      await reportRun(d, { runId: first });
      const second = await heldRun(d);
      await reportRun(d, { runId: second });
      expect(sns.published.map((p) => p.subject)).toEqual([
        `roundtrip wb-test: run ${second} succeeded, 6 records held back again`,
      ]);
      const keep = d.config.postgres.keepRunDetailsDays;
      const other = await env.newRun();
      await reportRun({ ...d, clock: days(d, keep + 1) }, { runId: other });
      const { rows: pruned } = await env.pool.query(
        `SELECT run_id, summary ? 'detailsPrunedAt' AS pruned FROM roundtrip.runs WHERE run_id = ANY($1) ORDER BY run_id`,
        [[first, second]],
      );
      expect(pruned).toEqual([
        { run_id: first, pruned: true },
        { run_id: second, pruned: true },
      ]);
      // The first run's go: the second, pruned too, is the one the task's next run compares with.
      expect(await errorsOf(first, second)).toEqual({ [first]: {}, [second]: { OUTCOME_PENDING: 6 } });

      // The keys are held back a third time in a row, keepRunDetailsDays later: told of again
      // (the last notice is more than HELD_BACK_NOTICE_EVERY_HOURS old), since the first run.
      const third = await heldRun(d);
      const output = await reportRun({ ...d, clock: days(d, keep + 1) }, { runId: third });
      expect(output.writeback['Lead-update']).toMatchObject({
        heldBack: 6,
        heldBackRepeatedly: 6,
        heldBackSince: first,
      });
      expect(sns.published).toHaveLength(2);
      expect(sns.published[1]?.message).toContain(
        `Held back again: 6 records of Lead-update held back by 3 runs in a row, since run ${first} (`,
      );
      expect(sns.published[1]?.message).toContain('  Codes: OUTCOME_PENDING 6\n');
    });

    it('tells of a task run less often than keepRunDetailsDays on its second run holding the same keys back', async () => {
      // A task run by a run's `tasks` input once a month, while the schedule's runs of the other
      // tasks report every day: each of the task's runs is pruned before the next one counts.
      const d = deps(bulkUpdate);
      await sixLeads('Monthly');
      await uncollectedJob(d, 120_000);
      const january = await heldRun(d);
      expect((await reportRun(d, { runId: january })).writeback['Lead-update']).toMatchObject({
        heldBack: 6,
        heldBackRepeatedly: 0,
      });
      const keep = d.config.postgres.keepRunDetailsDays;
      for (const day of [1, 2, keep, keep + 1, keep + 2]) {
        await reportRun({ ...d, clock: days(d, day) }, { runId: await env.newRun() });
      }
      const { rows: pruned } = await env.pool.query(
        `SELECT summary ? 'detailsPrunedAt' AS pruned FROM roundtrip.runs WHERE run_id = $1`,
        [january],
      );
      expect(pruned).toEqual([{ pruned: true }]);
      expect(sns.published).toEqual([]);

      const february = await heldRun(d);
      const output = await reportRun({ ...d, clock: days(d, keep + 2) }, { runId: february });

      expect(output.status).toBe('succeeded');
      expect(output.writeback['Lead-update']).toMatchObject({
        heldBack: 6,
        heldBackRepeatedly: 6,
        heldBackSince: january,
      });
      expect(sns.published.map((p) => p.subject)).toEqual([
        `roundtrip wb-test: run ${february} succeeded, 6 records held back again`,
      ]);
      expect(sns.published[0]?.message).toContain(
        `Held back again: 6 records of Lead-update held back by 2 runs in a row, this run and the previous one (${january}): `,
      );
    });

    it('keeps a run’s held-back keys while its task’s next run keeps its details (a retried report of it counts the same), and deletes them once that run is pruned too', async () => {
      const d = deps(bulkUpdate);
      await sixLeads('Replaced');
      await uncollectedJob(d, 120_000);
      const keep = d.config.postgres.keepRunDetailsDays;
      const first = await heldRun(d);
      await reportRun(d, { runId: first });
      // The next run, keepRunDetailsDays later: its own report prunes the first run after it counted.
      const second = await heldRun(d);
      const later = { ...d, clock: days(d, keep + 1) };
      const counted = { heldBack: 6, heldBackRepeatedly: 6, heldBackSince: first };
      expect((await reportRun(later, { runId: second })).writeback['Lead-update']).toMatchObject(counted);
      expect(await errorsOf(first, second)).toEqual({
        [first]: { OUTCOME_PENDING: 6 },
        [second]: { OUTCOME_PENDING: 6 },
      });
      // A retried report (a Lambda that died after its prune) answers the same, and tells no more.
      expect((await reportRun(later, { runId: second })).writeback['Lead-update']).toMatchObject(counted);
      expect(sns.published).toHaveLength(1);

      // Once the second run is pruned too, the first run's held-back keys go; the second keeps its own.
      await reportRun({ ...d, clock: days(d, 2 * keep + 2) }, { runId: await env.newRun() });
      expect(await errorsOf(first, second)).toEqual({
        [first]: {},
        [second]: { OUTCOME_PENDING: 6 },
      });
    });
  });

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
