// `inspect` as data: what a checkpoint holds (tensors, parameter counts and bytes per dtype, metadata, shard
// layout), computed from validated headers only, without reading tensor bytes. Rendering is src/cli's job.

import { DTYPE_INFO, type DType } from '../tensor/dtype.js';
import { openCheckpointPath } from './open.js';
import type { CheckpointFormat, CheckpointReader } from './types.js';

export interface InspectTensor {
  name: string;
  dtype: DType;
  shape: number[];
  numel: number;
  byteLength: number;
  file: string;
}

export interface InspectDTypeTotal {
  dtype: DType;
  tensors: number;
  parameters: number;
  byteLength: number;
}

export interface InspectReport {
  path: string;
  format: CheckpointFormat;
  tensorCount: number;
  parameters: number;
  byteLength: number;
  byDType: InspectDTypeTotal[];
  metadata: Record<string, string>;
  shards: { file: string; byteLength: number; tensorCount: number }[];
  tensors: InspectTensor[];
}

/** Summarise an open checkpoint (no tensor data is read). */
export function describeCheckpoint(reader: CheckpointReader): InspectReport {
  const totals = new Map<DType, InspectDTypeTotal>();
  let parameters = 0;
  let byteLength = 0;
  const tensors: InspectTensor[] = [];
  for (const t of reader.tensors()) {
    tensors.push({ name: t.name, dtype: t.dtype, shape: [...t.shape], numel: t.numel, byteLength: t.byteLength, file: t.file });
    parameters += t.numel;
    byteLength += t.byteLength;
    let agg = totals.get(t.dtype);
    if (!agg) {
      agg = { dtype: t.dtype, tensors: 0, parameters: 0, byteLength: 0 };
      totals.set(t.dtype, agg);
    }
    agg.tensors++;
    agg.parameters += t.numel;
    agg.byteLength += t.byteLength;
  }
  const byDType = [...totals.values()].sort(
    (a, b) => b.byteLength - a.byteLength || DTYPE_INFO[a.dtype].bits - DTYPE_INFO[b.dtype].bits,
  );
  return {
    path: reader.path,
    format: reader.format,
    tensorCount: tensors.length,
    parameters,
    byteLength,
    byDType,
    metadata: { ...reader.metadata() },
    shards: reader.shards().map((s) => ({ file: s.file, byteLength: s.byteLength, tensorCount: s.tensorCount })),
    tensors,
  };
}

/** Open a checkpoint (safetensors file, sharded folder or ONNX model), describe it, and close it. */
export async function inspectCheckpoint(path: string): Promise<InspectReport> {
  const reader = await openCheckpointPath(path);
  try {
    return describeCheckpoint(reader);
  } finally {
    await reader.close();
  }
}
