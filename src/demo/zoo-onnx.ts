// The demo zoo's ONNX graph: an MLP `input` [batch, D] -> (Gemm transB=1 -> Relu)* -> Gemm -> `logits` [batch, C],
// whose initializers carry the Hugging Face names of the safetensors checkpoints (`layers.i.weight` [out, in],
// `layers.i.bias` [out]), so any zoo checkpoint patches in by name. Deterministic bytes for the same weights.
// Must not import onnxruntime-node or tfjs.

import { create, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import { ModelProtoSchema, NodeProtoSchema, TensorProtoSchema } from 'onnx-buf';
import { tensorTypeProto } from '../io/onnx/build.js';

export const ONNX_INPUT_NAME = 'input';
export const ONNX_OUTPUT_NAME = 'logits';

/** One dense layer's weights in the checkpoint layout: weight [out, in] row-major, bias [out]. */
export interface DenseLayer {
  readonly weight: Float32Array;
  readonly bias: Float32Array;
  readonly inFeatures: number;
  readonly outFeatures: number;
}

export function layerWeightName(i: number): string {
  return `layers.${i}.weight`;
}
export function layerBiasName(i: number): string {
  return `layers.${i}.bias`;
}

function f32Bytes(v: Float32Array): Uint8Array<ArrayBuffer> {
  const copy = Float32Array.from(v);
  return new Uint8Array(copy.buffer, 0, copy.byteLength);
}

/** Build the graph for these layers (the last one is the classification head, no activation). */
export function buildMlpOnnx(layers: readonly DenseLayer[], docString: string): Uint8Array {
  const initializer: MessageInitShape<typeof TensorProtoSchema>[] = [];
  const node: MessageInitShape<typeof NodeProtoSchema>[] = [];
  let current = ONNX_INPUT_NAME;
  layers.forEach((l, i) => {
    const w = layerWeightName(i);
    const b = layerBiasName(i);
    initializer.push(
      { name: w, dataType: 1, dims: [BigInt(l.outFeatures), BigInt(l.inFeatures)], rawData: f32Bytes(l.weight) },
      { name: b, dataType: 1, dims: [BigInt(l.outFeatures)], rawData: f32Bytes(l.bias) },
    );
    const last = i === layers.length - 1;
    const gemmOut = last ? ONNX_OUTPUT_NAME : `layers.${i}.linear`;
    node.push({
      opType: 'Gemm',
      name: `layers.${i}`,
      input: [current, w, b],
      output: [gemmOut],
      attribute: [{ name: 'transB', type: 2, i: 1n }],
    });
    if (!last) {
      const act = `layers.${i}.relu`;
      node.push({ opType: 'Relu', name: act, input: [gemmOut], output: [act] });
      current = act;
    }
  });
  const model = create(ModelProtoSchema, {
    irVersion: 8n,
    producerName: 'weightkit-zoo',
    producerVersion: '1',
    docString,
    opsetImport: [{ domain: '', version: 17n }],
    graph: {
      name: 'zoo-mlp',
      node,
      initializer,
      input: [{ name: ONNX_INPUT_NAME, type: tensorTypeProto(['batch', layers[0]!.inFeatures]) }],
      output: [{ name: ONNX_OUTPUT_NAME, type: tensorTypeProto(['batch', layers[layers.length - 1]!.outFeatures]) }],
    },
  });
  return toBinary(ModelProtoSchema, model);
}
