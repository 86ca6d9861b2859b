import { writebackKeyText } from '../../../bin/commands/validate';

describe('writebackKeyText', () => {
  it('names the key field, or for an insert without one the column its keys come from', () => {
    expect(writebackKeyText({ mode: 'update', key: 'Id', keyColumn: 'Id' })).toBe('by Id');
    expect(writebackKeyText({ mode: 'upsert', key: 'External_Id__c', keyColumn: 'ext_id' })).toBe(
      'by External_Id__c',
    );
    expect(writebackKeyText({ mode: 'insert', keyColumn: 'signup_id' })).toBe(
      'keyed by column signup_id (no external-ID field: inserted keys are remembered by roundtrip, not looked up in Salesforce)',
    );
  });
});
