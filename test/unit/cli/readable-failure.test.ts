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

  it('leaves any other text as it is, a truncated JSON too', () => {
    const transform = 'TransformError: Transform score.sql, line 4: column c.order_cnt does not exist';
    expect(readableFailure(transform)).toBe(transform);
    expect(readableFailure(cause.slice(0, 80))).toBe(cause.slice(0, 80));
  });
});
