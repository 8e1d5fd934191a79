// Exact ranks of magnitudes inside one short vector (a DELLA row) by an LSD radix pass over the IEEE bits of |x|:
// no comparison sort, linear time, deterministic. Equal magnitudes rank by element order (the earlier element
// ranks higher, matching select.ts where the earlier of two equal magnitudes is kept first). Pure; no node: imports.

const RADIX = 256;

/** Reusable ranker: scratch arrays grow to the longest vector seen and are then reused. */
export class MagnitudeRanker {
  private keys = new Uint32Array(0);
  private keys2 = new Uint32Array(0);
  private perm = new Int32Array(0);
  private tmp = new Int32Array(0);
  /** the four digit histograms, side by side */
  private readonly count = new Int32Array(4 * RADIX);

  /**
   * ranks[j] = 0-based ascending rank of |x[j]| among x[0..n): the smallest magnitude gets 0, the largest n-1.
   * NaNs rank above every number. `ranks` must hold n elements.
   */
  rankInto(x: Float32Array, n: number, ranks: Int32Array): void {
    if (n === 0) return;
    if (this.keys.length < n) {
      this.keys = new Uint32Array(n);
      this.keys2 = new Uint32Array(n);
      this.perm = new Int32Array(n);
      this.tmp = new Int32Array(n);
    }
    const bits = new Uint32Array(x.buffer, x.byteOffset, n);
    let keys = this.keys;
    let keys2 = this.keys2;
    let perm = this.perm;
    let tmp = this.tmp;
    const count = this.count;
    count.fill(0);
    // One pass builds all four digit histograms. Reversed start order: a stable ascending sort then places the
    // later of two equal keys first (lower rank). Keys travel with the permutation (sequential reads).
    for (let r = 0; r < n; r++) {
      const j = n - 1 - r;
      const k = bits[j]! & 0x7fffffff;
      keys[r] = k;
      perm[r] = j;
      count[k & 0xff]!++;
      count[RADIX + ((k >>> 8) & 0xff)]!++;
      count[2 * RADIX + ((k >>> 16) & 0xff)]!++;
      count[3 * RADIX + (k >>> 24)]!++;
    }
    for (let pass = 0; pass < 4; pass++) {
      const o = pass * RADIX;
      const shift = pass * 8;
      if (count[o + ((keys[0]! >>> shift) & 0xff)] === n) continue; // every key has this digit: a no-op pass
      let sum = 0;
      for (let d = o; d < o + RADIX; d++) {
        const c = count[d]!;
        count[d] = sum;
        sum += c;
      }
      for (let r = 0; r < n; r++) {
        const k = keys[r]!;
        const pos = count[o + ((k >>> shift) & 0xff)]!++;
        keys2[pos] = k;
        tmp[pos] = perm[r]!;
      }
      const tk = keys;
      keys = keys2;
      keys2 = tk;
      const tp = perm;
      perm = tmp;
      tmp = tp;
    }
    this.keys = keys;
    this.keys2 = keys2;
    this.perm = perm;
    this.tmp = tmp;
    for (let r = 0; r < n; r++) ranks[perm[r]!] = r;
  }
}
