// Regenerates docs/methods.md from the method declarations. Run: npx tsx scripts/gen-docs.ts
import { writeFile } from 'node:fs/promises';
import { methodsMarkdown } from '../src/merge/docs.js';
import { METHODS } from '../src/merge/registry.js';

await writeFile(new URL('../docs/methods.md', import.meta.url), methodsMarkdown(METHODS));
