import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Connection } from 'jsforce';
import { startSalesforceEmulator, type SalesforceEmulator } from '../../../emulators/salesforce';
import { DEFAULT_DESCRIBES_DIR } from '../../../emulators/salesforce/describe';
import { api, caught, firstStatusCode, soapLogin } from './support';

type Op = 'insert' | 'update' | 'upsert';
interface Case {
  name: string;
  op: Op;
  /** Field values as strings (CSV for Bulk; JSON for Collections unless `json` overrides). */
  record: (ids: Ids) => Record<string, string>;
  code: string;
  extIdField?: string;
}
interface Ids {
  live: string;
  deleted: string;
  deletedAccount: string;
  converted: string;
}

const UNKNOWN_ID = '00Q5e0000000zzzEAA';

/** Every per-record validation, run through sObject Collections and through Bulk API 2.0 ingest. */
const CASES: Case[] = [
  {
    name: 'not createable',
    op: 'insert',
    record: () => ({ LastName: 'a', Company: 'b', IsDeleted: 'true' }),
    code: 'INVALID_FIELD_FOR_INSERT_UPDATE',
  },
  {
    name: 'not updateable',
    op: 'update',
    record: (ids) => ({ Id: ids.live, CreatedDate: '2020-01-01T00:00:00.000Z' }),
    code: 'INVALID_FIELD_FOR_INSERT_UPDATE',
  },
  {
    name: 'required field missing',
    op: 'insert',
    record: () => ({ LastName: 'a' }),
    code: 'REQUIRED_FIELD_MISSING',
  },
  {
    name: 'string too long',
    op: 'insert',
    record: () => ({ LastName: 'x'.repeat(81), Company: 'b' }),
    code: 'STRING_TOO_LONG',
  },
  {
    name: 'restricted picklist',
    op: 'insert',
    record: () => ({ LastName: 'a', Company: 'b', Status: 'Nope' }),
    code: 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST',
  },
  {
    name: 'number precision',
    op: 'insert',
    record: () => ({ LastName: 'a', Company: 'b', LeadScore__c: '1234' }),
    code: 'NUMBER_OUTSIDE_VALID_RANGE',
  },
  {
    name: 'malformed id',
    op: 'update',
    record: () => ({ Id: 'not-an-id', Title: 'x' }),
    code: 'MALFORMED_ID',
  },
  {
    name: 'unknown id',
    op: 'update',
    record: () => ({ Id: UNKNOWN_ID, Title: 'x' }),
    code: 'INVALID_CROSS_REFERENCE_KEY',
  },
  {
    name: 'deleted id',
    op: 'update',
    record: (ids) => ({ Id: ids.deleted, Title: 'x' }),
    code: 'ENTITY_IS_DELETED',
  },
  {
    // A converted lead is read-only: Salesforce refuses any update of it.
    name: 'converted lead',
    op: 'update',
    record: (ids) => ({ Id: ids.converted, Title: 'x' }),
    code: 'CANNOT_UPDATE_CONVERTED_LEAD',
  },
  {
    name: 'converted lead matched by an upsert',
    op: 'upsert',
    extIdField: 'External_Id__c',
    record: () => ({ External_Id__c: 'ext-converted', Title: 'x' }),
    code: 'CANNOT_UPDATE_CONVERTED_LEAD',
  },
  {
    name: "lookup to another object's record",
    op: 'insert',
    // OwnerId points to a User or a Group, not a Lead.
    record: (ids) => ({ LastName: 'a', Company: 'b', OwnerId: ids.live }),
    code: 'FIELD_INTEGRITY_EXCEPTION',
  },
  {
    name: 'lookup to no record',
    op: 'insert',
    record: () => ({ LastName: 'a', Company: 'b', Partner_Account__c: '0015e0000000zzzAAA' }),
    code: 'INVALID_CROSS_REFERENCE_KEY',
  },
  {
    // A User the org does not have (the emulator holds User: its describe is loaded).
    name: 'owner that is no user',
    op: 'insert',
    record: () => ({ LastName: 'a', Company: 'b', OwnerId: '0055e0000000zzzAAA' }),
    code: 'INVALID_CROSS_REFERENCE_KEY',
  },
  {
    name: 'lookup to a deleted record',
    op: 'update',
    record: (ids) => ({ Id: ids.live, Partner_Account__c: ids.deletedAccount }),
    code: 'ENTITY_IS_DELETED',
  },
  {
    name: 'duplicate unique value',
    op: 'insert',
    record: () => ({ LastName: 'a', Company: 'b', External_Id__c: 'ext-1' }),
    code: 'DUPLICATE_VALUE',
  },
  {
    name: 'external id matching several records',
    op: 'upsert',
    extIdField: 'Legacy_Key__c',
    record: () => ({ Legacy_Key__c: 'shared', Title: 'x' }),
    code: 'DUPLICATE_EXTERNAL_ID',
  },
];

