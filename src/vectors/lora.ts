// LoRA adapters in: a PEFT adapter folder (adapter_model.safetensors + adapter_config.json) validated strictly and
// mapped onto a base checkpoint's tensor names, and its weight delta ΔW = scale·B·A written as a stored task vector.
// Guarantees: every adapter tensor is accounted for (LoRA factor pair, modules_to_save weight, or a typed error
// naming file and tensor) before a byte of the output is written. Imports io, tensor and vectors only.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { IoError, UsageError, VectorError, wrapIoError } from '../errors.js';
import { openCheckpointPath } from '../io/open.js';
import { openCheckpointSink } from '../io/sink.js';
import { statOrUndefined } from '../io/file.js';
import type { CheckpointReader, TensorDecl, TensorInfo } from '../io/types.js';
import { isFloatDType, type DType } from '../tensor/dtype.js';
import { formatShape, shapesEqual } from '../tensor/tensor.js';
import { WEIGHTKIT_VERSION } from '../version.js';
import { checkVectorDtype } from './extract.js';
import { encodeVectorMeta, fingerprintCheckpoint, VECTOR_FORMAT_VERSION, type VectorMeta } from './format.js';
import { runStream, type StreamJob, type StreamProgress } from './stream.js';

export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
/** Prefix of every tensor name in a saved PEFT adapter. */
export const PEFT_PREFIX = 'base_model.model.';

/** The parts of a PEFT LoraConfig that decide ΔW. */
export interface LoraConfig {
  r: number;
  loraAlpha: number;
  /** a list of module names (exact or `.`-suffix match) or one regular expression (full match); 'all-linear' */
  targetModules: readonly string[] | string;
  rankPattern: Readonly<Record<string, number>>;
  alphaPattern: Readonly<Record<string, number>>;
  useRslora: boolean;
  fanInFanOut: boolean;
  modulesToSave: readonly string[];
  baseModelNameOrPath?: string;
}

/** How a module's factors combine: linear/conv ΔW = B·A; transposed (embeddings, fan_in_fan_out) ΔW = (B·A)ᵀ. */
export type LoraModuleKind = 'linear' | 'conv' | 'embedding';

export interface LoraModule {
  /** module name in the base model, e.g. model.layers.0.self_attn.q_proj */
  module: string;
  /** the base tensor ΔW applies to: `<module>.weight` */
  target: string;
  kind: LoraModuleKind;
  /** adapter tensor names of A and B */
  a: string;
  b: string;
  rank: number;
  alpha: number;
  scale: number;
  /** ΔW is (B·A)ᵀ: embeddings and fan_in_fan_out (Conv1D) modules */
  transposed: boolean;
  /** shape of ΔW (the target's shape) */
  shape: readonly number[];
}

/** A modules_to_save tensor: a full weight replacing the base's (ΔW = saved − base). */
export interface LoraFullTensor {
  tensor: string;
  target: string;
  shape: readonly number[];
}

export interface LoraAdapter {
  dir: string;
  config: LoraConfig;
  /** the raw adapter_config.json object */
  rawConfig: Readonly<Record<string, unknown>>;
  modules: LoraModule[];
  full: LoraFullTensor[];
  reader: CheckpointReader;
  close(): Promise<void>;
}

function invalid(file: string, what: string, tensor?: string): VectorError {
  return new VectorError('VECTOR_INVALID', `${file}: ${what}`, { where: tensor === undefined ? { file } : { file, tensor } });
}

