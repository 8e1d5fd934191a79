import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { WeightkitError } from '../../../src/errors.js';
import { openOnnx } from '../../../src/io/onnx/reader.js';
import { TensorProto_DataLocation } from 'onnx-buf';
import {
  MLP_NAMES,
  MLP_SHAPES,
  ONNX_CODE,
  buildInitializersOnly,
  encodeAs,
  mlpWeights,
  writeMlp,
  type WeightDType,
} from './build-model.js';
import { expectOrtMatches, roundTo, roundWeights } from './ort-check.js';

const dir = mkdtempSync(path.join(tmpdir(), 'wk-onnx-reader-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function code(p: Promise<unknown>): Promise<WeightkitError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(WeightkitError);
    return e as WeightkitError;
  }
  throw new Error('expected a WeightkitError');
}

const DTYPES: WeightDType[] = ['F32', 'F16', 'BF16'];
const STORAGES = ['raw', 'typed', 'external'] as const;

describe('openOnnx: the MLP in every dtype and storage', () => {
  for (const dtype of DTYPES) {
    for (const storage of STORAGES) {
      it(`${dtype} ${storage}`, async () => {
        const w = mlpWeights(7);
        const ext = `mlp-${dtype}-${storage}.bin`;
        const file = writeMlp(dir, `mlp-${dtype}-${storage}.onnx`, { weights: w, dtype, storage, externalName: ext });
        await using r = await openOnnx(file);
        expect(r.format).toBe('onnx');
        expect(r.path).toBe(file);
        expect(r.tensors().map((t) => t.name)).toEqual([...MLP_NAMES]);
        for (const n of MLP_NAMES) {
          const info = r.info(n);
          expect(info.dtype).toBe(dtype);
          expect(info.shape).toEqual(MLP_SHAPES[n]);
          expect(info.byteLength).toBe(w[n].length * (dtype === 'F32' ? 4 : 2));
          expect(info.file).toBe(storage === 'external' ? path.join(dir, ext) : file);
          expect(await r.readBytes(n)).toEqual(encodeAs(dtype, w[n]));
          expect(await r.readF32(n)).toEqual(roundTo(dtype, w[n]));
          const t = await r.read(n);
          expect(t.dtype).toBe(dtype);
          expect(t.shape).toEqual(MLP_SHAPES[n]);
        }
        // row ranges: rows 2..5 of W1 (16 elements per row)
        const rows = await r.readF32('W1', { rowStart: 2, rowEnd: 5 });
        expect(rows).toEqual(roundTo(dtype, w.W1).subarray(32, 80));
        const t = await r.read('W1', { rowStart: 7 });
        expect(t.shape).toEqual([1, 16]);
        const into = new Uint8Array(1000);
        const b = await r.readBytes('b1', { rowStart: 3, rowEnd: 6, into });
        expect(b.buffer).toBe(into.buffer);
        expect(b).toEqual(encodeAs(dtype, w.b1).subarray(3 * (b.length / 3), 6 * (b.length / 3)));
        const f = new Float32Array(64);
        const got = await r.readF32('W2', { rowStart: 1, rowEnd: 2, into: f });
        expect(got.buffer).toBe(f.buffer);
        expect(got).toEqual(roundTo(dtype, w.W2).subarray(4, 8));
        expect(r.metadata()).toMatchObject({
          purpose: 'unit test',
          'onnx.producer_name': 'weightkit-test',
          'onnx.opset_import': 'ai.onnx=17',
        });
        expect(r.graphInputs()).toEqual([{ name: 'x', elemType: 1, dtype: 'F32', shape: ['N', 8] }]);
        expect(r.graphOutputs()).toEqual([{ name: 'y', elemType: 1, dtype: 'F32', shape: ['N', 4] }]);
        const shards = r.shards();
        expect(shards[0]!.file).toBe(file);
        if (storage === 'external') expect(shards[1]).toMatchObject({ file: path.join(dir, ext), tensorCount: 4 });
        await expectOrtMatches(file, roundWeights(dtype, w));
      });
    }
  }
});

describe('openOnnx: concurrent reads', () => {
  for (const storage of STORAGES) {
    it(`${storage}: parallel reads equal sequential ones`, async () => {
      const file = writeMlp(dir, `par-${storage}.onnx`, { dtype: 'BF16', storage, externalName: `par-${storage}.bin` });
      await using r = await openOnnx(file);
      const seq: Uint8Array[] = [];
      for (const n of MLP_NAMES) seq.push(await r.readBytes(n));
      const jobs = [];
      for (let k = 0; k < 8; k++) for (const n of MLP_NAMES) jobs.push(r.readBytes(n).then((b) => [n, b] as const));
      for (const [n, b] of await Promise.all(jobs)) expect(b).toEqual(seq[MLP_NAMES.indexOf(n)]);
    });
  }
});

