/**
 * Plain-text tables for the CLI's output: each column as wide as its widest cell, two spaces
 * between columns.
 */

/** The aligned lines of `rows` (a header is just the first row), and each column's width. */
export function alignColumns(
  rows: readonly (readonly string[])[],
  rightAligned: (column: number) => boolean,
  options: { padLast?: boolean } = {},
): { lines: string[]; widths: number[] } {
  const padLast = options.padLast ?? true;
  const columns = Math.max(0, ...rows.map((r) => r.length));
  const widths = Array.from({ length: columns }, (_, i) =>
    Math.max(0, ...rows.map((r) => (r[i] ?? '').length)),
  );
  const lines = rows.map((row) =>
    row
      .map((cell, i) => {
        if (rightAligned(i)) return cell.padStart(widths[i]!);
        // A left-aligned last cell needs no padding unless asked for.
        return i === row.length - 1 && !padLast ? cell : cell.padEnd(widths[i]!);
      })
      .join('  '),
  );
  return { lines, widths };
}
