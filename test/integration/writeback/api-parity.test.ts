/**
 * The choice of API never changes what lands in Salesforce: the same source rows, pushed once
 * through sObject Collections/Composite (JSON, below the task's `bulkThreshold`) and once through
 * Bulk API 2.0 ingest (CSV out of PostgreSQL's COPY, `#N/A` for null; `bulkThreshold: 1`), into two
 * fresh emulators seeded alike (so the records have the same Ids), leave the same records field by
 * field, the same `sync_state`, the same refusals (before the call, with the same code and message,
 * and from Salesforce after it) and, run again with nothing changed, no write call on either path.
 *
 * The rows hit the edges where JSON and CSV differ: NULL in each field type clearing a value that
 * was set, the empty string, whitespace and control characters around values, `"`, `,`, `\n` and
 * `\r\n` inside them, the text `#N/A` (refused: Bulk reads it as null) and texts holding it,
 * non-ASCII and emoji at a field's length (counted in UTF-16 code units), numbers at their
 * precision or rounded to their scale, negative zero, dates and datetimes at the plan's extremes
 * (1700-01-01, 4000-12-31, also reached through an offset), booleans from text, multi-select
 * values out of order and repeated, a restricted picklist value in another case (sent as listed), and a refusal by
 * Salesforce whose message holds the characters the Bulk error text is split on.
 */
import path from 'node:path';
import { Readable } from 'node:stream';
import { DEFAULT_DESCRIBES_DIR } from '../../../emulators/salesforce/describe';
import type { WritebackTaskInput } from '../../../lambdas/config';
import type { SalesforceConnector } from '../../../lambdas/connectors/salesforce';
import { planWriteback, runWriteback } from '../../../lambdas/core/writeback';
import { startWritebackEnv, type WritebackEnv } from './support';

type Mode = 'update' | 'upsert' | 'insert';
type Path = 'collections' | 'bulk';
const PATHS: readonly Path[] = ['collections', 'bulk'];

/** Source column → Lead field, the same for every mode (upsert and insert add the key). */
const FIELDS = {
  LastName: 'last_name',
  Company: 'company',
  Nickname__c: 'nick', // string(10)
  Notes__c: 'notes', // textarea(32768)
  Email: 'email',
  NumberOfEmployees: 'employees', // int, 8 digits
  LeadScore__c: 'score', // double(3, 0)
  Discount__c: 'discount', // percent(5, 2)
  Legacy_Amount__c: 'amount', // currency(18, 2)
  Next_Call__c: 'next_call', // date
  Scored_At__c: 'scored_at', // datetime
  Call_Time__c: 'call_time', // time
  Is_Hot__c: 'hot', // boolean, not nillable
  Tier__c: 'tier', // restricted picklist: Gold, Silver (Retired inactive)
  Interests__c: 'interests', // multi-select: Golf, Chess, Tennis
  Rating: 'rating', // picklist, not restricted: Hot, Warm, Cold
} as const;
type Column = (typeof FIELDS)[keyof typeof FIELDS];
const COLUMNS = Object.values(FIELDS) as Column[];

/** What every record holds before the push: each mapped field set, so that a NULL must clear it. */
const BEFORE: Record<string, unknown> = {
  LastName: 'Old',
  Company: 'OldCo',
  Nickname__c: 'Old',
  Notes__c: 'old note',
  Email: 'old@example.org',
  NumberOfEmployees: 5,
  LeadScore__c: 7,
  Discount__c: 1.5,
  Legacy_Amount__c: 2.25,
  Next_Call__c: '2020-01-01',
  Scored_At__c: '2020-01-01T00:00:00.000Z',
  Call_Time__c: '01:00:00.000Z',
  Is_Hot__c: false,
  Tier__c: 'Silver',
  Interests__c: 'Chess',
  Rating: 'Cold',
};

const BASE: Record<Column, string | null> = {
  last_name: 'Parity',
  company: 'Acme',
  nick: 'Kim',
  notes: 'note',
  email: 'a@example.com',
  employees: '10',
  score: '42',
  discount: '12.34',
  amount: '100.5',
  next_call: '2025-07-01',
  scored_at: '2025-06-01T10:00:00Z',
  call_time: '10:00:00',
  hot: 'true',
  tier: 'Gold',
  interests: 'Golf',
  rating: 'Hot',
};

/** What Salesforce holds of {@link BASE}. */
const STORED_BASE: Record<string, unknown> = {
  LastName: 'Parity',
  Company: 'Acme',
  Nickname__c: 'Kim',
  Notes__c: 'note',
  Email: 'a@example.com',
  NumberOfEmployees: 10,
  LeadScore__c: 42,
  Discount__c: 12.34,
  Legacy_Amount__c: 100.5,
  Next_Call__c: '2025-07-01',
  Scored_At__c: '2025-06-01T10:00:00.000+0000',
  Call_Time__c: '10:00:00.000Z',
  Is_Hot__c: true,
  Tier__c: 'Gold',
  Interests__c: 'Golf',
  Rating: 'Hot',
};

