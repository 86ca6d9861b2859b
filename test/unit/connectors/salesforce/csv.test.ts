import { Readable } from 'node:stream';
import {
  bulkCsvToCopyCsv,
  createBulkCsvPageByteConverter,
  createBulkCsvPageConverter,
  csvHeaderLine,
  formatCopyCsvValue,
  recordToCopyCsvLine,
} from '../../../../lambdas/connectors/salesforce/csv';
import { LosslessNumber } from '../../../../lambdas/connectors/salesforce/json';

describe('REST records to COPY CSV', () => {
  it('formats each kind of value for COPY', () => {
    expect(formatCopyCsvValue(null)).toBe('');
    expect(formatCopyCsvValue(undefined)).toBe('');
    expect(formatCopyCsvValue('')).toBe('""');
    expect(formatCopyCsvValue('say "hi", then\nleave')).toBe('"say ""hi"", then\nleave"');
    expect(formatCopyCsvValue(true)).toBe('true');
    expect(formatCopyCsvValue(false)).toBe('false');
    expect(formatCopyCsvValue(12.5)).toBe('12.5');
    expect(formatCopyCsvValue(new LosslessNumber('123456789012345678'))).toBe('123456789012345678');
    expect(formatCopyCsvValue({ city: 'Kyōto', latitude: new LosslessNumber('35.0'), street: null })).toBe(
      '"{""city"":""Kyōto"",""latitude"":35.0,""street"":null}"',
    );
    expect(() => formatCopyCsvValue(Number.NaN)).toThrow('non-finite');
  });

  it('writes fields in the order asked, case-insensitively and through relationships', () => {
    const record = {
      attributes: { type: 'Lead', url: '/x' },
      Id: '00Q000000000001AAA',
      Email: null,
      Owner: { attributes: { type: 'User' }, Name: 'Ada' },
      Manager__r: null,
    };
    expect(recordToCopyCsvLine(record, ['email', 'Id', 'Owner.Name', 'Manager__r.Name'])).toBe(
      ',"00Q000000000001AAA","Ada",\n',
    );
    expect(csvHeaderLine(['Id', 'Owner.Name'])).toBe('"Id","Owner.Name"\n');
  });
});

function convertAll(
  input: string,
  chunkSize: number,
  skipRecords = 0,
): { out: string; header: readonly string[] | undefined; records: number } {
  const c = createBulkCsvPageConverter({ skipRecords });
  let out = '';
  const bytes = Buffer.from(input, 'utf8');
  for (let i = 0; i < bytes.length; i += chunkSize) out += c.write(bytes.subarray(i, i + chunkSize));
  out += c.end();
  return { out, header: c.header, records: c.records };
}

