// The merge entry points shared by the API and the CLI: load + validate a recipe, order multi-document stages,
// plan each stage, execute it tensor by tensor into a staged output folder (sharded safetensors + index, config,
// tokenizer files, model card, recipe; a patched ONNX graph for ONNX inputs) and rename it into place.

import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { RecipeError, RecipeProblems, UsageError } from '../errors.js';
import { openCheckpointPath } from '../io/open.js';
import { makeDirs } from '../io/file.js';
import { trackTemp, untrackTemp } from '../io/temps.js';
import { stageOutputDir } from '../io/output.js';
import { openShardedWriter } from '../io/safetensors/sharded-writer.js';
import type { CheckpointReader } from '../io/types.js';
import { getMethod, methodCatalog } from '../merge/registry.js';
import type { MergeMethod } from '../merge/types.js';
import { ProblemSink, parseRecipeInto, readRecipeText, sortProblems } from '../recipe/load.js';
import type { Recipe, RecipeDoc } from '../recipe/types.js';
import { validateRecipeInto } from '../recipe/validate.js';
import type { DType } from '../tensor/dtype.js';
import { jsMatMul, type MatMulBackend } from '../tensor/linalg/backend.js';
import { WEIGHTKIT_VERSION } from '../version.js';
import { laneScratch, largestOutputStep, runModelPrepass, runTensor, type TensorSink } from './execute.js';
import { writeCompanionFiles } from './outputs.js';
import { LANES, runPool } from './pool.js';
import { DEFAULT_MEMORY_BUDGET, buildPlanFromModels, usesWorkers, missingModelProblem, modelPath, modelRefsOf, openModels, openProblems, type MergePlan, type StageOutput } from './plan.js';
import { plannedCheckpoint } from './virtual.js';

export const DEFAULT_SHARD_SIZE = 5_000_000_000;
/** Default worker count: the machine's cores. */
export function defaultThreads(): number {
  return Math.max(1, availableParallelism());
}


export interface MergeProgress {
  stage: number;
  stages: number;
  tensorsDone: number;
  tensorsTotal: number;
  bytesDone: number;
  bytesTotal: number;
  elapsedMs: number;
  tensor?: string;
}

export interface MergeOptions {
  /** output folder */
  out: string;
  threads?: number;
  seed?: number;
  shardSize?: number;
  dtype?: DType;
  outDtype?: DType;
  overwrite?: boolean;
  lenient?: boolean;
  /** working-memory budget for tensor data in bytes (default 1 GB) */
  memoryBudget?: number;
  /** where intermediate stages of a multi-document recipe go (default: a temporary folder, removed after) */
  intermediateDir?: string;
  onProgress?: (p: MergeProgress) => void;
  /** Each warning as soon as it is known (a stage's plan warnings before it runs); MergeResult.warnings lists all. */
  onWarning?: (warning: string) => void;
  /** worker threads: 'auto' uses them only for outputs over 32 MB (start-up costs more below); 'always' forces them */
  pool?: 'auto' | 'always';
  /** stops the merge between tensors; the staged output is removed and an INTERRUPTED error thrown */
  signal?: AbortSignal;
  /**
   * Matrix products for methods that declare `linalg` (tsv, rtsvm, iso_c). Their tensors are merged on the calling
   * thread, one at a time (no worker pool: this backend is multi-threaded itself). Default jsMatMul (~2-3 GFLOP/s);
   * `mergeWithOrt` (src/eval/merge-with-ort.ts) and the CLI pass the ONNX Runtime backend (~50x faster).
   */
  linalg?: MatMulBackend;
}

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new UsageError('INTERRUPTED', 'interrupted; nothing was written (the partial output was removed)');
}

/**
 * The backend with an abort check before every product: a linalg method holds one tensor for many seconds (a 4096²
 * TSV-M layer: about 300 products), so Ctrl-C stops between products instead of after the tensor.
 */
