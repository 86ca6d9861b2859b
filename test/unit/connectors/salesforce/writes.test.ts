import { queryAllRecords, type SalesforceConnector } from '../../../../lambdas/connectors/salesforce';
import { TransientError } from '../../../../lambdas/shared/errors';

/** A connector whose `request` answers the given query pages in turn, recording the paths asked. */
function pagesOf(pages: unknown[]): { sf: SalesforceConnector; paths: string[] } {
  const paths: string[] = [];
  const sf = {
    request: (_op: string, _method: string, path: string) => {
      paths.push(path);
      return Promise.resolve(pages.shift());
    },
  } as unknown as SalesforceConnector;
  return { sf, paths };
}

describe('queryAllRecords', () => {
  it('reads every page, following nextRecordsUrl under the versioned API base', async () => {
    const { sf, paths } = pagesOf([
      { done: false, nextRecordsUrl: '/services/data/v62.0/query/01gxx-2000', records: [{ Id: 'a' }] },
      { done: true, records: [{ Id: 'b' }] },
    ]);
    expect(await queryAllRecords(sf, 'SELECT Id FROM Lead')).toEqual([{ Id: 'a' }, { Id: 'b' }]);
    expect(paths).toEqual([`/query?q=${encodeURIComponent('SELECT Id FROM Lead')}`, '/query/01gxx-2000']);
  });

  it('reads through queryAll with includeDeleted, the next pages as nextRecordsUrl names them', async () => {
    const { sf, paths } = pagesOf([
      { done: false, nextRecordsUrl: '/services/data/v62.0/query/01gxx-2000', records: [{ Id: 'a' }] },
      { done: true, records: [{ Id: 'b', IsDeleted: true }] },
    ]);
    expect(await queryAllRecords(sf, 'SELECT Id FROM Lead', { includeDeleted: true })).toEqual([
      { Id: 'a' },
      { Id: 'b', IsDeleted: true },
    ]);
    expect(paths).toEqual([`/queryAll?q=${encodeURIComponent('SELECT Id FROM Lead')}`, '/query/01gxx-2000']);
  });

  it('fails, transiently, on a page that is not done but names no next page, instead of returning part', async () => {
    const { sf } = pagesOf([{ done: false, records: [{ Id: 'a' }] }]);
    const failure = await queryAllRecords(sf, 'SELECT Id FROM Lead').catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(TransientError);
    expect((failure as Error).message).toBe(
      'Salesforce query page 1 is not done but came without a nextRecordsUrl: the look-up cannot go on',
    );
  });
});
