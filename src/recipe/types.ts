// The recipe as data: mergekit's YAML schema parsed into typed nodes that remember their file:line:col, so any
// later stage (validation, planning) can point at the exact line. Pure types and tiny helpers.

import type { DType } from '../tensor/dtype.js';
import type { ParamValue } from './spec.js';

export interface Pos {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  /** schema path, e.g. models[1].parameters.density */
  readonly path: string;
}

export interface Located<T> {
  readonly value: T;
  readonly pos: Pos;
}

/**
 * A model reference as written: a local path (resolved against the recipe folder) or an earlier stage's name.
 * `vector` marks a `vector:` entry: a stored task vector standing for the model base_model + vector.
 * `lora` marks a `model: base+adapter` reference.
 */
export interface ModelRef {
  readonly ref: string;
  readonly pos: Pos;
  readonly vector?: true;
  /** mergekit's `base+adapter`: the base model with a PEFT LoRA adapter's weight change added (paths as written) */
  readonly lora?: { readonly base: string; readonly adapter: string };
}

/** The key under which a reference is resolved: a vector file and a model at the same path are different inputs. */
export function refKey(ref: ModelRef): string {
  return ref.vector ? `vector:${ref.ref}` : ref.ref;
}

/** Name filter of a conditional parameter: plain substring (mergekit) or `re:` regular expression. */
export interface NameFilter {
  readonly source: string;
  readonly kind: 'any' | 'substring' | 'regex';
  test(name: string): boolean;
}

export type ScalarOrGradient =
  | { readonly kind: 'scalar'; readonly value: ParamValue; readonly pos: Pos }
  | { readonly kind: 'gradient'; readonly values: readonly ParamValue[]; readonly pos: Pos; /** each value's position */ readonly valuePos?: readonly Pos[] };

export interface Condition {
  readonly filter: NameFilter;
  readonly value: ScalarOrGradient;
  readonly pos: Pos;
}

export type ParamNode = ScalarOrGradient | { readonly kind: 'conditional'; readonly conds: readonly Condition[]; readonly pos: Pos };

/** parameter name -> setting (insertion order kept); keyPos points at the key for "unknown parameter" errors */
export type ParamsNode = ReadonlyMap<string, { readonly node: ParamNode; readonly keyPos: Pos }>;

export interface ModelEntry {
  readonly model: ModelRef;
  readonly parameters: ParamsNode;
  readonly pos: Pos;
}

export interface SliceSource {
  readonly model: ModelRef;
  /** [start, end) layer indices; absent for models without layers */
  readonly layerRange?: Located<readonly [number, number]>;
  readonly parameters: ParamsNode;
  readonly pos: Pos;
}

export interface SliceNode {
  readonly sources: readonly SliceSource[];
  readonly parameters: ParamsNode;
  readonly baseModel?: ModelRef;
  readonly pos: Pos;
}

export interface RecipeDoc {
  readonly file: string;
  /** 0-based index of the document in a multi-document file */
  readonly index: number;
  readonly name?: Located<string>;
  readonly mergeMethod: Located<string>;
  readonly baseModel?: ModelRef;
  readonly models?: readonly ModelEntry[];
  readonly slices?: readonly SliceNode[];
  readonly parameters: ParamsNode;
  readonly dtype?: Located<DType>;
  readonly outDtype?: Located<DType>;
  /** 'base' or a model reference */
  readonly tokenizerSource?: Located<{ kind: 'base' } | { kind: 'model'; model: ModelRef }>;
  readonly seed?: Located<number>;
  /** weightkit extension: use `vector:` entries even when their base fingerprint differs from base_model's */
  readonly forceVectorBase?: Located<boolean>;
  readonly pos: Pos;
  /** the document's YAML text, verbatim (written next to merge outputs) */
  readonly text: string;
}

export interface Recipe {
  readonly file: string;
  readonly text: string;
  readonly docs: readonly RecipeDoc[];
  /** problems downgraded to warnings (--lenient) */
  readonly warnings: readonly { code: string; message: string; pos: Pos }[];
}
