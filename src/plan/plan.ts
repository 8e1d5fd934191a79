// buildPlan: recipe document -> MergePlan, pure JSON-serialisable data resolved before any tensor byte is read:
// models and their files, the output tensor list (models: by name; slices: layers restacked), each tensor's
// inputs, shapes, parameter values (precedence, gradients, filters), dtypes, and a peak-memory estimate.

import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { PlanError, RecipeError, RecipeProblems, type WeightkitError } from '../errors.js';
import { TOKENIZER_FILES } from '../io/companions.js';
import type { CheckpointFormat, CheckpointReader, TensorInfo } from '../io/types.js';
import type { MergeMethod, Params } from '../merge/types.js';
import { lookupParam, layerT } from '../recipe/params.js';
import type { ParamSpec, ParamValue } from '../recipe/spec.js';
import { refKey, type ModelRef, type ParamsNode, type Pos, type RecipeDoc } from '../recipe/types.js';
import { checkParamValue } from '../recipe/validate.js';
import { DTYPE_INFO, isFloatDType, type DType } from '../tensor/dtype.js';
import { formatShape, shapesEqual } from '../tensor/tensor.js';
import { fingerprintCheckpoint } from '../vectors/format.js';
import { COMPUTE_CHUNK_ELEMENTS, pieceBytes, workingBytesPerElement } from './execute.js';
import { inferLayout, isEmbeddingName, layerTensorName, type ModelLayout } from './layout.js';
import { loraVectorFile } from './lora-model.js';
import { openLoraAdapter } from '../vectors/lora.js';
import { openVectorModel } from './vector-model.js';

export interface PlanModel {
  readonly id: number;
  /** the reference as written in the recipe */
  readonly ref: string;
  /** resolved path (file or folder) */
  readonly path: string;
  readonly format: CheckpointFormat;
  readonly tensorCount: number;
  readonly byteLength: number;
  /** produced by an earlier document of a multi-document recipe */
  readonly stage?: string;
  /** a `vector:` entry: `path` is the vector file and the model is (model `base`) + vector */
  readonly vector?: { readonly base: number };
  /**
   * a `base+adapter` model: the rank of its update per adapted tensor (the adapter's rank for that module; tensors
   * it does not adapt are unchanged, rank 0). Cost estimates of low-rank methods use it.
   */
  readonly updateRanks?: Readonly<Record<string, number>>;
}

export interface PlanInput {
  readonly model: number;
  readonly tensor: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** read only this top-left [rows, cols] block (embedding vocabulary mismatch) */
  readonly block?: readonly [number, number];
}

export interface PlanTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** 'merge' runs the method; 'copy' copies `inputs[0]` (non-float tensors, single-source passthrough) */
  readonly op: 'merge' | 'copy';
  readonly base?: PlanInput;
  readonly inputs: readonly PlanInput[];
  readonly params: Params;
  readonly modelParams: readonly Params[];
  /** layer position used for gradients (0 for pre/post-layer tensors) */
  readonly t: number;
  readonly byteLength: number;
}

export interface MemoryEstimate {
  readonly budgetBytes: number;
  readonly threads: number;
  /** elements per chunk a worker processes at once */
  readonly chunkElements: number;
  readonly largestTensor: { name: string; numel: number };
  /** estimated peak resident bytes of the whole merge */
  readonly peakBytes: number;
  /** number of tensors too large to process whole under the budget (streamed in row chunks) */
  readonly chunkedTensors: number;
  /**
   * Linalg methods (tsv, rtsvm, iso_c): tensors merged whole, the largest one's working set, and the estimated
   * floating-point operations of all of them (matrix products on the linalg backend).
   */
  readonly wholeTensors?: { count: number; largest: { name: string; bytes: number }; flops: number; jsFlops: number };
}

export interface MergePlan {
  readonly version: 1;
  readonly recipe: { readonly file: string; readonly sha256: string; readonly doc: number; readonly name?: string };
  readonly method: string;
  readonly seed: number;
  readonly models: readonly PlanModel[];
  /** id of the base model, if the method uses one */
  readonly base?: number;
  /** model whose config.json and other non-weight files are copied */
  readonly donor: number;
  /** model whose tokenizer files are copied */
  readonly tokenizerDonor: number;
  readonly tensors: readonly PlanTensor[];
  readonly outputBytes: number;
  /** bytes read from inputs for one pass over every merged tensor */
  readonly inputBytes: number;
  readonly numLayers: number;
  /** options that override the recipe (--seed, --dtype, --out-dtype), when any */
  readonly overrides?: { readonly seed?: number; readonly dtype?: DType; readonly outDtype?: DType };
  /** the output has a tied name's own tensor (lm_head.weight) that the config donor ties: its config must untie it */
  readonly untied?: readonly string[];
  readonly memory: MemoryEstimate;
  readonly warnings: readonly string[];
}

export interface PlanOptions {
  /** --dtype override: compute/load dtype (and output dtype unless outDtype) */
  dtype?: DType;
  outDtype?: DType;
  seed?: number;
  threads?: number;
  /** total working-memory budget for tensor data, bytes (default 1 GB, keeping RSS under ~1.5 GB) */
  memoryBudget?: number;
  /** earlier stages of a multi-document recipe: name -> output folder (or planned checkpoint) */
  stages?: ReadonlyMap<string, StageOutput>;
}

export interface StageOutput {
  readonly path: string;
  /** a reader (or a virtual one from a plan, for dry runs) */
  readonly reader: CheckpointReader;
  /** the reader is a plan's virtual checkpoint: names, dtypes and shapes only, no tensor data (dry runs) */
  readonly planned?: boolean;
}

