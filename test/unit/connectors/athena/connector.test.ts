import { Readable } from 'node:stream';
import type { GetQueryResultsCommand } from '@aws-sdk/client-athena';
import { type AthenaClient } from '@aws-sdk/client-athena';
import type { S3Client } from '@aws-sdk/client-s3';
import { TerminalError, TransientError } from '../../../../lambdas/shared/errors';
import { silentLogger } from '../../../../lambdas/shared/logging';
import {
  assertQuerySucceeded,
  createAthenaConnector,
  parseS3Url,
  positionsInValidatedQuery,
  queryWithoutTrailingText,
  resultColumnsQuery,
} from '../../../../lambdas/connectors/athena/connector';
import { clientRequestTokenFor } from '../../../../lambdas/connectors/athena/tokens';
import { classifyAthenaError } from '../../../../lambdas/connectors/athena/errors';

describe('resultColumnsQuery', () => {
  it('selects every column of the query as a subquery with LIMIT 0, without the ;, comments and blanks that end it', () => {
    expect(resultColumnsQuery('SELECT id, "a""b" FROM t; \n')).toBe(
      'SELECT * FROM (\nSELECT id, "a""b" FROM t\n) LIMIT 0',
    );
    expect(resultColumnsQuery('SELECT id FROM t -- the ids')).toBe(
      'SELECT * FROM (\nSELECT id FROM t\n) LIMIT 0',
    );
  });
});

describe('queryWithoutTrailingText', () => {
  it('cuts the query after its last token but a ;, whatever blanks, comments and semicolons follow', () => {
    for (const ending of [
      '',
      ';',
      '; -- c',
      ' -- c\n;',
      ';\n\n  \n',
      '; /* c */',
      ' /* a */ ; -- b\n',
      ';;',
      '/* unclosed',
    ]) {
      expect(queryWithoutTrailingText(`SELECT id FROM t${ending}`)).toBe('SELECT id FROM t');
    }
  });

  it('keeps comments inside the query, and what reads like a comment or a ; inside a string or a quoted name', () => {
    expect(queryWithoutTrailingText('SELECT id -- the id\nFROM t /* all */ WHERE 1 = 1 ; -- c')).toBe(
      'SELECT id -- the id\nFROM t /* all */ WHERE 1 = 1',
    );
    expect(queryWithoutTrailingText("SELECT 'it''s -- not; a /* comment' -- a comment")).toBe(
      "SELECT 'it''s -- not; a /* comment'",
    );
    expect(queryWithoutTrailingText('SELECT x AS "a;b -- c" ;')).toBe('SELECT x AS "a;b -- c"');
  });
});

describe('positionsInValidatedQuery', () => {
  it('counts the position of the error in the query as written, one line up', () => {
    expect(
      positionsInValidatedQuery(
        "Athena query q-1 failed: TABLE_NOT_FOUND: line 2:15: Table 'awsdatacatalog.marketing.custmers' does not exist",
      ),
    ).toBe(
      "Athena query q-1 failed: TABLE_NOT_FOUND: line 1:15: Table 'awsdatacatalog.marketing.custmers' does not exist",
    );
  });

  it('leaves the text Athena quotes from the query as it is, positions and all', () => {
    // A column or a literal of the query that reads like a position is the query's text, not one.
    expect(
      positionsInValidatedQuery(
        `Athena query q-2 failed: COLUMN_NOT_FOUND: line 3:8: Column 'line 3:4' cannot be resolved`,
      ),
    ).toBe(`Athena query q-2 failed: COLUMN_NOT_FOUND: line 2:8: Column 'line 3:4' cannot be resolved`);
    expect(
      positionsInValidatedQuery(
        `StartQueryExecution failed: InvalidRequestException (MALFORMED_QUERY): line 2:23: mismatched input 'FORM'. Expecting: 'line 9:9'`,
      ),
    ).toBe(
      `StartQueryExecution failed: InvalidRequestException (MALFORMED_QUERY): line 1:23: mismatched input 'FORM'. Expecting: 'line 9:9'`,
    );
  });
});

describe('clientRequestTokenFor', () => {
  it('is stable per run and task, distinct otherwise, and within Athena’s length bounds', () => {
    const a = clientRequestTokenFor('run-1', 'athena_customers');
    expect(a).toBe(clientRequestTokenFor('run-1', 'athena_customers'));
    expect(a).not.toBe(clientRequestTokenFor('run-2', 'athena_customers'));
    expect(a).not.toBe(clientRequestTokenFor('run-1', 'other'));
    expect(a.length).toBeGreaterThanOrEqual(32);
    expect(a.length).toBeLessThanOrEqual(128);
  });

  it('gives each rerun generation its own stable token, generation 0 being the plain one', () => {
    const a = clientRequestTokenFor('run-1', 'athena_customers');
    expect(clientRequestTokenFor('run-1', 'athena_customers', 0)).toBe(a);
    const rerun = clientRequestTokenFor('run-1', 'athena_customers', 1);
    expect(rerun).not.toBe(a);
    expect(rerun).toBe(clientRequestTokenFor('run-1', 'athena_customers', 1));
    expect(rerun).not.toBe(clientRequestTokenFor('run-1', 'athena_customers', 2));
  });
});