/** The company a validation rule of the org refuses (a per-record fault of the emulators). */
const REFUSED_COMPANY = 'Refused Co';
/** Its message holds what the Bulk error text `CODE:message:fields --` is split on, and CSV's specials. */
const REFUSAL = {
  statusCode: 'FIELD_CUSTOM_VALIDATION_EXCEPTION',
  message: 'Company: "Refused Co" is blocked -- see RULE_42: ask ops, or\nthe wiki',
  fields: ['Company'],
};

const NULLS = Object.fromEntries(
  COLUMNS.filter((c) => c !== 'last_name' && c !== 'company').map((c) => [c, null]),
);
/** Every nullable mapped field null, as stored. */
const STORED_NULLS = Object.fromEntries(
  Object.keys(STORED_BASE)
    .filter((f) => f !== 'LastName' && f !== 'Company' && f !== 'Is_Hot__c')
    .map((f) => [f, null]),
);
/** 32,768 characters, the field's length: a line of 8 repeated. */
const LONG_NOTES = 'a,"b"\r\n\u00e9'.repeat(32768 / 8);

interface Edge {
  readonly name: string;
  readonly values: Partial<Record<Column, string | null>>;
  /** The code the plan refuses the row with, before any call. */
  readonly refused?: string;
  /** Insert: refused otherwise (null: sent), e.g. a field whose default fills a null on create. */
  readonly insertRefused?: string | null;
  /** Update: refused otherwise (null: sent), e.g. an edge of the external-ID key. */
  readonly updateRefused?: string | null;
  /** The code Salesforce refuses the record with. */
  readonly failed?: string;
  /** Upsert: a key no record has yet (the others update a record holding {@link BEFORE}). */
  readonly creates?: boolean;
  /** The key as the source writes it (update: from the record's Id; else from the edge's key). */
  readonly key?: (key: string) => string;
  /** What Salesforce holds after the push where it differs from {@link STORED_BASE}. */
  readonly stored?: Record<string, unknown>;
}

