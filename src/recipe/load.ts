// Recipe loading: YAML (one or more documents) -> typed RecipeDoc nodes with positions, checking mergekit's schema
// strictly (unknown keys with did-you-mean, value types, conflicting keys). Collects every problem of the file
// and throws them together as RecipeProblems. Method-specific checks live in validate.ts.

import { readFile, stat } from 'node:fs/promises';
import {
  LineCounter,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  parseAllDocuments,
  type Document,
  type Node as YamlNode,
  type YAMLMap,
} from 'yaml';
import { RecipeError, RecipeProblems, type ErrorCode } from '../errors.js';
import { parseDType, type DType } from '../tensor/dtype.js';
import type { ParamValue } from './spec.js';
import { didYouMean } from './suggest.js';
import type {
  Condition,
  Located,
  ModelEntry,
  ModelRef,
  NameFilter,
  ParamNode,
  ParamsNode,
  Pos,
  Recipe,
  RecipeDoc,
  ScalarOrGradient,
  SliceNode,
  SliceSource,
} from './types.js';

export interface LoadOptions {
  /** unknown keys and parameters become warnings instead of errors (for old recipes) */
  lenient?: boolean;
}

const TOP_KEYS = [
  'merge_method',
  'base_model',
  'models',
  'slices',
  'parameters',
  'dtype',
  'out_dtype',
  'tokenizer_source',
  'tokenizer',
  'chat_template',
  'modules',
  'name',
  'seed',
  'force_vector_base',
] as const;
const MODEL_KEYS = ['model', 'vector', 'parameters'] as const;
const SLICE_KEYS = ['sources', 'parameters', 'base_model', 'residual_weight'] as const;
const SOURCE_KEYS = ['model', 'vector', 'layer_range', 'parameters'] as const;
const COMPUTE_DTYPES: readonly DType[] = ['F32', 'F16', 'BF16'];

/** Collects problems; `unknown()` respects leniency. */
export class ProblemSink {
  readonly problems: RecipeError[] = [];
  readonly warnings: { code: string; message: string; pos: Pos }[] = [];
  constructor(readonly lenient = false) {}

  add(code: ErrorCode, message: string, pos: Pos, hint?: string): void {
    this.problems.push(
      new RecipeError(code, message, {
        where: { file: pos.file, line: pos.line, col: pos.col, path: pos.path },
        ...(hint !== undefined ? { hint } : {}),
      }),
    );
  }

  unknown(code: ErrorCode, message: string, pos: Pos): void {
    if (this.lenient) this.warnings.push({ code, message, pos });
    else this.add(code, message, pos);
  }
}

class DocReader {
  constructor(
    readonly file: string,
    readonly doc: Document.Parsed,
    readonly lc: LineCounter,
    readonly sink: ProblemSink,
  ) {}

  pos(node: YamlNode | null | undefined, path: string, fallback?: Pos): Pos {
    const off = node?.range?.[0];
    if (off === undefined) return fallback ?? { file: this.file, line: 1, col: 1, path };
    const lp = this.lc.linePos(off);
    return { file: this.file, line: lp.line, col: lp.col, path };
  }

  deref(node: unknown): YamlNode | null {
    if (node == null) return null;
    if (isAlias(node)) return (node.resolve(this.doc) as YamlNode | undefined) ?? null;
    return node as YamlNode;
  }

