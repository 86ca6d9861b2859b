/**
 * examples/lead-scoring/transforms/lead_score.sql on a real PostgreSQL: tables shaped as the
 * extracts create them (Salesforce field names as quoted column names, Athena columns in
 * lower case), a handful of leads, and each score checked against the value worked out by
 * hand from the rules in the file's header comment.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/database';

const SQL_FILE = path.resolve(__dirname, '../../examples/lead-scoring/transforms/lead_score.sql');

/** Column types as the PostgreSQL connector maps the Lead describe (lambdas/connectors/postgres/types.ts). */
const CREATE_SF_LEAD = `
  CREATE TABLE sf_lead (
    "Id" character varying(18) PRIMARY KEY,
    "FirstName" text, "LastName" text, "Email" text, "Company" text,
    "Status" text, "LeadSource" text, "Industry" text,
    "AnnualRevenue" numeric(18,0), "NumberOfEmployees" integer, "LeadScore__c" numeric(3,0),
    "SystemModstamp" timestamp with time zone, "IsDeleted" boolean, "IsConverted" boolean
  )`;

/** Athena's decimal arrives as numeric(p,s), its double as double precision: the SQL must take both. */
const createCustomers = (lifetimeValueType: string): string => `
  CREATE TABLE athena_customers (
    email text, lifetime_value ${lifetimeValueType}, order_count integer,
    last_order_at timestamp without time zone, segment text
  )`;

interface Lead {
  Id: string;
  Email: string | null;
  Status: string | null;
  LeadSource: string | null;
  NumberOfEmployees: number | null;
  IsDeleted: boolean | null;
  IsConverted: boolean | null;
}

interface Customer {
  email: string | null;
  lifetime_value: number | null;
  order_count: number | null;
  last_order_at: string | null;
  segment: string | null;
}

const lead = (Id: string, rest: Partial<Omit<Lead, 'Id'>>): Lead => ({
  Id,
  Email: null,
  Status: null,
  LeadSource: null,
  NumberOfEmployees: null,
  IsDeleted: false,
  IsConverted: false,
  ...rest,
});

const customer = (email: string | null, rest: Partial<Omit<Customer, 'email'>>): Customer => ({
  email,
  lifetime_value: null,
  order_count: null,
  last_order_at: null,
  segment: null,
  ...rest,
});

const LEADS: Lead[] = [
  // The worked example of the comment.
  lead('00Q000000000001AAA', {
    Email: ' Ada@Example.com ',
    LeadSource: 'Web',
    Status: 'Working - Contacted',
    NumberOfEmployees: 250,
  }),
  // Everything at its best: the sum passes 100.
  lead('00Q000000000002AAA', {
    Email: 'grace@navy.example',
    LeadSource: 'Partner Referral',
    Status: 'Working - Contacted',
    NumberOfEmployees: 5000,
  }),
  // Everything against: the sum is below 0.
  lead('00Q000000000003AAA', {
    LeadSource: 'Purchased List',
    Status: 'Closed - Not Converted',
  }),
  // No customer with this email.
  lead('00Q000000000004AAA', {
    Email: 'nobody@example.com',
    LeadSource: 'Other',
    Status: 'Open - Not Contacted',
    NumberOfEmployees: 10,
  }),
  // Deleted: left out.
  lead('00Q000000000005AAA', { Email: 'ada@example.com', IsDeleted: true, NumberOfEmployees: 5000 }),
  // Converted: left out.
  lead('00Q000000000006AAA', { Email: 'ada@example.com', Status: 'Closed - Converted', IsConverted: true }),
  // Converted to the org's own converted status: left out all the same.
  lead('00Q00000000000BAAA', { Email: 'ada@example.com', Status: 'Qualified', IsConverted: true }),
  // Just below the 1000 value tier and the 90-day cutoff.
  lead('00Q000000000007AAA', { Email: 'linus@example.com', LeadSource: 'Web', NumberOfEmployees: 99 }),
  // Missing customer values; a lead source in the wrong case.
  lead('00Q000000000008AAA', {
    Email: 'KEN@EXAMPLE.COM',
    LeadSource: 'web',
    Status: 'Working - Contacted',
    NumberOfEmployees: 1000,
  }),
  // IsDeleted and IsConverted NULL count as not deleted, not converted; value 0; a last order
  // exactly on the 365-day cutoff.
  lead('00Q000000000009AAA', {
    Email: 'barbara@example.com',
    LeadSource: 'Partner Referral',
    NumberOfEmployees: 100,
    IsDeleted: null,
    IsConverted: null,
  }),
  // A blank email matches nothing, not even a customer with a blank email.
  lead('00Q00000000000AAAA', { Email: '   ', NumberOfEmployees: 0 }),
];

