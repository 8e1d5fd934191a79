// The weightkit command line (yargs). The only module family that touches process streams and exit codes: every
// command calls the same library functions the API exports, and every failure is rendered here, never thrown
// to the user as a stack trace.

import yargs, { type Argv } from 'yargs';
import { UsageError, allocationError } from '../errors.js';
import { WEIGHTKIT_VERSION } from '../version.js';
import { analyzeCommands } from './commands/analyze.js';
import { convertCommand } from './commands/convert.js';
import { evalCommand } from './commands/eval.js';
import { inspectCommand } from './commands/inspect.js';
import { loraCommands } from './commands/lora.js';
import { mergeCommands } from './commands/merge.js';
import { sweepCommands } from './commands/sweep.js';
import { vectorCommands } from './commands/vector.js';
import { interpolateCommand, soupCommand } from './commands/vector-interpolate.js';
import { EXIT_OK, errorJson, exitCodeFor, renderError, terminalSafe } from './render.js';
import { installSignalCleanup } from './signals.js';

/** Where a command writes; tests pass collectors, the binary passes process streams. */
export interface CliIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  /** stderr is a terminal (progress bars redraw) */
  isTTY: boolean;
}

export const processIo: CliIo = {
  // names and texts from checkpoints and recipes are printed: never a terminal control sequence (terminalSafe)
  stdout: (s) => void process.stdout.write(terminalSafe(s)),
  stderr: (s) => void process.stderr.write(terminalSafe(s)),
  isTTY: Boolean(process.stderr.isTTY),
};

export interface CommandContext {
  io: CliIo;
  /** set by a command that printed its own result and wants a specific exit code */
  exitCode?: number;
}

export function buildParser(args: readonly string[], ctx: CommandContext): Argv {
  let parser = yargs([...args])
    .scriptName('weightkit')
    .usage('weightkit <command> [options]\n\nA workbench for neural-network weights: safetensors and ONNX checkpoints, merging, task vectors,\nevaluation through ONNX Runtime and analysis.')
    .version(WEIGHTKIT_VERSION)
    .help()
    .alias('h', 'help')
    .strict()
    .demandCommand(1, 'name a command (see weightkit --help)')
    .recommendCommands()
    .wrap(Math.min(100, process.stdout.columns || 100))
    .exitProcess(false)
    .fail((msg, err) => {
      if (err) throw err;
      throw new UsageError('USAGE', msg ?? 'invalid arguments', { hint: 'run weightkit --help' });
    });
  // yargs renders the whole help text as soon as a command's handler has started, in case the handler asks for it
  // later (ours never do; --help renders it anyway): ~15 ms on the path of every command, merges included
  const usage = (parser as unknown as { getInternalMethods?: () => { getUsageInstance?: () => { cacheHelpMessage?: () => void } } }).getInternalMethods?.().getUsageInstance?.();
  if (usage?.cacheHelpMessage) usage.cacheHelpMessage = () => undefined;
  parser = inspectCommand(parser, ctx);
  parser = convertCommand(parser, ctx);
  parser = mergeCommands(parser, ctx);
  parser = vectorCommands(parser, ctx);
  parser = loraCommands(parser, ctx);
  parser = analyzeCommands(parser, ctx);
  parser = interpolateCommand(parser, ctx);
  parser = soupCommand(parser, ctx);
  parser = evalCommand(parser, ctx);
  parser = sweepCommands(parser, ctx);
  return parser;
}

/** Run the CLI with the given arguments; returns the process exit code. Never throws. */
export async function main(args: readonly string[], io: CliIo = processIo): Promise<number> {
  if (io === processIo) installSignalCleanup(io.stderr);
  const ctx: CommandContext = { io };
  const wantsJson = args.includes('--json');
  try {
    let output = '';
    await buildParser(args, ctx).parseAsync([...args], {}, (err, _argv, out) => {
      if (out) output = out;
      if (err) throw err;
    });
    if (output) io.stdout(output.endsWith('\n') ? output : output + '\n');
    return ctx.exitCode ?? EXIT_OK;
  } catch (caught) {
    if (process.env.WEIGHTKIT_DEBUG && caught instanceof Error && caught.stack) io.stderr(caught.stack + '\n');
    // an allocation too large for the runtime is a property of the input, not a bug (paths that know the tensor
    // say which; see allocationError)
    const e = allocationError(caught, {}) ?? caught;
    if (wantsJson) io.stderr(JSON.stringify(errorJson(e)) + '\n');
    else io.stderr(renderError(e));
    return exitCodeFor(e);
  }
}
