// Test helper: builds small ONNX models with onnx-buf (an MLP x[N,8] -> MatMul W1[8,16] -> Add b1 -> Relu ->
// MatMul W2[16,4] -> Add b2 -> y) in F32/F16/BF16, with raw_data, typed fields or external data, plus a JS
// reference forward pass. Deterministic (seeded LCG). Used by tests and scripts/make-hostile-onnx.ts.

import { create, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { ModelProtoSchema, NodeProtoSchema, TensorProtoSchema, TensorProto_DataLocation, type TensorProto } from 'onnx-buf';
import { f32ToBf16, f32ToF16 } from '../../../src/tensor/convert.js';
import { tensorTypeProto } from '../../../src/io/onnx/build.js';

export type WeightDType = 'F32' | 'F16' | 'BF16';
export const ONNX_CODE: Record<WeightDType, number> = { F32: 1, F16: 10, BF16: 16 };

export interface MlpWeights {
  W1: Float32Array; // [8, 16]
  b1: Float32Array; // [16]
  W2: Float32Array; // [16, 4]
  b2: Float32Array; // [4]
}

export const MLP_SHAPES: Record<keyof MlpWeights, number[]> = { W1: [8, 16], b1: [16], W2: [16, 4], b2: [4] };
export const MLP_NAMES = ['W1', 'b1', 'W2', 'b2'] as const;

/** Deterministic uniform values in [-scale, scale). */
export function seeded(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 2 ** 32) * 2 - 1) * scale;
  }
  return out;
}

export function mlpWeights(seed: number): MlpWeights {
  return {
    W1: seeded(8 * 16, seed + 1, 0.5),
    b1: seeded(16, seed + 2, 0.1),
    W2: seeded(16 * 4, seed + 3, 0.5),
    b2: seeded(4, seed + 4, 0.1),
  };
}

/** Reference forward pass in f64 accumulators. */
export function mlpForward(x: Float32Array, n: number, w: MlpWeights): Float32Array {
  const h = new Float64Array(n * 16);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < 16; j++) {
      let acc = 0;
      for (let k = 0; k < 8; k++) acc += x[i * 8 + k]! * w.W1[k * 16 + j]!;
      h[i * 16 + j] = Math.max(0, acc + w.b1[j]!);
    }
  }
  const y = new Float32Array(n * 4);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < 4; j++) {
      let acc = 0;
      for (let k = 0; k < 16; k++) acc += h[i * 16 + k]! * w.W2[k * 4 + j]!;
      y[i * 4 + j] = acc + w.b2[j]!;
    }
  }
  return y;
}

/** Bytes of f32 values stored as `dtype`. */
export function encodeAs(dtype: WeightDType, v: Float32Array): Uint8Array<ArrayBuffer> {
  const data = dtype === 'F32' ? Float32Array.from(v) : dtype === 'F16' ? f32ToF16(v) : f32ToBf16(v);
  return new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
}

export interface MlpOptions {
  weights?: MlpWeights;
  dtype?: WeightDType;
  /** raw_data (default), typed fields (float_data / int32_data), or external data in `externalName`. */
  storage?: 'raw' | 'typed' | 'external';
  externalName?: string;
  /** Extra initializers appended to the graph (not used by any node). */
  extra?: MessageInitShape<typeof TensorProtoSchema>[];
}

export interface BuiltModel {
  bytes: Uint8Array;
  /** External data bytes (storage 'external'). */
  external?: Uint8Array;
}

