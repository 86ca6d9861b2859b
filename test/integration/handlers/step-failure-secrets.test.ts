/**
 * A Lambda step that fails on a Salesforce sign-in shows no credential where a deployed run keeps
 * it: the Powertools log lines (its "Step failed" line formats the error with its whole `cause`
 * chain and every enumerable property), the error payload the Lambda runtime returns to Step
 * Functions (errorType, errorMessage, the stack's lines: the execution history's Cause), and the
 * runtime's own "Invoke Error" log line (the error with its enumerable properties). The real
 * handler module runs in-process with its deps built from the environment (a local secrets file,
 * a real PostgreSQL); its sign-in meets a gateway that answers 400 quoting the whole request,
 * the SOAP login body with the password in it.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { migrate, createPool } from '../../../lambdas/connectors/postgres';
import { createTestDatabase, type TestDatabase } from '../../support/database';
import { startEchoGateway, type EchoGateway } from '../../support/echo-gateway';

const WRONG_PASSWORD = 'Canary-Pw/+&<9x';
const SECURITY_TOKEN = 'CanaryToken0123456789abcd';
const CANARIES = [WRONG_PASSWORD, encodeURIComponent(WRONG_PASSWORD), 'Canary-Pw', SECURITY_TOKEN];

describe('a Lambda step failing at Salesforce sign-in', () => {
  let db: TestDatabase;
  let dir: string;
  let echo: EchoGateway;
  let echoUrl: string;
  const saved = { ...process.env };

  beforeAll(async () => {
    echo = await startEchoGateway();
    echoUrl = echo.url;
    db = await createTestDatabase('rt_step_secrets');
    const pool = createPool({ url: db.url }, { ssl: { mode: 'disable' } });
    await migrate(pool);
    await pool.end();
    dir = await mkdtemp(path.join(os.tmpdir(), 'roundtrip-step-secrets-'));
    await writeFile(
      path.join(dir, 'roundtrip.config.json'),
      JSON.stringify({
        name: 'step-secrets',
        salesforce: { secret: 'roundtrip/salesforce', apiVersion: '62.0' },
        postgres: { secret: 'roundtrip/postgres', ssl: { mode: 'disable' } },
        extract: [{ from: 'salesforce', object: 'Lead', fields: ['Id', 'Email'], table: 'sf_lead' }],
      }),
    );
    await writeFile(
      path.join(dir, 'secrets.json'),
      JSON.stringify({
        'roundtrip/salesforce': {
          loginUrl: echoUrl,
          username: 'admin@roundtrip.test',
          password: WRONG_PASSWORD,
          securityToken: SECURITY_TOKEN,
        },
        'roundtrip/postgres': { url: db.url },
      }),
    );
    Object.assign(process.env, {
      ROUNDTRIP_CONFIG_FILE: path.join(dir, 'roundtrip.config.json'),
      ROUNDTRIP_LOCAL_SECRETS_FILE: path.join(dir, 'secrets.json'),
      POWERTOOLS_SERVICE_NAME: 'roundtrip-step-secrets',
      POWERTOOLS_LOG_LEVEL: 'INFO',
      POWERTOOLS_METRICS_DISABLED: 'true',
      POWERTOOLS_TRACE_ENABLED: 'false',
    });
  });
  afterAll(async () => {
    // The pool of the handler's deps (built on its invocation) is closed before its database goes.
    const { deps } = await import('../../../lambdas/handlers/extract-salesforce');
    await (await deps()).pg.end();
    process.env = saved;
    await echo?.close();
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps the password out of its log lines, its error payload and the runtime’s Invoke Error line', async () => {
    const { handler } = await import('../../../lambdas/handlers/extract-salesforce');
    let logged = '';
    const capture = (chunk: string | Uint8Array): boolean => {
      logged += String(chunk);
      return true;
    };
    const out = jest.spyOn(process.stdout, 'write').mockImplementation(capture);
    const err = jest.spyOn(process.stderr, 'write').mockImplementation(capture);
    let thrown: unknown;
    try {
      thrown = await handler({ runId: '20261129T120000Z-0000abcd', task: 'Lead' }).then(
        () => undefined,
        (e: unknown) => e,
      );
    } finally {
      out.mockRestore();
      err.mockRestore();
    }
    expect(thrown).toBeInstanceOf(Error);
    const error = thrown as Error;
    // What the Node.js Lambda runtime makes of a rejected handler: the payload Step Functions keeps
    // as the Cause, and its Invoke Error log line (enumerable properties included).
    const payload = JSON.stringify({
      errorType: error.name,
      errorMessage: error.message,
      trace: (error.stack ?? '').split('\n'),
    });
    const invokeError = JSON.stringify({
      ...Object.fromEntries(Object.entries(error)),
      errorType: error.name,
      errorMessage: error.message,
      stack: (error.stack ?? '').split('\n'),
    });
    for (const text of [logged, payload, invokeError])
      for (const canary of CANARIES) expect(text).not.toContain(canary);
    // It says what failed: the step, the sign-in, where, and the gateway's answer (redacted).
    expect(error.name).toBe('TerminalError');
    expect(error.message).toContain(
      `Salesforce sign-in (soap) at ${echoUrl} failed: Bad Request: POST /services/Soap/u/62.0`,
    );
    expect(error.message).toContain('<password>[REDACTED]</password>');
    // The log lines checked are Powertools' own, the failed step's with its error and cause chain.
    const stepFailed = logged
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .find((line) => line.message === 'Step failed');
    expect(stepFailed).toMatchObject({
      step: 'ExtractSalesforce',
      error: { name: 'TerminalError', cause: { message: expect.stringContaining('[REDACTED]') } },
    });
  });
});
