// Evaluation datasets: an inputs tensor [N, ...] (F32/F16/BF16/F64, read as f32) and an integer labels tensor [N],
// from one safetensors file (native) or a pair of .npy files. Everything is validated when opened (tensors present,
// dtypes, N agreeing) and against a model before any run (input shape, label range); rows are read in ranges so a
// batch never loads the whole set. No onnxruntime-node here.

import * as fsp from 'node:fs/promises';
import * as nodePath from 'node:path';
import { EvalError, WeightkitError } from '../errors.js';
import type { OnnxValueInfo } from '../io/onnx/reader.js';
import { openSafetensors, type SafetensorsReader } from '../io/safetensors/reader.js';
import { toF32 } from '../tensor/convert.js';
import type { DType, TensorData } from '../tensor/dtype.js';
import { formatShape, rowNumel } from '../tensor/tensor.js';
import { openNpy, type NpyFile } from './npy.js';

/** Default tensor names (safetensors) and file stems (`<name>.npy` in a folder). */
export const DEFAULT_INPUT_NAME = 'inputs';
export const DEFAULT_LABEL_NAME = 'labels';

const INPUT_DTYPES: readonly DType[] = ['F32', 'F16', 'BF16', 'F64'];
const LABEL_DTYPES: readonly DType[] = ['I64', 'I32', 'I16', 'I8', 'U64', 'U32', 'U16', 'U8'];

/** Two .npy files given explicitly. */
export interface NpyPairSource {
  inputs: string;
  labels: string;
}

export interface OpenDatasetOptions {
  /** Inputs tensor name (safetensors) or file stem (.npy folder); default `inputs`. */
  input?: string;
  /** Labels tensor name (safetensors) or file stem (.npy folder); default `labels`. */
  label?: string;
}

export interface DatasetTensor {
  /** The file holding the tensor. */
  readonly file: string;
  /** Tensor name (safetensors) or file stem (.npy). */
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}

export interface Dataset extends AsyncDisposable {
  readonly format: 'safetensors' | 'npy';
  /** The dataset as given (file, folder, or `inputs.npy,labels.npy`). */
  readonly path: string;
  /** Number of examples N. */
  readonly count: number;
  readonly inputs: DatasetTensor;
  readonly labels: DatasetTensor;
  /** Input rows [rowStart, rowEnd) as f32 (optionally into a reused buffer; the result is then a view of it). */
  readInputs(rowStart: number, rowEnd: number, into?: Float32Array): Promise<Float32Array>;
  /** Labels [rowStart, rowEnd) as exact numbers (integers up to 2^53). */
  readLabels(rowStart: number, rowEnd: number): Promise<Float64Array>;
  close(): Promise<void>;
}

function dataError(message: string, file: string, tensor?: string, hint?: string): EvalError {
  const where = tensor === undefined ? { file } : { file, tensor };
  return new EvalError('EVAL_DATA', message, hint === undefined ? { where } : { where, hint });
}

function labelsToF64(data: TensorData): Float64Array {
  const out = new Float64Array(data.length);
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    for (let i = 0; i < data.length; i++) out[i] = Number(data[i]!);
  } else {
    out.set(data as ArrayLike<number>);
  }
  return out;
}

/** Shared validation of the two tensors' dtypes, ranks and counts. */
function checkPair(inputs: DatasetTensor, labels: DatasetTensor): number {
  if (!INPUT_DTYPES.includes(inputs.dtype)) {
    throw dataError(
      `inputs tensor '${inputs.name}' is ${inputs.dtype}; inputs must be float (${INPUT_DTYPES.join(', ')})`,
      inputs.file,
      inputs.name,
    );
  }
  if (!LABEL_DTYPES.includes(labels.dtype)) {
    throw dataError(
      `labels tensor '${labels.name}' is ${labels.dtype}; labels must be integer class indices (${LABEL_DTYPES.join(', ')})`,
      labels.file,
      labels.name,
    );
  }
  if (inputs.shape.length < 1) {
    throw dataError(`inputs tensor '${inputs.name}' is a scalar; expected [N, ...]`, inputs.file, inputs.name);
  }
  if (labels.shape.length !== 1) {
    throw dataError(`labels tensor '${labels.name}' has shape ${formatShape(labels.shape)}; expected [N]`, labels.file, labels.name);
  }
  const n = inputs.shape[0]!;
  if (labels.shape[0] !== n) {
    throw dataError(
      `inputs '${inputs.name}' hold ${n} examples but labels '${labels.name}' hold ${labels.shape[0]}`,
      labels.file,
      labels.name,
    );
  }
  if (n === 0) throw dataError('the dataset holds no examples', inputs.file, inputs.name);
  return n;
}

