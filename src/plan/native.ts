// Loads the optional native kernels (native/build/gta.node, built at install by scripts/build-native.mjs) and
// installs them for the merge engine (src/tensor/native-kernels.ts). Absent, unloadable or disabled with
// WEIGHTKIT_NATIVE=0: the WebAssembly kernels run, with the same bits.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { NATIVE_ABI, setNativeKernels, type NativeKernels } from '../tensor/native-kernels.js';

let loaded: NativeKernels | undefined | null = null;

/** The addon's kernels (loaded once per thread), or undefined when unavailable or disabled. */
export function loadNativeKernels(): NativeKernels | undefined {
  if (process.env['WEIGHTKIT_NATIVE'] === '0') return undefined;
  if (loaded === null) {
    loaded = undefined;
    // src/plan/native.ts and dist/plan/native.js both sit two levels below the package root
    const file = fileURLToPath(new URL('../../native/build/gta.node', import.meta.url));
    if (existsSync(file)) {
      try {
        const k = createRequire(import.meta.url)(file) as Partial<NativeKernels>;
        if (k.abi === NATIVE_ABI && typeof k.tiesPiece === 'function' && typeof k.histWindows === 'function' && typeof k.adviseHuge === 'function') loaded = k as NativeKernels;
      } catch {
        loaded = undefined; // e.g. built for another Node ABI or CPU: the WebAssembly kernels run (so does a stale build)
      }
    }
  }
  return loaded;
}

/** Install the native kernels for this thread's merges (or clear them when unavailable or disabled). */
export function installNativeKernels(): boolean {
  const k = loadNativeKernels();
  setNativeKernels(k);
  return k !== undefined;
}
