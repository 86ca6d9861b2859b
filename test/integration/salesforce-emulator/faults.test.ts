import type { Connection } from 'jsforce';
import {
  CALLS_PATH,
  DEFAULT_FAILED_JOB_MESSAGE,
  FAULTS_CONTROL_PATH,
  InvalidFaultError,
  PROXY_BAD_REQUEST_PAGE,
  startSalesforceEmulator,
  UNABLE_TO_LOCK_ROW_MESSAGE,
  type SalesforceEmulator,
  type SalesforceFaults,
} from '../../../emulators/salesforce';
import { api, caught, firstStatusCode, soapLogin } from './support';

const LEADS = Array.from({ length: 20 }, (_, i) => ({
  LastName: `F${i}`,
  Company: 'Faults',
  External_Id__c: `f-${i}`,
}));

describe('Salesforce emulator faults', () => {
  let sf: SalesforceEmulator;
  let conn: Connection;
  let ids: string[];

  beforeAll(async () => {
    sf = await startSalesforceEmulator({ seed: { Lead: LEADS }, randomSeed: 42 });
    conn = await soapLogin(sf);
    ids = [...sf.store.all('Lead')].map((r) => r.Id as string);
  });
  afterAll(() => sf.stop());
  afterEach(() => sf.faults.clear());

  it('validates fault settings and reports the active ones', () => {
    expect(() => sf.faults.set({ lockRowFraction: 2 })).toThrow(InvalidFaultError);
    expect(() => sf.faults.set({ http503Burst: -1 })).toThrow(
      'http503Burst must be a non-negative integer, got -1',
    );
    sf.faults.set({ latencyMs: 5, lockRowKeys: ['x'] });
    expect(sf.faults.get()).toEqual({ latencyMs: 5, lockRowKeys: ['x'] });
  });

  it('delays calls by latencyMs and still answers them', async () => {
    sf.faults.set({ latencyMs: 30 });
    expect((await conn.query('SELECT COUNT() FROM Lead')).totalSize).toBe(20);
  });

  it('holds the calls that write by writeLatencyMs, not reads, and drops a write whose client gave up', async () => {
    sf.faults.set({ writeLatencyMs: 600_000 });
    // A read answers at once (held ten minutes, it would outlast the test's time limit).
    expect((await conn.query('SELECT COUNT() FROM Lead')).totalSize).toBe(20);
    const before = sf.store.count('Lead');
    const gaveUp = await caught(
      fetch(`${sf.instanceUrl}/services/data/v${sf.apiVersion}/sobjects/Lead`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${conn.accessToken ?? ''}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ LastName: 'Held', Company: 'Back' }),
        signal: AbortSignal.timeout(300),
      }),
    );
    expect(gaveUp.name).toBe('TimeoutError');
    expect(sf.store.count('Lead')).toBe(before);
    expect(sf.faults.get()).toEqual({ writeLatencyMs: 600_000 });
  });

  it('answers a burst of 503s: jsforce retries a GET, a POST fails with SERVER_UNAVAILABLE', async () => {
    sf.calls.clear();
    sf.faults.set({ http503Burst: 2 });
    expect((await conn.query('SELECT COUNT() FROM Lead')).totalSize).toBe(20);
    expect(sf.calls.all().map((c) => c.status)).toEqual([503, 503, 200]);
    sf.faults.set({ http503Burst: 1 });
    const err = await caught(conn.sobject('Lead').create([{ LastName: 'No', Company: 'Way' }]));
    expect(err.name).toBe('SERVER_UNAVAILABLE');
    expect(sf.store.count('Lead')).toBe(20);
    expect(sf.calls.count({ status: 503, counted: true })).toBe(0);
  });

  it('answers a burst of 401s that do not say INVALID_SESSION_ID: jsforce signs in again and sends a REST call again', async () => {
    sf.calls.clear();
    sf.faults.set({ http401Burst: 1 });
    expect((await conn.query('SELECT COUNT() FROM Lead')).totalSize).toBe(20);
    expect(sf.calls.all().map((c) => [c.operation, c.status])).toEqual([
      ['query', 401],
      ['login', 200],
      ['query', 200],
    ]);
    // Plain text, not Salesforce's JSON error; not counted against the allowance.
    sf.faults.set({ http401Burst: 1 });
    const res = await fetch(`${sf.instanceUrl}/services/data/v${sf.apiVersion}/limits`, {
      headers: { Authorization: `Bearer ${conn.accessToken ?? ''}` },
    });
    expect(res.status).toBe(401);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await res.text()).toBe('Unauthorized');
    expect(sf.calls.count({ status: 401, counted: true })).toBe(0);
    expect(sf.faults.get()).toEqual({});
  });

  it("answers a burst of 400s as a proxy does: an HTML page, not Salesforce's JSON error, the call not processed nor counted", async () => {
    sf.calls.clear();
    sf.faults.set({ http400Burst: 1 });
    const res = await fetch(`${sf.instanceUrl}/services/data/v${sf.apiVersion}/composite/sobjects`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${conn.accessToken ?? ''}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({
        allOrNone: false,
        records: [{ attributes: { type: 'Lead' }, LastName: 'No', Company: 'Way' }],
      }),
    });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await res.text()).toBe(PROXY_BAD_REQUEST_PAGE);
    expect(sf.store.count('Lead')).toBe(20);
    expect(sf.calls.count({ status: 400, counted: true })).toBe(0);
    expect(sf.faults.get()).toEqual({});
    // One-shot per call of the burst: the next call reaches the org.
    expect((await conn.query('SELECT COUNT() FROM Lead')).totalSize).toBe(20);
  });

  it('locks a reproducible fraction of records (seeded RNG)', async () => {
    const lockedIndexes = async (emulator: SalesforceEmulator, c: Connection): Promise<number[]> => {
      emulator.faults.set({ lockRowFraction: 0.3 });
      const leadIds = [...emulator.store.all('Lead')].map((r) => r.Id as string);
      const results = await c.sobject('Lead').update(leadIds.map((Id) => ({ Id, Title: 'Locked?' })));
      emulator.faults.clear();
      results
        .filter((r) => !r.success)
        .forEach((r) =>
          expect(r.errors).toEqual([
            { statusCode: 'UNABLE_TO_LOCK_ROW', message: UNABLE_TO_LOCK_ROW_MESSAGE, fields: [] },
          ]),
        );
      return results.flatMap((r, i) => (r.success ? [] : [i]));
    };
    const first = await lockedIndexes(sf, conn);
    expect(first.length).toBeGreaterThan(0);
    expect(first.length).toBeLessThan(20);
    const twin = await startSalesforceEmulator({ seed: { Lead: LEADS }, randomSeed: 42 });
    try {
      expect(await lockedIndexes(twin, await soapLogin(twin))).toEqual(first);
    } finally {
      await twin.stop();
    }
  });

  it('locks given keys (Id or external id) in Collections and in Bulk ingest', async () => {
    sf.faults.set({ lockRowKeys: [(ids[3] as string).slice(0, 15), 'f-5'] });
    const results = await conn.sobject('Lead').update(ids.slice(0, 6).map((Id) => ({ Id, Title: 'k' })));
    expect(results.map(firstStatusCode)).toEqual([
      undefined,
      undefined,
      undefined,
      'UNABLE_TO_LOCK_ROW',
      undefined,
      undefined,
    ]);
    const bulk = await conn.bulk2.loadAndWaitForResults({
      object: 'Lead',
      operation: 'upsert',
      externalIdFieldName: 'External_Id__c',
      input: 'External_Id__c,Title\nf-4,ok\nf-5,locked\n',
      pollInterval: 20,
    });
    expect(bulk.successfulResults.map((r) => r.sf__Id)).toEqual([ids[4]]);
    expect(bulk.failedResults[0]?.sf__Error).toBe(`UNABLE_TO_LOCK_ROW:${UNABLE_TO_LOCK_ROW_MESSAGE}: --`);
  });

  it('compares external-ID values exactly, never by the 15-character prefix of an Id', async () => {
    // An emulator of its own: the records written here would change the counts the others read.
    const own = await startSalesforceEmulator();
    try {
      const c = await soapLogin(own);
      // 18 letters and digits each, the first 15 alike: shaped like Ids, two records all the same.
      const keys = ['CUSTOMER0000000001', 'CUSTOMER0000000002', 'CUSTOMER000000000'];
      own.faults.set({ lockRowKeys: [keys[0] as string] });
      const upserted = await c.sobject('Lead').upsert(
        keys.map((k) => ({ External_Id__c: k, LastName: 'Near', Company: 'Twins' })),
        'External_Id__c',
      );
      expect(upserted.map(firstStatusCode)).toEqual(['UNABLE_TO_LOCK_ROW', undefined, undefined]);
      // An Id still names its record in either form.
      const twin = upserted[1] as { id: string };
      own.faults.set({ lockRowKeys: [twin.id.slice(0, 15)] });
      const updated = await c.sobject('Lead').update([{ Id: twin.id, Title: 'locked' }]);
      expect(updated.map(firstStatusCode)).toEqual(['UNABLE_TO_LOCK_ROW']);
    } finally {
      await own.stop();
    }
  });

  it('fails the next Bulk job (ingest and query) and only that one', async () => {
    sf.faults.set({ failNextBulkJob: true });
    const job = conn.bulk2.createJob({ object: 'Lead', operation: 'update' });
    await job.open();
    await job.uploadData(`Id,Title\n${ids[0] as string},x\n`);
    await job.close();
    const err = await caught(job.poll(20, 10_000));
    expect(err.message).toBe(`Ingest job failed to complete due to: ${DEFAULT_FAILED_JOB_MESSAGE}`);
    expect(await job.getUnprocessedRecords()).toEqual([{ Id: ids[0], Title: 'x' }]);
    sf.faults.set({ failNextBulkJob: 'InvalidBatch : custom reason' });
    const queryErr = await caught(conn.bulk2.query('SELECT Id FROM Lead', { pollInterval: 20 }));
    expect(queryErr.message).toBe('Query job failed to complete');
    expect(sf.faults.get().failNextBulkJob).toBeUndefined();
    const ok = await conn.bulk2.loadAndWaitForResults({
      object: 'Lead',
      operation: 'update',
      input: `Id,Title\n${ids[0] as string},y\n`,
      pollInterval: 20,
    });
    expect(ok.successfulResults).toHaveLength(1);
  });

  it('resets the connection in the middle of a Bulk query results page, once', async () => {
    const created = (await (
      await api(sf, conn, '/jobs/query', {
        method: 'POST',
        body: { operation: 'query', query: 'SELECT Id, LastName FROM Lead' },
      })
    ).json()) as { id: string };
    for (;;) {
      const info = (await (await api(sf, conn, `/jobs/query/${created.id}`)).json()) as { state: string };
      if (info.state === 'JobComplete') break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    sf.faults.set({ resetStreamAfterBytes: 100 });
    const broken = await api(sf, conn, `/jobs/query/${created.id}/results`);
    expect(broken.status).toBe(200);
    await expect(broken.text()).rejects.toThrow();
    const whole = await (await api(sf, conn, `/jobs/query/${created.id}/results`)).text();
    expect(whole.split('\n').filter((l) => l !== '')).toHaveLength(21);
  });

  it('resets the connection in the middle of a REST query page, once', async () => {
    // Read with fetch: jsforce 3.10.16 never settles a request whose response body is cut
    // (its transport does not propagate the 'aborted' error), so a test through it would hang.
    sf.faults.set({ resetStreamAfterBytes: 200 });
    const q = `/query?q=${encodeURIComponent('SELECT Id, LastName FROM Lead')}`;
    const broken = await api(sf, conn, q);
    expect(broken.status).toBe(200);
    expect(Number(broken.headers.get('content-length'))).toBeGreaterThan(200);
    await expect(broken.text()).rejects.toThrow();
    expect((await conn.query('SELECT Id, LastName FROM Lead')).records).toHaveLength(20);
  });

  it('applies a write whose answer it then cuts, once', async () => {
    sf.faults.set({ resetWriteAnswerAfterBytes: 20 });
    const path = '/composite/sobjects';
    const body = { allOrNone: false, records: [{ attributes: { type: 'Account' }, Name: 'Cut Ltd' }] };
    const before = sf.store.count('Account');
    const broken = await api(sf, conn, path, { method: 'POST', body });
    expect(broken.status).toBe(200);
    await expect(broken.text()).rejects.toThrow();
    // The write happened: only its answer was lost.
    expect(sf.store.count('Account')).toBe(before + 1);
    const whole = (await (await api(sf, conn, path, { method: 'POST', body })).json()) as {
      success: boolean;
    }[];
    expect(whole).toEqual([expect.objectContaining({ success: true })]);
    expect(sf.store.count('Account')).toBe(before + 2);
  });

  /** Reads a body until it ends, or until `quietMs` pass without a byte (then cancels it). */
  async function readUntilQuiet(res: Response, quietMs: number): Promise<{ bytes: number; ended: boolean }> {
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let bytes = 0;
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      const quiet = new Promise<'quiet'>((resolve) => (timer = setTimeout(() => resolve('quiet'), quietMs)));
      const read = reader.read();
      read.catch(() => undefined);
      const r = await Promise.race([read, quiet]);
      clearTimeout(timer);
      if (r === 'quiet') {
        await reader.cancel().catch(() => undefined);
        return { bytes, ended: false };
      }
      if (r.done) return { bytes, ended: true };
      bytes += r.value.length;
    }
  }

  it('stalls a REST query page after n bytes with the socket open, once', async () => {
    sf.faults.set({ stallStreamAfterBytes: 150 });
    const q = `/query?q=${encodeURIComponent('SELECT Id, LastName FROM Lead')}`;
    const stalled = await api(sf, conn, q);
    expect(stalled.status).toBe(200);
    expect(Number(stalled.headers.get('content-length'))).toBeGreaterThan(150);
    expect(await readUntilQuiet(stalled, 500)).toEqual({ bytes: 150, ended: false });
    expect(sf.faults.get()).toEqual({});
    const whole = (await (await api(sf, conn, q)).json()) as { records: unknown[] };
    expect(whole.records).toHaveLength(20);
  });

  it('applies a write whose answer it then stalls, once', async () => {
    sf.faults.set({ stallWriteAnswerAfterBytes: 10 });
    const before = sf.store.count('Account');
    const stalled = await api(sf, conn, '/composite/sobjects', {
      method: 'POST',
      body: { allOrNone: false, records: [{ attributes: { type: 'Account' }, Name: 'Stalled Ltd' }] },
    });
    expect(stalled.status).toBe(200);
    expect(await readUntilQuiet(stalled, 500)).toEqual({ bytes: 10, ended: false });
    expect(sf.store.count('Account')).toBe(before + 1);
    expect(sf.faults.get()).toEqual({});
  });

  it('sends streamed bodies slowly but whole with slowStream, until cleared', async () => {
    expect(() => sf.faults.set({ slowStream: { chunkBytes: 0, pauseMs: 5 } })).toThrow(
      'slowStream must be { chunkBytes: a positive integer, pauseMs: a non-negative integer }',
    );
    sf.faults.set({ slowStream: { chunkBytes: 100, pauseMs: 20 } });
    const q = `/query?q=${encodeURIComponent('SELECT Id, LastName FROM Lead')}`;
    for (let i = 0; i < 2; i++) {
      // What reaches the client in one read depends on load (TCP may join two pieces), so the
      // pacing is checked by time, which load can only lengthen: a body of n bytes sent 100 at a
      // time with 20 ms between pieces takes at least (ceil(n / 100) - 1) * 20 ms.
      const started = performance.now();
      const res = await api(sf, conn, q);
      const body = Buffer.from(await res.arrayBuffer());
      const elapsed = performance.now() - started;
      const pieces = Math.ceil(body.length / 100);
      expect(pieces).toBeGreaterThan(5);
      expect(elapsed).toBeGreaterThanOrEqual((pieces - 1) * 20 - pieces);
      expect((JSON.parse(body.toString('utf8')) as { records: unknown[] }).records.length).toBeGreaterThan(0);
    }
    expect(sf.faults.get()).toEqual({ slowStream: { chunkBytes: 100, pauseMs: 20 } });
  });

  it('answers 403 REQUEST_LIMIT_EXCEEDED once the daily allowance is spent', async () => {
    sf.faults.set({ dailyApiLimit: sf.limits.used + 2 });
    await conn.query('SELECT COUNT() FROM Lead');
    const limits = await conn.limits();
    expect(limits.DailyApiRequests).toEqual({ Max: sf.limits.max, Remaining: 0 });
    const err = await caught(conn.query('SELECT COUNT() FROM Lead'));
    expect([err.name, err.message]).toEqual(['REQUEST_LIMIT_EXCEEDED', 'TotalRequests Limit exceeded.']);
    const raw = await api(sf, conn, '/limits');
    expect(raw.status).toBe(403);
    expect(raw.headers.get('sforce-limit-info')).toBe(`api-usage=${sf.limits.max}/${sf.limits.max}`);
    sf.resetApiUsage();
    sf.faults.set({ dailyApiLimit: 15_000 });
    expect((await conn.query('SELECT COUNT() FROM Lead')).totalSize).toBe(20);
  });

  it('gives back the allowance it started with when dailyApiLimit is switched off, alone or with every fault', async () => {
    const limited = await startSalesforceEmulator({ dailyApiLimit: 500 });
    try {
      limited.faults.set({ dailyApiLimit: 3 });
      expect(limited.limits.max).toBe(3);
      limited.faults.set({ dailyApiLimit: null } as unknown as SalesforceFaults);
      expect([limited.limits.max, limited.faults.get()]).toEqual([500, {}]);
      limited.faults.set({ dailyApiLimit: 3, latencyMs: 1 });
      limited.faults.clear();
      expect([limited.limits.max, limited.faults.get()]).toEqual([500, {}]);
      // Over HTTP, as a user of `roundtrip emulate salesforce` clears them.
      const control = `${limited.url}${FAULTS_CONTROL_PATH}`;
      await fetch(control, { method: 'PUT', body: JSON.stringify({ dailyApiLimit: 1 }) });
      expect(limited.limits.max).toBe(1);
      await fetch(control, { method: 'DELETE' });
      expect(limited.limits.max).toBe(500);
      const c = await soapLogin(limited);
      expect((await c.query('SELECT COUNT() FROM Lead')).totalSize).toBe(0);
    } finally {
      await limited.stop();
    }
  });

  it('answers its call log over HTTP (CALLS_PATH): the calls after a seq, their sums, and forgets them on DELETE', async () => {
    const calls = `${sf.url}${CALLS_PATH}`;
    expect((await fetch(calls, { method: 'DELETE' })).status).toBe(200);
    await conn.query('SELECT COUNT() FROM Lead');
    const first = sf.calls.all()[0]?.seq ?? NaN;
    await conn.sobject('Lead').update([{ Id: ids[0] as string, Title: 'Logged' }]);
    const body = (await (await fetch(calls)).json()) as {
      total: number;
      counted: number;
      writes: number;
      byOperation: Record<string, number>;
      apiUsage: { used: number; max: number };
      calls: { seq: number; operation: string; write: boolean; status: number }[];
    };
    expect(body).toMatchObject({
      total: 2,
      counted: 2,
      writes: 1,
      byOperation: { query: 1, 'collections.update': 1 },
      apiUsage: { used: sf.limits.used, max: sf.limits.max },
    });
    expect(body.calls.map((c) => [c.operation, c.write, c.status])).toEqual([
      ['query', false, 200],
      ['collections.update', true, 200],
    ]);
    const since = (await (await fetch(`${calls}?since=${first}`)).json()) as typeof body;
    expect(since.calls.map((c) => c.operation)).toEqual(['collections.update']);
    // Neither the log nor the fault control is logged.
    expect(sf.calls.count()).toBe(2);
    const bad = await fetch(`${calls}?since=last`);
    expect([bad.status, ((await bad.json()) as { error: string }).error]).toEqual([
      400,
      'since must be a call\'s seq (a whole number, 0 or more), not "last"',
    ]);
    expect((await fetch(calls, { method: 'POST' })).status).toBe(405);
    await fetch(calls, { method: 'DELETE' });
    expect(((await (await fetch(calls)).json()) as typeof body).total).toBe(0);
  });

  it('takes faults at start', async () => {
    const limited = await startSalesforceEmulator({ faults: { dailyApiLimit: 1, http503Burst: 1 } });
    try {
      const c = await soapLogin(limited);
      expect(limited.limits.max).toBe(1);
      await c.query('SELECT COUNT() FROM Lead'); // 503, retried, then counted
      expect((await caught(c.query('SELECT COUNT() FROM Lead'))).name).toBe('REQUEST_LIMIT_EXCEEDED');
    } finally {
      await limited.stop();
    }
  });

  it('refuses a fault it does not know, naming the closest one', () => {
    expect(() => sf.faults.set({ lockRowKey: ['x'] } as never)).toThrow(
      'no fault named "lockRowKey" (did you mean "lockRowKeys"?): the faults are latencyMs,',
    );
    expect(() => sf.faults.set([] as never)).toThrow('expected an object of faults');
    expect(sf.faults.get()).toEqual({});
  });

  it('is controlled over HTTP: GET shows, PUT merges, null or DELETE switches off, without a log entry', async () => {
    const control = `${sf.url}${FAULTS_CONTROL_PATH}`;
    sf.calls.clear();
    const put = async (body: string): Promise<{ status: number; body: unknown }> => {
      const res = await fetch(control, {
        method: 'PUT',
        body,
        headers: { 'Content-Type': 'application/json' },
      });
      return { status: res.status, body: await res.json() };
    };
    expect(await put(JSON.stringify({ lockRowKeys: [ids[3]], latencyMs: 20_000 }))).toEqual({
      status: 200,
      body: { faults: { lockRowKeys: [ids[3]], latencyMs: 20_000 } },
    });
    // The control answers without the latency it set: delayed by it, this PUT would take 20 s (the
    // bound below is that, with room for a busy machine, not a measure of speed).
    const started = Date.now();
    expect(await put(JSON.stringify({ latencyMs: null }))).toEqual({
      status: 200,
      body: { faults: { lockRowKeys: [ids[3]] } },
    });
    expect(Date.now() - started).toBeLessThan(15_000);
    const results = await conn.sobject('Lead').update([
      { Id: ids[2] as string, Title: 'Free' },
      { Id: ids[3] as string, Title: 'Locked' },
    ]);
    expect(
      results.map((r) =>
        r.success ? 'ok' : (r.errors[0] as { statusCode?: string } | undefined)?.statusCode,
      ),
    ).toEqual(['ok', 'UNABLE_TO_LOCK_ROW']);
    expect(await put('{"lockRowFraction": 3}')).toEqual({
      status: 400,
      body: {
        error: 'invalid Salesforce emulator faults: lockRowFraction must be a number between 0 and 1, got 3',
      },
    });
    expect((await put('not json')).status).toBe(400);
    expect(await (await fetch(control)).json()).toEqual({ faults: { lockRowKeys: [ids[3]] } });
    expect(await (await fetch(control, { method: 'DELETE' })).json()).toEqual({ faults: {} });
    expect(sf.faults.get()).toEqual({});
    // Only the update was a Salesforce call.
    expect(sf.calls.all().map((c) => c.path)).toEqual([expect.stringContaining('/composite/sobjects')]);
  });
});
