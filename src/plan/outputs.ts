// Everything a merge writes next to the weights: config.json from the donor (torch_dtype and layer count updated),
// tokenizer and generation files from the tokenizer donor, a README.md model card (method, inputs, recipe) and the
// recipe itself. Copies only from model folders, never from unrelated files beside a single-file model.

import { readFile, writeFile } from 'node:fs/promises';
import { copyIfExists, DONOR_FILES, isDirectory as isDir, TOKENIZER_FILES } from '../io/companions.js';
import { basename, join } from 'node:path';
import type { DType } from '../tensor/dtype.js';
import { WEIGHTKIT_VERSION } from '../version.js';
import { isEmbeddingName } from './layout.js';
import { mergedModels, type MergePlan } from './plan.js';

export { TOKENIZER_FILES, DONOR_FILES } from '../io/companions.js';
export const RECIPE_FILE = 'weightkit_recipe.yaml';

const TORCH_DTYPE: Partial<Record<DType, string>> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16', F64: 'float64' };

/** The dtype holding most output bytes (what config.json's torch_dtype should say). */
export function dominantDtype(plan: MergePlan): DType | undefined {
  const bytes = new Map<DType, number>();
  for (const t of plan.tensors) bytes.set(t.dtype, (bytes.get(t.dtype) ?? 0) + t.byteLength);
  let best: DType | undefined;
  for (const [d, b] of bytes) if (best === undefined || b > bytes.get(best)!) best = d;
  return best;
}

/** Write config, tokenizer files, model card and recipe into `dir`. Returns the file names written. */
export async function writeCompanionFiles(plan: MergePlan, dir: string, recipeText: string, warnings: string[]): Promise<string[]> {
  const written: string[] = [];
  const donor = plan.models[plan.donor]!;
  if (await isDir(donor.path)) {
    const cfgPath = join(donor.path, 'config.json');
    let cfgText: string | undefined;
    try {
      cfgText = await readFile(cfgPath, 'utf8');
    } catch (e) {
      cfgText = undefined;
      if ((e as { code?: unknown }).code !== 'ENOENT') warnings.push(`${cfgPath} cannot be read (${(e as Error).message}): the output has no config.json`);
    }
    if (cfgText !== undefined) {
      let out = cfgText;
      try {
        const parsed = JSON.parse(cfgText) as unknown;
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
        const cfg = parsed as Record<string, unknown>;
        const d = dominantDtype(plan);
        if (d && TORCH_DTYPE[d]) {
          if ('dtype' in cfg) cfg['dtype'] = TORCH_DTYPE[d];
          else cfg['torch_dtype'] = TORCH_DTYPE[d];
        }
        if (typeof cfg['num_hidden_layers'] === 'number' && plan.numLayers > 0) cfg['num_hidden_layers'] = plan.numLayers;
        // an embedding cut to a common vocabulary (or the base's): the config says the rows it has
        const embed = plan.tensors.find((t) => isEmbeddingName(t.name) && !/lm_head|embed_out/.test(t.name) && t.shape.length === 2);
        if (embed && typeof cfg['vocab_size'] === 'number' && cfg['vocab_size'] !== embed.shape[0]) {
          warnings.push(`config.json: vocab_size ${cfg['vocab_size']} -> ${embed.shape[0]} (the rows of the merged '${embed.name}')`);
          cfg['vocab_size'] = embed.shape[0];
        }
        // an lm_head of its own would be ignored by a loader that ties it to the embeddings
        if (plan.untied?.includes('lm_head.weight') && cfg['tie_word_embeddings'] !== false) cfg['tie_word_embeddings'] = false;
        out = JSON.stringify(cfg, null, 2) + '\n';
      } catch {
        warnings.push(`${cfgPath} is not a valid JSON object: copied unchanged`);
      }
      await writeFile(join(dir, 'config.json'), out);
      written.push('config.json');
    }
    for (const f of DONOR_FILES) if (await copyIfExists(join(donor.path, f), join(dir, f))) written.push(f);
  }
  const tok = plan.models[plan.tokenizerDonor]!;
  if (await isDir(tok.path)) {
    for (const f of TOKENIZER_FILES) if (await copyIfExists(join(tok.path, f), join(dir, f))) written.push(f);
  }
  await writeFile(join(dir, RECIPE_FILE), recipeText.endsWith('\n') ? recipeText : recipeText + '\n');
  written.push(RECIPE_FILE);
  await writeFile(join(dir, 'README.md'), modelCard(plan, recipeText));
  written.push('README.md');
  return written;
}

/** `--seed 7, --dtype bf16` */
export function overridesText(o: NonNullable<MergePlan['overrides']>): string {
  return [
    ...(o.seed !== undefined ? [`--seed ${o.seed}`] : []),
    ...(o.dtype !== undefined ? [`--dtype ${o.dtype.toLowerCase()}`] : []),
    ...(o.outDtype !== undefined ? [`--out-dtype ${o.outDtype.toLowerCase()}`] : []),
  ].join(', ');
}

export function modelCard(plan: MergePlan, recipeText: string): string {
  const base = plan.base !== undefined ? plan.models[plan.base] : undefined;
  const others = mergedModels(plan);
  const tok = plan.models[plan.tokenizerDonor]!;
  const yamlList = (xs: string[]): string => xs.map((x) => `  - ${JSON.stringify(x)}`).join('\n');
  const front = [
    '---',
    ...(base ? ['base_model:', yamlList([base.ref])] : []),
    'tags:',
    yamlList(['weightkit', 'merge']),
    '---',
  ].join('\n');
  const lines = [
    front,
    '',
    `# ${plan.recipe.name ?? basename(plan.recipe.file).replace(/\.ya?ml$/, '')}`,
    '',
    `This model was merged with [weightkit](https://www.npmjs.com/package/weightkit) ${WEIGHTKIT_VERSION} using the \`${plan.method}\` method.`,
    '',
    '## Inputs',
    '',
    ...(base ? [`- base: \`${base.ref}\``] : []),
    ...others.map((m) => `- \`${m.ref}\``),
    ...(tok.id !== plan.base && !others.includes(tok) ? [`- tokenizer: \`${tok.ref}\``] : []),
    '',
    `${plan.tensors.length} tensors, ${plan.outputBytes} bytes; recipe sha256 \`${plan.recipe.sha256}\`, seed ${plan.seed}.`,
    ...(plan.overrides !== undefined ? ['', `Options that override the recipe below: ${overridesText(plan.overrides)}.`] : []),
    '',
    '## Recipe',
    '',
    '```yaml',
    recipeText.trimEnd(),
    '```',
    '',
  ];
  return lines.join('\n');
}
