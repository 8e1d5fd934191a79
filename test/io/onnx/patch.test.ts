import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { clone, equals, fromBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema, TensorProto_DataLocation, type ModelProto, type TensorProto } from 'onnx-buf';
import { afterAll, describe, expect, it } from 'vitest';
import { WeightkitError } from '../../../src/errors.js';
import { patchOnnx } from '../../../src/io/onnx/patch.js';
import { openOnnx } from '../../../src/io/onnx/reader.js';
import { makeTensor, type Tensor } from '../../../src/tensor/tensor.js';
import { MLP_NAMES, MLP_SHAPES, mlpWeights, writeMlp, type MlpWeights, type WeightDType } from './build-model.js';
import { expectOrtMatches, roundWeights } from './ort-check.js';

const root = mkdtempSync(path.join(tmpdir(), 'wk-onnx-patch-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
function freshDir(): string {
  const d = path.join(root, `case-${counter++}`);
  mkdirSync(d);
  return d;
}

const sha = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');
const decodeModel = (file: string): ModelProto => fromBinary(ModelProtoSchema, readFileSync(file));

async function rejection(p: Promise<unknown>): Promise<WeightkitError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(WeightkitError);
    return e as WeightkitError;
  }
  throw new Error('expected a WeightkitError');
}

/** Replacement tensors in f32 for the given weights. */
function f32Tensors(w: Partial<MlpWeights>): Map<string, Tensor> {
  const m = new Map<string, Tensor>();
  for (const n of MLP_NAMES) if (w[n] !== undefined) m.set(n, makeTensor('F32', MLP_SHAPES[n], w[n]));
  return m;
}

/** Every tensor's own stored values, read back from the model. */
async function ownValues(file: string): Promise<Map<string, Tensor>> {
  await using r = await openOnnx(file);
  const m = new Map<string, Tensor>();
  for (const t of r.tensors()) m.set(t.name, await r.read(t.name));
  return m;
}

/** The model with every initializer's data fields cleared (to compare everything else). */
function withoutData(m: ModelProto): ModelProto {
  const c = clone(ModelProtoSchema, m);
  for (const t of c.graph!.initializer) clearData(t);
  return c;
}
function clearData(t: TensorProto): void {
  t.rawData = new Uint8Array(0);
  t.floatData = [];
  t.int32Data = [];
  t.int64Data = [];
  t.doubleData = [];
  t.uint64Data = [];
  t.externalData = [];
  t.dataLocation = TensorProto_DataLocation.DEFAULT;
}

