// The streaming writer: byte-exact output (including the reference bytes of Hugging Face's own serializer tests),
// any-order and concurrent writes, and every misuse reported with its own code; temp files never leak.

import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { parseSafetensorsHeader } from '../../../src/io/safetensors/header.js';
import { openSafetensors } from '../../../src/io/safetensors/reader.js';
import { compareNames, openSafetensorsWriter, planSafetensors, writeSafetensors } from '../../../src/io/safetensors/writer.js';
import { DTYPE_INFO, type DType } from '../../../src/tensor/dtype.js';
import { makeTensor } from '../../../src/tensor/tensor.js';
import { ascii, brief, concat, errorOf, listDir, tempDir, u64le } from './helpers.js';

const f32 = (...xs: number[]): Uint8Array => new Uint8Array(new Float32Array(xs).buffer);

describe('byte-exact output', () => {
  it('one F32 [2] tensor: hand-built expected file', async () => {
    const dir = await tempDir();
    const path = join(dir, 'a.safetensors');
    await writeSafetensors(path, { a: makeTensor('F32', [2], new Float32Array([1, 2])) });
    const header = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'; // 54 bytes, padded to 56
    const expected = concat(u64le(56), ascii(`${header}  `), Uint8Array.of(0, 0, 0x80, 0x3f, 0, 0, 0, 0x40));
    expect(new Uint8Array(await readFile(path))).toEqual(expected);
  });

  // The four expectations below are the byte arrays asserted by the Rust safetensors crate's own tests
  // (test_serialization, test_empty, test_serialization_forced_alignement), re-expressed as text + bytes.
  it('matches safetensors (Rust) test_serialization: attn.0 F32 [1,2,3]', async () => {
    const dir = await tempDir();
    const path = join(dir, 'x.safetensors');
    await writeSafetensors(path, [{ name: 'attn.0', tensor: makeTensor('F32', [1, 2, 3], new Float32Array([0, 1, 2, 3, 4, 5])) }]);
    const expected = concat(
      u64le(64),
      ascii('{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}'),
      f32(0, 1, 2, 3, 4, 5),
    );
    expect(new Uint8Array(await readFile(path))).toEqual(expected);
  });

  it('matches safetensors (Rust) test_empty: no tensors, with and without metadata', async () => {
    const dir = await tempDir();
    await writeSafetensors(join(dir, 'e.safetensors'), {});
    expect(new Uint8Array(await readFile(join(dir, 'e.safetensors')))).toEqual(concat(u64le(8), ascii('{}      ')));
    await writeSafetensors(join(dir, 'm.safetensors'), {}, { metadata: { framework: 'pt' } });
    expect(new Uint8Array(await readFile(join(dir, 'm.safetensors')))).toEqual(
      concat(u64le(40), ascii('{"__metadata__":{"framework":"pt"}}     ')),
    );
  });

  it('matches safetensors (Rust) test_serialization_forced_alignement: data starts 8-aligned', async () => {
    const dir = await tempDir();
    const path = join(dir, 'x.safetensors');
    await writeSafetensors(path, { attn0: makeTensor('F32', [1, 1, 2, 3], new Float32Array([0, 1, 2, 3, 4, 5])) });
    const expected = concat(
      u64le(72),
      ascii('{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       '),
      f32(0, 1, 2, 3, 4, 5),
    );
    expect(new Uint8Array(await readFile(path))).toEqual(expected);
  });

  it('lays tensors out like HF: by dtype rank, then code point order; __metadata__ first, keys sorted', () => {
    const layout = planSafetensors(
      [
        { name: 'b', dtype: 'U8', shape: [1] },
        { name: '\u{1F600}', dtype: 'U8', shape: [1] }, // astral: sorts after U+FFFD in code point order
        { name: '\uFFFD', dtype: 'U8', shape: [1] },
        { name: 'a', dtype: 'BF16', shape: [3] },
      ],
      { metadata: { z: '1', a: '2' } },
      'x',
    );
    expect(layout.tensors.map((t) => [t.name, t.begin])).toEqual([
      ['a', 0],
      ['b', 6],
      ['\uFFFD', 7],
      ['\u{1F600}', 8],
    ]);
    const text = new TextDecoder().decode(layout.headerBytes.subarray(8));
    expect(text.startsWith('{"__metadata__":{"a":"2","z":"1"},"a":{')).toBe(true);
    expect(layout.dataStart % 8).toBe(0);
    expect(text.endsWith('}') || text.endsWith(' ')).toBe(true);
    const h = parseSafetensorsHeader(concat(layout.headerBytes, new Uint8Array(layout.dataByteLength)), layout.fileByteLength, 'x');
    expect(h.entries.map((e) => e.name)).toEqual(['a', 'b', '\uFFFD', '\u{1F600}']);
    expect(h.metadata).toEqual({ a: '2', z: '1' });
  });

  it('is byte-identical to Hugging Face safetensors 0.8.0 serialize() for all 15 dtypes', async () => {
    // Header produced by the Python safetensors 0.8.0 `serialize` for these tensors (data: byte i of a tensor is
    // i + name length), recorded once from the real library.
    const specs: Array<[string, DType, number[]]> = [
      ['b.bias', 'BF16', [3]], ['a.w', 'F32', [2, 2]], ['c', 'I32', [1]], ['d', 'U8', [3]], ['e', 'F64', [1]],
      ['f', 'BOOL', [2]], ['g', 'I64', [1]], ['h', 'F16', [1]], ['i', 'F8_E4M3', [1]], ['j', 'U64', [1]],
      ['k', 'I8', [1]], ['l', 'F8_E5M2', [1]], ['m', 'I16', [1]], ['n', 'U16', [1]], ['o', 'U32', [1]],
    ];
    const hfHeader =
      '{"j":{"dtype":"U64","shape":[1],"data_offsets":[0,8]},"g":{"dtype":"I64","shape":[1],"data_offsets":[8,16]},' +
      '"e":{"dtype":"F64","shape":[1],"data_offsets":[16,24]},"a.w":{"dtype":"F32","shape":[2,2],"data_offsets":[24,40]},' +
      '"o":{"dtype":"U32","shape":[1],"data_offsets":[40,44]},"c":{"dtype":"I32","shape":[1],"data_offsets":[44,48]},' +
      '"b.bias":{"dtype":"BF16","shape":[3],"data_offsets":[48,54]},"h":{"dtype":"F16","shape":[1],"data_offsets":[54,56]},' +
      '"n":{"dtype":"U16","shape":[1],"data_offsets":[56,58]},"m":{"dtype":"I16","shape":[1],"data_offsets":[58,60]},' +
      '"i":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[60,61]},"l":{"dtype":"F8_E5M2","shape":[1],"data_offsets":[61,62]},' +
      '"k":{"dtype":"I8","shape":[1],"data_offsets":[62,63]},"d":{"dtype":"U8","shape":[3],"data_offsets":[63,66]},' +
      '"f":{"dtype":"BOOL","shape":[2],"data_offsets":[66,68]}}';
    const data = (name: string, dtype: DType, shape: number[]): Uint8Array =>
      Uint8Array.from({ length: shape.reduce((a, b) => a * b, 1) * DTYPE_INFO[dtype].bytes }, (_, i) => i + name.length);
    const dir = await tempDir();
    const path = join(dir, 'hf.safetensors');
    const w = await openSafetensorsWriter(path, specs.map(([name, dtype, shape]) => ({ name, dtype, shape })));
    for (const [name, dtype, shape] of specs) await w.write(name, data(name, dtype, shape));
    await w.close();
    const padded = hfHeader + ' '.repeat((8 - (hfHeader.length % 8)) % 8);
    const order = ['j', 'g', 'e', 'a.w', 'o', 'c', 'b.bias', 'h', 'n', 'm', 'i', 'l', 'k', 'd', 'f'];
    const expected = concat(u64le(padded.length), ascii(padded), ...order.map((n) => { const s = specs.find((x) => x[0] === n)!; return data(...s); }));
    expect(new Uint8Array(await readFile(path))).toEqual(expected);
  });

  it('compareNames is code point order', () => {
    expect(['b', '\u{1F600}', '\uFFFD', 'a', 'ab', ''].sort(compareNames)).toEqual(['', 'a', 'ab', 'b', '\uFFFD', '\u{1F600}']);
  });
});

