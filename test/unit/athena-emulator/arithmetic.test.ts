import { DIVIDE_MACRO, MODULUS_MACRO, rewriteDivisions } from '../../../emulators/athena/arithmetic';

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
  ...extra,
});

describe('rewriteDivisions', () => {
  it('turns /, % and mod() into the macros, nested ones too, and drops the positions', () => {
    const inner = call('/');
    const ast = { statements: [{ node: { select_list: [call('%', { children: [inner, call('mod')] })] } }] };
    expect(rewriteDivisions(ast)).toBe(3);
    const [outer] = ast.statements[0]?.node.select_list ?? [];
    expect(outer).toMatchObject({ function_name: MODULUS_MACRO, catalog: 'memory', schema: 'main' });
    expect(outer?.is_operator).toBe(false);
    expect(inner).toMatchObject({ function_name: DIVIDE_MACRO, catalog: 'memory', schema: 'main' });
    expect(JSON.stringify(ast)).not.toContain('query_location');
  });

  it('leaves other functions, a qualified function and a one-argument call alone', () => {
    const ast = [
      call('+'),
      call('mod', { schema: 'other' }),
      call('mod', { children: [{ class: 'CONSTANT' }] }),
    ];
    const before = JSON.stringify(ast);
    expect(rewriteDivisions(ast)).toBe(0);
    expect(JSON.stringify(ast)).toBe(before.replaceAll(/,?"query_location":\d+/g, ''));
  });
});
