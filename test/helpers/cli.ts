// Run the CLI in-process (main(args, io)) with collecting streams: exit code, stdout and stderr.

import { main, type CliIo } from '../../src/cli/main.js';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runCli(...args: string[]): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), isTTY: false };
  const code = await main(args, io);
  return { code, stdout, stderr };
}