  /**
   * key/value pairs of a mapping node, reporting non-string keys and unknown keys. YAML 1.1 merge keys (`<<: *anchor`
   * or `<<: [*a, *b]`, which mergekit's PyYAML loader honours) bring in the named mappings' pairs, the mapping's own
   * keys first, then each merged mapping's in the order given.
   */
  entries(map: YAMLMap, path: string, allowed: readonly string[] | null, depth = 0): Map<string, { node: YamlNode | null; keyPos: Pos }> {
    const out = new Map<string, { node: YamlNode | null; keyPos: Pos }>();
    const merged: YAMLMap[] = [];
    for (const pair of map.items) {
      const keyNode = pair.key as YamlNode | null;
      const key = isScalar(keyNode) ? keyNode.value : undefined;
      if (key === '<<' && isScalar(keyNode) && keyNode.type === 'PLAIN') {
        const v = this.deref(pair.value);
        const targets = isSeq(v) ? v.items.map((i) => this.deref(i)) : [v];
        for (const t of targets) {
          if (isMap(t) && depth < 16) merged.push(t);
          else this.sink.add('RECIPE_TYPE', `a merge key (<<) takes a mapping or a list of mappings (got ${describe(t)})`, this.pos(t, path, this.pos(keyNode, path)));
        }
        continue;
      }
      const keyPath = typeof key === 'string' ? (path ? `${path}.${key}` : key) : path;
      const keyPos = this.pos(keyNode, keyPath, this.pos(map, path));
      if (typeof key !== 'string') {
        this.sink.add('RECIPE_TYPE', `keys must be strings (got ${JSON.stringify(key ?? null)})`, keyPos);
        continue;
      }
      if (allowed && !allowed.includes(key)) {
        this.sink.unknown('RECIPE_UNKNOWN_KEY', `unknown key '${key}'${didYouMean(key, allowed)}`, keyPos);
        continue;
      }
      out.set(key, { node: this.deref(pair.value), keyPos });
    }
    for (const m of merged) {
      for (const [k, v] of this.entries(m, path, allowed, depth + 1)) if (!out.has(k)) out.set(k, v);
    }
    return out;
  }

  str(node: YamlNode | null, path: string, keyPos: Pos, what: string): Located<string> | undefined {
    if (isScalar(node) && typeof node.value === 'string' && node.value.length > 0) {
      return { value: node.value, pos: this.pos(node, path) };
    }
    this.sink.add('RECIPE_TYPE', `${what} must be a non-empty string (got ${describe(node)})`, this.pos(node, path, keyPos));
    return undefined;
  }

  /** A `{path, revision}` model path of the dict form (or a plain string); a revision needs a hub, so it is refused. */
  modelPath(node: YamlNode | null, path: string, keyPos: Pos, what: string): Located<string> | undefined {
    if (!isMap(node)) return this.str(node, path, keyPos, what);
    const e = this.entries(node, path, ['path', 'revision']);
    const rev = e.get('revision');
    if (rev) {
      this.sink.add('RECIPE_UNSUPPORTED', `${what}: 'revision' selects a Hugging Face hub revision; weightkit does not download (give a local path)`, rev.keyPos);
    }
    const p = e.get('path');
    if (!p) {
      this.sink.add('RECIPE_MISSING_KEY', `${what} needs 'path'`, this.pos(node, path, keyPos));
      return undefined;
    }
    return rev ? undefined : this.str(p.node, `${path}.path`, p.keyPos, what);
  }

  modelRef(node: YamlNode | null, path: string, keyPos: Pos): ModelRef | undefined {
    if (isMap(node)) {
      // mergekit's dict form {model: {path, revision}, lora: {path, revision}, override_architecture}
      const e = this.entries(node, path, ['model', 'lora', 'override_architecture']);
      const oa = e.get('override_architecture');
      if (oa) this.sink.add('RECIPE_UNSUPPORTED', "'override_architecture' is not supported (weightkit reads tensors by name, not through an architecture class)", oa.keyPos);
      const me = e.get('model');
      if (!me) {
        this.sink.add('RECIPE_MISSING_KEY', "a model reference in dict form needs 'model'", this.pos(node, path, keyPos));
        return undefined;
      }
      const model = this.modelPath(me.node, `${path}.model`, me.keyPos, 'a model path');
      const le = e.get('lora');
      const lora = le ? this.modelPath(le.node, `${path}.lora`, le.keyPos, 'a LoRA adapter path') : undefined;
      if (!model || (le && !lora) || oa) return undefined;
      if (lora) return { ref: `${model.value}+${lora.value}`, pos: model.pos, lora: { base: model.value, adapter: lora.value } };
      return { ref: model.value, pos: model.pos };
    }
    const s = this.str(node, path, keyPos, 'a model reference');
    if (!s) return undefined;
    if (s.value.includes('+')) {
      const parts = s.value.split('+');
      if (parts.length !== 2 || parts.some((x) => x.trim() === '')) {
        this.sink.add('RECIPE_TYPE', `a LoRA reference is 'base+adapter', one '+' between two paths (got '${s.value}')`, s.pos);
        return undefined;
      }
      return { ref: s.value, pos: s.pos, lora: { base: parts[0]!.trim(), adapter: parts[1]!.trim() } };
    }
    return { ref: s.value, pos: s.pos };
  }

