// Deterministic generator for test/fixtures/hf-sharded/: a tiny Llama-shaped BF16 checkpoint in the exact layout
// transformers + safetensors (Python) produce: two shards in module order, an index json formatted by hand the way
// json.dumps(indent=2, sort_keys=True) writes it. Bytes are built here from the spec, independently of src/io's
// writer, so a writer bug cannot hide in the fixture. Run: npx tsx scripts/make-fixtures.ts
// Imports nothing from src/.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface RawTensor {
  name: string;
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/**
 * Encode a safetensors file from the spec: u64 LE header length, JSON header (`__metadata__` first, then tensors in
 * the given order, which is also the data order), padded with spaces to a multiple of 8, then the data.
 */
export function encodeSafetensors(tensors: readonly RawTensor[], metadata?: Record<string, string>): Uint8Array {
  const parts: string[] = [];
  if (metadata !== undefined) parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  let offset = 0;
  for (const t of tensors) {
    parts.push(`${JSON.stringify(t.name)}:{"dtype":"${t.dtype}","shape":${JSON.stringify(t.shape)},"data_offsets":[${offset},${offset + t.bytes.length}]}`);
    offset += t.bytes.length;
  }
  return assemble(`{${parts.join(',')}}`, tensors.map((t) => t.bytes), true);
}

/** 8-byte LE length (of the padded header unless `declaredLength` is given), header text, data blocks. */
export function assemble(headerText: string | Uint8Array, data: readonly Uint8Array[], pad: boolean, declaredLength?: bigint): Uint8Array {
  let header = typeof headerText === 'string' ? new TextEncoder().encode(headerText) : headerText;
  if (pad && header.length % 8 !== 0) {
    const padded = new Uint8Array(Math.ceil(header.length / 8) * 8).fill(0x20);
    padded.set(header);
    header = padded;
  }
  const dataLen = data.reduce((a, d) => a + d.length, 0);
  const out = new Uint8Array(8 + header.length + dataLen);
  new DataView(out.buffer).setBigUint64(0, declaredLength ?? BigInt(header.length), true);
  out.set(header, 8);
  let o = 8 + header.length;
  for (const d of data) {
    out.set(d, o);
    o += d.length;
  }
  return out;
}

/** The value stored at element i of tensor number k: a multiple of 1/64 in [-0.75, 0.75], exact in bf16. */
export function fixtureValue(k: number, i: number): number {
  return (((i * 31 + k * 7) % 97) - 48) / 64;
}

function bf16Bytes(k: number, n: number): Uint8Array {
  const f = new Float32Array(n);
  for (let i = 0; i < n; i++) f[i] = fixtureValue(k, i);
  const u = new Uint32Array(f.buffer);
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = u[i]! >>> 16; // exact: the low 16 bits are zero for these values
  return new Uint8Array(out.buffer);
}

export const HF_HIDDEN = 16;
export const HF_INTERMEDIATE = 32;
export const HF_VOCAB = 32;
export const HF_LAYERS = 2;

/** Tensor names and shapes in module (state-dict) order, as transformers saves a LlamaForCausalLM. */
export function hfTensorSpecs(): Array<{ name: string; shape: number[] }> {
  const h = HF_HIDDEN;
  const m = HF_INTERMEDIATE;
  const specs: Array<{ name: string; shape: number[] }> = [{ name: 'model.embed_tokens.weight', shape: [HF_VOCAB, h] }];
  for (let l = 0; l < HF_LAYERS; l++) {
    const p = `model.layers.${l}`;
    specs.push(
      { name: `${p}.self_attn.q_proj.weight`, shape: [h, h] },
      { name: `${p}.self_attn.k_proj.weight`, shape: [h, h] },
      { name: `${p}.self_attn.v_proj.weight`, shape: [h, h] },
      { name: `${p}.self_attn.o_proj.weight`, shape: [h, h] },
      { name: `${p}.mlp.gate_proj.weight`, shape: [m, h] },
      { name: `${p}.mlp.up_proj.weight`, shape: [m, h] },
      { name: `${p}.mlp.down_proj.weight`, shape: [h, m] },
      { name: `${p}.input_layernorm.weight`, shape: [h] },
      { name: `${p}.post_attention_layernorm.weight`, shape: [h] },
    );
  }
  specs.push({ name: 'model.norm.weight', shape: [h] }, { name: 'lm_head.weight', shape: [HF_VOCAB, h] });
  return specs;
}

/** Every tensor with its index k (module order) used by fixtureValue. */
export function hfTensors(): Array<RawTensor & { k: number }> {
  return hfTensorSpecs().map((s, k) => ({ ...s, k, dtype: 'BF16', bytes: bf16Bytes(k, s.shape.reduce((a, b) => a * b, 1)) }));
}

export const HF_SHARDS = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'] as const;

/** The fixture files: shard 1 = embeddings + layer 0, shard 2 = the rest (transformers splits in module order). */
export function hfShardedFiles(): Map<string, Uint8Array> {
  const all = hfTensors();
  const first = all.filter((t) => t.name === 'model.embed_tokens.weight' || t.name.startsWith('model.layers.0.'));
  const second = all.filter((t) => !first.includes(t));
  // safetensors (Python) lays tensors out by descending dtype alignment, then by name; all are BF16 here.
  const byName = (a: RawTensor, b: RawTensor): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  const files = new Map<string, Uint8Array>();
  files.set(HF_SHARDS[0], encodeSafetensors([...first].sort(byName), { format: 'pt' }));
  files.set(HF_SHARDS[1], encodeSafetensors([...second].sort(byName), { format: 'pt' }));
  const total = all.reduce((a, t) => a + t.bytes.length, 0);
  const rows = [...all]
    .sort(byName)
    .map((t) => `    "${t.name}": "${first.includes(t) ? HF_SHARDS[0] : HF_SHARDS[1]}"`)
    .join(',\n');
  const index = `{\n  "metadata": {\n    "total_size": ${total}\n  },\n  "weight_map": {\n${rows}\n  }\n}\n`;
  files.set('model.safetensors.index.json', new TextEncoder().encode(index));
  return files;
}

export const FIXTURES_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'test', 'fixtures');

function main(): void {
  const dir = join(FIXTURES_DIR, 'hf-sharded');
  mkdirSync(dir, { recursive: true });
  for (const [name, bytes] of hfShardedFiles()) writeFileSync(join(dir, name), bytes);
  process.stdout.write(`wrote ${dir}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
