// The expression language of `weightkit vector combine`: parses `0.5*a.st - (b.st - c.st) / 2` into one
// coefficient per distinct vector reference, or throws a VECTOR_EXPRESSION error with the 1-based column at fault.
// Pure: no node: imports, no I/O; references are plain strings the caller maps to files.

import { VectorError } from '../errors.js';

export interface LinearTerm {
  ref: string;
  coef: number;
  /** 1-based column of the ref's first use. */
  col: number;
}

export interface LinearCombination {
  /** One per distinct ref, in order of first appearance, coefficients summed; no zero coefficients. */
  terms: LinearTerm[];
}

/** Parentheses and unary signs nested deeper than this are rejected instead of overflowing the stack. */
export const MAX_EXPRESSION_DEPTH = 256;

const NUMBER_RE = /^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;
const SIGNED_NUMBER_RE = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;
/** A run that is a number up to its exponent marker: `1e` in `1e+5` (where '+' would otherwise end the run). */
const EXPONENT_PREFIX_RE = /^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE]$/;
/** Numbers joined by '-' or '/' with no space (`2-1`, `6/2`, `0.5-0.5`): arithmetic, not a file name. */
const NUMBER_CHAIN_RE = /^(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)(?:[-/](?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?))+$/;
const NUMBER_PREFIX_RE = /^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?/;
const WHITESPACE_RE = /\s/;
const DIGIT_RE = /[0-9]/;

type Op = '+' | '-' | '*' | '/' | '(' | ')';

type Token =
  | { kind: 'num'; value: number; text: string; col: number; end: number }
  | { kind: 'ref'; ref: string; text: string; col: number; end: number }
  | { kind: 'op'; op: Op; text: string; col: number; end: number }
  | { kind: 'end'; text: string; col: number; end: number };

/** An affine form over vector refs: sum(coefs[r] * r) + constant; start/end are the source span (end exclusive). */
interface Affine {
  coefs: Map<string, number>;
  constant: number;
  start: number;
  end: number;
  /** Where a number was first added to a vector inside this value (for the "number + vector" error). */
  mix?: { col: number; text: string };
}

/** Parse a `vector combine` expression into its linear combination of refs. */
export function parseVectorExpression(text: string): LinearCombination {
  return new Parser(text).parse();
}

/** Parse the `--term COEF:PATH` form, split at the first ':' (the path may contain more, e.g. `C:\x.st`). */
export function parseTerm(text: string): { coef: number; ref: string } {
  const chars = Array.from(text);
  const colon = chars.indexOf(':');
  if (colon < 0) {
    throw expressionError(text, 1, `expected COEF:PATH, got '${text}' (no ':')`, "write e.g. '0.5:dir/a.safetensors'");
  }
  const coefText = chars.slice(0, colon).join('').trim();
  const ref = chars.slice(colon + 1).join('');
  if (!SIGNED_NUMBER_RE.test(coefText)) {
    const got = coefText === '' ? 'nothing' : `'${coefText}'`;
    throw expressionError(text, 1, `expected a number before ':' in '${text}', got ${got}`, "write e.g. '-1:c.safetensors'");
  }
  const coef = Number(coefText);
  if (!Number.isFinite(coef)) {
    throw expressionError(text, 1, `coefficient '${coefText}' in '${text}' is not a finite number`);
  }
  if (ref === '') {
    throw expressionError(text, colon + 2, `expected a path after ':' in '${text}', got nothing`);
  }
  return { coef, ref };
}

/**
 * Canonical text of a combination, e.g. `0.5*a.st + 0.5*b.st - c.st`; parseVectorExpression gives back the same
 * refs and bit-identical coefficients. Refs that would not read back as one bare ref are quoted.
 */
export function formatCombination(c: LinearCombination): string {
  if (c.terms.length === 0) {
    throw new VectorError('VECTOR_EXPRESSION', 'cannot format an empty combination: the expression would be zero');
  }
  let out = '';
  c.terms.forEach((t, i) => {
    if (!Number.isFinite(t.coef)) {
      throw new VectorError('VECTOR_EXPRESSION', `cannot format ref '${t.ref}': coefficient ${t.coef} is not finite`);
    }
    const ref = formatRef(t.ref);
    const negative = t.coef < 0 || Object.is(t.coef, -0);
    const magnitude = Math.abs(t.coef);
    const scaled = magnitude === 1 ? ref : `${String(magnitude)}*${ref}`;
    if (i === 0) out = negative ? `-${scaled}` : scaled;
    else out += negative ? ` - ${scaled}` : ` + ${scaled}`;
  });
  return out;
}

