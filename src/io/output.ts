// Output safety shared by every command that writes a checkpoint: the target must not be an input, must not hold
// anything unless overwriting is asked for, and is built under a temporary sibling name and renamed into place
// when complete, so an interrupted run never leaves something that looks finished. Node fs only.

import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, realpath, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { IoError, PlanError, WeightkitError, wrapIoError } from '../errors.js';
import { makeDirs, syncDir } from './file.js';
import { trackTemp, untrackTemp } from './temps.js';

export interface OutputCheckOptions {
  overwrite?: boolean;
  /** Paths read by the command (files or folders): the output may not be, contain, or sit inside any of them. */
  inputs?: readonly string[];
}

async function realOrResolved(p: string): Promise<string> {
  try {
    return await realpath(p);
  } catch {
    // not existing yet: resolve its parent if it exists
    const parent = dirname(resolve(p));
    try {
      return join(await realpath(parent), basename(p));
    } catch {
      return resolve(p);
    }
  }
}

function isInside(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent.endsWith('/') ? parent : parent + '/');
}

/** Refuse an output path equal to, inside, or containing one of the inputs. */
export async function assertNotAnInput(out: string, inputs: readonly string[]): Promise<void> {
  const o = await realOrResolved(out);
  for (const input of inputs) {
    const i = await realOrResolved(input);
    if (isInside(o, i) || isInside(i, o)) {
      throw new PlanError('OUT_INVALID', `output ${out} overlaps input ${input}; choose another output path`, {
        where: { file: out },
      });
    }
  }
}

async function existing(p: string): Promise<{ isDir: boolean; empty: boolean } | undefined> {
  try {
    const s = await stat(p);
    if (!s.isDirectory()) return { isDir: false, empty: false };
    return { isDir: true, empty: (await readdir(p)).length === 0 };
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return undefined;
    throw wrapIoError(e, p, 'checking output');
  }
}

function tempSibling(p: string, tag: string): string {
  const abs = resolve(p);
  return join(dirname(abs), `.${basename(abs)}.weightkit-${tag}-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** A failure to create an output's folders: OUT_INVALID with the file system's reason. */
function outputError(e: unknown, out: string): WeightkitError {
  if (e instanceof WeightkitError) return e;
  const reason = (e as { code?: unknown })?.code === 'ENOENT' ? 'a folder on the way cannot be created there' : e instanceof Error ? e.message : String(e);
  return new IoError('OUT_INVALID', `cannot create the output: ${reason}`, { where: { file: out }, cause: e });
}

/** fdatasync every regular file under `dir`, then the folders themselves (best effort per folder, see syncDir). */
async function syncTree(dir: string): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await syncTree(p);
    else if (e.isFile()) {
      const fh = await open(p, 'r');
      try {
        await fh.datasync();
      } finally {
        await fh.close();
      }
    }
  }
  await syncDir(dir);
}

/** A staged output folder: write into `staging`, then `commit()` moves it to `out` (or `abort()` removes it). */
export interface StagedDir {
  readonly out: string;
  readonly staging: string;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

export async function stageOutputDir(out: string, options: OutputCheckOptions = {}): Promise<StagedDir> {
  await assertNotAnInput(out, options.inputs ?? []);
  const ex = await existing(out);
  if (ex && !ex.isDir) {
    throw new PlanError('OUT_EXISTS', `output ${out} exists and is a file, not a folder`, { where: { file: out } });
  }
  if (ex && !ex.empty && !options.overwrite) {
    throw new PlanError('OUT_EXISTS', `output folder ${out} is not empty (pass --overwrite to replace it)`, {
      where: { file: out },
    });
  }
  const staging = tempSibling(out, 'tmp');
  try {
    await makeDirs(dirname(staging));
    await mkdir(staging);
    trackTemp(staging);
  } catch (e) {
    throw outputError(e, out);
  }
  let done = false;
  return {
    out,
    staging,
    async commit() {
      if (done) return;
      try {
        // every file of the folder on the device before the folder gets its final name (shards are synced by their
        // writers; config, tokenizer and card files here), and the folder's entries
        await syncTree(staging);
        const now = await existing(out);
        if (now && options.overwrite) {
          const old = tempSibling(out, 'old');
          await rename(out, old);
          await rename(staging, out);
          await rm(old, { recursive: true, force: true });
        } else {
          // without --overwrite, never replace what is there now: a folder or file that appeared while the output
          // was written makes the rename fail (an empty folder is replaced, as the checks allow one)
          await rename(staging, out);
        }
        done = true;
        untrackTemp(staging);
        await syncDir(dirname(resolve(out)));
      } catch (e) {
        const code = (e as { code?: unknown })?.code;
        if (!options.overwrite && (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOTDIR' || code === 'EISDIR')) {
          throw new PlanError('OUT_EXISTS', `output ${out} appeared while the output was being written; it was left as it is (pass --overwrite to replace it)`, {
            where: { file: out },
            cause: e,
          });
        }
        throw wrapIoError(e, out, 'moving finished output into place');
      }
    },
    async abort() {
      if (done) return;
      done = true;
      await rm(staging, { recursive: true, force: true });
      untrackTemp(staging);
    },
  };
}

/** Checks for a single-file output (the writer itself writes a temp name and renames). */
export async function checkOutputFile(out: string, options: OutputCheckOptions = {}): Promise<void> {
  await assertNotAnInput(out, options.inputs ?? []);
  const ex = await existing(out);
  if (ex?.isDir) {
    throw new PlanError('OUT_EXISTS', `output ${out} is a folder; expected a file path`, { where: { file: out } });
  }
  if (ex && !options.overwrite) {
    throw new PlanError('OUT_EXISTS', `output file ${out} exists (pass --overwrite to replace it)`, {
      where: { file: out },
    });
  }
  try {
    await makeDirs(dirname(resolve(out)));
  } catch (e) {
    throw outputError(e, out);
  }
}
