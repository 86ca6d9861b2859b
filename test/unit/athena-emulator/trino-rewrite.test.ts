import {
  AVG_MACROS,
  DECIMAL_DIVIDE_MACRO,
  DIVIDE_MACRO,
  MODULUS_MACRO,
  VARCHAR_CAST_MACRO,
  decimalDivision,
  countDivisions,
  probedOperandTypes,
  rewriteForTrino,
  substituteParameters,
} from '../../../emulators/athena/trino-rewrite';
import { boundedVarcharCasts, parameterOffsets } from '../../../emulators/athena/query-text';

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
    expect(rewriteForTrino(ast)).toEqual({ divisions: 3, averages: 0, casts: 0 });
    const [outer] = ast.statements[0]?.node.select_list ?? [];
    expect(outer).toMatchObject({ function_name: MODULUS_MACRO, catalog: 'memory', schema: 'main' });
    expect(outer?.is_operator).toBe(false);
    expect(inner).toMatchObject({ function_name: DIVIDE_MACRO, catalog: 'memory', schema: 'main' });
    expect(JSON.stringify(ast)).not.toContain('query_location');
  });

  it('turns avg(x) and avg(DISTINCT x) into the avg macros, the fast ones unless told', () => {
    const plain = call('avg', { children: one });
    const distinct = call('AVG', { children: one, distinct: true });
    expect(rewriteForTrino([plain, distinct])).toEqual({ divisions: 0, averages: 2, casts: 0 });
    expect(plain).toMatchObject({ function_name: AVG_MACROS.fast.plain, catalog: 'memory', distinct: false });
    expect(distinct).toMatchObject({ function_name: AVG_MACROS.fast.distinct, distinct: false });

    const any = call('avg', { children: one });
    expect(rewriteForTrino([any], { averages: 'any' })).toEqual({ divisions: 0, averages: 1, casts: 0 });
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
    expect(rewriteForTrino(ast)).toEqual({ divisions: 0, averages: 0, casts: 0 });
    expect(JSON.stringify(ast)).toBe(before.replaceAll(/,?"query_location":\d+/g, ''));
  });

  it('turns the numbered divisions of decimals into the decimal macro and the named casts into the varchar(n) one', () => {
    const inner = call('/');
    const outer = call('/', { alias: 'q', children: [inner, { class: 'CONSTANT', query_location: 20 }] });
    const cast = {
      class: 'CAST',
      query_location: 30,
      try_cast: true,
      child: { class: 'COLUMN_REF' },
      alias: 's',
    };
    const ast = [outer, cast];
    const counts = rewriteForTrino(ast, {
      decimalDivisions: new Map([[1, { precision: 12, scale: 2, rescale: 2 }]]),
      varcharCasts: new Map([[30, 3]]),
    });
    expect(counts).toEqual({ divisions: 2, averages: 0, casts: 1 });
    // Numbered parents first: the outer division is 0 (left to DuckDB), the inner one 1.
    expect(outer).toMatchObject({ function_name: DIVIDE_MACRO, alias: 'q' });
    expect(inner).toMatchObject({ function_name: DECIMAL_DIVIDE_MACRO, catalog: 'memory', schema: 'main' });
    expect((inner.children as unknown[]).slice(2)).toMatchObject([
      { value: { value: 2 } },
      { value: { value: 2 } },
      { class: 'CAST', cast_type: { id: 'DECIMAL', type_info: { width: 12, scale: 2 } } },
    ]);
    expect(cast).toMatchObject({
      class: 'FUNCTION',
      function_name: VARCHAR_CAST_MACRO.try,
      alias: 's',
      children: [{ class: 'COLUMN_REF' }, { value: { value: 3 } }],
    });
  });

  it('types a division of decimals as Trino does, an integer as the decimal that holds it, and leaves the others', () => {
    const decimal = (width: number, scale: number): string => `DECIMAL(${width},${scale})`;
    expect(decimalDivision(decimal(10, 2), decimal(10, 2))).toEqual({ precision: 12, scale: 2, rescale: 2 });
    expect(decimalDivision(decimal(5, 1), decimal(7, 3))).toEqual({ precision: 10, scale: 3, rescale: 5 });
    expect(decimalDivision(decimal(38, 0), decimal(38, 10))).toEqual({
      precision: 38,
      scale: 10,
      rescale: 20,
    });
    expect(decimalDivision('INTEGER_LITERAL', decimal(2, 1))).toEqual({
      precision: 12,
      scale: 1,
      rescale: 2,
    });
    expect(decimalDivision(decimal(10, 2), 'BIGINT')).toEqual({
      precision: 10,
      scale: 2,
      rescale: 0,
    });
    expect(decimalDivision('INTEGER_LITERAL', 'BIGINT')).toBeUndefined();
    expect(decimalDivision(decimal(10, 2), 'DOUBLE')).toBeUndefined();
  });

  it('probes one division: a call that no arguments fit, whose binding error names the operand types', () => {
    const inner = call('/');
    const ast = [call('/', { children: [inner, { class: 'CONSTANT' }] })];
    expect(countDivisions(ast)).toBe(2);
    rewriteForTrino(ast, {
      probeSite: 1,
      decimalDivisions: new Map([[1, { precision: 3, scale: 0, rescale: 0 }]]),
    });
    expect(ast[0]).toMatchObject({ function_name: DIVIDE_MACRO });
    expect(inner).toMatchObject({ function_name: 'date_diff', schema: '', catalog: '' });
    expect(
      probedOperandTypes(
        "Binder Error: No function matches the given name and argument types 'date_diff(DECIMAL(10,2), INTEGER_LITERAL)'. You might need to add explicit type casts.",
      ),
    ).toEqual(['DECIMAL(10,2)', 'INTEGER_LITERAL']);
    expect(probedOperandTypes('Binder Error: Referenced column "x" not found')).toBeUndefined();
  });

  it('puts ExecutionParameters in the WHERE clause, and names the first ? anywhere else', () => {
    const parameter = (n: number) => ({ class: 'PARAMETER', identifier: String(n) });
    const select = (where: unknown, list: unknown[] = []) => ({
      type: 'SELECT_NODE',
      select_list: list,
      where_clause: where,
    });
    const where = {
      class: 'COMPARISON',
      children: [parameter(1), { class: 'SUBQUERY', node: select(parameter(2)) }],
    };
    const ast = select(where);
    expect(
      substituteParameters(ast, [
        { class: 'CONSTANT', query_location: 7, value: 1 },
        { class: 'CONSTANT', value: 2 },
      ]),
    ).toBeUndefined();
    expect(where.children[0]).toEqual({ class: 'CONSTANT', value: 1 });
    expect(JSON.stringify(ast)).not.toContain('PARAMETER');
    // A ? in a select list, even a subquery's inside a WHERE clause, is not in a WHERE clause.
    expect(substituteParameters(select(select(null, [parameter(2)]), [parameter(3)]), [1, 2, 3])).toBe(2);
  });

  it("finds casts to varchar(n) and each ? in the text, not in strings or comments, at DuckDB's byte offsets", () => {
    const query =
      "SELECT 'é', CAST(a AS varchar(12)), TRY_CAST(b AS VARCHAR (3)), CAST(c AS varchar), '?' -- ?\n WHERE x = ?";
    expect([...boundedVarcharCasts(query)]).toEqual([
      [Buffer.byteLength(query.slice(0, query.indexOf('CAST'))), 12],
      [Buffer.byteLength(query.slice(0, query.indexOf('TRY_CAST'))), 3],
    ]);
    expect(parameterOffsets(query)).toEqual([query.lastIndexOf('?')]);
  });
});
