// `analyze merge`: what a recipe's method keeps and drops per tensor, without writing a checkpoint. The plan gives
// each tensor's resolved parameters; a streaming pass runs the real mergers (the executor's runTensor, output
// discarded) and collects TensorMerger.report() (TIES/DARE kept fractions, rescale factors) plus, when there is a
// base, the fraction of entries the merge changes and the sign conflicts of the task vectors. Must not import src/cli.

import { UsageError } from '../errors.js';
import { openCheckpointPath } from '../io/open.js';
import type { Chunk, MergeMethod, Params, TensorContext, TensorMerger } from '../merge/types.js';
import { runModelPrepass, runTensor, Scratch } from '../plan/execute.js';
import { loadRecipe } from '../plan/merge.js';
import { buildPlanFromModels, DEFAULT_MEMORY_BUDGET, openModels, type MergePlan } from '../plan/plan.js';
import type { ParamValue } from '../recipe/spec.js';
import { DTYPE_INFO } from '../tensor/dtype.js';
import { jsMatMul, type MatMulBackend } from '../tensor/linalg/index.js';
import { compareLayerKeys, defaultLabels, layerKeys, type LayerKey } from './vectors.js';

/** What the streaming pass saw of one merged tensor (base methods only). */
export interface MergeEffect {
  /** fraction of entries where the merged value differs from the base */
  changedFraction: number;
  /** among positions where at least two task vectors are non-zero, the fraction with both signs present */
  signConflict: number;
}

export interface MergeTensorAnalysis {
  name: string;
  shape: number[];
  layer: LayerKey;
  op: 'merge' | 'copy';
  /** resolved global parameters of this tensor */
  params: Record<string, ParamValue>;
  /** resolved per-model parameters, one record per non-base model */
  modelParams: Record<string, ParamValue>[];
  /** TensorMerger.report() (e.g. kept_fraction_i, rescale_i); null for methods without one and for copies */
  report: Record<string, number> | null;
  effect: MergeEffect | null;
}

export interface MergeLayerAnalysis {
  layer: LayerKey;
  numel: number;
  /** numel-weighted means of every numeric report key over the layer's merged tensors */
  report: Record<string, number>;
  changedFraction: number | null;
}

export interface MergeAnalysisReport {
  kind: 'weightkit.analyze.merge';
  version: 1;
  recipe: string;
  method: string;
  /** label of the base model, when the method uses one */
  base: string | null;
  /** labels of the non-base inputs (report keys `..._i` refer to these, in order) */
  models: string[];
  /** whether the method reports per-tensor statistics (else only parameters are shown) */
  reports: boolean;
  tensors: MergeTensorAnalysis[];
  layers: MergeLayerAnalysis[];
  /** numel-weighted means over every merged tensor */
  totals: { numel: number; report: Record<string, number>; changedFraction: number | null };
  warnings: string[];
}

export interface AnalyzeMergeOptions {
  seed?: number;
  /** working memory in bytes (default 1 GB) */
  memoryBudget?: number;
  linalg?: MatMulBackend;
  signal?: AbortSignal;
  onProgress?: (p: { tensor: string; index: number; count: number; bytesRead: number; bytesWritten: number }) => void;
}

interface Captured {
  merger: TensorMerger | undefined;
  report: Record<string, number> | null;
  changed: number;
  conflicts: number;
  multi: number;
  numel: number;
}

/** A merger that forwards everything to `m` and counts, on the emit pass, what the merge changed. */
function observing(m: TensorMerger, cap: Captured): TensorMerger {
  const w: { -readonly [K in keyof TensorMerger]: TensorMerger[K] } = {
    chunking: m.chunking,
    emit(chunk: Chunk, out: Float32Array): void {
      m.emit(chunk, out);
      const base = chunk.base;
      if (!base) return;
      const len = chunk.length;
      let changed = 0;
      let conflicts = 0;
      let multi = 0;
      const models = chunk.models;
      for (let e = 0; e < len; e++) {
        const b = base[e]!;
        if (out[e] !== b) changed++;
        let pos = 0;
        let neg = 0;
        for (let k = 0; k < models.length; k++) {
          const d = models[k]![e]! - b;
          pos += +(d > 0);
          neg += +(d < 0);
        }
        if (pos + neg >= 2) {
          multi++;
          if (pos > 0 && neg > 0) conflicts++;
        }
      }
      cap.changed += changed;
      cap.conflicts += conflicts;
      cap.multi += multi;
      cap.numel += len;
    },
  };
  if (m.beginPass) w.beginPass = (p) => m.beginPass!(p);
  if (m.observe) w.observe = (p, c) => m.observe!(p, c);
  if (m.compute) w.compute = (c) => m.compute!(c);
  return w;
}

function weightedMeans(items: readonly { numel: number; report: Record<string, number> | null }[]): Record<string, number> {
  const sums = new Map<string, number>();
  const weights = new Map<string, number>();
  for (const it of items) {
    if (!it.report) continue;
    for (const [k, v] of Object.entries(it.report)) {
      if (!Number.isFinite(v)) continue;
      sums.set(k, (sums.get(k) ?? 0) + v * it.numel);
      weights.set(k, (weights.get(k) ?? 0) + it.numel);
    }
  }
  const out: Record<string, number> = {};
  for (const [k, s] of sums) out[k] = weights.get(k)! > 0 ? s / weights.get(k)! : 0;
  return out;
}

const plain = (p: Params): Record<string, ParamValue> => ({ ...p });