const EDGES: readonly Edge[] = [
  {
    name: 'every nullable field NULL',
    values: { ...NULLS, hot: 'false' },
    stored: { ...STORED_NULLS, Is_Hot__c: false },
  },
  {
    name: 'empty strings',
    values: { ...Object.fromEntries(Object.keys(NULLS).map((c) => [c, ''])), hot: '0' },
    stored: { ...STORED_NULLS, Is_Hot__c: false },
  },
  {
    name: 'whitespace and control characters around values',
    values: {
      last_name: '\u00a0Zoë\u00a0',
      company: ' Acme \n',
      nick: ' \t Kim \u0001\u001f',
      notes: '\u0007 \r\n  two\r\nlines\n \u000b',
      email: ' a@example.com\t',
      employees: ' 7 ',
      score: ' 41.5 ',
      discount: '\t12.345 ',
      next_call: ' 2025-07-01 ',
      scored_at: ' 2025-06-01T10:00:00Z ',
      hot: ' TRUE ',
      tier: ' Silver ',
      interests: ' Tennis;Golf;Tennis;; ',
      rating: ' Warm ',
    },
    stored: {
      LastName: '\u00a0Zoë\u00a0', // a no-break space is not trimmed
      Company: 'Acme',
      Nickname__c: 'Kim',
      Notes__c: 'two\r\nlines',
      NumberOfEmployees: 7,
      Discount__c: 12.35,
      Tier__c: 'Silver',
      Interests__c: 'Golf;Tennis',
      Rating: 'Warm',
    },
  },
  {
    name: 'quotes, commas and line breaks inside values',
    values: {
      last_name: "O'Neil, Jr.",
      company: 'Acme, "Inc"',
      nick: '"a,b"\r\nc',
      // Inside, control characters, U+2028 and backslashes (COPY's text-format escapes) are data.
      notes: 'say "hi", then\nbye\r\nand ""twice""\u0001\t\u2028 C:\\N\\t\\\r',
      rating: 'hot, "very"',
      interests: 'Chess;Golf',
      hot: '1',
    },
    creates: true,
    stored: {
      LastName: "O'Neil, Jr.",
      Company: 'Acme, "Inc"',
      Nickname__c: '"a,b"\r\nc',
      Notes__c: 'say "hi", then\nbye\r\nand ""twice""\u0001\t\u2028 C:\\N\\t\\',
      Rating: 'hot, "very"',
      Interests__c: 'Golf;Chess',
    },
  },
  { name: 'the text #N/A', values: { nick: '#n/a ' }, refused: 'TEXT_READ_AS_NULL' },
  {
    name: 'texts holding #N/A',
    values: { nick: 'N/A', notes: '"#N/A"', company: '#N/A Co', rating: '#NA', last_name: '#N/A#N/A' },
    stored: {
      Nickname__c: 'N/A',
      Notes__c: '"#N/A"',
      Company: '#N/A Co',
      Rating: '#NA',
      LastName: '#N/A#N/A',
    },
  },
  {
    name: 'non-ASCII and emoji at the length limit',
    values: {
      nick: '😀'.repeat(5),
      notes: '𠮟'.repeat(16384),
      last_name: 'Zoë Ñandú 日本',
      company: 'Ünïcödé ✓',
    },
    creates: true,
    stored: {
      Nickname__c: '😀'.repeat(5),
      Notes__c: '𠮟'.repeat(16384),
      LastName: 'Zoë Ñandú 日本',
      Company: 'Ünïcödé ✓',
    },
  },
  {
    name: 'an emoji past the length limit',
    values: { nick: `x${'😀'.repeat(5)}` },
    refused: 'STRING_TOO_LONG',
  },
  {
    name: 'very long text with quotes and line breaks',
    values: { notes: LONG_NOTES },
    stored: { Notes__c: LONG_NOTES },
  },
  {
    name: 'numbers at their precision',
    values: {
      employees: '99999999',
      score: '999',
      discount: '999.994',
      amount: '9999999999999999.99',
      hot: 't',
    },
    stored: {
      NumberOfEmployees: 99999999,
      LeadScore__c: 999,
      Discount__c: 999.99,
      Legacy_Amount__c: '9999999999999999.99', // more digits than a double holds: kept as text
    },
  },
  {
    name: 'numbers rounded to their scale',
    values: { score: '-0.4', discount: '-0.005', amount: '0.005', employees: '2e1', hot: 'yes' },
    // Half away from zero; -0.4 rounds to zero, not to negative zero.
    stored: { LeadScore__c: 0, Discount__c: -0.01, Legacy_Amount__c: 0.01, NumberOfEmployees: 20 },
  },
  {
    name: 'negative zero',
    values: { score: '-0', discount: '-0.00', amount: '-0e5', employees: '-0', hot: 'f' },
    stored: { LeadScore__c: 0, Discount__c: 0, Legacy_Amount__c: 0, NumberOfEmployees: 0, Is_Hot__c: false },
  },
  {
    name: 'a number rounded past its precision',
    values: { score: '999.5' },
    refused: 'NUMBER_OUTSIDE_VALID_RANGE',
  },
  {
    name: 'a fraction for an int field',
    values: { employees: '2.5' },
    refused: 'INVALID_TYPE_ON_FIELD_IN_RECORD',
  },
  {
    name: 'the earliest date and datetime',
    values: { next_call: '1700-01-01', scored_at: '1700-01-01T00:00:00Z', call_time: '00:00' },
    stored: {
      Next_Call__c: '1700-01-01',
      Scored_At__c: '1700-01-01T00:00:00.000+0000',
      Call_Time__c: '00:00:00.000Z',
    },
  },
  {
    name: 'the latest date and datetime',
    values: { next_call: '4000-12-31', scored_at: '4000-12-31T23:59:59.999Z', call_time: '23:59:59.999' },
    creates: true,
    stored: {
      Next_Call__c: '4000-12-31',
      Scored_At__c: '4000-12-31T23:59:59.000+0000', // Salesforce keeps the second: the plan sends no milliseconds
      Call_Time__c: '23:59:59.999Z',
    },
  },
  {
    name: 'datetimes with offsets',
    values: { scored_at: '2025-06-01 23:30:00-05', call_time: '11:15 PM', next_call: '2024-02-29' },
    stored: {
      Scored_At__c: '2025-06-02T04:30:00.000+0000',
      Call_Time__c: '23:15:00.000Z',
      Next_Call__c: '2024-02-29',
    },
  },
  {
    name: 'the earliest datetime reached through an offset',
    values: { scored_at: '1700-01-01T13:30:00+13:30' },
    stored: { Scored_At__c: '1700-01-01T00:00:00.000+0000' },
  },
  {
    name: 'a datetime past the latest day in UTC',
    values: { scored_at: '4000-12-31T23:00:00-05:00' },
    refused: 'DATE_OUTSIDE_VALID_RANGE',
  },
  {
    name: 'a datetime before the earliest day in UTC',
    values: { scored_at: '1700-01-01T00:30:00+01:00' },
    refused: 'DATE_OUTSIDE_VALID_RANGE',
  },
  {
    name: 'a date before the earliest',
    values: { next_call: '1699-12-31' },
    refused: 'DATE_OUTSIDE_VALID_RANGE',
  },
  { name: 'a boolean word', values: { hot: 'no' }, stored: { Is_Hot__c: false } },
  {
    name: 'a boolean Salesforce does not read',
    values: { hot: 'maybe' },
    refused: 'INVALID_TYPE_ON_FIELD_IN_RECORD',
  },
  {
    name: 'a NULL boolean',
    values: { hot: null },
    refused: 'REQUIRED_FIELD_MISSING',
    // A checkbox has a default (false): a new record takes it.
    insertRefused: null,
    stored: { Is_Hot__c: false },
  },
  {
    name: 'a restricted picklist value in another case',
    // Sent as listed: picklists are not case sensitive (Help article 000386557).
    values: { tier: 'gold' },
    stored: { Tier__c: 'Gold' },
  },
  {
    name: 'an inactive restricted picklist value in another case',
    values: { tier: 'RETIRED' },
    refused: 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST',
  },
  {
    name: 'an inactive restricted picklist value',
    values: { tier: 'Retired' },
    refused: 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST',
  },
  {
    name: 'multi-select values out of order, repeated and in another case; a picklist value in another case',
    // Unrestricted picklists store a listed value in its listed case (Help article 000386557).
    values: { interests: 'Tennis;chess;Golf;CHESS', rating: 'warm' },
    stored: { Interests__c: 'Golf;Chess;Tennis', Rating: 'Warm' },
  },
  {
    name: 'an Id in its 15-character form; a key in another case',
    values: { nick: 'Case' },
    key: (k) => (k.startsWith('00Q') ? k.slice(0, 15) : k.toUpperCase()),
    stored: { Nickname__c: 'Case' },
  },
  {
    name: 'a key holding a quote, a comma and a line break (upsert, insert)',
    values: { nick: 'Specials' },
    key: (k) => (k.startsWith('00Q') ? k : `${k},"q"\ne`),
    creates: true,
    stored: { Nickname__c: 'Specials' },
  },
  {
    name: 'the key #N/A (upsert, insert)',
    values: { nick: 'NA key' },
    key: (k) => (k.startsWith('00Q') ? k : '#N/A'),
    creates: true,
    refused: 'TEXT_READ_AS_NULL',
    updateRefused: null,
    stored: { Nickname__c: 'NA key' },
  },
  {
    name: 'an 18-character Id in lower case; a key padded with spaces',
    values: { nick: 'Padded' },
    key: (k) => (k.startsWith('00Q') ? ` ${k.toLowerCase()} ` : ` ${k}\t`),
    stored: { Nickname__c: 'Padded' },
  },
  {
    name: 'refused by a validation rule',
    values: { company: REFUSED_COMPANY },
    failed: REFUSAL.statusCode,
  },
];

