// The temporary outputs alive in this process (staged folders, temp files), so that a signal that ends the process
// (SIGTERM, SIGHUP, a second Ctrl-C: src/cli/signals.ts) removes them instead of leaving half-written files behind.
// Every path is added when created and dropped once published or removed.

import { rmSync } from 'node:fs';

const live = new Set<string>();

/** A temporary file or folder now exists at `path`. */
export function trackTemp(path: string): void {
  live.add(path);
}

/** `path` was published (renamed into place) or removed. */
export function untrackTemp(path: string): void {
  live.delete(path);
}

/** How many temporary outputs exist now. */
export function liveTemps(): number {
  return live.size;
}

/** Remove every temporary output now (synchronously: for a process about to exit). Returns how many. */
export function removeTempsSync(): number {
  let n = 0;
  for (const p of live) {
    try {
      rmSync(p, { recursive: true, force: true });
      n++;
    } catch {
      // nothing more can be done on the way out
    }
  }
  live.clear();
  return n;
}
