import {
  cronExpressionProblem,
  rateExpressionProblem,
  scheduleExpression,
} from '../../../lambdas/config/schedule-expression';

const SIXTH_FIELD = 'a sixth field, the year, and "?" in one of day-of-month and day-of-week';

describe('cronExpressionProblem', () => {
  // Five fields: usually a Unix crontab line, or the year forgotten. The hint is the six-field
  // expression that means the same, when Scheduler accepts one (Unix counts Sunday 0 or 7).
  it.each([
    ['0 2 * * *', '0 2 * * ? *'],
    ['0 2 * * ?', '0 2 * * ? *'],
    ['0 18 * * 1-5', '0 18 ? * 2-6 *'],
    ['*/15 * * * 0,6', '*/15 * ? * 1,7 *'],
    ['0 9 * * 7', '0 9 ? * 1 *'],
    ['0 2 * * MON-FRI', '0 2 ? * MON-FRI *'],
    ['30 6 1 * *', '30 6 1 * ? *'],
  ])('refuses the five fields %s, suggesting "%s"', (expression, suggestion) => {
    expect(cronExpressionProblem(expression)).toBe(
      `it has 5 fields, not 6 (Scheduler's cron has ${SIXTH_FIELD}, and counts days of the week from SUN = 1 where Unix cron counts from 0: did you mean "${suggestion}"?)`,
    );
    expect(cronExpressionProblem(suggestion)).toBeUndefined();
  });

  it.each([
    ['0 2 1 * 1', 'both day fields set'],
    ['0 2 * * */2', 'a day-of-week step, whose numbers are not days'],
  ])('refuses the five fields %s without a suggestion (%s)', (expression) => {
    expect(cronExpressionProblem(expression)).toBe(
      `it has 5 fields, not 6 (Scheduler's cron has ${SIXTH_FIELD})`,
    );
  });

  // Examples from the EventBridge Scheduler guide and the forms it documents.
  it.each([
    ['0 2 * * ? *', '02:00 every day'],
    ['cron(0 2 * * ? *)', 'the same, wrapped'],
    ['0/15 * * * ? *', 'every 15 minutes'],
    ['*/5 * * * ? *', 'every 5 minutes, star form'],
    ['0 18 ? * MON-FRI *', 'weekdays at 18:00'],
    ['0 8 1 * ? *', 'the first of each month'],
    ['15 10 ? * 6L 2025-2030', 'the last Friday of each month, some years'],
    ['0 12 L * ? *', 'the last day of the month'],
    ['0 9 15W * ? *', 'the weekday closest to the 15th'],
    ['0 9 ? * 2#1 *', 'the first Monday'],
    ['0 9 ? * MON#2 *', 'the second Monday, by name'],
    ['30 6 1,15 JAN,jul ? 1970', 'lists and month names in any case'],
    ['0 0-23/2 ? * SUN,SAT 2199', 'a range with a step, weekend names'],
    ['0 10 ? * L *', 'the last day of the week'],
  ])('accepts %s (%s)', (expression) => {
    expect(cronExpressionProblem(expression)).toBeUndefined();
  });

  it.each([
    ['0 2 * * ? * *', 'it has 7 fields, not 6'],
    ['0 2 * * * *', 'one of day-of-month and day-of-week must be "?"'],
    ['0 2 ? * ? *', 'day-of-month and day-of-week cannot both be "?"'],
    ['60 2 * * ? *', 'minutes value 60 is outside 0-59'],
    ['0 24 * * ? *', 'hours value 24 is outside 0-23'],
    ['0 2 0 * ? *', 'day-of-month value 0 is outside 1-31'],
    ['0 2 * 13 ? *', 'month value 13 is outside 1-12 or JAN-DEC'],
    ['0 2 * FOO ? *', 'month value "FOO" is not 1-12 or JAN-DEC'],
    ['0 2 ? * 8 *', 'day-of-week value 8 is outside 1-7 or SUN-SAT'],
    ['0 2 * * ? 1969', 'year value 1969 is outside 1970-2199'],
    ['0 2 * * ? 2200', 'year value 2200 is outside 1970-2199'],
    ['0/0 * * * ? *', 'minutes step 0 is outside 1-59'],
    ['0/x * * * ? *', 'minutes step "x" is not a whole number'],
    ['0 10-5 * * ? *', 'hours range "10-5" runs backwards (the start must not be after the end)'],
    ['L 2 * * ? *', 'minutes "L" uses a wildcard this field does not accept'],
    ['? 2 * * ? *', '"?" is only allowed in day-of-month and day-of-week, not in minutes'],
    ['0 2 ? * 2W *', 'day-of-week "2W" uses "W", which only day-of-month accepts'],
    [
      '0 2 LW * ? *',
      'day-of-month "LW" uses L or W in a form Scheduler does not accept (use "L" or "<day>W")',
    ],
    [
      '0 2 L-3 * ? *',
      'day-of-month "L-3" uses L or W in a form Scheduler does not accept (use "L" or "<day>W")',
    ],
    ['0 2 32W * ? *', 'day-of-month value 32 is outside 1-31'],
    ['0 2 ? * 2#6 *', 'day-of-week "2#6": the occurrence after "#" must be 1-5'],
    ['0 2 1#1 * ? *', 'day-of-month "1#1" uses "#", which only day-of-week accepts'],
    ['0 2 1,,2 * ? *', 'day-of-month has an empty list element'],
    ['0 1-2-3 * * ? *', 'hours range "1-2-3" has more than one "-"'],
  ])('refuses %s: %s', (expression, problem) => {
    expect(cronExpressionProblem(expression)).toBe(problem);
  });
});

describe('rateExpressionProblem', () => {
  it.each(['5 minutes', 'rate(1 minute)', 'rate(1 hour)', '12 hours', 'rate(7 days)'])(
    'accepts %s',
    (rate) => {
      expect(rateExpressionProblem(rate)).toBeUndefined();
    },
  );

  it.each([
    ['rate(1 minutes)', 'the unit must be "minute" for the value 1'],
    ['5 hour', 'the unit must be "hours" for the value 5'],
    ['0 minutes', 'the value must be 1 or more'],
    ['5 weeks', 'the unit "weeks" is not minute(s), hour(s) or day(s)'],
    ['every 5 minutes', 'it must read "<value> <unit>", e.g. "5 minutes"'],
  ])('refuses %s: %s', (rate, problem) => {
    expect(rateExpressionProblem(rate)).toBe(problem);
  });
});

describe('scheduleExpression', () => {
  it('wraps a bare cron or rate and normalises its spacing', () => {
    expect(scheduleExpression({ cron: ' 0  2 * * ? * ' })).toBe('cron(0 2 * * ? *)');
    expect(scheduleExpression({ cron: 'cron(0 2 * * ? *)' })).toBe('cron(0 2 * * ? *)');
    expect(scheduleExpression({ rate: '5 minutes' })).toBe('rate(5 minutes)');
    expect(scheduleExpression({ rate: 'rate(1 hour)' })).toBe('rate(1 hour)');
  });

  it('refuses a schedule with neither', () => {
    expect(() => scheduleExpression({})).toThrow('schedule has neither cron nor rate');
  });
});
