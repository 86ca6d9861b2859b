import { failureText, storedFailureText } from '../../../bin/cli-common';
import { ERROR_NAMES } from '../../../lambdas/shared/errors';

describe('failureText', () => {
  it.each([
    ['TerminalError', 'extract[0].object: Salesforce has no object Leads'],
    ['ConfigError', 'Invalid pipeline config x.ts (1 problem):\n  name: required'],
    ['TransientError', 'PostgreSQL connecting (u@127.0.0.1:1/db): connect ECONNREFUSED'],
    ['TaskBusyError', 'another push of Lead-update is going on'],
    ['PushGoingOnError', 'run r1 pushes Lead-update'],
    ['TransformError', 'Transform score.sql, line 2: column "nope" does not exist'],
    [
      'MaxChangesExceededError',
      'Write-back Lead-update would change 9 records, more than writeback[0].maxChanges (2)',
    ],
    // The Fail state's error of a run a write-back's limit stopped: its cause says which limit.
    [
      'WritebackFailureRateExceeded',
      'A write-back task passed its maxFailureRate (records Salesforce refused) or its maxRejectRate (rows the plan rejected): the records are in roundtrip.writeback_errors, the reason and the summary in roundtrip.runs',
    ],
    ['Error', 'something'],
    // The local Athena binding's names for a failure that is not Athena's answer.
    ['Athena.Error', 'connect ECONNREFUSED 127.0.0.1:4569 (nothing accepts connections at --aws-endpoint …)'],
    ['Athena.TerminalError', 'No AWS Region for Athena and S3: pass --aws-endpoint http://127.0.0.1:PORT …'],
  ])('shows a %s by its message alone, all of it', (name, message) => {
    expect(failureText(name, message)).toBe(message);
  });

  it('leaves out every name of our own errors, the classes a step throws and the Fail states', () => {
    for (const name of Object.values(ERROR_NAMES))
      expect(failureText(name, 'what went wrong')).toBe('what went wrong');
    expect(Object.values(ERROR_NAMES)).toEqual(
      expect.arrayContaining(['TransformError', 'MaxChangesExceededError', 'WritebackFailureRateExceeded']),
    );
  });

  it("shows a failed Athena query's reason, without Step Functions' States.TaskFailed", () => {
    const cause = JSON.stringify({
      QueryExecution: {
        QueryExecutionId: 'q1',
        Status: { State: 'FAILED', StateChangeReason: 'TABLE_NOT_FOUND: x' },
      },
    });
    expect(failureText('States.TaskFailed', cause)).toBe('Athena query q1 FAILED: TABLE_NOT_FOUND: x');
  });

  it('keeps a name that tells something: a time-out, the service that refused, a fault', () => {
    expect(failureText('States.Timeout', 'Task timed out after 900 s')).toBe(
      'States.Timeout: Task timed out after 900 s',
    );
    expect(failureText('Athena.InvalidRequestException', 'line 1:8: mismatched input')).toBe(
      'Athena.InvalidRequestException: line 1:8: mismatched input',
    );
    expect(failureText('TypeError', "Cannot read properties of undefined (reading 'x')")).toBe(
      "TypeError: Cannot read properties of undefined (reading 'x')",
    );
  });

  it('keeps the name when there is no cause to show, and says so when there is neither', () => {
    expect(failureText('TerminalError', '')).toBe('TerminalError');
    expect(failureText('States.Timeout', undefined)).toBe('States.Timeout');
    // aws-local-stepfunctions' own States.Timeout has its name as its message.
    expect(failureText('States.Timeout', 'States.Timeout')).toBe('States.Timeout');
    expect(failureText(undefined, undefined)).toBe('failed, no reason given');
  });
});

describe('storedFailureText', () => {
  it('reads roundtrip.runs.error as <Error>: <Cause>, every line of the cause kept', () => {
    expect(storedFailureText('TransformError: Transform a.sql, line 2: boom\nmore')).toBe(
      'Transform a.sql, line 2: boom\nmore',
    );
    expect(storedFailureText('States.Timeout: no cause given')).toBe('States.Timeout: no cause given');
  });

  it('leaves a text of another shape as it is (a skipped run’s reason)', () => {
    const reason = 'run 20250601T020000Z-1a2b3c4d of this pipeline is still going (onOverlap: skip)';
    expect(storedFailureText(reason)).toBe(reason);
  });
});
