import { createHash } from 'node:crypto';
import { GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import { GetQueryExecutionCommand, StartQueryExecutionCommand } from '@aws-sdk/client-athena';
import { rejection, runQuery, s3Address, startHarness, waitForQuery, type Harness } from './helpers';

jest.setTimeout(60_000);

const ROWS = 3000;
const TABLE = ['"n"', ...Array.from({ length: ROWS }, (_, i) => `"${i}"`)].join('\n') + '\n';

describe('Athena emulator S3 GetObject / HeadObject (real @aws-sdk/client-s3)', () => {
  let h: Harness;
  let address: { Bucket: string; Key: string };
  let expected: Buffer;

  beforeAll(async () => {
    h = await startHarness({ 'd/numbers.csv': TABLE });
    const { execution } = await runQuery(h.athena, {
      QueryString: 'SELECT n FROM numbers ORDER BY n',
      QueryExecutionContext: { Database: 'd' },
    });
    address = s3Address(execution.ResultConfiguration?.OutputLocation);
    expected = Buffer.from(TABLE);
  });
  afterAll(() => h.close());

  it('streams the whole result file with ETag (MD5), length, type and date', async () => {
    const object = await h.s3.send(new GetObjectCommand(address));
    const chunks: Buffer[] = [];
    for await (const chunk of object.Body as Readable) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    expect(body.equals(expected)).toBe(true);
    expect(object.ContentLength).toBe(expected.length);
    expect(object.ETag).toBe(`"${createHash('md5').update(expected).digest('hex')}"`);
    expect(object.ContentType).toBe('text/csv');
    expect(object.LastModified).toBeInstanceOf(Date);
    expect(object.AcceptRanges).toBe('bytes');
    expect(h.emulator.calls.at(-1)).toMatchObject({ operation: 'GetObject', status: 200 });
  });

  it('answers HeadObject with the same metadata and no body', async () => {
    const head = await h.s3.send(new HeadObjectCommand(address));
    expect(head.ContentLength).toBe(expected.length);
    expect(head.ETag).toBe(`"${createHash('md5').update(expected).digest('hex')}"`);
    expect(h.emulator.calls.at(-1)).toMatchObject({ operation: 'HeadObject', status: 200 });
  });

  it('serves byte ranges with 206 and Content-Range', async () => {
    const first = await h.s3.send(new GetObjectCommand({ ...address, Range: 'bytes=0-9' }));
    expect(first.ContentRange).toBe(`bytes 0-9/${expected.length}`);
    expect(first.ContentLength).toBe(10);
    expect(await first.Body?.transformToString()).toBe(expected.subarray(0, 10).toString());
    expect(first.$metadata.httpStatusCode).toBe(206);
    const tail = await h.s3.send(new GetObjectCommand({ ...address, Range: 'bytes=-7' }));
    expect(await tail.Body?.transformToString()).toBe(expected.subarray(-7).toString());
    const open = await h.s3.send(
      new GetObjectCommand({ ...address, Range: `bytes=${expected.length - 5}-` }),
    );
    expect(open.ContentRange).toBe(`bytes ${expected.length - 5}-${expected.length - 1}/${expected.length}`);
  });

  it('answers 416 InvalidRange for a range past the end', async () => {
    const err = await rejection(
      h.s3.send(new GetObjectCommand({ ...address, Range: `bytes=${expected.length}-` })),
    );
    expect(err.name).toBe('InvalidRange');
    expect((err.$metadata as { httpStatusCode?: number }).httpStatusCode).toBe(416);
  });

  it('answers NoSuchKey, NoSuchBucket, and a bodiless 404 for HeadObject', async () => {
    const key = await rejection(h.s3.send(new GetObjectCommand({ ...address, Key: 'athena/missing.csv' })));
    expect(key.name).toBe('NoSuchKey');
    expect(key.message).toBe('The specified key does not exist.');
    const bucket = await rejection(
      h.s3.send(new GetObjectCommand({ Bucket: 'no-such-bucket', Key: 'x.csv' })),
    );
    expect(bucket.name).toBe('NoSuchBucket');
    const head = await rejection(h.s3.send(new HeadObjectCommand({ ...address, Key: 'athena/missing.csv' })));
    expect(head.name).toBe('NotFound');
    expect((head.$metadata as { httpStatusCode?: number }).httpStatusCode).toBe(404);
  });

  it('refuses a key that climbs out of the bucket', async () => {
    const response = await fetch(`${h.emulator.endpoint}/${address.Bucket}/..%2F..%2Fetc%2Fpasswd`);
    expect(response.status).toBe(404);
    expect(await response.text()).toContain('<Code>NoSuchKey</Code>');
  });
});

describe('Athena emulator result object while the query runs (real @aws-sdk/client-s3)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ 'd/numbers.csv': TABLE }, { queryDelaysMs: { queued: 0, running: 2000 } });
  });
  afterAll(() => h.close());

  it('has no result object until the query SUCCEEDED, as Athena uploads it whole at the end', async () => {
    const { QueryExecutionId: id } = await h.athena.send(
      new StartQueryExecutionCommand({
        QueryString: 'SELECT n FROM numbers',
        QueryExecutionContext: { Database: 'd' },
      }),
    );
    const execution = async () =>
      (await h.athena.send(new GetQueryExecutionCommand({ QueryExecutionId: id }))).QueryExecution;
    const running = await execution();
    expect(running?.Status?.State).toBe('RUNNING');
    const address = s3Address(running?.ResultConfiguration?.OutputLocation);
    // DuckDB has written the rows long before the configured running time is over.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await execution())?.Status?.State).toBe('RUNNING');
    const missing = await rejection(h.s3.send(new HeadObjectCommand(address)));
    expect(missing.name).toBe('NotFound');
    const { execution: done } = await waitForQuery(h.athena, id as string);
    expect(done.Status?.State).toBe('SUCCEEDED');
    const head = await h.s3.send(new HeadObjectCommand(address));
    expect(head.ContentLength).toBe(TABLE.length);
  });
});
