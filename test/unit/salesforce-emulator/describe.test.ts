import {
  DescribeFileError,
  findField,
  isRequiredOnCreate,
  loadDescribes,
  normalizeDescribes,
} from '../../../emulators/salesforce/describe';
import { SalesforceStore } from '../../../emulators/salesforce/store';
import { repoDescribes } from './fixtures';

describe('describes', () => {
  const [lead, account, contact] = repoDescribes();

  it('holds Lead, Account and Contact with their key prefixes', () => {
    expect([lead?.name, account?.name, contact?.name]).toEqual(['Lead', 'Account', 'Contact']);
    expect([lead?.keyPrefix, account?.keyPrefix, contact?.keyPrefix]).toEqual(['00Q', '001', '003']);
  });

  it("gives Lead the issue's fields with their types", () => {
    const types = Object.fromEntries((lead?.fields ?? []).map((f) => [f.name, f.type]));
    expect(types).toMatchObject({
      Id: 'id',
      FirstName: 'string',
      LastName: 'string',
      Company: 'string',
      Email: 'email',
      Phone: 'phone',
      Title: 'string',
      Status: 'picklist',
      LeadSource: 'picklist',
      Industry: 'picklist',
      Rating: 'picklist',
      AnnualRevenue: 'currency',
      NumberOfEmployees: 'int',
      OwnerId: 'reference',
      IsDeleted: 'boolean',
      CreatedDate: 'datetime',
      LastModifiedDate: 'datetime',
      SystemModstamp: 'datetime',
      LeadScore__c: 'double',
      External_Id__c: 'string',
    });
    const score = lead && findField(lead, 'leadscore__c');
    expect([score?.precision, score?.scale, score?.custom, score?.soapType]).toEqual([
      3,
      0,
      true,
      'xsd:double',
    ]);
    const ext = lead && findField(lead, 'External_Id__c');
    expect([ext?.length, ext?.externalId, ext?.unique, ext?.idLookup]).toEqual([64, true, true, true]);
    const status = lead && findField(lead, 'Status');
    expect(status?.restrictedPicklist).toBe(true);
    expect(status?.picklistValues.filter((p) => p.defaultValue).map((p) => p.value)).toEqual([
      'Open - Not Contacted',
    ]);
  });

  it('requires on create exactly the createable, non-nillable, non-defaulted fields', () => {
    const required = (d: typeof lead) => (d?.fields ?? []).filter(isRequiredOnCreate).map((f) => f.name);
    expect(required(lead)).toEqual(['LastName', 'Company']);
    expect(required(account)).toEqual(['Name']);
    expect(required(contact)).toEqual(['LastName']);
  });

  it('applies the rule to booleans too: one not defaulted on create is required (salesforce-wire.md, "Describe")', () => {
    const [obj] = normalizeDescribes([
      {
        name: 'Flagged__c',
        keyPrefix: 'a01',
        fields: [
          { name: 'Id', type: 'id', nillable: false, createable: false, updateable: false },
          { name: 'Must__c', type: 'boolean', nillable: false, createable: true, defaultedOnCreate: false },
          { name: 'Can__c', type: 'boolean', nillable: false, createable: true, defaultedOnCreate: true },
        ],
      },
    ]);
    expect((obj?.fields ?? []).filter(isRequiredOnCreate).map((f) => f.name)).toEqual(['Must__c']);
  });

  it('fills defaults for a hand-written field and merges a same-named object by adding or replacing fields', () => {
    const merged = normalizeDescribes([
      {
        name: 'Lead',
        keyPrefix: '00Q',
        fields: [
          { name: 'Id', type: 'id', nillable: false, createable: false, updateable: false },
          { name: 'Score__c', type: 'double', precision: 5 },
        ],
      },
      {
        name: 'lead',
        label: 'Prospect',
        fields: [
          { name: 'score__c', type: 'int', digits: 4 },
          { name: 'Tier__c', type: 'picklist' },
        ],
      },
    ]);
    expect(merged).toHaveLength(1);
    const [only] = merged;
    expect([only?.name, only?.label]).toEqual(['Lead', 'Prospect']);
    expect(only?.fields.map((f) => `${f.name}:${f.type}`)).toEqual([
      'Id:id',
      'score__c:int',
      'Tier__c:picklist',
    ]);
    const tier = only && findField(only, 'Tier__c');
    expect(tier).toMatchObject({
      nillable: true,
      createable: true,
      updateable: true,
      custom: true,
      length: 255,
      soapType: 'xsd:string',
      referenceTo: [],
    });
  });

  it('names the file and the problem for an unusable describe', () => {
    expect(() => normalizeDescribes([{ keyPrefix: 'a01' }], 'x.json')).toThrow(
      new DescribeFileError('x.json[0]', '"name" must be an sObject API name such as "Lead"'),
    );
    expect(() => normalizeDescribes([{ name: 'Thing__c', fields: [] }], 'x.json')).toThrow(
      'x.json[0]: "keyPrefix" must be three letters or digits, e.g. "00Q"',
    );
    expect(() =>
      normalizeDescribes(
        [{ name: 'Thing__c', keyPrefix: 'a01', fields: [{ name: 'Id', type: 'uuid' }] }],
        'x.json',
      ),
    ).toThrow('x.json[0] fields[0]: field Id: "type" must be one of');
    expect(() => normalizeDescribes([{ name: 'Thing__c', keyPrefix: 'a01', fields: [] }], 'x.json')).toThrow(
      'x.json[0]: an object needs an "Id" field',
    );
  });

  it('holds User as Salesforce describes it: no IsDeleted (deactivated, not deleted), SystemModstamp, not deletable', () => {
    const user = loadDescribes().find((d) => d.name === 'User');
    expect(user).toMatchObject({ keyPrefix: '005', deletable: false, undeletable: false });
    const names = (user?.fields ?? []).map((f) => f.name);
    expect(names).not.toContain('IsDeleted');
    expect(names).toEqual(expect.arrayContaining(['Id', 'Name', 'IsActive', 'UserRoleId', 'SystemModstamp']));
    // Its queryAll returns what query does: nothing of it is ever in a recycle bin.
    const store = new SalesforceStore({ describes: loadDescribes() });
    store.seed('User', [{ Username: 'a@x.test', LastName: 'A', Name: 'A', Email: 'a@x.test', Alias: 'a' }]);
    expect(store.query('SELECT Id FROM User', { includeDeleted: true }).records).toHaveLength(1);
    expect(() => store.seed('User', [{ LastName: 'B', IsDeleted: true }])).toThrow(
      "no field 'IsDeleted' on User",
    );
  });

  it('loads the describe files kept in the repo by default', () => {
    // Reads emulators/salesforce/describes/*.json: the repo's own files, nothing written.
    expect(loadDescribes().map((d) => d.name)).toEqual([
      'Account',
      'Contact',
      'Event',
      'Lead',
      'Task',
      'User',
    ]);
  });
});
