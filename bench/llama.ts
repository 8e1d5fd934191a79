// Deterministic Llama-shaped checkpoints for benchmarks: tensor names and shapes of a Hugging Face Llama, filled
// with seeded pseudo-random bf16 values (base) or base + a small seeded perturbation (fine-tunes).

import { DTYPE_INFO } from '../src/tensor/dtype.js';
import type { TensorDecl } from '../src/io/types.js';
import { demoTensorDecls } from '../src/demo/family.js';

export interface LlamaShape {
  vocab: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
}

/** TinyLlama-1.1B shapes: 1.10 B parameters, 2.2 GB in bf16. */
export const LLAMA_1B: LlamaShape = { vocab: 32000, hidden: 2048, intermediate: 5632, layers: 22, heads: 32, kvHeads: 4 };
/** Llama-2-7B shapes: 6.74 B parameters. */
export const LLAMA_7B: LlamaShape = { vocab: 32000, hidden: 4096, intermediate: 11008, layers: 32, heads: 32, kvHeads: 32 };

/** Hugging Face Llama names and shapes (the demo family's declarations) in the given dtype. */
export function llamaDecls(s: LlamaShape, dtype: TensorDecl['dtype'] = 'BF16'): TensorDecl[] {
  return demoTensorDecls(s).map((d) => ({ ...d, dtype }));
}

export function declBytes(decls: readonly TensorDecl[]): number {
  let n = 0;
  for (const d of decls) n += d.shape.reduce((a, b) => a * b, 1) * DTYPE_INFO[d.dtype].bytes;
  return n;
}

/** Stable 32-bit hash of a string (FNV-1a), to seed per-tensor generators. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * Fill `out` with bf16 bit patterns of values ~ uniform(-scale, scale) (xorshift32 from `seed`), plus, when
 * `delta` > 0, a fine-tune perturbation drawn from a second stream. Deterministic for (seed, deltaSeed).
 */
export function fillBf16(out: Uint16Array, seed: number, scale: number, deltaSeed = 0, delta = 0): void {
  let x = seed | 1;
  let y = deltaSeed | 1;
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const inv = 1 / 4294967296;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    let v = ((x >>> 0) * inv * 2 - 1) * scale;
    if (delta > 0) {
      y ^= y << 13;
      y ^= y >>> 17;
      y ^= y << 5;
      v += ((y >>> 0) * inv * 2 - 1) * delta;
    }
    f[0] = v;
    const b = u[0]!;
    out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
}
