// Test helpers for LoRA: hand-made PEFT adapter folders and fine-tunes with a known low-rank task vector.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeSafetensors } from '../../src/io/safetensors/writer.js';
import { SeededRandom } from '../../src/tensor/rng.js';
import { makeTensor, type Tensor } from '../../src/tensor/tensor.js';
import { TINY_SHAPES } from '../plan/helpers.js';

export interface Factor {
  shape: number[];
  data: Float32Array;
}

export function randomFactor(shape: number[], seed: number): Factor {
  const rng = new SeededRandom(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.fround(rng.normal() * 0.3);
  return { shape, data };
}

/** Write an adapter folder: tensors by full PEFT name, config as given (`undefined` config = no config file). */
export async function writeAdapter(dir: string, tensors: Record<string, Factor>, config: object | string | undefined): Promise<void> {
  await mkdir(dir, { recursive: true });
  const t: Record<string, Tensor> = {};
  for (const [name, f] of Object.entries(tensors)) t[name] = makeTensor('F32', f.shape, f.data);
  if (Object.keys(t).length > 0) await writeSafetensors(join(dir, 'adapter_model.safetensors'), t);
  if (config !== undefined) await writeFile(join(dir, 'adapter_config.json'), typeof config === 'string' ? config : JSON.stringify(config));
}

/** ΔW = scale·B·A (transposed: (B·A)ᵀ) with f64 sums over k ascending, rounded once to f32. */
export function expectedDelta(a: Factor, b: Factor, scale: number, transposed: boolean): Float32Array {
  const r = a.shape[0]!;
  const aCols = a.data.length / r;
  const bRows = b.shape[0]!;
  const out = new Float32Array(bRows * aCols);
  for (let i = 0; i < bRows; i++) {
    for (let j = 0; j < aCols; j++) {
      let s = 0;
      for (let k = 0; k < r; k++) s += b.data[i * r + k]! * a.data[k * aCols + j]!;
      if (transposed) out[j * bRows + i] = scale * s;
      else out[i * aCols + j] = scale * s;
    }
  }
  return out;
}

/** τ = Σ σ_j e_{p_j} f_{q_j}ᵀ for distinct rows p and columns q: singular values exactly σ. */
export function knownSpectrum(name: string, sigmas: readonly number[]): Float32Array {
  const [m, n] = TINY_SHAPES[name]!;
  const out = new Float32Array(m! * n!);
  sigmas.forEach((s, j) => (out[j * n! + ((j * 3 + 1) % n!)] = s));
  return out;
}

/** τ = U·Vᵀ with random U (m×k), V (n×k): rank k (almost surely). */
export function lowRank(name: string, k: number, seed: number): Float32Array {
  const [m, n] = TINY_SHAPES[name]!;
  const u = randomFactor([m!, k], seed).data;
  const v = randomFactor([n!, k], seed + 1).data;
  const out = new Float32Array(m! * n!);
  for (let i = 0; i < m!; i++) for (let j = 0; j < n!; j++) {
    let s = 0;
    for (let c = 0; c < k; c++) s += u[i * k + c]! * v[j * k + c]!;
    out[i * n! + j] = s;
  }
  return out;
}

export function addInto(base: Map<string, Float32Array>, deltas: Record<string, Float32Array>): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [k, v] of base) {
    const d = deltas[k];
    out.set(k, d ? v.map((x, i) => x + d[i]!) : v.slice());
  }
  return out;
}

export function relError(tau: Float32Array, approx: Float32Array): number {
  let e = 0;
  let n = 0;
  for (let i = 0; i < tau.length; i++) {
    e += (tau[i]! - approx[i]!) ** 2;
    n += tau[i]! ** 2;
  }
  return Math.sqrt(e / n);
}
