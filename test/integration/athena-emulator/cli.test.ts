import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import {
  AthenaClient,
  GetQueryResultsCommand,
  GetWorkGroupCommand,
  StartQueryExecutionCommand,
} from '@aws-sdk/client-athena';
import { UsageError } from '../../../bin/cli-common';
import { runAthenaEmulatorCli } from '../../../emulators/athena/cli';
import { makeDataDir, runQuery } from './helpers';

jest.setTimeout(60_000);

const ROOT = path.resolve(__dirname, '../../..');
const TSX_CLI = require.resolve('tsx/cli', { paths: [ROOT] });

describe('roundtrip emulate athena (the CLI)', () => {
  it('prints the endpoint, region and credentials, serves queries, and stops on SIGTERM with exit 0', async () => {
    const dataDir = await makeDataDir({ 'marketing/customers.csv': '"email"\n"ada@example.com"\n' });
    const child = spawn(
      process.execPath,
      [
        TSX_CLI,
        'bin/roundtrip.ts',
        'emulate',
        'athena',
        '--port',
        '0',
        '--data',
        dataDir,
        '--workgroup',
        'primary=s3://cli-results/q/',
        '--workgroup',
        'retired=s3://cli-results/old/:DISABLED',
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    // Destroyed in `finally` too: a failed expectation must not leave its socket holding jest open.
    let athena: AthenaClient | undefined;
    try {
      const endpoint = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => {
          stdout += d.toString();
          const match = /listening on (http:\/\/\S+)/.exec(stdout);
          if (match?.[1] && stdout.includes('Ctrl-C to stop.')) resolve(match[1]);
        });
        void exited.then((code) =>
          reject(new Error(`the CLI exited with ${code} before listening: ${stderr}`)),
        );
      });
      expect(stdout).toContain('region:      us-east-1');
      const key = /AWS_ACCESS_KEY_ID=(\S+) AWS_SECRET_ACCESS_KEY=(\S+)/.exec(stdout);
      expect(key).not.toBeNull();
      athena = new AthenaClient({
        endpoint,
        region: 'us-east-1',
        credentials: { accessKeyId: key?.[1] ?? '', secretAccessKey: key?.[2] ?? '' },
      });
      const { id, execution } = await runQuery(athena, {
        QueryString: 'SELECT email FROM customers',
        QueryExecutionContext: { Database: 'marketing' },
      });
      expect(execution.ResultConfiguration?.OutputLocation).toBe(`s3://cli-results/q/${id}.csv`);
      const page = await athena.send(new GetQueryResultsCommand({ QueryExecutionId: id }));
      expect(page.ResultSet?.Rows?.[1]?.Data).toEqual([{ VarCharValue: 'ada@example.com' }]);
      // `:DISABLED` makes a workgroup GetWorkGroup calls DISABLED and StartQueryExecution refuses.
      const retired = await athena.send(new GetWorkGroupCommand({ WorkGroup: 'retired' }));
      expect(retired.WorkGroup?.State).toBe('DISABLED');
      expect(retired.WorkGroup?.Configuration?.ResultConfiguration?.OutputLocation).toBe(
        's3://cli-results/old/',
      );
      await expect(
        athena.send(
          new StartQueryExecutionCommand({
            QueryString: 'SELECT email FROM customers',
            QueryExecutionContext: { Database: 'marketing' },
            WorkGroup: 'retired',
          }),
        ),
      ).rejects.toThrow('WorkGroup retired is disabled.');
      athena.destroy();
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(stdout).toContain('SIGTERM: stopping the Athena emulator');
    } finally {
      athena?.destroy();
      if (child.exitCode === null) child.kill('SIGKILL');
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('exits 2 with the usage when --data is missing', async () => {
    const child = spawn(process.execPath, [TSX_CLI, 'bin/roundtrip.ts', 'emulate', 'athena'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(2);
    expect(stderr).toContain('--data DIR is required');
  });

  it('exits 2 naming a --data folder that does not exist', async () => {
    const missing = path.join(ROOT, 'no-such-athena-data');
    const child = spawn(
      process.execPath,
      [TSX_CLI, 'bin/roundtrip.ts', 'emulate', 'athena', '--data', missing],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    // Once `roundtrip emulate:`, not again as `emulate athena:`; a folder that is not there is said so.
    expect(stderr).toBe(
      `roundtrip emulate: --data ${missing} does not exist (expected a folder with a folder per database, e.g. ${path.join(missing, 'marketing', 'customers.csv')})\n`,
    );
    expect(code).toBe(2);
  });

  it('says that a --data naming a file is a file, not a folder', async () => {
    const dataDir = await makeDataDir({ 'marketing/customers.csv': '"email"\n' });
    const file = path.join(dataDir, 'marketing', 'customers.csv');
    try {
      const refused = runAthenaEmulatorCli(['--data', file]);
      await expect(refused).rejects.toBeInstanceOf(UsageError);
      await expect(refused).rejects.toThrow(
        `--data ${file} is a file, not a folder (expected a folder with a folder per database`,
      );
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
