import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import yargs from 'yargs';
import { describe, expect, it } from 'vitest';
import { interpolateCommand, soupCommand } from '../../src/cli/commands/vector-interpolate.js';
import type { CommandContext } from '../../src/cli/main.js';
import { WeightkitError } from '../../src/errors.js';
import { openCheckpointPath } from '../../src/io/open.js';
import { writeSafetensors } from '../../src/io/safetensors/writer.js';
import { fromF32 } from '../../src/tensor/convert.js';
import type { DType } from '../../src/tensor/dtype.js';
import { makeTensor, type Tensor } from '../../src/tensor/tensor.js';
import { fisherAverage, interpolateModels } from '../../src/vectors/interpolate.js';
import { readAllF32, tempDir, tinyValues, TINY_SHAPES, writeModel } from '../plan/helpers.js';

type Spec = Record<string, { dtype?: DType; shape: number[]; values: ArrayLike<number> }>;

async function writeSt(path: string, spec: Spec): Promise<string> {
  const tensors: Record<string, Tensor> = {};
  for (const [name, s] of Object.entries(spec)) {
    const dtype = s.dtype ?? 'F32';
    tensors[name] = dtype === 'I32' ? makeTensor('I32', s.shape, Int32Array.from(s.values)) : makeTensor(dtype, s.shape, fromF32(dtype, Float32Array.from(s.values)));
  }
  await writeSafetensors(path, tensors);
  return path;
}

async function tensorBytes(path: string): Promise<Map<string, Buffer>> {
  const r = await openCheckpointPath(path);
  try {
    const out = new Map<string, Buffer>();
    for (const t of r.tensors()) out.set(t.name, Buffer.from(await r.readBytes(t.name)));
    return out;
  } finally {
    await r.close();
  }
}

async function rejectCode(p: Promise<unknown>): Promise<WeightkitError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(WeightkitError);
    return e as WeightkitError;
  }
  throw new Error('expected a rejection');
}

/** Seeded non-negative Fisher values for the tiny shapes, with some exact zeros (below the floor). */
function fisherValues(seed: number): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, v] of tinyValues(seed, 0.3)) out.set(name, Float32Array.from(v, (x, i) => (i % 5 === 0 ? 0 : Math.fround(x * x))));
  return out;
}

async function writeFisher(path: string, values: Map<string, Float32Array>): Promise<string> {
  const spec: Spec = {};
  for (const [name, v] of values) spec[name] = { shape: TINY_SHAPES[name]!, values: v };
  return writeSt(path, spec);
}

async function pair(dtype: DType = 'F32') {
  const dir = await tempDir('weightkit-interp-');
  const from = join(dir, 'old');
  const to = join(dir, 'new');
  await writeModel(from, tinyValues(1), { dtype });
  await writeModel(to, tinyValues(2), { dtype });
  return { dir, from, to };
}

