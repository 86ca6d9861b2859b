/**
 * Composite with `allOrNone: true` through jsforce: a failing subrequest rolls back every
 * subrequest that already ran (creates, updates, upserts, deletes, Collections), indexes
 * included, and every other subrequest answers 400 PROCESSING_HALTED.
 */
import type { Connection } from 'jsforce';
import { startSalesforceEmulator, type SalesforceEmulator } from '../../../emulators/salesforce';
import { soapLogin, VERSION } from './support';

interface SubResult {
  httpStatusCode: number;
  body: unknown;
  referenceId: string;
}

const HALTED = [
  {
    errorCode: 'PROCESSING_HALTED',
    message: 'The transaction was rolled back since another operation in the same transaction failed.',
  },
];

describe('Salesforce emulator Composite allOrNone (jsforce 3.10.16 over HTTP)', () => {
  let sf: SalesforceEmulator;
  let conn: Connection;
  let ng: string;
  let okafor: string;

  const composite = async (allOrNone: boolean, compositeRequest: unknown[]): Promise<SubResult[]> =>
    (
      await conn.requestPost<{ compositeResponse: SubResult[] }>(`/services/data/v${VERSION}/composite`, {
        allOrNone,
        compositeRequest,
      })
    ).compositeResponse;
  const url = (path: string): string => `/services/data/v${VERSION}/${path}`;
  /** Everything a client can see of the leads and accounts, through the API. */
  const visible = async (): Promise<unknown> => ({
    leads: (
      await conn.query<Record<string, unknown>>(
        'SELECT Id, LastName, Company, Title, External_Id__c, IsDeleted, SystemModstamp FROM Lead ORDER BY Id',
        { scanAll: true },
      )
    ).records.map((r) => ({ ...r, attributes: undefined })),
    accounts: (await conn.query('SELECT Id, Name FROM Account')).totalSize,
  });

  beforeAll(async () => {
    sf = await startSalesforceEmulator({
      seed: {
        Lead: [
          { LastName: 'Ng', Company: 'Acme', External_Id__c: 'ext-1' },
          { LastName: 'Okafor', Company: 'Globex', External_Id__c: 'ext-2' },
        ],
      },
    });
    conn = await soapLogin(sf);
    [ng, okafor] = [...sf.store.all('Lead')].map((r) => r.Id as string) as [string, string];
  });
  afterAll(() => sf.stop());

  it('rolls back every subrequest that ran when a later one fails, and halts the rest', async () => {
    const before = await visible();
    const used = sf.limits.used;
    const responses = await composite(true, [
      { method: 'POST', url: url('sobjects/Account'), referenceId: 'acct', body: { Name: 'Rolled Back Co' } },
      {
        method: 'PATCH',
        url: url(`sobjects/Lead/${ng}`),
        referenceId: 'moveKey',
        body: { Company: 'Changed', External_Id__c: 'ext-moved' },
      },
      { method: 'DELETE', url: url(`sobjects/Lead/${okafor}`), referenceId: 'gone' },
      {
        method: 'PATCH',
        url: url('sobjects/Lead/External_Id__c/ext-new'),
        referenceId: 'upserted',
        body: { LastName: 'Upserted', Company: 'Co' },
      },
      {
        method: 'POST',
        url: url('composite/sobjects'),
        referenceId: 'batch',
        body: {
          allOrNone: false,
          records: [
            { attributes: { type: 'Lead' }, LastName: 'Batch', Company: 'Co', External_Id__c: 'ext-batch' },
          ],
        },
      },
      { method: 'GET', url: url('sobjects/Account/@{acct.id}'), referenceId: 'read' },
      // Fails: a Lead needs LastName and Company.
      { method: 'POST', url: url('sobjects/Lead'), referenceId: 'bad', body: { Title: 'No name' } },
      { method: 'POST', url: url('sobjects/Account'), referenceId: 'after', body: { Name: 'Never Co' } },
    ]);
    expect(responses.map((r) => [r.referenceId, r.httpStatusCode])).toEqual([
      ['acct', 400],
      ['moveKey', 400],
      ['gone', 400],
      ['upserted', 400],
      ['batch', 400],
      ['read', 400],
      ['bad', 400],
      ['after', 400],
    ]);
    for (const r of responses.filter((x) => x.referenceId !== 'bad')) expect(r.body).toEqual(HALTED);
    expect(responses.find((r) => r.referenceId === 'bad')?.body).toEqual([
      expect.objectContaining({ errorCode: 'REQUIRED_FIELD_MISSING' }),
    ]);
    expect(sf.limits.used).toBe(used + 1);
    // Nothing of it is left: records, deletes, stamps.
    expect(await visible()).toEqual(before);
    // ...nor in the unique index: the moved key is free again, the old one finds Ng, the
    // created keys can be created.
    const upsert = await conn
      .sobject('Lead')
      .upsert({ External_Id__c: 'ext-1', Title: 'Found again' }, 'External_Id__c');
    expect(upsert).toMatchObject({ success: true, created: false, id: ng });
    const created = await conn.sobject('Lead').create([
      { LastName: 'Moved', Company: 'Co', External_Id__c: 'ext-moved' },
      { LastName: 'New', Company: 'Co', External_Id__c: 'ext-new' },
      { LastName: 'Batch', Company: 'Co', External_Id__c: 'ext-batch' },
    ]);
    expect(created.map((r) => r.success)).toEqual([true, true, true]);
  });

  it('applies its allOrNone to Collections subrequests: one failed record rolls back the whole request', async () => {
    const before = await visible();
    const responses = await composite(true, [
      {
        method: 'PATCH',
        url: url(`sobjects/Lead/${okafor}`),
        referenceId: 'first',
        body: { Title: 'Kept?' },
      },
      {
        method: 'POST',
        url: url('composite/sobjects'),
        referenceId: 'batch',
        body: {
          allOrNone: false,
          records: [
            { attributes: { type: 'Lead' }, LastName: 'Good', Company: 'Co' },
            { attributes: { type: 'Lead' }, LastName: 'Bad' },
          ],
        },
      },
    ]);
    expect(responses[0]).toMatchObject({ referenceId: 'first', httpStatusCode: 400, body: HALTED });
    // The Collections subrequest answers as with allOrNone: true.
    expect(responses[1]).toMatchObject({ referenceId: 'batch', httpStatusCode: 200 });
    expect(
      (responses[1]?.body as { success: boolean; errors: { statusCode: string }[] }[]).map(
        (r) => r.errors[0]?.statusCode,
      ),
    ).toEqual(['ALL_OR_NONE_OPERATION_ROLLED_BACK', 'REQUIRED_FIELD_MISSING']);
    expect(await visible()).toEqual(before);
  });

  it('keeps what succeeded when allOrNone is false', async () => {
    const responses = await composite(false, [
      { method: 'PATCH', url: url(`sobjects/Lead/${okafor}`), referenceId: 'kept', body: { Title: 'Kept' } },
      { method: 'POST', url: url('sobjects/Lead'), referenceId: 'bad', body: { Title: 'No name' } },
      { method: 'POST', url: url('sobjects/Account'), referenceId: 'after', body: { Name: 'After Co' } },
    ]);
    expect(responses.map((r) => r.httpStatusCode)).toEqual([204, 400, 201]);
    expect((await conn.sobject('Lead').retrieve(okafor)).Title).toBe('Kept');
    expect((await conn.query(`SELECT Id FROM Account WHERE Name = 'After Co'`)).totalSize).toBe(1);
  });
});
