import { repeatedJsonKeys } from '../../../lambdas/config/json-keys';

describe('repeatedJsonKeys', () => {
  it('names a key written twice in one object by its config path and both lines (JSON.parse keeps the last silently)', () => {
    const text = [
      '{',
      '  "writeback": [',
      '    { "to": "salesforce", "fields": { "Rating": "r" } },',
      '    { "fields": { "LeadScore__c": "score_a",',
      '                  "LeadScore__c": "score_b" } }',
      '  ]',
      '}',
    ].join('\n');
    expect(repeatedJsonKeys(text)).toEqual([
      {
        path: 'writeback[1].fields.LeadScore__c',
        message:
          'expected each key once in an object, got "LeadScore__c" again on line 5 (also on line 4): JSON keeps only the last one\'s value and silently drops the other; keep one',
      },
    ]);
  });

  it('tells keys of different objects apart, reads escapes, and skips strings that are values', () => {
    const text = JSON.stringify({
      a: { x: 1, y: ['x', 'x', { x: '"x"' }] },
      b: { x: 2, 'q\\"': 1 },
      extract: [{ fields: ['Id', 'Id'] }],
    });
    expect(repeatedJsonKeys(text)).toEqual([]);
    expect(repeatedJsonKeys('{"a": {"k\\u0031": 1, "k1": 2}, "b": [1, {"x": 1}, {"x": 2, "x": 3}]}')).toEqual(
      [expect.objectContaining({ path: 'a.k1' }), expect.objectContaining({ path: 'b[2].x' })],
    );
  });
});
