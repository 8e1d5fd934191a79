// The optional native TIES kernels (native/gta.cc, loaded by src/plan/native.ts) must give exactly the bytes of the
// WebAssembly kernels: merges of BF16 families with ties at the thresholds, NaN/inf/-0, 1 to 5 models, negative
// weights, density 0 and 1, whole-model trims, disjoint sums, pieces with short tails, on one thread and two. On a
// machine that can build them (linux-x64, g++, AVX-512) they must be built, so this comparison cannot be skipped
// silently there.
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, truncateSync } from 'node:fs';
import { open, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { SAMPLE_BLOCK, sampleOffset, setNativeTensorFlags } from '../../src/merge/methods/gta-core.js';
import { loadNativeKernels, nativeKernelsFrom } from '../../src/plan/native.js';
import { NATIVE_ABI, NATIVE_FUNCTIONS, type NativeKernels } from '../../src/tensor/native-kernels.js';
import { merge } from '../../src/plan/merge.js';
import { openCheckpointPath } from '../../src/io/open.js';
import type { TensorLocation } from '../../src/io/types.js';
import { fromF32, toF32 } from '../../src/tensor/convert.js';
import { randomU32, SeededRandom } from '../../src/tensor/rng.js';
import { deltaL1Into, l1Lanes, laneTotal } from '../../src/merge/methods/gta-kernels.js';
import { MagnitudeSelector } from '../../src/tensor/select.js';
import { Workspace } from '../../src/tensor/wasm/workspace.js';
import { runCli } from '../helpers/cli.js';
import { tempDir, writeModel } from './helpers.js';

// a tensor large enough for the sampled window of the HIGH pass (gta-core.ts SAMPLE_MIN_ELEMENTS), in its own family
const BIG = 'model.layers.1.mlp.down_proj.weight';
const BIG_SHAPE = [2048, 1100];
const PIECE = 16384;

const SHAPES: Record<string, number[]> = {
  'model.layers.0.mlp.up_proj.weight': [37, 901], // 33337 elements: two full pieces and a tail that is not a multiple of 16
  'model.layers.0.self_attn.q_proj.weight': [16, 1024], // exactly one piece
  'model.layers.0.input_layernorm.weight': [13],
};
const MODELS = ['base', 'a', 'b', 'c', 'd', 'e'];
const MODELS8 = [...MODELS, 'f', 'g', 'h', 'i'];

function canBuild(): boolean {
  if (process.platform !== 'linux' || process.arch !== 'x64') return false;
  try {
    execFileSync('g++', ['--version'], { stdio: 'ignore' });
  } catch {
    return false;
  }
  return /\bavx512f\b/.test(readFileSync('/proc/cpuinfo', 'utf8')) && /\bavx512bw\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));
}

/** BF16 values on a coarse grid (many equal magnitudes: ties at every threshold), some special values. */
function values(m: number): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of Object.entries(SHAPES)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const base = new SeededRandom(11 + n);
    const r = new SeededRandom(1000 * m + n);
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const b = (base.int(513) - 256) / 64;
      v[i] = m === 0 ? b : r.next() < 0.15 ? b : b + (r.int(33) - 16) / 256;
    }
    if (m > 0) {
      v[10 + m] = NaN;
      v[100 + m] = Infinity;
      v[1000] = -Infinity;
      v[5000 + m] = -0;
    }
    out.set(name, toF32('BF16', fromF32('BF16', v)));
  }
  return out;
}

/**
 * The big tensor: small deltas (k/1024) with ties, except, when `misleading`, the elements the SAMPLE pass reads
 * (SAMPLE_BLOCK of each piece at sampleOffset) get large ones, so the window from
 * the sample lies far above the tensor's real threshold.
 */
function bigValues(m: number, misleading: boolean, rough = false): Map<string, Float32Array> {
  const n = BIG_SHAPE[0]! * BIG_SHAPE[1]!;
  const base = new SeededRandom(5);
  const r = new SeededRandom(77 + m);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    // rough: continuous values and deltas as large as the weights (many differences are not BF16 numbers)
    const b = rough ? base.normal() * 0.02 : (base.int(513) - 256) / 64;
    v[i] = m === 0 ? b : rough ? b + r.normal() * 0.01 : b + (r.int(65) - 32) / 1024;
  }
  if (m > 0 && misleading) {
    for (let p = 0; p * PIECE < n; p++) {
      const len = Math.min(PIECE, n - p * PIECE);
      const blk = Math.min(SAMPLE_BLOCK, len);
      const off = sampleOffset(p, len);
      for (let j = 0; j < blk; j++) v[p * PIECE + off + j]! += 2 + r.int(8);
    }
  }
  return new Map([[BIG, toF32('BF16', fromF32('BF16', v))]]);
}

/** bigValues' continuous values with NaN, inf and -0 among the inputs (base included), for the windowed counts. */
function bigNonFinite(m: number): Map<string, Float32Array> {
  const v = new Float32Array(bigValues(m, false, true).get(BIG)!);
  for (let i = 1000 + 37 * m; i < v.length; i += 997 + 13 * m) v[i] = NaN;
  for (let i = 500 + 11 * m; i < v.length; i += 2003) v[i] = i % 2 ? Infinity : -Infinity;
  for (let i = 77 + m; i < v.length; i += 1511) v[i] = -0;
  return new Map([[BIG, v]]);
}

let root: string;
beforeAll(async () => {
  root = await tempDir('weightkit-native-');
  for (const [i, m] of MODELS.entries()) {
    await writeModel(join(root, m), values(i), { dtype: 'BF16', shapes: SHAPES, config: false, tokenizer: false });
    if (i > 3) continue;
    for (const misleading of [false, true]) {
      await writeModel(join(root, `big-${misleading ? 'miss' : 'ok'}`, m), bigValues(i, misleading), { dtype: 'BF16', shapes: { [BIG]: BIG_SHAPE }, config: false, tokenizer: false });
    }
    await writeModel(join(root, 'big-rough', m), bigValues(i, false, true), { dtype: 'BF16', shapes: { [BIG]: BIG_SHAPE }, config: false, tokenizer: false });
    for (const dtype of ['BF16', 'F16'] as const) {
      await writeModel(join(root, `big-nan-${dtype}`, m), bigNonFinite(i), { dtype, shapes: { [BIG]: BIG_SHAPE }, config: false, tokenizer: false });
    }
    await writeModel(join(root, 'f16', m), values(i), { dtype: 'F16', shapes: SHAPES, config: false, tokenizer: false });
  }
  for (const [i, m] of MODELS8.entries()) await writeModel(join(root, 'f16-8', m), values(i), { dtype: 'F16', shapes: SHAPES, config: false, tokenizer: false });
});

