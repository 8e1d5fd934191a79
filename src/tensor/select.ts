// Exact top-k selection by magnitude with a two-pass radix histogram over the IEEE bits of |x| (16 high bits,
// then 16 low bits inside the boundary bucket). Never sorts; streams over chunks and sums across tensors.
// Ties at the threshold are broken by element order, so the kept set is exact-k and deterministic. The high pass
// may also be counted elsewhere and handed over (HighCountHolder: the GTA merge-kernel wasm module does), with the
// counts of its inexact elements (low 16 bits nonzero) per bucket alongside (addInexactCounts): when the boundary
// bucket holds fewer inexact elements than it must give, its threshold is its exact value b << 16 and the low
// pass is skipped. Pure.

const BINS = 65536;
const ABS = 0x7fffffff;
const INF_BITS = 0x7f800000;
/** magnitude bins: |x| bits >>> 16 of a number lies in [0, 0x7f80] (0x7f80 holds inf) */
const NUMBER_BINS = 0x7f81;
/** fold the 32-bit raw counts into the f64 histogram before any of them could overflow */
const FOLD_AT = 0xffffffff - BINS;

// Histogram kernels: small monomorphic loops over plain typed arrays (STYLE.md "Hot loops"). The high pass counts
// into a Uint32Array by the RAW top 16 bits (sign included, no masking, no NaN test in the loop: integer increments
// and no branch); bins b and b | 0x8000 are folded into the magnitude histogram when resolving.

/** Raw high-bits counts of arbitrary data: NaNs (even signalling ones, which share inf's bin) are skipped. */
function histHighChecked(u: Uint32Array, n: number, hiU: Uint32Array): void {
  for (let i = 0; i < n; i++) {
    const a = u[i]! & ABS;
    if (a <= INF_BITS) hiU[a >>> 16]!++;
  }
}

/**
 * Raw high-bits counts of values made by IEEE arithmetic. Such a NaN is quiet (bit 22 set), so its bin is
 * >= 0x7fc0 and never mixes with numbers: it is left out when folding.
 */
function histRaw(u: Uint32Array, n: number, hiU: Uint32Array): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    // unrolled: four independent increments per step
    const h0 = u[i]! >>> 16;
    const h1 = u[i + 1]! >>> 16;
    const h2 = u[i + 2]! >>> 16;
    const h3 = u[i + 3]! >>> 16;
    hiU[h0]!++;
    hiU[h1]!++;
    hiU[h2]!++;
    hiU[h3]!++;
  }
  for (; i < n; i++) hiU[u[i]! >>> 16]!++;
}

/** d = f32(x - b) and its raw high-bits counts. Two loops: each runs faster on its own. */
function diffHistHigh(x: Float32Array, b: Float32Array, d: Float32Array, du: Uint32Array, n: number, hiU: Uint32Array): void {
  for (let i = 0; i < n; i++) d[i] = x[i]! - b[i]!;
  histRaw(du, n, hiU);
}

/** hi[b] += raw[b] + raw[b | 0x8000] over the number bins; raw is cleared. */
function foldHigh(hiU: Uint32Array, hi: Float64Array): void {
  for (let b = 0; b < NUMBER_BINS; b++) hi[b] = hi[b]! + hiU[b]! + hiU[b | 0x8000]!;
  hiU.fill(0);
}

function histLow(u: Uint32Array, n: number, lo: Float64Array, bin: number): void {
  for (let i = 0; i < n; i++) {
    const a = u[i]! & ABS;
    if (a >>> 16 === bin) lo[a & 0xffff]!++;
  }
}

function diffHistLow(x: Float32Array, b: Float32Array, d: Float32Array, du: Uint32Array, n: number, lo: Float64Array, bin: number): void {
  for (let i = 0; i < n; i++) {
    d[i] = x[i]! - b[i]!;
    const a = du[i]! & ABS;
    if (a >>> 16 === bin) lo[a & 0xffff]!++;
  }
}

function u32(x: Float32Array, n: number): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, n);
}

/**
 * Keeps some of a selector's high-pass counts outside it (e.g. a histogram in a WebAssembly kernel module's
 * memory). resolveHigh calls release(), which must hand them over with addMagnitudeCounts and forget the selector.
 */
export interface HighCountHolder {
  release(sel: MagnitudeSelector): void;
}