describe('patchOnnx: identity and minimal change', () => {
  for (const dtype of ['F32', 'F16', 'BF16'] as WeightDType[]) {
    it(`${dtype}: patching every tensor with its own values is byte-identical`, async () => {
      const dir = freshDir();
      const model = writeMlp(dir, 'in.onnx', { dtype });
      const before = sha(model);
      const own = await ownValues(model);
      const out = path.join(dir, 'out.onnx');
      const res = await patchOnnx({ model, out, replacements: own });
      expect(res.replaced).toEqual([...MLP_NAMES]);
      expect(res.externalData).toBeUndefined();
      expect(sha(out)).toBe(before);
      expect(sha(model)).toBe(before);
      // the function form, and an empty map, too
      const out2 = path.join(dir, 'out2.onnx');
      await patchOnnx({ model, out: out2, replacements: async (name) => own.get(name) });
      expect(sha(out2)).toBe(before);
      const out3 = path.join(dir, 'out3.onnx');
      const res3 = await patchOnnx({ model, out: out3, replacements: new Map() });
      expect(res3.replaced).toEqual([]);
      expect(sha(out3)).toBe(before);
      await expectOrtMatches(out, roundWeights(dtype, mlpWeights(1)));
      expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    });
  }

  it('patching one tensor changes only that tensor’s bytes', async () => {
    const dir = freshDir();
    const model = writeMlp(dir, 'in.onnx');
    const w = mlpWeights(1);
    const W1 = mlpWeights(99).W1;
    const out = path.join(dir, 'out.onnx');
    await patchOnnx({ model, out, replacements: f32Tensors({ W1 }) });
    const a = readFileSync(model);
    const b = readFileSync(out);
    expect(b.length).toBe(a.length);
    // differing bytes all lie inside W1's raw_data payload
    const { initializers } = await openOnnx(model).then(async (r) => {
      const inits = r.initializers();
      await r.close();
      return { initializers: inits };
    });
    const raw = initializers[0]!.entry.fields.find((f) => f.field === 9)!;
    for (let i = 0; i < a.length; i++) {
      if (a[i] !== b[i]) expect(i >= raw.start && i < raw.end).toBe(true);
    }
    const ma = decodeModel(model);
    const mb = decodeModel(out);
    expect(equals(ModelProtoSchema, withoutData(ma), withoutData(mb))).toBe(true);
    expect(mb.graph!.initializer[1]!.rawData).toEqual(ma.graph!.initializer[1]!.rawData);
    expect(new Float32Array(Uint8Array.from(mb.graph!.initializer[0]!.rawData).buffer)).toEqual(W1);
    await expectOrtMatches(out, { ...w, W1 });
  });

  it('float_data model: a replaced tensor becomes raw_data, the others keep their typed fields', async () => {
    const dir = freshDir();
    const model = writeMlp(dir, 'in.onnx', { storage: 'typed' });
    const before = sha(model);
    const W2 = mlpWeights(5).W2;
    const out = path.join(dir, 'out.onnx');
    const res = await patchOnnx({ model, out, replacements: async (n) => (n === 'W2' ? f32Tensors({ W2 }).get('W2') : undefined) });
    expect(res.replaced).toEqual(['W2']);
    const ma = decodeModel(model);
    const mb = decodeModel(out);
    expect(mb.graph!.initializer[2]!.floatData).toEqual([]);
    expect(mb.graph!.initializer[2]!.rawData.length).toBe(16 * 4 * 4);
    expect(mb.graph!.initializer[0]!.floatData).toEqual(ma.graph!.initializer[0]!.floatData);
    expect(equals(ModelProtoSchema, withoutData(ma), withoutData(mb))).toBe(true);
    expect(sha(model)).toBe(before);
    await expectOrtMatches(out, { ...mlpWeights(1), W2 });
  });

  for (const dtype of ['F16', 'BF16'] as WeightDType[]) {
    for (const storage of ['raw', 'typed'] as const) {
      it(`${dtype} ${storage}: cast: true converts f32 replacements to the stored dtype`, async () => {
        const dir = freshDir();
        const model = writeMlp(dir, 'in.onnx', { dtype, storage });
        const nw = mlpWeights(11);
        const out = path.join(dir, 'out.onnx');
        const e = await rejection(patchOnnx({ model, out, replacements: f32Tensors(nw) }));
        expect(e.code).toBe('TENSOR_DTYPE_MISMATCH');
        expect(e.where).toMatchObject({ file: model, tensor: 'W1' });
        expect(existsSync(out)).toBe(false);
        await patchOnnx({ model, out, replacements: f32Tensors(nw), cast: true });
        await using r = await openOnnx(out);
        expect(r.tensors().map((t) => t.dtype)).toEqual([dtype, dtype, dtype, dtype]);
        await expectOrtMatches(out, roundWeights(dtype, nw));
      });
    }
  }
});

