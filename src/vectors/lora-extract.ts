// LoRA adapters out (mergekit-extract-lora semantics): for every 2-D (and conv) weight of τ = F − B, the top singular
// triplets of τ written as a PEFT adapter, B = U·√S and A = √S·Vᵀ (scale 1: lora_alpha = r), with rank_pattern /
// alpha_pattern where ranks differ; input embeddings and norms go to modules_to_save at full weight (unless embedLora /
// skipUndecomposable); mergekit's include/exclude regexes and --no-distribute-scale are supported. Reports
// each module's relative reconstruction error ‖τ − BA‖/‖τ‖ measured on the factors as stored. Memory: one τ and its
// factors at a time (factors are staged in a scratch file). Must not import src/eval: the caller passes the backend.

import { open, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError, VectorError, wrapIoError } from '../errors.js';
import { readExactlyAt, writeExactlyAt } from '../io/file.js';
import { openCheckpointPath } from '../io/open.js';
import { stageOutputDir } from '../io/output.js';
import { openSafetensorsWriter } from '../io/safetensors/writer.js';
import type { CheckpointReader, TensorDecl, TensorInfo } from '../io/types.js';
import { fromF32, toF32 } from '../tensor/convert.js';
import { DTYPE_INFO, isFloatDType, type DType } from '../tensor/dtype.js';
import { jsMatMul, transposeF32, truncatedSvd, type MatMulBackend } from '../tensor/linalg/index.js';
import { WEIGHTKIT_VERSION } from '../version.js';
import { checkVectorDtype } from './extract.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, PEFT_PREFIX } from './lora.js';
import { pairTensors } from './pairing.js';
import { interrupted, type StreamProgress } from './stream.js';

/** Input embeddings (nn.Embedding): saved whole in modules_to_save unless embedLora (mergekit's default). */
const INPUT_EMBEDDING_RE = /(^|\.)(embed_tokens|wte|wpe|tok_embeddings|word_embeddings|embed_in|position_embeddings|token_type_embeddings|embed_positions|embedding)\.weight$/;

/** f32 machine epsilon: singular values below max(m, n)·ε·σ_max are rounding noise of τ. */
const F32_EPSILON = 2 ** -23;

export interface LoraExtractOptions {
  base: string;
  finetuned: string;
  /** the adapter folder to write */
  out: string;
  /** largest rank kept per module */
  rank: number;
  /** drop singular values below svEpsilon·σ_max of their module (ranks then differ: rank_pattern) */
  svEpsilon?: number;
  /** storage dtype of the factors (default F32) */
  dtype?: DType;
  /** embeddings as lora_embedding_A/B instead of full modules_to_save weights */
  embedLora?: boolean;
  /** modules saved at full weight (modules_to_save), by module name or `.`-suffix */
  saveModules?: readonly string[];
  /** regular expressions (searched in the module name, like Python's re.search): when given, only matching modules are extracted (mergekit -i) */
  include?: readonly string[];
  /** regular expressions: matching modules are left out (mergekit -e); an excluded input embedding is not saved whole either */
  exclude?: readonly string[];
  /** B = U·√S, A = √S·Vᵀ (default true, mergekit's --distribute-scale); false: B = U, A = S·Vᵀ */
  distributeScale?: boolean;
  /** changed modules a LoRA cannot hold (norms: 1-D weights) are left out instead of saved at full weight in modules_to_save (mergekit's --skip-undecomposable) */
  skipUndecomposable?: boolean;
  /** products of the randomized SVD and the error check (default jsMatMul; the CLI passes ONNX Runtime) */
  backend?: MatMulBackend;
  /** 'auto' (default): exact Jacobi for min(m, n) <= 256, randomized above */
  svd?: 'auto' | 'exact' | 'randomized';
  seed?: number;
  /** base_model_name_or_path written to the config (default: the base path) */
  baseModelName?: string;
  overwrite?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: StreamProgress) => void;
}

export type ExtractedKind = 'lora' | 'lora_embedding' | 'full' | 'zero' | 'dropped' | 'excluded';

