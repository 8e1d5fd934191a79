// `weightkit merge <recipe> --out <dir>` (also mergekit's positional `merge <recipe> <dir>`), `--dry-run` plans,
// `weightkit validate <recipe>` reports every recipe problem, `weightkit methods` lists methods and parameters.

import type { Argv } from 'yargs';
import { UsageError } from '../../errors.js';
import { METHODS, getMethod } from '../../merge/registry.js';
import type { MergeMethod } from '../../merge/types.js';
import { mergeWithOrt } from '../../eval/merge-with-ort.js';
import { buildPlan, loadRecipe, type MergeOptions } from '../../plan/merge.js';
import { mergedModels, type MergePlan } from '../../plan/plan.js';
import type { ParamSpec } from '../../recipe/spec.js';
import { formatShape } from '../../tensor/tensor.js';
import { parseDTypeOption, parseSize } from '../args.js';
import type { CommandContext } from '../main.js';
import { createProgress } from '../progress.js';
import { formatBytes, formatCount, table } from '../render.js';
import { loadNativeKernels } from '../../plan/native.js';

function mergeOptions(argv: Record<string, unknown>): Omit<MergeOptions, 'out'> {
  const o: Omit<MergeOptions, 'out'> = {};
  if (argv['threads'] !== undefined) {
    const n = Number(argv['threads']);
    if (!Number.isInteger(n) || n < 1 || n > 256) throw new UsageError('USAGE', `--threads must be a whole number from 1 to 256 (got ${String(argv['threads'])})`);
    o.threads = n;
  }
  if (argv['seed'] !== undefined) {
    const n = Number(argv['seed']);
    if (!Number.isSafeInteger(n) || n < 0) throw new UsageError('USAGE', `--seed must be a non-negative integer (got ${String(argv['seed'])})`);
    o.seed = n;
  }
  if (argv['shard-size'] !== undefined) o.shardSize = parseSize(argv['shard-size'], 'shard-size');
  if (argv['memory-budget'] !== undefined) o.memoryBudget = parseSize(argv['memory-budget'], 'memory-budget');
  if (argv['dtype'] !== undefined) o.dtype = parseDTypeOption(argv['dtype'], 'dtype', ['F32', 'F16', 'BF16']);
  if (argv['out-dtype'] !== undefined) o.outDtype = parseDTypeOption(argv['out-dtype'], 'out-dtype', ['F32', 'F16', 'BF16']);
  if (argv['overwrite']) o.overwrite = true;
  if (argv['lenient']) o.lenient = true;
  if (typeof argv['intermediate-dir'] === 'string') o.intermediateDir = argv['intermediate-dir'];
  return o;
}

/** Matrix-product throughput of the ORT backend measured on 2 cores (bench/linalg: 4096 x 4096 x 1034), for the dry run's time hint. */
const ORT_FLOPS_2_CORES = 300e9;
/** JS loop throughput (the eigen reduction: ~2.6 GFLOP/s at l = 1280; Jacobi SVDs less), for the same hint. */
const JS_FLOPS = 2e9;

function formatFlops(f: number): string {
  return f >= 1e12 ? `${(f / 1e12).toFixed(1)} TFLOP` : `${(f / 1e9).toFixed(1)} GFLOP`;
}