const KEY_FIELD = 'Lead_Key__c';

/** The key of edge `i` in `mode`: the same on both paths. */
const keyOf = (mode: Mode, i: number): string => `${mode[0] as string}-${String(i).padStart(2, '0')}`;

function task(mode: Mode, api: Path): WritebackTaskInput {
  return {
    name: `parity-${mode}`,
    to: 'salesforce',
    object: 'Lead',
    from: `parity_${mode}`,
    mode,
    ...(mode === 'update' ? {} : { key: KEY_FIELD, keyColumn: 'k' }),
    fields: { ...FIELDS },
    // Collections below the threshold, Bulk at or above it.
    bulkThreshold: api === 'bulk' ? 1 : 10_000,
    maxFailureRate: 1,
    maxRejectRate: 1,
  };
}

/** What each env seeded: the Ids of update's records, the deleted one, the key insert finds taken. */
interface Seeded {
  updateIds: string[];
  deletedId: string;
}

const TAKEN_INSERT_KEY = 'i-taken';

async function seed(env: WritebackEnv): Promise<Seeded> {
  const updateIds = env.sf.store.seed(
    'Lead',
    EDGES.map(() => ({ ...BEFORE })),
  );
  const existing = EDGES.flatMap((e, i) =>
    e.creates ? [] : [{ ...BEFORE, [KEY_FIELD]: keyOf('upsert', i) }],
  );
  env.sf.store.seed('Lead', existing);
  env.sf.store.seed('Lead', [{ ...BEFORE, [KEY_FIELD]: TAKEN_INSERT_KEY }]);
  const [deletedId] = env.sf.store.seed('Lead', [{ ...BEFORE }]);
  expect(env.sf.store.delete([deletedId as string])[0]?.success).toBe(true);
  env.sf.store.setRecordFault((_object, record) =>
    record.Company === REFUSED_COMPANY ? { ...REFUSAL, fields: [...REFUSAL.fields] } : undefined,
  );

  const columns = ['k text', ...COLUMNS.map((c) => `${c} text`)].join(', ');
  const rows = (mode: Mode): unknown[][] => {
    const out = EDGES.map((e, i) => {
      const values = { ...BASE, ...e.values };
      const key: string = mode === 'update' ? (updateIds[i] as string) : keyOf(mode, i);
      return [e.key ? e.key(key) : key, ...COLUMNS.map((c) => values[c])];
    });
    // A record Salesforce no longer has (update), a key a record has already (insert).
    if (mode === 'update') out.push([deletedId as string, ...COLUMNS.map((c) => BASE[c])]);
    if (mode === 'insert') out.push([TAKEN_INSERT_KEY, ...COLUMNS.map((c) => BASE[c])]);
    return out;
  };
  for (const mode of ['update', 'upsert', 'insert'] as const) {
    await env.pool.query(`CREATE TABLE parity_${mode} (${columns})`);
    for (const r of rows(mode)) {
      await env.pool.query(
        `INSERT INTO parity_${mode} VALUES (${r.map((_, i) => `$${i + 1}`).join(', ')})`,
        r,
      );
    }
  }
  // The update task reads the key as "Id".
  await env.pool.query(`ALTER TABLE parity_update RENAME COLUMN k TO "Id"`);
  return { updateIds, deletedId: deletedId as string };
}

