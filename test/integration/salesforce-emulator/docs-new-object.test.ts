/**
 * The new object docs/salesforce-emulator.md shows ("Objects and describes"), taken from the page
 * as it is: served as the page says.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  DEFAULT_DESCRIBES_DIR,
  startSalesforceEmulator,
  type SalesforceEmulator,
} from '../../../emulators/salesforce';
import { soapLogin } from './support';

describe("the docs' new-object describe", () => {
  let dir: string;
  let sf: SalesforceEmulator;
  beforeAll(async () => {
    const page = await readFile(path.join(__dirname, '../../../docs/salesforce-emulator.md'), 'utf8');
    const json = /`my-describes\/Signup__c\.json`:\n\n```json\n([\s\S]*?)\n```/.exec(page)?.[1];
    expect(json).toBeDefined();
    dir = await mkdtemp(path.join(os.tmpdir(), 'docs-describes-'));
    await writeFile(path.join(dir, 'Signup__c.json'), json as string);
    sf = await startSalesforceEmulator({ describesDir: [DEFAULT_DESCRIBES_DIR, dir] });
  });
  afterAll(async () => {
    await sf?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('creates, upserts by its external ID, refuses a value outside the picklist and keeps a deleted record flagged', async () => {
    const conn = await soapLogin(sf);
    const created = await conn.sobject('Signup__c').create([
      { Name: 'a', Signup_Key__c: 'S-1', Plan__c: 'free', Seats__c: 3 },
      { Name: 'b', Signup_Key__c: 'S-2', Plan__c: 'gold' },
    ]);
    expect(created.map((r) => r.success)).toEqual([true, false]);
    expect(JSON.stringify(created[1])).toContain('INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST');
    const id = created[0]?.id as string;
    expect(id.startsWith('a01')).toBe(true);
    const upserted = await conn
      .sobject('Signup__c')
      .upsert([{ Signup_Key__c: 'S-1', Seats__c: 5 }], 'Signup_Key__c');
    expect(upserted).toMatchObject([{ id, success: true, created: false }]);
    await conn.sobject('Signup__c').destroy(id);
    const all = await conn.query<{
      Id: string;
      Seats__c: number;
      IsDeleted: boolean;
      SystemModstamp: string;
    }>('SELECT Id, Seats__c, IsDeleted, SystemModstamp FROM Signup__c', { scanAll: true });
    expect(all.records.map((r) => [r.Id, r.Seats__c, r.IsDeleted, typeof r.SystemModstamp])).toEqual([
      [id, 5, true, 'string'],
    ]);
  });
});
