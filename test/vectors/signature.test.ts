import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import yargs from 'yargs';
import { describe, expect, it } from 'vitest';
import { signatureCommand } from '../../src/cli/commands/vector-signature.js';
import type { CommandContext } from '../../src/cli/main.js';
import { isWeightkitError, UsageError } from '../../src/errors.js';
import { openCheckpointPath } from '../../src/io/open.js';
import { writeSafetensors } from '../../src/io/safetensors/writer.js';
import { makeTensor, type Tensor } from '../../src/tensor/tensor.js';
import { fingerprintCheckpoint, type VectorMeta } from '../../src/vectors/format.js';
import { parseQuantizeSpec } from '../../src/vectors/quantize.js';
import { openVector } from '../../src/vectors/reader.js';
import { depthUnits, extractSignature, signatureWeights, type SignatureOptions } from '../../src/vectors/signature.js';
import { tempDir, tinyValues, TINY_SHAPES, writeModel } from '../plan/helpers.js';

async function writeFile32(path: string, tensors: Record<string, { shape: number[]; values: number[] }>): Promise<void> {
  const t: Record<string, Tensor> = {};
  for (const [name, { shape, values }] of Object.entries(tensors)) t[name] = makeTensor('F32', shape, Float32Array.from(values));
  await writeSafetensors(path, t, { metadata: { format: 'pt' } });
}

async function readVector(path: string): Promise<{ meta: VectorMeta; tensors: Map<string, Float32Array> }> {
  const v = await openVector(path);
  try {
    const tensors = new Map<string, Float32Array>();
    for (const t of v.tensors()) tensors.set(t.name, Float32Array.from(await v.readF32(t.name)));
    return { meta: v.meta, tensors };
  } finally {
    await v.close();
  }
}

async function expectCode(p: Promise<unknown>, code: string): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    expect(isWeightkitError(e)).toBe(true);
    expect((e as { code: string }).code).toBe(code);
    return e;
  }
  throw new Error(`expected ${code}, got success`);
}

function dot(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * y[i]!;
  return s;
}

/** In-memory reference: RWS per tensor in f64. */
function referenceRws(pre: Float32Array, clean: Float32Array, robust: Float32Array): Float64Array {
  const n = pre.length;
  const a = Float64Array.from(clean, (c, i) => c - pre[i]!);
  const d = Float64Array.from(robust, (r, i) => r - pre[i]!);
  const aa = dot(a, a);
  const k = aa === 0 ? 0 : dot(d, a) / aa;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = d[i]! - k * a[i]!;
  return out;
}

const UNIT_OF: Record<string, string> = {
  'model.embed_tokens.weight': 'pre',
  'model.layers.0.input_layernorm.weight': 'model.layers.0',
  'model.layers.0.mlp.up_proj.weight': 'model.layers.0',
  'model.layers.0.self_attn.q_proj.weight': 'model.layers.0',
  'model.layers.1.input_layernorm.weight': 'model.layers.1',
  'model.layers.1.mlp.up_proj.weight': 'model.layers.1',
  'model.layers.1.self_attn.q_proj.weight': 'model.layers.1',
  'model.layers.2.input_layernorm.weight': 'model.layers.2',
  'model.layers.2.mlp.up_proj.weight': 'model.layers.2',
  'model.layers.2.self_attn.q_proj.weight': 'model.layers.2',
  'model.norm.weight': 'post',
  'lm_head.weight': 'post',
};

