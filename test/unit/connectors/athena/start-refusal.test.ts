import { athenaStartRefusal, matchesStatesPattern } from '../../../../lambdas/connectors/athena/errors';

describe('matchesStatesPattern', () => {
  it("matches Step Functions' StringMatches: * any text (line breaks too), \\* a star, the rest as written", () => {
    expect(matchesStatesPattern('line 1:8: x', 'line *')).toBe(true);
    expect(matchesStatesPattern('a line 1:8', 'line *')).toBe(false);
    expect(matchesStatesPattern('one\ntwo', '*two')).toBe(true);
    expect(matchesStatesPattern('a*b', 'a\\*b')).toBe(true);
    expect(matchesStatesPattern('axb', 'a\\*b')).toBe(false);
    expect(matchesStatesPattern('a.b(c)', 'a.b(c)')).toBe(true);
    expect(matchesStatesPattern('aXb(c)', 'a.b(c)')).toBe(false);
  });
});

describe('athenaStartRefusal', () => {
  it.each([
    ["line 1:8: mismatched input 'WorkGroup'", 'query'],
    ['SELECT clause without selection list', 'query'],
    ['Only one sql statement is allowed. Got: 2', 'query'],
    ['WorkGroup analysts is not found.', 'workgroup'],
    ['WorkGroup analysts is disabled.', 'workgroup'],
    [
      'No output location provided. An output location is required either through the Workgroup result configuration setting or as an API input.',
      'outputLocation',
    ],
    ['OutputLocation results/ is not a valid S3 location (s3://bucket/prefix/)', 'outputLocation'],
  ])('says %j is about the %s', (message, about) => {
    expect(athenaStartRefusal(message)).toBe(about);
  });
});
