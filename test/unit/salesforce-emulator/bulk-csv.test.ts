import { QueryResultEncoder, quoteCsv } from '../../../emulators/salesforce/bulk-csv';

/** What a results page held before the byte encoder: each value quoted, joined, one string a line. */
function reference(
  records: Record<string, unknown>[],
  fields: string[],
  delimiter: string,
  eol: string,
): Buffer {
  const text = records
    .map(
      (record) =>
        fields
          .map((f) => {
            const value = record[f];
            if (value === null || value === undefined) return '""';
            return quoteCsv(typeof value === 'string' ? value : String(value));
          })
          .join(delimiter) + eol,
    )
    .join('');
  return Buffer.from(text, 'utf8');
}

function encode(
  records: Record<string, unknown>[],
  fields: string[],
  delimiter: string,
  eol: string,
  chunkBytes?: number,
): { bytes: Buffer; chunks: number } {
  const encoder = new QueryResultEncoder(fields, delimiter, eol, chunkBytes);
  const chunks: Buffer[] = [];
  for (const record of records) {
    encoder.writeRecord(record);
    chunks.push(...encoder.takeFilled());
  }
  chunks.push(...encoder.takeAll());
  return { bytes: Buffer.concat(chunks), chunks: chunks.length };
}

const FIELDS = ['Id', 'Name', 'Amount', 'Active', 'Note'];
const HARD_VALUES: Record<string, unknown>[] = [
  { Id: '00Q000000000001AAA', Name: 'Plain', Amount: 42, Active: true, Note: null },
  { Id: '00Q000000000002AAA', Name: 'Lead, "quoted"', Amount: -0.5, Active: false, Note: '' },
  { Id: '00Q000000000003AAA', Name: '"', Amount: 1e21, Active: null, Note: 'line1\nline2\r\nline3' },
  {
    Id: '00Q000000000004AAA',
    Name: 'Zoë "Z" Müller',
    Amount: 0.1 + 0.2,
    Active: true,
    Note: 'tab\there|pipe',
  },
  { Id: '00Q000000000005AAA', Name: '😀 emoji "and" quotes', Amount: 123456789012345, Note: '日本語,"x"' },
  { Id: '00Q000000000006AAA', Name: 'lone \ud800 surrogate', Amount: Number.MAX_SAFE_INTEGER, Note: 'a"' },
  { Id: '00Q000000000007AAA', Name: 'x'.repeat(5000) + '"é"', Amount: 3, Active: false, Note: '""' },
];

describe('QueryResultEncoder', () => {
  it.each([
    [',', '\n'],
    ['|', '\r\n'],
    ['\t', '\n'],
    ['`', '\r\n'],
  ])(
    'writes exactly the bytes of quoting and joining each value (delimiter %j, line ending %j)',
    (d, eol) => {
      expect(encode(HARD_VALUES, FIELDS, d, eol).bytes.equals(reference(HARD_VALUES, FIELDS, d, eol))).toBe(
        true,
      );
    },
  );

  it('gives the same bytes whatever the chunk size, and cuts big outputs into chunks', () => {
    const records = Array.from(
      { length: 300 },
      (_, i) => HARD_VALUES[i % HARD_VALUES.length] as Record<string, unknown>,
    );
    const expected = reference(records, FIELDS, ',', '\n');
    for (const size of [16, 100, 4096, 1 << 20]) {
      const { bytes, chunks } = encode(records, FIELDS, ',', '\n', size);
      expect(bytes.equals(expected)).toBe(true);
      if (size < expected.length) expect(chunks).toBeGreaterThan(1);
    }
  });

  it('reads fields by name in the order given, a missing one as null', () => {
    const { bytes } = encode([{ B: 'b', A: 1 }], ['A', 'C', 'B'], ',', '\n');
    expect(bytes.toString('utf8')).toBe('"1","","b"\n');
  });

  it('hands over nothing until a chunk is full, then every byte once', () => {
    const encoder = new QueryResultEncoder(['A'], ',', '\n', 64);
    encoder.writeRecord({ A: 'short' });
    expect(encoder.takeFilled()).toEqual([]);
    for (let i = 0; i < 20; i++) encoder.writeRecord({ A: 'short' });
    const first = encoder.takeFilled();
    expect(first.length).toBeGreaterThan(0);
    expect(encoder.takeFilled()).toEqual([]);
    const all = Buffer.concat([...first, ...encoder.takeAll()]).toString('utf8');
    expect(all).toBe('"short"\n'.repeat(21));
    expect(encoder.takeAll()).toEqual([]);
  });

  it('refuses a delimiter that is not one ASCII character', () => {
    expect(() => new QueryResultEncoder(['A'], '||', '\n')).toThrow(
      'the column delimiter must be one ASCII character, got "||"',
    );
  });
});
