// A checkpoint known only from a plan: the tensor list an earlier stage of a multi-document recipe will write.
// Lets `--dry-run` plan later stages before anything exists. Reading data from it is a usage error.

import { UsageError } from '../errors.js';
import type { CheckpointReader, ShardInfo, TensorInfo } from '../io/types.js';
import type { Tensor } from '../tensor/tensor.js';
import type { MergePlan } from './plan.js';

export function plannedCheckpoint(plan: MergePlan, path: string): CheckpointReader {
  const infos: TensorInfo[] = plan.tensors.map((t) => ({
    name: t.name,
    dtype: t.dtype,
    shape: t.shape,
    numel: t.shape.reduce((a, b) => a * b, 1),
    byteLength: t.byteLength,
    file: path,
  }));
  const byName = new Map(infos.map((i) => [i.name, i]));
  const noData = (): never => {
    throw new UsageError('USAGE', `${path} is planned but not written yet (dry run)`, { where: { file: path } });
  };
  return {
    format: 'safetensors-sharded',
    path,
    tensors: () => infos,
    has: (n) => byName.has(n),
    info: (n) => byName.get(n) ?? noData(),
    metadata: () => ({}),
    shards: (): ShardInfo[] => [{ file: path, byteLength: plan.outputBytes, tensorCount: infos.length }],
    read: async (): Promise<Tensor> => noData(),
    readBytes: async (): Promise<Uint8Array> => noData(),
    readF32: async (): Promise<Float32Array> => noData(),
    close: async () => undefined,
    [Symbol.asyncDispose]: async () => undefined,
  };
}
