/**
 * Helpers the benchmarks share (bench/index.ts lists no file whose name starts with `_`).
 */

export const MB = 1024 * 1024;

/** `--name N`: a positive integer, `fallback` when absent. */
export function option(argv: string[], name: string, fallback: number): number {
  const at = argv.indexOf(`--${name}`);
  const value = at >= 0 ? Number(argv[at + 1]) : fallback;
  if (!Number.isInteger(value) || value <= 0) throw new Error(`--${name} must be a positive integer`);
  return value;
}