function shapeError(file: string, tensor: string, what: string): VectorError {
  return new VectorError('TENSOR_SHAPE_MISMATCH', `${file}: tensor '${tensor}': ${what}`, { where: { file, tensor } });
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function positiveInt(x: unknown): boolean {
  return Number.isSafeInteger(x) && (x as number) > 0;
}

/** Parse and validate adapter_config.json text (VECTOR_INVALID naming the file and key). */
export function parseLoraConfig(text: string, file: string): { config: LoraConfig; raw: Record<string, unknown> } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw invalid(file, 'not valid JSON');
  }
  if (!isRecord(raw)) throw invalid(file, 'not a JSON object');
  const peftType = raw['peft_type'];
  if (peftType !== undefined && peftType !== 'LORA') throw invalid(file, `peft_type is ${JSON.stringify(peftType)}; only LORA adapters are supported`);
  for (const k of ['r', 'lora_alpha', 'target_modules']) if (raw[k] === undefined || raw[k] === null) throw invalid(file, `missing key '${k}'`);
  if (!positiveInt(raw['r'])) throw invalid(file, `'r' must be a positive integer (got ${JSON.stringify(raw['r'])})`);
  const alpha = raw['lora_alpha'];
  if (typeof alpha !== 'number' || !Number.isFinite(alpha)) throw invalid(file, `'lora_alpha' must be a number (got ${JSON.stringify(alpha)})`);
  const tm = raw['target_modules'];
  const tmOk = typeof tm === 'string' ? tm.length > 0 : Array.isArray(tm) && tm.length > 0 && tm.every((t) => typeof t === 'string' && t.length > 0);
  if (!tmOk) throw invalid(file, "'target_modules' must be a non-empty list of module names or a regular expression");
  if (typeof tm === 'string' && tm !== 'all-linear') checkRegex(tm, file, 'target_modules');
  const pattern = (key: string, int: boolean): Record<string, number> => {
    const p = raw[key] ?? {};
    if (!isRecord(p)) throw invalid(file, `'${key}' must be an object of module pattern -> number`);
    for (const [k, v] of Object.entries(p)) {
      if (int ? !positiveInt(v) : typeof v !== 'number' || !Number.isFinite(v)) {
        throw invalid(file, `'${key}.${k}' must be ${int ? 'a positive integer' : 'a number'} (got ${JSON.stringify(v)})`);
      }
      checkRegex(k, file, key);
    }
    return p as Record<string, number>;
  };
  const bool = (key: string): boolean => {
    const v = raw[key] ?? false;
    if (typeof v !== 'boolean') throw invalid(file, `'${key}' must be true or false (got ${JSON.stringify(v)})`);
    return v;
  };
  if (bool('use_dora')) throw invalid(file, 'DoRA adapters (use_dora: true) are not supported');
  if (raw['lora_bias'] === true) throw invalid(file, 'adapters with LoRA biases (lora_bias: true) are not supported');
  const mts = raw['modules_to_save'] ?? [];
  if (!Array.isArray(mts) || !mts.every((m) => typeof m === 'string')) throw invalid(file, "'modules_to_save' must be a list of module names");
  const bm = raw['base_model_name_or_path'];
  const config: LoraConfig = {
    r: raw['r'] as number,
    loraAlpha: alpha,
    targetModules: tm as string[] | string,
    rankPattern: pattern('rank_pattern', true),
    alphaPattern: pattern('alpha_pattern', false),
    useRslora: bool('use_rslora'),
    fanInFanOut: bool('fan_in_fan_out'),
    modulesToSave: mts as string[],
    ...(typeof bm === 'string' && bm !== '' ? { baseModelNameOrPath: bm } : {}),
  };
  return { config, raw };
}

function checkRegex(source: string, file: string, key: string): void {
  try {
    new RegExp(source);
  } catch {
    throw invalid(file, `'${key}' holds an invalid regular expression ${JSON.stringify(source)}`);
  }
}

/** PEFT's pattern lookup (rank_pattern, alpha_pattern): the first key k with `(.*\.)?k$` matching the module name. */
export function patternValue(pattern: Readonly<Record<string, number>>, module: string): number | undefined {
  for (const [k, v] of Object.entries(pattern)) {
    if (k === module || new RegExp(`^(?:.*\\.)?(?:${k})$`).test(module)) return v;
  }
  return undefined;
}

