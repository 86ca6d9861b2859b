/**
 * The steps as Lambda runs them: Prepare, the Salesforce extract and its Bulk check, the Athena
 * load, the transform, and the write-back's plan, push and collect (with Lambda's context, whose
 * time left they read: told none is left, a push hands on after one call), each bundled with the stack's esbuild options (lib/constructs/step-function.ts) and run by a plain `node`
 * process from the bundle's folder (Node 22, the Lambda runtime, under `npm run test:node22`),
 * with the AWS SDK reachable only through `NODE_PATH` and Lambda's environment, X-Ray tracing on:
 * Powertools then instruments every `fetch` and `node:http` call and the AWS SDK clients, as in
 * the deployed functions. The Salesforce bundles carry jsforce for the sign-in (with `whatwg-url`
 * replaced by Node's URL) and the connector's own fetch and Bulk paging; the Athena load takes the
 * SDK from `NODE_PATH` and streams the result file from S3 (the Athena emulator). The X-Ray
 * daemon is a UDP stand-in that keeps the segments sent.
 */
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { build } from 'esbuild';
import { Client } from 'pg';
import { startAthenaEmulator, type AthenaEmulator } from '../../../emulators/athena';
import { startSalesforceEmulator, type SalesforceEmulator } from '../../../emulators/salesforce';
import { LAMBDA_ESBUILD_OPTIONS, PROJECT_ROOT } from '../../../lib/constructs/step-function';
import { createTestDatabase, type TestDatabase } from '../../support/database';

const LEADS = Array.from({ length: 1_200 }, (_, i) => ({
  LastName: `Bundled ${i}`,
  Company: `Company ${i % 5}`,
  Email: `bundled${i}@example.test`,
}));

/** The handler files, and the step name each one's X-Ray subsegment carries (`## <step>`). */
const HANDLERS = {
  prepare: 'Prepare',
  'extract-salesforce': 'ExtractSalesforce',
  'extract-salesforce-check': 'CheckSalesforceExtract',
  'load-athena': 'LoadAthena',
  transform: 'Transform',
  'writeback-plan': 'PlanWriteback',
  'writeback-push': 'PushWriteback',
  'writeback-collect': 'CollectWriteback',
} as const;
type Handler = keyof typeof HANDLERS;

/** A (sub)segment document received: its name, and its request URL when it traced an HTTP call. */
interface XraySubsegment {
  readonly name: string;
  readonly url: string | undefined;
}

/**
 * A UDP X-Ray daemon stand-in (each datagram: a JSON header line, then one segment document).
 * `waitFor` answers once a (sub)segment that matches has come, nested ones included.
 */
