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

/**
 * The key prefixes of standard objects, which are the same in every org (Salesforce's "Standard
 * Field Record ID Prefix Decoder"): they name the object an Id belongs to without a describe. A
 * custom object's prefix differs from org to org and is not here. Prefixes are case-sensitive
 * (`00E` UserRole, `00e` Profile).
 */
export const STANDARD_KEY_PREFIXES: Readonly<Record<string, string>> = {
  '001': 'Account',
  '002': 'Note',
  '003': 'Contact',
  '005': 'User',
  '006': 'Opportunity',
  '00D': 'Organization',
  '00E': 'UserRole',
  '00G': 'Group',
  '00P': 'Attachment',
  '00Q': 'Lead',
  '00T': 'Task',
  '00U': 'Event',
  '00X': 'EmailTemplate',
  '00e': 'Profile',
  '00k': 'OpportunityLineItem',
  '00v': 'CampaignMember',
  '012': 'RecordType',
  '015': 'Document',
  '01s': 'Pricebook2',
  '01t': 'Product2',
  '01u': 'PricebookEntry',
  '02i': 'Asset',
  '02s': 'EmailMessage',
  '068': 'ContentVersion',
  '069': 'ContentDocument',
  '0Q0': 'Quote',
  '0WO': 'WorkOrder',
  '500': 'Case',
  '501': 'Solution',
  '701': 'Campaign',
  '800': 'Contract',
  '801': 'Order',
  '802': 'OrderItem',
};
