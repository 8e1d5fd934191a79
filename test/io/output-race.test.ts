// An output that appears while weightkit writes the same path is never replaced without --overwrite: staged
// folders are renamed into place only onto nothing (or an empty folder), single files are hard-linked into place.

import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { open } from 'node:fs/promises';
import { describe, expect, it, vi } from 'vitest';
import { WeightkitError } from '../../src/errors.js';
import { stageOutputDir } from '../../src/io/output.js';
import { openSafetensorsWriter } from '../../src/io/safetensors/writer.js';
import { openCheckpointPath } from '../../src/io/open.js';
import { tempDir } from '../plan/helpers.js';

async function code(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    return (e as WeightkitError).code;
  }
  return undefined;
}

describe('outputs that appear while writing', () => {
  it('a staged folder does not replace a folder that appeared meanwhile; with --overwrite it does', async () => {
    const root = await tempDir('weightkit-race-');
    const out = join(root, 'out');
    const staged = await stageOutputDir(out);
    await writeFile(join(staged.staging, 'model.safetensors'), 'merged');
    await mkdir(out);
    await writeFile(join(out, 'important.txt'), 'precious');
    expect(await code(staged.commit())).toBe('OUT_EXISTS');
    await staged.abort();
    expect(await readFile(join(out, 'important.txt'), 'utf8')).toBe('precious');
    expect((await readdir(root)).filter((f) => f.startsWith('.'))).toEqual([]); // the staging folder is gone
    // a file that appeared at the folder's path
    const out2 = join(root, 'out2');
    const s2 = await stageOutputDir(out2);
    await writeFile(out2, 'a file');
    expect(await code(s2.commit())).toBe('OUT_EXISTS');
    await s2.abort();
    expect(await readFile(out2, 'utf8')).toBe('a file');
    // an empty folder that appeared is taken (as the checks allow one)
    const out3 = join(root, 'out3');
    const s3 = await stageOutputDir(out3);
    await writeFile(join(s3.staging, 'x'), 'merged');
    await mkdir(out3);
    await s3.commit();
    expect(await readFile(join(out3, 'x'), 'utf8')).toBe('merged');
    // --overwrite replaces what appeared
    const s4 = await stageOutputDir(out, { overwrite: true });
    await writeFile(join(s4.staging, 'x'), 'merged');
    await s4.commit();
    expect(await readdir(out)).toEqual(['x']);
  });

  it('a single safetensors file does not replace a file that appeared meanwhile (replace: false); replace: true does', async () => {
    const root = await tempDir('weightkit-race-');
    const out = join(root, 'm.safetensors');
    const decls = [{ name: 'w', dtype: 'F32' as const, shape: [2] }];
    const w = await openSafetensorsWriter(out, decls, { replace: false });
    await w.write('w', new Uint8Array(8));
    await writeFile(out, 'precious');
    expect(await code(w.close())).toBe('OUT_EXISTS');
    await w.abort();
    expect(await readFile(out, 'utf8')).toBe('precious');
    expect((await readdir(dirname(out))).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    // nothing there: published under its name, no temp file left
    const out2 = join(root, 'n.safetensors');
    const w2 = await openSafetensorsWriter(out2, decls, { replace: false });
    await w2.write('w', new Uint8Array(8));
    await w2.close();
    const r = await openCheckpointPath(out2);
    expect(r.tensors().map((t) => t.name)).toEqual(['w']);
    await r.close();
    expect((await readdir(root)).sort()).toEqual(['m.safetensors', 'n.safetensors']);
    // the default replaces
    const w3 = await openSafetensorsWriter(out, decls);
    await w3.write('w', new Uint8Array(8));
    await w3.close();
    expect(existsSync(out) && (await readFile(out)).length > 8).toBe(true);
  });

  it('publishing syncs: every file of a staged folder and the folders, a single file and its folder', async () => {
    const root = await tempDir('weightkit-sync-');
    const probe = await open(join(root, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void>; sync: () => Promise<void> };
    await probe.close();
    const datasync = vi.spyOn(proto, 'datasync');
    const sync = vi.spyOn(proto, 'sync');
    const staged = await stageOutputDir(join(root, 'out'));
    await writeFile(join(staged.staging, 'config.json'), '{}');
    await writeFile(join(staged.staging, 'README.md'), '# x');
    await staged.commit();
    expect(datasync).toHaveBeenCalledTimes(2);
    expect(sync.mock.calls.length).toBeGreaterThanOrEqual(2); // the staged folder, then the output's parent
    datasync.mockClear();
    sync.mockClear();
    const w = await openSafetensorsWriter(join(root, 'one.safetensors'), [{ name: 'w', dtype: 'F32', shape: [2] }]);
    await w.write('w', new Uint8Array(8));
    await w.close();
    expect(datasync).toHaveBeenCalledTimes(1);
    expect(sync).toHaveBeenCalledTimes(1);
    vi.restoreAllMocks();
  });
});

describe('creating output folders', () => {
  it('a path where no folder can be created (under /proc) is OUT_INVALID at once (Node\'s recursive mkdir spins there)', async () => {
    if (!existsSync('/proc/self')) return;
    expect(await code(stageOutputDir('/proc/weightkit-no/out'))).toBe('OUT_INVALID');
    expect(await code(openSafetensorsWriter('/proc/weightkit-no/x.safetensors', [{ name: 'w', dtype: 'F32', shape: [1] }]))).toBeDefined();
    const { checkOutputFile } = await import('../../src/io/output.js');
    expect(await code(checkOutputFile('/proc/weightkit-no/x.safetensors'))).toBe('OUT_INVALID');
  }, 10_000);

  it('makeDirs creates the missing folders from the first existing one down, and fails under a file', async () => {
    const { makeDirs } = await import('../../src/io/file.js');
    const root = await tempDir('weightkit-mk-');
    await makeDirs(join(root, 'a', 'b', 'c'));
    expect(existsSync(join(root, 'a', 'b', 'c'))).toBe(true);
    await makeDirs(join(root, 'a', 'b', 'c')); // exists: nothing to do
    await writeFile(join(root, 'f'), 'x');
    expect(await code(makeDirs(join(root, 'f', 'sub')))).toBe('ENOTDIR');
  });
});
