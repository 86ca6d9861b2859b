import { describeValue, formatPath, toConfigIssues, valueAt } from '../../../lambdas/config/issues';

describe('formatPath', () => {
  it('writes paths the way a config author reads them', () => {
    expect(formatPath(['writeback', 0, 'mode'])).toBe('writeback[0].mode');
    expect(formatPath(['writeback', 0, 'fields', 'Lead Score'])).toBe('writeback[0].fields["Lead Score"]');
    expect(formatPath([2])).toBe('[2]');
    expect(formatPath([])).toBe('');
  });
});

describe('describeValue', () => {
  it('shows what was found, briefly', () => {
    expect(describeValue(undefined)).toBe('nothing');
    expect(describeValue(null)).toBe('null');
    expect(describeValue('merge')).toBe('"merge"');
    expect(describeValue(0.5)).toBe('0.5');
    expect(describeValue(false)).toBe('false');
    expect(describeValue([])).toBe('an empty list');
    expect(describeValue(['Id', 'Email'])).toBe('["Id","Email"]');
    expect(describeValue(Array.from({ length: 30 }, (_, i) => `Field${i}`))).toBe('a list of 30');
    expect(describeValue({})).toBe('an empty object');
    expect(describeValue({ a: 1 })).toBe('an object');
    expect(describeValue(() => 1)).toBe('a function');
  });

  it('cuts long strings and says how long they were', () => {
    const query = `SELECT ${'x, '.repeat(40)}y FROM t`;
    expect(describeValue(query)).toBe(`${JSON.stringify(query).slice(0, 56)}…" (${query.length} characters)`);
  });
});

describe('valueAt', () => {
  it('follows a path into the raw input, and stops where it leads nowhere', () => {
    const input = { writeback: [{ mode: 'merge' }] };
    expect(valueAt(input, ['writeback', 0, 'mode'])).toBe('merge');
    expect(valueAt(input, ['writeback', 3, 'mode'])).toBeUndefined();
    expect(valueAt(input, ['writeback', 0, 'mode', 'x'])).toBeUndefined();
  });
});

describe('toConfigIssues', () => {
  it('makes one issue per unknown key, suggesting a near key only', () => {
    const issues = toConfigIssues(
      {
        code: 'unrecognized_keys',
        path: ['budget'],
        keys: ['maxApiCalls', 'colour'],
        message: '\u0000known:maxApiCallsPerRun,reserveDailyApiPercent',
      },
      {},
    );
    expect(issues).toEqual([
      {
        path: 'budget.maxApiCalls',
        message: 'unknown key (expected one of: maxApiCallsPerRun, reserveDailyApiPercent)',
      },
      {
        path: 'budget.colour',
        message: 'unknown key (expected one of: maxApiCallsPerRun, reserveDailyApiPercent)',
      },
    ]);
    expect(
      toConfigIssues(
        { code: 'unrecognized_keys', path: [], keys: ['nmae'], message: '\u0000known:name,schedule' },
        {},
      ),
    ).toEqual([
      { path: 'nmae', message: 'unknown key (expected one of: name, schedule); did you mean "name"?' },
    ]);
  });
});
