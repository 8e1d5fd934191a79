// Orthogonal polar factor by matrix products only (greedy minimax quintic steps, then Newton–Schulz), for matrices too big for the JS
// eigensolver behind `polarFactor`: every O(m·c²) step goes through a MatMulBackend, JS work is O(c²) per iteration.
// Also the exact f64 polar factor of small matrices (Jacobi SVD). Pure: no node: imports, no onnxruntime.

import { gramMatrixInto, ScratchF32, transposeF32, type MatMulBackend } from './backend.js';
import { assertDim, assertLength, fromArray } from './matrix.js';
import { orthonormalizeColumns } from './qr.js';
import { jacobiSvd } from './svd.js';

/** Options of `polarNewtonSchulz`. */
export interface NewtonSchulzOptions {
  /**
   * Stop when ‖X_{i+1} − X_i‖_F ≤ tolerance·‖X_{i+1}‖_F once the scaled phase is over. In the plain phase
   * X_{i+1} − X_i = ½·X(I − XᵀX), so this measures how far X is from a partial isometry (X·XᵀX = X). Unlike
   * ‖XᵀX − I‖ it also converges for rank-deficient inputs. Default 2e-6 (near the f32 noise floor).
   */
  tolerance?: number;
  /** Most iterations. Default 40. */
  maxIterations?: number;
  /**
   * Assumed lower bound ℓ on σ_min/σ_max for the scaled phase (Chen & Chow 2014): smaller singular values still
   * converge, in more plain iterations. Default 1e-4 with degree 5 (measured on a 4096² TSV-M U_cat: 10 steps against
   * 12 from 1e-5), 1e-3 with degree 3.
   */
  lowerBound?: number;
  /**
   * 3: scaled cubic steps (two products each) while ℓ < 1. 5 (default): the greedy minimax odd quintics of
   * "Polar Express" (Amsel et al. 2025), each the best p(x) = a·x + b·x³ + c·x⁵ approximating 1 on the current
   * interval [ℓ, u] (three products each: XᵀX, G², X·(aI + bG + cG²)); about 30% fewer products to bring [ℓ, 1] near 1.
   * Both finish with plain cubic steps until the residual test passes.
   */
  degree?: 3 | 5;
  /**
   * On a backend with native dense kernels: square inputs by the scaled Newton iteration X ← (ζX + X⁻ᵀ/ζ)/2 (one
   * inverse per step, about 5 steps from a condition number of 1e4, against 28 products here), tall or wide ones
   * through an orthonormal basis of their column space (`polarThroughBasis`), unless the input is singular, has
   * dependent columns or a condition bound above NEWTON_MAX_CONDITION (then these iterations run). Default true.
   */
  newton?: boolean;
  /** Threads of the native Newton iteration (default: the backend's); two factors at once can take half each. */
  threads?: number;
  /** The input may be overwritten (the Newton path then iterates in it instead of a copy). Default false. */
  overwrite?: boolean;
}

/** Most Newton steps (they converge in under 10 from any condition number the bound admits). */
const NEWTON_MAX_ITERATIONS = 20;
/**
 * Newton stops once the estimated relative error of its iterate (half the last step's relative change squared, plus
 * the scaling's (ζ − 1)²/2) is below this. The f32 inverses leave ~3e-5 of rounding noise at 4096² anyway (the last
 * step's change when iterated further), so a smaller tolerance buys one more step of noise.
 */
const NEWTON_TOLERANCE = 5e-5;
/**
 * Largest condition bound α/β (α = sqrt(‖A‖₁‖A‖∞) >= σ_max, β = 1/sqrt(‖A⁻¹‖₁‖A⁻¹‖∞) <= σ_min; the bound is up to n
 * times κ₂) for which the f32 Newton iteration runs; worse (nearly singular) inputs take the product iterations,
 * which leave directions with σ at the f32 noise level near zero instead of inflating them.
 */
const NEWTON_MAX_CONDITION = 1e8;

