// `weightkit analyze <principal|spectrum|vectors|distance|merge>`: weight analyses over models and vectors. Every subcommand calls a library
// function of src/analysis and renders its JSON-serialisable result; new analyses add one `a.command(...)` below.
// Large products run on ONNX Runtime (loaded on first use only, so small models never start a session).

import { writeFile } from 'node:fs/promises';
import type { Argv } from 'yargs';
import { UsageError } from '../../errors.js';
import { analyzeDistance, type DistanceMetric, type DistanceReport } from '../../analysis/distance.js';
import { analyzeMerge, type MergeAnalysisReport } from '../../analysis/merge-analysis.js';
import { readPrincipalWeights, type PrincipalBudget } from '../../analysis/principal.js';
import { readCheckpointSpectra, type TensorSpectrum } from '../../analysis/spectra.js';
import { analyzeVectors, DEFAULT_OVERLAP_DENSITY, type GroupStats, type LayerKey, type VectorsReport } from '../../analysis/vectors.js';
import { openCheckpointPath } from '../../io/open.js';
import type { CheckpointReader } from '../../io/types.js';
import { jsMatMul, type MatMulBackend, type MatMulOptions } from '../../tensor/linalg/index.js';
import { openVector } from '../../vectors/reader.js';
import type { CommandContext } from '../main.js';
import { streamProgress } from '../progress.js';
import { formatCount, table } from '../render.js';
import { reportCommand } from './analyze-report.js';
import { reportFromAnalyses, type AnalysisInput } from '../../analysis/report.js';
import { writeReport } from '../../analysis/report-write.js';

/** Products with fewer multiply-adds than this run in JS (a few ms); larger ones on ONNX Runtime. */
export const ORT_MIN_PRODUCT = 1 << 24;

/** The CLI's MatMulBackend: JS for small products, the ORT backend (created on first need) for large ones. */
export function cliMatMul(): MatMulBackend & { dispose(): Promise<void>; usedOrt(): boolean } {
  let ort: Promise<MatMulBackend & { dispose(): Promise<void> }> | undefined;
  return {
    name: 'ort-2t',
    async matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number, options?: MatMulOptions) {
      if (m * k * n < ORT_MIN_PRODUCT) return jsMatMul.matmul(a, b, m, k, n, options);
      ort ??= import('../../eval/ort-matmul.js').then((mod) => mod.createOrtMatMul());
      return (await ort).matmul(a, b, m, k, n, options);
    },
    async dispose() {
      if (ort) await (await ort).dispose();
    },
    usedOrt: () => ort !== undefined,
  };
}

function positiveInt(v: unknown, option: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!(Number.isSafeInteger(n) && n >= 1)) throw new UsageError('USAGE', `--${option} must be a positive integer (got '${String(v)}')`);
  return n;
}

function budgetOf(fraction: unknown, loraRank: unknown): PrincipalBudget | undefined {
  if (fraction !== undefined && loraRank !== undefined) throw new UsageError('USAGE', 'give --fraction or --lora-rank, not both');
  if (fraction !== undefined) {
    const f = Number(fraction);
    if (!(Number.isFinite(f) && f > 0 && f <= 1)) throw new UsageError('USAGE', `--fraction must be a number in (0, 1] (got '${String(fraction)}')`);
    return { fraction: f };
  }
  const r = positiveInt(loraRank, 'lora-rank');
  return r === undefined ? undefined : { loraRank: r };
}

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
const fix = (x: number, d = 3): string => x.toFixed(d);
const sig = (x: number): string => (x === 0 ? '0' : Math.abs(x) >= 1e4 || Math.abs(x) < 1e-3 ? x.toExponential(2) : x.toPrecision(4));

function spectrumRows(rs: readonly TensorSpectrum[], show: number): string[][] {
  return rs.map((r) => [
    r.name,
    `${r.m}x${r.n}`,
    r.method + (r.complete ? '' : ` (top ${r.computed})`),
    fix(r.effectiveRank, 2),
    fix(r.stableRank, 2),
    pct(r.energyTopK),
    r.singularValues.slice(0, show).map(sig).join(' '),
  ]);
}

