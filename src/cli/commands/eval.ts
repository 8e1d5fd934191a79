// `weightkit eval`: run an ONNX classifier (optionally with patched weights) on a labelled dataset through ONNX
// Runtime and print accuracy, top-k, mean cross-entropy, mean entropy, per-class accuracy and, with a reference,
// the negative flip rate and agreement; as aligned text or JSON.

import type { Argv } from 'yargs';
import { UsageError } from '../../errors.js';
import type { EvalReport } from '../../eval/evaluate.js';
import type { CommandContext } from '../main.js';
import { parseSize } from '../args.js';
import { interruptible } from '../progress.js';
import { formatCount, table } from '../render.js';

const pct = (v: number): string => (Number.isNaN(v) ? '-' : `${(v * 100).toFixed(2)}%`);
const nats = (v: number): string => `${v.toFixed(4)} nats`;

export function renderEvalReport(r: EvalReport): string {
  let s = table([
    ['model', r.model],
    ...(r.weights !== undefined ? [['weights', `${r.weights} (${r.patched} tensors patched)`]] : []),
    ['data', `${r.data} (${formatCount(r.count)} examples, ${r.classes} classes)`],
    ['batch', String(r.batch)],
  ]);
  s += '\n';
  s += table(
    [
      ['accuracy', pct(r.accuracy)],
      [`top-${r.topK} accuracy`, pct(r.topKAccuracy)],
      ['mean cross-entropy', nats(r.meanCrossEntropy)],
      ['mean entropy', nats(r.meanEntropy)],
    ],
    [false, true],
  );
  s += '\nper class\n';
  s += table(
    [
      ['  class', 'examples', 'correct', 'accuracy'],
      ...r.perClass.map((c) => [`  ${c.class}`, formatCount(c.count), formatCount(c.correct), pct(c.accuracy)]),
    ],
    [false, true, true, true],
  );
  if (r.reference !== undefined) {
    const { comparison: c, metrics: m } = r.reference;
    s += '\nreference\n';
    s += table(
      [
        ['  model', r.reference.model + (r.reference.weights !== undefined ? ` + ${r.reference.weights}` : '')],
        ['  reference accuracy', pct(m.accuracy)],
        ['  negative flip rate', `${pct(c.negativeFlipRate)} (${formatCount(c.negativeFlips)} of ${formatCount(c.count)})`],
        ['  positive flips', `${formatCount(c.positiveFlips)}`],
        ['  agreement', pct(c.agreement)],
      ],
      [false, false],
    );
  }
  return s;
}

/** The report as JSON data: predictions left out (one per example), NaN as null. */
export function evalReportJson(r: EvalReport): object {
  const { predictions: _p, reference, ...rest } = r;
  const out: Record<string, unknown> = { ...rest };
  if (reference !== undefined) {
    const { predictions: _q, ...metrics } = reference.metrics;
    out.reference = { ...reference, metrics };
  }
  return out;
}

function positiveInt(v: unknown, option: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError('USAGE', `--${option} must be a positive integer, got '${String(v)}'`);
  return n;
}

export function evalCommand(y: Argv, ctx: CommandContext): Argv {
  return y.command(
    'eval',
    'evaluate an ONNX classifier (optionally with weights from a checkpoint) on a labelled dataset through ONNX Runtime',
    (b) =>
      b
        .option('model', { type: 'string', demandOption: true, describe: 'the ONNX graph (.onnx)' })
        .option('weights', { type: 'string', describe: 'weights for the graph: a .safetensors file, a model folder or a model' })
        .option('data', {
          type: 'string',
          demandOption: true,
          describe: 'a .safetensors dataset, a folder holding inputs.npy and labels.npy, or x.npy,y.npy',
        })
        .option('input', { type: 'string', describe: 'inputs tensor (or .npy stem) of the dataset (default inputs)' })
        .option('label', { type: 'string', describe: 'labels tensor (or .npy stem) of the dataset (default labels)' })
        .option('model-input', { type: 'string', describe: 'graph input to feed (default: the first)' })
        .option('model-output', { type: 'string', describe: 'graph output holding the logits (default: the first)' })
        .option('batch', { type: 'number', describe: 'examples per batch (default 256, lowered to fit --memory-budget)' })
        .option('memory-budget', { type: 'string', describe: 'bytes of one batch of inputs and outputs (default 256MiB)' })
        .option('top-k', { type: 'number', describe: 'k of the top-k accuracy (default 5)' })
        .option('threads', { type: 'number', describe: 'ONNX Runtime threads per session (default: up to 2)' })
        .option('reference', { type: 'string', describe: 'a reference ONNX model: adds negative flip rate and agreement' })
        .option('reference-weights', { type: 'string', describe: 'weights for the reference graph' })
        .option('json', { type: 'boolean', default: false, describe: 'print the report (and errors) as JSON' })
        .example('weightkit eval --model mlp.onnx --weights merged.safetensors --data test.safetensors', 'accuracy of a merge')
        .example('weightkit eval --model new.onnx --data test/ --reference old.onnx', 'negative flips of an update'),
    async (argv) => {
      if (argv['reference-weights'] !== undefined && argv.reference === undefined) {
        throw new UsageError('USAGE', '--reference-weights needs --reference (the reference graph)');
      }
      const batch = positiveInt(argv.batch, 'batch');
      const topK = positiveInt(argv['top-k'], 'top-k');
      const threads = positiveInt(argv.threads, 'threads');
      const budgetBytes = argv['memory-budget'] === undefined ? undefined : parseSize(argv['memory-budget'], 'memory-budget');
      const irq = interruptible();
      let r: EvalReport;
      try {
        // the evaluation stack (ONNX Runtime, the ONNX schema) is loaded by the commands that use it
        const { evaluate } = await import('../../eval/evaluate.js');
        r = await evaluate({
          model: String(argv.model),
          data: String(argv.data),
          signal: irq.signal,
          ...(argv.weights !== undefined ? { weights: String(argv.weights) } : {}),
          ...(argv.input !== undefined ? { input: String(argv.input) } : {}),
          ...(argv.label !== undefined ? { label: String(argv.label) } : {}),
          ...(argv['model-input'] !== undefined ? { modelInput: String(argv['model-input']) } : {}),
          ...(argv['model-output'] !== undefined ? { modelOutput: String(argv['model-output']) } : {}),
          ...(batch !== undefined ? { batch } : {}),
          ...(topK !== undefined ? { topK } : {}),
          ...(threads !== undefined ? { threads } : {}),
          ...(budgetBytes !== undefined ? { budgetBytes } : {}),
          ...(argv.reference !== undefined
            ? {
                reference: {
                  model: String(argv.reference),
                  ...(argv['reference-weights'] !== undefined ? { weights: String(argv['reference-weights']) } : {}),
                },
              }
            : {}),
        });
      } finally {
        irq.dispose();
      }
      if (argv.json) ctx.io.stdout(JSON.stringify(evalReportJson(r), null, 2) + '\n');
      else ctx.io.stdout(renderEvalReport(r));
    },
  );
}
