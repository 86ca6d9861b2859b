import { parseConfig, type WritebackTask, type WritebackTaskInput } from '../../../lambdas/config';
import type {
  SalesforceFieldDescribe,
  SalesforceObjectDescribe,
} from '../../../lambdas/connectors/salesforce';
import { choosePushApi, mapWritebackTask } from '../../../lambdas/core/writeback';
import { extractOfObject } from '../../../lambdas/core/writeback/plan';
import { TerminalError } from '../../../lambdas/shared/errors';

function field(name: string, over: Partial<SalesforceFieldDescribe> = {}): SalesforceFieldDescribe {
  return {
    name,
    type: 'string',
    length: 80,
    precision: 0,
    scale: 0,
    nillable: true,
    createable: true,
    updateable: true,
    defaultedOnCreate: false,
    externalId: false,
    ...over,
  };
}

const describe_: SalesforceObjectDescribe = {
  name: 'Lead',
  label: 'Lead',
  keyPrefix: '00Q',
  createable: true,
  updateable: true,
  deletable: true,
  queryable: true,
  fields: [
    field('Id', {
      type: 'id',
      nillable: false,
      createable: false,
      updateable: false,
      defaultedOnCreate: true,
    }),
    field('LastName', { nillable: false }),
    field('Company', { nillable: false }),
    field('LeadScore__c', { type: 'double', precision: 3 }),
    field('IsConverted', { type: 'boolean', nillable: false, updateable: false, defaultedOnCreate: true }),
    field('External_Id__c', { externalId: true }),
    field('Address', { type: 'address', createable: false, updateable: false }),
  ],
};

function task(input: Partial<WritebackTaskInput>): WritebackTask {
  const config = parseConfig({
    name: 'unit',
    salesforce: { secret: 's' },
    postgres: { secret: 'p' },
    writeback: [
      {
        to: 'salesforce',
        object: 'Lead',
        from: 'src',
        mode: 'update',
        fields: { LeadScore__c: 'score' },
        ...input,
      } as WritebackTaskInput,
    ],
  });
  return config.writeback[0] as WritebackTask;
}

