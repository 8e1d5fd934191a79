import { describe, expect, it } from 'vitest';
import {
  colorScale,
  escapeHtml,
  fmtNum,
  heatmapScale,
  linearAxis,
  logAxis,
  renderReport,
  reportFromAnalyses,
  type DistanceAnalysisInput,
  type MergeAnalysisInput,
  type Report,
  type ReportItem,
  type VectorsAnalysisInput,
} from '../../src/analysis/report.js';
import { UsageError, WeightkitError } from '../../src/errors.js';

const EVIL = `<script>alert("x")</script> & 'q'`;

function allKinds(name = 'a'): ReportItem[] {
  return [
    { kind: 'section', title: 'Section' },
    { kind: 'heatmap', title: 'cos', labels: [name, 'b'], values: [[1, -0.5], [-0.5, 1]] },
    { kind: 'bars', title: 'rel', categories: ['l0', 'l1'], series: [{ name, values: [0.1, 0.2] }, { name: 'b', values: [0.3, null] }] },
    { kind: 'lines', title: 'spec', series: [{ name, values: [10, 1, 0.1] }, { name: 'b', values: [5, 0.5] }], log: true },
    { kind: 'scatter', title: 'map', points: [{ label: name, x: 0, y: 1 }, { label: 'b', x: 1, y: 0 }], note: 'stress 0.01' },
    { kind: 'dendrogram', title: 'tree', labels: [name, 'b', 'c'], merges: [{ a: 0, b: 2, height: 0.2 }, { a: 1, b: 3, height: 0.7 }] },
    { kind: 'table', title: 'tbl', columns: ['k', 'v'], rows: [[name, 1.5], ['z', null]] },
    { kind: 'text', title: 'About', paragraphs: ['p1', name] },
  ];
}

function errorOf(f: () => unknown): WeightkitError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return e as WeightkitError;
  }
  throw new Error('expected an error');
}

describe('escaping and numbers', () => {
  it('escapes the five HTML characters', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });

  it('escapes every name that reaches the document', () => {
    const html = renderReport({ title: EVIL, subtitle: EVIL, items: allKinds(EVIL) });
    expect(html).not.toContain('<script');
    expect(html).not.toContain(`"x")`);
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;');
  });

  it('formats numbers with 4 significant digits, exponents outside [1e-3, 1e5)', () => {
    expect(fmtNum(0)).toBe('0');
    expect(fmtNum(0.123456)).toBe('0.1235');
    expect(fmtNum(-12.5)).toBe('-12.5');
    expect(fmtNum(123456)).toBe('1.23e+5');
    expect(fmtNum(0.0001234)).toBe('1.23e-4');
    expect(fmtNum(null)).toBe('–');
    expect(fmtNum(Number.NaN)).toBe('–');
    expect(fmtNum(Infinity)).toBe('∞');
  });
});

describe('scales', () => {
  it('linear axes cover the data with nice ticks and map the ends onto the pixels', () => {
    const a = linearAxis(0, 0.043, 300, 0);
    expect(a.ticks[0]).toBe(0);
    expect(a.ticks.at(-1)).toBeGreaterThanOrEqual(0.043);
    expect(a.ticks).toEqual([0, 0.01, 0.02, 0.03, 0.04, 0.05]);
    expect(a.map(0)).toBe(300);
    expect(a.map(0.05)).toBeCloseTo(0, 9);
    const b = linearAxis(-1, 1, 0, 100);
    expect(b.ticks).toEqual([-1, -0.5, 0, 0.5, 1]);
    expect(b.map(0)).toBe(50);
    expect(linearAxis(3, 3, 0, 1).ticks.length).toBeGreaterThan(1);
  });

  it('log axes run over whole decades', () => {
    const a = logAxis(0.0047, 10, 100, 0);
    expect(a.ticks).toEqual([0.001, 0.01, 0.1, 1, 10]);
    expect(a.map(0.001)).toBe(100);
    expect(a.map(10)).toBe(0);
    expect(a.map(0.1)).toBeCloseTo(50, 9);
    expect(logAxis(2, 8, 0, 1).ticks).toEqual([1, 2, 5, 10]);
  });

  it('colour scales: diverging is white at 0 and symmetric; sequential ends at viridis', () => {
    const d = colorScale('diverging', [-1, 1]);
    expect(d.color(0)).toBe('#f7f7f7');
    expect(d.color(-1)).toBe('#2166ac');
    expect(d.color(1)).toBe('#b2182b');
    expect(d.color(5)).toBe('#b2182b'); // clamped
    const s = colorScale('sequential', [0, 1]);
    expect(s.color(0)).toBe('#440154');
    expect(s.color(1)).toBe('#fde725');
    expect(s.ink(0)).toBe('#fff');
    expect(s.ink(1)).toBe('#111');
  });

  it('heatmaps default to a symmetric diverging domain when a value is negative', () => {
    expect(heatmapScale({ values: [[0.2, -0.5], [null, 0.9]] })).toMatchObject({ kind: 'diverging', domain: [-0.9, 0.9] });
    expect(heatmapScale({ values: [[0.2, 0.5]] })).toMatchObject({ kind: 'sequential', domain: [0.2, 0.5] });
    expect(heatmapScale({ values: [[0.2]], domain: [0, 1] })).toMatchObject({ kind: 'sequential', domain: [0, 1] });
  });
});

