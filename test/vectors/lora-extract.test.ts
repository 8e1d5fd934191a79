import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openCheckpointPath } from '../../src/io/open.js';
import { openVector } from '../../src/vectors/reader.js';
import { extractLora } from '../../src/vectors/lora-extract.js';
import { loraToVector, openLoraAdapter } from '../../src/vectors/lora.js';
import { tempDir, tinyValues, writeModel } from '../plan/helpers.js';
import { addInto, knownSpectrum, lowRank, relError } from './lora-helpers.js';

const Q = (l: number): string => `model.layers.${l}.self_attn.q_proj.weight`;
const UP = (l: number): string => `model.layers.${l}.mlp.up_proj.weight`;

let dir: string;
let base: string;
let ft: string;
const tau: Record<string, Float32Array> = {};

beforeAll(async () => {
  dir = await tempDir('weightkit-lora-extract-');
  base = join(dir, 'base');
  ft = join(dir, 'ft');
  await writeModel(base, tinyValues(0));
  tau[Q(0)] = lowRank('model.layers.0.self_attn.q_proj.weight', 2, 11);
  tau[UP(1)] = lowRank('model.layers.1.mlp.up_proj.weight', 3, 13);
  tau[Q(2)] = knownSpectrum('model.layers.2.self_attn.q_proj.weight', [2, 1, 0.05]);
  tau['model.embed_tokens.weight'] = lowRank('model.embed_tokens.weight', 2, 17);
  tau['model.norm.weight'] = new Float32Array([0.1, 0, 0, -0.1]);
  // τ as f32 differences of the stored models (what extract sees)
  const b = tinyValues(0);
  const f = addInto(b, tau);
  for (const k of Object.keys(tau)) tau[k] = f.get(k)!.map((x, i) => x - b.get(k)![i]!);
  await writeModel(ft, f);
});

async function roundTrip(adapter: string): Promise<Map<string, Float32Array>> {
  const out = `${adapter}.safetensors`;
  await loraToVector({ adapter, base, out });
  const v = await openVector(out);
  const m = new Map<string, Float32Array>();
  for (const t of v.tensors()) m.set(t.name, (await v.readF32(t.name)).slice());
  await v.close();
  return m;
}

