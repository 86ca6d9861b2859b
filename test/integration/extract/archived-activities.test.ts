/**
 * Archived activities: Salesforce archives Task and Event records a year after their date, and
 * `query` then leaves them out (only `queryAll` returns them). A task with `deletes: 'remove'`
 * reads its live rows in full, and removes the rows the read did not return: through `query` it
 * never loaded the archived activities, and removed those it had loaded once they were archived.
 * It now reads them through `queryAll … AND IsDeleted = false`, over REST and in Bulk jobs.
 */
import { runExtract } from '../../../lambdas/core';
import { startExtractHarness, type ExtractHarness } from './harness';

const T0 = Date.UTC(2024, 0, 1);
const at = (minutes: number): string => new Date(T0 + minutes * 60_000).toISOString();

const TASKS = 6;

/** Each activity object, the field besides Subject its rows carry, and that field's values. */
const ACTIVITIES = [
  { object: 'Task', field: 'Status', value: (i: number) => (i % 2 === 0 ? 'Completed' : 'Not Started') },
  { object: 'Event', field: 'Location', value: (i: number) => `Room ${i}` },
] as const;

describe.each(ACTIVITIES)(
  'Salesforce extract of activities Salesforce archived ($object)',
  ({ object, field, value }) => {
    const seed = Array.from({ length: TASKS }, (_, i) => ({
      Subject: `Call ${i}`,
      [field]: value(i),
      SystemModstamp: at(i),
    }));
    const FIELDS = ['Id', 'Subject', field, 'IsArchived'];
    const table = `sf_${object.toLowerCase()}`;
    let h: ExtractHarness;
    const config = () =>
      h.config([
        { from: 'salesforce', object, fields: FIELDS, table, deletes: 'remove' },
        {
          from: 'salesforce',
          object,
          name: `${object}Bulk`,
          fields: FIELDS,
          table: `${table}_bulk`,
          deletes: 'remove',
          bulkThreshold: 1,
        },
        { from: 'salesforce', object, name: `${object}Flag`, fields: FIELDS, table: `${table}_flag` },
      ]);
    const lastSeq = (): number => h.sf.calls.all().at(-1)?.seq ?? 0;
    const restOps = (since: number): string[] =>
      h.sf.calls
        .all()
        .filter((c) => c.seq > since && c.operation.startsWith('query'))
        .map((c) => c.operation);
    const subjects = async (from: string) =>
      (
        await h.rows<{ Subject: string; IsArchived: boolean; IsDeleted: boolean }>(
          `SELECT "Subject", "IsArchived", "IsDeleted" FROM ${from} ORDER BY "Subject"`,
        )
      ).map((r) => `${r.Subject}${r.IsArchived ? ' (archived)' : ''}${r.IsDeleted ? ' (deleted)' : ''}`);
    const idOf = (subject: string): string =>
      h.sf.store.query(`SELECT Id FROM ${object} WHERE Subject = '${subject}'`, { includeDeleted: true })
        .records[0]?.Id as string;

    beforeAll(async () => {
      h = await startExtractHarness({ seed: { [object]: seed } });
      // Two activities archived before the first read: `query` no longer returns them.
      h.sf.store.archive(object, [idOf('Call 0'), idOf('Call 1')]);
      expect(h.sf.store.query(`SELECT Id FROM ${object}`).records).toHaveLength(TASKS - 2);
    });
    afterAll(() => h.close());

    it('loads the archived activities with the live ones on a full read that removes deletes, and keeps them', async () => {
      const since = lastSeq();
      const first = await runExtract({ input: {} }, h.deps(config()), {
        salesforce: { bulkResultPageRecords: 4 },
      });
      for (const task of [object, `${object}Bulk`, `${object}Flag`])
        expect(first.salesforce[task]).toMatchObject({ status: 'loaded', full: true, rows: TASKS });
      expect(first.salesforce[`${object}Bulk`]).toMatchObject({ api: 'bulk' });
      const all = ['Call 0 (archived)', 'Call 1 (archived)', 'Call 2', 'Call 3', 'Call 4', 'Call 5'];
      for (const t of [table, `${table}_bulk`, `${table}_flag`]) expect(await subjects(t)).toEqual(all);
      // Every read and COUNT() of the first run went through queryAll: none through query.
      expect(restOps(since).filter((op) => op === 'query')).toEqual([]);
      const jobs = await h.rows<{ soql: string; include_deleted: boolean }>(
        'SELECT soql, include_deleted FROM roundtrip.extract_jobs WHERE run_id = $1',
        [first.prepare.runId],
      );
      expect(jobs).toEqual([
        {
          soql: expect.stringMatching(new RegExp(` FROM ${object} WHERE IsDeleted = false$`)),
          include_deleted: true,
        },
      ]);

      // Salesforce archives another and one is deleted; the next full read keeps every archived
      // activity (the newly archived one flagged so) and removes only the deleted one.
      h.sf.store.archive(object, [idOf('Call 2')]);
      h.sf.store.delete([idOf('Call 3')]);
      const full = await runExtract({ input: { full: true } }, h.deps(config()), {
        salesforce: { bulkResultPageRecords: 4 },
      });
      for (const task of [object, `${object}Bulk`])
        expect(full.salesforce[task]).toMatchObject({ rows: TASKS - 1, deleted: 1 });
      const kept = ['Call 0 (archived)', 'Call 1 (archived)', 'Call 2 (archived)', 'Call 4', 'Call 5'];
      expect(await subjects(table)).toEqual(kept);
      expect(await subjects(`${table}_bulk`)).toEqual(kept);
      expect(await subjects(`${table}_flag`)).toEqual([
        'Call 0 (archived)',
        'Call 1 (archived)',
        'Call 2 (archived)',
        'Call 3 (deleted)',
        'Call 4',
        'Call 5',
      ]);
    });
  },
);