describe('renderReport', () => {
  const report: Report = { title: 'T', items: allKinds() };

  it('is deterministic: the same input gives the same bytes', () => {
    const a = renderReport(report);
    const b = renderReport(structuredClone(report));
    expect(a).toBe(b);
  });

  it('is self-contained: no scripts, no external references, a CSP forbidding fetches', () => {
    const html = renderReport(report);
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).not.toMatch(/<script|<link|<img|@import|url\(|https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    expect(html).toContain(`default-src 'none'`);
  });

  it('draws one svg per chart, each followed by its numbers table', () => {
    const html = renderReport(report);
    const sections = html.split('<section ').slice(1);
    const kinds = sections.map((s) => /data-kind="(\w+)"/.exec(s)?.[1] ?? 'text');
    expect(kinds).toEqual(['heatmap', 'bars', 'lines', 'scatter', 'dendrogram', 'table', 'text']);
    for (const s of sections.slice(0, 5)) {
      expect(s.indexOf('<svg')).toBeGreaterThan(0);
      expect(s.indexOf('<table')).toBeGreaterThan(s.indexOf('</svg>'));
    }
  });

  it('puts every value in a hover <title>', () => {
    const html = renderReport({ title: 'T', items: [{ kind: 'heatmap', title: 'h', labels: ['x', 'y'], values: [[1, 0.25], [0.25, 1]] }] });
    expect(html).toContain('<title>x × y: 0.25</title>');
    expect(html.match(/<rect [^>]*><title>/g)).toHaveLength(4);
  });

  it('maps bar heights through the axis (0.05 fills the plot)', () => {
    const html = renderReport({ title: 'T', items: [{ kind: 'bars', title: 'b', categories: ['l0'], series: [{ name: 's', values: [0.05] }] }] });
    const bar = /<g class="bars"><rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)"/.exec(html);
    expect(bar).not.toBeNull();
    expect(Number(bar![1])).toBe(12); // plot top
    expect(Number(bar![2])).toBe(260); // plot height
  });

  it('breaks lines at null and at non-positive values on a log axis', () => {
    const html = renderReport({ title: 'T', items: [{ kind: 'lines', title: 'l', series: [{ name: 's', values: [1, 2, null, 3, 0, 4] }], log: true }] });
    const d = /<path d="([^"]+)"/.exec(html)![1];
    expect(d.match(/M/g)).toHaveLength(3);
    expect(d.match(/L/g)).toHaveLength(1);
  });

  it('orders dendrogram leaves by the tree and lists each merge', () => {
    const html = renderReport({ title: 'T', items: [{ kind: 'dendrogram', title: 'd', labels: ['a', 'b', 'c'], merges: [{ a: 0, b: 2, height: 0.2 }, { a: 1, b: 3, height: 0.7 }] }] });
    const leaves = [...html.matchAll(/<text [^>]*text-anchor="end">(\w)<\/text>/g)].map((m) => m[1]);
    expect(leaves).toEqual(['b', 'a', 'c']);
    expect(html.match(/<path d="M/g)).toHaveLength(2);
    expect(html).toContain('merge 2 at 0.7: b, a, c');
  });

  it('reports malformed items with the item path', () => {
    const cases: [ReportItem, string][] = [
      [{ kind: 'heatmap', title: 'h', labels: ['a', 'b'], values: [[1, 2]] }, 'items[0].values'],
      [{ kind: 'heatmap', title: 'h', labels: ['a'], values: [[1, 2]] }, 'items[0].values[0]'],
      [{ kind: 'bars', title: 'b', categories: ['x', 'y'], series: [{ name: 's', values: [1] }] }, 'items[0].series[0].values'],
      [{ kind: 'dendrogram', title: 'd', labels: ['a', 'b', 'c'], merges: [{ a: 0, b: 1, height: 1 }] }, 'items[0].merges'],
      [{ kind: 'dendrogram', title: 'd', labels: ['a', 'b', 'c'], merges: [{ a: 0, b: 1, height: 1 }, { a: 1, b: 2, height: 2 }] }, 'items[0].merges[1]'],
      [{ kind: 'table', title: 't', columns: ['a'], rows: [[1, 2]] }, 'items[0].rows[0]'],
      [{ kind: 'scatter', title: 's', points: [{ label: 'p', x: Number.NaN, y: 0 }] }, 'items[0].points[0]'],
    ];
    for (const [item, path] of cases) {
      const e = errorOf(() => renderReport({ title: 'T', items: [item] }));
      expect(e.code).toBe('USAGE');
      expect(e.where.path).toBe(path);
    }
  });
});