/** Salesforce's records as the emulator stores them, without the times of the writes. */
function storedLeads(env: WritebackEnv): Record<string, unknown>[] {
  return [...env.sf.store.all('Lead')]
    .map((r) => {
      const { CreatedDate, LastModifiedDate, SystemModstamp, ...rest } = r as Record<string, unknown>;
      void CreatedDate;
      void LastModifiedDate;
      void SystemModstamp;
      return rest;
    })
    .sort((a, b) => String(a.Id).localeCompare(String(b.Id)));
}

async function syncState(env: WritebackEnv, taskName: string): Promise<unknown[]> {
  const { rows } = await env.pool.query(
    `SELECT key, salesforce_id, value_hash, synced_values FROM roundtrip.sync_state WHERE task = $1 ORDER BY key`,
    [taskName],
  );
  return rows;
}

async function errors(env: WritebackEnv, runId: string): Promise<Record<string, unknown>[]> {
  const { rows } = await env.pool.query<Record<string, unknown>>(
    `SELECT key, salesforce_id, stage, code, message, fields, payload FROM roundtrip.writeback_errors
      WHERE run_id = $1 ORDER BY key, stage, code`,
    [runId],
  );
  return rows;
}

/** What a push sent: the records of its Collections calls (and Composite subrequests), the text of its Bulk uploads. */
interface Sent {
  readonly records: Record<string, unknown>[];
  readonly uploads: string[];
}

/** A connector that keeps what is sent through it ({@link Sent}), and sends it on unchanged. */
function recording(connector: SalesforceConnector): { connector: SalesforceConnector; sent: Sent } {
  const sent: Sent = { records: [], uploads: [] };
  const recorded = Object.create(connector, {
    request: {
      value: (operation: string, method: 'POST', path: string, body?: unknown) => {
        if (typeof body === 'string' && path.startsWith('/composite')) {
          const parsed = JSON.parse(body) as {
            records?: Record<string, unknown>[];
            compositeRequest?: { body: { records: Record<string, unknown>[] } }[];
          };
          sent.records.push(...(parsed.records ?? []));
          for (const sub of parsed.compositeRequest ?? []) sent.records.push(...sub.body.records);
        }
        return connector.request(operation, method, path, body);
      },
    },
    putStream: {
      value: async (operation: string, path: string, body: Readable, headers: Record<string, string>) => {
        const chunks: Buffer[] = [];
        for await (const chunk of body) chunks.push(Buffer.from(chunk as Buffer));
        const text = Buffer.concat(chunks).toString('utf8');
        sent.uploads.push(text);
        return connector.putStream(operation, path, Readable.from([text]), headers);
      },
    },
  }) as SalesforceConnector;
  return { connector: recorded, sent };
}

