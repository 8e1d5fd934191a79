// Rendering for the terminal: errors (`error[CODE]: message` + `--> file (tensor 'x')`), aligned tables, and
// human-readable sizes. The CLI is the only place that turns WeightkitErrors into text and exit codes.

import { readFileSync } from 'node:fs';
import { RecipeProblems, isWeightkitError, type WeightkitError } from '../errors.js';

/** Exit codes: 0 ok, 1 internal error (a bug), 2 bad input (any WeightkitError). */
export const EXIT_OK = 0;
export const EXIT_INTERNAL = 1;
export const EXIT_BAD_INPUT = 2;

/** 130: stopped by Ctrl-C (128 + SIGINT), as shells report it. */
export const EXIT_INTERRUPTED = 130;

export function exitCodeFor(e: unknown): number {
  if (isWeightkitError(e) && e.code === 'INTERRUPTED') return EXIT_INTERRUPTED;
  return isWeightkitError(e) ? EXIT_BAD_INPUT : EXIT_INTERNAL;
}

function locationLine(e: WeightkitError): string | undefined {
  const w = e.where;
  const parts: string[] = [];
  if (w.file !== undefined) {
    let f = w.file;
    if (w.line !== undefined) f += `:${w.line}${w.col !== undefined ? `:${w.col}` : ''}`;
    parts.push(f);
  }
  const extra: string[] = [];
  if (w.tensor !== undefined) extra.push(`tensor '${w.tensor}'`);
  if (w.path !== undefined && w.path !== '') extra.push(w.path);
  if (w.byteOffset !== undefined) extra.push(`byte ${w.byteOffset}`);
  if (parts.length === 0 && extra.length === 0) return undefined;
  return `  --> ${[...parts, extra.length > 0 ? `(${extra.join(', ')})` : ''].filter(Boolean).join(' ')}`;
}

const sourceCache = new Map<string, string[] | undefined>();

/** At most this many of a recipe's problems are printed (all are counted); a snippet shows this many characters. */
export const MAX_SHOWN_PROBLEMS = 50;
const SNIPPET_WIDTH = 120;

/**
 * Text that is safe to print on a terminal: control characters (ESC, BEL, ... but not newline and tab) and Unicode
 * direction overrides from file names, tensor names, metadata or recipes are shown as \u.... escapes, so a checkpoint
 * cannot retitle, clear or hide the terminal's output. (In JSON output such characters only occur inside strings,
 * where \u.... is the same character: the JSON stays valid and equal.)
 */
export function terminalSafe(s: string): string {
  return s.replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The recipe line an error points at, with a caret under the column (rustc style). */
function sourceSnippet(e: WeightkitError): string[] {
  const { file, line, col } = e.where;
  if (file === undefined || line === undefined) return [];
  if (!sourceCache.has(file)) {
    try {
      sourceCache.set(file, readFileSync(file, 'utf8').split(/\r?\n/));
    } catch {
      sourceCache.set(file, undefined);
    }
  }
  const text = sourceCache.get(file)?.[line - 1];
  if (text === undefined) return [];
  const num = String(line);
  const pad = ' '.repeat(num.length);
  let c = Math.max(1, col ?? 1);
  const rest = text.slice(c - 1);
  const width = Math.min(SNIPPET_WIDTH, Math.max(1, (/^[^\s:,\]}]+/.exec(rest)?.[0].length ?? 1)));
  // a long line is shown around the column only
  let shown = text;
  if (text.length > SNIPPET_WIDTH) {
    const from = Math.max(0, Math.min(c - 1 - 40, text.length - SNIPPET_WIDTH));
    shown = `${from > 0 ? '…' : ''}${text.slice(from, from + SNIPPET_WIDTH)}${from + SNIPPET_WIDTH < text.length ? '…' : ''}`;
    c = c - from + (from > 0 ? 1 : 0);
  }
  return [`${pad} |`, `${num} | ${shown}`, `${pad} | ${' '.repeat(c - 1)}${'^'.repeat(width)}`];
}

function renderOne(e: WeightkitError): string[] {
  const lines = [`error[${e.code}]: ${e.message}`];
  const loc = locationLine(e);
  if (loc) lines.push(loc);
  for (const s of sourceSnippet(e)) lines.push(`   ${s}`);
  if (e.hint) lines.push(`  = help: ${e.hint}`);
  return lines;
}

/** Human-readable text for an error; unknown errors are reported as internal bugs without a stack trace. */
export function renderError(e: unknown): string {
  if (e instanceof RecipeProblems) {
    const blocks = e.problems.slice(0, MAX_SHOWN_PROBLEMS).map((p) => renderOne(p).join('\n'));
    const n = e.problems.length;
    const more = n > MAX_SHOWN_PROBLEMS ? ` (the first ${MAX_SHOWN_PROBLEMS} shown)` : '';
    return `${blocks.join('\n\n')}\n\n${n} problem${n === 1 ? '' : 's'} in ${e.where.file ?? 'the recipe'}${more}\n`;
  }
  if (isWeightkitError(e)) return renderOne(e).join('\n') + '\n';
  const msg = e instanceof Error ? e.message : String(e);
  return (
    `error[INTERNAL]: ${msg}\n` +
    `  = note: this is a bug in weightkit; please report it (set WEIGHTKIT_DEBUG=1 for a stack trace)\n`
  );
}

export function errorJson(e: unknown): object {
  if (isWeightkitError(e)) return { error: e.toJSON() };
  return { error: { name: 'InternalError', code: 'INTERNAL', message: e instanceof Error ? e.message : String(e) } };
}

/** Decimal units, as disk sizes are usually given (GB = 1e9 bytes). */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB', 'PB'];
  let v = n;
  let u = -1;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[u]}`;
}

export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

/** Short parameter count: 1.24B, 350M, 12.3K. */
export function formatParams(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

/** Left-aligned columns (right-aligned where `right[i]`), two spaces apart, no trailing spaces. */
export function table(rows: readonly (readonly string[])[], right: readonly boolean[] = []): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return (
    rows
      .map((r) =>
        r
          .map((c, i) => (right[i] ? c.padStart(widths[i]!) : i === r.length - 1 ? c : c.padEnd(widths[i]!)))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}