describe('streaming writes', () => {
  it('accepts tensors in any order, concurrently, and publishes only at close', async () => {
    const dir = await tempDir();
    const path = join(dir, 'out.safetensors');
    const decls = Array.from({ length: 20 }, (_, i) => ({ name: `t${String(i).padStart(2, '0')}`, dtype: 'F32' as const, shape: [i, 3] }));
    const w = await openSafetensorsWriter(path, decls, { metadata: { k: 'v' } });
    expect(await listDir(dir)).toEqual([w.tmpPath.slice(dir.length + 1)]);
    await Promise.all(
      [...decls].reverse().map((d, j) => w.write(d.name, new Float32Array(d.shape[0]! * 3).fill(j))),
    );
    await w.close();
    await w.close(); // idempotent
    expect(await listDir(dir)).toEqual(['out.safetensors']);
    await using r = await openSafetensors(path);
    expect(r.metadata()).toEqual({ k: 'v' });
    for (const [j, d] of [...decls].reverse().entries()) {
      expect(Array.from(await r.readF32(d.name))).toEqual(new Array(d.shape[0]! * 3).fill(j));
    }
  });

  it('reports misuse with its own code and leaves nothing behind on abort', async () => {
    const dir = await tempDir();
    const path = join(dir, 'out.safetensors');
    const w = await openSafetensorsWriter(path, [
      { name: 'a', dtype: 'BF16', shape: [2] },
      { name: 'b', dtype: 'F32', shape: [1] },
    ]);
    expect(brief(await errorOf(() => w.write('nope', new Uint8Array(4))))).toEqual({ code: 'TENSOR_NOT_FOUND', file: path, tensor: 'nope' });
    expect(brief(await errorOf(() => w.write('a', new Uint8Array(3))))).toEqual({ code: 'TENSOR_SHAPE_MISMATCH', file: path, tensor: 'a' });
    expect(brief(await errorOf(() => w.write('a', new Float32Array(1))))).toEqual({ code: 'TENSOR_DTYPE_MISMATCH', file: path, tensor: 'a' });
    await w.write('a', new Uint16Array([1, 2]));
    expect(brief(await errorOf(() => w.write('a', new Uint16Array([1, 2]))))).toEqual({ code: 'OUT_WRITTEN_TWICE', file: path, tensor: 'a' });
    expect(brief(await errorOf(() => w.close()))).toEqual({ code: 'OUT_INCOMPLETE', file: path, tensor: 'b' });
    // still open after a failed close: the caller may finish or abort
    await w.abort();
    await w.abort();
    expect(await listDir(dir)).toEqual([]);
    expect((await errorOf(() => w.write('b', new Float32Array(1)))).code).toBe('OUT_INVALID');
  });

  it('a failed close can be completed by writing the rest', async () => {
    const dir = await tempDir();
    const path = join(dir, 'out.safetensors');
    const w = await openSafetensorsWriter(path, [{ name: 'a', dtype: 'U8', shape: [1] }]);
    expect((await errorOf(() => w.close())).code).toBe('OUT_INCOMPLETE');
    await w.write('a', Uint8Array.of(7));
    await w.close();
    expect((await stat(path)).size).toBe(8 + 56 + 1);
  });

  it('await using aborts an unclosed writer', async () => {
    const dir = await tempDir();
    {
      await using w = await openSafetensorsWriter(join(dir, 'x.safetensors'), [{ name: 'a', dtype: 'U8', shape: [1] }]);
      await w.write('a', Uint8Array.of(1));
    }
    expect(await listDir(dir)).toEqual([]);
  });

  it('rejects bad declarations and metadata with OUT_INVALID naming the tensor', async () => {
    const dir = await tempDir();
    const p = join(dir, 'x.safetensors');
    const cases: Array<[unknown[], Record<string, unknown> | undefined, string | undefined]> = [
      [[{ name: 'a', dtype: 'F32', shape: [1] }, { name: 'a', dtype: 'F32', shape: [1] }], undefined, 'a'],
      [[{ name: '', dtype: 'F32', shape: [1] }], undefined, undefined],
      [[{ name: '__metadata__', dtype: 'F32', shape: [1] }], undefined, '__metadata__'],
      [[{ name: 'bad\uD800', dtype: 'F32', shape: [1] }], undefined, 'bad\uD800'],
      [[{ name: 'a', dtype: 'F128', shape: [1] }], undefined, 'a'],
      [[{ name: 'a', dtype: 'F32', shape: [-1] }], undefined, 'a'],
      [[{ name: 'a', dtype: 'F32', shape: [2 ** 40, 2 ** 40] }], undefined, 'a'],
      [[], { n: 1 }, '__metadata__'],
    ];
    for (const [decls, metadata, tensor] of cases) {
      const e = await errorOf(() => openSafetensorsWriter(p, decls as never, { metadata: metadata as never }));
      expect(brief(e)).toEqual(tensor === undefined ? { code: 'OUT_INVALID', file: p } : { code: 'OUT_INVALID', file: p, tensor });
    }
    expect(await listDir(dir)).toEqual([]);
  });

  it('writes zero-size and scalar tensors, unicode names and every dtype readable back', async () => {
    const dir = await tempDir();
    const path = join(dir, 'x.safetensors');
    await writeSafetensors(path, {
      'é.weight': makeTensor('F16', [0, 5]),
      scalar: makeTensor('I64', [], new BigInt64Array([-5n])),
      flags: makeTensor('BOOL', [3], Uint8Array.of(1, 0, 1)),
      '😀': makeTensor('U32', [2], Uint32Array.of(1, 2 ** 32 - 1)),
    });
    const bytes = new Uint8Array(await readFile(path));
    const h = parseSafetensorsHeader(bytes, bytes.length, path);
    // larger elements first (HF layout), so every tensor is element-aligned
    expect(h.entries.map((e) => [e.name, e.begin, e.end])).toEqual([
      ['scalar', 0, 8],
      ['😀', 8, 16],
      ['é.weight', 16, 16],
      ['flags', 16, 19],
    ]);
    await using r = await openSafetensors(path);
    expect((await r.read('scalar')).data).toEqual(new BigInt64Array([-5n]));
    expect((await r.read('é.weight')).shape).toEqual([0, 5]);
    expect(Array.from((await r.read('😀')).data as Uint32Array)).toEqual([1, 2 ** 32 - 1]);
  });

  it('a stale temp file with the next temp name is skipped, not overwritten', async () => {
    const dir = await tempDir();
    const path = join(dir, 'x.safetensors');
    const probe = await openSafetensorsWriter(path, []);
    await probe.abort();
    const m = /\.(\d+)-(\d+)\.tmp$/.exec(probe.tmpPath)!;
    const stale = `${path}.${m[1]}-${Number(m[2]) + 1}.tmp`;
    await writeFile(stale, 'left by a crashed run');
    await writeSafetensors(path, { a: makeTensor('U8', [1], Uint8Array.of(9)) });
    expect(await readFile(stale, 'utf8')).toBe('left by a crashed run');
    expect(await listDir(dir)).toEqual(['x.safetensors', stale.slice(dir.length + 1)]);
  });

  it('a missing output folder is OUT_INVALID, not a crash', async () => {
    const dir = await tempDir();
    const p = join(dir, 'no', 'x.safetensors');
    expect(brief(await errorOf(() => openSafetensorsWriter(p, [])))).toEqual({ code: 'OUT_INVALID', file: p });
  });
});

