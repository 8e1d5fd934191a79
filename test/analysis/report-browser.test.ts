// The report in a real browser: every chart kind rendered from synthetic data in headless Chromium (Debian's
// package, driven by playwright-core; no browser download). Asserts no console errors or failed requests, drawn
// content in every chart, and saves test-output/report.png. Skips (with the reason) only when Chromium is absent.

import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderReport, reportFromAnalyses, type Report, type ReportItem } from '../../src/analysis/report.js';
import { SeededRandom } from '../../src/tensor/rng.js';

const CHROMIUM = process.env.WEIGHTKIT_CHROMIUM ?? '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`report-browser: SKIPPED, no Chromium at ${CHROMIUM} (.ci/run installs Debian's chromium package)`);

const OUT_DIR = resolve('test-output');

type Group = { vectors: { norm: number; relativeChange: number | null; kurtosis: number; outlierRatio: number; zeroFraction: number }[]; cosine: number[][]; signConflict: number[][]; jaccard: number[][] };

/** Every chart kind, through the adapter, from synthetic analyze vectors | distance | merge results. */
function sampleReport(): Report {
  const rng = new SeededRandom(7);
  const labels = ['math-ft', 'code-ft', 'chat <ft> & "friends"', 'robust'];
  const K = labels.length;
  const sym = (f: (i: number, j: number) => number): number[][] => labels.map((_, i) => labels.map((_, j) => f(Math.min(i, j), Math.max(i, j))));
  const group = (depth: number): Group => {
    const r = labels.map(() => labels.map(() => rng.next()));
    return {
      vectors: labels.map((_, k) => ({ norm: 1 + k + depth * 0.1, relativeChange: 0.01 + 0.002 * k + 0.03 * Math.exp(-depth / 3) * rng.next(), kurtosis: 2 * rng.next() + (k === 3 ? 5 : 0), outlierRatio: 0.003 + 0.01 * rng.next(), zeroFraction: 0 })),
      cosine: sym((i, j) => (i === j ? 1 : r[i][j] * 0.8 - 0.2)),
      signConflict: sym((i, j) => (i === j ? 0 : 0.3 + 0.2 * r[i][j])),
      jaccard: sym((i, j) => (i === j ? 1 : 0.1 + 0.3 * r[i][j])),
    };
  };
  const layers = [{ layer: 'pre' as const, ...group(0) }, ...Array.from({ length: 12 }, (_, l) => ({ layer: l, ...group(l + 1) })), { layer: 'post' as const, ...group(13) }];
  const tensors = Array.from({ length: 8 }, (_, l) => ({
    name: `model.layers.${l}.mlp.up_proj.weight`,
    layer: l,
    spectra: labels.map((_, k) => ({ singularValues: Array.from({ length: 24 }, (_, i) => 10 * Math.exp(-i / (3 + k + l / 4))), effectiveRank: 4 + k * 2.5 + l / 3, stableRank: 1.5 + k })),
  }));
  const dist = sym((i, j) => (i === j ? 0 : 0.2 + rng.next()));
  const base = reportFromAnalyses([
    { kind: 'weightkit.analyze.vectors', base: 'base-model', labels, density: 0.1, notes: [], global: { ...group(0), signConflictAll: 0.41 }, layers, tensors, skipped: [] },
    {
      kind: 'weightkit.analyze.distance',
      metric: 'l2',
      base: 'base-model',
      labels,
      matrix: dist,
      cosine: sym((i, j) => (i === j ? 1 : 1 - dist[i][j] / 2)),
      norms: labels.map((_, k) => 1 + k),
      mds: { coords: [[-0.4, 0.1], [0.3, 0.2], [0.05, -0.35], [0.2, 0.05]], stress: 0.0123, eigenvalues: [0.5, 0.2] },
      clustering: { linkage: 'average', merges: [{ left: 0, right: 1, distance: 0.3 }, { left: 2, right: 4, distance: 0.5 }, { left: 3, right: 5, distance: 0.9 }] },
    },
    {
      kind: 'weightkit.analyze.merge',
      recipe: 'ties.yaml',
      method: 'ties',
      base: 'base-model',
      models: labels.slice(0, K - 1),
      tensors: tensors.map((t) => ({ name: t.name, shape: [16, 8], op: 'merge', report: { kept_fraction_0: 0.2, kept_fraction_1: 0.2, kept_fraction_2: 0.2, rescale_0: 1 }, effect: { changedFraction: 0.5, signConflict: 0.3 } })),
      layers: layers.slice(1, 9).map((l) => ({ layer: l.layer, report: { kept_fraction_0: 0.2, kept_fraction_1: 0.21, kept_fraction_2: 0.19, rescale_0: 1 }, changedFraction: 0.4 + 0.01 * Number(l.layer) })),
    },
  ]);
  const extra: ReportItem[] = [
    { kind: 'text', title: 'About', paragraphs: ['Synthetic data for the browser test. <script>alert(1)</script>'] },
    { kind: 'lines', title: 'Negative values and gaps', series: [{ name: 'a', values: [-1, 0.5, null, 2] }] },
  ];
  return { title: 'weightkit report (browser test)', subtitle: 'every chart kind', items: [...base.items, ...extra] };
}

describe.skipIf(!haveChromium)('report in headless Chromium', () => {
  let dir: string;
  let browser: import('playwright-core').Browser;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weightkit-report-'));
    const { chromium } = await import('playwright-core');
    // flags from .library/env/machines/node.md: root without sandbox, and no background traffic on a closed network
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  afterAll(async () => {
    await browser?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('renders every chart with drawn content, no console errors, no requests', async () => {
    const report = sampleReport();
    const kinds = new Set(report.items.map((i) => i.kind));
    for (const k of ['heatmap', 'bars', 'lines', 'scatter', 'dendrogram', 'table', 'text', 'section']) expect(kinds, k).toContain(k);
    const file = join(dir, 'report.html');
    await writeFile(file, renderReport(report));

    // a fresh context is a new, empty profile (user data)
    const context = await browser.newContext({ viewport: { width: 1366, height: 800 } });
    const page = await context.newPage();
    const problems: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('request', (r) => {
      if (!r.url().startsWith('file:')) requests.push(r.url());
    });
    await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });

    // string-evaluated (the project compiles without DOM types)
    const charts = (await page.evaluate(`Array.from(document.querySelectorAll('section.item[data-kind]')).map((sec) => {
      const svg = sec.querySelector('svg');
      const marks = svg ? Array.from(svg.querySelectorAll('.cells rect, .bars rect, .series path, .points circle, .tree path')) : [];
      const drawn = marks.filter((el) => { const b = el.getBBox(); return (b.width > 0 || b.height > 0) && (el.tagName !== 'path' || (el.getAttribute('d') || '').length > 0); });
      const box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
      return { kind: sec.dataset.kind, title: sec.querySelector('h3').textContent, marks: marks.length, drawn: drawn.length,
        width: box.width, height: box.height, tableRows: sec.querySelectorAll('table tbody tr').length };
    })`)) as { kind: string; title: string; marks: number; drawn: number; width: number; height: number; tableRows: number }[];

    expect(charts.length).toBe(report.items.filter((i) => !['text', 'section'].includes(i.kind)).length);
    for (const c of charts) {
      expect(c.tableRows, `${c.title}: numbers table`).toBeGreaterThan(0);
      if (c.kind === 'table') continue;
      expect(c.width * c.height, `${c.title}: svg size`).toBeGreaterThan(0);
      expect(c.marks, `${c.title}: marks`).toBeGreaterThan(0);
      expect(c.drawn, `${c.title}: marks with a non-empty bounding box`).toBe(c.marks);
    }
    // the escaped script is text, not an element; fits a laptop screen without horizontal scrolling
    expect(await page.evaluate(`document.querySelectorAll('script').length`)).toBe(0);
    expect(await page.evaluate(`document.documentElement.scrollWidth <= window.innerWidth`)).toBe(true);

    await mkdir(OUT_DIR, { recursive: true });
    await page.screenshot({ path: join(OUT_DIR, 'report.png'), fullPage: true });
    await writeFile(join(OUT_DIR, 'report.html'), renderReport(report));
    await context.close();
    expect(problems).toEqual([]);
    expect(requests).toEqual([]);
  });
});
