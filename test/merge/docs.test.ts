import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { methodsMarkdown } from '../../src/merge/docs.js';
import { METHODS } from '../../src/merge/registry.js';

describe('docs/methods.md', () => {
  it('is generated from the current method declarations (npx tsx scripts/gen-docs.ts)', async () => {
    expect(await readFile(new URL('../../docs/methods.md', import.meta.url), 'utf8')).toBe(methodsMarkdown(METHODS));
  });

  it('every method documents its formula and reference', () => {
    for (const m of METHODS) {
      expect(m.formula.length, m.name).toBeGreaterThan(20);
      expect(m.reference.length, m.name).toBeGreaterThan(10);
      expect(m.summary.length, m.name).toBeGreaterThan(10);
    }
  });
});
