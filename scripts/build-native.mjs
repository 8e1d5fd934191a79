// Builds the optional native kernels (native/gta.cc -> native/build/gta.node) with the system C++ compiler against
// the running Node's own headers. Run by `npm ci` / `npm install` (the prepare script) and `npm run build:native`.
// Never fails the install: without a compiler or headers (or, at run time, an AVX-512 CPU) the WebAssembly kernels run instead
// (src/tensor/native.ts). -ffp-contract=off keeps every multiply and add separately rounded, as in the wasm kernels.
// Plain Node (no dependencies, no TypeScript): it runs before anything else is built.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const srcs = [join(root, 'native', 'gta.cc'), join(root, 'native', 'dense.cc')];
const outDir = join(root, 'native', 'build');
const out = join(outDir, 'gta.node');
const include = join(dirname(process.execPath), '..', 'include', 'node');
const cxx = process.env.CXX || 'g++';

function skip(why) {
  console.log(`weightkit: native kernels not built (${why}); the WebAssembly kernels will be used`);
  process.exit(0);
}

if (process.env.WEIGHTKIT_NATIVE === '0') skip('WEIGHTKIT_NATIVE=0');
if (process.platform !== 'linux' || process.arch !== 'x64') skip(`${process.platform}-${process.arch} is not linux-x64`);
if (!existsSync(join(include, 'node_api.h'))) skip(`no Node headers at ${include}`);
// a failed build must not leave an older addon behind (src/plan/native.ts also refuses other layout versions)
rmSync(out, { force: true });
mkdirSync(outDir, { recursive: true });
const tmp = `${out}.${process.pid}.tmp`;
// the instruction sets the kernels use, not -march=native: the addon must load (and then decline, see gta.cc) on a
// CPU other than the build machine's, e.g. a shared home folder or a container image
const isa = ['-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq', '-mbmi2', '-mpopcnt', '-mf16c', '-mtune=generic'];
const args = ['-O3', ...isa, '-ffp-contract=off', '-fno-math-errno', '-fvisibility=hidden', '-shared', '-fPIC', '-std=c++17', '-pthread', `-I${include}`, '-o', tmp, ...srcs];
const r = spawnSync(cxx, args, { encoding: 'utf8' });
if (r.error || r.status !== 0) {
  rmSync(tmp, { force: true });
  skip(r.error ? `${cxx}: ${r.error.code ?? r.error.message}` : `${cxx} failed: ${(r.stderr || '').split('\n')[0]}`);
}
renameSync(tmp, out);
console.log(`weightkit: native kernels built (${out})`);