  /**
   * The input of a model entry or slice source: `model: path` or `vector: file` (a stored task vector, the model
   * base_model + vector). Reports a missing input and the two given together.
   */
  entryRef(e: Map<string, { node: YamlNode | null; keyPos: Pos }>, path: string, pos: Pos, what: string): ModelRef | undefined {
    const me = e.get('model');
    const ve = e.get('vector');
    if (me && ve) {
      this.sink.add('RECIPE_CONFLICT', `${what} takes either 'model' or 'vector', not both`, ve.keyPos);
      return undefined;
    }
    if (ve) {
      if (isMap(ve.node)) {
        this.sink.add('RECIPE_TYPE', 'a vector reference must be the path of a vector file', this.pos(ve.node, `${path}.vector`, ve.keyPos));
        return undefined;
      }
      const s = this.str(ve.node, `${path}.vector`, ve.keyPos, 'a vector reference');
      return s ? { ref: s.value, pos: s.pos, vector: true } : undefined;
    }
    if (!me) {
      this.sink.add('RECIPE_MISSING_KEY', `${what} needs 'model'`, pos);
      return undefined;
    }
    return this.modelRef(me.node, `${path}.model`, me.keyPos);
  }

  scalarValue(node: YamlNode | null): ParamValue | undefined {
    if (!isScalar(node)) return undefined;
    const v = node.value;
    // mergekit reads recipes with PyYAML (YAML 1.1): a plain yes/no/on/off is a boolean there
    if (typeof v === 'string' && node.type === 'PLAIN' && YAML11_BOOL.test(v)) return /^(yes|on)$/i.test(v);
    if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
    if (typeof v === 'boolean' || typeof v === 'string') return v;
    return undefined;
  }

  scalarOrGradient(node: YamlNode | null, path: string, keyPos: Pos): ScalarOrGradient | undefined {
    const pos = this.pos(node, path, keyPos);
    if (isSeq(node)) {
      const values: ParamValue[] = [];
      const valuePos: Pos[] = [];
      node.items.forEach((item, i) => {
        const it = this.deref(item);
        const v = this.scalarValue(it);
        if (v === undefined) {
          this.sink.add('RECIPE_TYPE', `gradient entries must be numbers (got ${describe(it)})`, this.pos(it, `${path}[${i}]`, pos));
        } else {
          values.push(v);
          valuePos.push(this.pos(it, `${path}[${i}]`, pos));
        }
      });
      if (values.length === 0) {
        this.sink.add('RECIPE_TYPE', 'a gradient list needs at least one value', pos);
        return undefined;
      }
      const kinds = new Set(values.map((v) => typeof v));
      if (kinds.size > 1) {
        this.sink.add('RECIPE_TYPE', 'a gradient list must not mix numbers with other values', pos);
        return undefined;
      }
      return { kind: 'gradient', values, pos, valuePos };
    }
    const v = this.scalarValue(node);
    if (v === undefined) {
      this.sink.add('RECIPE_TYPE', `expected a finite number, boolean, string or gradient list (got ${describe(node)})`, pos);
      return undefined;
    }
    return { kind: 'scalar', value: v, pos };
  }

  filter(node: YamlNode | null, path: string, pos: Pos): NameFilter | undefined {
    if (node === null) return ANY_FILTER;
    const s = this.str(node, path, pos, 'a filter');
    if (!s) return undefined;
    return makeFilter(s.value, (msg) => this.sink.add('RECIPE_BAD_FILTER', msg, s.pos));
  }

