// Small file helpers shared by the checkpoint readers and writers: exact positional reads and writes (looping on
// short transfers, bounded per call), and temp-name-then-rename publishing. Every failure is a typed error naming
// the file; nothing here knows a checkpoint format. Imports only node:fs/promises, node:path and ../errors.js.

import type { FileHandle } from 'node:fs/promises';
import { constants } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

import { IoError, wrapIoError } from '../errors.js';
import { trackTemp, untrackTemp } from './temps.js';

/** Chunk size for large reads and writes: 16 MiB measured fastest here (platform-measurements 6.3). */
export const IO_CHUNK_BYTES = 16 * 1024 * 1024;

/** Largest transfer handed to one fs call (Node refuses more than 2 GiB - 1 per call). */
const MAX_CALL_BYTES = 1024 * 1024 * 1024;

/**
 * Fill `dst` with the file's bytes starting at `position`, looping on short reads. A read that hits end of file
 * before `dst` is full (the file shrank after it was validated) throws IO_ERROR naming the byte offset; it never
 * returns partial data and never spins.
 */
export async function readExactlyAt(fh: FileHandle, dst: Uint8Array, position: number, file: string): Promise<void> {
  let done = 0;
  const total = dst.byteLength;
  while (done < total) {
    const want = Math.min(total - done, MAX_CALL_BYTES);
    let bytesRead: number;
    try {
      ({ bytesRead } = await fh.read(dst, done, want, position + done));
    } catch (e) {
      throw wrapIoError(e, file, `reading ${want} bytes at byte ${position + done}`);
    }
    if (bytesRead === 0) {
      throw new IoError(
        'IO_ERROR',
        `file ended at byte ${position + done}, expected ${total - done} more bytes (was it truncated after it was opened?)`,
        { where: { file, byteOffset: position + done } },
      );
    }
    done += bytesRead;
  }
}

/** Write all of `src` at `position`, looping on short writes. */
export async function writeExactlyAt(fh: FileHandle, src: Uint8Array, position: number, file: string): Promise<void> {
  let done = 0;
  const total = src.byteLength;
  while (done < total) {
    const want = Math.min(total - done, MAX_CALL_BYTES);
    let bytesWritten: number;
    try {
      ({ bytesWritten } = await fh.write(src, done, want, position + done));
    } catch (e) {
      throw wrapIoError(e, file, `writing ${want} bytes at byte ${position + done}`);
    }
    if (bytesWritten === 0) {
      throw new IoError('IO_ERROR', `write made no progress at byte ${position + done}`, {
        where: { file, byteOffset: position + done },
      });
    }
    done += bytesWritten;
  }
}

let tmpCounter = 0;

/**
 * A temp name in the same folder as `finalPath` (so the final rename stays on one file system), unique within
 * this process and across processes (pid). Deterministic: no randomness.
 */
export function tmpPathFor(finalPath: string): string {
  tmpCounter += 1;
  return `${finalPath}.${process.pid}-${tmpCounter}.tmp`;
}

/**
 * Create a new temp file next to `finalPath` (exclusive create; on a name clash, e.g. a stale temp file left by an
 * earlier process with the same pid, the next name is tried). A missing folder is OUT_INVALID naming `finalPath`.
 */
export async function createTempFile(finalPath: string): Promise<{ fh: FileHandle; tmpPath: string }> {
  for (let attempt = 0; ; attempt++) {
    const tmpPath = tmpPathFor(finalPath);
    try {
      const fh = await fsp.open(tmpPath, 'wx');
      trackTemp(tmpPath);
      return { fh, tmpPath };
    } catch (e) {
      const code = (e as { code?: unknown })?.code;
      if (code === 'EEXIST' && attempt < 100) continue;
      if (code === 'ENOENT') {
        throw new IoError('OUT_INVALID', 'cannot create the output: its folder does not exist', { where: { file: finalPath }, cause: e });
      }
      throw wrapIoError(e, finalPath, 'creating a temporary output file');
    }
  }
}

