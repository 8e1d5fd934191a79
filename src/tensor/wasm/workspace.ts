// Workspaces: f32 buffers that live inside an instance of the GTA merge-kernel module (merge-kernels.wat), so its
// kernels read them in place instead of copying each piece into the module's fixed regions. Each Workspace is its
// own instance over its own memory of a fixed size (one per executor Scratch, i.e. per lane of a thread; a Scratch
// that needs more room makes a larger one and drops the old). Memories are never grown: growing detaches the old
// buffer, and one detach makes V8 re-check every typed array access of the isolate (JS loops ~25% slower).
// Pure: no node: imports (uses globalThis.WebAssembly).

import { decodeBase64 } from './simd.js';
import { MERGE_KERNELS_WASM_BASE64 } from './merge-kernels.generated.js';

const PAGE = 65536;
/** The module's fixed regions (51 pages, see merge-kernels.wat); a workspace's own bytes start here. */
export const WORKSPACE_START = 51 * PAGE;
/** Largest workspace memory made (beyond it the executor keeps ordinary arrays). */
export const WORKSPACE_MAX_BYTES = 49152 * PAGE;
/** widenBf16's staging area: rank_into's scratch region, which a workspace instance never ranks in */
const STAGE_PTR = 786432;
const STAGE_ELEMENTS = 65536;

interface Memory {
  readonly buffer: ArrayBuffer;
}

// The slice of the WebAssembly global used here (lib has no DOM typings).
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: unknown };
  Memory: new (descriptor: { initial: number; maximum?: number }) => Memory;
}

let compiled: { api: WasmApi; module: object } | undefined | null = null;

function mergeModule(): { api: WasmApi; module: object } | undefined {
  if (compiled === null) {
    compiled = undefined;
    try {
      const api = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
      const bytes = decodeBase64(MERGE_KERNELS_WASM_BASE64);
      if (api !== undefined && api.validate(bytes)) compiled = { api, module: new api.Module(bytes) };
    } catch {
      compiled = undefined; // e.g. a runtime that forbids wasm compilation
    }
  }
  return compiled;
}

/**
 * A fresh instance of the merge-kernel module over a new memory of at least `byteLength` bytes (its exports, with
 * `memory`); undefined without WebAssembly SIMD or when the memory cannot be made.
 */
export function instantiateMergeKernels(byteLength = WORKSPACE_START): unknown {
  const m = mergeModule();
  if (m === undefined || byteLength > WORKSPACE_MAX_BYTES) return undefined;
  try {
    const pages = Math.max(WORKSPACE_START / PAGE, Math.ceil(byteLength / PAGE));
    const memory = new m.api.Memory({ initial: pages, maximum: pages });
    return new m.api.Instance(m.module, { env: { memory } }).exports;
  } catch {
    return undefined; // e.g. out of memory or address space
  }
}

/**
 * What a merge piece (plan/execute.ts) may carry besides its f32 views: its inputs' stored BF16 bits, base first,
 * when every input is BF16 kept in one workspace. Kernels that widen BF16 themselves read these in place; the f32
 * views (`base`, `models`) are then widened only if something reads them.
 */
export interface Bf16Inputs {
  readonly bf16?: readonly Uint16Array[];
}

const byBuffer = new WeakMap<ArrayBuffer, Workspace>();

/** One merge-kernel instance whose memory past WORKSPACE_START holds its owner's buffers. */
export class Workspace {
  readonly buffer: ArrayBuffer;

  private constructor(readonly exports: unknown) {
    this.buffer = (exports as { memory: Memory }).memory.buffer;
    byBuffer.set(this.buffer, this);
  }

  /** A workspace of at least `byteLength` bytes (WORKSPACE_START included), or undefined if none can be made. */
  static create(byteLength: number): Workspace | undefined {
    const ex = instantiateMergeKernels(byteLength);
    return ex === undefined ? undefined : new Workspace(ex);
  }

  get byteLength(): number {
    return this.buffer.byteLength;
  }

  /**
   * dst[0..n) := bf16 bits src[0..n) widened to f32, written in place when dst lives in this memory (the source is
   * staged through the module in 64K-element pieces, or read in place when it lives in this memory too, not
   * overlapping dst). Returns
   * false, doing nothing, when dst lives elsewhere.
   */
  widenBf16(src: Uint16Array, dst: Float32Array, n: number): boolean {
    const buf = this.buffer;
    if (dst.buffer !== buf || dst.length < n) return false;
    const widen = (this.exports as { widen_bf16: (src: number, dst: number, n: number) => void }).widen_bf16;
    if (src.buffer === buf && src.length >= n) {
      widen(src.byteOffset, dst.byteOffset, n);
      return true;
    }
    const stage = new Uint16Array(buf, STAGE_PTR, STAGE_ELEMENTS);
    for (let off = 0; off < n; off += STAGE_ELEMENTS) {
      const len = Math.min(STAGE_ELEMENTS, n - off);
      stage.set(len === src.length ? src : src.subarray(off, off + len));
      widen(STAGE_PTR, dst.byteOffset + off * 4, len);
    }
    return true;
  }

  /**
   * The f32 values of `values` (a view of this memory) rounded to BF16 bits in place (as convert.ts f32ToBf16):
   * returns the n u16 at the same offset, over the first half of the values, which are lost. Undefined, doing
   * nothing, when `values` lives elsewhere.
   */
  narrowBf16InPlace(values: Float32Array): Uint16Array | undefined {
    if (values.buffer !== this.buffer) return undefined;
    const narrow = (this.exports as { narrow_bf16: (src: number, dst: number, n: number) => void }).narrow_bf16;
    narrow(values.byteOffset, values.byteOffset, values.length);
    return new Uint16Array(this.buffer, values.byteOffset, values.length);
  }

  /**
   * narrowBf16InPlace's rounding of `values` (a view of this memory) into the BF16 bits at dstByteOffset, which
   * must not lie after values' own offset (the pass runs forward; dst == src is the in-place case). Returns the bits.
   */
  narrowBf16To(values: Float32Array, dstByteOffset: number): Uint16Array {
    const narrow = (this.exports as { narrow_bf16: (src: number, dst: number, n: number) => void }).narrow_bf16;
    if (values.buffer !== this.buffer || dstByteOffset > values.byteOffset) throw new RangeError('narrowBf16To: values must live in this memory, after the destination');
    narrow(values.byteOffset, dstByteOffset, values.length);
    return new Uint16Array(this.buffer, dstByteOffset, values.length);
  }

  /** A view of n f32 at `byteOffset` (a multiple of 4, inside the memory). */
  f32(byteOffset: number, n: number): Float32Array {
    return new Float32Array(this.buffer, byteOffset, n);
  }
}

/** The workspace whose memory is `buffer`, if any. */
export function workspaceOf(buffer: ArrayBufferLike): Workspace | undefined {
  return byBuffer.get(buffer as ArrayBuffer);
}
