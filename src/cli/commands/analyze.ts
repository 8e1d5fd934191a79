// `weightkit analyze <principal|spectrum>`: weight analyses over models and vectors. Every subcommand calls a library
// function of src/analysis and renders its JSON-serialisable result; new analyses add one `a.command(...)` below.
// Large products run on ONNX Runtime (loaded on first use only, so small models never start a session).

import type { Argv } from 'yargs';
import { UsageError } from '../../errors.js';
import { readPrincipalWeights, type PrincipalBudget } from '../../analysis/principal.js';
import { readCheckpointSpectra, type TensorSpectrum } from '../../analysis/spectra.js';
import { openCheckpointPath } from '../../io/open.js';
import type { CheckpointReader } from '../../io/types.js';
import { jsMatMul, type MatMulBackend, type MatMulOptions } from '../../tensor/linalg/index.js';
import { openVector } from '../../vectors/reader.js';
import type { CommandContext } from '../main.js';
import { streamProgress } from '../progress.js';
import { formatCount, table } from '../render.js';

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

export function analyzeCommands(y: Argv, ctx: CommandContext): Argv {
  return y.command('analyze', 'analyses of weights: principal weights (LIFT), spectra', (a) => {
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
    return a.demandCommand(1, 'name an analyze subcommand (see weightkit analyze --help)');
  });
}
