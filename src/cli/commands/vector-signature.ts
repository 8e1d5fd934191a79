// `weightkit vector signature`: extract a Robust Weight Signature (robust minus pretrained, with the clean
// fine-tuning direction projected out) into a vector file and print the per-depth table that chose its layers.
// Mounted under `vector` by the CLI entry; rendering only, the work is src/vectors/signature.ts.

import type { Argv } from 'yargs';
import { parseQuantizeSpec } from '../../vectors/quantize.js';
import { DEFAULT_AUTO_SHARE, extractSignature, type SignatureResult } from '../../vectors/signature.js';
import { parseSize } from '../args.js';
import type { CommandContext } from '../main.js';
import { streamProgress } from '../progress.js';
import { table } from '../render.js';

function num(x: number): string {
  if (x === 0) return '0';
  if (!Number.isFinite(x)) return String(x);
  return Math.abs(x) >= 1e-3 && Math.abs(x) < 1e4 ? x.toFixed(4) : x.toExponential(3);
}

function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

export function renderSignature(r: SignatureResult, rule: string): string {
  let s = table(
    [
      ['unit', 'depth', 'tensors', '‖clean−pre‖/‖pre‖', '‖robust−pre‖/‖pre‖', '‖RWS‖/‖pre‖', 'share', 'cumulative', 'selected'],
      ...r.table.map((u) => [
        u.unit,
        String(u.depth),
        String(u.tensors),
        num(u.relClean),
        num(u.relRobust),
        num(u.relSignature),
        pct(u.share),
        pct(u.cumulative),
        u.selected ? '*' : '',
      ]),
    ],
    [false, true, true, true, true, true, true, true, false],
  );
  s += `\nselection: ${rule}\n`;
  s += `wrote ${r.selected.length} tensor${r.selected.length === 1 ? '' : 's'} to ${r.out} (base: clean model ${r.fingerprint})\n`;
  for (const n of r.selected) s += `  ${n}\n`;
  if (r.quantization) s += `quantisation: relative L2 error ${num(r.quantization.relL2)}, max abs error ${num(r.quantization.maxAbs)}\n`;
  return s;
}

export function signatureCommand(y: Argv, ctx: CommandContext): Argv {
  return y.command(
    'signature',
    'extract a robust weight signature: (robust - pre) with the clean fine-tuning direction projected out, shallow layers',
    (b) =>
      b
        .option('pre', { type: 'string', demandOption: true, describe: 'the pretrained model both fine-tunes started from' })
        .option('clean', { type: 'string', demandOption: true, describe: 'the clean fine-tune (signatures are applied to it)' })
        .option('robust', { type: 'string', demandOption: true, describe: 'the robust fine-tune' })
        .option('out', { type: 'string', demandOption: true, describe: 'the signature, a .safetensors vector file' })
        .option('layers', {
          type: 'string',
          default: 'auto',
          describe: "'auto', the first N depth units, or a glob on tensor names ('*', '?')",
        })
        .option('auto-share', { type: 'number', describe: `with --layers auto: share of Σ‖RWS‖/‖pre‖ to reach (default ${DEFAULT_AUTO_SHARE})` })
        .option('quantize', { type: 'string', describe: 'store N-level codes: linear[:N] or log[:N]' })
        .option('label', { type: 'string', describe: 'a label stored in the vector (e.g. the corruption)' })
        .option('memory-budget', { type: 'string', describe: 'bytes of chunk buffers (default 256MiB)' })
        .option('overwrite', { type: 'boolean', default: false, describe: 'replace an existing output file' })
        .option('json', { type: 'boolean', default: false, describe: 'print the result (and errors) as JSON' })
        .example('weightkit vector signature --pre pre --clean clean --robust fog --out fog.rws.safetensors', 'auto layer selection')
        .example('weightkit vector signature --pre pre --clean clean --robust fog --out fog.safetensors --layers 7', 'the first 7 depth units'),
    async (argv) => {
      const layers = String(argv.layers);
      const autoShare = argv['auto-share'] === undefined ? undefined : Number(argv['auto-share']);
      const progress = streamProgress(ctx.io, argv, 'signature');
      const result = await extractSignature({
        onProgress: progress.onProgress,
        signal: progress.signal,
        pre: String(argv.pre),
        clean: String(argv.clean),
        robust: String(argv.robust),
        out: String(argv.out),
        layers,
        ...(autoShare !== undefined ? { autoShare } : {}),
        ...(argv.quantize !== undefined ? { quantize: parseQuantizeSpec(String(argv.quantize)) } : {}),
        ...(argv.label !== undefined ? { label: String(argv.label) } : {}),
        ...(argv['memory-budget'] !== undefined ? { budgetBytes: parseSize(argv['memory-budget'], 'memory-budget') } : {}),
        overwrite: Boolean(argv.overwrite),
      }).finally(() => progress.stop());
      if (argv.json) ctx.io.stdout(JSON.stringify(result, null, 2) + '\n');
      else {
        const rule = layers === 'auto' ? `auto (shallowest units reaching ${pct(autoShare ?? DEFAULT_AUTO_SHARE)} of Σ‖RWS‖/‖pre‖)` : /^\d+$/.test(layers.trim()) ? `first ${layers.trim()} depth units` : `tensors matching '${layers}'`;
        ctx.io.stdout(renderSignature(result, rule));
      }
    },
  );
}
