// DaWin (Oh et al., ICLR 2025), two-model version: per-sample entropies of the two endpoint models give a
// per-sample interpolation coefficient (with the paper's offset adjustment); a seeded K-component Beta mixture fitted
// by EM clusters the coefficients so only K interpolated models are built, each sample is classified by its
// component's model; compared with the best static coefficient chosen on validation data. Merged models are virtual
// readers patched into ORT sessions (nothing written by us). No src/cli.

import { UsageError } from '../errors.js';
import { openCheckpointPath } from '../io/open.js';
import type { CheckpointReader, ReadBytesOptions, ReadF32Options, ReadRange } from '../io/types.js';
import { fromF32 } from '../tensor/convert.js';
import { isFloatDType } from '../tensor/dtype.js';
import { SeededRandom } from '../tensor/rng.js';
import type { Tensor } from '../tensor/tensor.js';
import { roundAlpha } from '../vectors/grid.js';
import { openDataset, type Dataset } from './dataset.js';
import { runLogits, type ScoreOptions } from './eval-config.js';

// ---------------------------------------------------------------------------------------------------------------
// coefficients

/** Entropy of softmax(z / T) for each row of logits [rows, classes] (nats). */
export function temperedEntropies(logits: ArrayLike<number>, classes: number, temperature = 1): Float64Array {
  const rows = logits.length / classes;
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let c = 0; c < classes; c++) max = Math.max(max, logits[r * classes + c]! / temperature);
    let z = 0;
    let s = 0;
    for (let c = 0; c < classes; c++) {
      const u = logits[r * classes + c]! / temperature - max;
      const e = Math.exp(u);
      z += e;
      s += e * u;
    }
    // H = log Z - E[u]
    out[r] = Math.log(z) - s / z;
  }
  return out;
}

function meanStd(xs: Float64Array): { mean: number; std: number } {
  let m = 0;
  for (const x of xs) m += x;
  m /= xs.length;
  let v = 0;
  for (const x of xs) v += (x - m) ** 2;
  return { mean: m, std: Math.sqrt(v / xs.length) };
}

export interface DawinCoefficients {
  /** per-sample coefficient of the `to` model: theta(x) = (1 - lambda) from + lambda to */
  readonly lambda: Float64Array;
  /** offset adjustment b and w (undefined without it) */
  readonly offset?: { readonly b: number; readonly w: number };
}

/**
 * DaWin coefficients from the endpoints' entropies (section 10a): e = exp(-H); without adjustment
 * lambda = e_to / (e_from + e_to); with it, b = (cv(H_from) + cv(H_to)) / 2 (coefficients of variation over the set,
 * population std), w = (mean H_from + mean H_to) / mean H_from, lambda = (e_to + b / w) / (e_from + e_to + b).
 */
export function dawinCoefficients(hFrom: Float64Array, hTo: Float64Array, options: { offsetAdjustment?: boolean } = {}): DawinCoefficients {
  if (hFrom.length !== hTo.length) throw new UsageError('USAGE', `entropy arrays differ in length (${hFrom.length} and ${hTo.length})`);
  const n = hFrom.length;
  const lambda = new Float64Array(n);
  if (options.offsetAdjustment === false) {
    for (let i = 0; i < n; i++) {
      const ef = Math.exp(-hFrom[i]!);
      const et = Math.exp(-hTo[i]!);
      lambda[i] = et / (ef + et);
    }
    return { lambda };
  }
  const f = meanStd(hFrom);
  const t = meanStd(hTo);
  const cv = (s: { mean: number; std: number }): number => (s.mean > 0 ? s.std / s.mean : 0);
  const b = 0.5 * (cv(f) + cv(t));
  const w = f.mean > 0 ? (f.mean + t.mean) / f.mean : 1;
  for (let i = 0; i < n; i++) {
    const ef = Math.exp(-hFrom[i]!);
    const et = Math.exp(-hTo[i]!);
    lambda[i] = (et + b / w) / (ef + et + b);
  }
  return { lambda, offset: { b, w } };
}

// ---------------------------------------------------------------------------------------------------------------
// Beta mixture

