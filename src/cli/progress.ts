// Progress display for long commands: a redrawn bar on a terminal (cli-progress), plain periodic lines when stderr
// is not a terminal (CI logs), nothing when quiet.

import cliProgress from 'cli-progress';
import type { CliIo } from './main.js';
import { formatBytes } from './render.js';

export interface ProgressState {
  done: number;
  total: number;
  bytesDone: number;
  bytesTotal: number;
  elapsedMs: number;
  label?: string;
}

export interface ProgressReporter {
  update(s: ProgressState): void;
  stop(): void;
}

function eta(s: ProgressState): string {
  if (s.bytesDone <= 0 || s.bytesTotal <= 0) return '?';
  const rest = ((s.bytesTotal - s.bytesDone) / s.bytesDone) * s.elapsedMs;
  return `${Math.max(0, rest / 1000).toFixed(0)}s`;
}

function rate(s: ProgressState): string {
  return s.elapsedMs > 0 ? `${formatBytes((s.bytesDone / s.elapsedMs) * 1000)}/s` : '-';
}

export function createProgress(io: CliIo, options: { quiet: boolean; title: string; intervalMs?: number; /** tests: the bar's stream */ stream?: NodeJS.WritableStream }): ProgressReporter {
  if (options.quiet) return { update: () => undefined, stop: () => undefined };
  if (io.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        format: `${options.title}{stage} |{bar}| {percentage}% {value}/{total} tensors | {bytes} | {rate} | ETA {etaText}`,
        stream: options.stream ?? process.stderr,
        ...(options.stream !== undefined ? { noTTYOutput: true } : {}),
        hideCursor: true,
        clearOnComplete: false,
      },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    let total = -1;
    return {
      update(s) {
        const payload = { stage: s.label ? ` (${s.label})` : '', bytes: `${formatBytes(s.bytesDone)}/${formatBytes(s.bytesTotal)}`, rate: rate(s), etaText: eta(s) };
        if (!started) {
          bar.start(s.total, s.done, payload);
          started = true;
        } else {
          // a multi-document recipe's next stage has its own tensor count
          if (s.total !== total) bar.setTotal(s.total);
          bar.update(s.done, payload);
        }
        total = s.total;
      },
      stop() {
        if (started) bar.stop();
      },
    };
  }
  const interval = options.intervalMs ?? 5000;
  let last = -Infinity;
  return {
    update(s) {
      const finished = s.done === s.total;
      if (!finished && s.elapsedMs - last < interval) return;
      last = s.elapsedMs;
      io.stderr(
        `${options.title}${s.label ? ` (${s.label})` : ''}: ${s.done}/${s.total} tensors, ${formatBytes(s.bytesDone)} of ${formatBytes(s.bytesTotal)}, ${rate(s)}, ETA ${eta(s)}\n`,
      );
    },
    stop: () => undefined,
  };
}

/**
 * Ctrl-C for long commands: the returned signal aborts on SIGINT (the library stops between chunks, removes what it
 * staged and throws INTERRUPTED, exit code 130). Call dispose() when the command ends.
 */
export function interruptible(): { signal: AbortSignal; dispose: () => void } {
  const stop = new AbortController();
  const onSigint = (): void => stop.abort();
  process.once('SIGINT', onSigint);
  return { signal: stop.signal, dispose: () => process.off('SIGINT', onSigint) };
}

/** What the vector commands' streaming engine reports (structurally StreamProgress of src/vectors/stream.ts). */
export interface StreamProgressLike {
  tensor: string;
  index: number;
  count: number;
  bytesRead: number;
  bytesWritten: number;
}

/** Progress display plus Ctrl-C handling for one streaming command; stop() ends both (call it in a finally). */
export function streamProgress(io: CliIo, argv: { quiet?: unknown; json?: unknown }, title: string): { onProgress: (p: StreamProgressLike) => void; signal: AbortSignal; stop: () => void } {
  const started = Date.now();
  const bar = createProgress(io, { quiet: Boolean(argv.quiet) || Boolean(argv.json), title });
  const irq = interruptible();
  return {
    onProgress: (p) =>
      bar.update({
        done: p.index,
        total: p.count,
        bytesDone: p.bytesRead + p.bytesWritten,
        bytesTotal: p.index > 0 ? Math.round(((p.bytesRead + p.bytesWritten) * p.count) / p.index) : 0,
        elapsedMs: Date.now() - started,
        label: p.tensor,
      }),
    signal: irq.signal,
    stop: () => {
      bar.stop();
      irq.dispose();
    },
  };
}