/** Analyse one-document recipe `recipePath`: plan, then one streaming pass of its mergers; nothing is written. */
export async function analyzeMerge(recipePath: string, options: AnalyzeMergeOptions = {}): Promise<MergeAnalysisReport> {
  const { recipe, stages } = await loadRecipe(recipePath);
  if (stages.length !== 1) {
    throw new UsageError('USAGE', `analyze merge: ${recipePath} has ${stages.length} documents; analyse one-document recipes (merge the earlier stages first)`);
  }
  const { doc, method } = stages[0]!;
  const resolved = await openModels(doc, openCheckpointPath);
  try {
    const budget = options.memoryBudget ?? DEFAULT_MEMORY_BUDGET;
    const plan: MergePlan = buildPlanFromModels(doc, method, resolved, recipe.docs.length === 1 ? recipe.text : doc.text, {
      ...(options.seed !== undefined ? { seed: options.seed } : {}),
      threads: 1,
      memoryBudget: budget,
    });
    const captured = new Map<string, Captured>();
    const wrapped: MergeMethod = Object.assign(Object.create(method) as MergeMethod, {
      create(ctx: TensorContext): TensorMerger {
        const m = method.create(ctx);
        const cap: Captured = { merger: m, report: null, changed: 0, conflicts: 0, multi: 0, numel: 0 };
        captured.set(ctx.name, cap);
        return observing(m, cap);
      },
    });
    const modelStats = await runModelPrepass(method, plan.tensors, resolved.readers, budget, { seed: plan.seed, ...(method.linalg ? { linalg: options.linalg ?? jsMatMul } : {}) });
    const scratch = new Scratch();
    const sink = { writeRange: async (): Promise<void> => undefined };
    let bytesRead = 0;
    const merged = plan.tensors.filter((t) => t.op === 'merge');
    let index = 0;
    for (const t of merged) {
      if (options.signal?.aborted) throw new UsageError('INTERRUPTED', 'interrupted');
      await runTensor(
        {
          method: wrapped,
          readers: resolved.readers,
          sink,
          seed: plan.seed,
          budgetBytes: budget,
          scratch,
          ...(modelStats !== undefined ? { modelStats } : {}),
          ...(method.linalg ? { linalg: options.linalg ?? jsMatMul } : {}),
        },
        t,
      );
      // report() after the emit pass, then the merger is let go
      const cap = captured.get(t.name);
      if (cap) {
        cap.report = cap.merger?.report?.() ?? null;
        cap.merger = undefined;
      }
      bytesRead += [...(t.base ? [t.base] : []), ...t.inputs].reduce((a, i) => a + i.shape.reduce((x, y) => x * y, 1) * DTYPE_INFO[i.dtype].bytes, 0);
      options.onProgress?.({ tensor: t.name, index: ++index, count: merged.length, bytesRead, bytesWritten: 0 });
    }
    const layerOf = layerKeys(plan.tensors.map((t) => t.name));
    const modelLabels = defaultLabels(plan.models.map((m) => m.path));
    const baseId = plan.base;
    const nonBase = merged[0]?.inputs.map((i) => modelLabels[i.model]!) ?? plan.models.filter((m) => m.id !== baseId).map((m) => modelLabels[m.id]!);
    const tensors: MergeTensorAnalysis[] = plan.tensors.map((t) => {
      const cap = captured.get(t.name);
      return {
        name: t.name,
        shape: [...t.shape],
        layer: layerOf.get(t.name)!,
        op: t.op,
        params: plain(t.params),
        modelParams: t.modelParams.map(plain),
        report: cap?.report ?? null,
        effect: cap && cap.numel > 0 ? { changedFraction: cap.changed / cap.numel, signConflict: cap.multi > 0 ? cap.conflicts / cap.multi : 0 } : null,
      };
    });
    const numelOf = (t: MergeTensorAnalysis): number => t.shape.reduce((a, b) => a * b, 1);
    const summary = (ts: readonly MergeTensorAnalysis[]): { numel: number; report: Record<string, number>; changedFraction: number | null } => {
      const m = ts.filter((t) => t.op === 'merge');
      const numel = m.reduce((a, t) => a + numelOf(t), 0);
      const eff = m.filter((t) => t.effect);
      const effNumel = eff.reduce((a, t) => a + numelOf(t), 0);
      return {
        numel,
        report: weightedMeans(m.map((t) => ({ numel: numelOf(t), report: t.report }))),
        changedFraction: effNumel > 0 ? eff.reduce((a, t) => a + t.effect!.changedFraction * numelOf(t), 0) / effNumel : null,
      };
    };
    const byLayer = new Map<LayerKey, MergeTensorAnalysis[]>();
    for (const t of tensors) {
      let l = byLayer.get(t.layer);
      if (!l) byLayer.set(t.layer, (l = []));
      l.push(t);
    }
    return {
      kind: 'weightkit.analyze.merge',
      version: 1,
      recipe: recipe.file,
      method: plan.method,
      base: baseId !== undefined ? modelLabels[baseId]! : null,
      models: nonBase,
      reports: tensors.some((t) => t.report !== null),
      tensors,
      layers: [...byLayer.entries()].sort((a, b) => compareLayerKeys(a[0], b[0])).map(([layer, ts]) => ({ layer, ...summary(ts) })),
      totals: summary(tensors),
      warnings: [...recipe.warnings.map((w) => `${w.pos.file}:${w.pos.line}:${w.pos.col}: ${w.message}`), ...plan.warnings],
    };
  } finally {
    for (const [, r] of resolved.readers) await r.close();
  }
}
