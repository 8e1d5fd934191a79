// Small helpers for building ONNX graphs with @bufbuild/protobuf + onnx-buf (the zoo's MLP graph, the ORT matmul
// graphs, test and benchmark models): the ValueInfo type of a tensor with fixed and symbolic dimensions.

/** The `type` of a ValueInfoProto: a tensor of `elemType` (ONNX code; 1 = FLOAT) with numeric or named dims. */
export function tensorTypeProto(dims: readonly (number | string)[], elemType = 1) {
  return {
    value: {
      case: 'tensorType' as const,
      value: {
        elemType,
        shape: {
          dim: dims.map((d) =>
            typeof d === 'number'
              ? { value: { case: 'dimValue' as const, value: BigInt(d) } }
              : { value: { case: 'dimParam' as const, value: d } },
          ),
        },
      },
    },
  };
}
