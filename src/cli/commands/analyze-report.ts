// `weightkit analyze report a.json b.json ... --out report.html`: one self-contained HTML report from the JSON results
// of `weightkit analyze vectors|distance|merge --json` (or a ready Report {title, items}). Thin: read, adapt, write.
// Mounted by analyze.ts inside the analyze group: `reportCommand(a, ctx)`.

import { readFile } from 'node:fs/promises';
import type { Argv } from 'yargs';
import { UsageError, wrapIoError } from '../../errors.js';
import { ANALYSIS_KINDS, reportFromAnalyses, type AnalysisInput, type Report, type ReportItem } from '../../analysis/report.js';
import { writeReport } from '../../analysis/report-write.js';
import type { CommandContext } from '../main.js';

/** Read the inputs in order: analysis results become report items; a Report's items are taken as they are. */
export async function readReportInputs(files: readonly string[]): Promise<ReportItem[]> {
  const items: ReportItem[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      throw wrapIoError(e, file, 'reading a report input');
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (e) {
      throw new UsageError('USAGE', `${file} is not JSON (expected the output of weightkit analyze ... --json): ${(e as Error).message}`, { where: { file }, cause: e });
    }
    const list = Array.isArray(data) ? data : [data];
    for (const [k, d] of list.entries()) {
      const kind = (d as { kind?: unknown } | null)?.kind;
      if (typeof kind === 'string' && (ANALYSIS_KINDS as readonly string[]).includes(kind)) {
        try {
          items.push(...reportFromAnalyses([d as AnalysisInput]).items);
        } catch (e) {
          if (e instanceof UsageError) throw new UsageError(e.code, `${file}: ${e.message}`, { where: { ...e.where, file }, cause: e });
          throw e;
        }
      } else if (d !== null && typeof d === 'object' && Array.isArray((d as Report).items)) {
        items.push(...(d as Report).items);
      } else {
        throw new UsageError('USAGE', `${file}: expected a result of analyze vectors, distance or merge (a 'kind' field), or a report {title, items}; got ${kind === undefined ? 'no kind' : `kind '${String(kind)}'`}`, {
          where: { file, path: Array.isArray(data) ? `[${k}]` : 'kind' },
        });
      }
    }
  }
  return items;
}

export function reportCommand(y: Argv, ctx: CommandContext): Argv {
  return y.command(
    'report <inputs..>',
    'one self-contained HTML report (heatmaps, per-layer charts, spectra, 2-D map, tables) from analyze ... --json results',
    (b) =>
      b
        .positional('inputs', { type: 'string', array: true, describe: 'JSON files written by weightkit analyze vectors|distance|merge --json' })
        .option('out', { type: 'string', demandOption: true, describe: 'the report file (.html)' })
        .option('title', { type: 'string', describe: 'report title (default: weightkit analysis report)' })
        .option('overwrite', { type: 'boolean', default: false, describe: 'replace an existing report' })
        .option('json', { type: 'boolean', default: false, describe: 'print the result (and errors) as JSON' })
        .option('quiet', { type: 'boolean', default: false, describe: 'print nothing on success' })
        .example('weightkit analyze vectors --base base/ ft-a/ ft-b/ --json > v.json && weightkit analyze report v.json --out report.html', 'a report of task vectors'),
    async (argv) => {
      const inputs = ((argv.inputs as unknown[] | undefined) ?? []).map(String);
      if (inputs.length === 0) throw new UsageError('USAGE', 'name at least one JSON input');
      const out = String(argv.out);
      const items = await readReportInputs(inputs);
      const title = argv.title !== undefined ? String(argv.title) : 'weightkit analysis report';
      const bytes = await writeReport(out, { title, subtitle: `from ${inputs.join(', ')}`, items }, { overwrite: Boolean(argv.overwrite) });
      const charts = items.filter((i) => i.kind !== 'section' && i.kind !== 'text').length;
      if (argv.json) ctx.io.stdout(JSON.stringify({ out, bytes, items: items.length, charts }, null, 2) + '\n');
      else if (!argv.quiet) ctx.io.stdout(`report (${charts} charts and tables) -> ${out}\n`);
    },
  );
}