/** PEFT's target_modules check: list = exact name or `.`-suffix; string = full regex match; 'all-linear' = any. */
export function isTargetModule(target: readonly string[] | string, module: string): boolean {
  if (typeof target === 'string') return target === 'all-linear' || new RegExp(`^(?:${target})$`).test(module);
  return target.some((t) => module === t || module.endsWith('.' + t));
}

/** ΔW's scale for a module: alpha / r, or alpha / √r with rsLoRA. */
export function loraScale(alpha: number, rank: number, useRslora: boolean): number {
  return useRslora ? alpha / Math.sqrt(rank) : alpha / rank;
}

const FACTOR_RE = /^(.+)\.(lora_A|lora_B)\.weight$/;
const EMBED_FACTOR_RE = /^(.+)\.(lora_embedding_A|lora_embedding_B)$/;

async function readConfigText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw wrapIoError(e, file, 'reading adapter config');
  }
}

/**
 * Open and validate a PEFT LoRA adapter folder (without a base): config keys and types, every tensor a known kind,
 * A and B in pairs with agreeing ranks that match r / rank_pattern, modules named by target_modules. Errors:
 * CKPT_NOT_FOUND (folder or file missing), VECTOR_INVALID, TENSOR_SHAPE_MISMATCH.
 */
export async function openLoraAdapter(dir: string): Promise<LoraAdapter> {
  const st = await statOrUndefined(dir);
  if (st === undefined || !st.isDirectory()) {
    throw new IoError('CKPT_NOT_FOUND', `${dir}: no such adapter folder`, { where: { file: dir }, hint: `an adapter is a folder holding ${ADAPTER_WEIGHTS_FILE} and ${ADAPTER_CONFIG_FILE}` });
  }
  const cfgFile = join(dir, ADAPTER_CONFIG_FILE);
  const wFile = join(dir, ADAPTER_WEIGHTS_FILE);
  for (const f of [cfgFile, wFile]) {
    if ((await statOrUndefined(f)) === undefined) {
      throw new IoError('CKPT_NOT_FOUND', `${f}: missing (a PEFT adapter folder holds ${ADAPTER_WEIGHTS_FILE} and ${ADAPTER_CONFIG_FILE})`, { where: { file: f } });
    }
  }
  const { config, raw } = parseLoraConfig(await readConfigText(cfgFile), cfgFile);
  const reader = await openCheckpointPath(wFile);
  try {
    const { modules, full } = classifyAdapterTensors(reader, config, wFile);
    return { dir, config, rawConfig: raw, modules, full, reader, close: () => reader.close() };
  } catch (e) {
    await reader.close();
    throw e;
  }
}