afterEach(() => {
  delete process.env['WEIGHTKIT_NATIVE'];
  vi.restoreAllMocks();
});

interface Case {
  /** ties unless given */
  method?: string;
  /** no base_model line (linear) */
  noBase?: boolean;
  models: number;
  weights?: number[];
  density?: (i: number) => number;
  params?: string;
}

const CASES: Record<string, Case> = {
  'ties, 3 models, mixed weights': { models: 3, weights: [1, 0.7, -0.4] },
  'ties, 1 model': { models: 1 },
  'ties, 5 models, disjoint sum, lambda': { models: 5, params: 'disjoint: sum, lambda: 0.6' },
  'ties, densities 0, 1 and 0.3': { models: 3, density: (i) => [0, 1, 0.3][i]! },
  'ties, trim_scope model': { models: 3, params: 'trim_scope: model' },
  'ties, 2 models, no normalize': { models: 2, params: 'normalize: false' },
  // positive weights (tiesLean's scaled and lambda forms)
  'ties, 3 models, positive weights, lambda': { models: 3, weights: [0.8, 0.5, 1.3], params: 'lambda: 0.6' },
  'ties, 4 models, lambda, no normalize': { models: 4, params: 'lambda: 1.5, normalize: false' },
  'task_arithmetic, 3 models, mixed weights': { method: 'task_arithmetic', models: 3, weights: [1, 0.7, -0.4] },
  'task_arithmetic, 5 models, normalize, lambda': { method: 'task_arithmetic', models: 5, weights: [0.5, 0.25, 1, 2, 0.3], params: 'normalize: true, lambda: 0.6' },
  'dare_ties, 3 models, densities 0.3 / 0.5 / 1, rescaled': { method: 'dare_ties', models: 3, weights: [1, 0.7, -0.4], density: (i) => [0.3, 0.5, 1][i]! },
  'dare_ties, 5 models, no rescale': { method: 'dare_ties', models: 5, params: 'rescale: false' },
  // positive weights, every density below 1: dareLean (scaled and unit forms, divided or not)
  'dare_ties, 3 models, positive weights, normalize, lambda': { method: 'dare_ties', models: 3, weights: [1, 0.7, 0.4], density: (i) => [0.3, 0.5, 0.8][i]!, params: 'normalize: true, lambda: 0.8' },
  'dare_ties, 4 models, no rescale, no normalize': { method: 'dare_ties', models: 4, params: 'rescale: false, normalize: false' },
  'dare_linear, 3 models, rescaled, normalize': { method: 'dare_linear', models: 3, weights: [0.5, 0.3, 0.2], params: 'normalize: true' },
  'dare_linear, 2 models, density 0 and 0.6': { method: 'dare_linear', models: 2, density: (i) => [0, 0.6][i]! },
  'breadcrumbs_ties, 3 models, gamma 0.1': { method: 'breadcrumbs_ties', models: 3, weights: [1, 0.7, -0.4], params: 'gamma: 0.1' },
  'breadcrumbs_ties, 5 models, densities and gamma 0': { method: 'breadcrumbs_ties', models: 5, density: (i) => [0.2, 0.5, 0.9, 1, 0][i]!, params: 'gamma: 0' },
  'breadcrumbs, 3 models, gamma 0.3, density 0.6': { method: 'breadcrumbs', models: 3, density: () => 0.6, params: 'gamma: 0.3' },
  // positive weights: maskLean's bands (every delta in, and none out)
  // (density + gamma >= 1 for the first: nothing below its band, every delta in but the top ones, NaN and zeros too)
  'breadcrumbs_ties, 3 models, densities 0.97 / 0.6 / 0.4, normalize': { method: 'breadcrumbs_ties', models: 3, weights: [1, 0.6, 0.8], density: (i) => [0.97, 0.6, 0.4][i]!, params: 'gamma: 0.05, normalize: true' },
  'breadcrumbs_ties, 2 models, gamma 0, normalize, lambda': { method: 'breadcrumbs_ties', models: 2, params: 'gamma: 0, normalize: true, lambda: 0.7' },
  'linear, 4 models without a base, normalize': { method: 'linear', noBase: true, models: 4, weights: [0.5, 0.3, 0.15, 0.05] },
  'linear, 2 models, a negative weight, no normalize': { method: 'linear', noBase: true, models: 2, weights: [0.7, -0.2], params: 'normalize: false' },
  'slerp, t 0.3': { method: 'slerp', models: 1, params: 't: 0.3' },
  'model_stock, 3 models': { method: 'model_stock', models: 3 },
  'slerp, t 1.2 (extrapolation)': { method: 'slerp', models: 1, params: 't: 1.2' },
  'della, 3 models, epsilon 0.1': { method: 'della', models: 3, weights: [1, 0.7, -0.4], params: 'epsilon: 0.1' },
  'della_linear, 2 models, densities 0.3 and 0.7': { method: 'della_linear', models: 2, density: (i) => [0.3, 0.7][i]! },
  // density + gamma = 1: nothing below the band, so every number (and the NaN deltas) stays unless in the top
  'breadcrumbs_ties, 3 models, density 0.95, gamma 0.05': { method: 'breadcrumbs_ties', models: 3, density: () => 0.95, params: 'gamma: 0.05' },
};

interface RunOptions {
  threads?: number;
  /** a working-memory budget small enough to read every tensor in row chunks (the piece kernels run) */
  chunked?: boolean;
  /** tiesTensor test flags (1: exact threshold passes, 2: window lists overflow, 4: mapped pages given back behind the passes, 64: separate mask and consensus kernels instead of the fused one, 128: the fused kernel tiesFused instead of tiesFast) */
  flags?: number;
  /** false: WEIGHTKIT_MMAP=0 (whole tensors read into the workspace instead of mapped from their files) */
  mmap?: boolean;
  /** a memory budget (bytes) */
  budget?: number;
  /** the recipe's dtype (default bfloat16) */
  dtype?: string;
}

