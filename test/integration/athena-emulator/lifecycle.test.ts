/**
 * Starting and stopping the Athena emulator: a start that fails undoes what it made (the DuckDB
 * instance, a temp results dir), and stop() leaves no query to run on DuckDB after it (a
 * StartQueryExecution still being parsed when stop() is called runs no query).
 */
import { mkdir, mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo, type Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { DataCatalog } from '../../../emulators/athena/catalog';
import { NO_FAULTS, QueryEngine } from '../../../emulators/athena/engine';
import type { AthenaApiError } from '../../../emulators/athena/errors';
import { caught } from '../../support/caught';
import { makeDataDir } from './helpers';

const ROOT = path.resolve(__dirname, '../../..');
const TSX_CLI = require.resolve('tsx/cli', { paths: [ROOT] });

// The CLI test starts tsx in a process of its own.
jest.setTimeout(60_000);

describe('a start of the Athena emulator that fails', () => {
  let dataDir: string;
  let tmpdir: string;
  let taken: Server;
  let port: number;

  beforeAll(async () => {
    dataDir = await makeDataDir({ 'marketing/customers.csv': '"email"\n"ada@example.com"\n' });
    tmpdir = await mkdtemp(path.join(os.tmpdir(), 'athena-emulator-tmpdir-'));
    // tsx keeps its compile cache in TMPDIR (tsx-<euid>): the usual one, linked in, spares the CLI
    // compiling every module again (5 s of CPU).
    const cache = `tsx-${process.geteuid?.() ?? os.userInfo().username}`;
    await mkdir(path.join(os.tmpdir(), cache), { recursive: true });
    await symlink(path.join(os.tmpdir(), cache), path.join(tmpdir, cache));
    taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    port = (taken.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => taken.close(() => resolve()));
    await rm(dataDir, { recursive: true, force: true });
    await rm(tmpdir, { recursive: true, force: true });
  });

  it('on a port in use fails naming the port, leaves no results dir behind, and the process exits', async () => {
    // The CLI in its own process, whose TMPDIR (where the results dir is made) is a dir of the test's.
    const child = spawn(
      process.execPath,
      [TSX_CLI, 'bin/roundtrip.ts', 'emulate', 'athena', '--port', String(port), '--data', dataDir],
      { cwd: ROOT, env: { ...process.env, TMPDIR: tmpdir }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(stderr).toContain(`EADDRINUSE: address already in use 127.0.0.1:${port}`);
    expect(code).toBe(1);
    const left = (await readdir(tmpdir)).filter((name) => name.startsWith('athena-emulator-results-'));
    expect(left).toEqual([]);
  });
});

describe("the Athena emulator's query engine when it closes", () => {
  let dataDir: string;
  let resultsDir: string;
  let instance: DuckDBInstance;
  let engine: QueryEngine;

  beforeEach(async () => {
    dataDir = await makeDataDir({});
    resultsDir = await mkdtemp(path.join(os.tmpdir(), 'athena-emulator-results-'));
    instance = await DuckDBInstance.create(':memory:');
    engine = new QueryEngine({
      instance,
      catalog: new DataCatalog(dataDir),
      resultsDir,
      workgroups: { primary: { outputLocation: 's3://query-results/athena/' } },
      queryDelaysMs: { queued: 0, running: 0 },
      faults: { ...NO_FAULTS },
      objects: new Map(),
    });
  });

  afterEach(async () => {
    await engine.close();
    instance.closeSync();
    await rm(dataDir, { recursive: true, force: true });
    await rm(resultsDir, { recursive: true, force: true });
  });

  it('waits for a StartQueryExecution still being parsed, which then runs no query', async () => {
    // Not awaited: the call is parsing the query on DuckDB when close() is called.
    const start = engine.startQueryExecution({ QueryString: 'SELECT 1' });
    await engine.close();
    // What stop() does next: with the start still running, its query would run on a closed instance.
    instance.closeSync();
    const error = await caught(start);
    expect((error as AthenaApiError).type).toBe('InternalServerException');
    expect(error.message).toBe(
      'The Athena emulator is stopping: StartQueryExecution was refused and runs no query',
    );
  });

  it('refuses a StartQueryExecution that comes after it', async () => {
    await engine.close();
    const error = await caught(engine.startQueryExecution({ QueryString: 'SELECT 1' }));
    expect((error as AthenaApiError).type).toBe('InternalServerException');
    expect(error.message).toContain('The Athena emulator is stopping');
  });
});