describe('openOnnx: errors of use', () => {
  it('names the tensor and checkpoint for unknown names and bad row ranges', async () => {
    const file = writeMlp(dir, 'err.onnx');
    await using r = await openOnnx(file);
    const e1 = await code(r.read('nope'));
    expect(e1.code).toBe('TENSOR_NOT_FOUND');
    expect(e1.where).toMatchObject({ file, tensor: 'nope' });
    for (const range of [{ rowStart: -1 }, { rowStart: 3, rowEnd: 2 }, { rowEnd: 9 }, { rowStart: 0.5 }]) {
      const e = await code(r.readF32('W1', range));
      expect(e.code).toBe('TENSOR_ROW_RANGE');
      expect(e.where).toMatchObject({ file, tensor: 'W1' });
    }
    expect(r.has('W1')).toBe(true);
    expect(r.has('x')).toBe(false);
  });

  it('a missing model file is CKPT_NOT_FOUND', async () => {
    const e = await code(openOnnx(path.join(dir, 'does-not-exist.onnx')));
    expect(e.code).toBe('CKPT_NOT_FOUND');
  });

  it('reads after close fail with a typed error', async () => {
    const file = writeMlp(dir, 'closed.onnx');
    const r = await openOnnx(file);
    await r.close();
    await r.close();
    expect((await code(r.read('W1'))).code).toBe('USAGE');
  });
});

describe('openOnnx: typed fields of every integer and float kind', () => {
  it('int32_data / int64_data / uint64_data / double_data decode to little-endian bytes', async () => {
    const file = path.join(dir, 'typed.onnx');
    writeFileSync(
      file,
      buildInitializersOnly([
        { name: 'i8', dataType: 3, dims: [4n], int32Data: [-128, -1, 0, 127] },
        { name: 'u8', dataType: 2, dims: [3n], int32Data: [0, 200, 255] },
        { name: 'i16', dataType: 5, dims: [2n], int32Data: [-30000, 12345] },
        { name: 'u16', dataType: 4, dims: [2n], int32Data: [65535, 1] },
        { name: 'i32', dataType: 6, dims: [2n], int32Data: [-2147483648, 2147483647] },
        { name: 'bool', dataType: 9, dims: [3n], int32Data: [1, 0, 1] },
        { name: 'i64', dataType: 7, dims: [2, 1].map(BigInt), int64Data: [-(2n ** 63n), 2n ** 62n] },
        { name: 'u64', dataType: 13, dims: [1n], uint64Data: [2n ** 64n - 1n] },
        { name: 'u32', dataType: 12, dims: [2n], uint64Data: [4294967295n, 7n] },
        { name: 'f64', dataType: 11, dims: [2n], doubleData: [Math.PI, -0.5] },
        { name: 'f8', dataType: 17, dims: [2n], int32Data: [0x38, 0xb8] },
        { name: 'scalar', dataType: 1, dims: [], floatData: [2.5] },
        { name: 'empty', dataType: 1, dims: [0n, 3n] },
        { name: 'rawi64', dataType: 7, dims: [1n], rawData: new Uint8Array(new BigInt64Array([-5n]).buffer) },
      ]),
    );
    await using r = await openOnnx(file);
    expect(Array.from((await r.read('i8')).data as Int8Array)).toEqual([-128, -1, 0, 127]);
    expect(Array.from((await r.read('u8')).data as Uint8Array)).toEqual([0, 200, 255]);
    expect(Array.from((await r.read('i16')).data as Int16Array)).toEqual([-30000, 12345]);
    expect(Array.from((await r.read('u16')).data as Uint16Array)).toEqual([65535, 1]);
    expect(Array.from((await r.read('i32')).data as Int32Array)).toEqual([-2147483648, 2147483647]);
    expect(Array.from((await r.read('bool')).data as Uint8Array)).toEqual([1, 0, 1]);
    expect(Array.from((await r.read('i64')).data as BigInt64Array)).toEqual([-(2n ** 63n), 2n ** 62n]);
    expect((await r.read('i64')).shape).toEqual([2, 1]);
    expect(Array.from((await r.read('u64')).data as BigUint64Array)).toEqual([2n ** 64n - 1n]);
    expect(Array.from((await r.read('u32')).data as Uint32Array)).toEqual([4294967295, 7]);
    expect(Array.from((await r.read('f64')).data as Float64Array)).toEqual([Math.PI, -0.5]);
    expect(Array.from(await r.readF32('f8'))).toEqual([1, -1]);
    expect(r.info('f8').dtype).toBe('F8_E4M3');
    const s = await r.read('scalar');
    expect(s.shape).toEqual([]);
    expect(Array.from(await r.readF32('scalar'))).toEqual([2.5]);
    expect((await r.read('empty')).data.length).toBe(0);
    expect(Array.from((await r.read('rawi64')).data as BigInt64Array)).toEqual([-5n]);
    expect(Array.from(await r.readF32('i16', { rowStart: 1 }))).toEqual([12345]);
  });

  it('accepts external data without offset/length keys', async () => {
    const sub = mkdtempSync(path.join(dir, 'ext-'));
    const v = new Float32Array([1, 2, 3, 4]);
    writeFileSync(path.join(sub, 'w.bin'), new Uint8Array(v.buffer));
    const file = path.join(sub, 'm.onnx');
    writeFileSync(
      file,
      buildInitializersOnly([
        {
          name: 'w',
          dataType: ONNX_CODE.F32,
          dims: [2n, 2n],
          dataLocation: TensorProto_DataLocation.EXTERNAL,
          externalData: [{ key: 'location', value: 'w.bin' }],
        },
      ]),
    );
    await using r = await openOnnx(file);
    expect(Array.from(await r.readF32('w'))).toEqual([1, 2, 3, 4]);
    expect(Array.from(await r.readF32('w', { rowStart: 1 }))).toEqual([3, 4]);
  });
});
