import { describe, it, expect } from 'vitest';
import {
  checkedByteLength,
  checkedNumel,
  formatShape,
  makeTensor,
  numel,
  rowCount,
  rowNumel,
  shapesEqual,
  tensorBytes,
} from '../../src/tensor/tensor.js';

describe('checkedNumel', () => {
  it('multiplies valid dims; a scalar has one element; a zero dim gives zero', () => {
    expect(checkedNumel([])).toBe(1);
    expect(checkedNumel([3, 4, 5])).toBe(60);
    expect(checkedNumel([7, 0, 9])).toBe(0);
    expect(checkedNumel([2 ** 26, 2 ** 26])).toBe(2 ** 52);
  });

  it('returns undefined when the product passes Number.MAX_SAFE_INTEGER', () => {
    expect(checkedNumel([2 ** 27, 2 ** 27])).toBeUndefined(); // 2^54
    expect(checkedNumel([2 ** 53 - 1, 2])).toBeUndefined();
    expect(checkedNumel([2 ** 26, 2 ** 26, 3])).toBeUndefined(); // 3 * 2^52 > 2^53 - 1
    expect(checkedNumel([2 ** 53 - 1])).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('rejects negative, fractional, NaN, infinite, unsafe and non-number dims', () => {
    for (const bad of [-1, 1.5, NaN, Infinity, -Infinity, 2 ** 53, -0.5]) {
      expect(checkedNumel([4, bad]), `dim ${bad}`).toBeUndefined();
    }
    for (const bad of ['3', null, undefined, 3n, {}, [2]]) {
      expect(checkedNumel([bad]), `dim ${String(bad)}`).toBeUndefined();
    }
  });

  it('numel throws RangeError on an invalid shape', () => {
    expect(numel([2, 3])).toBe(6);
    expect(() => numel([2, -3])).toThrow(RangeError);
    expect(() => numel([2 ** 27, 2 ** 27])).toThrow(RangeError);
  });
});

describe('checkedByteLength', () => {
  it('scales by the element size', () => {
    expect(checkedByteLength('BF16', [3, 5])).toBe(30);
    expect(checkedByteLength('F8_E4M3', [3, 5])).toBe(15);
    expect(checkedByteLength('F64', [2 ** 49])).toBe(2 ** 52);
  });

  it('returns undefined when numel fits but the byte length does not', () => {
    expect(checkedNumel([2 ** 51])).toBe(2 ** 51);
    expect(checkedByteLength('F32', [2 ** 51])).toBeUndefined(); // 2^53 bytes
    expect(checkedByteLength('U8', [2 ** 51])).toBe(2 ** 51);
    expect(checkedByteLength('F32', [2, -1])).toBeUndefined();
  });
});

describe('row helpers and tensors', () => {
  it('rows', () => {
    expect(rowNumel([4, 3, 2])).toBe(6);
    expect(rowCount([4, 3, 2])).toBe(4);
    expect(rowNumel([5])).toBe(1);
    expect(rowCount([])).toBe(1);
    expect(rowNumel([])).toBe(1);
  });

  it('shapesEqual and formatShape', () => {
    expect(shapesEqual([2, 3], [2, 3])).toBe(true);
    expect(shapesEqual([2, 3], [3, 2])).toBe(false);
    expect(shapesEqual([2, 3], [2, 3, 1])).toBe(false);
    expect(formatShape([2, 3])).toBe('[2, 3]');
  });

  it('makeTensor allocates, checks the data length and copies the shape', () => {
    const shape = [2, 3];
    const t = makeTensor('BF16', shape);
    expect(t.data).toBeInstanceOf(Uint16Array);
    expect(t.data.length).toBe(6);
    shape[0] = 9;
    expect(t.shape).toEqual([2, 3]);
    expect(() => makeTensor('F32', [2, 3], new Float32Array(5))).toThrow(RangeError);
  });

  it('tensorBytes views the data without copying, at its byte offset', () => {
    const buf = new ArrayBuffer(32);
    const data = new Float32Array(buf, 8, 4);
    const bytes = tensorBytes(makeTensor('F32', [4], data));
    expect(bytes.byteOffset).toBe(8);
    expect(bytes.byteLength).toBe(16);
    data[0] = 1;
    expect(bytes[3]).toBe(0x3f);
  });
});