function classifyAdapterTensors(reader: CheckpointReader, config: LoraConfig, file: string): { modules: LoraModule[]; full: LoraFullTensor[] } {
  const pairs = new Map<string, { a?: TensorInfo; b?: TensorInfo; embedding: boolean }>();
  const full: LoraFullTensor[] = [];
  for (const t of reader.tensors()) {
    if (!t.name.startsWith(PEFT_PREFIX)) throw invalid(file, `tensor name does not start with '${PEFT_PREFIX}'`, t.name);
    if (!isFloatDType(t.dtype)) throw invalid(file, `tensor is ${t.dtype}; adapter tensors must be floats`, t.name);
    const rest = t.name.slice(PEFT_PREFIX.length);
    const m = FACTOR_RE.exec(rest) ?? EMBED_FACTOR_RE.exec(rest);
    if (m) {
      const embedding = m[2]!.startsWith('lora_embedding');
      const p = pairs.get(m[1]!) ?? { embedding };
      if (p.embedding !== embedding) throw invalid(file, `module '${m[1]}' has both lora_A/B and lora_embedding_A/B factors`, t.name);
      if (m[2]!.endsWith('A')) p.a = t;
      else p.b = t;
      pairs.set(m[1]!, p);
      continue;
    }
    if (/\.lora_[AB]\.bias$/.test(rest)) throw invalid(file, 'LoRA biases (lora_bias) are not supported', t.name);
    if (/\.lora_magnitude_vector(\.weight)?$/.test(rest)) throw invalid(file, 'DoRA magnitude vectors are not supported', t.name);
    if (/(^|\.)lora_/.test(rest)) throw invalid(file, 'unrecognised LoRA tensor', t.name);
    const module = rest.includes('.') ? rest.slice(0, rest.lastIndexOf('.')) : rest;
    if (!isTargetModule(config.modulesToSave, module)) {
      throw invalid(file, `tensor is neither a LoRA factor nor part of a module in modules_to_save (${JSON.stringify(config.modulesToSave)})`, t.name);
    }
    full.push({ tensor: t.name, target: rest, shape: t.shape });
  }
  const modules: LoraModule[] = [];
  for (const [module, p] of pairs) {
    const names = p.embedding ? ['lora_embedding_A', 'lora_embedding_B'] : ['lora_A.weight', 'lora_B.weight'];
    if (!p.a || !p.b) {
      const present = (p.a ?? p.b)!;
      throw invalid(file, `module '${module}' has ${p.a ? 'A' : 'B'} but no ${PEFT_PREFIX}${module}.${p.a ? names[1] : names[0]}`, present.name);
    }
    if (!isTargetModule(config.targetModules, module)) {
      throw invalid(file, `module '${module}' is not named by target_modules ${JSON.stringify(config.targetModules)}`, p.a.name);
    }
    const rank = patternValue(config.rankPattern, module) ?? config.r;
    const alpha = patternValue(config.alphaPattern, module) ?? config.loraAlpha;
    const a = p.a.shape;
    const b = p.b.shape;
    if (a.length < 2) throw shapeError(file, p.a.name, `A must have at least 2 dimensions (got ${formatShape(a)})`);
    if (b.length !== a.length || b.slice(2).some((d) => d !== 1)) {
      throw shapeError(file, p.b.name, `B ${formatShape(b)} does not fit A ${formatShape(a)}: expected [out, r${', 1'.repeat(a.length - 2)}]`);
    }
    if (a[0] !== b[1]) throw shapeError(file, p.b.name, `B ${formatShape(b)} has rank ${b[1]} but A ${formatShape(a)} has rank ${a[0]}`);
    if (a[0] !== rank) {
      throw shapeError(file, p.a.name, `rank ${a[0]} disagrees with adapter_config.json (${patternValue(config.rankPattern, module) !== undefined ? 'rank_pattern' : 'r'} = ${rank})`);
    }
    let kind: LoraModuleKind;
    let shape: number[];
    let transposed = false;
    if (p.embedding) {
      if (a.length !== 2) throw shapeError(file, p.a.name, `embedding factors are 2-D (got ${formatShape(a)})`);
      kind = 'embedding';
      transposed = true;
      shape = [a[1]!, b[0]!];
    } else if (a.length > 2) {
      kind = 'conv';
      shape = [b[0]!, ...a.slice(1)];
    } else {
      kind = 'linear';
      transposed = config.fanInFanOut;
      shape = transposed ? [a[1]!, b[0]!] : [b[0]!, a[1]!];
    }
    modules.push({ module, target: `${module}.weight`, kind, a: p.a.name, b: p.b.name, rank, alpha, scale: loraScale(alpha, rank, config.useRslora), transposed, shape });
  }
  if (modules.length === 0 && full.length === 0) throw invalid(file, 'the adapter holds no LoRA factors');
  const targets = new Set<string>();
  for (const t of [...modules.map((m) => ({ target: m.target, tensor: m.a })), ...full]) {
    if (targets.has(t.target)) throw invalid(file, `two adapter entries change the base tensor '${t.target}'`, t.tensor);
    targets.add(t.target);
  }
  modules.sort((x, y) => (x.target < y.target ? -1 : x.target > y.target ? 1 : 0));
  return { modules, full };
}

