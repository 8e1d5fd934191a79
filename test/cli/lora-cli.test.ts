import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openVector } from '../../src/vectors/reader.js';
import { tempDir, tinyValues, writeModel } from '../plan/helpers.js';
import { addInto, lowRank, relError } from '../vectors/lora-helpers.js';
import { runCli } from '../helpers/cli.js';

const run = runCli;

const Q0 = 'model.layers.0.self_attn.q_proj.weight';
let dir: string;
let base: string;
let ft: string;
let tau: Float32Array;

beforeAll(async () => {
  dir = await tempDir('weightkit-lora-cli-');
  base = join(dir, 'base');
  ft = join(dir, 'ft');
  const b = tinyValues(0);
  const f = addInto(b, { [Q0]: lowRank(Q0, 3, 5) });
  tau = f.get(Q0)!.map((x, i) => x - b.get(Q0)![i]!);
  await writeModel(base, b);
  await writeModel(ft, f);
});

describe('weightkit lora (CLI)', () => {
  it('extract (table and --json), info, to-vector', async () => {
    const ad = join(dir, 'ad');
    const r = await run('lora', 'extract', '--base', base, '--finetuned', ft, '--out', ad, '--rank', '2', '--backend', 'js');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/q_proj\.weight\s+lora\s+\[4, 4\]\s+2/);
    const j = await run('lora', 'extract', '--base', base, '--finetuned', ft, '--out', join(dir, 'ad2'), '--rank', '2', '--json', '--backend', 'js');
    expect(j.code, j.stderr).toBe(0);
    const rep = JSON.parse(j.stdout);
    const m = rep.modules.find((x: { tensor: string }) => x.tensor === Q0);
    expect(m).toMatchObject({ kind: 'lora', rank: 2 });
    const info = await run('lora', 'info', ad, '--json');
    expect(info.code, info.stderr).toBe(0);
    expect(JSON.parse(info.stdout)).toMatchObject({ r: 2, loraAlpha: 2, modules: [{ module: 'model.layers.0.self_attn.q_proj', rank: 2, scale: 1 }] });
    expect((await run('lora', 'info', ad)).stdout).toMatch(/LoRA modules\s+1 \(ranks 2×1\)/);
    const out = join(dir, 'v.safetensors');
    const tv = await run('lora', 'to-vector', '--adapter', ad, '--base', base, '--out', out);
    expect(tv.code, tv.stderr).toBe(0);
    const v = await openVector(out);
    expect(Math.abs(relError(tau, await v.readF32(Q0)) - m.relError)).toBeLessThan(1e-5);
    await v.close();
  });

  it("mergekit's flags: --max-rank, -i/-e, --no-distribute-scale, --skip-undecomposable", async () => {
    const f = tinyValues(0);
    const changed = addInto(f, { [Q0]: lowRank(Q0, 3, 5), 'model.layers.1.self_attn.q_proj.weight': lowRank('model.layers.1.self_attn.q_proj.weight', 2, 6), 'model.norm.weight': new Float32Array([0.1, 0, 0, 0]) });
    const ft2 = join(dir, 'ft2');
    await writeModel(ft2, changed);
    const kinds = async (...flags: string[]): Promise<Map<string, string>> => {
      const r = await run('lora', 'extract', '--base', base, '--finetuned', ft2, '--out', join(dir, `k${flags.join('').replace(/\W/g, '')}`), '--json', '--backend', 'js', ...flags);
      expect(r.code, r.stderr).toBe(0);
      return new Map(JSON.parse(r.stdout).modules.map((m: { tensor: string; kind: string; rank: number }) => [m.tensor, `${m.kind}:${m.rank}`]));
    };
    const all = await kinds('--max-rank', '2');
    expect(all.get(Q0)).toBe('lora:2');
    expect(all.get('model.norm.weight')).toBe('full:0');
    const filtered = await kinds('-i', 'q_proj', '-e', 'layers\\.1\\.', '--skip-undecomposable', '--no-distribute-scale');
    expect(filtered.get(Q0)).toBe('lora:3');
    expect(filtered.get('model.layers.1.self_attn.q_proj.weight')).toBe('excluded:0');
    expect(filtered.get('model.norm.weight')).toBe('excluded:0');
    const skip = await kinds('--skip-undecomposable');
    expect(skip.get('model.norm.weight')).toBe('dropped:0');
    const bad = await run('lora', 'extract', '--base', base, '--finetuned', ft2, '--out', join(dir, 'bad'), '--exclude', '[');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/error\[USAGE\].*--exclude: '\['/);
  });

  it('errors are rendered with their code and exit non-zero', async () => {
    const r = await run('lora', 'info', join(dir, 'missing'));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/CKPT_NOT_FOUND/);
    const u = await run('lora', 'extract', '--base', base, '--finetuned', ft, '--out', join(dir, 'x'), '--rank', '0', '--json');
    expect(u.code).not.toBe(0);
    expect(JSON.parse(u.stderr)).toMatchObject({ error: { code: 'USAGE' } });
  });

  it('extract with the ONNX Runtime backend gives the same ranks', async () => {
    const j = await run('lora', 'extract', '--base', base, '--finetuned', ft, '--out', join(dir, 'ort'), '--rank', '4', '--json');
    expect(j.code, j.stderr).toBe(0);
    const m = JSON.parse(j.stdout).modules.find((x: { tensor: string }) => x.tensor === Q0);
    expect(m).toMatchObject({ kind: 'lora', rank: 3 });
    expect(m.relError).toBeLessThan(1e-5);
  });
});