/** Coefficients of one odd quintic step p(x) = a·x + b·x³ + c·x⁵ and its maximal error E = max |1 − p| on its interval. */
export interface QuinticStep {
  a: number;
  b: number;
  c: number;
  e: number;
}

/** Gaussian elimination with partial pivoting for the 4 x 4 Remez system. */
function solve4(rows: number[][]): number[] {
  const M = rows.map((r) => [...r]);
  for (let col = 0; col < 4; col++) {
    let piv = col;
    for (let r = col + 1; r < 4; r++) if (Math.abs(M[r]![col]!) > Math.abs(M[piv]![col]!)) piv = r;
    [M[col], M[piv]] = [M[piv]!, M[col]!];
    for (let r = 0; r < 4; r++) {
      if (r === col) continue;
      const f = M[r]![col]! / M[col]![col]!;
      for (let k = col; k <= 4; k++) M[r]![k] = M[r]![k]! - f * M[col]![k]!;
    }
  }
  return M.map((r, i) => r[4]! / r[i]!);
}

/**
 * The odd quintic that best approximates 1 on [lo, hi] in the max norm (0 < lo < hi), by the Remez exchange: the
 * error equioscillates at lo, the two positive critical points of p (roots of a + 3b·y + 5c·y², y = x²) and hi.
 */
export function minimaxQuintic(lo: number, hi: number): QuinticStep {
  let xs = [lo, lo + 0.25 * (hi - lo), lo + 0.75 * (hi - lo), hi];
  let step: QuinticStep = { a: 1, b: 0, c: 0, e: 1 };
  for (let it = 0; it < 100; it++) {
    const [a, b, c, e] = solve4(xs.map((x, i) => [x, x ** 3, x ** 5, i % 2 === 0 ? 1 : -1, 1]));
    if (![a, b, c, e].every((v) => Number.isFinite(v))) break;
    step = { a: a!, b: b!, c: c!, e: Math.abs(e!) };
    const disc = 9 * b! * b! - 20 * a! * c!;
    if (!(disc > 0) || c === 0) break;
    const y1 = (-3 * b! - Math.sqrt(disc)) / (10 * c!);
    const y2 = (-3 * b! + Math.sqrt(disc)) / (10 * c!);
    const clamp = (y: number): number => Math.min(hi, Math.max(lo, Math.sqrt(Math.max(0, y))));
    const next = [lo, clamp(Math.min(y1, y2)), clamp(Math.max(y1, y2)), hi];
    const moved = Math.abs(next[1]! - xs[1]!) + Math.abs(next[2]! - xs[2]!);
    xs = next;
    if (moved <= 1e-14 * hi) break;
  }
  return step;
}

/** Headroom on the top of each quintic's interval (as in Polar Express) against rounding pushing σ past it. */
const QUINTIC_HEADROOM = 1.01;

/**
 * The greedy quintic schedule from [lowerBound, top]: each step is `minimaxQuintic` on the current interval (top
 * widened by QUINTIC_HEADROOM), and maps it into [1 − E, 1 + E]; stops once E < 1e-3 (then plain cubic steps finish).
 */
export function quinticSchedule(lowerBound: number, top: number): QuinticStep[] {
  const steps: QuinticStep[] = [];
  let lo = lowerBound;
  let hi = top;
  while (steps.length < 20 && 1 - lo >= 1e-3) {
    const q = minimaxQuintic(lo, hi * QUINTIC_HEADROOM);
    steps.push(q);
    lo = q.a * lo + q.b * lo ** 3 + q.c * lo ** 5;
    hi = 1 + q.e;
    if (!(lo > 0)) break;
  }
  return steps;
}

/** The polar factor (same shape as the input) and how it was reached. */
export interface NewtonSchulzResult {
  p: Float32Array;
  /** 'newton': the native scaled Newton iteration (square inputs); 'newton-schulz': products only */
  method: 'newton' | 'newton-schulz';
  iterations: number;
  /** last ‖X_{i+1} − X_i‖_F / ‖X_{i+1}‖_F */
  residual: number;
  /** the estimate of σ_max used to scale the input */
  sigmaMax: number;
}