/** pre, clean and robust tiny Llama-shaped models; `robustScale(name)` scales the robust delta per tensor. */
async function trio(robustScale: (name: string) => number = () => 0.1) {
  const dir = await tempDir('weightkit-rws-');
  const pre = tinyValues(0);
  const clean = tinyValues(1, 0.05);
  const noise = tinyValues(2, 1);
  const robust = new Map<string, Float32Array>();
  for (const [name, p] of pre) {
    const z = noise.get(name)!;
    // noise(2) = base + N(0,1); subtracting the base leaves the seeded delta
    robust.set(name, Float32Array.from(p, (v, i) => Math.fround(v + (z[i]! - v) * robustScale(name))));
  }
  const paths = { pre: join(dir, 'pre'), clean: join(dir, 'clean'), robust: join(dir, 'robust') };
  await writeModel(paths.pre, pre);
  await writeModel(paths.clean, clean);
  await writeModel(paths.robust, robust);
  return { dir, ...paths, values: { pre, clean, robust } };
}

describe('signatureWeights', () => {
  it('defaults to alpha/|C| and validates an explicit list', () => {
    expect(signatureWeights(1)).toEqual([1]);
    expect(signatureWeights(4)).toEqual([0.25, 0.25, 0.25, 0.25]);
    expect(signatureWeights(2, 0.5)).toEqual([0.25, 0.25]);
    expect(signatureWeights(3, 1, [0.2, 0.3, 0.5])).toEqual([0.2, 0.3, 0.5]);
    for (const f of [() => signatureWeights(2, 1, [1]), () => signatureWeights(0), () => signatureWeights(2, 1, [1, NaN]), () => signatureWeights(2, Infinity)]) {
      let code: string | undefined;
      try {
        f();
      } catch (e) {
        code = (e as { code: string }).code;
      }
      expect(code).toBe('USAGE');
    }
  });
});

describe('depthUnits', () => {
  it('numbered layers: pre (embeddings) at depth 0, layer i at i + 1, post last', () => {
    const units = depthUnits(Object.keys(TINY_SHAPES));
    expect(units.map((u) => [u.unit, u.depth, u.tensors.length])).toEqual([
      ['pre', 0, 1],
      ['model.layers.0', 1, 3],
      ['model.layers.1', 2, 3],
      ['model.layers.2', 3, 3],
      ['post', 4, 2],
    ]);
    expect(units[4]!.tensors).toEqual(['model.norm.weight', 'lm_head.weight']);
  });

  it('a stem outside the numbered blocks counts as pre; layer order is numeric', () => {
    const units = depthUnits(['blocks.10.w', 'blocks.2.w', 'conv1.weight', 'bn1.bias', 'fc.weight', 'blocks.2.b']);
    expect(units).toEqual([
      { unit: 'pre', depth: 0, tensors: ['conv1.weight', 'bn1.bias'] },
      { unit: 'blocks.2', depth: 3, tensors: ['blocks.2.w', 'blocks.2.b'] },
      { unit: 'blocks.10', depth: 11, tensors: ['blocks.10.w'] },
      { unit: 'post', depth: 12, tensors: ['fc.weight'] },
    ]);
  });

  it('without numbered layers: module prefixes in checkpoint order', () => {
    const units = depthUnits(['stemconv.weight', 'stemconv.bias', 'head.proj.weight', 'scale', 'head.proj.bias', 'head.norm.weight']);
    expect(units).toEqual([
      { unit: 'stemconv', depth: 0, tensors: ['stemconv.weight', 'stemconv.bias'] },
      { unit: 'head.proj', depth: 1, tensors: ['head.proj.weight', 'head.proj.bias'] },
      { unit: 'scale', depth: 2, tensors: ['scale'] },
      { unit: 'head.norm', depth: 3, tensors: ['head.norm.weight'] },
    ]);
  });
});

