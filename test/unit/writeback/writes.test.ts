import { ApiLimitExceededError } from '../../../lambdas/shared/errors';
import type { SalesforceConnector } from '../../../lambdas/connectors/salesforce';
import {
  isRefusalOfRecords,
  soqlInLists,
  writeCollections,
} from '../../../lambdas/connectors/salesforce/writes';

interface Call {
  operation: string;
  method: string;
  path: string;
  body: string;
}

/** A connector double: records each request and answers what `answer` makes of it. */
function fakeConnector(answer: (call: Call) => unknown): SalesforceConnector & { calls: Call[] } {
  const calls: Call[] = [];
  const fake = {
    apiVersion: '62.0',
    calls,
    redact: (text: string) => text,
    request: async (operation: string, method: string, path: string, body?: unknown) => {
      const call = { operation, method, path, body: String(body) };
      calls.push(call);
      return answer(call);
    },
  };
  return fake as unknown as SalesforceConnector & { calls: Call[] };
}

const records = (n: number): string[] =>
  Array.from({ length: n }, (_, i) => `{"attributes":{"type":"Lead"},"id":"00Q${i}","X":${i}}`);
const ok = (n: number, from = 0) =>
  Array.from({ length: n }, (_, i) => ({ id: `00Q${from + i}`, success: true, errors: [] }));

describe('writeCollections', () => {
  it('sends up to 200 records in one sObject Collections call with allOrNone false', async () => {
    const sf = fakeConnector(() => ok(200));
    const results = await writeCollections(sf, {
      object: 'Lead',
      operation: 'update',
      records: records(200),
    });
    expect(results).toHaveLength(200);
    expect(sf.calls).toHaveLength(1);
    expect(sf.calls[0]).toMatchObject({ method: 'PATCH', path: '/composite/sobjects' });
    const body = JSON.parse(sf.calls[0]?.body ?? '');
    expect(body.allOrNone).toBe(false);
    expect(body.records).toHaveLength(200);
  });

  it('sends 201 to 1,000 records as ONE Composite call of Collections subrequests of 200, results in order', async () => {
    const sf = fakeConnector((call) => {
      const body = JSON.parse(call.body);
      let from = 0;
      return {
        compositeResponse: body.compositeRequest.map(
          (sub: { referenceId: string; body: { records: unknown[] } }) => {
            const part = {
              referenceId: sub.referenceId,
              httpStatusCode: 200,
              body: ok(sub.body.records.length, from),
            };
            from += sub.body.records.length;
            return part;
          },
        ),
      };
    });
    const results = await writeCollections(sf, {
      object: 'Lead',
      operation: 'upsert',
      externalIdField: 'Ext__c',
      records: records(450),
    });
    expect(sf.calls).toHaveLength(1);
    expect(sf.calls[0]).toMatchObject({ method: 'POST', path: '/composite' });
    const body = JSON.parse(sf.calls[0]?.body ?? '');
    expect(body.compositeRequest.map((s: { body: { records: unknown[] } }) => s.body.records.length)).toEqual(
      [200, 200, 50],
    );
    expect(body.compositeRequest[0]).toMatchObject({
      method: 'PATCH',
      url: '/services/data/v62.0/composite/sobjects/Lead/Ext__c',
    });
    expect(results.map((r) => r.id)).toEqual(Array.from({ length: 450 }, (_, i) => `00Q${i}`));
  });

  it('refuses more than 1,000 records', async () => {
    const sf = fakeConnector(() => []);
    await expect(
      writeCollections(sf, { object: 'Lead', operation: 'insert', records: records(1001) }),
    ).rejects.toThrow('writeCollections takes at most 1000 records, got 1001');
    expect(sf.calls).toHaveLength(0);
  });

  it('answers for each record of a subrequest refused as a whole (4xx), and keeps the other subrequests’ results', async () => {
    const sf = fakeConnector(() => ({
      compositeResponse: [
        { referenceId: 'chunk0', httpStatusCode: 200, body: ok(200) },
        {
          referenceId: 'chunk1',
          httpStatusCode: 400,
          body: [{ errorCode: 'JSON_PARSER_ERROR', message: 'bad value' }],
        },
      ],
    }));
    const results = await writeCollections(sf, {
      object: 'Lead',
      operation: 'insert',
      records: records(400),
    });
    expect(results).toHaveLength(400);
    expect(results.slice(0, 200)).toEqual(ok(200));
    expect(results[200]).toEqual({
      id: null,
      success: false,
      errors: [
        {
          statusCode: 'JSON_PARSER_ERROR',
          message:
            'the Composite subrequest of this record (chunk1, 200 records) failed as a whole with HTTP 400: bad value',
          fields: [],
        },
      ],
    });
    expect(results.slice(200).every((r) => r === results[200])).toBe(true);
  });

  it('marks the records of a subrequest refused for a reason about the call (401, 403, 429) as unprocessed, not failed', async () => {
    const sf = fakeConnector(() => ({
      compositeResponse: [
        { referenceId: 'chunk0', httpStatusCode: 200, body: ok(200) },
        {
          referenceId: 'chunk1',
          httpStatusCode: 403,
          body: [{ errorCode: 'REQUEST_LIMIT_EXCEEDED', message: 'TotalRequests Limit exceeded.' }],
        },
      ],
    }));
    const results = await writeCollections(sf, {
      object: 'Lead',
      operation: 'insert',
      records: records(250),
    });
    expect(results.slice(200).every((r) => r.unprocessed === true && r.success === false)).toBe(true);
    expect(results.slice(0, 200)).toEqual(ok(200));
    // The error a whole call refused so throws: the daily allowance spent, not retried.
    expect(results[200]?.refusal).toBeInstanceOf(ApiLimitExceededError);
    expect(results[200]?.refusal?.message).toBe(
      "Salesforce Collections insert of Lead (Composite subrequest chunk1, 50 records) failed: REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded. (the org's daily API allowance is spent; it frees up over a rolling 24 hours, so the run is not retried)",
    );
  });

  it('marks the records of a subrequest that failed on Salesforce’s side (5xx) as unknown', async () => {
    const sf = fakeConnector(() => ({
      compositeResponse: [
        {
          referenceId: 'chunk0',
          httpStatusCode: 500,
          body: [{ errorCode: 'SERVER_ERROR', message: 'oops' }],
        },
        { referenceId: 'chunk1', httpStatusCode: 200, body: ok(50, 200) },
      ],
    }));
    const results = await writeCollections(sf, {
      object: 'Lead',
      operation: 'update',
      records: records(250),
    });
    expect(
      results.slice(0, 200).every((r) => r.unknown === true && r.errors[0]?.statusCode === 'SERVER_ERROR'),
    ).toBe(true);
    expect(results.slice(200)).toEqual(ok(50, 200));
  });

  it('fails when no response of a Composite answer carries a subrequest’s referenceId', async () => {
    const sf = fakeConnector(() => ({
      compositeResponse: [
        { referenceId: 'chunk1', httpStatusCode: 200, body: ok(50, 200) },
        { referenceId: 'chunk1', httpStatusCode: 200, body: ok(50, 200) },
      ],
    }));
    await expect(
      writeCollections(sf, { object: 'Lead', operation: 'update', records: records(250) }),
    ).rejects.toThrow(
      'Salesforce Composite update of Lead answered no response for subrequest chunk0 (it answered "chunk1", "chunk1")',
    );
  });

  it('fails when Salesforce answers a different number of results', async () => {
    const sf = fakeConnector(() => ok(3));
    await expect(
      writeCollections(sf, { object: 'Lead', operation: 'insert', records: records(4) }),
    ).rejects.toThrow('Salesforce Collections insert of Lead answered 3 results for 4 records');
  });
});

