/**
 * A transform of very many statements (generated scripts of one INSERT a row, say): the Transform
 * step's output, which the state machine carries in the execution's state, says each file's
 * statement and row totals, not one count a statement, so that it stays far below Step Functions'
 * 256 KiB (States.DataLimitExceeded, which no Catch handles: the run would end unreported, still
 * `running` in roundtrip.runs). The run's summary keeps every statement's count.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MAX_PAYLOAD_BYTES, payloadBytes } from '../../statemachine/local';
import { exampleConfig, startWorld, type E2eWorld } from './support/harness';

/** 140,000 statements: their counts, a digit and a comma each, would pass 256 KiB. */
const FILES = 70;
const STATEMENTS_A_FILE = 2_000;

/** A file that makes the table if need be, then inserts one row a statement. */
function generatedFile(): string {
  const lines = ['CREATE TEMP TABLE IF NOT EXISTS generated_rows (n int);'];
  for (let i = 1; i < STATEMENTS_A_FILE; i += 1) lines.push(`INSERT INTO generated_rows VALUES (${i});`);
  return `${lines.join('\n')}\n`;
}

describe('a transform of very many statements', () => {
  let dir: string;
  let generated: string[];
  let world: E2eWorld;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'rt-statements-'));
    generated = Array.from({ length: FILES }, (_, i) => path.join(dir, `generated_${i}.sql`));
    for (const file of generated) writeFileSync(file, generatedFile());
    const example = await exampleConfig();
    world = await startWorld({
      leads: 20,
      customers: 10,
      config: { ...example, transform: [...example.transform, ...generated] },
    });
  }, 120_000);
  afterAll(async () => {
    await world?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("succeeds, its state small: the step's output gives each file's totals, the run's summary every statement's count", async () => {
    let largest = 0;
    let transformOutput: unknown;
    const result = await world.run(
      {},
      {
        onEvent: (event) => {
          if (event.type !== 'exited') return;
          largest = Math.max(largest, payloadBytes(event.output));
          if (event.state === 'Transform') transformOutput = event.output;
        },
      },
    );

    expect(result.execution).toEqual(expect.objectContaining({ status: 'succeeded' }));
    expect(largest).toBeLessThan(MAX_PAYLOAD_BYTES / 4);
    const files = (transformOutput as { files: Record<string, unknown>[] }).files;
    expect(files.filter((f) => generated.includes(f.file as string))).toEqual(
      generated.map((file) => ({
        file,
        statements: STATEMENTS_A_FILE,
        rows: STATEMENTS_A_FILE - 1,
        durationMs: expect.any(Number),
      })),
    );
    expect(files.filter((f) => 'rowCounts' in f)).toEqual([]);
    const { rows } = await world.local.pool.query<{ status: string; file: string; counts: number[] }>(
      `SELECT status, f->>'file' AS file, f->'rowCounts' AS counts
         FROM roundtrip.runs, jsonb_array_elements(summary->'transform'->'files') AS f
        WHERE run_id = $1 AND f->>'file' = ANY($2)`,
      [result.summary.runId, generated],
    );
    expect(rows).toHaveLength(FILES);
    const counts = [0, ...Array.from({ length: STATEMENTS_A_FILE - 1 }, () => 1)];
    for (const row of rows) {
      expect(row.status).toBe('succeeded');
      expect(row.counts).toEqual(counts);
    }
  }, 600_000);
});
