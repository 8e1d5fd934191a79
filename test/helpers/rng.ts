// Seeded test streams (xorshift32): bit patterns for codec tests, uniforms for data. Never the unseeded random.

/** Uniform 32-bit unsigned integers. */
export function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

/** Uniform numbers in [0, 1) from the same stream. */
export function uniform01(seed: number): () => number {
  const next = xorshift32(seed);
  return () => next() / 4294967296;
}
