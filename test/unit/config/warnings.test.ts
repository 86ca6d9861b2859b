import { configWarnings, parseConfig, type WritebackTaskInput } from '../../../lambdas/config';

/** A valid config with these write-back tasks. */
function config(...writeback: WritebackTaskInput[]) {
  return parseConfig({
    name: 'p',
    salesforce: { secret: 'roundtrip/salesforce' },
    postgres: { secret: 'roundtrip/postgres' },
    writeback,
  });
}

const SCORES_A: WritebackTaskInput = {
  to: 'salesforce',
  object: 'Lead',
  from: 'scores_a',
  mode: 'upsert',
  key: 'External_Id__c',
  keyColumn: 'ext',
  fields: { LeadScore__c: 'score', Rating: 'rating' },
  name: 'scores-a',
};
const SCORES_B: WritebackTaskInput = {
  to: 'salesforce',
  object: 'Lead',
  from: 'scores_b',
  mode: 'update',
  fields: { LeadScore__c: 'score' },
  name: 'scores-b',
};
const OTHER: WritebackTaskInput = {
  to: 'salesforce',
  object: 'Lead',
  from: 'status',
  mode: 'update',
  fields: { Status: 'status' },
  name: 'status',
};

describe('configWarnings', () => {
  it('names two update or upsert tasks writing one field of one object by their config paths, with the object, the field and the consequence', () => {
    expect(configWarnings(config(SCORES_A, OTHER, SCORES_B))).toEqual([
      {
        paths: ['writeback[0]', 'writeback[2]'],
        tasks: ['scores-a', 'scores-b'],
        message:
          "writeback[0] (scores-a) and writeback[2] (scores-b) both write Lead.LeadScore__c: on a record both sources hold, each overwrites the other's value, and with the extracted copy of Lead to compare with, each run each task finds the other's value there and sends its own again, so the field flips on every run and API calls are spent on it for ever (without the copy, Salesforce keeps whichever sent last, unseen). Fine if the two sources never hold the same record; otherwise map the field in one of the two tasks only",
      },
    ]);
  });

  it('compares object and field API names without case, and names every field the two share', () => {
    const b = { ...SCORES_B, object: 'LEAD', fields: { rating: 'r', leadscore__c: 's' } };
    const [warning] = configWarnings(config(SCORES_A, b));
    expect(warning?.paths).toEqual(['writeback[0]', 'writeback[1]']);
    expect(warning?.message).toMatch(
      /^writeback\[0\] \(scores-a\) and writeback\[1\] \(scores-b\) both write Lead\.LeadScore__c and Lead\.Rating: .* so the fields flip on every run and API calls are spent on them for ever .* otherwise map each field in one of the two tasks only$/,
    );
  });

  it('says each pair once when three tasks write the field', () => {
    const c = { ...SCORES_B, name: 'scores-c', from: 'scores_c' };
    expect(configWarnings(config(SCORES_A, SCORES_B, c)).map((w) => w.paths)).toEqual([
      ['writeback[0]', 'writeback[1]'],
      ['writeback[0]', 'writeback[2]'],
      ['writeback[1]', 'writeback[2]'],
    ]);
  });

  it('says nothing of tasks writing other fields, or the field of another object, or an insert (which sets a field once, at creation)', () => {
    const contact = { ...SCORES_B, object: 'Contact', name: 'contact-scores' };
    const insert: WritebackTaskInput = {
      to: 'salesforce',
      object: 'Lead',
      from: 'new_leads',
      mode: 'insert',
      keyColumn: 'row_id',
      fields: { LastName: 'name', LeadScore__c: 'score' },
    };
    expect(configWarnings(config(SCORES_A, OTHER, contact, insert))).toEqual([]);
  });
});