export const DEFAULT_MEMORY_BUDGET = 1_000_000_000;

/** Open readers for a plan: model id -> reader (owned by the caller). */
export type ReaderMap = ReadonlyMap<number, CheckpointReader>;

export interface ResolvedModels {
  readonly models: PlanModel[];
  readonly readers: Map<number, CheckpointReader>;
  /** model id by refKey (a vector file and a model at the same path are different inputs) */
  readonly byRef: Map<string, number>;
}

const HF_ID_RE = /^[A-Za-z0-9][\w.-]*\/[\w.-]+(@[\w.-]+)?$/;

/** Every model reference of a document (base, models, slice sources and bases, tokenizer source). */
export function modelRefsOf(doc: RecipeDoc): ModelRef[] {
  const refs: ModelRef[] = [];
  if (doc.baseModel) refs.push(doc.baseModel);
  for (const m of doc.models ?? []) refs.push(m.model);
  for (const s of doc.slices ?? []) {
    if (s.baseModel) refs.push(s.baseModel);
    for (const src of s.sources) refs.push(src.model);
  }
  const tokenizer = doc.tokenizerSource?.value;
  if (tokenizer?.kind === 'model') refs.push(tokenizer.model);
  return refs;
}

/** Where a model reference points (relative paths against the recipe's folder); for `base+adapter`, the base. */
export function modelPath(doc: RecipeDoc, ref: ModelRef): string {
  const p = ref.lora ? ref.lora.base : ref.ref;
  return isAbsolute(p) ? p : resolve(dirname(resolve(doc.file)), p);
}

/** The adapter folder of a `base+adapter` reference. */
function adapterPath(doc: RecipeDoc, ref: ModelRef & { lora: { adapter: string } }): string {
  const p = ref.lora.adapter;
  return isAbsolute(p) ? p : resolve(dirname(resolve(doc.file)), p);
}

/**
 * The problem with a reference that names no existing path (a Hugging Face id gets its own code), if any.
 * `isStage(name)`: the name of an earlier stage of a multi-document recipe (a model that exists once that stage
 * ran), also as the base of `stage+adapter`.
 */
export function missingModelProblem(doc: RecipeDoc, ref: ModelRef, isStage: (name: string) => boolean = () => false): RecipeError | undefined {
  if (ref.lora) {
    const lora = ref.lora;
    const adapter = adapterPath(doc, { ...ref, lora });
    if (!existsSync(adapter)) {
      return new RecipeError('RECIPE_MODEL_NOT_FOUND', `LoRA adapter '${lora.adapter}' of '${ref.ref}' not found (looked for ${adapter})`, { where: posWhere(ref.pos) });
    }
    return missingModelProblem(doc, { ref: lora.base, pos: ref.pos }, isStage);
  }
  if (!ref.vector && isStage(ref.ref)) return undefined;
  const path = modelPath(doc, ref);
  if (existsSync(path)) return undefined;
  if (ref.vector) {
    return new RecipeError('RECIPE_MODEL_NOT_FOUND', `vector '${ref.ref}' not found (looked for ${path})`, { where: posWhere(ref.pos) });
  }
  const hf = (HF_ID_RE.test(ref.ref) && !ref.ref.startsWith('.')) || /^(hf|https?):\/\//.test(ref.ref);
  // a bare name (gpt2) may be a hub id too: say both
  const bare = /^[A-Za-z0-9][\w.-]*$/.test(ref.ref);
  return new RecipeError(
    hf ? 'RECIPE_REMOTE_MODEL' : 'RECIPE_MODEL_NOT_FOUND',
    hf
      ? `'${ref.ref}' is not a local path; weightkit does not download models (download it first and give its folder)`
      : `model '${ref.ref}' not found (looked for ${path})${bare ? '; if it is a Hugging Face id: weightkit does not download models (download it first and give its folder)' : ''}`,
    { where: posWhere(ref.pos) },
  );
}

/**
 * Resolve and open every model a document references; all problems are reported together. A `vector:` entry
 * opens as the virtual model base_model + vector, after checking the vector's base fingerprint against
 * base_model's (VECTOR_BASE_MISMATCH) unless the recipe sets force_vector_base.
 */
