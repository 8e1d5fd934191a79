// Numbers that show what a merge did to the demo family: per block (embeddings, each layer's attention and MLP,
// lm_head, all norms) how far the merged model moved from the base, how much of each fine-tune's task vector it
// kept, how far it is from each fine-tune, and how many entries equal the base exactly. Streams tensor by tensor
// through the checkpoint readers, f64 accumulators. Prints nothing; must not import src/cli.

import { openCheckpointPath } from '../io/open.js';
import type { CheckpointReader } from '../io/types.js';
import type { ParamValue } from '../recipe/spec.js';
import type { MergePlan } from '../plan/plan.js';
import { classifyTensor } from './family.js';

export interface ModelStats {
  name: string;
  /** ‖X − B‖ over the block: the size of this model's task vector */
  taskNorm: number;
  /** ⟨M − B, X − B⟩ / ‖X − B‖²: 1 = the merge kept all of this task vector, 0 = none of it */
  kept: number;
  /** ‖M − X‖ / ‖B‖: distance of the merge from this model, in the units of `moved` */
  distance: number;
}

export interface BlockStats {
  /** `embed`, `L0 attn`, `L0 mlp`, ..., `lm_head`, `norms` */
  block: string;
  numel: number;
  /** ‖M − B‖ / ‖B‖ */
  moved: number;
  /** fraction of entries of M exactly equal to the base */
  equalToBase: number;
  models: ModelStats[];
}

export interface Comparison {
  blocks: BlockStats[];
  /** every block but `norms` (weights near 1 that would dominate every ratio) */
  total: BlockStats;
}

interface Acc {
  numel: number;
  equal: number;
  base2: number;
  moved2: number;
  task2: number[];
  dot: number[];
  dist2: number[];
}

function newAcc(k: number): Acc {
  return { numel: 0, equal: 0, base2: 0, moved2: 0, task2: new Array<number>(k).fill(0), dot: new Array<number>(k).fill(0), dist2: new Array<number>(k).fill(0) };
}

/**
 * The report block of a tensor name: `embed`, `L<n> attn`, `L<n> mlp`, `lm_head`, or `norms` for every RMSNorm
 * weight (they sit near 1 and would otherwise dominate the norm of the small blocks they belong to).
 */
export function blockOf(name: string): string {
  const c = classifyTensor(name);
  if (c.norm) return 'norms';
  if (c.layer !== undefined) return `L${c.layer} ${c.module}`;
  return c.module === 'embed' ? 'embed' : 'lm_head';
}

function blockOrder(a: string, b: string): number {
  const rank = (s: string): [number, number, string] => {
    if (s === 'embed') return [0, 0, ''];
    if (s === 'lm_head') return [2, 0, ''];
    if (s === 'norms') return [3, 0, ''];
    const m = /^L(\d+) (\w+)$/.exec(s);
    return m ? [1, Number(m[1]), m[2]!] : [4, 0, s];
  };
  const [x1, x2, x3] = rank(a);
  const [y1, y2, y3] = rank(b);
  return x1 - y1 || x2 - y2 || (x3 < y3 ? -1 : x3 > y3 ? 1 : 0);
}

function finish(block: string, a: Acc, names: readonly string[]): BlockStats {
  return {
    block,
    numel: a.numel,
    moved: a.base2 > 0 ? Math.sqrt(a.moved2 / a.base2) : 0,
    equalToBase: a.numel > 0 ? a.equal / a.numel : 0,
    models: names.map((name, k) => ({
      name,
      taskNorm: Math.sqrt(a.task2[k]!),
      kept: a.task2[k]! > 0 ? a.dot[k]! / a.task2[k]! : 0,
      distance: a.base2 > 0 ? Math.sqrt(a.dist2[k]! / a.base2) : 0,
    })),
  };
}

function addInto(total: Acc, a: Acc): void {
  total.numel += a.numel;
  total.equal += a.equal;
  total.base2 += a.base2;
  total.moved2 += a.moved2;
  for (let k = 0; k < a.task2.length; k++) {
    total.task2[k] = total.task2[k]! + a.task2[k]!;
    total.dot[k] = total.dot[k]! + a.dot[k]!;
    total.dist2[k] = total.dist2[k]! + a.dist2[k]!;
  }
}

/**
 * Compare a merged checkpoint with the base and the given models (folders or files), over the tensors all of them
 * hold with the same shape. Reads one tensor of each model at a time.
 */
export async function compareWithFamily(merged: string, base: string, models: readonly { name: string; path: string }[]): Promise<Comparison> {
  const readers: CheckpointReader[] = [];
  try {
    const m = await openCheckpointPath(merged);
    readers.push(m);
    const b = await openCheckpointPath(base);
    readers.push(b);
    const xs: CheckpointReader[] = [];
    for (const x of models) {
      const r = await openCheckpointPath(x.path);
      readers.push(r);
      xs.push(r);
    }
    const accs = new Map<string, Acc>();
    for (const t of m.tensors()) {
      if (!b.has(t.name) || xs.some((x) => !x.has(t.name))) continue;
      const same = (r: CheckpointReader): boolean => r.info(t.name).numel === t.numel;
      if (!same(b) || !xs.every(same)) continue;
      const block = blockOf(t.name);
      let a = accs.get(block);
      if (!a) accs.set(block, (a = newAcc(xs.length)));
      const mv = await m.readF32(t.name);
      const bv = await b.readF32(t.name);
      const n = t.numel;
      let base2 = 0;
      let moved2 = 0;
      let equal = 0;
      for (let i = 0; i < n; i++) {
        const bi = bv[i]!;
        const d = mv[i]! - bi;
        base2 += bi * bi;
        moved2 += d * d;
        if (d === 0) equal++;
      }
      a.numel += n;
      a.base2 += base2;
      a.moved2 += moved2;
      a.equal += equal;
      for (const [k, x] of xs.entries()) {
        const xv = await x.readF32(t.name);
        let task2 = 0;
        let dot = 0;
        let dist2 = 0;
        for (let i = 0; i < n; i++) {
          const bi = bv[i]!;
          const tk = xv[i]! - bi;
          const mk = mv[i]! - bi;
          const e = mv[i]! - xv[i]!;
          task2 += tk * tk;
          dot += tk * mk;
          dist2 += e * e;
        }
        a.task2[k] = a.task2[k]! + task2;
        a.dot[k] = a.dot[k]! + dot;
        a.dist2[k] = a.dist2[k]! + dist2;
      }
    }
    const names = models.map((x) => x.name);
    const total = newAcc(xs.length);
    const blocks = [...accs.keys()].sort(blockOrder).map((k) => {
      if (k !== 'norms') addInto(total, accs.get(k)!);
      return finish(k, accs.get(k)!, names);
    });
    return { blocks, total: finish('matrices', total, names) };
  } finally {
    for (const r of readers) await r.close();
  }
}

/**
 * The value a plan resolved for a parameter in each report block, taken from the block's first tensor (gradients
 * and filters show up here; for `norms` that is layer 0's input norm). `model` selects a per-model parameter by input position
 * (0 = first non-base input); without it the global parameter is read.
 */
export function planParamByBlock(plan: MergePlan, param: string, model?: number): Map<string, ParamValue | undefined> {
  const out = new Map<string, ParamValue | undefined>();
  const tensors = [...plan.tensors].sort((a, b) => blockOrder(blockOf(a.name), blockOf(b.name)));
  for (const t of tensors) {
    const block = blockOf(t.name);
    if (out.has(block)) continue;
    const params = model === undefined ? t.params : t.modelParams[model];
    out.set(block, params?.[param] as ParamValue | undefined);
  }
  return out;
}
