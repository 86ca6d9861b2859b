/**
 * A dry run's sample stays small enough for the Plan step's output, a Step Functions state payload
 * (256 KiB at most): texts over DRY_RUN_SAMPLE_VALUE_CHARS are cut, saying their length, and rows
 * are kept while the sample's JSON takes at most DRY_RUN_SAMPLE_MAX_BYTES.
 */
import {
  boundedSample,
  DRY_RUN_SAMPLE_MAX_BYTES,
  DRY_RUN_SAMPLE_VALUE_CHARS,
  dryRunSample,
  shortValues,
} from '../../../lambdas/core/writeback/plan';
import type { PlanSampleRow } from '../../../lambdas/core/contracts';

describe("a dry run's sample", () => {
  it('keeps values of up to DRY_RUN_SAMPLE_VALUE_CHARS characters whole, and cuts longer texts by characters, not bytes', () => {
    const whole = 'é'.repeat(DRY_RUN_SAMPLE_VALUE_CHARS);
    const long = `${'😀'.repeat(DRY_RUN_SAMPLE_VALUE_CHARS)}x`;
    expect(shortValues({ a: whole, b: long, n: 12.5, t: true, z: null })).toEqual({
      a: whole,
      b: `${'😀'.repeat(DRY_RUN_SAMPLE_VALUE_CHARS)}… (${DRY_RUN_SAMPLE_VALUE_CHARS + 1} characters)`,
      n: 12.5,
      t: true,
      z: null,
    });
  });

  it('counts an emoji as one character and a lone surrogate as one, as [...text] does, wherever the cut falls', () => {
    const max = DRY_RUN_SAMPLE_VALUE_CHARS;
    /** The cut by its definition: the text's characters as an array. */
    const byArray = (text: string): string => {
      const chars = [...text];
      return chars.length <= max ? text : `${chars.slice(0, max).join('')}… (${chars.length} characters)`;
    };
    const texts = [
      '😀'.repeat(max), // 400 UTF-16 units, 200 characters: whole
      `a${'😀'.repeat(max)}`, // the cut between two emoji, after an odd number of units
      `${'😀'.repeat(max - 1)}é😀x`,
      '\ud800'.repeat(max + 1), // lone high surrogates
      `${'\udc00'.repeat(max - 1)}😀\ud800`, // lone low ones, then a pair at the cut
      `${'x'.repeat(max - 1)}\ud83d`, // a high surrogate ending the text
      'x'.repeat(max + 1),
    ];
    for (const text of texts) expect(shortValues({ v: text }).v).toBe(byArray(text));
    expect(shortValues({ v: '😀'.repeat(max) }).v).toBe('😀'.repeat(max));
  });

  it('keeps the first rows whose JSON fits in DRY_RUN_SAMPLE_MAX_BYTES, in order', () => {
    const row = (key: string): PlanSampleRow => ({
      key,
      salesforceId: null,
      current: null,
      // 100 fields of 200 characters: about 21 KB of JSON a row.
      next: Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`F${i}__c`, 'x'.repeat(200)])),
    });
    const rows = Array.from({ length: 10 }, (_, i) => row(`k${i}`));
    const kept = boundedSample(rows);
    expect(kept.map((r) => r.key)).toEqual(['k0', 'k1', 'k2']);
    expect(Buffer.byteLength(JSON.stringify(kept))).toBeLessThanOrEqual(DRY_RUN_SAMPLE_MAX_BYTES);
    expect(Buffer.byteLength(JSON.stringify(rows.slice(0, 4)))).toBeGreaterThan(DRY_RUN_SAMPLE_MAX_BYTES);
    expect(boundedSample(rows.slice(0, 2))).toEqual(rows.slice(0, 2));
  });

  it('is made from stored plan rows with both the current and the new values cut, then bounded', () => {
    const long = 'x'.repeat(100_000);
    const stored = Array.from({ length: 10 }, (_, i) => ({
      key: `k${i}`,
      salesforce_id: i === 0 ? '00Q000000000001AAA' : null,
      current: i === 0 ? null : { Notes__c: long },
      // 100 fields of 100,000 characters: each cut to DRY_RUN_SAMPLE_VALUE_CHARS, about 21 KB a row.
      payload: Object.fromEntries(Array.from({ length: 100 }, (_, f) => [`F${f}__c`, long])),
    }));
    const sample = dryRunSample(stored);
    const cut = `${'x'.repeat(DRY_RUN_SAMPLE_VALUE_CHARS)}… (100000 characters)`;
    expect(sample.map((r) => r.key)).toEqual(['k0', 'k1']);
    expect(sample[0]).toEqual({
      key: 'k0',
      salesforceId: '00Q000000000001AAA',
      current: null,
      next: Object.fromEntries(Array.from({ length: 100 }, (_, f) => [`F${f}__c`, cut])),
    });
    expect(sample[1]?.current).toEqual({ Notes__c: cut });
  });
});
