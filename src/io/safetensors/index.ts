// The safetensors module's public surface: header validation, single-file and sharded readers and writers.
// Re-exports only; src/index.ts picks from here. Must not import anything outside src/io/safetensors.

export {
  MAX_HEADER_BYTES,
  METADATA_KEY,
  findDuplicateKey,
  parseSafetensorsHeader,
  readHeaderByteLength,
  type DuplicateKey,
  type SafetensorsEntry,
  type SafetensorsHeader,
} from './header.js';
export { CONVERT_CHUNK_BYTES, openSafetensors, type SafetensorsOpenOptions, type SafetensorsReader } from './reader.js';
export { MAX_INDEX_BYTES, openShardedSafetensors, parseShardIndex, type ShardIndex } from './sharded.js';
export {
  LAYOUT_DTYPE_ORDER,
  compareNames,
  openSafetensorsWriter,
  planSafetensors,
  writeSafetensors,
  type PlannedTensor,
  type SafetensorsLayout,
  type SafetensorsWriter,
  type SafetensorsWriterOptions,
  type TensorLocation,
} from './writer.js';
export {
  DEFAULT_SHARD_SIZE,
  INDEX_FILE,
  SINGLE_FILE,
  formatShardIndex,
  openShardedWriter,
  planShards,
  shardFileName,
  type ShardPlan,
  type ShardedWriter,
  type ShardedWriterOptions,
} from './sharded-writer.js';
