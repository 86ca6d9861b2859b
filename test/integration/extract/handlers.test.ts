/**
 * The Lambda handlers as Lambda calls them: each function's deps built once from the environment
 * (a JSON config file, a local secrets file, the SDK's endpoint variables pointing at the Athena
 * emulator) with only the connectors its step uses, each event parsed with its step's schema,
 * each invocation wrapped by Powertools (instrumentStep).
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { AthenaLoadOutput, PrepareOutput, SalesforceExtractOutput } from '../../../lambdas/core';
import { CANARY, LEAD_FIELDS, leads, startExtractHarness, type ExtractHarness } from './harness';

describe('extract handlers', () => {
  let h: ExtractHarness;
  const saved = { ...process.env };

  beforeAll(async () => {
    h = await startExtractHarness({
      seed: { Lead: leads(40) },
      athenaFiles: { 'marketing/customers.csv': 'email,segment\na@x.test,gold\nb@x.test,\n' },
    });
    const configFile = path.join(h.dataDir, 'roundtrip.config.json');
    const secretsFile = path.join(h.dataDir, 'secrets.json');
    await writeFile(
      configFile,
      JSON.stringify({
        name: 'handlers-test',
        salesforce: { secret: 'roundtrip/salesforce', loginUrl: h.sf.loginUrl },
        athena: { database: 'marketing', outputLocation: 's3://handler-results/out/' },
        postgres: { secret: 'roundtrip/postgres', ssl: { mode: 'disable' } },
        extract: [
          { from: 'salesforce', object: 'Lead', fields: LEAD_FIELDS, table: 'sf_lead', bulkThreshold: 10 },
          { from: 'athena', query: 'SELECT * FROM customers', table: 'athena_customers' },
        ],
      }),
    );
    await writeFile(
      secretsFile,
      JSON.stringify({
        'roundtrip/salesforce': {
          username: h.sf.credentials.username,
          password: CANARY.password,
          securityToken: CANARY.securityToken,
        },
        'roundtrip/postgres': { url: h.db.url },
      }),
    );
    Object.assign(process.env, {
      ROUNDTRIP_CONFIG_FILE: configFile,
      ROUNDTRIP_LOCAL_SECRETS_FILE: secretsFile,
      ROUNDTRIP_S3_FORCE_PATH_STYLE: 'true',
      AWS_ENDPOINT_URL_ATHENA: h.athenaEmulator.endpoint,
      AWS_ENDPOINT_URL_S3: h.athenaEmulator.endpoint,
      AWS_REGION: h.athenaEmulator.region,
      AWS_ACCESS_KEY_ID: h.athenaEmulator.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: h.athenaEmulator.credentials.secretAccessKey,
      POWERTOOLS_LOG_LEVEL: 'WARN',
    });
  });

  afterAll(async () => {
    // Each function built its own deps (one pool per function, as one per Lambda container).
    for (const name of ['prepare', 'extract-salesforce', 'extract-salesforce-check', 'load-athena']) {
      const mod = (await import(`../../../lambdas/handlers/${name}`)) as {
        deps: () => Promise<{ pg: { end(): Promise<void> } }>;
      };
      await (await mod.deps()).pg.end();
    }
    process.env = saved;
    await h.close();
  });

  it('runs Prepare, the Bulk extract with its checks, and the Athena load from events', async () => {
    const prepareHandler = (await import('../../../lambdas/handlers/prepare')).handler;
    const extract = (await import('../../../lambdas/handlers/extract-salesforce')).handler;
    const check = (await import('../../../lambdas/handlers/extract-salesforce-check')).handler;
    const loadAthena = (await import('../../../lambdas/handlers/load-athena')).handler;

    const prepared: PrepareOutput = await prepareHandler({ input: {}, runId: 'handler-run-1' });
    expect(prepared).toMatchObject({
      runId: 'handler-run-1',
      pipeline: 'handlers-test',
      tasks: { salesforce: ['Lead'], athena: ['athena_customers'], writeback: [] },
    });

    let output: SalesforceExtractOutput = await extract({ runId: prepared.runId, task: 'Lead', full: false });
    expect(output).toMatchObject({ status: 'bulk-pending', expectedRows: 40 });
    // The state machine's loop: Wait waitSeconds (skipped here: the emulator's job is done at once), check.
    while (output.status === 'bulk-pending') output = await check(JSON.parse(JSON.stringify(output)));
    expect(output).toMatchObject({ status: 'loaded', api: 'bulk', rows: 40, inserted: 40 });

    const athena: AthenaLoadOutput = await loadAthena({ runId: prepared.runId, task: 'athena_customers' });
    expect(athena).toMatchObject({ refresh: 'swap', rows: 2, s3Reads: 1 });
    expect(await h.rows('SELECT email, segment FROM athena_customers ORDER BY email')).toEqual([
      { email: 'a@x.test', segment: 'gold' },
      { email: 'b@x.test', segment: null },
    ]);

    await expect(extract({ runId: prepared.runId, task: 'Contact' })).rejects.toThrow(
      'No Salesforce extract task named "Contact" in pipeline handlers-test (known: Lead)',
    );
    await expect(check({ runId: prepared.runId, task: 'Lead' })).rejects.toThrow(
      /^Invalid input of step CheckSalesforceExtract: status: /,
    );
  });

  it('gives each function only the connectors its step uses', async () => {
    const loadDeps = await (await import('../../../lambdas/handlers/load-athena')).deps();
    expect(loadDeps.athena).toBeDefined();
    expect(loadDeps.salesforce).toBeUndefined();
    const extractDeps = await (await import('../../../lambdas/handlers/extract-salesforce')).deps();
    expect(typeof extractDeps.salesforce).toBe('function');
    expect(extractDeps.athena).toBeUndefined();
    // The same deps for every invocation of a warm container.
    expect(await (await import('../../../lambdas/handlers/extract-salesforce')).deps()).toBe(extractDeps);
  });
});
