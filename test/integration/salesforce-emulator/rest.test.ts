import type { Connection } from 'jsforce';
import { startSalesforceEmulator, type SalesforceEmulator } from '../../../emulators/salesforce';
import { api, caught, firstStatusCode, soapLogin, VERSION } from './support';

describe('Salesforce emulator REST API (jsforce 3.10.16 over HTTP)', () => {
  let sf: SalesforceEmulator;
  let conn: Connection;
  let ng: string;

  beforeAll(async () => {
    sf = await startSalesforceEmulator({
      seed: {
        Lead: [
          {
            LastName: 'Ng',
            Company: 'Acme',
            Email: 'ng@acme.test',
            External_Id__c: 'ext-1',
            LeadScore__c: 10,
          },
          { LastName: 'Okafor', Company: 'Globex', External_Id__c: 'ext-2', LeadScore__c: 50 },
          { LastName: 'Silva', Company: 'Initech', LeadScore__c: 90 },
        ],
      },
    });
    conn = await soapLogin(sf);
    ng = [...sf.store.all('Lead')][0]?.Id as string;
  });
  afterAll(() => sf.stop());

  describe('discovery', () => {
    it('lists the API versions without a session', async () => {
      const res = await fetch(`${sf.url}/services/data`);
      expect(res.status).toBe(200);
      const versions = (await res.json()) as { version: string; url: string; label: string }[];
      expect(versions).toContainEqual({ label: "Winter '25", url: '/services/data/v62.0', version: '62.0' });
    });

    it('answers JSON with application/json;charset=UTF-8 and Sforce-Limit-Info on every REST response', async () => {
      const res = await api(sf, conn, '/limits');
      expect(res.headers.get('content-type')).toBe('application/json;charset=UTF-8');
      expect(res.headers.get('sforce-limit-info')).toMatch(/^api-usage=\d+\/15000$/);
      const missing = await api(sf, conn, '/sobjects/Nope/describe');
      expect(missing.headers.get('sforce-limit-info')).toMatch(/^api-usage=\d+\/15000$/);
    });

    it('describes objects as the describe files say and 404s unknown ones', async () => {
      const global = await conn.describeGlobal();
      expect(global.sobjects.map((s) => s.name)).toEqual(
        expect.arrayContaining(['Lead', 'Account', 'Contact']),
      );
      const lead = await conn.describe('Lead');
      expect(lead.keyPrefix).toBe('00Q');
      const score = lead.fields.find((f) => f.name === 'LeadScore__c');
      expect(score).toMatchObject({ type: 'double', precision: 3, scale: 0, custom: true });
      const err = await caught(conn.describe('Nope__c'));
      expect(err.name).toBe('NOT_FOUND');
      const raw = await api(sf, conn, '/sobjects/Nope__c/describe');
      expect(raw.status).toBe(404);
      expect(await raw.json()).toEqual([
        { message: 'The requested resource does not exist', errorCode: 'NOT_FOUND' },
      ]);
    });
  });

  describe('single-record REST', () => {
    it('creates, retrieves, updates and deletes one record', async () => {
      const created = await conn.sobject('Lead').create({ LastName: 'Single', Company: 'One' });
      expect(created).toEqual({ id: expect.stringMatching(/^00Q\w{15}$/), success: true, errors: [] });
      const id = (created as { id: string }).id;
      const got = await conn.sobject('Lead').retrieve(id);
      expect(got).toMatchObject({
        attributes: { type: 'Lead', url: `/services/data/v${VERSION}/sobjects/Lead/${id}` },
        LastName: 'Single',
      });
      await conn.sobject('Lead').update({ Id: id, Title: 'CTO' });
      expect(sf.store.get(id)?.Title).toBe('CTO');
      await conn.sobject('Lead').destroy(id);
      expect(sf.store.get(id)?.IsDeleted).toBe(true);
      const gone = await api(sf, conn, `/sobjects/Lead/${id}`);
      expect(gone.status).toBe(404);
    });

    it('answers single-record failures with errorCode, not statusCode', async () => {
      const res = await api(sf, conn, '/sobjects/Lead', { method: 'POST', body: { LastName: 'NoCompany' } });
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual([
        {
          message: 'Required fields are missing: [Company]',
          errorCode: 'REQUIRED_FIELD_MISSING',
          fields: ['Company'],
        },
      ]);
    });

    it('upserts by external id: 201 created, 200 updated', async () => {
      const created = await api(sf, conn, '/sobjects/Lead/External_Id__c/ext-new', {
        method: 'PATCH',
        body: { LastName: 'Up', Company: 'Sert' },
      });
      expect(created.status).toBe(201);
      expect(await created.json()).toMatchObject({ success: true, created: true });
      const updated = await api(sf, conn, '/sobjects/Lead/External_Id__c/ext-new', {
        method: 'PATCH',
        body: { Title: 'VP' },
      });
      expect(updated.status).toBe(200);
      expect(await updated.json()).toMatchObject({ success: true, created: false });
    });
  });

  describe('SOQL', () => {
    it('queries with attributes and null for empty fields', async () => {
      const res = await conn.query<{ LastName: string; Phone: null }>(
        "SELECT Id, LastName, Phone FROM Lead WHERE Company = 'Acme'",
      );
      expect(res).toMatchObject({ totalSize: 1, done: true });
      expect(res.records[0]).toEqual({
        attributes: { type: 'Lead', url: `/services/data/v${VERSION}/sobjects/Lead/${ng}` },
        Id: ng,
        LastName: 'Ng',
        Phone: null,
      });
    });

    it('answers COUNT() with totalSize and no records', async () => {
      const res = await conn.query('SELECT COUNT() FROM Lead WHERE LeadScore__c >= 50');
      expect(res).toEqual({ totalSize: 2, done: true, records: [] });
    });

    it('rejects bad SOQL as a whole request (400 errorCode)', async () => {
      expect((await caught(conn.query('SELECT FROM Lead'))).name).toBe('MALFORMED_QUERY');
      expect((await caught(conn.query('SELECT Foo__c FROM Lead'))).name).toBe('INVALID_FIELD');
      expect((await caught(conn.query('SELECT Id FROM Nope__c'))).name).toBe('INVALID_TYPE');
    });

    it('shows deleted records to queryAll only', async () => {
      const { id } = (await conn.sobject('Lead').create({ LastName: 'Gone', Company: 'X' })) as {
        id: string;
      };
      await conn.sobject('Lead').destroy(id);
      const live = await conn.query(`SELECT Id FROM Lead WHERE Id = '${id}'`);
      expect(live.totalSize).toBe(0);
      const all = await conn.query<{ IsDeleted: boolean }>(
        `SELECT Id, IsDeleted FROM Lead WHERE Id = '${id}'`,
        { scanAll: true },
      );
      expect(all.records[0]?.IsDeleted).toBe(true);
    });
  });

  describe('queryMore paging', () => {
    let big: SalesforceEmulator;
    let bigConn: Connection;
    beforeAll(async () => {
      big = await startSalesforceEmulator({
        seed: { Lead: Array.from({ length: 450 }, (_, i) => ({ LastName: `L${i}`, Company: 'Paging' })) },
      });
      bigConn = await soapLogin(big);
    });
    afterAll(() => big.stop());

    it('pages by Sforce-Query-Options batchSize with nextRecordsUrl and /query/{locator}', async () => {
      const first = await bigConn.request<{
        totalSize: number;
        done: boolean;
        nextRecordsUrl: string;
        records: unknown[];
      }>({
        method: 'GET',
        url: `/services/data/v${VERSION}/query?q=${encodeURIComponent('SELECT Id, LastName FROM Lead ORDER BY LastName')}`,
        headers: { 'Sforce-Query-Options': 'batchSize=200' },
      });
      expect(first).toMatchObject({ totalSize: 450, done: false });
      expect(first.records).toHaveLength(200);
      expect(first.nextRecordsUrl).toMatch(new RegExp(`^/services/data/v${VERSION}/query/01g\\w+-200$`));
      const ids = new Set<string>();
      let page: { done: boolean; nextRecordsUrl?: string; records: { Id: string }[] } = first as never;
      for (;;) {
        page.records.forEach((r) => ids.add(r.Id));
        if (page.done) break;
        page = await bigConn.request({
          method: 'GET',
          url: page.nextRecordsUrl as string,
          headers: { 'Sforce-Query-Options': 'batchSize=200' },
        });
      }
      expect(ids.size).toBe(450);
      expect(big.calls.count({ operation: 'queryMore' })).toBe(2);
    });

    it('pages with jsforce autoFetch and a default batch of 2,000', async () => {
      const res = await bigConn.query('SELECT Id FROM Lead', { autoFetch: true, maxFetch: 10_000 });
      expect(res.records).toHaveLength(450);
      const invalid = await api(big, bigConn, '/query/01gNOPE-200');
      expect(invalid.status).toBe(400);
      expect(await invalid.json()).toEqual([
        { message: 'invalid query locator', errorCode: 'INVALID_QUERY_LOCATOR' },
      ]);
    });
  });

  describe('sObject Collections', () => {
    it('creates with per-record statusCode results and enforces 200 records a call', async () => {
      const results = await conn.sobject('Lead').create([
        { LastName: 'C1', Company: 'Co' },
        { LastName: 'C2', Company: 'Co', Status: 'Nope' },
      ]);
      expect(results[0]).toEqual({ id: expect.any(String), success: true, errors: [] });
      expect(results[1]).toEqual({
        success: false,
        errors: [
          {
            statusCode: 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST',
            message: 'Status: bad value for restricted picklist field: Nope',
            fields: ['Status'],
          },
        ],
      });
      const many = Array.from({ length: 201 }, (_, i) => ({ LastName: `M${i}`, Company: 'Many' }));
      const err = await caught(conn.sobject('Lead').create(many));
      expect(err.name).toBe('EXCEEDED_ID_LIMIT');
      expect(err.message).toBe('record limit reached. cannot submit more than 200 records into this call');
      const recursive = await conn.sobject('Lead').create(many, { allowRecursive: true });
      expect(recursive.filter((r) => r.success)).toHaveLength(201);
      expect(
        sf.calls
          .all()
          .slice(-2)
          .map((c) => [c.operation, c.records]),
      ).toEqual([
        ['collections.create', 200],
        ['collections.create', 1],
      ]);
    });

    it('rolls everything back with allOrNone', async () => {
      const before = sf.store.count('Lead');
      const results = await conn
        .sobject('Lead')
        .create([{ LastName: 'A1', Company: 'Co' }, { LastName: 'A2' }], { allOrNone: true });
      expect(results.map((r) => (r.success ? 'ok' : firstStatusCode(r)))).toEqual([
        'ALL_OR_NONE_OPERATION_ROLLED_BACK',
        'REQUIRED_FIELD_MISSING',
      ]);
      expect(sf.store.count('Lead')).toBe(before);
    });

    it('updates (lowercase id), upserts (created flag) and deletes (?ids=)', async () => {
      const updated = await conn.sobject('Lead').update([{ Id: ng, Title: 'Head of Data' }]);
      expect(updated).toEqual([{ id: ng, success: true, errors: [] }]);
      const before = sf.store.get(ng)?.SystemModstamp;
      await conn.sobject('Lead').update([{ Id: ng, Title: 'CDO' }]);
      expect(sf.store.get(ng)?.SystemModstamp).not.toBe(before);
      const upserted = await conn.sobject('Lead').upsert(
        [
          { External_Id__c: 'ext-2', Title: 'Boss' },
          { External_Id__c: 'ext-9', LastName: 'New', Company: 'Co' },
        ],
        'External_Id__c',
      );
      expect(upserted.map((r) => [r.success, (r as { created?: boolean }).created])).toEqual([
        [true, false],
        [true, true],
      ]);
      const newId = (upserted[1] as { id: string }).id;
      const deleted = await conn.sobject('Lead').destroy([newId, '00Q5e0000000zzzEAA']);
      expect(deleted[0]).toEqual({ id: newId, success: true, errors: [] });
      expect(deleted[1]?.success).toBe(false);
      expect(sf.calls.all().slice(-1)[0]).toMatchObject({
        operation: 'collections.delete',
        method: 'DELETE',
        write: true,
      });
    });

    it('rolls back records of several objects with allOrNone: the others fail with ALL_OR_NONE_OPERATION_ROLLED_BACK', async () => {
      const counts = (): number[] => [sf.store.count('Lead'), sf.store.count('Account')];
      const before = counts();
      const failed = await api(sf, conn, '/composite/sobjects', {
        method: 'POST',
        body: {
          allOrNone: true,
          records: [
            { attributes: { type: 'Lead' }, LastName: 'Mixed', Company: 'Co' },
            { attributes: { type: 'Account' } },
            { attributes: { type: 'Account' }, Name: 'Mixed Co' },
          ],
        },
      });
      expect(failed.status).toBe(200);
      const results = (await failed.json()) as {
        id?: string;
        success: boolean;
        errors: { statusCode: string }[];
      }[];
      expect(results.map((r) => [r.success, r.id, r.errors.map((e) => e.statusCode)])).toEqual([
        [false, undefined, ['ALL_OR_NONE_OPERATION_ROLLED_BACK']],
        [false, undefined, ['REQUIRED_FIELD_MISSING']],
        [false, undefined, ['ALL_OR_NONE_OPERATION_ROLLED_BACK']],
      ]);
      expect(counts()).toEqual(before);

      const ok = await api(sf, conn, '/composite/sobjects', {
        method: 'POST',
        body: {
          allOrNone: true,
          records: [
            { attributes: { type: 'Lead' }, LastName: 'Mixed', Company: 'Co' },
            { attributes: { type: 'Account' }, Name: 'Mixed Co' },
          ],
        },
      });
      expect(((await ok.json()) as { success: boolean }[]).map((r) => r.success)).toEqual([true, true]);
      expect(counts()).toEqual([(before[0] ?? 0) + 1, (before[1] ?? 0) + 1]);
    });

    it('serves Collections from API 42.0 and Collections upsert from 46.0 only: 404 NOT_FOUND below', async () => {
      const at = (version: string, method: string, path: string, body?: unknown): Promise<Response> =>
        fetch(`${sf.instanceUrl}/services/data/v${version}${path}`, {
          method,
          headers: { Authorization: `Bearer ${conn.accessToken ?? ''}`, 'Content-Type': 'application/json' },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
      const upsert = {
        allOrNone: false,
        records: [{ attributes: { type: 'Lead' }, External_Id__c: 'ext-2', Title: 'Versioned' }],
      };
      const old = await at('45.0', 'PATCH', '/composite/sobjects/Lead/External_Id__c', upsert);
      expect(old.status).toBe(404);
      expect(await old.json()).toEqual([
        { message: 'The requested resource does not exist', errorCode: 'NOT_FOUND' },
      ]);
      expect(sf.store.findByExternalId('Lead', 'External_Id__c', 'ext-2')[0]?.Title).not.toBe('Versioned');
      const ok = await at('46.0', 'PATCH', '/composite/sobjects/Lead/External_Id__c', upsert);
      expect(ok.status).toBe(200);
      expect(await ok.json()).toEqual([
        { id: expect.any(String), success: true, errors: [], created: false },
      ]);
      const create = await at('42.0', 'POST', '/composite/sobjects', {
        records: [{ attributes: { type: 'Lead' }, LastName: 'V42', Company: 'Co' }],
      });
      expect(create.status).toBe(200);

      const older = await startSalesforceEmulator({ apiVersions: ['41.0', '42.0'] });
      try {
        const session = await soapLogin(older);
        const res = await fetch(`${older.instanceUrl}/services/data/v41.0/composite/sobjects`, {
          method: 'POST',
          headers: {
            Authorization: `Bearer ${session.accessToken ?? ''}`,
            'Content-Type': 'application/json',
          },
          body: JSON.stringify({
            records: [{ attributes: { type: 'Lead' }, LastName: 'V41', Company: 'Co' }],
          }),
        });
        expect(res.status).toBe(404);
        expect(older.store.count('Lead')).toBe(0);
      } finally {
        await older.stop();
      }
    });

    it('retrieves many records by id with POST /composite/sobjects/{Object}', async () => {
      const res = await conn.sobject('Lead').retrieve([ng, '00Q5e0000000zzzEAA'], { fields: ['LastName'] });
      expect(res).toEqual([
        {
          attributes: { type: 'Lead', url: `/services/data/v${VERSION}/sobjects/Lead/${ng}` },
          LastName: 'Ng',
        },
        null,
      ]);
    });
  });

  describe('Composite', () => {
    it('runs subrequests with references in one API call', async () => {
      const used = sf.limits.used;
      const res = await conn.requestPost<{
        compositeResponse: { httpStatusCode: number; body: unknown; referenceId: string }[];
      }>(`/services/data/v${VERSION}/composite`, {
        compositeRequest: [
          {
            method: 'POST',
            url: `/services/data/v${VERSION}/sobjects/Account`,
            referenceId: 'acct',
            body: { Name: 'Composite Co' },
          },
          {
            method: 'GET',
            url: `/services/data/v${VERSION}/sobjects/Account/@{acct.id}`,
            referenceId: 'read',
          },
          {
            method: 'POST',
            url: `/services/data/v${VERSION}/composite/sobjects`,
            referenceId: 'leads',
            body: {
              allOrNone: false,
              records: [{ attributes: { type: 'Lead' }, LastName: 'Comp', Company: 'Co' }],
            },
          },
        ],
      });
      expect(res.compositeResponse.map((r) => [r.referenceId, r.httpStatusCode])).toEqual([
        ['acct', 201],
        ['read', 200],
        ['leads', 200],
      ]);
      expect(res.compositeResponse[1]?.body).toMatchObject({ Name: 'Composite Co' });
      expect(sf.limits.used).toBe(used + 1);
    });

    it('refuses more than 5 Collections subrequests', async () => {
      const sub = {
        method: 'POST',
        url: `/services/data/v${VERSION}/composite/sobjects`,
        body: { records: [] },
      };
      const res = await api(sf, conn, '/composite', {
        method: 'POST',
        body: { compositeRequest: Array.from({ length: 6 }, (_, i) => ({ ...sub, referenceId: `r${i}` })) },
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { errorCode: string }[])[0]?.errorCode).toBe('LIMIT_EXCEEDED');
    });
  });

  it('reports usage in /limits and the call log counts every API call but not the login', async () => {
    const limits = await conn.limits();
    expect(limits.DailyApiRequests).toEqual({ Max: 15_000, Remaining: 15_000 - sf.limits.used });
    expect(sf.calls.count({ operation: 'login', counted: false })).toBe(1);
    expect(sf.calls.count({ counted: true })).toBe(sf.limits.used);
    expect(sf.calls.writes().every((c) => c.write)).toBe(true);
  });
});