describe('patchOnnx: external data', () => {
  it('inline -> external: moved TensorProtos gain external_data, offsets are page-aligned, ORT loads by path', async () => {
    const dir = freshDir();
    const model = writeMlp(dir, 'in.onnx');
    const nw = mlpWeights(3);
    const out = path.join(dir, 'out.onnx');
    const res = await patchOnnx({
      model,
      out,
      replacements: f32Tensors({ b2: nw.b2 }),
      external: true,
      externalMinTensorBytes: 0,
    });
    expect(res.externalData).toBe(path.join(dir, 'out.onnx.data'));
    const mb = decodeModel(out);
    for (const t of mb.graph!.initializer) {
      expect(t.dataLocation).toBe(TensorProto_DataLocation.EXTERNAL);
      const kv = Object.fromEntries(t.externalData.map((e) => [e.key, e.value]));
      expect(kv['location']).toBe('out.onnx.data');
      expect(Number(kv['offset']) % 4096).toBe(0);
      expect(t.rawData.length).toBe(0);
    }
    expect(equals(ModelProtoSchema, withoutData(decodeModel(model)), withoutData(mb))).toBe(true);
    await using r = await openOnnx(out);
    expect(r.info('W1').file).toBe(res.externalData);
    await expectOrtMatches(out, { ...mlpWeights(1), b2: nw.b2 });
  });

  it('small tensors stay inline below externalMinTensorBytes; no data file when nothing moves', async () => {
    const dir = freshDir();
    const model = writeMlp(dir, 'in.onnx');
    const out = path.join(dir, 'out.onnx');
    const res = await patchOnnx({ model, out, replacements: new Map(), external: true, externalMinTensorBytes: 256 });
    const mb = decodeModel(out);
    expect(mb.graph!.initializer.map((t) => t.dataLocation)).toEqual([1, 0, 1, 0]); // W1, W2 (512, 256 bytes) moved
    expect(res.externalData).toBeDefined();
    await expectOrtMatches(out, mlpWeights(1));
    const out2 = path.join(dir, 'out2.onnx');
    const res2 = await patchOnnx({ model, out: out2, replacements: new Map(), external: true });
    expect(res2.externalData).toBeUndefined();
    expect(sha(out2)).toBe(sha(model));
  });

  it('external -> inline and external -> external (a new data file; the input data file is untouched)', async () => {
    const dir = freshDir();
    const model = writeMlp(dir, 'in.onnx', { storage: 'external', externalName: 'in.bin', dtype: 'BF16' });
    const dataBefore = sha(path.join(dir, 'in.bin'));
    const nw = mlpWeights(21);
    const inline = path.join(dir, 'inline.onnx');
    await patchOnnx({ model, out: inline, replacements: f32Tensors({ W1: nw.W1 }), cast: true, external: false });
    const mi = decodeModel(inline);
    expect(mi.graph!.initializer.every((t) => t.dataLocation === TensorProto_DataLocation.DEFAULT)).toBe(true);
    await expectOrtMatches(inline, roundWeights('BF16', { ...mlpWeights(1), W1: nw.W1 }));

    const sub = path.join(dir, 'elsewhere');
    mkdirSync(sub);
    const ext = path.join(sub, 'ext.onnx');
    const res = await patchOnnx({
      model,
      out: ext,
      replacements: f32Tensors({ W2: nw.W2 }),
      cast: true,
      external: true,
      externalDataName: 'weights.bin',
    });
    expect(res.externalData).toBe(path.join(sub, 'weights.bin'));
    await expectOrtMatches(ext, roundWeights('BF16', { ...mlpWeights(1), W2: nw.W2 }));
    expect(sha(path.join(dir, 'in.bin'))).toBe(dataBefore);
    expect(equals(ModelProtoSchema, withoutData(decodeModel(model)), withoutData(decodeModel(ext)))).toBe(true);
  });

  it("'auto' goes external above the (injectable) threshold", async () => {
    const dir = freshDir();
    const model = writeMlp(dir, 'in.onnx');
    const total = (8 * 16 + 16 + 16 * 4 + 4) * 4;
    const below = await patchOnnx({
      model,
      out: path.join(dir, 'a.onnx'),
      replacements: new Map(),
      externalThresholdBytes: total,
      externalMinTensorBytes: 0,
    });
    expect(below.externalData).toBeUndefined();
    const above = await patchOnnx({
      model,
      out: path.join(dir, 'b.onnx'),
      replacements: new Map(),
      external: 'auto',
      externalThresholdBytes: total - 1,
      externalMinTensorBytes: 0,
    });
    expect(above.externalData).toBe(path.join(dir, 'b.onnx.data'));
    await expectOrtMatches(path.join(dir, 'b.onnx'), mlpWeights(1));
  });

  it('refuses an inline output above the protobuf limit (injectable) with ONNX_TOO_LARGE', async () => {
    const dir = freshDir();
    const model = writeMlp(dir, 'in.onnx', { storage: 'external' });
    const out = path.join(dir, 'out.onnx');
    const e = await rejection(patchOnnx({ model, out, replacements: new Map(), external: false, inlineLimitBytes: 500 }));
    expect(e.code).toBe('ONNX_TOO_LARGE');
    expect(e.where.file).toBe(out);
    expect(existsSync(out)).toBe(false);
  });
});

