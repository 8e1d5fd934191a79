// `vector signature`: Robust Weight Signatures (Cai, Zhang, Wang, ICML 2023). Per float tensor, with a = clean - pre
// and d = robust - pre, RWS = d - (<d,a>/<a,a>)·a (RWS = d when <a,a> = 0): the robust fine-tune's change with the
// component shared with clean fine-tuning projected out. Two streamed runs: statistics over every tensor (a per-depth
// table of ||clean-pre||, ||robust-pre||, ||RWS|| relative to ||pre||), then the selected tensors' RWS written to a
// vector file (kind 'signature', relative to the CLEAN model's fingerprint, since signatures are patched onto it).
//
// Scale convention: the paper's code applies the weight twice (once before and once after its projection), so its
// effective scale is w²; weightkit uses the linear scale the paper's text states, θ = θ_target + Σ_c w_c·RWS_c with
// default w_c = α/|C| (`signatureWeights`). Applying, composing and removing (θ_target = θ - w·RWS) are the generic
// `vector apply/remove` commands. The paper code's BatchNorm rule (BN keys set to the robust models' mean at every
// depth) and BN re-estimation are not part of a signature. Imports no CLI code and nothing of node: but via src/io.

import { PlanError, UsageError } from '../errors.js';
import { openCheckpointPath } from '../io/open.js';
import { openCheckpointSink } from '../io/sink.js';
import type { CheckpointReader, TensorDecl, TensorInfo } from '../io/types.js';
import { inferLayout } from '../plan/layout.js';
import { WEIGHTKIT_VERSION } from '../version.js';
import {
  encodeVectorMeta,
  fingerprintCheckpoint,
  VECTOR_FORMAT_VERSION,
  type TensorEncoding,
  type VectorMeta,
} from './format.js';
import { pairTensors } from './pairing.js';
import { quantJob, totalQuantError, type QuantizeSpec, type QuantStats } from './quantize.js';
import { runStream, type ChunkInputs, type StreamJob, type StreamProgress } from './stream.js';

export interface SignatureOptions {
  /** the pretrained model both fine-tunes started from */
  pre: string;
  /** the clean fine-tune (the model signatures are patched onto) */
  clean: string;
  /** the robust (e.g. corruption) fine-tune */
  robust: string;
  /** a `.safetensors` file */
  out: string;
  /**
   * which tensors to write: 'auto' (default; the shallowest units holding `autoShare` of Σ relSignature), the first
   * N depth units (a number, or a string of digits), or a glob on tensor names ('*' any run, '?' one character)
   */
  layers?: 'auto' | number | string;
  /** for 'auto': the share of Σ relSignature the selected prefix must reach, in (0, 1]; default 0.5 */
  autoShare?: number;
  quantize?: QuantizeSpec;
  label?: string;
  overwrite?: boolean;
  budgetBytes?: number;
  signal?: AbortSignal;
  onProgress?: (p: StreamProgress & { run: 'statistics' | 'write' }) => void;
}

export interface LayerRow {
  unit: string;
  depth: number;
  tensors: number;
  /** ||clean - pre|| / ||pre|| over the unit's tensors */
  relClean: number;
  /** ||robust - pre|| / ||pre|| */
  relRobust: number;
  /** ||RWS|| / ||pre|| */
  relSignature: number;
  /** relSignature / Σ relSignature over all units (0 when the sum is 0) */
  share: number;
  /** running sum of share, shallowest first */
  cumulative: number;
  /** some tensor of the unit is in the signature */
  selected: boolean;
}

export interface SignatureResult {
  out: string;
  /** the tensors written, shallowest unit first */
  selected: string[];
  table: LayerRow[];
  /** fingerprint of the clean model (the signature's base) */
  fingerprint: string;
  quantization?: { relL2: number; maxAbs: number };
}

export const DEFAULT_AUTO_SHARE = 0.5;

export type LayerSelection = { rule: 'auto'; share: number } | { rule: 'first'; count: number } | { rule: 'glob'; pattern: string };

/**
 * Composition weights of |C| signatures: the default α/|C| each, or an explicit per-signature list (its length must
 * be `count`). Linear scale (see the module header).
 */