  param(node: YamlNode | null, path: string, keyPos: Pos): ParamNode | undefined {
    if (isSeq(node) && node.items.length > 0 && node.items.every((i) => isMap(this.deref(i)))) {
      const conds: Condition[] = [];
      node.items.forEach((item, i) => {
        const m = this.deref(item) as YAMLMap;
        const cpath = `${path}[${i}]`;
        const cpos = this.pos(m, cpath, keyPos);
        const e = this.entries(m, cpath, ['filter', 'value']);
        const valueEntry = e.get('value');
        if (!valueEntry) {
          this.sink.add('RECIPE_MISSING_KEY', "a conditional parameter entry needs a 'value'", cpos);
          return;
        }
        const f = this.filter(e.get('filter')?.node ?? null, `${cpath}.filter`, cpos);
        const v = this.scalarOrGradient(valueEntry.node, `${cpath}.value`, valueEntry.keyPos);
        if (f && v) conds.push({ filter: f, value: v, pos: cpos });
      });
      return { kind: 'conditional', conds, pos: this.pos(node, path, keyPos) };
    }
    if (isSeq(node) && node.items.some((i) => isMap(this.deref(i)))) {
      this.sink.add('RECIPE_TYPE', 'a parameter list must be all {filter, value} entries or all numbers', this.pos(node, path, keyPos));
      return undefined;
    }
    if (isMap(node)) {
      this.sink.add(
        'RECIPE_TYPE',
        'a parameter value must be a scalar, a gradient list, or a list of {filter, value} entries',
        this.pos(node, path, keyPos),
      );
      return undefined;
    }
    return this.scalarOrGradient(node, path, keyPos);
  }

  params(node: YamlNode | null, path: string, keyPos: Pos): ParamsNode {
    const out = new Map<string, { node: ParamNode; keyPos: Pos }>();
    if (node === null || (isScalar(node) && node.value === null)) return out;
    if (!isMap(node)) {
      this.sink.add('RECIPE_TYPE', `'parameters' must be a mapping (got ${describe(node)})`, this.pos(node, path, keyPos));
      return out;
    }
    for (const [k, { node: v, keyPos: kp }] of this.entries(node, path, null)) {
      const p = this.param(v, `${path}.${k}`, kp);
      if (p) out.set(k, { node: p, keyPos: kp });
      else {
        // reported already: not also "missing" to the required-parameter checks
        let bad = invalidParams.get(out);
        if (bad === undefined) invalidParams.set(out, (bad = new Set()));
        bad.add(k);
      }
    }
    return out;
  }

  seqOfMaps(node: YamlNode | null, path: string, keyPos: Pos, what: string): { map: YAMLMap; path: string; pos: Pos }[] {
    if (!isSeq(node)) {
      this.sink.add('RECIPE_TYPE', `'${what}' must be a list (got ${describe(node)})`, this.pos(node, path, keyPos));
      return [];
    }
    const out: { map: YAMLMap; path: string; pos: Pos }[] = [];
    node.items.forEach((item, i) => {
      const it = this.deref(item);
      const ipath = `${path}[${i}]`;
      if (!isMap(it)) {
        this.sink.add('RECIPE_TYPE', `each entry of '${what}' must be a mapping (got ${describe(it)})`, this.pos(it, ipath, keyPos));
        return;
      }
      out.push({ map: it, path: ipath, pos: this.pos(it, ipath, keyPos) });
    });
    return out;
  }

  modelEntry(m: YAMLMap, path: string, pos: Pos): ModelEntry | undefined {
    const e = this.entries(m, path, MODEL_KEYS);
    const model = this.entryRef(e, path, pos, 'a model entry');
    const pe = e.get('parameters');
    const parameters = pe ? this.params(pe.node, `${path}.parameters`, pe.keyPos) : new Map();
    return model ? { model, parameters, pos } : undefined;
  }

  layerRange(node: YamlNode | null, path: string, keyPos: Pos): Located<readonly [number, number]> | undefined {
    const pos = this.pos(node, path, keyPos);
    if (isSeq(node) && node.items.length === 2) {
      const [a, b] = node.items.map((i) => this.scalarValue(this.deref(i)));
      if (typeof a === 'number' && typeof b === 'number' && Number.isInteger(a) && Number.isInteger(b) && a >= 0 && b >= a) {
        return { value: [a, b], pos };
      }
    }
    this.sink.add('RECIPE_LAYER_RANGE', `layer_range must be [start, end) with 0 <= start <= end integers (got ${describe(node)})`, pos);
    return undefined;
  }