/** Middle-truncate to `width` characters (tables stay within 100 columns). */
export function clip(s: string, width: number): string {
  if (s.length <= width) return s;
  const head = Math.ceil((width - 1) / 2);
  return s.slice(0, head) + '…' + s.slice(s.length - (width - 1 - head));
}

const layerName = (l: LayerKey): string => (typeof l === 'number' ? `layer ${l}` : l);

function csvCell(v: string | number | null): string {
  const s = v === null ? '' : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Long-format CSV (one value per row): scope,name,a,b,metric,value. */
export function longCsv(rows: readonly (readonly (string | number | null)[])[]): string {
  return ['scope,name,a,b,metric,value', ...rows.map((r) => r.map(csvCell).join(','))].join('\n') + '\n';
}

/** CSV rows of a vectors report: per-vector metrics (b empty) and pairwise metrics, for global, layers, tensors. */
export function vectorsCsvRows(r: VectorsReport): (string | number | null)[][] {
  const rows: (string | number | null)[][] = [];
  const group = (scope: string, name: string, g: GroupStats): void => {
    g.vectors.forEach((v, k) => {
      for (const [m, x] of Object.entries(v)) rows.push([scope, name, r.labels[k]!, '', m, x as number | null]);
    });
    const K = r.labels.length;
    for (let i = 0; i < K; i++) {
      for (let j = i + 1; j < K; j++) {
        rows.push([scope, name, r.labels[i]!, r.labels[j]!, 'cosine', g.cosine[i]![j]!]);
        rows.push([scope, name, r.labels[i]!, r.labels[j]!, 'signConflict', g.signConflict[i]![j]!]);
        rows.push([scope, name, r.labels[i]!, r.labels[j]!, 'jaccard', g.jaccard[i]![j]!]);
      }
    }
    rows.push([scope, name, '', '', 'signConflictAll', g.signConflictAll]);
    rows.push([scope, name, '', '', 'numel', g.numel]);
  };
  group('global', 'all', r.global);
  for (const l of r.layers) group('layer', layerName(l.layer), l);
  for (const t of r.tensors) group('tensor', t.name, t);
  return rows;
}

/** Terminal tables of a vectors report: per-vector statistics, then pairwise ones (per layer or per tensor). */
export function renderVectors(r: VectorsReport, perTensor: boolean): string {
  const K = r.labels.length;
  const groups: Array<[string, GroupStats]> = [['all', r.global], ...(perTensor ? r.tensors.map((t) => [t.name, t] as [string, GroupStats]) : r.layers.map((l) => [layerName(l.layer), l] as [string, GroupStats]))];
  const nameW = perTensor ? 34 : 10;
  const labelW = 12;
  let out = `task vectors: ${r.mode === 'base' ? `models - base (${clip(r.base ?? '', 60)})` : 'stored vectors'}\n${K} vector${K === 1 ? '' : 's'}, ${formatCount(r.global.numel)} values in ${r.tensors.length} tensors\n`;
  for (const n of r.notes) out += `note: ${n}\n`;
  const rows: string[][] = [[perTensor ? 'tensor' : 'layer', 'vector', 'norm', 'rel.chg', 'zeros', '~zero', 'kurt', 'outl>3σ']];
  for (const [name, g] of groups) {
    g.vectors.forEach((v, k) => {
      rows.push([k === 0 ? clip(name, nameW) : '', clip(r.labels[k]!, labelW), sig(v.norm), v.relativeChange === null ? '-' : sig(v.relativeChange), pct(v.zeroFraction), pct(v.nearZeroFraction), v.kurtosis.toFixed(2), pct(v.outlierRatio)]);
    });
  }
  out += table(rows, [false, false, true, true, true, true, true, true]);
  if (K >= 2) {
    const prow: string[][] = [[perTensor ? 'tensor' : 'layer', 'pair', 'cosine', 'sign-conflict', `jaccard@${r.density}`]];
    for (const [name, g] of groups) {
      let first = true;
      for (let i = 0; i < K; i++) {
        for (let j = i + 1; j < K; j++) {
          prow.push([first ? clip(name, nameW) : '', `${clip(r.labels[i]!, 10)}~${clip(r.labels[j]!, 10)}`, fix(g.cosine[i]![j]!), pct(g.signConflict[i]![j]!), fix(g.jaccard[i]![j]!)]);
          first = false;
        }
      }
      if (K > 2) prow.push(['', 'all', '', pct(g.signConflictAll), '']);
    }
    out += '\n' + table(prow, [false, false, true, true, true]);
  }
  const sp = r.tensors.filter((t) => t.spectra);
  if (sp.length > 0) {
    const srows: string[][] = [['tensor', 'vector', 'shape', 'eff.rank', 'stable', 'σ1']];
    for (const t of sp) {
      t.spectra!.forEach((s, k) => srows.push([k === 0 ? clip(t.name, 34) : '', clip(r.labels[k]!, labelW), `${s.m}x${s.n}`, fix(s.effectiveRank, 2), fix(s.stableRank, 2), sig(s.spectralNorm)]));
    }
    out += '\n' + table(srows, [false, false, false, true, true, true]);
  }
  out += 'rel.chg = ‖δ‖/‖W_base‖; ~zero: |δ| ≤ 1e-6·max|δ|; kurt: excess kurtosis;\noutl: |δ−mean| > 3 std (per tensor)\n';
  if (r.skipped.length > 0) out += `skipped: ${clip(r.skipped.map((s) => s.name).join(', '), 91)}\n`;
  return out;
}

export function renderDistance(r: DistanceReport): string {
  const n = r.labels.length;
  const w = Math.max(6, Math.min(10, Math.floor(80 / Math.max(1, n))));
  let out = `${r.metric} distances between ${n} ${r.base !== null ? `task vectors (base ${clip(r.base, 40)})` : 'models/vectors'}\n${formatCount(r.numel)} values in ${r.tensors} tensors\n`;
  const rows: string[][] = [['', ...r.labels.map((l) => clip(l, w))]];
  for (let i = 0; i < n; i++) rows.push([clip(r.labels[i]!, 14), ...r.matrix[i]!.map((d) => (r.metric === 'cosine' ? fix(d, 4) : sig(d)))]);
  out += table(rows, [false, ...r.labels.map(() => true)]);
  out += `\nMDS (classical, 2-D), stress ${fix(r.mds.stress, 4)}, eigenvalues ${r.mds.eigenvalues.map(sig).join(' ')}\n`;
  out += table([['point', 'x', 'y'], ...r.mds.coords.map((c, i) => [clip(r.labels[i]!, 30), sig(c[0]!), sig(c[1] ?? 0)])], [false, true, true]);
  const name = (id: number): string => (id < n ? clip(r.labels[id]!, 20) : `#${id - n + 1}`);
  out += `\naverage-linkage clustering (leaf order: ${r.clustering.order.map((i) => clip(r.labels[i]!, 14)).join(', ')})\n`;
  out += table([['merge', 'left', 'right', 'distance', 'size'], ...r.clustering.merges.map((m, s) => [`#${s + 1}`, name(m.left), name(m.right), r.metric === 'cosine' ? fix(m.distance, 4) : sig(m.distance), String(m.size)])], [false, false, false, true, true]);
  return out;
}

function reportColumns(r: MergeAnalysisReport): string[] {
  const keys = new Set<string>();
  for (const t of r.tensors) if (t.report) for (const k of Object.keys(t.report)) keys.add(k);
  return [...keys];
}

function reportHeader(key: string, r: MergeAnalysisReport): string {
  const m = /^(.*)_(\d+)$/.exec(key);
  return m ? `${m[1]!.replace('_fraction', '')}:${clip(r.models[Number(m[2])] ?? m[2]!, 8)}` : key;
}

function paramsText(p: Record<string, unknown>, mp: readonly Record<string, unknown>[]): string {
  const g = Object.entries(p).map(([k, v]) => `${k}=${String(v)}`);
  const keys = new Set(mp.flatMap((m) => Object.keys(m)));
  for (const k of keys) g.push(`${k}=${mp.map((m) => String(m[k] ?? '-')).join('/')}`);
  return g.join(' ');
}

export function renderMerge(r: MergeAnalysisReport, perTensor: boolean): string {
  const cols = reportColumns(r).slice(0, 6);
  let out = `merge analysis of ${clip(r.recipe, 40)}: ${r.method}${r.base !== null ? `, base ${clip(r.base, 16)}` : ''}\nmodels: ${clip(r.models.join(', '), 90)}\n`;
  if (!r.reports) out += `note: ${r.method} reports no per-tensor statistics; showing the planned parameters\n`;
  const fmtReport = (rep: Record<string, number> | null): string[] => cols.map((c) => (rep && rep[c] !== undefined ? (c.includes('fraction') ? pct(rep[c]!) : sig(rep[c]!)) : '-'));
  const head = [perTensor ? 'tensor' : 'layer', 'numel', 'changed', ...cols.map((c) => reportHeader(c, r))];
  const rows: string[][] = [head];
  if (perTensor) {
    for (const t of r.tensors) {
      const numel = t.shape.reduce((a, b) => a * b, 1);
      if (t.op === 'copy') rows.push([clip(t.name, 34), formatCount(numel), 'copy', ...cols.map(() => '')]);
      else rows.push([clip(t.name, 34), formatCount(numel), t.effect ? pct(t.effect.changedFraction) : '-', ...fmtReport(t.report)]);
    }
  } else {
    for (const l of r.layers) rows.push([layerName(l.layer), formatCount(l.numel), l.changedFraction === null ? '-' : pct(l.changedFraction), ...fmtReport(l.report)]);
  }
  rows.push(['total', formatCount(r.totals.numel), r.totals.changedFraction === null ? '-' : pct(r.totals.changedFraction), ...fmtReport(r.totals.report)]);
  out += table(rows, [false, true, true, ...cols.map(() => true)]);
  if (!r.reports || perTensor) {
    const seen = new Set<string>();
    const prow: string[][] = [[perTensor ? 'tensor' : 'layer', 'parameters']];
    for (const t of r.tensors) {
      if (t.op !== 'merge') continue;
      const text = paramsText(t.params, t.modelParams);
      const key = perTensor ? t.name : `${layerName(t.layer)}|${text}`;
      if (seen.has(key)) continue;
      seen.add(key);
      prow.push([perTensor ? clip(t.name, 34) : layerName(t.layer), clip(text, 60)]);
    }
    out += '\n' + table(prow);
  }
  out += 'changed: entries where the merge differs from the base; kept: entries each task vector keeps\n';
  for (const w of r.warnings) out += `warning: ${clip(w, 91)}\n`;
  return out;
}

function densityOf(v: unknown): number {
  if (v === undefined) return DEFAULT_OVERLAP_DENSITY;
  const d = Number(v);
  if (!(Number.isFinite(d) && d > 0 && d <= 1)) throw new UsageError('USAGE', `--density must be a number in (0, 1] (got '${String(v)}')`);
  return d;
}

function memoryOf(v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const mb = Number(v);
  if (!(Number.isFinite(mb) && mb > 0)) throw new UsageError('USAGE', `--memory must be a positive number of MB (got '${String(v)}')`);
  return Math.floor(mb * 1024 * 1024);
}

function labelsOf(v: unknown, n: number): string[] | undefined {
  if (v === undefined) return undefined;
  const l = String(v).split(',').map((s) => s.trim());
  if (l.length !== n || l.some((s) => s === '')) throw new UsageError('USAGE', `--labels must list ${n} comma-separated names (got '${String(v)}')`);
  return l;
}

const strings = (v: unknown): string[] => (v === undefined ? [] : (Array.isArray(v) ? v : [v]).map(String));

export function analyzeCommands(y: Argv, ctx: CommandContext): Argv {
  return y.command('analyze', 'analyses of weights: principal weights (LIFT), spectra, task vectors, distances, merges', (a) => {
    a.command(
      'principal',
      'LIFT principal weights: top entries of each matrix\'s rank-r approximation, vs plain magnitude top entries',
      (b) =>
        b
          .option('model', { type: 'string', demandOption: true, describe: 'the checkpoint (file, folder or .onnx)' })
          .option('rank', { type: 'string', describe: 'filter rank r of the approximation (default 128, as LIFT)' })
          .option('fraction', { type: 'string', describe: 'keep round(f*m*n) entries per matrix, f in (0, 1]' })
          .option('lora-rank', { type: 'string', describe: 'keep min((m+n)*R, m*n) entries: LIFT\'s LoRA-equivalent budget (default 128)' })
          .option('svd', { type: 'string', choices: ['auto', 'exact', 'randomized'], default: 'auto', describe: 'auto: exact up to min(m,n) 256' })
          .option('include-embeddings', { type: 'boolean', default: false, describe: 'also mask embeddings and lm_head (LIFT does not)' })
          .option('out', { type: 'string', describe: 'write the masks (.safetensors file or folder)' })
          .option('mask-dtype', { type: 'string', choices: ['bool', 'u8'], default: 'bool' })
          .option('seed', { type: 'number', default: 0, describe: 'seed of the randomized SVD' })
          .option('overwrite', { type: 'boolean', default: false })
          .option('json', { type: 'boolean', default: false })
          .option('quiet', { type: 'boolean', default: false })
          .example('weightkit analyze principal --model ./llama --rank 64 --fraction 0.05 --out masks.safetensors', 'masks of 5% per matrix'),
      async (argv) => {
        const rank = positiveInt(argv.rank, 'rank');
        const budget = budgetOf(argv.fraction, argv['lora-rank']);
        const seed = Number(argv.seed);
        if (!Number.isSafeInteger(seed)) throw new UsageError('USAGE', `--seed must be an integer (got '${String(argv.seed)}')`);
        const reader = await openCheckpointPath(String(argv.model));
        const backend = cliMatMul();
        const p = streamProgress(ctx.io, argv, 'principal');
        try {
          const r = await readPrincipalWeights(reader, {
            ...(rank !== undefined ? { rank } : {}),
            ...(budget !== undefined ? { budget } : {}),
            svd: argv.svd as 'auto' | 'exact' | 'randomized',
            includeEmbeddings: Boolean(argv['include-embeddings']),
            ...(argv.out !== undefined ? { out: String(argv.out) } : {}),
            maskDType: argv['mask-dtype'] === 'u8' ? 'U8' : 'BOOL',
            overwrite: Boolean(argv.overwrite),
            backend,
            seed,
            onProgress: p.onProgress,
            signal: p.signal,
          });
          p.stop();
          if (argv.json) {
            ctx.io.stdout(JSON.stringify(r, null, 2) + '\n');
            return;
          }
          if (argv.quiet) return;
          const b = 'fraction' in r.budget ? `fraction ${r.budget.fraction}` : `LoRA-equivalent rank ${r.budget.loraRank}`;
          const rows: string[][] = [['name', 'shape', 'rank', 'kept', 'overlap', 'jaccard', 'energy(r)']];
          for (const m of r.matrices) {
            rows.push([m.name, `${m.shape[0]}x${m.shape[1]}`, `${m.rankUsed}${m.method === 'randomized' ? '~' : ''}`, formatCount(m.kept), pct(m.overlapFraction), fix(m.jaccard), pct(m.energy)]);
          }
          const t = r.totals;
          rows.push(['total', `${formatCount(t.numel)} values`, '', formatCount(t.kept), pct(t.overlapFraction), fix(t.jaccard), '']);
          ctx.io.stdout(`principal weights of ${r.model}: rank ${r.rank}, ${b}\n`);
          ctx.io.stdout(table(rows, [false, false, true, true, true, true, true]));
          ctx.io.stdout('overlap: share of principal entries that are also magnitude top entries; ~ marks a randomized SVD\n');
          if (r.skipped.length > 0) ctx.io.stdout(`skipped: ${r.skipped.map((s) => `${s.name} (${s.reason})`).join(', ')}\n`);
          if (r.out !== undefined) ctx.io.stdout(`masks (${r.maskDType}) -> ${r.out}\n`);
        } finally {
          p.stop();
          await backend.dispose();
          await reader.close();
        }
      },
    );
    a.command(
      'spectrum',
      'per-matrix singular values, effective rank (entropy) and stable rank of a model or a vector',
      (b) =>
        b
          .option('model', { type: 'string', describe: 'a checkpoint (file, folder or .onnx)' })
          .option('vector', { type: 'string', describe: 'a stored vector (.safetensors from vector extract)' })
          .option('top', { type: 'string', describe: 'singular values to report (default: all up to min(m,n) 256, else 64 by randomized SVD)' })
          .option('svd', { type: 'string', choices: ['auto', 'exact', 'randomized'], default: 'auto' })
          .option('seed', { type: 'number', default: 0 })
          .option('json', { type: 'boolean', default: false })
          .option('quiet', { type: 'boolean', default: false }),
      async (argv) => {
        if ((argv.model === undefined) === (argv.vector === undefined)) throw new UsageError('USAGE', 'give --model or --vector (one of them)');
        const top = positiveInt(argv.top, 'top');
        const seed = Number(argv.seed);
        if (!Number.isSafeInteger(seed)) throw new UsageError('USAGE', `--seed must be an integer (got '${String(argv.seed)}')`);
        const reader: CheckpointReader = argv.model !== undefined ? await openCheckpointPath(String(argv.model)) : await openVector(String(argv.vector));
        const backend = cliMatMul();
        const p = streamProgress(ctx.io, argv, 'spectrum');
        try {
          const r = await readCheckpointSpectra(reader, {
            ...(top !== undefined ? { top } : {}),
            method: argv.svd as 'auto' | 'exact' | 'randomized',
            backend,
            seed,
            onProgress: p.onProgress,
            signal: p.signal,
          });
          p.stop();
          if (argv.json) {
            ctx.io.stdout(JSON.stringify(r, null, 2) + '\n');
            return;
          }
          if (argv.quiet) return;
          const show = Math.min(top ?? 4, 4);
          ctx.io.stdout(`spectra of ${r.path}\n`);
          ctx.io.stdout(table([['name', 'shape', 'svd', 'eff.rank', 'stable', 'energy', `top σ`], ...spectrumRows(r.tensors, show)], [false, false, false, true, true, true, false]));
          if (r.skipped.length > 0) ctx.io.stdout(`skipped: ${r.skipped.map((s) => `${s.name} (${s.reason})`).join(', ')}\n`);
        } finally {
          p.stop();
          await backend.dispose();
          await reader.close();
        }
      },
    );
    a.command(
      'vectors [models..]',
      'task vectors per layer and tensor: norms, relative change, sparsity, kurtosis, cosine, sign conflicts, top-k overlap',
      (b) =>
        b
          .positional('models', { type: 'string', array: true, describe: 'fine-tuned models (with --base)' })
          .option('base', { type: 'string', describe: 'the base model: vectors are model - base' })
          .option('vectors', { type: 'string', array: true, describe: 'stored vectors instead of models (no base: no relative change)' })
          .option('density', { type: 'string', describe: `top-k mask density for the Jaccard overlap, in (0, 1] (default ${DEFAULT_OVERLAP_DENSITY})` })
          .option('spectra', { type: 'boolean', default: false, describe: 'also singular values, effective and stable rank of each 2-D task vector (costly)' })
          .option('top', { type: 'string', describe: 'singular values per matrix with --spectra' })
          .option('labels', { type: 'string', describe: 'comma-separated display names of the vectors' })
          .option('per-tensor', { type: 'boolean', default: false, describe: 'tables per tensor instead of per layer' })
          .option('memory', { type: 'string', describe: 'chunk buffers in MB (default 1024)' })
          .option('csv', { type: 'string', describe: 'also write every number as long-format CSV to this file' })
          .option('report', { type: 'string', describe: 'also write a self-contained HTML report (charts and their numbers) to this file' })
          .option('json', { type: 'boolean', default: false })
          .option('quiet', { type: 'boolean', default: false })
          .example('weightkit analyze vectors --base ./base ./ft-a ./ft-b --density 0.2', 'how two fine-tunes interfere'),
      async (argv) => {
        const models = strings(argv.models);
        const vectors = strings(argv.vectors);
        if ((models.length > 0) === (vectors.length > 0)) throw new UsageError('USAGE', 'give models with --base, or --vectors (one of them)');
        if (models.length > 0 && argv.base === undefined) throw new UsageError('USAGE', 'models need --base (or pass stored vectors with --vectors)');
        const density = densityOf(argv.density);
        const budget = memoryOf(argv.memory) ?? 1024 * 1024 * 1024;
        const top = positiveInt(argv.top, 'top');
        const labels = labelsOf(argv.labels, models.length + vectors.length);
        const backend = cliMatMul();
        const p = streamProgress(ctx.io, argv, 'vectors');
        try {
          const r = await analyzeVectors({
            ...(models.length > 0 ? { base: String(argv.base), models } : { vectors }),
            ...(argv.base !== undefined && vectors.length > 0 ? { base: String(argv.base) } : {}),
            ...(labels ? { labels } : {}),
            density,
            spectra: Boolean(argv.spectra),
            spectrum: { backend, ...(top !== undefined ? { top } : {}) },
            budgetBytes: budget,
            onProgress: p.onProgress,
            signal: p.signal,
          });
          p.stop();
          if (argv.csv !== undefined) await writeFile(String(argv.csv), longCsv(vectorsCsvRows(r)));
          if (argv.report !== undefined) {
            await writeReport(String(argv.report), reportFromAnalyses([r as AnalysisInput]), { overwrite: true });
            if (!argv.json && !argv.quiet) ctx.io.stderr(`report: ${String(argv.report)}\n`);
          }
          if (argv.json) ctx.io.stdout(JSON.stringify(r, null, 2) + '\n');
          else if (!argv.quiet) ctx.io.stdout(renderVectors(r, Boolean(argv['per-tensor'])));
        } finally {
          p.stop();
          await backend.dispose();
        }
      },
    );
    a.command(
      'distance <paths..>',
      'distance matrix between models or vectors, a 2-D map (classical MDS, with stress) and average-linkage clustering',
      (b) =>
        b
          .positional('paths', { type: 'string', array: true, describe: 'models or stored vectors (at least 2)' })
          .option('metric', { type: 'string', choices: ['cosine', 'l2'], default: 'cosine' })
          .option('base', { type: 'string', describe: 'compare task vectors model - base instead of the models' })
          .option('labels', { type: 'string', describe: 'comma-separated display names' })
          .option('memory', { type: 'string', describe: 'chunk buffers in MB (default 1024)' })
          .option('csv', { type: 'string', describe: 'also write the distances, coordinates and merges as long-format CSV' })
          .option('report', { type: 'string', describe: 'also write a self-contained HTML report (charts and their numbers) to this file' })
          .option('json', { type: 'boolean', default: false })
          .option('quiet', { type: 'boolean', default: false }),
      async (argv) => {
        const paths = strings(argv.paths);
        const labels = labelsOf(argv.labels, paths.length);
        const p = streamProgress(ctx.io, argv, 'distance');
        try {
          const r = await analyzeDistance({
            paths,
            ...(argv.base !== undefined ? { base: String(argv.base) } : {}),
            metric: argv.metric as DistanceMetric,
            ...(labels ? { labels } : {}),
            budgetBytes: memoryOf(argv.memory) ?? 1024 * 1024 * 1024,
            onProgress: p.onProgress,
            signal: p.signal,
          });
          p.stop();
          if (argv.csv !== undefined) {
            const rows: (string | number | null)[][] = [];
            r.labels.forEach((a, i) => r.labels.forEach((b2, j) => rows.push(['matrix', r.metric, a, b2, 'distance', r.matrix[i]![j]!])));
            r.labels.forEach((a, i) => r.mds.coords[i]!.forEach((c, d) => rows.push(['mds', 'coords', a, '', d === 0 ? 'x' : `dim${d}`.replace('dim1', 'y'), c])));
            rows.push(['mds', 'stress', '', '', 'stress', r.mds.stress]);
            r.clustering.merges.forEach((m, s) => rows.push(['cluster', `#${s + 1}`, String(m.left), String(m.right), 'distance', m.distance]));
            await writeFile(String(argv.csv), longCsv(rows));
          }
          if (argv.report !== undefined) {
            await writeReport(String(argv.report), reportFromAnalyses([r as AnalysisInput]), { overwrite: true });
            if (!argv.json && !argv.quiet) ctx.io.stderr(`report: ${String(argv.report)}\n`);
          }
          if (argv.json) ctx.io.stdout(JSON.stringify(r, null, 2) + '\n');
          else if (!argv.quiet) ctx.io.stdout(renderDistance(r));
        } finally {
          p.stop();
        }
      },
    );
    a.command(
      'merge <recipe>',
      'what a recipe\'s method keeps and drops per tensor (TIES/DARE kept fractions, changed entries); writes nothing',
      (b) =>
        b
          .positional('recipe', { type: 'string', demandOption: true })
          .option('per-tensor', { type: 'boolean', default: false })
          .option('seed', { type: 'number', describe: 'override the recipe seed' })
          .option('memory', { type: 'string', describe: 'working memory in MB (default 1000)' })
          .option('csv', { type: 'string', describe: 'also write every reported number as long-format CSV' })
          .option('report', { type: 'string', describe: 'also write a self-contained HTML report (charts and their numbers) to this file' })
          .option('json', { type: 'boolean', default: false })
          .option('quiet', { type: 'boolean', default: false }),
      async (argv) => {
        const memory = memoryOf(argv.memory);
        const backend = cliMatMul();
        const p = streamProgress(ctx.io, argv, 'merge analysis');
        try {
          const r = await analyzeMerge(String(argv.recipe), {
            ...(argv.seed !== undefined ? { seed: Number(argv.seed) } : {}),
            ...(memory !== undefined ? { memoryBudget: memory } : {}),
            linalg: backend,
            onProgress: p.onProgress,
            signal: p.signal,
          });
          p.stop();
          if (argv.csv !== undefined) {
            const rows: (string | number | null)[][] = [];
            for (const t of r.tensors) {
              for (const [k, v] of Object.entries(t.report ?? {})) rows.push(['tensor', t.name, '', '', k, v]);
              if (t.effect) {
                rows.push(['tensor', t.name, '', '', 'changedFraction', t.effect.changedFraction]);
                rows.push(['tensor', t.name, '', '', 'signConflict', t.effect.signConflict]);
              }
            }
            for (const l of r.layers) for (const [k, v] of Object.entries(l.report)) rows.push(['layer', layerName(l.layer), '', '', k, v]);
            await writeFile(String(argv.csv), longCsv(rows));
          }
          if (argv.report !== undefined) {
            await writeReport(String(argv.report), reportFromAnalyses([r as AnalysisInput]), { overwrite: true });
            if (!argv.json && !argv.quiet) ctx.io.stderr(`report: ${String(argv.report)}\n`);
          }
          if (argv.json) ctx.io.stdout(JSON.stringify(r, null, 2) + '\n');
          else if (!argv.quiet) ctx.io.stdout(renderMerge(r, Boolean(argv['per-tensor'])));
        } finally {
          p.stop();
          await backend.dispose();
        }
      },
    );
    reportCommand(a, ctx);
    return a.demandCommand(1, 'name an analyze subcommand (see weightkit analyze --help)');
  });
}