export function signatureWeights(count: number, alpha = 1, weights?: number[]): number[] {
  if (!Number.isSafeInteger(count) || count < 1) {
    throw new UsageError('USAGE', `signatureWeights: count must be a positive integer (got ${count})`);
  }
  if (weights !== undefined) {
    if (weights.length !== count) {
      throw new UsageError('USAGE', `signatureWeights: expected ${count} weight${count === 1 ? '' : 's'}, one per signature (got ${weights.length})`);
    }
    const bad = weights.findIndex((w) => !Number.isFinite(w));
    if (bad >= 0) throw new UsageError('USAGE', `signatureWeights: weight ${bad} must be a finite number (got ${weights[bad]})`);
    return [...weights];
  }
  if (!Number.isFinite(alpha)) throw new UsageError('USAGE', `signatureWeights: alpha must be a finite number (got ${alpha})`);
  return new Array<number>(count).fill(alpha / count);
}

const STEM_RE = /(^|\.)(stem|conv_stem|bn_stem|patch_embed|cls_token|pos_embed|conv1|bn1)(\.|$)/;

/**
 * Group tensor names by depth, shallowest first. With numbered layers (inferLayout): unit 'pre' (depth 0: embeddings,
 * and stem tensors such as a ResNet's top-level conv1/bn1), one unit per layer index i (named `<prefix><i>`, depth
 * i + 1), then 'post' (everything else outside the layers; depth numLayers + 1). Without numbered layers: one unit per
 * module prefix (the name without its last dotted component; a dotless name is its own unit), in the order the
 * prefixes first appear, depth 0, 1, 2 ... Units without tensors are left out; tensors keep their input order.
 */
export function depthUnits(names: readonly string[]): Array<{ unit: string; depth: number; tensors: string[] }> {
  const layout = inferLayout(names);
  if (layout.prefix !== undefined) {
    const prefix = layout.prefix;
    const pre: string[] = [];
    const post: string[] = [];
    const byLayer = new Map<number, string[]>();
    const preSet = new Set(layout.pre);
    for (const n of names) {
      const rest = n.startsWith(prefix) ? /^(\d+)\./.exec(n.slice(prefix.length)) : null;
      if (rest) {
        const i = Number(rest[1]);
        let list = byLayer.get(i);
        if (!list) byLayer.set(i, (list = []));
        list.push(n);
      } else if (preSet.has(n) || STEM_RE.test(n)) pre.push(n);
      else post.push(n);
    }
    const units: Array<{ unit: string; depth: number; tensors: string[] }> = [];
    if (pre.length > 0) units.push({ unit: 'pre', depth: 0, tensors: pre });
    for (const i of [...byLayer.keys()].sort((x, y) => x - y)) units.push({ unit: `${prefix}${i}`, depth: i + 1, tensors: byLayer.get(i)! });
    if (post.length > 0) units.push({ unit: 'post', depth: layout.numLayers + 1, tensors: post });
    return units;
  }
  const order = new Map<string, string[]>();
  for (const n of names) {
    const dot = n.lastIndexOf('.');
    const unit = dot < 0 ? n : n.slice(0, dot);
    let list = order.get(unit);
    if (!list) order.set(unit, (list = []));
    list.push(n);
  }
  return [...order].map(([unit, tensors], depth) => ({ unit, depth, tensors }));
}

/** A glob on tensor names: '*' any run of characters (dots included), '?' one character; anchored. */
export function globToRegExp(glob: string): RegExp {
  let re = '^';
  for (const ch of glob) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(re + '$');
}

