/**
 * Salesforce record Ids as people type them: 15 case-sensitive letters and digits, or the
 * 18-character form every API returns, whose last three characters say which of the first 15 are
 * upper case (five each, bit i for character i, indexing {@link ID_SUFFIX_ALPHABET}: the
 * CASESAFEID() formula function; "What are Salesforce IDs composed of", Help article 000385585).
 * The first three characters are the key prefix of the record's object (Lead `00Q`).
 */

/** The alphabet the 18-character form's suffix indexes: A–Z then 0–5 (32 symbols, 5 bits). */
export const ID_SUFFIX_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ012345';

const ID15 = /^[A-Za-z0-9]{15}$/;
const ID18 = /^[A-Za-z0-9]{18}$/;

function suffixOf(id15: string): string {
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

/**
 * An Id typed as text (surrounding blanks ignored) in the 18-character form the APIs return, or
 * why it is not one. An 18-character Id names one record in any case, as Salesforce reads it:
 * its suffix restores the case of the first 15 characters; a suffix that cannot be one (a
 * character outside its alphabet, an upper-case mark on a digit) is refused.
 */
export function canonicalSalesforceId(text: string): { id: string } | { problem: string } {
  const input = text.trim();
  if (ID15.test(input)) return { id: input + suffixOf(input) };
  if (!ID18.test(input)) {
    return {
      problem: `"${text}" is not a Salesforce Id: 15 or 18 letters and digits (it has ${input.length} characters${/[^A-Za-z0-9]/.test(input) ? ', not all letters or digits' : ''})`,
    };
  }
  const suffix = input.slice(15).toUpperCase();
  let restored = '';
  for (let chunk = 0; chunk < 3; chunk += 1) {
    const bits = ID_SUFFIX_ALPHABET.indexOf(suffix[chunk] ?? '');
    if (bits < 0) {
      return {
        problem: `"${text}" is not a Salesforce Id: its last three characters (${input.slice(15)}) are not the case checksum of an 18-character Id (letters A–Z and digits 0–5)`,
      };
    }
    for (let i = 0; i < 5; i += 1) {
      const ch = input[chunk * 5 + i] ?? '';
      const upper = (bits & (1 << i)) !== 0;
      if (/[A-Za-z]/.test(ch)) restored += upper ? ch.toUpperCase() : ch.toLowerCase();
      else if (upper) {
        return {
          problem: `"${text}" is not a Salesforce Id: its case checksum (${input.slice(15)}) marks character ${chunk * 5 + i + 1} (${ch}) as an upper-case letter (a character mistyped?)`,
        };
      } else restored += ch;
    }
  }
  return { id: restored + suffix };
}
