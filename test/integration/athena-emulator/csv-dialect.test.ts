import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { resultFile, runQuery, s3Address, startHarness, type Harness } from './helpers';

jest.setTimeout(60_000);

/** A table in Athena's own dialect: quoted values, NULL unquoted-empty, "" the empty string. */
const TABLE =
  '"id","note"\n' +
  '"1","plain"\n' +
  '"2",""\n' +
  '"3",\n' +
  '"4","with ""quotes"", commas\nand a newline"\n' +
  '"5","🦆 ünïcödé"\n';

describe("Athena emulator CSV dialect (Athena's result files)", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ 'dialect/notes.csv': TABLE });
  });
  afterAll(() => h.close());

  it('reads a data file in the dialect: NULL stays NULL, "" stays the empty string', async () => {
    const { execution } = await runQuery(h.athena, {
      QueryString: "SELECT id, note IS NULL AS is_null, note = '' AS is_empty FROM notes ORDER BY id",
      QueryExecutionContext: { Database: 'dialect' },
    });
    expect(await resultFile(h.s3, execution)).toBe(
      '"id","is_null","is_empty"\n' +
        '"1","false","false"\n' +
        '"2","false","true"\n' +
        '"3","true",\n' +
        '"4","false","false"\n' +
        '"5","false","false"\n',
    );
  });

  it('writes the result byte for byte in the dialect: quoting, NULL versus "", final LF, no BOM', async () => {
    const { execution } = await runQuery(h.athena, {
      QueryString: 'SELECT * FROM notes ORDER BY id',
      QueryExecutionContext: { Database: 'dialect' },
    });
    const text = await resultFile(h.s3, execution);
    expect(text).toBe(TABLE);
    // The same bytes are on disk under <resultsDir>/<bucket>/<key>.
    const { Bucket, Key } = s3Address(execution.ResultConfiguration?.OutputLocation);
    const bytes = await readFile(path.join(h.emulator.resultsDir, Bucket, Key));
    expect(bytes.equals(Buffer.from(TABLE, 'utf8'))).toBe(true);
    expect(bytes.subarray(0, 3).equals(Buffer.from([0xef, 0xbb, 0xbf]))).toBe(false);
    expect(bytes.at(-1)).toBe(0x0a);
  });

  it('writes a header-only file for an empty result', async () => {
    const { execution } = await runQuery(h.athena, {
      QueryString: 'SELECT id FROM notes WHERE false',
      QueryExecutionContext: { Database: 'dialect' },
    });
    expect(await resultFile(h.s3, execution)).toBe('"id"\n');
  });
});
