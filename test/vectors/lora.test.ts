import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openVector } from '../../src/vectors/reader.js';
import { loraToVector, openLoraAdapter, patternValue } from '../../src/vectors/lora.js';
import { tempDir, tinyValues, writeModel } from '../plan/helpers.js';
import { expectedDelta, randomFactor, writeAdapter, type Factor } from './lora-helpers.js';

const P = 'base_model.model.';
const Q0 = 'model.layers.0.self_attn.q_proj';
const U1 = 'model.layers.1.mlp.up_proj';

let dir: string;
let base: string;
let n = 0;
const fresh = (): string => join(dir, `case-${n++}`);

beforeAll(async () => {
  dir = await tempDir('weightkit-lora-');
  base = join(dir, 'base');
  await writeModel(base, tinyValues(0));
});

async function vectorOf(adapter: string): Promise<Map<string, Float32Array>> {
  const out = join(dir, `v-${n++}.safetensors`);
  await loraToVector({ adapter, base, out });
  const v = await openVector(out);
  const m = new Map<string, Float32Array>();
  for (const t of v.tensors()) m.set(t.name, (await v.readF32(t.name)).slice());
  await v.close();
  return m;
}

async function codeOf(p: Promise<unknown>): Promise<{ code: string; where: Record<string, unknown> }> {
  try {
    await p;
  } catch (e) {
    const we = e as { code: string; where: Record<string, unknown> };
    return { code: we.code, where: we.where };
  }
  throw new Error('expected an error');
}

