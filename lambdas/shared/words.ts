/** Phrasing shared by messages. */

/** `a`, `a and b`, `a, b and c`: a list as a sentence says it. */
export function listed(items: readonly (string | number)[]): string {
  return items.length <= 1
    ? String(items[0] ?? '')
    : `${items.slice(0, -1).join(', ')} and ${String(items.at(-1))}`;
}