/** How far above the estimate σ̂ the true σ_max may lie without breaking the first scaled step. */
const FIRST_STEP_SLACK = 1.25;

/** λ_max of a symmetric c x c f32 matrix by `iterations` power iterations in f64 from a fixed start (an estimate from below). */
function powerLambdaMax(g: Float32Array, c: number, iterations = 40): number {
  let v = new Float64Array(c);
  for (let i = 0; i < c; i++) v[i] = 1 + ((i * 0.6180339887) % 1); // fixed, not orthogonal to a positive vector
  let lambda = 0;
  const w = new Float64Array(c);
  for (let it = 0; it < iterations; it++) {
    let norm = 0;
    for (let i = 0; i < c; i++) norm += v[i]! * v[i]!;
    norm = Math.sqrt(norm);
    if (norm === 0) return 0;
    for (let i = 0; i < c; i++) v[i] = v[i]! / norm;
    // four rows at a time: four independent sums (each in the same order as alone) instead of one latency-bound chain
    let i = 0;
    for (; i + 3 < c; i += 4) {
      const r0 = i * c;
      const r1 = r0 + c;
      const r2 = r1 + c;
      const r3 = r2 + c;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let j = 0; j < c; j++) {
        const vj = v[j]!;
        s0 += g[r0 + j]! * vj;
        s1 += g[r1 + j]! * vj;
        s2 += g[r2 + j]! * vj;
        s3 += g[r3 + j]! * vj;
      }
      w[i] = s0;
      w[i + 1] = s1;
      w[i + 2] = s2;
      w[i + 3] = s3;
    }
    for (; i < c; i++) {
      const row = i * c;
      let s = 0;
      for (let j = 0; j < c; j++) s += g[row + j]! * v[j]!;
      w[i] = s;
    }
    let dot = 0;
    for (let i = 0; i < c; i++) dot += w[i]! * v[i]!;
    lambda = dot;
    const t = v;
    v = Float64Array.from(w);
    t.fill(0);
  }
  return Math.max(0, lambda);
}

const TILE = 64;

/**
 * out = a·I + b·sym(g) with sym(g)_ij = ½(g_ij + g_ji), for a c x c row-major g; in TILE x TILE tiles so the
 * transposed reads stay in cache (a row-by-row loop reads g down its columns, 4 bytes from every 16 KB at c = 4096).
 */
function coefficientMatrixInto(out: Float32Array, g: Float32Array, c: number, a: number, b: number): void {
  for (let i0 = 0; i0 < c; i0 += TILE) {
    const i1 = Math.min(c, i0 + TILE);
    for (let j0 = i0; j0 < c; j0 += TILE) {
      const j1 = Math.min(c, j0 + TILE);
      for (let i = i0; i < i1; i++) {
        const row = i * c;
        for (let j = Math.max(j0, i); j < j1; j++) {
          const v = b * 0.5 * (g[row + j]! + g[j * c + i]!);
          out[row + j] = v;
          out[j * c + i] = v;
        }
      }
    }
  }
  for (let i = 0; i < c; i++) out[i * c + i] = out[i * c + i]! + a;
}

/** out = a·I + b·sym(g) + c·sym(g2), tiled like `coefficientMatrixInto`. */
function quinticMatrixInto(out: Float32Array, g: Float32Array, g2: Float32Array, n: number, a: number, b: number, c: number): void {
  for (let i0 = 0; i0 < n; i0 += TILE) {
    const i1 = Math.min(n, i0 + TILE);
    for (let j0 = i0; j0 < n; j0 += TILE) {
      const j1 = Math.min(n, j0 + TILE);
      for (let i = i0; i < i1; i++) {
        const row = i * n;
        for (let j = Math.max(j0, i); j < j1; j++) {
          const t = j * n + i;
          const v = b * 0.5 * (g[row + j]! + g[t]!) + c * 0.5 * (g2[row + j]! + g2[t]!);
          out[row + j] = v;
          out[t] = v;
        }
      }
    }
  }
  for (let i = 0; i < n; i++) out[i * n + i] = out[i * n + i]! + a;
}

