// Experiment 4, robust weight signatures (Cai et al.): the signature of the corruption-robust fine-tune relative to
// the clean one (extractSignature, automatic shallow-layer selection), patched onto the clean model at scale 1, then
// removed again with the undo record; clean and corrupted test accuracy of every model, and whether the removal
// restored the clean model's tensors byte for byte. Prints nothing; must not import src/cli.

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { openCheckpointPath } from '../../io/open.js';
import { applyVectors, removeVectors } from '../../vectors/apply.js';
import { extractSignature, type LayerRow } from '../../vectors/signature.js';
import type { DemoContext } from './context.js';

export interface RobustnessRow {
  name: string;
  detail: string;
  /** test accuracy on the clean and on the corrupted task */
  clean: number;
  corrupted: number;
}

export interface RobustnessResult {
  cleanTask: string;
  corruptedTask: string;
  /** tensors the signature holds (the selected shallow units) */
  selected: string[];
  layers: LayerRow[];
  scale: number;
  /** every tensor of the model after removal equals the clean model's, byte for byte */
  restoredExactly: boolean;
  /** elements the undo record had to correct */
  undoEntries: number;
  rows: RobustnessRow[];
}

/** Whether two checkpoints hold the same tensor names, dtypes, shapes and bytes. */
export async function sameTensors(a: string, b: string): Promise<boolean> {
  const ra = await openCheckpointPath(a);
  try {
    const rb = await openCheckpointPath(b);
    try {
      const ta = ra.tensors();
      if (ta.length !== rb.tensors().length) return false;
      for (const t of ta) {
        if (!rb.has(t.name)) return false;
        const u = rb.info(t.name);
        if (u.dtype !== t.dtype || u.shape.join(',') !== t.shape.join(',')) return false;
        if (!Buffer.from(await ra.readBytes(t.name)).equals(Buffer.from(await rb.readBytes(t.name)))) return false;
      }
      return true;
    } finally {
      await rb.close();
    }
  } finally {
    await ra.close();
  }
}

export async function runRobustness(ctx: DemoContext, options: { scale?: number } = {}): Promise<RobustnessResult> {
  const spec = ctx.zoo.experiments.robustness;
  const scale = options.scale ?? 1;
  const dir = join(ctx.out, 'robustness');
  await mkdir(dir, { recursive: true });
  const pre = ctx.model(spec.pre);
  const clean = ctx.model(spec.clean);
  const robust = ctx.model(spec.robust);
  const signature = join(dir, 'signature.safetensors');
  const sig = await extractSignature({ pre, clean, robust, out: signature, layers: 'auto', overwrite: true });
  const patched = join(dir, 'clean+signature.safetensors');
  const applied = await applyVectors({ base: clean, vectors: [{ path: signature, scale }], out: patched, overwrite: true });
  const removed = join(dir, 'clean+signature-signature.safetensors');
  await removeVectors({ model: patched, vectors: [{ path: signature, scale }], out: removed, exact: true, overwrite: true });
  const restoredExactly = await sameTensors(removed, clean);

  const row = async (name: string, detail: string, weights: string): Promise<RobustnessRow> => ({
    name,
    detail,
    clean: await ctx.accuracy(weights, spec.cleanTask, 'test'),
    corrupted: await ctx.accuracy(weights, spec.corruptedTask, 'test'),
  });
  const rows = [
    await row(spec.pre, 'pretrained (both fine-tunes start here)', pre),
    await row(spec.clean, 'fine-tuned on clean digits', clean),
    await row(`${spec.clean} + signature`, `patched at scale ${scale}`, patched),
    await row('after removal', restoredExactly ? 'signature removed: bytes equal the clean model' : 'signature removed (NOT byte-exact)', removed),
    await row(spec.robust, 'fine-tuned on corrupted digits', robust),
  ];
  return {
    cleanTask: spec.cleanTask,
    corruptedTask: spec.corruptedTask,
    selected: sig.selected,
    layers: sig.table,
    scale,
    restoredExactly,
    undoEntries: applied.undo?.entries ?? 0,
    rows,
  };
}
