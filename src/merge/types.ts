// The MergeMethod contract. A method is its declaration (MethodSpec: parameters, defaults, input contract) plus a
// factory for a per-tensor TensorMerger that sees f32 chunks of the inputs, possibly over several statistics
// passes, and writes f32 output. Methods never see paths, readers, YAML or ORT.

import type { MethodSpec, Params } from '../recipe/spec.js';
import type { MatMulBackend } from '../tensor/linalg/backend.js';
import type { StreamKey } from '../tensor/rng.js';

export type { Params };

/** Everything a method knows about the tensor it merges; parameter defaults are already filled in. */
export interface TensorContext {
  readonly name: string;
  readonly shape: readonly number[];
  readonly numel: number;
  /** elements per row: product of the dims after the first (1 for 0-d and 1-D tensors) */
  readonly rowLength: number;
  /** global parameters (method-level), resolved for this tensor */
  readonly params: Params;
  /** per-model parameters, one record per non-base input, resolved for this tensor */
  readonly modelParams: readonly Params[];
  /** whether chunks carry a base tensor */
  readonly hasBase: boolean;
  /** number of non-base inputs */
  readonly modelCount: number;
  /** counter-based random stream for (recipe seed, this tensor, model index, purpose): chunking-independent */
  rng(modelIndex: number, purpose?: string): StreamKey;
  /** results of a whole-model statistics pre-pass, when the method declares one (e.g. TIES trim_scope: model) */
  readonly modelStats?: unknown;
  /**
   * Where large matrix products run, for methods that declare `linalg: true` (the ORT backend when the caller gave
   * one, else undefined: the method falls back to jsMatMul). Injected by the caller of merge; methods never import ORT.
   */
  readonly linalg?: MatMulBackend;
  /** Tell the user something about this tensor's result (e.g. it is all NaN because an input holds NaN or inf). */
  warn?(message: string): void;
  /** How messages name an input: 'base' or non-base model i, by its recipe reference when the caller knows it. */
  inputName?(input: 'base' | number): string;
}

/** A contiguous range of elements [offset, offset + length) of every input, as f32. */
export interface Chunk {
  readonly offset: number;
  readonly length: number;
  readonly base: Float32Array | undefined;
  readonly models: readonly Float32Array[];
}

/** A tensor's BF16 values at a byte position of an open file (the file descriptor stays open during the call). */
export interface Bf16FileRange {
  readonly fd: number;
  readonly position: number;
}

/** One whole input of TensorMerger.wholeBf16 (BF16 or F16 values, see its `formats`). */
export type Bf16Input = Uint16Array | Bf16FileRange;

/** See TensorMerger.wholeBf16. */
export interface WholeBf16Writer {
  /** Write the merged values of elements [offset, offset + bits.length) into bits; ranges come in order from 0. */
  write(offset: number, bits: Uint16Array): void;
  /** Give back what the writes hold between calls (mapped inputs) if the last range was not written; idempotent. */
  close?(): void;
}

export interface TensorMerger {
  /**
   * 'elements': chunks may split rows anywhere; 'rows': chunks hold whole rows; 'tensor': one chunk with the
   * whole tensor (the executor then needs memory for all inputs at once).
   */
  readonly chunking: 'elements' | 'rows' | 'tensor';
  /**
   * Called before statistics pass p = 0, 1, ...; return true to run pass p over every chunk (in order) with
   * observe(), false once statistics are complete. Omitted: no statistics passes.
   */
  beginPass?(pass: number): boolean;
  observe?(pass: number, chunk: Chunk): void;
  /** Write the merged values for the chunk into `out` (length elements). Chunks arrive in order. */
  emit(chunk: Chunk, out: Float32Array): void;
  /**
   * Optional, for BF16 outputs: write the chunk's merged values as BF16 bits (the f32 values emit would write,
   * rounded to nearest even, NaN kept quiet) into `bits` (length elements) and return true, or return false to have
   * emit() called for this chunk instead. Chunks arrive in order, each through one of the two.
   */
  emitBf16?(chunk: Chunk, bits: Uint16Array): boolean;
  /**
   * Optional, for BF16 outputs of a tensor of `numel` elements whose inputs (base first) are all BF16, each given
   * whole: in memory, or as a range of an open file (Bf16FileRange, for native kernels that map it). Returns a writer
   * of the merged values as BF16 bits (what emitBf16/emit would give), to be called for consecutive ranges from 0 to
   * the end in place of every pass and emit; or undefined to be run the usual way. Called before beginPass.
   * `release`: file ranges too big to keep mapped whole (their pages are to be given back as the passes go).
   * `formats`: the 2-byte float formats, bit 0 set for F16 inputs (else BF16), bit 1 for an F16 output.
   */
  wholeBf16?(inputs: readonly Bf16Input[], numel: number, release: boolean, formats: number): WholeBf16Writer | undefined;
  /**
   * Optional asynchronous whole-tensor step, only for chunking 'tensor': called once with the whole tensor after the
   * statistics passes and before emit (which then receives the same single chunk). For methods that need linear
   * algebra (SVDs, polar factors) through `ctx.linalg`.
   */
  compute?(chunk: Chunk): Promise<void>;
  /** Optional statistics about what the method kept/dropped for this tensor (for analysis and dry runs). */
  report?(): Record<string, number>;
  /**
   * Optional: called by the executor before the first pass with whether the whole tensor is held in memory across
   * passes (one I/O chunk): an extra pass then costs no reads, e.g. a sample to narrow a top-k histogram.
   */
  setResident?(resident: boolean): void;
}

