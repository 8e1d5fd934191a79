// Merge-method declarations as pure data: which parameters a method takes (global or per model), their types,
// defaults and ranges, and its input contract. Recipes are validated against these; `weightkit methods` and the
// docs print them. Imports nothing but types; src/merge implements methods that carry a MethodSpec.

export type ParamValue = number | boolean | string;

export interface ParamSpec {
  readonly name: string;
  readonly type: 'number' | 'boolean' | 'string';
  /** allowed strings for type 'string' */
  readonly choices?: readonly string[];
  /** default value; undefined with required=false means "unset" (the method decides) */
  readonly default?: ParamValue;
  readonly required?: boolean;
  readonly min?: number;
  readonly max?: number;
  /** min/max are exclusive bounds */
  readonly exclusiveMin?: boolean;
  readonly exclusiveMax?: boolean;
  /** integer-valued number */
  readonly integer?: boolean;
  readonly description: string;
}

export interface MethodSpec {
  readonly name: string;
  /** 'required': base_model must be given; 'optional': used when given; 'none': not used (error if given);
   *  'input': a given base is merged as one more input (mergekit's linear/karcher behaviour) */
  readonly base: 'required' | 'optional' | 'none' | 'input';
  /** non-base models: minimum and maximum count (max undefined = unbounded) */
  readonly minModels: number;
  readonly maxModels?: number;
  /** parameters that apply to the whole tensor (top-level/slice `parameters`; cannot vary per model) */
  readonly params: readonly ParamSpec[];
  /** per-model parameters (models[i].parameters, sources[i].parameters; may also be set at slice/top level) */
  readonly modelParams: readonly ParamSpec[];
  readonly summary: string;
  /** formula in one paragraph */
  readonly formula: string;
  readonly reference: string;
  /** where weightkit deliberately differs from mergekit */
  readonly differences?: string;
  /** randomness: uses the recipe seed */
  readonly random?: boolean;
}
