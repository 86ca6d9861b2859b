import { normalizeDescribes } from '../../../emulators/salesforce/describe';
import { to18 } from '../../../emulators/salesforce/ids';
import { DEFAULT_USER_ID, SalesforceStore, StoreRequestError } from '../../../emulators/salesforce/store';
import type { RecordError, SaveResult } from '../../../emulators/salesforce/store';
import { makeStore, newLead, repoDescribes } from './fixtures';

const ROLLED_BACK: RecordError = {
  statusCode: 'ALL_OR_NONE_OPERATION_ROLLED_BACK',
  message: 'Record rolled back because not all records were valid and the request was using AllOrNone header',
  fields: [],
};

const ok = (results: SaveResult[]): string[] =>
  results.map((r) => {
    if (!r.success || !r.id) throw new Error(`expected success, got ${JSON.stringify(r)}`);
    return r.id;
  });

function requestError(fn: () => unknown): StoreRequestError {
  try {
    fn();
  } catch (error: unknown) {
    if (error instanceof StoreRequestError) return error;
    throw error;
  }
  throw new Error('expected a StoreRequestError');
}

/** Lead with an extra, non-unique external id and a create-only field, added the way a user adds a describe file. */
function storeWithLegacyKey(): SalesforceStore {
  const describes = normalizeDescribes([
    ...repoDescribes(),
    {
      name: 'Lead',
      fields: [
        { name: 'Legacy_Key__c', type: 'string', length: 20, externalId: true, label: 'Legacy Key' },
        { name: 'Origin__c', type: 'string', length: 20, updateable: false, label: 'Origin' },
      ],
    },
  ]);
  return new SalesforceStore({ describes });
}

