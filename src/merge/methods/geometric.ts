// Placeholder: the geometric methods are being written.
import type { MergeMethod } from '../types.js';

export const GEOMETRIC_METHODS: readonly MergeMethod[] = [];