async function startXrayDaemon(): Promise<{
  address: string;
  waitFor(what: string, match: (s: XraySubsegment) => boolean): Promise<void>;
  stop(): Promise<void>;
}> {
  const received: XraySubsegment[] = [];
  const waiting = new Set<{ match: (s: XraySubsegment) => boolean; resolve: () => void }>();
  const collect = (doc: Record<string, unknown>): void => {
    const http = doc.http as { request?: { url?: string } } | undefined;
    const subsegment = { name: String(doc.name), url: http?.request?.url };
    received.push(subsegment);
    for (const w of waiting) if (w.match(subsegment)) w.resolve();
    for (const child of (doc.subsegments as Record<string, unknown>[] | undefined) ?? []) collect(child);
  };
  const socket = dgram.createSocket('udp4');
  socket.on('message', (message) => {
    const [, body] = message.toString('utf8').split('\n', 2);
    if (body) collect(JSON.parse(body) as Record<string, unknown>);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${socket.address().port}`,
    waitFor: (what, match) =>
      received.some(match)
        ? Promise.resolve()
        : new Promise<void>((resolve, reject) => {
            // Not a limit on how long tracing may take: a bound on how long a failure takes to show.
            const timer = setTimeout(() => {
              waiting.delete(waiter);
              reject(new Error(`X-Ray received no segment of ${what} in 30 s: is tracing on?`));
            }, 30_000);
            const waiter = {
              match,
              resolve: () => {
                clearTimeout(timer);
                waiting.delete(waiter);
                resolve();
              },
            };
            waiting.add(waiter);
          }),
    stop: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

const CUSTOMERS_CSV = 'email,segment\nbundled0@example.test,gold\nbundled1@example.test,\n';

describe('the bundled steps run by node as Lambda runs them, traced', () => {
  let dir: string;
  let db: TestDatabase;
  let sf: SalesforceEmulator;
  let athena: AthenaEmulator;
  let xray: Awaited<ReturnType<typeof startXrayDaemon>>;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'bundled-steps-'));
    db = await createTestDatabase('rt_bundled_extract');
    sf = await startSalesforceEmulator({ seed: { Lead: LEADS } });
    await mkdir(path.join(dir, 'athena-data', 'marketing'), { recursive: true });
    await writeFile(path.join(dir, 'athena-data', 'marketing', 'customers.csv'), CUSTOMERS_CSV);
    athena = await startAthenaEmulator({ dataDir: path.join(dir, 'athena-data') });
    xray = await startXrayDaemon();
    await Promise.all(
      (Object.keys(HANDLERS) as Handler[]).map(async (handler) => {
        await mkdir(path.join(dir, handler));
        await build({
          ...LAMBDA_ESBUILD_OPTIONS,
          entryPoints: [path.join(PROJECT_ROOT, 'lambdas', 'handlers', `${handler}.ts`)],
          outfile: path.join(dir, handler, 'index.js'),
          logLevel: 'silent',
        });
      }),
    );
    await writeFile(
      path.join(dir, 'roundtrip.config.json'),
      JSON.stringify({
        name: 'bundled-steps',
        salesforce: { secret: 'roundtrip/salesforce', apiVersion: sf.apiVersion },
        athena: { database: 'marketing', workgroup: 'primary', outputLocation: 's3://bundled-results/out/' },
        postgres: { secret: 'roundtrip/postgres', ssl: { mode: 'disable' } },
        extract: [
          {
            from: 'salesforce',
            object: 'Lead',
            fields: ['Id', 'LastName', 'Company', 'Email', 'SystemModstamp'],
            table: 'sf_lead',
            // Every read by Bulk: a query job, its polls and its result pages.
            bulkThreshold: 1,
          },
          { from: 'athena', query: 'SELECT * FROM customers', table: 'athena_customers' },
        ],
        transform: ['sql/01-scores.sql'],
        writeback: [
          {
            to: 'salesforce',
            object: 'Lead',
            from: 'lead_scores',
            mode: 'update',
            fields: { LeadScore__c: 'score' },
            // Composite calls of 1,000 records whatever the size: a push of two calls.
            bulkThreshold: 100_000,
          },
          {
            to: 'salesforce',
            object: 'Lead',
            from: 'lead_scores',
            mode: 'update',
            fields: { LeadScore__c: 'score' },
            // Bulk whatever the size: a job, polled and collected by the Collect bundle.
            bulkThreshold: 1,
            name: 'Lead-bulk',
          },
        ],
      }),
    );
    await mkdir(path.join(dir, 'sql'));
    await writeFile(
      path.join(dir, 'sql', '01-scores.sql'),
      'DROP TABLE IF EXISTS lead_scores;\nCREATE TABLE lead_scores AS SELECT "Id", length("LastName") % 7 AS score FROM sf_lead;\n',
    );
    await writeFile(
      path.join(dir, 'secrets.json'),
      JSON.stringify({
        'roundtrip/salesforce': {
          loginUrl: sf.loginUrl,
          username: sf.credentials.username,
          password: sf.credentials.password,
        },
        'roundtrip/postgres': { url: db.url },
      }),
    );
  });
  afterAll(async () => {
    await xray?.stop();
    await sf?.stop();
    await athena?.stop();
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  /**
   * Invokes a bundle's handler in a new node process and answers its output once the output is
   * printed and the step's subsegment reached the X-Ray daemon; then ends the process (Lambda
   * would freeze it: the pool's idle connections would keep node up).
   */
  const invoke = async (
    handler: Handler,
    event: unknown,
    remainingMs = 600_000,
  ): Promise<Record<string, unknown>> => {
    const context = {
      awsRequestId: `req-${handler}`,
      functionName: `roundtrip-bundled-steps-${handler}`,
      functionVersion: '$LATEST',
      invokedFunctionArn: `arn:aws:lambda:us-east-1:000000000000:function:roundtrip-bundled-steps-${handler}`,
      memoryLimitInMB: '1024',
      logGroupName: `/aws/lambda/roundtrip-bundled-steps-${handler}`,
      logStreamName: 'stream',
    };
    const script = `require('./index.js').handler(${JSON.stringify(event)}, { ...${JSON.stringify(context)}, getRemainingTimeInMillis: () => ${remainingMs} }).then(
      (output) => process.stdout.write('OUTPUT ' + JSON.stringify(output) + '\\n'),
      (err) => { process.stderr.write(String(err && err.stack)); process.exit(1); })`;
    const child = spawn(process.execPath, ['--enable-source-maps', '-e', script], {
      cwd: path.join(dir, handler),
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH ?? '',
        NODE_PATH: path.join(PROJECT_ROOT, 'node_modules'),
        ROUNDTRIP_CONFIG_FILE: path.join(dir, 'roundtrip.config.json'),
        ROUNDTRIP_LOCAL_SECRETS_FILE: path.join(dir, 'secrets.json'),
        AWS_REGION: athena.region,
        AWS_ACCESS_KEY_ID: athena.credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: athena.credentials.secretAccessKey,
        AWS_ENDPOINT_URL_ATHENA: athena.endpoint,
        AWS_ENDPOINT_URL_S3: athena.endpoint,
        ROUNDTRIP_S3_FORCE_PATH_STYLE: 'true',
        // What the Lambda runtime sets, and the tracing environment of an active-tracing function.
        AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs22.x',
        AWS_LAMBDA_FUNCTION_NAME: context.functionName,
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE: context.memoryLimitInMB,
        LAMBDA_TASK_ROOT: path.join(dir, handler),
        _X_AMZN_TRACE_ID: 'Root=1-674a1b2c-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1',
        AWS_XRAY_DAEMON_ADDRESS: xray.address,
        AWS_XRAY_CONTEXT_MISSING: 'LOG_ERROR',
        POWERTOOLS_SERVICE_NAME: 'roundtrip',
        POWERTOOLS_METRICS_NAMESPACE: 'roundtrip',
        POWERTOOLS_LOG_LEVEL: 'ERROR',
      },
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const output = new Promise<Record<string, unknown>>((resolve, reject) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        if (line.startsWith('OUTPUT ')) resolve(JSON.parse(line.slice(7)) as Record<string, unknown>);
      });
      void exited.then((code) => reject(new Error(`${handler} exited with ${code}: ${stderr}`)));
    });
    try {
      const [result] = await Promise.all([
        output,
        xray.waitFor(`the ${handler} step`, (x) => x.name === `## ${HANDLERS[handler]}`),
      ]);
      return result;
    } finally {
      child.kill();
      await exited;
    }
  };

  it('reads every lead by Bulk and the Athena result from S3 into PostgreSQL, and traces the calls', async () => {
    const runId = 'bundled-steps-1';
    const prepared = await invoke('prepare', { input: {}, runId });
    expect(prepared).toMatchObject({
      runId,
      tasks: { salesforce: ['Lead'], athena: ['athena_customers'], writeback: ['Lead-update', 'Lead-bulk'] },
    });

    let extract = await invoke('extract-salesforce', { runId, task: 'Lead', full: false });
    expect(extract).toMatchObject({ status: 'bulk-pending', expectedRows: LEADS.length });
    // The state machine's Wait → check loop; each check is one poll (and the read, once done).
    for (let checks = 0; extract.status === 'bulk-pending' && checks < 20; checks += 1) {
      extract = await invoke('extract-salesforce-check', extract);
    }
    expect(extract).toMatchObject({
      status: 'loaded',
      api: 'bulk',
      rows: LEADS.length,
      inserted: LEADS.length,
    });

    // Without the .sync task's QueryExecution the load starts the query and waits for it itself.
    const loaded = await invoke('load-athena', { runId, task: 'athena_customers' });
    expect(loaded).toMatchObject({ status: 'loaded', refresh: 'swap', rows: 2, s3Reads: 1 });

    const client = new Client({ connectionString: db.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ email: string }>('SELECT "Email" AS email FROM sf_lead');
      expect(rows.map((r) => r.email).sort()).toEqual(LEADS.map((l) => l.Email).sort());
      const customers = await client.query('SELECT email, segment FROM athena_customers ORDER BY email');
      expect(customers.rows).toEqual([
        { email: 'bundled0@example.test', segment: 'gold' },
        { email: 'bundled1@example.test', segment: null },
      ]);
    } finally {
      await client.end();
    }

    // The connector's own fetch calls were traced (the Bulk query job create), and the AWS SDK's.
    const api = `/services/data/v${sf.apiVersion}`;
    await xray.waitFor('the Bulk query job create', (x) => x.url?.endsWith(`${api}/jobs/query`) === true);
    await xray.waitFor('the /limits call', (x) => x.url?.endsWith(`${api}/limits`) === true);
    await xray.waitFor('an Athena call', (x) => x.name === 'Athena');
    await xray.waitFor('the S3 GetObject', (x) => x.name === 'S3');
  });
  it('transforms, plans and pushes; a push whose Lambda has no time left hands on after one call', async () => {
    const runId = 'bundled-steps-1';
    expect(await invoke('transform', { runId })).toMatchObject({ runId });
    const plan = await invoke('writeback-plan', { runId, task: 'Lead-update', dryRun: false });
    expect(plan).toMatchObject({ status: 'planned', api: 'collections', changed: LEADS.length });

    // Lambda's context says no time is left: one Composite call of 1,000 records, then push-pending.
    sf.calls.clear();
    const push = { runId, task: 'Lead-update' };
    expect(await invoke('writeback-push', push, 0)).toEqual({
      status: 'push-pending',
      runId,
      task: 'Lead-update',
      api: 'collections',
      planned: LEADS.length,
      done: 1_000,
      // The task's calls so far: the plan's, and the API calls of this invocation (a new Lambda: it
      // signs in, which is no API call, and describes Lead).
      apiCalls: Number((plan as { apiCalls?: number }).apiCalls ?? 0) + sf.calls.count({ counted: true }),
    });
    expect(await invoke('writeback-push', push, 0)).toMatchObject({
      status: 'collected',
      planned: LEADS.length,
      succeeded: LEADS.length,
      failed: 0,
    });
    expect(sf.calls.writes().map((w) => w.records)).toEqual([1_000, LEADS.length - 1_000]);
    const scores = [...sf.store.all('Lead')].map((r) => [r.LeadScore__c, String(r.LastName).length % 7]);
    expect(scores).toHaveLength(LEADS.length);
    expect(scores.every(([sent, expected]) => sent === expected)).toBe(true);
  });

  it('pushes a Bulk job and collects its results from the bundles, Collect reading Lambda’s time left', async () => {
    const runId = 'bundled-steps-1';
    const plan = await invoke('writeback-plan', { runId, task: 'Lead-bulk', dryRun: false });
    expect(plan).toMatchObject({ status: 'planned', api: 'bulk', changed: LEADS.length });
    let state = await invoke('writeback-push', { runId, task: 'Lead-bulk' });
    expect(state).toMatchObject({ status: 'bulk-pending', jobIds: [expect.any(String)] });
    // The state machine's Wait → Collect loop.
    for (let polls = 0; state.status === 'bulk-pending' && polls < 20; polls += 1) {
      state = await invoke('writeback-collect', state);
    }
    expect(state).toMatchObject({ status: 'collected', api: 'bulk', succeeded: LEADS.length, failed: 0 });
  });
});
