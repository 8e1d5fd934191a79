import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VectorError } from '../../src/errors.js';
import {
  MAX_EXPRESSION_DEPTH,
  formatCombination,
  parseTerm,
  parseVectorExpression,
  type LinearCombination,
} from '../../src/vectors/expression.js';

/** ref -> coef, in term order (toEqual on objects ignores key order, so the order is checked separately). */
function coefs(text: string): Record<string, number> {
  return Object.fromEntries(parseVectorExpression(text).terms.map((t) => [t.ref, t.coef]));
}
function refs(text: string): string[] {
  return parseVectorExpression(text).terms.map((t) => t.ref);
}

function fails(fn: () => unknown): VectorError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(VectorError);
    expect((e as VectorError).code).toBe('VECTOR_EXPRESSION');
    return e as VectorError;
  }
  throw new Error('expected a VectorError');
}
/** The 1-based column of the VECTOR_EXPRESSION error `text` raises. */
function errorCol(text: string): number | undefined {
  return fails(() => parseVectorExpression(text)).where.col;
}

describe('parseVectorExpression: grammar', () => {
  it('weighted sum and difference', () => {
    expect(parseVectorExpression('0.5*a + 0.5*b - c')).toEqual({
      terms: [
        { ref: 'a', coef: 0.5, col: 5 },
        { ref: 'b', coef: 0.5, col: 13 },
        { ref: 'c', coef: -1, col: 17 },
      ],
    });
  });

  it('a bare ref has coefficient 1, negation -1, unary plus 1', () => {
    expect(coefs('a')).toEqual({ a: 1 });
    expect(coefs('-a')).toEqual({ a: -1 });
    expect(coefs('+a')).toEqual({ a: 1 });
    expect(coefs('- -a')).toEqual({ a: 1 });
    expect(coefs('--a')).toEqual({ a: 1 });
  });

  it('scaling a parenthesised difference, in order of first appearance', () => {
    expect(coefs('2*(b - a) + c')).toEqual({ b: 2, a: -2, c: 1 });
    expect(refs('2*(b - a) + c')).toEqual(['b', 'a', 'c']);
  });

  it('analogy c + (b - a)', () => {
    expect(coefs('c + (b - a)')).toEqual({ c: 1, b: 1, a: -1 });
    expect(refs('c + (b - a)')).toEqual(['c', 'b', 'a']);
  });

  it('numbers joined by - or / without spaces are arithmetic, not file names', () => {
    expect(coefs('(2-1)*v1.safetensors')).toEqual({ 'v1.safetensors': 1 });
    expect(coefs('6/2*v1.safetensors')).toEqual({ 'v1.safetensors': 3 });
    expect(coefs('(1e-1-1e-1)*a + b')).toEqual({ b: 1 }); // exponents keep their own signs
    expect(coefs('(4/2/2)*a')).toEqual({ a: 1 });
    expect(fails(() => parseVectorExpression('a*(0.5-0.5)')).message).toContain('the expression is zero');
    expect(fails(() => parseVectorExpression('1/0*a')).message).toContain('division by zero');
    expect(fails(() => parseVectorExpression('a / (1-1)')).message).toContain('division by zero');
    // a name with digits and dashes is still a file name
    expect(refs('2-model.safetensors + runs/v-1.safetensors')).toEqual(['2-model.safetensors', 'runs/v-1.safetensors']);
  });

  it('division by a number', () => {
    expect(coefs('a / 4')).toEqual({ a: 0.25 });
    expect(coefs('(a - b) / 2')).toEqual({ a: 0.5, b: -0.5 });
    expect(coefs('a / 2 / 2')).toEqual({ a: 0.25 }); // left associative: (a/2)/2
    expect(coefs('a / (1 / 4)')).toEqual({ a: 4 });
  });

  it('negated group', () => {
    expect(coefs('-(a - b)')).toEqual({ a: -1, b: 1 });
  });

  it('repeated refs are summed into one term at the first column', () => {
    expect(parseVectorExpression('a + a')).toEqual({ terms: [{ ref: 'a', coef: 2, col: 1 }] });
    expect(parseVectorExpression('b + a - 0.25*b')).toEqual({
      terms: [
        { ref: 'b', coef: 0.75, col: 1 },
        { ref: 'a', coef: 1, col: 5 },
      ],
    });
  });

  it('unary minus after *', () => {
    expect(coefs('3 * -a')).toEqual({ a: -3 });
    expect(coefs('-2*a')).toEqual({ a: -2 });
    expect(coefs('a * -0.5')).toEqual({ a: -0.5 });
  });

  it('number forms: leading dot, trailing dot, exponents', () => {
    expect(coefs('.5*a')).toEqual({ a: 0.5 });
    expect(coefs('2.*a')).toEqual({ a: 2 });
    expect(coefs('1e-3*a')).toEqual({ a: 0.001 });
    expect(coefs('1E2*a')).toEqual({ a: 100 });
    expect(coefs('1e+2*a')).toEqual({ a: 100 });
    expect(coefs('2.5e-1 * a')).toEqual({ a: 0.25 });
    expect(coefs('(1 + 2) * 3 * a')).toEqual({ a: 9 }); // number arithmetic is fine
  });

  it('spacing does not matter around * + ( )', () => {
    expect(coefs('0.5*a+0.5*b')).toEqual({ a: 0.5, b: 0.5 });
    expect(coefs('  2 * ( b -a )\t')).toEqual({ b: 2, a: -2 });
  });

  it('quoted refs may hold spaces, + * ( ) and -', () => {
    expect(parseVectorExpression(`0.5*'my runs/task a+b.safetensors' - "x (1).st"`)).toEqual({
      terms: [
        { ref: 'my runs/task a+b.safetensors', coef: 0.5, col: 5 },
        { ref: 'x (1).st', coef: -1, col: 38 },
      ],
    });
    expect(coefs(`'-a' + '2'`)).toEqual({ '-a': 1, '2': 1 });
    expect(coefs(`'a.st' + a.st`)).toEqual({ 'a.st': 2 }); // quoting does not change the ref
  });

  it('paths with - and / are one ref', () => {
    expect(coefs('0.5*runs/task-a.safetensors - ../b-2.st')).toEqual({
      'runs/task-a.safetensors': 0.5,
      '../b-2.st': -1,
    });
    expect(coefs('/abs/task.st - 2*/abs/other.st')).toEqual({ '/abs/task.st': 1, '/abs/other.st': -2 });
    expect(coefs('C:\\w\\a.st')).toEqual({ 'C:\\w\\a.st': 1 });
  });

  it('- and / without spaces after a ref stay inside it', () => {
    expect(coefs('a.st-b.st')).toEqual({ 'a.st-b.st': 1 });
    expect(coefs('a.st/2')).toEqual({ 'a.st/2': 1 });
    expect(coefs('a.st /2')).toEqual({ 'a.st': 0.5 }); // after an operand, a leading / divides
    expect(coefs('2-a')).toEqual({ '2-a': 1 }); // not a number, so a ref
  });

  it('names the caller maps to files', () => {
    expect(coefs('tau_2016 - 0.5*tau_2012')).toEqual({ tau_2016: 1, tau_2012: -0.5 });
  });

  it('drops zero coefficients', () => {
    expect(parseVectorExpression('a - a + b')).toEqual({ terms: [{ ref: 'b', coef: 1, col: 9 }] });
    expect(refs('0*a + b')).toEqual(['b']);
  });

  it('columns count characters, not UTF-16 units', () => {
    expect(parseVectorExpression('😀.st + b').terms[1].col).toBe(8);
  });
});