export function abortable(backend: MatMulBackend, signal: AbortSignal | undefined): MatMulBackend {
  if (signal === undefined) return backend;
  return {
    name: backend.name,
    // the backend's native dense kernels too: without them the SVD methods take other (slower) routes, other bits
    ...(backend.dense !== undefined ? { dense: backend.dense } : {}),
    matmul(a, b, m, k, n, opts) {
      checkAborted(signal);
      return backend.matmul(a, b, m, k, n, opts);
    },
  };
}

export interface MergeResult {
  out: string;
  plans: MergePlan[];
  files: string[];
  bytesWritten: number;
  seconds: number;
  warnings: string[];
}

export interface LoadedRecipe {
  recipe: Recipe;
  /** documents in execution order (dependencies first), each with its method */
  stages: { doc: RecipeDoc; method: MergeMethod }[];
}

/** The options of merge/buildPlan as the CLI checks its flags (the API gets the same typed errors). */
export function checkOptions(o: Omit<MergeOptions, 'out'>): void {
  const bad = (what: string, v: unknown): never => {
    throw new UsageError('USAGE', `${what} (got ${String(v)})`);
  };
  if (o.threads !== undefined && !(Number.isSafeInteger(o.threads) && o.threads >= 1)) bad('threads must be a positive integer', o.threads);
  if (o.seed !== undefined && !(Number.isSafeInteger(o.seed) && o.seed >= 0)) bad('seed must be a non-negative integer', o.seed);
  if (o.memoryBudget !== undefined && !(Number.isFinite(o.memoryBudget) && o.memoryBudget > 0)) bad('memoryBudget must be a positive number of bytes', o.memoryBudget);
  if (o.shardSize !== undefined && !(Number.isSafeInteger(o.shardSize) && o.shardSize > 0)) bad('shardSize must be a positive integer number of bytes', o.shardSize);
  for (const [k, d] of [['dtype', o.dtype], ['outDtype', o.outDtype]] as const) {
    if (d !== undefined && d !== 'F32' && d !== 'F16' && d !== 'BF16') bad(`${k} must be F32, F16 or BF16`, d);
  }
}

/** Read, parse and validate a recipe file; order multi-document stages. Throws RecipeProblems. */
export async function loadRecipe(path: string, options: { lenient?: boolean } = {}): Promise<LoadedRecipe> {
  // syntax, schema, method and model-path problems are all collected before anything is reported
  const sink = new ProblemSink(Boolean(options.lenient));
  const recipe = parseRecipeInto(await readRecipeText(path), path, sink);
  const methods = validateRecipeInto(recipe, methodCatalog(), sink);
  const named = new Map<string, RecipeDoc>();
  for (const d of recipe.docs) if (d.name) named.set(d.name.value, d);
  for (const d of recipe.docs) {
    for (const ref of modelRefsOf(d)) {
      const p = missingModelProblem(d, ref, (name) => named.has(name));
      if (p && !sink.problems.some((q) => q.where.line === p.where.line && q.where.col === p.where.col)) sink.problems.push(p);
    }
  }
  if (sink.problems.length > 0) {
    // the models that cannot be opened too, in the same report (otherwise found only once the rest is fixed)
    for (const d of recipe.docs) {
      for (const p of await openProblems(d, openCheckpointPath, (name) => named.has(name))) {
        if (!sink.problems.some((q) => q.where.line === p.where.line && q.where.col === p.where.col)) sink.problems.push(p);
      }
    }
    throw new RecipeProblems(path, sortProblems(sink.problems));
  }
  const order: RecipeDoc[] = [];
  const state = new Map<RecipeDoc, 'visiting' | 'done'>();
  const visit = (d: RecipeDoc): void => {
    const st = state.get(d);
    if (st === 'done') return;
    if (st === 'visiting') {
      throw new RecipeProblems(recipe.file, [
        new RecipeError('RECIPE_CYCLE', `stage '${d.name?.value ?? '(unnamed)'}' depends on itself through other stages`, {
          where: { file: recipe.file, line: d.pos.line, col: d.pos.col },
        }),
      ]);
    }
    state.set(d, 'visiting');
    // a stage's inputs: models named by stage, also as the base of stage+adapter
    for (const r of modelRefsOf(d).filter((x) => !x.vector).map((x) => x.lora?.base ?? x.ref)) {
      const dep = named.get(r);
      if (dep && dep !== d) visit(dep);
      else if (dep === d) visit(d);
    }
    state.set(d, 'done');
    order.push(d);
  };
  for (const d of recipe.docs) visit(d);
  return { recipe, stages: order.map((doc) => ({ doc, method: getMethod(methods.get(doc)!.name) })) };
}

