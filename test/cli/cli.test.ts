import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openCheckpointPath } from '../../src/io/open.js';
import { writeSafetensors } from '../../src/io/safetensors/writer.js';
import { bf16ToF32, f32ToBf16 } from '../../src/tensor/convert.js';
import { makeTensor } from '../../src/tensor/tensor.js';
import { HOSTILE_DIR, SAFETENSORS_HOSTILE_CASES } from '../fixtures/hostile/cases.js';
import { ONNX_HOSTILE_CASES } from '../fixtures/hostile/onnx-cases.js';
import { MLP_NAMES, MLP_SHAPES, buildMlp, mlpWeights } from '../io/onnx/build-model.js';
import { expectOrtMatches } from '../io/onnx/ort-check.js';
import { tempDir } from '../plan/helpers.js';
import { runCli } from '../helpers/cli.js';

const run = runCli;

let dir: string;
let small: string;

beforeAll(async () => {
  dir = await tempDir('weightkit-cli-');
  small = join(dir, 'small.safetensors');
  await writeSafetensors(
    small,
    {
      'model.layers.0.mlp.up_proj.weight': makeTensor('F32', [2, 3], new Float32Array([1, 2, 3, 4, 5, 6.5])),
      'model.norm.weight': makeTensor('F32', [3], new Float32Array([0.1, 0.2, 0.3])),
      'position_ids': makeTensor('I64', [3], new BigInt64Array([0n, 1n, 2n])),
    },
    { metadata: { format: 'pt', note: 'hello' } },
  );
});

