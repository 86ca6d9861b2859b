/**
 * A transform whose files RAISE many long WARNINGs: the Transform step's output, which the state
 * machine carries in the execution's state, keeps the run's first 20, each cut, so that the run
 * does not pass Step Functions' 256 KiB (States.DataLimitExceeded, which no Catch handles: the run
 * would end unreported, still `running` in roundtrip.runs).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WARNING_MESSAGE_CHARS, WARNINGS_KEPT } from '../../lambdas/core/transform';
import { MAX_PAYLOAD_BYTES, payloadBytes } from '../../statemachine/local';
import { exampleConfig, startWorld, type E2eWorld } from './support/harness';

/** A file of one DO block that raises `count` warnings of `chars` characters each, on its line 4. */
function warningFile(count: number, chars: number): string {
  return [
    'DO $$',
    'BEGIN',
    `  FOR i IN 1..${count} LOOP`,
    `    RAISE WARNING 'leads without a score: %', repeat('x', ${chars - 'leads without a score: '.length});`,
    '  END LOOP;',
    'END',
    '$$;',
    '',
  ].join('\n');
}

describe('a transform whose files raise many long warnings', () => {
  const LONG = 16_000;
  let dir: string;
  let world: E2eWorld;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'rt-warnings-'));
    // 15 + 10 warnings of 16,000 characters: 400 KB kept whole.
    writeFileSync(path.join(dir, 'first.sql'), warningFile(15, LONG));
    writeFileSync(path.join(dir, 'second.sql'), warningFile(10, LONG));
    const example = await exampleConfig();
    const transform = [...example.transform, path.join(dir, 'first.sql'), path.join(dir, 'second.sql')];
    world = await startWorld({ leads: 20, customers: 10, config: { ...example, transform } });
  }, 120_000);
  afterAll(async () => {
    await world?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("succeeds, its state small, keeping the run's first 20 warnings cut and counting the others", async () => {
    let largest = 0;
    const result = await world.run(
      {},
      {
        onEvent: (event) => {
          if (event.type === 'exited') largest = Math.max(largest, payloadBytes(event.output));
        },
      },
    );

    expect(result.execution).toMatchObject({ status: 'succeeded' });
    expect(largest).toBeLessThan(MAX_PAYLOAD_BYTES / 4);
    const { rows } = await world.local.pool.query<{
      status: string;
      summary: { transform: { files: { file: string; warnings?: { line: number; message: string }[] }[] } };
    }>(`SELECT status, summary FROM roundtrip.runs WHERE run_id = $1`, [result.summary.runId]);
    expect(rows[0]?.status).toBe('succeeded');
    const [score, first, second] = rows[0]?.summary.transform.files ?? [];
    expect(score?.warnings).toBeUndefined();
    // Each kept message cut at WARNING_MESSAGE_CHARS (PostgreSQL's text, then where it was raised).
    const kept = `leads without a score: ${'x'.repeat(WARNING_MESSAGE_CHARS - 'leads without a score: '.length)}`;
    const whole = LONG + '; in the DO block, line 4 at RAISE'.length;
    expect(first?.warnings).toEqual(
      Array.from({ length: 15 }, () => ({
        line: 4,
        message: `${kept}… (${whole} characters; the step's log has it whole)`,
      })),
    );
    // The second file keeps what is left of the run's 20, then counts the rest.
    expect(second?.warnings).toHaveLength(WARNINGS_KEPT - 15 + 1);
    expect(second?.warnings?.at(-1)).toEqual({
      line: 4,
      message: `and 5 more warnings (a run keeps its first ${WARNINGS_KEPT}; the step's log has each)`,
    });
  }, 300_000);
});