describe('mapWritebackTask', () => {
  it('maps update fields in the describe spelling, keyed on Id', () => {
    const mapping = mapWritebackTask(task({ fields: { leadscore__c: 'score' } }), describe_);
    expect(mapping.keyField).toBe('Id');
    expect(mapping.fields.map((m) => [m.field.name, m.kind, m.column, m.isKey])).toEqual([
      ['LeadScore__c', 'number', 'score', false],
    ]);
  });

  it('puts the external-ID key first in an upsert payload', () => {
    const mapping = mapWritebackTask(
      task({
        mode: 'upsert',
        key: 'External_Id__c',
        keyColumn: 'ext',
        fields: { LastName: 'n', Company: 'c' },
      }),
      describe_,
    );
    expect(mapping.fields.map((m) => [m.field.name, m.isKey])).toEqual([
      ['External_Id__c', true],
      ['LastName', false],
      ['Company', false],
    ]);
  });

  it('lists the fields a record an upsert creates needs and the task does not map, for the plan to check', () => {
    const upsert = { mode: 'upsert' as const, key: 'External_Id__c', keyColumn: 'ext' };
    expect(
      mapWritebackTask(task({ ...upsert, fields: { LeadScore__c: 's' } }), describe_).unmappedRequired,
    ).toEqual(['LastName', 'Company']);
    expect(
      mapWritebackTask(task({ ...upsert, fields: { LastName: 'n', LeadScore__c: 's' } }), describe_)
        .unmappedRequired,
    ).toEqual(['Company']);
    // An update creates nothing; collecting what was sent checks no access.
    expect(mapWritebackTask(task({}), describe_).unmappedRequired).toEqual([]);
    expect(
      mapWritebackTask(task({ ...upsert, fields: { LeadScore__c: 's' } }), describe_, { checkAccess: false })
        .unmappedRequired,
    ).toEqual([]);
  });

  it('reports every problem of a mapping at once', () => {
    const attempt = () =>
      mapWritebackTask(
        task({ mode: 'insert', key: 'LastName', fields: { Nope: 'a', IsConverted: 'b', Address: 'c' } }),
        describe_,
      );
    expect(attempt).toThrow(TerminalError);
    expect(attempt).toThrow(
      'Cannot plan the write-back Lead-insert (insert of Lead): key LastName is not an external-ID field of Lead (key: insert needs one; its external-ID fields: External_Id__c); field Nope does not exist on Lead (fields.Nope); field Address is not createable (fields.Address): it is a compound field, which Salesforce sets from its parts: map those instead; Address has type address, which the write-back cannot send (fields.Address); field LastName is required on insert but not mapped (fields); field Company is required on insert but not mapped (fields)',
    );
  });

  it('says so when the object has no external-ID field an insert or upsert could key by', () => {
    const none = { ...describe_, fields: describe_.fields.filter((f) => !f.externalId) };
    expect(() =>
      mapWritebackTask(task({ mode: 'upsert', key: 'LastName', fields: { LeadScore__c: 'score' } }), none),
    ).toThrow(
      'Cannot plan the write-back Lead-upsert (upsert of Lead): key LastName is not an external-ID field of Lead (key: upsert needs one; it has no external-ID field)',
    );
  });

  it('names each key by its place in the config and the field a typo was meant to be', () => {
    expect(() =>
      mapWritebackTask(
        task({ mode: 'upsert', key: 'External_ID__', fields: { LeadScor__c: 'a', Nope: 'b' } }),
        describe_,
        { configPath: 'writeback[1]' },
      ),
    ).toThrow(
      'Cannot plan the write-back Lead-upsert (upsert of Lead): key External_ID__ is not a field of Lead (writeback[1].key); did you mean External_Id__c?; field LeadScor__c does not exist on Lead (writeback[1].fields.LeadScor__c); did you mean LeadScore__c?; field Nope does not exist on Lead (writeback[1].fields.Nope)',
    );
  });

  it('maps the key alone for a step that collects what the plan stored: a mapped field deleted since does not stop it', () => {
    const t = task({
      mode: 'upsert',
      key: 'External_Id__c',
      keyColumn: 'ext',
      fields: { Gone__c: 'a', LastName: 'n' },
    });
    expect(() => mapWritebackTask(t, describe_, { configPath: 'writeback[0]', step: 'collect' })).toThrow(
      'Cannot collect the write-back Lead-upsert (upsert of Lead): field Gone__c does not exist on Lead (writeback[0].fields.Gone__c)',
    );
    const mapping = mapWritebackTask(t, describe_, { checkAccess: false, keyOnly: true, step: 'collect' });
    expect(mapping.keyField).toBe('External_Id__c');
    expect(mapping.fields.map((m) => [m.field.name, m.isKey])).toEqual([['External_Id__c', true]]);
    // An update's key is Id: nothing of the mapping is left to check.
    expect(mapWritebackTask(task({ fields: { Gone__c: 'a' } }), describe_, { keyOnly: true }).fields).toEqual(
      [],
    );
  });

  it('names the step that could not map: a key deleted in Salesforce mid-run stops the collect', () => {
    expect(() =>
      mapWritebackTask(
        task({ mode: 'upsert', key: 'Gone__c', keyColumn: 'k', fields: { LastName: 'n' } }),
        describe_,
        {
          checkAccess: false,
          keyOnly: true,
          configPath: 'writeback[0]',
          step: 'collect',
        },
      ),
    ).toThrow(
      'Cannot collect the write-back Lead-upsert (upsert of Lead): key Gone__c is not a field of Lead (writeback[0].key)',
    );
  });

  it('maps without the access checks for collecting what a job already sent', () => {
    const t = task({ fields: { IsConverted: 'x' } });
    expect(() => mapWritebackTask(t, describe_)).toThrow(
      /field IsConverted is not updateable by the integration user \(fields.IsConverted\): grant the integration user Edit access to Lead.IsConverted \(field-level security, in its profile or a permission set\), or remove it from the mapping \(a field Salesforce sets itself, such as CreatedDate, no user can set\)/,
    );
    expect(mapWritebackTask(t, describe_, { checkAccess: false }).fields.map((m) => m.field.name)).toEqual([
      'IsConverted',
    ]);
  });

  it('refuses a field that is not updateable for update', () => {
    expect(() => mapWritebackTask(task({ fields: { IsConverted: 'x' } }), describe_)).toThrow(
      /field IsConverted is not updateable/,
    );
  });

  it('says how to fix a custom field the integration user may not set on insert, and that a formula field is computed', () => {
    const locked: SalesforceObjectDescribe = {
      ...describe_,
      fields: [
        ...describe_.fields,
        field('Region__c', { custom: true, createable: false }),
        field('Tier__c', { custom: true, calculated: true, createable: false, updateable: false }),
      ],
    };
    const insert = task({
      mode: 'insert',
      keyColumn: 'k',
      fields: { LastName: 'n', Company: 'c', Region__c: 'r', Tier__c: 't' },
    });
    expect(() => mapWritebackTask(insert, locked, { configPath: 'writeback[0]' })).toThrow(
      'field Region__c is not createable by the integration user (writeback[0].fields.Region__c): grant the integration user Edit access to Lead.Region__c (field-level security, in its profile or a permission set), or remove it from the mapping; ' +
        'field Tier__c is not createable (writeback[0].fields.Tier__c): it is a formula field, whose value Salesforce computes: remove it from the mapping',
    );
  });

  it('says of a key the mode cannot set to choose another external-ID field, naming those it can set', () => {
    const keyed: SalesforceObjectDescribe = {
      ...describe_,
      fields: [
        ...describe_.fields.filter((f) => f.name !== 'External_Id__c'),
        field('External_Id__c', { externalId: true, custom: true, updateable: false }),
        field('Legacy__c', { externalId: true, custom: true }),
        field('Locked_Key__c', { externalId: true, custom: true, createable: false }),
      ],
    };
    const upsert = task({ mode: 'upsert', key: 'External_Id__c', keyColumn: 'k' });
    expect(() => mapWritebackTask(upsert, keyed, { configPath: 'writeback[0]' })).toThrow(
      'key External_Id__c is not updateable by the integration user (writeback[0].key: upsert sets it): grant the integration user Edit access to Lead.External_Id__c (field-level security, in its profile or a permission set), or choose another external-ID field as the key (writeback[0].key; the one upsert can set: Legacy__c)',
    );
    // Insert needs the key createable only: Locked_Key__c is not, External_Id__c is.
    const insert = task({
      mode: 'insert',
      key: 'Locked_Key__c',
      keyColumn: 'k',
      fields: { LastName: 'n', Company: 'c' },
    });
    expect(() => mapWritebackTask(insert, keyed, { configPath: 'writeback[0]' })).toThrow(
      'or choose another external-ID field as the key (writeback[0].key; those insert can set: External_Id__c, Legacy__c)',
    );
    // An auto-number key, which nothing can set, on an object with no other external-ID field.
    const numbered: SalesforceObjectDescribe = {
      ...describe_,
      fields: [
        ...describe_.fields.filter((f) => f.name !== 'External_Id__c'),
        field('Number__c', {
          externalId: true,
          custom: true,
          autoNumber: true,
          createable: false,
          updateable: false,
        }),
      ],
    };
    expect(() =>
      mapWritebackTask(task({ mode: 'upsert', key: 'Number__c', keyColumn: 'k' }), numbered, {
        configPath: 'writeback[0]',
      }),
    ).toThrow(
      'key Number__c is not createable (writeback[0].key: upsert sets it): it is an auto-number field, whose value Salesforce computes: choose another external-ID field as the key (writeback[0].key; Lead has none upsert can set: mark a custom field External ID to key by it)',
    );
  });
});