/**
 * A whole-model statistics pre-pass (e.g. TIES `trim_scope: model`, which trims each task vector over all of its
 * tensors at once). The executor calls beginPass(p) for p = 0, 1, ... and, while it returns true, observe(p, name,
 * chunk) for every chunk of every tensor this method merges (tensors in any order; the chunks of one tensor in
 * element order; chunks carry the base and every non-base model as in TensorMerger). It then hands result() to
 * every create() of the run as `ctx.modelStats`. Collectors keep only order-independent state (histograms,
 * counts), so their result does not depend on tensor order, chunking or threads.
 */
export interface ModelStatsCollector {
  beginPass(pass: number): boolean;
  observe(pass: number, tensorName: string, chunk: Chunk): void;
  /**
   * Optional whole-tensor variant of observe, for collectors whose statistics need linear algebra over each tensor
   * (KnOTS decomposes every 2-D tensor to trim over its whole-model representation). When present, the executor
   * calls it (and not observe) once per tensor and pass, with the whole tensor as one chunk and the context the
   * merge itself gives that tensor (its resolved parameters, random streams and `linalg` backend), and awaits it.
   * The executor holds one tensor's inputs at a time.
   */
  observeTensor?(pass: number, ctx: TensorContext, chunk: Chunk): Promise<void>;
  result(): unknown;
}

/** Estimated work of one tensor merged whole by a linalg method (for the plan; see MergeMethod.wholeTensorCost). */
export interface WholeTensorCost {
  /** peak working bytes while the tensor is merged, its inputs included */
  readonly bytes: number;
  /** floating-point operations (multiply-adds count 2) in backend matrix products (ONNX Runtime: ~300 GFLOP/s here) */
  readonly flops: number;
  /** floating-point operations in JS loops (eigen reductions, Jacobi SVDs: ~1-3 GFLOP/s) */
  readonly jsFlops?: number;
}

export interface MergeMethod extends MethodSpec {
  create(ctx: TensorContext): TensorMerger;
  /**
   * Optional whole-model pre-pass. `params` are the global parameters and `modelParams` the per-model parameters
   * (one record per non-base model), both resolved once for the whole model, i.e. without tensor filters or
   * gradients; a method that needs one value per model (TIES model-scope density) reads it here and create()
   * rejects a tensor whose resolved value differs. Returns undefined when these parameters need no pre-pass.
   */
  modelStats?(params: Params, modelParams: readonly Params[]): ModelStatsCollector | undefined;
  /** extra working memory per element beyond inputs and output, in bytes (for the plan's memory estimate) */
  readonly scratchBytesPerElement?: number;
  /**
   * The method runs large matrix products through `TensorContext.linalg` (TensorMerger.compute). The executor then
   * merges on the calling thread (no worker pool: the ORT backend is multi-threaded itself), one tensor at a time,
   * with the backend given in MergeOptions.linalg (jsMatMul when none).
   */
  readonly linalg?: boolean;
  /**
   * For linalg methods: the estimated cost of merging one tensor whole, from its shape, the number of non-base
   * models and its resolved parameters; undefined for a tensor that streams like an elementwise merge (1-D, or
   * decompose false). The plan's memory estimate and FLOP count use it. `updateRanks`: per non-base model, the rank
   * of its update of this tensor when the plan knows it (a LoRA model: the adapter's rank, 0 where it does not adapt
   * the tensor; undefined otherwise).
   */
  wholeTensorCost?(shape: readonly number[], models: number, params: Params, updateRanks?: readonly (number | undefined)[]): WholeTensorCost | undefined;
}
