// Signals that end the CLI: SIGTERM (what `timeout` and service managers send), SIGHUP (a closed terminal), and a
// Ctrl-C that no command handles or a second one (a command that stops between tensors takes the first: see
// interruptible). Each removes the temporary outputs alive (src/io/temps.ts) before the process exits with 128 +
// the signal's number, as shells report it, so that no half-written file or staging folder is left behind.

import { liveTemps, removeTempsSync } from '../io/temps.js';

const SIGNALS = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const;
let installed = false;

/** Install the handlers once (the real CLI only: tests run main() in-process). */
export function installSignalCleanup(stderr: (s: string) => void): void {
  if (installed) return;
  installed = true;
  let interrupts = 0;
  const exitOn = (name: keyof typeof SIGNALS): void => {
    const n = liveTemps();
    removeTempsSync();
    // a progress bar hides the cursor while it draws: show it again (its own stop() does not run on this path)
    if (process.stderr.isTTY) process.stderr.write('\u001b[?25h');
    stderr(`\nweightkit: stopped by ${name}${n > 0 ? `; removed ${n} unfinished output(s)` : ''}\n`);
    process.exit(128 + SIGNALS[name]);
  };
  process.on('SIGTERM', () => exitOn('SIGTERM'));
  process.on('SIGHUP', () => exitOn('SIGHUP'));
  process.on('SIGINT', () => {
    interrupts++;
    // a command's own handler (registered after this one, still there on the first Ctrl-C) stops it cleanly
    if (interrupts === 1 && process.listenerCount('SIGINT') > 1) return;
    exitOn('SIGINT');
  });
}
