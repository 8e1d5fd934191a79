// Files that travel with a model folder besides its weights (config, tokenizer, generation settings), and copying
// them from a donor folder. Node fs only; used by merge outputs and by every command that writes a model folder.

import { copyFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { wrapIoError } from '../errors.js';

export const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'tokenizer.model',
  'special_tokens_map.json',
  'added_tokens.json',
  'vocab.json',
  'vocab.txt',
  'merges.txt',
  'chat_template.jinja',
  'chat_template.json',
] as const;
export const DONOR_FILES = ['generation_config.json', 'preprocessor_config.json'] as const;

export async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

export async function copyIfExists(from: string, to: string): Promise<boolean> {
  try {
    await copyFile(from, to);
    return true;
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return false;
    throw wrapIoError(e, from, 'copying');
  }
}

/**
 * Copy config.json, generation/preprocessor settings and tokenizer files from `donor` (when it is a folder) into
 * `dir`, unchanged. Returns the names copied. A single-file donor has no companions: nothing beside it is copied.
 */
export async function copyCompanionFiles(donor: string, dir: string): Promise<string[]> {
  if (!(await isDirectory(donor))) return [];
  const copied: string[] = [];
  for (const f of ['config.json', ...DONOR_FILES, ...TOKENIZER_FILES]) {
    if (await copyIfExists(join(donor, f), join(dir, f))) copied.push(f);
  }
  return copied;
}