export interface ExtractedModule {
  /** the base tensor */
  tensor: string;
  module: string;
  shape: number[];
  /**
   * lora / lora_embedding: factors written; full: modules_to_save (input embeddings, --save-module, and modules a
   * LoRA cannot hold such as norms); zero: τ = 0 (nothing written); dropped: τ ≠ 0 but left out (biases of LoRA
   * modules; undecomposable modules with skipUndecomposable); excluded: left out by include/exclude
   */
  kind: ExtractedKind;
  rank: number;
  /** ‖τ − BA‖/‖τ‖ with the factors as stored (0 for full, 1 for dropped, 0 for zero) */
  relError: number;
  /** ‖τ‖ (Frobenius) */
  norm: number;
  /** largest singular value of τ (lora kinds) */
  sigmaMax?: number;
}

export interface LoraExtractResult {
  out: string;
  files: string[];
  /** config r (the largest kept rank) */
  r: number;
  modules: ExtractedModule[];
  /** non-float tensors (never part of an adapter) */
  skipped: string[];
  /** ‖τ − Σ reconstructions‖/‖τ‖ over every float tensor */
  totalRelError: number;
  rankPattern: Record<string, number>;
}

interface Staged {
  name: string;
  dtype: DType;
  shape: number[];
  /** bytes in the scratch file, or a full tensor read from the fine-tuned model */
  at?: { offset: number; byteLength: number };
  full?: string;
}

function moduleOf(name: string): string {
  return name.endsWith('.weight') ? name.slice(0, -'.weight'.length) : name.slice(0, Math.max(0, name.lastIndexOf('.')));
}

function matches(list: readonly string[], module: string): boolean {
  return list.some((t) => module === t || module.endsWith('.' + t));
}

/** A non-finite change: an SVD of it would be NaN everywhere (or silently rank 0). */
function notFinite(tensor: string, index: number, where: string): VectorError {
  return new VectorError('VECTOR_NOT_FINITE', `tensor '${tensor}': ${where} gives a non-finite change at element ${index}; a LoRA cannot be extracted from it`, { where: { tensor } });
}

/** The --include/--exclude patterns as RegExps; an invalid one is a USAGE error naming it. */
function compileRegexes(sources: readonly string[] | undefined, option: string): RegExp[] {
  return (sources ?? []).map((src) => {
    try {
      return new RegExp(src);
    } catch (e) {
      throw new UsageError('USAGE', `--${option}: '${src}' is not a valid regular expression (${e instanceof Error ? e.message : String(e)})`);
    }
  });
}

function encode(dtype: DType, v: Float32Array): { bytes: Uint8Array; values: Float32Array } {
  const data = fromF32(dtype, v);
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return { bytes, values: dtype === 'F32' ? v : toF32(dtype, data) };
}

