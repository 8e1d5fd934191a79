import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cliMatMul, ORT_MIN_PRODUCT } from '../../src/cli/commands/analyze.js';
import { openCheckpointPath } from '../../src/io/open.js';
import { jsMatMul } from '../../src/tensor/linalg/index.js';
import { SeededRandom } from '../../src/tensor/rng.js';
import { tempDir, tinyValues, writeModel } from '../plan/helpers.js';
import { runCli } from '../helpers/cli.js';

const run = runCli;

let dir: string;
let model: string;
beforeAll(async () => {
  dir = await tempDir('weightkit-analyze-cli-');
  model = join(dir, 'base');
  await writeModel(model, tinyValues(0));
  await writeModel(join(dir, 'ft'), tinyValues(1, 0.3));
});

describe('weightkit analyze principal', () => {
  it('prints a per-matrix table with totals and writes the masks', async () => {
    const out = join(dir, 'masks.safetensors');
    const r = await run('analyze', 'principal', '--model', model, '--rank', '1', '--fraction', '0.25', '--out', out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/rank 1, fraction 0.25/);
    expect(r.stdout).toMatch(/model\.layers\.0\.mlp\.up_proj\.weight\s+6x4\s+1\s+6\s+\d+\.\d%\s+\d\.\d{3}\s+\d+\.\d%/);
    expect(r.stdout).toMatch(/^total\s+120 values\s+30\s/m);
    expect(r.stdout).toMatch(/skipped: .*lm_head\.weight \(excluded\)/);
    const m = await openCheckpointPath(out);
    expect(m.tensors()).toHaveLength(6);
    await m.close();
  });

  it('--json gives the report as data; defaults are LIFT\'s (rank 128, LoRA-equivalent budget 128)', async () => {
    const r = await run('analyze', 'principal', '--model', model, '--json');
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ rank: 128, budget: { loraRank: 128 }, totals: { jaccard: 1 } });
    expect(j.matrices[0]).toMatchObject({ method: 'full', kept: j.matrices[0].numel });
  });

  it('bad input: typed errors, exit 2, no stack trace', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['analyze', 'principal', '--model', join(dir, 'nope')], /CKPT_NOT_FOUND/],
      [['analyze', 'principal', '--model', model, '--fraction', '0'], /USAGE/],
      [['analyze', 'principal', '--model', model, '--fraction', '1.5'], /USAGE/],
      [['analyze', 'principal', '--model', model, '--fraction', 'half'], /USAGE/],
      [['analyze', 'principal', '--model', model, '--rank', '0'], /USAGE/],
      [['analyze', 'principal', '--model', model, '--rank', 'abc'], /USAGE/],
      [['analyze', 'principal', '--model', model, '--fraction', '0.1', '--lora-rank', '4'], /USAGE/],
      [['analyze', 'principal', '--model', model, '--out', join(dir, 'm.onnx')], /USAGE/],
      [['analyze', 'principal'], /USAGE/],
      [['analyze', 'spectrum'], /USAGE/],
      [['analyze', 'spectrum', '--model', model, '--vector', model], /USAGE/],
      [['analyze', 'spectrum', '--model', model, '--top', '-3'], /USAGE/],
      [['analyze', 'spectrum', '--vector', join(model, 'model.safetensors')], /VECTOR_INVALID/],
    ];
    for (const [args, code] of cases) {
      const r = await run(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(code);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    const j = await run('analyze', 'principal', '--model', model, '--fraction', '2', '--json');
    expect(JSON.parse(j.stderr).error.code).toBe('USAGE');
  });
});

describe('weightkit analyze spectrum', () => {
  it('a model: effective rank, stable rank and top singular values per matrix', async () => {
    const r = await run('analyze', 'spectrum', '--model', model);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/model\.embed_tokens\.weight\s+8x4\s+exact\s+\d\.\d\d\s+\d\.\d\d\s+100\.0%/);
    const j = JSON.parse((await run('analyze', 'spectrum', '--model', model, '--top', '2', '--json')).stdout);
    expect(j.tensors).toHaveLength(8);
    expect(j.tensors[0].singularValues).toHaveLength(2);
    expect(j.tensors[0].complete).toBe(true);
  });

  it('a task vector from vector extract', async () => {
    const v = join(dir, 'tv.safetensors');
    expect((await run('vector', 'extract', '--base', model, '--finetuned', join(dir, 'ft'), '--out', v)).code).toBe(0);
    const r = await run('analyze', 'spectrum', '--vector', v, '--json');
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.tensors.length).toBe(8);
    for (const t of j.tensors) expect(t.effectiveRank).toBeGreaterThan(1);
  });
});

describe('the CLI backend', () => {
  it('small products in JS, large ones on ONNX Runtime (same results)', async () => {
    const be = cliMatMul();
    try {
      const r = new SeededRandom(1);
      const a = Float32Array.from({ length: 64 * 64 }, () => r.normal());
      await be.matmul(a, a, 64, 64, 64);
      expect(be.usedOrt()).toBe(false);
      const n = 256;
      expect(n ** 3).toBeGreaterThanOrEqual(ORT_MIN_PRODUCT);
      const b = Float32Array.from({ length: n * n }, () => r.normal());
      const got = await be.matmul(b, b, n, n, n, { transB: true });
      expect(be.usedOrt()).toBe(true);
      const want = await jsMatMul.matmul(b, b, n, n, n, { transB: true });
      let err = 0;
      for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(got[i]! - want[i]!));
      expect(err).toBeLessThan(1e-3);
    } finally {
      await be.dispose();
    }
  });
});