function formatSeconds(s: number): string {
  return s >= 3600 ? `${(s / 3600).toFixed(1)} h` : s >= 60 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(1)} s`;
}

/** Which kernels the merge runs: by method, and by the dtypes of the tensors it merges (the native ones take BF16/F16). */
function kernelsLine(plan: MergePlan): string {
  const method = plan.method;
  if (getMethod(method).linalg) {
    const dense = loadNativeKernels() !== undefined ? ' and the native dense kernels (AVX-512)' : '';
    return `ONNX Runtime matrix products${dense} for the 2-D tensors merged whole; JS and WebAssembly SIMD for the rest`;
  }
  if (loadNativeKernels() !== undefined) {
    const merged = plan.tensors.filter((t) => t.op === 'merge');
    const half = (d: string): boolean => d === 'BF16' || d === 'F16';
    const native = merged.filter((t) => half(t.dtype) && [...(t.base ? [t.base] : []), ...t.inputs].every((i) => half(i.dtype)));
    const inputs = process.env['WEIGHTKIT_MMAP'] === '0' ? 'read (WEIGHTKIT_MMAP=0)' : 'mapped from their files';
    const what: Record<string, string> = {
      model_stock: "the deltas' Gram sums and the interpolation, up to 8 models",
      slerp: 'the Gram sums and the interpolation',
      linear: 'the weighted average, up to 9 models',
      task_arithmetic: 'the weighted sum',
      dare_linear: 'DARE draws and the weighted sum',
      dare_ties: 'DARE draws and norms, sign consensus',
      breadcrumbs: 'two top-k selections per model, masks',
      breadcrumbs_ties: 'two top-k selections per model, masks, sign consensus',
      della: 'ranks per row, draws, norms, sign consensus',
      della_linear: 'ranks per row, draws, norms',
      ties: 'masks, sign consensus, top-k counts',
    };
    const job = what[method];
    if (job === undefined) return 'WebAssembly SIMD (the native kernels serve linear, slerp, model_stock, task_arithmetic, ties, dare_*, breadcrumbs* and della*)';
    if (native.length === 0) return `WebAssembly SIMD (the native kernels take BF16/F16 inputs and outputs; none of the ${merged.length} merged tensors is)`;
    const share = native.length === merged.length ? 'every merged tensor' : `${native.length} of ${merged.length} merged tensors (the BF16/F16 ones)`;
    return `native AVX-512 (${job}) for ${share}, inputs ${inputs}; WebAssembly SIMD for the rest`;
  }
  if (process.env['WEIGHTKIT_NATIVE'] === '0') return 'WebAssembly SIMD (native kernels disabled by WEIGHTKIT_NATIVE=0)';
  return 'WebAssembly SIMD (no usable native kernels: npm run build:native needs linux-x64, g++ and AVX-512)';
}

export function renderPlan(plan: MergePlan, verbose: boolean): string {
  let s = '';
  const base = plan.base !== undefined ? plan.models[plan.base] : undefined;
  s += table([
    ['recipe', `${plan.recipe.file}${plan.recipe.name ? ` (stage '${plan.recipe.name}')` : ''}`],
    ['method', plan.method],
    ['base', base ? `${base.ref} (${base.format})` : '-'],
    ['models', mergedModels(plan).map((m) => m.ref).join(', ')],
    ...(plan.tokenizerDonor !== plan.base && !mergedModels(plan).some((m) => m.id === plan.tokenizerDonor) ? [['tokenizer', plan.models[plan.tokenizerDonor]!.ref] as [string, string]] : []),
    ['tensors', `${formatCount(plan.tensors.length)} (${formatCount(plan.tensors.filter((t) => t.op === 'copy').length)} copied)`],
    ['output', `${formatBytes(plan.outputBytes)}${plan.numLayers ? `, ${plan.numLayers} layers` : ''}`],
    ['reads', `${formatBytes(plan.inputBytes)} per pass`],
    ['memory', `~${formatBytes(plan.memory.peakBytes)} peak (${plan.memory.threads} thread(s), budget ${formatBytes(plan.memory.budgetBytes)}, ${plan.memory.chunkedTensors} tensor(s) streamed in row chunks)`],
    ...(plan.memory.wholeTensors
      ? [[
          'linear algebra',
          `${formatCount(plan.memory.wholeTensors.count)} tensor(s) merged whole: ~${formatFlops(plan.memory.wholeTensors.flops)} in matrix products + ~${formatFlops(plan.memory.wholeTensors.jsFlops)} in JS (~${formatSeconds(plan.memory.wholeTensors.flops / ORT_FLOPS_2_CORES + plan.memory.wholeTensors.jsFlops / JS_FLOPS)} at 300 and 2 GFLOP/s); largest working set ~${formatBytes(plan.memory.wholeTensors.largest.bytes)} (${plan.memory.wholeTensors.largest.name})`,
        ] as [string, string]]
      : []),
    ['kernels', kernelsLine(plan)],
    ['seed', String(plan.seed)],
  ]);
  if (plan.warnings.length > 0) s += '\nwarnings\n' + plan.warnings.map((w) => `  - ${w}\n`).join('');
  const shown = verbose ? plan.tensors : plan.tensors.slice(0, 12);
  s += '\ntensors\n';
  s += table(
    [
      ['  name', 'op', 'dtype', 'shape', 'inputs', 'parameters'],
      ...shown.map((t) => {
        const params = Object.entries(t.params).map(([k, v]) => `${k}=${v}`);
        const mp = t.modelParams.map((p) => Object.entries(p).map(([k, v]) => `${k}=${typeof v === 'number' ? +v.toFixed(4) : v}`).join(' '));
        return [`  ${t.name}`, t.op, t.dtype, formatShape(t.shape), String(t.inputs.length + (t.base ? 1 : 0)), [...params, ...mp.map((m, i) => `[${i}] ${m}`)].join('; ')];
      }),
    ],
  );
  if (shown.length < plan.tensors.length) s += `  ... ${plan.tensors.length - shown.length} more (--verbose lists all)\n`;
  return s;
}

function paramLine(p: ParamSpec): string {
  const range =
    p.min !== undefined || p.max !== undefined
      ? ` in ${p.exclusiveMin ? '(' : '['}${p.min ?? '-inf'}, ${p.max ?? 'inf'}${p.exclusiveMax ? ')' : ']'}`
      : p.choices
        ? ` one of ${p.choices.join('|')}`
        : '';
  const def = p.required ? 'required' : p.default !== undefined ? `default ${JSON.stringify(p.default)}` : 'optional';
  return `${p.name} (${p.type}${range}; ${def}): ${p.description}`;
}

export function renderMethods(methods: readonly MergeMethod[], detail: boolean): string {
  if (!detail) {
    // two lines per method, wrapped to 100 columns: name, base, model count and summary; then its parameters
    const width = 100;
    const left = 36;
    const wrap = (text: string, indent: number): string[] => {
      const out: string[] = [];
      let line = '';
      for (const word of text.split(' ')) {
        if (line && line.length + 1 + word.length > width - indent) {
          out.push(line);
          line = word;
        } else line = line ? `${line} ${word}` : word;
      }
      if (line) out.push(line);
      return out;
    };
    const lines = [`${'method'.padEnd(18)}${'base'.padEnd(10)}${'models'.padEnd(8)}summary / parameters (* per model)`];
    for (const m of methods) {
      const count = m.maxModels === undefined ? `${m.minModels}+` : m.minModels === m.maxModels ? String(m.minModels) : `${m.minModels}-${m.maxModels}`;
      const head = `${m.name.padEnd(18)}${m.base.padEnd(10)}${count.padEnd(8)}`;
      const summary = wrap(m.summary, left);
      lines.push(head + summary[0], ...summary.slice(1).map((l) => ' '.repeat(left) + l));
      const params = [...m.params.map((p) => p.name), ...m.modelParams.map((p) => `${p.name}*`)].join(', ');
      if (params) lines.push(...wrap(`parameters: ${params}`, left).map((l) => ' '.repeat(left) + l));
    }
    return lines.join('\n') + '\n\nweightkit methods <name> shows defaults, ranges, the formula and the reference.\n';
  }
  return methods
    .map((m) => {
      const lines = [`${m.name}: ${m.summary}`, `  base: ${m.base}; models: ${m.minModels}${m.maxModels === undefined ? '+' : `..${m.maxModels}`}${m.random ? '; random (uses seed)' : ''}`];
      if (m.params.length) lines.push('  parameters:', ...m.params.map((p) => `    ${paramLine(p)}`));
      if (m.modelParams.length) lines.push('  per-model parameters:', ...m.modelParams.map((p) => `    ${paramLine(p)}`));
      lines.push(`  formula: ${m.formula}`, `  reference: ${m.reference}`);
      if (m.differences) lines.push(`  differs from mergekit: ${m.differences}`);
      return lines.join('\n');
    })
    .join('\n\n') + '\n';
}

export function methodsJson(methods: readonly MergeMethod[]): object[] {
  return methods.map((m) => ({
    name: m.name,
    base: m.base,
    minModels: m.minModels,
    maxModels: m.maxModels ?? null,
    params: m.params,
    modelParams: m.modelParams,
    summary: m.summary,
    formula: m.formula,
    reference: m.reference,
    differences: m.differences ?? null,
    random: m.random ?? false,
  }));
}

export function mergeCommands(y: Argv, ctx: CommandContext): Argv {
  return y
    .command(
      'merge <recipe> [dir]',
      'merge models as a (mergekit-format) YAML recipe says',
      (b) =>
        b
          .positional('recipe', { type: 'string', demandOption: true, describe: 'recipe YAML (one or more documents)' })
          .positional('dir', { type: 'string', describe: 'output folder (mergekit\'s form; the same as --out <dir>)' })
          .option('out', { type: 'string', describe: 'output folder (must not exist or be empty unless --overwrite)' })
          .option('dry-run', { type: 'boolean', default: false, describe: 'print the plan (tensors, parameters, memory, kernels; for SVD methods their flops) and stop' })
          .option('threads', { type: 'number', describe: 'worker threads (default: number of cores)' })
          .option('seed', { type: 'number', describe: 'seed for random methods (overrides the recipe)' })
          .option('shard-size', { type: 'string', describe: 'max bytes per output shard (default 5GB)' })
          .option('memory-budget', { type: 'string', describe: 'working memory for tensor data (default 1GB)' })
          .option('dtype', { type: 'string', describe: 'override the recipe dtype (bf16|f16|f32)' })
          .option('out-dtype', { type: 'string', describe: 'override the recipe out_dtype (bf16|f16|f32)' })
          .option('overwrite', { type: 'boolean', default: false, describe: 'replace an existing non-empty output folder' })
          .option('lenient', { type: 'boolean', default: false, describe: 'unknown recipe keys and parameters are warnings, not errors' })
          .option('intermediate-dir', { type: 'string', describe: 'keep intermediate stages of a multi-document recipe here' })
          .option('verbose', { type: 'boolean', default: false, describe: 'with --dry-run: list every tensor' })
          .option('quiet', { type: 'boolean', default: false, describe: 'no progress and no summary' })
          .option('json', { type: 'boolean', default: false, describe: 'print the plan or result (and errors) as JSON' })
          .example('weightkit merge recipes/methods/ties.yaml --out merged/', 'run a TIES merge')
          .example('weightkit merge recipe.yaml merged/ --dry-run', 'show the plan without reading tensor data')
          .epilog('Environment: WEIGHTKIT_NATIVE=0 runs the WebAssembly kernels even where the native ones (npm run build:native) are built; WEIGHTKIT_MMAP=0 reads the inputs of native whole-tensor merges instead of mapping them from their files; WEIGHTKIT_DIRECT_IO=0 writes outputs through the page cache instead of O_DIRECT. The bytes are the same.'),
      async (argv) => {
        const a = argv as unknown as Record<string, unknown>;
        const recipe = String(argv.recipe);
        const out = typeof argv.dir === 'string' ? argv.dir : typeof argv.out === 'string' ? argv.out : undefined;
        const opts = mergeOptions(a);
        if (argv['dry-run']) {
          const plans = await buildPlan(recipe, { ...opts, ...(out ? { out } : {}) });
          if (argv.json) ctx.io.stdout(JSON.stringify(plans.length === 1 ? plans[0] : plans, null, 2) + '\n');
          else ctx.io.stdout(plans.map((p) => renderPlan(p, Boolean(argv.verbose))).join('\n'));
          return;
        }
        if (!out) throw new UsageError('USAGE', 'name the output folder: weightkit merge <recipe> --out <dir>');
        const progress = createProgress(ctx.io, { quiet: Boolean(argv.quiet) || Boolean(argv.json), title: 'merge' });
        // Ctrl-C stops between tensors (SVD methods: between matrix products); the staged output is removed before
        // the command exits (code 130)
        const stop = new AbortController();
        const shown = new Set<string>();
        const onSigint = (): void => stop.abort();
        process.once('SIGINT', onSigint);
        try {
          // tsv / rtsvm / iso_c: matrix products on ONNX Runtime (created for the run and disposed after it)
          const r = await mergeWithOrt(recipe, {
            ...opts,
            out,
            signal: stop.signal,
            // a plan's warnings (a working set above the budget, vocabulary cuts, ...) before the work starts
            onWarning: (w) => {
              if (argv.quiet || argv.json) return;
              shown.add(w);
              ctx.io.stderr(`warning: ${w}\n`);
            },
            onProgress: (p) =>
              progress.update({
                done: p.tensorsDone,
                total: p.tensorsTotal,
                bytesDone: p.bytesDone,
                bytesTotal: p.bytesTotal,
                elapsedMs: p.elapsedMs,
                ...(p.stages > 1 ? { label: `stage ${p.stage}/${p.stages}` } : {}),
              }),
          });
          progress.stop();
          if (argv.json) {
            ctx.io.stdout(JSON.stringify({ out: r.out, files: r.files, bytesWritten: r.bytesWritten, seconds: r.seconds, warnings: r.warnings, tensors: r.plans.at(-1)?.tensors.length ?? 0 }, null, 2) + '\n');
          } else if (!argv.quiet) {
            for (const w of r.warnings) if (!shown.has(w)) ctx.io.stderr(`warning: ${w}\n`);
            const plan = r.plans.at(-1)!;
            ctx.io.stdout(
              `merged ${formatCount(plan.tensors.length)} tensors with ${plan.method} -> ${r.out} (${formatBytes(r.bytesWritten)} in ${r.seconds.toFixed(2)} s, ${formatBytes(r.bytesWritten / Math.max(r.seconds, 1e-9))}/s)\n`,
            );
          }
        } finally {
          process.off('SIGINT', onSigint);
          progress.stop();
        }
      },
    )
    .check((argv) => {
      // mergekit's positional form and --out name the same thing; refuse two different values
      const a = argv as unknown as { _: unknown[]; out?: unknown; dir?: unknown };
      if (Array.isArray(a.out) || Array.isArray(a.dir) || (a.dir !== undefined && a.out !== undefined)) {
        throw new UsageError('USAGE', 'give the output folder once (positional or --out)');
      }
      return true;
    })
    .command(
      'validate <recipe>',
      'check a recipe (syntax, schema, methods, parameters, model paths) and report every problem',
      (b) =>
        b
          .positional('recipe', { type: 'string', demandOption: true })
          .option('lenient', { type: 'boolean', default: false, describe: 'unknown keys and parameters are warnings' })
          .option('json', { type: 'boolean', default: false }),
      async (argv) => {
        const plans = await buildPlan(String(argv.recipe), { lenient: Boolean(argv.lenient) });
        const { recipe } = await loadRecipe(String(argv.recipe), { lenient: Boolean(argv.lenient) });
        // the plans' own warnings (missing tensors, vocabulary cuts, ...) as the merge would print them
        const planWarnings = [...new Set(plans.flatMap((p) => p.warnings))];
        if (argv.json) {
          ctx.io.stdout(
            JSON.stringify({ ok: true, stages: plans.length, tensors: plans.map((p) => p.tensors.length), warnings: recipe.warnings.map((w) => ({ code: w.code, message: w.message, line: w.pos.line, col: w.pos.col })), planWarnings }, null, 2) + '\n',
          );
          return;
        }
        for (const w of recipe.warnings) ctx.io.stderr(`warning[${w.code}]: ${w.message}\n  --> ${w.pos.file}:${w.pos.line}:${w.pos.col}\n`);
        for (const w of planWarnings) ctx.io.stderr(`warning: ${w}\n`);
        ctx.io.stdout(`${String(argv.recipe)}: ok (${plans.length} stage(s), ${plans.map((p) => `${p.tensors.length} tensors with ${p.method}`).join('; ')})\n`);
      },
    )
    .command(
      'methods [name]',
      'list merge methods with their parameters, defaults and references',
      (b) => b.positional('name', { type: 'string' }).option('json', { type: 'boolean', default: false }),
      async (argv) => {
        const name = typeof argv.name === 'string' ? argv.name : undefined;
        const list = name ? METHODS.filter((m) => m.name === name) : METHODS;
        if (name && list.length === 0) {
          throw new UsageError('USAGE', `unknown merge method '${name}'`, { hint: 'weightkit methods lists them all' });
        }
        if (argv.json) ctx.io.stdout(JSON.stringify(methodsJson(list), null, 2) + '\n');
        else ctx.io.stdout(renderMethods(list, Boolean(name)));
      },
    );
}
