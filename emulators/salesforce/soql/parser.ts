/**
 * Recursive-descent parser for the emulator's SOQL subset:
 *
 * ```
 * query     := SELECT (COUNT '(' ')' | field (',' field)*) FROM object
 *              [WHERE condition] [ORDER BY order (',' order)*] [LIMIT int] [OFFSET int]
 * condition := unary (AND unary)* | unary (OR unary)*      -- mixing needs parentheses
 * unary     := NOT unary | '(' condition ')' | field op value
 *            | field [NOT] IN '(' value (',' value)* ')' | field LIKE string
 * value     := string | number | date | datetime | NULL | TRUE | FALSE | dateLiteral
 * order     := field [ASC|DESC] [NULLS (FIRST|LAST)]
 * ```
 *
 * Like Salesforce, AND and OR cannot be mixed at one level without parentheses
 * ("Client applications must specify parentheses when nesting operators").
 */
import { malformedAt, tokenize } from './lexer';
import type { Token } from './lexer';

/** A literal as written in the query. */
export type Literal =
  | { kind: 'string'; value: string; offset: number }
  | { kind: 'number'; value: number; text: string; offset: number }
  | { kind: 'date'; value: string; offset: number }
  | { kind: 'datetime'; value: string; offset: number }
  | { kind: 'boolean'; value: boolean; offset: number }
  | { kind: 'null'; offset: number }
  /** TODAY, YESTERDAY, TOMORROW, LAST_N_DAYS:n, NEXT_N_DAYS:n, … */
  | { kind: 'dateLiteral'; name: string; n: number | null; offset: number };

/** A field reference as written (case as in the query). */
export interface FieldRef {
  name: string;
  offset: number;
}

/** Comparison operators (`<>` is read as `!=`). */
export type ComparisonOperator = '=' | '!=' | '<' | '<=' | '>' | '>=';

/** A WHERE condition. */
export type Condition =
  | { kind: 'and' | 'or'; operands: Condition[] }
  | { kind: 'not'; operand: Condition }
  | { kind: 'compare'; field: FieldRef; op: ComparisonOperator; value: Literal }
  | { kind: 'in'; field: FieldRef; negated: boolean; values: Literal[] }
  | { kind: 'like'; field: FieldRef; pattern: string; offset: number };

/** One ORDER BY key. */
export interface OrderKey {
  field: FieldRef;
  descending: boolean;
  /** Null placement; SOQL's default is NULLS FIRST (SOQL and SOSL Reference, "ORDER BY"). */
  nullsFirst: boolean;
}

/** A parsed query. */
export interface SoqlQuery {
  source: string;
  count: boolean;
  fields: FieldRef[];
  object: FieldRef;
  where: Condition | null;
  orderBy: OrderKey[];
  limit: number | null;
  offset: number | null;
}

const DATE_LITERALS_WITHOUT_N = new Set([
  'TODAY',
  'YESTERDAY',
  'TOMORROW',
  'LAST_WEEK',
  'THIS_WEEK',
  'NEXT_WEEK',
  'LAST_MONTH',
  'THIS_MONTH',
  'NEXT_MONTH',
  'LAST_YEAR',
  'THIS_YEAR',
  'NEXT_YEAR',
]);
const DATE_LITERALS_WITH_N = new Set(['LAST_N_DAYS', 'NEXT_N_DAYS']);

/** Parses a SOQL query; throws SoqlError(MALFORMED_QUERY) with Salesforce's "unexpected token" layout. */
export function parseSoql(soql: string): SoqlQuery {
  return new Parser(soql).parseQuery();
}

class Parser {
  private readonly tokens: Token[];
  private pos = 0;

  constructor(private readonly soql: string) {
    this.tokens = tokenize(soql);
  }