const CUSTOMERS: Customer[] = [
  customer('ada@example.com', {
    lifetime_value: 1500,
    order_count: 6,
    last_order_at: '2025-05-20 10:00:00',
    segment: 'Enterprise',
  }),
  customer('grace@navy.example', {
    lifetime_value: 8000,
    order_count: 3,
    last_order_at: '2024-12-01 08:00:00',
    segment: 'smb',
  }),
  customer('Grace@Navy.example', {
    lifetime_value: 4000,
    order_count: 3,
    last_order_at: '2025-03-03 00:00:00',
    segment: ' ENTERPRISE ',
  }),
  customer('linus@example.com', {
    lifetime_value: 999.99,
    order_count: 4,
    last_order_at: '2025-03-02 23:59:59',
  }),
  customer('ken@example.com', { last_order_at: '2024-05-31 23:59:59', segment: 'enterprise' }),
  customer('barbara@example.com', {
    lifetime_value: 0,
    order_count: 1,
    last_order_at: '2024-06-01 00:00:00',
  }),
  customer('', {
    lifetime_value: 50_000,
    order_count: 50,
    last_order_at: '2025-05-31 00:00:00',
    segment: 'enterprise',
  }),
  customer(null, { lifetime_value: 50_000, order_count: 50, last_order_at: '2025-05-31 00:00:00' }),
];

/**
 * The scores, worked out by hand from the rules in lead_score.sql's header. Terms in the
 * rules' order: base, customer, value, recency, orders, segment, size, source, status.
 */
const EXPECTED: Record<string, number> = {
  // 10 + 20 + 15 (1500) + 15 (2025-05-20) + 5 (6 orders) + 10 (Enterprise) + 10 (250) + 5 (Web) + 5 (Working) = 95
  '00Q000000000001AAA': 95,
  // two rows, one customer: value 12000, 6 orders, latest order 2025-03-03 00:00 (on the cutoff), one enterprise row
  // 10 + 20 + 25 + 15 + 5 + 10 + 15 (5000) + 10 (Partner Referral) + 5 (Working) = 115, clamped to 100
  '00Q000000000002AAA': 100,
  // 10 - 10 (Purchased List) - 20 (Closed - Not Converted) = -20, clamped to 0
  '00Q000000000003AAA': 0,
  // 10 + 5 (10 employees); Other and Open - Not Contacted give 0
  '00Q000000000004AAA': 15,
  // 10 + 20 + 5 (999.99) + 5 (2025-03-02 23:59:59 is before 2025-03-03, after 2024-06-01) + 0 (4 orders) + 0 (no segment)
  //   + 5 (99 employees) + 5 (Web) + 0 (no status) = 50
  '00Q000000000007AAA': 50,
  // 10 + 20 (matched in lower case) + 0 (no value) + 0 (2024-05-31 23:59:59 is before 2024-06-01) + 0 + 10 (enterprise)
  //   + 15 (1000) + 0 ('web' is not 'Web') + 5 (Working) = 60
  '00Q000000000008AAA': 60,
  // 10 + 20 + 0 (value 0 is not > 0) + 5 (2024-06-01 00:00:00 is on the 365-day cutoff) + 0 (1 order) + 0
  //   + 10 (100 employees) + 10 (Partner Referral) + 0 = 55
  '00Q000000000009AAA': 55,
  // 10 + nothing matched + 0 employees
  '00Q00000000000AAAA': 10,
};

