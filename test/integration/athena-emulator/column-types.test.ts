import { GetQueryResultsCommand } from '@aws-sdk/client-athena';
import { resultFile, runQuery, startHarness, type Harness } from './helpers';

jest.setTimeout(60_000);

/** A date column of two formats and a NULL, as a hand-kept export holds them. */
const SIGNUPS = 'email,signed_up_on,plan\na@x.io,2026-01-02,pro\nb@x.io,01/02/2026,free\nc@x.io,,pro\n';

/** 30,000 rows of ISO dates, then one that is not: past DuckDB's sniffing sample of the first rows. */
const LATE =
  ['"id","day"', ...Array.from({ length: 30_000 }, (_, i) => `"${i}","2026-01-02"`), '"30000","soon"'].join(
    '\n',
  ) + '\n';

const inDb = { QueryExecutionContext: { Database: 'crm' } };

describe('Athena emulator: the declared column types of a CSV table win over what DuckDB sniffs', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      'crm/signups.csv': SIGNUPS,
      'crm/late.csv': LATE,
      'crm/declared.csv': `${SIGNUPS}d@x.io,"",free\n`,
      'crm/declared.schema.json': JSON.stringify({
        columns: { EMAIL: 'string', signed_up_on: 'string', plan: 'varchar(2)' },
      }),
      'crm/strict.csv': '"id","amount"\n"1","2.50"\n"2","n/a"\n',
      'crm/strict.schema.json': JSON.stringify({ columns: { amount: 'DECIMAL(10,2)' } }),
      'crm/misnamed.csv': '"id"\n"1"\n',
      'crm/misnamed.schema.json': JSON.stringify({ columns: { idd: 'BIGINT' } }),
    });
  });
  afterAll(() => h.close());

  it('reads a column of mixed date formats, undeclared, as text (every value of the file fits the type it gets)', async () => {
    const { id, execution } = await runQuery(h.athena, {
      QueryString: 'SELECT email, signed_up_on FROM signups ORDER BY email',
      ...inDb,
    });
    expect(execution.Status?.StateChangeReason).toBeUndefined();
    expect(await resultFile(h.s3, execution)).toBe(
      '"email","signed_up_on"\n"a@x.io","2026-01-02"\n"b@x.io","01/02/2026"\n"c@x.io",\n',
    );
    const page = await h.athena.send(new GetQueryResultsCommand({ QueryExecutionId: id }));
    expect(page.ResultSet?.ResultSetMetadata?.ColumnInfo?.map((c) => c.Type)).toEqual(['varchar', 'varchar']);
  });

  it('reads a column whose one odd value is past the sniffed sample as text, not failing the query', async () => {
    const { id, execution } = await runQuery(h.athena, {
      QueryString: 'SELECT day FROM late WHERE id = 30000',
      ...inDb,
    });
    expect(execution.Status?.StateChangeReason).toBeUndefined();
    expect(await resultFile(h.s3, execution)).toBe('"day"\n"soon"\n');
    const page = await h.athena.send(new GetQueryResultsCommand({ QueryExecutionId: id }));
    expect(page.ResultSet?.ResultSetMetadata?.ColumnInfo?.[0]?.Type).toBe('varchar');
  });

  it("reads a declared column as its declared type: string as text, varchar(n) cut to n characters (Athena's types, by name)", async () => {
    const { execution } = await runQuery(h.athena, {
      QueryString: 'SELECT * FROM declared ORDER BY email',
      ...inDb,
    });
    expect(execution.Status?.StateChangeReason).toBeUndefined();
    expect(await resultFile(h.s3, execution)).toBe(
      '"email","signed_up_on","plan"\n"a@x.io","2026-01-02","pr"\n"b@x.io","01/02/2026","fr"\n"c@x.io",,"pr"\n"d@x.io","","fr"\n',
    );
  });

  it('fails a query reading a value that is not of its declared type with HIVE_BAD_DATA, as Athena does', async () => {
    const ok = await runQuery(h.athena, { QueryString: 'SELECT id FROM strict', ...inDb });
    expect(ok.execution.Status?.State).toBe('SUCCEEDED');
    const { execution } = await runQuery(h.athena, { QueryString: 'SELECT amount FROM strict', ...inDb });
    expect(execution.Status?.State).toBe('FAILED');
    expect(execution.Status?.StateChangeReason).toMatch(
      /^HIVE_BAD_DATA: CSV Error on Line: 3.*Error when converting column "amount"/,
    );
  });

  it('names a sidecar column that is not in the file, with the columns the file has', async () => {
    const { execution } = await runQuery(h.athena, { QueryString: 'SELECT * FROM misnamed', ...inDb });
    expect(execution.Status?.State).toBe('FAILED');
    expect(execution.Status?.StateChangeReason).toMatch(
      /misnamed\.schema\.json: column idd is not in the header of .*misnamed\.csv \(id\); name the file's columns/,
    );
  });
});