/** Extract a LoRA adapter approximating F − B; see the module comment. */
export async function extractLora(options: LoraExtractOptions): Promise<LoraExtractResult> {
  const dtype = checkVectorDtype(options.dtype);
  if (!Number.isSafeInteger(options.rank) || options.rank < 1) throw new UsageError('USAGE', `--rank must be a positive integer (got ${options.rank})`);
  const eps = options.svEpsilon ?? 0;
  if (!(eps >= 0 && eps < 1)) throw new UsageError('USAGE', `--sv-epsilon must be in [0, 1) (got ${options.svEpsilon})`);
  if (options.out.endsWith('.safetensors')) throw new UsageError('USAGE', `an adapter is a folder; --out ${options.out} names a .safetensors file`);
  const backend = options.backend ?? jsMatMul;
  const saveModules = options.saveModules ?? [];
  const include = compileRegexes(options.include, 'include');
  const exclude = compileRegexes(options.exclude, 'exclude');
  const base = await openCheckpointPath(options.base);
  try {
    const ft = await openCheckpointPath(options.finetuned);
    try {
      const pairing = pairTensors(base, ft, { roles: ['base', 'fine-tuned model'] });
      const staged = await stageOutputDir(options.out, { overwrite: options.overwrite, inputs: [options.base, options.finetuned] });
      const scratchPath = join(staged.staging, '.factors.scratch');
      let scratch: FileHandle | undefined;
      try {
        scratch = await open(scratchPath, 'w+').catch((e: unknown) => {
          throw wrapIoError(e, scratchPath, 'creating scratch file');
        });
        const run = await extractAll(pairing.shared, base, ft, options, { dtype, eps, backend, saveModules, include, exclude, scratch, scratchPath });
        const { modules, items } = run;
        const loraModules = modules.filter((m) => m.kind === 'lora' || m.kind === 'lora_embedding');
        if (loraModules.length === 0 && include.length > 0) {
          throw new UsageError('USAGE', `no changed 2-D weight matches --include ${include.map((r) => r.source).join(', ')}: the adapter would have no LoRA module`);
        }
        if (loraModules.length === 0 && !modules.some((m) => m.kind === 'full')) {
          throw new UsageError('USAGE', `nothing to extract: the fine-tuned model equals the base on every 2-D weight (${options.finetuned})`);
        }
        const r = Math.max(1, ...loraModules.map((m) => m.rank));
        const rankPattern: Record<string, number> = {};
        const alphaPattern: Record<string, number> = {};
        for (const m of loraModules) {
          if (m.rank !== r) {
            rankPattern[m.module] = m.rank;
            alphaPattern[m.module] = m.rank;
          }
        }
        const weightsPath = join(staged.staging, ADAPTER_WEIGHTS_FILE);
        const decls: TensorDecl[] = items.map((s) => ({ name: s.name, dtype: s.dtype, shape: s.shape }));
        const w = await openSafetensorsWriter(weightsPath, decls, { metadata: { format: 'pt', weightkit_version: WEIGHTKIT_VERSION } });
        try {
          for (const s of items) {
            if (s.at) {
              const buf = new Uint8Array(s.at.byteLength);
              await readExactlyAt(scratch, buf, s.at.offset, scratchPath);
              await w.write(s.name, buf);
            } else {
              const f = await ft.readF32(s.full!);
              await w.write(s.name, fromF32(s.dtype, f));
            }
          }
          await w.close();
        } catch (e) {
          await w.abort();
          throw e;
        }
        await scratch.close();
        scratch = undefined;
        await rm(scratchPath, { force: true });
        const config = {
          peft_type: 'LORA',
          base_model_name_or_path: options.baseModelName ?? options.base,
          r,
          lora_alpha: r,
          target_modules: loraModules.map((m) => m.module).sort(),
          rank_pattern: rankPattern,
          alpha_pattern: alphaPattern,
          modules_to_save: modules.some((m) => m.kind === 'full') ? [...new Set(modules.filter((m) => m.kind === 'full').map((m) => m.module))].sort() : null,
          use_rslora: false,
          use_dora: false,
          fan_in_fan_out: false,
          lora_dropout: 0,
          bias: 'none',
          inference_mode: true,
          task_type: null,
          init_lora_weights: true,
        };
        await writeFile(join(staged.staging, ADAPTER_CONFIG_FILE), JSON.stringify(config, null, 2) + '\n');
        await writeFile(join(staged.staging, 'README.md'), card(options, r, modules));
        await staged.commit();
        const norm2 = modules.reduce((a, m) => a + m.norm * m.norm, 0);
        const err2 = modules.reduce((a, m) => a + (m.relError * m.norm) ** 2, 0);
        return {
          out: options.out,
          files: [ADAPTER_WEIGHTS_FILE, ADAPTER_CONFIG_FILE, 'README.md'].map((f) => join(options.out, f)),
          r,
          modules,
          skipped: pairing.skipped,
          totalRelError: norm2 > 0 ? Math.sqrt(err2 / norm2) : 0,
          rankPattern,
        };
      } catch (e) {
        await scratch?.close();
        await staged.abort();
        throw e;
      }
    } finally {
      await ft.close();
    }
  } finally {
    await base.close();
  }
}

