import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openCheckpointPath } from '../../src/io/open.js';
import { tempDir, tinyValues, writeModel } from '../plan/helpers.js';
import { runCli } from '../helpers/cli.js';

const run = runCli;

async function bytesOf(path: string): Promise<Map<string, Buffer>> {
  const r = await openCheckpointPath(path);
  const m = new Map<string, Buffer>();
  for (const t of r.tensors()) m.set(t.name, Buffer.from(await r.readBytes(t.name)));
  await r.close();
  return m;
}

let dir: string;
let base: string;
beforeAll(async () => {
  dir = await tempDir('weightkit-vector-cli-');
  base = join(dir, 'base');
  await writeModel(base, tinyValues(0), { dtype: 'BF16' });
  for (const s of [1, 2, 3]) await writeModel(join(dir, `m${s}`), tinyValues(s, 1.5), { dtype: 'BF16' });
});

describe('weightkit vector (CLI)', () => {
  it('extract, info, combine, apply, remove --exact round trip', async () => {
    for (const s of [1, 2, 3]) {
      const r = await run('vector', 'extract', '--base', base, '--finetuned', join(dir, `m${s}`), '--out', join(dir, `t${s}.safetensors`), '--kind', 'time', '--label', String(2010 + s));
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/tensors\s+12/);
    }
    const info = await run('vector', 'info', join(dir, 't1.safetensors'), '--json');
    expect(JSON.parse(info.stdout)).toMatchObject({ kind: 'time', label: '2011', tensors: 12 });
    const comb = await run('vector', 'combine', `${join(dir, 't3.safetensors')} + 0.5 * (${join(dir, 't2.safetensors')} - ${join(dir, 't1.safetensors')})`, '--out', join(dir, 'c.safetensors'));
    expect(comb.code, comb.stderr).toBe(0);
    const ap = await run('vector', 'apply', '--base', base, '--vector', join(dir, 'c.safetensors'), '--scale', '0.8', '--out', join(dir, 'patched'));
    expect(ap.code, ap.stderr).toBe(0);
    expect(ap.stdout).toMatch(/undo record/);
    const rm = await run('vector', 'remove', '--model', join(dir, 'patched'), '--vector', join(dir, 'c.safetensors'), '--scale', '0.8', '--out', join(dir, 'restored'), '--exact');
    expect(rm.code, rm.stderr).toBe(0);
    expect(rm.stdout).toMatch(/byte-exact/);
    expect(await bytesOf(join(dir, 'restored'))).toEqual(await bytesOf(base));
  });

  it('time-vector interpolation writes the whole alpha path; the analogy writes one point', async () => {
    const t1 = join(dir, 'i1.safetensors');
    const t2 = join(dir, 'i2.safetensors');
    await run('vector', 'extract', '--base', base, '--finetuned', join(dir, 'm1'), '--out', t1);
    await run('vector', 'extract', '--base', base, '--finetuned', join(dir, 'm2'), '--out', t2);
    const r = await run('vector', 'interpolate', '--base', base, '--from', t1, '--to', t2, '--alphas', '0:1:0.5', '--out', join(dir, 'path'));
    expect(r.code, r.stderr).toBe(0);
    expect((await readdir(join(dir, 'path'))).sort()).toEqual(['alpha-0.00', 'alpha-0.50', 'alpha-1.00']);
    // alpha 1 = base + tau_from = the fine-tuned model m1 (BF16 differences are exact in f32)
    expect(await bytesOf(join(dir, 'path', 'alpha-1.00'))).toEqual(await bytesOf(join(dir, 'm1')));
    expect(await bytesOf(join(dir, 'path', 'alpha-0.00'))).toEqual(await bytesOf(join(dir, 'm2')));
    const a = await run('vector', 'analogy', '--base', base, '--task', t1, '--lm-target', t2, '--lm-start', t1, '--alpha1', '1', '--alpha2', '0', '--alpha3', '1', '--out', join(dir, 'analogy'), '--json');
    expect(a.code, a.stderr).toBe(0);
    // base + t1 + 0*t2 - t1 = base
    expect(await bytesOf(join(dir, 'analogy'))).toEqual(await bytesOf(base));
    expect(JSON.parse(a.stdout).outputs[0].scales).toEqual([1, 0, -1]);
  });

  it('signatures are extracted, composed with mean weights and removed', async () => {
    const sig = join(dir, 'sig.safetensors');
    const r = await run('vector', 'signature', '--pre', base, '--clean', join(dir, 'm1'), '--robust', join(dir, 'm2'), '--out', sig, '--layers', '2');
    expect(r.code, r.stderr).toBe(0);
    const ap = await run('vector', 'apply', '--base', join(dir, 'm1'), '--vector', sig, '--vector', sig, '--out', join(dir, 'm1-sig'), '--json');
    expect(ap.code, ap.stderr).toBe(0);
    expect(JSON.parse(ap.stdout).vectors.map((v: { scale: number }) => v.scale)).toEqual([0.5, 0.5]);
  });

  it('model interpolation (WiSE/BCWI path) and uniform soups from the top-level commands', async () => {
    const r = await run('interpolate', '--from', join(dir, 'm1'), '--to', join(dir, 'm2'), '--alphas', '0,1', '--out', join(dir, 'wise'));
    expect(r.code, r.stderr).toBe(0);
    expect(await bytesOf(join(dir, 'wise', 'alpha-1.00'))).toEqual(await bytesOf(join(dir, 'm2')));
    const s = await run('soup', join(dir, 'm1'), join(dir, 'm1'), '--out', join(dir, 'soup'));
    expect(s.code, s.stderr).toBe(0);
    expect(await bytesOf(join(dir, 'soup'))).toEqual(await bytesOf(join(dir, 'm1')));
  });

  it('bad input: typed errors with exit 2 and no stack trace', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['vector', 'extract', '--base', base, '--finetuned', join(dir, 'nope'), '--out', join(dir, 'x.safetensors')], /CKPT_NOT_FOUND/],
      [['vector', 'extract', '--base', base, '--finetuned', join(dir, 'm1'), '--out', join(dir, 'x.safetensors'), '--quantize', 'cubic'], /USAGE/],
      [['vector', 'info', join(base, 'model.safetensors')], /VECTOR_INVALID/],
      [['vector', 'combine', 'a * b', '--name', `a=${join(dir, 't1.safetensors')}`, '--name', `b=${join(dir, 't2.safetensors')}`, '--out', join(dir, 'y.safetensors')], /VECTOR_EXPRESSION/],
      [['vector', 'apply', '--base', join(dir, 'm2'), '--vector', join(dir, 't1.safetensors'), '--out', join(dir, 'z')], /VECTOR_BASE_MISMATCH/],
      [['vector', 'apply', '--base', base, '--vector', join(dir, 't1.safetensors'), '--scale', '1', '--scale', '2', '--scale', '3', '--out', join(dir, 'z')], /USAGE/],
      [['vector', 'remove', '--model', base, '--vector', join(dir, 't1.safetensors'), '--out', join(dir, 'z'), '--exact'], /VECTOR_UNDO_MISMATCH/],
      [['vector', 'interpolate', '--base', base, '--from', join(dir, 't1.safetensors'), '--to', join(dir, 't2.safetensors'), '--alphas', '1:0:0.1', '--out', join(dir, 'z')], /USAGE/],
      // a coefficient given twice: refused before anything is written
      [['vector', 'interpolate', '--base', base, '--from', join(dir, 't1.safetensors'), '--to', join(dir, 't2.safetensors'), '--alphas', '0.5,0.50', '--out', join(dir, 'twice')], /USAGE\]: two points would both be written to alpha-0.50/],
    ];
    for (const [args, code] of cases) {
      const r = await run(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(code);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    expect(await readFile(join(base, 'model.safetensors'))).toBeTruthy();
    expect(existsSync(join(dir, 'twice', 'alpha-0.50'))).toBe(false);
  });
});