/** Check every adapter target is a float tensor of the base with ΔW's shape (TENSOR_NOT_FOUND / TENSOR_SHAPE_MISMATCH / TENSOR_DTYPE_MISMATCH). */
export function assertAdapterFitsBase(adapter: LoraAdapter, base: CheckpointReader): void {
  const file = join(adapter.dir, ADAPTER_WEIGHTS_FILE);
  const entries = [...adapter.modules.map((m) => ({ target: m.target, tensor: m.a, shape: m.shape })), ...adapter.full];
  for (const e of entries) {
    if (!base.has(e.target)) {
      throw new VectorError('TENSOR_NOT_FOUND', `${file}: tensor '${e.tensor}' applies to '${e.target}', which the base ${base.path} does not have`, { where: { file, tensor: e.tensor } });
    }
    const info = base.info(e.target);
    if (!shapesEqual(info.shape, e.shape)) {
      throw shapeError(file, e.tensor, `gives '${e.target}' shape ${formatShape(e.shape)} but the base ${base.path} has ${formatShape(info.shape)}`);
    }
    if (!isFloatDType(info.dtype)) {
      throw new VectorError('TENSOR_DTYPE_MISMATCH', `${file}: '${e.target}' is ${info.dtype} (not a float) in the base ${base.path}`, { where: { file, tensor: e.tensor } });
    }
  }
}

/**
 * Rows [r0, r1) of ΔW = scale·B·A (or its transpose) into `out` ((r1 − r0)·cols values), from A and B as f32 in
 * PEFT layout. Each entry is the f64 sum over k ascending of B·A products times scale, rounded once to f32.
 */
export function loraDeltaRowsInto(m: LoraModule, a: Float32Array, b: Float32Array, r0: number, r1: number, out: Float32Array): void {
  const rows = m.shape[0]!;
  const cols = m.shape.length === 1 ? 1 : m.shape.slice(1).reduce((x, y) => x * y, 1);
  const r = m.rank;
  const acc = new Float64Array(cols);
  for (let i = r0; i < r1; i++) {
    acc.fill(0);
    if (!m.transposed) {
      for (let k = 0; k < r; k++) {
        const bik = b[i * r + k]!;
        if (bik === 0) continue;
        const off = k * cols;
        for (let j = 0; j < cols; j++) acc[j] = acc[j]! + bik * a[off + j]!;
      }
    } else {
      for (let k = 0; k < r; k++) {
        const aki = a[k * rows + i]!;
        if (aki === 0) continue;
        for (let j = 0; j < cols; j++) acc[j] = acc[j]! + aki * b[j * r + k]!;
      }
    }
    const o = (i - r0) * cols;
    for (let j = 0; j < cols; j++) out[o + j] = m.scale * acc[j]!;
  }
}

export interface LoraToVectorOptions {
  /** the adapter folder */
  adapter: string;
  /** the base checkpoint the adapter was trained on */
  base: string;
  /** the vector file (.safetensors) */
  out: string;
  /** storage dtype (default F32) */
  dtype?: DType;
  label?: string;
  overwrite?: boolean;
  budgetBytes?: number;
  signal?: AbortSignal;
  onProgress?: (p: StreamProgress) => void;
  /** write with O_DIRECT where allowed (default true); false when the vector is read again at once (a recipe's cache) */
  direct?: boolean;
}

export interface LoraToVectorResult {
  out: string;
  /** base tensors the vector changes */
  tensors: number;
  loraModules: number;
  /** modules_to_save tensors (stored as saved − base) */
  fullTensors: number;
  fingerprint: string;
}

