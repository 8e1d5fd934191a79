// The ONNX Runtime MatMulBackend: one-node Gemm graphs (alpha 1, no C input, transA/transB attributes) with
// symbolic dimensions, built once with onnx-buf; one InferenceSession per transpose combination, created on first
// use and reused for every call; `options.out` is passed to ORT as a pre-allocated output. Results match jsMatMul to f32 rounding. The only linalg module importing ORT.

import { create, toBinary } from '@bufbuild/protobuf';
import type * as Ort from 'onnxruntime-node';
import { ModelProtoSchema } from 'onnx-buf';
import { tensorTypeProto } from '../io/onnx/build.js';
import { loadNativeKernels } from '../plan/native.js';
import { checkMatMulArgs, type MatMulBackend, type MatMulOptions } from '../tensor/linalg/backend.js';
import { denseKernelsOf } from '../tensor/native-kernels.js';

/** Options of `createOrtMatMul`. */
export interface OrtMatMulOptions {
  /** ORT intra-op threads (MLAS GEMM threads). Default 2: this machine's core count; 1 thread runs at about half. */
  threads?: number;
  /**
   * Carry the native dense kernels (MatMulBackend.dense: inverse, polar factor, tridiagonalisation, on the same
   * thread count) when the addon is built and loads. Default true; WEIGHTKIT_NATIVE=0 also turns them off.
   */
  native?: boolean;
}

/** An ORT-backed MatMulBackend; `dispose()` releases its sessions (calls after that reject). */
export interface OrtMatMul extends MatMulBackend {
  readonly threads: number;
  dispose(): Promise<void>;
}


/** A one-node Gemm model: Y[M,N] = op(A)·op(B), A and B f32 with symbolic dims. */
export function buildGemmModel(transA: boolean, transB: boolean): Uint8Array {
  const attribute = [
    { name: 'transA', type: 2, i: transA ? 1n : 0n },
    { name: 'transB', type: 2, i: transB ? 1n : 0n },
  ];
  const model = create(ModelProtoSchema, {
    irVersion: 8n,
    producerName: 'weightkit',
    opsetImport: [{ domain: '', version: 17n }],
    graph: {
      name: 'matmul',
      node: [{ opType: 'Gemm', name: 'gemm', input: ['A', 'B'], output: ['Y'], attribute }],
      input: [
        { name: 'A', type: tensorTypeProto(transA ? ['K', 'M'] : ['M', 'K']) },
        { name: 'B', type: tensorTypeProto(transB ? ['N', 'K'] : ['K', 'N']) },
      ],
      output: [{ name: 'Y', type: tensorTypeProto(['M', 'N']) }],
    },
  });
  return toBinary(ModelProtoSchema, model);
}

/**
 * Create the ORT backend. Sessions use interOpNumThreads 1 and intraOpNumThreads `threads`; measured on this
 * machine about 60 GFLOP/s on 1 thread and 130 on 2 for 1024³ (bench/linalg.ts). Products with a zero
 * dimension are answered in JS without calling ORT.
 */
export async function createOrtMatMul(options: OrtMatMulOptions = {}): Promise<OrtMatMul> {
  const threads = options.threads ?? 2;
  if (!Number.isSafeInteger(threads) || threads < 1) {
    throw new RangeError(`createOrtMatMul: threads must be a positive integer, got ${threads}`);
  }
  // loaded on first use: importing weightkit does not load the native addon
  const ort: typeof Ort = await import('onnxruntime-node');
  const sessionOptions: Ort.InferenceSession.SessionOptions = {
    interOpNumThreads: 1,
    intraOpNumThreads: threads,
    executionMode: 'sequential',
    // no spinning: between products the caller's JS and the native dense kernels need both cores, and ORT's idle
    // workers spinning on them slowed everything in between (and the products after) by up to 2x in TSV-M
    extra: { session: { intra_op: { allow_spinning: '0' } } },
    graphOptimizationLevel: 'all',
  };
  const sessions = new Map<number, Promise<Ort.InferenceSession>>();
  let disposed = false;
  const session = (transA: boolean, transB: boolean): Promise<Ort.InferenceSession> => {
    const key = (transA ? 1 : 0) | (transB ? 2 : 0);
    let s = sessions.get(key);
    if (s === undefined) {
      s = ort.InferenceSession.create(buildGemmModel(transA, transB), sessionOptions);
      sessions.set(key, s);
    }
    return s;
  };
  await session(false, false); // fail early if ORT cannot load
  const native = options.native === false ? undefined : loadNativeKernels();
  return {
    name: `ort-${threads}t`,
    threads,
    ...(native !== undefined ? { dense: denseKernelsOf(native, threads) } : {}),
    async matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number, opts?: MatMulOptions): Promise<Float32Array> {
      if (disposed) throw new RangeError('ort matmul: backend used after dispose()');
      checkMatMulArgs(a, b, m, k, n, opts);
      const into = opts?.out;
      if (m === 0 || n === 0 || k === 0) return into !== undefined ? into.fill(0) : new Float32Array(m * n);
      const transA = opts?.transA === true;
      const transB = opts?.transB === true;
      const s = await session(transA, transB);
      const A = new ort.Tensor('float32', a, transA ? [k, m] : [m, k]);
      const B = new ort.Tensor('float32', b, transB ? [n, k] : [k, n]);
      if (into !== undefined) {
        // a pre-allocated output: ORT's Gemm writes straight into the caller's memory (no fresh array, no copy)
        await s.run({ A, B }, { Y: new ort.Tensor('float32', into, [m, n]) });
        return into;
      }
      const out = await s.run({ A, B });
      const y = out['Y']!;
      const data = y.data as Float32Array;
      y.dispose();
      return data;
    },
    async dispose(): Promise<void> {
      if (disposed) return;
      disposed = true;
      const all = [...sessions.values()];
      sessions.clear();
      for (const s of all) await (await s).release();
    },
  };
}
