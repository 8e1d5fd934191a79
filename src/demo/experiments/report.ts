// The demo's analysis report: how the zoo's task vectors interfere (analyze vectors over the multi-task
// fine-tunes) and a map of every zoo model (analyze distance), rendered into one self-contained HTML file.

import { join } from 'node:path';
import { analyzeDistance } from '../../analysis/distance.js';
import { reportFromAnalyses } from '../../analysis/report.js';
import { writeReport } from '../../analysis/report-write.js';
import { analyzeVectors } from '../../analysis/vectors.js';
import type { DemoContext } from './context.js';

export interface DemoReportResult {
  path: string;
  bytes: number;
  /** mean pairwise cosine of the multi-task task vectors and the MDS stress of the model map */
  meanCosine: number;
  stress: number;
}

export async function runReport(ctx: DemoContext): Promise<DemoReportResult> {
  const spec = ctx.zoo.experiments.multiTask;
  const vectors = await analyzeVectors({ base: ctx.model(spec.base), models: spec.models.map((m) => ctx.model(m)), labels: spec.models });
  const names = ctx.zoo.models.map((m) => m.name);
  const distance = await analyzeDistance({ paths: names.map((n) => ctx.model(n)), labels: names, metric: 'cosine', base: ctx.model(spec.base) });
  const path = join(ctx.out, 'report.html');
  const bytes = await writeReport(
    path,
    reportFromAnalyses([vectors, distance], {
      title: 'weightkit demo: the MNIST zoo',
      subtitle: 'task vectors of the multi-task fine-tunes, and a map of every model (cosine distance of their task vectors)',
    }),
    { overwrite: true },
  );
  const K = spec.models.length;
  let sum = 0;
  let pairs = 0;
  for (let i = 0; i < K; i++) {
    for (let j = i + 1; j < K; j++) {
      sum += vectors.global.cosine[i]![j]!;
      pairs++;
    }
  }
  return { path, bytes, meanCosine: pairs > 0 ? sum / pairs : 0, stress: distance.mds.stress };
}
