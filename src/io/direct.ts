// Large output writes that bypass the page cache (O_DIRECT) where the file system allows it: the 4 KiB-aligned middle
// of each written range goes straight to the device, from where it lies when that is a page boundary of a
// WebAssembly memory (the executor places its output buffers so: no copy, one write per range; measured on the 1.1B
// ties merge: 2.25 -> 1.75 s, the bounce buffers had serialised the writes), else through an aligned bounce buffer;
// the unaligned edges through the ordinary (buffered) handle, or to a BlockAssembler that writes the blocks they share
// directly once complete (the safetensors writer's way). On this VM the page cache is the expensive part of
// writing: a buffered 2.2 GB write into fresh page-cache pages took 5.1 s (dd), the same with O_DIRECT 1.1 s, almost
// no CPU, overlapping the merge's work.
// Off (buffered only) with WEIGHTKIT_DIRECT_IO=0, off Linux, and where opening with O_DIRECT fails (tmpfs).

import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { workspaceOf } from '../tensor/wasm/workspace.js';
import { writeExactlyAt } from './file.js';

/** Alignment of direct writes (file offset, length, buffer address): the usual page and block size. */
const ALIGN = 4096;
/** Ranges whose aligned middle is smaller than this are written buffered whole. */
const DIRECT_MIN_BYTES = 1 << 20;
/** Size of each bounce buffer (WebAssembly memories: their data starts on a page boundary). */
const BOUNCE_BYTES = 8 << 20;
const BOUNCE_BUFFERS = 2;
/** Pages in writeBlock's arena (the blocks in flight at once). */
const BLOCK_PAGES = 16;

function alignedBuffer(bytes: number): Uint8Array {
  const pages = Math.ceil(bytes / 65536);
  const memory = new (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number; maximum: number }) => { buffer: ArrayBuffer } } }).WebAssembly.Memory({
    initial: pages,
    maximum: pages,
  });
  return new Uint8Array(memory.buffer, 0, bytes);
}

/** Whether direct writes are wanted in this process (the file system may still refuse them). */
export function directIoWanted(): boolean {
  return process.platform === 'linux' && process.env['WEIGHTKIT_DIRECT_IO'] !== '0' && typeof constants.O_DIRECT === 'number';
}

/** errno codes with which a file system that accepted O_DIRECT at open() may still refuse direct writes */
const REFUSED = new Set(['EINVAL', 'EOPNOTSUPP', 'ENOTSUP']);

function refused(e: unknown): boolean {
  const code = (e as { code?: unknown; cause?: { code?: unknown } })?.cause?.code ?? (e as { code?: unknown })?.code;
  return typeof code === 'string' && REFUSED.has(code);
}

/** Page-aligned buffers, made on demand up to `count`; take() waits while all are out. */
class AlignedPool {
  private readonly free: Uint8Array[] = [];
  private readonly waiting: ((b: Uint8Array) => void)[] = [];
  private made = 0;

  constructor(
    private readonly count: number,
    private readonly make: (index: number) => Uint8Array,
  ) {}

  take(): Promise<Uint8Array> {
    const b = this.free.pop();
    if (b !== undefined) return Promise.resolve(b);
    if (this.made < this.count) return Promise.resolve(this.make(this.made++));
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  give(b: Uint8Array): void {
    const w = this.waiting.shift();
    if (w !== undefined) w(b);
    else this.free.push(b);
  }
}

export class DirectWriter {
  /** the bounce buffers of writes from memory that is not page-aligned */
  private readonly bounce = new AlignedPool(BOUNCE_BUFFERS, () => alignedBuffer(BOUNCE_BYTES));
  /** 4 KiB pages for writeBlock, carved from one memory */
  private readonly pages: AlignedPool;
  /** set when a direct write was refused: everything goes through the buffered handle from then on */
  private refused = false;

  private constructor(
    private readonly fh: FileHandle,
    readonly file: string,
  ) {
    let arena: Uint8Array | undefined;
    this.pages = new AlignedPool(BLOCK_PAGES, (i) => (arena ??= alignedBuffer(BLOCK_PAGES * ALIGN)).subarray(i * ALIGN, (i + 1) * ALIGN));
  }

  /** A direct handle on `file` (which must exist), or undefined where direct writes are off or refused. */
  static async open(file: string): Promise<DirectWriter | undefined> {
    if (!directIoWanted()) return undefined;
    try {
      return new DirectWriter(await open(file, constants.O_WRONLY | constants.O_DIRECT), file);
    } catch {
      return undefined; // e.g. EINVAL on tmpfs: buffered writes only
    }
  }

  private take(): Promise<Uint8Array> {
    return this.bounce.take();
  }

  private give(b: Uint8Array): void {
    this.bounce.give(b);
  }