export async function openModels(
  doc: RecipeDoc,
  open: (path: string) => Promise<CheckpointReader>,
  stages: ReadonlyMap<string, StageOutput> = new Map(),
): Promise<ResolvedModels> {
  const refs = modelRefsOf(doc);
  const models: PlanModel[] = [];
  const readers = new Map<number, CheckpointReader>();
  const byRef = new Map<string, number>();
  const problems: RecipeError[] = [];
  let baseFingerprint: Promise<string> | undefined;
  // the plain models' files opened at once (each open reads a header: they overlap instead of queueing); each is
  // taken by the first reference to its path (a LoRA base too), the rest closed below
  const early = new Map<string, Promise<CheckpointReader>>();
  for (const r of refs) {
    if (r.lora || r.vector || stages.has(r.ref) || byRef.has(refKey(r)) || missingModelProblem(doc, r)) continue;
    const p = modelPath(doc, r);
    if (early.has(p)) continue;
    const opening = open(p);
    opening.catch(() => undefined); // reported where it is taken
    early.set(p, opening);
  }
  const take = (path: string): Promise<CheckpointReader> => {
    const opening = early.get(path);
    early.delete(path);
    return opening ?? open(path);
  };
  try {
    for (const r of refs) {
      const key = refKey(r);
      if (byRef.has(key)) continue;
      const stage = r.vector || r.lora ? undefined : stages.get(r.ref);
      let path: string;
      let reader: CheckpointReader;
      let vectorBase: number | undefined;
      let updateRanks: Record<string, number> | undefined;
      try {
        if (r.lora) {
          // base+adapter: the base as a model of its own (workers reopen it), plus the adapter's ΔW as a cached vector;
          // the base may be an earlier stage (stage+adapter), converted once that stage is written
          const missing = missingModelProblem(doc, r, (name) => stages.has(name));
          if (missing) {
            problems.push(missing);
            continue;
          }
          const baseRef: ModelRef = { ref: r.lora.base, pos: r.pos };
          const baseStage = stages.get(r.lora.base);
          const basePath = baseStage?.path ?? modelPath(doc, r);
          const adapter = adapterPath(doc, { ...r, lora: r.lora });
          vectorBase = byRef.get(refKey(baseRef));
          if (vectorBase === undefined) {
            const br = baseStage?.reader ?? (await take(basePath));
            vectorBase = models.length;
            const bt = br.tensors();
            models.push({ id: vectorBase, ref: baseRef.ref, path: basePath, format: br.format, tensorCount: bt.length, byteLength: bt.reduce((a, t) => a + t.byteLength, 0) });
            readers.set(vectorBase, br);
            byRef.set(refKey(baseRef), vectorBase);
          }
          const base = readers.get(vectorBase)!;
          const opened = await openLoraAdapter(adapter);
          updateRanks = Object.fromEntries(opened.modules.map((m) => [m.target, m.rank]));
          await opened.close();
          if (baseStage?.planned) {
            // a dry run: the stage has no data yet, so the adapter is checked but not converted; base + ΔW has the
            // base's names, dtypes and shapes, which is all a plan reads
            path = adapter;
            reader = base;
          } else {
            path = await loraVectorFile(base, basePath, adapter);
            reader = await openVectorModel(base, path, { force: true });
          }
        } else if (r.vector) {
          const missing = missingModelProblem(doc, r);
          vectorBase = doc.baseModel ? byRef.get(refKey(doc.baseModel)) : undefined;
          if (missing || vectorBase === undefined) {
            // without a base_model validation already said so; a base that failed to open has its own problem
            if (missing) problems.push(missing);
            continue;
          }
          const base = readers.get(vectorBase)!;
          path = modelPath(doc, r);
          reader = await openVectorModel(base, path, {
            force: doc.forceVectorBase?.value === true,
            baseFingerprint: () => (baseFingerprint ??= fingerprintCheckpoint(base)),
          });
        } else if (stage) {
          path = stage.path;
          reader = stage.reader;
        } else {
          const missing = missingModelProblem(doc, r);
          if (missing) {
            problems.push(missing);
            continue;
          }
          path = modelPath(doc, r);
          reader = await take(path);
        }
      } catch (e) {
        problems.push(openProblem(r, e));
        continue;
      }
      const id = models.length;
      const tensors = reader.tensors();
      models.push({
        id,
        ref: r.ref,
        path,
        format: reader.format,
        tensorCount: tensors.length,
        byteLength: tensors.reduce((a, t) => a + t.byteLength, 0),
        ...(stage ? { stage: r.ref } : {}),
        ...(vectorBase !== undefined ? { vector: { base: vectorBase } } : {}),
        ...(updateRanks !== undefined ? { updateRanks } : {}),
      });
      readers.set(id, reader);
      byRef.set(key, id);
    }
  } finally {
    for (const opening of early.values()) void opening.then((rd) => rd.close()).catch(() => undefined);
  }
  if (problems.length > 0) {
    for (const rd of readers.values()) if (![...stages.values()].some((s) => s.reader === rd)) await rd.close();
    throw new RecipeProblems(doc.file, problems);
  }
  return { models, readers, byRef };
}

/**
 * The problems of opening a document's plain models (local paths that exist; not stages, vectors or LoRA models),
 * each at its reference (as openModels reports them): for a recipe that has other problems already, so that one
 * report lists these too. Every reader is closed again.
 */
export async function openProblems(doc: RecipeDoc, open: (path: string) => Promise<CheckpointReader>, isStage: (name: string) => boolean): Promise<RecipeError[]> {
  const seen = new Set<string>();
  const out: RecipeError[] = [];
  await Promise.all(
    modelRefsOf(doc).map(async (r) => {
      if (r.lora || r.vector || isStage(r.ref) || missingModelProblem(doc, r)) return;
      const path = modelPath(doc, r);
      if (seen.has(path)) return;
      seen.add(path);
      try {
        await (await open(path)).close();
      } catch (e) {
        out.push(openProblem(r, e));
      }
    }),
  );
  return out;
}

/** A model reference that could not be opened, at its recipe position (the reader's code, tensor and hint kept). */
function openProblem(r: ModelRef, e: unknown): RecipeError {
  const we = e as WeightkitError;
  return new RecipeError(we.code ?? 'RECIPE_MODEL_NOT_FOUND', `cannot ${r.vector ? 'use vector' : r.lora ? 'use LoRA model' : 'open model'} '${r.ref}': ${(e as Error).message}`, {
    where: { ...posWhere(r.pos), ...(we.where?.tensor ? { tensor: we.where.tensor } : {}) },
    ...(we.hint !== undefined ? { hint: we.hint } : {}),
    cause: e,
  });
}

function posWhere(pos: Pos): { file: string; line: number; col: number; path: string } {
  return { file: pos.file, line: pos.line, col: pos.col, path: pos.path };
}

