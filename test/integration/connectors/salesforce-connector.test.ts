/**
 * The Salesforce connector against the Salesforce emulator over real HTTP, with jsforce as the
 * client, and its CSV loaded into the real PostgreSQL with COPY.
 */
import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { startSalesforceEmulator, type SalesforceEmulator } from '../../../emulators/salesforce';
import {
  connectSalesforce,
  DESCRIBE_MAX_AGE_MS,
  type SalesforceConnector,
} from '../../../lambdas/connectors/salesforce';
import { withOwnCallCounts } from '../../../lambdas/shared/call-scope';
import { SalesforceSignInRefusedError, TerminalError, TransientError } from '../../../lambdas/shared/errors';
import { QueryCursorReleasedError, refusedCallStatus } from '../../../lambdas/connectors/salesforce/errors';
import {
  closeIngestJob,
  createIngestJob,
  getIngestJob,
  isFinalIngestState,
  streamIngestResults,
  uploadIngestData,
} from '../../../lambdas/connectors/salesforce/writes';
import { createMemoryLogger } from '../../../lambdas/shared/logging';
import { createTestDatabase, type TestDatabase } from '../../support/database';

// Canary values: unique strings that must never show up in a log line or an error message.
const CANARY = {
  password: 'Canary-Pw-7f3a9c',
  securityToken: 'CanaryTok-51b2e8d04a',
  clientSecret: 'Canary-ClientSecret-0c9e77',
};

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();

const HARD_LEADS = [
  {
    LastName: 'Müller–Ødegård 山田 😀',
    Company: 'Comma, "Quote" & Co',
    Email: 'a@x.test',
    AnnualRevenue: 123456789012,
  },
  { LastName: 'Line\nBreak', Company: 'Back\\slash', Email: null, AnnualRevenue: 9007199254740991 },
  { LastName: '"', Company: ',', Email: 'q@x.test', NumberOfEmployees: 0, LeadScore__c: 999 },
  // Salesforce stores text trimmed of U+0000–U+0020 (the emulator too), but keeps a trailing no-break space.
  { LastName: 'Trailing space\u00a0', Company: 'Tab\there', Email: 'r@x.test', NumberOfEmployees: 99999999 },
];
const FILLER = 446;
const TOTAL = HARD_LEADS.length + FILLER;

const FIELDS = [
  'Id',
  'FirstName',
  'LastName',
  'Company',
  'Email',
  'AnnualRevenue',
  'NumberOfEmployees',
  'IsDeleted',
  'CreatedDate',
  'LeadScore__c',
];

