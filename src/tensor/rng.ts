// Seeded randomness. Counter-based: the random number for element i of a stream depends only on the stream key
// and i, so results are the same at any chunking, thread count or processing order. Pure; never the unseeded global random.

/** 32-bit avalanche mix (lowbias32 by Chris Wellons' hash prospector). */
export function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** FNV-1a over the UTF-16 code units of a string, then mixed. */
export function hashString(s: string, seed = 0): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return mix32(h);
}

/** The key of one random stream: two 32-bit words derived from (seed, tensor name, model index, purpose). */
export interface StreamKey {
  readonly k0: number;
  readonly k1: number;
}

export function streamKey(seed: number, tensor: string, modelIndex: number, purpose = ''): StreamKey {
  const s = Number.isSafeInteger(seed) ? seed : 0;
  const lo = s >>> 0;
  const hi = Math.floor(s / 2 ** 32) >>> 0;
  const k0 = mix32(hashString(tensor, lo) ^ mix32(modelIndex + 0x9e3779b9));
  const k1 = mix32(hashString(purpose, hi) ^ mix32(k0 + 0x632be5ab) ^ mix32(modelIndex ^ 0x85ebca6b));
  return { k0, k1 };
}

/** Uniform 32-bit integer for element `i` of a stream (i < 2^32). */
export function randomU32(key: StreamKey, i: number): number {
  return mix32(mix32((i ^ key.k0) >>> 0) ^ key.k1);
}

/** Uniform float in [0, 1) with 2^-32 resolution for element `i`. */
export function randomUnit(key: StreamKey, i: number): number {
  return randomU32(key, i) / 4294967296;
}

/**
 * Fill `out[j]` with uniform [0,1) values for elements start+j: the same numbers whatever the chunking.
 * Used by DARE/DELLA masks.
 */
export function fillUniform(key: StreamKey, start: number, out: Float64Array | Float32Array): void {
  const k0 = key.k0;
  const k1 = key.k1;
  const n = out.length;
  for (let j = 0; j < n; j++) {
    let x = ((start + j) ^ k0) >>> 0;
    x ^= x >>> 16;
    x = Math.imul(x, 0x7feb352d);
    x ^= x >>> 15;
    x = Math.imul(x, 0x846ca68b);
    x ^= x >>> 16;
    x ^= k1;
    x ^= x >>> 16;
    x = Math.imul(x, 0x7feb352d);
    x ^= x >>> 15;
    x = Math.imul(x, 0x846ca68b);
    x ^= x >>> 16;
    out[j] = (x >>> 0) / 4294967296;
  }
}

/** A small sequential PRNG (xoshiro128**) for sampling tasks where element-addressing is not needed. */
export class SeededRandom {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.a = mix32(seed >>> 0 || 0x9e3779b9);
    this.b = mix32(this.a ^ 0x85ebca6b);
    this.c = mix32(this.b ^ 0xc2b2ae35);
    this.d = mix32(this.c ^ 0x27d4eb2f) || 1;
  }

  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    let u = this.next();
    while (u === 0) u = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }

  /**
   * Fill `out` with standard normals, both Box-Muller outputs of each uniform pair used (about twice as fast as
   * `normal()` per element; a different stream than repeated `normal()` calls).
   */
  fillNormal(out: Float32Array | Float64Array): void {
    for (let i = 0; i < out.length; i += 2) {
      let u = this.next();
      while (u === 0) u = this.next();
      const r = Math.sqrt(-2 * Math.log(u));
      const t = 2 * Math.PI * this.next();
      out[i] = r * Math.cos(t);
      if (i + 1 < out.length) out[i + 1] = r * Math.sin(t);
    }
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