async function runCase(name: string, c: Case & { dir?: string }, native: boolean, o: RunOptions = {}): Promise<Buffer> {
  const threads = o.threads ?? 1;
  const at = (m: string): string => (c.dir ? `${c.dir}/${m}` : m);
  const method = c.method ?? 'ties';
  const lines = [`merge_method: ${method}`, ...(c.noBase ? [] : [`base_model: ${at('base')}`]), 'models:'];
  for (let i = 0; i < c.models; i++) {
    const density = method === 'task_arithmetic' || method === 'linear' ? '' : `, density: ${c.density?.(i) ?? 0.5}`;
    lines.push(method === 'slerp' || method === 'model_stock' ? `  - {model: ${at(MODELS8[i + 1]!)}}` : `  - {model: ${at(MODELS8[i + 1]!)}, parameters: {weight: ${c.weights?.[i] ?? 1}${density}}}`);
  }
  if (c.params) lines.push(`parameters: {${c.params}}`);
  lines.push(`dtype: ${o.dtype ?? 'bfloat16'}`, '');
  const tag = `${name.replace(/\W+/g, '-')}-${native ? 'native' : 'wasm'}-${threads}-${o.chunked ? 'c' : 'w'}${o.flags ?? 0}${o.mmap === false ? 'r' : 'm'}${o.budget ?? ''}${o.dtype ?? ''}`;
  const recipe = join(root, `${tag}.yaml`);
  await writeFile(recipe, lines.join('\n'));
  if (native) delete process.env['WEIGHTKIT_NATIVE'];
  else process.env['WEIGHTKIT_NATIVE'] = '0';
  const out = join(root, `out-${tag}`);
  setNativeTensorFlags(o.flags ?? 0);
  if (o.mmap === false) process.env['WEIGHTKIT_MMAP'] = '0';
  try {
    await merge(recipe, { out, threads, ...(threads > 1 ? { pool: 'always' as const } : {}), ...(o.chunked ? { memoryBudget: 1 << 16 } : o.budget ? { memoryBudget: o.budget } : {}) });
  } finally {
    setNativeTensorFlags(0);
    delete process.env['WEIGHTKIT_MMAP'];
  }
  return readFile(join(out, 'model.safetensors'));
}

/**
 * Spies on the whole-tensor kernel, recording how each call found each model's threshold (0 none, 1 window counts,
 * 3 window counts and a selection among its inexact values, 2 exact counts).
 */
function spyTensor(k: NativeKernels): { calls: () => number; paths: number[][]; kept: number[][]; mapped: boolean[]; factors: number[][]; draws: { n: number; keys: number[][] }[] } {
  const orig = k.tiesTensor.bind(k);
  const paths: number[][] = [];
  const kept: number[][] = [];
  const mapped: boolean[] = [];
  const factors: number[][] = [];
  // DARE's streams: the tensor's length and each model's k0, k1 and threshold
  const draws: { n: number; keys: number[][] }[] = [];
  let n = 0;
  vi.spyOn(k, 'tiesTensor').mockImplementation((b, ms, o, a, masks) => {
    // a call that only gives kept inputs back (tensorCalls' close: no output, flag 512) does no work: not counted
    if (o.length === 0 && (a[3]! & 512) !== 0) {
      orig(b, ms, o, a, masks);
      return;
    }
    n++;
    mapped.push(!(b instanceof Uint16Array));
    orig(b, ms, o, a, masks);
    paths.push(ms.map((_, i) => a[8 + 8 * i + 5]!));
    kept.push(ms.map((_, i) => a[8 + 8 * i + 4]!));
    factors.push(ms.map((_, i) => a[80 + 8 * i + 6]!));
    draws.push({ n: a[74]!, keys: ms.map((_, i) => [a[80 + 8 * i]!, a[80 + 8 * i + 1]!, a[80 + 8 * i + 2]!]) });
  });
  return { calls: () => n, paths, kept, mapped, factors, draws };
}

type BigCase = Case & { dir: string; method: string };

/**
 * A method on a large family, native against WebAssembly: the same bytes whole, with each of `flags`, and with a
 * budget too small for the whole output (thresholds first, then ranges); `check` sees the native call's spy.
 */
async function compareBig(cases: readonly BigCase[], flags: readonly number[], check: (c: BigCase, spy: ReturnType<typeof spyTensor>) => void): Promise<void> {
  const k = loadNativeKernels();
  for (const c of cases) {
    const whole = k ? spyTensor(k) : undefined;
    const nat = await runCase(`big ${c.method} ${c.dir}`, c, true);
    if (whole) check(c, whole);
    const wasm = await runCase(`big ${c.method} ${c.dir}`, c, false);
    expect(nat.equals(wasm)).toBe(true);
    for (const f of flags) expect((await runCase(`big ${c.method} ${c.dir}`, c, true, { flags: f })).equals(wasm)).toBe(true);
    expect((await runCase(`big ${c.method} ${c.dir}`, c, true, { budget: 16 << 20 })).equals(wasm)).toBe(true);
    vi.restoreAllMocks();
  }
}