describe('the Collections and the Bulk path leave Salesforce in the same state', () => {
  const envs = {} as Record<Path, WritebackEnv>;
  const seeded = {} as Record<Path, Seeded>;

  beforeAll(async () => {
    for (const api of PATHS) {
      envs[api] = await startWritebackEnv({
        describesDir: [
          DEFAULT_DESCRIBES_DIR,
          path.join(__dirname, 'describes'),
          path.join(__dirname, 'describes-parity'),
        ],
      });
      seeded[api] = await seed(envs[api]);
    }
    // Two emulators seeded alike: the same Ids, so their records compare as they are.
    expect(seeded.bulk).toEqual(seeded.collections);
    expect(storedLeads(envs.bulk)).toEqual(storedLeads(envs.collections));
  });
  afterAll(async () => {
    for (const api of PATHS) await envs[api]?.stop();
  });

  async function push(api: Path, mode: Mode, over: Partial<WritebackTaskInput> = {}) {
    const env = envs[api];
    const input = { ...task(mode, api), ...over };
    const deps = env.deps({ writeback: [input] });
    const runId = await env.newRun();
    env.sf.calls.clear();
    const { plan, result } = await runWriteback(deps, { runId, task: input.name as string });
    return { plan, result, runId, writes: env.sf.calls.count({ write: true }) };
  }

  it.each(['update', 'upsert', 'insert'] as const)(
    '%s: the same records, sync_state and refusals on both paths; nothing written the second time',
    async (mode) => {
      const first = { collections: await push('collections', mode), bulk: await push('bulk', mode) };
      expect(first.collections.plan.api).toBe('collections');
      expect(first.bulk.plan.api).toBe('bulk');

      // Refused before any call, with the same code, message and fields, on either path; and what
      // Salesforce refused, as each API reports it.
      const refusals = {
        collections: await errors(envs.collections, first.collections.runId),
        bulk: await errors(envs.bulk, first.bulk.runId),
      };
      expect(refusals.bulk).toEqual(refusals.collections);
      /** The key of edge `i` as the plan keeps it (trimmed). */
      const keyOfEdge = (i: number): string => {
        const key = mode === 'update' ? (seeded.collections.updateIds[i] as string) : keyOf(mode, i);
        const edge = EDGES[i] as Edge;
        return mode !== 'update' && edge.key ? edge.key(key).trim() : key;
      };
      const refusedBy = (e: Edge): string | undefined => {
        const otherwise =
          mode === 'insert' ? e.insertRefused : mode === 'update' ? e.updateRefused : undefined;
        return otherwise !== undefined ? (otherwise ?? undefined) : e.refused;
      };
      const expected = EDGES.flatMap((e, i) =>
        refusedBy(e)
          ? [[keyOfEdge(i), 'plan', refusedBy(e)]]
          : e.failed
            ? [[keyOfEdge(i), 'push', e.failed]]
            : [],
      );
      if (mode === 'update') expected.push([seeded.collections.deletedId, 'push', 'ENTITY_IS_DELETED']);
      if (mode === 'insert') expected.push([TAKEN_INSERT_KEY, 'push', 'DUPLICATE_VALUE']);
      expect(refusals.collections.map((e) => [e.key, e.stage, e.code])).toEqual(
        expected.sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      );
      const refusedByRule = refusals.collections.find((e) => e.code === REFUSAL.statusCode);
      expect(refusedByRule).toMatchObject({ message: REFUSAL.message, fields: REFUSAL.fields });

      const counts = (r: typeof first.collections) => ({
        plan: [r.plan.sourceRows, r.plan.rejected, r.plan.heldBack, r.plan.unchanged, r.plan.changed],
        result: r.result && 'succeeded' in r.result ? [r.result.succeeded, r.result.failed] : r.result,
      });
      expect(counts(first.bulk)).toEqual(counts(first.collections));

      // Salesforce holds the same records, field by field; sync_state says the same of them.
      expect(storedLeads(envs.bulk)).toEqual(storedLeads(envs.collections));
      expect(await syncState(envs.bulk, `parity-${mode}`)).toEqual(
        await syncState(envs.collections, `parity-${mode}`),
      );

      // What Salesforce holds of each row sent (and so on both paths): pinned, so that the two
      // cannot agree on a wrong value unseen.
      const leads = storedLeads(envs.collections);
      const recordOf = (i: number): Record<string, unknown> | undefined =>
        mode === 'update'
          ? leads.find((r) => r.Id === seeded.collections.updateIds[i])
          : leads.find((r) => String(r[KEY_FIELD]).toLowerCase() === keyOfEdge(i).toLowerCase());
      const held = (r: Record<string, unknown> | undefined): Record<string, unknown> =>
        Object.fromEntries(
          Object.keys(STORED_BASE).map((f) => {
            const v = r?.[f];
            // A number of more digits than a double holds is kept as its digits (SfDecimal).
            return [f, v !== null && typeof v === 'object' ? String(v) : v];
          }),
        );
      const sent = EDGES.map((e, i) => ({ e, i })).filter(({ e }) => !refusedBy(e) && !e.failed);
      expect(sent.map(({ e, i }) => [e.name, held(recordOf(i))])).toEqual(
        sent.map(({ e }) => [e.name, { ...STORED_BASE, ...e.stored }]),
      );

      // A second run with nothing changed makes no write call on either path. (The records
      // Salesforce refused would be sent again, as on any run: their rows leave the source.)
      const failedKeys = expected.filter((e) => e[1] === 'push').map((e) => e[0]);
      for (const api of PATHS) {
        await envs[api].pool.query(
          `DELETE FROM parity_${mode} WHERE ${mode === 'update' ? '"Id"' : 'k'} = ANY($1::text[])`,
          [failedKeys],
        );
      }
      for (const api of PATHS) {
        const second = await push(api, mode);
        expect(second.plan).toMatchObject({ changed: 0, api: 'none' });
        expect(second.writes).toBe(0);
      }
    },
  );

  it('upsert by a number external ID: keys rounded to its scale, in exponent form, past 15 digits, matching two records or none, alike on both paths', async () => {
    // Legacy_Number__c: double(18, 0), an external ID that is not unique.
    const existing = [1, 2, 3, 4, 7, 7].map((n, i) => ({
      ...BEFORE,
      Legacy_Number__c: n,
      Nickname__c: `n${i}`,
    }));
    const rows: [string, string][] = [
      ['1', 'one'],
      ['2.0', 'two'],
      ['3.4', 'three'], // rounds to 3: the record holding 3
      ['4e0', 'four'],
      [' 5 ', 'five'], // none: created
      ['-0', 'zero'], // 0, created
      ['9007199254740993', 'wide'], // past a double's digits: sent with all of them
      ['7', 'twins'], // two records hold 7: Salesforce refuses it
      ['1e18', 'huge'], // 19 digits: refused before the call
    ];
    for (const api of PATHS) {
      const env = envs[api];
      env.sf.store.seed('Lead', existing);
      await env.pool.query(`CREATE TABLE parity_number (k text, nick text, last_name text, company text)`);
      for (const [k, nick] of rows) {
        await env.pool.query(`INSERT INTO parity_number VALUES ($1, $2, 'Num', 'Acme')`, [k, nick]);
      }
    }
    const over: Partial<WritebackTaskInput> = {
      name: 'parity-number',
      from: 'parity_number',
      key: 'Legacy_Number__c',
      fields: { LastName: 'last_name', Company: 'company', Nickname__c: 'nick' },
    };
    const first = {
      collections: await push('collections', 'upsert', over),
      bulk: await push('bulk', 'upsert', over),
    };
    expect([first.collections.plan.api, first.bulk.plan.api]).toEqual(['collections', 'bulk']);

    const refusals = {
      collections: await errors(envs.collections, first.collections.runId),
      bulk: await errors(envs.bulk, first.bulk.runId),
    };
    expect(refusals.bulk).toEqual(refusals.collections);
    expect(refusals.collections.map((e) => [e.key, e.stage, e.code])).toEqual([
      ['1e18', 'plan', 'NUMBER_OUTSIDE_VALID_RANGE'],
      ['7', 'push', 'DUPLICATE_EXTERNAL_ID'],
    ]);
    expect(storedLeads(envs.bulk)).toEqual(storedLeads(envs.collections));
    expect(await syncState(envs.bulk, 'parity-number')).toEqual(
      await syncState(envs.collections, 'parity-number'),
    );
    const byNick = new Map(storedLeads(envs.collections).map((r) => [r.Nickname__c, r]));
    expect(
      ['one', 'two', 'three', 'four', 'five', 'zero', 'wide'].map((n) =>
        String(byNick.get(n)?.Legacy_Number__c),
      ),
    ).toEqual(['1', '2', '3', '4', '5', '0', '9007199254740993']);

    await Promise.all(PATHS.map((api) => envs[api].pool.query(`DELETE FROM parity_number WHERE k = '7'`)));
    for (const api of PATHS) {
      const second = await push(api, 'upsert', over);
      expect(second.plan).toMatchObject({ changed: 0, api: 'none' });
      expect(second.writes).toBe(0);
    }
  });
  it.each([
    ['as the plan stores it', false],
    ['from a plan stored before, which holds the nulls', true],
  ])(
    'insert: a NULL in a field that is not nillable and has a default is left out of the record (no key in JSON, an empty CSV cell) and the record takes the default, %s; a nillable NULL is sent',
    async (_, storedBefore) => {
      // Is_Hot__c: a checkbox (not nillable, default false). Status: a restricted picklist, not
      // nillable, its default `Open - Not Contacted`. Nickname__c: nillable, no default.
      const name = storedBefore ? 'parity-defaults-before' : 'parity-defaults';
      const table = name.replace(/-/g, '_');
      const k = (n: number): string => `${storedBefore ? 'db' : 'd'}-${n}`;
      const rows = [
        [k(1), 'No hot', null, 'Working - Contacted', null],
        [k(2), 'No status', 'true', null, 'Nick'],
        [k(3), 'All set', 'false', 'Working - Contacted', 'Nick'],
      ];
      const input = (api: Path, mode: Mode = 'insert'): WritebackTaskInput => ({
        name: mode === 'insert' ? name : `${name}-${mode}`,
        to: 'salesforce',
        object: 'Lead',
        from: table,
        mode,
        key: KEY_FIELD,
        keyColumn: 'k',
        fields: {
          LastName: 'last_name',
          Company: 'company',
          Is_Hot__c: 'hot',
          Status: 'status',
          Nickname__c: 'nick',
        },
        bulkThreshold: api === 'bulk' ? 1 : 10_000,
      });
      const sent = {} as Record<Path, Sent>;
      const runs = {} as Record<Path, string>;
      for (const api of PATHS) {
        const env = envs[api];
        await env.pool.query(
          `CREATE TABLE ${table} (k text, last_name text, company text, hot text, status text, nick text)`,
        );
        for (const r of rows) {
          await env.pool.query(`INSERT INTO ${table} VALUES ($1, $2, 'Acme', $3, $4, $5)`, r);
        }
        const through = recording(env.connector);
        const deps = { ...env.deps({ writeback: [input(api)] }), salesforce: through.connector };
        const runId = await env.newRun();
        if (storedBefore) {
          await planWriteback(deps, { runId, task: name, dryRun: false });
          // A plan stored by a version before this one: every mapped field has its key, null or not.
          const { rowCount } = await env.pool.query(
            `UPDATE roundtrip.writeback_plan_pages
                SET payloads = ARRAY(SELECT '{"Is_Hot__c": null, "Status": null}'::jsonb || u.p
                                       FROM unnest(payloads) WITH ORDINALITY AS u(p, n) ORDER BY u.n)
              WHERE run_id = $1 AND task = $2`,
            [runId, name],
          );
          expect(rowCount).toBe(1);
        } else {
          // The dry run's sample shows what would be sent: no key for the field left out.
          const dry = await planWriteback(deps, { runId: await env.newRun(), task: name, dryRun: true });
          expect(dry.sample?.map((r) => r.next)).toStrictEqual([
            {
              [KEY_FIELD]: k(1),
              LastName: 'No hot',
              Company: 'Acme',
              Status: 'Working - Contacted',
              Nickname__c: null,
            },
            {
              [KEY_FIELD]: k(2),
              LastName: 'No status',
              Company: 'Acme',
              Is_Hot__c: true,
              Nickname__c: 'Nick',
            },
            {
              [KEY_FIELD]: k(3),
              LastName: 'All set',
              Company: 'Acme',
              Is_Hot__c: false,
              Status: 'Working - Contacted',
              Nickname__c: 'Nick',
            },
          ]);
        }
        const { plan, result } = await runWriteback(deps, { runId, task: name });
        expect(plan).toMatchObject({ api, rejected: 0, changed: 3 });
        expect(result).toMatchObject({ succeeded: 3, failed: 0 });
        sent[api] = through.sent;
        runs[api] = runId;
      }

      // Collections: the record has no key for the field; the nillable field's null is sent.
      const attributes = { type: 'Lead' };
      expect(sent.collections.uploads).toEqual([]);
      expect(sent.collections.records).toStrictEqual([
        {
          attributes,
          [KEY_FIELD]: k(1),
          LastName: 'No hot',
          Company: 'Acme',
          Status: 'Working - Contacted',
          Nickname__c: null,
        },
        {
          attributes,
          [KEY_FIELD]: k(2),
          LastName: 'No status',
          Company: 'Acme',
          Is_Hot__c: true,
          Nickname__c: 'Nick',
        },
        {
          attributes,
          [KEY_FIELD]: k(3),
          LastName: 'All set',
          Company: 'Acme',
          Is_Hot__c: false,
          Status: 'Working - Contacted',
          Nickname__c: 'Nick',
        },
      ]);
      // Bulk: the column is the header's, the cell empty (`""`: not set), not `#N/A` (null); the
      // nillable field's null is `#N/A`.
      expect(sent.bulk.records).toEqual([]);
      expect(sent.bulk.uploads).toEqual([
        [
          `${KEY_FIELD},LastName,Company,Is_Hot__c,Status,Nickname__c`,
          `"${k(1)}","No hot","Acme","","Working - Contacted",#N/A`,
          `"${k(2)}","No status","Acme","true","","Nick"`,
          `"${k(3)}","All set","Acme","false","Working - Contacted","Nick"`,
          '',
        ].join('\n'),
      ]);

      // The records took the defaults, alike on both paths.
      const held = (env: WritebackEnv): unknown[] =>
        [1, 2, 3].map((n) => {
          const r = [...env.sf.store.all('Lead')].find((x) => x[KEY_FIELD] === k(n));
          return [r?.LastName, r?.Is_Hot__c, r?.Status, r?.Nickname__c];
        });
      const expected = [
        ['No hot', false, 'Working - Contacted', null],
        ['No status', true, 'Open - Not Contacted', 'Nick'],
        ['All set', false, 'Working - Contacted', 'Nick'],
      ];
      expect(held(envs.collections)).toEqual(expected);
      expect(held(envs.bulk)).toEqual(expected);
      expect(storedLeads(envs.bulk)).toEqual(storedLeads(envs.collections));
      expect(await syncState(envs.bulk, name)).toEqual(await syncState(envs.collections, name));
      expect(await errors(envs.collections, runs.collections)).toEqual([]);
      expect(await errors(envs.bulk, runs.bulk)).toEqual([]);

      // A second run sends nothing: the keys were inserted.
      for (const api of PATHS) {
        const env = envs[api];
        const again = await runWriteback(env.deps({ writeback: [input(api)] }), {
          runId: await env.newRun(),
          task: name,
        });
        expect(again.plan).toMatchObject({ changed: 0, api: 'none' });
      }

      // Upsert (and update) still refuse such a null: an update would blank the field.
      const upsert = input('collections', 'upsert');
      const env = envs.collections;
      const runId = await env.newRun();
      await planWriteback(env.deps({ writeback: [upsert] }), {
        runId,
        task: upsert.name as string,
        dryRun: true,
      });
      expect((await errors(env, runId)).map((e) => [e.key, e.code, e.fields])).toEqual([
        [k(1), 'REQUIRED_FIELD_MISSING', ['Is_Hot__c']],
        [k(2), 'REQUIRED_FIELD_MISSING', ['Status']],
      ]);
    },
  );
});
