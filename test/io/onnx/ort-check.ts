// Test helper: load an MLP .onnx by path in onnxruntime-node (disable_prepacking, as the evaluation loop will) and
// compare its output with the JS reference forward pass of the weights the file is expected to hold.
// Only tests import onnxruntime-node.

import * as ort from 'onnxruntime-node';
import { expect } from 'vitest';
import { bf16ToF32, f16ToF32 } from '../../../src/tensor/convert.js';
import { MLP_NAMES, encodeAs, mlpForward, seeded, type MlpWeights, type WeightDType } from './build-model.js';

/** The values `v` take once stored as `dtype` (rounded to nearest even). */
export function roundTo(dtype: WeightDType, v: Float32Array): Float32Array {
  if (dtype === 'F32') return Float32Array.from(v);
  const b = encodeAs(dtype, v);
  const u16 = new Uint16Array(b.buffer, b.byteOffset, b.length / 2);
  return dtype === 'F16' ? f16ToF32(u16) : bf16ToF32(u16);
}

export function roundWeights(dtype: WeightDType, w: MlpWeights): MlpWeights {
  return { W1: roundTo(dtype, w.W1), b1: roundTo(dtype, w.b1), W2: roundTo(dtype, w.W2), b2: roundTo(dtype, w.b2) };
}

/** Run the model at `file` on a fixed batch and assert its output matches the reference for `expected` weights. */
export async function expectOrtMatches(file: string, expected: MlpWeights, n = 5): Promise<void> {
  const x = seeded(n * 8, 4242);
  const session = await ort.InferenceSession.create(file, {
    graphOptimizationLevel: 'disabled',
    extra: { session: { disable_prepacking: '1' } },
  });
  try {
    const out = await session.run({ x: new ort.Tensor('float32', x, [n, 8]) });
    const y = out['y']!;
    expect(y.dims).toEqual([n, 4]);
    const got = y.data as Float32Array;
    const ref = mlpForward(x, n, expected);
    for (let i = 0; i < ref.length; i++) {
      expect(Math.abs(got[i]! - ref[i]!)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(ref[i]!)));
    }
  } finally {
    await session.release();
  }
}

export { MLP_NAMES };
