// Test helpers for the safetensors suites: temp folders and small byte utilities. No production code.

import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';

import { WeightkitError } from '../../../src/errors.js';

const dirs: string[] = [];

/** A fresh temp folder, removed after the test. */
export async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'weightkit-st-'));
  dirs.push(d);
  return d;
}

afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

export async function listDir(d: string): Promise<string[]> {
  return (await readdir(d)).sort();
}

export function ascii(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function u64le(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
  return b;
}

/** Run `fn` and return the WeightkitError it throws (fails the test on success or another error type). */
export async function errorOf(fn: () => unknown): Promise<WeightkitError> {
  let err: unknown;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  if (!(err instanceof WeightkitError)) throw new Error(`expected a WeightkitError, got ${String(err)}`);
  return err;
}

/** Just the parts of an error tests assert on. */
export function brief(e: WeightkitError): { code: string; file?: string; tensor?: string } {
  const out: { code: string; file?: string; tensor?: string } = { code: e.code };
  if (e.where.file !== undefined) out.file = e.where.file;
  if (e.where.tensor !== undefined) out.tensor = e.where.tensor;
  return out;
}