interface Source {
  model: number;
  levels: ParamsNode[]; // per-model parameter levels: source/model, slice, top
  range?: readonly [number, number];
  pos: Pos;
}

interface SliceSpec {
  sources: Source[]; // non-base inputs in order (plus the base for 'input' methods)
  base?: number;
  /** the base's layer range within a slice */
  baseRange?: readonly [number, number];
  sliceParams: ParamsNode;
  pos: Pos;
}

/** Below this much output, worker start-up costs more than it saves: merge on the calling thread. */
export const POOL_MIN_BYTES = 32_000_000;

/**
 * Whether a merge runs on worker threads (else on the calling thread): never for linalg methods (their backend is
 * multi-threaded) or a single tensor; with 'always' whenever there are threads; else for outputs of POOL_MIN_BYTES on.
 */
export function usesWorkers(method: Pick<MergeMethod, 'linalg'>, threads: number, tensorCount: number, outputBytes: number, pool: 'auto' | 'always' = 'auto'): boolean {
  return !method.linalg && threads > 1 && tensorCount > 1 && (pool === 'always' || outputBytes >= POOL_MIN_BYTES);
}

/** The most elements one executor buffer holds (its workspace views; far beyond any memory budget anyway). */
const MAX_TYPED_ELEMENTS = 2 ** 31 - 1;

/** Tied names: a model without the first may provide the second (mergekit's tied_names). */
const TIED: ReadonlyArray<readonly [string, string]> = [
  ['lm_head.weight', 'model.embed_tokens.weight'],
  ['lm_head.weight', 'transformer.wte.weight'],
];

function findInput(reader: CheckpointReader, name: string): TensorInfo | undefined {
  if (reader.has(name)) return reader.info(name);
  for (const [a, b] of TIED) if (a === name && reader.has(b)) return reader.info(b);
  return undefined;
}