/**
 * The recipe text a stage records (its hash, the output's weightkit_recipe.yaml and model card): the whole file for
 * the final stage (a multi-document recipe's final output keeps every stage it was made from), an intermediate
 * stage's own document.
 */
function docText(recipe: Recipe, doc: RecipeDoc, last: boolean): string {
  return recipe.docs.length === 1 || last ? recipe.text : doc.text;
}

/** Plan every stage without reading tensor data (later stages see earlier ones as planned checkpoints). */
export async function buildPlan(recipePath: string, options: Omit<MergeOptions, 'out'> & { out?: string } = {}): Promise<MergePlan[]> {
  checkOptions(options);
  return planStages(await loadRecipe(recipePath, options), options);
}

/** Plan the stages of a loaded recipe (later stages against the planned outputs of earlier ones). */
async function planStages({ recipe, stages }: LoadedRecipe, options: Omit<MergeOptions, 'out'> & { out?: string }): Promise<MergePlan[]> {
  const stageOutputs = new Map<string, StageOutput>();
  const plans: MergePlan[] = [];
  const opened: CheckpointReader[] = [];
  try {
    for (const { doc, method } of stages) {
      const resolved = await openModels(doc, openCheckpointPath, stageOutputs);
      for (const [, r] of resolved.readers) if (![...stageOutputs.values()].some((s) => s.reader === r)) opened.push(r);
      const plan = buildPlanFromModels(doc, method, resolved, docText(recipe, doc, doc === stages.at(-1)!.doc), planOptions(options));
      plans.push(plan);
      if (doc.name) {
        const path = join(options.intermediateDir ?? join(resolve(options.out ?? '.'), '.stages'), doc.name.value);
        stageOutputs.set(doc.name.value, { path, reader: plannedCheckpoint(plan, path), planned: true });
      }
    }
  } finally {
    for (const r of opened) await r.close();
  }
  return plans;
}

function planOptions(o: Omit<MergeOptions, 'out'>): Parameters<typeof buildPlanFromModels>[4] {
  return {
    ...(o.dtype ? { dtype: o.dtype } : {}),
    ...(o.outDtype ? { outDtype: o.outDtype } : {}),
    ...(o.seed !== undefined ? { seed: o.seed } : {}),
    threads: o.threads ?? defaultThreads(),
    memoryBudget: o.memoryBudget ?? DEFAULT_MEMORY_BUDGET,
  };
}