/** log Gamma (Lanczos, g = 7, n = 9; ~15 digits for x > 0). */
export function logGamma(x: number): number {
  const g = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  x -= 1;
  let a = g[0]!;
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += g[i]! / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

export function logBetaPdf(x: number, a: number, b: number): number {
  return (a - 1) * Math.log(x) + (b - 1) * Math.log(1 - x) - (logGamma(a) + logGamma(b) - logGamma(a + b));
}

export interface BetaComponent {
  /** mixing weight pi */
  readonly weight: number;
  readonly a: number;
  readonly b: number;
  /** a / (a + b) */
  readonly mean: number;
}

export interface BetaMixture {
  /** sorted by mean, ascending */
  readonly components: readonly BetaComponent[];
  /** mean log-likelihood per sample at the end */
  readonly logLikelihood: number;
  readonly iterations: number;
  /** most probable component of each input value */
  readonly assignments: Int32Array;
}

export interface BetaMixtureOptions {
  k?: number;
  seed?: number;
  /** k-means initialisations; the one with the lowest inertia starts EM (default 3) */
  restarts?: number;
  maxIterations?: number;
  /** stop when the mean log-likelihood changes by less (default 1e-4) */
  tolerance?: number;
}

const X_EPS = 1e-4;

function kmeans1d(xs: Float64Array, k: number, rng: SeededRandom): { centers: number[]; inertia: number; labels: Int32Array } {
  const n = xs.length;
  // k-means++ seeding
  const centers = [xs[rng.int(n)]!];
  const d2 = new Float64Array(n);
  while (centers.length < k) {
    let tot = 0;
    for (let i = 0; i < n; i++) {
      let m = Infinity;
      for (const c of centers) m = Math.min(m, (xs[i]! - c) ** 2);
      d2[i] = m;
      tot += m;
    }
    if (tot <= 0) {
      centers.push(xs[rng.int(n)]!);
      continue;
    }
    let r = rng.next() * tot;
    let pick = n - 1;
    for (let i = 0; i < n; i++) {
      r -= d2[i]!;
      if (r <= 0) {
        pick = i;
        break;
      }
    }
    centers.push(xs[pick]!);
  }
  const labels = new Int32Array(n);
  let inertia = 0;
  for (let it = 0; it < 100; it++) {
    inertia = 0;
    let moved = false;
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let j = 1; j < k; j++) if ((xs[i]! - centers[j]!) ** 2 < (xs[i]! - centers[best]!) ** 2) best = j;
      if (labels[i] !== best) moved = true;
      labels[i] = best;
      inertia += (xs[i]! - centers[best]!) ** 2;
    }
    const sum = new Float64Array(k);
    const cnt = new Float64Array(k);
    for (let i = 0; i < n; i++) {
      sum[labels[i]!] += xs[i]!;
      cnt[labels[i]!]++;
    }
    for (let j = 0; j < k; j++) if (cnt[j]! > 0) centers[j] = sum[j]! / cnt[j]!;
    if (!moved && it > 0) break;
  }
  return { centers, inertia, labels };
}

/** Moment matching with the variance capped at mu(1 - mu)/4 (DaWin's mixturemodel.py) and floored for stability. */
function momentMatch(mu: number, v: number): { a: number; b: number } {
  const m = Math.min(1 - X_EPS, Math.max(X_EPS, mu));
  const cap = (m * (1 - m)) / 4;
  const vv = Math.min(cap, Math.max(v, 1e-8));
  const common = (m * (1 - m)) / vv - 1;
  return { a: m * common, b: (1 - m) * common };
}

/**
 * Fit a K-component Beta mixture by EM: values clipped to [1e-4, 1 - 1e-4]; k-means++/Lloyd initialisation (best
 * inertia of `restarts` seeded runs) gives hard responsibilities; E-step posterior responsibilities, M-step weighted
 * moment matching (a, b from the weighted mean and variance, variance capped at mu(1-mu)/4); stops when the mean
 * log-likelihood changes by less than `tolerance` or after `maxIterations`.
 */