describe('parseVectorExpression: errors', () => {
  it('empty expression', () => {
    expect(errorCol('')).toBe(1);
    expect(errorCol('   ')).toBe(1);
  });

  it('unexpected end, with the column just past the text', () => {
    expect(errorCol('a +')).toBe(4);
    expect(errorCol('2 *')).toBe(4);
    expect(errorCol('-')).toBe(2);
  });

  it('unexpected tokens', () => {
    expect(errorCol('a b')).toBe(3);
    expect(errorCol('a + * b')).toBe(5);
    expect(errorCol('()')).toBe(2);
    expect(errorCol('a (b)')).toBe(3);
    expect(errorCol('a / / 2')).toBe(5);
    expect(errorCol('(a b)')).toBe(4);
  });

  it('unbalanced parentheses', () => {
    expect(errorCol('(a + b')).toBe(1);
    expect(errorCol('2 * ((a - b)')).toBe(5);
    expect(errorCol('a + b)')).toBe(6);
    expect(errorCol(')')).toBe(1);
  });

  it('quotes: unterminated and empty', () => {
    expect(errorCol(`a + 'b c`)).toBe(5);
    expect(errorCol(`a + ""`)).toBe(5);
  });

  it('product of two vectors', () => {
    expect(errorCol('a * b')).toBe(3);
    expect(errorCol('2*a + (a - b)*(c)')).toBe(14);
    expect(errorCol('(a - a) * b')).toBe(9); // structurally a product of vectors, even if one cancels
  });

  it('division by a vector', () => {
    expect(errorCol('a / b')).toBe(5);
    expect(errorCol('2 / a')).toBe(5);
    expect(errorCol('a / (b - c)')).toBe(5);
  });

  it('division by zero', () => {
    expect(errorCol('a / 0')).toBe(5);
    expect(errorCol('a / (1 - 1)')).toBe(5);
    expect(errorCol('a / 0.0e5')).toBe(5);
  });

  it('adding a number to a vector', () => {
    expect(errorCol('a + 1')).toBe(5);
    expect(errorCol('1 + a')).toBe(1);
    expect(errorCol('b + 2*(a - 0.5)')).toBe(12);
    expect(errorCol('2 * 3')).toBe(1); // no vector at all
    expect(coefs('(a + 1) - 1')).toEqual({ a: 1 }); // the constant part of the result is what counts
  });

  it('the expression is zero', () => {
    expect(errorCol('a - a')).toBe(1);
    expect(errorCol('0*a + 0*b')).toBe(1);
    expect(errorCol('1e-400 * a')).toBe(1); // underflows to 0
  });

  it('non-finite numbers and coefficients', () => {
    expect(errorCol('1e999*a')).toBe(1);
    expect(errorCol('b + 1e308*10*a')).toBe(10);
    expect(errorCol('1e308*a + 1e308*a')).toBe(9);
    expect(errorCol('a / 1e-320')).toBe(5);
  });

  it('nesting beyond the depth limit is an error, not a stack overflow', () => {
    const deep = MAX_EXPRESSION_DEPTH + 1;
    expect(errorCol(`${'('.repeat(deep)}a${')'.repeat(deep)}`)).toBe(deep);
    expect(errorCol(`${'-'.repeat(10_000)}a`)).toBe(deep);
    expect(coefs(`${'('.repeat(MAX_EXPRESSION_DEPTH)}a${')'.repeat(MAX_EXPRESSION_DEPTH)}`)).toEqual({ a: 1 });
  });

  it('the message quotes the text and points a caret at the column', () => {
    const e = fails(() => parseVectorExpression('0.5*a\t+ 1'));
    expect(e.where).toEqual({ col: 9 });
    expect(e.message).toContain("'1'");
    expect(e.message.endsWith('\n  0.5*a + 1\n          ^')).toBe(true);
    expect(fails(() => parseVectorExpression('a * b')).hint).toBeDefined();
  });

  it('random text gives a result or a VECTOR_EXPRESSION error, never anything else', () => {
    const alphabet = fc.constantFrom(...'ab01.e+-*/() \'"'.split(''));
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 30 }), (cs) => {
        try {
          const c = parseVectorExpression(cs.join(''));
          expect(c.terms.length).toBeGreaterThan(0);
          for (const t of c.terms) expect(Number.isFinite(t.coef) && t.coef !== 0).toBe(true);
        } catch (e) {
          expect(e).toBeInstanceOf(VectorError);
          expect((e as VectorError).code).toBe('VECTOR_EXPRESSION');
          expect((e as VectorError).where.col).toBeGreaterThanOrEqual(1);
        }
      }),
    );
  });
});

