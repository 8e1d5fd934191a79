import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeNpy, openNpy, parseNpyHeader } from '../../src/eval/npy.js';
import { evalTempDir, removeEvalTempDirs } from './helpers.js';

let dir: string;
beforeAll(async () => {
  dir = await evalTempDir();
});

/** A .npy file with a hand-written header (v1/v2/v3) and `dataBytes` bytes of data. */
function npy(header: string, dataBytes: number, version = 1, magic = '\x93NUMPY'): Uint8Array {
  const h = new TextEncoder().encode(header);
  const lenBytes = version === 1 ? 2 : 4;
  const out = new Uint8Array(8 + lenBytes + h.length + dataBytes);
  for (let i = 0; i < 6; i++) out[i] = magic.charCodeAt(i);
  out[6] = version;
  out[7] = 0;
  const dv = new DataView(out.buffer);
  if (version === 1) dv.setUint16(8, h.length, true);
  else dv.setUint32(8, h.length, true);
  out.set(h, 8 + lenBytes);
  return out;
}

const dict = (descr: string, shape: string, fortran = 'False') => `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': ${shape}, }\n`;

async function write(name: string, bytes: Uint8Array): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, bytes);
  return p;
}

afterAll(removeEvalTempDirs);

describe('.npy reader', () => {
  it('reads what encodeNpy writes, by row ranges, for every supported dtype', async () => {
    const f = await write('x.npy', encodeNpy('F32', [3, 2], new Float32Array([1, 2, 3, 4, 5, 6])));
    const a = await openNpy(f);
    try {
      expect(a.shape).toEqual([3, 2]);
      expect(a.dtype).toBe('F32');
      expect(a.header.dataOffset % 64).toBe(0);
      expect(Array.from((await a.readRows(1, 3)) as Float32Array)).toEqual([3, 4, 5, 6]);
      await expect(a.readRows(2, 4)).rejects.toMatchObject({ code: 'EVAL_DATA', where: { file: f } });
    } finally {
      await a.close();
    }
    for (const [dtype, data] of [
      ['I64', new BigInt64Array([5n, -1n])],
      ['I32', new Int32Array([7, 8])],
      ['U8', new Uint8Array([9, 255])],
      ['F16', new Uint16Array([0x3c00, 0x4000])],
    ] as const) {
      const g = await write(`v-${dtype}.npy`, encodeNpy(dtype, [2], data));
      const r = await openNpy(g);
      expect(r.dtype).toBe(dtype);
      expect(Array.from(await r.readRows(0, 2) as ArrayLike<number | bigint>)).toEqual(Array.from(data as ArrayLike<number | bigint>));
      await r.close();
    }
  });

  it('accepts version 2 and 3 headers, 1-D shapes, double quotes and Python 2 longs', () => {
    const v2 = npy(dict('<i4', '(2,)'), 8, 2);
    expect(parseNpyHeader(v2, v2.length, 'v2').shape).toEqual([2]);
    const v3 = npy(`{"descr": "|u1", "fortran_order": False, "shape": (2L, 3L)}\n`, 6, 3);
    const h = parseNpyHeader(v3, v3.length, 'v3');
    expect(h.shape).toEqual([2, 3]);
    expect(h.version).toBe(3);
  });

  const BAD: Array<[string, Uint8Array]> = [
    ['too-short', new Uint8Array([0x93, 0x4e, 0x55])],
    ['bad-magic', npy(dict('<f4', '(1,)'), 4, 1, '\x93NUMPZ')],
    ['version-4', npy(dict('<f4', '(1,)'), 4, 4)],
    ['header-past-eof', (() => { const b = npy(dict('<f4', '(1,)'), 4); new DataView(b.buffer).setUint16(8, 60000, true); return b; })()],
    ['not-a-dict', npy("['descr', '<f4']\n", 4)],
    ['unknown-key', npy(`{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}\n`, 4)],
    ['missing-shape', npy(`{'descr': '<f4', 'fortran_order': False}\n`, 4)],
    ['duplicate-key', npy(`{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}\n`, 4)],
    ['big-endian', npy(dict('>f4', '(1,)'), 4)],
    ['float64', npy(dict('<f8', '(1,)'), 8)],
    ['object-dtype', npy(dict('|O', '(1,)'), 8)],
    ['fortran-order', npy(dict('<f4', '(2, 2)', 'True'), 16)],
    ['data-short', npy(dict('<f4', '(3,)'), 8)],
    ['data-long', npy(dict('<f4', '(1,)'), 8)],
    ['negative-dim', npy(dict('<f4', '(-1,)'), 4)],
    ['trailing-garbage', npy(dict('<f4', '(1,)') + 'x', 4)],
    ['non-ascii-v1', npy(`{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\u00e9\n`, 4)],
    ['unterminated', npy(`{'descr': '<f4`, 4)],
  ];
  for (const [name, bytes] of BAD) {
    it(`refuses ${name} with EVAL_DATA naming the file`, async () => {
      const f = await write(`${name}.npy`, bytes);
      await expect(openNpy(f)).rejects.toMatchObject({ code: 'EVAL_DATA', where: { file: f } });
    });
  }

  it('a missing file is EVAL_DATA', async () => {
    const f = join(dir, 'absent.npy');
    await expect(openNpy(f)).rejects.toMatchObject({ code: 'EVAL_DATA', where: { file: f } });
  });
});