describe('hints name only flags the command has', () => {
  it('a tensor missing from one model: extract suggests --allow-missing, soup (which has no such flag) does not', async () => {
    const v = tinyValues(1);
    v.delete('model.norm.weight');
    await writeModel(join(dir, 'lacks'), v);
    const soup = await run('soup', base, join(dir, 'lacks'), '--out', join(dir, 'soup-lacks'));
    expect(soup.code).toBe(2);
    expect(soup.stderr).toContain('TENSOR_NOT_FOUND');
    expect(soup.stderr).not.toContain('--allow-missing');
    const ex = await run('vector', 'extract', '--base', base, '--finetuned', join(dir, 'lacks'), '--out', join(dir, 'lacks.safetensors'));
    expect(ex.code).toBe(2);
    expect(ex.stderr).toContain('pass --allow-missing');
  });
});

describe('models with nothing in common', () => {
  it('extract, soup and interpolate refuse models that share no float tensor (an empty output would look like a result)', async () => {
    await writeModel(join(dir, 'empty'), new Map());
    const cases = [
      ['vector', 'extract', '--base', join(dir, 'empty'), '--finetuned', join(dir, 'empty'), '--out', join(dir, 'e.safetensors')],
      ['soup', join(dir, 'empty'), join(dir, 'empty'), '--out', join(dir, 'soup-empty')],
      ['interpolate', '--from', join(dir, 'empty'), '--to', join(dir, 'empty'), '--alpha', '0.5', '--out', join(dir, 'i-empty')],
    ];
    for (const args of cases) {
      const r = await run(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toContain('share no float tensor');
    }
    expect(existsSync(join(dir, 'e.safetensors')) || existsSync(join(dir, 'soup-empty')) || existsSync(join(dir, 'i-empty'))).toBe(false);
  });
});

describe('a tensor too large for one buffer', () => {
  it('vector extract reports TENSOR_TOO_LARGE naming the tensor and a file, not an internal error', async () => {
    const { truncate, mkdir, writeFile } = await import('node:fs/promises');
    const sparse = async (name: string): Promise<string> => {
      const d = join(dir, name);
      await mkdir(d, { recursive: true });
      const bytes = 2 ** 33; // [1, 2^31] F32: one row of 8 GB (a sparse file: nothing is written)
      const header = Buffer.from(JSON.stringify({ w: { dtype: 'F32', shape: [1, 2 ** 31], data_offsets: [0, bytes] } }));
      const prefix = Buffer.alloc(8);
      prefix.writeBigUInt64LE(BigInt(header.length));
      const f = join(d, 'model.safetensors');
      await writeFile(f, Buffer.concat([prefix, header]));
      await truncate(f, 8 + header.length + bytes);
      return d;
    };
    const b = await sparse('huge-b');
    const f = await sparse('huge-f');
    const r = await run('vector', 'extract', '--base', b, '--finetuned', f, '--out', join(dir, 'huge.safetensors'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/error\[TENSOR_TOO_LARGE\]: tensor 'w' needs a buffer larger/);
    expect(r.stderr).toMatch(/--> .*huge-[bf].*\(tensor 'w'\)/);
    expect(existsSync(join(dir, 'huge.safetensors'))).toBe(false);
  }, 30_000);
});