describe('parseTerm', () => {
  it('splits COEF:PATH at the first colon', () => {
    expect(parseTerm('0.5:dir/a.safetensors')).toEqual({ coef: 0.5, ref: 'dir/a.safetensors' });
    expect(parseTerm('-1:c.st')).toEqual({ coef: -1, ref: 'c.st' });
    expect(parseTerm('+2e-1:C:\\runs\\a b.st')).toEqual({ coef: 0.2, ref: 'C:\\runs\\a b.st' });
    expect(parseTerm('.5:x')).toEqual({ coef: 0.5, ref: 'x' });
    expect(parseTerm('0:x')).toEqual({ coef: 0, ref: 'x' });
  });

  it('rejects a missing colon, a bad or non-finite coefficient and an empty path', () => {
    expect(fails(() => parseTerm('a.st')).where).toEqual({ col: 1 });
    expect(fails(() => parseTerm(':a.st')).where).toEqual({ col: 1 });
    expect(fails(() => parseTerm('half:a.st')).where).toEqual({ col: 1 });
    expect(fails(() => parseTerm('0x10:a.st')).where).toEqual({ col: 1 });
    expect(fails(() => parseTerm('Infinity:a.st')).where).toEqual({ col: 1 });
    expect(fails(() => parseTerm('NaN:a.st')).where).toEqual({ col: 1 });
    expect(fails(() => parseTerm('1e999:a.st')).where).toEqual({ col: 1 });
    expect(fails(() => parseTerm('0.5:')).where).toEqual({ col: 5 });
  });
});

