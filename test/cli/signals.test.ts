// A CLI process that is stopped by SIGTERM, SIGHUP or Ctrl-C removes the temporary outputs it has alive (staged
// folders, temp files) and exits with 128 + the signal's number; a command's own Ctrl-C handler gets the first one.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../plan/helpers.js';

const SRC = resolve(import.meta.dirname, '..', '..', 'src');

/** A child that stages an output folder and a temp file as the writers do, installs the CLI's handlers and waits. */
async function child(dir: string, graceful: boolean): Promise<{ proc: ReturnType<typeof spawn>; ready: Promise<void>; stderr: () => string; exit: Promise<number | null> }> {
  const script = join(dir, 'child.mts');
  await writeFile(
    script,
    `import { stageOutputDir } from ${JSON.stringify(join(SRC, 'io/output.ts'))};
import { createTempFile } from ${JSON.stringify(join(SRC, 'io/file.ts'))};
import { installSignalCleanup } from ${JSON.stringify(join(SRC, 'cli/signals.ts'))};
installSignalCleanup((s) => process.stderr.write(s));
${graceful ? "process.once('SIGINT', () => process.stdout.write('graceful\\n'));" : ''}
const staged = await stageOutputDir(${JSON.stringify(join(dir, 'out'))});
const { fh } = await createTempFile(${JSON.stringify(join(dir, 'single.safetensors'))});
await fh.write('partial');
process.stdout.write('ready\\n');
setInterval(() => undefined, 1000);
`,
  );
  const proc = spawn(process.execPath, ['--import', 'tsx', script], { cwd: resolve(SRC, '..'), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let onReady: () => void;
  const ready = new Promise<void>((r) => (onReady = r));
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.includes('ready')) onReady();
  });
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  return { proc, ready, stderr: () => err + out, exit };
}

const temps = async (dir: string): Promise<string[]> => (await readdir(dir)).filter((f) => f.includes('weightkit-tmp') || f.endsWith('.tmp'));

describe('signals', () => {
  for (const [signal, code] of [['SIGTERM', 143], ['SIGHUP', 129], ['SIGINT', 130]] as const) {
    it(`${signal}: the unfinished outputs are removed, exit ${code}`, async () => {
      const dir = await tempDir('weightkit-sig-');
      const c = await child(dir, false);
      await c.ready;
      expect((await temps(dir)).length).toBe(2);
      c.proc.kill(signal);
      expect(await c.exit).toBe(code);
      expect(await temps(dir)).toEqual([]);
      expect(c.stderr()).toContain(`stopped by ${signal}; removed 2 unfinished output(s)`);
      expect(existsSync(join(dir, 'out'))).toBe(false);
    }, 30_000);
  }

  it("a command's own Ctrl-C handler takes the first one; a second Ctrl-C cleans up and exits", async () => {
    const dir = await tempDir('weightkit-sig-');
    const c = await child(dir, true);
    await c.ready;
    c.proc.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 300));
    expect(c.stderr()).toContain('graceful');
    expect((await temps(dir)).length).toBe(2); // still running: the command stops on its own
    c.proc.kill('SIGINT');
    expect(await c.exit).toBe(130);
    expect(await temps(dir)).toEqual([]);
  }, 30_000);

  it('on a terminal, a signal shows the cursor again (a progress bar hides it)', async () => {
    if (!existsSync('/usr/bin/script')) return;
    const dir = await tempDir('weightkit-sig-');
    const c = join(dir, 'tty.mts');
    await writeFile(
      c,
      `import { installSignalCleanup } from ${JSON.stringify(join(SRC, 'cli/signals.ts'))};
import { writeFileSync } from 'node:fs';
installSignalCleanup((s) => process.stderr.write(s));
process.stderr.write('\\u001b[?25l');
writeFileSync(${JSON.stringify(join(dir, 'ready'))}, '');
setInterval(() => undefined, 1000);
`,
    );
    const cmd = `${process.execPath} --import tsx ${c} & P=$!; while [ ! -e ${join(dir, 'ready')} ]; do sleep 0.05; done; kill -TERM $P; wait $P`;
    const out = await new Promise<string>((res) => {
      const p = spawn('/usr/bin/script', ['-qc', cmd, '/dev/null'], { cwd: resolve(SRC, '..'), stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      p.stdout!.on('data', (d: Buffer) => (text += d.toString()));
      p.on('exit', () => res(text));
    });
    expect(out).toContain('\u001b[?25h');
    expect(out).toContain('stopped by SIGTERM');
  }, 30_000);
});
