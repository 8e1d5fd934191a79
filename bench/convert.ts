// Conversion throughput: bf16/f16 <-> f32 through the wasm SIMD kernels and the JS loops, plus f8, in G elem/s.
// Reused buffers of seeded weight-like data (no Math.random); median of 5 timed runs after two warm-ups.
// Reference lines are the limits measured on this machine (shared/reference/platform-measurements.md, 6.2).

import { loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import {
  bf16ToF32,
  bf16ToF32Js,
  f16ToF32,
  f16ToF32Js,
  f32ToBf16,
  f32ToBf16Js,
  f32ToF16,
  f32ToF16Js,
  f32ToF8e4m3,
  f8e4m3ToF32,
} from '../src/tensor/convert.js';
import { simdKernels } from '../src/tensor/wasm/simd.js';
import type { BenchResult } from './types.js';

const RUNS = 5;

/** Measured limits (G elem/s) from platform-measurements.md 6.2, printed as reference lines. */
export const CONVERT_REFERENCE: readonly BenchResult[] = [
  { name: 'ref bf16->f32 JS closure loop', value: 1.35, unit: 'Gelem/s', note: 'platform-measurements 6.2' },
  { name: 'ref bf16->f32 wasm SIMD', value: 4.03, unit: 'Gelem/s', note: 'platform-measurements 6.2' },
  { name: 'ref f32->bf16 RNE JS', value: 0.59, unit: 'Gelem/s', note: 'platform-measurements 6.2' },
  { name: 'ref f16->f32 64K table (closure)', value: 1.02, unit: 'Gelem/s', note: 'platform-measurements 6.2' },
  { name: 'ref f32->f16 base/shift (truncating)', value: 0.87, unit: 'Gelem/s', note: 'platform-measurements 6.2' },
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Seeded weight-like f32 data: roughly normal(0, 0.02) from a sum of four xorshift32 uniforms. */
function fillWeights(out: Float32Array, seed: number): void {
  let x = seed >>> 0 || 1;
  for (let i = 0; i < out.length; i++) {
    let s = 0;
    for (let k = 0; k < 4; k++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      s += (x >>> 0) / 4294967296;
    }
    out[i] = (s - 2) * 0.0346; // var of sum of 4 U(0,1) = 1/3; 0.02 / sqrt(1/3)
  }
}

function rate(elements: number, fn: () => void): number {
  fn(); // warm-up (twice): JIT and wasm tier-up, tables, wasm instantiation, page faults
  fn();
  const ms: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now();
    fn();
    ms.push(performance.now() - t0);
  }
  return elements / (median(ms) / 1000) / 1e9;
}

export async function benchConvert(opts: { elements: number }): Promise<BenchResult[]> {
  const n = opts.elements;
  const f32 = new Float32Array(n);
  fillWeights(f32, 0x5eed);
  const f32out = new Float32Array(n);
  const bf16 = f32ToBf16Js(f32);
  const f16 = f32ToF16Js(f32);
  const u16out = new Uint16Array(n);
  const f8 = f32ToF8e4m3(f32);
  const u8out = new Uint8Array(n);
  const wasm = simdKernels() !== undefined;
  const wasmNote = wasm ? '' : 'wasm SIMD unavailable: JS fallback';
  const r = (name: string, fn: () => void, note?: string): BenchResult => {
    const res: BenchResult = { name, value: rate(n, fn), unit: 'Gelem/s' };
    if (note) res.note = note;
    return res;
  };
  const results: BenchResult[] = [
    r('bf16->f32 wasm', () => bf16ToF32(bf16, f32out), wasmNote || 'ref 4.03 wasm / 1.35 JS'),
    r('bf16->f32 JS', () => bf16ToF32Js(bf16, f32out), 'ref 1.35 closure loop'),
    r('f32->bf16 wasm (RNE)', () => f32ToBf16(f32, u16out), wasmNote || 'ref 0.59 JS'),
    r('f32->bf16 JS (RNE)', () => f32ToBf16Js(f32, u16out), 'ref 0.59'),
    r('f16->f32 wasm', () => f16ToF32(f16, f32out), wasmNote || 'ref 1.02 table'),
    r('f16->f32 JS table', () => f16ToF32Js(f16, f32out), 'ref 1.02 closure table'),
    r('f32->f16 wasm (RNE)', () => f32ToF16(f32, u16out), wasmNote || 'ref 0.87 truncating JS'),
    r('f32->f16 JS (RNE)', () => f32ToF16Js(f32, u16out), 'ref 0.87 truncating'),
    r('f8_e4m3->f32 JS', () => f8e4m3ToF32(f8, f32out)),
    r('f32->f8_e4m3 JS (RNE, saturating)', () => f32ToF8e4m3(f32, u8out)),
  ];
  return results;
}

function printTable(rows: readonly BenchResult[]): void {
  for (const row of rows) {
    const v = row.value.toFixed(2).padStart(6);
    console.log(`${row.name.padEnd(40)} ${v} ${row.unit.padEnd(8)} ${row.note ?? ''}`.trimEnd());
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const elements = Number(process.env['BENCH_ELEMENTS'] ?? 64 * 2 ** 20);
  const rows = await benchConvert({ elements });
  const load = loadavg()[0]!.toFixed(2);
  console.log(`conversion throughput, ${elements} elements, median of ${RUNS} (1-min load average ${load})`);
  printTable(rows);
  console.log('-- measured limits on this machine (platform-measurements.md 6.2)');
  printTable(CONVERT_REFERENCE);
}
