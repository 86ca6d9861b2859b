import {
  LosslessNumber,
  parseJsonLossless,
  stringifyJsonLossless,
} from '../../../../lambdas/connectors/salesforce/json';

describe('parseJsonLossless', () => {
  it('parses like JSON.parse', () => {
    const text = '{"a":[1,-2.5,300,true,false,null,"x\\"y\\\\",{}],"b":"\\u00e9\\n","c":[] , "d" : "plain"}';
    expect(parseJsonLossless(text)).toEqual(JSON.parse(text));
  });

  it('keeps numbers a JavaScript number would change', () => {
    const v = parseJsonLossless(
      '{"big":123456789012345678,"one":1.0,"small":7,"neg":-0.10,"exp":3e2}',
    ) as Record<string, unknown>;
    expect(v.big).toEqual(new LosslessNumber('123456789012345678'));
    expect(v.one).toEqual(new LosslessNumber('1.0'));
    expect(v.small).toBe(7);
    expect(v.neg).toEqual(new LosslessNumber('-0.10'));
    expect(v.exp).toEqual(new LosslessNumber('3e2'));
    expect(stringifyJsonLossless(v as never)).toBe(
      '{"big":123456789012345678,"one":1.0,"small":7,"neg":-0.10,"exp":3e2}',
    );
  });

  it('makes a "__proto__" key an own member, as JSON.parse does, not the prototype', () => {
    const text = '{"__proto__":{"polluted":1},"a":{"__proto__":[2],"b":3},"c":{"__proto__":4}}';
    const v = parseJsonLossless(text) as { a: object; c: object };
    const expected = JSON.parse(text) as object;
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(Object.getPrototypeOf(v.a)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(v, '__proto__')).toEqual(
      Object.getOwnPropertyDescriptor(expected, '__proto__'),
    );
    expect(Object.keys(v)).toEqual(['__proto__', 'a', 'c']);
    expect(Object.keys(v.a)).toEqual(['__proto__', 'b']);
    expect(Object.getOwnPropertyDescriptor(v.a, '__proto__')?.value).toEqual([2]);
    expect(Object.getOwnPropertyDescriptor(v.c, '__proto__')?.value).toBe(4);
    expect((v as Record<string, unknown>).polluted).toBeUndefined();
    expect(stringifyJsonLossless(v as never)).toBe(JSON.stringify(expected));
  });

  it('handles strings ending in escaped backslashes', () => {
    expect(parseJsonLossless('["a\\\\","b"]')).toEqual(['a\\', 'b']);
  });

  it.each(['{', '[1,]', '{"a" 1}', '"open', '1 2', 'nul'])(
    'rejects %s with an offset, not the text',
    (text) => {
      expect(() => parseJsonLossless(text)).toThrow(/^Invalid JSON at offset \d+/);
    },
  );
});