  parseQuery(): SoqlQuery {
    this.expectKeyword('SELECT');
    let count = false;
    const fields: FieldRef[] = [];
    if (this.isKeyword('COUNT') && this.peek(1).kind === 'lparen') {
      this.next();
      this.expect('lparen');
      if (this.peek().kind !== 'rparen') {
        throw this.unsupported(
          this.peek(),
          'the emulator supports COUNT() only, not COUNT(field) or other aggregates',
        );
      }
      this.expect('rparen');
      count = true;
    } else {
      for (;;) {
        const token = this.peek();
        if (token.kind !== 'ident' || this.isKeywordToken(token, 'FROM')) throw this.unexpected(token);
        if (this.peek(1).kind === 'lparen') {
          throw this.unsupported(
            token,
            `the emulator does not support functions or aggregates in SELECT ('${token.text}(')`,
          );
        }
        this.next();
        fields.push({ name: token.value, offset: token.offset });
        if (this.peek().kind !== 'comma') break;
        this.next();
      }
    }
    this.expectKeyword('FROM');
    const objectToken = this.peek();
    if (objectToken.kind !== 'ident') throw this.unexpected(objectToken);
    this.next();
    const object = { name: objectToken.value, offset: objectToken.offset };
    let where: Condition | null = null;
    if (this.isKeyword('WHERE')) {
      this.next();
      where = this.parseCondition();
    }
    const orderBy: OrderKey[] = [];
    if (this.isKeyword('ORDER')) {
      this.next();
      this.expectKeyword('BY');
      for (;;) {
        const token = this.peek();
        if (token.kind !== 'ident') throw this.unexpected(token);
        this.next();
        let descending = false;
        if (this.isKeyword('ASC')) this.next();
        else if (this.isKeyword('DESC')) {
          this.next();
          descending = true;
        }
        let nullsFirst = true;
        if (this.isKeyword('NULLS')) {
          this.next();
          if (this.isKeyword('FIRST')) this.next();
          else if (this.isKeyword('LAST')) {
            this.next();
            nullsFirst = false;
          } else throw this.unexpected(this.peek());
        }
        orderBy.push({ field: { name: token.value, offset: token.offset }, descending, nullsFirst });
        if (this.peek().kind !== 'comma') break;
        this.next();
      }
    }
    let limit: number | null = null;
    if (this.isKeyword('LIMIT')) {
      this.next();
      limit = this.parseNonNegativeInt();
    }
    let offset: number | null = null;
    if (this.isKeyword('OFFSET')) {
      this.next();
      offset = this.parseNonNegativeInt();
    }
    const end = this.peek();
    if (end.kind !== 'eof') throw this.unexpected(end);
    return { source: this.soql, count, fields, object, where, orderBy, limit, offset };
  }

  private parseNonNegativeInt(): number {
    const token = this.peek();
    if (token.kind !== 'number' || !/^\d+$/.test(token.value)) throw this.unexpected(token);
    this.next();
    return Number(token.value);
  }

  private parseCondition(): Condition {
    const first = this.parseUnary();
    const joiner = this.isKeyword('AND') ? 'and' : this.isKeyword('OR') ? 'or' : null;
    if (!joiner) return first;
    const operands = [first];
    const other = joiner === 'and' ? 'OR' : 'AND';
    while (this.isKeyword(joiner.toUpperCase())) {
      this.next();
      operands.push(this.parseUnary());
    }
    if (this.isKeyword(other)) throw this.unexpected(this.peek());
    return { kind: joiner, operands };
  }