/** Build the plan for one recipe document. `resolved` holds the opened models. */
export function buildPlanFromModels(
  doc: RecipeDoc,
  method: MergeMethod,
  resolved: ResolvedModels,
  recipeText: string,
  options: PlanOptions = {},
): MergePlan {
  const { models, readers, byRef } = resolved;
  const warnings: string[] = [];
  const problems: WeightkitError[] = [];
  const id = (r: ModelRef): number => byRef.get(refKey(r))!;
  const docBase = doc.baseModel ? id(doc.baseModel) : undefined;
  const usesBase = method.base === 'required' || method.base === 'optional';

  // normalise models:/slices: into slices of sources (mergekit's normalize_config)
  const slices: SliceSpec[] = [];
  if (doc.models) {
    const sources: Source[] = [];
    let baseListed = false;
    for (const m of doc.models) {
      const mid = id(m.model);
      if (mid === docBase) {
        baseListed = true;
        if (usesBase) continue;
      }
      sources.push({ model: mid, levels: [m.parameters, doc.parameters], pos: m.pos });
    }
    if (docBase !== undefined && !baseListed && method.base === 'input') {
      sources.push({ model: docBase, levels: [new Map(), doc.parameters], pos: doc.baseModel!.pos });
    }
    slices.push({ sources, ...(usesBase && docBase !== undefined ? { base: docBase } : {}), sliceParams: new Map(), pos: doc.pos });
  } else {
    for (const s of doc.slices ?? []) {
      const sliceBase = s.baseModel ? id(s.baseModel) : docBase;
      const sources: Source[] = [];
      let base: number | undefined;
      let baseRange: readonly [number, number] | undefined;
      for (const src of s.sources) {
        const mid = id(src.model);
        const range = src.layerRange?.value;
        if (usesBase && mid === sliceBase) {
          base = mid;
          baseRange = range;
          continue;
        }
        sources.push({ model: mid, levels: [src.parameters, s.parameters, doc.parameters], ...(range ? { range } : {}), pos: src.pos });
      }
      if (usesBase && sliceBase !== undefined && base === undefined) {
        problems.push(
          new PlanError('RECIPE_BASE_REQUIRED', `the slice does not list its base model '${models[sliceBase]!.ref}' among its sources`, {
            where: posWhere(s.pos),
          }),
        );
      }
      const spec: SliceSpec = { sources, sliceParams: s.parameters, pos: s.pos };
      if (base !== undefined) {
        spec.base = base;
        if (baseRange) spec.baseRange = baseRange;
      }
      slices.push(spec);
    }
  }
  if (problems.length > 0) throw new RecipeProblems(doc.file, problems as RecipeError[]);

  const first = slices[0]!;
  const reference = first.base ?? first.sources[0]?.model ?? docBase ?? 0;
  const usage = new Map<number, { found: number; missing: number; firstMissing: string; pos: Pos }>();
  const refReader = readers.get(reference)!;
  const layouts = new Map<number, ModelLayout>();
  const layoutOf = (m: number): ModelLayout => {
    let l = layouts.get(m);
    if (!l) layouts.set(m, (l = inferLayout(readers.get(m)!.tensors().map((t) => t.name))));
    return l;
  };
  const refLayout = layoutOf(reference);
  // a layer_range past a model's last layer would plan layers it does not have (mergekit: a required tensor missing)
  for (const s of doc.slices ?? []) {
    for (const src of s.sources) {
      const range = src.layerRange;
      if (range === undefined) continue;
      const layout = layoutOf(id(src.model));
      if (layout.prefix !== undefined && range.value[1] > layout.numLayers) {
        problems.push(
          new RecipeError('RECIPE_LAYER_RANGE', `layer_range [${range.value.join(', ')}] goes past the last layer of '${src.model.ref}', which has ${layout.numLayers} layers (0 to ${layout.numLayers - 1})`, {
            where: posWhere(range.pos),
          }),
        );
      }
    }
  }
  if (problems.length > 0) throw new RecipeProblems(doc.file, problems as RecipeError[]);
  const globalSpecs = method.params;
  const modelSpecs = method.modelParams;
  const outDtypeOverride = options.outDtype ?? doc.outDtype?.value ?? options.dtype ?? doc.dtype?.value;

  const tensors: PlanTensor[] = [];
  const seen = new Set<string>();

  /** Resolve every declared parameter for one tensor (defaults filled, values checked); `owner` names the model. */
  const resolve = (specs: readonly ParamSpec[], levels: readonly ParamsNode[], name: string, t: number, where: Pos, owner: string, at?: Map<string, Pos>): Params => {
    const out: Record<string, ParamValue> = {};
    for (const s of specs) {
      const r = lookupParam(levels, s.name, name, t);
      if (r !== undefined) at?.set(s.name, r.pos);
      if (r === undefined) {
        if (s.required) {
          problems.push(new PlanError('RECIPE_PARAM_REQUIRED', `no value of '${s.name}'${owner} applies to tensor '${name}'`, { where: { ...posWhere(where), tensor: name } }));
        } else if (s.default !== undefined) out[s.name] = s.default;
        continue;
      }
      const bad = checkParamValue(s, r.value);
      if (bad) problems.push(new PlanError(bad.code, `${bad.message} for tensor '${name}'`, { where: { ...posWhere(r.pos), tensor: name } }));
      out[s.name] = r.value;
    }
    return out;
  };
  const resolveGlobal = (levels: ParamsNode[], name: string, t: number, where: Pos, at?: Map<string, Pos>): Params => resolve(globalSpecs, levels, name, t, where, '', at);
  const resolveModel = (src: Source, name: string, t: number, at?: Map<string, Pos>): Params =>
    resolve(modelSpecs, src.levels, name, t, src.pos, ` for model '${models[src.model]!.ref}'`, at);
  // the method's own checks across parameters (MethodSpec.checkParams), each problem reported once per recipe position
  const checkState = new Map<string, unknown>();
  const checked = new Set<string>();

  const addTensor = (outName: string, slice: SliceSpec, inNames: (m: number) => string, t: number): void => {
    if (seen.has(outName)) return;
    seen.add(outName);
    const refModel = slice.base ?? slice.sources[0]?.model ?? reference;
    const refName = inNames(refModel);
    const refInfo = findInput(readers.get(refModel)!, refName);
    if (!refInfo) {
      problems.push(new PlanError('TENSOR_NOT_FOUND', `tensor '${refName}' is missing from model '${models[refModel]!.ref}'`, { where: { file: models[refModel]!.path, tensor: refName } }));
      return;
    }
    const float = isFloatDType(refInfo.dtype);
    const outDtype = float && outDtypeOverride !== undefined ? outDtypeOverride : refInfo.dtype;
    const toInput = (m: number, info: TensorInfo): PlanInput => ({ model: m, tensor: info.name, dtype: info.dtype, shape: [...info.shape] });
    let outShape = [...refInfo.shape];
    const embed = isEmbeddingName(outName) && refInfo.shape.length === 2;
    let base: PlanInput | undefined;
    if (slice.base !== undefined) base = toInput(slice.base, refInfo);
    const inputs: PlanInput[] = [];
    const kept: Source[] = [];
    for (const src of slice.sources) {
      const nm = inNames(src.model);
      const info = findInput(readers.get(src.model)!, nm);
      let use = usage.get(src.model);
      if (use === undefined) usage.set(src.model, (use = { found: 0, missing: 0, firstMissing: '', pos: src.pos }));
      if (!info) {
        use.missing++;
        use.firstMissing ||= nm;
        warnings.push(`tensor '${nm}' is missing from model '${models[src.model]!.ref}': merged without it`);
        continue;
      }
      use.found++;
      if (info.name !== nm) warnings.push(`model '${models[src.model]!.ref}' has no '${nm}': using its tied '${info.name}'`);
      if (!float) continue;
      if (!shapesEqual(info.shape, refInfo.shape)) {
        if (embed && info.shape.length === 2) {
          inputs.push(toInput(src.model, info));
          kept.push(src);
          continue;
        }
        problems.push(
          new PlanError(
            'TENSOR_SHAPE_MISMATCH',
            `tensor '${outName}' has shape ${formatShape(info.shape)} in model '${models[src.model]!.ref}' but ${formatShape(refInfo.shape)} in '${models[refModel]!.ref}'`,
            { where: { file: models[src.model]!.path, tensor: info.name } },
          ),
        );
        continue;
      }
      inputs.push(toInput(src.model, info));
      kept.push(src);
    }
    // embedding vocabulary mismatch: task-vector methods cut to the base, others to the common block
    const allShapes = [...(base ? [base.shape] : []), ...inputs.map((i) => i.shape)];
    if (embed && allShapes.some((s) => !shapesEqual(s, refInfo.shape))) {
      let rows: number;
      let cols: number;
      if (base && method.vocabToBase) {
        rows = base.shape[0]!;
        cols = base.shape[1]!;
        const smaller = inputs.find((i) => i.shape[0]! < rows || i.shape[1]! < cols);
        if (smaller) {
          problems.push(
            new PlanError('TENSOR_SHAPE_MISMATCH', `embedding '${outName}' of model '${models[smaller.model]!.ref}' ${formatShape(smaller.shape)} is smaller than the base's ${formatShape(base.shape)}`, {
              where: { file: models[smaller.model]!.path, tensor: smaller.tensor },
            }),
          );
          return;
        }
      } else {
        rows = Math.min(...allShapes.map((s) => s[0]!));
        cols = Math.min(...allShapes.map((s) => s[1]!));
      }
      warnings.push(`embedding '${outName}': vocabulary sizes differ (${allShapes.map((s) => formatShape(s)).join(' vs ')}); cut to [${rows}, ${cols}]`);
      outShape = [rows, cols];
      const cut = (p: PlanInput): PlanInput => (p.shape[0] === rows && p.shape[1] === cols ? p : { ...p, block: [rows, cols] as const });
      if (base) base = cut(base);
      for (let i = 0; i < inputs.length; i++) inputs[i] = cut(inputs[i]!);
    }
    const numel = outShape.reduce((a, b) => a * b, 1);
    const byteLength = numel * DTYPE_INFO[outDtype].bytes;
    if (!float) {
      tensors.push({ name: outName, shape: outShape, dtype: outDtype, op: 'copy', inputs: [toInput(refModel, refInfo)], params: {}, modelParams: [], t, byteLength });
      return;
    }
    const enough = inputs.length >= method.minModels;
    if (!enough) {
      if (base) {
        warnings.push(`tensor '${outName}': fewer than ${method.minModels} model(s) have it; copied from the base`);
        tensors.push({ name: outName, shape: outShape, dtype: outDtype, op: 'copy', inputs: [base], params: {}, modelParams: [], t, byteLength });
        return;
      }
      problems.push(new PlanError('TENSOR_NOT_FOUND', `tensor '${outName}' is present in ${inputs.length} model(s); ${method.name} needs ${method.minModels}`, { where: { tensor: outName } }));
      return;
    }
    const globalAt = new Map<string, Pos>();
    const modelAt = kept.map(() => new Map<string, Pos>());
    const params = resolveGlobal([slice.sliceParams, doc.parameters], outName, t, doc.mergeMethod.pos, globalAt);
    const modelParams = kept.map((src, i) => resolveModel(src, inNames(src.model), t, modelAt[i]));
    for (const p of method.checkParams?.({ tensor: outName, params, modelParams, models: kept.map((s) => s.model) }, checkState) ?? []) {
      const pos = p.model === undefined ? (globalAt.get(p.param) ?? doc.mergeMethod.pos) : (modelAt[p.model]!.get(p.param) ?? kept[p.model]!.pos);
      const key = `${p.param} ${p.model === undefined ? '' : kept[p.model]!.model} ${pos.line}:${pos.col}`;
      if (checked.has(key)) continue;
      checked.add(key);
      const owner = p.model === undefined ? '' : ` for model '${models[kept[p.model]!.model]!.ref}'`;
      problems.push(new PlanError(p.code ?? 'RECIPE_PARAM_RANGE', `${method.name}: ${p.message}${owner} (tensor '${outName}')`, { where: { ...posWhere(pos), tensor: outName } }));
    }
    if (params['normalize'] === true && modelParams.length > 0 && modelParams.every((p) => typeof p['weight'] === 'number')) {
      const sum = modelParams.reduce((a, p) => a + (p['weight'] as number), 0);
      if (Math.abs(sum) < 1e-12) {
        // at the first weight the recipe sets (else the normalize setting, else the slice), once per position
        const at = modelAt.find((m) => m.has('weight'))?.get('weight') ?? globalAt.get('normalize') ?? slice.pos;
        const key = `weight sum ${at.line}:${at.col}`;
        if (!checked.has(key)) {
          checked.add(key);
          problems.push(new PlanError('RECIPE_WEIGHT_SUM_ZERO', `the weights for tensor '${outName}' sum to 0 (${modelParams.map((p) => p['weight']).join(' + ')}) and normalize is on`, { where: { ...posWhere(at), tensor: outName } }));
        }
      }
    }
    const passthroughCopy = method.name === 'passthrough' && inputs.length === 1 && modelParams[0]?.['scale'] === undefined && inputs[0]!.dtype === outDtype && !inputs[0]!.block;
    tensors.push({
      name: outName,
      shape: outShape,
      dtype: outDtype,
      op: passthroughCopy ? 'copy' : 'merge',
      ...(base ? { base } : {}),
      inputs,
      params,
      modelParams,
      t,
      byteLength,
    });
  };

  // mergekit plans an optional tied weight (lm_head.weight) when any input has it under its own name; the inputs that
  // tie it give the tensor it is tied to (findInput). The reference model decides the other tensors.
  const untied: string[] = [];
  const addTiedOwn = (slice: SliceSpec): void => {
    for (const [own, tiedTo] of TIED) {
      if (seen.has(own) || !refReader.has(tiedTo)) continue;
      const holders = [...(slice.base !== undefined ? [slice.base] : []), ...slice.sources.map((x) => x.model)].filter((m) => readers.get(m)!.has(own));
      if (holders.length === 0) continue;
      addTensor(own, slice, () => own, 0);
      untied.push(own);
      warnings.push(
        `'${own}': ${holders.map((m) => `'${models[m]!.ref}'`).join(', ')} ${holders.length === 1 ? 'has' : 'have'} its own, '${models[reference]!.ref}' ties it to '${tiedTo}' (which it contributes); the output has '${own}' and its config unties it`,
      );
    }
  };

  const sliceMode = doc.slices !== undefined;
  let numLayers = refLayout.numLayers;
  if (!sliceMode || refLayout.prefix === undefined) {
    // by name: every tensor of the reference model
    const s = slices[0]!;
    for (const info of refReader.tensors()) {
      const l = refLayout.prefix !== undefined ? /^(\d+)\./.exec(info.name.slice(refLayout.prefix.length)) : null;
      const t = l && info.name.startsWith(refLayout.prefix!) ? layerT(Number(l[1]), refLayout.numLayers) : 0;
      addTensor(info.name, s, () => info.name, t);
    }
    addTiedOwn(s);
    // tensors other inputs have but the reference lacks are not in the output: say so
    for (const src of s.sources) {
      const extra = readers.get(src.model)!.tensors().filter((x) => !refReader.has(x.name) && !seen.has(x.name) && !TIED.some(([a, b]) => b === x.name && refReader.has(a)));
      if (extra.length > 0) {
        warnings.push(
          `model '${models[src.model]!.ref}' has ${extra.length} tensor(s) that '${models[reference]!.ref}' lacks (e.g. '${extra[0]!.name}'); they are not in the output`,
        );
      }
    }
  } else {
    const prefix = refLayout.prefix;
    const firstSlice = slices[0]!;
    const lastSlice = slices[slices.length - 1]!;
    for (const name of refLayout.pre) addTensor(name, firstSlice, () => name, 0);
    let outLayer = 0;
    for (const s of slices) {
      const ranges = new Map<number, readonly [number, number]>();
      for (const src of s.sources) if (src.range) ranges.set(src.model, src.range);
      if (s.base !== undefined && s.baseRange) ranges.set(s.base, s.baseRange);
      const lead = s.base ?? s.sources[0]?.model;
      if (lead === undefined) continue;
      const leadRange = ranges.get(lead) ?? [0, layoutOf(lead).numLayers];
      const L = leadRange[1] - leadRange[0];
      for (let j = 0; j < L; j++) {
        const leadLayout = layoutOf(lead);
        const suffixes = leadLayout.layers.get(leadRange[0] + j) ?? [];
        for (const suffix of suffixes) {
          const outName = layerTensorName(prefix, outLayer, suffix);
          addTensor(outName, s, (m) => layerTensorName(layoutOf(m).prefix ?? prefix, (ranges.get(m) ?? leadRange)[0] + j, suffix), layerT(j, L));
        }
        outLayer++;
      }
    }
    numLayers = outLayer;
    for (const name of refLayout.post) addTensor(name, lastSlice, () => name, 0);
    addTiedOwn(lastSlice);
  }
  // a model that holds none of the tensors it is asked for is a different architecture (or a wrong path), not a
  // model with a few missing tensors: merging would silently return the others
  for (const [m, use] of usage) {
    if (use.found > 0 || use.missing === 0) continue;
    problems.push(
      new RecipeError(
        'TENSOR_NOT_FOUND',
        `model '${models[m]!.ref}' has none of the ${use.missing} tensor(s) it is asked for (the first: '${use.firstMissing}'); it does not look like the same architecture as '${models[reference]!.ref}'`,
        { where: posWhere(use.pos) },
      ),
    );
  }
  // every buffer the executor allocates holds at least one row along dim 0 (or, for the methods that hold a 2-D
  // tensor whole, the tensor): it must fit one typed array
  for (const t of tensors) {
    if (t.op === 'copy') continue;
    const numel = t.shape.reduce((a, b) => a * b, 1);
    const whole = method.wholeTensorCost?.(t.shape, t.inputs.length, t.params, []) !== undefined;
    const need = whole ? numel : t.shape.length <= 1 ? 1 : numel / Math.max(1, t.shape[0]!);
    if (need > MAX_TYPED_ELEMENTS) {
      const from = models[t.inputs[0]?.model ?? reference]!;
      problems.push(
        new PlanError(
          'TENSOR_TOO_LARGE',
          `tensor '${t.name}' ${formatShape(t.shape)}: ${whole ? `${method.name} holds it whole, ${need} elements` : `one row along its first dimension has ${need} elements`}, more than one buffer of the executor holds (${MAX_TYPED_ELEMENTS})`,
          { where: { file: from.path, tensor: t.name } },
        ),
      );
    }
  }
  // an explicit tokenizer_source must have a tokenizer to copy (mergekit fails to load it otherwise)
  const tokSource = doc.tokenizerSource;
  if (tokSource !== undefined) {
    const m = models[tokSource.value.kind === 'model' ? byRef.get(refKey(tokSource.value.model))! : (docBase ?? reference)]!;
    const dir = m.stage === undefined && statSync(m.path, { throwIfNoEntry: false })?.isDirectory() ? m.path : undefined;
    if (m.stage === undefined && !(dir !== undefined && TOKENIZER_FILES.some((f) => existsSync(join(dir, f))))) {
      problems.push(
        new RecipeError('RECIPE_TOKENIZER', `tokenizer_source '${tokSource.value.kind === 'model' ? tokSource.value.model.ref : 'base'}': ${dir === undefined ? `'${m.ref}' is not a folder` : `'${m.ref}' holds no tokenizer file`} (looked for ${TOKENIZER_FILES.join(', ')})`, {
          where: posWhere(tokSource.pos),
        }),
      );
    }
  }
  if (problems.length > 0) throw new RecipeProblems(doc.file, problems as RecipeError[]);

  const threads = Math.max(1, options.threads ?? 1);
  const budget = options.memoryBudget ?? DEFAULT_MEMORY_BUDGET;
  // per merged tensor, each model's update rank when known (LoRA models), for low-rank methods' cost estimates
  const ranksOf = (t: PlanTensor): (number | undefined)[] => t.inputs.map((i) => {
    const ranks = models[i.model]!.updateRanks;
    return ranks === undefined ? undefined : (ranks[i.tensor] ?? 0);
  });
  const outputBytes = tensors.reduce((a, t) => a + t.byteLength, 0);
  // the lanes the executor will use (small outputs merge on the calling thread)
  const memory = estimateMemory(tensors, method, usesWorkers(method, threads, tensors.length, outputBytes) ? threads : 1, budget, ranksOf);
  const big = memory.wholeTensors?.largest;
  if (big !== undefined && big.bytes > budget) {
    const gb = (b: number): string => (b >= 1e8 ? `${(b / 1e9).toFixed(2)} GB` : `${(b / 1e6).toFixed(1)} MB`);
    warnings.push(`${method.name} merges 2-D tensors whole: '${big.name}' needs about ${gb(big.bytes)} of working memory, above the ${gb(budget)} budget (set decompose: false for it through a filter to average it instead)`);
  }
  const inputBytes = tensors.reduce((a, t) => a + [...(t.base ? [t.base] : []), ...t.inputs].reduce((b, i) => b + i.shape.reduce((x, y) => x * y, 1) * DTYPE_INFO[i.dtype].bytes, 0), 0);
  const tokenizer = doc.tokenizerSource?.value;
  const donor = docBase ?? reference;
  const tokenizerDonor = tokenizer?.kind === 'model' ? byRef.get(tokenizer.model.ref)! : donor;
  return {
    version: 1,
    recipe: {
      file: doc.file,
      sha256: createHash('sha256').update(recipeText).digest('hex'),
      doc: doc.index,
      ...(doc.name ? { name: doc.name.value } : {}),
    },
    method: method.name,
    seed: options.seed ?? doc.seed?.value ?? 0,
    // what the command line changed against the recipe (recorded with the output: the recipe alone does not say)
    ...(options.seed !== undefined || options.dtype !== undefined || options.outDtype !== undefined
      ? {
          overrides: {
            ...(options.seed !== undefined ? { seed: options.seed } : {}),
            ...(options.dtype !== undefined ? { dtype: options.dtype } : {}),
            ...(options.outDtype !== undefined ? { outDtype: options.outDtype } : {}),
          },
        }
      : {}),
    models,
    ...(usesBase && docBase !== undefined ? { base: docBase } : {}),
    donor,
    tokenizerDonor,
    tensors,
    outputBytes,
    inputBytes,
    numLayers,
    ...(untied.length > 0 ? { untied } : {}),
    memory,
    warnings: [...new Set(warnings)],
  };
}

