import { sourceTypeOf } from '../../../lambdas/core/writeback/plan';

describe('sourceTypeOf', () => {
  it('reads the precision and scale numeric packs into its type modifier', () => {
    // numeric(5,2): ((5 << 16) | 2) + 4
    expect(sourceTypeOf('numeric', (5 << 16) + 2 + 4)).toEqual({ class: 'numeric', precision: 5, scale: 2 });
    expect(sourceTypeOf('numeric', (18 << 16) + 4)).toEqual({ class: 'numeric', precision: 18, scale: 0 });
    // numeric(3,-2) (PostgreSQL 15+): the scale is an 11-bit signed number.
    expect(sourceTypeOf('numeric', (3 << 16) + (-2 & 0x7ff) + 4)).toEqual({
      class: 'numeric',
      precision: 3,
      scale: -2,
    });
    expect(sourceTypeOf('numeric', -1)).toEqual({ class: 'numeric' });
  });

  it('knows how many digits each integer type holds', () => {
    expect(sourceTypeOf('int2', -1)).toEqual({ class: 'int', digits: 5 });
    expect(sourceTypeOf('int4', -1)).toEqual({ class: 'int', digits: 10 });
    expect(sourceTypeOf('int8', -1)).toEqual({ class: 'int', digits: 19 });
  });

  it('reads the declared length of varchar and char, and none for text', () => {
    expect(sourceTypeOf('varchar', 40 + 4)).toEqual({ class: 'text', maxLength: 40 });
    expect(sourceTypeOf('bpchar', 18 + 4)).toEqual({ class: 'text', maxLength: 18 });
    expect(sourceTypeOf('varchar', -1)).toEqual({ class: 'text' });
    expect(sourceTypeOf('text', -1)).toEqual({ class: 'text' });
  });

  it('reads other types by their text form', () => {
    expect(sourceTypeOf('float8', -1)).toEqual({ class: 'float' });
    expect(sourceTypeOf('timestamptz', -1)).toEqual({ class: 'timestamptz' });
    expect(sourceTypeOf('uuid', -1)).toEqual({ class: 'other' });
    expect(sourceTypeOf('jsonb', -1)).toEqual({ class: 'other' });
  });
});