describe('extractSignature', () => {
  it('removes the clean direction: hand-computed RWS, RWS = d when a = 0, RWS = 0 when d ∥ a', async () => {
    const dir = await tempDir('weightkit-rws-');
    const pre = { shape: [2, 2], values: [1, 2, 3, 4] };
    await writeFile32(join(dir, 'pre.safetensors'), {
      'x.weight': pre,
      'y.weight': { shape: [3], values: [0.5, -1, 2] },
      'z.weight': { shape: [2], values: [1, 1] },
    });
    // x: a = [1,0,1,0], d = [2,1,0,3]: <d,a>/<a,a> = 1, RWS = [1,1,-1,3]
    // y: a = 0, d = [1,2,-2] -> RWS = d;  z: a = [1,-2], d = [-2,4] = -2a -> RWS = 0
    await writeFile32(join(dir, 'clean.safetensors'), {
      'x.weight': { shape: [2, 2], values: [2, 2, 4, 4] },
      'y.weight': { shape: [3], values: [0.5, -1, 2] },
      'z.weight': { shape: [2], values: [2, -1] },
    });
    await writeFile32(join(dir, 'robust.safetensors'), {
      'x.weight': { shape: [2, 2], values: [3, 3, 3, 7] },
      'y.weight': { shape: [3], values: [1.5, 1, 0] },
      'z.weight': { shape: [2], values: [-1, 5] },
    });
    const out = join(dir, 'rws.safetensors');
    const res = await extractSignature({ pre: join(dir, 'pre.safetensors'), clean: join(dir, 'clean.safetensors'), robust: join(dir, 'robust.safetensors'), out, layers: '*' });
    expect(res.selected).toEqual(['x.weight', 'y.weight', 'z.weight']);
    const { tensors } = await readVector(out);
    expect(Array.from(tensors.get('x.weight')!)).toEqual([1, 1, -1, 3]);
    expect(dot(tensors.get('x.weight')!, [1, 0, 1, 0])).toBe(0);
    expect(Array.from(tensors.get('y.weight')!)).toEqual([1, 2, -2]);
    expect(Array.from(tensors.get('z.weight')!).map((v) => v + 0)).toEqual([0, 0]);
    const byUnit = new Map(res.table.map((r) => [r.unit, r]));
    expect(byUnit.get('x')!.relSignature).toBeCloseTo(Math.sqrt(12 / 30), 12);
    expect(byUnit.get('x')!.relClean).toBeCloseTo(Math.sqrt(2 / 30), 12);
    expect(byUnit.get('x')!.relRobust).toBeCloseTo(Math.sqrt(14 / 30), 12);
    expect(byUnit.get('y')!.relClean).toBe(0);
    expect(byUnit.get('y')!.relSignature).toBeCloseTo(Math.sqrt(9 / 5.25), 12);
    expect(byUnit.get('z')!.relSignature).toBe(0);
  });

  it('table statistics and written values match an in-memory computation; metadata names the clean base', async () => {
    const t = await trio();
    const out = join(t.dir, 'rws.safetensors');
    const res = await extractSignature({ pre: t.pre, clean: t.clean, robust: t.robust, out, layers: 5, label: 'fog' });
    expect(res.table.map((r) => r.unit)).toEqual(['pre', 'model.layers.0', 'model.layers.1', 'model.layers.2', 'post']);
    for (const row of res.table) {
      const names = Object.keys(UNIT_OF).filter((n) => UNIT_OF[n] === row.unit);
      let pp = 0;
      let aa = 0;
      let dd = 0;
      let rr = 0;
      for (const n of names) {
        const p = t.values.pre.get(n)!;
        const c = t.values.clean.get(n)!;
        const r = t.values.robust.get(n)!;
        pp += dot(p, p);
        const a = Float64Array.from(c, (v, i) => v - p[i]!);
        const d = Float64Array.from(r, (v, i) => v - p[i]!);
        aa += dot(a, a);
        dd += dot(d, d);
        const rws = referenceRws(p, c, r);
        rr += dot(rws, rws);
      }
      expect(row.tensors).toBe(names.length);
      expect(row.relClean).toBeCloseTo(Math.sqrt(aa / pp), 10);
      expect(row.relRobust).toBeCloseTo(Math.sqrt(dd / pp), 10);
      expect(row.relSignature).toBeCloseTo(Math.sqrt(rr / pp), 8);
      expect(row.selected).toBe(true);
    }
    const sum = res.table.reduce((s, r) => s + r.relSignature, 0);
    res.table.forEach((r, i) => {
      expect(r.share).toBeCloseTo(r.relSignature / sum, 12);
      expect(r.cumulative).toBeCloseTo(res.table.slice(0, i + 1).reduce((s, x) => s + x.share, 0), 12);
    });
    expect(res.table.at(-1)!.cumulative).toBeCloseTo(1, 12);

    const { meta, tensors } = await readVector(out);
    for (const [name, v] of tensors) {
      const ref = referenceRws(t.values.pre.get(name)!, t.values.clean.get(name)!, t.values.robust.get(name)!);
      const a = Float64Array.from(t.values.clean.get(name)!, (c, i) => c - t.values.pre.get(name)![i]!);
      for (let i = 0; i < v.length; i++) expect(v[i]).toBeCloseTo(ref[i]!, 5);
      // the clean direction is projected out (up to f32 rounding of the stored values)
      expect(Math.abs(dot(v, a))).toBeLessThan(1e-5 * Math.sqrt(dot(v, v) * dot(a, a)) + 1e-12);
    }
    const m = meta;
    const notes = m.notes as { layers: unknown[]; selection: unknown; scale: string };
    expect(m.kind).toBe('signature');
    expect(m.label).toBe('fog');
    expect(m.base).toBe(t.clean);
    const clean = await openCheckpointPath(t.clean);
    const pre = await openCheckpointPath(t.pre);
    try {
      expect(m.baseFingerprint).toBe(await fingerprintCheckpoint(clean));
      expect(m.baseFingerprint).toBe(res.fingerprint);
      expect(m.baseFingerprint).not.toBe(await fingerprintCheckpoint(pre));
    } finally {
      await clean.close();
      await pre.close();
    }
    expect(notes.layers).toHaveLength(5);
    expect(notes.selection).toEqual({ rule: 'first', count: 5 });
    expect(notes.scale).toMatch(/linear/);
  });

  it('auto selects the shallowest units holding the share; only they are written', async () => {
    const deep = (name: string) => (UNIT_OF[name] === 'pre' || UNIT_OF[name] === 'model.layers.0' ? 1 : 0.001);
    const t = await trio(deep);
    const out = join(t.dir, 'auto.safetensors');
    const res = await extractSignature({ pre: t.pre, clean: t.clean, robust: t.robust, out, autoShare: 0.9 });
    const shallow = Object.keys(UNIT_OF).filter((n) => deep(n) === 1);
    expect(res.selected).toEqual(shallow);
    expect(res.table.map((r) => r.selected)).toEqual([true, true, false, false, false]);
    expect(res.table[1]!.cumulative).toBeGreaterThanOrEqual(0.9);
    expect(res.table[0]!.cumulative).toBeLessThan(0.9);
    const { meta, tensors } = await readVector(out);
    expect([...tensors.keys()].sort()).toEqual([...shallow].sort());
    const skipped = meta.skipped!;
    expect([...skipped].sort()).toEqual(Object.keys(UNIT_OF).filter((n) => deep(n) !== 1).sort());
    // the default share (0.5) needs fewer or as many units
    const res2 = await extractSignature({ pre: t.pre, clean: t.clean, robust: t.robust, out: join(t.dir, 'auto2.safetensors') });
    expect(res2.table[0]!.selected).toBe(true);
    expect(res2.table.slice(2).every((r) => !r.selected)).toBe(true);
    const k = res2.table.filter((r) => r.selected).length;
    expect(res2.table[k - 1]!.cumulative).toBeGreaterThanOrEqual(0.5);
    if (k > 1) expect(res2.table[k - 2]!.cumulative).toBeLessThan(0.5);
  });

  it('selects the first N units, or the tensors a glob matches', async () => {
    const t = await trio();
    const r2 = await extractSignature({ pre: t.pre, clean: t.clean, robust: t.robust, out: join(t.dir, 'n.safetensors'), layers: '2' });
    expect(r2.selected).toEqual(Object.keys(UNIT_OF).filter((n) => UNIT_OF[n] === 'pre' || UNIT_OF[n] === 'model.layers.0'));
    expect(r2.table.map((r) => r.selected)).toEqual([true, true, false, false, false]);
    const g = await extractSignature({ pre: t.pre, clean: t.clean, robust: t.robust, out: join(t.dir, 'g.safetensors'), layers: 'model.layers.?.mlp.*' });
    expect(g.selected).toEqual(['model.layers.0.mlp.up_proj.weight', 'model.layers.1.mlp.up_proj.weight', 'model.layers.2.mlp.up_proj.weight']);
    expect(g.table.map((r) => r.selected)).toEqual([false, true, true, true, false]);
    const { tensors } = await readVector(join(t.dir, 'g.safetensors'));
    expect([...tensors.keys()].sort()).toEqual(g.selected);
  });

  it('a tiny memory budget gives the same bytes as a large one (dense and quantised)', async () => {
    const t = await trio();
    for (const quantize of [undefined, parseQuantizeSpec('linear:16'), parseQuantizeSpec('log:16')]) {
      const base: SignatureOptions = { pre: t.pre, clean: t.clean, robust: t.robust, out: '', layers: '*', ...(quantize ? { quantize } : {}) };
      const small = join(t.dir, `small-${quantize?.scheme ?? 'dense'}.safetensors`);
      const big = join(t.dir, `big-${quantize?.scheme ?? 'dense'}.safetensors`);
      const a = await extractSignature({ ...base, out: small, budgetBytes: 16 });
      const b = await extractSignature({ ...base, out: big, budgetBytes: 1 << 26 });
      expect(a.table).toEqual(b.table);
      expect(a.quantization).toEqual(b.quantization);
      expect(Buffer.compare(await readFile(small), await readFile(big))).toBe(0);
    }
  });

  it('quantised signatures decode close to the dense ones and report their error', async () => {
    const t = await trio();
    const dense = join(t.dir, 'dense.safetensors');
    const quant = join(t.dir, 'quant.safetensors');
    await extractSignature({ pre: t.pre, clean: t.clean, robust: t.robust, out: dense, layers: 3 });
    const q = await extractSignature({ pre: t.pre, clean: t.clean, robust: t.robust, out: quant, layers: 3, quantize: parseQuantizeSpec('linear:256') });
    expect(q.quantization).toBeDefined();
    expect(q.quantization!.relL2).toBeGreaterThan(0);
    expect(q.quantization!.relL2).toBeLessThan(0.01);
    const d = await readVector(dense);
    const r = await readVector(quant);
    expect(r.meta.encodings!['model.layers.0.mlp.up_proj.weight']!.enc).toBe('linear');
    expect([...r.tensors.keys()].sort()).toEqual([...d.tensors.keys()].sort());
    let maxErr = 0;
    for (const [name, v] of d.tensors) {
      const w = r.tensors.get(name)!;
      for (let i = 0; i < v.length; i++) maxErr = Math.max(maxErr, Math.abs(v[i]! - w[i]!));
    }
    expect(maxErr).toBeLessThanOrEqual(q.quantization!.maxAbs + 1e-6);
  });

  it('errors: shape mismatch, missing tensor, bad --layers and --auto-share, bad --out', async () => {
    const t = await trio();
    const opts = { pre: t.pre, clean: t.clean, robust: t.robust };
    const out = join(t.dir, 'e.safetensors');

    const badShape = join(t.dir, 'bad-shape');
    const v = new Map(t.values.robust);
    v.set('model.norm.weight', new Float32Array(5));
    await writeModel(badShape, v, { shapes: { 'model.norm.weight': [5] } });
    const e1 = (await expectCode(extractSignature({ ...opts, robust: badShape, out }), 'TENSOR_SHAPE_MISMATCH')) as { where: { tensor: string } };
    expect(e1.where.tensor).toBe('model.norm.weight');

    const missing = join(t.dir, 'missing');
    const w = new Map(t.values.clean);
    w.delete('lm_head.weight');
    await writeModel(missing, w);
    const e2 = (await expectCode(extractSignature({ ...opts, clean: missing, out }), 'TENSOR_NOT_FOUND')) as { where: { tensor: string } };
    expect(e2.where.tensor).toBe('lm_head.weight');

    for (const layers of [0, -1, 2.5, '', '99', 'nothing.matches.*'] as const) {
      await expectCode(extractSignature({ ...opts, out, layers }), 'USAGE');
    }
    for (const autoShare of [0, 1.5, NaN]) await expectCode(extractSignature({ ...opts, out, autoShare }), 'USAGE');
    await expectCode(extractSignature({ ...opts, out, layers: 2, autoShare: 0.5 }), 'USAGE');
    await expectCode(extractSignature({ ...opts, out: join(t.dir, 'folder-out') }), 'USAGE');
    expect(existsSync(out)).toBe(false);
  });

  it('does not overwrite an existing output unless asked', async () => {
    const t = await trio();
    const out = join(t.dir, 'o.safetensors');
    await extractSignature({ pre: t.pre, clean: t.clean, robust: t.robust, out });
    await expect(extractSignature({ pre: t.pre, clean: t.clean, robust: t.robust, out })).rejects.toSatisfy(isWeightkitError);
    await extractSignature({ pre: t.pre, clean: t.clean, robust: t.robust, out, overwrite: true, layers: 1 });
    expect((await readVector(out)).tensors.size).toBe(1);
  });
});

