import { parseByteRange } from '../../../emulators/athena/s3';

describe('parseByteRange', () => {
  it.each([
    ['bytes=0-9', 100, { start: 0, end: 9 }],
    ['bytes=90-', 100, { start: 90, end: 99 }],
    ['bytes=-10', 100, { start: 90, end: 99 }],
    ['bytes=-1000', 100, { start: 0, end: 99 }],
    ['bytes=50-1000', 100, { start: 50, end: 99 }],
    ['bytes=100-', 100, 'unsatisfiable'],
    ['bytes=-0', 100, 'unsatisfiable'],
    ['bytes=0-0', 0, 'unsatisfiable'],
    ['bytes=5-2', 100, 'ignored'],
    ['bytes=0-1,5-6', 100, 'ignored'],
    ['items=0-1', 100, 'ignored'],
    [undefined, 100, 'ignored'],
  ])('%s of %d bytes is %p', (header, size, expected) => {
    expect(parseByteRange(header, size)).toEqual(expected);
  });
});
