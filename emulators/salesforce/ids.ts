/**
 * Salesforce record ids: 15 case-sensitive characters (3-character key prefix, 2-character
 * instance, 1 reserved character, 9-character base-62 counter) plus, in the 18-character
 * form every API returns, a 3-character case-safe suffix.
 *
 * The suffix encodes which letters of the 15-character id are upper case: the id is split
 * into three chunks of five; in each chunk, character i (0-based, left to right) sets bit i
 * when it is an upper-case letter; the 5-bit number indexes {@link ID_SUFFIX_ALPHABET}
 * (the algorithm behind the CASESAFEID() formula function; e.g. `00D000000000062` →
 * `00D000000000062EAA`).
 */

/** The alphabet the case-safe suffix indexes into: A–Z then 0–5 (32 symbols). */
export const ID_SUFFIX_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ012345';

/**
 * Base-62 digits in ASCII order, so that ids the emulator generates sort by creation order
 * under a binary (C-collation) string comparison, like PostgreSQL's `ORDER BY id COLLATE "C"`.
 */
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Instance ("pod") characters and reserved character of the ids the emulator generates. */
export const EMULATOR_ID_INSTANCE = '5e0';

const ID15 = /^[A-Za-z0-9]{15}$/;
const ID18 = /^[A-Za-z0-9]{18}$/;

/** The 3-character case-safe suffix of a 15-character id. */
export function idSuffix(id15: string): string {
  if (!ID15.test(id15)) throw new Error(`idSuffix needs a 15-character alphanumeric id, got '${id15}'`);
  let suffix = '';
  for (let chunk = 0; chunk < 3; chunk += 1) {
    let bits = 0;
    for (let i = 0; i < 5; i += 1) {
      const c = id15.charCodeAt(chunk * 5 + i);
      if (c >= 65 && c <= 90) bits |= 1 << i;
    }
    suffix += ID_SUFFIX_ALPHABET[bits];
  }
  return suffix;
}

/** The 18-character form of a 15-character id. */
export function to18(id15: string): string {
  return id15 + idSuffix(id15);
}

/**
 * Normalises an id given as input (15 or 18 characters) to the canonical 18-character
 * form, or returns undefined when it is malformed. An 18-character id is matched
 * case-insensitively, as Salesforce does: its suffix restores the case of the first 15
 * characters (so `00q5e000000000aBCD` style mangling by case-insensitive tools is undone).
 */
export function normalizeId(input: string): string | undefined {
  if (ID15.test(input)) return to18(input);
  if (!ID18.test(input)) return undefined;
  const suffix = input.slice(15).toUpperCase();
  let restored = '';
  for (let chunk = 0; chunk < 3; chunk += 1) {
    const bits = ID_SUFFIX_ALPHABET.indexOf(suffix[chunk] ?? '');
    if (bits < 0) return undefined;
    for (let i = 0; i < 5; i += 1) {
      const ch = input[chunk * 5 + i] ?? '';
      const upper = (bits & (1 << i)) !== 0;
      if (/[A-Za-z]/.test(ch)) restored += upper ? ch.toUpperCase() : ch.toLowerCase();
      else if (upper)
        return undefined; // the suffix claims an upper-case letter where there is a digit
      else restored += ch;
    }
  }
  return restored + suffix;
}

/** Largest counter a 9-character base-62 field holds. */
export const MAX_ID_COUNTER = 62 ** 9 - 1;

/**
 * The 18-character id of the n-th record of an object (n ≥ 1):
 * key prefix + {@link EMULATOR_ID_INSTANCE} + n in 9 base-62 digits + suffix.
 */
export function makeId(keyPrefix: string, counter: number, instance = EMULATOR_ID_INSTANCE): string {
  if (!/^[A-Za-z0-9]{3}$/.test(keyPrefix))
    throw new Error(`key prefix must be 3 alphanumeric characters, got '${keyPrefix}'`);
  if (!/^[A-Za-z0-9]{3}$/.test(instance))
    throw new Error(`instance must be 3 alphanumeric characters, got '${instance}'`);
  if (!Number.isSafeInteger(counter) || counter < 0 || counter > MAX_ID_COUNTER) {
    throw new Error(`id counter out of range: ${counter}`);
  }
  let digits = '';
  let n = counter;
  for (let i = 0; i < 9; i += 1) {
    digits = BASE62[n % 62] + digits;
    n = Math.floor(n / 62);
  }
  return to18(keyPrefix + instance + digits);
}