function loraJob(adapter: LoraAdapter, m: LoraModule, dtype: DType): StreamJob {
  let a: Float32Array | undefined;
  let b: Float32Array | undefined;
  return {
    name: m.target,
    shape: m.shape,
    inputs: [],
    outputs: [{ sink: 0, dtype }],
    async prepare() {
      a = await adapter.reader.readF32(m.a);
      b = await adapter.reader.readF32(m.b);
    },
    emit(_ins, outs, c) {
      loraDeltaRowsInto(m, a!, b!, c.r0, c.r1, outs[0] as Float32Array);
    },
    scratchBytesPerElement: 0,
    async afterChunk(c) {
      if (c.r1 >= (m.shape[0] ?? 1)) a = b = undefined;
    },
  };
}

function fullJob(adapter: LoraAdapter, t: LoraFullTensor, base: CheckpointReader, dtype: DType): StreamJob {
  return {
    name: t.target,
    shape: t.shape,
    inputs: [
      { reader: adapter.reader, tensor: t.tensor },
      { reader: base, tensor: t.target },
    ],
    outputs: [{ sink: 0, dtype }],
    emit(ins, outs, c) {
      const f = ins[0] as Float32Array;
      const bb = ins[1] as Float32Array;
      const o = outs[0] as Float32Array;
      for (let i = 0; i < c.numel; i++) o[i] = f[i]! - bb[i]!;
    },
  };
}

/**
 * Convert a LoRA adapter into a stored task vector relative to `base`: ΔW = scale·B·A for every LoRA module (under
 * the base tensor's name), saved − base for modules_to_save tensors; every other tensor is unchanged (absent).
 */
export async function loraToVector(options: LoraToVectorOptions): Promise<LoraToVectorResult> {
  const dtype = checkVectorDtype(options.dtype);
  if (!options.out.endsWith('.safetensors')) {
    throw new UsageError('USAGE', `a vector is one .safetensors file; --out ${options.out} does not end in .safetensors`);
  }
  const adapter = await openLoraAdapter(options.adapter);
  try {
    const base = await openCheckpointPath(options.base);
    try {
      assertAdapterFitsBase(adapter, base);
      const fingerprint = await fingerprintCheckpoint(base);
      const decls: TensorDecl[] = [];
      const jobs: StreamJob[] = [];
      for (const m of adapter.modules) {
        decls.push({ name: m.target, dtype, shape: m.shape });
        jobs.push(loraJob(adapter, m, dtype));
      }
      for (const t of adapter.full) {
        decls.push({ name: t.target, dtype, shape: t.shape });
        jobs.push(fullJob(adapter, t, base, dtype));
      }
      const c = adapter.config;
      const meta: VectorMeta = {
        version: VECTOR_FORMAT_VERSION,
        kind: 'task',
        baseFingerprint: fingerprint,
        base: options.base,
        finetuned: `${options.base}+${options.adapter}`,
        ...(options.label !== undefined ? { label: options.label } : {}),
        notes: {
          lora: {
            adapter: options.adapter,
            r: c.r,
            lora_alpha: c.loraAlpha,
            use_rslora: c.useRslora,
            modules: adapter.modules.length,
            modules_to_save: adapter.full.length,
            ...(c.baseModelNameOrPath !== undefined ? { base_model_name_or_path: c.baseModelNameOrPath } : {}),
          },
        },
      };
      const sink = await openCheckpointSink(options.out, decls, {
        metadata: { ...encodeVectorMeta(meta), weightkit_version: WEIGHTKIT_VERSION },
        overwrite: options.overwrite,
        inputs: [options.base, options.adapter],
        ...(options.direct === false ? { direct: false } : {}),
      });
      try {
        await runStream(jobs, { sinks: [sink], budgetBytes: options.budgetBytes, signal: options.signal, onProgress: options.onProgress });
        await sink.close();
      } catch (e) {
        await sink.abort();
        throw e;
      }
      return { out: options.out, tensors: decls.length, loraModules: adapter.modules.length, fullTensors: adapter.full.length, fingerprint };
    } finally {
      await base.close();
    }
  } finally {
    await adapter.close();
  }
}