/** Orthonormality a basis must reach before `polarThroughBasis` uses it (max |QᵀQ − I|, above the f32 Gram's noise). */
const BASIS_TOLERANCE = 1e-5;

/**
 * The polar factor of a tall full-rank A (m x c, m > c) through a square one: Q (m x c) orthonormal with A's column
 * space (shifted CholeskyQR, `orthonormalizeColumns`), R = QᵀA (c x c, A = Q·R, as ill-conditioned as A), then
 * polar(A) = Q·polar(R) with polar(R) by the native Newton iteration. About 12 products' worth of work on a square-ish
 * A against ~27 for the product iterations, and far less for A much taller than wide. undefined when A's columns are
 * (numerically) dependent or Newton declines R: the product iterations then run on A.
 */
async function polarThroughBasis(a: Float32Array, m: number, c: number, backend: MatMulBackend, threads: number | undefined): Promise<NewtonSchulzResult | undefined> {
  const dense = backend.dense!;
  const declined = new Error('dependent columns');
  let q: Float32Array;
  try {
    q = await orthonormalizeColumns(a, m, c, backend, { tolerance: BASIS_TOLERANCE, fallback: () => Promise.reject(declined) });
  } catch (e) {
    if (e === declined) return undefined;
    throw e;
  }
  const r = await backend.matmul(q, a, c, m, c, { transA: true });
  const info = Float64Array.of(NEWTON_MAX_ITERATIONS, NEWTON_TOLERANCE, NEWTON_MAX_CONDITION, 0, 0, 0);
  if (!(await dense.polarAsync(r, c, info, threads))) return undefined;
  return { p: await backend.matmul(q, r, m, c, c), method: 'newton', iterations: info[3]!, residual: info[4]!, sigmaMax: 0 };
}

/**
 * P ≈ U·Wᵀ from A = U·diag(σ)·Wᵀ (the orthogonal polar factor, Procrustes) of a row-major f32 m x c matrix, by the
 * scaled Newton–Schulz iteration X ← X·(a·I + b·XᵀX) on the backend. X_0 = A/σ̂ with σ̂ ≥ σ_max from a power
 * estimate on AᵀA (×1.02; the first step tolerates σ_max up to 1.25·σ̂). With degree 5 (default) the first steps
 * are the greedy minimax quintics of `quinticSchedule` from [ℓ, 1.25] (X ← X·(aI + bG + cG²), G = XᵀX: three
 * products, the first two c³ and the last m·c²; each step multiplies small σ by 4-7); with degree 3, while ℓ < 1 the
 * step is Chen & Chow's scaled cubic (α² = 3/(1+ℓ+ℓ²), a = 1.5α, b = −0.5α³, which maps [ℓ, 1] into [ℓ', 1] with
 * ℓ' ≈ 2.6ℓ for small ℓ, two products). Both then take plain Newton–Schulz steps (a = 1.5, b = −0.5), quadratically
 * convergent near 1, until the residual test passes. On a 4096² U_cat of 4 orthonormal blocks: 10 steps (28
 * products) against 18 cubic steps (36), same result to 1e-6. For m < c the factor is computed on Aᵀ (orthonormal rows).
 * Exactly zero columns stay exactly zero. Singular values that are zero in exact arithmetic but carry f32
 * rounding noise grow like tiny genuine ones: for a rank-deficient input the result is a partial isometry only up
 * to that noise (the polar factor of a singular matrix is not unique anyway).
 */
