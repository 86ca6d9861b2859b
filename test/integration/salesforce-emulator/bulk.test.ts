import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Connection } from 'jsforce';
import { startSalesforceEmulator, type SalesforceEmulator } from '../../../emulators/salesforce';
import { DEFAULT_DESCRIBES_DIR } from '../../../emulators/salesforce/describe';
import { DEFAULT_USER_ID } from '../../../emulators/salesforce/store';
import { api, caught, soapLogin } from './support';

type JobInfo = Record<string, unknown> & { id: string; state: string };

/** A body that arrives in pieces with `transfer-encoding: chunked` and no content length, as jsforce sends uploads. */
function chunked(pieces: string[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const piece of pieces) controller.enqueue(encoder.encode(piece));
      controller.close();
    },
  });
}

describe('Salesforce emulator Bulk API 2.0', () => {
  let sf: SalesforceEmulator;
  let conn: Connection;

  beforeAll(async () => {
    sf = await startSalesforceEmulator({
      seed: {
        Lead: Array.from({ length: 25 }, (_, i) => ({
          LastName: `Lead ${String(i).padStart(2, '0')}`,
          Company: i % 2 ? 'Odd "Co"' : 'Even, Inc',
          Phone: i === 0 ? '555-0100' : undefined,
          Title: i === 0 ? 'Boss' : undefined,
          External_Id__c: `key-${i}`,
        })),
      },
    });
    conn = await soapLogin(sf);
  });
  afterAll(() => sf.stop());
  afterEach(() => sf.faults.clear());

  async function json<T>(res: Response, status: number): Promise<T> {
    expect(res.status).toBe(status);
    return (await res.json()) as T;
  }

  async function waitFor(type: 'ingest' | 'query', id: string): Promise<JobInfo> {
    for (;;) {
      const info = await json<JobInfo>(await api(sf, conn, `/jobs/${type}/${id}`), 200);
      if (!['Open', 'UploadComplete', 'InProgress'].includes(info.state)) return info;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  describe('ingest', () => {
    it('runs an insert job through its states with a TAB / CRLF upload sent in chunks', async () => {
      const created = await json<JobInfo>(
        await api(sf, conn, '/jobs/ingest', {
          method: 'POST',
          body: {
            object: 'Lead',
            operation: 'insert',
            contentType: 'CSV',
            columnDelimiter: 'TAB',
            lineEnding: 'CRLF',
          },
        }),
        200,
      );
      expect(created).toMatchObject({
        object: 'Lead',
        operation: 'insert',
        state: 'Open',
        contentType: 'CSV',
        columnDelimiter: 'TAB',
        lineEnding: 'CRLF',
        apiVersion: 62,
        contentUrl: `services/data/v62.0/jobs/ingest/${created.id}/batches`,
        // The signed-in user created it.
        createdById: DEFAULT_USER_ID,
      });
      expect(created.id).toMatch(/^750\w{15}$/);
      const upload = await fetch(`${sf.instanceUrl}/services/data/v62.0/jobs/ingest/${created.id}/batches`, {
        method: 'PUT',
        headers: { Authorization: `Bearer ${conn.accessToken}`, 'Content-Type': 'text/csv' },
        body: chunked([
          'LastName\tCompany\tTitle\r\n',
          'Tab\t"Multi\r\nLine"\t"say ""hi"""\r\nNo',
          'Company\t\t\r\n',
        ]),
        duplex: 'half',
      } as RequestInit);
      expect(upload.status).toBe(201);
      expect(await upload.text()).toBe('');
      const again = await fetch(`${sf.instanceUrl}/services/data/v62.0/jobs/ingest/${created.id}/batches`, {
        method: 'PUT',
        headers: { Authorization: `Bearer ${conn.accessToken}`, 'Content-Type': 'text/csv' },
        body: 'LastName\r\nx\r\n',
      });
      expect(((await json<{ errorCode: string }[]>(again, 400))[0] as { errorCode: string }).errorCode).toBe(
        'INVALIDJOB',
      );
      const closed = await json<JobInfo>(
        await api(sf, conn, `/jobs/ingest/${created.id}`, {
          method: 'PATCH',
          body: { state: 'UploadComplete' },
        }),
        200,
      );
      expect(closed.state).toBe('UploadComplete');
      const done = await waitFor('ingest', created.id);
      expect(done).toMatchObject({
        state: 'JobComplete',
        jobType: 'V2Ingest',
        numberRecordsProcessed: 2,
        numberRecordsFailed: 1,
        retries: 0,
      });
      const ok = await api(sf, conn, `/jobs/ingest/${created.id}/successfulResults`);
      expect(ok.headers.get('content-type')).toBe('text/csv');
      const okText = await ok.text();
      const [okHeader, okRow] = okText.split('\r\n');
      expect(okHeader).toBe('"sf__Id"\t"sf__Created"\tLastName\tCompany\tTitle');
      expect(okRow).toMatch(/^"00Q\w{15}"\t"true"\t"Tab"\t"Multi$/);
      expect(okText).toContain('Line"\t"say ""hi"""\r\n');
      const newId = /^"(00Q\w{15})"/.exec(okRow as string)?.[1] as string;
      expect(sf.store.get(newId)).toMatchObject({ Company: 'Multi\r\nLine', Title: 'say "hi"' });
      const failed = await (await api(sf, conn, `/jobs/ingest/${created.id}/failedResults`)).text();
      expect(failed).toBe(
        '"sf__Id"\t"sf__Error"\tLastName\tCompany\tTitle\r\n' +
          '""\t"REQUIRED_FIELD_MISSING:Required fields are missing: [Company]:Company --"\t"NoCompany"\t""\t""\r\n',
      );
      // Before API 53.0, failedResults has no sf__Id column.
      const failed52 = await fetch(
        `${sf.instanceUrl}/services/data/v52.0/jobs/ingest/${created.id}/failedResults`,
        {
          headers: { Authorization: `Bearer ${conn.accessToken ?? ''}` },
        },
      );
      expect(await failed52.text()).toBe(
        '"sf__Error"\tLastName\tCompany\tTitle\r\n' +
          '"REQUIRED_FIELD_MISSING:Required fields are missing: [Company]:Company --"\t"NoCompany"\t""\t""\r\n',
      );
      const unprocessed = await (await api(sf, conn, `/jobs/ingest/${created.id}/unprocessedrecords`)).text();
      expect(unprocessed).toBe('LastName\tCompany\tTitle\r\n');
      expect(sf.calls.count({ operation: 'bulk.ingest.poll' })).toBeGreaterThan(0);
    });

    it('sets a field to null with #N/A and leaves it unchanged when the value is empty', async () => {
      const lead = [...sf.store.all('Lead')][0] as Record<string, unknown>;
      const res = await conn.bulk2.loadAndWaitForResults({
        object: 'Lead',
        operation: 'update',
        input: `Id,Title,Phone\n${lead.Id as string},#N/A,\n`,
        pollInterval: 20,
      });
      expect(res.successfulResults).toHaveLength(1);
      expect(res.successfulResults[0]).toMatchObject({ sf__Id: lead.Id, sf__Created: 'false' });
      expect(sf.store.get(lead.Id as string)).toMatchObject({ Title: null, Phone: '555-0100' });
    });

    it('reads an empty cell on insert, quoted or not, as no value: the field takes its default', async () => {
      // Every value quoted, as the push's COPY writes them (FORCE_QUOTE *): `""` is no value too.
      const res = await conn.bulk2.loadAndWaitForResults({
        object: 'Lead',
        operation: 'insert',
        input: '"LastName","Company","Status","Title"\n"Quoted","Co","",""\n"Bare","Co",,\n',
        pollInterval: 20,
      });
      expect(res.failedResults).toEqual([]);
      expect(res.successfulResults.map((r) => sf.store.get(r.sf__Id as string))).toMatchObject([
        { LastName: 'Quoted', Status: 'Open - Not Contacted', Title: null },
        { LastName: 'Bare', Status: 'Open - Not Contacted', Title: null },
      ]);
    });

    it('upserts by external id (sf__Created true/false) and deletes softly', async () => {
      const res = await conn.bulk2.loadAndWaitForResults({
        object: 'Lead',
        operation: 'upsert',
        externalIdFieldName: 'External_Id__c',
        input: 'External_Id__c,LastName,Company\nkey-1,Renamed,Co\nkey-new,Fresh,Co\n',
        pollInterval: 20,
      });
      expect(
        res.successfulResults.map((r) => [
          (r as unknown as Record<string, string>).External_Id__c,
          r.sf__Created,
        ]),
      ).toEqual([
        ['key-1', 'false'],
        ['key-new', 'true'],
      ]);
      const freshId = res.successfulResults[1]?.sf__Id as string;
      const del = await conn.bulk2.loadAndWaitForResults({
        object: 'Lead',
        operation: 'delete',
        input: `Id\n${freshId}\n`,
        pollInterval: 20,
      });
      expect(del.successfulResults).toHaveLength(1);
      expect(sf.store.get(freshId)?.IsDeleted).toBe(true);
    });

    it('lists aborted rows as unprocessed and refuses unknown jobs and objects', async () => {
      const job = conn.bulk2.createJob({ object: 'Lead', operation: 'insert' });
      await job.open();
      await job.uploadData('LastName,Company\nA,B\nC,D\n');
      await job.abort();
      const info = await job.check();
      expect(info.state).toBe('Aborted');
      expect(await job.getUnprocessedRecords()).toEqual([
        { LastName: 'A', Company: 'B' },
        { LastName: 'C', Company: 'D' },
      ]);
      const missing = await api(sf, conn, '/jobs/ingest/7505e000000zzzzAAA');
      expect(await json(missing, 404)).toEqual([
        { message: 'The requested resource does not exist', errorCode: 'NOT_FOUND' },
      ]);
      const err = await caught(conn.bulk2.createJob({ object: 'Nope__c', operation: 'insert' }).open());
      expect(err.name).toBe('INVALIDJOB');
    });

    it('fails a job whose upload is not valid CSV', async () => {
      const err = await caught(
        conn.bulk2.loadAndWaitForResults({
          object: 'Lead',
          operation: 'insert',
          input: 'LastName,Company\n"open,B\n',
          pollInterval: 20,
        }),
      );
      expect(err.message).toMatch(
        /^Ingest job failed to complete due to: InvalidBatch : Failed to parse CSV: line 2/,
      );
    });
  });

  describe('query', () => {
    async function createQuery(body: Record<string, unknown>): Promise<JobInfo> {
      const job = await json<JobInfo>(await api(sf, conn, '/jobs/query', { method: 'POST', body }), 200);
      return waitFor('query', job.id);
    }

    it('pages results with Sforce-Locator and maxRecords until the literal null', async () => {
      const job = await createQuery({
        operation: 'query',
        query:
          "SELECT Id, LastName, Company, Phone FROM Lead WHERE External_Id__c LIKE 'key-%' ORDER BY LastName",
      });
      expect(job).toMatchObject({
        state: 'JobComplete',
        jobType: 'V2Query',
        numberRecordsProcessed: 25,
        object: 'Lead',
      });
      const pages: { locator: string | null; count: string | null; body: string }[] = [];
      let locator: string | null = '';
      while (locator !== 'null') {
        const res: Response = await api(
          sf,
          conn,
          `/jobs/query/${job.id}/results?maxRecords=10${locator ? `&locator=${locator}` : ''}`,
          { headers: { Accept: 'text/csv' } },
        );
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toBe('text/csv');
        locator = res.headers.get('sforce-locator');
        pages.push({ locator, count: res.headers.get('sforce-numberofrecords'), body: await res.text() });
      }
      expect(pages.map((p) => [p.count, p.locator === 'null'])).toEqual([
        ['10', false],
        ['10', false],
        ['5', true],
      ]);
      const lines = pages.flatMap((p) =>
        p.body
          .split('\n')
          .filter((l) => l !== '')
          .slice(1),
      );
      expect(lines).toHaveLength(25);
      expect(pages[0]?.body.split('\n')[0]).toBe('"Id","LastName","Company","Phone"');
      expect(pages[0]?.body.split('\n')[1]).toMatch(/^"00Q\w{15}","Lead 00","Even, Inc","555-0100"$/);
      expect(lines.filter((l) => l.includes('"Lead 03"'))).toEqual([
        expect.stringMatching(/^"00Q\w{15}","Lead 03","Odd ""Co""",""$/),
      ]);
      expect(sf.calls.count({ operation: 'bulk.query.results' })).toBeGreaterThanOrEqual(3);
    });

    it('writes the job dialect and includes deleted rows for queryAll', async () => {
      const job = await createQuery({
        operation: 'queryAll',
        query: 'SELECT LastName, IsDeleted FROM Lead WHERE IsDeleted = true',
        columnDelimiter: 'PIPE',
        lineEnding: 'CRLF',
      });
      const text = await (await api(sf, conn, `/jobs/query/${job.id}/results`)).text();
      expect(text).toBe('"LastName"|"IsDeleted"\r\n"Fresh"|"true"\r\n');
    });

    it('rejects bad SOQL when the job is created and answers results of an unfinished job with 412', async () => {
      const bad = await api(sf, conn, '/jobs/query', {
        method: 'POST',
        body: { operation: 'query', query: 'SELECT Nope__c FROM Lead' },
      });
      expect(((await json<{ errorCode: string }[]>(bad, 400))[0] as { errorCode: string }).errorCode).toBe(
        'INVALID_FIELD',
      );
      // Keep the job InProgress so that its results are not ready yet.
      sf.faults.set({ bulkJobDelayMs: 60_000 });
      const created = await json<JobInfo>(
        await api(sf, conn, '/jobs/query', {
          method: 'POST',
          body: { operation: 'query', query: 'SELECT Id FROM Lead' },
        }),
        200,
      );
      expect(created.state).toBe('UploadComplete');
      const early = await api(sf, conn, `/jobs/query/${created.id}/results`);
      expect(await json(early, 412)).toEqual([
        {
          message: `Job ${created.id} is InProgress: results are available once it is JobComplete`,
          errorCode: 'JOB_NOT_COMPLETE',
        },
      ]);
      const aborted = await api(sf, conn, `/jobs/query/${created.id}`, {
        method: 'PATCH',
        body: { state: 'Aborted' },
      });
      expect((await json<JobInfo>(aborted, 200)).state).toBe('Aborted');
    });

    it('serves a one-page query to jsforce bulk2.query', async () => {
      const records = [];
      for await (const r of await conn.bulk2.query(
        "SELECT Id, LastName FROM Lead WHERE LastName = 'Renamed'",
        { pollInterval: 20 },
      )) {
        records.push(r);
      }
      expect(records).toEqual([{ Id: expect.stringMatching(/^00Q/), LastName: 'Renamed' }]);
      const limits = await conn.limits();
      expect(limits.DailyBulkV2QueryJobs?.Remaining).toBe(
        10_000 - sf.calls.count({ operation: 'bulk.query.create', status: 200 }),
      );
    });
  });
});

describe('Salesforce emulator Bulk API 2.0 and compound fields', () => {
  let sf: SalesforceEmulator;
  let conn: Connection;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'emulator-describes-'));
    await writeFile(
      path.join(dir, 'Lead.json'),
      JSON.stringify({
        name: 'Lead',
        fields: [
          { name: 'Address', type: 'address', createable: false, updateable: false },
          { name: 'Geo__c', type: 'location', createable: false, updateable: false },
        ],
      }),
    );
    sf = await startSalesforceEmulator({
      describesDir: [DEFAULT_DESCRIBES_DIR, dir],
      seed: { Lead: [{ LastName: 'Ng', Company: 'Acme' }] },
    });
    conn = await soapLogin(sf);
  });
  afterAll(async () => {
    await sf.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it.each(['Address', 'Geo__c'])(
    'refuses a query job selecting the compound field %s at its create, as Salesforce does',
    async (field) => {
      const res = await api(sf, conn, '/jobs/query', {
        method: 'POST',
        body: { operation: 'query', query: `SELECT Id, ${field} FROM Lead` },
      });
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual([
        { errorCode: 'API_ERROR', message: 'Selecting compound data not supported in Bulk Query' },
      ]);
      const err = await caught(conn.bulk2.query(`SELECT ${field} FROM Lead`, { pollInterval: 20 }));
      expect(err.message).toContain('Selecting compound data not supported in Bulk Query');
      expect(sf.calls.count({ operation: 'bulk.query.create', status: 200 })).toBe(0);
      // REST reads it.
      const rest = await conn.query(`SELECT Id, ${field} FROM Lead`);
      expect(rest.records).toEqual([expect.objectContaining({ [field]: null })]);
    },
  );
});
