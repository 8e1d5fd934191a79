// Method-aware recipe checks: known method, base model contract, model counts, parameter names in the right
// scope (with did-you-mean), value types and ranges, required parameters, weights that sum to zero under
// normalize, equal slice lengths. Every problem carries its file:line:col; all are reported together.

import { RecipeProblems } from '../errors.js';
import { ProblemSink, invalidParams, parseRecipeInto, sortProblems } from './load.js';
import type { MethodSpec, ParamSpec, ParamValue } from './spec.js';
import { didYouMean } from './suggest.js';
import type { ParamNode, ParamsNode, Pos, Recipe, RecipeDoc, ScalarOrGradient } from './types.js';

export type MethodCatalog = ReadonlyMap<string, MethodSpec>;

/** Check a value against its spec; returns a problem message or undefined. */
export function checkParamValue(spec: ParamSpec, v: ParamValue): { code: 'RECIPE_TYPE' | 'RECIPE_PARAM_RANGE'; message: string } | undefined {
  if (typeof v !== spec.type) {
    return { code: 'RECIPE_TYPE', message: `parameter '${spec.name}' must be a ${spec.type} (got ${typeof v} ${JSON.stringify(v)})` };
  }
  if (spec.type === 'string' && spec.choices && !spec.choices.includes(v as string)) {
    return {
      code: 'RECIPE_PARAM_RANGE',
      message: `parameter '${spec.name}' must be one of ${spec.choices.join(', ')} (got '${v}')${didYouMean(String(v), spec.choices)}`,
    };
  }
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return { code: 'RECIPE_TYPE', message: `parameter '${spec.name}' must be a finite number (got ${v})` };
    if (spec.integer && !Number.isInteger(v)) return { code: 'RECIPE_PARAM_RANGE', message: `parameter '${spec.name}' must be an integer (got ${v})` };
    const lo = spec.min;
    const hi = spec.max;
    const tooLow = lo !== undefined && (spec.exclusiveMin ? v <= lo : v < lo);
    const tooHigh = hi !== undefined && (spec.exclusiveMax ? v >= hi : v > hi);
    if (tooLow || tooHigh) {
      const l = lo === undefined ? '(-inf' : `${spec.exclusiveMin ? '(' : '['}${lo}`;
      const h = hi === undefined ? 'inf)' : `${hi}${spec.exclusiveMax ? ')' : ']'}`;
      return { code: 'RECIPE_PARAM_RANGE', message: `parameter '${spec.name}' must be in ${l}, ${h} (got ${v})` };
    }
  }
  return undefined;
}

function values(node: ParamNode): { v: ParamValue; pos: Pos }[] {
  const of = (s: ScalarOrGradient): { v: ParamValue; pos: Pos }[] =>
    s.kind === 'scalar' ? [{ v: s.value, pos: s.pos }] : s.values.map((v, i) => ({ v, pos: s.valuePos?.[i] ?? s.pos }));
  return node.kind === 'conditional' ? node.conds.flatMap((c) => of(c.value)) : of(node);
}

function checkLevel(
  sink: ProblemSink,
  params: ParamsNode,
  method: MethodSpec,
  scope: 'model' | 'any',
): void {
  const all = [...method.params, ...method.modelParams];
  for (const [name, { node, keyPos }] of params) {
    const modelSpec = method.modelParams.find((p) => p.name === name);
    const globalSpec = method.params.find((p) => p.name === name);
    if (scope === 'model' && !modelSpec && globalSpec) {
      sink.add(
        'RECIPE_PARAM_SCOPE',
        `'${name}' is a global parameter of ${method.name} and cannot vary per model; set it in the top-level or slice 'parameters'`,
        keyPos,
      );
      continue;
    }
    const spec = modelSpec ?? globalSpec;
    if (!spec) {
      const known = all.map((p) => p.name);
      const list = known.length > 0 ? `; ${method.name} takes ${known.join(', ')}` : `; ${method.name} takes no parameters`;
      sink.unknown('RECIPE_UNKNOWN_PARAM', `unknown parameter '${name}'${didYouMean(name, known)}${list}`, keyPos);
      continue;
    }
    for (const { v, pos } of values(node)) {
      const p = checkParamValue(spec, v);
      if (p) sink.add(p.code, p.message, pos);
    }
  }
}

