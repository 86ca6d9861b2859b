import type { SalesforceExtractTask } from '../../../lambdas/config';
import {
  chooseReadApi,
  deletesFor,
  extractConfigPath,
  fieldsBulkCannotRead,
  forecastReadCalls,
  planSalesforceRead,
  readScopeChange,
  readScopeFields,
  readScopeOf,
  resolveFields,
  soqlDatetime,
  storedReadScope,
} from '../../../lambdas/core/salesforce-read';
import { TerminalError } from '../../../lambdas/shared/errors';

const DESCRIBE = ['Id', 'LastName', 'Email', 'SystemModstamp', 'IsDeleted', 'LeadScore__c'].map((name) => ({
  name,
}));

/** User: deactivated, never deleted, so no IsDeleted (as Salesforce describes it). */
const USER_DESCRIBE = ['Id', 'Name', 'IsActive', 'UserRoleId', 'SystemModstamp'].map((name) => ({ name }));

const task = (over: Partial<SalesforceExtractTask> = {}): SalesforceExtractTask => ({
  from: 'salesforce',
  object: 'Lead',
  fields: ['Id', 'email', 'LeadScore__c'],
  table: 'sf_lead',
  mode: 'incremental',
  deletes: 'flag',
  overlapSeconds: 300,
  bulkThreshold: 10_000,
  name: 'Lead',
  ...over,
});

describe('soqlDatetime', () => {
  it('writes UTC without a fraction, rounded down so that an inclusive bound only widens', () => {
    expect(soqlDatetime(new Date('2024-05-20T20:49:32.999Z'))).toBe('2024-05-20T20:49:32Z');
    expect(soqlDatetime(new Date('2024-05-20T23:00:00.000+09:00'))).toBe('2024-05-20T14:00:00Z');
    expect(() => soqlDatetime(new Date('nope'))).toThrow(TerminalError);
  });
});

describe('resolveFields', () => {
  it('uses the describe spelling and adds the watermark and delete fields', () => {
    expect(resolveFields(task(), DESCRIBE)).toEqual({
      fields: ['Id', 'Email', 'LeadScore__c', 'SystemModstamp', 'IsDeleted'],
      added: ['SystemModstamp', 'IsDeleted'],
      deletedField: true,
    });
  });

  it('adds no IsDeleted to an object without it (User), and says so', () => {
    const user = task({ object: 'User', name: 'User', fields: ['Id', 'Name', 'IsActive'] });
    expect(resolveFields(user, USER_DESCRIBE)).toEqual({
      fields: ['Id', 'Name', 'IsActive', 'SystemModstamp'],
      added: ['SystemModstamp'],
      deletedField: false,
    });
  });

  it('refuses an object without SystemModstamp, naming its config path', () => {
    const history = task({ object: 'LeadHistory', name: 'LeadHistory', fields: ['Id', 'Field'] });
    expect(() =>
      resolveFields(
        history,
        ['Id', 'Field', 'CreatedDate', 'IsDeleted'].map((name) => ({ name })),
        'extract[3]',
      ),
    ).toThrow(
      new TerminalError(
        'Extract task LeadHistory (extract[3].object): LeadHistory has no SystemModstamp field, by which the extract ' +
          'reads changes and orders them: roundtrip cannot extract it; take the task out of the config',
      ),
    );
  });

  it('names every unknown field and the object, with the field a typo was likely meant to be', () => {
    expect(() => resolveFields(task({ fields: ['Id', 'Emial', 'Score'] }), DESCRIBE)).toThrow(
      new TerminalError(
        'Extract task Lead: Lead has no field "Emial" (did you mean "Email"?), "Score" (check the spelling and the field-level security of the integration user)',
      ),
    );
  });

  it("names each unknown field's config path when the task's is given", () => {
    expect(() =>
      resolveFields(task({ fields: ['Id', 'Emial', 'LeadScore__c', 'Score'] }), DESCRIBE, 'extract[1]'),
    ).toThrow(
      new TerminalError(
        'Extract task Lead: Lead has no field "Emial" (extract[1].fields[1]; did you mean "Email"?), "Score" (extract[1].fields[3]) (check the spelling and the field-level security of the integration user)',
      ),
    );
  });

  it('refuses a base64 field (a file’s content, which a query answers with a link to), by its config path', () => {
    const attachment = [
      { name: 'Id', type: 'id' },
      { name: 'Name', type: 'string' },
      { name: 'Body', type: 'base64' },
      { name: 'SystemModstamp', type: 'datetime' },
      { name: 'IsDeleted', type: 'boolean' },
    ];
    const files = task({ object: 'Attachment', name: 'files', fields: ['Id', 'Name', 'body'] });
    expect(() => resolveFields(files, attachment, 'extract[2]')).toThrow(
      new TerminalError(
        "Extract task files: Attachment.Body (extract[2].fields[2]) is a base64 field, a file's content: a query answers in its place a link to each record's file, not the content (that is one more call a record, sObject Blob Get), so roundtrip does not extract it; take it out of extract[2].fields",
      ),
    );
    // Without it, the other fields of the object are read as any.
    expect(resolveFields({ ...files, fields: ['Id', 'Name'] }, attachment).fields).toEqual([
      'Id',
      'Name',
      'SystemModstamp',
      'IsDeleted',
    ]);
  });
});

