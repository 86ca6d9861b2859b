import { canonicalSalesforceId, STANDARD_KEY_PREFIXES } from '../../../../lambdas/connectors/salesforce/ids';
import { loadDescribes } from '../../../../emulators/salesforce/describe';
import { makeId } from '../../../../emulators/salesforce/ids';

describe('canonicalSalesforceId', () => {
  it('gives a 15-character Id its case checksum, as the APIs answer it (CASESAFEID)', () => {
    expect(canonicalSalesforceId('00D000000000062')).toEqual({ id: '00D000000000062EAA' });
    // The emulator's Ids, made as Salesforce makes them.
    const id = makeId('00Q', 123_456_789);
    expect(canonicalSalesforceId(id.slice(0, 15))).toEqual({ id });
    expect(canonicalSalesforceId(` ${id} `)).toEqual({ id });
  });

  it("restores an 18-character Id's case from its checksum: it names one record in any case", () => {
    const id = makeId('00Q', 987_654_321);
    expect(canonicalSalesforceId(id.toLowerCase())).toEqual({ id });
    expect(canonicalSalesforceId(id.toUpperCase())).toEqual({ id });
  });

  it('refuses what is not an Id, saying why', () => {
    expect(canonicalSalesforceId('00Q5e00000')).toEqual({
      problem: '"00Q5e00000" is not a Salesforce Id: 15 or 18 letters and digits (it has 10 characters)',
    });
    expect(canonicalSalesforceId('00Q5e000-0000001')).toEqual({
      problem:
        '"00Q5e000-0000001" is not a Salesforce Id: 15 or 18 letters and digits (it has 16 characters, not all letters or digits)',
    });
    expect(canonicalSalesforceId('00Q5e0000000001E9A')).toEqual({
      problem:
        '"00Q5e0000000001E9A" is not a Salesforce Id: its last three characters (E9A) are not the case checksum of an 18-character Id (letters A–Z and digits 0–5)',
    });
    // B (1) sets bit 0 of the first chunk: its first character, a digit, cannot be upper case.
    expect(canonicalSalesforceId('00Q5e0000000001BAA')).toEqual({
      problem:
        '"00Q5e0000000001BAA" is not a Salesforce Id: its case checksum (BAA) marks character 1 (0) as an upper-case letter (a character mistyped?)',
    });
  });
});

describe('STANDARD_KEY_PREFIXES', () => {
  it("names each standard object the emulator describes by its describe's key prefix, once", () => {
    const described = loadDescribes().map((d) => [d.keyPrefix, d.name]);
    expect(described.length).toBeGreaterThan(0);
    for (const [prefix, name] of described) expect(STANDARD_KEY_PREFIXES[prefix as string]).toBe(name);
    const names = Object.values(STANDARD_KEY_PREFIXES);
    expect(new Set(names).size).toBe(names.length);
    for (const prefix of Object.keys(STANDARD_KEY_PREFIXES)) expect(prefix).toMatch(/^[0-9A-Za-z]{3}$/);
  });
});