describe('assertQuerySucceeded', () => {
  it('passes SUCCEEDED and explains every other state', () => {
    expect(() =>
      assertQuerySucceeded({ QueryExecutionId: 'q', Status: { State: 'SUCCEEDED' } }),
    ).not.toThrow();
    const failed = {
      QueryExecutionId: 'q1',
      Status: { State: 'FAILED' as const, StateChangeReason: 'TABLE_NOT_FOUND: x' },
    };
    expect(() => assertQuerySucceeded(failed)).toThrow(
      new TerminalError('Athena query q1 failed: TABLE_NOT_FOUND: x'),
    );
    expect(() =>
      assertQuerySucceeded({ ...failed, Status: { ...failed.Status, AthenaError: { Retryable: true } } }),
    ).toThrow(TransientError);
    expect(() => assertQuerySucceeded({ QueryExecutionId: 'q', Status: { State: 'CANCELLED' } })).toThrow(
      TerminalError,
    );
    expect(() => assertQuerySucceeded({ QueryExecutionId: 'q', Status: { State: 'RUNNING' } })).toThrow(
      TransientError,
    );
  });
});

describe('classifyAthenaError', () => {
  it.each([
    ['TooManyRequestsException', 400, TransientError],
    ['ThrottlingException', 400, TransientError],
    ['InternalServerException', 500, TransientError],
    ['SlowDown', 503, TransientError],
    ['InvalidRequestException', 400, TerminalError],
    ['NoSuchKey', 404, TerminalError],
  ])('%s → %p', (name, status, Kind) => {
    const err = Object.assign(new Error('m'), { name, $metadata: { httpStatusCode: status } });
    expect(classifyAthenaError(err, 'Athena X')).toBeInstanceOf(Kind);
  });

  it('names the Athena error code', () => {
    const err = Object.assign(new Error('line 1:1: mismatched input'), {
      name: 'InvalidRequestException',
      AthenaErrorCode: 'MALFORMED_QUERY',
    });
    expect(classifyAthenaError(err, 'Athena StartQueryExecution').message).toBe(
      'Athena StartQueryExecution failed: InvalidRequestException (MALFORMED_QUERY): line 1:1: mismatched input',
    );
  });
});

describe('parseS3Url', () => {
  it('splits bucket and key and rejects anything else', () => {
    expect(parseS3Url('s3://b/p/q.csv')).toEqual({ bucket: 'b', key: 'p/q.csv' });
    expect(() => parseS3Url('https://b/q.csv')).toThrow('Not an S3 object URL');
  });
});

describe('streamResultsViaApi', () => {
  it('pages with NextToken, drops the header row and writes NULL and "" apart', async () => {
    const send = jest
      .fn()
      .mockResolvedValueOnce({
        ResultSet: {
          Rows: [
            { Data: [{ VarCharValue: 'email' }, { VarCharValue: 'ltv' }] },
            { Data: [{ VarCharValue: 'a"b' }, {}] },
          ],
        },
        NextToken: 't1',
      })
      .mockResolvedValueOnce({
        ResultSet: { Rows: [{ Data: [{ VarCharValue: '' }, { VarCharValue: '1.5' }] }] },
      });
    const athena = { send } as unknown as AthenaClient;
    const connector = createAthenaConnector({
      athena,
      s3: {} as S3Client,
      logger: silentLogger,
      workgroup: 'primary',
      database: 'marketing',
    });
    const text = (
      await Readable.from(
        connector.streamResultsViaApi('q', [
          { Name: 'email', Type: 'varchar' },
          { Name: 'ltv', Type: 'double' },
        ]),
      ).toArray()
    )
      .map(String)
      .join('');
    expect(text).toBe('"email","ltv"\n"a""b",\n"","1.5"\n');
    expect((send.mock.calls[1][0] as GetQueryResultsCommand).input).toEqual({
      QueryExecutionId: 'q',
      MaxResults: 1000,
      NextToken: 't1',
    });
    expect(connector.apiCalls).toBe(2);
  });
});