describe('resolveFields, a field the last read had', () => {
  it('is named as deleted, renamed or hidden since, with the way out, not as a typo', () => {
    expect(() =>
      resolveFields(task({ fields: ['Id', 'Email', 'Region__c'] }), DESCRIBE, 'extract[0]', [
        'Id',
        'Email',
        'Region__c',
        'SystemModstamp',
        'IsDeleted',
      ]),
    ).toThrow(
      new TerminalError(
        'Extract task Lead: Lead has no field "Region__c" (extract[0].fields[2]; the last read had it) ' +
          '(deleted or renamed in Salesforce since, or hidden from the integration user by its field-level security: ' +
          "take it out of extract[0].fields (its column keeps the values of the last read), or restore the field or the user's access to it)",
      ),
    );
  });

  it('keeps the spelling hint while any unknown field is new to the task', () => {
    expect(() =>
      resolveFields(task({ fields: ['Id', 'Region__c', 'Emial'] }), DESCRIBE, 'extract[0]', [
        'Id',
        'Region__c',
      ]),
    ).toThrow(
      new TerminalError(
        'Extract task Lead: Lead has no field "Region__c" (extract[0].fields[1]; the last read had it), ' +
          '"Emial" (extract[0].fields[2]; did you mean "Email"?) (check the spelling and the field-level security of the integration user)',
      ),
    );
  });

  it('reads the fields of a stored scope, and none of one stored before it listed them', () => {
    expect(readScopeFields(storedReadScope(task(), ['Id', 'Email']))).toEqual(['Id', 'Email']);
    expect(readScopeFields(readScopeOf(task()))).toBeUndefined();
    expect(readScopeFields(null)).toBeUndefined();
    expect(readScopeFields('not json')).toBeUndefined();
  });
});

describe('extractConfigPath', () => {
  it("is the task's index in the config's extract list", () => {
    const first = task();
    const second = task({ name: 'Contact', object: 'Contact', table: 'sf_contact' });
    expect(extractConfigPath({ extract: [first, second] }, second)).toBe('extract[1]');
  });
});

