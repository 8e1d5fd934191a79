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
  type Report,
  type ReportItem,
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

describe('reportFromAnalyses', () => {
  it('turns vectors, distance and merge results into charts', () => {
    const names = ['a', 'b'];
    const r = reportFromAnalyses([
      {
        kind: 'vectors',
        names,
        cosine: [[1, 0.2], [0.2, 1]],
        signConflict: [[0, 0.4], [0.4, 0]],
        layers: [{ layer: 'l0', relativeChange: [0.1, 0.2], kurtosis: [3, 4] }, { layer: 'l1', relativeChange: [0.05, null] }],
        spectra: [{ name: 'a', tensor: 'w', singularValues: [3, 2, 1], effectiveRank: 2.7 }],
      },
      { kind: 'distance', names, matrix: [[0, 1], [1, 0]], mds: [[-0.5, 0], { x: 0.5, y: 0 }], stress: 0, merges: [{ a: 0, b: 1, height: 1 }] },
      { kind: 'merge', method: 'ties', tensors: [{ name: 'w', kept: 0.2, numel: 100, nested: { x: 1 } }] },
    ]);
    expect(r.items.map((i) => i.kind)).toEqual(['section', 'heatmap', 'heatmap', 'bars', 'lines', 'lines', 'bars', 'section', 'heatmap', 'scatter', 'dendrogram', 'section', 'bars', 'table']);
    const rel = r.items[3] as Extract<ReportItem, { kind: 'bars' }>;
    expect(rel.series).toEqual([{ name: 'a', values: [0.1, 0.05] }, { name: 'b', values: [0.2, null] }]);
    const kurt = r.items[4] as Extract<ReportItem, { kind: 'lines' }>;
    expect(kurt.series[0].values).toEqual([3, null]);
    const table = r.items.at(-1) as Extract<ReportItem, { kind: 'table' }>;
    expect(table.columns).toEqual(['tensor', 'kept', 'numel']);
    expect(renderReport(r)).toContain('stress 0');
  });

  it('rejects an unknown kind with its index', () => {
    const e = errorOf(() => reportFromAnalyses([{ kind: 'nope' } as never]));
    expect(e.where.path).toBe('analyses[0].kind');
    const m = errorOf(() => reportFromAnalyses([{ kind: 'distance', names: ['a'], matrix: [[0]], mds: [] }]));
    expect(m.where.path).toBe('analyses[0].mds');
  });
});