describe('patchOnnx: typed fields and non-float initializers', () => {
  it('typed-field F16 model moved to external data keeps its values (unreplaced tensors streamed)', async () => {
    const dir = freshDir();
    const model = writeMlp(dir, 'in.onnx', { dtype: 'F16', storage: 'typed' });
    const out = path.join(dir, 'out.onnx');
    const res = await patchOnnx({ model, out, replacements: new Map(), external: true, externalMinTensorBytes: 0 });
    expect(res.replaced).toEqual([]);
    const mb = decodeModel(out);
    expect(mb.graph!.initializer.every((t) => t.int32Data.length === 0 && t.dataLocation === 1)).toBe(true);
    await expectOrtMatches(out, roundWeights('F16', mlpWeights(1)));
  });

  it('an int64 initializer is carried verbatim; casting a float replacement into it is refused with where', async () => {
    const dir = freshDir();
    const extra = [{ name: 'steps', dataType: 7, dims: [2n], int64Data: [3n, -4n] }];
    const model = writeMlp(dir, 'in.onnx', { extra });
    const out = path.join(dir, 'out.onnx');
    const e = await rejection(
      patchOnnx({ model, out, cast: true, replacements: new Map([['steps', makeTensor('F32', [2], new Float32Array(2))]]) }),
    );
    expect(e.code).toBe('DTYPE_UNSUPPORTED');
    expect(e.where).toMatchObject({ file: model, tensor: 'steps' });
    const nw = mlpWeights(8);
    await patchOnnx({ model, out, replacements: f32Tensors({ W1: nw.W1 }) });
    await using r = await openOnnx(out);
    expect(Array.from((await r.read('steps')).data as BigInt64Array)).toEqual([3n, -4n]);
    expect(decodeModel(out).graph!.initializer[4]!.int64Data).toEqual([3n, -4n]);
    await expectOrtMatches(out, { ...mlpWeights(1), W1: nw.W1 });
  });
});

describe('patchOnnx: refusals', () => {
  it('unknown names, shape and dtype mismatches name the tensor; nothing is written', async () => {
    const dir = freshDir();
    const model = writeMlp(dir, 'in.onnx');
    const out = path.join(dir, 'out.onnx');
    const e1 = await rejection(
      patchOnnx({ model, out, replacements: new Map([['nope', makeTensor('F32', [1], new Float32Array(1))]]) }),
    );
    expect(e1.code).toBe('TENSOR_NOT_FOUND');
    expect(e1.where).toMatchObject({ file: model, tensor: 'nope' });
    const e2 = await rejection(
      patchOnnx({ model, out, replacements: new Map([['b1', makeTensor('F32', [4, 4], new Float32Array(16))]]) }),
    );
    expect(e2.code).toBe('TENSOR_SHAPE_MISMATCH');
    expect(e2.where).toMatchObject({ file: model, tensor: 'b1' });
    const e3 = await rejection(
      patchOnnx({ model, out, replacements: new Map([['b1', makeTensor('F16', [16], new Uint16Array(16))]]) }),
    );
    expect(e3.code).toBe('TENSOR_DTYPE_MISMATCH');
    // a function that fails late: no output, no temp files
    const e4 = await rejection(
      patchOnnx({
        model,
        out,
        external: true,
        externalMinTensorBytes: 0,
        replacements: async (n) => (n === 'b2' ? makeTensor('F32', [5], new Float32Array(5)) : undefined),
      }),
    );
    expect(e4.code).toBe('TENSOR_SHAPE_MISMATCH');
    expect(e4.where.tensor).toBe('b2');
    expect(readdirSync(dir).sort()).toEqual(['in.onnx']);
  });

  it('refuses to write over the input or its data files', async () => {
    const dir = freshDir();
    const model = writeMlp(dir, 'in.onnx', { storage: 'external', externalName: 'in.bin' });
    const e1 = await rejection(patchOnnx({ model, out: model, replacements: new Map() }));
    expect(e1.code).toBe('OUT_INVALID');
    const e2 = await rejection(
      patchOnnx({ model, out: path.join(dir, 'o.onnx'), replacements: new Map(), external: true, externalDataName: 'in.bin' }),
    );
    expect(e2.code).toBe('OUT_INVALID');
    const e3 = await rejection(
      patchOnnx({ model, out: path.join(dir, 'o.onnx'), replacements: new Map(), externalDataName: '../x.bin' }),
    );
    expect(e3.code).toBe('USAGE');
  });
});
