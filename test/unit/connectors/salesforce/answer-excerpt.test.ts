import { answerExcerpt } from '../../../../lambdas/connectors/salesforce/connector';

describe('answerExcerpt', () => {
  it("reads Salesforce's JSON error array and an OAuth error as CODE: message", () => {
    expect(
      answerExcerpt('[{"errorCode":"NOT_FOUND","message":"The requested resource does not exist"}]'),
    ).toBe('NOT_FOUND: The requested resource does not exist');
    expect(answerExcerpt('{"error":"not_found","error_description":"no such endpoint"}')).toBe(
      'not_found: no such endpoint',
    );
  });

  it('names an HTML page by its title, else by its first words without scripts or tags', () => {
    expect(
      answerExcerpt('<html><head><title> Error 405 Only POST allowed </title></head><body>…</body></html>'),
    ).toBe('Error 405 Only POST allowed');
    const untitled = `<!DOCTYPE html><html><head><script>var a = "<b>";</script></head><body><h2>HTTP ERROR 404</h2><p>${'Problem accessing /x. '.repeat(20)}</p></body></html>`;
    const excerpt = answerExcerpt(untitled);
    expect(excerpt.startsWith('HTTP ERROR 404 Problem accessing /x.')).toBe(true);
    expect(excerpt).not.toContain('var a');
    expect(excerpt).toHaveLength(160);
    expect(excerpt.endsWith('…')).toBe(true);
  });

  it('keeps other text as it is, on one line, bounded', () => {
    expect(answerExcerpt('  Not\n  Found  ')).toBe('Not Found');
    expect(answerExcerpt('')).toBe('');
  });
});