/** Keep x iff |x| bits > `bits`, or |x| bits == `bits` and it is among the first `ties` such elements in order. */
export interface MagnitudeThreshold {
  readonly bits: number;
  readonly ties: number;
  /** true when every element is kept (k >= count); `bits`/`ties` then keep everything including zeros */
  readonly all: boolean;
  /** true when nothing is kept (k <= 0) */
  readonly none: boolean;
}

export const KEEP_ALL: MagnitudeThreshold = { bits: -1, ties: 0, all: true, none: false };
export const KEEP_NONE: MagnitudeThreshold = { bits: 0x7fffffff, ties: 0, all: false, none: true };

/**
 * Streaming selector: call `addHigh` on every chunk, then `resolveHigh(k)`; if it returns true call `addLow` on
 * every chunk (same data, any chunking) and then `threshold()`. NaNs are never selected.
 * The *Delta variants select over d = f32(x - base), writing d to a caller's scratch on the way.
 */
export class MagnitudeSelector {
  /** raw high-bits counts since the last fold (see foldHigh) */
  private readonly hiU = new Uint32Array(BINS);
  private pending = 0;
  private readonly hi = new Float64Array(NUMBER_BINS);
  /** allocated only when a low pass is needed */
  private lo = new Float64Array(0);
  private bin = -1;
  private need = 0; // how many to take from inside `bin`
  private result: MagnitudeThreshold | undefined;
  /** holders of counts not yet added (see HighCountHolder) */
  private readonly holders: HighCountHolder[] = [];
  /** while every counted element was classified (see trackInexact): per bucket, those with low 16 bits nonzero */
  private inexact: Float64Array | undefined;
  /** the array trackInexact counts into (kept for reuse across reset) */
  private inexactStore: Float64Array | undefined;
  /** setWindow's bins (inclusive); -1: no window */
  private winLo = -1;
  private winHi = -1;
  /** elements counted outside the window, above and below it (addOutsideCounts) */
  private outAbove = 0;
  private outBelow = 0;
  private missed = false;

  private reserve(n: number): void {
    if (this.pending + n > FOLD_AT) {
      foldHigh(this.hiU, this.hi);
      this.pending = 0;
    }
    this.pending += n;
  }

  addHigh(x: Float32Array): void {
    this.inexact = undefined;
    if (x.length > FOLD_AT) {
      for (let o = 0; o < x.length; o += FOLD_AT) this.addHigh(x.subarray(o, o + FOLD_AT));
      return;
    }
    this.reserve(x.length);
    histHighChecked(u32(x, x.length), x.length, this.hiU);
  }

  /** addHigh over d = f32(x - base) for the first n elements; d (n elements) receives the differences. */
  addHighDelta(x: Float32Array, base: Float32Array, d: Float32Array, n: number): void {
    this.inexact = undefined;
    this.reserve(n);
    diffHistHigh(x, base, d, u32(d, n), n, this.hiU);
  }

  /** addHigh over the f32 bits of n values made by IEEE arithmetic (e.g. differences: any NaN is quiet). */
  addHighArithmeticBits(u: Uint32Array, n: number): void {
    this.inexact = undefined;
    this.reserve(n);
    histRaw(u, n, this.hiU);
  }

  /**
   * Before any counts: count the inexact elements (|x| bits with nonzero low 16 bits) of each bucket too. Every
   * count then added with addMagnitudeCounts must have its inexact elements' counts added with addInexactCounts;
   * counts from addHigh* or a call to dropInexact end this. While it lasts, resolveHigh needs no low pass when the
   * boundary bucket must give more elements than it holds inexact ones.
   */
  trackInexact(): void {
    if (this.inexactStore === undefined) this.inexactStore = new Float64Array(NUMBER_BINS);
    else this.inexactStore.fill(0);
    this.inexact = this.inexactStore;
  }

  /**
   * Back to the state of a new selector, keeping its arrays (a selector costs about 0.8 MB of them: reusing saves
   * their allocation and garbage collection when thousands of tensors are merged). Held counts are dropped.
   */
  reset(): void {
    for (const h of this.holders) h.release(this);
    this.holders.length = 0;
    if (this.pending > 0) this.hiU.fill(0);
    this.pending = 0;
    this.hi.fill(0);
    if (this.lo.length > 0) this.lo.fill(0);
    this.bin = -1;
    this.need = 0;
    this.result = undefined;
    this.inexact = undefined;
    this.winLo = -1;
    this.winHi = -1;
    this.outAbove = 0;
    this.outBelow = 0;
    this.missed = false;
  }

  /** Whether the inexact elements are still being counted (see trackInexact). */
  tracksInexact(): boolean {
    return this.inexact !== undefined;
  }

