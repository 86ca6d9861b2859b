/**
 * The demo's data: Salesforce leads and data-lake customers, generated from a fixed seed so
 * that every run (the demo, the e2e tests, the benchmarks) sees exactly the same rows.
 *
 * About `matchRate` of the leads share an e-mail address with a customer, written with
 * other case now and then on either side, and with stray spaces on the data lake's side (the
 * scoring SQL matches on trimmed lower case).
 * A few customers have no e-mail, a NULL value or an empty segment, so that the NULL rules
 * of the scoring comment are exercised too.
 */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';

/** Options of {@link generateDemoData}. */
export interface DemoDataOptions {
  /** Number of leads. @default 10_000 */
  readonly leads?: number;
  /** Number of customers. @default 5_000 */
  readonly customers?: number;
  /** The random seed. @default 42 */
  readonly seed?: number;
  /** Share of leads whose e-mail belongs to a customer. @default 0.4 */
  readonly matchRate?: number;
}

/** A lead as seeded into the Salesforce emulator (Id and system fields are the emulator's). */
export interface DemoLead {
  FirstName: string;
  LastName: string;
  Email: string | null;
  Company: string;
  Status: string;
  /** A lead whose Status is the converted one was converted: Salesforce refuses updates of it. */
  IsConverted: boolean;
  LeadSource: string | null;
  Industry: string | null;
  AnnualRevenue: number | null;
  NumberOfEmployees: number | null;
}

/** A row of `marketing.customers` in the Athena emulator. */
export interface DemoCustomer {
  email: string | null;
  /** decimal(12,2) as text, e.g. `'1500.00'` */
  lifetime_value: string | null;
  order_count: number | null;
  /** `YYYY-MM-DD HH:MM:SS`, Athena's timestamp text */
  last_order_at: string | null;
  segment: string | null;
}

export const DEMO_DEFAULTS = { leads: 10_000, customers: 5_000, seed: 42, matchRate: 0.4 } as const;

/** mulberry32: a small, fast PRNG with a 32-bit state; the same seed gives the same stream. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FIRST = [
  'Ada',
  'Grace',
  'Linus',
  'Yuki',
  'Amara',
  'Chen',
  'Olga',
  'Mateo',
  'Priya',
  'Kofi',
  'Élodie',
  'Søren',
];
const LAST = [
  'Lovelace',
  'Hopper',
  'Torvalds',
  'Tanaka',
  'Okafor',
  'Wei',
  'Petrova',
  'García',
  'Sharma',
  "O'Neil",
];
const COMPANY = [
  'Acme',
  'Globex',
  'Initech',
  'Umbrella',
  'Hooli',
  'Stark Industries',
  'Wayne, Inc.',
  'Tyrell "Corp"',
];
const STATUS = [
  'Open - Not Contacted',
  'Working - Contacted',
  'Closed - Not Converted',
  'Closed - Converted',
];
const STATUS_WEIGHTS = [0.45, 0.35, 0.15, 0.05];
/** The status a lead gets when converted (the describe's picklist; an org may name its own). */
const CONVERTED_STATUS = 'Closed - Converted';
const SOURCE = ['Web', 'Phone Inquiry', 'Partner Referral', 'Purchased List', 'Other', null];
const INDUSTRY = ['Technology', 'Retail', 'Banking', 'Healthcare', 'Manufacturing', null];
const SEGMENT = ['enterprise', 'Enterprise ', 'smb', 'mid-market', '', null];

/** A customer's e-mail as the data lake has it: now and then in other case or with stray spaces. */
function customerEmail(i: number): string {
  const base = `customer${i}@example.com`;
  if (i % 10 === 3) return `  ${base} `;
  if (i % 10 === 7) return base.replace('customer', 'Customer');
  return base;
}

/** Generates the demo's leads and customers. Pure: the same options give the same data. */
export function generateDemoData(options: DemoDataOptions = {}): {
  leads: DemoLead[];
  customers: DemoCustomer[];
} {
  const { leads: nLeads, customers: nCustomers, seed, matchRate } = { ...DEMO_DEFAULTS, ...options };
  const random = seededRandom(seed);
  const int = (min: number, max: number): number => min + Math.floor(random() * (max - min + 1));
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const weighted = <T>(items: readonly T[], weights: readonly number[]): T => {
    let r = random();
    for (let i = 0; i < items.length; i++) {
      r -= weights[i] ?? 0;
      if (r < 0) return items[i] as T;
    }
    return items[items.length - 1] as T;
  };

  const customers: DemoCustomer[] = [];
  for (let i = 0; i < nCustomers; i++) {
    const dayOffset = int(0, 700); // back from 2025-06-01, across every recency tier
    const when = new Date(Date.UTC(2025, 5, 1, int(0, 23), int(0, 59), int(0, 59)) - dayOffset * 86_400_000);
    customers.push({
      email: i % 97 === 13 ? null : customerEmail(i),
      lifetime_value: i % 53 === 7 ? null : (int(0, 2_000_000) / 100).toFixed(2),
      order_count: i % 61 === 5 ? null : int(0, 12),
      last_order_at: i % 41 === 3 ? null : when.toISOString().slice(0, 19).replace('T', ' '),
      segment: pick(SEGMENT),
    });
  }

  const leads: DemoLead[] = [];
  for (let i = 0; i < nLeads; i++) {
    let email: string | null;
    if (nCustomers > 0 && random() < matchRate) {
      // Salesforce refuses an e-mail with surrounding spaces (INVALID_EMAIL_ADDRESS), so leads
      // vary only the case; the data lake's side also carries stray spaces (customerEmail).
      const base = `customer${int(0, nCustomers - 1)}@example.com`;
      email = int(0, 9) === 0 ? base.toUpperCase() : base;
    } else {
      email = random() < 0.05 ? null : `lead${i}@prospect.example.org`;
    }
    // The values are drawn in this order (the same seed, the same data).
    const firstName = pick(FIRST);
    const lastName = `${pick(LAST)} ${i}`;
    const company = pick(COMPANY);
    const status = weighted(STATUS, STATUS_WEIGHTS);
    leads.push({
      FirstName: firstName,
      LastName: lastName,
      Email: email,
      Company: company,
      Status: status,
      IsConverted: status === CONVERTED_STATUS,
      LeadSource: pick(SOURCE),
      Industry: pick(INDUSTRY),
      AnnualRevenue: random() < 0.2 ? null : int(10, 500_000) * 1000,
      NumberOfEmployees: random() < 0.1 ? null : pick([3, 12, 45, 99, 100, 250, 999, 1000, 5000]),
    });
  }
  return { leads, customers };
}

const CUSTOMER_COLUMNS = ['email', 'lifetime_value', 'order_count', 'last_order_at', 'segment'] as const;

/** One CSV field in Athena's dialect: NULL is an empty unquoted field, every value is quoted. */
function athenaCsvField(value: string | number | null): string {
  return value === null ? '' : `"${String(value).replace(/"/g, '""')}"`;
}

/** Writes customers as an Athena-dialect CSV file (header, quoted values, LF after every line). */
export async function writeCustomersCsv(file: string, customers: readonly DemoCustomer[]): Promise<void> {
  const out = createWriteStream(file);
  out.write(CUSTOMER_COLUMNS.join(',') + '\n');
  for (const c of customers) {
    const line = CUSTOMER_COLUMNS.map((k) => athenaCsvField(c[k])).join(',') + '\n';
    if (!out.write(line)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}
