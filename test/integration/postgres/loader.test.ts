/**
 * The loader end to end against the real server: CSV → COPY into UNLOGGED staging → merge or
 * swap into the target → watermark, in one transaction, as the extract steps use it.
 */
import { Readable } from 'node:stream';
import type { Pool, PoolClient } from 'pg';
import { TerminalError, TransientError } from '../../../lambdas/shared/errors';
import { copyIntoStaging, dropStagingTable } from '../../../lambdas/connectors/postgres/copy';
import { ensureTable } from '../../../lambdas/connectors/postgres/ddl';
import {
  mergeStaging,
  swapInTable,
  type DeleteMode,
  type StagedKeys,
} from '../../../lambdas/connectors/postgres/merge';
import { migrate } from '../../../lambdas/connectors/postgres/migrations';
import { createPool, withClient, withTransaction } from '../../../lambdas/connectors/postgres/pool';
import {
  pgColumnForAthenaColumn,
  pgColumnForSalesforceField,
  type PgColumn,
} from '../../../lambdas/connectors/postgres/types';
import { advanceWatermark, readWatermark } from '../../../lambdas/connectors/postgres/watermark';
import { createTestDatabase, type TestDatabase } from '../../support/database';

/** For `.then(notExpected, …)`: a promise that should have rejected. */
const notExpected = (): Error => {
  throw new Error('expected a rejection, but the promise resolved');
};

/** One CSV field the way Athena writes it: NULL unquoted and empty, everything else quoted. */
function field(value: string | null): string {
  return value === null ? '' : `"${value.replace(/"/g, '""')}"`;
}

function csv(header: readonly string[], rows: readonly (readonly (string | null)[])[]): string {
  return [header, ...rows].map((r) => r.map(field).join(',') + '\n').join('');
}

/** A stream that hands the bytes over in small pieces, splitting multi-byte characters. */
function chunked(text: string, size = 7): Readable {
  const bytes = Buffer.from(text, 'utf8');
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) parts.push(bytes.subarray(i, i + size));
  return Readable.from(parts);
}

const LEAD_COLUMNS: PgColumn[] = [
  pgColumnForSalesforceField({ name: 'Id', type: 'id', nillable: false }),
  pgColumnForSalesforceField({ name: 'Company', type: 'string', length: 255 }),
  pgColumnForSalesforceField({ name: 'AnnualRevenue', type: 'currency', precision: 38, scale: 9 }),
  pgColumnForSalesforceField({ name: 'NumberOfEmployees', type: 'int', digits: 18 }),
  pgColumnForSalesforceField({ name: 'SystemModstamp', type: 'datetime' }),
  pgColumnForSalesforceField({ name: 'Address', type: 'address' }),
  pgColumnForSalesforceField({ name: 'IsDeleted', type: 'boolean' }),
];
const HEADER = LEAD_COLUMNS.map((c) => c.name);

interface LoadOptions {
  table: string;
  runId: string;
  text: string | Readable;
  deletes?: DeleteMode;
  watermark?: string;
  stagedKeys?: StagedKeys;
}

async function loadLeads(pool: Pool, o: LoadOptions) {
  return withTransaction(pool, async (client) => {
    await ensureTable(client, {
      schema: 'public',
      table: o.table,
      columns: LEAD_COLUMNS,
      primaryKey: ['Id'],
    });
    const copied = await copyIntoStaging(client, {
      schema: 'public',
      target: o.table,
      runId: o.runId,
      columns: LEAD_COLUMNS,
      source: typeof o.text === 'string' ? chunked(o.text) : o.text,
      format: 'csv',
      header: 'match',
    });
    const merged = await mergeStaging(client, {
      schema: 'public',
      target: o.table,
      staging: copied.staging,
      columns: LEAD_COLUMNS,
      key: ['Id'],
      ...(o.deletes ? { deletes: o.deletes } : {}),
      ...(o.stagedKeys ? { stagedKeys: o.stagedKeys } : {}),
    });
    await advanceWatermark(client, o.table, {
      watermark: o.watermark ?? null,
      watermarkId: 'x',
      runId: o.runId,
      rows: copied.rows,
    });
    await dropStagingTable(client, 'public', copied.staging);
    return { copied, merged };
  });
}

