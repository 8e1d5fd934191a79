// Model layout inferred from tensor names, as mergekit does for architectures it has no definition for: layer
// tensors `<prefix><index>.<suffix>` (e.g. model.layers.7.mlp.up_proj.weight), pre-layer tensors (embeddings)
// and post-layer tensors (final norm, lm_head). Pure.

export interface LayerName {
  readonly prefix: string;
  readonly index: number;
  readonly suffix: string;
}

export interface ModelLayout {
  /** the common layer prefix, e.g. "model.layers."; undefined when the model has no numbered layers */
  readonly prefix: string | undefined;
  readonly numLayers: number;
  /** tensor names before the layers (embeddings), in input order */
  readonly pre: readonly string[];
  /** tensor names after the layers (final norm, heads), in input order */
  readonly post: readonly string[];
  /** per layer index: the tensor suffixes present (after "<prefix><index>.") */
  readonly layers: ReadonlyMap<number, readonly string[]>;
}

const LAYER_RE = /^(.*?\.)(\d+)\.(.+)$/;
const EMBED_RE = /(^|\.)(embed_tokens|embeddings?|wte|wpe|tok_embeddings|word_embeddings|embed_in|position_embeddings|token_type_embeddings)(\.|$)/;

export function splitLayerName(name: string, prefix: string): LayerName | undefined {
  if (!name.startsWith(prefix)) return undefined;
  const rest = name.slice(prefix.length);
  const m = /^(\d+)\.(.+)$/.exec(rest);
  if (!m) return undefined;
  return { prefix, index: Number(m[1]), suffix: m[2]! };
}

/** Pick the numbered prefix that covers the most tensors (ties: the shortest prefix). */
export function inferLayerPrefix(names: readonly string[]): string | undefined {
  const counts = new Map<string, number>();
  for (const n of names) {
    const m = LAYER_RE.exec(n);
    if (m) counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + 1);
  }
  let best: string | undefined;
  let bestCount = 0;
  for (const [p, c] of counts) {
    if (c > bestCount || (c === bestCount && best !== undefined && p.length < best.length)) {
      best = p;
      bestCount = c;
    }
  }
  return best;
}

export function isEmbeddingName(name: string): boolean {
  return EMBED_RE.test(name) || /(^|\.)lm_head(\.|$)/.test(name) || /(^|\.)embed_out(\.|$)/.test(name);
}

export function inferLayout(names: readonly string[], prefixHint?: string): ModelLayout {
  const prefix = prefixHint ?? inferLayerPrefix(names);
  const layers = new Map<number, string[]>();
  const pre: string[] = [];
  const post: string[] = [];
  for (const n of names) {
    const l = prefix === undefined ? undefined : splitLayerName(n, prefix);
    if (l) {
      let list = layers.get(l.index);
      if (!list) layers.set(l.index, (list = []));
      list.push(l.suffix);
    } else if (EMBED_RE.test(n)) pre.push(n);
    else post.push(n);
  }
  const numLayers = layers.size === 0 ? 0 : Math.max(...layers.keys()) + 1;
  return { prefix: layers.size === 0 ? undefined : prefix, numLayers, pre, post, layers };
}

export function layerTensorName(prefix: string, index: number, suffix: string): string {
  return `${prefix}${index}.${suffix}`;
}
