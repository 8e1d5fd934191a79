// Writes a rendered report to disk: the HTML goes to a temporary file beside the target, then is renamed into place,
// so a reader never sees a half-written report. The node side of report.ts (which stays pure).

import { renderReport, type Report, type ReportItem } from './report.js';
import { createTempFile, publish, removeIfExists, statOrUndefined } from '../io/file.js';
import { IoError, wrapIoError } from '../errors.js';

/**
 * Render `report` (or a bare list of items, titled 'weightkit report') and write it to `path` (tmp + rename).
 * An existing file is replaced unless `overwrite: false` (then OUT_EXISTS). Returns the number of bytes written.
 */
export async function writeReport(path: string, report: Report | readonly ReportItem[], options: { overwrite?: boolean } = {}): Promise<number> {
  const existing = await statOrUndefined(path);
  if (existing?.isDirectory()) throw new IoError('OUT_EXISTS', `report output ${path} is a folder; expected a file path`, { where: { file: path } });
  if (existing && options.overwrite === false) throw new IoError('OUT_EXISTS', `report ${path} exists (pass --overwrite to replace it)`, { where: { file: path } });
  const doc: Report = Array.isArray(report) ? { title: 'weightkit report', items: [...(report as readonly ReportItem[])] } : (report as Report);
  const bytes = new TextEncoder().encode(renderReport(doc));
  const { fh, tmpPath } = await createTempFile(path);
  try {
    try {
      await fh.writeFile(bytes);
    } finally {
      await fh.close();
    }
    await publish(tmpPath, path);
  } catch (e) {
    await removeIfExists(tmpPath).catch(() => undefined);
    throw wrapIoError(e, path, 'writing the report');
  }
  return bytes.byteLength;
}