/** Run a recipe: every stage, into `options.out`, atomically. */
export async function merge(recipePath: string, options: MergeOptions): Promise<MergeResult> {
  checkOptions(options);
  const t0 = performance.now();
  const loaded = await loadRecipe(recipePath, options);
  const { recipe, stages } = loaded;
  // a multi-document recipe is planned whole first (later stages against the planned outputs of earlier ones), so a
  // problem in its last stage is reported before the first stage runs
  if (stages.length > 1) await planStages(loaded, options);
  const warnings: string[] = [...recipe.warnings.map((w) => `${w.pos.file}:${w.pos.line}:${w.pos.col}: ${w.message}`)];
  // every model path the recipe names must differ from the output
  const inputPaths: string[] = [];
  for (const { doc } of stages) {
    for (const r of modelRefsOf(doc)) if (r.vector || !stages.some((s) => s.doc.name?.value === (r.lora?.base ?? r.ref))) inputPaths.push(modelPath(doc, r));
  }
  const staged = await stageOutputDir(options.out, { overwrite: options.overwrite, inputs: inputPaths });
  const ownIntermediate = options.intermediateDir === undefined;
  const interRoot = options.intermediateDir ?? (stages.length > 1 ? await mkdtemp(join(dirname(resolve(options.out)), '.weightkit-stages-')) : '');
  if (ownIntermediate && interRoot) trackTemp(interRoot);
  const stageOutputs = new Map<string, StageOutput>();
  const plans: MergePlan[] = [];
  let bytesWritten = 0;
  let files: string[] = [];
  try {
    for (const [si, { doc, method }] of stages.entries()) {
      const last = si === stages.length - 1;
      const dir = last ? staged.staging : join(interRoot, doc.name!.value);
      if (!last) await makeDirs(dir);
      const resolved = await openModels(doc, openCheckpointPath, stageOutputs);
      try {
        const plan = buildPlanFromModels(doc, method, resolved, docText(recipe, doc, last), planOptions(options));
        plans.push(plan);
        for (const w of plan.warnings) if (!warnings.includes(w)) options.onWarning?.(w);
        warnings.push(...plan.warnings);
        const r = await executePlan(
          plan,
          method,
          resolved.readers,
          dir,
          options,
          (p) => options.onProgress?.({ ...p, stage: si + 1, stages: stages.length }),
          last, // an intermediate stage is read again at once: keep it in the page cache
        );
        bytesWritten += r.bytes;
        warnings.push(...r.warnings);
        const companions = await writeCompanionFiles(plan, dir, docText(recipe, doc, last), warnings);
        files = [...r.files, ...companions];
        const onnxBase = plan.models[plan.base ?? plan.donor]!;
        if (onnxBase.format === 'onnx') {
          // loaded here: the ONNX protobuf schema is only needed for ONNX bases
          const { patchOnnx } = await import('../io/onnx/patch.js');
          const merged = await openCheckpointPath(dir);
          try {
            await patchOnnx({ model: onnxBase.path, out: join(dir, 'model.onnx'), replacements: async (name) => (merged.has(name) ? merged.read(name) : undefined), cast: true, external: 'auto' });
            files.push('model.onnx');
          } finally {
            await merged.close();
          }
        }
      } finally {
        for (const [, rd] of resolved.readers) if (![...stageOutputs.values()].some((s) => s.reader === rd)) await rd.close();
      }
      if (!last && doc.name) stageOutputs.set(doc.name.value, { path: dir, reader: await openCheckpointPath(dir) });
    }
    await staged.commit();
  } catch (e) {
    await staged.abort();
    throw e;
  } finally {
    for (const s of stageOutputs.values()) await s.reader.close();
    if (ownIntermediate && interRoot) {
      await rm(interRoot, { recursive: true, force: true });
      untrackTemp(interRoot);
    }
  }
  return { out: options.out, plans, files, bytesWritten, seconds: (performance.now() - t0) / 1000, warnings: [...new Set(warnings)] };
}