function checkRange(ds: { count: number; path: string }, rowStart: number, rowEnd: number): void {
  if (!(Number.isSafeInteger(rowStart) && Number.isSafeInteger(rowEnd) && rowStart >= 0 && rowStart <= rowEnd && rowEnd <= ds.count)) {
    throw dataError(`row range [${rowStart}, ${rowEnd}) is outside [0, ${ds.count}]`, ds.path);
  }
}

class SafetensorsDataset implements Dataset {
  readonly format = 'safetensors' as const;
  readonly count: number;
  constructor(
    readonly path: string,
    private readonly reader: SafetensorsReader,
    readonly inputs: DatasetTensor,
    readonly labels: DatasetTensor,
  ) {
    this.count = checkPair(inputs, labels);
  }
  async readInputs(rowStart: number, rowEnd: number, into?: Float32Array): Promise<Float32Array> {
    checkRange(this, rowStart, rowEnd);
    return this.reader.readF32(this.inputs.name, into === undefined ? { rowStart, rowEnd } : { rowStart, rowEnd, into });
  }
  async readLabels(rowStart: number, rowEnd: number): Promise<Float64Array> {
    checkRange(this, rowStart, rowEnd);
    return labelsToF64((await this.reader.read(this.labels.name, { rowStart, rowEnd })).data);
  }
  close(): Promise<void> {
    return this.reader.close();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

class NpyDataset implements Dataset {
  readonly format = 'npy' as const;
  readonly count: number;
  readonly inputs: DatasetTensor;
  readonly labels: DatasetTensor;
  constructor(
    readonly path: string,
    private readonly x: NpyFile,
    private readonly y: NpyFile,
    names: { input: string; label: string },
  ) {
    this.inputs = { file: x.file, name: names.input, dtype: x.dtype, shape: x.shape };
    this.labels = { file: y.file, name: names.label, dtype: y.dtype, shape: y.shape };
    this.count = checkPair(this.inputs, this.labels);
  }
  async readInputs(rowStart: number, rowEnd: number, into?: Float32Array): Promise<Float32Array> {
    checkRange(this, rowStart, rowEnd);
    const raw = await this.x.readRows(rowStart, rowEnd);
    const out = into === undefined ? undefined : into.subarray(0, raw.length);
    if (this.x.dtype === 'F32') {
      if (out === undefined) return raw as Float32Array;
      out.set(raw as Float32Array);
      return out;
    }
    return toF32(this.x.dtype, raw, out);
  }
  async readLabels(rowStart: number, rowEnd: number): Promise<Float64Array> {
    checkRange(this, rowStart, rowEnd);
    return labelsToF64(await this.y.readRows(rowStart, rowEnd));
  }
  async close(): Promise<void> {
    await this.x.close();
    await this.y.close();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

async function openSafetensorsDataset(file: string, names: { input: string; label: string }): Promise<Dataset> {
  const reader = await openSafetensors(file);
  try {
    const tensor = (name: string, role: string): DatasetTensor => {
      if (!reader.has(name)) {
        const have = reader.tensors().map((t) => t.name);
        throw dataError(
          `the dataset has no ${role} tensor '${name}'`,
          file,
          name,
          have.length > 0 ? `it holds: ${have.slice(0, 8).join(', ')}${have.length > 8 ? ', ...' : ''}` : 'it holds no tensors',
        );
      }
      const i = reader.info(name);
      return { file, name, dtype: i.dtype, shape: i.shape };
    };
    return new SafetensorsDataset(file, reader, tensor(names.input, 'inputs'), tensor(names.label, 'labels'));
  } catch (e) {
    await reader.close();
    throw e;
  }
}

async function openNpyDataset(path: string, files: NpyPairSource, names: { input: string; label: string }): Promise<Dataset> {
  const x = await openNpy(files.inputs);
  let y: NpyFile | undefined;
  try {
    y = await openNpy(files.labels);
    return new NpyDataset(path, x, y, names);
  } catch (e) {
    await x.close();
    await y?.close();
    throw e;
  }
}

async function isDirectory(p: string): Promise<boolean | undefined> {
  try {
    return (await fsp.stat(p)).isDirectory();
  } catch {
    return undefined;
  }
}

/**
 * Open a dataset: a `.safetensors` file (tensors `inputs` and `labels` unless renamed), a folder holding
 * `inputs.npy` and `labels.npy` (stems renamable), `inputs.npy,labels.npy` (two paths joined by a comma), or
 * `{ inputs, labels }` .npy paths. Errors: EVAL_DATA naming the file (and tensor) for anything missing or malformed.
 */
export async function openDataset(data: string | NpyPairSource, options: OpenDatasetOptions = {}): Promise<Dataset> {
  const names = { input: options.input ?? DEFAULT_INPUT_NAME, label: options.label ?? DEFAULT_LABEL_NAME };
  if (typeof data !== 'string') return openNpyDataset(`${data.inputs},${data.labels}`, data, names);
  const lower = data.toLowerCase();
  const parts = data.split(',');
  if (parts.length === 2 && parts.every((p) => p.toLowerCase().endsWith('.npy'))) {
    return openNpyDataset(data, { inputs: parts[0]!, labels: parts[1]! }, names);
  }
  const dir = await isDirectory(data);
  if (dir === undefined) throw dataError('no such dataset file or folder', data);
  if (dir) {
    const inputs = nodePath.join(data, `${names.input}.npy`);
    const labels = nodePath.join(data, `${names.label}.npy`);
    return openNpyDataset(data, { inputs, labels }, names);
  }
  if (lower.endsWith('.safetensors')) {
    try {
      return await openSafetensorsDataset(data, names);
    } catch (e) {
      if (e instanceof WeightkitError && e.code.startsWith('ST_')) {
        throw new EvalError('EVAL_DATA', `not a valid safetensors dataset: ${e.message}`, { where: e.where, cause: e });
      }
      throw e;
    }
  }
  if (lower.endsWith('.npy')) {
    throw dataError(
      'a .npy dataset needs two files, inputs and labels',
      data,
      undefined,
      "pass 'inputs.npy,labels.npy' or a folder holding inputs.npy and labels.npy",
    );
  }
  throw dataError('unsupported dataset format: expected a .safetensors file, a folder of .npy files, or x.npy,y.npy', data);
}

/** What the model needs from a dataset: a float32 input and the number of classes (if known before running). */
export interface ModelIo {
  readonly file: string;
  readonly input: OnnxValueInfo;
  readonly output: OnnxValueInfo;
}

/** Checks of a dataset against a model's input; returns the model's fixed batch size if its first dim is a number. */
export function checkDatasetInput(ds: Dataset, model: ModelIo): { fixedBatch: number | undefined } {
  const { input } = model;
  if (input.dtype !== 'F32') {
    throw new EvalError(
      'EVAL_SHAPE',
      `model input '${input.name}' is ${input.dtype ?? `ONNX type ${input.elemType}`}; evaluation feeds float32`,
      { where: { file: model.file, tensor: input.name } },
    );
  }
  const actual = ds.inputs.shape;
  const expected = input.shape;
  const fmt = (s: readonly (number | string)[]) => `[${s.join(', ')}]`;
  if (expected !== undefined) {
    const mismatch =
      expected.length !== actual.length ||
      expected.some((d, i) => i > 0 && typeof d === 'number' && d !== actual[i]);
    if (mismatch) {
      throw new EvalError(
        'EVAL_SHAPE',
        `model input '${input.name}' expects ${fmt(expected)}, dataset inputs '${ds.inputs.name}' are ${formatShape(actual)}`,
        { where: { file: ds.inputs.file, tensor: ds.inputs.name } },
      );
    }
    const b = expected[0];
    if (typeof b === 'number' && b > 0) return { fixedBatch: b };
  }
  return { fixedBatch: undefined };
}

/** The number of classes from the model's output shape [N, C], or undefined if C is symbolic / unknown. */
export function staticClassCount(model: ModelIo): number | undefined {
  const s = model.output.shape;
  if (s === undefined) return undefined;
  if (s.length !== 2) {
    throw new EvalError('EVAL_SHAPE', `model output '${model.output.name}' has shape [${s.join(', ')}]; expected logits [N, C]`, {
      where: { file: model.file, tensor: model.output.name },
    });
  }
  return typeof s[1] === 'number' ? s[1] : undefined;
}

/** Labels chunk size for the range scan (elements). */
const LABEL_SCAN_ROWS = 1 << 16;

/** Throw EVAL_LABEL_RANGE at the first label outside [0, classes). Reads labels in chunks. */
export async function assertLabelsInRange(ds: Dataset, classes: number): Promise<void> {
  for (let start = 0; start < ds.count; start += LABEL_SCAN_ROWS) {
    const end = Math.min(ds.count, start + LABEL_SCAN_ROWS);
    const y = await ds.readLabels(start, end);
    for (let i = 0; i < y.length; i++) {
      const v = y[i]!;
      if (!(v >= 0 && v < classes)) {
        throw new EvalError(
          'EVAL_LABEL_RANGE',
          `label ${v} at index ${start + i} is outside [0, ${classes}) (the model has ${classes} classes)`,
          { where: { file: ds.labels.file, tensor: ds.labels.name, path: `${ds.labels.name}[${start + i}]` } },
        );
      }
    }
  }
}

/** f32 bytes of one input row (for batch sizing). */
export function inputRowBytes(ds: Dataset): number {
  return rowNumel([...ds.inputs.shape]) * 4;
}
