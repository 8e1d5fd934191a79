// The model a recipe's `model: base+adapter` reference stands for (mergekit's LoRA syntax): the adapter's weight
// change is materialised once as a stored task vector in a cache folder (like mergekit's --lora-merge-cache), keyed
// by the adapter's bytes and the base's fingerprint, and the model is then base + that vector exactly as a `vector:`
// entry (so pool workers reopen it the same way). Imports io and vectors only.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { wrapIoError } from '../errors.js';
import { statOrUndefined } from '../io/file.js';
import type { CheckpointReader } from '../io/types.js';
import { fingerprintCheckpoint } from '../vectors/format.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, loraToVector } from '../vectors/lora.js';

/** Where converted adapters are kept: $WEIGHTKIT_LORA_CACHE, else <tmpdir>/weightkit-lora-cache. */
export function loraCacheDir(): string {
  return process.env['WEIGHTKIT_LORA_CACHE'] ?? join(tmpdir(), 'weightkit-lora-cache');
}

async function hashFile(h: ReturnType<typeof createHash>, file: string): Promise<void> {
  try {
    for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  } catch (e) {
    throw wrapIoError(e, file, 'reading adapter');
  }
}

/**
 * The stored-vector file holding the adapter's ΔW on `base` (opened from `basePath`), written on first use (the
 * conversion validates the adapter against the base: typed errors naming the adapter file and tensor; a cached file
 * was made from the same adapter bytes). Callers open the adapter first (openLoraAdapter: its own format errors).
 */
export async function loraVectorFile(base: CheckpointReader, basePath: string, adapterDir: string, cacheDir = loraCacheDir()): Promise<string> {
  const h = createHash('sha256');
  h.update('weightkit-lora-vector-v1\n');
  h.update(await readFile(join(adapterDir, ADAPTER_CONFIG_FILE)));
  await hashFile(h, join(adapterDir, ADAPTER_WEIGHTS_FILE));
  h.update(await fingerprintCheckpoint(base));
  const out = join(cacheDir, `${h.digest('hex').slice(0, 32)}.safetensors`);
  if ((await statOrUndefined(out)) === undefined) {
    // concurrent runs write temp files and rename: the last identical file wins
    // read again at once by the merge: written through the page cache
    await loraToVector({ adapter: adapterDir, base: basePath, out, overwrite: true, direct: false });
  }
  return out;
}