describe('interpolateModels', () => {
  it('computes (1 - a) * from + a * to by hand and copies non-float tensors from `from`', async () => {
    const dir = await tempDir('weightkit-interp-');
    const from = await writeSt(join(dir, 'a.safetensors'), {
      w: { shape: [2, 2], values: [1, 2, 3, 4] },
      pos: { dtype: 'I32', shape: [2], values: [0, 1] },
    });
    const to = await writeSt(join(dir, 'b.safetensors'), {
      w: { shape: [2, 2], values: [3, 6, -1, 0] },
      pos: { dtype: 'I32', shape: [2], values: [5, 6] },
    });
    const out = join(dir, 'out.safetensors');
    const r = await interpolateModels({ from, to, alphas: [0.25], out });
    expect(r).toEqual({ outputs: [{ alpha: 0.25, path: out }], tensors: 1, skipped: ['pos'], missing: [], warnings: [] });
    const v = await readAllF32(out);
    expect(Array.from(v.get('w')!)).toEqual([1.5, 3, 2, 3]);
    expect(Array.from(v.get('pos')!)).toEqual([0, 1]);
    const rd = await openCheckpointPath(out);
    expect(rd.info('pos').dtype).toBe('I32');
    expect(JSON.parse(rd.metadata()['weightkit_interpolation']!)).toMatchObject({ alpha: 0.25 });
    await rd.close();
    // extrapolation is allowed without Fisher weights: 1.5 * 3 - 0.5 * 1 = 4
    const out2 = join(dir, 'x.safetensors');
    await interpolateModels({ from, to, alphas: [1.5], out: out2 });
    expect(Array.from((await readAllF32(out2)).get('w')!)).toEqual([4, 8, -3, -2]);
  });

  it('gives `from` exactly at alpha 0 and `to` exactly at alpha 1 (bf16 bytes)', async () => {
    const { dir, from, to } = await pair('BF16');
    await interpolateModels({ from, to, alphas: [0], out: join(dir, 'a0') });
    await interpolateModels({ from, to, alphas: [1], out: join(dir, 'a1') });
    expect(await tensorBytes(join(dir, 'a0'))).toEqual(await tensorBytes(from));
    expect(await tensorBytes(join(dir, 'a1'))).toEqual(await tensorBytes(to));
    expect(await tensorBytes(join(dir, 'a0'))).not.toEqual(await tensorBytes(to));
    const r = await openCheckpointPath(join(dir, 'a0'));
    expect(r.tensors().every((t) => t.dtype === 'BF16')).toBe(true);
    await r.close();
    expect(existsSync(join(dir, 'a0', 'config.json'))).toBe(true);
  });

  it('writes every alpha of a grid in one pass, byte for byte equal to separate runs, with a tiny budget', async () => {
    const { dir, from, to } = await pair('BF16');
    const alphas = [0, 0.3, 0.7, 1];
    const sweep = join(dir, 'sweep');
    let jobs = 0;
    const r = await interpolateModels({ from, to, alphas, out: sweep, budgetBytes: 16, onProgress: () => void jobs++ });
    expect(jobs).toBe(Object.keys(TINY_SHAPES).length); // one job per tensor, all alphas together
    expect(r.outputs.map((o) => o.path)).toEqual(['alpha-0.00', 'alpha-0.30', 'alpha-0.70', 'alpha-1.00'].map((n) => join(sweep, n)));
    expect((await readdir(sweep)).sort()).toEqual(['alpha-0.00', 'alpha-0.30', 'alpha-0.70', 'alpha-1.00']);
    for (const a of alphas) {
      const single = join(dir, `single-${a}`);
      await interpolateModels({ from, to, alphas: [a], out: single });
      const files = (await readdir(single)).sort();
      expect((await readdir(join(sweep, `alpha-${a.toFixed(2)}`))).sort()).toEqual(files);
      for (const f of files) expect(await readFile(join(sweep, `alpha-${a.toFixed(2)}`, f))).toEqual(await readFile(join(single, f)));
    }
    // the values are the interpolation (f32 math, rounded once to bf16)
    const mid = await readAllF32(join(sweep, 'alpha-0.30'));
    const va = await readAllF32(from);
    const vb = await readAllF32(to);
    for (const [name, v] of mid) {
      const want = fromF32('BF16', Float32Array.from(va.get(name)!, (x, i) => 0.7 * x + 0.3 * vb.get(name)![i]!));
      expect(fromF32('BF16', v)).toEqual(want);
    }
  });

  it('converts floats to --dtype', async () => {
    const { dir, from, to } = await pair('F32');
    const out = join(dir, 'o.safetensors');
    await interpolateModels({ from, to, alphas: [0.5], out, dtype: 'F16' });
    const r = await openCheckpointPath(out);
    expect(r.tensors().every((t) => t.dtype === 'F16')).toBe(true);
    await r.close();
  });

  it('Fisher-weighted interpolation matches the formula, and equal Fisher gives plain interpolation', async () => {
    const { dir, from, to } = await pair('F32');
    const fa = fisherValues(7);
    const fb = fisherValues(8);
    const ff = await writeFisher(join(dir, 'f-old.safetensors'), fa);
    const ft = await writeFisher(join(dir, 'f-new.safetensors'), fb);
    const floor = 1e-3;
    const alpha = 0.4;
    const out = join(dir, 'fw.safetensors');
    await interpolateModels({ from, to, alphas: [alpha], out, fisherFrom: ff, fisherTo: ft, fisherFloor: floor, budgetBytes: 40 });
    const got = await readAllF32(out);
    const va = await readAllF32(from);
    const vb = await readAllF32(to);
    let differsFromPlain = false;
    for (const [name, v] of got) {
      const a = va.get(name)!;
      const b = vb.get(name)!;
      for (let i = 0; i < v.length; i++) {
        const ca = (1 - alpha) * Math.max(fa.get(name)![i]!, floor);
        const cb = alpha * Math.max(fb.get(name)![i]!, floor);
        expect(v[i]).toBe(Math.fround((ca * a[i]! + cb * b[i]!) / (ca + cb)));
        if (Math.abs(v[i]! - Math.fround(0.6 * a[i]! + 0.4 * b[i]!)) > 1e-4) differsFromPlain = true;
      }
    }
    expect(differsFromPlain).toBe(true);
    // the same Fisher on both sides cancels
    const eq = join(dir, 'eq.safetensors');
    const plain = join(dir, 'plain.safetensors');
    await interpolateModels({ from, to, alphas: [alpha], out: eq, fisherFrom: ff, fisherTo: ff });
    await interpolateModels({ from, to, alphas: [alpha], out: plain });
    const ve = await readAllF32(eq);
    for (const [name, v] of await readAllF32(plain)) {
      const e = ve.get(name)!;
      for (let i = 0; i < v.length; i++) expect(Math.abs(e[i]! - v[i]!)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(v[i]!)));
    }
  });

  it('reports Fisher problems with codes naming the Fisher file, and leaves nothing behind', async () => {
    const { dir, from, to } = await pair('F32');
    const good = await writeFisher(join(dir, 'good.safetensors'), fisherValues(3));
    const partial = new Map(fisherValues(3));
    partial.delete('lm_head.weight');
    const missing = await writeFisher(join(dir, 'missing.safetensors'), partial);
    const wrongShape: Spec = {};
    for (const [name, v] of fisherValues(3)) wrongShape[name] = { shape: name === 'model.norm.weight' ? [2, 2] : TINY_SHAPES[name]!, values: v };
    const shaped = await writeSt(join(dir, 'shape.safetensors'), wrongShape);
    const negV = fisherValues(3);
    negV.get('model.layers.1.mlp.up_proj.weight')![17] = -0.5;
    const negative = await writeFisher(join(dir, 'neg.safetensors'), negV);
    const nanV = fisherValues(3);
    nanV.get('lm_head.weight')![30] = Number.NaN;
    const nan = await writeFisher(join(dir, 'nan.safetensors'), nanV);

    const cases: Array<[string, string, string | undefined]> = [
      [missing, 'TENSOR_NOT_FOUND', 'lm_head.weight'],
      [shaped, 'TENSOR_SHAPE_MISMATCH', 'model.norm.weight'],
      [negative, 'VECTOR_NOT_FINITE', 'model.layers.1.mlp.up_proj.weight'],
      [nan, 'VECTOR_NOT_FINITE', 'lm_head.weight'],
    ];
    for (const [bad, code, tensor] of cases) {
      for (const alphas of [[0.5], [0.2, 0.5]]) {
        const out = join(dir, `out-${code}-${alphas.length}`);
        const e = await rejectCode(interpolateModels({ from, to, alphas, out, fisherFrom: good, fisherTo: bad, budgetBytes: 32 }));
        expect(e.code).toBe(code);
        expect(e.where.file).toBe(bad);
        expect(e.where.tensor).toBe(tensor);
        expect(existsSync(out)).toBe(false);
        expect((await readdir(dir)).filter((f) => f.includes('weightkit-tmp'))).toEqual([]);
      }
    }
    expect((await rejectCode(interpolateModels({ from, to, alphas: [0.5], out: join(dir, 'x'), fisherFrom: good }))).code).toBe('USAGE');
    expect((await rejectCode(interpolateModels({ from, to, alphas: [1.5], out: join(dir, 'x'), fisherFrom: good, fisherTo: good }))).code).toBe('USAGE');
    expect((await rejectCode(interpolateModels({ from, to, alphas: [0.5], out: join(dir, 'x'), fisherFrom: good, fisherTo: good, fisherFloor: 0 }))).code).toBe('USAGE');
  });

  it('reports missing tensors and shape mismatches between the models; allowMissing keeps `from` tensors', async () => {
    const dir = await tempDir('weightkit-interp-');
    const from = await writeSt(join(dir, 'a.safetensors'), { w: { shape: [2], values: [1, 2] }, extra: { shape: [1], values: [9] } });
    const to = await writeSt(join(dir, 'b.safetensors'), { w: { shape: [2], values: [3, 4] } });
    const e = await rejectCode(interpolateModels({ from, to, alphas: [0.5], out: join(dir, 'o.safetensors') }));
    expect(e.code).toBe('TENSOR_NOT_FOUND');
    expect(e.where.tensor).toBe('extra');
    const out = join(dir, 'o.safetensors');
    const r = await interpolateModels({ from, to, alphas: [0.5], out, allowMissing: true });
    expect(r.missing).toEqual(['extra']);
    const v = await readAllF32(out);
    expect(Array.from(v.get('w')!)).toEqual([2, 3]);
    expect(Array.from(v.get('extra')!)).toEqual([9]);
    const to2 = await writeSt(join(dir, 'c.safetensors'), { w: { shape: [1, 2], values: [3, 4] }, extra: { shape: [1], values: [0] } });
    expect((await rejectCode(interpolateModels({ from, to: to2, alphas: [0.5], out: join(dir, 'p.safetensors') }))).code).toBe('TENSOR_SHAPE_MISMATCH');
    expect((await rejectCode(interpolateModels({ from, to, alphas: [0.5, 0.5], out: join(dir, 'q') }))).code).toBe('USAGE');
    expect((await rejectCode(interpolateModels({ from, to, alphas: [0.2, 0.5], out: join(dir, 'q.safetensors') }))).code).toBe('USAGE');
    expect((await rejectCode(interpolateModels({ from, to, alphas: [], out: join(dir, 'q') }))).code).toBe('USAGE');
  });
});