describe('LoRA adapter -> task vector', () => {
  it('ΔW = scale·B·A exactly, with rank_pattern and alpha_pattern overriding r and lora_alpha', async () => {
    const a0 = randomFactor([2, 4], 1);
    const b0 = randomFactor([4, 2], 2);
    const a1 = randomFactor([3, 4], 3);
    const b1 = randomFactor([6, 3], 4);
    const ad = fresh();
    await writeAdapter(
      ad,
      { [`${P}${Q0}.lora_A.weight`]: a0, [`${P}${Q0}.lora_B.weight`]: b0, [`${P}${U1}.lora_A.weight`]: a1, [`${P}${U1}.lora_B.weight`]: b1 },
      { peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj', 'up_proj'], rank_pattern: { 'layers.1.mlp.up_proj': 3 }, alpha_pattern: { [U1]: 1.5 } },
    );
    const v = await vectorOf(ad);
    expect([...v.keys()].sort()).toEqual([`${Q0}.weight`, `${U1}.weight`]);
    expect(v.get(`${Q0}.weight`)).toEqual(expectedDelta(a0, b0, 4 / 2, false));
    expect(v.get(`${U1}.weight`)).toEqual(expectedDelta(a1, b1, 1.5 / 3, false));
    const info = await openLoraAdapter(ad);
    expect(info.modules.map((m) => [m.module, m.rank, m.scale])).toEqual([
      [Q0, 2, 2],
      [U1, 3, 0.5],
    ]);
    await info.close();
  });

  it('rsLoRA scales by alpha/√r; embeddings and fan_in_fan_out are transposed; modules_to_save is saved − base', async () => {
    const a = randomFactor([4, 4], 5);
    const b = randomFactor([4, 4], 6);
    const ea = randomFactor([2, 8], 7);
    const eb = randomFactor([4, 2], 8);
    const head = randomFactor([8, 4], 9);
    const ad = fresh();
    await writeAdapter(
      ad,
      {
        [`${P}${Q0}.lora_A.weight`]: a,
        [`${P}${Q0}.lora_B.weight`]: b,
        [`${P}model.embed_tokens.lora_embedding_A`]: ea,
        [`${P}model.embed_tokens.lora_embedding_B`]: eb,
        [`${P}lm_head.weight`]: head,
      },
      { r: 4, lora_alpha: 8, use_rslora: true, target_modules: '.*(q_proj|embed_tokens)', rank_pattern: { embed_tokens: 2 }, modules_to_save: ['lm_head'] },
    );
    const v = await vectorOf(ad);
    expect(v.get(`${Q0}.weight`)).toEqual(expectedDelta(a, b, 8 / Math.sqrt(4), false));
    expect(v.get('model.embed_tokens.weight')).toEqual(expectedDelta(ea, eb, 8 / Math.sqrt(2), true));
    const baseHead = tinyValues(0).get('lm_head.weight')!;
    expect(v.get('lm_head.weight')).toEqual(head.data.map((x, i) => x - baseHead[i]!));

    const fa = randomFactor([2, 6], 10);
    const fb = randomFactor([4, 2], 11);
    const ad2 = fresh();
    // a Conv1D-style module: the base stores [in, out] = [6, 4]
    await writeAdapter(ad2, { [`${P}${U1}.lora_A.weight`]: fa, [`${P}${U1}.lora_B.weight`]: fb }, { r: 2, lora_alpha: 2, target_modules: ['up_proj'], fan_in_fan_out: true });
    expect((await vectorOf(ad2)).get(`${U1}.weight`)).toEqual(expectedDelta(fa, fb, 1, true));
  });

  it('PEFT pattern lookup matches whole dotted suffixes only', () => {
    expect(patternValue({ q_proj: 3 }, 'model.layers.0.self_attn.q_proj')).toBe(3);
    expect(patternValue({ 'layers.1.mlp.up_proj': 3 }, 'model.layers.11.mlp.up_proj')).toBeUndefined();
    expect(patternValue({ 'x_q_proj': 3 }, 'model.q_proj')).toBeUndefined();
  });

  describe('malformed adapters are typed errors naming the file and tensor', () => {
    const a = randomFactor([2, 4], 1);
    const b = randomFactor([4, 2], 2);
    const cfg = { r: 2, lora_alpha: 2, target_modules: ['q_proj'] };
    const pair = { [`${P}${Q0}.lora_A.weight`]: a, [`${P}${Q0}.lora_B.weight`]: b };
    const cases: Array<[string, Record<string, Factor>, object | string | undefined, string, string?]> = [
      ['no config file', pair, undefined, 'CKPT_NOT_FOUND'],
      ['no weights file', {}, cfg, 'CKPT_NOT_FOUND'],
      ['config not JSON', pair, '{r: 2', 'VECTOR_INVALID'],
      ['config without r', pair, { lora_alpha: 2, target_modules: ['q_proj'] }, 'VECTOR_INVALID'],
      ['config without target_modules', pair, { r: 2, lora_alpha: 2 }, 'VECTOR_INVALID'],
      ['r not an integer', pair, { ...cfg, r: 2.5 }, 'VECTOR_INVALID'],
      ['not a LoRA', pair, { ...cfg, peft_type: 'IA3' }, 'VECTOR_INVALID'],
      ['DoRA', pair, { ...cfg, use_dora: true }, 'VECTOR_INVALID'],
      ['bad rank_pattern', pair, { ...cfg, rank_pattern: { q_proj: 0 } }, 'VECTOR_INVALID'],
      ['A without B', { [`${P}${Q0}.lora_A.weight`]: a }, cfg, 'VECTOR_INVALID', `${P}${Q0}.lora_A.weight`],
      ['A and B ranks differ', { [`${P}${Q0}.lora_A.weight`]: a, [`${P}${Q0}.lora_B.weight`]: randomFactor([4, 3], 3) }, cfg, 'TENSOR_SHAPE_MISMATCH', `${P}${Q0}.lora_B.weight`],
      ['rank disagrees with r', pair, { ...cfg, r: 3 }, 'TENSOR_SHAPE_MISMATCH', `${P}${Q0}.lora_A.weight`],
      ['rank disagrees with rank_pattern', pair, { ...cfg, rank_pattern: { q_proj: 4 } }, 'TENSOR_SHAPE_MISMATCH', `${P}${Q0}.lora_A.weight`],
      ['module outside target_modules', pair, { ...cfg, target_modules: ['v_proj'] }, 'VECTOR_INVALID', `${P}${Q0}.lora_A.weight`],
      ['unknown tensor', { ...pair, [`${P}model.norm.weight`]: randomFactor([4], 4) }, cfg, 'VECTOR_INVALID', `${P}model.norm.weight`],
      ['name without the PEFT prefix', { [`${Q0}.lora_A.weight`]: a, [`${Q0}.lora_B.weight`]: b }, cfg, 'VECTOR_INVALID', `${Q0}.lora_A.weight`],
      ['LoRA bias', { ...pair, [`${P}${Q0}.lora_B.bias`]: randomFactor([4], 5) }, cfg, 'VECTOR_INVALID', `${P}${Q0}.lora_B.bias`],
      ['module missing from the base', { [`${P}model.layers.0.self_attn.v_proj.lora_A.weight`]: a, [`${P}model.layers.0.self_attn.v_proj.lora_B.weight`]: b }, { ...cfg, target_modules: ['v_proj'] }, 'TENSOR_NOT_FOUND', `${P}model.layers.0.self_attn.v_proj.lora_A.weight`],
      ['shape disagrees with the base', { [`${P}${U1}.lora_A.weight`]: randomFactor([2, 5], 6), [`${P}${U1}.lora_B.weight`]: randomFactor([6, 2], 7) }, { ...cfg, target_modules: ['up_proj'] }, 'TENSOR_SHAPE_MISMATCH', `${P}${U1}.lora_A.weight`],
    ];
    it.each(cases)('%s', async (_label, tensors, config, code, tensor) => {
      const ad = fresh();
      await writeAdapter(ad, tensors, config);
      const e = await codeOf(loraToVector({ adapter: ad, base, out: join(dir, `bad-${n++}.safetensors`) }));
      expect(e.code).toBe(code);
      expect(String(e.where['file'])).toContain(ad);
      if (tensor !== undefined) expect(e.where['tensor']).toBe(tensor);
    });
    it('a missing adapter folder', async () => {
      expect((await codeOf(openLoraAdapter(join(dir, 'nope')))).code).toBe('CKPT_NOT_FOUND');
    });
  });
});