describe('Salesforce connector against the emulator', () => {
  let sf: SalesforceEmulator;
  let db: TestDatabase;
  let pg: Client;

  const soapSecret = () => ({
    loginUrl: sf.loginUrl,
    username: sf.credentials.username,
    password: CANARY.password,
    securityToken: CANARY.securityToken,
  });

  beforeAll(async () => {
    const filler = Array.from({ length: FILLER }, (_, i) => ({
      FirstName: `F${i}`,
      LastName: `Lead ${i}`,
      Company: `Company ${i % 17}`,
      Email: `lead${i}@example.test`,
      NumberOfEmployees: i,
    }));
    sf = await startSalesforceEmulator({
      seed: { Lead: [...HARD_LEADS, ...filler] },
      credentials: {
        password: CANARY.password,
        securityToken: CANARY.securityToken,
        clientSecret: CANARY.clientSecret,
      },
      jwtCertificate: publicKeyPem,
    });
    db = await createTestDatabase();
    pg = new Client({ connectionString: db.url });
    await pg.connect();
  });

  afterAll(async () => {
    await pg?.end();
    await db?.drop();
    await sf?.stop();
  });

  beforeEach(() => {
    sf.faults.clear();
  });

  async function loadCsv(table: string, csv: Readable): Promise<void> {
    await pg.query(`DROP TABLE IF EXISTS ${table}`);
    await pg.query(`CREATE TABLE ${table} (
      "Id" text, "FirstName" text, "LastName" text, "Company" text, "Email" text, "AnnualRevenue" numeric,
      "NumberOfEmployees" integer, "IsDeleted" boolean, "CreatedDate" timestamptz, "LeadScore__c" double precision)`);
    await pipeline(csv, pg.query(copyFrom(`COPY ${table} FROM STDIN (FORMAT csv, HEADER true)`)));
  }

  async function expectAllLeadsLoaded(table: string): Promise<void> {
    const { rows } = await pg.query<{ n: string; ids: string }>(
      `SELECT count(*) AS n, count(DISTINCT "Id") AS ids FROM ${table}`,
    );
    expect(rows[0]).toEqual({ n: String(TOTAL), ids: String(TOTAL) });
    // Every hard value survives the trip exactly.
    for (const lead of HARD_LEADS) {
      const { rows: found } = await pg.query<Record<string, unknown>>(
        `SELECT "Company", "Email", "AnnualRevenue"::text AS rev, "NumberOfEmployees", "LeadScore__c", "IsDeleted", "CreatedDate"
         FROM ${table} WHERE "LastName" = $1`,
        [lead.LastName],
      );
      expect(found).toHaveLength(1);
      const row = found[0]!;
      expect(row.Company).toBe(lead.Company);
      expect(row.Email).toBe(lead.Email);
      expect(row.IsDeleted).toBe(false);
      expect(row.CreatedDate).toBeInstanceOf(Date);
      if ('AnnualRevenue' in lead) expect(Number(row.rev)).toBe(lead.AnnualRevenue);
      if ('NumberOfEmployees' in lead) expect(row.NumberOfEmployees).toBe(lead.NumberOfEmployees);
      if ('LeadScore__c' in lead) expect(row.LeadScore__c).toBe(lead.LeadScore__c);
    }
    const { rows: nulls } = await pg.query<{ n: string }>(
      `SELECT count(*) AS n FROM ${table} WHERE "FirstName" IS NULL`,
    );
    expect(nulls[0]?.n).toBe(String(HARD_LEADS.length));
  }

  describe('sign-in', () => {
    it('signs in with SOAP login (password + security token), describes once, counts', async () => {
      const logger = createMemoryLogger();
      const c = await connectSalesforce({ secret: soapSecret(), logger, apiVersion: sf.apiVersion });
      expect(c.flow).toBe('soap');
      const first = await c.describe('Lead');
      const again = await c.describe('lead');
      expect(again).toBe(first);
      expect(first.fields.map((f) => f.name)).toContain('LeadScore__c');
      expect(await c.count('SELECT COUNT() FROM Lead')).toBe(TOTAL);
      expect(c.apiCalls).toBe(2);
      expect(sf.calls.count({ operation: 'describe' })).toBe(1);
      expect(c.apiUsage()).toEqual({ used: sf.limits.used, max: sf.limits.max });
      const limits = await c.limits();
      expect(limits.DailyApiRequests?.Max).toBe(sf.limits.max);
    });

    it('signs in with the OAuth password flow', async () => {
      const c = await connectSalesforce({
        secret: {
          flow: 'oauth-password',
          loginUrl: sf.loginUrl,
          clientId: sf.credentials.clientId,
          clientSecret: CANARY.clientSecret,
          username: sf.credentials.username,
          password: CANARY.password,
          securityToken: CANARY.securityToken,
        },
        logger: createMemoryLogger(),
        apiVersion: sf.apiVersion,
      });
      expect(await c.count('SELECT COUNT() FROM Lead')).toBe(TOTAL);
    });

    it('signs in with client credentials', async () => {
      const c = await connectSalesforce({
        secret: {
          flow: 'client-credentials',
          loginUrl: sf.loginUrl,
          clientId: sf.credentials.clientId,
          clientSecret: CANARY.clientSecret,
        },
        logger: createMemoryLogger(),
        apiVersion: sf.apiVersion,
      });
      expect(await c.count("SELECT COUNT() FROM Lead WHERE Company = 'Company 3'")).toBeGreaterThan(0);
    });

    it('signs in with a JWT bearer assertion signed by the private key', async () => {
      const c = await connectSalesforce({
        secret: {
          flow: 'jwt',
          loginUrl: sf.loginUrl,
          clientId: sf.credentials.clientId,
          username: sf.credentials.username,
          privateKey: privateKeyPem,
        },
        logger: createMemoryLogger(),
        apiVersion: sf.apiVersion,
      });
      expect(await c.count('SELECT COUNT() FROM Lead')).toBe(TOTAL);
    });

    it('fails terminally on bad credentials for every flow, never echoing a secret', async () => {
      const wrongKey = generateKeyPairSync('rsa', { modulusLength: 2048 })
        .privateKey.export({ type: 'pkcs8', format: 'pem' })
        .toString();
      const secrets = [
        { ...soapSecret(), password: `${CANARY.password}-wrong` },
        {
          flow: 'oauth-password',
          loginUrl: sf.loginUrl,
          clientId: sf.credentials.clientId,
          clientSecret: `${CANARY.clientSecret}-wrong`,
          username: sf.credentials.username,
          password: CANARY.password,
          securityToken: CANARY.securityToken,
        },
        {
          flow: 'client-credentials',
          loginUrl: sf.loginUrl,
          clientId: 'nope',
          clientSecret: CANARY.clientSecret,
        },
        {
          flow: 'jwt',
          loginUrl: sf.loginUrl,
          clientId: sf.credentials.clientId,
          username: sf.credentials.username,
          privateKey: wrongKey,
        },
      ];
      // What to correct, and where: each flow's keys, in the secret the config names.
      const check = [
        "Check username, password and securityToken (the token is appended to the password; empty when the org trusts the caller's IP address) in the secret local/salesforce (docs/salesforce-auth.md).",
        'Check clientId, clientSecret, username, password and securityToken in the secret local/salesforce (docs/salesforce-auth.md).',
        'Check clientId and clientSecret (and that the connected app has a run-as user) in the secret local/salesforce (docs/salesforce-auth.md).',
        'Check clientId, username and privateKey (its certificate uploaded to the connected app, the user pre-authorized) in the secret local/salesforce (docs/salesforce-auth.md).',
      ];
      const logger = createMemoryLogger();
      for (const [i, secret] of secrets.entries()) {
        const err = await connectSalesforce({
          secret,
          secretName: 'local/salesforce',
          logger,
          apiVersion: sf.apiVersion,
        }).catch((e: unknown) => e);
        expect((err as Error).message).toContain(`. ${check[i]}`);
        // For the whole run: every later sign-in would be refused too (and count toward a lockout).
        expect(err).toBeInstanceOf(SalesforceSignInRefusedError);
        const text = `${(err as Error).message}\n${(err as Error).stack}\n${JSON.stringify(err)}\n${String((err as Error).cause)}`;
        for (const canary of [...Object.values(CANARY), wrongKey.split('\n')[1]!])
          expect(text).not.toContain(canary);
        expect((err as Error).message).toMatch(/sign-in \((soap|oauth-password|client-credentials|jwt)\)/);
      }
      const logs = JSON.stringify(logger.records);
      for (const canary of Object.values(CANARY)) expect(logs).not.toContain(canary);
    });

    const notALoginUrl =
      "there is no Salesforce sign-in at that URL. Check it: a login URL is https://login.salesforce.com, https://test.salesforce.com (a sandbox), a My Domain (https://NAME.my.salesforce.com) or the emulator's address (http://127.0.0.1:PORT), with nothing after the host (docs/salesforce-auth.md)";

    it('says that a login URL answering 404 is not one, by where it is set, with the gist of its answer, not the body', async () => {
      // A login URL with a path Salesforce does not serve: the SOAP login and the OAuth token
      // endpoint answer 404 (the emulator as the REST API does, a JSON array).
      const secrets = [
        { ...soapSecret(), loginUrl: `${sf.loginUrl}/nowhere` },
        {
          flow: 'client-credentials',
          loginUrl: `${sf.loginUrl}/nowhere`,
          clientId: sf.credentials.clientId,
          clientSecret: CANARY.clientSecret,
        },
      ];
      const paths = ['/nowhere/services/Soap/u/62.0', '/nowhere/services/oauth2/token'];
      for (const [i, secret] of secrets.entries()) {
        const err = await connectSalesforce({
          secret,
          secretName: 'local/salesforce',
          logger: createMemoryLogger(),
          apiVersion: sf.apiVersion,
        }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(SalesforceSignInRefusedError);
        expect((err as Error).message).toBe(
          `Salesforce sign-in (${i === 0 ? 'soap' : 'client-credentials'}) failed: the login URL ${sf.loginUrl}/nowhere (loginUrl of the secret local/salesforce) answered 404 Not Found to POST ${paths[i]} ("NOT_FOUND: The requested resource does not exist"): ${notALoginUrl}`,
        );
        expect((err as Error).message).not.toContain('[{');
        expect((err as Error).message).not.toContain(CANARY.clientSecret);
      }
    });

    it('names a login URL set in the config by its config path, and an HTML 404 page by its title, as Salesforce answers', async () => {
      // Salesforce's servers answer a path they do not have with an HTML page, not JSON.
      const page =
        '<!DOCTYPE html>\n<html><head><title>URL No Longer Exists</title><script>var x = 1;</script></head>' +
        `<body>${'<p>You have attempted to reach a URL that no longer exists on salesforce.com.</p>'.repeat(40)}</body></html>`;
      let status = 404;
      const server = http.createServer((req, res) => {
        req.resume();
        res.writeHead(status, { 'Content-Type': 'text/html;charset=UTF-8' }).end(page);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const loginUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/login`;
      try {
        const err = await connectSalesforce({
          secret: { ...soapSecret(), loginUrl },
          secretName: 'local/salesforce',
          loginUrlFrom: 'salesforce.loginUrl of the config',
          logger: createMemoryLogger(),
          apiVersion: sf.apiVersion,
        }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(SalesforceSignInRefusedError);
        expect((err as Error).message).toBe(
          `Salesforce sign-in (soap) failed: the login URL ${loginUrl} (salesforce.loginUrl of the config) answered 404 Not Found to POST /login/services/Soap/u/62.0 ("URL No Longer Exists"): ${notALoginUrl}`,
        );
        // A host that is no login service (a Lightning address) refuses the method: 405, said so too.
        status = 405;
        const refused = await connectSalesforce({
          secret: { ...soapSecret(), loginUrl },
          secretName: 'local/salesforce',
          logger: createMemoryLogger(),
          apiVersion: sf.apiVersion,
        }).catch((e: unknown) => e);
        expect(refused).toBeInstanceOf(SalesforceSignInRefusedError);
        expect((refused as Error).message).toBe(
          `Salesforce sign-in (soap) failed: the login URL ${loginUrl} (loginUrl of the secret local/salesforce) answered 405 Method Not Allowed to POST /login/services/Soap/u/62.0 ("URL No Longer Exists"): ${notALoginUrl}`,
        );
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    });

    it('names a sign-in refused for another reason than its credentials or its URL as it is, without a hint', async () => {
      // A SOAP fault that is not about the credentials: Salesforce's words, nothing added.
      const server = http.createServer((req, res) => {
        req.resume();
        res
          .writeHead(500, { 'Content-Type': 'text/xml' })
          .end(
            '<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><soapenv:Fault><faultcode>UNSUPPORTED_CLIENT</faultcode><faultstring>UNSUPPORTED_CLIENT: TLS 1.0 has been disabled</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>',
          );
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const loginUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      try {
        const err = await connectSalesforce({
          secret: { ...soapSecret(), loginUrl },
          secretName: 'local/salesforce',
          logger: createMemoryLogger(),
          apiVersion: sf.apiVersion,
        }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(TerminalError);
        expect(err).not.toBeInstanceOf(SalesforceSignInRefusedError);
        expect((err as Error).message).toBe(
          `Salesforce sign-in (soap) at ${loginUrl} failed: UNSUPPORTED_CLIENT: TLS 1.0 has been disabled`,
        );
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    });
    it('fails a call whose session expired and whose renewal Salesforce refused with the sign-in’s own error, for the whole run', async () => {
      const c = await connectSalesforce({
        secret: soapSecret(),
        secretName: 'local/salesforce',
        logger: createMemoryLogger(),
        apiVersion: sf.apiVersion,
      });
      await c.describe('Lead');
      // The password changed in Salesforce mid-run, and the session ended: the connector signs in
      // again once, with the secret it has, and is refused.
      const credentials = sf.credentials as { password: string };
      const password = credentials.password;
      credentials.password = 'Rotated-Pass-7';
      sf.expireSessions();
      const logins = sf.calls.count({ operation: 'login' });
      try {
        const err = await c.count('SELECT COUNT() FROM Lead').catch((e: unknown) => e);
        expect(err).toBeInstanceOf(SalesforceSignInRefusedError);
        expect((err as Error).message).toBe(
          `Salesforce sign-in (soap) at ${sf.loginUrl} failed: INVALID_LOGIN: Invalid username, password, security token; or user locked out. ` +
            "Check username, password and securityToken (the token is appended to the password; empty when the org trusts the caller's IP address) in the secret local/salesforce (docs/salesforce-auth.md).",
        );
        expect(sf.calls.count({ operation: 'login' })).toBe(logins + 1);
        for (const canary of Object.values(CANARY)) expect((err as Error).message).not.toContain(canary);
        // The call itself was refused (401), not processed: a write's records are not sent.
        expect(refusedCallStatus(err)).toBe(401);
      } finally {
        credentials.password = password;
      }
      // Once Salesforce takes the secret again, the next call signs in and goes on.
      expect(await c.count('SELECT COUNT() FROM Lead')).toBe(TOTAL);
    });
  });

  describe('a 401 without INVALID_SESSION_ID', () => {
    let c: SalesforceConnector;
    const logger = createMemoryLogger();
    beforeAll(async () => {
      c = await connectSalesforce({
        secret: soapSecret(),
        secretName: 'local/salesforce',
        logger,
        apiVersion: sf.apiVersion,
      });
    });
    const logins = (): number => sf.calls.count({ operation: 'login' });
    /** The statuses the emulator answered to `operation`'s calls since the log was cleared. */
    const statuses = (operation: string): number[] =>
      sf.calls
        .all()
        .filter((call) => call.operation === operation)
        .map((call) => call.status);

    it('renews the session on a REST 401 whatever its body says, and sends the call again, once', async () => {
      sf.calls.clear();
      const before = logins();
      sf.faults.set({ http401Burst: 1 });
      expect(await c.count('SELECT COUNT() FROM Lead')).toBe(TOTAL);
      expect(statuses('query')).toEqual([401, 200]);
      expect(logins()).toBe(before + 1);
      expect(logger.records.some((r) => r.message === 'Salesforce session renewed')).toBe(true);
    });

    it('fails a call refused again right after the renewal, naming it and the secret, without signing in a third time', async () => {
      sf.calls.clear();
      const before = logins();
      sf.faults.set({ http401Burst: 2 });
      const err = await c.count('SELECT COUNT() FROM Lead').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TerminalError);
      expect(err).not.toBeInstanceOf(SalesforceSignInRefusedError);
      expect((err as Error).message).toBe(
        'Salesforce count failed: the session was refused again (401 "Unauthorized") right after the connector renewed it with a new sign-in (soap): ' +
          "the credentials of the secret local/salesforce sign in, but Salesforce refuses their session for this call. Check the user's access in Salesforce " +
          "(API Enabled, the connected app's policies, its login IP ranges) and the secret local/salesforce (docs/salesforce-auth.md)",
      );
      // Refused, so not processed: the status stays visible to a caller that sent a write.
      expect(refusedCallStatus(err)).toBe(401);
      // One renewal, and the call sent twice: not sent a third time, not retried as transient.
      expect(statuses('query')).toEqual([401, 401]);
      expect(logins()).toBe(before + 1);
      // The refusal passed: the next call goes on.
      expect(await c.count('SELECT COUNT() FROM Lead')).toBe(TOTAL);
    });

    it('renews the session on a 401 of any Bulk API 2.0 call the same way: sent again, or the step retried for a streamed upload', async () => {
      const lead = [...sf.store.all('Lead')][0] as { Id: string };
      sf.calls.clear();
      const before = logins();
      sf.faults.set({ http401Burst: 1 });
      const job = await createIngestJob(c, { object: 'Lead', operation: 'update' });
      // A streamed body cannot be sent again: the session is renewed, the step is to be retried.
      sf.faults.set({ http401Burst: 1 });
      const csv = () => Readable.from([`Id,Title\n${lead.Id},Renewed\n`]);
      const upload = await uploadIngestData(c, job.id, csv()).catch((e: unknown) => e);
      expect(upload).toBeInstanceOf(TransientError);
      expect((upload as Error).message).toBe(
        `Bulk ingest upload of job ${job.id}: the Salesforce session expired during the request; it was renewed, retry the step`,
      );
      await uploadIngestData(c, job.id, csv());
      sf.faults.set({ http401Burst: 1 });
      let state = (await closeIngestJob(c, job.id)).state;
      while (!isFinalIngestState(state)) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        sf.faults.set({ http401Burst: 1 });
        state = (await getIngestJob(c, job.id)).state;
      }
      expect(state).toBe('JobComplete');
      sf.faults.set({ http401Burst: 1 });
      const results = await streamIngestResults(c, job.id, 'successfulResults');
      expect((await results.toArray()).join('')).toContain(`${lead.Id}`);
      expect(sf.store.get(lead.Id)?.Title).toBe('Renewed');
      const polls = statuses('bulk.ingest.poll');
      expect(statuses('bulk.ingest.create')).toEqual([401, 200]);
      expect(statuses('bulk.ingest.upload')).toEqual([401, 201]);
      expect(statuses('bulk.ingest.close')).toEqual([401, 200]);
      expect(polls.filter((status) => status === 401)).toHaveLength(polls.length / 2);
      expect(statuses('bulk.ingest.results')).toEqual([401, 200]);
      // One sign-in per 401, none more.
      expect(logins()).toBe(before + 4 + polls.length / 2);

      // A Bulk query job's create and its results pages too.
      sf.faults.set({ http401Burst: 1 });
      const queryJob = await c.startBulkQuery('SELECT Id FROM Lead');
      await c.waitForBulkQuery(queryJob, { delaySeconds: () => 0.05 });
      sf.faults.set({ http401Burst: 1 });
      const rows = (await c.streamBulkQueryResults(queryJob, ['Id']).toArray()).join('').trim().split('\n');
      expect(rows).toHaveLength(TOTAL + 1);
      expect(statuses('bulk.query.create')).toEqual([401, 200]);
      expect(statuses('bulk.query.results')).toEqual([401, 200]);

      // Refused again right after the renewal: the Bulk call fails, named.
      sf.faults.set({ http401Burst: 2 });
      const refused = await c.startBulkQuery('SELECT Id FROM Lead').catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(TerminalError);
      expect((refused as Error).message).toMatch(
        /^Salesforce Bulk query job create failed: the session was refused again \(401 "Unauthorized"\) right after the connector renewed it/,
      );
    });
  });

  describe('describe', () => {
    it('reuses a describe for five minutes, then asks again and sees what an admin changed', async () => {
      let clock = 1_000_000;
      const c = await connectSalesforce({
        secret: soapSecret(),
        logger: createMemoryLogger(),
        apiVersion: sf.apiVersion,
        now: () => clock,
      });
      const before = sf.calls.count({ operation: 'describe' });
      const first = await c.describe('Lead');
      expect(first.fields.find((f) => f.name === 'Rating')?.updateable).toBe(true);
      const rating = sf.store.describe('Lead')?.fields.find((f) => f.name === 'Rating');
      if (!rating) throw new Error('the emulator has no Lead.Rating');
      const was = rating.updateable;
      rating.updateable = false; // made read-only in Setup while the container stays warm
      try {
        clock += DESCRIBE_MAX_AGE_MS - 1;
        expect(await c.describe('Lead')).toBe(first);
        expect(sf.calls.count({ operation: 'describe' }) - before).toBe(1);
        clock += 1;
        const fresh = await c.describe('Lead');
        expect(fresh.fields.find((f) => f.name === 'Rating')?.updateable).toBe(false);
        expect(sf.calls.count({ operation: 'describe' }) - before).toBe(2);
        expect(await c.describe('lead')).toBe(fresh);
      } finally {
        rating.updateable = was;
      }
    });
  });

  describe('API calls counted per step invocation', () => {
    it('two invocations sharing the connector at once each count their own calls; the total counts all', async () => {
      const c = await connectSalesforce({
        secret: soapSecret(),
        logger: createMemoryLogger(),
        apiVersion: sf.apiVersion,
      });
      // Each call takes 40 ms, so the short invocation's call lands inside the long one's.
      sf.faults.set({ latencyMs: 40 });
      const totalBefore = c.apiCalls;
      const spent = (calls: () => Promise<unknown>) =>
        withOwnCallCounts(async () => {
          const before = c.apiCalls;
          await calls();
          return c.apiCalls - before;
        });
      const [long, short] = await Promise.all([
        spent(async () => {
          await c.limits();
          await c.limits();
          await c.limits();
        }),
        spent(() => c.limits()),
      ]);
      expect([long, short]).toEqual([3, 1]);
      // Outside an invocation (a Lambda's one at a time): the connector's total.
      expect(c.apiCalls - totalBefore).toBe(4);
    });
  });

  describe('reads', () => {
    let c: SalesforceConnector;
    const logger = createMemoryLogger();
    beforeAll(async () => {
      c = await connectSalesforce({ secret: soapSecret(), logger, apiVersion: sf.apiVersion });
    });

    it('pages a REST query with a small batch size: every row exactly once, hard values intact', async () => {
      sf.calls.clear();
      const reads: unknown[] = [];
      await loadCsv(
        'rest_leads',
        c.queryRestCsv('SELECT ' + FIELDS.join(', ') + ' FROM Lead', FIELDS, {
          batchSize: 200,
          onRead: (read) => reads.push(read),
        }),
      );
      await expectAllLeadsLoaded('rest_leads');
      expect(sf.calls.count({ operation: 'queryMore' })).toBe(Math.ceil(TOTAL / 200) - 1);
      // Once, at the end: the records the pages held and the query's totalSize, to compare.
      expect(reads).toEqual([{ records: TOTAL, pages: Math.ceil(TOTAL / 200), totalSize: TOTAL }]);
    });

    it('recovers from a session that expires in the middle of REST paging', async () => {
      sf.faults.set({ sessionExpiresAfterCalls: 1 });
      sf.calls.clear();
      await loadCsv(
        'rest_expiry',
        c.queryRestCsv('SELECT ' + FIELDS.join(', ') + ' FROM Lead', FIELDS, { batchSize: 200 }),
      );
      await expectAllLeadsLoaded('rest_expiry');
      expect(sf.calls.count({ operation: 'login' })).toBeGreaterThanOrEqual(1);
    });

    it('gives up on a REST read whose cursor Salesforce released, transiently and without sending the page again', async () => {
      sf.calls.clear();
      const stream = c.queryRestCsv('SELECT ' + FIELDS.join(', ') + ' FROM Lead', FIELDS, { batchSize: 200 });
      const pages = stream[Symbol.asyncIterator]();
      await pages.next(); // the header
      await pages.next(); // the first page
      // An eleventh cursor of the integration user, or 15 idle minutes: the next page is refused.
      sf.releaseQueryCursors();
      const err = await (async () => {
        while (!(await pages.next()).done);
      })().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TransientError);
      expect(err).toBeInstanceOf(QueryCursorReleasedError);
      expect((err as Error).name).toBe('TransientError');
      expect((err as Error).message).toMatch(
        /^Salesforce query failed: INVALID_QUERY_LOCATOR: invalid query locator \(Salesforce released the query's cursor, as it does after 15 idle minutes or when the user opens an eleventh, .* the read starts again from the beginning\)$/,
      );
      // The refused page was asked once: a released cursor does not come back.
      expect(sf.calls.count({ operation: 'queryMore', status: 400 })).toBe(1);
    });

    it('fetches a REST query page again when refused with 503s or cut mid-stream, and loads every row once', async () => {
      sf.calls.clear();
      // The first page is refused twice, then cut after 3,000 bytes, then read whole.
      sf.faults.set({ http503Burst: 2, resetStreamAfterBytes: 3000 });
      await loadCsv(
        'rest_cut',
        c.queryRestCsv('SELECT ' + FIELDS.join(', ') + ' FROM Lead', FIELDS, {
          batchSize: 200,
          pageAttempts: 4,
        }),
      );
      await expectAllLeadsLoaded('rest_cut');
      const retries = logger.records.filter((r) => r.message === 'Salesforce GET failed; sending it again');
      expect(retries.map((r) => [r.attributes.attempt, r.attributes.error])).toEqual([
        [1, expect.stringMatching(/SERVER_UNAVAILABLE/)],
        [2, expect.stringMatching(/SERVER_UNAVAILABLE/)],
        [3, expect.stringMatching(/^query: the answer was cut off: /)],
      ]);
      // Every fetch is an API call, the three that failed too.
      expect(sf.calls.count({ operation: 'query' }) + sf.calls.count({ operation: 'queryMore' })).toBe(
        Math.ceil(TOTAL / 200) + 3,
      );
    });

    it('sends a describe or a COUNT() refused with 503s again, and gives up transiently after three', async () => {
      const before = logger.records.length;
      sf.faults.set({ http503Burst: 2 });
      expect((await c.describe('Contact')).name).toBe('Contact');
      sf.faults.set({ http503Burst: 2 });
      expect(await c.count('SELECT COUNT() FROM Lead')).toBe(TOTAL);
      const retried = logger.records
        .slice(before)
        .filter((r) => r.message === 'Salesforce GET failed; sending it again')
        .map((r) => [r.attributes.operation, r.attributes.attempt]);
      expect(retried).toEqual([
        ['describe Contact', 1],
        ['describe Contact', 2],
        ['count', 1],
        ['count', 2],
      ]);
      sf.faults.set({ http503Burst: 3 });
      const err = await c.count('SELECT COUNT() FROM Lead').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TransientError);
      expect((err as Error).message).toMatch(/SERVER_UNAVAILABLE/);
    });

    it('gives up on a REST query page after its attempts, transiently', async () => {
      sf.faults.set({ resetStreamAfterBytes: 1000 });
      const stream = c.queryRestCsv('SELECT ' + FIELDS.join(', ') + ' FROM Lead', FIELDS, {
        pageAttempts: 1,
      });
      const err = await stream.toArray().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TransientError);
      expect((err as Error).message).toMatch(/^query: the answer was cut off: /);
    });

    it('streams a Bulk query over several locator pages into CSV with exactly one header', async () => {
      const jobId = await c.startBulkQuery('SELECT ' + FIELDS.join(', ') + ' FROM Lead');
      const job = await c.waitForBulkQuery(jobId, { delaySeconds: () => 0.05 });
      expect(job.numberRecordsProcessed).toBe(TOTAL);
      sf.calls.clear();
      const chunks: string[] = [];
      for await (const chunk of c.streamBulkQueryResults(jobId, FIELDS, { maxRecords: 100 }))
        chunks.push(String(chunk));
      const csv = chunks.join('');
      expect(sf.calls.count({ operation: 'bulk.query.results' })).toBe(Math.ceil(TOTAL / 100));
      expect(csv.split('\n').filter((line) => line.startsWith('"Id",')).length).toBe(1);
      await loadCsv('bulk_leads', c.streamBulkQueryResults(jobId, FIELDS, { maxRecords: 100 }));
      await expectAllLeadsLoaded('bulk_leads');
    });

    it('refuses a Bulk results page or a REST page that does not say whether more follow, rather than end the read early', async () => {
      // A proxy that drops Salesforce's paging markers: the Sforce-Locator header, nextRecordsUrl.
      const stripping = await connectSalesforce({
        secret: soapSecret(),
        apiVersion: sf.apiVersion,
        logger: createMemoryLogger('warn'),
        fetch: async (input, init) => {
          const res = await fetch(input, init);
          const url = String(input);
          if (url.includes('/results?')) {
            const headers = new Headers(res.headers);
            headers.delete('sforce-locator');
            return new Response(res.body, { status: res.status, headers });
          }
          if (/\/query\?q=/.test(url) && res.ok) {
            const page = (await res.json()) as Record<string, unknown>;
            delete page.nextRecordsUrl;
            return new Response(JSON.stringify(page), { status: res.status, headers: res.headers });
          }
          return res;
        },
      });
      const jobId = await stripping.startBulkQuery('SELECT ' + FIELDS.join(', ') + ' FROM Lead');
      await stripping.waitForBulkQuery(jobId, { delaySeconds: () => 0.05 });
      const bulk = await stripping
        .streamBulkQueryResults(jobId, FIELDS, { maxRecords: 100 })
        .toArray()
        .catch((e: unknown) => e);
      expect(bulk).toBeInstanceOf(TerminalError);
      expect((bulk as Error).message).toMatch(/Sforce-Locator/);
      const rest = await stripping
        .queryRestCsv('SELECT ' + FIELDS.join(', ') + ' FROM Lead', FIELDS, { batchSize: 200 })
        .toArray()
        .catch((e: unknown) => e);
      expect(rest).toBeInstanceOf(TerminalError);
      expect((rest as Error).message).toMatch(/nextRecordsUrl/);
    });

    it('refuses a Bulk results page whose CSV holds another number of records than its Sforce-NumberOfRecords says', async () => {
      // What a conversion that ran two records together, or split one, would look like: the
      // second page's CSV one record short of its header (the record dropped on the way).
      /** A connector whose Bulk results pages pass through `rewrite` (a proxy changing them). */
      const rewritingResults = (rewrite: (res: Response) => Response | Promise<Response>) =>
        connectSalesforce({
          secret: soapSecret(),
          apiVersion: sf.apiVersion,
          logger: createMemoryLogger('warn'),
          fetch: async (input, init) => {
            const res = await fetch(input, init);
            return String(input).includes('/results?') && res.ok ? rewrite(res) : res;
          },
        });
      let pageNo = 0;
      const dropping = await rewritingResults(async (res) => {
        pageNo += 1;
        if (pageNo !== 2) return res;
        const lines = (await res.text()).split('\n');
        lines.splice(1, 1);
        return new Response(lines.join('\n'), { status: res.status, headers: res.headers });
      });
      const jobId = await dropping.startBulkQuery('SELECT ' + FIELDS.join(', ') + ' FROM Lead');
      await dropping.waitForBulkQuery(jobId, { delaySeconds: () => 0.05 });
      const err = await dropping
        .streamBulkQueryResults(jobId, FIELDS, { maxRecords: 100 })
        .toArray()
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TerminalError);
      expect((err as Error).message).toBe(
        `Bulk query results page 2 of job ${jobId} holds 99 records in its CSV, but Salesforce says 100 (Sforce-NumberOfRecords): a value the CSV conversion read otherwise than Salesforce wrote it would lose or invent records, so nothing of this read is loaded. Report it with the job id; a bulkThreshold above the task's row count reads it over REST, without the CSV`,
      );
      // A header that is no count is named as such; without the header the page is taken as it is.
      for (const [value, outcome] of [
        ['many', /came with Sforce-NumberOfRecords "many", not a record count/],
        [undefined, null],
      ] as const) {
        const rewriting = await rewritingResults((res) => {
          const headers = new Headers(res.headers);
          if (value === undefined) headers.delete('sforce-numberofrecords');
          else headers.set('sforce-numberofrecords', value);
          return new Response(res.body, { status: res.status, headers });
        });
        const results = rewriting.streamBulkQueryResults(jobId, FIELDS, { maxRecords: 100 });
        if (outcome === null) {
          await loadCsv('bulk_leads_unchecked', results);
          await expectAllLeadsLoaded('bulk_leads_unchecked');
        } else {
          const read = await results.toArray().catch((e: unknown) => e);
          expect(read).toBeInstanceOf(TerminalError);
          expect((read as Error).message).toMatch(outcome);
        }
      }
    });

    it('renews a session that expired under a request with a body: a text body is sent again, a streamed one asks for the step to be retried', async () => {
      const init = (body: RequestInit['body']): RequestInit =>
        ({
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
          duplex: 'half',
        }) as RequestInit;
      const job = JSON.stringify({
        object: 'Lead',
        operation: 'update',
        contentType: 'CSV',
        lineEnding: 'LF',
      });
      const create = (body: RequestInit['body']) =>
        c.fetchWithSession('Bulk ingest job create', '/jobs/ingest', init(body));

      // Salesforce did nothing with a call it refused for the session: a text body is sent again.
      sf.expireSessions();
      let logins = sf.calls.count({ operation: 'login' });
      expect((await create(job)).status).toBe(200);
      expect(sf.calls.count({ operation: 'login' })).toBeGreaterThan(logins);

      // A streamed body cannot be sent again: transient, session renewed.
      sf.expireSessions();
      logins = sf.calls.count({ operation: 'login' });
      const error = await create(Readable.toWeb(Readable.from([job])) as ReadableStream).catch(
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(TransientError);
      expect((error as Error).message).toMatch(/session expired during the request; it was renewed/);
      expect(sf.calls.count({ operation: 'login' })).toBeGreaterThan(logins);
      // The retried step finds a fresh session.
      expect((await create(job)).status).toBe(200);
    });

    it('renews the session while paging Bulk results, and resumes a page cut mid-stream', async () => {
      const jobId = await c.startBulkQuery('SELECT ' + FIELDS.join(', ') + ' FROM Lead');
      await c.waitForBulkQuery(jobId, { delaySeconds: () => 0.05 });
      sf.faults.set({ sessionExpiresAfterCalls: 2, resetStreamAfterBytes: 5000 });
      await loadCsv('bulk_faults', c.streamBulkQueryResults(jobId, FIELDS, { maxRecords: 150 }));
      await expectAllLeadsLoaded('bulk_faults');
      expect(logger.records.some((r) => r.message.includes('interrupted'))).toBe(true);
      expect(logger.records.some((r) => r.message === 'Salesforce session renewed')).toBe(true);
    });

    it('reports a failed Bulk job with Salesforce’s reason', async () => {
      sf.faults.set({ failNextBulkJob: 'InvalidBatch : canned failure for the test' });
      const jobId = await c.startBulkQuery('SELECT Id FROM Lead');
      const err = await c.waitForBulkQuery(jobId, { delaySeconds: () => 0.05 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TerminalError);
      expect((err as Error).message).toBe(
        `Salesforce Bulk query job ${jobId} ended Failed: InvalidBatch : canned failure for the test`,
      );
    });

    it('names the bad field of a query, terminally', async () => {
      const stream = c.queryRestCsv('SELECT Id, Nope__c FROM Lead', ['Id', 'Nope__c']);
      const err = await stream.toArray().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TerminalError);
      expect((err as Error).message).toMatch(/INVALID_FIELD: .*Nope__c/);
    });

    it('sends a write once: refused with a 503 it is a transient error, never sent again by the connector', async () => {
      const before = sf.store.count('Account');
      sf.calls.clear();
      sf.faults.set({ http503Burst: 1 });
      const write = c.request('Collections insert of Account', 'POST', '/composite/sobjects', {
        allOrNone: false,
        records: [{ attributes: { type: 'Account' }, Name: 'Once Ltd' }],
      });
      await expect(write).rejects.toThrow(TransientError);
      await expect(write).rejects.toThrow(/SERVER_UNAVAILABLE/);
      expect(sf.calls.count({ operation: 'collections.create' })).toBe(1);
      expect(sf.store.count('Account')).toBe(before);
    });

    it('stops terminally when the daily API allowance is spent', async () => {
      sf.faults.set({ dailyApiLimit: 1 });
      const err = await c.count('SELECT COUNT() FROM Lead').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TerminalError);
      expect((err as Error).message).toMatch(/REQUEST_LIMIT_EXCEEDED.*daily API allowance/);
    });

    it('never logged a secret or a session id', () => {
      const logs = JSON.stringify(logger.records);
      for (const canary of Object.values(CANARY)) expect(logs).not.toContain(canary);
      expect(logs).not.toMatch(/00D[A-Za-z0-9]{12,15}![\w.]+/);
    });
  });
});
