// Exact top-k selection by magnitude with a two-pass radix histogram over the IEEE bits of |x| (16 high bits,
// then 16 low bits inside the boundary bucket). Never sorts; streams over chunks and sums across tensors.
// Ties at the threshold are broken by element order, so the kept set is exact-k and deterministic. Pure.

const BINS = 65536;

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
 */
export class MagnitudeSelector {
  private readonly hi = new Float64Array(BINS);
  private readonly lo = new Float64Array(BINS);
  private count = 0;
  private bin = -1;
  private need = 0; // how many to take from inside `bin`
  private result: MagnitudeThreshold | undefined;

  addHigh(x: Float32Array): void {
    const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
    const hi = this.hi;
    let n = 0;
    for (let i = 0; i < u.length; i++) {
      const a = u[i]! & 0x7fffffff;
      if (a <= 0x7f800000) {
        hi[a >>> 16]!++;
        n++;
      }
    }
    this.count += n;
  }

  /** Decide the boundary bucket for the k largest; returns whether a second (low-bits) pass is needed. */
  resolveHigh(k: number): boolean {
    const kk = Math.floor(k);
    if (kk <= 0) {
      this.result = KEEP_NONE;
      return false;
    }
    if (kk >= this.count) {
      this.result = KEEP_ALL;
      return false;
    }
    let above = 0;
    for (let b = BINS - 1; b >= 0; b--) {
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
        return true;
      }
      above += c;
    }
    this.result = KEEP_ALL;
    return false;
  }

  addLow(x: Float32Array): void {
    const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
    const lo = this.lo;
    const bin = this.bin;
    for (let i = 0; i < u.length; i++) {
      const a = u[i]! & 0x7fffffff;
      if (a >>> 16 === bin) lo[a & 0xffff]!++;
    }
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
  const u = new Uint32Array(x.buffer, x.byteOffset, n);
  const bits = t.bits;
  let ties = state.tiesLeft;
  let kept = 0;
  for (let i = 0; i < n; i++) {
    const a = u[i]! & 0x7fffffff;
    if (a > bits && a <= 0x7f800000) {
      out[i] = x[i]!;
      kept++;
    } else if (a === bits && ties > 0) {
      out[i] = x[i]!;
      ties--;
      kept++;
    } else {
      out[i] = 0;
    }
  }
  state.tiesLeft = ties;
  return kept;
}
