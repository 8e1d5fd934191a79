// A compact (mu/mu_w, lambda)-CMA-ES (Hansen, "The CMA Evolution Strategy: A Tutorial", 2016: default weights,
// cumulative step-size adaptation, rank-one + rank-mu covariance update, h_sigma stall) for small derivative-free
// problems (tens of coefficients). Box bounds by mirroring samples into [lower, upper]; the repaired point is the one
// evaluated and used in the update. Randomness only from SeededRandom: a seed fixes every sample. Pure: no node:.

import { UsageError } from '../errors.js';
import { SeededRandom } from '../tensor/rng.js';

export interface CmaesOptions {
  /** Initial mean. */
  x0: readonly number[];
  /** Initial step size (in the units of x). */
  sigma0: number;
  lower?: readonly number[];
  upper?: readonly number[];
  seed?: number;
  /** Population size lambda (default 4 + floor(3 ln n)). */
  popSize?: number;
}

/** Reflect v into [lo, hi] (repeated mirroring; a zero-width box gives lo). */
export function mirrorInto(v: number, lo: number, hi: number): number {
  if (!(hi > lo)) return lo;
  const w = hi - lo;
  let t = (v - lo) % (2 * w);
  if (t < 0) t += 2 * w;
  return lo + (t <= w ? t : 2 * w - t);
}

/** Eigen-decomposition of a symmetric matrix (row-major n x n) by cyclic Jacobi: C = B diag(d) B^T. */
export function symmetricEigen(c: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(c);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q]! ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q]!;
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q * n + q]! - a[p * n + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const cs = 1 / Math.sqrt(t * t + 1);
        const sn = t * cs;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p]!;
          const akq = a[k * n + q]!;
          a[k * n + p] = cs * akp - sn * akq;
          a[k * n + q] = sn * akp + cs * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k]!;
          const aqk = a[q * n + k]!;
          a[p * n + k] = cs * apk - sn * aqk;
          a[q * n + k] = sn * apk + cs * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p]!;
          const vkq = v[k * n + q]!;
          v[k * n + p] = cs * vkp - sn * vkq;
          v[k * n + q] = sn * vkp + cs * vkq;
        }
      }
    }
  }
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = a[i * n + i]!;
  return { values, vectors: v };
}

export class Cmaes {
  readonly n: number;
  readonly popSize: number;
  readonly mu: number;
  readonly weights: Float64Array;
  readonly muEff: number;
  mean: Float64Array;
  sigma: number;
  generation = 0;
  private readonly cs: number;
  private readonly ds: number;
  private readonly cc: number;
  private readonly c1: number;
  private readonly cmu: number;
  private readonly chiN: number;
  private readonly ps: Float64Array;
  private readonly pc: Float64Array;
  private readonly c: Float64Array;
  private b: Float64Array;
  private d: Float64Array;
  private readonly rng: SeededRandom;
  private readonly lower: readonly number[] | undefined;
  private readonly upper: readonly number[] | undefined;

