// Which tensors two checkpoints share: the float tensors present in both with equal shapes take part in vector
// operations; integer/bool tensors are skipped (kept from the base when a model is written); a tensor on one side
// only is an error unless the caller allows it.

import { PlanError } from '../errors.js';
import type { CheckpointReader, TensorInfo } from '../io/types.js';
import { isFloatDType } from '../tensor/dtype.js';
import { formatShape, shapesEqual } from '../tensor/tensor.js';

export interface Pairing {
  /** float tensors in both, in the first checkpoint's order */
  shared: TensorInfo[];
  /** tensors of the first checkpoint that are not floats (or not floats on the other side) */
  skipped: string[];
  /** tensors present on one side only (only when allowMissing) */
  missing: string[];
}

export interface PairOptions {
  allowMissing?: boolean;
  /** the caller takes --allow-missing: a missing tensor's error suggests it (not for commands without the flag) */
  canAllowMissing?: boolean;
  /** how the two sides are called in messages, e.g. ['base', 'fine-tuned'] */
  roles?: readonly [string, string];
}

/** Match the tensors of `a` and `b` by name; shapes must agree. */
export function pairTensors(a: CheckpointReader, b: CheckpointReader, options: PairOptions = {}): Pairing {
  const [ra, rb] = options.roles ?? ['first', 'second'];
  const shared: TensorInfo[] = [];
  const skipped: string[] = [];
  const missing: string[] = [];
  for (const t of a.tensors()) {
    if (!b.has(t.name)) {
      if (!options.allowMissing) {
        throw new PlanError('TENSOR_NOT_FOUND', `tensor '${t.name}' of the ${ra} (${a.path}) is not in the ${rb} (${b.path})`, {
          where: { file: b.path, tensor: t.name },
          ...(options.canAllowMissing ? { hint: 'pass --allow-missing to leave such tensors out' } : {}),
        });
      }
      missing.push(t.name);
      continue;
    }
    const u = b.info(t.name);
    if (!isFloatDType(t.dtype) || !isFloatDType(u.dtype)) {
      skipped.push(t.name);
      continue;
    }
    if (!shapesEqual(t.shape, u.shape)) {
      throw new PlanError(
        'TENSOR_SHAPE_MISMATCH',
        `tensor '${t.name}' has shape ${formatShape(t.shape)} in the ${ra} but ${formatShape(u.shape)} in the ${rb}`,
        { where: { file: b.path, tensor: t.name } },
      );
    }
    shared.push(t);
  }
  for (const u of b.tensors()) {
    if (a.has(u.name)) continue;
    if (!options.allowMissing) {
      throw new PlanError('TENSOR_NOT_FOUND', `tensor '${u.name}' of the ${rb} (${b.path}) is not in the ${ra} (${a.path})`, {
        where: { file: a.path, tensor: u.name },
        ...(options.canAllowMissing ? { hint: 'pass --allow-missing to leave such tensors out' } : {}),
      });
    }
    missing.push(u.name);
  }
  return { shared, skipped, missing };
}

/** Refuse a pairing with no float tensor in common: an output of nothing would look like a result. */
export function requireShared(shared: readonly unknown[], what: string, file: string): void {
  if (shared.length === 0) throw new PlanError('TENSOR_NOT_FOUND', `${what} share no float tensor: there is nothing to compute`, { where: { file } });
}