function tensorInit(
  name: string,
  dtype: WeightDType,
  dims: number[],
  v: Float32Array,
  storage: 'raw' | 'typed' | 'external',
  ext: { name: string; chunks: Uint8Array[]; offset: number },
): MessageInitShape<typeof TensorProtoSchema> {
  const base = { name, dataType: ONNX_CODE[dtype], dims: dims.map(BigInt), docString: `weight ${name}` };
  const bytes = encodeAs(dtype, v);
  if (storage === 'raw') return { ...base, rawData: bytes };
  if (storage === 'typed') {
    if (dtype === 'F32') return { ...base, floatData: [...v] };
    const u16 = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2);
    return { ...base, int32Data: [...u16] };
  }
  // external: contiguous, deliberately unaligned offsets (a valid ONNX file need not align)
  const offset = ext.offset;
  ext.chunks.push(bytes);
  ext.offset += bytes.length;
  return {
    ...base,
    dataLocation: TensorProto_DataLocation.EXTERNAL,
    externalData: [
      { key: 'location', value: ext.name },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(bytes.length) },
    ],
  };
}

export function buildMlp(options: MlpOptions = {}): BuiltModel {
  const w = options.weights ?? mlpWeights(1);
  const dtype = options.dtype ?? 'F32';
  const storage = options.storage ?? 'raw';
  const ext = { name: options.externalName ?? 'mlp.bin', chunks: [] as Uint8Array[], offset: 0 };
  const initializer = MLP_NAMES.map((n) => tensorInit(n, dtype, MLP_SHAPES[n], w[n], storage, ext));
  for (const e of options.extra ?? []) initializer.push(e);
  const nodes: MessageInitShape<typeof NodeProtoSchema>[] = [];
  const f = (n: string): string => (dtype === 'F32' ? n : `${n}_f32`);
  if (dtype !== 'F32') {
    for (const n of MLP_NAMES) {
      nodes.push({ opType: 'Cast', name: `cast_${n}`, input: [n], output: [f(n)], attribute: [{ name: 'to', type: 2, i: 1n }] });
    }
  }
  nodes.push(
    { opType: 'MatMul', name: 'mm1', input: ['x', f('W1')], output: ['h0'] },
    { opType: 'Add', name: 'add1', input: ['h0', f('b1')], output: ['h1'] },
    { opType: 'Relu', name: 'relu', input: ['h1'], output: ['h2'] },
    { opType: 'MatMul', name: 'mm2', input: ['h2', f('W2')], output: ['h3'] },
    { opType: 'Add', name: 'add2', input: ['h3', f('b2')], output: ['y'] },
  );
  const model = create(ModelProtoSchema, {
    irVersion: 8n,
    producerName: 'weightkit-test',
    producerVersion: '0.1',
    docString: 'a tiny MLP',
    opsetImport: [{ domain: '', version: 17n }],
    metadataProps: [
      { key: 'purpose', value: 'unit test' },
      { key: 'seed', value: '1' },
    ],
    graph: {
      name: 'mlp',
      docString: 'graph doc',
      node: nodes,
      initializer,
      input: [{ name: 'x', type: tensorTypeProto(['N', 8]) }],
      output: [{ name: 'y', type: tensorTypeProto(['N', 4]) }],
      metadataProps: [{ key: 'graph-note', value: 'kept verbatim' }],
    },
  });
  const bytes = toBinary(ModelProtoSchema, model);
  if (storage !== 'external') return { bytes };
  const total = ext.chunks.reduce((a, c) => a + c.length, 0);
  const data = new Uint8Array(total);
  let o = 0;
  for (const c of ext.chunks) {
    data.set(c, o);
    o += c.length;
  }
  return { bytes, external: data };
}

/** Write a built model (and its external data next to it). Returns the model path. */
export function writeMlp(dir: string, file: string, options: MlpOptions = {}): string {
  const built = buildMlp(options);
  const p = path.join(dir, file);
  writeFileSync(p, built.bytes);
  if (built.external !== undefined) writeFileSync(path.join(dir, options.externalName ?? 'mlp.bin'), built.external);
  return p;
}

/** A bare model whose graph holds only the given initializers (for hostile fixtures). */
export function buildInitializersOnly(initializer: MessageInitShape<typeof TensorProtoSchema>[]): Uint8Array {
  return toBinary(
    ModelProtoSchema,
    create(ModelProtoSchema, { irVersion: 8n, opsetImport: [{ domain: '', version: 17n }], graph: { name: 'g', initializer } }),
  );
}

export type { TensorProto };