describe('fisherAverage', () => {
  it('computes sum(l F theta) / sum(l F) with F + eps, and normalises by 1/||F||', async () => {
    const dir = await tempDir('weightkit-fisher-');
    const models = [join(dir, 'm1'), join(dir, 'm2'), join(dir, 'm3')];
    for (let i = 0; i < 3; i++) await writeModel(models[i]!, tinyValues(i + 1));
    const fv = [fisherValues(11), fisherValues(12), fisherValues(13)];
    // scale the third Fisher up: normalisation must take most of its weight away
    for (const v of fv[2]!.values()) for (let i = 0; i < v.length; i++) v[i] = Math.fround(v[i]! * 50);
    const fishers = await Promise.all(fv.map((v, i) => writeFisher(join(dir, `f${i}.safetensors`), v)));
    const vals = await Promise.all(models.map((m) => readAllF32(m)));
    const eps = 1e-6;
    const expected = (lam: number[]): Map<string, Float32Array> => {
      const out = new Map<string, Float32Array>();
      for (const name of Object.keys(TINY_SHAPES)) {
        const n = vals[0]!.get(name)!.length;
        const o = new Float32Array(n);
        for (let j = 0; j < n; j++) {
          let num = 0;
          let den = 0;
          for (let i = 0; i < 3; i++) {
            const w = lam[i]! * (fv[i]!.get(name)![j]! + eps);
            num += w * vals[i]!.get(name)![j]!;
            den += w;
          }
          o[j] = num / den;
        }
        out.set(name, o);
      }
      return out;
    };
    const plainOut = join(dir, 'fa.safetensors');
    const r = await fisherAverage({ models, fishers, out: plainOut, budgetBytes: 24 });
    expect(r.lambdas).toEqual([1 / 3, 1 / 3, 1 / 3]);
    expect(r.tensors).toBe(Object.keys(TINY_SHAPES).length);
    expect(await readAllF32(plainOut)).toEqual(expected([1 / 3, 1 / 3, 1 / 3]));

    const normOut = join(dir, 'fn.safetensors');
    const rn = await fisherAverage({ models, fishers, out: normOut, normalize: true });
    const norms = fv.map((m) => {
      let s = 0;
      for (const v of m.values()) {
        let t = 0;
        for (const x of v) t += x * x;
        s += t;
      }
      return Math.sqrt(s);
    });
    for (let i = 0; i < 3; i++) expect(rn.fisherNorms![i]).toBeCloseTo(norms[i]!, 9);
    const inv = norms.map((x) => 1 / (x + eps));
    const total = inv.reduce((a, b) => a + b, 0);
    const lam = inv.map((x) => x / total / 3);
    for (let i = 0; i < 3; i++) expect(rn.lambdas[i]).toBeCloseTo(lam[i]!, 12);
    expect(rn.lambdas[2]).toBeLessThan(rn.lambdas[0]! / 10);
    const got = await readAllF32(normOut);
    let differs = false;
    for (const [name, want] of expected(rn.lambdas)) {
      expect(got.get(name)).toEqual(want);
      if (got.get(name)!.some((x, j) => Math.abs(x - (expected([1 / 3, 1 / 3, 1 / 3]).get(name)![j]!)) > 1e-4)) differs = true;
    }
    expect(differs).toBe(true);
  });

  it('checks lengths and Fisher values', async () => {
    const dir = await tempDir('weightkit-fisher-');
    const m = join(dir, 'm');
    await writeModel(m, tinyValues(1));
    const bad = fisherValues(2);
    bad.get('model.norm.weight')![1] = -1;
    const f = await writeFisher(join(dir, 'f.safetensors'), bad);
    expect((await rejectCode(fisherAverage({ models: [m, m], fishers: [f], out: join(dir, 'o') }))).code).toBe('USAGE');
    const e = await rejectCode(fisherAverage({ models: [m], fishers: [f], out: join(dir, 'o'), normalize: true }));
    expect(e.code).toBe('VECTOR_NOT_FINITE');
    expect(e.where).toMatchObject({ file: f, tensor: 'model.norm.weight' });
    expect(existsSync(join(dir, 'o'))).toBe(false);
  });
});

