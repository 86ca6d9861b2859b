/**
 * Numbers past 2^53 (an 18-digit currency amount) keep every digit from the Salesforce emulator
 * to PostgreSQL: written to the emulator as text (a Bulk upload) and as a JSON number literal
 * (a REST PATCH), then extracted over REST (JSON) and through a Bulk job (CSV).
 */
import { runExtract } from '../../../lambdas/core';
import { leads, startExtractHarness, type ExtractHarness } from './harness';

/** AnnualRevenue is a currency(18, 0): these do not survive a double. */
const BIG = '987654321098765432';
const BIG_NEGATIVE = '-123456789012345678';
const FROM_JSON = '900719925474099317';

describe('exact numbers from Salesforce to PostgreSQL', () => {
  let h: ExtractHarness;

  beforeAll(async () => {
    h = await startExtractHarness({
      seed: {
        Lead: [
          ...leads(3),
          { LastName: 'Big', Company: 'Co', AnnualRevenue: BIG },
          { LastName: 'Negative', Company: 'Co', AnnualRevenue: BIG_NEGATIVE },
          { LastName: 'Json', Company: 'Co', AnnualRevenue: 1 },
        ],
      },
    });
  });
  afterAll(() => h.close());

  it('extracts 18-digit amounts exactly, over REST and through Bulk', async () => {
    // A client writes one with a JSON number literal, as Salesforce's REST API takes it.
    const sf = await h.connect();
    const json = h.sf.store.query(`SELECT Id FROM Lead WHERE LastName = 'Json'`).records[0]?.Id as string;
    await sf.request('update lead', 'PATCH', `/sobjects/Lead/${json}`, `{"AnnualRevenue": ${FROM_JSON}}`);
    // ... and reads it back with the same digits (the connector parses JSON without doubles).
    const read = await fetch(`${h.sf.instanceUrl}/services/data/v62.0/sobjects/Lead/${json}`, {
      headers: { Authorization: `Bearer ${await sessionOf(h)}` },
    });
    expect(await read.text()).toContain(`"AnnualRevenue":${FROM_JSON},`);

    const fields = ['Id', 'LastName', 'AnnualRevenue'];
    const config = h.config([
      { from: 'salesforce', object: 'Lead', fields, table: 'sf_rest' },
      { from: 'salesforce', object: 'Lead', name: 'LeadBulk', fields, table: 'sf_bulk', bulkThreshold: 1 },
    ]);
    const result = await runExtract({ input: {} }, h.deps(config), {});
    expect(result.salesforce.Lead).toMatchObject({ api: 'rest', rows: 6 });
    expect(result.salesforce.LeadBulk).toMatchObject({ api: 'bulk', rows: 6 });
    for (const table of ['sf_rest', 'sf_bulk']) {
      expect(
        await h.rows(
          `SELECT "LastName", "AnnualRevenue"::text AS revenue FROM ${table}
            WHERE "LastName" IN ('Big', 'Negative', 'Json') ORDER BY "LastName"`,
        ),
      ).toEqual([
        { LastName: 'Big', revenue: BIG },
        { LastName: 'Json', revenue: FROM_JSON },
        { LastName: 'Negative', revenue: BIG_NEGATIVE },
      ]);
    }
  });
});

/** A session id of the emulator, for a raw read of the JSON text. */
async function sessionOf(h: ExtractHarness): Promise<string> {
  const res = await fetch(`${h.sf.loginUrl}/services/oauth2/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: h.sf.credentials.clientId,
      client_secret: h.sf.credentials.clientSecret,
    }).toString(),
  });
  return ((await res.json()) as { access_token: string }).access_token;
}
