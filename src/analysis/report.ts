// Self-contained HTML reports: a list of ReportItems (heatmaps, bars, lines, scatter maps, dendrograms, tables, text)
// rendered to one HTML string with inline CSS and hand-made inline SVG: no scripts, no network, no fonts to fetch.
// Deterministic (same items, same bytes: no dates, no randomness, fixed number formatting); all text is escaped.
// Pure: must not import node: modules, src/io, src/eval or src/cli (writing the file is report-write.ts's job).

import { UsageError } from '../errors.js';

/** A table cell: text, a number (formatted by fmtNum), or null (no value). */
export type Cell = string | number | null;

/** One named row of values, aligned with a chart's categories; null = no value (a gap). */
export interface Series {
  name: string;
  values: (number | null)[];
}

/** A matrix of values as coloured cells (pairwise cosine similarity, sign-conflict rate, Jaccard ...). */
export interface HeatmapItem {
  kind: 'heatmap';
  title: string;
  /** row labels; also the column labels unless `columns` is given */
  labels: string[];
  columns?: string[];
  /** values[row][column]; null = no value (drawn hatched grey) */
  values: (number | null)[][];
  /** colour domain [low, high]; default: [-m, m] (m = max |v|) when a value is negative, else [min, max] */
  domain?: [number, number];
  /** default: 'diverging' when the domain spans 0, else 'sequential' */
  scale?: 'sequential' | 'diverging';
  note?: string;
}

/** Grouped bars: one group per category (layer), one bar per series (model). */
export interface BarsItem {
  kind: 'bars';
  title: string;
  categories: string[];
  series: Series[];
  yLabel?: string;
  /** logarithmic y axis (non-positive values are not drawn) */
  log?: boolean;
  note?: string;
}

/** Lines over an ordered x axis (layers, singular value index); series may be shorter than the categories. */
export interface LinesItem {
  kind: 'lines';
  title: string;
  /** x labels; default 1, 2, ... up to the longest series */
  categories?: string[];
  series: Series[];
  xLabel?: string;
  yLabel?: string;
  log?: boolean;
  note?: string;
}

/** A labelled 2-D map (classical MDS of a distance matrix); drawn with equal x and y scales. */
export interface ScatterItem {
  kind: 'scatter';
  title: string;
  points: { label: string; x: number; y: number }[];
  xLabel?: string;
  yLabel?: string;
  /** e.g. the stress of the embedding */
  note?: string;
}

/**
 * Hierarchical clustering as a tree. `merges` in order, scipy-linkage style: index i < n is leaf i, index n + k is
 * the cluster made by merges[k]; exactly n - 1 merges, each index used once.
 */
export interface DendrogramItem {
  kind: 'dendrogram';
  title: string;
  labels: string[];
  merges: { a: number; b: number; height: number }[];
  note?: string;
}

export interface TableItem {
  kind: 'table';
  title: string;
  columns: string[];
  rows: Cell[][];
  note?: string;
}

export interface TextItem {
  kind: 'text';
  title?: string;
  paragraphs: string[];
}

/** A heading that groups the items after it (listed in the contents). */
export interface SectionItem {
  kind: 'section';
  title: string;
  note?: string;
}

export type ReportItem = HeatmapItem | BarsItem | LinesItem | ScatterItem | DendrogramItem | TableItem | TextItem | SectionItem;

export interface Report {
  title: string;
  subtitle?: string;
  items: ReportItem[];
}

// ---------------------------------------------------------------------------------------------------------------
// text and numbers

/** Escape text for HTML content and attribute values (also valid inside inline SVG). */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&quot;' : '&#39;'));
}

/** A number for people: 4 significant digits, exponent outside [1e-3, 1e5); '–' for null and NaN. Deterministic. */
export function fmtNum(x: number | null | undefined): string {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  if (x === Infinity) return '∞';
  if (x === -Infinity) return '−∞';
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e5 || a < 1e-3) return x.toExponential(2);
  return String(Number(x.toPrecision(4)));
}

/** A coordinate with at most 2 decimals (smaller files, stable bytes). */
function c2(x: number): string {
  const r = Math.round(x * 100) / 100;
  return String(r === 0 ? 0 : r);
}

function truncate(s: string, max: number): string {
  return s.length <= max ? s : s.slice(0, max - 1) + '…';
}

/** Rough width in px of a label in the 11px sans-serif chart font. */
function textWidth(s: string, px = 11): number {
  return s.length * px * 0.58;
}

const isNum = (v: number | null | undefined): v is number => typeof v === 'number' && Number.isFinite(v);

// ---------------------------------------------------------------------------------------------------------------
// colour scales

type Rgb = [number, number, number];
const VIRIDIS: Rgb[] = [
  [68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37],
];
const RDBU: Rgb[] = [
  [33, 102, 172], [67, 147, 195], [146, 197, 222], [209, 229, 240], [247, 247, 247],
  [253, 219, 199], [244, 165, 130], [214, 96, 77], [178, 24, 43],
];

function hex(c: Rgb): string {
  return '#' + c.map((v) => Math.round(v).toString(16).padStart(2, '0')).join('');
}

function ramp(stops: readonly Rgb[], t: number): Rgb {
  const u = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(u));
  const f = u - i;
  const a = stops[i];
  const b = stops[i + 1];
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
}

/** A colour scale over [low, high]: `color(v)` as #rrggbb; t = (v - low) / (high - low), clamped. */
export interface ColorScale {
  kind: 'sequential' | 'diverging';
  domain: [number, number];
  color(v: number): string;
  /** black or white, whichever reads better on color(v) */
  ink(v: number): string;
}

export function colorScale(kind: 'sequential' | 'diverging', domain: [number, number]): ColorScale {
  const [lo, hi] = domain;
  const stops = kind === 'sequential' ? VIRIDIS : RDBU;
  const t = (v: number): number => (hi === lo ? 0.5 : (v - lo) / (hi - lo));
  return {
    kind,
    domain: [lo, hi],
    color: (v) => hex(ramp(stops, t(v))),
    ink: (v) => {
      const [r, g, b] = ramp(stops, t(v));
      return 0.299 * r + 0.587 * g + 0.114 * b > 140 ? '#111' : '#fff';
    },
  };
}

