// Corrupted vector files: every malformation is a typed VECTOR_INVALID naming the file and the tensor, at open or at
// the read that meets it; never a wrong value or a crash.

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeSafetensors } from '../../src/io/safetensors/writer.js';
import { makeTensor, type Tensor } from '../../src/tensor/tensor.js';
import { encodeVectorMeta, VECTOR_FORMAT_VERSION, type TensorEncoding } from '../../src/vectors/format.js';
import { openVector } from '../../src/vectors/reader.js';
import { tempDir } from '../plan/helpers.js';

const meta = (encodings?: Record<string, TensorEncoding>) =>
  encodeVectorMeta({ version: VECTOR_FORMAT_VERSION, kind: 'task', baseFingerprint: 'f'.repeat(32), ...(encodings ? { encodings } : {}) });

async function vectorFile(tensors: Record<string, Tensor>, encodings?: Record<string, TensorEncoding>): Promise<string> {
  const p = join(await tempDir(), 'v.safetensors');
  await writeSafetensors(p, tensors, { metadata: meta(encodings) });
  return p;
}

const sparse = (nnz: number): TensorEncoding => ({ enc: 'sparse', shape: [2, 3], density: 0.5, nnz });
const linear: TensorEncoding = { enc: 'linear', shape: [2, 2], levels: 4 };

describe('vector reader: corrupted files', () => {
  it('rejects at open: missing encoded parts, wrong part shapes, orphan parts, dense + encoded, integer values', async () => {
    const cases: Array<[Record<string, Tensor>, Record<string, TensorEncoding> | undefined, string]> = [
      [{ 'w.__sparse_indices': makeTensor('U32', [2], Uint32Array.of(0, 1)) }, { w: sparse(2) }, 'w'],
      [{ 'w.__sparse_indices': makeTensor('U32', [3], Uint32Array.of(0, 1, 2)), 'w.__sparse_values': makeTensor('F32', [2], Float32Array.of(1, 2)) }, { w: sparse(2) }, 'w.__sparse_indices'],
      [{ 'w.__quant_codes': makeTensor('U8', [4], new Uint8Array(4)), 'w.__quant_range': makeTensor('F64', [2], Float64Array.of(0, 1)) }, { w: linear }, 'w.__quant_codes'],
      [{ 'w.__quant_codes': makeTensor('U8', [2, 2], new Uint8Array(4)) }, undefined, 'w.__quant_codes'],
      [{ w: makeTensor('F32', [2, 2], new Float32Array(4)), 'w.__quant_codes': makeTensor('U8', [2, 2], new Uint8Array(4)), 'w.__quant_range': makeTensor('F64', [2], Float64Array.of(0, 1)) }, { w: linear }, 'w'],
      [{ w: makeTensor('I32', [2], Int32Array.of(1, 2)) }, undefined, 'w'],
      [{ 'w.__sparse_indices': makeTensor('U32', [9], new Uint32Array(9)), 'w.__sparse_values': makeTensor('F32', [9], new Float32Array(9)) }, { w: sparse(9) }, 'w'],
    ];
    for (const [tensors, enc, tensor] of cases) {
      const file = await vectorFile(tensors, enc);
      await expect(openVector(file), tensor).rejects.toMatchObject({ code: 'VECTOR_INVALID', where: { file, tensor } });
    }
  });

  it('rejects at read: non-ascending or out-of-range sparse indices, out-of-range codes, a non-finite range', async () => {
    const reads: Array<[Record<string, Tensor>, TensorEncoding, RegExp]> = [
      [{ 'w.__sparse_indices': makeTensor('U32', [2], Uint32Array.of(4, 2)), 'w.__sparse_values': makeTensor('F32', [2], Float32Array.of(1, 2)) }, sparse(2), /ascending/],
      [{ 'w.__sparse_indices': makeTensor('U32', [2], Uint32Array.of(1, 6)), 'w.__sparse_values': makeTensor('F32', [2], Float32Array.of(1, 2)) }, sparse(2), /past the end/],
      [{ 'w.__quant_codes': makeTensor('U8', [2, 2], Uint8Array.of(0, 1, 9, 3)), 'w.__quant_range': makeTensor('F64', [2], Float64Array.of(0, 1)) }, linear, /code 9 out of range/],
      [{ 'w.__quant_codes': makeTensor('U8', [2, 2], new Uint8Array(4)), 'w.__quant_range': makeTensor('F64', [2], Float64Array.of(0, Infinity)) }, linear, /not finite/],
    ];
    for (const [tensors, enc, msg] of reads) {
      const file = await vectorFile(tensors, { w: enc });
      const v = await openVector(file);
      await expect(v.readF32('w')).rejects.toMatchObject({ code: 'VECTOR_INVALID', where: { file, tensor: 'w' }, message: expect.stringMatching(msg) });
      await v.close();
    }
  });

  it('a missing tensor and a bad row range are typed errors naming the vector', async () => {
    const file = await vectorFile({ w: makeTensor('F32', [2, 2], Float32Array.of(1, 2, 3, 4)) });
    const v = await openVector(file);
    expect(() => v.info('nope')).toThrow(expect.objectContaining({ code: 'TENSOR_NOT_FOUND', where: { file, tensor: 'nope' } }));
    await expect(v.readF32('nope')).rejects.toMatchObject({ code: 'TENSOR_NOT_FOUND' });
    await v.close();
    const s = await vectorFile(
      { 'w.__sparse_indices': makeTensor('U32', [1], Uint32Array.of(4)), 'w.__sparse_values': makeTensor('F32', [1], Float32Array.of(7)) },
      { w: sparse(1) },
    );
    const sv = await openVector(s);
    await expect(sv.readF32('w', { rowStart: 1, rowEnd: 3 })).rejects.toMatchObject({ code: 'TENSOR_ROW_RANGE', where: { file: s, tensor: 'w' } });
    expect(Array.from(await sv.readF32('w', { rowStart: 1, rowEnd: 2 }))).toEqual([0, 7, 0]);
    await sv.close();
  });
});
