// Sizes on the command line: mergekit's k/M/B suffixes (B = a billion, either case), decimal and binary units.

import { describe, expect, it } from 'vitest';
import { parseSize } from '../../src/cli/args.js';

describe('parseSize', () => {
  it('reads plain bytes, decimal and binary units and mergekit\'s B in either case', () => {
    expect(parseSize('2000000', 'shard-size')).toBe(2_000_000);
    expect(parseSize('5GB', 'shard-size')).toBe(5e9);
    expect(parseSize('500M', 'shard-size')).toBe(5e8);
    expect(parseSize('512MiB', 'shard-size')).toBe(512 * 2 ** 20);
    expect(parseSize('5B', 'shard-size')).toBe(5e9);
    expect(parseSize('5b', 'shard-size')).toBe(5e9); // not 5 bytes: a thousand-shard output by accident
    expect(parseSize('1.5k', 'shard-size')).toBe(1500);
    for (const bad of ['0', '-1', 'x', '5 parsecs', '']) expect(() => parseSize(bad, 'shard-size')).toThrow(/--shard-size expects a positive size/);
  });
});