/** The colour scale a heatmap uses by default (see HeatmapItem.domain and .scale). */
export function heatmapScale(item: Pick<HeatmapItem, 'values' | 'domain' | 'scale'>): ColorScale {
  let lo = Infinity;
  let hi = -Infinity;
  for (const row of item.values) for (const v of row) if (isNum(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (lo === Infinity) { lo = 0; hi = 1; }
  let domain: [number, number];
  if (item.domain) domain = item.domain;
  else if (lo < 0) { const m = Math.max(-lo, hi); domain = [-m, m]; }
  else domain = [lo, hi];
  const kind = item.scale ?? (domain[0] < 0 && domain[1] > 0 ? 'diverging' : 'sequential');
  return colorScale(kind, domain);
}

const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];
const seriesColor = (i: number): string => PALETTE[i % PALETTE.length];

// ---------------------------------------------------------------------------------------------------------------
// axes

/** A linear or log10 axis mapping [d0, d1] onto pixels [p0, p1], with tick values. */
export interface Axis {
  map(v: number): number;
  ticks: number[];
  log: boolean;
  domain: [number, number];
}

function niceStep(span: number, count: number): number {
  const raw = span / Math.max(1, count);
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 2.5 ? 2.5 : m <= 5 ? 5 : 10) * p;
}

/** A linear axis over [min, max] extended to nice tick values (about `count` ticks). */
export function linearAxis(min: number, max: number, p0: number, p1: number, count = 5): Axis {
  if (!(Number.isFinite(min) && Number.isFinite(max))) { min = 0; max = 1; }
  if (min === max) { const d = min === 0 ? 1 : Math.abs(min) * 0.1; min -= d; max += d; }
  const step = niceStep(max - min, count);
  const d0 = Math.floor(min / step + 1e-9) * step;
  const d1 = Math.ceil(max / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let i = 0; d0 + i * step <= d1 + step * 1e-9; i++) ticks.push(Number((d0 + i * step).toPrecision(12)));
  return { map: (v) => p0 + ((v - d0) / (d1 - d0)) * (p1 - p0), ticks, log: false, domain: [d0, d1] };
}

/** A log10 axis over [min, max] (both > 0), extended to whole decades; ticks at decades (and 2, 5 when few). */
export function logAxis(min: number, max: number, p0: number, p1: number): Axis {
  if (!(min > 0 && Number.isFinite(min))) min = 1;
  if (!(max > 0 && Number.isFinite(max)) || max < min) max = min;
  let e0 = Math.floor(Math.log10(min) + 1e-9);
  let e1 = Math.ceil(Math.log10(max) - 1e-9);
  if (e1 === e0) e1 = e0 + 1;
  if (e1 - e0 > 12) e0 = e1 - 12;
  const ticks: number[] = [];
  for (let e = e0; e <= e1; e++) {
    ticks.push(Number(`1e${e}`));
    if (e1 - e0 <= 2 && e < e1) ticks.push(Number(`2e${e}`), Number(`5e${e}`));
  }
  const l0 = e0;
  const l1 = e1;
  return { map: (v) => p0 + ((Math.log10(v) - l0) / (l1 - l0)) * (p1 - p0), ticks, log: true, domain: [Number(`1e${e0}`), Number(`1e${e1}`)] };
}

// ---------------------------------------------------------------------------------------------------------------
// validation: a malformed item is a caller bug; report where (items[i].field) rather than draw nonsense

function fail(index: number, field: string, message: string): never {
  throw new UsageError('USAGE', `report item ${index}: ${message}`, { where: { path: `items[${index}].${field}` } });
}

