import { describe, expect, it } from 'vitest';
import { WeightkitError } from '../../src/errors.js';
import { formatAlpha, MAX_GRID_POINTS, parseGrid } from '../../src/vectors/grid.js';

function codeOf(f: () => unknown): { code: string; message: string } {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(WeightkitError);
    return { code: (e as WeightkitError).code, message: (e as Error).message };
  }
  throw new Error('expected an error');
}

describe('parseGrid', () => {
  it('expands start:stop:step inclusive of stop, rounded to 12 significant digits', () => {
    expect(parseGrid('0:1:0.1', 'alphas')).toEqual([0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]);
    // 0.3 / 0.1 = 2.9999999999999996: the stop is still included, and 3 * 0.1 prints as 0.3
    const g = parseGrid('0:0.3:0.1', 'alphas');
    expect(g).toEqual([0, 0.1, 0.2, 0.3]);
    expect(String(g[3])).toBe('0.3');
    expect(parseGrid('0.2:0.5:0.2', 'alphas')).toEqual([0.2, 0.4]);
    expect(parseGrid('0.5:0.5:0.1', 'alphas')).toEqual([0.5]);
    expect(parseGrid('-1:1:1', 'alphas')).toEqual([-1, 0, 1]);
  });

  it('takes comma lists and single numbers', () => {
    expect(parseGrid('0.2,0.5,0.8', 'alphas')).toEqual([0.2, 0.5, 0.8]);
    expect(parseGrid(' 0.2 , 5e-1 ', 'alphas')).toEqual([0.2, 0.5]);
    expect(parseGrid('0.3', 'alpha')).toEqual([0.3]);
    expect(parseGrid('1', 'alpha')).toEqual([1]);
  });

  it('allows exactly the maximum number of points', () => {
    expect(parseGrid(`0:${MAX_GRID_POINTS - 1}:1`, 'alphas')).toHaveLength(MAX_GRID_POINTS);
  });

  it.each([
    ['', 'empty'],
    ['abc', 'not a number'],
    ['0:1', 'two parts'],
    ['0:1:0.1:2', 'four parts'],
    ['0:1:0', 'zero step'],
    ['0:1:-0.1', 'negative step'],
    ['1:0:0.1', 'start after stop'],
    ['0:1:1e-5', 'too many points'],
    [`0:${MAX_GRID_POINTS}:1`, 'one point too many'],
    ['0.1,,0.2', 'empty entry'],
    ['0.1,x', 'bad entry'],
    ['Infinity', 'infinite'],
    ['0x10', 'hex'],
  ])('rejects %j (%s) with USAGE naming the option', (text) => {
    const e = codeOf(() => parseGrid(text, 'alphas'));
    expect(e.code).toBe('USAGE');
    expect(e.message).toContain('--alphas');
  });
});

describe('formatAlpha', () => {
  it('writes at least two decimals and more only when needed', () => {
    expect(formatAlpha(0)).toBe('alpha-0.00');
    expect(formatAlpha(0.3)).toBe('alpha-0.30');
    expect(formatAlpha(0.1 + 0.2)).toBe('alpha-0.30');
    expect(formatAlpha(1)).toBe('alpha-1.00');
    expect(formatAlpha(0.305)).toBe('alpha-0.305');
    expect(formatAlpha(0.125)).toBe('alpha-0.125');
    expect(formatAlpha(-0.1)).toBe('alpha-m0.10');
    expect(formatAlpha(1e-7)).toBe('alpha-0.0000001');
  });

  it('sorts like the numbers and keeps distinct values apart', () => {
    const values = [...parseGrid('0:2:0.05', 'alphas'), 0.125, 0.305, 0.3001, 1.5, 9.99];
    const names = values.map(formatAlpha);
    expect(new Set(names).size).toBe(new Set(values).size);
    const byName = [...values].sort((a, b) => (formatAlpha(a) < formatAlpha(b) ? -1 : formatAlpha(a) > formatAlpha(b) ? 1 : 0));
    expect(byName).toEqual([...values].sort((a, b) => a - b));
  });

  it('rejects non-finite values', () => {
    expect(codeOf(() => formatAlpha(Number.NaN)).code).toBe('USAGE');
  });
});
