// The MergeMethod contract. A method is its declaration (MethodSpec: parameters, defaults, input contract) plus a
// factory for a per-tensor TensorMerger that sees f32 chunks of the inputs, possibly over several statistics
// passes, and writes f32 output. Methods never see paths, readers, YAML or ORT.

import type { MethodSpec, ParamValue } from '../recipe/spec.js';
import type { StreamKey } from '../tensor/rng.js';

export type Params = Readonly<Record<string, ParamValue>>;

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
}

/** A contiguous range of elements [offset, offset + length) of every input, as f32. */
export interface Chunk {
  readonly offset: number;
  readonly length: number;
  readonly base: Float32Array | undefined;
  readonly models: readonly Float32Array[];
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
  /** Optional statistics about what the method kept/dropped for this tensor (for analysis and dry runs). */
  report?(): Record<string, number>;
}

export interface MergeMethod extends MethodSpec {
  create(ctx: TensorContext): TensorMerger;
  /** extra working memory per element beyond inputs and output, in bytes (for the plan's memory estimate) */
  readonly scratchBytesPerElement?: number;
}