describe('writeRange', () => {
  it('writes parts in any order; overlap, out-of-range and whole-after-part are refused', async () => {
    const dir = await tempDir();
    const path = join(dir, 'r.safetensors');
    const w = await openSafetensorsWriter(path, [
      { name: 'm', dtype: 'U16', shape: [4, 2] },
      { name: 'z', dtype: 'F32', shape: [0, 3] },
    ]);
    await w.writeRange('m', 8, Uint16Array.of(5, 6, 7, 8));
    await w.writeRange('m', 0, new Uint8Array(0)); // empty ranges are harmless no-ops
    expect(brief(await errorOf(() => w.writeRange('m', 6, Uint8Array.of(1, 2, 3))))).toEqual({ code: 'OUT_WRITTEN_TWICE', file: path, tensor: 'm' });
    expect(brief(await errorOf(() => w.writeRange('m', 14, Uint8Array.of(1, 2, 3))))).toEqual({ code: 'TENSOR_SHAPE_MISMATCH', file: path, tensor: 'm' });
    expect((await errorOf(() => w.writeRange('m', -2, Uint8Array.of(1, 2)))).code).toBe('TENSOR_SHAPE_MISMATCH');
    expect((await errorOf(() => w.write('m', new Uint16Array(8)))).code).toBe('OUT_WRITTEN_TWICE');
    expect((await errorOf(() => w.close())).where.tensor).toBe('z'); // file order: F32 before U16
    await w.writeRange('z', 0, new Uint8Array(0));
    expect((await errorOf(() => w.close())).where.tensor).toBe('m');
    await Promise.all([w.writeRange('m', 0, Uint16Array.of(1, 2)), w.writeRange('m', 4, Uint16Array.of(3, 4))]);
    await w.close();
    await using r = await openSafetensors(path);
    expect(Array.from((await r.read('m')).data as Uint16Array)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });
});