  private parseUnary(): Condition {
    if (this.isKeyword('NOT')) {
      this.next();
      return { kind: 'not', operand: this.parseUnary() };
    }
    if (this.peek().kind === 'lparen') {
      this.next();
      const inner = this.parseCondition();
      this.expect('rparen');
      return inner;
    }
    const fieldToken = this.peek();
    if (fieldToken.kind !== 'ident') throw this.unexpected(fieldToken);
    this.next();
    const field = { name: fieldToken.value, offset: fieldToken.offset };
    const opToken = this.peek();
    if (opToken.kind === 'op' && opToken.value !== '-' && opToken.value !== '+') {
      this.next();
      const op = (opToken.value === '<>' ? '!=' : opToken.value) as ComparisonOperator;
      return { kind: 'compare', field, op, value: this.parseLiteral() };
    }
    if (this.isKeyword('LIKE')) {
      this.next();
      const pattern = this.peek();
      if (pattern.kind !== 'string') throw this.unexpected(pattern);
      this.next();
      return { kind: 'like', field, pattern: pattern.value, offset: pattern.offset };
    }
    let negated = false;
    if (this.isKeyword('NOT') && this.isKeywordToken(this.peek(1), 'IN')) {
      this.next();
      negated = true;
    }
    if (this.isKeyword('IN')) {
      this.next();
      this.expect('lparen');
      const values = [this.parseLiteral()];
      while (this.peek().kind === 'comma') {
        this.next();
        values.push(this.parseLiteral());
      }
      this.expect('rparen');
      return { kind: 'in', field, negated, values };
    }
    throw this.unexpected(opToken);
  }

  private parseLiteral(): Literal {
    const token = this.peek();
    switch (token.kind) {
      case 'string':
        this.next();
        return { kind: 'string', value: token.value, offset: token.offset };
      case 'date':
        this.next();
        return { kind: 'date', value: token.value, offset: token.offset };
      case 'datetime':
        this.next();
        return { kind: 'datetime', value: token.value, offset: token.offset };
      case 'number':
        this.next();
        return { kind: 'number', value: Number(token.value), text: token.value, offset: token.offset };
      case 'op': {
        if (token.value !== '-' && token.value !== '+') break;
        const num = this.peek(1);
        if (num.kind !== 'number' || num.offset !== token.offset + 1) break;
        this.pos += 2;
        const text = token.value === '-' ? `-${num.value}` : num.value;
        return { kind: 'number', value: Number(text), text, offset: token.offset };
      }
      case 'ident': {
        const upper = token.value.toUpperCase();
        if (upper === 'NULL') {
          this.next();
          return { kind: 'null', offset: token.offset };
        }
        if (upper === 'TRUE' || upper === 'FALSE') {
          this.next();
          return { kind: 'boolean', value: upper === 'TRUE', offset: token.offset };
        }
        if (DATE_LITERALS_WITHOUT_N.has(upper)) {
          this.next();
          return { kind: 'dateLiteral', name: upper, n: null, offset: token.offset };
        }
        if (DATE_LITERALS_WITH_N.has(upper)) {
          this.next();
          this.expect('colon');
          const n = this.parseNonNegativeInt();
          return { kind: 'dateLiteral', name: upper, n, offset: token.offset };
        }
        break;
      }
      default:
        break;
    }
    throw this.unexpected(token);
  }

  private peek(ahead = 0): Token {
    return this.tokens[Math.min(this.pos + ahead, this.tokens.length - 1)] as Token;
  }

  private next(): Token {
    const token = this.peek();
    if (this.pos < this.tokens.length - 1) this.pos += 1;
    return token;
  }

  private expect(kind: Token['kind']): Token {
    const token = this.peek();
    if (token.kind !== kind) throw this.unexpected(token);
    return this.next();
  }

  private isKeywordToken(token: Token, keyword: string): boolean {
    return token.kind === 'ident' && token.value.toUpperCase() === keyword;
  }

  private isKeyword(keyword: string): boolean {
    return this.isKeywordToken(this.peek(), keyword);
  }

  private expectKeyword(keyword: string): void {
    if (!this.isKeyword(keyword)) throw this.unexpected(this.peek());
    this.next();
  }

  private unexpected(token: Token) {
    const shown = token.kind === 'eof' ? '<EOF>' : `'${token.text}'`;
    return malformedAt(this.soql, token.offset, `unexpected token: ${shown}`);
  }

  private unsupported(token: Token, why: string) {
    return malformedAt(this.soql, token.offset, `unexpected token: '${token.text}' (${why})`);
  }
}