describe('native TIES kernels', () => {
  it('are built where they can be (linux-x64, g++, AVX-512)', () => {
    if (!canBuild()) return; // elsewhere the WebAssembly kernels run and the comparisons below are vacuous
    expect(loadNativeKernels()).toBeDefined();
  });

  for (const [name, c] of Object.entries(CASES)) {
    it(`${name}: the same bytes as the WebAssembly kernels (whole tensors, row chunks, exact and overflowing windows)`, async () => {
      const k = loadNativeKernels();
      const whole = k ? spyTensor(k) : undefined;
      const piece = k ? vi.spyOn(k, 'tiesPiece') : undefined;
      const nat = await runCase(name, c, true);
      // every tensor in one native call (slerp: its Gram sums first; NaN inputs make NaN coefficients, which it leaves
      // to the JS path)
      if (k) expect(whole!.calls()).toBe(Object.keys(SHAPES).length);
      if (k) expect(whole!.mapped.every((m) => m)).toBe(true); // inputs mapped from their files
      const first = whole?.calls() ?? 0;
      const read = await runCase(name, c, true, { mmap: false });
      if (k) expect(whole!.mapped.slice(first).every((m) => !m)).toBe(true); // WEIGHTKIT_MMAP=0: read into memory
      const chunked = await runCase(name, c, true, { chunked: true, mmap: false });
      const ranges = await runCase(name, c, true, { chunked: true }); // mapped, the output in ranges of 16K elements
      if (k && (c.method ?? 'ties') === 'ties') expect(piece!.mock.calls.length).toBeGreaterThan(0); // tensors in row chunks: the piece kernels
      const calls = whole?.calls() ?? 0;
      const wasm = await runCase(name, c, false);
      expect(whole?.calls() ?? 0).toBe(calls); // WEIGHTKIT_NATIVE=0 turns it off
      expect(nat.equals(wasm)).toBe(true);
      expect(read.equals(wasm)).toBe(true);
      expect(chunked.equals(wasm)).toBe(true);
      expect(ranges.equals(wasm)).toBe(true);
      for (const flags of [1, 2, 4, 64, 128]) expect((await runCase(name, c, true, { flags })).equals(wasm)).toBe(true);
    });
  }

  it('a band that keeps every delta but the top ones (density + gamma >= 1) counts zero and NaN deltas as kept', async () => {
    const k = loadNativeKernels();
    if (!k) return;
    const whole = spyTensor(k);
    const name = 'breadcrumbs_ties, 3 models, densities 0.97 / 0.6 / 0.4, normalize';
    await runCase(`${name} kept`, CASES[name]!, true);
    // one call per tensor: model 0's band (mergekit's sizes: n_bot = N - floor(0.97 N) - n_top < 0 moves into n_top)
    // starts at the bottom, so it keeps every delta but its top n_top, the NaN and the zero ones included
    const sizes = whole.draws.map((d) => d.n);
    expect([...sizes].sort((a, b) => a - b)).toEqual(Object.values(SHAPES).map((s) => s.reduce((a, b) => a * b, 1)).sort((a, b) => a - b));
    whole.draws.forEach(({ n }, t) => {
      const nTop = Math.min(Math.floor(0.05 * n), n - Math.floor(0.97 * n));
      expect(whole.kept[t]![0]).toBe(n - nTop);
    });
  });

  it('a large tensor: thresholds from a sampled window (whole tensor) or windowed HIGH passes (row chunks), the same bytes', async () => {
    const k = loadNativeKernels();
    const whole = k ? spyTensor(k) : undefined;
    const c = { models: 3, weights: [1, 0.6, 0.3], density: (i: number) => [0.5, 0.2, 0.9][i]!, dir: 'big-ok' };
    const nat = await runCase('big window', c, true);
    if (k) expect(whole!.paths).toEqual([[1, 1, 1]]); // every threshold found inside its window
    const spy = k ? vi.spyOn(k, 'histWindows') : undefined;
    const missed = vi.spyOn(MagnitudeSelector.prototype, 'windowMissed');
    const wasm = await runCase('big window', c, false);
    expect(nat.equals(wasm)).toBe(true);
    for (const flags of [1, 2, 4, 64, 128]) expect((await runCase('big window', c, true, { flags })).equals(wasm)).toBe(true);
    // a budget too small for the whole output: thresholds first, then the output in ranges, mapped pages given back
    const calls = whole?.calls() ?? 0;
    expect((await runCase('big window', c, true, { budget: 16 << 20 })).equals(wasm)).toBe(true);
    if (k) expect(whole!.calls() - calls).toBeGreaterThan(3);
    expect(spy?.mock.calls.length ?? 0).toBe(0);
    expect(missed.mock.results.some((r) => r.value === true)).toBe(false);
  });

  it('a large tensor of continuous values (inexact differences listed inside the window): the same bytes', async () => {
    const k = loadNativeKernels();
    const whole = k ? spyTensor(k) : undefined;
    // densities whose thresholds fall among the exact values of their bucket (1) or among its inexact ones (3)
    const c = { models: 3, density: (i: number) => [0.5, 0.25, 0.7][i]!, dir: 'big-rough' };
    const nat = await runCase('big rough', c, true);
    if (k) {
      expect(whole!.paths).toEqual([[1, 3, 3]]);
      const n = BIG_SHAPE[0]! * BIG_SHAPE[1]!;
      expect(whole!.kept).toEqual([[0.5, 0.25, 0.7].map((d) => Math.floor(d * n))]); // exactly k each (no NaN here)
    }
    const wasm = await runCase('big rough', c, false);
    expect(nat.equals(wasm)).toBe(true);
    if (k) {
      // a window list of 16 overflows here: the thresholds are counted exactly instead
      expect((await runCase('big rough', c, true, { flags: 2 })).equals(wasm)).toBe(true);
      expect(whole!.paths.at(-1)).toEqual([2, 2, 2]);
    }
  });

  it('a large tensor with NaN, inf and -0 inputs (BF16 and F16): windowed thresholds, the same bytes as the WebAssembly kernels', async () => {
    const k = loadNativeKernels();
    for (const dtype of ['BF16', 'F16']) {
      const c = { models: 3, weights: [1, 0.6, 0.3], density: (i: number) => [0.5, 0.2, 0.9][i]!, dir: `big-nan-${dtype}` };
      const whole = k ? spyTensor(k) : undefined;
      const nat = await runCase(`big nan ${dtype}`, c, true);
      // every threshold from its window's counts (1 or 3), none counted exactly (2)
      if (k) expect(whole!.paths.every((p) => p.every((x) => x === 1 || x === 3))).toBe(true);
      expect(nat.equals(await runCase(`big nan ${dtype}`, c, false)), dtype).toBe(true);
      vi.restoreAllMocks();
    }
  });

  it('F16 inputs with F16 or BF16 output, BF16 inputs with F16 output (F16C, NaN, inf, -0): the same bytes as the WebAssembly kernels', async () => {
    const k = loadNativeKernels();
    const names = [
      'ties, 3 models, mixed weights',
      'dare_ties, 3 models, densities 0.3 / 0.5 / 1, rescaled',
      'task_arithmetic, 3 models, mixed weights',
      'linear, 2 models, a negative weight, no normalize',
      'breadcrumbs_ties, 3 models, gamma 0.1',
      'della, 3 models, epsilon 0.1',
      'slerp, t 0.3',
      'model_stock, 3 models',
    ];
    for (const name of names) {
      for (const dtype of ['float16', 'bfloat16']) {
        const c = { ...CASES[name]!, dir: 'f16' };
        const whole = k ? spyTensor(k) : undefined;
        const nat = await runCase(`f16 ${name}`, c, true, { dtype });
        if (k) expect(whole!.calls(), name).toBeGreaterThan(0);
        if (k) expect(whole!.mapped.every((m) => m)).toBe(true);
        expect(nat.equals(await runCase(`f16 ${name}`, c, false, { dtype })), `${name} -> ${dtype}`).toBe(true);
        vi.restoreAllMocks();
      }
      // BF16 inputs, F16 output
      const c = CASES[name]!;
      const nat = await runCase(`bf16-f16 ${name}`, c, true, { dtype: 'float16' });
      expect(nat.equals(await runCase(`bf16-f16 ${name}`, c, false, { dtype: 'float16' })), `${name}: BF16 -> F16`).toBe(true);
    }
  });

  it('F16 rounding of the kernel output equals convert.ts for every F16 input times several weights (subnormals, overflow, NaN)', () => {
    const k = loadNativeKernels();
    if (!k) return;
    const n = 65536;
    const x = Uint16Array.from({ length: n }, (_, i) => i); // every F16 bit pattern
    const xf = toF32('F16', x) as Float32Array;
    for (const w of [0.3, 1.7, 0.001, 3000, -0.77]) {
      // linear over one model: out = F16 of f32(x * w / 1)
      const a = new Float64Array(152);
      a.set([0, 1], 0);
      a[3] = 32;
      a[144] = 1;
      a[145] = 1;
      a[74] = n;
      a[75] = 2;
      a[79] = w;
      const out = new Uint16Array(n);
      k.tiesTensor(x, [], out, a);
      const ref = fromF32('F16', Float32Array.from(xf, (v) => (0 + v * w) / 1)) as Uint16Array;
      expect(Buffer.from(out.buffer).equals(Buffer.from(ref.buffer)), `weight ${w}`).toBe(true);
    }
  });

  it("DARE's L1 norms: the JS kernels' sixteen lanes and lane-order total, bit for bit (tails, BF16 and F16)", () => {
    const k = loadNativeKernels();
    if (!k) return;
    const rng = new SeededRandom(91);
    for (const [n, f16] of [[100_003, false], [37, false], [4099, true]] as const) {
      const fmt = f16 ? 'F16' : 'BF16';
      const bf = Float32Array.from({ length: n }, () => rng.normal() * 0.02);
      const b = fromF32(fmt, bf) as Uint16Array;
      const xs = [0, 1, 2].map((i) => fromF32(fmt, Float32Array.from(toF32(fmt, b) as Float32Array, (v) => v + rng.normal() * 0.001 * (i + 1))) as Uint16Array);
      const a = new Float64Array(152);
      a[0] = 3;
      a[3] = 16; // the first phase only: the norms
      a[144] = f16 ? 1 : 0;
      a[145] = f16 ? 1 : 0;
      a[74] = n;
      a[75] = 0;
      const keys = [0, 1, 2].map((i) => ({ k0: 0x9e3779b9 * (i + 1) >>> 0, k1: (0x85ebca6b ^ i) >>> 0, thr: Math.ceil([0.3, 0.5, 0.9][i]! * 4294967296) - 1 }));
      keys.forEach((key, i) => {
        a[8 + 8 * i] = 4;
        a[8 + 8 * i + 2] = 1;
        a[8 + 8 * i + 3] = 1;
        a.set([key.k0, key.k1, key.thr, 1], 80 + 8 * i);
      });
      k.tiesTensor(b, xs, new Uint16Array(0), a);
      const base = toF32(fmt, b) as Float32Array;
      xs.forEach((x, i) => {
        const before = l1Lanes();
        const d = new Float32Array(n);
        deltaL1Into(toF32(fmt, x) as Float32Array, base, d, n, 0, before);
        const after = l1Lanes();
        for (let j = 0; j < n; j++) if (randomU32(keys[i]!, j) <= keys[i]!.thr) after[j & 15] += Math.abs(d[j]!);
        expect(a[80 + 8 * i + 4], `${fmt} n=${n} model ${i}: before`).toBe(laneTotal(before));
        expect(a[80 + 8 * i + 5], `${fmt} n=${n} model ${i}: after`).toBe(laneTotal(after));
        expect(a[80 + 8 * i + 6]).toBe(laneTotal(before) / laneTotal(after));
      });
    }
  });

  it('DARE on large tensors without NaN (the L1 rescale at work): the same bytes, with the consensus and without', async () => {
    const cases: BigCase[] = [
      { method: 'dare_ties', models: 3, weights: [1, 0.6, 0.3], density: (i: number) => [0.5, 0.2, 0.9][i]!, dir: 'big-ok' },
      { method: 'dare_linear', models: 3, density: (i: number) => [0.3, 0.6, 1][i]!, dir: 'big-rough', params: 'normalize: true' },
    ];
    await compareBig(cases, [4, 64], (c, spy) => {
      // factors near 1 / density (the draws keep about that share of the L1 norm); not rescaled at density 1
      const f = spy.factors[0]!;
      for (const i of [0, 1]) if (c.density!(i) < 1) expect(f[i]! * c.density!(i)).toBeCloseTo(1, 1);
      if (c.method !== 'dare_ties') return;
      // the kept counts are the drawn elements, whatever their deltas (zero and NaN ones too)
      const { n, keys } = spy.draws[0]!;
      keys.forEach(([k0, k1, thr], i) => {
        let drawn = 0;
        for (let e = 0; e < n; e++) if (randomU32({ k0: k0!, k1: k1! }, e) <= thr!) drawn++;
        expect(spy.kept[0]![i]).toBe(drawn);
      });
    });
  });

  it('breadcrumbs on a large tensor (two windowed selections per model): the same bytes, with the consensus and without', async () => {
    const cases: BigCase[] = [
      { method: 'breadcrumbs_ties', models: 3, density: (i: number) => [0.5, 0.2, 0.9][i]!, dir: 'big-rough', params: 'gamma: 0.05' },
      { method: 'breadcrumbs', models: 3, dir: 'big-ok', params: 'gamma: 0.02' },
    ];
    // keep thresholds from their windows; each model keeps exactly its band: the top N - n_bot minus the top n_top,
    // floor(density * N) elements (no NaN here)
    await compareBig(cases, [1, 2, 64], (c, spy) => {
      expect(spy.paths[0]!.every((p) => p === 1 || p === 3)).toBe(true);
      const n = BIG_SHAPE[0]! * BIG_SHAPE[1]!;
      expect(spy.kept[0]).toEqual(spy.kept[0]!.map((_, i) => Math.floor((c.density?.(i) ?? 0.5) * n)));
    });
  });

  it('DELLA on large tensors without NaN (ranks per row, the L1 rescale): the same bytes, with the consensus and without', async () => {
    const cases: BigCase[] = [
      { method: 'della', models: 3, weights: [1, 0.6, 0.3], density: (i: number) => [0.5, 0.2, 0.8][i]!, dir: 'big-ok' },
      { method: 'della_linear', models: 3, dir: 'big-rough', params: 'epsilon: 0.05' },
    ];
    await compareBig(cases, [4, 64], (c, spy) => {
      // rescaled: DELLA keeps the larger magnitudes more often, so the factor lies between 1 and 1 / density
      const f = spy.factors[0]![0]!;
      expect(f).toBeGreaterThan(1.2);
      expect(f).toBeLessThan(1 / (c.density?.(0) ?? 0.5));
    });
  });

  it('slerp on large tensors (the Gram sums in element order, the coefficients in JS): the same bytes', async () => {
    const cases: BigCase[] = [
      { method: 'slerp', models: 1, dir: 'big-rough', params: 't: 0.4' },
      { method: 'slerp', models: 1, dir: 'big-ok', params: 't: 0.7' },
    ];
    await compareBig(cases, [4], (_c, spy) => expect(spy.calls()).toBe(2)); // the Gram sums, then the result
  });

  it('model_stock on large tensors (the deltas\' Gram sums in element order, t in JS): the same bytes', async () => {
    const cases: BigCase[] = [
      { method: 'model_stock', models: 3, dir: 'big-rough' },
      { method: 'model_stock', models: 2, dir: 'big-ok' },
    ];
    await compareBig(cases, [4], (_c, spy) => expect(spy.calls()).toBe(2));
  });

  it('a sample far off the tensor: the window misses, the threshold is counted exactly, the same bytes', async () => {
    const k = loadNativeKernels();
    const whole = k ? spyTensor(k) : undefined;
    const c = { models: 3, dir: 'big-miss' };
    const nat = await runCase('big miss', c, true);
    if (k) expect(whole!.paths).toEqual([[2, 2, 2]]);
    expect(nat.equals(await runCase('big miss', c, false))).toBe(true);
  });

  it('sharded inputs are mapped from their shards: the same bytes as single-file inputs', async () => {
    const k = loadNativeKernels();
    // a sharded copy of model a (linear with one model is the identity), shards of ~40 kB
    const copyRecipe = join(root, 'copy-a.yaml');
    await writeFile(copyRecipe, 'merge_method: linear\nmodels:\n  - {model: a, parameters: {weight: 1}}\ndtype: bfloat16\n');
    await merge(copyRecipe, { out: join(root, 'a-sharded'), shardSize: 40_000 });
    expect(existsSync(join(root, 'a-sharded', 'model.safetensors.index.json'))).toBe(true);
    const whole = k ? spyTensor(k) : undefined;
    const c = CASES['ties, 3 models, mixed weights']!;
    await runCase('sharded-ref', c, true);
    const recipe = join(root, 'sharded.yaml');
    const lines = ['merge_method: ties', 'base_model: base', 'models:'];
    ['a-sharded', 'b', 'c'].forEach((m, i) => lines.push(`  - {model: ${m}, parameters: {weight: ${c.weights![i]}, density: 0.5}}`));
    await writeFile(recipe, [...lines, 'dtype: bfloat16', ''].join('\n'));
    await merge(recipe, { out: join(root, 'out-sharded') });
    // the tensors' bytes (the files' metadata differ: the recipe hash)
    const a = await openCheckpointPath(join(root, 'out-sharded-ref-native-1-w0m'));
    const b = await openCheckpointPath(join(root, 'out-sharded'));
    for (const t of a.tensors()) expect(Buffer.from(await b.readBytes(t.name)).equals(Buffer.from(await a.readBytes(t.name))), t.name).toBe(true);
    await a.close();
    await b.close();
    if (k) expect(whole!.mapped.every((m) => m)).toBe(true);
  });

  it('mapped inputs: a range past the end of its file is refused, a SIGBUS while reading one becomes an error', async () => {
    const k = loadNativeKernels();
    if (!k) return;
    const file = join(root, 'short.bin');
    await writeFile(file, Buffer.alloc(8192, 1));
    const fh = await open(file, 'r');
    try {
      const n = 1 << 16; // 128 KiB: past the 8 KiB file
      const args = new Float64Array(152);
      args.set([1, 1, 1, 0]);
      args.set([0, 0, 1, 1], 8);
      args[74] = n;
      const range = { fd: fh.fd, position: 0 };
      expect(() => k.tiesTensor(range, [range], new Uint16Array(n), args)).toThrow(expect.objectContaining({ code: 'WK_NATIVE_IO', message: expect.stringMatching(/past the end/) }));
      args[3] = 8; // no size check: the first page past the end faults
      expect(() => k.tiesTensor(range, [range], new Uint16Array(n), args)).toThrow(expect.objectContaining({ code: 'WK_NATIVE_IO', message: expect.stringMatching(/SIGBUS/) }));
      // a descriptor that cannot be mapped (a folder): the mapping's error, named
      const dirFd = openSync(root, 'r');
      try {
        args[3] = 0;
        args[74] = 16;
        const folder = { fd: dirFd, position: 0 };
        expect(() => k.tiesTensor(folder, [folder], new Uint16Array(16), args)).toThrow(
          expect.objectContaining({ code: 'WK_NATIVE_IO', message: expect.stringMatching(/mapping an input failed \(.+\)/) }),
        );
      } finally {
        closeSync(dirFd);
      }
      // the process and the kernels carry on
      args[3] = 0;
      args[74] = 4096;
      const out = new Uint16Array(4096);
      k.tiesTensor(range, [range], out, args);
      expect(out.every((v) => v === 0x0101)).toBe(true); // base + (x - base) with x = base
    } finally {
      await fh.close();
    }
  });

  it('an input truncated while its tensor is merged: IO_ERROR names that file, its size and the tensor', async () => {
    const k = loadNativeKernels();
    if (!k) return;
    // a copy of the family (this test cuts a file short)
    const dir = join(root, 'cut');
    for (const [i, m] of MODELS.slice(0, 4).entries()) await writeModel(join(dir, m), values(i), { dtype: 'BF16', shapes: SHAPES, config: false, tokenizer: false });
    const victim = join(dir, MODELS[2]!, 'model.safetensors');
    const orig = k.tiesTensor.bind(k);
    vi.spyOn(k, 'tiesTensor').mockImplementation((b, ms, o, a, masks) => {
      truncateSync(victim, 64); // under the merge, before the inputs are mapped
      orig(b, ms, o, a, masks);
    });
    const recipe = join(dir, 'ties.yaml');
    await writeFile(recipe, `merge_method: ties\nbase_model: ${MODELS[0]}\nmodels:\n${MODELS.slice(1, 4).map((m) => `  - {model: ${m}, parameters: {weight: 1, density: 0.5}}`).join('\n')}\ndtype: bfloat16\n`);
    let caught: unknown;
    try {
      await merge(recipe, { out: join(dir, 'out'), threads: 1 });
    } catch (e) {
      caught = e;
    }
    expect(caught).toMatchObject({ code: 'IO_ERROR', where: { file: victim } });
    expect((caught as Error).message).toMatch(/is now 64 bytes, shorter than the tensor's end at byte \d+ \(truncated while merging\?\)/);
  });

  it("kept inputs: a tensor's calls map its files once (flag 256 keeps, 512 gives back), a SIGBUS gives them back too", async () => {
    const k = loadNativeKernels();
    if (!k) return;
    const file = join(root, 'kept.bin');
    const n = 1 << 16;
    await writeFile(file, Buffer.alloc(2 * n, 1));
    const fh = await open(file, 'r');
    const args = new Float64Array(152);
    args.set([1, 1, 1, 0]);
    args.set([0, 0, 1, 1], 8);
    args[74] = n;
    const KEEP = 256;
    const GIVE_BACK = 512;
    const out = new Uint16Array(1024);
    const range = { fd: fh.fd, position: 0 };
    args[3] = 32 | KEEP;
    k.tiesTensor(range, [range], out, args);
    const job = args[146]!;
    expect(job).toBeGreaterThan(0);
    // the descriptor closed: a call that mapped again would fail, one that reads the kept mapping does not
    await fh.close();
    args[72] = n - 1024;
    out.fill(0);
    k.tiesTensor(range, [range], out, args);
    expect(args[146]).toBe(job);
    expect(out.every((v) => v === 0x0101)).toBe(true);
    args[3] = 32 | GIVE_BACK;
    k.tiesTensor(range, [range], out, args);
    expect(args[146]).toBe(0);
    // a handle given back names nothing any more
    args[146] = job;
    expect(() => k.tiesTensor(range, [range], out, args)).toThrow(expect.objectContaining({ code: 'WK_NATIVE', message: expect.stringMatching(/no kept inputs/) }));
    // every slot taken: the next call maps for itself (and still works); then all given back
    const fh2 = await open(file, 'r');
    try {
      const r2 = { fd: fh2.fd, position: 0 };
      const blocks = Array.from({ length: 9 }, () => {
        const a = new Float64Array(args);
        a[146] = 0;
        a[3] = 32 | KEEP;
        a[72] = 0;
        k.tiesTensor(r2, [r2], out, a);
        return a;
      });
      expect(blocks.slice(0, 8).every((a) => a[146]! > 0)).toBe(true);
      expect(new Set(blocks.slice(0, 8).map((a) => a[146])).size).toBe(8);
      expect(blocks[8]![146]).toBe(0);
      for (const a of blocks.slice(0, 8)) {
        a[3] = 32 | GIVE_BACK;
        k.tiesTensor(r2, [r2], out, a);
        expect(a[146]).toBe(0);
      }
      // a kept file cut short under the mapping: the SIGBUS becomes an error and the mapping is given back
      const a = new Float64Array(args);
      a[146] = 0;
      a[3] = 32 | KEEP | 8;
      a[72] = 0;
      k.tiesTensor(r2, [r2], out, a);
      expect(a[146]).toBeGreaterThan(0);
      await truncate(file, 4096);
      a[72] = n - 1024;
      expect(() => k.tiesTensor(r2, [r2], out, a)).toThrow(expect.objectContaining({ code: 'WK_NATIVE_IO', message: expect.stringMatching(/SIGBUS/) }));
      expect(a[146]).toBe(0);
    } finally {
      await fh2.close();
    }
  });

  it('eight models (the most the native kernel takes), F16 inputs, the output in ranges: the same bytes as the WebAssembly kernels', async () => {
    // the formats sit apart from the models' fields (the eighth model's threshold and tie budget once overwrote them
    // between the calls of a tensor emitted in ranges)
    const c = { models: 8, density: (i: number) => [0.5, 0.2, 0.9, 0.4, 0.6, 0.3, 0.7, 0.45][i]!, dir: 'f16-8' };
    const k = loadNativeKernels();
    const whole = k ? spyTensor(k) : undefined;
    for (const dtype of ['float16', 'bfloat16']) {
      const before = whole?.calls() ?? 0;
      const nat = await runCase(`eight f16 ${dtype}`, c, true, { budget: 1 << 17, dtype });
      if (k) expect(whole!.calls() - before).toBe(6); // the first tensor's thresholds, then its three ranges; two whole tensors
      expect(nat.equals(await runCase(`eight f16 ${dtype}`, c, false, { budget: 1 << 17, dtype })), dtype).toBe(true);
    }
  });

  it('a merge whose mapped input cannot be read fails with IO_ERROR naming the file and the tensor, leaving no output', async () => {
    if (!loadNativeKernels()) return;
    const reader = await openCheckpointPath(join(root, 'base'));
    const proto = Object.getPrototypeOf(reader) as { locate(name: string): TensorLocation };
    await reader.close();
    const real = proto.locate;
    vi.spyOn(proto, 'locate').mockImplementation(function (this: unknown, name: string) {
      const l = real.call(this, name);
      return { ...l, position: l.position + (1 << 30) }; // far past the end of the file
    });
    const c = CASES['ties, 1 model']!;
    const err = await runCase('mapped io', c, true).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'IO_ERROR', where: { tensor: expect.any(String), file: expect.stringMatching(/model\.safetensors$/) } });
    expect(existsSync(join(root, 'out-mapped-io-native-1-w0m'))).toBe(false);
  });

  it('an addon that is missing, does not load, or is stale (another layout version, a kernel missing) is not used', async () => {
    const dir = await tempDir('weightkit-native-stale-');
    const fake = async (name: string, body: string): Promise<string> => {
      const f = join(dir, name);
      await writeFile(f, body);
      return f;
    };
    const fns = NATIVE_FUNCTIONS.map((name) => `${name}() { return 0; }`).join(', ');
    expect(nativeKernelsFrom(await fake('ok.cjs', `module.exports = { abi: ${NATIVE_ABI}, ${fns} };`))).toBeDefined();
    expect(nativeKernelsFrom(await fake('old.cjs', `module.exports = { abi: ${NATIVE_ABI - 1}, ${fns} };`))).toBeUndefined();
    expect(nativeKernelsFrom(await fake('part.cjs', `module.exports = { abi: ${NATIVE_ABI}, tiesPiece() {} };`))).toBeUndefined();
    const noPolar = NATIVE_FUNCTIONS.filter((name) => name !== 'densePolar').map((name) => `${name}() { return 0; }`).join(', ');
    expect(nativeKernelsFrom(await fake('nopolar.cjs', `module.exports = { abi: ${NATIVE_ABI}, ${noPolar} };`))).toBeUndefined();
    expect(nativeKernelsFrom(await fake('throws.cjs', "throw new Error('wrong ELF class');"))).toBeUndefined();
    expect(nativeKernelsFrom(join(dir, 'missing.node'))).toBeUndefined();
  });

  it('advise huge pages for the 2 MiB-aligned interior of a workspace memory', () => {
    const k = loadNativeKernels();
    if (!k) return;
    const ws = Workspace.create(64 << 20)!;
    const advised = k.adviseHuge(ws.buffer);
    expect(advised).toBeGreaterThanOrEqual(ws.byteLength - (4 << 20));
    expect(advised % (2 << 20)).toBe(0);
    expect(k.adviseHuge(new ArrayBuffer(1000))).toBe(0); // nothing 2 MiB-aligned inside
  });

  it('merge --dry-run says which kernels run', async () => {
    const recipe = join(root, 'dry.yaml');
    await writeFile(recipe, 'merge_method: ties\nbase_model: base\nmodels:\n  - {model: a, parameters: {weight: 1, density: 0.5}}\n');
    const on = await runCli('merge', recipe, '--out', join(root, 'dry-out'), '--dry-run');
    expect(on.stderr + on.code).toBe('0');
    expect(on.stdout).toMatch(loadNativeKernels() ? /kernels\s+native AVX-512 \(masks.*inputs mapped from their files/ : /kernels\s+WebAssembly SIMD \(no usable native kernels/);
    const ta = join(root, 'dry-ta.yaml');
    await writeFile(ta, 'merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - {model: a, parameters: {weight: 1}}\n');
    expect((await runCli('merge', ta, '--out', join(root, 'dry-out'), '--dry-run')).stdout).toMatch(
      loadNativeKernels() ? /kernels\s+native AVX-512 \(the weighted sum\) for every merged tensor/ : /kernels\s+WebAssembly SIMD/,
    );
    const slerp = join(root, 'dry-slerp.yaml');
    await writeFile(slerp, 'merge_method: slerp\nbase_model: base\nmodels:\n  - {model: base}\n  - {model: a}\nparameters: {t: 0.5}\n');
    expect((await runCli('merge', slerp, '--out', join(root, 'dry-out'), '--dry-run')).stdout).toMatch(
      loadNativeKernels() ? /kernels\s+native AVX-512 \(the Gram sums/ : /kernels\s+WebAssembly SIMD/,
    );
    const stock = join(root, 'dry-stock.yaml');
    await writeFile(stock, 'merge_method: model_stock\nbase_model: base\nmodels:\n  - {model: a}\n  - {model: b}\n');
    expect((await runCli('merge', stock, '--out', join(root, 'dry-out'), '--dry-run')).stdout).toMatch(
      loadNativeKernels() ? /kernels\s+native AVX-512 \(the deltas' Gram sums/ : /kernels\s+WebAssembly SIMD/,
    );
    // the kernels follow the tensors' dtypes: an F32 output takes the WebAssembly kernels
    const f32 = join(root, 'dry-ties-f32.yaml');
    await writeFile(f32, 'merge_method: ties\nbase_model: base\nmodels:\n  - {model: a, parameters: {weight: 1, density: 0.5}}\ndtype: float32\n');
    expect((await runCli('merge', f32, '--out', join(root, 'dry-out'), '--dry-run')).stdout).toMatch(
      loadNativeKernels() ? /kernels\s+WebAssembly SIMD \(the native kernels take BF16\/F16 inputs and outputs; none of the \d+ merged tensors is\)/ : /kernels\s+WebAssembly SIMD/,
    );
    const tsv = join(root, 'dry-tsv.yaml');
    await writeFile(tsv, 'merge_method: tsv\nbase_model: base\nmodels:\n  - {model: a}\n  - {model: b}\n');
    expect((await runCli('merge', tsv, '--out', join(root, 'dry-out'), '--dry-run')).stdout).toMatch(/kernels\s+ONNX Runtime matrix products/);
    const karcher = join(root, 'dry-karcher.yaml');
    await writeFile(karcher, 'merge_method: karcher\nmodels:\n  - {model: a}\n  - {model: b}\n');
    expect((await runCli('merge', karcher, '--out', join(root, 'dry-out'), '--dry-run')).stdout).toMatch(/kernels\s+WebAssembly SIMD/);
    process.env['WEIGHTKIT_NATIVE'] = '0';
    const off = await runCli('merge', recipe, '--out', join(root, 'dry-out'), '--dry-run');
    expect(off.stdout).toMatch(/kernels\s+WebAssembly SIMD \(native kernels disabled by WEIGHTKIT_NATIVE=0\)/);
  });

  it('two threads (pool workers load the kernels themselves): the same bytes', async () => {
    const c = CASES['ties, 3 models, mixed weights']!;
    const one = await runCase('pool', c, false);
    expect((await runCase('pool', c, true, { threads: 2 })).equals(one)).toBe(true);
  });
});