describe('soqlInLists', () => {
  const select = 'SELECT Id, External_Id__c FROM Lead WHERE External_Id__c IN ';
  const quoted = (v: string): string => `'${v}'`;

  it('puts at most 200 values in a list, each list with its values and their literals in order', () => {
    const values = Array.from({ length: 450 }, (_, i) => `k-${i}`);
    const lists = soqlInLists(select, values, quoted);
    expect(lists.map((l) => l.values.length)).toEqual([200, 200, 50]);
    expect(lists.flatMap((l) => l.values)).toEqual(values);
    for (const l of lists) expect(l.list).toBe(l.values.map(quoted).join(','));
  });

  it('starts a new list before the encoded query text would pass 8,000 characters', () => {
    // 97 spaces and 3 digits: 299 characters encoded with its quotes and comma (a space is %20, a
    // comma %2C), 26 of them after the 80 of the select.
    const values = Array.from({ length: 60 }, (_, i) => `${' '.repeat(97)}${String(i).padStart(3, '0')}`);
    const lists = soqlInLists(select, values, quoted);
    expect(lists.map((l) => l.values.length)).toEqual([26, 26, 8]);
    expect(lists.flatMap((l) => l.values)).toEqual(values);
    for (const l of lists) {
      expect(encodeURIComponent(`${select}(${l.list})`).length).toBeLessThanOrEqual(8_000);
      expect(l.list).toBe(l.values.map(quoted).join(','));
    }
  });

  it('keeps a value whose literal holds a comma whole, with the value it was made of', () => {
    const lists = soqlInLists(select, ['a,b', "c'd"], (v) => `'${v.replace(/'/g, "\\'")}'`);
    expect(lists).toEqual([{ values: ['a,b', "c'd"], list: "'a,b','c\\'d'" }]);
  });

  it('makes no list of no values', () => {
    expect(soqlInLists(select, [], quoted)).toEqual([]);
  });
});

describe('isRefusalOfRecords', () => {
  it('takes a 400 or 404 for a refusal of the records, any other 4xx for one of the call', () => {
    expect(isRefusalOfRecords(400, 'INVALID_FIELD')).toBe(true);
    expect(isRefusalOfRecords(400, 'JSON_PARSER_ERROR')).toBe(true);
    expect(isRefusalOfRecords(404, 'NOT_FOUND')).toBe(true);
    expect(isRefusalOfRecords(400, 'EXCEEDED_ID_LIMIT')).toBe(false);
    expect(isRefusalOfRecords(401, 'INVALID_SESSION_ID')).toBe(false);
    expect(isRefusalOfRecords(403, 'REQUEST_LIMIT_EXCEEDED')).toBe(false);
    expect(isRefusalOfRecords(413, 'REQUEST_ENTITY_TOO_LARGE')).toBe(false);
    expect(isRefusalOfRecords(429, 'TooManyRequests')).toBe(false);
    expect(isRefusalOfRecords(409, 'ERROR_HTTP_409')).toBe(false);
  });
});