describe('SalesforceStore', () => {
  describe('create', () => {
    it('assigns 18-character ids, defaults and system fields', () => {
      const store = makeStore();
      const [id] = ok(store.create('lead', [newLead({ Email: 'ada@example.com' })]));
      expect(id).toMatch(/^00Q5e0[A-Za-z0-9]{9}[A-Z0-5]{3}$/);
      const record = store.get(id as string);
      expect(record).toMatchObject({
        Id: id,
        LastName: 'Lovelace',
        Company: 'Analytical Engines',
        Email: 'ada@example.com',
        FirstName: null,
        Status: 'Open - Not Contacted',
        OwnerId: DEFAULT_USER_ID,
        CreatedById: DEFAULT_USER_ID,
        IsDeleted: false,
        LeadScore__c: null,
      });
      expect(record?.SystemModstamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$/);
      expect(record?.CreatedDate).toBe(record?.SystemModstamp);
      expect(record?.LastModifiedDate).toBe(record?.SystemModstamp);
      expect(Object.keys(record ?? {})).toEqual(store.describe('Lead')?.fields.map((f) => f.name));
    });

    it('accepts field names in any case and keeps describe casing', () => {
      const store = makeStore();
      const [id] = ok(store.create('Lead', [{ lastname: 'X', COMPANY: 'Y', leadscore__C: 5 }]));
      expect(store.get(id as string)).toMatchObject({ LastName: 'X', Company: 'Y', LeadScore__c: 5 });
    });

    it('reports an unknown field as INVALID_FIELD', () => {
      const store = makeStore();
      expect(store.create('Lead', [newLead({ Foo__c: 1 })])).toEqual([
        {
          id: null,
          success: false,
          errors: [
            {
              statusCode: 'INVALID_FIELD',
              message: "No such column 'Foo__c' on sobject of type Lead",
              fields: [],
            },
          ],
        },
      ]);
    });

    it('reports read-only fields and an Id as INVALID_FIELD_FOR_INSERT_UPDATE', () => {
      const store = makeStore();
      const [readOnly, withId] = store.create('Lead', [
        newLead({ CreatedDate: '2024-01-01T00:00:00Z', IsDeleted: true }),
        newLead({ Id: '00Q5e000000000aAAA' }),
      ]);
      expect(readOnly?.errors).toEqual([
        {
          statusCode: 'INVALID_FIELD_FOR_INSERT_UPDATE',
          message:
            'Unable to create/update fields: CreatedDate, IsDeleted. Please check the security settings of this field and verify that it is read/write for your profile or permission set.',
          fields: ['CreatedDate', 'IsDeleted'],
        },
      ]);
      expect(withId?.errors).toEqual([
        {
          statusCode: 'INVALID_FIELD_FOR_INSERT_UPDATE',
          message: 'cannot specify Id in an insert call',
          fields: ['Id'],
        },
      ]);
    });

    it('lists every missing required field (explicit null counts as missing)', () => {
      const store = makeStore();
      expect(store.create('Lead', [{ FirstName: 'Ada', Company: null }])).toEqual([
        {
          id: null,
          success: false,
          errors: [
            {
              statusCode: 'REQUIRED_FIELD_MISSING',
              message: 'Required fields are missing: [LastName, Company]',
              fields: ['LastName', 'Company'],
            },
          ],
        },
      ]);
      // Status is not nillable but defaulted on create: null means "use the default".
      const [id] = ok(store.create('Lead', [newLead({ Status: null })]));
      expect(store.get(id as string)?.Status).toBe('Open - Not Contacted');
    });

    it('checks length, restricted picklist, number range, email and type per field', () => {
      const store = makeStore();
      const results = store.create('Lead', [
        newLead({ FirstName: 'x'.repeat(41) }),
        newLead({ Status: 'Sleeping' }),
        newLead({ LeadScore__c: 1000 }),
        newLead({ Email: 'ada-at-example' }),
        newLead({ NumberOfEmployees: 'many' }),
        newLead({ OwnerId: 'bad-id' }),
      ]);
      expect(results.map((r) => r.errors)).toEqual([
        [
          {
            statusCode: 'STRING_TOO_LONG',
            message: `First Name: data value too large: ${'x'.repeat(41)} (max length=40)`,
            fields: ['FirstName'],
          },
        ],
        [
          {
            statusCode: 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST',
            message: 'Status: bad value for restricted picklist field: Sleeping',
            fields: ['Status'],
          },
        ],
        [
          {
            statusCode: 'NUMBER_OUTSIDE_VALID_RANGE',
            message: 'Lead Score: value outside of valid range on numeric field: 1000',
            fields: ['LeadScore__c'],
          },
        ],
        [
          {
            statusCode: 'INVALID_EMAIL_ADDRESS',
            message: 'Email: invalid email address: ada-at-example',
            fields: ['Email'],
          },
        ],
        [
          {
            statusCode: 'INVALID_TYPE_ON_FIELD_IN_RECORD',
            message: 'Employees: value not of required type: many',
            fields: ['NumberOfEmployees'],
          },
        ],
        [
          {
            statusCode: 'MALFORMED_ID',
            message: 'Owner ID: id value of incorrect type: bad-id',
            fields: ['OwnerId'],
          },
        ],
      ]);
      expect(results.every((r) => r.id === null && !r.success)).toBe(true);
      expect(store.count('Lead')).toBe(0);
    });

    it("rejects a whole REST call on a type error with typeErrors: 'request'", () => {
      const store = makeStore();
      const error = requestError(() =>
        store.create('Lead', [newLead(), newLead({ LeadScore__c: 'high' })], { typeErrors: 'request' }),
      );
      expect(error.errorCode).toBe('JSON_PARSER_ERROR');
      expect(error.message).toBe(
        'Cannot deserialize instance of double from VALUE_STRING value high or request may be missing a required field',
      );
      expect(error.fields).toEqual(['LeadScore__c']);
      expect(store.count('Lead')).toBe(0);
    });

    it("reports a type error in Bulk's words with typeErrors: 'bulk'", () => {
      const store = makeStore();
      expect(
        store.create('Lead', [newLead({ NumberOfEmployees: 'many' }), newLead()], { typeErrors: 'bulk' }),
      ).toEqual([
        {
          id: null,
          success: false,
          errors: [
            {
              statusCode: 'INVALID_FIELD',
              message:
                "Failed to deserialize field. Due to, 'many' is not a valid value for the type xsd:int",
              fields: ['NumberOfEmployees'],
            },
          ],
        },
        expect.objectContaining({ success: true }),
      ]);
    });

    it('rejects duplicate unique values, case-insensitively, against stored records and earlier records of the call', () => {
      const store = makeStore();
      const [first] = ok(store.create('Lead', [newLead({ External_Id__c: 'ext-1' })]));
      const results = store.create('Lead', [
        newLead({ External_Id__c: 'EXT-1' }),
        newLead({ External_Id__c: 'ext-2' }),
        newLead({ External_Id__c: 'ext-2' }),
      ]);
      expect(results[0]).toEqual({
        id: null,
        success: false,
        errors: [
          {
            statusCode: 'DUPLICATE_VALUE',
            message: `duplicate value found: External_Id__c duplicates value on record with id: ${first}`,
            fields: [],
          },
        ],
      });
      expect(results[1]?.success).toBe(true);
      expect(results[2]?.errors[0]?.statusCode).toBe('DUPLICATE_VALUE');
      expect(store.count('Lead')).toBe(2);
    });

    it('throws INVALID_TYPE for an unknown object', () => {
      const error = requestError(() => makeStore().create('Opportunity', [{}]));
      expect(error.errorCode).toBe('INVALID_TYPE');
      expect(error.message).toMatch(/^sObject type 'Opportunity' is not supported\./);
    });

    it('with allOrNone, fails the others with ALL_OR_NONE_OPERATION_ROLLED_BACK and stores nothing', () => {
      const store = makeStore();
      const results = store.create('Lead', [newLead(), { FirstName: 'no last name' }, newLead()], {
        allOrNone: true,
      });
      expect(results).toEqual([
        { id: null, success: false, errors: [ROLLED_BACK] },
        {
          id: null,
          success: false,
          errors: [
            {
              statusCode: 'REQUIRED_FIELD_MISSING',
              message: 'Required fields are missing: [LastName, Company]',
              fields: ['LastName', 'Company'],
            },
          ],
        },
        { id: null, success: false, errors: [ROLLED_BACK] },
      ]);
      expect(store.count('Lead')).toBe(0);
      expect(ok(store.create('Lead', [newLead(), newLead()], { allOrNone: true }))).toHaveLength(2);
    });
  });

  describe('update', () => {
    it('updates by Id or id, 15 or 18 characters, and moves LastModifiedDate and SystemModstamp', () => {
      const store = makeStore();
      const [id] = ok(store.create('Lead', [newLead()])) as [string];
      const before = { ...store.get(id) };
      const results = store.update('Lead', [{ id: id.slice(0, 15), LeadScore__c: 77 }]);
      expect(results).toEqual([{ id, success: true, errors: [] }]);
      const after = store.get(id);
      expect(after?.LeadScore__c).toBe(77);
      expect(String(after?.SystemModstamp) > String(before.SystemModstamp)).toBe(true);
      expect(after?.LastModifiedDate).toBe(after?.SystemModstamp);
      expect(after?.CreatedDate).toBe(before.CreatedDate);
      ok(store.update(undefined, [{ Id: id, Title: 'CTO' }]));
      expect(store.get(id)?.Title).toBe('CTO');
    });

    it('reports a missing, malformed, unknown, other-object or deleted id', () => {
      const store = makeStore();
      const [lead, gone] = ok(store.create('Lead', [newLead(), newLead()])) as [string, string];
      const [account] = ok(store.create('Account', [{ Name: 'Acme' }])) as [string];
      ok(store.delete([gone]));
      const unknown = to18('00Q5e0000zzzzzz');
      const results = store.update('Lead', [
        { Title: 'x' },
        { Id: 'not-an-id', Title: 'x' },
        { Id: unknown, Title: 'x' },
        { Id: account, Title: 'x' },
        { Id: gone, Title: 'x' },
        { Id: lead, Title: 'ok' },
      ]);
      expect(results.map((r) => r.errors[0] ?? null)).toEqual([
        { statusCode: 'MISSING_ARGUMENT', message: 'Id not specified in an update call', fields: [] },
        {
          statusCode: 'MALFORMED_ID',
          message: 'Lead ID: id value of incorrect type: not-an-id',
          fields: ['Id'],
        },
        { statusCode: 'INVALID_CROSS_REFERENCE_KEY', message: 'invalid cross reference id', fields: [] },
        {
          statusCode: 'MALFORMED_ID',
          message: `Lead ID: id value of incorrect type: ${account}`,
          fields: ['Id'],
        },
        { statusCode: 'ENTITY_IS_DELETED', message: 'entity is deleted', fields: [] },
        null,
      ]);
      expect(store.get(lead)?.Title).toBe('ok');
    });

    it('reports a non-updateable field and a required field set to null', () => {
      const store = storeWithLegacyKey();
      const [id] = ok(store.create('Lead', [newLead({ Origin__c: 'web' })])) as [string];
      expect(store.update('Lead', [{ Id: id, Origin__c: 'phone' }])[0]?.errors).toEqual([
        {
          statusCode: 'INVALID_FIELD_FOR_INSERT_UPDATE',
          message:
            'Unable to create/update fields: Origin__c. Please check the security settings of this field and verify that it is read/write for your profile or permission set.',
          fields: ['Origin__c'],
        },
      ]);
      expect(store.update('Lead', [{ Id: id, LastName: null, Company: '' }])[0]?.errors).toEqual([
        {
          statusCode: 'REQUIRED_FIELD_MISSING',
          message: 'Required fields are missing: [LastName, Company]',
          fields: ['LastName', 'Company'],
        },
      ]);
      expect(store.get(id)).toMatchObject({ Origin__c: 'web', LastName: 'Lovelace' });
    });

    it('rejects a unique value held by another record but not one the record already holds', () => {
      const store = makeStore();
      const [a, b] = ok(
        store.create('Lead', [newLead({ External_Id__c: 'A' }), newLead({ External_Id__c: 'B' })]),
      ) as [string, string];
      expect(store.update('Lead', [{ Id: a, External_Id__c: 'a' }])[0]?.success).toBe(true);
      expect(store.update('Lead', [{ Id: b, External_Id__c: 'A' }])[0]?.errors[0]).toEqual({
        statusCode: 'DUPLICATE_VALUE',
        message: `duplicate value found: External_Id__c duplicates value on record with id: ${a}`,
        fields: [],
      });
      // Values swap freely once released.
      ok(store.update('Lead', [{ Id: b, External_Id__c: 'C' }]));
      ok(store.update('Lead', [{ Id: a, External_Id__c: 'B' }]));
      expect(store.findByExternalId('Lead', 'External_Id__c', 'b').map((r) => r.Id)).toEqual([a]);
    });

    it('with allOrNone applies nothing when one record fails', () => {
      const store = makeStore();
      const [a, b] = ok(store.create('Lead', [newLead(), newLead()])) as [string, string];
      const stamp = store.get(a)?.SystemModstamp;
      const results = store.update(
        'Lead',
        [
          { Id: a, LeadScore__c: 1 },
          { Id: b, Status: 'Nope' },
        ],
        { allOrNone: true },
      );
      expect(results[0]).toEqual({ id: null, success: false, errors: [ROLLED_BACK] });
      expect(results[1]?.errors[0]?.statusCode).toBe('INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST');
      expect(store.get(a)).toMatchObject({ LeadScore__c: null, SystemModstamp: stamp });
    });
  });

  describe('upsert', () => {
    it('creates when the key is new and updates when it matches one record', () => {
      const store = makeStore();
      const [existing] = ok(store.create('Lead', [newLead({ External_Id__c: 'k-1' })])) as [string];
      const results = store.upsert('Lead', 'external_id__c', [
        { External_Id__c: 'K-1', LeadScore__c: 10 },
        newLead({ External_Id__c: 'k-2', LeadScore__c: 20 }),
      ]);
      expect(results[0]).toEqual({ id: existing, success: true, errors: [], created: false });
      expect(results[1]).toMatchObject({ success: true, errors: [], created: true });
      expect(store.get(existing)?.LeadScore__c).toBe(10);
      expect(store.get(String(results[1]?.id))).toMatchObject({ External_Id__c: 'k-2', LeadScore__c: 20 });
    });

    it('validates a create as a create: required fields', () => {
      const store = makeStore();
      expect(store.upsert('Lead', 'External_Id__c', [{ External_Id__c: 'new', LeadScore__c: 1 }])).toEqual([
        {
          id: null,
          success: false,
          created: false,
          errors: [
            {
              statusCode: 'REQUIRED_FIELD_MISSING',
              message: 'Required fields are missing: [LastName, Company]',
              fields: ['LastName', 'Company'],
            },
          ],
        },
      ]);
    });

    it('fails with DUPLICATE_EXTERNAL_ID when the key matches several records', () => {
      const store = storeWithLegacyKey();
      const [a, b] = ok(
        store.create('Lead', [newLead({ Legacy_Key__c: 'L1' }), newLead({ Legacy_Key__c: 'l1' })]),
      ) as [string, string];
      expect(store.upsert('Lead', 'Legacy_Key__c', [{ Legacy_Key__c: 'L1', LeadScore__c: 5 }])).toEqual([
        {
          id: null,
          success: false,
          created: false,
          errors: [
            {
              statusCode: 'DUPLICATE_EXTERNAL_ID',
              message: `Legacy Key: more than one record found for external id field: [${a}, ${b}]`,
              fields: ['Legacy_Key__c'],
            },
          ],
        },
      ]);
      expect(store.findByExternalId('Lead', 'Legacy_Key__c', 'L1').map((r) => r.Id)).toEqual([a, b]);
    });

    it('fails every record that repeats a key of the same call, and one without a key', () => {
      const store = makeStore();
      const results = store.upsert('Lead', 'External_Id__c', [
        newLead({ External_Id__c: 'd' }),
        newLead({ External_Id__c: 'D' }),
        newLead({ External_Id__c: 'e' }),
        newLead(),
      ]);
      expect(results.map((r) => r.errors[0] ?? null)).toEqual([
        {
          statusCode: 'DUPLICATE_VALUE',
          message: 'Duplicate external id specified: d',
          fields: ['External_Id__c'],
        },
        {
          statusCode: 'DUPLICATE_VALUE',
          message: 'Duplicate external id specified: D',
          fields: ['External_Id__c'],
        },
        null,
        {
          statusCode: 'MISSING_ARGUMENT',
          message: 'External_Id__c not specified',
          fields: ['External_Id__c'],
        },
      ]);
    });

    it('upserts by Id (updating only) and rejects fields that are not external ids', () => {
      const store = makeStore();
      const [id] = ok(store.create('Lead', [newLead()])) as [string];
      expect(store.upsert('Lead', 'Id', [{ Id: id, Title: 'CEO' }])).toEqual([
        { id, success: true, errors: [], created: false },
      ]);
      expect(store.get(id)?.Title).toBe('CEO');
      expect(
        store.upsert('Lead', 'Id', [{ Id: to18('00Q5e0000zzzzzz'), Title: 'x' }])[0]?.errors[0]?.statusCode,
      ).toBe('INVALID_CROSS_REFERENCE_KEY');
      expect(requestError(() => store.upsert('Lead', 'Nope__c', [])).errorCode).toBe('NOT_FOUND');
      const notExternal = requestError(() => store.upsert('Lead', 'Title', []));
      expect([notExternal.errorCode, notExternal.message]).toEqual([
        'INVALID_FIELD',
        'Field name provided, Title is not an External ID or indexed field for Lead',
      ]);
    });

    it('with allOrNone applies neither the creates nor the updates', () => {
      const store = makeStore();
      const [id] = ok(store.create('Lead', [newLead({ External_Id__c: 'x' })])) as [string];
      const results = store.upsert(
        'Lead',
        'External_Id__c',
        [{ External_Id__c: 'x', Title: 'new' }, newLead({ External_Id__c: 'y' }), { External_Id__c: 'z' }],
        { allOrNone: true },
      );
      expect(results.slice(0, 2)).toEqual([
        { id: null, success: false, created: false, errors: [ROLLED_BACK] },
        { id: null, success: false, created: false, errors: [ROLLED_BACK] },
      ]);
      expect(store.get(id)?.Title).toBeNull();
      expect(store.count('Lead')).toBe(1);
    });
  });

  describe('delete', () => {
    it('soft-deletes: IsDeleted, moved SystemModstamp, visible only to queryAll, unique value released', () => {
      const store = makeStore();
      const [id] = ok(store.create('Lead', [newLead({ External_Id__c: 'gone' })])) as [string];
      const stamp = String(store.get(id)?.SystemModstamp);
      expect(store.delete([id.slice(0, 15)])).toEqual([{ id, success: true, errors: [] }]);
      const record = store.get(id);
      expect(record?.IsDeleted).toBe(true);
      expect(String(record?.SystemModstamp) > stamp).toBe(true);
      expect(store.count('Lead')).toBe(0);
      expect(store.count('Lead', { includeDeleted: true })).toBe(1);
      expect(store.query('SELECT Id FROM Lead').totalSize).toBe(0);
      expect(store.query('SELECT Id, IsDeleted FROM Lead', { includeDeleted: true }).records).toEqual([
        { Id: id, IsDeleted: true },
      ]);
      expect(store.findByExternalId('Lead', 'External_Id__c', 'gone')).toEqual([]);
      ok(store.create('Lead', [newLead({ External_Id__c: 'gone' })]));
    });

    it('reports deleted, unknown and malformed ids', () => {
      const store = makeStore();
      const [id] = ok(store.create('Lead', [newLead()])) as [string];
      ok(store.delete([id]));
      const unknown = to18('00Q5e0000zzzzzz');
      expect(store.delete([id, unknown, 'bogus'])).toEqual([
        {
          id,
          success: false,
          errors: [{ statusCode: 'ENTITY_IS_DELETED', message: 'entity is deleted', fields: [] }],
        },
        {
          id: unknown,
          success: false,
          errors: [
            { statusCode: 'INVALID_CROSS_REFERENCE_KEY', message: 'invalid cross reference id', fields: [] },
          ],
        },
        {
          id: 'bogus',
          success: false,
          errors: [
            {
              statusCode: 'MALFORMED_ID',
              message: 'Record ID: id value of incorrect type: bogus',
              fields: ['Id'],
            },
          ],
        },
      ]);
    });

    it('with allOrNone deletes nothing when one id fails', () => {
      const store = makeStore();
      const [id] = ok(store.create('Lead', [newLead()])) as [string];
      expect(store.delete([id, 'bogus'], { allOrNone: true })[0]).toEqual({
        id: null,
        success: false,
        errors: [ROLLED_BACK],
      });
      expect(store.get(id)?.IsDeleted).toBe(false);
    });
  });

  describe('record faults', () => {
    it('fails the records the hook picks, before validation, per operation', () => {
      const store = makeStore();
      const seen: string[] = [];
      store.setRecordFault((objectName, record, op) => {
        seen.push(`${op}:${objectName}`);
        return record.LastName === 'Locked' || record.External_Id__c === 'locked'
          ? {
              statusCode: 'UNABLE_TO_LOCK_ROW',
              message: 'unable to obtain exclusive access to this record',
              fields: [],
            }
          : undefined;
      });
      const results = store.create('Lead', [newLead({ LastName: 'Locked', Foo__c: 1 }), newLead()]);
      expect(results[0]?.errors).toEqual([
        {
          statusCode: 'UNABLE_TO_LOCK_ROW',
          message: 'unable to obtain exclusive access to this record',
          fields: [],
        },
      ]);
      expect(results[1]?.success).toBe(true);
      expect(
        store.upsert('Lead', 'External_Id__c', [newLead({ External_Id__c: 'locked' })])[0]?.errors[0]
          ?.statusCode,
      ).toBe('UNABLE_TO_LOCK_ROW');
      expect(seen).toEqual(['create:Lead', 'create:Lead', 'upsert:Lead']);
      store.setRecordFault(undefined);
      expect(store.create('Lead', [newLead({ LastName: 'Locked' })])[0]?.success).toBe(true);
    });
  });

  describe('clock', () => {
    afterEach(() => jest.useRealTimers());

    it('never gives two write calls the same SystemModstamp with the default clock, even when time stands still', () => {
      jest.useFakeTimers({
        now: new Date('2024-03-01T00:00:00.000Z'),
        doNotFake: ['nextTick', 'setImmediate'],
      });
      const store = makeStore();
      const [a, b] = ok(store.create('Lead', [newLead(), newLead()])) as [string, string];
      const [c] = ok(store.create('Lead', [newLead()])) as [string];
      ok(store.update('Lead', [{ Id: a, Title: 'x' }]));
      // Records of one call share a stamp, as one Salesforce transaction does.
      expect(store.get(b)?.SystemModstamp).toBe('2024-03-01T00:00:00.000+0000');
      expect(store.get(c)?.SystemModstamp).toBe('2024-03-01T00:00:00.001+0000');
      expect(store.get(a)?.SystemModstamp).toBe('2024-03-01T00:00:00.002+0000');
    });

    it('uses a given clock as is', () => {
      const store = makeStore({ clock: () => new Date('2024-03-01T12:00:00Z') });
      const [a] = ok(store.create('Lead', [newLead()])) as [string];
      const [b] = ok(store.create('Lead', [newLead()])) as [string];
      expect(store.get(a)?.SystemModstamp).toBe('2024-03-01T12:00:00.000+0000');
      expect(store.get(b)?.SystemModstamp).toBe(store.get(a)?.SystemModstamp);
    });
  });

  describe('seed', () => {
    it('loads records with given ids, dates and deleted flags, filling the rest', () => {
      const store = makeStore({ clock: () => new Date('2024-03-01T12:00:00Z') });
      const given = to18('00Q5e00000SEED1');
      const ids = store.seed('Lead', [
        newLead({ Id: given, CreatedDate: '2020-01-01T00:00:00Z', External_Id__c: 's1' }),
        newLead({ IsDeleted: true, SystemModstamp: '2021-01-01T00:00:00Z' }),
        newLead(),
      ]);
      expect(ids[0]).toBe(given);
      expect(new Set(ids).size).toBe(3);
      expect(store.get(given)).toMatchObject({
        CreatedDate: '2020-01-01T00:00:00.000+0000',
        SystemModstamp: '2020-01-01T00:00:00.000+0000',
        Status: 'Open - Not Contacted',
      });
      expect(store.get(ids[1] as string)).toMatchObject({
        IsDeleted: true,
        SystemModstamp: '2021-01-01T00:00:00.000+0000',
        CreatedDate: '2024-03-01T12:00:00.000+0000',
      });
      expect(store.count('Lead')).toBe(2);
      expect([...store.all('Lead')].map((r) => r.Id)).toEqual(ids);
    });

    it('throws naming the record and field when a value cannot be stored', () => {
      const store = makeStore();
      expect(() => store.seed('Lead', [newLead(), newLead({ Bogus: 1 })])).toThrow(
        "seed Lead[1]: no field 'Bogus' on Lead",
      );
      expect(() => store.seed('Lead', [newLead({ LeadScore__c: 'x' })])).toThrow(
        'seed Lead[0].LeadScore__c: INVALID_TYPE_ON_FIELD_IN_RECORD: Lead Score: value not of required type: x',
      );
      expect(() =>
        store.seed('Lead', [newLead({ External_Id__c: 'u' }), newLead({ External_Id__c: 'U' })]),
      ).toThrow('seed Lead[1]: duplicate value U for unique field External_Id__c');
      expect(() => store.seed('Lead', [newLead({ Id: to18('0015e00000SEED1') })])).toThrow(
        'does not start with key prefix 00Q',
      );
    });
  });

  describe('lookups', () => {
    it('finds describes case-insensitively and objects by id prefix', () => {
      const store = makeStore();
      expect(store.describe('CONTACT')?.name).toBe('Contact');
      expect(store.describe('Opportunity')).toBeUndefined();
      expect(store.objectForId('001000000000000')?.name).toBe('Account');
      expect(store.objectForId('a00000000000000')).toBeUndefined();
      expect(store.get('garbage')).toBeUndefined();
      expect(store.describes().map((d) => d.name)).toEqual(['Lead', 'Account', 'Contact']);
    });
  });

  describe('transactions', () => {
    it('rolls back creates, updates, deletes and upserts, indexes and counts included', () => {
      const store = makeStore();
      const [keep, gone] = ok(
        store.create('Lead', [newLead({ External_Id__c: 'k-1' }), newLead({ External_Id__c: 'k-2' })]),
      );
      const before = [...store.all('Lead')].map((r) => ({ ...r }));
      const tx = store.beginTransaction();
      const [created] = ok(store.create('Lead', [newLead({ External_Id__c: 'k-3' })]));
      ok(store.update('Lead', [{ Id: keep, Company: 'Changed', External_Id__c: 'k-moved' }]));
      ok(store.update('Lead', [{ Id: created, Company: 'Created then changed' }]));
      ok(store.delete([gone as string]));
      ok(store.upsert('Lead', 'External_Id__c', [newLead({ External_Id__c: 'k-4' })]));
      expect(store.count('Lead')).toBe(3);
      tx.rollback();
      expect([...store.all('Lead')]).toEqual(before);
      expect(store.count('Lead')).toBe(2);
      expect(store.get(created as string)).toBeUndefined();
      expect(store.findByExternalId('Lead', 'External_Id__c', 'k-1').map((r) => r.Id)).toEqual([keep]);
      expect(store.findByExternalId('Lead', 'External_Id__c', 'k-moved')).toEqual([]);
      expect(store.findByExternalId('Lead', 'External_Id__c', 'k-2').map((r) => r.Id)).toEqual([gone]);
      // The keys taken inside the transaction are free again; ids are never handed out twice.
      const [again] = ok(store.create('Lead', [newLead({ External_Id__c: 'k-3' })]));
      expect(again).not.toBe(created);
    });

    it('keeps everything on commit, and allows one transaction at a time', () => {
      const store = makeStore();
      const tx = store.beginTransaction();
      expect(() => store.beginTransaction()).toThrow('a store transaction is open already');
      ok(store.create('Lead', [newLead()]));
      tx.commit();
      expect(() => tx.rollback()).toThrow('this store transaction is closed');
      expect(store.count('Lead')).toBe(1);
      store.beginTransaction().rollback();
      expect(store.count('Lead')).toBe(1);
    });
  });
});
