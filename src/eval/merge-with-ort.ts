// `merge` with the ONNX Runtime matrix-product backend for recipes whose methods need linear algebra (tsv, rtsvm,
// iso_c): creates the backend only when a stage needs it and disposes it afterwards. Lives in src/eval (the only
// importer of onnxruntime-node) so src/plan stays free of ORT.

import { checkOptions, loadRecipe, merge, type MergeOptions, type MergeResult } from '../plan/merge.js';
import type { OrtMatMulOptions } from './ort-matmul.js';

/** Whether any stage of a recipe uses a method that declares `linalg`. */
export async function recipeNeedsLinalg(recipePath: string, options: { lenient?: boolean } = {}): Promise<boolean> {
  const { stages } = await loadRecipe(recipePath, options);
  return stages.some((s) => s.method.linalg === true);
}

/**
 * Run a recipe like `merge`; when options.linalg is not given and a stage needs linear algebra, an ORT backend
 * (`createOrtMatMul(ort)`, default 2 threads) is created for the run and disposed at the end.
 */
export async function mergeWithOrt(recipePath: string, options: MergeOptions & { ort?: OrtMatMulOptions }): Promise<MergeResult> {
  const { ort, ...rest } = options;
  checkOptions(rest);
  if (rest.linalg !== undefined || !(await recipeNeedsLinalg(recipePath, rest))) return merge(recipePath, rest);
  // loaded here: the backend's graph builder pulls in the ONNX protobuf schema, which plain merges never need
  const { createOrtMatMul } = await import('./ort-matmul.js');
  const backend = await createOrtMatMul(ort ?? {});
  try {
    return await merge(recipePath, { ...rest, linalg: backend });
  } finally {
    await backend.dispose();
  }
}