async function fill(client: Client, lifetimeValueType: string): Promise<void> {
  await client.query(CREATE_SF_LEAD);
  await client.query(createCustomers(lifetimeValueType));
  for (const l of LEADS) {
    await client.query(
      `INSERT INTO sf_lead ("Id", "LastName", "Company", "Email", "Status", "LeadSource", "NumberOfEmployees",
                            "IsDeleted", "IsConverted", "SystemModstamp")
       VALUES ($1, 'Test', 'Test Co', $2, $3, $4, $5, $6, $7, '2025-05-01T00:00:00Z')`,
      [l.Id, l.Email, l.Status, l.LeadSource, l.NumberOfEmployees, l.IsDeleted, l.IsConverted],
    );
  }
  for (const c of CUSTOMERS) {
    await client.query(
      'INSERT INTO athena_customers (email, lifetime_value, order_count, last_order_at, segment) VALUES ($1, $2, $3, $4, $5)',
      [c.email, c.lifetime_value, c.order_count, c.last_order_at, c.segment],
    );
  }
}

async function scores(client: Client): Promise<Record<string, number>> {
  const { rows } = await client.query<{ Id: string; lead_score: number }>(
    'SELECT "Id", lead_score FROM lead_reverse ORDER BY "Id"',
  );
  return Object.fromEntries(rows.map((r) => [r.Id, r.lead_score]));
}

describe('examples/lead-scoring/transforms/lead_score.sql', () => {
  let db: TestDatabase;
  let client: Client;
  let sql: string;

  beforeAll(async () => {
    sql = await readFile(SQL_FILE, 'utf8');
    db = await createTestDatabase();
    client = new Client({ connectionString: db.url });
    await client.connect();
  });
  afterAll(async () => {
    await client.end();
    await db.drop();
  });

  // Each case in its own schema, found through search_path as the transform step runs it.
  describe.each([
    ['double precision', 'scores_double'],
    ['numeric(12,2)', 'scores_decimal'],
  ])('with lifetime_value as %s', (lifetimeValueType, schema) => {
    beforeAll(async () => {
      await client.query(`CREATE SCHEMA ${schema}`);
      await client.query(`SET search_path TO ${schema}`);
      await fill(client, lifetimeValueType);
    });

    it('gives every lead the score its rules add up to, leaving out deleted and converted leads', async () => {
      await client.query(sql);
      expect(await scores(client)).toEqual(EXPECTED);
    });

    it('makes lead_reverse an integer column the write-back can send to a Number(3,0) field', async () => {
      const { rows } = await client.query<{ column_name: string; data_type: string }>(
        `SELECT column_name, data_type FROM information_schema.columns
         WHERE table_schema = $1 AND table_name = 'lead_reverse' ORDER BY ordinal_position`,
        [schema],
      );
      expect(rows).toEqual([
        { column_name: 'Id', data_type: 'text' },
        { column_name: 'lead_score', data_type: 'integer' },
      ]);
    });

    it('converges on a rerun after the data changed: scores follow, leads gone from the input are gone', async () => {
      await client.query(`UPDATE sf_lead SET "IsDeleted" = true WHERE "Id" = '00Q000000000004AAA'`);
      await client.query(`UPDATE sf_lead SET "LeadSource" = 'Web' WHERE "Id" = '00Q000000000008AAA'`);
      await client.query(sql);
      const { ['00Q000000000004AAA']: _deleted, ...rest } = EXPECTED;
      // 60 + 5: 'Web' now matches.
      expect(await scores(client)).toEqual({ ...rest, '00Q000000000008AAA': 65 });
    });
  });
});
