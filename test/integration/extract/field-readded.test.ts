/**
 * A field taken out of a task and later listed again: its column stayed, with the values of its
 * last read, and the records changed in between were read without it. An incremental read would
 * only refresh the records changed since the watermark, so those records would keep, for good, a
 * value Salesforce no longer has. Listed again, the field is read in full once, as a new one is.
 */
import { runExtract } from '../../../lambdas/core';
import { leads, startExtractHarness, type ExtractHarness } from './harness';

const WITHOUT_EMAIL = ['Id', 'LastName', 'Company', 'SystemModstamp', 'IsDeleted'];
const WITH_EMAIL = [...WITHOUT_EMAIL, 'Email'];

describe('A field listed again after it was taken out of the task', () => {
  let h: ExtractHarness;

  beforeAll(async () => {
    h = await startExtractHarness({ seed: { Lead: leads(12) } });
  });
  afterAll(async () => h.close());

  const run = (fields: string[]) =>
    runExtract(
      { input: {} },
      h.deps(
        h.config([{ from: 'salesforce', object: 'Lead', fields, table: 'sf_readded', overlapSeconds: 0 }]),
      ),
    );
  const emailOf = async (lastName: string): Promise<unknown> =>
    (await h.rows<{ Email: unknown }>(`SELECT "Email" FROM sf_readded WHERE "LastName" = $1`, [lastName]))[0]
      ?.Email;
  const planned = (): Record<string, unknown> | undefined =>
    h.logger.records.filter((r) => r.message === 'Salesforce extract planned').at(-1)?.attributes;

  it('is read in full once, so that the records changed while it was out get their value', async () => {
    expect((await run(WITH_EMAIL)).salesforce.Lead).toMatchObject({ full: true, rows: 12 });
    expect(await emailOf('Lead 3')).toBe('lead3@example.test');

    // Out of the task: the column stays. Meanwhile the lead's email changes in Salesforce.
    const [lead3] = h.sf.store.query(`SELECT Id FROM Lead WHERE LastName = 'Lead 3'`).records;
    h.sf.store.update('Lead', [{ Id: lead3?.Id, Email: 'new3@example.test' }]);
    const without = await run(WITHOUT_EMAIL);
    expect(without.salesforce.Lead).toMatchObject({ full: false, updated: 1 });
    expect(await emailOf('Lead 3')).toBe('lead3@example.test');

    // Listed again: the column has the email of before, and the lead was read already (its stamp is
    // behind the watermark): only a full read gives it the email Salesforce has.
    const again = await run(WITH_EMAIL);
    expect(planned()).toMatchObject({ full: true, fullBecause: expect.stringContaining('Email') });
    expect(again.salesforce.Lead).toMatchObject({ full: true, rows: 12, updated: 1 });
    expect(await emailOf('Lead 3')).toBe('new3@example.test');
    // Prepare counted the same full read, and the extract took its COUNT().
    expect(planned()?.countFrom).toMatch(/^this run's count/);

    // And the run after that is incremental again; taking a field out reads nothing in full.
    expect((await run(WITH_EMAIL)).salesforce.Lead).toMatchObject({ full: false });
    expect((await run(WITHOUT_EMAIL)).salesforce.Lead).toMatchObject({ full: false });
  });
});