describe('createBulkCsvPageConverter', () => {
  const page =
    '"Id","Name","Note","Amount"\n' +
    '"001","Zoë ""Z"" Müller","line1\nline2, with comma",""\n' +
    '"002","","""quoted start","42"\n' +
    '"003","😀 emoji","ends with quote""","1.0E20"\n';
  const expected =
    '"001","Zoë ""Z"" Müller","line1\nline2, with comma",\n' +
    '"002",,"""quoted start","42"\n' +
    '"003","😀 emoji","ends with quote""","1.0E20"\n';

  it.each([1, 2, 3, 7, 1024])('converts a page split into %i-byte chunks the same way', (size) => {
    const { out, header, records } = convertAll(page, size);
    expect(out).toBe(expected);
    expect(header).toEqual(['Id', 'Name', 'Note', 'Amount']);
    expect(records).toBe(3);
  });

  it('turns "" into NULL and keeps every other value quoted', () => {
    expect(convertAll('"A","B","C"\n"","x",""\n', 5).out).toBe(',"x",\n');
  });

  it('accepts CRLF, unquoted values and a missing final line break', () => {
    expect(convertAll('"A","B"\r\n"1",2\r\n"",x"y', 3).out).toBe('"1","2"\n,"x""y"\n');
  });

  it('skips blank lines', () => {
    expect(convertAll('"A"\n\n"1"\n\n', 2).out).toBe('"1"\n');
  });

  it('resumes after the records already written', () => {
    const { out, records } = convertAll(page, 4, 2);
    expect(out).toBe('"003","😀 emoji","ends with quote""","1.0E20"\n');
    expect(records).toBe(3);
  });

  it('returns only whole records from each write', () => {
    const c = createBulkCsvPageConverter();
    expect(c.write('"A","B"\n"1","tw')).toBe('');
    expect(c.write('o"\n"3"')).toBe('"1","two"\n');
    expect(c.end()).toBe('"3"\n');
  });

  it('fails on a page cut inside a quoted value, and on garbage after a closing quote', () => {
    const c = createBulkCsvPageConverter();
    c.write('"A"\n"unterminated');
    expect(() => c.end()).toThrow('ends inside a quoted value');
    expect(() => createBulkCsvPageConverter().write('"A"\n"x"y\n')).toThrow(
      'unexpected character after a closing quote',
    );
  });

  it('as a Transform, writes the page header once', async () => {
    const chunks: string[] = [];
    for await (const chunk of Readable.from([
      Buffer.from(page.slice(0, 10)),
      Buffer.from(page.slice(10)),
    ]).pipe(bulkCsvToCopyCsv())) {
      chunks.push(String(chunk));
    }
    expect(chunks.join('')).toBe('"Id","Name","Note","Amount"\n' + expected);
  });
});

describe('createBulkCsvPageByteConverter', () => {
  it('returns bytes: whole records only, multi-byte characters split across chunks passed through', () => {
    const c = createBulkCsvPageByteConverter();
    const input = Buffer.from('"Id","Name"\n"1","Zoë 😀"\n"2",""\n', 'utf8');
    const cut = input.indexOf(0x9f); // inside the emoji's four bytes
    const first = c.write(input.subarray(0, cut));
    expect(Buffer.isBuffer(first)).toBe(true);
    expect(first.length).toBe(0);
    expect(c.write(input.subarray(cut)).toString('utf8')).toBe('"1","Zoë 😀"\n"2",\n');
    expect(c.end().length).toBe(0);
    expect(c.records).toBe(2);
  });

  it('reads a header with quotes, commas and CRLF, and a header-only page', () => {
    const c = createBulkCsvPageByteConverter();
    c.write(Buffer.from('\r\n"a ""b""","c,d",e\r\n'));
    expect(c.header).toEqual(['a "b"', 'c,d', 'e']);
    const only = createBulkCsvPageByteConverter();
    only.write(Buffer.from('"A","B"'));
    expect(only.header).toBeUndefined();
    expect(only.end().length).toBe(0);
    expect(only.header).toEqual(['A', 'B']);
    expect(only.records).toBe(0);
  });

  it('fails on garbage after a closing quote in the header, and on a header cut inside a quote', () => {
    expect(() => createBulkCsvPageByteConverter().write(Buffer.from('"A"x,"B"\n'))).toThrow(
      'unexpected character after a closing quote in the header',
    );
    const cut = createBulkCsvPageByteConverter();
    cut.write(Buffer.from('"A","B'));
    expect(() => cut.end()).toThrow('ends inside a quoted value (the header)');
  });

  it('converts a large page in big chunks exactly like one record at a time', () => {
    const rows = Array.from(
      { length: 5000 },
      (_, i) => `"${i}","Lead, ""${i}""","","${i % 7 === 0 ? '' : 'x'}"\n`,
    );
    const page = Buffer.from('"Id","Name","Empty","Maybe"\n' + rows.join(''), 'utf8');
    const whole = createBulkCsvPageByteConverter();
    const big = Buffer.concat([whole.write(page), whole.end()]).toString('utf8');
    const expected = Array.from(
      { length: 5000 },
      (_, i) => `"${i}","Lead, ""${i}""",,${i % 7 === 0 ? '' : '"x"'}\n`,
    ).join('');
    expect(big).toBe(expected);
    expect(whole.records).toBe(5000);
  });
});