  /** Stop counting inexact elements (some counts come without theirs). */
  dropInexact(): void {
    this.inexact = undefined;
  }

  /** Add inexact-element counts made elsewhere, by bucket as in addMagnitudeCounts (which they are also part of). */
  addInexactCounts(counts: Uint32Array): void {
    const e = this.inexact;
    if (e === undefined) return;
    for (let b = 0; b < NUMBER_BINS; b++) e[b] = e[b]! + counts[b]!;
  }

  /** Counts of this selector's high pass are kept by `h` until resolveHigh (see HighCountHolder). */
  holdCountsIn(h: HighCountHolder): void {
    if (!this.holders.includes(h)) this.holders.push(h);
  }

  /**
   * Add high-pass counts made elsewhere: counts[b] elements whose |x| bits >>> 16 is b, for b in [0, 0x7f80]
   * (further bins, which hold NaNs, are ignored).
   */
  addMagnitudeCounts(counts: Uint32Array): void {
    const hi = this.hi;
    for (let b = 0; b < NUMBER_BINS; b++) hi[b] = hi[b]! + counts[b]!;
  }

  /**
   * Before any counts: the threshold is expected in buckets [lo, hi] (e.g. from a sample). Counts added from now on
   * are by bucket for elements inside the window only; elements above or below it are only counted, with
   * addOutsideCounts. If the k-th largest then lies outside the window, resolveHigh says so through windowMissed()
   * and the counting must be redone without a window.
   */
  setWindow(lo: number, hi: number): void {
    this.winLo = lo;
    this.winHi = hi;
    this.outAbove = 0;
    this.outBelow = 0;
    this.missed = false;
  }

  /** Numbers counted outside setWindow's buckets: `above` it and `below` it (NaNs in neither). */
  addOutsideCounts(above: number, below: number): void {
    this.outAbove += above;
    this.outBelow += below;
  }

  /** After resolveHigh: whether the threshold lay outside setWindow's buckets (then count again without one). */
  windowMissed(): boolean {
    return this.missed;
  }

  /**
   * The buckets holding the elements of the given ranks (1 = the largest magnitude) among those counted so far, for
   * a window from a sample; ranks past the count give bucket 0. Hands over held counts first (as resolveHigh).
   */
  bucketsAtRanks(ranks: readonly number[]): number[] {
    this.gatherCounts();
    return ranks.map((r) => {
      let above = 0;
      for (let b = NUMBER_BINS - 1; b >= 0; b--) {
        above += this.hi[b]!;
        if (above >= r) return b;
      }
      return 0;
    });
  }

  /** How many numbers have been counted (NaNs excluded; held counts handed over first). */
  counted(): number {
    this.gatherCounts();
    let n = this.outAbove + this.outBelow;
    for (let b = 0; b < NUMBER_BINS; b++) n += this.hi[b]!;
    return n;
  }

  /** Every high-pass count into `hi`: those held elsewhere handed over, the raw ones folded. */
  private gatherCounts(): void {
    for (const h of this.holders) h.release(this);
    this.holders.length = 0;
    if (this.pending > 0) foldHigh(this.hiU, this.hi); // else hiU holds no counts (it is zero)
    this.pending = 0;
  }

  /** Decide the boundary bucket for the k largest; returns whether a second (low-bits) pass is needed. */
  resolveHigh(k: number): boolean {
    this.gatherCounts();
    const kk = Math.floor(k);
    const inexact = this.inexact;
    this.inexact = undefined;
    if (kk <= 0) {
      this.result = KEEP_NONE;
      return false;
    }
    const windowed = this.winLo >= 0;
    let count = this.outAbove + this.outBelow;
    for (let b = 0; b < NUMBER_BINS; b++) count += this.hi[b]!;
    if (kk >= count) {
      this.result = KEEP_ALL;
      return false;
    }
    let above = this.outAbove;
    if (windowed && (above >= kk || count - this.outBelow < kk)) {
      // the k-th largest lies above or below the window: its bucket was not counted
      this.missed = true;
      return false;
    }
    for (let b = windowed ? this.winHi : NUMBER_BINS - 1; b >= 0; b--) {
      const c = this.hi[b]!;
      if (above + c >= kk) {
        this.bin = b;
        this.need = kk - above;
        if (this.need === c) {
          // the whole bucket is kept: threshold at its lowest possible value with all ties kept
          // keep iff |x| bits >= b<<16: encode as (b<<16) - 1 with no ties
          this.result = { bits: ((b << 16) >>> 0) - 1, ties: 0, all: false, none: false };
          return false;
        }
        const e = inexact === undefined ? c : inexact[b]!;
        if (this.need > e) {
          // the bucket's other elements are exact (|x| bits b << 16, the smallest in it) and some of them are kept:
          // what the low pass would find (every inexact one above them kept, the rest of `need` as ties in order)
          this.result = { bits: (b << 16) >>> 0, ties: this.need - e, all: false, none: false };
          return false;
        }
        if (this.lo.length === 0) this.lo = new Float64Array(BINS);
        return true;
      }
      above += c;
    }
    this.result = KEEP_ALL;
    return false;
  }