  slice(m: YAMLMap, path: string, pos: Pos): SliceNode | undefined {
    const e = this.entries(m, path, SLICE_KEYS);
    const se = e.get('sources');
    if (!se) {
      this.sink.add('RECIPE_MISSING_KEY', "a slice needs 'sources'", pos);
      return undefined;
    }
    const sources: SliceSource[] = [];
    for (const s of this.seqOfMaps(se.node, `${path}.sources`, se.keyPos, 'sources')) {
      const se2 = this.entries(s.map, s.path, SOURCE_KEYS);
      const model = this.entryRef(se2, s.path, s.pos, 'a slice source');
      const lr = se2.get('layer_range');
      const layerRange = lr ? this.layerRange(lr.node, `${s.path}.layer_range`, lr.keyPos) : undefined;
      const pe = se2.get('parameters');
      const parameters = pe ? this.params(pe.node, `${s.path}.parameters`, pe.keyPos) : new Map();
      if (model) sources.push({ model, ...(layerRange ? { layerRange } : {}), parameters, pos: s.pos });
    }
    if (sources.length === 0 && isSeq(se.node) && se.node.items.length === 0) {
      this.sink.add('RECIPE_MISSING_KEY', 'a slice needs at least one source', se.keyPos);
    }
    const pe = e.get('parameters');
    const parameters = pe ? this.params(pe.node, `${path}.parameters`, pe.keyPos) : new Map();
    const be = e.get('base_model');
    const baseModel = be ? this.modelRef(be.node, `${path}.base_model`, be.keyPos) : undefined;
    const rw = e.get('residual_weight');
    if (rw) this.sink.warnings.push({ code: 'RECIPE_IGNORED', message: 'residual_weight is ignored (as in mergekit)', pos: rw.keyPos });
    return { sources, parameters, ...(baseModel ? { baseModel } : {}), pos };
  }

  dtype(node: YamlNode | null, path: string, keyPos: Pos): Located<DType> | undefined {
    const s = this.str(node, path, keyPos, path);
    if (!s) return undefined;
    const d = parseDType(s.value);
    if (d === undefined || !COMPUTE_DTYPES.includes(d)) {
      this.sink.add('RECIPE_TYPE', `${path} must be float32, float16 or bfloat16 (got '${s.value}')`, s.pos);
      return undefined;
    }
    return { value: d, pos: s.pos };
  }

