// `weightkit inspect <path>`: what a checkpoint holds, as aligned text or JSON.

import type { Argv } from 'yargs';
import { inspectCheckpoint, type InspectReport } from '../../io/inspect.js';
import { formatShape } from '../../tensor/tensor.js';
import type { CommandContext } from '../main.js';
import { formatBytes, formatCount, formatParams, table } from '../render.js';

export function renderInspect(r: InspectReport, showTensors: boolean): string {
  let s = '';
  const shardNote = r.shards.length > 1 ? `, ${r.shards.length} shards` : '';
  s += table([
    ['checkpoint', r.path],
    ['format', `${r.format}${shardNote}`],
    ['tensors', formatCount(r.tensorCount)],
    ['parameters', `${formatCount(r.parameters)} (${formatParams(r.parameters)})`],
    ['bytes', `${formatCount(r.byteLength)} (${formatBytes(r.byteLength)})`],
  ]);
  s += '\nby dtype\n';
  s += table(
    [
      ['  dtype', 'tensors', 'parameters', 'bytes'],
      ...r.byDType.map((d) => [`  ${d.dtype}`, formatCount(d.tensors), formatCount(d.parameters), formatBytes(d.byteLength)]),
    ],
    [false, true, true, true],
  );
  const meta = Object.entries(r.metadata);
  if (meta.length > 0) {
    s += '\nmetadata\n';
    s += table(meta.map(([k, v]) => [`  ${k}`, v.length > 120 ? `${v.slice(0, 117)}...` : v]));
  }
  if (r.shards.length > 1 || r.format !== 'safetensors') {
    s += '\nfiles\n';
    s += table(
      r.shards.map((f) => [`  ${f.file}`, formatBytes(f.byteLength), `${formatCount(f.tensorCount)} tensors`]),
      [false, true, true],
    );
  }
  if (showTensors && r.tensors.length > 0) {
    s += '\ntensors\n';
    s += table(
      [
        ['  name', 'dtype', 'shape', 'bytes'],
        ...r.tensors.map((t) => [`  ${t.name}`, t.dtype, formatShape(t.shape), formatBytes(t.byteLength)]),
      ],
      [false, false, false, true],
    );
  }
  return s;
}

export function inspectCommand(y: Argv, ctx: CommandContext): Argv {
  return y.command(
    'inspect <path>',
    'show format, tensors, parameter counts and bytes per dtype, metadata and shard layout',
    (b) =>
      b
        .positional('path', { type: 'string', demandOption: true, describe: '.safetensors file, sharded folder, or .onnx model' })
        .option('json', { type: 'boolean', default: false, describe: 'print the report as JSON' })
        .option('tensors', { type: 'boolean', default: true, describe: 'list every tensor (--no-tensors for the summary only)' })
        .example('weightkit inspect ./llama-3-8b', 'summarise a sharded Hugging Face folder')
        .example('weightkit inspect model.onnx --json', 'initializers of an ONNX model as JSON'),
    async (argv) => {
      const report = await inspectCheckpoint(String(argv.path));
      if (argv.json) ctx.io.stdout(JSON.stringify(report, null, 2) + '\n');
      else ctx.io.stdout(renderInspect(report, Boolean(argv.tensors)));
    },
  );
}