  /**
   * Write src at `position`: the aligned middle directly, the unaligned head and tail through `buffered` (a handle on
   * the same file), or, given `edge`, handed to it instead (copied: a BlockAssembler puts the blocks that ranges share
   * together and writes them directly too). Disjoint ranges may be written concurrently: a 4 KiB block is either inside
   * one range's middle (direct) or holds an edge, never both. Without `edge`, a range whose middle is under 1 MiB goes
   * through `buffered` whole.
   */
  async write(buffered: FileHandle, src: Uint8Array, position: number, edge?: (position: number, bytes: Uint8Array) => void): Promise<void> {
    const end = position + src.byteLength;
    const a = Math.ceil(position / ALIGN) * ALIGN;
    const b = Math.floor(end / ALIGN) * ALIGN;
    if (this.refused || (edge === undefined && b - a < DIRECT_MIN_BYTES)) {
      await writeExactlyAt(buffered, src, position, this.file);
      return;
    }
    if (b <= a) {
      edge!(position, src.slice()); // no whole block: all of it shared with neighbours
      return;
    }
    const edges: Promise<void>[] = [];
    if (edge !== undefined) {
      if (a > position) edge(position, src.slice(0, a - position));
      if (end > b) edge(b, src.slice(b - position));
    } else {
      if (a > position) edges.push(writeExactlyAt(buffered, src.subarray(0, a - position), position, this.file));
      if (end > b) edges.push(writeExactlyAt(buffered, src.subarray(b - position), b, this.file));
    }
    try {
      if (workspaceOf(src.buffer) !== undefined && (src.byteOffset + a - position) % ALIGN === 0) {
        // the middle already sits on a page boundary of a WebAssembly memory (whose data starts on one): written from
        // where it is, no copy (the executor places its output buffers so, see Scratch.u16At)
        const middle = src.subarray(a - position, b - position);
        await this.directOr(buffered, middle, middle, a);
      } else {
        const bounce = await this.take();
        try {
          for (let at = a; at < b; at += BOUNCE_BYTES) {
            const n = Math.min(BOUNCE_BYTES, b - at);
            const part = src.subarray(at - position, at - position + n);
            if (this.refused) {
              await writeExactlyAt(buffered, part, at, this.file);
              continue;
            }
            bounce.set(part);
            await this.directOr(buffered, bounce.subarray(0, n), part, at);
          }
        } finally {
          this.give(bounce);
        }
      }
    } finally {
      await Promise.allSettled(edges);
    }
    await Promise.all(edges);
  }

  /**
   * One whole 4 KiB block at an aligned position (a BlockAssembler's), written directly from a page-aligned copy (a
   * small arena of such pages, not the 8 MiB bounce buffers).
   */
  async writeBlock(buffered: FileHandle, src: Uint8Array, at: number): Promise<void> {
    if (this.refused) {
      await writeExactlyAt(buffered, src, at, this.file);
      return;
    }
    const page = await this.pages.take();
    try {
      page.set(src);
      await this.directOr(buffered, page, src, at);
    } finally {
      this.pages.give(page);
    }
  }

  /**
   * `aligned` (page-aligned memory) written directly at `at`; where the file system refuses direct writes after all
   * (some FUSE and network ones take O_DIRECT at open()), `same` (the same bytes) goes through `buffered`, and every
   * later write too. Other errors (a full disk) are the caller's.
   */
  private async directOr(buffered: FileHandle, aligned: Uint8Array, same: Uint8Array, at: number): Promise<void> {
    try {
      await writeExactlyAt(this.fh, aligned, at, this.file);
    } catch (e) {
      if (!refused(e)) throw e;
      this.refused = true;
      await writeExactlyAt(buffered, same, at, this.file);
    }
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/**
 * The 4 KiB blocks that several writes share (a range's unaligned head or tail: tensors and ranges rarely start on a
 * block boundary), put together from their parts and written directly once complete, so that no part of the output goes
 * through the page cache. Its buffered writes used to leave a 4 KiB page at every tensor boundary cached, and reading
 * the file afterwards then got small page-cache folios around each (readahead fills the gaps around cached pages):
 * 68% of a 1.1B family written so mapped as 2 MiB folios against 98% read afresh, and a merge of it took 1.29-1.50 s
 * against 1.19-1.36 s (sys 0.50-0.88 against 0.34-0.64 s). The file's last block, when partial, is written through the
 * buffered handle; so is anything left incomplete at flush (a part whose writer fell back to buffered writes).
 */
export class BlockAssembler {
  private readonly blocks = new Map<number, { bytes: Uint8Array; runs: [number, number][]; have: number }>();
  private readonly pending = new Set<Promise<void>>();
  private failure: unknown;

  constructor(
    private readonly fileByteLength: number,
    /** a complete block of 4096 bytes at an aligned position (written directly) */
    private readonly writeBlock: (bytes: Uint8Array, position: number) => Promise<void>,
    /** bytes at a position through the page cache */
    private readonly writeBuffered: (bytes: Uint8Array, position: number) => Promise<void>,
  ) {}

  /** Parts of blocks: bytes at position (not overlapping anything added before). */
  add(position: number, bytes: Uint8Array): void {
    let at = position;
    let from = 0;
    while (from < bytes.byteLength) {
      const index = Math.floor(at / ALIGN);
      const start = index * ALIGN;
      const n = Math.min(bytes.byteLength - from, start + ALIGN - at);
      let block = this.blocks.get(index);
      if (block === undefined) {
        block = { bytes: new Uint8Array(ALIGN), runs: [], have: 0 };
        this.blocks.set(index, block);
      }
      block.bytes.set(bytes.subarray(from, from + n), at - start);
      block.runs.push([at - start, n]);
      block.have += n;
      const size = Math.min(ALIGN, this.fileByteLength - start);
      if (block.have === size) {
        this.blocks.delete(index);
        this.track(size === ALIGN ? this.writeBlock(block.bytes, start) : this.writeBuffered(block.bytes.subarray(0, size), start));
      }
      at += n;
      from += n;
    }
  }

  private track(p: Promise<void>): void {
    const t = p.catch((e: unknown) => {
      this.failure ??= e;
    });
    this.pending.add(t);
    void t.finally(() => this.pending.delete(t));
  }

  /** Wait for the block writes; write what is left of incomplete blocks through the page cache. Throws a write's error. */
  async flush(): Promise<void> {
    for (const [index, block] of this.blocks) {
      for (const [off, n] of block.runs) this.track(this.writeBuffered(block.bytes.subarray(off, off + n), index * ALIGN + off));
    }
    this.blocks.clear();
    while (this.pending.size > 0) await Promise.all([...this.pending]);
    if (this.failure !== undefined) throw this.failure;
  }
}
