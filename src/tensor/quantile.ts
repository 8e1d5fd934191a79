// Exact ranks of magnitudes inside one short vector (a DELLA row) by an LSD radix pass over the IEEE bits of |x|:
// no comparison sort, linear time, deterministic. Equal magnitudes rank by element order (the earlier element
// ranks higher, matching select.ts where the earlier of two equal magnitudes is kept first). Pure; no node: imports.

const RADIX = 256;

/** Reusable ranker: scratch arrays grow to the longest vector seen and are then reused. */
export class MagnitudeRanker {
  private keys = new Uint32Array(0);
  private perm = new Int32Array(0);
  private tmp = new Int32Array(0);
  private readonly count = new Int32Array(RADIX);

  /**
   * ranks[j] = 0-based ascending rank of |x[j]| among x[0..n): the smallest magnitude gets 0, the largest n-1.
   * NaNs rank above every number. `ranks` must hold n elements.
   */
  rankInto(x: Float32Array, n: number, ranks: Int32Array): void {
    if (n === 0) return;
    if (this.keys.length < n) {
      this.keys = new Uint32Array(n);
      this.perm = new Int32Array(n);
      this.tmp = new Int32Array(n);
    }
    const bits = new Uint32Array(x.buffer, x.byteOffset, n);
    const keys = this.keys;
    let perm = this.perm;
    let tmp = this.tmp;
    for (let j = 0; j < n; j++) {
      keys[j] = bits[j]! & 0x7fffffff;
      // reversed start order: a stable ascending sort then places the later of two equal keys first (lower rank)
      perm[j] = n - 1 - j;
    }
    const count = this.count;
    for (let shift = 0; shift < 32; shift += 8) {
      count.fill(0);
      for (let j = 0; j < n; j++) count[(keys[j]! >>> shift) & 0xff]!++;
      if (count[(keys[0]! >>> shift) & 0xff] === n) continue; // every key has this digit: the pass is a no-op
      let sum = 0;
      for (let d = 0; d < RADIX; d++) {
        const c = count[d]!;
        count[d] = sum;
        sum += c;
      }
      for (let r = 0; r < n; r++) {
        const j = perm[r]!;
        tmp[count[(keys[j]! >>> shift) & 0xff]!++] = j;
      }
      const t = perm;
      perm = tmp;
      tmp = t;
    }
    this.perm = perm;
    this.tmp = tmp;
    for (let r = 0; r < n; r++) ranks[perm[r]!] = r;
  }
}
