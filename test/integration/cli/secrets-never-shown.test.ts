/**
 * No credential reaches what a data engineer pastes into a ticket: a run refused by Salesforce for
 * a wrong password or client secret (the SOAP login body and the OAuth token request carry them)
 * goes through the real CLI, the real local state machine, the real jsforce against the emulator
 * and a real PostgreSQL, and the secret's text is found nowhere in `run --json -v`'s output and log
 * lines, the step events (the execution history), `roundtrip.runs` (error and summary),
 * `status`, `errors` and `validate`, while each says which sign-in failed and which keys of which
 * secret to check. Salesforce itself never quotes a password back; a gateway in front of it may
 * (an error page that echoes the request: the SOAP login body, the OAuth token form, headers), so
 * each flow is also run against a server that answers 400 with the whole request it received, and
 * a run signed in through a gateway that quotes back its API call's `Authorization: Bearer` header
 * shows the session's access token nowhere. A PostgreSQL URL's password, refused by the server or
 * with the server unreachable, is shown by no command either (run, validate, status).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Pool } from 'pg';
import { startDemoEnvironment, type DemoEnvironment } from '../../../bin/local/environment';
import { cli, writeExampleConfig } from '../../support/cli';
import { createTestDatabase, type TestDatabase } from '../../support/database';
import { startEchoGateway, type EchoGateway } from '../../support/echo-gateway';

/** Canary values: unique strings that must never show up, in any of the forms a wire gives them. */
const WRONG_PASSWORD = 'Canary-Pw/+&<9x';
const WRONG_CLIENT_SECRET = 'Canary-ClientSecret-4d1';
const CANARY_FORMS = [WRONG_PASSWORD, encodeURIComponent(WRONG_PASSWORD), 'Canary-Pw', WRONG_CLIENT_SECRET];

function expectNoCanary(text: string): void {
  for (const canary of CANARY_FORMS) expect(text).not.toContain(canary);
}