describe('weightkit CLI', () => {
  it('prints help and version; a bad command is a usage error with exit 2', async () => {
    const h = await run('--help');
    expect(h.code).toBe(0);
    expect(h.stdout).toContain('inspect <path>');
    expect(h.stdout).toContain('convert <input>');
    expect(h.stdout).toContain('merge <recipe>');
    const mh = await run('merge', '--help');
    expect(mh.code).toBe(0);
    expect(mh.stdout).toMatch(/--dry-run\s+print the plan \(tensors, parameters, memory, kernels/);
    expect(mh.stdout).toMatch(/WEIGHTKIT_NATIVE=0/);
    expect(mh.stdout).toMatch(/WEIGHTKIT_DIRECT_IO=0/);
    expect(mh.stdout).toMatch(/WEIGHTKIT_MMAP=0/);
    const v = await run('--version');
    expect(v.stdout.trim()).toBe(JSON.parse(await readFile('package.json', 'utf8')).version);
    const bad = await run('frobnicate');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error\[USAGE\]/);
    const none = await run();
    expect(none.code).toBe(2);
  });

  it('inspect: text and JSON', async () => {
    const t = await run('inspect', small);
    expect(t.code).toBe(0);
    expect(t.stdout).toContain('model.layers.0.mlp.up_proj.weight');
    expect(t.stdout).toMatch(/parameters\s+12 \(12\)/);
    expect(t.stdout).toContain('note');
    const j = await run('inspect', small, '--json');
    const r = JSON.parse(j.stdout);
    expect(r.format).toBe('safetensors');
    expect(r.parameters).toBe(12);
    expect(r.byDType.map((d: { dtype: string }) => d.dtype).sort()).toEqual(['F32', 'I64']);
    expect(r.tensors.find((x: { name: string }) => x.name === 'model.norm.weight').shape).toEqual([3]);
  });

  it('inspect: a sharded Hugging Face folder and an ONNX model', async () => {
    const s = JSON.parse((await run('inspect', resolve('test/fixtures/hf-sharded'), '--json')).stdout);
    expect(s.format).toBe('safetensors-sharded');
    expect(s.shards.length).toBe(2);
    expect(s.tensors.some((t: { name: string }) => t.name === 'model.layers.0.self_attn.q_proj.weight')).toBe(true);
    const o = JSON.parse((await run('inspect', resolve('test/fixtures/onnx/mlp-f32.onnx'), '--json')).stdout);
    expect(o.format).toBe('onnx');
    expect(o.tensors.map((t: { name: string }) => t.name).sort()).toEqual([...MLP_NAMES].sort());
  });

  it.each(SAFETENSORS_HOSTILE_CASES.map((c) => [c.path, c.code] as const))('hostile %s -> %s, exit 2', async (path, code) => {
    const r = await run('inspect', join(HOSTILE_DIR, path));
    expect(r.code).toBe(2);
    expect(r.stderr.startsWith(`error[${code}]`)).toBe(true);
    expect(r.stderr).toContain('-->');
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    const j = await run('inspect', join(HOSTILE_DIR, path), '--json');
    expect(JSON.parse(j.stderr).error.code).toBe(code);
  });

  it.each(ONNX_HOSTILE_CASES.map((c) => [c.file, c.code] as const))('hostile %s -> %s, exit 2', async (file, code) => {
    const r = await run('inspect', join(HOSTILE_DIR, file));
    expect(r.code).toBe(2);
    expect(r.stderr.startsWith(`error[${code}]`)).toBe(true);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('convert: dtype conversion to a single file, to a sharded folder, refusing to overwrite', async () => {
    const out = join(dir, 'small-bf16.safetensors');
    const r = await run('convert', small, '--out', out, '--dtype', 'bf16');
    expect(r.code).toBe(0);
    const rd = await openCheckpointPath(out);
    expect(rd.info('model.layers.0.mlp.up_proj.weight').dtype).toBe('BF16');
    expect(rd.info('position_ids').dtype).toBe('I64');
    const got = (await rd.read('model.layers.0.mlp.up_proj.weight')).data as Uint16Array;
    expect(Array.from(got)).toEqual(Array.from(f32ToBf16(new Float32Array([1, 2, 3, 4, 5, 6.5]))));
    expect(Array.from(bf16ToF32(got))).toEqual([1, 2, 3, 4, 5, 6.5]);
    expect(rd.metadata()['note']).toBe('hello');
    await rd.close();
    const again = await run('convert', small, '--out', out);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/^error\[OUT_EXISTS\]/);
    expect((await run('convert', small, '--out', out, '--overwrite')).code).toBe(0);

    const folder = join(dir, 'sharded');
    const s = await run('convert', small, '--out', folder, '--shard-size', '30');
    expect(s.code).toBe(0);
    const files = await readdir(folder);
    expect(files).toContain('model.safetensors.index.json');
    const index = JSON.parse(await readFile(join(folder, 'model.safetensors.index.json'), 'utf8'));
    expect(index.metadata.total_size).toBe(24 + 12 + 24);
    expect(Object.keys(index.weight_map).sort()).toEqual(['model.layers.0.mlp.up_proj.weight', 'model.norm.weight', 'position_ids']);
    const bad = await run('convert', small, '--out', join(dir, 'x'), '--shard-size', 'lots');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error\[USAGE\]/);
    const badDtype = await run('convert', small, '--out', join(dir, 'y.safetensors'), '--dtype', 'int8');
    expect(badDtype.code).toBe(2);
  });

  it('convert: ONNX -> safetensors, and ONNX + weights -> patched ONNX run in ORT', async () => {
    const model = join(dir, 'mlp.onnx');
    await writeFile(model, buildMlp({ weights: mlpWeights(1) }).bytes);
    const st = join(dir, 'mlp.safetensors');
    expect((await run('convert', model, '--out', st)).code).toBe(0);
    const rd = await openCheckpointPath(st);
    expect(rd.tensors().map((t) => t.name).sort()).toEqual([...MLP_NAMES].sort());
    await rd.close();

    const w2 = mlpWeights(7);
    const weights = join(dir, 'w2.safetensors');
    await writeSafetensors(weights, Object.fromEntries(MLP_NAMES.map((n) => [n, makeTensor('F32', MLP_SHAPES[n], w2[n])])));
    const patched = join(dir, 'patched.onnx');
    const p = await run('convert', model, '--weights', weights, '--out', patched);
    expect(p.code, p.stderr).toBe(0);
    await expectOrtMatches(patched, w2);

    // --external always: tensors of 1 KB or more go to <out>.data (smaller ones stay inline, as in onnx's
    // size_threshold); a model with an extra 2 KB initializer shows the data file, and ORT loads it by path
    const bigValues = Float32Array.from({ length: 512 }, (_, i) => i / 512);
    const bigModel = join(dir, 'mlp-big.onnx');
    await writeFile(bigModel, buildMlp({ weights: mlpWeights(1), extra: [{ name: 'big', dataType: 1, dims: [512n], rawData: new Uint8Array(bigValues.buffer) }] }).bytes);
    const bigWeights = join(dir, 'w2-big.safetensors');
    await writeSafetensors(bigWeights, { ...Object.fromEntries(MLP_NAMES.map((n) => [n, makeTensor('F32', MLP_SHAPES[n], w2[n])])), big: makeTensor('F32', [512], bigValues.map((v) => -v)) });
    const ext = join(dir, 'patched-ext.onnx');
    const e = await run('convert', bigModel, '--weights', bigWeights, '--out', ext, '--external', 'always');
    expect(e.code, e.stderr).toBe(0);
    expect(existsSync(`${ext}.data`)).toBe(true);
    await expectOrtMatches(ext, w2);
    const back = await openCheckpointPath(ext);
    expect(Array.from(await back.readF32('big')).slice(0, 3)).toEqual([-0, -1 / 512, -2 / 512]);
    expect(back.info('big').file).toBe(`${ext}.data`);
    await back.close();
    expect((await run('convert', model, '--weights', weights, '--out', join(dir, 'bad.onnx'), '--external', 'sometimes')).code).toBe(2);

    // a missing tensor is an error naming it; --allow-missing keeps the model's value
    const partial = join(dir, 'partial.safetensors');
    await writeSafetensors(partial, { W1: makeTensor('F32', [8, 16], w2.W1) });
    const miss = await run('convert', model, '--weights', partial, '--out', join(dir, 'p2.onnx'));
    expect(miss.code).toBe(2);
    expect(miss.stderr).toMatch(/^error\[TENSOR_NOT_FOUND\]/);
    expect(miss.stderr).toContain("tensor 'b1'");
    const ok = await run('convert', model, '--weights', partial, '--out', join(dir, 'p3.onnx'), '--allow-missing');
    expect(ok.code, ok.stderr).toBe(0);
    await expectOrtMatches(join(dir, 'p3.onnx'), { ...mlpWeights(1), W1: w2.W1 });
    // dtype mismatch needs --cast
    const bf = join(dir, 'w2-bf16.safetensors');
    expect((await run('convert', weights, '--out', bf, '--dtype', 'bf16')).code).toBe(0);
    const noCast = await run('convert', model, '--weights', bf, '--out', join(dir, 'p4.onnx'));
    expect(noCast.stderr).toMatch(/^error\[TENSOR_DTYPE_MISMATCH\]/);
    expect((await run('convert', model, '--weights', bf, '--out', join(dir, 'p4.onnx'), '--cast')).code).toBe(0);
    // shape mismatch
    const wrong = join(dir, 'wrong.safetensors');
    await writeSafetensors(wrong, { W1: makeTensor('F32', [16, 8], w2.W1) });
    const sh = await run('convert', model, '--weights', wrong, '--out', join(dir, 'p5.onnx'), '--allow-missing');
    expect(sh.stderr).toMatch(/^error\[TENSOR_SHAPE_MISMATCH\]/);
    expect(existsSync(join(dir, 'p5.onnx'))).toBe(false);
  });

  it('the built binary runs (npm run build output)', () => {
    execFileSync(process.execPath, [resolve('node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { stdio: 'pipe' });
    const ok = spawnSync(process.execPath, ['bin/weightkit.js', 'inspect', small, '--json'], { encoding: 'utf8' });
    expect(ok.status).toBe(0);
    expect(JSON.parse(ok.stdout).parameters).toBe(12);
    const bad = spawnSync(process.execPath, ['bin/weightkit.js', 'inspect', join(HOSTILE_DIR, 'st-gap.safetensors')], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^error\[ST_GAP\]/);
  }, 60_000);
});