describe('formatCombination', () => {
  const combo = (...terms: [string, number][]): LinearCombination => ({
    terms: terms.map(([ref, coef], i) => ({ ref, coef, col: i + 1 })),
  });

  it('canonical text', () => {
    expect(formatCombination(combo(['a.st', 0.5], ['b.st', 0.5], ['c.st', -1]))).toBe('0.5*a.st + 0.5*b.st - c.st');
    expect(formatCombination(combo(['a', -1], ['b', 2]))).toBe('-a + 2*b');
    expect(formatCombination(combo(['a', -0.25]))).toBe('-0.25*a');
    expect(formatCombination(combo(['a', 1e-7], ['b', 1e21]))).toBe('1e-7*a + 1e+21*b');
  });

  it('quotes refs that would not read back bare', () => {
    expect(formatCombination(combo(['my a.st', 1], ['-x', 1], ['2', 1], ["it's", 1], ["it's here", -1]))).toBe(
      `'my a.st' + '-x' + '2' + it's - "it's here"`,
    );
    expect(formatCombination(combo(['runs/task-a.st', 1], ['/abs/b.st', 1]))).toBe('runs/task-a.st + /abs/b.st');
  });

  it('rejects what has no text', () => {
    fails(() => formatCombination({ terms: [] }));
    fails(() => formatCombination(combo(['a', Number.NaN])));
    fails(() => formatCombination(combo(['a b\'"', 1])));
  });

  it('round trip: parse(format(x)) has the same refs and bit-identical coefficients', () => {
    const x = parseVectorExpression(`0.1*'a b.st' - (c-1.st + 2*d/e.st) / 3 + 1e-3*"f+g" - 7*/h.st`);
    const back = parseVectorExpression(formatCombination(x));
    expect(back.terms.map((t) => [t.ref, t.coef])).toEqual(x.terms.map((t) => [t.ref, t.coef]));
    expect(formatCombination(back)).toBe(formatCombination(x));
  });

  it('round trip over random combinations', () => {
    const ref = fc.oneof(
      fc.stringMatching(/^[a-z][a-z0-9_./-]{0,8}$/),
      fc.string({ minLength: 1, maxLength: 8 }).filter((s) => !(s.includes("'") && s.includes('"'))),
    );
    const coef = fc.double({ noNaN: true, noDefaultInfinity: true }).filter((c) => c !== 0);
    fc.assert(
      fc.property(fc.uniqueArray(fc.tuple(ref, coef), { minLength: 1, maxLength: 6, selector: ([r]) => r }), (ts) => {
        const x = combo(...ts);
        const back = parseVectorExpression(formatCombination(x));
        expect(back.terms.map((t) => [t.ref, t.coef])).toEqual(ts);
      }),
    );
  });
});