describe('lora extract', () => {
  it('rank >= the true rank: extract -> to-vector reproduces τ; embeddings and norms are saved whole (mergekit)', async () => {
    const out = join(dir, 'a4');
    const r = await extractLora({ base, finetuned: ft, out, rank: 4 });
    const v = await roundTrip(out);
    for (const k of [Q(0), UP(1), Q(2), 'model.embed_tokens.weight', 'model.norm.weight']) {
      const got = v.get(k)!;
      for (let i = 0; i < got.length; i++) expect(Math.abs(got[i]! - tau[k]![i]!)).toBeLessThan(2e-6);
    }
    const by = new Map(r.modules.map((m) => [m.tensor, m]));
    expect(by.get(Q(0))).toMatchObject({ kind: 'lora', rank: 2 });
    expect(by.get(UP(1))).toMatchObject({ kind: 'lora', rank: 3 });
    expect(by.get(Q(2))).toMatchObject({ kind: 'lora', rank: 3 });
    expect(by.get(Q(0))!.relError).toBeLessThan(1e-6);
    expect(by.get('model.embed_tokens.weight')).toMatchObject({ kind: 'full' });
    expect(by.get('model.norm.weight')).toMatchObject({ kind: 'full' });
    expect(by.get(Q(1))).toMatchObject({ kind: 'zero' });
    const cfg = JSON.parse(await readFile(join(out, 'adapter_config.json'), 'utf8'));
    expect(cfg).toMatchObject({ peft_type: 'LORA', r: 3, lora_alpha: 3, target_modules: [Q(0), Q(2), UP(1)].map((n) => n.slice(0, -7)).sort(), modules_to_save: ['model.embed_tokens', 'model.norm'] });
    expect(cfg.rank_pattern).toEqual({ 'model.layers.0.self_attn.q_proj': 2 });
    expect(cfg.alpha_pattern).toEqual({ 'model.layers.0.self_attn.q_proj': 2 });
    const adapter = await openLoraAdapter(out);
    try {
      expect(adapter.modules.map((m) => m.scale)).toEqual([1, 1, 1]);
    } finally {
      await adapter.close();
    }
  });

  it('rank below the true rank: the reported error is ‖τ − BA‖/‖τ‖ of what to-vector reads', async () => {
    const out = join(dir, 'a1');
    const r = await extractLora({ base, finetuned: ft, out, rank: 1, embedLora: true });
    const v = await roundTrip(out);
    for (const m of r.modules.filter((x) => x.kind === 'lora' || x.kind === 'lora_embedding')) {
      expect(m.rank).toBe(1);
      const direct = relError(tau[m.tensor]!, v.get(m.tensor)!);
      expect(direct).toBeGreaterThan(0.01);
      expect(Math.abs(m.relError - direct)).toBeLessThan(1e-5);
    }
    expect(r.modules.find((m) => m.tensor === 'model.embed_tokens.weight')!.kind).toBe('lora_embedding');
    // σ = [2, 1, 0.05] at rank 1: error √(1 + 0.05²)/√(4 + 1 + 0.05²)
    expect(r.modules.find((m) => m.tensor === Q(2))!.relError).toBeCloseTo(Math.sqrt(1.0025 / 5.0025), 5);
  });

  it('--sv-epsilon drops small singular values: ranks differ per module and land in rank_pattern', async () => {
    const out = join(dir, 'eps');
    const r = await extractLora({ base, finetuned: ft, out, rank: 4, svEpsilon: 0.1 });
    const rank = (t: string): number => r.modules.find((m) => m.tensor === t)!.rank;
    expect(rank(Q(2))).toBe(2); // 0.05 < 0.1·2
    expect(rank(UP(1))).toBe(3);
    expect(r.r).toBe(3);
    const cfg = JSON.parse(await readFile(join(out, 'adapter_config.json'), 'utf8'));
    expect(cfg.rank_pattern).toMatchObject({ 'model.layers.2.self_attn.q_proj': 2 });
    const v = await roundTrip(out);
    expect(relError(tau[Q(2)]!, v.get(Q(2))!)).toBeCloseTo(Math.sqrt(0.0025 / 5.0025), 5);
  });

  it('bf16 factors: the error is measured on the stored factors', async () => {
    const out = join(dir, 'bf16');
    const r = await extractLora({ base, finetuned: ft, out, rank: 4, dtype: 'BF16' });
    const v = await roundTrip(out);
    const m = r.modules.find((x) => x.tensor === UP(1))!;
    expect(m.relError).toBeGreaterThan(1e-4);
    expect(Math.abs(m.relError - relError(tau[UP(1)]!, v.get(UP(1))!))).toBeLessThan(1e-5);
  });

  it('mergekit options: include/exclude regexes, --skip-undecomposable, --no-distribute-scale', async () => {
    const only = await extractLora({ base, finetuned: ft, out: join(dir, 'inc'), rank: 4, include: ['q_proj$'], exclude: ['layers\\.2\\.'] });
    const kinds = new Map(only.modules.map((m) => [m.tensor, m.kind]));
    expect(kinds.get(Q(0))).toBe('lora');
    expect(kinds.get(Q(2))).toBe('excluded');
    expect(kinds.get(UP(1))).toBe('excluded');
    expect(kinds.get('model.norm.weight')).toBe('excluded');
    expect(kinds.get('model.embed_tokens.weight')).toBe('full'); // embeddings are saved unless excluded, as mergekit
    expect(only.modules.find((m) => m.tensor === UP(1))!.relError).toBe(1);
    const noEmbed = await extractLora({ base, finetuned: ft, out: join(dir, 'exc'), rank: 4, exclude: ['embed'] });
    expect(noEmbed.modules.find((m) => m.tensor === 'model.embed_tokens.weight')!.kind).toBe('excluded');

    const skip = await extractLora({ base, finetuned: ft, out: join(dir, 'skip'), rank: 4, skipUndecomposable: true });
    expect(skip.modules.find((m) => m.tensor === 'model.norm.weight')).toMatchObject({ kind: 'dropped', relError: 1 });
    expect((await roundTrip(join(dir, 'skip'))).has('model.norm.weight')).toBe(false);

    // B = U (orthonormal columns), A = S·Vᵀ; the product is the same
    const plain = join(dir, 'plain');
    await extractLora({ base, finetuned: ft, out: plain, rank: 4, distributeScale: false });
    const v = await roundTrip(plain);
    expect(relError(tau[UP(1)]!, v.get(UP(1))!)).toBeLessThan(1e-6);
    const w = await openCheckpointPath(join(plain, 'adapter_model.safetensors'));
    try {
      const b = await w.readF32('base_model.model.model.layers.1.mlp.up_proj.lora_B.weight');
      const [rows, k] = w.info('base_model.model.model.layers.1.mlp.up_proj.lora_B.weight').shape as [number, number];
      for (let a = 0; a < k; a++) {
        for (let c = 0; c < k; c++) {
          let dot = 0;
          for (let i = 0; i < rows; i++) dot += b[i * k + a]! * b[i * k + c]!;
          expect(Math.abs(dot - (a === c ? 1 : 0))).toBeLessThan(1e-5);
        }
      }
    } finally {
      await w.close();
    }
    await expect(extractLora({ base, finetuned: ft, out: join(dir, 'bad-re'), rank: 4, include: ['('] })).rejects.toMatchObject({ code: 'USAGE', message: expect.stringContaining("--include: '('") });
    // a pattern that matches no changed weight: no adapter without a LoRA module
    await expect(extractLora({ base, finetuned: ft, out: join(dir, 'no-match'), rank: 4, include: ['nomatch'] })).rejects.toMatchObject({ code: 'USAGE', message: expect.stringContaining('no changed 2-D weight matches --include nomatch') });
    expect(existsSync(join(dir, 'no-match'))).toBe(false);
  });

  it('a NaN in the fine-tune is VECTOR_NOT_FINITE naming the tensor and the model; nothing is written', async () => {
    const bad = tinyValues(0);
    bad.get(Q(1))![2] = NaN;
    await writeModel(join(dir, 'ft-nan'), bad);
    const out = join(dir, 'nan-adapter');
    await expect(extractLora({ base, finetuned: join(dir, 'ft-nan'), out, rank: 4 })).rejects.toMatchObject({
      code: 'VECTOR_NOT_FINITE',
      where: { tensor: Q(1) },
      message: expect.stringContaining('the fine-tuned model'),
    });
    expect(existsSync(out)).toBe(false);
  });

  it('refuses an existing output and a rank of 0', async () => {
    await expect(extractLora({ base, finetuned: ft, out: join(dir, 'a4'), rank: 4 })).rejects.toMatchObject({ code: 'OUT_EXISTS' });
    await expect(extractLora({ base, finetuned: ft, out: join(dir, 'r0'), rank: 0 })).rejects.toMatchObject({ code: 'USAGE' });
  });
});
