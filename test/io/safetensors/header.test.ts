// The pure header validator on valid edge cases (empty, zero-size, padding, any JSON order, odd names) and the
// duplicate-key scanner against a reference, property-tested.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { findDuplicateKey, parseSafetensorsHeader, readHeaderByteLength } from '../../../src/io/safetensors/header.js';
import { ascii, brief, concat, errorOf, u64le } from './helpers.js';

function file(header: string, dataBytes: number): Uint8Array {
  const h = ascii(header);
  return concat(u64le(h.length), h, new Uint8Array(dataBytes));
}

const parse = (b: Uint8Array) => parseSafetensorsHeader(b, b.length, 'f');

describe('parseSafetensorsHeader accepts', () => {
  it('an empty header {} with no data, padded or not', () => {
    expect(parse(file('{}', 0)).entries).toEqual([]);
    expect(parse(file('{}      ', 0))).toMatchObject({ headerByteLength: 8, dataStart: 16, dataByteLength: 0, metadata: {} });
    expect(parse(file(' \n{}\t\r\n', 0)).entries).toEqual([]);
  });

  it('zero-size tensors anywhere, including several at one offset and at the end', () => {
    const h = parse(
      file(
        '{"z2":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},' +
          '"z1":{"dtype":"BF16","shape":[3,0,2],"data_offsets":[4,4]},"z0":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}',
        4,
      ),
    );
    expect(h.entries.map((e) => [e.name, e.begin, e.end, e.numel])).toEqual([
      ['z0', 0, 0, 0],
      ['a', 0, 4, 1],
      ['z1', 4, 4, 0],
      ['z2', 4, 4, 0],
    ]);
  });

  it('"__metadata__": null as no metadata (the Rust crate reads it as an Option)', () => {
    expect(parse(file('{"__metadata__":null}', 0)).metadata).toEqual({});
  });

  it('a zero-size tensor whose other dims would overflow (numel is 0, like the Rust crate)', () => {
    const h = parse(file('{"z":{"dtype":"F64","shape":[0,9007199254740991,9007199254740991],"data_offsets":[0,0]}}', 0));
    expect(h.entries[0]!.numel).toBe(0);
  });

  it('entries in any JSON order, sorted into file order; scalars; names like __proto__ and unicode', () => {
    const h = parse(
      file(
        '{"__metadata__":{"__proto__":"x","format":"pt"},"é😀":{"dtype":"I64","shape":[],"data_offsets":[4,12]},"__proto__":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}',
        12,
      ),
    );
    expect(h.entries.map((e) => e.name)).toEqual(['__proto__', 'é😀']);
    expect(Object.keys(h.metadata)).toEqual(['__proto__', 'format']);
    expect(Object.getPrototypeOf(h.metadata)).toBe(Object.prototype);
    expect(h.entries[1]!.shape).toEqual([]);
  });
});

describe('parseSafetensorsHeader refuses', () => {
  it('bytes that do not hold the whole header with IO_ERROR, not a crash', async () => {
    const b = file('{}', 0);
    expect((await errorOf(() => parseSafetensorsHeader(b.subarray(0, 9), b.length, 'f'))).code).toBe('IO_ERROR');
    expect((await errorOf(() => readHeaderByteLength(b.subarray(0, 4), 10, 'f'))).code).toBe('IO_ERROR');
  });

  it('reports the first broken entry by JSON order of checks, with where.byteOffset for layout errors', async () => {
    const header = '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}';
    const e = await errorOf(() => parse(file(header, 12)));
    expect(brief(e)).toEqual({ code: 'ST_GAP', file: 'f', tensor: 'b' });
    expect(e.where.byteOffset).toBe(8 + header.length + 4); // the hole starts where "a" ends
  });
});

describe('findDuplicateKey', () => {
  it('sees keys only, not string values, and decodes escapes', () => {
    expect(findDuplicateKey('{"a":"a","b":{"a":1}}', 2)).toBeUndefined();
    expect(findDuplicateKey('{"a":"\\"a\\":","\\u0061":1}', 1)).toEqual({ key: 'a', path: [] });
    expect(findDuplicateKey('{"x":{"k":[{"k":1},{"k":2}],"k":3}}', 2)).toEqual({ key: 'k', path: ['x'] });
    expect(findDuplicateKey('{"x":{"y":{"k":1,"k":2}}}', 2)).toBeUndefined();
    expect(findDuplicateKey('{"x":{"y":{"k":1,"k":2}}}', 3)).toEqual({ key: 'k', path: ['x', 'y'] });
    expect(findDuplicateKey('{"a\\\\":1,"a\\\\":2}', 1)).toEqual({ key: 'a\\', path: [] });
  });

  it('agrees with a reference on random objects with repeated keys', () => {
    const key = fc.constantFrom('a', 'b', '"', '\\', 'é', '😀', '{', '}', ',', ':', '');
    const value = fc.oneof(fc.string(), fc.integer(), fc.constant('{"a":1}'), fc.array(fc.string(), { maxLength: 3 }));
    fc.assert(
      fc.property(fc.array(fc.tuple(key, value, fc.boolean()), { maxLength: 8 }), (entries) => {
        const seen = new Set<string>();
        let expected: string | undefined;
        for (const [k] of entries) {
          if (seen.has(k) && expected === undefined) expected = k;
          seen.add(k);
        }
        const escape = (k: string): string =>
          JSON.stringify(k).replace(/[a-z]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
        const text = `{${entries.map(([k, v, esc]) => `${esc ? escape(k) : JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`;
        JSON.parse(text);
        expect(findDuplicateKey(text, 1)?.key).toBe(expected);
      }),
      { seed: 42, numRuns: 500 },
    );
  });
});