function formatRef(ref: string): string {
  if (isBareRef(ref)) return ref;
  if (!ref.includes("'")) return `'${ref}'`;
  if (!ref.includes('"')) return `"${ref}"`;
  throw new VectorError(
    'VECTOR_EXPRESSION',
    `cannot format ref '${ref}': it needs quoting but contains both ' and "`,
  );
}

/** True when `ref` written without quotes lexes back as exactly this ref (in operand position). */
function isBareRef(ref: string): boolean {
  if (ref === '' || ref === '/' || NUMBER_RE.test(ref)) return false;
  const first = ref[0];
  if (first === '-' || first === "'" || first === '"') return false;
  for (const ch of ref) {
    if (WHITESPACE_RE.test(ch) || ch === '+' || ch === '*' || ch === '(' || ch === ')') return false;
  }
  return true;
}

function expressionError(text: string, col: number, message: string, hint?: string): VectorError {
  const shown = Array.from(text)
    .map((ch) => (WHITESPACE_RE.test(ch) ? ' ' : ch))
    .join('');
  const caret = `${' '.repeat(Math.max(0, col - 1))}^`;
  return new VectorError('VECTOR_EXPRESSION', `${message}\n  ${shown}\n  ${caret}`, { where: { col }, hint });
}

function describeToken(tok: Token): string {
  return tok.kind === 'end' ? 'end of expression' : `'${tok.text}'`;
}

function lex(text: string, chars: string[]): Token[] {
  const fail = (col: number, message: string, hint?: string): never => {
    throw expressionError(text, col, message, hint);
  };
  const tokens: Token[] = [];
  const operandExpected = (): boolean => {
    const prev = tokens[tokens.length - 1];
    return prev === undefined || (prev.kind === 'op' && prev.op !== ')');
  };
  let i = 0;
  while (i < chars.length) {
    const ch = chars[i];
    const col = i + 1;
    if (WHITESPACE_RE.test(ch)) {
      i++;
      continue;
    }
    if (ch === '+' || ch === '*' || ch === '(' || ch === ')' || ch === '-') {
      tokens.push({ kind: 'op', op: ch, text: ch, col, end: col + 1 });
      i++;
      continue;
    }
    if (ch === '/' && (!operandExpected() || i + 1 >= chars.length || isRunBreak(chars[i + 1]))) {
      // In operator position '/' divides; in operand position it starts an absolute path (a lone '/' is an operator).
      tokens.push({ kind: 'op', op: '/', text: ch, col, end: col + 1 });
      i++;
      continue;
    }
    if (ch === "'" || ch === '"') {
      const close = chars.indexOf(ch, i + 1);
      if (close < 0) fail(col, `unterminated quote: ${ch} at column ${col} is never closed`);
      const ref = chars.slice(i + 1, close).join('');
      if (ref === '') fail(col, `empty quoted reference at column ${col}`);
      tokens.push({ kind: 'ref', ref, text: chars.slice(i, close + 1).join(''), col, end: close + 2 });
      i = close + 1;
      continue;
    }
    let j = i;
    while (j < chars.length && !isRunBreak(chars[j])) {
      j++;
      if (chars[j] === '+' && j + 1 < chars.length && DIGIT_RE.test(chars[j + 1])) {
        if (EXPONENT_PREFIX_RE.test(chars.slice(i, j).join(''))) j++; // keep `1e+5` one token
      }
    }
    const run = chars.slice(i, j).join('');
    if (NUMBER_CHAIN_RE.test(run)) {
      // split into numbers and operators (each number's own exponent sign stays with it)
      let k = 0;
      while (k < run.length) {
        const at = i + k + 1;
        if (run[k] === '-' || run[k] === '/') {
          tokens.push({ kind: 'op', op: run[k] as '-' | '/', text: run[k]!, col: at, end: at + 1 });
          k++;
          continue;
        }
        const num = NUMBER_PREFIX_RE.exec(run.slice(k))![0];
        const value = Number(num);
        if (!Number.isFinite(value)) fail(at, `number '${num}' at column ${at} is too large`);
        tokens.push({ kind: 'num', value, text: num, col: at, end: at + num.length });
        k += num.length;
      }
      i = j;
      continue;
    }
    if (NUMBER_RE.test(run)) {
      const value = Number(run);
      if (!Number.isFinite(value)) fail(col, `number '${run}' at column ${col} is too large`);
      tokens.push({ kind: 'num', value, text: run, col, end: j + 1 });
    } else {
      tokens.push({ kind: 'ref', ref: run, text: run, col, end: j + 1 });
    }
    i = j;
  }
  return tokens;
}

