// `vector combine`: a linear combination Σ c_k·V_k of stored vectors (from an expression such as
// `0.5*a.safetensors + 0.5*b.safetensors - c.safetensors`, or explicit terms), streamed into a new vector file.
// All inputs must share a base fingerprint (unless forced) and agree on shapes; a tensor missing from some
// inputs is an error unless allowed (then it counts as zero there).

import { IoError, PlanError, UsageError, VectorError } from '../errors.js';
import { openCheckpointSink } from '../io/sink.js';
import type { TensorDecl } from '../io/types.js';
import { formatShape, shapesEqual } from '../tensor/tensor.js';
import type { DType } from '../tensor/dtype.js';
import { WEIGHTKIT_VERSION } from '../version.js';
import { formatCombination, parseVectorExpression, type LinearCombination } from './expression.js';
import { checkVectorDtype } from './extract.js';
import { encodeVectorMeta, VECTOR_FORMAT_VERSION, type VectorKind, type VectorMeta } from './format.js';
import { openVector, type VectorReader } from './reader.js';
import { runStream, type StreamJob, type StreamProgress } from './stream.js';

export interface CombineOptions {
  /** an expression over vector references; or give `terms` */
  expression?: string;
  terms?: ReadonlyArray<{ ref: string; coef: number }>;
  /** names usable in the expression for files (`tau_2016` -> path); other references are file paths */
  names?: Readonly<Record<string, string>>;
  /** a .safetensors file */
  out: string;
  dtype?: DType;
  /** combine vectors made on different bases */
  force?: boolean;
  /** a tensor missing from some inputs counts as zero there */
  allowMissing?: boolean;
  kind?: VectorKind;
  label?: string;
  overwrite?: boolean;
  budgetBytes?: number;
  signal?: AbortSignal;
  onProgress?: (p: StreamProgress) => void;
}

export interface CombineResult {
  out: string;
  expression: string;
  terms: Array<{ path: string; coef: number }>;
  tensors: number;
  warnings: string[];
}

function resolveCombination(o: CombineOptions): LinearCombination {
  if ((o.expression === undefined) === (o.terms === undefined)) throw new UsageError('USAGE', 'give either an expression or terms, not both');
  if (o.expression !== undefined) return parseVectorExpression(o.expression);
  const merged = new Map<string, number>();
  for (const t of o.terms!) {
    if (!Number.isFinite(t.coef)) throw new UsageError('USAGE', `coefficient of ${t.ref} must be a finite number (got ${t.coef})`);
    merged.set(t.ref, (merged.get(t.ref) ?? 0) + t.coef);
  }
  const terms = [...merged].filter(([, c]) => c !== 0).map(([ref, coef]) => ({ ref, coef, col: 1 }));
  if (terms.length === 0) throw new VectorError('VECTOR_EXPRESSION', 'the combination is zero: every coefficient cancels');
  return { terms };
}

