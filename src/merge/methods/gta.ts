// Placeholder: the generalized task arithmetic family is being written.
import type { MergeMethod } from '../types.js';

export const GTA_METHODS: readonly MergeMethod[] = [];