async function tableRows(pool: Pool, table: string): Promise<Record<string, string | null>[]> {
  const client = await pool.connect();
  try {
    await client.query(`SET TIME ZONE 'UTC'`);
    const { rows } = await client.query<Record<string, string | null>>(
      `SELECT "Id", "Company", "AnnualRevenue"::text AS "AnnualRevenue", "NumberOfEmployees"::text AS "NumberOfEmployees",
              "SystemModstamp"::text AS "SystemModstamp", "Address"::text AS "Address", "IsDeleted"::text AS "IsDeleted"
         FROM public."${table}" ORDER BY "Id"`,
    );
    return rows;
  } finally {
    client.release();
  }
}

async function stagingTables(pool: Pool): Promise<string[]> {
  const { rows } = await pool.query<{ relname: string }>(
    `SELECT relname FROM pg_class WHERE relname LIKE '%\\_\\_staging\\_%' ORDER BY 1`,
  );
  return rows.map((r) => r.relname);
}

describe('the loader (copyIntoStaging, mergeStaging, swapInTable, watermarks)', () => {
  let db: TestDatabase;
  let pool: Pool;

  beforeAll(async () => {
    db = await createTestDatabase();
    pool = createPool({ url: db.url }, { ssl: { mode: 'disable' }, max: 4 });
    await migrate(pool);
  });
  afterAll(async () => {
    await pool.end();
    await db.drop();
  });

  it('carries hard values through CSV, COPY and merge intact', async () => {
    const hard: (string | null)[][] = [
      ['00Q000000000001AAA', '日本語 – emoji 🚀 Ünïcödé', '12345678901234567890123456789.123456789', '9223372036854775807', '2024-05-20T20:49:32.000+0000', '{"city": "Tōkyō, \\"JP\\"", "lines": ["a,b", "c\\nd"]}', 'false'],
      ['00Q000000000002AAA', 'He said "hi", then left', '-0.000000001', '-9223372036854775808', '2024-05-20 23:49:32.123+09:00', null, 'false'],
      ['00Q000000000003AAA', 'line1\nline2\r\nline3,with comma', null, null, '2024-01-01T00:00:00Z', '{}', 'false'],
      ['00Q000000000004AAA', '', '0', '0', null, null, 'true'],
      ['00Q000000000005AAA', null, '1E+3', '42', '1999-12-31T23:59:59.999-08:00', 'null', null],
      ['00Q000000000006AAA', 'C:\\path\\N and \\N', '3.14', '7', '2024-05-20T20:49:32+05:30', '[1, "two"]', 'false'],
    ]; // prettier-ignore
    const { copied, merged } = await loadLeads(pool, {
      table: 'sf_lead_hard',
      runId: 'run-hard',
      text: csv(HEADER, hard),
    });
    expect(copied.rows).toBe(6);
    expect(merged).toEqual({ staged: 6, inserted: 6, updated: 0, unchanged: 0, deleted: 0 });
    expect(await tableRows(pool, 'sf_lead_hard')).toEqual([
      { Id: '00Q000000000001AAA', Company: '日本語 – emoji 🚀 Ünïcödé', AnnualRevenue: '12345678901234567890123456789.123456789', NumberOfEmployees: '9223372036854775807', SystemModstamp: '2024-05-20 20:49:32+00', Address: '{"city": "Tōkyō, \\"JP\\"", "lines": ["a,b", "c\\nd"]}', IsDeleted: 'false' },
      { Id: '00Q000000000002AAA', Company: 'He said "hi", then left', AnnualRevenue: '-0.000000001', NumberOfEmployees: '-9223372036854775808', SystemModstamp: '2024-05-20 14:49:32.123+00', Address: null, IsDeleted: 'false' },
      { Id: '00Q000000000003AAA', Company: 'line1\nline2\r\nline3,with comma', AnnualRevenue: null, NumberOfEmployees: null, SystemModstamp: '2024-01-01 00:00:00+00', Address: '{}', IsDeleted: 'false' },
      { Id: '00Q000000000004AAA', Company: '', AnnualRevenue: '0', NumberOfEmployees: '0', SystemModstamp: null, Address: null, IsDeleted: 'true' },
      { Id: '00Q000000000005AAA', Company: null, AnnualRevenue: '1000', NumberOfEmployees: '42', SystemModstamp: '2000-01-01 07:59:59.999+00', Address: 'null', IsDeleted: null },
      { Id: '00Q000000000006AAA', Company: 'C:\\path\\N and \\N', AnnualRevenue: '3.14', NumberOfEmployees: '7', SystemModstamp: '2024-05-20 15:19:32+00', Address: '[1, "two"]', IsDeleted: 'false' },
    ]); // prettier-ignore
    expect(await stagingTables(pool)).toEqual([]);
  });

  it('merges: inserts new keys, updates changed rows only, last duplicate in the file wins', async () => {
    const row = (id: string, company: string, revenue = '1') => [
      id,
      company,
      revenue,
      '1',
      '2024-05-20T00:00:00Z',
      null,
      'false',
    ];
    await loadLeads(pool, {
      table: 'sf_lead_merge',
      runId: 'm1',
      text: csv(HEADER, [row('A', 'alpha'), row('B', 'beta'), row('C', 'gamma')]),
    });
    const { merged } = await loadLeads(pool, {
      table: 'sf_lead_merge',
      runId: 'm2',
      text: csv(HEADER, [
        row('A', 'alpha'), // unchanged
        row('B', 'beta v1'),
        row('D', 'delta'),
        row('B', 'beta v2'), // a later duplicate of B: this one wins
      ]),
    });
    expect(merged).toEqual({ staged: 3, inserted: 1, updated: 1, unchanged: 1, deleted: 0 });
    const rows = await tableRows(pool, 'sf_lead_merge');
    expect(rows.map((r) => [r.Id, r.Company])).toEqual([
      ['A', 'alpha'],
      ['B', 'beta v2'],
      ['C', 'gamma'],
      ['D', 'delta'],
    ]);
  });

  it('merges keys known to be unique without de-duplicating (stagedKeys: unique), with the same outcome', async () => {
    const row = (id: string, company: string) => [
      id,
      company,
      '1',
      '1',
      '2024-05-20T00:00:00Z',
      null,
      'false',
    ];
    await loadLeads(pool, {
      table: 'sf_lead_unique',
      runId: 'u1',
      text: csv(HEADER, [row('A', 'alpha'), row('B', 'beta'), row('C', 'gamma')]),
      stagedKeys: 'unique',
    });
    const { merged } = await loadLeads(pool, {
      table: 'sf_lead_unique',
      runId: 'u2',
      text: csv(HEADER, [row('A', 'alpha'), row('B', 'beta v2'), row('D', 'delta')]),
      stagedKeys: 'unique',
    });
    expect(merged).toEqual({ staged: 3, inserted: 1, updated: 1, unchanged: 1, deleted: 0 });
    expect((await tableRows(pool, 'sf_lead_unique')).map((r) => [r.Id, r.Company])).toEqual([
      ['A', 'alpha'],
      ['B', 'beta v2'],
      ['C', 'gamma'],
      ['D', 'delta'],
    ]);
  });

  it('refuses a key staged twice under stagedKeys: unique, naming it, and rolls the load back', async () => {
    const row = (id: string, company: string) => [
      id,
      company,
      '1',
      '1',
      '2024-05-20T00:00:00Z',
      null,
      'false',
    ];
    await loadLeads(pool, {
      table: 'sf_lead_dup',
      runId: 'dup1',
      text: csv(HEADER, [row('A', 'alpha')]),
      watermark: '2024-05-20T00:00:00Z',
    });
    for (const rows of [
      [row('A', 'alpha v2'), row('A', 'alpha v3')], // an existing key changed twice
      [row('N', 'new'), row('N', 'new again')], // a new key inserted twice
    ]) {
      const error = (await loadLeads(pool, {
        table: 'sf_lead_dup',
        runId: 'dup2',
        text: csv(HEADER, rows),
        stagedKeys: 'unique',
        watermark: '2024-06-01T00:00:00Z',
      }).then(notExpected, (err: unknown) => err)) as Error;
      expect(error).toBeInstanceOf(TerminalError);
      expect(error.message).toContain('Merge into "public"."sf_lead_dup": staging table');
      expect(error.message).toContain(
        "holds a key (Id) more than once, though the merge was told its keys are unique (stagedKeys: 'unique')",
      );
      expect(error.message).toContain('ON CONFLICT DO UPDATE command cannot affect row a second time');
    }
    expect((await tableRows(pool, 'sf_lead_dup')).map((r) => [r.Id, r.Company])).toEqual([['A', 'alpha']]);
    const mark = await withClient(pool, (client) => readWatermark(client, 'sf_lead_dup'));
    expect(mark?.watermark?.toISOString()).toBe('2024-05-20T00:00:00.000Z');
    expect(await stagingTables(pool)).toEqual([]);
  });

  it.each(['may-repeat', 'unique'] as const)(
    'applies source deletes by removing rows, or by keeping them flagged (stagedKeys: %s)',
    async (stagedKeys) => {
      const row = (id: string, deleted: 'true' | 'false') => [
        id,
        'co',
        '1',
        '1',
        '2024-05-20T00:00:00Z',
        null,
        deleted,
      ];
      for (const mode of ['remove', 'flag'] as const) {
        const table = `sf_lead_delete_${mode}_${stagedKeys.replace('-', '_')}`;
        await loadLeads(pool, {
          table,
          runId: 'd1',
          text: csv(HEADER, [row('A', 'false'), row('B', 'false')]),
        });
        const { merged } = await loadLeads(pool, {
          table,
          runId: 'd2',
          text: csv(HEADER, [row('A', 'true'), row('Z', 'true'), row('C', 'false')]),
          deletes: { mode, flagColumn: 'IsDeleted' },
          stagedKeys,
        });
        const rows = (await tableRows(pool, table)).map((r) => [r.Id, r.IsDeleted]);
        if (mode === 'remove') {
          // Z was never loaded: nothing to delete, and it is not inserted either.
          expect(merged).toEqual({ staged: 3, inserted: 1, updated: 0, unchanged: 0, deleted: 1 });
          expect(rows).toEqual([
            ['B', 'false'],
            ['C', 'false'],
          ]);
        } else {
          expect(merged).toEqual({ staged: 3, inserted: 2, updated: 1, unchanged: 0, deleted: 2 });
          expect(rows).toEqual([
            ['A', 'true'],
            ['B', 'false'],
            ['C', 'false'],
            ['Z', 'true'],
          ]);
        }
      }
    },
  );

  it('leaves target, watermark and staging as they were when the source fails in the middle of COPY', async () => {
    const table = 'sf_lead_crash';
    await loadLeads(pool, {
      table,
      runId: 'c1',
      text: csv(HEADER, [['A', 'kept', '1', '1', '2024-05-20T00:00:00Z', null, 'false']]),
      watermark: '2024-05-20T00:00:00Z',
    });
    const before = {
      rows: await tableRows(pool, table),
      watermark: await withClient(pool, (c) => readWatermark(c, table)),
    };

    // Thousands of good rows reach the server, then the source dies (a dropped S3 or Salesforce stream).
    async function* failing(): AsyncGenerator<Buffer> {
      yield Buffer.from(csv(HEADER, []));
      for (let batch = 0; batch < 20; batch++) {
        const rows = Array.from({ length: 500 }, (_, i) => [
          `N${batch}-${i}`,
          'new',
          '2',
          '2',
          '2024-06-01T00:00:00Z',
          null,
          'false',
        ]);
        yield Buffer.from(csv([], rows).replace(/^\n/, ''));
      }
      throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    }
    const err = await loadLeads(pool, {
      table,
      runId: 'c2',
      text: Readable.from(failing()),
      watermark: '2024-06-01T00:00:00Z',
    }).then(notExpected, (e: unknown) => e as Error);
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toContain('read ECONNRESET');

    expect(await tableRows(pool, table)).toEqual(before.rows);
    expect(await withClient(pool, (c) => readWatermark(c, table))).toEqual(before.watermark);
    expect(await stagingTables(pool)).toEqual([]);
  });

  it('reports bad data with the COPY line and column, and rolls back', async () => {
    const table = 'sf_lead_baddata';
    const err = await loadLeads(pool, {
      table,
      runId: 'b1',
      text: csv(HEADER, [
        ['A', 'ok', '1', '1', null, null, 'false'],
        ['B', 'bad', '1', 'many', null, null, 'false'],
      ]),
    }).then(notExpected, (e: unknown) => e as Error);
    expect(err).toBeInstanceOf(TerminalError);
    expect(err.message).toContain('invalid input syntax for type bigint: "many"');
    expect(err.message).toContain('line 3, column NumberOfEmployees');
    const { rows } = await pool.query(`SELECT to_regclass('public.sf_lead_baddata') AS t`);
    expect(rows[0]).toEqual({ t: null });
  });

  it('refuses a CSV whose header does not match the columns (header: match)', async () => {
    const err = await loadLeads(pool, {
      table: 'sf_lead_header',
      runId: 'h1',
      text: csv(['Id', 'Company', 'Oops', 'NumberOfEmployees', 'SystemModstamp', 'Address', 'IsDeleted'], []),
    }).then(notExpected, (e: unknown) => e as Error);
    expect(err).toBeInstanceOf(TerminalError);
    expect(err.message).toContain(
      'column name mismatch in header line field 3: got "Oops", expected "AnnualRevenue"',
    );
  });

  it('treats quoted empty values as NULL for Salesforce Bulk CSV (quotedEmptyIsNull)', async () => {
    const columns: PgColumn[] = [
      { name: 'Id', pgType: 'character varying(18)', nullable: false },
      { name: 'Email', pgType: 'text', nullable: true },
    ];
    const result = await withTransaction(pool, async (client) => {
      await ensureTable(client, { schema: 'public', table: 'bulk_nulls', columns, primaryKey: ['Id'] });
      const { staging } = await copyIntoStaging(client, {
        schema: 'public',
        target: 'bulk_nulls',
        runId: 'n1',
        columns,
        source: Readable.from(['"Id","Email"\n"A",""\n"B","b@example.com"\n']),
        format: 'csv',
        header: true,
        quotedEmptyIsNull: true,
      });
      await mergeStaging(client, { schema: 'public', target: 'bulk_nulls', staging, columns, key: ['Id'] });
      return (await client.query('SELECT "Id", "Email" FROM bulk_nulls ORDER BY 1')).rows;
    });
    expect(result).toEqual([
      { Id: 'A', Email: null },
      { Id: 'B', Email: 'b@example.com' },
    ]);
  });

  it('loads Athena renderings: spaced-hex varbinary, zoned timestamps, doubles, arrays as text', async () => {
    const columns = [
      { Name: 'id', Type: 'integer' },
      { Name: 'bin', Type: 'varbinary' },
      { Name: 'at', Type: 'timestamp with time zone' },
      { Name: 'd', Type: 'double' },
      { Name: 'arr', Type: 'array' },
      { Name: 'm', Type: 'map' },
      { Name: 'j', Type: 'json' },
      { Name: 'dec', Type: 'decimal', Precision: 12, Scale: 2 },
    ].map(pgColumnForAthenaColumn);
    const text = csv(
      columns.map((c) => c.name),
      [
        [
          '1',
          '68 65 6c 6c 6f',
          '2020-01-01 12:34:56.789 UTC',
          '1.0E20',
          '[1, 2]',
          '{k=1}',
          '{"a":[1,2]}',
          '1234567890.12',
        ],
        ['2', null, '2020-01-01 12:34:56.789 America/New_York', 'NaN', '[]', '{}', 'null', null],
      ],
    );
    const rows = await withTransaction(pool, async (client) => {
      await client.query(`SET LOCAL TIME ZONE 'UTC'`);
      await ensureTable(client, { schema: 'public', table: 'athena_all', columns });
      const { staging } = await copyIntoStaging(client, {
        schema: 'public',
        target: 'athena_all',
        runId: 'a1',
        columns,
        source: chunked(text),
        format: 'csv',
        header: true,
      });
      await swapInTable(client, { schema: 'public', target: 'athena_all', staging, columns });
      await dropStagingTable(client, 'public', staging);
      return (
        await client.query(
          `SELECT id, encode(bin, 'escape') AS bin, at::text AS at, d::text AS d, arr, m, j::text AS j, dec::text AS dec
             FROM athena_all ORDER BY id`,
        )
      ).rows;
    });
    expect(rows).toEqual([
      { id: 1, bin: 'hello', at: '2020-01-01 12:34:56.789+00', d: '1e+20', arr: '[1, 2]', m: '{k=1}', j: '{"a": [1, 2]}', dec: '1234567890.12' },
      { id: 2, bin: null, at: '2020-01-01 17:34:56.789+00', d: 'NaN', arr: '[]', m: '{}', j: 'null', dec: null },
    ]); // prettier-ignore
  });

  it('full refresh keeps views on the target working, and readers see the old rows until commit', async () => {
    const columns: PgColumn[] = [
      { name: 'email', pgType: 'text', nullable: true },
      { name: 'ltv', pgType: 'numeric(12,2)', nullable: true },
    ];
    const load = async (
      client: PoolClient,
      runId: string,
      body: string,
      strategy: 'delete-insert' | 'truncate-insert',
    ) => {
      await ensureTable(client, { schema: 'public', table: 'customers', columns });
      const { staging } = await copyIntoStaging(client, {
        schema: 'public', target: 'customers', runId, columns, source: Readable.from([body]), format: 'csv', header: true,
      }); // prettier-ignore
      const result = await swapInTable(client, {
        schema: 'public',
        target: 'customers',
        staging,
        columns,
        strategy,
      });
      await dropStagingTable(client, 'public', staging);
      return result;
    };
    await withTransaction(pool, (c) => load(c, 'f1', 'email,ltv\na@x,1\nb@x,2\n', 'delete-insert'));
    await pool.query('CREATE VIEW customer_view AS SELECT email, ltv * 2 AS double_ltv FROM customers');

    for (const strategy of ['delete-insert', 'truncate-insert'] as const) {
      const writer = await pool.connect();
      try {
        await writer.query('BEGIN');
        const result = await load(writer, `f-${strategy}`, 'email,ltv\nc@x,3\nd@x,4\ne@x,5\n', strategy);
        expect(result.inserted).toBe(3);
        if (strategy === 'delete-insert') {
          // Uncommitted: another session still sees the complete old table, without waiting.
          const { rows } = await pool.query('SELECT count(*)::int AS n FROM customer_view');
          expect(rows[0]).toEqual({ n: 2 });
        }
        await writer.query('COMMIT');
      } finally {
        writer.release();
      }
      const { rows } = await pool.query('SELECT email, double_ltv::text AS v FROM customer_view ORDER BY 1');
      expect(rows).toEqual([
        { email: 'c@x', v: '6.00' },
        { email: 'd@x', v: '8.00' },
        { email: 'e@x', v: '10.00' },
      ]);
    }
  });

  it('quotes odd identifiers everywhere: schema, table and column names are never SQL', async () => {
    const schema = 'odd "schema"; drop';
    const table = 'Weird "Table", select';
    const columns: PgColumn[] = [
      { name: 'Weird "Name", select', pgType: 'text', nullable: false },
      { name: 'a;b--c', pgType: 'integer', nullable: true },
      { name: "it's", pgType: 'boolean', nullable: true },
    ];
    const run = async (runId: string, body: string) =>
      withTransaction(pool, async (client) => {
        await ensureTable(client, { schema, table, columns, primaryKey: ['Weird "Name", select'] });
        const { staging } = await copyIntoStaging(client, {
          schema, target: table, runId, columns, source: Readable.from([body]), format: 'csv', header: 'match',
        }); // prettier-ignore
        const merged = await mergeStaging(client, {
          schema,
          target: table,
          staging,
          columns,
          key: ['Weird "Name", select'],
        });
        await dropStagingTable(client, schema, staging);
        return merged;
      });
    const header = '"Weird ""Name"", select","a;b--c","it\'s"\n';
    expect(await run('o1', `${header}"x",1,true\n"y",2,false\n`)).toMatchObject({ inserted: 2 });
    expect(await run('o2', `${header}"x",10,true\n`)).toMatchObject({ updated: 1 });
    const { rows } = await pool.query(
      `SELECT * FROM "odd ""schema""; drop"."Weird ""Table"", select" ORDER BY 1`,
    );
    expect(rows).toEqual([
      { 'Weird "Name", select': 'x', 'a;b--c': 10, "it's": true },
      { 'Weird "Name", select': 'y', 'a;b--c': 2, "it's": false },
    ]);
  });
});