/** Execute one plan into `dir` (sharded safetensors + index). */
export async function executePlan(
  plan: MergePlan,
  method: MergeMethod,
  readers: ReadonlyMap<number, CheckpointReader>,
  dir: string,
  options: Omit<MergeOptions, 'out'>,
  onProgress?: (p: Omit<MergeProgress, 'stage' | 'stages'>) => void,
  /** write large ranges with O_DIRECT where allowed; false for an output read again at once (intermediate stages) */
  directWrites = true,
): Promise<{ bytes: number; files: string[]; warnings: string[] }> {
  const t0 = performance.now();
  const said: string[] = [];
  const metadata: Record<string, string> = {
    format: 'pt',
    weightkit_version: WEIGHTKIT_VERSION,
    weightkit_method: plan.method,
    weightkit_recipe_sha256: plan.recipe.sha256,
    weightkit_seed: String(plan.seed),
    ...(plan.overrides !== undefined ? { weightkit_overrides: JSON.stringify(plan.overrides) } : {}),
  };
  const decls = plan.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape }));
  const writer = await openShardedWriter(dir, decls, { shardSize: options.shardSize ?? DEFAULT_SHARD_SIZE, metadata, ...(directWrites ? {} : { direct: false }) });
  const sink: TensorSink = { writeRange: (name, off, bytes) => writer.writeRange(name, off, bytes), position: (name, off) => writer.locate(name).offset + off };
  let bytes = 0;
  try {
    const threads = Math.max(1, options.threads ?? defaultThreads());
    const budget = Math.floor((options.memoryBudget ?? DEFAULT_MEMORY_BUDGET) / threads);
    let done = 0;
    // the methods' warnings about results (an all-NaN tensor, ...), told at once and returned
    const warn = (w: string): void => {
      if (said.includes(w)) return;
      said.push(w);
      options.onWarning?.(w);
    };
    const report = (name: string, n: number): void => {
      checkAborted(options.signal);
      bytes += n;
      done++;
      onProgress?.({ tensorsDone: done, tensorsTotal: plan.tensors.length, bytesDone: bytes, bytesTotal: plan.outputBytes, elapsedMs: performance.now() - t0, tensor: name });
    };
    const linalg = method.linalg ? abortable(options.linalg ?? jsMatMul, options.signal) : undefined;
    const modelStats = await runModelPrepass(method, plan.tensors, readers, budget * threads, { seed: plan.seed, ...(linalg ? { linalg } : {}) });
    const stats = { ...(modelStats !== undefined ? { modelStats } : {}), ...(linalg ? { linalg } : {}) };
    if (usesWorkers(method, threads, plan.tensors.length, plan.outputBytes, options.pool)) {
      const jobs = plan.tensors.map((tensor, index) => ({ index, tensor, ...writer.locate(tensor.name) }));
      await runPool(
        {
          models: plan.models.map((m) => {
            // the headers this thread parsed: the workers open the same files without parsing them again
            const known = readers.get(m.id)?.knownHeaders?.();
            return { id: m.id, path: m.path, ref: m.ref, ...(m.vector ? { vectorBase: m.vector.base } : {}), ...(known && known.length > 0 ? { known } : {}) };
          }),
          method: method.name,
          seed: plan.seed,
          budgetBytes: Math.floor(budget / LANES),
          outputElements: largestOutputStep(plan.tensors, Math.floor(budget / LANES)),
          ...(directWrites ? {} : { directWrites: false }),
          ...stats,
        },
        jobs,
        threads,
        (job, n, edges, said) => {
          writer.markWritten(job.tensor.name, edges);
          for (const w of said) warn(w);
          report(job.tensor.name, n);
        },
        options.signal,
      );
      checkAborted(options.signal);
    } else {
      // LANES tensors at a time on this thread, so reads and writes of some overlap the computation of another; a
      // linalg method runs one tensor at a time (its backend is multi-threaded, and each tensor is held whole)
      const queue = [...plan.tensors];
      const lanesWanted = method.linalg ? 1 : LANES;
      const laneBudget = Math.floor((budget * threads) / lanesWanted);
      let failed = false;
      const lanes = await Promise.allSettled(
        Array.from({ length: Math.min(lanesWanted, queue.length) }, async () => {
          const scratch = laneScratch(largestOutputStep(plan.tensors, laneBudget));
          try {
            for (let t = queue.shift(); t && !failed; t = queue.shift()) {
              checkAborted(options.signal);
              report(t.name, await runTensor({ method, readers, sink, seed: plan.seed, budgetBytes: laneBudget, scratch, warn, modelRef: (id) => plan.models[id]?.ref ?? String(id), ...stats }, t));
            }
          } catch (e) {
            failed = true; // the other lane stops after its current tensor
            throw e;
          }
        }),
      );
      const firstError = lanes.find((l): l is PromiseRejectedResult => l.status === 'rejected');
      if (firstError) throw firstError.reason;
    }
    await writer.close();
  } catch (e) {
    await writer.abort();
    throw e;
  }
  return { bytes, files: writer.files.map((f) => f.slice(dir.length + 1)), warnings: said };
}