  document(index: number, text: string): RecipeDoc | undefined {
    const root = this.deref(this.doc.contents as YamlNode | null);
    const docPos = this.pos(root, '');
    if (!isMap(root)) {
      this.sink.add('RECIPE_NOT_MAPPING', `a recipe document must be a mapping of keys (got ${describe(root)})`, docPos);
      return undefined;
    }
    const e = this.entries(root, '', TOP_KEYS);
    const mm = e.get('merge_method');
    let mergeMethod: Located<string> | undefined;
    if (!mm) this.sink.add('RECIPE_MISSING_KEY', "the recipe needs 'merge_method'", docPos);
    else mergeMethod = this.str(mm.node, 'merge_method', mm.keyPos, 'merge_method');

    const be = e.get('base_model');
    const baseModel = be ? this.modelRef(be.node, 'base_model', be.keyPos) : undefined;

    let models: ModelEntry[] | undefined;
    const ms = e.get('models');
    if (ms) {
      models = [];
      for (const m of this.seqOfMaps(ms.node, 'models', ms.keyPos, 'models')) {
        const me = this.modelEntry(m.map, m.path, m.pos);
        if (me) models.push(me);
      }
    }
    let slices: SliceNode[] | undefined;
    const ss = e.get('slices');
    if (ss) {
      slices = [];
      for (const s of this.seqOfMaps(ss.node, 'slices', ss.keyPos, 'slices')) {
        const sl = this.slice(s.map, s.path, s.pos);
        if (sl) slices.push(sl);
      }
    }
    if (ms && ss) this.sink.add('RECIPE_CONFLICT', "use either 'models' or 'slices', not both", ss.keyPos);
    const mod = e.get('modules');
    if (mod) this.sink.add('RECIPE_UNSUPPORTED', "'modules' (multi-module architectures) is not supported yet", mod.keyPos);
    if (!ms && !ss && !mod) this.sink.add('RECIPE_MISSING_KEY', "the recipe needs 'models' or 'slices'", docPos);

    const pe = e.get('parameters');
    const parameters = pe ? this.params(pe.node, 'parameters', pe.keyPos) : new Map();
    const de = e.get('dtype');
    const dtype = de ? this.dtype(de.node, 'dtype', de.keyPos) : undefined;
    const oe = e.get('out_dtype');
    const outDtype = oe ? this.dtype(oe.node, 'out_dtype', oe.keyPos) : undefined;

    let tokenizerSource: RecipeDoc['tokenizerSource'];
    const te = e.get('tokenizer_source');
    if (te) {
      const s = this.str(te.node, 'tokenizer_source', te.keyPos, 'tokenizer_source');
      if (s?.value === 'union') {
        this.sink.add('RECIPE_UNSUPPORTED', "tokenizer_source 'union' is not supported yet (use 'base' or a model)", s.pos);
      } else if (s?.value === 'base') tokenizerSource = { value: { kind: 'base' }, pos: s.pos };
      else if (s) tokenizerSource = { value: { kind: 'model', model: { ref: s.value, pos: s.pos } }, pos: s.pos };
    }
    const tk = e.get('tokenizer');
    if (tk) {
      this.sink.add('RECIPE_UNSUPPORTED', "the 'tokenizer' block is not supported yet (use tokenizer_source: base or a model)", tk.keyPos);
    }
    if (te && tk) this.sink.add('RECIPE_CONFLICT', "use either 'tokenizer_source' or 'tokenizer', not both", tk.keyPos);
    const ct = e.get('chat_template');
    if (ct) this.sink.add('RECIPE_UNSUPPORTED', "'chat_template' is not supported yet", ct.keyPos);

    const ne = e.get('name');
    const name = ne ? this.str(ne.node, 'name', ne.keyPos, 'name') : undefined;
    let seed: Located<number> | undefined;
    const se = e.get('seed');
    if (se) {
      const v = this.scalarValue(se.node);
      const pos = this.pos(se.node, 'seed', se.keyPos);
      if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) seed = { value: v, pos };
      else this.sink.add('RECIPE_TYPE', `seed must be a non-negative integer (got ${describe(se.node)})`, pos);
    }
    let forceVectorBase: Located<boolean> | undefined;
    const fe = e.get('force_vector_base');
    if (fe) {
      const v = this.scalarValue(fe.node);
      const pos = this.pos(fe.node, 'force_vector_base', fe.keyPos);
      if (typeof v === 'boolean') forceVectorBase = { value: v, pos };
      else this.sink.add('RECIPE_TYPE', `force_vector_base must be true or false (got ${describe(fe.node)})`, pos);
    }
    if (!mergeMethod) return undefined;
    return {
      file: this.file,
      index,
      ...(name ? { name } : {}),
      mergeMethod,
      ...(baseModel ? { baseModel } : {}),
      ...(models ? { models } : {}),
      ...(slices ? { slices } : {}),
      parameters,
      ...(dtype ? { dtype } : {}),
      ...(outDtype ? { outDtype } : {}),
      ...(tokenizerSource ? { tokenizerSource } : {}),
      ...(seed ? { seed } : {}),
      ...(forceVectorBase ? { forceVectorBase } : {}),
      pos: docPos,
      text,
    };
  }
}

export const ANY_FILTER: NameFilter = { source: '*', kind: 'any', test: () => true };

/** mergekit filters are substrings; `re:` prefixes a regular expression; `*` matches everything. */
export function makeFilter(source: string, onError?: (message: string) => void): NameFilter | undefined {
  if (source === '*') return { ...ANY_FILTER };
  if (source.startsWith('re:')) {
    const body = source.slice(3);
    try {
      const re = new RegExp(body);
      return { source, kind: 'regex', test: (name) => re.test(name) };
    } catch (e) {
      onError?.(`invalid regular expression in filter '${source}': ${(e as Error).message}`);
      return undefined;
    }
  }
  return { source, kind: 'substring', test: (name) => name.includes(source) };
}