describe('vector signature command', () => {
  async function cli(args: string[]): Promise<{ stdout: string }> {
    let stdout = '';
    const ctx: CommandContext = { io: { stdout: (s) => void (stdout += s), stderr: () => undefined, isTTY: false } };
    const parser = yargs()
      .exitProcess(false)
      .strict()
      .fail((msg, err) => {
        if (err) throw err;
        throw new UsageError('USAGE', msg);
      });
    await signatureCommand(parser, ctx).parseAsync(args);
    return { stdout };
  }

  it('prints the per-unit table and the written tensors; --json gives the result', async () => {
    const t = await trio();
    const out = join(t.dir, 'cli.safetensors');
    const { stdout } = await cli(['signature', '--pre', t.pre, '--clean', t.clean, '--robust', t.robust, '--out', out, '--layers', '2', '--label', 'fog']);
    expect(stdout).toContain('‖RWS‖/‖pre‖');
    expect(stdout).toMatch(/^model\.layers\.0\s+1\s+3\s.*\*$/m);
    expect(stdout).toMatch(/^model\.layers\.1\s+2\s+3\s.*%$/m);
    expect(stdout).toContain('wrote 4 tensors');
    expect(stdout).toContain('  model.layers.0.self_attn.q_proj.weight');
    const j = await cli(['signature', '--pre', t.pre, '--clean', t.clean, '--robust', t.robust, '--out', join(t.dir, 'cli2.safetensors'), '--auto-share', '1', '--quantize', 'log:64', '--json']);
    const r = JSON.parse(j.stdout);
    expect(r.selected).toHaveLength(12);
    expect(r.table).toHaveLength(5);
    expect(r.quantization.relL2).toBeGreaterThan(0);
  });

  it('a bad --layers or --quantize is a USAGE error', async () => {
    const t = await trio();
    const base = ['signature', '--pre', t.pre, '--clean', t.clean, '--robust', t.robust, '--out', join(t.dir, 'x.safetensors')];
    await expectCode(cli([...base, '--layers', '0']), 'USAGE');
    await expectCode(cli([...base, '--quantize', 'cubic']), 'USAGE');
  });
});
