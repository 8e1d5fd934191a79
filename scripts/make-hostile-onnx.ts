// Writes the hostile ONNX fixtures of test/fixtures/hostile/ (onnx-*), one file per attack, and the tiny valid models
// of test/fixtures/onnx/, deterministically. Run: npx tsx scripts/make-hostile-onnx.ts. The expected errors live in
// test/fixtures/hostile/onnx-cases.ts. Symlink escapes are created by the tests at run time (no committed symlinks).

import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildInitializersOnly, buildMlp } from '../test/io/onnx/build-model.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'test', 'fixtures');

const f32 = (...v: number[]): Uint8Array<ArrayBuffer> => new Uint8Array(new Float32Array(v).buffer);
const ext = (kv: Record<string, string>) => ({
  name: 'w',
  dataType: 1,
  dims: [4n],
  dataLocation: 1,
  externalData: Object.entries(kv).map(([key, value]) => ({ key, value })),
});

/** Every hostile fixture, by file name (in test/fixtures/hostile/). */
export function hostileOnnxFiles(): Record<string, Uint8Array> {
  const files: Record<string, Uint8Array> = {};

  const mlp = buildMlp().bytes;
  files['onnx-empty.onnx'] = new Uint8Array(0);
  // a valid protobuf that is not a model: only an ir_version, no graph
  files['onnx-no-graph.onnx'] = new Uint8Array([0x08, 0x08]);
  files['onnx-truncated.onnx'] = mlp.slice(0, Math.floor(mlp.length / 2));
  // ir_version 8, then a graph field (7, LEN) whose length claims 2^40 bytes
  files['onnx-huge-length.onnx'] = new Uint8Array([0x08, 0x08, 0x3a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20]);
  // field 1 with wire type 3 (start group)
  files['onnx-group-wiretype.onnx'] = new Uint8Array([0x0b, 0x08, 0x01, 0x0c]);
  files['onnx-raw-data-length.onnx'] = buildInitializersOnly([{ name: 'w', dataType: 1, dims: [2n, 2n], rawData: f32(1, 2, 3) }]);
  files['onnx-external-absolute.onnx'] = buildInitializersOnly([ext({ location: '/etc/passwd', offset: '0', length: '16' })]);
  files['onnx-external-dotdot.onnx'] = buildInitializersOnly([ext({ location: '../onnx-outside.bin' })]);
  files['onnx-external-dotdot-nested.onnx'] = buildInitializersOnly([ext({ location: 'sub/../../onnx-outside.bin' })]);
  files['onnx-external-short.bin'] = f32(1, 2);
  files['onnx-external-short.onnx'] = buildInitializersOnly([
    ext({ location: 'onnx-external-short.bin', offset: '0', length: '16' }),
  ]);
  files['onnx-external-ok.bin'] = f32(1, 2, 3, 4);
  files['onnx-external-offset-past-end.onnx'] = buildInitializersOnly([ext({ location: 'onnx-external-ok.bin', offset: '8' })]);
  files['onnx-external-missing.onnx'] = buildInitializersOnly([ext({ location: 'onnx-no-such-file.bin' })]);
  files['onnx-external-bad-offset.onnx'] = buildInitializersOnly([ext({ location: 'onnx-external-ok.bin', offset: 'abc' })]);
  files['onnx-external-no-location.onnx'] = buildInitializersOnly([ext({ offset: '0', length: '16' })]);
  files['onnx-external-unknown-key.onnx'] = buildInitializersOnly([
    ext({ location: 'onnx-external-ok.bin', basepath: '/tmp' }),
  ]);
  files['onnx-external-length.onnx'] = buildInitializersOnly([
    ext({ location: 'onnx-external-ok.bin', offset: '0', length: '12' }),
  ]);
  files['onnx-unsupported-string.onnx'] = buildInitializersOnly([
    { name: 's', dataType: 8, dims: [1n], stringData: [new TextEncoder().encode('hi')] },
  ]);
  files['onnx-unsupported-int4.onnx'] = buildInitializersOnly([
    { name: 'q', dataType: 22, dims: [4n], rawData: new Uint8Array([0x12, 0x34]) },
  ]);
  files['onnx-unsupported-complex.onnx'] = buildInitializersOnly([{ name: 'c', dataType: 14, dims: [1n], floatData: [1, 2] }]);
  files['onnx-duplicate-initializer.onnx'] = buildInitializersOnly([
    { name: 'w', dataType: 1, dims: [1n], rawData: f32(1) },
    { name: 'w', dataType: 1, dims: [1n], rawData: f32(2) },
  ]);
  files['onnx-negative-dim.onnx'] = buildInitializersOnly([{ name: 'w', dataType: 1, dims: [-1n, 4n], rawData: f32(1, 2, 3, 4) }]);
  files['onnx-huge-dims.onnx'] = buildInitializersOnly([
    { name: 'w', dataType: 1, dims: [2n ** 40n, 2n ** 40n], rawData: f32(1) },
  ]);
  files['onnx-typed-count.onnx'] = buildInitializersOnly([{ name: 'w', dataType: 1, dims: [4n], floatData: [1, 2, 3] }]);
  files['onnx-typed-wrong-field.onnx'] = buildInitializersOnly([
    { name: 'w', dataType: 1, dims: [2n], int64Data: [1n, 2n] },
  ]);
  files['onnx-no-data.onnx'] = buildInitializersOnly([{ name: 'w', dataType: 1, dims: [4n] }]);
  files['onnx-two-data-fields.onnx'] = buildInitializersOnly([
    { name: 'w', dataType: 1, dims: [1n], rawData: f32(1), floatData: [1] },
  ]);

  return files;
}

/** Tiny valid models (in test/fixtures/onnx/): the test MLP in F32 raw_data, BF16, float_data and external data. */
export function validOnnxFiles(): Record<string, Uint8Array> {
  const ext = buildMlp({ storage: 'external', externalName: 'mlp-external.bin' });
  return {
    'mlp-f32.onnx': buildMlp().bytes,
    'mlp-bf16.onnx': buildMlp({ dtype: 'BF16' }).bytes,
    'mlp-float-data.onnx': buildMlp({ storage: 'typed' }).bytes,
    'mlp-external.onnx': ext.bytes,
    'mlp-external.bin': ext.external!,
  };
}

function main(): void {
  for (const [folder, files] of [
    ['hostile', hostileOnnxFiles()],
    ['onnx', validOnnxFiles()],
  ] as const) {
    mkdirSync(path.join(fixtures, folder), { recursive: true });
    for (const [name, bytes] of Object.entries(files)) {
      if (bytes.length >= 10_000) throw new Error(`${name} is ${bytes.length} bytes; fixtures must stay under 10 KB`);
      writeFileSync(path.join(fixtures, folder, name), bytes);
    }
    console.log(`wrote ${Object.keys(files).length} files to ${path.join(fixtures, folder)}`);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