export async function polarNewtonSchulz(a: Float32Array, m: number, c: number, backend: MatMulBackend, options: NewtonSchulzOptions = {}): Promise<NewtonSchulzResult> {
  assertDim('m', m);
  assertDim('c', c);
  assertLength('a (m x c)', a, m, c);
  if (m < c) {
    const t = await polarNewtonSchulz(transposeF32(a, m, c), c, m, backend, options);
    return { ...t, p: transposeF32(t.p, c, m) };
  }
  if (m === c && m > 0 && backend.dense !== undefined && options.newton !== false) {
    const info = Float64Array.of(NEWTON_MAX_ITERATIONS, NEWTON_TOLERANCE, NEWTON_MAX_CONDITION, 0, 0, 0);
    const p = options.overwrite === true ? a : Float32Array.from(a);
    if (await backend.dense.polarAsync(p, m, info, options.threads)) return { p, method: 'newton', iterations: info[3]!, residual: info[4]!, sigmaMax: 0 };
    // a declined input (singular, badly conditioned) is declined before the first step writes: `a` is intact for
    // the product iterations below; a later failure (not seen with finite inputs) has overwritten it
    if (options.overwrite === true && info[3]! > 0) throw new RangeError('polarNewtonSchulz: the Newton iteration failed after its first step on an input it was allowed to overwrite');
  }
  if (m > c && c > 0 && backend.dense !== undefined && options.newton !== false) {
    const viaQ = await polarThroughBasis(a, m, c, backend, options.threads);
    if (viaQ !== undefined) return viaQ;
  }
  const tol = options.tolerance ?? 2e-6;
  const maxIt = options.maxIterations ?? 40;
  const degree = options.degree ?? 5;
  let ell = options.lowerBound ?? (degree === 5 ? 1e-4 : 1e-3);
  if (!(tol > 0)) throw new RangeError(`tolerance: expected a positive number, got ${tol}`);
  if (!(ell > 0 && ell <= 1)) throw new RangeError(`lowerBound: expected a number in (0, 1], got ${ell}`);
  if (m === 0 || c === 0) return { p: new Float32Array(m * c), method: 'newton-schulz', iterations: 0, residual: 0, sigmaMax: 0 };
  // every c x c and m x c array is allocated once and reused by all steps (a 4096² step would otherwise take
  // ~400 MB of fresh memory: page faults and full garbage collections)
  const scratch = new ScratchF32();
  const gBuf = new Float32Array(c * c);
  const g2Buf = new Float32Array(c * c);
  let g = await gramMatrixInto(gBuf, a, m, c, backend, scratch);
  const schedule = degree === 5 ? quinticSchedule(ell, FIRST_STEP_SLACK) : [];
  // With a quintic first step G² is needed anyway: computed before scaling, it also serves the power estimate (20
  // iterations on G² see the same eigenvalue ratios as 40 on G).
  let g2: Float32Array | undefined = schedule.length > 0 ? await gramMatrixInto(g2Buf, g, c, c, backend, scratch) : undefined;
  let lambda = g2 !== undefined ? Math.sqrt(powerLambdaMax(g2, c, 20)) : 0;
  if (!(lambda > 0 && Number.isFinite(lambda))) {
    g2 = undefined; // G² over- or underflowed f32
    lambda = powerLambdaMax(g, c);
  }
  if (!(lambda > 0)) return { p: new Float32Array(m * c), method: 'newton-schulz', iterations: 0, residual: 0, sigmaMax: 0 };
  const sigmaMax = Math.sqrt(lambda) * 1.02;
  const inv = 1 / sigmaMax;
  let x: Float32Array = new Float32Array(m * c);
  let spare: Float32Array = new Float32Array(m * c); // the next iterate goes here, then the two swap
  for (let i = 0; i < x.length; i++) x[i] = a[i]! * inv;
  for (let i = 0; i < g.length; i++) g[i] = g[i]! * inv * inv;
  if (g2 !== undefined) for (let i = 0; i < g2.length; i++) g2[i] = g2[i]! * inv * inv * inv * inv;
  const mcoef = new Float32Array(c * c);
  if (schedule.length > 0) ell = 1;
  let residual = Infinity;
  let it = 0;
  let plain = 0;
  while (it < maxIt) {
    let scaled = true;
    if (it < schedule.length) {
      const q = schedule[it]!;
      quinticMatrixInto(mcoef, g, g2 ?? (await gramMatrixInto(g2Buf, g, c, c, backend, scratch)), c, q.a, q.b, q.c); // G² = GᵀG
      g2 = undefined;
    } else {
      let ca: number;
      let cb: number;
      scaled = ell < 1 - 1e-3;
      if (scaled) {
        // the first step must also keep σ up to FIRST_STEP_SLACK·σ̂ positive (ασ < √3): the power estimate is only a
        // lower bound on σ_max; from then on every σ is in (0, 1] (p has its maximum 1 at ασ = 1)
        let alpha = Math.sqrt(3 / (1 + ell + ell * ell));
        if (it === 0) alpha = Math.min(alpha, Math.sqrt(3) / FIRST_STEP_SLACK);
        ca = 1.5 * alpha;
        cb = -0.5 * alpha * alpha * alpha;
        ell = Math.min(1, 0.5 * alpha * ell * (3 - alpha * alpha * ell * ell));
      } else {
        ca = 1.5;
        cb = -0.5;
        plain++;
      }
      coefficientMatrixInto(mcoef, g, c, ca, cb);
    }
    const next = await backend.matmul(x, mcoef, m, c, c, { out: spare });
    it++;
    const prev = residual;
    if (!scaled || it === maxIt) {
      // only the plain phase tests convergence (a scaled step is a fixed part of the schedule); the last allowed
      // step always reports its residual
      let diff = 0;
      let norm = 0;
      for (let i = 0; i < next.length; i++) {
        const d = next[i]! - x[i]!;
        diff += d * d;
        norm += next[i]! * next[i]!;
      }
      residual = norm > 0 ? Math.sqrt(diff / norm) : 0;
    }
    spare = x;
    x = next;
    // converged, or stuck at the rounding-noise floor (small and no longer decreasing); a large residual that grows
    // is a small singular value still on its way up, not noise
    if (!scaled && (residual <= tol || (plain > 2 && residual < 100 * tol && residual >= prev))) break;
    g = await gramMatrixInto(gBuf, x, m, c, backend, scratch);
  }
  return { p: x, method: 'newton-schulz', iterations: it, residual, sigmaMax };
}