/** Model entries of a document, as (ref, parameter levels) with the base recognised by its reference. */
function inputsOf(doc: RecipeDoc): { ref: string; pos: Pos; levels: ParamsNode[]; isBase: boolean }[][] {
  const baseRef = doc.baseModel?.ref;
  if (doc.models) {
    return [
      doc.models.map((m) => ({ ref: m.model.ref, pos: m.pos, levels: [m.parameters, doc.parameters], isBase: !m.model.vector && m.model.ref === baseRef })),
    ];
  }
  return (doc.slices ?? []).map((s) =>
    s.sources.map((src) => ({
      ref: src.model.ref,
      pos: src.pos,
      levels: [src.parameters, s.parameters, doc.parameters],
      isBase: !src.model.vector && src.model.ref === (s.baseModel?.ref ?? baseRef),
    })),
  );
}

function hasSetting(levels: readonly ParamsNode[], name: string): boolean {
  return levels.some((l) => l.has(name) || invalidParams.get(l)?.has(name) === true);
}

function scalarOf(levels: readonly ParamsNode[], name: string): number | undefined | 'dynamic' {
  for (const l of levels) {
    const e = l.get(name);
    if (!e) continue;
    return e.node.kind === 'scalar' && typeof e.node.value === 'number' ? e.node.value : 'dynamic';
  }
  return undefined;
}

export function validateDoc(doc: RecipeDoc, catalog: MethodCatalog, sink: ProblemSink): MethodSpec | undefined {
  const method = catalog.get(doc.mergeMethod.value);
  if (!method) {
    sink.add(
      'RECIPE_UNKNOWN_METHOD',
      `unknown merge_method '${doc.mergeMethod.value}'${didYouMean(doc.mergeMethod.value, catalog.keys())}`,
      doc.mergeMethod.pos,
      'run weightkit methods for the list',
    );
    return undefined;
  }
  const everySliceHasBase = doc.slices !== undefined && doc.slices.length > 0 && doc.slices.every((s) => s.baseModel);
  if (method.base === 'required' && !doc.baseModel && !everySliceHasBase) {
    sink.add('RECIPE_BASE_REQUIRED', `${method.name} needs a base_model`, doc.mergeMethod.pos);
  }
  if (method.base === 'none' && doc.baseModel) {
    sink.add('RECIPE_BASE_NOT_ALLOWED', `${method.name} takes no base_model (remove it, or list the model under models)`, doc.baseModel.pos);
  }
  // `vector:` entries stand for base_model + vector: they need the top-level base and a method that takes one
  const vectors = [...(doc.models ?? []).map((m) => m.model), ...(doc.slices ?? []).flatMap((s) => s.sources.map((x) => x.model))].filter((r) => r.vector);
  for (const v of vectors) {
    if (method.base === 'none') {
      sink.add('RECIPE_BASE_NOT_ALLOWED', `${method.name} takes no base model, so it cannot use the vector '${v.ref}' (a vector is relative to base_model)`, v.pos);
    } else if (!doc.baseModel) {
      sink.add('RECIPE_BASE_REQUIRED', `the vector '${v.ref}' needs a top-level base_model (the model it is added to)`, v.pos);
    }
  }
  // parameter names, scopes, values
  checkLevel(sink, doc.parameters, method, 'any');
  for (const m of doc.models ?? []) checkLevel(sink, m.parameters, method, 'model');
  for (const s of doc.slices ?? []) {
    // a slice of a method that uses the base lists it among its sources (its layer range says which layers)
    const sliceBase = s.baseModel ?? doc.baseModel;
    if ((method.base === 'required' || method.base === 'optional') && sliceBase !== undefined && s.sources.length > 0) {
      if (!s.sources.some((src) => !src.model.vector && src.model.ref === sliceBase.ref)) {
        sink.add('RECIPE_BASE_REQUIRED', `the slice does not list its base model '${sliceBase.ref}' among its sources`, s.pos);
      }
    }
    checkLevel(sink, s.parameters, method, 'any');
    for (const src of s.sources) checkLevel(sink, src.parameters, method, 'model');
    const lengths = s.sources.filter((x) => x.layerRange).map((x) => x.layerRange!.value[1] - x.layerRange!.value[0]);
    if (new Set(lengths).size > 1) {
      sink.add('RECIPE_LAYER_RANGE', `all sources of a slice must span the same number of layers (got ${lengths.join(', ')})`, s.pos);
    }
    if (lengths.length > 0 && lengths.length !== s.sources.length) {
      sink.add('RECIPE_LAYER_RANGE', 'give layer_range for every source of the slice or for none', s.pos);
    }
  }
  // global required parameters
  for (const p of method.params) {
    if (!p.required) continue;
    const anywhere = hasSetting([doc.parameters], p.name) || (doc.slices ?? []).some((s) => s.parameters.has(p.name));
    if (!anywhere) sink.add('RECIPE_PARAM_REQUIRED', `${method.name} needs the parameter '${p.name}' (${p.description})`, doc.mergeMethod.pos);
  }
  // model counts and per-model required parameters
  for (const group of inputsOf(doc)) {
    // a slice without sources is reported where it is read
    if (group.length === 0 && doc.slices !== undefined) continue;
    const nonBase = group.filter((g) => !g.isBase || method.base === 'input' || method.base === 'none');
    const count = nonBase.length;
    const where = group[0]?.pos ?? doc.pos;
    if (count < method.minModels || (method.maxModels !== undefined && count > method.maxModels)) {
      const want = method.maxModels === undefined ? `at least ${method.minModels}` : method.minModels === method.maxModels ? `exactly ${method.minModels}` : `${method.minModels} to ${method.maxModels}`;
      sink.add('RECIPE_MODEL_COUNT', `${method.name} merges ${want} model(s) besides the base (got ${count})`, where);
    }
    for (const p of method.modelParams) {
      if (!p.required) continue;
      for (const g of nonBase) {
        if (!hasSetting(g.levels, p.name)) sink.add('RECIPE_PARAM_REQUIRED', `model '${g.ref}' needs the parameter '${p.name}' (${p.description})`, g.pos);
      }
    }
    // weights summing to zero under normalize (static case: all scalar)
    const normSpec = method.params.find((p) => p.name === 'normalize');
    const hasWeight = method.modelParams.some((p) => p.name === 'weight');
    if (normSpec && hasWeight) {
      // normalize is a tensor-level parameter: the slice's setting, else the top level's (a model's own levels do
      // not apply to it)
      const normNode = (group[0]?.levels.slice(1) ?? [doc.parameters]).map((l) => l.get('normalize')).find((e) => e !== undefined)?.node;
      const normalize = normNode === undefined ? normSpec.default === true : normNode.kind === 'scalar' && normNode.value === true;
      if (normalize) {
        const ws = nonBase.map((g) => scalarOf(g.levels, 'weight'));
        if (ws.length > 0 && ws.every((w) => typeof w === 'number')) {
          const sum = (ws as number[]).reduce((a, b) => a + b, 0);
          if (Math.abs(sum) < 1e-12) {
            sink.add('RECIPE_WEIGHT_SUM_ZERO', `the weights sum to 0, so normalize would divide by zero; set normalize: false`, where);
          }
        }
      }
    }
  }
  return method;
}

