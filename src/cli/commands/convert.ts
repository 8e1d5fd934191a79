// `weightkit convert`: checkpoint -> (dtype-converted) safetensors, or ONNX model + safetensors weights ->
// patched ONNX model.

import type { Argv } from 'yargs';
import { UsageError } from '../../errors.js';
import { convertCheckpoint, patchOnnxFromWeights } from '../../io/convert.js';
import { parseDTypeOption, parseSize } from '../args.js';
import type { CommandContext } from '../main.js';
import { formatBytes, formatCount } from '../render.js';

export function convertCommand(y: Argv, ctx: CommandContext): Argv {
  return y.command(
    'convert <input>',
    'convert a checkpoint to safetensors (optionally changing float dtype), or patch an ONNX model with weights',
    (b) =>
      b
        .positional('input', { type: 'string', demandOption: true, describe: 'safetensors file/folder or .onnx model' })
        .option('out', { type: 'string', demandOption: true, describe: 'output: x.safetensors, a folder (sharded), or x.onnx with --weights' })
        .option('dtype', { type: 'string', describe: 'convert float tensors to bf16, f16 or f32' })
        .option('shard-size', { type: 'string', describe: 'max bytes per shard for folder outputs (default 5GB)' })
        .option('weights', { type: 'string', describe: 'safetensors file/folder whose tensors replace the ONNX initializers' })
        .option('allow-missing', { type: 'boolean', default: false, describe: 'with --weights: keep initializers the weights lack' })
        .option('cast', { type: 'boolean', default: false, describe: 'with --weights: convert weights to the initializer dtypes' })
        .option('external', {
          type: 'string',
          choices: ['auto', 'always', 'never'],
          default: 'auto',
          describe: 'with --weights: external data file next to the .onnx (auto: only above ~1.8 GB)',
        })
        .option('overwrite', { type: 'boolean', default: false, describe: 'replace an existing output' })
        .option('json', { type: 'boolean', default: false, describe: 'print the result (and errors) as JSON' })
        .option('quiet', { type: 'boolean', default: false, describe: 'print nothing on success' })
        .example('weightkit convert model.onnx --out model.safetensors', 'ONNX initializers to safetensors')
        .example('weightkit convert ./llama --out ./llama-bf16 --dtype bf16', 'dtype-convert a sharded folder')
        .example('weightkit convert model.onnx --weights merged/ --out merged.onnx', 'patch an ONNX graph with merged weights'),
    async (argv) => {
      const input = String(argv.input);
      const out = String(argv.out);
      if (argv.weights !== undefined) {
        if (argv.dtype !== undefined) throw new UsageError('USAGE', '--dtype cannot be combined with --weights (use --cast)');
        if (!out.endsWith('.onnx')) throw new UsageError('USAGE', `with --weights, --out must be a .onnx path (got ${out})`);
        const ext = argv.external === 'always' ? true : argv.external === 'never' ? false : 'auto';
        const r = await patchOnnxFromWeights({
          model: input,
          weights: String(argv.weights),
          out,
          allowMissing: Boolean(argv['allow-missing']),
          cast: Boolean(argv.cast),
          external: ext,
          overwrite: Boolean(argv.overwrite),
        });
        if (argv.json) ctx.io.stdout(JSON.stringify(r, null, 2) + '\n');
        else if (!argv.quiet) {
          const kept = r.kept.length > 0 ? `, kept ${r.kept.length} model initializer(s)` : '';
          ctx.io.stdout(`patched ${formatCount(r.replaced)} initializer(s)${kept} -> ${r.out}\n`);
        }
        return;
      }
      const dtype = argv.dtype === undefined ? undefined : parseDTypeOption(argv.dtype, 'dtype', ['BF16', 'F16', 'F32']);
      const shardSize = argv['shard-size'] === undefined ? undefined : parseSize(argv['shard-size'], 'shard-size');
      const r = await convertCheckpoint({ input, out, dtype, shardSize, overwrite: Boolean(argv.overwrite) });
      if (argv.json) ctx.io.stdout(JSON.stringify(r, null, 2) + '\n');
      else if (!argv.quiet) {
        for (const w of r.warnings) ctx.io.stderr(`warning: ${w}\n`);
        ctx.io.stdout(
          `wrote ${formatCount(r.tensors)} tensors, ${formatBytes(r.byteLength)} in ${r.files.length} file(s) -> ${r.out}\n`,
        );
      }
    },
  );
}
