import {
  AVG_MACROS,
  DIVIDE_MACRO,
  MODULUS_MACRO,
  rewriteForTrino,
} from '../../../emulators/athena/trino-rewrite';

const call = (name: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  class: 'FUNCTION',
  function_name: name,
  schema: '',
  catalog: '',
  is_operator: true,
  query_location: 9,
  children: [
    { class: 'COLUMN_REF', column_names: ['a'], query_location: 7 },
    { class: 'CONSTANT', query_location: 11 },
  ],
  filter: null,
  order_bys: { type: 'ORDER_MODIFIER', orders: [] },
  distinct: false,
  ...extra,
});
const one = [{ class: 'COLUMN_REF', column_names: ['a'] }];

describe('rewriteForTrino', () => {
  it('turns /, % and mod() into the division macros, nested ones too, and drops the positions', () => {
    const inner = call('/');
    const ast = { statements: [{ node: { select_list: [call('%', { children: [inner, call('mod')] })] } }] };
    expect(rewriteForTrino(ast)).toEqual({ divisions: 3, averages: 0 });
    const [outer] = ast.statements[0]?.node.select_list ?? [];
    expect(outer).toMatchObject({ function_name: MODULUS_MACRO, catalog: 'memory', schema: 'main' });
    expect(outer?.is_operator).toBe(false);
    expect(inner).toMatchObject({ function_name: DIVIDE_MACRO, catalog: 'memory', schema: 'main' });
    expect(JSON.stringify(ast)).not.toContain('query_location');
  });

  it('turns avg(x) and avg(DISTINCT x) into the avg macros, the fast ones unless told', () => {
    const plain = call('avg', { children: one });
    const distinct = call('AVG', { children: one, distinct: true });
    expect(rewriteForTrino([plain, distinct])).toEqual({ divisions: 0, averages: 2 });
    expect(plain).toMatchObject({ function_name: AVG_MACROS.fast.plain, catalog: 'memory', distinct: false });
    expect(distinct).toMatchObject({ function_name: AVG_MACROS.fast.distinct, distinct: false });

    const any = call('avg', { children: one });
    expect(rewriteForTrino([any], { averages: 'any' })).toEqual({ divisions: 0, averages: 1 });
    expect(any.function_name).toBe(AVG_MACROS.any.plain);
  });

  it('leaves other calls alone: a qualified one, a wrong arity, an avg with FILTER or ORDER BY', () => {
    const ast = [
      call('+'),
      call('mod', { schema: 'other' }),
      call('mod', { children: one }),
      call('avg'),
      call('avg', { children: one, filter: { class: 'CONSTANT' } }),
      call('avg', { children: one, order_bys: { orders: [{ type: 'ORDER_DEFAULT' }] } }),
    ];
    const before = JSON.stringify(ast);
    expect(rewriteForTrino(ast)).toEqual({ divisions: 0, averages: 0 });
    expect(JSON.stringify(ast)).toBe(before.replaceAll(/,?"query_location":\d+/g, ''));
  });
});