  addLow(x: Float32Array): void {
    histLow(u32(x, x.length), x.length, this.lo, this.bin);
  }

  /** addLow over d = f32(x - base) for the first n elements; d (n elements) receives the differences. */
  addLowDelta(x: Float32Array, base: Float32Array, d: Float32Array, n: number): void {
    diffHistLow(x, base, d, u32(d, n), n, this.lo, this.bin);
  }

  /** The bucket (|x| bits >>> 16) the low pass looks into; -1 unless resolveHigh asked for a low pass. */
  lowBin(): number {
    return this.result ? -1 : this.bin;
  }

  /** addLow given the low 16 bits of the elements in lowBin() only, listed in any order. */
  addLowList(lows: Uint32Array, count: number): void {
    const lo = this.lo;
    for (let i = 0; i < count; i++) lo[lows[i]!]!++;
  }

  threshold(): MagnitudeThreshold {
    if (this.result) return this.result;
    let above = 0;
    for (let l = BINS - 1; l >= 0; l--) {
      const c = this.lo[l]!;
      if (above + c >= this.need) {
        this.result = { bits: ((this.bin << 16) | l) >>> 0, ties: this.need - above, all: false, none: false };
        return this.result;
      }
      above += c;
    }
    throw new Error('MagnitudeSelector: low pass saw fewer elements than the high pass');
  }
}

/** Threshold for the k largest magnitudes of an in-memory array (two passes over it). */
export function topKMagnitude(x: Float32Array, k: number): MagnitudeThreshold {
  const s = new MagnitudeSelector();
  s.addHigh(x);
  if (s.resolveHigh(k)) s.addLow(x);
  return s.threshold();
}

/**
 * Apply a threshold to a chunk in order: out[i] = keep ? x[i] : 0. `state.tiesLeft` carries the tie budget
 * across chunks (start it at `t.ties`). Returns how many elements were kept in this chunk.
 */
export function applyMagnitudeMaskInto(
  x: Float32Array,
  t: MagnitudeThreshold,
  state: { tiesLeft: number },
  out: Float32Array,
): number {
  const n = x.length;
  if (t.all) {
    if (out !== x) out.set(x);
    return n;
  }
  if (t.none) {
    out.fill(0, 0, n);
    return 0;
  }
  const u = u32(x, n);
  const o = u32(out, n);
  const bits = t.bits;
  let ties = state.tiesLeft;
  let kept = 0;
  for (let i = 0; i < n; i++) {
    const v = u[i]!;
    const a = v & ABS;
    let keep = +(a > bits) & +(a <= INF_BITS);
    if (a === bits && ties > 0) {
      // rare: only elements exactly at the threshold
      keep = 1;
      ties--;
    }
    // branch-free select on the bits: a dropped element becomes +0
    o[i] = v & -keep;
    kept += keep;
  }
  state.tiesLeft = ties;
  return kept;
}

/**
 * The 0/1 mask of a threshold over a chunk in order: mask[i] = 1 iff x[i] is kept (|x| above the threshold bits, or
 * equal while `state.ties` lasts; NaN never). `state.ties` carries the tie budget across chunks (start it at
 * `t.ties`). Returns how many were kept.
 */
export function magnitudeMaskInto(x: Float32Array, n: number, t: MagnitudeThreshold, state: { ties: number }, mask: Uint8Array): number {
  if (t.none) {
    mask.fill(0, 0, n);
    return 0;
  }
  const u = u32(x, n);
  const bits = t.all ? -1 : t.bits;
  let ties = state.ties;
  let kept = 0;
  for (let i = 0; i < n; i++) {
    const a = u[i]! & ABS;
    let keep = +(a > bits) & +(a <= INF_BITS);
    if (a === bits && ties > 0) {
      keep = 1;
      ties--;
    }
    mask[i] = keep;
    kept += keep;
  }
  state.ties = ties;
  return kept;
}
