import { AthenaCsvFormatError, athenaCsvLine, parseAthenaCsvRows } from '../../../emulators/athena/csv';

describe('athenaCsvLine', () => {
  it('quotes every value, doubles quotes, writes NULL as an empty unquoted field and ends with LF', () => {
    expect(athenaCsvLine(['a', null, '', 'say "hi"', 'x,y', 'l1\nl2'])).toBe(
      '"a",,"","say ""hi""","x,y","l1\nl2"\n',
    );
  });

  it('writes a row of one NULL as an empty line', () => {
    expect(athenaCsvLine([null])).toBe('\n');
  });
});

describe('parseAthenaCsvRows', () => {
  const text = '"id","name"\n"1",\n"2",""\n"3","a ""q"", b\nc"\n';

  it('reads back what athenaCsvLine writes: NULL versus empty string, quotes, newlines', () => {
    const { rows, consumed } = parseAthenaCsvRows(Buffer.from(text), 10);
    expect(rows).toEqual([
      ['id', 'name'],
      ['1', null],
      ['2', ''],
      ['3', 'a "q", b\nc'],
    ]);
    expect(consumed).toBe(Buffer.byteLength(text));
  });

  it('stops after maxRows and reports the byte offset of the next row', () => {
    const { rows, consumed } = parseAthenaCsvRows(Buffer.from(text), 2);
    expect(rows).toHaveLength(2);
    expect(text.slice(consumed)).toBe('"2",""\n"3","a ""q"", b\nc"\n');
  });

  it('leaves an incomplete last row for the next read', () => {
    const cut = Buffer.from(text).subarray(0, Buffer.byteLength(text) - 4);
    const { rows, consumed } = parseAthenaCsvRows(cut, 10);
    expect(rows).toHaveLength(3);
    expect(consumed).toBe(Buffer.byteLength('"id","name"\n"1",\n"2",""\n'));
  });

  it('does not mistake a doubled quote split across reads for a closing quote', () => {
    const cut = Buffer.from('"a ""'); // the field continues in the next block
    expect(parseAthenaCsvRows(cut, 10)).toEqual({ rows: [], consumed: 0 });
  });

  it('counts offsets in bytes for multi-byte UTF-8', () => {
    const { rows, consumed } = parseAthenaCsvRows(Buffer.from('"🦆"\n"é"\n'), 1);
    expect(rows).toEqual([['🦆']]);
    expect(consumed).toBe(7);
  });

  it('rejects an unquoted value, naming the byte', () => {
    expect(() => parseAthenaCsvRows(Buffer.from('"a",b\n'), 10, 100)).toThrow(
      new AthenaCsvFormatError("unquoted value at byte 104: Athena's CSV quotes every non-NULL value"),
    );
  });
});