/** Remove a file if it exists; other failures are reported. */
export async function removeIfExists(file: string): Promise<void> {
  try {
    await fsp.unlink(file);
  } catch (e) {
    if ((e as { code?: unknown })?.code === 'ENOENT') {
      untrackTemp(file);
      return;
    }
    throw wrapIoError(e, file, 'removing a temporary file');
  }
  untrackTemp(file);
}

/**
 * Rename a finished temp file to its final name. `replace` (default): an existing file is replaced (the caller asked
 * for it). Otherwise the final name must still be free: hard-linked into place, which fails if a file appeared there
 * while the output was written (OUT_EXISTS; that file is left as it is and the temp file stays for the caller to
 * remove), then the temp name unlinked; where hard links are not supported, checked and renamed.
 */
export async function publish(tmpPath: string, finalPath: string, replace = true): Promise<void> {
  const appeared = (e?: unknown): IoError =>
    new IoError('OUT_EXISTS', `${finalPath} appeared while the output was being written; it was left as it is (pass --overwrite to replace it)`, {
      where: { file: finalPath },
      ...(e !== undefined ? { cause: e } : {}),
    });
  try {
    if (replace) await fsp.rename(tmpPath, finalPath);
    else {
      let linked = true;
      try {
        await fsp.link(tmpPath, finalPath);
      } catch (e) {
        const code = (e as { code?: unknown })?.code;
        if (code === 'EEXIST') throw appeared(e);
        if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EXDEV') throw e;
        if ((await statOrUndefined(finalPath)) !== undefined) throw appeared();
        await fsp.rename(tmpPath, finalPath);
        linked = false;
      }
      if (linked) await fsp.unlink(tmpPath);
    }
    untrackTemp(tmpPath);
    await syncDir(path.dirname(finalPath));
  } catch (e) {
    if (e instanceof IoError) throw e;
    throw wrapIoError(e, finalPath, `renaming ${path.basename(tmpPath)} to its final name`);
  }
}

/**
 * mkdir -p without Node's recursive mkdir, which spins forever on some paths (under /proc: Node 20 loops on the
 * ENOENT it gets there): each missing folder from the first existing ancestor down, one mkdir each. Errors are the
 * file system's (ENOTDIR under a file, EACCES, ENOENT where nothing can be created).
 */
export async function makeDirs(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let p = path.resolve(dir); ; ) {
    const st = await statOrUndefined(p);
    if (st !== undefined) break;
    missing.push(p);
    const parent = path.dirname(p);
    if (parent === p) break;
    p = parent;
  }
  for (const d of missing.reverse()) {
    try {
      await fsp.mkdir(d);
    } catch (e) {
      if ((e as { code?: unknown })?.code !== 'EEXIST') throw e;
    }
  }
}

/**
 * Make a folder's entries durable (after renaming a finished output into it): fsync on the folder. Best effort:
 * file systems that cannot sync a folder are left as they are.
 */
export async function syncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await fsp.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    await fh.sync();
  } catch {
    // EINVAL / EISDIR / EACCES on some file systems: the rename itself stands
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

/** Open a file for reading, mapping ENOENT to CKPT_NOT_FOUND and other failures to IO_ERROR. */
export async function openForRead(file: string): Promise<FileHandle> {
  try {
    // O_NONBLOCK: opening a FIFO for reading would wait for a writer (a regular file ignores the flag); what is not a
    // regular file is refused once open
    const fh = await fsp.open(file, constants.O_RDONLY | constants.O_NONBLOCK);
    let regular = false;
    try {
      regular = (await fh.stat()).isFile();
    } finally {
      if (!regular) await fh.close().catch(() => undefined);
    }
    if (!regular) throw new IoError('CKPT_UNKNOWN_FORMAT', 'expected a regular file, found a folder or special file (FIFO, device, socket)', { where: { file } });
    return fh;
  } catch (e) {
    if (e instanceof IoError) throw e;
    throw wrapIoError(e, file, 'opening for reading');
  }
}

/** fs.stat that reports typed errors; `undefined` when the path does not exist. */
export async function statOrUndefined(p: string): Promise<import('node:fs').Stats | undefined> {
  try {
    return await fsp.stat(p);
  } catch (e) {
    const code = (e as { code?: unknown })?.code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw wrapIoError(e, p, 'checking the path');
  }
}