function isRunBreak(ch: string): boolean {
  return WHITESPACE_RE.test(ch) || ch === '+' || ch === '*' || ch === '(' || ch === ')';
}

class Parser {
  private readonly chars: string[];
  private readonly tokens: Token[];
  private pos = 0;
  private depth = 0;
  private readonly firstCol = new Map<string, number>();

  constructor(private readonly text: string) {
    this.chars = Array.from(text);
    this.tokens = lex(text, this.chars);
    const endCol = this.chars.length + 1;
    this.tokens.push({ kind: 'end', text: '', col: endCol, end: endCol });
  }

  parse(): LinearCombination {
    if (this.tokens.length === 1) {
      throw this.error(1, 'the expression is empty', "write e.g. '0.5*a.safetensors + 0.5*b.safetensors'");
    }
    const value = this.expr();
    const tok = this.peek();
    if (tok.kind !== 'end') {
      if (tok.kind === 'op' && tok.op === ')') {
        throw this.error(tok.col, `unbalanced parentheses: ')' at column ${tok.col} has no matching '('`);
      }
      throw this.unexpected(tok, "an operator (+ - * /) or the end");
    }
    if (value.coefs.size === 0) {
      throw this.error(1, `the expression is the number ${value.constant}, not a combination of vectors`, 'name at least one vector');
    }
    if (value.constant !== 0) {
      const at = value.mix ?? { col: 1, text: String(value.constant) };
      throw this.error(
        at.col,
        `adding a number to a vector is not defined: '${at.text}' at column ${at.col} is a number`,
        'numbers can only scale vectors, e.g. 2*a.safetensors',
      );
    }
    const terms: LinearTerm[] = [];
    for (const [ref, coef] of value.coefs) {
      if (coef !== 0) terms.push({ ref, coef, col: this.firstCol.get(ref)! });
    }
    if (terms.length === 0) {
      throw this.error(1, `the expression is zero: every coefficient of '${this.text}' cancels out`);
    }
    terms.sort((a, b) => a.col - b.col);
    return { terms };
  }

  private expr(): Affine {
    let x = this.term();
    for (;;) {
      const tok = this.peek();
      if (tok.kind !== 'op' || (tok.op !== '+' && tok.op !== '-')) return x;
      this.pos++;
      const y = this.term();
      x = this.add(x, y, tok.op === '-' ? -1 : 1, tok);
    }
  }

  private term(): Affine {
    let x = this.factor();
    for (;;) {
      const tok = this.peek();
      if (tok.kind !== 'op' || (tok.op !== '*' && tok.op !== '/')) return x;
      this.pos++;
      const y = this.factor();
      x = tok.op === '*' ? this.multiply(x, y, tok) : this.divide(x, y);
    }
  }

  private factor(): Affine {
    const tok = this.peek();
    this.pos++;
    switch (tok.kind) {
      case 'num':
        return { coefs: new Map(), constant: tok.value, start: tok.col, end: tok.end };
      case 'ref':
        if (!this.firstCol.has(tok.ref)) this.firstCol.set(tok.ref, tok.col);
        return { coefs: new Map([[tok.ref, 1]]), constant: 0, start: tok.col, end: tok.end };
      case 'end':
        throw this.unexpected(tok, "a number, a vector or '('");
      case 'op':
        break;
    }
    if (tok.op === '+' || tok.op === '-') {
      const inner = this.nested(tok, () => this.factor());
      if (tok.op === '+') return { ...inner, start: tok.col };
      return this.scale(inner, -1, tok.col, inner.end, tok.col);
    }
    if (tok.op === '(') {
      const inner = this.nested(tok, () => this.expr());
      const close = this.peek();
      if (close.kind === 'end') {
        throw this.error(tok.col, `unbalanced parentheses: '(' at column ${tok.col} is never closed`);
      }
      if (close.kind !== 'op' || close.op !== ')') throw this.unexpected(close, "an operator (+ - * /) or ')'");
      this.pos++;
      return { ...inner, start: tok.col, end: close.end };
    }
    throw this.unexpected(tok, "a number, a vector or '('");
  }