function checkItem(item: ReportItem, i: number): void {
  switch (item.kind) {
    case 'heatmap': {
      const cols = item.columns ?? item.labels;
      if (item.values.length !== item.labels.length) fail(i, 'values', `expected ${item.labels.length} rows (one per label), got ${item.values.length}`);
      item.values.forEach((r, k) => {
        if (r.length !== cols.length) fail(i, `values[${k}]`, `expected ${cols.length} values (one per column), got ${r.length}`);
      });
      if (item.domain && !(Number.isFinite(item.domain[0]) && Number.isFinite(item.domain[1]) && item.domain[0] <= item.domain[1])) {
        fail(i, 'domain', `expected finite [low, high] with low <= high, got [${item.domain.join(', ')}]`);
      }
      return;
    }
    case 'bars':
      item.series.forEach((s, k) => {
        if (s.values.length !== item.categories.length) fail(i, `series[${k}].values`, `expected ${item.categories.length} values (one per category), got ${s.values.length}`);
      });
      return;
    case 'lines':
      if (item.categories) {
        const n = item.categories.length;
        item.series.forEach((s, k) => {
          if (s.values.length > n) fail(i, `series[${k}].values`, `expected at most ${n} values (one per category), got ${s.values.length}`);
        });
      }
      return;
    case 'dendrogram': {
      const n = item.labels.length;
      if (n >= 1 && item.merges.length !== n - 1) fail(i, 'merges', `expected ${n - 1} merges for ${n} labels, got ${item.merges.length}`);
      const used = new Set<number>();
      item.merges.forEach((m, k) => {
        for (const x of [m.a, m.b]) {
          if (!(Number.isSafeInteger(x) && x >= 0 && x < n + k)) fail(i, `merges[${k}]`, `index ${x} is neither a leaf nor an earlier cluster (expected 0..${n + k - 1})`);
          if (used.has(x)) fail(i, `merges[${k}]`, `index ${x} is merged twice`);
          used.add(x);
        }
        if (!Number.isFinite(m.height)) fail(i, `merges[${k}].height`, `expected a finite height, got ${m.height}`);
      });
      return;
    }
    case 'table':
      item.rows.forEach((r, k) => {
        if (r.length !== item.columns.length) fail(i, `rows[${k}]`, `expected ${item.columns.length} cells (one per column), got ${r.length}`);
      });
      return;
    case 'scatter':
      item.points.forEach((p, k) => {
        if (!(Number.isFinite(p.x) && Number.isFinite(p.y))) fail(i, `points[${k}]`, `expected finite x and y, got (${p.x}, ${p.y})`);
      });
      return;
    case 'text':
    case 'section':
      return;
    default: {
      const never: never = item;
      fail(i, 'kind', `unknown kind '${String((never as { kind?: unknown }).kind)}'`);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// SVG pieces

const FONT = 11;

function svgOpen(w: number, h: number, label: string): string {
  const wide = w > 1400 ? ' class="wide"' : '';
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${c2(w)} ${c2(h)}" width="${c2(w)}" height="${c2(h)}"${wide} role="img" aria-label="${escapeHtml(label)}">`;
}

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${c2(x)}" y="${c2(y)}"${attrs ? ' ' + attrs : ''}>${escapeHtml(s)}</text>`;
}

/** A label truncated to `max` characters, with the full text in a <title> when cut. */
function label(x: number, y: number, s: string, max: number, attrs = ''): string {
  const t = truncate(s, max);
  if (t === s) return text(x, y, s, attrs);
  return `<text x="${c2(x)}" y="${c2(y)}"${attrs ? ' ' + attrs : ''}><title>${escapeHtml(s)}</title>${escapeHtml(t)}</text>`;
}

function yAxisSvg(axis: Axis, x: number, left: number, right: number, title?: string, top = 0, bottom = 0): string {
  let s = '<g class="axis">';
  for (const t of axis.ticks) {
    const y = axis.map(t);
    s += `<line class="grid" x1="${c2(left)}" x2="${c2(right)}" y1="${c2(y)}" y2="${c2(y)}"/>`;
    s += text(x - 4, y + 4, fmtNum(t), 'text-anchor="end"');
  }
  if (title) {
    const cy = (top + bottom) / 2;
    s += text(12, cy, title, `text-anchor="middle" transform="rotate(-90 12 ${c2(cy)})"`);
  }
  return s + '</g>';
}

/** x labels under a plot: horizontal when they fit, else rotated 45°; returns the svg and the height it needs. */
function xLabels(cats: readonly string[], xs: readonly number[], y: number, slot: number): { svg: string; height: number } {
  const maxLen = 28;
  const widest = Math.max(0, ...cats.map((c) => textWidth(truncate(c, maxLen))));
  const step = cats.length > 40 ? Math.ceil(cats.length / 40) : 1;
  let svg = '<g class="axis">';
  if (widest <= slot * step - 4) {
    cats.forEach((c, i) => {
      if (i % step === 0) svg += label(xs[i], y + 14, c, maxLen, 'text-anchor="middle"');
    });
    return { svg: svg + '</g>', height: 22 };
  }
  cats.forEach((c, i) => {
    if (i % step !== 0) return;
    const yy = y + 10;
    svg += label(xs[i], yy, c, maxLen, `text-anchor="end" transform="rotate(-45 ${c2(xs[i])} ${c2(yy)})"`);
  });
  return { svg: svg + '</g>', height: 16 + widest * 0.71 };
}

// ---------------------------------------------------------------------------------------------------------------
// HTML pieces

function tableHtml(columns: readonly string[], rows: readonly (readonly Cell[])[], caption?: string): string {
  const cell = (v: Cell, head = false): string => {
    const tag = head ? 'th' : 'td';
    if (typeof v === 'number') return `<${tag} class="num">${escapeHtml(fmtNum(v))}</${tag}>`;
    if (v === null) return `<${tag} class="num">–</${tag}>`;
    return `<${tag}>${escapeHtml(v)}</${tag}>`;
  };
  let s = '<div class="tablewrap"><table>';
  if (caption) s += `<caption>${escapeHtml(caption)}</caption>`;
  s += '<thead><tr>' + columns.map((c) => `<th>${escapeHtml(c)}</th>`).join('') + '</tr></thead><tbody>';
  for (const r of rows) s += '<tr>' + r.map((v, k) => cell(v, k === 0 && typeof v === 'string')).join('') + '</tr>';
  return s + '</tbody></table></div>';
}

/** The numbers behind a chart: open when short, folded when long. */
function numbersHtml(columns: readonly string[], rows: readonly (readonly Cell[])[]): string {
  const open = rows.length <= 12 ? ' open' : '';
  return `<details class="numbers"${open}><summary>numbers (${rows.length} row${rows.length === 1 ? '' : 's'})</summary>${tableHtml(columns, rows)}</details>`;
}

function legendHtml(series: readonly Series[]): string {
  if (series.length <= 1 && series.every((s) => s.name === '')) return '';
  return '<div class="legend">' + series.map((s, i) => `<span><i style="background:${seriesColor(i)}"></i>${escapeHtml(s.name)}</span>`).join('') + '</div>';
}

// ---------------------------------------------------------------------------------------------------------------
// charts

function heatmapSvg(item: HeatmapItem): string {
  const rows = item.labels;
  const cols = item.columns ?? item.labels;
  const scale = heatmapScale(item);
  const n = Math.max(rows.length, cols.length, 1);
  const cell = Math.max(10, Math.min(48, Math.floor(560 / n)));
  const maxLen = 28;
  const left = 8 + Math.max(20, ...rows.map((r) => textWidth(truncate(r, maxLen))));
  const top = 12;
  const gw = cell * cols.length;
  const gh = cell * rows.length;
  const colLabelH = 12 + Math.max(10, ...cols.map((c) => textWidth(truncate(c, maxLen)))) * 0.71;
  const legendX = left + gw + 24;
  const legendH = Math.max(120, gh);
  const w = legendX + 14 + 8 + 64;
  const h = top + Math.max(gh + colLabelH, legendH + 10) + 8;
  const showText = cell >= 34;
  let s = svgOpen(w, h, item.title);
  s += '<g class="cells">';
  item.values.forEach((row, i) => {
    row.forEach((v, j) => {
      const x = left + j * cell;
      const y = top + i * cell;
      const tip = `${rows[i]} × ${cols[j]}: ${fmtNum(v)}`;
      const fill = isNum(v) ? scale.color(v) : '#d0d0d0';
      s += `<rect x="${c2(x)}" y="${c2(y)}" width="${cell}" height="${cell}" fill="${fill}"><title>${escapeHtml(tip)}</title></rect>`;
      if (showText && isNum(v)) s += text(x + cell / 2, y + cell / 2 + 4, fmtNum(Number(v.toPrecision(2))), `text-anchor="middle" class="cellv" style="fill:${scale.ink(v)}"`);
    });
  });
  s += '</g><g class="axis">';
  rows.forEach((r, i) => (s += label(left - 6, top + i * cell + cell / 2 + 4, r, maxLen, 'text-anchor="end"')));
  cols.forEach((c, j) => {
    const x = left + j * cell + cell / 2;
    const y = top + gh + 10;
    s += label(x, y, c, maxLen, `text-anchor="end" transform="rotate(-45 ${c2(x)} ${c2(y)})"`);
  });
  s += '</g>';
  // legend: a vertical colour bar of 32 steps, high at the top
  const steps = 32;
  const [lo, hi] = scale.domain;
  s += '<g class="colorbar">';
  for (let k = 0; k < steps; k++) {
    const v = hi - ((k + 0.5) / steps) * (hi - lo);
    s += `<rect x="${c2(legendX)}" y="${c2(top + (k * legendH) / steps)}" width="14" height="${c2(legendH / steps + 0.5)}" fill="${scale.color(v)}"/>`;
  }
  s += `<rect x="${c2(legendX)}" y="${top}" width="14" height="${c2(legendH)}" fill="none" stroke="#888"/>`;
  for (let k = 0; k <= 4; k++) {
    const v = hi - (k / 4) * (hi - lo);
    s += text(legendX + 18, top + (k * legendH) / 4 + 4, fmtNum(Number(v.toPrecision(6))));
  }
  return s + '</g></svg>';
}

function heatmapHtml(item: HeatmapItem): string {
  const cols = item.columns ?? item.labels;
  const rows = item.values.map((r, i): Cell[] => [item.labels[i], ...r]);
  return `<div class="chart">${heatmapSvg(item)}</div>` + numbersHtml(['', ...cols], rows);
}

function valueAxis(values: readonly (number | null)[], log: boolean, p0: number, p1: number, zero: boolean): Axis {
  const vs = values.filter(isNum).filter((v) => !log || v > 0);
  if (log) return logAxis(vs.length ? Math.min(...vs) : 1, vs.length ? Math.max(...vs) : 10, p0, p1);
  let lo = vs.length ? Math.min(...vs) : 0;
  let hi = vs.length ? Math.max(...vs) : 1;
  if (zero) { lo = Math.min(0, lo); hi = Math.max(0, hi); }
  return linearAxis(lo, hi, p0, p1);
}

function barsSvg(item: BarsItem): string {
  const cats = item.categories;
  const ns = Math.max(1, item.series.length);
  const slot = Math.max(14, ns * 7);
  const left = 64;
  const right = 16;
  const top = 12;
  const ph = 260;
  const pw = Math.max(860, cats.length * slot);
  const axis = valueAxis(item.series.flatMap((s) => s.values), Boolean(item.log), top + ph, top, !item.log);
  const base = axis.log ? top + ph : axis.map(0);
  const gw = pw / Math.max(1, cats.length);
  const bw = (gw * 0.8) / ns;
  const xs = cats.map((_, i) => left + gw * i + gw / 2);
  const xl = xLabels(cats, xs, top + ph, gw);
  const w = left + pw + right;
  const h = top + ph + xl.height + 6;
  let s = svgOpen(w, h, item.title) + yAxisSvg(axis, left, left, left + pw, item.yLabel, top, top + ph);
  s += '<g class="bars">';
  item.series.forEach((ser, k) => {
    ser.values.forEach((v, i) => {
      if (!isNum(v) || (axis.log && v <= 0)) return;
      const x = left + gw * i + gw * 0.1 + bw * k;
      const y = axis.map(v);
      const y0 = Math.min(y, base);
      const bh = Math.max(0.5, Math.abs(base - y));
      const tip = `${ser.name ? ser.name + ', ' : ''}${cats[i]}: ${fmtNum(v)}`;
      s += `<rect x="${c2(x)}" y="${c2(y0)}" width="${c2(Math.max(0.5, bw - 0.5))}" height="${c2(bh)}" fill="${seriesColor(k)}"><title>${escapeHtml(tip)}</title></rect>`;
    });
  });
  s += '</g>';
  s += `<line class="baseline" x1="${left}" x2="${c2(left + pw)}" y1="${c2(base)}" y2="${c2(base)}"/>`;
  return s + xl.svg + '</svg>';
}

function seriesTable(cats: readonly string[], series: readonly Series[], head: string): string {
  const rows = cats.map((c, i): Cell[] => [c, ...series.map((s) => (i < s.values.length ? s.values[i] : null))]);
  return numbersHtml([head, ...series.map((s, k) => s.name || `series ${k + 1}`)], rows);
}

function barsHtml(item: BarsItem): string {
  return legendHtml(item.series) + `<div class="chart">${barsSvg(item)}</div>` + seriesTable(item.categories, item.series, '');
}

function lineCategories(item: LinesItem): string[] {
  if (item.categories) return item.categories;
  const n = Math.max(0, ...item.series.map((s) => s.values.length));
  return Array.from({ length: n }, (_, i) => String(i + 1));
}

function linesSvg(item: LinesItem): string {
  const cats = lineCategories(item);
  const left = 64;
  const right = 16;
  const top = 12;
  const ph = 260;
  const pw = Math.max(860, Math.min(1600, cats.length * 8));
  const axis = valueAxis(item.series.flatMap((s) => s.values), Boolean(item.log), top + ph, top, false);
  const gx = cats.length > 1 ? pw / (cats.length - 1) : pw;
  const xs = cats.map((_, i) => (cats.length > 1 ? left + gx * i : left + pw / 2));
  const xl = xLabels(cats, xs, top + ph, gx);
  const xTitle = item.xLabel ? 16 : 0;
  const w = left + pw + right;
  const h = top + ph + xl.height + xTitle + 6;
  let s = svgOpen(w, h, item.title) + yAxisSvg(axis, left, left, left + pw, item.yLabel, top, top + ph);
  const markers = cats.length <= 60;
  item.series.forEach((ser, k) => {
    let d = '';
    let pen = false;
    let dots = '';
    ser.values.forEach((v, i) => {
      if (!isNum(v) || (axis.log && v <= 0)) { pen = false; return; }
      const x = xs[i];
      const y = axis.map(v);
      d += `${pen ? 'L' : 'M'}${c2(x)} ${c2(y)}`;
      pen = true;
      const tip = `${ser.name ? ser.name + ', ' : ''}${cats[i]}: ${fmtNum(v)}`;
      if (markers) dots += `<circle cx="${c2(x)}" cy="${c2(y)}" r="3" fill="${seriesColor(k)}"><title>${escapeHtml(tip)}</title></circle>`;
    });
    if (d) s += `<g class="series"><path d="${d}" fill="none" stroke="${seriesColor(k)}" stroke-width="2"><title>${escapeHtml(ser.name)}</title></path>${dots}</g>`;
  });
  s += xl.svg;
  if (item.xLabel) s += text(left + pw / 2, h - 6, item.xLabel, 'text-anchor="middle" class="axis"');
  return s + '</svg>';
}

function linesHtml(item: LinesItem): string {
  return legendHtml(item.series) + `<div class="chart">${linesSvg(item)}</div>` + seriesTable(lineCategories(item), item.series, item.xLabel ?? '');
}

function scatterSvg(item: ScatterItem): string {
  const size = 420;
  const left = 64;
  const top = 12;
  const maxLabel = Math.max(0, ...item.points.map((p) => textWidth(truncate(p.label, 28))));
  const right = Math.min(220, maxLabel + 16);
  const xsv = item.points.map((p) => p.x);
  const ysv = item.points.map((p) => p.y);
  const cx = xsv.length ? (Math.min(...xsv) + Math.max(...xsv)) / 2 : 0;
  const cy = ysv.length ? (Math.min(...ysv) + Math.max(...ysv)) / 2 : 0;
  const span = Math.max(xsv.length ? Math.max(...xsv) - Math.min(...xsv) : 0, ysv.length ? Math.max(...ysv) - Math.min(...ysv) : 0) || 1;
  const half = span * 0.55;
  // equal scales: both axes cover the same span (an MDS map has no preferred direction)
  const xa = linearAxis(cx - half, cx + half, left, left + size);
  const ya = linearAxis(cy - half, cy + half, top + size, top);
  const xs = (v: number): number => xa.map(v);
  const ys = (v: number): number => ya.map(v);
  const w = left + size + right;
  const h = top + size + 40;
  let s = svgOpen(w, h, item.title) + yAxisSvg(ya, left, left, left + size, item.yLabel, top, top + size);
  s += '<g class="axis">';
  for (const t of xa.ticks) {
    const x = xs(t);
    s += `<line class="grid" x1="${c2(x)}" x2="${c2(x)}" y1="${top}" y2="${top + size}"/>`;
    s += text(x, top + size + 14, fmtNum(t), 'text-anchor="middle"');
  }
  if (item.xLabel) s += text(left + size / 2, h - 6, item.xLabel, 'text-anchor="middle"');
  s += '</g><g class="points">';
  item.points.forEach((p, i) => {
    const x = xs(p.x);
    const y = ys(p.y);
    s += `<circle cx="${c2(x)}" cy="${c2(y)}" r="5" fill="${seriesColor(i)}" stroke="#333" stroke-width="0.5"><title>${escapeHtml(`${p.label}: (${fmtNum(p.x)}, ${fmtNum(p.y)})`)}</title></circle>`;
    s += label(x + 8, y + 4, p.label, 28, 'class="pointlabel"');
  });
  return s + '</g></svg>';
}

function scatterHtml(item: ScatterItem): string {
  return `<div class="chart">${scatterSvg(item)}</div>` + numbersHtml(['label', item.xLabel ?? 'x', item.yLabel ?? 'y'], item.points.map((p) => [p.label, p.x, p.y]));
}

interface TreeNode {
  x: number;
  y: number;
  members: number[];
}

function dendrogramLayout(item: DendrogramItem): { order: number[]; nodes: TreeNode[] } {
  const n = item.labels.length;
  const kids = (id: number): [number, number] | undefined => (id < n ? undefined : [item.merges[id - n].a, item.merges[id - n].b]);
  const order: number[] = [];
  const root = n + item.merges.length - 1;
  const stack = [root];
  while (stack.length) {
    const id = stack.pop() as number;
    const k = kids(id);
    if (k) stack.push(k[1], k[0]);
    else order.push(id);
  }
  const nodes: TreeNode[] = [];
  const rowOf = new Map(order.map((leaf, r) => [leaf, r]));
  for (let i = 0; i < n; i++) nodes.push({ x: 0, y: rowOf.get(i) ?? 0, members: [i] });
  item.merges.forEach((m) => {
    const a = nodes[m.a];
    const b = nodes[m.b];
    nodes.push({ x: m.height, y: (a.y + b.y) / 2, members: [...a.members, ...b.members] });
  });
  return { order, nodes };
}

function dendrogramSvg(item: DendrogramItem): string {
  const n = item.labels.length;
  const { order, nodes } = dendrogramLayout(item);
  const row = 22;
  const maxLen = 32;
  const left = 12 + Math.max(20, ...item.labels.map((l) => textWidth(truncate(l, maxLen))));
  const top = 12;
  const pw = 520;
  const ph = row * n;
  const hmax = Math.max(0, ...item.merges.map((m) => m.height));
  const xa = linearAxis(0, hmax || 1, left, left + pw);
  const X = (hgt: number): number => xa.map(hgt);
  const Y = (r: number): number => top + row * r + row / 2;
  const w = left + pw + 24;
  const h = top + ph + 34;
  let s = svgOpen(w, h, item.title) + '<g class="axis">';
  for (const t of xa.ticks) {
    const x = X(t);
    s += `<line class="grid" x1="${c2(x)}" x2="${c2(x)}" y1="${top}" y2="${c2(top + ph)}"/>`;
    s += text(x, top + ph + 14, fmtNum(t), 'text-anchor="middle"');
  }
  s += text(left + pw / 2, h - 4, 'merge height', 'text-anchor="middle"');
  order.forEach((leaf, r) => (s += label(left - 6, Y(r) + 4, item.labels[leaf], maxLen, 'text-anchor="end"')));
  s += '</g><g class="tree">';
  item.merges.forEach((m, k) => {
    const a = nodes[m.a];
    const b = nodes[m.b];
    const xm = X(m.height);
    const d = `M${c2(X(a.x))} ${c2(Y(a.y))}H${c2(xm)}V${c2(Y(b.y))}H${c2(X(b.x))}`;
    const tip = `merge ${k + 1} at ${fmtNum(m.height)}: ${nodes[n + k].members.map((i) => item.labels[i]).join(', ')}`;
    s += `<path d="${d}" fill="none" stroke="#4e79a7" stroke-width="2"><title>${escapeHtml(tip)}</title></path>`;
  });
  return s + '</g></svg>';
}

function dendrogramHtml(item: DendrogramItem): string {
  const n = item.labels.length;
  if (n < 2) return `<p class="note">one item: nothing to cluster</p>`;
  const { nodes } = dendrogramLayout(item);
  const names = (id: number): string => nodes[id].members.map((i) => item.labels[i]).join(', ');
  const rows = item.merges.map((m, k): Cell[] => [String(k + 1), names(m.a), names(m.b), m.height]);
  return `<div class="chart">${dendrogramSvg(item)}</div>` + numbersHtml(['step', 'cluster A', 'cluster B', 'height'], rows);
}

// ---------------------------------------------------------------------------------------------------------------
// the document

const CSS = `
:root{--fg:#1b1b1b;--muted:#5c5c5c;--line:#dcdcdc;--bg:#fff;--panel:#f7f7f8}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg)}
header,main,footer{max-width:1180px;margin:0 auto;padding:0 20px}
header{padding-top:18px;border-bottom:1px solid var(--line)}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:18px;margin:28px 0 4px;padding-top:8px;border-top:2px solid var(--fg)}
h3{font-size:15px;margin:0 0 4px}
.sub,.note{color:var(--muted);margin:2px 0 8px}
nav ol{columns:2;margin:8px 0 14px;padding-left:20px;font-size:13px}
nav a{color:inherit}
.item{margin:18px 0;padding:12px 14px;background:var(--panel);border:1px solid var(--line);border-radius:6px}
.chart{overflow-x:auto;background:#fff;border:1px solid var(--line);border-radius:4px;padding:6px}
.chart svg{display:block;max-width:100%;height:auto}
.chart svg.wide{max-width:none}
svg text{font:${FONT}px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;fill:#333}
svg .cellv{font-size:10px}
svg .grid{stroke:#ececec;stroke-width:1}
svg .baseline{stroke:#666;stroke-width:1}
svg .pointlabel{font-size:12px;fill:#111}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;margin:4px 0 6px;font-size:13px}
.legend i{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:5px;vertical-align:-1px}
details.numbers{margin-top:6px}
summary{cursor:pointer;color:var(--muted);font-size:13px}
.tablewrap{overflow-x:auto;max-height:480px;overflow-y:auto}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0;background:#fff}
th,td{border:1px solid var(--line);padding:2px 7px;text-align:left;white-space:nowrap}
thead th{background:#eef0f3;position:sticky;top:0}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
p{max-width:80ch}
footer{color:var(--muted);font-size:12px;padding:18px 20px 28px}
@media print{.item{break-inside:avoid}.tablewrap{max-height:none}}
`.trim();

function itemHtml(item: ReportItem, id: string): string {
  const note = 'note' in item && item.note ? `<p class="note">${escapeHtml(item.note)}</p>` : '';
  switch (item.kind) {
    case 'section':
      return `<h2 id="${id}">${escapeHtml(item.title)}</h2>${note}`;
    case 'text': {
      const h = item.title ? `<h3>${escapeHtml(item.title)}</h3>` : '';
      return `<section class="item text" id="${id}">${h}${item.paragraphs.map((p) => `<p>${escapeHtml(p)}</p>`).join('')}</section>`;
    }
    default: {
      const body =
        item.kind === 'heatmap' ? heatmapHtml(item)
        : item.kind === 'bars' ? barsHtml(item)
        : item.kind === 'lines' ? linesHtml(item)
        : item.kind === 'scatter' ? scatterHtml(item)
        : item.kind === 'dendrogram' ? dendrogramHtml(item)
        : tableHtml(item.columns, item.rows);
      return `<section class="item ${item.kind}" id="${id}" data-kind="${item.kind}"><h3>${escapeHtml(item.title)}</h3>${note}${body}</section>`;
    }
  }
}

/**
 * Render a report to one self-contained HTML document (inline CSS and SVG, no scripts, a Content-Security-Policy
 * that forbids every fetch). Throws UsageError (where.path = items[i]...) for a malformed item.
 */
export function renderReport(report: Report): string {
  report.items.forEach(checkItem);
  const ids = report.items.map((_, i) => `item-${i + 1}`);
  const toc = report.items
    .map((it, i) => ({ t: it.title, it, id: ids[i] }))
    .filter((e) => e.t !== undefined && e.t !== '')
    .map((e) => `<li${e.it.kind === 'section' ? ' class="sec"' : ''}><a href="#${e.id}">${escapeHtml(e.t as string)}</a></li>`)
    .join('');
  const body = report.items.map((it, i) => itemHtml(it, ids[i])).join('\n');
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`,
    '<meta name="generator" content="weightkit">',
    `<title>${escapeHtml(report.title)}</title>`,
    `<style>${CSS}</style>`,
    '</head>',
    '<body>',
    `<header><h1>${escapeHtml(report.title)}</h1>${report.subtitle ? `<p class="sub">${escapeHtml(report.subtitle)}</p>` : ''}${toc ? `<nav><ol>${toc}</ol></nav>` : ''}</header>`,
    `<main>\n${body}\n</main>`,
    '<footer>weightkit report: one self-contained file (inline SVG, no scripts, no network). Hover a chart for its values; each chart&#39;s numbers are in the table below it.</footer>',
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// adapter: the JSON results of `weightkit analyze vectors|distance|merge` (src/analysis/vectors.ts, distance.ts,
// merge-analysis.ts) as report items. The interfaces below are the fields the adapter reads, declared structurally
// (so this module imports nothing of theirs); extra fields are ignored.

type LayerKeyInput = 'pre' | number | 'post';

/** The per-vector statistics the report reads (VectorStats). */
export interface VectorStatsInput {
  norm: number;
  relativeChange: number | null;
  kurtosis: number;
  outlierRatio: number;
  zeroFraction: number;
}

/** GroupStats: K x K matrices over the vectors. */
export interface GroupStatsInput {
  vectors: VectorStatsInput[];
  cosine: number[][];
  signConflict: number[][];
  signConflictAll?: number;
  jaccard: number[][];
}

/** Singular values and ranks of one matrix (MatrixSpectrum). */
export interface SpectrumInput {
  singularValues: number[];
  effectiveRank: number;
  stableRank: number;
  complete?: boolean;
}

/** `analyze vectors --json` (VectorsReport). */
export interface VectorsAnalysisInput {
  kind: 'weightkit.analyze.vectors';
  base: string | null;
  labels: string[];
  density: number;
  notes?: string[];
  global: GroupStatsInput;
  layers: (GroupStatsInput & { layer: LayerKeyInput })[];
  tensors: (Partial<GroupStatsInput> & { name: string; layer: LayerKeyInput; spectra?: SpectrumInput[] })[];
  skipped?: { name: string; reason: string }[];
}

/** `analyze distance --json` (DistanceReport). */
export interface DistanceAnalysisInput {
  kind: 'weightkit.analyze.distance';
  metric: string;
  base: string | null;
  labels: string[];
  matrix: number[][];
  cosine?: number[][];
  norms?: number[];
  mds?: { coords: number[][]; stress: number; eigenvalues?: number[] };
  clustering?: { linkage: string; merges: { left: number; right: number; distance: number }[] };
}

/** `analyze merge --json` (MergeAnalysisReport). Report keys ending in `_i` refer to models[i]. */
export interface MergeAnalysisInput {
  kind: 'weightkit.analyze.merge';
  recipe: string;
  method: string;
  base: string | null;
  models: string[];
  tensors: { name: string; shape: number[]; op: string; report: Record<string, number> | null; effect: { changedFraction: number; signConflict: number } | null }[];
  layers: { layer: LayerKeyInput; report: Record<string, number>; changedFraction: number | null }[];
  totals?: { numel: number; report: Record<string, number>; changedFraction: number | null };
  warnings?: string[];
}

export type AnalysisInput = VectorsAnalysisInput | DistanceAnalysisInput | MergeAnalysisInput;

/** The kinds reportFromAnalyses accepts. */
export const ANALYSIS_KINDS = ['weightkit.analyze.vectors', 'weightkit.analyze.distance', 'weightkit.analyze.merge'] as const;

function need(ok: boolean, index: number, field: string, message: string): void {
  if (!ok) throw new UsageError('USAGE', `analysis ${index}: ${message}`, { where: { path: `analyses[${index}].${field}` } });
}

/** 'pre' → 'embeddings', 3 → 'layer 3', 'post' → 'head'. */
export function layerName(k: LayerKeyInput): string {
  return k === 'pre' ? 'embeddings' : k === 'post' ? 'head' : `layer ${k}`;
}

/** Up to `max` entries spread evenly over the list (first and last included), in order. */
function spread<T>(xs: readonly T[], max: number): T[] {
  if (xs.length <= max) return [...xs];
  const picked = new Set<number>();
  for (let k = 0; k < max; k++) picked.add(Math.round((k * (xs.length - 1)) / (max - 1)));
  return [...picked].sort((a, b) => a - b).map((i) => xs[i]);
}

/** One series per unordered pair (i < j) of a per-group K x K matrix. */
function pairSeries(labels: readonly string[], groups: readonly { m?: number[][] }[]): Series[] {
  const out: Series[] = [];
  for (let i = 0; i < labels.length; i++) {
    for (let j = i + 1; j < labels.length; j++) out.push({ name: `${labels[i]} · ${labels[j]}`, values: groups.map((g) => g.m?.[i]?.[j] ?? null) });
  }
  return out;
}

/** Spectra charts: one log-scale chart of at most this many tensors. */
const MAX_SPECTRUM_CHARTS = 6;

function vectorsItems(a: VectorsAnalysisInput, i: number): ReportItem[] {
  need(Array.isArray(a.labels), i, 'labels', 'expected an array of labels');
  need(a.global !== null && typeof a.global === 'object', i, 'global', 'expected the global statistics');
  const names = a.labels;
  const what = a.base ? `task vectors against ${a.base}` : 'vectors';
  const items: ReportItem[] = [{ kind: 'section', title: `Vectors: ${names.join(', ')}`, note: `${what}; top-k overlap at density ${fmtNum(a.density)}` }];
  if (a.notes?.length) items.push({ kind: 'text', paragraphs: a.notes });
  const g = a.global;
  items.push({
    kind: 'table',
    title: 'Whole-model statistics per vector',
    columns: ['vector', '‖δ‖', '‖δ‖/‖W‖', 'kurtosis', 'outlier ratio', 'zero fraction'],
    rows: g.vectors.map((v, k) => [names[k], v.norm, v.relativeChange, v.kurtosis, v.outlierRatio, v.zeroFraction]),
  });
  if (names.length >= 2) {
    items.push({ kind: 'heatmap', title: 'Cosine similarity', labels: names, values: g.cosine, domain: [-1, 1], scale: 'diverging', note: 'cos(δi, δj) over every shared tensor' });
    const all = g.signConflictAll !== undefined ? `; over all vectors: ${fmtNum(g.signConflictAll)}` : '';
    items.push({ kind: 'heatmap', title: 'Sign-conflict rate', labels: names, values: g.signConflict, domain: [0, 1], scale: 'sequential', note: `among positions where both are non-zero, the fraction with opposite signs${all}` });
    items.push({ kind: 'heatmap', title: `Top-k mask overlap (Jaccard, density ${fmtNum(a.density)})`, labels: names, values: g.jaccard, domain: [0, 1], scale: 'sequential' });
  }
  const layers = a.layers ?? [];
  if (layers.length > 0) {
    const cats = layers.map((l) => layerName(l.layer));
    const per = (f: (v: VectorStatsInput) => number | null): Series[] => names.map((name, k) => ({ name, values: layers.map((l) => (l.vectors[k] ? f(l.vectors[k]) : null)) }));
    const rel = per((v) => v.relativeChange);
    if (rel.some((s) => s.values.some(isNum))) items.push({ kind: 'bars', title: 'Relative change per layer ‖δ‖/‖W‖', categories: cats, series: rel, yLabel: '‖δ‖/‖W‖', note: 'where fine-tuning concentrates' });
    else items.push({ kind: 'bars', title: 'Norm per layer ‖δ‖', categories: cats, series: per((v) => v.norm), yLabel: '‖δ‖' });
    items.push({ kind: 'lines', title: 'Kurtosis per layer', categories: cats, series: per((v) => v.kurtosis), yLabel: 'excess kurtosis', note: '0 for a Gaussian; heavy tails (outliers) score high' });
    items.push({ kind: 'lines', title: 'Outlier ratio per layer', categories: cats, series: per((v) => v.outlierRatio), yLabel: 'fraction beyond 3 std', note: '0.27% for a Gaussian' });
    if (names.length >= 2) {
      items.push({ kind: 'lines', title: 'Cosine similarity per layer', categories: cats, series: pairSeries(names, layers.map((l) => ({ m: l.cosine }))), yLabel: 'cosine' });
      items.push({ kind: 'lines', title: 'Sign-conflict rate per layer', categories: cats, series: pairSeries(names, layers.map((l) => ({ m: l.signConflict }))), yLabel: 'sign conflict' });
    }
  }
  const withSpectra = (a.tensors ?? []).filter((t) => Array.isArray(t.spectra) && t.spectra.length > 0);
  if (withSpectra.length > 0) {
    const cats = withSpectra.map((t) => t.name);
    items.push({ kind: 'bars', title: 'Effective rank per matrix', categories: cats, series: names.map((name, k) => ({ name, values: withSpectra.map((t) => t.spectra?.[k]?.effectiveRank ?? null) })), yLabel: 'effective rank', note: 'entropy effective rank exp(H(σ/Σσ))' });
    items.push({ kind: 'bars', title: 'Stable rank per matrix', categories: cats, series: names.map((name, k) => ({ name, values: withSpectra.map((t) => t.spectra?.[k]?.stableRank ?? null) })), yLabel: 'stable rank', note: '‖δ‖F² / ‖δ‖₂²' });
    const shown = spread(withSpectra, MAX_SPECTRUM_CHARTS);
    for (const t of shown) {
      items.push({
        kind: 'lines',
        title: `Singular values of ${t.name} (log scale)`,
        series: names.map((name, k) => ({ name, values: t.spectra?.[k]?.singularValues ?? [] })),
        log: true,
        xLabel: 'index',
        yLabel: 'σ',
        ...(shown.length < withSpectra.length ? { note: `${shown.length} of ${withSpectra.length} matrices, spread from first to last` } : {}),
      });
    }
  }
  if (a.skipped?.length) items.push({ kind: 'text', title: 'Skipped tensors', paragraphs: a.skipped.map((s) => `${s.name}: ${s.reason}`) });
  return items;
}

function distanceItems(a: DistanceAnalysisInput, i: number): ReportItem[] {
  need(Array.isArray(a.labels), i, 'labels', 'expected an array of labels');
  need(Array.isArray(a.matrix) && a.matrix.length === a.labels.length, i, 'matrix', `expected a ${a.labels.length} x ${a.labels.length} distance matrix`);
  const names = a.labels;
  const metric = a.metric === 'cosine' ? 'cosine distance 1 − cos' : a.metric === 'l2' ? 'L2 distance' : a.metric;
  const items: ReportItem[] = [
    { kind: 'section', title: `Distances between ${names.length} ${a.base ? 'task vectors' : 'models'} (${a.metric})`, ...(a.base ? { note: `vectors taken against ${a.base}` } : {}) },
    { kind: 'heatmap', title: `Distance matrix (${metric})`, labels: names, values: a.matrix, scale: 'sequential' },
  ];
  if (a.metric !== 'cosine' && a.cosine) items.push({ kind: 'heatmap', title: 'Cosine similarity', labels: names, values: a.cosine, domain: [-1, 1], scale: 'diverging' });
  if (a.mds) {
    need(Array.isArray(a.mds.coords) && a.mds.coords.length === names.length, i, 'mds.coords', `expected ${names.length} coordinates (one per label)`);
    const eig = a.mds.eigenvalues?.length ? `; eigenvalues ${a.mds.eigenvalues.map(fmtNum).join(', ')}` : '';
    items.push({
      kind: 'scatter',
      title: '2-D map (classical MDS)',
      points: a.mds.coords.map((c, k) => ({ label: names[k], x: c[0] ?? 0, y: c[1] ?? 0 })),
      note: `Kruskal stress-1 ${fmtNum(a.mds.stress)} (0 = the map keeps every distance)${eig}`,
    });
  }
  if (a.clustering && names.length >= 2) {
    items.push({
      kind: 'dendrogram',
      title: `Hierarchical clustering (${a.clustering.linkage} linkage)`,
      labels: names,
      merges: a.clustering.merges.map((m) => ({ a: m.left, b: m.right, height: m.distance })),
    });
  }
  if (a.norms) items.push({ kind: 'table', title: 'Norms', columns: ['', '‖x‖'], rows: names.map((n, k) => [n, a.norms?.[k] ?? null]) });
  return items;
}

/** `kept_fraction_1` → 'kept_fraction (model-b)' when models[1] = 'model-b'. */
function reportKeyName(key: string, models: readonly string[]): string {
  const m = /^(.*)_(\d+)$/.exec(key);
  if (!m) return key;
  const label = models[Number(m[2])];
  return label === undefined ? key : `${m[1]} (${label})`;
}

function mergeItems(a: MergeAnalysisInput, i: number): ReportItem[] {
  need(Array.isArray(a.tensors), i, 'tensors', 'expected an array of per-tensor results');
  const models = a.models ?? [];
  const items: ReportItem[] = [{ kind: 'section', title: `Merge: ${a.method} (${a.recipe})`, note: `${a.base ? `base ${a.base}; ` : ''}models ${models.join(', ')}` }];
  if (a.warnings?.length) items.push({ kind: 'text', title: 'Warnings', paragraphs: a.warnings });
  const layers = a.layers ?? [];
  const keys: string[] = [];
  for (const l of layers) for (const k of Object.keys(l.report ?? {})) if (!keys.includes(k)) keys.push(k);
  const cats = layers.map((l) => layerName(l.layer));
  const fractionKeys = keys.filter((k) => layers.every((l) => l.report?.[k] === undefined || (l.report[k] >= 0 && l.report[k] <= 1)));
  const otherKeys = keys.filter((k) => !fractionKeys.includes(k));
  const series = (ks: readonly string[]): Series[] => ks.map((k) => ({ name: reportKeyName(k, models), values: layers.map((l) => l.report?.[k] ?? null) }));
  if (layers.length > 0 && fractionKeys.length > 0) items.push({ kind: 'bars', title: 'Kept fractions per layer', categories: cats, series: series(fractionKeys), yLabel: 'fraction', note: 'numel-weighted means over each layer\'s merged tensors' });
  if (layers.length > 0 && otherKeys.length > 0) items.push({ kind: 'lines', title: 'Other merge statistics per layer', categories: cats, series: series(otherKeys) });
  if (layers.some((l) => l.changedFraction !== null && l.changedFraction !== undefined)) {
    items.push({ kind: 'bars', title: 'Fraction of entries the merge changes, per layer', categories: cats, series: [{ name: 'changed', values: layers.map((l) => l.changedFraction ?? null) }], yLabel: 'fraction' });
  }
  const tkeys: string[] = [];
  for (const t of a.tensors) for (const k of Object.keys(t.report ?? {})) if (!tkeys.includes(k)) tkeys.push(k);
  items.push({
    kind: 'table',
    title: 'Per tensor',
    columns: ['tensor', 'shape', 'op', ...tkeys.map((k) => reportKeyName(k, models)), 'changed', 'sign conflict'],
    rows: a.tensors.map((t) => [t.name, (t.shape ?? []).join('x'), t.op, ...tkeys.map((k) => t.report?.[k] ?? null), t.effect?.changedFraction ?? null, t.effect?.signConflict ?? null]),
  });
  return items;
}

/** Report items for the JSON results of `analyze vectors | distance | merge`, in the given order. */
export function reportFromAnalyses(analyses: readonly AnalysisInput[], options: { title?: string; subtitle?: string } = {}): Report {
  const items: ReportItem[] = [];
  analyses.forEach((a, i) => {
    need(a !== null && typeof a === 'object', i, 'kind', 'expected an analysis result object');
    const kind = (a as { kind?: unknown }).kind;
    if (kind === 'weightkit.analyze.vectors') items.push(...vectorsItems(a as VectorsAnalysisInput, i));
    else if (kind === 'weightkit.analyze.distance') items.push(...distanceItems(a as DistanceAnalysisInput, i));
    else if (kind === 'weightkit.analyze.merge') items.push(...mergeItems(a as MergeAnalysisInput, i));
    else need(false, i, 'kind', `expected kind ${ANALYSIS_KINDS.map((k) => `'${k}'`).join(', ')}, got '${String(kind)}'`);
  });
  return { title: options.title ?? 'weightkit analysis report', ...(options.subtitle ? { subtitle: options.subtitle } : {}), items };
}