/**
 * Exact polar factor in f64 of a small row-major m x c matrix (Jacobi SVD A = U·diag(σ)·Wᵀ): P = Σ u_j·w_jᵀ over the
 * singular values σ_j > relTol·σ_max (default 1e-9), i.e. the partial isometry on A's numerical range: directions
 * with σ ≈ 0 have arbitrary singular vectors and are left out. Also returns every singular value (descending).
 */
export function polarExact(a: ArrayLike<number>, m: number, c: number, relTol = 1e-9): { p: Float64Array; s: Float64Array } {
  assertDim('m', m);
  assertDim('c', c);
  assertLength('a (m x c)', a, m, c);
  const p = new Float64Array(m * c);
  if (m === 0 || c === 0) return { p, s: new Float64Array(0) };
  const svd = jacobiSvd(fromArray(a, m, c));
  const r = svd.s.length;
  const cut = (svd.s[0] ?? 0) * relTol;
  const u = svd.u.data;
  const w = svd.v.data;
  for (let j = 0; j < r; j++) {
    if (!(svd.s[j]! > cut)) break;
    for (let i = 0; i < m; i++) {
      const uij = u[i * r + j]!;
      if (uij === 0) continue;
      const row = i * c;
      for (let l = 0; l < c; l++) p[row + l] = p[row + l]! + uij * w[l * r + j]!;
    }
  }
  return { p, s: svd.s };
}
