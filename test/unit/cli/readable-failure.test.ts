import { readableFailure } from '../../../bin/cli-common';

/** The Cause of a failed `startQueryExecution.sync` Task: the GetQueryExecution response as JSON. */
const cause = JSON.stringify({
  QueryExecution: {
    QueryExecutionId: '4c67a524-523a-4171-8cf0-a2780df0212b',
    Query: 'SELECT email FROM custmers',
    ResultConfiguration: { OutputLocation: 's3://results/my-score/4c67a524.csv' },
    Status: {
      State: 'FAILED',
      StateChangeReason:
        "TABLE_NOT_FOUND: line 1:19: Table 'awsdatacatalog.marketing.custmers' does not exist",
      AthenaError: {
        ErrorCategory: 2,
        ErrorType: 1000,
        Retryable: false,
        ErrorMessage: "TABLE_NOT_FOUND: line 1:19: Table 'awsdatacatalog.marketing.custmers' does not exist",
      },
    },
    WorkGroup: 'primary',
  },
});

describe('readableFailure', () => {
  it("turns a failed Athena query's JSON cause into its reason", () => {
    expect(readableFailure(cause)).toBe(
      "Athena query 4c67a524-523a-4171-8cf0-a2780df0212b FAILED: TABLE_NOT_FOUND: line 1:19: Table 'awsdatacatalog.marketing.custmers' does not exist",
    );
  });

  it('keeps the error name before it, as roundtrip.runs stores the error', () => {
    expect(readableFailure(`States.TaskFailed: ${cause}`)).toMatch(
      /^States\.TaskFailed: Athena query 4c67a524-\S+ FAILED: TABLE_NOT_FOUND: /,
    );
  });

  it('falls back to the state change reason, and to the state alone', () => {
    const cancelled = JSON.stringify({
      QueryExecution: {
        Status: { State: 'CANCELLED', StateChangeReason: 'Query was cancelled by the user' },
      },
    });
    expect(readableFailure(cancelled)).toBe('Athena query CANCELLED: Query was cancelled by the user');
  });

  // A deployed Task whose Lambda function threw: the Cause is the runtime's error payload.
  const lambdaCause = JSON.stringify({
    errorType: 'TerminalError',
    errorMessage: 'Write-back Lead-update: the source "public"."lead_reverse" has no column "lead_score"',
    trace: [
      'TerminalError: Write-back Lead-update: the source …',
      '    at planWriteback (/var/task/index.js:1:2345)',
    ],
  });

  it("turns a Lambda function's error payload into its message, without the stack", () => {
    expect(readableFailure(lambdaCause)).toBe(
      'Write-back Lead-update: the source "public"."lead_reverse" has no column "lead_score"',
    );
    expect(readableFailure(`TerminalError: ${lambdaCause}`)).toBe(
      'TerminalError: Write-back Lead-update: the source "public"."lead_reverse" has no column "lead_score"',
    );
    // Another runtime's key order and stack key; a message that is itself an Athena response.
    expect(
      readableFailure(JSON.stringify({ errorMessage: 'boom', errorType: 'Error', stackTrace: [] })),
    ).toBe('boom');
    expect(readableFailure(JSON.stringify({ errorType: 'Error', errorMessage: cause }))).toMatch(
      /^Athena query 4c67a524-\S+ FAILED: TABLE_NOT_FOUND: /,
    );
  });

  it('reads the message of a payload cut short (Step Functions keeps 32,768 characters)', () => {
    const long = JSON.stringify({
      errorType: 'TransientError',
      errorMessage: 'Salesforce answered 503 "Service Unavailable"',
      trace: Array.from({ length: 2_000 }, (_, i) => `    at frame${i} (/var/task/index.js:1:${i})`),
    });
    expect(readableFailure(long.slice(0, 32_768))).toBe('Salesforce answered 503 "Service Unavailable"');
  });

  it('leaves any other text as it is, a truncated JSON too', () => {
    const transform = 'TransformError: Transform score.sql, line 4: column c.order_cnt does not exist';
    expect(readableFailure(transform)).toBe(transform);
    expect(readableFailure(cause.slice(0, 80))).toBe(cause.slice(0, 80));
    const notPayload = '{"errorMessage": 42}';
    expect(readableFailure(notPayload)).toBe(notPayload);
  });
});