/** The models a plan merges (inputs of some tensor), the base excluded: not one that only gives the tokenizer. */
export function mergedModels(plan: MergePlan): PlanModel[] {
  const used = new Set<number>();
  for (const t of plan.tensors) for (const i of t.inputs) used.add(i.model);
  return plan.models.filter((m) => m.id !== plan.base && used.has(m.id));
}

export function estimateMemory(
  tensors: readonly PlanTensor[],
  method: MergeMethod,
  threads: number,
  budget: number,
  ranksOf: (t: PlanTensor) => readonly (number | undefined)[] = () => [],
): MemoryEstimate {
  const perThread = Math.floor(budget / threads);
  let largest = { name: '', numel: 0 };
  let worst = 0;
  let chunked = 0;
  let chunkElements = 0;
  let whole: { count: number; largest: { name: string; bytes: number }; flops: number; jsFlops: number } | undefined;
  for (const t of tensors) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (numel > largest.numel) largest = { name: t.name, numel };
    const cost = t.op === 'copy' ? undefined : method.wholeTensorCost?.(t.shape, t.inputs.length, t.params, ranksOf(t));
    if (cost !== undefined) {
      // held whole whatever the budget (one tensor at a time on the calling thread)
      whole ??= { count: 0, largest: { name: '', bytes: 0 }, flops: 0, jsFlops: 0 };
      whole.count++;
      whole.flops += cost.flops;
      whole.jsFlops += cost.jsFlops ?? 0;
      if (cost.bytes > whole.largest.bytes) whole.largest = { name: t.name, bytes: cost.bytes };
      worst = Math.max(worst, cost.bytes);
      continue;
    }
    const bpe = t.op === 'copy' ? DTYPE_INFO[t.dtype].bytes * 2 + 4 : workingBytesPerElement(t);
    // pieces are COMPUTE_CHUNK_ELEMENTS, or whole rows for mergers that chunk by rows
    const rowLen = t.shape.length <= 1 ? 1 : numel / Math.max(1, t.shape[0]!);
    const piece = t.op === 'copy' ? 0 : pieceBytes(t, method, Math.min(numel, Math.max(COMPUTE_CHUNK_ELEMENTS, rowLen)));
    const bytes = numel * bpe + piece;
    if (bytes > perThread) chunked++;
    worst = Math.max(worst, Math.min(bytes, perThread));
    chunkElements = Math.max(chunkElements, Math.floor((perThread - piece) / bpe));
  }
  // node runtime and modules (main thread, plus one runtime per worker), reader scratch, histograms, writer state;
  // linalg methods merge on the calling thread (one lane) and load ONNX Runtime (about 100 MB)
  const lanes = method.linalg ? 1 : threads;
  const overhead = 150_000_000 + (lanes > 1 ? lanes * 70_000_000 : 0) + (method.linalg ? 100_000_000 : 0);
  return {
    budgetBytes: budget,
    threads,
    chunkElements,
    largestTensor: largest,
    peakBytes: overhead + worst * lanes,
    chunkedTensors: chunked,
    ...(whole !== undefined ? { wholeTensors: whole } : {}),
  };
}
