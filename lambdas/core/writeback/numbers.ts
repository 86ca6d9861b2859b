/**
 * What Salesforce keeps of a number: the API types number fields `xsd:double`, and Help article
 * 000385889 says custom number fields "are stored as Double values" (docs/writeback.md, "Values
 * Salesforce stores otherwise", item 6). The plan and the insert reconciliation read it here.
 */
import type { MappedField } from './plan';

/**
 * Significant digits a double (IEEE 754 binary64) gives back exactly: 15. Salesforce types number
 * fields `xsd:double`, and its Help (000385889) says custom number fields are stored as doubles.
 */
export const DOUBLE_EXACT_DIGITS = 15;

/** Whether a number field's precision lets it take values a double cannot hold exactly. */
export function holdsMoreThanDouble(m: Pick<MappedField, 'field' | 'kind'>): boolean {
  return m.kind === 'number' && (m.field.precision ?? 18) > DOUBLE_EXACT_DIGITS;
}
