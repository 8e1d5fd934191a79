// The geometric merge methods (mergekit names): slerp, nuslerp, multislerp, karcher, model_stock, arcee_fusion.
// Each is a MethodSpec (parameters as data) plus a chunked TensorMerger; this module only lists them for the
// registry. Imports nothing but the method modules.

import type { MergeMethod } from '../types.js';
import { ARCEE_FUSION } from './arcee-fusion.js';
import { KARCHER } from './karcher.js';
import { MODEL_STOCK } from './model-stock.js';
import { MULTISLERP } from './multislerp.js';
import { NUSLERP } from './nuslerp.js';
import { SLERP } from './slerp.js';

export { ARCEE_FUSION, KARCHER, MODEL_STOCK, MULTISLERP, NUSLERP, SLERP };

export const GEOMETRIC_METHODS: readonly MergeMethod[] = [SLERP, NUSLERP, MULTISLERP, KARCHER, MODEL_STOCK, ARCEE_FUSION];