describe('interpolate and soup commands', () => {
  function parser(ctx: CommandContext) {
    return soupCommand(interpolateCommand(yargs().exitProcess(false).strict(), ctx), ctx).fail((msg, err) => {
      throw err ?? new Error(msg);
    });
  }
  function ctxOf(): { ctx: CommandContext; out: string[] } {
    const out: string[] = [];
    return { ctx: { io: { stdout: (s) => void out.push(s), stderr: () => undefined, isTTY: false } }, out };
  }

  it('interpolate --alphas writes one folder per alpha and prints JSON', async () => {
    const { dir, from, to } = await pair('F32');
    const { ctx, out } = ctxOf();
    const sweep = join(dir, 'sweep');
    await parser(ctx).parseAsync(['interpolate', '--from', from, '--to', to, '--alphas', '0:1:0.5', '--out', sweep, '--json']);
    const r = JSON.parse(out.join(''));
    expect(r.outputs.map((o: { alpha: number }) => o.alpha)).toEqual([0, 0.5, 1]);
    expect((await readdir(sweep)).sort()).toEqual(['alpha-0.00', 'alpha-0.50', 'alpha-1.00']);
    const { ctx: c2 } = ctxOf();
    const single = join(dir, 'half.safetensors');
    await parser(c2).parseAsync(['interpolate', '--from', from, '--to', to, '--alpha', '0.5', '--out', single, '--dtype', 'bf16']);
    const rd = await openCheckpointPath(single);
    expect(rd.tensors()[0]!.dtype).toBe('BF16');
    await rd.close();
  });

  it('interpolate rejects a bad grid and a missing alpha with USAGE', async () => {
    const { dir, from, to } = await pair('F32');
    const { ctx } = ctxOf();
    const e = await rejectCode(parser(ctx).parseAsync(['interpolate', '--from', from, '--to', to, '--alphas', '0:1:0', '--out', join(dir, 's')]));
    expect(e.code).toBe('USAGE');
    expect(e.message).toContain('--alphas');
    const e2 = await rejectCode(parser(ctx).parseAsync(['interpolate', '--from', from, '--to', to, '--out', join(dir, 's')]));
    expect(e2.code).toBe('USAGE');
    expect(existsSync(join(dir, 's'))).toBe(false);
  });

  it('soup averages the models', async () => {
    const { dir, from, to } = await pair('F32');
    const { ctx, out } = ctxOf();
    const o = join(dir, 'soup.safetensors');
    await parser(ctx).parseAsync(['soup', from, to, '--out', o]);
    expect(out.join('')).toContain('averaged');
    const va = await readAllF32(from);
    const vb = await readAllF32(to);
    for (const [name, v] of await readAllF32(o)) {
      expect(v).toEqual(Float32Array.from(va.get(name)!, (x, i) => (x + vb.get(name)![i]!) / 2));
    }
    const e = await rejectCode(parser(ctx).parseAsync(['soup', from, '--out', join(dir, 'one.safetensors')]));
    expect(e.code).toBe('USAGE');
  });
});

