// Grids of interpolation coefficients as typed on the command line (`0:1:0.1`, `0.2,0.5,0.8`, `0.3`) and the folder
// names their outputs get. Guarantees: values are rounded to 12 significant digits (0.1 * 3 is 0.3), a range
// includes its stop within a relative tolerance, and names sort numerically. Pure: no node: imports.

import { UsageError } from '../errors.js';

/** At most this many points in one grid. */
export const MAX_GRID_POINTS = 10_000;

/** Relative tolerance (in steps) within which a range's last point counts as reaching `stop`. */
const STOP_TOLERANCE = 1e-9;

const NUMBER_RE = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** Round to 12 significant digits (drops binary noise such as 0.30000000000000004); -0 becomes 0. */
export function roundAlpha(x: number): number {
  const r = Number(x.toPrecision(12));
  return r === 0 ? 0 : r;
}

function bad(option: string, text: string, why: string): UsageError {
  return new UsageError('USAGE', `--${option} ${why} (got '${text}')`, {
    hint: `write start:stop:step (e.g. 0:1:0.1), a comma list (0.2,0.5,0.8) or one number`,
  });
}

function parseNumber(s: string, option: string, text: string): number {
  const t = s.trim();
  if (!NUMBER_RE.test(t)) throw bad(option, text, `expects numbers, '${t}' is not one`);
  const v = Number(t);
  if (!Number.isFinite(v)) throw bad(option, text, `expects finite numbers, '${t}' is not`);
  return v;
}

/**
 * Parse a grid: `start:stop:step` (step > 0, start <= stop, stop included when the range reaches it within 1e-9
 * steps), a comma list, or a single number. Every value is rounded to 12 significant digits.
 * Throws UsageError('USAGE') naming `--option` for bad text, step <= 0, an empty range or more than 10,000 points.
 */
export function parseGrid(text: string, option: string): number[] {
  const src = String(text).trim();
  if (src === '') throw bad(option, text, 'is empty');
  if (src.includes(':')) {
    const parts = src.split(':');
    if (parts.length !== 3) throw bad(option, text, 'expects start:stop:step with three numbers');
    const start = parseNumber(parts[0]!, option, text);
    const stop = parseNumber(parts[1]!, option, text);
    const step = parseNumber(parts[2]!, option, text);
    if (!(step > 0)) throw bad(option, text, 'needs a step greater than 0');
    if (start > stop) throw bad(option, text, 'needs start <= stop');
    const span = (stop - start) / step;
    if (!Number.isFinite(span) || span + 1 > MAX_GRID_POINTS + 1) {
      throw bad(option, text, `would have more than ${MAX_GRID_POINTS} points`);
    }
    const last = Math.floor(span + STOP_TOLERANCE);
    if (last + 1 > MAX_GRID_POINTS) throw bad(option, text, `would have more than ${MAX_GRID_POINTS} points`);
    const out: number[] = [];
    for (let i = 0; i <= last; i++) out.push(roundAlpha(i === last && Math.abs(span - last) <= STOP_TOLERANCE ? stop : start + i * step));
    return out;
  }
  const items = src.split(',');
  if (items.length > MAX_GRID_POINTS) throw bad(option, text, `would have more than ${MAX_GRID_POINTS} points`);
  return items.map((s) => {
    if (s.trim() === '') throw bad(option, text, 'has an empty entry');
    return roundAlpha(parseNumber(s, option, text));
  });
}

/**
 * Folder name of one coefficient: `alpha-0.30`, `alpha-0.305`, `alpha-1.00`; negative values `alpha-m0.10`. At
 * least two decimals, more only when the (12-digit rounded) value needs them, so names of coefficients in [0, 10)
 * sort like the numbers and distinct rounded values get distinct names.
 */
export function formatAlpha(alpha: number): string {
  if (!Number.isFinite(alpha)) throw new UsageError('USAGE', `alpha must be a finite number (got ${String(alpha)})`);
  const r = roundAlpha(alpha);
  const abs = Math.abs(r);
  let d = 2;
  while (d < 20 && Number(abs.toFixed(d)) !== abs) d++;
  return `alpha-${r < 0 ? 'm' : ''}${abs.toFixed(d)}`;
}
