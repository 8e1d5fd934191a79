// The public API of weightkit: explicit named exports only. Everything a user imports comes from here; the CLI
// calls the same functions.

export * from './errors.js';
export { WEIGHTKIT_VERSION } from './version.js';

// tensor core
export {
  DTYPES,
  DTYPE_INFO,
  parseDType,
  isDType,
  isFloatDType,
  dtypeFromOnnx,
  allocData,
  type DType,
  type DTypeInfo,
  type FloatDType,
  type TensorData,
} from './tensor/dtype.js';
export { makeTensor, numel, checkedNumel, formatShape, shapesEqual, tensorBytes, type Tensor } from './tensor/tensor.js';
export {
  bf16ToF32,
  f32ToBf16,
  f16ToF32,
  f32ToF16,
  f8e4m3ToF32,
  f8e5m2ToF32,
  f32ToF8e4m3,
  f32ToF8e5m2,
  toF32,
  fromF32,
  castTensor,
} from './tensor/convert.js';
export { SeededRandom, streamKey, fillUniform, type StreamKey } from './tensor/rng.js';
export { MagnitudeSelector, topKMagnitude, applyMagnitudeMaskInto, type MagnitudeThreshold } from './tensor/select.js';

// checkpoints
export type {
  CheckpointReader,
  CheckpointFormat,
  TensorInfo,
  ShardInfo,
  ReadRange,
  ReadF32Options,
  ReadBytesOptions,
  TensorDecl,
} from './io/types.js';
export { openCheckpointPath as openCheckpoint } from './io/open.js';
export {
  openSafetensors,
  openShardedSafetensors,
  parseSafetensorsHeader,
  openSafetensorsWriter,
  writeSafetensors,
  openShardedWriter,
  type SafetensorsReader,
  type SafetensorsWriter,
  type ShardedWriter,
  type ShardedWriterOptions,
} from './io/safetensors/index.js';
export { openOnnx, OnnxReader, patchOnnx, type OnnxValueInfo, type PatchOnnxOptions, type PatchOnnxResult } from './io/onnx/index.js';
export { inspectCheckpoint, describeCheckpoint, type InspectReport } from './io/inspect.js';
export {
  convertCheckpoint,
  patchOnnxFromWeights,
  type ConvertOptions,
  type ConvertResult,
  type PatchFromWeightsOptions,
  type PatchFromWeightsResult,
} from './io/convert.js';

// recipes, methods and merging
export type { MethodSpec, ParamSpec, ParamValue } from './recipe/spec.js';
export type { Recipe, RecipeDoc } from './recipe/types.js';
export { parseRecipe } from './recipe/load.js';
export { evalGradient } from './recipe/params.js';
export { METHODS as methods, getMethod, methodCatalog } from './merge/registry.js';
export { mergeTensors, mergeTensorsAsync, type MergeTensorsInputs, type MergeTensorsOptions } from './merge/run.js';
export type { MergeMethod, TensorMerger, TensorContext, Chunk } from './merge/types.js';
// `merge` is the CLI's: the SVD methods' matrix products on ONNX Runtime (loaded only for recipes that need it), so the
// API and `weightkit merge` write the same bytes
export { buildPlan, loadRecipe, type MergeOptions, type MergeResult, type MergeProgress, type LoadedRecipe } from './plan/merge.js';
export { mergeWithOrt as merge } from './eval/merge-with-ort.js';
export type { MergePlan, PlanTensor, PlanModel } from './plan/plan.js';