function toCsv(record: Record<string, string>): string {
  const quote = (v: string): string => `"${v.replace(/"/g, '""')}"`;
  return `${Object.keys(record).join(',')}\n${Object.values(record).map(quote).join(',')}\n`;
}

describe('Salesforce emulator per-record validation (Collections and Bulk ingest)', () => {
  let sf: SalesforceEmulator;
  let conn: Connection;
  let ids: Ids;
  let extraDescribes: string;

  beforeAll(async () => {
    // A user's describe folder adds a non-unique external id to Lead, so that one key can match several records.
    extraDescribes = mkdtempSync(path.join(tmpdir(), 'sf-describes-'));
    writeFileSync(
      path.join(extraDescribes, 'Lead.json'),
      JSON.stringify({
        name: 'Lead',
        fields: [
          {
            name: 'Legacy_Key__c',
            label: 'Legacy Key',
            type: 'string',
            length: 40,
            externalId: true,
            unique: false,
            custom: true,
          },
          {
            name: 'Partner_Account__c',
            label: 'Partner Account',
            type: 'reference',
            referenceTo: ['Account'],
            custom: true,
          },
        ],
      }),
    );
    sf = await startSalesforceEmulator({
      describesDir: [DEFAULT_DESCRIBES_DIR, extraDescribes],
      seed: {
        Lead: [
          { LastName: 'Live', Company: 'Acme', External_Id__c: 'ext-1', Legacy_Key__c: 'shared' },
          { LastName: 'Twin', Company: 'Acme', Legacy_Key__c: 'shared' },
          { LastName: 'Deleted', Company: 'Acme' },
          { LastName: 'Converted', Company: 'Acme', External_Id__c: 'ext-converted' },
        ],
        Account: [{ Name: 'Gone' }],
      },
    });
    const [live, , deleted, converted] = [...sf.store.all('Lead')].map((r) => r.Id as string);
    sf.store.convertLeads([converted as string]);
    const [deletedAccount] = [...sf.store.all('Account')].map((r) => r.Id as string);
    sf.store.delete([deleted as string, deletedAccount as string]);
    ids = {
      live: live as string,
      deleted: deleted as string,
      deletedAccount: deletedAccount as string,
      converted: converted as string,
    };
    conn = await soapLogin(sf);
  });
  afterAll(async () => {
    await sf.stop();
    rmSync(extraDescribes, { recursive: true, force: true });
  });

  describe.each(CASES)('$name', (c) => {
    it(`fails the record with ${c.code} via sObject Collections`, async () => {
      const record = c.record(ids);
      const lead = conn.sobject('Lead');
      const results =
        c.op === 'insert'
          ? await lead.create([record])
          : c.op === 'update'
            ? await lead.update([record as { Id: string }])
            : await lead.upsert([record], c.extIdField as string);
      expect(results).toHaveLength(1);
      expect(results[0]?.success).toBe(false);
      expect(firstStatusCode(results[0])).toBe(c.code);
    });

    it(`fails the row with ${c.code} in Bulk ingest failedResults`, async () => {
      const res = await conn.bulk2.loadAndWaitForResults({
        object: 'Lead',
        operation: c.op,
        ...(c.extIdField ? { externalIdFieldName: c.extIdField } : {}),
        input: toCsv(c.record(ids)),
        pollInterval: 20,
      });
      expect(res.successfulResults).toEqual([]);
      expect(res.failedResults).toHaveLength(1);
      expect(res.failedResults[0]?.sf__Error).toMatch(new RegExp(`^${c.code}:.*--$`));
    });
  });

  it('stores a value an unrestricted picklist lists in another case as listed, via Collections and Bulk (Help 000386557); refuses a restricted one', async () => {
    const lead = conn.sobject('Lead');
    const [rest] = await lead.create([{ LastName: 'Case', Company: 'REST', Rating: 'warm' }]);
    const bulk = await conn.bulk2.loadAndWaitForResults({
      object: 'Lead',
      operation: 'insert',
      input: 'LastName,Company,Rating\nCase,Bulk,HOT\nCase,Bulk,Tepid\n',
      pollInterval: 20,
    });
    const ids = [rest?.id, ...bulk.successfulResults.map((r) => r.sf__Id)] as string[];
    expect(ids.map((id) => sf.store.get(id)?.Rating)).toEqual(['Warm', 'Hot', 'Tepid']);
    // Status is restricted (Open - Not Contacted, …): another case is refused as before.
    const [restricted] = await lead.create([
      { LastName: 'Case', Company: 'REST', Status: 'open - not contacted' },
    ]);
    expect(firstStatusCode(restricted)).toBe('INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST');
  });

  it('rejects a value of the wrong type per request in REST (JSON_PARSER_ERROR) and per row in Bulk', async () => {
    const rest = await caught(
      conn.sobject('Lead').create([{ LastName: 'a', Company: 'b', NumberOfEmployees: 'many' }]),
    );
    expect(rest.name).toBe('JSON_PARSER_ERROR');
    const bulk = await conn.bulk2.loadAndWaitForResults({
      object: 'Lead',
      operation: 'insert',
      input: 'LastName,Company,NumberOfEmployees\na,b,many\n',
      pollInterval: 20,
    });
    expect(bulk.failedResults[0]?.sf__Error).toMatch(/^INVALID_TYPE_ON_FIELD_IN_RECORD:.*many.*--$/);
  });

  it('rejects an unknown field per record in Collections and fails the whole Bulk job on its header', async () => {
    const [result] = await conn.sobject('Lead').create([{ LastName: 'a', Company: 'b', Foo__c: 'x' }]);
    expect(result?.errors[0]).toEqual({
      statusCode: 'INVALID_FIELD',
      message: "No such column 'Foo__c' on sobject of type Lead",
      fields: [],
    });
    const err = await caught(
      conn.bulk2.loadAndWaitForResults({
        object: 'Lead',
        operation: 'insert',
        input: 'LastName,Foo__c\na,b\n',
        pollInterval: 20,
      }),
    );
    expect(err.message).toBe(
      'Ingest job failed to complete due to: InvalidBatch : Field name not found : Foo__c',
    );
  });

  it('answers a single-record upsert whose key matches several records with 300 and the matching URLs', async () => {
    const res = await api(sf, conn, '/sobjects/Lead/Legacy_Key__c/shared', {
      method: 'PATCH',
      body: { Title: 'x' },
    });
    expect(res.status).toBe(300);
    const body = (await res.json()) as string[];
    expect(body).toHaveLength(2);
    expect(body[0]).toMatch(/^\/services\/data\/v62\.0\/sobjects\/Lead\/00Q/);
    const err = await caught(
      conn.sobject('Lead').upsert({ Legacy_Key__c: 'shared', Title: 'y' }, 'Legacy_Key__c'),
    );
    expect(err.name).toBe('MULTIPLE_CHOICES');
  });
});
