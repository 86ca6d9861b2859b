/**
 * A dry run's sample stays small enough for the Plan step's output, a Step Functions state payload
 * (256 KiB at most): texts over DRY_RUN_SAMPLE_VALUE_CHARS are cut, saying their length, and rows
 * are kept while the sample's JSON takes at most DRY_RUN_SAMPLE_MAX_BYTES.
 */
import {
  boundedSample,
  DRY_RUN_SAMPLE_MAX_BYTES,
  DRY_RUN_SAMPLE_VALUE_CHARS,
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
});