/** Write Σ c_k·V_k as a new vector file. */
export async function combineVectors(o: CombineOptions): Promise<CombineResult> {
  const dtype = checkVectorDtype(o.dtype);
  if (!o.out.endsWith('.safetensors')) throw new UsageError('USAGE', `a vector is one .safetensors file; --out ${o.out} does not end in .safetensors`);
  const combo = resolveCombination(o);
  const warnings: string[] = [];
  const paths = combo.terms.map((t) => o.names?.[t.ref] ?? t.ref);
  const readers: VectorReader[] = [];
  try {
    for (let k = 0; k < paths.length; k++) {
      try {
        readers.push(await openVector(paths[k]!));
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (code === 'CKPT_NOT_FOUND' && /\s-\S|\S-\s|\S-\S/.test(combo.terms[k]!.ref) && o.expression !== undefined) {
          throw new IoError('CKPT_NOT_FOUND', `vector '${combo.terms[k]!.ref}' not found`, {
            where: { file: paths[k]!, col: combo.terms[k]!.col },
            hint: 'put spaces around a minus sign that subtracts: `a.safetensors - b.safetensors`',
          });
        }
        throw e;
      }
    }
    const fp = readers[0]!.meta.baseFingerprint;
    for (const r of readers.slice(1)) {
      if (r.meta.baseFingerprint !== fp) {
        if (!o.force) {
          throw new VectorError('VECTOR_BASE_MISMATCH', `vector ${r.path} was made on another base than ${readers[0]!.path}`, {
            where: { file: r.path },
            hint: 'pass --force to combine them anyway',
          });
        }
        warnings.push(`${r.path} was made on another base than ${readers[0]!.path}; combined anyway (--force)`);
      }
    }
    // the union of tensors, in first-seen order; shapes must agree
    const shapes = new Map<string, readonly number[]>();
    for (const r of readers) {
      for (const t of r.tensors()) {
        const s = shapes.get(t.name);
        if (s === undefined) shapes.set(t.name, t.shape);
        else if (!shapesEqual(s, t.shape)) {
          throw new PlanError('TENSOR_SHAPE_MISMATCH', `tensor '${t.name}' has shape ${formatShape(t.shape)} in ${r.path} but ${formatShape(s)} in another vector`, {
            where: { file: r.path, tensor: t.name },
          });
        }
      }
    }
    if (!o.allowMissing) {
      for (const r of readers) {
        for (const name of shapes.keys()) {
          if (!r.has(name)) {
            throw new PlanError('TENSOR_NOT_FOUND', `tensor '${name}' is not in vector ${r.path}`, {
              where: { file: r.path, tensor: name },
              hint: 'pass --allow-missing to count it as zero there',
            });
          }
        }
      }
    }
    const coefs = combo.terms.map((t) => t.coef);
    const decls: TensorDecl[] = [...shapes].map(([name, shape]) => ({ name, dtype, shape }));
    const jobs: StreamJob[] = decls.map((d) => {
      const members = readers.map((r, k) => (r.has(d.name) ? k : -1)).filter((k) => k >= 0);
      const c = members.map((k) => coefs[k]!);
      return {
        name: d.name,
        shape: d.shape,
        inputs: members.map((k) => ({ reader: readers[k]!, tensor: d.name })),
        outputs: [{ sink: 0, dtype }],
        emit(ins, outs, ch) {
          const out = outs[0] as Float32Array;
          for (let i = 0; i < ch.numel; i++) {
            let acc = 0;
            for (let k = 0; k < c.length; k++) acc += c[k]! * (ins[k] as Float32Array)[i]!;
            out[i] = acc;
          }
        },
      };
    });
    const kinds = new Set(readers.map((r) => r.meta.kind));
    const expression = formatCombination({ terms: combo.terms.map((t, k) => ({ ...t, ref: paths[k]! })) });
    const skipped = [...new Set(readers.flatMap((r) => r.meta.skipped ?? []))];
    const meta: VectorMeta = {
      version: VECTOR_FORMAT_VERSION,
      kind: o.kind ?? (kinds.size === 1 ? [...kinds][0]! : 'combination'),
      baseFingerprint: fp,
      expression,
      ...(readers[0]!.meta.base !== undefined ? { base: readers[0]!.meta.base } : {}),
      ...(o.label !== undefined ? { label: o.label } : {}),
      ...(skipped.length > 0 ? { skipped } : {}),
    };
    const sink = await openCheckpointSink(o.out, decls, {
      metadata: { ...encodeVectorMeta(meta), weightkit_version: WEIGHTKIT_VERSION },
      overwrite: o.overwrite,
      inputs: paths,
    });
    try {
      await runStream(jobs, { sinks: [sink], budgetBytes: o.budgetBytes, signal: o.signal, onProgress: o.onProgress });
      await sink.close();
    } catch (e) {
      await sink.abort();
      throw e;
    }
    return { out: o.out, expression, terms: paths.map((path, k) => ({ path, coef: coefs[k]! })), tensors: decls.length, warnings };
  } finally {
    for (const r of readers) await r.close();
  }
}