describe('secrets never shown by the CLI, its runs and its logs', () => {
  let db: TestDatabase;
  let env: DemoEnvironment;
  let pool: Pool;
  let dir: string;
  let configFile: string;
  let goodSalesforce: Record<string, unknown>;
  let postgres: unknown;
  let echo: EchoGateway;
  let echoUrl: string;

  beforeAll(async () => {
    echo = await startEchoGateway();
    echoUrl = echo.url;
    db = await createTestDatabase('rt_secrets');
    pool = new Pool({ connectionString: db.url, max: 1 });
    dir = await mkdtemp(path.join(os.tmpdir(), 'roundtrip-secrets-'));
    configFile = path.join(dir, 'roundtrip.config.json');
    const example = await writeExampleConfig(configFile);
    env = await startDemoEnvironment({ config: example, leads: 20, customers: 10, postgresUrl: db.url });
    goodSalesforce = (await env.secrets.getSecret('roundtrip/salesforce')) as Record<string, unknown>;
    postgres = await env.secrets.getSecret('roundtrip/postgres');
  });
  afterAll(async () => {
    await echo?.close();
    await pool?.end();
    await env?.stop();
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  /** The command line of the config with a secrets file whose Salesforce secret is `salesforce`. */
  async function withSalesforceSecret(name: string, salesforce: Record<string, unknown>): Promise<string[]> {
    const file = path.join(dir, `${name}.secrets.json`);
    await writeFile(
      file,
      JSON.stringify({ 'roundtrip/salesforce': salesforce, 'roundtrip/postgres': postgres }),
    );
    return ['--config', configFile, '--secrets', file, '--aws-endpoint', env.aws.endpoint];
  }

  const soap = (): Record<string, unknown> => ({ ...goodSalesforce, password: WRONG_PASSWORD });
  const oauthPassword = (): Record<string, unknown> => ({
    flow: 'oauth-password',
    loginUrl: goodSalesforce.loginUrl,
    clientId: env.salesforce.credentials.clientId,
    clientSecret: WRONG_CLIENT_SECRET,
    username: goodSalesforce.username,
    password: WRONG_PASSWORD,
  });
  const flows = [
    {
      name: 'soap refused by Salesforce',
      flow: 'soap',
      secret: soap,
      loginUrl: (): string => String(goodSalesforce.loginUrl),
      check:
        "Check username, password and securityToken (the token is appended to the password; empty when the org trusts the caller's IP address) in the secret roundtrip/salesforce (docs/salesforce-auth.md).",
    },
    {
      name: 'oauth-password refused by Salesforce',
      flow: 'oauth-password',
      secret: oauthPassword,
      loginUrl: (): string => String(goodSalesforce.loginUrl),
      check:
        'Check clientId, clientSecret, username, password and securityToken in the secret roundtrip/salesforce (docs/salesforce-auth.md).',
    },
    {
      name: 'soap answered by a gateway that echoes the login body',
      flow: 'soap',
      secret: (): Record<string, unknown> => ({ ...soap(), loginUrl: echoUrl }),
      loginUrl: (): string => echoUrl,
      check: 'failed: Bad Request: POST /services/Soap/u/62.0',
    },
    {
      name: 'oauth-password answered by a gateway that echoes the token form',
      flow: 'oauth-password',
      secret: (): Record<string, unknown> => ({ ...oauthPassword(), loginUrl: echoUrl }),
      loginUrl: (): string => echoUrl,
      check: 'failed: ERROR_HTTP_400: Bad Request: POST /services/oauth2/token',
    },
  ];

  it.each(flows)(
    'run --json -v, the step events, roundtrip.runs, status and errors: $name',
    async ({ name, flow, secret, loginUrl, check }) => {
      const connection = await withSalesforceSecret(name.replace(/\W+/g, '-'), secret());
      const run = await cli(['run', ...connection, '--json', '-v']);
      const output = `${run.stdout}\n${run.stderr}`;
      expectNoCanary(output);
      // It says what failed and what to check, where.
      expect(output).toContain(`Salesforce sign-in (${flow}) at ${loginUrl()}`);
      expect(output).toContain(check);
      expect(run.code).toBe(1);
      // The -v log lines are there (what the logger wrote is checked, not an empty stream).
      expect(run.stderr).toContain('"message":"Salesforce sign-in failed"');

      const lines = run.stdout.trim().split('\n');
      const summary = JSON.parse(lines[lines.length - 1] as string) as { runId: string; status: string };
      expect(summary.status).toBe('failed');
      const stored = await pool.query<{ error: string | null; summary: unknown }>(
        'SELECT error, summary FROM roundtrip.runs WHERE run_id = $1',
        [summary.runId],
      );
      expect(stored.rows).toHaveLength(1);
      const record = JSON.stringify(stored.rows[0]);
      expectNoCanary(record);
      expect(stored.rows[0]?.error).toContain(check);

      for (const command of [['status'], ['errors', '--run', summary.runId]]) {
        const shown = await cli([...command, ...connection.slice(0, 4)]);
        expectNoCanary(`${shown.stdout}\n${shown.stderr}`);
        if (command[0] === 'status') expect(shown.stdout).toContain(check.slice(0, 40));
      }
    },
  );

  it.each(flows)('validate --json: $name', async ({ name, secret, check }) => {
    const connection = await withSalesforceSecret(name.replace(/\W+/g, '-'), secret());
    const result = await cli(['validate', ...connection, '--json', '-v']);
    expectNoCanary(`${result.stdout}\n${result.stderr}`);
    const lines = result.stdout.trim().split('\n');
    const report = JSON.parse(lines[lines.length - 1] as string) as {
      checks: { check: string; ok: boolean; detail: string }[];
    };
    const signIn = report.checks.find((c) => c.check === 'Salesforce sign-in');
    expect(signIn).toMatchObject({ ok: false });
    expect(signIn?.detail).toContain(check);
    expect(result.code).toBe(1);
  });
  it('a session’s access token quoted back by a gateway on an API call is shown nowhere either', async () => {
    // A gateway in front of the emulator: the sign-in passes through (its answer's instance URL
    // pointed at the gateway), every REST call is answered 400 quoting the request, its
    // Authorization: Bearer header with the session's access token in it.
    const target = new URL(String(goodSalesforce.loginUrl));
    const tokens: string[] = [];
    const gateway = http.createServer((req, res) => {
      const auth = req.headers.authorization;
      if (auth?.startsWith('Bearer ')) tokens.push(auth.slice('Bearer '.length));
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      req.on('end', () => {
        if (req.url?.startsWith('/services/data/')) {
          res.writeHead(400, { 'content-type': 'text/plain' });
          res.end(`Bad Request: ${req.method} ${req.url} ${JSON.stringify(req.headers)} ${body}`);
          return;
        }
        const { 'accept-encoding': _encoding, host: _host, ...headers } = req.headers;
        const forwarded = http.request(
          { host: target.hostname, port: target.port, path: req.url, method: req.method, headers },
          (answer) => {
            let text = '';
            answer.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
            answer.on('end', () => {
              const own = `http://127.0.0.1:${(gateway.address() as AddressInfo).port}`;
              const out = text.split(target.origin).join(own);
              const {
                'content-length': _length,
                'transfer-encoding': _te,
                ...answerHeaders
              } = answer.headers;
              res.writeHead(answer.statusCode ?? 502, answerHeaders);
              res.end(out);
            });
          },
        );
        forwarded.end(body);
      });
    });
    await new Promise<void>((resolve) => gateway.listen(0, '127.0.0.1', resolve));
    try {
      const gatewayUrl = `http://127.0.0.1:${(gateway.address() as AddressInfo).port}`;
      const connection = await withSalesforceSecret('gateway', { ...goodSalesforce, loginUrl: gatewayUrl });
      const run = await cli(['run', ...connection, '--json', '-v']);
      expect(run.code).toBe(1);
      expect(tokens.length).toBeGreaterThan(0);
      const lines = run.stdout.trim().split('\n');
      const { runId } = JSON.parse(lines[lines.length - 1] as string) as { runId: string };
      const stored = await pool.query('SELECT error, summary FROM roundtrip.runs WHERE run_id = $1', [runId]);
      const status = await cli(['status', ...connection.slice(0, 4)]);
      const everything = [
        run.stdout,
        run.stderr,
        JSON.stringify(stored.rows),
        status.stdout,
        status.stderr,
      ].join('\n');
      for (const token of new Set(tokens)) expect(everything).not.toContain(token);
      // What failed is still said: the call, the gateway's answer, its header named.
      expect(stored.rows[0]?.error).toMatch(
        /ERROR_HTTP_400: Bad Request: GET \/services\/data\/v62\.0\/\S+ .*"authorization":"Bearer \[REDACTED\]"/,
      );
    } finally {
      await new Promise((resolve) => gateway.close(resolve));
    }
  });

  it('a PostgreSQL URL’s password: refused by the server, or the server unreachable', async () => {
    const wrong = new URL(db.url);
    wrong.password = 'Canary-Pg-Pw-7';
    const unreachable = new URL('postgres://app:Canary-Pg-Pw-7@127.0.0.1:1/rt');
    for (const [url, says] of [
      [wrong.toString(), /password authentication failed for user .*\(SQLSTATE 28P01\)/],
      [
        unreachable.toString(),
        /PostgreSQL connecting \(app@127\.0\.0\.1:1\/rt\): network error \(ECONNREFUSED\)/,
      ],
    ] as const) {
      const file = path.join(dir, 'pg.secrets.json');
      await writeFile(
        file,
        JSON.stringify({ 'roundtrip/salesforce': goodSalesforce, 'roundtrip/postgres': { url } }),
      );
      const secretsFile = ['--config', configFile, '--secrets', file, '--aws-endpoint', env.aws.endpoint];
      for (const argv of [
        ['run', ...secretsFile, '--json', '-v'],
        ['validate', ...secretsFile, '--json', '-v'],
        ['status', '--config', configFile, '--database-url', url, '-v'],
      ]) {
        const result = await cli(argv);
        const text = `${result.stdout}\n${result.stderr}`;
        expect(text).not.toContain('Canary-Pg-Pw-7');
        expect(text).toMatch(says);
        expect(result.code).toBe(1);
      }
    }
  });
});