interface RunContext {
  dtype: DType;
  eps: number;
  backend: MatMulBackend;
  saveModules: readonly string[];
  include: readonly RegExp[];
  exclude: readonly RegExp[];
  scratch: FileHandle;
  scratchPath: string;
}

async function extractAll(
  shared: readonly TensorInfo[],
  base: CheckpointReader,
  ft: CheckpointReader,
  options: LoraExtractOptions,
  ctx: RunContext,
): Promise<{ modules: ExtractedModule[]; items: Staged[] }> {
  const modules: ExtractedModule[] = [];
  const items: Staged[] = [];
  let offset = 0;
  let bytesRead = 0;
  let bytesWritten = 0;
  const stage = async (name: string, shape: number[], v: Float32Array): Promise<Float32Array> => {
    const { bytes, values } = encode(ctx.dtype, v);
    await writeExactlyAt(ctx.scratch, bytes, offset, ctx.scratchPath);
    items.push({ name, dtype: ctx.dtype, shape, at: { offset, byteLength: bytes.byteLength } });
    offset += bytes.byteLength;
    bytesWritten += bytes.byteLength;
    return values;
  };
  // the rank of each module's weight: a module whose weight is not 2-D (a norm) cannot be held by a LoRA
  const weightRank = new Map<string, number>();
  for (const t of shared) if (t.name.endsWith('.weight')) weightRank.set(moduleOf(t.name), t.shape.length);
  for (const [index, t] of shared.entries()) {
    if (options.signal?.aborted) throw interrupted();
    const module = moduleOf(t.name);
    const shape = [...t.shape];
    const tau = await ft.readF32(t.name);
    const b = await base.readF32(t.name);
    bytesRead += t.byteLength * 2;
    let norm2 = 0;
    for (let i = 0; i < tau.length; i++) {
      const d = tau[i]! - b[i]!;
      if (!Number.isFinite(d)) throw notFinite(t.name, i, Number.isFinite(b[i]!) ? `the fine-tuned model (${options.finetuned})` : `the base (${options.base})`);
      tau[i] = d;
      norm2 += d * d;
    }
    const norm = Math.sqrt(norm2);
    const weight = t.name.endsWith('.weight');
    const embedding = INPUT_EMBEDDING_RE.test(t.name) && shape.length === 2;
    const record = (kind: ExtractedKind, rank: number, relError: number, extra: Partial<ExtractedModule> = {}): void => {
      modules.push({ tensor: t.name, module, shape, kind, rank, relError, norm, ...extra });
    };
    // mergekit's order: --save-module, input embeddings (unless excluded), then the include/exclude filter
    const excluded = ctx.exclude.some((r) => r.test(module));
    const selected = !excluded && (ctx.include.length === 0 || ctx.include.some((r) => r.test(module)));
    const saveWhole = (): void => {
      items.push({ name: PEFT_PREFIX + t.name, dtype: ctx.dtype, shape, full: t.name });
      bytesWritten += t.numel * DTYPE_INFO[ctx.dtype].bytes;
      record('full', 0, 0);
    };
    if (matches(ctx.saveModules, module) || (embedding && !options.embedLora && norm2 > 0 && !excluded)) {
      saveWhole();
    } else if (!selected) {
      record('excluded', 0, norm2 > 0 ? 1 : 0);
    } else if (norm2 === 0) {
      record('zero', 0, 0);
    } else if (!weight || shape.length < 2) {
      // a norm (module without a 2-D weight) goes to modules_to_save whole; a LoRA module's bias is left out
      if ((weightRank.get(module) ?? 0) < 2 && !options.skipUndecomposable) saveWhole();
      else record('dropped', 0, 1);
    } else {
      const m = shape[0]!;
      const n = t.numel / m;
      const k = Math.min(options.rank, m, n);
      const svd = await truncatedSvd(tau, m, n, k, { method: options.svd ?? 'auto', backend: ctx.backend, seed: options.seed ?? 0 });
      const sMax = svd.s[0] ?? 0;
      // numerical rank floor (numpy's matrix_rank tolerance at f32 precision): noise directions are never kept
      const floor = Math.max(ctx.eps, Math.max(m, n) * F32_EPSILON) * sMax;
      let keep = 0;
      while (keep < svd.k && svd.s[keep]! > floor) keep++;
      if (keep === 0) {
        record('zero', 0, 0);
      } else {
        const bf = new Float32Array(m * keep);
        const af = new Float32Array(keep * n);
        // distributed: B = U·√S, A = √S·Vᵀ; else S goes to the factor mergekit calls A (for an embedding, the one
        // stored as lora_embedding_A, i.e. our U side)
        const distribute = options.distributeScale ?? true;
        for (let j = 0; j < keep; j++) {
          const s = svd.s[j]!;
          const su = distribute ? Math.sqrt(s) : embedding ? s : 1;
          const sv = distribute ? Math.sqrt(s) : embedding ? 1 : s;
          for (let i = 0; i < m; i++) bf[i * keep + j] = svd.u[i * svd.k + j]! * su;
          for (let c = 0; c < n; c++) af[j * n + c] = svd.v[c * svd.k + j]! * sv;
        }
        let bq: Float32Array;
        let aq: Float32Array;
        const prefix = PEFT_PREFIX + module;
        if (embedding) {
          // lora_embedding_A [r, vocab] = (U√S)ᵀ, lora_embedding_B [dim, r] = (√S·Vᵀ)ᵀ: ΔW = (B_e·A_e)ᵀ = U·S·Vᵀ
          bq = transposeF32(await stage(`${prefix}.lora_embedding_A`, [keep, m], transposeF32(bf, m, keep)), keep, m);
          aq = transposeF32(await stage(`${prefix}.lora_embedding_B`, [n, keep], transposeF32(af, keep, n)), n, keep);
        } else {
          aq = await stage(`${prefix}.lora_A.weight`, [keep, ...shape.slice(1)], af);
          bq = await stage(`${prefix}.lora_B.weight`, [m, keep, ...shape.slice(2).map(() => 1)], bf);
        }
        const recon = await ctx.backend.matmul(bq, aq, m, keep, n);
        let err2 = 0;
        for (let i = 0; i < tau.length; i++) {
          const d = tau[i]! - recon[i]!;
          err2 += d * d;
        }
        record(embedding ? 'lora_embedding' : 'lora', keep, Math.sqrt(err2 / norm2), { sigmaMax: sMax });
      }
    }
    options.onProgress?.({ tensor: t.name, index: index + 1, count: shared.length, bytesRead, bytesWritten });
  }
  return { modules, items };
}

