import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { combineVectors } from '../../src/vectors/combine.js';
import { extractVector } from '../../src/vectors/extract.js';
import { openVector } from '../../src/vectors/reader.js';
import { tempDir, tinyValues, TINY_SHAPES, writeModel } from '../plan/helpers.js';

async function setup() {
  const dir = await tempDir();
  const base = join(dir, 'base');
  await writeModel(base, tinyValues(0));
  const paths: string[] = [];
  for (const s of [1, 2, 3]) {
    await writeModel(join(dir, `m${s}`), tinyValues(s, 0.2));
    const v = join(dir, `v${s}.safetensors`);
    await extractVector({ base, finetuned: join(dir, `m${s}`), out: v, kind: 'time', label: String(2010 + s) });
    paths.push(v);
  }
  return { dir, base, paths };
}

async function values(path: string): Promise<Map<string, Float32Array>> {
  const r = await openVector(path);
  const out = new Map<string, Float32Array>();
  for (const t of r.tensors()) out.set(t.name, await r.readF32(t.name));
  await r.close();
  return out;
}

describe('vector combine', () => {
  it('evaluates expressions with names: scaling, negation and analogies', async () => {
    const { dir, paths } = await setup();
    const [a, b, c] = await Promise.all(paths.map(values));
    const out = join(dir, 'analogy.safetensors');
    const res = await combineVectors({ expression: 'c + 0.5 * (b - a)', names: { a: paths[0]!, b: paths[1]!, c: paths[2]! }, out, budgetBytes: 32 });
    expect(res.terms.map((t) => t.coef)).toEqual([1, 0.5, -0.5]);
    const got = await values(out);
    for (const name of Object.keys(TINY_SHAPES)) {
      const g = got.get(name)!;
      for (let i = 0; i < g.length; i++) {
        expect(g[i]).toBe(Math.fround(1 * c.get(name)![i]! + 0.5 * b.get(name)![i]! + -0.5 * a.get(name)![i]!));
      }
    }
    const v = await openVector(out);
    expect(v.meta.kind).toBe('time'); // all inputs were time vectors
    expect(v.meta.expression).toContain(paths[2]!);
    await v.close();
  });

  it('takes explicit terms, and a - a cancels to an error', async () => {
    const { dir, paths } = await setup();
    const out = join(dir, 'neg.safetensors');
    await combineVectors({ terms: [{ ref: paths[0]!, coef: -1 }], out });
    const a = await values(paths[0]!);
    const n = await values(out);
    for (const [name, v] of a) expect(Array.from(n.get(name)!)).toEqual(Array.from(v, (x) => -x));
    await expect(
      combineVectors({ terms: [{ ref: paths[0]!, coef: 1 }, { ref: paths[0]!, coef: -1 }], out: join(dir, 'z.safetensors') }),
    ).rejects.toMatchObject({ code: 'VECTOR_EXPRESSION' });
  });

  it('refuses different bases unless forced, and hints at unspaced minus signs', async () => {
    const { dir, paths } = await setup();
    const other = join(dir, 'other');
    await writeModel(other, tinyValues(0, 0.1, 5));
    const foreign = join(dir, 'foreign.safetensors');
    await extractVector({ base: other, finetuned: join(dir, 'm1'), out: foreign });
    await expect(combineVectors({ expression: `${paths[0]} + ${foreign}`, out: join(dir, 'x.safetensors') })).rejects.toMatchObject({
      code: 'VECTOR_BASE_MISMATCH',
      where: { file: foreign },
    });
    const forced = await combineVectors({ expression: `${paths[0]} + ${foreign}`, out: join(dir, 'x.safetensors'), force: true });
    expect(forced.warnings).toHaveLength(1);
    await expect(combineVectors({ expression: `${paths[0]}-${paths[1]}`, out: join(dir, 'y.safetensors') })).rejects.toMatchObject({
      code: 'CKPT_NOT_FOUND',
      hint: expect.stringMatching(/spaces around a minus/),
    });
    await expect(combineVectors({ expression: 'a * b', names: { a: paths[0]!, b: paths[1]! }, out: join(dir, 'w.safetensors') })).rejects.toMatchObject({
      code: 'VECTOR_EXPRESSION',
    });
  });
});

describe('vector option errors', () => {
  it('every bad option is a USAGE error stating what was expected', async () => {
    const { dir, base, paths } = await setup();
    const { applyVectorPath } = await import('../../src/vectors/apply.js');
    await expect(combineVectors({ expression: paths[0]!, terms: [{ ref: paths[0]!, coef: 1 }], out: join(dir, 'a.safetensors') })).rejects.toMatchObject({ code: 'USAGE' });
    await expect(combineVectors({ terms: [{ ref: paths[0]!, coef: NaN }], out: join(dir, 'a.safetensors') })).rejects.toMatchObject({ code: 'USAGE' });
    await expect(combineVectors({ expression: paths[0]!, out: join(dir, 'a.bin') })).rejects.toMatchObject({ code: 'USAGE', message: expect.stringMatching(/\.safetensors/) });
    await expect(combineVectors({ expression: paths[0]!, out: join(dir, 'a.safetensors'), dtype: 'I32' })).rejects.toMatchObject({ code: 'USAGE', message: expect.stringMatching(/f32, bf16, f16/) });
    await expect(extractVector({ base, finetuned: join(dir, 'm1'), out: join(dir, 'q.safetensors'), density: 0.5, quantize: { scheme: 'linear', levels: 16 } })).rejects.toMatchObject({ code: 'USAGE' });
    await expect(applyVectorPath({ base, vectors: [paths[0]!, paths[1]!], points: [{ out: join(dir, 'p'), scales: [1] }] })).rejects.toMatchObject({ code: 'USAGE', message: expect.stringMatching(/2 finite coefficients/) });
    await expect(applyVectorPath({ base, vectors: [paths[0]!], points: [] })).rejects.toMatchObject({ code: 'USAGE' });
  });
});
