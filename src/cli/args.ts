// Parsing helpers for command-line values (sizes, dtypes), raising UsageError with the option named.

import { UsageError } from '../errors.js';
import { parseDType, type DType } from '../tensor/dtype.js';

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  // mergekit's B is a billion (its parse_kmb takes the suffix in either case)
  b: 1e9,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  t: 1e12,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/**
 * A byte size: plain bytes (`5000000000`), decimal units (`5GB`, `500M`, `5G`), binary units (`512MiB`), or
 * mergekit's `5B` / `5b` (billion bytes), units in either case.
 */
export function parseSize(value: unknown, option: string): number {
  const s = String(value).trim();
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(s);
  if (m) {
    const unitKey = m[2]!.toLowerCase();
    const mult = SIZE_UNITS[unitKey];
    if (mult !== undefined) {
      const bytes = Math.round(Number(m[1]) * mult);
      if (Number.isSafeInteger(bytes) && bytes > 0) return bytes;
    }
  }
  throw new UsageError('USAGE', `--${option} expects a positive size such as 5GB, 500MB or 2000000 (got '${s}')`);
}

export function parseDTypeOption(value: unknown, option: string, allowed: readonly DType[]): DType {
  const d = typeof value === 'string' ? parseDType(value) : undefined;
  if (d === undefined || !allowed.includes(d)) {
    const names = allowed.map((a) => a.toLowerCase()).join(', ');
    throw new UsageError('USAGE', `--${option} must be one of ${names} (got '${String(value)}')`);
  }
  return d;
}
