// Loads the optional native kernels (native/build/gta.node, built at install by scripts/build-native.mjs) and
// installs them for the merge engine (src/tensor/native-kernels.ts). Absent, unloadable or disabled with
// WEIGHTKIT_NATIVE=0: the WebAssembly kernels run, with the same bits.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { NATIVE_ABI, NATIVE_FUNCTIONS, setNativeKernels, type NativeKernels } from '../tensor/native-kernels.js';

let loaded: NativeKernels | undefined | null = null;

/**
 * The kernels an addon file exports, or undefined when it is missing, does not load (another Node ABI or CPU), or is
 * stale: another layout version or a kernel missing (the WebAssembly kernels then run).
 */
export function nativeKernelsFrom(file: string): NativeKernels | undefined {
  if (!existsSync(file)) return undefined;
  try {
    const k = createRequire(import.meta.url)(file) as Partial<NativeKernels>;
    const complete = NATIVE_FUNCTIONS.every((name) => typeof k[name] === 'function');
    return k.abi === NATIVE_ABI && complete ? (k as NativeKernels) : undefined;
  } catch {
    return undefined;
  }
}

/** The addon's kernels (loaded once per thread), or undefined when unavailable or disabled. */
export function loadNativeKernels(): NativeKernels | undefined {
  if (process.env['WEIGHTKIT_NATIVE'] === '0') return undefined;
  // src/plan/native.ts and dist/plan/native.js both sit two levels below the package root
  if (loaded === null) loaded = nativeKernelsFrom(fileURLToPath(new URL('../../native/build/gta.node', import.meta.url)));
  return loaded;
}

/** Install the native kernels for this thread's merges (or clear them when unavailable or disabled). */
export function installNativeKernels(): boolean {
  const k = loadNativeKernels();
  setNativeKernels(k);
  return k !== undefined;
}
