import { EMULATOR_ID_INSTANCE, idSuffix, makeId, normalizeId, to18 } from '../../../emulators/salesforce/ids';

describe('ids', () => {
  it('computes the case-safe suffix of ids printed in Salesforce documentation', () => {
    // REST API guide, "Upsert a Record Using an External ID": "id" : "00190000001pPvHAAU".
    expect(to18('00190000001pPvH')).toBe('00190000001pPvHAAU');
    // Common documentation example account id.
    expect(to18('001D000000IqhSL')).toBe('001D000000IqhSLIAZ');
    expect(idSuffix('00D000000000062')).toBe('EAA');
  });

  it('sets one bit per upper-case letter, position i of each chunk being bit i', () => {
    expect(idSuffix('A0000000000000a')).toBe('BAA');
    expect(idSuffix('0000A0000000000')).toBe('QAA');
    expect(idSuffix('00000AAAAA0000Z')).toBe('A5Q');
  });

  it('generates 18-character ids from key prefix, instance and a base-62 counter', () => {
    expect(makeId('00Q', 1)).toBe(to18(`00Q${EMULATOR_ID_INSTANCE}000000001`));
    expect(makeId('00Q', 62)).toBe(to18(`00Q${EMULATOR_ID_INSTANCE}000000010`));
    expect(makeId('00Q', 61).slice(0, 15)).toBe(`00Q${EMULATOR_ID_INSTANCE}00000000z`);
    expect(makeId('001', 7)).toHaveLength(18);
  });

  it('generates ids that sort by creation order under binary comparison', () => {
    const ids = [1, 9, 10, 35, 36, 61, 62, 3843, 3844, 1_000_000].map((n) => makeId('00Q', n));
    expect([...ids].sort()).toEqual(ids);
  });

  it('rejects a bad key prefix or counter', () => {
    expect(() => makeId('0Q', 1)).toThrow("key prefix must be 3 alphanumeric characters, got '0Q'");
    expect(() => makeId('00Q', -1)).toThrow('id counter out of range: -1');
  });

  it('normalizes 15-character ids to 18 and restores the case of 18-character ids', () => {
    expect(normalizeId('00190000001pPvH')).toBe('00190000001pPvHAAU');
    expect(normalizeId('00190000001pPvHAAU')).toBe('00190000001pPvHAAU');
    // A case-insensitive tool upper-cased it: the suffix says which letters were upper case.
    expect(normalizeId('00190000001PPVHAAU')).toBe('00190000001pPvHAAU');
    expect(normalizeId('00190000001ppvhaau')).toBe('00190000001pPvHAAU');
  });

  it('rejects malformed ids', () => {
    expect(normalizeId('')).toBeUndefined();
    expect(normalizeId('00Q123')).toBeUndefined();
    expect(normalizeId('00190000001pPvH-AU')).toBeUndefined();
    expect(normalizeId('0019000000!pPvH')).toBeUndefined();
    // The suffix claims an upper-case letter at a digit's position.
    expect(normalizeId('00190000001pPvHBAU')).toBeUndefined();
    // '9' is not a suffix symbol.
    expect(normalizeId('00190000001pPvHAA9')).toBeUndefined();
  });
});
