// Test helpers for src/eval: the small MLP (test/io/onnx/build-model.ts) as a graph, generated labelled datasets
// (safetensors and .npy), weight sets as safetensors, and an independent JS computation of accuracy and CE.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeNpy } from '../../src/eval/npy.js';
import { writeSafetensors } from '../../src/io/safetensors/writer.js';
import { fromF32 } from '../../src/tensor/convert.js';
import type { DType } from '../../src/tensor/dtype.js';
import { makeTensor } from '../../src/tensor/tensor.js';
import { MLP_NAMES, MLP_SHAPES, buildMlp, mlpForward, mlpWeights, seeded, type MlpWeights } from '../io/onnx/build-model.js';

export { MLP_NAMES, mlpForward, mlpWeights, seeded, type MlpWeights };

const created: string[] = [];

export async function evalTempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'weightkit-evaltest-'));
  created.push(d);
  return d;
}

/** Remove every folder evalTempDir made in this test file (call in afterAll). */
export async function removeEvalTempDirs(): Promise<void> {
  for (const d of created.splice(0)) await rm(d, { recursive: true, force: true });
}

/** Write the F32 MLP graph with `weights` (default seed 1). */
export async function writeGraph(dir: string, name = 'mlp.onnx', weights: MlpWeights = mlpWeights(1)): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, buildMlp({ weights }).bytes);
  return p;
}

/** Inputs [n, 8] and labels: argmax of the MLP with `labelWeights` (a different model, so accuracy is partial). */
export function makeData(n: number, seed = 77, labelWeights: MlpWeights = mlpWeights(9)): { x: Float32Array; y: Int32Array } {
  const x = seeded(n * 8, seed, 2);
  const logits = mlpForward(x, n, labelWeights);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let b = 0;
    for (let j = 1; j < 4; j++) if (logits[i * 4 + j]! > logits[i * 4 + b]!) b = j;
    y[i] = b;
  }
  return { x, y };
}

export async function writeDataset(
  file: string,
  x: Float32Array,
  y: ArrayLike<number>,
  options: { inputDType?: DType; labelDType?: 'I64' | 'I32' | 'U8'; inputName?: string; labelName?: string; inputShape?: number[] } = {},
): Promise<string> {
  const n = y.length;
  const inputDType = options.inputDType ?? 'F32';
  const labelDType = options.labelDType ?? 'I64';
  const labels =
    labelDType === 'I64'
      ? makeTensor('I64', [n], BigInt64Array.from(Array.from(y, (v) => BigInt(v))))
      : labelDType === 'I32'
        ? makeTensor('I32', [n], Int32Array.from(y))
        : makeTensor('U8', [n], Uint8Array.from(y));
  await writeSafetensors(file, {
    [options.inputName ?? 'inputs']: makeTensor(inputDType, options.inputShape ?? [n, x.length / n], fromF32(inputDType, x)),
    [options.labelName ?? 'labels']: labels,
  });
  return file;
}

export async function writeNpyPair(dir: string, x: Float32Array, y: Int32Array, shape = [y.length, x.length / y.length]): Promise<void> {
  await writeFile(join(dir, 'inputs.npy'), encodeNpy('F32', shape, x));
  await writeFile(join(dir, 'labels.npy'), encodeNpy('I32', [y.length], y));
}

/** MLP weights as a safetensors checkpoint with the graph's initializer names. */
export async function writeWeights(file: string, w: MlpWeights, dtype: DType = 'F32'): Promise<string> {
  const t: Record<string, ReturnType<typeof makeTensor>> = {};
  for (const n of MLP_NAMES) t[n] = makeTensor(dtype, MLP_SHAPES[n], fromF32(dtype, w[n]));
  await writeSafetensors(file, t);
  return file;
}

/** Independent JS accuracy and mean cross-entropy of the reference forward pass. */
export function jsMetrics(x: Float32Array, y: Int32Array, w: MlpWeights): { accuracy: number; ce: number; preds: number[] } {
  const n = y.length;
  const logits = mlpForward(x, n, w);
  let right = 0;
  let ce = 0;
  const preds: number[] = [];
  for (let i = 0; i < n; i++) {
    const row = Array.from(logits.subarray(i * 4, i * 4 + 4));
    const p = row.indexOf(Math.max(...row));
    preds.push(p);
    if (p === y[i]) right++;
    const z = row.reduce((a, v) => a + Math.exp(v), 0);
    ce += -Math.log(Math.exp(row[y[i]!]!) / z);
  }
  return { accuracy: right / n, ce: ce / n, preds };
}
