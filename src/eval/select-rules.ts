// The selection rules of sweeps and searches (src/eval/sweep.ts): a module of its own so that the CLI can list them
// without loading the evaluation stack. Imports nothing.

export type SelectRule = 'mean-normalized' | 'negation';
export const SELECT_RULES: readonly SelectRule[] = ['mean-normalized', 'negation'];
