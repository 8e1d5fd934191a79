// Byte preservation beyond what onnx-buf would write: unusual field order, unknown fields, non-minimal encodings.
// The patcher splices bytes, so all of that survives; and the committed fixtures match their generator.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { clone, fromBinary, toBinary } from '@bufbuild/protobuf';
import { GraphProtoSchema, ModelProtoSchema } from 'onnx-buf';
import { afterAll, describe, expect, it } from 'vitest';
import { patchOnnx } from '../../../src/io/onnx/patch.js';
import { openOnnx } from '../../../src/io/onnx/reader.js';
import { concatBytes, encodeVarint, lenPrefix } from '../../../src/io/onnx/wire.js';
import { makeTensor } from '../../../src/tensor/tensor.js';
import { hostileOnnxFiles, validOnnxFiles } from '../../../scripts/make-hostile-onnx.js';
import { MLP_NAMES, MLP_SHAPES, buildMlp, encodeAs, mlpWeights } from './build-model.js';
import { expectOrtMatches, roundWeights } from './ort-check.js';

const dir = mkdtempSync(path.join(tmpdir(), 'wk-onnx-preserve-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures');
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A TensorProto written "by another exporter": raw_data first, then name, dims unpacked, an unknown field. */
function oddTensor(name: string, dims: number[], raw: Uint8Array): Uint8Array {
  const body = concatBytes([
    lenPrefix(9, raw.length),
    raw,
    lenPrefix(8, utf8(name).length),
    utf8(name),
    ...dims.map((d) => concatBytes([encodeVarint(1 * 8 + 0), encodeVarint(d)])), // unpacked int64 dims
    new Uint8Array([0x10, 0x81, 0x00]), // data_type = 1 as a non-minimal (2-byte) varint
    lenPrefix(77, 3),
    utf8('???'), // unknown field
  ]);
  return concatBytes([lenPrefix(5, body.length), body]);
}

function oddModel(): Uint8Array {
  const w = mlpWeights(1);
  const mlp = fromBinary(ModelProtoSchema, buildMlp().bytes); // reuse the builder's nodes, inputs and outputs
  const graph = clone(GraphProtoSchema, mlp.graph!);
  graph.initializer = [];
  const graphBytes = concatBytes([
    encodeVarint(50 * 8 + 0),
    encodeVarint(7), // unknown varint field in the graph, before everything
    toBinary(GraphProtoSchema, graph),
    ...MLP_NAMES.map((n) => oddTensor(n, MLP_SHAPES[n], encodeAs('F32', w[n]))),
  ]);
  const top = clone(ModelProtoSchema, mlp);
  top.graph = undefined;
  return concatBytes([
    lenPrefix(99, 5),
    utf8('hello'), // unknown top-level field first
    lenPrefix(7, graphBytes.length),
    graphBytes,
    toBinary(ModelProtoSchema, top), // ir_version, opset, metadata after the graph
  ]);
}

describe('byte preservation of foreign encodings', () => {
  it('reads a model with unusual field order and unknown fields, and runs it in ORT', async () => {
    const file = path.join(dir, 'odd.onnx');
    writeFileSync(file, oddModel());
    await using r = await openOnnx(file);
    expect(r.tensors().map((t) => [t.name, t.dtype, t.shape])).toEqual(MLP_NAMES.map((n) => [n, 'F32', MLP_SHAPES[n]]));
    expect(await r.readF32('b2')).toEqual(mlpWeights(1).b2);
    await expectOrtMatches(file, mlpWeights(1));
  });

  it('identity patch is byte-identical; a one-tensor patch changes only that payload', async () => {
    const file = path.join(dir, 'odd2.onnx');
    const bytes = oddModel();
    writeFileSync(file, bytes);
    const own = new Map<string, ReturnType<typeof makeTensor>>();
    {
      await using r = await openOnnx(file);
      for (const n of MLP_NAMES) own.set(n, await r.read(n));
    }
    const same = path.join(dir, 'same.onnx');
    await patchOnnx({ model: file, out: same, replacements: own });
    expect(sha(readFileSync(same))).toBe(sha(bytes));
    await expectOrtMatches(same, mlpWeights(1));

    const W2 = mlpWeights(77).W2;
    const one = path.join(dir, 'one.onnx');
    await patchOnnx({ model: file, out: one, replacements: new Map([['W2', makeTensor('F32', [16, 4], W2)]]) });
    const got = readFileSync(one);
    expect(got.length).toBe(bytes.length);
    const oldW2 = encodeAs('F32', mlpWeights(1).W2);
    const at = Buffer.from(bytes).indexOf(Buffer.from(oldW2));
    for (let i = 0; i < bytes.length; i++) if (bytes[i] !== got[i]) expect(i >= at && i < at + oldW2.length).toBe(true);
    await expectOrtMatches(one, { ...mlpWeights(1), W2 });
  });

  it('moving to external data keeps unknown fields of the moved TensorProtos and of the model', async () => {
    const file = path.join(dir, 'odd3.onnx');
    writeFileSync(file, oddModel());
    const out = path.join(dir, 'odd3-ext.onnx');
    await patchOnnx({ model: file, out, replacements: new Map(), external: true, externalMinTensorBytes: 0 });
    const got = Buffer.from(readFileSync(out));
    const head = concatBytes([lenPrefix(99, 5), utf8('hello')]);
    expect(got.subarray(0, head.length)).toEqual(Buffer.from(head));
    expect(got.indexOf(Buffer.from(concatBytes([lenPrefix(77, 3), utf8('???')])))).toBeGreaterThan(0);
    await expectOrtMatches(out, roundWeights('F32', mlpWeights(1)));
  });
});

describe('non-minimal length prefixes', () => {
  it('entries with padded length varints are copied as they are, and moved ones are re-sized correctly', async () => {
    // rebuild odd model with every initializer's length written as a 3-byte varint
    const w = mlpWeights(1);
    const padded = (n: number): Uint8Array => new Uint8Array([(n & 0x7f) | 0x80, ((n >> 7) & 0x7f) | 0x80, n >> 14]);
    const entries = MLP_NAMES.map((n) => {
      const e = oddTensor(n, MLP_SHAPES[n], encodeAs('F32', w[n]));
      const body = e.subarray(lenPrefix(5, 0).length - 1 + (e[1]! & 0x80 ? 2 : 1));
      return concatBytes([new Uint8Array([0x2a]), padded(body.length), body]);
    });
    const mlp = fromBinary(ModelProtoSchema, buildMlp().bytes);
    const graph = clone(GraphProtoSchema, mlp.graph!);
    graph.initializer = [];
    const graphBytes = concatBytes([toBinary(GraphProtoSchema, graph), ...entries]);
    const top = clone(ModelProtoSchema, mlp);
    top.graph = undefined;
    const bytes = concatBytes([toBinary(ModelProtoSchema, top), new Uint8Array([0x3a]), padded(graphBytes.length), graphBytes]);
    const file = path.join(dir, 'padded.onnx');
    writeFileSync(file, bytes);
    const same = path.join(dir, 'padded-same.onnx');
    await patchOnnx({ model: file, out: same, replacements: new Map([['b1', makeTensor('F32', [16], w.b1)]]) });
    expect(sha(readFileSync(same))).toBe(sha(bytes));
    const ext = path.join(dir, 'padded-ext.onnx');
    await patchOnnx({ model: file, out: ext, replacements: new Map(), external: true, externalMinTensorBytes: 200 });
    await expectOrtMatches(ext, w);
    await expectOrtMatches(same, w);
  });
});

describe('committed fixtures', () => {
  it('match scripts/make-hostile-onnx.ts byte for byte', () => {
    for (const [folder, files] of [
      ['hostile', hostileOnnxFiles()],
      ['onnx', validOnnxFiles()],
    ] as const) {
      for (const [name, bytes] of Object.entries(files)) {
        expect(sha(readFileSync(path.join(fixtures, folder, name))), `${folder}/${name}`).toBe(sha(bytes));
      }
    }
  });

  it('the valid models open and run in ORT', async () => {
    for (const name of ['mlp-f32.onnx', 'mlp-bf16.onnx', 'mlp-float-data.onnx', 'mlp-external.onnx']) {
      const file = path.join(fixtures, 'onnx', name);
      await using r = await openOnnx(file);
      expect(r.tensors().length).toBe(4);
      await expectOrtMatches(file, roundWeights(name.includes('bf16') ? 'BF16' : 'F32', mlpWeights(1)));
    }
  });
});