describe('slerp interpolation', () => {
  it('equals the slerp merge method per tensor, for every alpha in one pass', async () => {
    const { mergeTensors } = await import('../../src/merge/run.js');
    const { getMethod } = await import('../../src/merge/registry.js');
    const { tempDir: td, tinyValues: tv, writeModel: wm, TINY_SHAPES: shapes } = await import('../plan/helpers.js');
    const { openCheckpointPath: open } = await import('../../src/io/open.js');
    const { join: j } = await import('node:path');
    const root = await td();
    await wm(j(root, 'a'), tv(1, 0.5));
    await wm(j(root, 'b'), tv(2, 0.5));
    const res = await interpolateModels({ from: j(root, 'a'), to: j(root, 'b'), alphas: [0.25, 0.6], out: j(root, 'out'), method: 'slerp', budgetBytes: 40 });
    const a = await open(j(root, 'a'));
    const b = await open(j(root, 'b'));
    for (const [k, alpha] of [0.25, 0.6].entries()) {
      const o = await open(res.outputs[k]!.path);
      for (const name of Object.keys(shapes)) {
        const want = mergeTensors(getMethod('slerp'), { base: await a.readF32(name), models: [await b.readF32(name)] }, { params: { t: alpha }, modelParams: [{}] });
        expect(Array.from(await o.readF32(name))).toEqual(Array.from(want));
      }
      await o.close();
    }
    await a.close();
    await b.close();
    await expect(interpolateModels({ from: j(root, 'a'), to: j(root, 'b'), alphas: [0.5], out: j(root, 'x'), method: 'slerp', fisherFrom: j(root, 'a'), fisherTo: j(root, 'b') })).rejects.toMatchObject({ code: 'USAGE' });
  });
});

describe('interpolate slerp with a non-finite input', () => {
  it('says which tensors come out all NaN (alphas 0 and 1 copy an input and are not affected)', async () => {
    const dir = await tempDir('weightkit-slerp-nan-');
    const nan = tinyValues(2);
    nan.get('model.norm.weight')![1] = Infinity;
    await writeModel(join(dir, 'from'), tinyValues(0));
    await writeModel(join(dir, 'to'), nan);
    const r = await interpolateModels({ from: join(dir, 'from'), to: join(dir, 'to'), alphas: [0.5], out: join(dir, 'out'), method: 'slerp' });
    expect(r.warnings).toEqual(["tensor 'model.norm.weight': slerp's angle is not finite (an input holds NaN or infinite values), so every value of the interpolated tensor is NaN"]);
    const ends = await interpolateModels({ from: join(dir, 'from'), to: join(dir, 'to'), alphas: [0, 1], out: join(dir, 'ends'), method: 'slerp' });
    expect(ends.warnings).toEqual([]);
  });
});