// task, time and robustness vectors; interpolation and soups
export {
  VECTOR_KINDS,
  VECTOR_METADATA_KEY,
  fingerprintCheckpoint,
  type VectorKind,
  type VectorMeta,
  type TensorEncoding,
} from './vectors/format.js';
export { openVector, type VectorReader } from './vectors/reader.js';
export { extractVector, type ExtractOptions, type ExtractResult } from './vectors/extract.js';
export { parseQuantizeSpec, type QuantizeSpec } from './vectors/quantize.js';
export { combineVectors, type CombineOptions, type CombineResult } from './vectors/combine.js';
export { parseVectorExpression, parseTerm, formatCombination, type LinearCombination, type LinearTerm } from './vectors/expression.js';
export {
  applyVectors,
  removeVectors,
  applyVectorPath,
  undoPathFor,
  type ApplyOptions,
  type ApplyResult,
  type RemoveOptions,
  type RemoveResult,
  type ApplyPathOptions,
  type ApplyPathResult,
  type PathPoint,
  type VectorTerm,
} from './vectors/apply.js';
export {
  extractSignature,
  signatureWeights,
  depthUnits,
  type SignatureOptions,
  type SignatureResult,
  type LayerRow,
} from './vectors/signature.js';
export { parseGrid, formatAlpha } from './vectors/grid.js';
export {
  quantizeLinear,
  quantizeLog,
  dequantizeLinearInto,
  dequantizeLogInto,
  quantizationError,
  sparsifyTopK,
  densifyRangeInto,
} from './tensor/vector-codecs.js';
export { runStream, type StreamJob, type StreamOptions, type ChunkView } from './vectors/stream.js';
export {
  interpolateModels,
  fisherAverage,
  type InterpolateOptions,
  type InterpolateResult,
  type FisherAverageOptions,
  type FisherAverageResult,
} from './vectors/interpolate.js';
export {
  uniformSoup,
  greedySoup,
  averageReader,
  type SoupEvaluator,
  type GreedySoupResult,
  type GreedySoupStep,
  type UniformSoupOptions,
} from './vectors/soup.js';

// linear algebra (small dense f64 kernels; big products through a MatMulBackend: JS, or ONNX Runtime)
export {
  jsMatMul,
  householderQr,
  jacobiSvd,
  symmetricEigen,
  randomizedSvd,
  truncatedSvd,
  polarFactor,
  orthonormalizeColumns,
  type MatMulBackend,
  type Matrix,
  type TruncatedSvd,
} from './tensor/linalg/index.js';
export { createOrtMatMul } from './eval/ort-matmul.js';

// evaluation through ONNX Runtime (loaded on first use)
export { evaluate, onnxEvaluator, type EvalReport } from './eval/evaluate.js';
export { openDataset, type Dataset } from './eval/dataset.js';
export { openEvalSession, type EvalSession } from './eval/session.js';
export { classificationMetrics, compareWithReference } from './eval/metrics.js';

// LoRA adapters (PEFT) in and out
export { openLoraAdapter, loraToVector } from './vectors/lora.js';
export { extractLora } from './vectors/lora-extract.js';

// analysis: spectra and LIFT principal weights
export { matrixSpectrum, readCheckpointSpectra, effectiveRank, stableRank, type MatrixSpectrum } from './analysis/spectra.js';
export { readPrincipalWeights, principalMask } from './analysis/principal.js';
export { polarNewtonSchulz, polarExact, type NewtonSchulzOptions, type NewtonSchulzResult } from './tensor/linalg/newton-schulz.js';
export { mergeWithOrt, recipeNeedsLinalg } from './eval/merge-with-ort.js';
export { sweep, sweepCsv, selectPoint, type SweepResult } from './eval/sweep.js';
export { search, type SearchResult } from './eval/search.js';
export { cmaesMinimize, Cmaes } from './eval/cmaes.js';
export { dawin, fitBetaMixture, dawinCoefficients, type DawinOptions, type DawinResult } from './eval/dawin.js';
export { loadEvalConfig, onnxScorer } from './eval/eval-config.js';
export { analyzeVectors, type VectorsReport, type AnalyzeVectorsOptions } from './analysis/vectors.js';
export { analyzeDistance, classicalMds, averageLinkage, type DistanceReport } from './analysis/distance.js';
export { analyzeMerge, type MergeAnalysisReport } from './analysis/merge-analysis.js';
export { renderReport, reportFromAnalyses, type ReportItem } from './analysis/report.js';
export { writeReport } from './analysis/report-write.js';
