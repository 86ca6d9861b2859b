/**
 * Salesforce enforces a number field's decimal places only in its UI: a value written through the
 * API keeps its digits (Help articles 000212661, 000387302), so Lead.LeadScore__c, Number(3,0),
 * may hold 41.6 or 999.7. The extract copies what Salesforce has: a plain `numeric` column, and a
 * `numeric(p,s)` column an earlier version made is widened by the next load. Typed as the describe
 * says, the copy rounded 41.6 to 42 (and the write-back's diff then saw no change to send), and
 * 999.7 overflowed numeric(3,0), failing every load.
 */
import { runExtract } from '../../../lambdas/core';
import { leads, startExtractHarness, type ExtractHarness } from './harness';

const FIELDS = ['Id', 'LastName', 'Company', 'LeadScore__c', 'SystemModstamp', 'IsDeleted'];

describe('number fields hold what Salesforce has', () => {
  let h: ExtractHarness;
  const config = () => h.config([{ from: 'salesforce', object: 'Lead', fields: FIELDS, table: 'sf_lead' }]);
  const scores = () =>
    h.rows<{ LastName: string; score: string | null }>(
      `SELECT "LastName", "LeadScore__c"::text AS score FROM sf_lead WHERE "LeadScore__c" IS NOT NULL ORDER BY "LastName"`,
    );
  const columnType = async () =>
    (
      await h.rows<{ type: string }>(
        `SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute
          WHERE attrelid = 'sf_lead'::regclass AND attname = 'LeadScore__c'`,
      )
    )[0]?.type;

  beforeEach(async () => {
    h = await startExtractHarness({ seed: { Lead: leads(5) } });
  });
  afterEach(async () => h.close());

  it('keeps decimals beyond the field’s scale, and loads a value that rounds past its precision', async () => {
    h.sf.store.create('Lead', [
      { LastName: 'Decimal', Company: 'Acme', LeadScore__c: 41.6 },
      { LastName: 'Edge', Company: 'Acme', LeadScore__c: 999.7 },
    ]);

    await runExtract({ input: {} }, h.deps(config()));

    expect(await columnType()).toBe('numeric');
    expect(await scores()).toEqual([
      { LastName: 'Decimal', score: '41.6' },
      { LastName: 'Edge', score: '999.7' },
    ]);
  });

  it('widens a numeric(p,s) column an earlier version made, and then loads such values', async () => {
    await runExtract({ input: {} }, h.deps(config()));
    await h.rows(`ALTER TABLE sf_lead ALTER COLUMN "LeadScore__c" TYPE numeric(3,0)`);
    h.sf.store.create('Lead', [{ LastName: 'Later', Company: 'Acme', LeadScore__c: 999.7 }]);

    await runExtract({ input: {} }, h.deps(config()));

    expect(await columnType()).toBe('numeric');
    expect(await scores()).toEqual([{ LastName: 'Later', score: '999.7' }]);
  });
});
