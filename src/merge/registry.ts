// The explicit list of merge methods (no side-effect registration). The catalog drives recipe validation,
// `weightkit methods`, the docs and the plan.

import { UsageError } from '../errors.js';
import type { MethodCatalog } from '../recipe/validate.js';
import { didYouMean } from '../recipe/suggest.js';
import { GEOMETRIC_METHODS } from './methods/geometric.js';
import { GTA_METHODS } from './methods/gta.js';
import { ISO_CTS } from './methods/iso-cts.js';
import { KNOTS } from './methods/knots.js';
import { SVD_METHODS } from './methods/tsv.js';
import type { MergeMethod } from './types.js';

export const METHODS: readonly MergeMethod[] = [...GTA_METHODS, ...GEOMETRIC_METHODS, ...SVD_METHODS, ISO_CTS, KNOTS];

const BY_NAME: ReadonlyMap<string, MergeMethod> = new Map(METHODS.map((m) => [m.name, m]));

export function methodCatalog(): MethodCatalog {
  return BY_NAME;
}

export function getMethod(name: string): MergeMethod {
  const m = BY_NAME.get(name);
  if (!m) throw new UsageError('USAGE', `unknown merge method '${name}'${didYouMean(name, BY_NAME.keys())}`);
  return m;
}