describe('watermarks', () => {
  let db: TestDatabase;
  let pool: Pool;
  beforeAll(async () => {
    db = await createTestDatabase();
    pool = createPool({ url: db.url }, { ssl: { mode: 'disable' } });
    await migrate(pool);
  });
  afterAll(async () => {
    await pool.end();
    await db.drop();
  });

  it('only moves forward by (timestamp, Id), counts rows, and can be forced back', async () => {
    await withClient(pool, async (c) => {
      expect(await readWatermark(c, 'Lead')).toBeUndefined();
      await advanceWatermark(c, 'Lead', {
        watermark: '2024-05-20T10:00:00Z',
        watermarkId: '00Q2',
        runId: 'r1',
        rows: 5,
      });
      // Same timestamp, a larger Id: forward.
      await advanceWatermark(c, 'Lead', {
        watermark: '2024-05-20T10:00:00Z',
        watermarkId: '00Q9',
        runId: 'r2',
        rows: 1,
      });
      // Older (an overlap window re-read): stays, but the run and rows are recorded.
      let state = await advanceWatermark(c, 'Lead', {
        watermark: '2024-05-19T00:00:00Z',
        watermarkId: '00Qz',
        runId: 'r3',
        rows: 2,
      });
      expect(state).toMatchObject({
        watermark: new Date('2024-05-20T10:00:00Z'),
        watermarkId: '00Q9',
        lastRunId: 'r3',
        rowsTotal: 8,
      });
      // Nothing read: stays.
      state = await advanceWatermark(c, 'Lead', { watermark: null, runId: 'r4' });
      expect(state).toMatchObject({
        watermark: new Date('2024-05-20T10:00:00Z'),
        watermarkId: '00Q9',
        lastRunId: 'r4',
      });
      // Ids compare in byte order: 'a' > 'Z'.
      await advanceWatermark(c, 'Lead', {
        watermark: '2024-05-20T10:00:00Z',
        watermarkId: '00Qa',
        runId: 'r5',
      });
      expect((await readWatermark(c, 'Lead'))?.watermarkId).toBe('00Qa');
      state = await advanceWatermark(c, 'Lead', {
        watermark: '2020-01-01T00:00:00Z',
        watermarkId: null,
        runId: 'r6',
        force: true,
      });
      expect(state).toMatchObject({ watermark: new Date('2020-01-01T00:00:00Z'), watermarkId: null });
    });
  });

  it('rejects a watermark that is not a timestamp', async () => {
    await expect(
      withClient(pool, (c) => advanceWatermark(c, 'Lead', { watermark: 'yesterday', runId: 'r' })),
    ).rejects.toThrow('Watermark of task Lead is not a valid timestamp: "yesterday"');
  });
});