/** Validate every document; throws RecipeProblems with all problems (sorted by position). */
export function validateRecipe(recipe: Recipe, catalog: MethodCatalog, options: { lenient?: boolean } = {}): Map<RecipeDoc, MethodSpec> {
  const sink = new ProblemSink(Boolean(options.lenient));
  const out = validateRecipeInto(recipe, catalog, sink);
  if (sink.problems.length > 0) throw new RecipeProblems(recipe.file, sortProblems(sink.problems));
  return out;
}

/** Parse and validate recipe text in one go, reporting syntax, schema and method problems together. */
export function loadRecipeText(text: string, file: string, catalog: MethodCatalog, options: { lenient?: boolean } = {}): { recipe: Recipe; methods: Map<RecipeDoc, MethodSpec> } {
  const sink = new ProblemSink(Boolean(options.lenient));
  const recipe = parseRecipeInto(text, file, sink);
  const methods = validateRecipeInto(recipe, catalog, sink);
  if (sink.problems.length > 0) throw new RecipeProblems(file, sortProblems(sink.problems));
  return { recipe, methods };
}

export function validateRecipeInto(recipe: Recipe, catalog: MethodCatalog, sink: ProblemSink): Map<RecipeDoc, MethodSpec> {
  const out = new Map<RecipeDoc, MethodSpec>();
  const names = new Map<string, Pos>();
  recipe.docs.forEach((doc, i) => {
    const m = validateDoc(doc, catalog, sink);
    if (m) out.set(doc, m);
    if (doc.name) {
      const prev = names.get(doc.name.value);
      if (prev) sink.add('RECIPE_DUPLICATE_NAME', `two documents are named '${doc.name.value}' (first at line ${prev.line})`, doc.name.pos);
      else names.set(doc.name.value, doc.name.pos);
    } else if (recipe.docs.length > 1 && i < recipe.docs.length - 1) {
      sink.add('RECIPE_MISSING_KEY', "every document of a multi-document recipe except the last needs a 'name'", doc.pos);
    }
  });
  const seen = new Set(recipe.warnings);
  const warnings = recipe.warnings as { code: string; message: string; pos: Pos }[];
  for (const w of sink.warnings) if (!seen.has(w)) warnings.push(w);
  warnings.sort((a, b) => a.pos.line - b.pos.line || a.pos.col - b.pos.col);
  return out;
}