  constructor(o: CmaesOptions) {
    const n = o.x0.length;
    if (n < 1) throw new UsageError('USAGE', 'CMA-ES needs at least one coordinate');
    if (!(o.sigma0 > 0) || !Number.isFinite(o.sigma0)) throw new UsageError('USAGE', `sigma0 must be a positive number, got ${o.sigma0}`);
    for (const [name, b] of [['lower', o.lower], ['upper', o.upper]] as const) {
      if (b !== undefined && b.length !== n) throw new UsageError('USAGE', `${name} has ${b.length} entries, x0 has ${n}`);
    }
    this.n = n;
    this.lower = o.lower;
    this.upper = o.upper;
    this.popSize = o.popSize ?? 4 + Math.floor(3 * Math.log(n));
    if (!Number.isSafeInteger(this.popSize) || this.popSize < 2) throw new UsageError('USAGE', `popSize must be an integer >= 2, got ${this.popSize}`);
    this.mu = Math.floor(this.popSize / 2);
    const w = Float64Array.from({ length: this.mu }, (_, i) => Math.log(this.mu + 0.5) - Math.log(i + 1));
    const sw = w.reduce((a, b) => a + b, 0);
    for (let i = 0; i < this.mu; i++) w[i] = w[i]! / sw;
    this.weights = w;
    this.muEff = 1 / w.reduce((a, b) => a + b * b, 0);
    const me = this.muEff;
    this.cs = (me + 2) / (n + me + 5);
    this.ds = 1 + 2 * Math.max(0, Math.sqrt((me - 1) / (n + 1)) - 1) + this.cs;
    this.cc = (4 + me / n) / (n + 4 + (2 * me) / n);
    this.c1 = 2 / ((n + 1.3) ** 2 + me);
    this.cmu = Math.min(1 - this.c1, (2 * (me - 2 + 1 / me)) / ((n + 2) ** 2 + me));
    this.chiN = Math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n));
    this.mean = Float64Array.from(o.x0, (v, i) => this.repair(v, i));
    this.sigma = o.sigma0;
    this.ps = new Float64Array(n);
    this.pc = new Float64Array(n);
    this.c = new Float64Array(n * n);
    this.b = new Float64Array(n * n);
    this.d = new Float64Array(n).fill(1);
    for (let i = 0; i < n; i++) {
      this.c[i * n + i] = 1;
      this.b[i * n + i] = 1;
    }
    this.rng = new SeededRandom(o.seed ?? 0);
  }

  private repair(v: number, i: number): number {
    const lo = this.lower?.[i] ?? -Infinity;
    const hi = this.upper?.[i] ?? Infinity;
    if (v >= lo && v <= hi) return v;
    if (Number.isFinite(lo) && Number.isFinite(hi)) return mirrorInto(v, lo, hi);
    return v < lo ? 2 * lo - v : 2 * hi - v;
  }

  /** Sample one generation (popSize points, inside the bounds). */
  ask(): number[][] {
    const n = this.n;
    const out: number[][] = [];
    for (let k = 0; k < this.popSize; k++) {
      const z = Array.from({ length: n }, () => this.rng.normal());
      const x: number[] = [];
      for (let i = 0; i < n; i++) {
        let y = 0;
        for (let j = 0; j < n; j++) y += this.b[i * n + j]! * this.d[j]! * z[j]!;
        x.push(this.repair(this.mean[i]! + this.sigma * y, i));
      }
      out.push(x);
    }
    return out;
  }

  /** Update from a full generation's points and their values (lower is better). */
  tell(xs: readonly (readonly number[])[], fs: readonly number[]): void {
    const n = this.n;
    if (xs.length !== this.popSize || fs.length !== this.popSize) throw new UsageError('USAGE', `tell needs ${this.popSize} points and values`);
    const order = fs.map((_, i) => i).sort((a, b) => fs[a]! - fs[b]! || a - b);
    const old = this.mean;
    const ys = order.slice(0, this.mu).map((i) => Float64Array.from(xs[i]!, (v, j) => (v - old[j]!) / this.sigma));
    const yw = new Float64Array(n);
    for (let k = 0; k < this.mu; k++) for (let j = 0; j < n; j++) yw[j] = yw[j]! + this.weights[k]! * ys[k]![j]!;
    this.mean = Float64Array.from(old, (m, j) => m + this.sigma * yw[j]!);
    // C^{-1/2} y_w = B D^{-1} B^T y_w
    const bt = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += this.b[i * n + j]! * yw[i]!;
      bt[j] = s / this.d[j]!;
    }
    const csn = Math.sqrt(this.cs * (2 - this.cs) * this.muEff);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += this.b[i * n + j]! * bt[j]!;
      this.ps[i] = (1 - this.cs) * this.ps[i]! + csn * s;
    }
    const psNorm = Math.hypot(...this.ps);
    this.generation++;
    const hs = psNorm / Math.sqrt(1 - (1 - this.cs) ** (2 * this.generation)) < (1.4 + 2 / (n + 1)) * this.chiN ? 1 : 0;
    const ccn = Math.sqrt(this.cc * (2 - this.cc) * this.muEff);
    for (let i = 0; i < n; i++) this.pc[i] = (1 - this.cc) * this.pc[i]! + hs * ccn * yw[i]!;
    const keep = 1 - this.c1 - this.cmu + (1 - hs) * this.c1 * this.cc * (2 - this.cc);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let r = 0;
        for (let k = 0; k < this.mu; k++) r += this.weights[k]! * ys[k]![i]! * ys[k]![j]!;
        this.c[i * n + j] = keep * this.c[i * n + j]! + this.c1 * this.pc[i]! * this.pc[j]! + this.cmu * r;
      }
    }
    this.sigma *= Math.exp((this.cs / this.ds) * (psNorm / this.chiN - 1));
    const { values, vectors } = symmetricEigen(this.c, n);
    this.b = vectors;
    this.d = Float64Array.from(values, (v) => Math.sqrt(Math.max(v, 1e-20)));
  }
}

export interface MinimizeOptions extends CmaesOptions {
  /** Maximum number of evaluations of f. */
  budget: number;
  signal?: AbortSignal;
}

export interface MinimizeResult {
  x: number[];
  f: number;
  evaluations: number;
  generations: number;
}

/**
 * Minimise f with CMA-ES within `budget` evaluations, one at a time in sample order (the last generation may be
 * cut short; its points still count for the best). `onEvaluate` sees every evaluation.
 */
export async function cmaesMinimize(
  f: (x: readonly number[], info: { evaluation: number; generation: number }) => number | Promise<number>,
  options: MinimizeOptions,
): Promise<MinimizeResult> {
  if (!Number.isSafeInteger(options.budget) || options.budget < 1) throw new UsageError('USAGE', `budget must be a positive integer, got ${options.budget}`);
  const es = new Cmaes(options);
  let best: { x: number[]; f: number } | undefined;
  let evaluations = 0;
  while (evaluations < options.budget) {
    const xs = es.ask();
    const fs: number[] = [];
    for (const x of xs) {
      if (evaluations >= options.budget) break;
      if (options.signal?.aborted) throw new UsageError('INTERRUPTED', 'search interrupted');
      const v = await f(x, { evaluation: evaluations, generation: es.generation });
      evaluations++;
      const fv = Number.isFinite(v) ? v : Infinity;
      fs.push(fv);
      if (best === undefined || fv < best.f) best = { x: [...x], f: fv };
    }
    if (fs.length === xs.length) es.tell(xs, fs);
  }
  return { x: best!.x, f: best!.f, evaluations, generations: es.generation };
}
