/**
 * A handler as Lambda runs it: bundled with the stack's esbuild options (lib/constructs/
 * step-function.ts) into a folder outside the project, run by a plain `node` process from that
 * folder, with the AWS SDK reachable only through `NODE_PATH` (as the Node.js 22 runtime serves
 * its own SDK from /var/runtime/node_modules), its secret read from a Secrets Manager endpoint
 * over the SDK's wire protocol, the bundled config beside it. The Report of a run that failed
 * before Prepare recorded it is the step: it needs nothing but PostgreSQL, and tells of the failed
 * run on the notification topic (an SNS stand-in) with the SNS client it loads on first use.
 */
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { Client } from 'pg';
import { LAMBDA_ESBUILD_OPTIONS, PROJECT_ROOT } from '../../../lib/constructs/step-function';
import { createTestDatabase, type TestDatabase } from '../../support/database';
import { startSnsStandIn, type SnsStandIn } from '../../support/sns';

const run = promisify(execFile);

describe('a bundled handler run by node as Lambda runs it', () => {
  let dir: string;
  let db: TestDatabase;
  let secretsManager: Server;
  let sns: SnsStandIn;
  const secretRequests: { target: string | undefined; secretId: unknown }[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'bundled-handler-'));
    db = await createTestDatabase('rt_bundled');
    // GetSecretValue in the awsJson1_1 protocol (Secrets Manager API reference).
    secretsManager = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as { SecretId?: unknown };
        secretRequests.push({
          target: req.headers['x-amz-target'] as string | undefined,
          secretId: body.SecretId,
        });
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(
          JSON.stringify({
            ARN: 'arn:aws:secretsmanager:us-east-1:000000000000:secret:roundtrip/postgres-AbCdEf',
            Name: 'roundtrip/postgres',
            SecretString: JSON.stringify({ url: db.url }),
            VersionId: 'v1',
          }),
        );
      });
    });
    await new Promise<void>((resolve) => secretsManager.listen(0, '127.0.0.1', resolve));
    sns = await startSnsStandIn();
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => secretsManager?.close(() => resolve()));
    await sns?.stop();
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('loads the SDK through NODE_PATH, reads its secret, records the failed run and tells of it', async () => {
    await build({
      ...LAMBDA_ESBUILD_OPTIONS,
      entryPoints: [path.join(PROJECT_ROOT, 'lambdas', 'handlers', 'report.ts')],
      outfile: path.join(dir, 'index.js'),
      logLevel: 'silent',
    });
    await writeFile(
      path.join(dir, 'roundtrip.config.json'),
      JSON.stringify({
        name: 'bundled',
        postgres: { secret: 'roundtrip/postgres', ssl: { mode: 'disable' } },
        transform: ['transform/01-score.sql'],
      }),
    );
    const event = { runId: 'bundled-1', error: { Error: 'TerminalError', Cause: 'Unknown task "Nope"' } };
    const outFile = path.join(dir, 'output.json');
    const script = `require('./index.js').handler(${JSON.stringify(event)}).then(
      // Then exit as Lambda would freeze: the pool's idle connections would keep node up.
      (output) => { require('node:fs').writeFileSync(${JSON.stringify(outFile)}, JSON.stringify(output)); process.exit(0); },
      (err) => { process.stderr.write(String(err && err.stack)); process.exitCode = 1; })`;
    const { port } = secretsManager.address() as AddressInfo;
    await run(process.execPath, ['-e', script], {
      cwd: dir,
      env: {
        PATH: process.env.PATH ?? '',
        NODE_PATH: path.join(PROJECT_ROOT, 'node_modules'),
        ROUNDTRIP_CONFIG_FILE: path.join(dir, 'roundtrip.config.json'),
        AWS_REGION: 'us-east-1',
        AWS_ACCESS_KEY_ID: 'test',
        AWS_SECRET_ACCESS_KEY: 'test',
        AWS_ENDPOINT_URL_SECRETS_MANAGER: `http://127.0.0.1:${port}`,
        ROUNDTRIP_NOTIFICATION_TOPIC_ARN: 'arn:aws:sns:us-east-1:000000000000:roundtrip-bundled',
        AWS_ENDPOINT_URL_SNS: sns.endpoint,
        POWERTOOLS_LOG_LEVEL: 'ERROR',
      },
    });
    expect(JSON.parse(await readFile(outFile, 'utf8'))).toEqual({
      runId: 'bundled-1',
      status: 'failed',
      reason: 'TerminalError: Unknown task "Nope"',
      writeback: {},
    });
    expect(secretRequests).toEqual([
      { target: 'secretsmanager.GetSecretValue', secretId: 'roundtrip/postgres' },
    ]);
    expect(sns.published).toEqual([
      {
        topicArn: 'arn:aws:sns:us-east-1:000000000000:roundtrip-bundled',
        subject: 'roundtrip bundled: run bundled-1 failed',
        message: expect.stringContaining('Why: Unknown task "Nope"') as unknown,
      },
    ]);
    const client = new Client({ connectionString: db.url });
    await client.connect();
    try {
      const { rows } = await client.query('SELECT pipeline, status, error FROM roundtrip.runs');
      expect(rows).toEqual([
        { pipeline: 'bundled', status: 'failed', error: 'TerminalError: Unknown task "Nope"' },
      ]);
    } finally {
      await client.end();
    }
  });
});
