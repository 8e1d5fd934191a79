// Start-up cost: the CLI and the merge workers load only what a plain merge needs. Their static import graphs (type-only
// imports left out, dynamic imports not followed) must not reach the ONNX protobuf schema or ONNX Runtime, which only
// ONNX inputs, ONNX patching and evaluation use (each loaded where it is needed): measured, the schema alone is 66
// modules and ~40 ms of every command's start.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it, vi } from 'vitest';

const ROOT = resolve(__dirname, '..', '..');
const HEAVY = ['@bufbuild/protobuf', 'onnx-buf', 'onnxruntime-node', '@tensorflow/tfjs'];

/** Specifiers of a module's static value imports and re-exports (`import type` / `export type` left out). */
function staticImports(source: string): string[] {
  const out: string[] = [];
  const re = /^\s*(import|export)\s+(?!type\b)([^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/gm;
  for (let m = re.exec(source); m !== null; m = re.exec(source)) {
    if (m[1] === 'export' && m[2] === undefined) continue; // `export { x }` without a source
    out.push(m[3]!);
  }
  return out;
}

/** Every module reachable from `entry` through static imports: source files and package names. */
function reachable(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const todo = [entry];
  while (todo.length > 0) {
    const f = todo.pop()!;
    if (files.has(f)) continue;
    files.add(f);
    for (const spec of staticImports(readFileSync(f, 'utf8'))) {
      if (spec.startsWith('.')) todo.push(resolve(dirname(f), spec.replace(/\.js$/, '.ts')));
      else if (!spec.startsWith('node:')) packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
    }
  }
  return { files, packages };
}

describe('start-up import graph', () => {
  it('finds static imports and skips type-only ones', () => {
    const src = "import a from 'x';\nimport type { B } from 'y';\nimport { c, type D } from './c.js';\nexport { e } from './e.js';\nexport type { F } from './f.js';\nconst g = await import('z');\n";
    expect(staticImports(src)).toEqual(['x', './c.js', './e.js']);
  });

  for (const entry of ['src/cli/main.ts', 'src/plan/worker.ts', 'src/plan/merge.ts']) {
    it(`${entry} does not load the ONNX schema, ONNX Runtime or TensorFlow.js`, () => {
      const { files, packages } = reachable(join(ROOT, entry));
      expect(files.size).toBeGreaterThan(entry.endsWith('main.ts') ? 50 : 10);
      expect(HEAVY.filter((p) => packages.has(p))).toEqual([]);
    });
  }
});

describe('start-up work on the main thread', () => {
  it("a command's run does not render the help text (yargs would after every handler starts); --help still does", async () => {
    const { buildParser, main } = await import('../../src/cli/main.js');
    const out: string[] = [];
    const io = { stdout: (s: string) => void out.push(s), stderr: (s: string) => void out.push(s), isTTY: false };
    const args = ['methods', '--json'];
    const parser = buildParser(args, { io });
    const usage = (parser as unknown as { getInternalMethods(): { getUsageInstance(): { help(): string } } }).getInternalMethods().getUsageInstance();
    const help = vi.spyOn(usage, 'help');
    await parser.parseAsync(args);
    expect(out.join('')).toContain('"ties"');
    expect(help).not.toHaveBeenCalled();
    out.length = 0;
    expect(await main(['--help'], io)).toBe(0);
    expect(out.join('')).toContain('weightkit merge');
  });
});