/** Parse the `layers` option: 'auto', a positive integer (number or digits), or a glob. */
export function parseLayerSelection(layers: SignatureOptions['layers'], autoShare?: number): LayerSelection {
  const l = layers ?? 'auto';
  if (autoShare !== undefined && !(autoShare > 0 && autoShare <= 1)) {
    throw new UsageError('USAGE', `--auto-share must be in (0, 1] (got ${autoShare})`);
  }
  if (l === 'auto') return { rule: 'auto', share: autoShare ?? DEFAULT_AUTO_SHARE };
  if (autoShare !== undefined) throw new UsageError('USAGE', `--auto-share applies to --layers auto only (got --layers ${String(l)})`);
  if (typeof l === 'number' || /^\s*\d+\s*$/.test(l)) {
    const n = Number(l);
    if (!Number.isSafeInteger(n) || n < 1) throw new UsageError('USAGE', `--layers N needs a positive integer (got ${String(l)})`);
    return { rule: 'first', count: n };
  }
  if (l.trim() === '') throw new UsageError('USAGE', "--layers must be 'auto', a number of depth units, or a glob on tensor names (got '')");
  return { rule: 'glob', pattern: l };
}

/** Per-tensor sums (f64) of one tensor, filled by the statistics run. */
interface TensorStats {
  da: number;
  aa: number;
  pp: number;
  dd: number;
}

/** ||RWS||² = ||d||² - <d,a>²/<a,a> (clamped at 0 against rounding), or ||d||² when a = 0. */
function rwsSq(s: TensorStats): number {
  if (s.aa === 0) return s.dd;
  return Math.max(0, s.dd - (s.da * s.da) / s.aa);
}

/** The projection coefficient <d,a>/<a,a> (0 when a = 0). */
function coefficient(s: TensorStats): number {
  return s.aa === 0 ? 0 : s.da / s.aa;
}

function inputsOf(t: TensorInfo, pre: CheckpointReader, clean: CheckpointReader, robust: CheckpointReader): StreamJob['inputs'] {
  return [
    { reader: pre, tensor: t.name },
    { reader: clean, tensor: t.name },
    { reader: robust, tensor: t.name },
  ];
}

/** Statistics job: no outputs, no passes; emit (so each chunk is read once) accumulates <d,a>, <a,a>, ||pre||², ||d||² in f64. */
function statsJob(t: TensorInfo, pre: CheckpointReader, clean: CheckpointReader, robust: CheckpointReader, s: TensorStats): StreamJob {
  return {
    name: t.name,
    shape: t.shape,
    inputs: inputsOf(t, pre, clean, robust),
    outputs: [],
    emit(ins, _outs, c) {
      const p = ins[0] as Float32Array;
      const cl = ins[1] as Float32Array;
      const r = ins[2] as Float32Array;
      // continue the running sums (not per-chunk partials): the additions happen in the same order whatever the
      // chunking, so every budget gives bit-identical statistics
      let da = s.da;
      let aa = s.aa;
      let pp = s.pp;
      let dd = s.dd;
      for (let i = 0; i < c.numel; i++) {
        const pv = p[i]!;
        const a = cl[i]! - pv;
        const d = r[i]! - pv;
        da += d * a;
        aa += a * a;
        pp += pv * pv;
        dd += d * d;
      }
      s.da = da;
      s.aa = aa;
      s.pp = pp;
      s.dd = dd;
    },
  };
}

/** RWS values of one chunk into `into`: (r - p) - k·(c - p), computed in f64 and rounded once to f32. */
function rwsInto(ins: readonly unknown[], n: number, k: number, into: Float32Array): Float32Array {
  const p = ins[0] as Float32Array;
  const cl = ins[1] as Float32Array;
  const r = ins[2] as Float32Array;
  for (let i = 0; i < n; i++) {
    const pv = p[i]!;
    into[i] = r[i]! - pv - k * (cl[i]! - pv);
  }
  return into;
}

function denseRwsJob(t: TensorInfo, pre: CheckpointReader, clean: CheckpointReader, robust: CheckpointReader, k: number): StreamJob {
  return {
    name: t.name,
    shape: t.shape,
    inputs: inputsOf(t, pre, clean, robust),
    outputs: [{ sink: 0, dtype: 'F32' }],
    emit(ins, outs, c) {
      rwsInto(ins, c.numel, k, outs[0] as Float32Array);
    },
  };
}