function group(k: number, f: (i: number, j: number) => number): { vectors: { norm: number; relativeChange: number | null; kurtosis: number; outlierRatio: number; zeroFraction: number }[]; cosine: number[][]; signConflict: number[][]; jaccard: number[][]; signConflictAll: number } {
  const m = (g: (i: number, j: number) => number): number[][] => Array.from({ length: k }, (_, i) => Array.from({ length: k }, (_, j) => g(i, j)));
  return {
    vectors: Array.from({ length: k }, (_, v) => ({ norm: 1 + v, relativeChange: 0.1 * (v + 1), kurtosis: v, outlierRatio: 0.01, zeroFraction: 0 })),
    cosine: m((i, j) => (i === j ? 1 : f(i, j))),
    signConflict: m((i, j) => (i === j ? 0 : 0.4)),
    jaccard: m((i, j) => (i === j ? 1 : 0.3)),
    signConflictAll: 0.4,
  };
}

function vectorsResult(): VectorsAnalysisInput {
  const labels = ['a', 'b'];
  return {
    kind: 'weightkit.analyze.vectors',
    base: 'base',
    labels,
    density: 0.1,
    notes: ['a note'],
    global: group(2, () => 0.2),
    layers: [{ layer: 'pre', ...group(2, () => 0.5) }, { layer: 0, ...group(2, () => 0.1) }, { layer: 'post', ...group(2, () => -0.1) }],
    tensors: [
      { name: 'w0', layer: 0, spectra: [{ singularValues: [3, 2, 1], effectiveRank: 2.7, stableRank: 1.6 }, { singularValues: [2, 1], effectiveRank: 1.9, stableRank: 1.2 }] },
      { name: 'b0', layer: 0 },
    ],
    skipped: [{ name: 'x', reason: 'integer' }],
  };
}

function distanceResult(): DistanceAnalysisInput {
  return {
    kind: 'weightkit.analyze.distance',
    metric: 'l2',
    base: null,
    labels: ['a', 'b', 'c'],
    matrix: [[0, 1, 2], [1, 0, 2], [2, 2, 0]],
    cosine: [[1, 0.5, 0], [0.5, 1, 0], [0, 0, 1]],
    norms: [1, 2, 3],
    mds: { coords: [[-0.5, 0], [0.5, 0], [0, 1.9]], stress: 0.01, eigenvalues: [2, 1] },
    clustering: { linkage: 'average', merges: [{ left: 0, right: 1, distance: 1 }, { left: 2, right: 3, distance: 2 }] },
  };
}

function mergeResult(): MergeAnalysisInput {
  return {
    kind: 'weightkit.analyze.merge',
    recipe: 'ties.yaml',
    method: 'ties',
    base: 'base',
    models: ['a', 'b'],
    tensors: [
      { name: 'w0', shape: [4, 4], op: 'merge', report: { kept_fraction_0: 0.2, kept_fraction_1: 0.3, rescale_0: 1.5 }, effect: { changedFraction: 0.4, signConflict: 0.1 } },
      { name: 'n', shape: [4], op: 'copy', report: null, effect: null },
    ],
    layers: [{ layer: 0, report: { kept_fraction_0: 0.2, kept_fraction_1: 0.3, rescale_0: 1.5 }, changedFraction: 0.4 }],
    totals: { numel: 20, report: { kept_fraction_0: 0.2 }, changedFraction: 0.4 },
    warnings: [],
  };
}