function card(options: LoraExtractOptions, r: number, modules: readonly ExtractedModule[]): string {
  const lora = modules.filter((m) => m.kind === 'lora' || m.kind === 'lora_embedding');
  const full = modules.filter((m) => m.kind === 'full');
  const dropped = modules.filter((m) => m.kind === 'dropped');
  const excluded = modules.filter((m) => m.kind === 'excluded' && m.relError > 0);
  return [
    '---',
    'library_name: peft',
    '---',
    '# LoRA extracted by weightkit',
    '',
    `A rank-${r} LoRA approximating \`${options.finetuned}\` − \`${options.base}\`, extracted with \`weightkit lora extract\``,
    `(truncated SVD per module; ${options.distributeScale === false ? 'B = U, A = S·Vᵀ' : 'B = U·√S, A = √S·Vᵀ'}, lora_alpha = r).`,
    '',
    `- LoRA modules: ${lora.length}`,
    `- full modules (modules_to_save): ${full.length}`,
    `- tensors whose change is not representable and was left out: ${dropped.length}${dropped.length > 0 ? ` (${dropped.map((d) => d.tensor).join(', ')})` : ''}`,
    ...(excluded.length > 0 ? [`- changed tensors left out by --include/--exclude: ${excluded.length}`] : []),
    '',
  ].join('\n');
}