  private nested(tok: Token, parse: () => Affine): Affine {
    if (++this.depth > MAX_EXPRESSION_DEPTH) {
      throw this.error(tok.col, `the expression nests deeper than ${MAX_EXPRESSION_DEPTH} levels at column ${tok.col}`);
    }
    const out = parse();
    this.depth--;
    return out;
  }

  private add(x: Affine, y: Affine, sign: 1 | -1, op: Token): Affine {
    const coefs = new Map(x.coefs);
    for (const [ref, c] of y.coefs) coefs.set(ref, (coefs.get(ref) ?? 0) + sign * c);
    const out: Affine = { coefs, constant: x.constant + sign * y.constant, start: x.start, end: y.end };
    const mix = x.mix ?? y.mix ?? this.mixOf(x, y) ?? this.mixOf(y, x);
    if (mix !== undefined) out.mix = mix;
    this.assertFinite(out, op.col);
    return out;
  }

  /** The number operand `num` of a sum with a vector-valued `other`, if that is what it is. */
  private mixOf(num: Affine, other: Affine): { col: number; text: string } | undefined {
    if (num.coefs.size !== 0 || num.constant === 0 || other.coefs.size === 0) return undefined;
    return { col: num.start, text: this.source(num) };
  }

  private multiply(x: Affine, y: Affine, op: Token): Affine {
    if (x.coefs.size > 0 && y.coefs.size > 0) {
      throw this.error(
        op.col,
        `cannot multiply two vectors: '${this.source(x)}' * '${this.source(y)}' is not linear`,
        'only a number can scale a vector, e.g. 0.5*a.safetensors',
      );
    }
    return x.coefs.size > 0
      ? this.scale(x, y.constant, x.start, y.end, op.col)
      : this.scale(y, x.constant, x.start, y.end, op.col);
  }

  private divide(x: Affine, y: Affine): Affine {
    if (y.coefs.size > 0) {
      throw this.error(y.start, `cannot divide by a vector: '${this.source(y)}' at column ${y.start} is a vector`);
    }
    if (y.constant === 0) {
      throw this.error(y.start, `division by zero: '${this.source(y)}' at column ${y.start} is zero`);
    }
    const coefs = new Map<string, number>();
    for (const [ref, c] of x.coefs) coefs.set(ref, c / y.constant);
    const out: Affine = { coefs, constant: x.constant / y.constant, start: x.start, end: y.end };
    if (x.mix !== undefined) out.mix = x.mix;
    this.assertFinite(out, y.start);
    return out;
  }

  private scale(x: Affine, k: number, start: number, end: number, col: number): Affine {
    const coefs = new Map<string, number>();
    for (const [ref, c] of x.coefs) coefs.set(ref, c * k);
    const out: Affine = { coefs, constant: x.constant * k, start, end };
    if (x.mix !== undefined) out.mix = x.mix;
    this.assertFinite(out, col);
    return out;
  }

  private assertFinite(v: Affine, col: number): void {
    if (!Number.isFinite(v.constant)) {
      throw this.error(col, `'${this.source(v)}' is not a finite number (${v.constant})`);
    }
    for (const [ref, c] of v.coefs) {
      if (!Number.isFinite(c)) {
        throw this.error(col, `the coefficient of '${ref}' in '${this.source(v)}' is not finite (${c})`);
      }
    }
  }

  private source(v: Affine): string {
    return this.chars.slice(v.start - 1, v.end - 1).join('');
  }

  private peek(): Token {
    return this.tokens[this.pos];
  }

  private unexpected(tok: Token, expected: string): VectorError {
    return this.error(tok.col, `unexpected ${describeToken(tok)} at column ${tok.col}: expected ${expected}`);
  }

  private error(col: number, message: string, hint?: string): VectorError {
    return expressionError(this.text, col, message, hint);
  }
}