/** PyYAML's YAML 1.1 booleans beyond true/false (which YAML 1.2 reads as strings). */
const YAML11_BOOL = /^(yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF)$/;

/** Parameters a recipe sets to a value that was reported invalid, by the parameters mapping they belong to. */
export const invalidParams = new WeakMap<ParamsNode, Set<string>>();

function describe(node: unknown): string {
  if (node === null || node === undefined) return 'nothing';
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    const v = node.value;
    if (v === null) return 'null';
    if (typeof v === 'number' && !Number.isFinite(v)) return `a number that is not finite (${String(v)})`;
    return `${typeof v} ${JSON.stringify(v)}`;
  }
  return 'an unsupported value';
}

/** Parse recipe text (one or more YAML documents). Throws RecipeProblems listing every problem. */
export function parseRecipe(text: string, file: string, options: LoadOptions = {}): Recipe {
  const sink = new ProblemSink(Boolean(options.lenient));
  const recipe = parseRecipeInto(text, file, sink);
  if (sink.problems.length > 0) throw new RecipeProblems(file, sortProblems(sink.problems));
  return recipe;
}

/** Parse into a problem sink without throwing (documents with problems are kept when usable). */
export function parseRecipeInto(text: string, file: string, sink: ProblemSink): Recipe {
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const list = [...docs];
  if (list.length === 0) sink.add('RECIPE_MISSING_KEY', 'the recipe is empty', { file, line: 1, col: 1, path: '' });
  const out: RecipeDoc[] = [];
  for (const [i, doc] of list.entries()) {
    let syntaxOk = true;
    for (const err of doc.errors) {
      syntaxOk = false;
      const lp = err.linePos?.[0] ?? lc.linePos(err.pos[0]);
      const code: ErrorCode = err.code === 'DUPLICATE_KEY' ? 'RECIPE_UNKNOWN_KEY' : 'RECIPE_YAML';
      const first = err.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
      const msg = err.code === 'DUPLICATE_KEY' ? 'duplicate key in mapping' : `YAML syntax: ${/Maximum call stack/.test(first) ? 'the nesting is too deep' : first}`;
      sink.add(code, msg, { file, line: lp.line, col: lp.col, path: '' });
    }
    if (!syntaxOk) continue;
    const range = doc.range;
    const docText = text.slice(range[0], range[2] ?? range[1]);
    const d = new DocReader(file, doc, lc, sink).document(i, docText);
    if (d) out.push(d);
  }
  return { file, text, docs: out, warnings: sink.warnings };
}

export function sortProblems(ps: RecipeError[]): RecipeError[] {
  return [...ps].sort((a, b) => (a.where.line ?? 0) - (b.where.line ?? 0) || (a.where.col ?? 0) - (b.where.col ?? 0));
}

/** Read a recipe file's text (RECIPE_NOT_FOUND when it cannot be read). */
export async function readRecipeText(path: string, what = 'recipe'): Promise<string> {
  let size: number;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new RecipeError('RECIPE_NOT_FOUND', `cannot read ${what}: ${path} is not a regular file`, { where: { file: path } });
    size = st.size;
  } catch (e) {
    if (e instanceof RecipeError) throw e;
    throw new RecipeError('RECIPE_NOT_FOUND', `cannot read ${what}: ${(e as Error).message}`, { where: { file: path }, cause: e });
  }
  // parsing holds about 150x the text in memory: a recipe is a few kB (one with a filter per tensor of a 70B model,
  // ~100 kB)
  if (size > MAX_RECIPE_BYTES) {
    throw new RecipeError('RECIPE_TOO_LARGE', `the ${what} is ${size} bytes; files of more than ${MAX_RECIPE_BYTES} bytes are refused`, { where: { file: path } });
  }
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw new RecipeError('RECIPE_NOT_FOUND', `cannot read ${what}: ${(e as Error).message}`, { where: { file: path }, cause: e });
  }
}

/** The largest recipe file read (bytes). */
export const MAX_RECIPE_BYTES = 2 ** 20;

/** Read and parse a recipe file. */
export async function readRecipeFile(path: string, options: LoadOptions = {}): Promise<Recipe> {
  return parseRecipe(await readRecipeText(path), path, options);
}