describe('planSalesforceRead', () => {
  const watermark = new Date('2024-05-20T12:00:00.500Z');

  it('reads changes since the watermark minus the overlap through queryAll, ordered with Id as tie-breaker', () => {
    const plan = planSalesforceRead(task({ where: "Status = 'Open'" }), DESCRIBE, { full: false, watermark });
    expect(plan.soql({ orderBy: true })).toBe(
      "SELECT Id, Email, LeadScore__c, SystemModstamp, IsDeleted FROM Lead WHERE (Status = 'Open') AND SystemModstamp >= 2024-05-20T11:55:00Z ORDER BY SystemModstamp, Id",
    );
    expect(plan.soql({ orderBy: false })).not.toContain('ORDER BY');
    expect(plan.countSoql).toBe(
      "SELECT COUNT() FROM Lead WHERE (Status = 'Open') AND SystemModstamp >= 2024-05-20T11:55:00Z",
    );
    expect(plan.includeDeleted).toBe(true);
    expect(plan.since).toEqual(new Date('2024-05-20T11:55:00.500Z'));
  });

  it('keeps the boundary inclusive with no overlap', () => {
    const plan = planSalesforceRead(task({ overlapSeconds: 0 }), DESCRIBE, { full: false, watermark });
    expect(plan.countSoql).toBe('SELECT COUNT() FROM Lead WHERE SystemModstamp >= 2024-05-20T12:00:00Z');
  });

  it('reads everything when full or without a watermark; queryAll only when deletes are flagged', () => {
    const flag = planSalesforceRead(task(), DESCRIBE, { full: true, watermark });
    expect(flag.countSoql).toBe('SELECT COUNT() FROM Lead');
    expect(flag.includeDeleted).toBe(true);
    const remove = planSalesforceRead(task({ deletes: 'remove' }), DESCRIBE, {
      full: false,
      watermark: null,
    });
    expect(remove.countSoql).toBe('SELECT COUNT() FROM Lead');
    expect(remove.includeDeleted).toBe(false);
    expect(remove.since).toBeUndefined();
  });

  it('reads an object without IsDeleted through query, incremental or full, whatever its deletes', () => {
    const user = task({ object: 'User', name: 'User', fields: ['Id', 'Name'] });
    const incremental = planSalesforceRead(user, USER_DESCRIBE, { full: false, watermark });
    expect(incremental.soql({ orderBy: false })).toBe(
      'SELECT Id, Name, SystemModstamp FROM User WHERE SystemModstamp >= 2024-05-20T11:55:00Z',
    );
    expect(incremental.includeDeleted).toBe(false);
    expect(incremental.deletedField).toBe(false);
    expect(planSalesforceRead(user, USER_DESCRIBE, { full: true, watermark }).includeDeleted).toBe(false);
  });

  it('reads the live rows of an activity object through queryAll without the deleted ones, archived ones kept', () => {
    for (const object of ['Task', 'event']) {
      const activities = task({ object, name: object, deletes: 'remove', where: "Status = 'Completed'" });
      const full = planSalesforceRead(activities, DESCRIBE, { full: true, watermark });
      expect(full.countSoql).toBe(
        `SELECT COUNT() FROM ${object} WHERE (Status = 'Completed') AND IsDeleted = false`,
      );
      expect(full.includeDeleted).toBe(true);
      // Incremental, and with deletes flagged, they go through queryAll already, unchanged.
      const incremental = planSalesforceRead(activities, DESCRIBE, { full: false, watermark });
      expect(incremental.countSoql).not.toContain('IsDeleted');
      expect(incremental.includeDeleted).toBe(true);
      expect(
        planSalesforceRead({ ...activities, deletes: 'flag' }, DESCRIBE, { full: true, watermark }).countSoql,
      ).toBe(`SELECT COUNT() FROM ${object} WHERE (Status = 'Completed')`);
    }
  });
});

describe('deletesFor', () => {
  const user = task({ object: 'User', name: 'User', fields: ['Id', 'Name'] });

  it("keeps the task's deletes, by IsDeleted, for an object that has it", () => {
    expect(deletesFor(task(), true, 'extract[0]')).toEqual({ mode: 'flag', flagColumn: 'IsDeleted' });
    expect(deletesFor(task({ deletes: 'remove' }), true, 'extract[0]')).toEqual({
      mode: 'remove',
      flagColumn: 'IsDeleted',
    });
  });

  it("removes, without a flag column, for an object without IsDeleted: by default or with 'remove'", () => {
    expect(deletesFor({ ...user, deletesDefaulted: true }, false, 'extract[2]')).toEqual({
      mode: 'remove',
      flagColumn: undefined,
    });
    expect(deletesFor({ ...user, deletes: 'remove' }, false, 'extract[2]')).toEqual({
      mode: 'remove',
      flagColumn: undefined,
    });
  });

  it("refuses 'flag' written out for an object without IsDeleted, naming the config path and the way out", () => {
    expect(() => deletesFor(user, false, 'extract[2]')).toThrow(
      new TerminalError(
        "extract[2].deletes: User has no IsDeleted field (its records are deactivated, not deleted: IsActive): 'flag' cannot mark deleted records; " +
          "remove the option (or set 'remove'): a full read then removes the rows Salesforce no longer returns",
      ),
    );
    expect(() => deletesFor({ ...user, object: 'RecordType' }, false, 'extract[0]')).toThrow(
      "extract[0].deletes: RecordType has no IsDeleted field (its records are not moved to a recycle bin: a delete is for good): 'flag' cannot mark deleted records",
    );
  });
});