export function fitBetaMixture(values: ArrayLike<number>, options: BetaMixtureOptions = {}): BetaMixture {
  const k = options.k ?? 3;
  const n = values.length;
  if (!Number.isSafeInteger(k) || k < 1) throw new UsageError('USAGE', `k must be a positive integer, got ${k}`);
  if (n < k) throw new UsageError('USAGE', `a ${k}-component mixture needs at least ${k} values, got ${n}`);
  const xs = Float64Array.from(values, (v) => Math.min(1 - X_EPS, Math.max(X_EPS, v)));
  const rng = new SeededRandom(options.seed ?? 0);
  let init: ReturnType<typeof kmeans1d> | undefined;
  for (let r = 0; r < (options.restarts ?? 3); r++) {
    const km = kmeans1d(xs, k, rng);
    if (init === undefined || km.inertia < init.inertia) init = km;
  }
  const resp = new Float64Array(n * k);
  for (let i = 0; i < n; i++) resp[i * k + init!.labels[i]!] = 1;
  let comps: { weight: number; a: number; b: number }[] = [];
  const mStep = (): void => {
    comps = [];
    for (let j = 0; j < k; j++) {
      let w = 0;
      let s = 0;
      for (let i = 0; i < n; i++) {
        w += resp[i * k + j]!;
        s += resp[i * k + j]! * xs[i]!;
      }
      if (w < 1e-12) {
        comps.push({ weight: 1e-12, a: 1, b: 1 });
        continue;
      }
      const mu = s / w;
      let v = 0;
      for (let i = 0; i < n; i++) v += resp[i * k + j]! * (xs[i]! - mu) ** 2;
      comps.push({ weight: w / n, ...momentMatch(mu, v / w) });
    }
  };
  const eStep = (): number => {
    let ll = 0;
    const lp = new Float64Array(k);
    for (let i = 0; i < n; i++) {
      let max = -Infinity;
      for (let j = 0; j < k; j++) {
        lp[j] = Math.log(comps[j]!.weight) + logBetaPdf(xs[i]!, comps[j]!.a, comps[j]!.b);
        max = Math.max(max, lp[j]!);
      }
      let z = 0;
      for (let j = 0; j < k; j++) z += Math.exp(lp[j]! - max);
      for (let j = 0; j < k; j++) resp[i * k + j] = Math.exp(lp[j]! - max) / z;
      ll += max + Math.log(z);
    }
    return ll / n;
  };
  mStep();
  let ll = eStep();
  let iterations = 0;
  const maxIt = options.maxIterations ?? 1000;
  const tol = options.tolerance ?? 1e-4;
  while (iterations < maxIt) {
    iterations++;
    mStep();
    const next = eStep();
    const delta = Math.abs(next - ll);
    ll = next;
    if (delta < tol) break;
  }
  const order = comps.map((_, j) => j).sort((p, q) => comps[p]!.a / (comps[p]!.a + comps[p]!.b) - comps[q]!.a / (comps[q]!.a + comps[q]!.b) || p - q);
  const rank = new Int32Array(k);
  order.forEach((j, r) => (rank[j] = r));
  const assignments = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (resp[i * k + j]! > resp[i * k + best]!) best = j;
    assignments[i] = rank[best]!;
  }
  return {
    components: order.map((j) => ({ weight: comps[j]!.weight, a: comps[j]!.a, b: comps[j]!.b, mean: comps[j]!.a / (comps[j]!.a + comps[j]!.b) })),
    logLikelihood: ll,
    iterations,
    assignments,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// virtual interpolation and the evaluation

/**
 * A virtual checkpoint (1 - alpha) from + alpha to for float tensors (f64 per element, encoded in `from`'s dtype);
 * non-float tensors, metadata and names are `from`'s. close() does not close the endpoints.
 */
export function lerpReader(from: CheckpointReader, to: CheckpointReader, alpha: number): CheckpointReader {
  const f32 = async (name: string, range: ReadRange): Promise<Float32Array> => {
    const a = await from.readF32(name, range);
    if (alpha === 0) return a;
    const b = await to.readF32(name, range);
    if (b.length !== a.length) throw new UsageError('TENSOR_SHAPE_MISMATCH', `tensor '${name}' differs in size between ${from.path} and ${to.path}`, { where: { file: to.path, tensor: name } });
    const out = new Float32Array(a.length);
    for (let i = 0; i < a.length; i++) out[i] = (1 - alpha) * a[i]! + alpha * b[i]!;
    return out;
  };
  const isLerped = (name: string): boolean => isFloatDType(from.info(name).dtype) && to.has(name);
  return {
    format: from.format,
    path: `${from.path} (lerp ${alpha} to ${to.path})`,
    tensors: () => from.tensors(),
    has: (n) => from.has(n),
    info: (n) => from.info(n),
    metadata: () => from.metadata(),
    shards: () => from.shards(),
    async read(name: string, range: ReadRange = {}): Promise<Tensor> {
      if (!isLerped(name)) return from.read(name, range);
      const t = await from.read(name, range);
      return { dtype: t.dtype, shape: t.shape, data: fromF32(t.dtype, await f32(name, range)) };
    },
    async readBytes(name: string, options: ReadBytesOptions = {}): Promise<Uint8Array> {
      if (!isLerped(name)) return from.readBytes(name, options);
      const d = fromF32(from.info(name).dtype, await f32(name, options));
      const bytes = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
      if (options.into === undefined) return bytes;
      const dst = options.into.subarray(0, bytes.byteLength);
      dst.set(bytes);
      return dst;
    },
    async readF32(name: string, options: ReadF32Options = {}): Promise<Float32Array> {
      if (!isLerped(name)) return from.readF32(name, options);
      const v = await f32(name, options);
      if (options.into === undefined) return v;
      const dst = options.into.subarray(0, v.length);
      dst.set(v);
      return dst;
    },
    close: async () => undefined,
    [Symbol.asyncDispose]: async () => undefined,
  };
}

export interface DawinOptions extends ScoreOptions {
  /** The ONNX graph; its initializers are replaced by the endpoints' (or interpolated) weights. */
  model: string;
  /** Endpoint at coefficient 0 (theta_zs: the zero-shot / base / old model). */
  from: string | CheckpointReader;
  /** Endpoint at coefficient 1 (theta_ft: the fine-tuned / new model). */
  to: string | CheckpointReader;
  /** Test data (unlabelled use for the coefficients; labels only for accuracy). */
  data: string | Dataset;
  /** Beta-mixture components (default 3). */
  k?: number;
  /** Data on which the static coefficient is chosen (default: `data` itself; the result says which). */
  validation?: string | Dataset;
  /** Static coefficients tried (default 0, 0.1, ..., 1). */
  alphas?: readonly number[];
  /** Entropy temperatures T_from, T_to (default 1, 1). */
  temperatures?: { from?: number; to?: number };
  /** Offset adjustment (default true, as in the paper's main script). */
  offsetAdjustment?: boolean;
  /** Seed of the mixture's k-means initialisation (default 0). */
  seed?: number;
  input?: string;
  label?: string;
  batch?: number;
}

export interface DawinComponentResult {
  readonly component: number;
  readonly weight: number;
  readonly a: number;
  readonly b: number;
  /** the component mean a / (a + b): this component's interpolation coefficient */
  readonly alpha: number;
  readonly count: number;
  readonly correct: number;
  readonly accuracy: number;
}

export interface DawinResult {
  /** DaWin accuracy: each sample classified by its component's interpolated model */
  readonly accuracy: number;
  readonly count: number;
  readonly k: number;
  readonly endpoints: { readonly from: number; readonly to: number };
  readonly perComponent: readonly DawinComponentResult[];
  readonly staticBest: { readonly alpha: number; readonly accuracy: number; readonly validationAccuracy: number; readonly selectedOn: 'validation' | 'test' };
  readonly staticCurve: readonly { readonly alpha: number; readonly validationAccuracy: number }[];
  readonly offset: { readonly b: number; readonly w: number } | undefined;
  readonly mixture: { readonly logLikelihood: number; readonly iterations: number };
  /** per-sample coefficient and component */
  readonly coefficients: Float64Array;
  readonly assignments: Int32Array;
}

function isDataset(d: unknown): d is Dataset {
  return typeof d === 'object' && d !== null && typeof (d as Dataset).readInputs === 'function';
}

function argmax(logits: Float32Array, o: number, c: number): number {
  let b = 0;
  for (let j = 1; j < c; j++) if (logits[o + j]! > logits[o + b]!) b = j;
  return b;
}

/** Run DaWin on `data` and the best static interpolation for comparison. */
export async function dawin(options: DawinOptions): Promise<DawinResult> {
  const k = options.k ?? 3;
  if (!Number.isSafeInteger(k) || k < 1) throw new UsageError('USAGE', `k must be a positive integer, got ${k}`);
  const alphas = (options.alphas ?? Array.from({ length: 11 }, (_, i) => roundAlpha(i / 10))).slice();
  if (alphas.length === 0 || alphas.some((a) => !Number.isFinite(a))) throw new UsageError('USAGE', 'alphas must be a non-empty list of finite numbers');
  const tFrom = options.temperatures?.from ?? 1;
  const tTo = options.temperatures?.to ?? 1;
  if (!(tFrom > 0 && tTo > 0)) throw new UsageError('USAGE', `temperatures must be positive, got ${tFrom} and ${tTo}`);
  const dsOpts = { ...(options.input !== undefined ? { input: options.input } : {}), ...(options.label !== undefined ? { label: options.label } : {}) };
  const toClose: Array<{ close(): Promise<void> }> = [];
  try {
    const ds = isDataset(options.data) ? options.data : await openDataset(options.data, dsOpts);
    if (!isDataset(options.data)) toClose.push(ds);
    let val: Dataset | undefined;
    if (options.validation !== undefined) {
      val = isDataset(options.validation) ? options.validation : await openDataset(options.validation, dsOpts);
      if (!isDataset(options.validation)) toClose.push(val);
    }
    const from = typeof options.from === 'string' ? await openCheckpointPath(options.from) : options.from;
    if (typeof options.from === 'string') toClose.push(from);
    const to = typeof options.to === 'string' ? await openCheckpointPath(options.to) : options.to;
    if (typeof options.to === 'string') toClose.push(to);
    const run = { ...(options.threads !== undefined ? { threads: options.threads } : {}), ...(options.tmpDir !== undefined ? { tmpDir: options.tmpDir } : {}), ...(options.signal !== undefined ? { signal: options.signal } : {}), ...(options.batch !== undefined ? { batch: options.batch } : {}) };
    const n = ds.count;
    // pass 1: the endpoints' entropies (and accuracies)
    const endpoint = async (w: CheckpointReader, t: number): Promise<{ h: Float64Array; acc: number }> => {
      const h = new Float64Array(n);
      let correct = 0;
      await runLogits(options.model, w, ds, (start, rows, logits, labels) => {
        const c = logits.length / rows;
        h.set(temperedEntropies(logits, c, t), start);
        for (let i = 0; i < rows; i++) if (argmax(logits, i * c, c) === labels[i]) correct++;
      }, run);
      return { h, acc: correct / n };
    };
    const ef = await endpoint(from, tFrom);
    const et = await endpoint(to, tTo);
    const coef = dawinCoefficients(ef.h, et.h, { offsetAdjustment: options.offsetAdjustment !== false });
    const kk = Math.min(k, n);
    const mix = fitBetaMixture(coef.lambda, { k: kk, seed: options.seed ?? 0 });
    // pass 2: one interpolated model per component present
    const perComponent: DawinComponentResult[] = [];
    let correctAll = 0;
    for (const [j, comp] of mix.components.entries()) {
      let count = 0;
      for (let i = 0; i < n; i++) if (mix.assignments[i] === j) count++;
      let correct = 0;
      if (count > 0) {
        await runLogits(options.model, lerpReader(from, to, comp.mean), ds, (start, rows, logits, labels) => {
          const c = logits.length / rows;
          for (let i = 0; i < rows; i++) if (mix.assignments[start + i] === j && argmax(logits, i * c, c) === labels[i]) correct++;
        }, run);
      }
      correctAll += correct;
      perComponent.push({ component: j, weight: comp.weight, a: comp.a, b: comp.b, alpha: comp.mean, count, correct, accuracy: count > 0 ? correct / count : NaN });
    }
    // static interpolation: choose alpha on validation, report it on the test data
    const accuracyOf = async (d: Dataset, alpha: number): Promise<number> => {
      let correct = 0;
      await runLogits(options.model, lerpReader(from, to, alpha), d, (_s, rows, logits, labels) => {
        const c = logits.length / rows;
        for (let i = 0; i < rows; i++) if (argmax(logits, i * c, c) === labels[i]) correct++;
      }, run);
      return correct / d.count;
    };
    const curve: { alpha: number; validationAccuracy: number }[] = [];
    for (const a of alphas) curve.push({ alpha: a, validationAccuracy: await accuracyOf(val ?? ds, a) });
    let best = curve[0]!;
    for (const c of curve) if (c.validationAccuracy > best.validationAccuracy) best = c;
    const testAcc = val === undefined ? best.validationAccuracy : await accuracyOf(ds, best.alpha);
    return {
      accuracy: correctAll / n,
      count: n,
      k: kk,
      endpoints: { from: ef.acc, to: et.acc },
      perComponent,
      staticBest: { alpha: best.alpha, accuracy: testAcc, validationAccuracy: best.validationAccuracy, selectedOn: val === undefined ? 'test' : 'validation' },
      staticCurve: curve,
      offset: coef.offset,
      mixture: { logLikelihood: mix.logLikelihood, iterations: mix.iterations },
      coefficients: coef.lambda,
      assignments: mix.assignments,
    };
  } finally {
    for (const c of toClose.reverse()) await c.close();
  }
}
