// Robust weight signatures: the part of a corruption-robust fine-tune's change that the clean fine-tune lacks, kept
// for the shallow layers, patched onto the clean model, then removed again byte for byte.
// Run: npx tsx examples/04-robust-signature.ts

import { join } from 'node:path';
import { applyVectors, evaluate, extractSignature, openCheckpoint, removeVectors } from '../src/index.js';
import { openExampleZoo, pct } from './zoo.js';

const { zoo, graph, model, data, out } = await openExampleZoo('04-robust-signature');
const { pre, clean, robust, cleanTask, corruptedTask } = zoo.experiments.robustness;

const signature = join(out, 'signature.safetensors');
const sig = await extractSignature({ pre: model(pre), clean: model(clean), robust: model(robust), out: signature, layers: 'auto' });
console.log(`signature holds ${sig.selected.join(', ')}`);

const patched = join(out, 'patched.safetensors');
await applyVectors({ base: model(clean), vectors: [{ path: signature, scale: 1 }], out: patched }); // also writes an undo record
const restored = join(out, 'restored.safetensors');
const removal = await removeVectors({ model: patched, vectors: [{ path: signature, scale: 1 }], out: restored, exact: true });

for (const [name, weights] of [[clean, model(clean)], ['clean + signature', patched], ['signature removed', restored], [robust, model(robust)]] as const) {
  const c = await evaluate({ model: graph, weights, data: data(cleanTask, 'test') });
  const k = await evaluate({ model: graph, weights, data: data(corruptedTask, 'test') });
  console.log(`${name.padEnd(18)} ${cleanTask} ${pct(c.accuracy)}  ${corruptedTask} ${pct(k.accuracy)}`);
}

// compare the restored tensors with the clean model's, byte for byte
const a = await openCheckpoint(restored);
const b = await openCheckpoint(model(clean));
let same = removal.exact;
for (const t of b.tensors()) same &&= Buffer.from(await a.readBytes(t.name)).equals(Buffer.from(await b.readBytes(t.name)));
await a.close();
await b.close();
console.log(`removal restored the clean model byte for byte: ${same}`);