describe('API choice and forecast', () => {
  it('switches to Bulk from the threshold on', () => {
    expect(chooseReadApi(9_999, 10_000)).toBe('rest');
    expect(chooseReadApi(10_000, 10_000)).toBe('bulk');
  });

  it('reads over REST, whatever the count, a read that selects a compound field Bulk refuses', () => {
    const describe = [
      { name: 'Id', type: 'id' },
      { name: 'Address', type: 'address' },
      { name: 'Geo__c', type: 'location' },
      { name: 'City', type: 'string' },
    ];
    expect(fieldsBulkCannotRead(['Id', 'City'], describe)).toEqual([]);
    expect(fieldsBulkCannotRead(['Id', 'address', 'City', 'Geo__c'], describe)).toEqual([
      'address',
      'Geo__c',
    ]);
    expect(chooseReadApi(1_000_000, 10_000, ['Address'])).toBe('rest');
    expect(chooseReadApi(1_000_000, 10_000, [])).toBe('bulk');
  });

  it('forecasts REST pages and a Bulk job of ten minutes', () => {
    expect(forecastReadCalls(0, 'rest', { bulkPageRecords: 500_000 })).toBe(1);
    expect(forecastReadCalls(4_001, 'rest', { bulkPageRecords: 500_000 })).toBe(3);
    // create + 10 polls + 2 pages
    expect(forecastReadCalls(1_000_000, 'bulk', { bulkPageRecords: 500_000 })).toBe(13);
  });
});

describe('read scope beside the watermark', () => {
  const stored = storedReadScope(task(), ['Id', 'Email', 'LeadScore__c', 'SystemModstamp', 'IsDeleted']);

  it('matches the same task with the same or fewer fields, in any case', () => {
    expect(
      readScopeChange(stored, task(), ['Id', 'Email', 'LeadScore__c', 'SystemModstamp', 'IsDeleted']),
    ).toBe(undefined);
    expect(readScopeChange(stored, task(), ['id', 'email'])).toBe(undefined);
  });

  it('names the fields the last read did not write: a field listed again is read in full', () => {
    expect(readScopeChange(stored, task(), ['Id', 'Email', 'LastName', 'Phone'])).toBe(
      'fields LastName, Phone are read again: their columns hold the values of an earlier read, ' +
        'and records changed since were read without them',
    );
  });

  it('says a changed object, where or deletes, with the scope of before (without its fields)', () => {
    expect(readScopeChange(stored, task({ where: 'IsConverted = false' }), ['Id'])).toBe(
      `the task's object, where or deletes changed since the last read (was {"object":"Lead","where":null,"deletes":"flag"})`,
    );
    expect(readScopeChange(stored, task({ deletes: 'remove' }), ['Id'])).toMatch(/^the task's object/);
  });

  it('reads in full again after a full read that may have missed records (stored incomplete)', () => {
    const fields = ['Id', 'Email', 'LeadScore__c', 'SystemModstamp', 'IsDeleted'];
    const incomplete = storedReadScope(task(), fields, { incomplete: true });
    expect(readScopeChange(incomplete, task(), fields)).toBe(
      "the last full read got another number of records than its query's totalSize: records may be missing",
    );
    expect(readScopeFields(incomplete)).toEqual(fields);
    expect(readScopeChange(storedReadScope(task(), fields, { incomplete: false }), task(), fields)).toBe(
      undefined,
    );
  });

  it('takes a scope stored before it listed fields, or none at all, as matching', () => {
    expect(readScopeChange(readScopeOf(task()), task(), ['Id', 'Anything'])).toBe(undefined);
    expect(readScopeChange(null, task(), ['Id', 'Anything'])).toBe(undefined);
    expect(readScopeChange(readScopeOf(task()), task({ where: 'X = 1' }), ['Id'])).toMatch(
      /^the task's object/,
    );
  });
});