describe('choosePushApi', () => {
  it('sends nothing for an empty plan, Collections below the threshold and Bulk from it on', () => {
    const t = task({ bulkThreshold: 100 });
    expect(choosePushApi(0, t)).toBe('none');
    expect(choosePushApi(99, t)).toBe('collections');
    expect(choosePushApi(100, t)).toBe('bulk');
  });

  it('keeps an insert without an external-ID key on Collections, whose results come back in order', () => {
    const t = task({
      mode: 'insert',
      keyColumn: 'k',
      fields: { LastName: 'n', Company: 'c' },
      bulkThreshold: 10,
    });
    expect(choosePushApi(1_000, t)).toBe('collections');
  });
});

describe('extractOfObject', () => {
  const extract = (name: string, over: Record<string, unknown> = {}): Record<string, unknown> => ({
    name,
    from: 'salesforce',
    object: 'Lead',
    fields: ['Id', 'LeadScore__c'],
    table: name,
    ...over,
  });
  const chosen = (extracts: Record<string, unknown>[], input: Partial<WritebackTaskInput> = {}): unknown => {
    const config = parseConfig({
      name: 'unit',
      salesforce: { secret: 's' },
      postgres: { secret: 'p' },
      extract: extracts,
    });
    return extractOfObject(config, mapWritebackTask(task(input), describe_))?.name;
  };
  const upsert: Partial<WritebackTaskInput> = {
    mode: 'upsert',
    key: 'External_Id__c',
    keyColumn: 'ext',
    fields: { LeadScore__c: 'score', Company: 'c' },
  };

  it('takes the only extract of the object, of any case, and none of another object', () => {
    expect(chosen([extract('a', { object: 'lead' })])).toBe('a');
    expect(chosen([extract('a', { object: 'Contact' })])).toBeUndefined();
  });

  it('prefers one that reads the key, then one without a where, then the most mapped fields, then the first', () => {
    // The key first: a copy without it matches no record.
    expect(
      chosen(
        [extract('a'), extract('b', { fields: ['Id', 'External_Id__c'], where: "Status = 'Open'" })],
        upsert,
      ),
    ).toBe('b');
    // Every record over those a condition selects.
    expect(chosen([extract('a', { where: "Status = 'Open'" }), extract('b')])).toBe('b');
    // The mapped fields it reads.
    expect(
      chosen(
        [
          extract('a', { fields: ['Id', 'External_Id__c'] }),
          extract('b', { fields: ['Id', 'External_Id__c', 'Company'] }),
        ],
        upsert,
      ),
    ).toBe('b');
    // Alike: the first in the config.
    expect(chosen([extract('a'), extract('b')])).toBe('a');
    expect(chosen([extract('a', { where: 'x = 1' }), extract('b', { where: 'x = 2' })])).toBe('a');
  });
});
