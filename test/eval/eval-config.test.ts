import { describe, expect, it } from 'vitest';
import { RecipeProblems } from '../../src/errors.js';
import { parseEvalConfig } from '../../src/eval/eval-config.js';

function problems(text: string): Array<{ code: string; line?: number; col?: number; path?: string }> {
  try {
    parseEvalConfig(text, '/cfg/eval.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(RecipeProblems);
    return (e as RecipeProblems).problems.map((p) => ({ code: p.code, line: p.where.line, col: p.where.col, path: p.where.path }));
  }
  throw new Error('no problems');
}

describe('eval.yaml', () => {
  it('parses a config; paths resolve against its folder', () => {
    const c = parseEvalConfig(
      'model: g.onnx\nbase: m/base\ncontrol_ratio: 0.9\ndatasets:\n  - name: a\n    data: d/a.safetensors\n    role: task\n    finetuned: 0.8\n  - name: c\n    data: /abs/c.safetensors\n    role: control\n  - name: b\n    data: b\n    role: task\n    finetuned: m/ft-b\n',
      '/cfg/eval.yaml',
    );
    expect(c.model).toBe('/cfg/g.onnx');
    expect(c.base).toBe('/cfg/m/base');
    expect(c.controlRatio).toBe(0.9);
    expect(c.datasets.map((d) => [d.name, d.data, d.role, d.finetuned])).toEqual([
      ['a', '/cfg/d/a.safetensors', 'task', { accuracy: 0.8 }],
      ['c', '/abs/c.safetensors', 'control', undefined],
      ['b', '/cfg/b', 'task', { weights: '/cfg/m/ft-b' }],
    ]);
    expect(parseEvalConfig('model: g.onnx\ndatasets:\n  - {name: a, data: a, role: task}\n', '/x/e.yaml').controlRatio).toBe(0.95);
  });

  it('reports every problem with line:col', () => {
    expect(
      problems('model: g.onnx\nmodle: x\ndatasets:\n  - name: a\n    data: a\n    role: tsk\n  - name: a\n    data: b\n    role: task\n    finetuned: 1.5\n  - data: c\n    role: control\n    extra: 1\n'),
    ).toEqual([
      { code: 'RECIPE_UNKNOWN_KEY', line: 2, col: 1, path: 'modle' },
      { code: 'RECIPE_TYPE', line: 6, col: 11, path: 'datasets[0].role' },
      { code: 'RECIPE_DUPLICATE_NAME', line: 7, col: 11, path: 'datasets[1].name' },
      { code: 'RECIPE_PARAM_RANGE', line: 10, col: 16, path: 'datasets[1].finetuned' },
      { code: 'RECIPE_MISSING_KEY', line: 11, col: 5, path: 'datasets[2]' },
      { code: 'RECIPE_UNKNOWN_KEY', line: 13, col: 5, path: 'datasets[2].extra' },
    ]);
    expect(problems('datasets: []\n')).toEqual([
      { code: 'RECIPE_MISSING_KEY', line: 1, col: 1, path: '' },
      { code: 'RECIPE_TYPE', line: 1, col: 11, path: 'datasets' },
    ]);
    expect(problems('model: [g\n')[0]!.code).toBe('RECIPE_YAML');
    expect(problems('model: g\ndatasets:\n  - {name: c, data: c, role: control}\n')).toEqual([{ code: 'RECIPE_MISSING_KEY', line: 3, col: 3, path: 'datasets' }]);
  });
});
