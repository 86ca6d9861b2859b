/**
 * The Salesforce connector's time limits against the emulator over real HTTP: an answer that does
 * not begin, and a body that stops mid-stream, end the call with a TransientError naming it (a
 * write's saying that its outcome is unknown); a slow download that keeps flowing is not cut.
 * Limits of a few hundred milliseconds; no assertion on how long anything took (shared machine).
 */
import { Readable } from 'node:stream';
import { startSalesforceEmulator, type SalesforceEmulator } from '../../../emulators/salesforce';
import {
  connectSalesforce,
  type SalesforceConnector,
  type SalesforceTimeouts,
} from '../../../lambdas/connectors/salesforce';
import { REST_QUERY_URL_MAX_CHARS } from '../../../lambdas/connectors/salesforce/constants';
import { TransientError } from '../../../lambdas/shared/errors';
import { createMemoryLogger } from '../../../lambdas/shared/logging';
import { caught } from '../../support/caught';

const LEADS = Array.from({ length: 400 }, (_, i) => ({
  FirstName: `First ${i}`,
  LastName: `Timeouts ${i}`,
  Company: `Company ${i % 7}`,
  Email: `t${i}@example.test`,
}));
const FIELDS = ['Id', 'FirstName', 'LastName', 'Company', 'Email'];

/** Small limits, so that a hung call ends in well under a second. */
const SMALL: SalesforceTimeouts = { getAnswerMs: 300, writeAnswerMs: 400, idleMs: 300, signInMs: 300 };

/** Latency far above the limits: the emulator answers, but only long after the client gave up. */
const HUNG_MS = 3_000;

async function readAll(stream: Readable): Promise<string> {
  let text = '';
  for await (const chunk of stream) text += Buffer.isBuffer(chunk) ? chunk.toString('utf8') : String(chunk);
  return text;
}

