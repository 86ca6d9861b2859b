/**
 * The lead scores worked out in TypeScript from the generated data, by the rules written in the
 * header comment of examples/lead-scoring/transforms/lead_score.sql — independently of the SQL,
 * so that the e2e tests compare the pipeline's result with a second implementation.
 * Money is counted in cents (integers) so that no float rounding can blur a tier boundary.
 */
import type { DemoCustomer, DemoLead } from '../../../examples/lead-scoring/generate';

/** `btrim(x)` trims spaces only; then lower case. */
function emailKey(email: string | null): string | undefined {
  if (email === null) return undefined;
  const trimmed = email.replace(/^ +| +$/g, '');
  return trimmed === '' ? undefined : trimmed.toLowerCase();
}

function cents(value: string | null): number {
  if (value === null) return 0;
  const m = /^(-?)(\d+)(?:\.(\d{1,2}))?$/.exec(value);
  if (!m) throw new Error(`unexpected lifetime_value ${value}`);
  const whole = Number(m[2]) * 100 + Number((m[3] ?? '0').padEnd(2, '0'));
  return m[1] === '-' ? -whole : whole;
}

interface Customer {
  lifetimeCents: number;
  orders: number;
  lastOrder: string | undefined;
  enterprise: boolean;
}

function customersByEmail(customers: readonly DemoCustomer[]): Map<string, Customer> {
  const byEmail = new Map<string, Customer>();
  for (const c of customers) {
    const key = emailKey(c.email);
    if (key === undefined) continue;
    const agg = byEmail.get(key) ?? { lifetimeCents: 0, orders: 0, lastOrder: undefined, enterprise: false };
    agg.lifetimeCents += cents(c.lifetime_value);
    agg.orders += c.order_count ?? 0;
    if (c.last_order_at !== null && (agg.lastOrder === undefined || c.last_order_at > agg.lastOrder)) {
      agg.lastOrder = c.last_order_at;
    }
    if (c.segment !== null && c.segment.replace(/^ +| +$/g, '').toLowerCase() === 'enterprise') {
      agg.enterprise = true;
    }
    byEmail.set(key, agg);
  }
  return byEmail;
}

/** 90 and 365 days before the fixed reference date 2025-06-01, as Athena timestamp text. */
const RECENT = '2025-03-03 00:00:00';
const WITHIN_YEAR = '2024-06-01 00:00:00';

/** The score of one lead, or undefined for a lead the rules leave out (converted). */
export function expectedScore(lead: DemoLead, customers: ReadonlyMap<string, Customer>): number | undefined {
  if (lead.IsConverted) return undefined;
  let total = 10;
  const key = emailKey(lead.Email);
  const c = key === undefined ? undefined : customers.get(key);
  if (c) {
    total += 20;
    if (c.lifetimeCents >= 1_000_000) total += 25;
    else if (c.lifetimeCents >= 100_000) total += 15;
    else if (c.lifetimeCents > 0) total += 5;
    if (c.lastOrder !== undefined && c.lastOrder >= RECENT) total += 15;
    else if (c.lastOrder !== undefined && c.lastOrder >= WITHIN_YEAR) total += 5;
    if (c.orders >= 5) total += 5;
    if (c.enterprise) total += 10;
  }
  const employees = lead.NumberOfEmployees;
  if (employees !== null) {
    if (employees >= 1000) total += 15;
    else if (employees >= 100) total += 10;
    else if (employees >= 10) total += 5;
  }
  if (lead.LeadSource === 'Partner Referral') total += 10;
  else if (lead.LeadSource === 'Web') total += 5;
  else if (lead.LeadSource === 'Purchased List') total -= 10;
  if (lead.Status === 'Working - Contacted') total += 5;
  else if (lead.Status === 'Closed - Not Converted') total -= 20;
  return Math.max(0, Math.min(100, total));
}

/** Every lead's expected score (undefined: not scored), in the leads' order. */
export function expectedScores(
  leads: readonly DemoLead[],
  customers: readonly DemoCustomer[],
): (number | undefined)[] {
  const byEmail = customersByEmail(customers);
  return leads.map((lead) => expectedScore(lead, byEmail));
}