/** The float tensors all three checkpoints share (same names and shapes required), in pre's order. */
function pairThree(pre: CheckpointReader, clean: CheckpointReader, robust: CheckpointReader): { shared: TensorInfo[]; skipped: string[] } {
  const pc = pairTensors(pre, clean, { roles: ['pretrained model', 'clean model'] });
  const pr = pairTensors(pre, robust, { roles: ['pretrained model', 'robust model'] });
  const inRobust = new Set(pr.shared.map((t) => t.name));
  const shared = pc.shared.filter((t) => inRobust.has(t.name));
  const sharedNames = new Set(shared.map((t) => t.name));
  const skipped = pre
    .tensors()
    .map((t) => t.name)
    .filter((n) => !sharedNames.has(n));
  return { shared, skipped };
}

function sqrtRatio(num: number, den: number): number {
  return num === 0 ? 0 : Math.sqrt(num / den);
}

/** Build the per-unit table and apply the selection; returns the rows and the selected tensor names. */
function selectSignatureUnits(
  units: ReadonlyArray<{ unit: string; depth: number; tensors: readonly string[] }>,
  stats: ReadonlyMap<string, TensorStats>,
  selection: LayerSelection,
): { table: LayerRow[]; selected: string[] } {
  let totalPre = 0;
  for (const s of stats.values()) totalPre += s.pp;
  const table: LayerRow[] = units.map((u) => {
    let aa = 0;
    let dd = 0;
    let pp = 0;
    let rr = 0;
    for (const n of u.tensors) {
      const s = stats.get(n)!;
      aa += s.aa;
      dd += s.dd;
      pp += s.pp;
      rr += rwsSq(s);
    }
    // a unit whose pretrained weights are all zero is measured against the whole model's ||pre|| (then 1)
    const den = pp > 0 ? pp : totalPre > 0 ? totalPre : 1;
    return {
      unit: u.unit,
      depth: u.depth,
      tensors: u.tensors.length,
      relClean: sqrtRatio(aa, den),
      relRobust: sqrtRatio(dd, den),
      relSignature: sqrtRatio(rr, den),
      share: 0,
      cumulative: 0,
      selected: false,
    };
  });
  let total = 0;
  for (const r of table) total += r.relSignature;
  let cum = 0;
  for (const r of table) {
    r.share = total > 0 ? r.relSignature / total : 0;
    cum += r.share;
    r.cumulative = cum;
  }
  const selected: string[] = [];
  if (selection.rule === 'glob') {
    const re = globToRegExp(selection.pattern);
    units.forEach((u, i) => {
      const hit = u.tensors.filter((n) => re.test(n));
      if (hit.length > 0) table[i]!.selected = true;
      selected.push(...hit);
    });
    if (selected.length === 0) {
      throw new UsageError('USAGE', `--layers '${selection.pattern}' matches none of the ${stats.size} float tensors`, {
        hint: "use 'auto', a number of depth units, or a glob such as 'model.layers.0.*'",
      });
    }
    return { table, selected };
  }
  let count: number;
  if (selection.rule === 'first') {
    if (selection.count > units.length) {
      throw new UsageError('USAGE', `--layers ${selection.count} asks for more depth units than the model has (${units.length})`);
    }
    count = selection.count;
  } else {
    // the shortest prefix reaching the share (at least one unit; the tolerance absorbs rounding of the shares)
    count = units.length;
    for (let i = 0; i < table.length; i++) {
      if (table[i]!.cumulative >= selection.share - 1e-9) {
        count = i + 1;
        break;
      }
    }
    if (total === 0) count = Math.min(1, units.length);
  }
  for (let i = 0; i < count; i++) {
    table[i]!.selected = true;
    selected.push(...units[i]!.tensors);
  }
  return { table, selected };
}

