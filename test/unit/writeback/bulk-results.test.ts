/**
 * The header of a Bulk ingest result file, read for the columns that were sent with the job.
 */
import { csvHeaderNames } from '../../../lambdas/core/writeback/bulk-results';

describe('csvHeaderNames', () => {
  it('reads quoted and bare names, with the line break and a BOM dropped', () => {
    expect(csvHeaderNames('"sf__Id","sf__Created",External_Id__c,LastName\r\n')).toEqual([
      'sf__Id',
      'sf__Created',
      'External_Id__c',
      'LastName',
    ]);
    expect(csvHeaderNames('\uFEFF"sf__Id","sf__Error","Id","LeadScore__c"\n')).toEqual([
      'sf__Id',
      'sf__Error',
      'Id',
      'LeadScore__c',
    ]);
  });

  it('keeps commas and doubled quotes inside quotes, and empty names', () => {
    expect(csvHeaderNames('"a,b","say ""hi""",,last')).toEqual(['a,b', 'say "hi"', '', 'last']);
    expect(csvHeaderNames('only')).toEqual(['only']);
  });
});
