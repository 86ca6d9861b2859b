import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Connection } from 'jsforce';
import { UsageError } from '../../../bin/cli-common';
import { runSalesforceEmulatorCli } from '../../../emulators/salesforce/cli';
import { loadSeed, SEED_BATCH_RECORDS } from '../../../emulators/salesforce/seed';
import { loadDescribes } from '../../../emulators/salesforce/describe';
import { SalesforceStore } from '../../../emulators/salesforce/store';
import { VERSION } from './support';

const ROOT = path.resolve(__dirname, '../../..');

describe('roundtrip emulate salesforce', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'sf-seed-'));
    writeFileSync(path.join(dir, 'a.json'), JSON.stringify({ Account: [{ Name: 'Seeded Co' }] }));
    writeFileSync(
      path.join(dir, 'Lead.csv'),
      'LastName,Company,LeadScore__c\r\nNg,Acme,10\r\n"Silva, Jr",Initech,\r\n',
    );
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('prints the login URL and credentials, serves the seeded records, and stops on request', async () => {
    const out: string[] = [];
    const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      out.push(String(chunk));
      return true;
    });
    let release!: () => void;
    const stopped = new Promise<void>((resolve) => (release = resolve));
    try {
      const run = runSalesforceEmulatorCli(['--port', '0', '--seed', dir], () => stopped);
      while (!out.join('').includes('Press Ctrl-C')) await new Promise((resolve) => setTimeout(resolve, 10));
      const text = out.join('');
      const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(text)?.[1] as string;
      expect(text).toContain('username:       admin@roundtrip.test');
      expect(text).toContain('password:       roundtrip');
      expect(text).toContain('security token: (empty)');
      expect(text).toContain('client id:      roundtrip-local');
      expect(text).toContain('client secret:  roundtrip-secret');
      expect(text).toContain('Account=1, Contact=0, Event=0, Lead=2, Task=0, User=0');
      const conn = new Connection({ loginUrl: url, version: VERSION });
      await conn.login('admin@roundtrip.test', 'roundtrip');
      const leads = await conn.query<{ LastName: string; LeadScore__c: number | null }>(
        'SELECT LastName, LeadScore__c FROM Lead ORDER BY LastName',
      );
      expect(leads.records.map((r) => [r.LastName, r.LeadScore__c])).toEqual([
        ['Ng', 10],
        ['Silva, Jr', null],
      ]);
      release();
      expect(await run).toBe(0);
    } finally {
      spy.mockRestore();
    }
  });

  it("names a CSV seed's refused record by its line in the file, past the first batch too", async () => {
    const store = new SalesforceStore({ describes: loadDescribes() });
    const file = path.join(dir, 'lines', 'Lead.csv');
    mkdirSync(path.dirname(file));
    // Line 1 the header; the bad value on the second record of the second batch.
    const rows = Array.from({ length: SEED_BATCH_RECORDS + 1 }, (_, i) => `L${i},C,${i % 100}`);
    writeFileSync(file, ['LastName,Company,LeadScore__c', ...rows, 'Park,Initech,high', ''].join('\n'));
    await expect(loadSeed(store, file)).rejects.toThrow(
      `${file}: line ${SEED_BATCH_RECORDS + 3}, LeadScore__c: INVALID_TYPE_ON_FIELD_IN_RECORD: Lead Score: value not of required type: high`,
    );
    writeFileSync(file, 'LastName,Company,Emial\nNg,Acme,ng@acme.test\n');
    await expect(loadSeed(new SalesforceStore({ describes: loadDescribes() }), file)).rejects.toThrow(
      `${file}: line 2: no field 'Emial' on Lead`,
    );
  });

  it('rejects unknown options and bad values with a usage error', async () => {
    await expect(runSalesforceEmulatorCli(['--nope'])).rejects.toThrow(UsageError);
    await expect(runSalesforceEmulatorCli(['--port', 'x'])).rejects.toThrow(
      '--port must be an integer ≥ 0, got "x"',
    );
    // A seed that cannot be loaded is bad input (exit 2), named without the usage text.
    const missingSeed = runSalesforceEmulatorCli(
      ['--seed', path.join(dir, 'missing.json')],
      async () => undefined,
    );
    await expect(missingSeed).rejects.toBeInstanceOf(UsageError);
    const shapes =
      'give a JSON file ({ "Lead": [ … ] }), a CSV file named after its object (Lead.csv), or a folder of them';
    await expect(missingSeed).rejects.toMatchObject({
      message: `seed ${path.join(dir, 'missing.json')} does not exist: ${shapes}`,
      showUsage: false,
    });
    // A folder that exists but seeds nothing (its parent named instead of it, an empty one): said
    // as such, with what it holds, not 'file not found' nor an org without records.
    const parent = path.join(dir, 'parent');
    mkdirSync(path.join(parent, 'seed'), { recursive: true });
    writeFileSync(path.join(parent, 'roundtrip.config.ts'), '');
    await expect(runSalesforceEmulatorCli(['--seed', parent], async () => undefined)).rejects.toMatchObject({
      message: `seed ${parent} is a folder without a .json or .csv file (it has roundtrip.config.ts, seed/): ${shapes}`,
      showUsage: false,
    });
    await expect(
      runSalesforceEmulatorCli(['--seed', path.join(parent, 'seed')], async () => undefined),
    ).rejects.toMatchObject({
      message: `seed ${path.join(parent, 'seed')} is a folder without a .json or .csv file (it is empty): ${shapes}`,
    });
  });

  it('takes --faults inline or from a file, shows them and the control path, and refuses bad ones', async () => {
    const out: string[] = [];
    const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      out.push(String(chunk));
      return true;
    });
    try {
      const file = path.join(dir, 'faults.json');
      writeFileSync(file, JSON.stringify({ lockRowKeys: ['k-1'] }));
      for (const given of ['{"lockRowKeys":["k-1"]}', file]) {
        out.length = 0;
        expect(
          await runSalesforceEmulatorCli(['--port', '0', '--faults', given], async () => undefined),
        ).toBe(0);
        expect(out.join('')).toMatch(
          /faults: {9}\{"lockRowKeys":\["k-1"\]\} {3}\(change them while it runs: GET\/PUT\/DELETE http:\/\/127\.0\.0\.1:\d+\/_emulator\/faults\)/,
        );
      }
    } finally {
      spy.mockRestore();
    }
    await expect(
      runSalesforceEmulatorCli(['--faults', '{"latencyMS": 5}'], async () => undefined),
    ).rejects.toMatchObject({
      message: expect.stringContaining(
        '--faults: invalid Salesforce emulator faults: no fault named "latencyMS" (did you mean "latencyMs"?)',
      ),
      showUsage: false,
    });
    await expect(runSalesforceEmulatorCli(['--faults', '{nope'], async () => undefined)).rejects.toThrow(
      /^--faults: not JSON \(.*\): give an object of faults/,
    );
    await expect(
      runSalesforceEmulatorCli(['--faults', path.join(dir, 'absent.json')], async () => undefined),
    ).rejects.toThrow(`cannot read a file ${path.join(dir, 'absent.json')}`);
  });

  it('runs as `roundtrip emulate salesforce` and exits 0 on SIGTERM', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'bin/roundtrip.ts', 'emulate', 'salesforce', '--port', '0'],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    while (!stdout.includes('Press Ctrl-C')) {
      if (child.exitCode !== null) throw new Error(`the CLI exited early: ${stdout}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)?.[1] as string;
    const versions = await fetch(`${url}/services/data`);
    expect(versions.status).toBe(200);
    child.kill('SIGTERM');
    expect(await exit).toBe(0);
    expect(stdout).toContain('Salesforce emulator stopped.');
  });
});