describe('describeResult', () => {
  const connectorWith = (send: jest.Mock): ReturnType<typeof createAthenaConnector> =>
    createAthenaConnector({
      athena: { send } as unknown as AthenaClient,
      s3: {} as S3Client,
      logger: silentLogger,
      workgroup: 'primary',
      database: 'marketing',
    });

  it('refuses a result Athena did not write as a CSV file with a header, before reading it', async () => {
    // SHOW and DESCRIBE (and other DDL) write `<id>.txt`: tab-separated, no header, nothing
    // quoted. Read as the CSV of a SELECT, its first row would be taken for the header and lost.
    const send = jest.fn();
    const connector = connectorWith(send);
    const err = await connector
      .describeResult({
        QueryExecutionId: 'q-show',
        StatementType: 'UTILITY',
        ResultConfiguration: { OutputLocation: 's3://results/athena/q-show.txt' },
        Status: { State: 'SUCCEEDED' },
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TerminalError);
    expect((err as Error).message).toBe(
      'Athena query q-show wrote its result as s3://results/athena/q-show.txt, not as the CSV file of a SELECT (its StatementType is UTILITY): an Athena extract task loads the rows of a query (SELECT, WITH … SELECT, VALUES); SHOW, DESCRIBE and other DDL write a text file without a header',
    );
    // The same from the `.sync` output, which carries no StatementType.
    const sync = await connector
      .describeResult({
        QueryExecutionId: 'q-desc',
        ResultConfiguration: { OutputLocation: 's3://results/athena/q-desc.txt' },
        Status: { State: 'SUCCEEDED' },
      })
      .catch((e: unknown) => e);
    expect((sync as Error).message).toMatch(
      /^Athena query q-desc wrote its result as s3:\/\/results\/athena\/q-desc\.txt, not as the CSV file of a SELECT: /,
    );
    expect(send).not.toHaveBeenCalled();
  });

  it('reads the columns of a SELECT with one GetQueryResults call', async () => {
    const columns = [{ Name: 'email', Type: 'varchar' }];
    const send = jest.fn().mockResolvedValue({ ResultSet: { ResultSetMetadata: { ColumnInfo: columns } } });
    const described = await connectorWith(send).describeResult({
      QueryExecutionId: 'q',
      StatementType: 'DML',
      ResultConfiguration: { OutputLocation: 's3://results/athena/q.csv' },
      Status: { State: 'SUCCEEDED' },
    });
    expect(described).toEqual({
      queryExecutionId: 'q',
      outputLocation: 's3://results/athena/q.csv',
      columns,
    });
    expect(send).toHaveBeenCalledTimes(1);
  });
});

describe('streamResultFile', () => {
  /** A body that sends `bytes`, then fails as a dropped connection does. */
  const dropping = (bytes: string): Readable =>
    new Readable({
      read() {
        this.push(Buffer.from(bytes));
        this.destroy(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
      },
    });

  it('refuses a resumed read that S3 answered from another byte than asked, instead of appending it', async () => {
    const file = '"email"\n"a@x.test"\n"b@x.test"\n';
    const send = jest
      .fn()
      .mockResolvedValueOnce({ Body: dropping(file.slice(0, 12)), ContentLength: file.length })
      // The whole object again (200, no Content-Range): the Range was not honoured.
      .mockResolvedValueOnce({ Body: Readable.from([Buffer.from(file)]), ContentLength: file.length });
    const connector = createAthenaConnector({
      athena: {} as AthenaClient,
      s3: { send } as unknown as S3Client,
      logger: silentLogger,
      workgroup: 'primary',
      database: 'marketing',
    });
    const err = await Readable.from(connector.streamResultFile('s3://results/athena/q.csv'))
      .toArray()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TerminalError);
    expect((err as Error).message).toBe(
      'S3 GetObject s3://results/athena/q.csv answered the read resumed at byte 12 (Range: bytes=12-) without Content-Range "bytes 12-…": appending it would repeat or skip part of the result file',
    );
    expect((send.mock.calls[1][0] as { input: unknown }).input).toEqual({
      Bucket: 'results',
      Key: 'athena/q.csv',
      Range: 'bytes=12-',
    });
  });

  it('appends a resumed read that starts at the byte asked', async () => {
    const file = '"email"\n"a@x.test"\n"b@x.test"\n';
    const send = jest
      .fn()
      .mockResolvedValueOnce({ Body: dropping(file.slice(0, 12)), ContentLength: file.length })
      .mockResolvedValueOnce({
        Body: Readable.from([Buffer.from(file.slice(12))]),
        ContentRange: `bytes 12-${file.length - 1}/${file.length}`,
      });
    const connector = createAthenaConnector({
      athena: {} as AthenaClient,
      s3: { send } as unknown as S3Client,
      logger: silentLogger,
      workgroup: 'primary',
      database: 'marketing',
    });
    const chunks = await Readable.from(connector.streamResultFile('s3://results/athena/q.csv')).toArray();
    expect(chunks.map(String).join('')).toBe(file);
    expect(connector.s3Reads).toBe(2);
  });
});
