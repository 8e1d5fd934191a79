// Method reference as Markdown, rendered from the method declarations (docs/methods.md is generated from this
// and a test keeps the two equal). Pure.

import type { ParamSpec } from '../recipe/spec.js';
import type { MergeMethod } from './types.js';

function paramRow(p: ParamSpec, scope: string): string {
  const range =
    p.choices !== undefined
      ? p.choices.map((c) => `\`${c}\``).join(' \\| ')
      : p.min !== undefined || p.max !== undefined
        ? `${p.exclusiveMin ? '(' : '['}${p.min ?? '-∞'}, ${p.max ?? '∞'}${p.exclusiveMax ? ')' : ']'}`
        : '';
  const def = p.required ? 'required' : p.default !== undefined ? `\`${JSON.stringify(p.default)}\`` : 'unset';
  return `| \`${p.name}\` | ${scope} | ${p.type} | ${range} | ${def} | ${p.description.replace(/\|/g, '\\|')} |`;
}

export function methodsMarkdown(methods: readonly MergeMethod[]): string {
  const out: string[] = [
    '# Merge methods',
    '',
    'Generated from the method declarations (`npx tsx scripts/gen-docs.ts`); `weightkit methods [name]` prints the same.',
    'Parameters marked *model* are per-model (set under `models[].parameters`, or at slice/top level for every model);',
    '*global* parameters apply to the whole tensor and cannot vary per model.',
    '',
    '| method | base | models | summary |',
    '|---|---|---|---|',
    ...methods.map((m) => `| [\`${m.name}\`](#${m.name}) | ${m.base} | ${m.maxModels === undefined ? `${m.minModels}+` : m.minModels === m.maxModels ? m.minModels : `${m.minModels}–${m.maxModels}`} | ${m.summary} |`),
    '',
  ];
  for (const m of methods) {
    out.push(`## ${m.name}`, '', m.summary, '');
    out.push(`- base model: ${m.base}; models besides the base: ${m.maxModels === undefined ? `at least ${m.minModels}` : m.minModels === m.maxModels ? `exactly ${m.minModels}` : `${m.minModels} to ${m.maxModels}`}${m.random ? '; random (uses `seed`)' : ''}`);
    out.push(`- reference: ${m.reference}`, '');
    out.push(`**Formula.** ${m.formula}`, '');
    if (m.params.length + m.modelParams.length > 0) {
      out.push('| parameter | scope | type | range | default | meaning |', '|---|---|---|---|---|---|');
      for (const p of m.params) out.push(paramRow(p, 'global'));
      for (const p of m.modelParams) out.push(paramRow(p, 'model'));
      out.push('');
    }
    if (m.differences) out.push(`**Differences from mergekit.** ${m.differences}`, '');
  }
  return out.join('\n');
}