/** Extract the robust weight signature of `robust` relative to `clean` (both fine-tuned from `pre`) into `out`. */
export async function extractSignature(o: SignatureOptions): Promise<SignatureResult> {
  if (!o.out.endsWith('.safetensors')) {
    throw new UsageError('USAGE', `a signature is one .safetensors file; --out ${o.out} does not end in .safetensors`);
  }
  const selection = parseLayerSelection(o.layers, o.autoShare);
  const readers: CheckpointReader[] = [];
  try {
    const pre = await openCheckpointPath(o.pre);
    readers.push(pre);
    const clean = await openCheckpointPath(o.clean);
    readers.push(clean);
    const robust = await openCheckpointPath(o.robust);
    readers.push(robust);
    const { shared, skipped } = pairThree(pre, clean, robust);
    if (shared.length === 0) {
      throw new PlanError('TENSOR_NOT_FOUND', `the three checkpoints share no float tensor (${o.pre})`, { where: { file: o.pre } });
    }
    const fingerprint = await fingerprintCheckpoint(clean);
    const info = new Map(shared.map((t) => [t.name, t]));
    const stats = new Map<string, TensorStats>();
    const statJobs = shared.map((t) => {
      const s: TensorStats = { da: 0, aa: 0, pp: 0, dd: 0 };
      stats.set(t.name, s);
      return statsJob(t, pre, clean, robust, s);
    });
    const progress = (run: 'statistics' | 'write') => (o.onProgress === undefined ? undefined : (p: StreamProgress) => o.onProgress!({ ...p, run }));
    await runStream(statJobs, { sinks: [], budgetBytes: o.budgetBytes, signal: o.signal, onProgress: progress('statistics') });

    const units = depthUnits(shared.map((t) => t.name));
    const { table, selected } = selectSignatureUnits(units, stats, selection);
    const selectedSet = new Set(selected);

    const decls: TensorDecl[] = [];
    const jobs: StreamJob[] = [];
    const encodings: Record<string, TensorEncoding> = {};
    const quantStats: QuantStats[] = [];
    const ranges: Array<{ name: string; range: () => Float64Array }> = [];
    for (const name of selected) {
      const t = info.get(name)!;
      const k = coefficient(stats.get(name)!);
      if (o.quantize !== undefined) {
        let buf = new Float32Array(0);
        const values = (ins: ChunkInputs, n: number): Float32Array => {
          if (buf.length < n) buf = new Float32Array(n);
          return rwsInto(ins, n, k, buf.subarray(0, n));
        };
        const q = quantJob(t, inputsOf(t, pre, clean, robust), values, o.quantize, encodings, quantStats);
        decls.push(q.decl, q.rangeDecl);
        jobs.push(q.job);
        ranges.push({ name: q.rangeDecl.name, range: q.range });
      } else {
        decls.push({ name, dtype: 'F32', shape: t.shape });
        jobs.push(denseRwsJob(t, pre, clean, robust, k));
      }
    }
    const notSelected = shared.map((t) => t.name).filter((n) => !selectedSet.has(n));
    const meta: VectorMeta = {
      version: VECTOR_FORMAT_VERSION,
      kind: 'signature',
      baseFingerprint: fingerprint,
      base: o.clean,
      finetuned: o.robust,
      ...(o.label !== undefined ? { label: o.label } : {}),
      // everything not in the signature is kept from the target model when it is applied
      ...(skipped.length + notSelected.length > 0 ? { skipped: [...skipped, ...notSelected] } : {}),
      ...(Object.keys(encodings).length > 0 ? { encodings } : {}),
      notes: {
        method: 'robust-weight-signature',
        pretrained: o.pre,
        selection,
        layers: table,
        scale:
          'linear: theta = theta_target + sum_c w_c * RWS_c, default w_c = alpha/|C| (the paper code applies w twice, effective w^2)',
      },
    };
    const sink = await openCheckpointSink(o.out, decls, {
      metadata: { ...encodeVectorMeta(meta), weightkit_version: WEIGHTKIT_VERSION },
      overwrite: o.overwrite,
      inputs: [o.pre, o.clean, o.robust],
    });
    try {
      await runStream(jobs, { sinks: [sink], budgetBytes: o.budgetBytes, signal: o.signal, onProgress: progress('write') });
      for (const r of ranges) await sink.write(r.name, r.range());
      await sink.close();
    } catch (e) {
      await sink.abort();
      throw e;
    }
    const result: SignatureResult = { out: o.out, selected, table, fingerprint };
    const quantization = totalQuantError(quantStats);
    if (quantization !== undefined) result.quantization = quantization;
    return result;
  } finally {
    for (const r of readers.reverse()) await r.close();
  }
}