describe('reportFromAnalyses', () => {
  it('turns an analyze vectors result into tables, heatmaps, per-layer charts and spectra', () => {
    const r = reportFromAnalyses([vectorsResult()]);
    expect(r.items.map((i) => i.kind)).toEqual(['section', 'text', 'table', 'heatmap', 'heatmap', 'heatmap', 'bars', 'lines', 'lines', 'lines', 'lines', 'bars', 'bars', 'lines', 'text']);
    const rel = r.items[6] as Extract<ReportItem, { kind: 'bars' }>;
    expect(rel.categories).toEqual(['embeddings', 'layer 0', 'head']);
    expect(rel.series.map((s) => s.name)).toEqual(['a', 'b']);
    expect(rel.series[1].values).toEqual([0.2, 0.2, 0.2]);
    const cos = r.items[9] as Extract<ReportItem, { kind: 'lines' }>;
    expect(cos.series).toEqual([{ name: 'a · b', values: [0.5, 0.1, -0.1] }]);
    const eff = r.items[11] as Extract<ReportItem, { kind: 'bars' }>;
    expect(eff.categories).toEqual(['w0']);
    expect(eff.series.map((s) => s.values)).toEqual([[2.7], [1.9]]);
    const spec = r.items[13] as Extract<ReportItem, { kind: 'lines' }>;
    expect(spec).toMatchObject({ log: true, series: [{ name: 'a', values: [3, 2, 1] }, { name: 'b', values: [2, 1] }] });
    expect(() => renderReport(r)).not.toThrow();
  });

  it('without a base, charts norms instead of relative change', () => {
    const v = vectorsResult();
    v.base = null;
    for (const l of v.layers) for (const s of l.vectors) s.relativeChange = null;
    const r = reportFromAnalyses([v]);
    expect(r.items.find((i) => i.kind === 'bars')?.title).toBe('Norm per layer ‖δ‖');
  });

  it('turns an analyze distance result into a matrix, the MDS map with its stress and the dendrogram', () => {
    const r = reportFromAnalyses([distanceResult()]);
    expect(r.items.map((i) => i.kind)).toEqual(['section', 'heatmap', 'heatmap', 'scatter', 'dendrogram', 'table']);
    expect(r.items[3]).toMatchObject({ points: [{ label: 'a', x: -0.5, y: 0 }, { label: 'b', x: 0.5, y: 0 }, { label: 'c', x: 0, y: 1.9 }] });
    expect((r.items[3] as { note: string }).note).toContain('stress-1 0.01');
    expect(r.items[4]).toMatchObject({ merges: [{ a: 0, b: 1, height: 1 }, { a: 2, b: 3, height: 2 }] });
    expect(renderReport(r)).toContain('merge 2 at 2: c, a, b');
  });

  it('turns an analyze merge result into kept fractions per layer (keys named by model) and a tensor table', () => {
    const r = reportFromAnalyses([mergeResult()]);
    expect(r.items.map((i) => i.kind)).toEqual(['section', 'bars', 'lines', 'bars', 'table']);
    expect((r.items[1] as Extract<ReportItem, { kind: 'bars' }>).series.map((s) => s.name)).toEqual(['kept_fraction (a)', 'kept_fraction (b)']);
    expect((r.items[2] as Extract<ReportItem, { kind: 'lines' }>).series.map((s) => s.name)).toEqual(['rescale (a)']);
    const t = r.items[4] as Extract<ReportItem, { kind: 'table' }>;
    expect(t.rows[1]).toEqual(['n', '4', 'copy', null, null, null, null, null]);
    expect(() => renderReport(r)).not.toThrow();
  });

  it('rejects an unknown kind and malformed fields with their path', () => {
    const e = errorOf(() => reportFromAnalyses([{ kind: 'nope' } as never]));
    expect(e.where.path).toBe('analyses[0].kind');
    const d = distanceResult();
    d.mds = { coords: [], stress: 0 };
    expect(errorOf(() => reportFromAnalyses([mergeResult(), d])).where.path).toBe('analyses[1].mds.coords');
  });
});
