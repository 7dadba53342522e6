import type { Tool } from '../types.js';

/**
 * Arithmetic without eval: + - * / % ^, parentheses, unary minus, and the functions below.
 * A recursive-descent parser over a tokenized expression.
 */
const FUNCTIONS: Record<string, (x: number) => number> = {
  sqrt: Math.sqrt,
  abs: Math.abs,
  round: Math.round,
  floor: Math.floor,
  ceil: Math.ceil,
  ln: Math.log,
  log10: Math.log10,
  exp: Math.exp,
  sin: Math.sin,
  cos: Math.cos,
  tan: Math.tan,
};
const CONSTANTS: Record<string, number> = { pi: Math.PI, e: Math.E };

export function evaluate(expression: string): number {
  const tokens = expression.match(/\d+(?:\.\d+)?(?:e[+-]?\d+)?|[A-Za-z_]\w*|\*\*|[-+*/%^()]|\S/g) ?? [];
  let i = 0;
  const peek = () => tokens[i];
  const next = () => tokens[i++];
  const expect = (t: string) => {
    if (next() !== t) throw new Error(`expected "${t}" in expression`);
  };
  const primary = (): number => {
    const t = next();
    if (t === undefined) throw new Error('unexpected end of expression');
    if (t === '(') {
      const v = sum();
      expect(')');
      return v;
    }
    if (t === '-') return -power();
    if (t === '+') return power();
    if (/^\d/.test(t)) return Number(t);
    if (Object.hasOwn(CONSTANTS, t)) return CONSTANTS[t]!;
    if (Object.hasOwn(FUNCTIONS, t)) {
      expect('(');
      const v = sum();
      expect(')');
      return FUNCTIONS[t]!(v);
    }
    throw new Error(`unexpected "${t}" in expression`);
  };
  const power = (): number => {
    const base = primary();
    if (peek() === '^' || peek() === '**') {
      next();
      return base ** power();
    }
    return base;
  };
  const product = (): number => {
    let v = power();
    while (peek() === '*' || peek() === '/' || peek() === '%') {
      const op = next();
      const r = power();
      v = op === '*' ? v * r : op === '/' ? v / r : v % r;
    }
    return v;
  };
  const sum = (): number => {
    let v = product();
    while (peek() === '+' || peek() === '-') v = next() === '+' ? v + product() : v - product();
    return v;
  };
  if (tokens.length === 0) throw new Error('empty expression');
  const v = sum();
  if (i < tokens.length) throw new Error(`unexpected "${tokens[i]}" in expression`);
  if (!Number.isFinite(v)) throw new Error('the result is not a finite number');
  return v;
}

export const calculatorTool: Tool = {
  name: 'calculator',
  idempotent: true,
  description:
    'Evaluates an arithmetic expression: + - * / % ^, parentheses, sqrt, abs, round, floor, ceil, ln, log10, exp, sin, cos, tan, pi, e.',
  input_schema: {
    type: 'object',
    properties: { expression: { type: 'string', description: 'e.g. "(2 + 3) * 4"' } },
    required: ['expression'],
    additionalProperties: false,
  },
  async invoke(args) {
    const expr = args.expression;
    if (typeof expr !== 'string') return { content: 'calculator: "expression" must be a string', is_error: true };
    // Models sometimes pass a whole sentence; keep the arithmetic part.
    const m = /[-+(\d.][\d\s.+\-*/%^()a-z]*$/i.exec(expr.replace(/[?=]+\s*$/, '').trim());
    try {
      return { content: String(evaluate(m ? m[0] : expr)) };
    } catch (e) {
      return { content: `calculator: ${(e as Error).message}`, is_error: true };
    }
  },
};