describe('Salesforce connector time limits', () => {
  let sf: SalesforceEmulator;
  let sfc: SalesforceConnector;
  let jobId: string;

  const secret = () => ({
    loginUrl: sf.loginUrl,
    username: sf.credentials.username,
    password: sf.credentials.password,
  });
  const connect = (timeouts: Partial<SalesforceTimeouts> = SMALL) =>
    connectSalesforce({
      secret: secret(),
      logger: createMemoryLogger(),
      apiVersion: sf.apiVersion,
      timeouts,
    });

  beforeAll(async () => {
    sf = await startSalesforceEmulator({ seed: { Lead: LEADS } });
    sfc = await connect();
    jobId = await sfc.startBulkQuery(`SELECT ${FIELDS.join(', ')} FROM Lead`);
    await sfc.waitForBulkQuery(jobId, { delaySeconds: () => 0.01 });
  });
  afterAll(() => sf?.stop());
  afterEach(() => sf.faults.clear());

  it('ends a GET whose answer does not begin in a TransientError naming it, after its sends', async () => {
    sf.faults.set({ latencyMs: HUNG_MS });
    const before = sfc.apiCalls;
    const err = await caught(sfc.describe('Account'));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.name).toBe('TransientError');
    expect(err.message).toBe(
      "Salesforce describe Account failed: no answer within 0.3 s (the connector's time limit for a GET)",
    );
    // A GET is sent again (3 sends in all) before the failure is the step's.
    expect(sfc.apiCalls - before).toBe(3);
  });

  it('gives a query too long for a URL, sent as a Composite POST, the time limit and the sends of a GET, not a write’s', async () => {
    const names = Array.from({ length: 800 }, (_, i) => `'Not a lead ${String(i).padStart(4, '0')}'`);
    const soql = `SELECT ${FIELDS.join(', ')} FROM Lead WHERE LastName NOT IN (${names.join(', ')})`;
    expect(soql.length).toBeGreaterThan(REST_QUERY_URL_MAX_CHARS);
    // Answered in time, it reads as the GET would.
    expect((await readAll(sfc.queryRestCsv(soql, FIELDS))).trim().split('\n')).toHaveLength(LEADS.length + 1);
    sf.faults.set({ latencyMs: HUNG_MS });
    const before = sfc.apiCalls;
    const err = await caught(readAll(sfc.queryRestCsv(soql, FIELDS)));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toBe(
      "Salesforce query failed: no answer within 0.3 s (the connector's time limit for a GET)",
    );
    expect(sfc.apiCalls - before).toBe(3);
  });

  it('ends a write whose answer does not begin in a TransientError saying its outcome is unknown, sent once', async () => {
    sf.faults.set({ latencyMs: HUNG_MS });
    const before = sfc.apiCalls;
    const accounts = sf.store.count('Account');
    const err = await caught(
      sfc.request('Collections insert of 1 Account', 'POST', '/composite/sobjects', {
        allOrNone: false,
        records: [{ attributes: { type: 'Account' }, Name: 'Hung Ltd' }],
      }),
    );
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toBe(
      "Salesforce Collections insert of 1 Account failed: no answer within 0.4 s (the connector's time limit for a write); whether Salesforce applied the call is unknown",
    );
    expect(sfc.apiCalls - before).toBe(1);
    // The emulator drops a call whose client gave up while it was held (Salesforce might have run
    // it: the write-back resolves either).
    expect(sf.store.count('Account')).toBe(accounts);
  });

  it('ends a Bulk results page that stops mid-stream in a TransientError naming the call', async () => {
    sf.faults.set({ stallStreamAfterBytes: 500 });
    const err = await caught(readAll(sfc.streamBulkQueryResults(jobId, FIELDS, { pageAttempts: 1 })));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toBe(
      `Salesforce Bulk query results of job ${jobId} failed: the answer stopped: no byte for 0.3 s (the connector's time limit for a GET)`,
    );
  });

  it('fetches a Bulk results page that stopped mid-stream again, and reads every row', async () => {
    sf.faults.set({ stallStreamAfterBytes: 500 });
    const csv = await readAll(sfc.streamBulkQueryResults(jobId, FIELDS));
    expect(csv.trimEnd().split('\n')).toHaveLength(LEADS.length + 1);
    expect(sf.faults.get()).toEqual({});
  });

  it('ends a REST query page that stops mid-stream in a TransientError naming the call', async () => {
    sf.faults.set({ stallStreamAfterBytes: 300 });
    const err = await caught(
      readAll(sfc.queryRestCsv('SELECT Id, LastName FROM Lead', ['Id', 'LastName'], { pageAttempts: 1 })),
    );
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toBe(
      "Salesforce query failed: the answer stopped: no byte for 0.3 s (the connector's time limit for a GET)",
    );
  });

  it('ends a write whose answer stops mid-stream in a TransientError saying its outcome is unknown', async () => {
    sf.faults.set({ stallWriteAnswerAfterBytes: 5 });
    const before = sf.store.count('Account');
    const err = await caught(
      sfc.request('Collections insert of 1 Account', 'POST', '/composite/sobjects', {
        allOrNone: false,
        records: [{ attributes: { type: 'Account' }, Name: 'Stalled Ltd' }],
      }),
    );
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toBe(
      "Salesforce Collections insert of 1 Account failed: the answer stopped: no byte for 0.3 s (the connector's time limit for a write); whether Salesforce applied the call is unknown",
    );
    // It was: only its answer was lost.
    expect(sf.store.count('Account')).toBe(before + 1);
  });

  it('ends a Bulk upload whose answer does not begin in a TransientError saying its outcome is unknown', async () => {
    const job = await sfc.request<{ id: string }>('Bulk ingest job create', 'POST', '/jobs/ingest', {
      object: 'Account',
      operation: 'insert',
      contentType: 'CSV',
      lineEnding: 'LF',
    });
    sf.faults.set({ latencyMs: HUNG_MS });
    const err = await caught(
      sfc.putStream(
        `Bulk ingest upload of job ${job.id}`,
        `/jobs/ingest/${job.id}/batches`,
        Readable.from(['Name\nUp Ltd\n']),
        {
          'Content-Type': 'text/csv',
        },
      ),
    );
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toBe(
      `Salesforce Bulk ingest upload of job ${job.id} failed: no answer within 0.4 s of the upload (the connector's time limit for a write); whether Salesforce applied the call is unknown`,
    );
  });

  it('does not cut a slow download that keeps flowing, Bulk or REST, however long it takes in all', async () => {
    // 100 ms between pieces of 4,000 bytes: each piece well within an 800 ms idle limit, the whole
    // page (seconds) several times longer than it. (A 300 ms limit, as the other tests', was cut on
    // a loaded machine: a pause of the event loop past it runs the idle timer before the socket
    // is read, whatever the emulator sent.)
    const patient = await connect({ ...SMALL, idleMs: 800 });
    sf.faults.set({ slowStream: { chunkBytes: 4_000, pauseMs: 100 } });
    const bulk = await readAll(patient.streamBulkQueryResults(jobId, FIELDS, { pageAttempts: 1 }));
    expect(bulk.trimEnd().split('\n')).toHaveLength(LEADS.length + 1);
    const rest = await readAll(
      patient.queryRestCsv('SELECT Id, LastName FROM Lead', ['Id', 'LastName'], { pageAttempts: 1 }),
    );
    expect(rest.trimEnd().split('\n')).toHaveLength(LEADS.length + 1);
  });

  it('does not count the time a reader pauses: a paused stream resumes', async () => {
    const stream = sfc.streamBulkQueryResults(jobId, FIELDS, { maxRecords: 100, pageAttempts: 1 });
    let text = '';
    for await (const chunk of stream) {
      text += String(chunk);
      // The consumer (COPY, say) is slow: twice the idle limit between chunks.
      await new Promise((resolve) => setTimeout(resolve, 600));
    }
    expect(text.trimEnd().split('\n')).toHaveLength(LEADS.length + 1);
  });

  it('ends a sign-in that gets no answer in a TransientError naming it', async () => {
    sf.faults.set({ latencyMs: HUNG_MS });
    const err = await caught(connect());
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toBe(
      `Salesforce sign-in (soap) at ${sf.loginUrl} (loginUrl of the Salesforce secret) failed: timed out, no answer within 0.3 s (the connector's time limit for a sign-in)`,
    );
  });
});
