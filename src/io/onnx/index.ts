// The ONNX part of src/io: reader (initializers as a CheckpointReader, graph inputs/outputs) and patcher (new
// initializer values spliced into an otherwise byte-identical model). Re-exports only; must not import
// onnxruntime-node.

export { openOnnx, OnnxReader, type OnnxValueInfo } from './reader.js';
export {
  patchOnnx,
  EXTERNAL_AUTO_THRESHOLD_BYTES,
  EXTERNAL_MIN_TENSOR_BYTES,
  EXTERNAL_ALIGN_BYTES,
  EXTERNAL_LARGE_ALIGN_BYTES,
  PROTOBUF_LIMIT_BYTES,
  type PatchOnnxOptions,
  type PatchOnnxResult,
  type OnnxReplacements,
} from './patch.js';
