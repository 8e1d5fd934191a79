// Merge-then-evaluate loop latency: a ~100 MB f32 ONNX MLP (2048 -> 4096 -> 4096 -> 10) in the OS temp dir.
// Per candidate: patch the graph with new weights (external data) + create the ORT session (disable_prepacking) +
// run one batch + close, against session creation + one batch + close on the unpatched model, in the same run,
// rounds interleaved; medians. Candidates are F32 and BF16 safetensors checkpoints (BF16 is cast at the boundary).

import { create, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ModelProtoSchema, type TensorProtoSchema } from 'onnx-buf';
import { openEvalSession } from '../src/eval/session.js';
import { patchOnnx } from '../src/io/onnx/patch.js';
import { writeSafetensors } from '../src/io/safetensors/writer.js';
import { fromF32 } from '../src/tensor/convert.js';
import type { DType } from '../src/tensor/dtype.js';
import { makeTensor } from '../src/tensor/tensor.js';
import type { BenchResult } from './types.js';
import { tensorTypeProto } from '../src/io/onnx/build.js';

const IN = 2048;
const HIDDEN = 4096;
const CLASSES = 10;
const BATCH = 256;
const LAYERS: ReadonlyArray<readonly [string, number[]]> = [
  ['W1', [IN, HIDDEN]],
  ['b1', [HIDDEN]],
  ['W2', [HIDDEN, HIDDEN]],
  ['b2', [HIDDEN]],
  ['W3', [HIDDEN, CLASSES]],
  ['b3', [CLASSES]],
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Seeded uniform values in [-scale, scale) (xorshift32). */
function fill(n: number, seed: number, scale: number): Float32Array {
  const out = new Float32Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = ((x >>> 0) / 4294967296 - 0.5) * 2 * scale;
  }
  return out;
}

function weights(seed: number): Map<string, Float32Array> {
  const m = new Map<string, Float32Array>();
  LAYERS.forEach(([name, shape], i) => {
    const n = shape.reduce((a, b) => a * b, 1);
    m.set(name, fill(n, seed * 31 + i + 1, 1 / Math.sqrt(shape[0]!)));
  });
  return m;
}

/** The MLP as one inline .onnx (raw_data initializers, symbolic batch dim). */
function buildModel(w: Map<string, Float32Array>): Uint8Array {
  const initializer: MessageInitShape<typeof TensorProtoSchema>[] = LAYERS.map(([name, shape]) => {
    const v = w.get(name)!;
    return { name, dataType: 1, dims: shape.map(BigInt), rawData: new Uint8Array(v.buffer as ArrayBuffer, v.byteOffset, v.byteLength) };
  });
  return toBinary(
    ModelProtoSchema,
    create(ModelProtoSchema, {
      irVersion: 8n,
      producerName: 'weightkit-bench',
      opsetImport: [{ domain: '', version: 17n }],
      graph: {
        name: 'mlp',
        node: [
          { opType: 'MatMul', input: ['x', 'W1'], output: ['h1'] },
          { opType: 'Add', input: ['h1', 'b1'], output: ['h2'] },
          { opType: 'Relu', input: ['h2'], output: ['h3'] },
          { opType: 'MatMul', input: ['h3', 'W2'], output: ['h4'] },
          { opType: 'Add', input: ['h4', 'b2'], output: ['h5'] },
          { opType: 'Relu', input: ['h5'], output: ['h6'] },
          { opType: 'MatMul', input: ['h6', 'W3'], output: ['h7'] },
          { opType: 'Add', input: ['h7', 'b3'], output: ['y'] },
        ],
        initializer,
        input: [{ name: 'x', type: tensorTypeProto(['N', IN]) }],
        output: [{ name: 'y', type: tensorTypeProto(['N', CLASSES]) }],
      },
    }),
  );
}

async function writeCandidate(file: string, w: Map<string, Float32Array>, dtype: DType): Promise<void> {
  const t: Record<string, ReturnType<typeof makeTensor>> = {};
  for (const [name, shape] of LAYERS) t[name] = makeTensor(dtype, shape, fromF32(dtype, w.get(name)!));
  await writeSafetensors(file, t);
}

/** One evaluation: (patch +) session + one batch + close; returns wall ms and the split. */
async function once(model: string, x: Float32Array, weightsFile?: string): Promise<{ total: number; patch: number; create: number; run: number }> {
  const t0 = performance.now();
  const s = await openEvalSession(model, weightsFile === undefined ? {} : { weights: weightsFile });
  const t1 = performance.now();
  await s.run(x, [BATCH, IN]);
  const t2 = performance.now();
  await s.close();
  const total = performance.now() - t0;
  return { total, patch: s.timing.patchMs, create: s.timing.createMs, run: t2 - t1 };
}

export async function benchEval(opts: { rounds?: number } = {}): Promise<BenchResult[]> {
  const rounds = opts.rounds ?? 5;
  const dir = await mkdtemp(join(tmpdir(), 'weightkit-bench-eval-'));
  try {
    const inline = join(dir, 'mlp.onnx');
    await writeFile(inline, buildModel(weights(1)));
    const external = join(dir, 'mlp-ext.onnx');
    await patchOnnx({ model: inline, out: external, replacements: new Map(), external: true });
    const modelBytes = (await stat(inline)).size;
    const candF32 = join(dir, 'cand-f32.safetensors');
    const candBf16 = join(dir, 'cand-bf16.safetensors');
    await writeCandidate(candF32, weights(2), 'F32');
    await writeCandidate(candBf16, weights(3), 'BF16');
    const x = fill(BATCH * IN, 99, 1);

    const configs = {
      'unpatched inline .onnx': () => once(inline, x),
      'unpatched .onnx + external data': () => once(external, x),
      'patched with F32 candidate': () => once(inline, x, candF32),
      'patched with BF16 candidate': () => once(inline, x, candBf16),
    };
    const times = new Map<string, Array<{ total: number; patch: number; create: number; run: number }>>();
    for (const k of Object.keys(configs)) times.set(k, []);
    for (const f of Object.values(configs)) await f(); // warm-up: page cache, ORT init
    for (let r = 0; r < rounds; r++) {
      for (const [k, f] of Object.entries(configs)) times.get(k)!.push(await f());
    }
    const med = (k: string, f: 'total' | 'patch' | 'create' | 'run') => median(times.get(k)!.map((t) => t[f]));
    const base = med('unpatched inline .onnx', 'total');
    const results: BenchResult[] = [];
    for (const k of Object.keys(configs)) {
      const total = med(k, 'total');
      results.push({
        name: `${k}: per candidate`,
        value: total,
        unit: 'ms',
        note: `patch ${med(k, 'patch').toFixed(0)} + session ${med(k, 'create').toFixed(0)} + batch ${med(k, 'run').toFixed(0)} ms; ${(total / base).toFixed(2)}x unpatched`,
      });
    }
    results.push({ name: 'model size', value: modelBytes / 1e6, unit: 'MB', note: `batch ${BATCH}, ${rounds} rounds, medians` });
    return results;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  for (const r of await benchEval()) {
    const v = r.value >= 100 ? r.value.toFixed(0) : r.value.toFixed(1);
    console.log(`${r.name.padEnd(52)} ${v.padStart(8)} ${r.unit.padEnd(4)} ${r.note ?? ''}`);
  }
}
