// Deterministic generator for the safetensors part of test/fixtures/hostile/: one small file (or folder) per broken
// invariant, named after the attack (st-*.safetensors, sharded-*/). The expected error of each is listed in
// test/fixtures/hostile/cases.ts. Writes only st-* and sharded-* entries (onnx-* belong to the ONNX generator).
// Run: npx tsx scripts/make-hostile.ts. Imports nothing from src/.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { assemble, encodeSafetensors } from './make-fixtures.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const zeros = (n: number): Uint8Array => new Uint8Array(n);
const f32 = (...xs: number[]): Uint8Array => new Uint8Array(new Float32Array(xs).buffer);

/** A header text (padded to 8 with spaces) followed by `dataBytes` zero bytes of data. */
const st = (header: string, dataBytes = 0): Uint8Array => assemble(header, [zeros(dataBytes)], true);

/** One valid F32 [1] entry at [begin, begin + 4]. */
const w = (begin: number): string => `{"dtype":"F32","shape":[1],"data_offsets":[${begin},${begin + 4}]}`;

/** Every hostile file: relative path -> bytes. */
export function hostileFiles(): Map<string, Uint8Array> {
  const m = new Map<string, Uint8Array>();
  // --- prefix and header length
  m.set('st-empty-file.safetensors', new Uint8Array(0));
  m.set('st-file-too-small.safetensors', Uint8Array.of(2, 0, 0, 0, 0));
  m.set('st-header-too-small.safetensors', assemble('{', [], false));
  m.set('st-header-zero-length.safetensors', assemble('', [zeros(8)], false));
  m.set('st-header-too-large.safetensors', assemble('{}', [zeros(14)], false, 100_000_001n));
  m.set('st-header-length-u64-max.safetensors', assemble('{}', [zeros(6)], false, 0xffff_ffff_ffff_ffffn));
  m.set('st-header-length-2pow53.safetensors', assemble('{}', [zeros(6)], false, 2n ** 53n));
  m.set('st-header-out-of-file.safetensors', assemble('{}      ', [], false, 64n));
  // --- header text
  m.set('st-header-not-utf8.safetensors', assemble(Uint8Array.of(0x7b, 0x22, 0xff, 0x22, 0x3a, 0x7b, 0x7d, 0x7d), [], true));
  m.set('st-header-overlong-utf8.safetensors', assemble(Uint8Array.of(0x7b, 0x22, 0xc0, 0xaf, 0x22, 0x3a, 0x7b, 0x7d, 0x7d), [], true));
  m.set('st-header-lone-surrogate-utf8.safetensors', assemble(Uint8Array.of(0x7b, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x3a, 0x7b, 0x7d, 0x7d), [], true));
  m.set('st-header-not-json.safetensors', st('{"w":'));
  m.set('st-header-bom.safetensors', st('\ufeff{}'));
  m.set('st-header-trailing-garbage.safetensors', st('{} x'));
  m.set('st-header-nul-padding.safetensors', assemble(enc('{}\0\0\0\0\0\0'), [], false));
  m.set('st-header-not-object.safetensors', st('[]'));
  m.set('st-header-null.safetensors', st('null'));
  // --- entries
  m.set('st-entry-not-object.safetensors', st('{"w":[0,4]}', 4));
  m.set('st-entry-missing-key.safetensors', st('{"w":{"dtype":"F32","shape":[1]}}', 4));
  m.set('st-entry-extra-key.safetensors', st('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"offsets":[0,4]}}', 4));
  m.set('st-entry-dtype-not-string.safetensors', st('{"w":{"dtype":32,"shape":[1],"data_offsets":[0,4]}}', 4));
  m.set('st-entry-shape-not-array.safetensors', st('{"w":{"dtype":"F32","shape":1,"data_offsets":[0,4]}}', 4));
  m.set('st-entry-offsets-not-array.safetensors', st('{"w":{"dtype":"F32","shape":[1],"data_offsets":"0-4"}}', 4));
  m.set('st-entry-duplicate-key.safetensors', st('{"w":{"dtype":"F64","dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 4));
  m.set('st-unknown-dtype.safetensors', st('{"w":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}', 16));
  m.set('st-dtype-lowercase.safetensors', st('{"w":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}', 4));
  m.set('st-dtype-proto.safetensors', st('{"w":{"dtype":"__proto__","shape":[1],"data_offsets":[0,4]}}', 4));
  // --- shapes
  m.set('st-shape-negative.safetensors', st('{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', 4));
  m.set('st-shape-fractional.safetensors', st('{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,6]}}', 6));
  m.set('st-shape-string-dim.safetensors', st('{"w":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}}', 4));
  m.set('st-shape-overflow.safetensors', st('{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}', 4));
  m.set('st-shape-bytes-overflow.safetensors', st('{"w":{"dtype":"F64","shape":[4503599627370495],"data_offsets":[0,8]}}', 8));
  // --- offsets
  m.set('st-offsets-reversed.safetensors', st('{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}', 4));
  m.set('st-offsets-one-number.safetensors', st('{"w":{"dtype":"F32","shape":[1],"data_offsets":[4]}}', 4));
  m.set('st-offsets-three-numbers.safetensors', st('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}', 8));
  m.set('st-offsets-negative.safetensors', st('{"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}', 4));
  m.set('st-offsets-unsafe-integer.safetensors', st('{"w":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,18446744073709551616]}}', 4));
  m.set('st-offset-out-of-bounds.safetensors', st('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', 4));
  m.set('st-huge-tensor-tiny-file.safetensors', st('{"w":{"dtype":"F32","shape":[1000000000000],"data_offsets":[0,4000000000000]}}', 4));
  m.set('st-size-mismatch.safetensors', st('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', 4));
  // --- layout of the data area
  m.set('st-gap.safetensors', st(`{"a":${w(0)},"b":${w(8)}}`, 12));
  m.set('st-gap-at-start.safetensors', st(`{"a":${w(4)}}`, 8));
  m.set('st-overlap.safetensors', st('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', 12));
  m.set('st-overlap-identical.safetensors', st(`{"a":${w(0)},"b":${w(0)}}`, 4));
  m.set('st-zero-size-inside-other.safetensors', st('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}', 8));
  m.set('st-data-longer.safetensors', st(`{"a":${w(0)}}`, 8));
  m.set('st-data-without-tensors.safetensors', st('{}', 4));
  // --- names and metadata
  m.set('st-duplicate-name.safetensors', st(`{"w":${w(0)},"w":${w(0)}}`, 4));
  m.set('st-duplicate-name-hiding.safetensors', st(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,400]},"w":${w(0)}}`, 4));
  m.set('st-duplicate-name-escaped.safetensors', st(`{"w":${w(0)},"\\u0077":${w(0)}}`, 4));
  m.set('st-metadata-not-object.safetensors', st('{"__metadata__":"pt"}'));
  m.set('st-metadata-not-strings.safetensors', st('{"__metadata__":{"epochs":3}}'));
  m.set('st-metadata-nested.safetensors', st('{"__metadata__":{"a":{"b":"c"}}}'));
  m.set('st-metadata-duplicate.safetensors', st('{"__metadata__":{"a":"1"},"__metadata__":{"a":"2"}}'));
  m.set('st-metadata-duplicate-key.safetensors', st('{"__metadata__":{"a":"1","a":"2"}}'));

  // --- sharded folders
  const shard = (names: string[]): Uint8Array =>
    encodeSafetensors(names.map((name, i) => ({ name, dtype: 'F32', shape: [1], bytes: f32(i) })), { format: 'pt' });
  const index = (weightMap: string): Uint8Array => enc(`{\n  "metadata": {\n    "total_size": 8\n  },\n  "weight_map": ${weightMap}\n}\n`);
  const s1 = 'model-00001-of-00002.safetensors';
  const s2 = 'model-00002-of-00002.safetensors';
  const twoShards = `{\n    "a": "${s1}",\n    "b": "${s2}"\n  }`;
  m.set('sharded-missing-shard/model.safetensors.index.json', index(twoShards));
  m.set(`sharded-missing-shard/${s1}`, shard(['a']));
  m.set('sharded-tensor-not-in-shard/model.safetensors.index.json', index(`{\n    "a": "${s1}",\n    "b": "${s1}"\n  }`));
  m.set(`sharded-tensor-not-in-shard/${s1}`, shard(['a']));
  m.set(`sharded-tensor-not-in-shard/${s2}`, shard(['b']));
  m.set('sharded-index-not-json/model.safetensors.index.json', enc('{"weight_map": {"a": '));
  m.set(`sharded-index-not-json/${s1}`, shard(['a']));
  m.set('sharded-index-no-weight-map/model.safetensors.index.json', enc('{"metadata": {"total_size": 4}}\n'));
  m.set(`sharded-index-no-weight-map/${s1}`, shard(['a']));
  m.set('sharded-index-shard-not-string/model.safetensors.index.json', index('{\n    "a": 1\n  }'));
  m.set(`sharded-index-shard-not-string/${s1}`, shard(['a']));
  m.set('sharded-index-escape/model.safetensors.index.json', index('{\n    "a": "../st-gap.safetensors"\n  }'));
  m.set('sharded-index-absolute/model.safetensors.index.json', index('{\n    "a": "/etc/passwd"\n  }'));
  m.set('sharded-index-nul/model.safetensors.index.json', index('{\n    "a": "model.safetensors\\u0000.txt"\n  }'));
  m.set('sharded-duplicate-tensor/model.safetensors.index.json', index(`{\n    "a": "${s1}",\n    "a": "${s2}"\n  }`));
  m.set(`sharded-duplicate-tensor/${s1}`, shard(['a']));
  m.set(`sharded-duplicate-tensor/${s2}`, shard(['a']));
  m.set('sharded-bad-shard/model.safetensors.index.json', index(twoShards));
  m.set(`sharded-bad-shard/${s1}`, shard(['a']));
  m.set(`sharded-bad-shard/${s2}`, st(`{"b":${w(4)}}`, 8));
  return m;
}

export const HOSTILE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'test', 'fixtures', 'hostile');

function main(): void {
  for (const [rel, bytes] of hostileFiles()) {
    const file = join(HOSTILE_DIR, rel);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, bytes);
  }
  process.stdout.write(`wrote ${hostileFiles().size} files under ${HOSTILE_DIR}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
